"""The BMP client: bgpd's routes and sessions streamed to BMP stations (RFC 7854).

RFC 7854 section 3.2: the monitored router connects to the station; one TCP
connection per ``[[bmp.collector]]``, re-made with back-off (1 s doubling up
to ``retry_time``) by a Twisted ``ClientService``.  On each connection
(section 5): Initiation (4.3), Peer Up (4.10) for every Established peer
(and the Loc-RIB instance, RFC 9069 section 5), then each view's current
table as Route Monitoring (4.6), an End-of-RIB marker per peer, view and
family (RFC 9069 5 / RFC 8671 5), and from then on the live changes:

- pre-policy Adj-RIB-In: the UPDATEs exactly as received (the session tap);
- post-policy Adj-RIB-In (L flag): the RIB's post-policy changes, re-encoded;
- Adj-RIB-Out (RFC 8671, O and L flags): the UPDATEs the update groups send;
- Loc-RIB (RFC 9069, peer type 3): the Loc-RIB change records;
- Peer Down (4.9) with the NOTIFICATION or FSM event, and Statistics Reports
  (4.8) every ``statistics_interval``: types 0-5 (rejected by policy, known
  duplicate advertisements and withdraws, the three loops), 7 and 9, and 8
  with Loc-RIB monitoring.

The table dump runs in slices of a few thousand routes per reactor turn
(never more than about 0.05 s of work), and waits while the transport is
full (the protocol is its push producer).  Routing never waits for a
station: what cannot be written is queued, and once the queue passes the
station's ``buffer`` bound the session is dropped (Termination, reason
"out of resources"), counted and logged, and the next connection is sent
everything again.

Taps (:mod:`bgpd.session.tap`, :mod:`bgpd.rib.tap`, ``Rib.subscribe``) are
set only while some collector is configured, and only those the configured
views need; with none, the routing path is as it was.
"""

from __future__ import annotations

import functools
import socket
import struct
import time
from collections import deque
from collections.abc import Callable, Iterator
from typing import Any, Protocol, runtime_checkable

from twisted.application.internet import ClientService, backoffPolicy
from twisted.application.service import MultiService, Service
from twisted.internet import endpoints
from twisted.internet.interfaces import IPushProducer
from twisted.internet.protocol import Factory
from twisted.internet.protocol import Protocol as TwistedProtocol
from twisted.logger import Logger
from zope.interface import implementer

from bgpd.config import BmpCollectorConfig, BmpConfig
from bgpd.monitor.bmp import (
    FLAG_A,
    FLAG_L,
    FLAG_O,
    INFO_VRF_TABLE_NAME,
    Initiation,
    MsgType,
    PeerDownMsg,
    PeerHeader,
    PeerType,
    PeerUpMsg,
    Stat,
    StatisticsReport,
    Termination,
    TerminationReason,
    encode,
    end_of_rib,
    route_updates,
)
from bgpd.rib.change import Change
from bgpd.rib.route import PeerInfo
from bgpd.session.tap import IN, PeerDown, PeerUp
from bgpd.wire.address import normalize_address
from bgpd.wire.attributes import PathAttributes
from bgpd.wire.capabilities import FourOctetAS, Multiprotocol
from bgpd.wire.message import encode_message
from bgpd.wire.open import Open

log = Logger()

__all__ = ["BmpHost", "BmpMonitor", "BmpProtocol", "BmpService", "BmpStation"]

PRE = "pre-policy"
POST = "post-policy"
OUT = "adj-rib-out"
LOC = "loc-rib"

_COMMON = struct.Struct("!BIB")
_TS = struct.Struct("!II")
_PEER_FIXED = struct.Struct("!BB8s16sI4s")
_RM = MsgType.ROUTE_MONITORING
#: Routes re-encoded per reactor turn of a table dump, and the time a turn may take.
DUMP_SLICE = 2000
DUMP_TURN_SECONDS = 0.05
#: Messages written per reactor turn of a dump at most (the time bound may stop it sooner).
DUMP_TURN_MESSAGES = 500
#: Octets written per reactor turn of a dump at most: the transport then pauses the dump.
DUMP_TURN_BYTES = 1 << 18
#: The longest wait after a station was dropped for being slow (see BmpStation.overflow).
MAX_DROP_HOLD = 300.0


@runtime_checkable
class BmpHost(Protocol):
    """What the BMP client reads of the daemon (the service implements it)."""

    router_id: str
    local_as: int
    rib: Any

    def established(self) -> list[tuple[Any, PeerUp]]:
        """Every Established peer (its factory) with the record of its session."""

    def peer_info(self, peer: Any) -> PeerInfo | None:
        """The RIB's record of ``peer``'s session, or None (not in the RIB yet)."""


_last_ts: list = [None, b""]


