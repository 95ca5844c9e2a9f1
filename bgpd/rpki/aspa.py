"""ASPA AS_PATH verification (draft-ietf-sidrops-aspa-verification-24; records of draft-ietf-sidrops-8210bis).

The ASPA table maps a customer AS to the set of its provider ASes (from the
RTR client, through the :class:`~bgpd.rpki.records.RpkiSink` calls the VRP
table forwards).  Verification, the draft's section 5:

- 5.1: the AS_PATH is compressed (consecutive duplicate ASes, prepends,
  become one) into AS(N) .. AS(1), AS(1) the origin, AS(N) the neighbor;
- 5.2: the hop check ``hop(a, b)`` (the draft's ``authorized(a, b)``): *No
  Attestation* when ``a`` has no ASPA, *Provider+* when ``b`` is in the
  union of ``a``'s provider sets, else *Not Provider+*;
- 5.3: ``max_up_ramp`` / ``max_down_ramp`` end at the first Not Provider+
  hop, ``min_up_ramp`` / ``min_down_ramp`` at the first hop that is not
  Provider+ (:func:`ramps`);
- 5.4 *upstream* (a route from a customer, lateral peer, RS client or route
  server) and 5.5 *downstream* (from a provider): an empty path, one whose
  most recent AS is not the neighbor (not checked for a route server,
  which does not add its AS), or one with an AS_SET is Invalid; then
  Invalid when ``max_up + max_down < N``, Unknown when ``min_up + min_down
  < N``, else Valid (upstream takes both down ramps as 0).

States are :class:`~bgpd.rpki.records.Validity` (VALID, INVALID, NOT_FOUND
for the draft's Unknown).  Which procedure applies comes from the peer's
RFC 9234 role (:func:`direction_for_role`, the draft's section 6.3).
"""

from __future__ import annotations

import enum
from collections.abc import Callable, Iterable, Sequence

from bgpd.rpki.records import Aspa, Validity
from bgpd.wire.constants import Role

__all__ = ["AspaTable", "Hop", "collapse", "direction_for_role", "ramps", "verify"]

_AS_SET = 1
_AS_SEQUENCE = 2
_CONFED = (3, 4)


class Hop(enum.IntEnum):
    """The hop check's answers (the draft's section 5.2)."""

    NO_ATTESTATION = 0
    PROVIDER_PLUS = 1
    NOT_PROVIDER_PLUS = 2


UPSTREAM = "upstream"
DOWNSTREAM = "downstream"


def direction_for_role(role: int | None) -> str | None:
    """Which procedure a route from a peer with this RFC 9234 role gets (None: no role, not verified).

    From a customer, RS client, lateral peer or route server: upstream; from a
    provider: downstream.
    """
    if role is None:
        return None
    if role == Role.PROVIDER:
        return DOWNSTREAM
    return UPSTREAM


def collapse(as_path: Iterable[tuple[int, tuple[int, ...]]]) -> tuple[int, ...] | None:
    """The path as ASes from the neighbor to the origin with prepends collapsed; None if it has an AS_SET.

    Confederation segments are left out (they are not part of the path the
    draft verifies, RFC 5065 section 5.3).
    """
    out: list[int] = []
    for seg_type, asns in as_path:
        if seg_type == _AS_SET:
            return None
        if seg_type in _CONFED:
            continue
        for a in asns:
            if not out or out[-1] != a:
                out.append(a)
    return tuple(out)


