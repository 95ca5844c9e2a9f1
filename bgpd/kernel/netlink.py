"""The netlink side of the kernel writer: rtnetlink routes (RFC 3549 section 3.1.1).

Writes go on a raw ``NETLINK_ROUTE`` socket, many messages per ``send``:
each a ``RTM_NEWROUTE`` with ``NLM_F_CREATE | NLM_F_REPLACE`` (a change is one
message) or a ``RTM_DELROUTE``, all with our protocol number and table, so
a delete only ever matches our routes.  A replace matches by table, prefix,
TOS and metric whatever the protocol, so it is used only for a prefix whose
route there is ours; a route not yet ours goes with ``NLM_F_CREATE |
NLM_F_EXCL`` (``KernelRoute.exclusive``), which the kernel refuses with
EEXIST when another protocol has that prefix at that metric: bgpd never
overwrites it (counted as failed, retried with back-off).  Only the last message of a chunk asks for
an ACK: the kernel answers messages in order, so when that ACK arrives every
error of the chunk (an ``NLMSG_ERROR`` naming its sequence number) has too.
That is what makes a full table take seconds, not minutes.

Reading the table (at start, to reconcile) is a raw ``RTM_GETROUTE`` dump
parsed only as far as needed (pyroute2's ``get_routes`` was too slow for a
full table).  Everything here blocks: the writer
calls it from a worker thread, never the reactor's.
"""

from __future__ import annotations

import contextlib
import ctypes
import errno as errno_mod
import os
import socket
import struct
import threading
from collections.abc import Iterator, Sequence
from typing import Any

from bgpd.kernel.tables import table_number
from bgpd.kernel.writer import KernelRoute, Key, NextHop
from bgpd.wire.constants import IPV4_UNICAST, IPV6_UNICAST
from bgpd.wire.nlri import make_prefix

__all__ = ["NetlinkBackend", "dump_covering", "encode_route", "in_netns", "open_event_socket", "table_number"]

NETLINK_ROUTE = 0
SOL_NETLINK = 270
NETLINK_CAP_ACK = 10
NETLINK_EXT_ACK = 11
NLMSG_ERROR = 2
NLMSG_DONE = 3
RTM_NEWROUTE = 24
RTM_DELROUTE = 25
NLM_F_REQUEST = 0x1
NLM_F_ACK = 0x4
NLM_F_REPLACE = 0x100
NLM_F_EXCL = 0x200
NLM_F_CREATE = 0x400
RTA_DST = 1
RTA_OIF = 4
RTA_GATEWAY = 5
RTA_PREFSRC = 7
RTA_PRIORITY = 6
RTA_MULTIPATH = 9
RTA_TABLE = 15
RTN_UNICAST = 1
RT_SCOPE_UNIVERSE = 0
RT_TABLE_UNSPEC = 0
RT_TABLE_MAIN = 254

_HDR = struct.Struct("=IHHII")
_RTMSG = struct.Struct("=BBBBBBBBI")
_RTA = struct.Struct("=HH")
_RTNH = struct.Struct("=HBBi")
_U32 = struct.Struct("=I")
_AF = {1: socket.AF_INET, 2: socket.AF_INET6}
_ALEN = {1: 4, 2: 16}

CLONE_NEWNET = 0x40000000


@contextlib.contextmanager
def in_netns(name: str | None) -> Iterator[None]:
    """Run the block in network namespace ``name`` (``ip netns``), this thread only.

    Sockets made inside stay in that namespace after the block: how the
    tests and ``bench/kernel.py`` point a writer at a namespace of theirs
    while the process stays where it is.
    """
    if name is None:
        yield
        return
    libc = ctypes.CDLL(None, use_errno=True)
    here = os.open(f"/proc/self/task/{threading.get_native_id()}/ns/net", os.O_RDONLY)
    there = os.open(f"/run/netns/{name}", os.O_RDONLY)
    try:
        if libc.setns(there, CLONE_NEWNET) != 0:
            e = ctypes.get_errno()
            raise OSError(e, f"setns {name}: {os.strerror(e)}")
        try:
            yield
        finally:
            if libc.setns(here, CLONE_NEWNET) != 0:
                e = ctypes.get_errno()
                raise OSError(e, f"setns back: {os.strerror(e)}")
    finally:
        os.close(here)
        os.close(there)


