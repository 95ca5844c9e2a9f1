"""The service tree: builds and runs everything a config describes.

    BgpdService (MultiService, "bgpd")
      SessionsService ("sessions"): listening ports + one PeerFactory per neighbor
      RibService ("rib"): the RIB, and the bridge sessions <-> RIB
      KernelService ("kernel", with a [kernel] section): best paths into a
        kernel routing table (bgpd.kernel)
      RpkiService ("rpki", with an [rpki] section): the RTR caches (RFC 8210)
        feeding the VRP / ASPA tables routes are validated against (bgpd.rpki)
      MonitorService ("monitor"): session history, metrics ([monitor]),
        MRT dumps ([mrt]) (bgpd.monitor)

SIGHUP reloads the config file: added peers start, removed peers stop with
Cease "peer de-configured", changed peers reset only when the change needs a
new session; a bad file is refused and the running config kept.

Route policy (RFC 4271 9.1.1 / 9.1.3) changes apply without a reset: the
candidate's policies are compiled first (a failure refuses the reload), then
every up peer whose import or export chain now behaves differently gets the
new chain.  Import: the kept pre-policy Adj-RIB-In is run again (soft
reconfiguration), or the peer is sent ROUTE-REFRESH (RFC 2918) and what it
re-sends meets the new chain.  Export: each update group recomputes its
Adj-RIB-Out and sends only the differences.
"""

from __future__ import annotations

import os
import signal
import socket
from collections.abc import Mapping
from typing import Any

import attrs as _attrs
from twisted.application.service import MultiService, Service
from twisted.internet.defer import Deferred
from twisted.logger import Logger

from bgpd import hotpath
from bgpd.config import (
    API_SOCKET_NAME,
    ApiConfig,
    Config,
    ConfigError,
    NeighborConfig,
    import_chain_names,
    load_config,
    policy_inputs,
)
from bgpd.kernel.service import KernelService
from bgpd.monitor.metrics import DaemonParts
from bgpd.monitor.service import MonitorService
from bgpd.policy import BUILTIN, Policy
from bgpd.policy.engine import compile_policies
from bgpd.rib import PeerInfo, Rib, RibOptions, peer_role
from bgpd.rpki.service import RpkiService
from bgpd.rpki.slurm import Slurm
from bgpd.rpki.validation import RouteValidation
from bgpd.runtime import tune_gc, tune_switch_interval
from bgpd.session.factory import PeerFactory, SessionListener
from bgpd.session.fsm import State
from bgpd.session.listener import BGPServerFactory, install_md5, listen, set_listen_ttl
from bgpd.session.negotiation import SessionInfo
from bgpd.session.tap import FanoutTap, PeerUp, SessionTap
from bgpd.state.store import MemoryStore, StateStore
from bgpd.statecontrol import StateControl, read_overlay, resolve_state_dir
from bgpd.wire.address import normalize_address
from bgpd.wire.attributes import PathAttributes
from bgpd.wire.constants import (
    AFI,
    FAMILIES_BY_NAME,
    IPV4_UNICAST,
    ORIGIN_NAMES,
    CeaseError,
    RefreshSubtype,
    family_name,
)
from bgpd.wire.nlri import prefix_from_str
from bgpd.wire.refresh import RouteRefresh
from bgpd.wire.update import Update

log = Logger()


def _wait_closed(reactor: Any, protos: list, timeout: float) -> Deferred:
    """A Deferred that fires when every protocol's connection is gone, or at ``timeout``."""
    d: Deferred = Deferred()
    deadline = reactor.seconds() + timeout

    def check() -> None:
        if all(p.lost or p.transport is None for p in protos) or reactor.seconds() >= deadline:
            d.callback(None)
        else:
            reactor.callLater(0.05, check)

    check()
    return d


