"""Policy in the RIB (issue 8): chains replaced at runtime, per-peer export, next hops.

RFC 4271 9.1.1 (import) and 9.1.3 (export): the Adj-RIB-Out after a policy
change is what the new chain gives, and a peer hears only the difference.
"""

from __future__ import annotations

from bgpd.config import parse_config
from bgpd.policy import chain, registry
from bgpd.rib import RibOptions
from bgpd.rib.testing import IPV4, IPV6, announce, make_peer, pfx
from bgpd.wire.negotiated import Negotiated
from bgpd.wire.update import Update
from tests.rib.support import E1, E2, RibTestCase, attrs

#: On E2's link, so in one update group with E2 while their export chains agree.
E3 = make_peer("198.51.100.3", 65003, local_address="198.51.100.1")

PREFIXES = [pfx(f"10.{i}.0.0/16") for i in range(10)]

POLICIES = """
[bgp]
local_as = 65000
router_id = "192.0.2.1"
listen_addresses = []

[sets.prefix.ten-zero]
prefixes = ["10.0.0.0/16"]
[sets.prefix.ten-one]
prefixes = ["10.1.0.0/16"]
[sets.neighbor.e3]
addresses = ["198.51.100.3"]

[policies.drop-ten-zero]
default = "accept"
[[policies.drop-ten-zero.terms]]
name = "drop"
match = { prefix_set = "ten-zero" }
action = "reject"

[policies.med-ten-one]
default = "accept"
[[policies.med-ten-one.terms]]
name = "med"
match = { prefix_set = "ten-one" }
action = { accept = true, med = 7 }

[policies.only-e3]
default = "reject"
[[policies.only-e3.terms]]
name = "e3"
match = { neighbor_set = "e3" }
action = "accept"

[policies.nh]
default = "accept"
[[policies.nh.terms]]
name = "nh"
action = { accept = true, next_hop = "192.0.2.99" }

[policies.nh6-on-v4]
default = "accept"
[[policies.nh6-on-v4.terms]]
name = "nh"
action = { accept = true, next_hop = "2001:db8::99" }

[policies.tag]
default = "accept"
[[policies.tag.terms]]
name = "tag"
action = { accept = true, add_communities = ["65000:1"] }
"""


def compiled() -> dict:
    config = parse_config(POLICIES)
    return registry(config.sets, config.policies)


class PolicyRibCase(RibTestCase):
    def setUp(self) -> None:
        super().setUp()
        self.rib = self.make_rib(self.options, policies=compiled())

    def feed(self, peer=E1, prefixes=PREFIXES, **kw) -> None:
        self.rib.receive(peer, announce(attrs(**kw), prefixes))
        self.settle()