def _attr(kind: int, data: bytes) -> bytes:
    n = 4 + len(data)
    return _RTA.pack(n, kind) + data + b"\0" * (-n & 3)


#: nlmsghdr, rtmsg and the RTA_DST header in one pack (the address follows:
#: 4 or 16 octets, so RTA_DST needs no padding)
_HEAD = struct.Struct("=IHHIIBBBBBBBBIHH")
#: zero octets to pad a prefix's address octets to the family's length, by count
_ZEROS = tuple(bytes(n) for n in range(17))


def encode_route(route: KernelRoute, seq: int, table: int, protocol: int, metric: int, ack: bool,
                 ifindex: Any = None, tails: dict | None = None) -> bytes:
    """One RTM_NEWROUTE (replace) or RTM_DELROUTE message for ``route``.

    ``ifindex(name) -> int`` resolves a next hop's interface (link-local).
    ``tails``: a cache of everything after RTA_DST, which depends only on
    the family, the next hops and the source (a full table has few distinct ones).
    """
    ck = (route.family[0], route.nexthops, route.source)
    cached = tails.get(ck) if tails is not None else None
    if cached is None:
        cached = _tail_entry(ck, table, protocol, metric, ifindex)
        if tails is not None:
            tails[ck] = cached
    tail, kind, flags, size, af, alen = cached
    if route.exclusive and flags & NLM_F_REPLACE:
        flags = flags & ~NLM_F_REPLACE | NLM_F_EXCL
    key = route.prefix
    return _HEAD.pack(size, kind, flags | NLM_F_ACK if ack else flags, seq, 0, af, key[0], 0, 0,
                      table if table <= 255 else RT_TABLE_UNSPEC, protocol, RT_SCOPE_UNIVERSE,
                      RTN_UNICAST, 0, 4 + alen, RTA_DST) + key[1:] + _ZEROS[alen + 1 - len(key)] + tail


def _tail_entry(ck: tuple, table: int, protocol: int, metric: int,
                ifindex: Any) -> tuple[bytes, int, int, int, int, int]:
    """What every message with these (afi, next hops, source) shares: the attributes after
    RTA_DST, type, flags (without ACK), message length, address family and address length."""
    afi, hops, source = ck
    af, alen = _AF[afi], _ALEN[afi]
    tail, kind, flags = _tail(af, hops, table, protocol, metric, ifindex, source)
    return tail, kind, flags, _HEAD.size + alen + len(tail), af, alen


def _tail(af: int, hops: tuple, table: int, protocol: int, metric: int,
          ifindex: Any, source: str | None = None) -> tuple[bytes, int, int]:
    """The attributes after RTA_DST, the message type and its flags (without ACK)."""
    body = [_attr(RTA_PRIORITY, _U32.pack(metric))]
    if source is not None and hops:
        body.append(_attr(RTA_PREFSRC, socket.inet_pton(af, source)))
    if table > 255:
        body.append(_attr(RTA_TABLE, _U32.pack(table)))
    if hops:
        kind = RTM_NEWROUTE
        flags = NLM_F_REQUEST | NLM_F_CREATE | NLM_F_REPLACE
        if len(hops) == 1:
            nh, dev = hops[0]
            body.append(_attr(RTA_GATEWAY, socket.inet_pton(af, nh)))
            if dev is not None and ifindex is not None:
                body.append(_attr(RTA_OIF, _U32.pack(ifindex(dev))))
        else:
            parts = []
            for nh, dev in hops:
                gw = _attr(RTA_GATEWAY, socket.inet_pton(af, nh))
                idx = ifindex(dev) if dev is not None and ifindex is not None else 0
                parts.append(_RTNH.pack(_RTNH.size + len(gw), 0, 0, idx) + gw)
            body.append(_attr(RTA_MULTIPATH, b"".join(parts)))
    else:
        kind = RTM_DELROUTE
        flags = NLM_F_REQUEST
    return b"".join(body), kind, flags


