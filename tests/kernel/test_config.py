"""The ``[kernel]`` config section (bgpd.config.KernelConfig), key by key."""

from __future__ import annotations

from twisted.trial.unittest import SynchronousTestCase

from bgpd.config import ConfigErrors, KernelConfig, parse_config

BASE = """
[bgp]
local_as = 65000
router_id = "192.0.2.1"
"""


class KernelConfigTests(SynchronousTestCase):
    def errors(self, text: str) -> list[str]:
        with self.assertRaises(ConfigErrors) as cm:
            parse_config(BASE + text)
        return [e.key for e in cm.exception.errors]

    def test_absent(self):
        """Without [kernel] nothing goes to the kernel."""
        self.assertIsNone(parse_config(BASE).kernel)

    def test_defaults(self):
        """An empty [kernel]: both families, table main, protocol 186, metric 20."""
        self.assertEqual(parse_config(BASE + "[kernel]\n").kernel, KernelConfig())
        self.assertEqual(KernelConfig().table, 254)

    def test_every_key(self):
        """Every key is taken as written."""
        k = parse_config(BASE + """
[kernel]
ipv4 = true
ipv6 = false
table = 1000
protocol = 200
metric = 7
ecmp = false
keep_on_stop = true
reconcile_time = 30
""").kernel
        self.assertEqual(k, KernelConfig(ipv4=True, ipv6=False, table=1000, protocol=200, metric=7,
                                         ecmp=False, keep_on_stop=True, reconcile_time=30.0))

    def test_table_names(self):
        """A table name resolves to its number; an unknown one is an error naming the key."""
        self.assertEqual(parse_config(BASE + '[kernel]\ntable = "main"\n').kernel.table, 254)
        self.assertEqual(self.errors('[kernel]\ntable = "no-such-table-xyz"\n'), ["kernel.table"])
        self.assertEqual(self.errors('[kernel]\ntable = 255\n'), ["kernel.table"])
        self.assertEqual(self.errors('[kernel]\ntable = 0\n'), ["kernel.table"])

    def test_bad_values(self):
        """Each wrong value is reported with its key."""
        got = self.errors("""
[kernel]
protocol = 2
metric = -1
ipv4 = "yes"
reconcile_time = -5
colour = 1
""")
        self.assertEqual(sorted(got), ["kernel.colour", "kernel.ipv4", "kernel.metric", "kernel.protocol",
                                       "kernel.reconcile_time"])

    def test_export_policy(self):
        """One name or a list of them; a name no policy has is an error naming the key."""
        pol = '[policies.k]\ndefault = "accept"\n'
        self.assertEqual(parse_config(BASE + pol + '[kernel]\nexport_policy = "k"\n').kernel.export_policy,
                         ("k",))
        self.assertEqual(parse_config(BASE + pol + '[kernel]\nexport_policy = ["k", "accept-all"]\n')
                         .kernel.export_policy, ("k", "accept-all"))
        self.assertEqual(parse_config(BASE + "[kernel]\n").kernel.export_policy, ())
        self.assertEqual(self.errors(pol + '[kernel]\nexport_policy = "nope"\n'), ["kernel.export_policy[0]"])
        self.assertEqual(self.errors('[kernel]\nexport_policy = ["k", 3]\n'), ["kernel.export_policy[1]"])
        self.assertEqual(self.errors('[kernel]\nexport_policy = 3\n'), ["kernel.export_policy"])