def _timestamp(ts: float) -> bytes:
    """The per-peer header's seconds and microseconds (RFC 7854 4.2)."""
    # Every message of one reactor turn has the same time: encode it once.
    if ts == _last_ts[0]:
        return _last_ts[1]
    seconds = int(ts)
    micros = int((ts - seconds) * 1_000_000)
    data = _TS.pack(seconds, micros if micros < 1_000_000 else 999_999)
    _last_ts[0], _last_ts[1] = ts, data
    return data


def _address16(address: str) -> tuple[bytes, bool]:
    if ":" in address:
        return socket.inet_pton(socket.AF_INET6, address.partition("%")[0]), True
    return b"\x00" * 12 + socket.inet_aton(address), False


class PeerView:
    """One Established peer as BMP shows it: its per-peer headers and what it negotiated."""

    def __init__(self, peer: Any, up: PeerUp) -> None:
        self.peer = peer
        self.up = up
        #: As the RIB's PeerInfo spells it (a link-local peer keeps its zone).
        self.key = normalize_address(peer.config.address)
        #: As the per-peer header carries it (16 octets: no zone).
        self.address = normalize_address(peer.config.address, keep_zone=False)
        info = up.info
        self.asn = info.peer_asn
        self.bgp_id = info.peer_router_id
        neg = info.negotiated
        self.families = tuple(info.families)
        self.addpath_rx = neg.addpath_rx
        self.addpath_tx = neg.addpath_tx
        raw, v6 = _address16(self.address)
        # RFC 7854 4.2 A flag: the UPDATEs as exchanged use 2-octet AS_PATHs.
        legacy = 0 if neg.as4 else FLAG_A
        base = 0x80 if v6 else 0

        def fixed(flags: int) -> bytes:
            return _PEER_FIXED.pack(PeerType.GLOBAL, base | flags, b"\x00" * 8, raw, self.asn,
                                    socket.inet_aton(self.bgp_id))

        #: The per-peer header without its timestamp, per view.
        self.fixed = {PRE: fixed(legacy), POST: fixed(FLAG_L), OUT: fixed(FLAG_O | FLAG_L | legacy),
                      "re-encoded-out": fixed(FLAG_O | FLAG_L), "plain": fixed(0)}
        #: The whole per-peer header of the live views, as stamped this reactor turn:
        #: (the monitor's turn token it was made in, the header).
        self.heads: dict[str, tuple[object, bytes]] = {PRE: (None, b""), POST: (None, b""),
                                                        OUT: (None, b"")}

    def header(self, ts: float = 0.0) -> PeerHeader:
        return PeerHeader(self.address, self.asn, self.bgp_id, ts)

    def peer_up_message(self) -> bytes:
        up = self.up
        local = normalize_address(up.local_address, keep_zone=False)
        if ":" in local and local.startswith("::ffff:") and "." in local:
            local = local[7:]
        return encode(PeerUpMsg(self.header(up.timestamp), local, up.local_port, up.remote_port,
                                up.sent_open, up.received_open))


def route_monitoring(fixed: bytes, ts: bytes, update: bytes) -> bytes:
    """A Route Monitoring message from a per-peer header's parts and an UPDATE PDU."""
    return _COMMON.pack(3, 48 + len(update), _RM) + fixed + ts + update


def _loc_rib_fixed(local_as: int, router_id: str) -> bytes:
    # RFC 9069 4.1: peer type 3, flags 0 (not filtered), address zero,
    # our AS and BGP Identifier.
    return _PEER_FIXED.pack(PeerType.LOC_RIB, 0, b"\x00" * 8, b"\x00" * 16, local_as,
                            socket.inet_aton(router_id))


