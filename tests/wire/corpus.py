"""Targeted mutations of valid seed messages, one per error rule, each with its exact outcome.

The random fuzzer (``fuzzing.py``) only shows that nothing but
NotificationError comes out of the codec.  This corpus says, rule by rule,
*which* outcome the RFCs prescribe:

* RFC 4271 section 6.1 (message header), 6.2 (OPEN), 6.3 (UPDATE), 6.4
  (NOTIFICATION): the NOTIFICATION code, subcode and, where the RFC says
  what it holds, the data;
* RFC 7606 sections 3 (a-h), 4, 5 and 7.1-7.14, with RFC 4760, RFC 6793,
  RFC 8092, RFC 8950, RFC 9234 where they say more: the action
  (treat-as-withdraw, attribute discard, session reset), the attribute it
  was about and the subcode RFC 4271 would have used;
* RFC 7313 section 5 (ROUTE-REFRESH length).

RFC 7606 lets "session reset" or "AFI/SAFI disable" answer a broken
MP_REACH_NLRI / MP_UNREACH_NLRI or NLRI field (sections 5.3, 7.11); bgpd
resets the session, so those rows expect the NOTIFICATION.  RFC 4271 6.5
(hold timer) and 6.6 (FSM error) are session events, not bytes: they are
tested with the FSM in tests/session.

Each case starts from a seed our encoder made (``SEED_OPEN``,
``SEED_UPDATE``...) and changes the one field its rule is about; the whole
message then goes through :class:`Framer` and :func:`decode_message` (and
for the OPEN rules that need the configuration, through
:func:`bgpd.session.negotiation.negotiate`), as a session would run it.
"""

from __future__ import annotations

import socket
import struct
from dataclasses import dataclass

from bgpd.config import NeighborConfig
from bgpd.session.negotiation import local_open, negotiate
from bgpd.wire.attributes import AttributeCache, PathAttributes
from bgpd.wire.capabilities import Multiprotocol
from bgpd.wire.constants import IPV4_UNICAST
from bgpd.wire.errors import NotificationError, Outcome
from bgpd.wire.message import KEEPALIVE, Framer, decode_message, encode_message
from bgpd.wire.negotiated import Negotiated
from bgpd.wire.notification import Notification
from bgpd.wire.open import Open
from bgpd.wire.refresh import RouteRefresh
from bgpd.wire.update import pack_reach

TAW = Outcome.TREAT_AS_WITHDRAW
DISCARD = Outcome.ATTRIBUTE_DISCARD

EBGP = Negotiated()
IBGP = Negotiated(ibgp=True)
AS2 = Negotiated(as4=False)
EXT_NH = Negotiated(ext_nexthop_rx=frozenset({(1, 1, 2)}))
MINE = Negotiated(local_addresses=frozenset({"192.0.2.1", "2001:db8::1"}))
ON_LINK = Negotiated(local_addresses=frozenset({"fe80::2"}))
V4_ONLY = Negotiated(families=frozenset({IPV4_UNICAST}))
FIRST_AS = Negotiated(peer_as=65002, enforce_first_as=True)

# -- seeds, each made by our encoder ------------------------------------------------

NLRI = b"\x18\xc6\x33\x64"  # 198.51.100.0/24
NLRI6 = b"\x30\x20\x01\x0d\xb8\x00\x01"  # 2001:db8:1::/48
NH6 = socket.inet_pton(socket.AF_INET6, "2001:db8::1")
LL6 = socket.inet_pton(socket.AF_INET6, "fe80::1")

SEED_OPEN = encode_message(Open.make(65001, 90, "192.0.2.2", (Multiprotocol(1, 1),)))
#: an OPEN from a speaker without the 4-octet AS capability: My AS is its AS
SEED_OPEN_AS2 = encode_message(Open(65001, 90, "192.0.2.2", (Multiprotocol(1, 1),)))
SEED_ATTRS = PathAttributes(origin=0, as_path=((2, (65001,)),), next_hop="192.0.2.1")
SEED_UPDATE = pack_reach(1, 1, SEED_ATTRS, [NLRI])[0]
SEED_UPDATE6 = pack_reach(2, 1, SEED_ATTRS.replace(next_hop="2001:db8::1"), [NLRI6])[0]
SEED_KEEPALIVE = encode_message(KEEPALIVE)
SEED_NOTIFICATION = encode_message(Notification(6, 2))
SEED_REFRESH = encode_message(RouteRefresh(1, 1))

