"""Tests for bgpd.session.protocol, and the message events it raises in a PeerFactory.

Framing (RFC 4271 4.1), Message Header Errors (6.1), UPDATE errors (6.3) and
RFC 7606 treat-as-withdraw, NOTIFICATIONs received (6.4), unexpected messages
in OpenSent and OpenConfirm (RFC 6608 subcodes), and ROUTE-REFRESH length
errors (RFC 7313 5).
"""

from __future__ import annotations

from twisted.internet.address import IPv4Address
from twisted.internet.error import ConnectionDone
from twisted.internet.testing import StringTransport
from twisted.python.failure import Failure
from twisted.trial.unittest import SynchronousTestCase

from bgpd.session.fsm import State
from bgpd.session.protocol import BGPProtocol
from bgpd.wire.attributes import PathAttributes
from bgpd.wire.errors import NotificationError, Outcome
from bgpd.wire.message import KEEPALIVE, KEEPALIVE_BYTES, Keepalive, encode_message
from bgpd.wire.negotiated import Negotiated
from bgpd.wire.notification import Notification
from bgpd.wire.update import Update
from tests.session.test_factory import (
    PEER_ADDR,
    Harness,
    notification_bytes,
    peer_open,
    update_bytes,
    wire,
)

MARKER = b"\xff" * 16


def message(msg_type: int, body: bytes) -> bytes:
    return MARKER + (19 + len(body)).to_bytes(2, "big") + bytes((msg_type,)) + body


class FakeController:
    """Records what a BGPProtocol reports."""

    def __init__(self) -> None:
        self.events: list[tuple] = []
        self.runs: list[list] = []

    def connection_made(self, proto: BGPProtocol) -> None:
        self.events.append(("made",))

    def bytes_received(self, proto: BGPProtocol) -> None:
        self.events.append(("bytes",))

    def message_received(self, proto: BGPProtocol, msg: object) -> None:
        self.events.append(("message", msg))

    def updates_decoded(self, proto: BGPProtocol, updates: list) -> None:
        # A run of UPDATEs is recorded as its messages, plus the run itself.
        self.runs.append(list(updates))
        for update in updates:
            self.events.append(("message", update))

    def protocol_error(self, proto: BGPProtocol, err: NotificationError, header: bool = False,
                       msg_type: int | None = None) -> None:
        self.events.append(("error", err.code, err.subcode, header, msg_type))

    def connection_lost(self, proto: BGPProtocol, reason: Failure | None) -> None:
        self.events.append(("lost",))

    def messages(self) -> list:
        return [e[1] for e in self.events if e[0] == "message"]


def connected() -> tuple[BGPProtocol, StringTransport, FakeController]:
    controller = FakeController()
    proto = BGPProtocol(controller, outbound=True)
    transport = StringTransport(peerAddress=IPv4Address("TCP", PEER_ADDR, 179))
    proto.makeConnection(transport)
    return proto, transport, controller


