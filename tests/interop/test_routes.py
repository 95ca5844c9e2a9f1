"""Interop: bgpd as a router between real BIRD 2, FRR and GoBGP.

Real daemons in network namespaces made by the test (see ``harness``).
bgpd has no API yet, so what it does is read from what the *other* daemons
receive through it.  Checked:

* RFC 4271 section 5.1 / 9.1.3 on eBGP -> eBGP: AS_PATH gets bgpd's AS in
  front (5.1.2), NEXT_HOP is bgpd's own address on the session (5.1.3), a
  received MED is not passed on to another AS (5.1.4), LOCAL_PREF is not
  sent to eBGP (5.1.5); COMMUNITIES (RFC 1997) and LARGE_COMMUNITY
  (RFC 8092) go through unchanged; IPv6 by MP_REACH_NLRI (RFC 4760).
* RFC 1997 NO_EXPORT: such a route is not sent to eBGP peers.
* Originated routes (``[[originate]]``): AS_PATH is bgpd's AS alone, a MED
  we set ourselves is sent.
* Withdrawals (RFC 4271 section 9.1.3) and a killed peer (section 8,
  connection lost: its routes are withdrawn; the peers do not advertise
  Graceful Restart, RFC 4724, so nothing is kept stale).
* RFC 7947 route server: AS_PATH, NEXT_HOP and MED reach the other client
  untouched.
* iBGP between two bgpd (RFC 4271 section 9.1.1/9.2): a route from an eBGP
  peer of the first reaches an eBGP peer of the second with AS_PATH
  [our AS, origin AS] and the second's address as NEXT_HOP, and back.

Address plan: each lab is one Ethernet segment (192.0.2.0/24,
2001:db8::/64; ``harness.Lab``); announced prefixes come from
198.51.100.0/24 and 2001:db8:100::/40.  Needs root; skips without it
(fails under CI=true, like the harness).
"""

from __future__ import annotations

import signal
import time
from typing import Any, ClassVar

from twisted.trial.unittest import SynchronousTestCase

from tests.interop import harness
from tests.interop.bgpd_driver import BgpdDriver, BgpdNeighbor
from tests.interop.harness import Bird, Daemon, Frr, GoBGP, Lab, LabNode, Neighbor, Route

BGPD_AS = 65000
BIRD_AS = 65001
FRR_AS = 65002
# A 4-octet AS (RFC 6793) on one peer, so AS4 paths go through bgpd too.
GOBGP_AS = 4200000003

V4 = ("ipv4-unicast",)
V6 = ("ipv6-unicast",)
ESTABLISH_TIMEOUT = 40.0
ROUTE_TIMEOUT = 25.0
# How long a route that must not arrive is watched for, once routes
# announced at the same time (or later) have arrived.
ABSENT_WATCH = 3.0

# What each peer of the main lab announces from the start: prefix -> attrs
# (the keyword arguments of Daemon.announce).
PEER_ROUTES: dict[str, dict[str, dict[str, Any]]] = {
    "bird": {
        "198.51.100.0/27": {"med": 11, "communities": ["65001:1", "65001:2"],
                            "large_communities": ["65001:1:1"]},
        "2001:db8:101::/48": {"med": 12, "communities": ["65001:6"],
                              "large_communities": ["65001:6:6"]},
    },
    "frr": {
        "198.51.100.32/27": {"med": 21, "communities": ["65002:1", "65002:2"],
                             "large_communities": ["65002:1:1"]},
        "2001:db8:102::/48": {"med": 22, "communities": ["65002:6"],
                              "large_communities": ["65002:6:6"]},
    },
    "gobgp": {
        # NO_EXPORT routes first, so that by the time the ordinary ones
        # have gone through bgpd these have certainly reached it.
        "198.51.100.160/28": {"med": 31, "communities": ["65003:9", "no-export"]},
        "2001:db8:1a0::/48": {"communities": ["65003:9", "no-export"]},
        "198.51.100.64/27": {"med": 31, "communities": ["65003:1", "65003:2"],
                             "large_communities": [f"{GOBGP_AS}:1:1"]},
        "2001:db8:103::/48": {"med": 32, "communities": ["65003:6"],
                              "large_communities": [f"{GOBGP_AS}:6:6"]},
    },
}
NO_EXPORT_PREFIXES = ("198.51.100.160/28", "2001:db8:1a0::/48")
PEER_AS = {"bird": BIRD_AS, "frr": FRR_AS, "gobgp": GOBGP_AS}
PEER_CLS: dict[str, type[Daemon]] = {"bird": Bird, "frr": Frr, "gobgp": GoBGP}

