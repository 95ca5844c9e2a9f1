"""UPDATE message (RFC 4271 4.3, RFC 4760 3-4, RFC 7911, RFC 7606).

``decode_update`` turns one UPDATE body into an :class:`Update`: IPv4
withdrawals and NLRI, the shared :class:`PathAttributes`, and MP_REACH /
MP_UNREACH per family.  Malformed input follows RFC 7606: a session reset
raises :class:`NotificationError`; treat-as-withdraw and attribute discard
return the UPDATE with ``treat_as_withdraw`` set and ``problems`` saying why.

``pack_reach``/``pack_withdraw`` go the other way for many prefixes at once,
filling each UPDATE with as many prefixes as fit.
"""

from __future__ import annotations

import socket
import struct
from collections.abc import Callable
from typing import Any

from bgpd.wire.attributes import (
    AttributeCache,
    PathAttributes,
    _Malformed,
    merge_as4_path,
    parse_as_path,
)
from bgpd.wire.constants import (
    AS_TRANS,
    HEADER_LEN,
    IPV4_UNICAST,
    MARKER,
    AttrType,
    MsgType,
    SegmentType,
    UpdateError,
)
from bgpd.wire.errors import NotificationError, Outcome, Problem
from bgpd.wire.negotiated import DEFAULT, Negotiated
from bgpd.wire.nlri import decode_path_prefixes, decode_prefixes, encode_path_prefixes

_ntoa = socket.inet_ntoa
_ntop = socket.inet_ntop
_pton = socket.inet_pton
_AF6 = socket.AF_INET6
_U32 = struct.Struct("!I")
_U16 = struct.Struct("!H")
_HDR = struct.Struct("!HB")
_MAX_BITS = {1: 32, 2: 128}

_ORIGIN = AttrType.ORIGIN
_AS_PATH = AttrType.AS_PATH
_NEXT_HOP = AttrType.NEXT_HOP
_MED = AttrType.MULTI_EXIT_DISC
_LOCAL_PREF = AttrType.LOCAL_PREF
_ATOMIC = AttrType.ATOMIC_AGGREGATE
_AGGREGATOR = AttrType.AGGREGATOR
_COMMUNITIES = AttrType.COMMUNITIES
_ORIGINATOR = AttrType.ORIGINATOR_ID
_CLUSTER = AttrType.CLUSTER_LIST
_MP_REACH = AttrType.MP_REACH_NLRI
_MP_UNREACH = AttrType.MP_UNREACH_NLRI
_EXT_COMM = AttrType.EXTENDED_COMMUNITIES
_AS4_PATH = AttrType.AS4_PATH
_AS4_AGG = AttrType.AS4_AGGREGATOR
_LARGE = AttrType.LARGE_COMMUNITIES
_OTC = AttrType.OTC

_DEFAULT_CACHE = AttributeCache()


class MPReach:
    """MP_REACH_NLRI of one UPDATE: family, the attributes with its next hop, prefixes."""

    __slots__ = ("afi", "safi", "attributes", "nlri")

    def __init__(self, afi: int, safi: int, attributes: PathAttributes | None, nlri: list) -> None:
        self.afi = afi
        self.safi = safi
        self.attributes = attributes
        self.nlri = nlri

    def __eq__(self, other: object) -> bool:
        if not isinstance(other, MPReach):
            return NotImplemented
        return (self.afi, self.safi, self.attributes, list(self.nlri)) == (
            other.afi, other.safi, other.attributes, list(other.nlri))

    def __repr__(self) -> str:
        return f"MPReach({self.afi}, {self.safi}, {self.attributes!r}, {self.nlri!r})"


class MPUnreach:
    __slots__ = ("afi", "safi", "withdrawn")

    def __init__(self, afi: int, safi: int, withdrawn: list) -> None:
        self.afi = afi
        self.safi = safi
        self.withdrawn = withdrawn

    def __eq__(self, other: object) -> bool:
        if not isinstance(other, MPUnreach):
            return NotImplemented
        return (self.afi, self.safi, list(self.withdrawn)) == (
            other.afi, other.safi, list(other.withdrawn))

    def __repr__(self) -> str:
        return f"MPUnreach({self.afi}, {self.safi}, {self.withdrawn!r})"


