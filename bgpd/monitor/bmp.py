"""BMP messages: encoder and decoder (RFC 7854, RFC 8671, RFC 9069).

RFC 7854 section 4.1: every message starts with the common header (version
3, a 4-octet length, the type).  Section 4.2: the per-peer header of the
messages about one peer -- peer type (global 0, RD 1, local 2, and Loc-RIB 3
from RFC 9069 section 4.1), flags (V: IPv6 address, L: post-policy, A:
legacy 2-octet AS_PATH, and O: Adj-RIB-Out from RFC 8671 section 4; for
Loc-RIB, F: filtered, RFC 9069 4.2), the distinguisher, the peer's address,
AS and BGP Identifier, and the time.

Messages here: Route Monitoring (4.6, a BGP UPDATE PDU), Statistics Report
(4.8), Peer Down (4.9), Peer Up (4.10), Initiation (4.3) and Termination
(4.5).  Each is a frozen record; :func:`encode` makes the bytes and
:func:`decode` reads them back (the tests and the collector side).  No I/O,
no reactor: this is the wire part of BMP, like :mod:`bgpd.wire` for BGP.

:func:`route_updates` re-encodes routes from the RIB's attributes into
UPDATE PDUs for post-policy, Adj-RIB-Out and Loc-RIB monitoring: 4-octet
ASNs (RFC 7854 section 4.6 asks for them when the A flag is clear) and
ADD-PATH identifiers where the peer sends them (RFC 7911).
"""

from __future__ import annotations

import socket
import struct
from enum import IntEnum

import attrs

from bgpd.wire.attributes import PathAttributes
from bgpd.wire.negotiated import Negotiated
from bgpd.wire.update import pack_end_of_rib, pack_next_hop, pack_reach, pack_withdraw

__all__ = [
    "BmpError",
    "Initiation",
    "MsgType",
    "PeerDownMsg",
    "PeerHeader",
    "PeerType",
    "PeerUpMsg",
    "RouteMonitoring",
    "StatisticsReport",
    "Termination",
    "decode",
    "decode_stream",
    "encode",
    "route_updates",
]

VERSION = 3
COMMON_HEADER_LEN = 6
PEER_HEADER_LEN = 42
_COMMON = struct.Struct("!BIB")
_PEER = struct.Struct("!BB8s16sI4sII")
_TLV = struct.Struct("!HH")


class MsgType(IntEnum):
    """RFC 7854 section 4.1 message types."""

    ROUTE_MONITORING = 0
    STATISTICS_REPORT = 1
    PEER_DOWN = 2
    PEER_UP = 3
    INITIATION = 4
    TERMINATION = 5
    ROUTE_MIRRORING = 6


class PeerType(IntEnum):
    """RFC 7854 section 4.2, RFC 9069 section 4.1."""

    GLOBAL = 0
    RD = 1
    LOCAL = 2
    LOC_RIB = 3


#: Per-peer header flags (RFC 7854 4.2, RFC 8671 4).
FLAG_V = 0x80  # the peer address is IPv6
FLAG_L = 0x40  # post-policy
FLAG_A = 0x20  # legacy 2-octet AS_PATH
FLAG_O = 0x10  # Adj-RIB-Out
#: Loc-RIB instance peer flag (RFC 9069 4.2): the Loc-RIB is filtered.
FLAG_F = 0x80

#: Initiation / Peer Up information TLV types (RFC 7854 4.4, RFC 9069 5.1).
INFO_STRING = 0
INFO_SYS_DESCR = 1
INFO_SYS_NAME = 2
INFO_VRF_TABLE_NAME = 3
#: Termination TLV types (RFC 7854 4.5).
TERM_STRING = 0
TERM_REASON = 1


class TerminationReason(IntEnum):
    """RFC 7854 section 4.5."""

    ADMIN_CLOSE = 0
    UNSPECIFIED = 1
    OUT_OF_RESOURCES = 2
    REDUNDANT_CONNECTION = 3
    PERMANENTLY_ADMIN_CLOSE = 4


class Stat(IntEnum):
    """Statistics Report types (RFC 7854 4.8) that bgpd reports."""

    REJECTED_BY_POLICY = 0
    DUPLICATE_PREFIX = 1
    DUPLICATE_WITHDRAW = 2
    CLUSTER_LIST_LOOP = 3
    AS_PATH_LOOP = 4
    ORIGINATOR_ID_LOOP = 5
    AS_CONFED_LOOP = 6
    ADJ_RIB_IN_ROUTES = 7
    LOC_RIB_ROUTES = 8
    ADJ_RIB_IN_ROUTES_FAMILY = 9
    LOC_RIB_ROUTES_FAMILY = 10