# bgpd's own routes.
ORIGINATE = [
    {"prefix": "198.51.100.96/27", "med": 50, "communities": ["65000:100"],
     "large_communities": ["65000:0:100"]},
    {"prefix": "2001:db8:104::/48", "communities": ["65000:106"]},
]

# Announced and withdrawn at run time (withdrawal test).
WITHDRAW_ROUTES = {"198.51.100.176/28": {"communities": ["65002:7"]},
                   "2001:db8:1b0::/48": {"communities": ["65002:7"]}}


def _fam(prefix: str) -> str:
    return "ipv6" if ":" in prefix else "ipv4"


def _addr(node: LabNode, prefix: str) -> str:
    """``node``'s address of ``prefix``'s family (its address on that session)."""
    return node.ipv6 if ":" in prefix else node.ipv4


def _problems(route: Route, as_path: tuple[int, ...], next_hop: str,
              med: int | None, attrs: dict[str, Any]) -> list[str]:
    """What differs between ``route`` and the expected attributes (empty: all fine)."""
    bad = []
    if route.as_path != as_path:
        bad.append(f"AS_PATH {route.as_path} != {as_path}")
    if not route.next_hop or route.next_hop[0] != next_hop:
        bad.append(f"NEXT_HOP {route.next_hop} != ({next_hop!r}, ...)")
    if route.med != med:
        bad.append(f"MED {route.med} != {med}")
    want_c = sorted(harness.norm_community(c) for c in attrs.get("communities", ()))
    if sorted(route.communities) != want_c:
        bad.append(f"COMMUNITIES {sorted(route.communities)} != {want_c}")
    want_l = sorted(attrs.get("large_communities", ()))
    if sorted(route.large_communities) != want_l:
        bad.append(f"LARGE_COMMUNITY {sorted(route.large_communities)} != {want_l}")
    return bad


def _watch_absent(daemon: Daemon, prefixes: tuple[str, ...], seconds: float) -> list[str]:
    """Watch for ``seconds``; return the prefixes that did show up at ``daemon``."""
    seen: set[str] = set()
    deadline = time.monotonic() + seconds
    for _ in range(int(seconds / 0.5) + 2):
        for fam in {_fam(p) for p in prefixes}:
            table = daemon.routes(fam)
            seen |= {p for p in prefixes if p in table}
        if time.monotonic() >= deadline:
            break
        time.sleep(0.5)
    return sorted(seen)


# BIRD 2 keeps a MED on eBGP export only when the export filter set it
# ("fresh" attributes); in these labs the static route's own MED did not go
# out to bgpd (seen with tcpdump on the bridge), so set it again on export.
BIRD_EXPORT = "filter { if defined(bgp_med) then bgp_med = bgp_med; accept; }"


def _bird(node: LabNode, neighbors: list[Neighbor], routes: dict[str, dict[str, Any]]) -> Bird:
    bird = Bird(node.ns, BIRD_AS, node.router_id, neighbors, routes=routes)
    bird.export_filter = BIRD_EXPORT
    return bird


def _peer_neighbors(bgpd_node: LabNode) -> list[Neighbor]:
    """A peer's view of bgpd: IPv4 unicast over IPv4, IPv6 unicast over IPv6; bgpd dials.

    No Graceful Restart (the harness default): a lost session's routes go at once.
    """
    return [Neighbor(bgpd_node.ipv4, BGPD_AS, passive=True),
            Neighbor(bgpd_node.ipv6, BGPD_AS, passive=True)]