class Update:
    """One decoded UPDATE.

    ``withdrawn`` and ``nlri`` are IPv4 unicast prefix keys (``(path_id, key)``
    pairs with add-path); ``attributes`` applies to ``nlri``.  When
    ``treat_as_withdraw`` is set (RFC 7606), every announced prefix in this
    UPDATE must be handled as withdrawn; ``problems`` says why.
    """

    __slots__ = ("withdrawn", "attributes", "nlri", "mp_reach", "mp_unreach", "problems",
                 "treat_as_withdraw")
    msg_type = MsgType.UPDATE

    def __init__(
        self,
        withdrawn: list | None = None,
        attributes: PathAttributes | None = None,
        nlri: list | None = None,
        mp_reach: MPReach | None = None,
        mp_unreach: MPUnreach | None = None,
        problems: tuple[Problem, ...] = (),
        treat_as_withdraw: bool = False,
    ) -> None:
        self.withdrawn = withdrawn if withdrawn is not None else []
        self.attributes = attributes
        self.nlri = nlri if nlri is not None else []
        self.mp_reach = mp_reach
        self.mp_unreach = mp_unreach
        self.problems = problems
        self.treat_as_withdraw = treat_as_withdraw

    def _key(self) -> tuple:
        return (list(self.withdrawn), self.attributes, list(self.nlri), self.mp_reach,
                self.mp_unreach, self.treat_as_withdraw)

    def __eq__(self, other: object) -> bool:
        if not isinstance(other, Update):
            return NotImplemented
        return self._key() == other._key()

    def __repr__(self) -> str:
        return (f"Update(withdrawn={self.withdrawn!r}, attributes={self.attributes!r}, "
                f"nlri={self.nlri!r}, mp_reach={self.mp_reach!r}, "
                f"mp_unreach={self.mp_unreach!r}, treat_as_withdraw={self.treat_as_withdraw})")

    @property
    def end_of_rib(self) -> tuple[int, int] | None:
        """The family this UPDATE marks End-of-RIB for (RFC 4724 section 2), else None."""
        if self.withdrawn or self.nlri or self.mp_reach is not None:
            return None
        if self.mp_unreach is None:
            return IPV4_UNICAST if self.attributes is None else None
        if self.mp_unreach.withdrawn or self.attributes is not None:
            return None
        return (self.mp_unreach.afi, self.mp_unreach.safi)

    def pack_body(self, neg: Negotiated = DEFAULT) -> bytes:
        """Encode exactly this UPDATE (one message; see :func:`pack_reach` for bulk)."""
        v4_pid = IPV4_UNICAST in neg.addpath_tx
        wd = _pack_nlri(self.withdrawn, v4_pid)
        parts = []
        if self.mp_unreach is not None:
            u = self.mp_unreach
            pid = (u.afi, u.safi) in neg.addpath_tx
            parts.append(_mp_attr(_MP_UNREACH, struct.pack("!HB", u.afi, u.safi)
                                  + _pack_nlri(u.withdrawn, pid)))
        if self.mp_reach is not None:
            r = self.mp_reach
            pid = (r.afi, r.safi) in neg.addpath_tx
            parts.append(_mp_reach_attr(r.afi, r.safi, r.attributes, _pack_nlri(r.nlri, pid)))
        if self.nlri and self.attributes is not None:
            parts.append(self.attributes.pack(neg.as4, True))
        elif self.mp_reach is not None and self.mp_reach.attributes is not None:
            parts.append(self.mp_reach.attributes.pack(neg.as4, False))
        elif self.attributes is not None:
            parts.append(self.attributes.pack(neg.as4, True))
        attrs = b"".join(parts)
        return (struct.pack("!H", len(wd)) + wd + struct.pack("!H", len(attrs)) + attrs
                + _pack_nlri(self.nlri, v4_pid))


def _pack_nlri(prefixes: list, with_path_id: bool) -> bytes:
    if with_path_id:
        return encode_path_prefixes(prefixes)
    return b"".join(prefixes)


def _mp_attr(code: int, value: bytes) -> bytes:
    # MP attributes always use the extended length: they are the ones that grow.
    return struct.pack("!BBH", 0x90, code, len(value)) + value


def pack_next_hop(attributes: PathAttributes | None, afi: int) -> bytes:
    """MP_REACH next-hop field: IPv4 (4), IPv6 global (16) or global + link-local (32)."""
    if attributes is None or attributes.next_hop is None:
        return b""
    nh = attributes.next_hop
    if ":" in nh:
        out = _pton(_AF6, nh)
        if attributes.next_hop_ll:
            out += _pton(_AF6, attributes.next_hop_ll)
        return out
    return socket.inet_aton(nh)


def _mp_reach_attr(afi: int, safi: int, attributes: PathAttributes | None, nlri: bytes) -> bytes:
    nh = pack_next_hop(attributes, afi)
    return _mp_attr(_MP_REACH, struct.pack("!HBB", afi, safi, len(nh)) + nh + b"\x00" + nlri)


def _problem(outcome: Outcome, code: int, subcode: int, reason: str) -> Problem:
    return Problem(outcome, int(code), reason, 3, int(subcode))