class SessionsService(Service):
    """Listening sockets and the per-peer factories."""

    name = "sessions"

    def __init__(self, config: Config, listener: SessionListener, reactor: Any = None) -> None:
        if reactor is None:
            from twisted.internet import reactor as _reactor

            reactor = _reactor
        self.reactor = reactor
        self.config = config
        self.listener = listener
        self.peers: dict[str, PeerFactory] = {}
        self.ports: list[Any] = []
        self.server = BGPServerFactory(self.lookup)
        #: What every peer reports its messages, ups and downs to (BMP), or None.
        self.message_tap: SessionTap | None = None

    def lookup(self, address: str) -> PeerFactory | None:
        return self.peers.get(address)

    def _make_peer(self, neighbor: NeighborConfig) -> PeerFactory:
        peer = PeerFactory(neighbor, self.config.bgp.router_id, self.listener, self.reactor,
                           route_server=neighbor.route_server_client)
        if self.message_tap is not None:
            peer.set_message_tap(self.message_tap)
        return peer

    def set_message_tap(self, tap: SessionTap | None) -> None:
        """Give every peer, now and later, ``tap`` (:mod:`bgpd.session.tap`)."""
        self.message_tap = tap
        for peer in self.peers.values():
            peer.set_message_tap(tap)

    def startService(self) -> None:
        super().startService()
        self._start_all()

    def stopService(self) -> Any:
        protos = [p for peer in self.peers.values()
                  for p in (peer.protocol_instance, peer.pending) if p is not None]
        for peer in list(self.peers.values()):
            peer.stop("bgpd shutting down")
        for port in self.ports:
            port.stopListening()
        self.ports = []
        super().stopService()
        # Give the Cease NOTIFICATIONs time to be written before the reactor
        # tears the sockets down (bounded: 2 seconds).
        return _wait_closed(self.reactor, protos, 2.0)

    def _listen(self) -> None:
        bgp = self.config.bgp
        for address in bgp.listen_addresses:
            try:
                port = listen(self.reactor, self.server, address, bgp.listen_port)
            except Exception as e:  # noqa: BLE001 - CannotListenError and friends
                log.error("cannot listen on [{addr}]:{port}: {error}", addr=address,
                          port=bgp.listen_port, error=e)
                continue
            log.info("listening for BGP on [{addr}]:{port}", addr=address,
                     port=port.getHost().port)
            self.ports.append(port)
            if any(n.ttl_security for n in self.config.neighbors):
                try:
                    set_listen_ttl(port)
                except OSError as e:
                    log.error("cannot set TTL 255 on [{addr}] for GTSM: {error}", addr=address,
                              error=e)
        self._install_md5()

    def _install_md5(self, removed: dict[str, None] | None = None) -> None:
        keys: dict[str, str | None] = dict(removed or {})
        for n in self.config.neighbors:
            if n.md5_password:
                keys[n.address] = n.md5_password
        for port in self.ports:
            install_md5(port, keys)

    def reload(self, new: Config) -> None:
        old = self.config
        if (old.bgp.router_id, old.bgp.local_as) != (new.bgp.router_id, new.bgp.local_as):
            log.warn("router_id or local_as changed: resetting every session")
            for peer in self.peers.values():
                peer.stop("router id or local AS changed", CeaseError.OTHER_CONFIGURATION_CHANGE)
            self.peers = {}
            for port in self.ports:
                port.stopListening()
            self.ports = []
            self.config = new
            self._start_all()
            return
        if (old.bgp.listen_addresses, old.bgp.listen_port) != (new.bgp.listen_addresses,
                                                               new.bgp.listen_port):
            for port in self.ports:
                port.stopListening()
            self.ports = []
            self.config = new
            self._listen()
        self.config = new
        changes = old.neighbor_changes(new)
        removed = {}
        for address in changes.removed:
            peer = self.peers.pop(address, None)
            if peer is not None:
                log.info("peer {peer} removed from the config", peer=address)
                peer.deconfigure()
            if old.neighbor(address).md5_password:
                removed[address] = None
        for address in changes.changed:
            before, neighbor = old.neighbor(address), new.neighbor(address)
            peer = self.peers.get(address)
            if peer is None:
                continue  # started below, like an added one
            if address in changes.reset:
                log.info("peer {peer} changed: resetting the session", peer=address)
                peer.stop("configuration changed", CeaseError.OTHER_CONFIGURATION_CHANGE)
                del self.peers[address]
            else:
                log.info("peer {peer} changed (no reset needed)", peer=address)
                peer.config = neighbor
                self.listener_config_changed(peer, before, neighbor)
        self._start_missing()
        self._install_md5(removed)

    def _start_all(self) -> None:
        self._listen()
        self._start_missing()

    def _start_missing(self) -> None:
        """Start a peer for every configured neighbor that has none (added, or reset)."""
        for neighbor in self.config.neighbors:
            address = normalize_address(neighbor.address)
            if address in self.peers:
                continue
            log.info("peer {peer} starting", peer=address)
            peer = self.peers[address] = self._make_peer(neighbor)
            if neighbor.enabled:
                peer.start()

    def listener_config_changed(self, peer: PeerFactory, old: NeighborConfig,
                                new: NeighborConfig) -> None:
        self.listener.peer_config_changed(peer, old, new)


