"""Tests for the [sets] / [policies] part of bgpd.config and [bgp] import_policy.

Every error names its key path (DESIGN.md: config -> an error naming the key).
"""

from __future__ import annotations

from twisted.trial.unittest import SynchronousTestCase

from bgpd.config import (
    ConfigErrors,
    PolicyDef,
    PrefixEntry,
    Range,
    SetRef,
    Term,
    import_chain_names,
    parse_config,
)
from tests.policy.helpers import BASE, key

ISSUE_EXAMPLE = """
[sets.prefix.bogons-v4]
prefixes = ["0.0.0.0/8 le 32", "10.0.0.0/8 le 32", "192.168.0.0/16 ge 16 le 32"]
[sets.as_path.bogon-asns]
regex = ["(^| )(0|23456|6449[6-9]|645[0-9][0-9]|65[0-9]{3})( |$)"]
[sets.community.blackhole]
members = ["65535:666", "blackhole"]
[sets.large_community.from-ix]
members = ["65000:*:1"]

[policies.ixp-in]
default = "reject"            # what happens when no term decides
[[policies.ixp-in.terms]]
name = "no-bogons"
match = { prefix_set = "bogons-v4" }
action = "reject"
[[policies.ixp-in.terms]]
name = "customers"
match = { as_path_length = { le = 50 }, prefix_length = { le = 24 }, first_as_is_peer = true }
action = { accept = true, local_pref = 200, add_communities = ["65000:100"] }
"""

NEIGHBOR = """
[[neighbors]]
address = "192.0.2.2"
remote_as = 64501
"""


def errors(text: str, base: str = BASE) -> list[tuple[str, str]]:
    try:
        parse_config(base + text)
    except ConfigErrors as e:
        return [(x.key, x.reason) for x in e.errors]
    raise AssertionError("config accepted")


class IssueExampleTests(SynchronousTestCase):
    """The issue's example, exactly."""

    def test_records(self):
        """It loads into sets and a policy of two terms, values in wire form."""
        config = parse_config(BASE + ISSUE_EXAMPLE)
        bogons = config.sets.lookup("prefix", "bogons-v4")
        self.assertEqual(bogons.entries[0], PrefixEntry(1, key("0.0.0.0/8"), 8, 32))
        self.assertEqual(bogons.entries[2], PrefixEntry(1, key("192.168.0.0/16"), 16, 32))
        self.assertEqual(config.sets.lookup("community", "blackhole").members, (0xFFFF029A,))
        self.assertEqual(config.sets.lookup("large_community", "from-ix").members, ((65000, None, 1),))
        ((name, policy),) = config.policies
        self.assertEqual(name, "ixp-in")
        self.assertEqual(
            policy,
            PolicyDef(
                "ixp-in",
                (
                    Term("no-bogons", (("prefix_set", SetRef("bogons-v4")),), (), "reject"),
                    Term(
                        "customers",
                        (
                            ("as_path_length", Range(None, 50)),
                            ("prefix_length", Range(None, 24)),
                            ("first_as_is_peer", True),
                        ),
                        (("local_pref", 200), ("add_communities", ((65000 << 16) | 100,))),
                        "accept",
                    ),
                ),
                "reject",
            ),
        )

    def test_same_member_twice(self):
        """'blackhole' is 65535:666: a set may name one value twice (the issue's example does)."""
        config = parse_config(BASE + ISSUE_EXAMPLE)
        self.assertEqual(len(config.sets.lookup("community", "blackhole").members), 1)

    def test_neighbor_names_policy(self):
        """A neighbor's import/export lists may name configured policies."""
        config = parse_config(
            BASE + ISSUE_EXAMPLE + NEIGHBOR + 'import_policy = ["ixp-in"]\n'
            'export_policy = ["ixp-in", "accept-all"]\n'
        )
        (n,) = config.neighbors
        self.assertEqual((n.import_policy, n.export_policy), (("ixp-in",), ("ixp-in", "accept-all")))

    def test_equal_on_reload(self):
        """The same text gives equal records: a reload sees no change."""
        self.assertEqual(parse_config(BASE + ISSUE_EXAMPLE), parse_config(BASE + ISSUE_EXAMPLE))
        changed = ISSUE_EXAMPLE.replace("local_pref = 200", "local_pref = 201")
        self.assertNotEqual(
            parse_config(BASE + ISSUE_EXAMPLE).policies, parse_config(BASE + changed).policies
        )


class GlobalImportTests(SynchronousTestCase):
    """[bgp] import_policy."""

    def test_default_empty(self):
        """Unset, there is no global import policy."""
        self.assertEqual(parse_config(BASE).bgp.import_policy, ())

    def test_applies_first(self):
        """The global list comes before the neighbor's in the import chain."""
        text = BASE.replace("[bgp]", '[bgp]\nimport_policy = ["ixp-in"]') + ISSUE_EXAMPLE + NEIGHBOR
        text += 'import_policy = ["accept-all"]\n'
        config = parse_config(text)
        self.assertEqual(config.bgp.import_policy, ("ixp-in",))
        self.assertEqual(import_chain_names(config.bgp, config.neighbors[0]), ("ixp-in", "accept-all"))

    def test_unknown(self):
        """An unknown name is an error at bgp.import_policy[i], listing the defined ones."""
        text = BASE.replace("[bgp]", '[bgp]\nimport_policy = ["accept-all", "nope"]') + ISSUE_EXAMPLE
        ((k, reason),) = errors(text, base="")
        self.assertEqual(k, "bgp.import_policy[1]")
        self.assertIn("unknown policy 'nope'", reason)
        self.assertIn("ixp-in", reason)