def decode_update(
    body: bytes, neg: Negotiated = DEFAULT, cache: AttributeCache | None = None
) -> Update:
    """Decode an UPDATE body (the message minus its 19-octet header)."""
    n = len(body)
    if n < 4:
        raise NotificationError(3, UpdateError.MALFORMED_ATTRIBUTE_LIST, b"", "UPDATE too short")
    wlen = (body[0] << 8) | body[1]
    if wlen + 4 > n:
        raise NotificationError(3, UpdateError.MALFORMED_ATTRIBUTE_LIST, b"",
                                f"withdrawn routes length {wlen} overruns the message")
    astart = 4 + wlen
    aend = astart + ((body[astart - 2] << 8) | body[astart - 1])
    if aend > n:
        raise NotificationError(3, UpdateError.MALFORMED_ATTRIBUTE_LIST, b"",
                                f"total path attribute length {aend - astart} overruns the message")
    v4_pid = IPV4_UNICAST in neg.addpath_rx
    if wlen:
        wd = body[2:astart - 2]
        withdrawn = decode_path_prefixes(wd, 32) if v4_pid else decode_prefixes(wd, 32)
    else:
        withdrawn = []
    if aend < n:
        nb = body[aend:]
        nlri = decode_path_prefixes(nb, 32) if v4_pid else decode_prefixes(nb, 32)
    else:
        nlri = []
    if aend == astart:
        if nlri:
            return Update(withdrawn, None, nlri, None, None, (
                _problem(Outcome.TREAT_AS_WITHDRAW, _ORIGIN,
                         UpdateError.MISSING_WELL_KNOWN_ATTRIBUTE,
                         "NLRI without path attributes"),), True)
        return Update(withdrawn, None, nlri)

    if cache is None:
        cache = _DEFAULT_CACHE
    table = cache.table(neg.cache_context)
    raw = body[astart:aend]
    if nlri:
        # Fast path: the same attribute block seen before (no MP attributes in
        # it, or it would not have been stored under its whole bytes).
        base = table.get(raw)
        if base is not None:
            cache.hits += 1
            return Update(withdrawn, base, nlri)

    r = _Parsed(body, astart, aend, neg, bool(nlri))
    problems = r.problems
    mp_unreach = None
    if r.mp_unreach_span is not None:
        mp_unreach = _decode_mp_unreach(body, r.mp_unreach_span, neg, problems)
    mp_nlri = None
    mp_afi = mp_safi = 0
    mp_nh = b""
    if r.mp_reach_span is not None:
        mp_afi, mp_safi, mp_nh, mp_nlri = _decode_mp_reach(body, r.mp_reach_span, neg, problems)

    if not nlri and not mp_nlri:
        # Nothing announced: the attributes mean nothing (RFC 7606 5.2 allows
        # an UPDATE with only MP_UNREACH and no other attributes).
        return Update(withdrawn, None, nlri, None, mp_unreach, tuple(problems), r.taw)

    taw = r.finish(bool(nlri))
    if taw:
        mp_reach = MPReach(mp_afi, mp_safi, None, mp_nlri) if mp_nlri else None
        return Update(withdrawn, None, nlri, mp_reach, mp_unreach, tuple(problems), True)
    clean = not problems
    plain = r.plain
    if not plain:
        # The intern key leaves the MP attributes out: their NLRI differ from
        # one UPDATE to the next while the other attributes repeat.
        parts = []
        pos = astart
        for hs, ve in r.pieces:
            parts.append(body[pos:hs])
            pos = ve
        parts.append(body[pos:aend])
        raw = b"".join(parts)
    fields = r.fields
    base = None
    mp_reach = None
    if nlri:
        base = table.get(raw) if not plain else None
        if base is None:
            base = PathAttributes(*fields)
            if clean:
                cache.store(table, raw, base)
    if mp_nlri:
        key = (raw, mp_nh)
        mp_attrs = table.get(key)
        if mp_attrs is None:
            nh, ll = _next_hop_strings(mp_nh)
            fields = list(fields)
            fields[2] = nh
            fields[13] = ll
            mp_attrs = PathAttributes(*fields)
            if clean:
                cache.store(table, key, mp_attrs)
        else:
            cache.hits += 1
        mp_reach = MPReach(mp_afi, mp_safi, mp_attrs, mp_nlri)
    cache.misses += 1
    return Update(withdrawn, base, nlri, mp_reach, mp_unreach, tuple(problems), False)


def _next_hop_strings(nh: bytes) -> tuple[str, str | None]:
    if len(nh) == 4:
        return _ntoa(nh), None
    if len(nh) == 16:
        return _ntop(_AF6, nh), None
    return _ntop(_AF6, nh[:16]), _ntop(_AF6, nh[16:32])