class ProtocolTests(SynchronousTestCase):
    """BGPProtocol alone: framing, decoding, writing, closing."""

    def test_connection_made_reported(self):
        """connectionMade tells the controller."""
        _proto, _transport, controller = connected()
        self.assertEqual(controller.events, [("made",)])

    def test_split_anywhere(self):
        """Messages split at every byte boundary are reassembled in order."""
        proto, _transport, controller = connected()
        data = wire(peer_open(), KEEPALIVE) + update_bytes()
        for i in range(len(data)):
            proto.dataReceived(data[i:i + 1])
        msgs = controller.messages()
        self.assertEqual([type(m) for m in msgs], [type(peer_open()), Keepalive, Update])
        self.assertEqual(msgs[0], peer_open())
        self.assertEqual(proto.messages_in, 3)

    def test_several_in_one_chunk(self):
        """Several messages in one chunk are all delivered."""
        proto, _transport, controller = connected()
        proto.dataReceived(KEEPALIVE_BYTES * 3)
        self.assertEqual(controller.messages(), [KEEPALIVE] * 3)
        self.assertEqual(controller.events.count(("bytes",)), 1)

    def test_update_runs(self):
        """Consecutive UPDATEs of one read go to the controller as one run; another
        message type ends the run, and the order of everything is kept."""
        proto, _transport, controller = connected()
        u = [update_bytes((f"198.51.100.{i}/32",)) for i in range(3)]
        proto.dataReceived(u[0] + u[1] + KEEPALIVE_BYTES + u[2])
        msgs = controller.messages()
        self.assertEqual([type(m) for m in msgs], [Update, Update, Keepalive, Update])
        self.assertEqual(controller.runs, [msgs[:2], msgs[3:]])
        self.assertEqual(proto.messages_in, 4)

    def test_run_before_body_error(self):
        """The UPDATEs before one that does not decode are delivered, then the error."""
        proto, _transport, controller = connected()
        good = update_bytes(("198.51.100.0/24",))
        proto.dataReceived(good * 2 + message(2, b"\x00\xff\x00\x00") + good)
        self.assertEqual([len(r) for r in controller.runs], [2])
        self.assertEqual(controller.events[-1], ("error", 3, 1, False, 2))

    def test_header_error_reported(self):
        """A bad marker is reported as a header error."""
        proto, _transport, controller = connected()
        proto.dataReceived(b"\x00" * 19)
        self.assertEqual(controller.events[-1], ("error", 1, 1, True, None))

    def test_body_error_reported(self):
        """An undecodable body is reported with its message type, and decoding stops."""
        proto, _transport, controller = connected()
        proto.dataReceived(message(2, b"\x00\xff\x00\x00") + KEEPALIVE_BYTES)
        self.assertEqual(controller.events[-1], ("error", 3, 1, False, 2))
        self.assertEqual(controller.messages(), [])

    def test_nothing_after_close(self):
        """Once closing, received bytes are ignored and nothing more is written."""
        proto, transport, controller = connected()
        proto.close()
        self.assertTrue(transport.disconnecting)
        proto.dataReceived(KEEPALIVE_BYTES)
        proto.send(KEEPALIVE)
        proto.send_keepalive()
        proto.send_raw([KEEPALIVE_BYTES])
        proto.notify_and_close(Notification(6, 2))
        self.assertEqual(controller.messages(), [])
        self.assertEqual(transport.value(), b"")

    def test_stop_after_closing_message(self):
        """Messages after one that made the controller close are not delivered."""
        proto, _transport, controller = connected()

        def closing(p: BGPProtocol, msg: object) -> None:
            controller.events.append(("message", msg))
            p.close()

        controller.message_received = closing
        proto.dataReceived(KEEPALIVE_BYTES * 2)
        self.assertEqual(controller.messages(), [KEEPALIVE])

    def test_notify_and_close(self):
        """notify_and_close writes the NOTIFICATION, then closes."""
        proto, transport, _controller = connected()
        proto.notify_and_close(Notification(6, 4, b"\x02hi"))
        self.assertEqual(transport.value(), notification_bytes(6, 4, b"\x02hi"))
        self.assertTrue(transport.disconnecting)
        self.assertEqual(proto.messages_out, 1)

    def test_send_raw_and_counters(self):
        """send_raw writes pre-packed messages as they are and counts them."""
        proto, transport, _controller = connected()
        proto.send_raw([KEEPALIVE_BYTES, update_bytes()])
        self.assertEqual(transport.value(), KEEPALIVE_BYTES + update_bytes())
        self.assertEqual(proto.messages_out, 2)

    def test_open_sent_flag(self):
        """open_sent records that our OPEN went out on this connection."""
        proto, _transport, _controller = connected()
        proto.send(KEEPALIVE)
        self.assertFalse(proto.open_sent)
        proto.send(peer_open())
        self.assertTrue(proto.open_sent)

    def test_set_negotiated_extended(self):
        """Extended messages raise the framer's limit to 65535 (RFC 8654)."""
        proto, _transport, controller = connected()
        big = message(2, b"\x00\x00\x00\x00" + b"\x00" * 5000)
        proto.dataReceived(big)
        self.assertEqual(controller.events[-1], ("error", 1, 2, True, None))
        proto, _transport, controller = connected()
        proto.set_negotiated(Negotiated(extended_message=True))
        self.assertEqual(proto.framer.max_len, 65535)

    def test_set_negotiated_local_address(self):
        """The connection's own address reaches the decoder: a NEXT_HOP equal to it is refused."""
        proto, transport, controller = connected()
        proto.set_negotiated(Negotiated())
        ours = transport.getHost().host
        self.assertEqual(proto.negotiated.local_addresses, frozenset({ours}))
        # RFC 4271 6.3: logged and ignored (treat-as-withdraw), no NOTIFICATION.
        attrs = PathAttributes(as_path=((2, (65001,)),), next_hop=ours)
        proto.dataReceived(encode_message(Update([], attrs, [b"\x18\xc6\x33\x64"])))
        [update] = controller.messages()
        self.assertTrue(update.treat_as_withdraw)
        self.assertEqual([(p.outcome, p.attr_type, p.subcode) for p in update.problems],
                         [(Outcome.TREAT_AS_WITHDRAW, 3, 8)])

    def test_connection_lost(self):
        """connectionLost is reported and marks the protocol closing."""
        proto, _transport, controller = connected()
        proto.connectionLost(Failure(ConnectionDone()))
        self.assertEqual(controller.events[-1], ("lost",))
        self.assertTrue(proto.closing)

    def test_peer_address_and_repr(self):
        """peer_address is the transport's remote host."""
        proto, _transport, _controller = connected()
        self.assertEqual(proto.peer_address, PEER_ADDR)
        self.assertIn("out", repr(proto))
        self.assertIsNone(BGPProtocol().peer_address)

    def test_abort(self):
        """abort() aborts the transport."""
        proto, transport, _controller = connected()
        proto.abort()
        self.assertTrue(proto.closing)
        self.assertTrue(transport.disconnecting)


