"""Tests for bgpd.monitor.bmp: every BMP message kind as golden bytes and round trips.

RFC 7854 sections 4.1-4.10, RFC 8671 (Adj-RIB-Out, O flag), RFC 9069
(Loc-RIB peer type 3).  The golden bytes are written out field by field from
the RFCs' figures, not produced by the encoder.
"""

from __future__ import annotations

import struct

from hypothesis import given
from hypothesis import strategies as st
from twisted.trial.unittest import SynchronousTestCase

from bgpd.monitor import bmp
from bgpd.monitor.bmp import (
    FLAG_A,
    FLAG_L,
    FLAG_O,
    BmpError,
    Initiation,
    PeerDownMsg,
    PeerHeader,
    PeerType,
    PeerUpMsg,
    RouteMonitoring,
    StatisticsReport,
    Termination,
    decode,
    decode_stream,
    encode,
    route_updates,
)
from bgpd.wire.attributes import PathAttributes
from bgpd.wire.message import decode_stream as bgp_decode
from bgpd.wire.negotiated import Negotiated
from bgpd.wire.nlri import prefix_from_str
from bgpd.wire.update import pack_reach

MARKER = "ff" * 16


def h(text: str) -> bytes:
    """Hex with spaces and newlines for readability."""
    return bytes.fromhex("".join(text.split()))


#: A per-peer header: global, flags 0, RD 0, 192.0.2.2, AS65002, id 192.0.2.2,
#: 1700000000.25 s (250000 us).
PEER_HDR = h("""
    00 00 0000000000000000
    00000000 00000000 00000000 c0000202
    0000fdea c0000202
    6553f100 0003d090
""")
PEER = PeerHeader("192.0.2.2", 65002, "192.0.2.2", 1700000000.25)
KEEPALIVE = h(MARKER + "0013 04")
OPEN_MIN = h(MARKER + "001d 01 04 fdea 005a c0000202 00")


class PeerHeaderTests(SynchronousTestCase):
    """RFC 7854 4.2."""

    def test_golden_ipv4(self):
        """An IPv4 peer: address in the low-order four octets, V clear."""
        self.assertEqual(PEER.pack(), PEER_HDR)
        self.assertEqual(PeerHeader.unpack(PEER_HDR), PEER)

    def test_golden_ipv6_post_policy_adj_rib_out(self):
        """An IPv6 peer sets V; L, A and O are kept as given."""
        p = PeerHeader("2001:db8::2", 4200000000, "198.51.100.1", 0.0,
                       flags=FLAG_L | FLAG_A | FLAG_O)
        self.assertEqual(p.pack(), h("""
            00 f0 0000000000000000
            20010db8000000000000000000000002
            fa56ea00 c6336401
            00000000 00000000
        """))
        back = PeerHeader.unpack(p.pack())
        self.assertEqual(back.flags, 0x80 | FLAG_L | FLAG_A | FLAG_O)
        self.assertTrue(back.post_policy)
        self.assertTrue(back.adj_rib_out)
        self.assertEqual(back.address, "2001:db8::2")

    def test_loc_rib(self):
        """RFC 9069: peer type 3, address zero, F flag is not V."""
        p = PeerHeader("0.0.0.0", 65000, "192.0.2.1", 0.0, peer_type=PeerType.LOC_RIB, flags=0)
        raw = p.pack()
        self.assertEqual(raw[:2], b"\x03\x00")
        self.assertFalse(PeerHeader.unpack(raw).post_policy)

    def test_short(self):
        """A cut header is an error, not an exception of another kind."""
        self.assertRaises(BmpError, PeerHeader.unpack, PEER_HDR[:41])


