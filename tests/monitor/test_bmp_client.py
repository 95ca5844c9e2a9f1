"""Tests for bgpd.monitor.bmp_client: the stream a BMP station gets (RFC 7854 5, 8671, 9069).

A real Rib on a task.Clock, peers as the session tap reports them, and each
station's connection on a StringTransport made by a fake endpoint, so that
every byte sent is decoded back with bgpd.monitor.bmp.
"""

from __future__ import annotations

from typing import Any

from twisted.internet import defer
from twisted.internet.task import Clock
from twisted.internet.testing import StringTransport
from twisted.trial.unittest import SynchronousTestCase

from bgpd.config import BmpCollectorConfig, BmpConfig
from bgpd.monitor import bmp
from bgpd.monitor import bmp_client as client_module
from bgpd.monitor.bmp import (
    FLAG_L,
    FLAG_O,
    Initiation,
    PeerDownMsg,
    PeerType,
    PeerUpMsg,
    RouteMonitoring,
    StatisticsReport,
    Termination,
)
from bgpd.monitor.bmp_client import BmpHost, BmpService
from bgpd.rib import Rib, RibOptions
from bgpd.rib.testing import FakeSink, announce, make_peer, pfx, withdraw
from bgpd.session.negotiation import SessionInfo
from bgpd.session.tap import IN, OUT, DownReason, PeerDown, PeerUp
from bgpd.wire.attributes import PathAttributes
from bgpd.wire.message import decode_stream as bgp_decode
from bgpd.wire.message import encode_message
from bgpd.wire.negotiated import Negotiated
from bgpd.wire.open import Open
from bgpd.wire.update import pack_reach
from tests.rib_spy import RibSpy

IPV4 = (1, 1)
PEER_ADDR = "192.0.2.2"
INFO = make_peer(PEER_ADDR, 65002, local_address="192.0.2.1")


class FakeConfig:
    def __init__(self, address: str) -> None:
        self.address = address


class FakePeer:
    """What the BMP side reads of a PeerFactory: its configured address."""

    def __init__(self, address: str = PEER_ADDR) -> None:
        self.config = FakeConfig(address)


def peer_up(ts: float = 100.0) -> PeerUp:
    info = SessionInfo(negotiated=Negotiated(peer_as=65002), hold_time=90, keepalive_time=30.0,
                       peer_asn=65002, peer_router_id="192.0.2.2", families=(IPV4,))
    return PeerUp(timestamp=ts, local_address="192.0.2.1", local_port=179,
                  remote_address=PEER_ADDR, remote_port=40000,
                  sent_open=encode_message(Open.make(65000, 90, "192.0.2.1")),
                  received_open=encode_message(Open.make(65002, 90, "192.0.2.2")), info=info)


class FakeHost:
    """A BmpHost over a real Rib, with the peers the test says are up."""

    router_id = "192.0.2.1"
    local_as = 65000

    def __init__(self, clock: Clock) -> None:
        self.rib = Rib("192.0.2.1", 65000, options=RibOptions(mrai_ebgp=0.0),
                       call_later=clock.callLater)
        self.up: dict[Any, PeerUp] = {}
        self.infos: dict[Any, Any] = {}

    def established(self) -> list[tuple[Any, PeerUp]]:
        return list(self.up.items())

    def peer_info(self, peer: Any) -> Any:
        return self.infos.get(peer)


class FakeEndpoint:
    """Connects at once to a StringTransport (or fails, when told)."""

    def __init__(self) -> None:
        self.protocols: list[Any] = []
        self.fail = False

    def __call__(self, reactor: Any, config: BmpCollectorConfig) -> FakeEndpoint:
        return self

    def connect(self, factory: Any) -> defer.Deferred:
        if self.fail:
            return defer.fail(ConnectionRefusedError("refused"))
        proto = factory.buildProtocol(None)
        proto.makeConnection(StringTransport())
        self.protocols.append(proto)
        return defer.succeed(proto)

    @property
    def transport(self) -> StringTransport:
        return self.protocols[-1].transport


ATTRS = PathAttributes(origin=0, as_path=((2, (65002,)),), next_hop=PEER_ADDR)
PREFIXES = [pfx(f"10.{i}.0.0/16") for i in range(5)]


