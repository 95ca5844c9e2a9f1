"""The gRPC API under a full table: ListRoutes, AddPaths and WatchRoutes.

A BgpdService on the real reactor with ``[api]`` on a Unix socket, and
each client in a process of its own, as bgpctl would be (this script run
with ``--client``).  A fake eBGP peer's table (``bench/synthetic.py``,
about 1.26 million paths at scale 1) goes into the RIB as decoded UPDATEs,
200 per reactor turn, while a WatchRoutes client reads as fast as it can
(the largest ``lag`` it saw, and whether it overflowed, are printed).  Then the whole Loc-RIB (both
families) is listed with ListRoutes, and 100,000 paths are originated in
one streamed AddPaths call (batches of 1,000).  A 10 ms LoopingCall
measures the reactor's longest stall during each phase.  Prints one line:

``api: ListRoutes N paths in T s = R paths/s (stall S s, longest GC G s,
bgpd CPU C s); AddPaths 100,000 paths in T s = R paths/s (stall S s, GC G s,
bgpd CPU C s); watch during the load (...): max lag L, overflow no, M
events; idle reactor stall S s``.  bgpd's CPU seconds (all its threads) are
printed because on a busy machine the wall clock says more about the
neighbours than about bgpd; the longest garbage collection of each phase
and the probe's worst gap on an idle reactor (2 s before the load) say how
much of a stall was the collector's or the machine's.

    python3 bench/api.py                 # full table (about 1.26 M paths)
    python3 bench/api.py --scale 0.01    # smoke run
"""

from __future__ import annotations

import argparse
import gc
import json
import os
import resource
import subprocess
import sys
import tempfile
import time

sys.path.insert(0, os.path.join(os.path.dirname(os.path.abspath(__file__)), ".."))

import grpc  # noqa: E402
from twisted.internet import defer, reactor, task, threads  # noqa: E402

from bench import synthetic  # noqa: E402
from bench.rib_core import encode  # noqa: E402
from bench.synthetic import scaled  # noqa: E402
from bgpd.api._gen.bgpd.v1 import routes_pb2, routes_pb2_grpc  # noqa: E402
from bgpd.config import parse_config  # noqa: E402
from bgpd.rib.testing import CountingSink, make_peer  # noqa: E402
from bgpd.service import BgpdService  # noqa: E402
from bgpd.wire.attributes import AttributeCache  # noqa: E402
from bgpd.wire.constants import IPV4_UNICAST, IPV6_UNICAST  # noqa: E402
from bgpd.wire.negotiated import Negotiated  # noqa: E402
from bgpd.wire.update import decode_update  # noqa: E402

CONFIG = """
[bgp]
local_as = 65000
router_id = "192.0.2.1"
listen_addresses = []

[api]
listen = "unix:{socket}"
"""


class StallProbe:
    """The reactor's longest gap between 10 ms ticks, per phase, and the longest GC pause in it.

    The collector's pauses are timed apart (``gc.callbacks``) because they
    stall the reactor whoever allocated: a stall no longer than the longest
    collection says little about the code under test.
    """

    def __init__(self) -> None:
        self.last = time.perf_counter()
        self.worst = 0.0
        self.gc_worst = 0.0
        self._gc_start = 0.0
        self.loop = task.LoopingCall(self.tick)
        gc.callbacks.append(self._gc)

    def _gc(self, phase: str, info: dict) -> None:
        if phase == "start":
            self._gc_start = time.perf_counter()
        else:
            self.gc_worst = max(self.gc_worst, time.perf_counter() - self._gc_start)

    def tick(self) -> None:
        now = time.perf_counter()
        self.worst = max(self.worst, now - self.last - 0.01)
        self.last = now

    def reset(self) -> float:
        worst, self.worst, self.last = self.worst, 0.0, time.perf_counter()
        return max(0.0, worst)

    def reset_gc(self) -> float:
        worst, self.gc_worst = self.gc_worst, 0.0
        return worst


