"""The attribute intern cache: sharing, bounds, sweeping."""

from __future__ import annotations

from twisted.trial.unittest import SynchronousTestCase

from bgpd.wire.attributes import AttributeCache, PathAttributes
from bgpd.wire.negotiated import Negotiated
from bgpd.wire.nlri import prefix_from_str
from bgpd.wire.update import decode_update, pack_reach


def body(asn: int, prefix: str = "198.51.100.0/24") -> bytes:
    attrs = PathAttributes(as_path=((2, (65001, asn)),), next_hop="192.0.2.2")
    return pack_reach(1, 1, attrs, [prefix_from_str(prefix)[1]])[0][19:]


class AttributeCacheTests(SynchronousTestCase):
    def test_same_bytes_share_one_object(self):
        """Two UPDATEs with the same attribute bytes get the same PathAttributes."""
        cache = AttributeCache()
        a = decode_update(body(1), Negotiated(), cache)
        b = decode_update(body(1, "198.51.100.128/25"), Negotiated(), cache)
        self.assertIs(a.attributes, b.attributes)
        self.assertEqual((cache.hits, cache.misses), (1, 1))

    def test_contexts_do_not_mix(self):
        """The same bytes decoded for a 2-octet-AS session are interned apart."""
        cache = AttributeCache()
        a = decode_update(body(1), Negotiated(), cache)
        b = decode_update(body(1), Negotiated(as4=False), cache)
        self.assertIsNot(a.attributes, b.attributes)

    def test_bounded(self):
        """The table never holds more than max_entries, referenced or not."""
        cache = AttributeCache(max_entries=100)
        kept = [decode_update(body(i), Negotiated(), cache) for i in range(1, 1000)]
        self.assertLessEqual(len(cache), 100)
        self.assertEqual(len(kept), 999)

    def test_sweep_keeps_referenced(self):
        """A sweep drops entries nothing else holds and keeps the others."""
        cache = AttributeCache()
        held = decode_update(body(1), Negotiated(), cache)
        decode_update(body(2), Negotiated(), cache)
        self.assertEqual(cache.sweep(), 1)
        again = decode_update(body(1), Negotiated(), cache)
        self.assertIs(again.attributes, held.attributes)


class SessionRecordTests(SynchronousTestCase):
    """The decoder's per-Negotiated record (bgpd.wire.update._Session)."""

    def test_one_negotiated_two_caches(self):
        """A Negotiated decoding with one cache, then another, interns into each one's table."""
        neg = Negotiated()
        first, second = AttributeCache(), AttributeCache()
        a = decode_update(body(1), neg, first)
        b = decode_update(body(1), neg, second)
        c = decode_update(body(1), neg, first)
        self.assertIsNot(a.attributes, b.attributes)
        self.assertIs(a.attributes, c.attributes)
        self.assertEqual((first.hits, first.misses, second.hits, second.misses), (1, 1, 0, 1))

    def test_cleared_table_still_used(self):
        """After the cache starts its table over, the session's record still interns into it."""
        neg = Negotiated()
        cache = AttributeCache(max_entries=4)
        kept = [decode_update(body(i), neg, cache) for i in range(1, 10)]
        again = decode_update(body(9, "198.51.100.128/25"), neg, cache)
        self.assertIs(again.attributes, kept[-1].attributes)
        self.assertLessEqual(len(cache), 4)

    def test_pickled_without_record(self):
        """A Negotiated that has decoded pickles equal, and the copy makes its own record."""
        import pickle

        neg = Negotiated(peer_as=65001, enforce_first_as=True,
                         extended_message=True).with_local_addresses(frozenset({"192.0.2.1"}))
        decode_update(body(1), neg, AttributeCache())
        self.assertIsNotNone(neg._codec)
        copy = pickle.loads(pickle.dumps(neg))
        self.assertIsNone(copy._codec)
        self.assertEqual(copy, neg)
        self.assertEqual((copy.local_addresses, copy.max_message_len, copy._context),
                         (neg.local_addresses, 65535, neg._context))
        got = decode_update(body(1), copy, AttributeCache())
        self.assertIsNotNone(got.attributes)
        self.assertEqual(got.attributes, decode_update(body(1), neg, AttributeCache()).attributes)
