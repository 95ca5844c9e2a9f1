"""[api] on SIGHUP (read_only applies, the rest is named for a restart) and [api] max_calls."""

from __future__ import annotations

import os
import shutil
import sys
import tempfile

import grpc
from twisted.internet import reactor, threads
from twisted.internet.task import deferLater
from twisted.logger import formatEvent, globalLogPublisher
from twisted.trial.unittest import SynchronousTestCase, TestCase

from bgpd.api._gen.bgpd.v1 import global_pb2, global_pb2_grpc, routes_pb2, routes_pb2_grpc
from bgpd.api.control import Control
from bgpd.api.server import ApiServer
from bgpd.config import DEFAULT_API_MAX_CALLS, ApiConfig, ConfigErrors, api_config_from_table, load_config
from bgpd.service import BgpdService
from tests.deferreds import as_deferred

FILE = """
[bgp]
local_as = 65000
router_id = "192.0.2.254"
listen_addresses = []
state_dir = "state"

[api]
listen = "127.0.0.1:0"
{extra}
"""

TIMEOUT = 10.0


class _Logged:
    def __init__(self, case: TestCase) -> None:
        self.lines: list[str] = []
        globalLogPublisher.addObserver(self)
        case.addCleanup(globalLogPublisher.removeObserver, self)

    def __call__(self, event: dict) -> None:
        self.lines.append(formatEvent(event))


class ApiReloadTests(TestCase):
    timeout = 60

    def setUp(self):
        self.dir = tempfile.mkdtemp(prefix="bgpd-apireload-")
        self.addCleanup(shutil.rmtree, self.dir)
        self.path = os.path.join(self.dir, "bgpd.toml")
        self.write("")
        self.svc = BgpdService(load_config(self.path), self.path, reactor)
        self.svc.startService()
        self.addCleanup(self.svc.stopService)
        self.channel = grpc.insecure_channel(self.svc.api.server.target)
        self.addCleanup(self.channel.close)
        self.routes = routes_pb2_grpc.RoutesStub(self.channel)

    def write(self, extra: str) -> None:
        with open(self.path, "w") as f:
            f.write(FILE.format(extra=extra))

    async def add_path(self):
        request = routes_pb2.AddPathsRequest(paths=[routes_pb2.OriginatePath(
            prefix="198.51.100.0/24", next_hop="192.0.2.254")])
        try:
            await threads.deferToThread(self.routes.AddPaths, iter([request]), timeout=TIMEOUT)
        except grpc.RpcError as err:
            return err.code()
        return grpc.StatusCode.OK

    @as_deferred
    async def test_sighup_applies_read_only(self):
        """read_only set in the file takes effect on SIGHUP, and clearing it again too."""
        self.assertEqual(await self.add_path(), grpc.StatusCode.OK)
        self.write("read_only = true")
        self.assertTrue(self.svc.reload())
        self.assertEqual(await self.add_path(), grpc.StatusCode.PERMISSION_DENIED)
        self.write("")
        self.assertTrue(self.svc.reload())
        self.assertEqual(await self.add_path(), grpc.StatusCode.OK)

    @as_deferred
    async def test_sighup_names_each_key_needing_a_restart(self):
        """A changed listen or max_calls is logged in one line naming each; the server stays as it was."""
        logged = _Logged(self)
        target = self.svc.api.server.target
        with open(self.path, "w") as f:
            f.write(FILE.format(extra="max_calls = 5").replace('"127.0.0.1:0"', '"127.0.0.1:1"'))
        self.assertTrue(self.svc.reload())
        lines = [line for line in logged.lines if "after a restart" in line]
        self.assertEqual(len(lines), 1, logged.lines)
        self.assertIn("api.listen, api.max_calls changed", lines[0])
        self.assertEqual(self.svc.api.server.target, target)
        self.assertEqual(await self.add_path(), grpc.StatusCode.OK)

    @as_deferred
    async def test_sighup_without_api_changes_says_nothing(self):
        """A reload that leaves [api] alone logs no restart line."""
        logged = _Logged(self)
        self.assertTrue(self.svc.reload())
        self.assertEqual([line for line in logged.lines if "after a restart" in line], [])


