"""The collector settings the daemon runs with (bgpd.runtime): pauses stay short."""

from __future__ import annotations

import gc

from twisted.trial.unittest import SynchronousTestCase

from bgpd.runtime import tune_gc

#: Young objects one collection may scan: at 1-2 us each under churn (a cache
#: miss per object in a heap of millions), about 0.05 s.
_MOST_YOUNG = 25_000


class TuneGcTests(SynchronousTestCase):
    def setUp(self) -> None:
        old = tune_gc()
        self.addCleanup(gc.set_threshold, *old)
        was_enabled = gc.isenabled()
        gc.enable()
        self.addCleanup(lambda: None if was_enabled else gc.disable())

    def test_young_collection_comes_early(self):
        """A young collection runs before 25,000 new container objects have piled up."""
        gc.collect()
        before = gc.get_stats()[0]["collections"]
        keep = []
        for _ in range(_MOST_YOUNG):
            keep.append([])
        self.assertGreater(gc.get_stats()[0]["collections"], before)
        self.assertEqual(len(keep), _MOST_YOUNG)
