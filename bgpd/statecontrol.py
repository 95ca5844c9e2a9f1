"""API changes that survive a restart: the service side of `bgpd.state`.

`StateControl` is the one object the API's control object calls to change
neighbors, policies and lease-less originated paths.  Every method runs on
the reactor thread and follows DESIGN.md's order: validate (the whole
effective config, with the config module's rules, errors naming the key)
-> write to the store (one transaction, durable before it returns; a failure
raises `StateError` and changes nothing) -> apply to the running service
(the same path a SIGHUP reload takes) -> return.

At start the stored overlay is read and laid over the config file before
any session exists, so API neighbors, policies and originated paths are
back before the first OPEN.  A corrupt store is reported by key and set
aside (renamed with a timestamp) and bgpd starts from the file alone; an
overlay that no longer fits the file (an API neighbor naming a policy the
file dropped) is reported by key and bgpd starts from the file alone, the
store kept: the next API call reports the same error until it is fixed.
"""

from __future__ import annotations

import os
from collections.abc import Mapping, Sequence
from typing import TYPE_CHECKING, Any, NamedTuple

import attrs
from twisted.internet import threads
from twisted.internet.defer import Deferred, maybeDeferred
from twisted.logger import Logger

from bgpd.config import (
    Config,
    ConfigError,
    ConfigErrors,
    NeighborConfig,
    OriginateConfig,
    config_from_dict,
    policy_inputs,
)
from bgpd.state.overlay import OriginateCache, effective_config, neighbor_key, originate_key, render_toml
from bgpd.state.store import Change, CorruptState, StateError, StateStore

if TYPE_CHECKING:
    from bgpd.service import BgpdService

__all__ = ["AlreadyExists", "NotFound", "StateControl", "resolve_state_dir"]

log = Logger()


class NotFound(ConfigError):
    """The neighbor or path named does not exist (gRPC NOT_FOUND)."""


class AlreadyExists(ConfigError):
    """The neighbor named exists already (gRPC ALREADY_EXISTS)."""


def resolve_state_dir(config: Config, config_path: str | None) -> str:
    """``[bgp] state_dir``, a relative path taken from the config file's directory."""
    state_dir = os.path.expanduser(config.bgp.state_dir)
    if os.path.isabs(state_dir) or config_path is None:
        return os.path.abspath(state_dir)
    return os.path.join(os.path.dirname(os.path.abspath(config_path)), state_dir)


def read_overlay(store: StateStore) -> tuple[list[Change], list[str]]:
    """The stored changes, and the problems met reading them (one line each, by key).

    A corrupt store is set aside and reads as empty; an unreadable one (a
    directory bgpd cannot write) reads as empty and every later write fails.
    """
    try:
        return store.changes(), []
    except CorruptState as err:
        problems = [f"{err}; moved aside to {store.reset_corrupt()}, starting from the config file alone"]
    except StateError as err:
        return [], [f"bgp.state_dir: {err}; API changes cannot be kept until this is fixed"]
    try:
        return store.changes(), problems
    except StateError as err:
        return [], [*problems, f"bgp.state_dir: {err}"]


