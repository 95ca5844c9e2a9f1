"""Tests for bgpd.policy.engine: every condition and action, term order, defaults, caching.

RFC 4271 section 9.1.1 / 9.1.3 policy; RFC 1997 / 8092 / 4360 communities;
RFC 6811 validation states through the RPKI hook.
"""

from __future__ import annotations

from twisted.trial.unittest import SynchronousTestCase

from bgpd.config import parse_config
from bgpd.policy import chain
from bgpd.policy.engine import as_path_text, compile_policies, route_type
from bgpd.wire.attributes import PathAttributes
from tests.policy.helpers import (
    ATTRS,
    BASE,
    EBGP,
    EBGP2,
    IBGP,
    LOCAL_PEER,
    V4,
    compile_snippet,
    key,
    one_term,
    run,
)

PREFIXES = """
[sets.prefix.nets]
prefixes = ["10.0.0.0/8 le 24", "192.168.0.0/16", "172.16.0.0/12 ge 20 le 22", "2001:db8::/32 ge 48"]
"""


class PrefixSetTests(SynchronousTestCase):
    """prefix_set: exact, le, ge..le, IPv6, invert."""

    def setUp(self):
        self.p = one_term('prefix_set = "nets"', sets=PREFIXES)

    def test_le(self):
        """A more-specific within "le" matches; one past it does not."""
        self.assertIsNotNone(run(self.p, "10.1.2.0/24"))
        self.assertIsNotNone(run(self.p, "10.0.0.0/8"))
        self.assertIsNone(run(self.p, "10.1.2.0/25"))

    def test_exact(self):
        """An entry without ge/le matches only itself."""
        self.assertIsNotNone(run(self.p, "192.168.0.0/16"))
        self.assertIsNone(run(self.p, "192.168.1.0/24"))

    def test_ge_le(self):
        """ge and le bound the length on both sides."""
        self.assertIsNone(run(self.p, "172.16.0.0/19"))
        self.assertIsNotNone(run(self.p, "172.16.32.0/20"))
        self.assertIsNotNone(run(self.p, "172.31.0.0/22"))
        self.assertIsNone(run(self.p, "172.16.0.0/23"))

    def test_ipv6(self):
        """IPv6 entries match IPv6 prefixes only."""
        self.assertIsNotNone(run(self.p, "2001:db8:1::/48"))
        self.assertIsNone(run(self.p, "2001:db8::/32"))
        self.assertIsNone(run(self.p, "2001:db9::/48"))

    def test_families_apart(self):
        """The same key bytes in the other family do not match."""
        self.assertIsNone(self.p(EBGP, (2, 1), key("10.1.2.0/24"), ATTRS))

    def test_invert(self):
        """match = "invert" matches the prefixes outside the set."""
        p = one_term('prefix_set = { set = "nets", match = "invert" }', sets=PREFIXES)
        self.assertIsNone(run(p, "10.1.2.0/24"))
        self.assertIsNotNone(run(p, "8.8.8.0/24"))

    def test_two_sets_and_length_in_one_term(self):
        """Several prefix conditions in one term all hold: a set, an inverted set, a length."""
        sets = PREFIXES + '[sets.prefix.hole]\nprefixes = ["10.9.0.0/16 le 32"]\n'
        p = one_term('prefix_set = "nets", prefix_length = { ge = 16 }', sets=sets)
        self.assertIsNone(run(p, "10.0.0.0/8"))
        self.assertIsNotNone(run(p, "10.1.0.0/16"))
        reg = compile_snippet(
            sets + "[policies.q]\n[[policies.q.terms]]\n"
            'match = { prefix_set = "nets" }\naction = { continue = true, med = 1 }\n'
            '[[policies.q.terms]]\nmatch = { prefix_set = { set = "hole", match = "invert" }, med = 1 }\n'
            'action = "accept"\n'
        )
        q = reg["q"]
        self.assertIsNotNone(run(q, "10.1.0.0/16"))
        self.assertIsNone(run(q, "10.9.1.0/24"))
        self.assertIsNone(run(q, "8.8.8.0/24"))

    def test_prefix_length(self):
        """prefix_length takes an integer or a range."""
        p = one_term("prefix_length = { le = 24 }")
        self.assertIsNotNone(run(p, "10.0.0.0/24"))
        self.assertIsNone(run(p, "10.0.0.0/25"))
        p = one_term("prefix_length = 16")
        self.assertIsNotNone(run(p, "10.0.0.0/16"))
        self.assertIsNone(run(p, "10.0.0.0/15"))


