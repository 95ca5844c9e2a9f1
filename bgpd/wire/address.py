"""The one spelling of a peer's IP address, the key every part looks peers up by.

The config, the listening sockets (RFC 4271 section 8.2.1.1: connections
are matched to configured peers by source address) and the service must
agree on it, or a connection finds no peer, or two peers share one key.

An IPv6 link-local address (RFC 4291 section 2.5.6) is only unique on its
link, so its zone (RFC 4007 section 11, ``fe80::1%eth0``) is part of the
key: the same ``fe80::1`` on eth0 and on eth1 are two neighbours.  Linux
(``getnameinfo``, which Twisted uses for accepted connections) reports the
zone as the interface name, so that is the spelling to configure.  Other
addresses have no zone worth keeping.  The standard library only (wire layer).
"""

from __future__ import annotations

import ipaddress

__all__ = ["normalize_address"]


def normalize_address(text: str, *, keep_zone: bool = True) -> str:
    """Canonical text of the IP address ``text``; raises ValueError if it is not one.

    IPv6 is compressed and lower-case; an IPv4-mapped IPv6 address becomes
    plain IPv4 (a dual-stack ``::`` listener reports IPv4 peers that way);
    the zone is kept for a link-local address, dropped for any other.
    ``keep_zone=False`` drops it always: the bare address a NEXT_HOP or
    another field on the wire carries.
    """
    ip = ipaddress.ip_address(text)
    if ip.version == 4:
        return str(ip)
    assert isinstance(ip, ipaddress.IPv6Address)
    if ip.ipv4_mapped is not None:
        return str(ip.ipv4_mapped)
    bare = ipaddress.IPv6Address(ip.packed)
    if keep_zone and ip.scope_id and ip.is_link_local:
        return f"{bare}%{ip.scope_id}"
    return str(bare)
