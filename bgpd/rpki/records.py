"""The records the RTR client hands to the tables (RFC 8210 sections 5.6, 5.7; 8210bis ASPA).

Defined once here, so the RTR client (``bgpd.rpki.rtr``) and the tables and
validation (``bgpd.rpki.table``, ``bgpd.rpki.aspa``) meet at one interface:
the client speaks to an :class:`RpkiSink`, never to the RIB.
"""

from __future__ import annotations

import enum
from collections.abc import Sequence
from typing import Protocol

import attrs

from bgpd.wire.negotiated import Family

__all__ = ["Aspa", "RpkiSink", "Validity", "Vrp"]


class Validity(enum.IntEnum):
    """Validation states (RFC 6811 section 2; the ASPA draft's Valid / Invalid / Unknown).

    The values are those of the RFC 8097 extended community (0 Valid,
    1 NotFound, 2 Invalid); ASPA's Unknown uses NOT_FOUND.
    """

    VALID = 0
    NOT_FOUND = 1
    INVALID = 2


@attrs.frozen(slots=True)
class Vrp:
    """One Validated ROA Payload: prefix (wire key of :mod:`bgpd.wire.nlri`), max length, origin AS."""

    family: Family
    prefix: bytes
    max_length: int
    asn: int


@attrs.frozen(slots=True)
class Aspa:
    """One ASPA record: a customer AS and the set of its provider ASes (sorted, unique)."""

    customer_as: int
    providers: tuple[int, ...]


class RpkiSink(Protocol):
    """What the RTR client reports; the VRP / ASPA tables implement it.

    ``cache`` names the cache (its configured name) the data came from. Calls
    between :meth:`begin` and :meth:`end` form one transaction (one Cache
    Response up to its End of Data, RFC 8210 section 5.8): a sink applies
    them at :meth:`end`, so routes are revalidated once per serial, not per PDU.
    """

    def begin(self, cache: str, reset: bool) -> None:
        """A Cache Response starts; ``reset`` means it replaces all data of this cache."""

    def vrps(self, cache: str, announced: Sequence[Vrp], withdrawn: Sequence[Vrp]) -> None:
        """Prefix PDUs of the running transaction (flag 1 announce, 0 withdraw)."""

    def aspas(self, cache: str, announced: Sequence[Aspa], withdrawn: Sequence[int]) -> None:
        """ASPA PDUs of the running transaction; ``withdrawn`` are customer ASes."""

    def end(self, cache: str, serial: int) -> None:
        """End of Data: apply the transaction; the cache is now at ``serial``."""

    def abort(self, cache: str) -> None:
        """The transaction broke off (error or lost connection): drop it, keep the data before it."""

    def drop(self, cache: str) -> None:
        """Forget all data of this cache (expire timer ran out, RFC 8210 section 6)."""

    def has_vrp(self, cache: str, vrp: Vrp) -> bool:
        """Whether this cache's data as of its last End of Data holds ``vrp`` (a running transaction aside).

        The RTR client asks it for the Prefix PDUs of a Serial Query's answer
        (RFC 8210 section 5.6: a duplicate announcement, the withdrawal of an
        unknown record) rather than keep a second copy of every VRP.
        """
