"""A path's ADD-PATH id (RFC 7911) and stale mark (RFC 4724 4.2, RFC 7313 4) share one slot.

Issue 13: a path of five slots is 16 octets smaller than one of six, on
each of the RIB's interned paths; the two must still read and change as two
fields.
"""

from __future__ import annotations

from twisted.trial.unittest import SynchronousTestCase

from bgpd.rib.route import STALE_REFRESH, STALE_RESTART, make_path
from bgpd.rib.testing import make_peer
from bgpd.wire.attributes import PathAttributes


def _base() -> PathAttributes:
    return PathAttributes(as_path=((2, (65001,)),), next_hop="192.0.2.2")


class PathSlotTests(SynchronousTestCase):
    def test_stale_mark_keeps_path_id(self) -> None:
        """Setting and clearing the stale mark leaves the ADD-PATH id as it was."""
        path = make_path(make_peer("192.0.2.2", 65001), _base(), path_id=0xFFFFFFFF)
        self.assertEqual((path.path_id, path.stale), (0xFFFFFFFF, 0))
        path.stale = STALE_RESTART
        self.assertEqual((path.path_id, path.stale), (0xFFFFFFFF, STALE_RESTART))
        path.stale = STALE_REFRESH
        self.assertEqual((path.path_id, path.stale), (0xFFFFFFFF, STALE_REFRESH))
        path.stale = 0
        self.assertEqual((path.path_id, path.stale), (0xFFFFFFFF, 0))

    def test_stale_mark_out_of_range(self) -> None:
        """A stale mark that does not fit its two bits is refused, not folded into the id."""
        path = make_path(make_peer("192.0.2.2", 65001), _base(), path_id=3)
        with self.assertRaises(ValueError):
            path.stale = 4
        self.assertEqual((path.path_id, path.stale), (3, 0))
