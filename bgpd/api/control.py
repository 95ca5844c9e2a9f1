"""The control object: everything the API may see or change, on the reactor thread.

The gRPC servicers (``bgpd.api.server``) call these methods only through
``blockingCallFromThread``; they take and return plain records (attrs) and
raise :class:`ControlError` subclasses, never protobuf types, so this module
is tested without gRPC.  Operator actions follow RFC 4271 section 8.1.2
(ManualStart / ManualStop), RFC 4486 (Cease subcodes), RFC 9003 (shutdown
communication), RFC 2918 / RFC 7313 (ROUTE-REFRESH for the inbound soft reset).

Neighbors added, changed or removed, policies replaced (and rolled back by
the confirm timer) and paths originated without a lease go through the
service's state store (:class:`bgpd.statecontrol.StateControl`): written
before the call returns, replayed at start and kept across a SIGHUP.  Paths
tied to a lease or a HoldPaths stream are kept in memory only: they die
with their lease.
"""

from __future__ import annotations

import ipaddress
import queue
import secrets
import sys
import threading
from collections.abc import Callable, Mapping
from typing import Any, NamedTuple

import attrs
from twisted.logger import Logger

import bgpd
from bgpd.config import (
    POLICY_DOCUMENT_KEYS,
    Config,
    ConfigError,
    NeighborConfig,
    import_chain_names,
    neighbor_from_table,
    policies_from_toml,
    to_toml,
)
from bgpd.policy import chain
from bgpd.policy.explain import Explanation, RehearsalResult, explain
from bgpd.rib import Path, PeerInfo
from bgpd.rpki.aspa import DOWNSTREAM, UPSTREAM
from bgpd.rpki.records import Validity, Vrp
from bgpd.rpki.validation import Explained, RouteValidation
from bgpd.session.factory import PeerFactory
from bgpd.session.fsm import State
from bgpd.wire.address import normalize_address
from bgpd.wire.attributes import PathAttributes
from bgpd.wire.communities import parse_community, parse_large_community
from bgpd.wire.constants import FAMILIES_BY_NAME, ORIGIN_NAMES, family_name
from bgpd.wire.nlri import make_prefix, prefix_contains, prefix_from_str, prefix_to_str
from bgpd.wire.notification import Notification

log = Logger()


class ControlError(Exception):
    """A request the control object refused; ``field`` names the offending field."""

    #: The gRPC status name the server maps this class to.
    status = "UNKNOWN"

    def __init__(self, field: str, reason: str) -> None:
        super().__init__(field, reason)
        self.field = field
        self.reason = reason

    def __str__(self) -> str:
        return f"{self.field}: {self.reason}"


class InvalidArgument(ControlError):
    status = "INVALID_ARGUMENT"


class NotFound(ControlError):
    status = "NOT_FOUND"


class AlreadyExists(ControlError):
    status = "ALREADY_EXISTS"


class FailedPrecondition(ControlError):
    status = "FAILED_PRECONDITION"


class Unavailable(ControlError):
    """The state store could not keep the change (nothing was changed)."""

    status = "UNAVAILABLE"


def _stored(fn: Callable[..., Any], *args: Any, prefix: str = "") -> Any:
    """Call a `StateControl` method, its exceptions turned into `ControlError`.

    ``prefix`` goes before a key the store names (``neighbor.`` for a
    neighbor table, whose keys the API names ``neighbor.KEY``).
    """
    from bgpd.state.store import StateError
    from bgpd.statecontrol import AlreadyExists as StoreExists
    from bgpd.statecontrol import NotFound as StoreNotFound

    try:
        return fn(*args)
    except StoreNotFound as err:  # before ConfigError: they subclass it
        raise NotFound(prefix + err.key, err.reason) from None
    except StoreExists as err:
        raise AlreadyExists(prefix + err.key, err.reason) from None
    except ConfigError as err:
        first = err.errors[0]
        raise InvalidArgument(first.key, "; ".join(
            e.reason if e.key == first.key else f"{e.key}: {e.reason}" for e in err.errors)) from None
    except StateError as err:
        raise Unavailable("state_dir", f"the state store could not keep the change, nothing "
                          f"was changed: {err}") from None


@attrs.frozen
class NotificationInfo:
    """A NOTIFICATION sent or received, decoded."""

    code: int
    subcode: int
    name: str
    shutdown_message: str
    data: bytes

    @classmethod
    def of(cls, n: Notification | None) -> NotificationInfo | None:
        if n is None:
            return None
        return cls(n.code, n.subcode, n.name, n.shutdown_message or "", n.data)


@attrs.frozen
class GlobalStatus:
    """The daemon's identity and counters (the Global service)."""

    router_id: str
    local_as: int
    uptime_seconds: float
    version: str
    peers_total: int
    peers_established: int
    #: (family name, Loc-RIB prefixes)
    loc_rib: tuple[tuple[str, int], ...]


@attrs.frozen
class KernelStatus:
    """The kernel route writer (``bgpctl show kernel``): off, or its table and counts."""

    enabled: bool
    table: int = 0
    protocol: int = 0
    metric: int = 0
    #: (family name, installed, pending, failed) per family the writer handles
    families: tuple[tuple[str, int, int, int], ...] = ()


@attrs.frozen
class RpkiStatus:
    """The RPKI caches (``bgpctl rpki status``): off, or each cache's status."""

    enabled: bool
    aspa: bool = False
    #: the name of the cache whose data is in use ("" when none)
    active: str = ""
    #: bgpd.rpki.service.RpkiCacheInfo per cache, most preferred first
    caches: tuple[Any, ...] = ()


@attrs.frozen
class BmpCollectorStatus:
    """One BMP collector (``bgpctl show bmp``): its connection and counters."""

    name: str
    address: str
    port: int
    monitoring: tuple[str, ...]
    state: str
    messages: int
    octets: int
    drops: int
    connects: int
    buffered: int
    buffer: int
    last_error: str


@attrs.frozen
class PeerStatus:
    """One neighbor as it runs (the Peers service)."""

    config: NeighborConfig
    state: str
    state_seconds: float
    enabled: bool
    router_id: str
    peer_as: int
    hold_time: int
    families: tuple[str, ...]
    capabilities: tuple[str, ...]
    prefixes_received: tuple[tuple[str, int], ...]
    prefixes_accepted: tuple[tuple[str, int], ...]
    prefixes_advertised: tuple[tuple[str, int], ...]
    last_error: str
    last_notification_sent: NotificationInfo | None
    last_notification_received: NotificationInfo | None
    messages_received: int
    messages_sent: int
    updates_received: int
    established_transitions: int
    flaps: int
    from_api: bool


#: ResetPeer kinds
HARD, SOFT_IN, SOFT_OUT = "hard", "soft-in", "soft-out"
#: ListRoutes tables
LOC_RIB, ADJ_RIB_IN, ADJ_RIB_IN_PRE, ADJ_RIB_OUT = "loc-rib", "adj-rib-in", "adj-rib-in-pre", "adj-rib-out"

_STATE_NAMES = {
    State.IDLE: "Idle", State.CONNECT: "Connect", State.ACTIVE: "Active",
    State.OPEN_SENT: "OpenSent", State.OPEN_CONFIRM: "OpenConfirm", State.ESTABLISHED: "Established",
}


