"""Whole-daemon: a receiver that stops reading does not hold back the others.

bgpd runs as a real daemon in a network namespace with one bench feeder
(bench/bgp_feeder.py) and two bench receivers (bench/bgp_sink.py), all eBGP
(RFC 4271) on one segment, so both receivers are members of one update group
(same family, export policy, session type and local address).  The "slow"
receiver is stopped with SIGSTOP before the feeder sends its table (253,000
prefixes, about 7 MB of UPDATEs: more than the kernel's socket buffers hold),
so bgpd's connection to it fills up and stays full.  The other receiver must
still get the whole table while the slow one is stopped; once it runs again
(SIGCONT) it must end with exactly the same table, with no session reset.

The slow receiver's hold time is 240 s, so the pause (bounded well below
that) is back-pressure, never a hold timer expiry.

Needs root (namespaces): skipped without it, a failure under CI=true.
"""

from __future__ import annotations

import signal
import subprocess
import tempfile
import time

from twisted.trial.unittest import SynchronousTestCase

from bench.rib_scale import Feeder, prepare_feeds, speaker, wait_event
from tests.interop.bgpd_driver import BgpdDriver, BgpdNeighbor
from tests.interop.harness import Lab, poll, require_root

SCALE = 0.2
BGPD, FEEDER, FAST, SLOW = "192.0.2.1", "192.0.2.2", "192.0.2.3", "192.0.2.4"


def send_queue(lab: Lab, peer: str) -> int:
    """Bytes bgpd's kernel socket to ``peer`` holds unsent (``ss`` Send-Q), 0 when none."""
    r = subprocess.run(["ip", "netns", "exec", lab["bgpd"].ns.name, "ss", "-tnH", "state",
                        "established", "dst", peer], capture_output=True, text=True, timeout=10,
                       check=False)
    return sum(int(line.split()[1]) for line in r.stdout.splitlines() if line.strip())


class SlowReceiverTests(SynchronousTestCase):
    """One stopped member of an update group, the other keeps converging."""

    def test_stopped_receiver_does_not_hold_back_its_group(self):
        """While one receiver reads nothing the other gets the whole table; then both hold it."""
        require_root()
        tmp = tempfile.mkdtemp(prefix="bgpd-slow-")
        feeder = Feeder("feeder", 65001, FEEDER, "2001:db8::2", f"{tmp}/feed.bin")
        figures = prepare_feeds(SCALE, [feeder])
        n4, n6 = str(figures["v4"]), str(figures["v6"])
        lab = Lab(["bgpd", "feeder", "fast", "slow"]).open()
        self.addCleanup(lab.close)
        both = ("ipv4-unicast", "ipv6-unicast")
        bgpd = BgpdDriver(lab["bgpd"].ns, 65000, BGPD, neighbors=[
            BgpdNeighbor(FEEDER, 65001, families=both, passive=True),
            BgpdNeighbor(FAST, 65002, families=both, passive=True),
            BgpdNeighbor(SLOW, 65003, families=both, passive=True, hold_time=240),
        ]).start()
        self.addCleanup(bgpd.stop)

        def sink(node: str, asn: int, rid: str, hold: int) -> object:
            return speaker(lab, node, "bgp_sink",
                           ["--connect", BGPD, "--asn", str(asn), "--router-id", rid,
                            "--hold-time", str(hold), "--expect-v4", n4, "--expect-v6", n6,
                            "--feed", feeder.feed, "--connect-timeout", "60"], f"sink-{node}.log")

        fast = sink("fast", 65002, FAST, 90)
        slow = sink("slow", 65003, SLOW, 240)
        for s in (fast, slow):
            up = wait_event(s, ("established", "error"), 65)
            self.assertEqual((up or {}).get("event"), "established", s.output()[-2000:])
        slow.signal(signal.SIGSTOP)
        stopped = time.monotonic()
        speaker(lab, "feeder", "bgp_feeder",
                ["send", "--feed", feeder.feed, "--connect", BGPD, "--asn", "65001",
                 "--router-id", FEEDER, "--connect-timeout", "60"], "feeder.log")
        done = wait_event(fast, ("complete",), 150)
        self.assertIsNotNone(done, f"the fast receiver never got the table while the slow one "
                                   f"was stopped:\n{fast.output()[-1500:]}\n{bgpd.log()[-3000:]}")
        # The slow one really stopped reading: bgpd's connection to it is backed up.
        self.assertGreater(send_queue(lab, SLOW), 0)
        self.assertLess(time.monotonic() - stopped, 200, "paused too long for its 240 s hold time")
        slow.signal(signal.SIGCONT)
        caught_up = wait_event(slow, ("complete",), 150)
        self.assertIsNotNone(caught_up, f"the slow receiver did not catch up:\n"
                                        f"{slow.output()[-1500:]}\n{bgpd.log()[-3000:]}")
        for peer in (FAST, SLOW):
            self.assertEqual(bgpd.established_count(peer, whole_log=True), 1, bgpd.log()[-3000:])
        poll(lambda: fast.alive() and slow.alive(), 5, 0.5, "both receivers still running")
