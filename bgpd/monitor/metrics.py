"""Prometheus metrics of the running daemon, read from its own counters at scrape time.

A custom collector (:class:`DaemonCollector`) walks the sessions, the RIB
and the kernel writer when Prometheus scrapes, so nothing is counted on the
routing path for it: the counters are those the sessions (RFC 4271 section
4: messages by type, section 4.5: NOTIFICATIONs), the RIB and the kernel
writer keep anyway.  Labels are bounded: peers by address, families, message
types, NOTIFICATION code/subcode; never a prefix.

The endpoint is ``twisted.web.server.Site`` with prometheus_client's
``MetricsResource``, which renders on the reactor's thread pool: the
collector therefore takes its snapshot on the reactor thread
(``blockingCallFromThread``), where all routing state lives.

Reactor lag: a LoopingCall every 0.5 s records how late it ran (by the
reactor's clock) in a histogram: a long reactor turn shows as lag.
"""

from __future__ import annotations

from collections.abc import Callable, Iterable, Iterator, Mapping
from typing import Any

import attrs
from prometheus_client.core import (
    CounterMetricFamily,
    GaugeMetricFamily,
    HistogramMetricFamily,
    Metric,
)
from prometheus_client.registry import Collector, CollectorRegistry
from twisted.internet import task
from twisted.logger import Logger

from bgpd.session.fsm import State
from bgpd.wire.constants import FAMILIES_BY_NAME, MsgType, error_name, family_name

__all__ = ["DaemonCollector", "DaemonParts", "LagMonitor", "make_registry", "LAG_BUCKETS"]

log = Logger()

#: Seconds; reactor lag beyond 1 s already risks a 3 s hold time's keepalives.
LAG_BUCKETS = (0.001, 0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1.0, 2.5, 5.0, 10.0)
LAG_INTERVAL = 0.5
_TYPE_NAMES = {int(t): t.name.lower().replace("_", "-") for t in MsgType}


@attrs.frozen
class DaemonParts:
    """What the monitor reads, as the service tree hands it over (no service import).

    ``peers()`` -> address -> the session's PeerFactory; ``peer_info(f)`` ->
    the RIB's PeerInfo of an Established peer or None; ``kernel()`` -> the
    kernel writer's ``status()`` or None without ``[kernel]``; ``rpki()`` ->
    a mapping of RPKI figures (name -> number), or None when there is no
    RPKI status to read (the service tree passes none yet: the RPKI
    service is not on main).
    """

    peers: Callable[[], Mapping[str, Any]]
    peer_info: Callable[[Any], Any]
    rib: Any
    kernel: Callable[[], Mapping | None] = lambda: None
    rpki: Callable[[], Mapping | None] = lambda: None
    #: ``set_message_tap(tap)``: every session's messages to ``tap``
    #: (``bgpd.session.tap.SessionTap``), or to none with None
    set_message_tap: Callable[[Any], None] = lambda tap: None


class LagMonitor:
    """How late a call scheduled every ``interval`` seconds runs, as histogram counts."""

    def __init__(self, clock: Any, interval: float = LAG_INTERVAL,
                 buckets: tuple[float, ...] = LAG_BUCKETS) -> None:
        self.clock = clock
        self.interval = interval
        self.buckets = buckets
        self.counts = [0] * (len(buckets) + 1)
        self.sum = 0.0
        self.n = 0
        self.max = 0.0
        self._due = 0.0
        self._loop: task.LoopingCall | None = None

    def start(self) -> None:
        loop = self._loop = task.LoopingCall(self._tick)
        loop.clock = self.clock
        self._due = self.clock.seconds()
        loop.start(self.interval, now=True)

    def stop(self) -> None:
        if self._loop is not None and self._loop.running:
            self._loop.stop()
        self._loop = None

    def _tick(self) -> None:
        now = self.clock.seconds()
        self.observe(max(0.0, now - self._due))
        # The next run is due one interval from now: a LoopingCall that ran
        # late does not try to catch the missed runs up.
        self._due = now + self.interval

    def observe(self, lag: float) -> None:
        for i, bound in enumerate(self.buckets):
            if lag <= bound:
                self.counts[i] += 1
                break
        else:
            self.counts[-1] += 1
        self.sum += lag
        self.n += 1
        self.max = max(self.max, lag)

    def family(self) -> HistogramMetricFamily:
        running = 0
        buckets = []
        for bound, c in zip(self.buckets, self.counts, strict=False):
            running += c
            buckets.append((repr(bound), running))
        buckets.append(("+Inf", self.n))
        return HistogramMetricFamily(
            "bgpd_reactor_lag_seconds",
            f"How late a call scheduled every {self.interval:g} s ran (reactor busy)",
            buckets=buckets, sum_value=self.sum)


