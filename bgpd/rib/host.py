"""What an update group (:mod:`bgpd.rib.adjout`) talks to: the RIB that holds it, and each peer's output.

These are ``typing.Protocol`` classes, kept out of :mod:`bgpd.rib.adjout`
because that module may be compiled by mypyc (``bgpd.hotpath``), and a
compiled module cannot hold a ``runtime_checkable`` protocol.
"""

from __future__ import annotations

from collections.abc import Callable
from typing import Any, Protocol, runtime_checkable

from bgpd.rib.options import RibOptions
from bgpd.rib.route import Path

__all__ = ["GroupHost", "Sink"]


class GroupHost(Protocol):
    """What an update group needs from the RIB that holds it (``Rib`` is one).

    The RIB imports this module, never the other way round.
    """

    options: RibOptions
    cluster_id: str

    def call_later(self, delay: float, fn: Callable[..., Any], *args: Any) -> Any:
        """Run ``fn`` after ``delay`` seconds; the result has ``cancel()``."""

    def loc_table(self, family: tuple[int, int]) -> dict:
        """The Loc-RIB of ``family``: prefix -> best path, or a tuple of candidates best first."""

    def eligible(self, path: Path) -> bool:
        """Whether the path's NEXT_HOP resolves (RFC 4271 9.1.2.1)."""


@runtime_checkable
class Sink(Protocol):
    """A peer's output, as the RIB sees it (``PeerFactory`` is one)."""

    def send(self, messages: list[bytes]) -> None:
        """Framed UPDATE (and ROUTE-REFRESH) messages for the peer, in order."""

    def writable(self) -> bool:
        """False while the peer does not keep up (its send buffer is full).

        The RIB then skips it, and catches it up from the Adj-RIB-Out when
        told that it is writable again (``Rib.resume``).
        """
