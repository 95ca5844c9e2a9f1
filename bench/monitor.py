"""What BMP (RFC 7854) costs: full-table convergence with and without a collector.

The workload is bench/rib_scale.py's, through bgpd alone: one feeder
announces an Internet-shaped table to bgpd, which passes it on to a sink;
the time is from the feeder's first UPDATE byte to the sink holding every
prefix.  It runs twice, each in a lab of its own: first plain, then with a ``[bmp]``
collector monitoring pre-policy and post-policy Adj-RIB-In (every UPDATE
received is mirrored as it came, and every accepted route re-encoded).  The
collector is this script itself (``--collect``), started in bgpd's
namespace on loopback before bgpd: an asyncio reader that discards what it
reads and prints how much, so the station is never the slow side.  The
extra time is the cost of BMP; the goal is under 25%.  bgpd's CPU seconds
over each whole run (start, the load, the feeders' routes withdrawn as they
leave) are printed too: on a busy machine they say more than the
wall-clock time.  The collector's count of Route Monitoring octets shows the
stream really flowed.

Prints one line, e.g.::

    monitor: 253,000 prefixes  without BMP 1.58s  with BMP (pre+post policy) 1.90s
    +20.3% (goal < 25%)  bgpd CPU 9.1s -> 10.8s (+18.7%)  collector: 170,021 messages 41.2 MB, CPU 0.9s

    sudo .venv/bin/python bench/monitor.py                  # full table
    sudo .venv/bin/python bench/monitor.py --scale 0.02     # CI smoke size

Needs root (network namespaces).  Exit status 0 when both runs delivered
every prefix and the collector received the stream; 1 otherwise.
"""

from __future__ import annotations

import argparse
import asyncio
import json
import os
import shutil
import signal
import sys
import tempfile
import time

REPO = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
sys.path.insert(0, REPO)

from bench import rib_scale  # noqa: E402
from tests.interop.harness import Lab, Process, poll, require_binary  # noqa: E402

COLLECTOR_PORT = 11019
GOAL = 25.0


def bmp_section(port: int) -> str:
    """bgpd's [bmp] for the run with a collector: pre- and post-policy, no statistics.

    The buffer bound is 256 MiB, not the default 16: on a busy machine the
    collector process may fall behind for a while, and a dropped session's
    re-sync would be measured instead of the stream itself.
    """
    return f"""
[bmp]
sys_name = "bench"
[[bmp.collector]]
name = "bench"
address = "127.0.0.1"
port = {port}
monitoring = ["pre-policy", "post-policy"]
statistics_interval = 0
buffer = 268435456
retry_time = 1
"""


# -- the collector (--collect) ----------------------------------------------------


async def _collect(host: str, port: int, report: float) -> None:
    totals = {"connections": 0, "octets": 0, "messages": 0}

    async def reader(r: asyncio.StreamReader, w: asyncio.StreamWriter) -> None:
        totals["connections"] += 1
        pending = b""
        while True:
            data = await r.read(1 << 20)
            if not data:
                break
            totals["octets"] += len(data)
            # Count whole messages by their common headers (RFC 7854 4.1).
            buf = pending + data
            pos = 0
            while len(buf) - pos >= 6:
                n = int.from_bytes(buf[pos + 1:pos + 5], "big")
                if n < 6 or len(buf) - pos < n:
                    break
                totals["messages"] += 1
                pos += n
            pending = buf[pos:]
        w.close()

    server = await asyncio.start_server(reader, host, port)
    print(json.dumps({"event": "listening", "port": port}), flush=True)
    async with server:
        while True:
            await asyncio.sleep(report)
            print(json.dumps({"event": "totals", **totals}), flush=True)


def collect_main(host: str, port: int) -> int:
    signal.signal(signal.SIGTERM, lambda *_: sys.exit(0))
    try:
        asyncio.run(_collect(host, port, 0.5))
    except SystemExit:
        pass
    return 0


def collector_totals(proc: Process) -> dict:
    last: dict = {}
    for line in proc.output().splitlines():
        try:
            e = json.loads(line)
        except ValueError:
            continue
        if e.get("event") == "totals":
            last = e
    return last


# -- the runs --------------------------------------------------------------------------


