"""Typed decode errors: what RFC 4271 section 6 and RFC 7606 say to do about bad bytes.

A decode call either returns a message or raises :class:`NotificationError`,
which carries the exact NOTIFICATION (code, subcode, data) to send before the
session is reset.  The gentler RFC 7606 outcomes (treat-as-withdraw, attribute
discard) are not exceptions: the UPDATE is still returned, with the
:class:`Problem` records that say what was done and why.
"""

from __future__ import annotations

from dataclasses import dataclass
from enum import Enum

from bgpd.wire.constants import error_name


class NotificationError(Exception):
    """Bad input that ends the session with this NOTIFICATION (RFC 4271 section 6)."""

    def __init__(self, code: int, subcode: int, data: bytes = b"", reason: str = "") -> None:
        self.code = int(code)
        self.subcode = int(subcode)
        self.data = bytes(data)
        self.reason = reason or error_name(code, subcode)
        super().__init__(self.code, self.subcode, self.data, self.reason)

    def __str__(self) -> str:
        text = f"{error_name(self.code, self.subcode)} ({self.code}/{self.subcode})"
        if self.reason:
            text += f": {self.reason}"
        return text

    def __repr__(self) -> str:
        return (
            f"NotificationError(code={self.code}, subcode={self.subcode}, "
            f"data={self.data!r}, reason={self.reason!r})"
        )


class Outcome(Enum):
    """RFC 7606 section 2 error-handling approaches, gentlest last."""

    SESSION_RESET = "session-reset"
    AFI_SAFI_DISABLE = "afi-safi-disable"
    TREAT_AS_WITHDRAW = "treat-as-withdraw"
    ATTRIBUTE_DISCARD = "attribute-discard"


@dataclass(frozen=True, slots=True)
class Problem:
    """One RFC 7606 finding in an UPDATE: what was wrong and what was done about it.

    ``code``/``subcode`` are the NOTIFICATION RFC 4271 would have sent, kept so
    that logs and monitoring can name the error precisely.
    """

    outcome: Outcome
    attr_type: int
    reason: str
    code: int = 3
    subcode: int = 0

    def __str__(self) -> str:
        return f"{self.outcome.value}: attribute {self.attr_type}: {self.reason}"