class Base(SynchronousTestCase):
    views: tuple[str, ...] = ("pre-policy", "post-policy")
    buffer = 65536

    def setUp(self) -> None:
        self.clock = Clock()
        self.host = FakeHost(self.clock)
        self.endpoint = FakeEndpoint()
        self.attached: list[tuple] = []
        self.peer = FakePeer()
        self.cfg = BmpConfig(collectors=(BmpCollectorConfig(
            "c1", "192.0.2.50", 1790, monitoring=self.views, statistics_interval=10.0,
            buffer=self.buffer),), sys_name="r1", sys_descr="test")
        self.service = BmpService(self.cfg, self.host, self.clock, self.attach, self.endpoint)
        self.monitor = self.service.monitor

    def attach(self, monitor: Any, post: bool, loc: bool) -> None:
        self.attached.append((monitor, post, loc))
        self.host.rib.set_adj_in_tap(monitor if post else None)
        if loc and monitor is not None:
            self.host.rib.subscribe(monitor.loc_rib_changed)

    def bring_up(self, soft: bool = True) -> FakeSink:
        """The peer's session comes up: the tap's session_up, then the RIB's add_peer."""
        up = peer_up()
        self.host.up[self.peer] = up
        self.host.infos[self.peer] = INFO
        self.monitor.session_up(self.peer, up)
        sink = FakeSink()
        self.host.rib.add_peer(INFO, [IPV4], Negotiated(peer_as=65002), sink,
                               soft_reconfiguration=soft)
        return sink

    def receive(self, update_bytes: bytes) -> None:
        """An UPDATE as the session hands it on: the tap first, then the RIB."""
        self.monitor.message(self.peer, IN, self.clock.seconds(), update_bytes)
        (update,) = bgp_decode(update_bytes)
        self.host.rib.receive(INFO, update)
        self.settle()

    def settle(self) -> None:
        for _ in range(10_000):
            if not [c for c in self.clock.getDelayedCalls() if c.getTime() <= self.clock.seconds()]:
                return
            self.clock.advance(0)
        self.fail("never settled")

    def start(self) -> None:
        self.service.startService()
        self.settle()

    def messages(self) -> list:
        """Every BMP message written on the current connection so far, decoded."""
        return bmp.decode_stream(self.endpoint.transport.value())

    def routes(self, msgs: list, flags: int | None = None, peer_type: int = 0) -> list[bytes]:
        """The prefixes announced in the Route Monitoring messages of a view."""
        out = []
        for m in msgs:
            if not isinstance(m, RouteMonitoring) or m.peer.peer_type != peer_type:
                continue
            if flags is not None and (m.peer.flags & (FLAG_L | FLAG_O)) != flags:
                continue
            for u in bgp_decode(m.update):
                out.extend(u.nlri)
        return out


