"""Session history: every FSM state change (RFC 4271 section 8) as one log line and a record.

The session reports each state change with its reason to its listener
(``SessionListener.state_changed``); the service's bridge hands it to the
callbacks registered with ``watch_state``, and :meth:`SessionHistory.state_changed`
is one of them: nothing here wraps the session.  Each change becomes a
:class:`SessionEvent` with the reason sorted into a kind: a NOTIFICATION
received or sent (RFC 4271 section 4.5: code, subcode and their names; the
RFC 8203 / RFC 9003 shutdown communication of a Cease / Administrative
Shutdown or Reset), the hold timer's expiry (section 6.5), a TCP error, an
administrative stop.  Every event is logged through twisted.logger with
keyword fields (``peer``, ``description``, ``old``, ``new``, ``reason``,
``kind``, ``code``...), so a JSON observer (:mod:`bgpd.monitor.jsonlog`)
writes them as fields; each peer keeps the last N events with wall-clock
times, and counts flaps (Established -> any other state).
"""

from __future__ import annotations

import time
from collections import deque
from collections.abc import Callable
from typing import Any

import attrs
from twisted.logger import Logger

from bgpd.session.fsm import State
from bgpd.wire.address import normalize_address
from bgpd.wire.notification import Notification

__all__ = ["PeerHistory", "SessionEvent", "SessionHistory", "DEFAULT_SIZE"]

log = Logger(namespace="bgpd.monitor.history")

#: Events kept per peer unless ``[monitor] history_size`` says otherwise.
DEFAULT_SIZE = 64

#: SessionEvent.kind values
NOTIFICATION_RECEIVED = "notification-received"
NOTIFICATION_SENT = "notification-sent"
HOLD_TIMER = "hold-timer-expired"
TCP_ERROR = "tcp-error"
ADMIN = "administrative"
OTHER = ""


@attrs.frozen
class SessionEvent:
    """One state change of one peer, with its reason taken apart."""

    #: wall-clock time, seconds since the Unix epoch
    time: float
    peer: str
    description: str
    old: str
    new: str
    #: the session's own reason text ("Event 28: NOTIFICATION received: ...")
    reason: str
    #: one of the kinds above ("" for an ordinary step such as Connect -> OpenSent)
    kind: str = OTHER
    #: the NOTIFICATION behind the change (received or sent), 0/0 when none
    code: int = 0
    subcode: int = 0
    #: "Cease / Administrative Shutdown"; "" when no NOTIFICATION
    code_name: str = ""
    #: the RFC 9003 shutdown communication, "" when none
    shutdown_message: str = ""

    @property
    def down(self) -> bool:
        """Whether this change ended an Established session (a flap)."""
        return self.old == State.ESTABLISHED.rfc_name and self.new != self.old


class PeerHistory:
    """The last ``size`` events of one peer and its flap count."""

    __slots__ = ("events", "flaps", "notifications", "_seen_sent", "_seen_received")

    def __init__(self, size: int) -> None:
        self.events: deque[SessionEvent] = deque(maxlen=size)
        #: Established -> down transitions seen since the daemon started
        self.flaps = 0
        #: ("sent" | "received", code, subcode) -> NOTIFICATIONs behind a state change
        self.notifications: dict[tuple[str, int, int], int] = {}
        # The NOTIFICATION objects already accounted for, so a stale "last
        # NOTIFICATION received" is not blamed for a later change.
        self._seen_sent: Any = None
        self._seen_received: Any = None


