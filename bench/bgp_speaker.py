"""The few BGP-4 session pieces the benchmark's feeder and sink share.

Blocking sockets and plain functions, no Twisted: the bench speakers must be
measurably cheaper than any router they measure.  Covered: RFC 4271 section 4
(message header, OPEN, KEEPALIVE, NOTIFICATION) and section 8 only as far as
OpenSent -> OpenConfirm -> Established; RFC 4760 / RFC 5492 (multiprotocol
capability for IPv4 and IPv6 unicast), RFC 6793 (4-octet AS), RFC 2918 (route
refresh, advertised only: the routers under test expect it).

Each speaker reports what happens as JSON lines on stdout (``emit``), with
``time.monotonic()`` stamps: CLOCK_MONOTONIC is one clock for every process on
the machine, whatever network namespace they run in, so the orchestrator can
subtract a feeder's stamp from a sink's.
"""

from __future__ import annotations

import json
import socket
import sys
import time

from bgpd.wire.capabilities import FourOctetAS, Multiprotocol, RouteRefresh
from bgpd.wire.constants import HEADER_LEN, MsgType
from bgpd.wire.message import KEEPALIVE_BYTES, decode_message, encode_message
from bgpd.wire.notification import Notification
from bgpd.wire.open import Open

__all__ = ["KEEPALIVE_BYTES", "SessionError", "accept_one", "connect", "emit", "handshake",
           "open_bytes"]


class SessionError(Exception):
    """The session could not be set up or was closed by the peer."""


def emit(event: str, **fields: object) -> None:
    """One JSON line on stdout, flushed at once (the orchestrator tails the log)."""
    fields["event"] = event
    fields.setdefault("t", time.monotonic())
    sys.stdout.write(json.dumps(fields) + "\n")
    sys.stdout.flush()


def open_bytes(asn: int, router_id: str, hold_time: int) -> bytes:
    """A complete OPEN for ``asn``: IPv4 + IPv6 unicast, route refresh, 4-octet AS."""
    caps = (Multiprotocol(1, 1), Multiprotocol(2, 1), RouteRefresh(), FourOctetAS(asn))
    return encode_message(Open.make(asn, hold_time, router_id, caps))


def connect(address: str, port: int, timeout: float, source: str | None = None) -> socket.socket:
    """Connect to ``address``:``port``, retrying while nothing listens there yet.

    Bounded by ``timeout`` seconds (the router under test may still be starting).
    """
    family = socket.AF_INET6 if ":" in address else socket.AF_INET
    deadline = time.monotonic() + timeout
    last: Exception | None = None
    for _ in range(100_000):
        sock = socket.socket(family, socket.SOCK_STREAM)
        try:
            if source:
                sock.bind((source, 0))
            sock.settimeout(max(0.1, min(5.0, deadline - time.monotonic())))
            sock.connect((address, port))
        except OSError as e:
            sock.close()
            last = e
            if time.monotonic() >= deadline:
                break
            time.sleep(0.2)
            continue
        sock.setsockopt(socket.IPPROTO_TCP, socket.TCP_NODELAY, 1)
        return sock
    raise SessionError(f"could not connect to {address} port {port} in {timeout:.0f} s: {last}")


def accept_one(address: str, port: int, timeout: float) -> socket.socket:
    """Listen on ``address``:``port`` and return the first connection (bounded wait)."""
    family = socket.AF_INET6 if ":" in address else socket.AF_INET
    lsock = socket.socket(family, socket.SOCK_STREAM)
    try:
        lsock.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
        lsock.bind((address, port))
        lsock.listen(1)
        emit("listening", address=address, port=port)
        lsock.settimeout(timeout)
        try:
            sock, _ = lsock.accept()
        except TimeoutError:
            raise SessionError(f"nobody connected to {address} port {port} in {timeout:.0f} s") from None
    finally:
        lsock.close()
    sock.setsockopt(socket.IPPROTO_TCP, socket.TCP_NODELAY, 1)
    return sock


def handshake(sock: socket.socket, asn: int, router_id: str, hold_time: int,
              timeout: float = 60.0) -> tuple[Open, int, bytes]:
    """Exchange OPENs and KEEPALIVEs; return (peer's OPEN, negotiated hold time, leftover bytes).

    The leftover bytes are whatever followed the peer's KEEPALIVE in the same
    reads (a router may start sending UPDATEs at once); the caller frames them.
    """
    sock.settimeout(timeout)
    sock.sendall(open_bytes(asn, router_id, hold_time))
    buf = b""
    pos = 0
    peer_open: Open | None = None
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        while len(buf) - pos >= HEADER_LEN:
            length = (buf[pos + 16] << 8) | buf[pos + 17]
            if length < HEADER_LEN:
                raise SessionError(f"bad message length {length} during the OPEN exchange")
            if len(buf) - pos < length:
                break
            msg_type = buf[pos + 18]
            body = buf[pos + HEADER_LEN:pos + length]
            pos += length
            if msg_type == MsgType.NOTIFICATION:
                raise SessionError("peer sent NOTIFICATION "
                                   + Notification.unpack(body).describe())
            if msg_type == MsgType.OPEN:
                msg = decode_message(msg_type, body)
                assert isinstance(msg, Open)
                peer_open = msg
                sock.sendall(KEEPALIVE_BYTES)
            elif msg_type == MsgType.KEEPALIVE and peer_open is not None:
                return peer_open, min(hold_time, peer_open.hold_time), buf[pos:]
        try:
            data = sock.recv(65536)
        except TimeoutError:
            break
        if not data:
            raise SessionError("peer closed the connection during the OPEN exchange")
        buf = buf[pos:] + data
        pos = 0
    raise SessionError(f"no OPEN/KEEPALIVE from the peer in {timeout:.0f} s")
