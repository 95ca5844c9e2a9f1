"""The monitor service: session history, the Prometheus endpoint, MRT dumps.

It consumes what the other parts already publish: the sessions' state
changes (RFC 4271 section 8) through the bridge's ``watch_state``, the RIB's
tables and counters, the kernel writer's ``status()``.  The service tree
hands those over as a :class:`~bgpd.monitor.metrics.DaemonParts`; nothing
here imports the service tree.  MRT: RFC 6396 section 4.3 (TABLE_DUMP_V2).
"""

from __future__ import annotations

import threading
import time
from collections.abc import Callable
from typing import Any

from twisted.application.service import Service
from twisted.internet import defer, threads
from twisted.logger import Logger
from twisted.python import threadable

from bgpd.config import Config
from bgpd.monitor.bgp4mp import UpdatesLog
from bgpd.monitor.history import SessionHistory
from bgpd.monitor.metrics import DaemonCollector, DaemonParts, LagMonitor, make_registry
from bgpd.monitor.mrt import ADJ_RIB_IN, LOC_RIB, DumpResult, MrtDump, MrtScheduler
from bgpd.wire.address import normalize_address

__all__ = ["DumpError", "DumpResult", "MonitorService"]

log = Logger()


class DumpError(Exception):
    """A dump that cannot start: ``field`` names the argument at fault."""

    def __init__(self, field: str, reason: str) -> None:
        super().__init__(field, reason)
        self.field = field
        self.reason = reason