class AsPathTests(SynchronousTestCase):
    """as_path sets: regex and the structured members, any/all/invert."""

    def attrs(self, *segments):
        return PathAttributes(as_path=tuple(segments), next_hop="192.0.2.2")

    def test_text(self):
        """The regex text is space-separated ASNs, AS_SETs in braces with spaces."""
        self.assertEqual(as_path_text(((2, (1, 2)), (1, (3, 4)))), "1 2 { 3 4 }")
        self.assertEqual(as_path_text(()), "")

    def test_regex(self):
        """A regex matches anywhere in the path text, AS_SET members too."""
        p = one_term('as_path_set = "b"', sets='[sets.as_path.b]\nregex = ["(^| )23456( |$)"]')
        self.assertIsNotNone(run(p, attrs=self.attrs((2, (64501, 23456)))))
        self.assertIsNotNone(run(p, attrs=self.attrs((2, (64501,)), (1, (23456, 1)))))
        self.assertIsNone(run(p, attrs=self.attrs((2, (64501, 234567)))))

    def test_origin_neighbor(self):
        """origin_as is the rightmost AS, neighbor_as the leftmost."""
        p = one_term('as_path_set = "o"', sets="[sets.as_path.o]\norigin_as = [64510]")
        self.assertIsNotNone(run(p, attrs=self.attrs((2, (64501, 64510)))))
        self.assertIsNone(run(p, attrs=self.attrs((2, (64510, 64501)))))
        p = one_term('as_path_set = "n"', sets="[sets.as_path.n]\nneighbor_as = 64501")
        self.assertIsNotNone(run(p, attrs=self.attrs((2, (64501, 64510)))))
        self.assertIsNone(run(p, attrs=self.attrs((2, (64510, 64501)))))

    def test_contains_length_as_set(self):
        """contains_as, length and as_set each match on their own."""
        p = one_term('as_path_set = "c"', sets="[sets.as_path.c]\ncontains_as = [3356]")
        self.assertIsNotNone(run(p, attrs=self.attrs((2, (1, 3356, 2)))))
        self.assertIsNone(run(p, attrs=self.attrs((2, (1, 2)))))
        p = one_term('as_path_set = "l"', sets="[sets.as_path.l]\nlength = { ge = 3 }")
        self.assertIsNotNone(run(p, attrs=self.attrs((2, (1, 2, 3)))))
        self.assertIsNone(run(p, attrs=self.attrs((2, (1, 2)))))
        p = one_term('as_path_set = "s"', sets="[sets.as_path.s]\nas_set = true")
        self.assertIsNotNone(run(p, attrs=self.attrs((2, (1,)), (1, (2, 3)))))
        self.assertIsNone(run(p, attrs=self.attrs((2, (1, 2)))))

    def test_all_invert(self):
        """match = "all" needs every member, "invert" none."""
        sets = "[sets.as_path.x]\norigin_as = [2]\ncontains_as = [1]"
        p = one_term('as_path_set = { set = "x", match = "all" }', sets=sets)
        self.assertIsNotNone(run(p, attrs=self.attrs((2, (1, 2)))))
        self.assertIsNone(run(p, attrs=self.attrs((2, (3, 2)))))
        p = one_term('as_path_set = { set = "x", match = "invert" }', sets=sets)
        self.assertIsNone(run(p, attrs=self.attrs((2, (3, 2)))))
        self.assertIsNotNone(run(p, attrs=self.attrs((2, (3, 4)))))

    def test_as_path_length(self):
        """The as_path_length condition counts an AS_SET as one (RFC 4271 9.1.2.2)."""
        p = one_term("as_path_length = { le = 2 }")
        self.assertIsNotNone(run(p, attrs=self.attrs((2, (1,)), (1, (2, 3, 4)))))
        self.assertIsNone(run(p, attrs=self.attrs((2, (1, 2, 3)))))

    def test_regex_cached_per_path(self):
        """The regex result is cached per AS path: two attribute sets with one path fill one entry."""
        p = one_term('as_path_set = "b"', sets='[sets.as_path.b]\nregex = ["^64501 "]')
        cond = p.terms[0].attr_conds[0][1]
        count = next(
            c.cell_contents for c in cond.__closure__ if getattr(c.cell_contents, "__name__", "") == "count"
        )
        cache = next(c.cell_contents for c in count.__closure__ if isinstance(c.cell_contents, dict))
        a1 = self.attrs((2, (64501, 1)))
        self.assertIsNotNone(run(p, attrs=a1))
        self.assertIsNotNone(run(p, attrs=a1.replace(med=5)))
        self.assertEqual(list(cache), [a1.as_path_packed])  # keyed by the packed path