@implementer(IPushProducer)
class BmpProtocol(TwistedProtocol):
    """One connection to a station: the initial dump, then live messages, bounded.

    Live messages are collected for the rest of the reactor turn and written
    as one string when it ends (``_end_turn``): one ``transport.write`` and
    one count per turn, not per message, which is most of what a message
    cost.  The transport pauses it (IPushProducer) when its send buffer is
    full; while paused, and while the dump runs, the turns' strings wait in
    ``pending``, and ``pending_bytes`` -- those and the turn's messages --
    is what the station's ``buffer`` bound is checked against.
    """

    def __init__(self, station: BmpStation) -> None:
        self.station = station
        #: Strings waiting for the transport (each whole messages), with their message counts.
        self.pending: deque[tuple[bytes, int]] = deque()
        self.pending_bytes = 0
        self.paused = False
        self.dumping = True
        self.closed = False
        #: The current turn's live messages, written by _end_turn.
        self._batch: list[bytes] = []
        self._dump: Iterator[bytes] | None = None
        self._turn: Any = None
        self._turn_end: Any = None
        self._abort: Any = None

    # -- Twisted -------------------------------------------------------------

    def connectionMade(self) -> None:
        self.transport.registerProducer(self, True)
        self.station.connected(self)

    def dataReceived(self, data: bytes) -> None:
        # RFC 7854 3.2: a station sends nothing; whatever comes is ignored.
        pass

    def connectionLost(self, reason: Any = None) -> None:
        self.closed = True
        self._cancel()
        self.pending.clear()
        self._batch = []
        self.pending_bytes = 0
        self.station.disconnected(self, reason)

    def pauseProducing(self) -> None:
        self.paused = True

    def resumeProducing(self) -> None:
        self.paused = False
        if self.closed:
            return
        self._flush()
        if self.dumping and not self.paused:
            self._schedule()

    def stopProducing(self) -> None:
        self.paused = True

    # -- sending ---------------------------------------------------------------

    def start_dump(self, first: list[bytes], dump: Iterator[bytes]) -> None:
        """Write ``first`` (Initiation, Peer Ups), then ``dump`` in slices, then go live."""
        data = b"".join(first)
        self.transport.write(data)
        self.station.count(len(first), len(data))
        self._dump = dump
        self.dumping = True
        self._schedule()

    def send(self, data: bytes) -> None:
        """A live message: written when the turn ends, or queued behind the dump or a full transport."""
        if self.closed:
            return
        self._batch.append(data)
        self.pending_bytes += len(data)
        # The bound is on what must wait: behind the dump, or for a full transport.
        if (self.paused or self.dumping or self.pending) and (
                self.pending_bytes > self.station.config.buffer):
            self.station.overflow(self)
            return
        if self._turn_end is None:
            self._turn_end = self.station.reactor.callLater(0, self._end_turn)

    def _end_turn(self) -> None:
        self._turn_end = None
        batch = self._batch
        if self.closed or not batch:
            return
        self._batch = []
        self.pending.append((b"".join(batch), len(batch)))
        self._flush()

    def _flush(self) -> None:
        pending = self.pending
        transport = self.transport
        while pending and not self.paused and not self.dumping:
            data, n = pending.popleft()
            self.pending_bytes -= len(data)
            transport.write(data)
            self.station.count(n, len(data))

    def _schedule(self) -> None:
        if self._turn is None and not self.closed:
            self._turn = self.station.reactor.callLater(0, self._step)

    def _step(self) -> None:
        self._turn = None
        if self.closed or self.paused or self._dump is None:
            return
        deadline = time.perf_counter() + DUMP_TURN_SECONDS
        dump = self._dump
        out: list[bytes] = []
        size = 0
        for data in dump:
            out.append(data)
            size += len(data)
            n = len(out)
            # The transport pauses the dump once it holds about DUMP_TURN_BYTES.
            if n >= DUMP_TURN_MESSAGES or size >= DUMP_TURN_BYTES or (
                    n % 64 == 0 and time.perf_counter() > deadline):
                break
        else:
            self._dump = None
            self.dumping = False
            self._write_many(out, size)
            self.station.dump_done(self)
            self._flush()
            return
        self._write_many(out, size)
        if not self.paused:
            self._schedule()

    def _write_many(self, out: list[bytes], size: int) -> None:
        if out:
            self.transport.write(b"".join(out))
            self.station.count(len(out), size)

    def drop(self, text: str) -> None:
        """End the session: Termination (if the transport takes it), close, abort if stuck."""
        if self.closed:
            return
        self._cancel()
        self.pending.clear()
        self._batch = []
        self.pending_bytes = 0
        self.dumping = False
        self._dump = None
        self.closed = True
        self.transport.write(encode(Termination.make(TerminationReason.OUT_OF_RESOURCES, text)))
        self.transport.loseConnection()
        # A station that reads nothing never lets the Termination out.
        self._abort = self.station.reactor.callLater(5.0, self.transport.abortConnection)

    def close(self, reason: int = TerminationReason.ADMIN_CLOSE, text: str = "") -> None:
        """A deliberate end (shutdown, collector removed): Termination, then close."""
        if self.closed:
            return
        self._end_turn()  # this turn's messages (a Peer Down at shutdown) go before it
        self._cancel()
        self.closed = True
        self.transport.write(encode(Termination.make(reason, text)))
        self.transport.loseConnection()

    def _cancel(self) -> None:
        for call in (self._turn, self._turn_end, self._abort):
            if call is not None and call.active():
                call.cancel()
        self._turn = None
        self._turn_end = None
        self._abort = None


class _StationFactory(Factory):
    noisy = False

    def __init__(self, station: BmpStation) -> None:
        self.station = station

    def buildProtocol(self, addr: Any) -> BmpProtocol:
        return BmpProtocol(self.station)


def tcp_endpoint(reactor: Any, config: BmpCollectorConfig) -> Any:
    """The client endpoint for a collector's address and port."""
    if ":" in config.address:
        return endpoints.TCP6ClientEndpoint(reactor, config.address, config.port, timeout=10)
    return endpoints.TCP4ClientEndpoint(reactor, config.address, config.port, timeout=10)


class _NotingEndpoint:
    """The station's endpoint, noting why a connection attempt failed (for the API and logs)."""

    def __init__(self, endpoint: Any, station: BmpStation) -> None:
        self.endpoint = endpoint
        self.station = station

    def connect(self, factory: Any) -> Any:
        d = self.endpoint.connect(factory)
        d.addErrback(self.station.connect_failed)
        return d


