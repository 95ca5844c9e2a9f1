"""The control object without gRPC: Global, Peers reading and operator actions."""

from __future__ import annotations

from twisted.internet.testing import MemoryReactorClock, StringTransport
from twisted.trial.unittest import SynchronousTestCase

from bgpd.api.control import (
    HARD,
    SOFT_IN,
    SOFT_OUT,
    AlreadyExists,
    Control,
    FailedPrecondition,
    InvalidArgument,
    NotFound,
)
from bgpd.config import parse_config
from bgpd.service import BgpdService
from bgpd.session.protocol import BGPProtocol
from bgpd.wire.constants import CeaseError, ErrorCode

CONFIG = """
[bgp]
local_as = 65000
router_id = "192.0.2.254"
listen_addresses = ["127.0.0.1"]
listen_port = 0

[[neighbors]]
address = "192.0.2.2"
remote_as = 65001
import_policy = ["accept-all"]
export_policy = ["accept-all"]

[[neighbors]]
address = "192.0.2.1"
remote_as = 65002
enabled = false
passive = true
import_policy = ["accept-all"]
export_policy = ["accept-all"]
"""


class ControlTests(SynchronousTestCase):
    def setUp(self):
        self.reactor = MemoryReactorClock()
        self.svc = BgpdService(parse_config(CONFIG), None, self.reactor)
        self.svc.startService()
        self.control = Control(self.svc)

    def tearDown(self):
        self.svc.stopService()
        self.reactor.advance(3)

    def test_global_status(self):
        """Router id, AS, version, uptime and peer counts come from the running daemon."""
        self.reactor.advance(12)
        g = self.control.global_status()
        self.assertEqual((g.router_id, g.local_as, g.peers_total, g.peers_established),
                         ("192.0.2.254", 65000, 2, 0))
        self.assertEqual(g.uptime_seconds, 12)
        self.assertIn(("ipv4-unicast", 0), g.loc_rib)

    def test_peers_sorted_by_address(self):
        """peers() lists every neighbor, sorted by address, with its state."""
        peers = self.control.peers()
        self.assertEqual([p.config.address for p in peers], ["192.0.2.1", "192.0.2.2"])
        self.assertEqual(peers[0].state, "Idle")
        self.assertFalse(peers[0].enabled)
        self.assertTrue(peers[1].enabled)

    def test_unknown_and_bad_address(self):
        """An unknown neighbor is NotFound, a malformed or missing address InvalidArgument."""
        with self.assertRaises(NotFound) as cm:
            self.control.peer("192.0.2.99")
        self.assertEqual(cm.exception.field, "address")
        with self.assertRaises(InvalidArgument):
            self.control.peer("not-an-ip")
        with self.assertRaises(InvalidArgument):
            self.control.peer("")

    def test_enable_and_disable(self):
        """enable starts a disabled neighbor; enabling twice is FailedPrecondition."""
        p = self.control.enable_peer("192.0.2.1")
        self.assertTrue(p.enabled)
        with self.assertRaises(FailedPrecondition):
            self.control.enable_peer("192.0.2.1")
        p = self.control.disable_peer("192.0.2.1", "maintenance")
        self.assertFalse(p.enabled)
        with self.assertRaises(FailedPrecondition):
            self.control.disable_peer("192.0.2.1")

    def test_disable_sends_rfc9003_message(self):
        """Disabling a connected peer sends Cease / Administrative Shutdown with the message."""
        peer = self.svc.sessions.peers["192.0.2.2"]
        proto = BGPProtocol(peer, outbound=True)
        peer.connector = object()
        proto.makeConnection(StringTransport())
        self.control.disable_peer("192.0.2.2", "planned work")
        sent = self.control.peer("192.0.2.2").last_notification_sent
        self.assertEqual((sent.code, sent.subcode), (ErrorCode.CEASE, CeaseError.ADMINISTRATIVE_SHUTDOWN))
        self.assertEqual(sent.shutdown_message, "planned work")

    def test_long_shutdown_message_refused(self):
        """A shutdown communication over 255 octets is InvalidArgument naming message."""
        with self.assertRaises(InvalidArgument) as cm:
            self.control.disable_peer("192.0.2.2", "x" * 256)
        self.assertEqual(cm.exception.field, "message")
        self.assertTrue(self.control.peer("192.0.2.2").enabled)

    def test_hard_reset(self):
        """A hard reset of an enabled peer keeps it enabled; of a disabled one is refused."""
        self.assertTrue(self.control.reset_peer("192.0.2.2", HARD).enabled)
        with self.assertRaises(FailedPrecondition):
            self.control.reset_peer("192.0.2.1", HARD)

    def test_soft_reset_needs_established(self):
        """Soft reset in or out of a peer that is not Established is FailedPrecondition."""
        for kind in (SOFT_IN, SOFT_OUT):
            with self.assertRaises(FailedPrecondition):
                self.control.reset_peer("192.0.2.2", kind)
        with self.assertRaises(InvalidArgument):
            self.control.reset_peer("192.0.2.2", "sideways")

    def test_add_peer(self):
        """add_peer validates like the config, starts the peer, and marks it from the API."""
        p = self.control.add_peer({"address": "192.0.2.3", "remote_as": 65003, "passive": True,
                                   "import_policy": ["accept-all"]})
        self.assertEqual(p.config.remote_as, 65003)
        self.assertTrue(p.from_api)
        self.assertEqual(p.config.export_policy, ("reject-all",))  # RFC 8212 default, as in a file
        self.assertIn("192.0.2.3", self.svc.sessions.peers)
        self.assertIsNotNone(self.svc.config.neighbor("192.0.2.3"))

    def test_add_peer_errors_name_the_field(self):
        """A bad value is InvalidArgument naming neighbor.KEY; nothing is added."""
        with self.assertRaises(InvalidArgument) as cm:
            self.control.add_peer({"address": "192.0.2.3", "remote_as": 0})
        self.assertEqual(cm.exception.field, "neighbor.remote_as")
        with self.assertRaises(InvalidArgument) as cm:
            self.control.add_peer({"address": "192.0.2.3", "remote_as": 1, "import_policy": ["nope"]})
        self.assertEqual(cm.exception.field, "neighbor.import_policy[0]")
        with self.assertRaises(InvalidArgument) as cm:
            self.control.add_peer({"remote_as": 1})
        self.assertEqual(cm.exception.field, "neighbor.address")
        self.assertNotIn("192.0.2.3", self.svc.sessions.peers)

    def test_add_existing_peer(self):
        """Adding a known address is AlreadyExists."""
        with self.assertRaises(AlreadyExists):
            self.control.add_peer({"address": "192.0.2.2", "remote_as": 65001})

    def test_update_peer(self):
        """update_peer replaces the settings; a change of remote_as resets the session."""
        before = self.svc.sessions.peers["192.0.2.2"]
        p = self.control.update_peer({"address": "192.0.2.2", "remote_as": 65009,
                                      "import_policy": ["accept-all"]})
        self.assertEqual(p.config.remote_as, 65009)
        self.assertIsNot(self.svc.sessions.peers["192.0.2.2"], before)
        with self.assertRaises(NotFound):
            self.control.update_peer({"address": "192.0.2.77", "remote_as": 1})

    def test_update_without_reset(self):
        """A description change keeps the running session (same factory)."""
        before = self.svc.sessions.peers["192.0.2.2"]
        self.control.update_peer({"address": "192.0.2.2", "remote_as": 65001, "description": "x",
                                  "import_policy": ["accept-all"], "export_policy": ["accept-all"]})
        self.assertIs(self.svc.sessions.peers["192.0.2.2"], before)
        self.assertEqual(before.config.description, "x")

    def test_delete_peer(self):
        """delete_peer stops and forgets the neighbor; a second delete is NotFound."""
        self.control.delete_peer("192.0.2.2")
        self.assertNotIn("192.0.2.2", self.svc.sessions.peers)
        self.assertIsNone(self.svc.config.neighbor("192.0.2.2"))
        with self.assertRaises(NotFound):
            self.control.delete_peer("192.0.2.2")