class MaxCallsTests(TestCase):
    timeout = 60

    def setUp(self):
        self.dir = tempfile.mkdtemp(prefix="bgpd-maxcalls-")
        self.addCleanup(shutil.rmtree, self.dir)
        self.path = os.path.join(self.dir, "bgpd.toml")
        with open(self.path, "w") as f:
            f.write(FILE.format(extra=""))
        self.svc = BgpdService(load_config(self.path), None, reactor)
        self.svc.startService()
        self.addCleanup(self.svc.stopService)
        self.server = ApiServer(reactor, Control(self.svc), ApiConfig(enabled=True, listen="127.0.0.1:0",
                                                                      max_calls=2))
        self.server.start()
        self.addCleanup(threads.deferToThread, self.server.stop)
        self.channel = grpc.insecure_channel(self.server.target)
        self.addCleanup(self.channel.close)

    @as_deferred
    async def test_call_past_the_limit_is_refused_with_the_reason(self):
        """With max_calls 2 and two watch streams open, a third call is RESOURCE_EXHAUSTED, not a hang."""
        routes = routes_pb2_grpc.RoutesStub(self.channel)
        glob = global_pb2_grpc.GlobalStub(self.channel)
        watches = []
        for _ in range(2):
            call = routes.WatchRoutes(routes_pb2.WatchRoutesRequest(dump=True), timeout=TIMEOUT * 3)
            self.addCleanup(call.cancel)
            first = await threads.deferToThread(next, iter(call))
            self.assertEqual(first.events[0].WhichOneof("event"), "end_of_dump")
            watches.append(call)
        try:
            await threads.deferToThread(glob.GetGlobal, global_pb2.GetGlobalRequest(), timeout=TIMEOUT)
        except grpc.RpcError as err:
            code, details = err.code(), err.details()
        else:
            self.fail("the third call was served")
        self.assertEqual(code, grpc.StatusCode.RESOURCE_EXHAUSTED)
        self.assertIn("api.max_calls", details)
        self.assertIn("at most 2", details)
        watches[0].cancel()
        for _ in range(100):  # bounded: the server sees the cancel on its own thread
            if self.server.limit.running < 2:
                break
            await deferLater(reactor, 0.05, lambda: None)
        g = await threads.deferToThread(glob.GetGlobal, global_pb2.GetGlobalRequest(), timeout=TIMEOUT)
        self.assertEqual(g.local_as, 65000)


class SwitchIntervalTests(TestCase):
    def test_api_server_leaves_the_switch_interval(self):
        """The API server does not touch the process's switch interval (the daemon sets it at start)."""
        before = sys.getswitchinterval()
        self.addCleanup(sys.setswitchinterval, before)
        sys.setswitchinterval(0.005)
        server = ApiServer(reactor, None, ApiConfig(enabled=True, listen="127.0.0.1:0"))
        server.start()
        self.assertEqual(sys.getswitchinterval(), 0.005)
        return threads.deferToThread(server.stop).addCallback(
            lambda _: self.assertEqual(sys.getswitchinterval(), 0.005))


class MaxCallsConfigTests(SynchronousTestCase):
    def test_max_calls_is_validated(self):
        """[api] max_calls defaults to 32 and must be 1 to 1024; an error names api.max_calls."""
        self.assertEqual(api_config_from_table({}).max_calls, DEFAULT_API_MAX_CALLS)
        self.assertEqual(api_config_from_table({"max_calls": 4}).max_calls, 4)
        for bad in (0, 5000, "8", True):
            with self.assertRaises(ConfigErrors) as cm:
                api_config_from_table({"max_calls": bad})
            self.assertEqual(cm.exception.key, "api.max_calls")
