"""Next-hop resolution against the kernel's own routes (RFC 4271 sections 5.1.3 and 9.1.2.1).

A path is usable only when its NEXT_HOP is directly connected or covered by
a route in the kernel that is not bgpd's own (recursive resolution, as FRR's
zebra and BIRD do): a route in the main table or bgpd's table, of type
unicast, with any protocol but ours, and not the default route (a next hop
reachable only through a default route is not resolved, as in zebra by
default).  Connected subnets are the kernel's ``proto kernel`` routes, so
"onlink" needs no case of its own.

:class:`NextHopTracker` answers the RIB's resolver on the reactor thread from
a snapshot of those routes.  A thread reads netlink route, address and link
events; any that is not about one of our own routes (and ENOBUFS: events
were lost) asks for a resync: the snapshot is read again off the reactor,
and the next hops whose answer changed go to :meth:`Rib.redecide_next_hops`.
Link and address events are resyncs too because the kernel drops the routes
of a link that goes down without a notification per route.
"""

from __future__ import annotations

import errno as errno_mod
import ipaddress
import socket
import sys
import threading
from collections.abc import Callable, Iterable
from typing import Any

from twisted.logger import Logger

__all__ = ["NextHopTracker", "RouteSnapshot"]

log = Logger()

#: (address family 4 or 6, network as an int, prefix length)
Covering = tuple[int, int, int]


class RouteSnapshot:
    """The kernel routes next hops may resolve through; longest match per address.

    Each route is ``(version, network, length)`` or with a fourth item, its
    gateway (None: connected).  The kernel takes only an onlink gateway, so a
    next hop resolved through a route with a gateway is installed through
    that gateway (:meth:`forwarding`), as zebra does.
    """

    def __init__(self, routes: Iterable[tuple] = ()) -> None:
        self._by_len: dict[int, dict[int, dict[int, str | None]]] = {4: {}, 6: {}}
        #: connected routes (no gateway): (version, length, network) -> ifindex
        self._links: dict[tuple[int, int, int], int] = {}
        for r in routes:
            version, net, plen = r[0], r[1], r[2]
            if plen == 0:
                continue  # never through the default route
            gw = r[3] if len(r) > 3 else None
            self._by_len[version].setdefault(plen, {}).setdefault(net, gw)
            if gw is None and len(r) > 4 and r[4]:
                self._links.setdefault((version, plen, net), r[4])
        self._lens = {v: sorted(t, reverse=True) for v, t in self._by_len.items()}

    def __len__(self) -> int:
        return sum(len(s) for t in self._by_len.values() for s in t.values())

    def forwarding(self, address: str | None) -> str | None:
        """The onlink address to install for next hop ``address``, or None when it does not resolve."""
        if not address:
            return None
        try:
            ip = ipaddress.ip_address(address.split("%", 1)[0])
        except ValueError:
            return None
        if ip.version == 6 and ip.is_link_local:
            # Link-local: on the link it was learned on, always direct.
            return address
        bits = 32 if ip.version == 4 else 128
        n = int(ip)
        table = self._by_len[ip.version]
        for plen in self._lens[ip.version]:
            hit = table[plen].get(n >> (bits - plen) << (bits - plen), _MISS)
            if hit is not _MISS:
                return address if hit is None else hit
        return None

    def resolves(self, address: str | None) -> bool:
        """True when a route of the snapshot covers ``address``."""
        return self.forwarding(address) is not None

    def link(self, address: str) -> int | None:
        """The interface index of the connected subnet ``address`` is on, or None."""
        try:
            ip = ipaddress.ip_address(address.split("%", 1)[0])
        except ValueError:
            return None
        bits = 32 if ip.version == 4 else 128
        n = int(ip)
        for plen in self._lens[ip.version]:
            idx = self._links.get((ip.version, plen, n >> (bits - plen) << (bits - plen)))
            if idx is not None:
                return idx
        return None


_MISS: Any = object()


