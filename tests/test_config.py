"""Tests for bgpd.config: TOML -> validated frozen records, every error naming its key."""

from __future__ import annotations

import copy
import os
import shutil
import tempfile
from typing import Any

from twisted.trial.unittest import SynchronousTestCase

from bgpd.config import (
    BgpConfig,
    Config,
    ConfigError,
    ConfigErrors,
    MaxPrefix,
    NeighborChanges,
    NeighborConfig,
    OriginateConfig,
    config_from_dict,
    load_config,
    parse_config,
)

EXAMPLE_FILE = os.path.join(os.path.dirname(__file__), os.pardir, "examples", "bgpd.toml")

ISSUE_EXAMPLE = """
[bgp]
local_as = 65000
router_id = "192.0.2.1"
listen_addresses = ["192.0.2.1", "2001:db8::1"]
listen_port = 179

[[neighbors]]
address = "192.0.2.2"
remote_as = 65002
description = "transit-a"
families = ["ipv4-unicast"]
import_policy = ["accept-all"]
export_policy = ["accept-all"]

[[neighbors]]
address = "2001:db8::2"
remote_as = 65002
families = ["ipv6-unicast"]
passive = true
hold_time = 90
md5_password = "s3cret"
import_policy = ["accept-all"]
export_policy = ["accept-all"]
"""

BASE_BGP = {"local_as": 65000, "router_id": "192.0.2.1"}
BASE_NEIGHBOR = {"address": "192.0.2.2", "remote_as": 65002}


def doc(bgp: dict[str, Any] | None = None, *neighbors: dict[str, Any]) -> dict[str, Any]:
    """A minimal valid document, with ``bgp`` keys and neighbor tables merged in."""
    d: dict[str, Any] = {"bgp": {**BASE_BGP, **(bgp or {})}}
    if neighbors:
        d["neighbors"] = [{**BASE_NEIGHBOR, **n} for n in neighbors]
    return d


def neighbor_doc(**keys: Any) -> dict[str, Any]:
    """A document with one neighbor, BASE_NEIGHBOR plus ``keys``."""
    return doc(None, keys)


class _Helpers(SynchronousTestCase):
    def errors(self, d: Any) -> list[tuple[str, str]]:
        """The (key, reason) pairs config_from_dict reports for ``d``; fails if it accepts."""
        err = self.assertRaises(ConfigErrors, config_from_dict, d)
        return [(e.key, e.reason) for e in err.errors]

    def assert_one_error(self, d: Any, key: str, *fragments: str) -> str:
        """Exactly one error, at ``key``, whose reason holds every fragment."""
        errors = self.errors(d)
        self.assertEqual(len(errors), 1, errors)
        got_key, reason = errors[0]
        self.assertEqual(got_key, key, errors)
        for fragment in fragments:
            self.assertIn(fragment, reason)
        return reason

    def one_neighbor(self, **keys: Any) -> NeighborConfig:
        """The NeighborConfig built from BASE_NEIGHBOR plus ``keys``."""
        (neighbor,) = config_from_dict(neighbor_doc(**keys)).neighbors
        return neighbor


class ErrorTypeTests(SynchronousTestCase):
    """ConfigError and ConfigErrors."""

    def test_str(self):
        """str() names the key and the reason."""
        err = ConfigError("neighbors[1].hold_time", "must be 0 or 3..65535, got 2")
        self.assertEqual(str(err), "config error at neighbors[1].hold_time: must be 0 or 3..65535, got 2")
        self.assertEqual(err.errors, [err])

    def test_errors_str_one_line_each(self):
        """ConfigErrors is a ConfigError whose str() has one line per error."""
        a, b = ConfigError("bgp.local_as", "bad"), ConfigError("bgp.router_id", "worse")
        err = ConfigErrors([a, b])
        self.assertIsInstance(err, ConfigError)
        self.assertEqual(err.errors, [a, b])
        self.assertEqual((err.key, err.reason), ("bgp.local_as", "bad"))
        self.assertEqual(
            str(err).splitlines(),
            ["config error at bgp.local_as: bad", "config error at bgp.router_id: worse"],
        )

    def test_errors_needs_one(self):
        """An empty ConfigErrors is a programming error."""
        self.assertRaises(ValueError, ConfigErrors, [])

    def test_exact_message_for_hold_time(self):
        """The hold-time message reads as documented."""
        d = doc(None, {}, {"hold_time": 2, "address": "192.0.2.3"})
        err = self.assertRaises(ConfigErrors, config_from_dict, d)
        self.assertEqual(
            str(err),
            "config error at neighbors[1].hold_time: must be 0 or an integer from 3 to 65535, got 2",
        )


class IssueExampleTests(SynchronousTestCase):
    """The example configuration from the issue."""

    def setUp(self):
        self.config = parse_config(ISSUE_EXAMPLE)

    def test_bgp(self):
        """[bgp] values and defaults."""
        self.assertEqual(
            self.config.bgp,
            BgpConfig(
                local_as=65000,
                router_id="192.0.2.1",
                listen_addresses=("192.0.2.1", "2001:db8::1"),
                listen_port=179,
                hold_time=90,
                connect_retry_time=120,
                idle_hold_time=5,
                max_idle_hold_time=300,
                cluster_id="192.0.2.1",
            ),
        )

    def test_ipv4_neighbor(self):
        """The first neighbor: eBGP, IPv4, defaults inherited from [bgp]."""
        n = self.config.neighbors[0]
        self.assertEqual(n.address, "192.0.2.2")
        self.assertEqual((n.remote_as, n.local_as, n.is_ebgp), (65002, 65000, True))
        self.assertEqual(n.description, "transit-a")
        self.assertEqual(n.families, ("ipv4-unicast",))
        self.assertEqual((n.import_policy, n.export_policy), (("accept-all",), ("accept-all",)))
        self.assertEqual((n.passive, n.enabled, n.hold_time, n.port), (False, True, 90, 179))
        self.assertIsNone(n.md5_password)
        self.assertEqual(n.ip_version, 4)

    def test_ipv6_neighbor(self):
        """The second neighbor: IPv6, passive, with an MD5 key."""
        n = self.config.neighbors[1]
        self.assertEqual(n.address, "2001:db8::2")
        self.assertEqual(n.remote_as, 65002)
        self.assertEqual(n.families, ("ipv6-unicast",))
        self.assertTrue(n.passive)
        self.assertEqual(n.hold_time, 90)
        self.assertEqual(n.md5_password, "s3cret")
        self.assertIsNone(n.description)
        self.assertEqual(n.ip_version, 6)

    def test_lookup(self):
        """Neighbors are found by any spelling of their address."""
        self.assertIs(self.config.neighbor("2001:DB8:0::2"), self.config.neighbors[1])
        self.assertIs(self.config.neighbor("192.0.2.2"), self.config.neighbors[0])
        self.assertIs(self.config.neighbor("::ffff:192.0.2.2"), self.config.neighbors[0])
        self.assertIsNone(self.config.neighbor("192.0.2.99"))
        self.assertIsNone(self.config.neighbor("not an address"))

    def test_equal_and_hashable(self):
        """Parsing twice gives equal, hashable configs."""
        again = parse_config(ISSUE_EXAMPLE)
        self.assertEqual(again, self.config)
        self.assertEqual(hash(again), hash(self.config))


