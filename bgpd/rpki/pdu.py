"""RPKI-to-Router PDUs: bytes <-> records, no Twisted, no I/O (RFC 8210 section 5, RFC 6810 section 5).

Versions 0 (RFC 6810), 1 (RFC 8210) and 2 (draft-ietf-sidrops-8210bis,
which adds the ASPA PDU of its section 5.12).  Every PDU starts with the
8-octet header of RFC 8210 section 5.1: version, type, a 16-bit field (the
Session ID, the Error Code, flags, or zero) and the 32-bit length of the
whole PDU.

A PDU that cannot be decoded raises :class:`PduError`, which carries the
RFC 8210 section 12 error code (with 8210bis's code 9) and the offending
PDU's bytes, so that the client can answer with an Error Report that
encapsulates them.  Prefix PDUs, of which a cache sends hundreds of
thousands, are decoded by :func:`decode_prefix` straight into
:class:`~bgpd.rpki.records.Vrp` records without an intermediate object.
"""

from __future__ import annotations

import enum
import struct

import attrs

from bgpd.rpki.records import Aspa, Vrp
from bgpd.wire.constants import IPV4_UNICAST, IPV6_UNICAST
from bgpd.wire.nlri import make_prefix

__all__ = [
    "HEADER_LEN",
    "MAX_PDU_LEN",
    "SUPPORTED_VERSIONS",
    "AspaPdu",
    "CacheReset",
    "CacheResponse",
    "EndOfData",
    "ErrorCode",
    "ErrorReport",
    "Pdu",
    "PduError",
    "PduType",
    "PrefixPdu",
    "ResetQuery",
    "RouterKey",
    "SerialNotify",
    "SerialQuery",
    "decode",
    "decode_prefix",
    "parse_header",
]

HEADER_LEN = 8
#: Longest PDU accepted.  The longest legitimate one is an ASPA PDU with
#: 8210bis's 16,380 providers (65,532 octets) or an Error Report carrying
#: such a PDU plus its text; anything longer is a broken length field, and
#: waiting for its bytes would only fill memory.
MAX_PDU_LEN = 262_144
SUPPORTED_VERSIONS = (0, 1, 2)
#: most providers one ASPA PDU may list (8210bis section 5.12: the PDU must fit 64 KiB)
MAX_PROVIDERS = 16_380

_HEADER = struct.Struct("!BBHI")
_U32 = struct.Struct("!I")
_V4 = struct.Struct("!BBHIBBBx4sI")
_V6 = struct.Struct("!BBHIBBBx16sI")
_EOD1 = struct.Struct("!BBHIIIII")


class PduType(enum.IntEnum):
    """PDU types (RFC 8210 section 5; ASPA from 8210bis section 5.12)."""

    SERIAL_NOTIFY = 0
    SERIAL_QUERY = 1
    RESET_QUERY = 2
    CACHE_RESPONSE = 3
    IPV4_PREFIX = 4
    IPV6_PREFIX = 6
    END_OF_DATA = 7
    CACHE_RESET = 8
    ROUTER_KEY = 9
    ERROR_REPORT = 10
    ASPA = 11


class ErrorCode(enum.IntEnum):
    """Error Report codes (RFC 8210 section 12; 9 from 8210bis)."""

    CORRUPT_DATA = 0
    INTERNAL_ERROR = 1
    NO_DATA_AVAILABLE = 2
    INVALID_REQUEST = 3
    UNSUPPORTED_PROTOCOL_VERSION = 4
    UNSUPPORTED_PDU_TYPE = 5
    WITHDRAWAL_OF_UNKNOWN_RECORD = 6
    DUPLICATE_ANNOUNCEMENT = 7
    UNEXPECTED_PROTOCOL_VERSION = 8
    ASPA_PROVIDER_LIST_ERROR = 9


#: Error Report codes after which the session goes on (RFC 8210 section 12:
#: No Data Available is the one error that is not fatal).
NON_FATAL = frozenset({ErrorCode.NO_DATA_AVAILABLE})


def error_name(code: int) -> str:
    """The code's name as the RFC writes it, or ``code N`` for one it does not define."""
    try:
        return ErrorCode(code).name.replace("_", " ").lower()
    except ValueError:
        return f"code {code}"


class PduError(Exception):
    """A PDU that cannot be accepted: ``code`` for the Error Report, ``pdu`` the offending bytes."""

    def __init__(self, code: ErrorCode, reason: str, pdu: bytes = b"") -> None:
        super().__init__(reason)
        self.code = code
        self.reason = reason
        self.pdu = pdu

    def __str__(self) -> str:
        return f"{error_name(self.code)}: {self.reason}"


# -- records -----------------------------------------------------------------


