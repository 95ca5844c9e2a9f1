"""Several caches (RFC 8210 section 10): the most preferred reachable one, failover, failback, expiry."""

from __future__ import annotations

from twisted.internet.testing import MemoryReactorClock
from twisted.logger import LogLevel, globalLogPublisher
from twisted.trial.unittest import SynchronousTestCase

from bgpd.config import RpkiConfig, parse_config
from bgpd.rpki import pdu as P
from bgpd.rpki.rtr import CONNECTING, DOWN, IDLE
from bgpd.rpki.service import RpkiService, cache_settings
from bgpd.rpki.testing import CacheServer, RecordingSink

from .helpers import Rig, vrp

A = vrp("192.0.2.0/24")
B = vrp("198.51.100.0/24", 24, 64501)
C = vrp("2001:db8::/32", 48, 64502)


class Three:
    """Caches one (preference 1), two (2), three (3), each with its own test cache, one sink."""

    def __init__(self) -> None:
        self.reactor = MemoryReactorClock()
        self.sink = RecordingSink()
        self.servers = {"one": CacheServer([A], session_id=1, timers=(60, 30, 900)),
                        "two": CacheServer([B], session_id=2, timers=(60, 30, 900)),
                        "three": CacheServer([C], session_id=3, timers=(60, 30, 900))}
        self.rigs = {name: Rig(name, server=srv, sink=self.sink, reactor=self.reactor, preference=i + 1)
                     for i, (name, srv) in enumerate(self.servers.items())}
        self.service = RpkiService(RpkiConfig(), self.sink, self.reactor,
                                   factories=[r.factory for r in self.rigs.values()])
        self.service.startService()

    def attempts(self, name: str) -> int:
        return self.rigs[name].attempts()

    def state(self, name: str) -> str:
        return self.rigs[name].factory.state

    def up(self, name: str) -> None:
        self.rigs[name].connect()

    def fail(self, name: str) -> None:
        self.rigs[name].fail()

    def down(self, name: str) -> None:
        self.rigs[name].link.lose()

    def active(self) -> str | None:
        return self.service.active.settings.name if self.service.active else None


class FailoverTests(SynchronousTestCase):
    """Preferred goes down and comes back; the data moves at End of Data, never before."""

    def test_starts_with_most_preferred_only(self) -> None:
        """At start only the most preferred cache is tried."""
        t = Three()
        self.assertEqual((t.attempts("one"), t.attempts("two"), t.attempts("three")), (1, 0, 0))
        t.up("one")
        self.assertEqual(t.active(), "one")
        self.assertEqual(t.sink.data, {"one": {A}})

    def test_next_tried_after_failure(self) -> None:
        """When the preferred cannot be reached, the next is tried; the third waits."""
        t = Three()
        t.fail("one")
        self.assertEqual((t.attempts("two"), t.attempts("three")), (1, 0))
        t.up("two")
        self.assertEqual(t.active(), "two")
        self.assertEqual(t.state("three"), IDLE)
        self.assertEqual(t.state("one"), DOWN)  # still retried

    def test_no_data_tries_the_next(self) -> None:
        """The preferred cache has no data yet: the next one is used; the first takes over once loaded."""
        t = Three()
        t.servers["one"].no_data = True
        t.up("one")
        self.assertEqual(t.attempts("two"), 1)
        t.up("two")
        self.assertEqual(t.active(), "two")
        t.servers["one"].no_data = False
        t.reactor.advance(30)  # one's Retry (the default timers until it has sent data: 600)
        t.rigs["one"].link.pump()
        self.assertEqual(t.active(), "two")
        t.reactor.advance(600 - 30)
        t.rigs["one"].link.pump()
        self.assertEqual(t.active(), "one")
        self.assertEqual(t.sink.data, {"one": {A}})

    def test_failover_and_failback(self) -> None:
        """One down -> two takes over at its End of Data; one back -> one takes over, two dropped."""
        t = Three()
        t.up("one")
        t.down("one")
        # Its data stays while two connects.
        self.assertEqual(t.sink.data, {"one": {A}})
        self.assertEqual(t.attempts("two"), 1)
        t.up("two")
        self.assertEqual(t.active(), "two")
        self.assertEqual(t.sink.data, {"two": {B}})
        self.assertEqual(t.sink.calls[-1], ("drop", "one"))
        # one keeps being retried; when it is back and in sync it takes over.
        t.reactor.advance(1)
        self.assertEqual(t.state("one"), CONNECTING)
        t.up("one")
        self.assertEqual(t.active(), "one")
        self.assertEqual(t.sink.data, {"one": {A}})
        self.assertEqual(t.state("two"), IDLE)
        self.assertTrue(t.rigs["two"].link.ct.disconnecting)

    def test_third_when_two_fail(self) -> None:
        """With one and two unreachable, three is used; then two comes back and is preferred."""
        t = Three()
        t.fail("one")
        t.fail("two")
        self.assertEqual(t.attempts("three"), 1)
        t.up("three")
        self.assertEqual(t.active(), "three")
        t.reactor.advance(2)
        self.assertEqual(t.state("two"), CONNECTING)
        t.up("two")
        self.assertEqual(t.active(), "two")
        self.assertEqual(t.sink.data, {"two": {B}})
        self.assertEqual(t.state("three"), IDLE)

    def test_next_after_failback_gets_first_try(self) -> None:
        """A cache that failed, then was stopped by a failback, is tried first next time; the third waits."""
        t = Three()
        t.fail("one")
        t.fail("two")
        self.assertEqual(t.attempts("three"), 1)
        t.reactor.advance(1)
        t.up("one")
        self.assertEqual((t.state("two"), t.state("three")), (IDLE, IDLE))
        t.down("one")
        self.assertEqual((t.attempts("two"), t.attempts("three")), (3, 1))
        self.assertEqual(t.state("two"), CONNECTING)

    def test_expiry_of_active_without_replacement(self) -> None:
        """With every cache gone, the data in use is dropped at Expire: routes become NotFound."""
        t = Three()
        t.up("one")
        t.down("one")
        for _ in range(100):
            for name in ("one", "two", "three"):
                if t.state(name) == CONNECTING:
                    t.fail(name)
            t.reactor.advance(10)
            if t.reactor.seconds() >= 900:
                break
        self.assertEqual(t.sink.data, {})
        self.assertIsNone(t.active())
        self.assertIn(("drop", "one"), t.sink.calls)

    def test_session_id_mismatch_flushes_the_active_cache(self) -> None:
        """The cache in use names another Session ID: its data is flushed, it is not in use until reloaded."""
        t = Three()
        t.up("one")
        link = t.rigs["one"].link
        link.feed(P.SerialNotify(1, 99, 7))
        self.assertEqual(t.sink.data, {})
        self.assertIsNone(t.active())
        self.assertFalse(t.service.status()[0].active)
        link.lose()
        t.reactor.advance(0)
        # Reconnected at once (no back-off): one reloads and is in use again.
        self.assertEqual(t.attempts("one"), 2)
        t.up("one")
        self.assertEqual(t.active(), "one")
        self.assertEqual(t.sink.data, {"one": {A}})

    def test_status(self) -> None:
        """status(): every cache, preferred and active flags, counts, serial, session."""
        t = Three()
        t.up("one")
        one, two, three = t.service.status()
        self.assertTrue(one.preferred and one.active)
        self.assertFalse(two.preferred or two.active)
        self.assertEqual((one.status.state, one.status.serial, one.status.session_id,
                          one.status.ipv4_vrps), ("connected", 1, 1, 1))
        self.assertEqual(three.status.state, "idle")

    def test_one_log_line_per_step(self) -> None:
        """Failover logs name the cache, address, serial and session id."""
        lines: list[str] = []

        def observer(event: dict) -> None:
            if event.get("log_level") in (LogLevel.info, LogLevel.warn):
                from twisted.logger import formatEvent

                lines.append(formatEvent(event))

        globalLogPublisher.addObserver(observer)
        self.addCleanup(globalLogPublisher.removeObserver, observer)
        t = Three()
        t.up("one")
        t.down("one")
        t.up("two")
        using = [ln for ln in lines if ln.startswith("rpki: using cache")]
        self.assertEqual(len(using), 2, lines)
        self.assertIn("two (192.0.2.1:323), serial 1 session 2", using[1])
        self.assertIn("instead of one", using[1])


