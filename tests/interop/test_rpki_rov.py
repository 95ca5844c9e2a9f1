"""Interop: route origin validation (RFC 6811) with stayrtr, BIRD 2 and GoBGP in namespaces.

bgpd (AS65000) takes VRPs from stayrtr (RFC 8210; a JSON file of ROAs,
served on the bgpd namespace's loopback), routes from BIRD (AS65001) through
an import policy that rejects RPKI-invalid routes, and sends what it accepts
to GoBGP (AS4200000003).  Checked:

* The states: BIRD's routes are Valid, Invalid and NotFound as the file
  says (``bgpctl show routes --json``'s ``rpki`` field for the accepted
  ones), and ``bgpctl rpki validate`` agrees, with the reason.
* The policy: the Invalid route is not in GoBGP's view, the others are.
* A ROA added to the file (making a NotFound route Invalid and the Invalid
  one Valid), then removed: within the cache's refresh, GoBGP loses the
  newly invalid route and gets the newly valid one, then the reverse, with
  no session reset (no state transition, no NOTIFICATION, no ROUTE-REFRESH:
  the rejected route comes back from what bgpd kept).
* Expiry (with a local Expire of 90 s, below the 600 s RFC 8210 section 6 makes
  the least Expire): stayrtr stopped for longer than Expire, the data is
  dropped, every route falls back to NotFound and the Invalid one is
  accepted again.
* ASPA (draft-ietf-sidrops-aspa-verification; stayrtr 0.5.1 speaks RTR
  version 2 with ASPA records): BIRD is bgpd's customer (``role =
  "provider"``, RFC 9234), so its routes get upstream verification; an
  import policy rejects ASPA-invalid ones.  A route leaked through an origin
  whose ASPA does not list BIRD's AS is missing at GoBGP, one from an AS
  without ASPA (unknown) is there; when the ASPA record adds BIRD's AS the
  leak becomes valid and reaches GoBGP, with no session reset.

Needs root, BIRD, GoBGP and stayrtr; skips without them (fails under CI=true).
"""

from __future__ import annotations

import json
import os
import sys
from typing import Any, ClassVar

from tests.interop import harness
from tests.interop.bgpd_driver import BgpdDriver, BgpdNeighbor
from tests.interop.harness import Bird, GoBGP, Lab, Neighbor, Process, free_port, poll
from tests.interop.test_routes import BIRD_EXPORT, _LabCase

BGPD_AS = 65000
BIRD_AS = 65001
GOBGP_AS = 4200000003
ESTABLISH_TIMEOUT = 40.0
#: stayrtr re-reads its file every second and notifies; bgpd's refresh is 30 s.
REFRESH = 30
ROUTE_TIMEOUT = REFRESH + 15.0

V, I, N, X = "198.51.100.0/26", "198.51.100.64/26", "198.51.100.128/26", "198.51.100.192/26"
BIRD_ROUTES = {V: {}, I: {}, N: {}, X: {}}
#: V valid (its AS), I invalid (another AS); N and X covered by nothing.
BASE = [(V, 26, BIRD_AS), (I, 26, 64999)]
#: X now invalid (another AS), I now also authorised for BIRD's AS: valid.
CHANGED = BASE + [(X, 26, 64998), (I, 26, BIRD_AS)]

POLICY = """
[policies.aspa-in]
default = "accept"
[[policies.aspa-in.terms]]
name = "drop-leaks"
match = { aspa = "invalid" }
action = "reject"

[policies.rov]
default = "accept"
[[policies.rov.terms]]
name = "drop-invalid"
match = { rpki = "invalid" }
action = "reject"
"""


def roas(items: list[tuple[str, int, int]], aspas: dict[int, list[int]] | None = None) -> str:
    doc: dict[str, Any] = {"roas": [{"prefix": p, "maxLength": m, "asn": f"AS{a}"} for p, m, a in items]}
    if aspas:
        # stayrtr 0.5.1's format: records per address family (draft-ietf-sidrops-8210bis-10).
        records = [{"customer_asid": c, "providers": p} for c, p in sorted(aspas.items())]
        doc["provider_authorizations"] = {"ipv4": records, "ipv6": records}
    return json.dumps(doc)


class RovBgpd(BgpdDriver):
    """bgpd with an [api] and an [rpki] cache on its namespace's loopback, and the rov policy."""

    api_port = 0
    cache_port = 0
    aspa = False
    #: a local [[rpki.cache]] expire (0: the cache's own, 600 s)
    expire = 0

    def config_text(self) -> str:
        return super().config_text() + (
            f'\n[api]\nlisten = "127.0.0.1:{self.api_port}"\n'
            f'\n[rpki]\naspa = {"true" if self.aspa else "false"}\n'
            f'[[rpki.cache]]\nname = "stayrtr"\naddress = "127.0.0.1"\n'
            f'port = {self.cache_port}\n'
            + (f"expire = {self.expire}\n" if self.expire else "") + POLICY)

    def bgpctl(self, *args: str) -> Any:
        r = self.ns.run([sys.executable, "-m", "bgpd.cli", "--target", f"127.0.0.1:{self.api_port}",
                         "--json", *args], timeout=30)
        return json.loads(r.stdout)

    def rpki_routes(self) -> dict[str, str]:
        """prefix -> the listing's RPKI state of the Loc-RIB's IPv4 routes."""
        return {r["prefix"]: r.get("rpki", "RPKI_NOT_VALIDATED")
                for r in self.bgpctl("show", "routes").get("routes", [])}

    def validate(self, prefix: str, asn: int) -> dict:
        return self.bgpctl("rpki", "validate", prefix, str(asn))