class Control:
    """The one object the API servicers call; every method runs on the reactor thread.

    ``service`` is the :class:`bgpd.service.BgpdService` whose state it reads
    and changes.
    """

    def __init__(self, service: Any) -> None:
        self.service = service
        self.started = service.reactor.seconds()
        #: lease id -> lease; (family, prefix) -> the lease an originated path belongs to
        self.leases: dict[str, _Lease] = {}
        self.path_lease: dict[tuple[tuple[int, int], bytes], str] = {}
        #: an unconfirmed policy replacement: (rollback call, the previous sets/policies/tables)
        self._pending: tuple[Any, tuple] | None = None
        #: page token -> (listing in progress, the request it answers)
        self.cursors: dict[str, tuple[RouteCursor, tuple, Any]] = {}
        #: (family, prefix) -> attributes of the paths originated through the API
        self.originated: dict[tuple[tuple[int, int], bytes], PathAttributes] = {}

    # -- lookups -----------------------------------------------------------

    @property
    def reactor(self) -> Any:
        return self.service.reactor

    @property
    def config(self) -> Config:
        return self.service.config

    @property
    def api_peers(self) -> set[str]:
        """Addresses of the neighbors set through the API (the state store's, so after a restart too)."""
        return {c.key for c in self.service.state.overlay if c.kind == "neighbor" and c.op == "put"}

    def _factory(self, address: str, field: str = "address") -> PeerFactory:
        if not address:
            raise InvalidArgument(field, "required: the neighbor's address")
        try:
            key = normalize_address(address)
        except ValueError:
            raise InvalidArgument(field, f"not an IP address: {address!r}") from None
        peer = self.service.sessions.peers.get(key)
        if peer is None:
            raise NotFound(field, f"no neighbor {key}")
        return peer

    def _info(self, peer: PeerFactory) -> PeerInfo | None:
        return self.service.rib_service.peers.get(peer)

    # -- Global ------------------------------------------------------------

    def global_status(self) -> GlobalStatus:
        """The router id, AS, uptime, version and counters."""
        bgp = self.config.bgp
        peers = self.service.sessions.peers.values()
        rib = self.service.rib_service.rib
        return GlobalStatus(
            router_id=bgp.router_id, local_as=bgp.local_as,
            uptime_seconds=self.reactor.seconds() - self.started, version=bgpd.__version__,
            peers_total=len(peers),
            peers_established=sum(1 for p in peers if p.state is State.ESTABLISHED),
            loc_rib=tuple((name, rib.loc_rib_size(fam)) for name, fam in FAMILIES_BY_NAME.items()),
        )

    def kernel_status(self) -> KernelStatus:
        """The kernel writer's table and its routes per family (installed, pending, failed)."""
        kernel = self.service.kernel
        if kernel is None:
            return KernelStatus(enabled=False)
        kc = kernel.kconfig
        counts = kernel.status()
        return KernelStatus(
            enabled=True, table=kc.table, protocol=kc.protocol, metric=kc.metric,
            families=tuple((family_name(*fam), c.installed, c.pending, c.failed)
                           for fam, c in sorted(counts.items())),
        )

    def rpki_status(self) -> RpkiStatus:
        """The RTR caches (``bgpctl rpki status``): per cache its connection, session and counts."""
        svc = self.service.rpki
        if svc is None:
            return RpkiStatus(enabled=False)
        active = svc.active.settings.name if svc.active is not None else ""
        return RpkiStatus(enabled=True, aspa=svc.config.aspa, active=active, caches=tuple(svc.status()))

    def bmp_status(self) -> tuple[BmpCollectorStatus, ...]:
        """Every configured BMP collector's state and counters (none without [bmp])."""
        bmp = self.service.bmp
        if bmp is None:
            return ()
        return tuple(BmpCollectorStatus(**s) for s in bmp.status())

    def running_config(self) -> tuple[str, tuple[str, ...], tuple[str, ...]]:
        """The effective config as TOML (the API's parts marked), the API's neighbors and paths.

        The paths are those kept in the state store; leased ones are not
        config (they die with their lease).
        """
        state = self.service.state
        paths = tuple(c.key for c in state.overlay if c.kind == "originate" and c.op == "put")
        return state.config_toml(), tuple(sorted(self.api_peers, key=_sort_key)), paths

    # -- Peers: reading ----------------------------------------------------

    def peers(self) -> list[PeerStatus]:
        """Every neighbor, sorted by address."""
        items = self.service.sessions.peers.items()
        api = self.api_peers
        return [self._status(p, api) for _, p in sorted(items, key=lambda kv: _sort_key(kv[0]))]

    def peer(self, address: str) -> PeerStatus:
        return self._status(self._factory(address))

    def _status(self, peer: PeerFactory, api: set[str] | None = None) -> PeerStatus:
        info = peer.session_info
        proto = peer.protocol_instance
        pi = self._info(peer)
        rib = self.service.rib_service.rib
        received: list[tuple[str, int]] = []
        accepted: list[tuple[str, int]] = []
        advertised: list[tuple[str, int]] = []
        families: tuple[str, ...] = ()
        caps: list[str] = []
        if info is not None:
            families = tuple(family_name(*f) for f in info.families)
            for flag, name in ((info.route_refresh, "route-refresh"),
                               (info.enhanced_route_refresh, "enhanced-route-refresh"),
                               (info.graceful_restart is not None, "graceful-restart"),
                               (info.llgr is not None, "long-lived-graceful-restart"),
                               (info.peer_role is not None, "role"),
                               (info.peer_hostname is not None, "hostname")):
                if flag:
                    caps.append(name)
        if pi is not None and info is not None:
            for fam in info.families:
                name = family_name(*fam)
                accepted.append((name, rib.adj_rib_in_size(pi, fam)))
                advertised.append((name, len(rib.adj_rib_out(pi, fam))))
                if peer.config.soft_reconfiguration_inbound:
                    received.append((name, len(rib.adj_rib_in(pi, fam, pre_policy=True))))
        established = info is not None
        return PeerStatus(
            config=peer.config,
            state=_STATE_NAMES.get(peer.state, str(peer.state)),
            state_seconds=max(0.0, self.reactor.seconds() - peer.last_state_change),
            enabled=peer.enabled,
            router_id=info.peer_router_id if established else "",
            peer_as=info.peer_asn if established else 0,
            hold_time=info.hold_time if established else 0,
            families=families, capabilities=tuple(caps),
            prefixes_received=tuple(received), prefixes_accepted=tuple(accepted),
            prefixes_advertised=tuple(advertised),
            last_error=peer.last_error,
            last_notification_sent=NotificationInfo.of(peer.last_notification_sent),
            last_notification_received=NotificationInfo.of(peer.last_notification_received),
            messages_received=proto.messages_in if proto is not None else 0,
            messages_sent=proto.messages_out if proto is not None else 0,
            updates_received=peer.updates_received,
            established_transitions=peer.established_transitions,
            flaps=peer.flaps,
            from_api=normalize_address(peer.config.address) in (self.api_peers if api is None else api),
        )

    # -- Peers: operator actions -------------------------------------------

    def enable_peer(self, address: str) -> PeerStatus:
        """ManualStart (RFC 4271 8.1.2) for a disabled neighbor."""
        peer = self._factory(address)
        if peer.enabled:
            raise FailedPrecondition("address", f"neighbor {peer.address} is already enabled")
        log.info("API: enabling peer {peer}", peer=peer.address)
        peer.start()
        return self._status(peer)

    def disable_peer(self, address: str, message: str = "") -> PeerStatus:
        """ManualStop with Cease / Administrative Shutdown and an RFC 9003 message."""
        peer = self._factory(address)
        _check_message(message)
        if not peer.enabled:
            raise FailedPrecondition("address", f"neighbor {peer.address} is already disabled")
        log.info("API: disabling peer {peer}: {message}", peer=peer.address, message=message)
        peer.stop(message)
        return self._status(peer)

    def reset_peer(self, address: str, kind: str = HARD, message: str = "") -> PeerStatus:
        """Hard reset (Cease / Administrative Reset), or soft reset in or out."""
        peer = self._factory(address)
        _check_message(message)
        if kind == HARD:
            if not peer.enabled:
                raise FailedPrecondition("address", f"neighbor {peer.address} is disabled; enable it")
            log.info("API: hard reset of peer {peer}", peer=peer.address)
            peer.reset(message)
            return self._status(peer)
        if kind not in (SOFT_IN, SOFT_OUT):
            raise InvalidArgument("kind", f"unknown reset kind {kind!r}")
        pi = self._info(peer)
        info = peer.session_info
        if pi is None or info is None or peer.state is not State.ESTABLISHED:
            raise FailedPrecondition("address", f"neighbor {peer.address} is not Established")
        rib = self.service.rib_service.rib
        if kind == SOFT_OUT:
            log.info("API: soft reset out of peer {peer}", peer=peer.address)
            for fam in info.families:
                rib.refresh_out(pi, fam, info.enhanced_route_refresh)
        elif peer.config.soft_reconfiguration_inbound:
            log.info("API: soft reset in of peer {peer} (kept Adj-RIB-In)", peer=peer.address)
            rib.reimport(pi)
        elif not peer.request_refresh_all():
            raise FailedPrecondition(
                "kind", f"neighbor {peer.address} supports no route refresh and "
                "soft_reconfiguration_inbound is off: only a hard reset re-reads its routes")
        else:
            log.info("API: soft reset in of peer {peer}: sent ROUTE-REFRESH", peer=peer.address)
        return self._status(peer)

    # -- Peers: add, update, delete ----------------------------------------

    def add_peer(self, table: Mapping[str, Any]) -> PeerStatus:
        """Add a neighbor, validated as a [[neighbors]] table; errors name ``neighbor.KEY``.

        Written to the state store before it runs (kept across restarts).
        """
        neighbor = self._validate(table)
        key = normalize_address(neighbor.address)
        if self.config.neighbor(key) is not None:
            raise AlreadyExists("neighbor.address", f"neighbor {key} already exists")
        _stored(self.service.state.add_neighbor, dict(table), prefix="neighbor.")
        log.info("API: added peer {peer}", peer=key)
        return self._status(self.service.sessions.peers[key])

    def update_peer(self, table: Mapping[str, Any]) -> PeerStatus:
        """Replace a neighbor's settings; resets the session only when the change needs it."""
        neighbor = self._validate(table)
        key = normalize_address(neighbor.address)
        if self.config.neighbor(key) is None:
            raise NotFound("neighbor.address", f"no neighbor {key}")
        _stored(self.service.state.update_neighbor, dict(table), prefix="neighbor.")
        log.info("API: updated peer {peer}", peer=key)
        return self._status(self.service.sessions.peers[key])

    def delete_peer(self, address: str) -> None:
        """Remove a neighbor (Cease / Peer De-configured); a file's one stays removed."""
        peer = self._factory(address)
        key = normalize_address(peer.config.address)
        _stored(self.service.state.remove_neighbor, key)
        log.info("API: deleted peer {peer}", peer=key)

    # -- Routes --------------------------------------------------------------

    def list_routes(self, table: str = LOC_RIB, family: str = "", peer: str = "",
                    prefix: str = "", longest_match: str = "", more_specifics: str = "",
                    all_paths: bool = False, limit: int = 0) -> RouteCursor:
        """Start a listing; advance it with ``cursor.next()`` (each call one reactor turn)."""
        fam = parse_family(family)
        rib = self.service.rib_service.rib
        pi: PeerInfo | None = None
        if table == LOC_RIB:
            if peer:
                raise InvalidArgument("peer", "the Loc-RIB has no peer; leave peer empty")
            source = rib.loc_table(fam)
        elif table in (ADJ_RIB_IN, ADJ_RIB_IN_PRE, ADJ_RIB_OUT):
            if not peer:
                raise InvalidArgument("peer", f"required for {table}")
            factory = self._factory(peer, "peer")
            pi = self._info(factory)
            if pi is None:
                raise FailedPrecondition("peer", f"neighbor {factory.address} is not Established")
            if table == ADJ_RIB_OUT:
                source = rib.adj_rib_out(pi, fam)
            else:
                try:
                    source = rib.adj_rib_in(pi, fam, pre_policy=table == ADJ_RIB_IN_PRE)
                except ValueError:
                    raise FailedPrecondition(
                        "table", f"neighbor {factory.address} has soft_reconfiguration_inbound off: "
                        "no pre-policy Adj-RIB-In is kept") from None
        else:
            raise InvalidArgument("table", f"unknown table {table!r}")
        match: Callable[[bytes], bool] | None = None
        keyed = table != LOC_RIB and any(k.__class__ is tuple for k in _first(source))
        if prefix:
            key = parse_prefix(prefix, fam, "prefix")
            keys = [k for k in source if _split_key(k)[1] == key] if keyed else \
                ([key] if key in source else [])
        elif longest_match:
            key = parse_prefix(longest_match, fam, "longest_match")
            keys = _longest(source, key, keyed)
        elif more_specifics:
            key = parse_prefix(more_specifics, fam, "more_specifics")
            keys, match = list(source), _within(key)
        else:
            keys = list(source)
        return RouteCursor(self, table, fam, pi, keys, match, all_paths, limit)

    def save_cursor(self, cursor: RouteCursor, request: tuple) -> str:
        """Keep ``cursor`` for the next page of ``request``; returns its page token (AIP-158)."""
        token = secrets.token_urlsafe(12)
        while len(self.cursors) >= MAX_CURSORS:
            self._drop_cursor(next(iter(self.cursors)))  # the oldest goes
        self.cursors[token] = (cursor, request, self.reactor.callLater(PAGE_TTL, self._drop_cursor, token))
        return token

    def _drop_cursor(self, token: str) -> None:
        saved = self.cursors.pop(token, None)
        if saved is not None and saved[2].active():
            saved[2].cancel()

    def close(self) -> None:
        """Forget every saved listing (the API server stops).

        An unconfirmed policy replacement stays as it is: nobody is left to confirm it,
        and bgpd is stopping.
        """
        for token in list(self.cursors):
            self._drop_cursor(token)
        for lease in self.leases.values():
            if lease.call is not None and lease.call.active():
                lease.call.cancel()
                lease.call = None
        if self._pending is not None:
            if self._pending[0].active():
                self._pending[0].cancel()
            self._pending = None

    def resume_cursor(self, token: str, request: tuple) -> RouteCursor:
        """The cursor saved under ``token``, for the same ``request``; InvalidArgument otherwise."""
        saved = self.cursors.get(token)
        if saved is None:
            raise InvalidArgument("page_token", "unknown or expired page token")
        self._drop_cursor(token)
        cursor, first, _ = saved
        if first != request:
            raise InvalidArgument("page_token", "the request differs from the one that gave this token")
        return cursor

    def add_paths(self, paths: list[OriginatedPath], lease: str = "") -> int:
        """Originate validated paths (``parse_paths``); returns how many were new or changed.

        Without ``lease`` they are config: written to the state store (one
        transaction for the batch) and kept across restarts.  With ``lease``
        they are tied to that lease, in memory only (they go when it ends).
        A path belongs to whoever originated it last.
        """
        if not lease:
            return self._add_stored_paths(paths)
        held = self.leases.get(lease)
        if held is None:
            raise NotFound("lease_id", f"no lease {lease} (it may have run out)")
        rib = self.service.rib_service.rib
        owners = self.path_lease
        n = 0
        for p in paths:
            k = (p.family, p.prefix)
            old = owners.get(k)
            if old != lease:
                if old is not None and old in self.leases:
                    self.leases[old].keys.discard(k)
                held.keys.add(k)
                owners[k] = lease
            if self.originated.get(k) != p.attributes:
                self.originated[k] = p.attributes
                rib.originate(p.family, p.prefix, p.attributes)
                n += 1
        return n

    def _add_stored_paths(self, paths: list[OriginatedPath]) -> int:
        before = {o.prefix: o for o in self.config.originate}
        routes = _stored(self.service.state.originate, [p.table for p in paths])
        self._let_go(paths)
        return sum(1 for r in routes if before.get(r.prefix) != r)

    def bgp_table(self) -> Mapping[str, Any] | None:
        """The running ``[bgp]`` table as written: what `check_stored_paths` validates against.

        None for a config built without its document (an embedding's own
        records): then only :meth:`add_paths` on the reactor can check paths.
        """
        table = (self.config.source or {}).get("bgp")
        return dict(table) if isinstance(table, Mapping) else None

    def batch_snapshot(self) -> tuple[Mapping[str, Any] | None, Any]:
        """`bgp_table` and the state store's `StateControl.snapshot`, for a batch checked off the reactor."""
        return self.bgp_table(), self.service.state.snapshot()

    def add_stored_batch(self, paths: list[OriginatedPath], batch: Any, pre: Any = None) -> Any:
        """Originate a large lease-less batch checked by `check_stored_paths` (a Deferred of the count).

        With ``pre`` (`precompute_paths`' result) the effective config was
        validated off the reactor too, and the reactor compiles policies and
        then takes the routes in chunks; the state store is written from a
        thread in between (`StateControl.originate_batch`).  A write failure
        fails the call with UNAVAILABLE and changes nothing.
        """
        from bgpd.state.store import StateError

        fresh = pre is not None and pre.snapshot.running is self.config
        before = {} if fresh else {o.prefix: o for o in self.config.originate}
        try:
            d = self.service.state.originate_batch(batch, pre=pre)
        except ConfigError:
            return _stored(_raise, sys.exc_info()[1])

        def done(routes: list[Any]) -> int:
            self._let_go(paths)
            return pre.changed if fresh else sum(1 for r in routes if before.get(r.prefix) != r)

        def failed(f: Any) -> Any:
            f.trap(StateError, ConfigError)
            return _stored(_raise, f.value)

        return d.addCallbacks(done, failed)

    def _let_go(self, paths: list[OriginatedPath]) -> None:
        # A path a lease held is config now: the lease lets go of it (the
        # service originated it again from the config when it took it).
        for p in paths:
            k = (p.family, p.prefix)
            owner = self.path_lease.pop(k, None)
            if owner is not None:
                self.originated.pop(k, None)
                if owner in self.leases:
                    self.leases[owner].keys.discard(k)

    # -- leases ----------------------------------------------------------------

    def create_lease(self, ttl: float) -> LeaseInfo:
        """A lease of ``ttl`` seconds; ttl 0 makes one that only :meth:`end_lease` ends (streams)."""
        if ttl < 0 or ttl > MAX_LEASE_TTL:
            raise InvalidArgument("ttl_seconds", f"must be 1 to {MAX_LEASE_TTL}, got {ttl:g}")
        lease = _Lease(secrets.token_urlsafe(12), ttl)
        self.leases[lease.id] = lease
        if ttl:
            lease.call = self.reactor.callLater(ttl, self.end_lease, lease.id, "its TTL ran out")
        return lease.info()

    def create_lease_checked(self, ttl: float) -> LeaseInfo:
        """CreateLease: a TTL of 0 is a mistake there (only streams hold leases without one)."""
        if not ttl:
            raise InvalidArgument("ttl_seconds", f"must be 1 to {MAX_LEASE_TTL}")
        return self.create_lease(ttl)

    def renew_lease(self, lease_id: str) -> LeaseInfo:
        lease = self.leases.get(lease_id)
        if lease is None:
            raise NotFound("id", f"no lease {lease_id} (it may have run out)")
        if lease.call is not None:
            lease.call.reset(lease.ttl)
        return lease.info()

    def end_lease(self, lease_id: str, reason: str = "deleted") -> LeaseInfo:
        """End a lease now: withdraw every path still tied to it."""
        lease = self.leases.pop(lease_id, None)
        if lease is None:
            raise NotFound("id", f"no lease {lease_id} (it may have run out)")
        if lease.call is not None and lease.call.active():
            lease.call.cancel()
        info = lease.info()
        for k in lease.keys:
            if self.path_lease.get(k) == lease_id:
                del self.path_lease[k]
                self.originated.pop(k, None)
                self._release(k)
        if lease.keys:
            log.info("API: lease {lease} ended ({reason}): {n} paths withdrawn", lease=lease_id,
                     reason=reason, n=len(lease.keys))
        return info

    def delete_paths(self, prefixes: list[str]) -> int:
        """Withdraw originated paths; NotFound (naming it) leaves every path in place.

        A leased path goes from memory; any other (the API's, or the
        file's ``[[originate]]``) is withdrawn through the state store, so
        it stays withdrawn after a restart.
        """
        keys = []
        configured = {o.prefix for o in self.config.originate}
        stored: list[str] = []
        for i, text in enumerate(prefixes):
            try:
                afi, key = prefix_from_str(text)
            except ValueError as e:
                raise InvalidArgument(f"prefixes[{i}]", f"not a prefix: {text!r} ({e})") from None
            k = ((afi, 1), key)
            if k in self.path_lease:
                keys.append(k)
            elif prefix_to_str(key, afi) in configured:
                stored.append(prefix_to_str(key, afi))
            else:
                raise NotFound(f"prefixes[{i}]", f"{text} was not originated through the API")
        if stored:
            _stored(self.service.state.withdraw, list(dict.fromkeys(stored)))
        for k in dict.fromkeys(keys):
            self.originated.pop(k, None)
            owner = self.path_lease.pop(k, None)
            if owner is not None and owner in self.leases:
                self.leases[owner].keys.discard(k)
            self._release(k)
        return len(set(keys)) + len(set(stored))

    def _release(self, k: tuple[tuple[int, int], bytes]) -> None:
        """A leased path is gone: the config's own path for the prefix comes back, if it has one.

        The RIB holds one originated path per prefix, whoever set it last;
        withdrawing it outright would also take away a path the config
        (file or state store) still originates.
        """
        rs = self.service.rib_service
        configured = rs.configured_route(*k)
        if configured is not None:
            rs.rib.originate(k[0], k[1], configured)
        else:
            rs.rib.withdraw_originated(*k)

    def watch_routes(self, family: str = "", prefix: str = "", dump: bool = False,
                     bound: int = 100_000) -> RouteWatch:
        """Start a watch of best-path changes (see :class:`RouteWatch`)."""
        fam = parse_family(family) if family else None
        within = parse_prefix(prefix, fam, "prefix") if prefix else None
        return RouteWatch(self, fam, within, dump, bound)

    def watch_adj_rib_in(self, peer: str, pre_policy: bool = False, family: str = "", prefix: str = "",
                         dump: bool = False, bound: int = 100_000) -> AdjRibInWatch:
        """Start a watch of one Established peer's Adj-RIB-In (see :class:`AdjRibInWatch`)."""
        fam = parse_family(family) if family else None
        within = parse_prefix(prefix, fam, "prefix") if prefix else None
        factory = self._factory(peer, "peer")
        pi = self._info(factory)
        if pi is None:
            raise FailedPrecondition("peer", f"neighbor {factory.address} is not Established")
        if pre_policy and not factory.config.soft_reconfiguration_inbound:
            raise FailedPrecondition("table", f"neighbor {factory.address} has soft_reconfiguration_inbound "
                                     "off: no pre-policy Adj-RIB-In is kept")
        return AdjRibInWatch(self, pi, pre_policy, fam, within, dump, bound)

    # -- Policy --------------------------------------------------------------

    @property
    def policy_tables(self) -> dict[str, Any]:
        """The running [sets] and [policies] tables as written (the file's, or the API's over it)."""
        source = self.config.source or {}
        return {k: source[k] for k in POLICY_DOCUMENT_KEYS if k in source}

    def policy_document(self) -> tuple[str, tuple[str, ...]]:
        """The running [sets] and [policies] as TOML, and the policy names."""
        return to_toml(self.policy_tables), tuple(name for name, _ in self.config.policies)

    def validate_policy(self, text: str) -> Config:
        """The running config with the candidate's policies, compiled; InvalidArgument names the key."""
        return self._candidate(text)[0]

    def _candidate(self, text: str) -> tuple[Config, dict[str, Any], tuple]:
        try:
            config, tables = policies_from_toml(text, self.config)
        except ConfigError as err:
            first = err.errors[0]
            raise InvalidArgument(first.key, "; ".join(
                e.reason if e.key == first.key else f"{e.key}: {e.reason}" for e in err.errors)) from None
        try:
            prepared = self.service.rib_service.prepare(config)
        except Exception as err:  # noqa: BLE001 - any compiler failure refuses the candidate
            raise InvalidArgument("policies", f"does not compile: {err}") from None
        return config, tables, prepared

    def rehearse_policy(self, text: str) -> list[RehearsalResult]:
        """What the candidate would change, per Established peer and direction; nothing is touched."""
        config, _, prepared = self._candidate(text)
        registry = prepared[0]

        def candidate(peer: PeerInfo, direction: str) -> Any:
            n = config.neighbor(peer.address)
            names = (import_chain_names(config.bgp, n) if direction == "import" else n.export_policy) \
                if n is not None else ("reject-all",)
            return chain(names, registry)

        results = self.service.rib_service.rib.rehearse(candidate)
        return [results[k] for k in sorted(results, key=lambda k: (_sort_key(k[0]), k[1]))]

    def explain_route(self, peer: str, direction: str, prefix: str, family: str = "",
                      candidate: str = "") -> Explanation:
        """Walk one route through ``peer``'s import or export chain (running, or a candidate's)."""
        fam = parse_family(family)
        factory = self._factory(peer, "peer")
        pi = self._info(factory)
        if pi is None:
            raise FailedPrecondition("peer", f"neighbor {factory.address} is not Established")
        key = parse_prefix(prefix, fam, "prefix")
        config, registry = self.config, self.service.rib_service.policies
        if candidate:
            config, _, prepared = self._candidate(candidate)
            registry = prepared[0]
        neighbor = config.neighbor(pi.address)
        rib = self.service.rib_service.rib
        if direction == "import":
            try:
                table = rib.adj_rib_in(pi, fam, pre_policy=True)
            except ValueError:
                raise FailedPrecondition("direction", f"neighbor {pi.address} has "
                                         "soft_reconfiguration_inbound off: the route as received "
                                         "is not kept") from None
            path = table.get(key) or next((p for k, p in table.items()
                                           if k.__class__ is tuple and k[1] == key), None)
            if path is None:
                raise NotFound("prefix", f"{prefix} is not in the Adj-RIB-In of {pi.address}")
            attributes, names = path.attrs, import_chain_names(config.bgp, neighbor)
        elif direction == "export":
            best = rib.best(fam, key)
            group = rib.update_group(pi, fam)
            if best is None:
                raise NotFound("prefix", f"{prefix} has no best path")
            if group is None:
                raise FailedPrecondition("family", f"{family_name(*fam)} is not negotiated with {pi.address}")
            attributes = group.pre_policy(best)
            if attributes is None:
                raise FailedPrecondition("prefix", f"{prefix} is not offered to {pi.address} at all "
                                         "(split horizon, reflection or role rules, before policy)")
            names = neighbor.export_policy
        else:
            raise InvalidArgument("direction", f"import or export, got {direction!r}")
        return explain(chain(names, registry), pi, fam, key, attributes)

    def replace_policy(self, text: str, confirm_seconds: float = 0) -> tuple[str, tuple[str, ...]]:
        """Replace [sets] and [policies] atomically (as a reload would); returns the new document.

        ``confirm_seconds``: unless :meth:`confirm_policy` is called within
        that time, the previous policies come back by themselves.
        """
        if self._pending is not None:
            raise FailedPrecondition("confirm_seconds", "an earlier replacement awaits confirmation: "
                                     "confirm it, or wait for its rollback")
        config, tables, prepared = self._candidate(text)
        # What the rollback restores: the API's previous tables, or the file's
        # own sections (forgetting the replacement, so that SIGHUP follows the file again).
        before = self.policy_tables if self.service.state.policies_from_api() else None
        # Written to the state store, then run (the store validates the whole
        # config again, and takes the policies compiled here).
        _stored(self.service.state.replace_policies, tables.get("sets", {}), tables.get("policies", {}),
                prepared)
        confirm = f", rolled back unless confirmed within {confirm_seconds:g}s" if confirm_seconds else ""
        log.info("API: policies replaced ({n} policies){confirm}", n=len(config.policies), confirm=confirm)
        if confirm_seconds:
            self._pending = (self.reactor.callLater(confirm_seconds, self._roll_back, before), before)
        return self.policy_document()

    def confirm_policy(self) -> tuple[str, tuple[str, ...]]:
        """Keep the replacement that awaits confirmation."""
        if self._pending is None:
            raise FailedPrecondition("confirm", "no policy replacement awaits confirmation")
        call, _ = self._pending
        call.cancel()
        self._pending = None
        log.info("API: policy replacement confirmed")
        return self.policy_document()

    def confirm_seconds_left(self) -> float:
        if self._pending is None:
            return 0.0
        return max(0.0, self._pending[0].getTime() - self.reactor.seconds())

    def _roll_back(self, before: dict[str, Any] | None) -> None:
        """The confirm timer ran out: the previous policies go back, through the state store.

        ``before`` None: they were the file's, so the API's replacement is forgotten.
        """
        self._pending = None
        state = self.service.state
        try:
            if before is None:
                _stored(state.forget_policies)
            else:
                _stored(state.replace_policies, before.get("sets", {}), before.get("policies", {}))
        except ControlError as err:
            # Keep routing on what runs, and say so (a neighbor may now use a
            # policy the previous document lacks, or the store cannot write).
            log.error("API: policy rollback failed, keeping the unconfirmed policies: {err}", err=str(err))
            return
        log.warn("API: policy replacement not confirmed in time: the previous policies are back")

    # -- Events --------------------------------------------------------------

    def watch_events(self, peer: str = "", bound: int = 10_000) -> EventWatch:
        """Start a watch of session state changes (of one neighbor if ``peer``)."""
        address = normalize_address(self._factory(peer, "peer").config.address) if peer else None
        return EventWatch(self, address, bound)

    # -- RPKI: origin validation and ASPA queries (issue 11) -------------------

    @property
    def validation(self) -> RouteValidation | None:
        """The VRP / ASPA tables (None without ``[rpki]``)."""
        return self.service.rib_service.validation

    @property
    def route_codes(self) -> Callable[..., tuple[int, int]] | None:
        """What route listings compute each path's RPKI / ASPA state with (None: not validated)."""
        v = self.validation
        return None if v is None else v.route_codes

    def _rpki(self) -> RouteValidation:
        v = self.validation
        if v is None:
            raise FailedPrecondition("rpki", "origin validation is off: the config has no [rpki] table")
        return v

    def validate_route(self, prefix: str, origin_as: int | None) -> Explained:
        """RFC 6811 for (``prefix``, ``origin_as``; None: NONE): state, VRPs, the reason in words."""
        v = self._rpki()
        if not prefix:
            raise InvalidArgument("prefix", "required: the route's prefix")
        key = parse_prefix(prefix, None, "prefix")
        afi = 2 if ":" in prefix else 1
        return v.explain(afi, key, origin_as)

    def covering_vrps(self, prefix: str) -> list[tuple[Vrp, bool]]:
        """The VRPs in force covering ``prefix``, each with whether SLURM asserted it."""
        v = self._rpki()
        if not prefix:
            raise InvalidArgument("prefix", "required: the prefix whose covering VRPs to list")
        key = parse_prefix(prefix, None, "prefix")
        return v.table.covering_sources(2 if ":" in prefix else 1, key)

    def validate_as_path(self, as_path: list[int], direction: str,
                         as_set: bool = False) -> tuple[Validity, list[tuple[int, int, str]]]:
        """ASPA verification of ``as_path`` (neighbor first) by the ``direction`` procedure."""
        v = self._rpki()
        if direction not in (UPSTREAM, DOWNSTREAM):
            raise InvalidArgument("direction", f'must be "{UPSTREAM}" or "{DOWNSTREAM}", got {direction!r}')
        return v.explain_path(list(as_path), direction, as_set)

    # -- Monitor (bgpd.monitor): session history, MRT dumps ---------------------

    def peer_history(self, address: str) -> PeerHistoryInfo:
        """GetPeerHistory: the neighbor's last state changes, oldest first, and its flaps."""
        peer = self._factory(address)
        key = normalize_address(peer.config.address)
        history = self.service.monitor.history
        return PeerHistoryInfo(key, peer.config.description or "", history.flaps(key),
                               history.events(key))

    def dump_rib(self, file: str, table: str = "", peer: str = "", compression: str = "") -> Any:
        """DumpRib: a Deferred firing with the ``DumpResult`` once the file is complete."""
        from bgpd.monitor.service import DumpError

        if not file.startswith("/"):
            raise InvalidArgument("file", f"must be an absolute path on the daemon's host, got {file!r}")
        try:
            d = self.service.monitor.dump(table or "loc-rib", file, compression or "none", peer)
        except DumpError as err:
            if err.field == "peer" and err.reason.startswith("no neighbor"):
                raise NotFound("peer", err.reason) from None
            if err.field == "peer" and err.reason.endswith("is not Established"):
                raise FailedPrecondition("peer", err.reason) from None
            raise InvalidArgument(err.field, err.reason) from None

        def failed(failure: Any) -> Any:
            if failure.check(OSError):
                raise Unavailable("file", f"cannot write {file}: {failure.value}")
            return failure

        return d.addErrback(failed)

    def _validate(self, table: Mapping[str, Any]) -> NeighborConfig:
        try:
            return neighbor_from_table(table, self.config)
        except ConfigError as err:
            first = err.errors[0]
            raise InvalidArgument(first.key, "; ".join(
                e.reason if e.key == first.key else f"{e.key}: {e.reason}" for e in err.errors)) from None


