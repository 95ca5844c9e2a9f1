"""Tests for bgpd.rpki.aspa: draft-ietf-sidrops-aspa-verification's hop check and procedures.

The cases follow the draft's sections 5 and 6 (hop check; upstream and
downstream procedures with the up and down ramps): a customer chain all
attested, a customer leaking a provider's route, a missing attestation,
valley-free and valleyed downstream paths, AS_SET, prepends and the
neighbor check; they are built here, the draft has no test vectors.
"""

from __future__ import annotations

from twisted.trial.unittest import SynchronousTestCase

from bgpd.rpki.aspa import DOWNSTREAM, UPSTREAM, AspaTable, Hop, collapse, direction_for_role
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
