"""The ``kernel_source`` action (the kernel export's RTA_PREFSRC) in the policy engine and the config."""

from __future__ import annotations

from twisted.trial.unittest import SynchronousTestCase

from bgpd.config import ConfigErrors, parse_config
from tests.policy.helpers import ATTRS, BASE, EBGP, V4, V6, compile_snippet, key, one_term

POLICY = """
[sets.prefix.mine]
prefixes = ["203.0.113.0/24"]
[policies.k]
default = "accept"
[[policies.k.terms]]
name = "mine"
match = { prefix_set = "mine" }
action = { accept = true, kernel_source = "192.0.2.1" }
[[policies.k.terms]]
name = "later"
action = { continue = true, kernel_source = "192.0.2.7" }
[[policies.k.terms]]
name = "override"
match = { med = { ge = 5, le = 5 } }
action = { kernel_source = "192.0.2.8" }
[[policies.k.terms]]
name = "drop"
match = { med = { ge = 9, le = 9 } }
action = "reject"
"""


class KernelSourceTests(SynchronousTestCase):
    def test_decision_carries_the_source(self):
        """The term that accepts names the source; routes elsewhere get the last one applied."""
        p = compile_snippet(POLICY)["k"]
        self.assertEqual(p.kernel_decision(EBGP, V4, key("203.0.113.0/24"), ATTRS), (ATTRS, "192.0.2.1"))
        self.assertEqual(p.kernel_decision(EBGP, V4, key("198.51.100.0/24"), ATTRS), (ATTRS, "192.0.2.7"))
        five = ATTRS.replace(med=5)
        self.assertEqual(p.kernel_decision(EBGP, V4, key("198.51.100.0/24"), five)[1], "192.0.2.8")
        nine = ATTRS.replace(med=9)
        self.assertEqual(p.kernel_decision(EBGP, V4, key("198.51.100.0/24"), nine), (None, None))

    def test_no_effect_on_attributes(self):
        """In an import or export chain the action changes nothing."""
        p = one_term(action='{ accept = true, kernel_source = "192.0.2.1" }')
        self.assertIs(p(EBGP, V4, key("203.0.113.0/24"), ATTRS), ATTRS)

    def test_policy_without_the_action(self):
        """A policy without kernel_source answers as a call does, with no source."""
        p = one_term(match='prefix_set = "m"', sets='[sets.prefix.m]\nprefixes = ["10.0.0.0/8"]')
        self.assertEqual(p.kernel_decision(EBGP, V4, key("10.0.0.0/8"), ATTRS), (ATTRS, None))
        self.assertEqual(p.kernel_decision(EBGP, V4, key("11.0.0.0/8"), ATTRS), (None, None))

    def test_cached_result_per_attributes(self):
        """A prefix-independent policy gives the same answer from its cache."""
        p = one_term(match="med = { ge = 5, le = 5 }",
                     action='{ accept = true, kernel_source = "2001:db8::1" }')
        a = ATTRS.replace(med=5)
        first = p.kernel_decision(EBGP, V6, key("2001:db8:1::/48"), a)
        self.assertEqual(first, (a, "2001:db8::1"))
        self.assertIs(p.kernel_decision(EBGP, V6, key("2001:db8:2::/48"), a), first)


class KernelSourceConfigTests(SynchronousTestCase):
    def errors(self, text: str) -> list[str]:
        with self.assertRaises(ConfigErrors) as cm:
            parse_config(BASE + text)
        return [e.key for e in cm.exception.errors]

    def test_must_be_an_address(self):
        """Not an address, or not a unicast one: an error naming the action's key."""
        for bad in ('"nowhere"', '"224.0.0.1"', "7"):
            got = self.errors(f'[policies.k]\n[[policies.k.terms]]\naction = {{ kernel_source = {bad} }}\n')
            self.assertEqual(got, ["policies.k.terms[0].action.kernel_source"], bad)

    def test_family_of_the_term(self):
        """A term matching only IPv4 routes cannot set an IPv6 source."""
        got = self.errors('[policies.k]\n[[policies.k.terms]]\nmatch = { family = ["ipv4-unicast"] }\n'
                          'action = { kernel_source = "2001:db8::1" }\n')
        self.assertEqual(got, ["policies.k.terms[0].action.kernel_source"])
        ok = parse_config(BASE + '[policies.k]\n[[policies.k.terms]]\nmatch = { family = ["ipv6-unicast"] }\n'
                          'action = { kernel_source = "2001:db8::1" }\n')
        self.assertEqual(ok.policies[0][1].terms[0].actions, (("kernel_source", "2001:db8::1"),))