class BmpStation(Service):
    """One ``[[bmp.collector]]``: its reconnecting connection, counters and views."""

    def __init__(self, config: BmpCollectorConfig, monitor: BmpMonitor, reactor: Any,
                 endpoint: Callable[[Any, BmpCollectorConfig], Any] = tcp_endpoint) -> None:
        self.config = config
        self.name = config.name
        self.monitor = monitor
        self.reactor = reactor
        self.views = frozenset(config.monitoring)
        self.proto: BmpProtocol | None = None
        #: The protocol the live stream goes to: connected and past Initiation
        #: (set through _set_live, which the monitor's per-view lists follow).
        self.live: BmpProtocol | None = None
        self.messages = 0
        self.octets = 0
        self.drops = 0
        self.connects = 0
        self.last_error = ""
        self._stats: Any = None
        #: Drops in a row without a stable session since, and when the next connection may be.
        self._drop_streak = 0
        self._hold_until = 0.0
        self._live_since: float | None = None
        backoff = backoffPolicy(initialDelay=1.0, maxDelay=config.retry_time, factor=2.0)

        def retry(attempt: int) -> float:
            return max(backoff(attempt), self._hold_until - self.reactor.seconds())

        self.client = ClientService(
            _NotingEndpoint(endpoint(reactor, config), self), _StationFactory(self),
            retryPolicy=retry, clock=reactor)

    # -- Service -----------------------------------------------------------------

    def startService(self) -> None:
        super().startService()
        log.info("bmp {name}: connecting to [{addr}]:{port}", name=self.name,
                 addr=self.config.address, port=self.config.port)
        self.client.startService()

    def stopService(self) -> Any:
        super().stopService()
        self._stop_stats()
        if self.proto is not None:
            self.proto.close(TerminationReason.ADMIN_CLOSE, "bgpd stopping or collector removed")
        return self.client.stopService()

    # -- from the protocol -----------------------------------------------------------

    def connected(self, proto: BmpProtocol) -> None:
        self.proto = proto
        self._set_live(proto)
        self.connects += 1
        log.info("bmp {name}: connected to [{addr}]:{port}, sending the tables", name=self.name,
                 addr=self.config.address, port=self.config.port)
        first, dump = self.monitor.initial(self)
        proto.start_dump(first, dump)

    def connect_failed(self, reason: Any) -> Any:
        why = reason.getErrorMessage()
        if why != self.last_error:
            # Once per distinct reason: the back-off retries quietly.
            log.info("bmp {name}: cannot connect to [{addr}]:{port}: {why}", name=self.name,
                     addr=self.config.address, port=self.config.port, why=why)
        self.last_error = why
        return reason

    def dump_done(self, proto: BmpProtocol) -> None:
        log.info("bmp {name}: tables sent ({n} messages so far)", name=self.name, n=self.messages)
        self._live_since = self.reactor.seconds()
        if self.config.statistics_interval > 0 and self._stats is None:
            self._stats = self.reactor.callLater(self.config.statistics_interval, self._report)

    def disconnected(self, proto: BmpProtocol, reason: Any) -> None:
        if proto is self.proto:
            self.proto = None
            self._set_live(None)
            self._stop_stats()
            why = reason.getErrorMessage() if reason is not None else "closed"
            self.last_error = why
            log.info("bmp {name}: connection closed: {why}", name=self.name, why=why)

    def overflow(self, proto: BmpProtocol) -> None:
        """Too much waits for the station: drop it, and wait before the next full dump.

        Each connection starts with every table again; a station that is
        always too slow would have bgpd dump them over and over.  So the
        next connection waits ``retry_time``, doubling with each drop in a
        row up to MAX_DROP_HOLD; a session that stayed up that long since its
        dump ends the streak.
        """
        now = self.reactor.seconds()
        hold = self._drop_hold()
        if self._live_since is not None and now - self._live_since > hold:
            self._drop_streak = 0
        self._drop_streak += 1
        hold = self._drop_hold()
        self._hold_until = now + hold
        self._live_since = None
        self.drops += 1
        text = f"more than {self.config.buffer} octets waiting"
        self.last_error = f"dropped: {text}"
        log.warn("bmp {name}: station too slow, {text}: dropping the session; the next "
                 "connection in {hold:g} s is sent everything again", name=self.name, text=text,
                 hold=hold)
        if proto is self.live:
            self._set_live(None)
        self._stop_stats()
        proto.drop(text)

    def _drop_hold(self) -> float:
        if self._drop_streak == 0:
            return float(self.config.retry_time)
        return min(MAX_DROP_HOLD, max(self.config.retry_time, self.config.retry_time
                                      * 2.0 ** (self._drop_streak - 1)))

    def count(self, messages: int, octets: int) -> None:
        """``messages`` messages of ``octets`` in all were handed to the transport."""
        self.messages += messages
        self.octets += octets

    # -- live ------------------------------------------------------------------------

    def _set_live(self, proto: BmpProtocol | None) -> None:
        self.live = proto
        self.monitor.live_changed()

    def send(self, data: bytes) -> None:
        proto = self.live
        if proto is not None:
            proto.send(data)

    def _report(self) -> None:
        self._stats = None
        for data in self.monitor.statistics():
            self.send(data)
        if self.live is not None:
            self._stats = self.reactor.callLater(self.config.statistics_interval, self._report)

    def _stop_stats(self) -> None:
        if self._stats is not None and self._stats.active():
            self._stats.cancel()
        self._stats = None

    def status(self) -> dict[str, Any]:
        """What the API shows: state, counters, bytes waiting."""
        proto = self.proto
        if proto is None or proto.closed:
            state = "connecting"
        elif proto.dumping:
            state = "dumping"
        else:
            state = "up"
        return {
            "name": self.name, "address": self.config.address, "port": self.config.port,
            "monitoring": tuple(self.config.monitoring), "state": state,
            "messages": self.messages, "octets": self.octets, "drops": self.drops,
            "connects": self.connects,
            "buffered": proto.pending_bytes if proto is not None and not proto.closed else 0,
            "buffer": self.config.buffer, "last_error": self.last_error,
        }