class StateControl:
    """The API-facing methods that change config through the state store.

    ``base`` is the config file's Config, ``overlay`` the stored changes;
    the running config is ``effective_config(base, overlay)``.
    """

    def __init__(self, service: BgpdService, base: Config, store: StateStore,
                 overlay: Sequence[Change] = ()) -> None:
        self._service = service
        self.base = base
        self.store = store
        self.overlay: list[Change] = list(overlay)
        # Spares re-validating every originated path on every call.
        self._cache = OriginateCache()
        self._cache.prime(base)
        #: runs a store write off the reactor thread, returning a Deferred
        #: (a reactor without threads, as in tests: in place)
        self.run_in_thread = _thread_runner(service.reactor)

    # -- start and reload ------------------------------------------------------

    def startup_config(self) -> Config:
        """The config to start from: the overlay on the file, or the file alone when it does not fit."""
        try:
            return effective_config(self.base, self.overlay, self._cache)
        except ConfigError as err:
            log.error("state store: the API's changes do not fit the config file, starting "
                      "from the file alone (the store is kept):\n{err}", err=str(err))
            return self.base

    def rebase(self, new_base: Config) -> Config:
        """The effective config over a newly read file (SIGHUP); raises `ConfigErrors`, commits nothing."""
        self._cache.prime(new_base)
        return effective_config(new_base, self.overlay, self._cache)

    # -- reading ----------------------------------------------------------------

    def effective_config(self) -> Config:
        """The running config (what a restart would start with)."""
        return self._service.config

    def config_toml(self, hide_secrets: bool = True) -> str:
        """The effective config as TOML, each part from the API after a ``# from the API`` line."""
        return render_toml(self.base, self.overlay, hide_secrets, self._cache)

    def neighbor_table(self, address: str) -> dict[str, Any] | None:
        """The effective ``[[neighbors]]`` table at ``address`` as written (defaults not
        filled in), or None: what an update with a field mask merges into."""
        try:
            key = neighbor_key(address)
        except ValueError:
            return None
        source = self._service.config.source or {}
        for item in source.get("neighbors", []):
            if isinstance(item, Mapping) and isinstance(item.get("address"), str):
                try:
                    if neighbor_key(item["address"]) == key:
                        return dict(item)
                except ValueError:
                    continue
        return None

    # -- changes ------------------------------------------------------------------

    # Tables passed in are copied (one level); what they hold must not be
    # modified afterwards, by the caller or anyone: they are kept as they are.

    def add_neighbor(self, table: Mapping[str, Any]) -> NeighborConfig:
        """Add a ``[[neighbors]]``-shaped table; `AlreadyExists` if the address is configured."""
        key = self._neighbor_key(table)
        if self._service.config.neighbor(key) is not None:
            raise AlreadyExists("address", f"neighbor {key} exists already")
        config = self._commit([Change("neighbor", key, "put", dict(table))])
        return _found(config.neighbor(key))

    def update_neighbor(self, table: Mapping[str, Any]) -> NeighborConfig:
        """Replace the neighbor at ``table["address"]`` with ``table`` (whole, not merged); `NotFound`."""
        key = self._neighbor_key(table)
        if self._service.config.neighbor(key) is None:
            raise NotFound("address", f"no neighbor {key}")
        config = self._commit([Change("neighbor", key, "put", dict(table))])
        return _found(config.neighbor(key))

    def remove_neighbor(self, address: str) -> None:
        """Remove the neighbor at ``address`` (a file's one too: the removal is kept); `NotFound`."""
        key = self._neighbor_key({"address": address})
        if self._service.config.neighbor(key) is None:
            raise NotFound("address", f"no neighbor {key}")
        op = "remove" if self.base.neighbor(key) is not None else "clear"
        self._commit([Change("neighbor", key, op)])

    def replace_policies(self, sets: Mapping[str, Any], policies: Mapping[str, Any],
                         prepared: Any = None) -> Config:
        """Replace ``[sets]`` and ``[policies]`` as a whole, as the file writes them.

        ``prepared``: the policies already compiled for this candidate
        (``rib_service.prepare``); used when they were compiled from the same
        inputs as the effective config's, so a replacement compiles once.
        """
        return self._commit([Change("policies", "", "put", {"sets": dict(sets), "policies": dict(policies)})],
                            prepared)

    def forget_policies(self) -> Config:
        """Drop the API's ``[sets]`` / ``[policies]`` replacement: the file's run again (and
        follow the file on SIGHUP).  Nothing to forget is no error."""
        return self._commit([Change("policies", "", "clear")])

    def policies_from_api(self) -> bool:
        """Whether the running ``[sets]`` / ``[policies]`` are the API's (not the file's)."""
        return any(c.kind == "policies" and c.op == "put" for c in self.overlay)

    def originate(self, tables: Sequence[Mapping[str, Any]]) -> list[OriginateConfig]:
        """Originate ``[[originate]]``-shaped tables, one transaction for the batch."""
        changes = []
        for i, table in enumerate(tables):
            try:
                key = originate_key(table.get("prefix"))
            except ValueError as e:
                raise ConfigErrors([ConfigError(f"originate[{i}].prefix", str(e))]) from None
            changes.append(Change("originate", key, "put", dict(table)))
        config = self._commit(changes)
        by_prefix = {o.prefix: o for o in config.originate}
        return [by_prefix[c.key] for c in changes]

    def snapshot(self) -> StateSnapshot:
        """What `precompute` needs, taken on the reactor (a copy of the cache; the rest is immutable)."""
        return StateSnapshot(self.base, self.overlay, self._cache.copy(), self._service.config)

    def originate_batch(self, batch: OriginateBatch, chunk: int = 2000,
                        pre: Precomputed | None = None) -> Deferred:
        """Originate a batch checked by `check_originate`, the store written off the reactor.

        The reactor validates the effective config (the batch's tables are
        taken as validated), hands the write to a thread (`run_in_thread`),
        and once it is durable takes the routes into the RIB ``chunk`` at a
        time, one reactor turn each, then runs the new config.  Fires with
        the `OriginateConfig` records; a failed write fails it with
        `StateError` and changes nothing (the overlay, the RIB and the
        running config stay as they were).
        """
        changes = batch.changes
        if pre is not None and pre.snapshot.base is self.base and pre.snapshot.overlay is self.overlay:
            # Nothing changed since the snapshot: its effective config, made
            # on another thread, is this one's; the policies compile here.
            self._cache = pre.cache
            candidate = pre.candidate
            prepared = self._prepare(candidate)
        else:
            for change, route in zip(changes, batch.routes, strict=True):
                self._cache.put(change.table, route)
            candidate, prepared = self._candidate(changes)
        base, before = self.base, self.overlay
        mine: list[list[Change]] = []

        def stored(stored: list[Change]) -> Deferred:
            replaced = {(c.kind, c.key) for c in changes}
            fresh = self.overlay is before
            self.overlay = [c for c in self.overlay if (c.kind, c.key) not in replaced] + stored
            if fresh:
                mine.append(self.overlay)
            _log_kept(changes)
            return self._hand_over(batch, chunk)

        def run(_: object) -> list[OriginateConfig]:
            if mine and mine[0] is self.overlay and self.base is base:
                self._service.take_config(candidate, prepared)
            else:
                # Another change (or a SIGHUP) ran while this one was being
                # written: the config to run is the overlay as it is now.
                self._service.take_config(*self._candidate([]))
            return batch.routes

        d = self.run_in_thread(self.store.record, changes)
        return d.addCallback(stored).addCallback(run)

    def _hand_over(self, batch: OriginateBatch, chunk: int) -> Deferred:
        """The batch's routes into the RIB, ``chunk`` per reactor turn."""
        rs = self._service.rib_service
        reactor = self._service.reactor
        pairs = list(zip(batch.routes, batch.built, strict=True))
        done: Deferred = Deferred()

        def step(i: int) -> None:
            try:
                rs.take_originated(pairs[i:i + chunk])
            except Exception:  # noqa: BLE001 - handed to the caller as its error
                done.errback()
                return
            if i + chunk < len(pairs):
                reactor.callLater(0, step, i + chunk)
            else:
                done.callback(None)

        step(0)
        return done

    def _candidate(self, changes: list[Change]) -> tuple[Config, Any]:
        """The effective config with ``changes`` over the overlay, and its compiled policies."""
        replaced = {(c.kind, c.key) for c in changes}
        kept = [c for c in self.overlay if (c.kind, c.key) not in replaced]
        candidate = effective_config(self.base, kept + changes, self._cache)
        return candidate, self._prepare(candidate)

    def _prepare(self, candidate: Config) -> Any:
        try:
            return self._service.rib_service.prepare(candidate)
        except Exception as err:  # noqa: BLE001 - any compiler failure refuses the change
            raise ConfigErrors([ConfigError("policies", f"does not compile: {err}")]) from None

    def withdraw(self, prefixes: Sequence[str]) -> None:
        """Withdraw originated paths by prefix (a file's one too); `NotFound` for one not originated."""
        have = {o.prefix for o in self._service.config.originate}
        from_file = {o.prefix for o in self.base.originate}
        changes = []
        for i, prefix in enumerate(prefixes):
            try:
                key = originate_key(prefix)
            except ValueError as e:
                raise ConfigErrors([ConfigError(f"prefixes[{i}]", str(e))]) from None
            if key not in have:
                raise NotFound(f"prefixes[{i}]", f"{key} is not originated")
            changes.append(Change("originate", key, "remove" if key in from_file else "clear"))
        self._commit(changes)

    # -- internals ------------------------------------------------------------------

    @staticmethod
    def _neighbor_key(table: Mapping[str, Any]) -> str:
        if "address" not in table:
            raise ConfigErrors([ConfigError("address", "required key is missing")])
        try:
            return neighbor_key(table["address"])
        except ValueError as e:
            raise ConfigErrors([ConfigError("address", str(e))]) from None

    def _commit(self, changes: list[Change], prepared: Any = None) -> Config:
        """Validate, store, apply: an exception at any step leaves everything as it was."""
        replaced = {(c.kind, c.key) for c in changes}
        kept = [c for c in self.overlay if (c.kind, c.key) not in replaced]
        candidate = effective_config(self.base, kept + changes, self._cache)
        if prepared is None or prepared[1] != {n: policy_inputs(candidate, n) for n, _ in candidate.policies}:
            try:
                prepared = self._service.rib_service.prepare(candidate)
            except Exception as err:  # noqa: BLE001 - any compiler failure refuses the change
                raise ConfigErrors([ConfigError("policies", f"does not compile: {err}")]) from None
        stored = self.store.record(changes)
        self.overlay = kept + stored
        _log_kept(changes)
        self._service.take_config(candidate, prepared)
        return candidate


