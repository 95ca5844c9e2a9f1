"""Tests for bgpd.session.factory: the PeerFactory driving the RFC 4271 section 8 table.

Bring-up active and passive, the timers of 8.2.2 and section 10 (jitter),
DelayOpen (8.1.1), connection collision detection (6.8, RFC 6286 2.3),
idle hold back-off, max-prefix (RFC 4486), administrative shutdown and reset
(RFC 9003), and two factories talking to each other over iosim.

Time is a MemoryReactorClock; bytes are checked on StringTransports.  The
helpers at the top are reused by the other session test modules.
"""

from __future__ import annotations

import struct
from typing import Any

from twisted.internet.address import IPv4Address
from twisted.internet.error import ConnectionDone, ConnectionRefusedError
from twisted.internet.testing import MemoryReactorClock, StringTransport
from twisted.logger import Logger
from twisted.python.failure import Failure
from twisted.test import iosim
from twisted.trial.unittest import SynchronousTestCase

from bgpd.config import MaxPrefix, NeighborConfig
from bgpd.session import factory as factory_module
from bgpd.session.factory import NullListener, PeerFactory
from bgpd.session.fsm import NO_FLAGS, Action, Event, Flags, State, step
from bgpd.session.negotiation import SessionInfo, local_open
from bgpd.session.protocol import BGPProtocol
from bgpd.wire.attributes import PathAttributes
from bgpd.wire.capabilities import (
    AddPath,
    ExtendedMessage,
    FourOctetAS,
    GracefulRestart,
    Multiprotocol,
    RouteRefresh,
)
from bgpd.wire.message import KEEPALIVE, KEEPALIVE_BYTES, decode_stream, encode_message
from bgpd.wire.nlri import prefix_from_str
from bgpd.wire.notification import Notification
from bgpd.wire.open import Open
from bgpd.wire.update import Update, pack_reach

LOCAL_ID = "192.0.2.1"
PEER_ID = "192.0.2.2"
PEER_ADDR = "192.0.2.2"
LOCAL_AS = 65001
PEER_AS = 65002


# ---------------------------------------------------------------------------
# Helpers (also imported by test_negotiation, test_protocol, test_listener).


class RecordingListener:
    """A SessionListener that records every call, in order."""

    def __init__(self) -> None:
        self.calls: list[tuple] = []

    def session_established(self, peer: PeerFactory, info: SessionInfo) -> None:
        self.calls.append(("established", info))

    def session_down(self, peer: PeerFactory, reason: str, graceful: bool) -> None:
        self.calls.append(("down", reason, graceful))

    def updates_received(self, peer: PeerFactory, updates: list[Update]) -> None:
        for update in updates:
            self.calls.append(("update", update))

    def refresh_requested(self, peer: PeerFactory, refresh: Any) -> None:
        self.calls.append(("refresh", refresh))

    def state_changed(self, peer: PeerFactory, old: State, new: State, reason: str) -> None:
        self.calls.append(("state", old, new))

    def output_resumed(self, peer: PeerFactory) -> None:
        self.calls.append(("resumed",))

    def peer_config_changed(self, peer: PeerFactory, old: NeighborConfig,
                            new: NeighborConfig) -> None:
        self.calls.append(("config", old, new))

    def kinds(self) -> list[str]:
        """The names of the calls other than state changes, in order."""
        return [c[0] for c in self.calls if c[0] != "state"]

    def of(self, kind: str) -> list[tuple]:
        return [c for c in self.calls if c[0] == kind]

    def transitions(self) -> list[tuple[State, State]]:
        return [(c[1], c[2]) for c in self.calls if c[0] == "state"]


def neighbor(**overrides: Any) -> NeighborConfig:
    """A NeighborConfig for AS65002 at 192.0.2.2, seen from AS65001."""
    values: dict[str, Any] = {"address": PEER_ADDR, "remote_as": PEER_AS, "local_as": LOCAL_AS}
    values.update(overrides)
    return NeighborConfig(**values)


def peer_open(
    asn: int = PEER_AS,
    hold: int = 90,
    bgp_id: str = PEER_ID,
    caps: tuple | None = None,
) -> Open:
    """An OPEN from the peer: IPv4 unicast, route refresh, 4-octet AS."""
    if caps is None:
        caps = (Multiprotocol(1, 1), RouteRefresh())
    return Open.make(asn, hold, bgp_id, caps)


def wire(*messages: Any) -> bytes:
    return b"".join(encode_message(m) for m in messages)


def notification_bytes(code: int, subcode: int, data: bytes = b"") -> bytes:
    body = bytes((code, subcode)) + data
    return b"\xff" * 16 + struct.pack("!HB", 19 + len(body), 3) + body


class Harness:
    """One PeerFactory on a MemoryReactorClock, with a recording listener."""

    def __init__(
        self,
        config: NeighborConfig | None = None,
        router_id: str = LOCAL_ID,
        random_value: float = 1.0,
        **kwargs: Any,
    ) -> None:
        self.reactor = MemoryReactorClock()
        self.listener = RecordingListener()
        self.config = config or neighbor()
        self.peer = PeerFactory(
            self.config, router_id, self.listener, self.reactor,
            random=lambda: random_value, hostname="r1", **kwargs,
        )

    @property
    def state(self) -> State:
        return self.peer.state

    def connect_out(self) -> tuple[BGPProtocol, StringTransport]:
        """Complete the last outbound connect the factory asked the reactor for."""
        host, port, factory, _timeout, _bind = self.reactor.tcpClients[-1]
        address = IPv4Address("TCP", host, port)
        proto = factory.buildProtocol(address)
        transport = StringTransport(peerAddress=address)
        proto.makeConnection(transport)
        return proto, transport

    def connect_in(self) -> tuple[BGPProtocol, StringTransport]:
        """A connection from the peer, as the shared listener hands it over."""
        proto = BGPProtocol(self.peer, outbound=False)
        transport = StringTransport(peerAddress=IPv4Address("TCP", PEER_ADDR, 40000))
        proto.makeConnection(transport)
        return proto, transport

    def open_sent(self, **config: Any) -> tuple[BGPProtocol, StringTransport]:
        """Start and bring an outbound connection to OpenSent; clear what was sent."""
        self.peer.start()
        proto, transport = self.connect_out()
        transport.clear()
        return proto, transport

    def open_confirm(self, open_: Open | None = None) -> tuple[BGPProtocol, StringTransport]:
        proto, transport = self.open_sent()
        proto.dataReceived(wire(open_ or peer_open()))
        transport.clear()
        return proto, transport

    def established(self, open_: Open | None = None) -> tuple[BGPProtocol, StringTransport]:
        proto, transport = self.open_confirm(open_)
        proto.dataReceived(KEEPALIVE_BYTES)
        transport.clear()
        return proto, transport


def sent(transport: StringTransport) -> list:
    """The messages written to ``transport`` so far, decoded; then forget them."""
    data = transport.value()
    transport.clear()
    return decode_stream(data)


def update_bytes(prefixes: tuple[str, ...] = ("198.51.100.0/24",)) -> bytes:
    attrs = PathAttributes(origin=0, as_path=((2, (PEER_AS,)),), next_hop=PEER_ADDR)
    return b"".join(pack_reach(1, 1, attrs, [prefix_from_str(p)[1] for p in prefixes]))


# ---------------------------------------------------------------------------