def _guarded(method: Callable[..., None]) -> Callable[..., None]:
    """A tap entry point that never raises into the session or the RIB calling it.

    Monitoring must not break routing: a failure is logged (the first ten,
    then every thousandth) and counted in ``failures``, and routing goes on.
    """
    @functools.wraps(method)
    def run(self: BmpMonitor, *args: Any) -> None:
        try:
            method(self, *args)
        except Exception:  # noqa: BLE001 - see above
            self._failed(method.__name__)
    return run


class BmpMonitor:
    """The taps' side: turns session and RIB events into BMP messages for every station.

    Implements :class:`~bgpd.session.tap.SessionTap`,
    :class:`~bgpd.rib.tap.AdjInTap` and the Loc-RIB subscriber.  A message
    several stations want is encoded once.
    """

    def __init__(self, host: BmpHost, reactor: Any, sys_name: str = "", sys_descr: str = "") -> None:
        self.host = host
        self.reactor = reactor
        self.sys_name = sys_name or socket.gethostname()
        self.sys_descr = sys_descr or "bgpd"
        self.stations: list[BmpStation] = []
        self.views: dict[Any, PeerView] = {}
        self._by_address: dict[str, PeerView] = {}
        #: peer address -> Loc-RIB best paths it holds (Statistics type 8)
        self.loc_counts: dict[str, int] = {}
        self._want: dict[str, tuple[BmpStation, ...]] = {PRE: (), POST: (), OUT: (), LOC: ()}
        #: Per view, the live connections of the stations that want it: the
        #: route messages go straight there (nothing is encoded while none is up).
        self._live: dict[str, tuple[BmpProtocol, ...]] = {PRE: (), POST: (), OUT: (), LOC: ()}
        self._all: tuple[BmpStation, ...] = ()
        #: Tap calls that failed (see _guarded).
        self.failures = 0
        #: This reactor turn's token (see _stamp), and the call that makes the next one.
        self._token = object()
        self._token_call: Any = None

    def set_stations(self, stations: list[BmpStation]) -> None:
        self.stations = list(stations)
        self._all = tuple(stations)
        self._want = {v: tuple(s for s in stations if v in s.views) for v in (PRE, POST, OUT, LOC)}
        self.live_changed()

    def live_changed(self) -> None:
        """A station's live connection came or went: the per-view lists follow."""
        self._live = {v: tuple(s.live for s in st if s.live is not None)
                      for v, st in self._want.items()}

    def wants(self, view: str) -> bool:
        return bool(self._want[view])

    def adopt_established(self) -> None:
        """Learn the sessions up now (at start, or when the taps are set again).

        While no tap was set nothing was heard, so the views are rebuilt,
        and the Loc-RIB counts too when they are kept.
        """
        self.views = {}
        self._by_address = {}
        for peer, up in self.host.established():
            self._add_view(peer, up)
        self.loc_counts = {}
        if self._want[LOC]:
            rib = self.host.rib
            counts = self.loc_counts
            for family in ((1, 1), (2, 1)):
                for _p, path in rib.loc_rib(family):
                    a = path.owner.info.address
                    counts[a] = counts.get(a, 0) + 1

    def _add_view(self, peer: Any, up: PeerUp) -> PeerView:
        view = PeerView(peer, up)
        self.views[peer] = view
        self._by_address[view.key] = view
        return view

    # -- the reactor turn ------------------------------------------------------------------

    def _stamp(self, view: PeerView, kind: str, ts: float) -> bytes:
        """``view``'s header for ``kind``, stamped with ``ts``, kept for the rest of the turn.

        RFC 7854 4.2 leaves the timestamp's precision to the implementation:
        every message of one reactor turn about one peer and view carries the
        time of the first (a turn reads what arrived together), so the header
        is made once per turn, not once per message.
        """
        token = self._token
        if self._token_call is None:
            self._token_call = self.reactor.callLater(0, self._next_turn)
        head = view.fixed[kind] + _timestamp(ts)
        view.heads[kind] = (token, head)
        return head

    def _next_turn(self) -> None:
        self._token_call = None
        self._token = object()

    def _failed(self, what: str) -> None:
        """Count and log a failed tap call (see _guarded); called in its except clause.

        The per-message entry points (message, adj_in_changed) catch inline
        rather than through _guarded: one call less per message.
        """
        self.failures += 1
        if self.failures <= 10 or self.failures % 1000 == 0:
            log.failure("bmp: {what} failed (failure {n}); routing goes on", what=what,
                        n=self.failures)

    # -- SessionTap ---------------------------------------------------------------------

    def message(self, peer: Any, direction: str, timestamp: float, data: bytes) -> None:
        try:
            if data[18] != 2:
                return  # only UPDATEs are monitored (Route Mirroring is not)
            view = self.views.get(peer)
            if view is None:
                return
            kind = PRE if direction == IN else OUT
            targets = self._live[kind]
            if not targets:
                return
            token, head = view.heads[kind]
            if token is not self._token:
                head = self._stamp(view, kind, timestamp)
            msg = _COMMON.pack(3, 48 + len(data), _RM) + head + data
            for proto in targets:
                proto.send(msg)
        except Exception:  # noqa: BLE001 - monitoring must not break routing (see _guarded)
            self._failed("message")

    @_guarded
    def session_up(self, peer: Any, up: PeerUp) -> None:
        view = self._add_view(peer, up)
        if self._all:
            msg = view.peer_up_message()
            for station in self._all:
                station.send(msg)

    @_guarded
    def session_down(self, peer: Any, down: PeerDown) -> None:
        view = self.views.pop(peer, None)
        if view is None:
            return
        if self._by_address.get(view.key) is view:
            del self._by_address[view.key]
        msg = encode(PeerDownMsg.make(view.header(down.timestamp), down.reason,
                                      notification=down.notification, fsm_event=down.fsm_event))
        for station in self._all:
            station.send(msg)

    # -- AdjInTap (post-policy) -----------------------------------------------------------

    def adj_in_changed(self, peer: PeerInfo, family: tuple[int, int],
                       attributes: PathAttributes | None, keys: list) -> None:
        try:
            targets = self._live[POST]
            if not targets:
                return
            view = self._by_address.get(peer.address)
            if view is None:
                return
            token, head = view.heads[POST]
            if token is not self._token:
                head = self._stamp(view, POST, self.reactor.seconds())
            pack = _COMMON.pack
            for update in route_updates(family, attributes, keys, family in view.addpath_rx):
                msg = pack(3, 48 + len(update), _RM) + head + update
                for proto in targets:
                    proto.send(msg)
        except Exception:  # noqa: BLE001 - monitoring must not break routing (see _guarded)
            self._failed("adj_in_changed")

    # -- Loc-RIB subscriber (RFC 9069) -----------------------------------------------------

    @_guarded
    def loc_rib_changed(self, changes: list[Change]) -> None:
        counts = self.loc_counts
        for c in changes:
            if c.old is not None:
                a = c.old.owner.info.address
                counts[a] = counts.get(a, 0) - 1
            if c.new is not None:
                a = c.new.owner.info.address
                counts[a] = counts.get(a, 0) + 1
        targets = self._live[LOC]
        if not targets or not changes:
            return
        fixed = _loc_rib_fixed(self.host.local_as, self.host.router_id)
        ts = _timestamp(self.reactor.seconds())
        for family, attributes, keys in _grouped(changes):
            for update in route_updates(family, attributes, keys):
                msg = route_monitoring(fixed, ts, update)
                for proto in targets:
                    proto.send(msg)

    # -- a new connection ---------------------------------------------------------------

    def initial(self, station: BmpStation) -> tuple[list[bytes], Iterator[bytes]]:
        """Initiation and the Peer Ups, and the table dump that follows them (RFC 7854 5)."""
        first = [encode(Initiation.make(self.sys_name, self.sys_descr))]
        views = list(self.views.values())
        first += [v.peer_up_message() for v in views]
        if LOC in station.views:
            first.append(self._loc_rib_peer_up())
        return first, self._dump(station, views)

    def _loc_rib_peer_up(self) -> bytes:
        # RFC 9069 5.1: the OPENs are made up (the Loc-RIB has no session),
        # the received one a copy of the sent; the VRF/Table Name TLV is required.
        opens = encode_message(Open.make(self.host.local_as, 0, self.host.router_id,
                                         (Multiprotocol(1, 1), Multiprotocol(2, 1),
                                          FourOctetAS(self.host.local_as))))
        header = PeerHeader("0.0.0.0", self.host.local_as, self.host.router_id,
                            self.reactor.seconds(), peer_type=PeerType.LOC_RIB)
        return encode(PeerUpMsg(header, "0.0.0.0", 0, 0, opens, opens,
                                ((INFO_VRF_TABLE_NAME, b"global"),)))

    def _dump(self, station: BmpStation, views: list[PeerView]) -> Iterator[bytes]:
        rib = self.host.rib
        ts = _timestamp(0.0)  # RFC 7854 4.2: 0, the time a dumped route came is not kept
        for view in views:
            info = self.host.peer_info(view.peer)
            for family in view.families:
                tables: list[tuple[bytes, Callable[[], dict], bool]] = []
                if PRE in station.views:
                    tables.append((view.fixed["plain"], _pre_table(rib, info, family),
                                   family in view.addpath_rx))
                if POST in station.views:
                    tables.append((view.fixed[POST], _post_table(rib, info, family),
                                   family in view.addpath_rx))
                for fixed, table, addpath in tables:
                    yield from _dump_table(fixed, ts, family, table, addpath)
                    yield route_monitoring(fixed, ts, end_of_rib(family))
                if OUT in station.views:
                    fixed = view.fixed["re-encoded-out"]
                    yield from _dump_out(fixed, ts, rib, info, family, family in view.addpath_tx)
                    yield route_monitoring(fixed, ts, end_of_rib(family))
        if LOC in station.views:
            fixed = _loc_rib_fixed(self.host.local_as, self.host.router_id)
            for family in sorted({f for v in views for f in v.families} | {(1, 1), (2, 1)}):
                yield from _dump_loc(fixed, ts, rib, family)
                yield route_monitoring(fixed, ts, end_of_rib(family))

    def statistics(self) -> list[bytes]:
        """One Statistics Report per Established peer (RFC 7854 4.8)."""
        rib = self.host.rib
        out = []
        now = self.reactor.seconds()
        for view in self.views.values():
            info = self.host.peer_info(view.peer)
            if info is None:
                continue
            cluster, as_path, originator = rib.loop_rejects(info)
            # Types 1 and 2 as the RIB knows them without per-prefix state (Rib.duplicates).
            dup_adverts, dup_withdraws = rib.duplicates(info)
            stats: list[tuple[int, object]] = [(Stat.REJECTED_BY_POLICY, rib.rejected(info)),
                                               (Stat.DUPLICATE_PREFIX, dup_adverts),
                                               (Stat.DUPLICATE_WITHDRAW, dup_withdraws),
                                               (Stat.CLUSTER_LIST_LOOP, cluster),
                                               (Stat.AS_PATH_LOOP, as_path),
                                               (Stat.ORIGINATOR_ID_LOOP, originator)]
            total = 0
            per_family = []
            for family in view.families:
                n = len(rib.adj_rib_in(info, family))
                total += n
                per_family.append((Stat.ADJ_RIB_IN_ROUTES_FAMILY, (family[0], family[1], n)))
            stats.append((Stat.ADJ_RIB_IN_ROUTES, total))
            if self._want[LOC]:
                # Counted from the Loc-RIB records, which flow only with loc-rib monitoring on.
                stats.append((Stat.LOC_RIB_ROUTES, max(0, self.loc_counts.get(view.key, 0))))
            stats += per_family
            out.append(encode(StatisticsReport(view.header(now), tuple(stats))))
        return out


