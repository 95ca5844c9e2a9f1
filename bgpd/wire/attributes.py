"""Path attributes (RFC 4271 section 4.3 and 5, RFC 4760, RFC 6793, RFC 1997,
RFC 4360, RFC 8092, RFC 4456, RFC 9234) with RFC 7606 error handling.

A :class:`PathAttributes` is one immutable, hashable set of attributes that
every prefix announced with it shares.  The decoder interns them by their raw
bytes (see :class:`AttributeCache`), so the thousands of prefixes of one
UPDATE, and the same UPDATE sent again later, point at one object.
"""

from __future__ import annotations

import socket
import struct
import sys
from collections.abc import Iterable
from typing import Any, ClassVar, Final

from bgpd.wire.constants import AS_TRANS, AttrType, Origin, SegmentType, UpdateError
from bgpd.wire.errors import NotificationError, Outcome, Problem

# Final: the compiled build (bgpd.hotpath) reads these as C statics, not as
# module-dict look-ups on every use.
_ntoa: Final = socket.inet_ntoa
_aton: Final = socket.inet_aton
_AF6 = socket.AF_INET6
_ntop = socket.inet_ntop
_pton = socket.inet_pton

_U32 = struct.Struct("!I")
_U16 = struct.Struct("!H")
_U32_AT: Final = _U32.unpack_from
# Precompiled unpackers for N 4-octet / 2-octet values: AS path segments,
# communities and cluster lists are the common case of "N integers".
_UNPACK4: Final = [struct.Struct(f"!{n}I").unpack_from for n in range(256)]
_UNPACK2: Final = [struct.Struct(f"!{n}H").unpack_from for n in range(256)]
_PACK4: Final = [struct.Struct(f"!{n}I").pack for n in range(256)]
_PACK2: Final = [struct.Struct(f"!{n}H").pack for n in range(256)]

# (optional, transitive) bits each known attribute must carry (RFC 7606 3(c)).
_WELL_KNOWN = 0x40
_OPT_NON_TRANS = 0x80
_OPT_TRANS = 0xC0
EXPECTED_FLAGS = {
    AttrType.ORIGIN: _WELL_KNOWN,
    AttrType.AS_PATH: _WELL_KNOWN,
    AttrType.NEXT_HOP: _WELL_KNOWN,
    AttrType.MULTI_EXIT_DISC: _OPT_NON_TRANS,
    AttrType.LOCAL_PREF: _WELL_KNOWN,
    AttrType.ATOMIC_AGGREGATE: _WELL_KNOWN,
    AttrType.AGGREGATOR: _OPT_TRANS,
    AttrType.COMMUNITIES: _OPT_TRANS,
    AttrType.ORIGINATOR_ID: _OPT_NON_TRANS,
    AttrType.CLUSTER_LIST: _OPT_NON_TRANS,
    AttrType.MP_REACH_NLRI: _OPT_NON_TRANS,
    AttrType.MP_UNREACH_NLRI: _OPT_NON_TRANS,
    AttrType.EXTENDED_COMMUNITIES: _OPT_TRANS,
    AttrType.AS4_PATH: _OPT_TRANS,
    AttrType.AS4_AGGREGATOR: _OPT_TRANS,
    AttrType.LARGE_COMMUNITIES: _OPT_TRANS,
    AttrType.OTC: _OPT_TRANS,
}

AsPath = tuple[tuple[int, tuple[int, ...]], ...]