def _decode_mp_unreach(body: bytes, span: tuple, neg: Negotiated, problems: list) -> MPUnreach | None:
    flags, vs, ve = span
    if flags & 0xC0 != 0x80:
        # RFC 4271 6.3: the data is the whole attribute, header included
        # (4 octets of it when the Extended Length bit is set).
        hs = vs - (4 if flags & 0x10 else 3)
        raise NotificationError(3, UpdateError.ATTRIBUTE_FLAGS_ERROR, body[hs:ve],
                                "MP_UNREACH_NLRI flags")
    if ve - vs < 3:
        raise NotificationError(3, UpdateError.OPTIONAL_ATTRIBUTE_ERROR, b"",
                                "MP_UNREACH_NLRI shorter than 3 octets")
    afi = (body[vs] << 8) | body[vs + 1]
    safi = body[vs + 2]
    if (afi, safi) not in neg.families or afi not in _MAX_BITS:
        problems.append(_problem(Outcome.ATTRIBUTE_DISCARD, _MP_UNREACH,
                                 UpdateError.OPTIONAL_ATTRIBUTE_ERROR,
                                 f"MP_UNREACH_NLRI for family {afi}/{safi} not negotiated"))
        return None
    data = body[vs + 3:ve]
    try:
        if (afi, safi) in neg.addpath_rx:
            wd = decode_path_prefixes(data, _MAX_BITS[afi])
        else:
            wd = decode_prefixes(data, _MAX_BITS[afi])
    except NotificationError as e:
        raise NotificationError(3, UpdateError.OPTIONAL_ATTRIBUTE_ERROR, b"",
                                f"MP_UNREACH_NLRI: {e.reason}") from None
    return MPUnreach(afi, safi, wd)


def _decode_mp_reach(body: bytes, span: tuple, neg: Negotiated, problems: list) -> tuple:
    flags, vs, ve = span
    if flags & 0xC0 != 0x80:
        # RFC 4271 6.3: the data is the whole attribute, header included
        # (4 octets of it when the Extended Length bit is set).
        hs = vs - (4 if flags & 0x10 else 3)
        raise NotificationError(3, UpdateError.ATTRIBUTE_FLAGS_ERROR, body[hs:ve],
                                "MP_REACH_NLRI flags")
    if ve - vs < 5:
        raise NotificationError(3, UpdateError.OPTIONAL_ATTRIBUTE_ERROR, b"",
                                "MP_REACH_NLRI shorter than 5 octets")
    afi = (body[vs] << 8) | body[vs + 1]
    safi = body[vs + 2]
    nhlen = body[vs + 3]
    if vs + 5 + nhlen > ve:
        raise NotificationError(3, UpdateError.OPTIONAL_ATTRIBUTE_ERROR, b"",
                                f"MP_REACH_NLRI next hop length {nhlen} overruns")
    if (afi, safi) not in neg.families or afi not in _MAX_BITS:
        problems.append(_problem(Outcome.ATTRIBUTE_DISCARD, _MP_REACH,
                                 UpdateError.OPTIONAL_ATTRIBUTE_ERROR,
                                 f"MP_REACH_NLRI for family {afi}/{safi} not negotiated"))
        return 0, 0, b"", None
    nh = body[vs + 4:vs + 4 + nhlen]
    if afi == 2:
        ok = nhlen in (16, 32)
    else:
        # RFC 8950: IPv4 NLRI may come with an IPv6 next hop.
        ok = nhlen in (4, 16, 32)
    if not ok:
        raise NotificationError(3, UpdateError.OPTIONAL_ATTRIBUTE_ERROR, b"",
                                f"MP_REACH_NLRI next hop length {nhlen} for AFI {afi}")
    data = body[vs + 5 + nhlen:ve]
    try:
        if (afi, safi) in neg.addpath_rx:
            prefixes = decode_path_prefixes(data, _MAX_BITS[afi])
        else:
            prefixes = decode_prefixes(data, _MAX_BITS[afi])
    except NotificationError as e:
        raise NotificationError(3, UpdateError.OPTIONAL_ATTRIBUTE_ERROR, b"",
                                f"MP_REACH_NLRI: {e.reason}") from None
    return afi, safi, nh, prefixes


_DUP = "attribute {} repeated; later copy discarded"


