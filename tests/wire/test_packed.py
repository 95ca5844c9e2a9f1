"""The packed AS_PATH, COMMUNITIES and LARGE_COMMUNITIES of PathAttributes
(RFC 6793 4.1, RFC 1997, RFC 8092, RFC 4271 9.1.2.2, RFC 6811, RFC 7606 7.2).

PathAttributes keeps them as their wire bodies; these tests hold the
accessors that read the bytes (path length, neighbour, origin and first AS,
loop counts, community membership, prepending) to what the tuple form says,
and the structure check the decoder uses on 4-octet sessions to
:func:`parse_as_path`'s verdicts.
"""

from __future__ import annotations

import pickle
import struct

from hypothesis import given, settings
from hypothesis import strategies as st
from twisted.trial.unittest import SynchronousTestCase

from bgpd.wire.attributes import (
    PathAttributes,
    _Malformed,
    check_as_path,
    pack_as_path,
    parse_as_path,
    prepend_as_path,
)

SEQ, SET, CSEQ, CSET = 2, 1, 3, 4

asns = st.integers(min_value=0, max_value=0xFFFFFFFF)
segments = st.tuples(st.sampled_from((SEQ, SET, CSEQ, CSET)),
                     st.lists(asns, min_size=1, max_size=300).map(tuple))
paths = st.lists(segments, max_size=4).map(tuple)


def _split(path: tuple) -> tuple:
    """What a tuple path looks like once packed: segments of at most 255 ASNs."""
    return tuple((t, a[i:i + 255]) for t, a in path for i in range(0, len(a), 255))


def _length(path: tuple) -> int:
    return sum(len(a) if t == SEQ else 1 if t == SET else 0 for t, a in path)


def _neighbor(path: tuple) -> int | None:
    for t, a in path:
        if t == SEQ:
            return a[0]
        if t not in (CSEQ, CSET):
            return None
    return None


