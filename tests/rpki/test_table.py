"""Tests for bgpd.rpki.table: RFC 6811 section 2 origin validation, transactions, change batches.

Every case of RFC 6811 section 2 (Valid, Invalid by AS, Invalid by max
length, NotFound, origin NONE after an AS_SET, AS0 VRPs of RFC 6483
section 4), RTR transactions (RFC 8210 section 5: reset, serial, abort,
drop) and the change batches revalidation is driven by.
"""

from __future__ import annotations

from twisted.trial.unittest import SynchronousTestCase

from bgpd.rpki.records import Validity, Vrp
from bgpd.rpki.table import VrpTable, affected_by, origin_of
from bgpd.wire.nlri import prefix_from_str

V4 = (1, 1)
V6 = (2, 1)


def key(text: str) -> bytes:
    return prefix_from_str(text)[1]


def vrp(text: str, max_length: int, asn: int) -> Vrp:
    afi, k = prefix_from_str(text)
    return Vrp((afi, 1), k, max_length, asn)


def load(table: VrpTable, *vrps: Vrp, cache: str = "c1", serial: int = 1, reset: bool = True) -> None:
    table.begin(cache, reset)
    table.vrps(cache, list(vrps), [])
    table.end(cache, serial)


class OriginTests(SynchronousTestCase):
    """origin_of: the last AS of a final AS_SEQUENCE, None after an AS_SET."""

    def test_sequence(self):
        """The rightmost AS of the last AS_SEQUENCE is the origin."""
        self.assertEqual(origin_of(((2, (64496, 64500)),)), 64500)

    def test_as_set_last(self):
        """A path ending in an AS_SET has origin NONE (RFC 6811 section 2)."""
        self.assertIsNone(origin_of(((2, (64496,)), (1, (64500, 64501)))))

    def test_empty(self):
        """An empty path (a route of our own AS) has no origin AS to match."""
        self.assertIsNone(origin_of(()))


class ValidateTests(SynchronousTestCase):
    """validate(): every case of RFC 6811 section 2."""

    def setUp(self):
        self.t = VrpTable()
        load(self.t, vrp("192.0.2.0/24", 24, 64500), vrp("198.51.100.0/22", 24, 64501),
             vrp("203.0.113.0/24", 24, 0), vrp("2001:db8::/32", 48, 64502))

    def test_valid_exact(self):
        """Covering VRP with the origin AS and max length >= prefix length: Valid."""
        self.assertEqual(self.t.validate(1, key("192.0.2.0/24"), 64500), Validity.VALID)

    def test_valid_within_max_length(self):
        """A more specific inside max length is Valid."""
        self.assertEqual(self.t.validate(1, key("198.51.101.0/24"), 64501), Validity.VALID)

    def test_invalid_as(self):
        """Covered, but the origin AS differs: Invalid."""
        self.assertEqual(self.t.validate(1, key("192.0.2.0/24"), 64511), Validity.INVALID)

    def test_invalid_length(self):
        """Covered with the right AS but longer than max length: Invalid."""
        self.assertEqual(self.t.validate(1, key("192.0.2.128/25"), 64500), Validity.INVALID)

    def test_not_found(self):
        """No covering VRP: NotFound, whatever the origin."""
        self.assertEqual(self.t.validate(1, key("10.0.0.0/8"), 64500), Validity.NOT_FOUND)

    def test_less_specific_not_covered(self):
        """A VRP does not cover a shorter prefix: NotFound."""
        self.assertEqual(self.t.validate(1, key("192.0.0.0/16"), 64500), Validity.NOT_FOUND)

    def test_origin_none(self):
        """Origin NONE (AS_SET last) can only be Invalid or NotFound."""
        self.assertEqual(self.t.validate(1, key("192.0.2.0/24"), None), Validity.INVALID)
        self.assertEqual(self.t.validate(1, key("10.0.0.0/24"), None), Validity.NOT_FOUND)

    def test_as0_never_matches(self):
        """An AS0 VRP covers but never matches (RFC 6483 section 4), not even origin 0."""
        self.assertEqual(self.t.validate(1, key("203.0.113.0/24"), 0), Validity.INVALID)
        self.assertEqual(self.t.validate(1, key("203.0.113.0/24"), 64500), Validity.INVALID)

    def test_one_of_several_matches(self):
        """Several VRPs at one prefix: any match makes Valid."""
        load(self.t, vrp("192.0.2.0/24", 24, 64500), vrp("192.0.2.0/24", 24, 64509), serial=2)
        self.assertEqual(self.t.validate(1, key("192.0.2.0/24"), 64509), Validity.VALID)
        self.assertEqual(self.t.validate(1, key("192.0.2.0/24"), 64500), Validity.VALID)

    def test_ipv6(self):
        """IPv6 follows the same rules in its own index."""
        self.assertEqual(self.t.validate(2, key("2001:db8:1::/48"), 64502), Validity.VALID)
        self.assertEqual(self.t.validate(2, key("2001:db8:1:1::/64"), 64502), Validity.INVALID)
        self.assertEqual(self.t.validate(2, key("2001:db9::/32"), 64502), Validity.NOT_FOUND)

    def test_explain(self):
        """explain() gives the matching VRPs and every covering one."""
        state, matching, cover = self.t.explain(1, key("198.51.100.0/24"), 64509)
        self.assertEqual(state, Validity.INVALID)
        self.assertEqual(matching, [])
        self.assertEqual(cover, [vrp("198.51.100.0/22", 24, 64501)])
        state, matching, _ = self.t.explain(1, key("198.51.100.0/24"), 64501)
        self.assertEqual((state, matching), (Validity.VALID, [vrp("198.51.100.0/22", 24, 64501)]))

    def test_covering(self):
        """covering() lists the VRPs whose prefix covers the route's, shortest first."""
        load(self.t, vrp("192.0.0.0/16", 24, 64499), vrp("192.0.2.0/24", 24, 64500), serial=3)
        self.assertEqual(self.t.covering(1, key("192.0.2.0/25")),
                         [vrp("192.0.0.0/16", 24, 64499), vrp("192.0.2.0/24", 24, 64500)])


