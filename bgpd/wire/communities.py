"""Community values as text and back: the notation operators write in configs.

- RFC 1997: COMMUNITIES, 32-bit values written ``ASN:VALUE`` (two 16-bit
  halves); the well-known values (RFC 1997, 3765, 7611, 7999, 8326, 9494)
  are written by name, as ``bgpd.wire.constants.Community`` names them.
- RFC 8092: LARGE_COMMUNITIES, ``GLOBAL:LOCAL1:LOCAL2``, three 32-bit values.
- RFC 4360 section 3: EXTENDED_COMMUNITIES, 8 octets: a type octet, a
  sub-type octet and six octets of value.  Route Target (sub-type 0x02) and
  Route Origin (0x03) are written ``rt:ADMIN:VALUE`` / ``ro:ADMIN:VALUE``,
  where ADMIN picks the type: a 2-octet AS (type 0x00, 4-octet value,
  section 3.1), an IPv4 address (type 0x01, 2-octet value, section 3.2), or
  a 4-octet AS (type 0x02, 2-octet value, RFC 5668 section 2).  A 4-octet AS
  below 65536 is written with an ``L`` suffix (``rt:100L:1``), the
  convention of other implementations, so that text and bytes map one to
  one.  Any other extended community is written, and may be given, as
  ``0x`` and 16 hex digits.

Every parser raises ``ValueError`` with a message that shows the bad text and
says what was expected; nothing here raises anything else on bad input.
"""

from __future__ import annotations

import ipaddress
import re
import struct

from bgpd.wire.constants import Community

__all__ = [
    "WELL_KNOWN_COMMUNITIES",
    "format_community",
    "format_ext_community",
    "format_large_community",
    "parse_community",
    "parse_ext_community",
    "parse_large_community",
]

_U16 = 0xFFFF
_U32 = 0xFFFFFFFF

#: Well-known community names (lower case, ``-`` separated) -> value.
WELL_KNOWN_COMMUNITIES: dict[str, int] = {c.name.lower().replace("_", "-"): int(c) for c in Community}
_NAMES_BY_VALUE = {value: name for name, value in WELL_KNOWN_COMMUNITIES.items()}

# ASCII digits only: int() would also take "+1", " 1", "1_0" and other scripts' digits.
# Ten digits cover 4294967295; longer runs are rejected before int() sees them.
_NUMBER = r"[0-9]{1,10}"
_COMMUNITY = re.compile(rf"({_NUMBER}):({_NUMBER})")
_LARGE = re.compile(rf"({_NUMBER}):({_NUMBER}):({_NUMBER})")
_EXT = re.compile(rf"([A-Za-z]+):([0-9.]+?)(L?):({_NUMBER})")
_HEX = re.compile(r"0[xX]([0-9A-Fa-f]{16})")

# RFC 4360 section 3 (types), RFC 5668 section 2; sub-types from the IANA registry.
_TYPE_AS2 = 0x00
_TYPE_IPV4 = 0x01
_TYPE_AS4 = 0x02
_SUBTYPES = {"rt": 0x02, "ro": 0x03}
_SUBTYPE_NAMES = {code: name for name, code in _SUBTYPES.items()}


def _show(text: object) -> str:
    """The offending input for a message, cut short so a message stays one line."""
    s = repr(text)
    return s if len(s) <= 50 else s[:47] + "..."


# -- RFC 1997 ---------------------------------------------------------------------


def parse_community(text: str) -> int:
    """``"65000:100"`` or a well-known name (any case, ``-`` or ``_``) -> 32-bit value."""
    if not isinstance(text, str):
        raise ValueError(f"a community must be a string, got {_show(text)}")
    named = WELL_KNOWN_COMMUNITIES.get(text.lower().replace("_", "-"))
    if named is not None:
        return named
    m = _COMMUNITY.fullmatch(text)
    if m is None:
        raise ValueError(
            f"bad community {_show(text)}: expected ASN:VALUE (both 0 to 65535) or one of "
            f"{', '.join(WELL_KNOWN_COMMUNITIES)}"
        )
    high, low = int(m.group(1)), int(m.group(2))
    if high > _U16 or low > _U16:
        raise ValueError(f"bad community {_show(text)}: both parts must be 0 to 65535")
    return high << 16 | low


def format_community(value: int) -> str:
    """A 32-bit community as text: its well-known name, or ``"high:low"``."""
    if not isinstance(value, int) or isinstance(value, bool) or not 0 <= value <= _U32:
        raise ValueError(f"a community is an integer from 0 to {_U32}, got {_show(value)}")
    name = _NAMES_BY_VALUE.get(value)
    return name if name is not None else f"{value >> 16}:{value & _U16}"


# -- RFC 8092 ---------------------------------------------------------------------


