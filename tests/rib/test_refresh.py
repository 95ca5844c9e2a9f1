"""Route refresh in the RIB: RFC 2918 re-advertisement and RFC 7313 BoRR/EoRR."""

from __future__ import annotations

from bgpd.rib.testing import IPV4, announce, make_peer, pfx
from bgpd.wire.constants import MsgType
from bgpd.wire.message import Framer
from bgpd.wire.refresh import RouteRefresh
from tests.rib.support import E1, E2, RibTestCase, attrs

P1 = pfx("203.0.113.0/24")
P2 = pfx("198.18.0.0/15")
P3 = pfx("198.51.100.0/24")


class EnhancedRefreshInTests(RibTestCase):
    def setUp(self):
        super().setUp()
        self.sink = self.add(E2, import_policy=("accept-all",))
        self.add(E1)
        self.rib.receive(E1, announce(attrs(), [P1, P2]))
        self.settle()

    def test_routes_not_readvertised_are_withdrawn_at_eorr(self):
        """BoRR marks the peer's routes stale; EoRR withdraws those not sent again."""
        self.rib.begin_refresh(E1, IPV4)
        self.rib.receive(E1, announce(attrs(), [P1, P3]))
        self.rib.end_refresh(E1, IPV4)
        self.settle()
        self.assertFalse(self.rib.best(IPV4, P1).stale)
        self.assertIsNone(self.rib.best(IPV4, P2))
        self.assertIsNotNone(self.rib.best(IPV4, P3))
        self.assertEqual(set(self.sink.routes()), {P1, P3})

    def test_stale_routes_stay_until_eorr(self):
        """Between BoRR and EoRR the old routes are still used and sent."""
        self.rib.begin_refresh(E1, IPV4)
        self.settle()
        self.assertTrue(self.rib.best(IPV4, P2).stale)
        self.assertEqual(set(self.sink.routes()), {P1, P2})

    def test_other_family_untouched(self):
        """BoRR for IPv6 leaves the IPv4 routes alone."""
        self.rib.begin_refresh(E1, (2, 1))
        self.rib.end_refresh(E1, (2, 1))
        self.settle()
        self.assertFalse(self.rib.best(IPV4, P2).stale)


class RefreshOutTests(RibTestCase):
    def setUp(self):
        super().setUp()
        self.sink = self.add(E2)
        self.add(E1)
        self.rib.receive(E1, announce(attrs(), [P1]))
        self.settle()

    def kinds(self):
        out = []
        for msg in self.sink.messages:
            for msg_type, body in Framer(65535).feed(msg):
                if msg_type == MsgType.ROUTE_REFRESH:
                    out.append(("refresh", RouteRefresh.unpack(body).subtype))
                elif body == b"\x00\x00\x00\x00":
                    out.append(("eor", None))
                else:
                    out.append(("update", None))
        return out

    def test_plain_refresh_resends_then_end_of_rib(self):
        """A ROUTE-REFRESH gets the table again, then End-of-RIB."""
        self.sink.messages.clear()
        self.rib.refresh_out(E2, IPV4)
        self.settle()
        self.assertEqual(self.kinds(), [("update", None), ("eor", None)])

    def test_enhanced_refresh_is_framed_by_borr_and_eorr(self):
        """With enhanced route refresh the table goes between BoRR and EoRR (RFC 7313)."""
        self.sink.messages.clear()
        self.rib.refresh_out(E2, IPV4, enhanced=True)
        self.settle()
        self.assertEqual(self.kinds(), [("refresh", 1), ("update", None), ("refresh", 2)])


class GracefulRestartExpiryTests(RibTestCase):
    def test_peer_still_down_is_forgotten(self):
        """A peer still down when its restart time runs out loses its routes and its state."""
        sink = self.add(E2)
        self.add(E1)
        self.rib.receive(E1, announce(attrs(), [P1, P2]))
        self.settle()
        self.rib.remove_peer(E1, graceful=True, stale_time=120)
        self.settle()
        self.assertTrue(self.rib.best(IPV4, P1).stale)
        self.clock.advance(120)
        self.settle()
        self.assertIsNone(self.rib.best(IPV4, P1))
        self.assertEqual(set(sink.routes()), set())
        self.assertNotIn(E1, self.rib.peers())


class RefreshThenRestartTests(RibTestCase):
    """BoRR/EoRR (RFC 7313) and graceful restart (RFC 4724) stale marks together."""

    def setUp(self):
        super().setUp()
        self.other = make_peer("198.51.100.3", 65003, local_address="198.51.100.1")
        self.add(E2)
        self.add(E1)
        self.add(self.other)
        self.rib.receive(E1, announce(attrs((65001,)), [P1]))
        self.rib.receive(self.other, announce(attrs((65003, 1, 2), nh="198.51.100.3"), [P1]))
        self.settle()
        self.assertEqual(self.rib.best(IPV4, P1).peer, E1)

    def test_borr_after_restart_keeps_restart_stale(self):
        """A BoRR from a peer back from a graceful restart does not make its old routes win again."""
        self.rib.remove_peer(E1, graceful=True, stale_time=120)
        self.settle()
        self.add(E1, restarting=frozenset({IPV4}))
        self.rib.begin_refresh(E1, IPV4)
        # The other peer's route changes: the prefix is decided again.
        self.rib.receive(self.other, announce(attrs((65003, 1, 3), nh="198.51.100.3"), [P1]))
        self.settle()
        self.assertEqual(self.rib.best(IPV4, P1).peer, self.other)

    def test_graceful_down_during_refresh_stale_loses(self):
        """A route stale from BoRR becomes restart-stale when the peer then goes down gracefully."""
        other = self.other
        self.rib.begin_refresh(E1, IPV4)
        self.settle()
        self.rib.remove_peer(E1, graceful=True, stale_time=120)
        self.settle()
        self.assertEqual(self.rib.best(IPV4, P1).peer, other)
