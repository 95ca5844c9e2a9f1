"""PeerInfo keys for link-local peers (RFC 4007 zones, RFC 4271 section 9.1.2.2 g)."""

from __future__ import annotations

from bgpd.rib.testing import IPV6, make_peer
from tests.rib.support import RibTestCase


class LinkLocalPeerTests(RibTestCase):
    """Two peers at one link-local address on two links are two peers of the RIB."""

    def test_zone_does_not_break_address_key(self):
        """A zone is left out of the decision's address key."""
        zoned, bare = make_peer("fe80::2%eth0", 65001), make_peer("fe80::2", 65001)
        self.assertEqual(zoned.address_key, bare.address_key)

    def test_two_links_two_peers(self):
        """The same fe80::2 on eth0 and on eth1 gives the RIB two peers, not one."""
        a, b = make_peer("fe80::2%eth0", 65001), make_peer("fe80::2%eth1", 65002)
        self.add(a, families=(IPV6,))
        self.add(b, families=(IPV6,))
        self.assertEqual(sorted(p.address for p in self.rib.peers()), ["fe80::2%eth0", "fe80::2%eth1"])
