"""Precedence: the config file is the base, the API's changes an overlay."""

from __future__ import annotations

import tomllib

from twisted.trial.unittest import SynchronousTestCase

from bgpd.config import BgpConfig, Config, ConfigErrors, NeighborConfig, parse_config
from bgpd.state.overlay import API_MARK, OriginateCache, effective_config, render_toml
from bgpd.state.store import Change

FILE = """
[bgp]
local_as = 65000
router_id = "192.0.2.1"
listen_addresses = []

[[neighbors]]
address = "192.0.2.2"
remote_as = 65002
import_policy = ["from-file"]
export_policy = ["accept-all"]
md5_password = "sekrit"

[[neighbors]]
address = "192.0.2.3"
remote_as = 65003

[[originate]]
prefix = "198.51.100.0/24"

[policies.from-file]
default = "accept"
"""


def put_neighbor(address: str, **extra: object) -> Change:
    return Change("neighbor", address, "put", {"address": address, "remote_as": 65009, **extra})


class EffectiveConfigTests(SynchronousTestCase):
    def setUp(self):
        self.base = parse_config(FILE)

    def test_no_overlay_is_the_file(self):
        """With no API changes the effective config is the file's, unchanged."""
        self.assertIs(effective_config(self.base, []), self.base)

    def test_api_neighbor_added_after_the_files(self):
        """A neighbor put for a new address is added after the file's neighbors, validated."""
        eff = effective_config(self.base, [put_neighbor("192.0.2.9")])
        self.assertEqual([n.address for n in eff.neighbors], ["192.0.2.2", "192.0.2.3", "192.0.2.9"])
        # RFC 8212 defaults are resolved as for a neighbor in the file
        self.assertEqual(eff.neighbor("192.0.2.9").import_policy, ("reject-all",))

    def test_api_neighbor_replaces_the_files_in_place(self):
        """A put for a file's neighbor (any spelling of it) replaces it, in its place."""
        eff = effective_config(self.base, [
            Change("neighbor", "192.0.2.2", "put", {"address": "192.0.2.2", "remote_as": 65022})])
        self.assertEqual([n.address for n in eff.neighbors], ["192.0.2.2", "192.0.2.3"])
        self.assertEqual(eff.neighbor("192.0.2.2").remote_as, 65022)

    def test_remove_drops_a_file_neighbor(self):
        """A remove drops the file's neighbor; a later put brings one back."""
        gone = Change("neighbor", "192.0.2.3", "remove")
        self.assertIsNone(effective_config(self.base, [gone]).neighbor("192.0.2.3"))
        back = effective_config(self.base, [gone, put_neighbor("192.0.2.3")])
        self.assertEqual(back.neighbor("192.0.2.3").remote_as, 65009)

    def test_originate_put_and_remove(self):
        """Originated paths are added, replaced by prefix, and withdrawn (a file's one too)."""
        eff = effective_config(self.base, [
            Change("originate", "203.0.113.0/24", "put", {"prefix": "203.0.113.0/24", "med": 7,
                                                          "communities": ["65000:1"]}),
            Change("originate", "198.51.100.0/24", "remove"),
        ])
        self.assertEqual([(o.prefix, o.med) for o in eff.originate], [("203.0.113.0/24", 7)])
        self.assertEqual(eff.originate[0].communities, (65000 << 16 | 1,))

    def test_policies_replaced_whole(self):
        """A policies put replaces [sets] and [policies] as a whole."""
        new = {"sets": {"prefix": {"mine": {"prefixes": ["203.0.113.0/24"]}}},
               "policies": {"from-file": {"default": "reject"}, "other": {"default": "accept"}}}
        eff = effective_config(self.base, [Change("policies", "", "put", new)])
        self.assertEqual([name for name, _ in eff.policies], ["from-file", "other"])
        self.assertEqual(dict(eff.policies)["from-file"].default, "reject")
        self.assertEqual([name for name, _ in eff.sets.prefix], ["mine"])

    def test_entry_that_no_longer_fits_names_the_key(self):
        """An API neighbor naming a policy the file dropped is an error at its key, marked as API."""
        overlay = [put_neighbor("192.0.2.9", import_policy=["from-file"])]
        self.assertEqual(effective_config(self.base, overlay).neighbor("192.0.2.9").import_policy,
                         ("from-file",))
        newfile = parse_config(FILE.replace('import_policy = ["from-file"]', "")
                               .replace("[policies.from-file]\ndefault = \"accept\"", ""))
        err = self.assertRaises(ConfigErrors, effective_config, newfile, overlay)
        self.assertEqual([e.key for e in err.errors], ["neighbors[2].import_policy[0]"])
        self.assertIn("set through the API", err.errors[0].reason)

    def test_file_errors_are_not_marked(self):
        """An error in a file entry, caused by replaced API policies, names the file's key unmarked."""
        err = self.assertRaises(ConfigErrors, effective_config, self.base,
                                [Change("policies", "", "put", {"sets": {}, "policies": {}})])
        self.assertEqual(err.errors[0].key, "neighbors[0].import_policy[0]")
        self.assertNotIn("set through the API", err.errors[0].reason)

    def test_bad_api_value_names_the_key(self):
        """A bad value in an API table is reported at its key in the effective document."""
        err = self.assertRaises(ConfigErrors, effective_config, self.base,
                                [put_neighbor("192.0.2.9", hold_time=2)])
        self.assertEqual(err.errors[0].key, "neighbors[2].hold_time")

    def test_config_built_without_a_document(self):
        """A Config built from records (no source) still takes a neighbor overlay."""
        base = Config(bgp=BgpConfig(local_as=65000, router_id="192.0.2.1"),
                      neighbors=[NeighborConfig(address="192.0.2.2", remote_as=65002, local_as=65000)])
        eff = effective_config(base, [put_neighbor("192.0.2.9")])
        self.assertEqual([n.address for n in eff.neighbors], ["192.0.2.2", "192.0.2.9"])
        self.assertEqual(eff.neighbor("192.0.2.2"), base.neighbor("192.0.2.2"))


