"""Tests for the RIB's post-policy Adj-RIB-In tap (bgpd.rib.tap, RFC 7854 4.6 L flag)."""

from __future__ import annotations

from bgpd.rib.tap import AdjInTap
from bgpd.rib.testing import IPV4, announce, pfx, withdraw
from bgpd.wire.attributes import PathAttributes
from tests.rib.support import E1, E2, attrs
from tests.rib.test_policy_rib import PREFIXES, PolicyRibCase


class RecordingAdjTap:
    """An AdjInTap that keeps (peer address, family, attributes, keys) per call."""

    def __init__(self) -> None:
        self.calls: list[tuple[str, tuple[int, int], PathAttributes | None, list]] = []

    def adj_in_changed(self, peer, family, attributes, keys) -> None:
        self.calls.append((peer.address, family, attributes, list(keys)))

    def table(self) -> dict:
        """The post-policy Adj-RIB-In the calls add up to, per (peer, prefix)."""
        out: dict = {}
        for peer, _fam, a, keys in self.calls:
            for k in keys:
                if a is None:
                    out.pop((peer, k), None)
                else:
                    out[(peer, k)] = a
        return out


class AdjInTapTests(PolicyRibCase):
    """What the tap hears adds up to the RIB's own post-policy table."""

    def setUp(self) -> None:
        super().setUp()
        self.tap = RecordingAdjTap()
        self.rib.set_adj_in_tap(self.tap)

    def test_interface(self):
        """The recording tap provides the declared interface."""
        self.assertIsInstance(self.tap, AdjInTap)

    def test_accept_all_one_call_per_update(self):
        """Without a policy an UPDATE is one call, with its attributes and all its prefixes."""
        self.add(E1)
        self.feed()
        self.assertEqual(len(self.tap.calls), 1)
        peer, fam, a, keys = self.tap.calls[0]
        self.assertEqual((peer, fam, keys), (E1.address, IPV4, PREFIXES))
        self.assertEqual(a, attrs())

    def test_policy_results_grouped(self):
        """A policy's rejections are withdrawals and its changes carry the new attributes."""
        self.add(E1, import_policy=["drop-ten-zero", "med-ten-one"])
        self.feed()
        table = self.tap.table()
        self.assertNotIn((E1.address, pfx("10.0.0.0/16")), table)
        self.assertEqual(table[(E1.address, pfx("10.1.0.0/16"))].med, 7)
        self.assertIsNone(table[(E1.address, pfx("10.2.0.0/16"))].med)
        rib_table = self.rib.adj_rib_in(E1, IPV4)
        self.assertEqual({k for _p, k in table}, set(rib_table))

    def test_withdraw_reported(self):
        """A withdrawal reaches the tap with no attributes."""
        self.add(E1)
        self.feed()
        self.rib.receive(E1, withdraw(PREFIXES[:3]))
        self.settle()
        self.assertEqual(self.tap.calls[-1], (E1.address, IPV4, None, PREFIXES[:3]))
        self.assertEqual(len(self.tap.table()), len(PREFIXES) - 3)

    def test_per_peer(self):
        """Each peer's changes are reported under its own address."""
        self.add(E1)
        self.add(E2)
        self.feed(E1)
        self.rib.receive(E2, announce(attrs((65002,), nh="198.51.100.2"), PREFIXES[:2]))
        self.settle()
        self.assertEqual({p for p, *_ in self.tap.calls}, {E1.address, E2.address})

    def test_originated_not_reported(self):
        """Our own routes are no peer's Adj-RIB-In."""
        self.rib.originate(IPV4, pfx("203.0.113.0/24"), attrs(()))
        self.settle()
        self.assertEqual(self.tap.calls, [])

    def test_removed(self):
        """After set_adj_in_tap(None) nothing is reported."""
        self.add(E1)
        self.rib.set_adj_in_tap(None)
        self.feed()
        self.assertEqual(self.tap.calls, [])


class AdjRibOutSliceTests(PolicyRibCase):
    """Rib.adj_rib_out(prefixes=...): a slice of the Adj-RIB-Out, as the whole one has it."""

    def test_slice_matches_whole(self):
        """Each slice is the whole table's entries for those prefixes, unknown ones left out."""
        self.add(E1)
        self.add(E2)
        self.feed()
        whole = self.rib.adj_rib_out(E2, IPV4)
        self.assertEqual(len(whole), len(PREFIXES))
        part = self.rib.adj_rib_out(E2, IPV4, PREFIXES[:3] + [pfx("203.0.113.0/24")])
        self.assertEqual(part, {p: whole[p] for p in PREFIXES[:3]})
