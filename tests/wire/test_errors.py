"""Malformed input, one rule per case: RFC 4271 section 6.2-6.3, RFC 7606 sections 3-7,
RFC 4760 section 7, RFC 6793 section 6, RFC 7313 section 5, RFC 9072.

Each case builds the bytes by hand from the RFC's picture of the field, so the
expected (code, subcode, data) or RFC 7606 outcome comes from the RFC, not
from the codec under test.
"""

from __future__ import annotations

import socket
import struct

from twisted.trial.unittest import SynchronousTestCase

from bgpd.wire.attributes import AttributeCache
from bgpd.wire.constants import IPV4_UNICAST
from bgpd.wire.errors import NotificationError, Outcome
from bgpd.wire.message import decode_message
from bgpd.wire.negotiated import Negotiated
from bgpd.wire.notification import Notification
from bgpd.wire.open import Open
from bgpd.wire.refresh import RouteRefresh
from bgpd.wire.update import decode_update

TAW = Outcome.TREAT_AS_WITHDRAW
DISCARD = Outcome.ATTRIBUTE_DISCARD
EBGP = Negotiated()
IBGP = Negotiated(ibgp=True)
AS2 = Negotiated(as4=False)


def attr(flags: int, code: int, value: bytes) -> bytes:
    """One path attribute; the Extended Length bit in ``flags`` picks a 2-octet length."""
    if flags & 0x10:
        return struct.pack("!BBH", flags, code, len(value)) + value
    return struct.pack("!BBB", flags, code, len(value)) + value


ORIGIN = attr(0x40, 1, b"\x00")
AS_PATH = attr(0x40, 2, b"\x02\x01" + struct.pack("!I", 65001))
AS_PATH_2 = attr(0x40, 2, b"\x02\x01" + struct.pack("!H", 65001))
NEXT_HOP = attr(0x40, 3, socket.inet_aton("192.0.2.1"))
MANDATORY = ORIGIN + AS_PATH + NEXT_HOP
NLRI = b"\x18\xc6\x33\x64"  # 198.51.100.0/24


def update(attrs: bytes, nlri: bytes = NLRI, withdrawn: bytes = b"") -> bytes:
    """An UPDATE body (no header)."""
    return (struct.pack("!H", len(withdrawn)) + withdrawn + struct.pack("!H", len(attrs)) + attrs
            + nlri)


def mp_reach(afi: int, safi: int, nh: bytes, nlri: bytes, flags: int = 0x90) -> bytes:
    return attr(flags, 14, struct.pack("!HBB", afi, safi, len(nh)) + nh + b"\x00" + nlri)


def mp_unreach(afi: int, safi: int, nlri: bytes, flags: int = 0x90) -> bytes:
    return attr(flags, 15, struct.pack("!HB", afi, safi) + nlri)


NH6 = socket.inet_pton(socket.AF_INET6, "2001:db8::1")
NLRI6 = b"\x30\x20\x01\x0d\xb8\x00\x01"  # 2001:db8:1::/48
LL6 = socket.inet_pton(socket.AF_INET6, "fe80::1")
#: a session over link-local addresses: the peer is on our link (RFC 2545 3)
ON_LINK = Negotiated(local_addresses=frozenset({"fe80::2"}))
#: RFC 8950 negotiated for IPv4 unicast
EXT_NH = Negotiated(ext_nexthop_rx=frozenset({(1, 1, 2)}))

