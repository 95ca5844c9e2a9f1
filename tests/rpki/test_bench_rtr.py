"""Smoke test of bench/rtr_cache.py: a small load through the real reactor prints its one line."""

from __future__ import annotations

import os
import re
import subprocess
import sys

from twisted.trial.unittest import SynchronousTestCase

ROOT = os.path.dirname(os.path.dirname(os.path.dirname(os.path.abspath(__file__))))


class BenchRtrCacheTests(SynchronousTestCase):
    """bench/rtr_cache.py runs end to end (a smoke test, no timing asserted)."""

    def test_small_load(self) -> None:
        """2,000 VRPs reach the counting sink by End of Data; the line names the count."""
        r = subprocess.run([sys.executable, "bench/rtr_cache.py", "--vrps", "2000"], cwd=ROOT,
                           capture_output=True, text=True, timeout=120)
        self.assertEqual(r.returncode, 0, r.stderr)
        self.assertRegex(r.stdout, re.compile(r"^rtr: 2000 VRPs decoded and handed to the sink in [\d.]+ s "
                                              r"\([\d,]+ VRPs/s\), client keeps \d+ MB \(peak \d+ MB\), "
                                              r"longest reactor stall [\d.]+ s$", re.M))