class BringUpTests(SynchronousTestCase):
    """Idle -> Connect/Active -> OpenSent -> OpenConfirm -> Established."""

    def test_active_connect_recorded(self):
        """ManualStart moves to Connect and connects to the peer's address and port."""
        h = Harness(neighbor(local_address="192.0.2.1", port=1179))
        h.peer.start()
        self.assertEqual(h.state, State.CONNECT)
        self.assertEqual(len(h.reactor.tcpClients), 1)
        host, port, factory, _timeout, bind = h.reactor.tcpClients[0]
        self.assertEqual((host, port, bind), (PEER_ADDR, 1179, ("192.0.2.1", 0)))
        self.assertIs(factory, h.peer)

    def test_no_bind_address_without_local_address(self):
        """Without local_address the connect binds nowhere in particular."""
        h = Harness()
        h.peer.start()
        self.assertEqual(h.reactor.tcpClients[0][4], None)
        self.assertEqual(h.reactor.tcpClients[0][1], 179)

    def test_active_bring_up(self):
        """An outbound session reaches Established; OPEN, then KEEPALIVE, are sent."""
        h = Harness()
        h.peer.start()
        proto, transport = h.connect_out()
        self.assertEqual(h.state, State.OPEN_SENT)
        self.assertEqual(transport.value(), encode_message(local_open(h.config, LOCAL_ID, "r1")))
        transport.clear()
        proto.dataReceived(wire(peer_open()))
        self.assertEqual(h.state, State.OPEN_CONFIRM)
        self.assertEqual(transport.value(), KEEPALIVE_BYTES)
        self.assertEqual(h.listener.kinds(), [])
        proto.dataReceived(KEEPALIVE_BYTES)
        self.assertEqual(h.state, State.ESTABLISHED)
        self.assertEqual(
            h.listener.transitions(),
            [
                (State.IDLE, State.CONNECT),
                (State.CONNECT, State.OPEN_SENT),
                (State.OPEN_SENT, State.OPEN_CONFIRM),
                (State.OPEN_CONFIRM, State.ESTABLISHED),
            ],
        )
        # session_established comes after the state change to Established.
        self.assertEqual(h.listener.calls[-1][0], "established")
        self.assertEqual(h.listener.calls[-2], ("state", State.OPEN_CONFIRM, State.ESTABLISHED))
        self.assertEqual(h.peer.established_transitions, 1)

    def test_passive_bring_up(self):
        """A passive peer waits in Active, never connects, and takes the peer's connection."""
        h = Harness(neighbor(passive=True))
        h.peer.start()
        self.assertEqual(h.state, State.ACTIVE)
        proto, transport = h.connect_in()
        self.assertEqual(h.state, State.OPEN_SENT)
        self.assertEqual(sent(transport), [local_open(h.config, LOCAL_ID, "r1")])
        proto.dataReceived(wire(peer_open(), KEEPALIVE))
        self.assertEqual(h.state, State.ESTABLISHED)
        self.assertEqual(sent(transport), [KEEPALIVE])
        self.assertEqual(h.reactor.tcpClients, [])
        self.assertEqual(h.listener.kinds(), ["established"])

    def test_passive_never_connects(self):
        """A passive peer does not dial out when the ConnectRetryTimer would expire."""
        h = Harness(neighbor(passive=True))
        h.peer.start()
        for _ in range(5):
            h.reactor.advance(h.config.connect_retry_time)
        self.assertEqual(h.reactor.tcpClients, [])
        self.assertEqual(h.state, State.ACTIVE)

    def test_incoming_in_connect_replaces_our_attempt(self):
        """In Connect, the peer's connection is taken and our own attempt stopped."""
        h = Harness()
        h.peer.start()
        connector = h.reactor.connectors[0]
        _proto, transport = h.connect_in()
        self.assertTrue(connector.stoppedConnecting)
        self.assertEqual(h.state, State.OPEN_SENT)
        self.assertEqual(len(sent(transport)), 1)

    def test_session_info(self):
        """The SessionInfo handed to the listener has what both OPENs agreed."""
        config = neighbor(
            families=("ipv4-unicast", "ipv6-unicast"), add_path="both", hold_time=90
        )
        h = Harness(config)
        caps = (
            Multiprotocol(1, 1),
            Multiprotocol(1, 2),
            RouteRefresh(),
            ExtendedMessage(),
            AddPath(((1, 1, AddPath.SEND),)),
            GracefulRestart(0, 120, ()),
        )
        h.established(peer_open(asn=PEER_AS, hold=30, caps=caps))
        [(_, info)] = h.listener.of("established")
        self.assertEqual(info.families, ((1, 1),))
        self.assertEqual(info.hold_time, 30)
        self.assertEqual(info.keepalive_time, 10.0)
        self.assertEqual(info.peer_asn, PEER_AS)
        self.assertEqual(info.peer_router_id, PEER_ID)
        self.assertTrue(info.route_refresh)
        self.assertTrue(info.negotiated.as4)
        self.assertTrue(info.negotiated.extended_message)
        self.assertEqual(info.negotiated.addpath_rx, frozenset({(1, 1)}))
        self.assertEqual(info.negotiated.addpath_tx, frozenset())
        self.assertEqual(info.negotiated.families, frozenset({(1, 1)}))
        self.assertIsNotNone(info.graceful_restart)
        self.assertIs(h.peer.session_info, info)
        self.assertEqual(h.peer.protocol_instance.negotiated, info.negotiated)
        self.assertEqual(h.peer.protocol_instance.framer.max_len, 65535)

    def test_hold_time_is_minimum(self):
        """The negotiated hold time is the smaller of ours and the peer's (4.2)."""
        h = Harness(neighbor(hold_time=30))
        h.established(peer_open(hold=180))
        self.assertEqual(h.peer.session_info.hold_time, 30)
        self.assertEqual(h.peer.session_info.keepalive_time, 10.0)

    def test_two_octet_peer(self):
        """A peer without the 4-octet AS capability gets a 2-octet session."""
        h = Harness()
        h.established(Open(PEER_AS, 90, PEER_ID, (Multiprotocol(1, 1),)))
        self.assertFalse(h.peer.session_info.negotiated.as4)

    def test_connect_refused(self):
        """A refused connect waits in Active and tries again when the ConnectRetryTimer expires."""
        h = Harness(neighbor(idle_hold_time=5, connect_retry_time=30))
        h.peer.start()
        connector = h.reactor.connectors[0]
        h.peer.clientConnectionFailed(connector, Failure(ConnectionRefusedError()))
        self.assertEqual(h.state, State.ACTIVE)
        self.assertIn("connect to 192.0.2.2 failed", h.peer.last_error)
        self.assertFalse(h.peer.idle_hold_timer.running)
        h.reactor.advance(29.9)
        self.assertEqual(len(h.reactor.tcpClients), 1)
        h.reactor.advance(0.1)
        self.assertEqual(h.state, State.CONNECT)
        self.assertEqual(len(h.reactor.tcpClients), 2)

    def test_peer_dials_in_after_refused_connect(self):
        """A peer that only dials in gets its session between our connect attempts."""
        h = Harness(neighbor(connect_retry_time=30))
        h.peer.start()
        for _ in range(3):  # refused, retried, refused again
            h.peer.clientConnectionFailed(h.reactor.connectors[-1],
                                          Failure(ConnectionRefusedError()))
            self.assertEqual(h.state, State.ACTIVE)
            h.reactor.advance(10)
            self.assertEqual(h.state, State.ACTIVE)
            h.reactor.advance(20)
            self.assertEqual(h.state, State.CONNECT)
        h.peer.clientConnectionFailed(h.reactor.connectors[-1], Failure(ConnectionRefusedError()))
        h.reactor.advance(5)
        proto, transport = h.connect_in()
        self.assertEqual(h.state, State.OPEN_SENT)
        self.assertIs(h.peer.protocol_instance, proto)
        [open_] = sent(transport)
        self.assertIsInstance(open_, Open)
        proto.dataReceived(wire(peer_open(), KEEPALIVE))
        self.assertEqual(h.state, State.ESTABLISHED)
        self.assertFalse(h.peer.connect_retry_timer.running)
        h.reactor.advance(100)
        self.assertEqual(len(h.reactor.tcpClients), 4)  # no more attempts once it is up

    def test_stale_connect_failure_ignored(self):
        """A failure reported by a connector we no longer track changes nothing."""
        h = Harness()
        h.peer.start()
        h.peer.clientConnectionFailed(object(), Failure(ConnectionRefusedError()))
        self.assertEqual(h.state, State.CONNECT)

    def test_late_outbound_connection_closed(self):
        """Our connect completing after we took the peer's connection is closed at once."""
        h = Harness()
        h.peer.start()
        h.connect_in()
        proto, transport = h.connect_out()
        self.assertTrue(transport.disconnecting)
        self.assertEqual(transport.value(), b"")
        self.assertIsNone(proto.controller)
        self.assertEqual(h.state, State.OPEN_SENT)

    def test_disabled_peer_refuses_connections(self):
        """A peer never started refuses (closes) incoming connections."""
        h = Harness()
        proto, transport = h.connect_in()
        self.assertTrue(transport.disconnecting)
        self.assertEqual(transport.value(), b"")
        self.assertEqual(h.state, State.IDLE)

    def test_tcp_lost_in_open_sent(self):
        """Losing the connection in OpenSent goes to Active with the ConnectRetryTimer."""
        h = Harness()
        proto, _ = h.open_sent()
        proto.connectionLost(Failure(ConnectionDone()))
        self.assertEqual(h.state, State.ACTIVE)
        self.assertFalse(h.peer.hold_timer.running)
        h.reactor.advance(h.config.connect_retry_time)
        self.assertEqual(h.state, State.CONNECT)
        self.assertEqual(len(h.reactor.tcpClients), 2)

    def test_tcp_lost_in_established(self):
        """Losing the connection in Established reports the session down."""
        h = Harness()
        proto, _ = h.established()
        proto.connectionLost(Failure(ConnectionDone()))
        self.assertEqual(h.state, State.IDLE)
        [(_, reason, graceful)] = h.listener.of("down")
        self.assertIn("TCP connection lost", reason)
        self.assertFalse(graceful)

    def test_tcp_lost_graceful_restart(self):
        """A peer that sent the GR capability goes down gracefully on TCP loss (RFC 4724)."""
        h = Harness()
        caps = (Multiprotocol(1, 1), GracefulRestart(0, 120, ()))
        proto, _ = h.established(peer_open(caps=caps))
        proto.connectionLost(Failure(ConnectionDone()))
        [(_, _reason, graceful)] = h.listener.of("down")
        self.assertTrue(graceful)

    def test_graceful_flag_not_left_over(self):
        """A GR peer lost in OpenConfirm does not make a later hold expiry graceful."""
        h = Harness()
        caps = (Multiprotocol(1, 1), GracefulRestart(0, 120, ()))
        proto, _ = h.open_confirm(peer_open(caps=caps))
        proto.connectionLost(Failure(ConnectionDone()))
        self.assertEqual(h.state, State.IDLE)
        h.reactor.advance(60)  # idle hold, then connect again
        proto, _ = h.connect_out()
        proto.dataReceived(wire(peer_open(), KEEPALIVE))
        self.assertEqual(h.state, State.ESTABLISHED)
        h.reactor.advance(90)
        [(_, reason, graceful)] = h.listener.of("down")
        self.assertIn("hold timer expired", reason)
        self.assertFalse(graceful)


