"""Session history (bgpd.monitor.history): real PeerFactory state changes, RFC 4271 section 8.

The factory runs on a MemoryReactorClock and reports to a listener that
hands state changes to the history, as the service's bridge does through
``watch_state``.  Reasons: NOTIFICATION received with an RFC 9003 shutdown
communication, hold timer expiry (RFC 4271 6.5), a TCP error; the bound of
the kept events, flap counts, and the structured log line and its JSON form.
"""

from __future__ import annotations

import io
import json
from typing import Any

from twisted.internet.error import ConnectionLost
from twisted.logger import globalLogPublisher
from twisted.python.failure import Failure
from twisted.trial.unittest import SynchronousTestCase

from bgpd.monitor.history import (
    HOLD_TIMER,
    NOTIFICATION_RECEIVED,
    TCP_ERROR,
    SessionHistory,
)
from bgpd.monitor.jsonlog import JsonLineObserver, event_to_json, observer_factory
from bgpd.session.fsm import State
from bgpd.wire.message import encode_message
from bgpd.wire.notification import Notification
from tests.monitor.support import temp_path
from tests.session.test_factory import Harness, RecordingListener, neighbor


class _HistoryListener(RecordingListener):
    """Records like RecordingListener and feeds the history, as RoutingBridge's watchers are fed."""

    def __init__(self, history: SessionHistory) -> None:
        super().__init__()
        self.history = history

    def state_changed(self, peer: Any, old: State, new: State, reason: str) -> None:
        super().state_changed(peer, old, new, reason)
        self.history.state_changed(peer, old, new, reason)


def _harness(size: int = 64, description: str | None = "transit A") -> tuple[Harness, SessionHistory]:
    h = Harness(neighbor(description=description))
    history = SessionHistory(size, wall=h.reactor.seconds)
    h.listener = _HistoryListener(history)
    h.peer.listener = h.listener
    return h, history


class SessionHistoryTests(SynchronousTestCase):
    """What each state change leaves in the history."""

    def test_notification_received_with_shutdown_text(self):
        """A Cease / Administrative Shutdown with an RFC 9003 text is kept with code, names and text."""
        h, history = _harness()
        h.reactor.advance(1000)
        proto, _ = h.established()
        proto.dataReceived(encode_message(Notification.shutdown("maintenance window")))
        events = history.events("192.0.2.2")
        self.assertEqual([e.new for e in events][-1], "Idle")
        down = events[-1]
        self.assertEqual(down.old, "Established")
        self.assertEqual(down.kind, NOTIFICATION_RECEIVED)
        self.assertEqual((down.code, down.subcode), (6, 2))
        self.assertEqual(down.code_name, "Cease / administrative shutdown")
        self.assertEqual(down.shutdown_message, "maintenance window")
        self.assertEqual(down.description, "transit A")
        self.assertEqual(down.time, 1000)
        self.assertEqual(history.flaps("192.0.2.2"), 1)
        self.assertEqual(history.notification_counts("192.0.2.2"), {("received", 6, 2): 1})

    def test_hold_timer_expiry(self):
        """The hold timer's expiry is its own kind, with the Hold Timer Expired NOTIFICATION sent."""
        h, history = _harness()
        h.established()
        h.reactor.advance(91)
        down = history.events("192.0.2.2")[-1]
        self.assertEqual(down.kind, HOLD_TIMER)
        self.assertEqual((down.code, down.subcode), (4, 0))
        self.assertIn("hold timer expired", down.reason)
        self.assertEqual(history.notification_counts("192.0.2.2"), {("sent", 4, 0): 1})

    def test_tcp_error(self):
        """A lost connection is a TCP error with the error's text in the reason."""
        h, history = _harness()
        proto, _ = h.established()
        proto.connectionLost(Failure(ConnectionLost("Connection reset by peer")))
        down = history.events("192.0.2.2")[-1]
        self.assertEqual(down.kind, TCP_ERROR)
        self.assertIn("Connection reset by peer", down.reason)
        self.assertEqual((down.code, down.code_name), (0, ""))

    def test_old_notification_is_not_blamed_again(self):
        """After a NOTIFICATION took a session down, the next session's TCP loss is no NOTIFICATION."""
        h, history = _harness()
        proto, _ = h.established()
        proto.dataReceived(encode_message(Notification(6, 4)))
        h.reactor.advance(600)
        proto, _ = h.established()
        proto.connectionLost(Failure(ConnectionLost("gone")))
        down = history.events("192.0.2.2")[-1]
        self.assertEqual(down.kind, TCP_ERROR)
        self.assertEqual(history.flaps("192.0.2.2"), 2)

    def test_history_is_bounded_flaps_are_not(self):
        """Only the last N events are kept, newest last; the flap count covers every session."""
        h, history = _harness(size=3)
        seen: list = []
        history.watchers.append(seen.append)
        for _ in range(4):
            proto, _ = h.established()
            proto.connectionLost(Failure(ConnectionLost("gone")))
            h.reactor.advance(600)
        events = history.events("192.0.2.2")
        self.assertGreater(len(seen), 3)
        self.assertEqual(events, tuple(seen[-3:]))
        self.assertEqual(history.flaps("192.0.2.2"), 4)
        history.resize(2)
        self.assertEqual(history.events("192.0.2.2"), events[-2:])

    def test_unknown_peer_is_empty(self):
        """A peer never seen has no events and no flaps."""
        history = SessionHistory(4)
        self.assertEqual(history.events("192.0.2.9"), ())
        self.assertEqual(history.flaps("192.0.2.9"), 0)

    def test_size_must_be_positive(self):
        """A history of no events is refused."""
        self.assertRaises(ValueError, SessionHistory, 0)


