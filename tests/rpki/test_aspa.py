"""Tests for bgpd.rpki.aspa: draft-ietf-sidrops-aspa-verification-24's hop check and procedures.

The classes named ``Section5_*Tests`` follow the draft's section 5 text step
by step (5.1 the compressed AS_PATH, 5.2 the hop check, 5.3 the ramps, 5.4
upstream and 5.5 downstream, steps 1 to 6); the draft has no test vectors,
so the paths are built here from each step's wording.  The older classes
above them cover the same ground with everyday topologies.
"""

from __future__ import annotations

from twisted.trial.unittest import SynchronousTestCase

from bgpd.rpki.aspa import DOWNSTREAM, UPSTREAM, AspaTable, Hop, collapse, direction_for_role, ramps
from bgpd.rpki.records import Aspa, Validity
from bgpd.wire.constants import Role

SEQ = 2
SET = 1


def seq(*asns: int) -> tuple:
    return ((SEQ, asns),)


class HopTests(SynchronousTestCase):
    """hop(a, b): No Attestation, Provider+, Not Provider+."""

    def setUp(self):
        self.t = AspaTable()
        self.t.set({64500: [64510, 64511]})

    def test_no_attestation(self):
        """An AS without an ASPA gives No Attestation."""
        self.assertEqual(self.t.hop(64501, 64510), Hop.NO_ATTESTATION)

    def test_provider(self):
        """A listed provider is Provider+."""
        self.assertEqual(self.t.hop(64500, 64511), Hop.PROVIDER_PLUS)

    def test_not_provider(self):
        """An AS not in the attested set is Not Provider+."""
        self.assertEqual(self.t.hop(64500, 64512), Hop.NOT_PROVIDER_PLUS)


class CollapseTests(SynchronousTestCase):
    """The path is de-prepended; an AS_SET makes it unverifiable."""

    def test_prepends(self):
        """Prepends collapse to one AS."""
        self.assertEqual(collapse(((SEQ, (3, 3, 2, 1, 1, 1)),)), (3, 2, 1))

    def test_as_set(self):
        """An AS_SET gives None (Invalid)."""
        self.assertIsNone(collapse(((SEQ, (3,)), (SET, (1, 2)))))


class UpstreamTests(SynchronousTestCase):
    """Upstream: routes from customers, peers, RS clients, route servers."""

    def setUp(self):
        # Origin 64496 is a customer of 64497, which is a customer of 64498.
        self.t = AspaTable()
        self.t.set({64496: [64497], 64497: [64498], 64499: [64500]})

    def test_valid_chain(self):
        """Every hop from the origin up is Provider+: Valid."""
        self.assertEqual(self.t.verify(seq(64498, 64497, 64496), UPSTREAM), Validity.VALID)

    def test_single_as(self):
        """A path of the neighbor alone is Valid."""
        self.assertEqual(self.t.verify(seq(64499), UPSTREAM), Validity.VALID)

    def test_leak(self):
        """A customer re-announcing its provider's route: a Not Provider+ hop, Invalid."""
        # 64497 learnt the route from its provider 64498 and sends it up to us via 64499.
        self.assertEqual(self.t.verify(seq(64499, 64497, 64498), UPSTREAM), Validity.INVALID)

    def test_unknown(self):
        """A hop from an AS without ASPA and no Not Provider+: Unknown (NOT_FOUND)."""
        self.assertEqual(self.t.verify(seq(64501, 64502), UPSTREAM), Validity.NOT_FOUND)

    def test_prepends_collapsed(self):
        """Prepending does not make a hop of an AS to itself."""
        self.assertEqual(self.t.verify(seq(64498, 64498, 64497, 64496, 64496), UPSTREAM), Validity.VALID)

    def test_as_set(self):
        """An AS_SET anywhere: Invalid."""
        path = ((SEQ, (64498, 64497)), (SET, (64496, 64495)))
        self.assertEqual(self.t.verify(path, UPSTREAM), Validity.INVALID)

    def test_neighbor_check(self):
        """The neighbor AS must be the first AS of the path."""
        path = seq(64498, 64497, 64496)
        self.assertEqual(self.t.verify(path, UPSTREAM, neighbor_as=64498), Validity.VALID)
        self.assertEqual(self.t.verify(path, UPSTREAM, neighbor_as=64510), Validity.INVALID)


