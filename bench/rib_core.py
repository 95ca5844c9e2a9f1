"""RIB core throughput and memory on an Internet-shaped table.

One eBGP peer sends the synthetic full table (``bench/synthetic.py``), as
UPDATE bytes decoded by ``bgpd.wire``; the RIB takes it through Adj-RIB-In,
the decision process and one eBGP receiving peer's update group, whose sink
only counts octets.  Driven synchronously with ``Rib.drain()`` every few
hundred UPDATEs, the way reactor turns would interleave.  Prints one line:

``rib_core: N prefixes in T s = R paths/s end to end; peak RSS X MB;
RSS per prefix B bytes; out: M UPDATEs, O MB``

With ``--feeders N`` N eBGP peers send the table, one after the other, each
with its own first AS and next hop as ``bench/rib_scale.py``'s feeders do
(feeder 1 AS 65001 at 192.0.2.2, feeder K > 1 AS 65010 + K at 192.0.2.(K+1)),
so that no attribute set is shared between feeders and the best paths mix;
the line then also says the RSS per *path*, (RSS after - RSS before) / (N *
prefixes).  ``--breakdown`` prints, once, what one attribute set and its path
cost (``sys.getsizeof`` of each object it holds alone).

    .venv/bin/python bench/rib_core.py                # full table
    .venv/bin/python bench/rib_core.py --scale 0.02   # quick smoke run
    .venv/bin/python bench/rib_core.py --feeders 4 --breakdown
"""

from __future__ import annotations

import argparse
import ast
import gc
import os
import resource
import sys
import time

sys.path.insert(0, os.path.join(os.path.dirname(os.path.abspath(__file__)), ".."))

from bench import synthetic  # noqa: E402
from bench.synthetic import scaled  # noqa: E402
from bgpd.hotpath import _source_path, describe  # noqa: E402
from bgpd.rib import Rib, RibOptions  # noqa: E402
from bgpd.rib.route import PeerInfo  # noqa: E402
from bgpd.rib.testing import CountingSink, make_peer  # noqa: E402
from bgpd.runtime import tune_gc  # noqa: E402
from bgpd.wire.attributes import AttributeCache  # noqa: E402
from bgpd.wire.constants import HEADER_LEN, IPV4_UNICAST, IPV6_UNICAST  # noqa: E402
from bgpd.wire.negotiated import Negotiated  # noqa: E402
from bgpd.wire.update import decode_update, pack_reach  # noqa: E402

_PAGE = os.sysconf("SC_PAGE_SIZE")


def rss() -> int:
    with open("/proc/self/statm") as f:
        return int(f.read().split()[1]) * _PAGE


class _Handle:
    def cancel(self) -> None:
        pass


def _never(delay: float, fn: object, *args: object) -> _Handle:
    # drain() does the work; nothing is ever scheduled for real.
    return _Handle()


def encode(groups: list, afi: int, neg: Negotiated) -> list[bytes]:
    bodies = []
    for attrs, prefixes in groups:
        for msg in pack_reach(afi, 1, attrs, prefixes, neg):
            bodies.append(msg[HEADER_LEN:])
    return bodies


def feeder_plan(n: int) -> list[tuple[str, int, str]]:
    """(address = IPv4 next hop, AS, IPv6 next hop) of feeders 1..n."""
    return [(f"192.0.2.{k + 1}", 65001 if k == 1 else 65010 + k, f"2001:db8::{k + 1:x}")
            for k in range(1, n + 1)]


def _owned(obj: object, seen: set[int]) -> int:
    """``sys.getsizeof`` of ``obj`` if nothing outside the set shares it, else 0 (counted once)."""
    if obj is None or isinstance(obj, bool) or id(obj) in seen:
        return 0
    if isinstance(obj, int) and -5 <= obj <= 256:
        return 0  # small ints are the interpreter's
    if isinstance(obj, (bytes, str, tuple)) and len(obj) == 0:
        return 0  # the empty ones are shared singletons
    seen.add(id(obj))
    # References: the set's slot, getrefcount's argument, this frame's name;
    # the decoder's shared next-hop strings and the like have more.
    if sys.getrefcount(obj) > 4 and not isinstance(obj, tuple):
        return 0
    size = (sys.getsizeof(obj) + 15) // 16 * 16  # (the allocator's rounding)
    if isinstance(obj, tuple):
        size += sum(_owned(x, seen) for x in obj)
    return size


def _properties(cls: type) -> set[str]:
    """The names of ``cls``'s properties, read from its source (compiled, both are getsets)."""
    tree = ast.parse(open(_source_path(cls.__module__)).read())
    for node in ast.walk(tree):
        if isinstance(node, ast.ClassDef) and node.name == cls.__name__:
            return {f.name for f in node.body if isinstance(f, ast.FunctionDef)
                    and any(isinstance(d, ast.Name) and d.id == "property" for d in f.decorator_list)}
    return set()


def _fields(obj: object) -> list[str]:
    """The names of ``obj``'s stored fields (slots; getset descriptors when compiled)."""
    skip = _properties(type(obj)) | {"__weakref__", "__dict__"}
    return [name for name, v in vars(type(obj)).items()
            if type(v).__name__ in ("member_descriptor", "getset_descriptor") and name not in skip]