class NextHopTracker:
    """The RIB's live resolver: a kernel route snapshot, resynced on netlink events."""

    def __init__(
        self,
        rib: Any,
        dump: Callable[[], list[Covering]],
        open_events: Callable[[], socket.socket] | None,
        own_protocol: int,
        call_later: Callable[..., Any],
        call_from_thread: Callable[..., Any],
        defer_to_thread: Callable[..., Any],
        debounce: float = 0.2,
    ) -> None:
        self.rib = rib
        self._dump = dump
        self._open_events = open_events
        self.protocol = own_protocol
        self.call_later = call_later
        self._from_thread = call_from_thread
        self._defer = defer_to_thread
        self.debounce = debounce
        self._snapshot: RouteSnapshot | None = None
        #: next hop -> the onlink address it was resolved to (None: unresolvable);
        #: what the RIB decided with and the writer installed
        self._answers: dict[str, str | None] = {}
        #: ``callback(next_hops)``: still resolvable, but through another gateway
        self.forwarding_watchers: list[Callable[[set[str]], None]] = []
        self._resync_handle: Any = None
        self._busy = False
        self._again = False
        self._stop = threading.Event()
        self._thread: threading.Thread | None = None
        self.resyncs = 0

    def resolve(self, next_hop: str | None) -> bool:
        """The RIB's resolver (reactor thread): does ``next_hop`` resolve now?"""
        return self.forwarding(next_hop) is not None

    def forwarding(self, next_hop: str | None) -> str | None:
        """The onlink address to install for ``next_hop`` (None: unresolvable); cached."""
        if next_hop is None:
            return None
        try:
            return self._answers[next_hop]
        except KeyError:
            pass
        snap = self._snapshot
        # Before the first snapshot every next hop resolves as itself; the
        # first resync re-decides the ones that do not.
        a = next_hop if snap is None else snap.forwarding(next_hop)
        self._answers[next_hop] = a
        return a

    def link(self, peer_address: str) -> int | None:
        """The interface a peer is on (for its IPv6 link-local next hops), or None.

        A peer address with a zone (``fe80::2%eth0``) names it; else the
        connected subnet the address is on does.
        """
        if "%" in peer_address:
            try:
                return socket.if_nametoindex(peer_address.split("%", 1)[1])
            except OSError:
                return None
        snap = self._snapshot
        return None if snap is None else snap.link(peer_address)

    def start(self) -> Any:
        """Become the RIB's resolver, read the kernel and start watching it; a Deferred (first read)."""
        self.rib.set_resolver(self.resolve)
        if self._open_events is not None:
            self._thread = threading.Thread(target=self._watch, name="bgpd-nexthop-events", daemon=True)
            self._thread.start()
        return self.resync()

    def stop(self) -> None:
        self._stop.set()
        if self._resync_handle is not None:
            self._resync_handle.cancel()
            self._resync_handle = None

    # -- resync ----------------------------------------------------------------

    def changed(self) -> None:
        """The kernel's routes may have changed (reactor thread): resync soon, once."""
        if self._resync_handle is None and not self._stop.is_set():
            self._resync_handle = self.call_later(self.debounce, self._resync_due)

    def _resync_due(self) -> None:
        self._resync_handle = None
        self.resync()

    def resync(self) -> Any:
        """Read the kernel again and re-decide what changed; a Deferred."""
        from twisted.internet.defer import succeed

        if self._busy:
            self._again = True
            return succeed(None)
        self._busy = True
        d = self._defer(self._dump)
        d.addCallbacks(self._apply, self._failed)
        return d

    def _apply(self, routes: list[Covering]) -> None:
        self._busy = False
        self.resyncs += 1
        snap = self._snapshot = RouteSnapshot(routes)
        old: dict[str, bool] = {}
        moved: set[str] = set()
        for nh, was in list(self._answers.items()):
            now = snap.forwarding(nh)
            if now == was:
                continue
            self._answers[nh] = now
            if (now is None) != (was is None):
                old[nh] = was is not None
            else:
                moved.add(nh)
        if old:
            log.info("kernel: next hops changed: {hops}",
                     hops=", ".join(f"{nh} {'up' if not was else 'down'}" for nh, was in old.items()))
            self.rib.redecide_next_hops(old)
        if moved:
            for cb in list(self.forwarding_watchers):
                cb(moved)
        if self._again:
            self._again = False
            self.changed()

    def _failed(self, failure: Any) -> None:
        self._busy = False
        log.failure("kernel: cannot read the kernel's routes for next-hop resolution", failure)
        self.changed()

    # -- events (the watcher thread) ---------------------------------------------

    def _watch(self) -> None:
        assert self._open_events is not None
        try:
            sock = self._open_events()
        except OSError as e:
            log.error("kernel: cannot watch netlink events: {error}", error=str(e))
            return
        sock.settimeout(0.5)
        try:
            for _ in range(1 << 62):
                if self._stop.is_set():
                    return
                try:
                    data = sock.recv(1 << 20)
                except TimeoutError:
                    continue
                except OSError as e:
                    if e.errno == errno_mod.ENOBUFS:
                        # Events were lost: only a full read is safe.
                        log.warn("kernel: netlink events lost (ENOBUFS): full resync")
                        self._from_thread(self.changed)
                        continue
                    raise
                if relevant(data, self.protocol):
                    self._from_thread(self.changed)
        finally:
            sock.close()


# RTM_NEWLINK 16, DELLINK 17, NEWADDR 20, DELADDR 21, NEWROUTE 24, DELROUTE 25
_LINK_ADDR = frozenset({16, 17, 20, 21})
_ROUTE = frozenset({24, 25})


def relevant(data: bytes, own_protocol: int) -> bool:
    """Whether a batch of netlink messages may change how next hops resolve."""
    off = 0
    n_data = len(data)
    for _ in range(n_data // 16 + 1):
        if off + 16 > n_data:
            break
        n = int.from_bytes(data[off:off + 4], sys.byteorder)
        kind = int.from_bytes(data[off + 4:off + 6], sys.byteorder)
        if kind in _LINK_ADDR:
            return True
        if kind in _ROUTE and off + 22 <= n_data and data[off + 16 + 5] != own_protocol:
            return True
        if n < 16:
            break
        off += (n + 3) & ~3
    return False