class HeaderErrorTests(SynchronousTestCase):
    """Message Header Errors through the factory (RFC 4271 6.1)."""

    def test_bad_marker_open_sent(self):
        """A bad marker in OpenSent: 1/1, then Idle."""
        h = Harness()
        proto, transport = h.open_sent()
        proto.dataReceived(b"\x00" * 16 + b"\x00\x13\x04")
        self.assertEqual(transport.value(), notification_bytes(1, 1))
        self.assertTrue(transport.disconnecting)
        self.assertEqual(h.state, State.IDLE)

    def test_bad_length_established(self):
        """A bad length in Established: 1/2 with the length, session down."""
        h = Harness()
        proto, transport = h.established()
        proto.dataReceived(MARKER + b"\x00\x12\x04")
        self.assertEqual(transport.value(), notification_bytes(1, 2, b"\x00\x12"))
        self.assertEqual(h.state, State.IDLE)
        self.assertEqual(len(h.listener.of("down")), 1)

    def test_bad_length_keepalive(self):
        """A KEEPALIVE that is not 19 octets: 1/2."""
        h = Harness()
        proto, transport = h.established()
        proto.dataReceived(message(4, b"\x00"))
        self.assertEqual(transport.value(), notification_bytes(1, 2, b"\x00\x14"))

    def test_bad_type(self):
        """An unknown message type: 1/3 with the type."""
        h = Harness()
        proto, transport = h.established()
        proto.dataReceived(message(9, b""))
        self.assertEqual(transport.value(), notification_bytes(1, 3, b"\x09"))
        self.assertEqual(h.state, State.IDLE)

    def test_header_error_open_confirm(self):
        """A header error in OpenConfirm: 1/1, no session_down (never established)."""
        h = Harness()
        proto, transport = h.open_confirm()
        proto.dataReceived(b"\x01" * 19)
        self.assertEqual(transport.value(), notification_bytes(1, 1))
        self.assertEqual(h.state, State.IDLE)
        self.assertEqual(h.listener.of("down"), [])