class AspaTable:
    """customer AS -> provider ASes, per cache, applied at End of Data like the VRP table.

    An :class:`~bgpd.rpki.records.RpkiSink` for ASPA records; the VRP table
    forwards the sink calls here.  Subscribers get the set of customer ASes
    whose record changed, once per applied transaction.
    """

    def __init__(self) -> None:
        self._caches: dict[str, dict[int, frozenset[int]]] = {}
        self._pending: dict[str, tuple[bool, dict[int, frozenset[int] | None]]] = {}
        self._merged: dict[int, frozenset[int]] = {}
        self._subscribers: list[Callable[[set[int]], None]] = []

    # -- RpkiSink (ASPA part) ----------------------------------------------------

    def begin(self, cache: str, reset: bool) -> None:
        self._pending[cache] = (reset, {})

    def vrps(self, cache: str, announced: Sequence, withdrawn: Sequence) -> None:
        """VRPs are the VRP table's."""

    def aspas(self, cache: str, announced: Sequence[Aspa], withdrawn: Sequence[int]) -> None:
        pend = self._pending.get(cache)
        if pend is None:
            return
        for customer in withdrawn:
            pend[1][customer] = None
        for a in announced:
            pend[1][a.customer_as] = frozenset(a.providers)

    def end(self, cache: str, serial: int) -> None:
        pend = self._pending.pop(cache, None)
        if pend is None:
            return
        reset, records = pend
        mine = {} if reset else dict(self._caches.get(cache, {}))
        for customer, providers in records.items():
            if providers is None:
                mine.pop(customer, None)
            else:
                mine[customer] = providers
        self._caches[cache] = mine
        self._remerge()

    def abort(self, cache: str) -> None:
        self._pending.pop(cache, None)

    def drop(self, cache: str) -> None:
        self._pending.pop(cache, None)
        if self._caches.pop(cache, None) is not None:
            self._remerge()

    def _remerge(self) -> None:
        merged: dict[int, frozenset[int]] = {}
        for records in self._caches.values():
            for customer, providers in records.items():
                have = merged.get(customer)
                merged[customer] = providers if have is None else have | providers
        old = self._merged
        self._merged = merged
        changed = {c for c in old.keys() | merged.keys() if old.get(c) != merged.get(c)}
        if changed:
            for cb in list(self._subscribers):
                cb(changed)

    def set(self, records: dict[int, Iterable[int]]) -> None:
        """Replace all data with ``records`` (tests, the bench): one cache named ``""``."""
        self._caches = {"": {c: frozenset(p) for c, p in records.items()}}
        self._remerge()

    def subscribe(self, callback: Callable[[set[int]], None]) -> Callable[[], None]:
        """Call ``callback(customer ASes changed)`` per applied transaction that changed something."""
        self._subscribers.append(callback)

        def unsubscribe() -> None:
            if callback in self._subscribers:
                self._subscribers.remove(callback)

        return unsubscribe

    # -- verification ----------------------------------------------------------------

    def providers(self, customer: int) -> frozenset[int] | None:
        """The provider set of ``customer``, or None when it has no ASPA."""
        return self._merged.get(customer)

    def __len__(self) -> int:
        return len(self._merged)

    def hop(self, a: int, b: int) -> Hop:
        """Is ``b`` a provider (or route server) of ``a`` by ``a``'s ASPA? (the draft's hop check)."""
        providers = self._merged.get(a)
        if providers is None:
            return Hop.NO_ATTESTATION
        return Hop.PROVIDER_PLUS if b in providers else Hop.NOT_PROVIDER_PLUS

    def verify(
        self, as_path: Iterable[tuple[int, tuple[int, ...]]], direction: str, neighbor_as: int | None = None,
    ) -> Validity:
        """Verify ``as_path`` as received (neighbor first) by the ``direction`` procedure."""
        return verify(self.hop, as_path, direction, neighbor_as)


def verify(
    hop: Callable[[int, int], Hop], as_path: Iterable[tuple[int, tuple[int, ...]]], direction: str,
    neighbor_as: int | None = None,
) -> Validity:
    """The draft's upstream / downstream procedures over ``hop``.

    ``neighbor_as``, when given, must be the most recently added AS (a route
    server, which does not add its AS, is checked without it).
    """
    path = collapse(as_path)
    if path is None:
        return Validity.INVALID
    # Sections 5.4 and 5.5 step 1: an empty AS_PATH is Invalid (a route
    # server's own route, or a path of confederation segments only, would
    # otherwise pass as Valid with no hop checked).
    if not path:
        return Validity.INVALID
    if neighbor_as is not None and path[0] != neighbor_as:
        return Validity.INVALID
    # AS(1) is the origin: number from the origin up, as the draft does.
    ases = path[::-1]
    n = len(ases)
    max_up, min_up, max_down, min_down = ramps(hop, ases, direction == DOWNSTREAM)
    if max_up + max_down < n:
        return Validity.INVALID
    if min_up + min_down < n:
        return Validity.NOT_FOUND
    return Validity.VALID


def ramps(
    hop: Callable[[int, int], Hop], ases: Sequence[int], down: bool = True,
) -> tuple[int, int, int, int]:
    """(max_up_ramp, min_up_ramp, max_down_ramp, min_down_ramp) of ``ases`` (origin first), section 5.3.

    max_up_ramp is the least I with hop(AS(I), AS(I+1)) Not Provider+ (N if
    none), min_up_ramp the least I with it not Provider+; max_down_ramp is
    N - J + 1 for the greatest J with hop(AS(J), AS(J-1)) Not Provider+ (N
    if none), min_down_ramp likewise for not Provider+.  Without ``down``
    (the upstream procedure, section 5.4) both down ramps are 0.
    """
    n = len(ases)
    max_up = min_up = n
    for i in range(n - 1):  # I = i + 1
        h = hop(ases[i], ases[i + 1])
        if h != Hop.PROVIDER_PLUS and min_up == n:
            min_up = i + 1
        if h == Hop.NOT_PROVIDER_PLUS:
            max_up = i + 1
            break
    if not down:
        return max_up, min_up, 0, 0
    max_down = min_down = n
    for j in range(n - 1, 0, -1):  # J = j + 1, from N down to 2
        h = hop(ases[j], ases[j - 1])
        if h != Hop.PROVIDER_PLUS and min_down == n:
            min_down = n - j
        if h == Hop.NOT_PROVIDER_PLUS:
            max_down = n - j
            break
    return max_up, min_up, max_down, min_down