class RoutingBridge(SessionListener):
    """The SessionListener that connects sessions to the RIB (see RibService).

    It declares the interface it implements; every method is defined here,
    so none falls back to the interface's empty body.
    """

    def __init__(self, service: RibService) -> None:
        self.service = service
        #: callbacks ``(peer, old, new, reason)`` for every FSM state change (the API's Events)
        self.state_watchers: list[Any] = []

    def watch_state(self, callback: Any) -> Any:
        """Call ``callback(peer, old, new, reason)`` on each state change; returns unsubscribe."""
        self.state_watchers.append(callback)

        def unsubscribe() -> None:
            if callback in self.state_watchers:
                self.state_watchers.remove(callback)

        return unsubscribe

    def session_established(self, peer: PeerFactory, info: SessionInfo) -> None:
        self.service.peer_up(peer, info)

    def session_down(self, peer: PeerFactory, reason: str, graceful: bool) -> None:
        self.service.peer_down(peer, reason, graceful)

    def updates_received(self, peer: PeerFactory, updates: list[Update]) -> None:
        self.service.updates(peer, updates)

    def refresh_requested(self, peer: PeerFactory, refresh: RouteRefresh) -> None:
        self.service.refresh(peer, refresh)

    def state_changed(self, peer: PeerFactory, old: State, new: State, reason: str) -> None:
        # The RIB cares only about Established and down; the API's watchers see all.
        for callback in list(self.state_watchers):
            callback(peer, old, new, reason)

    def output_resumed(self, peer: PeerFactory) -> None:
        self.service.output_resumed(peer)

    def peer_config_changed(self, peer: PeerFactory, old: NeighborConfig, new: NeighborConfig) -> None:
        self.service.peer_config_changed(peer, old, new)