def _thread_runner(reactor: Any) -> Any:
    if not hasattr(reactor, "getThreadPool"):
        return maybeDeferred
    return lambda fn, *args: threads.deferToThreadPool(reactor, reactor.getThreadPool(), fn, *args)


def _log_kept(changes: Sequence[Change]) -> None:
    what = ", ".join(f"{c.op} {c.label}" for c in changes[:5])
    log.info("state store: {n} API change(s) kept: {what}{more}", n=len(changes), what=what,
             more=" ..." if len(changes) > 5 else "")


@attrs.frozen
class OriginateBatch:
    """Paths to originate, checked off the reactor (`check_originate`)."""

    #: the ``[[originate]]`` tables, as the store keeps them
    tables: Sequence[Mapping[str, Any]]
    #: each table validated
    routes: list[OriginateConfig]
    #: the store's changes, one per table
    changes: list[Change]
    #: each route as the RIB takes it (``bgpd.service.originated_route``)
    built: list[Any]


class StateSnapshot(NamedTuple):
    """The inputs of the effective config at one moment (`StateControl.snapshot`)."""

    base: Config
    overlay: list[Change]
    cache: OriginateCache
    running: Config


class Precomputed(NamedTuple):
    """A batch's effective config, made off the reactor from a snapshot (`precompute`)."""

    snapshot: StateSnapshot
    candidate: Config
    cache: OriginateCache
    #: the batch's routes that are new or changed against the snapshot's running config
    changed: int


