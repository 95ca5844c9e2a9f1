"""Smoke test of bench/api.py at a tiny scale: it runs and prints its line (no timing asserted)."""

from __future__ import annotations

import os
import re
import subprocess
import sys

from twisted.trial.unittest import SynchronousTestCase

ROOT = os.path.dirname(os.path.dirname(os.path.dirname(os.path.abspath(__file__))))


class BenchApiSmokeTests(SynchronousTestCase):
    def test_bench_api_runs(self):
        """bench/api.py at 0.2% of a table lists every path, originates them all, and never overflows."""
        r = subprocess.run([sys.executable, os.path.join(ROOT, "bench", "api.py"), "--scale", "0.002",
                            "--originate", "2000"], capture_output=True, text=True, timeout=300, cwd=ROOT)
        self.assertEqual(r.returncode, 0, r.stderr[-3000:])
        m = re.search(r"table ([\d,]+) paths; ListRoutes ([\d,]+) paths .* AddPaths ([\d,]+) paths .*"
                      r"overflow (\w+), ([\d,]+) events", r.stdout)
        self.assertIsNotNone(m, r.stdout)
        table, listed, added, overflow, events = m.groups()
        self.assertEqual(listed, table)
        self.assertEqual(added, "2,000")
        self.assertEqual(overflow, "no")
        self.assertEqual(events, table)