class PackedFormTests(SynchronousTestCase):
    """The stored form and the tuple form agree."""

    def test_bytes_are_the_wire_body(self) -> None:
        """as_path_packed and communities_packed are the 4-octet wire values."""
        a = PathAttributes(as_path=((SEQ, (65001, 4200000000)), (SET, (7,))), communities=(1, 0xFFFFFF01))
        self.assertEqual(a.as_path_packed, bytes((2, 2)) + struct.pack("!II", 65001, 4200000000)
                         + bytes((1, 1)) + struct.pack("!I", 7))
        self.assertEqual(a.communities_packed, struct.pack("!II", 1, 0xFFFFFF01))
        self.assertEqual(a.as_path, ((SEQ, (65001, 4200000000)), (SET, (7,))))
        self.assertEqual(a.communities, (1, 0xFFFFFF01))

    def test_tuple_and_bytes_construction_are_equal(self) -> None:
        """A set built from tuples equals (and hashes as) one built from the bytes."""
        t = PathAttributes(as_path=((SEQ, (1, 2, 3)),), communities=(5, 6), next_hop="192.0.2.1")
        b = PathAttributes(as_path=t.as_path_packed, communities=t.communities_packed, next_hop="192.0.2.1")
        self.assertEqual(t, b)
        self.assertEqual(hash(t), hash(b))
        self.assertEqual(t.key(), b.key())
        self.assertNotEqual(t, t.replace(communities=(5,)))

    def test_replace_takes_tuples(self) -> None:
        """replace() with tuple forms packs them; other fields keep their packed values."""
        a = PathAttributes(as_path=((SEQ, (1,)),), communities=(9,))
        b = a.replace(as_path=((SEQ, (2, 1)),), med=5)
        self.assertEqual(b.as_path, ((SEQ, (2, 1)),))
        self.assertIs(b.communities_packed, a.communities_packed)
        self.assertEqual(b.med, 5)

    def test_long_segment_split_empty_dropped(self) -> None:
        """Tuples are stored as sent: 300 ASNs make two segments, an empty segment none."""
        a = PathAttributes(as_path=((SEQ, tuple(range(300))), (SET, ())))
        self.assertEqual(a.as_path, ((SEQ, tuple(range(255))), (SEQ, tuple(range(255, 300)))))
        self.assertEqual(a.as_path_length, 300)

    def test_many_communities(self) -> None:
        """More than 255 communities (an extended-length attribute) round-trip."""
        comms = tuple(range(1000, 1400))
        a = PathAttributes(communities=comms)
        self.assertEqual(a.communities, comms)
        self.assertEqual(len(a.communities_packed), 1600)

    def test_large_communities(self) -> None:
        """LARGE_COMMUNITIES are kept as their 12-octet wire values and read back as triples."""
        lcs = ((65001, 1, 2), (4200000000, 0xFFFFFFFF, 0))
        a = PathAttributes(large_communities=lcs)
        self.assertEqual(a.large_communities_packed,
                         struct.pack("!6I", 65001, 1, 2, 4200000000, 0xFFFFFFFF, 0))
        self.assertEqual(a.large_communities, lcs)
        self.assertEqual(a, PathAttributes(large_communities=a.large_communities_packed))
        self.assertNotEqual(a, PathAttributes(large_communities=lcs[:1]))
        self.assertEqual(PathAttributes().large_communities, ())
        many = tuple((i, i + 1, i + 2) for i in range(100))  # 300 values: past the precompiled unpackers
        self.assertEqual(PathAttributes(large_communities=many).large_communities, many)

    def test_pickle_and_repr(self) -> None:
        """Pickling keeps the set; repr shows the tuple forms."""
        a = PathAttributes(as_path=((SEQ, (65001, 3)),), communities=(7,))
        self.assertEqual(pickle.loads(pickle.dumps(a)), a)
        self.assertIn("as_path=((2, (65001, 3)),)", repr(a))
        self.assertIn("communities=(7,)", repr(a))
        self.assertEqual(repr(PathAttributes()), "PathAttributes()")

    def test_fields_are_the_readers_form(self) -> None:
        """fields() gives the tuples where key() gives the bytes."""
        a = PathAttributes(as_path=((SEQ, (1,)),), communities=(2,))
        self.assertEqual(a.fields()[1], ((SEQ, (1,)),))
        self.assertEqual(a.fields()[5], (2,))
        self.assertEqual(a.key()[1], a.as_path_packed)

    @settings(max_examples=300, deadline=None)
    @given(paths)
    def test_accessors_match_the_tuples(self, path: tuple) -> None:
        """Length, neighbour, origin and first AS read from the bytes say what the tuples say."""
        a = PathAttributes(as_path=path)
        split = _split(path)
        self.assertEqual(a.as_path, split)
        self.assertEqual(a.as_path_length, _length(split))
        self.assertEqual(a.neighbor_as, _neighbor(split))
        last = split[-1] if split else None
        self.assertEqual(a.origin_as, last[1][-1] if last and last[0] == SEQ else None)
        first = split[0] if split else None
        self.assertEqual(a.first_as, first[1][0] if first and first[0] == SEQ else None)
        self.assertEqual(list(a.all_asns()), [x for _, s in split for x in s])

    @settings(max_examples=300, deadline=None)
    @given(paths, asns)
    def test_count_asn(self, path: tuple, asn: int) -> None:
        """count_asn counts every occurrence in every segment, and only aligned ones."""
        a = PathAttributes(as_path=path)
        want = sum(s.count(asn) for _, s in path)
        self.assertEqual(a.count_asn(asn), want)
        for _t, s in path:
            self.assertEqual(a.count_asn(s[0]), sum(x.count(s[0]) for _, x in path))

    def test_count_asn_unaligned_bytes(self) -> None:
        """The bytes of an ASN spanning two ASNs (or a segment header) are not a hit."""
        # 0x0000FDE9 0x0000FDE9: the middle bytes 0xFDE90000 are not an ASN here.
        a = PathAttributes(as_path=((SEQ, (65001, 65001)),))
        self.assertEqual(a.count_asn(0xFDE90000), 0)
        self.assertEqual(a.count_asn(65001), 2)
        # The segment header (02 01) and the first ASN's top bytes.
        b = PathAttributes(as_path=((SEQ, (0x0000FFFF,)),))
        self.assertEqual(b.count_asn(0x02010000), 0)
        self.assertEqual(PathAttributes().count_asn(0), 0)

    def test_has_community(self) -> None:
        """has_community matches aligned values only."""
        a = PathAttributes(communities=(0x0001FFFF, 0xFF010000))
        self.assertTrue(a.has_community(0x0001FFFF))
        self.assertTrue(a.has_community(0xFF010000))
        self.assertFalse(a.has_community(0xFFFFFF01))  # the bytes across the two values
        self.assertFalse(PathAttributes().has_community(0))
        self.assertFalse(a.has_community(-1))


