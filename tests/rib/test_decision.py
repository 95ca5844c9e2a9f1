"""Tests for bgpd.rib.decision: one per RFC 4271 9.1.2 step, and the options."""

from __future__ import annotations

import itertools

from twisted.trial.unittest import SynchronousTestCase

from bgpd.rib.decision import compare, eligible, explain, multipath, select
from bgpd.rib.options import RibOptions
from bgpd.rib.route import LOCAL, STALE_REFRESH, STALE_RESTART, make_path, peer_role
from bgpd.rib.testing import make_peer
from bgpd.wire.constants import Role
from tests.rib.support import attrs

A = make_peer("192.0.2.2", 65001)
B = make_peer("192.0.2.3", 65002)
A2 = make_peer("192.0.2.4", 65001)
IB = make_peer("192.0.2.10", 65000, local_as=65000)
IB2 = make_peer("192.0.2.11", 65000, local_as=65000)
DEFAULT = RibOptions()


def p(peer, **kw):
    return make_path(peer, attrs(**kw))


class StepTests(SynchronousTestCase):
    def assertWins(self, winner, loser, step, options=DEFAULT):
        self.assertEqual(compare(winner, loser, options), (-1, step))
        self.assertEqual(compare(loser, winner, options), (1, step))
        self.assertIs(select([loser, winner], options)[0], winner)

    def test_next_hop_unreachable(self):
        """A path whose next hop does not resolve loses, whatever else it has."""
        opts = RibOptions(resolver=lambda nh: nh != "192.0.2.99")
        bad = p(A, nh="192.0.2.99", local_pref=500)
        good = p(B, path=(65002, 1, 2, 3))
        self.assertWins(good, bad, "next-hop", opts)
        self.assertFalse(eligible(bad, opts))

    def test_restart_stale_loses(self):
        """A path kept for a restarting peer (RFC 4724 4.2) loses to any fresh one; refresh-stale does not."""
        stale = p(A, local_pref=500)
        stale.stale = STALE_RESTART
        fresh = p(B, path=(65002, 1, 2, 3))
        self.assertWins(fresh, stale, "stale")
        stale.stale = STALE_REFRESH
        self.assertWins(stale, fresh, "local-pref")

    def test_local_pref(self):
        """Highest LOCAL_PREF wins."""
        self.assertWins(p(IB, local_pref=200, path=(1, 2, 3)), p(IB2, local_pref=100), "local-pref")

    def test_local_pref_default(self):
        """A missing LOCAL_PREF counts as the configured default."""
        self.assertWins(p(A), p(IB, local_pref=90), "local-pref")
        low = RibOptions(default_local_pref=50)
        self.assertWins(p(IB, local_pref=90), p(A), "local-pref", low)

    def test_local_origin(self):
        """A route we originate beats a learned one with a shorter AS_PATH."""
        self.assertWins(make_path(LOCAL, attrs(path=(1, 2))), p(A, path=()), "local-origin")

    def test_as_path_length(self):
        """Shortest AS_PATH wins."""
        self.assertWins(p(A, path=(65001,)), p(B, path=(65002, 7)), "as-path")

    def test_as_path_set_counts_one(self):
        """An AS_SET counts as one AS and confederation segments count zero."""
        with_set = make_path(A, attrs(path=()).replace(as_path=((2, (65001,)), (1, (7, 8, 9)))))
        confed = make_path(B, attrs(path=()).replace(as_path=((3, (1, 2, 3)), (2, (65002,)))))
        longer = p(A2, path=(65001, 5, 6))
        self.assertWins(with_set, longer, "as-path")
        self.assertWins(confed, with_set, "as-path")

    def test_origin(self):
        """Lowest ORIGIN wins (IGP < INCOMPLETE)."""
        self.assertWins(p(A, origin=0), p(B, path=(65002,), origin=2), "origin")

    def test_med_same_neighbor_as(self):
        """Lower MED wins between routes from the same neighbouring AS; missing MED is 0."""
        self.assertWins(p(A2, med=5), p(A, med=10), "med")
        self.assertWins(p(A2), p(A, med=1), "med")

    def test_med_other_as_not_compared(self):
        """MEDs from different neighbouring ASes are not compared unless always_compare_med."""
        low = p(B, path=(65002,), med=1)
        high = p(A, med=100)
        self.assertWins(high, low, "router-id")
        self.assertWins(low, high, "med", RibOptions(always_compare_med=True))

    def test_deterministic_med(self):
        """With deterministic MED the best path does not depend on the arrival order."""
        p1 = make_path(make_peer("192.0.2.1", 65001), attrs(med=20))
        p2 = make_path(make_peer("192.0.2.2", 65002), attrs(path=(65002,), med=0))
        p3 = make_path(make_peer("192.0.2.3", 65001), attrs(med=10))
        opts = RibOptions(deterministic_med=True)
        winners = {select(list(order), opts)[0] for order in itertools.permutations([p1, p2, p3])}
        # AS 65001's best is p3 (MED 10); p3 v p2 goes to the router id.
        self.assertEqual(winners, {p2})

    def test_ebgp_over_ibgp(self):
        """An eBGP-learned route beats an iBGP-learned one."""
        self.assertWins(p(B, path=(65002,)), p(IB, path=(65003,)), "ebgp")

    def test_router_id(self):
        """Lowest BGP identifier wins, and ORIGINATOR_ID stands in for it when present."""
        self.assertWins(p(A), p(A2), "router-id")
        reflected = p(IB2, originator_id="10.0.0.1")
        self.assertWins(reflected, p(IB), "router-id")

    def test_cluster_list(self):
        """Shortest CLUSTER_LIST wins."""
        a = p(IB, originator_id="10.0.0.1", cluster_list=("10.9.9.9",))
        b = p(IB2, originator_id="10.0.0.1", cluster_list=("10.9.9.9", "10.8.8.8"))
        self.assertWins(a, b, "cluster-list")

    def test_peer_address(self):
        """Lowest peer address breaks the last tie."""
        x = make_peer("192.0.2.5", 65001, router_id="10.0.0.1")
        y = make_peer("192.0.2.6", 65001, router_id="10.0.0.1")
        self.assertWins(p(x), p(y), "peer-address")

    def test_path_id(self):
        """Two add-path routes from one peer: the lower path id wins."""
        self.assertWins(make_path(A, attrs(), 1), make_path(A, attrs(), 2), "path-id")