class UpdateErrorTests(SynchronousTestCase):
    """UPDATE errors (RFC 4271 6.3) and RFC 7606 outcomes in Established."""

    def test_update_error_session_down(self):
        """An UPDATE whose withdrawn length overruns: 3/1, session down with the reason."""
        h = Harness()
        proto, transport = h.established()
        proto.dataReceived(message(2, b"\x00\xff\x00\x00"))
        self.assertEqual(transport.value(), notification_bytes(3, 1))
        self.assertTrue(transport.disconnecting)
        self.assertEqual(h.state, State.IDLE)
        [(_, reason, _)] = h.listener.of("down")
        self.assertIn("withdrawn routes length", reason)
        self.assertEqual(h.listener.of("update"), [])

    def test_attribute_list_overrun(self):
        """Total path attribute length past the end: 3/1."""
        h = Harness()
        proto, transport = h.established()
        proto.dataReceived(message(2, b"\x00\x00\x00\x40"))
        self.assertEqual(transport.value(), notification_bytes(3, 1))

    def test_treat_as_withdraw_keeps_session(self):
        """An UPDATE with a bad ORIGIN is treated as withdraw: delivered with problems, up."""
        attrs = bytes.fromhex("40010105" "40020602010000fdea" "400304c0000202")
        body = b"\x00\x00" + len(attrs).to_bytes(2, "big") + attrs + bytes.fromhex("18c63364")
        h = Harness()
        proto, transport = h.established()
        proto.dataReceived(message(2, body))
        self.assertEqual(h.state, State.ESTABLISHED)
        self.assertEqual(transport.value(), b"")
        [(_, update)] = h.listener.of("update")
        self.assertTrue(update.treat_as_withdraw)
        self.assertEqual([p.outcome for p in update.problems], [Outcome.TREAT_AS_WITHDRAW])
        self.assertEqual(update.problems[0].subcode, 6)

    def test_nlri_without_attributes(self):
        """NLRI without any path attribute: treat-as-withdraw too (RFC 7606)."""
        h = Harness()
        proto, _transport = h.established()
        proto.dataReceived(message(2, bytes.fromhex("0000" "0000" "18c63364")))
        self.assertEqual(h.state, State.ESTABLISHED)
        [(_, update)] = h.listener.of("update")
        self.assertTrue(update.treat_as_withdraw)

    def test_good_update_delivered(self):
        """A good UPDATE is delivered and counted."""
        h = Harness()
        proto, _transport = h.established()
        proto.dataReceived(update_bytes(("198.51.100.0/24", "203.0.113.0/24")))
        [(_, update)] = h.listener.of("update")
        self.assertEqual(len(update.nlri), 2)
        self.assertEqual(update.problems, ())
        self.assertEqual(h.peer.updates_received, 1)

    def test_update_run_delivered(self):
        """Several UPDATEs in one read: each delivered in order and counted, the
        hold timer restarted (RFC 4271 8.2.2, Established, UpdateMsg)."""
        h = Harness()
        proto, _transport = h.established()
        h.reactor.advance(5)
        prefixes = [f"198.51.100.{i}/32" for i in range(4)]
        proto.dataReceived(b"".join(update_bytes((p,)) for p in prefixes))
        got = [u for _, u in h.listener.of("update")]
        self.assertEqual([len(u.nlri) for u in got], [1, 1, 1, 1])
        # In the order sent: 198.51.100.0/32 first (wire form: length, then the octets).
        self.assertEqual([u.nlri[0][-1] for u in got], [0, 1, 2, 3])
        self.assertEqual(h.peer.updates_received, 4)
        self.assertEqual(h.peer._hold_base, 5)
        self.assertEqual(h.state, State.ESTABLISHED)

    def test_route_refresh_length_error(self):
        """A ROUTE-REFRESH of the wrong length: 7/1 with the message (RFC 7313 5)."""
        h = Harness()
        proto, transport = h.established()
        bad = message(5, b"\x00\x01\x00\x01\x00")
        proto.dataReceived(bad)
        self.assertEqual(transport.value(), notification_bytes(7, 1, bad))
        self.assertEqual(h.state, State.IDLE)


