"""One BGP connection: framing and decoding, nothing else (RFC 4271 4.1, 6.1).

The Protocol turns bytes into messages and reports them to the controller it
is given (the peer's Factory), as twisted.names' DNS protocol reports to its
controller.  Which messages are acceptable, timers, and what to answer are
the controller's business.  The controller's interface is declared here
(:class:`ProtocolController`), so this module never imports the Factory.
"""

from __future__ import annotations

import struct
from typing import Any
from typing import Protocol as TypingProtocol

from twisted.internet.protocol import Protocol
from twisted.logger import Logger
from twisted.python.failure import Failure

from bgpd.session.tap import IN, OUT, SessionTap
from bgpd.wire.address import normalize_address
from bgpd.wire.attributes import AttributeCache
from bgpd.wire.constants import HEADER_LEN, MARKER, MAX_MESSAGE_LEN, MsgType
from bgpd.wire.errors import NotificationError
from bgpd.wire.message import KEEPALIVE_BYTES, Framer, Message, decode_message, encode_message
from bgpd.wire.negotiated import DEFAULT, Negotiated
from bgpd.wire.notification import Notification
from bgpd.wire.update import Update

log = Logger()
SHARED_CACHE = AttributeCache()
_HEAD = struct.Struct("!HB")
_UPDATE = int(MsgType.UPDATE)


def _framed(msg_type: int, body: bytes) -> bytes:
    """A message body with its header again (the framer hands out bodies)."""
    return MARKER + _HEAD.pack(HEADER_LEN + len(body), msg_type) + body


class ProtocolController(TypingProtocol):
    """What a :class:`BGPProtocol` reports to (the peer's Factory)."""

    def connection_made(self, proto: BGPProtocol) -> None:
        """The TCP connection is up (``proto.outbound`` says who opened it)."""

    def bytes_received(self, proto: BGPProtocol) -> None:
        """At least one whole message arrived (for the hold timer)."""

    def message_received(self, proto: BGPProtocol, msg: Message) -> None:
        """A message other than UPDATE was framed and decoded."""

    def updates_decoded(self, proto: BGPProtocol, updates: list[Update]) -> None:
        """Consecutive UPDATEs of one read, framed and decoded, in the order received.

        One call per run (a full table arrives as a few hundred thousand
        UPDATEs: the per-message Python work goes once per read); a message
        of another type, or one that does not decode, ends the run, which is
        reported before it.
        """

    def protocol_error(self, proto: BGPProtocol, err: NotificationError, header: bool = False,
                       msg_type: int | None = None) -> None:
        """A message could not be framed (``header``) or decoded (RFC 4271 6)."""

    def connection_lost(self, proto: BGPProtocol, reason: Failure | None) -> None:
        """The TCP connection is gone."""

    def output_resumed(self, proto: BGPProtocol) -> None:
        """The transport's send buffer drained after a pause."""