class ExplainMultipathTests(SynchronousTestCase):
    def test_explain(self):
        """explain() names the deciding step for each loser."""
        best = p(A, local_pref=None)
        steps = explain([p(B, path=(65002, 1)), best, p(IB, local_pref=50)])
        self.assertEqual({(s, w is best) for s, w, _ in steps}, {("as-path", True), ("local-pref", True)})

    def test_multipath_same_as(self):
        """Paths equal down to the IGP step from the same AS form the ECMP set."""
        a, a2 = p(A), p(A2, nh="192.0.2.4")
        b = p(B, path=(65002,))
        opts = RibOptions(max_paths=4)
        self.assertEqual(multipath(select([b, a2, a], opts), opts), [a, a2])
        relaxed = RibOptions(max_paths=4, multipath_relax=True)
        self.assertEqual(len(multipath(select([b, a2, a], relaxed), relaxed)), 3)
        self.assertEqual(multipath(select([b, a2, a], RibOptions()), RibOptions()), [a])

    def test_multipath_excludes_worse(self):
        """A path that loses before the IGP step is not in the ECMP set."""
        a = p(A)
        worse = p(A2, med=5)
        opts = RibOptions(max_paths=4)
        self.assertEqual(multipath(select([worse, a], opts), opts), [a])

    def test_peer_role(self):
        """Our configured role maps to the peer's role (RFC 9234 4.2)."""
        self.assertEqual(peer_role("provider"), Role.CUSTOMER)
        self.assertEqual(peer_role("rs"), Role.RS_CLIENT)
        self.assertEqual(peer_role("peer"), Role.PEER)
        self.assertIsNone(peer_role(None))


class SelectTwoTests(SynchronousTestCase):
    def test_two_candidates_as_a_full_sort(self):
        """Two candidates come out in the order a full sort by compare() gives, for every pair."""
        import functools

        paths = [p(A, med=5), p(A2, med=10), p(B, path=(65002,), med=1), p(IB, local_pref=200),
                 p(IB2), make_path(LOCAL, attrs(path=())), p(A, path=(65001, 65001)), p(A2)]
        for options in (DEFAULT, RibOptions(always_compare_med=True)):
            key = functools.cmp_to_key(lambda a, b, o=options: compare(a, b, o)[0])
            for a, b in itertools.permutations(paths, 2):
                self.assertEqual(select([a, b], options), sorted([a, b], key=key))
