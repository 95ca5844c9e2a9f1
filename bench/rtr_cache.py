"""A local RTR cache serving N synthetic VRPs, and the RTR client's load time (RFC 8210 section 8).

The cache is :class:`bgpd.rpki.testing.CacheServer` (bgpd's own PDU codec)
listening on loopback.  ``bench/rpki.py`` uses :func:`serve` to time the
whole load into the VRP table; run alone this script times the client's
part only: the Reset Query, then every Prefix PDU framed, decoded,
checked against the cache's set and handed to a sink that only counts,
until End of Data.  Prints one line:

``rtr: N VRPs decoded and handed to the sink in S s (R VRPs/s), client keeps M MB (peak P MB),
longest reactor stall T s`` (one line)

(client keeps: the heap the client still holds once the load is in, what it
needs for RFC 8210 section 5.6's duplicate and unknown-withdrawal checks;
peak: its most during the load.  Both by ``tracemalloc`` in a separate run of
the same bytes fed to the client directly, :func:`client_memory`; the sink's
own table is not in them, bench/rpki.py measures that.)

    python3 bench/rtr_cache.py                 # 800,000 VRPs
    python3 bench/rtr_cache.py --vrps 20000    # quick smoke run
    python3 bench/rtr_cache.py --serve 3323    # just serve them (for another client)
"""

from __future__ import annotations

import argparse
import gc
import os
import sys
import time
import tracemalloc
from collections.abc import Sequence
from typing import Any

sys.path.insert(0, os.path.join(os.path.dirname(os.path.abspath(__file__)), ".."))

from bgpd.rpki.records import Aspa, Vrp  # noqa: E402
from bgpd.rpki.rtr import CacheSettings, RTRFactory  # noqa: E402
from bgpd.rpki.testing import CacheServer, synthetic_vrps  # noqa: E402
from bgpd.runtime import tune_gc  # noqa: E402

__all__ = ["CountingSink", "client_memory", "serve"]


class CountingSink:
    """The trivial sink: counts what it is handed, applies nothing."""

    def __init__(self, on_end: Any = None) -> None:
        self.announced = 0
        self.withdrawn = 0
        self.serial: int | None = None
        self.on_end = on_end

    def begin(self, cache: str, reset: bool) -> None:
        pass

    def vrps(self, cache: str, announced: Sequence[Vrp], withdrawn: Sequence[Vrp]) -> None:
        self.announced += len(announced)
        self.withdrawn += len(withdrawn)

    def aspas(self, cache: str, announced: Sequence[Aspa], withdrawn: Sequence[int]) -> None:
        pass

    def end(self, cache: str, serial: int) -> None:
        self.serial = serial
        if self.on_end is not None:
            self.on_end()

    def abort(self, cache: str) -> None:
        pass

    def drop(self, cache: str) -> None:
        pass

    def has_vrp(self, cache: str, vrp: Vrp) -> bool:
        # Asked for a Serial Query's answer only; this bench times a Reset Query's.
        return False


def serve(reactor: Any, n: int, port: int = 0, interface: str = "127.0.0.1") -> tuple[CacheServer, Any]:
    """Listen with a cache of ``n`` synthetic VRPs; returns (cache, listening port).

    The Prefix PDUs are encoded before this returns, so a timed client
    measures its own work, not the cache's.
    """
    cache = CacheServer(synthetic_vrps(n))
    cache.response(1, None)
    return cache, reactor.listenTCP(port, cache, interface=interface)


def client_memory(cache: CacheServer) -> tuple[float, float]:
    """MB the RTR client holds after a full load from ``cache``, and its peak during the load.

    The cache's Reset Query answer is fed to one client connection on a
    StringTransport, 64 KB per read as a socket would, with a sink that keeps
    nothing; ``tracemalloc`` counts only what is allocated from then on.
    """
    from twisted.internet.testing import MemoryReactorClock, StringTransport

    data = cache.response(1, None)
    gc.collect()
    tracemalloc.start()
    sink = CountingSink()
    factory = RTRFactory(CacheSettings(name="probe", address="127.0.0.1"), sink, MemoryReactorClock())
    factory.start()
    proto = factory.buildProtocol(None)
    proto.makeConnection(StringTransport())
    for i in range(0, len(data), 65536):
        proto.dataReceived(data[i:i + 65536])
    gc.collect()
    kept, peak = tracemalloc.get_traced_memory()
    tracemalloc.stop()
    if sink.announced != len(cache.vrps) or sink.serial is None:
        raise SystemExit(f"rtr: the memory probe got {sink.announced} of {len(cache.vrps)} VRPs")
    factory.shutdown()
    return kept / 1e6, peak / 1e6


def main(argv: Sequence[str] | None = None) -> int:
    ap = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    ap.add_argument("--vrps", type=int, default=800_000)
    ap.add_argument("--serve", type=int, metavar="PORT", help="only serve, on this loopback port")
    args = ap.parse_args(argv)
    tune_gc()  # as the daemon runs
    from twisted.internet import reactor

    cache, port = serve(reactor, args.vrps, args.serve or 0)
    if args.serve:
        print(f"rtr cache: {len(cache.vrps)} VRPs on 127.0.0.1:{port.getHost().port}", flush=True)
        reactor.run()
        return 0
    n = len(cache.vrps)
    started: list[float] = []
    result: dict[str, float] = {}

    def done() -> None:
        result["seconds"] = time.perf_counter() - started[0]
        reactor.stop()

    # The reactor's longest stall while the transfer runs: a 10 ms tick that notes its gaps.
    from twisted.internet.task import LoopingCall

    last = [time.perf_counter()]
    stall = [0.0]

    def tick() -> None:
        now = time.perf_counter()
        stall[0] = max(stall[0], now - last[0])
        last[0] = now

    ticker = LoopingCall(tick)
    ticker.start(0.01)
    sink = CountingSink(done)
    settings = CacheSettings(name="bench", address="127.0.0.1", port=port.getHost().port)
    factory = RTRFactory(settings, sink, reactor)
    started.append(time.perf_counter())
    factory.start()
    reactor.callLater(600, reactor.stop)  # bounded: a broken client must not hang the bench
    reactor.run()
    if "seconds" not in result or sink.announced != n:
        print(f"rtr: FAILED: {sink.announced} of {n} VRPs by End of Data", file=sys.stderr)
        return 1
    s = result["seconds"]
    factory.shutdown()
    port.stopListening()
    # What the client keeps per cache to tell duplicates and unknown withdrawals.
    kept, peak = client_memory(cache)
    print(f"rtr: {n} VRPs decoded and handed to the sink in {s:.2f} s ({n / s:,.0f} VRPs/s), "
          f"client keeps {kept:.0f} MB (peak {peak:.0f} MB), longest reactor stall {stall[0]:.3f} s")
    return 0


if __name__ == "__main__":
    sys.exit(main())