class NetlinkBackend:
    """Routes of one protocol in one table, written in chunks on a raw netlink socket."""

    def __init__(self, table: int, protocol: int = 186, metric: int = 20, chunk: int = 10_000,
                 netns: str | None = None) -> None:
        self.table = table
        self.protocol = protocol
        self.metric = metric
        self.chunk = chunk
        self.netns = netns
        self._seq = 0
        #: messages sent: RTM_NEWROUTE (replace) and RTM_DELROUTE
        self.replaced = 0
        self.deleted = 0
        with in_netns(netns):
            s = self._sock = socket.socket(socket.AF_NETLINK, socket.SOCK_RAW, NETLINK_ROUTE)
        # Errors only name the message (not echo it): small answers.
        try:
            s.setsockopt(SOL_NETLINK, NETLINK_CAP_ACK, 1)
        except OSError:
            pass
        for opt in (33, socket.SO_RCVBUF):  # SO_RCVBUFFORCE (root), else the capped one
            try:
                s.setsockopt(socket.SOL_SOCKET, opt, 8 << 20)
                break
            except OSError:
                continue
        # One send per chunk, and the kernel refuses a send larger than the
        # send buffer (EMSGSIZE): a large buffer makes chunks large, and each
        # chunk is two system calls after which the worker waits for the GIL
        # (up to the 5 ms switch interval when the reactor is busy).
        for opt in (32, socket.SO_SNDBUF):  # SO_SNDBUFFORCE (root), else the capped one
            try:
                s.setsockopt(socket.SOL_SOCKET, opt, 8 << 20)
                break
            except OSError:
                continue
        #: one batch at a time on the socket: the writer hands over the next
        #: while this one is written (its sequence numbers, its ACKs)
        self._lock = threading.Lock()
        #: the most octets one send may carry (half the buffer the kernel gave)
        self.send_limit = s.getsockopt(socket.SOL_SOCKET, socket.SO_SNDBUF) // 2
        s.bind((0, 0))
        self._ifindex: dict[str, int] = {}
        #: (afi, next hops) -> the encoded attributes after RTA_DST (see encode_route)
        self._tails: dict = {}

    def _index(self, name: str | int) -> int:
        if isinstance(name, int):
            return name
        i = self._ifindex.get(name)
        if i is None:
            i = self._ifindex[name] = socket.if_nametoindex(name)
        return i

    def apply(self, routes: list[KernelRoute]) -> list[tuple[KernelRoute, int]]:
        """Write ``routes`` (replace, or delete when without next hops); the failures."""
        with self._lock:
            return self._apply(routes)

    def _apply(self, routes: list[KernelRoute]) -> list[tuple[KernelRoute, int]]:
        failures: list[tuple[KernelRoute, int]] = []
        table, proto, metric, index = self.table, self.protocol, self.metric, self._index
        tails = self._tails
        if len(tails) > 4096:
            tails.clear()
        tbl = table if table <= 255 else RT_TABLE_UNSPEC
        pack = _HEAD.pack
        zeros = _ZEROS
        for start in range(0, len(routes), self.chunk):
            # What encode_route does, inline: this loop runs a million times for
            # a full table, on the worker thread but holding the GIL the reactor needs.
            sent: list[KernelRoute] = []
            msgs: list[bytes] = []
            seq = base = self._seq + 1
            deletes = 0
            octets = 0
            for r in routes[start:start + self.chunk]:
                fam, key, hops, src, excl = r
                ck = (fam[0], hops, src)
                cached = tails.get(ck)
                if cached is None:
                    try:
                        cached = tails[ck] = _tail_entry(ck, table, proto, metric, index)
                    except (OSError, ValueError):
                        # A bad address or unknown interface: this route only.
                        failures.append((r, errno_mod.EINVAL))
                        continue
                tail, kind, flags, size, af, alen = cached
                if excl and hops:
                    flags = flags & ~NLM_F_REPLACE | NLM_F_EXCL
                msgs.append(pack(size, kind, flags, seq, 0, af, key[0], 0, 0, tbl, proto, 0, 1, 0,
                                 4 + alen, RTA_DST) + key[1:] + zeros[alen + 1 - len(key)] + tail)
                sent.append(r)
                seq += 1
                octets += size
                if not hops:
                    deletes += 1
            if not sent:
                continue
            last = seq - 1
            self._seq = last
            msgs[-1] = encode_route(sent[-1], last, table, proto, metric, True, index, tails)
            if octets <= self.send_limit:
                self._sock.sendall(b"".join(msgs))
            else:
                self._send_split(msgs)
            self.deleted += deletes
            self.replaced += len(sent) - deletes
            for seq, code in self._acks(last):
                idx = seq - base
                if code and 0 <= idx < len(sent):
                    failures.append((sent[idx], code))
        return failures

    def _send_split(self, msgs: list[bytes]) -> None:
        """Send ``msgs`` in as few sends as the send buffer allows, never splitting one."""
        buf: list[bytes] = []
        n = 0
        for m in msgs:
            if buf and n + len(m) > self.send_limit:
                self._sock.sendall(b"".join(buf))
                buf, n = [], 0
            buf.append(m)
            n += len(m)
        if buf:
            self._sock.sendall(b"".join(buf))

    def remeter(self, routes: list[KernelRoute], metric: int,
                old_only: Sequence[KernelRoute] = ()) -> tuple[list[tuple[KernelRoute, int]], int]:
        """Write ``routes`` at ``metric``, then delete them at the metric they had.

        A route is matched by table, prefix, TOS and metric: the new one is
        a second route until the old one goes, so the prefix is never
        missing.  Returns the failed writes and the count of old routes
        that could not be deleted (one already gone is not counted).
        """
        with self._lock:
            old = self.metric
            self.metric = metric
            self._tails.clear()
            failed = self._apply(routes)
            self.metric = old
            self._tails.clear()
            try:
                gone = self._apply([KernelRoute(r.family, r.prefix, ()) for r in routes]
                                   + [KernelRoute(r.family, r.prefix, ()) for r in old_only])
            finally:
                self.metric = metric
                self._tails.clear()
        return failed, sum(1 for _r, code in gone if code not in (errno_mod.ESRCH, errno_mod.ENOENT))

    def _acks(self, last: int) -> list[tuple[int, int]]:
        """(seq, errno) of every error up to the ACK of ``last`` (errno 0: that ACK)."""
        out = []
        recv = self._sock.recv
        for _ in range(1_000_000):
            data = recv(1 << 20)
            off = 0
            while off + 16 <= len(data):
                n, kind, _flags, seq, _pid = _HDR.unpack_from(data, off)
                if kind == NLMSG_ERROR:
                    (err,) = struct.unpack_from("=i", data, off + 16)
                    out.append((seq, -err))
                    if seq == last:
                        return out
                off += (n + 3) & ~3 if n else len(data)
        raise RuntimeError("netlink: no ACK")

    def dump(self) -> dict[Key, tuple[NextHop, ...]]:
        """Our protocol's routes in our table at our metric, from a raw ``RTM_GETROUTE`` dump.

        Parsed only as far as needed, like :func:`dump_covering`: pyroute2's
        ``IPRoute.get_routes`` read 5,500-9,500 routes/s (measured, 208,000
        routes), so a full table left by an earlier run took minutes to
        read at start, and nothing is written until it is read.
        """
        out: dict[Key, tuple[NextHop, ...]] = {}
        families = {socket.AF_INET: IPV4_UNICAST, socket.AF_INET6: IPV6_UNICAST}
        for af, data, off, n in _route_dump(self.netns, self.protocol, True):
            found = self._route(data, off, n, af)
            if found is not None:
                out[(families[af], found[0])] = found[1]
        return out

    def _route(self, data: bytes, off: int, n: int, af: int) -> tuple[bytes, tuple[NextHop, ...]] | None:
        """(prefix key, next hops) of one RTM_NEWROUTE of ours, or None if of another table or metric."""
        _af, plen, _src, _tos, table, _proto, _scope, rtype, _fl = _RTMSG.unpack_from(data, off + 16)
        if rtype != RTN_UNICAST:
            return None
        alen = 4 if af == socket.AF_INET else 16
        dst = bytes(alen)
        metric = 0
        hops: list[NextHop] = []
        a = off + 16 + _RTMSG.size
        end = off + n
        while a + 4 <= end:
            alen_, akind = _RTA.unpack_from(data, a)
            if alen_ < 4:
                break
            if akind == RTA_TABLE:
                (table,) = _U32.unpack_from(data, a + 4)
            elif akind == RTA_DST:
                dst = data[a + 4:a + 4 + alen]
            elif akind == RTA_PRIORITY:
                (metric,) = _U32.unpack_from(data, a + 4)
            elif akind == RTA_GATEWAY:
                hops.insert(0, (socket.inet_ntop(af, data[a + 4:a + 4 + alen]), None))
            elif akind == RTA_MULTIPATH:
                hops.extend(_gateways(data[a + 4:a + alen_], af))
            a += (alen_ + 3) & ~3
        if table != self.table or metric != self.metric:
            return None
        return make_prefix(dst, plen), tuple(hops)

    def close(self) -> None:
        self._sock.close()