class CommunityTests(SynchronousTestCase):
    """Standard, large and extended community sets, names and wildcards."""

    def test_standard(self):
        """Exact values, well-known names and * wildcards."""
        sets = '[sets.community.c]\nmembers = ["65535:666", "no-export", "65000:*", "*:42"]'
        p = one_term('community_set = "c"', sets=sets)
        for value in (0xFFFF029A, 0xFFFFFF01, (65000 << 16) | 7, (1 << 16) | 42):
            self.assertIsNotNone(run(p, attrs=ATTRS.replace(communities=(value,))), value)
        self.assertIsNone(run(p, attrs=ATTRS.replace(communities=((1 << 16) | 43,))))
        self.assertIsNone(run(p))

    def test_standard_all_invert(self):
        """all needs each member present, invert none."""
        sets = '[sets.community.c]\nmembers = ["1:1", "2:*"]'
        p = one_term('community_set = { set = "c", match = "all" }', sets=sets)
        self.assertIsNotNone(run(p, attrs=ATTRS.replace(communities=(65537, (2 << 16) | 9))))
        self.assertIsNone(run(p, attrs=ATTRS.replace(communities=(65537,))))
        p = one_term('community_set = { set = "c", match = "invert" }', sets=sets)
        self.assertIsNone(run(p, attrs=ATTRS.replace(communities=(65537,))))
        self.assertIsNotNone(run(p))

    def test_large(self):
        """Large communities with * in any part."""
        p = one_term(
            'large_community_set = "l"', sets='[sets.large_community.l]\nmembers = ["65000:*:1", "1:2:3"]'
        )
        self.assertIsNotNone(run(p, attrs=ATTRS.replace(large_communities=((65000, 9, 1),))))
        self.assertIsNotNone(run(p, attrs=ATTRS.replace(large_communities=((1, 2, 3),))))
        self.assertIsNone(run(p, attrs=ATTRS.replace(large_communities=((65000, 9, 2),))))

    def test_extended(self):
        """Extended communities exact and with a * value."""
        from bgpd.wire.communities import parse_ext_community as ext

        p = one_term(
            'ext_community_set = "e"',
            sets='[sets.ext_community.e]\nmembers = ["rt:65000:*", "ro:192.0.2.1:7"]',
        )
        self.assertIsNotNone(run(p, attrs=ATTRS.replace(ext_communities=(ext("rt:65000:99"),))))
        self.assertIsNotNone(run(p, attrs=ATTRS.replace(ext_communities=(ext("ro:192.0.2.1:7"),))))
        self.assertIsNone(run(p, attrs=ATTRS.replace(ext_communities=(ext("rt:65001:99"),))))


