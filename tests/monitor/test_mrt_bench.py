"""Smoke test of bench/mrt.py: a small table dumped on a real reactor prints its one line.

Asserts the line and the counts (RFC 6396: one record per prefix plus the
PEER_INDEX_TABLE), never a timing.
"""

from __future__ import annotations

import os
import re
import subprocess
import sys

from twisted.trial.unittest import SynchronousTestCase

ROOT = os.path.dirname(os.path.dirname(os.path.dirname(os.path.abspath(__file__))))


class MrtBenchSmokeTests(SynchronousTestCase):
    """bench/mrt.py at 0.2 % of a full table."""

    def test_prints_one_line(self):
        """One 'mrt:' line; records = prefixes + 1; gzip writes fewer octets than it encodes."""
        r = subprocess.run([sys.executable, os.path.join(ROOT, "bench", "mrt.py"), "--scale", "0.002",
                            "--compression", "gzip"], capture_output=True, text=True, timeout=300,
                           cwd=ROOT, check=False)
        self.assertEqual(r.returncode, 0, r.stderr)
        lines = r.stdout.strip().splitlines()
        self.assertEqual(len(lines), 1, r.stdout)
        m = re.match(r"mrt: ([\d,]+) prefixes, ([\d,]+) records, ([\d.]+) MB \(([\d.]+) MB on disk, gzip\)",
                     lines[0])
        self.assertIsNotNone(m, lines[0])
        prefixes, records = (int(m.group(i).replace(",", "")) for i in (1, 2))
        self.assertEqual(records, prefixes + 1)
        self.assertGreater(prefixes, 2000)
