"""Tests for bgpd.rib.adjout: propagation rules, update groups, packing, pacing."""

from __future__ import annotations

from bgpd.rib import RibOptions
from bgpd.rib.testing import IPV4, IPV6, FakeSink, announce, make_peer, pfx, withdraw
from bgpd.wire.constants import Community, Role
from bgpd.wire.negotiated import Negotiated
from tests.rib.support import E1, E2, I1, I2, RibTestCase, attrs

P1 = pfx("203.0.113.0/24")
P2 = pfx("198.18.0.0/15")
SEQ = 2


class EbgpTests(RibTestCase):
    def test_ebgp_rewriting(self):
        """To eBGP: our AS prepended, NEXT_HOP ours, LOCAL_PREF and a foreign MED stripped."""
        self.add(I1)
        sink = self.add(E2)
        self.rib.receive(I1, announce(attrs(path=(65001,), local_pref=300, med=7), [P1]))
        self.settle()
        got = sink.routes()[P1]
        self.assertEqual(got.as_path, ((SEQ, (65000, 65001)),))
        self.assertEqual(got.next_hop, "198.51.100.1")
        self.assertIsNone(got.local_pref)
        self.assertIsNone(got.med)

    def test_ebgp_to_ebgp_med_stripped(self):
        """A MED learned from one AS is not passed to another (RFC 4271 5.1.4)."""
        self.add(E1)
        sink = self.add(E2)
        self.rib.receive(E1, announce(attrs(med=50), [P1]))
        self.settle()
        self.assertIsNone(sink.routes()[P1].med)

    def test_originated_med_kept(self):
        """A MED on a route we originate is sent."""
        sink = self.add(E2)
        self.rib.originate(IPV4, P1, attrs(path=(), nh="192.0.2.1", med=20))
        self.settle()
        got = sink.routes()[P1]
        self.assertEqual(got.med, 20)
        self.assertEqual(got.as_path, ((SEQ, (65000,)),))

    def test_ipv6_next_hop(self):
        """IPv6 routes to an eBGP peer on an IPv6 session carry our IPv6 address."""
        peer = make_peer("2001:db8::2", 65002, local_address="2001:db8::1")
        self.add(E1, families=(IPV4, IPV6))
        sink = self.add(peer, families=(IPV6,))
        self.rib.receive(E1, announce(attrs(nh="2001:db8:ff::2"), [pfx("2001:db8:1::/48")], IPV6))
        self.settle()
        self.assertEqual(sink.routes(IPV6)[pfx("2001:db8:1::/48")].next_hop, "2001:db8::1")


class IbgpTests(RibTestCase):
    def test_ebgp_learned_to_ibgp(self):
        """To iBGP: LOCAL_PREF set (default 100), AS_PATH, NEXT_HOP and MED unchanged."""
        self.add(E1)
        sink = self.add(I1)
        self.rib.receive(E1, announce(attrs(med=9), [P1]))
        self.settle()
        got = sink.routes()[P1]
        self.assertEqual(got.local_pref, 100)
        self.assertEqual(got.as_path, ((SEQ, (65001,)),))
        self.assertEqual(got.next_hop, "192.0.2.2")
        self.assertEqual(got.med, 9)

    def test_next_hop_self(self):
        """next_hop_self puts our address in NEXT_HOP towards iBGP."""
        peer = make_peer("192.0.2.12", 65000, local_address="192.0.2.1", next_hop_self=True)
        self.add(E1)
        sink = self.add(peer)
        self.rib.receive(E1, announce(attrs(), [P1]))
        self.settle()
        self.assertEqual(sink.routes()[P1].next_hop, "192.0.2.1")

    def test_no_ibgp_to_ibgp(self):
        """Without route reflection, nothing learned by iBGP goes to iBGP."""
        self.add(I1)
        sink = self.add(I2)
        self.rib.receive(I1, announce(attrs(local_pref=100), [P1]))
        self.settle()
        self.assertEqual(sink.routes(), {})