def _check_message(message: str) -> None:
    if len(message.encode("utf-8")) > 255:
        raise InvalidArgument("message", "the RFC 9003 shutdown communication is at most 255 octets")


def _sort_key(address: str) -> tuple[int, bytes]:
    ip = ipaddress.ip_address(address.split("%")[0])
    return ip.version, ip.packed


# -- Routes -------------------------------------------------------------------------

#: prefixes looked at per reactor turn by a listing or a dump (measured: see bench/api.py)
CHUNK = 5000
#: seconds a page token stays valid, and how many listings are kept for their next page
PAGE_TTL = 60.0
MAX_CURSORS = 64


class RouteRecord(NamedTuple):
    """One path of one prefix, as the API shows it.

    A NamedTuple, not attrs: a full-table listing builds 1.26 million of
    them on the reactor thread, and a tuple is the cheapest record there is.
    """

    prefix: str
    family: str
    path_id: int
    best: bool
    source_peer: str
    source_router_id: str
    attributes: PathAttributes
    explain_step: str = ""
    stale: bool = False
    #: RpkiState / AspaState numbers (proto/bgpd/v1/rpki.proto); 0 without [rpki].
    rpki: int = 0
    aspa: int = 0
    #: where the path stands with the kernel writer (``KernelService.path_state``):
    #: installed, pending, failed, filtered, unresolved, not-selected; "" without one
    kernel: str = ""
    #: seconds since the path's attribute set was first received from its peer (`path_age`)
    age: int = 0


