"""The VRP table and route origin validation (RFC 6811 section 2, RFC 6483 section 4, RFC 8210 section 5).

:class:`VrpTable` is an :class:`~bgpd.rpki.records.RpkiSink`: the RTR client
hands it one transaction per Cache Response, applied at End of Data
(incremental by serial; a reset replaces that cache's data).  Validation of a
route (prefix, origin AS), RFC 6811 section 2:

- *Valid*: some VRP covers the prefix, has the route's origin AS and a max
  length not below the prefix length;
- *Invalid*: some VRP covers the prefix but none matches;
- *NotFound*: no VRP covers the prefix.

The origin is the last AS of the AS_PATH; a path that ends in an AS_SET has
none (origin NONE, RFC 6811 section 2; RFC 6907 section 7.1.8), so it is
Invalid when covered and NotFound otherwise.  A VRP for AS 0 (RFC 6483
section 4, RFC 7607) says "no origin is authorised": it covers, never matches.

Local exceptions (SLURM, RFC 8416 section 3, :mod:`bgpd.rpki.slurm`) are
applied on top of the caches' data at lookup time: filters hide the cache
VRPs they match, assertions add VRPs.  So a SLURM reload re-applies without
a new fetch, and a new serial from the cache keeps the exceptions.

Memory: one :class:`~bgpd.wire.prefix_index.PrefixIndex` per (cache, AFI)
maps a VRP prefix to one packed int ``asn << 8 | max_length`` (the common
case, one VRP at a prefix) or a tuple of them; no object per VRP.  While two
caches hold data (a failover, until the old one is dropped) both indexes
are looked at.

After each applied transaction the subscribers get one batch: per AFI the
VRP prefixes whose VRPs changed (routes inside them may have a new state),
or ``None`` for "too many to list, look at everything".
"""

from __future__ import annotations

from collections.abc import Callable, Iterable, Iterator, Sequence

from twisted.logger import Logger

from bgpd.rpki.records import RpkiSink, Validity, Vrp
from bgpd.wire.nlri import prefix_contains
from bgpd.wire.prefix_index import PrefixIndex, key_int

__all__ = ["Changes", "VrpTable", "affected_by", "origin_of"]

log = Logger()

#: afi -> the VRP prefix keys whose VRPs changed, or None: every prefix of that AFI.
Changes = dict[int, "set[bytes] | None"]

#: Above this many changed VRP prefixes in one AFI a batch says "all": one scan
#: of the routes with a plain test is then cheaper than filtering by a set.
ALL_THRESHOLD = 50_000

_AS_SET = 1
_AS_SEQUENCE = 2


def origin_of(as_path: Iterable[tuple[int, tuple[int, ...]]]) -> int | None:
    """The origin AS of RFC 6811 section 2: the last AS of a final AS_SEQUENCE, else None (NONE)."""
    last = None
    for seg_type, asns in as_path:
        if asns:
            last = (seg_type, asns)
    if last is None or last[0] != _AS_SEQUENCE:
        return None
    return last[1][-1]


def _pack(vrp: Vrp) -> int:
    return vrp.asn << 8 | vrp.max_length


def _values(v: int | tuple[int, ...]) -> tuple[int, ...]:
    return (v,) if v.__class__ is int else v  # type: ignore[return-value]


def _add(index: PrefixIndex, key: bytes, packed: int) -> bool:
    cur = index.get(key)
    if cur is None:
        index[key] = packed
        return True
    vals = _values(cur)
    if packed in vals:
        return False
    index[key] = tuple(sorted((*vals, packed)))
    return True


def _remove(index: PrefixIndex, key: bytes, packed: int) -> bool:
    cur = index.get(key)
    if cur is None:
        return False
    vals = _values(cur)
    if packed not in vals:
        return False
    rest = tuple(v for v in vals if v != packed)
    if not rest:
        del index[key]
    else:
        index[key] = rest[0] if len(rest) == 1 else rest
    return True