class DownstreamTests(SynchronousTestCase):
    """Downstream: routes from a provider (up ramp, then down ramp)."""

    def setUp(self):
        #        64500 (top)
        #       /         \
        #   64498        64501        (64498 and 64501 are customers of 64500)
        #     |            |
        #   64496        64502 -- us  (64496 customer of 64498; we are 64502's customer)
        self.t = AspaTable()
        self.t.set({64496: [64498], 64498: [64500], 64501: [64500], 64502: [64501]})

    def test_valley_free(self):
        """Up from the origin to the top, then down to us: Valid."""
        path = seq(64502, 64501, 64500, 64498, 64496)
        self.assertEqual(self.t.verify(path, DOWNSTREAM), Validity.VALID)

    def test_short(self):
        """Two ASes or fewer from a provider: Valid."""
        self.assertEqual(self.t.verify(seq(64502, 64499), DOWNSTREAM), Validity.VALID)

    def test_valley(self):
        """Down and then up again (a leak through a customer): Invalid."""
        # 64498 sent its provider's route down to 64496, which leaked it up to 64497, ... to us.
        t = AspaTable()
        t.set({64496: [64498], 64498: [64500], 64497: [64503], 64503: [64504]})
        path = seq(64503, 64497, 64496, 64498, 64500)
        self.assertEqual(t.verify(path, DOWNSTREAM), Validity.INVALID)

    def test_unknown(self):
        """Ramps that only meet across hops without attestation: Unknown."""
        t = AspaTable()
        t.set({64496: [64498]})
        path = seq(64502, 64501, 64500, 64498, 64496)
        self.assertEqual(t.verify(path, DOWNSTREAM), Validity.NOT_FOUND)

    def test_upstream_would_reject(self):
        """The same valley-free path is Invalid upstream: the procedure matters."""
        path = seq(64502, 64501, 64500, 64498, 64496)
        self.assertEqual(self.t.verify(path, UPSTREAM), Validity.INVALID)


class RoleTests(SynchronousTestCase):
    """The procedure follows the peer's RFC 9234 role."""

    def test_roles(self):
        """From a provider downstream; customer, peer, RS, RS client upstream; no role: none."""
        self.assertEqual(direction_for_role(int(Role.PROVIDER)), DOWNSTREAM)
        for role in (Role.CUSTOMER, Role.PEER, Role.RS, Role.RS_CLIENT):
            self.assertEqual(direction_for_role(int(role)), UPSTREAM)
        self.assertIsNone(direction_for_role(None))


class SinkTests(SynchronousTestCase):
    """ASPA records arrive in RTR transactions."""

    def test_transactions(self):
        """Applied at end, withdrawn by customer AS, dropped with the cache; changes reported."""
        t = AspaTable()
        seen = []
        t.subscribe(seen.append)
        t.begin("c", True)
        t.aspas("c", [Aspa(64496, (64498,)), Aspa(64497, (64499,))], [])
        self.assertIsNone(t.providers(64496))
        t.end("c", 1)
        self.assertEqual(t.providers(64496), frozenset({64498}))
        t.begin("c", False)
        t.aspas("c", [], [64497])
        t.end("c", 2)
        self.assertIsNone(t.providers(64497))
        t.drop("c")
        self.assertEqual(len(t), 0)
        self.assertEqual(seen, [{64496, 64497}, {64497}, {64496}])


CONFED_SEQ = 3


def table(records: dict) -> AspaTable:
    t = AspaTable()
    t.set(records)
    return t


