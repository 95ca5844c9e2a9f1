"""Update groups whose members are also the routes' sources (RFC 4271 9.2, split horizon).

Every peer of a route server or of a full-table transit router both sends
routes and receives the others': what one member sends goes to every other
member, and that output is packed once for all of them, whichever member the
best path moves to or from.  Also: a dump (refresh, initial table) under an
export chain that depends on the prefix.
"""

from __future__ import annotations

from bgpd.rib.testing import IPV4, announce, make_peer, pfx, withdraw
from tests.rib.support import E1, RibTestCase, attrs
from tests.rib.test_policy_rib import PREFIXES, PolicyRibCase

SEQ = 2
LINK = "198.51.100.1"
A = make_peer("198.51.100.2", 65002, local_address=LINK)
B = make_peer("198.51.100.3", 65003, local_address=LINK)
C = make_peer("198.51.100.4", 65004, local_address=LINK)
KEYS = [pfx(f"10.0.{i}.0/24") for i in range(50)]


class MemberSourcesTests(RibTestCase):
    """Three peers in one group, each a source of routes for the others."""

    def setUp(self) -> None:
        super().setUp()
        self.sa, self.sb, self.sc = self.add(A), self.add(B), self.add(C)
        group = self.rib.update_group(A, IPV4)
        self.assertIs(group, self.rib.update_group(B, IPV4))
        self.assertIs(group, self.rib.update_group(C, IPV4))
        self.rib.receive(A, announce(attrs((65002, 65010), nh=A.address), KEYS))
        self.settle()
        for s in (self.sa, self.sb, self.sc):
            s.clear()

    def test_best_path_moves_to_another_member(self):
        """B's better path: A and C get it in the very same UPDATE bytes, B a withdrawal of A's route."""
        self.rib.receive(B, announce(attrs((65003,), nh=B.address), KEYS))
        self.settle()
        for s in (self.sa, self.sc):
            routes = s.routes()
            self.assertEqual(set(routes), set(KEYS))
            self.assertEqual({a.as_path for a in routes.values()}, {((SEQ, (65000, 65003)),)})
        self.assertEqual(self.sb.announced(), [])
        self.assertEqual(sorted(self.sb.withdrawn()), sorted(KEYS))
        self.assertEqual(self.sb.routes(), {})
        # Packed once: one UPDATE, the same object for both members.
        self.assertEqual(len(self.sa.messages), 1)
        self.assertIs(self.sa.messages[0], self.sc.messages[0])

    def test_best_path_moves_back(self):
        """When B withdraws, A's path is best again: B and C get it, A a withdrawal of B's."""
        self.rib.receive(B, announce(attrs((65003,), nh=B.address), KEYS))
        self.settle()
        for s in (self.sa, self.sb, self.sc):
            s.clear()
        self.rib.receive(B, withdraw(KEYS))
        self.settle()
        self.assertEqual(self.sa.announced(), [])
        self.assertEqual(sorted(self.sa.withdrawn()), sorted(KEYS))
        self.assertEqual(self.sa.routes(), {})
        for s in (self.sb, self.sc):
            self.assertEqual({a.as_path for a in s.routes().values()}, {((SEQ, (65000, 65002, 65010)),)})
        self.assertIs(self.sb.messages[0], self.sc.messages[0])

    def test_member_withdraws(self):
        """A's withdrawal goes to B and C in one shared UPDATE, not back to A."""
        self.rib.receive(A, withdraw(KEYS))
        self.settle()
        self.assertEqual(self.sa.messages, [])
        for s in (self.sb, self.sc):
            self.assertEqual(sorted(s.withdrawn()), sorted(KEYS))
        self.assertEqual(len(self.sb.messages), 1)
        self.assertIs(self.sb.messages[0], self.sc.messages[0])

    def test_member_changes_its_attributes(self):
        """A new AS_PATH from A reaches B and C packed once; A hears nothing."""
        self.rib.receive(A, announce(attrs((65002, 7), nh=A.address), KEYS))
        self.settle()
        self.assertEqual(self.sa.messages, [])
        for s in (self.sb, self.sc):
            self.assertEqual({a.as_path for a in s.routes().values()}, {((SEQ, (65000, 65002, 7)),)})
        self.assertIs(self.sb.messages[0], self.sc.messages[0])


class DumpPolicyTests(PolicyRibCase):
    def test_refresh_with_prefix_dependent_chain(self):
        """A resent table under a chain that sets MED on one prefix keeps it on that prefix only."""
        self.add(E1)
        sink = self.add(A, export_policy=["med-ten-one"])
        self.feed()
        sink.clear()
        self.rib.refresh_out(A, IPV4)
        self.settle()
        routes = sink.routes()
        self.assertEqual(set(routes), set(PREFIXES))
        self.assertEqual({p for p, a in routes.items() if a.med == 7}, {PREFIXES[1]})