class TransactionTests(SynchronousTestCase):
    """RFC 8210 transactions: applied at End of Data, reset replaces, abort keeps, drop forgets."""

    def setUp(self):
        self.t = VrpTable()
        self.batches = []
        self.t.subscribe(self.batches.append)
        load(self.t, vrp("192.0.2.0/24", 24, 64500), vrp("198.51.100.0/24", 24, 64501))
        self.batches.clear()

    def test_not_applied_before_end(self):
        """Announcements take effect at End of Data, not before."""
        self.t.begin("c1", False)
        self.t.vrps("c1", [vrp("10.0.0.0/8", 8, 64496)], [])
        self.assertEqual(self.t.validate(1, key("10.0.0.0/8"), 64496), Validity.NOT_FOUND)
        self.t.end("c1", 2)
        self.assertEqual(self.t.validate(1, key("10.0.0.0/8"), 64496), Validity.VALID)
        self.assertEqual(self.t.serial("c1"), 2)

    def test_incremental(self):
        """A serial's withdrawals and announcements apply; the batch names exactly those prefixes."""
        self.t.begin("c1", False)
        self.t.vrps("c1", [vrp("10.0.0.0/8", 8, 64496)], [vrp("192.0.2.0/24", 24, 64500)])
        self.t.end("c1", 2)
        self.assertEqual(self.t.validate(1, key("192.0.2.0/24"), 64500), Validity.NOT_FOUND)
        self.assertEqual(self.batches, [{1: {key("10.0.0.0/8"), key("192.0.2.0/24")}}])

    def test_reset_replaces(self):
        """A reset replaces the cache's data; the batch is the difference."""
        load(self.t, vrp("192.0.2.0/24", 24, 64500), vrp("203.0.113.0/24", 24, 64502), serial=5)
        self.assertEqual(self.t.validate(1, key("198.51.100.0/24"), 64501), Validity.NOT_FOUND)
        self.assertEqual(self.batches, [{1: {key("198.51.100.0/24"), key("203.0.113.0/24")}}])

    def test_abort_keeps(self):
        """An aborted transaction changes nothing and tells nobody."""
        self.t.begin("c1", True)
        self.t.vrps("c1", [], [])
        self.t.abort("c1")
        self.t.end("c1", 9)  # an End of Data after the abort belongs to no transaction
        self.assertEqual(self.t.validate(1, key("192.0.2.0/24"), 64500), Validity.VALID)
        self.assertEqual(self.batches, [])

    def test_drop(self):
        """drop() forgets the cache: its routes are NotFound again, every prefix is in the batch."""
        self.t.drop("c1")
        self.assertEqual(self.t.validate(1, key("192.0.2.0/24"), 64511), Validity.NOT_FOUND)
        self.assertEqual(self.batches, [{1: {key("192.0.2.0/24"), key("198.51.100.0/24")}}])

    def test_two_caches(self):
        """While two caches hold data both count; dropping one leaves the other's."""
        load(self.t, vrp("203.0.113.0/24", 24, 64502), cache="c2")
        self.assertEqual(self.t.validate(1, key("203.0.113.0/24"), 64502), Validity.VALID)
        self.assertEqual(self.t.validate(1, key("192.0.2.0/24"), 64500), Validity.VALID)
        self.t.drop("c1")
        self.assertEqual(self.t.validate(1, key("192.0.2.0/24"), 64500), Validity.NOT_FOUND)
        self.assertEqual(self.t.validate(1, key("203.0.113.0/24"), 64502), Validity.VALID)

    def test_failover_changes_nothing_in_force(self):
        """A second cache loading the same VRPs, then the first one dropped: no batch at all."""
        load(self.t, vrp("192.0.2.0/24", 24, 64500), vrp("198.51.100.0/24", 24, 64501), cache="c2")
        self.t.drop("c1")
        self.assertEqual(self.batches, [])
        self.assertEqual(self.t.validate(1, key("192.0.2.0/24"), 64500), Validity.VALID)

    def test_failover_reports_the_difference(self):
        """The new cache's data differs in one VRP: only that prefix is in the batches."""
        load(self.t, vrp("192.0.2.0/24", 24, 64500), vrp("203.0.113.0/24", 24, 64502), cache="c2")
        self.t.drop("c1")
        self.assertEqual(self.batches, [{1: {key("203.0.113.0/24")}}, {1: {key("198.51.100.0/24")}}])

    def test_no_change_no_batch(self):
        """A serial that changes nothing (re-announcing a held VRP) sends no batch."""
        self.t.begin("c1", False)
        self.t.vrps("c1", [vrp("192.0.2.0/24", 24, 64500)], [])
        self.t.end("c1", 2)
        self.assertEqual(self.batches, [])

    def test_counts(self):
        """counts() per AFI."""
        self.assertEqual(self.t.counts(), {1: 2, 2: 0})


