"""The kernel writer: Loc-RIB changes -> routes in one kernel table (RFC 4271 9.1.3, 9.2).

Runs on the reactor thread, except the backend's calls, which go to one
worker at a time through ``defer_to_thread`` (the service passes
``twisted.internet.threads.deferToThread``), so the reactor never waits on
netlink.  What is owed to the kernel is a dict keyed by (family, prefix):
a prefix that changes several times before its batch is written is written
once, with its latest next hops.  A change is one ``NLM_F_REPLACE`` message,
never a delete plus an add.

Ownership: the backend only writes and deletes routes with our protocol
number in our table.  At start the writer reads what an earlier run left
there; those routes stay until :meth:`KernelWriter.converged` (End-of-RIB
from every peer, or the reconcile timer), then the stale ones are removed.
A route found with the next hops it should have is not written again.

A route the kernel rejects is logged with its prefix and errno, counted, and
retried with a doubling back-off; the others go on.

Export policy (``[kernel] export_policy``): ``export`` decides per best path
whether it goes in, and may name its preferred source (RTA_PREFSRC); a
rejected prefix is kept out (removed if it was in) and counted as filtered.
"""

from __future__ import annotations

import errno as errno_mod
import os
from collections.abc import Callable, Sequence
from itertools import islice
from typing import Any, NamedTuple, Protocol

import attrs
from twisted.logger import Logger

from bgpd.rib.change import Change
from bgpd.wire.nlri import prefix_to_str

__all__ = ["Backend", "ExportDecision", "FamilyCounts", "KernelRoute", "KernelWriter", "WriterOptions",
           "ROUTE_STATES"]

log = Logger()

Family = tuple[int, int]
Key = tuple[Family, bytes]
#: A next hop: (address, interface index or name, or None).  The interface
#: is set for an IPv6 link-local next hop, which means nothing without one.
NextHop = tuple[str, int | str | None]
#: ``export(path's peer, family, prefix, attrs) -> (goes in, source address or None)``
ExportDecision = Callable[[Any, Family, bytes, Any], tuple[bool, str | None]]
#: What :meth:`KernelWriter.state` says about a prefix's best path.
ROUTE_STATES = ("installed", "pending", "failed", "filtered", "unresolved")


class KernelRoute(NamedTuple):
    """One route as the backend writes it: ``nexthops`` empty means delete.

    A NamedTuple: a full table makes a million of them per direction.
    """

    family: Family
    prefix: bytes
    nexthops: tuple[NextHop, ...]
    #: the preferred source address (RTA_PREFSRC) the export policy set, or None
    source: str | None = None
    #: a route not in the kernel from us: created only if no route of that
    #: prefix and metric is there (``NLM_F_EXCL``), never replacing another
    #: protocol's (a replace matches by prefix, TOS and metric, not protocol)
    exclusive: bool = False

    @property
    def destination(self) -> str:
        return prefix_to_str(self.prefix, self.family[0])


class Backend(Protocol):
    """What the writer needs from netlink (:class:`bgpd.kernel.netlink.NetlinkBackend`)."""

    def apply(self, routes: list[KernelRoute]) -> list[tuple[KernelRoute, int]]:
        """Replace or delete each route; the ones that failed, with their errno."""

    def dump(self) -> dict[Key, tuple[NextHop, ...]]:
        """Our protocol's routes in our table."""

    def close(self) -> None:
        """Release the socket."""

    def remeter(self, routes: list[KernelRoute], metric: int,
                old_only: Sequence[KernelRoute] = ()) -> tuple[list[tuple[KernelRoute, int]], int]:
        """Write ``routes`` at ``metric``, then delete them, and ``old_only``, at the old one;
        the writes that failed, and how many old routes could not be deleted.  The backend
        keeps ``metric``."""


@attrs.frozen
class WriterOptions:
    """The writer's knobs (the ``[kernel]`` section gives them)."""

    families: frozenset = frozenset()
    #: Install the multipath set as one multipath route (else the best path only).
    ecmp: bool = True
    batch_size: int = 10_000
    #: batches handed to worker threads at once: the backend writes one at a
    #: time (its lock), the next already waiting, so the kernel never waits
    #: for the reactor to take in a result.  Their prefixes never overlap.
    in_flight: int = 2
    retry_initial: float = 1.0
    retry_max: float = 60.0


