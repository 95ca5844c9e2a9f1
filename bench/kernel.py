"""Kernel writer throughput: the synthetic IPv4 table into a kernel table and out again.

Makes a network namespace of its own (``ip netns``; root), with a veth whose
address (192.0.2.1/24) makes the table's next hop 192.0.2.2 onlink, and runs
the daemon's :class:`bgpd.kernel.writer.KernelWriter` with its netlink
backend (sockets made in that namespace) on the real reactor, fed with the
RIB's change records 2,000 per reactor turn as the RIB delivers them.  A
10 ms looping call measures the reactor's longest stall during the install.
Then, in the same run and namespace, the netlink backend alone (its
``apply`` called in a loop, batches of the writer's size, no reactor): what
the kernel and the encoding allow, the ceiling the writer is measured
against on a machine as loaded as it is at that moment.  Prints one line:

``kernel: install N routes/s  remove M routes/s  (R routes, table T, longest reactor stall S s;
... backend alone: install N' routes/s  remove M' routes/s)``

    python3 bench/kernel.py                # the full table (about 1,040,000 routes)
    python3 bench/kernel.py --scale 0.02   # quick smoke run
"""

from __future__ import annotations

import argparse
import os
import random
import subprocess
import sys
import time

sys.path.insert(0, os.path.join(os.path.dirname(os.path.abspath(__file__)), ".."))

from bench.synthetic import scaled  # noqa: E402
from bgpd.kernel.netlink import NetlinkBackend  # noqa: E402
from bgpd.kernel.writer import KernelRoute, KernelWriter, WriterOptions  # noqa: E402
from bgpd.rib import Change, make_path  # noqa: E402
from bgpd.rib.testing import make_peer  # noqa: E402
from bgpd.runtime import tune_gc  # noqa: E402
from bgpd.wire.constants import IPV4_UNICAST  # noqa: E402

TABLE = 1000
PER_TURN = 2000


def ip(*args: str) -> None:
    subprocess.run(["ip", *args], check=True, capture_output=True, timeout=120)


def make_netns() -> str:
    name = f"bgpdkb{random.randrange(1 << 30):x}"
    ip("netns", "add", name)
    try:
        ip("-n", name, "link", "add", "v0", "type", "veth", "peer", "name", "v1")
        ip("-n", name, "addr", "add", "192.0.2.1/24", "dev", "v0")
        for dev in ("lo", "v0", "v1"):
            ip("-n", name, "link", "set", dev, "up")
    except Exception:
        subprocess.run(["ip", "netns", "del", name], capture_output=True, timeout=120)
        raise
    return name


def count_routes(netns: str) -> int:
    out = subprocess.run(["ip", "-n", netns, "route", "show", "table", str(TABLE), "proto", "186"],
                         capture_output=True, text=True, timeout=600).stdout
    return out.count("\n")


def run(scale: float, netns: str, batch: int) -> dict:
    from twisted.internet import reactor, task
    from twisted.internet.threads import deferToThread

    v4, _v6 = scaled(scale)
    peer = make_peer("192.0.2.2", 65001)
    changes = [Change(IPV4_UNICAST, p, None, path, (path,))
               for a, prefixes in v4 for path in (make_path(peer, a),) for p in prefixes]
    n = len(changes)
    writer = KernelWriter(lambda: NetlinkBackend(TABLE, 186, 20, netns=netns),
                          WriterOptions(families=frozenset({IPV4_UNICAST}), batch_size=batch),
                          reactor.callLater, deferToThread)
    figures: dict = {"routes": n, "stall": 0.0}
    last = [time.perf_counter()]

    def tick() -> None:
        now = time.perf_counter()
        figures["stall"] = max(figures["stall"], now - last[0])
        last[0] = now

    probe = task.LoopingCall(tick)

    def feed(i: int = 0) -> None:
        writer.changes(changes[i:i + PER_TURN])
        if i + PER_TURN < n:
            reactor.callLater(0, feed, i + PER_TURN)
        else:
            writer.idle().addCallback(installed)

    def installed(_: object) -> None:
        figures["install"] = time.perf_counter() - figures["t0"]
        probe.stop()
        figures["in_kernel"] = count_routes(netns)
        figures["failed"] = writer.status()[IPV4_UNICAST].failed
        t1 = time.perf_counter()
        writer.stop().addCallback(removed, t1)

    def removed(_: object, t1: float) -> None:
        figures["remove"] = time.perf_counter() - t1
        figures["left"] = count_routes(netns)
        reactor.stop()

    def begin() -> None:
        last[0] = time.perf_counter()
        probe.start(0.01)
        figures["t0"] = time.perf_counter()
        feed()

    writer.start().addCallback(lambda _: begin())
    reactor.run()
    figures.update(backend_alone(changes, netns, batch))
    return figures


def backend_alone(changes: list[Change], netns: str, batch: int) -> dict:
    """The same routes through NetlinkBackend.apply directly: seconds to install and to remove."""
    hops = (("192.0.2.2", None),)
    routes = [KernelRoute(c.family, c.prefix, hops) for c in changes]
    gone = [KernelRoute(c.family, c.prefix, ()) for c in changes]
    backend = NetlinkBackend(TABLE, 186, 20, netns=netns)
    try:
        t0 = time.perf_counter()
        bad = sum(len(backend.apply(routes[i:i + batch])) for i in range(0, len(routes), batch))
        t1 = time.perf_counter()
        bad += sum(len(backend.apply(gone[i:i + batch])) for i in range(0, len(gone), batch))
        t2 = time.perf_counter()
    finally:
        backend.close()
    return {"alone_install": t1 - t0, "alone_remove": t2 - t1, "alone_failed": bad}


def main(argv: list[str] | None = None) -> int:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--scale", type=float, default=1.0, help="fraction of the full table")
    ap.add_argument("--batch", type=int, default=WriterOptions().batch_size,
                    help="routes per batch handed to the worker thread")
    args = ap.parse_args(argv)
    if os.geteuid() != 0:
        print("kernel: needs root (ip netns)", file=sys.stderr)
        return 2
    tune_gc()
    netns = make_netns()
    try:
        f = run(args.scale, netns, args.batch)
    finally:
        subprocess.run(["ip", "netns", "del", netns], capture_output=True, timeout=120)
    n = f["routes"]
    print(f"kernel: install {n / f['install']:,.0f} routes/s  remove {n / f['remove']:,.0f} routes/s  "
          f"({n:,} routes, table {TABLE}, longest reactor stall {f['stall']:.3f} s; "
          f"in kernel after install {f['in_kernel']:,}, failed {f['failed']}, left after remove {f['left']}; "
          f"backend alone: install {n / f['alone_install']:,.0f} routes/s  "
          f"remove {n / f['alone_remove']:,.0f} routes/s)")
    return 0 if f["in_kernel"] == n and f["left"] == 0 and not f["alone_failed"] else 1


if __name__ == "__main__":
    sys.exit(main())
