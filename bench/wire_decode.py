"""Wire codec throughput on an Internet-shaped table (RFC 4271 4.3, RFC 4760).

Prints one line:
``wire_decode: compiled decode: N prefixes/s ... | pure decode: M prefixes/s ...``
where decode is IPv4 prefixes per second (wall clock, and per CPU second of the process: the
latter is what a loaded machine disturbs least) through framing + UPDATE decode of
a realistic stream (about 4 prefixes per UPDATE, every UPDATE with its own
attributes), and encode the same table packed back into UPDATEs; then IPv6
figures.  The decoder runs with the ``Negotiated`` of a real eBGP session
(4-octet AS, first-AS enforcement against the feeder's AS, IPv4 and IPv6
unicast, our own address on the connection), not the codec's default.

Each variant runs in its own interpreter: the compiled hot path as
installed, and the pure-Python fallback (``BGPD_PURE_PYTHON=1``).  A variant
that is not available (no compiled build) is reported as such.

    .venv/bin/python bench/wire_decode.py            # full table (~1.04M + 225k prefixes)
    .venv/bin/python bench/wire_decode.py --scale 0.02   # quick smoke run
    .venv/bin/python bench/wire_decode.py --variant pure   # one variant, this interpreter
"""

from __future__ import annotations

import argparse
import gc
import os
import subprocess
import sys
import time

sys.path.insert(0, os.path.join(os.path.dirname(os.path.abspath(__file__)), ".."))

from bench.synthetic import scaled  # noqa: E402
from bgpd import hotpath  # noqa: E402
from bgpd.runtime import GC_THRESHOLDS, tune_gc  # noqa: E402
from bgpd.wire.attributes import AttributeCache  # noqa: E402
from bgpd.wire.constants import IPV4_UNICAST, IPV6_UNICAST  # noqa: E402
from bgpd.wire.message import Framer  # noqa: E402
from bgpd.wire.negotiated import Negotiated  # noqa: E402
from bgpd.wire.update import decode_update, pack_reach  # noqa: E402


def encode(groups: list, afi: int, neg: Negotiated) -> list[bytes]:
    out = []
    for attrs, prefixes in groups:
        out.extend(pack_reach(afi, 1, attrs, prefixes, neg))
    return out


def decode(stream: bytes, neg: Negotiated) -> tuple[int, int]:
    framer = Framer(neg.max_message_len)
    cache = AttributeCache()
    n_prefixes = 0
    n_updates = 0
    # Hold what a RIB holds, so that interning, allocation and the collector
    # cost what they cost in the daemon: the attribute sets and the prefix
    # keys.  Not the Update objects and their lists, which the daemon drops
    # once the RIB has taken the routes (holding them made the collector scan
    # two more objects per UPDATE than the daemon ever does).
    attributes = []
    prefixes: list[bytes] = []
    for off in range(0, len(stream), 65536):
        for _msg_type, body in framer.feed(stream[off:off + 65536]):
            u = decode_update(body, neg, cache)
            n_updates += 1
            if u.nlri:
                n_prefixes += len(u.nlri)
                attributes.append(u.attributes)
                prefixes += u.nlri
            mp = u.mp_reach
            if mp is not None:
                n_prefixes += len(mp.nlri)
                attributes.append(mp.attributes)
                prefixes += mp.nlri
    return n_prefixes, n_updates


#: the feeder's AS in bench.synthetic: every AS_PATH starts with it
PEER_AS = 65001


def ebgp_negotiated() -> Negotiated:
    """What bgpd.session.negotiation gives an eBGP session with a 4-octet-AS peer."""
    return Negotiated(
        as4=True, ibgp=False, peer_as=PEER_AS, enforce_first_as=True,
        families=frozenset({IPV4_UNICAST, IPV6_UNICAST}),
    ).with_local_addresses(frozenset({"192.0.2.1", "2001:db8::1"}))


def run_one(scale: float) -> str:
    """Measure this interpreter's variant; return its figures as text."""
    tune_gc()  # what the daemon runs with
    t = time.perf_counter()
    v4, v6 = scaled(scale)
    gen_s = time.perf_counter() - t
    neg = ebgp_negotiated()
    n4 = sum(len(p) for _, p in v4)
    n6 = sum(len(p) for _, p in v6)

    gc.collect()
    t = time.perf_counter()
    msgs4 = encode(v4, 1, neg)
    enc4_s = time.perf_counter() - t
    t = time.perf_counter()
    msgs6 = encode(v6, 2, neg)
    enc6_s = time.perf_counter() - t
    stream4 = b"".join(msgs4)
    stream6 = b"".join(msgs6)
    del msgs4, msgs6

    gc.collect()
    t = time.perf_counter()
    c = time.process_time()
    got4, upd4 = decode(stream4, neg)
    dec4_s = time.perf_counter() - t
    cpu4_s = time.process_time() - c
    gc.collect()
    t = time.perf_counter()
    got6, upd6 = decode(stream6, neg)
    dec6_s = time.perf_counter() - t
    assert got4 == n4 and got6 == n6, (got4, n4, got6, n6)
    return (
        f"{hotpath.VARIANT} decode: {n4 / dec4_s:,.0f} prefixes/s ({n4 / cpu4_s:,.0f} per CPU second)  "
        f"encode: {n4 / enc4_s:,.0f} prefixes/s  "
        f"ipv6 decode: {n6 / dec6_s:,.0f} prefixes/s  ipv6 encode: {n6 / enc6_s:,.0f} prefixes/s  "
        f"updates/s: {upd4 / dec4_s:,.0f}"
    ), (
        f"ipv4: {n4:,} prefixes in {upd4:,} UPDATEs ({len(stream4) / 1e6:.1f} MB)  "
        f"ipv6: {n6:,} in {upd6:,} ({len(stream6) / 1e6:.1f} MB)  table generated in {gen_s:.1f}s  "
        f"gc thresholds {GC_THRESHOLDS}  python {sys.version.split()[0]}"
    )


def run_variant(variant: str, scale: float) -> tuple[str, str]:
    """Run one variant in a fresh interpreter (the choice is made at import)."""
    env = dict(os.environ)
    env.pop("BGPD_PURE_PYTHON", None)
    if variant == "pure":
        env["BGPD_PURE_PYTHON"] = "1"
    r = subprocess.run([sys.executable, os.path.abspath(__file__), "--scale", str(scale),
                        "--variant", variant], env=env, capture_output=True, text=True,
                       timeout=3600, check=False)
    if r.returncode != 0:
        return f"{variant}: failed ({r.stderr.strip().splitlines()[-1:]})", ""
    figures, table = r.stdout.strip().split("\n")[-1].split(" || ")
    if not figures.startswith(variant):
        return f"{variant}: not built (this install runs {figures.split()[0]})", table
    return figures, table


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__)
    ap.add_argument("--scale", type=float, default=1.0)
    ap.add_argument("--variant", choices=("compiled", "pure"), default=None,
                    help="measure only this interpreter's variant (set BGPD_PURE_PYTHON=1 for pure)")
    args = ap.parse_args()
    if args.variant is not None:
        print(" || ".join(run_one(args.scale)))
        return
    compiled, table = run_variant("compiled", args.scale)
    pure, table_p = run_variant("pure", args.scale)
    print(f"wire_decode: {compiled} | {pure} | {table or table_p}")


if __name__ == "__main__":
    main()