class PeerConditionTests(SynchronousTestCase):
    """Conditions on the peer, the family, the route's attributes."""

    def test_family(self):
        """family matches the (AFI, SAFI) the route is in."""
        p = one_term('family = "ipv6-unicast"')
        self.assertIsNone(run(p, "10.0.0.0/8"))
        self.assertIsNotNone(run(p, "2001:db8::/32"))
        self.assertTrue(p.depends_on_family)

    def test_peer_address_and_set(self):
        """peer_address and neighbor_set match the peer; both make the policy peer-dependent."""
        p = one_term('peer_address = ["192.0.2.2"]')
        self.assertIsNotNone(run(p, peer=EBGP))
        self.assertIsNone(run(p, peer=EBGP2))
        self.assertTrue(p.depends_on_peer)
        p = one_term(
            'neighbor_set = "rs"', sets='[sets.neighbor.rs]\naddresses = ["192.0.2.3", "198.51.100.0/24"]'
        )
        self.assertIsNone(run(p, peer=EBGP))
        self.assertIsNotNone(run(p, peer=EBGP2))
        self.assertTrue(p.depends_on_peer)

    def test_peer_as(self):
        """peer_as is the peer's AS number."""
        p = one_term("peer_as = [64502]")
        self.assertIsNone(run(p, peer=EBGP))
        self.assertIsNotNone(run(p, peer=EBGP2))

    def test_route_type(self):
        """route_type tells eBGP, iBGP and local routes apart."""
        self.assertEqual([route_type(p) for p in (EBGP, IBGP, LOCAL_PEER)], ["ebgp", "ibgp", "local"])
        p = one_term('route_type = ["ibgp", "local"]')
        self.assertIsNone(run(p, peer=EBGP))
        self.assertIsNotNone(run(p, peer=IBGP))
        self.assertIsNotNone(run(p, peer=LOCAL_PEER))

    def test_origin_med_local_pref(self):
        """origin, med and local_pref match the attributes."""
        p = one_term('origin = ["egp", "incomplete"]')
        self.assertIsNone(run(p))
        self.assertIsNotNone(run(p, attrs=ATTRS.replace(origin=2)))
        p = one_term("med = { ge = 5, le = 10 }")
        self.assertIsNotNone(run(p))
        self.assertIsNone(run(p, attrs=ATTRS.replace(med=11)))
        self.assertIsNone(run(p, attrs=ATTRS.replace(med=None)))
        p = one_term("local_pref = { eq = 100 }")
        self.assertIsNotNone(run(p))
        self.assertIsNone(run(p, attrs=ATTRS.replace(local_pref=200)))

    def test_first_as_is_peer(self):
        """first_as_is_peer compares the leftmost AS with the peer's."""
        p = one_term("first_as_is_peer = true")
        self.assertIsNotNone(run(p, peer=EBGP))
        self.assertIsNone(run(p, peer=EBGP2))
        self.assertIsNone(run(p, attrs=ATTRS.replace(as_path=())))
        p = one_term("first_as_is_peer = false")
        self.assertIsNone(run(p, peer=EBGP))
        self.assertIsNotNone(run(p, peer=EBGP2))

    def test_next_hop_set(self):
        """next_hop_set matches the NEXT_HOP address against prefixes."""
        p = one_term(
            'next_hop_set = "nh"', sets='[sets.next_hop.nh]\nprefixes = ["192.0.2.0/28", "2001:db8::1"]'
        )
        self.assertIsNotNone(run(p))
        self.assertIsNone(run(p, attrs=ATTRS.replace(next_hop="192.0.2.100")))
        self.assertIsNotNone(run(p, "2001:db8::/32", attrs=ATTRS.replace(next_hop="2001:db8::1")))

    def test_rpki_hook(self):
        """rpki asks the validator handed to the compiler; without one every route is not-found."""
        config = parse_config(
            BASE + '[policies.p]\n[[policies.p.terms]]\nmatch = { rpki = "invalid" }\n'
            'action = "reject"\n[[policies.p.terms]]\naction = "accept"\n'
        )
        seen = []

        def validator(family, prefix, attrs):
            seen.append(prefix)
            return "invalid" if prefix == key("10.0.0.0/8") else "valid"

        p = compile_policies(config.sets, config.policies, validator)["p"]
        self.assertIsNone(run(p, "10.0.0.0/8"))
        self.assertIsNotNone(run(p, "10.0.0.0/9"))
        self.assertEqual(len(seen), 2)
        self.assertTrue(p.depends_on_prefix)
        plain = compile_policies(config.sets, config.policies)["p"]
        self.assertIsNotNone(run(plain, "10.0.0.0/8"))

    def test_conditions_all_hold(self):
        """Several conditions in one match must all hold."""
        p = one_term("peer_as = [64501], med = 11")
        self.assertIsNone(run(p))
        self.assertIsNotNone(run(p, attrs=ATTRS.replace(med=11)))

    def test_empty_match(self):
        """A term without match applies to every route."""
        self.assertIsNotNone(run(one_term()))


