"""Sending IPv4 routes with an IPv6 next hop (RFC 8950 section 4) from the update groups."""

from __future__ import annotations

from bgpd.rib.adjout import group_key
from bgpd.rib.testing import IPV4, IPV6, make_peer, pfx
from bgpd.rib.testing import announce as announce_
from bgpd.wire.negotiated import Negotiated
from tests.rib.support import E1, RibTestCase, attrs

PEER6 = make_peer("2001:db8::2", 65002, local_address="2001:db8::1", next_hop6="2001:db8::1")
EXT_NH = frozenset({(1, 1, 2)})
P1 = pfx("198.51.100.0/24")


class ExtendedNextHopSendTests(RibTestCase):
    """An IPv6 session that negotiated RFC 8950 gets IPv4 routes in MP_REACH_NLRI."""

    def send_v4_route(self, ext_nexthop: frozenset) -> object:
        self.add(E1)
        neg = Negotiated(peer_as=65002, ext_nexthop=ext_nexthop)
        sink = self.add(PEER6, families=(IPV4, IPV6), neg=neg)
        self.rib.receive(E1, announce_(attrs(), [P1]))
        self.settle()
        return sink

    def test_ipv4_route_with_our_ipv6_next_hop(self):
        """Negotiated: the IPv4 route goes in MP_REACH_NLRI (AFI 1) with our IPv6 address."""
        sink = self.send_v4_route(EXT_NH)
        got = [u for u in sink.updates(Negotiated(ibgp=True, ext_nexthop_rx=EXT_NH))
               if u.mp_reach is not None and u.mp_reach.afi == 1]
        self.assertEqual(len(got), 1)
        self.assertEqual(got[0].mp_reach.nlri, [P1])
        self.assertEqual(got[0].mp_reach.attributes.next_hop, "2001:db8::1")
        self.assertEqual(got[0].nlri, [])

    def test_not_negotiated_no_ipv6_next_hop(self):
        """Not negotiated: no IPv4 route ever carries an IPv6 next hop."""
        sink = self.send_v4_route(frozenset())
        for u in sink.updates(Negotiated(ibgp=True)):
            self.assertFalse(u.mp_reach is not None and u.mp_reach.afi == 1, u)
            if u.attributes is not None:
                self.assertNotIn(":", u.attributes.next_hop)

    def test_group_key_tells_them_apart(self):
        """Peers with and without the capability never share an IPv4 update group."""
        with_ = group_key(PEER6, IPV4, Negotiated(ext_nexthop=EXT_NH), ("accept-all",), 0.0)
        without = group_key(PEER6, IPV4, Negotiated(), ("accept-all",), 0.0)
        self.assertNotEqual(with_, without)

    def test_not_negotiated_no_third_party_next_hop(self):
        """Not negotiated, no IPv4 address of ours: the IPv4 route does not go with its learned next hop."""
        sink = self.send_v4_route(frozenset())
        self.assertEqual(sink.routes(IPV4, Negotiated(ibgp=True)), {})

    def test_configured_ipv4_next_hop_used(self):
        """With an IPv4 address to use (next_hop_ipv4), the route goes with it."""
        peer = make_peer("2001:db8::3", 65003, local_address="192.0.2.1", next_hop6="2001:db8::1")
        self.add(E1)
        sink = self.add(peer, families=(IPV4, IPV6), neg=Negotiated(peer_as=65003))
        self.rib.receive(E1, announce_(attrs(), [P1]))
        self.settle()
        self.assertEqual(sink.routes(IPV4, Negotiated(ibgp=True))[P1].next_hop, "192.0.2.1")
