"""Tests for bgpd.policy.explain: explain a chain for a route, rehearse a policy change."""

from __future__ import annotations

from twisted.trial.unittest import SynchronousTestCase

from bgpd.policy import chain
from bgpd.policy.explain import attribute_diff, explain, rehearse
from tests.policy.helpers import ATTRS, EBGP, EBGP2, V4, compile_snippet, key

POLICIES = """
[sets.prefix.ten]
prefixes = ["10.0.0.0/8 le 32"]
[policies.tag]
default = "accept"
[[policies.tag.terms]]
name = "mark"
action = { add_communities = ["1:1"], local_pref = 150 }
[policies.filter]
[[policies.filter.terms]]
name = "drop-ten"
match = { prefix_set = "ten" }
action = "reject"
[[policies.filter.terms]]
name = "rest"
action = { accept = true, med = 5 }
[policies.filter2]
[[policies.filter2.terms]]
name = "drop-eight"
match = { prefix_length = 8 }
action = "reject"
[[policies.filter2.terms]]
name = "rest"
action = { accept = true, med = 6 }
"""


class ExplainTests(SynchronousTestCase):
    """Which policy and term decided, and what each action changed."""

    def setUp(self):
        self.reg = compile_snippet(POLICIES)

    def test_accepted(self):
        """An accepted route: each action's before/after, the deciding term, the result."""
        e = explain(chain(["tag", "filter"], self.reg), EBGP, V4, key("8.8.8.0/24"), ATTRS)
        self.assertTrue(e.accepted)
        self.assertEqual(e.decided_by, ("filter", "rest"))
        tag, filt = e.policies
        self.assertEqual(tag.decided_by, "default")
        (mark,) = tag.terms
        self.assertEqual(
            [(s.action, s.changes) for s in mark.actions],
            [
                ("add_communities", (("communities", (), (65537,)),)),
                ("local_pref", (("local_pref", 100, 150),)),
            ],
        )
        self.assertEqual([t.matched for t in filt.terms], [False, True])
        self.assertEqual(filt.terms[0].conditions, (("prefix_set", False),))
        self.assertEqual(e.attributes.med, 5)
        # The explanation agrees with the compiled chain.
        self.assertEqual(e.attributes, chain(["tag", "filter"], self.reg)(EBGP, V4, key("8.8.8.0/24"), ATTRS))

    def test_rejected(self):
        """A rejected route names the rejecting term; later policies are not walked."""
        e = explain(chain(["filter", "tag"], self.reg), EBGP, V4, key("10.1.0.0/16"), ATTRS)
        self.assertFalse(e.accepted)
        self.assertEqual(e.decided_by, ("filter", "drop-ten"))
        self.assertEqual(len(e.policies), 1)

    def test_default_decides(self):
        """When no term decides, the policy's default is named."""
        reg = compile_snippet('[policies.d]\n[[policies.d.terms]]\nmatch = { med = 99 }\naction = "accept"\n')
        e = explain([reg["d"]], EBGP, V4, key("8.8.8.0/24"), ATTRS)
        self.assertEqual((e.decided_by, e.accepted), (("d", "default"), False))

    def test_builtin(self):
        """accept-all / reject-all appear as one opaque step."""
        e = explain(chain(["accept-all", "reject-all"], self.reg), EBGP, V4, key("8.8.8.0/24"), ATTRS)
        self.assertEqual(e.decided_by, ("reject-all", "reject-all"))
        self.assertFalse(e.accepted)

    def test_diff(self):
        """attribute_diff lists only the fields that differ."""
        self.assertEqual(attribute_diff(ATTRS, ATTRS), ())
        self.assertEqual(attribute_diff(ATTRS, ATTRS.replace(med=1)), (("med", 10, 1),))


class RehearseTests(SynchronousTestCase):
    """What a candidate policy would change, per peer and direction, without state."""

    def test_result(self):
        """Newly accepted, newly rejected and changed routes, with the diff, per (peer, direction)."""
        reg = compile_snippet(POLICIES)
        current = {
            ("192.0.2.2", "import"): chain(["filter"], reg),
            ("192.0.2.3", "export"): chain(["reject-all"], reg),
        }
        candidate = {
            ("192.0.2.2", "import"): chain(["filter2"], reg),
            ("192.0.2.3", "export"): chain(["filter"], reg),
        }
        routes = [
            (EBGP, "import", V4, key("10.0.0.0/8"), ATTRS),  # rejected by both
            (EBGP, "import", V4, key("10.1.0.0/16"), ATTRS),  # newly accepted
            (EBGP, "import", V4, key("8.0.0.0/8"), ATTRS),  # newly rejected
            (EBGP, "import", V4, key("8.8.8.0/24"), ATTRS),  # changed: med 5 -> 6
            (EBGP2, "export", V4, key("8.8.8.0/24"), ATTRS),  # newly accepted
        ]
        out = rehearse(
            lambda p, d: current[(p.address, d)],
            lambda p, d: candidate[(p.address, d)],
            routes,
            incomplete=lambda p, d: d == "import",
        )
        imp = out[("192.0.2.2", "import")]
        self.assertEqual(imp.newly_accepted, ((V4, key("10.1.0.0/16")),))
        self.assertEqual(imp.newly_rejected, ((V4, key("8.0.0.0/8")),))
        (change,) = imp.changed
        self.assertEqual((change.prefix, change.diff), (key("8.8.8.0/24"), (("med", 5, 6),)))
        self.assertEqual((imp.routes, imp.complete), (4, False))
        exp = out[("192.0.2.3", "export")]
        self.assertEqual(
            (exp.newly_accepted, exp.newly_rejected, exp.changed), (((V4, key("8.8.8.0/24")),), (), ())
        )
        self.assertTrue(exp.complete)

    def test_no_change(self):
        """The same policy as candidate changes nothing, and the input attributes are untouched."""
        reg = compile_snippet(POLICIES)
        before = ATTRS.key()
        out = rehearse(
            lambda p, d: chain(["tag"], reg),
            lambda p, d: chain(["tag"], reg),
            [(EBGP, "import", V4, key("8.8.8.0/24"), ATTRS)],
        )
        self.assertTrue(out[("192.0.2.2", "import")].unchanged)
        self.assertEqual(ATTRS.key(), before)
