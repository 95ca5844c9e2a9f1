"""Tests for bgpd.session.negotiation: our OPEN and the checks on the peer's.

RFC 4271 4.2 and 6.2 (OPEN Message Error subcodes), RFC 5492 (capabilities,
Unsupported Capability), RFC 6793 (4-octet AS, AS_TRANS), RFC 4760
(families), RFC 7911 (add-path), RFC 8654, RFC 8950, RFC 4724, RFC 9234 (roles),
RFC 6286 (BGP identifier).  Every error path is also run through a
PeerFactory in OpenSent, checking the exact NOTIFICATION bytes it sends.
"""

from __future__ import annotations

import struct

from twisted.trial.unittest import SynchronousTestCase

from bgpd.session.fsm import State
from bgpd.session.negotiation import LARGE_HOLD_TIME, local_open, negotiate
from bgpd.wire.capabilities import (
    FQDN,
    AddPath,
    BgpRole,
    EnhancedRouteRefresh,
    ExtendedMessage,
    ExtendedNextHop,
    FourOctetAS,
    GracefulRestart,
    Multiprotocol,
    RouteRefresh,
)
from bgpd.wire.constants import Role
from bgpd.wire.errors import NotificationError
from bgpd.wire.message import KEEPALIVE, encode_message
from bgpd.wire.open import Open
from tests.session.test_factory import (
    LOCAL_ID,
    PEER_AS,
    PEER_ID,
    Harness,
    neighbor,
    notification_bytes,
    peer_open,
    sent,
    wire,
)


def raw_open(body: bytes) -> bytes:
    """An OPEN message around ``body``, whatever is in it."""
    return b"\xff" * 16 + struct.pack("!HB", 19 + len(body), 1) + body


class LocalOpenTests(SynchronousTestCase):
    """The OPEN we send, from the neighbor's config."""

    def test_exact_bytes_everything(self):
        """A 4-byte AS with every capability on: AS_TRANS, hold, id, each capability."""
        config = neighbor(
            local_as=4200000001,
            hold_time=90,
            families=("ipv4-unicast", "ipv6-unicast"),
            add_path="both",
            role="customer",
            graceful_restart=True,
            graceful_restart_time=120,
            extended_message=True,
            route_refresh=True,
        )
        caps = bytes.fromhex(
            "010400010001"  # MP ipv4 unicast
            "010400020001"  # MP ipv6 unicast
            "0200"  # route refresh
            "4600"  # enhanced route refresh
            "0600"  # extended message
            "40020078"  # graceful restart: helper, 120 s, no families
            "4508" "00010103" "00020103"  # add-path both, both families
            "090103"  # role customer
            "4904" "027231" "00"  # FQDN "r1", no domain
            "4104fa56ea01"  # 4-octet AS 4200000001
        )
        body = (
            bytes.fromhex("04" "5ba0" "005a" "c0000201")
            + bytes((len(caps) + 2, 2, len(caps)))
            + caps
        )
        self.assertEqual(
            encode_message(local_open(config, LOCAL_ID, "r1.example.net")), raw_open(body)
        )

    def test_minimal(self):
        """Everything optional off: MP, FQDN and 4-octet AS only; 2-octet AS in the field."""
        config = neighbor(
            route_refresh=False, extended_message=False, graceful_restart=False, hold_time=180
        )
        o = local_open(config, LOCAL_ID, "r1")
        self.assertEqual(o.my_as, 65001)
        self.assertEqual(o.asn, 65001)
        self.assertEqual(o.hold_time, 180)
        self.assertEqual(o.bgp_id, LOCAL_ID)
        self.assertEqual(
            o.capabilities, (Multiprotocol(1, 1), FQDN("r1", ""), FourOctetAS(65001))
        )

    def test_add_path_modes(self):
        """add_path receive/send map to RFC 7911 modes 1 and 2; off sends none."""
        for mode, value in (("receive", 1), ("send", 2), ("both", 3)):
            o = local_open(neighbor(add_path=mode), LOCAL_ID, "r1")
            self.assertEqual(o.find(AddPath), [AddPath(((1, 1, value),))])
        self.assertFalse(local_open(neighbor(add_path="off"), LOCAL_ID, "r1").has(AddPath))

    def test_roles(self):
        """Each configured role name becomes its RFC 9234 value."""
        for name, value in (("provider", 0), ("rs", 1), ("rs-client", 2), ("customer", 3),
                            ("peer", 4)):
            o = local_open(neighbor(role=name), LOCAL_ID, "r1")
            self.assertEqual(o.find(BgpRole), [BgpRole(value)])

    def test_ipv6_neighbor_default_family(self):
        """An IPv6 neighbor offers IPv6 unicast by default."""
        o = local_open(neighbor(address="2001:db8::2"), LOCAL_ID, "r1")
        self.assertEqual(o.find(Multiprotocol), [Multiprotocol(2, 1)])

    def test_hostname_first_label(self):
        """The FQDN capability carries the first label of the host name, at most 64 octets."""
        o = local_open(neighbor(), LOCAL_ID, "x" * 100 + ".example.net")
        self.assertEqual(o.find(FQDN), [FQDN("x" * 64, "")])

    def test_large_hold_time(self):
        """The OpenSent "large value" is 4 minutes (RFC 4271 8.2.2)."""
        self.assertEqual(LARGE_HOLD_TIME, 240)