class Section5_1CompressedPathTests(SynchronousTestCase):
    """Section 5.1: COMPRESSED_AS_PATH removes consecutive duplicate ASes only."""

    def test_consecutive_only(self):
        """Section 5.1: [A, A, B, B, B] becomes [A, B]; [A, B, A] is left as it is."""
        self.assertEqual(collapse(seq(64500, 64500, 64501, 64501, 64501)), (64500, 64501))
        self.assertEqual(collapse(seq(64500, 64501, 64500)), (64500, 64501, 64500))

    def test_across_segments(self):
        """Section 5.1: a prepend split over two AS_SEQUENCE segments is still one AS."""
        self.assertEqual(collapse(((SEQ, (64500, 64501)), (SEQ, (64501, 64502)))), (64500, 64501, 64502))

    def test_compressed_length_is_n(self):
        """Section 5.1: N is the compressed length, so prepends do not make an up ramp short."""
        t = table({64496: [64497], 64497: [64498]})
        prepended = seq(64498, 64498, 64498, 64497, 64496, 64496)
        self.assertEqual(t.verify(prepended, UPSTREAM, neighbor_as=64498), Validity.VALID)


class Section5_2HopCheckTests(SynchronousTestCase):
    """Section 5.2: authorized(AS x, AS y) over the union of x's provider sets."""

    def test_union_of_aspas(self):
        """Section 5.2: the U-SPAS is the union of the customer's ASPAs (here from two caches)."""
        t = AspaTable()
        for cache, provider in (("a", 64510), ("b", 64511)):
            t.begin(cache, True)
            t.aspas(cache, [Aspa(64500, (provider,))], [])
            t.end(cache, 1)
        self.assertEqual(t.hop(64500, 64510), Hop.PROVIDER_PLUS)
        self.assertEqual(t.hop(64500, 64511), Hop.PROVIDER_PLUS)
        self.assertEqual(t.hop(64500, 64512), Hop.NOT_PROVIDER_PLUS)

    def test_no_attestation_only_without_aspa(self):
        """Section 5.2: No Attestation only when the customer has no ASPA at all."""
        t = table({64500: [0]})
        self.assertEqual(t.hop(64501, 64500), Hop.NO_ATTESTATION)
        # An AS0 ASPA (no providers) attests: every hop up from it is Not Provider+.
        self.assertEqual(t.hop(64500, 64510), Hop.NOT_PROVIDER_PLUS)

    def test_as0_no_influence(self):
        """Section 4 (used by 5.2): AS 0 beside real providers changes nothing."""
        t = table({64500: [0, 64510]})
        self.assertEqual(t.hop(64500, 64510), Hop.PROVIDER_PLUS)
        self.assertEqual(t.hop(64500, 64511), Hop.NOT_PROVIDER_PLUS)


class Section5_3RampTests(SynchronousTestCase):
    """Section 5.3: max/min up and down ramps, numbered from the origin AS(1)."""

    def test_ramp_lengths(self):
        """Section 5.3: the four lengths by the definitions' indices I and N - J + 1."""
        # AS(1..5) = 1..5: 1->2 and 2->3 Provider+, 3 has no ASPA, 4's provider is 3 (so 4->5
        # is Not Provider+), 5's provider is 4; downward 2->1 is Not Provider+ (2's is 3).
        t = table({1: [2], 2: [3], 4: [3], 5: [4]})
        # max_up: least I with hop(AS(I), AS(I+1)) Not Provider+ is 4; min_up: No Attestation at I = 3.
        # max_down: greatest J with hop(AS(J), AS(J-1)) Not Provider+ is 2, 5 - 2 + 1 = 4;
        # min_down: No Attestation at J = 3, 5 - 3 + 1 = 3.
        self.assertEqual(ramps(t.hop, (1, 2, 3, 4, 5)), (4, 3, 4, 3))

    def test_no_such_index_is_n(self):
        """Section 5.3: with no index found a ramp is N long."""
        # Every hop Provider+ both ways (each AS attests both neighbours), and one Not Provider+
        # hop only at the top for the down ramps' other bound.
        t = table({1: [2], 2: [1, 3], 3: [2]})
        self.assertEqual(ramps(t.hop, (1, 2, 3)), (3, 3, 3, 3))
        t = table({1: [2], 2: [3]})
        # Up: no index, 3 and 3; down: hop(AS(3), AS(2)) No Attestation (J = 3, 3 - 3 + 1 = 1),
        # hop(AS(2), AS(1)) Not Provider+ (J = 2, 3 - 2 + 1 = 2).
        self.assertEqual(ramps(t.hop, (1, 2, 3)), (3, 3, 2, 1))

    def test_upstream_down_ramps_zero(self):
        """Section 5.4: upstream sets max_down_ramp and min_down_ramp to 0."""
        t = table({1: [2]})
        self.assertEqual(ramps(t.hop, (1, 2, 3), down=False), (3, 2, 0, 0))