class InitialDumpTests(Base):
    """What a station gets on connecting (RFC 7854 section 5)."""

    def test_interface(self):
        """The fake host provides the declared interface."""
        self.assertIsInstance(self.host, BmpHost)

    def test_initiation_first(self):
        """Initiation with sysName and sysDescr comes first, even with no peer."""
        self.start()
        msgs = self.messages()
        self.assertIsInstance(msgs[0], Initiation)
        self.assertEqual(msgs[0].text(bmp.INFO_SYS_NAME), "r1")
        self.assertEqual(msgs[0].text(bmp.INFO_SYS_DESCR), "test")

    def test_peer_up_and_tables(self):
        """Peer Up, then the pre- and post-policy tables and an End-of-RIB each."""
        self.bring_up()
        self.host.rib.receive(INFO, announce(ATTRS, PREFIXES))
        self.settle()
        self.start()
        msgs = self.messages()
        self.assertIsInstance(msgs[1], PeerUpMsg)
        up = msgs[1]
        self.assertEqual((up.peer.address, up.peer.asn, up.peer.bgp_id), (PEER_ADDR, 65002, "192.0.2.2"))
        self.assertEqual(up.received_open, encode_message(Open.make(65002, 90, "192.0.2.2")))
        self.assertEqual((up.local_address, up.local_port, up.remote_port), ("192.0.2.1", 179, 40000))
        self.assertEqual(sorted(self.routes(msgs, 0)), sorted(PREFIXES))
        self.assertEqual(sorted(self.routes(msgs, FLAG_L)), sorted(PREFIXES))
        eors = [m for m in msgs if isinstance(m, RouteMonitoring)
                and bgp_decode(m.update)[0].end_of_rib == IPV4]
        self.assertEqual(len(eors), 2)
        self.assertEqual(self.service.stations["c1"].status()["state"], "up")

    def test_pre_policy_needs_soft_reconfiguration(self):
        """Without soft reconfiguration no pre-policy table is kept: only its End-of-RIB."""
        self.bring_up(soft=False)
        self.host.rib.receive(INFO, announce(ATTRS, PREFIXES))
        self.settle()
        self.start()
        msgs = self.messages()
        self.assertEqual(self.routes(msgs, 0), [])
        self.assertEqual(sorted(self.routes(msgs, FLAG_L)), sorted(PREFIXES))

    def test_dump_in_slices(self):
        """A big table goes out over several reactor turns, live changes after it."""
        self.patch(client_module, "DUMP_TURN_MESSAGES", 3)
        self.bring_up()
        for i in range(10):
            a = ATTRS.replace(med=i)
            self.host.rib.receive(INFO, announce(a, [pfx(f"10.{i}.{j}.0/24") for j in range(3)]))
        self.settle()
        self.service.startService()
        # One reactor turn: the one call due (the dump's next slice).
        (turn,) = self.clock.getDelayedCalls()
        self.clock.calls.remove(turn)
        turn.func(*turn.args, **turn.kw)
        self.assertEqual(len(self.routes(self.messages())), 3 * 3)  # 3 messages of 3 prefixes
        self.assertEqual(len(self.clock.getDelayedCalls()), 1)  # the next slice
        extra = pack_reach(1, 1, ATTRS, [pfx("198.51.100.0/24")])[0]
        self.receive(extra)
        msgs = self.messages()
        # The dump reads each slice as the table is then: it may show the
        # new route too; the live change still follows (last word wins).
        self.assertEqual(len(set(self.routes(msgs, FLAG_L))), 31)
        # The live UPDATE comes after the whole dump, not in the middle of it.
        last = [m for m in msgs if isinstance(m, RouteMonitoring)][-2:]
        self.assertIn(pfx("198.51.100.0/24"), self.routes(last))

    def test_dump_slice_bounded_in_octets(self):
        """A dump turn stops at DUMP_TURN_BYTES and writes its slice as one string."""
        self.patch(client_module, "DUMP_TURN_BYTES", 1)
        self.bring_up()
        for i in range(4):
            self.host.rib.receive(INFO, announce(ATTRS.replace(med=i), [pfx(f"10.{i}.0.0/16")]))
        self.settle()
        self.service.startService()
        before = len(self.messages())  # Initiation and Peer Up
        (turn,) = self.clock.getDelayedCalls()
        self.clock.calls.remove(turn)
        turn.func(*turn.args, **turn.kw)
        self.assertEqual(len(self.messages()), before + 1)  # one message per turn
        self.settle()
        self.assertEqual(len(self.routes(self.messages(), FLAG_L)), 4)

    def test_paused_dump_waits(self):
        """While the transport is full the dump stops; it goes on when it drains."""
        self.patch(client_module, "DUMP_TURN_MESSAGES", 1)
        self.bring_up()
        for i in range(5):
            self.host.rib.receive(INFO, announce(ATTRS.replace(med=i), [pfx(f"10.{i}.0.0/16")]))
        self.settle()
        self.service.startService()
        proto = self.endpoint.protocols[-1]
        proto.pauseProducing()
        self.settle()
        before = len(self.messages())
        self.clock.advance(1)
        self.assertEqual(len(self.messages()), before)
        proto.resumeProducing()
        self.settle()
        self.assertEqual(len(self.routes(self.messages(), FLAG_L)), 5)


