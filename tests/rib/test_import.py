"""Tests for the import side of bgpd.rib.rib: checks, policy, Adj-RIB-In, chunking, GR."""

from __future__ import annotations

from bgpd.rib import RibOptions
from bgpd.rib.route import PeerInfo
from bgpd.rib.testing import IPV4, IPV6, announce, make_peer, pfx, withdraw
from bgpd.wire.constants import Role
from bgpd.wire.negotiated import Negotiated
from bgpd.wire.update import Update
from tests.rib.support import E1, E2, I1, I2, RibTestCase, attrs

P1 = pfx("203.0.113.0/24")
P2 = pfx("198.18.0.0/15")


class ReceiveTests(RibTestCase):
    def test_announce_and_withdraw(self):
        """An announced prefix becomes best; its withdrawal removes it."""
        self.add(E1)
        self.rib.receive(E1, announce(attrs(), [P1, P2]))
        self.settle()
        self.assertEqual(self.rib.best(IPV4, P1).attrs, attrs())
        self.assertEqual(set(self.rib.adj_rib_in(E1, IPV4)), {P1, P2})
        self.rib.receive(E1, withdraw([P1]))
        self.settle()
        self.assertIsNone(self.rib.best(IPV4, P1))
        self.assertIsNotNone(self.rib.best(IPV4, P2))

    def test_paths_are_shared(self):
        """The prefixes of one UPDATE share one path object."""
        self.add(E1)
        self.rib.receive(E1, announce(attrs(), [P1, P2]))
        self.rib.receive(E1, announce(attrs(), [pfx("192.0.2.128/25")]))
        self.settle()
        paths = {id(p) for p in self.rib.adj_rib_in(E1, IPV4).values()}
        self.assertEqual(len(paths), 1)

    def test_ipv6_mp_reach(self):
        """MP_REACH / MP_UNREACH feed the IPv6 tables."""
        self.add(E1, families=(IPV4, IPV6))
        p6 = pfx("2001:db8:1::/48")
        self.rib.receive(E1, announce(attrs(nh="2001:db8::2"), [p6], IPV6))
        self.settle()
        self.assertIsNotNone(self.rib.best(IPV6, p6))
        self.rib.receive(E1, withdraw([p6], IPV6))
        self.settle()
        self.assertIsNone(self.rib.best(IPV6, p6))

    def test_unnegotiated_family_ignored(self):
        """Routes of a family the session did not negotiate are not taken."""
        self.add(E1)
        self.rib.receive(E1, announce(attrs(nh="2001:db8::2"), [pfx("2001:db8:1::/48")], IPV6))
        self.settle()
        self.assertEqual(self.rib.loc_rib_size(IPV6), 0)

    def test_treat_as_withdraw(self):
        """An UPDATE marked treat-as-withdraw (RFC 7606) withdraws what it lists."""
        self.add(E1)
        self.rib.receive(E1, announce(attrs(), [P1]))
        self.rib.receive(E1, Update(attributes=attrs(), nlri=[P1], treat_as_withdraw=True))
        self.settle()
        self.assertIsNone(self.rib.best(IPV4, P1))

    def test_as_loop(self):
        """A path that contains our AS is rejected and withdraws the earlier route."""
        self.add(E1)
        self.rib.receive(E1, announce(attrs(), [P1]))
        self.rib.receive(E1, announce(attrs(path=(65001, 65000, 7)), [P1]))
        self.settle()
        self.assertIsNone(self.rib.best(IPV4, P1))
        self.assertEqual(self.rib.stats.rejected, 1)

    def test_allowas_in(self):
        """allowas_in tolerates that many occurrences of our AS, no more."""
        peer = make_peer("192.0.2.2", 65001, allowas_in=1)
        self.add(peer)
        self.rib.receive(peer, announce(attrs(path=(65001, 65000)), [P1]))
        self.rib.receive(peer, announce(attrs(path=(65001, 65000, 65000)), [P2]))
        self.settle()
        self.assertIsNotNone(self.rib.best(IPV4, P1))
        self.assertIsNone(self.rib.best(IPV4, P2))

    def test_originator_id_loop(self):
        """RFC 4456: ORIGINATOR_ID equal to our router id is a loop."""
        self.add(I1)
        self.rib.receive(I1, announce(attrs(originator_id="192.0.2.1", local_pref=100), [P1]))
        self.settle()
        self.assertIsNone(self.rib.best(IPV4, P1))

    def test_cluster_list_loop(self):
        """RFC 4456: our CLUSTER_ID in CLUSTER_LIST is a loop."""
        self.rib = self.make_rib(self.options, cluster_id="10.255.0.1")
        self.add(I1)
        self.rib.receive(I1, announce(attrs(cluster_list=("10.1.1.1", "10.255.0.1")), [P1]))
        self.rib.receive(I1, announce(attrs(cluster_list=("10.1.1.1",)), [P2]))
        self.settle()
        self.assertIsNone(self.rib.best(IPV4, P1))
        self.assertIsNotNone(self.rib.best(IPV4, P2))


