"""Interop: bgpd between ExaBGP (which dials in) and GoBGP.

Real daemons in network namespaces made by the test (see ``harness``).
ExaBGP only connects out (it does not listen).  bgpd's neighbor is NOT
passive: bgpd dials, is refused, and must take ExaBGP's own connection
between its attempts (RFC 4271 section 8.2.2 lets a speaker listen in
Active; README "A peer that only dials in").  Checked:

* The ExaBGP session reaches Established (RFC 4271 section 8.2.2), seen
  both in bgpd's log and in ExaBGP's neighbor-change events, on the
  connection ExaBGP opened, after bgpd's own attempts were refused.
* A route ExaBGP announces at run time through its API reaches GoBGP over
  eBGP -> eBGP: bgpd's AS in front of the AS_PATH (section 5.1.2), NEXT_HOP
  bgpd's own address (5.1.3), the MED not passed to another AS (5.1.4),
  COMMUNITIES (RFC 1997) unchanged.
* ExaBGP withdrawing it removes it from GoBGP (section 9.1.3).
* A route GoBGP announces reaches ExaBGP the same way, read from the
  UPDATEs ExaBGP's API process logged.

Address plan (``harness.Lab``): bgpd 192.0.2.1, ExaBGP 192.0.2.2, GoBGP
192.0.2.3 on one segment; announced prefixes from 198.51.100.0/24.  Needs
root; skips without it, and skips without exabgp/gobgpd (fails under
CI=true, like the harness).
"""

from __future__ import annotations

import re
from typing import Any, ClassVar

from twisted.trial.unittest import SynchronousTestCase

from tests.interop import harness
from tests.interop.bgpd_driver import BgpdDriver, BgpdNeighbor
from tests.interop.harness import ExaBGP, GoBGP, Lab, Neighbor, Route

BGPD_AS = 65000
EXABGP_AS = 65010
GOBGP_AS = 65020

V4 = ("ipv4-unicast",)
ESTABLISH_TIMEOUT = 40.0
ROUTE_TIMEOUT = 25.0

# Announced by ExaBGP at run time (API), withdrawn by the withdrawal test.
EXA_PREFIX = "198.51.100.0/26"
EXA_ATTRS: dict[str, Any] = {"med": 42, "communities": ["65010:1", "65010:2"]}
# Announced by GoBGP from the start.
GOBGP_ROUTES: dict[str, dict[str, Any]] = {
    "198.51.100.64/26": {"med": 7, "communities": ["65020:5"]},
}


def _problems(route: Route, as_path: tuple[int, ...], next_hop: str,
              attrs: dict[str, Any]) -> list[str]:
    """What differs from the expected eBGP -> eBGP attributes (empty: all fine)."""
    bad = []
    if route.as_path != as_path:
        bad.append(f"AS_PATH {route.as_path} != {as_path}")
    if not route.next_hop or route.next_hop[0] != next_hop:
        bad.append(f"NEXT_HOP {route.next_hop} != ({next_hop!r}, ...)")
    # RFC 4271 5.1.4: a MED received from one AS is not sent to another.
    if route.med is not None:
        bad.append(f"MED {route.med} passed on to another AS")
    want = sorted(harness.norm_community(c) for c in attrs.get("communities", ()))
    if sorted(route.communities) != want:
        bad.append(f"COMMUNITIES {sorted(route.communities)} != {want}")
    return bad