class ActionTests(SynchronousTestCase):
    """Every action, and several in order."""

    def act(self, action, attrs=ATTRS, peer=EBGP, prefix="203.0.113.0/24", sets=""):
        return run(one_term(action="{ accept = true, " + action + " }", sets=sets), prefix, attrs, peer)

    def test_communities(self):
        """Set, add (no duplicates), remove by set and clear standard communities."""
        a = ATTRS.replace(communities=(65537, (65000 << 16) | 5))
        self.assertEqual(self.act('communities = ["1:2"]', a).communities, (65538,))
        self.assertEqual(
            self.act('add_communities = ["1:1", "1:3"]', a).communities, (65537, (65000 << 16) | 5, 65539)
        )
        sets = '[sets.community.mine]\nmembers = ["65000:*"]'
        self.assertEqual(self.act('remove_communities = "mine"', a, sets=sets).communities, (65537,))
        self.assertEqual(self.act("clear_communities = true", a).communities, ())

    def test_large_communities(self):
        """Set, add, remove by set and clear large communities."""
        a = ATTRS.replace(large_communities=((1, 2, 3), (65000, 0, 1)))
        self.assertEqual(self.act('large_communities = ["9:9:9"]', a).large_communities, ((9, 9, 9),))
        self.assertEqual(
            self.act('add_large_communities = ["9:9:9"]', a).large_communities,
            ((1, 2, 3), (65000, 0, 1), (9, 9, 9)),
        )
        sets = '[sets.large_community.x]\nmembers = ["65000:*:*"]'
        self.assertEqual(
            self.act('remove_large_communities = "x"', a, sets=sets).large_communities, ((1, 2, 3),)
        )
        self.assertEqual(self.act("clear_large_communities = true", a).large_communities, ())

    def test_no_change_no_copy(self):
        """An add, remove or clear that changes nothing returns the very same attributes."""
        a = ATTRS.replace(communities=(65537,), large_communities=())
        sets = ('[sets.community.mine]\nmembers = ["65000:*"]\n'
                '[sets.large_community.x]\nmembers = ["65000:*:*"]')
        self.assertIs(self.act('add_communities = ["1:1"]', a), a)
        self.assertIs(self.act('remove_communities = "mine"', a, sets=sets), a)
        self.assertIs(self.act('remove_large_communities = "x"', a, sets=sets), a)
        self.assertIs(self.act("clear_large_communities = true", a), a)

    def test_ext_communities(self):
        """Set, add, remove by set and clear extended communities."""
        from bgpd.wire.communities import parse_ext_community as ext

        a = ATTRS.replace(ext_communities=(ext("rt:65000:1"),))
        self.assertEqual(self.act('ext_communities = ["rt:1:1"]', a).ext_communities, (ext("rt:1:1"),))
        self.assertEqual(
            self.act('add_ext_communities = ["rt:1:1"]', a).ext_communities,
            (ext("rt:65000:1"), ext("rt:1:1")),
        )
        sets = '[sets.ext_community.x]\nmembers = ["rt:65000:*"]'
        self.assertEqual(self.act('remove_ext_communities = "x"', a, sets=sets).ext_communities, ())
        self.assertEqual(self.act("clear_ext_communities = true", a).ext_communities, ())

    def test_local_pref_med(self):
        """local_pref and med set; med_add and med_subtract clamp to 0 .. 2**32-1."""
        self.assertEqual(self.act("local_pref = 250").local_pref, 250)
        self.assertEqual(self.act("med = 7").med, 7)
        self.assertEqual(self.act("med_add = 5").med, 15)
        self.assertEqual(self.act("med_subtract = 50").med, 0)
        self.assertEqual(self.act("med_add = 4294967295").med, 4294967295)
        self.assertEqual(self.act("med_add = 3", ATTRS.replace(med=None)).med, 3)

    def test_prepend(self):
        """prepend N puts our own AS N times in front; a table names another AS."""
        self.assertEqual(self.act("prepend = 2").as_path, ((2, (64500, 64500, 64501, 64510)),))
        self.assertEqual(
            self.act("prepend = { as = 64999, count = 1 }").as_path, ((2, (64999, 64501, 64510)),)
        )
        empty = ATTRS.replace(as_path=())
        self.assertEqual(self.act("prepend = 1", empty).as_path, ((2, (64500,)),))
        with_set = ATTRS.replace(as_path=((1, (1, 2)),))
        self.assertEqual(self.act("prepend = 1", with_set).as_path, ((2, (64500,)), (1, (1, 2))))

    def test_next_hop(self):
        """next_hop sets an address, or our own address on the session for the family."""
        self.assertEqual(self.act('next_hop = "198.51.100.7"').next_hop, "198.51.100.7")
        self.assertEqual(self.act('next_hop = "self"').next_hop, "192.0.2.1")
        v6 = ATTRS.replace(next_hop="2001:db8::99", next_hop_ll="fe80::1")
        out = self.act('next_hop = "self"', v6, prefix="2001:db8:5::/48")
        self.assertEqual((out.next_hop, out.next_hop_ll), ("2001:db8::1", None))

    def test_origin(self):
        """origin sets ORIGIN."""
        self.assertEqual(self.act('origin = "incomplete"').origin, 2)

    def test_in_order(self):
        """Several actions apply in the order written."""
        sets = '[sets.community.all]\nmembers = ["*:*"]'
        out = self.act(
            'add_communities = ["1:1"], remove_communities = "all", add_communities = ["2:2"]'.replace(
                'add_communities = ["2:2"]', 'communities = ["2:2"]'
            ),
            sets=sets,
        )
        self.assertEqual(out.communities, (131074,))
        out = self.act('clear_communities = true, add_communities = ["1:1"]', ATTRS.replace(communities=(5,)))
        self.assertEqual(out.communities, (65537,))

    def test_unchanged_attrs_shared(self):
        """Actions never modify the input object: a new one is made with replace."""
        out = self.act("med = 99")
        self.assertEqual(ATTRS.med, 10)
        self.assertIsNot(out, ATTRS)


