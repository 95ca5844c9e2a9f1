"""ROUTE-REFRESH (RFC 2918) with the RFC 7313 BoRR/EoRR subtypes."""

from __future__ import annotations

import struct
from dataclasses import dataclass

from bgpd.wire.constants import MsgType, RouteRefreshError
from bgpd.wire.errors import NotificationError


@dataclass(frozen=True, slots=True)
class RouteRefresh:
    afi: int
    safi: int
    subtype: int = 0  # 0 normal request, 1 BoRR, 2 EoRR (RFC 7313)
    msg_type = MsgType.ROUTE_REFRESH

    def pack_body(self) -> bytes:
        return struct.pack("!HBB", self.afi, self.subtype, self.safi)

    @classmethod
    def unpack(cls, body: bytes) -> RouteRefresh:
        if len(body) != 4:
            # RFC 7313 section 5: ROUTE-REFRESH Message Error / Invalid Message
            # Length, with the whole message as data.
            raise NotificationError(
                7, RouteRefreshError.INVALID_MESSAGE_LENGTH,
                b"\xff" * 16 + struct.pack("!HB", len(body) + 19, 5) + body,
                f"ROUTE-REFRESH length {len(body) + 19} != 23",
            )
        afi, subtype, safi = struct.unpack("!HBB", body)
        return cls(afi, safi, subtype)
