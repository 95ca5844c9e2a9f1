"""The whole daemon in one process: sessions -> RIB -> sessions, on a fake clock.

Two peers connect to a BgpdService (their TCP connections are
StringTransports, time a MemoryReactorClock); routes one announces reach the
other with the eBGP rewrites, withdrawals follow, max-prefix ends the session
with the RFC 4486 NOTIFICATION, and a peer going down withdraws its routes.
"""

from __future__ import annotations

from twisted.internet.testing import MemoryReactorClock, StringTransport
from twisted.trial.unittest import SynchronousTestCase

from bgpd.config import parse_config
from bgpd.service import BgpdService
from bgpd.session.fsm import State
from bgpd.wire.attributes import PathAttributes
from bgpd.wire.capabilities import Multiprotocol, RouteRefresh
from bgpd.wire.message import KEEPALIVE, Framer, decode_message, encode_message
from bgpd.wire.nlri import prefix_from_str, prefix_to_str
from bgpd.wire.notification import Notification
from bgpd.wire.open import Open
from bgpd.wire.update import Update, pack_reach, pack_withdraw

CONFIG = """
[bgp]
local_as = 65000
router_id = "192.0.2.1"
listen_addresses = []
mrai_ebgp = 0

[[neighbors]]
address = "192.0.2.2"
remote_as = 65002
local_address = "192.0.2.1"
import_policy = ["accept-all"]
export_policy = ["accept-all"]
max_prefix = { "ipv4-unicast" = { limit = 3, restart_time = 0 } }

[[neighbors]]
address = "192.0.2.3"
remote_as = 65003
local_address = "192.0.2.1"
import_policy = ["accept-all"]
export_policy = ["accept-all"]
"""


def pfx(text: str) -> bytes:
    return prefix_from_str(text)[1]


class Peer:
    """The remote end of one session: feeds bytes in, decodes what bgpd sent."""

    def __init__(self, test: PipelineTests, address: str, asn: int) -> None:
        self.svc = test.svc
        self.reactor = test.reactor
        self.factory = test.svc.sessions.peers[address]
        host, port, factory = [c for c in self.reactor.tcpClients if c[0] == address][-1][:3]
        self.proto = factory.buildProtocol(None)
        self.transport = StringTransport(hostAddress=_Addr("192.0.2.1"))
        self.proto.makeConnection(self.transport)
        self.asn = asn
        self.address = address
        self.framer = Framer(65535)
        self.seen: list = []

    def send(self, *messages: object) -> None:
        self.proto.dataReceived(b"".join(
            m if isinstance(m, bytes) else encode_message(m) for m in messages))

    def establish(self) -> None:
        self.send(Open.make(self.asn, 90, self.address, (Multiprotocol(1, 1), RouteRefresh())),
                  KEEPALIVE)
        assert self.factory.state is State.ESTABLISHED, self.factory.state

    def received(self) -> list:
        data = self.transport.value()
        self.transport.clear()
        for t, body in self.framer.feed(data):
            self.seen.append(decode_message(t, body))
        return self.seen

    def routes(self) -> dict:
        view: dict = {}
        for m in self.received():
            if isinstance(m, Update):
                for p in m.withdrawn:
                    view.pop(prefix_to_str(p, 1), None)
                for p in m.nlri:
                    view[prefix_to_str(p, 1)] = m.attributes
        return view

    def notifications(self) -> list[Notification]:
        return [m for m in self.received() if isinstance(m, Notification)]


class _Addr:
    def __init__(self, host: str) -> None:
        self.host = host
        self.port = 179


class PipelineTests(SynchronousTestCase):
    def setUp(self):
        self.reactor = MemoryReactorClock()
        self.svc = BgpdService(parse_config(CONFIG), None, self.reactor)
        self.svc.startService()
        self.a = Peer(self, "192.0.2.2", 65002)
        self.b = Peer(self, "192.0.2.3", 65003)
        self.a.establish()
        self.b.establish()

    def tearDown(self):
        d = self.svc.stopService()
        self.reactor.advance(3)
        self.successResultOf(d)

    def run_for(self, seconds: float) -> None:
        for _ in range(int(seconds * 10)):
            self.reactor.advance(0.1)

    def announce(self, peer: Peer, prefixes: list[str], **attrs: object) -> None:
        a = PathAttributes(as_path=((2, (peer.asn,)),), next_hop=peer.address, **attrs)
        peer.send(*pack_reach(1, 1, a, [pfx(p) for p in prefixes]))

    def test_routes_flow_with_ebgp_rewrites(self):
        """A's route reaches B with our AS prepended, our next hop, no MED."""
        self.announce(self.a, ["198.51.100.0/26"], med=50, communities=(65002 << 16 | 7,))
        self.run_for(1)
        routes = self.b.routes()
        self.assertEqual(list(routes), ["198.51.100.0/26"])
        got = routes["198.51.100.0/26"]
        self.assertEqual(got.as_path, ((2, (65000, 65002)),))
        self.assertEqual(got.next_hop, "192.0.2.1")
        self.assertIsNone(got.med)
        self.assertEqual(got.communities, (65002 << 16 | 7,))
        self.assertNotIn("198.51.100.0/26", self.a.routes())  # never back to its source

    def test_withdrawal_follows(self):
        """A withdrawal from A is sent on to B."""
        self.announce(self.a, ["198.51.100.0/26", "198.51.100.64/26"])
        self.run_for(1)
        self.a.send(*pack_withdraw(1, 1, [pfx("198.51.100.0/26")]))
        self.run_for(1)
        self.assertEqual(list(self.b.routes()), ["198.51.100.64/26"])

    def test_max_prefix_ends_the_session(self):
        """Past its limit of 3, A gets Cease 6/1 with AFI, SAFI and the limit; B loses A's routes."""
        self.announce(self.a, ["198.51.100.0/28", "198.51.100.16/28", "198.51.100.32/28"])
        self.run_for(1)
        self.assertEqual(len(self.b.routes()), 3)
        self.assertEqual(self.a.factory.state, State.ESTABLISHED)
        self.announce(self.a, ["198.51.100.48/28"])
        self.run_for(1)
        notes = self.a.notifications()
        self.assertEqual([(n.code, n.subcode, n.data) for n in notes],
                         [(6, 1, b"\x00\x01\x01\x00\x00\x00\x03")])
        self.assertEqual(self.a.factory.state, State.IDLE)
        self.assertFalse(self.a.factory.enabled)  # restart_time 0: stays down
        self.assertEqual(self.b.routes(), {})

    def test_peer_down_withdraws_everywhere(self):
        """When A's connection drops, B is told to withdraw A's routes."""
        self.announce(self.a, ["198.51.100.0/26"])
        self.run_for(1)
        self.assertEqual(len(self.b.routes()), 1)
        self.a.proto.connectionLost(None)
        self.run_for(1)
        self.assertEqual(self.b.routes(), {})
