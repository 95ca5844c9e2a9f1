"""Project-wide checks that are part of the test command: layering and lint."""

from __future__ import annotations

import os
import re
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


def _literal_blocks(text: str) -> list[str]:
    """The lines of every indented literal block after a ``::`` paragraph of an rst text."""
    lines, blocks, i = text.splitlines(), [], 0
    while i < len(lines):
        if lines[i].rstrip().endswith("::"):
            i += 1
            while i < len(lines) and (not lines[i].strip() or lines[i].startswith(" ")):
                if lines[i].strip():
                    blocks.append(lines[i].strip())
                i += 1
        else:
            i += 1
    return blocks


class ReadmeTests(SynchronousTestCase):
    """README.rst, the user manual, says what the code and .ci/run do."""

    def setUp(self):
        with open(os.path.join(ROOT, "README.rst")) as f:
            self.readme = f.read()

    def test_ci_runs_the_readme_test_command(self):
        """The README's test command is, word for word, the command .ci/run ends with."""
        commands = [b for b in _literal_blocks(self.readme) if "-m pytest" in b]
        self.assertEqual(len(commands), 1, commands)
        with open(os.path.join(ROOT, ".ci", "run")) as f:
            last = [line for line in f.read().splitlines() if line.strip()][-1]
        self.assertEqual(last, commands[0])

    def test_default_config_path(self):
        """The default config path is stated once, and it is the one tap.py uses."""
        from bgpd.tap import Options

        default = Options()["config"]  # before parsing, an Options holds the defaults
        self.assertEqual(default, "/etc/bgpd/config.toml")
        self.assertEqual(self.readme.count(default), 1)
        self.assertEqual(self.readme.count("/etc/bgpd"), 1)

    def test_no_reference_outside_the_repository(self):
        """Every file the README names in double backquotes exists in the repository."""
        for name in re.findall(r"``([\w./-]+\.(?:md|rst|py|toml|cfg|txt))``", self.readme):
            if name.startswith("/"):
                continue  # a path on the machine bgpd runs on, such as its config file
            self.assertTrue(os.path.exists(os.path.join(ROOT, name)), name)
        self.assertNotIn("DESIGN", self.readme)
