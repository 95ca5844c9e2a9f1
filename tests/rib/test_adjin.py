"""The Adj-RIB-In of a peer without ADD-PATH, read from the Loc-RIB (RFC 4271 3.2, RFC 7911).

Such a peer has one candidate per prefix at most, so the RIB keeps no table
of its own for it: its accepted count is a counter, and what looks at all its
routes (a session drop, graceful restart, BoRR, RPKI revalidation) scans the
Loc-RIB in chunks.  These tests hold the counter to the routes the peer
really has at every step, and each scan to the turn budget.
"""

from __future__ import annotations

from bgpd.config import parse_config
from bgpd.policy import Policy, registry
from bgpd.rib import RibOptions
from bgpd.rib.route import Path
from bgpd.rib.testing import IPV4, announce, pfx, withdraw
from bgpd.rpki.validation import RouteValidation
from bgpd.wire.negotiated import Negotiated
from tests.rib.support import E1, E2, I1, RibTestCase, attrs
from tests.rpki.test_validation import POLICIES

CHUNK = 50
MANY = [pfx(f"10.{i // 256}.{i % 256}.0/24") for i in range(1000)]


def _odd_med_rejected(peer, family, p, a):
    return None if a.med % 2 else a


def _lp_on_first(peer, family, p, a):
    """LOCAL_PREF 300 on MANY[0] (a rewrite), everything else as it is."""
    return a.replace(local_pref=300) if p == MANY[0] else a


_POLICIES: dict[str, Policy] = {  # type: ignore[dict-item]
    "odd-med": _odd_med_rejected, "lp": _lp_on_first, "accept-all": lambda *a: a[3],
}


class AdjInTestCase(RibTestCase):
    options = RibOptions(mrai_ebgp=0.0, mrai_ibgp=0.0, chunk_size=CHUNK)

    def setUp(self) -> None:
        super().setUp()
        self.reported: dict[tuple[str, tuple[int, int]], int] = {}
        self.rib.watch_prefix_counts(lambda peer, fam, n: self.reported.__setitem__((peer.address, fam), n))

    def owned(self, peer) -> set[bytes]:
        """The prefixes whose Loc-RIB entry holds a candidate of ``peer`` (the reference)."""
        out = set()
        for p, entry in self.rib.loc_table(IPV4).items():
            cands = (entry,) if entry.__class__ is Path else entry
            if any(c.peer.address == peer.address for c in cands):
                out.add(p)
        return out

    def assert_count(self, peer, n: int) -> None:
        self.assertEqual(len(self.owned(peer)), n)
        self.assertEqual(self.rib.adj_rib_in_size(peer, IPV4), n)
        self.assertEqual(len(self.rib.adj_rib_in(peer, IPV4)), n)
        self.assertEqual(self.reported.get((peer.address, IPV4), 0), n)


