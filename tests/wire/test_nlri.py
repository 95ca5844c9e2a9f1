"""NLRI helpers (RFC 4271 section 4.3, RFC 4760 section 5, RFC 7911 section 3): prefix keys
in wire form, their text form, containment, and canonical trailing bits.
"""

from __future__ import annotations

import ipaddress

from twisted.trial.unittest import SynchronousTestCase

from bgpd.wire.errors import NotificationError
from bgpd.wire.nlri import (
    decode_path_prefixes,
    decode_prefixes,
    encode_path_prefixes,
    encode_prefixes,
    make_prefix,
    prefix_contains,
    prefix_from_str,
    prefix_int,
    prefix_len,
    prefix_network,
    prefix_to_str,
)


class PrefixTextTests(SynchronousTestCase):
    """prefix_from_str / prefix_to_str."""

    def test_from_str(self):
        """Text becomes (afi, length octet + significant octets)."""
        self.assertEqual(prefix_from_str("192.0.2.0/24"), (1, b"\x18\xc0\x00\x02"))
        self.assertEqual(prefix_from_str("198.51.100.128/25"), (1, b"\x19\xc6\x33\x64\x80"))
        self.assertEqual(prefix_from_str("0.0.0.0/0"), (1, b"\x00"))
        self.assertEqual(prefix_from_str("192.0.2.1/32"), (1, b"\x20\xc0\x00\x02\x01"))
        self.assertEqual(prefix_from_str("2001:db8::/32"), (2, b"\x20\x20\x01\x0d\xb8"))
        self.assertEqual(prefix_from_str("::/0"), (2, b"\x00"))
        self.assertEqual(prefix_from_str("2001:db8::1/128"), (2, b"\x80" + ipaddress.ip_address(
            "2001:db8::1").packed))

    def test_from_str_host_bits(self):
        """Host bits set in configuration text are an error, not silently cleared."""
        for text in ("192.0.2.1/24", "2001:db8::1/32", "198.51.100.129/25"):
            with self.assertRaises(ValueError):
                prefix_from_str(text)

    def test_from_str_garbage(self):
        """Things that are not prefixes raise ValueError."""
        for text in ("192.0.2.0/33", "2001:db8::/129", "banana", "192.0.2/24/1"):
            with self.assertRaises(ValueError):
                prefix_from_str(text)

    def test_to_str(self):
        """Keys render back to their canonical text."""
        for text in ("192.0.2.0/24", "198.51.100.128/25", "0.0.0.0/0", "192.0.2.1/32", "10.0.0.0/7"):
            afi, key = prefix_from_str(text)
            self.assertEqual(prefix_to_str(key, afi), text)
        for text in ("2001:db8::/32", "::/0", "2001:db8:1:2::/64", "2001:db8::1/128", "fe80::/10"):
            afi, key = prefix_from_str(text)
            self.assertEqual(prefix_to_str(key, afi), text)

    def test_every_length_round_trips(self):
        """All 33 IPv4 and 129 IPv6 lengths survive text -> key -> text -> network."""
        for bits, base in ((32, ipaddress.ip_address("198.51.100.255")),
                           (128, ipaddress.ip_address("2001:db8:ffff:ffff:ffff:ffff:ffff:ffff"))):
            for plen in range(bits + 1):
                net = ipaddress.ip_network(f"{base}/{plen}", strict=False)
                afi, key = prefix_from_str(str(net))
                self.assertEqual(len(key), 1 + (plen + 7) // 8)
                self.assertEqual(prefix_to_str(key, afi), str(net))
                self.assertEqual(prefix_network(key, afi), net)
                self.assertEqual(prefix_len(key), plen)
                self.assertEqual(prefix_int(key, afi), int(net.network_address))


class CanonicalTests(SynchronousTestCase):
    """Bits past the prefix length do not matter (RFC 4271 4.3) and are cleared."""

    def test_make_prefix_clears_host_bits(self):
        """make_prefix keeps only the significant octets, host bits zero."""
        self.assertEqual(make_prefix(bytes((198, 51, 100, 255)), 25), b"\x19\xc6\x33\x64\x80")
        self.assertEqual(make_prefix(bytes((198, 51, 100, 255)), 24), b"\x18\xc6\x33\x64")
        self.assertEqual(make_prefix(bytes((255, 255, 255, 255)), 0), b"\x00")
        self.assertEqual(make_prefix(bytes((255, 255, 255, 255)), 1), b"\x01\x80")

    def test_decode_clears_trailing_bits(self):
        """Received NLRI with trailing bits set decode to the same key as without them."""
        clean = b"\x17\xc6\x33\x64"  # 198.51.100.0/23
        dirty = b"\x17\xc6\x33\x65"
        self.assertEqual(decode_prefixes(dirty), [b"\x17\xc6\x33\x64"])
        self.assertEqual(decode_prefixes(clean + dirty), [clean, clean])
        self.assertEqual(decode_prefixes(b"\x01\xff"), [b"\x01\x80"])
        self.assertEqual(decode_prefixes(b"\x7f" + b"\xff" * 16, 128), [b"\x7f" + b"\xff" * 15 + b"\xfe"])
        self.assertEqual(decode_path_prefixes(b"\x00\x00\x00\x07\x1f\xc0\x00\x02\x03"),
                         [(7, b"\x1f\xc0\x00\x02\x02")])

    def test_decode_clean_is_identity(self):
        """Clean NLRI decode to slices of themselves; encode joins them back."""
        data = b"\x18\xc6\x33\x64\x00\x20\xc0\x00\x02\x01\x08\x0a"
        keys = decode_prefixes(data)
        self.assertEqual(keys, [b"\x18\xc6\x33\x64", b"\x00", b"\x20\xc0\x00\x02\x01", b"\x08\x0a"])
        self.assertEqual(encode_prefixes(keys), data)
        pairs = [(1, keys[0]), (0xFFFFFFFF, keys[1])]
        self.assertEqual(decode_path_prefixes(encode_path_prefixes(pairs)), pairs)

    def test_decode_errors(self):
        """Too long a length, or a prefix past the field, is UPDATE / Invalid Network Field (3/10)."""
        for data, bits in ((b"\x21" + bytes(5), 32), (b"\x81" + bytes(17), 128), (b"\x18\xc6\x33", 32),
                           (b"\x08", 32)):
            with self.assertRaises(NotificationError) as cm:
                decode_prefixes(data, bits)
            self.assertEqual((cm.exception.code, cm.exception.subcode), (3, 10))
        for data in (b"\x00\x00\x00\x01", b"\x00\x00\x00\x01\x21" + bytes(5), b"\x00\x00\x00\x01\x18\xc6"):
            with self.assertRaises(NotificationError) as cm:
                decode_path_prefixes(data, 32)
            self.assertEqual((cm.exception.code, cm.exception.subcode), (3, 10))


class ContainsTests(SynchronousTestCase):
    """prefix_contains(outer, inner)."""

    def key(self, text: str) -> bytes:
        return prefix_from_str(text)[1]

    def test_contains(self):
        """Inner prefixes of every alignment are inside; outer ones and neighbours are not."""
        cases = [
            ("198.51.100.0/24", "198.51.100.0/24", True),
            ("198.51.100.0/24", "198.51.100.128/25", True),
            ("198.51.100.0/24", "198.51.100.7/32", True),
            ("198.51.100.0/24", "198.51.101.0/24", False),
            ("198.51.100.0/24", "198.51.100.0/23", False),
            ("198.51.100.0/25", "198.51.100.128/26", False),
            ("198.51.100.128/25", "198.51.100.192/26", True),
            ("0.0.0.0/0", "192.0.2.1/32", True),
            ("192.0.2.0/23", "192.0.3.0/24", True),
            ("192.0.2.0/23", "192.0.4.0/24", False),
            ("2001:db8::/32", "2001:db8:1::/48", True),
            ("2001:db8::/32", "2001:db9::/48", False),
            ("2001:db8::/33", "2001:db8:8000::/48", False),
            ("::/0", "2001:db8::1/128", True),
        ]
        for outer, inner, want in cases:
            self.assertEqual(prefix_contains(self.key(outer), self.key(inner)), want, (outer, inner))

    def test_contains_matches_ipaddress(self):
        """prefix_contains agrees with ipaddress.subnet_of over a grid of prefixes."""
        nets = [ipaddress.ip_network(f"198.51.100.{a}/{p}", strict=False)
                for a in (0, 64, 96, 128, 200, 255) for p in (22, 24, 25, 26, 27, 30, 32)]
        for o in nets:
            for i in nets:
                self.assertEqual(prefix_contains(self.key(str(o)), self.key(str(i))), i.subnet_of(o),
                                 (o, i))