class ReflectionTests(RibTestCase):
    def setUp(self):
        super().setUp()
        self.rib = self.make_rib(self.options, cluster_id="10.255.0.1")
        self.client = make_peer("192.0.2.20", 65000, local_address="192.0.2.1",
                                route_reflector_client=True)
        self.client2 = make_peer("192.0.2.21", 65000, local_address="192.0.2.1",
                                 route_reflector_client=True)

    def test_client_to_non_client(self):
        """A client's route is reflected to non-clients with ORIGINATOR_ID and CLUSTER_LIST."""
        self.add(self.client)
        sink = self.add(I1)
        self.rib.receive(self.client, announce(attrs(local_pref=100), [P1]))
        self.settle()
        got = sink.routes()[P1]
        self.assertEqual(got.originator_id, "192.0.2.20")
        self.assertEqual(got.cluster_list, ("10.255.0.1",))

    def test_non_client_to_clients_only(self):
        """A non-client's route goes to clients, not to other non-clients."""
        sink_c = self.add(self.client)
        self.add(I1)
        sink_n = self.add(I2)
        self.rib.receive(I1, announce(attrs(local_pref=100, originator_id="10.0.0.9"), [P1]))
        self.settle()
        self.assertEqual(sink_c.routes()[P1].originator_id, "10.0.0.9")
        self.assertEqual(sink_n.routes(), {})

    def test_client_to_client_not_back(self):
        """Clients share a group; the originating client does not get its route back."""
        sink1 = self.add(self.client)
        sink2 = self.add(self.client2)
        self.rib.receive(self.client, announce(attrs(local_pref=100), [P1]))
        self.settle()
        self.assertIn(P1, sink2.routes())
        self.assertEqual(sink1.routes(), {})
        self.assertIs(self.rib.update_group(self.client, IPV4), self.rib.update_group(self.client2, IPV4))


class RouteServerTests(RibTestCase):
    def test_route_server_client(self):
        """To a route-server client AS_PATH, NEXT_HOP and MED pass untouched (RFC 7947)."""
        rs = make_peer("192.0.2.30", 65030, local_address="192.0.2.1", route_server_client=True)
        self.add(E1)
        sink = self.add(rs)
        self.rib.receive(E1, announce(attrs(med=4), [P1]))
        self.settle()
        got = sink.routes()[P1]
        self.assertEqual(got.as_path, ((SEQ, (65001,)),))
        self.assertEqual(got.next_hop, "192.0.2.2")
        self.assertEqual(got.med, 4)


class CommunityTests(RibTestCase):
    def send(self, community, *targets):
        self.add(E1)
        sinks = [self.add(t) for t in targets]
        self.rib.receive(E1, announce(attrs(communities=(community,)), [P1]))
        self.settle()
        return [P1 in s.routes() for s in sinks]

    def test_no_advertise(self):
        """NO_ADVERTISE goes to nobody."""
        self.assertEqual(self.send(Community.NO_ADVERTISE, I1, E2), [False, False])

    def test_no_export(self):
        """NO_EXPORT goes to iBGP, not to eBGP."""
        self.assertEqual(self.send(Community.NO_EXPORT, I1, E2), [True, False])

    def test_no_export_subconfed(self):
        """NO_EXPORT_SUBCONFED goes to iBGP, not to eBGP."""
        self.assertEqual(self.send(Community.NO_EXPORT_SUBCONFED, I1, E2), [True, False])

    def test_no_peer(self):
        """NO_PEER (RFC 3765) does not go to a lateral peer, but does to a customer."""
        lateral = make_peer("198.51.100.3", 65003, local_address="198.51.100.1", role=Role.PEER)
        customer = make_peer("198.51.100.4", 65004, local_address="198.51.100.1", role=Role.CUSTOMER)
        self.assertEqual(self.send(Community.NO_PEER, lateral, customer), [False, True])


class OtcEgressTests(RibTestCase):
    """RFC 9234 section 5, egress procedure."""

    def targets(self):
        def peer(n, role):
            return make_peer(f"198.51.100.{n}", 65100 + n, local_address="198.51.100.1", role=role)

        return {
            "provider": peer(3, Role.PROVIDER), "peer": peer(4, Role.PEER), "rs": peer(5, Role.RS),
            "customer": peer(6, Role.CUSTOMER),
        }

    def test_otc_present_not_up_or_sideways(self):
        """A route with OTC goes to customers only, not to providers, peers or route servers."""
        self.add(E1)
        sinks = {k: self.add(p) for k, p in self.targets().items()}
        self.rib.receive(E1, announce(attrs(otc=65001), [P1]))
        self.settle()
        self.assertEqual({k for k, s in sinks.items() if P1 in s.routes()}, {"customer"})
        self.assertEqual(sinks["customer"].routes()[P1].otc, 65001)

    def test_otc_added(self):
        """To customers and peers OTC is added with our AS; to providers it is not."""
        self.add(E1)
        sinks = {k: self.add(p) for k, p in self.targets().items()}
        self.rib.receive(E1, announce(attrs(), [P1]))
        self.settle()
        self.assertEqual(sinks["customer"].routes()[P1].otc, 65000)
        self.assertEqual(sinks["peer"].routes()[P1].otc, 65000)
        self.assertIsNone(sinks["provider"].routes()[P1].otc)