class _Parsed:
    """One pass over the path attributes: headers, flags, values (RFC 7606)."""

    __slots__ = ("fields", "problems", "taw", "plain", "pieces", "mp_reach_span",
                 "mp_unreach_span", "_origin", "_as_path", "_next_hop", "_as4_path", "_as4_agg",
                 "_neg")

    def __init__(self, body: bytes, i: int, aend: int, neg: Negotiated, has_v4: bool) -> None:
        origin = as_path = next_hop = med = local_pref = communities = large = ext = None
        aggregator = originator = cluster = otc = as4_path = as4_agg = None
        atomic = False
        unknown = None
        problems: list[Problem] = []
        pieces = []
        taw = False
        mp_reach_span = mp_unreach_span = None
        as4 = neg.as4
        ibgp = neg.ibgp
        while i < aend:
            if i + 3 > aend:
                taw = True
                problems.append(_problem(Outcome.TREAT_AS_WITHDRAW, 0,
                                         UpdateError.MALFORMED_ATTRIBUTE_LIST,
                                         "attribute header overruns the attribute list"))
                break
            flags = body[i]
            code = body[i + 1]
            if flags & 0x10:
                if i + 4 > aend:
                    taw = True
                    problems.append(_problem(Outcome.TREAT_AS_WITHDRAW, code,
                                             UpdateError.MALFORMED_ATTRIBUTE_LIST,
                                             "attribute header overruns the attribute list"))
                    break
                vs = i + 4
                ve = vs + ((body[i + 2] << 8) | body[i + 3])
            else:
                vs = i + 3
                ve = vs + body[i + 2]
            if ve > aend:
                taw = True
                problems.append(_problem(Outcome.TREAT_AS_WITHDRAW, code,
                                         UpdateError.ATTRIBUTE_LENGTH_ERROR,
                                         f"attribute {code} overruns the attribute list"))
                break
            hs = i
            i = ve
            if code == 14 or code == 15:
                if code == 14:
                    if mp_reach_span is not None:
                        raise NotificationError(3, UpdateError.MALFORMED_ATTRIBUTE_LIST, b"",
                                                "MP_REACH_NLRI appears twice")
                    mp_reach_span = (flags, vs, ve)
                    pieces.append((hs, ve))
                else:
                    if mp_unreach_span is not None:
                        raise NotificationError(3, UpdateError.MALFORMED_ATTRIBUTE_LIST, b"",
                                                "MP_UNREACH_NLRI appears twice")
                    mp_unreach_span = (flags, vs, ve)
                    pieces.append((hs, ve))
                continue
            length = ve - vs
            fl = flags & 0xC0
            # Each branch: duplicate check (RFC 7606 3(g): keep the first),
            # flags check (3(c)), length and value checks (section 7).
            try:
                if code == 1:  # ORIGIN
                    if origin is not None:
                        raise _Dup
                    if fl != 0x40:
                        raise _flags(code, flags)
                    if length != 1:
                        raise _Malformed(_TAW, _LEN_ERR, f"ORIGIN length {length}")
                    origin = body[vs]
                    if origin > 2:
                        raise _Malformed(_TAW, UpdateError.INVALID_ORIGIN_ATTRIBUTE,
                                         f"ORIGIN value {origin}")
                elif code == 2:  # AS_PATH
                    if as_path is not None:
                        raise _Dup
                    if fl != 0x40:
                        as_path = ()
                        raise _flags(code, flags)
                    as_path = ()
                    as_path = parse_as_path(body[vs:ve], as4)
                elif code == 3:  # NEXT_HOP
                    if next_hop is not None:
                        raise _Dup
                    next_hop = ""
                    if fl != 0x40:
                        raise _flags(code, flags)
                    if length != 4:
                        raise _Malformed(_TAW, _LEN_ERR, f"NEXT_HOP length {length}")
                    next_hop = _ntoa(body[vs:ve])
                    first = body[vs]
                    if has_v4 and (first >= 224 or next_hop == "0.0.0.0"):
                        raise _Malformed(_TAW, UpdateError.INVALID_NEXT_HOP_ATTRIBUTE,
                                         f"NEXT_HOP {next_hop} is not a unicast address")
                elif code == 8:  # COMMUNITIES
                    if communities is not None:
                        raise _Dup
                    communities = ()
                    if fl != 0xC0:
                        raise _flags(code, flags)
                    if not length or length & 3:
                        raise _Malformed(_TAW, _LEN_ERR, f"COMMUNITIES length {length}")
                    communities = _unpack_n(length >> 2, body, vs)
                elif code == 4:  # MULTI_EXIT_DISC
                    if med is not None:
                        raise _Dup
                    med = -1
                    if fl != 0x80:
                        raise _flags(code, flags)
                    if length != 4:
                        raise _Malformed(_TAW, _LEN_ERR, f"MULTI_EXIT_DISC length {length}")
                    med = _U32.unpack_from(body, vs)[0]
                elif code == 5:  # LOCAL_PREF
                    if local_pref is not None:
                        raise _Dup
                    local_pref = -1
                    if fl != 0x40:
                        raise _flags(code, flags)
                    if length != 4:
                        raise _Malformed(_TAW, _LEN_ERR, f"LOCAL_PREF length {length}")
                    # RFC 4271 5.1.5: from an external peer it is ignored.
                    local_pref = _U32.unpack_from(body, vs)[0] if ibgp else -2
                elif code == 32:  # LARGE_COMMUNITIES
                    if large is not None:
                        raise _Dup
                    large = ()
                    if fl != 0xC0:
                        raise _flags(code, flags)
                    if not length or length % 12:
                        raise _Malformed(_TAW, _LEN_ERR, f"LARGE_COMMUNITIES length {length}")
                    vals = _unpack_n(length >> 2, body, vs)
                    large = tuple(zip(vals[0::3], vals[1::3], vals[2::3], strict=True))
                elif code == 16:  # EXTENDED_COMMUNITIES
                    if ext is not None:
                        raise _Dup
                    ext = ()
                    if fl != 0xC0:
                        raise _flags(code, flags)
                    if not length or length & 7:
                        raise _Malformed(_TAW, _LEN_ERR, f"EXTENDED_COMMUNITIES length {length}")
                    ext = tuple(body[j:j + 8] for j in range(vs, ve, 8))
                elif code == 6:  # ATOMIC_AGGREGATE
                    if atomic:
                        raise _Dup
                    if fl != 0x40:
                        raise _flags(code, flags)
                    if length != 0:
                        raise _Malformed(_DISCARD, _LEN_ERR, f"ATOMIC_AGGREGATE length {length}")
                    atomic = True
                elif code == 7:  # AGGREGATOR
                    if aggregator is not None:
                        raise _Dup
                    aggregator = ()
                    if fl != 0xC0:
                        raise _flags(code, flags)
                    if length != (8 if as4 else 6):
                        raise _Malformed(_DISCARD, _LEN_ERR, f"AGGREGATOR length {length}")
                    if as4:
                        aggregator = (_U32.unpack_from(body, vs)[0], _ntoa(body[vs + 4:ve]))
                    else:
                        aggregator = ((body[vs] << 8) | body[vs + 1], _ntoa(body[vs + 2:ve]))
                elif code == 9:  # ORIGINATOR_ID
                    if originator is not None:
                        raise _Dup
                    originator = ""
                    if fl != 0x80:
                        raise _flags(code, flags)
                    if length != 4:
                        raise _Malformed(_TAW, _LEN_ERR, f"ORIGINATOR_ID length {length}")
                    if not ibgp:
                        raise _Malformed(_DISCARD, _OPT_ERR, "ORIGINATOR_ID from an external peer")
                    originator = _ntoa(body[vs:ve])
                elif code == 10:  # CLUSTER_LIST
                    if cluster is not None:
                        raise _Dup
                    cluster = ()
                    if fl != 0x80:
                        raise _flags(code, flags)
                    if not length or length & 3:
                        raise _Malformed(_TAW, _LEN_ERR, f"CLUSTER_LIST length {length}")
                    if not ibgp:
                        raise _Malformed(_DISCARD, _OPT_ERR, "CLUSTER_LIST from an external peer")
                    cluster = tuple(_ntoa(body[j:j + 4]) for j in range(vs, ve, 4))
                elif code == 17:  # AS4_PATH
                    if as4_path is not None:
                        raise _Dup
                    as4_path = ()
                    if fl != 0xC0:
                        raise _Malformed(_DISCARD, _FLAGS_ERR, f"flags 0x{flags:02x} for AS4_PATH")
                    if as4:
                        # RFC 6793 4.1: ignored from a 4-octet-AS speaker.
                        raise _Malformed(_DISCARD, _OPT_ERR, "AS4_PATH from a 4-octet-AS speaker")
                    try:
                        as4_path = parse_as_path(body[vs:ve], True)
                    except _Malformed as e:
                        raise _Malformed(_DISCARD, e.subcode, "AS4_PATH: " + e.reason) from None
                elif code == 18:  # AS4_AGGREGATOR
                    if as4_agg is not None:
                        raise _Dup
                    as4_agg = ()
                    if fl != 0xC0:
                        raise _Malformed(_DISCARD, _FLAGS_ERR,
                                         f"flags 0x{flags:02x} for AS4_AGGREGATOR")
                    if as4:
                        raise _Malformed(_DISCARD, _OPT_ERR,
                                         "AS4_AGGREGATOR from a 4-octet-AS speaker")
                    if length != 8:
                        raise _Malformed(_DISCARD, _LEN_ERR, f"AS4_AGGREGATOR length {length}")
                    as4_agg = (_U32.unpack_from(body, vs)[0], _ntoa(body[vs + 4:ve]))
                elif code == 35:  # OTC
                    if otc is not None:
                        raise _Dup
                    otc = -1
                    if fl != 0xC0:
                        raise _flags(code, flags)
                    if length != 4:
                        raise _Malformed(_TAW, _LEN_ERR, f"OTC length {length}")
                    otc = _U32.unpack_from(body, vs)[0]
                elif not flags & 0x80:
                    # RFC 4271 6.3: an unrecognized well-known attribute.
                    raise NotificationError(3, UpdateError.UNRECOGNIZED_WELL_KNOWN_ATTRIBUTE,
                                            body[hs:ve], f"unrecognized well-known attribute {code}")
                elif flags & 0x40:
                    # Unknown optional transitive: pass it on, marked Partial.
                    if unknown is None:
                        unknown = []
                    elif any(u[1] == code for u in unknown):
                        raise _Dup
                    # Keep only the three meaningful flag bits: Extended Length
                    # is re-chosen by the encoder from the value's size, and the
                    # unused low bits MUST be sent as zero (RFC 4271 4.3).
                    unknown.append(((flags | 0x20) & 0xE0, code, body[vs:ve]))
                # unknown optional non-transitive: quietly ignored (RFC 4271 5)
            except _DupType:
                problems.append(_problem(_DISCARD, code, UpdateError.MALFORMED_ATTRIBUTE_LIST,
                                         _DUP.format(code)))
            except _Malformed as e:
                problems.append(_problem(e.outcome, code, e.subcode, e.reason))
                if e.outcome is _TAW:
                    taw = True
        self.problems = problems
        self.taw = taw
        self.pieces = pieces
        self.plain = mp_reach_span is None and mp_unreach_span is None
        self.mp_reach_span = mp_reach_span
        self.mp_unreach_span = mp_unreach_span
        self._origin = origin
        self._as_path = as_path
        self._next_hop = next_hop
        self._as4_path = as4_path
        self._as4_agg = as4_agg
        self._neg = neg
        # Placeholders used above for "seen but bad" become "absent".
        if med == -1:
            med = None
        if local_pref is not None and local_pref < 0:
            local_pref = None
        if otc == -1:
            otc = None
        if aggregator == ():
            aggregator = None
        if originator == "":
            originator = None
        if next_hop == "":
            next_hop = None
        self.fields = (origin, as_path, next_hop, med, local_pref, communities or (), large or (),
                       ext or (), atomic, aggregator, originator, cluster or (), otc, None,
                       tuple(unknown) if unknown else ())

    def finish(self, has_v4: bool) -> bool:
        """Mandatory-attribute checks and RFC 6793 merging; True means treat-as-withdraw."""
        if self.taw:
            return True
        problems = self.problems
        fields = self.fields
        origin, as_path, next_hop = fields[0], fields[1], fields[2]
        if origin is None or as_path is None or (has_v4 and next_hop is None):
            missing = _ORIGIN if origin is None else _AS_PATH if as_path is None else _NEXT_HOP
            problems.append(_problem(_TAW, missing, UpdateError.MISSING_WELL_KNOWN_ATTRIBUTE,
                                     f"missing well-known attribute {AttrType(missing).name}"))
            self.taw = True
            return True
        neg = self._neg
        as4_path = self._as4_path
        as4_agg = self._as4_agg
        if not neg.as4 and (as4_path or as4_agg):
            aggregator = fields[9]
            # RFC 6793 4.2.3
            if aggregator is not None and aggregator[0] != AS_TRANS:
                as4_path = None
            elif as4_agg:
                aggregator = as4_agg
            if as4_path:
                as_path = merge_as4_path(as_path, as4_path)
            f = list(fields)
            f[1] = as_path
            f[9] = aggregator
            self.fields = fields = tuple(f)
        if neg.enforce_first_as:
            first = None
            if as_path and as_path[0][0] == SegmentType.AS_SEQUENCE:
                first = as_path[0][1][0]
            if first != neg.peer_as:
                problems.append(_problem(_TAW, _AS_PATH, UpdateError.MALFORMED_AS_PATH,
                                         f"AS_PATH does not start with the peer's AS {neg.peer_as}"))
                self.taw = True
                return True
        return False


