"""The next-hop tracker's logic (bgpd.kernel.nexthop.NextHopTracker) on a task.Clock, no kernel."""

from __future__ import annotations

import errno

from twisted.internet import defer
from twisted.internet.task import Clock
from twisted.trial.unittest import SynchronousTestCase

from bgpd.kernel.nexthop import NextHopTracker


def v4(text: str, gw: str | None = None) -> tuple:
    net, plen = text.split("/")
    return 4, int.from_bytes(bytes(map(int, net.split("."))), "big"), int(plen), gw


class FakeRib:
    def __init__(self) -> None:
        self.resolver = None
        self.redecided: list[dict] = []

    def set_resolver(self, fn) -> None:
        self.resolver = fn

    def redecide_next_hops(self, old: dict) -> None:
        self.redecided.append(dict(old))


class TrackerTests(SynchronousTestCase):
    def setUp(self) -> None:
        self.clock = Clock()
        self.rib = FakeRib()
        self.routes = [v4("192.0.2.0/24")]
        self.dumps = 0

        def dump():
            self.dumps += 1
            return list(self.routes)

        self.tracker = NextHopTracker(self.rib, dump, None, 186, self.clock.callLater, None,
                                      lambda fn, *a: defer.maybeDeferred(fn, *a))
        self.moved: list[set] = []
        self.tracker.forwarding_watchers.append(self.moved.append)
        self.successResultOf(self.tracker.start())

    def test_is_the_rib_resolver(self):
        """start() makes the tracker the RIB's resolver, answering from the kernel's routes."""
        self.assertTrue(self.rib.resolver("192.0.2.7"))
        self.assertFalse(self.rib.resolver("198.51.100.7"))

    def test_change_redecides_only_what_changed(self):
        """A resync re-decides the next hops whose answer changed, with their old answer."""
        self.rib.resolver("192.0.2.7")
        self.rib.resolver("198.51.100.7")
        self.routes = [v4("198.51.100.0/24")]
        self.tracker.changed()
        self.clock.advance(self.tracker.debounce)
        self.assertEqual(self.rib.redecided, [{"192.0.2.7": True, "198.51.100.7": False}])

    def test_debounced(self):
        """Many events before the resync make one dump."""
        before = self.dumps
        for _ in range(50):
            self.tracker.changed()
        self.clock.advance(self.tracker.debounce)
        self.assertEqual(self.dumps, before + 1)

    def test_gateway_moves(self):
        """A recursive next hop whose covering route changes gateway is reported to the writer."""
        self.routes = [v4("192.0.2.0/24"), v4("198.51.100.0/24", "192.0.2.9")]
        self.tracker.resync()
        self.assertEqual(self.tracker.forwarding("198.51.100.7"), "192.0.2.9")
        self.routes = [v4("192.0.2.0/24"), v4("198.51.100.0/24", "192.0.2.10")]
        self.tracker.resync()
        self.assertEqual(self.moved, [{"198.51.100.7"}])
        self.assertEqual(self.rib.redecided, [])

    def test_enobufs_resyncs(self):
        """ENOBUFS on the event socket (events lost) asks for a full resync."""
        tracker = self.tracker
        calls: list = []

        class Sock:
            n = 0

            def settimeout(self, t: float) -> None:
                pass

            def recv(self, size: int) -> bytes:
                Sock.n += 1
                if Sock.n == 1:
                    raise OSError(errno.ENOBUFS, "No buffer space available")
                tracker._stop.set()
                raise TimeoutError()

            def close(self) -> None:
                pass

        tracker._open_events = Sock
        tracker._from_thread = calls.append
        tracker._watch()
        self.assertEqual(calls, [tracker.changed])