class PathAttributes:
    """One shared, immutable set of path attributes.

    ``as_path`` is a tuple of ``(segment_type, (asn, ...))``; ``communities``
    a tuple of 32-bit ints; ``large_communities`` a tuple of ``(global, d1,
    d2)``; ``ext_communities`` a tuple of 8-octet ``bytes``; ``unknown`` a
    tuple of ``(flags, type, value)`` for optional transitive attributes we
    pass on untouched (with the Partial bit set, RFC 4271 5).  ``next_hop``
    and ``next_hop_ll`` are address strings (``next_hop_ll``: the IPv6
    link-local half of a 32-octet MP_REACH next hop).

    AS_PATH, COMMUNITIES and LARGE_COMMUNITIES are kept packed, as one
    ``bytes`` each: ``as_path_packed`` is the AS_PATH attribute's value as a
    4-octet-AS speaker sends it (RFC 6793 4.1: segments of type, count and
    4-octet ASNs), ``communities_packed`` the COMMUNITIES value (RFC 1997: 4
    octets each), ``large_communities_packed`` the LARGE_COMMUNITIES value
    (RFC 8092: 12 octets each).  A full table has hundreds of thousands of sets, and the tuple
    forms cost an int object per ASN and per community; the bytes cost one
    object, often a slice of the UPDATE.  ``as_path``, ``communities`` and
    ``large_communities`` decode them on each read (not cached: that would give the memory back);
    hot readers use :attr:`as_path_length`, :attr:`neighbor_as`,
    :attr:`origin_as`, :meth:`count_asn`, :meth:`has_community` and
    :func:`prepend_as_path` instead.  The constructor and :meth:`replace`
    take either form.  ``as_path`` given as tuples is stored as it would be
    sent: segments longer than 255 ASNs split, empty ones left out.

    The eight fields a full table's sets rarely carry (``ext_communities``
    to ``unknown`` in ``_FIELDS`` order) are kept in one tuple that equal
    values share, and read through properties: a set with none of them
    costs one slot for all eight, not eight.

    Treat instances as immutable: use :meth:`replace` to derive a new one.
    """

    _FIELDS: ClassVar[tuple[str, ...]] = (
        "origin",
        "as_path",
        "next_hop",
        "med",
        "local_pref",
        "communities",
        "large_communities",
        "ext_communities",
        "atomic_aggregate",
        "aggregator",
        "originator_id",
        "cluster_list",
        "otc",
        "next_hop_ll",
        "unknown",
    )
    # The last eight fields, rarely set on a full table's sets, live in one
    # tuple (``_rest``, in ``_REST_FIELDS`` order) that sets with equal values
    # share: every set with none of them shares ``_NO_REST``; the others
    # share through ``_rest_of``'s table (a peer's sets repeat its link-local
    # next hop, ORIGINATOR_ID / CLUSTER_LIST, OTC).  A slot costs 8 octets
    # on each of a full table's several hundred thousand sets per peer.
    __slots__ = (
        "origin", "as_path_packed", "next_hop", "med", "local_pref", "communities_packed",
        "large_communities_packed", "_rest", "_hash", "_packed",
    )

    def __init__(
        self,
        origin: int = Origin.IGP,
        as_path: AsPath | bytes = b"",
        next_hop: str | None = None,
        med: int | None = None,
        local_pref: int | None = None,
        communities: tuple[int, ...] | bytes = b"",
        large_communities: tuple[tuple[int, int, int], ...] | bytes = b"",
        ext_communities: tuple[bytes, ...] = (),
        atomic_aggregate: bool = False,
        aggregator: tuple[int, str] | None = None,
        originator_id: str | None = None,
        cluster_list: tuple[str, ...] = (),
        otc: int | None = None,
        next_hop_ll: str | None = None,
        unknown: tuple[tuple[int, int, bytes], ...] = (),
    ) -> None:
        self.origin = origin
        self.as_path_packed: bytes = (
            as_path if isinstance(as_path, bytes) else pack_as_path(as_path, True)
        )
        self.next_hop = next_hop
        self.med = med
        self.local_pref = local_pref
        self.communities_packed: bytes = (
            communities if isinstance(communities, bytes) else pack_communities(communities)
        )
        self.large_communities_packed: bytes = (
            large_communities if isinstance(large_communities, bytes)
            else pack_communities([x for lc in large_communities for x in lc])
        )
        if (not ext_communities and not atomic_aggregate and aggregator is None
                and originator_id is None and not cluster_list and otc is None
                and next_hop_ll is None and not unknown):
            self._rest: tuple = _NO_REST
        else:
            self._rest = _rest_of((ext_communities, atomic_aggregate, aggregator, originator_id,
                                   cluster_list, otc, next_hop_ll, unknown))
        #: hash(), once computed (-1: not yet); kept in 62 bits, so that the
        #: compiled build stores it unboxed instead of as an int object per set
        self._hash: int = -1
        self._packed: list[bytes | None] | None = None

    # The fields kept in ``_rest`` (read-only: treat instances as immutable).

    @property
    def ext_communities(self) -> tuple[bytes, ...]:
        """EXTENDED_COMMUNITIES (RFC 4360): a tuple of 8-octet values."""
        return self._rest[0]

    @property
    def atomic_aggregate(self) -> bool:
        """ATOMIC_AGGREGATE (RFC 4271 5.1.6) present."""
        return self._rest[1]

    @property
    def aggregator(self) -> tuple[int, str] | None:
        """AGGREGATOR (RFC 4271 5.1.7) as ``(asn, address)``, or None."""
        return self._rest[2]

    @property
    def originator_id(self) -> str | None:
        """ORIGINATOR_ID (RFC 4456 8), or None."""
        return self._rest[3]

    @property
    def cluster_list(self) -> tuple[str, ...]:
        """CLUSTER_LIST (RFC 4456 8): cluster ids, the latest first."""
        return self._rest[4]

    @property
    def otc(self) -> int | None:
        """Only to Customer (RFC 9234 5), or None."""
        return self._rest[5]

    @property
    def next_hop_ll(self) -> str | None:
        """The link-local half of a 32-octet IPv6 next hop (RFC 2545 3), or None."""
        return self._rest[6]

    @property
    def unknown(self) -> tuple[tuple[int, int, bytes], ...]:
        """Optional transitive attributes passed on untouched: ``(flags, type, value)``."""
        return self._rest[7]

    def _set_rest(self, index: int, value: object) -> None:
        """Change one ``_rest`` field of a set not shared yet (the decoder's merges)."""
        rest = list(self._rest)
        rest[index] = value
        self._rest = _NO_REST if tuple(rest) == _NO_REST else _rest_of(tuple(rest))

    @property
    def as_path(self) -> AsPath:
        """The AS_PATH as ``((segment_type, (asn, ...)), ...)``, decoded from the packed form."""
        return _decode_as_path(self.as_path_packed)

    @property
    def communities(self) -> tuple[int, ...]:
        """The COMMUNITIES as a tuple of 32-bit ints, decoded from the packed form."""
        raw = self.communities_packed
        n = len(raw) >> 2
        if n < 256:
            return _UNPACK4[n](raw, 0)
        return struct.unpack(f"!{n}I", raw)

    @property
    def large_communities(self) -> tuple[tuple[int, int, int], ...]:
        """The LARGE_COMMUNITIES as ``((global, data1, data2), ...)``, decoded from the packed form."""
        raw = self.large_communities_packed
        if not raw:
            return ()
        n = len(raw) >> 2
        vals = iter(_UNPACK4[n](raw, 0) if n < 256 else struct.unpack(f"!{n}I", raw))
        return tuple(zip(vals, vals, vals, strict=True))

    def key(self) -> tuple:
        """Every field, in order (AS_PATH and COMMUNITIES packed): equal keys mean equal sets."""
        return (
            self.origin,
            self.as_path_packed,
            self.next_hop,
            self.med,
            self.local_pref,
            self.communities_packed,
            self.large_communities_packed,
        ) + self._rest

    def fields(self) -> tuple:
        """Every field, in the order of ``_FIELDS``, in its readers' form (tuples, not bytes)."""
        return tuple(getattr(self, name) for name in self._FIELDS)

    def __eq__(self, other: object) -> bool:
        if self is other:
            return True
        if not isinstance(other, PathAttributes):
            return NotImplemented
        return self.key() == other.key()

    def __hash__(self) -> int:
        # The fields that tell paths apart in practice, not all fifteen:
        # interning hashes every new attribute set once, and equal sets
        # still have equal hashes (__eq__ compares every field).
        h = self._hash
        if h < 0:
            h = self._hash = hash((
                self.as_path_packed, self.communities_packed, self.next_hop, self.med,
                self.local_pref, self.large_communities_packed,
            )) & _HASH_MASK
        return h

    def __repr__(self) -> str:
        parts = []
        defaults = _DEFAULTS
        for name, value in zip(self._FIELDS, self.fields(), strict=True):
            if value != defaults[name]:
                parts.append(f"{name}={value!r}")
        return f"PathAttributes({', '.join(parts)})"

    def __reduce__(self) -> tuple:
        return (PathAttributes, self.key())

    def replace(self, **changes: object) -> PathAttributes:
        """A copy with some fields changed (the policy and export code use this)."""
        values = dict(zip(self._FIELDS, self.key(), strict=True))
        for name in changes:
            if name not in values:
                raise TypeError(f"unknown path attribute field {name!r}")
        values.update(changes)
        return PathAttributes(**values)  # type: ignore[arg-type]

    # -- derived values used by the decision process -------------------------

    @property
    def as_path_length(self) -> int:
        """RFC 4271 9.1.2.2 a): an AS_SET counts 1, confederation segments 0."""
        raw = self.as_path_packed
        end = len(raw)
        if end == 0:
            return 0
        count = raw[1]
        if raw[0] == 2 and end == 2 + 4 * count:
            return count  # one AS_SEQUENCE: the common case
        n = 0
        i = 0
        while i < end:
            seg_type = raw[i]
            count = raw[i + 1]
            if seg_type == 2:
                n += count
            elif seg_type == 1:
                n += 1
            i += 2 + 4 * count
        return n

    @property
    def neighbor_as(self) -> int | None:
        """The leftmost AS of the first AS_SEQUENCE (RFC 4271 9.1.2.2 c), or None."""
        raw = self.as_path_packed
        end = len(raw)
        i = 0
        while i < end:
            seg_type = raw[i]
            if seg_type == 2:
                return _U32_AT(raw, i + 2)[0]
            if seg_type == 3 or seg_type == 4:  # AS_CONFED_SEQUENCE / AS_CONFED_SET
                i += 2 + 4 * raw[i + 1]
                continue
            return None
        return None

    @property
    def origin_as(self) -> int | None:
        """The rightmost AS of the path when it is a sequence member (RFC 6811)."""
        raw = self.as_path_packed
        end = len(raw)
        i = 0
        last = -1
        while i < end:
            last = i
            i += 2 + 4 * raw[i + 1]
        if last < 0 or raw[last] != 2:
            return None
        return _U32_AT(raw, end - 4)[0]

    @property
    def first_as(self) -> int | None:
        """The first ASN of the path when its first segment is an AS_SEQUENCE (RFC 4271 6.3), or None."""
        raw = self.as_path_packed
        if raw and raw[0] == 2:
            return _U32_AT(raw, 2)[0]
        return None

    def count_asn(self, asn: int) -> int:
        """How many times ``asn`` appears in the path, in any segment (loop detection, RFC 4271 9.1.2)."""
        raw = self.as_path_packed
        # raw.find, not ``in``: bytes.__contains__ first tries its operand as
        # an integer and raises (then clears) a TypeError for every bytes one.
        if asn < 0 or asn > 0xFFFFFFFF or raw.find(_U32.pack(asn)) < 0:
            return 0  # the usual answer, found by one byte search
        n = 0
        for _seg_type, asns in _decode_as_path(raw):
            n += asns.count(asn)
        return n

    def all_asns(self) -> Iterable[int]:
        for _, asns in self.as_path:
            yield from asns

    def has_community(self, community: int) -> bool:
        """Whether COMMUNITIES holds ``community`` (RFC 1997), without decoding them all."""
        raw = self.communities_packed
        if not raw or community < 0 or community > 0xFFFFFFFF:
            return False
        needle = _U32.pack(community)
        i = raw.find(needle)
        while i >= 0:
            if not i & 3:
                return True
            i = raw.find(needle, i + 1)
        return False

    # -- encoding ----------------------------------------------------------

    def pack(self, as4: bool = True, with_next_hop: bool = True) -> bytes:
        """Encode every attribute except MP_REACH/MP_UNREACH, in type order.

        ``as4`` False encodes for a 2-octet-AS peer (RFC 6793 4.2.2: AS_TRANS in
        AS_PATH and AGGREGATOR, the real values in AS4_PATH / AS4_AGGREGATOR).
        ``with_next_hop`` False leaves NEXT_HOP out (MP_REACH carries it).
        The result is cached on the object: many peers share one encoding.
        """
        slot = (2 if as4 else 0) + (1 if with_next_hop else 0)
        packed = self._packed
        if packed is None:
            packed = [None, None, None, None]
            self._packed = packed
        data = packed[slot]
        if data is None:
            data = _pack_attributes(self, as4, with_next_hop)
            packed[slot] = data
        return data

    def pack_uncached(self, as4: bool = True, with_next_hop: bool = True) -> bytes:
        """:meth:`pack` without keeping the result on the object.

        For one-off encodings of many shared sets (an MRT dump of a full
        table), which would otherwise leave a cached copy on every set.
        """
        return _pack_attributes(self, as4, with_next_hop)