class _DupType(Exception):
    pass


_Dup = _DupType()
_TAW = Outcome.TREAT_AS_WITHDRAW
_DISCARD = Outcome.ATTRIBUTE_DISCARD
_LEN_ERR = UpdateError.ATTRIBUTE_LENGTH_ERROR
_OPT_ERR = UpdateError.OPTIONAL_ATTRIBUTE_ERROR
_FLAGS_ERR = UpdateError.ATTRIBUTE_FLAGS_ERROR
_UNPACK_N: dict[int, Callable] = {}


def _unpack_n(count: int, data: bytes, offset: int) -> tuple[int, ...]:
    f = _UNPACK_N.get(count)
    if f is None:
        f = _UNPACK_N[count] = struct.Struct(f"!{count}I").unpack_from
    return f(data, offset)


def _flags(code: int, flags: int) -> _Malformed:
    return _Malformed(_TAW, _FLAGS_ERR, f"flags 0x{flags:02x} for attribute {code}")


def _header(length: int, msg_type: int) -> bytes:
    return MARKER + struct.pack("!HB", length, msg_type)


def pack_end_of_rib(afi: int, safi: int) -> bytes:
    """A complete End-of-RIB marker message (RFC 4724 section 2)."""
    if (afi, safi) == IPV4_UNICAST:
        return _header(HEADER_LEN + 4, MsgType.UPDATE) + b"\x00\x00\x00\x00"
    attr = _mp_attr(_MP_UNREACH, struct.pack("!HB", afi, safi))
    return _header(HEADER_LEN + 4 + len(attr), MsgType.UPDATE) + b"\x00\x00" + struct.pack(
        "!H", len(attr)) + attr