class PrependTests(SynchronousTestCase):
    """prepend_as_path does what the tuple code did (RFC 4271 5.1.2)."""

    def test_into_leading_sequence(self) -> None:
        """The AS joins a leading AS_SEQUENCE with room."""
        p = pack_as_path(((SEQ, (1, 2)), (SET, (3,))))
        self.assertEqual(PathAttributes(as_path=prepend_as_path(p, 9)).as_path,
                         ((SEQ, (9, 1, 2)), (SET, (3,))))

    def test_new_segment(self) -> None:
        """Before an AS_SET, a confederation segment, a full sequence or nothing: a new segment."""
        for head in ((SET, (3,)), (CSEQ, (4,)), (SEQ, tuple(range(255)))):
            p = prepend_as_path(pack_as_path((head,)), 9)
            self.assertEqual(PathAttributes(as_path=p).as_path, ((SEQ, (9,)), head))
        self.assertEqual(PathAttributes(as_path=prepend_as_path(b"", 9)).as_path, ((SEQ, (9,)),))

    def test_count(self) -> None:
        """count times, one at a time: a sequence of 254 takes one, the rest go in front."""
        p = prepend_as_path(pack_as_path(((SEQ, tuple(range(254))),)), 9, 3)
        self.assertEqual(PathAttributes(as_path=p).as_path,
                         ((SEQ, (9, 9)), (SEQ, (9,) + tuple(range(254)))))


class CheckAsPathTests(SynchronousTestCase):
    """check_as_path rejects what parse_as_path rejects, with the same reason."""

    @settings(max_examples=500, deadline=None)
    @given(st.binary(max_size=40), st.binary(max_size=4), st.binary(max_size=4))
    def test_same_verdict_as_parse(self, value: bytes, before: bytes, after: bytes) -> None:
        """Same subcode and reason, or both accept (and the confederation flag is right)."""
        data = before + value + after
        try:
            segs = parse_as_path(value, True)
        except _Malformed as e:
            with self.assertRaises(_Malformed) as cm:
                check_as_path(data, len(before), len(before) + len(value))
            self.assertEqual((cm.exception.outcome, cm.exception.subcode, cm.exception.reason),
                             (e.outcome, e.subcode, e.reason))
            return
        confed = check_as_path(data, len(before), len(before) + len(value))
        self.assertEqual(confed, any(t >= 3 for t, _ in segs))
        self.assertEqual(PathAttributes(as_path=value).as_path, segs)

    def test_structured_examples(self) -> None:
        """Well-formed paths pass; a zero-length segment, a bad type, an overrun do not."""
        good = bytes((2, 1)) + struct.pack("!I", 1) + bytes((3, 1)) + struct.pack("!I", 2)
        self.assertTrue(check_as_path(good, 0, len(good)))
        self.assertFalse(check_as_path(good[:6], 0, 6))
        for bad in (bytes((2, 0)), bytes((5, 1)) + b"\0" * 4, bytes((2, 2)) + b"\0" * 4, b"\x02"):
            with self.assertRaises(_Malformed):
                check_as_path(bad, 0, len(bad))
