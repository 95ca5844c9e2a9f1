"""The [mrt] updates log (bgpd.monitor.bgp4mp): BGP4MP_ET records (RFC 6396 3, 4.4; RFC 8050 3).

Golden bytes laid out from the RFC, a round trip through the test's reader,
the log's rotation, its drop bound, and a running daemon's state changes
logged; bgpdump reads the result.
"""

from __future__ import annotations

import os
import shutil
import subprocess

from twisted.internet import defer
from twisted.internet.task import Clock
from twisted.internet.testing import MemoryReactorClock
from twisted.trial.unittest import SynchronousTestCase

from bgpd.config import parse_config
from bgpd.monitor import bgp4mp
from bgpd.monitor.bgp4mp import UpdatesLog, encode_message, encode_state_change
from bgpd.service import BgpdService
from bgpd.wire.message import KEEPALIVE_BYTES
from tests.ci import missing
from tests.monitor import mrtdecode
from tests.monitor.support import temp_path
from tests.session.test_factory import Harness, neighbor

TS = 1_700_000_000.25


def h(text: str) -> bytes:
    return bytes.fromhex("".join(text.split()))


def mrt_config(directory: str, interval: int = 600, compression: str = "none"):
    return parse_config('[bgp]\nlocal_as = 65000\nrouter_id = "192.0.2.1"\n[mrt]\n'
                        f'directory = "{directory}"\ninterval = {interval}\ntables = []\n'
                        f'updates = true\ncompression = "{compression}"\n').mrt


class GoldenBytesTests(SynchronousTestCase):
    """BGP4MP_ET records against bytes laid out from RFC 6396."""

    def test_message_as4(self):
        """ET header (length counts the microseconds), AS4 peer head, the whole message."""
        rec = encode_message(TS, 4_200_000_000, 65000, "192.0.2.2", "192.0.2.1", KEEPALIVE_BYTES)
        self.assertEqual(rec, h("6553f100 0011 0004 0000002b 0003d090"
                                "fa56ea00 0000fde8 0000 0001 c0000202 c0000201")
                         + KEEPALIVE_BYTES)

    def test_state_change_as4_ipv6(self):
        """IPv6 peer: AFI 2 and 16-octet addresses; old and new state as RFC 4271 numbers them."""
        rec = encode_state_change(TS, 65002, 65000, "2001:db8::2", "2001:db8::1", 6, 1)
        self.assertEqual(rec, h("6553f100 0011 0005 00000034 0003d090"
                                "0000fdea 0000fde8 0000 0002"
                                "20010db8000000000000000000000002 20010db8000000000000000000000001"
                                "0006 0001"))

    def test_addpath_subtype(self):
        """RFC 8050: a message of a session with ADD-PATH receive is subtype 9."""
        rec = encode_message(TS, 65002, 65000, "192.0.2.2", "192.0.2.1", KEEPALIVE_BYTES, True)
        self.assertEqual(rec[4:8], h("0011 0009"))


