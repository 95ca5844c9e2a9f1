"""Smoke test of bench/policy.py: it runs on a small table and prints its one line (no timing asserted)."""

from __future__ import annotations

import os
import re
import subprocess
import sys

from twisted.trial.unittest import SynchronousTestCase

ROOT = os.path.dirname(os.path.dirname(os.path.dirname(os.path.abspath(__file__))))


class BenchPolicyTests(SynchronousTestCase):
    """The IXP filter benchmark at 0.2% of a full table."""

    def test_prints_one_line(self):
        """One line starting "policy: N routes/s", over every route of the table."""
        out = subprocess.run(
            [sys.executable, os.path.join(ROOT, "bench", "policy.py"), "--scale", "0.002"],
            capture_output=True,
            text=True,
            timeout=300,
            check=True,
        ).stdout
        lines = out.strip().splitlines()
        self.assertEqual(len(lines), 1, out)
        self.assertRegex(lines[0], r"^policy: [0-9,]+ routes/s ")
        m = re.search(r"\(([0-9,]+) routes in", lines[0])
        self.assertEqual(int(m.group(1).replace(",", "")), 2080 + 450)
        self.assertIn("10 terms", lines[0])
