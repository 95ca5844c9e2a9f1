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
    EXPECTED_FLAGS,
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
    alen = (body[astart - 2] << 8) | body[astart - 1]
    aend = astart + alen
    if aend > n:
        raise NotificationError(3, UpdateError.MALFORMED_ATTRIBUTE_LIST, b"",
                                f"total path attribute length {alen} overruns the message")
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
    if not alen:
        if nlri:
            return Update(withdrawn, None, nlri, None, None, (
                _problem(Outcome.TREAT_AS_WITHDRAW, _ORIGIN, UpdateError.MISSING_WELL_KNOWN_ATTRIBUTE,
                         "NLRI without path attributes"),), True)
        return Update(withdrawn, None, nlri)

    # Pass 1: find each attribute; MP_REACH / MP_UNREACH are taken out here
    # because their NLRI must be known whatever else is wrong (RFC 7606 5).
    spans = []
    mp_reach_span = mp_unreach_span = None
    problems: list[Problem] = []
    taw = False
    plain = True  # no MP attributes: the raw key is the whole attribute block
    i = astart
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
        if code == _MP_REACH or code == _MP_UNREACH:
            plain = False
            if code == _MP_REACH:
                if mp_reach_span is not None:
                    raise NotificationError(3, UpdateError.MALFORMED_ATTRIBUTE_LIST, b"",
                                            "MP_REACH_NLRI appears twice")
                mp_reach_span = (flags, vs, ve)
            else:
                if mp_unreach_span is not None:
                    raise NotificationError(3, UpdateError.MALFORMED_ATTRIBUTE_LIST, b"",
                                            "MP_UNREACH_NLRI appears twice")
                mp_unreach_span = (flags, vs, ve)
        else:
            spans.append((flags, code, vs, ve, i))
        i = ve

    mp_unreach = None
    if mp_unreach_span is not None:
        mp_unreach = _decode_mp_unreach(body, mp_unreach_span, neg, problems)
    mp_nlri = None
    mp_afi = mp_safi = 0
    mp_nh = b""
    if mp_reach_span is not None:
        mp_afi, mp_safi, mp_nh, mp_nlri = _decode_mp_reach(body, mp_reach_span, neg, problems)

    if not nlri and not mp_nlri:
        # Nothing announced: the attributes mean nothing (RFC 7606 5.2 allows
        # an UPDATE with only MP_UNREACH and no other attributes).
        return Update(withdrawn, None, nlri, None, mp_unreach, tuple(problems), taw)

    if cache is None:
        cache = _DEFAULT_CACHE
    table = cache.table(neg.cache_context)
    raw = body[astart:aend] if plain else b"".join(body[s[4]:s[3]] for s in spans)
    base = None
    mp_attrs = None
    if not taw:
        if nlri:
            base = table.get(raw)
        if mp_nlri:
            mp_attrs = table.get((raw, mp_nh))
        if (base is not None or not nlri) and (mp_attrs is not None or not mp_nlri):
            cache.hits += 1
            mp_reach = MPReach(mp_afi, mp_safi, mp_attrs, mp_nlri) if mp_nlri else None
            return Update(withdrawn, base, nlri, mp_reach, mp_unreach, tuple(problems), False)
    cache.misses += 1

    parsed, taw2 = _parse_attributes(body, spans, neg, problems, bool(nlri), bool(mp_nlri))
    taw = taw or taw2
    if taw:
        mp_reach = MPReach(mp_afi, mp_safi, None, mp_nlri) if mp_nlri else None
        return Update(withdrawn, None, nlri, mp_reach, mp_unreach, tuple(problems), True)
    clean = not problems
    if nlri:
        base = PathAttributes(*parsed)
        if clean:
            table[raw] = base
    mp_reach = None
    if mp_nlri:
        nh, ll = _next_hop_strings(mp_nh)
        fields = list(parsed)
        fields[2] = nh
        fields[13] = ll
        mp_attrs = PathAttributes(*fields)
        if clean:
            table[(raw, mp_nh)] = mp_attrs
        mp_reach = MPReach(mp_afi, mp_safi, mp_attrs, mp_nlri)
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
        raise NotificationError(3, UpdateError.ATTRIBUTE_FLAGS_ERROR, body[vs - 3:ve],
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
        raise NotificationError(3, UpdateError.ATTRIBUTE_FLAGS_ERROR, body[vs - 3:ve],
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


def _parse_attributes(
    body: bytes, spans: list, neg: Negotiated, problems: list, has_v4: bool, has_mp: bool
) -> tuple[tuple, bool]:
    """Pass 2: decode every non-MP attribute; returns (fields, treat_as_withdraw)."""
    origin = None
    as_path = None
    next_hop = None
    med = None
    local_pref = None
    communities = ()
    large = ()
    ext = ()
    atomic = False
    aggregator = None
    originator = None
    cluster = ()
    otc = None
    unknown = []
    as4_path = None
    as4_agg = None
    seen = 0
    taw = False
    as4 = neg.as4
    ibgp = neg.ibgp
    for flags, code, vs, ve, hs in spans:
        exp = EXPECTED_FLAGS.get(code)
        if exp is None:
            if not flags & 0x80:
                # RFC 4271 6.3: an unrecognized well-known attribute.
                raise NotificationError(3, UpdateError.UNRECOGNIZED_WELL_KNOWN_ATTRIBUTE,
                                        body[hs:ve], f"unrecognized well-known attribute {code}")
            if flags & 0x40:
                unknown.append((flags | 0x20, code, body[vs:ve]))
            continue
        bit = 1 << code
        if seen & bit:
            problems.append(_problem(Outcome.ATTRIBUTE_DISCARD, code,
                                     UpdateError.MALFORMED_ATTRIBUTE_LIST,
                                     f"attribute {code} repeated; later copy discarded"))
            continue
        seen |= bit
        length = ve - vs
        try:
            if flags & 0xC0 != exp:
                raise _Malformed(
                    Outcome.ATTRIBUTE_DISCARD if code in (_AS4_PATH, _AS4_AGG)
                    else Outcome.TREAT_AS_WITHDRAW,
                    UpdateError.ATTRIBUTE_FLAGS_ERROR, f"flags 0x{flags:02x} for attribute {code}")
            if code == _ORIGIN:
                if length != 1:
                    raise _Malformed(Outcome.TREAT_AS_WITHDRAW, UpdateError.ATTRIBUTE_LENGTH_ERROR,
                                     f"ORIGIN length {length}")
                origin = body[vs]
                if origin > 2:
                    raise _Malformed(Outcome.TREAT_AS_WITHDRAW,
                                     UpdateError.INVALID_ORIGIN_ATTRIBUTE, f"ORIGIN value {origin}")
            elif code == _AS_PATH:
                as_path = parse_as_path(body[vs:ve], as4)
            elif code == _NEXT_HOP:
                if length != 4:
                    raise _Malformed(Outcome.TREAT_AS_WITHDRAW, UpdateError.ATTRIBUTE_LENGTH_ERROR,
                                     f"NEXT_HOP length {length}")
                first = body[vs]
                if first >= 224 or (first == 0 and body[vs:ve] == b"\x00\x00\x00\x00"):
                    if has_v4:
                        raise _Malformed(Outcome.TREAT_AS_WITHDRAW,
                                         UpdateError.INVALID_NEXT_HOP_ATTRIBUTE,
                                         f"NEXT_HOP {_ntoa(body[vs:ve])} is not a unicast address")
                next_hop = _ntoa(body[vs:ve])
            elif code == _MED:
                if length != 4:
                    raise _Malformed(Outcome.TREAT_AS_WITHDRAW, UpdateError.ATTRIBUTE_LENGTH_ERROR,
                                     f"MULTI_EXIT_DISC length {length}")
                med = _U32.unpack_from(body, vs)[0]
            elif code == _COMMUNITIES:
                if not length or length & 3:
                    raise _Malformed(Outcome.TREAT_AS_WITHDRAW, UpdateError.ATTRIBUTE_LENGTH_ERROR,
                                     f"COMMUNITIES length {length}")
                communities = struct.unpack_from(f"!{length >> 2}I", body, vs)
            elif code == _LOCAL_PREF:
                if length != 4:
                    raise _Malformed(Outcome.TREAT_AS_WITHDRAW, UpdateError.ATTRIBUTE_LENGTH_ERROR,
                                     f"LOCAL_PREF length {length}")
                if ibgp:
                    local_pref = _U32.unpack_from(body, vs)[0]
                # RFC 4271 5.1.5: from an external peer it is ignored.
            elif code == _LARGE:
                if not length or length % 12:
                    raise _Malformed(Outcome.TREAT_AS_WITHDRAW, UpdateError.ATTRIBUTE_LENGTH_ERROR,
                                     f"LARGE_COMMUNITIES length {length}")
                vals = struct.unpack_from(f"!{length >> 2}I", body, vs)
                large = tuple(zip(vals[0::3], vals[1::3], vals[2::3], strict=True))
            elif code == _EXT_COMM:
                if not length or length & 7:
                    raise _Malformed(Outcome.TREAT_AS_WITHDRAW, UpdateError.ATTRIBUTE_LENGTH_ERROR,
                                     f"EXTENDED_COMMUNITIES length {length}")
                ext = tuple(body[j:j + 8] for j in range(vs, ve, 8))
            elif code == _ATOMIC:
                if length != 0:
                    raise _Malformed(Outcome.ATTRIBUTE_DISCARD, UpdateError.ATTRIBUTE_LENGTH_ERROR,
                                     f"ATOMIC_AGGREGATE length {length}")
                atomic = True
            elif code == _AGGREGATOR:
                if as4:
                    if length != 8:
                        raise _Malformed(Outcome.ATTRIBUTE_DISCARD,
                                         UpdateError.ATTRIBUTE_LENGTH_ERROR,
                                         f"AGGREGATOR length {length}")
                    aggregator = (_U32.unpack_from(body, vs)[0], _ntoa(body[vs + 4:ve]))
                else:
                    if length != 6:
                        raise _Malformed(Outcome.ATTRIBUTE_DISCARD,
                                         UpdateError.ATTRIBUTE_LENGTH_ERROR,
                                         f"AGGREGATOR length {length}")
                    aggregator = ((body[vs] << 8) | body[vs + 1], _ntoa(body[vs + 2:ve]))
            elif code == _ORIGINATOR:
                if length != 4:
                    raise _Malformed(Outcome.TREAT_AS_WITHDRAW, UpdateError.ATTRIBUTE_LENGTH_ERROR,
                                     f"ORIGINATOR_ID length {length}")
                if ibgp:
                    originator = _ntoa(body[vs:ve])
                else:
                    raise _Malformed(Outcome.ATTRIBUTE_DISCARD, UpdateError.OPTIONAL_ATTRIBUTE_ERROR,
                                     "ORIGINATOR_ID from an external peer")
            elif code == _CLUSTER:
                if not length or length & 3:
                    raise _Malformed(Outcome.TREAT_AS_WITHDRAW, UpdateError.ATTRIBUTE_LENGTH_ERROR,
                                     f"CLUSTER_LIST length {length}")
                if ibgp:
                    cluster = tuple(_ntoa(body[j:j + 4]) for j in range(vs, ve, 4))
                else:
                    raise _Malformed(Outcome.ATTRIBUTE_DISCARD, UpdateError.OPTIONAL_ATTRIBUTE_ERROR,
                                     "CLUSTER_LIST from an external peer")
            elif code == _AS4_PATH:
                if as4:
                    # RFC 6793 4.1: a NEW speaker ignores AS4_PATH from a NEW speaker.
                    raise _Malformed(Outcome.ATTRIBUTE_DISCARD, UpdateError.OPTIONAL_ATTRIBUTE_ERROR,
                                     "AS4_PATH from a 4-octet-AS speaker")
                try:
                    as4_path = parse_as_path(body[vs:ve], True)
                except _Malformed as e:
                    raise _Malformed(Outcome.ATTRIBUTE_DISCARD, e.subcode,
                                     "AS4_PATH: " + e.reason) from None
            elif code == _AS4_AGG:
                if as4:
                    raise _Malformed(Outcome.ATTRIBUTE_DISCARD, UpdateError.OPTIONAL_ATTRIBUTE_ERROR,
                                     "AS4_AGGREGATOR from a 4-octet-AS speaker")
                if length != 8:
                    raise _Malformed(Outcome.ATTRIBUTE_DISCARD, UpdateError.ATTRIBUTE_LENGTH_ERROR,
                                     f"AS4_AGGREGATOR length {length}")
                as4_agg = (_U32.unpack_from(body, vs)[0], _ntoa(body[vs + 4:ve]))
            elif code == _OTC:
                if length != 4:
                    raise _Malformed(Outcome.TREAT_AS_WITHDRAW, UpdateError.ATTRIBUTE_LENGTH_ERROR,
                                     f"OTC length {length}")
                otc = _U32.unpack_from(body, vs)[0]
        except _Malformed as e:
            problems.append(_problem(e.outcome, code, e.subcode, e.reason))
            if e.outcome is Outcome.TREAT_AS_WITHDRAW:
                taw = True

    if origin is None or as_path is None or (has_v4 and next_hop is None):
        missing = (_ORIGIN if origin is None else _AS_PATH if as_path is None else _NEXT_HOP)
        if not taw or missing not in {p.attr_type for p in problems}:
            problems.append(_problem(Outcome.TREAT_AS_WITHDRAW, missing,
                                     UpdateError.MISSING_WELL_KNOWN_ATTRIBUTE,
                                     f"missing well-known attribute {AttrType(missing).name}"))
        taw = True
    if taw:
        return (), True

    if not as4 and (as4_path is not None or as4_agg is not None):
        # RFC 6793 4.2.3
        if aggregator is not None and aggregator[0] != AS_TRANS:
            as4_path = None
        elif as4_agg is not None:
            aggregator = as4_agg
        if as4_path is not None:
            as_path = merge_as4_path(as_path, as4_path)

    if neg.enforce_first_as:
        first = None
        if as_path and as_path[0][0] == SegmentType.AS_SEQUENCE:
            first = as_path[0][1][0]
        if first != neg.peer_as:
            problems.append(_problem(Outcome.TREAT_AS_WITHDRAW, _AS_PATH,
                                     UpdateError.MALFORMED_AS_PATH,
                                     f"AS_PATH does not start with the peer's AS {neg.peer_as}"))
            return (), True
    return (origin, as_path, next_hop, med, local_pref, communities, large, ext, atomic,
            aggregator, originator, cluster, otc, None, tuple(unknown)), False


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
        head_tail = b"\x00\x00" + struct.pack("!H", len(attrs)) + attrs
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