class ExampleFileTests(SynchronousTestCase):
    """examples/bgpd.toml, the README's example."""

    def test_loads(self):
        """It loads: loopback, port 1179, one passive eBGP neighbor accepting all."""
        config = load_config(EXAMPLE_FILE)
        self.assertEqual(config.bgp.listen_addresses, ("127.0.0.1",))
        self.assertEqual(config.bgp.listen_port, 1179)
        self.assertEqual((config.bgp.local_as, config.bgp.router_id), (65000, "192.0.2.1"))
        (n,) = config.neighbors
        self.assertEqual((n.address, n.remote_as, n.passive), ("127.0.0.2", 65001, True))
        self.assertEqual((n.import_policy, n.export_policy), (("accept-all",), ("accept-all",)))
        self.assertTrue(n.description)

    def test_originates_a_route(self):
        """It announces 198.51.100.0/24 with one community."""
        (route,) = load_config(EXAMPLE_FILE).originate
        self.assertEqual(
            (route.prefix, route.family, route.next_hop), ("198.51.100.0/24", "ipv4-unicast", None)
        )
        self.assertEqual(route.communities, (65000 << 16 | 100,))


class BgpTableTests(_Helpers):
    """The [bgp] table."""

    def test_every_key(self):
        """Every [bgp] key is stored, addresses normalised."""
        bgp = config_from_dict(
            doc(
                {
                    "local_as": 4294967295,
                    "router_id": "198.51.100.1",
                    "listen_addresses": ["2001:DB8:0:0::1", "192.0.2.1"],
                    "listen_port": 0,
                    "hold_time": 3,
                    "connect_retry_time": 1,
                    "idle_hold_time": 0,
                    "max_idle_hold_time": 0,
                    "cluster_id": "192.0.2.9",
                }
            )
        ).bgp
        self.assertEqual(
            bgp,
            BgpConfig(
                local_as=4294967295,
                router_id="198.51.100.1",
                listen_addresses=("2001:db8::1", "192.0.2.1"),
                listen_port=0,
                hold_time=3,
                connect_retry_time=1,
                idle_hold_time=0,
                max_idle_hold_time=0,
                cluster_id="192.0.2.9",
            ),
        )

    def test_defaults(self):
        """Only local_as and router_id are needed; there may be no neighbors."""
        config = config_from_dict(doc())
        self.assertEqual(config.bgp.listen_addresses, ("0.0.0.0", "::"))
        self.assertEqual(config.bgp.listen_port, 179)
        self.assertEqual(config.bgp.hold_time, 90)
        self.assertEqual(config.bgp.connect_retry_time, 120)
        self.assertEqual((config.bgp.idle_hold_time, config.bgp.max_idle_hold_time), (5, 300))
        self.assertEqual(config.bgp.cluster_id, "192.0.2.1")
        self.assertEqual(config.neighbors, ())

    def test_no_listen(self):
        """listen_addresses = [] means do not listen."""
        self.assertEqual(config_from_dict(doc({"listen_addresses": []})).bgp.listen_addresses, ())

    def test_hold_time_zero(self):
        """Hold time 0 (no keepalives) and 65535 are valid."""
        for value in (0, 65535):
            self.assertEqual(config_from_dict(doc({"hold_time": value})).bgp.hold_time, value)

    def test_bad_values(self):
        """Each bad [bgp] value is reported at its key with the reason."""
        cases = [
            ("local_as", 0, "bgp.local_as", "from 1 to 4294967295, got 0"),
            ("local_as", 4294967296, "bgp.local_as", "got 4294967296"),
            ("local_as", "65000", "bgp.local_as", "got a string ('65000')"),
            ("local_as", True, "bgp.local_as", "got a boolean (true)"),
            ("local_as", 1.0, "bgp.local_as", "got a float"),
            ("local_as", 23456, "bgp.local_as", "AS_TRANS"),
            ("router_id", "0.0.0.0", "bgp.router_id", "must not be 0.0.0.0"),
            ("router_id", "192.0.2", "bgp.router_id", "IPv4 dotted quad"),
            ("router_id", "192.0.2.01", "bgp.router_id", "IPv4 dotted quad"),
            ("router_id", "2001:db8::1", "bgp.router_id", "IPv4 dotted quad"),
            ("router_id", 3221225985, "bgp.router_id", "must be a string"),
            ("listen_addresses", "0.0.0.0", "bgp.listen_addresses", "array of strings"),
            ("listen_addresses", [1], "bgp.listen_addresses[0]", "got an integer (1)"),
            ("listen_addresses", ["::", "nope"], "bgp.listen_addresses[1]", "IPv4 or IPv6"),
            ("listen_addresses", ["::", "0::0"], "bgp.listen_addresses[1]", "duplicate"),
            ("listen_port", -1, "bgp.listen_port", "from 0 to 65535, got -1"),
            ("listen_port", 65536, "bgp.listen_port", "got 65536"),
            ("listen_port", False, "bgp.listen_port", "got a boolean (false)"),
            ("hold_time", 1, "bgp.hold_time", "0 or an integer from 3 to 65535, got 1"),
            ("hold_time", 65536, "bgp.hold_time", "got 65536"),
            ("hold_time", True, "bgp.hold_time", "got a boolean (true)"),
            ("hold_time", "90", "bgp.hold_time", "got a string"),
            ("connect_retry_time", 0, "bgp.connect_retry_time", ">= 1, got 0"),
            ("idle_hold_time", -1, "bgp.idle_hold_time", ">= 0, got -1"),
            ("max_idle_hold_time", 4, "bgp.max_idle_hold_time", "idle_hold_time (5), got 4"),
            ("cluster_id", "nope", "bgp.cluster_id", "IPv4 dotted quad"),
            ("cluster_id", "0.0.0.0", "bgp.cluster_id", "must not be 0.0.0.0"),
        ]
        for name, value, key, fragment in cases:
            errors = self.errors(doc({name: value}))
            self.assertEqual(len(errors), 1, (name, value, errors))
            self.assertEqual(errors[0][0], key, (name, value, errors))
            self.assertIn(fragment, errors[0][1], (name, value))

    def test_required(self):
        """local_as and router_id are required."""
        errors = self.errors({"bgp": {}})
        self.assertEqual(
            errors,
            [
                ("bgp.local_as", "required key is missing"),
                ("bgp.router_id", "required key is missing"),
            ],
        )

    def test_missing_table(self):
        """A document without [bgp] is an error naming bgp."""
        self.assert_one_error({}, "bgp", "required table [bgp] is missing")

    def test_not_a_table(self):
        """bgp = 1 is not a table."""
        self.assert_one_error({"bgp": 1}, "bgp", "must be a table, got an integer (1)")

    def test_unknown_key(self):
        """An unknown key in [bgp] is named, with the valid keys listed."""
        reason = self.assert_one_error(doc({"as": 1}), "bgp.as", "unknown key", "local_as")
        self.assertIn("cluster_id", reason)

    def test_unknown_key_suggestion(self):
        """A near miss suggests the intended key."""
        self.assert_one_error(doc({"holdtime": 90}), "bgp.holdtime", "did you mean 'hold_time'?")


class TopLevelTests(_Helpers):
    """The document as a whole."""

    def test_unknown_key(self):
        """An unknown top-level key is named, with the valid ones listed."""
        d = doc()
        d["neighbours"] = []
        self.assert_one_error(d, "neighbours", "unknown key", "bgp, neighbors")

    def test_unknown_quoted_key(self):
        """Keys that are not bare TOML keys are quoted in the path."""
        d = doc()
        d["bgp"]["a b"] = 1
        self.assert_one_error(d, 'bgp."a b"', "unknown key")

    def test_neighbors_not_array(self):
        """[neighbors] instead of [[neighbors]] is an error."""
        d = doc()
        d["neighbors"] = dict(BASE_NEIGHBOR)
        self.assert_one_error(d, "neighbors", "array of tables ([[neighbors]])")

    def test_neighbor_not_table(self):
        """Each neighbors entry must be a table."""
        d = doc()
        d["neighbors"] = [1]
        self.assert_one_error(d, "neighbors[0]", "must be a table")

    def test_not_a_mapping(self):
        """config_from_dict of a non-table is an error, not a crash."""
        self.assert_one_error([], "<document>", "must be a table, got an array")


