"""What attribute sets share instead of holding their own (RFC 4271 5, RFC 4456,
RFC 9234, RFC 2545; issue 13: memory per path with several full feeds).

A full table holds several hundred thousand attribute sets per peer.  The
eight fields they rarely carry live in one tuple that equal values share;
MED, LOCAL_PREF and OTC values decoded from the wire are shared by value;
a path keeps its ADD-PATH id and its stale mark in one slot.  These tests
hold that sharing to the public reading of every field: what is shared must
read, compare, hash, pickle and encode exactly as before.
"""

from __future__ import annotations

import pickle

from twisted.trial.unittest import SynchronousTestCase

from bgpd.wire.attributes import AttributeCache, PathAttributes
from bgpd.wire.constants import HEADER_LEN
from bgpd.wire.negotiated import Negotiated
from bgpd.wire.nlri import make_prefix
from bgpd.wire.update import decode_update, pack_reach

RARE = {
    "ext_communities": (b"\x00\x02\xfd\xe9\x00\x00\x00\x01",),
    "atomic_aggregate": True,
    "aggregator": (65010, "192.0.2.9"),
    "originator_id": "192.0.2.7",
    "cluster_list": ("192.0.2.8", "192.0.2.6"),
    "otc": 65020,
    "next_hop_ll": "fe80::1",
    "unknown": ((0xE0, 99, b"\x01\x02"),),  # (Partial set, as passed on)
}
EBGP = Negotiated(as4=True, peer_as=65001)


def _base(**kw: object) -> PathAttributes:
    return PathAttributes(as_path=((2, (65001, 64512)),), next_hop="192.0.2.2", **kw)  # type: ignore[arg-type]


def _decode(attributes: PathAttributes, third_octet: int) -> PathAttributes:
    body = pack_reach(1, 1, attributes, [make_prefix(bytes((10, 0, third_octet, 0)), 24)], EBGP)[0]
    update = decode_update(body[HEADER_LEN:], EBGP, AttributeCache())
    assert update.attributes is not None
    return update.attributes


class RareFieldsTests(SynchronousTestCase):
    def test_each_field_reads_back(self) -> None:
        """Every rarely set field, set alone, reads back as given; the others keep their default."""
        default = PathAttributes()
        for name, value in RARE.items():
            a = _base(**{name: value})
            self.assertEqual(getattr(a, name), value)
            for other in RARE:
                if other != name:
                    self.assertEqual(getattr(a, other), getattr(default, other), (name, other))

    def test_equal_values_share_one_tuple(self) -> None:
        """Sets with no rare field, or with equal ones, share the tuple that holds them."""
        self.assertIs(_base()._rest, PathAttributes(med=7)._rest)
        a = _base(med=1, **RARE)  # type: ignore[arg-type]
        b = _base(med=2, **RARE)  # type: ignore[arg-type]
        self.assertIs(a._rest, b._rest)
        self.assertIsNot(a._rest, _base()._rest)

    def test_equality_hash_pickle_replace(self) -> None:
        """Shared or not, sets compare, hash, pickle and replace by value."""
        a = _base(**RARE)  # type: ignore[arg-type]
        # An unhashable value (a bytearray for an extended community) is not
        # shared, and still compares equal.
        b = _base(**{**RARE, "ext_communities": (bytearray(RARE["ext_communities"][0]),)})  # type: ignore
        self.assertIsNot(a._rest, b._rest)
        self.assertEqual(a, b)
        c = pickle.loads(pickle.dumps(a))
        self.assertEqual(c, a)
        self.assertEqual(hash(c), hash(a))
        self.assertEqual(a.replace(otc=None), _base(**{**RARE, "otc": None}))  # type: ignore[arg-type]
        self.assertEqual(a.replace(otc=None, atomic_aggregate=False, aggregator=None, originator_id=None,
                                   cluster_list=(), next_hop_ll=None, unknown=(), ext_communities=()),
                         _base())
        self.assertNotEqual(a, _base(**{**RARE, "originator_id": "192.0.2.77"}))  # type: ignore[arg-type]

    def test_wire_bytes_unchanged(self) -> None:
        """The encoding reads the shared fields: decoding it gives the same set back."""
        a = _base(med=5000, **{k: v for k, v in RARE.items()  # type: ignore[arg-type]
                               if k not in ("next_hop_ll", "originator_id", "cluster_list")})
        self.assertEqual(_decode(a, 1), a)

    def test_hash_is_stable_and_small(self) -> None:
        """The cached hash is the same each time and fits 62 bits (stored unboxed when compiled)."""
        a = _base(med=300, communities=(1, 2))
        h = hash(a)
        self.assertEqual(h, hash(a))
        self.assertEqual(h, hash(_base(med=300, communities=(1, 2))))
        self.assertTrue(0 <= h < 1 << 62)


class DecodedValuesTests(SynchronousTestCase):
    def test_med_and_otc_shared_by_value(self) -> None:
        """Two UPDATEs with the same large MED and OTC give sets that share those int objects."""
        x = _decode(_base(med=70000, otc=65020), 1)
        y = _decode(_base(med=70000 + 0, otc=65020, communities=(5,)), 2)
        self.assertIsNot(x, y)
        self.assertEqual((x.med, x.otc), (70000, 65020))
        self.assertIs(x.med, y.med)
        self.assertIs(x.otc, y.otc)
        self.assertIs(x._rest, y._rest)
