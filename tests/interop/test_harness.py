"""Tests of the interop harness itself: real BIRD, FRR and GoBGP in namespaces.

The daemon tests need root (``ip netns``) and skip otherwise; under
``CI=true`` a missing daemon is a failure, not a skip.  Each checks that a
session reaches Established over IPv4 and IPv6 (RFC 4271 section 8) and
that path attributes (MED, COMMUNITIES per RFC 1997, LARGE_COMMUNITY per
RFC 8092, extended communities per RFC 4360) survive the trip, then that
nothing is left behind.
"""

from __future__ import annotations

import os
import subprocess

from twisted.trial.unittest import SynchronousTestCase

from tests.interop import harness
from tests.interop.harness import Bird, Frr, GoBGP, Lab, Neighbor, Process

GOBGP_AS = 4200000001
OTHER_AS = 65002

V4_ROUTE = "198.51.100.0/25"
V6_ROUTE = "2001:db8:100::/48"
V4_ATTRS = {
    "as_path": [65100, 65101],
    "med": 10,
    "communities": ["65000:1", "no-export"],
    "large_communities": [f"{GOBGP_AS}:1:2"],
    "ext_communities": ["rt:65000:7"],
}
V6_ATTRS = {"med": 5, "communities": ["65000:2"], "large_communities": [f"{GOBGP_AS}:3:4"]}


def _namespaces() -> set[str]:
    out = subprocess.run(["ip", "netns", "list"], capture_output=True, text=True,
                         timeout=10, check=False).stdout
    return {line.split()[0] for line in out.splitlines() if line.strip()}


def _processes(lab: Lab) -> list[Process]:
    procs: list[Process] = []
    for ns in [lab.switch, *(n.ns for n in lab.nodes.values())]:
        if ns is not None:
            procs.extend(ns._procs)
    return procs


class AddressRulesTests(SynchronousTestCase):
    """The harness refuses addresses outside the documentation ranges."""

    def test_accepts_documentation_ranges(self):
        """192.0.2/24, 198.51.100/24 and 2001:db8::/32 pass, with or without a length."""
        for a in ("192.0.2.1/24", "198.51.100.7", "2001:db8::1/64", "2001:db8:ffff::9"):
            self.assertEqual(harness.check_address(a), a)

    def test_rejects_other_addresses(self):
        """Private, public and other IPv6 addresses raise ValueError."""
        for a in ("10.0.0.1/24", "192.168.1.1", "8.8.8.8", "203.0.113.1", "2001:db9::1",
                  "fe80::1", "127.0.0.1"):
            self.assertRaises(ValueError, harness.check_address, a)

    def test_rejects_prefix_outside(self):
        """A prefix must lie wholly inside an allowed range."""
        self.assertEqual(harness.check_prefix("198.51.100.128/25"), "198.51.100.128/25")
        self.assertRaises(ValueError, harness.check_prefix, "198.51.0.0/16")

    def test_neighbor_checks_address(self):
        """A Neighbor with a forbidden address cannot be built."""
        self.assertRaises(ValueError, Neighbor, "10.1.1.1", 65000)
        self.assertEqual(Neighbor("2001:db8::2", 65000).families, ("ipv6",))


class PollTests(SynchronousTestCase):
    """``poll`` is bounded and reports what it last saw."""

    def test_returns_first_truthy(self):
        """The first truthy value is returned."""
        seen = iter([0, None, "", "ok"])
        self.assertEqual(harness.poll(lambda: next(seen), timeout=5, interval=0), "ok")

    def test_timeout_names_last_value(self):
        """On timeout the AssertionError carries the last value seen."""
        e = self.assertRaises(AssertionError, harness.poll, lambda: [], 0, 0, "thing")
        self.assertIn("thing", str(e))
        self.assertIn("[]", str(e))

    def test_exception_is_not_yet(self):
        """An exception from the probe counts as not yet and is reported."""
        def boom():
            raise KeyError("nope")
        e = self.assertRaises(AssertionError, harness.poll, boom, 0, 0)
        self.assertIn("nope", str(e))


BIRD_SAMPLE = """\
BIRD 2.0.12 ready.
Table master4:
198.51.100.0/25      unicast [p_192_0_2_2 12:00:00.000] * (100) [AS4200000001?]
\tvia 192.0.2.2 on eth0
\tType: BGP univ
\tBGP.origin: Incomplete
\tBGP.as_path: 4200000001 65100 {65200 65201}
\tBGP.next_hop: 192.0.2.2
\tBGP.med: 10
\tBGP.local_pref: 100
\tBGP.community: (65000,1) (65535,65281)
\tBGP.ext_community: (rt, 65000, 7)
\tBGP.large_community: (4200000001, 1, 2)
                     unicast [p_192_0_2_3 12:00:01.000] (100) [AS65003i]
\tBGP.as_path: 65003
"""


