"""Route refresh in the RIB: RFC 2918 re-advertisement and RFC 7313 BoRR/EoRR."""

from __future__ import annotations

from bgpd.rib.testing import IPV4, announce, pfx
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