def _grouped(changes: list[Change]) -> Iterator[tuple[tuple[int, int], PathAttributes | None, list]]:
    """Consecutive changes of one family and one outcome, as (family, attributes, prefixes)."""
    fam: Any = None
    attrs: Any = None
    keys: list = []
    for c in changes:
        a = c.new.attrs if c.new is not None else None
        if c.family != fam or a is not attrs:
            if keys:
                yield fam, attrs, keys
            fam, attrs, keys = c.family, a, []
        keys.append(c.prefix)
    if keys:
        yield fam, attrs, keys


def _pre_table(rib: Any, info: PeerInfo | None, family: tuple[int, int]) -> Callable[[], dict]:
    def table() -> dict:
        if info is None:
            return {}
        try:
            return rib.adj_rib_in(info, family, pre_policy=True)
        except ValueError:
            # No soft reconfiguration: the pre-policy table is not kept, so
            # only the UPDATEs that arrive from now on can be shown.
            return {}
    return table


def _post_table(rib: Any, info: PeerInfo | None, family: tuple[int, int]) -> Callable[[], dict]:
    return lambda: {} if info is None else rib.adj_rib_in(info, family)


def _dump_out(fixed: bytes, ts: bytes, rib: Any, info: PeerInfo | None, family: tuple[int, int],
              addpath: bool) -> Iterator[bytes]:
    """The Adj-RIB-Out towards a peer, a slice of the Loc-RIB's prefixes at a time.

    The update group computes what it sent per prefix (its export policy
    applied), so the whole table at once would be seconds of one turn.
    """
    if info is None:
        return
    keys = list(rib.loc_table(family))
    for i in range(0, len(keys), DUMP_SLICE):
        sent = rib.adj_rib_out(info, family, keys[i:i + DUMP_SLICE])
        groups: dict[int, tuple[PathAttributes, list]] = {}
        for k, a in sent.items():
            if a is None:
                continue
            g = groups.get(id(a))
            if g is None:
                g = groups[id(a)] = (a, [])
            g[1].append(k)
        for a, ks in groups.values():
            for update in route_updates(family, a, ks, addpath):
                yield route_monitoring(fixed, ts, update)


