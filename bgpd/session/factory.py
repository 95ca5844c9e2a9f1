"""One configured peer: its RFC 4271 state machine, timers and connections.

The :class:`PeerFactory` is the controller of section 8: it keeps the session
attributes, turns every input (a timer, a TCP event, a decoded message) into
an :class:`~bgpd.session.fsm.Event`, asks the pure table in ``fsm.py`` what
to do, and does it.  Its Protocols only frame bytes and report back.

Also here: connection collision detection (RFC 4271 6.8, RFC 6286 2.3),
idle hold with exponential back-off for a flapping peer (8.1.1
DampPeerOscillations), timer jitter (section 10), max-prefix (RFC 4486 Cease
subcode 1), administrative shutdown and reset with an RFC 9003 message,
TCP-MD5 and GTSM transports.  A passive peer never connects out.

What the session learns goes to a :class:`SessionListener`, the one
declared interface the session reports to (the service's bridge to the RIB
implements it); the session never imports the RIB.  The Factory in turn
implements the :class:`~bgpd.session.protocol.ProtocolController` its
Protocols report to, so imports go one way: factory -> protocol.
"""

from __future__ import annotations

import random as _random
import socket
import struct
from typing import Any, Protocol, runtime_checkable

from twisted.internet import tcp
from twisted.internet.interfaces import IReactorTCP, IReactorTime, ISystemHandle
from twisted.internet.protocol import ClientFactory
from twisted.logger import Logger
from twisted.python.failure import Failure

from bgpd.config import NeighborConfig
from bgpd.session import sockopts
from bgpd.session.fsm import (
    NO_FLAGS,
    Action,
    Event,
    Flags,
    State,
    fsm_error_subcode,
    keepalive_interval,
    step,
)
from bgpd.session.negotiation import LARGE_HOLD_TIME, SessionInfo, local_open, negotiate
from bgpd.session.protocol import BGPProtocol
from bgpd.session.tap import DownReason, PeerDown, PeerUp, SessionTap
from bgpd.wire.constants import FAMILIES_BY_NAME, FAMILY_NAMES, CeaseError, ErrorCode, OpenError
from bgpd.wire.errors import NotificationError
from bgpd.wire.message import Keepalive, Message, encode_message
from bgpd.wire.notification import Notification
from bgpd.wire.open import Open
from bgpd.wire.refresh import RouteRefresh
from bgpd.wire.update import Update

log = Logger()

_A = Action
_E = Event
_S = State


@runtime_checkable
class SessionListener(Protocol):
    """What the rest of bgpd hears from a session (implemented by the service).

    Every method is required: the Factory calls each one directly, so an
    implementation that ignores an event says so with an empty method.
    """

    def session_established(self, peer: PeerFactory, info: SessionInfo) -> None:
        """The session entered Established with the negotiated ``info``."""

    def session_down(self, peer: PeerFactory, reason: str, graceful: bool) -> None:
        """The session left Established; ``graceful``: keep its routes (RFC 4724)."""

    def updates_received(self, peer: PeerFactory, updates: list[Update]) -> None:
        """UPDATEs arrived in Established, in order (RFC 7606 problems already
        attached): a run of consecutive ones from one read, or one."""

    def refresh_requested(self, peer: PeerFactory, refresh: RouteRefresh) -> None:
        """The peer asked for our routes again (RFC 2918, RFC 7313)."""

    def state_changed(self, peer: PeerFactory, old: State, new: State, reason: str) -> None:
        """The FSM moved from ``old`` to ``new``."""

    def output_resumed(self, peer: PeerFactory) -> None:
        """The peer's send buffer drained: :meth:`PeerFactory.writable` is True again."""

    def peer_config_changed(
        self, peer: PeerFactory, old: NeighborConfig, new: NeighborConfig
    ) -> None:
        """The neighbor's config changed without needing a new session (SIGHUP)."""


class NullListener:
    """A listener that ignores everything (tests, or a peer with no RIB yet)."""

    def session_established(self, peer: PeerFactory, info: SessionInfo) -> None:
        pass

    def session_down(self, peer: PeerFactory, reason: str, graceful: bool) -> None:
        pass

    def updates_received(self, peer: PeerFactory, updates: list[Update]) -> None:
        pass

    def refresh_requested(self, peer: PeerFactory, refresh: RouteRefresh) -> None:
        pass

    def state_changed(self, peer: PeerFactory, old: State, new: State, reason: str) -> None:
        pass

    def output_resumed(self, peer: PeerFactory) -> None:
        pass

    def peer_config_changed(
        self, peer: PeerFactory, old: NeighborConfig, new: NeighborConfig
    ) -> None:
        pass


class _Client(tcp.Client):
    """A TCP client whose socket is prepared (MD5, GTSM) before connect()."""

    def __init__(self, host: str, port: int, bindAddress: Any, connector: Any, reactor: Any,
                 setup: Any) -> None:
        self._bgpd_setup = setup
        super().__init__(host, port, bindAddress, connector, reactor)

    def createInternetSocket(self) -> Any:
        sock = super().createInternetSocket()
        self._bgpd_setup(sock)
        return sock


class _Connector(tcp.Connector):
    def __init__(self, host: str, port: int, factory: ClientFactory, timeout: float,
                 bindAddress: Any, reactor: Any, setup: Any) -> None:
        self._bgpd_setup = setup
        super().__init__(host, port, factory, timeout, bindAddress, reactor)

    def _makeTransport(self) -> _Client:
        return _Client(self.host, self.port, self.bindAddress, self, self.reactor, self._bgpd_setup)


