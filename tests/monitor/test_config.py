"""[monitor] and [mrt] validation (bgpd.config): every error names the key and the reason."""

from __future__ import annotations

from twisted.trial.unittest import SynchronousTestCase

from bgpd.config import ConfigError, MonitorConfig, MrtConfig, config_to_tables, parse_config, to_toml

BASE = """
[bgp]
local_as = 65000
router_id = "192.0.2.1"
"""


def errors(text: str) -> dict[str, str]:
    try:
        parse_config(BASE + text)
    except ConfigError as err:
        return {e.key: e.reason for e in err.errors}
    raise AssertionError("accepted")


class MonitorConfigTests(SynchronousTestCase):
    """The [monitor] table."""

    def test_defaults(self):
        """Without [monitor]: 64 events, text log, no metrics endpoint; without [mrt]: no dumps."""
        c = parse_config(BASE)
        self.assertEqual(c.monitor, MonitorConfig())
        self.assertEqual((c.monitor.history_size, c.monitor.log_format), (64, "text"))
        self.assertIsNone(c.monitor.metrics_address)
        self.assertIsNone(c.mrt)

    def test_metrics_listen_forms(self):
        """A bare port is loopback; HOST:PORT and [V6]:PORT are taken as written."""
        for text, want in (('"9179"', ("127.0.0.1", 9179)), ('"192.0.2.1:9100"', ("192.0.2.1", 9100)),
                           ('"[::1]:9100"', ("::1", 9100)), ('"localhost:9100"', ("localhost", 9100))):
            c = parse_config(BASE + f"[monitor]\nmetrics_listen = {text}\n")
            self.assertEqual(c.monitor.metrics_address, want)

    def test_bad_values_name_their_key(self):
        """Each bad key is reported with its path and why."""
        got = errors('[monitor]\nhistory_size = 0\nlog_format = "xml"\nmetrics_listen = "host:x"\n'
                     "bogus = 1\n")
        self.assertIn("from 1 to 100000", got["monitor.history_size"])
        self.assertIn("text, json", got["monitor.log_format"])
        self.assertIn("port must be a number", got["monitor.metrics_listen"])
        self.assertIn("unknown key", got["monitor.bogus"])
        self.assertIn("port must be 1..65535",
                      errors('[monitor]\nmetrics_listen = "127.0.0.1:0"\n')["monitor.metrics_listen"])
        self.assertIn("IP address or localhost",
                      errors('[monitor]\nmetrics_listen = "example.org:80"\n')["monitor.metrics_listen"])
        self.assertIn("must be a string",
                      errors("[monitor]\nmetrics_listen = 9179\n")["monitor.metrics_listen"])


class MrtConfigTests(SynchronousTestCase):
    """The [mrt] table."""

    def test_defaults(self):
        """Only directory is required; every 2 h, the Loc-RIB, uncompressed."""
        c = parse_config(BASE + '[mrt]\ndirectory = "/var/lib/bgpd/mrt"\n')
        self.assertEqual(c.mrt, MrtConfig(directory="/var/lib/bgpd/mrt"))
        self.assertEqual((c.mrt.interval, c.mrt.compression, c.mrt.tables), (7200, "none", ("loc-rib",)))

    def test_bad_values_name_their_key(self):
        """Missing directory, short interval, bad pattern, compression and table names."""
        got = errors('[mrt]\ninterval = 10\nfile_pattern = "x/{table}%Y"\ncompression = "xz"\n'
                     'tables = ["loc-rib", "rib-out"]\n')
        self.assertEqual(got["mrt.directory"], "required key is missing")
        self.assertIn("from 60 to 604800", got["mrt.interval"])
        self.assertIn("without '/'", got["mrt.file_pattern"])
        self.assertIn("none, gzip, bz2", got["mrt.compression"])
        self.assertIn("'rib-out'", got["mrt.tables[1]"])

    def test_two_tables_need_table_in_pattern(self):
        """Two tables in one file name would overwrite each other: {table} is required then."""
        got = errors('[mrt]\ndirectory = "/d"\nfile_pattern = "rib.%H"\ntables = ["loc-rib", "adj-rib-in"]\n')
        self.assertIn("{table}", got["mrt.file_pattern"])
        got = errors('[mrt]\ndirectory = "/d"\nfile_pattern = "rib.%H"\nupdates = true\n')
        self.assertIn("{table}", got["mrt.file_pattern"])
        c = parse_config(BASE + '[mrt]\ndirectory = "/d"\ntables = []\nupdates = true\n'
                         'file_pattern = "u.%H"\n')
        self.assertEqual((c.mrt.tables, c.mrt.updates), ((), True))
        c = parse_config(BASE + '[mrt]\ndirectory = "/d"\ntables = ["loc-rib", "adj-rib-in"]\n')
        self.assertEqual(c.mrt.tables, ("loc-rib", "adj-rib-in"))
        self.assertIn("empty", errors('[mrt]\ndirectory = ""\n')["mrt.directory"])
        self.assertIn("at least one", errors('[mrt]\ndirectory = "/d"\ntables = []\n')["mrt.tables"])

    def test_round_trip_through_toml(self):
        """The effective config (GetConfig) writes both sections back, and they read the same."""
        text = (BASE + '[monitor]\nhistory_size = 10\nmetrics_listen = "9179"\n'
                '[mrt]\ndirectory = "/d"\ninterval = 600\ncompression = "gzip"\n')
        c = parse_config(text)
        again = parse_config(to_toml(config_to_tables(c)))
        self.assertEqual((again.monitor, again.mrt), (c.monitor, c.mrt))