class OtcIngressTests(RibTestCase):
    """RFC 9234 section 5, ingress procedure."""

    def peer(self, role):
        return make_peer("192.0.2.2", 65001, role=role)

    def test_from_customer_with_otc(self):
        """OTC from a customer is a route leak."""
        peer = self.peer(Role.CUSTOMER)
        self.add(peer)
        self.rib.receive(peer, announce(attrs(otc=65001), [P1]))
        self.settle()
        self.assertIsNone(self.rib.best(IPV4, P1))

    def test_from_rs_client_with_otc(self):
        """OTC from an RS client is a route leak."""
        peer = self.peer(Role.RS_CLIENT)
        self.add(peer)
        self.rib.receive(peer, announce(attrs(otc=65001), [P1]))
        self.settle()
        self.assertIsNone(self.rib.best(IPV4, P1))

    def test_from_peer(self):
        """From a lateral peer OTC must equal the peer's AS."""
        peer = self.peer(Role.PEER)
        self.add(peer)
        self.rib.receive(peer, announce(attrs(otc=65001), [P1]))
        self.rib.receive(peer, announce(attrs(otc=64999), [P2]))
        self.settle()
        self.assertIsNotNone(self.rib.best(IPV4, P1))
        self.assertIsNone(self.rib.best(IPV4, P2))

    def test_added_from_provider(self):
        """From a provider, OTC is added with the provider's AS when absent."""
        peer = self.peer(Role.PROVIDER)
        self.add(peer)
        self.rib.receive(peer, announce(attrs(), [P1]))
        self.settle()
        self.assertEqual(self.rib.best(IPV4, P1).attrs.otc, 65001)

    def test_customer_without_otc_unchanged(self):
        """From a customer without OTC, the route is taken as is."""
        peer = self.peer(Role.CUSTOMER)
        self.add(peer)
        self.rib.receive(peer, announce(attrs(), [P1]))
        self.settle()
        self.assertIsNone(self.rib.best(IPV4, P1).attrs.otc)


def _lp(value):
    def policy(peer, family, prefix, a):
        if prefix == P2:
            return None
        return a.replace(local_pref=value)

    return policy


