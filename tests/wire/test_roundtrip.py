"""Round-trip properties of the wire codec (RFC 4271 section 4, RFC 4760, RFC 5492,
RFC 6793, RFC 7911, RFC 8654, RFC 8950, RFC 9003, RFC 9072, RFC 7313).

For every kind of message the encoder makes: ``decode(encode(m)) == m`` and
``encode(decode(x)) == x`` for the bytes ``x`` it made.  Then the two things
the encoder does that are not a plain mirror: 4-octet ASNs sent to a 2-octet
speaker through AS4_PATH / AS4_AGGREGATOR, and ``pack_reach`` /
``pack_withdraw`` filling as many prefixes into each message as fit.
"""

from __future__ import annotations

import random
import socket
import struct

from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st
from twisted.trial.unittest import SynchronousTestCase

from bgpd.wire import capabilities as caps
from bgpd.wire.attributes import AttributeCache, PathAttributes, parse_as_path
from bgpd.wire.constants import (
    AS_TRANS,
    HEADER_LEN,
    IPV4_UNICAST,
    IPV6_UNICAST,
    MAX_EXTENDED_MESSAGE_LEN,
    MAX_MESSAGE_LEN,
    AttrType,
    SegmentType,
)
from bgpd.wire.message import KEEPALIVE, Framer, decode_message, encode_message
from bgpd.wire.negotiated import Negotiated
from bgpd.wire.nlri import make_prefix
from bgpd.wire.notification import Notification
from bgpd.wire.open import Open
from bgpd.wire.refresh import RouteRefresh
from bgpd.wire.update import (
    MPReach,
    MPUnreach,
    Update,
    pack_end_of_rib,
    pack_reach,
    pack_withdraw,
)

PROPERTY = settings(
    max_examples=200,
    derandomize=True,
    database=None,
    deadline=None,
    suppress_health_check=[HealthCheck.too_slow, HealthCheck.data_too_large],
)

u8 = st.integers(0, 0xFF)
u16 = st.integers(0, 0xFFFF)
u32 = st.integers(0, 0xFFFFFFFF)
asn4 = st.one_of(st.integers(1, 0xFFFF), st.integers(0x10000, 0xFFFFFFFF))
asn2 = st.integers(1, 0xFFFF)

ipv4 = st.binary(min_size=4, max_size=4).map(socket.inet_ntoa)
#: a next hop RFC 4271 6.3 accepts: unicast, not 0.0.0.0
unicast_v4 = st.tuples(st.integers(1, 223), st.binary(min_size=3, max_size=3)).map(
    lambda t: socket.inet_ntoa(bytes((t[0],)) + t[1]))
#: an IPv6 next hop that can be used: global unicast (2000::/3), so neither
#: unspecified, multicast nor link-local (RFC 2545 3, RFC 4271 6.3)
ipv6 = st.tuples(st.integers(0x20, 0x3F), st.binary(min_size=15, max_size=15)).map(
    lambda t: socket.inet_ntop(socket.AF_INET6, bytes((t[0],)) + t[1]))
#: RFC 8950: IPv4 unicast NLRI with an IPv6 next hop, negotiated on both sides
EXT_NH = frozenset({(1, 1, 2)})
link_local = st.binary(min_size=8, max_size=8).map(
    lambda b: socket.inet_ntop(socket.AF_INET6, b"\xfe\x80" + bytes(6) + b))


