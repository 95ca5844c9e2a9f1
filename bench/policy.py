"""Route policy throughput: the README's IXP route-server import filter over a full table.

Prints one line: ``policy: N routes/s`` and then details.  The filter is
``examples/ixp-route-server.toml``'s ``ixp-in`` (10 terms: bogon prefix sets,
too-specifics, an AS-path regex of bogon ASNs, path length, first AS,
registered prefixes, transit-free ASNs, a community scrub and a tag), its
registered-prefix set replaced by 5,000 entries drawn from the table
itself (/16s and /32s of its prefixes, ``le 24`` / ``le 48``).  Routes are
fed as the RIB feeds them: every prefix of an UPDATE shares one attribute
object (bench/synthetic.py's groups), each through the compiled chain, from
cold caches; then once more with one ``Chain.many`` call per UPDATE.

    .venv/bin/python bench/policy.py             # full table (~1.04M + 225k prefixes)
    .venv/bin/python bench/policy.py --scale 0.02

``--for-feed`` is what ``bench/rib_scale.py --policy ixp`` runs in a child
process: it prints, as JSON, the filter's ``[sets]`` and ``[policies]`` for
bench/bgp_feeder.py's table (registered set drawn from it, and registering
every /24-or-shorter and /48-or-shorter prefix too, so that the whole-daemon
run moves about as many routes as without the filter) and how many prefixes
of each family that filter accepts.
"""

from __future__ import annotations

import argparse
import gc
import os
import random
import re
import sys
import time

ROOT = os.path.join(os.path.dirname(os.path.abspath(__file__)), "..")
sys.path.insert(0, ROOT)

from bench.synthetic import scaled  # noqa: E402
from bgpd.config import parse_config  # noqa: E402
from bgpd.policy import chain, registry  # noqa: E402
from bgpd.rib.route import PeerInfo  # noqa: E402
from bgpd.runtime import tune_gc  # noqa: E402
from bgpd.wire.nlri import prefix_to_str  # noqa: E402

PEER_AS = 3333
SET_SIZE = 5000


def registered_set(v4: list, v6: list, size: int, seed: int = 1) -> list[str]:
    """``size`` entries covering parts of the table: /16s (le 24) and /32s (le 48) of its prefixes."""
    rng = random.Random(seed)
    out: dict[str, None] = {}
    pool4 = [p for _, ps in v4 for p in ps if p[0] >= 16]
    pool6 = [p for _, ps in v6 for p in ps if p[0] >= 32]
    want4 = size * 4 // 5
    for _ in range(size * 20):
        if len(out) >= size:
            break
        if (len(out) < want4 or not pool6) and pool4:
            k = rng.choice(pool4)
            out[f"{prefix_to_str(bytes((16,)) + k[1:3], 1)} le 24"] = None
        elif pool6:
            k = rng.choice(pool6)
            out[f"{prefix_to_str(bytes((32,)) + k[1:5], 2)} le 48"] = None
        else:
            break
    return list(out)


def ixp_config_text(entries: list[str]) -> str:
    """``examples/ixp-route-server.toml`` with its registered-prefix set replaced by ``entries``."""
    with open(os.path.join(ROOT, "examples", "ixp-route-server.toml"), encoding="utf-8") as f:
        text = f.read()
    listed = ", ".join(f'"{e}"' for e in entries)
    pattern = r"(\[sets\.prefix\.as3333-irr\][^\n]*\nprefixes = )\[[^\]]*\]"
    text, n = re.subn(pattern, rf"\g<1>[{listed}]", text)
    assert n == 1, "examples/ixp-route-server.toml changed shape"
    return text


def build_chain(entries: list[str]):
    config = parse_config(ixp_config_text(entries))
    neighbor = config.neighbors[0]
    return chain(neighbor.import_policy, registry(config.sets, config.policies)), config