class NeighborTests(_Helpers):
    """[[neighbors]] tables."""

    def test_every_key(self):
        """Every neighbor key is stored."""
        n = self.one_neighbor(
            address="2001:DB8::0:2",
            remote_as=65002,
            local_as=64999,
            description="transit-a",
            enabled=False,
            passive=True,
            local_address="2001:db8:0::1",
            port=1179,
            hold_time=0,
            connect_retry_time=30,
            idle_hold_time=1,
            max_idle_hold_time=60,
            delay_open_time=240,
            families=["ipv6-unicast", "ipv4-unicast"],
            md5_password="x" * 80,
            ttl_security=254,
            max_prefix={
                "ipv6-unicast": {"limit": 200000, "warning_percent": 100, "restart_time": 30},
                "ipv4-unicast": {"limit": 1},
            },
            import_policy=["reject-all", "accept-all"],
            export_policy=["reject-all"],
            route_reflector_client=False,
            route_server_client=True,
            next_hop_self=True,
            role="customer",
            strict_role=True,
            add_path="both",
            graceful_restart=False,
            graceful_restart_time=4095,
            extended_message=False,
            route_refresh=False,
        )
        self.assertEqual(
            n,
            NeighborConfig(
                address="2001:db8::2",
                remote_as=65002,
                local_as=64999,
                description="transit-a",
                enabled=False,
                passive=True,
                local_address="2001:db8::1",
                port=1179,
                hold_time=0,
                connect_retry_time=30,
                idle_hold_time=1,
                max_idle_hold_time=60,
                delay_open_time=240,
                families=("ipv6-unicast", "ipv4-unicast"),
                md5_password="x" * 80,
                ttl_security=254,
                max_prefix=(
                    ("ipv4-unicast", MaxPrefix(1, 90, 0)),
                    ("ipv6-unicast", MaxPrefix(200000, 100, 30)),
                ),
                import_policy=("reject-all", "accept-all"),
                export_policy=("reject-all",),
                route_reflector_client=False,
                route_server_client=True,
                next_hop_self=True,
                role="customer",
                strict_role=True,
                add_path="both",
                graceful_restart=False,
                graceful_restart_time=4095,
                extended_message=False,
                route_refresh=False,
            ),
        )
        self.assertEqual(n.max_prefix_for("ipv4-unicast"), MaxPrefix(1, 90, 0))

    def test_defaults(self):
        """Absent keys take the documented defaults."""
        n = self.one_neighbor()
        self.assertEqual(
            (n.description, n.enabled, n.passive, n.local_address, n.port),
            (None, True, False, None, 179),
        )
        self.assertEqual((n.delay_open_time, n.md5_password, n.ttl_security), (0, None, None))
        self.assertEqual(n.families, ("ipv4-unicast",))
        self.assertEqual(n.max_prefix, ())
        self.assertIsNone(n.max_prefix_for("ipv4-unicast"))
        self.assertEqual(
            (n.route_reflector_client, n.route_server_client, n.next_hop_self),
            (False, False, False),
        )
        self.assertEqual((n.role, n.strict_role, n.add_path), (None, False, "off"))
        self.assertEqual((n.graceful_restart, n.graceful_restart_time), (True, 120))
        self.assertEqual((n.extended_message, n.route_refresh), (True, True))
        self.assertFalse(n.extended_next_hop)

    def test_extended_next_hop(self):
        """extended_next_hop (RFC 8950): a boolean, and only with ipv4-unicast among the families."""
        n = self.one_neighbor(address="2001:db8::2", families=["ipv4-unicast", "ipv6-unicast"],
                              extended_next_hop=True)
        self.assertTrue(n.extended_next_hop)
        self.assertEqual(self.errors(neighbor_doc(extended_next_hop="yes")),
                         [("neighbors[0].extended_next_hop",
                           "must be true or false, got a string ('yes')")])
        [(key, reason)] = self.errors(neighbor_doc(address="2001:db8::2", extended_next_hop=True))
        self.assertEqual(key, "neighbors[0].extended_next_hop")
        self.assertIn("needs 'ipv4-unicast' in families", reason)

    def test_inherits_from_bgp(self):
        """local_as and the timers default to the [bgp] values."""
        bgp = {
            "hold_time": 30,
            "connect_retry_time": 10,
            "idle_hold_time": 2,
            "max_idle_hold_time": 20,
        }
        (n,) = config_from_dict(doc(bgp, {})).neighbors
        self.assertEqual(
            (n.local_as, n.hold_time, n.connect_retry_time, n.idle_hold_time),
            (65000, 30, 10, 2),
        )
        self.assertEqual(n.max_idle_hold_time, 20)

    def test_ipv6_default_family(self):
        """An IPv6 neighbor defaults to ipv6-unicast."""
        self.assertEqual(self.one_neighbor(address="2001:db8::2").families, ("ipv6-unicast",))

    def test_cross_family(self):
        """ipv6-unicast over an IPv4 session is allowed."""
        n = self.one_neighbor(families=["ipv6-unicast"])
        self.assertEqual((n.ip_version, n.families), (4, ("ipv6-unicast",)))

    def test_scoped_link_local(self):
        """A link-local neighbor with a zone is accepted."""
        self.assertEqual(self.one_neighbor(address="FE80::1%eth0").address, "fe80::1%eth0")

    def test_ibgp(self):
        """remote_as equal to the local AS is iBGP."""
        self.assertFalse(self.one_neighbor(remote_as=65000).is_ebgp)
        self.assertTrue(self.one_neighbor(remote_as=65000, local_as=64999).is_ebgp)

    def test_policy_defaults_rfc8212(self):
        """With no policy, eBGP rejects both ways and iBGP accepts (RFC 8212)."""
        ebgp = self.one_neighbor()
        self.assertEqual((ebgp.import_policy, ebgp.export_policy), (("reject-all",),) * 2)
        ibgp = self.one_neighbor(remote_as=65000)
        self.assertEqual((ibgp.import_policy, ibgp.export_policy), (("accept-all",),) * 2)

    def test_md5_multibyte(self):
        """The MD5 key limit counts UTF-8 bytes, not characters."""
        self.assertEqual(self.one_neighbor(md5_password="é" * 40).md5_password, "é" * 40)
        self.assert_one_error(
            neighbor_doc(md5_password="é" * 41), "neighbors[0].md5_password", "got 82 bytes"
        )

    def test_md5_not_echoed(self):
        """Neither an error message nor repr() shows the MD5 key."""
        reason = self.assert_one_error(
            neighbor_doc(md5_password="topsecret" * 9), "neighbors[0].md5_password", "1 to 80"
        )
        self.assertNotIn("topsecret", reason)
        n = self.one_neighbor(md5_password="topsecret")
        self.assertNotIn("topsecret", repr(n))
        self.assertIn("<hidden>", repr(n))

    def test_bad_values(self):
        """Each bad neighbor value is reported at its key with the reason."""
        cases = [
            ("address", "nope", "address", "IPv4 or IPv6 address, got a string ('nope')"),
            ("address", "192.0.2.256", "address", "IPv4 or IPv6"),
            ("address", 5, "address", "must be a string, got an integer (5)"),
            ("address", "0.0.0.0", "address", "unicast host address"),
            ("address", "::", "address", "unicast host address"),
            ("address", "224.0.0.5", "address", "unicast host address"),
            ("address", "::ffff:192.0.2.2", "address", "write the IPv4 address 192.0.2.2"),
            ("address", "fe80::1", "address", "needs a zone"),
            ("remote_as", 0, "remote_as", "from 1 to 4294967295, got 0"),
            ("remote_as", True, "remote_as", "got a boolean (true)"),
            ("remote_as", "65002", "remote_as", "got a string"),
            ("remote_as", 23456, "remote_as", "AS_TRANS"),
            ("local_as", 4294967296, "local_as", "got 4294967296"),
            ("description", 5, "description", "must be a string"),
            ("enabled", 1, "enabled", "true or false, got an integer (1)"),
            ("passive", "yes", "passive", "true or false, got a string"),
            ("local_address", "nope", "local_address", "IPv4 or IPv6"),
            ("local_address", "0.0.0.0", "local_address", "unicast host address"),
            ("local_address", "2001:db8::1", "local_address", "must be an IPv4 address"),
            ("port", 0, "port", "from 1 to 65535, got 0"),
            ("port", 65536, "port", "got 65536"),
            ("hold_time", 2, "hold_time", "0 or an integer from 3 to 65535, got 2"),
            ("hold_time", True, "hold_time", "got a boolean (true)"),
            ("connect_retry_time", 0, "connect_retry_time", ">= 1, got 0"),
            ("idle_hold_time", 600, "max_idle_hold_time", "(from bgp.max_idle_hold_time)"),
            ("max_idle_hold_time", 4, "max_idle_hold_time", "idle_hold_time (5), got 4"),
            ("delay_open_time", 241, "delay_open_time", "from 0 to 240, got 241"),
            ("delay_open_time", -1, "delay_open_time", "got -1"),
            ("families", "ipv4-unicast", "families", "array of strings, got a string"),
            ("families", [], "families", "at least one of ipv4-unicast, ipv6-unicast"),
            ("families", [4], "families[0]", "must be a string"),
            ("families", ["ipv4-multicast"], "families[0]", "unknown family 'ipv4-multicast'"),
            ("families", ["ipv4-unicast"] * 2, "families[1]", "duplicate family"),
            ("md5_password", "", "md5_password", "1 to 80 bytes long, got 0 bytes"),
            ("md5_password", "x" * 81, "md5_password", "got 81 bytes"),
            ("md5_password", 1234, "md5_password", "must be a string"),
            ("ttl_security", 0, "ttl_security", "from 1 to 254, got 0"),
            ("ttl_security", 255, "ttl_security", "got 255"),
            ("ttl_security", True, "ttl_security", "got a boolean"),
            ("import_policy", "accept-all", "import_policy", "array of strings"),
            ("import_policy", [], "import_policy", "at least one policy"),
            ("import_policy", ["mine"], "import_policy[0]", "unknown policy 'mine'"),
            ("export_policy", ["accept-all", "x"], "export_policy[1]", "unknown policy 'x'"),
            ("export_policy", [True], "export_policy[0]", "must be a string"),
            ("route_reflector_client", 0, "route_reflector_client", "true or false"),
            ("route_server_client", "no", "route_server_client", "true or false"),
            ("next_hop_self", 1, "next_hop_self", "true or false"),
            ("role", "boss", "role", "one of provider, rs, rs-client, customer, peer"),
            ("role", 1, "role", "must be a string"),
            ("strict_role", True, "strict_role", "needs a role"),
            ("add_path", "sometimes", "add_path", "one of off, receive, send, both"),
            ("add_path", True, "add_path", "must be a string"),
            ("graceful_restart", 1, "graceful_restart", "true or false"),
            ("graceful_restart_time", 4096, "graceful_restart_time", "0 to 4095, got 4096"),
            ("extended_message", "true", "extended_message", "true or false"),
            ("route_refresh", None, "route_refresh", "true or false"),
        ]
        for name, value, key, fragment in cases:
            errors = self.errors(neighbor_doc(**{name: value}))
            self.assertEqual(len(errors), 1, (name, value, errors))
            self.assertEqual(errors[0][0], f"neighbors[0].{key}", (name, value, errors))
            self.assertIn(fragment, errors[0][1], (name, value))

    def test_required(self):
        """address and remote_as are required."""
        d = doc()
        d["neighbors"] = [{}]
        self.assertEqual(
            self.errors(d),
            [
                ("neighbors[0].address", "required key is missing"),
                ("neighbors[0].remote_as", "required key is missing"),
            ],
        )

    def test_unknown_key(self):
        """An unknown neighbor key is named, with the valid keys listed."""
        self.assert_one_error(neighbor_doc(peer_as=1), "neighbors[0].peer_as", "unknown key", "remote_as")

    def test_local_address_family_mismatch_ipv6(self):
        """An IPv4 local_address for an IPv6 neighbor is an error."""
        self.assert_one_error(
            neighbor_doc(address="2001:db8::2", local_address="192.0.2.1"),
            "neighbors[0].local_address",
            "must be an IPv6 address like the neighbor address 2001:db8::2, got 192.0.2.1",
        )

    def test_role_on_ibgp(self):
        """A role on an iBGP session is an error (RFC 9234)."""
        self.assert_one_error(
            neighbor_doc(remote_as=65000, role="peer"), "neighbors[0].role", "eBGP sessions only"
        )

    def test_role_with_local_as_override(self):
        """eBGP-ness follows the neighbor's own local_as."""
        n = self.one_neighbor(remote_as=65000, local_as=64999, role="peer", strict_role=True)
        self.assertEqual((n.role, n.strict_role), ("peer", True))
        self.assert_one_error(
            neighbor_doc(local_as=65002, role="peer"), "neighbors[0].role", "eBGP sessions only"
        )

    def test_route_reflector_client_on_ebgp(self):
        """Route reflection is for iBGP neighbors only."""
        self.assert_one_error(
            neighbor_doc(route_reflector_client=True),
            "neighbors[0].route_reflector_client",
            "iBGP only",
        )
        self.assertTrue(
            self.one_neighbor(remote_as=65000, route_reflector_client=True).route_reflector_client
        )

    def test_route_server_client_on_ibgp(self):
        """Route-server clients are eBGP neighbors only."""
        self.assert_one_error(
            neighbor_doc(remote_as=65000, route_server_client=True),
            "neighbors[0].route_server_client",
            "eBGP peers only",
        )

    def test_neighbor_timer_order(self):
        """A neighbor's own idle_hold_time above its own max_idle_hold_time is an error."""
        self.assert_one_error(
            neighbor_doc(idle_hold_time=10, max_idle_hold_time=9),
            "neighbors[0].max_idle_hold_time",
            "must be >= idle_hold_time (10), got 9",
        )

    def test_boundaries(self):
        """The ends of each range are accepted."""
        n = self.one_neighbor(
            hold_time=3,
            port=1,
            ttl_security=1,
            delay_open_time=0,
            graceful_restart_time=0,
            md5_password="x",
            remote_as=1,
        )
        self.assertEqual((n.hold_time, n.port, n.ttl_security), (3, 1, 1))
        self.assertEqual((n.graceful_restart_time, n.remote_as), (0, 1))
        self.assertEqual(self.one_neighbor(port=65535, hold_time=65535).port, 65535)