class ExportChangeTests(PolicyRibCase):
    def test_change_sends_only_the_difference(self):
        """A new export chain withdraws the prefix it rejects, re-sends the one it changes, nothing else."""
        self.add(E1)
        sink = self.add(E2)
        self.feed()
        self.assertEqual(len(sink.routes()), 10)
        sink.clear()
        self.rib.set_export_policies({E2.address: ["drop-ten-zero", "med-ten-one"]})
        self.settle()
        self.assertEqual(sink.withdrawn(), [PREFIXES[0]])
        self.assertEqual(sink.announced(), [PREFIXES[1]])
        self.assertEqual(sink.updates()[-1].attributes.med, 7)
        self.assertEqual(set(self.rib.adj_rib_out(E2, IPV4)), set(PREFIXES[1:]))
        # And back: the two prefixes return to what accept-all sends.
        sink.clear()
        self.rib.set_export_policies({E2.address: ["accept-all"]})
        self.settle()
        self.assertEqual(sorted(sink.announced()), sorted(PREFIXES[:2]))
        self.assertEqual(sink.withdrawn(), [])

    def test_unchanged_result_sends_nothing(self):
        """A chain that exports the same attributes (tag twice = tag once) sends no UPDATE."""
        self.add(E1)
        sink = self.add(E2, export_policy=["tag"])
        self.feed()
        sink.clear()
        self.rib.set_export_policies({E2.address: ["tag", "tag"]})
        self.settle()
        self.assertEqual(sink.messages, [])

    def test_reject_all_and_back(self):
        """To reject-all every sent prefix is withdrawn; back to accept-all every one is sent."""
        self.add(E1)
        sink = self.add(E2)
        self.feed()
        sink.clear()
        self.rib.set_export_policies({E2.address: ["reject-all"]})
        self.settle()
        self.assertEqual(sorted(sink.withdrawn()), sorted(PREFIXES))
        self.assertEqual(sink.routes(), {})
        sink.clear()
        self.rib.set_export_policies({E2.address: ["accept-all"]})
        self.settle()
        self.assertEqual(sorted(sink.announced()), sorted(PREFIXES))

    def test_changes_before_the_pass_ends(self):
        """A second change before the first is applied still sends the difference from what went out."""
        self.add(E1)
        sink = self.add(E2)
        self.feed()
        sink.clear()
        self.rib.set_export_policies({E2.address: ["drop-ten-zero"]})
        self.rib.set_export_policies({E2.address: ["med-ten-one"]})
        self.settle()
        self.assertEqual(sink.withdrawn(), [])
        self.assertEqual(sink.announced(), [PREFIXES[1]])

    def test_split_group_only_the_mover_hears(self):
        """Two peers share a group; changing one's export policy leaves the other's session silent."""
        self.add(E1)
        s2, s3 = self.add(E2), self.add(E3)
        self.assertIs(self.rib.update_group(E2, IPV4), self.rib.update_group(E3, IPV4))
        self.feed()
        s2.clear()
        s3.clear()
        self.rib.set_export_policies({E3.address: ["drop-ten-zero"]})
        self.settle()
        self.assertIsNot(self.rib.update_group(E2, IPV4), self.rib.update_group(E3, IPV4))
        self.assertEqual(s2.messages, [])
        self.assertEqual(s3.withdrawn(), [PREFIXES[0]])
        self.assertEqual(s3.announced(), [])
        # Both groups go on receiving later changes.
        self.feed(prefixes=[pfx("10.20.0.0/16")])
        self.assertEqual(s2.announced(), [pfx("10.20.0.0/16")])
        self.assertEqual(s3.announced(), [pfx("10.20.0.0/16")])

    def test_split_with_changes_waiting(self):
        """Changes queued for the group's MRAI when it splits reach both parts, once."""
        self.rib = self.make_rib(RibOptions(mrai_ebgp=1.0, mrai_ibgp=0.0), policies=compiled())
        self.add(E1)
        s2, s3 = self.add(E2), self.add(E3)
        self.feed()
        self.clock.advance(2.0)
        self.assertEqual(len(s3.routes()), 10)
        s2.clear()
        s3.clear()
        self.rib.receive(E1, Update(withdrawn=[PREFIXES[3]]))
        self.rib.receive(E1, announce(attrs(path=(65001, 64999)), [PREFIXES[2]]))
        self.settle()  # the RIB's turn; the group waits for its MRAI
        self.assertEqual(s3.messages, [])
        self.rib.set_export_policies({E3.address: ["drop-ten-zero"]})
        self.clock.advance(2.0)
        self.settle()
        self.assertIsNot(self.rib.update_group(E2, IPV4), self.rib.update_group(E3, IPV4))
        self.assertEqual((s2.withdrawn(), s2.announced()), ([PREFIXES[3]], [PREFIXES[2]]))
        self.assertEqual(sorted(s3.withdrawn()), sorted([PREFIXES[0], PREFIXES[3]]))
        self.assertEqual(s3.announced(), [PREFIXES[2]])
        for peer in (E2, E3):
            self.assertEqual(set(self.rib.adj_rib_out(peer, IPV4)), set(PREFIXES) - {PREFIXES[3]}
                             - ({PREFIXES[0]} if peer is E3 else set()))

    def test_both_members_change_differently(self):
        """Both members of a group get different new chains: each hears only its own difference."""
        self.add(E1)
        s2, s3 = self.add(E2), self.add(E3)
        self.feed()
        s2.clear()
        s3.clear()
        self.rib.set_export_policies({E2.address: ["drop-ten-zero"], E3.address: ["med-ten-one"]})
        self.settle()
        self.assertEqual((s2.withdrawn(), s2.announced()), ([PREFIXES[0]], []))
        self.assertEqual((s3.withdrawn(), s3.announced()), ([], [PREFIXES[1]]))
        self.assertIsNot(self.rib.update_group(E2, IPV4), self.rib.update_group(E3, IPV4))

    def test_changed_while_paused(self):
        """A member paused during the change ends with the new policy's view when it resumes."""
        self.add(E1)
        sink = self.add(E2)
        self.feed()
        sink.is_writable = False
        self.rib.set_export_policies({E2.address: ["drop-ten-zero"]})
        self.settle()
        sink.is_writable = True
        self.rib.resume(E2)
        self.settle()
        self.assertEqual(set(sink.routes()), set(PREFIXES[1:]))

    def test_unknown_name_changes_nothing(self):
        """An unknown policy name is refused before any chain is replaced."""
        self.add(E1)
        sink = self.add(E2)
        self.feed()
        sink.clear()
        self.assertRaises(KeyError, self.rib.set_export_policies,
                          {E2.address: ["drop-ten-zero"], E1.address: ["nope"]})
        self.settle()
        self.assertEqual(sink.messages, [])
        self.assertEqual(self.rib.update_group(E2, IPV4).policy.names, ("accept-all",))