def _net(announced: Iterable[tuple[int, bytes, int]],
         withdrawn: Iterable[tuple[int, bytes, int]]) -> Iterator[tuple[tuple[int, bytes, int], int]]:
    """Per VRP, announcements minus withdrawals: > 0 it ends held, < 0 not held, 0 as it was.

    The RTR client accepts a transaction's PDUs in order (an announcement
    only of a VRP not held, a withdrawal only of one held), so a VRP's PDUs
    alternate and the last one decides; which one is last is lost once
    they are split into the two lists, the count tells it.  A serial answer
    that spans several of the cache's serials may announce a VRP and then
    withdraw it (added at one, removed at the next): applying every
    withdrawal before every announcement kept such a VRP.
    """
    net: dict[tuple[int, bytes, int], int] = {}
    for item in announced:
        net[item] = net.get(item, 0) + 1
    for item in withdrawn:
        net[item] = net.get(item, 0) - 1
    return iter(net.items())


class _Pending:
    """One running transaction (begin .. end) of one cache."""

    __slots__ = ("reset", "fresh", "announced", "withdrawn")

    def __init__(self, reset: bool) -> None:
        self.reset = reset
        #: A reset builds the cache's new indexes directly (no list of 800,000 records).
        self.fresh: dict[int, PrefixIndex] | None = {1: PrefixIndex(), 2: PrefixIndex()} if reset else None
        self.announced: list[tuple[int, bytes, int]] = []
        self.withdrawn: list[tuple[int, bytes, int]] = []


