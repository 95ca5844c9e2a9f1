"""Tests for bgpd.rpki.validation: RPKI and ASPA states in import policy, revalidation in the RIB.

RFC 6811 section 2 states and the ASPA draft's, read by the ``rpki`` /
``aspa`` policy conditions; a VRP or ASPA transaction (RFC 8210 section 5),
an expiry drop (section 6) or a SLURM change (RFC 8416) re-runs import policy
for the affected prefixes only, and the RIB re-decides, with no reset.
"""

from __future__ import annotations

from twisted.trial.unittest import SynchronousTestCase

from bgpd.config import ConfigError, parse_config
from bgpd.policy import registry
from bgpd.policy.explain import explain
from bgpd.rib import RibOptions
from bgpd.rib.testing import IPV4, IPV6, announce, make_peer, pfx, withdraw
from bgpd.rpki.records import Aspa, Validity, Vrp
from bgpd.rpki.slurm import Slurm, parse_slurm
from bgpd.rpki.validation import RouteValidation
from bgpd.wire.constants import Role
from bgpd.wire.negotiated import Negotiated
from tests.rib.support import E1, E2, RibTestCase, attrs

POLICIES = """
[bgp]
local_as = 65000
router_id = "192.0.2.1"
listen_addresses = []

[policies.rov]
default = "accept"
[[policies.rov.terms]]
name = "drop-invalid"
match = { rpki = "invalid" }
action = "reject"
[[policies.rov.terms]]
name = "prefer-valid"
match = { rpki = "valid" }
action = { accept = true, local_pref = 200 }

[policies.aspa]
default = "accept"
[[policies.aspa.terms]]
name = "drop-leaks"
match = { aspa = "invalid" }
action = "reject"
"""

#: A customer (its role towards us): upstream verification.
CUSTOMER = make_peer("198.51.100.2", 65002, local_address="198.51.100.1", role=int(Role.CUSTOMER))


def vrp(text: str, max_length: int, asn: int) -> Vrp:
    fam = IPV6 if ":" in text else IPV4
    return Vrp(fam, pfx(text), max_length, asn)