def feed(rib, peer, bodies: list[bytes], neg: Negotiated, per_turn: int = 200, pace: float = 0.0):
    """Hand the RIB ``per_turn`` decoded UPDATEs per reactor turn; fires when all are handed over.

    ``pace``: at most this many UPDATEs a second (0: as fast as the reactor goes).
    """
    cache = AttributeCache()
    done: defer.Deferred = defer.Deferred()
    state = {"i": 0}

    def step() -> None:
        i = state["i"]
        for body in bodies[i:i + per_turn]:
            rib.receive(peer, decode_update(body, neg, cache))
        state["i"] = i + per_turn
        if state["i"] < len(bodies):
            reactor.callLater(per_turn / pace if pace else 0, step)
        else:
            done.callback(None)

    reactor.callLater(0, step)
    return done


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__)
    ap.add_argument("--scale", type=float, default=1.0)
    ap.add_argument("--originate", type=int, default=100_000)
    ap.add_argument("--pace", type=float, default=0.0,
                    help="feed the table at about this many prefixes/s (default: as fast as it goes)")
    ap.add_argument("--client", nargs=3, metavar=("MODE", "SOCKET", "N"), help=argparse.SUPPRESS)
    args = ap.parse_args()
    if args.client:
        client(args.client[0], args.client[1], int(args.client[2]))
        return
    neg = Negotiated(as4=True, ibgp=False, peer_as=65001)
    try:
        v4, v6 = scaled(args.scale)
    except OverflowError:  # as bench/rib_core.py: synthetic.py overflows 2**32 at full scale
        synthetic.V4_LENGTHS = [(24, 0.63)] + [x for x in synthetic.V4_LENGTHS if x[0] not in (24, 16, 17)]
        v4, v6 = scaled(args.scale)
    n_table = sum(len(p) for _, p in v4) + sum(len(p) for _, p in v6)
    bodies = encode(v4, 1, neg) + encode(v6, 2, neg)
    del v4, v6
    tmp = tempfile.mkdtemp(prefix="bench-api-")
    sock = os.path.join(tmp, "api.sock")
    svc = BgpdService(parse_config(CONFIG.format(socket=sock)), None, reactor)
    results: dict[str, object] = {}

    async def run() -> None:
        svc.startService()
        rib = svc.rib_service.rib
        probe = StallProbe()
        probe.loop.start(0.01)
        peer = make_peer("192.0.2.2", 65001, local_address="192.0.2.1")
        rib.add_peer(peer, [IPV4_UNICAST, IPV6_UNICAST], neg, CountingSink())
        # 0. the machine's own noise: the probe on an idle reactor for 2 s
        probe.reset()
        await task.deferLater(reactor, 2.0, lambda: None)
        results["idle_stall"] = probe.reset()
        probe.reset_gc()
        # 1. the load, watched by a client process
        watcher = subprocess.Popen(_client_argv("watch", sock, n_table), stdout=subprocess.PIPE, text=True)
        ready = await threads.deferToThread(watcher.stdout.readline)
        assert ready.strip() == "ready", ready
        probe.reset()
        t = time.perf_counter()
        await feed(rib, peer, bodies, neg, pace=args.pace / (n_table / len(bodies)) if args.pace else 0.0)
        for _ in range(6000):  # bounded: until the Loc-RIB holds the table (10 min at most)
            if rib.loc_rib_size(IPV4_UNICAST) + rib.loc_rib_size(IPV6_UNICAST) >= n_table:
                break
            await task.deferLater(reactor, 0.1, lambda: None)
        results["load_s"] = time.perf_counter() - t
        results["load_stall"] = probe.reset()
        results["load_gc"] = probe.reset_gc()
        out, _ = await threads.deferToThread(watcher.communicate, timeout=600)
        results["watch"] = json.loads(out)

        # 2. ListRoutes over the whole Loc-RIB, 3. AddPaths of 100,000 paths
        for name, arg in (("list", 0), ("add", args.originate)):
            probe.reset()
            probe.reset_gc()
            cpu = _cpu()
            r = await threads.deferToThread(subprocess.run, _client_argv(name, sock, arg),
                                            capture_output=True, text=True, timeout=900)
            if r.returncode != 0:
                raise RuntimeError(f"client {name} failed: {r.stderr[-2000:]}")
            results[name] = json.loads(r.stdout)
            results[name + "_stall"] = probe.reset()
            results[name + "_gc"] = probe.reset_gc()
            # bgpd's own CPU seconds (every thread): less disturbed by a busy machine than the wall clock
            results[name + "_cpu"] = _cpu() - cpu
        probe.loop.stop()
        await svc.stopService()

    def done(_: object) -> None:
        reactor.stop()

    def failed(f) -> None:
        f.printTraceback()
        results["error"] = True
        reactor.stop()

    reactor.callWhenRunning(lambda: defer.ensureDeferred(run()).addCallbacks(done, failed))
    reactor.run()
    for name in os.listdir(tmp):
        os.unlink(os.path.join(tmp, name))
    os.rmdir(tmp)
    if results.get("error"):
        sys.exit(1)
    w, lst, add = results["watch"], results["list"], results["add"]
    print(f"api: table {n_table:,} paths; ListRoutes {lst['n']:,} paths in "
          f"{lst['s']:.1f} s = {lst['n'] / lst['s']:,.0f} paths/s "
          f"(reactor stall {results['list_stall']:.2f} s, longest GC {results['list_gc']:.2f} s, "
          f"bgpd CPU {results['list_cpu']:.1f} s); "
          f"AddPaths {add['n']:,} paths in "
          f"{add['s']:.1f} s = {add['n'] / add['s']:,.0f} paths/s "
          f"(stall {results['add_stall']:.2f} s, GC {results['add_gc']:.2f} s, "
          f"bgpd CPU {results['add_cpu']:.1f} s); "
          f"watch during the load ({results['load_s']:.1f} s, "
          f"{n_table / results['load_s']:,.0f} prefixes/s, "
          f"stall {results['load_stall']:.2f} s, GC {results['load_gc']:.2f} s): max lag {w['lag']:,}, "
          f"overflow {'YES' if w['overflow'] else 'no'}, {w['n']:,} events; "
          f"idle reactor stall {results['idle_stall']:.2f} s (the machine's own noise)")