class VrpTable:
    """VRPs per cache, merged with local exceptions; validation and covering lookups.

    Implements :class:`~bgpd.rpki.records.RpkiSink` for VRPs (``aspas`` goes
    to the ASPA table given as ``aspa_sink``, if any).
    """

    def __init__(self, aspa_sink: RpkiSink | None = None) -> None:
        #: cache -> afi -> index of that cache's VRPs
        self._caches: dict[str, dict[int, PrefixIndex]] = {}
        self._serials: dict[str, int] = {}
        self._pending: dict[str, _Pending] = {}
        self._aspa_sink = aspa_sink
        #: Local exceptions (RFC 8416): filter matchers per afi, assertions per afi.
        self._filters: dict[int, list[tuple[bytes | None, int | None]]] = {}
        self._asserted: dict[int, PrefixIndex] = {}
        self._subscribers: list[Callable[[Changes], None]] = []
        #: afi -> the indexes a lookup walks (rebuilt when caches come and go)
        self._walk: dict[int, tuple[PrefixIndex, ...]] = {1: (), 2: ()}

    # -- RpkiSink --------------------------------------------------------------

    def begin(self, cache: str, reset: bool) -> None:
        """A Cache Response starts (RFC 8210 section 5.5)."""
        self._pending[cache] = _Pending(reset)
        if self._aspa_sink is not None:
            self._aspa_sink.begin(cache, reset)

    def vrps(self, cache: str, announced: Sequence[Vrp], withdrawn: Sequence[Vrp]) -> None:
        """Prefix PDUs of the running transaction (RFC 8210 sections 5.6, 5.7)."""
        pend = self._pending.get(cache)
        if pend is None:
            log.warn("rpki: VRPs from cache {cache} outside a Cache Response, ignored", cache=cache)
            return
        if pend.fresh is not None:
            fresh = pend.fresh
            if not withdrawn:
                for v in announced:
                    _add(fresh[v.family[0]], v.prefix, _pack(v))
                return
            ann = [(v.family[0], v.prefix, _pack(v)) for v in announced]
            wd = [(v.family[0], v.prefix, _pack(v)) for v in withdrawn]
            for (afi, key, packed), n in _net(ann, wd):
                if n > 0:
                    _add(fresh[afi], key, packed)
                elif n < 0:
                    _remove(fresh[afi], key, packed)
            return
        pend.announced.extend((v.family[0], v.prefix, _pack(v)) for v in announced)
        pend.withdrawn.extend((v.family[0], v.prefix, _pack(v)) for v in withdrawn)

    def aspas(self, cache: str, announced: Sequence, withdrawn: Sequence[int]) -> None:
        """ASPA PDUs: handed to the ASPA table."""
        if self._aspa_sink is not None:
            self._aspa_sink.aspas(cache, announced, withdrawn)

    def end(self, cache: str, serial: int) -> None:
        """End of Data (RFC 8210 section 5.8): apply the transaction, tell the subscribers."""
        pend = self._pending.pop(cache, None)
        if self._aspa_sink is not None:
            self._aspa_sink.end(cache, serial)
        if pend is None:
            return
        self._serials[cache] = serial
        changes: dict[int, set[bytes] | None] = {1: set(), 2: set()}
        if pend.fresh is not None:
            old = self._caches.get(cache, {})
            for afi, new in pend.fresh.items():
                changes[afi] = self._changed(cache, afi, old.get(afi), new)
            self._caches[cache] = pend.fresh
        else:
            mine = self._caches.setdefault(cache, {1: PrefixIndex(), 2: PrefixIndex()})
            for (afi, key, packed), n in _net(pend.announced, pend.withdrawn):
                if n > 0:
                    changed = _add(mine[afi], key, packed)
                elif n < 0:
                    changed = _remove(mine[afi], key, packed)
                else:
                    continue
                if changed:
                    changes[afi].add(key)  # type: ignore[union-attr]
        self._rebuild_walk()
        self._notify(changes)

    def abort(self, cache: str) -> None:
        """The transaction broke off: the data before it stays."""
        self._pending.pop(cache, None)
        if self._aspa_sink is not None:
            self._aspa_sink.abort(cache)

    def drop(self, cache: str) -> None:
        """Forget ``cache``'s data (expired, RFC 8210 section 6): its routes fall back to NotFound."""
        self._pending.pop(cache, None)
        self._serials.pop(cache, None)
        if self._aspa_sink is not None:
            self._aspa_sink.drop(cache)
        old = self._caches.get(cache)
        if old is None:
            return
        changes = {afi: self._changed(cache, afi, index, None) for afi, index in old.items()}
        del self._caches[cache]
        self._rebuild_walk()
        self._notify(changes)

    def has_vrp(self, cache: str, vrp: Vrp) -> bool:
        """Whether ``cache``'s applied data holds ``vrp`` (the RTR client's section 5.6 checks)."""
        mine = self._caches.get(cache)
        index = mine.get(vrp.family[0]) if mine is not None else None
        if index is None:
            return False
        cur = index.get(vrp.prefix)
        return cur is not None and _pack(vrp) in _values(cur)

    def _changed(self, cache: str, afi: int, old: PrefixIndex | None,
                 new: PrefixIndex | None) -> set[bytes] | None:
        """The prefixes whose VRPs *in force* differ when ``cache``'s data goes from ``old`` to ``new``.

        Another cache holding the same VRPs (a failover: the new cache's
        reset, then the old one's drop) changes nothing in force, so neither
        step makes the RIB run its policies again.  None: too many to list.
        """
        others = [c[afi] for name, c in self._caches.items() if name != cache and afi in c and len(c[afi])]
        out: set[bytes] = set()
        for k in _diff(old, new):
            if others:
                before = set(_values(old.get(k) or ())) if old is not None else set()
                after = set(_values(new.get(k) or ())) if new is not None else set()
                held = set()
                for idx in others:
                    held.update(_values(idx.get(k) or ()))
                if before | held == after | held:
                    continue
            out.add(k)
            if len(out) > ALL_THRESHOLD:
                return None
        return out

    # -- local exceptions (SLURM) ------------------------------------------------

    def set_exceptions(self, filters: Iterable[tuple[int | None, bytes | None, int | None]],
                       assertions: Iterable[Vrp]) -> None:
        """Apply RFC 8416 prefix filters ``(afi, prefix or None, asn or None)`` and assertions.

        Replaces the exceptions in force.  A filter hides every cache VRP whose
        prefix lies inside its prefix (when given) and whose AS is its AS
        (when given); assertions are VRPs of their own, never filtered
        (RFC 8416 section 4.2).  Subscribers get the VRP prefixes involved.
        """
        new_filters: dict[int, list[tuple[bytes | None, int | None]]] = {}
        for afi, key, asn in filters:
            for a in (1, 2) if afi is None else (afi,):
                new_filters.setdefault(a, []).append((key, asn))
        new_asserted: dict[int, PrefixIndex] = {}
        for v in assertions:
            _add(new_asserted.setdefault(v.family[0], PrefixIndex()), v.prefix, _pack(v))
        changes: dict[int, set[bytes] | None] = {}
        for afi in (1, 2):
            touched: set[bytes] | None = set()
            for flt in (self._filters.get(afi, ()), new_filters.get(afi, ())):
                for key, asn in flt:
                    touched = _union(touched, self._filtered_prefixes(afi, key, asn))
            for idx in (self._asserted.get(afi), new_asserted.get(afi)):
                if idx is not None and touched is not None:
                    touched.update(k for k, _v in idx.items())
            if touched is not None and len(touched) > ALL_THRESHOLD:
                touched = None
            changes[afi] = touched
        self._filters = new_filters
        self._asserted = new_asserted
        self._rebuild_walk()
        self._notify(changes)

    def _filtered_prefixes(self, afi: int, key: bytes | None, asn: int | None) -> set[bytes] | None:
        """The cache VRP prefixes a filter can hide (None: too many to list)."""
        if key is not None:
            # Every route inside the filter's prefix can change state.
            return {key}
        out: set[bytes] = set()
        for index in self._cache_indexes(afi):
            for k, v in index.items():
                if any(x >> 8 == asn for x in _values(v)):
                    out.add(k)
                    if len(out) > ALL_THRESHOLD:
                        return None
        return out

    # -- subscribers ---------------------------------------------------------------

    def subscribe(self, callback: Callable[[Changes], None]) -> Callable[[], None]:
        """Call ``callback(changes)`` once per applied transaction that changed something."""
        self._subscribers.append(callback)

        def unsubscribe() -> None:
            if callback in self._subscribers:
                self._subscribers.remove(callback)

        return unsubscribe

    def _notify(self, changes: dict[int, set[bytes] | None]) -> None:
        batch: Changes = {}
        for afi, keys in changes.items():
            if keys is None:
                batch[afi] = None
            elif keys:
                batch[afi] = None if len(keys) > ALL_THRESHOLD else keys
        if not batch:
            return
        for cb in list(self._subscribers):
            cb(batch)

    # -- lookups -------------------------------------------------------------------

    def _cache_indexes(self, afi: int) -> list[PrefixIndex]:
        return [c[afi] for c in self._caches.values() if afi in c and len(c[afi])]

    def _rebuild_walk(self) -> None:
        for afi in (1, 2):
            walk = self._cache_indexes(afi)
            self._walk[afi] = tuple(walk)

    def _covering_packed(self, afi: int, prefix: bytes) -> list[tuple[bytes, int, bool]]:
        """(VRP prefix, packed, asserted) for every VRP in force covering ``prefix``."""
        out = []
        filters = self._filters.get(afi)
        for index in self._walk.get(afi, ()):
            for key, v in index.covering(prefix):
                for x in _values(v):
                    if filters and _hidden(filters, key, x >> 8):
                        continue
                    out.append((key, x, False))
        asserted = self._asserted.get(afi)
        if asserted is not None:
            for key, v in asserted.covering(prefix):
                out.extend((key, x, True) for x in _values(v))
        return out

    def validate(self, afi: int, prefix: bytes, origin_as: int | None) -> Validity:
        """RFC 6811 section 2 for a route ``prefix`` (wire key) with origin ``origin_as`` (None: NONE)."""
        plen = prefix[0]
        want = -1 if not origin_as else origin_as
        covered = False
        filters = self._filters.get(afi)
        if not filters:
            for index in self._walk[afi]:
                for v in index.covering_values(prefix):
                    covered = True
                    if v.__class__ is int:
                        if v >> 8 == want and v & 0xFF >= plen:
                            return Validity.VALID
                    else:
                        for x in v:
                            if x >> 8 == want and x & 0xFF >= plen:
                                return Validity.VALID
            asserted = self._asserted.get(afi)
            if asserted is not None:
                for v in asserted.covering_values(prefix):
                    covered = True
                    for x in _values(v):
                        if x >> 8 == want and x & 0xFF >= plen:
                            return Validity.VALID
            return Validity.INVALID if covered else Validity.NOT_FOUND
        for _key, x, _asserted in self._covering_packed(afi, prefix):
            covered = True
            if x >> 8 == want and x & 0xFF >= plen:
                return Validity.VALID
        return Validity.INVALID if covered else Validity.NOT_FOUND

    def covering(self, afi: int, prefix: bytes) -> list[Vrp]:
        """The VRPs in force whose prefix covers ``prefix`` (shortest first), for the query API."""
        return [v for v, _asserted in self.covering_sources(afi, prefix)]

    def covering_sources(self, afi: int, prefix: bytes) -> list[tuple[Vrp, bool]]:
        """:meth:`covering` with, for each VRP, whether a SLURM assertion (not a cache) gave it."""
        fam = (afi, 1)
        found: dict[tuple[bytes, int], bool] = {}
        for key, x, asserted in self._covering_packed(afi, prefix):
            found[(key, x)] = found.get((key, x), False) or asserted
        out = [(Vrp(fam, key, x & 0xFF, x >> 8), asserted) for (key, x), asserted in found.items()]
        out.sort(key=lambda va: (va[0].prefix[0], va[0].prefix, va[0].asn, va[0].max_length))
        return out

    def explain(
        self, afi: int, prefix: bytes, origin_as: int | None,
    ) -> tuple[Validity, list[Vrp], list[Vrp]]:
        """The state, the matching VRPs and all covering VRPs (the query API's answer)."""
        cover = self.covering(afi, prefix)
        plen = prefix[0]
        matching = [v for v in cover if origin_as and v.asn == origin_as and v.max_length >= plen]
        if matching:
            state = Validity.VALID
        elif cover:
            state = Validity.INVALID
        else:
            state = Validity.NOT_FOUND
        return state, matching, cover

    # -- introspection ---------------------------------------------------------------

    def counts(self) -> dict[int, int]:
        """VRPs in force per AFI (cache data, before filters, plus assertions)."""
        out = {}
        for afi in (1, 2):
            n = 0
            for index in [*self._walk[afi], *([self._asserted[afi]] if afi in self._asserted else [])]:
                n += sum(1 if v.__class__ is int else len(v) for _k, v in index.items())
            out[afi] = n
        return out

    def serial(self, cache: str) -> int | None:
        """The serial of ``cache``'s data, or None."""
        return self._serials.get(cache)

    def __len__(self) -> int:
        return sum(self.counts().values())


