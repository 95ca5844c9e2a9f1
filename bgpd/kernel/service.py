"""The kernel service: the writer in the service tree, fed by the RIB (RFC 4271 9.1.3).

Subscribes the :class:`~bgpd.kernel.writer.KernelWriter` to the Loc-RIB's
change records, and makes a :class:`~bgpd.kernel.nexthop.NextHopTracker`
the RIB's resolver (RFC 4271 9.1.2.1).  At start the table is read and what an earlier run left is
kept until the table has converged: End-of-RIB (RFC 4724 section 2) from
every configured neighbor for every family it negotiated, or
``reconcile_time`` seconds, whichever comes first.  On stop the routes are
removed unless ``keep_on_stop``.
"""

from __future__ import annotations

from typing import Any

from twisted.application.service import Service
from twisted.internet.threads import deferToThread
from twisted.logger import Logger

from bgpd.config import Config, KernelConfig
from bgpd.kernel.netlink import NetlinkBackend, dump_covering, open_event_socket
from bgpd.kernel.nexthop import NextHopTracker
from bgpd.kernel.writer import FamilyCounts, KernelWriter, WriterOptions
from bgpd.rib import PeerInfo, Rib
from bgpd.wire.address import normalize_address
from bgpd.wire.constants import IPV4_UNICAST, IPV6_UNICAST

__all__ = ["KernelService"]

log = Logger()
Family = tuple[int, int]


class KernelService(Service):
    """Best paths of ``rib`` into the kernel table that ``config.kernel`` names."""

    name = "kernel"

    def __init__(self, config: Config, rib: Rib, reactor: Any, netns: str | None = None,
                 defer_to_thread: Any = None, watch_events: bool = True) -> None:
        kc = config.kernel
        assert kc is not None
        self.kconfig: KernelConfig = kc
        self.rib = rib
        self.reactor = reactor
        fams = set()
        if kc.ipv4:
            fams.add(IPV4_UNICAST)
        if kc.ipv6:
            fams.add(IPV6_UNICAST)
        opts = WriterOptions(families=frozenset(fams), ecmp=kc.ecmp)
        self.writer = KernelWriter(
            lambda: NetlinkBackend(kc.table, kc.protocol, kc.metric, netns=netns),
            opts, reactor.callLater, defer_to_thread or deferToThread)
        tables = (254,) if kc.table == 254 else (254, kc.table)
        self.nexthops = NextHopTracker(
            rib, lambda: dump_covering(tables, kc.protocol, netns),
            (lambda: open_event_socket(netns)) if watch_events else None, kc.protocol,
            reactor.callLater, getattr(reactor, "callFromThread", None),
            defer_to_thread or deferToThread)
        self.writer.forwarding = self.nexthops.forwarding
        self.writer.link_of = self.nexthops.link
        self.nexthops.forwarding_watchers.append(self.writer.rewrite_next_hops)
        #: neighbor address -> families whose End-of-RIB is still awaited (None: not up yet)
        self._waiting: dict[str, set | None] = {
            normalize_address(n.address): None for n in config.neighbors}
        self._timer: Any = None
        self._unsubscribe: list = []
        self._converged = False

    def startService(self) -> None:
        super().startService()
        self._unsubscribe = [self.rib.subscribe(self.writer.changes),
                             self.rib.watch_end_of_rib(self._end_of_rib)]
        self.nexthops.start().addErrback(
            lambda f: log.failure("kernel: cannot read the kernel's routes", f))
        d = self.writer.start()
        d.addErrback(lambda f: log.failure("kernel: cannot open netlink or read the table", f))
        self._timer = self.reactor.callLater(self.kconfig.reconcile_time, self._converge, "timer")
        if not self._waiting:
            self.reactor.callLater(0, self._converge, "no neighbors")

    def _end_of_rib(self, peer: PeerInfo, family: Family, families: frozenset) -> None:
        if self._converged or peer.address not in self._waiting:
            return
        left = self._waiting[peer.address]
        if left is None:
            left = self._waiting[peer.address] = set(families)
        left.discard(family)
        if all(v is not None and not v for v in self._waiting.values()):
            self._converge("End-of-RIB from every neighbor")

    def _converge(self, why: str) -> None:
        if self._converged:
            return
        self._converged = True
        if self._timer is not None and self._timer.active():
            self._timer.cancel()
        self._timer = None
        log.info("kernel: table converged ({why})", why=why)
        self.writer.converged()

    def status(self) -> dict[Family, FamilyCounts]:
        """Per family: routes installed, pending, failed (for ``bgpctl show kernel``)."""
        return self.writer.status()

    def freeze(self) -> None:
        """Shutting down: take no more changes (the sessions' withdrawals must not reach the kernel)."""
        for u in self._unsubscribe:
            u()
        self._unsubscribe = []

    def stopService(self) -> Any:
        super().stopService()
        for u in self._unsubscribe:
            u()
        self._unsubscribe = []
        self.nexthops.stop()
        if self._timer is not None and self._timer.active():
            self._timer.cancel()
        self._timer = None
        return self.writer.stop(keep=self.kconfig.keep_on_stop)