#: ``_rest`` of a set with none of its fields (ext_communities ... unknown).
_NO_REST: Final[tuple] = ((), False, None, None, (), None, None, ())
# Shared ``_rest`` tuples by value; cleared when full (sharing is an
# economy, not a promise: equal sets still compare equal field by field).
_RESTS: Final[dict[tuple, tuple]] = {}
_RESTS_MAX: Final = 4096
_HASH_MASK: Final = (1 << 62) - 1


def shared_value(table: dict, value: Any, limit: int) -> Any:
    """The object equal to ``value`` kept in ``table`` (``value`` itself the first time).

    For values a full table repeats on its sets: one object each instead of
    one per set.  ``table`` starts over when it holds ``limit`` values.
    """
    shared = table.get(value)
    if shared is None:
        if len(table) >= limit:
            table.clear()
        table[value] = value
        return value
    return shared


def _rest_of(rest: tuple) -> tuple:
    """The shared tuple equal to ``rest`` (``rest`` itself the first time)."""
    try:
        return shared_value(_RESTS, rest, _RESTS_MAX)
    except TypeError:  # an unhashable value (a list given for a tuple): not shared
        return rest


def _decode_as_path(raw: bytes) -> AsPath:
    """Segments of a packed (4-octet-AS, well-formed) AS_PATH."""
    end = len(raw)
    if end == 0:
        return ()
    count = raw[1]
    if end == 2 + 4 * count:
        return ((raw[0], _UNPACK4[count](raw, 2)),)
    segs = []
    i = 0
    while i < end:
        count = raw[i + 1]
        segs.append((raw[i], _UNPACK4[count](raw, i + 2)))
        i += 2 + 4 * count
    return tuple(segs)