class _RovLab(_LabCase):
    """bgpd, BIRD and (with ``with_gobgp``) GoBGP, stayrtr in bgpd's namespace."""

    with_gobgp: ClassVar[bool] = True
    #: BIRD's routes, bgpd's import policy and role towards BIRD, ASPA on or off
    routes: ClassVar[dict[str, dict[str, Any]]] = BIRD_ROUTES
    import_policy: ClassVar[str] = "rov"
    role: ClassVar[str | None] = None
    aspa: ClassVar[dict[int, list[int]] | None] = None
    #: a local [[rpki.cache]] expire, seconds (0: the cache's own, 600 s)
    expire: ClassVar[int] = 0
    bird: ClassVar[Bird]
    gobgp: ClassVar[GoBGP]
    bgpd: ClassVar[RovBgpd]
    stayrtr: ClassVar[Process | None] = None
    vrp_file: ClassVar[str]
    port: ClassVar[int]

    @classmethod
    def _build(cls) -> None:
        stayrtr = harness.require_binary("stayrtr")
        names = ["bgpd", "bird"] + (["gobgp"] if cls.with_gobgp else [])
        cls.lab = lab = Lab(names).open()
        b = lab["bgpd"]
        keys: dict[str, Any] = {"import_policy": [cls.import_policy], "export_policy": ["accept-all"]}
        if cls.role is not None:
            keys["role"] = cls.role
        neighbors = [BgpdNeighbor(lab["bird"].ipv4, BIRD_AS, families=("ipv4-unicast",), keys=keys)]
        if cls.with_gobgp:
            neighbors.append(BgpdNeighbor(lab["gobgp"].ipv4, GOBGP_AS, families=("ipv4-unicast",),
                                          keys={"import_policy": ["accept-all"],
                                                "export_policy": ["accept-all"]}))
        cls.bgpd = RovBgpd(b.ns, BGPD_AS, b.router_id, neighbors, mrai_ebgp=0)
        cls.bgpd.aspa = cls.aspa is not None
        cls.bgpd.expire = cls.expire
        cls.port = free_port()
        cls.bgpd.cache_port = cls.port
        cls.bgpd.api_port = free_port()
        while cls.bgpd.api_port == cls.port:
            cls.bgpd.api_port = free_port()
        cls.bgpds = [cls.bgpd]
        cls.vrp_file = os.path.join(b.ns.workdir, "vrps.json")
        cls.write_vrps(BASE, cls.aspa)
        cls.stayrtr = b.ns.popen([stayrtr, "-bind", f"127.0.0.1:{cls.port}", "-cache", cls.vrp_file,
                                  "-checktime=false", "-refresh", "1", "-metrics.addr", "127.0.0.1:0",
                                  "-protocol", "2" if cls.aspa is not None else "1",
                                  "-rtr.refresh", str(REFRESH), "-rtr.retry", "5",
                                  "-rtr.expire", "600"], log_name="stayrtr.log")
        peer = [Neighbor(b.ipv4, BGPD_AS, passive=True)]
        cls.bird = Bird(lab["bird"].ns, BIRD_AS, lab["bird"].router_id, peer, routes=cls.routes)
        cls.bird.export_filter = BIRD_EXPORT
        cls.bird.start()
        if cls.with_gobgp:
            cls.gobgp = GoBGP(lab["gobgp"].ns, GOBGP_AS, lab["gobgp"].router_id, peer, routes={})
            cls.gobgp.start()
        cls.bgpd.start()
        for node in names[1:]:
            cls.bgpd.wait_established(lab[node].ipv4, ESTABLISH_TIMEOUT)

    @classmethod
    def write_vrps(cls, items: list[tuple[str, int, int]], aspas: dict[int, list[int]] | None = None) -> None:
        tmp = cls.vrp_file + ".new"
        with open(tmp, "w") as f:
            f.write(roas(items, aspas))
        os.replace(tmp, cls.vrp_file)  # stayrtr never reads half a file

    def wait_states(self, want: dict[str, str], timeout: float = ROUTE_TIMEOUT) -> None:
        """Until bgpd's Loc-RIB holds exactly ``want`` (prefix -> RPKI state)."""
        try:
            poll(lambda: self.bgpd.rpki_routes() == want, timeout, 0.5, f"bgpd's Loc-RIB to be {want}")
        except AssertionError:
            self.fail_with_logs([f"bgpd holds {self.bgpd.rpki_routes()}, want {want}"])

    def wait_gobgp(self, want: set[str]) -> None:
        try:
            poll(lambda: set(self.gobgp.routes("ipv4")) == want, ROUTE_TIMEOUT, 0.5,
                 f"GoBGP to hold exactly {sorted(want)}")
        except AssertionError:
            self.fail_with_logs([f"GoBGP holds {sorted(self.gobgp.routes('ipv4'))}, want {sorted(want)}"])