#: Types whose value is a 64-bit gauge; 9 and 10 also carry AFI and SAFI.
_GAUGES = frozenset({7, 8})
_FAMILY_GAUGES = frozenset({9, 10})


class BmpError(ValueError):
    """Bytes that are not a well-formed BMP message."""


def _pack_address(address: str) -> tuple[bytes, bool]:
    """16 octets (IPv4 in the low-order four, RFC 7854 4.2) and whether it is IPv6."""
    if ":" in address:
        return socket.inet_pton(socket.AF_INET6, address.partition("%")[0]), True
    return b"\x00" * 12 + socket.inet_aton(address), False


def _unpack_address(raw: bytes, v6: bool) -> str:
    if v6:
        return socket.inet_ntop(socket.AF_INET6, raw)
    return socket.inet_ntoa(raw[12:])


@attrs.frozen
class PeerHeader:
    """The per-peer header (RFC 7854 4.2).

    ``flags`` other than V are given; V is set from ``address``.  ``timestamp``
    is seconds since the epoch (0: not known); it is sent to the
    microsecond.
    """

    address: str
    asn: int
    bgp_id: str
    timestamp: float = 0.0
    peer_type: int = PeerType.GLOBAL
    flags: int = 0
    distinguisher: bytes = b"\x00" * 8

    def pack(self) -> bytes:
        raw, v6 = _pack_address(self.address)
        flags = self.flags
        if self.peer_type != PeerType.LOC_RIB:
            flags = (flags | FLAG_V) if v6 else (flags & ~FLAG_V)
        seconds = int(self.timestamp)
        micros = int(round((self.timestamp - seconds) * 1_000_000))
        if micros >= 1_000_000:
            seconds, micros = seconds + 1, micros - 1_000_000
        return _PEER.pack(self.peer_type, flags, self.distinguisher, raw, self.asn,
                          socket.inet_aton(self.bgp_id), seconds, micros)

    @classmethod
    def unpack(cls, data: bytes, offset: int = 0) -> PeerHeader:
        if len(data) - offset < PEER_HEADER_LEN:
            raise BmpError("per-peer header cut short")
        ptype, flags, dist, raw, asn, bgp_id, seconds, micros = _PEER.unpack_from(data, offset)
        v6 = ptype != PeerType.LOC_RIB and bool(flags & FLAG_V)
        return cls(address=_unpack_address(raw, v6), asn=asn, bgp_id=socket.inet_ntoa(bgp_id),
                   timestamp=seconds + micros / 1_000_000, peer_type=ptype, flags=flags,
                   distinguisher=dist)

    @property
    def post_policy(self) -> bool:
        return self.peer_type != PeerType.LOC_RIB and bool(self.flags & FLAG_L)

    @property
    def adj_rib_out(self) -> bool:
        return self.peer_type != PeerType.LOC_RIB and bool(self.flags & FLAG_O)


def _pack_tlvs(tlvs: tuple[tuple[int, bytes], ...]) -> bytes:
    return b"".join(_TLV.pack(t, len(v)) + v for t, v in tlvs)


def _unpack_tlvs(data: bytes, offset: int, end: int) -> tuple[tuple[int, bytes], ...]:
    out = []
    while offset < end:
        if end - offset < 4:
            raise BmpError("TLV header cut short")
        t, n = _TLV.unpack_from(data, offset)
        offset += 4
        if offset + n > end:
            raise BmpError(f"TLV type {t} of {n} octets overruns the message")
        out.append((t, bytes(data[offset:offset + n])))
        offset += n
    return tuple(out)


def _bgp_message_len(data: bytes, offset: int, end: int) -> int:
    """The length of the BGP message at ``offset`` (its header says it)."""
    if end - offset < 19 or data[offset:offset + 16] != b"\xff" * 16:
        raise BmpError("not a BGP message (marker)")
    n = (data[offset + 16] << 8) | data[offset + 17]
    if n < 19 or offset + n > end:
        raise BmpError(f"BGP message of {n} octets does not fit")
    return n