def main(argv: list[str] | None = None) -> int:
    ap = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    ap.add_argument("--scale", type=float, default=1.0,
                    help="fraction of today's table (1.0 = ~1,265,000 prefixes)")
    ap.add_argument("--timeout", type=float, default=None,
                    help="seconds each run may take (default 600 at scale 1, at least 60)")
    ap.add_argument("--collect", action="store_true", help=argparse.SUPPRESS)
    ap.add_argument("--listen", default="127.0.0.1", help=argparse.SUPPRESS)
    ap.add_argument("--port", type=int, default=COLLECTOR_PORT, help=argparse.SUPPRESS)
    args = ap.parse_args(argv)
    if args.collect:
        return collect_main(args.listen, args.port)
    if not 0 < args.scale <= 4:
        ap.error("--scale must be in (0, 4]")
    timeout = args.timeout if args.timeout is not None else max(60.0, 600.0 * args.scale)
    if os.geteuid() != 0:
        print("monitor: needs root (network namespaces)", file=sys.stderr)
        return 2
    require_binary(sys.executable)
    tmp = tempfile.mkdtemp(prefix="bench-monitor-")
    lab: Lab | None = None
    collector: Process | None = None
    try:
        feeders = rib_scale.plan_feeders(1, tmp)
        rib_scale.log(f"encoding the table at scale {args.scale} ...")
        figures = rib_scale.prepare_feeds(args.scale, feeders)
        n4, n6 = figures["v4"], figures["v6"]
        # One lab per run: the speakers' logs (read for their events) and
        # bgpd's are per lab, so the second run cannot read the first's.
        lab = Lab(rib_scale.lab_names(feeders)).open()
        rib_scale.log("bgpd without BMP: starting")
        plain = rib_scale.run_router(lab, "bgpd", feeders, n4, n6, timeout)
        rib_scale.log(plain.describe())
        lab.close()
        lab = Lab(rib_scale.lab_names(feeders)).open()
        collector = rib_scale.speaker(lab, "mid", "monitor",
                                      ["--collect", "--port", str(args.port)], "bmp-collector.log")
        poll(lambda: '"listening"' in collector.output() or not collector.alive(), 20, 0.1,
             "the BMP collector to listen")
        rib_scale.log("bgpd with BMP (pre- and post-policy): starting")
        with_bmp = rib_scale.run_router(lab, "bgpd", feeders, n4, n6, timeout,
                                        extra=bmp_section(args.port))
        rib_scale.log(with_bmp.describe())
        time.sleep(1.0)  # the collector's last report
        totals = collector_totals(collector)
        # The collector shares the machine's cores with bgpd, the feeder and the sink.
        collector_cpu = rib_scale.cpu_seconds(collector.pid)
        parts = [f"monitor: {n4 + n6:,} prefixes ({n4:,} v4 + {n6:,} v6)"]
        ok = plain.seconds is not None and with_bmp.seconds is not None
        parts.append(f"without BMP {plain.seconds:.2f}s" if plain.seconds is not None
                     else f"without BMP: {plain.describe()}")
        parts.append(f"with BMP (pre+post policy) {with_bmp.seconds:.2f}s"
                     if with_bmp.seconds is not None else f"with BMP: {with_bmp.describe()}")
        if ok and plain.seconds:
            extra = 100.0 * (with_bmp.seconds - plain.seconds) / plain.seconds
            parts.append(f"{extra:+.1f}% (goal < {GOAL:.0f}%)")
        if plain.cpu and with_bmp.cpu:
            # CPU time is what BMP adds; it is far less disturbed by other
            # load on the machine than the wall-clock time above.
            parts.append(f"bgpd CPU {plain.cpu:.1f}s -> {with_bmp.cpu:.1f}s "
                         f"({100.0 * (with_bmp.cpu - plain.cpu) / plain.cpu:+.1f}%)")
        parts.append(f"collector: {totals.get('messages', 0):,} messages "
                     f"{totals.get('octets', 0) / 1e6:.1f} MB, CPU {collector_cpu:.1f}s")
        if with_bmp.stall is not None:
            parts.append(f"longest stall with BMP {with_bmp.stall:.2f}s")
        print("  ".join(parts), flush=True)
        # The stream really flowed: at least one Route Monitoring per prefix, pre-policy.
        return 0 if ok and totals.get("messages", 0) > 0 else 1
    except KeyboardInterrupt:
        return 130
    finally:
        if collector is not None:
            collector.stop()
        if lab is not None:
            lab.close()
        shutil.rmtree(tmp, ignore_errors=True)


if __name__ == "__main__":
    sys.exit(main())
