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