class SessionHistory:
    """Per-peer bounded histories, fed by the state-change callbacks of the sessions.

    ``wall`` gives the wall-clock time (``time.time``; tests pass a
    ``task.Clock().seconds``).  ``watchers`` are called with each new
    :class:`SessionEvent` (metrics, BGP4MP state records).
    """

    def __init__(self, size: int = DEFAULT_SIZE, wall: Callable[[], float] = time.time) -> None:
        if size < 1:
            raise ValueError(f"history size must be at least 1, got {size}")
        self.size = size
        self.wall = wall
        self.peers: dict[str, PeerHistory] = {}
        self.watchers: list[Callable[[SessionEvent], None]] = []

    def _history(self, address: str) -> PeerHistory:
        h = self.peers.get(address)
        if h is None:
            h = self.peers[address] = PeerHistory(self.size)
        return h

    def resize(self, size: int) -> None:
        """Keep ``size`` events per peer from now on (a reload), the newest kept."""
        if size < 1 or size == self.size:
            return
        self.size = size
        for h in self.peers.values():
            h.events = deque(h.events, maxlen=size)

    def state_changed(self, peer: Any, old: State, new: State, reason: str) -> None:
        """The ``watch_state`` callback: ``peer`` is the session's PeerFactory."""
        config = peer.config
        address = normalize_address(config.address)
        h = self._history(address)
        kind, note = self._classify(h, peer, reason)
        event = SessionEvent(
            time=self.wall(), peer=address, description=config.description or "",
            old=old.rfc_name, new=new.rfc_name, reason=reason, kind=kind,
            code=note.code if note is not None else 0,
            subcode=note.subcode if note is not None else 0,
            code_name=note.name if note is not None else "",
            shutdown_message=(note.shutdown_message or "") if note is not None else "",
        )
        h.events.append(event)
        if event.down:
            h.flaps += 1
        self._log(event, old, new, h.flaps)
        for w in list(self.watchers):
            w(event)

    @staticmethod
    def _classify(h: PeerHistory, peer: Any, reason: str) -> tuple[str, Notification | None]:
        received = getattr(peer, "last_notification_received", None)
        sent = getattr(peer, "last_notification_sent", None)
        new_received = received is not None and received is not h._seen_received
        new_sent = sent is not None and sent is not h._seen_sent
        h._seen_received, h._seen_sent = received, sent
        for new, direction, n in ((new_received, "received", received), (new_sent, "sent", sent)):
            if new:
                key = (direction, n.code, n.subcode)
                h.notifications[key] = h.notifications.get(key, 0) + 1
        if "hold timer expired" in reason:
            return HOLD_TIMER, sent if new_sent else None
        if new_received:
            # Received since the last change: the peer ended the session with it.
            return NOTIFICATION_RECEIVED, received
        if "administrative stop" in reason or "de-configured" in reason:
            return ADMIN, sent if new_sent else None
        if new_sent:
            return NOTIFICATION_SENT, sent
        if "TCP connection lost" in reason or "failed:" in reason:
            return TCP_ERROR, None
        return OTHER, None

    def _log(self, e: SessionEvent, old: State, new: State, flaps: int) -> None:
        # The text keeps the factory's former "peer ADDR OLD -> NEW: reason"
        # (enum names), which log readers such as the interop driver parse;
        # the description goes last.
        text = "peer {peer} {old_state} -> {new_state}: {reason}"
        if e.description:
            text += " [{description}]"
        level = log.warn if e.down else log.info
        level(text, peer=e.peer, description=e.description, old=e.old, new=e.new,
              old_state=old.name, new_state=new.name,
              reason=e.reason, kind=e.kind, code=e.code, subcode=e.subcode,
              code_name=e.code_name, shutdown_message=e.shutdown_message, flaps=flaps,
              session_event=True)

    def events(self, address: str) -> tuple[SessionEvent, ...]:
        """The peer's kept events, oldest first (empty for an unknown peer)."""
        h = self.peers.get(normalize_address(address))
        return tuple(h.events) if h is not None else ()

    def flaps(self, address: str) -> int:
        h = self.peers.get(normalize_address(address))
        return h.flaps if h is not None else 0

    def notification_counts(self, address: str) -> dict[tuple[str, int, int], int]:
        """("sent" | "received", code, subcode) -> count, for the metrics."""
        h = self.peers.get(address)
        return dict(h.notifications) if h is not None else {}

    def forget(self, keep: set[str]) -> None:
        """Drop the histories of peers no longer configured (bounded memory across reloads)."""
        for address in list(self.peers):
            if address not in keep:
                del self.peers[address]