class NotificationReceivedTests(SynchronousTestCase):
    """NOTIFICATIONs from the peer (RFC 4271 6.4, RFC 9003)."""

    def test_in_established(self):
        """A NOTIFICATION in Established: session down with its description; none sent back."""
        h = Harness()
        proto, transport = h.established()
        proto.dataReceived(notification_bytes(6, 2, b"\x05maint"))
        self.assertEqual(transport.value(), b"")
        self.assertTrue(transport.disconnecting)
        self.assertEqual(h.state, State.IDLE)
        [(_, reason, graceful)] = h.listener.of("down")
        self.assertIn("NOTIFICATION received", reason)
        self.assertIn('"maint"', reason)
        self.assertFalse(graceful)
        self.assertEqual(h.peer.last_notification_received, Notification(6, 2, b"\x05maint"))

    def test_in_open_confirm(self):
        """A NOTIFICATION in OpenConfirm: Idle, nothing sent back."""
        h = Harness()
        proto, transport = h.open_confirm()
        proto.dataReceived(notification_bytes(6, 5))
        self.assertEqual(transport.value(), b"")
        self.assertEqual(h.state, State.IDLE)

    def test_version_error_open_sent(self):
        """A version error in OpenSent: Idle without a reply or a counter increment."""
        h = Harness()
        proto, transport = h.open_sent()
        proto.dataReceived(notification_bytes(2, 1, b"\x00\x03"))
        self.assertEqual(transport.value(), b"")
        self.assertEqual(h.state, State.IDLE)
        self.assertEqual(h.peer.connect_retry_counter, 0)

    def test_graceful_not_after_notification(self):
        """A NOTIFICATION makes the down non-graceful even with GR (RFC 4724)."""
        from bgpd.wire.capabilities import GracefulRestart, Multiprotocol

        h = Harness()
        proto, _transport = h.established(peer_open(caps=(Multiprotocol(1, 1),
                                                          GracefulRestart(0, 120, ()))))
        proto.dataReceived(notification_bytes(6, 2))
        [(_, _reason, graceful)] = h.listener.of("down")
        self.assertFalse(graceful)


class UnexpectedMessageTests(SynchronousTestCase):
    """Messages the state does not expect: FSM Error (RFC 6608 subcodes)."""

    def test_keepalive_in_open_sent(self):
        """A KEEPALIVE in OpenSent: 5/1."""
        h = Harness()
        proto, transport = h.open_sent()
        proto.dataReceived(KEEPALIVE_BYTES)
        self.assertEqual(transport.value(), notification_bytes(5, 1))
        self.assertEqual(h.state, State.IDLE)

    def test_update_in_open_sent(self):
        """An UPDATE in OpenSent: 5/1."""
        h = Harness()
        proto, transport = h.open_sent()
        proto.dataReceived(update_bytes())
        self.assertEqual(transport.value(), notification_bytes(5, 1))

    def test_update_in_open_confirm(self):
        """An UPDATE in OpenConfirm: 5/2."""
        h = Harness()
        proto, transport = h.open_confirm()
        proto.dataReceived(update_bytes())
        self.assertEqual(transport.value(), notification_bytes(5, 2))
        self.assertEqual(h.state, State.IDLE)
        self.assertEqual(h.listener.of("update"), [])

    def test_open_in_established(self):
        """An OPEN on the Established connection ends it with FSM Error 5/3 (RFC 6608)."""
        h = Harness()
        proto, transport = h.established()
        proto.dataReceived(encode_message(peer_open()))
        self.assertEqual(transport.value(), notification_bytes(5, 3))
        self.assertTrue(transport.disconnecting)
        self.assertEqual(h.state, State.IDLE)
        [(_, reason, _)] = h.listener.of("down")
        self.assertIn("unexpected OPEN in Established", reason)
