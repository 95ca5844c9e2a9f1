"""Interop: RFC 8950 extended next hop with BIRD 2 and FRR over IPv6-only links.

Three namespaces, two point-to-point veth links with IPv6 addresses only
(no IPv4 address on any interface; the router ids are just identifiers)::

    bird 2001:db8:1::2 --- 2001:db8:1::1 bgpd 2001:db8:2::1 --- 2001:db8:2::2 frr
    AS65001                       AS65000                          AS65002

Every session runs over IPv6 and carries IPv4 unicast (and IPv6 unicast),
with the Extended Next Hop Encoding capability (RFC 8950 section 4) on both
sides: BIRD ``extended next hop on``, FRR ``neighbor X capability
extended-nexthop``, bgpd ``extended_next_hop = true``.  Checked:

* IPv4 routes from BIRD reach FRR through bgpd and the other way round, so
  bgpd both accepted IPv4 NLRI with an IPv6 next hop in MP_REACH_NLRI and
  sent them on with its own IPv6 address on that link as next hop (RFC 4271
  5.1.3, eBGP), AS_PATH with bgpd's AS in front;
* bgpd's own IPv4 route reaches both, with bgpd's IPv6 address as next hop;
* IPv6 routes still go through as usual.

Needs root; skips without it (fails under CI=true, like the harness).
"""

from __future__ import annotations

from typing import Any, ClassVar

from twisted.trial.unittest import SynchronousTestCase

from tests.interop import harness
from tests.interop.bgpd_driver import BgpdDriver, BgpdNeighbor
from tests.interop.harness import Bird, Daemon, Frr, Neighbor, Netns

BGPD_AS = 65000
BIRD_AS = 65001
FRR_AS = 65002
BGPD_BIRD, BIRD_ADDR = "2001:db8:1::1", "2001:db8:1::2"
BGPD_FRR, FRR_ADDR = "2001:db8:2::1", "2001:db8:2::2"
ESTABLISH_TIMEOUT = 40.0
ROUTE_TIMEOUT = 25.0
BOTH = ("ipv4-unicast", "ipv6-unicast")

BIRD_ROUTES: dict[str, dict[str, Any]] = {
    "198.51.100.0/27": {"communities": ["65001:1"]},
    "2001:db8:101::/48": {"communities": ["65001:6"]},
}
FRR_ROUTES: dict[str, dict[str, Any]] = {
    "198.51.100.32/27": {"communities": ["65002:1"]},
    "2001:db8:102::/48": {"communities": ["65002:6"]},
}
ORIGINATE = [{"prefix": "198.51.100.96/27", "communities": ["65000:100"]}]

# BIRD: the IPv4 channel of a session over IPv6 with RFC 8950 on.  Written as
# an extra protocol statement because the harness's channels know nothing of it.
BIRD_V4_CHANNEL = "ipv4 { import all; export all; extended next hop on; };"