class PolicyTests(RibTestCase):
    def test_reject_all(self):
        """An import policy of reject-all (RFC 8212 default for eBGP) takes nothing."""
        self.add(E1, import_policy=["reject-all"])
        self.rib.receive(E1, announce(attrs(), [P1]))
        self.settle()
        self.assertIsNone(self.rib.best(IPV4, P1))

    def test_custom_policy_modifies_and_rejects(self):
        """A named policy can change attributes per prefix or reject."""
        self.rib = self.make_rib(self.options, policies={"lp": _lp(300), "accept-all": lambda *a: a[3]})
        self.add(E1, import_policy=["lp"])
        self.rib.receive(E1, announce(attrs(), [P1, P2, pfx("192.0.2.0/24")]))
        self.settle()
        self.assertEqual(self.rib.best(IPV4, P1).attrs.local_pref, 300)
        self.assertIsNone(self.rib.best(IPV4, P2))
        self.assertIs(self.rib.best(IPV4, P1), self.rib.best(IPV4, pfx("192.0.2.0/24")))

    def test_unknown_policy(self):
        """An unknown policy name is refused."""
        self.assertRaises(KeyError, self.add, E1, import_policy=["nope"])

    def test_soft_reconfiguration(self):
        """The pre-policy table keeps rejected routes, and reimport applies a new policy."""
        self.add(E1, import_policy=["reject-all"], soft_reconfiguration=True)
        self.rib.receive(E1, announce(attrs(), [P1]))
        self.settle()
        self.assertIsNone(self.rib.best(IPV4, P1))
        self.assertIn(P1, self.rib.adj_rib_in(E1, IPV4, pre_policy=True))
        self.rib.reimport(E1, ["accept-all"])
        self.settle()
        self.assertIsNotNone(self.rib.best(IPV4, P1))


class AddPathReceiveTests(RibTestCase):
    def test_two_paths_same_prefix(self):
        """With add-path receive, (path id, prefix) keys keep both paths as candidates."""
        neg = Negotiated(addpath_rx=frozenset({IPV4}))
        self.add(E1, neg=neg)
        self.rib.receive(E1, announce(attrs(med=10), [(1, P1)]))
        self.rib.receive(E1, announce(attrs(med=5), [(2, P1)]))
        self.settle()
        self.assertEqual(set(self.rib.adj_rib_in(E1, IPV4)), {(1, P1), (2, P1)})
        self.assertEqual(len(self.rib.candidates(IPV4, P1)), 2)
        self.assertEqual(self.rib.best(IPV4, P1).path_id, 2)
        self.rib.receive(E1, withdraw([(2, P1)]))
        self.settle()
        self.assertEqual(self.rib.best(IPV4, P1).path_id, 1)


