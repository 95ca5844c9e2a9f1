"""bgpd.monitor.bmp reads GoBGP's BMP stream (tests/monitor/golden/gobgp_bmp.hex) and writes it back.

The capture (tests/interop/capture_bmp_golden.py): gobgpd (AS 4200000001,
192.0.2.1) monitoring its session with BIRD (AS 65002, 192.0.2.2, three
prefixes) pre-policy, post-policy and Loc-RIB (RFC 9069), then the Peer
Down after BIRD stopped.  Another implementation's bytes check the
decoder, and re-encoding each decoded message gives the same bytes back.
"""

from __future__ import annotations

import os

from twisted.trial.unittest import SynchronousTestCase

from bgpd.monitor import bmp
from bgpd.monitor.bmp import FLAG_L, Initiation, PeerDownMsg, PeerType, PeerUpMsg, RouteMonitoring
from bgpd.wire.message import decode_stream as bgp_decode
from bgpd.wire.negotiated import Negotiated
from bgpd.wire.nlri import prefix_to_str

GOLDEN = os.path.join(os.path.dirname(__file__), "golden", "gobgp_bmp.hex")
PREFIXES = {"198.51.100.0/25", "198.51.100.128/25", "2001:db8:100::/48"}


def golden() -> list[bytes]:
    with open(GOLDEN) as f:
        return [bytes.fromhex(line) for line in f if line.strip() and not line.startswith("#")]


def announced(msg: RouteMonitoring) -> set[str]:
    out = set()
    for u in bgp_decode(msg.update, Negotiated(as4=True)):
        out |= {prefix_to_str(k, 1) for k in u.nlri}
        if u.mp_reach is not None:
            out |= {prefix_to_str(k, u.mp_reach.afi) for k in u.mp_reach.nlri}
    return out


class GoBgpGoldenTests(SynchronousTestCase):
    """Each message of GoBGP's stream, decoded and re-encoded."""

    def setUp(self) -> None:
        self.raw = golden()
        self.msgs = [bmp.decode(r)[0] for r in self.raw]

    def test_round_trip(self):
        """Every message re-encodes to GoBGP's bytes exactly."""
        self.assertEqual(len(self.raw), 18)
        for raw, msg in zip(self.raw, self.msgs, strict=True):
            self.assertEqual(bmp.encode(msg), raw, msg)

    def test_initiation_and_peer_up(self):
        """The Initiation, then BIRD's Peer Up with both OPENs and the ports."""
        self.assertIsInstance(self.msgs[0], Initiation)
        up = self.msgs[1]
        self.assertIsInstance(up, PeerUpMsg)
        self.assertEqual((up.peer.address, up.peer.asn, up.peer.bgp_id), ("192.0.2.2", 65002, "192.0.2.2"))
        self.assertEqual(up.local_address, "192.0.2.1")
        self.assertIn(179, (up.local_port, up.remote_port))
        (sent,) = bgp_decode(up.sent_open)
        (received,) = bgp_decode(up.received_open)
        self.assertEqual((sent.asn, received.asn), (4200000001, 65002))

    def test_route_monitoring_views(self):
        """Pre-policy, post-policy (L) and Loc-RIB (peer type 3) each carry BIRD's three prefixes."""
        rms = [m for m in self.msgs if isinstance(m, RouteMonitoring)]
        pre = set().union(*(announced(m) for m in rms
                            if m.peer.peer_type == 0 and not m.peer.flags & FLAG_L))
        post = set().union(*(announced(m) for m in rms if m.peer.post_policy))
        loc = [m for m in rms if m.peer.peer_type == PeerType.LOC_RIB]
        self.assertEqual(pre, PREFIXES)
        self.assertEqual(post, PREFIXES)
        self.assertEqual(set().union(*(announced(m) for m in loc)), PREFIXES)
        self.assertEqual({(m.peer.asn, m.peer.bgp_id) for m in loc}, {(4200000001, "192.0.2.1")})

    def test_peer_down(self):
        """The stream ends with BIRD's Peer Down."""
        down = self.msgs[-1]
        self.assertIsInstance(down, PeerDownMsg)
        self.assertEqual(down.peer.address, "192.0.2.2")
        self.assertIn(down.reason, (1, 2, 3, 4))