class LiveTests(Base):
    """Changes after the dump, per view."""

    views = ("pre-policy", "post-policy", "adj-rib-out", "loc-rib")

    def test_pre_policy_exact_bytes(self):
        """A received UPDATE is carried byte for byte, with the time it came."""
        self.bring_up()
        self.start()
        self.endpoint.transport.clear()
        self.clock.advance(5.5)
        data = pack_reach(1, 1, ATTRS, PREFIXES[:2])[0]
        self.receive(data)
        pre = [m for m in self.messages() if isinstance(m, RouteMonitoring)
               and m.peer.peer_type == 0 and m.peer.flags == 0]
        self.assertEqual([m.update for m in pre], [data])
        self.assertEqual(pre[0].peer.timestamp, 5.5)

    def test_post_policy_and_loc_rib(self):
        """Post-policy (L) and Loc-RIB (peer type 3) follow the RIB, withdrawals too."""
        self.bring_up()
        self.start()
        self.endpoint.transport.clear()
        self.receive(pack_reach(1, 1, ATTRS, PREFIXES)[0])
        msgs = self.messages()
        self.assertEqual(sorted(self.routes(msgs, FLAG_L)), sorted(PREFIXES))
        self.assertEqual(sorted(self.routes(msgs, peer_type=PeerType.LOC_RIB)), sorted(PREFIXES))
        self.endpoint.transport.clear()
        self.host.rib.receive(INFO, withdraw(PREFIXES[:2]))
        self.settle()
        withdrawn = {m.peer.peer_type: bgp_decode(m.update)[0].withdrawn for m in self.messages()
                     if isinstance(m, RouteMonitoring)}
        self.assertEqual(withdrawn[0], PREFIXES[:2])
        self.assertEqual(withdrawn[PeerType.LOC_RIB], PREFIXES[:2])

    def test_loc_rib_peer_up(self):
        """RFC 9069: the Loc-RIB instance has its own Peer Up with the table name TLV."""
        self.start()
        ups = [m for m in self.messages() if isinstance(m, PeerUpMsg)]
        self.assertEqual([u.peer.peer_type for u in ups], [PeerType.LOC_RIB])
        self.assertIn((bmp.INFO_VRF_TABLE_NAME, b"global"), ups[0].tlvs)

    def test_adj_rib_out(self):
        """UPDATEs sent to the peer are Adj-RIB-Out monitoring (O flag, RFC 8671)."""
        self.bring_up()
        self.start()
        self.endpoint.transport.clear()
        data = pack_reach(1, 1, ATTRS, PREFIXES[:1])[0]
        self.monitor.message(self.peer, OUT, 1.0, data)
        self.settle()  # written when the reactor turn ends
        (m,) = [m for m in self.messages() if isinstance(m, RouteMonitoring)]
        self.assertTrue(m.peer.adj_rib_out)
        self.assertEqual(m.update, data)

    def test_peer_down(self):
        """Peer Down carries the reason and the NOTIFICATION."""
        self.bring_up()
        self.start()
        notif = bytes.fromhex("ff" * 16 + "0015030602")
        self.monitor.session_down(self.peer, PeerDown(9.0, DownReason.REMOTE_NOTIFICATION, notif))
        self.settle()
        (down,) = [m for m in self.messages() if isinstance(m, PeerDownMsg)]
        self.assertEqual((down.reason, down.data), (3, notif))
        self.assertEqual(self.monitor.views, {})

    def test_peer_up_live(self):
        """A session coming up after the dump sends its Peer Up at once."""
        self.start()
        self.endpoint.transport.clear()
        self.bring_up()
        self.settle()
        (up,) = [m for m in self.messages() if isinstance(m, PeerUpMsg)]
        self.assertEqual(up.peer.address, PEER_ADDR)

    def test_statistics(self):
        """Every statistics_interval: rejected, Adj-RIB-In and Loc-RIB counts per peer."""
        self.bring_up()
        self.start()
        self.receive(pack_reach(1, 1, ATTRS, PREFIXES)[0])
        self.endpoint.transport.clear()
        self.clock.advance(10)
        (report,) = [m for m in self.messages() if isinstance(m, StatisticsReport)]
        self.assertEqual(report.get(bmp.Stat.ADJ_RIB_IN_ROUTES), 5)
        self.assertEqual(report.get(bmp.Stat.LOC_RIB_ROUTES), 5)
        self.assertEqual(report.get(bmp.Stat.REJECTED_BY_POLICY), 0)
        self.assertEqual(report.get(bmp.Stat.ADJ_RIB_IN_ROUTES_FAMILY), (1, 1, 5))
        self.assertEqual(report.get(bmp.Stat.AS_PATH_LOOP), 0)

    def duplicates_report(self) -> StatisticsReport:
        """The same UPDATE twice, one prefix withdrawn twice and one never held; the next report."""
        self.receive(pack_reach(1, 1, ATTRS, PREFIXES)[0])
        self.receive(pack_reach(1, 1, ATTRS, PREFIXES[:3])[0])  # 3 known duplicates
        self.host.rib.receive(INFO, withdraw(PREFIXES[:1]))
        self.host.rib.receive(INFO, withdraw(PREFIXES[:1]))  # a duplicate withdraw
        self.host.rib.receive(INFO, withdraw([pfx("203.0.113.0/24")]))  # never held: another
        self.settle()
        self.endpoint.transport.clear()
        self.clock.advance(10)
        self.settle()
        (report,) = [m for m in self.messages() if isinstance(m, StatisticsReport)]
        return report

    def test_statistics_duplicates_golden(self):
        """Types 1 and 2 (RFC 7854 4.8) count known duplicates; the whole report, byte for byte."""
        self.bring_up()  # soft reconfiguration: withdraws are checked against the pre-policy table
        self.start()
        report = self.duplicates_report()
        self.assertEqual(report.get(bmp.Stat.DUPLICATE_PREFIX), 3)
        self.assertEqual(report.get(bmp.Stat.DUPLICATE_WITHDRAW), 2)
        golden = bytes.fromhex(
            "03 0000008b 01"  # version 3, 139 octets, Statistics Report
            # per-peer header: global, IPv4, no RD, 192.0.2.2, AS 65002, BGP ID, 10.0 s
            "00 00 0000000000000000 000000000000000000000000 c0000202"
            "0000fdea c0000202 0000000a 00000000"
            "00000009"  # nine statistics
            "0000 0004 00000000"  # 0: rejected by policy
            "0001 0004 00000003"  # 1: duplicate advertisements
            "0002 0004 00000002"  # 2: duplicate withdraws
            "0003 0004 00000000"  # 3-5: the loops
            "0004 0004 00000000"
            "0005 0004 00000000"
            "0007 0008 0000000000000004"  # 7: Adj-RIB-In routes
            "0008 0008 0000000000000004"  # 8: Loc-RIB routes
            "0009 000b 0001 01 0000000000000004")  # 9: Adj-RIB-In, IPv4 unicast
        self.assertEqual(bmp.encode(report), golden)
        self.assertEqual(self.endpoint.transport.value(), golden)

    def test_statistics_duplicates_without_soft_reconfiguration(self):
        """Without the pre-policy table, a withdraw of what is not held counts while nothing was refused."""
        self.bring_up(soft=False)
        self.start()
        report = self.duplicates_report()
        self.assertEqual(report.get(bmp.Stat.DUPLICATE_PREFIX), 3)
        self.assertEqual(report.get(bmp.Stat.DUPLICATE_WITHDRAW), 2)

    def test_statistics_refused_withdraw_not_duplicate(self):
        """A refused prefix withdrawn later is not counted a duplicate (without soft reconfiguration)."""
        self.bring_up(soft=False)
        self.start()
        self.receive(pack_reach(1, 1, ATTRS, PREFIXES[1:])[0])
        looped = PathAttributes(origin=0, as_path=((2, (65002, 65000)),), next_hop=PEER_ADDR)
        self.receive(pack_reach(1, 1, looped, PREFIXES[:1])[0])  # refused: AS_PATH loop
        self.host.rib.receive(INFO, withdraw(PREFIXES[:2]))
        self.settle()
        self.assertEqual(self.host.rib.duplicates(INFO), (0, 0))
        self.assertEqual(len(self.host.rib.adj_rib_in(INFO, IPV4)), 3)

    def test_reimport_is_not_duplicate(self):
        """A soft-reconfiguration re-run of the import policy announces nothing twice."""
        self.bring_up()
        self.start()
        self.receive(pack_reach(1, 1, ATTRS, PREFIXES)[0])
        self.host.rib.reimport(INFO)
        self.settle()
        self.assertEqual(self.host.rib.duplicates(INFO), (0, 0))
        self.receive(pack_reach(1, 1, ATTRS, PREFIXES[:2])[0])
        self.assertEqual(self.host.rib.duplicates(INFO), (2, 0))

    def test_statistics_loops(self):
        """Our own AS in an AS_PATH counts as an AS_PATH loop (type 4), its prefixes rejected."""
        self.bring_up()
        self.start()
        looped = PathAttributes(origin=0, as_path=((2, (65002, 65000)),), next_hop=PEER_ADDR)
        self.receive(pack_reach(1, 1, looped, PREFIXES[:2])[0])
        self.endpoint.transport.clear()
        self.clock.advance(10)
        (report,) = [m for m in self.messages() if isinstance(m, StatisticsReport)]
        self.assertEqual(report.get(bmp.Stat.AS_PATH_LOOP), 1)
        self.assertEqual(report.get(bmp.Stat.REJECTED_BY_POLICY), 2)
        self.assertEqual(report.get(bmp.Stat.CLUSTER_LIST_LOOP), 0)