class RovTests(_RovLab):
    """States, the policy's drop seen from GoBGP, and a ROA added then removed, no reset."""

    def test_states_drop_and_change(self):
        """Valid / Invalid / NotFound as the file says; GoBGP lacks the Invalid; ROA changes follow."""
        valid, invalid, nf = "RPKI_VALID", "RPKI_INVALID", "RPKI_NOT_FOUND"
        self.wait_states({V: valid, N: nf, X: nf})
        self.wait_gobgp({V, N, X})
        r = self.bgpd.validate(I, BIRD_AS)
        self.assertEqual(r["state"], invalid)
        self.assertEqual(r["reason"], f"covered by {I}-26 AS64999 but origin AS{BIRD_AS} does not match")
        self.assertEqual(self.bgpd.validate(V, BIRD_AS)["state"], valid)
        self.assertEqual(self.bgpd.validate(N, BIRD_AS)["state"], nf)
        vrps = self.bgpd.bgpctl("rpki", "vrps", I)["vrps"]
        self.assertEqual([(v["prefix"], v["max_length"], v["asn"]) for v in vrps], [(I, 26, 64999)])
        transitions = len(self.bgpd.transitions())
        log_at = len(self.bgpd.run_log())

        # A ROA for X with another AS, and one authorising BIRD for I.
        self.write_vrps(CHANGED)
        self.wait_states({V: valid, N: nf, I: valid})
        self.wait_gobgp({V, N, I})
        self.assertEqual(self.bgpd.validate(X, BIRD_AS)["state"], invalid)
        # And removed again.
        self.write_vrps(BASE)
        self.wait_states({V: valid, N: nf, X: nf})
        self.wait_gobgp({V, N, X})

        self.assertEqual(len(self.bgpd.transitions()), transitions, self.bgpd.run_log()[log_at:])
        after = self.bgpd.run_log()[log_at:]
        self.assertNotIn("NOTIFICATION", after)
        self.assertNotIn("ROUTE-REFRESH", after)
        self.assertIn("routes to run import policy for again", after)
        self.assert_clean_logs()


class RovExpiryTests(_RovLab):
    """The cache stopped past Expire: the data goes, every route is NotFound, the Invalid one is back."""

    with_gobgp = False
    #: a local Expire (the config allows 60 and up; the cache's own is 600 s)
    expire = 90

    def test_expiry_falls_back_to_not_found(self):
        """stayrtr stopped for longer than Expire (a local 90 s): all NotFound, nothing rejected."""
        self.wait_states({V: "RPKI_VALID", N: "RPKI_NOT_FOUND", X: "RPKI_NOT_FOUND"})
        assert self.stayrtr is not None
        self.stayrtr.stop()
        nf = "RPKI_NOT_FOUND"
        self.wait_states({V: nf, I: nf, N: nf, X: nf}, timeout=self.expire + 120)
        self.assertEqual(self.bgpd.validate(I, BIRD_AS)["reason"], "no covering VRP")
        self.assertIn("(Expire)", self.bgpd.log())
        self.assert_clean_logs()


#: BIRD (our customer) sends: its own route, a leak (an origin whose ASPA
#: names another provider), a route from an origin without ASPA.
OWN, LEAK, NOASPA = "198.51.100.0/27", "198.51.100.32/27", "198.51.100.64/27"
ASPA_ROUTES = {OWN: {}, LEAK: {"as_path": [65030]}, NOASPA: {"as_path": [65040]}}


class AspaTests(_RovLab):
    """ASPA from stayrtr at version 2: a customer's leak is dropped, fixed by a new record, no reset."""

    routes = ASPA_ROUTES
    import_policy = "aspa-in"
    role = "provider"  # ours: BIRD is our customer, so upstream verification
    aspa: ClassVar[dict[int, list[int]] | None] = {65030: [65099], BIRD_AS: [BGPD_AS]}

    def test_leak_dropped_then_attested(self):
        """The leak is missing at GoBGP, the unknown route there; BIRD's AS in the record brings it."""
        self.wait_gobgp({OWN, NOASPA})
        state = self.bgpd.bgpctl("rpki", "aspa", "upstream", str(BIRD_AS), "65030")
        self.assertEqual(state["state"], "ASPA_INVALID")
        transitions = len(self.bgpd.transitions())
        log_at = len(self.bgpd.run_log())
        self.write_vrps(BASE, {65030: [65099, BIRD_AS], BIRD_AS: [BGPD_AS]})
        self.wait_gobgp({OWN, NOASPA, LEAK})
        self.assertEqual(len(self.bgpd.transitions()), transitions, self.bgpd.run_log()[log_at:])
        after = self.bgpd.run_log()[log_at:]
        self.assertNotIn("NOTIFICATION", after)
        self.assertNotIn("ROUTE-REFRESH", after)
        self.assert_clean_logs()