class MessageGoldenTests(SynchronousTestCase):
    """Each message kind against bytes written from the RFC figures."""

    def check(self, msg, golden: bytes) -> None:
        self.assertEqual(encode(msg), golden)
        back, end = decode(golden)
        self.assertEqual(end, len(golden))
        self.assertEqual(back, msg)

    def test_initiation(self):
        """4.3: sysDescr (type 1) and sysName (type 2) TLVs."""
        msg = Initiation.make("r1", "bgpd")
        golden = h("03 00000014 04") + h("0001 0004") + b"bgpd" + h("0002 0002") + b"r1"
        self.check(msg, golden)
        self.assertEqual(msg.text(bmp.INFO_SYS_NAME), "r1")

    def test_termination(self):
        """4.5: a string and the reason TLV (type 1, 2 octets)."""
        msg = Termination.make(bmp.TerminationReason.OUT_OF_RESOURCES, "slow")
        golden = h("03 00000014 05") + h("0000 0004") + b"slow" + h("0001 0002 0002")
        self.check(msg, golden)
        self.assertEqual(msg.reason, 2)

    def test_route_monitoring(self):
        """4.6: the per-peer header, then one BGP UPDATE PDU."""
        update = h(MARKER + "0017 02 0000 0000")  # End-of-RIB for IPv4 unicast
        msg = RouteMonitoring(PEER, update)
        golden = h("03 00000047 00") + PEER_HDR + update
        self.check(msg, golden)

    def test_statistics(self):
        """4.8: a count, then 32-bit counters, 64-bit gauges and per-family gauges."""
        msg = StatisticsReport(PEER, ((0, 3), (7, 1_000_000), (9, (2, 1, 5))))
        golden = (h("03 00000057 01") + PEER_HDR + h("00000003")
                  + h("0000 0004 00000003")
                  + h("0007 0008 00000000000f4240")
                  + h("0009 000b 0002 01 0000000000000005"))
        self.check(msg, golden)
        self.assertEqual(msg.get(7), 1_000_000)

    def test_statistics_duplicates(self):
        """4.8 types 1 and 2 (duplicate advertisements and withdraws) are 32-bit counters."""
        msg = StatisticsReport(PEER, ((bmp.Stat.DUPLICATE_PREFIX, 7), (bmp.Stat.DUPLICATE_WITHDRAW, 2)))
        golden = (h("03 00000044 01") + PEER_HDR + h("00000002")
                  + h("0001 0004 00000007")
                  + h("0002 0004 00000002"))
        self.check(msg, golden)
        self.assertEqual(msg.get(2), 2)

    def test_peer_down_notification(self):
        """4.9 reason 1: a NOTIFICATION PDU follows."""
        notif = h(MARKER + "0015 03 06 02")
        msg = PeerDownMsg.make(PEER, 1, notification=notif)
        golden = h("03 00000046 02") + PEER_HDR + h("01") + notif
        self.check(msg, golden)

    def test_peer_down_fsm(self):
        """4.9 reason 2: the 2-octet FSM event code follows."""
        msg = PeerDownMsg.make(PEER, 2, fsm_event=18)
        golden = h("03 00000033 02") + PEER_HDR + h("02 0012")
        self.check(msg, golden)
        self.assertEqual(msg.fsm_event, 18)

    def test_peer_down_no_data(self):
        """4.9 reasons 4 and 5 carry nothing."""
        for reason in (4, 5):
            msg = PeerDownMsg.make(PEER, reason, notification=b"ignored")
            self.check(msg, h("03 00000031 02") + PEER_HDR + bytes((reason,)))

    def test_peer_up(self):
        """4.10: local address, ports, sent and received OPEN, information TLVs."""
        msg = PeerUpMsg(PEER, "192.0.2.1", 179, 40000, OPEN_MIN, OPEN_MIN,
                        ((bmp.INFO_STRING, b"x"),))
        golden = (h("03 00000083 03") + PEER_HDR
                  + h("00000000 00000000 00000000 c0000201") + h("00b3 9c40")
                  + OPEN_MIN + OPEN_MIN + h("0000 0001") + b"x")
        self.check(msg, golden)


class DecodeErrorTests(SynchronousTestCase):
    """Bad bytes end in BmpError."""

    def test_version(self):
        """Only version 3 is read."""
        self.assertRaises(BmpError, decode, h("02 00000006 04"))

    def test_length(self):
        """A length beyond the data is refused."""
        self.assertRaises(BmpError, decode, h("03 00000020 04"))

    def test_type(self):
        """An unknown type is refused."""
        self.assertRaises(BmpError, decode, h("03 00000006 09"))

    def test_route_monitoring_not_bgp(self):
        """Route Monitoring must carry a BGP message."""
        body = PEER_HDR + b"\x00" * 19
        self.assertRaises(BmpError, decode, h("03") + struct.pack("!I", 6 + len(body)) + h("00") + body)

    @given(st.binary(max_size=200))
    def test_random_bytes(self, data):
        """Random bytes decode or raise BmpError, nothing else."""
        try:
            decode(data)
        except BmpError:
            pass


