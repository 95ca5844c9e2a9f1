"""Session scale: N BGP sessions (RFC 4271 section 8) brought up on loopback.

One bgpd (the one measured) has N neighbors and dials all of them; a second
bgpd holds the N mirror neighbors, passive.  Every session has its own pair of
loopback addresses (Linux routes all of 127/8 to ``lo``)::

    session i:  measured side 127.2.(i // 250).(i % 250 + 1)  (local_address)
                peer side     127.1.(i // 250).(i % 250 + 1)  (listen address)

Neither daemon can reuse one address for all its sessions: bgpd keys a
neighbor by its address, and two neighbors may not share one.

Prints one line: the time from starting the measured bgpd until its log shows
all N sessions Established, and its resident set size (VmRSS) then::

    sessions: 200 established in 4.1 s  bgpd RSS: 52.3 MB  (peer: bgpd, RSS 51.0 MB, netns)

As root it runs in a private network namespace (nothing outside sees it);
``--host`` (or not being root) runs on the host's loopback instead, on an
unprivileged port.  Both daemons are stopped by their PIDs at the end.

    .venv/bin/python bench/sessions.py                 # 200 sessions
    .venv/bin/python bench/sessions.py --sessions 20   # quick smoke run
"""

from __future__ import annotations

import argparse
import os
import sys
import time
from collections.abc import Sequence

sys.path.insert(0, os.path.join(os.path.dirname(os.path.abspath(__file__)), ".."))

from tests.interop.bgpd_driver import BgpdDriver, BgpdNeighbor  # noqa: E402
from tests.interop.harness import Netns, free_port, poll  # noqa: E402

MEASURED_AS = 65000
PEER_AS = 65001


class HostNamespace(Netns):
    """The host's own network namespace, with Netns's process bookkeeping.

    Creates and deletes nothing; ``close()`` still stops every process
    started through it, by PID.
    """

    def open(self) -> HostNamespace:
        return self

    def _argv(self, cmd: Sequence[str]) -> list[str]:
        return list(cmd)


def address(side: int, i: int) -> str:
    """Loopback address of session ``i``: side 1 is the peer, side 2 the measured bgpd."""
    return f"127.{side}.{i // 250}.{i % 250 + 1}"


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__,
                                 formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--sessions", type=int, default=200, help="number of sessions (default 200)")
    ap.add_argument("--timeout", type=float, default=0.0,
                    help="give up after this many seconds (default 60 + N/2)")
    ap.add_argument("--host", action="store_true",
                    help="use the host's loopback instead of a private namespace")
    args = ap.parse_args()
    n = args.sessions
    if not 1 <= n <= 250 * 250:
        ap.error("--sessions must be 1 to 62500")
    timeout = args.timeout or 60.0 + n / 2
    use_netns = not args.host and os.geteuid() == 0
    ns: Netns = Netns("bench") if use_netns else HostNamespace("bench")
    port = free_port()
    try:
        ns.open()
        peer = BgpdDriver(
            ns, PEER_AS, "192.0.2.2",
            [BgpdNeighbor(address(2, i), MEASURED_AS, families=("ipv4-unicast",), passive=True)
             for i in range(n)],
            log_name="peer.log", listen_addresses=[address(1, i) for i in range(n)],
            listen_port=port)
        measured = BgpdDriver(
            ns, MEASURED_AS, "192.0.2.1",
            [BgpdNeighbor(address(1, i), PEER_AS, families=("ipv4-unicast",),
                          local_address=address(2, i), port=port) for i in range(n)],
            log_name="measured.log", listen_addresses=[], connect_retry_time=5)
        peer.start(timeout=timeout)
        # Every listening socket is bound before the clock starts.
        poll(lambda: peer.run_log().count("listening for BGP") >= n, timeout, 0.1,
             "the peer's listening sockets")

        t0 = time.monotonic()
        measured.start(wait_listening=False, timeout=timeout)

        def all_up() -> bool:
            states = measured.states()
            return sum(1 for s in states.values() if s == "established") == n
        try:
            poll(all_up, timeout, 0.1, f"{n} sessions Established")
        except AssertionError:
            states = measured.states()
            up = sum(1 for s in states.values() if s == "established")
            sys.exit(f"sessions: only {up} of {n} established after {timeout:.0f} s; "
                     f"log tail:\n{measured.run_log()[-2000:]}")
        elapsed = time.monotonic() - t0
        rss = measured.rss_kb() / 1024
        peer_up = sum(1 for s in peer.states().values() if s == "established")
        peer_rss = peer.rss_kb() / 1024
        where = "netns" if use_netns else "host loopback"
        print(f"sessions: {n} established in {elapsed:.1f} s  bgpd RSS: {rss:.1f} MB  "
              f"(peer: bgpd, {peer_up} established, RSS {peer_rss:.1f} MB, {where})")
    finally:
        # Netns.close stops both daemons by PID, then removes the namespace.
        ns.close()


if __name__ == "__main__":
    main()
