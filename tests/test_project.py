"""Project-wide checks that are part of the test command: layering and lint."""

from __future__ import annotations

import os
import shutil
import subprocess
import sys

from twisted.trial.unittest import SynchronousTestCase

ROOT = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))


def _tool(name: str) -> str | None:
    here = os.path.join(os.path.dirname(sys.executable), name)
    return here if os.path.exists(here) else shutil.which(name)


class ProjectTests(SynchronousTestCase):
    def test_layers(self):
        """The import-linter contracts in setup.cfg hold (DESIGN.md's layers)."""
        tool = _tool("lint-imports")
        if tool is None:
            self.fail("lint-imports (import-linter) is not installed")
        result = subprocess.run([tool], cwd=ROOT, capture_output=True,
                                text=True, timeout=300,
                                env={**os.environ, "PYTHONPATH": ROOT})
        self.assertEqual(result.returncode, 0, result.stdout + result.stderr)

    def test_ruff(self):
        """ruff finds nothing in the package, the tests and the benchmarks."""
        result = subprocess.run([sys.executable, "-m", "ruff", "check", "bgpd", "tests", "bench",
                                 "twisted"], cwd=ROOT, capture_output=True, text=True, timeout=300)
        self.assertEqual(result.returncode, 0, result.stdout + result.stderr)

    def test_twistd_plugin(self):
        """The twistd plugin is one ServiceMaker line naming bgpd.tap."""
        from twisted.application.service import IServiceMaker
        from twisted.plugin import getPlugins

        names = {p.tapname: p for p in getPlugins(IServiceMaker)}
        self.assertIn("bgpd", names)
        self.assertEqual(names["bgpd"].module, "bgpd.tap")