def _attrs_of(value: Any) -> PathAttributes | None:
    if value is None:
        return None
    if isinstance(value, PathAttributes):
        return value
    return value.attrs  # a Path


def _dump_table(fixed: bytes, ts: bytes, family: tuple[int, int], table: Callable[[], dict],
                addpath: bool) -> Iterator[bytes]:
    """A table's routes in slices; each slice reads the table as it is then."""
    keys = list(table())
    for i in range(0, len(keys), DUMP_SLICE):
        current = table()
        groups: dict[int, tuple[PathAttributes, list]] = {}
        for k in keys[i:i + DUMP_SLICE]:
            a = _attrs_of(current.get(k))
            if a is None:
                continue  # gone since the dump began: its withdrawal is queued
            g = groups.get(id(a))
            if g is None:
                g = groups[id(a)] = (a, [])
            g[1].append(k)
        for a, ks in groups.values():
            for update in route_updates(family, a, ks, addpath):
                yield route_monitoring(fixed, ts, update)


def _dump_loc(fixed: bytes, ts: bytes, rib: Any, family: tuple[int, int]) -> Iterator[bytes]:
    keys = list(rib.loc_table(family))
    for i in range(0, len(keys), DUMP_SLICE):
        groups: dict[int, tuple[PathAttributes, list]] = {}
        for p in keys[i:i + DUMP_SLICE]:
            best = rib.best(family, p)
            if best is None:
                continue
            a = best.attrs
            g = groups.get(id(a))
            if g is None:
                g = groups[id(a)] = (a, [])
            g[1].append(p)
        for a, ks in groups.values():
            for update in route_updates(family, a, ks):
                yield route_monitoring(fixed, ts, update)


