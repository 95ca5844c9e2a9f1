"""OPEN message (RFC 4271 section 4.2, RFC 5492, RFC 9072 extended optional parameters)."""

from __future__ import annotations

import socket
import struct
from dataclasses import dataclass

from bgpd.wire.capabilities import Capability, FourOctetAS, decode_capabilities
from bgpd.wire.constants import AS_TRANS, BGP_VERSION, MsgType, OpenError
from bgpd.wire.errors import NotificationError

PARAM_CAPABILITIES = 2
_EXTENDED = 255


@dataclass(frozen=True, slots=True)
class Open:
    """An OPEN: the 2-octet ``my_as`` field as sent, and the capabilities.

    ``asn`` is the speaker's real AS: the 4-octet AS capability when present
    (RFC 6793), else ``my_as``.
    """

    my_as: int
    hold_time: int
    bgp_id: str
    capabilities: tuple[Capability, ...] = ()
    version: int = BGP_VERSION
    msg_type = MsgType.OPEN

    @classmethod
    def make(
        cls, asn: int, hold_time: int, bgp_id: str, capabilities: tuple[Capability, ...] = ()
    ) -> Open:
        """Build an OPEN for ``asn``: AS_TRANS in the 2-octet field when it does not fit."""
        caps = tuple(c for c in capabilities if not isinstance(c, FourOctetAS))
        caps += (FourOctetAS(asn),)
        return cls(asn if asn <= 0xFFFF else AS_TRANS, hold_time, bgp_id, caps)

    @property
    def asn(self) -> int:
        for cap in self.capabilities:
            if isinstance(cap, FourOctetAS):
                return cap.asn
        return self.my_as

    def find(self, kind: type) -> list:
        """All capabilities of one class, in the order received."""
        return [c for c in self.capabilities if isinstance(c, kind)]

    def has(self, kind: type) -> bool:
        return any(isinstance(c, kind) for c in self.capabilities)

    def pack_body(self) -> bytes:
        caps = b"".join(c.pack() for c in self.capabilities)
        head = struct.pack(
            "!BHH4s", self.version, self.my_as, self.hold_time, socket.inet_aton(self.bgp_id)
        )
        if not caps:
            return head + b"\x00"
        # One Capabilities parameter holding every capability (RFC 5492 allows
        # either form); if it no longer fits in 255 octets use RFC 9072.
        if len(caps) + 2 <= 255:
            return head + bytes((len(caps) + 2, PARAM_CAPABILITIES, len(caps))) + caps
        param = struct.pack("!BH", PARAM_CAPABILITIES, len(caps)) + caps
        return head + struct.pack("!BBH", _EXTENDED, _EXTENDED, len(param)) + param

    @classmethod
    def unpack(cls, body: bytes) -> Open:
        if len(body) < 10:
            raise NotificationError(1, 2, struct.pack("!H", len(body) + 19), "OPEN too short")
        version, my_as, hold, bgp_id, opt_len = struct.unpack_from("!BHH4sB", body)
        if version != BGP_VERSION:
            # RFC 4271 6.2: data is the largest locally supported version.
            raise NotificationError(
                2, OpenError.UNSUPPORTED_VERSION_NUMBER, struct.pack("!H", BGP_VERSION),
                f"version {version}",
            )
        params = body[10:]
        caps: list[Capability] = []
        if opt_len == _EXTENDED and params[:1] == b"\xff":
            # RFC 9072: Non-Ext OP Type 255, then a 2-octet length, params with
            # 2-octet lengths.
            if len(params) < 3:
                raise NotificationError(2, 0, b"", "extended optional parameters truncated")
            (ext_len,) = struct.unpack_from("!H", params, 1)
            params = params[3:]
            if ext_len != len(params):
                raise NotificationError(
                    2, 0, b"", f"extended optional parameters length {ext_len} != {len(params)}"
                )
            hdr, hdr_len = "!BH", 3
        else:
            if opt_len != len(params):
                raise NotificationError(
                    2, 0, b"", f"optional parameters length {opt_len} != {len(params)}"
                )
            hdr, hdr_len = "!BB", 2
        i = 0
        while i < len(params):
            if i + hdr_len > len(params):
                raise NotificationError(2, 0, b"", "optional parameter header truncated")
            ptype, plen = struct.unpack_from(hdr, params, i)
            value = params[i + hdr_len : i + hdr_len + plen]
            if len(value) != plen:
                raise NotificationError(2, 0, b"", f"optional parameter {ptype} overruns")
            if ptype != PARAM_CAPABILITIES:
                raise NotificationError(
                    2, OpenError.UNSUPPORTED_OPTIONAL_PARAMETER, b"",
                    f"optional parameter type {ptype}",
                )
            caps.extend(decode_capabilities(value))
            i += hdr_len + plen
        return cls(my_as, hold, socket.inet_ntoa(bgp_id), tuple(caps), version)
