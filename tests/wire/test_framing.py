"""Stream framing and header checks (RFC 4271 sections 4.1 and 6.1, RFC 8654 section 4).

The Framer must give the same messages however TCP cuts the stream, and
answer each header error with the exact NOTIFICATION RFC 4271 6.1 asks for:
Connection Not Synchronized (1/1), Bad Message Length (1/2, the length as
data) and Bad Message Type (1/3, the type as data).
"""

from __future__ import annotations

import random
import struct

from twisted.trial.unittest import SynchronousTestCase

from bgpd.wire.attributes import PathAttributes
from bgpd.wire.capabilities import Multiprotocol
from bgpd.wire.constants import MARKER, MsgType
from bgpd.wire.errors import NotificationError
from bgpd.wire.message import KEEPALIVE, Framer, decode_message, decode_stream, encode_message
from bgpd.wire.notification import Notification
from bgpd.wire.open import Open
from bgpd.wire.refresh import RouteRefresh
from bgpd.wire.update import pack_end_of_rib, pack_reach


def header(length: int, msg_type: int) -> bytes:
    return MARKER + struct.pack("!HB", length, msg_type)


def raw(msg_type: int, body: bytes, length: int | None = None) -> bytes:
    """A message with ``body`` and a header claiming ``length`` (the true length by default)."""
    return header(len(body) + 19 if length is None else length, msg_type) + body


def stream_messages() -> list[bytes]:
    attrs = PathAttributes(as_path=((2, (65001, 65002)),), next_hop="192.0.2.1", med=7,
                           communities=(0xFDE90001,))
    attrs6 = attrs.replace(next_hop="2001:db8::1", next_hop_ll="fe80::1")
    return [
        encode_message(Open.make(65001, 90, "192.0.2.1", (Multiprotocol(1, 1),))),
        encode_message(KEEPALIVE),
        *pack_reach(1, 1, attrs, [b"\x18\xc6\x33\x64", b"\x20\xc0\x00\x02\x07"]),
        *pack_reach(2, 1, attrs6, [b"\x30\x20\x01\x0d\xb8\x00\x01"]),
        pack_end_of_rib(2, 1),
        encode_message(RouteRefresh(1, 1, 1)),
        encode_message(KEEPALIVE),
        encode_message(Notification.shutdown("maintenance")),
    ]


class SplitTests(SynchronousTestCase):
    """The same messages come out however the stream is cut."""

    def setUp(self) -> None:
        self.messages = stream_messages()
        self.stream = b"".join(self.messages)
        self.expected = [(m[18], m[19:]) for m in self.messages]

    def feed_all(self, pieces: list[bytes]) -> list[tuple[int, bytes]]:
        framer = Framer()
        out = []
        for piece in pieces:
            out.extend(framer.feed(piece))
        self.assertEqual(len(framer), 0)
        return out

    def test_whole(self):
        """The stream in one piece gives every message, in order."""
        self.assertEqual(self.feed_all([self.stream]), self.expected)

    def test_every_single_cut(self):
        """Cut at every offset into two pieces: the same messages."""
        for cut in range(len(self.stream) + 1):
            self.assertEqual(self.feed_all([self.stream[:cut], self.stream[cut:]]), self.expected,
                             f"cut at {cut}")

    def test_every_cut_pair(self):
        """Cut at every pair of offsets (step 3) into three pieces: the same messages."""
        n = len(self.stream)
        for a in range(0, n + 1, 3):
            for b in range(a, n + 1, 7):
                pieces = [self.stream[:a], self.stream[a:b], self.stream[b:]]
                self.assertEqual(self.feed_all(pieces), self.expected, f"cuts at {a}, {b}")

    def test_one_byte_at_a_time(self):
        """One octet per feed: each message comes out exactly when its last octet arrives."""
        framer = Framer()
        out = []
        ends = []
        pos = 0
        for m in self.messages:
            pos += len(m)
            ends.append(pos)
        for i in range(len(self.stream)):
            got = framer.feed(self.stream[i:i + 1])
            if i + 1 in ends:
                self.assertEqual(len(got), 1, f"offset {i}")
            else:
                self.assertEqual(got, [], f"offset {i}")
            out.extend(got)
        self.assertEqual(out, self.expected)

    def test_random_chunks(self):
        """Random chunk sizes (fixed seed): the same messages."""
        rng = random.Random(4271)
        for _ in range(200):
            pieces = []
            i = 0
            while i < len(self.stream):
                step = rng.choice([1, 2, 3, 18, 19, 20, 64, 500])
                pieces.append(self.stream[i:i + step])
                i += step
            self.assertEqual(self.feed_all(pieces), self.expected)

    def test_partial_kept(self):
        """A partial message stays buffered and is counted by len()."""
        framer = Framer()
        first = len(self.messages[0])
        self.assertEqual(framer.feed(self.stream[:first - 1]), [])
        self.assertEqual(len(framer), first - 1)
        self.assertEqual(framer.feed(self.stream[first - 1:first + 5]), self.expected[:1])
        self.assertEqual(len(framer), 5)

    def test_decode_stream(self):
        """decode_stream decodes the whole stream and refuses a trailing partial message."""
        msgs = decode_stream(self.stream)
        self.assertEqual([m.msg_type for m in msgs], [t for t, _ in self.expected])
        with self.assertRaises(NotificationError) as cm:
            decode_stream(self.stream[:-1])
        self.assertEqual((cm.exception.code, cm.exception.subcode), (1, 2))