class BGPProtocol(Protocol):
    """Frames a TCP stream into BGP messages for a :class:`PeerFactory`.

    ``outbound`` is True for a connection we initiated (collision detection
    needs to know, RFC 4271 6.8).
    """

    def __init__(self, controller: ProtocolController | None = None, outbound: bool = False,
                 cache: AttributeCache = SHARED_CACHE) -> None:
        self.controller = controller
        self.outbound = outbound
        self.framer = Framer(MAX_MESSAGE_LEN)
        self.negotiated: Negotiated = DEFAULT
        self.cache = cache
        self.closing = False
        #: connectionLost has run (the service waits for it at shutdown).
        self.lost = False
        #: The transport's send buffer is full (IPushProducer).
        self.paused = False
        #: We stopped reading (inbound flow control, see hold_input).
        self.input_held = False
        #: Our OPEN went out on this connection (it must not go twice).
        self.open_sent = False
        self.last_received = 0.0
        self.messages_in = 0
        self.messages_out = 0
        #: the same by message type (index: the type code, RFC 4271 4.1), for the metrics
        self.in_by_type = [0] * 8
        self.out_by_type = [0] * 8
        # Set by the controller: what this connection saw of the OPEN exchange.
        self.remote_open = None
        self.session_info = None
        #: The OPENs as they went over this connection, whole (BMP Peer Up).
        self.sent_open_raw = b""
        self.received_open_raw = b""
        #: Who sees every message (:mod:`bgpd.session.tap`), and the clock it is timed by.
        self.tap: SessionTap | None = None
        self.tap_clock: Any = None

    # -- Twisted ----------------------------------------------------------

    def connectionMade(self) -> None:
        # Streaming producer: the transport pauses us when its send buffer is
        # full, so the RIB stops generating UPDATEs for a slow peer instead of
        # queueing a whole table in memory.
        self.paused = False
        self.transport.registerProducer(self, True)
        if self.controller is not None:
            self.controller.connection_made(self)

    # IPushProducer
    def pauseProducing(self) -> None:
        self.paused = True

    def resumeProducing(self) -> None:
        self.paused = False
        if self.controller is not None:
            self.controller.output_resumed(self)

    def stopProducing(self) -> None:
        self.paused = True

    def hold_input(self, held: bool) -> None:
        """Stop (True) or go on (False) reading from the peer: inbound flow control.

        While held, what the peer sends waits in the socket's receive buffer
        and TCP's window stops the peer; the frames of a read already made
        are still decoded.
        """
        if held == self.input_held:
            return
        self.input_held = held
        transport = self.transport
        if transport is None or self.lost:
            return
        if held:
            transport.pauseProducing()
        else:
            transport.resumeProducing()

    def dataReceived(self, data: bytes) -> None:
        if self.closing:
            return
        controller = self.controller
        if controller is None:
            return  # disowned by the controller, closing
        try:
            frames = self.framer.feed(data)
        except NotificationError as err:
            controller.protocol_error(self, err, header=True)
            return
        if frames:
            controller.bytes_received(self)
        neg = self.negotiated
        cache = self.cache
        tap = self.tap
        run: list[Update] = []
        for msg_type, body in frames:
            if self.closing:
                return
            self.messages_in += 1
            self.in_by_type[msg_type & 7] += 1
            if tap is not None or msg_type == 1:
                raw = _framed(msg_type, body)
                if msg_type == 1:
                    self.received_open_raw = raw
                if tap is not None:
                    tap.message(controller, IN, self.tap_clock.seconds(), raw)
            try:
                msg = decode_message(msg_type, body, neg, cache)
            except NotificationError as err:
                if run:
                    controller.updates_decoded(self, run)
                    if self.closing:
                        return
                controller.protocol_error(self, err, header=False, msg_type=msg_type)
                return
            if msg_type == _UPDATE:
                run.append(msg)  # type: ignore[arg-type]
                continue
            if run:
                controller.updates_decoded(self, run)
                run = []
                if self.closing:
                    return
            controller.message_received(self, msg)
            neg = self.negotiated  # the OPEN exchange may have changed it
        if run:
            controller.updates_decoded(self, run)

    def connectionLost(self, reason: Failure = None) -> None:  # noqa: B008
        self.closing = True
        self.lost = True
        if self.controller is not None:
            self.controller.connection_lost(self, reason)

    # -- used by the controller --------------------------------------------

    def set_tap(self, tap: SessionTap | None, clock: Any) -> None:
        """Report every message to ``tap`` from now on (None: to nobody)."""
        self.tap = tap
        self.tap_clock = clock

    def _tap_out(self, data: bytes) -> None:
        tap = self.tap
        if tap is not None and self.controller is not None:
            tap.message(self.controller, OUT, self.tap_clock.seconds(), data)

    def set_negotiated(self, neg: Negotiated) -> None:
        if not neg.local_addresses:
            # Our address on this connection: a next hop equal to it is
            # semantically incorrect (RFC 4271 6.3), so the decoder must know it.
            local = self._local_address()
            if local is not None:
                neg = neg.with_local_addresses(frozenset({local}))
        self.negotiated = neg
        self.framer.max_len = neg.max_message_len

    def _local_address(self) -> str | None:
        try:
            # Without the zone: it is compared with next hops from the wire.
            return normalize_address(self.transport.getHost().host, keep_zone=False)
        except (AttributeError, ValueError):
            return None  # no transport, or not an IP one (tests, UNIX sockets)

    def send(self, msg: Message) -> None:
        if self.closing or self.transport is None:
            return
        self.messages_out += 1
        self.out_by_type[msg.msg_type & 7] += 1
        data = encode_message(msg, self.negotiated)
        if msg.msg_type == MsgType.OPEN:
            self.open_sent = True
            self.sent_open_raw = data
        self.transport.write(data)
        if self.tap is not None:
            self._tap_out(data)

    def send_keepalive(self) -> None:
        if self.closing or self.transport is None:
            return
        self.messages_out += 1
        self.out_by_type[MsgType.KEEPALIVE] += 1
        self.transport.write(KEEPALIVE_BYTES)
        if self.tap is not None:
            self._tap_out(KEEPALIVE_BYTES)

    def send_raw(self, messages: list[bytes]) -> None:
        """Already-framed messages (UPDATEs packed by the RIB)."""
        if self.closing or self.transport is None:
            return
        self.messages_out += len(messages)
        self.out_by_type[MsgType.UPDATE] += len(messages)
        self.transport.writeSequence(messages)
        if self.tap is not None:
            for data in messages:
                self._tap_out(data)

    def notify_and_close(self, notification: Notification) -> None:
        """Send a NOTIFICATION, then close once it is written (RFC 4271 6)."""
        if self.closing:
            return
        if self.transport is not None:
            self.messages_out += 1
            self.out_by_type[MsgType.NOTIFICATION] += 1
            data = encode_message(notification, self.negotiated)
            self.transport.write(data)
            if self.tap is not None:
                self._tap_out(data)
        self.close()

    def close(self) -> None:
        if self.closing:
            return
        self.closing = True
        if self.transport is not None:
            self.transport.loseConnection()

    def abort(self) -> None:
        self.closing = True
        if self.transport is not None:
            self.transport.abortConnection()

    @property
    def peer_address(self) -> str | None:
        if self.transport is None:
            return None
        return self.transport.getPeer().host

    def __repr__(self) -> str:
        kind = "out" if self.outbound else "in"
        return f"<BGPProtocol {kind} {self.peer_address}>"


__all__ = ["BGPProtocol", "MsgType", "ProtocolController"]