def for_feed(scale: float, next_hop4: str, next_hop6: str, asn: int = PEER_AS) -> dict:
    """The IXP filter for bench/bgp_feeder.py's table, and what of that table it accepts.

    ``policies``: the ``[sets]`` and ``[policies]`` tables, to append to a
    config whose neighbor names ``ixp-in``; ``v4`` / ``v6``: prefixes accepted.
    """
    from bench.bgp_feeder import internet_table

    v4, v6 = internet_table(scale, next_hop4, next_hop6, asn)
    entries = registered_set(v4, v6, SET_SIZE) + ["0.0.0.0/0 le 24", "::/0 le 48"]
    text = ixp_config_text(entries)
    policy, config = build_chain(entries)
    peer = PeerInfo(address="198.51.100.2", remote_as=asn, local_as=config.bgp.local_as,
                    router_id="198.51.100.2")
    counts = {}
    for name, family, groups in (("v4", (1, 1), v4), ("v6", (2, 1), v6)):
        counts[name] = sum(
            sum(1 for out in policy.many(peer, family, prefixes, attrs) if out is not None)
            for attrs, prefixes in groups)
    start = text.index("[sets.")
    end = text.index("[[neighbors]]")
    return {"policies": text[start:end], "set": len(entries), **counts}


def run(scale: float) -> dict:
    tune_gc()
    v4, v6 = scaled(scale, first_as=PEER_AS)
    entries = registered_set(v4, v6, SET_SIZE)
    policy, config = build_chain(entries)
    peer = PeerInfo(address="198.51.100.2", remote_as=PEER_AS, local_as=config.bgp.local_as,
                    router_id="198.51.100.2")
    baseline = chain(["accept-all"])
    timings = {}
    for name, p in (("accept-all", baseline), ("ixp", policy)):
        routes = accepted = 0
        gc.collect()
        t = time.perf_counter()
        for family, groups in (((1, 1), v4), ((2, 1), v6)):
            for attrs, prefixes in groups:
                for prefix in prefixes:
                    if p(peer, family, prefix, attrs) is not None:
                        accepted += 1
                routes += len(prefixes)
        timings[name] = (time.perf_counter() - t, accepted)
    # The same filter called once per UPDATE (Chain.many), as the RIB can.
    policy, config = build_chain(entries)  # fresh caches
    gc.collect()
    t = time.perf_counter()
    batched = 0
    for family, groups in (((1, 1), v4), ((2, 1), v6)):
        for attrs, prefixes in groups:
            for out in policy.many(peer, family, prefixes, attrs):
                if out is not None:
                    batched += 1
    timings["many"] = (time.perf_counter() - t, batched)
    assert batched == timings["ixp"][1], "many() and per-prefix calls disagree"
    elapsed, accepted = timings["ixp"]
    # The same loop through accept-all, in the same run: what the figure is
    # to be read against on a loaded machine.
    return {"routes": routes, "accepted": accepted, "seconds": elapsed, "set": len(entries),
            "terms": len(config.policies[0][1].terms), "baseline": timings["accept-all"][0],
            "many": timings["many"][0]}


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__)
    ap.add_argument("--scale", type=float, default=1.0)
    ap.add_argument("--for-feed", action="store_true",
                    help="print the filter and its accepted counts for bench/bgp_feeder.py's table (JSON)")
    ap.add_argument("--next-hop4", default="192.0.2.1")
    ap.add_argument("--next-hop6", default="2001:db8::1")
    ap.add_argument("--asn", type=int, default=PEER_AS)
    args = ap.parse_args()
    if args.for_feed:
        import json

        print(json.dumps(for_feed(args.scale, args.next_hop4, args.next_hop6, args.asn)))
        return
    r = run(args.scale)
    rate = r["routes"] / r["seconds"] if r["seconds"] else 0.0
    base = r["routes"] / r["baseline"] if r["baseline"] else 0.0
    many = r["routes"] / r["many"] if r["many"] else 0.0
    print(f"policy: {rate:,.0f} routes/s  one call per UPDATE (Chain.many): {many:,.0f} routes/s  "
          f"({r['routes']:,} routes in {r['seconds']:.2f} s, "
          f"{r['accepted'] / max(1, r['routes']):.0%} accepted; {r['terms']} terms, "
          f"{r['set']:,}-entry prefix set, AS-path regex; the same loop through accept-all: "
          f"{base:,.0f} routes/s)")


if __name__ == "__main__":
    main()
