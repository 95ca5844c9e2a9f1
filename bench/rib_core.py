"""RIB core throughput and memory on an Internet-shaped table.

One eBGP peer sends the synthetic full table (``bench/synthetic.py``), as
UPDATE bytes decoded by ``bgpd.wire``; the RIB takes it through Adj-RIB-In,
the decision process and one eBGP receiving peer's update group, whose sink
only counts octets.  Driven synchronously with ``Rib.drain()`` every few
hundred UPDATEs, the way reactor turns would interleave.  Prints one line:

``rib_core: N prefixes in T s = R prefixes/s end to end; peak RSS X MB;
RSS per prefix B bytes; out: M UPDATEs, O MB``

    .venv/bin/python bench/rib_core.py                # full table
    .venv/bin/python bench/rib_core.py --scale 0.02   # quick smoke run
"""

from __future__ import annotations

import argparse
import gc
import os
import resource
import sys
import time

sys.path.insert(0, os.path.join(os.path.dirname(os.path.abspath(__file__)), ".."))

from bench import synthetic  # noqa: E402
from bench.synthetic import scaled  # noqa: E402
from bgpd.rib import Rib, RibOptions  # noqa: E402
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


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__)
    ap.add_argument("--scale", type=float, default=1.0)
    ap.add_argument("--drain-every", type=int, default=200, help="UPDATEs between drain() calls")
    ap.add_argument("--default-gc", action="store_true",
                    help="keep Python's default GC thresholds (the daemon raises them)")
    args = ap.parse_args()
    if not args.default_gc:
        # A RIB is a million long-lived containers; the default gen-0
        # threshold (700) makes the collector rescan them far too often.
        tune_gc()  # what the daemon runs with
    neg = Negotiated(as4=True, ibgp=False, peer_as=65001)
    note = ""
    try:
        v4, v6 = scaled(args.scale)
    except OverflowError:
        # bench/synthetic.py runs past 2**32 at full scale (its /16-/17 share
        # plus holes); move those to /24 so the table fits, and say so.
        synthetic.V4_LENGTHS = [(24, 0.63)] + [x for x in synthetic.V4_LENGTHS if x[0] not in (24, 16, 17)]
        v4, v6 = scaled(args.scale)
        note = "; v4 /16-/17 share moved to /24 (synthetic.py overflows)"
    n_prefixes = sum(len(p) for _, p in v4) + sum(len(p) for _, p in v6)
    bodies = encode(v4, 1, neg) + encode(v6, 2, neg)
    del v4, v6
    gc.collect()
    before = rss()

    rib = Rib("192.0.2.1", 65000, options=RibOptions(mrai_ebgp=0.0), call_later=_never)
    src = make_peer("192.0.2.2", 65001, local_address="192.0.2.1")
    dst = make_peer("198.51.100.2", 65002, local_address="198.51.100.1")
    families = [IPV4_UNICAST, IPV6_UNICAST]
    rib.add_peer(src, families, neg, CountingSink())
    sink = CountingSink()
    rib.add_peer(dst, families, Negotiated(as4=True, peer_as=65002), sink)
    cache = AttributeCache()
    receive = rib.receive
    every = args.drain_every
    clock = time.perf_counter
    decode_s = 0.0
    t = clock()
    for i, body in enumerate(bodies):
        t0 = clock()
        u = decode_update(body, neg, cache)
        decode_s += clock() - t0
        receive(src, u)
        if i % every == every - 1:
            rib.drain()
    rib.drain()
    elapsed = clock() - t
    del bodies
    gc.collect()
    after = rss()
    peak = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss * 1024
    loc = rib.loc_rib_size(IPV4_UNICAST) + rib.loc_rib_size(IPV6_UNICAST)
    assert loc == n_prefixes, (loc, n_prefixes)
    print(f"rib_core: {n_prefixes} prefixes in {elapsed:.1f} s = {n_prefixes / elapsed:,.0f} prefixes/s "
          f"end to end; peak RSS {peak / 2**20:,.0f} MB; RSS per prefix "
          f"{(after - before) / n_prefixes:,.0f} bytes; out: {sink.messages} UPDATEs, "
          f"{sink.octets / 2**20:,.1f} MB; decode {decode_s:.1f} s, rib {elapsed - decode_s:.1f} s "
          f"({n_prefixes / (elapsed - decode_s):,.0f} prefixes/s); "
          f"gc {'default' if args.default_gc else 'tuned'}{note}")


if __name__ == "__main__":
    main()