# (name, UPDATE body, session, expected)
# expected: ("reset", code, subcode, data)
#        or ("problem", outcome, attribute type, subcode, treat_as_withdraw, check)
#           where check(update) -> bool says what survived
UPDATE_CASES = [
    # RFC 7606 3(c): flags in conflict -> treat-as-withdraw
    ("ORIGIN flags optional", update(attr(0xC0, 1, b"\x00") + AS_PATH + NEXT_HOP), EBGP,
     ("problem", TAW, 1, 4, True, None)),
    ("AS_PATH flags optional", update(ORIGIN + attr(0x80, 2, b"") + NEXT_HOP), EBGP,
     ("problem", TAW, 2, 4, True, None)),
    ("NEXT_HOP flags optional", update(ORIGIN + AS_PATH + attr(0xC0, 3, bytes(4))), EBGP,
     ("problem", TAW, 3, 4, True, None)),
    ("MED flags transitive", update(MANDATORY + attr(0xC0, 4, bytes(4))), EBGP,
     ("problem", TAW, 4, 4, True, None)),
    ("COMMUNITIES flags non-transitive", update(MANDATORY + attr(0x80, 8, bytes(4))), EBGP,
     ("problem", TAW, 8, 4, True, None)),
    # RFC 7606 7.1: ORIGIN length / value
    ("ORIGIN length 2", update(attr(0x40, 1, b"\x00\x00") + AS_PATH + NEXT_HOP), EBGP,
     ("problem", TAW, 1, 5, True, None)),
    ("ORIGIN value 3", update(attr(0x40, 1, b"\x03") + AS_PATH + NEXT_HOP), EBGP,
     ("problem", TAW, 1, 6, True, None)),
    # RFC 7606 7.2: AS_PATH
    ("AS_PATH segment type 0", update(ORIGIN + attr(0x40, 2, b"\x00\x01" + bytes(4)) + NEXT_HOP),
     EBGP, ("problem", TAW, 2, 11, True, None)),
    ("AS_PATH segment type 5", update(ORIGIN + attr(0x40, 2, b"\x05\x01" + bytes(4)) + NEXT_HOP),
     EBGP, ("problem", TAW, 2, 11, True, None)),
    ("AS_PATH zero-length segment", update(ORIGIN + attr(0x40, 2, b"\x02\x00") + NEXT_HOP), EBGP,
     ("problem", TAW, 2, 11, True, None)),
    ("AS_PATH segment overruns", update(ORIGIN + attr(0x40, 2, b"\x02\x02" + bytes(4)) + NEXT_HOP),
     EBGP, ("problem", TAW, 2, 11, True, None)),
    ("AS_PATH truncated segment header", update(ORIGIN + attr(0x40, 2, b"\x02") + NEXT_HOP), EBGP,
     ("problem", TAW, 2, 11, True, None)),
    ("AS_PATH 4-octet read as 2-octet overrun", update(ORIGIN + attr(0x40, 2, b"\x02\x02\x00\x01\x00")
                                                       + NEXT_HOP), AS2,
     ("problem", TAW, 2, 11, True, None)),
    ("AS_PATH first AS not the peer's", update(MANDATORY),
     Negotiated(peer_as=65002, enforce_first_as=True), ("problem", TAW, 2, 11, True, None)),
    # RFC 7606 7.3, RFC 4271 6.3: NEXT_HOP
    ("NEXT_HOP length 5", update(ORIGIN + AS_PATH + attr(0x40, 3, bytes(5))), EBGP,
     ("problem", TAW, 3, 5, True, None)),
    ("NEXT_HOP multicast", update(ORIGIN + AS_PATH + attr(0x40, 3, socket.inet_aton("224.0.0.1"))),
     EBGP, ("problem", TAW, 3, 8, True, None)),
    ("NEXT_HOP class E", update(ORIGIN + AS_PATH + attr(0x40, 3, socket.inet_aton("240.0.0.1"))),
     EBGP, ("problem", TAW, 3, 8, True, None)),
    ("NEXT_HOP 0.0.0.0", update(ORIGIN + AS_PATH + attr(0x40, 3, bytes(4))), EBGP,
     ("problem", TAW, 3, 8, True, None)),
    # RFC 7606 7.4-7.5
    ("MED length 3", update(MANDATORY + attr(0x80, 4, bytes(3))), EBGP,
     ("problem", TAW, 4, 5, True, None)),
    ("LOCAL_PREF length 5", update(MANDATORY + attr(0x40, 5, bytes(5))), IBGP,
     ("problem", TAW, 5, 5, True, None)),
    # RFC 7606 7.6: ATOMIC_AGGREGATE length -> discard
    ("ATOMIC_AGGREGATE length 1", update(MANDATORY + attr(0x40, 6, b"\x00")), EBGP,
     ("problem", DISCARD, 6, 5, False, lambda u: not u.attributes.atomic_aggregate)),
    # RFC 7606 7.7: AGGREGATOR length -> discard
    ("AGGREGATOR length 7", update(MANDATORY + attr(0xC0, 7, bytes(7))), EBGP,
     ("problem", DISCARD, 7, 5, False, lambda u: u.attributes.aggregator is None)),
    ("AGGREGATOR 4-octet to a 2-octet session", update(ORIGIN + AS_PATH_2 + NEXT_HOP
                                                       + attr(0xC0, 7, bytes(8))), AS2,
     ("problem", DISCARD, 7, 5, False, lambda u: u.attributes.aggregator is None)),
    # RFC 7606 7.8: COMMUNITIES
    ("COMMUNITIES length 5", update(MANDATORY + attr(0xC0, 8, bytes(5))), EBGP,
     ("problem", TAW, 8, 5, True, None)),
    ("COMMUNITIES length 0", update(MANDATORY + attr(0xC0, 8, b"")), EBGP,
     ("problem", TAW, 8, 5, True, None)),
    # RFC 7606 7.9-7.10: ORIGINATOR_ID / CLUSTER_LIST
    ("ORIGINATOR_ID from eBGP", update(MANDATORY + attr(0x80, 9, bytes(4))), EBGP,
     ("problem", DISCARD, 9, 9, False, lambda u: u.attributes.originator_id is None)),
    ("CLUSTER_LIST from eBGP", update(MANDATORY + attr(0x80, 10, bytes(8))), EBGP,
     ("problem", DISCARD, 10, 9, False, lambda u: u.attributes.cluster_list == ())),
    ("ORIGINATOR_ID length 5", update(MANDATORY + attr(0x80, 9, bytes(5))), IBGP,
     ("problem", TAW, 9, 5, True, None)),
    ("CLUSTER_LIST length 6", update(MANDATORY + attr(0x80, 10, bytes(6))), IBGP,
     ("problem", TAW, 10, 5, True, None)),
    # RFC 7606 7.14: EXTENDED_COMMUNITIES
    ("EXTENDED_COMMUNITIES length 4", update(MANDATORY + attr(0xC0, 16, bytes(4))), EBGP,
     ("problem", TAW, 16, 5, True, None)),
    # RFC 6793 6: AS4_PATH / AS4_AGGREGATOR malformed -> discard
    ("AS4_PATH bad segment type", update(ORIGIN + AS_PATH_2 + NEXT_HOP
                                         + attr(0xC0, 17, b"\x07\x01" + bytes(4))), AS2,
     ("problem", DISCARD, 17, 11, False, lambda u: u.attributes.as_path == ((2, (65001,)),))),
    ("AS4_PATH overrun", update(ORIGIN + AS_PATH_2 + NEXT_HOP + attr(0xC0, 17, b"\x02\x02" + bytes(4))),
     AS2, ("problem", DISCARD, 17, 11, False, lambda u: u.attributes.as_path == ((2, (65001,)),))),
    ("AS4_AGGREGATOR length 6", update(ORIGIN + AS_PATH_2 + NEXT_HOP + attr(0xC0, 18, bytes(6))),
     AS2, ("problem", DISCARD, 18, 5, False, lambda u: u.attributes.aggregator is None)),
    ("AS4_PATH from a 4-octet speaker", update(MANDATORY + attr(0xC0, 17, b"\x02\x01" + bytes(4))),
     EBGP, ("problem", DISCARD, 17, 9, False, lambda u: u.attributes.as_path == ((2, (65001,)),))),
    # RFC 8092 5: LARGE_COMMUNITIES
    ("LARGE_COMMUNITIES length 8", update(MANDATORY + attr(0xC0, 32, bytes(8))), EBGP,
     ("problem", TAW, 32, 5, True, None)),
    ("LARGE_COMMUNITIES length 0", update(MANDATORY + attr(0xC0, 32, b"")), EBGP,
     ("problem", TAW, 32, 5, True, None)),
    # RFC 9234 5: OTC length
    ("OTC length 3", update(MANDATORY + attr(0xC0, 35, bytes(3))), EBGP,
     ("problem", TAW, 35, 5, True, None)),
    # RFC 7606 3(g): a repeated attribute -> the later copies are discarded
    ("MED twice", update(MANDATORY + attr(0x80, 4, struct.pack("!I", 1)) + attr(0x80, 4, struct.pack(
        "!I", 2))), EBGP, ("problem", DISCARD, 4, 1, False, lambda u: u.attributes.med == 1)),
    ("ORIGIN twice", update(ORIGIN + attr(0x40, 1, b"\x02") + AS_PATH + NEXT_HOP), EBGP,
     ("problem", DISCARD, 1, 1, False, lambda u: u.attributes.origin == 0)),
    ("unknown optional transitive twice", update(MANDATORY + attr(0xC0, 99, b"a") + attr(0xC0, 99, b"b")),
     EBGP, ("problem", DISCARD, 99, 1, False, lambda u: u.attributes.unknown == ((0xE0, 99, b"a"),))),
    # RFC 7606 3(d): missing well-known mandatory -> treat-as-withdraw
    ("missing ORIGIN", update(AS_PATH + NEXT_HOP), EBGP, ("problem", TAW, 1, 3, True, None)),
    ("missing AS_PATH", update(ORIGIN + NEXT_HOP), EBGP, ("problem", TAW, 2, 3, True, None)),
    ("missing NEXT_HOP", update(ORIGIN + AS_PATH), EBGP, ("problem", TAW, 3, 3, True, None)),
    ("NLRI with no attributes at all", update(b""), EBGP, ("problem", TAW, 1, 3, True, None)),
    # RFC 7606 4: an attribute overrunning the attribute list -> treat-as-withdraw
    ("attribute overruns", update(MANDATORY + b"\xc0\x08\x08" + bytes(4)), EBGP,
     ("problem", TAW, 8, 5, True, None)),
    ("extended-length attribute overruns", update(MANDATORY + b"\xd0\x08\x01\x00" + bytes(4)), EBGP,
     ("problem", TAW, 8, 5, True, None)),
    ("attribute header truncated", update(MANDATORY + b"\xc0\x08"), EBGP,
     ("problem", TAW, 0, 1, True, None)),
    # RFC 4760 7 / RFC 7606 7.11: family not negotiated -> the attribute is discarded
    ("MP_REACH family not negotiated", update(MANDATORY + mp_reach(2, 1, NH6, NLRI6)),
     Negotiated(families=frozenset({IPV4_UNICAST})),
     ("problem", DISCARD, 14, 9, False, lambda u: u.mp_reach is None and u.nlri == [NLRI])),
    ("MP_UNREACH family not negotiated", update(mp_unreach(2, 1, NLRI6), b""),
     Negotiated(families=frozenset({IPV4_UNICAST})),
     ("problem", DISCARD, 15, 9, False, lambda u: u.mp_unreach is None)),
    # RFC 7606 3(c): flags of the attributes after the first six
    ("LOCAL_PREF flags optional (iBGP)", update(MANDATORY + attr(0xC0, 5, bytes(4))), IBGP,
     ("problem", TAW, 5, 4, True, None)),
    ("ATOMIC_AGGREGATE flags optional", update(MANDATORY + attr(0xC0, 6, b"")), EBGP,
     ("problem", TAW, 6, 4, True, None)),
    ("AGGREGATOR flags well-known", update(MANDATORY + attr(0x40, 7, bytes(8))), EBGP,
     ("problem", TAW, 7, 4, True, None)),
    ("ORIGINATOR_ID flags transitive (iBGP)", update(MANDATORY + attr(0xC0, 9, bytes(4))), IBGP,
     ("problem", TAW, 9, 4, True, None)),
    ("CLUSTER_LIST flags well-known (iBGP)", update(MANDATORY + attr(0x40, 10, bytes(4))), IBGP,
     ("problem", TAW, 10, 4, True, None)),
    ("EXTENDED_COMMUNITIES flags non-transitive", update(MANDATORY + attr(0x80, 16, bytes(8))),
     EBGP, ("problem", TAW, 16, 4, True, None)),
    ("LARGE_COMMUNITIES flags non-transitive", update(MANDATORY + attr(0x80, 32, bytes(12))),
     EBGP, ("problem", TAW, 32, 4, True, None)),
    ("OTC flags well-known", update(MANDATORY + attr(0x40, 35, bytes(4))), EBGP,
     ("problem", TAW, 35, 4, True, None)),
    # RFC 7606 7.5: LOCAL_PREF from an external peer: attribute discard whatever it is
    ("LOCAL_PREF from eBGP length 5", update(MANDATORY + attr(0x40, 5, bytes(5))), EBGP,
     ("problem", DISCARD, 5, 5, False, lambda u: u.attributes.local_pref is None)),
    ("LOCAL_PREF from eBGP length 0", update(MANDATORY + attr(0x40, 5, b"")), EBGP,
     ("problem", DISCARD, 5, 5, False, lambda u: u.attributes.local_pref is None)),
    ("LOCAL_PREF from eBGP flags optional", update(MANDATORY + attr(0xC0, 5, bytes(4))), EBGP,
     ("problem", DISCARD, 5, 4, False, lambda u: u.attributes.local_pref is None)),
    # RFC 7606 7.9-7.10: from an external peer discarded before any length check
    ("ORIGINATOR_ID from eBGP length 5", update(MANDATORY + attr(0x80, 9, bytes(5))), EBGP,
     ("problem", DISCARD, 9, 9, False, lambda u: u.attributes.originator_id is None)),
    ("CLUSTER_LIST from eBGP length 6", update(MANDATORY + attr(0x80, 10, bytes(6))), EBGP,
     ("problem", DISCARD, 10, 9, False, lambda u: u.attributes.cluster_list == ())),
    # RFC 7606 7.2 (RFC 5065 5): confederation segments from an external peer
    ("AS_CONFED_SEQUENCE from eBGP", update(ORIGIN + attr(0x40, 2, b"\x03\x01" + bytes(4)
                                                        + b"\x02\x01" + bytes(4)) + NEXT_HOP),
     EBGP, ("problem", TAW, 2, 11, True, None)),
    ("AS_CONFED_SET from eBGP", update(ORIGIN + attr(0x40, 2, b"\x02\x01" + bytes(4)
                                                   + b"\x04\x01" + bytes(4)) + NEXT_HOP),
     EBGP, ("problem", TAW, 2, 11, True, None)),
    ("AS_CONFED_SEQUENCE from iBGP", update(ORIGIN + attr(0x40, 2, b"\x03\x01" + bytes(4))
                                            + NEXT_HOP), IBGP,
     ("clean", lambda u: u.attributes.as_path == ((3, (0,)),))),
    # RFC 4271 5.1.3 / 6.3 (semantic check a), RFC 7606 7.3: our own address as
    # next hop: logged, route ignored, no NOTIFICATION
    ("NEXT_HOP our own address", update(MANDATORY), Negotiated(local_addresses=frozenset({"192.0.2.1"})),
     ("problem", TAW, 3, 8, True, None)),
    ("NEXT_HOP another address than ours", update(MANDATORY),
     Negotiated(local_addresses=frozenset({"192.0.2.2"})),
     ("clean", lambda u: u.attributes.next_hop == "192.0.2.1")),
    ("MP_REACH next hop our own address", update(ORIGIN + AS_PATH + mp_reach(2, 1, NH6, NLRI6), b""),
     Negotiated(local_addresses=frozenset({"2001:db8::1"})), ("problem", TAW, 14, 8, True, None)),
    # RFC 4760 3 / RFC 2545 3 / RFC 4271 6.3: next hops that cannot be used
    ("MP_REACH next hop multicast", update(ORIGIN + AS_PATH + mp_reach(
        2, 1, socket.inet_pton(socket.AF_INET6, "ff02::1"), NLRI6), b""), EBGP,
     ("problem", TAW, 14, 8, True, None)),
    ("MP_REACH next hop unspecified", update(ORIGIN + AS_PATH + mp_reach(2, 1, bytes(16), NLRI6), b""),
     EBGP, ("problem", TAW, 14, 8, True, None)),
    ("MP_REACH next hop link-local only, session not on a shared link",
     update(ORIGIN + AS_PATH + mp_reach(2, 1, LL6, NLRI6), b""),
     Negotiated(local_addresses=frozenset({"2001:db8::2"})), ("problem", TAW, 14, 8, True, None)),
    ("MP_REACH next hop :: + link-local, session not on a shared link",
     update(ORIGIN + AS_PATH + mp_reach(2, 1, bytes(16) + LL6, NLRI6), b""), EBGP,
     ("problem", TAW, 14, 8, True, None)),
    ("MP_REACH next hop link-local only over a link-local session",
     update(ORIGIN + AS_PATH + mp_reach(2, 1, LL6, NLRI6), b""), ON_LINK,
     ("clean", lambda u: u.mp_reach.attributes.next_hop == "fe80::1")),
    ("MP_REACH next hop :: + link-local over a link-local session",
     update(ORIGIN + AS_PATH + mp_reach(2, 1, bytes(16) + LL6, NLRI6), b""), ON_LINK,
     ("clean", lambda u: u.mp_reach.attributes.next_hop_ll == "fe80::1")),
    ("MP_REACH global + link-local", update(ORIGIN + AS_PATH + mp_reach(2, 1, NH6 + LL6, NLRI6), b""),
     EBGP, ("clean", lambda u: (u.mp_reach.attributes.next_hop, u.mp_reach.attributes.next_hop_ll)
                    == ("2001:db8::1", "fe80::1"))),
    ("MP_REACH IPv4 next hop 0.0.0.0", update(ORIGIN + AS_PATH + mp_reach(1, 1, bytes(4), NLRI), b""),
     EBGP, ("problem", TAW, 14, 8, True, None)),
    ("MP_REACH IPv4 next hop multicast", update(ORIGIN + AS_PATH + mp_reach(
        1, 1, socket.inet_aton("239.1.1.1"), NLRI), b""), EBGP, ("problem", TAW, 14, 8, True, None)),
    # RFC 8950 3-4: IPv4 NLRI with an IPv6 next hop only when negotiated; else
    # the length is not the one expected (RFC 7606 7.11): session reset
    ("MP_REACH IPv4 NLRI, IPv6 next hop, no extended next hop", update(
        ORIGIN + AS_PATH + mp_reach(1, 1, NH6, NLRI), b""), EBGP, ("reset", 3, 9, b"")),
    ("MP_REACH IPv4 NLRI, IPv6 next hop, extended next hop negotiated", update(
        ORIGIN + AS_PATH + mp_reach(1, 1, NH6 + LL6, NLRI), b""), EXT_NH,
     ("clean", lambda u: (u.mp_reach.afi, u.mp_reach.attributes.next_hop, u.mp_reach.nlri)
      == (1, "2001:db8::1", [NLRI]))),
    ("MP_REACH IPv4 multicast NLRI, IPv6 next hop, negotiated for unicast only", update(
        ORIGIN + AS_PATH + mp_reach(1, 2, NH6, NLRI), b""),
     Negotiated(families=frozenset({IPV4_UNICAST, (1, 2)}), ext_nexthop_rx=frozenset({(1, 1, 2)})),
     ("reset", 3, 9, b"")),
    # unknown optional non-transitive: quietly dropped; optional transitive: kept, Partial
    ("unknown optional non-transitive", update(MANDATORY + attr(0x80, 99, b"x")), EBGP,
     ("clean", lambda u: u.attributes.unknown == ())),
    ("unknown optional transitive", update(MANDATORY + attr(0xC0, 99, b"x")), EBGP,
     ("clean", lambda u: u.attributes.unknown == ((0xE0, 99, b"x"),))),
    ("LOCAL_PREF from eBGP ignored", update(MANDATORY + attr(0x40, 5, bytes(4))), EBGP,
     ("clean", lambda u: u.attributes.local_pref is None)),
    ("LOCAL_PREF from iBGP kept", update(MANDATORY + attr(0x40, 5, struct.pack("!I", 7))), IBGP,
     ("clean", lambda u: u.attributes.local_pref == 7)),
    # session resets
    ("unrecognized well-known attribute", update(MANDATORY + attr(0x40, 99, b"zz")), EBGP,
     ("reset", 3, 2, attr(0x40, 99, b"zz"))),
    ("MP_REACH twice", update(MANDATORY + mp_reach(2, 1, NH6, NLRI6) + mp_reach(2, 1, NH6, NLRI6), b""),
     EBGP, ("reset", 3, 1, b"")),
    ("MP_UNREACH twice", update(mp_unreach(2, 1, NLRI6) + mp_unreach(2, 1, NLRI6), b""), EBGP,
     ("reset", 3, 1, b"")),
    ("UPDATE shorter than 4", b"\x00\x00\x00", EBGP, ("reset", 3, 1, b"")),
    ("withdrawn length overruns", b"\x00\x05\x18\xc6\x33\x64", EBGP, ("reset", 3, 1, b"")),
    ("total attribute length overruns", b"\x00\x00\x00\x10" + MANDATORY[:4], EBGP,
     ("reset", 3, 1, b"")),
    ("NLRI prefix length 33", update(MANDATORY, b"\x21" + bytes(5)), EBGP, ("reset", 3, 10, b"")),
    ("withdrawn prefix length 33", update(b"", b"", b"\x21" + bytes(5)), EBGP,
     ("reset", 3, 10, b"")),
    ("NLRI prefix overruns", update(MANDATORY, b"\x18\xc6\x33"), EBGP, ("reset", 3, 10, b"")),
    ("add-path NLRI truncated", update(MANDATORY, b"\x00\x00\x00"),
     Negotiated(addpath_rx=frozenset({IPV4_UNICAST})), ("reset", 3, 10, b"")),
    ("MP_REACH IPv6 next hop length 4", update(ORIGIN + AS_PATH + mp_reach(2, 1, bytes(4), NLRI6), b""),
     EBGP, ("reset", 3, 9, b"")),
    ("MP_REACH IPv6 next hop length 12", update(ORIGIN + AS_PATH + mp_reach(2, 1, bytes(12), NLRI6), b""),
     EBGP, ("reset", 3, 9, b"")),
    ("MP_REACH IPv4 next hop length 8", update(ORIGIN + AS_PATH + mp_reach(1, 1, bytes(8), NLRI), b""),
     EBGP, ("reset", 3, 9, b"")),
    ("MP_REACH next hop overruns", update(ORIGIN + AS_PATH + attr(0x90, 14, b"\x00\x02\x01\x20" + NH6), b""),
     EBGP, ("reset", 3, 9, b"")),
    ("MP_REACH shorter than 5", update(ORIGIN + AS_PATH + attr(0x90, 14, b"\x00\x02\x01\x00"), b""),
     EBGP, ("reset", 3, 9, b"")),
    ("MP_REACH IPv6 prefix length 129", update(ORIGIN + AS_PATH + mp_reach(2, 1, NH6, b"\x81" + bytes(16)),
                                               b""), EBGP, ("reset", 3, 9, b"")),
    ("MP_UNREACH shorter than 3", update(attr(0x90, 15, b"\x00\x02"), b""), EBGP, ("reset", 3, 9, b"")),
    ("MP_REACH flags transitive", update(ORIGIN + AS_PATH + mp_reach(2, 1, NH6, NLRI6, flags=0xD0), b""),
     EBGP, ("reset", 3, 4, mp_reach(2, 1, NH6, NLRI6, flags=0xD0))),
    ("MP_REACH flags transitive, short length", update(ORIGIN + AS_PATH + mp_reach(2, 1, NH6, NLRI6,
                                                                                  flags=0xC0), b""),
     EBGP, ("reset", 3, 4, mp_reach(2, 1, NH6, NLRI6, flags=0xC0))),
    ("MP_UNREACH flags well-known", update(mp_unreach(2, 1, NLRI6, flags=0x50), b""),
     EBGP, ("reset", 3, 4, mp_unreach(2, 1, NLRI6, flags=0x50))),
]