class DuplicateNeighborTests(_Helpers):
    """Two neighbors at the same address."""

    def test_ipv4(self):
        """The second of two identical IPv4 addresses is reported."""
        self.assert_one_error(
            doc(None, {}, {"remote_as": 65003}),
            "neighbors[1].address",
            "duplicate neighbor 192.0.2.2 (also neighbors[0].address)",
        )

    def test_ipv6_spellings(self):
        """2001:db8::2 and 2001:DB8:0::2 are the same neighbor."""
        self.assert_one_error(
            doc(None, {"address": "2001:db8::2"}, {"address": "2001:DB8:0::2"}),
            "neighbors[1].address",
            "duplicate neighbor 2001:db8::2",
        )

    def test_link_local_on_two_links(self):
        """fe80::2 on eth0 and on eth1 are two neighbors, each found by its zone."""
        c = config_from_dict(doc(None, {"address": "fe80::2%eth0"}, {"address": "fe80::2%eth1",
                                                                       "remote_as": 65003}))
        self.assertEqual([n.address for n in c.neighbors], ["fe80::2%eth0", "fe80::2%eth1"])
        self.assertEqual(c.neighbor("FE80::2%eth1").remote_as, 65003)
        self.assertIsNone(c.neighbor("fe80::2"))

    def test_global_zone_is_dropped(self):
        """A zone on a global address is no part of it: 2001:db8::2%eth0 duplicates 2001:db8::2."""
        self.assert_one_error(
            doc(None, {"address": "2001:db8::2"}, {"address": "2001:db8::2%eth0"}),
            "neighbors[1].address",
            "duplicate neighbor 2001:db8::2",
        )

    def test_reported_alongside_other_errors(self):
        """A duplicate is reported even when that neighbor has another error."""
        errors = self.errors(doc(None, {}, {"hold_time": 1}))
        self.assertEqual([key for key, _ in errors], ["neighbors[1].hold_time", "neighbors[1].address"])