class PerPeerExportTests(PolicyRibCase):
    def test_peer_condition_splits_the_group(self):
        """An export policy matching on the peer is evaluated for each peer, not the first member's."""
        self.add(E1)
        s2 = self.add(E2, export_policy=["only-e3"])
        s3 = self.add(E3, export_policy=["only-e3"])
        self.feed()
        self.assertEqual(s2.routes(), {})
        self.assertEqual(len(s3.routes()), 10)
        self.assertIsNot(self.rib.update_group(E2, IPV4), self.rib.update_group(E3, IPV4))

    def test_peer_independent_policy_shares_a_group(self):
        """A policy that reads no peer keeps one update group (one encoding) for both."""
        self.add(E1)
        self.add(E2, export_policy=["drop-ten-zero"])
        self.add(E3, export_policy=["drop-ten-zero"])
        self.assertIs(self.rib.update_group(E2, IPV4), self.rib.update_group(E3, IPV4))

    def test_change_to_peer_dependent_splits(self):
        """Changing both peers to a peer-dependent policy gives each its own answer."""
        self.add(E1)
        s2, s3 = self.add(E2), self.add(E3)
        self.feed()
        self.rib.set_export_policies({E2.address: ["only-e3"], E3.address: ["only-e3"]})
        self.settle()
        self.assertEqual(s2.routes(), {})
        self.assertEqual(len(s3.routes()), 10)


class NextHopTests(PolicyRibCase):
    def test_policy_next_hop_wins_on_ebgp(self):
        """eBGP export keeps a NEXT_HOP the export policy set instead of our session address."""
        self.add(E1)
        sink = self.add(E2, export_policy=["nh"])
        self.feed()
        self.assertEqual({a.next_hop for a in sink.routes().values()}, {"192.0.2.99"})

    def test_next_hop_not_valid_for_the_family(self):
        """An IPv6 NEXT_HOP set for IPv4 unicast is not sent: the session's address is."""
        self.add(E1)
        sink = self.add(E2, export_policy=["nh6-on-v4"])
        self.feed()
        self.assertEqual({a.next_hop for a in sink.routes().values()}, {"198.51.100.1"})

    def test_ipv6_next_hop_for_ipv4_with_extended_next_hop(self):
        """With RFC 8950 extended next hop negotiated, the policy's IPv6 NEXT_HOP is sent for IPv4."""
        self.add(E1)
        neg = Negotiated(peer_as=E2.remote_as, ext_nexthop=frozenset({(1, 1, 2)}))
        sink = self.add(E2, neg=neg, export_policy=["nh6-on-v4"])
        self.feed()
        routes = sink.routes(IPV4, Negotiated(ibgp=True, ext_nexthop_rx=frozenset({(1, 1, 2)})))
        self.assertEqual({a.next_hop for a in routes.values()}, {"2001:db8::99"})

    def test_ipv4_next_hop_on_ipv6_routes_falls_back(self):
        """For IPv6 unicast the policy's IPv4 NEXT_HOP is not used either."""
        e1 = make_peer("2001:db8::2", 65001, local_address="2001:db8::1")
        e2 = make_peer("2001:db8:1::2", 65002, local_address="2001:db8:1::1")
        self.add(e1, families=(IPV6,))
        sink = self.add(e2, families=(IPV6,), export_policy=["nh"])
        self.rib.receive(e1, announce(attrs(nh="2001:db8::2"), [pfx("2001:db8:5::/48")], IPV6))
        self.settle()
        self.assertEqual({a.next_hop for a in sink.routes(IPV6).values()}, {"2001:db8:1::1"})