class NegotiateTests(SynchronousTestCase):
    """negotiate(): what two OPENs agree."""

    def agree(self, remote: Open, **config: object) -> object:
        cfg = neighbor(**config)
        return negotiate(cfg, local_open(cfg, LOCAL_ID, "r1"), remote, LOCAL_ID)

    def test_families_intersection(self):
        """Families are those both offer, in our configured order."""
        info = self.agree(
            peer_open(caps=(Multiprotocol(2, 1), Multiprotocol(1, 1), Multiprotocol(1, 2))),
            families=("ipv4-unicast", "ipv6-unicast"),
        )
        self.assertEqual(info.families, ((1, 1), (2, 1)))
        self.assertEqual(info.negotiated.families, frozenset({(1, 1), (2, 1)}))

    def test_no_mp_capability_means_ipv4(self):
        """A peer without any MP capability speaks IPv4 unicast (RFC 4760 8)."""
        info = self.agree(Open(PEER_AS, 90, PEER_ID, ()))
        self.assertEqual(info.families, ((1, 1),))
        self.assertFalse(info.negotiated.as4)
        self.assertFalse(info.route_refresh)

    def test_hold_and_keepalive(self):
        """Hold time is the minimum; keepalive a third of it; 0 stays 0."""
        self.assertEqual(self.agree(peer_open(hold=3), hold_time=90).hold_time, 3)
        info = self.agree(peer_open(hold=240), hold_time=90)
        self.assertEqual((info.hold_time, info.keepalive_time), (90, 30.0))
        info = self.agree(peer_open(hold=0), hold_time=90)
        self.assertEqual((info.hold_time, info.keepalive_time), (0, 0.0))

    def test_add_path_directions(self):
        """We receive paths where the peer sends them, and send where it receives."""
        caps = (Multiprotocol(1, 1), Multiprotocol(2, 1),
                AddPath(((1, 1, AddPath.SEND), (2, 1, AddPath.RECEIVE))))
        info = self.agree(peer_open(caps=caps), families=("ipv4-unicast", "ipv6-unicast"),
                          add_path="both")
        self.assertEqual(info.negotiated.addpath_rx, frozenset({(1, 1)}))
        self.assertEqual(info.negotiated.addpath_tx, frozenset({(2, 1)}))
        info = self.agree(peer_open(caps=caps), families=("ipv4-unicast", "ipv6-unicast"),
                          add_path="receive")
        self.assertEqual(info.negotiated.addpath_rx, frozenset({(1, 1)}))
        self.assertEqual(info.negotiated.addpath_tx, frozenset())

    def test_extended_message_both_sides(self):
        """Extended messages only when both offer them (RFC 8654)."""
        caps = (Multiprotocol(1, 1), ExtendedMessage())
        self.assertTrue(self.agree(peer_open(caps=caps)).negotiated.extended_message)
        self.assertFalse(self.agree(peer_open(caps=caps), extended_message=False)
                         .negotiated.extended_message)
        self.assertFalse(self.agree(peer_open()).negotiated.extended_message)

    def test_extended_next_hop_directions(self):
        """RFC 8950 section 4: we accept what we advertised, and send only what the peer did too."""
        caps = (Multiprotocol(1, 1), Multiprotocol(2, 1), ExtendedNextHop(((1, 1, 2),)))
        fams = ("ipv4-unicast", "ipv6-unicast")
        both = self.agree(peer_open(caps=caps), families=fams, extended_next_hop=True).negotiated
        self.assertEqual((both.ext_nexthop, both.ext_nexthop_rx),
                         (frozenset({(1, 1, 2)}), frozenset({(1, 1, 2)})))
        self.assertTrue(both._v4_nh6)
        # Configured here, not advertised there: we accept, we do not send.
        ours = self.agree(peer_open(caps=caps[:2]), families=fams, extended_next_hop=True).negotiated
        self.assertEqual((ours.ext_nexthop, ours.ext_nexthop_rx), (frozenset(), frozenset({(1, 1, 2)})))
        self.assertTrue(ours._v4_nh6)
        # Not configured here: neither, whatever the peer advertised.
        off = self.agree(peer_open(caps=caps), families=fams).negotiated
        self.assertEqual((off.ext_nexthop, off.ext_nexthop_rx), (frozenset(), frozenset()))
        self.assertFalse(off._v4_nh6)
        # The peer advertised another triple only: we do not send.
        other = caps[:2] + (ExtendedNextHop(((1, 128, 2),)),)
        self.assertEqual(self.agree(peer_open(caps=other), families=fams,
                                    extended_next_hop=True).negotiated.ext_nexthop, frozenset())
        # IPv4 unicast not negotiated: not for it either way.
        v6 = self.agree(peer_open(caps=(Multiprotocol(2, 1), caps[2])), families=fams,
                        extended_next_hop=True).negotiated
        self.assertEqual((v6.ext_nexthop, v6.ext_nexthop_rx), (frozenset(), frozenset()))

    def test_extended_next_hop_in_open(self):
        """extended_next_hop = true puts the (1, 1, 2) triple in our OPEN; false leaves it out."""
        on = local_open(neighbor(extended_next_hop=True, families=("ipv4-unicast", "ipv6-unicast")),
                        LOCAL_ID, hostname="r1")
        self.assertEqual(on.find(ExtendedNextHop), [ExtendedNextHop(((1, 1, 2),))])
        self.assertEqual(local_open(neighbor(), LOCAL_ID, hostname="r1").find(ExtendedNextHop), [])

    def test_route_refresh(self):
        """Route refresh with either capability from the peer; enhanced needs both."""
        info = self.agree(peer_open(caps=(Multiprotocol(1, 1), EnhancedRouteRefresh())))
        self.assertTrue(info.route_refresh)
        self.assertTrue(info.enhanced_route_refresh)
        info = self.agree(peer_open(caps=(Multiprotocol(1, 1), RouteRefresh())))
        self.assertTrue(info.route_refresh)
        self.assertFalse(info.enhanced_route_refresh)
        self.assertFalse(self.agree(peer_open(), route_refresh=False).route_refresh)

    def test_graceful_restart_needs_ours(self):
        """The peer's GR capability counts only when we offer GR too."""
        gr = GracefulRestart(8, 90, ((1, 1, 0x80),))
        caps = (Multiprotocol(1, 1), gr)
        self.assertEqual(self.agree(peer_open(caps=caps)).graceful_restart, gr)
        self.assertIsNone(self.agree(peer_open(caps=caps), graceful_restart=False)
                          .graceful_restart)

    def test_ibgp_and_first_as(self):
        """iBGP is detected; first-AS enforcement is for eBGP and off for route servers."""
        info = self.agree(peer_open(asn=65001), remote_as=65001)
        self.assertTrue(info.negotiated.ibgp)
        self.assertFalse(info.negotiated.enforce_first_as)
        info = self.agree(peer_open())
        self.assertTrue(info.negotiated.enforce_first_as)
        cfg = neighbor()
        info = negotiate(cfg, local_open(cfg, LOCAL_ID, "r1"), peer_open(), LOCAL_ID, True)
        self.assertFalse(info.negotiated.enforce_first_as)

    def test_four_byte_peer(self):
        """A 4-byte AS peer sends AS_TRANS and its AS in the capability."""
        info = self.agree(peer_open(asn=4200000002), remote_as=4200000002)
        self.assertEqual(info.peer_asn, 4200000002)
        self.assertEqual(info.negotiated.peer_as, 4200000002)

    def test_role_pairs(self):
        """Each allowed role pair of RFC 9234 4.2 is accepted."""
        for local, remote in (("provider", Role.CUSTOMER), ("customer", Role.PROVIDER),
                              ("rs", Role.RS_CLIENT), ("rs-client", Role.RS),
                              ("peer", Role.PEER)):
            info = self.agree(peer_open(caps=(Multiprotocol(1, 1), BgpRole(remote))),
                              role=local)
            self.assertEqual(info.peer_role, remote)

    def test_role_absent_not_strict(self):
        """No role from the peer is fine unless strict."""
        self.assertIsNone(self.agree(peer_open(), role="peer").peer_role)

    def test_same_id_ebgp_allowed(self):
        """An eBGP peer may have our identifier (RFC 6286 2.2 is for iBGP)."""
        self.assertEqual(self.agree(peer_open(bgp_id=LOCAL_ID)).peer_router_id, LOCAL_ID)

    def test_hostname(self):
        """The peer's FQDN capability is reported."""
        caps = (Multiprotocol(1, 1), FQDN("rtr", "example.net"))
        self.assertEqual(self.agree(peer_open(caps=caps)).peer_hostname, "rtr")

    def test_error_values(self):
        """negotiate raises the exact (code, subcode, data) of each error."""
        cases = [
            (peer_open(asn=65003), {}, (2, 2, b"\xfd\xeb")),
            (Open(23456, 90, PEER_ID, (Multiprotocol(1, 1),)), {}, (2, 2, b"\x5b\xa0")),
            (peer_open(hold=1), {}, (2, 6, b"")),
            (peer_open(hold=2), {}, (2, 6, b"")),
            (peer_open(bgp_id="0.0.0.0"), {}, (2, 3, b"")),
            (peer_open(asn=65001, bgp_id=LOCAL_ID), {"remote_as": 65001}, (2, 3, b"")),
            (peer_open(caps=(Multiprotocol(2, 1),)), {}, (2, 7, bytes.fromhex("010400010001"))),
            (peer_open(caps=(Multiprotocol(1, 1), BgpRole(Role.CUSTOMER))), {"role": "customer"},
             (2, 11, b"")),
            (peer_open(), {"role": "customer", "strict_role": True}, (2, 11, b"")),
            (peer_open(caps=(Multiprotocol(1, 1), BgpRole(Role.PEER), BgpRole(Role.CUSTOMER))),
             {"role": "peer"}, (2, 11, b"")),
        ]
        for remote, config, expected in cases:
            with self.subTest(expected=expected, config=config):
                err = self.assertRaises(NotificationError, self.agree, remote, **config)
                self.assertEqual((err.code, err.subcode, err.data), expected)
                self.assertTrue(err.reason)