def breakdown(rib: Rib, src: PeerInfo) -> str:
    """What an attribute set of ``src`` costs, object by object, on average over its sets."""
    st = rib._peers[src.address]  # (a bench may look inside; nothing else does)
    intern = st.intern
    n = len(intern)
    sizes: dict[str, float] = {}
    seen: set[int] = set()
    first = next(iter(intern.values()))
    fields = [("", _fields(first.attrs)), ("Path.", _fields(first))]
    for key, path in intern.items():
        a = path.attrs
        for label, obj in (("PathAttributes", a), ("Path", path)):
            # What the allocator hands out: sizes round up to 16 octets.
            sizes[label] = sizes.get(label, 0) + (sys.getsizeof(obj) + 15) // 16 * 16
            seen.add(id(obj))
        if key is not a:
            what = "intern key (path id, attrs)"
            sizes[what] = sizes.get(what, 0) + sys.getsizeof(key)
        for (label, names), obj in zip(fields, (a, path), strict=True):
            for name in names:
                if name in ("owner", "attrs"):
                    continue
                value = getattr(obj, name)
                if value is not getattr(obj, name):
                    continue  # a fresh object on each read: the field is stored unboxed, inline
                size = _owned(value, seen)
                if size:
                    what = f"{label}{name} ({type(getattr(obj, name)).__name__})"
                    sizes[what] = sizes.get(what, 0) + size
    lines = [f"breakdown: bytes per attribute set, mean over the {n:,} sets of feeder 1:"]
    total = 0.0
    for what, size in sizes.items():
        lines.append(f"  {what:<36} {size / n:6.1f}")
        total += size / n
    # A dict entry: the intern table's size over its entries (index + entry, at its fill).
    per_entry = sys.getsizeof(intern) / n
    lines.append(f"  {'intern dict, per entry':<36} {per_entry:6.1f}")
    total += per_entry
    lines.append(f"  {'total':<36} {total:6.1f}")
    return "\n".join(lines)


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__)
    ap.add_argument("--scale", type=float, default=1.0)
    ap.add_argument("--drain-every", type=int, default=200, help="UPDATEs between drain() calls")
    ap.add_argument("--default-gc", action="store_true",
                    help="keep Python's default GC thresholds (the daemon raises them)")
    ap.add_argument("--feeders", type=int, default=1, help="eBGP peers each sending the table")
    ap.add_argument("--breakdown", action="store_true",
                    help="print what one attribute set costs, object by object")
    args = ap.parse_args()
    if not args.default_gc:
        # A RIB is a million long-lived containers; the default gen-0
        # threshold (700) makes the collector rescan them far too often.
        tune_gc()  # what the daemon runs with
    note = ""
    feeders = []  # (PeerInfo, Negotiated, UPDATE bodies)
    for address, asn, address6 in feeder_plan(args.feeders):
        neg = Negotiated(as4=True, ibgp=False, peer_as=asn)
        kw = {"first_as": asn, "next_hop4": address, "next_hop6": address6}
        try:
            v4, v6 = scaled(args.scale, **kw)
        except OverflowError:
            # bench/synthetic.py runs past 2**32 at full scale (its /16-/17 share
            # plus holes); move those to /24 so the table fits, and say so.
            synthetic.V4_LENGTHS = ([(24, 0.63)]
                                    + [x for x in synthetic.V4_LENGTHS if x[0] not in (24, 16, 17)])
            v4, v6 = scaled(args.scale, **kw)
            note = "; v4 /16-/17 share moved to /24 (synthetic.py overflows)"
        n_prefixes = sum(len(p) for _, p in v4) + sum(len(p) for _, p in v6)
        src = make_peer(address, asn, local_address="192.0.2.1")
        feeders.append((src, neg, encode(v4, 1, neg) + encode(v6, 2, neg)))
        del v4, v6
    n_paths = n_prefixes * len(feeders)
    gc.collect()
    before = rss()

    rib = Rib("192.0.2.1", 65000, options=RibOptions(mrai_ebgp=0.0), call_later=_never)
    dst = make_peer("198.51.100.2", 65002, local_address="198.51.100.1")
    families = [IPV4_UNICAST, IPV6_UNICAST]
    for src, neg, _ in feeders:
        rib.add_peer(src, families, neg, CountingSink())
    sink = CountingSink()
    rib.add_peer(dst, families, Negotiated(as4=True, peer_as=65002), sink)
    cache = AttributeCache()
    receive = rib.receive
    every = args.drain_every
    clock = time.perf_counter
    decode_s = 0.0
    t = clock()
    for k, (src, neg, bodies) in enumerate(feeders):
        for i, body in enumerate(bodies):
            t0 = clock()
            u = decode_update(body, neg, cache)
            decode_s += clock() - t0
            receive(src, u)
            if i % every == every - 1:
                rib.drain()
        rib.drain()
        feeders[k] = (src, neg, [])
    elapsed = clock() - t
    del bodies
    gc.collect()
    after = rss()
    peak = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss * 1024
    loc = rib.loc_rib_size(IPV4_UNICAST) + rib.loc_rib_size(IPV6_UNICAST)
    assert loc == n_prefixes, (loc, n_prefixes)
    per_path = ""
    if len(feeders) > 1:
        per_path = f"; {len(feeders)} feeders, RSS per path {(after - before) / n_paths:,.0f} bytes"
    print(f"rib_core: {n_prefixes} prefixes in {elapsed:.1f} s = {n_paths / elapsed:,.0f} paths/s "
          f"end to end; peak RSS {peak / 2**20:,.0f} MB; RSS per prefix "
          f"{(after - before) / n_prefixes:,.0f} bytes{per_path}; out: {sink.messages} UPDATEs, "
          f"{sink.octets / 2**20:,.1f} MB; decode {decode_s:.1f} s, rib {elapsed - decode_s:.1f} s "
          f"({n_paths / (elapsed - decode_s):,.0f} paths/s); "
          f"gc {'default' if args.default_gc else 'tuned'}; {describe()}{note}")
    if args.breakdown:
        print(breakdown(rib, feeders[0][0]))


if __name__ == "__main__":
    main()
