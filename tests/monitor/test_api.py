"""The monitor's API (proto bgpd.v1.Monitor) and bgpctl: history and MRT dumps.

Control methods without gRPC, then bgpctl against a real in-process API
server (real reactor, real grpc), as tests/test_cli.py does.
"""

from __future__ import annotations

import io
import json
import os
import tempfile

from twisted.internet import defer, reactor, threads
from twisted.internet.testing import MemoryReactorClock, StringTransport
from twisted.trial.unittest import SynchronousTestCase, TestCase

from bgpd import cli
from bgpd.api.control import Control, FailedPrecondition, InvalidArgument, NotFound, Unavailable
from bgpd.config import parse_config
from bgpd.service import BgpdService
from bgpd.session.protocol import BGPProtocol
from tests.deferreds import as_deferred
from tests.monitor import mrtdecode
from tests.monitor.support import temp_path

CONFIG = """
[bgp]
local_as = 65000
router_id = "192.0.2.254"
listen_addresses = ["127.0.0.1"]
listen_port = 0

[[neighbors]]
address = "192.0.2.1"
remote_as = 65001
description = "transit"
import_policy = ["accept-all"]
export_policy = ["accept-all"]

[[originate]]
prefix = "198.51.100.0/24"
next_hop = "192.0.2.254"

[[originate]]
prefix = "2001:db8:100::/48"
next_hop = "2001:db8::254"
"""


class ControlMonitorTests(SynchronousTestCase):
    """peer_history and dump_rib of the Control object."""

    def setUp(self):
        self.reactor = MemoryReactorClock()
        self.svc = BgpdService(parse_config(CONFIG), None, self.reactor)
        self.svc.startService()
        self.control = Control(self.svc)

    def tearDown(self):
        self.svc.stopService()
        self.reactor.advance(3)

    def test_history_of_a_stopped_peer(self):
        """The history holds the stop with its RFC 9003 text; unknown peers are NotFound."""
        peer = self.svc.sessions.peers["192.0.2.1"]
        proto = BGPProtocol(peer, outbound=True)
        peer.connector = object()
        proto.makeConnection(StringTransport())
        self.control.disable_peer("192.0.2.1", "planned work")
        h = self.control.peer_history("192.0.2.1")
        self.assertEqual((h.address, h.description, h.flaps), ("192.0.2.1", "transit", 0))
        last = h.events[-1]
        self.assertEqual((last.new, last.kind, last.code, last.subcode, last.shutdown_message),
                         ("Idle", "administrative", 6, 2, "planned work"))
        with self.assertRaises(NotFound):
            self.control.peer_history("192.0.2.9")

    def test_dump_arguments(self):
        """Relative files, unknown tables, unknown and down peers are refused by field."""
        with self.assertRaises(InvalidArgument) as cm:
            self.control.dump_rib("rib.mrt")
        self.assertEqual(cm.exception.field, "file")
        with self.assertRaises(InvalidArgument) as cm:
            self.control.dump_rib("/tmp/x", "rib-out")
        self.assertEqual(cm.exception.field, "table")
        with self.assertRaises(NotFound):
            self.control.dump_rib("/tmp/x", "adj-rib-in", "192.0.2.9")
        with self.assertRaises(FailedPrecondition):
            self.control.dump_rib("/tmp/x", "adj-rib-in", "192.0.2.1")

    def test_unwritable_file_is_unavailable(self):
        """A file in a directory that does not exist fails the dump as Unavailable."""
        self.svc.monitor.defer_to_thread = defer.maybeDeferred
        failures = []
        path = os.path.join(os.path.abspath(temp_path(self)), "no", "x.mrt")
        self.control.dump_rib(path).addErrback(failures.append)
        self.reactor.advance(0)
        self.assertEqual(len(failures), 1)
        failures[0].trap(Unavailable)


class BgpctlMonitorTests(TestCase):
    """bgpctl show neighbor / show history / dump rib over a real API."""

    timeout = 60

    def setUp(self):
        self.dir = tempfile.mkdtemp(prefix="bgpctl-monitor-")
        self.socket = os.path.join(self.dir, "api.sock")
        text = CONFIG + f'\n[api]\nlisten = "unix:{self.socket}"\n'
        self.svc = BgpdService(parse_config(text), None, reactor)
        self.svc.startService()
        self.addCleanup(self._cleanup)

    @as_deferred
    async def _cleanup(self):
        await self.svc.stopService()
        for name in os.listdir(self.dir):
            os.unlink(os.path.join(self.dir, name))
        os.rmdir(self.dir)

    async def run_cli(self, *argv):
        out, err = io.StringIO(), io.StringIO()
        code = await threads.deferToThread(cli.main, ["--socket", self.socket, *argv], out, err)
        return code, out.getvalue(), err.getvalue()

    @as_deferred
    async def test_show_neighbor_prints_history(self):
        """show neighbor ends with the session history; show history --json has every event."""
        code, out, err = await self.run_cli("show", "neighbor", "192.0.2.1")
        self.assertEqual((code, err), (0, ""))
        self.assertIn("Session history, 0 flaps:", out)
        self.assertIn("Idle -> Connect: ManualStart", out)
        code, out, _ = await self.run_cli("--json", "show", "history", "192.0.2.1")
        doc = json.loads(out)
        self.assertEqual(doc["address"], "192.0.2.1")
        self.assertEqual(doc["description"], "transit")
        self.assertEqual(doc["events"][0]["old_state"], "Idle")
        self.assertEqual(doc["events"][0]["new_state"], "Connect")
        code, out, err = await self.run_cli("show", "history", "192.0.2.9")
        self.assertEqual((code, err),
                         (cli.EXIT_REFUSED, "bgpctl: not found: address: no neighbor 192.0.2.9\n"))

    @as_deferred
    async def test_dump_rib(self):
        """dump rib FILE writes the Loc-RIB; the file reads back with both originated prefixes."""
        path = os.path.join(self.dir, "rib.mrt")
        code, out, err = await self.run_cli("dump", "rib", path)
        self.assertEqual((code, err), (0, ""))
        self.assertIn(f"{path}: loc-rib, 2 prefixes, 1 peer in the index", out)
        index, ribs = mrtdecode.read(open(path, "rb").read())
        self.assertEqual(sorted(r["prefix"] for r in ribs), ["198.51.100.0/24", "2001:db8:100::/48"])
        self.assertEqual(index["peers"][0], ("192.0.2.254", "0.0.0.0", 65000))
        code, out, err = await self.run_cli("--json", "dump", "rib", path + ".gz", "--compression", "gzip")
        self.assertEqual(json.loads(out)["prefixes"], "2")
        code, out, err = await self.run_cli("dump", "rib", path, "--peer", "192.0.2.1")
        self.assertEqual(code, cli.EXIT_REFUSED)
        self.assertIn("failed precondition: peer: neighbor 192.0.2.1 is not Established", err)
