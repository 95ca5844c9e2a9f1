"""The control object: everything the API may see or change, on the reactor thread.

The gRPC servicers (``bgpd.api.server``) call these methods only through
``blockingCallFromThread``; they take and return plain records (attrs) and
raise :class:`ControlError` subclasses, never protobuf types, so this module
is tested without gRPC.  Operator actions follow RFC 4271 section 8.1.2
(ManualStart / ManualStop), RFC 4486 (Cease subcodes), RFC 9003 (shutdown
communication), RFC 2918 / RFC 7313 (ROUTE-REFRESH for the inbound soft reset).

Neighbors added, changed or removed here go through the same path as a
SIGHUP reload (:meth:`BgpdService.apply_config`), and are kept in memory only.
"""

from __future__ import annotations

from collections.abc import Mapping
from typing import Any

import attrs
from twisted.logger import Logger

import bgpd
from bgpd.config import Config, ConfigError, NeighborConfig, neighbor_from_table
from bgpd.rib import PeerInfo
from bgpd.session.factory import PeerFactory
from bgpd.session.fsm import State
from bgpd.wire.address import normalize_address
from bgpd.wire.constants import FAMILIES_BY_NAME, family_name
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
        #: addresses of the neighbors added through the API (not in the file)
        self.api_peers: set[str] = set()

    # -- lookups -----------------------------------------------------------

    @property
    def reactor(self) -> Any:
        return self.service.reactor

    @property
    def config(self) -> Config:
        return self.service.config

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

    # -- Peers: reading ----------------------------------------------------

    def peers(self) -> list[PeerStatus]:
        """Every neighbor, sorted by address."""
        items = self.service.sessions.peers.items()
        return [self._status(p) for _, p in sorted(items, key=lambda kv: _sort_key(kv[0]))]

    def peer(self, address: str) -> PeerStatus:
        return self._status(self._factory(address))

    def _status(self, peer: PeerFactory) -> PeerStatus:
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
                accepted.append((name, len(rib.adj_rib_in(pi, fam))))
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
            from_api=normalize_address(peer.config.address) in self.api_peers,
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
        """Add a neighbor, validated as a [[neighbors]] table; errors name ``neighbor.KEY``."""
        neighbor = self._validate(table)
        key = normalize_address(neighbor.address)
        if self.config.neighbor(key) is not None:
            raise AlreadyExists("neighbor.address", f"neighbor {key} already exists")
        self._apply(attrs.evolve(self.config, neighbors=(*self.config.neighbors, neighbor)))
        self.api_peers.add(key)
        log.info("API: added peer {peer}", peer=key)
        return self._status(self.service.sessions.peers[key])

    def update_peer(self, table: Mapping[str, Any]) -> PeerStatus:
        """Replace a neighbor's settings; resets the session only when the change needs it."""
        neighbor = self._validate(table)
        key = normalize_address(neighbor.address)
        if self.config.neighbor(key) is None:
            raise NotFound("neighbor.address", f"no neighbor {key}")
        neighbors = tuple(neighbor if normalize_address(n.address) == key else n
                          for n in self.config.neighbors)
        self._apply(attrs.evolve(self.config, neighbors=neighbors))
        log.info("API: updated peer {peer}", peer=key)
        return self._status(self.service.sessions.peers[key])

    def delete_peer(self, address: str) -> None:
        """Remove a neighbor (Cease / Peer De-configured)."""
        peer = self._factory(address)
        key = normalize_address(peer.config.address)
        neighbors = tuple(n for n in self.config.neighbors if normalize_address(n.address) != key)
        self._apply(attrs.evolve(self.config, neighbors=neighbors))
        self.api_peers.discard(key)
        log.info("API: deleted peer {peer}", peer=key)

    def _validate(self, table: Mapping[str, Any]) -> NeighborConfig:
        try:
            return neighbor_from_table(table, self.config)
        except ConfigError as err:
            first = err.errors[0]
            raise InvalidArgument(first.key, "; ".join(
                e.reason if e.key == first.key else f"{e.key}: {e.reason}" for e in err.errors)) from None

    def _apply(self, new: Config) -> None:
        """Run ``new`` as a SIGHUP reload would (the candidate was validated)."""
        service = self.service
        prepared = service.rib_service.prepare(new)
        service.config = new
        service.rib_service.reload(new, prepared)
        service.sessions.reload(new)


def _check_message(message: str) -> None:
    if len(message.encode("utf-8")) > 255:
        raise InvalidArgument("message", "the RFC 9003 shutdown communication is at most 255 octets")


def _sort_key(address: str) -> tuple[int, bytes]:
    import ipaddress

    ip = ipaddress.ip_address(address.split("%")[0])
    return ip.version, ip.packed