# The neighbor the OPEN seed is checked against (RFC 4271 6.2 needs the config).
NEIGHBOR = NeighborConfig(address="192.0.2.2", remote_as=65001, local_as=65000)


# -- field surgery ----------------------------------------------------------------------

def header(msg: bytes, length: int | None = None, msg_type: int | None = None,
           marker: bytes | None = None) -> bytes:
    """``msg`` with its header's length, type or marker replaced."""
    out = bytearray(msg)
    if marker is not None:
        out[:16] = marker
    if length is not None:
        struct.pack_into("!H", out, 16, length)
    if msg_type is not None:
        out[18] = msg_type
    return bytes(out)


def with_body(msg: bytes, body: bytes) -> bytes:
    """``msg``'s header (type) around a new body, the length made true."""
    return b"\xff" * 16 + struct.pack("!HB", 19 + len(body), msg[18]) + body


def open_field(seed: bytes = SEED_OPEN, **fields: int | bytes) -> bytes:
    """``seed`` with version / my_as / hold / bgp_id / the optional parameters replaced."""
    body = bytearray(seed[19:])
    if "version" in fields:
        body[0] = fields["version"]
    if "my_as" in fields:
        struct.pack_into("!H", body, 1, fields["my_as"])
    if "hold" in fields:
        struct.pack_into("!H", body, 3, fields["hold"])
    if "bgp_id" in fields:
        body[5:9] = fields["bgp_id"]
    if "params" in fields:
        params = fields["params"]
        body = body[:9] + bytes((len(params),)) + params
    if "opt_len" in fields:
        body[9] = fields["opt_len"]
    return with_body(seed, bytes(body))


def attr(flags: int, code: int, value: bytes) -> bytes:
    if flags & 0x10:
        return struct.pack("!BBH", flags, code, len(value)) + value
    return struct.pack("!BBB", flags, code, len(value)) + value


def split_update(msg: bytes) -> tuple[bytes, list[tuple[int, int, bytes]], bytes]:
    """(withdrawn routes, [(flags, code, value)], NLRI) of a well-formed UPDATE."""
    body = msg[19:]
    wlen = struct.unpack_from("!H", body)[0]
    withdrawn = body[2:2 + wlen]
    alen = struct.unpack_from("!H", body, 2 + wlen)[0]
    i, end = 4 + wlen, 4 + wlen + alen
    attrs = []
    while i < end:
        flags, code = body[i], body[i + 1]
        if flags & 0x10:
            n, vs = struct.unpack_from("!H", body, i + 2)[0], i + 4
        else:
            n, vs = body[i + 2], i + 3
        attrs.append((flags, code, body[vs:vs + n]))
        i = vs + n
    return withdrawn, attrs, body[end:]


def join_update(withdrawn: bytes, attrs: list[tuple[int, int, bytes]], nlri: bytes,
                extra: bytes = b"") -> bytes:
    block = b"".join(attr(f, c, v) for f, c, v in attrs) + extra
    body = struct.pack("!H", len(withdrawn)) + withdrawn + struct.pack("!H", len(block)) + block
    return b"\xff" * 16 + struct.pack("!HB", 19 + len(body) + len(nlri), 2) + body + nlri


def mutate(seed: bytes = SEED_UPDATE, *, set_flags: dict[int, int] | None = None,
           set_value: dict[int, bytes] | None = None, drop: tuple[int, ...] = (),
           add: tuple[bytes, ...] = (), nlri: bytes | None = None,
           withdrawn: bytes | None = None) -> bytes:
    """``seed`` with attribute flags or values replaced, attributes dropped or appended
    (raw bytes, so they may be malformed), the NLRI or withdrawn routes replaced."""
    wd, attrs, nl = split_update(seed)
    out = []
    for flags, code, value in attrs:
        if code in drop:
            continue
        flags = (set_flags or {}).get(code, flags)
        value = (set_value or {}).get(code, value)
        out.append((flags, code, value))
    return join_update(wd if withdrawn is None else withdrawn, out, nl if nlri is None else nlri,
                       b"".join(add))


