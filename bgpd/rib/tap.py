"""What the RIB shows an observer of each peer's post-policy Adj-RIB-In (RFC 7854 2).

BMP's post-policy Route Monitoring (RFC 7854 section 4.6, L flag) reports
the routes of a peer as the import policy left them.  The RIB reports those
changes to one :class:`AdjInTap` (``Rib.set_adj_in_tap``), in the groups it
works in -- the prefixes of one UPDATE (or a chunk of them) that ended with
the same attributes -- so a full table costs one call per UPDATE, not one per
prefix.  With no tap set, an UPDATE costs one ``is None`` test.

The Loc-RIB has its own subscription (``Rib.subscribe``, change records in
:mod:`bgpd.rib.change`); what is sent to each peer is seen at the session
(:mod:`bgpd.session.tap`), where the update groups' UPDATEs leave.

Who reads the table itself (the API, BMP's initial dump and statistics, MRT)
gets it from ``Rib.adj_rib_in``: where the peer sends no ADD-PATH
identifiers the RIB keeps no table per peer, and that is an
:class:`AdjInView` of the Loc-RIB.
"""

from __future__ import annotations

from collections.abc import ItemsView, Iterator, Mapping, ValuesView
from typing import Any, Protocol, runtime_checkable

from bgpd.rib.route import Path, PeerInfo
from bgpd.wire.attributes import PathAttributes

__all__ = ["AdjInTap", "AdjInView"]


@runtime_checkable
class AdjInTap(Protocol):
    """Post-policy Adj-RIB-In changes, per peer."""

    def adj_in_changed(self, peer: PeerInfo, family: tuple[int, int],
                       attributes: PathAttributes | None, keys: list) -> None:
        """``keys`` of ``peer`` in ``family`` now carry ``attributes`` (None: withdrawn).

        ``keys`` are wire-form prefixes, or ``(path id, prefix)`` pairs in a
        family the peer sends ADD-PATH identifiers in (RFC 7911).  A
        withdrawal may name a prefix the table did not hold (the peer
        withdrew it twice, or the policy had rejected it).  The list is the
        RIB's: read it during the call, keep a copy.
        """


class AdjInView(Mapping[bytes, Path]):
    """One peer's post-policy Adj-RIB-In of one family, read from the Loc-RIB (no ADD-PATH).

    A peer that sends no path identifiers has one candidate per prefix at
    most, and every candidate it has is in the Loc-RIB entry (a
    :class:`Path`, or a tuple of them): prefix -> the candidate ``owner``
    (the RIB's state of the peer) holds there.  ``len()`` is the RIB's
    counter, a lookup one Loc-RIB probe; iterating walks the whole Loc-RIB
    of the family.  Live: it reads the RIB as it is at each call.
    """

    __slots__ = ("_tables", "_family", "_owner")

    def __init__(self, tables: dict[tuple[int, int], dict], family: tuple[int, int], owner: Any) -> None:
        #: family -> Loc-RIB (the RIB's own dict, which adds a family's on its first route)
        self._tables = tables
        self._family = family
        self._owner = owner

    def _own(self, entry: Any) -> Path | None:
        owner = self._owner
        if entry is None:
            return None
        if entry.__class__ is Path:
            return entry if entry.owner is owner else None
        for c in entry:
            if c.owner is owner:
                return c
        return None

    def __getitem__(self, prefix: bytes) -> Path:
        path = self._own(self._tables.get(self._family, {}).get(prefix))
        if path is None:
            raise KeyError(prefix)
        return path

    def __contains__(self, prefix: object) -> bool:
        return self._own(self._tables.get(self._family, {}).get(prefix)) is not None

    def __len__(self) -> int:
        return int(self._owner.accepted.get(self._family, 0))

    def __iter__(self) -> Iterator[bytes]:
        for p, _path in self._pairs():
            yield p

    def _pairs(self) -> Iterator[tuple[bytes, Path]]:
        own = self._own
        for p, entry in self._tables.get(self._family, {}).items():
            path = own(entry)
            if path is not None:
                yield p, path

    def items(self) -> ItemsView[bytes, Path]:
        """(prefix, path) pairs, one walk of the Loc-RIB (not one lookup per key)."""
        return _Items(self)

    def values(self) -> ValuesView[Path]:
        return _Values(self)

    def __repr__(self) -> str:
        return f"<AdjInView {self._owner!r} {self._family}: {len(self)} routes>"


class _Items(ItemsView):
    """What ``AdjInView.items()`` returns: iterating walks the Loc-RIB once."""

    def __iter__(self) -> Iterator[tuple[bytes, Path]]:
        return self._mapping._pairs()


class _Values(ValuesView):
    def __iter__(self) -> Iterator[Path]:
        for _p, path in self._mapping._pairs():
            yield path