def _chunks(items: list, room: int, size_of: Callable[[Any], int]) -> list:
    out = []
    cur = []
    used = 0
    for item in items:
        size = size_of(item)
        if used + size > room and cur:
            out.append(cur)
            cur = []
            used = 0
        cur.append(item)
        used += size
    if cur:
        out.append(cur)
    return out


def _prefix_size(key: bytes) -> int:
    return len(key)


def _path_prefix_size(item: tuple[int, bytes]) -> int:
    return 4 + len(item[1])


def pack_reach(
    afi: int,
    safi: int,
    attributes: PathAttributes,
    prefixes: list,
    neg: Negotiated = DEFAULT,
) -> list[bytes]:
    """Complete UPDATE messages announcing ``prefixes`` with ``attributes``.

    As many prefixes as fit go in each message (4096 octets, or 65535 with
    RFC 8654).  IPv4 unicast uses the classic NLRI field unless the next hop
    is IPv6 (RFC 8950); everything else goes in MP_REACH_NLRI.
    """
    max_len = neg.max_message_len
    with_pid = (afi, safi) in neg.addpath_tx
    size_of = _path_prefix_size if with_pid else _prefix_size
    classic = (afi, safi) == IPV4_UNICAST and not (
        attributes.next_hop is not None and ":" in attributes.next_hop)
    messages = []
    if classic:
        attrs = attributes.pack(neg.as4, True)
        fixed = HEADER_LEN + 4 + len(attrs)
        head_tail = b"\x00\x00" + _U16.pack(len(attrs)) + attrs
        if not with_pid:
            nlri = b"".join(prefixes)
            if len(nlri) <= max_len - fixed:  # the common case: one message
                return [MARKER + _HDR.pack(fixed + len(nlri), 2) + head_tail + nlri]
        for chunk in _chunks(prefixes, max_len - fixed, size_of):
            nlri = encode_path_prefixes(chunk) if with_pid else b"".join(chunk)
            messages.append(_header(fixed + len(nlri), MsgType.UPDATE) + head_tail + nlri)
        return messages
    attrs = attributes.pack(neg.as4, False)
    nh = pack_next_hop(attributes, afi)
    mp_fixed = 4 + 4 + len(nh) + 1  # attr header (ext len) + afi/safi/nhlen + nh + reserved
    fixed = HEADER_LEN + 4 + mp_fixed + len(attrs)
    mp_head = struct.pack("!HBB", afi, safi, len(nh)) + nh + b"\x00"
    for chunk in _chunks(prefixes, max_len - fixed, size_of):
        nlri = encode_path_prefixes(chunk) if with_pid else b"".join(chunk)
        mp = _mp_attr(_MP_REACH, mp_head + nlri)
        path = mp + attrs
        messages.append(_header(HEADER_LEN + 4 + len(path), MsgType.UPDATE) + b"\x00\x00"
                        + struct.pack("!H", len(path)) + path)
    return messages