def precompute(snapshot: StateSnapshot, batch: OriginateBatch) -> Precomputed:
    """The effective config with ``batch`` laid over ``snapshot``; pure, for any thread.

    The seconds of validating the whole config (100,000 originated paths
    and more) are spent here instead of on the reactor; `originate_batch`
    takes the result when nothing changed since the snapshot.  Raises
    `ConfigErrors` as the reactor's check would.
    """
    cache = snapshot.cache
    for change, route in zip(batch.changes, batch.routes, strict=True):
        cache.put(change.table, route)
    replaced = {(c.kind, c.key) for c in batch.changes}
    kept = [c for c in snapshot.overlay if (c.kind, c.key) not in replaced]
    candidate = effective_config(snapshot.base, kept + batch.changes, cache)
    before = {o.prefix: o for o in snapshot.running.originate}
    changed = sum(1 for r in batch.routes if before.get(r.prefix) != r)
    return Precomputed(snapshot, candidate, cache, changed)


def check_originate(tables: Sequence[Mapping[str, Any]], bgp: Mapping[str, Any]) -> OriginateBatch:
    """Validate ``[[originate]]`` tables with the config's rules; pure, for any thread.

    ``bgp``: the running ``[bgp]`` table (validation needs one).  Raises
    `ConfigErrors` naming ``originate[i].KEY``.  The tables are kept (not
    copied) and must not be modified afterwards.
    """
    from bgpd.service import originated_route

    tables = [dict(t) for t in tables]
    for i, table in enumerate(tables):
        try:
            originate_key(table.get("prefix"))
        except ValueError as e:
            raise ConfigErrors([ConfigError(f"originate[{i}].prefix", str(e))]) from None
    routes = list(config_from_dict({"bgp": bgp, "originate": tables}).originate)
    changes = [Change("originate", r.prefix, "put", t) for t, r in zip(tables, routes, strict=True)]
    return OriginateBatch(tables, routes, changes, [originated_route(r) for r in routes])


def _found(n: NeighborConfig | None) -> NeighborConfig:
    assert n is not None  # the candidate was validated with it in
    return n
