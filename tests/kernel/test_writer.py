"""The kernel writer's logic (bgpd.kernel.writer) against a fake backend, on a task.Clock."""

from __future__ import annotations

import errno

from twisted.internet import defer
from twisted.internet.task import Clock
from twisted.trial.unittest import SynchronousTestCase

from bgpd.kernel.writer import KernelRoute, KernelWriter, WriterOptions
from bgpd.rib import Change, make_path
from bgpd.rib.testing import IPV4, IPV6, make_peer, pfx
from tests.rib.support import attrs

P1 = pfx("203.0.113.0/24")
P2 = pfx("198.51.100.0/24")
P6 = pfx("2001:db8:1::/48")
PEER = make_peer("192.0.2.2", 65001)


def path(nh: str = "192.0.2.2"):
    return make_path(PEER, attrs(nh=nh))


def change(prefix: bytes, *hops: str, fam=IPV4, old=None) -> Change:
    paths = tuple(path(h) for h in hops)
    return Change(fam, prefix, old, paths[0] if paths else None, paths)


class FakeBackend:
    def __init__(self, found=None, fail=None):
        self.table = dict(found or {})
        self.batches: list[list[KernelRoute]] = []
        self.fail = dict(fail or {})
        self.closed = False
        self.hold: defer.Deferred | None = None

    def apply(self, routes):
        self.batches.append(list(routes))
        out = []
        for r in routes:
            key = (r.family, r.prefix)
            code = self.fail.get(key)
            if code:
                out.append((r, code))
            elif r.nexthops:
                self.table[key] = r.nexthops
            elif self.table.pop(key, None) is None:
                out.append((r, errno.ESRCH))
        return out

    def dump(self):
        return dict(self.table)

    def close(self):
        self.closed = True


class Threads:
    """deferToThread stand-in: runs now, or holds the call until release()."""

    def __init__(self):
        self.held: list = []
        self.holding = False

    def __call__(self, fn, *args):
        if self.holding:
            d = defer.Deferred()
            self.held.append((d, fn, args))
            return d
        return defer.maybeDeferred(fn, *args)

    def release(self):
        held, self.held = self.held, []
        for d, fn, args in held:
            d.callback(fn(*args))


class WriterTestCase(SynchronousTestCase):
    families = frozenset({IPV4, IPV6})
    ecmp = True

    def make(self, backend: FakeBackend | None = None, **kw) -> KernelWriter:
        self.clock = Clock()
        self.threads = Threads()
        self.backend = backend or FakeBackend()
        opts = WriterOptions(families=kw.pop("families", self.families), ecmp=kw.pop("ecmp", self.ecmp), **kw)
        w = KernelWriter(lambda: self.backend, opts, self.clock.callLater, self.threads)
        self.successResultOf(w.start())
        return w


class WriterTests(WriterTestCase):
    def test_install_and_remove(self):
        """A new best path is installed with its next hop; a withdrawal deletes it."""
        w = self.make()
        w.changes([change(P1, "192.0.2.2")])
        self.assertEqual(self.backend.table, {(IPV4, P1): (("192.0.2.2", None),)})
        w.changes([change(P1)])
        self.assertEqual(self.backend.table, {})
        self.assertEqual(w.status()[IPV4].installed, 0)

    def test_coalesced_while_writing(self):
        """A prefix changed three times while the worker is full is written once more."""
        w = self.make(in_flight=1)
        self.threads.holding = True
        w.changes([change(P2, "192.0.2.2")])
        for nh in ("192.0.2.3", "192.0.2.4", "192.0.2.5"):
            w.changes([change(P1, nh)])
        self.assertEqual(w.status()[IPV4].pending, 2)
        self.threads.release()  # the P2 batch; the P1 batch starts
        self.threads.release()
        writes = [r for b in self.backend.batches for r in b if r.prefix == P1]
        # Exclusive: a first install never replaces another protocol's route.
        self.assertEqual(writes, [KernelRoute(IPV4, P1, (("192.0.2.5", None),), None, True)])

    def test_one_batch_at_a_time(self):
        """With in_flight 1, while a batch is in the worker the next waits: never two at once."""
        w = self.make(in_flight=1)
        self.threads.holding = True
        w.changes([change(P1, "192.0.2.2")])
        w.changes([change(P2, "192.0.2.2")])
        self.assertEqual(len(self.threads.held), 1)
        self.threads.release()
        self.assertEqual(len(self.threads.held), 1)
        self.threads.release()
        self.assertEqual(len(self.backend.table), 2)

    def test_two_in_flight_disjoint(self):
        """The default hands a second batch over while the first is written; a prefix in
        the first that changes again waits for it, and is then written as it is last."""
        w = self.make(batch_size=1)
        self.threads.holding = True
        w.changes([change(P1, "192.0.2.2"), change(P2, "192.0.2.2")])
        self.assertEqual(len(self.threads.held), 2)
        w.changes([change(P1, "192.0.2.3"), change(P1, "192.0.2.4")])
        self.assertEqual(len(self.threads.held), 2)
        self.threads.release()
        self.threads.release()
        writes = [r.nexthops for b in self.backend.batches for r in b if r.prefix == P1]
        self.assertEqual(writes, [(("192.0.2.2", None),), (("192.0.2.4", None),)])
        self.assertEqual(self.backend.table[(IPV4, P1)], (("192.0.2.4", None),))

    def test_family_disabled(self):
        """A family not enabled is never written."""
        w = self.make(families=frozenset({IPV4}))
        w.changes([change(P6, "2001:db8::2", fam=IPV6)])
        self.assertEqual(self.backend.batches, [])

    def test_ecmp_one_route(self):
        """The multipath set becomes one route with every next hop."""
        w = self.make()
        w.changes([change(P1, "192.0.2.2", "192.0.2.3")])
        self.assertEqual(self.backend.table[(IPV4, P1)], (("192.0.2.2", None), ("192.0.2.3", None)))

    def test_ecmp_off(self):
        """Without ECMP only the best path's next hop is installed."""
        w = self.make(ecmp=False)
        w.changes([change(P1, "192.0.2.2", "192.0.2.3")])
        self.assertEqual(self.backend.table[(IPV4, P1)], (("192.0.2.2", None),))

    def test_unchanged_not_rewritten(self):
        """The same next hops again are not written again."""
        w = self.make()
        w.changes([change(P1, "192.0.2.2")])
        w.changes([change(P1, "192.0.2.2")])
        self.assertEqual(len(self.backend.batches), 1)

    def test_batch_size(self):
        """A large change list is written in batches of batch_size."""
        w = self.make(batch_size=100)
        w.changes([change(bytes((24, 198, 18, i)), "192.0.2.2") for i in range(250)])
        self.assertEqual([len(b) for b in self.backend.batches], [100, 100, 50])
        self.assertEqual(w.status()[IPV4].installed, 250)


