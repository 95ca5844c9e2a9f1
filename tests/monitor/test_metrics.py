"""Prometheus metrics (bgpd.monitor.metrics): the exposition of a daemon state, parsed back.

A BgpdService on a MemoryReactorClock with two Established peers
(RFC 4271 section 8) that sent routes; the text the endpoint would serve is
parsed with prometheus_client's own parser, so every value checked is one a
scraper reads.  Also: the reactor-lag histogram, and that without
``[monitor] metrics_listen`` nothing listens and no lag timer runs.
"""

from __future__ import annotations

from prometheus_client.exposition import generate_latest
from prometheus_client.parser import text_string_to_metric_families
from twisted.internet.task import Clock
from twisted.internet.testing import MemoryReactorClock
from twisted.trial.unittest import SynchronousTestCase

from bgpd.config import parse_config
from bgpd.monitor.metrics import LagMonitor
from bgpd.service import BgpdService
from bgpd.wire.attributes import PathAttributes
from bgpd.wire.notification import Notification
from bgpd.wire.update import pack_reach
from tests.test_pipeline import Peer, pfx

CONFIG = """
[bgp]
local_as = 65000
router_id = "192.0.2.1"
listen_addresses = []
mrai_ebgp = 0

[monitor]
metrics_listen = "127.0.0.1:9179"

[[neighbors]]
address = "192.0.2.2"
remote_as = 65002
description = "transit A"
local_address = "192.0.2.1"
import_policy = ["no-long"]
export_policy = ["accept-all"]
soft_reconfiguration_inbound = true

[[neighbors]]
address = "192.0.2.3"
remote_as = 65003
local_address = "192.0.2.1"
import_policy = ["accept-all"]
export_policy = ["accept-all"]

[[neighbors]]
address = "192.0.2.4"
remote_as = 65004
enabled = false

[sets.prefix.long]
prefixes = ["0.0.0.0/0 ge 25"]

[policies.no-long]
terms = [{ match = { prefix_set = "long" }, action = "reject" }, { action = "accept" }]
"""


def samples(registry) -> dict[tuple, float]:
    """(sample name, sorted label pairs) -> value, from the exposition text."""
    text = generate_latest(registry).decode()
    out = {}
    for family in text_string_to_metric_families(text):
        for s in family.samples:
            out[(s.name, tuple(sorted(s.labels.items())))] = s.value
    return out