class SplitHorizonTests(RibTestCase):
    def test_not_back_to_source(self):
        """Two eBGP peers in one group: each gets the other's route, never its own."""
        a = make_peer("192.0.2.2", 65001, local_address="192.0.2.1")
        b = make_peer("192.0.2.3", 65002, local_address="192.0.2.1")
        sa, sb = self.add(a), self.add(b)
        self.assertIs(self.rib.update_group(a, IPV4), self.rib.update_group(b, IPV4))
        self.rib.receive(a, announce(attrs(), [P1]))
        self.settle()
        self.assertEqual(set(sb.routes()), {P1})
        self.assertEqual(sa.routes(), {})
        # b's shorter path wins: a gets it, b gets a withdrawal of a's.
        self.rib.receive(b, announce(attrs(path=(), nh="192.0.2.3"), [P1]))
        self.settle()
        self.assertEqual(sa.routes()[P1].as_path, ((SEQ, (65000,)),))
        self.assertEqual(sb.routes(), {})

    def test_single_member_own_routes(self):
        """A peer alone in its group is not sent its own routes; a later joiner gets them."""
        sa = self.add(E1)
        self.rib.receive(E1, announce(attrs(), [P1]))
        self.settle()
        self.assertEqual(sa.routes(), {})
        b = make_peer("192.0.2.3", 65002, local_address="192.0.2.1")
        sb = self.add(b)
        self.settle()
        self.assertEqual(set(sb.routes()), {P1})
        self.assertEqual(sa.routes(), {})