class MaxPrefixTests(_Helpers):
    """max_prefix tables."""

    def test_defaults(self):
        """Only limit is needed; warning at 90 %, stay down after the limit."""
        n = self.one_neighbor(max_prefix={"ipv4-unicast": {"limit": 10}})
        self.assertEqual(n.max_prefix, (("ipv4-unicast", MaxPrefix(10, 90, 0)),))

    def test_bad_values(self):
        """Each bad max_prefix value is reported at its key."""
        key = "neighbors[0].max_prefix.ipv4-unicast"
        cases = [
            ({"limit": 0}, f"{key}.limit", ">= 1, got 0"),
            ({"limit": True}, f"{key}.limit", "got a boolean"),
            ({}, f"{key}.limit", "required key is missing"),
            ({"limit": 1, "warning_percent": 0}, f"{key}.warning_percent", "from 1 to 100"),
            ({"limit": 1, "warning_percent": 101}, f"{key}.warning_percent", "got 101"),
            ({"limit": 1, "restart_time": -1}, f"{key}.restart_time", ">= 0, got -1"),
            ({"limit": 1, "restart": 5}, f"{key}.restart", "unknown key"),
            (5, key, "must be a table"),
        ]
        for value, want_key, fragment in cases:
            errors = self.errors(neighbor_doc(max_prefix={"ipv4-unicast": value}))
            self.assertEqual(len(errors), 1, (value, errors))
            self.assertEqual(errors[0][0], want_key, (value, errors))
            self.assertIn(fragment, errors[0][1], value)

    def test_not_a_table(self):
        """max_prefix must be a table of families."""
        self.assert_one_error(neighbor_doc(max_prefix=1000), "neighbors[0].max_prefix", "must be a table")

    def test_unknown_family(self):
        """An unknown family in max_prefix is an unknown key."""
        self.assert_one_error(
            neighbor_doc(max_prefix={"ipv4-flowspec": {"limit": 1}}),
            "neighbors[0].max_prefix.ipv4-flowspec",
            "unknown key",
            "ipv4-unicast, ipv6-unicast",
        )

    def test_family_not_negotiated(self):
        """A limit for a family the neighbor does not carry is an error."""
        self.assert_one_error(
            neighbor_doc(max_prefix={"ipv6-unicast": {"limit": 1}}),
            "neighbors[0].max_prefix.ipv6-unicast",
            "not in this neighbor's families (ipv4-unicast)",
        )


class MultipleErrorsTests(_Helpers):
    """All errors are collected, not just the first."""

    def test_collects_everything(self):
        """Errors in [bgp] and in several neighbors come out together, in order."""
        d = doc(
            {"hold_time": True, "colour": "blue"},
            {"hold_time": 2},
            {"address": "2001:db8::2", "import_policy": ["mine"], "local_address": "192.0.2.1"},
        )
        err = self.assertRaises(ConfigErrors, config_from_dict, d)
        self.assertEqual(
            [e.key for e in err.errors],
            [
                "bgp.colour",
                "bgp.hold_time",
                "neighbors[0].hold_time",
                "neighbors[1].local_address",
                "neighbors[1].import_policy[0]",
            ],
        )
        self.assertEqual(len(str(err).splitlines()), 5)
        self.assertTrue(all(line.startswith("config error at ") for line in str(err).splitlines()))

    def test_neighbors_checked_without_bgp(self):
        """Neighbor errors are reported even when [bgp] is broken."""
        d = doc({"local_as": 0}, {"port": 0})
        self.assertEqual([key for key, _ in self.errors(d)], ["bgp.local_as", "neighbors[0].port"])

    def test_one_error_is_still_errors(self):
        """A single problem is raised as a ConfigErrors of one."""
        err = self.assertRaises(ConfigErrors, config_from_dict, doc({"listen_port": -1}))
        self.assertEqual(len(err.errors), 1)
        self.assertEqual(str(err), str(err.errors[0]))


class ParseAndLoadTests(SynchronousTestCase):
    """Text and files: syntax errors, missing files."""

    def setUp(self):
        # Not self.mktemp(): under pytest that writes into the checkout.
        self.tmp = tempfile.mkdtemp(prefix="bgpd-test-config-")
        self.addCleanup(shutil.rmtree, self.tmp, ignore_errors=True)

    def tmp_file(self):
        """A path in this test's temporary directory that does not exist yet."""
        return os.path.join(self.tmp, f"file{len(os.listdir(self.tmp))}")

    def test_syntax_error(self):
        """A TOML syntax error is a ConfigError at the source, with line and column."""
        err = self.assertRaises(
            ConfigError, parse_config, '[bgp]\nlocal_as = 65000\nrouter_id = "192.0.2.1\n'
        )
        self.assertNotIsInstance(err, ConfigErrors)
        self.assertEqual(err.key, "<string>")
        self.assertIn("TOML syntax error", err.reason)
        self.assertEqual(err.line, 3)
        self.assertIsInstance(err.column, int)
        self.assertTrue(str(err).startswith("config error at <string>: TOML syntax error"))

    def test_syntax_error_in_file(self):
        """A syntax error in a file names the file."""
        path = self.tmp_file()
        with open(path, "w") as f:
            f.write("[bgp\n")
        err = self.assertRaises(ConfigError, load_config, path)
        self.assertEqual((err.key, err.line, err.column), (path, 1, 5))

    def test_duplicate_key_is_syntax_error(self):
        """A key written twice is rejected by TOML itself."""
        err = self.assertRaises(ConfigError, parse_config, "[bgp]\nlocal_as = 1\nlocal_as = 2\n")
        self.assertEqual(err.line, 3)

    def test_missing_file(self):
        """A missing file is a ConfigError naming the path."""
        path = self.tmp_file()
        err = self.assertRaises(ConfigError, load_config, path)
        self.assertEqual(err.key, path)
        self.assertIn("No such file", err.reason)
        self.assertIn(path, str(err))

    def test_directory(self):
        """A directory is not a config file."""
        path = self.tmp_file()
        os.mkdir(path)
        err = self.assertRaises(ConfigError, load_config, path)
        self.assertEqual(err.key, path)

    def test_not_utf8(self):
        """Bytes that are not UTF-8 are a ConfigError, not a crash."""
        path = self.tmp_file()
        with open(path, "wb") as f:
            f.write(b'[bgp]\ndescription = "\xff"\n')
        err = self.assertRaises(ConfigError, load_config, path)
        self.assertIn("UTF-8", err.reason)

    def test_load_file(self):
        """load_config reads the file it is given."""
        path = self.tmp_file()
        with open(path, "w") as f:
            f.write(ISSUE_EXAMPLE)
        self.assertEqual(load_config(path), parse_config(ISSUE_EXAMPLE))

    def test_semantic_errors_from_text(self):
        """parse_config validates as config_from_dict does."""
        err = self.assertRaises(ConfigErrors, parse_config, "[bgp]\nlocal_as = 65000\n")
        self.assertEqual(err.key, "bgp.router_id")