class MonitorService(Service):
    """History always; metrics with ``[monitor] metrics_listen``; scheduled dumps with ``[mrt]``."""

    name = "monitor"

    def __init__(self, config: Config, parts: DaemonParts, watch_state: Callable[[Any], Any],
                 reactor: Any, wall: Callable[[], float] = time.time,
                 defer_to_thread: Callable[..., Any] | None = None) -> None:
        self.config = config
        self.parts = parts
        self.reactor = reactor
        self.wall = wall
        self.defer_to_thread = defer_to_thread or threads.deferToThread
        self.history = SessionHistory(config.monitor.history_size, wall)
        # Subscribed now, before any session starts: no change goes unrecorded.
        watch_state(self.history.state_changed)
        self._watch_state = watch_state
        #: the [mrt] updates log (BGP4MP), while it runs
        self.updates: UpdatesLog | None = None
        self._unwatch_updates: Any = None
        self.lag: LagMonitor | None = None
        self.collector: DaemonCollector | None = None
        self.registry: Any = None
        self.port: Any = None
        self.scheduler: MrtScheduler | None = None
        if config.monitor.metrics_address is not None:
            self.lag = LagMonitor(reactor)
            self.collector = DaemonCollector(parts, self.history, self.lag, self._on_reactor, reactor)
            self.registry = make_registry(self.collector)

    def _on_reactor(self, fn: Callable[[], Any]) -> Any:
        # prometheus_client's MetricsResource renders on the reactor's thread
        # pool; routing state is read on the reactor thread only.
        if threadable.isInIOThread() or threading.current_thread() is threading.main_thread():
            return fn()
        return threads.blockingCallFromThread(self.reactor, fn)

    def startService(self) -> None:
        super().startService()
        address = self.config.monitor.metrics_address
        if address is not None:
            self._listen(*address)
            assert self.lag is not None
            self.lag.start()
        if self.config.mrt is not None:
            self.scheduler = MrtScheduler(self.config.mrt, self._scheduled_dump,
                                          self.reactor.callLater, self.wall)
            self.scheduler.start()
            if self.config.mrt.updates:
                self._start_updates(self.config.mrt)

    def _start_updates(self, mrt: Any) -> None:
        self.updates = UpdatesLog(mrt, self.reactor.callLater, self.defer_to_thread, self.wall)
        self.updates.start()
        self._unwatch_updates = self._watch_state(self.updates.state_changed)
        self.parts.set_message_tap(self.updates)

    def _stop_updates(self) -> Any:
        log_, self.updates = self.updates, None
        if log_ is None:
            return None
        self.parts.set_message_tap(None)
        if self._unwatch_updates is not None:
            self._unwatch_updates()
            self._unwatch_updates = None
        return log_.stop()

    def _listen(self, host: str, port: int) -> None:
        from prometheus_client.twisted import MetricsResource
        from twisted.web.resource import Resource
        from twisted.web.server import Site

        root = Resource()
        root.putChild(b"metrics", MetricsResource(registry=self.registry))
        site = Site(root)
        site.noisy = False
        try:
            self.port = self.reactor.listenTCP(port, site, interface=host)
        except Exception as e:  # noqa: BLE001 - CannotListenError: the daemon runs on without metrics
            log.error("monitor: cannot serve metrics on {host}:{port}: {error}", host=host,
                      port=port, error=e)
            return
        log.info("monitor: Prometheus metrics on http://{host}:{port}/metrics", host=host,
                 port=self.port.getHost().port)

    def stopService(self) -> Any:
        super().stopService()
        if self.lag is not None:
            self.lag.stop()
        if self.scheduler is not None:
            self.scheduler.stop()
        waits = [self._stop_updates()]
        port, self.port = self.port, None
        if port is not None:
            waits.append(port.stopListening())
        waits = [w for w in waits if w is not None]
        return defer.gatherResults(waits) if waits else None

    def reload(self, config: Config) -> None:
        """A SIGHUP: the history size and the [mrt] schedule follow; the metrics address needs a restart."""
        old, self.config = self.config, config
        self.history.resize(config.monitor.history_size)
        self.history.forget({normalize_address(n.address) for n in config.neighbors})
        if old.monitor.metrics_listen != config.monitor.metrics_listen:
            log.warn("monitor.metrics_listen changed: it applies after a restart of bgpd")
        if old.mrt != config.mrt and self.running:
            if self.scheduler is not None:
                self.scheduler.stop()
                self.scheduler = None
            self._stop_updates()
            if config.mrt is not None:
                self.scheduler = MrtScheduler(config.mrt, self._scheduled_dump,
                                              self.reactor.callLater, self.wall)
                self.scheduler.start()
                if config.mrt.updates:
                    self._start_updates(config.mrt)

    # -- MRT ------------------------------------------------------------------

    def _scheduled_dump(self, table: str, path: str, compression: str) -> defer.Deferred:
        return self.dump(table, path, compression)

    def dump(self, table: str, path: str, compression: str = "none",
             peer: str = "") -> defer.Deferred:
        """Dump ``table`` ("loc-rib" or "adj-rib-in", of ``peer`` or every Established peer) to ``path``.

        Raises :class:`DumpError` for a bad argument; the Deferred fires
        with a :class:`~bgpd.monitor.mrt.DumpResult`, or fails with the
        write's error.
        """
        if table not in (LOC_RIB, ADJ_RIB_IN):
            raise DumpError("table", f"must be {LOC_RIB} or {ADJ_RIB_IN}, got {table!r}")
        if compression not in ("none", "gzip", "bz2"):
            raise DumpError("compression", f"must be none, gzip or bz2, got {compression!r}")
        if not path:
            raise DumpError("file", "required: the file to write")
        infos: list[Any] = []
        if table == LOC_RIB:
            if peer:
                raise DumpError("peer", "the Loc-RIB has no peer; leave peer empty")
        else:
            peers = self.parts.peers()
            if peer:
                try:
                    key = normalize_address(peer)
                except ValueError:
                    raise DumpError("peer", f"not an IP address: {peer!r}") from None
                factory = peers.get(key)
                if factory is None:
                    raise DumpError("peer", f"no neighbor {key}")
                pi = self.parts.peer_info(factory)
                if pi is None:
                    raise DumpError("peer", f"neighbor {key} is not Established")
                infos = [pi]
            else:
                infos = [pi for f in peers.values() if (pi := self.parts.peer_info(f)) is not None]
        bgp = self.config.bgp
        d = MrtDump(self.parts.rib, table, path, infos, bgp.router_id, bgp.local_as,
                    self.reactor.callLater, self.defer_to_thread, compression, self.wall)
        log.info("mrt: dumping the {table} to {path}", table=table, path=path)
        return d.start()

