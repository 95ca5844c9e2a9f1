"""Tests for bgpd.policy: the built-in policies and chain()."""

from __future__ import annotations

from twisted.trial.unittest import SynchronousTestCase

from bgpd.policy import BUILTIN, UnknownPolicy, chain
from bgpd.wire.attributes import PathAttributes

A = PathAttributes(next_hop="192.0.2.2")
F = (1, 1)
K = b"\x18\xcb\x00\x71"


def set_med(peer, family, prefix, attrs):
    return attrs.replace(med=7)


def reject(peer, family, prefix, attrs):
    return None


class BuiltinTests(SynchronousTestCase):
    def test_accept_all(self):
        """accept-all returns the attributes unchanged, and the chain says it accepts all."""
        c = chain(["accept-all"])
        self.assertIs(c(None, F, K, A), A)
        self.assertTrue(c.accepts_all)
        self.assertFalse(c.rejects_all)

    def test_reject_all(self):
        """reject-all rejects, and the chain says it rejects all."""
        c = chain(["reject-all"])
        self.assertIsNone(c(None, F, K, A))
        self.assertTrue(c.rejects_all)
        self.assertFalse(c.accepts_all)

    def test_registry_names(self):
        """The built-in registry has exactly the two RFC 8212 defaults."""
        self.assertEqual(set(BUILTIN), {"accept-all", "reject-all"})


class ChainTests(SynchronousTestCase):
    registry = dict(BUILTIN, med=set_med, drop=reject)

    def test_modifications_flow(self):
        """Each policy sees the previous one's result."""
        c = chain(["accept-all", "med"], self.registry)
        self.assertEqual(c(None, F, K, A).med, 7)
        self.assertFalse(c.accepts_all)

    def test_first_reject_wins(self):
        """A reject anywhere rejects; later policies are not called."""
        calls = []

        def spy(peer, family, prefix, attrs):
            calls.append(prefix)
            return attrs

        c = chain(["drop", "spy"], dict(self.registry, spy=spy))
        self.assertIsNone(c(None, F, K, A))
        self.assertEqual(calls, [])

    def test_reject_all_anywhere(self):
        """reject-all anywhere in a chain makes the chain reject everything."""
        self.assertTrue(chain(["med", "reject-all"], self.registry).rejects_all)

    def test_unknown(self):
        """An unknown name raises UnknownPolicy (a KeyError)."""
        self.assertRaises(UnknownPolicy, chain, ["nope"])
        self.assertRaises(KeyError, chain, ["nope"])