class RecordTests(SynchronousTestCase):
    """The records themselves: equality, reload diffs, direct construction."""

    def test_reload_diff(self):
        """neighbor_changes tells added, removed and changed neighbors apart."""
        old = parse_config(ISSUE_EXAMPLE)
        d = doc(
            None,
            {"address": "192.0.2.2", "import_policy": ["accept-all"], "description": "x"},
            {"address": "192.0.2.3"},
        )
        d["neighbors"][0]["export_policy"] = ["accept-all"]
        new = config_from_dict(d)
        self.assertEqual(
            old.neighbor_changes(new),
            NeighborChanges(added=("192.0.2.3",), removed=("2001:db8::2",), changed=("192.0.2.2",)),
        )
        self.assertEqual(old.neighbor_changes(old), NeighborChanges((), (), ()))

    def test_reload_diff_reset(self):
        """Only a change outside SOFT_FIELDS puts a changed neighbor in ``reset``."""
        old = config_from_dict(doc(None, {}, {"address": "192.0.2.3"}))
        new = config_from_dict(doc(None, {"hold_time": 30}, {"address": "192.0.2.3", "description": "x"}))
        changes = old.neighbor_changes(new)
        self.assertEqual((changes.changed, changes.reset), (("192.0.2.2", "192.0.2.3"), ("192.0.2.2",)))

    def test_inherited_change_shows_per_neighbor(self):
        """A [bgp] default that changes makes the neighbors inheriting it differ."""
        old = config_from_dict(doc(None, {}, {"address": "192.0.2.3", "hold_time": 30}))
        new = config_from_dict(doc({"hold_time": 60}, {}, {"address": "192.0.2.3", "hold_time": 30}))
        self.assertEqual(old.neighbor_changes(new).changed, ("192.0.2.2",))

    def test_max_prefix_order_irrelevant(self):
        """max_prefix tables written in another order compare equal."""
        limits = {
            "ipv4-unicast": {"limit": 1},
            "ipv6-unicast": {"limit": 2},
        }
        families = ["ipv4-unicast", "ipv6-unicast"]
        a = config_from_dict(neighbor_doc(families=families, max_prefix=limits))
        b = config_from_dict(neighbor_doc(families=families, max_prefix=dict(reversed(list(limits.items())))))
        self.assertEqual(a, b)
        self.assertEqual(hash(a), hash(b))

    def test_direct_construction_defaults(self):
        """Records built directly (as other tests do) get the same defaults."""
        n = NeighborConfig(address="2001:db8::2", remote_as=65002, local_as=65000)
        self.assertEqual(n.families, ("ipv6-unicast",))
        self.assertEqual(n.import_policy, ("reject-all",))
        self.assertEqual(n, config_from_dict(doc(None, {"address": "2001:db8::2"})).neighbors[0])
        n = NeighborConfig(
            address="192.0.2.2", remote_as=1, local_as=1, max_prefix={"ipv4-unicast": MaxPrefix(5)}
        )
        self.assertEqual(n.max_prefix, (("ipv4-unicast", MaxPrefix(5, 90, 0)),))
        self.assertEqual(n.export_policy, ("accept-all",))
        bgp = BgpConfig(local_as=65000, router_id="192.0.2.1")
        self.assertEqual(bgp.cluster_id, "192.0.2.1")
        self.assertEqual(Config(bgp=bgp, neighbors=[n]).neighbor("192.0.2.2"), n)

    def test_input_not_modified(self):
        """config_from_dict leaves the caller's dict alone."""
        d = doc(None, {"max_prefix": {"ipv4-unicast": {"limit": 1}}})
        before = copy.deepcopy(d)
        config_from_dict(d)
        self.assertEqual(d, before)


class BgpRibKeysTests(_Helpers):
    """[bgp] keys of the decision process, multipath and update pacing."""

    def test_defaults(self):
        """Absent keys take the documented defaults, the timers as floats."""
        bgp = config_from_dict(doc()).bgp
        self.assertEqual((bgp.always_compare_med, bgp.deterministic_med), (False, False))
        self.assertEqual((bgp.max_paths, bgp.multipath_relax), (1, False))
        self.assertEqual(bgp.default_local_pref, 100)
        self.assertEqual((bgp.mrai_ebgp, bgp.mrai_ibgp), (0.5, 0.0))
        self.assertIsInstance(bgp.mrai_ibgp, float)
        self.assertEqual(bgp, BgpConfig(local_as=65000, router_id="192.0.2.1"))

    def test_every_key(self):
        """Every new key is stored; integer seconds become floats."""
        bgp = config_from_dict(
            doc(
                {
                    "always_compare_med": True,
                    "deterministic_med": True,
                    "max_paths": 64,
                    "multipath_relax": True,
                    "default_local_pref": 4294967295,
                    "mrai_ebgp": 30,
                    "mrai_ibgp": 0.25,
                }
            )
        ).bgp
        self.assertEqual((bgp.always_compare_med, bgp.deterministic_med), (True, True))
        self.assertEqual((bgp.max_paths, bgp.multipath_relax), (64, True))
        self.assertEqual(bgp.default_local_pref, 4294967295)
        self.assertEqual((bgp.mrai_ebgp, bgp.mrai_ibgp), (30.0, 0.25))
        self.assertIsInstance(bgp.mrai_ebgp, float)

    def test_boundaries(self):
        """The low ends of the ranges are accepted; multipath_relax needs no max_paths."""
        bgp = config_from_dict(
            doc({"max_paths": 1, "default_local_pref": 0, "mrai_ebgp": 0, "multipath_relax": True})
        ).bgp
        self.assertEqual((bgp.max_paths, bgp.default_local_pref, bgp.mrai_ebgp), (1, 0, 0.0))
        self.assertTrue(bgp.multipath_relax)

    def test_bad_values(self):
        """Each bad value is reported at its key with the reason."""
        cases = [
            ("always_compare_med", 1, "true or false, got an integer (1)"),
            ("deterministic_med", "yes", "true or false, got a string"),
            ("multipath_relax", 0, "true or false"),
            ("max_paths", 0, "from 1 to 64, got 0"),
            ("max_paths", 65, "got 65"),
            ("max_paths", True, "got a boolean (true)"),
            ("max_paths", 2.0, "got a float"),
            ("default_local_pref", -1, "from 0 to 4294967295, got -1"),
            ("default_local_pref", 4294967296, "got 4294967296"),
            ("default_local_pref", False, "got a boolean (false)"),
            ("mrai_ebgp", -0.5, "a number of seconds >= 0, got -0.5"),
            ("mrai_ebgp", True, "got a boolean (true)"),
            ("mrai_ebgp", "1", "got a string"),
            ("mrai_ibgp", float("inf"), "got inf"),
            ("mrai_ibgp", float("nan"), "got nan"),
            ("mrai_ibgp", -1, "got -1"),
            ("mrai_ibgp", [1], "got an array"),
        ]
        for name, value, fragment in cases:
            errors = self.errors(doc({name: value}))
            self.assertEqual(len(errors), 1, (name, value, errors))
            self.assertEqual(errors[0][0], f"bgp.{name}", (name, value, errors))
            self.assertIn(fragment, errors[0][1], (name, value))

    def test_from_toml_text(self):
        """TOML integers and floats are both accepted for the MRAI timers."""
        bgp = parse_config(
            '[bgp]\nlocal_as = 65000\nrouter_id = "192.0.2.1"\nmrai_ebgp = 5\nmrai_ibgp = 1.5\n'
        ).bgp
        self.assertEqual((bgp.mrai_ebgp, bgp.mrai_ibgp), (5.0, 1.5))