class CounterTests(AdjInTestCase):
    def test_announce_withdraw_implicit(self):
        """The count follows new prefixes, re-announcements, implicit and explicit withdraws."""
        self.add(E1)
        self.add(E2)
        self.rib.receive(E1, announce(attrs(med=0), MANY[:10]))
        self.settle()
        self.assert_count(E1, 10)
        # Implicit withdraw (new attributes) and an exact duplicate change nothing.
        self.rib.receive(E1, announce(attrs(med=2), MANY[:5]))
        self.rib.receive(E1, announce(attrs(med=0), MANY[5:10]))
        self.settle()
        self.assert_count(E1, 10)
        # Another peer's candidates for the same prefixes (tuples in the Loc-RIB).
        self.rib.receive(E2, announce(attrs((65002,), nh="198.51.100.2"), MANY[:20]))
        self.settle()
        self.assert_count(E1, 10)
        self.assert_count(E2, 20)
        # Implicit withdraw where the entry is a tuple.
        self.rib.receive(E1, announce(attrs(med=4), MANY[:10]))
        self.settle()
        self.assert_count(E1, 10)
        self.rib.receive(E1, withdraw(MANY[:3] + MANY[50:53]))  # three held, three not
        self.settle()
        self.assert_count(E1, 7)
        self.assert_count(E2, 20)
        self.assertEqual(self.rib.duplicates(E1)[1], 3)

    def test_policy_reject(self):
        """A route the chain now rejects leaves the count; one it never accepted is not counted."""
        self.rib = self.make_rib(self.options, policies=_POLICIES)
        self.rib.watch_prefix_counts(lambda peer, fam, n: self.reported.__setitem__((peer.address, fam), n))
        self.add(E1, import_policy=["odd-med"])
        self.add(E2)
        self.rib.receive(E2, announce(attrs((65002,), nh="198.51.100.2"), MANY[:4]))
        self.rib.receive(E1, announce(attrs(med=0), MANY[:8]))
        self.settle()
        self.assert_count(E1, 8)
        self.rib.receive(E1, announce(attrs(med=1), MANY[2:6]))  # rejected: two shared, two alone
        self.rib.receive(E1, announce(attrs(med=3), MANY[20:30]))  # rejected, never held
        self.settle()
        self.assert_count(E1, 4)
        self.assert_count(E2, 4)
        self.assertEqual(self.rib.rejected(E1), 14)

    def test_rejects_all_and_local(self):
        """An ingress refusal (AS loop) withdraws and counts down; originated routes count nowhere."""
        self.add(E1)
        self.rib.receive(E1, announce(attrs(), MANY[:6]))
        self.rib.originate(IPV4, MANY[0], attrs(()))
        self.settle()
        self.assert_count(E1, 6)
        self.rib.receive(E1, announce(attrs((65001, 65000)), MANY[:2]))
        self.settle()
        self.assert_count(E1, 4)

    def test_session_drop_resets(self):
        """After a drop the peer has no count and no candidate; the other peer keeps its own."""
        self.add(E1)
        self.add(E2)
        self.rib.receive(E1, announce(attrs(), MANY[:100]))
        self.rib.receive(E2, announce(attrs((65002,), nh="198.51.100.2"), MANY[50:150]))
        self.settle()
        self.rib.remove_peer(E1)
        self.settle()
        self.assertEqual(self.rib.adj_rib_in_size(E1, IPV4), 0)
        self.assertEqual(self.owned(E1), set())
        self.assert_count(E2, 100)
        self.assertEqual(self.rib.loc_rib_size(IPV4), 100)
        # A new session starts from nothing.
        self.add(E1)
        self.rib.receive(E1, announce(attrs(), MANY[:3]))
        self.settle()
        self.assert_count(E1, 3)

    def test_addpath_counted_too(self):
        """With ADD-PATH the count is of (path id, prefix) keys, as the table holds them."""
        neg = Negotiated(addpath_rx=frozenset({IPV4}))
        self.add(E1, neg=neg)
        u = announce(attrs(), [(1, MANY[0]), (2, MANY[0]), (1, MANY[1])])
        self.rib.receive(E1, u)
        self.settle()
        self.assertEqual(self.rib.adj_rib_in_size(E1, IPV4), 3)
        self.assertEqual(self.reported[(E1.address, IPV4)], 3)
        self.rib.receive(E1, withdraw([(2, MANY[0])]))
        self.settle()
        self.assertEqual(self.rib.adj_rib_in_size(E1, IPV4), 2)
        self.assertEqual(set(self.rib.adj_rib_in(E1, IPV4)), {(1, MANY[0]), (1, MANY[1])})


class ViewTests(AdjInTestCase):
    def test_view_reads_like_the_table(self):
        """adj_rib_in() without ADD-PATH: the peer's candidate per prefix, nothing of others."""
        self.add(E1)
        self.add(E2)
        self.rib.receive(E1, announce(attrs(), MANY[:3]))
        self.rib.receive(E2, announce(attrs((65002,), nh="198.51.100.2"), MANY[2:5]))
        self.settle()
        view = self.rib.adj_rib_in(E1, IPV4)
        self.assertEqual(set(view), set(MANY[:3]))
        self.assertEqual(len(view), 3)
        self.assertIn(MANY[2], view)
        self.assertNotIn(MANY[3], view)
        self.assertIsNone(view.get(MANY[4]))
        with self.assertRaises(KeyError):
            view[MANY[4]]
        self.assertTrue(all(p.peer is E1 for p in view.values()))
        as_dict = dict(view.items())
        self.assertEqual(as_dict, {p: view[p] for p in MANY[:3]})
        self.assertEqual(view, as_dict)
        self.assertEqual(self.rib.adj_rib_in(E2, IPV4)[MANY[2]].peer, E2)