class LogLineTests(SynchronousTestCase):
    """Each state change is one structured log line; JSON keeps its fields."""

    def setUp(self) -> None:
        self.logged: list[dict] = []
        globalLogPublisher.addObserver(self.logged.append)
        self.addCleanup(globalLogPublisher.removeObserver, self.logged.append)

    def _changes(self) -> list[dict]:
        return [e for e in self.logged if e.get("session_event")]

    def test_one_line_per_change_with_fields(self):
        """Every change logs once, with peer, description, old/new state and the reason's fields."""
        h, history = _harness()
        proto, _ = h.established()
        proto.dataReceived(encode_message(Notification.shutdown("bye")))
        changes = self._changes()
        self.assertEqual(len(changes), len(history.events("192.0.2.2")))
        # No other line repeats the change (the factory leaves it to the history).
        self.assertEqual([e for e in self.logged if "-> {new" in e.get("log_format", "")], changes)
        last = changes[-1]
        self.assertEqual((last["peer"], last["description"], last["old"], last["new"]),
                         ("192.0.2.2", "transit A", "Established", "Idle"))
        self.assertEqual((last["code"], last["subcode"], last["shutdown_message"]), (6, 2, "bye"))
        self.assertEqual(last["log_level"].name, "warn")

    def test_text_line_keeps_the_parsed_form(self):
        """The text is still "peer ADDR OLD -> NEW: reason", what log readers parse, description last."""
        from twisted.logger import formatEvent

        from tests.interop.bgpd_driver import _TRANSITION

        h, _ = _harness()
        h.established()
        text = formatEvent(self._changes()[-1])
        self.assertEqual(text, "peer 192.0.2.2 OPEN_CONFIRM -> ESTABLISHED: KeepAliveMsg [transit A]")
        m = _TRANSITION.search("] " + text)
        self.assertEqual(m.group(1, 2, 3), ("192.0.2.2", "OPEN_CONFIRM", "ESTABLISHED"))

    def test_json_line(self):
        """The JSON form is one object per line with the fields and the formatted text."""
        h, _ = _harness(description=None)
        h.established()
        out = io.StringIO()
        JsonLineObserver(out)(self._changes()[-1])
        line = out.getvalue()
        self.assertTrue(line.endswith("\n"))
        self.assertEqual(line.count("\n"), 1)
        obj = json.loads(line)
        self.assertEqual((obj["peer"], obj["old"], obj["new"]), ("192.0.2.2", "OpenConfirm",
                                                                  "Established"))
        self.assertEqual(obj["level"], "info")
        self.assertEqual(obj["namespace"], "bgpd.monitor.history")
        self.assertIn("peer 192.0.2.2 OPEN_CONFIRM -> ESTABLISHED: KeepAliveMsg", obj["text"])
        self.assertIsInstance(obj["time"], float)

    def test_json_of_odd_values(self):
        """Values JSON cannot hold are written as their repr; a bad format keeps the line."""
        obj = json.loads(event_to_json({"log_format": "{x", "log_time": 1.0, "x": object(),
                                        "b": b"\x01", "t": (1, 2)}))
        self.assertTrue(obj["x"].startswith("<object"))
        self.assertEqual(obj["t"], [1, 2])
        self.assertEqual(obj["b"], "b'\\x01'")

    def test_observer_factory_targets(self):
        """twistd's logfile rules: '-' or no file with --nodaemon is stdout, else the file."""
        import sys

        self.assertIs(observer_factory("-", True)().out, sys.stdout)
        self.assertIs(observer_factory(None, True)().out, sys.stdout)
        path = temp_path(self)
        obs = observer_factory(path, False)()
        obs({"log_format": "hello {who}", "who": "world", "log_time": 2.0})
        obs.out.close()
        with open(path, encoding="utf-8") as f:
            self.assertEqual(json.loads(f.read())["text"], "hello world")
