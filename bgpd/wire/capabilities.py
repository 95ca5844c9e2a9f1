"""BGP capabilities (RFC 5492) and the ones an operator meets on real sessions.

Multiprotocol (RFC 4760), route refresh (RFC 2918), enhanced route refresh
(RFC 7313), 4-octet AS (RFC 6793), graceful restart (RFC 4724), long-lived
graceful restart (RFC 9494), add-path (RFC 7911), extended message (RFC 8654),
extended next hop (RFC 8950), FQDN (draft-walton-bgp-hostname-capability),
BGP role (RFC 9234).  Anything else is kept as :class:`UnknownCapability`.
"""

from __future__ import annotations

import struct
from dataclasses import dataclass

from bgpd.wire.constants import CapabilityCode as C
from bgpd.wire.constants import OpenError
from bgpd.wire.errors import NotificationError


def _bad(code: int, reason: str) -> NotificationError:
    # A capability we understand but whose value is malformed: the OPEN is
    # malformed.  RFC 5492 gives no subcode for it; implementations use
    # OPEN / unspecific (0), which is what we send too.
    return NotificationError(2, 0, b"", f"capability {code}: {reason}")


class Capability:
    """Base class: ``code`` and ``pack_value()``; ``decode`` builds one from bytes."""

    code: int = 0

    def pack_value(self) -> bytes:
        raise NotImplementedError

    def pack(self) -> bytes:
        value = self.pack_value()
        if len(value) > 255:
            raise ValueError(f"capability {self.code} value too long")
        return bytes((self.code, len(value))) + value


@dataclass(frozen=True, slots=True)
class Multiprotocol(Capability):
    afi: int
    safi: int
    code = C.MULTIPROTOCOL

    def pack_value(self) -> bytes:
        return struct.pack("!HBB", self.afi, 0, self.safi)

    @classmethod
    def unpack(cls, value: bytes) -> Multiprotocol:
        if len(value) != 4:
            raise _bad(C.MULTIPROTOCOL, f"length {len(value)} != 4")
        afi, _, safi = struct.unpack("!HBB", value)
        return cls(afi, safi)


@dataclass(frozen=True, slots=True)
class RouteRefresh(Capability):
    code = C.ROUTE_REFRESH

    def pack_value(self) -> bytes:
        return b""

    @classmethod
    def unpack(cls, value: bytes) -> RouteRefresh:
        return cls()


@dataclass(frozen=True, slots=True)
class EnhancedRouteRefresh(Capability):
    code = C.ENHANCED_ROUTE_REFRESH

    def pack_value(self) -> bytes:
        return b""

    @classmethod
    def unpack(cls, value: bytes) -> EnhancedRouteRefresh:
        return cls()


@dataclass(frozen=True, slots=True)
class ExtendedMessage(Capability):
    code = C.EXTENDED_MESSAGE

    def pack_value(self) -> bytes:
        return b""

    @classmethod
    def unpack(cls, value: bytes) -> ExtendedMessage:
        return cls()


@dataclass(frozen=True, slots=True)
class FourOctetAS(Capability):
    asn: int
    code = C.FOUR_OCTET_AS

    def pack_value(self) -> bytes:
        return struct.pack("!I", self.asn)

    @classmethod
    def unpack(cls, value: bytes) -> FourOctetAS:
        if len(value) != 4:
            raise _bad(C.FOUR_OCTET_AS, f"length {len(value)} != 4")
        return cls(struct.unpack("!I", value)[0])


@dataclass(frozen=True, slots=True)
class GracefulRestart(Capability):
    """RFC 4724: restart flags (R=0x8, N=0x4 per RFC 8538), time, per-family F bit (0x80)."""

    restart_flags: int = 0
    restart_time: int = 0
    families: tuple[tuple[int, int, int], ...] = ()  # (afi, safi, flags)
    code = C.GRACEFUL_RESTART

    RESTART_STATE = 0x8
    NOTIFICATION = 0x4
    FORWARDING_STATE = 0x80

    def pack_value(self) -> bytes:
        head = struct.pack("!H", ((self.restart_flags & 0xF) << 12) | (self.restart_time & 0xFFF))
        return head + b"".join(struct.pack("!HBB", a, s, f) for a, s, f in self.families)

    @classmethod
    def unpack(cls, value: bytes) -> GracefulRestart:
        if len(value) < 2 or (len(value) - 2) % 4:
            raise _bad(C.GRACEFUL_RESTART, f"length {len(value)} is not 2 + 4n")
        (word,) = struct.unpack_from("!H", value)
        fams = tuple(struct.unpack_from("!HBB", value, i) for i in range(2, len(value), 4))
        return cls(word >> 12, word & 0xFFF, fams)


@dataclass(frozen=True, slots=True)
class LongLivedGracefulRestart(Capability):
    """RFC 9494: per family (afi, safi, flags, long-lived stale time in seconds)."""

    families: tuple[tuple[int, int, int, int], ...] = ()
    code = C.LONG_LIVED_GRACEFUL_RESTART

    def pack_value(self) -> bytes:
        return b"".join(
            struct.pack("!HBB", a, s, f) + t.to_bytes(3, "big") for a, s, f, t in self.families
        )

    @classmethod
    def unpack(cls, value: bytes) -> LongLivedGracefulRestart:
        if len(value) % 7:
            raise _bad(C.LONG_LIVED_GRACEFUL_RESTART, f"length {len(value)} is not 7n")
        fams = []
        for i in range(0, len(value), 7):
            a, s, f = struct.unpack_from("!HBB", value, i)
            fams.append((a, s, f, int.from_bytes(value[i + 4 : i + 7], "big")))
        return cls(tuple(fams))