class ExaBgpTests(SynchronousTestCase):
    """bgpd (AS65000) with ExaBGP (AS65010, dials in) and GoBGP (AS65020) as eBGP peers."""

    lab: ClassVar[Lab | None] = None
    bgpd: ClassVar[BgpdDriver]
    exabgp: ClassVar[ExaBGP]
    gobgp: ClassVar[GoBGP]

    @classmethod
    def _build(cls) -> None:
        # Before any namespace exists: a missing daemon is a skip (or a CI failure).
        harness.require_binary("exabgp")
        harness.require_binary("gobgpd")
        cls.lab = lab = Lab(["bgpd", "exabgp", "gobgp"]).open()
        b, e, g = lab["bgpd"], lab["exabgp"], lab["gobgp"]
        cls.bgpd = BgpdDriver(
            b.ns, BGPD_AS, b.router_id,
            [BgpdNeighbor(e.ipv4, EXABGP_AS, families=V4),
             BgpdNeighbor(g.ipv4, GOBGP_AS, families=V4)],
            mrai_ebgp=0)
        # GoBGP waits for bgpd to dial; ExaBGP only dials bgpd, which dials
        # it too (and is refused).
        cls.gobgp = GoBGP(g.ns, GOBGP_AS, g.router_id,
                          [Neighbor(b.ipv4, BGPD_AS, passive=True)], routes=GOBGP_ROUTES)
        cls.exabgp = ExaBGP(e.ns, EXABGP_AS, e.router_id,
                            [Neighbor(b.ipv4, BGPD_AS, local_address=e.ipv4)])
        cls.gobgp.start()
        cls.bgpd.start()
        # bgpd's first attempt to reach ExaBGP is refused before ExaBGP runs.
        cls.bgpd.wait_log(rf"peer {re.escape(e.ipv4)} CONNECT -> ACTIVE: TcpConnectionFails",
                          ESTABLISH_TIMEOUT)
        cls.exabgp.start()
        cls.bgpd.wait_established(g.ipv4, ESTABLISH_TIMEOUT)
        cls.bgpd.wait_established(e.ipv4, ESTABLISH_TIMEOUT)
        cls.exabgp.wait_established(b.ipv4, ESTABLISH_TIMEOUT)

    @classmethod
    def setUpClass(cls) -> None:
        harness.require_root()
        cls.lab = None
        try:
            cls._build()
        except BaseException:
            cls.tearDownClass()
            raise

    @classmethod
    def tearDownClass(cls) -> None:
        # Lab.close stops every process started in its namespaces by PID,
        # then deletes the namespaces.
        if cls.lab is not None:
            cls.lab.close()
            cls.lab = None

    def setUp(self) -> None:
        # trial runs no class fixtures: there, each test builds its own lab.
        if type(self).lab is None:
            type(self).setUpClass()
            self.addCleanup(type(self).tearDownClass)

    def _fail_with_logs(self, problems: list[str]) -> None:
        if problems:
            self.fail("\n".join(problems)
                      + f"\n--- bgpd log tail:\n{self.bgpd.log()[-3000:]}"
                      + f"\n--- exabgp log tail:\n{self.exabgp.log()[-2000:]}")

    def _assert_clean_log(self) -> None:
        self.assertNotIn("Traceback", self.bgpd.log(), self.bgpd.log()[-6000:])

    def test_exabgp_session_established(self):
        """bgpd logs the ExaBGP session Established with AS65010 and ipv4-unicast."""
        e = self.lab["exabgp"]
        self.assertEqual(self.bgpd.session_state(e.ipv4), "established")
        info = self.bgpd.established_info(e.ipv4)
        self.assertIsNotNone(info, self.bgpd.run_log()[-3000:])
        self.assertEqual(info["asn"], EXABGP_AS)
        self.assertEqual(info["router_id"], e.router_id)
        self.assertIn("ipv4-unicast", info["families"])
        self.assertEqual(self.exabgp.session_state(self.lab["bgpd"].ipv4), "established")
        self._assert_clean_log()

    def test_not_passive_takes_exabgp_connection(self):
        """bgpd, not passive, was refused by ExaBGP and accepted ExaBGP's own connection."""
        b, e = self.lab["bgpd"], self.lab["exabgp"]
        self.assertFalse(harness.tcp_listening(e.ns, 179))
        self.assertRegex(self.bgpd.run_log(),
                         rf"peer {re.escape(e.ipv4)} CONNECT -> ACTIVE: TcpConnectionFails: "
                         rf"connect to {re.escape(e.ipv4)} failed")
        self.assertRegex(self.bgpd.run_log(),
                         rf"peer {re.escape(e.ipv4)}: accepting the peer's connection in "
                         r"(ACTIVE|CONNECT|IDLE)")
        # The session runs on the connection ExaBGP opened: bgpd's end is port 179.
        out = b.ns.run(["ss", "-Htn", "state", "established", f"dst = {e.ipv4}"]).stdout
        local_ports = {int(line.split()[-2].rpartition(":")[2])
                       for line in out.splitlines() if line.strip()}
        self.assertEqual(local_ports, {179}, out)
        self.assertEqual(self.bgpd.established_count(e.ipv4), 1,
                         self.bgpd.transitions(e.ipv4))

    def test_exabgp_route_reaches_gobgp_and_is_withdrawn(self):
        """ExaBGP's route reaches GoBGP as [65000, 65010], community kept, no MED; withdrawn, it goes."""
        b = self.lab["bgpd"]
        self.exabgp.announce(EXA_PREFIX, **EXA_ATTRS)
        try:
            r = self.gobgp.wait_route(EXA_PREFIX, ROUTE_TIMEOUT)
        except AssertionError as err:
            self._fail_with_logs([f"exabgp -> gobgp {EXA_PREFIX}: {err}"])
        bad = _problems(r, (BGPD_AS, EXABGP_AS), b.ipv4, EXA_ATTRS)
        if r.local_pref is not None:
            # GoBGP shows exactly the attributes received (RFC 4271 5.1.5).
            bad.append(f"LOCAL_PREF {r.local_pref} sent over eBGP")
        self._fail_with_logs([f"exabgp -> gobgp {EXA_PREFIX}: {x}; got {r!r}" for x in bad])
        self.exabgp.withdraw(EXA_PREFIX)
        try:
            self.gobgp.wait_no_route(EXA_PREFIX, ROUTE_TIMEOUT)
        except AssertionError as err:
            self._fail_with_logs([f"exabgp withdrew {EXA_PREFIX}, gobgp still has it: {err}"])
        # The session survived both UPDATEs.
        self.assertEqual(self.bgpd.established_count(self.lab["exabgp"].ipv4), 1,
                         self.bgpd.transitions(self.lab["exabgp"].ipv4))
        self._assert_clean_log()

    def test_gobgp_route_reaches_exabgp(self):
        """GoBGP's route reaches ExaBGP (its API's UPDATE log) as [65000, 65020], next hop bgpd, no MED."""
        b = self.lab["bgpd"]
        problems = []
        for prefix, attrs in GOBGP_ROUTES.items():
            try:
                r = self.exabgp.wait_route(prefix, ROUTE_TIMEOUT)
            except AssertionError as err:
                problems.append(f"gobgp -> exabgp {prefix}: {err}")
                continue
            bad = _problems(r, (BGPD_AS, GOBGP_AS), b.ipv4, attrs)
            if r.local_pref is not None:
                bad.append(f"LOCAL_PREF {r.local_pref} sent over eBGP")
            problems += [f"gobgp -> exabgp {prefix}: {x}; got {r!r}" for x in bad]
        self._fail_with_logs(problems)
        self._assert_clean_log()


__all__ = ["ExaBgpTests"]