class RevalidationTests(RibTestCase):
    """A VRP change re-runs import policy for the covered prefixes and the RIB re-decides."""

    def setUp(self):
        super().setUp()
        self.v = RouteValidation()
        config = parse_config(POLICIES)
        self.rib.set_policies(registry(config.sets, config.policies, self.v.rpki_state, self.v.aspa_state))
        self.v.attach(self.rib)
        self.load(vrp("10.0.0.0/16", 16, 65001), vrp("10.1.0.0/16", 24, 65009))
        self.add(E1, import_policy=["rov"])
        self.out = self.add(E2)
        self.rib.receive(E1, announce(attrs((65001,)), ["10.0.0.0/16", "10.1.0.0/16", "10.2.0.0/16"]))
        self.settle()

    def load(self, *vrps, reset=True, withdrawn=(), serial=1):
        self.v.table.begin("c", reset)
        self.v.table.vrps("c", list(vrps), list(withdrawn))
        self.v.table.end("c", serial)

    def test_states_at_import(self):
        """Valid gets local_pref 200, Invalid is rejected, NotFound accepted unchanged."""
        self.assertEqual(self.rib.best(IPV4, pfx("10.0.0.0/16")).attrs.local_pref, 200)
        self.assertIsNone(self.rib.best(IPV4, pfx("10.1.0.0/16")))
        self.assertIsNotNone(self.rib.best(IPV4, pfx("10.2.0.0/16")))
        self.assertEqual(set(self.out.routes()), {pfx("10.0.0.0/16"), pfx("10.2.0.0/16")})

    def test_vrp_added_makes_valid(self):
        """An added VRP that matches the rejected route brings it in, and the other peer hears it."""
        self.load(vrp("10.1.0.0/16", 24, 65001), serial=2, reset=False)
        self.settle()
        self.assertEqual(self.rib.best(IPV4, pfx("10.1.0.0/16")).attrs.local_pref, 200)
        self.assertIn(pfx("10.1.0.0/16"), self.out.routes())

    def test_vrp_added_makes_invalid(self):
        """A new covering VRP for another AS makes an accepted route Invalid: withdrawn downstream."""
        self.load(vrp("10.2.0.0/15", 24, 65099), serial=2, reset=False)
        self.settle()
        self.assertIsNone(self.rib.best(IPV4, pfx("10.2.0.0/16")))
        self.assertNotIn(pfx("10.2.0.0/16"), self.out.routes())

    def test_only_affected_prefixes(self):
        """Only the routes inside the changed VRP prefixes are queued again."""
        self.load(vrp("10.2.0.0/16", 16, 65001), serial=2, reset=False)
        self.assertEqual(self.v.last_revalidation[0], 1)

    def test_rewritten_route_from_its_input(self):
        """A route the policy rewrote (Valid, local_pref 200) is re-run from what was received."""
        self.load(withdrawn=[vrp("10.0.0.0/16", 16, 65001)], serial=2, reset=False)
        self.settle()
        self.assertEqual(self.rib.best(IPV4, pfx("10.0.0.0/16")).attrs.local_pref, None)

    def test_drop_falls_back_to_not_found(self):
        """The cache's data expired: every route is NotFound, the Invalid one comes back."""
        self.v.table.drop("c")
        self.settle()
        for p in ("10.0.0.0/16", "10.1.0.0/16", "10.2.0.0/16"):
            self.assertIsNotNone(self.rib.best(IPV4, pfx(p)), p)
        self.assertEqual(self.rib.best(IPV4, pfx("10.0.0.0/16")).attrs.local_pref, None)

    def test_withdrawn_route_stays_gone(self):
        """A rejected route the peer withdrew is not brought back by a later VRP."""
        self.rib.receive(E1, withdraw(["10.1.0.0/16"]))
        self.settle()
        self.load(vrp("10.1.0.0/16", 24, 65001), serial=2, reset=False)
        self.settle()
        self.assertIsNone(self.rib.best(IPV4, pfx("10.1.0.0/16")))

    def test_no_session_reset(self):
        """Revalidation sends UPDATEs only: the peer stays up, its Adj-RIB-In follows."""
        self.load(vrp("10.1.0.0/16", 24, 65001), serial=2, reset=False)
        self.settle()
        self.assertIn(pfx("10.1.0.0/16"), self.rib.adj_rib_in(E1, IPV4))
        self.assertIn(E1.address, [p.address for p in self.rib.peers()])

    def test_slurm_applied(self):
        """A SLURM assertion applied later makes the rejected route Valid; removing it undoes that."""
        doc = {"slurmVersion": 1,
               "validationOutputFilters": {"prefixFilters": [], "bgpsecFilters": []},
               "locallyAddedAssertions": {"prefixAssertions": [
                   {"prefix": "10.1.0.0/16", "asn": 65001}], "bgpsecAssertions": []}}
        self.v.apply_slurm(parse_slurm(doc))
        self.settle()
        self.assertEqual(self.rib.best(IPV4, pfx("10.1.0.0/16")).attrs.local_pref, 200)
        self.v.apply_slurm(Slurm())
        self.settle()
        self.assertIsNone(self.rib.best(IPV4, pfx("10.1.0.0/16")))

    def test_accept_all_peer_untouched(self):
        """A peer whose chain reads no state keeps nothing and is not re-run."""
        self.rib.receive(E2, announce(attrs((65002,), nh="198.51.100.2"), ["10.9.0.0/16"]))
        self.settle()
        self.load(vrp("10.9.0.0/16", 16, 65099), serial=2, reset=False)
        self.assertEqual(self.v.last_revalidation[0], 0)
        self.settle()
        self.assertIsNotNone(self.rib.best(IPV4, pfx("10.9.0.0/16")))


