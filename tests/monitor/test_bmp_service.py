"""BMP in the service tree: [bmp] wires the taps, SIGHUP changes collectors, a session end to end."""

from __future__ import annotations

import os
import tempfile

from twisted.internet.address import IPv4Address
from twisted.internet.testing import MemoryReactorClock, StringTransport
from twisted.trial.unittest import SynchronousTestCase

from bgpd.config import parse_config
from bgpd.monitor import bmp
from bgpd.monitor.bmp import FLAG_L, PeerDownMsg, PeerUpMsg, RouteMonitoring
from bgpd.service import BgpdService
from bgpd.session.fsm import State
from bgpd.wire.message import KEEPALIVE_BYTES
from bgpd.wire.message import decode_stream as bgp_decode
from tests.session.test_factory import peer_open, update_bytes, wire

BASE = """
[bgp]
local_as = 65001
router_id = "192.0.2.1"
listen_addresses = []

[[neighbors]]
address = "192.0.2.2"
remote_as = 65002
import_policy = ["accept-all"]
export_policy = ["accept-all"]
soft_reconfiguration_inbound = true
"""

BMP = """
[bmp]
sys_name = "r1"
[[bmp.collector]]
name = "c1"
address = "192.0.2.50"
port = 1790
monitoring = ["pre-policy", "post-policy"]
"""


class BmpServiceTests(SynchronousTestCase):
    def setUp(self) -> None:
        self.dir = tempfile.mkdtemp(prefix="bgpd-bmp-")
        self.path = os.path.join(self.dir, "bgpd.toml")
        self.reactor = MemoryReactorClock()

    def tearDown(self) -> None:
        for name in os.listdir(self.dir):
            os.unlink(os.path.join(self.dir, name))
        os.rmdir(self.dir)

    def start(self, text: str) -> BgpdService:
        with open(self.path, "w") as f:
            f.write(text)
        svc = BgpdService(parse_config(text), self.path, self.reactor)
        svc.startService()
        self.addCleanup(svc.stopService)
        return svc

    def client(self, host: str):
        for c in self.reactor.tcpClients:
            if c[0] == host:
                return c
        return None

    def test_no_bmp_no_taps(self):
        """Without [bmp] no tap is set anywhere: the routing path is untouched."""
        svc = self.start(BASE)
        self.assertIsNone(svc.bmp)
        self.assertIsNone(svc.sessions.peers["192.0.2.2"].tap)
        self.assertIsNone(svc.rib_service.rib.adj_in_tap)

    def test_bmp_sets_taps_and_connects(self):
        """With a collector: every peer and the RIB get the monitor; it connects."""
        svc = self.start(BASE + BMP)
        monitor = svc.bmp.monitor
        self.assertIs(svc.sessions.peers["192.0.2.2"].tap, monitor)
        self.assertIs(svc.rib_service.rib.adj_in_tap, monitor)
        self.assertEqual(self.client("192.0.2.50")[1], 1790)

    def test_sighup(self):
        """SIGHUP adds [bmp] (taps set, connect) and removing it clears the taps."""
        svc = self.start(BASE)
        with open(self.path, "w") as f:
            f.write(BASE + BMP)
        self.assertTrue(svc.reload())
        self.assertIsNotNone(self.client("192.0.2.50"))
        self.assertIsNotNone(svc.sessions.peers["192.0.2.2"].tap)
        with open(self.path, "w") as f:
            f.write(BASE)
        self.assertTrue(svc.reload())
        self.assertIsNone(svc.sessions.peers["192.0.2.2"].tap)
        self.assertIsNone(svc.rib_service.rib.adj_in_tap)

    def test_end_to_end(self):
        """A session's Peer Up, its UPDATE pre- and post-policy, and its Peer Down reach the station."""
        svc = self.start(BASE + BMP)
        host, port, factory, *_ = self.client("192.0.2.50")
        station = factory.buildProtocol(IPv4Address("TCP", host, port))
        bmp_transport = StringTransport()
        station.makeConnection(bmp_transport)
        self.reactor.advance(0)
        # The BGP session comes up.
        host, port, factory, *_ = self.client("192.0.2.2")
        proto = factory.buildProtocol(IPv4Address("TCP", host, port))
        proto.makeConnection(StringTransport(peerAddress=IPv4Address("TCP", host, port)))
        proto.dataReceived(wire(peer_open()))
        proto.dataReceived(KEEPALIVE_BYTES)
        self.assertEqual(svc.sessions.peers["192.0.2.2"].state, State.ESTABLISHED)
        data = update_bytes(("198.51.100.0/24",))
        proto.dataReceived(data)
        for _ in range(20):
            self.reactor.advance(0)
        proto.dataReceived(bytes.fromhex("ff" * 16 + "0015030602"))
        self.reactor.advance(0)  # BMP writes a turn's messages when the turn ends
        msgs = bmp.decode_stream(bmp_transport.value())
        kinds = [type(m).__name__ for m in msgs]
        self.assertEqual(kinds[0], "Initiation")
        ups = [m for m in msgs if isinstance(m, PeerUpMsg)]
        self.assertEqual([u.peer.address for u in ups], ["192.0.2.2"])
        rms = [m for m in msgs if isinstance(m, RouteMonitoring)]
        pre = [m.update for m in rms if not m.peer.flags & FLAG_L]
        self.assertIn(data, pre)
        post = [bgp_decode(m.update)[0] for m in rms if m.peer.flags & FLAG_L]
        self.assertTrue(any(u.nlri for u in post))
        (down,) = [m for m in msgs if isinstance(m, PeerDownMsg)]
        self.assertEqual(down.reason, 3)
        self.assertGreater(kinds.index("PeerDownMsg"), kinds.index("RouteMonitoring"))