class _Timer:
    """A named one-shot timer on the injected clock; cancel/start are idempotent."""

    __slots__ = ("clock", "call", "fire")

    def __init__(self, clock: IReactorTime, fire: Any) -> None:
        self.clock = clock
        self.fire = fire
        self.call = None

    @property
    def running(self) -> bool:
        return self.call is not None and self.call.active()

    def start(self, seconds: float) -> None:
        self.stop()
        self.call = self.clock.callLater(max(0.0, seconds), self._fired)

    def stop(self) -> None:
        if self.call is not None:
            if self.call.active():
                self.call.cancel()
            self.call = None

    def _fired(self) -> None:
        self.call = None
        self.fire()


class PeerFactory(ClientFactory):
    """The controller of one configured BGP peer."""

    protocol = BGPProtocol
    noisy = False

    def __init__(
        self,
        config: NeighborConfig,
        router_id: str,
        listener: SessionListener | None = None,
        reactor: Any = None,
        random: Any = None,
        route_server: bool = False,
        hostname: str | None = None,
    ) -> None:
        if reactor is None:
            from twisted.internet import reactor as _reactor

            reactor = _reactor
        self.config = config
        self.router_id = router_id
        self.listener: SessionListener = listener or NullListener()
        self.reactor = reactor
        self.random = random or _random.random
        self.route_server = route_server
        self.local_open: Open = local_open(config, router_id, hostname)

        self.state = _S.IDLE
        self.protocol_: BGPProtocol | None = None  # the connection the FSM runs on
        self.pending: BGPProtocol | None = None  # a second connection (collision, 6.8)
        self.connector: Any = None
        self.session_info: SessionInfo | None = None
        self.enabled = config.enabled
        self.connect_retry_counter = 0
        #: Error exits since the last stable session (the back-off, see _next_idle_hold).
        self.errors_since_stable = 0
        self._error_exit = False
        self._prefix_hold = False
        self.hold_time = 0
        self._hold_value = 0.0
        self._hold_base = 0.0
        self._error: NotificationError | None = None
        self._cease: Notification | None = None
        self._down_reason = ""
        self._graceful_down = False
        self._restart_after: float | None = None
        self._in_handle = False
        self._queue: list[tuple[Event, Any]] = []
        #: What a monitor sees (BMP, MRT): every message, session up and down.
        self.tap: SessionTap | None = None
        #: The Established session's connection and OPENs (None when not Established).
        self.peer_up: PeerUp | None = None
        #: How the last session ended (None before the first one did).
        self.last_down: PeerDown | None = None
        # For the Peer Down record: the event being run, and the NOTIFICATION
        # sent while running it, if any.
        self._event: Event | None = None
        self._event_ctx: Any = None
        self._sent_now: Notification | None = None
        self._deconfigured = False

        self.connect_retry_timer = _Timer(reactor, lambda: self.handle(_E.CONNECT_RETRY_TIMER_EXPIRES))
        self.hold_timer = _Timer(reactor, self._hold_expired)
        self.keepalive_timer = _Timer(reactor, lambda: self.handle(_E.KEEPALIVE_TIMER_EXPIRES))
        self.delay_open_timer = _Timer(reactor, lambda: self.handle(_E.DELAY_OPEN_TIMER_EXPIRES))
        self.idle_hold_timer = _Timer(reactor, lambda: self.handle(_E.IDLE_HOLD_TIMER_EXPIRES))
        self.stable_timer = _Timer(reactor, self._stable)

        # Counters for the API and monitoring.
        self.established_transitions = 0
        self.flaps = 0
        self.last_state_change = self.reactor.seconds()
        self.last_error = ""
        self.last_notification_sent: Notification | None = None
        self.last_notification_received: Notification | None = None
        self.prefix_counts: dict[str, int] = {}
        self._prefix_warned: set[str] = set()
        self.updates_received = 0

    # -- identity --------------------------------------------------------

    @property
    def address(self) -> str:
        return self.config.address

    @property
    def protocol_instance(self) -> BGPProtocol | None:
        return self.protocol_

    def __repr__(self) -> str:
        return f"<PeerFactory {self.config.address} AS{self.config.remote_as} {self.state.name}>"

    # -- operator actions ----------------------------------------------------

    def start(self) -> None:
        """Start the peer (ManualStart, passive or not)."""
        self.enabled = True
        self._restart_after = None
        self._down_reason = ""
        self._deconfigured = False
        if self.config.passive:
            self.handle(_E.MANUAL_START_WITH_PASSIVE_TCP_ESTABLISHMENT)
        else:
            self.handle(_E.MANUAL_START)

    def stop(self, message: str = "", subcode: int = CeaseError.ADMINISTRATIVE_SHUTDOWN) -> None:
        """Administrative shutdown (RFC 4486 subcode 2, RFC 9003 message); stays down."""
        self.enabled = False
        self.idle_hold_timer.stop()
        if subcode in (CeaseError.ADMINISTRATIVE_SHUTDOWN, CeaseError.ADMINISTRATIVE_RESET):
            self._cease = Notification.shutdown(message, subcode == CeaseError.ADMINISTRATIVE_RESET)
        else:
            self._cease = Notification(ErrorCode.CEASE, subcode)
        self._down_reason = f"administrative stop: {message}" if message else "administrative stop"
        self.handle(_E.MANUAL_STOP)
        self._cease = None

    def reset(self, message: str = "") -> None:
        """Administrative reset (Cease subcode 4) and start again at once."""
        self.stop(message, CeaseError.ADMINISTRATIVE_RESET)
        self.errors_since_stable = 0
        self._error_exit = False
        self.start()

    def deconfigure(self) -> None:
        """The peer was removed from the config (Cease subcode 3)."""
        self._deconfigured = True
        self.stop("", CeaseError.PEER_DECONFIGURED)
        self._close_pending()

    # -- the state machine -----------------------------------------------

    def flags(self, ctx: Any = None) -> Flags:
        """The session attributes and running state the table's guards read.

        For a received OPEN (``ctx`` is its SessionInfo) the negotiated hold
        time is the one that OPEN brings, not the previous connection's.
        """
        info = ctx if isinstance(ctx, SessionInfo) else self.session_info
        return Flags(
            delay_open=self.config.delay_open_time > 0,
            delay_open_timer_running=self.delay_open_timer.running,
            damp_peer_oscillations=True,
            idle_hold_timer_running=self.idle_hold_timer.running,
            passive=self.config.passive,
            hold_time_zero=info is not None and info.hold_time == 0,
            accept_while_idle=(
                self.enabled and self.idle_hold_timer.running and not self._prefix_hold
            ),
        )

    def handle(self, event: Event, ctx: Any = None) -> None:
        """Run one event through the table; events raised meanwhile are queued."""
        if self._in_handle:
            self._queue.append((event, ctx))
            return
        self._in_handle = True
        try:
            self._run(event, ctx)
            while self._queue:
                ev, c = self._queue.pop(0)
                self._run(ev, c)
        finally:
            self._in_handle = False
        if self.state is _S.IDLE and self.enabled and not self.idle_hold_timer.running:
            self._schedule_restart()

    def _run(self, event: Event, ctx: Any) -> None:
        old = self.state
        self._event = event
        self._event_ctx = ctx
        self._sent_now = None
        transition = step(old, event, self.flags(ctx) if event not in _NO_FLAG_EVENTS else NO_FLAGS)
        established = False
        for action in transition.actions:
            if action is _A.SESSION_ESTABLISHED:
                established = True
                continue
            self._do(action, old, ctx)
        new = transition.next_state
        if new is not old:
            self.state = new
            self.last_state_change = self.reactor.seconds()
            reason = self._reason(event, ctx)
            # The one log line per change is the listener's (bgpd.monitor.history).
            self.listener.state_changed(self, old, new, reason)
            if new is _S.IDLE:
                # Idle "refuses all incoming BGP connections": a second
                # connection kept for collision detection goes too.
                self._close_pending(self._cease)
        if established:
            self._established()

    def _reason(self, event: Event, ctx: Any) -> str:
        if isinstance(ctx, NotificationError):
            return f"{event.rfc_name}: {ctx}"
        if isinstance(ctx, Notification):
            return f"{event.rfc_name}: {ctx.describe()}"
        if self._down_reason:
            return f"{event.rfc_name}: {self._down_reason}"
        return event.rfc_name

    def _do(self, action: Action, old: State, ctx: Any) -> None:
        proto = self.protocol_
        if action is _A.INITIALIZE_RESOURCES or action is _A.COMPLETE_BGP_INITIALIZATION:
            pass
        elif action is _A.RELEASE_RESOURCES:
            self.hold_timer.stop()
            self.keepalive_timer.stop()
            self.delay_open_timer.stop()
            self.stable_timer.stop()
        elif action is _A.START_CONNECT_RETRY_TIMER or action is _A.RESTART_CONNECT_RETRY_TIMER:
            # A passive peer never connects (README: "never connect to it"),
            # so it needs no timer whose expiry (Event 9) would make it.
            if not self.config.passive:
                self.connect_retry_timer.start(self.config.connect_retry_time * self._jitter())
        elif action is _A.STOP_CONNECT_RETRY_TIMER:
            self.connect_retry_timer.stop()
        elif action is _A.ZERO_CONNECT_RETRY_COUNTER:
            self.connect_retry_counter = 0
        elif action is _A.INCREMENT_CONNECT_RETRY_COUNTER:
            self.connect_retry_counter += 1
        elif action is _A.INITIATE_TCP_CONNECTION:
            self._connect()
        elif action is _A.LISTEN_FOR_CONNECTION:
            pass  # the shared listener hands us connections in any state; we decide
        elif action is _A.PROCESS_TCP_CONNECTION:
            pass
        elif action is _A.REJECT_TCP_CONNECTION:
            if isinstance(ctx, BGPProtocol) and ctx is not self.protocol_:
                ctx.controller = None
                ctx.close()
        elif action is _A.DROP_TCP_CONNECTION:
            self._drop_connection()
        elif action is _A.TRACK_SECOND_CONNECTION:
            pass  # see connection_made: the collision procedure keeps it
        elif action is _A.SEND_OPEN:
            # Once per connection: a connection adopted after a collision may
            # have carried our OPEN already.
            if proto is not None and not proto.open_sent:
                proto.send(self.local_open)
        elif action is _A.SEND_KEEPALIVE:
            if proto is not None:
                proto.send_keepalive()
        elif action is _A.SEND_NOTIFICATION_CEASE:
            self._notify(self._cease or Notification(ErrorCode.CEASE, 0))
        elif action is _A.SEND_NOTIFICATION_HOLD_TIMER_EXPIRED:
            self._notify(Notification(ErrorCode.HOLD_TIMER_EXPIRED, 0))
        elif action is _A.SEND_NOTIFICATION_FSM_ERROR:
            self._notify(Notification(ErrorCode.FSM, fsm_error_subcode(old)))
        elif action is _A.SEND_NOTIFICATION_FROM_ERROR:
            if isinstance(ctx, NotificationError):
                self._notify(Notification.from_error(ctx))
        elif action is _A.START_HOLD_TIMER_LARGE:
            self._start_hold(LARGE_HOLD_TIME)
        elif action is _A.START_HOLD_TIMER_NEGOTIATED:
            if self.hold_time:
                self._start_hold(self.hold_time)
            else:
                self.hold_timer.stop()
        elif action is _A.RESTART_HOLD_TIMER:
            self._hold_base = self.reactor.seconds()
        elif action is _A.STOP_HOLD_TIMER:
            self.hold_timer.stop()
        elif action is _A.START_KEEPALIVE_TIMER or action is _A.RESTART_KEEPALIVE_TIMER:
            if self.hold_time:
                self.keepalive_timer.start(keepalive_interval(self.hold_time, self._jitter()))
        elif action is _A.STOP_KEEPALIVE_TIMER:
            self.keepalive_timer.stop()
        elif action is _A.START_DELAY_OPEN_TIMER:
            self.delay_open_timer.start(self.config.delay_open_time)
        elif action is _A.STOP_DELAY_OPEN_TIMER:
            self.delay_open_timer.stop()
        elif action is _A.START_IDLE_HOLD_TIMER:
            self.idle_hold_timer.start(self._next_idle_hold())
        elif action is _A.STOP_IDLE_HOLD_TIMER:
            self.idle_hold_timer.stop()
        elif action is _A.PEER_OSCILLATION_DAMPING:
            # Only an error lengthens the next wait (see _next_idle_hold): a
            # Cease the peer sent on purpose is no oscillation to damp.
            self.flaps += 1
            self._error_exit = not _deliberate_cease(ctx)
        elif action is _A.PROCESS_OPEN:
            self._process_open(ctx)
        elif action is _A.PROCESS_UPDATE:
            self._process_update(ctx)
        elif action is _A.SESSION_DOWN:
            self._session_down()
        else:  # pragma: no cover - the table and this dispatcher are tested together
            raise AssertionError(f"unhandled action {action}")

    # -- actions ----------------------------------------------------------

    def _jitter(self) -> float:
        # RFC 4271 section 10: a random factor between 0.75 and 1.0.
        return 0.75 + 0.25 * self.random()

    @property
    def idle_hold_time(self) -> float:
        """The wait before the automatic restart after the next error exit."""
        return self._back_off(self.errors_since_stable + 1)

    def _back_off(self, errors: int) -> float:
        # idle_hold_time doubled for each error after the first, up to
        # max_idle_hold_time; 0 stays 0 (no idle hold at all).  The exponent
        # is capped so that a peer failing for years cannot overflow it.
        cfg = self.config
        base = float(cfg.idle_hold_time)
        return min(base * 2 ** min(max(errors - 1, 0), 32), max(float(cfg.max_idle_hold_time), base))

    def _next_idle_hold(self) -> float:
        """How long Idle holds before the automatic restart just scheduled.

        README "Idle hold and back-off": idle_hold_time after a session
        ended without an error; after an error, idle_hold_time doubled for
        each earlier error since the last stable session, up to
        max_idle_hold_time.  A prefix limit's restart_time wins over both.
        """
        error, self._error_exit = self._error_exit, False
        if error:
            self.errors_since_stable += 1
        self._prefix_hold = self._restart_after is not None
        if self._restart_after is not None:
            value = self._restart_after
            self._restart_after = None
            return value
        if not error:
            return float(self.config.idle_hold_time)
        return self._back_off(self.errors_since_stable)

    def _start_hold(self, seconds: float) -> None:
        self._hold_value = float(seconds)
        self._hold_base = self.reactor.seconds()
        self.hold_timer.start(seconds)

    def _hold_expired(self) -> None:
        # The timer is not reset for every message received (that would cost a
        # heap operation per UPDATE); RESTART_HOLD_TIMER records the time and
        # the expiry checks it.
        left = self._hold_base + self._hold_value - self.reactor.seconds()
        if left > 0.001:
            self.hold_timer.start(left)
            return
        proto = self.protocol_
        if proto is not None and proto.input_held:
            # We stopped reading (hold_input): the peer's KEEPALIVEs wait in
            # the socket, unread, so their absence says nothing of the peer.
            # The RIB's queue drains in well under a second; look again then.
            self.hold_timer.start(1.0)
            return
        self._down_reason = f"hold timer expired ({self._hold_value:g}s)"
        self.handle(_E.HOLD_TIMER_EXPIRES)

    def _notify(self, notification: Notification) -> None:
        proto = self.protocol_
        if proto is None:
            return
        self.last_notification_sent = notification
        self._sent_now = notification
        log.warn("peer {peer}: sending NOTIFICATION {n}", peer=self.config.address,
                 n=notification.describe())
        proto.notify_and_close(notification)

    def _drop_connection(self) -> None:
        proto = self.protocol_
        self.protocol_ = None
        self.session_info = None
        self.hold_time = 0
        if proto is not None:
            proto.controller = None
            proto.close()
        if self.connector is not None:
            connector = self.connector
            self.connector = None
            _stop_connecting(connector)

    def _close_pending(self, notification: Notification | None = None) -> None:
        if self.pending is not None:
            pending = self.pending
            self.pending = None
            pending.controller = None
            if notification is not None:
                pending.notify_and_close(notification)
            else:
                pending.close()

    def _connect(self) -> None:
        if self.connector is not None or self.protocol_ is not None or self.config.passive:
            return
        # A new attempt: the previous one's failure is no reason for what follows.
        self._down_reason = ""
        cfg = self.config
        bind = (cfg.local_address, 0) if cfg.local_address else None
        timeout = max(1.0, min(30.0, float(cfg.connect_retry_time)))
        if cfg.md5_password or cfg.ttl_security:
            connector = _Connector(cfg.address, cfg.port, self, timeout, bind, self.reactor,
                                   self._prepare_socket)
            self.connector = connector
            connector.connect()
        else:
            self.connector = IReactorTCP(self.reactor).connectTCP(
                cfg.address, cfg.port, self, timeout=timeout, bindAddress=bind)

    def _prepare_socket(self, sock: Any) -> None:
        cfg = self.config
        if cfg.md5_password:
            sockopts.set_md5(sock, cfg.address, cfg.md5_password)
        if cfg.ttl_security:
            sockopts.set_gtsm(sock, cfg.ttl_security)

    def _process_open(self, ctx: Any) -> None:
        info = ctx
        proto = self.protocol_
        if not isinstance(info, SessionInfo) or proto is None:
            return
        self.session_info = info
        self.hold_time = info.hold_time
        proto.session_info = info
        proto.set_negotiated(info.negotiated)

    def _process_update(self, update: Any) -> None:
        if isinstance(update, Update):
            self._deliver_updates([update])

    def _deliver_updates(self, updates: list[Update]) -> None:
        self.updates_received += len(updates)
        for update in updates:
            if update.problems:
                for problem in update.problems:
                    log.warn("peer {peer}: UPDATE error handled per RFC 7606: {problem}",
                             peer=self.config.address, problem=str(problem))
        self.listener.updates_received(self, updates)

    def _established(self) -> None:
        info = self.session_info
        self.peer_up = self._peer_up_record(info)
        if self.tap is not None and self.peer_up is not None:
            # Before the RIB hears of it: the first UPDATEs we send follow.
            self.tap.session_up(self, self.peer_up)
        self.established_transitions += 1
        self.prefix_counts = {}
        self._prefix_warned = set()
        # Back-off is forgiven once the session has been stable for a while.
        self.stable_timer.start(max(60.0, 3.0 * max(self.hold_time, 1)))
        # RFC 4271 6.8: a connection colliding with an Established one is
        # closed; the one still waiting for its OPEN can no longer win.
        self._close_pending(_collision_cease())
        log.info("peer {peer} established: AS{asn} id {rid} hold {hold}s families {fams}",
                 peer=self.config.address, asn=info.peer_asn, rid=info.peer_router_id,
                 hold=info.hold_time,
                 fams=",".join(FAMILY_NAMES.get(f, str(f)) for f in info.families))
        self.listener.session_established(self, info)

    def _stable(self) -> None:
        self.errors_since_stable = 0

    def _session_down(self) -> None:
        reason = self._down_reason or "session closed"
        graceful = self._graceful_down
        self._graceful_down = False
        self.peer_up = None
        self.last_down = self._peer_down_record(reason)
        if self.tap is not None:
            self.tap.session_down(self, self.last_down)
        self.listener.session_down(self, reason, graceful)

    def _peer_up_record(self, info: SessionInfo | None) -> PeerUp | None:
        proto = self.protocol_
        if proto is None or info is None or proto.transport is None:
            return None
        try:
            host, peer = proto.transport.getHost(), proto.transport.getPeer()
            local = (host.host, host.port)
            remote = (peer.host, peer.port)
        except AttributeError:
            # Not an IP transport (tests, UNIX sockets): no addresses to show.
            local, remote = ("0.0.0.0", 0), (self.config.address, 0)
        sent = proto.sent_open_raw or encode_message(self.local_open)
        return PeerUp(timestamp=self.reactor.seconds(), local_address=local[0],
                      local_port=local[1], remote_address=remote[0], remote_port=remote[1],
                      sent_open=sent, received_open=proto.received_open_raw, info=info)

    def _peer_down_record(self, text: str) -> PeerDown:
        """RFC 7854 4.9: who closed the session, and the NOTIFICATION or FSM event."""
        now = self.reactor.seconds()
        event, ctx = self._event, self._event_ctx
        if self._deconfigured:
            return PeerDown(now, DownReason.DECONFIGURED, text=text)
        if self._sent_now is not None:
            return PeerDown(now, DownReason.LOCAL_NOTIFICATION,
                            notification=encode_message(self._sent_now), text=text)
        if isinstance(ctx, Notification) and event in (_E.NOTIF_MSG, _E.NOTIF_MSG_VER_ERR):
            return PeerDown(now, DownReason.REMOTE_NOTIFICATION,
                            notification=encode_message(ctx), text=text)
        if event is _E.TCP_CONNECTION_FAILS:
            return PeerDown(now, DownReason.REMOTE_NO_NOTIFICATION, text=text)
        return PeerDown(now, DownReason.LOCAL_NO_NOTIFICATION,
                        fsm_event=int(event) if event is not None else 0, text=text)

    def _schedule_restart(self) -> None:
        # Back in Idle while enabled: come back after IdleHoldTime (damped
        # automatic start, RFC 4271 8.1.1 / Events 6 and 7).
        if self.config.passive:
            self.handle(_E.AUTOMATIC_START_WITH_DAMP_PEER_OSCILLATIONS_AND_PASSIVE_TCP_ESTABLISHMENT)
        else:
            self.handle(_E.AUTOMATIC_START_WITH_DAMP_PEER_OSCILLATIONS)

    # -- transport events (from the connector, the listener, protocols) -----

    def buildProtocol(self, addr: Any) -> BGPProtocol:
        proto = BGPProtocol(self, outbound=True)
        proto.factory = self
        return proto

    def clientConnectionFailed(self, connector: Any, reason: Failure) -> None:
        if connector is not self.connector:
            return
        self.connector = None
        self.last_error = f"connect to {self.config.address} failed: {reason.getErrorMessage()}"
        log.debug("peer {peer}: {error}", peer=self.config.address, error=self.last_error)
        self._down_reason = self.last_error
        self.handle(_E.TCP_CONNECTION_FAILS)

    def clientConnectionLost(self, connector: Any, reason: Failure) -> None:
        pass  # reported by the protocol's connectionLost

    def connection_made(self, proto: BGPProtocol) -> None:
        """A TCP connection is up, ours (outbound) or accepted by the listener."""
        self._configure_transport(proto)
        if self.tap is not None:
            proto.set_tap(self.tap, self.reactor)
        if proto.outbound:
            if self.connector is None or self.protocol_ is not None:
                # A connect we gave up on completed anyway.
                proto.controller = None
                proto.close()
                return
            self.connector = None
            self.protocol_ = proto
            self._down_reason = ""
            self.handle(_E.TCP_CR_ACKED)
            return
        self._incoming(proto)

    def _incoming(self, proto: BGPProtocol) -> None:
        if self.state is _S.IDLE and self.enabled:
            self._down_reason = ""  # the last session's reason is no reason for this one
            # Accepted (to Active) while an automatic restart is pending; the
            # table refuses it otherwise (administrative stop, prefix limit).
            self.handle(_E.TCP_CONNECTION_VALID, proto)
        if not self.enabled or self.state is _S.IDLE:
            log.info("peer {peer}: refusing connection in {state}", peer=self.config.address,
                     state=self.state.name)
            proto.controller = None
            proto.close()
            return
        if self.state in (_S.CONNECT, _S.ACTIVE) and self.protocol_ is None:
            log.info("peer {peer}: accepting the peer's connection in {state}",
                     peer=self.config.address, state=self.state.name)
            if self.connector is not None:
                # Take the peer's connection instead of ours still in progress.
                connector = self.connector
                self.connector = None
                _stop_connecting(connector)
            self.protocol_ = proto
            self._down_reason = ""
            self.handle(_E.TCP_CONNECTION_CONFIRMED)
            return
        if self.state is _S.ESTABLISHED or self.pending is not None:
            # RFC 4271 6.8: a connection while Established is closed (Cease 7).
            proto.controller = None
            proto.notify_and_close(_collision_cease())
            return
        # OpenSent / OpenConfirm (or Connect/Active with our connection up):
        # keep both until the peer's OPEN tells us its identifier (6.8).
        self.pending = proto
        if self.config.delay_open_time == 0:
            proto.send(self.local_open)

    def _configure_transport(self, proto: BGPProtocol) -> None:
        transport = proto.transport
        if not ISystemHandle.providedBy(transport):
            return  # a test transport: no socket to configure
        sock = transport.getHandle()
        if not isinstance(sock, socket.socket):
            return
        try:
            sockopts.set_nodelay(sock)
            # Outbound sockets got GTSM before connect() (_prepare_socket).
            if self.config.ttl_security and not proto.outbound:
                sockopts.set_gtsm(sock, self.config.ttl_security)
        except OSError as e:
            log.warn("peer {peer}: socket options: {error}", peer=self.config.address, error=e)

    def bytes_received(self, proto: BGPProtocol) -> None:
        proto.last_received = self.reactor.seconds()

    def connection_lost(self, proto: BGPProtocol, reason: Failure | None) -> None:
        if proto is self.pending:
            self.pending = None
            return
        if proto is not self.protocol_:
            return
        self.protocol_ = None
        why = reason.getErrorMessage() if reason is not None else "closed"
        self._down_reason = self._down_reason or f"TCP connection lost: {why}"
        if (self.state is _S.ESTABLISHED and self.session_info is not None
                and self.session_info.graceful_restart is not None):
            self._graceful_down = True  # RFC 4724: the peer may be restarting
        self.handle(_E.TCP_CONNECTION_FAILS)
        if (self.pending is not None and self.protocol_ is None
                and self.state in (_S.CONNECT, _S.ACTIVE)):
            # The second connection kept for collision detection is now the
            # only one: carry on with it (our OPEN on it is not sent twice).
            pending = self.pending
            self.pending = None
            self.protocol_ = pending
            self._down_reason = ""
            self.handle(_E.TCP_CONNECTION_CONFIRMED)

    def protocol_error(self, proto: BGPProtocol, err: NotificationError, header: bool = False,
                       msg_type: int | None = None) -> None:
        """A message could not be framed or decoded: RFC 4271 section 6."""
        self.last_error = str(err)
        if proto is self.pending:
            self.pending = None
            proto.controller = None
            proto.notify_and_close(Notification.from_error(err))
            return
        if proto is not self.protocol_:
            return
        log.warn("peer {peer}: {error}", peer=self.config.address, error=str(err))
        self._down_reason = str(err)
        if header or err.code == ErrorCode.MESSAGE_HEADER:
            self.handle(_E.BGP_HEADER_ERR, err)
        elif msg_type == 1:
            self.handle(_E.BGP_OPEN_MSG_ERR, err)
        else:
            self.handle(_E.UPDATE_MSG_ERR, err)

    def updates_decoded(self, proto: BGPProtocol, updates: list[Update]) -> None:
        if proto is self.protocol_ and self.state is _S.ESTABLISHED:
            # Fast path for (Established, UpdateMsg), identical to the
            # table's row (checked in the tests): no step() per UPDATE, and
            # the hold timer restarted once for the run (one read, one time).
            self._hold_base = self.reactor.seconds()
            self._deliver_updates(updates)
            return
        for update in updates:
            if proto.closing:
                return
            self.message_received(proto, update)

    def message_received(self, proto: BGPProtocol, msg: Message) -> None:
        if proto is self.pending:
            self._pending_message(proto, msg)
            return
        if proto is not self.protocol_:
            return
        if isinstance(msg, Update):
            if self.state is _S.ESTABLISHED:
                self.updates_decoded(proto, [msg])  # its fast path (proto is protocol_)
            else:
                self.handle(_E.UPDATE_MSG, msg)
        elif isinstance(msg, Keepalive):
            self.handle(_E.KEEPALIVE_MSG)
        elif isinstance(msg, Open):
            self._open_received(proto, msg)
        elif isinstance(msg, Notification):
            self.last_notification_received = msg
            self._down_reason = f"NOTIFICATION received: {msg.describe()}"
            log.warn("peer {peer}: {reason}", peer=self.config.address, reason=self._down_reason)
            self._graceful_down = False
            if msg.code == ErrorCode.OPEN_MESSAGE and msg.subcode == OpenError.UNSUPPORTED_VERSION_NUMBER:
                self.handle(_E.NOTIF_MSG_VER_ERR, msg)
            else:
                self.handle(_E.NOTIF_MSG, msg)
        elif isinstance(msg, RouteRefresh):
            self._refresh_received(msg)

    def _open_received(self, proto: BGPProtocol, msg: Open) -> None:
        if self.pending is not None and self._collision(proto, msg):
            return
        if self.state in (_S.OPEN_CONFIRM, _S.ESTABLISHED):
            # This connection had its OPEN: a second one is an unexpected
            # message (RFC 6608), not something to negotiate.
            self._down_reason = f"unexpected OPEN in {self.state.rfc_name}"
            log.warn("peer {peer}: {reason}", peer=self.config.address, reason=self._down_reason)
            self.handle(_E.BGP_OPEN, msg)
            return
        try:
            info = negotiate(self.config, self.local_open, msg, self.router_id, self.route_server)
        except NotificationError as err:
            self.last_error = str(err)
            self._down_reason = f"OPEN rejected: {err}"
            self.handle(_E.BGP_OPEN_MSG_ERR, err)
            return
        proto.remote_open = msg
        event = (_E.BGP_OPEN_WITH_DELAY_OPEN_TIMER_RUNNING if self.delay_open_timer.running
                 else _E.BGP_OPEN)
        self.handle(event, info)

    def _pending_message(self, proto: BGPProtocol, msg: Message) -> None:
        if isinstance(msg, Open):
            if self._collision(proto, msg):
                return
            # Our connection won: the pending one was closed by _collision.
            return
        if isinstance(msg, Notification):
            self.pending = None
            proto.controller = None
            proto.close()

    def _collision(self, proto: BGPProtocol, msg: Open) -> bool:
        """RFC 4271 6.8 with two connections: keep the one the higher identifier opened.

        Returns True when the OPEN just received was consumed here (the
        connection it came on was closed, or replaced ours and was processed).
        """
        pending = self.pending
        main = self.protocol_
        if pending is None or main is None:
            return False
        if self.state is _S.ESTABLISHED:
            # 6.8: a collision with an Established connection closes the new one.
            self._close_pending(_collision_cease())
            return proto is pending
        local_id = struct.unpack("!I", _aton(self.router_id))[0]
        remote_id = struct.unpack("!I", _aton(msg.bgp_id))[0]
        if local_id != remote_id:
            # The connection to keep is the one opened by the higher identifier.
            keep_outbound = local_id > remote_id
        else:
            # RFC 6286 2.3: equal identifiers (eBGP): the larger AS's connection.
            keep_outbound = self.config.local_as > msg.asn
        keep = main if main.outbound == keep_outbound else pending
        drop = pending if keep is main else main
        log.info("peer {peer}: connection collision, keeping the {kind} connection",
                 peer=self.config.address, kind="outbound" if keep.outbound else "inbound")
        self.pending = None
        drop.controller = None
        drop.notify_and_close(_collision_cease())
        if keep is main:
            # The OPEN came on the connection we keep: process it; or on the
            # one just closed: it is gone with it.
            return proto is not main
        # Switch the FSM to the peer's connection.  It is in OpenSent: our OPEN
        # goes on it now unless it went when the connection arrived.  The
        # timers of the dropped connection (DelayOpen, ConnectRetry,
        # Keepalive) belong to it and stop.
        self.protocol_ = pending
        self.session_info = None
        self.hold_time = 0
        self.keepalive_timer.stop()
        self.delay_open_timer.stop()
        self.connect_retry_timer.stop()
        if not pending.open_sent:
            pending.send(self.local_open)
        old = self.state
        self.state = _S.OPEN_SENT
        self._start_hold(LARGE_HOLD_TIME)
        if old is not _S.OPEN_SENT:
            self.last_state_change = self.reactor.seconds()
            reason = "connection collision: the peer's connection survives"
            self.listener.state_changed(self, old, self.state, reason)
        if proto is pending:
            self._open_received(pending, msg)
        return True

    def _refresh_received(self, msg: RouteRefresh) -> None:
        info = self.session_info
        if self.state is not _S.ESTABLISHED or info is None:
            return
        if not info.route_refresh or (msg.afi, msg.safi) not in info.families:
            log.info("peer {peer}: ignoring ROUTE-REFRESH for {afi}/{safi}",
                     peer=self.config.address, afi=msg.afi, safi=msg.safi)
            return
        self._hold_base = self.reactor.seconds()
        self.listener.refresh_requested(self, msg)

    # -- used by the RIB bridge -------------------------------------------

    def send(self, messages: list[bytes]) -> None:
        """Already-packed UPDATE messages for this peer (Adj-RIB-Out)."""
        proto = self.protocol_
        if proto is not None and self.state is _S.ESTABLISHED:
            proto.send_raw(messages)

    def send_message(self, msg: Message) -> None:
        proto = self.protocol_
        if proto is not None and self.state is _S.ESTABLISHED:
            proto.send(msg)

    def request_refresh(self, family: str) -> bool:
        """Ask the peer to send its routes again (RFC 2918); False if not negotiated."""
        info = self.session_info
        fam = FAMILIES_BY_NAME.get(family)
        if info is None or not info.route_refresh or fam not in info.families:
            return False
        self.send_message(RouteRefresh(fam[0], fam[1], 0))
        return True

    def request_refresh_all(self) -> bool:
        """ROUTE-REFRESH for every negotiated family; False if the peer cannot do it."""
        info = self.session_info
        if info is None or not info.route_refresh:
            return False
        for afi, safi in info.families:
            self.send_message(RouteRefresh(afi, safi, 0))
        return True

    def hold_input(self, held: bool) -> None:
        """Stop or go on reading the Established session (inbound flow control, see Rib.watch_backlog)."""
        proto = self.protocol_
        if proto is not None and not proto.closing:
            proto.hold_input(held)

    def writable(self) -> bool:
        """False while the transport's send buffer is full (flow control for the RIB)."""
        proto = self.protocol_
        return proto is not None and not proto.closing and not proto.paused

    def output_resumed(self, proto: BGPProtocol) -> None:
        if proto is self.protocol_ and self.state is _S.ESTABLISHED:
            self.listener.output_resumed(self)

    def note_prefix_count(self, family: str, count: int) -> None:
        """Max-prefix (RFC 4486): called with the prefixes now held from this peer."""
        self.prefix_counts[family] = count
        limit = self.config.max_prefix_for(family)
        if limit is None or self.state is not _S.ESTABLISHED:
            return
        if count > limit.limit:
            afi, safi = FAMILIES_BY_NAME[family]
            data = struct.pack("!HBI", afi, safi, limit.limit)
            self._cease = Notification(ErrorCode.CEASE, CeaseError.MAXIMUM_PREFIXES_REACHED, data)
            self._down_reason = f"max-prefix {limit.limit} for {family} exceeded ({count})"
            log.warn("peer {peer}: {reason}", peer=self.config.address, reason=self._down_reason)
            if limit.restart_time:
                self._restart_after = float(limit.restart_time)
            else:
                self.enabled = False
                self.last_error = self._down_reason + "; stays down until reset"
            self.handle(_E.AUTOMATIC_STOP)
            self._cease = None
        elif family not in self._prefix_warned and count * 100 >= limit.limit * limit.warning_percent:
            self._prefix_warned.add(family)
            log.warn("peer {peer}: {count} {family} prefixes is {pct}% of the limit {limit}",
                     peer=self.config.address, count=count, family=family,
                     pct=limit.warning_percent, limit=limit.limit)

    def uptime(self) -> float:
        return self.reactor.seconds() - self.last_state_change

    def set_message_tap(self, tap: SessionTap | None) -> None:
        """Report messages, session up and down to ``tap`` (None: stop)."""
        self.tap = tap
        for proto in (self.protocol_, self.pending):
            if proto is not None:
                proto.set_tap(tap, self.reactor)