class UpdateErrorTests(SynchronousTestCase):
    """Every UPDATE rule above, each with its exact RFC 7606 outcome or NOTIFICATION."""

    def test_table(self):
        """Each table row decodes to exactly its expected outcome."""
        for name, body, neg, expected in UPDATE_CASES:
            with self.subTest(name):
                self.check(name, body, neg, expected)

    def check(self, name, body, neg, expected):
        kind = expected[0]
        if kind == "reset":
            with self.assertRaises(NotificationError, msg=name) as cm:
                decode_update(body, neg, AttributeCache())
            e = cm.exception
            self.assertEqual((e.code, e.subcode, e.data), expected[1:], name)
            # decode_message with the same body says the same.
            with self.assertRaises(NotificationError, msg=name) as cm:
                decode_message(2, body, neg, AttributeCache())
            self.assertEqual((cm.exception.code, cm.exception.subcode), expected[1:3], name)
            return
        u = decode_update(body, neg, AttributeCache())
        if kind == "clean":
            self.assertEqual(u.problems, (), name)
            self.assertFalse(u.treat_as_withdraw, name)
            self.assertTrue(expected[1](u), f"{name}: {u!r}")
            return
        _, outcome, attr_type, subcode, taw, survives = expected
        self.assertEqual([(p.outcome, p.attr_type, p.code, p.subcode) for p in u.problems],
                         [(outcome, attr_type, 3, subcode)], name)
        self.assertEqual(u.treat_as_withdraw, taw, name)
        if taw:
            # The prefixes are still reported, to be withdrawn; no attributes go with them.
            self.assertIsNone(u.attributes, name)
            self.assertTrue(u.nlri or u.mp_reach, name)
        if survives is not None:
            self.assertTrue(survives(u), f"{name}: {u!r}")

    def test_table_is_complete(self):
        """The table names every rule the task lists (guards against rows being dropped)."""
        self.assertGreaterEqual(len(UPDATE_CASES), 60)
        self.assertEqual(len({name for name, *_ in UPDATE_CASES}), len(UPDATE_CASES))

    def test_treat_as_withdraw_keeps_withdrawals(self):
        """A treat-as-withdraw UPDATE still carries its withdrawn routes and its NLRI."""
        u = decode_update(update(attr(0x40, 1, b"\x05") + AS_PATH + NEXT_HOP, NLRI, b"\x10\xc0\x00"),
                          EBGP, AttributeCache())
        self.assertTrue(u.treat_as_withdraw)
        self.assertEqual((u.withdrawn, u.nlri), ([b"\x10\xc0\x00"], [NLRI]))

    def test_treat_as_withdraw_mp_reach(self):
        """Treat-as-withdraw reaches into MP_REACH_NLRI: its prefixes come back without attributes."""
        u = decode_update(update(attr(0x40, 1, b"\x05") + AS_PATH + mp_reach(2, 1, NH6, NLRI6), b""),
                          EBGP, AttributeCache())
        self.assertTrue(u.treat_as_withdraw)
        self.assertEqual((u.mp_reach.afi, u.mp_reach.nlri, u.mp_reach.attributes), (2, [NLRI6], None))

    def test_own_next_hop_through_the_cache(self):
        """A NEXT_HOP that is our address is caught even when another session interned the bytes."""
        cache = AttributeCache()
        other = decode_update(update(MANDATORY), EBGP, cache)
        self.assertEqual(other.problems, ())
        mine = decode_update(update(MANDATORY), Negotiated(local_addresses=frozenset({"192.0.2.1"})),
                             cache)
        self.assertTrue(mine.treat_as_withdraw)
        self.assertEqual([(p.attr_type, p.subcode) for p in mine.problems], [(3, 8)])

    def test_bad_update_not_interned(self):
        """An UPDATE with a problem is not cached: the next clean one with other bytes decodes clean."""
        cache = AttributeCache()
        body = update(MANDATORY + attr(0x40, 6, b"\x00"))
        first = decode_update(body, EBGP, cache)
        second = decode_update(body, EBGP, cache)
        self.assertEqual(len(second.problems), 1)
        self.assertEqual(first, second)
        self.assertEqual(len(cache), 0)