def prefixes_of(afi: int) -> st.SearchStrategy[bytes]:
    """Canonical prefix keys (host bits cleared) of one family."""
    bits = 32 if afi == 1 else 128
    return st.tuples(st.binary(min_size=bits // 8, max_size=bits // 8), st.integers(0, bits)).map(
        lambda t: make_prefix(t[0], t[1]))


def nlri_of(afi: int, addpath: bool, min_size: int = 0, max_size: int = 12) -> st.SearchStrategy:
    """A list of prefix keys, or ``(path_id, key)`` pairs with add-path (RFC 7911)."""
    item = st.tuples(u32, prefixes_of(afi)) if addpath else prefixes_of(afi)
    return st.lists(item, min_size=min_size, max_size=max_size)


def segment(types: tuple[int, ...], asn: st.SearchStrategy[int]) -> st.SearchStrategy:
    return st.tuples(st.sampled_from(types), st.lists(asn, min_size=1, max_size=8).map(tuple))


@st.composite
def as_paths(draw, asn=asn4, confed_asn=asn4, confed=True):
    """AS paths: optional leading confederation segments (RFC 5065), then sequences and sets.

    ``confed=False`` for an external peer: confederation segments from one are
    treat-as-withdraw (RFC 7606 7.2).
    """
    confed = draw(st.lists(segment((SegmentType.AS_CONFED_SEQUENCE, SegmentType.AS_CONFED_SET),
                                   confed_asn), max_size=2 if confed else 0))
    rest = draw(st.lists(segment((SegmentType.AS_SEQUENCE, SegmentType.AS_SET), asn), max_size=4))
    return tuple(confed + rest)


# Codes no decoder in bgpd.wire claims, so they come back as unknown attributes.
_KNOWN_ATTRS = {int(a) for a in AttrType}
unknown_code = st.integers(1, 255).filter(lambda c: c not in _KNOWN_ATTRS)


@st.composite
def unknown_attrs(draw):
    """Optional transitive attributes we do not know, as we pass them on: Partial set (RFC 4271 5)."""
    codes = draw(st.lists(unknown_code, max_size=3, unique=True))
    # Some longer than 255 octets, so the extended length bit is exercised.
    value = st.binary(max_size=40) | st.binary(min_size=250, max_size=300)
    return tuple((0xE0, c, draw(value)) for c in codes)


@st.composite
def path_attributes(draw, ibgp=False, asn=asn4, confed_asn=asn4, aggregator_asn=asn4,
                    next_hop=unicast_v4):
    """Every attribute PathAttributes.pack writes; iBGP-only ones only when ``ibgp``."""
    return PathAttributes(
        origin=draw(st.integers(0, 2)),
        as_path=draw(as_paths(asn, confed_asn, confed=ibgp)),
        next_hop=draw(next_hop),
        med=draw(st.none() | u32),
        # RFC 4271 5.1.5: LOCAL_PREF from an external peer is ignored, so only iBGP.
        local_pref=draw(st.none() | u32) if ibgp else None,
        communities=tuple(draw(st.lists(u32, max_size=6))),
        large_communities=tuple(draw(st.lists(st.tuples(u32, u32, u32), max_size=4))),
        ext_communities=tuple(draw(st.lists(st.binary(min_size=8, max_size=8), max_size=4))),
        atomic_aggregate=draw(st.booleans()),
        aggregator=draw(st.none() | st.tuples(aggregator_asn, ipv4)),
        # RFC 4456 / RFC 7606 7.9-7.10: discarded from eBGP, so only iBGP.
        originator_id=draw(st.none() | ipv4) if ibgp else None,
        cluster_list=tuple(draw(st.lists(ipv4, max_size=4))) if ibgp else (),
        otc=draw(st.none() | u32),
        unknown=draw(unknown_attrs()),
    )


def mp_attributes(base: PathAttributes, afi: int, draw) -> PathAttributes:
    """``base`` with an MP_REACH next hop for ``afi``: IPv6 global (+ link-local), or IPv4."""
    if afi == 2 or draw(st.booleans()):
        # IPv6, or IPv4 NLRI with an IPv6 next hop (RFC 8950).
        return base.replace(next_hop=draw(ipv6), next_hop_ll=draw(st.none() | link_local))
    return base.replace(next_hop=draw(unicast_v4), next_hop_ll=None)


ADDPATH_CHOICES = [frozenset(), frozenset({IPV4_UNICAST}), frozenset({IPV6_UNICAST}),
                   frozenset({IPV4_UNICAST, IPV6_UNICAST})]


@st.composite
def sessions(draw):
    """A (sender's, receiver's) Negotiated pair: add-path tx on one side is rx on the other."""
    ibgp = draw(st.booleans())
    addpath = draw(st.sampled_from(ADDPATH_CHOICES))
    tx = Negotiated(ibgp=ibgp, addpath_tx=addpath, ext_nexthop=EXT_NH)
    rx = Negotiated(ibgp=ibgp, addpath_rx=addpath, ext_nexthop_rx=EXT_NH)
    return tx, rx


@st.composite
def updates(draw, tx: Negotiated):
    """UPDATEs in the shape decode_update returns them, for the sender's session ``tx``."""
    ap = tx.addpath_tx
    kind = draw(st.sampled_from(["ipv4", "mp", "withdraw", "mixed"]))
    withdrawn = draw(nlri_of(1, IPV4_UNICAST in ap))
    mp_unreach = None
    if kind != "ipv4" and draw(st.booleans()):
        afi = draw(st.sampled_from([1, 2]))
        mp_unreach = MPUnreach(afi, 1, draw(nlri_of(afi, (afi, 1) in ap)))
    if kind == "withdraw":
        return Update(withdrawn, None, [], None, mp_unreach)
    base = draw(path_attributes(ibgp=tx.ibgp))
    nlri = []
    attributes = None
    if kind in ("ipv4", "mixed"):
        nlri = draw(nlri_of(1, IPV4_UNICAST in ap, min_size=1))
        attributes = base
    mp_reach = None
    if kind in ("mp", "mixed"):
        afi = draw(st.sampled_from([1, 2]))
        mp_reach = MPReach(afi, 1, mp_attributes(base, afi, draw),
                           draw(nlri_of(afi, (afi, 1) in ap, min_size=1)))
    return Update(withdrawn, attributes, nlri, mp_reach, mp_unreach)


@st.composite
def update_cases(draw):
    tx, rx = draw(sessions())
    return tx, rx, draw(updates(tx))


families = st.tuples(u16, u8)
capability = st.one_of(
    st.builds(caps.Multiprotocol, u16, u8),
    st.just(caps.RouteRefresh()),
    st.just(caps.EnhancedRouteRefresh()),
    st.just(caps.ExtendedMessage()),
    st.builds(caps.FourOctetAS, u32),
    st.builds(caps.GracefulRestart, st.integers(0, 15), st.integers(0, 0xFFF),
              st.lists(st.tuples(u16, u8, u8), max_size=4).map(tuple)),
    st.builds(caps.LongLivedGracefulRestart,
              st.lists(st.tuples(u16, u8, u8, st.integers(0, 0xFFFFFF)), max_size=4).map(tuple)),
    st.builds(caps.AddPath, st.lists(st.tuples(u16, u8, st.integers(1, 3)), max_size=4).map(tuple)),
    st.builds(caps.ExtendedNextHop, st.lists(st.tuples(u16, u16, u16), max_size=4).map(tuple)),
    st.builds(caps.FQDN, st.text(max_size=20), st.text(max_size=20)),
    st.builds(caps.BgpRole, u8),
    st.builds(caps.UnknownCapability,
              st.integers(0, 255).filter(lambda c: c not in caps._DECODERS),
              st.binary(max_size=40)),
)

opens = st.builds(
    Open,
    my_as=u16,
    hold_time=u16,
    bgp_id=ipv4,
    # Up to 40 capabilities: often more than 255 octets, so RFC 9072 is needed.
    capabilities=(st.lists(capability, max_size=8) | st.lists(capability, min_size=25, max_size=40)).map(
        tuple),
)

notifications = st.one_of(
    st.builds(Notification, u8, u8, st.binary(max_size=200)),
    st.builds(Notification.shutdown, st.text(max_size=300), st.booleans()),
)

refreshes = st.builds(RouteRefresh, u16, u8, u8)


def frame_one(data: bytes, neg: Negotiated) -> tuple[int, bytes]:
    """The single message in ``data``, through the Framer (so the header is checked too)."""
    framer = Framer(neg.max_message_len)
    out = framer.feed(data)
    if len(out) != 1 or len(framer):
        raise AssertionError(f"expected one whole message, got {len(out)} + {len(framer)} octets")
    return out[0]


def decode_one(data: bytes, neg: Negotiated, cache: AttributeCache | None = None):
    msg_type, body = frame_one(data, neg)
    return decode_message(msg_type, body, neg, cache if cache is not None else AttributeCache())


def all_prefixes(update: Update) -> tuple[list, list]:
    """(announced, withdrawn) prefixes of one decoded UPDATE, every family together."""
    reach = list(update.nlri) + (list(update.mp_reach.nlri) if update.mp_reach else [])
    unreach = list(update.withdrawn) + (list(update.mp_unreach.withdrawn) if update.mp_unreach else [])
    return reach, unreach


class MessageRoundTripTests(SynchronousTestCase):
    """decode(encode(m)) == m and encode(decode(x)) == x for every message kind."""

    def check(self, msg, tx: Negotiated | None = None, rx: Negotiated | None = None) -> bytes:
        tx = tx or Negotiated()
        rx = rx or tx
        data = encode_message(msg, tx)
        self.assertEqual(struct.unpack_from("!H", data, 16)[0], len(data))
        back = decode_one(data, rx)
        self.assertEqual(back, msg)
        self.assertEqual(encode_message(back, tx), data)
        return data

    @PROPERTY
    @given(opens)
    def test_open(self, msg):
        """OPEN with any mix of capabilities, RFC 9072 form when they need it."""
        data = self.check(msg)
        caps_len = sum(len(c.pack()) for c in msg.capabilities)
        # RFC 9072 section 2: the extended form exactly when one parameter no longer fits.
        self.assertEqual(data[28] == 255 and data[29] == 255, caps_len + 2 > 255)

    def test_open_extended_parameters(self):
        """Capabilities worth more than 255 octets go in RFC 9072 extended parameters."""
        many = tuple(caps.UnknownCapability(200 + i % 50, bytes(range(i % 40))) for i in range(30))
        msg = Open.make(4200000001, 90, "192.0.2.1", (caps.Multiprotocol(1, 1),) + many)
        data = self.check(msg)
        self.assertEqual(data[28:30], b"\xff\xff")
        self.assertEqual(struct.unpack_from("!H", data, 30)[0], len(data) - 32)
        back = decode_one(data, Negotiated())
        self.assertEqual((back.my_as, back.asn), (AS_TRANS, 4200000001))

    @PROPERTY
    @given(update_cases())
    def test_update(self, case):
        """UPDATE with every attribute, family and add-path combination."""
        tx, rx, msg = case
        self.check(msg, tx, rx)

    @PROPERTY
    @given(update_cases())
    def test_update_interned(self, case):
        """A second decode through the same AttributeCache returns an equal UPDATE."""
        tx, rx, msg = case
        data = encode_message(msg, tx)
        cache = AttributeCache()
        first = decode_one(data, rx, cache)
        second = decode_one(data, rx, cache)
        self.assertEqual(first, msg)
        self.assertEqual(second, first)
        if first.attributes is not None:
            self.assertIs(second.attributes, first.attributes)

    @PROPERTY
    @given(notifications)
    def test_notification(self, msg):
        """NOTIFICATION, with and without an RFC 9003 shutdown message."""
        self.check(msg)

    @PROPERTY
    @given(refreshes)
    def test_route_refresh(self, msg):
        """ROUTE-REFRESH with every RFC 7313 subtype value."""
        self.check(msg)

    def test_keepalive(self):
        """KEEPALIVE is the 19-octet header alone."""
        data = self.check(KEEPALIVE)
        self.assertEqual(data, b"\xff" * 16 + b"\x00\x13\x04")

    @PROPERTY
    @given(st.sampled_from([IPV4_UNICAST, IPV6_UNICAST, (2, 2), (1, 2)]))
    def test_end_of_rib(self, family):
        """pack_end_of_rib decodes to an UPDATE whose end_of_rib names the family."""
        neg = Negotiated(families=frozenset({IPV4_UNICAST, IPV6_UNICAST, (2, 2), (1, 2)}))
        back = decode_one(pack_end_of_rib(*family), neg)
        self.assertEqual(back.end_of_rib, family)
        self.assertEqual(encode_message(back, neg), pack_end_of_rib(*family))


class FourOctetASTests(SynchronousTestCase):
    """RFC 6793 4.2.2 / 4.2.3: 4-octet ASNs survive a 2-octet session."""

    @PROPERTY
    @given(st.data())
    def test_as4_path_and_aggregator(self, data):
        """Any 4-octet AS_PATH / AGGREGATOR comes back whole through AS4_PATH / AS4_AGGREGATOR."""
        big = st.integers(0x10000, 0xFFFFFFFF)
        path = data.draw(as_paths(asn=asn4, confed_asn=asn2))
        has_big = any(a > 0xFFFF for s, asns in path for a in asns if s <= 2)
        # RFC 6793 4.2.3: an AGGREGATOR other than AS_TRANS makes the receiver
        # ignore AS4_PATH, so with a 4-octet path the aggregator must be 4-octet too.
        agg_asn = (big | st.just(AS_TRANS)) if has_big else asn4
        attrs = data.draw(path_attributes(asn=asn4, confed_asn=asn2, aggregator_asn=agg_asn))
        attrs = attrs.replace(as_path=path)
        # iBGP: confederation segments come only from inside (RFC 7606 7.2)
        neg = Negotiated(as4=False, ibgp=True)
        prefixes = data.draw(nlri_of(1, False, min_size=1))
        msg = Update([], attrs, prefixes)
        wire = encode_message(msg, neg)
        back = decode_one(wire, neg)
        self.assertEqual(back, msg)
        self.assertEqual(encode_message(back, neg), wire)
        # AS_PATH itself (right after the 4-octet ORIGIN) is 2-octet, with
        # AS_TRANS standing in for every ASN that does not fit.
        attr_block = wire[HEADER_LEN + 4:]
        self.assertEqual(attr_block[4:6], bytes((0x40, AttrType.AS_PATH)))
        as_path = parse_as_path(attr_block[7:7 + attr_block[6]], False)
        self.assertEqual(as_path, tuple((s, tuple(a if a <= 0xFFFF else AS_TRANS for a in asns))
                                        for s, asns in path))

    def test_aggregator_known_limit(self):
        """RFC 6793 4.2.3: a 2-octet AGGREGATOR makes the receiver drop AS4_PATH (by the RFC)."""
        attrs = PathAttributes(as_path=((2, (65001, 4200000001)),), next_hop="192.0.2.1",
                               aggregator=(65001, "192.0.2.9"))
        neg = Negotiated(as4=False)
        back = decode_one(encode_message(Update([], attrs, [b"\x18\xc6\x33\x64"]), neg), neg)
        self.assertEqual(back.attributes.as_path, ((2, (65001, AS_TRANS)),))
        self.assertEqual(back.attributes.aggregator, (65001, "192.0.2.9"))

    def test_as_path_wire_form(self):
        """The 2-octet AS_PATH carries AS_TRANS; AS4_PATH leaves confederation segments out."""
        attrs = PathAttributes(as_path=((3, (65010,)), (2, (65001, 4200000001))),
                               next_hop="192.0.2.1")
        wire = attrs.pack(as4=False)
        as_path = bytes((0x40, 2, 10, 3, 1)) + struct.pack("!H", 65010) + bytes((2, 2)) + struct.pack(
            "!HH", 65001, AS_TRANS)
        as4_path = bytes((0xC0, 17, 10, 2, 2)) + struct.pack("!II", 65001, 4200000001)
        self.assertIn(as_path, wire)
        self.assertIn(as4_path, wire)


def _random_prefixes(rng: random.Random, afi: int, count: int, addpath: bool) -> list:
    bits = 32 if afi == 1 else 128
    out = []
    for _ in range(count):
        # mostly host routes: the longest keys fill messages fastest
        plen = bits if rng.random() < 0.6 else rng.randint(0, bits)
        key = make_prefix(rng.getrandbits(bits).to_bytes(bits // 8, "big"), plen)
        out.append((rng.getrandbits(32), key) if addpath else key)
    return out


@st.composite
def bulk_cases(draw):
    """A family, attributes, a session and thousands of prefixes (enough for 65535-octet UPDATEs)."""
    afi = draw(st.sampled_from([1, 2]))
    extended = draw(st.booleans())
    addpath = draw(st.booleans())
    as4 = draw(st.booleans())
    fam = (afi, 1)
    tx = Negotiated(as4=as4, extended_message=extended, ext_nexthop=EXT_NH,
                    addpath_tx=frozenset({fam}) if addpath else frozenset())
    rx = Negotiated(as4=as4, extended_message=extended, ext_nexthop_rx=EXT_NH,
                    addpath_rx=frozenset({fam}) if addpath else frozenset())
    attrs = draw(path_attributes(asn=asn4 if as4 else asn2, confed_asn=asn4 if as4 else asn2,
                                 aggregator_asn=asn4 if as4 else asn2))
    if afi == 2:
        attrs = attrs.replace(next_hop=draw(ipv6), next_hop_ll=draw(st.none() | link_local))
    elif draw(st.booleans()):
        attrs = attrs.replace(next_hop=draw(ipv6))  # RFC 8950: goes in MP_REACH_NLRI
    # enough for several 4096-octet messages, or (extended) a few 65535-octet ones
    if extended:
        big = (14000, 20000) if afi == 1 else (4000, 6000)
    else:
        big = (1000, 2500) if afi == 1 else (300, 800)
    # Sizes from a drawn seed rather than hypothesis' own integers, which
    # lean to the small end: here the big cases are the point.
    rng = random.Random(draw(u32))
    low, high = rng.choices([(0, 20), (50, 300), big], [0.2, 0.3, 0.5])[0]
    prefixes = _random_prefixes(rng, afi, rng.randint(low, high), addpath)
    return afi, attrs, prefixes, tx, rx


BULK = settings(PROPERTY, max_examples=50)


class BulkPackingTests(SynchronousTestCase):
    """pack_reach / pack_withdraw: every prefix once, in order, no message over the limit."""

    def split(self, messages: list[bytes], neg: Negotiated, limit: int) -> list[Update]:
        framer = Framer(neg.max_message_len)
        out = framer.feed(b"".join(messages))
        self.assertEqual(len(out), len(messages))
        self.assertEqual(len(framer), 0)
        for m in messages:
            self.assertLessEqual(len(m), limit)
        cache = AttributeCache()
        return [decode_message(t, b, neg, cache) for t, b in out]

    @BULK
    @given(bulk_cases())
    def test_pack_reach(self, case):
        """pack_reach output decodes back to exactly the input prefixes and attributes."""
        afi, attrs, prefixes, tx, rx = case
        limit = MAX_EXTENDED_MESSAGE_LEN if tx.extended_message else MAX_MESSAGE_LEN
        messages = pack_reach(afi, 1, attrs, prefixes, tx)
        decoded = self.split(messages, rx, limit)
        got = []
        for u in decoded:
            self.assertFalse(u.treat_as_withdraw, u.problems)
            reach, unreach = all_prefixes(u)
            self.assertEqual(unreach, [])
            got.extend(reach)
            self.assertEqual(u.mp_reach.attributes if u.mp_reach else u.attributes, attrs)
        self.assertEqual(got, prefixes)
        if not prefixes:
            self.assertEqual(messages, [])
        self.assert_packed(decoded, messages, limit, rx, afi)

    @BULK
    @given(bulk_cases())
    def test_pack_withdraw(self, case):
        """pack_withdraw output decodes back to exactly the input prefixes."""
        afi, _, prefixes, tx, rx = case
        limit = MAX_EXTENDED_MESSAGE_LEN if tx.extended_message else MAX_MESSAGE_LEN
        messages = pack_withdraw(afi, 1, prefixes, tx)
        decoded = self.split(messages, rx, limit)
        got = []
        for u in decoded:
            reach, unreach = all_prefixes(u)
            self.assertEqual(reach, [])
            got.extend(unreach)
        self.assertEqual(got, prefixes)
        self.assert_packed(decoded, messages, limit, rx, afi, withdraw=True)

    def test_extended_boundaries(self):
        """30,000 host routes with RFC 8654: several messages, each at most 65535 octets, all full."""
        prefixes = [b"\x20" + i.to_bytes(4, "big") for i in range(30000)]
        attrs = PathAttributes(as_path=((2, (65001,)),), next_hop="192.0.2.1")
        for ext, limit in ((True, MAX_EXTENDED_MESSAGE_LEN), (False, MAX_MESSAGE_LEN)):
            neg = Negotiated(extended_message=ext)
            for messages in (pack_reach(1, 1, attrs, prefixes, neg), pack_withdraw(1, 1, prefixes, neg)):
                self.assertGreater(len(messages), 2)
                self.assertTrue(all(len(m) <= limit for m in messages))
                self.assertTrue(all(len(m) > limit - 5 for m in messages[:-1]))
                got = []
                for u in self.split(messages, neg, limit):
                    got.extend(all_prefixes(u)[0] or all_prefixes(u)[1])
                self.assertEqual(got, prefixes)

    def assert_packed(self, decoded, messages, limit, rx, afi, withdraw=False):
        """Every message but the last is full: its successor's first prefix did not fit."""
        addpath = (afi, 1) in rx.addpath_rx
        for nxt, m in zip(decoded[1:], messages, strict=False):
            reach, unreach = all_prefixes(nxt)
            first = (unreach if withdraw else reach)[0]
            size = (4 + len(first[1])) if addpath else len(first)
            self.assertGreater(len(m) + size, limit)


class EncoderEdgeTests(SynchronousTestCase):
    """What the encoder does with inputs that have no one-to-one wire form."""

    def test_empty_segment_left_out(self):
        """An AS_PATH segment emptied by policy is not sent (a 0-length segment is malformed)."""
        attrs = PathAttributes(as_path=((2, ()), (2, (65001,)), (1, ())), next_hop="192.0.2.1")
        for as4 in (True, False):
            neg = Negotiated(as4=as4)
            back = decode_one(encode_message(Update([], attrs, [b"\x08\x0a"]), neg), neg)
            self.assertEqual(back.problems, ())
            self.assertEqual(back.attributes.as_path, ((2, (65001,)),))

    def test_long_segment_split(self):
        """A sequence of more than 255 ASNs is sent as several segments of at most 255."""
        asns = tuple(range(64512, 64512 + 600))
        attrs = PathAttributes(as_path=((2, asns),), next_hop="192.0.2.1")
        back = decode_one(encode_message(Update([], attrs, [b"\x08\x0a"])), Negotiated())
        self.assertEqual([len(a) for _, a in back.attributes.as_path], [255, 255, 90])
        self.assertEqual(back.attributes.as_path_length, 600)

    def test_unknown_flags_normalised(self):
        """Unknown attributes come back with Optional+Transitive+Partial only, whatever was sent."""
        for flags in (0xC0, 0xD0, 0xE0, 0xF0, 0xCF):
            value = b"v" * (300 if flags & 0x10 else 3)
            attrs = PathAttributes(as_path=((2, (65001,)),), next_hop="192.0.2.1").pack()
            extra = (struct.pack("!BBH", flags, 99, len(value)) if flags & 0x10
                     else struct.pack("!BBB", flags, 99, len(value))) + value
            body = b"\x00\x00" + struct.pack("!H", len(attrs + extra)) + attrs + extra + b"\x08\x0a"
            u = decode_message(2, body, Negotiated(), AttributeCache())
            self.assertEqual(u.attributes.unknown, ((0xE0, 99, value),))
            again = decode_one(encode_message(u), Negotiated())
            self.assertEqual(again, u)