class TimerTests(SynchronousTestCase):
    """ConnectRetry, Hold, Keepalive and DelayOpen timers, with Clock.advance."""

    def test_connect_retry_in_connect(self):
        """ConnectRetryTimer expiry in Connect drops the attempt and connects again."""
        h = Harness(neighbor(connect_retry_time=120))
        h.peer.start()
        first = h.reactor.connectors[0]
        h.reactor.advance(119.9)
        self.assertEqual(len(h.reactor.tcpClients), 1)
        h.reactor.advance(0.1)
        self.assertTrue(first.stoppedConnecting)
        self.assertEqual(len(h.reactor.tcpClients), 2)
        self.assertEqual(h.state, State.CONNECT)
        h.reactor.advance(120)
        self.assertEqual(len(h.reactor.tcpClients), 3)

    def test_connect_retry_jitter_low(self):
        """With random() == 0 the ConnectRetryTimer runs 0.75 of its value (section 10)."""
        h = Harness(neighbor(connect_retry_time=120), random_value=0.0)
        h.peer.start()
        h.reactor.advance(89.9)
        self.assertEqual(len(h.reactor.tcpClients), 1)
        h.reactor.advance(0.1)
        self.assertEqual(len(h.reactor.tcpClients), 2)

    def test_connect_retry_jitter_middle(self):
        """With random() == 0.5 the ConnectRetryTimer runs 0.875 of its value."""
        h = Harness(neighbor(connect_retry_time=120), random_value=0.5)
        h.peer.start()
        h.reactor.advance(104.9)
        self.assertEqual(len(h.reactor.tcpClients), 1)
        h.reactor.advance(0.1)
        self.assertEqual(len(h.reactor.tcpClients), 2)

    def test_default_random_in_range(self):
        """Without an injected random the jitter factor stays within [0.75, 1.0]."""
        peer = PeerFactory(neighbor(), LOCAL_ID, None, MemoryReactorClock(), hostname="r1")
        for _ in range(200):
            self.assertTrue(0.75 <= peer._jitter() <= 1.0)

    def test_hold_timer_open_sent(self):
        """OpenSent's large hold timer (240 s) sends 4/0 and goes to Idle."""
        h = Harness()
        proto, transport = h.open_sent()
        h.reactor.advance(239.9)
        self.assertEqual(h.state, State.OPEN_SENT)
        h.reactor.advance(0.1)
        self.assertEqual(transport.value(), notification_bytes(4, 0))
        self.assertTrue(transport.disconnecting)
        self.assertEqual(h.state, State.IDLE)
        self.assertEqual(h.listener.of("down"), [])

    def test_hold_timer_open_confirm(self):
        """OpenConfirm's negotiated hold timer sends 4/0 when no KEEPALIVE comes."""
        h = Harness()
        _proto, transport = h.open_confirm(peer_open(hold=9))
        h.reactor.advance(8.9)
        self.assertEqual(h.state, State.OPEN_CONFIRM)
        transport.clear()
        h.reactor.advance(0.1)
        self.assertEqual(transport.value(), notification_bytes(4, 0))
        self.assertEqual(h.state, State.IDLE)

    def test_hold_timer_established(self):
        """In Established, silence for the hold time sends 4/0 and reports the session down."""
        h = Harness()
        _proto, transport = h.established(peer_open(hold=30))
        h.reactor.advance(29.9)
        self.assertEqual(h.state, State.ESTABLISHED)
        transport.clear()
        h.reactor.advance(0.1)
        self.assertEqual(transport.value(), notification_bytes(4, 0))
        self.assertTrue(transport.disconnecting)
        self.assertEqual(h.state, State.IDLE)
        [(_, reason, _graceful)] = h.listener.of("down")
        self.assertIn("hold timer expired", reason)
        self.assertEqual(h.peer.last_notification_sent, Notification(4, 0))

    def test_hold_timer_kept_alive(self):
        """KEEPALIVEs and UPDATEs arriving in time keep the session up (the lazy hold timer)."""
        h = Harness()
        proto, _ = h.established(peer_open(hold=30))
        for i in range(20):
            h.reactor.advance(20)
            proto.dataReceived(KEEPALIVE_BYTES if i % 2 else update_bytes())
        self.assertEqual(h.state, State.ESTABLISHED)
        # Then silence: down 30 s after the last message.
        h.reactor.advance(29.5)
        self.assertEqual(h.state, State.ESTABLISHED)
        h.reactor.advance(0.5)
        self.assertEqual(h.state, State.IDLE)

    def test_hold_timer_waits_while_input_held(self):
        """Not reading (inbound flow control) is no silence of the peer: the hold timer waits."""
        h = Harness()
        proto, transport = h.established(peer_open(hold=30))
        h.peer.hold_input(True)
        self.assertTrue(proto.input_held)
        self.assertEqual(transport.producerState, "paused")
        h.reactor.advance(20)
        h.reactor.advance(20)
        self.assertEqual(h.state, State.ESTABLISHED)
        h.peer.hold_input(False)
        self.assertEqual(transport.producerState, "producing")
        # Read again: what the peer sent meanwhile keeps the session up ...
        proto.dataReceived(KEEPALIVE_BYTES)
        h.reactor.advance(29.5)
        self.assertEqual(h.state, State.ESTABLISHED)
        # ... and real silence still ends it.
        h.reactor.advance(0.5)
        self.assertEqual(h.state, State.IDLE)

    def test_hold_timer_after_input_held(self):
        """Held past the hold time and nothing came once reading went on: down within a second."""
        h = Harness()
        proto, _transport = h.established(peer_open(hold=30))
        h.peer.hold_input(True)
        h.reactor.advance(40)
        self.assertEqual(h.state, State.ESTABLISHED)
        h.peer.hold_input(False)
        h.reactor.advance(1.0)
        self.assertEqual(h.state, State.IDLE)
        [(_, reason, _graceful)] = h.listener.of("down")
        self.assertIn("hold timer expired", reason)

    def test_keepalive_every_third(self):
        """KEEPALIVEs go out every hold/3 seconds less the guard in OpenConfirm and Established."""
        h = Harness()
        proto, transport = h.open_confirm(peer_open(hold=30))
        h.reactor.advance(9.5)
        self.assertEqual(transport.value(), KEEPALIVE_BYTES)
        transport.clear()
        proto.dataReceived(KEEPALIVE_BYTES)
        for _ in range(6):
            h.reactor.advance(9.4)
            self.assertEqual(transport.value(), b"")
            h.reactor.advance(0.1)
            self.assertEqual(transport.value(), KEEPALIVE_BYTES)
            transport.clear()
            proto.dataReceived(KEEPALIVE_BYTES)

    def test_keepalive_jitter(self):
        """The KeepaliveTimer is jittered like the others (0.75 with random() == 0)."""
        h = Harness(random_value=0.0)
        _proto, transport = h.open_confirm(peer_open(hold=30))
        h.reactor.advance(7.1)  # (10 - 0.5) * 0.75 = 7.125
        self.assertEqual(transport.value(), b"")
        h.reactor.advance(0.05)
        self.assertEqual(transport.value(), KEEPALIVE_BYTES)

    def test_keepalive_gap_within_third_despite_stalls(self):
        """With any jitter and the reactor up to 0.49 s late, no KEEPALIVE gap exceeds hold/3."""
        for random_value in (0.0, 0.5, 1.0):
            h = Harness(random_value=random_value)
            proto, transport = h.established(peer_open(hold=9))
            transport.clear()
            sent = [h.reactor.seconds()]
            # The clock moves in 0.49 s steps, as a busy reactor runs timers
            # up to a stall late; the peer's own KEEPALIVEs keep the session up.
            for i in range(200):
                h.reactor.advance(0.49)
                if transport.value():
                    self.assertEqual(transport.value(), KEEPALIVE_BYTES)
                    sent.append(h.reactor.seconds())
                    transport.clear()
                if i % 4 == 0:
                    proto.dataReceived(KEEPALIVE_BYTES)
            self.assertEqual(h.state, State.ESTABLISHED)
            gaps = [b - a for a, b in zip(sent, sent[1:], strict=False)]
            self.assertGreater(len(gaps), 30)
            self.assertLessEqual(max(gaps), 3.0 + 1e-9, (random_value, max(gaps)))
            # RFC 4271 section 10's jitter still spreads them (0.75..1.0).
            self.assertGreaterEqual(min(gaps), 0.75 * 2.5 - 1e-9)

    def test_hold_time_zero(self):
        """Hold time 0: no KEEPALIVEs are sent and no hold timer ever expires."""
        h = Harness(neighbor(hold_time=0))
        _proto, transport = h.established(peer_open(hold=90))
        self.assertEqual(h.peer.session_info.hold_time, 0)
        self.assertFalse(h.peer.hold_timer.running)
        self.assertFalse(h.peer.keepalive_timer.running)
        for _ in range(10):
            h.reactor.advance(300)
        self.assertEqual(transport.value(), b"")
        self.assertEqual(h.state, State.ESTABLISHED)

    def test_hold_time_zero_from_peer(self):
        """The peer's hold time 0 wins too (min), stopping OpenSent's large timer."""
        h = Harness()
        _proto, transport = h.open_confirm(peer_open(hold=0))
        self.assertFalse(h.peer.hold_timer.running)
        h.reactor.advance(1000)
        self.assertEqual(transport.value(), b"")
        self.assertEqual(h.state, State.OPEN_CONFIRM)

    def test_flags_hold_time_zero_from_open(self):
        """The received OPEN's hold time 0 picks the table's hold_time_zero alternative."""
        h = Harness()
        h.open_sent()
        seen: list[Flags] = []
        real_step = factory_module.step

        def spy(state: State, event: Event, flags: Flags = NO_FLAGS) -> Any:
            seen.append(flags)
            return real_step(state, event, flags)

        self.patch(factory_module, "step", spy)
        h.peer.protocol_instance.dataReceived(wire(peer_open(hold=0)))
        self.assertTrue(seen[0].hold_time_zero)

    def test_delay_open_timer_expires(self):
        """With DelayOpen our OPEN waits in Connect until the DelayOpenTimer expires."""
        h = Harness(neighbor(delay_open_time=5))
        h.peer.start()
        _proto, transport = h.connect_out()
        self.assertEqual(h.state, State.CONNECT)
        self.assertEqual(transport.value(), b"")
        self.assertFalse(h.peer.connect_retry_timer.running)
        h.reactor.advance(4.9)
        self.assertEqual(transport.value(), b"")
        h.reactor.advance(0.1)
        self.assertEqual(h.state, State.OPEN_SENT)
        self.assertEqual(sent(transport), [local_open(h.config, LOCAL_ID, "r1")])

    def test_delay_open_peer_open_first(self):
        """With DelayOpen the peer's OPEN is answered with OPEN and KEEPALIVE at once."""
        h = Harness(neighbor(delay_open_time=5))
        h.peer.start()
        proto, transport = h.connect_out()
        h.reactor.advance(2)
        proto.dataReceived(wire(peer_open()))
        self.assertEqual(h.state, State.OPEN_CONFIRM)
        self.assertEqual(sent(transport), [local_open(h.config, LOCAL_ID, "r1"), KEEPALIVE])
        self.assertFalse(h.peer.delay_open_timer.running)
        h.reactor.advance(10)  # the stopped DelayOpenTimer must not fire
        self.assertEqual(h.state, State.OPEN_CONFIRM)
        proto.dataReceived(KEEPALIVE_BYTES)
        self.assertEqual(h.state, State.ESTABLISHED)

    def test_delay_open_passive(self):
        """DelayOpen in Active: the incoming connection waits for the timer too."""
        h = Harness(neighbor(delay_open_time=3, passive=True))
        h.peer.start()
        _proto, transport = h.connect_in()
        self.assertEqual(h.state, State.ACTIVE)
        h.reactor.advance(3)
        self.assertEqual(h.state, State.OPEN_SENT)
        self.assertEqual(len(sent(transport)), 1)


