"""The shared listening sockets: one per listen address, all peers behind them.

Like PyBal's BGP, the listening factory hands each accepted connection to the
peer's own Factory, found by source address, and refuses unknown sources
(RFC 4271 8.2.1.1: connections from unconfigured peers are not accepted).
TCP-MD5 keys for every peer are installed on the listening sockets.
"""

from __future__ import annotations

import ipaddress
import socket
from collections.abc import Callable
from typing import Any

from twisted.internet import tcp
from twisted.internet.protocol import Factory
from twisted.logger import Logger

from bgpd.session import sockopts
from bgpd.session.protocol import BGPProtocol
from bgpd.wire.address import normalize_address

__all__ = ["BGPServerFactory", "install_md5", "listen", "normalize_address", "set_listen_ttl"]

log = Logger()


class _Port(tcp.Port):
    """A listening port; IPv6 sockets are IPv6-only so 0.0.0.0 and :: can share a port."""

    def createInternetSocket(self) -> Any:
        sock = super().createInternetSocket()
        if self.addressFamily == socket.AF_INET6:
            sock.setsockopt(socket.IPPROTO_IPV6, socket.IPV6_V6ONLY, 1)
        return sock


class BGPServerFactory(Factory):
    """Accepts connections on the listen addresses and routes them to peers."""

    noisy = False

    def __init__(self, lookup: Callable[[str], Any]) -> None:
        self.lookup = lookup
        self.refused = 0

    def buildProtocol(self, addr: Any) -> BGPProtocol | None:
        try:
            host = normalize_address(addr.host)
        except ValueError:
            host = addr.host
        peer = self.lookup(host)
        if peer is None:
            self.refused += 1
            log.info("refusing BGP connection from unconfigured {host}", host=host)
            return None
        proto = BGPProtocol(peer, outbound=False)
        proto.factory = self
        return proto


def listen(reactor: Any, factory: BGPServerFactory, address: str, port: int) -> tcp.Port:
    """Listen on ``address``:``port`` (IPv6 sockets are IPv6-only)."""
    p = _Port(port, factory, 50, address, reactor)
    p.startListening()
    return p


def set_listen_ttl(port: tcp.Port, ttl: int = 255) -> None:
    """Send with TTL 255 from the listening socket (GTSM, RFC 5082).

    The SYN-ACK of an accepted connection leaves before we see the new
    socket, so a GTSM peer dialling us would drop it unless the listening
    socket already sends with 255.  The minimum accepted TTL is set per peer
    on the accepted socket.
    """
    sockopts.set_ttl(port.socket, ttl)


def install_md5(port: tcp.Port, peers: dict[str, str | None]) -> None:
    """Install (or remove, with None) the TCP-MD5 key for each peer on a listening port."""
    sock = port.socket
    for address, password in peers.items():
        ip = ipaddress.ip_address(address.split("%", 1)[0])
        if sock.family == socket.AF_INET and ip.version != 4:
            continue
        if sock.family == socket.AF_INET6 and ip.version != 6:
            continue  # IPv6-only sockets never see IPv4 peers
        try:
            sockopts.set_md5(sock, address, password)
        except OSError as e:
            if password:
                log.error("cannot set TCP-MD5 key for {peer}: {error}", peer=address, error=e)