class ExpositionTests(SynchronousTestCase):
    """The metrics of a running daemon state."""

    def setUp(self):
        self.reactor = MemoryReactorClock()
        self.svc = BgpdService(parse_config(CONFIG), None, self.reactor)
        self.svc.startService()
        self.a = Peer(self, "192.0.2.2", 65002)
        self.b = Peer(self, "192.0.2.3", 65003)
        self.a.establish()
        self.b.establish()

    def tearDown(self):
        self.svc.stopService()
        self.reactor.advance(3)

    def settle(self):
        for _ in range(30):
            self.reactor.advance(0.1)

    def announce(self, peer, prefixes):
        a = PathAttributes(as_path=((2, (peer.asn,)),), next_hop=peer.address)
        peer.send(*pack_reach(1, 1, a, [pfx(p) for p in prefixes]))
        self.settle()

    def test_listens_where_configured(self):
        """metrics_listen makes one TCP port on the host and port it names."""
        ports = [(port, iface) for port, _f, _b, iface in self.reactor.tcpServers]
        self.assertIn((9179, "127.0.0.1"), ports)

    def test_peer_state_uptime_and_prefixes(self):
        """State, uptime, accepted/received/advertised prefixes and rejections, per peer and family."""
        self.announce(self.a, ["198.51.100.0/24", "198.51.100.128/25", "203.0.113.0/24"])
        self.announce(self.b, ["192.0.2.128/25"])
        self.reactor.advance(10)
        s = samples(self.svc.monitor.registry)
        a, c = (("peer", "192.0.2.2"),), (("peer", "192.0.2.4"),)
        self.assertEqual(s[("bgpd_peer_state", a)], 6)
        self.assertEqual(s[("bgpd_peer_state", c)], 1)
        self.assertEqual(s[("bgpd_peer_up", a)], 1)
        self.assertEqual(s[("bgpd_peer_up", c)], 0)
        self.assertAlmostEqual(s[("bgpd_peer_uptime_seconds", a)], 16.0, delta=0.5)
        self.assertEqual(s[("bgpd_peer_uptime_seconds", c)], 0)

        def prefixes(peer, table):
            return s[("bgpd_peer_prefixes", (("family", "ipv4-unicast"), ("peer", peer),
                                             ("table", table)))]

        self.assertEqual(prefixes("192.0.2.2", "accepted"), 2)
        self.assertEqual(prefixes("192.0.2.2", "received"), 3)
        self.assertEqual(prefixes("192.0.2.3", "accepted"), 1)
        # Each advertises the other's routes: the group's Adj-RIB-Out holds all 3.
        self.assertEqual(prefixes("192.0.2.3", "advertised"), 3)
        self.assertNotIn(("bgpd_peer_prefixes", (("family", "ipv4-unicast"), ("peer", "192.0.2.3"),
                                                 ("table", "received"))), s)
        self.assertEqual(s[("bgpd_peer_prefixes_rejected_total", a)], 1)
        self.assertEqual(s[("bgpd_peer_updates_received_total", a)], 1)
        self.assertEqual(s[("bgpd_rib_prefixes", (("family", "ipv4-unicast"), ("table", "loc-rib")))], 3)
        self.assertEqual(s[("bgpd_rib_prefixes", (("family", "ipv4-unicast"),
                                                  ("table", "adj-rib-in")))], 3)
        self.assertEqual(s[("bgpd_rib_prefixes", (("family", "ipv6-unicast"), ("table", "loc-rib")))], 0)
        self.assertGreaterEqual(s[("bgpd_rib_attribute_sets", ())], 2)

    def test_messages_by_type(self):
        """Messages in and out are counted by type on the current connection."""
        self.announce(self.a, ["198.51.100.0/24"])
        s = samples(self.svc.monitor.registry)
        key = (("peer", "192.0.2.2"), ("type", "update"))
        self.assertEqual(s[("bgpd_peer_messages_received_total", key)], 1)
        self.assertEqual(s[("bgpd_peer_messages_received_total",
                            (("peer", "192.0.2.2"), ("type", "open")))], 1)
        self.assertEqual(s[("bgpd_peer_messages_received_total",
                            (("peer", "192.0.2.2"), ("type", "keepalive")))], 1)
        self.assertEqual(s[("bgpd_peer_messages_sent_total",
                            (("peer", "192.0.2.2"), ("type", "open")))], 1)
        # The route from .2 went to .3 in an UPDATE (plus End-of-RIB markers).
        self.assertGreaterEqual(s[("bgpd_peer_messages_sent_total",
                                   (("peer", "192.0.2.3"), ("type", "update")))], 1)

    def test_notifications_and_flaps(self):
        """A NOTIFICATION that ends a session counts by code/subcode, and the flap by peer."""
        self.a.send(Notification(6, 4))
        s = samples(self.svc.monitor.registry)
        key = (("code", "6"), ("direction", "received"), ("name", "Cease / administrative reset"),
               ("peer", "192.0.2.2"), ("subcode", "4"))
        self.assertEqual(s[("bgpd_peer_notifications_total", key)], 1)
        self.assertEqual(s[("bgpd_peer_flaps_total", (("peer", "192.0.2.2"),))], 1)
        self.assertEqual(s[("bgpd_peer_up", (("peer", "192.0.2.2"),))], 0)
        self.assertEqual(s[("bgpd_peer_established_transitions_total", (("peer", "192.0.2.2"),))], 1)

    def test_no_prefix_labels(self):
        """No label carries a prefix: the cardinality is peers x families x types."""
        self.announce(self.a, ["198.51.100.0/24", "203.0.113.0/24"])
        for (_name, labels), _v in samples(self.svc.monitor.registry).items():
            for _k, value in labels:
                self.assertNotIn("/", value)

    def test_reactor_lag_histogram(self):
        """The lag timer runs every 0.5 s; the histogram counts its runs."""
        for _ in range(10):
            self.reactor.advance(0.5)
        s = samples(self.svc.monitor.registry)
        self.assertGreaterEqual(s[("bgpd_reactor_lag_seconds_count", ())], 10)
        self.assertEqual(s[("bgpd_reactor_lag_seconds_bucket", (("le", "+Inf"),))],
                         s[("bgpd_reactor_lag_seconds_count", ())])

    def test_process_metrics(self):
        """The process collector's figures are served too."""
        s = samples(self.svc.monitor.registry)
        self.assertIn(("process_resident_memory_bytes", ()), s)


class MetricsOffTests(SynchronousTestCase):
    """Without metrics_listen nothing listens and nothing runs."""

    def test_off_by_default(self):
        """No port, no registry, no lag timer: metrics cost nothing when off."""
        reactor = MemoryReactorClock()
        svc = BgpdService(parse_config(CONFIG.replace('metrics_listen = "127.0.0.1:9179"', "")),
                          None, reactor)
        svc.startService()
        self.addCleanup(svc.stopService)
        self.assertEqual([p for p, *_ in reactor.tcpServers], [])
        self.assertIsNone(svc.monitor.registry)
        self.assertIsNone(svc.monitor.lag)
        self.assertFalse(any("_tick" in repr(c.func) for c in reactor.getDelayedCalls()))


class LagMonitorTests(SynchronousTestCase):
    """How late the 0.5 s call ran, from the clock."""

    def test_late_run_is_measured(self):
        """A run 2 s late lands in the 2.5 s bucket; on-time runs in the first."""
        clock = Clock()
        lag = LagMonitor(clock)
        lag.start()
        clock.advance(0.5)
        clock.advance(0.5)
        clock.advance(2.5)  # the reactor was busy: the run due 2 s ago comes now
        lag.stop()
        self.assertEqual(lag.n, 4)
        self.assertEqual(lag.counts[0], 3)
        self.assertEqual(lag.counts[lag.buckets.index(2.5)], 1)
        self.assertAlmostEqual(lag.max, 2.0)
        self.assertAlmostEqual(lag.sum, 2.0)