class FailureTests(WriterTestCase):
    def test_error_counted_and_retried(self):
        """A rejected route is counted, the others go on, and it is retried with back-off."""
        backend = FakeBackend(fail={(IPV4, P1): errno.ENETUNREACH})
        w = self.make(backend, retry_initial=1.0)
        w.changes([change(P1, "192.0.2.2"), change(P2, "192.0.2.2")])
        self.assertIn((IPV4, P2), backend.table)
        st = w.status()[IPV4]
        self.assertEqual((st.installed, st.failed), (1, 1))
        self.assertEqual(w.errors, 1)
        self.clock.advance(1.0)
        self.assertEqual(w.errors, 2)
        self.clock.advance(1.9)  # the second wait is 2 s
        self.assertEqual(w.errors, 2)
        del backend.fail[(IPV4, P1)]
        self.clock.advance(0.1)
        self.assertIn((IPV4, P1), backend.table)
        self.assertEqual(w.status()[IPV4].failed, 0)

    def test_error_logged_with_prefix_and_errno(self):
        """The log event names the prefix and the errno."""
        from twisted.logger import globalLogPublisher

        events: list = []
        globalLogPublisher.addObserver(events.append)
        self.addCleanup(globalLogPublisher.removeObserver, events.append)
        w = self.make(FakeBackend(fail={(IPV4, P1): errno.ENETUNREACH}))
        w.changes([change(P1, "192.0.2.2")])
        ev = [e for e in events if e.get("prefix") == "203.0.113.0/24"]
        self.assertEqual(ev[0]["errno"], errno.ENETUNREACH)

    def test_new_change_replaces_retry(self):
        """A change for a failing prefix is written with the new next hops at once."""
        backend = FakeBackend(fail={(IPV4, P1): errno.ENETUNREACH})
        w = self.make(backend)
        w.changes([change(P1, "192.0.2.2")])
        del backend.fail[(IPV4, P1)]
        w.changes([change(P1, "192.0.2.3")])
        self.assertEqual(backend.table[(IPV4, P1)], (("192.0.2.3", None),))
        self.clock.advance(100)
        self.assertEqual(backend.table[(IPV4, P1)], (("192.0.2.3", None),))