class TurnBatchTests(Base):
    """A reactor turn's live messages: one write, counted in bulk, one header stamp per peer."""

    views = ("pre-policy", "post-policy")

    def writes(self) -> list[bytes]:
        """Each transport.write call's data from now on, in order."""
        transport = self.endpoint.transport
        calls: list[bytes] = []
        real = transport.write

        def write(data: bytes) -> None:
            calls.append(data)
            real(data)

        transport.write = write
        return calls

    def test_one_write_per_turn(self):
        """Many messages in one turn reach the transport as one write, and are all counted."""
        self.bring_up()
        self.start()
        station = self.service.stations["c1"]
        before = (station.messages, station.octets)
        calls = self.writes()
        data = [pack_reach(1, 1, ATTRS.replace(med=i), PREFIXES[i:i + 1])[0] for i in range(5)]
        for d in data:
            self.monitor.message(self.peer, IN, self.clock.seconds(), d)
        self.assertEqual(calls, [])  # nothing before the turn ends
        self.settle()
        self.assertEqual(len(calls), 1)
        msgs = bmp.decode_stream(calls[0])
        self.assertEqual([m.update for m in msgs], data)
        self.assertEqual((station.messages - before[0], station.octets - before[1]),
                         (5, len(calls[0])))

    def test_header_stamped_once_per_turn(self):
        """A peer's messages of one turn carry the turn's first time; the next turn its own."""
        self.bring_up()
        self.start()
        self.endpoint.transport.clear()
        data = pack_reach(1, 1, ATTRS, PREFIXES[:1])[0]
        self.monitor.message(self.peer, IN, 7.25, data)
        self.monitor.message(self.peer, IN, 7.5, data)
        self.settle()
        self.clock.advance(3)
        self.monitor.message(self.peer, IN, 8.75, data)
        self.settle()
        stamps = [m.peer.timestamp for m in self.messages()]
        self.assertEqual(stamps, [7.25, 7.25, 8.75])

    def test_peer_down_before_termination(self):
        """At shutdown the turn's messages (a Peer Down) are written before the Termination."""
        self.bring_up()
        self.start()
        self.endpoint.transport.clear()
        self.monitor.session_down(self.peer, PeerDown(9.0, DownReason.DECONFIGURED))
        self.service.stopService()
        kinds = [type(m).__name__ for m in self.messages()]
        self.assertEqual(kinds, ["PeerDownMsg", "Termination"])

    def test_live_follows_reconnection(self):
        """Between connections route messages go nowhere; after the next one, to it alone."""
        self.bring_up()
        self.start()
        first = self.endpoint.protocols[-1]
        first.connectionLost(None)
        station = self.service.stations["c1"]
        sent = station.messages
        data = pack_reach(1, 1, ATTRS, PREFIXES[:1])[0]
        self.receive(data)
        self.assertEqual(station.messages, sent)
        self.clock.advance(5)  # the back-off's first retry
        self.settle()
        self.assertEqual(len(self.endpoint.protocols), 2)
        self.endpoint.transport.clear()
        first.transport.clear()
        self.receive(data)
        self.assertIn(data, [m.update for m in self.messages() if isinstance(m, RouteMonitoring)])
        self.assertEqual(first.transport.value(), b"")

    def test_paused_turn_waits_and_counts_to_bound(self):
        """A turn's messages wait for a full transport, in order, and count toward the bound."""
        self.bring_up()
        self.start()
        proto = self.endpoint.protocols[-1]
        self.endpoint.transport.clear()
        proto.pauseProducing()
        data = [pack_reach(1, 1, ATTRS.replace(med=i), PREFIXES[i:i + 1])[0] for i in range(3)]
        for d in data[:2]:
            self.monitor.message(self.peer, IN, 1.0, d)
        self.assertEqual(proto.pending_bytes, 2 * (48 + len(data[0])))
        self.settle()
        self.monitor.message(self.peer, IN, 2.0, data[2])
        self.settle()
        self.assertEqual(self.endpoint.transport.value(), b"")
        proto.resumeProducing()
        self.settle()
        self.assertEqual([m.update for m in self.messages()], data)
        self.assertEqual(proto.pending_bytes, 0)


