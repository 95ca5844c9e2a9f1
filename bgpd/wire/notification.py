"""NOTIFICATION (RFC 4271 section 4.5) with RFC 9003 shutdown communication."""

from __future__ import annotations

from dataclasses import dataclass

from bgpd.wire.constants import CeaseError, ErrorCode, MsgType, error_name
from bgpd.wire.errors import NotificationError

_SHUTDOWN_SUBCODES = (CeaseError.ADMINISTRATIVE_SHUTDOWN, CeaseError.ADMINISTRATIVE_RESET)


@dataclass(frozen=True, slots=True)
class Notification:
    code: int
    subcode: int = 0
    data: bytes = b""
    msg_type = MsgType.NOTIFICATION

    @classmethod
    def shutdown(cls, message: str = "", reset: bool = False) -> Notification:
        """Cease / Administrative Shutdown (or Reset) carrying an RFC 9003 message.

        The message is cut to 255 octets on a UTF-8 character boundary.
        """
        raw = message.encode("utf-8")[:255]
        raw = raw.decode("utf-8", "ignore").encode("utf-8")
        sub = CeaseError.ADMINISTRATIVE_RESET if reset else CeaseError.ADMINISTRATIVE_SHUTDOWN
        data = bytes((len(raw),)) + raw if raw else b""
        return cls(ErrorCode.CEASE, sub, data)

    @classmethod
    def from_error(cls, err: NotificationError) -> Notification:
        return cls(err.code, err.subcode, err.data)

    @property
    def shutdown_message(self) -> str | None:
        """The RFC 9003 text of a Cease / shutdown or reset, if one was sent."""
        if self.code != ErrorCode.CEASE or self.subcode not in _SHUTDOWN_SUBCODES:
            return None
        if not self.data:
            return None
        n = self.data[0]
        raw = self.data[1 : 1 + n]
        if len(raw) != n:
            return None
        return raw.decode("utf-8", "replace")

    @property
    def name(self) -> str:
        return error_name(self.code, self.subcode)

    def describe(self) -> str:
        text = f"{self.name} ({self.code}/{self.subcode})"
        msg = self.shutdown_message
        if msg:
            text += f': "{msg}"'
        elif self.data:
            text += f" data={self.data.hex()}"
        return text

    def pack_body(self) -> bytes:
        return bytes((self.code, self.subcode)) + self.data

    @classmethod
    def unpack(cls, body: bytes) -> Notification:
        if len(body) < 2:
            raise NotificationError(1, 2, (len(body) + 19).to_bytes(2, "big"), "NOTIFICATION too short")
        return cls(body[0], body[1], bytes(body[2:]))