class RibService(Service):
    """Owns the RIB and originated routes; the bridge feeds it from sessions."""

    name = "rib"

    def __init__(self, config: Config, reactor: Any) -> None:
        self.config = config
        self.reactor = reactor
        bgp = config.bgp
        #: name -> compiled policy (the built-ins too), and what each was compiled from
        self.policies: dict[str, Policy] = {}
        self._policy_inputs: dict[str, tuple] = {}
        #: RPKI origin validation and ASPA (bgpd.rpki.validation): None without [rpki].
        self.validation: RouteValidation | None = _validation(config)
        self.policies, self._policy_inputs = self.prepare(config)
        self.rib = Rib(bgp.router_id, bgp.local_as, bgp.cluster_id, _rib_options(config),
                       call_later=reactor.callLater, policies=self.policies, clock=reactor.seconds)
        if self.validation is not None:
            # VRP / ASPA / SLURM changes re-run import policy where they matter.
            self.validation.attach(self.rib)
        self.bridge = RoutingBridge(self)
        self.peers: dict[PeerFactory, PeerInfo] = {}
        self._originated: dict[tuple[tuple[int, int], bytes], PathAttributes] = {}
        self._originate_built: dict[Any, tuple[tuple[tuple[int, int], bytes], PathAttributes]] = {}
        self._factories: dict[PeerInfo, PeerFactory] = {}
        self.rib.watch_prefix_counts(self._prefix_count)
        self.rib.watch_backlog(self._backlog)

    def startService(self) -> None:
        super().startService()
        self._sync_originated(self.config)

    # -- sessions -------------------------------------------------------------

    def peer_up(self, peer: PeerFactory, info: SessionInfo) -> None:
        cfg = peer.config
        proto = peer.protocol_instance
        local = None
        if proto is not None and proto.transport is not None:
            try:
                # Our address becomes a NEXT_HOP, which carries no zone.
                local = normalize_address(proto.transport.getHost().host, keep_zone=False)
            except (ValueError, AttributeError):
                local = None
        local = local or cfg.local_address
        if local is not None and ":" in local:
            local_address, next_hop6 = cfg.next_hop_ipv4 or local, local
        else:
            local_address, next_hop6 = local, cfg.next_hop_ipv6
        pi = PeerInfo(
            address=normalize_address(cfg.address),
            remote_as=info.peer_asn,
            local_as=cfg.local_as,
            router_id=info.peer_router_id,
            route_reflector_client=cfg.route_reflector_client,
            route_server_client=cfg.route_server_client,
            next_hop_self=cfg.next_hop_self,
            role=peer_role(cfg.role),
            local_address=local_address,
            next_hop6=next_hop6,
            allowas_in=cfg.allowas_in,
        )
        old = self.peers.get(peer)
        if old is not None:
            self._factories.pop(old, None)
        self.peers[peer] = pi
        self._factories[pi] = peer
        if (not pi.ibgp and not pi.route_server_client and ":" in (local_address or "")
                and IPV4_UNICAST in info.families
                and (AFI.IPV4, 1, AFI.IPV6) not in info.negotiated.ext_nexthop):
            log.warn("peer {peer}: IPv4 unicast over an IPv6 session without an IPv4 next hop "
                     "of ours: no IPv4 routes are sent (set next_hop_ipv4, or extended_next_hop "
                     "on both sides, RFC 8950)", peer=pi.address)
        if not pi.ibgp:
            for direction, names in (("import", cfg.import_policy), ("export", cfg.export_policy)):
                if tuple(names) == ("reject-all",):
                    log.warn("peer {peer}: eBGP with {direction} policy reject-all: no routes "
                             "{way} (RFC 8212; set {direction}_policy to change this)",
                             peer=pi.address, direction=direction,
                             way="accepted" if direction == "import" else "sent")
        gr = info.graceful_restart
        # RFC 4724 4.2: the families whose forwarding state the peer kept
        # across its restart; the stale routes of the others go at once.
        restarting = None if gr is None else frozenset(
            (afi, safi) for afi, safi, flags in gr.families if flags & gr.FORWARDING_STATE)
        self.rib.add_peer(pi, info.families, info.negotiated, peer,
                          import_policy=import_chain_names(self.config.bgp, cfg),
                          export_policy=cfg.export_policy,
                          soft_reconfiguration=cfg.soft_reconfiguration_inbound, mrai=cfg.mrai,
                          restarting=restarting)
        if self.rib.backlogged:
            # The others are not being read until the queue drains: nor is this one.
            peer.hold_input(True)

    def peer_down(self, peer: PeerFactory, reason: str, graceful: bool) -> None:
        pi = self.peers.pop(peer, None)
        if pi is None:
            return
        self._factories.pop(pi, None)
        stale = 0.0
        gr = peer.session_info.graceful_restart if peer.session_info is not None else None
        if graceful and gr is not None:
            stale = float(gr.restart_time)
        if graceful and stale > 0:
            log.info("peer {peer} down ({reason}); graceful restart: keeping its routes "
                     "as stale for up to {t:g}s", peer=pi.address, reason=reason, t=stale)
        self.rib.remove_peer(pi, graceful=graceful and stale > 0, stale_time=stale)

    def _backlog(self, full: bool) -> None:
        # Inbound flow control: the RIB's queue is full (or drained again).
        for peer in self.peers:
            peer.hold_input(full)

    def update(self, peer: PeerFactory, update: Update) -> None:
        """One UPDATE from ``peer``'s session."""
        self.updates(peer, [update])

    def updates(self, peer: PeerFactory, updates: list[Update]) -> None:
        """UPDATEs from ``peer``'s session, in order (see SessionListener.updates_received)."""
        pi = self.peers.get(peer)
        if pi is None:
            return
        self.rib.receive_many(pi, updates)

    def _prefix_count(self, info: PeerInfo, family: tuple[int, int], count: int) -> None:
        # Max-prefix (RFC 4486): the RIB reports each changed count once per batch.
        peer = self._factories.get(info)
        if peer is not None and peer.config.max_prefix:
            peer.note_prefix_count(family_name(*family), count)

    def refresh(self, peer: PeerFactory, refresh: RouteRefresh) -> None:
        pi = self.peers.get(peer)
        if pi is None:
            return
        family = (refresh.afi, refresh.safi)
        info = peer.session_info
        enhanced = info is not None and info.enhanced_route_refresh
        if refresh.subtype == RefreshSubtype.NORMAL:
            log.info("peer {peer}: ROUTE-REFRESH for {afi}/{safi}: sending the table again",
                     peer=pi.address, afi=refresh.afi, safi=refresh.safi)
            self.rib.refresh_out(pi, family, enhanced)
        elif not enhanced:
            log.info("peer {peer}: ignoring BoRR/EoRR: enhanced route refresh not negotiated",
                     peer=pi.address)
        elif refresh.subtype == RefreshSubtype.BEGIN:
            self.rib.begin_refresh(pi, family)
        elif refresh.subtype == RefreshSubtype.END:
            self.rib.end_refresh(pi, family)
        else:
            # RFC 7313 section 5: an unknown subtype is ignored.
            log.info("peer {peer}: ignoring ROUTE-REFRESH subtype {sub}", peer=pi.address,
                     sub=refresh.subtype)

    def output_resumed(self, peer: PeerFactory) -> None:
        pi = self.peers.get(peer)
        if pi is not None:
            self.rib.resume(pi)

    def peer_config_changed(self, peer: PeerFactory, old: NeighborConfig, new: NeighborConfig) -> None:
        """A neighbor changed without a reset: nothing left to do here.

        Its policy chains were compared and applied by :meth:`reload`, which
        runs first and also sees changes of ``[bgp] import_policy``, of
        ``[policies]`` and ``[sets]`` that leave the neighbor itself unchanged.
        """

    # -- policy ---------------------------------------------------------------

    def prepare(self, config: Config) -> tuple[dict[str, Policy], dict[str, tuple]]:
        """Compile ``config``'s policies: the registry and each policy's inputs.

        A policy whose definition and sets did not change keeps its compiled
        object (and its caches, and the update groups of the peers using it).
        Raises whatever the compiler raises; nothing running is touched.
        """
        inputs = {name: policy_inputs(config, name) for name, _ in config.policies}
        keep = {n: self.policies[n] for n, i in inputs.items()
                if n in self.policies and self._policy_inputs.get(n) == i}
        v = self.validation
        rpki, aspa = (None, None) if v is None else (v.rpki_state, v.aspa_state)
        fresh = compile_policies(config.sets, [d for n, d in config.policies if n not in keep], rpki, aspa)
        return {**BUILTIN, **keep, **fresh}, inputs

    def _apply_policies(self, old: Config, new: Config) -> None:
        """Give every up peer whose chains now behave differently the new ones (no reset)."""
        changes = old.neighbor_changes(new)
        going = set(changes.removed) | set(changes.reset)
        exports: dict[str, tuple[str, ...]] = {}
        for peer, pi in list(self.peers.items()):
            before, after = old.neighbor(pi.address), new.neighbor(pi.address)
            if before is None or after is None or normalize_address(after.address) in going:
                continue  # it goes down (and comes back with the new config)
            imp_old, imp_new = import_chain_names(old.bgp, before), import_chain_names(new.bgp, after)
            if _chain_inputs(old, imp_old) != _chain_inputs(new, imp_new):
                self._change_import(peer, pi, after, imp_new)
            if _chain_inputs(old, before.export_policy) != _chain_inputs(new, after.export_policy):
                log.info("peer {peer}: export policy changed ({names}): sending the differences",
                         peer=pi.address, names=", ".join(after.export_policy))
                exports[pi.address] = after.export_policy
        if exports:
            self.rib.set_export_policies(exports)

    def _change_import(self, peer: PeerFactory, pi: PeerInfo, cfg: NeighborConfig,
                       names: tuple[str, ...]) -> None:
        if cfg.soft_reconfiguration_inbound:
            log.info("peer {peer}: import policy changed ({names}): re-running it over the "
                     "kept Adj-RIB-In (soft reconfiguration)", peer=pi.address, names=", ".join(names))
            self.rib.reimport(pi, names)
            return
        # Routes processed from now on, the refreshed ones first among them,
        # go through the new chain.
        self.rib.set_import_policy(pi, names)
        if peer.request_refresh_all():
            log.info("peer {peer}: import policy changed ({names}): sent ROUTE-REFRESH",
                     peer=pi.address, names=", ".join(names))
        else:
            log.warn("peer {peer}: import policy changed but the peer does not support "
                     "route refresh and soft reconfiguration is off: the new policy applies "
                     "to the routes it sends from now on; reset the session to apply it to "
                     "the others", peer=pi.address)

    # -- config ---------------------------------------------------------------

    def reload(self, config: Config,
               prepared: tuple[dict[str, Policy], dict[str, tuple]] | None = None) -> None:
        """Take ``config`` over (``prepared``: what :meth:`prepare` returned for it)."""
        old = self.config
        if prepared is None:
            prepared = self.prepare(config)
        self.config = config
        rib = self.rib
        if (old.bgp.router_id, old.bgp.local_as, old.bgp.cluster_id) != (
                config.bgp.router_id, config.bgp.local_as, config.bgp.cluster_id):
            # Every session is reset for this (SessionsService.reload); the
            # RIB takes the new identity before they come back.
            rib.router_id = config.bgp.router_id
            rib.local_as = config.bgp.local_as
            rib.cluster_id = config.bgp.cluster_id
        if _rib_options(old) != _rib_options(config):
            log.warn("decision/MRAI options changed in [bgp]: they apply after a restart of "
                     "bgpd; the running RIB keeps the old ones")
        self.policies, self._policy_inputs = prepared
        rib.set_policies(self.policies)
        self._reload_rpki(old, config)
        if (old.bgp.router_id, old.bgp.local_as) == (config.bgp.router_id, config.bgp.local_as):
            self._apply_policies(old, config)
        self._sync_originated(config)

    def _reload_rpki(self, old: Config, new: Config) -> None:
        """SIGHUP: a changed SLURM file is applied over the caches' data (RFC 8416), no fetch."""
        if (old.rpki is None) != (new.rpki is None):
            log.warn("[rpki] was {what}: origin validation is turned {how} after a restart of bgpd",
                     what="added" if old.rpki is None else "removed",
                     how="on" if old.rpki is None else "off")
            return
        if self.validation is None or new.rpki is None:
            return
        rules = new.rpki.slurm_rules or Slurm()
        if rules != self.validation.slurm:
            self.validation.apply_slurm(rules)
            log.info("rpki: SLURM file {path} applied: {filters} filters, {assertions} assertions",
                     path=new.rpki.slurm or "(none)", filters=len(rules.filters),
                     assertions=len(rules.assertions))

    def configured_route(self, family: tuple[int, int], prefix: bytes) -> PathAttributes | None:
        """The attributes the config (file and state store) originates ``prefix`` with, or None."""
        return self._originated.get((family, prefix))

    def _sync_originated(self, config: Config) -> None:
        wanted: dict[tuple[tuple[int, int], bytes], PathAttributes] = {}
        # Every API change re-runs this; with 100,000 originated paths,
        # parsing each prefix again would stall the reactor for a second.
        built = self._originate_built
        fresh: dict[Any, tuple[tuple[tuple[int, int], bytes], PathAttributes]] = {}
        for route in config.originate:
            hit = built.get(route)
            if hit is None:
                hit = originated_route(route)
            fresh[route] = hit
            wanted[hit[0]] = hit[1]
        self._originate_built = fresh
        for (fam, key) in self._originated.keys() - wanted.keys():
            self.rib.withdraw_originated(fam, key)
        originated = self._originated
        for (fam, key), attrs in wanted.items():
            now = originated.get((fam, key))
            # "is" first: a route built before (or taken by take_originated) is
            # the same object, and comparing attribute sets field by field
            # for 100,000 API paths was most of a reload's time
            if now is not attrs and now != attrs:
                self.rib.originate(fam, key, attrs)
        self._originated = wanted

    def take_originated(self, built: list[tuple[Any, tuple[Any, PathAttributes]]]) -> None:
        """Originate some of the next config's routes now (the API, in chunks, before
        :meth:`reload` takes that config; its sync then finds them in place).

        ``built``: (OriginateConfig, :func:`originated_route` of it) pairs.
        """
        for route, hit in built:
            self._originate_built[route] = hit
            k, attrs = hit
            now = self._originated.get(k)
            if now is not attrs and now != attrs:
                self._originated[k] = attrs
                self.rib.originate(k[0], k[1], attrs)