class ChunkedScanTests(AdjInTestCase):
    """Every whole-table walk of a peer's routes keeps to the turn budget."""

    def load(self, peer, prefixes, **kw):
        self.rib.receive(peer, announce(attrs(**kw), prefixes))
        self.settle()

    def turns(self, act) -> tuple[int, int]:
        """(turns taken, largest turn) of what ``act()`` queues."""
        self.rib.stats.largest_turn = 0
        before = self.rib.stats.turns
        act()
        self.settle()
        return self.rib.stats.turns - before, self.rib.stats.largest_turn

    def test_drop_of_a_big_table_runs_in_turns(self):
        """A session drop withdraws 1000 routes in at least 1000 / chunk_size turns, none bigger."""
        sink = self.add(E2)
        self.add(E1)
        self.load(E1, MANY)
        self.assertEqual(len(sink.routes()), len(MANY))
        turns, largest = self.turns(lambda: self.rib.remove_peer(E1))
        self.assertGreaterEqual(turns, len(MANY) // CHUNK)
        self.assertLessEqual(largest, CHUNK)
        self.assertEqual(self.rib.loc_rib_size(IPV4), 0)
        self.assertEqual(sink.routes(), {})

    def test_drop_leaves_other_peers_candidates(self):
        """Dropping one of two feeders of the same table leaves the other's paths, in turns."""
        self.add(E1)
        self.add(E2)
        self.load(E1, MANY)
        self.rib.receive(E2, announce(attrs((65002,), nh="198.51.100.2"), MANY[::2]))
        self.settle()
        turns, largest = self.turns(lambda: self.rib.remove_peer(E1))
        self.assertGreaterEqual(turns, len(MANY) // CHUNK)
        self.assertLessEqual(largest, CHUNK)
        self.assertEqual(set(self.rib.loc_table(IPV4)), set(MANY[::2]))
        self.assertTrue(all(e.__class__ is Path and e.peer is E2 for e in self.rib.loc_table(IPV4).values()))
        self.assert_count(E2, len(MANY[::2]))

    def test_graceful_restart_marks_and_sweeps_in_turns(self):
        """GR: the stale re-decision and the End-of-RIB sweep each take many bounded turns."""
        self.add(E2)
        self.add(E1)
        self.load(E1, MANY)
        turns, largest = self.turns(lambda: self.rib.remove_peer(E1, graceful=True, stale_time=60))
        self.assertGreaterEqual(turns, len(MANY) // CHUNK)
        self.assertLessEqual(largest, CHUNK)
        self.assertTrue(all(p.stale for p in self.rib.loc_table(IPV4).values()))
        self.add(E1, restarting=[IPV4])
        self.load(E1, MANY[:10])
        self.assert_count(E1, len(MANY))
        turns, largest = self.turns(lambda: self.rib.end_of_rib(E1, IPV4))
        self.assertGreaterEqual(turns, len(MANY) // CHUNK)
        self.assertLessEqual(largest, CHUNK)
        self.assertEqual(set(self.rib.loc_table(IPV4)), set(MANY[:10]))
        self.assertFalse(any(p.stale for p in self.rib.loc_table(IPV4).values()))
        self.assert_count(E1, 10)

    def test_borr_marks_in_turns(self):
        """BoRR marks the routes stale over several turns, before anything sent after it."""
        self.add(E1)
        self.add(I1)
        self.load(E1, MANY)
        self.rib.receive(I1, announce(attrs((65003,), nh="192.0.2.10", local_pref=100), MANY))
        self.settle()
        self.rib.begin_refresh(E1, IPV4)
        self.rib.receive(E1, announce(attrs(med=7), MANY[:5]))
        self.rib.stats.largest_turn = 0
        before = self.rib.stats.turns
        self.settle()
        # 1000 keys at _NH_SCAN (16) a unit, in turns of CHUNK units, then the announcement.
        self.assertGreaterEqual(self.rib.stats.turns - before, 2)
        self.assertLessEqual(self.rib.stats.largest_turn, CHUNK + 1)
        mine = self.rib.adj_rib_in(E1, IPV4)
        self.assertEqual({p for p, path in mine.items() if not path.stale}, set(MANY[:5]))
        self.assertEqual(len([p for p, path in mine.items() if path.stale]), len(MANY) - 5)
        self.rib.end_refresh(E1, IPV4)
        self.settle()
        self.assert_count(E1, 5)
        self.assert_count(I1, len(MANY))

    def test_revalidation_counts_the_peers_routes(self):
        """revalidate() queues the Loc-RIB in chunks but counts only the peer's own routes."""
        v = RouteValidation()
        config = parse_config(POLICIES)
        self.rib.set_policies(registry(config.sets, config.policies, v.rpki_state, v.aspa_state))
        self.add(E1, import_policy=["rov"])
        self.add(E2)
        self.load(E1, MANY[:100])
        self.rib.receive(E2, announce(attrs((65002,), nh="198.51.100.2"), MANY[100:300]))
        self.settle()
        wanted = set(MANY[:10] + MANY[150:160])
        self.assertEqual(self.rib.revalidate(IPV4, select=lambda keys: [k for k in keys if k in wanted]), 10)
        self.settle()
        turns, largest = self.turns(lambda: self.assertEqual(self.rib.revalidate(IPV4), 100))
        self.assertGreaterEqual(turns, 300 // CHUNK)
        self.assertLessEqual(largest, CHUNK)
        self.assert_count(E1, 100)
        self.assert_count(E2, 200)
