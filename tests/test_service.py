"""The service tree: building from a config, SIGHUP reload, shutdown."""

from __future__ import annotations

import os
import tempfile

from twisted.internet.testing import MemoryReactorClock
from twisted.trial.unittest import SynchronousTestCase

from bgpd.config import parse_config
from bgpd.service import BgpdService
from bgpd.session.fsm import State

BASE = """
[bgp]
local_as = 65000
router_id = "192.0.2.1"
listen_addresses = []
{bgp_extra}

{neighbors}
"""

NEIGHBOR = """
[[neighbors]]
address = "{address}"
remote_as = {asn}
hold_time = {hold}
import_policy = {policy}
export_policy = ["accept-all"]
"""


def render(neighbors: list[dict], bgp_extra: str = "") -> str:
    parts = []
    for n in neighbors:
        parts.append(NEIGHBOR.format(address=n["address"], asn=n.get("asn", 65001),
                                     hold=n.get("hold", 90),
                                     policy=n.get("policy", '["accept-all"]')))
    return BASE.format(bgp_extra=bgp_extra, neighbors="\n".join(parts))


class ServiceTests(SynchronousTestCase):
    def setUp(self):
        self.dir = tempfile.mkdtemp(prefix="bgpd-svc-")
        self.path = os.path.join(self.dir, "bgpd.toml")
        self.reactor = MemoryReactorClock()

    def tearDown(self):
        for name in os.listdir(self.dir):
            os.unlink(os.path.join(self.dir, name))
        os.rmdir(self.dir)

    def write(self, text: str) -> None:
        with open(self.path, "w") as f:
            f.write(text)

    def start(self, neighbors: list[dict]) -> BgpdService:
        self.write(render(neighbors))
        svc = BgpdService(parse_config(open(self.path).read()), self.path, self.reactor)
        svc.startService()
        self.addCleanup(svc.stopService)
        return svc

    def connects(self) -> list[tuple[str, int]]:
        return [(c[0], c[1]) for c in self.reactor.tcpClients]

    def test_start_connects_to_every_neighbor(self):
        """Each enabled neighbor gets a PeerFactory that starts connecting."""
        svc = self.start([{"address": "192.0.2.2"}, {"address": "192.0.2.3"}])
        self.assertEqual(sorted(svc.sessions.peers), ["192.0.2.2", "192.0.2.3"])
        self.assertEqual(sorted(self.connects()), [("192.0.2.2", 179), ("192.0.2.3", 179)])
        for peer in svc.sessions.peers.values():
            self.assertEqual(peer.state, State.CONNECT)

    def test_link_local_neighbors_on_two_links(self):
        """fe80::2 on eth0 and on eth1 are two peers, each found by its zone."""
        svc = self.start([{"address": "fe80::2%eth0"}, {"address": "FE80::2%eth1", "asn": 65002}])
        self.assertEqual(sorted(svc.sessions.peers), ["fe80::2%eth0", "fe80::2%eth1"])
        self.assertEqual(svc.sessions.lookup("fe80::2%eth1").config.remote_as, 65002)

    def test_reload_adds_and_removes_peers(self):
        """SIGHUP reload: an added neighbor starts, a removed one is stopped and dropped."""
        svc = self.start([{"address": "192.0.2.2"}, {"address": "192.0.2.3"}])
        old = svc.sessions.peers["192.0.2.3"]
        self.write(render([{"address": "192.0.2.2"}, {"address": "192.0.2.4"}]))
        self.assertTrue(svc.reload())
        self.assertEqual(sorted(svc.sessions.peers), ["192.0.2.2", "192.0.2.4"])
        self.assertEqual(old.state, State.IDLE)
        self.assertFalse(old.enabled)
        self.assertIn(("192.0.2.4", 179), self.connects())

    def test_reload_resets_only_changed_sessions(self):
        """A hold time change replaces the peer's factory; a policy change keeps it."""
        svc = self.start([{"address": "192.0.2.2"}, {"address": "192.0.2.3"}])
        p2 = svc.sessions.peers["192.0.2.2"]
        p3 = svc.sessions.peers["192.0.2.3"]
        self.write(render([{"address": "192.0.2.2", "hold": 30},
                           {"address": "192.0.2.3", "policy": '["reject-all"]'}]))
        self.assertTrue(svc.reload())
        self.assertIsNot(svc.sessions.peers["192.0.2.2"], p2)
        self.assertEqual(svc.sessions.peers["192.0.2.2"].config.hold_time, 30)
        self.assertFalse(p2.enabled)
        self.assertIs(svc.sessions.peers["192.0.2.3"], p3)
        self.assertEqual(p3.config.import_policy, ("reject-all",))
        self.assertTrue(p3.enabled)

    def test_bad_reload_keeps_running_config(self):
        """A config file with errors is refused and the running config kept."""
        svc = self.start([{"address": "192.0.2.2"}])
        before = svc.config
        self.write(render([{"address": "192.0.2.2", "hold": 2}]))
        self.assertFalse(svc.reload())
        self.assertIs(svc.config, before)
        self.assertEqual(svc.sessions.peers["192.0.2.2"].config.hold_time, 90)
        errors = [e for e in self.flushLoggedErrors()]
        self.assertEqual(errors, [])

    def test_missing_file_on_reload_is_refused(self):
        """A reload with the file gone keeps everything as it is."""
        svc = self.start([{"address": "192.0.2.2"}])
        os.unlink(self.path)
        self.assertFalse(svc.reload())
        self.write(render([{"address": "192.0.2.2"}]))
        self.assertEqual(list(svc.sessions.peers), ["192.0.2.2"])

    def test_stop_service_stops_peers(self):
        """Stopping the service shuts every peer down administratively."""
        svc = self.start([{"address": "192.0.2.2"}])
        peer = svc.sessions.peers["192.0.2.2"]
        d = svc.stopService()
        self.reactor.advance(3)
        self.successResultOf(d)
        self.assertEqual(peer.state, State.IDLE)
        self.assertFalse(peer.enabled)

    def test_originated_routes_enter_the_rib(self):
        """[[originate]] routes are in the Loc-RIB after start, and follow reloads."""
        text = render([{"address": "192.0.2.2"}]) + """
[[originate]]
prefix = "198.51.100.0/24"
communities = ["65000:7"]
"""
        self.write(text)
        svc = BgpdService(parse_config(text), self.path, self.reactor)
        svc.startService()
        self.addCleanup(svc.stopService)
        rib = svc.rib_service.rib
        rib.drain()
        self.assertEqual(rib.loc_rib_size((1, 1)), 1)
        self.write(render([{"address": "192.0.2.2"}]))
        self.assertTrue(svc.reload())
        rib.drain()
        self.assertEqual(rib.loc_rib_size((1, 1)), 0)