@attrs.frozen
class Withdrawn:
    """A prefix that no longer has a best path (WatchRoutes), or a path gone from an Adj-RIB-In."""

    prefix: str
    family: str
    #: the ADD-PATH path id of the path gone from an Adj-RIB-In
    path_id: int = 0


@attrs.frozen
class EndOfDump:
    """The initial dump of a watch is complete (``count`` paths)."""

    count: int


@attrs.frozen
class Overflow:
    """A watch's queue passed its bound: the stream ends (RESOURCE_EXHAUSTED)."""

    bound: int


def parse_family(name: str, field: str = "family") -> tuple[int, int]:
    fam = FAMILIES_BY_NAME.get(name or "ipv4-unicast")
    if fam is None:
        raise InvalidArgument(field, f"unknown family {name!r}; one of {', '.join(FAMILIES_BY_NAME)}")
    return fam


def parse_prefix(text: str, family: tuple[int, int] | None, field: str) -> bytes:
    """A prefix (or, ``host=True`` style, a bare address as a full-length prefix) -> key."""
    try:
        afi, key = prefix_from_str(text if "/" in text else _host_prefix(text))
    except ValueError as e:
        raise InvalidArgument(field, f"not a prefix: {text!r} ({e})") from None
    if family is not None and afi != family[0]:
        raise InvalidArgument(field, f"{text} is not of family {family_name(*family)}")
    return key