class ReconcileTests(WriterTestCase):
    def test_stale_kept_until_converged(self):
        """Routes of an earlier run stay until converged(), then the stale ones go."""
        found = {(IPV4, P1): (("192.0.2.9", None),), (IPV4, P2): (("192.0.2.9", None),)}
        backend = FakeBackend(found)
        w = self.make(backend)
        w.changes([change(P1, "192.0.2.2")])
        self.assertEqual(backend.table, {(IPV4, P1): (("192.0.2.2", None),),
                                         (IPV4, P2): (("192.0.2.9", None),)})
        w.converged()
        self.assertEqual(backend.table, {(IPV4, P1): (("192.0.2.2", None),)})

    def test_same_route_adopted(self):
        """A route found as it should be is not written again."""
        found = {(IPV4, P1): (("192.0.2.2", None),)}
        backend = FakeBackend(found)
        w = self.make(backend)
        w.changes([change(P1, "192.0.2.2")])
        w.converged()
        self.assertEqual(backend.batches, [])
        self.assertEqual(w.status()[IPV4].installed, 1)

    def test_stop_removes(self):
        """A clean stop removes every route we installed."""
        backend = FakeBackend()
        w = self.make(backend)
        w.changes([change(P1, "192.0.2.2"), change(P2, "192.0.2.2")])
        self.successResultOf(w.stop())
        self.assertEqual(backend.table, {})
        self.assertTrue(backend.closed)

    def test_stop_keep(self):
        """keep_on_stop leaves the routes for a graceful restart."""
        backend = FakeBackend()
        w = self.make(backend)
        w.changes([change(P1, "192.0.2.2")])
        self.successResultOf(w.stop(keep=True))
        self.assertEqual(len(backend.table), 1)

    def test_stop_waits_for_inflight(self):
        """Stop waits for the batch being written, then removes it too."""
        backend = FakeBackend()
        w = self.make(backend)
        self.threads.holding = True
        w.changes([change(P1, "192.0.2.2")])
        d = w.stop()
        self.assertNoResult(d)
        for _ in range(5):
            self.threads.release()
        self.successResultOf(d)
        self.assertEqual(backend.table, {})


class StateTests(WriterTestCase):
    """KernelWriter.state: a prefix's best path as the route listings flag it."""

    def test_pending_then_installed(self):
        """Pending while the batch is being written, installed after."""
        w = self.make()
        self.threads.holding = True
        w.changes([change(P1, "192.0.2.2")])
        self.assertEqual(w.state(IPV4, P1), "pending")
        self.threads.release()
        self.assertEqual(w.state(IPV4, P1), "installed")

    def test_failed(self):
        """A route the kernel rejected is failed until a write succeeds."""
        backend = FakeBackend(fail={(IPV4, P1): errno.ENETUNREACH})
        w = self.make(backend)
        w.changes([change(P1, "192.0.2.2")])
        self.assertEqual(w.state(IPV4, P1), "failed")
        del backend.fail[(IPV4, P1)]
        self.clock.advance(60)
        self.assertEqual(w.state(IPV4, P1), "installed")

    def test_filtered_and_source(self):
        """The export decision keeps a prefix out (filtered) and gives another its source."""
        w = self.make()
        w.export = lambda peer, fam, prefix, a: (prefix != P2, "192.0.2.1" if prefix == P1 else None)
        w.changes([change(P1, "192.0.2.2"), change(P2, "192.0.2.2")])
        self.assertEqual(w.state(IPV4, P2), "filtered")
        self.assertEqual(self.backend.batches[-1],
                         [KernelRoute(IPV4, P1, (("192.0.2.2", None),), "192.0.2.1", True)])
        # The same next hops with another source: written again, once.
        w.export = lambda peer, fam, prefix, a: (True, "192.0.2.9")
        w.changes([change(P1, "192.0.2.2")])
        self.assertEqual(self.backend.batches[-1][0].source, "192.0.2.9")
        n = len(self.backend.batches)
        w.changes([change(P1, "192.0.2.2")])
        self.assertEqual(len(self.backend.batches), n)

    def test_unresolved(self):
        """A best path whose next hop resolves to no gateway is not written: unresolved."""
        w = self.make()
        w.forwarding = lambda nh: None
        w.changes([change(P1, "192.0.2.2")])
        self.assertEqual(w.state(IPV4, P1), "unresolved")
        self.assertEqual(self.backend.batches, [])


class OwnershipTests(WriterTestCase):
    """Which writes may replace: only a route bgpd knows is its own."""

    def test_failed_replace_then_withdrawn(self):
        """A replace the kernel refused leaves our old route: a withdrawal still deletes it,
        and the retry replaces (not an exclusive create, which our own route would refuse)."""
        backend = FakeBackend()
        w = self.make(backend)
        w.changes([change(P1, "192.0.2.2")])
        backend.fail[(IPV4, P1)] = errno.ENETUNREACH
        w.changes([change(P1, "192.0.2.3")])
        self.assertFalse(backend.batches[-1][0].exclusive)
        del backend.fail[(IPV4, P1)]
        self.clock.advance(1)
        self.assertEqual(backend.batches[-1], [KernelRoute(IPV4, P1, (("192.0.2.3", None),), None, False)])
        w.changes([change(P1)])
        self.assertEqual(backend.batches[-1], [KernelRoute(IPV4, P1, ())])
        self.assertEqual(backend.table, {})

    def test_withdrawn_while_failing(self):
        """Withdrawn while its replace is failing: the old route is deleted, not left behind."""
        backend = FakeBackend()
        w = self.make(backend)
        w.changes([change(P1, "192.0.2.2")])
        backend.fail[(IPV4, P1)] = errno.ENETUNREACH
        w.changes([change(P1, "192.0.2.3")])
        del backend.fail[(IPV4, P1)]
        w.changes([change(P1)])
        self.assertEqual(backend.table, {})