class BackOffTests(SynchronousTestCase):
    """Idle hold with exponential back-off (8.1.1 DampPeerOscillations)."""

    def fail_once(self, h: Harness) -> None:
        """Connect, get to OpenConfirm, and lose the connection (a damped exit)."""
        h.reactor.advance(0)
        proto, _ = h.connect_out()
        proto.dataReceived(wire(peer_open()))
        self.assertEqual(h.state, State.OPEN_CONFIRM)
        proto.connectionLost(Failure(ConnectionDone()))
        self.assertEqual(h.state, State.IDLE)

    def wait_for_connect(self, h: Harness) -> float:
        """Advance in 1 s steps until the factory connects again; return the wait."""
        start = h.reactor.seconds()
        for _ in range(1000):
            if h.state is not State.IDLE:
                return h.reactor.seconds() - start
            h.reactor.advance(1)
        self.fail("never restarted")

    def test_doubling_to_the_maximum(self):
        """Repeated failures wait 5, 10, 20, 40 s, then stay at max_idle_hold_time."""
        h = Harness(neighbor(idle_hold_time=5, max_idle_hold_time=40))
        h.peer.start()
        waits = []
        for _ in range(6):
            self.fail_once(h)
            waits.append(self.wait_for_connect(h))
        self.assertEqual(waits, [5, 10, 20, 40, 40, 40])
        self.assertEqual(h.peer.flaps, 6)

    def test_reset_after_stable(self):
        """A session stable for a while forgives the back-off."""
        h = Harness(neighbor(idle_hold_time=5, max_idle_hold_time=300))
        h.peer.start()
        for _ in range(3):
            self.fail_once(h)
            self.wait_for_connect(h)
        proto, _ = h.connect_out()
        proto.dataReceived(wire(peer_open(hold=30), KEEPALIVE))
        self.assertEqual(h.state, State.ESTABLISHED)
        for _ in range(10):  # 100 s: longer than the stability time, max(60, 3 * hold)
            h.reactor.advance(10)
            proto.dataReceived(KEEPALIVE_BYTES)
        proto.connectionLost(Failure(ConnectionDone()))
        self.assertEqual(self.wait_for_connect(h), 5)

    def test_no_reset_when_short(self):
        """A session that flaps soon after Established keeps backing off."""
        h = Harness(neighbor(idle_hold_time=5, max_idle_hold_time=300))
        h.peer.start()
        self.fail_once(h)
        self.assertEqual(self.wait_for_connect(h), 5)
        proto, _ = h.connect_out()
        proto.dataReceived(wire(peer_open(hold=30), KEEPALIVE))
        h.reactor.advance(10)
        proto.connectionLost(Failure(ConnectionDone()))
        self.assertEqual(self.wait_for_connect(h), 10)

    def test_zero_is_honoured(self):
        """idle_hold_time = 0: every restart is immediate, however often the session fails."""
        h = Harness(neighbor(idle_hold_time=0, max_idle_hold_time=300))
        h.peer.start()
        for _ in range(5):
            self.fail_once(h)
            self.assertEqual(h.state, State.IDLE)
            h.reactor.advance(0)
            self.assertEqual(h.state, State.CONNECT)
        self.assertEqual(h.peer.idle_hold_time, 0)

    def test_deliberate_cease_not_damped(self):
        """A Cease the peer sends on purpose restarts after idle_hold_time and is not counted."""
        h = Harness(neighbor(idle_hold_time=5, max_idle_hold_time=300))
        h.peer.start()
        self.fail_once(h)
        self.assertEqual(self.wait_for_connect(h), 5)
        # Administrative shutdown, de-configured, administrative reset, other
        # configuration change, collision resolution (RFC 4486).
        for subcode in (2, 3, 4, 6, 7):
            proto, _ = h.connect_out()
            proto.dataReceived(wire(peer_open(), KEEPALIVE))
            self.assertEqual(h.state, State.ESTABLISHED)
            proto.dataReceived(notification_bytes(6, subcode))
            self.assertEqual(h.state, State.IDLE)
            self.assertEqual(self.wait_for_connect(h), 5, f"Cease subcode {subcode}")
        # The error count kept its one error: the next error is the second.
        h.reactor.advance(0)
        proto, _ = h.connect_out()
        proto.dataReceived(wire(peer_open()))
        proto.connectionLost(Failure(ConnectionDone()))
        self.assertEqual(self.wait_for_connect(h), 10)

    def test_error_cease_damped(self):
        """A Cease that reports a problem (out of resources, 6/8) is damped like an error."""
        h = Harness(neighbor(idle_hold_time=5, max_idle_hold_time=300))
        h.peer.start()
        self.fail_once(h)
        self.assertEqual(self.wait_for_connect(h), 5)
        proto, _ = h.connect_out()
        proto.dataReceived(wire(peer_open(), KEEPALIVE))
        proto.dataReceived(notification_bytes(6, 8))
        self.assertEqual(self.wait_for_connect(h), 10)

    def test_accepts_during_back_off(self):
        """The back-off delays only our own connect: the peer's connection is taken at once."""
        h = Harness(neighbor(idle_hold_time=5, max_idle_hold_time=300))
        h.peer.start()
        for _ in range(4):
            self.fail_once(h)
            self.wait_for_connect(h)
        self.fail_once(h)
        # The fifth error in a row: 80 s before our own restart.
        self.assertEqual(h.peer.idle_hold_timer.call.getTime() - h.reactor.seconds(), 80)
        h.reactor.advance(1)
        inc, _ = h.connect_in()
        self.assertEqual(h.state, State.OPEN_SENT)
        self.assertIs(h.peer.protocol_instance, inc)

    def test_reset_restores_configured(self):
        """An administrative reset restarts at once with the configured idle hold."""
        h = Harness(neighbor(idle_hold_time=5))
        h.peer.start()
        for _ in range(3):
            self.fail_once(h)
            self.wait_for_connect(h)
        h.peer.reset("")
        self.assertEqual(h.state, State.CONNECT)
        self.assertEqual(h.peer.idle_hold_time, 5)