def _bgpd_neighbors(node: LabNode, asn: int, **keys: Any) -> list[BgpdNeighbor]:
    return [BgpdNeighbor(node.ipv4, asn, families=V4, keys=dict(keys)),
            BgpdNeighbor(node.ipv6, asn, families=V6, keys=dict(keys))]


def _wait_all(bgpd: BgpdDriver, addrs: list[str], count: int = 1) -> None:
    for addr in addrs:
        bgpd.wait_established(addr, ESTABLISH_TIMEOUT, count=count)


class _LabCase(SynchronousTestCase):
    """Shared lab plumbing: one lab per class, built once, closed once."""

    lab: ClassVar[Lab | None] = None
    bgpds: ClassVar[list[BgpdDriver]] = []

    @classmethod
    def _build(cls) -> None:
        raise NotImplementedError

    @classmethod
    def setUpClass(cls) -> None:
        harness.require_root()
        cls.lab = None
        cls.bgpds = []
        try:
            cls._build()
        except BaseException:
            cls.tearDownClass()
            raise

    @classmethod
    def tearDownClass(cls) -> None:
        if cls.lab is not None:
            cls.lab.close()
            cls.lab = None

    def setUp(self) -> None:
        # trial runs no class fixtures: there, each test builds its own lab.
        if type(self).lab is None:
            type(self).setUpClass()
            self.addCleanup(type(self).tearDownClass)

    def assert_clean_logs(self) -> None:
        """No bgpd of the lab has logged a Python traceback."""
        for b in self.bgpds:
            self.assertNotIn("Traceback", b.log(), b.log()[-6000:])

    def fail_with_logs(self, problems: list[str]) -> None:
        if problems:
            tails = "\n".join(f"--- {b!r} log tail:\n{b.log()[-3000:]}" for b in self.bgpds)
            self.fail("\n".join(problems) + "\n" + tails)


