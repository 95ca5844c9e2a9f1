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

    def test_for_feed(self):
        """--for-feed prints the filter's tables, which parse, and counts close to the whole feed."""
        import json

        from bgpd.config import parse_config

        out = subprocess.run(
            [sys.executable, os.path.join(ROOT, "bench", "policy.py"), "--for-feed", "--scale", "0.002"],
            capture_output=True, text=True, timeout=300, check=True,
        ).stdout
        d = json.loads(out.strip().splitlines()[-1])
        config = parse_config('[bgp]\nlocal_as = 65000\nrouter_id = "192.0.2.2"\n' + d["policies"])
        self.assertEqual([n for n, _ in config.policies], ["ixp-in"])
        # Up to 5,000 drawn from the table (fewer exist in so small a one), plus the two catch-alls.
        self.assertGreater(d["set"], 1000)
        # The bench speakers' table (special-purpose space removed): nearly all accepted.
        self.assertGreater(d["v4"], 2000)
        self.assertLessEqual(d["v4"], 2080)
        self.assertGreater(d["v6"], 400)


class RibScalePolicyTests(SynchronousTestCase):
    """bench/rib_scale.py --policy ixp runs end to end with the filter on bgpd's feeder session."""

    def test_small_table_through_the_filter(self):
        """At scale 0.02 the sink receives what the filter accepts and the line names the filter."""
        from tests.interop.harness import require_root

        require_root()
        r = subprocess.run([sys.executable, "bench/rib_scale.py", "--scale", "0.02", "--routers", "bgpd",
                            "--no-wire", "--policy", "ixp", "--timeout", "300"], cwd=ROOT,
                           capture_output=True, text=True, timeout=900, check=False)
        lines = [x for x in r.stdout.splitlines() if x.startswith("rib_scale: ")]
        self.assertEqual(len(lines), 1, r.stdout + r.stderr[-3000:])
        self.assertRegex(lines[0], r"  bgpd with the IXP filter: [\d.]+s [\d,]+ pfx/s peak")
        self.assertEqual(r.returncode, 0, r.stderr[-3000:])