def prepend_as_path(packed: bytes, asn: int, count: int = 1) -> bytes:
    """``packed`` (a packed AS_PATH) with ``asn`` put in front ``count`` times.

    As RFC 4271 5.1.2 prepends: into the leading AS_SEQUENCE while it has
    room (255 ASNs), else in a new AS_SEQUENCE before it.
    """
    head = _U32.pack(asn)
    out = packed
    for _ in range(count):
        if out and out[0] == 2 and out[1] < 255:
            out = bytes((2, out[1] + 1)) + head + out[2:]
        else:
            out = b"\x02\x01" + head + out
    return out


def pack_communities(communities: tuple[int, ...] | list[int]) -> bytes:
    """COMMUNITIES values (RFC 1997) as the attribute's value: 4 octets each."""
    n = len(communities)
    if n < 256:
        return _PACK4[n](*communities)
    return struct.pack(f"!{n}I", *communities)


_DEFAULTS = dict(zip(PathAttributes._FIELDS, PathAttributes().fields(), strict=True))


def _attr(flags: int, code: int, value: bytes) -> bytes:
    n = len(value)
    if n > 255:
        return struct.pack("!BBH", flags | 0x10, code, n) + value
    return bytes((flags & ~0x10 & 0xFF, code, n)) + value


def pack_as_path(as_path: AsPath, four: bool = True) -> bytes:
    """Encode AS_PATH segments with 4- or 2-octet ASNs (AS_TRANS for large ones)."""
    if four and len(as_path) == 1:
        # The common case: one AS_SEQUENCE of fewer than 256 ASNs.
        seg_type, asns = as_path[0]
        n = len(asns)
        if 0 < n < 256:
            return bytes((seg_type, n)) + _PACK4[n](*asns)
    out = []
    for seg_type, asns in as_path:
        # A segment holds at most 255 ASNs: split longer ones.  An empty one
        # (policy may strip every ASN of a segment) is left out: a zero-length
        # segment is a malformed AS_PATH (RFC 7606 7.2).
        for i in range(0, len(asns), 255):
            chunk = asns[i : i + 255]
            if four:
                out.append(bytes((seg_type, len(chunk))) + _PACK4[len(chunk)](*chunk))
            else:
                small = [a if a <= 0xFFFF else AS_TRANS for a in chunk]
                out.append(bytes((seg_type, len(chunk))) + _PACK2[len(chunk)](*small))
    return b"".join(out)