@attrs.define
class FamilyCounts:
    """Routes of one family: in the kernel, waiting to be written, rejected."""

    installed: int = 0
    pending: int = 0
    failed: int = 0


_LINK_LOCAL = ("fe8", "fe9", "fea", "feb", "FE8", "FE9", "FEA", "FEB")


def nexthops_of(change: Change, ecmp: bool,
                link_of: Callable[[str], int | None] | None = None) -> tuple[NextHop, ...]:
    """The next hops to install for a change record (empty: remove the route).

    An IPv6 link-local next hop (the only one a peer on our link may send,
    RFC 2545 section 3) goes with the interface of the peer it came from,
    ``link_of(peer address) -> ifindex``; without one it is left out.
    """
    paths = change.multipath if ecmp else change.multipath[:1]
    out: list[NextHop] = []
    for p in paths:
        a = p.attrs
        nh = a.next_hop
        if nh is None or nh == "::" or nh[:3] in _LINK_LOCAL:
            ll = a.next_hop_ll if nh is None or nh == "::" or a.next_hop_ll else nh
            if ll is None or ll[:3] not in _LINK_LOCAL or link_of is None:
                continue
            idx = link_of(p.peer.address)
            if idx is None:
                continue
            hop: NextHop = (ll, idx)
        else:
            hop = (nh, None)
        if hop not in out:
            out.append(hop)
    return tuple(out)