@attrs.frozen
class Initiation:
    """RFC 7854 4.3: the first message on a connection; sysDescr and sysName are required."""

    tlvs: tuple[tuple[int, bytes], ...]
    msg_type = MsgType.INITIATION

    @classmethod
    def make(cls, sys_name: str, sys_descr: str, *strings: str) -> Initiation:
        tlvs = [(INFO_SYS_DESCR, sys_descr.encode()), (INFO_SYS_NAME, sys_name.encode())]
        tlvs += [(INFO_STRING, s.encode()) for s in strings]
        return cls(tuple(tlvs))

    def body(self) -> bytes:
        return _pack_tlvs(self.tlvs)

    def text(self, tlv_type: int) -> str | None:
        for t, v in self.tlvs:
            if t == tlv_type:
                return v.decode("utf-8", "replace")
        return None


@attrs.frozen
class Termination:
    """RFC 7854 4.5: the last message; the reason TLV is required."""

    tlvs: tuple[tuple[int, bytes], ...]
    msg_type = MsgType.TERMINATION

    @classmethod
    def make(cls, reason: int, text: str = "") -> Termination:
        tlvs: list[tuple[int, bytes]] = []
        if text:
            tlvs.append((TERM_STRING, text.encode()))
        tlvs.append((TERM_REASON, struct.pack("!H", reason)))
        return cls(tuple(tlvs))

    def body(self) -> bytes:
        return _pack_tlvs(self.tlvs)

    @property
    def reason(self) -> int | None:
        for t, v in self.tlvs:
            if t == TERM_REASON and len(v) == 2:
                return struct.unpack("!H", v)[0]
        return None


@attrs.frozen
class RouteMonitoring:
    """RFC 7854 4.6: one BGP UPDATE PDU (header included) about ``peer``."""

    peer: PeerHeader
    update: bytes
    msg_type = MsgType.ROUTE_MONITORING

    def body(self) -> bytes:
        return self.peer.pack() + self.update


@attrs.frozen
class StatisticsReport:
    """RFC 7854 4.8: counters and gauges about ``peer``.

    ``stats``: ``(type, value)`` pairs; for types 9 and 10 the value is
    ``(afi, safi, count)``.  Types 7-10 are 64-bit gauges, the others
    32-bit counters.
    """

    peer: PeerHeader
    stats: tuple[tuple[int, object], ...]
    msg_type = MsgType.STATISTICS_REPORT

    def body(self) -> bytes:
        parts = [self.peer.pack(), struct.pack("!I", len(self.stats))]
        for t, value in self.stats:
            if t in _FAMILY_GAUGES:
                afi, safi, n = value  # type: ignore[misc]
                parts.append(struct.pack("!HHHBQ", t, 11, afi, safi, n))
            elif t in _GAUGES:
                parts.append(struct.pack("!HHQ", t, 8, value))
            else:
                parts.append(struct.pack("!HHI", t, 4, int(value) & 0xFFFFFFFF))  # type: ignore[call-overload]
        return b"".join(parts)

    def get(self, stat_type: int) -> object:
        for t, v in self.stats:
            if t == stat_type:
                return v
        return None


@attrs.frozen
class PeerDownMsg:
    """RFC 7854 4.9: ``reason`` 1-5 and its data (a NOTIFICATION, or a 2-octet FSM event)."""

    peer: PeerHeader
    reason: int
    data: bytes = b""
    msg_type = MsgType.PEER_DOWN

    @classmethod
    def make(cls, peer: PeerHeader, reason: int, notification: bytes = b"",
             fsm_event: int = 0) -> PeerDownMsg:
        if reason in (1, 3):
            data = notification
        elif reason == 2:
            data = struct.pack("!H", fsm_event)
        else:
            data = b""
        return cls(peer, reason, data)

    def body(self) -> bytes:
        return self.peer.pack() + bytes((self.reason,)) + self.data

    @property
    def fsm_event(self) -> int | None:
        if self.reason == 2 and len(self.data) == 2:
            return struct.unpack("!H", self.data)[0]
        return None