# Encoders for the common shapes, header included, so that one attribute is
# one struct call: (flags, type, length, value...).  A 1-octet length holds
# up to 63 four-octet values.
_ORIGIN_ATTR: Final = {o: bytes((_WELL_KNOWN, AttrType.ORIGIN, 1, o)) for o in range(3)}
_NEXT_HOP_HEAD: Final = bytes((_WELL_KNOWN, AttrType.NEXT_HOP, 4))
_ATOMIC_ATTR: Final = bytes((_WELL_KNOWN, AttrType.ATOMIC_AGGREGATE, 0))
_PACK_U32_ATTR: Final = struct.Struct("!BBBI").pack
_AS_PATH_CODE: Final = int(AttrType.AS_PATH)
_MED_CODE: Final = int(AttrType.MULTI_EXIT_DISC)
_LOCAL_PREF_CODE: Final = int(AttrType.LOCAL_PREF)
_COMMUNITIES_CODE: Final = int(AttrType.COMMUNITIES)
_LARGE_CODE: Final = int(AttrType.LARGE_COMMUNITIES)
_OTC_CODE: Final = int(AttrType.OTC)


def _pack_attributes(a: PathAttributes, as4: bool, with_next_hop: bool) -> bytes:
    origin = _ORIGIN_ATTR.get(a.origin)
    if origin is None:
        origin = bytes((_WELL_KNOWN, AttrType.ORIGIN, 1, a.origin))
    raw_path = a.as_path_packed
    need_as4 = False
    if as4:
        n = len(raw_path)
        if n < 256:
            out = [origin, bytes((_WELL_KNOWN, _AS_PATH_CODE, n)) + raw_path]
        else:
            out = [origin, _attr(_WELL_KNOWN, _AS_PATH_CODE, raw_path)]
    else:
        as_path = _decode_as_path(raw_path)
        out = [origin, _attr(_WELL_KNOWN, _AS_PATH_CODE, pack_as_path(as_path, False))]
        need_as4 = any(asn > 0xFFFF for _, asns in as_path for asn in asns)
    nh = a.next_hop
    if with_next_hop and nh is not None and ":" not in nh:
        out.append(_NEXT_HOP_HEAD + _aton(nh))
    if a.med is not None:
        out.append(_PACK_U32_ATTR(_OPT_NON_TRANS, _MED_CODE, 4, a.med))
    if a.local_pref is not None:
        out.append(_PACK_U32_ATTR(_WELL_KNOWN, _LOCAL_PREF_CODE, 4, a.local_pref))
    if a.atomic_aggregate:
        out.append(_ATOMIC_ATTR)
    agg_as4 = None
    if a.aggregator is not None:
        asn, ip = a.aggregator
        if as4:
            value = _U32.pack(asn) + _aton(ip)
        else:
            value = _U16.pack(asn if asn <= 0xFFFF else AS_TRANS) + _aton(ip)
            if asn > 0xFFFF:
                agg_as4 = _U32.pack(asn) + _aton(ip)
        out.append(_attr(_OPT_TRANS, AttrType.AGGREGATOR, value))
    comms = a.communities_packed
    if comms:
        out.append(_attr(_OPT_TRANS, _COMMUNITIES_CODE, comms))
    if a.originator_id is not None:
        out.append(bytes((_OPT_NON_TRANS, AttrType.ORIGINATOR_ID, 4)) + _aton(a.originator_id))
    if a.cluster_list:
        value = b"".join(_aton(c) for c in a.cluster_list)
        out.append(_attr(_OPT_NON_TRANS, AttrType.CLUSTER_LIST, value))
    if a.ext_communities:
        out.append(_attr(_OPT_TRANS, AttrType.EXTENDED_COMMUNITIES, b"".join(a.ext_communities)))
    if need_as4:
        # RFC 6793 4.2.2: AS4_PATH carries no confederation segments.
        path4 = tuple(
            s for s in a.as_path
            if s[0] == SegmentType.AS_SEQUENCE or s[0] == SegmentType.AS_SET
        )
        out.append(_attr(_OPT_TRANS, AttrType.AS4_PATH, pack_as_path(path4, True)))
    if agg_as4 is not None:
        out.append(_attr(_OPT_TRANS, AttrType.AS4_AGGREGATOR, agg_as4))
    large = a.large_communities_packed
    if large:
        out.append(_attr(_OPT_TRANS, _LARGE_CODE, large))
    if a.otc is not None:
        out.append(_PACK_U32_ATTR(_OPT_TRANS, _OTC_CODE, 4, a.otc))
    for flags, code, value in a.unknown:
        out.append(_attr(flags, code, value))
    return b"".join(out)