class ChunkingTests(RibTestCase):
    options = RibOptions(mrai_ebgp=0.0, chunk_size=2000)

    def test_full_feed_is_chunked(self):
        """50,000 prefixes take many turns, none handling more than the chunk size."""
        turns = []
        self.rib.subscribe(lambda batch: turns.append(len(batch)))
        sink = self.add(E2)
        self.add(E1)
        keys = [bytes((24, 10, i // 256, i % 256)) for i in range(50_000)]
        for i in range(0, 50_000, 1000):
            self.rib.receive(E1, announce(attrs(med=i), keys[i:i + 1000]))
        self.assertEqual(self.rib.loc_rib_size(IPV4), 0)  # nothing done inside receive()
        self.settle()
        self.assertEqual(self.rib.loc_rib_size(IPV4), 50_000)
        self.assertEqual(sum(turns), 50_000)
        self.assertEqual(max(turns), 2000)
        self.assertGreaterEqual(len(turns), 25)
        self.assertEqual(self.rib.stats.largest_turn, 2000)
        # Output is chunked the same way: one send per member per turn.
        self.assertGreaterEqual(sink.sends, 25)

    def test_drain(self):
        """drain() does everything at once for tests and benchmarks."""
        self.add(E1)
        self.rib.receive(E1, announce(attrs(), [bytes((24, 10, 0, i)) for i in range(256)] * 20))
        self.rib.drain()
        self.assertEqual(self.rib.loc_rib_size(IPV4), 256)
        self.assertEqual(self.clock.getDelayedCalls(), [])


class SubscriberTests(RibTestCase):
    def test_best_changes_only(self):
        """Subscribers get best-path changes, not changes among the losers."""
        got = []
        self.rib.subscribe(got.extend)
        self.add(E1)
        self.add(E2)
        self.rib.receive(E1, announce(attrs(), [P1]))
        self.settle()
        self.assertEqual([(c.family, c.prefix, c.old, c.new.attrs) for c in got], [(IPV4, P1, None, attrs())])
        del got[:]
        self.rib.receive(E2, announce(attrs(path=(65002, 1, 2)), [P1]))
        self.settle()
        self.assertEqual(got, [])
        self.rib.receive(E1, withdraw([P1]))
        self.settle()
        self.assertEqual(got[0].new.peer, E2)
        self.assertEqual(got[0].old.peer, E1)
        self.assertEqual(got[0].multipath, (got[0].new,))

    def test_unsubscribe(self):
        """After unsubscribing nothing more arrives."""
        got = []
        stop = self.rib.subscribe(got.extend)
        stop()
        self.add(E1)
        self.rib.receive(E1, announce(attrs(), [P1]))
        self.settle()
        self.assertEqual(got, [])


class PeerDownTests(RibTestCase):
    def test_down_withdraws_everywhere(self):
        """A peer going down withdraws its routes from the Loc-RIB and from other peers."""
        self.add(E1)
        sink = self.add(E2)
        self.rib.receive(E1, announce(attrs(), [P1, P2]))
        self.settle()
        self.assertEqual(set(sink.routes()), {P1, P2})
        self.rib.remove_peer(E1)
        self.settle()
        self.assertEqual(self.rib.loc_rib_size(IPV4), 0)
        self.assertEqual(sink.routes(), {})

    def test_down_falls_back(self):
        """When the best path's peer goes down the next best takes over."""
        self.add(E1)
        self.add(E2)
        self.rib.receive(E1, announce(attrs(), [P1]))
        self.rib.receive(E2, announce(attrs(path=(65002, 1)), [P1]))
        self.settle()
        self.rib.remove_peer(E1)
        self.settle()
        self.assertEqual(self.rib.best(IPV4, P1).peer, E2)

    def test_queued_work_of_dead_session_dropped(self):
        """UPDATEs still queued when the session drops are not applied."""
        self.add(E1)
        self.rib.receive(E1, announce(attrs(), [P1]))
        self.rib.remove_peer(E1)
        self.settle()
        self.assertIsNone(self.rib.best(IPV4, P1))


class GracefulRestartTests(RibTestCase):
    def restart(self):
        self.add(E1)
        sink = self.add(E2)
        self.rib.receive(E1, announce(attrs(), [P1, P2]))
        self.settle()
        self.rib.remove_peer(E1, graceful=True, stale_time=120)
        self.settle()
        return sink

    def test_routes_kept_stale(self):
        """During a graceful restart the routes stay, marked stale, and nothing is withdrawn."""
        sink = self.restart()
        self.assertTrue(self.rib.best(IPV4, P1).stale)
        self.assertEqual(set(sink.routes()), {P1, P2})

    def test_end_of_rib_sweeps_stale(self):
        """End-of-RIB from the restarted peer withdraws what it did not send again."""
        sink = self.restart()
        self.add(E1, restarting=frozenset({IPV4}))
        self.rib.receive(E1, announce(attrs(), [P1]))
        self.rib.receive(E1, Update())  # End-of-RIB for IPv4 unicast
        self.settle()
        self.assertFalse(self.rib.best(IPV4, P1).stale)
        self.assertIsNone(self.rib.best(IPV4, P2))
        self.assertEqual(set(sink.routes()), {P1})

    def test_timer_sweeps_stale(self):
        """Without End-of-RIB, the restart timer drops the stale routes."""
        sink = self.restart()
        self.clock.advance(119)
        self.assertIsNotNone(self.rib.best(IPV4, P1))
        self.clock.advance(1)
        self.settle()
        self.assertIsNone(self.rib.best(IPV4, P1))
        self.assertEqual(sink.routes(), {})


class OriginateTests(RibTestCase):
    def test_originate(self):
        """Originated routes enter the Loc-RIB and win over learned ones."""
        self.add(E1)
        self.rib.receive(E1, announce(attrs(), [P1]))
        self.rib.originate(IPV4, P1, attrs(path=(), nh="192.0.2.1"))
        self.settle()
        self.assertIsInstance(self.rib.best(IPV4, P1).peer, PeerInfo)
        self.assertEqual(self.rib.best(IPV4, P1).peer.address, "local")
        self.rib.withdraw_originated(IPV4, P1)
        self.settle()
        self.assertEqual(self.rib.best(IPV4, P1).peer, E1)

    def test_ibgp_peers_distinct(self):
        """Two iBGP peers' routes are both candidates (keyed by peer)."""
        self.add(I1)
        self.add(I2)
        self.rib.receive(I1, announce(attrs(path=(65001,), local_pref=100), [P1]))
        self.rib.receive(I2, announce(attrs(path=(65001,), local_pref=200), [P1]))
        self.settle()
        self.assertEqual(self.rib.best(IPV4, P1).peer, I2)
        self.assertEqual(self.rib.explain(IPV4, P1)[0][0], "local-pref")


class GracefulRestartReconnectTests(RibTestCase):
    """RFC 4724 4.2, receiving speaker: what the new OPEN says decides what stays stale."""

    def setUp(self):
        super().setUp()
        self.sink = self.add(E2)
        self.add(E1, families=(IPV4, IPV6))
        self.p6 = pfx("2001:db8::/32")
        self.rib.receive(E1, announce(attrs(), [P1, P2]))
        self.rib.receive(E1, announce(attrs(nh="2001:db8::2"), [self.p6], IPV6))
        self.settle()
        self.rib.remove_peer(E1, graceful=True, stale_time=120)
        self.settle()

    def reconnect(self, restarting):
        self.add(E1, families=(IPV4, IPV6), restarting=restarting)
        self.settle()

    def test_forwarding_state_kept(self):
        """Families whose F bit is set keep their stale routes until End-of-RIB."""
        self.reconnect(frozenset({IPV4, IPV6}))
        self.assertTrue(self.rib.best(IPV4, P1).stale)
        self.assertTrue(self.rib.best(IPV6, self.p6).stale)

    def test_forwarding_bit_clear_flushes(self):
        """F bit clear: the family's stale routes are withdrawn at once."""
        self.reconnect(frozenset({IPV6}))
        self.assertIsNone(self.rib.best(IPV4, P1))
        self.assertEqual(self.sink.routes(), {})
        self.assertTrue(self.rib.best(IPV6, self.p6).stale)

    def test_no_graceful_restart_any_more_flushes_all(self):
        """Without a graceful restart capability in the new OPEN every stale route goes."""
        self.reconnect(None)
        self.assertIsNone(self.rib.best(IPV4, P1))
        self.assertIsNone(self.rib.best(IPV6, self.p6))

    def test_family_not_listed_flushes(self):
        """A family the new OPEN does not negotiate loses its stale routes."""
        self.add(E1, families=(IPV4,), restarting=frozenset({IPV4, IPV6}))
        self.settle()
        self.assertIsNone(self.rib.best(IPV6, self.p6))
        self.assertTrue(self.rib.best(IPV4, P1).stale)

    def test_fresh_route_comes_back(self):
        """A route sent again after the restart is fresh; the rest go at End-of-RIB."""
        self.reconnect(frozenset({IPV4}))
        self.rib.receive(E1, announce(attrs(), [P1]))
        self.rib.end_of_rib(E1, IPV4)
        self.settle()
        self.assertFalse(self.rib.best(IPV4, P1).stale)
        self.assertIsNone(self.rib.best(IPV4, P2))


class StalePathTests(RibTestCase):
    def test_stale_loses_to_fresh(self):
        """A stale path (peer restarting) loses to a fresh one, even a longer one."""
        sink = self.add(I1)
        self.add(E1)
        self.add(E2)
        self.rib.receive(E1, announce(attrs((65001,)), [P1]))
        self.rib.receive(E2, announce(attrs((65002, 1, 2), nh="198.51.100.2"), [P1]))
        self.settle()
        self.assertEqual(self.rib.best(IPV4, P1).peer, E1)
        self.rib.remove_peer(E1, graceful=True, stale_time=120)
        self.settle()
        self.assertEqual(self.rib.best(IPV4, P1).peer, E2)
        self.assertEqual(sink.routes()[P1].as_path, ((2, (65002, 1, 2)),))
        self.assertEqual(self.rib.explain(IPV4, P1)[0][0], "stale")