def parse_large_community(text: str) -> tuple[int, int, int]:
    """``"GLOBAL:LOCAL1:LOCAL2"`` (each 0 to 4294967295) -> a tuple of three ints."""
    if not isinstance(text, str):
        raise ValueError(f"a large community must be a string, got {_show(text)}")
    m = _LARGE.fullmatch(text)
    if m is None:
        raise ValueError(
            f"bad large community {_show(text)}: expected GLOBAL:LOCAL1:LOCAL2, each 0 to {_U32}"
        )
    parts = (int(m.group(1)), int(m.group(2)), int(m.group(3)))
    if any(p > _U32 for p in parts):
        raise ValueError(f"bad large community {_show(text)}: each part must be 0 to {_U32}")
    return parts


def format_large_community(value: tuple[int, int, int]) -> str:
    """A large community ``(global, local1, local2)`` as ``"g:l1:l2"``."""
    if (
        not isinstance(value, tuple)
        or len(value) != 3
        or not all(isinstance(p, int) and not isinstance(p, bool) and 0 <= p <= _U32 for p in value)
    ):
        raise ValueError(f"a large community is three integers from 0 to {_U32}, got {_show(value)}")
    return f"{value[0]}:{value[1]}:{value[2]}"


# -- RFC 4360 / RFC 5668 ----------------------------------------------------------


def parse_ext_community(text: str) -> bytes:
    """``"rt:ADMIN:VALUE"`` / ``"ro:ADMIN:VALUE"`` or ``"0x"`` + 16 hex digits -> 8 octets.

    ADMIN is a 2-octet AS (then VALUE is 0 to 4294967295), an AS above 65535
    or one written with an ``L`` suffix (4-octet AS, VALUE 0 to 65535), or an
    IPv4 address (VALUE 0 to 65535).
    """
    if not isinstance(text, str):
        raise ValueError(f"an extended community must be a string, got {_show(text)}")
    hexed = _HEX.fullmatch(text)
    if hexed is not None:
        return bytes.fromhex(hexed.group(1))
    m = _EXT.fullmatch(text)
    expected = (
        "expected rt:ADMIN:VALUE or ro:ADMIN:VALUE, where ADMIN is an AS number "
        "(65000, 4200000000, 100L) or an IPv4 address, or 0x and 16 hex digits"
    )
    if m is None:
        raise ValueError(f"bad extended community {_show(text)}: {expected}")
    kind, admin, long_as, number = m.group(1).lower(), m.group(2), m.group(3), m.group(4)
    subtype = _SUBTYPES.get(kind)
    if subtype is None:
        raise ValueError(f"bad extended community {_show(text)}: unknown kind {kind!r}; {expected}")
    value = int(number)
    if "." in admin:
        if long_as:
            raise ValueError(f"bad extended community {_show(text)}: L marks an AS number, not an address")
        try:
            ip = ipaddress.IPv4Address(admin)
        except ValueError:
            raise ValueError(
                f"bad extended community {_show(text)}: {admin!r} is not an IPv4 address"
            ) from None
        if value > _U16:
            raise ValueError(
                f"bad extended community {_show(text)}: with an IPv4 address the value must be 0 to 65535"
            )
        return struct.pack("!BB4sH", _TYPE_IPV4, subtype, ip.packed, value)
    if len(admin) > 10:
        raise ValueError(f"bad extended community {_show(text)}: AS number too long")
    asn = int(admin)
    if asn > _U32:
        raise ValueError(f"bad extended community {_show(text)}: AS must be 0 to {_U32}")
    if asn > _U16 or long_as:
        if value > _U16:
            raise ValueError(
                f"bad extended community {_show(text)}: with a 4-octet AS the value must be 0 to 65535"
            )
        return struct.pack("!BBIH", _TYPE_AS4, subtype, asn, value)
    if value > _U32:
        raise ValueError(f"bad extended community {_show(text)}: the value must be 0 to {_U32}")
    return struct.pack("!BBHI", _TYPE_AS2, subtype, asn, value)


def format_ext_community(value: bytes) -> str:
    """8 octets as ``rt:``/``ro:`` text when they are a route target or origin, else ``0x`` hex."""
    if not isinstance(value, (bytes, bytearray)) or len(value) != 8:
        raise ValueError(f"an extended community is 8 bytes, got {_show(value)}")
    kind = _SUBTYPE_NAMES.get(value[1])
    if kind is not None:
        if value[0] == _TYPE_AS2:
            asn, number = struct.unpack_from("!HI", value, 2)
            return f"{kind}:{asn}:{number}"
        if value[0] == _TYPE_IPV4:
            address, number = struct.unpack_from("!4sH", value, 2)
            return f"{kind}:{ipaddress.IPv4Address(address)}:{number}"
        if value[0] == _TYPE_AS4:
            asn, number = struct.unpack_from("!IH", value, 2)
            return f"{kind}:{asn}{'L' if asn <= _U16 else ''}:{number}"
    return "0x" + bytes(value).hex()