def open_body(version: int = 4, params: bytes = b"", opt_len: int | None = None) -> bytes:
    return (struct.pack("!BHH4sB", version, 65001, 90, socket.inet_aton("192.0.2.1"),
                        len(params) if opt_len is None else opt_len) + params)


OPEN_CASES = [
    ("version 3", open_body(3), (2, 1, b"\x00\x04")),
    ("version 5", open_body(5), (2, 1, b"\x00\x04")),
    ("optional parameter type 1 (authentication)", open_body(params=b"\x01\x02ab"), (2, 4, b"")),
    ("optional parameter type 3", open_body(params=b"\x03\x00"), (2, 4, b"")),
    ("optional parameter overruns", open_body(params=b"\x02\x08\x01\x04\x00\x01\x00\x01"),
     (2, 0, b"")),
    ("optional parameter header truncated", open_body(params=b"\x02"), (2, 0, b"")),
    ("optional parameters length too long", open_body(params=b"\x02\x00", opt_len=5), (2, 0, b"")),
    ("optional parameters length too short", open_body(params=b"\x02\x00", opt_len=1), (2, 0, b"")),
    ("capability overruns its parameter", open_body(params=b"\x02\x04\x01\x06\x00\x01"), (2, 0, b"")),
    ("capability header truncated", open_body(params=b"\x02\x01\x01"), (2, 0, b"")),
    ("multiprotocol capability length 3", open_body(params=b"\x02\x05\x01\x03\x00\x01\x00"),
     (2, 0, b"")),
    ("4-octet AS capability length 2", open_body(params=b"\x02\x04\x41\x02\x00\x01"), (2, 0, b"")),
    ("add-path send/receive 4", open_body(params=b"\x02\x06\x45\x04\x00\x01\x01\x04"), (2, 0, b"")),
    ("graceful restart length 3", open_body(params=b"\x02\x05\x40\x03\x00\x00\x00"), (2, 0, b"")),
    ("RFC 9072 extended length mismatch",
     open_body(params=b"\xff\x00\x09\x02\x00\x02\x41\x04", opt_len=255), (2, 0, b"")),
    ("RFC 9072 extended parameters truncated", open_body(params=b"\xff\x00", opt_len=255),
     (2, 0, b"")),
    ("OPEN body under 10 octets", open_body()[:9], (1, 2, b"\x00\x1c")),
]


