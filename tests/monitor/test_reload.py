"""SIGHUP and the monitor: history size, [mrt] schedule and updates log follow the new file."""

from __future__ import annotations

import os

from twisted.internet import defer
from twisted.internet.testing import MemoryReactorClock
from twisted.trial.unittest import SynchronousTestCase

from bgpd.config import parse_config
from bgpd.service import BgpdService
from tests.monitor.support import temp_path

BASE = """
[bgp]
local_as = 65000
router_id = "192.0.2.1"
listen_addresses = []

[[neighbors]]
address = "192.0.2.2"
remote_as = 65002
"""


class ReloadTests(SynchronousTestCase):
    """BgpdService.reload() with a changed file."""

    def setUp(self):
        self.path = temp_path(self, "bgpd.toml")
        self.mrt_dir = temp_path(self, "mrt")
        self.reactor = MemoryReactorClock()

    def write(self, text: str) -> None:
        with open(self.path, "w") as f:
            f.write(text)

    def test_sections_follow_sighup(self):
        """history_size resizes; adding [mrt] starts the schedule and the log; removing it stops them."""
        self.write(BASE)
        svc = BgpdService(parse_config(BASE), self.path, self.reactor)
        svc.monitor.defer_to_thread = defer.maybeDeferred
        svc.startService()
        self.addCleanup(svc.stopService)
        self.assertIsNone(svc.monitor.scheduler)
        mrt = (f'[mrt]\ndirectory = "{self.mrt_dir}"\ninterval = 600\nupdates = true\n')
        self.write(BASE + "[monitor]\nhistory_size = 3\n" + mrt)
        self.assertTrue(svc.reload())
        self.assertEqual(svc.monitor.history.size, 3)
        self.assertIsNotNone(svc.monitor.scheduler)
        self.assertIsNotNone(svc.monitor.updates)
        self.assertIs(svc.sessions.message_tap, svc.monitor.updates)
        svc.sessions.peers["192.0.2.2"].stop("x")  # a state change goes to the log
        self.write(BASE)
        self.assertTrue(svc.reload())
        self.assertIsNone(svc.monitor.scheduler)
        self.assertIsNone(svc.monitor.updates)
        self.assertIsNone(svc.sessions.message_tap)
        self.assertEqual(svc.monitor.history.size, 64)
        # The log was closed: its file is complete, not .tmp.
        names = os.listdir(self.mrt_dir)
        self.assertEqual(len(names), 1, names)
        self.assertFalse(names[0].endswith(".tmp"))

    def test_removed_peer_forgotten(self):
        """A neighbor removed from the file takes its history with it (bounded memory)."""
        self.write(BASE)
        svc = BgpdService(parse_config(BASE), self.path, self.reactor)
        svc.startService()
        self.addCleanup(svc.stopService)
        self.assertTrue(svc.monitor.history.events("192.0.2.2"))
        self.write(BASE.split("[[neighbors]]")[0])
        self.assertTrue(svc.reload())
        self.assertEqual(svc.monitor.history.events("192.0.2.2"), ())