def originated_route(route: Any) -> tuple[tuple[tuple[int, int], bytes], PathAttributes]:
    """An ``[[originate]]`` record as the RIB takes it: ((family, prefix key), attributes).

    Pure: the API builds these on its own threads for a large batch.
    """
    afi, key = prefix_from_str(route.prefix)
    fam = FAMILIES_BY_NAME[route.family]
    return (fam, key), PathAttributes(
        origin=int(ORIGIN_NAMES[route.origin]),
        as_path=(),
        next_hop=route.next_hop,
        med=route.med,
        local_pref=route.local_pref,
        communities=tuple(route.communities),
        large_communities=tuple(route.large_communities),
        ext_communities=tuple(route.ext_communities),
    )


def _chain_inputs(config: Config, names: tuple[str, ...]) -> tuple:
    """What a chain of policy names behaves by in ``config`` (see ``policy_inputs``)."""
    return tuple(policy_inputs(config, name) for name in names)


def _validation(config: Config) -> RouteValidation | None:
    """The VRP / ASPA tables for ``[rpki]`` (with its SLURM file applied), or None."""
    if config.rpki is None:
        return None
    v = RouteValidation()
    if config.rpki.slurm_rules is not None:
        v.apply_slurm(config.rpki.slurm_rules)
    return v


