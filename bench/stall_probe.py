"""Bench probe: how long the router's event loop goes without looking at its sockets.

For ``bench/rib_scale.py``.  From an address the router has no neighbor for,
it opens a TCP connection to the router's BGP port every ``--interval``
seconds and times how long the router takes to close it again.  The kernel
completes the TCP handshake on its own; accepting the connection and
refusing the unconfigured source (RFC 4271 section 8: a connection from
no configured peer is not a BGP session) is the router's own event loop,
so the time from ``connect()`` to the close is how long that loop was busy
elsewhere.  bgpd (a single Twisted reactor) closes it in its next turn; its
longest such wait during a full-table load is its longest reactor stall, to
within the sampling interval.

Writes one JSON line per sample (``{"event": "lat", "t": ..., "s": ...}``,
monotonic time of the connect and the seconds it took) and runs until
stopped or ``--max-seconds``.

    python3 -m bench.stall_probe --connect 192.0.2.2 --source 192.0.2.9
"""

from __future__ import annotations

import argparse
import os
import socket
import sys
import time

sys.path.insert(0, os.path.join(os.path.dirname(os.path.abspath(__file__)), ".."))

from bench.bgp_speaker import emit  # noqa: E402


def sample(address: str, port: int, source: str | None, timeout: float) -> float | None:
    """Seconds from connect to the router's close; None when it did not connect."""
    sock = socket.socket(socket.AF_INET6 if ":" in address else socket.AF_INET, socket.SOCK_STREAM)
    try:
        if source:
            sock.bind((source, 0))
        sock.settimeout(timeout)
        start = time.monotonic()
        try:
            sock.connect((address, port))
            # Anything the router sends, then EOF or a reset, ends the wait.
            for _ in range(64):
                if not sock.recv(4096):
                    break
        except ConnectionError:
            pass
        except (TimeoutError, OSError):
            return None
        return time.monotonic() - start
    finally:
        sock.close()


def main(argv: list[str] | None = None) -> int:
    ap = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    ap.add_argument("--connect", required=True, metavar="ADDR")
    ap.add_argument("--port", type=int, default=179)
    ap.add_argument("--source", help="local address to connect from (no neighbor of the router)")
    ap.add_argument("--interval", type=float, default=0.1)
    ap.add_argument("--timeout", type=float, default=60.0, help="longest wait for one close")
    ap.add_argument("--max-seconds", type=float, default=7200.0)
    args = ap.parse_args(argv)
    deadline = time.monotonic() + args.max_seconds
    # Bounded by time and, for a pathological clock, by count.
    for _ in range(10_000_000):
        if time.monotonic() >= deadline:
            break
        t = time.monotonic()
        s = sample(args.connect, args.port, args.source, args.timeout)
        if s is None:
            emit("nolat", t=t)
        else:
            emit("lat", t=t, s=round(s, 4))
        time.sleep(max(0.0, args.interval - (time.monotonic() - t)))
    return 0


if __name__ == "__main__":
    sys.exit(main())