class GroupTests(RibTestCase):
    def test_shared_encoding(self):
        """Peers with the same outbound view share one group and the same UPDATE bytes."""
        x = make_peer("198.51.100.2", 65002, local_address="198.51.100.1")
        y = make_peer("198.51.100.3", 65003, local_address="198.51.100.1")
        self.add(E1)
        sx, sy = self.add(x), self.add(y)
        self.rib.receive(E1, announce(attrs(), [P1, P2]))
        self.settle()
        g = self.rib.update_group(x, IPV4)
        self.assertIs(g, self.rib.update_group(y, IPV4))
        self.assertEqual(len(sx.messages), 2)  # End-of-RIB, then one UPDATE
        self.assertEqual(sx.messages, sy.messages)
        # One encoding: the very same bytes object went to both peers.
        self.assertIs(sx.messages[1], sy.messages[1])

    def test_different_local_address_different_group(self):
        """eBGP peers on different links are in different groups (next hop differs)."""
        self.add(E1)
        self.add(E2)
        self.assertIsNot(self.rib.update_group(E1, IPV4), self.rib.update_group(E2, IPV4))

    def test_packing(self):
        """Many prefixes with the same attributes go in few UPDATEs."""
        self.add(E1)
        sink = self.add(E2)
        keys = [bytes((24, 10, i // 256, i % 256)) for i in range(1500)]
        self.rib.receive(E1, announce(attrs(), keys))
        self.settle()
        ups = [u for u in sink.updates() if u.nlri]
        self.assertLessEqual(len(ups), 2)
        self.assertEqual(set(sink.routes()), set(keys))

    def test_withdrawals_batched(self):
        """Withdrawals are packed together too."""
        self.add(E1)
        sink = self.add(E2)
        keys = [bytes((24, 10, 0, i)) for i in range(200)]
        self.rib.receive(E1, announce(attrs(), keys))
        self.settle()
        sink.clear()
        self.rib.receive(E1, withdraw(keys))
        self.settle()
        self.assertEqual(len(sink.messages), 1)
        self.assertEqual(sorted(sink.withdrawn()), sorted(keys))

    def test_end_of_rib_after_dump(self):
        """A peer that comes up gets the table, then End-of-RIB, last."""
        self.add(E1)
        self.rib.receive(E1, announce(attrs(), [P1, P2]))
        self.settle()
        sink = self.add(E2)
        self.settle()
        ups = sink.updates()
        self.assertEqual(ups[-1].end_of_rib, IPV4)
        self.assertEqual(set(sink.routes()), {P1, P2})

    def test_late_joiner_gets_dump(self):
        """Joining a group that already has a table: the newcomer gets it, the others nothing."""
        x = make_peer("198.51.100.2", 65002, local_address="198.51.100.1")
        y = make_peer("198.51.100.3", 65003, local_address="198.51.100.1")
        self.add(E1)
        sx = self.add(x)
        self.rib.receive(E1, announce(attrs(), [P1]))
        self.settle()
        sx.clear()
        sy = self.add(y)
        self.settle()
        self.assertEqual(set(sy.routes()), {P1})
        self.assertEqual(sy.end_of_ribs(), [IPV4])
        self.assertEqual(sx.messages, [])

    def test_route_refresh_resends(self):
        """refresh_out sends the Adj-RIB-Out again (ROUTE-REFRESH)."""
        self.add(E1)
        sink = self.add(E2)
        self.rib.receive(E1, announce(attrs(), [P1]))
        self.settle()
        sink.clear()
        self.rib.refresh_out(E2, IPV4)
        self.settle()
        self.assertEqual(set(sink.routes()), {P1})

    def test_adj_rib_out(self):
        """adj_rib_out shows the attributes as sent."""
        self.add(E1)
        self.add(E2)
        self.rib.receive(E1, announce(attrs(), [P1]))
        self.settle()
        out = self.rib.adj_rib_out(E2, IPV4)
        self.assertEqual(out[P1].as_path, ((SEQ, (65000, 65001)),))
        self.assertEqual(self.rib.adj_rib_out(E1, IPV4), {})


class PacingTests(RibTestCase):
    options = RibOptions(mrai_ebgp=5.0, mrai_ibgp=0.0)

    def test_mrai(self):
        """eBGP updates wait for the group's MRAI."""
        self.add(E1)
        sink = self.add(E2)
        self.clock.advance(0)
        sink.clear()
        self.rib.receive(E1, announce(attrs(), [P1]))
        self.clock.advance(0)
        self.assertEqual(sink.messages, [])
        self.clock.advance(5)
        self.assertEqual(set(sink.routes()), {P1})

    def test_change_and_back_sends_nothing(self):
        """A route that changes and changes back within one batch sends nothing."""
        self.add(E1)
        sink = self.add(E2)
        self.rib.receive(E1, announce(attrs(), [P1]))
        self.clock.advance(0)
        self.clock.advance(5)
        sink.clear()
        self.rib.receive(E1, announce(attrs(path=(65001, 9)), [P1]))
        self.rib.receive(E1, announce(attrs(), [P1]))
        self.rib.receive(E1, withdraw([P2]))
        self.clock.advance(0)
        self.clock.advance(5)
        self.assertEqual(sink.messages, [])

    def test_backpressure(self):
        """A sink that is not writable holds output until resume()."""
        self.add(I1)
        sink = FakeSink(writable=False)
        self.rib.add_peer(I2, [IPV4], Negotiated(ibgp=True), sink)
        self.rib.originate(IPV4, P1, attrs(path=()))
        self.clock.advance(0)
        self.clock.advance(1)
        self.assertEqual(sink.messages, [])
        sink.is_writable = True
        self.rib.resume(I2)
        self.clock.advance(0)
        self.assertEqual(set(sink.routes()), {P1})


class AddPathSendTests(RibTestCase):
    def test_all_paths_sent(self):
        """With add-path send every candidate goes out with its own stable path id."""
        neg = Negotiated(ibgp=True, addpath_tx=frozenset({IPV4}))
        self.add(E1)
        self.add(E2)
        sink = self.add(I1, neg=neg)
        self.rib.receive(E1, announce(attrs(), [P1]))
        self.rib.receive(E2, announce(attrs(path=(65002, 5), nh="198.51.100.2"), [P1]))
        self.settle()
        rx = Negotiated(ibgp=True, addpath_rx=frozenset({IPV4}))
        sent = sink.announced(rx)
        self.assertEqual(len(sent), 2)
        self.assertEqual({k for _, k in sent}, {P1})
        ids = {pid for pid, _ in sent}
        self.assertEqual(len(ids), 2)
        self.rib.receive(E2, withdraw([P1]))
        self.settle()
        gone = sink.withdrawn(rx)
        self.assertEqual(len(gone), 1)
        self.assertIn(gone[0][0], ids)
        self.assertEqual(len(self.rib.adj_rib_out(I1, IPV4)), 1)


class InterleavedFeedTests(RibTestCase):
    """Several peers of one update group sending the same table at once."""

    options = RibOptions(mrai_ebgp=0.0, mrai_ibgp=0.0, chunk_size=50)

    def test_end_of_rib_mid_batch_keeps_pending_changes(self):
        """A member's End-of-RIB sent while changes are still queued must not drop them."""
        link = "198.51.100.1"
        receiver = make_peer("198.51.100.9", 65009, local_address=link)
        feeders = [make_peer(f"198.51.100.{i}", 65000 + i, local_address=link) for i in (2, 3)]
        keys = [pfx(f"10.{i // 256}.{i % 256}.0/24") for i in range(1000)]
        # The second feeder's path wins (shorter AS_PATH), and it has more prefixes.
        more = keys + [pfx(f"10.100.{i}.0/24") for i in range(200)]
        sink = self.add(receiver)
        self.add(feeders[0])
        self.rib.receive(feeders[0], announce(attrs((65002, 65010), nh="198.51.100.2"), keys))
        # The second feeder comes up while the first one's table is being sent.
        for _ in range(8):
            self.clock.advance(0)
        self.add(feeders[1])
        self.rib.receive(feeders[1], announce(attrs((65003,), nh="198.51.100.3"), more))
        self.settle()
        routes = sink.routes()
        self.assertEqual(set(routes), set(more))
        self.assertEqual({a.as_path for a in routes.values()}, {((SEQ, (65000, 65003)),)})
        self.assertEqual(len(self.rib.adj_rib_out(receiver, IPV4)), len(more))


class SlowMemberTests(RibTestCase):
    """A member that stops reading must not hold back the rest of its update group."""

    options = RibOptions(mrai_ebgp=0.5, mrai_ibgp=0.0, chunk_size=40)

    def setUp(self):
        super().setUp()
        link = "198.51.100.1"
        self.slow_peer = make_peer("198.51.100.8", 65008, local_address=link)
        self.fast_peer = make_peer("198.51.100.9", 65009, local_address=link)
        self.feeder = make_peer("198.51.100.2", 65002, local_address=link)
        self.fast = self.add(self.fast_peer)
        self.slow = self.add(self.slow_peer)
        self.add(self.feeder)
        self.keys = [pfx(f"10.{i // 256}.{i % 256}.0/24") for i in range(500)]
        self.rib.receive(self.feeder, announce(attrs((65002,), nh="198.51.100.2"), self.keys[:300]))
        self.settle()
        group = self.rib.update_group(self.slow_peer, IPV4)
        self.assertIs(group, self.rib.update_group(self.fast_peer, IPV4))

    def settle(self):
        """Let MRAI run out too, until nothing is scheduled (bounded)."""
        for _ in range(1000):
            if not self.clock.getDelayedCalls():
                return
            self.clock.advance(0.5)
        self.fail("the update group never settled")

    def pause_and_change(self):
        self.slow.is_writable = False
        sent = len(self.slow.messages)
        # Changes of every kind while it is paused: new, changed, withdrawn.
        self.rib.receive(self.feeder, announce(attrs((65002,), nh="198.51.100.2"), self.keys[300:]))
        self.rib.receive(self.feeder, announce(attrs((65002, 7), nh="198.51.100.2"), self.keys[:50]))
        self.rib.receive(self.feeder, withdraw(self.keys[50:120]))
        self.settle()
        self.assertEqual(len(self.slow.messages), sent)
        return set(self.keys) - set(self.keys[50:120])

    def test_others_converge_while_one_is_paused(self):
        """The writable member gets every change while another member's sink is not writable."""
        want = self.pause_and_change()
        routes = self.fast.routes()
        self.assertEqual(set(routes), want)
        self.assertEqual(routes[self.keys[0]].as_path, ((SEQ, (65000, 65002, 7)),))

    def test_paused_member_catches_up_exactly(self):
        """When it resumes, the paused member ends with exactly the group's table."""
        want = self.pause_and_change()
        self.slow.is_writable = True
        self.rib.resume(self.slow_peer)
        self.settle()
        self.assertEqual(self.slow.routes(), self.fast.routes())
        self.assertEqual(set(self.slow.routes()), want)
        self.assertEqual(self.slow.routes(), self.rib.adj_rib_out(self.slow_peer, IPV4))

    def test_route_refresh_while_paused(self):
        """A ROUTE-REFRESH from a paused member still withdraws, on resume, what went while it was paused."""
        want = self.pause_and_change()
        self.rib.refresh_out(self.slow_peer, IPV4)
        self.slow.is_writable = True
        self.rib.resume(self.slow_peer)
        self.settle()
        self.assertEqual(set(self.slow.routes()), want)
        self.assertEqual(self.slow.routes(), self.fast.routes())

    def test_route_refresh_while_catching_up(self):
        """A ROUTE-REFRESH in the middle of a catch-up keeps the withdrawals still owed."""
        want = self.pause_and_change()
        self.slow.is_writable = True
        self.rib.resume(self.slow_peer)
        # One chunk of the catch-up (Clock.advance(0) would run every turn).
        self.rib.update_group(self.slow_peer, IPV4).flush(40)
        self.rib.refresh_out(self.slow_peer, IPV4)
        self.settle()
        self.assertEqual(set(self.slow.routes()), want)
        self.assertEqual(self.slow.routes(), self.fast.routes())
