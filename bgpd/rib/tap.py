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
"""

from __future__ import annotations

from typing import Protocol, runtime_checkable

from bgpd.rib.route import PeerInfo
from bgpd.wire.attributes import PathAttributes

__all__ = ["AdjInTap"]


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
