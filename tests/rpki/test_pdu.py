"""The RTR PDU codec (RFC 8210 section 5, RFC 6810 section 5, 8210bis section 5.12).

Golden bytes are written by hand from the RFCs' PDU diagrams; round trips
are hypothesis properties; every malformed PDU must end in a
:class:`PduError` with the RFC 8210 section 12 code and the PDU's bytes.
"""

from __future__ import annotations

import struct

from hypothesis import given
from hypothesis import strategies as st
from twisted.trial.unittest import SynchronousTestCase

from bgpd.rpki import pdu as P
from bgpd.rpki.pdu import ErrorCode, PduError
from bgpd.rpki.records import Vrp
from bgpd.wire.constants import IPV4_UNICAST, IPV6_UNICAST
from bgpd.wire.nlri import make_prefix, prefix_from_str

u32 = st.integers(0, 2**32 - 1)
u16 = st.integers(0, 2**16 - 1)
versions = st.sampled_from((0, 1, 2))


@st.composite
def vrps(draw: st.DrawFn) -> Vrp:
    six = draw(st.booleans())
    bits = 128 if six else 32
    plen = draw(st.integers(0, bits))
    addr = draw(st.binary(min_size=bits // 8, max_size=bits // 8))
    maxlen = draw(st.integers(plen, bits))
    return Vrp(IPV6_UNICAST if six else IPV4_UNICAST, make_prefix(addr, plen), maxlen, draw(u32))


def _pdus() -> st.SearchStrategy:
    return st.one_of(
        st.builds(P.SerialNotify, versions, u16, u32),
        st.builds(P.SerialQuery, versions, u16, u32),
        st.builds(P.ResetQuery, versions),
        st.builds(P.CacheResponse, versions, u16),
        st.builds(P.PrefixPdu, versions, st.booleans(), vrps()),
        st.builds(P.EndOfData, st.just(0), u16, u32),
        st.builds(P.EndOfData, st.sampled_from((1, 2)), u16, u32, u32, u32, u32),
        st.builds(P.CacheReset, versions),
        st.builds(P.RouterKey, st.sampled_from((1, 2)), st.booleans(), st.binary(min_size=20, max_size=20),
                  u32, st.binary(max_size=100)),
        st.builds(P.ErrorReport, versions, st.integers(0, 9), st.binary(max_size=64), st.text(max_size=40)),
        st.builds(lambda c, ps: P.AspaPdu(2, True, c, tuple(sorted(ps - {c}) or [c + 1 & 0xFFFFFFFF or 1])),
                  st.integers(0, 2**32 - 2), st.frozensets(u32, max_size=20)),
        st.builds(P.AspaPdu, st.just(2), st.just(False), u32),
        st.builds(lambda ann, c, ps, afi: P.AspaPdu(2, ann, c, tuple(sorted(ps)), afi=afi),
                  st.booleans(), u32, st.frozensets(u32, min_size=1, max_size=20), st.sampled_from((1, 2))),
    )


class RoundTripTests(SynchronousTestCase):
    """decode(encode(pdu)) == pdu for every PDU type and version."""

    @given(_pdus())
    def test_round_trip(self, pdu: P.Pdu) -> None:
        """Every PDU the encoder makes decodes back to itself."""
        data = pdu.encode()
        self.assertEqual(P.decode(data), pdu)
        self.assertEqual(struct.unpack_from("!I", data, 4)[0], len(data))

    @given(st.booleans(), vrps(), versions)
    def test_decode_prefix(self, announce: bool, vrp: Vrp, version: int) -> None:
        """The fast prefix decoder agrees with the general one."""
        data = P.PrefixPdu(version, announce, vrp).encode()
        self.assertEqual(P.decode_prefix(data), (announce, vrp))


def _hex(text: str) -> bytes:
    return bytes.fromhex(text.replace(" ", ""))


class GoldenTests(SynchronousTestCase):
    """Bytes written from the RFC 8210 section 5 diagrams."""

    def test_serial_query(self) -> None:
        """Serial Query: version 1, type 1, Session ID, length 12, serial (5.3)."""
        self.assertEqual(P.SerialQuery(1, 0x1234, 7).encode(), _hex("01 01 1234 0000000c 00000007"))

    def test_reset_query(self) -> None:
        """Reset Query: version, type 2, zero, length 8 (5.4)."""
        self.assertEqual(P.ResetQuery(0).encode(), _hex("00 02 0000 00000008"))

    def test_ipv4_prefix(self) -> None:
        """IPv4 Prefix: flags, prefix length, max length, zero, prefix, ASN (5.6)."""
        data = _hex("01 04 0000 00000014 01 18 18 00 c0000200 0000fbf4")
        _afi, key = prefix_from_str("192.0.2.0/24")
        self.assertEqual(P.decode(data), P.PrefixPdu(1, True, Vrp(IPV4_UNICAST, key, 24, 64500)))

    def test_ipv6_prefix(self) -> None:
        """IPv6 Prefix: the same with a 16-octet prefix, length 32 (5.7)."""
        data = _hex("01 06 0000 00000020 00 20 30 00 20010db8000000000000000000000000 0000fbf5")
        _afi, key = prefix_from_str("2001:db8::/32")
        self.assertEqual(P.decode(data), P.PrefixPdu(1, False, Vrp(IPV6_UNICAST, key, 48, 64501)))

    def test_end_of_data_v1(self) -> None:
        """End of Data version 1: serial, refresh, retry, expire intervals (5.8)."""
        data = _hex("01 07 abcd 00000018 00000009 00000e10 00000258 00001c20")
        self.assertEqual(P.decode(data), P.EndOfData(1, 0xABCD, 9, 3600, 600, 7200))

    def test_end_of_data_v0(self) -> None:
        """End of Data version 0 has only the serial (RFC 6810 5.8)."""
        self.assertEqual(P.decode(_hex("00 07 abcd 0000000c 00000009")), P.EndOfData(0, 0xABCD, 9))

    def test_error_report(self) -> None:
        """Error Report: code in the header, encapsulated PDU and text with their lengths (5.11)."""
        inner = P.ResetQuery(1).encode()
        data = _hex("01 0a 0003 0000001b 00000008") + inner + _hex("00000003") + b"bad"
        self.assertEqual(P.decode(data), P.ErrorReport(1, 3, inner, "bad"))
        self.assertEqual(P.ErrorReport(1, 3, inner, "bad").encode(), data)

    def test_aspa(self) -> None:
        """ASPA (8210bis 5.12): flags in the header, length, customer AS, providers."""
        data = _hex("02 0b 0100 00000014 0000fde8 0000fde9 0000fdea")
        self.assertEqual(P.decode(data), P.AspaPdu(2, True, 65000, (65001, 65002)))

    def test_aspa_draft10_layout(self) -> None:
        """The draft-10 ASPA layout stayrtr 0.5.1 writes: zero, then flags, AFI flag, count, customer."""
        data = _hex("02 0b 0000 00000018 01 01 0002 0000fde8 0000fde9 0000fdea")
        self.assertEqual(P.decode(data), P.AspaPdu(2, True, 65000, (65001, 65002), afi=2))
        withdraw = _hex("02 0b 0000 00000014 00 00 0001 0000fde8 0000fde9")
        self.assertEqual(P.decode(withdraw), P.AspaPdu(2, False, 65000, (65001,), afi=1))

    def test_router_key_ignored_fields(self) -> None:
        """Router Key (5.10) decodes so the client can skip it."""
        body = bytes(range(20)) + _hex("0000fde8") + b"spki"
        data = _hex("01 09 0100") + struct.pack("!I", 8 + len(body)) + body
        self.assertEqual(P.decode(data), P.RouterKey(1, True, bytes(range(20)), 65000, b"spki"))


class MalformedTests(SynchronousTestCase):
    """Every malformed PDU raises PduError with the right code and its own bytes."""

    def check(self, data: bytes, code: ErrorCode) -> PduError:
        err = self.assertRaises(PduError, P.decode, data)
        self.assertEqual(err.code, code, str(err))
        self.assertEqual(err.pdu, data)
        return err

    def test_unknown_version(self) -> None:
        """Version 3 is Unsupported Protocol Version (4)."""
        self.check(_hex("03 02 0000 00000008"), ErrorCode.UNSUPPORTED_PROTOCOL_VERSION)

    def test_unknown_type(self) -> None:
        """Type 5 (reserved) and 200 are Unsupported PDU Type (5)."""
        self.check(_hex("01 05 0000 00000008"), ErrorCode.UNSUPPORTED_PDU_TYPE)
        self.check(_hex("01 c8 0000 00000008"), ErrorCode.UNSUPPORTED_PDU_TYPE)

    def test_router_key_in_v0(self) -> None:
        """Router Key does not exist in version 0 (RFC 6810)."""
        self.check(_hex("00 09 0000 00000020") + bytes(24), ErrorCode.UNSUPPORTED_PDU_TYPE)

    def test_aspa_before_v2(self) -> None:
        """ASPA does not exist in version 1."""
        self.check(_hex("01 0b 0100 00000010 0000fde8 0000fde9"), ErrorCode.UNSUPPORTED_PDU_TYPE)

    def test_wrong_lengths(self) -> None:
        """A fixed-size PDU of another length is Corrupt Data (0)."""
        for data in (_hex("01 02 0000 0000000c 00000000"),  # reset query of 12
                     _hex("01 01 0000 00000008"),  # serial query of 8
                     _hex("01 03 0000 0000000c 00000000"),  # cache response of 12
                     _hex("01 07 0000 0000000c 00000001"),  # v1 end of data of 12
                     _hex("00 07 0000 00000018") + bytes(16),  # v0 end of data of 24
                     _hex("01 04 0000 00000018 01 18 18 00 c0000200 0000fbf4 00000000"),
                     _hex("01 06 0000 00000014 01 18 18 00 c0000200 0000fbf4"),
                     _hex("01 08 0000 00000009 00")):
            self.check(data, ErrorCode.CORRUPT_DATA)

    def test_length_field_mismatch(self) -> None:
        """The length field must be the PDU's size."""
        self.check(_hex("01 02 0000 00000009"), ErrorCode.CORRUPT_DATA)

    def test_header_length_out_of_range(self) -> None:
        """parse_header refuses a length below 8 or above MAX_PDU_LEN (framing cannot go on)."""
        for length in (0, 7, P.MAX_PDU_LEN + 1, 2**32 - 1):
            data = struct.pack("!BBHI", 1, 4, 0, length)
            err = self.assertRaises(PduError, P.parse_header, data)
            self.assertEqual(err.code, ErrorCode.CORRUPT_DATA)
            self.assertEqual(err.pdu, data)

    def test_bad_prefix_lengths(self) -> None:
        """Prefix length over 32/128, max length below the length or over the family's: Corrupt Data."""
        for plen, maxlen in ((33, 33), (24, 23), (24, 33), (0, 40)):
            self.check(_hex(f"01 04 0000 00000014 01 {plen:02x} {maxlen:02x} 00 c0000200 0000fbf4"),
                       ErrorCode.CORRUPT_DATA)
        self.check(_hex("01 06 0000 00000020 01 81 81 00") + bytes(16) + _hex("00000001"),
                   ErrorCode.CORRUPT_DATA)

    def test_error_report_overruns(self) -> None:
        """An Error Report whose inner lengths do not add up is Corrupt Data."""
        self.check(_hex("01 0a 0000 00000010 000000ff 00000000"), ErrorCode.CORRUPT_DATA)
        self.check(_hex("01 0a 0000 00000010 00000000 00000005"), ErrorCode.CORRUPT_DATA)
        self.check(_hex("01 0a 0000 0000000c 00000000"), ErrorCode.CORRUPT_DATA)

    def test_short_router_key(self) -> None:
        """A Router Key shorter than SKI + ASN is Corrupt Data."""
        self.check(_hex("01 09 0100 00000010") + bytes(8), ErrorCode.CORRUPT_DATA)

    def test_aspa_bad_length(self) -> None:
        """An ASPA PDU not 12 + 4n octets long is Corrupt Data."""
        self.check(_hex("02 0b 0100 0000000e 0000fde8 0000"), ErrorCode.CORRUPT_DATA)
        self.check(_hex("02 0b 0100 00000008"), ErrorCode.CORRUPT_DATA)

    def test_aspa_provider_list_errors(self) -> None:
        """Announcement with no provider, or itself as one; withdrawal with providers: code 9."""
        self.check(_hex("02 0b 0100 0000000c 0000fde8"), ErrorCode.ASPA_PROVIDER_LIST_ERROR)
        self.check(_hex("02 0b 0100 00000010 0000fde8 0000fde8"), ErrorCode.ASPA_PROVIDER_LIST_ERROR)
        self.check(_hex("02 0b 0000 00000010 0000fde8 0000fde9"), ErrorCode.ASPA_PROVIDER_LIST_ERROR)

    def test_aspa_providers_normalised(self) -> None:
        """Providers out of order or repeated are kept sorted and unique (records.Aspa's form)."""
        pdu = P.decode(_hex("02 0b 0100 00000018 0000fde8 0000fdea 0000fde9 0000fdea"))
        self.assertEqual(pdu.aspa.providers, (65001, 65002))

    def test_truncated(self) -> None:
        """Fewer octets than a header is Corrupt Data."""
        self.check(_hex("01 02 00"), ErrorCode.CORRUPT_DATA)

    @given(st.binary(min_size=8, max_size=80))
    def test_random_bytes_never_crash(self, data: bytes) -> None:
        """Any bytes decode or raise PduError, nothing else."""
        try:
            P.decode(data)
        except PduError as err:
            self.assertIn(err.code, list(ErrorCode))

    def test_error_text_names_the_code(self) -> None:
        """str(PduError) starts with the RFC's name of the code."""
        err = self.check(_hex("03 02 0000 00000008"), ErrorCode.UNSUPPORTED_PROTOCOL_VERSION)
        self.assertTrue(str(err).startswith("unsupported protocol version"))