class Section5_4UpstreamTests(SynchronousTestCase):
    """Section 5.4: the upstream procedure's six steps."""

    def setUp(self):
        self.t = table({64496: [64497], 64497: [64498], 64499: [64500]})

    def test_step1_empty(self):
        """Section 5.4 step 1: an empty AS_PATH is Invalid (also from a route server, no neighbor AS)."""
        self.assertEqual(self.t.verify((), UPSTREAM), Validity.INVALID)
        self.assertEqual(self.t.verify(((SEQ, ()),), UPSTREAM), Validity.INVALID)

    def test_step1_confed_only(self):
        """Section 5.4 step 1: a path of confederation segments only has no AS left: Invalid."""
        self.assertEqual(self.t.verify(((CONFED_SEQ, (64512, 64513)),), UPSTREAM), Validity.INVALID)

    def test_step2_neighbor(self):
        """Section 5.4 step 2: the most recently added AS must be the neighbor AS."""
        path = seq(64498, 64497, 64496)
        self.assertEqual(self.t.verify(path, UPSTREAM, neighbor_as=64497), Validity.INVALID)
        self.assertEqual(self.t.verify(path, UPSTREAM, neighbor_as=64498), Validity.VALID)

    def test_step2_route_server(self):
        """Section 5.4 step 2: an RS client does not check the neighbor (the RS adds no AS)."""
        self.assertEqual(self.t.verify(seq(64498, 64497, 64496), UPSTREAM, neighbor_as=None), Validity.VALID)

    def test_step3_as_set(self):
        """Section 5.4 step 3: an AS_SET is Invalid even when every hop is Provider+."""
        path = ((SEQ, (64498, 64497, 64496)), (SET, (64496,)))
        self.assertEqual(self.t.verify(path, UPSTREAM, neighbor_as=64498), Validity.INVALID)

    def test_step4_before_step5(self):
        """Section 5.4 steps 4-5: a Not Provider+ hop is Invalid even after a No Attestation hop."""
        # 64501 (no ASPA) -> 64499 is No Attestation; then 64499 -> 64502 is Not Provider+.
        path = seq(64502, 64499, 64501)
        self.assertEqual(self.t.verify(path, UPSTREAM, neighbor_as=64502), Validity.INVALID)

    def test_step5_unknown(self):
        """Section 5.4 step 5: min_up_ramp < N (a No Attestation hop) is Unknown."""
        path = seq(64503, 64498, 64497, 64496)
        self.assertEqual(self.t.verify(path, UPSTREAM, neighbor_as=64503), Validity.NOT_FOUND)

    def test_step6_valid(self):
        """Section 5.4 step 6: all hops Provider+, and a lone origin AS (N = 1), are Valid."""
        self.assertEqual(self.t.verify(seq(64498, 64497, 64496), UPSTREAM), Validity.VALID)
        self.assertEqual(self.t.verify(seq(64505), UPSTREAM, neighbor_as=64505), Validity.VALID)


