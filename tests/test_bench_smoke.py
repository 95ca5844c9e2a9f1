"""Smoke tests of bench/rib_scale.py and its BGP-4 bench speakers (RFC 4271, RFC 4760).

The unit tests check, without any network, that the sink counts exactly what
the feeder encodes (IPv4 NLRI, MP_REACH_NLRI / MP_UNREACH_NLRI, End-of-RIB per
RFC 4724 section 2) and that the feeder leaves out special-purpose prefixes.  The smoke
test runs the benchmark at 2 % of a full table (about 20,800 IPv4 + 4,500
IPv6 prefixes) with bgpd in the middle, in network namespaces: it needs root
(skipped otherwise, a failure under CI=true) and asserts only that bgpd
passed every prefix on and the result line was printed, never a timing.
"""

from __future__ import annotations

import os
import re
import subprocess
import sys
import tempfile

from twisted.trial.unittest import SynchronousTestCase

from bench import bgp_feeder
from bench.bgp_sink import Counter
from bgpd.wire.attributes import PathAttributes
from bgpd.wire.nlri import make_prefix
from bgpd.wire.update import pack_end_of_rib, pack_reach, pack_withdraw
from tests.interop.harness import require_root

ROOT = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))


def _count(stream: bytes, counter: Counter | None = None) -> Counter:
    counter = counter or Counter()
    pos = 0
    while pos < len(stream):
        length = (stream[pos + 16] << 8) | stream[pos + 17]
        if stream[pos + 18] == 2:
            counter.update(stream, pos + 19, pos + length)
        pos += length
    return counter


class SinkCounterTests(SynchronousTestCase):
    """The sink's framing walk counts distinct prefixes per family."""

    def test_counts_prepared_feed(self):
        """Every prefix of a prepared feed is counted once, and both End-of-RIBs are seen."""
        with tempfile.TemporaryDirectory() as tmp:
            path = os.path.join(tmp, "feed.bin")
            figures = bgp_feeder.prepare(0.002, path, "192.0.2.1", "2001:db8::1", 65001)
            with open(path, "rb") as f:
                counter = _count(f.read())
        self.assertEqual((len(counter.v4), len(counter.v6)), (figures["v4"], figures["v6"]))
        # synthetic's 2,080 IPv4 prefixes less the few in special-purpose space
        self.assertTrue(2000 <= figures["v4"] <= 2080, figures)
        self.assertEqual(figures["v6"], 450)
        self.assertEqual(counter.end_of_rib, {1, 2})
        self.assertEqual(counter.updates, figures["messages"])

    def test_withdrawals_remove(self):
        """IPv4 withdrawn routes and MP_UNREACH_NLRI take prefixes back out."""
        v4 = [make_prefix(bytes((198, 51, 100, i)), 32) for i in range(4)]
        v6 = [make_prefix(bytes.fromhex("20010db8") + bytes((0, i)) + bytes(10), 48) for i in range(3)]
        a4 = PathAttributes(origin=0, as_path=((2, (65001,)),), next_hop="192.0.2.1")
        a6 = PathAttributes(origin=0, as_path=((2, (65001,)),), next_hop="2001:db8::1")
        stream = b"".join(pack_reach(1, 1, a4, v4) + pack_reach(2, 1, a6, v6)
                          + pack_withdraw(1, 1, v4[:3]) + pack_withdraw(2, 1, v6[:1]))
        counter = _count(stream)
        self.assertEqual((len(counter.v4), len(counter.v6)), (1, 2))
        self.assertEqual(counter.end_of_rib, set())
        _count(pack_end_of_rib(1, 1), counter)
        self.assertEqual(counter.end_of_rib, {1})


    def test_via(self):
        """Each prefix is kept with the second AS of its path, replaced by a later announcement."""
        v4 = [make_prefix(bytes((198, 51, 100, i)), 32) for i in range(2)]
        v6 = [make_prefix(bytes.fromhex("20010db8") + bytes(12), 48)]

        def attrs(path: tuple[int, ...], nh: str) -> PathAttributes:
            return PathAttributes(origin=0, as_path=((2, path),), next_hop=nh)
        stream = b"".join(pack_reach(1, 1, attrs((65000, 65001, 7), "192.0.2.2"), v4)
                          + pack_reach(2, 1, attrs((65000, 65012), "2001:db8::2"), v6)
                          + pack_reach(1, 1, attrs((65000, 65013, 7), "192.0.2.2"), v4[:1]))
        counter = _count(stream)
        self.assertEqual(counter.v4, {v4[0]: 65013, v4[1]: 65001})
        self.assertEqual(counter.v6, {v6[0]: 65012})
        # A path of one AS (the wire baseline: the feeder itself) is kept as that AS.
        one = _count(b"".join(pack_reach(1, 1, attrs((65001,), "192.0.2.1"), v4)))
        self.assertEqual(set(one.v4.values()), {65001})