class ConfigTests(SynchronousTestCase):
    """The [rpki] section becomes the client's settings."""

    def test_reload_names_what_waits_for_restart(self) -> None:
        """SIGHUP with changed caches keeps the running ones and logs the names that changed."""
        base = '[bgp]\nlocal_as = 65000\nrouter_id = "192.0.2.1"\n[rpki]\n'
        one = '[[rpki.cache]]\nname = "a"\naddress = "192.0.2.2"\n'
        old = parse_config(base + one).rpki
        new = parse_config(base + one.replace("192.0.2.2", "192.0.2.3")
                           + '[[rpki.cache]]\nname = "b"\naddress = "192.0.2.4"\n').rpki
        assert old is not None and new is not None
        svc = RpkiService(old, RecordingSink(), MemoryReactorClock())
        lines: list[str] = []

        def observer(event: dict) -> None:
            from twisted.logger import formatEvent

            lines.append(formatEvent(event))

        globalLogPublisher.addObserver(observer)
        self.addCleanup(globalLogPublisher.removeObserver, observer)
        self.assertTrue(svc.reload(new))
        self.assertFalse(svc.reload(old))
        self.assertEqual([c.settings.address for c in svc.caches], ["192.0.2.2"])
        self.assertTrue(any("changed (a, b)" in ln for ln in lines), lines)

    def test_service_from_config(self) -> None:
        """Caches are ordered by preference, then file order; ASPA asks for version 2."""
        cfg = parse_config('[bgp]\nlocal_as = 64500\nrouter_id = "192.0.2.1"\n[rpki]\naspa = true\n'
                           '[[rpki.cache]]\nname = "b"\naddress = "192.0.2.2"\npreference = 5\n'
                           '[[rpki.cache]]\nname = "a"\naddress = "192.0.2.3"\npreference = 1\n'
                           '[[rpki.cache]]\nname = "c"\naddress = "192.0.2.4"\npreference = 5\n'
                           'refresh = 30\n')
        assert cfg.rpki is not None
        svc = RpkiService(cfg.rpki, RecordingSink(), MemoryReactorClock())
        self.assertEqual([c.settings.name for c in svc.caches], ["a", "b", "c"])
        self.assertEqual(svc.caches[0].settings.max_version, 2)
        self.assertEqual(cache_settings(cfg.rpki.caches[2], False).refresh, 30)
        self.assertEqual(cache_settings(cfg.rpki.caches[2], False).max_version, 1)