class AttributeCache:
    """Interns decoded attribute sets by their raw bytes, for a while.

    One table per decoding context (4-octet AS or not, iBGP or eBGP...),
    because the same bytes decode differently across them.  A hit skips the
    whole attribute parse and shares the object: that is what a peer
    re-announcing or flapping its routes sends.  The table is bounded
    (``max_entries`` per context): during a full-table load nearly every
    UPDATE carries new attributes, and keeping every raw key would cost more
    memory than the RIB's own per-peer interning (by value) saves.  When a
    table is full, entries nothing else refers to are swept; if it is still
    mostly full it starts over.  Plain dicts: a weak-value dict costs more per
    UPDATE than the whole attribute parse.
    """

    __slots__ = ("tables", "hits", "misses", "max_entries")

    def __init__(self, max_entries: int = 65536) -> None:
        self.tables: dict[tuple, dict] = {}
        self.max_entries = max_entries
        self.hits = 0
        self.misses = 0

    def table(self, context: tuple) -> dict:
        t = self.tables.get(context)
        if t is None:
            t = self.tables[context] = {}
        return t

    def store(self, table: dict, key: object, value: PathAttributes) -> None:
        table[key] = value
        if len(table) >= self.max_entries:
            self.sweep(table)
            if len(table) >= self.max_entries // 2:
                table.clear()

    def sweep(self, table: dict | None = None) -> int:
        """Drop entries only the cache holds; return how many were dropped."""
        dropped = 0
        getrefcount = sys.getrefcount
        for t in [table] if table is not None else list(self.tables.values()):
            # References: the dict and getrefcount's argument.  (Iterating
            # over items() would not do: the iterator keeps its last tuple.)
            dead = [k for k in t if getrefcount(t[k]) <= 2]
            for k in dead:
                del t[k]
            dropped += len(dead)
        return dropped

    def __len__(self) -> int:
        return sum(len(t) for t in self.tables.values())


