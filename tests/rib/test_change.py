"""The Loc-RIB change record (bgpd.rib.change): old and new best, the multipath set."""

from __future__ import annotations

from bgpd.rib import Change, RibOptions
from bgpd.rib.testing import IPV4, announce, make_peer, pfx, withdraw
from tests.rib.support import E1, RibTestCase, attrs

P1 = pfx("203.0.113.0/24")
P2 = pfx("198.51.100.128/25")
#: Two eBGP peers in the same neighbouring AS: equal up to the router id.
A1 = make_peer("192.0.2.2", 65001, local_address="192.0.2.1", router_id="192.0.2.2")
A2 = make_peer("192.0.2.3", 65001, local_address="192.0.2.1", router_id="192.0.2.3")


class ChangeRecordTests(RibTestCase):
    def setUp(self) -> None:
        super().setUp()
        self.got: list[list[Change]] = []
        self.rib.subscribe(self.got.append)

    def flat(self) -> list[Change]:
        out = [c for batch in self.got for c in batch]
        del self.got[:]
        return out

    def test_new_old_and_withdraw(self):
        """A new prefix has old None; its withdrawal has new None and an empty set."""
        self.add(E1)
        self.rib.receive(E1, announce(attrs(), [P1]))
        self.settle()
        (c,) = self.flat()
        self.assertIsInstance(c, Change)
        self.assertEqual((c.family, c.prefix, c.old), (IPV4, P1, None))
        self.assertEqual(c.multipath, (c.new,))
        new = c.new
        self.rib.receive(E1, withdraw([P1]))
        self.settle()
        (c,) = self.flat()
        self.assertEqual((c.old, c.new, c.multipath), (new, None, ()))

    def test_batched_and_coalesced(self):
        """Changes of one turn come as one list, a prefix touched twice once."""
        self.add(E1)
        self.rib.receive(E1, announce(attrs(), [P1, P2]))
        self.rib.receive(E1, announce(attrs(med=7), [P1]))
        self.settle()
        self.assertEqual(len(self.got), 1)
        batch = self.got[0]
        self.assertEqual(sorted(c.prefix for c in batch), sorted([P1, P2]))
        c1 = next(c for c in batch if c.prefix == P1)
        self.assertIsNone(c1.old)
        self.assertEqual(c1.new.attrs.med, 7)

    def test_no_record_when_nothing_changed(self):
        """The same route again makes no record."""
        self.add(E1)
        self.rib.receive(E1, announce(attrs(), [P1]))
        self.settle()
        self.flat()
        self.rib.receive(E1, announce(attrs(), [P1]))
        self.settle()
        self.assertEqual(self.flat(), [])


class MultipathChangeTests(RibTestCase):
    options = RibOptions(mrai_ebgp=0.0, mrai_ibgp=0.0, max_paths=4)

    def setUp(self) -> None:
        super().setUp()
        self.got: list[Change] = []
        self.rib.subscribe(self.got.extend)
        self.add(A1)
        self.add(A2)

    def test_set_grows_with_same_best(self):
        """A second equal path changes the set, not the best: a record all the same."""
        self.rib.receive(A1, announce(attrs(nh="192.0.2.2"), [P1]))
        self.settle()
        (c,) = self.got
        best = c.new
        del self.got[:]
        self.rib.receive(A2, announce(attrs(nh="192.0.2.3"), [P1]))
        self.settle()
        (c,) = self.got
        self.assertIs(c.old, best)
        self.assertIs(c.new, best)
        self.assertEqual([p.attrs.next_hop for p in c.multipath], ["192.0.2.2", "192.0.2.3"])

    def test_set_shrinks_with_same_best(self):
        """Losing the second equal path is a record with the best alone."""
        self.rib.receive(A1, announce(attrs(nh="192.0.2.2"), [P1]))
        self.rib.receive(A2, announce(attrs(nh="192.0.2.3"), [P1]))
        self.settle()
        del self.got[:]
        self.rib.receive(A2, withdraw([P1]))
        self.settle()
        (c,) = self.got
        self.assertIs(c.old, c.new)
        self.assertEqual(c.multipath, (c.new,))
        del self.got[:]
        # Nothing changes: no record.
        self.rib.receive(A1, announce(attrs(nh="192.0.2.2"), [P1]))
        self.settle()
        self.assertEqual(self.got, [])

    def test_unequal_path_is_no_change(self):
        """A worse path (longer AS_PATH) joins neither the best nor the set: no record."""
        self.rib.receive(A1, announce(attrs(nh="192.0.2.2"), [P1]))
        self.settle()
        del self.got[:]
        self.rib.receive(A2, announce(attrs(path=(65001, 7), nh="192.0.2.3"), [P1]))
        self.settle()
        self.assertEqual(self.got, [])