@attrs.frozen
class PeerUpMsg:
    """RFC 7854 4.10: the connection's endpoints and both OPENs (whole messages)."""

    peer: PeerHeader
    local_address: str
    local_port: int
    remote_port: int
    sent_open: bytes
    received_open: bytes
    tlvs: tuple[tuple[int, bytes], ...] = ()
    msg_type = MsgType.PEER_UP

    def body(self) -> bytes:
        raw, _v6 = _pack_address(self.local_address)
        return (self.peer.pack() + raw + struct.pack("!HH", self.local_port, self.remote_port)
                + self.sent_open + self.received_open + _pack_tlvs(self.tlvs))


Message = Initiation | Termination | RouteMonitoring | StatisticsReport | PeerDownMsg | PeerUpMsg


def encode(msg: Message) -> bytes:
    """The message with its common header (RFC 7854 4.1)."""
    body = msg.body()
    return _COMMON.pack(VERSION, COMMON_HEADER_LEN + len(body), msg.msg_type) + body


def decode(data: bytes, offset: int = 0) -> tuple[Message, int]:
    """The message at ``offset`` and the offset after it; raises :class:`BmpError`."""
    if len(data) - offset < COMMON_HEADER_LEN:
        raise BmpError("common header cut short")
    version, length, msg_type = _COMMON.unpack_from(data, offset)
    if version != VERSION:
        raise BmpError(f"version {version}, expected {VERSION}")
    end = offset + length
    if length < COMMON_HEADER_LEN or end > len(data):
        raise BmpError(f"length {length} does not fit the {len(data) - offset} octets there")
    pos = offset + COMMON_HEADER_LEN
    if msg_type == MsgType.INITIATION:
        return Initiation(_unpack_tlvs(data, pos, end)), end
    if msg_type == MsgType.TERMINATION:
        return Termination(_unpack_tlvs(data, pos, end)), end
    if msg_type not in (0, 1, 2, 3):
        raise BmpError(f"message type {msg_type}")
    peer = PeerHeader.unpack(data, pos)
    pos += PEER_HEADER_LEN
    if msg_type == MsgType.ROUTE_MONITORING:
        n = _bgp_message_len(data, pos, end)
        if pos + n != end:
            raise BmpError("Route Monitoring carries more than one BGP message")
        return RouteMonitoring(peer, bytes(data[pos:end])), end
    if msg_type == MsgType.PEER_DOWN:
        if pos >= end:
            raise BmpError("Peer Down without a reason")
        return PeerDownMsg(peer, data[pos], bytes(data[pos + 1:end])), end
    if msg_type == MsgType.PEER_UP:
        if end - pos < 20:
            raise BmpError("Peer Up cut short")
        local = _unpack_address(data[pos:pos + 16], peer.flags & FLAG_V != 0
                                or data[pos:pos + 12] != b"\x00" * 12)
        lport, rport = struct.unpack_from("!HH", data, pos + 16)
        pos += 20
        n = _bgp_message_len(data, pos, end)
        sent = bytes(data[pos:pos + n])
        pos += n
        m = _bgp_message_len(data, pos, end)
        received = bytes(data[pos:pos + m])
        pos += m
        return PeerUpMsg(peer, local, lport, rport, sent, received,
                         _unpack_tlvs(data, pos, end)), end
    # Statistics Report
    if end - pos < 4:
        raise BmpError("Statistics Report cut short")
    (count,) = struct.unpack_from("!I", data, pos)
    pos += 4
    stats: list[tuple[int, object]] = []
    for _ in range(count):
        if end - pos < 4:
            raise BmpError("statistic cut short")
        t, n = _TLV.unpack_from(data, pos)
        pos += 4
        if pos + n > end:
            raise BmpError(f"statistic type {t} overruns the message")
        value = data[pos:pos + n]
        if t in _FAMILY_GAUGES and n == 11:
            stats.append((t, struct.unpack("!HBQ", value)))
        elif n == 8:
            stats.append((t, struct.unpack("!Q", value)[0]))
        elif n == 4:
            stats.append((t, struct.unpack("!I", value)[0]))
        else:
            stats.append((t, bytes(value)))
        pos += n
    return StatisticsReport(peer, tuple(stats)), end


def decode_stream(data: bytes) -> list[Message]:
    """Every message of a whole byte string (tests, a capture)."""
    out = []
    pos = 0
    while pos < len(data):
        msg, pos = decode(data, pos)
        out.append(msg)
    return out


def message_length(data: bytes | bytearray) -> int | None:
    """The length of the message starting ``data`` from its common header, or None if cut."""
    if len(data) < COMMON_HEADER_LEN:
        return None
    return int.from_bytes(data[1:5], "big")


