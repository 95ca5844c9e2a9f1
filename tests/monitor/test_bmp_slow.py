"""A station that stops reading, over real TCP on loopback: bounded, dropped, re-synced.

bgpd (in-process, the real reactor) monitors its Loc-RIB (RFC 9069) to a
station that pauses reading as soon as it is connected, so the kernel's
socket buffers and then Twisted's fill and the transport pauses bgpd's
producer.  Then 30,000 routes of our own enter the Loc-RIB: their Route
Monitoring messages queue up to the 64 KiB bound, the session is dropped,
and routing goes on (every route is in the Loc-RIB).  Once the station
reads again, its next connection is sent the whole table again.
"""

from __future__ import annotations

import socket

from twisted.internet import reactor
from twisted.internet.protocol import Factory, Protocol
from twisted.internet.task import deferLater
from twisted.trial.unittest import TestCase

from bgpd.config import parse_config
from bgpd.monitor import bmp
from bgpd.service import BgpdService
from bgpd.wire.attributes import PathAttributes
from bgpd.wire.message import decode_stream as bgp_decode
from bgpd.wire.nlri import make_prefix
from tests.deferreds import as_deferred

CONFIG = """
[bgp]
local_as = 65000
router_id = "192.0.2.254"
listen_addresses = []

[bmp]
[[bmp.collector]]
name = "stuck"
address = "127.0.0.1"
port = {port}
monitoring = ["loc-rib"]
buffer = 65536
retry_time = 1
statistics_interval = 0
"""
ROUTES = 30_000


class Station(Protocol):
    """Reads nothing while ``factory.stuck``; keeps what it reads otherwise."""

    def connectionMade(self) -> None:
        self.factory.connections.append(self)
        self.data = b""
        if self.factory.stuck:
            self.transport.pauseProducing()

    def dataReceived(self, data: bytes) -> None:
        self.data += data


class SlowStationTests(TestCase):
    timeout = 120

    def setUp(self):
        self.station = Factory.forProtocol(Station)
        self.station.connections = []
        self.station.stuck = True
        self.port = reactor.listenTCP(0, self.station, interface="127.0.0.1")
        # A small receive window (accepted sockets inherit it): the kernel
        # holds little of what the station does not read, whatever its defaults.
        self.port.socket.setsockopt(socket.SOL_SOCKET, socket.SO_RCVBUF, 4096)
        self.addCleanup(self.port.stopListening)
        self.svc = BgpdService(parse_config(CONFIG.format(port=self.port.getHost().port)), None,
                               reactor)
        self.svc.startService()
        self.addCleanup(self._stop)

    @as_deferred
    async def _stop(self):
        await self.svc.stopService()
        for c in self.station.connections:
            c.transport.abortConnection()

    async def wait(self, what, check, seconds=60.0):
        for _ in range(int(seconds / 0.05)):  # bounded
            if check():
                return
            await deferLater(reactor, 0.05, lambda: None)
        self.fail(f"timed out waiting for {what}: {self.svc.bmp.status()}")

    @as_deferred
    async def test_stuck_station(self):
        """Past the bound the session is dropped, routing goes on, and the next one re-syncs."""
        await self.wait("the station to connect", lambda: self.svc.bmp.status()[0]["state"] == "up")
        rib = self.svc.rib_service.rib
        for i in range(ROUTES):
            a = PathAttributes(origin=0, as_path=(), next_hop="192.0.2.254", med=i)
            rib.originate((1, 1), make_prefix((0x0A000000 + (i << 8)).to_bytes(4, "big"), 24), a)
        station = self.svc.bmp.stations["stuck"]
        await self.wait("the drop", lambda: station.drops >= 1)
        self.assertIn("dropped", station.last_error)
        await self.wait("the Loc-RIB to hold every route", lambda: rib.loc_rib_size((1, 1)) == ROUTES)
        # The station reads again: after the hold (retry_time 1 s) a new connection gets everything.
        self.station.stuck = False
        first = self.station.connections[0]
        first.transport.resumeProducing()
        await self.wait("a second connection", lambda: len(self.station.connections) >= 2)
        second = self.station.connections[1]

        def whole() -> bool:
            try:
                msgs = bmp.decode_stream(second.data)
            except bmp.BmpError:
                return False  # cut mid-message: more is coming
            eors = [m for m in msgs if isinstance(m, bmp.RouteMonitoring)
                    and m.update == bytes.fromhex("ff" * 16 + "001702" + "00000000")]
            return bool(eors)

        await self.wait("the second connection's full dump", whole)
        msgs = bmp.decode_stream(second.data)
        self.assertIsInstance(msgs[0], bmp.Initiation)
        prefixes = set()
        for m in msgs:
            if isinstance(m, bmp.RouteMonitoring) and m.peer.peer_type == bmp.PeerType.LOC_RIB:
                for u in bgp_decode(m.update):
                    prefixes.update(u.nlri)
        self.assertEqual(len(prefixes), ROUTES)
        self.assertEqual(station.drops, 1)