def _host_prefix(text: str) -> str:
    ip = ipaddress.ip_address(text)
    return f"{ip}/{ip.max_prefixlen}"


def _split_key(key: Any) -> tuple[int, bytes]:
    """Adj-RIB keys are a prefix, or (path id, prefix) with ADD-PATH."""
    if key.__class__ is tuple:
        return key[0], key[1]
    return 0, key


class RouteCursor:
    """A listing in progress: :meth:`next` returns the next chunk (empty at the end).

    Built and advanced on the reactor thread.  It walks a snapshot of the
    table's keys taken at the start (one ``list()`` of the dict) and reads
    each key's current value, so a chunk never iterates a dict that the RIB
    changes between chunks; prefixes added after the start are not listed.
    """

    def __init__(self, control: Control, table: str, family: tuple[int, int], peer: PeerInfo | None,
                 keys: list[Any], match: Callable[[bytes], bool] | None, all_paths: bool,
                 limit: int) -> None:
        self.control = control
        self.table = table
        self.family = family
        self.peer = peer
        self.keys = keys
        self.match = match
        self.all_paths = all_paths
        self.limit = limit
        self.pos = 0
        self.sent = 0

    def _source(self) -> Mapping[Any, Any]:
        rib = self.control.service.rib_service.rib
        if self.table == LOC_RIB:
            return rib.loc_table(self.family)
        if self.table == ADJ_RIB_OUT:
            return rib.adj_rib_out(self.peer, self.family)
        return rib.adj_rib_in(self.peer, self.family, pre_policy=self.table == ADJ_RIB_IN_PRE)

    def next(self, n: int = CHUNK, most: int = 0) -> list[RouteRecord]:
        """The paths of the next ``n`` keys at most, and ``most`` paths at most (0: no cap).

        A key's paths are never split between two calls: a call stops before
        a key whose paths would pass ``most`` (unless it is the first).
        """
        cap = most or (1 << 62)
        if self.limit:
            cap = min(cap, self.limit - self.sent)
        out: list[RouteRecord] = []
        if cap <= 0:
            return out
        rib = self.control.service.rib_service.rib
        now = self.control.reactor.seconds()
        source = self._source()
        afi = self.family[0]
        fname = family_name(*self.family)
        match = self.match
        keys = self.keys
        table = self.table
        codes = self.control.route_codes
        # A lookup per listed path in the kernel writer's own tables: nothing kept per route.
        ksvc = self.control.service.kernel
        kstate = ksvc.path_state if ksvc is not None and table != ADJ_RIB_OUT else None
        fam = self.family
        i, end = self.pos, min(len(keys), self.pos + n)
        while i < end:
            key = keys[i]
            value = source.get(key)
            if value is None:
                i += 1
                continue
            path_id, prefix = _split_key(key)
            if match is not None and not match(prefix):
                i += 1
                continue
            text = prefix_to_str(prefix, afi)
            if table == ADJ_RIB_OUT:
                out.append(RouteRecord(text, fname, path_id, False, "", "", value))
            elif table == LOC_RIB:
                paths = (value,) if value.__class__ is Path else value
                if not self.all_paths or len(paths) == 1:
                    best = rib.eligible(paths[0])
                    out.append(_record(text, fname, paths[0], best, "", codes, prefix,
                                       kstate(fam, prefix, paths[0], best) if kstate else "", now))
                else:
                    if out and len(out) + len(paths) > cap:
                        break  # this prefix's paths go whole into the next call
                    steps = {id(loser): step for step, _, loser in rib.explain(self.family, prefix)}
                    for j, p in enumerate(paths):
                        best = j == 0 and rib.eligible(p)
                        out.append(_record(text, fname, p, best, steps.get(id(p), ""), codes, prefix,
                                           kstate(fam, prefix, p, best) if kstate else "", now))
            else:
                best = rib.best(self.family, prefix) is value
                out.append(_record(text, fname, value, best, "", codes, prefix,
                                   kstate(fam, prefix, value, best) if kstate else "", now))
            i += 1
            if len(out) >= cap:
                break
        self.pos = i
        self.sent += len(out)
        return out

    @property
    def raw(self) -> bool:
        """Whether :meth:`next_raw` serves this listing (the Loc-RIB's best paths)."""
        # With [rpki] a path's states depend on the prefix, which the snapshot's
        # per-path facts cannot carry: such listings take the per-record way.
        return self.table == LOC_RIB and not self.all_paths and self.control.route_codes is None

    def next_raw(self, n: int = CHUNK, most: int = 0) -> RawChunk:
        """:meth:`next` for a listing of best paths, as a snapshot for another thread to render.

        The reactor's share of a full-table listing: one dict lookup per
        prefix, and the facts the API shows of each distinct path (paths are
        shared by every prefix with the same source and attributes, so
        those are far fewer).  The grpc thread turns the snapshot into text
        and bytes (`bgpd.api.server.RouteEncoder.raw_response`) without
        touching the RIB.
        """
        cap = min(n, most) if most else n
        if self.limit:
            cap = min(cap, self.limit - self.sent)
        # Two lists, not a list of pairs: a pair per prefix would be 1.26 million
        # objects the collector tracks (and stops every thread to scan).
        out_keys: list[Any] = []
        paths: list[Path] = []
        meta: dict[Path, PathFacts] = {}
        # With [kernel], each prefix's place in the kernel (looked up in the
        # writer's own tables, as next() does), in step with the keys.
        ksvc = self.control.service.kernel
        kstate = ksvc.path_state if ksvc is not None else None
        kernel: list[str] | None = [] if kstate is not None else None
        if cap <= 0:
            return RawChunk(self.family, out_keys, paths, meta, kernel)
        rib = self.control.service.rib_service.rib
        source = self._source()
        match = self.match
        keys = self.keys
        i, end = self.pos, len(keys)
        get = source.get
        eligible = rib.eligible
        now = self.control.reactor.seconds()
        fam = self.family
        add_key, add_path = out_keys.append, paths.append
        while i < end and len(paths) < cap:
            stop = min(end, i + cap - len(paths))
            for key in keys[i:stop]:
                value = get(key)
                if value is None or (match is not None and not match(key)):
                    continue
                path = value if value.__class__ is Path else value[0]
                add_key(key)
                add_path(path)
                facts = meta.get(path)
                if facts is None:
                    info = path.owner.info
                    facts = meta[path] = PathFacts(path.attrs, info.address, info.router_id, path.path_id,
                                                   bool(path.stale), eligible(path), path_age(path, now))
                if kernel is not None:
                    kernel.append(kstate(fam, key, path, facts.best))
            i = stop
        self.pos = i
        self.sent += len(paths)
        return RawChunk(self.family, out_keys, paths, meta, kernel)

    @property
    def done(self) -> bool:
        return self.pos >= len(self.keys) or bool(self.limit and self.sent >= self.limit)