class RouterTests(_LabCase):
    """bgpd between three eBGP peers: BIRD (AS65001), FRR (AS65002), GoBGP (AS4200000003)."""

    peers: ClassVar[dict[str, Daemon]] = {}

    @classmethod
    def _build(cls) -> None:
        cls.lab = lab = Lab(["bgpd", "bird", "frr", "gobgp"]).open()
        b = lab["bgpd"]
        neighbors: list[BgpdNeighbor] = []
        for name in ("bird", "frr", "gobgp"):
            neighbors += _bgpd_neighbors(lab[name], PEER_AS[name])
        cls.bgpd = BgpdDriver(b.ns, BGPD_AS, b.router_id, neighbors, originate=ORIGINATE,
                              mrai_ebgp=0)
        cls.bgpds = [cls.bgpd]
        cls.peers = {
            name: PEER_CLS[name](lab[name].ns, PEER_AS[name], lab[name].router_id,
                                 _peer_neighbors(b), routes=PEER_ROUTES[name])
            for name in ("bird", "frr", "gobgp")}
        cls.peers["bird"].export_filter = BIRD_EXPORT
        for p in cls.peers.values():
            p.start()
        cls.bgpd.start()
        _wait_all(cls.bgpd, [a for n in ("bird", "frr", "gobgp")
                             for a in (lab[n].ipv4, lab[n].ipv6)])

    def _expect_from(self, origin: str, receivers: list[str] | None = None,
                     prefixes: dict[str, dict[str, Any]] | None = None) -> list[str]:
        """Wait for ``origin``'s routes at each receiver; return what is wrong with them."""
        b = self.lab["bgpd"]
        problems = []
        routes = prefixes if prefixes is not None else PEER_ROUTES[origin]
        for recv in receivers or [n for n in self.peers if n != origin]:
            for prefix, attrs in routes.items():
                if prefix in NO_EXPORT_PREFIXES:
                    continue
                try:
                    r = self.peers[recv].wait_route(prefix, ROUTE_TIMEOUT)
                except AssertionError as e:
                    problems.append(f"{origin} -> {recv} {prefix}: {e}")
                    continue
                # RFC 4271 5.1.4: the MED from the origin's AS stays there.
                bad = _problems(r, (BGPD_AS, PEER_AS[origin]), _addr(b, prefix), None, attrs)
                if isinstance(self.peers[recv], GoBGP) and r.local_pref is not None:
                    # GoBGP shows exactly the attributes received (5.1.5).
                    bad.append(f"LOCAL_PREF {r.local_pref} sent over eBGP")
                problems += [f"{origin} -> {recv} {prefix}: {x}; got {r!r}" for x in bad]
        return problems

    def test_peer_routes_reach_the_other_two(self):
        """Each peer's routes reach the other two: bgpd's AS first, its next hop, no MED, communities."""
        problems = []
        for origin in ("bird", "frr", "gobgp"):
            problems += self._expect_from(origin)
        self.fail_with_logs(problems)
        self.assert_clean_logs()

    def test_no_export_not_sent_to_ebgp(self):
        """GoBGP's NO_EXPORT routes reach bgpd but go to neither BIRD nor FRR."""
        g = self.peers["gobgp"]
        b = self.lab["bgpd"]
        # GoBGP did send them to bgpd (its own Adj-RIB-Out).
        for prefix in NO_EXPORT_PREFIXES:
            out = g.gobgp("neighbor", _addr(b, prefix), "adj-out", "-a", _fam(prefix))
            self.assertIn(prefix, out, f"GoBGP did not send {prefix} to bgpd:\n{out}")
        # Announced before GoBGP's ordinary routes: once those are through, so are these.
        self.fail_with_logs(self._expect_from("gobgp"))
        for name in ("bird", "frr"):
            seen = _watch_absent(self.peers[name], NO_EXPORT_PREFIXES, ABSENT_WATCH)
            self.assertEqual(seen, [], f"{name} received NO_EXPORT routes through bgpd")
        self.assert_clean_logs()

    def test_originated_routes_reach_all(self):
        """bgpd's [[originate]] routes reach all three: AS_PATH [bgpd], its next hop, MED, communities."""
        b = self.lab["bgpd"]
        problems = []
        for name, peer in self.peers.items():
            for o in ORIGINATE:
                prefix = o["prefix"]
                try:
                    r = peer.wait_route(prefix, ROUTE_TIMEOUT)
                except AssertionError as e:
                    problems.append(f"bgpd -> {name} {prefix}: {e}")
                    continue
                bad = _problems(r, (BGPD_AS,), _addr(b, prefix), o.get("med"), o)
                problems += [f"bgpd -> {name} {prefix}: {x}; got {r!r}" for x in bad]
        self.fail_with_logs(problems)
        self.assert_clean_logs()

    def test_withdrawal_propagates(self):
        """A route FRR announces and then withdraws appears at, then disappears from, BIRD and GoBGP."""
        frr = self.peers["frr"]
        for prefix, attrs in WITHDRAW_ROUTES.items():
            frr.announce(prefix, **attrs)
        self.fail_with_logs(self._expect_from("frr", prefixes=WITHDRAW_ROUTES))
        for prefix in WITHDRAW_ROUTES:
            frr.withdraw(prefix)
        problems = []
        for name in ("bird", "gobgp"):
            for prefix in WITHDRAW_ROUTES:
                try:
                    self.peers[name].wait_no_route(prefix, ROUTE_TIMEOUT)
                except AssertionError as e:
                    problems.append(f"frr withdrew {prefix}, {name} still has it: {e}")
        self.fail_with_logs(problems)
        # FRR's other routes are still there.
        for name in ("bird", "gobgp"):
            for prefix in PEER_ROUTES["frr"]:
                self.assertIn(prefix, self.peers[name].routes(_fam(prefix)), name)
        self.assert_clean_logs()

    def test_killed_peer_routes_withdrawn(self):
        """SIGKILLed GoBGP (no Graceful Restart): its routes leave BIRD and FRR; restarted, they return."""
        lab, g = self.lab, self.peers["gobgp"]
        gobgp_routes = [p for p in PEER_ROUTES["gobgp"] if p not in NO_EXPORT_PREFIXES]
        # Make sure they are there first (the test may run first).
        self.fail_with_logs(self._expect_from("gobgp"))
        assert g.proc is not None
        g.proc.signal(signal.SIGKILL)
        g.stop()  # reaps the killed process
        problems = []
        for name in ("bird", "frr"):
            for prefix in gobgp_routes:
                try:
                    self.peers[name].wait_no_route(prefix, ROUTE_TIMEOUT)
                except AssertionError as e:
                    problems.append(f"gobgp killed, {name} still has {prefix}: {e}")
        # The others' routes stay.
        for prefix in PEER_ROUTES["bird"]:
            if prefix not in self.peers["frr"].routes(_fam(prefix)):
                problems.append(f"frr lost bird's {prefix} when gobgp died")
        self.fail_with_logs(problems)
        for addr in (lab["gobgp"].ipv4, lab["gobgp"].ipv6):
            self.assertTrue(any(t.old == "established" for t in self.bgpd.transitions(addr)),
                            self.bgpd.transitions(addr))
        # Restore the lab for the other tests.
        g.start()
        _wait_all(self.bgpd, [lab["gobgp"].ipv4, lab["gobgp"].ipv6], count=2)
        self.fail_with_logs(self._expect_from("gobgp"))
        self.assert_clean_logs()