def _hidden(filters: list[tuple[bytes | None, int | None]], key: bytes, asn: int) -> bool:
    for fkey, fasn in filters:
        if fasn is not None and fasn != asn:
            continue
        if fkey is not None and not prefix_contains(fkey, key):
            continue
        return True
    return False


def _union(a: set[bytes] | None, b: set[bytes] | None) -> set[bytes] | None:
    if a is None or b is None:
        return None
    a.update(b)
    return a


def _diff(old: PrefixIndex | None, new: PrefixIndex | None) -> Iterator[bytes]:
    """The prefixes whose VRPs differ between two indexes of one AFI (None: empty)."""
    if old is not None:
        get_new = new.get if new is not None else _nothing
        for k, v in old.items():
            if get_new(k) != v:
                yield k
    if new is not None:
        get_old = old.get if old is not None else _nothing
        for k, _v in new.items():
            if get_old(k) is None:
                yield k


def _nothing(key: bytes) -> None:
    return None


def affected_by(keys: Iterable[bytes], afi: int) -> Callable[[Iterable[bytes]], list[bytes]]:
    """``select(route prefixes) -> those covered by some key in ``keys``` (the changed VRP prefixes).

    What revalidation goes through a whole table with, so it must be cheap
    for the many routes that are not affected: one comprehension keeps the
    routes whose first 16 bits (IPv4) or 32 bits (IPv6) -- fewer when a
    changed prefix is shorter -- are those of a changed prefix, and only
    they take the precise walk over an index of the changed prefixes.
    """
    index = PrefixIndex()
    for k in keys:
        index[k] = True
    if not len(index):
        return _none
    top = 16 if afi == 1 else 32
    # Expand every changed prefix shorter than ``top`` into the top-bit values
    # it spans, shrinking ``top`` while that would be too many.
    while top > 0:
        span = sum(1 << max(0, top - k[0]) for k, _v in index.items())
        if span <= 1 << 16:
            break
        top -= 8
    walk = index.covering_values
    if top == 0:
        return lambda prefixes: [p for p in prefixes if walk(p)]
    nbytes = top >> 3
    tops: set[bytes] = set()
    for k, _v in index.items():
        plen = k[0]
        n = key_int(k)
        if plen >= top:
            tops.add((n >> (plen - top)).to_bytes(nbytes, "big"))
        else:
            base = n << (top - plen)
            tops.update(x.to_bytes(nbytes, "big") for x in range(base, base + (1 << (top - plen))))
    end = 1 + nbytes

    def select(prefixes: Iterable[bytes]) -> list[bytes]:
        # A key's octets after the length are its top bits (host bits zero), so
        # a route of ``top`` bits or more is covered only if its first octets
        # are a changed prefix's; a shorter one (fewer octets) is walked.
        near = [p for p in prefixes if p[1:end] in tops or len(p) < end]
        return [p for p in near if walk(p)]

    return select


def _none(prefixes: Iterable[bytes]) -> list[bytes]:
    return []