class PathFacts(NamedTuple):
    """What a listing shows of one (shared) path, read on the reactor thread."""

    attributes: PathAttributes
    source_peer: str
    source_router_id: str
    path_id: int
    stale: bool
    best: bool
    #: `path_age` when read
    age: int = 0
    #: RpkiState / AspaState numbers of the path *at one prefix* (a watch
    #: event's, with [rpki]); 0 in the per-path facts of a listing
    rpki: int = 0
    aspa: int = 0


class RawChunk(NamedTuple):
    """A chunk of a best-path listing: keys and their paths (in step), and each path's facts."""

    family: tuple[int, int]
    keys: list[Any]
    paths: list[Path]
    meta: dict[Path, PathFacts]
    #: each key's kernel state (`RouteRecord.kernel`), with [kernel]; else None
    kernel: list[str] | None = None

    @property
    def items(self) -> list[tuple[Any, Path]]:
        """(key, path) pairs."""
        return list(zip(self.keys, self.paths, strict=True))


def _record(prefix: str, family: str, path: Path, best: bool, step: str,
            codes: Callable[..., tuple[int, int]] | None = None, key: bytes = b"",
            kernel: str = "", now: float = 0.0) -> RouteRecord:
    info = path.peer
    rpki = aspa = 0
    if codes is not None:
        # RPKI / ASPA states of the path, computed as it is listed ([rpki] only).
        rpki, aspa = codes(info, FAMILIES_BY_NAME[family][0], key, path.attrs)
    return RouteRecord(prefix, family, path.path_id, best, info.address, info.router_id, path.attrs,
                       step, bool(path.stale), rpki, aspa, kernel, path_age(path, now))


def path_age(path: Path, now: float) -> int:
    """Whole seconds since ``path.since``: since its attribute set was first received
    from its source peer (the RIB shares one Path per peer and attribute set, so a
    prefix that moved onto an attribute set the peer already used gets that set's
    age, as BIRD's "since" does).  A graceful restart or an enhanced route refresh
    makes fresh paths of what the peer sends again, so the age counts from then.
    0 when unknown (a RIB without a clock)."""
    since = path.since
    return int(now - since) if since and now > since else 0


#: the longest lease TTL, seconds (a day)
MAX_LEASE_TTL = 86400


@attrs.frozen
class LeaseInfo:
    """A lease as the API shows it."""

    id: str
    ttl: float
    paths: int


class _Lease:
    """Paths tied to a client's liveness: a TTL it renews, or an open stream (ttl 0)."""

    def __init__(self, lease_id: str, ttl: float) -> None:
        self.id = lease_id
        self.ttl = ttl
        self.call: Any = None
        self.keys: set[tuple[tuple[int, int], bytes]] = set()

    def info(self) -> LeaseInfo:
        return LeaseInfo(self.id, self.ttl, len(self.keys))


@attrs.frozen
class OriginatedPath:
    """A validated path to originate (``parse_paths``)."""

    family: tuple[int, int]
    prefix: bytes
    attributes: PathAttributes
    #: the path as an ``[[originate]]`` table (what the state store keeps)
    table: Mapping[str, Any] = attrs.field(factory=dict, eq=False)


