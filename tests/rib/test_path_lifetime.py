"""How long the RIB keeps a path: as long as an Adj-RIB-In entry holds it (RFC 4271 3.2).

Churn (issue 13) sends a new attribute set with nearly every UPDATE; a path
that no prefix uses any more must go with its attributes at once, not when
some table next fills up.
"""

from __future__ import annotations

from bgpd.policy import Policy
from bgpd.rib.testing import IPV4, announce, pfx, withdraw
from bgpd.wire.negotiated import Negotiated
from tests.rib.support import E1, E2, RibTestCase, attrs

P1 = pfx("203.0.113.0/24")
P2 = pfx("198.51.100.0/24")


def _rewrite_or_reject(peer, family, p, a):
    """LOCAL_PREF 300 on P1; P2 rejected when its MED is odd, else accepted as it is."""
    if p == P1:
        return a.replace(local_pref=300)
    return None if a.med % 2 else a


_POLICIES: dict[str, Policy] = {"lp": _rewrite_or_reject, "accept-all": lambda *a: a[3]}  # type: ignore[dict-item]


class PathLifetimeTests(RibTestCase):
    def test_changed_attributes_leave_one_path(self):
        """A prefix re-announced with 300 different attribute sets leaves one path, not 300."""
        self.add(E1)
        for i in range(300):
            self.rib.receive(E1, announce(attrs(med=i), [P1]))
            self.settle()
        self.assertEqual(self.rib.best(IPV4, P1).attrs.med, 299)
        self.assertEqual(self.rib.live_paths(), 1)

    def test_withdrawn_paths_are_forgotten(self):
        """Once every prefix of a path is withdrawn the RIB holds no path of that peer."""
        self.add(E1)
        self.rib.receive(E1, announce(attrs(med=1), [P1, P2]))
        self.rib.receive(E1, announce(attrs(med=2), [P2]))
        self.settle()
        self.assertEqual(self.rib.live_paths(), 2)
        self.rib.receive(E1, withdraw([P1]))
        self.settle()
        self.assertEqual(self.rib.live_paths(), 1)
        self.rib.receive(E1, withdraw([P2]))
        self.settle()
        self.assertEqual(self.rib.live_paths(), 0)

    def test_shared_path_survives_partial_change(self):
        """A path still used by one prefix stays the same object when another prefix moves off it."""
        self.add(E1)
        self.rib.receive(E1, announce(attrs(med=1), [P1, P2]))
        self.settle()
        shared = self.rib.best(IPV4, P1)
        self.rib.receive(E1, announce(attrs(med=2), [P2]))
        self.rib.receive(E1, announce(attrs(med=1), [P2]))
        self.settle()
        self.assertIs(self.rib.best(IPV4, P2), shared)
        self.assertIs(self.rib.best(IPV4, P1), shared)
        self.assertEqual(self.rib.live_paths(), 1)

    def test_paths_of_two_peers(self):
        """Paths of two peers for one prefix each go with their own peer's change."""
        self.add(E1)
        self.add(E2)
        for i in range(50):
            self.rib.receive(E1, announce(attrs(med=i), [P1]))
            self.rib.receive(E2, announce(attrs((65002,), nh="198.51.100.2", med=i), [P1]))
            self.settle()
        self.assertEqual(len(self.rib.candidates(IPV4, P1)), 2)
        self.assertEqual(self.rib.live_paths(), 2)

    def test_policy_rewrites_and_rejects(self):
        """With an import policy per prefix, rewritten and rejected routes leave no dead paths."""
        self.rib = self.make_rib(self.options, policies=_POLICIES)
        self.add(E1, import_policy=["lp"])
        for i in range(100):
            self.rib.receive(E1, announce(attrs(med=i), [P1, P2]))
            self.settle()
        self.assertEqual(self.rib.best(IPV4, P1).attrs.local_pref, 300)
        self.assertIsNone(self.rib.best(IPV4, P2))  # MED 99 is odd
        self.assertEqual(self.rib.live_paths(), 1)
        self.rib.receive(E1, announce(attrs(med=100), [P1, P2]))
        self.settle()
        self.assertEqual(self.rib.live_paths(), 2)

    def test_add_path_ids(self):
        """With ADD-PATH receive (RFC 7911) each path id's changes leave one path per id."""
        self.add(E1, neg=Negotiated(addpath_rx=frozenset({IPV4})))
        for i in range(100):
            self.rib.receive(E1, announce(attrs(med=i), [(1, P1), (2, P1)]))
            self.settle()
        self.assertEqual(len(self.rib.candidates(IPV4, P1)), 2)
        self.assertEqual(self.rib.live_paths(), 2)

    def test_graceful_restart_stale_then_fresh(self):
        """After a graceful restart the fresh paths replace the stale ones, and only they remain."""
        self.add(E1)
        self.rib.receive(E1, announce(attrs(med=1), [P1, P2]))
        self.settle()
        self.rib.remove_peer(E1, graceful=True, stale_time=120)
        self.settle()
        self.add(E1, restarting=[IPV4])
        for i in range(20):
            self.rib.receive(E1, announce(attrs(med=10 + i), [P1, P2]))
            self.settle()
        self.rib.end_of_rib(E1, IPV4)
        self.settle()
        best = self.rib.best(IPV4, P1)
        self.assertEqual(best.attrs.med, 29)
        self.assertFalse(best.stale)
        self.assertEqual(self.rib.live_paths(), 1)