class AspaRevalidationTests(RibTestCase):
    """ASPA: the state follows the peer's role; a record change re-runs the paths through that AS."""

    def setUp(self):
        super().setUp()
        self.v = RouteValidation()
        config = parse_config(POLICIES)
        self.rib.set_policies(registry(config.sets, config.policies, self.v.rpki_state, self.v.aspa_state))
        self.v.attach(self.rib)
        self.add(CUSTOMER, import_policy=["aspa"])
        # 65002 (our customer) sends a route from 65020 that it learnt from 65030.
        self.rib.receive(CUSTOMER, announce(attrs((65002, 65030, 65020), nh="198.51.100.2"),
                                            ["10.5.0.0/16"]))
        self.rib.receive(CUSTOMER, announce(attrs((65002, 65040), nh="198.51.100.2"), ["10.6.0.0/16"]))
        self.settle()

    def aspas(self, *records, serial=1):
        self.v.table.begin("c", False)
        self.v.table.aspas("c", list(records), [])
        self.v.table.end("c", serial)

    def test_unknown_accepted(self):
        """Without ASPA records every path is Unknown and accepted."""
        self.assertIsNotNone(self.rib.best(IPV4, pfx("10.5.0.0/16")))

    def test_leak_rejected_on_change(self):
        """An ASPA saying 65030 is not 65020's provider makes the leak Invalid: dropped, nothing else."""
        self.aspas(Aspa(65020, (65021,)))
        self.settle()
        self.assertIsNone(self.rib.best(IPV4, pfx("10.5.0.0/16")))
        self.assertIsNotNone(self.rib.best(IPV4, pfx("10.6.0.0/16")))
        state = self.v.route_states(CUSTOMER, IPV4, pfx("10.5.0.0/16"),
                                    attrs((65002, 65030, 65020), nh="198.51.100.2"))
        self.assertEqual(state, (Validity.NOT_FOUND, Validity.INVALID))

    def test_ibgp_not_verified(self):
        """Routes from iBGP are not ASPA-verified (Unknown)."""
        ibgp = make_peer("192.0.2.10", 65000)
        self.assertEqual(self.v.aspa_state(ibgp, IPV4, attrs((65030, 65020))), "unknown")


class PolicyConditionTests(SynchronousTestCase):
    """The rpki / aspa conditions: config-validated, compiled with the validators, shown by explain."""

    def test_bad_aspa_value(self):
        """An unknown aspa state is a config error naming the key."""
        text = POLICIES.replace('match = { aspa = "invalid" }', 'match = { aspa = "leak" }')
        with self.assertRaises(ConfigError) as cm:
            parse_config(text)
        self.assertIn("policies.aspa.terms[0].match.aspa", str(cm.exception))

    def test_aspa_list(self):
        """aspa takes a list of states too."""
        text = POLICIES.replace('match = { aspa = "invalid" }', 'match = { aspa = ["invalid", "unknown"] }')
        config = parse_config(text)
        p = registry(config.sets, config.policies)["aspa"]
        self.assertIsNone(p(CUSTOMER, IPV4, pfx("10.0.0.0/8"), attrs((65002,))))

    def test_explain_shows_state(self):
        """explain names the state each rpki condition saw."""
        v = RouteValidation()
        v.table.begin("c", True)
        v.table.vrps("c", [vrp("10.0.0.0/8", 8, 65099)], [])
        v.table.end("c", 1)
        config = parse_config(POLICIES)
        reg = registry(config.sets, config.policies, v.rpki_state, v.aspa_state)
        e = explain([reg["rov"]], E1, IPV4, pfx("10.0.0.0/8"), attrs((65001,)))
        self.assertEqual(e.policies[0].terms[0].conditions, (("rpki=invalid", True),))
        self.assertFalse(e.accepted)

    def test_without_validator(self):
        """Compiled without validators (no [rpki]): rpki is not-found, aspa unknown."""
        config = parse_config(POLICIES)
        reg = registry(config.sets, config.policies)
        self.assertIsNotNone(reg["rov"](E1, IPV4, pfx("10.0.0.0/8"), attrs((65001,))))
        self.assertTrue(reg["rov"].depends_on_validation)