def _rib_options(config: Config) -> RibOptions:
    bgp = config.bgp
    return RibOptions(
        default_local_pref=bgp.default_local_pref,
        always_compare_med=bgp.always_compare_med,
        deterministic_med=bgp.deterministic_med,
        max_paths=bgp.max_paths,
        multipath_relax=bgp.multipath_relax,
        mrai_ebgp=bgp.mrai_ebgp,
        mrai_ibgp=bgp.mrai_ibgp,
    )


def api_config(root: BgpdService) -> ApiConfig:
    """``[api]`` with ``listen`` resolved: without one, the socket in ``[bgp] state_dir``.

    The directory is made (mode 0750, as the state store makes it) so that
    the socket's access is the directory's: the operator's group, not every
    local user as a loopback port would be.
    """
    api = root.config.api
    if api.listen:
        return api
    state_dir = resolve_state_dir(root.config, root.config_path)
    try:
        os.makedirs(state_dir, mode=0o750, exist_ok=True)
    except OSError as e:
        raise ValueError(f"api.listen: the default socket is in bgp.state_dir {state_dir}, "
                         f"which cannot be made: {e.strerror}") from None
    return _attrs.evolve(api, listen=f"unix:{os.path.join(state_dir, API_SOCKET_NAME)}")


class ApiService(Service):
    """The gRPC API ([api]): one Control object handed to grpcio's servicers.

    grpcio runs in its own threads; its handlers wait on the reactor thread,
    so stopping it (which waits for them) happens off the reactor thread.
    """

    name = "api"

    def __init__(self, root: BgpdService) -> None:
        self.root = root
        self.server: Any = None
        self.control: Any = None

    def startService(self) -> None:
        # Imported here: grpcio is loaded only when the API is configured.
        from bgpd.api.control import Control
        from bgpd.api.server import ApiServer

        self.control = Control(self.root)
        self.server = ApiServer(self.root.reactor, self.control, api_config(self.root))
        self.server.start()
        super().startService()

    def reload(self) -> None:
        """A SIGHUP: the [api] keys that can change while running change (read_only); one
        line names each other key that changed, which needs a restart of bgpd."""
        if self.server is None:
            return
        try:
            new = api_config(self.root)
        except ValueError as e:
            log.error("config reload: {err}; the API server keeps running as it was", err=str(e))
            return
        restart = self.server.reload(new)
        if restart:
            log.warn("config reload: {keys} changed: applies after a restart of bgpd (the API "
                     "server keeps its listener, TLS and call limit)", keys=", ".join(restart))

    def stopService(self) -> Any:
        super().stopService()
        server, self.server = self.server, None
        if self.control is not None:
            self.control.close()
        if server is None:
            return None
        from twisted.internet.threads import deferToThreadPool

        return deferToThreadPool(self.root.reactor, self.root.reactor.getThreadPool(), server.stop)