def parse_paths(items: list[Mapping[str, Any]], offset: int = 0) -> list[OriginatedPath]:
    """Validate paths to originate; pure (any thread).  Errors name ``paths[i].FIELD``.

    Each item has ``prefix``, ``next_hop`` and optional ``origin``, ``med``,
    ``local_pref``, ``communities``, ``large_communities``.  The next hop
    must be of the prefix's family (RFC 4760: an IPv6 prefix needs an IPv6
    next hop here; RFC 8950's IPv4-over-IPv6 is not offered).
    """
    out = []
    for i, item in enumerate(items, offset):
        where = f"paths[{i}]"
        text = item.get("prefix") or ""
        if not text:
            raise InvalidArgument(f"{where}.prefix", "required")
        try:
            afi, key = prefix_from_str(text)
        except ValueError as e:
            raise InvalidArgument(f"{where}.prefix", f"not a prefix: {text!r} ({e})") from None
        nh = item.get("next_hop") or ""
        if not nh:
            raise InvalidArgument(f"{where}.next_hop", "required")
        try:
            ip = ipaddress.ip_address(nh)
        except ValueError:
            raise InvalidArgument(f"{where}.next_hop", f"not an IP address: {nh!r}") from None
        if (ip.version == 4) != (afi == 1):
            raise InvalidArgument(f"{where}.next_hop",
                                  f"IPv{ip.version} next hop {nh} for {'IPv4' if afi == 1 else 'IPv6'} "
                                  f"prefix {text}")
        if ip.is_unspecified or ip.is_multicast:
            raise InvalidArgument(f"{where}.next_hop", f"must be a unicast address, got {nh}")
        origin = item.get("origin") or "igp"
        if origin not in ORIGIN_NAMES:
            raise InvalidArgument(f"{where}.origin", f"one of {', '.join(ORIGIN_NAMES)}, got {origin!r}")
        try:
            communities = tuple(parse_community(c) for c in item.get("communities", ()))
        except ValueError as e:
            raise InvalidArgument(f"{where}.communities", str(e)) from None
        try:
            large = tuple(parse_large_community(c) for c in item.get("large_communities", ()))
        except ValueError as e:
            raise InvalidArgument(f"{where}.large_communities", str(e)) from None
        attributes = PathAttributes(origin=int(ORIGIN_NAMES[origin]), as_path=(), next_hop=str(ip),
                                    med=item.get("med"), local_pref=item.get("local_pref"),
                                    communities=communities, large_communities=large)
        table: dict[str, Any] = {"prefix": prefix_to_str(key, afi), "next_hop": str(ip), "origin": origin}
        for name in ("med", "local_pref"):
            if item.get(name) is not None:
                table[name] = item[name]
        for name in ("communities", "large_communities"):
            if item.get(name):
                table[name] = list(item[name])
        out.append(OriginatedPath((afi, 1), key, attributes, table))
    return out


def check_stored_paths(paths: list[OriginatedPath], bgp: Mapping[str, Any]) -> Any:
    """Validate ``parse_paths``' results as ``[[originate]]`` tables; pure (any thread).

    Returns a `bgpd.statecontrol.OriginateBatch` for `Control.add_stored_batch`;
    errors name ``paths[i].KEY``.
    """
    from bgpd.statecontrol import check_originate

    try:
        return check_originate([p.table for p in paths], bgp)
    except ConfigError as err:
        first = err.errors[0] if hasattr(err, "errors") else err
        raise InvalidArgument(first.key.replace("originate[", "paths[", 1), first.reason) from None


def precompute_paths(snapshot: Any, batch: Any) -> Any:
    """`bgpd.statecontrol.precompute` (pure, any thread), its errors naming ``paths[i].KEY``."""
    from bgpd.statecontrol import precompute

    try:
        return precompute(snapshot, batch)
    except ConfigError as err:
        first = err.errors[0] if hasattr(err, "errors") else err
        raise InvalidArgument(first.key.replace("originate[", "paths[", 1), first.reason) from None


def _raise(err: BaseException) -> None:
    raise err


class WatchBatch(NamedTuple):
    """What one read of a watch takes (`RouteWatch.take`), for the grpc thread to render.

    ``events``: (family, key, (path, facts)) for a new best path,
    (family, key, None) for a withdrawal, or an `EndOfDump` (a key is a
    prefix, or (path id, prefix) in an ADD-PATH Adj-RIB-In); the
    path is there only as an identity for the encoder's cache (the grpc
    thread reads only its facts, read on the reactor).  ``lag``: the
    events still queued behind these.
    """

    events: list[Any]
    lag: int

    def records(self) -> list[Any]:
        """The events as RouteRecord / Withdrawn / EndOfDump (the slow, readable form)."""
        out: list[Any] = []
        for e in self.events:
            if isinstance(e, EndOfDump):
                out.append(e)
                continue
            fam, key, entry = e
            path_id, prefix = _split_key(key)
            text, fname = prefix_to_str(prefix, fam[0]), family_name(*fam)
            if entry is None:
                out.append(Withdrawn(text, fname, path_id))
            else:
                f = entry[1]
                out.append(RouteRecord(text, fname, f.path_id, f.best, f.source_peer, f.source_router_id,
                                       f.attributes, "", f.stale, f.rpki, f.aspa, age=f.age))
        return out


class _EndMarker:
    """The key of the end-of-dump entry in a watch's queue (unique, never a prefix)."""

    __slots__ = ()


def _facts(path: Path, cache: dict[Path, tuple[Path, PathFacts]], now: float) -> tuple[Path, PathFacts]:
    """(path, what a watch shows of it), read now on the reactor; ``cache`` for one batch."""
    hit = cache.get(path)
    if hit is None:
        info = path.owner.info
        hit = cache[path] = (path, PathFacts(path.attrs, info.address, info.router_id, path.path_id,
                                             bool(path.stale), True, path_age(path, now)))
    return hit


class RouteWatch:
    """One WatchRoutes stream: a bounded, coalescing queue filled on the reactor thread.

    The queue is an insertion-ordered dict keyed by (family, prefix): a
    prefix that changes again before the reader took it is sent once, with
    its latest state, in the place of its first change; so a reader that
    keeps up with distinct prefixes keeps up with any rate of change.  The
    reactor stores, per change, the facts the stream shows (read there);
    the reader takes a batch under ``_lock`` on its own thread, without a
    round trip through the reactor, and renders it there.  ``ready`` is set
    while the queue holds anything, for the reader to wait on.

    Routing never waits: past ``bound`` queued prefixes, when the reader
    has taken nothing for `WATCH_GRACE` seconds (or at once past
    `WATCH_HARD` times the bound), the watch unsubscribes, drops the
    queue, and the next ``take`` returns :class:`Overflow`, which ends the
    stream.  A reader that keeps taking is told its lag instead: one
    thread's share of the interpreter can trail an unthrottled full-table
    load by some hundred thousand prefixes without ever stopping.  The dump fills at most half
    the bound and then waits for the reader, so a reader that keeps up
    never overflows.  Changes during the dump are held (coalesced too, and
    bounded too) and queued after its end marker; dumped entries are keyed
    apart from changes, so a change to a dumped prefix follows the marker.
    """

    def __init__(self, control: Control, family: tuple[int, int] | None, within: bytes | None,
                 dump: bool, bound: int) -> None:
        self.control = control
        self.family = family
        self.within = within
        self.bound = bound
        self.pending: dict[Any, Any] = {}
        self.ready = threading.Event()
        self._lock = threading.Lock()
        self.closed = False
        self.overflow: Overflow | None = None
        #: when the queue last passed the bound with no take since (reactor seconds)
        self._behind_since: float | None = None
        self._dumping = dump
        self._held: dict[Any, Any] = {}
        self._end: EndOfDump | None = None
        self._unsubscribe = self._subscribe()
        self._cursors: list[RouteCursor] = []
        self._dumped = 0
        if dump:
            self._cursors = self._dump_cursors([family] if family is not None
                                               else list(FAMILIES_BY_NAME.values()))
            self._dump_step()

    def _subscribe(self) -> Callable[[], None]:
        return self.control.service.rib_service.rib.subscribe(self._changes)

    def _dump_cursors(self, fams: list[tuple[int, int]]) -> list[RouteCursor]:
        rib = self.control.service.rib_service.rib
        match = None if self.within is None else _within(self.within)
        return [RouteCursor(self.control, LOC_RIB, fam, None, list(rib.loc_table(fam)), match, False, 0)
                for fam in fams]

    @property
    def count(self) -> int:
        """Events queued and not yet taken."""
        return len(self.pending)

    def _overflow(self) -> None:
        self.close()
        with self._lock:
            self.overflow = Overflow(self.bound)
            self.pending = {}
        self._held = {}
        self.ready.set()

    def take(self, most: int) -> WatchBatch | Overflow:
        """Up to ``most`` queued events, oldest first (any thread); `Overflow` once it overflowed."""
        with self._lock:
            if self.overflow is not None:
                return self.overflow
            self._behind_since = None  # the reader is reading
            pending = self.pending
            keys = []
            for k in pending:
                keys.append(k)
                if len(keys) >= most:
                    break
            events: list[Any] = []
            for k in keys:
                entry = pending.pop(k)
                if k.__class__ is _EndMarker:
                    events.append(entry)
                elif len(k) == 2:  # (family, key): a change
                    events.append((k[0], k[1], entry))
                else:  # ("dump", family, key)
                    events.append((k[1], k[2], entry))
            if not pending and not self.closed:
                self.ready.clear()
            return WatchBatch(events, len(pending))

    def _dump_step(self) -> None:
        if self.closed:
            return
        # Fill the queue to half its bound at most: the rest is room for the
        # changes that keep arriving, so a reader that keeps up never overflows.
        room = self.bound // 2 - len(self.pending)
        if room <= 0:
            self.control.reactor.callLater(0.01, self._dump_step)
            return
        while self._cursors and self._cursors[0].done:
            self._cursors.pop(0)
        if self._cursors:
            cursor = self._cursors[0]
            chunk = cursor.next_raw(min(CHUNK, room))
            entries = self._dumped_entries(cursor.family, chunk)
            with self._lock:
                self.pending.update(entries)
            self._dumped += len(entries)
            if entries:
                self.ready.set()
            self.control.reactor.callLater(0, self._dump_step)
            return
        self._dumping = False
        self._end = EndOfDump(self._dumped)
        held, self._held = self._held, {}
        with self._lock:
            self.pending[_EndMarker()] = self._end
            self.pending.update(held)
        self.ready.set()
        if self._over(len(self.pending)):
            self._overflow()

    def _dumped_entries(self, fam: tuple[int, int], chunk: RawChunk) -> list[tuple[Any, Any]]:
        # The Loc-RIB's best paths; one with an unresolvable next hop is not
        # in the Loc-RIB as far as a watch goes.
        facts = {p: (p, f._replace(best=True)) for p, f in chunk.meta.items() if f.best}
        codes = self.control.route_codes
        if codes is None:
            return [(("dump", fam, key), facts[path])
                    for key, path in zip(chunk.keys, chunk.paths, strict=True) if path in facts]
        out = []
        for key, path in zip(chunk.keys, chunk.paths, strict=True):
            if path in facts:
                # [rpki]: the states of the path at this prefix
                p, f = facts[path]
                rpki, aspa = codes(path.peer, fam, key, path.attrs)
                out.append((("dump", fam, key), (p, f._replace(rpki=rpki, aspa=aspa))))
        return out

    def _changes(self, changes: list[Any]) -> None:
        if self.closed:
            return
        family, within = self.family, self.within
        cache: dict[Path, tuple[Path, PathFacts]] = {}
        now = self.control.reactor.seconds()
        codes = self.control.route_codes
        out = []
        for change in changes:
            fam, prefix, path = change.family, change.prefix, change.new
            if path is change.old:
                continue  # the multipath set changed, not the best path
            if family is not None and fam != family:
                continue
            if within is not None and not prefix_contains(within, prefix):
                continue
            if path is None:
                out.append(((fam, prefix), None))
            elif codes is None:
                out.append(((fam, prefix), _facts(path, cache, now)))
            else:
                # [rpki]: the states belong to the path at this prefix, not to the shared path.
                p, facts = _facts(path, cache, now)
                rpki, aspa = codes(path.peer, fam, prefix, path.attrs)
                out.append(((fam, prefix), (p, facts._replace(rpki=rpki, aspa=aspa))))
        self._queue(out)

    def _queue(self, entries: list[tuple[Any, Any]]) -> None:
        """Queue (key, entry) pairs: held during the dump, for the reader after it."""
        if not entries:
            return
        if self._dumping:
            self._held.update(entries)
            size = len(self._held)
        else:
            with self._lock:
                self.pending.update(entries)
                size = len(self.pending)
        if self._over(size):
            self._overflow()
        elif not self._dumping:
            self.ready.set()

    def _over(self, size: int) -> bool:
        """Whether ``size`` queued prefixes end the watch (reactor thread).

        Past ``bound`` the reader has `WATCH_GRACE` seconds to take a batch
        (each take starts the time again), and past `WATCH_HARD` times the
        bound the watch ends at once: a reader that keeps taking is only
        behind, one that stopped is really not reading.
        """
        if size <= self.bound:
            self._behind_since = None
            return False
        if size > self.bound * WATCH_HARD:
            return True
        now = self.control.reactor.seconds()
        since = self._behind_since
        if since is None:
            self._behind_since = now
            return False
        return now - since > WATCH_GRACE

    def close(self) -> None:
        """Stop watching (the client went away, or the queue overflowed)."""
        if not self.closed:
            self.closed = True
            self._unsubscribe()
            self._cursors = []
            self.ready.set()  # a reader waiting wakes and sees it closed