class EndOfRibWatchTests(RibTestCase):
    def test_after_the_routes_before_it(self):
        """An End-of-RIB is reported after the changes of the routes sent before it."""
        seen: list = []
        self.rib.subscribe(lambda batch: seen.extend(("change", c.prefix) for c in batch))
        self.rib.watch_end_of_rib(lambda peer, fam, fams: seen.append(("eor", peer.address, fam, fams)))
        self.add(E1)
        self.rib.receive(E1, announce(attrs(), [P1]))
        self.rib.end_of_rib(E1, IPV4)
        self.settle()
        self.assertEqual(seen[0], ("change", P1))
        self.assertEqual(seen[-1], ("eor", E1.address, IPV4, frozenset({IPV4})))


class NextHopRedecideTests(RibTestCase):
    """set_resolver and redecide_next_hops: the resolver made live (RFC 4271 9.1.2.1)."""

    def setUp(self) -> None:
        super().setUp()
        self.reachable = {"192.0.2.2": True, "192.0.2.3": True}
        self.rib.set_resolver(lambda nh: self.reachable.get(nh, False))
        self.got: list[Change] = []
        self.rib.subscribe(self.got.extend)
        self.add(A1)
        self.add(A2)

    def flip(self, nh: str, ok: bool) -> None:
        old = {nh: self.reachable[nh]}
        self.reachable[nh] = ok
        self.rib.redecide_next_hops(old)
        self.settle()

    def test_lone_path_goes_and_returns(self):
        """A prefix whose only next hop stops resolving loses its best path, and gets it back."""
        self.rib.receive(A1, announce(attrs(nh="192.0.2.2"), [P1]))
        self.settle()
        best = self.rib.best(IPV4, P1)
        del self.got[:]
        self.flip("192.0.2.2", False)
        self.assertIsNone(self.rib.best(IPV4, P1))
        self.assertEqual([(c.old, c.new, c.multipath) for c in self.got], [(best, None, ())])
        del self.got[:]
        self.flip("192.0.2.2", True)
        self.assertEqual([(c.old, c.new) for c in self.got], [(None, best)])

    def test_other_path_takes_over(self):
        """When the best path's next hop goes, the next path becomes best; it returns after."""
        self.rib.receive(A1, announce(attrs(nh="192.0.2.2"), [P1]))
        self.rib.receive(A2, announce(attrs(path=(65001, 9), nh="192.0.2.3"), [P1]))
        self.settle()
        self.assertEqual(self.rib.best(IPV4, P1).attrs.next_hop, "192.0.2.2")
        del self.got[:]
        self.flip("192.0.2.2", False)
        self.assertEqual(self.rib.best(IPV4, P1).attrs.next_hop, "192.0.2.3")
        (c,) = self.got
        self.assertEqual((c.old.attrs.next_hop, c.new.attrs.next_hop), ("192.0.2.2", "192.0.2.3"))
        self.flip("192.0.2.2", True)
        self.assertEqual(self.rib.best(IPV4, P1).attrs.next_hop, "192.0.2.2")

    def test_unrelated_prefixes_untouched(self):
        """Only prefixes with a path through the next hop get a record."""
        self.rib.receive(A1, announce(attrs(nh="192.0.2.2"), [P1]))
        self.rib.receive(A2, announce(attrs(nh="192.0.2.3"), [P2]))
        self.settle()
        del self.got[:]
        self.flip("192.0.2.3", False)
        self.assertEqual([c.prefix for c in self.got], [P2])

    def test_unresolvable_at_arrival(self):
        """A route arriving with an unresolvable next hop is not best until it resolves."""
        self.reachable["192.0.2.3"] = False
        self.rib.receive(A2, announce(attrs(nh="192.0.2.3"), [P1]))
        self.settle()
        self.assertIsNone(self.rib.best(IPV4, P1))
        self.assertEqual(self.got, [])
        self.flip("192.0.2.3", True)
        self.assertEqual(self.rib.best(IPV4, P1).attrs.next_hop, "192.0.2.3")
