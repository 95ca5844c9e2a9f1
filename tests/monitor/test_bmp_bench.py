"""Smoke test of bench/monitor.py: full-table convergence with and without a BMP collector."""

from __future__ import annotations

import os
import re
import subprocess
import sys

from twisted.trial.unittest import SynchronousTestCase

from tests.interop.harness import require_root

ROOT = os.path.dirname(os.path.dirname(os.path.dirname(os.path.abspath(__file__))))


class MonitorBenchSmokeTests(SynchronousTestCase):
    """The benchmark runs end to end (a size for CI, no timing asserted)."""

    def test_small_table(self):
        """At scale 0.02 both runs deliver the table and the collector gets the stream."""
        require_root()
        r = subprocess.run([sys.executable, "bench/monitor.py", "--scale", "0.02", "--timeout", "300"],
                           cwd=ROOT, capture_output=True, text=True, timeout=900, check=False)
        lines = [x for x in r.stdout.splitlines() if x.startswith("monitor: ")]
        self.assertEqual(len(lines), 1, r.stdout + r.stderr[-3000:])
        line = lines[0]
        self.assertRegex(line, r"without BMP [\d.]+s  with BMP \(pre\+post policy\) [\d.]+s  [+-][\d.]+%")
        messages = int(re.search(r"collector: ([\d,]+) messages", line).group(1).replace(",", ""))
        # Every UPDATE twice (as received, and re-encoded post-policy), plus Initiation and Peer Ups.
        self.assertGreater(messages, 2 * 1000, line)
        self.assertEqual(r.returncode, 0, r.stderr[-3000:])