class Section5_5DownstreamTests(SynchronousTestCase):
    """Section 5.5: the downstream procedure's six steps."""

    def test_step1_empty(self):
        """Section 5.5 step 1: an empty AS_PATH is Invalid."""
        self.assertEqual(table({}).verify((), DOWNSTREAM), Validity.INVALID)

    def test_step2_neighbor(self):
        """Section 5.5 step 2: the most recently added AS must be the provider we got it from."""
        t = table({64496: [64497]})
        self.assertEqual(t.verify(seq(64497, 64496), DOWNSTREAM, neighbor_as=64499), Validity.INVALID)
        self.assertEqual(t.verify(seq(64497, 64496), DOWNSTREAM, neighbor_as=64497), Validity.VALID)

    def test_step3_as_set(self):
        """Section 5.5 step 3: an AS_SET is Invalid."""
        path = ((SEQ, (64497,)), (SET, (64496, 64495)))
        self.assertEqual(table({}).verify(path, DOWNSTREAM), Validity.INVALID)

    def test_step4_apexes_apart(self):
        """Section 5.5 step 4 (5.1): up and down apexes more than one hop apart: Invalid."""
        # AS(1..5) = 1, 2, 7, 3, 4: 1 -> 2 up, 7 in between attests only 99; 4 -> 3 up.
        t = table({1: [2], 2: [9], 7: [99], 3: [9], 4: [3]})
        self.assertEqual(ramps(t.hop, (1, 2, 7, 3, 4)), (2, 2, 2, 2))
        self.assertEqual(t.verify(seq(4, 3, 7, 2, 1), DOWNSTREAM), Validity.INVALID)

    def test_step4_lateral_peers_at_top(self):
        """Section 5.5 step 6 (5.1): apexes one hop apart (a peering at the top) are Valid."""
        # 2 and 3 are lateral peers: each attests a provider 9 that is not the other.
        t = table({1: [2], 2: [9], 3: [9], 4: [3]})
        self.assertEqual(t.verify(seq(4, 3, 2, 1), DOWNSTREAM, neighbor_as=4), Validity.VALID)

    def test_step5_unknown(self):
        """Section 5.5 step 5: min_up_ramp + min_down_ramp < N is Unknown."""
        # AS(1..5) = 1, 2, 5, 3, 4; no ASPA from 2, 5 or 3: the ramps may meet (max 5 + 5) but
        # are proven 2 + 2 long, short of N = 5 (with N = 4 the apexes 2 and 3 would be adjacent).
        t = table({1: [2], 4: [3]})
        self.assertEqual(ramps(t.hop, (1, 2, 5, 3, 4)), (5, 2, 5, 2))
        self.assertEqual(t.verify(seq(4, 3, 5, 2, 1), DOWNSTREAM), Validity.NOT_FOUND)
        self.assertEqual(t.verify(seq(4, 3, 2, 1), DOWNSTREAM), Validity.VALID)

    def test_step6_valid_short(self):
        """Section 5.5 step 6: N = 1 or 2 from a provider is Valid whatever is attested."""
        t = table({1: [0], 2: [0]})
        self.assertEqual(t.verify(seq(2, 1), DOWNSTREAM), Validity.VALID)
        self.assertEqual(t.verify(seq(2), DOWNSTREAM), Validity.VALID)


class Section6_3RoleTests(SynchronousTestCase):
    """Sections 5.4, 5.5 and 6.3: the BGP Role picks the procedure."""

    def test_procedure_by_role(self):
        """Section 5.5 applies to routes from a provider only; 5.4 to customer, peer, RS, RS client."""
        self.assertEqual(direction_for_role(int(Role.PROVIDER)), DOWNSTREAM)
        upstream_roles = (Role.CUSTOMER, Role.PEER, Role.RS, Role.RS_CLIENT)
        self.assertEqual({direction_for_role(int(r)) for r in upstream_roles}, {UPSTREAM})