class NeighborRibKeysTests(_Helpers):
    """[[neighbors]] keys for allowas-in, soft reconfiguration, MRAI and next hops."""

    def test_defaults(self):
        """Absent keys take the documented defaults."""
        n = self.one_neighbor()
        self.assertEqual((n.allowas_in, n.soft_reconfiguration_inbound), (0, False))
        self.assertIsNone(n.mrai)
        self.assertEqual((n.next_hop_ipv4, n.next_hop_ipv6), (None, None))

    def test_every_key(self):
        """Every new key is stored, addresses normalised, mrai as a float."""
        n = self.one_neighbor(
            allowas_in=10,
            soft_reconfiguration_inbound=True,
            mrai=5,
            next_hop_ipv4="198.51.100.1",
            next_hop_ipv6="2001:DB8:0::1",
        )
        self.assertEqual((n.allowas_in, n.soft_reconfiguration_inbound), (10, True))
        self.assertEqual(n.mrai, 5.0)
        self.assertIsInstance(n.mrai, float)
        self.assertEqual((n.next_hop_ipv4, n.next_hop_ipv6), ("198.51.100.1", "2001:db8::1"))

    def test_effective_mrai(self):
        """Without its own mrai a neighbor uses mrai_ebgp or mrai_ibgp by session type."""
        config = config_from_dict(
            doc(
                {"mrai_ebgp": 2, "mrai_ibgp": 1},
                {},
                {"address": "192.0.2.3", "remote_as": 65000},
                {"address": "192.0.2.4", "mrai": 0},
            )
        )
        ebgp, ibgp, own = config.neighbors
        self.assertEqual(ebgp.effective_mrai(config.bgp), 2.0)
        self.assertEqual(ibgp.effective_mrai(config.bgp), 1.0)
        self.assertEqual(own.effective_mrai(config.bgp), 0.0)

    def test_bad_values(self):
        """Each bad value is reported at its key with the reason."""
        cases = [
            ("allowas_in", -1, "from 0 to 10, got -1"),
            ("allowas_in", 11, "got 11"),
            ("allowas_in", True, "got a boolean (true)"),
            ("soft_reconfiguration_inbound", 1, "true or false, got an integer (1)"),
            ("mrai", -1, "a number of seconds >= 0, got -1"),
            ("mrai", False, "got a boolean (false)"),
            ("mrai", "0.5", "got a string"),
            ("next_hop_ipv4", "2001:db8::1", "must be an IPv4 address, got 2001:db8::1"),
            ("next_hop_ipv4", "nope", "IPv4 or IPv6 address"),
            ("next_hop_ipv4", "0.0.0.0", "unicast host address"),
            ("next_hop_ipv4", 1, "must be a string"),
            ("next_hop_ipv6", "192.0.2.1", "must be an IPv6 address, got 192.0.2.1"),
            ("next_hop_ipv6", "ff02::1", "unicast host address"),
            ("next_hop_ipv6", "fe80::1%eth0", "cannot carry a zone"),
        ]
        for name, value, fragment in cases:
            errors = self.errors(neighbor_doc(**{name: value}))
            self.assertEqual(len(errors), 1, (name, value, errors))
            self.assertEqual(errors[0][0], f"neighbors[0].{name}", (name, value, errors))
            self.assertIn(fragment, errors[0][1], (name, value))

    def test_next_hops_on_either_transport(self):
        """Both next hops may be set whatever the session's family."""
        n = self.one_neighbor(address="2001:db8::2", next_hop_ipv4="192.0.2.1", next_hop_ipv6="2001:db8::1")
        self.assertEqual((n.next_hop_ipv4, n.next_hop_ipv6), ("192.0.2.1", "2001:db8::1"))

    def test_change_is_a_neighbor_change(self):
        """Changing a new neighbor key marks that neighbor changed on reload."""
        old = config_from_dict(neighbor_doc())
        new = config_from_dict(neighbor_doc(allowas_in=1))
        self.assertEqual(old.neighbor_changes(new).changed, ("192.0.2.2",))


def originate_doc(*routes: Any) -> dict[str, Any]:
    """A minimal valid document with these [[originate]] tables."""
    d = doc()
    d["originate"] = list(routes)
    return d


