"""``[monitor] log_format = "json"``: twistd bgpd writes one JSON object per line (and nothing else).

A real ``twistd -n bgpd`` (the venv's python), no sockets (``listen_addresses
= []``, no neighbors): its standard output must be JSON lines only, twistd's
own start-up lines included, because the tap hands twistd bgpd's observer
factory instead of adding a second observer.  Bounded waits; the process is
stopped by its PID.
"""

from __future__ import annotations

import json
import os
import sys

from twisted.trial.unittest import SynchronousTestCase

from tests.monitor.support import QUIET_CONFIG, temp_path, twistd_lines

MONITOR = """
[monitor]
log_format = "{fmt}"
"""


class JsonLogTests(SynchronousTestCase):
    """The tap's JSON observer."""

    def _config(self, fmt: str) -> str:
        d = os.path.abspath(temp_path(self))
        os.makedirs(d)
        path = os.path.join(d, "bgpd.toml")
        with open(path, "w") as f:
            f.write(QUIET_CONFIG.format(state=os.path.join(d, "state")) + MONITOR.format(fmt=fmt))
        return path

    def test_options_set_twistd_logger(self):
        """With json the parsed options carry bgpd's observer factory as twistd's logger."""
        from twisted.scripts.twistd import ServerOptions

        opts = ServerOptions()
        opts.parseOptions(["--nodaemon", "bgpd", "-c", self._config("json")])
        observer = opts["logger"]()
        self.assertIs(observer.out, sys.stdout)
        opts = ServerOptions()
        opts.parseOptions(["--nodaemon", "bgpd", "-c", self._config("text")])
        self.assertIsNone(opts["logger"])

    def test_twistd_writes_json_lines(self):
        """Every line twistd bgpd prints is a JSON object with time, level and text."""
        lines = twistd_lines(self, MONITOR.format(fmt="json"))
        self.assertTrue(lines, "twistd printed nothing")
        objs = [json.loads(x) for x in lines]  # raises on any non-JSON line
        self.assertTrue(any("starting up" in o["text"] for o in objs), lines)
        self.assertTrue(all({"time", "level", "text", "namespace"} <= o.keys() for o in objs))
