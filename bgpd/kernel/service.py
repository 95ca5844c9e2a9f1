"""The kernel service: the writer in the service tree, fed by the RIB (RFC 4271 9.1.3).

Subscribes the :class:`~bgpd.kernel.writer.KernelWriter` to the Loc-RIB's
change records, and makes a :class:`~bgpd.kernel.nexthop.NextHopTracker`
the RIB's resolver (RFC 4271 9.1.2.1).  At start the table is read and what an earlier run left is
kept until the table has converged: End-of-RIB (RFC 4724 section 2) from
every configured neighbor for every family it negotiated, or
``reconcile_time`` seconds, whichever comes first.  On stop the routes are
removed unless ``keep_on_stop``.

``[kernel] export_policy`` runs on each best path first (:mod:`bgpd.kernel.export`).
A reload (SIGHUP, or an API policy change) applies what can change live:
the metric (routes are written at the new one before the old ones go),
``ecmp``, ``keep_on_stop``, the export policy or the policies it names,
and ``ipv4`` / ``ipv6`` (a family turned on is installed from the Loc-RIB,
one turned off is removed); the Loc-RIB's best paths are run through the
new settings in chunks, a reactor turn each.  ``table`` and ``protocol``
apply after a restart (one log line says so).
"""

from __future__ import annotations

from typing import Any

import attrs
from twisted.application.service import Service
from twisted.internet.threads import deferToThread
from twisted.logger import Logger

