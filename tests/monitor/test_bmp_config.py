"""Tests for the ``[bmp]`` section of the config (bgpd.config): values and error messages."""

from __future__ import annotations

from typing import Any

from twisted.trial.unittest import SynchronousTestCase

from bgpd.config import (
    BmpCollectorConfig,
    BmpConfig,
    ConfigErrors,
    config_from_dict,
    config_to_tables,
    parse_config,
    to_toml,
)

BGP = {"local_as": 65000, "router_id": "192.0.2.1"}
C1 = {"name": "c1", "address": "192.0.2.50", "port": 1790}


def doc(bmp: Any) -> dict[str, Any]:
    return {"bgp": dict(BGP), "bmp": bmp}


class BmpConfigTests(SynchronousTestCase):
    """Valid tables become records; defaults as documented."""

    def test_absent(self):
        """No [bmp]: None."""
        self.assertIsNone(config_from_dict({"bgp": dict(BGP)}).bmp)

    def test_defaults(self):
        """A collector with only its name, address and port gets the defaults."""
        cfg = config_from_dict(doc({"collector": [C1]})).bmp
        self.assertEqual(cfg, BmpConfig(collectors=(BmpCollectorConfig("c1", "192.0.2.50", 1790),)))
        c = cfg.collectors[0]
        self.assertEqual(c.monitoring, ("pre-policy", "post-policy"))
        self.assertEqual((c.statistics_interval, c.buffer, c.retry_time), (60.0, 16 * 1024 * 1024, 30.0))

    def test_all_keys(self):
        """Every key is read from TOML."""
        cfg = parse_config("""
            [bgp]
            local_as = 65000
            router_id = "192.0.2.1"
            [bmp]
            sys_name = "r1"
            sys_descr = "edge"
            [[bmp.collector]]
            name = "a"
            address = "2001:db8::50"
            port = 5000
            monitoring = ["loc-rib", "adj-rib-out"]
            statistics_interval = 0
            buffer = 65536
            retry_time = 5
        """).bmp
        self.assertEqual((cfg.sys_name, cfg.sys_descr), ("r1", "edge"))
        c = cfg.collectors[0]
        self.assertEqual((c.address, c.port), ("2001:db8::50", 5000))
        self.assertEqual(c.monitoring, ("loc-rib", "adj-rib-out"))
        self.assertEqual((c.statistics_interval, c.buffer, c.retry_time), (0.0, 65536, 5.0))

    def test_round_trip_config_show(self):
        """config_to_tables writes [bmp] so that it reads back the same."""
        cfg = config_from_dict(doc({"collector": [C1, {**C1, "name": "c2", "port": 1791}]}))
        again = parse_config(to_toml(config_to_tables(cfg)))
        self.assertEqual(again.bmp, cfg.bmp)


class BmpConfigErrorTests(SynchronousTestCase):
    """Each error names the key path and the reason."""

    def errors(self, bmp: Any) -> list[tuple[str, str]]:
        err = self.assertRaises(ConfigErrors, config_from_dict, doc(bmp))
        return [(e.key, e.reason) for e in err.errors]

    def one(self, bmp: Any, key: str, fragment: str) -> None:
        errors = self.errors(bmp)
        self.assertEqual(len(errors), 1, errors)
        self.assertEqual(errors[0][0], key)
        self.assertIn(fragment, errors[0][1])

    def test_unknown_key(self):
        """A misspelt key is named, with a suggestion."""
        self.one({"collectors": []}, "bmp.collectors", "did you mean 'collector'")

    def test_collector_not_array(self):
        """collector must be an array of tables."""
        self.one({"collector": C1}, "bmp.collector", "array of tables")

    def test_required(self):
        """name, address and port are required."""
        errors = self.errors({"collector": [{}]})
        self.assertEqual({k for k, _ in errors},
                         {"bmp.collector[0].name", "bmp.collector[0].address", "bmp.collector[0].port"})

    def test_bad_address(self):
        """The address must be a unicast IP address."""
        self.one({"collector": [{**C1, "address": "collector.example"}]}, "bmp.collector[0].address",
                 "IPv4 or IPv6")
        self.one({"collector": [{**C1, "address": "0.0.0.0"}]}, "bmp.collector[0].address", "unicast")

    def test_bad_port(self):
        """The port is 1-65535."""
        self.one({"collector": [{**C1, "port": 0}]}, "bmp.collector[0].port", "from 1 to 65535")

    def test_monitoring(self):
        """Unknown, duplicated and empty monitoring lists are refused."""
        self.one({"collector": [{**C1, "monitoring": ["pre"]}]}, "bmp.collector[0].monitoring[0]",
                 "must be one of")
        self.one({"collector": [{**C1, "monitoring": ["loc-rib", "loc-rib"]}]},
                 "bmp.collector[0].monitoring[1]", "twice")
        self.one({"collector": [{**C1, "monitoring": []}]}, "bmp.collector[0].monitoring",
                 "at least one")

    def test_numbers(self):
        """Interval, buffer and retry time have lower bounds."""
        self.one({"collector": [{**C1, "statistics_interval": 0.5}]},
                 "bmp.collector[0].statistics_interval", "at least 1 second")
        self.one({"collector": [{**C1, "buffer": 1000}]}, "bmp.collector[0].buffer", "65536")
        self.one({"collector": [{**C1, "retry_time": 0}]}, "bmp.collector[0].retry_time", "at least 1")

    def test_duplicates(self):
        """Two collectors with one name, or one address and port, are refused."""
        self.one({"collector": [C1, {**C1, "port": 2000}]}, "bmp.collector[1].name", "duplicate")
        self.one({"collector": [C1, {**C1, "name": "c2"}]}, "bmp.collector[1].address", "already")
