"""The service tree: builds and runs everything a config describes.

    BgpdService (MultiService, "bgpd")
      SessionsService ("sessions"): listening ports + one PeerFactory per neighbor
      RibService ("rib"): the RIB, and the bridge sessions <-> RIB

SIGHUP reloads the config file: added peers start, removed peers stop with
Cease "peer de-configured", changed peers reset only when the change needs a
new session; a bad file is refused and the running config kept.
"""

from __future__ import annotations

import signal
from typing import Any

from twisted.application.service import MultiService, Service
from twisted.logger import Logger

from bgpd.config import Config, ConfigError, NeighborConfig, load_config
from bgpd.runtime import tune_gc
from bgpd.session.factory import PeerFactory, SessionListener
from bgpd.session.listener import BGPServerFactory, install_md5, listen, normalize_address
from bgpd.wire.constants import CeaseError

log = Logger()

# NeighborConfig fields that can change without resetting the session.
_SOFT_FIELDS = frozenset({"description", "import_policy", "export_policy", "max_prefix"})


def _needs_reset(old: NeighborConfig, new: NeighborConfig) -> bool:
    for name in old.__attrs_attrs__:
        if name.name in _SOFT_FIELDS:
            continue
        if getattr(old, name.name) != getattr(new, name.name):
            return True
    return False


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

    def lookup(self, address: str) -> PeerFactory | None:
        return self.peers.get(address)

    def _make_peer(self, neighbor: NeighborConfig) -> PeerFactory:
        return PeerFactory(neighbor, self.config.bgp.router_id, self.listener, self.reactor,
                           route_server=neighbor.route_server_client)

    def startService(self) -> None:
        super().startService()
        self._listen()
        for neighbor in self.config.neighbors:
            peer = self.peers[normalize_address(neighbor.address)] = self._make_peer(neighbor)
            if neighbor.enabled:
                peer.start()

    def stopService(self) -> Any:
        for peer in list(self.peers.values()):
            peer.stop("bgpd shutting down")
        for port in self.ports:
            port.stopListening()
        self.ports = []
        return super().stopService()

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
            self.startService_peers_only()
            return
        if (old.bgp.listen_addresses, old.bgp.listen_port) != (new.bgp.listen_addresses,
                                                               new.bgp.listen_port):
            for port in self.ports:
                port.stopListening()
            self.ports = []
            self.config = new
            self._listen()
        self.config = new
        old_by = {normalize_address(n.address): n for n in old.neighbors}
        new_by = {normalize_address(n.address): n for n in new.neighbors}
        removed = {}
        for address in old_by.keys() - new_by.keys():
            peer = self.peers.pop(address, None)
            if peer is not None:
                log.info("peer {peer} removed from the config", peer=address)
                peer.deconfigure()
            if old_by[address].md5_password:
                removed[address] = None
        for address, neighbor in new_by.items():
            before = old_by.get(address)
            peer = self.peers.get(address)
            if before is None or peer is None:
                log.info("peer {peer} added", peer=address)
                peer = self.peers[address] = self._make_peer(neighbor)
                if neighbor.enabled:
                    peer.start()
            elif before != neighbor:
                if _needs_reset(before, neighbor):
                    log.info("peer {peer} changed: resetting the session", peer=address)
                    peer.stop("configuration changed", CeaseError.OTHER_CONFIGURATION_CHANGE)
                    peer = self.peers[address] = self._make_peer(neighbor)
                    if neighbor.enabled:
                        peer.start()
                else:
                    log.info("peer {peer} changed (no reset needed)", peer=address)
                    peer.config = neighbor
                    self.listener_config_changed(peer, before, neighbor)
        self._install_md5(removed)

    def startService_peers_only(self) -> None:
        self._listen()
        for neighbor in self.config.neighbors:
            peer = self.peers[normalize_address(neighbor.address)] = self._make_peer(neighbor)
            if neighbor.enabled:
                peer.start()

    def listener_config_changed(self, peer: PeerFactory, old: NeighborConfig,
                                new: NeighborConfig) -> None:
        hook = getattr(self.listener, "peer_config_changed", None)
        if hook is not None:
            hook(peer, old, new)


class RoutingBridge:
    """SessionListener that connects sessions to the RIB (see RibService)."""

    def __init__(self, service: RibService) -> None:
        self.service = service

    def session_established(self, peer: PeerFactory, info: Any) -> None:
        self.service.peer_up(peer, info)

    def session_down(self, peer: PeerFactory, reason: str, graceful: bool) -> None:
        self.service.peer_down(peer, reason, graceful)

    def update_received(self, peer: PeerFactory, update: Any) -> None:
        self.service.update(peer, update)

    def refresh_requested(self, peer: PeerFactory, refresh: Any) -> None:
        self.service.refresh(peer, refresh)

    def state_changed(self, peer: PeerFactory, old: Any, new: Any, reason: str) -> None:
        pass

    def peer_config_changed(self, peer: PeerFactory, old: NeighborConfig, new: NeighborConfig) -> None:
        self.service.peer_config_changed(peer, old, new)


class RibService(Service):
    """Owns the RIB; the bridge feeds it from sessions."""

    name = "rib"

    def __init__(self, config: Config, reactor: Any) -> None:
        self.config = config
        self.reactor = reactor
        self.bridge = RoutingBridge(self)

    def peer_up(self, peer: PeerFactory, info: Any) -> None:
        pass

    def peer_down(self, peer: PeerFactory, reason: str, graceful: bool) -> None:
        pass

    def update(self, peer: PeerFactory, update: Any) -> None:
        pass

    def refresh(self, peer: PeerFactory, refresh: Any) -> None:
        pass

    def peer_config_changed(self, peer: PeerFactory, old: NeighborConfig, new: NeighborConfig) -> None:
        pass

    def reload(self, config: Config) -> None:
        self.config = config


class BgpdService(MultiService):
    """The root of the service tree."""

    def __init__(self, config: Config, config_path: str | None = None, reactor: Any = None) -> None:
        super().__init__()
        if reactor is None:
            from twisted.internet import reactor as _reactor

            reactor = _reactor
        self.reactor = reactor
        self.config = config
        self.config_path = config_path
        self.rib_service = RibService(config, reactor)
        self.rib_service.setServiceParent(self)
        self.sessions = SessionsService(config, self.rib_service.bridge, reactor)
        self.sessions.setServiceParent(self)
        self._old_sighup: Any = None

    def startService(self) -> None:
        tune_gc()
        super().startService()
        if self.config_path is not None:
            try:
                self._old_sighup = signal.signal(
                    signal.SIGHUP, lambda *_: self.reactor.callFromThread(self.reload))
            except ValueError:  # not the main thread (tests)
                pass

    def stopService(self) -> Any:
        if self._old_sighup is not None:
            signal.signal(signal.SIGHUP, self._old_sighup)
            self._old_sighup = None
        return super().stopService()

    def reload(self) -> bool:
        """Re-read the config file; keep the running config if the new one is bad."""
        try:
            new = load_config(self.config_path)
        except ConfigError as err:
            log.error("config reload refused, keeping the running config:\n{err}", err=str(err))
            return False
        log.info("reloading config from {path}", path=self.config_path)
        self.config = new
        self.rib_service.reload(new)
        self.sessions.reload(new)
        return True