class SlowStationTests(Base):
    """The buffer bound: routing never waits, the session is dropped and re-synced."""

    views = ("pre-policy",)
    buffer = 65536

    def test_drop_and_resync(self):
        """Past the bound: Termination, close, a drop counted; the next connection re-syncs."""
        self.bring_up()
        self.start()
        proto = self.endpoint.protocols[-1]
        proto.pauseProducing()
        data = pack_reach(1, 1, ATTRS, PREFIXES)[0]
        for _ in range(2000):  # > 64 KiB of Route Monitoring
            self.receive(data)
        station = self.service.stations["c1"]
        self.assertEqual(station.drops, 1)
        self.assertTrue(self.endpoint.transport.disconnecting)
        msgs = self.messages()
        self.assertIsInstance(msgs[-1], Termination)
        self.assertEqual(msgs[-1].reason, bmp.TerminationReason.OUT_OF_RESOURCES)
        self.assertLessEqual(proto.pending_bytes, 0)
        # The RIB went on without waiting.
        self.assertEqual(len(self.host.rib.adj_rib_in(INFO, IPV4)), 5)
        # Stuck: aborted after 5 s.  The next connection (a full dump again)
        # waits retry_time (30 s) after the drop, not the usual 1-2 s.
        self.clock.advance(5)
        self.assertTrue(self.endpoint.transport.disconnected)
        proto.connectionLost(None)
        self.clock.advance(20)
        self.assertEqual(len(self.endpoint.protocols), 1)
        self.clock.advance(10)
        self.assertEqual(len(self.endpoint.protocols), 2)
        msgs = self.messages()
        self.assertIsInstance(msgs[0], Initiation)
        self.assertIsInstance(msgs[1], PeerUpMsg)
        self.assertEqual(station.connects, 2)

    def flood(self) -> None:
        """Fill the current connection past the bound while its transport is full."""
        self.endpoint.protocols[-1].pauseProducing()
        data = pack_reach(1, 1, ATTRS, PREFIXES)[0]
        for _ in range(2000):
            self.receive(data)
        self.endpoint.protocols[-1].connectionLost(None)

    def test_drops_in_a_row_wait_longer(self):
        """A station dropped again right after its dump waits twice as long; a stable one ends the streak."""
        self.bring_up()
        self.start()
        station = self.service.stations["c1"]
        self.flood()
        self.clock.advance(31)
        self.assertEqual(len(self.endpoint.protocols), 2)
        self.flood()  # at once: the second drop in a row
        self.clock.advance(50)
        self.assertEqual(len(self.endpoint.protocols), 2)
        self.clock.advance(11)  # 60 s
        self.assertEqual(len(self.endpoint.protocols), 3)
        self.assertEqual(station.drops, 2)
        # Up for longer than the hold since its dump: the next drop waits 30 s again.
        self.clock.advance(61)
        self.flood()
        self.clock.advance(31)
        self.assertEqual(len(self.endpoint.protocols), 4)


