"""The RPKI service: the configured RTR caches, most preferred first (RFC 8210 sections 6, 10).

One :class:`~bgpd.rpki.rtr.RTRFactory` per ``[[rpki.cache]]``.  Section 10:
the router uses the most preferred cache it can reach.  So the caches are
walked in preference order (lower first, ties in file order) and each is
kept connecting until one is in sync:

- the first cache in sync (connected, its End of Data applied) is the one
  in use; every cache after it is disconnected and its data dropped;
- caches before it are down and keep retrying with back-off; when one of
  them is in sync again it takes over the same way (failback);
- when no cache is in sync, caches are tried in order, the next one only
  once those before it have failed.

When the cache in use goes down its data stays in the sink until a new
cache's End of Data takes over, or until its Expire interval runs out
(section 6), when it is dropped and every route it covered becomes NotFound.
A Session ID mismatch (section 5.1) flushes that cache's data at once.
Each step is one log line naming the cache, its address, serial, Session ID
and counts.
"""

from __future__ import annotations

from typing import Any

import attrs
from twisted.application.service import Service
from twisted.logger import Logger

from bgpd.config import RpkiCacheConfig, RpkiConfig
from bgpd.rpki.records import RpkiSink
from bgpd.rpki.rtr import CONNECTED, CONNECTING, IDLE, CacheSettings, CacheStatus, RTRFactory

__all__ = ["RpkiCacheInfo", "RpkiService", "cache_settings", "tls_options"]

log = Logger()


@attrs.frozen
class RpkiCacheInfo:
    """A cache's status plus its place among the caches (``bgpctl rpki status``)."""

    status: CacheStatus
    #: one of the most preferred caches configured (the lowest preference value)
    preferred: bool
    #: the cache whose data routes are validated against now
    active: bool


def tls_options(cache: RpkiCacheConfig) -> Any:
    """The TLS client options for ``cache`` (RFC 8210 section 9): the CA, the client certificate."""
    from twisted.internet import ssl

    trust: Any = None
    if cache.tls_ca is not None:
        with open(cache.tls_ca, "rb") as f:
            trust = ssl.Certificate.loadPEM(f.read())
    client = None
    if cache.tls_cert is not None and cache.tls_key is not None:
        with open(cache.tls_cert, "rb") as f:
            cert = f.read()
        with open(cache.tls_key, "rb") as f:
            key = f.read()
        client = ssl.PrivateCertificate.loadPEM(cert + b"\n" + key)
    name = cache.tls_server_name or cache.address
    return ssl.optionsForClientTLS(name, trustRoot=trust, clientCertificate=client)


def cache_settings(cache: RpkiCacheConfig, aspa: bool) -> CacheSettings:
    """The client's view of one configured cache."""
    return CacheSettings(
        name=cache.name, address=cache.address, port=cache.port, preference=cache.preference,
        transport=cache.transport, max_version=2 if aspa else 1,
        refresh=cache.refresh, retry=cache.retry, expire=cache.expire,
        tls=tls_options(cache) if cache.transport == "tls" else None)