class RouteServerTests(_LabCase):
    """bgpd as an RFC 7947 route server for BIRD (AS65001) and GoBGP (AS4200000003)."""

    @classmethod
    def _build(cls) -> None:
        cls.lab = lab = Lab(["rs", "bird", "gobgp"]).open()
        rs = lab["rs"]
        cls.bird = _bird(lab["bird"], _peer_neighbors(rs),
                         routes={"198.51.100.192/28": {"med": 7, "communities": ["65001:70"],
                                                       "large_communities": ["65001:7:7"]},
                                 "2001:db8:1c0::/48": {"med": 8, "communities": ["65001:80"]}})
        # BIRD 2's "enforce first as" is off by default and GoBGP has no such
        # check: both take a path whose first AS is not the route server's.
        cls.gobgp = GoBGP(lab["gobgp"].ns, GOBGP_AS, lab["gobgp"].router_id,
                          _peer_neighbors(rs),
                          routes={"198.51.100.208/28": {"med": 9, "communities": ["65003:90"]},
                                  "2001:db8:1d0::/48": {"med": 10,
                                                        "large_communities": [f"{GOBGP_AS}:1:0"]}})
        neighbors = (_bgpd_neighbors(lab["bird"], BIRD_AS, route_server_client=True)
                     + _bgpd_neighbors(lab["gobgp"], GOBGP_AS, route_server_client=True))
        cls.bgpd = BgpdDriver(rs.ns, BGPD_AS, rs.router_id, neighbors, mrai_ebgp=0)
        cls.bgpds = [cls.bgpd]
        cls.bird.start()
        cls.gobgp.start()
        cls.bgpd.start()
        _wait_all(cls.bgpd, [lab[n].ipv4 for n in ("bird", "gobgp")]
                  + [lab[n].ipv6 for n in ("bird", "gobgp")])

    def test_attributes_untouched(self):
        """Each client gets the other's routes with AS_PATH, NEXT_HOP and MED as the origin sent them."""
        problems = []
        for origin, recv, asn in ((self.bird, self.gobgp, BIRD_AS),
                                  (self.gobgp, self.bird, GOBGP_AS)):
            node = self.lab[origin.name]
            for prefix, attrs in origin.announced.items():
                try:
                    r = recv.wait_route(prefix, ROUTE_TIMEOUT)
                except AssertionError as e:
                    problems.append(f"{origin.name} -> {recv.name} {prefix}: {e}")
                    continue
                bad = _problems(r, (asn,), _addr(node, prefix), attrs.get("med"), attrs)
                problems += [f"{origin.name} -> {recv.name} {prefix}: {x}; got {r!r}"
                             for x in bad]
        self.fail_with_logs(problems)
        self.assert_clean_logs()


