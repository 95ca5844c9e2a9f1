"""Socket options for BGP transports on Linux: TCP-MD5 (RFC 2385 via
TCP_MD5SIG), GTSM (RFC 5082 via IP_MINTTL / IPV6_MINHOPCOUNT and a TTL of
255), TCP_NODELAY.
"""

from __future__ import annotations

import ipaddress
import socket
import struct

TCP_MD5SIG = 14  # linux/tcp.h
TCP_MD5SIG_MAXKEYLEN = 80
IP_MINTTL = 21  # linux/in.h
IPV6_MINHOPCOUNT = 73  # linux/in6.h
_SS_SIZE = 128  # sizeof(struct sockaddr_storage)


def _sockaddr(address: str, family: int) -> bytes:
    """A struct sockaddr_storage for ``address`` in the socket's family."""
    ip = ipaddress.ip_address(address)
    if family == socket.AF_INET6:
        if ip.version == 4:
            ip = ipaddress.IPv6Address("::ffff:" + str(ip))
        raw = struct.pack("=H", socket.AF_INET6) + struct.pack("!HI", 0, 0) + ip.packed
        raw += struct.pack("=I", 0)
    else:
        if ip.version != 4:
            raise ValueError(f"{address} is not an IPv4 address for an IPv4 socket")
        raw = struct.pack("=H", socket.AF_INET) + struct.pack("!H", 0) + ip.packed
    return raw + bytes(_SS_SIZE - len(raw))


def set_md5(sock: socket.socket, peer: str, password: str | None) -> None:
    """Install (or with ``None``, remove) the TCP-MD5 key for ``peer`` on ``sock``.

    On a listening socket this covers connections accepted from ``peer``; on a
    client socket it must be set before connect().
    """
    key = (password or "").encode()
    if len(key) > TCP_MD5SIG_MAXKEYLEN:
        raise ValueError("TCP-MD5 key longer than 80 octets")
    # struct tcp_md5sig: sockaddr_storage, u8 flags, u8 prefixlen, u16 keylen,
    # u32 ifindex, u8 key[80]
    value = _sockaddr(peer, sock.family) + struct.pack("=BBHI", 0, 0, len(key), 0)
    value += key + bytes(TCP_MD5SIG_MAXKEYLEN - len(key))
    sock.setsockopt(socket.IPPROTO_TCP, TCP_MD5SIG, value)


def set_gtsm(sock: socket.socket, hops: int) -> None:
    """RFC 5082: send with TTL 255 and accept only TTL >= 256 - hops."""
    min_ttl = 256 - hops
    if sock.family == socket.AF_INET6:
        sock.setsockopt(socket.IPPROTO_IPV6, socket.IPV6_UNICAST_HOPS, 255)
        sock.setsockopt(socket.IPPROTO_IPV6, IPV6_MINHOPCOUNT, min_ttl)
        # An IPv4 peer on a dual-stack socket arrives as IPv4.
        try:
            sock.setsockopt(socket.IPPROTO_IP, socket.IP_TTL, 255)
            sock.setsockopt(socket.IPPROTO_IP, IP_MINTTL, min_ttl)
        except OSError:
            pass
    else:
        sock.setsockopt(socket.IPPROTO_IP, socket.IP_TTL, 255)
        sock.setsockopt(socket.IPPROTO_IP, IP_MINTTL, min_ttl)


def set_nodelay(sock: socket.socket) -> None:
    sock.setsockopt(socket.IPPROTO_TCP, socket.TCP_NODELAY, 1)


def set_ttl(sock: socket.socket, ttl: int) -> None:
    """Outgoing TTL / hop limit (eBGP single-hop uses 1 on some routers; we use it for GTSM)."""
    if sock.family == socket.AF_INET6:
        sock.setsockopt(socket.IPPROTO_IPV6, socket.IPV6_UNICAST_HOPS, ttl)
    else:
        sock.setsockopt(socket.IPPROTO_IP, socket.IP_TTL, ttl)
