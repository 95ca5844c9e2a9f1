"""The Loc-RIB change record that subscribers get (RFC 4271 section 9.1.3 results).

Defined once, here: the kernel writer and the API's watchers import it.  A
record says what changed for one prefix after a batch of work: the best path
before and after, and the multipath set (``decision.multipath``, the ECMP
set the kernel installs) after.  A change of the multipath set with the same
best path is a change too.  Records come in lists, one list per reactor turn
and family.
"""

from __future__ import annotations

from typing import NamedTuple

from bgpd.rib.route import Path

__all__ = ["Change", "Family"]

Family = tuple[int, int]


class Change(NamedTuple):
    """One prefix's Loc-RIB change.

    ``old`` / ``new``: the eligible best path before and after (None: none).
    ``multipath``: the ECMP set after, best first; ``(new,)`` unless
    ``max_paths`` > 1, ``()`` when ``new`` is None.  A NamedTuple (not an
    attrs class): a full table makes a million of them, and a tuple is the
    cheapest record Python builds.
    """

    family: Family
    prefix: bytes
    old: Path | None
    new: Path | None
    multipath: tuple[Path, ...]