@dataclass(frozen=True, slots=True)
class AddPath(Capability):
    """RFC 7911: per family send/receive (1 receive, 2 send, 3 both)."""

    families: tuple[tuple[int, int, int], ...] = ()
    code = C.ADD_PATH

    RECEIVE = 1
    SEND = 2
    BOTH = 3

    def pack_value(self) -> bytes:
        return b"".join(struct.pack("!HBB", a, s, m) for a, s, m in self.families)

    @classmethod
    def unpack(cls, value: bytes) -> AddPath:
        if len(value) % 4:
            raise _bad(C.ADD_PATH, f"length {len(value)} is not 4n")
        fams = tuple(struct.unpack_from("!HBB", value, i) for i in range(0, len(value), 4))
        for _, _, mode in fams:
            if mode not in (1, 2, 3):
                raise _bad(C.ADD_PATH, f"send/receive value {mode}")
        return cls(fams)


@dataclass(frozen=True, slots=True)
class ExtendedNextHop(Capability):
    """RFC 8950: (NLRI afi, NLRI safi, next-hop afi) triples."""

    entries: tuple[tuple[int, int, int], ...] = ()
    code = C.EXTENDED_NEXT_HOP

    def pack_value(self) -> bytes:
        return b"".join(struct.pack("!HHH", a, s, n) for a, s, n in self.entries)

    @classmethod
    def unpack(cls, value: bytes) -> ExtendedNextHop:
        if len(value) % 6:
            raise _bad(C.EXTENDED_NEXT_HOP, f"length {len(value)} is not 6n")
        return cls(tuple(struct.unpack_from("!HHH", value, i) for i in range(0, len(value), 6)))


@dataclass(frozen=True, slots=True)
class FQDN(Capability):
    hostname: str = ""
    domain: str = ""
    code = C.FQDN

    def pack_value(self) -> bytes:
        h = self.hostname.encode()[:255]
        d = self.domain.encode()[:255]
        return bytes((len(h),)) + h + bytes((len(d),)) + d

    @classmethod
    def unpack(cls, value: bytes) -> FQDN:
        if not value or len(value) < 1 + value[0] + 1:
            raise _bad(C.FQDN, "truncated")
        hl = value[0]
        h = value[1 : 1 + hl]
        dl = value[1 + hl]
        d = value[2 + hl : 2 + hl + dl]
        if len(d) != dl:
            raise _bad(C.FQDN, "truncated domain")
        return cls(h.decode("utf-8", "replace"), d.decode("utf-8", "replace"))


@dataclass(frozen=True, slots=True)
class BgpRole(Capability):
    role: int
    code = C.BGP_ROLE

    def pack_value(self) -> bytes:
        return bytes((self.role,))

    @classmethod
    def unpack(cls, value: bytes) -> BgpRole:
        if len(value) != 1:
            raise _bad(C.BGP_ROLE, f"length {len(value)} != 1")
        return cls(value[0])


@dataclass(frozen=True, slots=True)
class UnknownCapability(Capability):
    """A capability we do not implement, kept byte for byte."""

    code: int  # type: ignore[misc]
    value: bytes = b""

    def pack_value(self) -> bytes:
        return self.value


_DECODERS = {
    C.MULTIPROTOCOL: Multiprotocol,
    C.ROUTE_REFRESH: RouteRefresh,
    C.ENHANCED_ROUTE_REFRESH: EnhancedRouteRefresh,
    C.EXTENDED_MESSAGE: ExtendedMessage,
    C.FOUR_OCTET_AS: FourOctetAS,
    C.GRACEFUL_RESTART: GracefulRestart,
    C.LONG_LIVED_GRACEFUL_RESTART: LongLivedGracefulRestart,
    C.ADD_PATH: AddPath,
    C.EXTENDED_NEXT_HOP: ExtendedNextHop,
    C.FQDN: FQDN,
    C.BGP_ROLE: BgpRole,
}


def decode_capabilities(data: bytes) -> list[Capability]:
    """Decode the body of one Capabilities optional parameter (type 2)."""
    caps: list[Capability] = []
    i = 0
    n = len(data)
    while i < n:
        if i + 2 > n:
            raise NotificationError(2, 0, b"", "capability header truncated")
        code = data[i]
        length = data[i + 1]
        value = data[i + 2 : i + 2 + length]
        if len(value) != length:
            raise NotificationError(2, 0, b"", f"capability {code} overruns its parameter")
        decoder = _DECODERS.get(code)
        caps.append(decoder.unpack(value) if decoder else UnknownCapability(code, value))
        i += 2 + length
    return caps


__all__ = [
    "AddPath",
    "BgpRole",
    "Capability",
    "EnhancedRouteRefresh",
    "ExtendedMessage",
    "ExtendedNextHop",
    "FQDN",
    "FourOctetAS",
    "GracefulRestart",
    "LongLivedGracefulRestart",
    "Multiprotocol",
    "OpenError",
    "RouteRefresh",
    "UnknownCapability",
    "decode_capabilities",
]
