"""GetBmp and ``bgpctl show bmp``: each collector's state and counters (real reactor, grpc, station)."""

from __future__ import annotations

import io
import json
import os
import tempfile

from twisted.internet import reactor, threads
from twisted.internet.protocol import Factory, Protocol
from twisted.internet.task import deferLater
from twisted.trial.unittest import TestCase

from bgpd import cli
from bgpd.api.control import Control
from bgpd.config import parse_config
from bgpd.monitor import bmp
from bgpd.service import BgpdService
from tests.deferreds import as_deferred

CONFIG = """
[bgp]
local_as = 65000
router_id = "192.0.2.254"
listen_addresses = []

[api]
listen = "unix:{socket}"

[bmp]
sys_name = "r1"
[[bmp.collector]]
name = "station"
address = "127.0.0.1"
port = {port}
monitoring = ["post-policy", "loc-rib"]
"""


class Station(Protocol):
    """A BMP station that keeps what it reads."""

    def connectionMade(self) -> None:
        self.factory.data = b""

    def dataReceived(self, data: bytes) -> None:
        self.factory.data += data


class BmpApiTests(TestCase):
    timeout = 60

    def setUp(self):
        self.dir = tempfile.mkdtemp(prefix="bgpctl-bmp-")
        self.socket = os.path.join(self.dir, "api.sock")
        self.station = Factory.forProtocol(Station)
        self.station.data = b""
        self.port = reactor.listenTCP(0, self.station, interface="127.0.0.1")
        text = CONFIG.format(socket=self.socket, port=self.port.getHost().port)
        self.svc = BgpdService(parse_config(text), None, reactor)
        self.svc.startService()
        self.addCleanup(self._cleanup)

    @as_deferred
    async def _cleanup(self):
        await self.svc.stopService()
        await self.port.stopListening()
        for name in os.listdir(self.dir):
            os.unlink(os.path.join(self.dir, name))
        os.rmdir(self.dir)

    async def run_cli(self, *argv):
        out, err = io.StringIO(), io.StringIO()
        code = await threads.deferToThread(cli.main, ["--socket", self.socket, *argv], out, err)
        return code, out.getvalue(), err.getvalue()

    async def wait_up(self):
        control = Control(self.svc)
        for _ in range(100):  # bounded: the connection is made on this reactor
            (s,) = control.bmp_status()
            if s.state == "up":
                return s
            await deferLater(reactor, 0.05, lambda: None)
        self.fail(f"the station never came up: {control.bmp_status()}")

    @as_deferred
    async def test_control_and_station(self):
        """The control object reports the station up with what it was sent; the station read it."""
        s = await self.wait_up()
        self.assertEqual((s.name, s.address, s.monitoring), ("station", "127.0.0.1",
                                                             ("post-policy", "loc-rib")))
        msgs = bmp.decode_stream(self.station.data)
        self.assertIsInstance(msgs[0], bmp.Initiation)
        self.assertEqual(s.messages, len(msgs))
        self.assertEqual(s.octets, len(self.station.data))
        self.assertEqual((s.drops, s.connects, s.buffered), (0, 1, 0))

    @as_deferred
    async def test_bgpctl_show_bmp(self):
        """show bmp prints one line per collector; --json is the BmpInfo message."""
        await self.wait_up()
        code, out, err = await self.run_cli("show", "bmp")
        self.assertEqual((code, err), (0, ""))
        line = [x for x in out.splitlines() if x.startswith("station")][0]
        self.assertEqual(line.split()[2], "up")
        self.assertIn("post-policy,loc-rib", line)
        code, out, _ = await self.run_cli("--json", "show", "bmp")
        doc = json.loads(out)
        self.assertEqual(code, 0)
        self.assertTrue(doc["enabled"])
        self.assertEqual(doc["collectors"][0]["name"], "station")
        self.assertEqual(doc["collectors"][0]["state"], "up")


class BmpOffTests(TestCase):
    timeout = 60

    @as_deferred
    async def test_off(self):
        """Without [bmp] show bmp says it is off."""
        d = tempfile.mkdtemp(prefix="bgpctl-bmp-")
        sock = os.path.join(d, "api.sock")
        text = CONFIG.format(socket=sock, port=1).split("[bmp]")[0]
        svc = BgpdService(parse_config(text), None, reactor)
        svc.startService()
        try:
            out, err = io.StringIO(), io.StringIO()
            code = await threads.deferToThread(cli.main, ["--socket", sock, "show", "bmp"], out, err)
            self.assertEqual((code, out.getvalue()), (0, "bmp: off (no [[bmp.collector]] in the config)\n"))
            self.assertEqual(Control(svc).bmp_status(), ())
        finally:
            await svc.stopService()
            for name in os.listdir(d):
                os.unlink(os.path.join(d, name))
            os.rmdir(d)