@attrs.frozen
class SerialNotify:
    """The cache has data newer than ``serial`` (section 5.2)."""

    version: int
    session_id: int
    serial: int

    def encode(self) -> bytes:
        return _HEADER.pack(self.version, PduType.SERIAL_NOTIFY, self.session_id, 12) + _U32.pack(self.serial)


@attrs.frozen
class SerialQuery:
    """The router asks for what changed after ``serial`` (section 5.3)."""

    version: int
    session_id: int
    serial: int

    def encode(self) -> bytes:
        return _HEADER.pack(self.version, PduType.SERIAL_QUERY, self.session_id, 12) + _U32.pack(self.serial)


@attrs.frozen
class ResetQuery:
    """The router asks for the whole data set (section 5.4)."""

    version: int

    def encode(self) -> bytes:
        return _HEADER.pack(self.version, PduType.RESET_QUERY, 0, 8)


@attrs.frozen
class CacheResponse:
    """The start of the data answering a query (section 5.5)."""

    version: int
    session_id: int

    def encode(self) -> bytes:
        return _HEADER.pack(self.version, PduType.CACHE_RESPONSE, self.session_id, 8)


@attrs.frozen
class PrefixPdu:
    """An IPv4 or IPv6 Prefix PDU (sections 5.6, 5.7): ``announce`` (flag bit 0) or withdraw ``vrp``."""

    version: int
    announce: bool
    vrp: Vrp

    def encode(self) -> bytes:
        v = self.vrp
        plen = v.prefix[0]
        if v.family == IPV4_UNICAST:
            addr = v.prefix[1:].ljust(4, b"\0")
            return _V4.pack(self.version, PduType.IPV4_PREFIX, 0, 20, int(self.announce), plen,
                            v.max_length, addr, v.asn)
        addr = v.prefix[1:].ljust(16, b"\0")
        return _V6.pack(self.version, PduType.IPV6_PREFIX, 0, 32, int(self.announce), plen,
                        v.max_length, addr, v.asn)


@attrs.frozen
class EndOfData:
    """The end of a Cache Response (section 5.8); versions >= 1 carry the timers of section 6."""

    version: int
    session_id: int
    serial: int
    refresh: int | None = None
    retry: int | None = None
    expire: int | None = None

    def encode(self) -> bytes:
        if self.version == 0:
            return _HEADER.pack(0, PduType.END_OF_DATA, self.session_id, 12) + _U32.pack(self.serial)
        return _EOD1.pack(self.version, PduType.END_OF_DATA, self.session_id, 24, self.serial,
                          self.refresh or 0, self.retry or 0, self.expire or 0)


@attrs.frozen
class CacheReset:
    """The cache cannot answer a Serial Query: the router must reset (section 5.9)."""

    version: int

    def encode(self) -> bytes:
        return _HEADER.pack(self.version, PduType.CACHE_RESET, 0, 8)


@attrs.frozen
class RouterKey:
    """A BGPsec router key (section 5.10): decoded so it can be ignored correctly."""

    version: int
    announce: bool
    ski: bytes
    asn: int
    spki: bytes

    def encode(self) -> bytes:
        body = self.ski + _U32.pack(self.asn) + self.spki
        return _HEADER.pack(self.version, PduType.ROUTER_KEY, int(self.announce) << 8,
                            8 + len(body)) + body


@attrs.frozen
class ErrorReport:
    """An Error Report (section 5.11): ``pdu`` the erroneous PDU (may be empty), ``text`` UTF-8."""

    version: int
    code: int
    pdu: bytes = b""
    text: str = ""

    def encode(self) -> bytes:
        text = self.text.encode("utf-8")
        length = 8 + 4 + len(self.pdu) + 4 + len(text)
        return (_HEADER.pack(self.version, PduType.ERROR_REPORT, self.code, length)
                + _U32.pack(len(self.pdu)) + self.pdu + _U32.pack(len(text)) + text)


@attrs.frozen
class AspaPdu:
    """An ASPA PDU (8210bis section 5.12): flags bit 0 announce; a withdrawal lists no provider.

    ``afi`` is None for that layout.  1 (IPv4) or 2 (IPv6) marks the older
    per-family layout of draft-ietf-sidrops-8210bis-10, which Debian 12's
    stayrtr 0.5.1 sends: zero in the header, then flags, an AFI flag (0
    IPv4, 1 IPv6), a provider count, the customer AS and the providers; a
    withdrawal there repeats the providers.
    """

    version: int
    announce: bool
    customer_as: int
    providers: tuple[int, ...] = ()
    afi: int | None = None

    @property
    def aspa(self) -> Aspa:
        return Aspa(self.customer_as, self.providers)

    def encode(self) -> bytes:
        n = len(self.providers)
        if self.afi is not None:
            return (_HEADER.pack(self.version, PduType.ASPA, 0, 16 + 4 * n)
                    + struct.pack(f"!BBHI{n}I", int(self.announce), self.afi - 1, n, self.customer_as,
                                  *self.providers))
        return (_HEADER.pack(self.version, PduType.ASPA, int(self.announce) << 8, 12 + 4 * n)
                + struct.pack(f"!I{n}I", self.customer_as, *self.providers))


