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
from typing import ClassVar, Final

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
    __slots__ = _FIELDS + ("_hash", "_packed")

    def __init__(
        self,
        origin: int = Origin.IGP,
        as_path: AsPath = (),
        next_hop: str | None = None,
        med: int | None = None,
        local_pref: int | None = None,
        communities: tuple[int, ...] = (),
        large_communities: tuple[tuple[int, int, int], ...] = (),
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
        self.as_path = as_path
        self.next_hop = next_hop
        self.med = med
        self.local_pref = local_pref
        self.communities = communities
        self.large_communities = large_communities
        self.ext_communities = ext_communities
        self.atomic_aggregate = atomic_aggregate
        self.aggregator = aggregator
        self.originator_id = originator_id
        self.cluster_list = cluster_list
        self.otc = otc
        self.next_hop_ll = next_hop_ll
        self.unknown = unknown
        self._hash: int | None = None
        self._packed: list[bytes | None] | None = None


    def key(self) -> tuple:
        """Every field, in order: equal keys mean equal attribute sets."""
        return (
            self.origin,
            self.as_path,
            self.next_hop,
            self.med,
            self.local_pref,
            self.communities,
            self.large_communities,
            self.ext_communities,
            self.atomic_aggregate,
            self.aggregator,
            self.originator_id,
            self.cluster_list,
            self.otc,
            self.next_hop_ll,
            self.unknown,
        )

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
        if h is None:
            h = self._hash = hash((
                self.as_path, self.communities, self.next_hop, self.med, self.local_pref,
                self.large_communities,
            ))
        return h

    def __repr__(self) -> str:
        parts = []
        defaults = _DEFAULTS
        for name, value in zip(self._FIELDS, self.key(), strict=True):
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
        n = 0
        for seg_type, asns in self.as_path:
            if seg_type == SegmentType.AS_SEQUENCE:
                n += len(asns)
            elif seg_type == SegmentType.AS_SET:
                n += 1
        return n

    @property
    def neighbor_as(self) -> int | None:
        """The leftmost AS of the first AS_SEQUENCE (RFC 4271 9.1.2.2 c), or None."""
        for seg_type, asns in self.as_path:
            if seg_type == SegmentType.AS_SEQUENCE and asns:
                return asns[0]
            if seg_type in (SegmentType.AS_CONFED_SEQUENCE, SegmentType.AS_CONFED_SET):
                continue
            return None
        return None

    @property
    def origin_as(self) -> int | None:
        """The rightmost AS of the path when it is a sequence member (RFC 6811)."""
        if not self.as_path:
            return None
        seg_type, asns = self.as_path[-1]
        if seg_type == SegmentType.AS_SEQUENCE and asns:
            return asns[-1]
        return None

    def all_asns(self) -> Iterable[int]:
        for _, asns in self.as_path:
            yield from asns

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


_DEFAULTS = dict(zip(PathAttributes._FIELDS, PathAttributes().key(), strict=True))


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
# up to 63 four-octet values (an AS_PATH segment also has its 2-octet head).
_ORIGIN_ATTR: Final = {o: bytes((_WELL_KNOWN, AttrType.ORIGIN, 1, o)) for o in range(3)}
_NEXT_HOP_HEAD: Final = bytes((_WELL_KNOWN, AttrType.NEXT_HOP, 4))
_ATOMIC_ATTR: Final = bytes((_WELL_KNOWN, AttrType.ATOMIC_AGGREGATE, 0))
_PACK_U32_ATTR: Final = struct.Struct("!BBBI").pack
_PACK_ATTR4: Final = [struct.Struct(f"!BBB{n}I").pack for n in range(64)]
_PACK_SEG_ATTR: Final = [struct.Struct(f"!BBBBB{n}I").pack for n in range(64)]
_AS_PATH_CODE: Final = int(AttrType.AS_PATH)
_MED_CODE: Final = int(AttrType.MULTI_EXIT_DISC)
_LOCAL_PREF_CODE: Final = int(AttrType.LOCAL_PREF)
_COMMUNITIES_CODE: Final = int(AttrType.COMMUNITIES)
_LARGE_CODE: Final = int(AttrType.LARGE_COMMUNITIES)
_OTC_CODE: Final = int(AttrType.OTC)


def _u32_list_attr(code: int, values: tuple | list) -> bytes:
    """An optional transitive attribute holding 4-octet values (communities, large communities)."""
    n = len(values)
    if n < 64:  # header and values in one struct call
        return _PACK_ATTR4[n](_OPT_TRANS, code, 4 * n, *values)
    value = _PACK4[n](*values) if n < 256 else struct.pack(f"!{n}I", *values)
    return _attr(_OPT_TRANS, code, value)


def _pack_attributes(a: PathAttributes, as4: bool, with_next_hop: bool) -> bytes:
    origin = _ORIGIN_ATTR.get(a.origin)
    if origin is None:
        origin = bytes((_WELL_KNOWN, AttrType.ORIGIN, 1, a.origin))
    as_path = a.as_path
    if as4 and len(as_path) == 1 and 0 < len(as_path[0][1]) < 64:
        # The common case: one short segment, header and all in one pack.
        seg_type, asns = as_path[0]
        n = len(asns)
        out = [origin, _PACK_SEG_ATTR[n](_WELL_KNOWN, _AS_PATH_CODE, 2 + 4 * n, seg_type, n, *asns)]
    else:
        out = [origin, _attr(_WELL_KNOWN, _AS_PATH_CODE, pack_as_path(as_path, as4))]
    need_as4 = not as4 and any(asn > 0xFFFF for _, asns in as_path for asn in asns)
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
    if a.communities:
        out.append(_u32_list_attr(_COMMUNITIES_CODE, a.communities))
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
            if s[0] in (SegmentType.AS_SEQUENCE, SegmentType.AS_SET)
        )
        out.append(_attr(_OPT_TRANS, AttrType.AS4_PATH, pack_as_path(path4, True)))
    if agg_as4 is not None:
        out.append(_attr(_OPT_TRANS, AttrType.AS4_AGGREGATOR, agg_as4))
    if a.large_communities:
        out.append(_u32_list_attr(_LARGE_CODE, [x for lc in a.large_communities for x in lc]))
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
    segs = []
    i = 0
    n = len(value)
    width = 4 if four else 2
    unpack = _UNPACK4 if four else _UNPACK2
    while i < n:
        if i + 2 > n:
            raise _Malformed(Outcome.TREAT_AS_WITHDRAW, UpdateError.MALFORMED_AS_PATH,
                             "AS_PATH segment header truncated")
        seg_type = value[i]
        count = value[i + 1]
        if seg_type < 1 or seg_type > 4:
            raise _Malformed(Outcome.TREAT_AS_WITHDRAW, UpdateError.MALFORMED_AS_PATH,
                             f"AS_PATH segment type {seg_type}")
        if count == 0:
            raise _Malformed(Outcome.TREAT_AS_WITHDRAW, UpdateError.MALFORMED_AS_PATH,
                             "AS_PATH segment of length 0")
        end = i + 2 + count * width
        if end > n:
            raise _Malformed(Outcome.TREAT_AS_WITHDRAW, UpdateError.MALFORMED_AS_PATH,
                             "AS_PATH segment overruns the attribute")
        segs.append((seg_type, unpack[count](value, i + 2)))
        i = end
    return tuple(segs)


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
    "merge_as4_path",
    "pack_as_path",
    "parse_as_path",
]
