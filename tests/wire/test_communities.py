"""Tests for bgpd.wire.communities: community text <-> values (RFC 1997, 8092, 4360, 5668)."""

from __future__ import annotations

from hypothesis import given, settings
from hypothesis import strategies as st
from twisted.trial.unittest import SynchronousTestCase

from bgpd.wire.communities import (
    WELL_KNOWN_COMMUNITIES,
    format_community,
    format_ext_community,
    format_large_community,
    parse_community,
    parse_ext_community,
    parse_large_community,
)
from bgpd.wire.constants import Community

PROPERTY = settings(max_examples=200, derandomize=True, database=None, deadline=None)

u16 = st.integers(0, 0xFFFF)
u32 = st.integers(0, 0xFFFFFFFF)


class CommunityTests(SynchronousTestCase):
    """Standard communities (RFC 1997)."""

    def test_parse(self):
        """ASN:VALUE is the high and low 16 bits."""
        self.assertEqual(parse_community("65000:100"), 65000 << 16 | 100)
        self.assertEqual(parse_community("0:0"), 0)
        self.assertEqual(parse_community("65535:65535"), 0xFFFFFFFF)

    def test_well_known_names(self):
        """Every well-known name, in any case and with - or _, gives its value."""
        expected = {
            "no-export": 0xFFFFFF01,
            "no-advertise": 0xFFFFFF02,
            "no-export-subconfed": 0xFFFFFF03,
            "no-peer": 0xFFFFFF04,
            "blackhole": 0xFFFF029A,
            "graceful-shutdown": 0xFFFF0000,
            "accept-own": 0xFFFF0001,
            "llgr-stale": 0xFFFF0006,
            "no-llgr": 0xFFFF0007,
        }
        self.assertEqual(WELL_KNOWN_COMMUNITIES, expected)
        for name, value in expected.items():
            self.assertEqual(parse_community(name), value)
            self.assertEqual(parse_community(name.upper().replace("-", "_")), value)
            self.assertEqual(format_community(value), name)
        self.assertEqual(parse_community("No_Export"), Community.NO_EXPORT)

    def test_numeric_well_known_formats_as_name(self):
        """65535:65281 is NO_EXPORT and is written so."""
        self.assertEqual(format_community(parse_community("65535:65281")), "no-export")

    def test_format(self):
        """Other values are written high:low."""
        self.assertEqual(format_community(65000 << 16 | 100), "65000:100")
        self.assertEqual(format_community(0), "0:0")

    def test_parse_errors(self):
        """Bad text is a ValueError that shows the text and says what was expected."""
        cases = [
            ("65536:1", "0 to 65535"),
            ("1:65536", "0 to 65535"),
            ("65000", "ASN:VALUE"),
            ("1:2:3", "ASN:VALUE"),
            ("-1:2", "ASN:VALUE"),
            ("+1:2", "ASN:VALUE"),
            (" 1:2", "ASN:VALUE"),
            ("1_0:2", "ASN:VALUE"),
            ("a:b", "ASN:VALUE"),
            ("no export", "no-export"),
            ("", "ASN:VALUE"),
            ("99999999999:1", "ASN:VALUE"),
        ]
        for text, fragment in cases:
            err = self.assertRaises(ValueError, parse_community, text)
            self.assertIn(fragment, str(err), text)
            self.assertIn(repr(text), str(err), text)
        self.assertRaises(ValueError, parse_community, 65000)

    def test_format_errors(self):
        """Values outside 32 bits, and non-integers, are a ValueError."""
        for value in (-1, 1 << 32, True, "1:2"):
            self.assertRaises(ValueError, format_community, value)

    @PROPERTY
    @given(u32)
    def test_round_trip(self, value):
        """parse(format(v)) == v for every 32-bit value."""
        self.assertEqual(parse_community(format_community(value)), value)

    @PROPERTY
    @given(u16, u16)
    def test_text_round_trip(self, high, low):
        """format(parse(text)) == text for numeric text that is not well-known."""
        text = f"{high}:{low}"
        expected = WELL_KNOWN_COMMUNITIES.get(format_community(high << 16 | low))
        if expected is None:
            self.assertEqual(format_community(parse_community(text)), text)
        else:
            self.assertEqual(parse_community(text), expected)


class LargeCommunityTests(SynchronousTestCase):
    """Large communities (RFC 8092)."""

    def test_parse_and_format(self):
        """Three 32-bit numbers, colon separated."""
        self.assertEqual(parse_large_community("4200000000:1:4294967295"), (4200000000, 1, 4294967295))
        self.assertEqual(format_large_community((65000, 0, 7)), "65000:0:7")

    def test_parse_errors(self):
        """Bad text is a ValueError naming the expected form."""
        cases = [
            ("4294967296:1:1", "each part must be 0 to 4294967295"),
            ("1:2", "GLOBAL:LOCAL1:LOCAL2"),
            ("1:2:3:4", "GLOBAL:LOCAL1:LOCAL2"),
            ("1:2:x", "GLOBAL:LOCAL1:LOCAL2"),
            ("1:-2:3", "GLOBAL:LOCAL1:LOCAL2"),
            ("no-export", "GLOBAL:LOCAL1:LOCAL2"),
        ]
        for text, fragment in cases:
            err = self.assertRaises(ValueError, parse_large_community, text)
            self.assertIn(fragment, str(err), text)
        self.assertRaises(ValueError, parse_large_community, None)

    def test_format_errors(self):
        """Wrong shapes and ranges are a ValueError."""
        for value in ((1, 2), (1, 2, 3, 4), (1, 2, 1 << 32), (1, -1, 2), [1, 2, 3], (1, 2, True)):
            self.assertRaises(ValueError, format_large_community, value)

    @PROPERTY
    @given(st.tuples(u32, u32, u32))
    def test_round_trip(self, value):
        """parse(format(v)) == v."""
        self.assertEqual(parse_large_community(format_large_community(value)), value)