def pack_withdraw(afi: int, safi: int, prefixes: list, neg: Negotiated = DEFAULT) -> list[bytes]:
    """Complete UPDATE messages withdrawing ``prefixes``, as many per message as fit."""
    max_len = neg.max_message_len
    with_pid = (afi, safi) in neg.addpath_tx
    size_of = _path_prefix_size if with_pid else _prefix_size
    messages = []
    if (afi, safi) == IPV4_UNICAST:
        for chunk in _chunks(prefixes, max_len - HEADER_LEN - 4, size_of):
            wd = encode_path_prefixes(chunk) if with_pid else b"".join(chunk)
            messages.append(_header(HEADER_LEN + 4 + len(wd), MsgType.UPDATE)
                            + struct.pack("!H", len(wd)) + wd + b"\x00\x00")
        return messages
    fixed = HEADER_LEN + 4 + 4 + 3
    for chunk in _chunks(prefixes, max_len - fixed, size_of):
        wd = encode_path_prefixes(chunk) if with_pid else b"".join(chunk)
        attr = _mp_attr(_MP_UNREACH, struct.pack("!HB", afi, safi) + wd)
        messages.append(_header(HEADER_LEN + 4 + len(attr), MsgType.UPDATE) + b"\x00\x00"
                        + struct.pack("!H", len(attr)) + attr)
    return messages