ORDERED = """
[sets.prefix.ten]
prefixes = ["10.0.0.0/8 le 32"]
[policies.p]
default = "{default}"
[[policies.p.terms]]
name = "tag"
action = {{ add_communities = ["1:1"] }}
[[policies.p.terms]]
name = "drop-ten"
match = {{ prefix_set = "ten" }}
action = "reject"
[[policies.p.terms]]
name = "pref"
match = {{ med = 10 }}
action = {{ local_pref = 300, continue = true }}
[[policies.p.terms]]
name = "take-high"
match = {{ local_pref = {{ ge = 300 }} }}
action = "accept"
"""


class TermOrderTests(SynchronousTestCase):
    """Terms in order, continue, and the default."""

    def policy(self, default="reject"):
        return compile_snippet(ORDERED.format(default=default))["p"]

    def test_first_deciding_term_wins(self):
        """A reject before an accept wins; the continuing term's changes reach later terms."""
        p = self.policy()
        self.assertIsNone(run(p, "10.1.0.0/16"))
        out = run(p, "8.8.8.0/24")
        self.assertEqual((out.communities, out.local_pref), ((65537,), 300))

    def test_default_reject(self):
        """No deciding term: default reject drops the route."""
        self.assertIsNone(run(self.policy(), "8.8.8.0/24", ATTRS.replace(med=1)))

    def test_default_accept_keeps_changes(self):
        """No deciding term: default accept returns the route with the changes of the terms passed."""
        out = run(self.policy("accept"), "8.8.8.0/24", ATTRS.replace(med=1))
        self.assertEqual((out.communities, out.local_pref), ((65537,), 100))

    def test_default_is_reject(self):
        """A policy without default rejects what no term decides."""
        p = compile_snippet('[policies.p]\n[[policies.p.terms]]\nmatch = { med = 1 }\naction = "accept"\n')[
            "p"
        ]
        self.assertIsNone(run(p))

    def test_continue_string(self):
        """action = "continue" goes on to the next term."""
        p = compile_snippet(
            '[policies.p]\n[[policies.p.terms]]\naction = "continue"\n'
            '[[policies.p.terms]]\naction = "accept"\n'
        )["p"]
        self.assertIs(run(p), ATTRS)

    def test_chain(self):
        """In a chain each policy sees the previous one's result; a reject ends it."""
        reg = compile_snippet(
            ORDERED.format(default="accept")
            + "[policies.q]\n[[policies.q.terms]]\nmatch = { local_pref = 300 }\n"
            "action = { accept = true, med = 1 }\n"
        )
        c = chain(["p", "q"], reg)
        self.assertEqual(c(EBGP, V4, key("8.8.8.0/24"), ATTRS).med, 1)
        self.assertIsNone(c(EBGP, V4, key("10.0.0.0/24"), ATTRS))
        self.assertFalse(c.accepts_all or c.rejects_all)