def _in_reactor_thread(fn: Callable[[], Any]) -> Any:
    return fn()


class DaemonCollector(Collector):
    """A prometheus_client collector of the daemon's state, read at scrape time.

    ``on_reactor(fn)`` runs ``fn`` on the reactor thread and returns its
    result (the service passes a ``blockingCallFromThread`` wrapper; tests,
    already on that thread, the default).
    """

    def __init__(self, parts: DaemonParts, history: Any = None, lag: LagMonitor | None = None,
                 on_reactor: Callable[[Callable[[], Any]], Any] = _in_reactor_thread,
                 clock: Any = None) -> None:
        self.parts = parts
        self.history = history
        self.lag = lag
        self.on_reactor = on_reactor
        self.clock = clock

    def describe(self) -> list[Metric]:
        # Without describe() the registry would call collect() at register time.
        return []

    def collect(self) -> Iterator[Metric]:
        yield from self.on_reactor(self.snapshot)

    def snapshot(self) -> list[Metric]:
        """Every metric family, built on the reactor thread."""
        now = self.clock.seconds() if self.clock is not None else None
        out: list[Metric] = []
        out.extend(self._peers(now))
        out.extend(self._rib())
        out.extend(self._kernel())
        out.extend(self._rpki())
        if self.lag is not None:
            out.append(self.lag.family())
        return out

    def _peers(self, now: float | None) -> Iterable[Metric]:
        state = GaugeMetricFamily("bgpd_peer_state", "BGP FSM state (RFC 4271 8.2.2): 1 Idle, "
                                  "2 Connect, 3 Active, 4 OpenSent, 5 OpenConfirm, 6 Established",
                                  labels=["peer"])
        up = GaugeMetricFamily("bgpd_peer_up", "1 when the session is Established", labels=["peer"])
        uptime = GaugeMetricFamily("bgpd_peer_uptime_seconds",
                                   "Seconds Established (0 when not)", labels=["peer"])
        m_in = CounterMetricFamily("bgpd_peer_messages_received",
                                   "BGP messages received on the current connection, by type",
                                   labels=["peer", "type"])
        m_out = CounterMetricFamily("bgpd_peer_messages_sent",
                                    "BGP messages sent on the current connection, by type",
                                    labels=["peer", "type"])
        updates = CounterMetricFamily("bgpd_peer_updates_received",
                                      "UPDATE messages received since bgpd started", labels=["peer"])
        flaps = CounterMetricFamily("bgpd_peer_flaps", "Established sessions that went down",
                                    labels=["peer"])
        est = CounterMetricFamily("bgpd_peer_established_transitions",
                                  "Times the session reached Established", labels=["peer"])
        prefixes = GaugeMetricFamily(
            "bgpd_peer_prefixes", "Prefixes per peer and family: received (pre-policy, only with "
            "soft reconfiguration), accepted (Adj-RIB-In), advertised (the update group's "
            "Adj-RIB-Out)", labels=["peer", "family", "table"])
        rejected = CounterMetricFamily("bgpd_peer_prefixes_rejected",
                                       "Prefixes import policy rejected", labels=["peer"])
        notes = CounterMetricFamily("bgpd_peer_notifications",
                                    "NOTIFICATIONs by direction, code and subcode (RFC 4271 4.5)",
                                    labels=["peer", "direction", "code", "subcode", "name"])
        rib = self.parts.rib
        for address, peer in sorted(self.parts.peers().items()):
            st = peer.state
            state.add_metric([address], int(st))
            established = st is State.ESTABLISHED
            up.add_metric([address], 1 if established else 0)
            since = getattr(peer, "last_state_change", None)
            if established and now is not None and since is not None:
                uptime.add_metric([address], max(0.0, now - since))
            else:
                uptime.add_metric([address], 0)
            proto = peer.protocol_instance
            if proto is not None:
                for counts, family in ((getattr(proto, "in_by_type", None), m_in),
                                       (getattr(proto, "out_by_type", None), m_out)):
                    if counts is None:
                        continue
                    for code, name in _TYPE_NAMES.items():
                        family.add_metric([address, name], counts[code])
            updates.add_metric([address], peer.updates_received)
            est.add_metric([address], peer.established_transitions)
            flaps.add_metric([address], self.history.flaps(address) if self.history is not None
                             else peer.flaps)
            if self.history is not None:
                for (direction, code, subcode), n in sorted(
                        self.history.notification_counts(address).items()):
                    notes.add_metric([address, direction, str(code), str(subcode),
                                      error_name(code, subcode)], n)
            pi = self.parts.peer_info(peer)
            info = peer.session_info
            if pi is None or info is None:
                continue
            for fam in info.families:
                name = family_name(*fam)
                prefixes.add_metric([address, name, "accepted"], rib.adj_rib_in_size(pi, fam))
                if peer.config.soft_reconfiguration_inbound:
                    prefixes.add_metric([address, name, "received"],
                                        len(rib.adj_rib_in(pi, fam, pre_policy=True)))
                g = rib.update_group(pi, fam)
                prefixes.add_metric([address, name, "advertised"], g.sent_count() if g is not None else 0)
            rejected.add_metric([address], rib.rejected(pi))
        return (state, up, uptime, m_in, m_out, updates, est, flaps, prefixes, rejected, notes)

    def _rib(self) -> Iterable[Metric]:
        rib = self.parts.rib
        sizes = GaugeMetricFamily("bgpd_rib_prefixes", "Prefixes per RIB table and family",
                                  labels=["table", "family"])
        adj_in: dict[str, int] = {}
        for peer in self.parts.peers().values():
            pi = self.parts.peer_info(peer)
            info = peer.session_info
            if pi is None or info is None:
                continue
            for fam in info.families:
                name = family_name(*fam)
                adj_in[name] = adj_in.get(name, 0) + rib.adj_rib_in_size(pi, fam)
        for name, fam in FAMILIES_BY_NAME.items():
            sizes.add_metric(["loc-rib", name], rib.loc_rib_size(fam))
            sizes.add_metric(["adj-rib-in", name], adj_in.get(name, 0))
        paths = GaugeMetricFamily("bgpd_rib_attribute_sets",
                                  "Interned (source, attribute set) paths: what the routes share",
                                  value=rib.live_paths())
        stats = rib.stats
        prefixes_in = CounterMetricFamily("bgpd_rib_prefixes_processed",
                                          "Announced prefixes the RIB processed", value=stats.prefixes_in)
        loc_changes = CounterMetricFamily("bgpd_rib_loc_changes", "Loc-RIB best-path changes published",
                                          value=stats.loc_changes)
        turns = CounterMetricFamily("bgpd_rib_turns", "RIB work-queue turns (chunks)", value=stats.turns)
        largest = GaugeMetricFamily("bgpd_rib_largest_turn", "Most work items done in one turn",
                                    value=stats.largest_turn)
        backlog_full = CounterMetricFamily(
            "bgpd_rib_backlog_full", "Times the RIB's work queue filled up and the sessions "
            "stopped being read until it drained (inbound flow control)", value=stats.backlog_full)
        largest_backlog = GaugeMetricFamily("bgpd_rib_largest_backlog",
                                            "Longest RIB work queue a turn began with (items)",
                                            value=stats.largest_backlog)
        return (sizes, paths, prefixes_in, loc_changes, turns, largest, backlog_full, largest_backlog)

    def _kernel(self) -> Iterable[Metric]:
        status = self.parts.kernel()
        if status is None:
            return ()
        routes = GaugeMetricFamily("bgpd_kernel_routes", "Kernel writer routes per family: "
                                   "installed, pending (not yet written), failed (retried)",
                                   labels=["family", "state"])
        for fam, c in sorted(status.items()):
            name = family_name(*fam)
            routes.add_metric([name, "installed"], c.installed)
            routes.add_metric([name, "pending"], c.pending)
            routes.add_metric([name, "failed"], c.failed)
        return (routes,)

    def _rpki(self) -> Iterable[Metric]:
        figures = self.parts.rpki()
        if not figures:
            return ()
        g = GaugeMetricFamily("bgpd_rpki", "RPKI figures (VRPs, ASPAs, cache sessions)",
                              labels=["figure"])
        for name, value in sorted(figures.items()):
            g.add_metric([str(name)], float(value))
        return (g,)


def make_registry(collector: DaemonCollector, process: bool = True) -> CollectorRegistry:
    """A registry of our own (not prometheus_client's global one) holding ``collector``."""
    registry = CollectorRegistry(auto_describe=False)
    registry.register(collector)
    if process:
        from prometheus_client import ProcessCollector

        # CPU, memory, open files of the process: read from /proc/self at scrape time only.
        ProcessCollector(registry=registry)
    return registry