class BirdParserTests(SynchronousTestCase):
    """``parse_bird_routes`` reads birdc's route listing."""

    def test_attributes(self):
        """Every attribute line of the best route is parsed."""
        r = harness.parse_bird_routes(BIRD_SAMPLE)["198.51.100.0/25"]
        self.assertEqual(r.as_path, (4200000001, 65100))
        self.assertEqual(r.as_set, (65200, 65201))
        self.assertEqual(r.med, 10)
        self.assertEqual(r.local_pref, 100)
        self.assertEqual(r.next_hop, ("192.0.2.2",))
        self.assertEqual(r.communities, ("65000:1", "65535:65281"))
        self.assertEqual(r.large_communities, ("4200000001:1:2",))
        self.assertEqual(r.ext_communities, ("rt:65000:7",))
        self.assertEqual(r.origin, "incomplete")
        self.assertEqual(r.peer, "p_192_0_2_2")


class NetnsTests(SynchronousTestCase):
    """Namespaces come and go cleanly."""

    def setUp(self):
        harness.require_root()

    def test_close_twice_and_stop_processes(self):
        """close() stops what popen started, removes the namespace, and may repeat."""
        ns = harness.Netns("t").open()
        proc = ns.popen(["sleep", "60"])
        self.assertTrue(proc.alive())
        self.assertIn(ns.name, _namespaces())
        ns.close()
        ns.close()
        self.assertFalse(proc.alive())
        self.assertNotIn(ns.name, _namespaces())

    def test_veth_refuses_bad_address(self):
        """veth() refuses an address outside the ranges before creating anything."""
        with harness.Netns("a") as a, harness.Netns("b") as b:
            self.assertRaises(ValueError, harness.veth, a, b, ["10.0.0.1/24"], [])
            self.assertNotIn("eth0", a.run(["ip", "-o", "link"]).stdout)
            harness.veth(a, b, ["192.0.2.1/24"], ["192.0.2.2/24"])
            # The link must carry packets, not only exist: a missing ping is a
            # skip (a failure under CI=true), never a silent pass.
            harness.require_binary("ping")
            ping = a.run(["ping", "-c", "1", "-W", "5", "192.0.2.2"], check=False)
            self.assertEqual(ping.returncode, 0, ping.stdout + ping.stderr)
            self.assertIn("192.0.2.1/24", a.run(["ip", "-o", "addr"]).stdout)


class _PairTestsMixin:
    """GoBGP against another daemon on one segment: sessions and attributes."""

    other_cls: type[harness.Daemon]
    md5: str | None = None

    def test_sessions_and_attributes(self):
        """Established over IPv4 and IPv6; GoBGP's attributes arrive intact; all cleaned up."""
        harness.require_root()
        lab = Lab(["other", "gobgp"])
        self.addCleanup(lab.close)
        lab.open()
        o, g = lab["other"], lab["gobgp"]
        other = self.other_cls(o.ns, OTHER_AS, o.router_id, [
            Neighbor(g.ipv4, GOBGP_AS, md5=self.md5), Neighbor(g.ipv6, GOBGP_AS)])
        gobgp = GoBGP(g.ns, GOBGP_AS, g.router_id, [
            Neighbor(o.ipv4, OTHER_AS, md5=self.md5), Neighbor(o.ipv6, OTHER_AS)])
        other.start()
        gobgp.start()
        other.wait_established(g.ipv4, 25)
        other.wait_established(g.ipv6, 25)
        self.assertEqual(gobgp.session_state(o.ipv4), "established")
        self.assertEqual(gobgp.session_state(o.ipv6), "established")

        gobgp.announce(V4_ROUTE, **V4_ATTRS)
        gobgp.announce(V6_ROUTE, **V6_ATTRS)
        r4 = other.wait_route(V4_ROUTE, 10)
        self.assertEqual(r4.as_path, (GOBGP_AS, 65100, 65101))
        self.assertEqual(r4.med, 10)
        self.assertEqual(set(r4.communities), {"65000:1", "65535:65281"})
        self.assertEqual(r4.large_communities, (f"{GOBGP_AS}:1:2",))
        self.assertEqual(r4.ext_communities, ("rt:65000:7",))
        self.assertEqual(r4.next_hop[0], g.ipv4)
        r6 = other.wait_route(V6_ROUTE, 10)
        self.assertEqual(r6.as_path, (GOBGP_AS,))
        self.assertEqual(r6.med, 5)
        self.assertEqual(r6.communities, ("65000:2",))
        self.assertEqual(r6.large_communities, (f"{GOBGP_AS}:3:4",))
        self.assertEqual(r6.next_hop[0], g.ipv6)

        gobgp.withdraw(V4_ROUTE)
        other.wait_no_route(V4_ROUTE, 10)

        procs = _processes(lab)
        names = {lab.switch.name, *(n.ns.name for n in lab.nodes.values())}
        lab.close()
        self.assertEqual(names & _namespaces(), set())
        for p in procs:
            self.assertFalse(p.alive(), p)
            self.assertRaises(ProcessLookupError, os.kill, p.pid, 0)


class BirdGoBGPTests(_PairTestsMixin, SynchronousTestCase):
    """BIRD 2 <-> GoBGP."""

    other_cls = Bird


class FrrGoBGPTests(_PairTestsMixin, SynchronousTestCase):
    """FRR <-> GoBGP, with TCP MD5 (RFC 2385) on the IPv4 session."""

    other_cls = Frr
    md5 = "s3cret-md5"