class BmpService(MultiService):
    """``[bmp]``: one :class:`BmpStation` per collector, and the taps they need.

    ``attach(needs)`` is the service tree's hook: it sets or clears the
    session tap, the RIB's post-policy tap and the Loc-RIB subscription,
    given which views the configured stations want.
    """

    name = "bmp"

    def __init__(self, config: BmpConfig, host: BmpHost, reactor: Any,
                 attach: Callable[[BmpMonitor | None, bool, bool], None],
                 endpoint: Callable[[Any, BmpCollectorConfig], Any] = tcp_endpoint) -> None:
        super().__init__()
        self.config = config
        self.reactor = reactor
        self.endpoint = endpoint
        self.monitor = BmpMonitor(host, reactor, config.sys_name, config.sys_descr)
        self._attach = attach
        #: What the taps were last set for: (any station, post-policy, loc-rib).
        self._wired: tuple[bool, bool, bool] | None = None
        self.stations: dict[str, BmpStation] = {}
        self._build(config)

    def _build(self, config: BmpConfig) -> None:
        stations = {}
        for c in config.collectors:
            st = self.stations.get(c.name)
            if st is None:
                st = BmpStation(c, self.monitor, self.reactor, self.endpoint)
                st.setServiceParent(self)
            stations[c.name] = st
        self.stations = stations  # in config order
        self.monitor.set_stations(list(stations.values()))

    def _wire(self) -> None:
        """Set the taps the stations' views need, when that changed.

        Setting them again rebuilds the peer views from the sessions up now
        and, with Loc-RIB monitoring, counts the Loc-RIB once: a reload
        that changes no view costs nothing.
        """
        m = self.monitor
        want = (bool(self.stations), m.wants(POST), m.wants(LOC))
        if want == self._wired:
            return
        self._wired = want
        if self.stations:
            m.adopt_established()
            self._attach(m, want[1], want[2])
        else:
            self._attach(None, False, False)

    def startService(self) -> None:
        self._wire()
        super().startService()

    def stopService(self) -> Any:
        d = super().stopService()
        self._attach(None, False, False)
        self._wired = None
        return d

    def reload(self, config: BmpConfig) -> None:
        """SIGHUP: collectors added start, removed ones stop, changed ones start again."""
        wanted = {c.name: c for c in config.collectors}
        for name, st in list(self.stations.items()):
            if wanted.get(name) != st.config:
                log.info("bmp {name}: removed or changed in the config", name=name)
                del self.stations[name]
                st.disownServiceParent()
        self.config = config
        self.monitor.sys_name = config.sys_name or socket.gethostname()
        self.monitor.sys_descr = config.sys_descr or "bgpd"
        self._build(config)
        if self.running:
            self._wire()

    def status(self) -> list[dict[str, Any]]:
        return [st.status() for st in self.stations.values()]