def mp_reach(afi: int, safi: int, nh: bytes, nlri: bytes, flags: int = 0x90) -> bytes:
    return attr(flags, 14, struct.pack("!HBB", afi, safi, len(nh)) + nh + b"\x00" + nlri)


def mp_unreach(afi: int, safi: int, nlri: bytes, flags: int = 0x90) -> bytes:
    return attr(flags, 15, struct.pack("!HB", afi, safi) + nlri)


def mp6(nh: bytes = NH6, nlri: bytes = NLRI6, afi: int = 2, safi: int = 1,
        flags: int = 0x90) -> bytes:
    """SEED_UPDATE6 with its MP_REACH_NLRI rebuilt from these fields."""
    return mutate(SEED_UPDATE6, drop=(14,), add=(mp_reach(afi, safi, nh, nlri, flags),))


AS_SEQ = b"\x02\x01" + struct.pack("!I", 65001)
AS_PATH_ATTR = attr(0x40, 2, AS_SEQ)


# -- the corpus --------------------------------------------------------------------------

@dataclass(frozen=True)
class Case:
    """One rule: the bytes that break it and what must happen.

    ``expect`` is one of
    ``("notification", code, subcode, data)`` (``data`` None: not specified),
    ``("7606", [(outcome, attribute type, subcode), ...], treat_as_withdraw)``,
    ``("clean", check)`` with ``check(message) -> bool``.
    ``negotiate``: the OPEN rule needs the configuration (RFC 4271 6.2).
    """

    rule: str
    what: str
    data: bytes
    expect: tuple
    neg: Negotiated = EBGP
    negotiate: bool = False


def _flags_row(code: int, bad: int, neg: Negotiated = EBGP) -> Case:
    """An attribute with a flags value its definition forbids (the seed's own, or added)."""
    value = {4: bytes(4), 5: bytes(4), 6: b"", 7: bytes(8), 8: bytes(4), 9: bytes(4),
             10: bytes(4), 16: bytes(8), 25: bytes(20), 32: bytes(12), 35: bytes(4)}.get(code)
    if code in (1, 2, 3):
        data = mutate(set_flags={code: bad})
    else:
        data = mutate(add=(attr(bad, code, value),))
    return Case("RFC 7606 3(c)", f"attribute {code} flags 0x{bad:02x}", data,
                ("7606", [(TAW, code, 4)], True), neg)