class _Malformed(Exception):
    """Internal: one attribute is malformed; carries its RFC 7606 outcome."""

    def __init__(self, outcome: Outcome, subcode: int, reason: str) -> None:
        self.outcome = outcome
        self.subcode = subcode
        self.reason = reason


def parse_as_path(value: bytes, four: bool) -> AsPath:
    """Decode AS_PATH / AS4_PATH segments (RFC 4271 4.3, RFC 5065, RFC 7606 7.2)."""
    n = len(value)
    width = 4 if four else 2
    check_as_path(value, 0, n, width)
    unpack = _UNPACK4 if four else _UNPACK2
    segs = []
    i = 0
    while i < n:
        count = value[i + 1]
        segs.append((value[i], unpack[count](value, i + 2)))
        i += 2 + count * width
    return tuple(segs)


def check_as_path(data: bytes, start: int, end: int, width: int = 4) -> bool:
    """Check the AS_PATH in ``data[start:end]`` (``width``-octet ASNs), building nothing.

    Raises the RFC 7606 7.2 outcome for a malformed one (what
    :func:`parse_as_path` raises, which checks with this first); True if it
    has confederation segments (RFC 5065).
    """
    i = start
    confed = False
    while i < end:
        if i + 2 > end:
            raise _Malformed(Outcome.TREAT_AS_WITHDRAW, UpdateError.MALFORMED_AS_PATH,
                             "AS_PATH segment header truncated")
        seg_type = data[i]
        count = data[i + 1]
        if seg_type < 1 or seg_type > 4:
            raise _Malformed(Outcome.TREAT_AS_WITHDRAW, UpdateError.MALFORMED_AS_PATH,
                             f"AS_PATH segment type {seg_type}")
        if count == 0:
            raise _Malformed(Outcome.TREAT_AS_WITHDRAW, UpdateError.MALFORMED_AS_PATH,
                             "AS_PATH segment of length 0")
        i += 2 + count * width
        if i > end:
            raise _Malformed(Outcome.TREAT_AS_WITHDRAW, UpdateError.MALFORMED_AS_PATH,
                             "AS_PATH segment overruns the attribute")
        if seg_type >= 3:
            confed = True
    return confed


