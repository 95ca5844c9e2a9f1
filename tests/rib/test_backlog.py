"""Inbound flow control: Rib.watch_backlog reports a full work queue, and when it drained."""

from __future__ import annotations

from bgpd.rib import RibOptions
from bgpd.rib.testing import announce, pfx
from tests.rib.support import E1, E2, RibTestCase, attrs


def prefixes(n: int, third: int = 0) -> list:
    return [pfx(f"203.0.{third}.{i * 4}/30") for i in range(n)]


class BacklogTests(RibTestCase):
    # Two prefixes a turn, full at 8 queued items, drained again at 2.
    options = RibOptions(mrai_ebgp=0.0, mrai_ibgp=0.0, chunk_size=2, backlog_high=8)

    def setUp(self) -> None:
        super().setUp()
        self.seen: list[bool] = []
        self.unwatch = self.rib.watch_backlog(self.seen.append)
        self.add(E1)
        self.sink = self.add(E2)

    def receive(self, n: int, third: int = 0) -> None:
        # One UPDATE of one prefix each: one work item each.
        for p in prefixes(n, third):
            self.rib.receive(E1, announce(attrs(), [p]))

    def test_full_then_drained(self):
        """At backlog_high queued items the watchers hear True once; at a quarter left, False."""
        held: list[int] = []
        self.rib.watch_backlog(lambda full: held.append(self.rib.loc_rib_size((1, 1))))
        self.receive(7)
        self.assertEqual(self.seen, [])
        self.assertFalse(self.rib.backlogged)
        self.receive(3, third=1)  # 10 items: full at the 8th, said once
        self.assertEqual(self.seen, [True])
        self.assertTrue(self.rib.backlogged)
        self.settle()
        # Two items a turn: drained when 2 were left, 8 of the 10 decided.
        self.assertEqual(self.seen, [True, False])
        self.assertEqual(held, [0, 8])
        self.assertFalse(self.rib.backlogged)
        self.assertEqual(self.rib.loc_rib_size((1, 1)), 10)
        self.assertEqual(self.rib.stats.backlog_full, 1)
        self.assertEqual(self.rib.stats.largest_backlog, 10)

    def test_full_again(self):
        """Every time the queue fills up again is told again."""
        self.receive(8)
        self.settle()
        self.receive(8, third=1)
        self.settle()
        self.assertEqual(self.seen, [True, False, True, False])
        self.assertEqual(self.rib.stats.backlog_full, 2)

    def test_drain_releases(self):
        """drain() (tests, benchmarks) empties the queue, and says so."""
        self.receive(9)
        self.rib.drain()
        self.assertEqual(self.seen, [True, False])
        self.assertFalse(self.rib.backlogged)

    def test_unwatched(self):
        """Without watchers nothing is held back, whatever the queue holds."""
        self.unwatch()
        self.receive(20)
        self.assertFalse(self.rib.backlogged)
        self.assertEqual(self.seen, [])
        self.settle()
        self.assertEqual(self.rib.loc_rib_size((1, 1)), 20)
