"""Process-wide settings of bgpd.runtime: applied once when the daemon starts; GC pauses stay short."""

from __future__ import annotations

import gc
import sys

from twisted.internet.testing import MemoryReactorClock
from twisted.trial.unittest import SynchronousTestCase

from bgpd.config import parse_config
from bgpd.runtime import SWITCH_INTERVAL, tune_gc, tune_switch_interval
from bgpd.service import BgpdService

CONFIG = """
[bgp]
local_as = 65000
router_id = "192.0.2.1"
listen_addresses = []
"""


class SwitchIntervalTests(SynchronousTestCase):
    def setUp(self):
        self.addCleanup(sys.setswitchinterval, sys.getswitchinterval())
        sys.setswitchinterval(0.005)

    def test_daemon_start_sets_it(self):
        """Starting the service tree sets the interpreter's switch interval to 1 ms."""
        svc = BgpdService(parse_config(CONFIG), None, MemoryReactorClock())
        svc.startService()
        self.addCleanup(svc.stopService)
        self.assertEqual(sys.getswitchinterval(), SWITCH_INTERVAL)

    def test_shorter_one_is_kept(self):
        """An interval already shorter than bgpd's stays; the previous one is returned."""
        self.assertEqual(tune_switch_interval(), 0.005)
        self.assertEqual(sys.getswitchinterval(), SWITCH_INTERVAL)
        sys.setswitchinterval(0.0005)
        self.assertEqual(tune_switch_interval(), 0.0005)
        self.assertEqual(sys.getswitchinterval(), 0.0005)


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
