"""What a session shows an observer: raw messages, session up and down.

BMP (RFC 7854 sections 4.6, 4.9, 4.10) needs the exact bytes of every
message a peer sent (pre-policy Route Monitoring), both OPENs and the
addresses and ports of the connection (Peer Up), and why the session ended
(Peer Down: the NOTIFICATION sent or received, with its bytes, or the FSM
event).  An MRT BGP4MP log (RFC 6396 section 4.4) needs the same messages
with their direction and time.  This module declares that interface
(:class:`SessionTap`); the service hands one tap to every
:class:`~bgpd.session.factory.PeerFactory` (``set_message_tap``), so the
session never imports whoever listens.

With no tap set, a received message costs one ``is None`` test.
"""

from __future__ import annotations

from typing import TYPE_CHECKING, Any, Protocol, runtime_checkable

import attrs

if TYPE_CHECKING:
    from bgpd.session.negotiation import SessionInfo

__all__ = ["IN", "OUT", "DownReason", "FanoutTap", "PeerDown", "PeerUp", "SessionTap"]

#: ``direction`` of :meth:`SessionTap.message`: from the peer / to the peer.
IN = "in"
OUT = "out"


class DownReason:
    """Why a session ended, numbered as RFC 7854 section 4.9 numbers them."""

    #: We closed it and sent a NOTIFICATION (``PeerDown.notification``).
    LOCAL_NOTIFICATION = 1
    #: We closed it without one; ``PeerDown.fsm_event`` is the FSM event (RFC 4271 8.1).
    LOCAL_NO_NOTIFICATION = 2
    #: The peer closed it with a NOTIFICATION (``PeerDown.notification``).
    REMOTE_NOTIFICATION = 3
    #: The peer closed it without one (the TCP connection went away).
    REMOTE_NO_NOTIFICATION = 4
    #: The peer was removed from the config.
    DECONFIGURED = 5


@attrs.frozen
class PeerUp:
    """A session as it was when it became Established (BMP Peer Up, RFC 7854 4.10).

    ``sent_open`` / ``received_open`` are whole messages (header included),
    exactly as they went over the connection.
    """

    timestamp: float
    local_address: str
    local_port: int
    remote_address: str
    remote_port: int
    sent_open: bytes
    received_open: bytes
    info: SessionInfo


@attrs.frozen
class PeerDown:
    """How a session ended (BMP Peer Down, RFC 7854 4.9).

    ``reason`` is a :class:`DownReason`; ``notification`` the whole
    NOTIFICATION message (header included) for reasons 1 and 3, else
    ``b""``; ``fsm_event`` the RFC 4271 event number for reason 2, else 0.
    ``text`` is the reason as the logs say it.
    """

    timestamp: float
    reason: int
    notification: bytes = b""
    fsm_event: int = 0
    text: str = ""


@runtime_checkable
class SessionTap(Protocol):
    """What a session reports to its observer.  Every method is required.

    ``peer`` is the :class:`~bgpd.session.factory.PeerFactory`; ``timestamp``
    the reactor's time (seconds since the epoch); ``data`` one whole BGP
    message, header included.  Messages on a second connection kept for
    collision detection (RFC 4271 6.8) are reported too: ``peer.state`` and
    ``peer.protocol_instance`` say which connection the FSM runs on.
    """

    def message(self, peer: Any, direction: str, timestamp: float, data: bytes) -> None:
        """One message received (``IN``) or sent (``OUT``)."""

    def session_up(self, peer: Any, up: PeerUp) -> None:
        """The session became Established (after its OPENs and first KEEPALIVEs)."""

    def session_down(self, peer: Any, down: PeerDown) -> None:
        """The session left Established."""


class FanoutTap:
    """One tap that passes everything on to several (BMP and an MRT log at once)."""

    def __init__(self, taps: list[SessionTap]) -> None:
        self.taps = tuple(taps)

    def message(self, peer: Any, direction: str, timestamp: float, data: bytes) -> None:
        for tap in self.taps:
            tap.message(peer, direction, timestamp, data)

    def session_up(self, peer: Any, up: PeerUp) -> None:
        for tap in self.taps:
            tap.session_up(peer, up)

    def session_down(self, peer: Any, down: PeerDown) -> None:
        for tap in self.taps:
            tap.session_down(peer, down)
