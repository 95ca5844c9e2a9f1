"""Interop: route policy (issue 8) between real BIRD 2 and GoBGP, changed by SIGHUP.

bgpd (AS65000) has eBGP sessions with BIRD (AS65001) and GoBGP
(AS4200000003), IPv4 unicast, in namespaces made by the test
(``harness.Lab``).  Checked, from what the other daemons receive:

* Import (RFC 4271 9.1.1): bgpd's import filter on the BIRD session drops
  one BIRD prefix and tags another with 65000:77, which GoBGP then sees.
* Export (RFC 4271 9.1.3): BIRD and GoBGP receive exactly what their
  export policies allow.
* A SIGHUP that changes the import and both export policies: within seconds
  the peers see the new result (the dropped prefix comes back through
  ROUTE-REFRESH, RFC 2918, meeting the new chain; export differences are
  sent), with no session reset: bgpd logs no transition, BIRD's and GoBGP's
  session uptimes keep counting, and no NOTIFICATION appears in any log.

Needs root; skips without it (fails under CI=true, like the harness).
"""

from __future__ import annotations

import signal
from typing import Any, ClassVar

from tests.interop import harness
from tests.interop.bgpd_driver import BgpdDriver, BgpdNeighbor
from tests.interop.harness import Bird, GoBGP, Lab, Neighbor
from tests.interop.test_routes import BIRD_EXPORT, _LabCase

BGPD_AS = 65000
BIRD_AS = 65001
GOBGP_AS = 4200000003
ESTABLISH_TIMEOUT = 40.0
ROUTE_TIMEOUT = 25.0
# Once the routes that must arrive have, how long the exact table must hold.
SETTLE = 3.0

A, B, C, D = "198.51.100.0/27", "198.51.100.32/27", "198.51.100.64/27", "198.51.100.96/27"
E, F = "198.51.100.128/27", "198.51.100.160/27"
BIRD_ROUTES = {A: {}, B: {}, C: {}, D: {}}
GOBGP_ROUTES = {E: {}, F: {}}
TAG = "65000:77"

POLICY = """
[sets.prefix.p-a]
prefixes = ["{A}"]
[sets.prefix.p-b]
prefixes = ["{B}"]
[sets.prefix.p-c]
prefixes = ["{C}"]
[sets.prefix.p-d]
prefixes = ["{D}"]
[sets.prefix.p-e]
prefixes = ["{E}"]
[sets.prefix.p-f]
prefixes = ["{F}"]

[policies.bird-in]
default = "accept"
[[policies.bird-in.terms]]
name = "drop"
match = {{ prefix_set = "{drop}" }}
action = "reject"
[[policies.bird-in.terms]]
name = "tag"
match = {{ prefix_set = "p-c" }}
action = {{ accept = true, add_communities = ["{TAG}"] }}

[policies.to-gobgp]
default = "accept"
[[policies.to-gobgp.terms]]
name = "hold-back"
match = {{ prefix_set = "{not_gobgp}" }}
action = "reject"

[policies.to-bird]
default = "accept"
[[policies.to-bird.terms]]
name = "hold-back"
match = {{ prefix_set = "{not_bird}" }}
action = "reject"
"""

BEFORE = {"drop": "p-b", "not_gobgp": "p-d", "not_bird": "p-f"}
# GoBGP's own prefix in not_gobgp: nothing of BIRD's is held back any more.
AFTER = {"drop": "p-a", "not_gobgp": "p-e", "not_bird": "p-e"}


def policy_text(choice: dict[str, str]) -> str:
    return POLICY.format(A=A, B=B, C=C, D=D, E=E, F=F, TAG=TAG, **choice)


class PolicyBgpd(BgpdDriver):
    """The driver's config plus ``[sets]`` and ``[policies]`` (replaceable before a SIGHUP)."""

    policy = ""

    def config_text(self) -> str:
        return super().config_text() + "\n" + self.policy


def _gobgp_peer(g: GoBGP, address: str) -> dict[str, Any]:
    for n in g.neighbors_json():
        conf = n.get("conf", {})
        if conf.get("neighbor_address") == address:
            return n
    raise AssertionError(f"GoBGP has no neighbor {address}")


def _gobgp_session(g: GoBGP, address: str) -> tuple[Any, int]:
    """(uptime as GoBGP reports it, NOTIFICATIONs sent + received) for the session with bgpd."""
    n = _gobgp_peer(g, address)
    uptime = n.get("timers", {}).get("state", {}).get("uptime")
    msgs = n.get("state", {}).get("messages", {})
    notes = sum(int(msgs.get(d, {}).get("notification", 0) or 0) for d in ("received", "sent"))
    return uptime, notes


def _bird_since(bird: Bird, address: str) -> str:
    """The protocol's "since" column (epoch seconds: the harness sets timeformat %s)."""
    name = bird.proto_name(address)
    for line in bird.birdc("show", "protocols", name).splitlines():
        cols = line.split()
        if cols and cols[0] == name and len(cols) >= 5:
            return cols[4]
    raise AssertionError(f"BIRD has no protocol {name}")