class UpdatesLogTests(SynchronousTestCase):
    """The log fed by a real PeerFactory's state changes and by messages."""

    def setUp(self):
        self.clock = Clock()
        self.clock.advance(TS)
        self.dir = temp_path(self, "mrt")
        self.log = UpdatesLog(mrt_config(self.dir), self.clock.callLater, defer.maybeDeferred,
                              self.clock.seconds)

    def test_messages_and_states_round_trip(self):
        """Received messages and every state change come back from the file, in order."""
        harness = Harness(neighbor())
        self.log.start()
        orig = harness.listener.state_changed

        def both(peer, old, new, reason):
            orig(peer, old, new, reason)
            self.log.state_changed(peer, old, new, reason)

        harness.listener.state_changed = both
        harness.established()
        self.log.message(harness.peer, "in", self.clock.seconds(), KEEPALIVE_BYTES)
        self.log.message(harness.peer, "out", self.clock.seconds(), KEEPALIVE_BYTES)
        self.clock.advance(1)
        path = self.log.files[0]
        self.assertTrue(path.endswith(".tmp") is False and os.path.exists(path + ".tmp"))
        self.log.stop()
        recs = mrtdecode.bgp4mp(open(path, "rb").read())
        states = [(r["old"], r["new"]) for r in recs if r["subtype"] == 5]
        self.assertEqual(states, [(1, 2), (2, 4), (4, 5), (5, 6)])
        msgs = [r for r in recs if r["subtype"] == 4]
        self.assertEqual([m["type"] for m in msgs], [4])  # the "out" one is not logged
        self.assertEqual((msgs[0]["peer"], msgs[0]["peer_as"], msgs[0]["local_as"]),
                         ("192.0.2.2", 65002, 65001))
        self.assertEqual(self.log.records, 5)
        self.assertFalse(os.path.exists(path + ".tmp"))

    def test_rotation_by_interval(self):
        """A new file each interval, named after the interval's start; each complete."""
        self.log.start()
        peer = Harness(neighbor()).peer
        for _ in range(3):
            self.log.state_changed(peer, _State(1), _State(2), "")
            self.clock.advance(600)
            self.clock.advance(1)
        self.log.stop()
        self.assertEqual(len(self.log.files), 4)
        names = [os.path.basename(p) for p in self.log.files]
        start = int(TS) // 600 * 600
        self.assertEqual(names[0], bgp4mp.dump_file_name("{table}.%Y%m%d.%H%M.mrt", "updates",
                                                         start, "none"))
        counts = [len(mrtdecode.bgp4mp(open(p, "rb").read())) for p in self.log.files]
        self.assertEqual(counts, [1, 1, 1, 0])

    def test_drops_past_the_bound(self):
        """With the thread that far behind, records are dropped and counted, never queued."""
        stuck: list = []
        self.log.defer_to_thread = lambda fn, *a: stuck.append(defer.Deferred()) or stuck[-1]
        self.patch(bgp4mp, "MAX_PENDING", 100)
        self.patch(bgp4mp, "WRITE_SIZE", 10)
        self.log.start()
        peer = Harness(neighbor()).peer
        for _ in range(50):
            self.log.message(peer, "in", TS, KEEPALIVE_BYTES)
        self.assertGreater(self.log.dropped, 0)
        self.assertLess(self.log.records, 50)
        self.assertEqual(self.log.records + self.log.dropped, 50)

    def test_gzip(self):
        """A gzip log decompresses to the records."""
        import gzip

        log = UpdatesLog(mrt_config(self.dir, compression="gzip"), self.clock.callLater,
                         defer.maybeDeferred, self.clock.seconds)
        log.start()
        log.message(Harness(neighbor()).peer, "in", TS, KEEPALIVE_BYTES)
        log.stop()
        self.assertTrue(log.files[0].endswith(".mrt.gz"))
        self.assertEqual(len(mrtdecode.bgp4mp(gzip.open(log.files[0]).read())), 1)


class _State(int):
    pass


class ServiceUpdatesTests(SynchronousTestCase):
    """[mrt] updates = true in a running daemon: its state changes are logged; bgpdump reads them."""

    def test_daemon_state_changes(self):
        """A peer started and stopped: its changes are in the file, which bgpdump lists."""
        d = temp_path(self, "mrt")
        text = ('[bgp]\nlocal_as = 65000\nrouter_id = "192.0.2.1"\nlisten_addresses = []\n'
                f'[mrt]\ndirectory = "{d}"\ntables = []\nupdates = true\nfile_pattern = "u.%H%M"\n'
                '[[neighbors]]\naddress = "192.0.2.2"\nremote_as = 65002\n')
        reactor = MemoryReactorClock()
        svc = BgpdService(parse_config(text), None, reactor)
        svc.monitor.defer_to_thread = defer.maybeDeferred
        svc.startService()
        svc.sessions.peers["192.0.2.2"].stop("bye")
        svc.stopService()
        reactor.advance(3)
        self.assertIsNone(svc.monitor.updates)
        files = [os.path.join(d, f) for f in os.listdir(d)]
        self.assertEqual(len(files), 1)
        recs = mrtdecode.bgp4mp(open(files[0], "rb").read())
        self.assertEqual([(r["old"], r["new"]) for r in recs], [(1, 2), (2, 1)])
        if shutil.which("bgpdump") is None:
            missing("bgpdump (Debian package bgpdump)")
        out = subprocess.run(["bgpdump", "-m", files[0]], capture_output=True, text=True,
                             timeout=30, check=True).stdout.splitlines()
        fields = [line.split("|") for line in out]
        self.assertEqual([(f[0], f[2], f[3], f[4]) for f in fields],
                         [("BGP4MP_ET", "STATE", "192.0.2.2", "65002")] * 2)
        self.assertEqual([line.split("|")[5:7] for line in out], [["1", "2"], ["2", "1"]])


