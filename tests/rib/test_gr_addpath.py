"""Graceful restart across a change of ADD-PATH receive (RFC 4724 4.2, RFC 7911).

With ADD-PATH a route is (path id, prefix); without it, the prefix.  A peer
that comes back from a graceful restart with the other mode cannot refresh
its stale routes (none of its announcements names them), so those routes
are withdrawn when the new session comes up, as for a family whose
forwarding state the peer did not keep; what it sends then is as fresh.
"""

from __future__ import annotations

from bgpd.rib import RibOptions
from bgpd.rib.route import Path
from bgpd.rib.testing import IPV4, announce, pfx
from bgpd.wire.negotiated import Negotiated
from tests.rib.support import E1, E2, RibTestCase, attrs

CHUNK = 50
MANY = [pfx(f"10.{i // 256}.{i % 256}.0/24") for i in range(300)]
ADDPATH = Negotiated(addpath_rx=frozenset({IPV4}))


class ModeChangeTests(RibTestCase):
    options = RibOptions(mrai_ebgp=0.0, mrai_ibgp=0.0, chunk_size=CHUNK)

    def candidates(self, peer) -> list[Path]:
        out = []
        for entry in self.rib.loc_table(IPV4).values():
            for c in (entry,) if entry.__class__ is Path else entry:
                if c.peer.address == peer.address:
                    out.append(c)
        return out

    def restart(self, before: Negotiated | None, after: Negotiated | None, keys_before):
        self.add(E2)
        self.add(E1, neg=before)
        self.rib.receive(E1, announce(attrs(), keys_before))
        self.settle()
        self.rib.remove_peer(E1, graceful=True, stale_time=60)
        self.settle()
        self.assertTrue(all(c.stale for c in self.candidates(E1)))
        self.add(E1, neg=after, restarting=[IPV4])
        self.settle()

    def test_addpath_to_plain(self):
        """ADD-PATH before, none after: the (path id, prefix) routes go at once; the new ones stay."""
        self.restart(ADDPATH, None, [(1, p) for p in MANY] + [(2, p) for p in MANY[:20]])
        self.assertEqual(self.candidates(E1), [])
        self.assertEqual(self.rib.adj_rib_in_size(E1, IPV4), 0)
        self.rib.receive(E1, announce(attrs(), MANY[:10]))
        self.settle()
        self.rib.end_of_rib(E1, IPV4)
        self.settle()
        self.assertEqual(set(self.rib.loc_table(IPV4)), set(MANY[:10]))
        self.assertEqual(len(self.candidates(E1)), 10)
        self.assertFalse(any(c.stale or c.path_id for c in self.candidates(E1)))
        self.assertEqual(self.rib.adj_rib_in_size(E1, IPV4), 10)
        self.assertEqual(set(self.rib.adj_rib_in(E1, IPV4)), set(MANY[:10]))

    def test_plain_to_addpath(self):
        """No ADD-PATH before, ADD-PATH after: the prefix routes go at once; the new ones stay."""
        self.restart(None, ADDPATH, MANY)
        self.assertEqual(self.candidates(E1), [])
        self.assertEqual(self.rib.adj_rib_in_size(E1, IPV4), 0)
        self.rib.receive(E1, announce(attrs(), [(7, p) for p in MANY[:10]]))
        self.settle()
        self.rib.end_of_rib(E1, IPV4)
        self.settle()
        self.assertEqual(set(self.rib.loc_table(IPV4)), set(MANY[:10]))
        self.assertEqual({c.path_id for c in self.candidates(E1)}, {7})
        self.assertFalse(any(c.stale for c in self.candidates(E1)))
        self.assertEqual(self.rib.adj_rib_in_size(E1, IPV4), 10)

    def test_same_mode_keeps_stale(self):
        """The same mode on both sessions: stale routes stay until End-of-RIB (RFC 4724 4.2)."""
        self.restart(ADDPATH, ADDPATH, [(1, p) for p in MANY])
        self.assertEqual(len(self.candidates(E1)), len(MANY))
        self.rib.receive(E1, announce(attrs(), [(1, p) for p in MANY[:10]]))
        self.settle()
        self.rib.end_of_rib(E1, IPV4)
        self.settle()
        self.assertEqual(set(self.rib.loc_table(IPV4)), set(MANY[:10]))
        self.assertEqual(self.rib.adj_rib_in_size(E1, IPV4), 10)

    def test_drop_in_turns(self):
        """The withdrawal of the old mode's routes is queued work, no turn over the budget."""
        self.add(E2)
        self.add(E1, neg=ADDPATH)
        self.rib.receive(E1, announce(attrs(), [(1, p) for p in MANY]))
        self.settle()
        self.rib.remove_peer(E1, graceful=True, stale_time=60)
        self.settle()
        self.rib.stats.largest_turn = 0
        before = self.rib.stats.turns
        self.add(E1, restarting=[IPV4])
        self.settle()
        self.assertGreaterEqual(self.rib.stats.turns - before, len(MANY) // CHUNK)
        self.assertLessEqual(self.rib.stats.largest_turn, CHUNK)
        self.assertEqual(self.candidates(E1), [])
