"""MRT dump of an Internet-shaped Loc-RIB (RFC 6396 TABLE_DUMP_V2): time, size, reactor turns.

The synthetic full table (``bench/synthetic.py``) goes into a RIB from one
eBGP peer; then ``bgpd.monitor.mrt.MrtDump`` writes the Loc-RIB on a real
reactor, chunks on the reactor thread and writes (and gzip, with
``--compression gzip``) on the reactor's thread pool, as the daemon does.
Prints one line::

    mrt: 1,265,000 prefixes, 1,265,001 records, 95.1 MB in 9.8 s = 129,000 prefixes/s;
    longest reactor turn 21 ms (2,000 prefixes), 633 turns; longest reactor lag 35 ms; none

    .venv/bin/python bench/mrt.py                      # full table
    .venv/bin/python bench/mrt.py --scale 0.02 --compression gzip
"""

from __future__ import annotations

import argparse
import os
import sys
import tempfile
import time

sys.path.insert(0, os.path.join(os.path.dirname(os.path.abspath(__file__)), ".."))

from bench import synthetic  # noqa: E402
from bench.synthetic import scaled  # noqa: E402
from bgpd.rib import Rib, RibOptions  # noqa: E402
from bgpd.rib.testing import CountingSink, announce, make_peer  # noqa: E402
from bgpd.runtime import tune_gc  # noqa: E402
from bgpd.wire.constants import IPV4_UNICAST, IPV6_UNICAST  # noqa: E402
from bgpd.wire.negotiated import Negotiated  # noqa: E402


class _Handle:
    def cancel(self) -> None:
        pass


def _never(delay: float, fn: object, *args: object) -> _Handle:
    return _Handle()


def build(scale: float) -> tuple[Rib, int, str]:
    note = ""
    try:
        v4, v6 = scaled(scale)
    except OverflowError:
        # As bench/rib_core.py: synthetic.py runs past 2**32 at full scale.
        synthetic.V4_LENGTHS = [(24, 0.63)] + [x for x in synthetic.V4_LENGTHS if x[0] not in (24, 16, 17)]
        v4, v6 = scaled(scale)
        note = "; v4 /16-/17 share moved to /24 (synthetic.py overflows)"
    rib = Rib("192.0.2.1", 65000, options=RibOptions(mrai_ebgp=0.0), call_later=_never)
    src = make_peer("192.0.2.2", 65001, local_address="192.0.2.1")
    rib.add_peer(src, [IPV4_UNICAST, IPV6_UNICAST], Negotiated(as4=True, ibgp=False, peer_as=65001),
                 CountingSink())
    n = 0
    for fam, groups in ((IPV4_UNICAST, v4), (IPV6_UNICAST, v6)):
        for i, (attrs, prefixes) in enumerate(groups):
            rib.receive(src, announce(attrs, prefixes, fam))
            n += len(prefixes)
            if i % 200 == 199:
                rib.drain()
    rib.drain()
    return rib, n, note


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    ap.add_argument("--scale", type=float, default=1.0)
    ap.add_argument("--compression", choices=("none", "gzip", "bz2"), default="none")
    args = ap.parse_args()
    tune_gc()
    rib, n, note = build(args.scale)
    assert rib.loc_rib_size(IPV4_UNICAST) + rib.loc_rib_size(IPV6_UNICAST) == n

    from twisted.internet import reactor, task
    from twisted.internet.threads import deferToThread

    from bgpd.monitor.mrt import MrtDump

    out: dict = {}
    with tempfile.TemporaryDirectory(prefix="bench-mrt-") as tmp:
        path = os.path.join(tmp, "rib.mrt")
        dump = MrtDump(rib, "loc-rib", path, [], "192.0.2.1", 65000, reactor.callLater,
                       deferToThread, args.compression)
        turn = [0.0]
        step = dump._step

        def timed_step() -> None:
            t0 = time.perf_counter()
            step()
            turn[0] = max(turn[0], time.perf_counter() - t0)
            if os.environ.get("MRT_BENCH_TURNS"):
                print(f"turn {(time.perf_counter() - t0) * 1000:.1f} ms", file=sys.stderr)

        dump._step = timed_step  # the bench times each reactor turn of the dump
        lag = [0.0]
        due = [0.0]

        def probe() -> None:
            now = time.perf_counter()
            if due[0]:
                lag[0] = max(lag[0], now - due[0])
            due[0] = now + 0.01

        loop = task.LoopingCall(probe)

        def go() -> None:
            loop.start(0.01)
            t = time.perf_counter()
            d = dump.start()

            def done(result: object) -> None:
                out["result"] = result
                out["seconds"] = time.perf_counter() - t
                out["size"] = os.path.getsize(path)
                loop.stop()
                reactor.stop()

            def failed(f: object) -> None:
                out["error"] = f
                loop.stop()
                reactor.stop()

            d.addCallbacks(done, failed)

        reactor.callWhenRunning(go)
        reactor.run()
    if "error" in out:
        raise SystemExit(f"mrt: the dump failed: {out['error']}")
    r = out["result"]
    secs = out["seconds"]
    print(f"mrt: {r.prefixes:,} prefixes, {r.records:,} records, {r.bytes / 2**20:,.1f} MB "
          f"({out['size'] / 2**20:,.1f} MB on disk, {args.compression}) in {secs:.1f} s = "
          f"{r.prefixes / secs:,.0f} prefixes/s; longest reactor turn {turn[0] * 1000:,.0f} ms "
          f"({dump.largest_turn:,} prefixes), {dump.turns:,} turns; longest reactor lag "
          f"{lag[0] * 1000:,.0f} ms{note}")


if __name__ == "__main__":
    main()