class OriginateTests(_Helpers):
    """[[originate]] tables: routes this speaker announces itself."""

    def one_route(self, **keys: Any) -> OriginateConfig:
        """The OriginateConfig built from ``keys``."""
        (route,) = config_from_dict(originate_doc(keys)).originate
        return route

    def test_none(self):
        """With no [[originate]] nothing is originated."""
        self.assertEqual(config_from_dict(doc()).originate, ())

    def test_defaults(self):
        """Only prefix is needed; the family follows from it."""
        route = self.one_route(prefix="198.51.100.0/24")
        self.assertEqual(
            route,
            OriginateConfig(
                prefix="198.51.100.0/24",
                family="ipv4-unicast",
                next_hop=None,
                origin="igp",
                med=None,
                local_pref=None,
                communities=(),
                large_communities=(),
                ext_communities=(),
            ),
        )
        self.assertEqual(route, OriginateConfig(prefix="198.51.100.0/24"))

    def test_every_key(self):
        """Every key is stored: the prefix normalised, communities as on the wire."""
        route = self.one_route(
            prefix="2001:DB8:100:0::/48",
            next_hop="2001:db8:0::1",
            origin="incomplete",
            med=4294967295,
            local_pref=0,
            communities=["65000:100", "No_Export", "graceful-shutdown"],
            large_communities=["4200000000:1:2"],
            ext_communities=["rt:65000:1", "ro:192.0.2.1:7", "rt:4200000000:3"],
        )
        self.assertEqual(
            route,
            OriginateConfig(
                prefix="2001:db8:100::/48",
                family="ipv6-unicast",
                next_hop="2001:db8::1",
                origin="incomplete",
                med=4294967295,
                local_pref=0,
                communities=(65000 << 16 | 100, 0xFFFFFF01, 0xFFFF0000),
                large_communities=((4200000000, 1, 2),),
                ext_communities=(
                    bytes.fromhex("0002fde800000001"),
                    bytes.fromhex("0103c00002010007"),
                    bytes.fromhex("0202fa56ea000003"),
                ),
            ),
        )

    def test_several(self):
        """Routes keep their order; default route and host routes are fine."""
        config = config_from_dict(
            originate_doc(
                {"prefix": "0.0.0.0/0", "origin": "egp"},
                {"prefix": "192.0.2.1/32", "next_hop": "192.0.2.254"},
                {"prefix": "::/0"},
            )
        )
        self.assertEqual([r.prefix for r in config.originate], ["0.0.0.0/0", "192.0.2.1/32", "::/0"])
        self.assertEqual(
            [r.family for r in config.originate], ["ipv4-unicast", "ipv4-unicast", "ipv6-unicast"]
        )
        self.assertEqual(config.originate[0].origin, "egp")

    def test_from_toml_text(self):
        """The TOML form parses as the dict form does."""
        config = parse_config(
            '[bgp]\nlocal_as = 65000\nrouter_id = "192.0.2.1"\n\n'
            '[[originate]]\nprefix = "198.51.100.0/24"\ncommunities = ["65000:100"]\n'
        )
        self.assertEqual(
            config.originate, (OriginateConfig("198.51.100.0/24", communities=[65000 << 16 | 100]),)
        )

    def test_bad_values(self):
        """Each bad value is reported at its key with the reason."""
        ok = {"prefix": "198.51.100.0/24"}
        cases = [
            ({"prefix": "198.51.100.1/24"}, "prefix", "host bits set; the network is 198.51.100.0/24"),
            ({"prefix": "2001:db8:100::1/48"}, "prefix", "the network is 2001:db8:100::/48"),
            ({"prefix": "198.51.100.0"}, "prefix", "with its prefix length"),
            ({"prefix": "198.51.100.0/33"}, "prefix", "IPv4 or IPv6 network"),
            ({"prefix": "nope/8"}, "prefix", "IPv4 or IPv6 network"),
            ({"prefix": 5}, "prefix", "must be a string, got an integer (5)"),
            ({**ok, "next_hop": "2001:db8::1"}, "next_hop", "IPv4 address like the prefix 198.51.100.0/24"),
            (
                {"prefix": "2001:db8::/32", "next_hop": "192.0.2.1"},
                "next_hop",
                "IPv6 address like the prefix 2001:db8::/32, got 192.0.2.1",
            ),
            ({**ok, "next_hop": "0.0.0.0"}, "next_hop", "unicast host address"),
            ({**ok, "next_hop": "x"}, "next_hop", "IPv4 or IPv6 address"),
            ({**ok, "origin": "IGP"}, "origin", "one of igp, egp, incomplete"),
            ({**ok, "origin": 0}, "origin", "must be a string"),
            ({**ok, "med": -1}, "med", "from 0 to 4294967295, got -1"),
            ({**ok, "med": 4294967296}, "med", "got 4294967296"),
            ({**ok, "med": True}, "med", "got a boolean (true)"),
            ({**ok, "local_pref": 1.5}, "local_pref", "got a float"),
            ({**ok, "local_pref": False}, "local_pref", "got a boolean (false)"),
            ({**ok, "communities": "65000:1"}, "communities", "array of strings"),
            ({**ok, "communities": [65000]}, "communities[0]", "must be a string"),
            ({**ok, "communities": ["1:2", "65536:1"]}, "communities[1]", "both parts must be 0 to 65535"),
            ({**ok, "communities": ["no-exports"]}, "communities[0]", "bad community 'no-exports'"),
            ({**ok, "communities": ["1:2:3"]}, "communities[0]", "ASN:VALUE"),
            (
                {**ok, "communities": ["no-export", "65535:65281"]},
                "communities[1]",
                "duplicate of communities[0]",
            ),
            ({**ok, "large_communities": ["1:2"]}, "large_communities[0]", "GLOBAL:LOCAL1:LOCAL2"),
            ({**ok, "large_communities": ["1:2:4294967296"]}, "large_communities[0]", "0 to 4294967295"),
            ({**ok, "large_communities": ["1:2:3", "1:2:3"]}, "large_communities[1]", "duplicate"),
            ({**ok, "ext_communities": ["rt:1"]}, "ext_communities[0]", "bad extended community 'rt:1'"),
            ({**ok, "ext_communities": ["soo:1:2"]}, "ext_communities[0]", "unknown kind"),
            (
                {**ok, "ext_communities": ["rt:4200000000:65536"]},
                "ext_communities[0]",
                "value must be 0 to 65535",
            ),
            ({**ok, "ext_communities": ["rt:1:2", "rt:1:2"]}, "ext_communities[1]", "duplicate"),
            ({**ok, "family": "ipv4-unicast"}, "family", "unknown key"),
            ({**ok, "community": []}, "community", "did you mean 'communities'?"),
        ]
        for table, key, fragment in cases:
            errors = self.errors(originate_doc(table))
            self.assertEqual(len(errors), 1, (table, errors))
            self.assertEqual(errors[0][0], f"originate[0].{key}", (table, errors))
            self.assertIn(fragment, errors[0][1], table)

    def test_required(self):
        """prefix is required."""
        self.assert_one_error(originate_doc({}), "originate[0].prefix", "required key is missing")

    def test_duplicate_prefix(self):
        """The same prefix twice, in any spelling, names both tables."""
        self.assert_one_error(
            originate_doc(
                {"prefix": "2001:db8:100::/48"}, {"prefix": "192.0.2.0/24"}, {"prefix": "2001:DB8:100:0::/48"}
            ),
            "originate[2].prefix",
            "duplicate prefix 2001:db8:100::/48 (also originate[0].prefix)",
        )

    def test_duplicate_reported_alongside_other_errors(self):
        """A duplicate is reported even when that table has another error."""
        errors = self.errors(originate_doc({"prefix": "192.0.2.0/24"}, {"prefix": "192.0.2.0/24", "med": -1}))
        self.assertEqual([key for key, _ in errors], ["originate[1].med", "originate[1].prefix"])

    def test_not_array(self):
        """[originate] instead of [[originate]] is an error."""
        d = doc()
        d["originate"] = {"prefix": "192.0.2.0/24"}
        self.assert_one_error(d, "originate", "array of tables ([[originate]])")

    def test_entry_not_table(self):
        """Each originate entry must be a table."""
        self.assert_one_error(originate_doc("192.0.2.0/24"), "originate[0]", "must be a table")

    def test_checked_without_bgp(self):
        """Originate errors are reported even when [bgp] is broken."""
        d = originate_doc({"prefix": "192.0.2.1/24"})
        d["bgp"]["local_as"] = 0
        self.assertEqual([key for key, _ in self.errors(d)], ["bgp.local_as", "originate[0].prefix"])

    def test_direct_construction(self):
        """Records built directly derive the family and convert lists to tuples."""
        route = OriginateConfig(
            prefix="2001:db8::/32",
            communities=[1],
            large_communities=[[1, 2, 3]],
            ext_communities=[bytearray(8)],
        )
        self.assertEqual(route.family, "ipv6-unicast")
        self.assertEqual(route.communities, (1,))
        self.assertEqual(route.large_communities, ((1, 2, 3),))
        self.assertEqual(route.ext_communities, (bytes(8),))
        hash(route)

    def test_config_equality(self):
        """Configs differing only in originated routes are not equal."""
        a = config_from_dict(originate_doc({"prefix": "192.0.2.0/24"}))
        b = config_from_dict(originate_doc({"prefix": "192.0.2.0/24", "med": 1}))
        self.assertNotEqual(a, b)
        self.assertEqual(a, config_from_dict(originate_doc({"prefix": "192.0.2.0/24"})))