class ImportChangeTests(PolicyRibCase):
    def test_set_import_policy_applies_to_refreshed_routes(self):
        """After set_import_policy the re-sent routes (route refresh) meet the new chain."""
        self.add(E1)
        self.feed()
        self.rib.set_import_policy(E1, ["drop-ten-zero"])
        self.feed()
        self.assertIsNone(self.rib.best(IPV4, PREFIXES[0]))
        self.assertIsNotNone(self.rib.best(IPV4, PREFIXES[1]))

    def test_import_uses_the_compiled_policy_per_update(self):
        """A prefix-set policy over one UPDATE gives the per-prefix answers (Chain.many)."""
        self.add(E1, import_policy=["drop-ten-zero", "med-ten-one"])
        self.feed()
        self.assertIsNone(self.rib.best(IPV4, PREFIXES[0]))
        self.assertEqual(self.rib.best(IPV4, PREFIXES[1]).attrs.med, 7)
        self.assertIsNone(self.rib.best(IPV4, PREFIXES[2]).attrs.med)

    def test_add_path_import_per_prefix(self):
        """With ADD-PATH receive the policy sees each (path id, prefix)'s prefix."""
        self.add(E1, neg=Negotiated(addpath_rx=frozenset({IPV4})), import_policy=["drop-ten-zero"])
        self.rib.receive(E1, announce(attrs(), [(1, PREFIXES[0]), (1, PREFIXES[1])]))
        self.settle()
        self.assertIsNone(self.rib.best(IPV4, PREFIXES[0]))
        self.assertIsNotNone(self.rib.best(IPV4, PREFIXES[1]))



class RehearseTests(PolicyRibCase):
    def chains(self, imports: dict, exports: dict):
        policies = self.rib.policies

        def candidate(peer, direction):
            # Every peer of these tests was added with accept-all both ways.
            names = (imports if direction == "import" else exports).get(peer.address, ["accept-all"])
            return chain(names, policies)

        return candidate

    def test_import_with_soft_reconfiguration_is_complete(self):
        """With the pre-policy table kept, import rehearsal lists what would be rejected, changing nothing."""
        self.add(E1, soft_reconfiguration=True)
        self.add(E2)
        self.feed()
        result = self.rib.rehearse(self.chains({E1.address: ["drop-ten-zero"]}, {}))
        r = result[(E1.address, "import")]
        self.assertTrue(r.complete)
        self.assertEqual(r.newly_rejected, ((IPV4, PREFIXES[0]),))
        self.assertIsNotNone(self.rib.best(IPV4, PREFIXES[0]))

    def test_import_without_soft_reconfiguration_says_so(self):
        """Without soft reconfiguration the import result is marked incomplete (route refresh would tell)."""
        self.add(E1)
        self.feed()
        r = self.rib.rehearse(self.chains({E1.address: ["drop-ten-zero"]}, {}))[(E1.address, "import")]
        self.assertFalse(r.complete)
        self.assertEqual(r.newly_rejected, ())

    def test_export(self):
        """An export rehearsal shows the changed MED and the rejected prefix for that peer only."""
        self.add(E1)
        sink = self.add(E2)
        self.feed()
        sink.clear()
        result = self.rib.rehearse(self.chains({}, {E2.address: ["drop-ten-zero", "med-ten-one"]}))
        r = result[(E2.address, "export")]
        self.assertEqual(r.newly_rejected, ((IPV4, PREFIXES[0]),))
        self.assertEqual([(c.prefix, c.diff) for c in r.changed], [(PREFIXES[1], (("med", None, 7),))])
        # E1's own routes never go back to it (split horizon): nothing to rehearse there.
        self.assertNotIn((E1.address, "export"), result)
        self.assertEqual(sink.messages, [])