class FeederPlanTests(SynchronousTestCase):
    """rib_scale's feeders: distinct addresses and ASNs, feeder 1 where a single feeder was."""

    def test_plan(self):
        """Four feeders: .1 then .4-.6, AS 65001 then 65012-65014, the probe after them."""
        from bench import rib_scale

        feeders = rib_scale.plan_feeders(4, "/nonexistent")
        self.assertEqual([f.ip for f in feeders], ["192.0.2.1", "192.0.2.4", "192.0.2.5", "192.0.2.6"])
        self.assertEqual([f.asn for f in feeders], [65001, 65012, 65013, 65014])
        names = rib_scale.lab_names(feeders)
        self.assertEqual(names, ["feeder", "mid", "sink", "feeder2", "feeder3", "feeder4", "probe"])
        self.assertEqual(len({f.feed for f in feeders}), 4)


class RoutableTests(SynchronousTestCase):
    """The feeder leaves out prefixes that routers drop and real tables lack."""

    def test_ipv4(self):
        """127/8, 169.254/16, 10/8 and anything overlapping them are out; 1.2.3.0/24 is in."""
        self.assertTrue(bgp_feeder.routable(1, make_prefix(bytes((1, 2, 3, 0)), 24)))
        self.assertTrue(bgp_feeder.routable(1, make_prefix(bytes((11, 0, 0, 0)), 8)))
        for octets, plen in (((127, 1, 0, 0), 16), ((169, 254, 9, 0), 24), ((10, 0, 0, 0), 8),
                             ((8, 0, 0, 0), 6), ((192, 0, 2, 0), 24), ((224, 0, 0, 0), 4)):
            self.assertFalse(bgp_feeder.routable(1, make_prefix(bytes(octets), plen)), octets)

    def test_ipv6(self):
        """Only prefixes inside 2000::/3 are in."""
        self.assertTrue(bgp_feeder.routable(2, make_prefix(bytes.fromhex("20010db8") + bytes(12), 48)))
        self.assertFalse(bgp_feeder.routable(2, make_prefix(bytes.fromhex("fe80") + bytes(14), 64)))
        self.assertFalse(bgp_feeder.routable(2, make_prefix(bytes(16), 2)))


class RibScaleSmokeTests(SynchronousTestCase):
    """The benchmark runs end to end with bgpd in the middle."""

    def test_small_table_through_bgpd(self):
        """At scale 0.02 the sink receives every prefix through bgpd and the line is printed."""
        require_root()
        r = subprocess.run([sys.executable, "bench/rib_scale.py", "--scale", "0.02", "--routers",
                            "bgpd", "--timeout", "300"], cwd=ROOT, capture_output=True, text=True,
                           timeout=900, check=False)
        lines = [x for x in r.stdout.splitlines() if x.startswith("rib_scale: ")]
        self.assertEqual(len(lines), 1, r.stdout + r.stderr[-3000:])
        self.assertRegex(lines[0], r"^rib_scale: [\d,]+ prefixes \([\d,]+ v4 \+ 4,500 v6\)")
        self.assertIsNotNone(re.search(r"  bgpd: [\d.]+s [\d,]+ pfx/s peak [\d,]+ MiB", lines[0]),
                             lines[0] + "\n" + r.stderr[-3000:])
        self.assertEqual(r.returncode, 0, r.stderr[-3000:])