class IbgpTransitTests(_LabCase):
    """BIRD -eBGP- bgpd1 -iBGP- bgpd2 -eBGP- GoBGP, bgpd1 and bgpd2 both in AS65000."""

    @classmethod
    def _build(cls) -> None:
        cls.lab = lab = Lab(["bgpd1", "bgpd2", "bird", "gobgp"]).open()
        n1, n2 = lab["bgpd1"], lab["bgpd2"]
        cls.bgpd1 = BgpdDriver(n1.ns, BGPD_AS, n1.router_id,
                               _bgpd_neighbors(lab["bird"], BIRD_AS)
                               + _bgpd_neighbors(n2, BGPD_AS), mrai_ebgp=0, log_name="bgpd1.log")
        # bgpd2 waits for bgpd1 to dial, so the two never collide.
        cls.bgpd2 = BgpdDriver(n2.ns, BGPD_AS, n2.router_id,
                               [BgpdNeighbor(n1.ipv4, BGPD_AS, families=V4, passive=True),
                                BgpdNeighbor(n1.ipv6, BGPD_AS, families=V6, passive=True)]
                               + _bgpd_neighbors(lab["gobgp"], GOBGP_AS), mrai_ebgp=0,
                               log_name="bgpd2.log")
        cls.bgpds = [cls.bgpd1, cls.bgpd2]
        cls.bird = _bird(lab["bird"], _peer_neighbors(n1),
                         routes={"198.51.100.224/28": {"med": 10, "communities": ["65001:10"],
                                                       "large_communities": ["65001:1:10"]},
                                 "2001:db8:1e0::/48": {"med": 11, "communities": ["65001:11"]}})
        cls.gobgp = GoBGP(lab["gobgp"].ns, GOBGP_AS, lab["gobgp"].router_id,
                          [Neighbor(n2.ipv4, BGPD_AS, passive=True),
                           Neighbor(n2.ipv6, BGPD_AS, passive=True)],
                          routes={"198.51.100.240/28": {"med": 12, "communities": ["65003:12"]},
                                  "2001:db8:1f0::/48": {"communities": ["65003:13"]}})
        cls.bird.start()
        cls.gobgp.start()
        cls.bgpd2.start()
        cls.bgpd1.start()
        _wait_all(cls.bgpd1, [lab["bird"].ipv4, lab["bird"].ipv6, n2.ipv4, n2.ipv6])
        _wait_all(cls.bgpd2, [n1.ipv4, n1.ipv6, lab["gobgp"].ipv4, lab["gobgp"].ipv6])

    def test_routes_cross_the_ibgp_hop(self):
        """BIRD's routes reach GoBGP as [65000, 65001] from bgpd2; GoBGP's reach BIRD from bgpd1."""
        problems = []
        for origin, recv, asn, via in ((self.bird, self.gobgp, BIRD_AS, "bgpd2"),
                                       (self.gobgp, self.bird, GOBGP_AS, "bgpd1")):
            for prefix, attrs in origin.announced.items():
                try:
                    r = recv.wait_route(prefix, ROUTE_TIMEOUT)
                except AssertionError as e:
                    problems.append(f"{origin.name} -> {recv.name} {prefix}: {e}")
                    continue
                # The MED crosses the iBGP hop but not the second AS border.
                bad = _problems(r, (BGPD_AS, asn), _addr(self.lab[via], prefix), None, attrs)
                if isinstance(recv, GoBGP) and r.local_pref is not None:
                    bad.append(f"LOCAL_PREF {r.local_pref} sent over eBGP")
                problems += [f"{origin.name} -> {recv.name} {prefix}: {x}; got {r!r}"
                             for x in bad]
        self.fail_with_logs(problems)
        self.assert_clean_logs()

    def test_withdrawal_crosses_the_ibgp_hop(self):
        """A route BIRD withdraws leaves GoBGP (two hops away); announced again, it is back."""
        prefix = "198.51.100.224/28"
        attrs = self.bird.announced[prefix]
        self.gobgp.wait_route(prefix, ROUTE_TIMEOUT)
        self.bird.withdraw(prefix)
        try:
            self.gobgp.wait_no_route(prefix, ROUTE_TIMEOUT)
        finally:
            self.bird.announce(prefix, **attrs)
        self.gobgp.wait_route(prefix, ROUTE_TIMEOUT)
        self.assert_clean_logs()


__all__ = ["IbgpTransitTests", "RouteServerTests", "RouterTests"]