class CollisionTests(SynchronousTestCase):
    """Connection collision detection (RFC 4271 6.8, RFC 6286 2.3)."""

    def collide(self, router_id: str, peer_id: str, main_state: State) -> tuple:
        """Our outbound connection in ``main_state``, then the peer connects to us."""
        h = Harness(router_id=router_id)
        h.peer.start()
        out, out_t = h.connect_out()
        if main_state is State.OPEN_CONFIRM:
            out.dataReceived(wire(peer_open(bgp_id=peer_id)))
        self.assertEqual(h.state, main_state)
        out_t.clear()
        inc, inc_t = h.connect_in()
        self.assertIs(h.peer.pending, inc)
        # We sent our OPEN on the new connection at once.
        self.assertEqual(sent(inc_t), [local_open(h.config, router_id, "r1")])
        return h, out, out_t, inc, inc_t

    def test_local_higher_open_sent(self):
        """Our id is higher: our connection survives and the peer's gets 6/7."""
        h, out, out_t, inc, inc_t = self.collide("192.0.2.9", PEER_ID, State.OPEN_SENT)
        inc.dataReceived(wire(peer_open()))
        self.assertEqual(inc_t.value(), notification_bytes(6, 7))
        self.assertTrue(inc_t.disconnecting)
        self.assertIsNone(h.peer.pending)
        self.assertEqual(h.state, State.OPEN_SENT)
        out.dataReceived(wire(peer_open(), KEEPALIVE))
        self.assertEqual(h.state, State.ESTABLISHED)
        self.assertIs(h.peer.protocol_instance, out)
        self.assertFalse(out_t.disconnecting)

    def test_local_higher_open_on_ours_first(self):
        """Our id is higher and the peer's OPEN comes on our connection first."""
        h, out, out_t, inc, inc_t = self.collide("192.0.2.9", PEER_ID, State.OPEN_SENT)
        out.dataReceived(wire(peer_open()))
        self.assertEqual(h.state, State.OPEN_CONFIRM)
        self.assertEqual(inc_t.value(), notification_bytes(6, 7))
        self.assertEqual(sent(out_t), [KEEPALIVE])
        out.dataReceived(KEEPALIVE_BYTES)
        self.assertEqual(h.state, State.ESTABLISHED)

    def test_local_lower_open_sent(self):
        """Our id is lower: the peer's connection survives and ours gets 6/7."""
        h, out, out_t, inc, inc_t = self.collide("192.0.2.1", "192.0.2.200", State.OPEN_SENT)
        inc.dataReceived(wire(peer_open(bgp_id="192.0.2.200")))
        self.assertEqual(out_t.value(), notification_bytes(6, 7))
        self.assertTrue(out_t.disconnecting)
        self.assertIs(h.peer.protocol_instance, inc)
        self.assertEqual(h.state, State.OPEN_CONFIRM)
        self.assertEqual(sent(inc_t), [KEEPALIVE])
        inc.dataReceived(KEEPALIVE_BYTES)
        self.assertEqual(h.state, State.ESTABLISHED)
        self.assertFalse(inc_t.disconnecting)
        self.assertEqual(len(h.listener.of("established")), 1)
        self.assertEqual(h.listener.of("down"), [])

    def test_local_lower_open_confirm(self):
        """Our id is lower and ours was in OpenConfirm: we move to the peer's connection."""
        h, out, out_t, inc, inc_t = self.collide("192.0.2.1", "192.0.2.200", State.OPEN_CONFIRM)
        inc.dataReceived(wire(peer_open(bgp_id="192.0.2.200")))
        self.assertEqual(out_t.value(), notification_bytes(6, 7))
        self.assertEqual(h.state, State.OPEN_CONFIRM)
        self.assertEqual(sent(inc_t), [KEEPALIVE])
        inc.dataReceived(KEEPALIVE_BYTES)
        self.assertEqual(h.state, State.ESTABLISHED)
        self.assertIs(h.peer.protocol_instance, inc)
        # The old connection's timers are gone: no stray KEEPALIVE on it later.
        out_t.clear()
        h.reactor.advance(100)
        self.assertEqual(out_t.value(), b"")

    def test_local_higher_open_confirm(self):
        """Our id is higher and ours was in OpenConfirm: the peer's connection gets 6/7."""
        h, out, out_t, inc, inc_t = self.collide("192.0.2.9", PEER_ID, State.OPEN_CONFIRM)
        inc.dataReceived(wire(peer_open()))
        self.assertEqual(inc_t.value(), notification_bytes(6, 7))
        self.assertEqual(h.state, State.OPEN_CONFIRM)
        out.dataReceived(KEEPALIVE_BYTES)
        self.assertEqual(h.state, State.ESTABLISHED)
        self.assertIs(h.peer.protocol_instance, out)

    def test_local_lower_open_on_ours_first(self):
        """Our id is lower, the peer's OPEN comes on ours first: we switch, then take its OPEN."""
        h, out, out_t, inc, inc_t = self.collide("192.0.2.1", "192.0.2.200", State.OPEN_SENT)
        out.dataReceived(wire(peer_open(bgp_id="192.0.2.200")))
        self.assertEqual(out_t.value(), notification_bytes(6, 7))
        self.assertIs(h.peer.protocol_instance, inc)
        self.assertEqual(h.state, State.OPEN_SENT)
        inc.dataReceived(wire(peer_open(bgp_id="192.0.2.200"), KEEPALIVE))
        self.assertEqual(h.state, State.ESTABLISHED)

    def test_equal_ids_larger_as_wins(self):
        """Equal identifiers (eBGP): the connection from the larger AS survives (RFC 6286)."""
        # We are AS65001 < AS65002: the peer's connection survives.
        h, out, out_t, inc, inc_t = self.collide(PEER_ID, PEER_ID, State.OPEN_SENT)
        inc.dataReceived(wire(peer_open()))
        self.assertEqual(out_t.value(), notification_bytes(6, 7))
        self.assertIs(h.peer.protocol_instance, inc)
        # And the other way round.
        h = Harness(neighbor(local_as=65100), router_id=PEER_ID)
        h.peer.start()
        out, out_t = h.connect_out()
        inc, inc_t = h.connect_in()
        inc_t.clear()
        inc.dataReceived(wire(peer_open()))
        self.assertEqual(inc_t.value(), notification_bytes(6, 7))
        self.assertIs(h.peer.protocol_instance, out)

    def test_incoming_while_established(self):
        """A connection while Established gets Cease 6/7 and is closed; the session stays."""
        h = Harness()
        _out, out_t = h.established()
        _inc, inc_t = h.connect_in()
        self.assertEqual(inc_t.value(), notification_bytes(6, 7))
        self.assertTrue(inc_t.disconnecting)
        self.assertEqual(h.state, State.ESTABLISHED)
        self.assertFalse(out_t.disconnecting)

    def test_pending_closed_when_established(self):
        """A pending connection is closed (6/7) when ours reaches Established (6.8)."""
        h, out, out_t, inc, inc_t = self.collide("192.0.2.1", "192.0.2.200", State.OPEN_CONFIRM)
        out.dataReceived(KEEPALIVE_BYTES)
        self.assertEqual(h.state, State.ESTABLISHED)
        self.assertIsNone(h.peer.pending)
        self.assertEqual(inc_t.value(), notification_bytes(6, 7))
        self.assertTrue(inc_t.disconnecting)

    def test_pending_open_after_established(self):
        """The pending connection's OPEN never replaces an Established session."""
        h, out, out_t, inc, inc_t = self.collide("192.0.2.1", "192.0.2.200", State.OPEN_CONFIRM)
        out.dataReceived(KEEPALIVE_BYTES)
        inc.dataReceived(wire(peer_open(bgp_id="192.0.2.200")))
        self.assertEqual(h.state, State.ESTABLISHED)
        self.assertIs(h.peer.protocol_instance, out)
        self.assertFalse(out_t.disconnecting)
        self.assertEqual(h.listener.of("down"), [])
        self.assertEqual(len(h.listener.of("established")), 1)

    def test_incoming_while_idle(self):
        """A connection while Idle waiting to restart after an error is accepted."""
        h = Harness(neighbor(idle_hold_time=5))
        proto, _ = h.open_sent()
        h.reactor.advance(240)  # hold timer: Idle, damped restart pending
        self.assertEqual(h.state, State.IDLE)
        self.assertTrue(h.peer.idle_hold_timer.running)
        inc, inc_t = h.connect_in()
        self.assertFalse(inc_t.disconnecting)
        self.assertEqual(h.state, State.OPEN_SENT)
        self.assertFalse(h.peer.idle_hold_timer.running)
        [open_] = sent(inc_t)
        self.assertIsInstance(open_, Open)
        inc.dataReceived(wire(peer_open(), KEEPALIVE))
        self.assertEqual(h.state, State.ESTABLISHED)
        h.reactor.advance(5)
        self.assertEqual(len(h.reactor.tcpClients), 1)  # the restart was called off

    def test_incoming_while_idle_passive(self):
        """A passive peer waiting to restart after an error accepts the peer's connection too."""
        h = Harness(neighbor(passive=True, idle_hold_time=5))
        h.peer.start()
        inc, _ = h.connect_in()
        inc.dataReceived(wire(peer_open()))
        inc.connectionLost(Failure(ConnectionDone()))  # an error exit from OpenConfirm
        self.assertEqual(h.state, State.IDLE)
        self.assertTrue(h.peer.idle_hold_timer.running)
        again, again_t = h.connect_in()
        self.assertEqual(h.state, State.OPEN_SENT)
        self.assertIs(h.peer.protocol_instance, again)
        self.assertEqual(h.reactor.tcpClients, [])

    def test_incoming_while_idle_after_prefix_limit(self):
        """A prefix limit's restart_time is a hold-down: the peer's connection is refused."""
        limit = MaxPrefix(limit=1, restart_time=60)
        h = Harness(neighbor(max_prefix={"ipv4-unicast": limit}))
        h.established()
        h.peer.note_prefix_count("ipv4-unicast", 2)
        self.assertEqual(h.state, State.IDLE)
        _inc, inc_t = h.connect_in()
        self.assertTrue(inc_t.disconnecting)
        self.assertEqual(inc_t.value(), b"")
        self.assertEqual(h.state, State.IDLE)

    def test_incoming_while_stopped(self):
        """An administratively stopped peer refuses the peer's connection."""
        h = Harness()
        h.established()
        h.peer.stop("maintenance")
        _inc, inc_t = h.connect_in()
        self.assertTrue(inc_t.disconnecting)
        self.assertEqual(inc_t.value(), b"")
        self.assertEqual(h.state, State.IDLE)

    def test_second_pending_refused(self):
        """A third connection while one is pending gets 6/7."""
        h, out, out_t, inc, inc_t = self.collide("192.0.2.9", PEER_ID, State.OPEN_SENT)
        _third, third_t = h.connect_in()
        self.assertEqual(third_t.value(), notification_bytes(6, 7))
        self.assertIs(h.peer.pending, inc)

    def test_pending_lost(self):
        """The pending connection closing leaves the main one alone."""
        h, out, out_t, inc, inc_t = self.collide("192.0.2.9", PEER_ID, State.OPEN_SENT)
        inc.connectionLost(Failure(ConnectionDone()))
        self.assertIsNone(h.peer.pending)
        self.assertEqual(h.state, State.OPEN_SENT)

    def test_main_lost_pending_adopted(self):
        """Our connection failing in OpenSent hands the FSM to the pending one."""
        h, out, out_t, inc, inc_t = self.collide("192.0.2.9", PEER_ID, State.OPEN_SENT)
        out.connectionLost(Failure(ConnectionDone()))
        self.assertIs(h.peer.protocol_instance, inc)
        self.assertIsNone(h.peer.pending)
        self.assertEqual(h.state, State.OPEN_SENT)
        self.assertEqual(inc_t.value(), b"")  # no second OPEN on it
        inc.dataReceived(wire(peer_open(), KEEPALIVE))
        self.assertEqual(h.state, State.ESTABLISHED)

    def test_pending_closed_on_stop(self):
        """stop() closes a pending connection too, with the same Cease."""
        h, out, out_t, inc, inc_t = self.collide("192.0.2.9", PEER_ID, State.OPEN_SENT)
        h.peer.stop("bye")
        self.assertEqual(out_t.value(), notification_bytes(6, 2, b"\x03bye"))
        self.assertEqual(inc_t.value(), notification_bytes(6, 2, b"\x03bye"))
        self.assertIsNone(h.peer.pending)

    def test_pending_notification(self):
        """A NOTIFICATION on the pending connection just closes it."""
        h, out, out_t, inc, inc_t = self.collide("192.0.2.9", PEER_ID, State.OPEN_SENT)
        inc.dataReceived(notification_bytes(6, 7))
        self.assertTrue(inc_t.disconnecting)
        self.assertIsNone(h.peer.pending)
        self.assertEqual(h.state, State.OPEN_SENT)

    def test_pending_garbage(self):
        """Bad bytes on the pending connection get their NOTIFICATION there only."""
        h, out, out_t, inc, inc_t = self.collide("192.0.2.9", PEER_ID, State.OPEN_SENT)
        inc.dataReceived(b"\x00" * 19)
        self.assertEqual(inc_t.value(), notification_bytes(1, 1))
        self.assertEqual(h.state, State.OPEN_SENT)
        self.assertFalse(out_t.disconnecting)

    def test_collision_with_delay_open(self):
        """With DelayOpen, the surviving peer connection gets our OPEN when it wins."""
        h = Harness(neighbor(delay_open_time=5), router_id="192.0.2.1")
        h.peer.start()
        out, out_t = h.connect_out()
        self.assertEqual(h.state, State.CONNECT)
        inc, inc_t = h.connect_in()
        self.assertEqual(inc_t.value(), b"")
        inc.dataReceived(wire(peer_open(bgp_id="192.0.2.200")))
        self.assertEqual(out_t.value(), notification_bytes(6, 7))
        self.assertEqual(sent(inc_t), [local_open(h.config, "192.0.2.1", "r1"), KEEPALIVE])
        self.assertEqual(h.state, State.OPEN_CONFIRM)
        h.reactor.advance(5)  # the DelayOpenTimer of the dropped connection is stopped
        self.assertEqual(h.state, State.OPEN_CONFIRM)
        inc.dataReceived(KEEPALIVE_BYTES)
        self.assertEqual(h.state, State.ESTABLISHED)