class ServiceTests(Base):
    """Taps set as the views need, reload of the collector list."""

    def test_taps_for_views(self):
        """Pre/post-policy: the post-policy tap, no Loc-RIB subscription."""
        self.start()
        (monitor, post, loc) = self.attached[-1]
        self.assertIs(monitor, self.monitor)
        self.assertEqual((post, loc), (True, False))

    def test_reload_removes_and_adds(self):
        """A removed collector gets Termination; an empty list clears every tap."""
        self.start()
        transport = self.endpoint.transport
        self.service.reload(BmpConfig())
        self.assertIsInstance(bmp.decode_stream(transport.value())[-1], Termination)
        self.assertEqual(self.attached[-1], (None, False, False))
        self.service.reload(self.cfg)
        self.settle()
        self.assertEqual(len(self.endpoint.protocols), 2)
        self.assertIs(self.attached[-1][0], self.monitor)

    def test_reload_without_view_change_keeps_taps(self):
        """A reload that changes no view leaves the taps alone (no Loc-RIB recount, no rebuild)."""
        self.start()
        n = len(self.attached)
        extra = BmpCollectorConfig("c2", "192.0.2.51", 1790, monitoring=("pre-policy",))
        self.service.reload(BmpConfig(collectors=self.cfg.collectors + (extra,)))
        self.assertEqual(len(self.attached), n)
        self.assertEqual(list(self.service.stations), ["c1", "c2"])
        self.assertEqual([s["name"] for s in self.service.status()], ["c1", "c2"])

    def test_reload_keeps_config_order(self):
        """A changed collector keeps its place in the config's order."""
        self.start()
        c2 = BmpCollectorConfig("c2", "192.0.2.51", 1790)
        self.service.reload(BmpConfig(collectors=self.cfg.collectors + (c2,)))
        changed = BmpCollectorConfig("c1", "192.0.2.50", 1790, monitoring=("pre-policy",))
        self.service.reload(BmpConfig(collectors=(changed, c2)))
        self.assertEqual(list(self.service.stations), ["c1", "c2"])
        self.assertEqual(self.service.stations["c1"].config, changed)

    def test_stop(self):
        """Stopping sends Termination and clears the taps."""
        self.start()
        self.service.stopService()
        self.assertIsInstance(self.messages()[-1], Termination)
        self.assertEqual(self.attached[-1], (None, False, False))


