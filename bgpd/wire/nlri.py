"""NLRI encoding (RFC 4271 section 4.3, RFC 4760 section 5, RFC 7911 section 3).

A prefix is kept in its wire form as an immutable ``bytes`` key: one length
octet followed by the significant address octets, with the bits past the
prefix length cleared.  Decoding is therefore a slice, encoding a join, and a
key is as small as a Python object holding the prefix can be.  The address
family is never part of the key: tables are kept per family.

With add-path (RFC 7911) a received prefix is a ``(path_id, key)`` tuple.
"""

from __future__ import annotations

import ipaddress
import socket
import struct
from typing import Final

from bgpd.wire.constants import AFI, UpdateError
from bgpd.wire.errors import NotificationError

MAX_BITS: dict[int, int] = {AFI.IPV4: 32, AFI.IPV6: 128}
ADDR_LEN: dict[int, int] = {AFI.IPV4: 4, AFI.IPV6: 16}
_INET: dict[int, int] = {AFI.IPV4: socket.AF_INET, AFI.IPV6: socket.AF_INET6}
# Final: the compiled build (bgpd.hotpath) reads these as C statics, not as
# module-dict look-ups on every use.
_MASK: Final = [0] + [(0xFF << (8 - r)) & 0xFF for r in range(1, 8)]
# Octets a prefix of each length takes, its length octet included, and the
# host bits of the last octet for each length modulo 8.
_STEP: Final = [1 + ((plen + 7) >> 3) for plen in range(256)]
_HOST: Final = [0] + [0xFF >> r for r in range(1, 8)]
_unpack_path_id: Final = struct.Struct("!I").unpack_from

Prefix = bytes
PathPrefix = tuple[int, bytes]


def _bad_network(reason: str) -> NotificationError:
    return NotificationError(3, UpdateError.INVALID_NETWORK_FIELD, b"", reason)


def decode_prefixes(data: bytes, max_bits: int = 32) -> list[bytes]:
    """Decode a run of NLRI into canonical prefix keys.

    Raises NotificationError (UPDATE / Invalid Network Field) on a prefix
    longer than the family allows or one that overruns the field: RFC 7606
    section 5.3 says NLRI that cannot be parsed reset the session.
    """
    return decode_prefix_span(data, 0, len(data), max_bits)


def decode_prefix_span(data: bytes, i: int, n: int, max_bits: int = 32) -> list[bytes]:
    """:func:`decode_prefixes` over ``data[i:n]``, without copying the field out first."""
    out: list[bytes] = []
    # out.append, not a bound method in a local: the compiled build turns the
    # former into a direct list append, the latter into a Python call.
    step = _STEP
    while i < n:
        plen = data[i]
        if plen > max_bits:
            raise _bad_network(f"prefix length {plen} > {max_bits}")
        j = i + step[plen]
        if j > n:
            raise _bad_network(f"prefix /{plen} overruns the NLRI field")
        rem = plen & 7
        if rem and data[j - 1] & _HOST[rem]:
            out.append(_cleared(data, i, j, rem))
        else:
            out.append(data[i:j])
        i = j
    return out


def _cleared(data: bytes, i: int, j: int, rem: int) -> bytes:
    # Trailing bits are irrelevant (RFC 4271 4.3): clear them so that equal
    # prefixes are equal keys.  Rare, so out of the decode loops.
    return data[i : j - 1] + bytes((data[j - 1] & _MASK[rem],))


def decode_path_prefixes(data: bytes, max_bits: int = 32) -> list[tuple[int, bytes]]:
    """Decode add-path NLRI (RFC 7911): each prefix preceded by a 4-octet path id."""
    out: list[tuple[int, bytes]] = []
    append = out.append
    i = 0
    n = len(data)
    while i < n:
        if i + 5 > n:
            raise _bad_network("add-path NLRI truncated")
        path_id = _unpack_path_id(data, i)[0]
        i += 4
        plen = data[i]
        if plen > max_bits:
            raise _bad_network(f"prefix length {plen} > {max_bits}")
        j = i + _STEP[plen]
        if j > n:
            raise _bad_network(f"prefix /{plen} overruns the NLRI field")
        rem = plen & 7
        if rem and data[j - 1] & _HOST[rem]:
            append((path_id, _cleared(data, i, j, rem)))
        else:
            append((path_id, data[i:j]))
        i = j
    return out


def encode_prefixes(prefixes: list[bytes] | tuple[bytes, ...]) -> bytes:
    """Encode prefix keys back into NLRI bytes."""
    return b"".join(prefixes)


def encode_path_prefixes(prefixes: list[tuple[int, bytes]]) -> bytes:
    """Encode add-path ``(path_id, key)`` pairs."""
    pack = struct.Struct("!I").pack
    return b"".join(pack(pid) + key for pid, key in prefixes)


def make_prefix(address: bytes, plen: int) -> bytes:
    """Key for ``address/plen`` from the packed address, host bits cleared."""
    nbytes = (plen + 7) >> 3
    body = bytearray(address[:nbytes])
    rem = plen & 7
    if rem:
        body[-1] &= _MASK[rem]
    return bytes((plen,)) + bytes(body)


def prefix_from_str(text: str) -> tuple[int, bytes]:
    """Parse ``'192.0.2.0/24'`` or ``'2001:db8::/32'`` into ``(afi, key)``.

    Host bits must be zero (``ValueError`` otherwise), as an operator typing a
    prefix into a config expects to be told about a typo.
    """
    net = ipaddress.ip_network(text, strict=True)
    afi = AFI.IPV4 if net.version == 4 else AFI.IPV6
    return afi, make_prefix(net.network_address.packed, net.prefixlen)


def prefix_to_str(key: bytes, afi: int) -> str:
    """Render a key as ``'192.0.2.0/24'`` (``afi`` 1) or ``'2001:db8::/32'`` (``afi`` 2)."""
    plen = key[0]
    alen = ADDR_LEN[afi]
    addr = key[1:] + bytes(alen - len(key) + 1)
    return f"{socket.inet_ntop(_INET[afi], addr)}/{plen}"


def prefix_network(key: bytes, afi: int) -> ipaddress.IPv4Network | ipaddress.IPv6Network:
    """The key as an :mod:`ipaddress` network."""
    return ipaddress.ip_network(prefix_to_str(key, afi))


def prefix_len(key: bytes) -> int:
    """Prefix length in bits."""
    return key[0]


def prefix_int(key: bytes, afi: int) -> int:
    """Network address of the key as an integer (for sorting and range checks)."""
    alen = ADDR_LEN[afi]
    return int.from_bytes(key[1:] + bytes(alen - len(key) + 1), "big")


def prefix_contains(outer: bytes, inner: bytes) -> bool:
    """True if ``inner`` lies inside ``outer`` (same family assumed)."""
    olen = outer[0]
    if inner[0] < olen:
        return False
    full, rem = divmod(olen, 8)
    if outer[1 : 1 + full] != inner[1 : 1 + full]:
        return False
    if rem:
        return (inner[1 + full] & _MASK[rem]) == outer[1 + full]
    return True