def sd_notify(state: str, environ: Mapping[str, str] | None = None) -> bool:
    """Send ``state`` (e.g. ``READY=1``) to systemd, as sd_notify(3) does; False when not asked.

    systemd (``Type=notify``, as the Debian package's bgpd.service) names a
    datagram socket in ``$NOTIFY_SOCKET``, ``@`` for the abstract namespace.
    Written with the socket module so that no libsystemd binding is needed.
    """
    path = (os.environ if environ is None else environ).get("NOTIFY_SOCKET", "")
    if not path:
        return False
    address = "\0" + path[1:] if path.startswith("@") else path
    try:
        with socket.socket(socket.AF_UNIX, socket.SOCK_DGRAM | socket.SOCK_CLOEXEC) as s:
            s.connect(address)
            s.sendall(state.encode())
    except OSError as e:
        log.warn("cannot notify systemd at {path}: {error}", path=path, error=e)
        return False
    return True


def _monitor_service(root: BgpdService, config: Config, reactor: Any) -> MonitorService:
    """The monitor ([monitor], [mrt]) with the parts it reads (bgpd.monitor imports no service)."""
    rib_service = root.rib_service
    parts = DaemonParts(
        peers=lambda: root.sessions.peers,
        peer_info=rib_service.peers.get,
        rib=rib_service.rib,
        kernel=lambda: root.kernel.status() if root.kernel is not None else None,
        set_message_tap=lambda tap: root.set_message_tap("mrt", tap),
    )
    return MonitorService(config, parts, rib_service.bridge.watch_state, reactor)


