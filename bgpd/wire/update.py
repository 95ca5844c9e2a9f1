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
from typing import Any, ClassVar, Final

from bgpd.wire.attributes import (
    AttributeCache,
    PathAttributes,
    _Malformed,
    check_as_path,
    merge_as4_path,
    pack_as_path,
    parse_as_path,
    shared_value,
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
from bgpd.wire.nlri import (
    decode_path_prefixes,
    decode_prefix_span,
    encode_path_prefixes,
)

# Final: the compiled build (bgpd.hotpath) reads these as C statics, not as
# module-dict look-ups on every use.
_ntoa: Final = socket.inet_ntoa
_ntop: Final = socket.inet_ntop
_pton: Final = socket.inet_pton
_AF6: Final = socket.AF_INET6
_U32 = struct.Struct("!I")
_U16 = struct.Struct("!H")
_HDR = struct.Struct("!HB")

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

_DEFAULT_CACHE: Final = AttributeCache()
_u32_at: Final = _U32.unpack_from

# Next-hop text by wire bytes: a session brings few distinct next hops, and
# formatting an address costs more than a dict look-up.  Bounded: cleared
# when full.
_NH_CACHE_MAX: Final = 4096
_NH4: Final[dict[bytes, str]] = {}
_NH_MP: Final[dict[bytes, tuple[str, str | None]]] = {}
# MULTI_EXIT_DISC, LOCAL_PREF and OTC values by value, for the same reason
# as next hops: an int above 256 is an object of its own (32 octets) on
# each of a full table's sets, and a table repeats a few hundred values.
# (Any, not int: the compiled build would unbox an int and box a new one.)
_INTS: Final[dict[Any, Any]] = {}


def _shared_int(value: Any) -> Any:
    return shared_value(_INTS, value, _NH_CACHE_MAX)


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
    msg_type: ClassVar[MsgType] = MsgType.UPDATE

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


class _Session:
    """What decoding reads of a :class:`Negotiated`, for every UPDATE.

    Negotiated is a dataclass of the uncompiled part of the codec: in the
    compiled build each of its attributes read here is a generic look-up,
    and an UPDATE read about ten.  This record is made once per Negotiated
    (which is frozen, so it cannot go stale), kept on it, and read by offset.
    """

    __slots__ = ("as4", "ibgp", "peer_as", "enforce_first_as", "v4_addpath_rx", "context",
                 "local_addresses", "mp_rx", "local_raw", "v4_nh6", "on_link", "cache", "table")

    def __init__(self, neg: Negotiated) -> None:
        self.as4: bool = neg.as4
        self.ibgp: bool = neg.ibgp
        self.peer_as: int = neg.peer_as
        self.enforce_first_as: bool = neg.enforce_first_as
        self.v4_addpath_rx: bool = neg._v4_addpath_rx
        self.context: tuple = neg._context
        self.local_addresses: frozenset[str] = neg.local_addresses
        self.mp_rx: dict[int, tuple[int, bool]] = neg._mp_rx
        self.local_raw: frozenset[bytes] = neg._local_raw
        self.v4_nh6: bool = neg._v4_nh6
        self.on_link: bool = neg._on_link
        #: the cache last decoded with, and its table for ``context``
        self.cache: AttributeCache | None = None
        self.table: dict = {}


def _new_session(neg: Negotiated) -> _Session:
    ses = _Session(neg)
    object.__setattr__(neg, "_codec", ses)  # Negotiated is frozen
    return ses


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
    ses = neg._codec
    if not isinstance(ses, _Session):
        ses = _new_session(neg)
    v4_pid = ses.v4_addpath_rx
    withdrawn: list
    nlri: list
    if wlen:
        if v4_pid:
            withdrawn = decode_path_prefixes(body[2:astart - 2], 32)
        else:
            withdrawn = decode_prefix_span(body, 2, astart - 2, 32)
    else:
        withdrawn = []
    if aend < n:
        # An if statement, not a conditional expression: Debian 12's mypy 1.0
        # types the latter as object, and its mypyc then refuses the module.
        if v4_pid:
            nlri = decode_path_prefixes(body[aend:], 32)
        else:
            nlri = decode_prefix_span(body, aend, n, 32)
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
    if ses.cache is cache:
        table = ses.table
    else:
        # A session decodes with one cache: its table is looked up (and the
        # context tuple hashed) once, not per UPDATE.  The cache clears its
        # tables in place, so the reference stays good.
        table = cache.table(ses.context)
        ses.cache = cache
        ses.table = table
    raw = body[astart:aend]
    if nlri:
        # Fast path: the same attribute block seen before (no MP attributes in
        # it, or it would not have been stored under its whole bytes).
        base = table.get(raw)
        if base is not None and (not ses.local_addresses
                                 or base.next_hop not in ses.local_addresses):
            # (A NEXT_HOP that is our own address on this session is checked
            # again below: the table is shared by sessions with other addresses.)
            cache.hits += 1
            return Update(withdrawn, base, nlri)

    has_v4 = bool(nlri)
    (attrs, missing, problems, taw, pieces, mp_reach_span, mp_unreach_span, as4_path,
     as4_agg) = _parse_attributes(body, astart, aend, ses, has_v4)
    mp_unreach = None
    if mp_unreach_span is not None:
        mp_unreach = _decode_mp_unreach(body, mp_unreach_span, ses, problems)
    mp_nlri = None
    mp_afi = mp_safi = 0
    mp_nh = b""
    if mp_reach_span is not None:
        mp_afi, mp_safi, mp_nh, mp_nlri, mp_taw = _decode_mp_reach(body, mp_reach_span, ses,
                                                                   problems)
        if mp_taw:
            taw = True

    if not nlri and not mp_nlri:
        # Nothing announced: the attributes mean nothing (RFC 7606 5.2 allows
        # an UPDATE with only MP_UNREACH and no other attributes).
        return Update(withdrawn, None, nlri, None, mp_unreach,
                      tuple(problems) if problems else (), taw)

    if not taw and (missing or as4_path or as4_agg or ses.enforce_first_as):
        taw = not _finish(attrs, missing, problems, as4_path, as4_agg, ses)
    if taw or attrs is None:  # (no attrs: a mandatory attribute is missing, so taw)
        mp_reach = MPReach(mp_afi, mp_safi, None, mp_nlri) if mp_nlri else None
        return Update(withdrawn, None, nlri, mp_reach, mp_unreach, tuple(problems), True)
    clean = not problems
    if pieces:
        # The intern key leaves the MP attributes out: their NLRI differ from
        # one UPDATE to the next while the other attributes repeat.
        if len(pieces) == 1:
            hs, ve = pieces[0]
            if hs == astart:
                raw = body[ve:aend]
            else:
                raw = body[astart:hs] + body[ve:aend]
        else:
            parts = []
            pos = astart
            for hs, ve in pieces:
                parts.append(body[pos:hs])
                pos = ve
            parts.append(body[pos:aend])
            raw = b"".join(parts)
    base = None
    mp_reach = None
    if nlri:
        base = table.get(raw) if pieces else None
        if base is None:
            base = attrs
            if clean:
                table[raw] = base
                if len(table) >= cache.max_entries:
                    cache.store(table, raw, base)
    if mp_nlri:
        key = (raw, mp_nh)
        mp_attrs = table.get(key)
        if mp_attrs is None:
            nh, ll = _next_hop_strings(mp_nh)
            if base is attrs:
                # The set is the IPv4 NLRI's too: a copy with the MP next hop.
                a = attrs
                mp_attrs = PathAttributes(a.origin, a.as_path_packed, nh, a.med, a.local_pref,
                                          a.communities_packed, a.large_communities_packed,
                                          a.ext_communities,
                                          a.atomic_aggregate, a.aggregator, a.originator_id,
                                          a.cluster_list, a.otc, ll, a.unknown)
            else:
                # Made by this call and not shared yet: it becomes the MP set.
                mp_attrs = attrs
                mp_attrs.next_hop = nh
                if ll is not None:
                    mp_attrs._set_rest(6, ll)  # next_hop_ll
            if clean:
                table[key] = mp_attrs
                if len(table) >= cache.max_entries:
                    cache.store(table, key, mp_attrs)
        else:
            cache.hits += 1
        mp_reach = MPReach(mp_afi, mp_safi, mp_attrs, mp_nlri)
    cache.misses += 1
    return Update(withdrawn, base, nlri, mp_reach, mp_unreach,
                  tuple(problems) if problems else (), False)


def _next_hop_strings(nh: bytes) -> tuple[str, str | None]:
    strings = _NH_MP.get(nh)
    if strings is None:
        strings = _next_hop_text(nh)
        if len(_NH_MP) >= _NH_CACHE_MAX:
            _NH_MP.clear()
        _NH_MP[nh] = strings
    return strings


def _next_hop_text(nh: bytes) -> tuple[str, str | None]:
    if len(nh) == 4:
        return _ntoa(nh), None
    if len(nh) == 16:
        return _ntop(_AF6, nh), None
    return _ntop(_AF6, nh[:16]), _ntop(_AF6, nh[16:32])


def _decode_mp_unreach(body: bytes, span: tuple, ses: _Session, problems: list) -> MPUnreach | None:
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
    rx = ses.mp_rx.get((afi << 8) | safi)
    if rx is None:
        problems.append(_problem(Outcome.ATTRIBUTE_DISCARD, _MP_UNREACH,
                                 UpdateError.OPTIONAL_ATTRIBUTE_ERROR,
                                 f"MP_UNREACH_NLRI for family {afi}/{safi} not negotiated"))
        return None
    max_bits, with_path_id = rx
    wd: list
    try:
        if with_path_id:
            wd = decode_path_prefixes(body[vs + 3:ve], max_bits)
        else:
            wd = decode_prefix_span(body, vs + 3, ve, max_bits)
    except NotificationError as e:
        raise NotificationError(3, UpdateError.OPTIONAL_ATTRIBUTE_ERROR, b"",
                                f"MP_UNREACH_NLRI: {e.reason}") from None
    return MPUnreach(afi, safi, wd)


def _decode_mp_reach(body: bytes, span: tuple, ses: _Session, problems: list) -> tuple:
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
    rx = ses.mp_rx.get((afi << 8) | safi)
    if rx is None:
        problems.append(_problem(Outcome.ATTRIBUTE_DISCARD, _MP_REACH,
                                 UpdateError.OPTIONAL_ATTRIBUTE_ERROR,
                                 f"MP_REACH_NLRI for family {afi}/{safi} not negotiated"))
        return 0, 0, b"", None, False
    if nhlen == 16 or nhlen == 32:
        if afi == 1 and not (safi == 1 and ses.v4_nh6):
            # RFC 8950 section 3 and 4: an IPv6 next hop for IPv4 NLRI only
            # once the Extended Next Hop Encoding capability is negotiated;
            # otherwise the length is "inconsistent with that which was
            # expected" (RFC 7606 7.11): session reset.
            raise NotificationError(3, UpdateError.OPTIONAL_ATTRIBUTE_ERROR, b"",
                                    f"MP_REACH_NLRI IPv6 next hop for AFI {afi} SAFI {safi} "
                                    "without the extended next hop capability (RFC 8950)")
    elif not (nhlen == 4 and afi == 1):
        raise NotificationError(3, UpdateError.OPTIONAL_ATTRIBUTE_ERROR, b"",
                                f"MP_REACH_NLRI next hop length {nhlen} for AFI {afi}")
    nh = body[vs + 4:vs + 4 + nhlen]
    max_bits, with_path_id = rx
    prefixes: list
    try:
        if with_path_id:
            prefixes = decode_path_prefixes(body[vs + 5 + nhlen:ve], max_bits)
        else:
            prefixes = decode_prefix_span(body, vs + 5 + nhlen, ve, max_bits)
    except NotificationError as e:
        raise NotificationError(3, UpdateError.OPTIONAL_ATTRIBUTE_ERROR, b"",
                                f"MP_REACH_NLRI: {e.reason}") from None
    if not prefixes or (nhlen != 4 and nh[0] & 0xE0 == 0x20
                        and (nh if nhlen == 16 else nh[:16]) not in ses.local_raw):
        # The common case: a global unicast IPv6 next hop (2000::/3), not ours.
        return afi, safi, nh, prefixes, False
    bad = _mp_next_hop_error(nh, ses)
    if bad is not None:
        # A next hop that cannot be used is semantically incorrect (RFC 4271
        # 6.3, RFC 4760 3, RFC 2545 3): logged, routes ignored, no NOTIFICATION.
        problems.append(_problem(_TAW, _MP_REACH, UpdateError.INVALID_NEXT_HOP_ATTRIBUTE,
                                 "MP_REACH_NLRI " + bad))
        return afi, safi, nh, prefixes, True
    return afi, safi, nh, prefixes, False


_ZERO16: Final = bytes(16)


def _link_local(addr: bytes) -> bool:
    return addr[0] == 0xFE and addr[1] & 0xC0 == 0x80


def _mp_next_hop_error(nh: bytes, ses: _Session) -> str | None:
    """Why an MP_REACH next hop cannot be used, or None if it can."""
    if len(nh) == 4:
        if nh[0] >= 224 or nh == b"\0\0\0\0":
            return f"next hop {_ntoa(nh)} is not a unicast address"
        if nh in ses.local_raw:
            return f"next hop {_ntoa(nh)} is our own address"
        return None
    glob = nh[:16]
    if glob[0] == 0xFF:
        return f"next hop {_ntop(_AF6, glob)} is a multicast address"
    if glob == _ZERO16 or _link_local(glob):
        # Link-local only: "::" or a link-local address where the global one
        # goes (RFC 2545 3).  Usable only by a peer on our own link, which a
        # session over link-local addresses is.
        ll = glob if glob != _ZERO16 else nh[16:]
        if not ll or not _link_local(ll):
            return "next hop has no usable address (unspecified global, no link-local)"
        if not ses.on_link:
            return (f"next hop is link-local only ({_ntop(_AF6, ll)}) on a session that "
                    "is not over a shared link: a global address is needed")
    if glob in ses.local_raw:
        return f"next hop {_ntop(_AF6, glob)} is our own address"
    return None


_DUP: Final = "attribute {} repeated; later copy discarded"

# What _parse_attributes returns.  A fixed-length tuple type: the compiled
# build keeps it as a C struct (no tuple allocated, items read by offset).
_Parsed = tuple[PathAttributes | None, int, list, bool, list[tuple[int, int]] | None,
                tuple[int, int, int] | None, tuple[int, int, int] | None, Any, Any]


def _parse_attributes(body: bytes, i: int, aend: int, ses: _Session, has_v4: bool) -> _Parsed:
    """One pass over the path attributes: headers, flags, values (RFC 7606).

    Returns ``(attrs, missing, problems, taw, pieces, mp_reach_span,
    mp_unreach_span, as4_path, as4_agg)``: ``attrs`` the new, not yet shared
    :class:`PathAttributes` (None if ORIGIN or AS_PATH is missing),
    ``missing`` the type code of the first mandatory attribute missing (0: none),
    ``pieces`` the ``(start, end)`` of the MP attributes (left out of the
    intern key), ``as4_path``/``as4_agg`` for :func:`_finish`.
    """
    # Any: each starts as None (absent), may become a placeholder for "seen
    # but bad" and then the value (precise types would only add checks).
    origin: Any = None
    as_path: Any = None
    next_hop: Any = None
    med: Any = None
    local_pref: Any = None
    communities: Any = None
    large: Any = None
    ext: Any = None
    aggregator: Any = None
    originator: Any = None
    cluster: Any = None
    otc: Any = None
    as4_path: Any = None
    as4_agg: Any = None
    atomic = False
    unknown: list | None = None
    problems: list[Problem] = []
    pieces: list[tuple[int, int]] | None = None
    taw = False
    # Annotated: Debian 12's mypy 1.0 types a bare None as None for good, skips
    # the code that tests it as unreachable, and its mypyc then crashes there.
    mp_reach_span: tuple[int, int, int] | None = None
    mp_unreach_span: tuple[int, int, int] | None = None
    as4 = ses.as4
    ibgp = ses.ibgp
    local = ses.local_addresses
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
        length = ve - vs
        fl = flags & 0xC0
        # Each branch: duplicate check (RFC 7606 3(g): keep the first),
        # flags check (3(c)), length and value checks (section 7).  The
        # branches run in order of how often the attributes are seen.
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
                as_path = ()
                if fl != 0x40:
                    raise _flags(code, flags)
                if (as4 and length > 2 and body[vs] == 2
                        and (length - 2) == (body[vs + 1] << 2)):
                    # The common case: one AS_SEQUENCE of 4-octet ASNs,
                    # kept as the packed form it already is.
                    as_path = body[vs:ve]
                else:
                    if as4:
                        # Checked, then kept as received (the packed form).
                        confed = check_as_path(body, vs, ve)
                        as_path = body[vs:ve]
                    else:
                        as_path = parse_as_path(body[vs:ve], False)
                        confed = any(seg[0] >= 3 for seg in as_path)
                    if confed and not ibgp:
                        # RFC 7606 7.2 (RFC 5065 5): confederation segments
                        # from a peer outside our confederation (bgpd has none).
                        raise _Malformed(_TAW, UpdateError.MALFORMED_AS_PATH,
                                         "AS_CONFED segment from an external peer")
            elif code == 3:  # NEXT_HOP
                if next_hop is not None:
                    raise _Dup
                next_hop = ""
                if fl != 0x40:
                    raise _flags(code, flags)
                if length != 4:
                    raise _Malformed(_TAW, _LEN_ERR, f"NEXT_HOP length {length}")
                nh_raw = body[vs:ve]
                next_hop = _NH4.get(nh_raw)
                if next_hop is None:
                    next_hop = _ntoa(nh_raw)
                    if len(_NH4) >= _NH_CACHE_MAX:
                        _NH4.clear()
                    _NH4[nh_raw] = next_hop
                if has_v4 and (body[vs] >= 224 or next_hop == "0.0.0.0"):
                    raise _Malformed(_TAW, UpdateError.INVALID_NEXT_HOP_ATTRIBUTE,
                                     f"NEXT_HOP {next_hop} is not a unicast address")
                if has_v4 and local and next_hop in local:
                    # RFC 4271 6.3 (semantic check a), RFC 7606 7.3: logged,
                    # the route ignored, no NOTIFICATION.
                    raise _Malformed(_TAW, UpdateError.INVALID_NEXT_HOP_ATTRIBUTE,
                                     f"NEXT_HOP {next_hop} is our own address")
            elif code == 8:  # COMMUNITIES
                if communities is not None:
                    raise _Dup
                communities = ()
                if fl != 0xC0:
                    raise _flags(code, flags)
                if not length or length & 3:
                    raise _Malformed(_TAW, _LEN_ERR, f"COMMUNITIES length {length}")
                communities = body[vs:ve]
            elif code == 14 or code == 15:
                if pieces is None:
                    pieces = []
                if code == 14:
                    if mp_reach_span is not None:
                        raise NotificationError(3, UpdateError.MALFORMED_ATTRIBUTE_LIST, b"",
                                                "MP_REACH_NLRI appears twice")
                    mp_reach_span = (flags, vs, ve)
                else:
                    if mp_unreach_span is not None:
                        raise NotificationError(3, UpdateError.MALFORMED_ATTRIBUTE_LIST, b"",
                                                "MP_UNREACH_NLRI appears twice")
                    mp_unreach_span = (flags, vs, ve)
                pieces.append((hs, ve))
            elif code == 4:  # MULTI_EXIT_DISC
                if med is not None:
                    raise _Dup
                med = -1
                if fl != 0x80:
                    raise _flags(code, flags)
                if length != 4:
                    raise _Malformed(_TAW, _LEN_ERR, f"MULTI_EXIT_DISC length {length}")
                med = _u32_at(body, vs)[0]
                if med > 256:
                    med = _shared_int(med)
            elif code == 5:  # LOCAL_PREF
                if local_pref is not None:
                    raise _Dup
                local_pref = -1
                if not ibgp:
                    # RFC 7606 7.5: from an external neighbor it is discarded
                    # ("attribute discard") whatever its flags and length.
                    local_pref = -2
                    if fl != 0x40 or length != 4:
                        raise _Malformed(_DISCARD, _LEN_ERR if fl == 0x40 else _FLAGS_ERR,
                                         f"LOCAL_PREF from an external peer (length {length}, "
                                         f"flags 0x{flags:02x})")
                    continue
                if fl != 0x40:
                    raise _flags(code, flags)
                if length != 4:
                    raise _Malformed(_TAW, _LEN_ERR, f"LOCAL_PREF length {length}")
                local_pref = _u32_at(body, vs)[0]
                if local_pref > 256:
                    local_pref = _shared_int(local_pref)
            elif code == 32:  # LARGE_COMMUNITIES
                if large is not None:
                    raise _Dup
                large = ()
                if fl != 0xC0:
                    raise _flags(code, flags)
                if not length or length % 12:
                    raise _Malformed(_TAW, _LEN_ERR, f"LARGE_COMMUNITIES length {length}")
                large = body[vs:ve]
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
                    aggregator = (_u32_at(body, vs)[0], _ntoa(body[vs + 4:ve]))
                else:
                    aggregator = ((body[vs] << 8) | body[vs + 1], _ntoa(body[vs + 2:ve]))
            elif code == 9:  # ORIGINATOR_ID
                if originator is not None:
                    raise _Dup
                originator = ""
                if not ibgp:
                    # RFC 7606 7.9: discarded from an external neighbor,
                    # before any check of its flags or length.
                    raise _Malformed(_DISCARD, _OPT_ERR, "ORIGINATOR_ID from an external peer")
                if fl != 0x80:
                    raise _flags(code, flags)
                if length != 4:
                    raise _Malformed(_TAW, _LEN_ERR, f"ORIGINATOR_ID length {length}")
                originator = _ntoa(body[vs:ve])
            elif code == 10:  # CLUSTER_LIST
                if cluster is not None:
                    raise _Dup
                cluster = ()
                if not ibgp:
                    # RFC 7606 7.10: discarded from an external neighbor.
                    raise _Malformed(_DISCARD, _OPT_ERR, "CLUSTER_LIST from an external peer")
                if fl != 0x80:
                    raise _flags(code, flags)
                if not length or length & 3:
                    raise _Malformed(_TAW, _LEN_ERR, f"CLUSTER_LIST length {length}")
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
                as4_agg = (_u32_at(body, vs)[0], _ntoa(body[vs + 4:ve]))
            elif code == 35:  # OTC
                if otc is not None:
                    raise _Dup
                otc = -1
                if fl != 0xC0:
                    raise _flags(code, flags)
                if length != 4:
                    raise _Malformed(_TAW, _LEN_ERR, f"OTC length {length}")
                otc = _shared_int(_u32_at(body, vs)[0])
            elif code == 25:  # IPv6 Address Specific Extended Community (RFC 5701)
                if fl != 0xC0:
                    raise _flags(code, flags)
                if not length or length % 20:
                    # RFC 7606 7.14
                    raise _Malformed(_TAW, _LEN_ERR,
                                     f"IPV6_EXTENDED_COMMUNITIES length {length}")
                # bgpd does not act on it: passed on as received, a
                # recognized attribute (so Partial is not set).
                if unknown is None:
                    unknown = []
                elif any(u[1] == code for u in unknown):
                    raise _Dup
                unknown.append((flags & 0xE0, code, body[vs:ve]))
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
    # Placeholders used above for "seen but bad" become "absent".  Each one
    # is left behind only by a recorded problem, except LOCAL_PREF's -2
    # (ignored from an external peer).
    if problems:
        if med == -1:
            med = None
        if otc == -1:
            otc = None
        if aggregator == ():
            aggregator = None
        if originator == "":
            originator = None
        if next_hop == "":
            next_hop = None
    if local_pref is not None and local_pref < 0:
        local_pref = None
    # The mandatory attributes (RFC 4271 5.1.1-5.1.3): _finish reports the
    # first one missing unless the UPDATE is treat-as-withdraw already.
    missing = 0
    attrs = None
    if origin is None:
        missing = 1  # ORIGIN
    elif as_path is None:
        missing = 2  # AS_PATH
    else:
        if has_v4 and next_hop is None:
            missing = 3  # NEXT_HOP
        # Made from the locals, no tuple of fields: the compiled build calls
        # the native constructor directly, and the interpreter skips a 15-tuple.
        attrs = PathAttributes(origin, as_path, next_hop, med, local_pref, communities or b"",
                               large or b"", ext or (), atomic, aggregator, originator,
                               cluster or (), otc, None, tuple(unknown) if unknown else ())
    return (attrs, missing, problems, taw, pieces, mp_reach_span, mp_unreach_span, as4_path,
            as4_agg)


def _finish(attrs: PathAttributes | None, missing: int, problems: list, as4_path: tuple | None,
            as4_agg: tuple | None, ses: _Session) -> bool:
    """Mandatory-attribute checks and RFC 6793 merging; False means treat-as-withdraw.

    ``attrs`` is not shared yet: the merge changes it in place.
    """
    if missing or attrs is None:
        problems.append(_problem(_TAW, missing, UpdateError.MISSING_WELL_KNOWN_ATTRIBUTE,
                                 f"missing well-known attribute {AttrType(missing).name}"))
        return False
    if (as4_path or as4_agg) and not ses.as4:
        aggregator: Any = attrs.aggregator  # (AS4_AGGREGATOR's is an untyped tuple)
        # RFC 6793 4.2.3
        if aggregator is not None and aggregator[0] != AS_TRANS:
            as4_path = None
        elif as4_agg:
            aggregator = as4_agg
        if as4_path:
            attrs.as_path_packed = pack_as_path(merge_as4_path(attrs.as_path, as4_path), True)
        attrs._set_rest(2, aggregator)  # aggregator
    if ses.enforce_first_as:
        # An int constant, not the enum member: the compiled build compares C
        # integers here, once per UPDATE from an eBGP peer.
        peer_as = ses.peer_as
        first = -1
        raw = attrs.as_path_packed
        if raw and raw[0] == _AS_SEQUENCE:
            first = _u32_at(raw, 2)[0]
        if first != peer_as:
            problems.append(_problem(_TAW, _AS_PATH, UpdateError.MALFORMED_AS_PATH,
                                     f"AS_PATH does not start with the peer's AS {peer_as}"))
            return False
    return True


class _DupType(Exception):
    pass


_Dup: Final = _DupType()
_AS_SEQUENCE: Final = int(SegmentType.AS_SEQUENCE)
_TAW: Final = Outcome.TREAT_AS_WITHDRAW
_DISCARD: Final = Outcome.ATTRIBUTE_DISCARD
_LEN_ERR: Final = UpdateError.ATTRIBUTE_LENGTH_ERROR
_OPT_ERR: Final = UpdateError.OPTIONAL_ATTRIBUTE_ERROR
_FLAGS_ERR: Final = UpdateError.ATTRIBUTE_FLAGS_ERROR
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


# Everything before the path attributes, packed at once: marker, length,
# type, withdrawn routes length (0), path attributes length; for MP_REACH
# also its attribute header (extended length) and afi/safi/next-hop length.
_REACH_HEAD: Final = struct.Struct("!16sHBHH").pack
_MP_REACH_HEAD: Final = struct.Struct("!16sHBHHBBHHBB").pack
_WITHDRAW_HEAD: Final = struct.Struct("!16sHBH").pack
_MP_UNREACH_HEAD: Final = struct.Struct("!16sHBHHBBHHB").pack


def _chunks(items: list, room: int, size_of: Callable[[Any], int]) -> list:
    out = []
    cur: list = []
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
    nh_str = attributes.next_hop
    if afi == 1 and safi == 1 and (nh_str is None or ":" not in nh_str):
        attrs = attributes.pack(neg.as4, True)
        n_attrs = len(attrs)
        fixed = HEADER_LEN + 4 + n_attrs
        if not with_pid:
            nlri = b"".join(prefixes)
            if len(nlri) <= max_len - fixed:  # the common case: one message
                return [_REACH_HEAD(MARKER, fixed + len(nlri), 2, 0, n_attrs) + attrs + nlri]
        messages = []
        for chunk in _chunks(prefixes, max_len - fixed, _path_prefix_size if with_pid else len):
            nlri = encode_path_prefixes(chunk) if with_pid else b"".join(chunk)
            messages.append(_REACH_HEAD(MARKER, fixed + len(nlri), 2, 0, n_attrs) + attrs + nlri)
        return messages
    attrs = attributes.pack(neg.as4, False)
    nh = pack_next_hop(attributes, afi)
    n_nh = len(nh)
    nh_tail = nh + b"\x00"  # the reserved octet
    # attr header (ext len) + afi/safi/nhlen + nh + reserved
    mp_fixed = 4 + 4 + n_nh + 1
    n_attrs = len(attrs)
    fixed = HEADER_LEN + 4 + mp_fixed + n_attrs
    if not with_pid:
        nlri = b"".join(prefixes)
        if len(nlri) <= max_len - fixed:  # one message
            chunks: list = [nlri] if nlri else []
        else:
            chunks = [b"".join(c) for c in _chunks(prefixes, max_len - fixed, len)]
    else:
        chunks = [encode_path_prefixes(c) for c in _chunks(prefixes, max_len - fixed, _path_prefix_size)]
    messages = []
    for nlri in chunks:
        n = len(nlri)
        mp_len = 5 + n_nh + n
        messages.append(b"".join((
            _MP_REACH_HEAD(MARKER, fixed + n, 2, 0, mp_fixed + n + n_attrs, 0x90, _MP_REACH, mp_len,
                           afi, safi, n_nh),
            nh_tail, nlri, attrs,
        )))
    return messages


def pack_withdraw(afi: int, safi: int, prefixes: list, neg: Negotiated = DEFAULT) -> list[bytes]:
    """Complete UPDATE messages withdrawing ``prefixes``, as many per message as fit."""
    max_len = neg.max_message_len
    with_pid = (afi, safi) in neg.addpath_tx
    v4 = afi == 1 and safi == 1
    fixed = HEADER_LEN + 4 if v4 else HEADER_LEN + 4 + 4 + 3
    if with_pid:
        chunks = [encode_path_prefixes(c) for c in _chunks(prefixes, max_len - fixed, _path_prefix_size)]
    else:
        wd = b"".join(prefixes)
        if len(wd) <= max_len - fixed:  # the common case: one message
            chunks = [wd] if wd else []
        else:
            chunks = [b"".join(c) for c in _chunks(prefixes, max_len - fixed, len)]
    if v4:
        return [_WITHDRAW_HEAD(MARKER, fixed + len(wd), 2, len(wd)) + wd + b"\x00\x00" for wd in chunks]
    return [
        _MP_UNREACH_HEAD(
            MARKER, fixed + len(wd), 2, 0, 7 + len(wd), 0x90, _MP_UNREACH, 3 + len(wd), afi, safi,
        ) + wd
        for wd in chunks
    ]