class ExceptionTests(SynchronousTestCase):
    """set_exceptions: RFC 8416 filters hide cache VRPs, assertions add VRPs."""

    def setUp(self):
        self.t = VrpTable()
        load(self.t, vrp("192.0.2.0/24", 24, 64500), vrp("198.51.100.0/24", 24, 64501))
        self.batches = []
        self.t.subscribe(self.batches.append)

    def test_prefix_filter(self):
        """A prefix filter hides the VRPs inside it; the routes there become NotFound."""
        self.t.set_exceptions([(1, key("192.0.0.0/16"), None)], [])
        self.assertEqual(self.t.validate(1, key("192.0.2.0/24"), 64500), Validity.NOT_FOUND)
        self.assertEqual(self.batches, [{1: {key("192.0.0.0/16")}}])

    def test_asn_filter(self):
        """An ASN filter hides that AS's VRPs only."""
        self.t.set_exceptions([(None, None, 64501)], [])
        self.assertEqual(self.t.validate(1, key("198.51.100.0/24"), 64501), Validity.NOT_FOUND)
        self.assertEqual(self.t.validate(1, key("192.0.2.0/24"), 64500), Validity.VALID)

    def test_assertion_survives_filter(self):
        """An assertion is not hidden by a filter and survives a new serial from the cache."""
        self.t.set_exceptions([(1, key("192.0.2.0/24"), None)], [vrp("192.0.2.0/24", 24, 64511)])
        self.assertEqual(self.t.validate(1, key("192.0.2.0/24"), 64511), Validity.VALID)
        self.assertEqual(self.t.validate(1, key("192.0.2.0/24"), 64500), Validity.INVALID)
        load(self.t, vrp("192.0.2.0/24", 24, 64500), serial=7)
        self.assertEqual(self.t.validate(1, key("192.0.2.0/24"), 64511), Validity.VALID)

    def test_cleared(self):
        """Replacing the exceptions with none brings the cache's data back."""
        self.t.set_exceptions([(1, key("192.0.2.0/24"), None)], [])
        self.t.set_exceptions([], [])
        self.assertEqual(self.t.validate(1, key("192.0.2.0/24"), 64500), Validity.VALID)