class BgpdService(MultiService):
    """The root of the service tree."""

    def __init__(self, config: Config, config_path: str | None = None, reactor: Any = None,
                 store: StateStore | None = None) -> None:
        super().__init__()
        if reactor is None:
            from twisted.internet import reactor as _reactor

            reactor = _reactor
        self.reactor = reactor
        self.config_path = config_path
        # The API's stored changes are laid over the file before any part
        # is built, so that they are back before the first session starts.
        # Without a store (tests, embedding) API changes live in memory.
        overlay, problems = read_overlay(store) if store is not None else ([], [])
        for line in problems:
            log.error("{problem}", problem=line)
        if store is not None:
            # twistd forks after building the tree: no open database may cross it.
            store.close()
        #: what the API calls to change config (`bgpd.statecontrol`)
        self.state = StateControl(self, config, store if store is not None else MemoryStore(), overlay)
        config = self.state.startup_config()
        self.config = config
        self.rib_service = RibService(config, reactor)
        self.rib_service.setServiceParent(self)
        self.kernel: KernelService | None = None
        if config.kernel is not None:
            # Before the sessions: it is subscribed before the first route arrives.
            self.kernel = KernelService(config, self.rib_service.rib, reactor)
            self.kernel.setServiceParent(self)
        self.rpki: RpkiService | None = None
        if config.rpki is not None:
            # Before the sessions, so the first routes meet whatever data the caches send.
            self.rpki = RpkiService(config.rpki, self._rpki_tables().table, reactor)
            self.rpki.setServiceParent(self)
        #: the sessions' message tap by user (see set_message_tap)
        self._message_taps: dict[str, Any] = {}
        # Before the sessions: their first state change is already recorded.
        self.monitor = _monitor_service(self, config, reactor)
        self.monitor.setServiceParent(self)
        self.sessions = SessionsService(config, self.rib_service.bridge, reactor)
        self.sessions.setServiceParent(self)
        self.api: ApiService | None = None
        if config.api.enabled:
            self.api = ApiService(self)
            self.api.setServiceParent(self)
        self.bmp: Any = None
        self._bmp_unsubscribe: Any = None
        if config.bmp is not None:
            self._bmp_reload(config)
        self._old_sighup: Any = None

    def _rpki_tables(self) -> RouteValidation:
        """The VRP / ASPA tables the caches feed: the RIB's validation, made here if it has none yet."""
        validation = self.rib_service.validation
        if validation is None:
            validation = self.rib_service.validation = RouteValidation()
            validation.attach(self.rib_service.rib)
        return validation

    def startService(self) -> None:
        tune_gc()
        tune_switch_interval()
        # Once per start: which build of the hot path runs (issue 13).
        log.info("{hot_path}", hot_path=hotpath.describe(), variant=hotpath.VARIANT)
        super().startService()
        if self.config_path is not None:
            try:
                self._old_sighup = signal.signal(
                    signal.SIGHUP, lambda *_: self.reactor.callFromThread(self.reload))
            except ValueError:  # not the main thread (tests)
                pass
        # Every child has started: the BGP ports are bound and the API serves,
        # so `systemctl start bgpd` may return now.
        sd_notify("READY=1\nSTATUS=running")

    def stopService(self) -> Any:
        sd_notify("STOPPING=1")
        if self._old_sighup is not None:
            signal.signal(signal.SIGHUP, self._old_sighup)
            self._old_sighup = None
        if self.kernel is not None:
            # Before the sessions go down and their routes are withdrawn:
            # with keep_on_stop those must stay in the kernel.
            self.kernel.freeze()
        self.state.store.close()
        return super().stopService()

    def reload(self) -> bool:
        """Re-read the config file; keep the running config if the new one is bad."""
        try:
            base = load_config(self.config_path)
            # The API's changes stay on top of the newly read file.
            new = self.state.rebase(base)
        except ConfigError as err:
            log.error("config reload refused, keeping the running config:\n{err}", err=str(err))
            return False
        try:
            # Compiled before anything changes: a policy that does not
            # compile leaves the running one in place.
            prepared = self.rib_service.prepare(new)
        except Exception as err:  # noqa: BLE001 - any compiler failure refuses the file
            log.error("config reload refused, keeping the running config: policies: {err}",
                      err=str(err))
            return False
        log.info("reloading config from {path}", path=self.config_path)
        if base.bgp.state_dir != self.state.base.bgp.state_dir:
            log.warn("bgp.state_dir changed: it applies after a restart of bgpd")
        self.state.base = base
        self.take_config(new, prepared)
        self._reload_api(new)
        return True

    def _reload_api(self, new: Config) -> None:
        """[api] on SIGHUP: ApiService applies what it can; the rest is one line naming each key."""
        if self.api is not None:
            self.api.reload()
        elif new.api.enabled:
            log.warn("config reload: api.enabled: the API server starts only at bgpd's start; "
                     "restart bgpd to serve it")

    def take_config(self, new: Config, prepared: tuple[dict[str, Policy], dict[str, tuple]]) -> None:
        """Run ``new`` (validated; ``prepared`` from ``rib_service.prepare``): the reload path."""
        self.config = new
        self.rib_service.reload(new, prepared)
        self._reload_kernel(new)
        self.sessions.reload(new)
        if self.rpki is not None and new.rpki is not None:
            self.rpki.reload(new.rpki)
        self.monitor.reload(new)
        self._bmp_reload(new)

    def _reload_kernel(self, new: Config) -> None:
        """[kernel] on a reload: the kernel service applies what it can live (after the RIB's policies)."""
        if self.kernel is not None:
            self.kernel.reload(new)
        elif new.kernel is not None:
            log.warn("kernel: a [kernel] table was added: it applies after a restart of bgpd")

    def set_message_tap(self, name: str, tap: SessionTap | None) -> None:
        """BMP ("bmp") and the MRT updates log ("mrt") share the sessions' one message tap."""
        self._message_taps[name] = tap
        taps = [t for t in self._message_taps.values() if t is not None]
        self.sessions.set_message_tap(
            None if not taps else taps[0] if len(taps) == 1 else FanoutTap(taps))

    # -- BMP ([bmp], bgpd.monitor.bmp_client) --------------------------------------

    def _bmp_reload(self, config: Config) -> None:
        """Start, change or stop the BMP collectors as ``config`` says."""
        if config.bmp is None and self.bmp is None:
            return
        from bgpd.config import BmpConfig
        from bgpd.monitor.bmp_client import BmpService

        wanted = config.bmp if config.bmp is not None else BmpConfig()
        if self.bmp is None:
            self.bmp = BmpService(wanted, _BmpHost(self), self.reactor, self._bmp_attach)
            self.bmp.setServiceParent(self)  # started with the tree, or now if it runs
        else:
            self.bmp.reload(wanted)

    def _bmp_attach(self, monitor: Any, post_policy: bool, loc_rib: bool) -> None:
        """Set (or clear, ``monitor`` None) the taps BMP's configured views need."""
        rib = self.rib_service.rib
        self.set_message_tap("bmp", monitor)
        rib.set_adj_in_tap(monitor if post_policy else None)
        if self._bmp_unsubscribe is not None:
            self._bmp_unsubscribe()
            self._bmp_unsubscribe = None
        if monitor is not None and loc_rib:
            self._bmp_unsubscribe = rib.subscribe(monitor.loc_rib_changed)


class _BmpHost:
    """What the BMP client reads of the daemon (``bgpd.monitor.bmp_client.BmpHost``)."""

    def __init__(self, root: BgpdService) -> None:
        self.root = root

    @property
    def router_id(self) -> str:
        return self.root.config.bgp.router_id

    @property
    def local_as(self) -> int:
        return self.root.config.bgp.local_as

    @property
    def rib(self) -> Rib:
        return self.root.rib_service.rib

    def established(self) -> list[tuple[PeerFactory, PeerUp]]:
        return [(p, p.peer_up) for p in self.root.sessions.peers.values()
                if p.peer_up is not None and p.state is State.ESTABLISHED]

    def peer_info(self, peer: PeerFactory) -> PeerInfo | None:
        return self.root.rib_service.peers.get(peer)
