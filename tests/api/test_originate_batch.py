"""A large lease-less AddPaths: checked off the reactor, stored from a thread, the RIB fed in chunks."""

from __future__ import annotations

from twisted.internet.defer import Deferred, fail
from twisted.internet.testing import MemoryReactorClock
from twisted.trial.unittest import SynchronousTestCase

from bgpd import statecontrol
from bgpd.api.control import (
    Control,
    InvalidArgument,
    Unavailable,
    check_stored_paths,
    parse_paths,
    precompute_paths,
)
from bgpd.config import parse_config
from bgpd.service import BgpdService
from bgpd.state.store import StateError

CONFIG = """
[bgp]
local_as = 65000
router_id = "192.0.2.1"
listen_addresses = []
"""


def items(n: int, med: int | None = None) -> list[dict]:
    out = []
    for i in range(n):
        item = {"prefix": f"198.51.{100 + (i >> 8)}.{i & 255}/32", "next_hop": "192.0.2.1"}
        if med is not None:
            item["med"] = med
        out.append(item)
    return out


class OriginateBatchTests(SynchronousTestCase):
    def setUp(self):
        self.reactor = MemoryReactorClock()
        self.svc = BgpdService(parse_config(CONFIG), None, self.reactor)
        self.svc.startService()
        self.control = Control(self.svc)
        self.writes: list[tuple[Deferred, object, tuple]] = []

        def in_thread(fn, *args):
            d: Deferred = Deferred()
            self.writes.append((d, fn, args))
            return d

        self.svc.state.run_in_thread = in_thread
        rs = self.svc.rib_service
        self.taken: list[int] = []
        real = rs.take_originated
        rs.take_originated = lambda built: (self.taken.append(len(built)), real(built))[1]

    def tearDown(self):
        self.svc.stopService()

    def begin(self, n: int, med: int | None = None):
        paths = parse_paths(items(n, med))
        batch = check_stored_paths(paths, self.control.bgp_table())
        results: list = []
        d = self.control.add_stored_batch(paths, batch)
        d.addBoth(results.append)
        return results

    def finish_write(self) -> None:
        d, fn, args = self.writes.pop(0)
        d.callback(fn(*args))

    def test_nothing_runs_until_the_write_is_durable(self):
        """Until the store's write returns, the config, the overlay and the RIB are untouched."""
        results = self.begin(5000)
        self.assertEqual(len(self.writes), 1)
        self.assertEqual(self.svc.config.originate, ())
        self.assertEqual(self.svc.state.overlay, [])
        self.assertEqual(self.taken, [])
        self.assertEqual(results, [])

    def test_rib_takes_the_batch_in_chunks_one_per_turn(self):
        """After the write, the routes go to the RIB 2000 per reactor turn, then the config runs."""
        results = self.begin(5000)
        self.finish_write()
        # the first chunk in the write's own turn, each next one in a later call
        self.assertEqual(self.taken, [2000])
        self.assertEqual(results, [])
        self.reactor.advance(0)
        self.assertEqual(self.taken, [2000, 2000, 1000])
        self.assertEqual(results, [5000])
        self.assertEqual(len(self.svc.config.originate), 5000)
        self.assertEqual(len(self.svc.state.store.changes()), 5000)
        self.svc.rib_service.rib.drain()
        self.assertEqual(self.svc.rib_service.rib.loc_rib_size((1, 1)), 5000)

    def test_count_is_new_or_changed_only(self):
        """A second batch counts only the paths whose attributes changed."""
        results = self.begin(10)
        self.finish_write()
        again = self.begin(10)
        self.finish_write()
        self.assertEqual(again, [0])
        changed = self.begin(10, med=5)
        self.finish_write()
        self.assertEqual((results, changed), ([10], [10]))
        self.assertEqual({o.med for o in self.svc.config.originate}, {5})

    def test_write_failure_changes_nothing(self):
        """A failed write fails the call with Unavailable; the config, overlay and RIB stay as they were."""
        self.svc.state.run_in_thread = lambda fn, *a: fail(StateError("state.sqlite3", "disk full"))
        results = self.begin(100)
        self.assertEqual(len(results), 1)
        self.assertIsInstance(results[0].value, Unavailable)
        self.assertIn("disk full", str(results[0].value))
        self.assertEqual(self.svc.config.originate, ())
        self.assertEqual(self.svc.state.overlay, [])
        self.assertEqual(self.taken, [])
        self.svc.rib_service.rib.drain()
        self.assertEqual(self.svc.rib_service.rib.loc_rib_size((1, 1)), 0)

    def test_change_during_the_write_is_kept(self):
        """A neighbor added while the batch is being written is still in the config that runs after it."""
        results = self.begin(10)
        self.control.add_peer({"address": "192.0.2.9", "remote_as": 65009})
        self.finish_write()
        self.assertEqual(results, [10])
        self.assertIsNotNone(self.svc.config.neighbor("192.0.2.9"))
        self.assertEqual(len(self.svc.config.originate), 10)
        self.assertEqual({c.kind for c in self.svc.state.overlay}, {"neighbor", "originate"})

    def begin_precomputed(self, n: int, between=None):
        """As the server does it: snapshot on the reactor, check and precompute off it, then add."""
        paths = parse_paths(items(n))
        bgp, snapshot = self.control.batch_snapshot()
        batch = check_stored_paths(paths, bgp)
        pre = precompute_paths(snapshot, batch)
        if between is not None:
            between()
        calls = []
        real = statecontrol.effective_config
        statecontrol.effective_config = lambda *a: (calls.append(1), real(*a))[1]
        try:
            results: list = []
            self.control.add_stored_batch(paths, batch, pre).addBoth(results.append)
        finally:
            statecontrol.effective_config = real
        self.finish_write()
        self.reactor.advance(0)
        return results, calls

    def test_precomputed_config_spares_the_reactor(self):
        """With the effective config made off the reactor from a current snapshot, the reactor makes none."""
        results, calls = self.begin_precomputed(300)
        self.assertEqual(results, [300])
        self.assertEqual(calls, [])
        self.assertEqual(len(self.svc.config.originate), 300)
        self.assertEqual(len(self.svc.state.store.changes()), 300)

    def test_stale_snapshot_is_done_again_on_the_reactor(self):
        """A change between the snapshot and the batch: the reactor validates again, both changes run."""
        results, calls = self.begin_precomputed(
            30, between=lambda: self.control.add_peer({"address": "192.0.2.9", "remote_as": 65009}))
        self.assertEqual(results, [30])
        self.assertEqual(len(calls), 1)
        self.assertIsNotNone(self.svc.config.neighbor("192.0.2.9"))
        self.assertEqual(len(self.svc.config.originate), 30)

    def test_check_names_the_path(self):
        """A table the config's rules refuse is INVALID_ARGUMENT naming paths[i]."""
        paths = parse_paths(items(3))
        bad = paths[2].table
        bad["med"] = -1  # parse_paths' input comes from protobuf (uint32); the config's range still holds
        with self.assertRaises(InvalidArgument) as cm:
            check_stored_paths(paths, self.control.bgp_table())
        self.assertEqual(cm.exception.field, "paths[2].med")