class AdjRibOutDumpTests(Base):
    """The Adj-RIB-Out view's dump (RFC 8671)."""

    views = ("adj-rib-out",)

    def test_dump_reads_adj_rib_out_in_slices(self):
        """What the RIB would send the peer is dumped with O and L set, a slice at a time."""
        other = make_peer("198.51.100.2", 65003, local_address="198.51.100.1")
        self.bring_up()
        self.host.rib.add_peer(other, [IPV4], Negotiated(peer_as=65003), FakeSink())
        self.host.rib.receive(other, announce(PathAttributes(origin=0, as_path=((2, (65003,)),),
                                                             next_hop="198.51.100.2"), PREFIXES))
        self.settle()
        self.patch(client_module, "DUMP_SLICE", 2)
        calls = []
        real = self.host.rib.adj_rib_out

        def counted(info, family, prefixes=None):
            calls.append(None if prefixes is None else len(prefixes))
            return real(info, family, prefixes)

        self.patch(self.host, "rib", RibSpy(self.host.rib, adj_rib_out=counted))
        self.start()
        out = self.routes(self.messages(), FLAG_L | FLAG_O)
        self.assertEqual(sorted(out), sorted(PREFIXES))
        # Never the whole table in one call: 5 prefixes in slices of 2.
        self.assertEqual(calls, [2, 2, 1])


class LinkLocalPeerTests(Base):
    """A peer known by a link-local address with its zone (RFC 4007)."""

    views = ("post-policy",)

    def test_post_policy_found_by_zone(self):
        """The RIB names the peer with its zone; the header carries the address without it."""
        self.peer = FakePeer("fe80::2%eth0")
        info = make_peer("fe80::2%eth0", 65002, router_id="192.0.2.2")
        up = peer_up()
        self.host.up[self.peer] = up
        self.host.infos[self.peer] = info
        self.monitor.session_up(self.peer, up)
        self.host.rib.add_peer(info, [IPV4], Negotiated(peer_as=65002), FakeSink())
        self.start()
        self.endpoint.transport.clear()
        self.host.rib.receive(info, announce(ATTRS, PREFIXES[:1]))
        self.settle()
        (m,) = [m for m in self.messages() if isinstance(m, RouteMonitoring)]
        self.assertEqual(m.peer.address, "fe80::2")
        self.assertEqual(self.routes([m], FLAG_L), PREFIXES[:1])


class GuardTests(Base):
    """A failure inside BMP never reaches the session or the RIB that called the tap."""

    def test_failure_contained(self):
        """A station connection whose send raises: the tap call returns, the failure is logged and counted."""
        self.bring_up()
        self.start()
        proto = self.service.stations["c1"].live

        def broken(data: bytes) -> None:
            raise RuntimeError("broken station")

        proto.send = broken
        data = pack_reach(1, 1, ATTRS, PREFIXES[:1])[0]
        self.receive(data)  # the tap and then the RIB: neither raises
        self.assertEqual(len(self.host.rib.adj_rib_in(INFO, IPV4)), 1)
        self.assertEqual(self.monitor.failures, 2)  # pre-policy and post-policy
        self.assertEqual(len(self.flushLoggedErrors(RuntimeError)), 2)


class ConnectFailureTests(Base):
    """A station that cannot be reached: retried with back-off, the reason shown."""

    def test_refused_then_up(self):
        """A refused connect is noted in status(); the back-off retries until it connects."""
        self.endpoint.fail = True
        self.start()
        station = self.service.stations["c1"]
        status = station.status()
        self.assertEqual(status["state"], "connecting")
        self.assertIn("refused", status["last_error"])
        self.assertEqual(self.endpoint.protocols, [])
        self.endpoint.fail = False
        self.clock.advance(4)  # the first retry: about 2 s, up to 1 s of jitter
        self.assertEqual(len(self.endpoint.protocols), 1)
        self.assertEqual(station.status()["state"], "up")