#: Cease subcodes a peer sends on purpose (RFC 4486): no error to damp.
_DELIBERATE_CEASES = frozenset({
    CeaseError.ADMINISTRATIVE_SHUTDOWN,
    CeaseError.PEER_DECONFIGURED,
    CeaseError.ADMINISTRATIVE_RESET,
    CeaseError.OTHER_CONFIGURATION_CHANGE,
    CeaseError.CONNECTION_COLLISION_RESOLUTION,
})


def _deliberate_cease(ctx: Any) -> bool:
    """Whether the event's context is a NOTIFICATION the peer sent on purpose."""
    return (isinstance(ctx, Notification) and ctx.code == ErrorCode.CEASE
            and ctx.subcode in _DELIBERATE_CEASES)


def _collision_cease() -> Notification:
    return Notification(ErrorCode.CEASE, CeaseError.CONNECTION_COLLISION_RESOLUTION)


def _aton(address: str) -> bytes:
    return socket.inet_aton(address)


def _stop_connecting(connector: Any) -> None:
    if getattr(connector, "state", "connecting") == "connecting":
        try:
            connector.stopConnecting()
        except Exception:  # noqa: BLE001 - already connected or failed: nothing to stop
            pass


# Events whose transitions read no flags: skip building a Flags record.
_NO_FLAG_EVENTS: frozenset[Event] = frozenset()

__all__ = ["NullListener", "PeerFactory", "SessionListener"]