class StreamTests(SynchronousTestCase):
    """Several messages back to back."""

    def test_stream(self):
        """decode_stream reads what encode wrote, in order."""
        msgs = [Initiation.make("r1", "d"), RouteMonitoring(PEER, KEEPALIVE[:16] + h("0017 02 0000 0000")),
                Termination.make(0)]
        self.assertEqual(decode_stream(b"".join(encode(m) for m in msgs)), msgs)


def _keys(*texts: str) -> list[bytes]:
    return [prefix_from_str(t)[1] for t in texts]


class RouteUpdateTests(SynchronousTestCase):
    """UPDATE PDUs re-encoded from the RIB's attributes (4.6: 4-octet ASNs)."""

    A = PathAttributes(origin=0, as_path=((2, (4200000000, 65001)),), next_hop="192.0.2.2")

    def test_ipv4_as4(self):
        """IPv4 announcements carry 4-octet ASNs in AS_PATH (no AS4_PATH)."""
        (pdu,) = route_updates((1, 1), self.A, _keys("198.51.100.0/24", "203.0.113.0/24"))
        (upd,) = bgp_decode(pdu, Negotiated(as4=True))
        self.assertEqual(upd.attributes.as_path, ((2, (4200000000, 65001)),))
        self.assertEqual(upd.nlri, _keys("198.51.100.0/24", "203.0.113.0/24"))

    def test_ipv6(self):
        """IPv6 goes in MP_REACH_NLRI with the next hop."""
        a = PathAttributes(origin=0, as_path=((2, (65001,)),), next_hop="2001:db8::2")
        (pdu,) = route_updates((2, 1), a, _keys("2001:db8:100::/48"))
        (upd,) = bgp_decode(pdu)
        self.assertEqual(upd.mp_reach.nlri, _keys("2001:db8:100::/48"))
        self.assertEqual(upd.mp_reach.attributes.next_hop, "2001:db8::2")

    def test_withdraw(self):
        """None withdraws (IPv4 field, or MP_UNREACH_NLRI)."""
        (pdu,) = route_updates((1, 1), None, _keys("198.51.100.0/24"))
        self.assertEqual(bgp_decode(pdu)[0].withdrawn, _keys("198.51.100.0/24"))
        (pdu6,) = route_updates((2, 1), None, _keys("2001:db8:100::/48"))
        self.assertEqual(bgp_decode(pdu6)[0].mp_unreach.withdrawn, _keys("2001:db8:100::/48"))

    def test_addpath(self):
        """With ADD-PATH the path identifiers go on the wire."""
        keys = [(7, k) for k in _keys("198.51.100.0/24")]
        (pdu,) = route_updates((1, 1), self.A, keys, addpath=True)
        neg = Negotiated(as4=True, addpath_rx=frozenset({(1, 1)}))
        self.assertEqual(bgp_decode(pdu, neg)[0].nlri, keys)

    def test_split(self):
        """A long list becomes several UPDATEs of at most 4096 octets."""
        keys = [prefix_from_str(f"10.{i // 256}.{i % 256}.0/24")[1] for i in range(3000)]
        pdus = route_updates((1, 1), self.A, keys)
        self.assertGreater(len(pdus), 1)
        self.assertTrue(all(len(p) <= 4096 for p in pdus))
        self.assertEqual([k for p in pdus for k in bgp_decode(p)[0].nlri], keys)

    def test_same_bytes_as_pack_reach(self):
        """The one-message case built here is pack_reach's bytes (IPv4, IPv6 with link-local, RFC 8950)."""
        cases = [
            ((1, 1), self.A.replace(med=5, communities=(65001 << 16 | 7,)), "198.51.100.0/24"),
            ((2, 1), PathAttributes(origin=1, as_path=((2, (65001, 65002)),), next_hop="2001:db8::2",
                                    next_hop_ll="fe80::2"), "2001:db8:100::/48"),
            ((1, 1), self.A.replace(next_hop="2001:db8::2"), "198.51.100.0/24"),
        ]
        for family, a, prefix in cases:
            for n in (1, 2, 300, 1200):  # 1200 /24s need more than one message
                keys = _keys(prefix) * n
                fresh = PathAttributes(*[getattr(a, f) for f in PathAttributes._FIELDS])
                want = pack_reach(family[0], family[1], fresh, keys, Negotiated(as4=True))
                self.assertEqual(route_updates(family, a, keys), want, (family, n))
                self.assertEqual(route_updates(family, a, keys), want)  # the kept encoding

    def test_empty(self):
        """No keys, no UPDATE."""
        self.assertEqual(route_updates((1, 1), self.A, []), [])