class AddPathRevalidationTests(RibTestCase):
    """ADD-PATH receive (RFC 7911): keys are (path id, prefix); revalidation finds them by prefix."""

    def test_two_paths_follow_the_vrps(self):
        """Two paths of one prefix, different origins: a VRP change swaps which one is accepted."""
        v = RouteValidation()
        config = parse_config(POLICIES)
        self.rib.set_policies(registry(config.sets, config.policies, v.rpki_state, v.aspa_state))
        v.attach(self.rib)
        self.add(E1, neg=Negotiated(addpath_rx=frozenset({IPV4})), import_policy=["rov"])
        p = pfx("10.0.0.0/16")
        self.rib.receive(E1, announce(attrs((65001, 65010)), [(1, p)]))
        self.rib.receive(E1, announce(attrs((65001, 65020)), [(2, p)]))
        self.settle()
        self.assertEqual(len(self.rib.candidates(IPV4, p)), 2)

        def load(asn, serial):
            v.table.begin("c", True)
            v.table.vrps("c", [vrp("10.0.0.0/16", 16, asn)], [])
            v.table.end("c", serial)
            self.settle()

        load(65010, 1)
        self.assertEqual([c.path_id for c in self.rib.candidates(IPV4, p)], [1])
        load(65020, 2)
        self.assertEqual([c.path_id for c in self.rib.candidates(IPV4, p)], [2])


class ChunkedRevalidationTests(RibTestCase):
    """Revalidating many routes goes through the work queue in turns of chunk_size."""

    options = RibOptions(mrai_ebgp=0.0, mrai_ibgp=0.0, chunk_size=10)

    def test_drop_in_chunks(self):
        """100 routes made Invalid, then all data dropped: every turn handles at most 10 of them."""
        v = RouteValidation()
        config = parse_config(POLICIES)
        self.rib.set_policies(registry(config.sets, config.policies, v.rpki_state, v.aspa_state))
        v.attach(self.rib)
        self.add(E1, import_policy=["rov"])
        prefixes = [f"10.0.{i}.0/24" for i in range(100)]
        self.rib.receive(E1, announce(attrs((65001,)), prefixes))
        self.settle()
        v.table.begin("c", True)
        v.table.vrps("c", [vrp("10.0.0.0/16", 24, 65099)], [])
        v.table.end("c", 1)
        self.settle()
        self.assertEqual(self.rib.loc_rib_size(IPV4), 0)
        self.rib.stats.largest_turn = 0
        v.table.drop("c")
        turns = self.rib.stats.turns
        self.settle()
        self.assertEqual(self.rib.loc_rib_size(IPV4), 100)
        self.assertLessEqual(self.rib.stats.largest_turn, 10)
        self.assertGreaterEqual(self.rib.stats.turns - turns, 10)

    def test_paths_looked_at_in_turns(self):
        """revalidate() only queues: the path test runs later, at most chunk_size routes a turn."""
        v = RouteValidation()
        config = parse_config(POLICIES)
        self.rib.set_policies(registry(config.sets, config.policies, v.rpki_state, v.aspa_state))
        self.add(E1, import_policy=["aspa"])
        self.rib.receive(E1, announce(attrs((65001,)), [f"10.0.{i}.0/24" for i in range(100)]))
        self.settle()
        seen = []

        def through(a):
            seen.append(self.rib.stats.turns)
            return True

        self.assertEqual(self.rib.revalidate(IPV4, paths=through), 100)
        self.assertEqual(seen, [])
        self.settle()
        self.assertEqual(len(seen), 100)
        self.assertEqual(max(seen.count(t) for t in set(seen)), 10)
