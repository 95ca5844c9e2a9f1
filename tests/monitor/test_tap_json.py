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
import signal
import subprocess
import sys
import time

from twisted.trial.unittest import SynchronousTestCase

from tests.monitor.support import temp_path

ROOT = os.path.dirname(os.path.dirname(os.path.dirname(os.path.abspath(__file__))))
CONFIG = """
[bgp]
local_as = 65000
router_id = "192.0.2.1"
listen_addresses = []
state_dir = "{state}"

[monitor]
log_format = "{fmt}"
"""
BOOT = "import sys; from twisted.scripts.twistd import run; sys.argv[0] = 'twistd'; run()"


class JsonLogTests(SynchronousTestCase):
    """The tap's JSON observer."""

    def _config(self, fmt: str) -> str:
        d = os.path.abspath(temp_path(self))
        os.makedirs(d)
        path = os.path.join(d, "bgpd.toml")
        with open(path, "w") as f:
            f.write(CONFIG.format(state=os.path.join(d, "state"), fmt=fmt))
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
        path = self._config("json")
        p = subprocess.Popen([sys.executable, "-c", BOOT, "-n", "--pidfile=", "bgpd", "-c", path],
                             stdout=subprocess.PIPE, stderr=subprocess.STDOUT, cwd=ROOT,
                             env={**os.environ, "PYTHONPATH": ROOT, "PYTHONUNBUFFERED": "1"})
        try:
            lines: list[str] = []
            deadline = time.monotonic() + 30
            os.set_blocking(p.stdout.fileno(), False)
            buf = b""
            while time.monotonic() < deadline and not any("reactor class" in x for x in lines):
                chunk = p.stdout.read() or b""
                buf += chunk
                *done, buf = buf.split(b"\n")
                lines += [x.decode() for x in done]
                if p.poll() is not None:
                    break
                time.sleep(0.1)
        finally:
            if p.poll() is None:
                os.kill(p.pid, signal.SIGTERM)
            try:
                p.wait(10)
            except subprocess.TimeoutExpired:
                os.kill(p.pid, signal.SIGKILL)
                p.wait(5)
            p.stdout.close()
        self.assertTrue(lines, "twistd printed nothing")
        objs = [json.loads(x) for x in lines]  # raises on any non-JSON line
        self.assertTrue(any("starting up" in o["text"] for o in objs), lines)
        self.assertTrue(all({"time", "level", "text", "namespace"} <= o.keys() for o in objs))