Pdu = (SerialNotify | SerialQuery | ResetQuery | CacheResponse | PrefixPdu | EndOfData
       | CacheReset | RouterKey | ErrorReport | AspaPdu)


# -- decoding ----------------------------------------------------------------


def parse_header(data: bytes, offset: int = 0) -> tuple[int, int, int, int]:
    """``(version, type, field, length)`` of the PDU at ``offset`` (at least 8 octets there).

    Raises :class:`PduError` for a length that no PDU can have (shorter
    than its header, or longer than :data:`MAX_PDU_LEN`), so that framing
    stops before it waits for bytes that will never make sense.
    """
    version, ptype, field, length = _HEADER.unpack_from(data, offset)
    if length < HEADER_LEN or length > MAX_PDU_LEN:
        raise PduError(ErrorCode.CORRUPT_DATA, f"PDU length {length} out of range 8..{MAX_PDU_LEN}",
                       bytes(data[offset:offset + HEADER_LEN]))
    return version, ptype, field, length


def _check_length(data: bytes, want: int, name: str) -> None:
    if len(data) != want:
        raise PduError(ErrorCode.CORRUPT_DATA, f"{name} PDU length {len(data)}, must be {want}", data)


def decode_prefix(data: bytes) -> tuple[bool, Vrp]:
    """``(announce, vrp)`` of one IPv4 or IPv6 Prefix PDU (``data`` is exactly that PDU).

    Corrupt Data when the length is wrong, the prefix length exceeds the
    family's, or the max length is not between the prefix length and it
    (RFC 8210 sections 5.6, 5.7).  Host bits past the prefix length are
    cleared, as bgpd keys every prefix.
    """
    n = len(data)
    if n == 20 and data[1] == PduType.IPV4_PREFIX:
        _v, _t, _z, _l, flags, plen, maxlen, addr, asn = _V4.unpack(data)
        bits, family = 32, IPV4_UNICAST
    elif n == 32 and data[1] == PduType.IPV6_PREFIX:
        _v, _t, _z, _l, flags, plen, maxlen, addr, asn = _V6.unpack(data)
        bits, family = 128, IPV6_UNICAST
    else:
        want = 20 if data[1] == PduType.IPV4_PREFIX else 32
        raise PduError(ErrorCode.CORRUPT_DATA, f"prefix PDU length {n}, must be {want}", bytes(data))
    if plen > bits or maxlen > bits or maxlen < plen:
        raise PduError(ErrorCode.CORRUPT_DATA,
                       f"prefix length {plen}, max length {maxlen}: must be 0 <= length <= max "
                       f"length <= {bits}", bytes(data))
    return bool(flags & 1), Vrp(family, make_prefix(addr, plen), maxlen, asn)


def _decode_error_report(version: int, code: int, data: bytes) -> ErrorReport:
    n = len(data)
    if n < 16:
        raise PduError(ErrorCode.CORRUPT_DATA, f"Error Report length {n} < 16", data)
    plen = _U32.unpack_from(data, 8)[0]
    if 12 + plen + 4 > n:
        raise PduError(ErrorCode.CORRUPT_DATA, f"Error Report PDU field of {plen} octets overruns it", data)
    pdu = data[12:12 + plen]
    tlen = _U32.unpack_from(data, 12 + plen)[0]
    if 16 + plen + tlen != n:
        raise PduError(ErrorCode.CORRUPT_DATA,
                       f"Error Report text of {tlen} octets does not end the PDU", data)
    raw = data[16 + plen:]
    # A cache's diagnostic text is for a log line: undecodable bytes are shown, not fatal.
    return ErrorReport(version, code, bytes(pdu), raw.decode("utf-8", "replace"))


def _legacy_aspa(version: int, data: bytes) -> AspaPdu | None:
    """The draft-10 layout (see :class:`AspaPdu`), or None when ``data`` is not in it.

    The two layouts cannot be mistaken for each other in a valid PDU: in
    the current one a PDU with no flag set is a withdrawal, 12 octets long,
    while a draft-10 PDU is 16 octets or more with zero in the header.
    """
    n = len(data)
    if n < 16 or (n - 16) % 4 or data[2] or data[3] or data[8] > 1 or data[9] > 1:
        return None
    count = struct.unpack_from("!H", data, 10)[0]
    if count != (n - 16) // 4:
        return None
    customer, *providers = struct.unpack_from(f"!I{count}I", data, 12)
    if data[8] & 1 and not providers:
        raise PduError(ErrorCode.ASPA_PROVIDER_LIST_ERROR,
                       f"ASPA announcement for AS{customer} lists no provider", data)
    return AspaPdu(version, bool(data[8] & 1), customer, tuple(sorted(set(providers))), afi=data[9] + 1)