class MaxPrefixTests(SynchronousTestCase):
    """Max-prefix (RFC 4486 Cease subcode 1)."""

    def harness(self, restart_time: int = 0) -> tuple[Harness, StringTransport, list]:
        limit = MaxPrefix(limit=100, warning_percent=80, restart_time=restart_time)
        h = Harness(neighbor(max_prefix={"ipv4-unicast": limit}))
        _proto, transport = h.established()
        events: list[dict] = []
        self.patch(factory_module, "log", Logger(observer=events.append))
        return h, transport, events

    def warnings(self, events: list) -> list:
        return [e for e in events if "of the limit" in e.get("log_format", "")]

    def test_below_warning(self):
        """Below the warning threshold nothing happens."""
        h, transport, events = self.harness()
        h.peer.note_prefix_count("ipv4-unicast", 79)
        self.assertEqual(events, [])
        self.assertEqual(transport.value(), b"")
        self.assertEqual(h.peer.prefix_counts, {"ipv4-unicast": 79})

    def test_warning_logged_once(self):
        """Crossing the warning threshold logs once, however often it is reported."""
        h, transport, events = self.harness()
        h.peer.note_prefix_count("ipv4-unicast", 80)
        h.peer.note_prefix_count("ipv4-unicast", 90)
        h.peer.note_prefix_count("ipv4-unicast", 100)
        self.assertEqual(len(self.warnings(events)), 1)
        self.assertEqual(transport.value(), b"")
        self.assertEqual(h.state, State.ESTABLISHED)

    def test_other_family_unlimited(self):
        """A family without a limit is only counted."""
        h, transport, events = self.harness()
        h.peer.note_prefix_count("ipv6-unicast", 10**6)
        self.assertEqual(h.state, State.ESTABLISHED)

    def test_over_limit_stays_down(self):
        """Over the limit with restart_time 0: Cease 6/1 with AFI/SAFI/limit, and down for good."""
        h, transport, _events = self.harness(restart_time=0)
        h.peer.note_prefix_count("ipv4-unicast", 101)
        data = struct.pack("!HBI", 1, 1, 100)
        self.assertEqual(transport.value(), notification_bytes(6, 1, data))
        self.assertEqual(h.state, State.IDLE)
        [(_, reason, _)] = h.listener.of("down")
        self.assertIn("max-prefix", reason)
        h.reactor.advance(3600)
        self.assertEqual(h.state, State.IDLE)
        self.assertEqual(len(h.reactor.tcpClients), 1)
        self.assertFalse(h.peer.enabled)

    def test_over_limit_restarts(self):
        """Over the limit with restart_time N: back after N seconds."""
        h, transport, _events = self.harness(restart_time=30)
        h.peer.note_prefix_count("ipv4-unicast", 150)
        self.assertEqual(transport.value()[19:21], b"\x06\x01")
        self.assertEqual(h.state, State.IDLE)
        h.reactor.advance(29.9)
        self.assertEqual(h.state, State.IDLE)
        h.reactor.advance(0.1)
        self.assertEqual(h.state, State.CONNECT)
        self.assertEqual(len(h.reactor.tcpClients), 2)

    def test_not_established(self):
        """Counts reported outside Established never reset a session."""
        limit = MaxPrefix(limit=1)
        h = Harness(neighbor(max_prefix={"ipv4-unicast": limit}))
        _proto, transport = h.open_confirm()
        h.peer.note_prefix_count("ipv4-unicast", 5)
        self.assertEqual(h.state, State.OPEN_CONFIRM)
        self.assertEqual(transport.value(), b"")