class EventsControlTests(SynchronousTestCase):
    def setUp(self):
        self.reactor = MemoryReactorClock()
        self.svc = BgpdService(parse_config(CONFIG), None, self.reactor)
        self.svc.startService()
        self.control = Control(self.svc)

    def tearDown(self):
        self.svc.stopService()
        self.reactor.advance(3)

    def test_state_changes_with_reason(self):
        """A watch sees the FSM change of a disabled peer, with the operator's reason."""
        watch = self.control.watch_events()
        self.control.disable_peer("192.0.2.2", "maintenance")
        e = watch.queue.get_nowait()
        self.assertEqual((e.peer, e.new_state), ("192.0.2.2", "Idle"))
        self.assertIn("maintenance", e.reason)
        watch.close()
        self.control.enable_peer("192.0.2.2")
        self.assertTrue(watch.queue.empty())

    def test_peer_filter_and_overflow(self):
        """A watch of one peer ignores the others; past its bound it ends with Overflow."""
        from bgpd.api.control import Overflow

        watch = self.control.watch_events(peer="192.0.2.1", bound=1)
        self.control.disable_peer("192.0.2.2")
        self.assertTrue(watch.queue.empty())
        self.control.enable_peer("192.0.2.1")
        self.control.disable_peer("192.0.2.1")
        items = [watch.queue.get_nowait() for _ in range(watch.queue.qsize())]
        self.assertEqual(items[-1], Overflow(1))
        self.assertTrue(watch.closed)
        with self.assertRaises(NotFound):
            self.control.watch_events(peer="192.0.2.77")


class RunningConfigTests(SynchronousTestCase):
    def test_running_config_reads_back(self):
        """The effective config parses back to the running one, with the API's neighbor in it."""
        from bgpd.api.control import parse_paths

        reactor = MemoryReactorClock()
        svc = BgpdService(parse_config(CONFIG), None, reactor)
        svc.startService()
        self.addCleanup(svc.stopService)
        control = Control(svc)
        control.add_peer({"address": "192.0.2.3", "remote_as": 65003, "passive": True})
        control.add_paths(parse_paths([{"prefix": "203.0.113.0/24", "next_hop": "192.0.2.254"}]))
        text, peers, paths = control.running_config()
        self.assertEqual(parse_config(text), svc.config)
        self.assertEqual(peers, ("192.0.2.3",))
        self.assertEqual(paths, ("203.0.113.0/24",))