class ShutdownTests(SynchronousTestCase):
    def test_stop_waits_for_the_cease_to_be_written(self):
        """stopService's Deferred fires only after the connection is closed (or 2 s)."""
        from twisted.internet.testing import StringTransport

        from bgpd.session.protocol import BGPProtocol

        reactor = MemoryReactorClock()
        svc = BgpdService(parse_config(render([{"address": "192.0.2.2"}])), None, reactor)
        svc.startService()
        peer = svc.sessions.peers["192.0.2.2"]
        proto = BGPProtocol(peer, outbound=True)
        peer.connector = object()  # the connect attempt this connection answers
        proto.makeConnection(StringTransport())
        d = svc.stopService()
        self.assertNoResult(d)
        self.assertTrue(proto.transport.disconnecting)
        proto.connectionLost(None)
        reactor.advance(0.1)
        self.successResultOf(d)

    def test_stop_gives_up_after_two_seconds(self):
        """A connection that never closes does not hold shutdown for more than 2 s."""
        from twisted.internet.testing import StringTransport

        from bgpd.session.protocol import BGPProtocol

        reactor = MemoryReactorClock()
        svc = BgpdService(parse_config(render([{"address": "192.0.2.2"}])), None, reactor)
        svc.startService()
        peer = svc.sessions.peers["192.0.2.2"]
        proto = BGPProtocol(peer, outbound=True)
        peer.connector = object()
        proto.makeConnection(StringTransport())
        d = svc.stopService()
        reactor.advance(1.0)
        self.assertNoResult(d)
        reactor.advance(1.1)
        self.successResultOf(d)
