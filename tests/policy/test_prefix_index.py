"""Tests for bgpd.wire.prefix_index, the one prefix index (RFC 4271 section 4.3 prefixes)."""

from __future__ import annotations

import random

from twisted.trial.unittest import SynchronousTestCase

from bgpd.wire.nlri import prefix_contains
from bgpd.wire.prefix_index import PrefixIndex, key_int
from tests.policy.helpers import key


class PrefixIndexTests(SynchronousTestCase):
    """Exact, covering, longest-match and more-specific lookups."""

    def setUp(self):
        self.ix = PrefixIndex()
        for i, p in enumerate(["0.0.0.0/0", "10.0.0.0/8", "10.1.0.0/16", "10.1.2.0/24", "10.1.2.128/25"]):
            self.ix[key(p)] = i

    def test_exact(self):
        """get / [] / in / len see exact prefixes only."""
        self.assertEqual(self.ix[key("10.1.0.0/16")], 2)
        self.assertIsNone(self.ix.get(key("10.2.0.0/16")))
        self.assertIn(key("0.0.0.0/0"), self.ix)
        self.assertNotIn(key("10.1.3.0/24"), self.ix)
        self.assertEqual(len(self.ix), 5)
        self.ix[key("10.1.0.0/16")] = 9
        self.assertEqual(len(self.ix), 5)

    def test_covering(self):
        """Every containing prefix, shortest first, itself included."""
        self.assertEqual([v for _, v in self.ix.covering(key("10.1.2.200/32"))], [0, 1, 2, 3, 4])
        self.assertEqual(self.ix.covering_values(key("10.1.2.0/24")), [0, 1, 2, 3])
        self.assertEqual(
            [k for k, _ in self.ix.covering(key("10.9.0.0/16"))], [key("0.0.0.0/0"), key("10.0.0.0/8")]
        )

    def test_longest_and_more_specifics(self):
        """Longest match, and the prefixes inside one."""
        self.assertEqual(self.ix.longest_match(key("10.1.2.5/32")), (key("10.1.2.0/24"), 3))
        self.assertIsNone(PrefixIndex().longest_match(key("10.0.0.0/8")))
        self.assertEqual(sorted(v for _, v in self.ix.more_specifics(key("10.1.0.0/16"))), [2, 3, 4])

    def test_delete_and_items(self):
        """del removes; items give back the keys as stored."""
        del self.ix[key("10.1.2.128/25")]
        self.assertEqual(len(self.ix), 4)
        self.assertRaises(KeyError, self.ix.__delitem__, key("10.1.2.128/25"))
        self.assertEqual(
            [k for k, _ in self.ix.items()],
            [key(p) for p in ["0.0.0.0/0", "10.0.0.0/8", "10.1.0.0/16", "10.1.2.0/24"]],
        )

    def test_ipv6_and_odd_lengths(self):
        """IPv6 keys and lengths that are not multiples of 8."""
        ix = PrefixIndex()
        ix[key("2001:db8::/29")] = "a"
        ix[key("2001:db8:1::/48")] = "b"
        self.assertEqual(ix.covering_values(key("2001:db8:1:2::/64")), ["a", "b"])
        self.assertEqual(key_int(key("2001:db8::/29")), 0x20010DB8 >> 3)

    def test_against_scan(self):
        """Covering agrees with a scan of every entry over random prefixes."""
        rng = random.Random(7)
        ix = PrefixIndex()
        entries = []
        for _ in range(300):
            plen = rng.randrange(0, 33)
            addr = rng.getrandbits(32) & ~((1 << (32 - plen)) - 1) if plen else 0
            k = key(f"{addr >> 24}.{addr >> 16 & 255}.{addr >> 8 & 255}.{addr & 255}/{plen}")
            ix[k] = k
            entries.append(k)
        for _ in range(300):
            plen = rng.randrange(0, 33)
            addr = rng.getrandbits(32) & ~((1 << (32 - plen)) - 1) if plen else 0
            probe = key(f"{addr >> 24}.{addr >> 16 & 255}.{addr >> 8 & 255}.{addr & 255}/{plen}")
            want = sorted({e for e in entries if prefix_contains(e, probe)})
            self.assertEqual(sorted(ix.covering_values(probe)), want)

    def test_length_masks(self):
        """covered_with_length and classify read per-length answers from the covering values."""
        ix = PrefixIndex()
        ix[key("10.0.0.0/8")] = sum(1 << n for n in range(8, 25))
        self.assertTrue(ix.covered_with_length(key("10.1.0.0/24")))
        self.assertFalse(ix.covered_with_length(key("10.1.0.0/25")))
        self.assertFalse(ix.covered_with_length(key("11.0.0.0/24")))
        cls = PrefixIndex()
        cls[key("10.0.0.0/8")] = tuple(1 if n == 24 else 0 for n in range(33))
        cls[key("10.1.0.0/16")] = tuple(2 for _ in range(33))
        self.assertEqual(cls.classify(key("10.1.2.0/24")), 3)
        self.assertEqual(cls.classify(key("10.2.2.0/24")), 1)
        self.assertEqual(cls.classify(key("10.1.2.0/25")), 2)

    def test_classifier_agrees_with_classify(self):
        """classifier() gives classify()'s answer for random IPv4 and IPv6 keys, probing fewer lengths."""
        rng = random.Random(11)
        for afi, bits, top in ((1, 32, 8), (2, 128, 16)):
            ix = PrefixIndex()
            for _ in range(400):
                plen = rng.randrange(0, bits + 1)
                n = rng.getrandbits(plen) if plen else 0
                k = bytes((plen,)) + (n << ((-plen) % 8)).to_bytes((plen + 7) // 8, "big")
                ix[k] = tuple(rng.getrandbits(4) for _ in range(bits + 1))
            fast = ix.classifier(top)
            for _ in range(2000):
                plen = rng.randrange(0, bits + 1)
                n = rng.getrandbits(plen) if plen else 0
                k = bytes((plen,)) + (n << ((-plen) % 8)).to_bytes((plen + 7) // 8, "big")
                self.assertEqual(fast(k), ix.classify(k), (afi, k))