class RpkiService(Service):
    """Keeps the sink fed from the most preferred reachable cache."""

    name = "rpki"

    def __init__(self, config: RpkiConfig, sink: RpkiSink, reactor: Any,
                 factories: list[RTRFactory] | None = None) -> None:
        self.config = config
        self.sink = sink
        self.reactor = reactor
        if factories is None:
            order = sorted(enumerate(config.caches), key=lambda ic: (ic[1].preference, ic[0]))
            factories = [RTRFactory(cache_settings(c, config.aspa), sink, reactor, listener=self)
                         for _i, c in order]
        self.caches = factories
        for f in self.caches:
            f.listener = self
        #: the cache whose data is in use (may be down, its data not yet expired)
        self.active: RTRFactory | None = None
        self._selecting = False
        self._again = False

    # -- Service ------------------------------------------------------------------

    def startService(self) -> None:  # noqa: N802
        super().startService()
        log.info("rpki: {n} cache(s), in order of preference: {names}", n=len(self.caches),
                 names=", ".join(f"{c.settings.name} ({c.settings.endpoint}, preference "
                                 f"{c.settings.preference})" for c in self.caches))
        self._select()

    def stopService(self) -> Any:  # noqa: N802
        super().stopService()
        for c in self.caches:
            c.shutdown()
        return None

    # -- CacheListener ---------------------------------------------------------------

    def cache_changed(self, cache: RTRFactory) -> None:
        if self.running:
            self._select()

    def cache_synced(self, cache: RTRFactory) -> None:
        best = self._best_live()
        if best is cache and self.active is not cache:
            old, self.active = self.active, cache
            s = cache.settings
            log.info("rpki: using cache {cache} ({address}), serial {serial} session {session}: "
                     "{v4} IPv4 and {v6} IPv6 VRPs, {aspas} ASPAs{instead}",
                     cache=s.name, address=s.endpoint, serial=cache.serial, session=cache.session_id,
                     v4=cache.v4_count, v6=cache.v6_count, aspas=len(cache.aspa_table),
                     instead=f" (instead of {old.settings.name})" if old is not None else "")
            for other in self.caches:
                if other is not cache and other.has_data:
                    # Its data is taken over now, not before: until this End
                    # of Data the old data was all there was.
                    other.drop_data(f"taken over by cache {s.name}")
        if self.running:
            self._select()

    def cache_expired(self, cache: RTRFactory) -> None:
        if cache is self.active:
            self.active = None
            log.warn("rpki: no cache data in use: cache {cache} expired; routes are NotFound "
                     "until a cache sends data", cache=cache.settings.name)
        if self.running:
            self._select()

    def cache_flushed(self, cache: RTRFactory) -> None:
        if cache is self.active:
            self.active = None
            log.warn("rpki: no cache data in use: cache {cache}'s Session ID changed, its data is "
                     "flushed (RFC 8210 section 5.1); routes are NotFound until a cache sends data",
                     cache=cache.settings.name)
        if self.running:
            self._select()

    # -- choosing --------------------------------------------------------------------

    def _best_live(self) -> RTRFactory | None:
        for c in self.caches:
            if c.live:
                return c
        return None

    def _select(self) -> None:
        """Start the caches that should be connecting, stop those after the one in use."""
        if self._selecting:
            self._again = True
            return
        self._selecting = True
        try:
            self._again = True
            while self._again:
                self._again = False
                self._select_once()
        finally:
            self._selecting = False

    def _select_once(self) -> None:
        stop_at = len(self.caches)
        for i, c in enumerate(self.caches):
            if c.live:
                stop_at = i
                break
            if c.failures == 0 and c.state in (IDLE, CONNECTING, CONNECTED):
                # Still on its first attempt: give it its turn before the next.
                stop_at = i
                break
        synced = stop_at < len(self.caches) and self.caches[stop_at].live
        for i, c in enumerate(self.caches):
            if i <= stop_at:
                if not c.enabled:
                    c.start()
            elif c.enabled or c.has_data:
                if synced:
                    c.stop(drop=f"cache {self.caches[stop_at].settings.name} is preferred and in sync")
                else:
                    c.stop()

    def reload(self, new: RpkiConfig) -> bool:
        """SIGHUP: the caches are not rebuilt live; say which change waits for a restart.

        Returns whether anything about the caches changed (the new values
        take effect when bgpd is restarted).
        """
        old = self.config
        changed = False
        if new.aspa != old.aspa:
            log.warn("rpki: rpki.aspa changed to {value}: it applies after a restart of bgpd",
                     value="true" if new.aspa else "false")
            changed = True
        if new.caches != old.caches:
            before = {c.name: c for c in old.caches}
            after = {c.name: c for c in new.caches}
            # added, removed, or changed in any key
            names = sorted(n for n in before.keys() | after.keys() if before.get(n) != after.get(n))
            log.warn("rpki: [[rpki.cache]] changed ({names}): the caches in use stay as they are "
                     "until a restart of bgpd", names=", ".join(names) or "order")
            changed = True
        return changed

    # -- status ----------------------------------------------------------------------

    def status(self) -> list[RpkiCacheInfo]:
        """Every cache, most preferred first."""
        top = min((c.settings.preference for c in self.caches), default=0)
        return [RpkiCacheInfo(c.status(), c.settings.preference == top, c is self.active)
                for c in self.caches]

    @property
    def connecting(self) -> list[str]:
        """Names of the caches trying to connect now (for tests and logs)."""
        return [c.settings.name for c in self.caches if c.state == CONNECTING]

    @property
    def connected(self) -> list[str]:
        """Names of the caches connected now."""
        return [c.settings.name for c in self.caches if c.state == CONNECTED]