def merge_as4_path(as_path: AsPath, as4_path: AsPath) -> AsPath:
    """RFC 6793 4.2.3: rebuild the real path from AS_PATH and AS4_PATH."""

    def count(path: AsPath) -> int:
        n = 0
        for seg_type, asns in path:
            if seg_type == SegmentType.AS_SEQUENCE:
                n += len(asns)
            elif seg_type == SegmentType.AS_SET:
                n += 1
        return n

    as4_path = tuple(
        s for s in as4_path if s[0] in (SegmentType.AS_SEQUENCE, SegmentType.AS_SET)
    )
    n2 = count(as_path)
    n4 = count(as4_path)
    if n2 < n4:
        return as_path  # AS4_PATH is the longer one: ignore it
    keep = n2 - n4
    head = []
    for seg_type, asns in as_path:
        if keep <= 0 and seg_type in (SegmentType.AS_SEQUENCE, SegmentType.AS_SET):
            break
        if seg_type == SegmentType.AS_SEQUENCE:
            take = asns[:keep]
            keep -= len(take)
            if take:
                head.append((seg_type, take))
            if len(take) < len(asns):
                break
        elif seg_type == SegmentType.AS_SET:
            head.append((seg_type, asns))
            keep -= 1
        else:
            head.append((seg_type, asns))
    # Join a trailing sequence of the head with a leading sequence of AS4_PATH.
    if (
        head and as4_path and head[-1][0] == SegmentType.AS_SEQUENCE
        and as4_path[0][0] == SegmentType.AS_SEQUENCE
        and len(head[-1][1]) + len(as4_path[0][1]) <= 255
    ):
        first = (SegmentType.AS_SEQUENCE, head[-1][1] + as4_path[0][1])
        return tuple(head[:-1]) + (first,) + as4_path[1:]
    return tuple(head) + as4_path


__all__ = [
    "AsPath",
    "AttributeCache",
    "EXPECTED_FLAGS",
    "NotificationError",
    "PathAttributes",
    "Problem",
    "check_as_path",
    "merge_as4_path",
    "pack_as_path",
    "pack_communities",
    "parse_as_path",
    "prepend_as_path",
]