class OriginateCacheTests(SynchronousTestCase):
    def setUp(self):
        self.base = parse_config(FILE)
        self.overlay = [
            put_neighbor("192.0.2.9"),
            Change("originate", "203.0.113.0/24", "put", {"prefix": "203.0.113.0/24", "med": 7}),
            Change("originate", "203.0.113.128/25", "put", {"prefix": "203.0.113.128/25"}),
        ]

    def test_same_result_with_and_without(self):
        """The cache changes how much is validated, not the result, on first and later calls."""
        cache = OriginateCache()
        cache.prime(self.base)
        plain = effective_config(self.base, self.overlay)
        self.assertEqual(effective_config(self.base, self.overlay, cache), plain)
        self.assertEqual(len(cache), 3)
        again = effective_config(self.base, self.overlay, cache)
        self.assertEqual(again, plain)
        self.assertEqual(again.source, plain.source)

    def test_fresh_table_errors_keep_their_index(self):
        """A bad table validated alone is reported at its place in the whole list, marked as API."""
        cache = OriginateCache()
        cache.prime(self.base)
        effective_config(self.base, self.overlay, cache)
        bad = [*self.overlay, Change("originate", "192.0.2.128/25", "put",
                                     {"prefix": "192.0.2.128/25", "med": -1})]
        want = self.assertRaises(ConfigErrors, effective_config, self.base, bad)
        got = self.assertRaises(ConfigErrors, effective_config, self.base, bad, cache)
        self.assertEqual([(e.key, e.reason) for e in got.errors], [(e.key, e.reason) for e in want.errors])
        self.assertEqual(got.errors[0].key, "originate[3].med")
        self.assertIn("set through the API", got.errors[0].reason)

    def test_forgets_tables_no_longer_there(self):
        """After a withdrawal the cache holds only the tables of the effective document."""
        cache = OriginateCache()
        effective_config(self.base, self.overlay, cache)
        effective_config(self.base, [*self.overlay, Change("originate", "203.0.113.0/24", "remove")], cache)
        self.assertEqual(len(cache), 2)


class RenderTomlTests(SynchronousTestCase):
    def setUp(self):
        self.base = parse_config(FILE)
        self.overlay = [
            put_neighbor("192.0.2.9", description='quote " and \\ and ünïcode', families=["ipv4-unicast"],
                         max_prefix={"ipv4-unicast": {"limit": 10}}),
            Change("originate", "203.0.113.0/24", "put", {"prefix": "203.0.113.0/24", "med": 7}),
        ]

    def test_round_trip(self):
        """The rendered TOML reads back (with secrets shown) to the effective document."""
        text = render_toml(self.base, self.overlay, hide_secrets=False)
        self.assertEqual(tomllib.loads(text), effective_config(self.base, self.overlay).source)
        self.assertEqual(parse_config(text), effective_config(self.base, self.overlay))

    def test_api_parts_marked(self):
        """Exactly the tables that came from the API follow the API mark."""
        text = render_toml(self.base, self.overlay)
        lines = text.splitlines()
        marked = [lines[i + 1] for i, line in enumerate(lines) if line == API_MARK]
        self.assertEqual(marked, ["[[neighbors]]", "[[originate]]"])
        after = [lines[i + 2] for i, line in enumerate(lines) if line == API_MARK]
        self.assertEqual(after, ['address = "192.0.2.9"', 'prefix = "203.0.113.0/24"'])

    def test_policies_marked_when_replaced(self):
        """Replaced policies are marked as the API's."""
        text = render_toml(self.base, [Change("policies", "", "put", {"policies": {"from-file": {}}})])
        self.assertIn(API_MARK + "\n[policies]", text)

    def test_secrets_hidden(self):
        """MD5 keys are printed as <hidden> by default."""
        text = render_toml(self.base, self.overlay)
        self.assertNotIn("sekrit", text)
        self.assertIn('md5_password = "<hidden>"', text)