class ExtendedNextHopTests(SynchronousTestCase):
    """IPv4 routes over IPv6-only sessions, both ways, through bgpd between BIRD and FRR."""

    namespaces: ClassVar[list[Netns]] = []
    peers: ClassVar[dict[str, Daemon]] = {}
    bgpd: ClassVar[BgpdDriver | None] = None

    @classmethod
    def _build(cls) -> None:
        ns = {name: Netns(name).open() for name in ("bgpd", "bird", "frr")}
        cls.namespaces = list(ns.values())
        harness.veth(ns["bgpd"], ns["bird"], [f"{BGPD_BIRD}/64"], [f"{BIRD_ADDR}/64"],
                     name_a="eth0", name_b="eth0")
        harness.veth(ns["bgpd"], ns["frr"], [f"{BGPD_FRR}/64"], [f"{FRR_ADDR}/64"],
                     name_a="eth1", name_b="eth0")
        bird = Bird(ns["bird"], BIRD_AS, "192.0.2.2",
                    [Neighbor(BGPD_BIRD, BGPD_AS, local_address=BIRD_ADDR, passive=True,
                              families=("ipv6",), extra=(BIRD_V4_CHANNEL,))],
                    routes=BIRD_ROUTES)
        frr = Frr(ns["frr"], FRR_AS, "192.0.2.3",
                  [Neighbor(BGPD_FRR, BGPD_AS, passive=True, families=("ipv4", "ipv6"),
                            extra=(f"neighbor {BGPD_FRR} capability extended-nexthop",))],
                  routes=FRR_ROUTES)
        cls.peers = {"bird": bird, "frr": frr}
        keys = {"extended_next_hop": True}
        cls.bgpd = BgpdDriver(
            ns["bgpd"], BGPD_AS, "192.0.2.1",
            [BgpdNeighbor(BIRD_ADDR, BIRD_AS, families=BOTH, keys=dict(keys)),
             BgpdNeighbor(FRR_ADDR, FRR_AS, families=BOTH, keys=dict(keys))],
            originate=ORIGINATE, mrai_ebgp=0)
        bird.start()
        frr.start()
        cls.bgpd.start()
        for addr in (BIRD_ADDR, FRR_ADDR):
            cls.bgpd.wait_established(addr, ESTABLISH_TIMEOUT)

    @classmethod
    def setUpClass(cls) -> None:
        harness.require_root()
        try:
            cls._build()
        except BaseException:
            cls.tearDownClass()
            raise

    @classmethod
    def tearDownClass(cls) -> None:
        if cls.bgpd is not None:
            cls.bgpd.stop()
        for p in cls.peers.values():
            p.stop()
        for n in reversed(cls.namespaces):
            n.close()
        cls.namespaces, cls.peers, cls.bgpd = [], {}, None

    def setUp(self) -> None:
        # trial runs no class fixtures: there, each test builds its own lab.
        if type(self).bgpd is None:
            type(self).setUpClass()
            self.addCleanup(type(self).tearDownClass)

    def expect(self, receiver: str, prefix: str, as_path: tuple[int, ...], next_hop: str) -> None:
        """``prefix`` reaches ``receiver`` with ``as_path`` and ``next_hop`` first."""
        daemon = self.peers[receiver]
        try:
            route = daemon.wait_route(
                prefix, ROUTE_TIMEOUT,
                pred=lambda r: r.as_path == as_path and bool(r.next_hop)
                and r.next_hop[0] == next_hop)
        except AssertionError as e:
            got = daemon.routes("ipv6" if ":" in prefix else "ipv4").get(prefix)
            self.fail(f"{e}\n{receiver} has {got!r}\nbgpd log tail:\n"
                      f"{self.bgpd.run_log()[-4000:]}")
        self.assertEqual(route.as_path, as_path)

    def test_capability_negotiated(self):
        """All sessions are Established over IPv6 and carry both families."""
        for addr in (BIRD_ADDR, FRR_ADDR):
            info = self.bgpd.established_info(addr)
            self.assertIsNotNone(info, addr)
            self.assertEqual(set(info["families"]), set(BOTH), info)

    def test_bird_ipv4_to_frr(self):
        """BIRD's IPv4 route (IPv6 next hop) reaches FRR with bgpd's IPv6 address as next hop."""
        self.expect("frr", "198.51.100.0/27", (BGPD_AS, BIRD_AS), BGPD_FRR)

    def test_frr_ipv4_to_bird(self):
        """FRR's IPv4 route (IPv6 next hop) reaches BIRD with bgpd's IPv6 address as next hop."""
        self.expect("bird", "198.51.100.32/27", (BGPD_AS, FRR_AS), BGPD_BIRD)

    def test_originated_ipv4_to_both(self):
        """bgpd's own IPv4 route goes out with its IPv6 address on each link as next hop."""
        self.expect("bird", "198.51.100.96/27", (BGPD_AS,), BGPD_BIRD)
        self.expect("frr", "198.51.100.96/27", (BGPD_AS,), BGPD_FRR)

    def test_ipv6_both_ways(self):
        """IPv6 routes go through as usual on the same sessions."""
        self.expect("frr", "2001:db8:101::/48", (BGPD_AS, BIRD_AS), BGPD_FRR)
        self.expect("bird", "2001:db8:102::/48", (BGPD_AS, FRR_AS), BGPD_BIRD)

    def test_no_errors_logged(self):
        """No session was reset on the way and bgpd logged no traceback or RFC 7606 problem."""
        log = self.bgpd.log()
        self.assertNotIn("Traceback", log, log[-6000:])
        self.assertNotIn("NOTIFICATION", log, log[-6000:])
        self.assertNotIn("RFC 7606", log, log[-6000:])
        for addr in (BIRD_ADDR, FRR_ADDR):
            self.assertEqual(self.bgpd.established_count(addr), 1, log[-6000:])