def _decode_aspa(version: int, flags: int, data: bytes) -> AspaPdu:
    n = len(data)
    if flags == 0 and n >= 16:
        legacy = _legacy_aspa(version, data)
        if legacy is not None:
            return legacy
    if n < 12 or (n - 12) % 4:
        raise PduError(ErrorCode.CORRUPT_DATA, f"ASPA PDU length {n}: must be 12 + 4 * providers", data)
    count = (n - 12) // 4
    customer, *providers = struct.unpack_from(f"!I{count}I", data, 8)
    announce = bool(flags & 1)
    if announce:
        if not providers:
            raise PduError(ErrorCode.ASPA_PROVIDER_LIST_ERROR,
                           f"ASPA announcement for AS{customer} lists no provider", data)
        if customer in providers:
            raise PduError(ErrorCode.ASPA_PROVIDER_LIST_ERROR,
                           f"ASPA of AS{customer} lists itself as a provider", data)
        if any(a >= b for a, b in zip(providers, providers[1:], strict=False)):
            # Aspa keeps them sorted and unique; the order carries no meaning.
            providers = sorted(set(providers))
    elif providers:
        raise PduError(ErrorCode.ASPA_PROVIDER_LIST_ERROR,
                       f"ASPA withdrawal of AS{customer} lists {count} providers", data)
    return AspaPdu(version, announce, customer, tuple(providers))


def decode(data: bytes) -> Pdu:
    """Decode exactly one PDU (``data`` holds that PDU and nothing else).

    Raises :class:`PduError`: Unsupported Protocol Version for a version
    other than 0, 1, 2; Unsupported PDU Type for an unknown type or one its
    version does not have (Router Key before version 1, ASPA before 2);
    Corrupt Data for a wrong length or an impossible field;
    ASPA Provider List Error for a provider list 8210bis forbids.
    """
    data = bytes(data)
    if len(data) < HEADER_LEN:
        raise PduError(ErrorCode.CORRUPT_DATA, f"PDU of {len(data)} octets is shorter than its header", data)
    version, ptype, field, length = parse_header(data)
    if length != len(data):
        raise PduError(ErrorCode.CORRUPT_DATA, f"length field {length}, PDU has {len(data)} octets", data)
    if version not in SUPPORTED_VERSIONS:
        raise PduError(ErrorCode.UNSUPPORTED_PROTOCOL_VERSION, f"protocol version {version}", data)
    if ptype in (PduType.SERIAL_NOTIFY, PduType.SERIAL_QUERY):
        _check_length(data, 12, PduType(ptype).name)
        cls = SerialNotify if ptype == PduType.SERIAL_NOTIFY else SerialQuery
        return cls(version, field, _U32.unpack_from(data, 8)[0])
    if ptype in (PduType.RESET_QUERY, PduType.CACHE_RESET):
        _check_length(data, 8, PduType(ptype).name)
        return ResetQuery(version) if ptype == PduType.RESET_QUERY else CacheReset(version)
    if ptype == PduType.CACHE_RESPONSE:
        _check_length(data, 8, "CACHE_RESPONSE")
        return CacheResponse(version, field)
    if ptype in (PduType.IPV4_PREFIX, PduType.IPV6_PREFIX):
        announce, vrp = decode_prefix(data)
        return PrefixPdu(version, announce, vrp)
    if ptype == PduType.END_OF_DATA:
        if version == 0:
            _check_length(data, 12, "END_OF_DATA (version 0)")
            return EndOfData(0, field, _U32.unpack_from(data, 8)[0])
        _check_length(data, 24, f"END_OF_DATA (version {version})")
        _v, _t, sid, _l, serial, refresh, retry, expire = _EOD1.unpack(data)
        return EndOfData(version, sid, serial, refresh, retry, expire)
    if ptype == PduType.ERROR_REPORT:
        return _decode_error_report(version, field, data)
    if ptype == PduType.ROUTER_KEY and version >= 1:
        if length < 8 + 20 + 4:
            raise PduError(ErrorCode.CORRUPT_DATA, f"Router Key PDU length {length} < 32", data)
        return RouterKey(version, bool(field >> 8 & 1), data[8:28], _U32.unpack_from(data, 28)[0],
                         data[32:])
    if ptype == PduType.ASPA and version >= 2:
        return _decode_aspa(version, field >> 8, data)
    raise PduError(ErrorCode.UNSUPPORTED_PDU_TYPE, f"PDU type {ptype} in protocol version {version}", data)