TAP_BASE = """
[bgp]
local_as = 65001
router_id = "192.0.2.1"
listen_addresses = []

[[neighbors]]
address = "192.0.2.2"
remote_as = 65002
import_policy = ["accept-all"]
export_policy = ["accept-all"]

[mrt]
directory = "{d}"
tables = []
updates = true
file_pattern = "u.%H%M"
"""
TAP_BMP = """
[bmp]
[[bmp.collector]]
name = "c1"
address = "192.0.2.50"
port = 1790
"""


class MessageTapTests(SynchronousTestCase):
    """Received messages reach the log through the sessions' tap, beside BMP's when both run."""

    def run_session(self, text: str) -> tuple[BgpdService, list[dict], object]:
        from twisted.internet.address import IPv4Address
        from twisted.internet.testing import StringTransport

        from tests.session.test_factory import peer_open, update_bytes, wire

        d = temp_path(self, "mrt")
        reactor = MemoryReactorClock()
        svc = BgpdService(parse_config(text.format(d=d)), None, reactor)
        svc.monitor.defer_to_thread = defer.maybeDeferred
        svc.startService()
        peer = svc.sessions.peers["192.0.2.2"]
        host, port, factory = [c for c in reactor.tcpClients if c[0] == "192.0.2.2"][-1][:3]
        proto = factory.buildProtocol(IPv4Address("TCP", host, port))
        proto.makeConnection(StringTransport(hostAddress=IPv4Address("TCP", "192.0.2.1", 40000),
                                             peerAddress=IPv4Address("TCP", host, port)))
        proto.dataReceived(wire(peer_open(asn=65002)) + KEEPALIVE_BYTES + update_bytes())
        self.assertIs(peer.state.name, "ESTABLISHED")
        tap = svc.sessions.message_tap
        svc.stopService()
        reactor.advance(3)
        files = [os.path.join(d, f) for f in os.listdir(d)]
        self.assertEqual(len(files), 1)
        return svc, mrtdecode.bgp4mp(open(files[0], "rb").read()), tap

    def test_received_messages_logged(self):
        """OPEN, KEEPALIVE and UPDATE as received, with our address on the connection, and the states."""
        _, recs, tap = self.run_session(TAP_BASE)
        self.assertIsInstance(tap, UpdatesLog)
        msgs = [r for r in recs if r["subtype"] == 4]
        self.assertEqual([m["type"] for m in msgs], [1, 4, 2])
        self.assertEqual({(m["peer"], m["local"], m["peer_as"]) for m in msgs},
                         {("192.0.2.2", "192.0.2.1", 65002)})
        states = [(r["old"], r["new"]) for r in recs if r["subtype"] == 5]
        self.assertEqual(states[:4], [(1, 2), (2, 4), (4, 5), (5, 6)])

    def test_shared_with_bmp(self):
        """With [bmp] too, both receive the messages: the sessions' tap is a fan-out."""
        from bgpd.session.tap import FanoutTap

        svc, recs, tap = self.run_session(TAP_BASE + TAP_BMP)
        self.assertEqual([r["type"] for r in recs if r["subtype"] == 4], [1, 4, 2])
        self.assertIsInstance(tap, FanoutTap)
        self.assertEqual({type(t) for t in tap.taps}, {UpdatesLog, type(svc.bmp.monitor)})
        # Stopped: the log gave its slot up, BMP's stays.
        self.assertNotIsInstance(svc.sessions.message_tap, FanoutTap)
