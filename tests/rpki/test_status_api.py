"""GetRpkiStatus and ``bgpctl rpki status`` against a real daemon, API server and test cache.

The service tree is built from a config with ``[rpki]`` naming two caches:
a test cache (:mod:`bgpd.rpki.testing`) listening on a loopback port, and
a more preferred one on a port where nothing listens.  The daemon must
fall over to the test cache and the API must say so.
"""

from __future__ import annotations

import io
import json
import socket

import grpc
from twisted.internet import reactor, threads
from twisted.internet.task import deferLater
from twisted.trial.unittest import TestCase

from bgpd import cli
from bgpd.api._gen.bgpd.v1 import rpki_pb2, rpki_pb2_grpc
from bgpd.config import parse_config
from bgpd.rpki.testing import CacheServer
from bgpd.service import BgpdService
from tests.deferreds import as_deferred

from .helpers import vrp

CONFIG = """
[bgp]
local_as = 65000
router_id = "192.0.2.254"
listen_addresses = ["127.0.0.1"]
listen_port = 0

[api]
listen = "127.0.0.1:0"

[rpki]
[[rpki.cache]]
name = "gone"
address = "127.0.0.1"
port = {dead}
preference = 1

[[rpki.cache]]
name = "local"
address = "127.0.0.1"
port = {port}
preference = 2
"""

TIMEOUT = 10.0


def _dead_port() -> int:
    # A port that was free a moment ago: connecting to it is refused.
    s = socket.socket()
    s.bind(("127.0.0.1", 0))
    port = s.getsockname()[1]
    s.close()
    return port


class RpkiStatusApiTests(TestCase):
    """The Rpki service's GetRpkiStatus over a real grpc server."""

    timeout = 60

    def setUp(self) -> None:
        self.cache = CacheServer([vrp("192.0.2.0/24"), vrp("198.51.100.0/24"), vrp("2001:db8::/32", 48)],
                                 session_id=77, serial=5)
        self.port = reactor.listenTCP(0, self.cache, interface="127.0.0.1")
        self.addCleanup(self.port.stopListening)
        text = CONFIG.format(dead=_dead_port(), port=self.port.getHost().port)
        self.svc = BgpdService(parse_config(text), None, reactor)
        self.svc.startService()
        self.addCleanup(self.svc.stopService)
        self.target = self.svc.api.server.target
        self.channel = grpc.insecure_channel(self.target)
        self.addCleanup(self.channel.close)
        self.stub = rpki_pb2_grpc.RpkiStub(self.channel)

    async def status(self) -> rpki_pb2.RpkiStatus:
        return await threads.deferToThread(self.stub.GetRpkiStatus, rpki_pb2.GetRpkiStatusRequest(),
                                           timeout=TIMEOUT)

    async def wait_active(self) -> rpki_pb2.RpkiStatus:
        for _ in range(200):  # 20 s at most
            st = await self.status()
            if st.active_cache == "local":
                return st
            await deferLater(reactor, 0.1, lambda: None)
        self.fail(f"no cache in use: {st}")

    @as_deferred
    async def test_status_after_failover(self) -> None:
        """The preferred cache is down, the second in use: serial, session, counts per family."""
        st = await self.wait_active()
        self.assertTrue(st.enabled)
        gone, local = st.caches
        self.assertEqual((gone.name, gone.preferred, gone.active), ("gone", True, False))
        self.assertIn(gone.state, (rpki_pb2.RPKI_CACHE_DOWN, rpki_pb2.RPKI_CACHE_CONNECTING))
        self.assertIn("cannot connect", gone.last_error)
        self.assertEqual((local.state, local.active, local.protocol_version), (rpki_pb2.RPKI_CACHE_CONNECTED,
                                                                               True, 1))
        self.assertEqual((local.session_id, local.serial, local.ipv4_vrps, local.ipv6_vrps), (77, 5, 2, 1))
        self.assertEqual((local.refresh, local.retry, local.expire), (3600, 600, 7200))
        self.assertGreater(local.last_update, 0)
        # The daemon's tables got the data: the VRP table validates with it.
        table = self.svc.rib_service.validation.table
        self.assertEqual(table.counts(), {1: 2, 2: 1})

    @as_deferred
    async def test_bgpctl(self) -> None:
        """'bgpctl rpki status' prints one row per cache; --json is the API's answer."""
        await self.wait_active()

        def run(*argv: str) -> str:
            out, err = io.StringIO(), io.StringIO()
            code = cli.main(["--target", self.target, *argv], out, err)
            assert code == 0, err.getvalue()
            return out.getvalue()

        text = await threads.deferToThread(run, "rpki", "status")
        lines = text.splitlines()
        self.assertEqual(lines[0], "rpki: using cache local")
        self.assertTrue(lines[1].startswith("Cache"))
        row = lines[3].split()
        self.assertEqual(row[:7], ["*local", f"127.0.0.1:{self.port.getHost().port}", "2", "connected",
                                   "1", "77", "5"])
        self.assertEqual(row[-4:], ["2", "1", "0", "3600/600/7200"])
        doc = json.loads(await threads.deferToThread(run, "rpki", "status", "--json"))
        self.assertEqual(doc["active_cache"], "local")
        self.assertEqual(doc["caches"][1]["ipv4_vrps"], "2")


class RpkiOffTests(TestCase):
    """Without [rpki] the status says so."""

    def test_off(self) -> None:
        """rpki_status() of a daemon with no [rpki] is enabled=False; bgpctl prints 'off'."""
        from bgpd.api.control import Control

        svc = BgpdService(parse_config('[bgp]\nlocal_as = 65000\nrouter_id = "192.0.2.254"\n'), None, reactor)
        self.assertFalse(Control(svc).rpki_status().enabled)
        out = io.StringIO()
        cli._rpki_status(rpki_pb2.RpkiStatus(enabled=False), out, 0.0)
        self.assertIn("off", out.getvalue())
