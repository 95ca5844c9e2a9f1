"""Tests for bgpd.session.tap: what a session shows BMP and MRT (RFC 7854 4.6, 4.9, 4.10)."""

from __future__ import annotations

from typing import Any

from twisted.internet.error import ConnectionDone
from twisted.python.failure import Failure
from twisted.trial.unittest import SynchronousTestCase

from bgpd.session.tap import IN, OUT, DownReason, FanoutTap, PeerDown, PeerUp, SessionTap
from bgpd.wire.message import KEEPALIVE_BYTES
from bgpd.wire.notification import Notification
from tests.session.test_factory import (
    Harness,
    notification_bytes,
    peer_open,
    update_bytes,
    wire,
)


class RecordingTap:
    """A SessionTap that keeps every call."""

    def __init__(self) -> None:
        self.messages: list[tuple[str, float, bytes]] = []
        self.ups: list[PeerUp] = []
        self.downs: list[PeerDown] = []

    def message(self, peer: Any, direction: str, timestamp: float, data: bytes) -> None:
        self.messages.append((direction, timestamp, data))

    def session_up(self, peer: Any, up: PeerUp) -> None:
        self.ups.append(up)

    def session_down(self, peer: Any, down: PeerDown) -> None:
        self.downs.append(down)

    def of(self, direction: str, msg_type: int) -> list[bytes]:
        return [d for di, _t, d in self.messages if di == direction and d[18] == msg_type]


def tapped() -> tuple[Harness, RecordingTap]:
    h = Harness()
    tap = RecordingTap()
    h.peer.set_message_tap(tap)
    return h, tap


class MessageTapTests(SynchronousTestCase):
    """Raw messages in both directions, with the reactor's time."""

    def test_interface(self):
        """The recording tap and the fan-out both provide the declared interface."""
        self.assertIsInstance(RecordingTap(), SessionTap)
        self.assertIsInstance(FanoutTap([]), SessionTap)

    def test_received_update_bytes_exact(self):
        """A received UPDATE reaches the tap byte for byte, stamped with the clock."""
        h, tap = tapped()
        proto, _ = h.established()
        h.reactor.advance(12.5)
        data = update_bytes(("198.51.100.0/24", "203.0.113.0/24"))
        proto.dataReceived(data)
        self.assertEqual(tap.of(IN, 2), [data])
        self.assertEqual([t for d, t, m in tap.messages if m == data], [12.5])

    def test_opens_both_ways(self):
        """The OPEN we sent and the one received are reported, as on the wire."""
        h, tap = tapped()
        proto, transport = h.established()
        self.assertEqual(tap.of(IN, 1), [wire(peer_open())])
        self.assertEqual(len(tap.of(OUT, 1)), 1)
        self.assertEqual(tap.of(OUT, 1)[0], proto.sent_open_raw)
        self.assertIn(KEEPALIVE_BYTES, tap.of(OUT, 4))

    def test_sent_updates_reported(self):
        """UPDATEs the RIB sends through the factory are reported outbound."""
        h, tap = tapped()
        h.established()
        data = update_bytes()
        h.peer.send([data])
        self.assertEqual(tap.of(OUT, 2), [data])

    def test_no_tap_no_calls(self):
        """Removing the tap stops the reports (the protocol forgets it too)."""
        h, tap = tapped()
        proto, _ = h.established()
        h.peer.set_message_tap(None)
        proto.dataReceived(update_bytes())
        self.assertEqual(tap.of(IN, 2), [])
        self.assertIsNone(proto.tap)

    def test_fanout(self):
        """FanoutTap passes each call to every tap."""
        a, b = RecordingTap(), RecordingTap()
        h = Harness()
        h.peer.set_message_tap(FanoutTap([a, b]))
        h.established()
        self.assertEqual(a.messages, b.messages)
        self.assertEqual(len(a.ups), 1)
        self.assertEqual(len(b.ups), 1)


class PeerUpTests(SynchronousTestCase):
    """The Established record: addresses, ports and both OPENs."""

    def test_peer_up_record(self):
        """session_up carries both OPENs whole and the connection's endpoints."""
        h, tap = tapped()
        proto, _ = h.established()
        self.assertEqual(len(tap.ups), 1)
        up = tap.ups[0]
        self.assertEqual(up.received_open, wire(peer_open()))
        self.assertEqual(up.sent_open, wire(h.peer.local_open))
        self.assertEqual(up.remote_address, "192.0.2.2")
        self.assertEqual(up.remote_port, 179)
        self.assertEqual(up.info.peer_asn, 65002)
        self.assertIs(h.peer.peer_up, up)

    def test_peer_up_before_listener(self):
        """The tap hears of the session before the RIB does (its UPDATEs follow)."""
        order: list[str] = []
        h = Harness()

        class Tap(RecordingTap):
            def session_up(self, peer: Any, up: PeerUp) -> None:
                order.append("tap")

        h.peer.set_message_tap(Tap())
        listener = h.peer.listener
        real = listener.session_established

        def established(peer: Any, info: Any) -> None:
            order.append("listener")
            real(peer, info)

        listener.session_established = established
        h.established()
        self.assertEqual(order, ["tap", "listener"])

    def test_kept_without_tap(self):
        """The record is kept when nobody listens: a collector connecting later needs it."""
        h = Harness()
        h.established()
        self.assertIsNotNone(h.peer.peer_up)
        self.assertEqual(h.peer.peer_up.received_open, wire(peer_open()))


class PeerDownTests(SynchronousTestCase):
    """RFC 7854 4.9 reasons from the way the session ended."""

    def test_local_notification(self):
        """An administrative stop: reason 1 with the Cease we sent, whole."""
        h, tap = tapped()
        h.established()
        h.peer.stop("maintenance")
        (down,) = tap.downs
        self.assertEqual(down.reason, DownReason.LOCAL_NOTIFICATION)
        sent = Notification.shutdown("maintenance")
        self.assertEqual(down.notification, wire(sent))
        self.assertIsNone(h.peer.peer_up)

    def test_hold_timer(self):
        """Hold timer expiry: reason 1 with the Hold Timer Expired NOTIFICATION."""
        h, tap = tapped()
        h.established()
        h.reactor.advance(200)
        (down,) = tap.downs
        self.assertEqual(down.reason, DownReason.LOCAL_NOTIFICATION)
        self.assertEqual(down.notification, notification_bytes(4, 0))

    def test_remote_notification(self):
        """A NOTIFICATION from the peer: reason 3 with its bytes."""
        h, tap = tapped()
        proto, _ = h.established()
        data = notification_bytes(6, 2, b"\x03bye")
        proto.dataReceived(data)
        (down,) = tap.downs
        self.assertEqual(down.reason, DownReason.REMOTE_NOTIFICATION)
        self.assertEqual(down.notification, data)

    def test_remote_closed(self):
        """The connection went away without a NOTIFICATION: reason 4."""
        h, tap = tapped()
        proto, _ = h.established()
        proto.connectionLost(Failure(ConnectionDone()))
        (down,) = tap.downs
        self.assertEqual(down.reason, DownReason.REMOTE_NO_NOTIFICATION)
        self.assertEqual(down.notification, b"")

    def test_deconfigured(self):
        """The peer removed from the config: reason 5."""
        h, tap = tapped()
        h.established()
        h.peer.deconfigure()
        (down,) = tap.downs
        self.assertEqual(down.reason, DownReason.DECONFIGURED)
        self.assertIsNotNone(h.peer.last_down)
