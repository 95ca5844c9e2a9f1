"""Message header, stream framing and dispatch (RFC 4271 4.1, 6.1; RFC 8654).

:class:`Framer` cuts a TCP byte stream, split anywhere, into ``(type, body)``
pairs and checks the header as RFC 4271 6.1 says; :func:`decode_message`
turns a body into a message object; :func:`encode_message` goes back.
"""

from __future__ import annotations

import struct
from dataclasses import dataclass
from typing import ClassVar

from bgpd.wire.attributes import AttributeCache
from bgpd.wire.constants import (
    HEADER_LEN,
    MARKER,
    MAX_MESSAGE_LEN,
    HeaderError,
    MsgType,
)
from bgpd.wire.errors import NotificationError
from bgpd.wire.negotiated import DEFAULT, Negotiated
from bgpd.wire.notification import Notification
from bgpd.wire.open import Open
from bgpd.wire.refresh import RouteRefresh
from bgpd.wire.update import Update, decode_update

_HDR = struct.Struct("!HB")


@dataclass(frozen=True, slots=True)
class Keepalive:
    msg_type: ClassVar[MsgType] = MsgType.KEEPALIVE

    def pack_body(self) -> bytes:
        return b""


KEEPALIVE = Keepalive()
KEEPALIVE_BYTES = MARKER + _HDR.pack(HEADER_LEN, MsgType.KEEPALIVE)

# RFC 4271 6.1 minimum lengths; KEEPALIVE and ROUTE-REFRESH have exact ones.
_MIN_LEN: dict[int, int] = {
    MsgType.OPEN: 29,
    MsgType.UPDATE: 23,
    MsgType.NOTIFICATION: 21,
    MsgType.KEEPALIVE: 19,
    MsgType.ROUTE_REFRESH: 23,
}

Message = Open | Update | Notification | Keepalive | RouteRefresh


class Framer:
    """Reassembles BGP messages from a byte stream.

    ``max_len`` starts at 4096 and is raised to 65535 once RFC 8654 extended
    messages are negotiated; OPEN and KEEPALIVE stay bound by 4096 / 19.
    """

    __slots__ = ("_buf", "_need", "max_len")

    def __init__(self, max_len: int = MAX_MESSAGE_LEN) -> None:
        self._buf = bytearray()
        # Bytes the buffer must hold before another message can be cut: the
        # header, or the whole of the message whose header was checked.
        self._need = HEADER_LEN
        self.max_len = max_len

    def __len__(self) -> int:
        return len(self._buf)

    def feed(self, data: bytes) -> list[tuple[int, bytes]]:
        """Add bytes; return every complete ``(type, body)`` now available.

        Raises NotificationError (Message Header Error) on a bad marker,
        length or type; the caller must then close the session.
        """
        buf = self._buf
        if buf:
            buf += data
            if len(buf) < self._need:
                return []  # a message cut by TCP: nothing new to look at
            data = bytes(buf)
            buf.clear()
        elif type(data) is not bytes:
            data = bytes(data)
        # Work on immutable bytes: a body is then one slice, not a bytearray
        # slice copied again into bytes.
        out = []
        pos = 0
        n = len(data)
        max_len = self.max_len
        need = HEADER_LEN
        last = n - HEADER_LEN  # the last offset a whole header can start at
        marker = MARKER
        startswith = data.startswith
        try:
            while pos <= last:
                if not startswith(marker, pos):
                    raise NotificationError(1, HeaderError.CONNECTION_NOT_SYNCHRONIZED, b"",
                                            "marker is not all ones")
                length = (data[pos + 16] << 8) | data[pos + 17]
                msg_type = data[pos + 18]
                # The common types are checked inline; anything unusual gets
                # the full RFC 4271 6.1 treatment.
                if msg_type == 2:
                    if length < 23 or length > max_len:
                        _check_header(length, msg_type, max_len)
                elif msg_type != 4 or length != 19:
                    _check_header(length, msg_type, max_len)
                end = pos + length
                if end > n:
                    need = length
                    break
                out.append((msg_type, data[pos + 19:end]))
                pos = end
        except NotificationError:
            # Keep what was not consumed, as before the call: the session is
            # going down, but the framer stays consistent.
            buf += data
            self._need = 0  # look again next time, as a fresh header would be
            raise
        if pos < n:
            buf += data[pos:] if pos else data
            self._need = need
        return out


def _check_header(length: int, msg_type: int, max_len: int) -> None:
    minimum = _MIN_LEN.get(msg_type)
    if minimum is None:
        raise NotificationError(1, HeaderError.BAD_MESSAGE_TYPE, bytes((msg_type,)),
                                f"message type {msg_type}")
    if msg_type == MsgType.OPEN or msg_type == MsgType.KEEPALIVE:
        # RFC 8654 section 4: OPEN and KEEPALIVE never exceed 4096 octets.
        max_len = MAX_MESSAGE_LEN
    if length < minimum or length > max_len or (msg_type == MsgType.KEEPALIVE
                                                and length != HEADER_LEN):
        if msg_type == MsgType.ROUTE_REFRESH and minimum <= length <= max_len:
            return  # RFC 7313 5: a ROUTE-REFRESH length error has its own code
        raise NotificationError(1, HeaderError.BAD_MESSAGE_LENGTH, struct.pack("!H", length),
                                f"length {length} for message type {msg_type}")


def decode_message(
    msg_type: int, body: bytes, neg: Negotiated = DEFAULT, cache: AttributeCache | None = None
) -> Message:
    """Decode one message body; raises only NotificationError."""
    if msg_type == MsgType.UPDATE:
        return decode_update(body, neg, cache)
    if msg_type == MsgType.KEEPALIVE:
        if body:
            raise NotificationError(1, HeaderError.BAD_MESSAGE_LENGTH,
                                    struct.pack("!H", HEADER_LEN + len(body)), "KEEPALIVE with a body")
        return KEEPALIVE
    if msg_type == MsgType.OPEN:
        return Open.unpack(body)
    if msg_type == MsgType.NOTIFICATION:
        return Notification.unpack(body)
    if msg_type == MsgType.ROUTE_REFRESH:
        return RouteRefresh.unpack(body)
    raise NotificationError(1, HeaderError.BAD_MESSAGE_TYPE, bytes((msg_type & 0xFF,)),
                            f"message type {msg_type}")


def decode_stream(data: bytes, neg: Negotiated = DEFAULT) -> list[Message]:
    """Decode a whole byte string of messages (tests, MRT, golden files)."""
    framer = Framer(neg.max_message_len)
    msgs = [decode_message(t, b, neg) for t, b in framer.feed(data)]
    if len(framer):
        raise NotificationError(1, HeaderError.BAD_MESSAGE_LENGTH, b"", "trailing partial message")
    return msgs


def encode_message(msg: Message, neg: Negotiated = DEFAULT) -> bytes:
    """Encode a message with its header."""
    if isinstance(msg, Update):
        body = msg.pack_body(neg)
    else:
        body = msg.pack_body()
    length = HEADER_LEN + len(body)
    limit = neg.max_message_len
    if msg.msg_type in (MsgType.OPEN, MsgType.KEEPALIVE):
        limit = MAX_MESSAGE_LEN
    if length > limit:
        raise ValueError(f"message of {length} octets exceeds {limit}")
    return MARKER + _HDR.pack(length, msg.msg_type) + body