class CacheTests(SynchronousTestCase):
    """Results are cached per attribute object; prefix conditions never are."""

    def test_prefix_independent_cached(self):
        """A prefix-independent policy computes once per attribute object."""
        p = one_term("med = 10", "{ accept = true, local_pref = 5 }")
        self.assertFalse(p.depends_on_prefix)
        first = run(p, "8.8.8.0/24")
        calls = []
        original = p.terms[0].attr_conds[0]
        p.terms[0].attr_conds[0] = (original[0], lambda *a: calls.append(1) or original[1](*a))
        self.assertIs(run(p, "9.9.9.0/24"), first)
        self.assertEqual(calls, [])
        other = ATTRS.replace(med=10)  # equal value, other object: same answer
        self.assertEqual(run(p, "9.9.9.0/24", other), first)

    def test_prefix_condition_never_cached(self):
        """A prefix condition runs for every route, even with the same attributes."""
        p = one_term('prefix_set = "nets"', sets=PREFIXES)
        self.assertTrue(p.depends_on_prefix)
        calls = []
        classify = p._classify
        p._classify = lambda afi, k: calls.append(k) or classify(afi, k)
        self.assertIsNotNone(run(p, "10.0.0.0/24"))
        self.assertIsNone(run(p, "8.8.8.0/24"))
        self.assertIsNotNone(run(p, "10.0.0.0/24"))
        self.assertEqual(len(calls), 3)

    def test_rewrite_shared(self):
        """Every prefix with one input attribute object gets one output object."""
        p = one_term('prefix_set = "nets"', "{ accept = true, med = 1 }", sets=PREFIXES)
        a, b = run(p, "10.0.0.0/24"), run(p, "10.0.1.0/24")
        self.assertIs(a, b)
        self.assertEqual(a.med, 1)

    def test_peer_in_key(self):
        """A peer-dependent policy caches per peer: another peer gets its own answer."""
        p = one_term("first_as_is_peer = true")
        self.assertIsNotNone(run(p, peer=EBGP))
        self.assertIsNone(run(p, peer=EBGP2))
        self.assertIsNotNone(run(p, peer=EBGP))

    def test_split_after_rewrite(self):
        """With prefix conditions, a term's rewrite is seen by the later terms' conditions."""
        sets = PREFIXES
        reg = compile_snippet(
            sets + '[policies.p]\n[[policies.p.terms]]\nmatch = { prefix_set = "nets" }\n'
            "action = { local_pref = 7 }\n[[policies.p.terms]]\n"
            'match = { local_pref = 7 }\naction = "accept"\n'
        )
        p = reg["p"]
        self.assertEqual(run(p, "10.0.0.0/24").local_pref, 7)
        self.assertIsNone(run(p, "8.8.8.0/24"))
        self.assertEqual(run(p, "10.0.0.0/24").local_pref, 7)

    def test_clear_cache(self):
        """clear_cache forgets the results (for the RPKI hook's revalidation)."""
        p = one_term("med = 10")
        run(p)
        self.assertTrue(p._results)
        p.clear_cache()
        self.assertFalse(p._results)


class DependencyTests(SynchronousTestCase):
    """What a compiled policy says it depends on (the RIB's update-group split)."""

    def test_flags(self):
        """Peer conditions and actions that read the session make it peer-dependent; others do not."""
        self.assertFalse(one_term("med = 1").depends_on_peer)
        self.assertTrue(one_term("peer_as = 1").depends_on_peer)
        self.assertTrue(one_term('route_type = "ebgp"').depends_on_peer)
        self.assertTrue(one_term(action='{ accept = true, next_hop = "self" }').depends_on_peer)
        self.assertTrue(one_term(action="{ accept = true, prepend = 1 }").depends_on_peer)
        self.assertFalse(
            one_term(action="{ accept = true, prepend = { as = 1, count = 1 } }").depends_on_peer
        )

    def test_chain_flag(self):
        """Chain.depends_on_peer is true when any of its policies is."""
        reg = compile_snippet(
            '[policies.a]\n[[policies.a.terms]]\nmatch = { peer_as = 1 }\naction = "accept"\n'
            '[policies.b]\ndefault = "accept"\n'
        )
        self.assertTrue(chain(["accept-all", "a"], reg).depends_on_peer)
        self.assertFalse(chain(["b", "accept-all"], reg).depends_on_peer)