class ErrorTests(SynchronousTestCase):
    """Each mistake is one error naming its key path."""

    def one(self, text: str, key: str, *fragments: str):
        errs = errors(text)
        self.assertEqual(len(errs), 1, errs)
        self.assertEqual(errs[0][0], key, errs)
        for f in fragments:
            self.assertIn(f, errs[0][1])

    def test_unknown_set(self):
        """A term naming an unknown set."""
        self.one(
            '[policies.p]\n[[policies.p.terms]]\nmatch = { prefix_set = "nope" }\naction = "reject"\n',
            "policies.p.terms[0].match.prefix_set",
            "unknown prefix set 'nope'",
        )

    def test_set_of_other_kind(self):
        """A community set name where a large-community set is needed."""
        self.one(
            '[sets.community.c]\nmembers = ["1:1"]\n[policies.p]\n[[policies.p.terms]]\n'
            'action = { remove_large_communities = "c" }\n',
            "policies.p.terms[0].action.remove_large_communities",
            "unknown large_community set 'c'",
        )

    def test_bad_regex(self):
        """A regex that does not compile."""
        self.one(
            '[sets.as_path.a]\nregex = ["ok", "(unclosed"]\n',
            "sets.as_path.a.regex[1]",
            "bad regular expression",
        )

    def test_bad_prefix(self):
        """Host bits, bad ranges, bad syntax in a prefix set."""
        self.one('[sets.prefix.p]\nprefixes = ["10.0.0.1/8"]\n', "sets.prefix.p.prefixes[0]", "host bits")
        self.one('[sets.prefix.p]\nprefixes = ["10.0.0.0/8 ge 4"]\n', "sets.prefix.p.prefixes[0]", "8 <= ge")
        self.one('[sets.prefix.p]\nprefixes = ["10.0.0.0/8 le 33"]\n', "sets.prefix.p.prefixes[0]", "<= 32")
        self.one('[sets.prefix.p]\nprefixes = ["10.0.0.0/8 ge 20 le 16"]\n', "sets.prefix.p.prefixes[0]")
        self.one(
            '[sets.prefix.p]\nprefixes = ["10.0.0.0/8 lt 9"]\n', "sets.prefix.p.prefixes[0]", "PREFIX [ge N]"
        )

    def test_bad_communities(self):
        """Bad values and patterns in community sets."""
        self.one('[sets.community.c]\nmembers = ["1:70000"]\n', "sets.community.c.members[0]")
        self.one('[sets.community.c]\nmembers = ["1:*:2"]\n', "sets.community.c.members[0]", "ASN:VALUE")
        self.one('[sets.large_community.c]\nmembers = ["1:*"]\n', "sets.large_community.c.members[0]")
        self.one('[sets.ext_community.c]\nmembers = ["rt:*:1"]\n', "sets.ext_community.c.members[0]")

    def test_empty_set(self):
        """A set without members."""
        self.one("[sets.prefix.p]\nprefixes = []\n", "sets.prefix.p", "at least one member")
        self.one("[sets.as_path.a]\n", "sets.as_path.a", "at least one member")

    def test_unknown_keys(self):
        """Unknown set kinds, set keys, match keys and action keys, with a hint."""
        self.one("[sets.prefx.p]\nprefixes = []\n", "sets.prefx", "did you mean 'prefix'")
        self.one('[sets.prefix.p]\nprefix = ["10.0.0.0/8"]\n', "sets.prefix.p.prefix", "prefixes")
        self.one(
            '[policies.p]\n[[policies.p.terms]]\nmatch = { meds = 1 }\naction = "accept"\n',
            "policies.p.terms[0].match.meds",
            "did you mean 'med'",
        )
        self.one(
            "[policies.p]\n[[policies.p.terms]]\naction = { localpref = 1 }\n",
            "policies.p.terms[0].action.localpref",
            "local_pref",
        )

    def test_bad_values(self):
        """Out-of-range and mistyped values in match and action."""
        self.one(
            '[policies.p]\n[[policies.p.terms]]\nmatch = { med = -1 }\naction = "accept"\n',
            "policies.p.terms[0].match.med",
        )
        self.one(
            '[policies.p]\n[[policies.p.terms]]\nmatch = { med = { ge = 5, le = 1 } }\naction = "accept"\n',
            "policies.p.terms[0].match.med",
            "ge (5)",
        )
        self.one(
            '[policies.p]\n[[policies.p.terms]]\nmatch = { family = "ipv4" }\naction = "accept"\n',
            "policies.p.terms[0].match.family",
            "ipv4-unicast",
        )
        self.one(
            '[policies.p]\n[[policies.p.terms]]\nmatch = { route_type = ["ebgp", "x"] }\naction = "accept"\n',
            "policies.p.terms[0].match.route_type[1]",
        )
        self.one(
            '[policies.p]\n[[policies.p.terms]]\nmatch = { peer_address = "192.0.2.300" }\n'
            'action = "accept"\n',
            "policies.p.terms[0].match.peer_address",
        )
        self.one(
            '[policies.p]\n[[policies.p.terms]]\naction = { local_pref = "high" }\n',
            "policies.p.terms[0].action.local_pref",
        )
        self.one(
            "[policies.p]\n[[policies.p.terms]]\naction = { prepend = 0 }\n",
            "policies.p.terms[0].action.prepend",
        )
        self.one(
            '[policies.p]\n[[policies.p.terms]]\naction = { next_hop = "nowhere" }\n',
            "policies.p.terms[0].action.next_hop",
        )
        self.one(
            '[policies.p]\n[[policies.p.terms]]\naction = { origin = "bgp" }\n',
            "policies.p.terms[0].action.origin",
        )
        self.one(
            '[policies.p]\n[[policies.p.terms]]\naction = { add_communities = ["x"] }\n',
            "policies.p.terms[0].action.add_communities[0]",
        )
        self.one('[policies.p]\n[[policies.p.terms]]\naction = "drop"\n', "policies.p.terms[0].action")

    def test_results(self):
        """Two results in one action, or false written, are errors."""
        self.one(
            "[policies.p]\n[[policies.p.terms]]\naction = { accept = true, reject = true }\n",
            "policies.p.terms[0].action",
            "only one of",
        )
        self.one(
            "[policies.p]\n[[policies.p.terms]]\naction = { accept = false }\n",
            "policies.p.terms[0].action.accept",
        )

    def test_all_on_prefix_set(self):
        """match = "all" means nothing for a prefix set."""
        self.one(
            '[sets.prefix.s]\nprefixes = ["10.0.0.0/8"]\n[policies.p]\n[[policies.p.terms]]\n'
            'match = { prefix_set = { set = "s", match = "all" } }\naction = "accept"\n',
            "policies.p.terms[0].match.prefix_set.match",
        )

    def test_policy_level(self):
        """A missing action, a bad default, duplicate term names, a built-in's name."""
        self.one('[policies.p]\n[[policies.p.terms]]\nname = "a"\n', "policies.p.terms[0].action", "required")
        self.one('[policies.p]\ndefault = "maybe"\n', "policies.p.default")
        self.one(
            '[policies.p]\n[[policies.p.terms]]\nname = "a"\naction = "accept"\n'
            '[[policies.p.terms]]\nname = "a"\naction = "accept"\n',
            "policies.p.terms[1].name",
            "duplicate",
        )
        self.one("[policies.accept-all]\n", "policies.accept-all", "built-in")
        self.one("[policies.p]\nterms = 3\n", "policies.p.terms")

    def test_neighbor_unknown_policy(self):
        """A neighbor naming an undefined policy; the message lists the defined ones."""
        self.one(
            ISSUE_EXAMPLE + NEIGHBOR + 'import_policy = ["ixp-inn"]\n',
            "neighbors[0].import_policy[0]",
            "unknown policy 'ixp-inn'",
            "accept-all, reject-all, ixp-in",
        )

    def test_broken_policy_no_second_error(self):
        """A neighbor naming a policy that has its own error gets no second error."""
        errs = errors('[policies.p]\ndefault = "maybe"\n' + NEIGHBOR + 'import_policy = ["p"]\n')
        self.assertEqual([k for k, _ in errs], ["policies.p.default"])

    def test_broken_set_no_second_error(self):
        """A term naming a set that has its own error gets no second error."""
        errs = errors(
            '[sets.prefix.b]\nprefixes = ["x"]\n[policies.p]\n[[policies.p.terms]]\n'
            'match = { prefix_set = "b" }\naction = "accept"\n'
        )
        self.assertEqual([k for k, _ in errs], ["sets.prefix.b.prefixes[0]"])

    def test_all_errors_together(self):
        """Several mistakes are all reported, in document order."""
        errs = errors(
            '[sets.as_path.a]\nregex = ["("]\n[sets.prefix.b]\nprefixes = ["x"]\n'
            '[policies.p]\n[[policies.p.terms]]\nmatch = { as_path_set = "zz" }\naction = "accept"\n'
        )
        self.assertEqual(
            [k for k, _ in errs],
            ["sets.prefix.b.prefixes[0]", "sets.as_path.a.regex[0]", "policies.p.terms[0].match.as_path_set"],
        )

    def test_quoted_key_paths(self):
        """A set name that is not a bare TOML key is quoted in the path."""
        self.one('[sets.prefix."my set"]\nprefixes = ["x"]\n', 'sets.prefix."my set".prefixes[0]')
