"""Helpers for the monitor tests."""

from __future__ import annotations

import os
import shutil
import signal
import subprocess
import sys
import tempfile
import time
from typing import Any

ROOT = os.path.dirname(os.path.dirname(os.path.dirname(os.path.abspath(__file__))))
#: twisted.scripts.twistd has no __main__ guard; call its run() as the twistd script does
TWISTD_BOOT = "import sys; from twisted.scripts.twistd import run; sys.argv[0] = 'twistd'; run()"
#: a daemon with no sockets, for the log tests (``{state}``, then any extra tables)
QUIET_CONFIG = """
[bgp]
local_as = 65000
router_id = "192.0.2.1"
listen_addresses = []
state_dir = "{state}"
"""


def temp_path(test: Any, name: str = "f") -> str:
    """An absolute path in a fresh directory removed after ``test`` (trial's mktemp litters
    the working directory with relative paths when pytest runs the suite)."""
    d = tempfile.mkdtemp(prefix="bgpd-monitor-")
    test.addCleanup(shutil.rmtree, d, True)
    return f"{d}/{name}"


def twistd_lines(test: Any, extra_config: str = "", journal: bool = False) -> list[str]:
    """Run ``twistd -n --logfile=- bgpd`` (this interpreter) on a daemon with no sockets
    until it logs its reactor class, stop it by its PID, and return what it printed.

    ``journal``: its standard output is a file whose device:inode ``$JOURNAL_STREAM``
    names, as systemd does for a service logging to the journal.
    """
    d = os.path.abspath(temp_path(test))
    os.makedirs(d)
    conf = os.path.join(d, "bgpd.toml")
    with open(conf, "w") as f:
        f.write(QUIET_CONFIG.format(state=os.path.join(d, "state")) + extra_config)
    out_path = os.path.join(d, "out.log")
    env = {**os.environ, "PYTHONPATH": ROOT, "PYTHONUNBUFFERED": "1"}
    env.pop("JOURNAL_STREAM", None)
    with open(out_path, "w") as out:
        if journal:
            st = os.fstat(out.fileno())
            env["JOURNAL_STREAM"] = f"{st.st_dev}:{st.st_ino}"
        p = subprocess.Popen([sys.executable, "-c", TWISTD_BOOT, "-n", "--pidfile=",
                              "--logfile=-", "bgpd", "-c", conf], stdout=out,
                             stderr=subprocess.STDOUT, cwd=ROOT, env=env)
    try:
        deadline = time.monotonic() + 30
        while time.monotonic() < deadline and p.poll() is None:
            with open(out_path) as f:
                if "reactor class" in f.read():
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
    with open(out_path) as f:
        return f.read().splitlines()