#: seconds a watch may stay past its bound without a read before it is ended
WATCH_GRACE = 2.0
#: past this many times its bound a watch is ended even while its reader reads
#: (20 x 100,000: more than a full table's 1.26 million prefixes, which the
#: coalescing queue holds at most once each, plus its dump)
WATCH_HARD = 20


class AdjRibInWatch(RouteWatch):
    """A watch of one peer's Adj-RIB-In, after (``pre_policy`` False) or before import policy.

    The RIB names the keys each turn touched for the peer
    (`Rib.watch_adj_rib_in`); this reads their state there and then, on the
    reactor: a path (best tells whether it is the Loc-RIB's best too) or a
    withdrawal.  Same queue as `RouteWatch`: coalesced per key, bounded,
    the dump first if asked.  A key the RIB names unchanged (a stale sweep,
    a soft reset in) is sent again with its state.
    """

    def __init__(self, control: Control, peer: PeerInfo, pre_policy: bool, family: tuple[int, int] | None,
                 within: bytes | None, dump: bool, bound: int) -> None:
        self.peer = peer
        self.pre_policy = pre_policy
        self.table = ADJ_RIB_IN_PRE if pre_policy else ADJ_RIB_IN
        super().__init__(control, family, within, dump, bound)

    def _subscribe(self) -> Callable[[], None]:
        return self.control.service.rib_service.rib.watch_adj_rib_in(self.peer, self._touched)

    def _dump_cursors(self, fams: list[tuple[int, int]]) -> list[RouteCursor]:
        rib = self.control.service.rib_service.rib
        match = None if self.within is None else _within(self.within)
        return [RouteCursor(self.control, self.table, fam, self.peer,
                            list(rib.adj_rib_in(self.peer, fam, self.pre_policy)), match, False, 0)
                for fam in fams]

    def _dumped_entries(self, fam: tuple[int, int], chunk: RawChunk) -> list[tuple[Any, Any]]:
        now = self.control.reactor.seconds()
        cache: dict[Path, tuple[Path, PathFacts]] = {}
        return [(("dump", fam, key), self._entry(fam, _split_key(key)[1], path, cache, now))
                for key, path in zip(chunk.keys, chunk.paths, strict=True)]

    def _touched(self, fam: tuple[int, int], keys: list) -> None:
        if self.closed or (self.family is not None and fam != self.family):
            return
        rib = self.control.service.rib_service.rib
        try:
            table = rib.adj_rib_in(self.peer, fam, self.pre_policy)
        except ValueError:
            # The session went down (the RIB drops the kept pre-policy table
            # whole) or soft reconfiguration went off: the keys named are gone.
            table = {}
        within = self.within
        now = self.control.reactor.seconds()
        cache: dict[Path, tuple[Path, PathFacts]] = {}
        out = []
        for key in keys:
            prefix = key[1] if key.__class__ is tuple else key
            if within is not None and not prefix_contains(within, prefix):
                continue
            path = table.get(key)
            out.append(((fam, key), None if path is None else self._entry(fam, prefix, path, cache, now)))
        self._queue(out)

    def _entry(self, fam: tuple[int, int], prefix: bytes, path: Path,
               cache: dict[Path, tuple[Path, PathFacts]], now: float) -> tuple[Path, PathFacts]:
        entry = _facts(path, cache, now)
        best = self.control.service.rib_service.rib.best(fam, prefix) is path
        return entry if best else (path, entry[1]._replace(best=False))


def _within(outer: bytes) -> Callable[[bytes], bool]:
    return lambda key: prefix_contains(outer, key)


def _first(source: dict) -> list[Any]:
    for k in source:
        return [k]
    return []


def _longest(source: dict, key: bytes, keyed: bool) -> list[Any]:
    """The keys of the longest prefix in ``source`` covering ``key`` (one probe per length)."""
    if keyed:
        # ADD-PATH keys (path id, prefix): one pass, keeping the longest cover.
        best: list[Any] = []
        for k in source:
            p = k[1]
            if prefix_contains(p, key):
                if best and p[0] > best[0][1][0]:
                    best = []
                if not best or p[0] == best[0][1][0]:
                    best.append(k)
        return best
    addr = key[1:]
    for plen in range(key[0], -1, -1):
        candidate = make_prefix(addr, plen)
        if candidate in source:
            return [candidate]
    return []


# -- Events -------------------------------------------------------------------------


@attrs.frozen
class SessionEventRecord:
    """One FSM state change of one neighbor."""

    peer: str
    old_state: str
    new_state: str
    reason: str
    time: float


class EventWatch:
    """One WatchEvents stream: a bounded queue filled on the reactor thread."""

    def __init__(self, control: Control, peer: str | None, bound: int) -> None:
        self.control = control
        self.peer = peer
        self.bound = bound
        self.queue: queue.Queue = queue.Queue()
        self.closed = False
        self._unsubscribe = control.service.rib_service.bridge.watch_state(self._changed)

    def _changed(self, peer: PeerFactory, old: State, new: State, reason: str) -> None:
        if self.closed:
            return
        address = normalize_address(peer.config.address)
        if self.peer is not None and address != self.peer:
            return
        if self.queue.qsize() >= self.bound:
            self.close()
            self.queue.put(Overflow(self.bound))
            return
        self.queue.put(SessionEventRecord(address, _STATE_NAMES.get(old, str(old)),
                                          _STATE_NAMES.get(new, str(new)), reason,
                                          self.control.reactor.seconds()))

    def close(self) -> None:
        if not self.closed:
            self.closed = True
            self._unsubscribe()


# -- Monitor: session history and MRT dumps (bgpd.monitor) ----------------------------


@attrs.frozen
class PeerHistoryInfo:
    """A neighbor's kept state changes (``bgpd.monitor.history.SessionEvent``) and flap count."""

    address: str
    description: str
    flaps: int
    events: tuple[Any, ...]