class KernelWriter:
    """Keeps a kernel table in step with the Loc-RIB's best paths."""

    def __init__(
        self,
        backend_factory: Callable[[], Backend],
        options: WriterOptions,
        call_later: Callable[..., Any],
        defer_to_thread: Callable[..., Any],
    ) -> None:
        self.options = options
        self._factory = backend_factory
        self._backend: Backend | None = None
        self.call_later = call_later
        self._defer = defer_to_thread
        #: what the kernel should have (and, after a write, has)
        self._installed: dict[Key, tuple[NextHop, ...]] = {}
        #: owed to the kernel: key -> next hops (empty: delete)
        self._pending: dict[Key, tuple[NextHop, ...]] = {}
        #: being written now (not in _pending unless changed again since)
        self._inflight: dict[Key, tuple[NextHop, ...]] = {}
        #: rejected, waiting for the retry timer: key -> next hops
        self._failed: dict[Key, tuple[NextHop, ...]] = {}
        #: failed attempts in a row per key (the back-off), until one succeeds
        self._attempts: dict[Key, int] = {}
        self._retry_handle: Any = None
        #: the export policy's decision per best path (None: every route goes in)
        self.export: ExportDecision | None = None
        #: prefixes whose best path the export policy keeps out of the kernel
        self._filtered: set[Key] = set()
        #: source addresses: wanted (by the export policy) and in the kernel; only
        #: routes that have one are keys, so without a policy these stay empty
        self._src_want: dict[Key, str] = {}
        self._src_installed: dict[Key, str] = {}
        #: prefixes whose route in the kernel is (or may still be) ours though not
        #: in _installed: a replace that failed, a route to write again through
        #: a new gateway.  They are replaced, not created exclusively, and
        #: deleted when withdrawn.  Small: only those cases.
        self._unlisted: set[Key] = set()
        #: routes found at start, kept until converged()
        self._stale: dict[Key, tuple[NextHop, ...]] | None = None
        #: ``forwarding(next_hop) -> onlink address or None``: a recursive next
        #: hop is installed through the gateway it resolves to (the tracker's).
        self.forwarding: Callable[[str], str | None] | None = None
        #: ``link_of(peer address) -> ifindex``: the interface of a peer's
        #: link-local next hops (the tracker's).
        self.link_of: Callable[[str], int | None] | None = None
        self._started = False
        #: a metric to move every route to, at the next moment nothing is being written
        self._new_metric: int | None = None
        #: the next batch, prepared while the worker writes the current one (its
        #: keys are in _inflight already): the kernel never waits on the reactor
        self._ready: list[KernelRoute] | None = None
        #: batches with the worker now (at most options.in_flight)
        self._writing = 0
        self._stopping = False
        self.writes = 0
        self.errors = 0
        self._idle_waiters: list = []

    # -- life cycle --------------------------------------------------------

    def start(self) -> Any:
        """Open the backend and read the table (off the reactor); a Deferred."""
        def opened(found: dict) -> None:
            self._started = True
            self._stale = dict(found)
            log.info("kernel: {count} routes of ours found in the table", count=len(found))
            self._kick()

        d = self._defer(self._open_and_dump)
        d.addCallback(opened)
        return d

    def _open_and_dump(self) -> dict:
        self._backend = self._factory()
        return self._backend.dump()

    def converged(self) -> None:
        """The Loc-RIB is complete: remove what an earlier run left and we no longer want."""
        stale = self._stale
        if stale is None:
            return
        self._stale = None
        n = 0
        for key, hops in stale.items():
            if key not in self._installed and key not in self._pending and key not in self._inflight:
                # In the kernel and ours: what _kick deletes.
                self._installed[key] = hops
                self._pending[key] = ()
                n += 1
        log.info("kernel: converged, removing {count} stale routes", count=n)
        self._kick()

    def stop(self, keep: bool = False) -> Any:
        """Write what is pending, then remove our routes unless ``keep``; a Deferred."""
        self._stopping = True
        if self._retry_handle is not None:
            self._retry_handle.cancel()
            self._retry_handle = None
        ready, self._ready = self._ready, None
        for r in ready or ():
            # Never sent: what it would have written is decided again below.
            self._inflight.pop((r.family, r.prefix), None)
        if not keep:
            self._stale = None
            self._pending = {k: () for k in list(self._installed) + list(self._inflight)
                             + list(self._failed) + list(self._unlisted)}
            self._failed = {}
        else:
            # Graceful restart: what is already there stays; nothing new goes in.
            self._pending = {}
        d = self.idle()

        def close(_: Any) -> Any:
            backend, self._backend = self._backend, None
            if backend is not None:
                return self._defer(backend.close)
            return None

        d.addCallback(close)
        self._kick()
        return d

    def idle(self) -> Any:
        """A Deferred that fires when nothing is pending or being written."""
        from twisted.internet.defer import Deferred, succeed

        if not self._writing and not self._pending and not self._ready:
            return succeed(None)
        d: Deferred = Deferred()
        self._idle_waiters.append(d)
        return d

    # -- the RIB's side ------------------------------------------------------

    def changes(self, batch: list[Change]) -> None:
        """A batch of Loc-RIB change records (the RIB subscription's callback)."""
        if self._stopping:
            return
        fams = self.options.families
        ecmp = self.options.ecmp
        link_of = self.link_of
        pending = self._pending
        failed = self._failed
        export = self.export
        filtered = self._filtered
        src_want = self._src_want
        inflight = self._inflight if self._ready else None
        stale_ready = False
        # The prefixes of one UPDATE share their path: their records come
        # together, so the last answer is reused while the set is the same.
        last_mp: tuple = ()
        last_hops: tuple[NextHop, ...] = ()
        for c in batch:
            if c.family not in fams:
                continue
            key = (c.family, c.prefix)
            mp = c.multipath
            if not mp or c.new is None:
                hops: tuple[NextHop, ...] = ()
            elif len(mp) == 1 and len(last_mp) == 1 and mp[0] is last_mp[0]:
                hops = last_hops
            else:
                hops = last_hops = nexthops_of(c, ecmp, link_of)
                last_mp = mp
            if export is not None and hops:
                new = c.new
                ok, src = export(new.peer, c.family, c.prefix, new.attrs)
                if not ok:
                    hops = ()
                    filtered.add(key)
                elif filtered:
                    filtered.discard(key)
                if src is not None and ok:
                    src_want[key] = src
                elif src_want:
                    src_want.pop(key, None)
            else:
                if filtered:
                    filtered.discard(key)
                if src_want:
                    src_want.pop(key, None)
            pending[key] = hops
            if failed:
                failed.pop(key, None)
            if inflight is not None and key in inflight:
                stale_ready = True
        if stale_ready:
            self._unprepare()
        self._kick()

    def _unprepare(self) -> None:
        """Put the prepared batch back: a prefix in it changed, and is written once, as it is now."""
        ready, self._ready = self._ready, None
        pending, inflight = self._pending, self._inflight
        for r in ready or ():
            key = (r.family, r.prefix)
            hops = inflight.pop(key)
            if key not in pending:
                pending[key] = hops

    def state(self, family: Family, prefix: bytes) -> str:
        """Where the best path of ``prefix`` stands with the kernel (one of :data:`ROUTE_STATES`).

        A lookup in the writer's own tables, nothing kept per listing.
        ``unresolved``: the best path has no next hop the kernel can take
        (none resolves to an onlink gateway, or a link-local one has no
        interface), so nothing is installed for it.
        """
        key = (family, prefix)
        if key in self._attempts:
            return "failed"
        if key in self._pending or key in self._inflight or key in self._failed or not self._started:
            return "pending"
        if key in self._filtered:
            return "filtered"
        if key in self._installed:
            return "installed"
        return "unresolved"

    def status(self) -> dict[Family, FamilyCounts]:
        """Per family: routes installed, pending (owed or being written), failed.

        Failed: rejected by the kernel at the last attempt (being retried).
        For the API's ``show kernel``; O(routes), so not for every turn.
        """
        out = {f: FamilyCounts() for f in self.options.families}
        for key in self._installed:
            out.setdefault(key[0], FamilyCounts()).installed += 1
        for key in set(self._pending) | set(self._inflight):
            out.setdefault(key[0], FamilyCounts()).pending += 1
        for key in self._attempts:
            out.setdefault(key[0], FamilyCounts()).failed += 1
        return out

    # -- writing -------------------------------------------------------------

    def set_options(self, options: WriterOptions) -> None:
        """New options (a reload); the routes of a family no longer handled are removed.

        A family newly handled is filled by the caller (its Loc-RIB run
        through :meth:`changes`), as is an ``ecmp`` change.
        """
        gone = self.options.families - options.families
        self.options = options
        if not gone:
            return
        for d in (self._failed, self._attempts, self._src_want):
            for key in [k for k in d if k[0] in gone]:
                del d[key]
        self._filtered = {k for k in self._filtered if k[0] not in gone}
        for key in list(self._installed) + list(self._inflight) + list(self._pending) + list(self._unlisted):
            if key[0] in gone:
                self._pending[key] = ()
        self._kick()

    def set_metric(self, metric: int) -> None:
        """Move every route of ours to ``metric`` (a reload): each is written at the new
        metric before the old one is deleted, so no prefix leaves the kernel."""
        self._new_metric = metric
        self._kick()

    def _remeter(self) -> None:
        metric, self._new_metric = self._new_metric, None
        assert metric is not None and self._backend is not None
        src = self._src_installed
        # Exclusive: at the new metric another protocol's route may be there.
        routes = [KernelRoute(k[0], k[1], self._kernel_hops(h), src.get(k) if src else None, True)
                  for k, h in self._installed.items()]
        # Left by an earlier run and not adopted yet: they move too, and stay until converged().
        routes += [KernelRoute(k[0], k[1], h, None, True) for k, h in (self._stale or {}).items()
                   if k not in self._installed and h]
        routes = [r for r in routes if r.nexthops]
        # Ours at the old metric but not listed: deleted there, written anew (exclusive) after.
        old_only = [KernelRoute(k[0], k[1], ()) for k in self._unlisted if k not in self._installed]
        self._unlisted = set()
        self._writing += 1
        d = self._defer(self._backend.remeter, routes, metric, old_only)
        d.addCallbacks(self._remetered, self._crashed, callbackArgs=(metric,), errbackArgs=([],))

    def _remetered(self, result: tuple[list[tuple[KernelRoute, int]], int], metric: int) -> None:
        failures, not_deleted = result
        log.info("kernel: routes moved to metric {metric}", metric=metric)
        if not_deleted:
            log.warn("kernel: {count} routes at the old metric could not be deleted", count=not_deleted)
        for r, code in failures:
            key = (r.family, r.prefix)
            if key in self._installed:
                self._reject(key, r, code, self._installed[key])
        self._writing -= 1
        self._kick()

    def _kick(self) -> None:
        if not self._started:
            return
        if self._new_metric is not None and not self._writing:
            # A prepared batch waits: it is written at the new metric after.
            self._remeter()
            return
        if self._ready is None and self._pending:
            self._ready = self._prepare() or None
        self._send_ready()
        if self._ready is None and self._pending:
            # While the worker writes (the GIL is free during the send):
            # the batch after it is ready when it returns.
            self._ready = self._prepare() or None
        if not self._writing and not self._ready and not self._pending:
            self._fire_idle()

    def _send_ready(self) -> None:
        """Hand prepared batches to the worker while fewer than ``in_flight`` are there."""
        limit = self.options.in_flight
        while self._ready and self._writing < limit and self._new_metric is None and self._started:
            routes, self._ready = self._ready, None
            self._writing += 1
            backend = self._backend
            assert backend is not None
            d = self._defer(backend.apply, routes)
            d.addCallbacks(self._written, self._crashed, callbackArgs=(routes,), errbackArgs=(routes,))
            if self._writing < limit and self._pending:
                self._ready = self._prepare() or None

    def _prepare(self) -> list[KernelRoute]:
        """The next batch: up to ``batch_size`` writes taken from ``_pending``, oldest first.

        A key being written (or in the batch prepared) stays pending until
        that write is done, so no key is in two batches.  The per-route work
        is inline (no call per route): it runs on the reactor thread for a
        full table.
        """
        routes: list[KernelRoute] = []
        append = routes.append
        pending = self._pending
        inflight = self._inflight
        installed = self._installed
        stale = self._stale or None  # empty: nothing to look up per route
        unlisted = self._unlisted or None
        src_want = self._src_want
        src_installed = self._src_installed
        kernel_hops = self._kernel_hops if self.forwarding is not None else None
        new = tuple.__new__  # KernelRoute's own __new__ is a Python call: this is not
        limit = self.options.batch_size
        skipped: dict[Key, tuple[NextHop, ...]] = {}
        last_hops: Any = None
        last_out: tuple[NextHop, ...] = ()
        # Oldest first, a slice at a time: next(iter(d)) per key after
        # deleting the ones before it walks the deleted slots again (quadratic
        # on a full table).
        while pending and len(routes) < limit:
            take = list(islice(pending.items(), limit - len(routes)))
            for key, _h in take:
                del pending[key]
            for key, hops in take:
                if key in inflight:
                    skipped[key] = hops
                    continue
                src = src_want.get(key) if src_want else None
                if hops:
                    if installed.get(key) == hops and (
                            src_installed.get(key) if src_installed else None) == src:
                        continue
                    if kernel_hops is None:
                        out = hops
                    elif hops is last_hops:
                        out = last_out
                    else:
                        out = last_out = kernel_hops(hops)
                        last_hops = hops
                    # A route with a source is written again rather than adopted:
                    # the table is read without RTA_PREFSRC.
                    if stale is not None and out and src is None and stale.get(key) == out:
                        # Left by an earlier run exactly as wanted: adopt it.
                        installed[key] = hops
                        continue
                else:
                    out = ()
                ours = key in installed or (stale is not None and key in stale) or (
                    unlisted is not None and key in unlisted)
                if not out and not ours:
                    continue
                inflight[key] = hops
                append(new(KernelRoute, (key[0], key[1], out, src if out else None, bool(out) and not ours)))
        if skipped:
            pending.update(skipped)
        return routes

    def _kernel_hops(self, hops: tuple[NextHop, ...]) -> tuple[NextHop, ...]:
        fw = self.forwarding
        if fw is None:
            return hops
        out: list[NextHop] = []
        for nh, dev in hops:
            if dev is not None:
                # Link-local with its interface: onlink by definition.
                out.append((nh, dev))
                continue
            via = fw(nh)
            if via is not None and (via, dev) not in out:
                out.append((via, dev))
        return tuple(out)

    def rewrite_next_hops(self, next_hops: set[str]) -> None:
        """These next hops now resolve through other gateways: write their routes again."""
        n = 0
        for key, hops in list(self._installed.items()):
            if any(nh in next_hops for nh, _d in hops):
                del self._installed[key]
                self._unlisted.add(key)
                self._pending.setdefault(key, hops)
                n += 1
        if n:
            log.info("kernel: {count} routes follow their next hops to new gateways", count=n)
            self._kick()

    def _written(self, failures: list[tuple[KernelRoute, int]], routes: list[KernelRoute]) -> None:
        self._writing -= 1
        # The next batch first: the kernel works on it while these results are taken in.
        self._send_ready()
        installed = self._installed
        stale = self._stale
        if not failures and not stale and not self._attempts and not self._src_installed \
                and not self._src_want and not self._unlisted:
            # The usual batch (no error, no source, no retry): only what must be done.
            pop = self._inflight.pop
            drop = installed.pop
            for r in routes:
                key = (r[0], r[1])
                hops = pop(key, r[2])
                if r[2]:
                    installed[key] = hops
                else:
                    drop(key, None)
            self.writes += len(routes)
            self._kick()
            return
        bad = {(r.family, r.prefix): code for r, code in failures}
        for r in routes:
            key = (r.family, r.prefix)
            hops = self._inflight.pop(key, r.nexthops)
            code = bad.get(key)
            if code is None or (not r.nexthops and code in (errno_mod.ESRCH, errno_mod.ENOENT)):
                # Deleting what is already gone is done too.
                if r.nexthops:
                    installed[key] = hops
                    if r.source is not None:
                        self._src_installed[key] = r.source
                    elif self._src_installed:
                        self._src_installed.pop(key, None)
                else:
                    installed.pop(key, None)
                    if self._src_installed:
                        self._src_installed.pop(key, None)
                if stale is not None:
                    stale.pop(key, None)
                if self._attempts:
                    self._attempts.pop(key, None)
                if self._unlisted:
                    self._unlisted.discard(key)
                continue
            self._reject(key, r, code, hops)
        self.writes += len(routes)
        self._kick()

    def _reject(self, key: Key, r: KernelRoute, code: int, hops: tuple[NextHop, ...]) -> None:
        self.errors += 1
        attempts = self._attempts.get(key, 0) + 1
        self._attempts[key] = attempts
        if r.nexthops:
            if self._installed.pop(key, None) is not None or not r.exclusive:
                # A replace that failed leaves our previous route where it was.
                self._unlisted.add(key)
            self._src_installed.pop(key, None)
        if code == errno_mod.EEXIST and r.exclusive:
            log.warn("kernel: {prefix} not installed: another protocol's route has that prefix and "
                     "metric in the table, and bgpd does not replace it (errno {errno}), attempt "
                     "{attempts}", prefix=r.destination, errno=code, attempts=attempts)
        else:
            log.warn("kernel: {action} {prefix} failed: errno {errno} ({error}), attempt {attempts}",
                     action="replace" if r.nexthops else "delete", prefix=r.destination, errno=code,
                     error=os.strerror(code) if code > 0 else "backend error", attempts=attempts)
        if key not in self._pending and not self._stopping:
            self._failed[key] = hops
            self._schedule_retry()

    def _schedule_retry(self) -> None:
        if self._retry_handle is not None or not self._failed:
            return
        # One timer for all: the least-tried route decides, and every route
        # that fails again doubles the wait of the next round.
        attempts = min(self._attempts.get(k, 1) for k in self._failed)
        o = self.options
        delay = min(o.retry_max, o.retry_initial * 2 ** min(attempts - 1, 30))
        self._retry_handle = self.call_later(delay, self._retry)

    def _retry(self) -> None:
        self._retry_handle = None
        failed, self._failed = self._failed, {}
        for key, hops in failed.items():
            self._pending.setdefault(key, hops)
        self._kick()

    def _crashed(self, failure: Any, routes: list[KernelRoute]) -> None:
        log.failure("kernel: backend failed on a batch of {count} routes", failure, count=len(routes))
        self._writing -= 1
        for r in routes:
            key = (r.family, r.prefix)
            self._reject(key, r, -1, self._inflight.pop(key, r.nexthops))
        self._kick()

    def _fire_idle(self) -> None:
        if self._writing or self._pending or self._ready:
            return
        waiters, self._idle_waiters = self._idle_waiters, []
        for d in waiters:
            d.callback(None)

    @property
    def installed(self) -> dict[Key, tuple[NextHop, ...]]:
        """What the kernel has from us (read only)."""
        return self._installed


