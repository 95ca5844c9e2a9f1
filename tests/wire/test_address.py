"""Tests for bgpd.wire.address: the one key peers are known by (RFC 4007 zones)."""

from __future__ import annotations

from twisted.trial.unittest import SynchronousTestCase

from bgpd.wire.address import normalize_address


class NormalizeAddressTests(SynchronousTestCase):
    """normalize_address: canonical text, mapped IPv4, zones of link-local addresses."""

    def test_canonical(self):
        """IPv4 and IPv6 come back in canonical (compressed, lower-case) text."""
        self.assertEqual(normalize_address("192.0.2.2"), "192.0.2.2")
        self.assertEqual(normalize_address("2001:DB8:0::2"), "2001:db8::2")

    def test_mapped(self):
        """An IPv4-mapped IPv6 address is the IPv4 address."""
        self.assertEqual(normalize_address("::ffff:192.0.2.2"), "192.0.2.2")

    def test_link_local_keeps_zone(self):
        """The zone of a link-local address is part of it."""
        self.assertEqual(normalize_address("FE80:0::1%eth0"), "fe80::1%eth0")

    def test_same_link_local_on_two_links(self):
        """One link-local address on two interfaces gives two keys, not one."""
        self.assertNotEqual(normalize_address("fe80::1%eth0"), normalize_address("fe80::1%eth1"))

    def test_global_drops_zone(self):
        """A zone on a global address carries nothing and is dropped."""
        self.assertEqual(normalize_address("2001:db8::2%eth0"), "2001:db8::2")

    def test_keep_zone_false(self):
        """keep_zone=False gives the bare address, as a NEXT_HOP carries it."""
        self.assertEqual(normalize_address("fe80::1%eth0", keep_zone=False), "fe80::1")

    def test_link_local_without_zone(self):
        """A link-local address with no zone stays without one."""
        self.assertEqual(normalize_address("fe80::1"), "fe80::1")

    def test_invalid(self):
        """Not an address: ValueError."""
        for text in ("not-an-address", "192.0.2.256", "", "192.0.2.0/24"):
            self.assertRaises(ValueError, normalize_address, text)
