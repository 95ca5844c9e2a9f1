"""The README's IXP route-server example: it loads, equals examples/ixp-route-server.toml, and filters.

A typical route-server import filter (bogons, too-specifics, long paths,
first AS, max-prefix: RFC 7947 route servers, RFC 8212 defaults).
"""

from __future__ import annotations

import os
import textwrap

from twisted.trial.unittest import SynchronousTestCase

from bgpd.config import load_config, parse_config
from bgpd.policy import chain, registry
from bgpd.rib.route import PeerInfo
from bgpd.wire.attributes import PathAttributes
from tests.policy.helpers import family_of, key

ROOT = os.path.dirname(os.path.dirname(os.path.dirname(os.path.abspath(__file__))))
EXAMPLE = os.path.join(ROOT, "examples", "ixp-route-server.toml")


def readme_example() -> str:
    with open(os.path.join(ROOT, "README.rst"), encoding="utf-8") as f:
        text = f.read()
    block = text.split(".. ixp-example-begin", 1)[1].split(".. ixp-example-end", 1)[0]
    body = block.split(".. code-block:: toml", 1)[1]
    return textwrap.dedent(body).strip("\n") + "\n"


PEER = PeerInfo(address="198.51.100.2", remote_as=3333, local_as=64500, router_id="198.51.100.2")
GOOD = PathAttributes(
    as_path=((2, (3333, 15169)),), next_hop="198.51.100.2", large_communities=((64500, 0, 1), (3333, 1, 1))
)


class ReadmeExampleTests(SynchronousTestCase):
    """The README's IXP example, exactly as written there."""

    def setUp(self):
        self.config = parse_config(readme_example())
        self.chain = chain(
            self.config.neighbors[0].import_policy, registry(self.config.sets, self.config.policies)
        )

    def route(self, prefix, attrs=GOOD):
        return self.chain(PEER, family_of(prefix), key(prefix), attrs)

    def test_same_as_example_file(self):
        """examples/ixp-route-server.toml is the README's block, byte for byte."""
        with open(EXAMPLE, encoding="utf-8") as f:
            self.assertEqual(f.read(), readme_example())
        self.assertEqual(load_config(EXAMPLE), self.config)

    def test_shape(self):
        """Ten terms, a route-server client with a max-prefix limit per family."""
        ((name, policy),) = self.config.policies
        self.assertEqual((name, len(policy.terms), policy.default), ("ixp-in", 10, "reject"))
        (n,) = self.config.neighbors
        self.assertTrue(n.route_server_client)
        self.assertEqual(n.max_prefix_for("ipv4-unicast").limit, 1000)
        self.assertEqual(n.max_prefix_for("ipv6-unicast").limit, 200)

    def test_accepts_registered(self):
        """A registered /24 is accepted, our control community scrubbed and the tag added."""
        out = self.route("193.0.4.0/24")
        self.assertEqual(out.large_communities, ((3333, 1, 1), (64500, 1, 3333)))
        self.assertIsNotNone(self.route("2001:67c:2e8::/48"))

    def test_rejects(self):
        """Bogons, too-specifics, bogon ASNs, long paths, a foreign first AS, unregistered, transit."""
        self.assertIsNone(self.route("10.1.0.0/16"))
        self.assertIsNone(self.route("0.0.0.0/0"))
        self.assertIsNone(self.route("2001:db8:1::/48"))
        self.assertIsNone(self.route("193.0.0.0/25"))
        self.assertIsNone(self.route("193.0.4.0/24", GOOD.replace(as_path=((2, (3333, 64512)),))))
        self.assertIsNone(self.route("193.0.4.0/24", GOOD.replace(as_path=((2, (3333,) + (15169,) * 50),))))
        self.assertIsNone(self.route("193.0.4.0/24", GOOD.replace(as_path=((2, (174, 15169)),))))
        self.assertIsNone(self.route("8.8.8.0/24"))
        self.assertIsNone(self.route("193.0.4.0/24", GOOD.replace(as_path=((2, (3333, 3356, 15169)),))))


class ManyTests(SynchronousTestCase):
    """Chain.many / CompiledPolicy.many give the per-prefix answers, for a whole UPDATE at once."""

    PREFIXES = ["193.0.4.0/24", "193.0.0.0/25", "10.0.0.0/8", "8.8.8.0/24", "193.0.1.0/24", "0.0.0.0/0"]
    PREFIXES6 = ["2001:67c:2e8::/48", "2001:db8::/32", "2001:67c:2e8::/49", "2a00::/16"]

    def check(self, c):
        for attrs in (
            GOOD,
            GOOD.replace(as_path=((2, (3333, 64512)),)),
            GOOD.replace(as_path=((2, (1, 2)),)),
        ):
            for prefixes, fam in ((self.PREFIXES, (1, 1)), (self.PREFIXES6, (2, 1))):
                keys = [key(p) for p in prefixes]
                want = [c(PEER, fam, k, attrs) for k in keys]
                self.assertEqual(c.many(PEER, fam, keys, attrs), want)

    def test_readme_chain(self):
        """The README's IXP chain, alone and between built-ins."""
        config = parse_config(readme_example())
        reg = registry(config.sets, config.policies)
        self.check(chain(["ixp-in"], reg))
        self.check(chain(["accept-all", "ixp-in", "accept-all"], reg))
        self.assertEqual(chain(["reject-all"], reg).many(PEER, (1, 1), [key("8.8.8.0/24")], GOOD), [None])

    def test_other_prefix_conditions(self):
        """A prefix_length condition next to the sets: still the per-prefix answers."""
        text = readme_example().replace(
            'name = "long-paths"\nmatch = { as_path_length = { ge = 51 } }',
            'name = "long-paths"\nmatch = { prefix_length = { ge = 24 }, med = 7 }',
        )
        config = parse_config(text)
        c = chain(["ixp-in"], registry(config.sets, config.policies))
        self.assertTrue(c.policies[0].depends_on_prefix)
        self.check(c)
        for attrs in (GOOD.replace(med=7),):
            keys = [key(p) for p in self.PREFIXES]
            self.assertEqual(c.many(PEER, (1, 1), keys, attrs), [c(PEER, (1, 1), k, attrs) for k in keys])
