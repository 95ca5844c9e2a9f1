"""RibService: what it hands the RIB from a session, and what it reports back to it."""

from __future__ import annotations

import attrs
from twisted.internet.testing import MemoryReactorClock
from twisted.trial.unittest import SynchronousTestCase

from bgpd.config import parse_config
from bgpd.rib import Sink
from bgpd.rib.testing import IPV4, announce, pfx, withdraw
from bgpd.service import RibService
from bgpd.session.factory import PeerFactory
from bgpd.session.negotiation import SessionInfo
from bgpd.wire.attributes import PathAttributes
from bgpd.wire.capabilities import GracefulRestart
from bgpd.wire.negotiated import Negotiated

CONFIG = """
[bgp]
local_as = 65000
router_id = "192.0.2.1"
listen_addresses = []

[[neighbors]]
address = "192.0.2.2"
remote_as = 65001
local_address = "192.0.2.1"
max_prefix = { "ipv4-unicast" = { limit = 1000 } }
import_policy = ["accept-all"]
export_policy = ["accept-all"]
"""


class FakeFactory:
    """The parts of a PeerFactory that RibService uses."""

    def __init__(self, config) -> None:
        self.config = config
        self.protocol_instance = None
        self.session_info = None
        self.counts: list[tuple[str, int]] = []
        self.messages: list[bytes] = []
        self.held: list[bool] = []

    def hold_input(self, held: bool) -> None:
        self.held.append(held)

    def note_prefix_count(self, family: str, count: int) -> None:
        self.counts.append((family, count))

    def send(self, messages: list[bytes]) -> None:
        self.messages.extend(messages)

    def writable(self) -> bool:
        return True


def session_info(gr: GracefulRestart | None = None) -> SessionInfo:
    return SessionInfo(Negotiated(peer_as=65001), 90, 30.0, 65001, "192.0.2.2", (IPV4,),
                       graceful_restart=gr)


class RibServiceTests(SynchronousTestCase):
    def setUp(self):
        self.reactor = MemoryReactorClock()
        config = parse_config(CONFIG)
        self.svc = RibService(config, self.reactor)
        self.peer = FakeFactory(config.neighbors[0])

    def settle(self):
        for _ in range(100):
            if not self.reactor.getDelayedCalls():
                return
            self.reactor.advance(1)
        self.fail("never settled")

    def test_prefix_counts_reported_per_batch(self):
        """Accepted-prefix counts reach note_prefix_count once per changed batch, not by polling."""
        self.svc.peer_up(self.peer, session_info())
        a = PathAttributes(as_path=((2, (65001,)),), next_hop="192.0.2.2")
        keys = [pfx(f"10.{i}.0.0/16") for i in range(30)]
        self.svc.update(self.peer, announce(a, keys))
        self.settle()
        self.assertEqual(self.peer.counts, [("ipv4-unicast", 30)])
        # The same routes again change nothing: nothing reported.
        self.svc.update(self.peer, announce(a, keys))
        self.settle()
        self.assertEqual(self.peer.counts, [("ipv4-unicast", 30)])
        self.svc.update(self.peer, withdraw(keys[:10]))
        self.settle()
        self.assertEqual(self.peer.counts[-1], ("ipv4-unicast", 20))
        self.assertEqual(self.reactor.getDelayedCalls(), [])

    def test_backlog_holds_every_session(self):
        """A full RIB queue stops reading every session, a new one too, until it drained."""
        self.svc.peer_up(self.peer, session_info())
        a = PathAttributes(as_path=((2, (65001,)),), next_hop="192.0.2.2")
        high = self.svc.rib.options.backlog_high
        for i in range(high):
            self.svc.update(self.peer, announce(a, [pfx(f"10.{i >> 8}.{i & 255}.0/24")]))
        self.assertEqual(self.peer.held, [True])
        other = FakeFactory(attrs.evolve(self.peer.config, address="192.0.2.3"))
        self.svc.peer_up(other, session_info())
        self.assertEqual(other.held, [True])
        self.settle()
        self.assertEqual(self.peer.held, [True, False])
        self.assertEqual(other.held, [True, False])
        self.assertEqual(self.svc.rib.loc_rib_size(IPV4), high)

    def test_graceful_restart_families_passed(self):
        """peer_up hands the RIB the families whose forwarding state the new OPEN kept."""
        seen = {}
        self.svc.rib.add_peer = lambda *a, **kw: seen.update(kw)
        gr = GracefulRestart(0, 120, ((1, 1, GracefulRestart.FORWARDING_STATE), (2, 1, 0)))
        self.svc.peer_up(self.peer, session_info(gr))
        self.assertEqual(seen["restarting"], frozenset({IPV4}))
        self.svc.peer_up(self.peer, session_info(None))
        self.assertIsNone(seen["restarting"])

    def test_peer_factory_is_a_sink(self):
        """The RIB's declared output interface is what a PeerFactory offers."""
        factory = PeerFactory(self.peer.config, "192.0.2.1", reactor=self.reactor)
        self.assertIsInstance(factory, Sink)
        self.assertFalse(factory.writable())