class OpenErrorTests(SynchronousTestCase):
    """RFC 4271 6.2, RFC 5492, RFC 9072: OPEN errors with their exact NOTIFICATION."""

    def test_table(self):
        """Each OPEN row raises exactly its (code, subcode, data)."""
        for name, body, expected in OPEN_CASES:
            with self.subTest(name):
                with self.assertRaises(NotificationError, msg=name) as cm:
                    decode_message(1, body)
                e = cm.exception
                self.assertEqual((e.code, e.subcode, e.data), expected, name)

    def test_extended_parameters_accepted(self):
        """A well-formed RFC 9072 OPEN with one capability decodes."""
        cap = b"\x41\x04" + struct.pack("!I", 4200000001)
        param = b"\x02" + struct.pack("!H", len(cap)) + cap
        params = b"\xff" + struct.pack("!H", len(param)) + param
        msg = decode_message(1, open_body(params=params, opt_len=255))
        self.assertIsInstance(msg, Open)
        self.assertEqual(msg.asn, 4200000001)

    def test_no_parameters(self):
        """An OPEN without optional parameters decodes with no capabilities."""
        msg = decode_message(1, open_body())
        self.assertEqual((msg.my_as, msg.hold_time, msg.bgp_id, msg.capabilities), (65001, 90,
                                                                                   "192.0.2.1", ()))