class ExtCommunityTests(SynchronousTestCase):
    """Extended communities (RFC 4360, RFC 5668)."""

    def test_two_octet_as(self):
        """A 2-octet AS gives type 0x00 with a 4-octet value."""
        self.assertEqual(
            parse_ext_community("rt:65000:4294967295"),
            bytes.fromhex("0002fde8ffffffff"),
        )
        self.assertEqual(parse_ext_community("ro:1:2"), bytes.fromhex("0003000100000002"))

    def test_four_octet_as(self):
        """An AS above 65535, or one with an L suffix, gives type 0x02 (RFC 5668)."""
        self.assertEqual(parse_ext_community("rt:4200000000:7"), bytes.fromhex("0202fa56ea000007"))
        self.assertEqual(parse_ext_community("ro:100L:1"), bytes.fromhex("0203000000640001"))
        self.assertEqual(format_ext_community(bytes.fromhex("0203000000640001")), "ro:100L:1")
        self.assertEqual(format_ext_community(bytes.fromhex("0202fa56ea000007")), "rt:4200000000:7")

    def test_ipv4_address(self):
        """An IPv4 address gives type 0x01 with a 2-octet value."""
        self.assertEqual(parse_ext_community("rt:192.0.2.1:100"), bytes.fromhex("0102c00002010064"))
        self.assertEqual(format_ext_community(bytes.fromhex("0103c00002010064")), "ro:192.0.2.1:100")

    def test_kind_any_case(self):
        """RT and rt are the same."""
        self.assertEqual(parse_ext_community("RT:1:2"), parse_ext_community("rt:1:2"))

    def test_hex(self):
        """Other types are written as 0x and 16 hex digits, and read back."""
        raw = bytes.fromhex("4300000000000001")  # non-transitive opaque: no text form here
        self.assertEqual(format_ext_community(raw), "0x4300000000000001")
        self.assertEqual(parse_ext_community("0x4300000000000001"), raw)
        self.assertEqual(parse_ext_community("0X0002FDE800000001"), parse_ext_community("rt:65000:1"))
        # A route-target sub-type under a type we do not name is hex too.
        self.assertEqual(format_ext_community(bytes.fromhex("4002000100000002")), "0x4002000100000002")

    def test_parse_errors(self):
        """Bad text is a ValueError saying what was wrong."""
        cases = [
            ("rt:65000:4294967296", "must be 0 to 4294967295"),
            ("rt:4200000000:65536", "4-octet AS the value must be 0 to 65535"),
            ("rt:1L:65536", "4-octet AS the value must be 0 to 65535"),
            ("rt:4294967296:1", "AS must be 0 to 4294967295"),
            ("rt:192.0.2.1:65536", "IPv4 address the value must be 0 to 65535"),
            ("rt:192.0.2.256:1", "is not an IPv4 address"),
            ("rt:192.0.2.1L:1", "L marks an AS number"),
            ("rt:12345678901:1", "too long"),
            ("soo:1:2", "unknown kind 'soo'"),
            ("rt:1", "expected rt:ADMIN:VALUE"),
            ("rt:1:2:3", "expected rt:ADMIN:VALUE"),
            ("rt::2", "expected rt:ADMIN:VALUE"),
            ("rt:-1:2", "expected rt:ADMIN:VALUE"),
            ("0x00", "expected rt:ADMIN:VALUE"),
            ("65000:1", "expected rt:ADMIN:VALUE"),
        ]
        for text, fragment in cases:
            err = self.assertRaises(ValueError, parse_ext_community, text)
            self.assertIn(fragment, str(err), text)
            self.assertIn(repr(text), str(err), text)
        self.assertRaises(ValueError, parse_ext_community, b"rt:1:2")

    def test_format_errors(self):
        """Anything but 8 bytes is a ValueError."""
        for value in (b"", b"\x00" * 7, b"\x00" * 9, "0002fde800000001", 5):
            self.assertRaises(ValueError, format_ext_community, value)

    @PROPERTY
    @given(st.binary(min_size=8, max_size=8))
    def test_round_trip_any_bytes(self, raw):
        """parse(format(b)) == b for every 8 bytes."""
        self.assertEqual(parse_ext_community(format_ext_community(raw)), raw)

    @PROPERTY
    @given(st.sampled_from(["rt", "ro"]), u16, u32)
    def test_round_trip_as2(self, kind, asn, value):
        """rt/ro text with a 2-octet AS reads back as written."""
        text = f"{kind}:{asn}:{value}"
        self.assertEqual(format_ext_community(parse_ext_community(text)), text)

    @PROPERTY
    @given(st.sampled_from(["rt", "ro"]), st.integers(0x10000, 0xFFFFFFFF), u16)
    def test_round_trip_as4(self, kind, asn, value):
        """rt/ro text with a 4-octet AS reads back as written."""
        text = f"{kind}:{asn}:{value}"
        self.assertEqual(format_ext_community(parse_ext_community(text)), text)

    @PROPERTY
    @given(st.sampled_from(["rt", "ro"]), u32, u16)
    def test_round_trip_ipv4(self, kind, address, value):
        """rt/ro text with an IPv4 address reads back as written."""
        text = f"{kind}:{address >> 24}.{address >> 16 & 255}.{address >> 8 & 255}.{address & 255}:{value}"
        self.assertEqual(format_ext_community(parse_ext_community(text)), text)