class OpenErrorTests(SynchronousTestCase):
    """Each OPEN error through a PeerFactory in OpenSent: exact NOTIFICATION, then Idle."""

    def rejected(self, data: bytes, expected: bytes, **config: object) -> Harness:
        h = Harness(neighbor(**config))
        proto, transport = h.open_sent()
        proto.dataReceived(data)
        self.assertEqual(transport.value(), expected)
        self.assertTrue(transport.disconnecting)
        self.assertEqual(h.state, State.IDLE)
        self.assertEqual(h.listener.of("established"), [])
        self.assertEqual(h.listener.of("down"), [])
        self.assertIsNone(h.peer.protocol_instance)
        return h

    def test_bad_peer_as(self):
        """The wrong peer AS: 2/2 with the 2-octet AS field as data."""
        h = self.rejected(wire(peer_open(asn=65003)), notification_bytes(2, 2, b"\xfd\xeb"))
        self.assertIn("OPEN rejected", h.peer._down_reason)
        self.assertEqual(h.peer.connect_retry_counter, 1)

    def test_as_trans_without_capability(self):
        """AS_TRANS in my_as without the 4-octet AS capability: 2/2."""
        self.rejected(wire(Open(23456, 90, PEER_ID, (Multiprotocol(1, 1),))),
                      notification_bytes(2, 2, b"\x5b\xa0"))

    def test_hold_time_one_and_two(self):
        """Hold time 1 or 2: Unacceptable Hold Time 2/6."""
        for hold in (1, 2):
            self.rejected(wire(peer_open(hold=hold)), notification_bytes(2, 6))

    def test_bgp_id_zero(self):
        """BGP identifier 0.0.0.0: 2/3."""
        self.rejected(wire(peer_open(bgp_id="0.0.0.0")), notification_bytes(2, 3))

    def test_bgp_id_ours_ibgp(self):
        """Our own identifier from an iBGP peer: 2/3."""
        self.rejected(wire(peer_open(asn=65001, bgp_id=LOCAL_ID)), notification_bytes(2, 3),
                      remote_as=65001)

    def test_unsupported_version(self):
        """Version 3: 2/1 with the version we support (0004) as data."""
        body = bytes.fromhex("03" "fdea" "005a" "c0000202" "00")
        self.rejected(raw_open(body), notification_bytes(2, 1, b"\x00\x04"))

    def test_unsupported_optional_parameter(self):
        """An optional parameter other than Capabilities: 2/4."""
        body = bytes.fromhex("04" "fdea" "005a" "c0000202" "04" "0102" "abcd")
        self.rejected(raw_open(body), notification_bytes(2, 4))

    def test_no_common_family(self):
        """No family in common: 2/7 with the families we offer."""
        self.rejected(wire(peer_open(caps=(Multiprotocol(2, 1),))),
                      notification_bytes(2, 7, bytes.fromhex("010400010001")))

    def test_role_mismatch(self):
        """Roles that do not pair: Role Mismatch 2/11."""
        self.rejected(wire(peer_open(caps=(Multiprotocol(1, 1), BgpRole(Role.PROVIDER)))),
                      notification_bytes(2, 11), role="provider")

    def test_strict_role(self):
        """Strict role and no role capability from the peer: 2/11."""
        self.rejected(wire(peer_open()), notification_bytes(2, 11), role="customer",
                      strict_role=True)

    def test_malformed_parameters_length(self):
        """Optional parameters length not matching: OPEN error 2/0."""
        body = bytes.fromhex("04" "fdea" "005a" "c0000202" "09" "0206010400010001")
        self.rejected(raw_open(body), notification_bytes(2, 0))

    def test_malformed_capability(self):
        """A capability with a bad length (MP of 3 octets): 2/0."""
        body = bytes.fromhex("04" "fdea" "005a" "c0000202" "07" "0205" "0103000101")
        self.rejected(raw_open(body), notification_bytes(2, 0))

    def test_open_too_short(self):
        """An OPEN shorter than 29 octets is a header error: 1/2 with the length."""
        self.rejected(raw_open(bytes.fromhex("04fdea005ac0000202")),
                      notification_bytes(1, 2, b"\x00\x1c"))

    def test_bad_open_with_delay_open(self):
        """A bad OPEN in Connect with DelayOpen closes without NOTIFICATION (8.2.2)."""
        h = Harness(neighbor(delay_open_time=5))
        h.peer.start()
        proto, transport = h.connect_out()
        proto.dataReceived(wire(peer_open(asn=65003)))
        self.assertEqual(transport.value(), b"")
        self.assertTrue(transport.disconnecting)
        self.assertEqual(h.state, State.IDLE)

    def test_good_open_accepted(self):
        """The same harness with a good OPEN answers KEEPALIVE: the checks are not vacuous."""
        h = Harness()
        proto, transport = h.open_sent()
        proto.dataReceived(wire(peer_open()))
        self.assertEqual(sent(transport), [KEEPALIVE])
        self.assertEqual(h.state, State.OPEN_CONFIRM)