class PolicyTests(_LabCase):
    """bgpd between BIRD and GoBGP with import and export policies, then a SIGHUP changing them."""

    bird: ClassVar[Bird]
    gobgp: ClassVar[GoBGP]
    bgpd: ClassVar[PolicyBgpd]

    @classmethod
    def _build(cls) -> None:
        cls.lab = lab = Lab(["bgpd", "bird", "gobgp"]).open()
        b = lab["bgpd"]
        neighbors = [
            BgpdNeighbor(lab["bird"].ipv4, BIRD_AS, families=("ipv4-unicast",),
                         keys={"import_policy": ["bird-in"], "export_policy": ["to-bird"]}),
            BgpdNeighbor(lab["gobgp"].ipv4, GOBGP_AS, families=("ipv4-unicast",),
                         keys={"import_policy": ["accept-all"], "export_policy": ["to-gobgp"]}),
        ]
        cls.bgpd = PolicyBgpd(b.ns, BGPD_AS, b.router_id, neighbors, mrai_ebgp=0)
        cls.bgpd.policy = policy_text(BEFORE)
        cls.bgpds = [cls.bgpd]
        peer = [Neighbor(b.ipv4, BGPD_AS, passive=True)]
        cls.bird = Bird(lab["bird"].ns, BIRD_AS, lab["bird"].router_id, peer, routes=BIRD_ROUTES)
        cls.bird.export_filter = BIRD_EXPORT
        cls.gobgp = GoBGP(lab["gobgp"].ns, GOBGP_AS, lab["gobgp"].router_id, peer,
                          routes=GOBGP_ROUTES)
        cls.bird.start()
        cls.gobgp.start()
        cls.bgpd.start()
        for node in ("bird", "gobgp"):
            cls.bgpd.wait_established(lab[node].ipv4, ESTABLISH_TIMEOUT)

    def _wait_exact(self, daemon: Any, want: set[str], tagged: set[str]) -> list[str]:
        """Poll until ``daemon`` has exactly ``want`` (``tagged`` carrying TAG); what is wrong if not."""
        def ok() -> bool:
            routes = daemon.routes("ipv4")
            return set(routes) == want and all(TAG in routes[p].communities for p in tagged)

        try:
            harness.poll(ok, ROUTE_TIMEOUT, 0.5, f"{daemon.name} to hold exactly {sorted(want)}")
            # And it stays so (nothing more arrives late).
            harness.poll(lambda: not ok(), SETTLE, 0.5, "a change")
        except AssertionError:
            pass
        routes = daemon.routes("ipv4")
        problems = []
        if set(routes) != want:
            problems.append(f"{daemon.name} holds {sorted(routes)}, want {sorted(want)}")
        for p in tagged & set(routes):
            if TAG not in routes[p].communities:
                problems.append(f"{daemon.name}: {p} lacks {TAG}: {routes[p]!r}")
        return problems

    def _sessions(self) -> dict[str, Any]:
        b = self.lab["bgpd"].ipv4
        return {"bird since": _bird_since(self.bird, b), "gobgp": _gobgp_session(self.gobgp, b)}

    def test_policies_then_sighup(self):
        """Import drop and tag, exact exports; after SIGHUP the new result, no session reset."""
        problems = self._wait_exact(self.gobgp, {A, C}, {C})
        problems += self._wait_exact(self.bird, {E}, set())
        self.fail_with_logs(problems)
        sessions = self._sessions()
        self.assertIsNotNone(sessions["gobgp"][0], "GoBGP shows no session uptime")
        self.assertEqual(sessions["gobgp"][1], 0, "NOTIFICATIONs on the GoBGP session")
        bird_log, gobgp_log = len(self.bird.log()), len(self.gobgp.log())
        bgpd_log = len(self.bgpd.run_log())
        transitions = len(self.bgpd.transitions())

        self.bgpd.policy = policy_text(AFTER)
        self.bgpd.write_config()
        self.bgpd.proc.signal(signal.SIGHUP)
        self.bgpd.wait_log("reloading config from", ROUTE_TIMEOUT)
        problems = self._wait_exact(self.gobgp, {B, C, D}, {C})
        problems += self._wait_exact(self.bird, {F}, set())
        self.fail_with_logs(problems)

        # No reset: same sessions, uptime still counting from before, no NOTIFICATION.
        self.assertEqual(self._sessions(), sessions)
        self.assertEqual(len(self.bgpd.transitions()), transitions, self.bgpd.run_log()[bgpd_log:])
        after = self.bgpd.run_log()[bgpd_log:]
        self.assertNotIn("NOTIFICATION", after)
        self.assertIn("sent ROUTE-REFRESH", after)
        self.assertIn("export policy changed", after)
        self.assertNotIn("reload refused", after)
        for name, text in (("bird", self.bird.log()[bird_log:]), ("gobgp", self.gobgp.log()[gobgp_log:])):
            self.assertNotIn("notification", text.lower(), f"{name} log after the SIGHUP:\n{text}")
        self.assert_clean_logs()