# -- UPDATE PDUs from the RIB's attributes --------------------------------------

_NEG_PLAIN = Negotiated(as4=True)
_NEG_CACHE: dict[tuple[int, int], Negotiated] = {}


def _negotiated(family: tuple[int, int], addpath: bool) -> Negotiated:
    if not addpath:
        return _NEG_PLAIN
    neg = _NEG_CACHE.get(family)
    if neg is None:
        neg = _NEG_CACHE[family] = Negotiated(as4=True, families=frozenset({family}),
                                              addpath_tx=frozenset({family}))
    return neg


#: A BGP UPDATE's fixed parts (RFC 4271 4.3): marker, length, type 2, the two lengths.
_REACH_HEAD = struct.Struct("!16sHBHH").pack
#: ... with an MP_REACH_NLRI attribute first (RFC 4760 3: optional, extended length).
_MP_REACH_HEAD = struct.Struct("!16sHBHHBBHHBB").pack
_MARKER = b"\xff" * 16
_MAX_UPDATE = 4096
#: The attributes last encoded here and their bytes (AS4, with and without NEXT_HOP).
_last_packed: list = [None, None, None]


def _packed(attributes: PathAttributes, with_next_hop: bool) -> bytes:
    """``attributes`` encoded with 4-octet ASNs, not kept on the attribute set.

    ``PathAttributes.pack`` keeps each encoding on the set (shared by the
    peers it is sent to); BMP encodes nearly every received set once, so
    that cache would only hold a second copy of the table's attributes
    (about 70 MiB at a full table).  The last set's bytes are kept here:
    the RIB reports one UPDATE's prefixes in consecutive calls.
    """
    last = _last_packed
    slot = 1 if with_next_hop else 2
    if last[0] is attributes:
        data = last[slot]
        if data is None:
            data = last[slot] = attributes.pack_uncached(True, with_next_hop)
        return data
    data = attributes.pack_uncached(True, with_next_hop)
    last[0] = attributes
    last[1] = last[2] = None
    last[slot] = data
    return data


def route_updates(family: tuple[int, int], attributes: PathAttributes | None, keys: list,
                  addpath: bool = False) -> list[bytes]:
    """UPDATE PDUs announcing ``keys`` with ``attributes``, or withdrawing them (None).

    4-octet ASNs always (RFC 7854 4.6: the A flag stays clear), 4096 octets
    per message at most (what every collector reads), as many prefixes in
    each as fit; ``addpath``: ``keys`` are ``(path id, prefix)`` pairs
    (RFC 7911).  The bytes are :func:`bgpd.wire.update.pack_reach`'s; the
    common case (one message, no path identifiers) is built here from
    attributes encoded without the attribute set's cache (see _packed).
    """
    if not keys:
        return []
    afi, safi = family
    if attributes is None:
        return pack_withdraw(afi, safi, keys, _negotiated(family, addpath))
    if not addpath:
        nlri = b"".join(keys)
        nh = attributes.next_hop
        if afi == 1 and safi == 1 and (nh is None or ":" not in nh):
            attrs = _packed(attributes, True)
            n = 23 + len(attrs) + len(nlri)
            if n <= _MAX_UPDATE:
                return [_REACH_HEAD(_MARKER, n, 2, 0, len(attrs)) + attrs + nlri]
        else:
            attrs = _packed(attributes, False)
            hop = pack_next_hop(attributes, afi)
            n_nh = len(hop)
            n_nlri = len(nlri)
            # MP_REACH_NLRI: 4 octets of attribute header, AFI, SAFI, next-hop
            # length, the next hop, the reserved octet, the NLRI.
            mp_len = 5 + n_nh + n_nlri
            n = 23 + 4 + mp_len + len(attrs)
            if n <= _MAX_UPDATE and n_nlri:
                return [_MP_REACH_HEAD(_MARKER, n, 2, 0, 4 + mp_len + len(attrs), 0x90, 14, mp_len,
                                       afi, safi, n_nh) + hop + b"\x00" + nlri + attrs]
    return pack_reach(afi, safi, attributes, keys, _negotiated(family, addpath))


def end_of_rib(family: tuple[int, int]) -> bytes:
    """The End-of-RIB marker for ``family`` (RFC 4724 2; RFC 7854 5 uses it after a dump)."""
    return pack_end_of_rib(*family)