CASES: list[Case] = [
    # ---- RFC 4271 6.1: message header
    Case("RFC 4271 6.1", "marker not all ones", header(SEED_KEEPALIVE, marker=b"\xff" * 15 + b"\x00"),
         ("notification", 1, 1, b"")),
    Case("RFC 4271 6.1", "length 18", header(SEED_KEEPALIVE, length=18),
         ("notification", 1, 2, b"\x00\x12")),
    Case("RFC 4271 6.1", "length 4097", header(SEED_UPDATE, length=4097) + bytes(4097 - 19),
         ("notification", 1, 2, b"\x10\x01")),
    Case("RFC 4271 6.1", "OPEN length 28", header(SEED_OPEN[:28], length=28),
         ("notification", 1, 2, b"\x00\x1c")),
    Case("RFC 4271 6.1", "UPDATE length 22", header(SEED_UPDATE[:22], length=22),
         ("notification", 1, 2, b"\x00\x16")),
    Case("RFC 4271 6.1", "KEEPALIVE length 20", header(SEED_KEEPALIVE + b"\x00", length=20),
         ("notification", 1, 2, b"\x00\x14")),
    Case("RFC 4271 6.1", "NOTIFICATION length 20", header(SEED_NOTIFICATION[:20], length=20),
         ("notification", 1, 2, b"\x00\x14")),
    Case("RFC 4271 6.1", "type 0", header(SEED_KEEPALIVE, msg_type=0), ("notification", 1, 3, b"\x00")),
    Case("RFC 4271 6.1", "type 6", header(SEED_KEEPALIVE, msg_type=6), ("notification", 1, 3, b"\x06")),
    # ---- RFC 4271 6.2: OPEN
    Case("RFC 4271 6.2", "version 3", open_field(version=3), ("notification", 2, 1, b"\x00\x04")),
    Case("RFC 4271 6.2", "peer AS not the configured one", open_field(SEED_OPEN_AS2, my_as=65009),
         ("notification", 2, 2, b"\xfd\xf1"), negotiate=True),
    Case("RFC 4271 6.2", "BGP identifier 0.0.0.0", open_field(bgp_id=bytes(4)),
         ("notification", 2, 3, None), negotiate=True),
    Case("RFC 4271 6.2", "optional parameter type 3", open_field(params=b"\x03\x00"),
         ("notification", 2, 4, None)),
    Case("RFC 4271 6.2", "hold time 1", open_field(hold=1), ("notification", 2, 6, None),
         negotiate=True),
    Case("RFC 4271 6.2", "hold time 2", open_field(hold=2), ("notification", 2, 6, None),
         negotiate=True),
    Case("RFC 4271 6.2", "optional parameters length disagrees", open_field(opt_len=9),
         ("notification", 2, 0, None)),
    Case("RFC 5492 5", "no address family in common (only IPv6 unicast offered)",
         open_field(params=b"\x02\x06\x01\x04\x00\x02\x00\x01"),
         ("notification", 2, 7, b"\x01\x04\x00\x01\x00\x01"), negotiate=True),
    Case("RFC 4271 6.2", "hold time 0 is accepted", open_field(hold=0),
         ("clean", lambda m: m.hold_time == 0), negotiate=True),
    # ---- RFC 4271 6.3 / RFC 7606 4, 5: UPDATE structure
    Case("RFC 4271 6.3", "withdrawn routes length overruns",
         with_body(SEED_UPDATE, b"\x00\x40" + SEED_UPDATE[21:]), ("notification", 3, 1, b"")),
    Case("RFC 4271 6.3", "total path attribute length overruns",
         with_body(SEED_UPDATE, b"\x00\x00\x01\x00" + SEED_UPDATE[23:]), ("notification", 3, 1, b"")),
    Case("RFC 4271 6.3", "unrecognized well-known attribute", mutate(add=(attr(0x40, 99, b"zz"),)),
         ("notification", 3, 2, attr(0x40, 99, b"zz"))),
    Case("RFC 4271 6.3 / RFC 7606 5.3", "NLRI prefix length 33", mutate(nlri=b"\x21" + bytes(5)),
         ("notification", 3, 10, b"")),
    Case("RFC 4271 6.3 / RFC 7606 5.3", "NLRI prefix overruns the message", mutate(nlri=b"\x18\xc6\x33"),
         ("notification", 3, 10, b"")),
    Case("RFC 4271 6.3 / RFC 7606 5.3", "withdrawn prefix length 33",
         mutate(withdrawn=b"\x21" + bytes(5)), ("notification", 3, 10, b"")),
    Case("RFC 7606 4", "attribute overruns the attribute list",
         mutate(add=(b"\xc0\x08\x08" + bytes(4),)), ("7606", [(TAW, 8, 5)], True)),
    Case("RFC 7606 4", "attribute header truncated", mutate(add=(b"\xc0\x08",)),
         ("7606", [(TAW, 0, 1)], True)),
    Case("RFC 7606 5.2", "attributes without NLRI are ignored", mutate(nlri=b""),
         ("clean", lambda m: m.attributes is None and not m.nlri)),
    # ---- RFC 7606 3: the general rules
    *[_flags_row(code, bad) for code, bad in (
        (1, 0xC0), (2, 0x80), (3, 0xC0), (4, 0xC0), (6, 0xC0), (7, 0x40), (8, 0x80),
        (16, 0x80), (32, 0x80), (35, 0x40), (25, 0x80))],
    _flags_row(5, 0xC0, IBGP),
    _flags_row(9, 0xC0, IBGP),
    _flags_row(10, 0x40, IBGP),
    Case("RFC 7606 3(c) / RFC 4760 7", "MP_REACH_NLRI flags transitive: its NLRI cannot be trusted",
         mp6(flags=0xD0), ("notification", 3, 4, mp_reach(2, 1, NH6, NLRI6, 0xD0))),
    Case("RFC 7606 3(c) / RFC 4760 7", "MP_UNREACH_NLRI flags well-known",
         join_update(b"", [], b"", mp_unreach(2, 1, NLRI6, 0x50)),
         ("notification", 3, 4, mp_unreach(2, 1, NLRI6, 0x50))),
    Case("RFC 7606 3(d)", "ORIGIN missing", mutate(drop=(1,)), ("7606", [(TAW, 1, 3)], True)),
    Case("RFC 7606 3(d)", "AS_PATH missing", mutate(drop=(2,)), ("7606", [(TAW, 2, 3)], True)),
    Case("RFC 7606 3(d)", "NEXT_HOP missing", mutate(drop=(3,)), ("7606", [(TAW, 3, 3)], True)),
    Case("RFC 7606 3(d) / RFC 4760 3", "NEXT_HOP not needed with MP_REACH_NLRI only", SEED_UPDATE6,
         ("clean", lambda m: m.mp_reach.attributes.next_hop == "2001:db8::1")),
    Case("RFC 7606 3(e)", "MP_UNREACH_NLRI alone, no other attribute",
         join_update(b"", [], b"", mp_unreach(2, 1, NLRI6)),
         ("clean", lambda m: m.mp_unreach.withdrawn == [NLRI6])),
    Case("RFC 7606 3(f)", "MP_REACH_NLRI twice", mutate(SEED_UPDATE6, add=(mp_reach(2, 1, NH6, NLRI6),)),
         ("notification", 3, 1, b"")),
    Case("RFC 7606 3(f)", "MP_UNREACH_NLRI twice",
         join_update(b"", [], b"", mp_unreach(2, 1, NLRI6) + mp_unreach(2, 1, NLRI6)),
         ("notification", 3, 1, b"")),
    Case("RFC 7606 3(g)", "MED twice: the first is kept",
         mutate(add=(attr(0x80, 4, struct.pack("!I", 1)), attr(0x80, 4, struct.pack("!I", 2)))),
         ("7606", [(DISCARD, 4, 1)], False)),
    Case("RFC 7606 3(g)", "ORIGIN twice: the first is kept", mutate(add=(attr(0x40, 1, b"\x02"),)),
         ("7606", [(DISCARD, 1, 1)], False)),
    Case("RFC 7606 3(h)", "a discard and a treat-as-withdraw: the stronger wins",
         mutate(add=(attr(0x40, 6, b"\x00"), attr(0x80, 4, bytes(3)))),
         ("7606", [(DISCARD, 6, 5), (TAW, 4, 5)], True)),
    # ---- RFC 7606 7.1-7.14, per attribute
    Case("RFC 7606 7.1", "ORIGIN length 2", mutate(set_value={1: b"\x00\x00"}),
         ("7606", [(TAW, 1, 5)], True)),
    Case("RFC 7606 7.1", "ORIGIN value 3", mutate(set_value={1: b"\x03"}), ("7606", [(TAW, 1, 6)], True)),
    Case("RFC 7606 7.2", "AS_PATH segment type 5", mutate(set_value={2: b"\x05\x01" + bytes(4)}),
         ("7606", [(TAW, 2, 11)], True)),
    Case("RFC 7606 7.2", "AS_PATH segment of length 0", mutate(set_value={2: b"\x02\x00"}),
         ("7606", [(TAW, 2, 11)], True)),
    Case("RFC 7606 7.2", "AS_PATH segment overruns", mutate(set_value={2: b"\x02\x02" + bytes(4)}),
         ("7606", [(TAW, 2, 11)], True)),
    Case("RFC 7606 7.2", "AS_PATH one octet left over", mutate(set_value={2: AS_SEQ + b"\x02"}),
         ("7606", [(TAW, 2, 11)], True)),
    Case("RFC 7606 7.2 / RFC 4271 6.3", "leftmost AS not the peer's", SEED_UPDATE,
         ("7606", [(TAW, 2, 11)], True), FIRST_AS),
    Case("RFC 7606 7.2 / RFC 5065 5", "AS_CONFED_SEQUENCE from an external peer",
         mutate(set_value={2: b"\x03\x01" + bytes(4) + AS_SEQ}), ("7606", [(TAW, 2, 11)], True)),
    Case("RFC 7606 7.2 / RFC 5065 5", "AS_CONFED_SET from an external peer",
         mutate(set_value={2: AS_SEQ + b"\x04\x01" + bytes(4)}), ("7606", [(TAW, 2, 11)], True)),
    Case("RFC 7606 7.3", "NEXT_HOP length 5", mutate(set_value={3: bytes(5)}), ("7606", [(TAW, 3, 5)], True)),
    Case("RFC 7606 7.3 / RFC 4271 6.3", "NEXT_HOP 0.0.0.0", mutate(set_value={3: bytes(4)}),
         ("7606", [(TAW, 3, 8)], True)),
    Case("RFC 7606 7.3 / RFC 4271 6.3", "NEXT_HOP multicast",
         mutate(set_value={3: socket.inet_aton("224.0.0.5")}), ("7606", [(TAW, 3, 8)], True)),
    Case("RFC 4271 5.1.3 / 6.3", "NEXT_HOP is our own address: route ignored, no NOTIFICATION",
         SEED_UPDATE, ("7606", [(TAW, 3, 8)], True), MINE),
    Case("RFC 7606 7.4", "MULTI_EXIT_DISC length 3", mutate(add=(attr(0x80, 4, bytes(3)),)),
         ("7606", [(TAW, 4, 5)], True)),
    Case("RFC 7606 7.5", "LOCAL_PREF from an external peer, length 4: discarded",
         mutate(add=(attr(0x40, 5, bytes(4)),)),
         ("clean", lambda m: m.attributes.local_pref is None)),
    Case("RFC 7606 7.5", "LOCAL_PREF from an external peer, length 3: discarded",
         mutate(add=(attr(0x40, 5, bytes(3)),)), ("7606", [(DISCARD, 5, 5)], False)),
    Case("RFC 7606 7.5", "LOCAL_PREF from an internal peer, length 3",
         mutate(add=(attr(0x40, 5, bytes(3)),)), ("7606", [(TAW, 5, 5)], True), IBGP),
    Case("RFC 7606 7.6", "ATOMIC_AGGREGATE length 1", mutate(add=(attr(0x40, 6, b"\x00"),)),
         ("7606", [(DISCARD, 6, 5)], False)),
    Case("RFC 7606 7.7", "AGGREGATOR length 6 on a 4-octet-AS session",
         mutate(add=(attr(0xC0, 7, bytes(6)),)), ("7606", [(DISCARD, 7, 5)], False)),
    Case("RFC 7606 7.7", "AGGREGATOR length 8 on a 2-octet-AS session",
         mutate(set_value={2: b"\x02\x01\xfd\xe9"}, add=(attr(0xC0, 7, bytes(8)),)),
         ("7606", [(DISCARD, 7, 5)], False), AS2),
    Case("RFC 7606 7.8", "COMMUNITIES length 5", mutate(add=(attr(0xC0, 8, bytes(5)),)),
         ("7606", [(TAW, 8, 5)], True)),
    Case("RFC 7606 7.8", "COMMUNITIES length 0", mutate(add=(attr(0xC0, 8, b""),)),
         ("7606", [(TAW, 8, 5)], True)),
    Case("RFC 7606 7.9", "ORIGINATOR_ID from an external peer (any length)",
         mutate(add=(attr(0x80, 9, bytes(5)),)), ("7606", [(DISCARD, 9, 9)], False)),
    Case("RFC 7606 7.9", "ORIGINATOR_ID from an internal peer, length 5",
         mutate(add=(attr(0x80, 9, bytes(5)),)), ("7606", [(TAW, 9, 5)], True), IBGP),
    Case("RFC 7606 7.10", "CLUSTER_LIST from an external peer (any length)",
         mutate(add=(attr(0x80, 10, bytes(6)),)), ("7606", [(DISCARD, 10, 9)], False)),
    Case("RFC 7606 7.10", "CLUSTER_LIST from an internal peer, length 6",
         mutate(add=(attr(0x80, 10, bytes(6)),)), ("7606", [(TAW, 10, 5)], True), IBGP),
    Case("RFC 7606 7.11", "MP_REACH_NLRI IPv6 next hop length 12", mp6(nh=bytes(12)),
         ("notification", 3, 9, b"")),
    Case("RFC 7606 7.11", "MP_REACH_NLRI next hop overruns the attribute",
         mutate(SEED_UPDATE6, drop=(14,), add=(attr(0x90, 14, b"\x00\x02\x01\x20" + NH6),)),
         ("notification", 3, 9, b"")),
    Case("RFC 7606 7.11 / 5.3", "MP_REACH_NLRI prefix length 129", mp6(nlri=b"\x81" + bytes(16)),
         ("notification", 3, 9, b"")),
    Case("RFC 7606 7.11 / RFC 4760 7", "MP_REACH_NLRI for a family not negotiated",
         mutate(add=(mp_reach(2, 1, NH6, NLRI6),)), ("7606", [(DISCARD, 14, 9)], False), V4_ONLY),
    Case("RFC 7606 7.11 / RFC 8950 3", "IPv6 next hop for IPv4 NLRI, extended next hop not negotiated",
         mp6(nh=NH6, nlri=NLRI, afi=1), ("notification", 3, 9, b"")),
    Case("RFC 8950 3", "IPv6 next hop for IPv4 NLRI, extended next hop negotiated",
         mp6(nh=NH6 + LL6, nlri=NLRI, afi=1),
         ("clean", lambda m: (m.mp_reach.afi, m.mp_reach.attributes.next_hop) == (1, "2001:db8::1")),
         EXT_NH),
    Case("RFC 4760 3 / RFC 4271 6.3", "MP_REACH_NLRI next hop ::", mp6(nh=bytes(16)),
         ("7606", [(TAW, 14, 8)], True)),
    Case("RFC 4760 3 / RFC 4271 6.3", "MP_REACH_NLRI next hop multicast",
         mp6(nh=socket.inet_pton(socket.AF_INET6, "ff05::2")), ("7606", [(TAW, 14, 8)], True)),
    Case("RFC 2545 3 / RFC 4271 6.3", "MP_REACH_NLRI link-local only, session not on a shared link",
         mp6(nh=LL6), ("7606", [(TAW, 14, 8)], True)),
    Case("RFC 2545 3", "MP_REACH_NLRI link-local only over a link-local session", mp6(nh=LL6),
         ("clean", lambda m: m.mp_reach.attributes.next_hop == "fe80::1"), ON_LINK),
    Case("RFC 4271 5.1.3 / 6.3", "MP_REACH_NLRI next hop is our own address", SEED_UPDATE6,
         ("7606", [(TAW, 14, 8)], True), MINE),
    Case("RFC 7606 7.12", "Traffic Engineering attribute (not implemented): passed on, Partial set",
         mutate(add=(attr(0xC0, 24, bytes(3)),)),
         ("clean", lambda m: m.attributes.unknown == ((0xE0, 24, bytes(3)),))),
    Case("RFC 7606 7.13", "EXTENDED_COMMUNITIES length 4", mutate(add=(attr(0xC0, 16, bytes(4)),)),
         ("7606", [(TAW, 16, 5)], True)),
    Case("RFC 7606 7.14", "IPv6 Address Specific Extended Community length 8",
         mutate(add=(attr(0xC0, 25, bytes(8)),)), ("7606", [(TAW, 25, 5)], True)),
    Case("RFC 7606 7.14", "IPv6 Address Specific Extended Community length 20: passed on as is",
         mutate(add=(attr(0xC0, 25, bytes(20)),)),
         ("clean", lambda m: m.attributes.unknown == ((0xC0, 25, bytes(20)),))),
    # ---- later RFCs that name their own outcome
    Case("RFC 6793 6", "AS4_PATH malformed: discarded", mutate(
        set_value={2: b"\x02\x01\xfd\xe9"}, add=(attr(0xC0, 17, b"\x02\x02" + bytes(4)),)),
         ("7606", [(DISCARD, 17, 11)], False), AS2),
    Case("RFC 6793 6", "AS4_AGGREGATOR length 6: discarded", mutate(
        set_value={2: b"\x02\x01\xfd\xe9"}, add=(attr(0xC0, 18, bytes(6)),)),
         ("7606", [(DISCARD, 18, 5)], False), AS2),
    Case("RFC 8092 5", "LARGE_COMMUNITIES length 8", mutate(add=(attr(0xC0, 32, bytes(8)),)),
         ("7606", [(TAW, 32, 5)], True)),
    Case("RFC 9234 5", "OTC length 3", mutate(add=(attr(0xC0, 35, bytes(3)),)),
         ("7606", [(TAW, 35, 5)], True)),
    # ---- RFC 4271 6.4: a NOTIFICATION is never answered with one
    Case("RFC 4271 6.4", "NOTIFICATION with an unknown code still decodes",
         with_body(SEED_NOTIFICATION, b"\x09\x09abc"),
         ("clean", lambda m: (m.code, m.subcode, m.data) == (9, 9, b"abc"))),
    # ---- RFC 7313 5: ROUTE-REFRESH length
    Case("RFC 7313 5", "ROUTE-REFRESH length 24", with_body(SEED_REFRESH, SEED_REFRESH[19:] + b"\x00"),
         ("notification", 7, 1, with_body(SEED_REFRESH, SEED_REFRESH[19:] + b"\x00"))),
]