class AffectedTests(SynchronousTestCase):
    """affected_by: which route prefixes a batch of VRP prefixes covers."""

    def check(self, changed, afi, inside, outside):
        select = affected_by([key(c) for c in changed], afi)
        routes = [key(r) for r in inside + outside]
        self.assertEqual(select(routes), [key(r) for r in inside])

    def test_covered(self):
        """Routes inside a changed prefix (any length) are affected, others not."""
        self.check(["192.0.2.0/24", "10.0.0.0/8"], 1,
                   ["192.0.2.0/24", "192.0.2.128/25", "10.20.0.0/16", "10.0.0.0/8", "10.0.0.0/12"],
                   ["192.0.3.0/24", "192.0.0.0/16", "11.0.0.0/8", "8.0.0.0/6"])

    def test_short_prefix(self):
        """A very short changed prefix still finds the routes under it, short ones too."""
        self.check(["0.0.0.0/1"], 1, ["100.0.0.0/24", "64.0.0.0/2", "0.0.0.0/1"],
                   ["200.0.0.0/24", "0.0.0.0/0"])

    def test_ipv6(self):
        """IPv6 keys work the same."""
        self.check(["2001:db8::/32"], 2, ["2001:db8:ff::/48", "2001:db8::/32"],
                   ["2001:db9::/48", "2000::/3", "2001:db8::/31"])

    def test_empty(self):
        """No changed prefix: nothing is affected."""
        self.assertEqual(affected_by([], 1)([key("192.0.2.0/24")]), [])


class HasVrpTests(SynchronousTestCase):
    """has_vrp(): the RTR client's check against a cache's applied data (RFC 8210 section 5.6)."""

    def test_applied_data_only(self):
        """True for a VRP of that cache's last End of Data; not for another cache, AS, or a pending one."""
        t = VrpTable()
        a, b = vrp("192.0.2.0/24", 24, 64500), vrp("192.0.2.0/24", 24, 64501)
        load(t, a, b, cache="c1")
        self.assertTrue(t.has_vrp("c1", a) and t.has_vrp("c1", b))
        self.assertFalse(t.has_vrp("c2", a))
        self.assertFalse(t.has_vrp("c1", vrp("192.0.2.0/24", 25, 64500)))
        c = vrp("2001:db8::/32", 48, 64502)
        t.begin("c1", False)
        t.vrps("c1", [c], [a])
        self.assertTrue(t.has_vrp("c1", a))
        self.assertFalse(t.has_vrp("c1", c))
        t.end("c1", 2)
        self.assertEqual((t.has_vrp("c1", a), t.has_vrp("c1", b), t.has_vrp("c1", c)), (False, True, True))
        t.drop("c1")
        self.assertFalse(t.has_vrp("c1", b))


class SerialOrderTests(SynchronousTestCase):
    """A serial's PDUs take effect in order, though the table gets them as two lists."""

    def test_announced_then_withdrawn_is_gone(self):
        """A VRP announced and then withdrawn in one serial (two of the cache's serials) is not held."""
        t = VrpTable()
        a, b = vrp("192.0.2.0/24", 24, 64500), vrp("198.51.100.0/24", 24, 64501)
        load(t, a)
        t.begin("c1", False)
        t.vrps("c1", [b], [])
        t.vrps("c1", [], [b])
        t.end("c1", 2)
        self.assertFalse(t.has_vrp("c1", b))
        self.assertEqual(t.validate(1, b.prefix, 64501), Validity.NOT_FOUND)

    def test_withdrawn_then_announced_is_held(self):
        """A held VRP withdrawn and announced again in one serial stays; within one call as well."""
        t = VrpTable()
        a, b = vrp("192.0.2.0/24", 24, 64500), vrp("198.51.100.0/24", 24, 64501)
        load(t, a)
        t.begin("c1", False)
        t.vrps("c1", [a, b], [a, b])
        t.vrps("c1", [b], [])
        t.end("c1", 2)
        # a: withdrawn, announced (held); b: announced, withdrawn, announced (held)
        self.assertEqual((t.has_vrp("c1", a), t.has_vrp("c1", b)), (True, True))
        t.begin("c1", True)
        t.vrps("c1", [a, b, a], [a])
        t.end("c1", 3)
        self.assertEqual((t.has_vrp("c1", a), t.has_vrp("c1", b)), (True, True))