class AdminTests(SynchronousTestCase):
    """stop, reset and deconfigure (RFC 4486 subcodes 2, 4, 3; RFC 9003 text)."""

    def test_stop_with_message(self):
        """stop(message) sends 6/2 with the length-prefixed UTF-8 text and stays down."""
        h = Harness()
        _proto, transport = h.established()
        text = "maintenance \u2013 back at 10:00"
        raw = text.encode("utf-8")
        h.peer.stop(text)
        self.assertEqual(transport.value(), notification_bytes(6, 2, bytes((len(raw),)) + raw))
        self.assertTrue(transport.disconnecting)
        self.assertEqual(h.state, State.IDLE)
        [(_, reason, _)] = h.listener.of("down")
        self.assertIn(text, reason)
        h.reactor.advance(3600)
        self.assertEqual(h.state, State.IDLE)
        self.assertEqual(len(h.reactor.tcpClients), 1)

    def test_stop_without_message(self):
        """stop() without a message sends 6/2 with no data."""
        h = Harness()
        _proto, transport = h.open_sent()
        h.peer.stop()
        self.assertEqual(transport.value(), notification_bytes(6, 2))
        self.assertEqual(h.state, State.IDLE)

    def test_stop_in_connect(self):
        """stop() in Connect abandons the attempt; nothing was sent."""
        h = Harness()
        h.peer.start()
        h.peer.stop("x")
        self.assertTrue(h.reactor.connectors[0].stoppedConnecting)
        self.assertEqual(h.state, State.IDLE)
        h.reactor.advance(1000)
        self.assertEqual(len(h.reactor.tcpClients), 1)

    def test_stop_cancels_idle_hold(self):
        """stop() while a damped restart is pending cancels it."""
        h = Harness()
        h.open_sent()
        h.reactor.advance(240)
        self.assertTrue(h.peer.idle_hold_timer.running)
        h.peer.stop()
        self.assertFalse(h.peer.idle_hold_timer.running)
        h.reactor.advance(1000)
        self.assertEqual(len(h.reactor.tcpClients), 1)

    def test_reset(self):
        """reset(message) sends 6/4 with the text, then connects again at once."""
        h = Harness()
        _proto, transport = h.established()
        h.peer.reset("new policy")
        self.assertEqual(transport.value(), notification_bytes(6, 4, b"\x0anew policy"))
        self.assertEqual(h.state, State.CONNECT)
        self.assertEqual(len(h.reactor.tcpClients), 2)
        self.assertEqual(len(h.listener.of("down")), 1)

    def test_deconfigure(self):
        """deconfigure() sends 6/3 and stays down."""
        h = Harness()
        _proto, transport = h.established()
        h.peer.deconfigure()
        self.assertEqual(transport.value(), notification_bytes(6, 3))
        self.assertEqual(h.state, State.IDLE)
        self.assertFalse(h.peer.enabled)

    def test_start_after_stop(self):
        """start() after stop() brings the session back."""
        h = Harness()
        h.established()
        h.peer.stop()
        h.peer.start()
        self.assertEqual(h.state, State.CONNECT)
        proto, _ = h.connect_out()
        proto.dataReceived(wire(peer_open(), KEEPALIVE))
        self.assertEqual(h.state, State.ESTABLISHED)
        self.assertEqual(h.peer.established_transitions, 2)

    def test_long_message_truncated(self):
        """A shutdown message longer than 255 octets is cut on a character boundary."""
        h = Harness()
        _proto, transport = h.established()
        h.peer.stop("\u00e9" * 200)
        data = decode_stream(transport.value())[0].data
        self.assertEqual(data[0], 254)
        self.assertEqual(data[1:].decode("utf-8"), "\u00e9" * 127)


class FastPathTests(SynchronousTestCase):
    """The (Established, UpdateMsg) fast path equals the table's row."""

    def test_table_row(self):
        """The table row is PROCESS_UPDATE + RESTART_HOLD_TIMER, staying Established."""
        t = step(State.ESTABLISHED, Event.UPDATE_MSG, Flags(damp_peer_oscillations=True))
        self.assertEqual(t.actions, (Action.PROCESS_UPDATE, Action.RESTART_HOLD_TIMER))
        self.assertEqual(t.next_state, State.ESTABLISHED)

    def test_fast_path_matches_table(self):
        """An UPDATE through the fast path and through step() has the same effects."""
        update = decode_stream(update_bytes())[0]
        outcomes = []
        for fast in (True, False):
            h = Harness()
            proto, _ = h.established(peer_open(hold=30))
            h.reactor.advance(12)
            steps: list = []
            real_step = factory_module.step

            def spy(state: State, event: Event, flags: Flags = NO_FLAGS,
                    steps: list = steps, real_step: Any = real_step) -> Any:
                steps.append((state, event))
                return real_step(state, event, flags)

            self.patch(factory_module, "step", spy)
            before = len(h.listener.calls)
            if fast:
                h.peer.updates_decoded(proto, [update])
                self.assertEqual(steps, [])
            else:
                h.peer.handle(Event.UPDATE_MSG, update)
                self.assertEqual(steps, [(State.ESTABLISHED, Event.UPDATE_MSG)])
            outcomes.append((h.state, h.listener.calls[before:], h.peer._hold_base,
                             h.peer.updates_received, h.peer.hold_timer.running))
        self.assertEqual(outcomes[0], outcomes[1])
        self.assertEqual(outcomes[0][1], [("update", update)])
        self.assertEqual(outcomes[0][2], 12)


class PairTests(SynchronousTestCase):
    """Two PeerFactories talking to each other over iosim."""

    def test_two_peers(self):
        """Two factories reach Established, keep it up with KEEPALIVEs, then one stops."""
        clock = MemoryReactorClock()
        a_listener, b_listener = RecordingListener(), RecordingListener()
        a = PeerFactory(
            NeighborConfig(address="192.0.2.2", remote_as=65002, local_as=65001, hold_time=9),
            "192.0.2.1", a_listener, clock, random=lambda: 1.0, hostname="a",
        )
        b = PeerFactory(
            NeighborConfig(address="192.0.2.1", remote_as=65001, local_as=65002, passive=True,
                           hold_time=9),
            "192.0.2.2", b_listener, clock, random=lambda: 1.0, hostname="b",
        )
        b.start()
        a.start()
        host, port, _f, _t, _b = clock.tcpClients[0]
        client = a.buildProtocol(IPv4Address("TCP", host, port))
        server = BGPProtocol(b, outbound=False)
        pump = iosim.connect(
            server, iosim.makeFakeServer(server), client, iosim.makeFakeClient(client),
            greet=False,
        )
        pump.flush()
        self.assertEqual((a.state, b.state), (State.ESTABLISHED, State.ESTABLISHED))
        self.assertEqual(a_listener.of("established")[0][1].peer_hostname, "b")
        self.assertEqual(b_listener.of("established")[0][1].peer_router_id, "192.0.2.1")
        sent_before = client.messages_out
        for _ in range(300):  # 30 s: more than three hold intervals of 9 s
            clock.advance(0.1)
            pump.flush()
        self.assertEqual((a.state, b.state), (State.ESTABLISHED, State.ESTABLISHED))
        self.assertGreaterEqual(client.messages_out - sent_before, 9)
        a.stop("going away")
        pump.flush()
        self.assertEqual(a.state, State.IDLE)
        self.assertEqual(b.state, State.IDLE)
        [(_, reason, _)] = b_listener.of("down")
        self.assertIn('"going away"', reason)
        self.assertEqual(b.last_notification_received.shutdown_message, "going away")


class MiscTests(SynchronousTestCase):
    """Small pieces: repr, NullListener, sending."""

    def test_null_listener(self):
        """A factory without a listener works (NullListener)."""
        peer = PeerFactory(neighbor(), LOCAL_ID, None, MemoryReactorClock(), hostname="r1")
        self.assertIsInstance(peer.listener, NullListener)
        self.assertIn("192.0.2.2", repr(peer))

    def test_send_only_when_established(self):
        """send() writes the packed UPDATEs only in Established."""
        h = Harness()
        _proto, transport = h.open_confirm()
        h.peer.send([update_bytes()])
        self.assertEqual(transport.value(), b"")
        h.peer.protocol_instance.dataReceived(KEEPALIVE_BYTES)
        transport.clear()
        h.peer.send([update_bytes()])
        self.assertEqual(transport.value(), update_bytes())
        self.assertTrue(h.peer.writable())

    def test_request_refresh(self):
        """request_refresh sends ROUTE-REFRESH for a negotiated family only."""
        h = Harness()
        _proto, transport = h.established()
        self.assertTrue(h.peer.request_refresh("ipv4-unicast"))
        self.assertEqual(transport.value()[18], 5)
        self.assertFalse(h.peer.request_refresh("ipv6-unicast"))

    def test_refresh_received(self):
        """A ROUTE-REFRESH for a negotiated family goes to the listener."""
        h = Harness()
        proto, _ = h.established()
        proto.dataReceived(b"\xff" * 16 + b"\x00\x17\x05" + b"\x00\x01\x00\x01")
        self.assertEqual(h.listener.kinds(), ["established", "refresh"])
        proto.dataReceived(b"\xff" * 16 + b"\x00\x17\x05" + b"\x00\x02\x00\x01")
        self.assertEqual(h.listener.kinds(), ["established", "refresh"])

    def test_four_octet_as_capability_last(self):
        """FourOctetAS is always present in our OPEN."""
        self.assertTrue(local_open(neighbor(), LOCAL_ID, "r1").has(FourOctetAS))