#: The rules the corpus must name (a row dropped by mistake fails the test).
REQUIRED_RULES = (
    "RFC 4271 6.1", "RFC 4271 6.2", "RFC 4271 6.3", "RFC 4271 6.4", "RFC 5492 5",
    "RFC 7606 3(c)", "RFC 7606 3(d)", "RFC 7606 3(e)", "RFC 7606 3(f)", "RFC 7606 3(g)",
    "RFC 7606 3(h)", "RFC 7606 4", "RFC 7606 5.2", "RFC 7606 5.3",
    *(f"RFC 7606 7.{i}" for i in range(1, 15)),
    "RFC 6793 6", "RFC 8092 5", "RFC 8950 3", "RFC 9234 5", "RFC 7313 5", "RFC 4760 3",
    "RFC 2545 3", "RFC 4271 5.1.3",
)


def outcome(case: Case) -> tuple:
    """Run ``case`` as a session would: frame, decode (then negotiate, for OPEN rules).

    Returns ``("notification", code, subcode, data)``, ``("7606", problems,
    treat_as_withdraw)`` or ``("clean", message)``.
    """
    framer = Framer(case.neg.max_message_len)
    try:
        frames = framer.feed(case.data)
        if len(frames) != 1 or len(framer):
            raise AssertionError(f"{case.what}: framed into {len(frames)} messages, "
                                 f"{len(framer)} octets left")
        msg = decode_message(frames[0][0], frames[0][1], case.neg, AttributeCache())
        if case.negotiate:
            info = negotiate(NEIGHBOR, local_open(NEIGHBOR, "192.0.2.1", "r1"), msg, "192.0.2.1")
            return ("clean", info)
    except NotificationError as e:
        return ("notification", e.code, e.subcode, e.data)
    problems = getattr(msg, "problems", ())
    if problems:
        return ("7606", [(p.outcome, p.attr_type, p.subcode) for p in problems],
                msg.treat_as_withdraw)
    return ("clean", msg)