class HeaderErrorTests(SynchronousTestCase):
    """RFC 4271 6.1 header errors with their exact code, subcode and data."""

    def assert_error(self, data: bytes, code: int, subcode: int, err_data: bytes,
                     max_len: int = 4096) -> None:
        with self.assertRaises(NotificationError) as cm:
            Framer(max_len).feed(data)
        e = cm.exception
        self.assertEqual((e.code, e.subcode, e.data), (code, subcode, err_data))

    def test_bad_marker(self):
        """Any marker octet not 0xff: Connection Not Synchronized (1/1), no data."""
        good = raw(MsgType.KEEPALIVE, b"")
        for i in range(16):
            for value in (0x00, 0xFE, 0x7F):
                bad = good[:i] + bytes((value,)) + good[i + 1:]
                self.assert_error(bad, 1, 1, b"")

    def test_bad_marker_after_good_message(self):
        """A bad marker on the second message is found too."""
        good = raw(MsgType.KEEPALIVE, b"")
        self.assert_error(good + b"\x00" + good[1:], 1, 1, b"")

    def test_length_below_header(self):
        """A length below 19 is 1/2 with the 2-octet length as data."""
        for length in (0, 1, 18):
            for t in MsgType:
                self.assert_error(header(length, t) + bytes(40), 1, 2, struct.pack("!H", length))

    def test_length_above_4096(self):
        """Above 4096 octets without RFC 8654 is 1/2 with the length."""
        for t in (MsgType.UPDATE, MsgType.NOTIFICATION, MsgType.ROUTE_REFRESH, MsgType.OPEN):
            for length in (4097, 65535):
                self.assert_error(header(length, t), 1, 2, struct.pack("!H", length))

    def test_extended_message_update(self):
        """With RFC 8654 an UPDATE or NOTIFICATION of up to 65535 octets is framed."""
        for t in (MsgType.UPDATE, MsgType.NOTIFICATION):
            body = b"\x00\x00\x00\x00" + bytes(65535 - 23) if t == MsgType.UPDATE else bytes(65535 - 19)
            data = raw(t, body)
            self.assertEqual(len(data), 65535)
            self.assertEqual(Framer(65535).feed(data), [(t, body)])

    def test_extended_message_never_for_open_keepalive(self):
        """RFC 8654 4: OPEN stays within 4096 octets and KEEPALIVE at 19, even when extended."""
        self.assert_error(header(4097, MsgType.OPEN), 1, 2, b"\x10\x01", 65535)
        self.assert_error(header(65535, MsgType.OPEN), 1, 2, b"\xff\xff", 65535)
        self.assert_error(header(20, MsgType.KEEPALIVE) + b"\x00", 1, 2, b"\x00\x14", 65535)
        self.assert_error(header(4097, MsgType.KEEPALIVE), 1, 2, b"\x10\x01", 65535)

    def test_open_at_4096(self):
        """An OPEN of exactly 4096 octets passes the header check."""
        body = bytes(4096 - 19)
        self.assertEqual(Framer(65535).feed(raw(MsgType.OPEN, body)), [(MsgType.OPEN, body)])

    def test_keepalive_with_body(self):
        """A KEEPALIVE longer than 19 octets is 1/2 with its length, in the Framer and decoder."""
        self.assert_error(raw(MsgType.KEEPALIVE, b"\x00"), 1, 2, b"\x00\x14")
        with self.assertRaises(NotificationError) as cm:
            decode_message(MsgType.KEEPALIVE, b"\x00\x00")
        e = cm.exception
        self.assertEqual((e.code, e.subcode, e.data), (1, 2, b"\x00\x15"))

    def test_bad_type(self):
        """Types 0 and 6..255 are 1/3 with the type octet as data."""
        for t in (0, 6, 7, 128, 255):
            self.assert_error(header(19, t), 1, 3, bytes((t,)))
            self.assert_error(header(40, t) + bytes(21), 1, 3, bytes((t,)))
            with self.assertRaises(NotificationError) as cm:
                decode_message(t, b"")
            self.assertEqual((cm.exception.code, cm.exception.subcode, cm.exception.data),
                             (1, 3, bytes((t,))))

    def test_per_type_minimum(self):
        """One octet under each type's minimum (RFC 4271 6.1, RFC 2918) is 1/2; the minimum passes."""
        minimum = {MsgType.OPEN: 29, MsgType.UPDATE: 23, MsgType.NOTIFICATION: 21,
                   MsgType.KEEPALIVE: 19, MsgType.ROUTE_REFRESH: 23}
        for t, low in minimum.items():
            if low > 19:
                self.assert_error(raw(t, bytes(low - 20)), 1, 2, struct.pack("!H", low - 1))
            body = bytes(low - 19)
            self.assertEqual(Framer().feed(raw(t, body)), [(t, body)])

    def test_header_checked_before_body_arrives(self):
        """A bad length is reported as soon as the header is in, without waiting for the body."""
        self.assert_error(header(5000, MsgType.UPDATE), 1, 2, struct.pack("!H", 5000))

    def test_nothing_before_header(self):
        """Fewer than 19 octets, even garbage, are only buffered."""
        framer = Framer()
        self.assertEqual(framer.feed(b"\x00" * 18), [])
        self.assertEqual(len(framer), 18)

    def test_route_refresh_long_goes_to_decoder(self):
        """A ROUTE-REFRESH over 23 octets passes framing and gets RFC 7313 7/1 from the decoder."""
        data = raw(MsgType.ROUTE_REFRESH, b"\x00\x01\x00\x01\x00")
        [(t, body)] = Framer().feed(data)
        with self.assertRaises(NotificationError) as cm:
            decode_message(t, body)
        e = cm.exception
        self.assertEqual((e.code, e.subcode, e.data), (7, 1, data))