BAD_UPDATE = b"\xff" * 16 + b"\x00\x17\x02" + b"\x00\xff\x00\x00"
BAD_OPEN = b"\xff" * 16 + b"\x00\x1d\x01" + bytes.fromhex("03fdea005ac000020200")


class TableRowTests(SynchronousTestCase):
    """Rows of the 8.2.2 table reached through the factory that the tests above do not.

    Each test puts a factory in a state, gives it one input and checks what
    was sent (exact bytes) and the state it ends in.
    """

    def connect_delay_open(self) -> tuple[Harness, BGPProtocol, StringTransport]:
        """Connect with DelayOpen running on our outbound connection."""
        h = Harness(neighbor(delay_open_time=5))
        h.peer.start()
        proto, transport = h.connect_out()
        self.assertEqual(h.state, State.CONNECT)
        self.assertTrue(h.peer.delay_open_timer.running)
        return h, proto, transport

    def active_delay_open(self) -> tuple[Harness, BGPProtocol, StringTransport]:
        """Active with DelayOpen running on the peer's connection."""
        h = Harness(neighbor(delay_open_time=5, passive=True))
        h.peer.start()
        proto, transport = h.connect_in()
        self.assertEqual(h.state, State.ACTIVE)
        self.assertTrue(h.peer.delay_open_timer.running)
        return h, proto, transport

    def check_closed(self, h: Harness, transport: StringTransport, expected: bytes = b"",
                     state: State = State.IDLE) -> None:
        self.assertEqual(transport.value(), expected)
        self.assertTrue(transport.disconnecting)
        self.assertEqual(h.state, state)
        self.assertFalse(h.peer.delay_open_timer.running)

    def test_delay_open_messages_close_silently(self):
        """Connect/Active with DelayOpen: Events 21, 22, 24-28 close without a NOTIFICATION."""
        inputs = {
            "header": b"\x00" * 19,
            "notification version": notification_bytes(2, 1, b"\x00\x03"),
            "notification": notification_bytes(6, 2),
            "keepalive": KEEPALIVE_BYTES,
            "update": update_bytes(),
            "bad update": BAD_UPDATE,
            "bad open": BAD_OPEN,
        }
        for setup in (self.connect_delay_open, self.active_delay_open):
            for name, data in inputs.items():
                with self.subTest(setup=setup.__name__, input=name):
                    h, proto, transport = setup()
                    proto.dataReceived(data)
                    self.check_closed(h, transport)
                    self.assertEqual(h.listener.of("update"), [])

    def test_open_in_active_delay_open(self):
        """Active, Event 20: OPEN and KEEPALIVE answer the peer's OPEN, OpenConfirm."""
        h, proto, transport = self.active_delay_open()
        proto.dataReceived(wire(peer_open()))
        self.assertEqual(sent(transport), [local_open(h.config, LOCAL_ID, "r1"), KEEPALIVE])
        self.assertEqual(h.state, State.OPEN_CONFIRM)
        self.assertFalse(h.peer.delay_open_timer.running)

    def test_connect_tcp_fails_delay_open(self):
        """Connect, Event 18 with the DelayOpenTimer running: Active, ConnectRetryTimer on."""
        h, proto, _transport = self.connect_delay_open()
        proto.connectionLost(Failure(ConnectionDone()))
        self.assertEqual(h.state, State.ACTIVE)
        self.assertFalse(h.peer.delay_open_timer.running)
        self.assertTrue(h.peer.connect_retry_timer.running)

    def test_active_tcp_fails_delay_open(self):
        """Active, Event 18: Idle (damped), then a restart after IdleHoldTime."""
        h, proto, _transport = self.active_delay_open()
        proto.connectionLost(Failure(ConnectionDone()))
        self.assertEqual(h.state, State.IDLE)
        self.assertEqual(h.peer.connect_retry_counter, 1)
        self.assertTrue(h.peer.idle_hold_timer.running)
        h.reactor.advance(h.config.idle_hold_time)
        self.assertEqual(h.state, State.ACTIVE)

    def test_stop_in_active_delay_open(self):
        """Active, Event 2 with the DelayOpenTimer running: no NOTIFICATION without OPEN."""
        h, _proto, transport = self.active_delay_open()
        h.peer.stop("bye")
        self.check_closed(h, transport)

    def test_start_ignored_when_running(self):
        """Start events in Connect, Active, OpenSent, OpenConfirm, Established are ignored."""
        for name in ("connect", "active", "open_sent", "open_confirm", "established"):
            with self.subTest(state=name):
                if name == "connect":
                    h = Harness()
                    h.peer.start()
                    transport = StringTransport()
                elif name == "active":
                    h = Harness(neighbor(passive=True))
                    h.peer.start()
                    transport = StringTransport()
                else:
                    h = Harness()
                    _proto, transport = getattr(h, name)()
                before = h.state
                h.peer.start()
                self.assertEqual(h.state, before)
                self.assertEqual(transport.value(), b"")
                self.assertLessEqual(len(h.reactor.tcpClients), 1)

    def test_notification_in_open_sent(self):
        """OpenSent, Event 25: the table answers with FSM Error 5/1 (8.2.2 "any other")."""
        h = Harness()
        proto, transport = h.open_sent()
        proto.dataReceived(notification_bytes(6, 2))
        self.check_closed(h, transport, notification_bytes(5, 1))

    def test_bad_update_in_open_sent(self):
        """OpenSent, Event 28: FSM Error 5/1."""
        h = Harness()
        proto, transport = h.open_sent()
        proto.dataReceived(BAD_UPDATE)
        self.check_closed(h, transport, notification_bytes(5, 1))

    def test_stop_in_open_confirm(self):
        """OpenConfirm, Event 2: Cease 6/2, Idle, ConnectRetryCounter zeroed."""
        h = Harness()
        _proto, transport = h.open_confirm()
        h.peer.stop()
        self.check_closed(h, transport, notification_bytes(6, 2))
        self.assertEqual(h.peer.connect_retry_counter, 0)

    def test_second_open_in_open_confirm(self):
        """OpenConfirm, Event 19 on the same connection: FSM Error 5/2 (RFC 6608)."""
        h = Harness()
        proto, transport = h.open_confirm()
        proto.dataReceived(wire(peer_open()))
        self.check_closed(h, transport, notification_bytes(5, 2))

    def test_bad_open_in_open_confirm(self):
        """OpenConfirm, Event 22: the OPEN error's NOTIFICATION (2/1 data 0004)."""
        h = Harness()
        proto, transport = h.open_confirm()
        proto.dataReceived(BAD_OPEN)
        self.check_closed(h, transport, notification_bytes(2, 1, b"\x00\x04"))

    def test_version_notification_in_open_confirm(self):
        """OpenConfirm, Event 24: Idle, no reply, no ConnectRetryCounter increment."""
        h = Harness()
        proto, transport = h.open_confirm()
        proto.dataReceived(notification_bytes(2, 1, b"\x00\x03"))
        self.check_closed(h, transport)
        self.assertEqual(h.peer.connect_retry_counter, 0)

    def test_bad_update_in_open_confirm(self):
        """OpenConfirm, Event 28: FSM Error 5/2."""
        h = Harness()
        proto, transport = h.open_confirm()
        proto.dataReceived(BAD_UPDATE)
        self.check_closed(h, transport, notification_bytes(5, 2))

    def test_bad_open_in_established(self):
        """Established, Event 22: FSM Error 5/3 and the session goes down."""
        h = Harness()
        proto, transport = h.established()
        proto.dataReceived(BAD_OPEN)
        self.check_closed(h, transport, notification_bytes(5, 3))
        self.assertEqual(len(h.listener.of("down")), 1)

    def test_version_notification_in_established(self):
        """Established, Event 24: session down, no reply."""
        h = Harness()
        proto, transport = h.established()
        proto.dataReceived(notification_bytes(2, 1, b"\x00\x03"))
        self.check_closed(h, transport)
        self.assertEqual(len(h.listener.of("down")), 1)

    def test_stop_in_idle(self):
        """Idle, Event 2: nothing happens."""
        h = Harness()
        h.peer.stop()
        self.assertEqual(h.state, State.IDLE)
        self.assertEqual(h.listener.calls, [])