def _cpu() -> float:
    usage = resource.getrusage(resource.RUSAGE_SELF)
    return usage.ru_utime + usage.ru_stime


def _client_argv(mode: str, sock: str, n: int) -> list[str]:
    return [sys.executable, os.path.abspath(__file__), "--client", mode, sock, str(n)]


def client(mode: str, sock: str, n: int) -> None:
    """One client process: prints its figures as one JSON line."""
    channel = grpc.insecure_channel(f"unix:{sock}")
    stub = routes_pb2_grpc.RoutesStub(channel)
    t0 = time.perf_counter()
    if mode == "watch":
        w = {"lag": 0, "n": 0, "overflow": False}
        call = stub.WatchRoutes(routes_pb2.WatchRoutesRequest(dump=True))
        it = iter(call)
        first = next(it)
        assert first.events[0].WhichOneof("event") == "end_of_dump"
        print("ready", flush=True)
        try:
            for m in it:
                w["n"] += len(m.events)
                w["lag"] = max(w["lag"], m.lag)
                if w["n"] >= n:
                    break
        except grpc.RpcError as err:
            w["overflow"] = err.code() == grpc.StatusCode.RESOURCE_EXHAUSTED
        call.cancel()
        print(json.dumps(w))
    elif mode == "list":
        count = 0
        for fam in ("ipv4-unicast", "ipv6-unicast"):
            for m in stub.ListRoutes(routes_pb2.ListRoutesRequest(family=fam)):
                count += len(m.routes)
        print(json.dumps({"n": count, "s": time.perf_counter() - t0}))
    else:
        def batches():
            batch = []
            for i in range(n):
                batch.append(routes_pb2.OriginatePath(
                    prefix=f"100.{64 + (i >> 16)}.{(i >> 8) & 255}.{i & 255}/32", next_hop="192.0.2.1"))
                if len(batch) == 1000:
                    yield routes_pb2.AddPathsRequest(paths=batch)
                    batch = []
            if batch:
                yield routes_pb2.AddPathsRequest(paths=batch)

        r = stub.AddPaths(batches())
        print(json.dumps({"n": r.count, "s": time.perf_counter() - t0}))
    channel.close()


if __name__ == "__main__":
    main()