class OtherMessageErrorTests(SynchronousTestCase):
    """ROUTE-REFRESH (RFC 7313 5) and NOTIFICATION length errors."""

    def test_route_refresh_length(self):
        """ROUTE-REFRESH bodies other than 4 octets: 7/1 with the whole message as data."""
        for body in (b"\x00\x01\x01\x01\x00", b"\x00\x01\x02\x01" + bytes(20), b"\x00\x01\x01"):
            with self.assertRaises(NotificationError) as cm:
                decode_message(5, body)
            e = cm.exception
            whole = b"\xff" * 16 + struct.pack("!HB", 19 + len(body), 5) + body
            self.assertEqual((e.code, e.subcode, e.data), (7, 1, whole))

    def test_route_refresh_ok(self):
        """A 4-octet ROUTE-REFRESH body decodes: AFI, subtype (RFC 7313), SAFI."""
        self.assertEqual(decode_message(5, b"\x00\x02\x02\x01"), RouteRefresh(2, 1, 2))

    def test_notification_too_short(self):
        """A NOTIFICATION body under 2 octets is 1/2 with the message length."""
        for body, length in ((b"", b"\x00\x13"), (b"\x06", b"\x00\x14")):
            with self.assertRaises(NotificationError) as cm:
                decode_message(3, body)
            e = cm.exception
            self.assertEqual((e.code, e.subcode, e.data), (1, 2, length))

    def test_notification_minimal(self):
        """Code and subcode alone are a whole NOTIFICATION."""
        self.assertEqual(decode_message(3, b"\x04\x00"), Notification(4, 0, b""))