from bgpd.config import Config, KernelConfig, policy_inputs
from bgpd.kernel.export import KernelExport
from bgpd.kernel.netlink import NetlinkBackend, dump_covering, open_event_socket
from bgpd.kernel.nexthop import NextHopTracker
from bgpd.kernel.writer import FamilyCounts, KernelWriter, WriterOptions
from bgpd.rib import Change, Path, PeerInfo, Rib
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
        self.config = config
        opts = WriterOptions(families=_families(kc), ecmp=kc.ecmp)
        self.writer = KernelWriter(
            lambda: NetlinkBackend(kc.table, kc.protocol, kc.metric, netns=netns),
            opts, reactor.callLater, defer_to_thread or deferToThread)
        tables = (254,) if kc.table == 254 else (254, kc.table)
        self.nexthops = NextHopTracker(
            rib, lambda: dump_covering(tables, kc.protocol, netns),
            (lambda: open_event_socket(netns)) if watch_events else None, kc.protocol,
            reactor.callLater, getattr(reactor, "callFromThread", None),
            defer_to_thread or deferToThread)
        self.writer.export = self._export(kc)
        self.writer.forwarding = self.nexthops.forwarding
        self.writer.link_of = self.nexthops.link
        self.nexthops.forwarding_watchers.append(self.writer.rewrite_next_hops)
        #: neighbor address -> families whose End-of-RIB is still awaited (None: not up yet)
        self._waiting: dict[str, set | None] = {
            normalize_address(n.address): None for n in config.neighbors}
        self._timer: Any = None
        self._unsubscribe: list = []
        self._converged = False
        #: the re-evaluation in progress: (family, prefixes left) per family, and its next turn
        self._refeed: list[tuple[tuple[int, int], list[bytes]]] = []
        self._refeed_call: Any = None
        #: Loc-RIB prefixes run through the writer again per reactor turn (reload)
        self.refeed_chunk = 20_000

    def _export(self, kc: KernelConfig) -> KernelExport | None:
        return KernelExport(kc.export_policy, self.rib.policies) if kc.export_policy else None

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

    def path_state(self, family: Family, prefix: bytes, path: Path, best: bool) -> str:
        """Whether ``path`` (of ``prefix``) is in the kernel: a writer state, or ``not-selected``.

        ``best``: it is the prefix's best path.  With ``ecmp`` another path
        of the multipath set is installed with the best one; any other path
        is ``not-selected``.  A family the writer does not handle is ``""``.
        """
        if family not in self.writer.options.families:
            return ""
        if not best:
            if not (self.writer.options.ecmp and self.rib.options.max_paths > 1):
                return "not-selected"
            if all(p is not path for p in self.rib.multipath(family, prefix)):
                return "not-selected"
        return self.writer.state(family, prefix)

    # -- reload ----------------------------------------------------------------

    def reload(self, config: Config) -> None:
        """Take a new config's ``[kernel]`` and policies (SIGHUP, ReplacePolicy): what can change live.

        The RIB already holds the new policy registry (``RibService.reload`` ran first).
        """
        old, self.config = self.config, config
        okc = self.kconfig
        kc = config.kernel
        if kc is None:
            log.warn("kernel: [kernel] was removed: its routes are removed; restart bgpd to stop "
                     "the kernel writer")
            kc = attrs.evolve(okc, ipv4=False, ipv6=False, export_policy=())
        restart = [name for name in ("table", "protocol")
                   if getattr(kc, name) != getattr(okc, name)]
        if restart:
            log.warn("kernel: {keys} changed: {these} after a restart of bgpd; the running "
                     "writer keeps {values}", keys=", ".join(f"kernel.{n}" for n in restart),
                     these="it applies" if len(restart) == 1 else "they apply",
                     values=", ".join(f"{n} {getattr(okc, n)}" for n in restart))
            kc = attrs.evolve(kc, table=okc.table, protocol=okc.protocol)
        self.kconfig = kc
        writer = self.writer
        refeed: set[Family] = set()
        fams = _families(kc)
        if fams != writer.options.families or kc.ecmp != okc.ecmp:
            refeed |= fams if kc.ecmp != okc.ecmp else fams - writer.options.families
            writer.set_options(attrs.evolve(writer.options, families=fams, ecmp=kc.ecmp))
        if kc.export_policy != okc.export_policy or _chain_inputs(old, okc.export_policy) != \
                _chain_inputs(config, kc.export_policy):
            log.info("kernel: export policy changed ({names}): re-evaluating the kernel's routes",
                     names=", ".join(kc.export_policy) or "none")
            writer.export = self._export(kc)
            refeed |= fams
        if kc.metric != okc.metric:
            log.info("kernel: metric {old} -> {new}: rewriting the routes", old=okc.metric, new=kc.metric)
            writer.set_metric(kc.metric)
        if refeed:
            self.reevaluate(refeed)

    def reevaluate(self, families: set[Family]) -> None:
        """Run every best path of ``families`` through the writer again, in chunks (a turn each)."""
        done = {f for f, _keys in self._refeed}
        for fam in sorted(families - done):
            self._refeed.append((fam, list(self.rib.loc_table(fam))))
        if self._refeed_call is None and self._refeed:
            self._refeed_call = self.reactor.callLater(0, self._refeed_turn)

    def _refeed_turn(self) -> None:
        self._refeed_call = None
        rib = self.rib
        multipath = rib.options.max_paths > 1
        budget = self.refeed_chunk
        batch: list[Change] = []
        while self._refeed and budget > 0:
            fam, keys = self._refeed[0]
            take, rest = keys[-budget:], keys[:-budget]
            if rest:
                self._refeed[0] = (fam, rest)
            else:
                self._refeed.pop(0)
            budget -= len(take)
            for prefix in take:
                b = rib.best(fam, prefix)
                mp = () if b is None else tuple(rib.multipath(fam, prefix)) if multipath else (b,)
                batch.append(Change(fam, prefix, b, b, mp))
        if batch:
            self.writer.changes(batch)
        if self._refeed:
            self._refeed_call = self.reactor.callLater(0, self._refeed_turn)

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
        if self._refeed_call is not None and self._refeed_call.active():
            self._refeed_call.cancel()
        self._refeed_call = None
        self._refeed = []
        if self._timer is not None and self._timer.active():
            self._timer.cancel()
        self._timer = None
        return self.writer.stop(keep=self.kconfig.keep_on_stop)


def _families(kc: KernelConfig) -> frozenset:
    fams = set()
    if kc.ipv4:
        fams.add(IPV4_UNICAST)
    if kc.ipv6:
        fams.add(IPV6_UNICAST)
    return frozenset(fams)


def _chain_inputs(config: Config, names: tuple[str, ...]) -> tuple:
    """What a chain behaves by in ``config``: equal inputs, equal decisions for every route."""
    return tuple(policy_inputs(config, name) for name in names)