NLM_F_DUMP = 0x300
RTM_GETROUTE = 26
RTMGRP_LINK = 0x1
RTMGRP_IPV4_IFADDR = 0x10
RTMGRP_IPV4_ROUTE = 0x40
RTMGRP_IPV6_IFADDR = 0x100
RTMGRP_IPV6_ROUTE = 0x400


def open_event_socket(netns: str | None = None) -> socket.socket:
    """A netlink socket subscribed to link, address and route events (both families)."""
    with in_netns(netns):
        s = socket.socket(socket.AF_NETLINK, socket.SOCK_RAW, NETLINK_ROUTE)
    try:
        s.setsockopt(socket.SOL_SOCKET, 33, 4 << 20)  # SO_RCVBUFFORCE: a full table of events
    except OSError:
        pass
    s.bind((0, RTMGRP_LINK | RTMGRP_IPV4_IFADDR | RTMGRP_IPV4_ROUTE | RTMGRP_IPV6_IFADDR
            | RTMGRP_IPV6_ROUTE))
    return s


def _gateways(mp: bytes, af: int) -> list[NextHop]:
    """Every gateway of an RTA_MULTIPATH attribute, in order."""
    out: list[NextHop] = []
    off = 0
    for _ in range(len(mp) // _RTNH.size + 1):
        if off + _RTNH.size > len(mp):
            break
        n, _flags, _hops, _ifindex = _RTNH.unpack_from(mp, off)
        if n < _RTNH.size:
            break
        a = off + _RTNH.size
        while a + 4 <= min(off + n, len(mp)):
            alen, kind = _RTA.unpack_from(mp, a)
            if alen < 4:
                break
            if kind == RTA_GATEWAY:
                out.append((socket.inet_ntop(af, mp[a + 4:a + alen]), None))
            a += (alen + 3) & ~3
        off += (n + 3) & ~3
    return out


def _first_gateway(mp: bytes, af: int) -> str | None:
    """The first gateway of an RTA_MULTIPATH attribute (a covering multipath route)."""
    if len(mp) < _RTNH.size:
        return None
    n, _flags, _hops, _ifindex = _RTNH.unpack_from(mp, 0)
    a = _RTNH.size
    while a + 4 <= min(n, len(mp)):
        alen, kind = _RTA.unpack_from(mp, a)
        if alen < 4:
            break
        if kind == RTA_GATEWAY:
            return socket.inet_ntop(af, mp[a + 4:a + alen])
        a += (alen + 3) & ~3
    return None


def dump_covering(tables: tuple[int, ...], own_protocol: int,
                  netns: str | None = None) -> list[tuple[int, int, int, str | None, int]]:
    """``(4 or 6, network int, length, gateway, ifindex)`` of each unicast route in ``tables`` not ours.

    A raw dump, parsed only as far as needed: the main table may hold a full
    table of our own routes, which are skipped by their protocol byte.
    """
    out: list[tuple[int, int, int, str | None, int]] = []
    for af, data, off, n in _route_dump(netns, own_protocol, False):
        rt = _RTMSG.unpack_from(data, off + 16)
        plen, table, rtype = rt[1], rt[4], rt[7]
        if rtype != RTN_UNICAST:
            continue
        version, alen = (4, 4) if af == socket.AF_INET else (6, 16)
        dst = 0
        gw: str | None = None
        oif = 0
        a = off + 16 + _RTMSG.size
        end = off + n
        while a + 4 <= end:
            alen_, akind = _RTA.unpack_from(data, a)
            if alen_ < 4:
                break
            if akind == RTA_TABLE:
                (table,) = _U32.unpack_from(data, a + 4)
            elif akind == RTA_DST:
                dst = int.from_bytes(data[a + 4:a + 4 + alen], "big")
            elif akind == RTA_OIF:
                (oif,) = _U32.unpack_from(data, a + 4)
            elif akind == RTA_GATEWAY:
                gw = socket.inet_ntop(af, data[a + 4:a + 4 + alen])
            elif akind == RTA_MULTIPATH and gw is None:
                gw = _first_gateway(data[a + 4:a + alen_], af)
            a += (alen_ + 3) & ~3
        if table in tables:
            out.append((version, dst, plen, gw, oif))
    return out


def _route_dump(netns: str | None, protocol: int, ours: bool) -> Iterator[tuple[int, bytes, int, int]]:
    """``(address family, buffer, offset, length)`` of each RTM_NEWROUTE of a raw dump, IPv4 then IPv6.

    One ``RTM_GETROUTE`` dump request per family on a socket of its own.
    Only routes whose protocol octet is ``protocol`` (``ours``) or is not
    (``not ours``) are handed out, still in the receive buffer they came in:
    the others, a full table of them maybe, are skipped by that one octet,
    nothing parsed.  The caller parses what it needs.
    """
    with in_netns(netns):
        s = socket.socket(socket.AF_NETLINK, socket.SOCK_RAW, NETLINK_ROUTE)
    try:
        s.setsockopt(socket.SOL_SOCKET, socket.SO_RCVBUF, 1 << 20)
        s.bind((0, 0))
        for seq, af in ((1, socket.AF_INET), (2, socket.AF_INET6)):
            rtm = _RTMSG.pack(af, 0, 0, 0, 0, 0, 0, 0, 0)
            s.sendall(_HDR.pack(_HDR.size + len(rtm), RTM_GETROUTE, NLM_F_REQUEST | NLM_F_DUMP, seq, 0)
                      + rtm)
            done = False
            for _ in range(100_000_000):  # bounded: one receive per buffer of messages
                if done:
                    break
                data = s.recv(1 << 20)
                off = 0
                while off + 16 <= len(data):
                    n, kind, _f, _seq, _pid = _HDR.unpack_from(data, off)
                    if kind == NLMSG_DONE or kind == NLMSG_ERROR:
                        done = True
                        break
                    if n < 16:
                        break
                    # data[off + 21]: rtm_protocol (the rtmsg after the 16-octet header)
                    if kind == RTM_NEWROUTE and (data[off + 21] == protocol) == ours:
                        yield af, data, off, n
                    off += (n + 3) & ~3
    finally:
        s.close()
