"""config_to_tables: the running config as TOML tables that parse back to the same config."""

from __future__ import annotations

import json
import os
import shutil
import tempfile

from twisted.trial.unittest import SynchronousTestCase

from bgpd.config import config_to_tables, parse_config, to_toml

FILE = """
[bgp]
local_as = 65000
router_id = "192.0.2.1"
listen_addresses = []

[policies.to-kernel]
default = "accept"

[[neighbors]]
address = "192.0.2.2"
remote_as = 65001
import_policy = ["accept-all"]
export_policy = ["accept-all"]

[kernel]
ipv6 = false
table = "main"
protocol = 187
metric = 30
ecmp = false
keep_on_stop = true
reconcile_time = 45
export_policy = "to-kernel"

[rpki]
aspa = true
slurm = "{dir}/local.slurm"

[[rpki.cache]]
name = "one"
address = "192.0.2.10"
port = 3323
preference = 1
refresh = 120
retry = 30
expire = 900

[[rpki.cache]]
name = "two"
address = "rtr.example.net"
transport = "tls"
tls_ca = "{dir}/ca.pem"
tls_cert = "{dir}/client.pem"
tls_key = "{dir}/client.key"
tls_server_name = "cache.example.net"
"""

SLURM = {"slurmVersion": 1,
         "validationOutputFilters": {"prefixFilters": [{"asn": 64496}], "bgpsecFilters": []},
         "locallyAddedAssertions": {"prefixAssertions": [{"asn": 64496, "prefix": "198.51.100.0/24"}],
                                    "bgpsecAssertions": []}}


class ConfigTablesTests(SynchronousTestCase):
    def setUp(self):
        self.dir = tempfile.mkdtemp(prefix="bgpd-tables-")
        self.addCleanup(shutil.rmtree, self.dir)
        for name in ("ca.pem", "client.pem", "client.key"):
            with open(os.path.join(self.dir, name), "w") as f:
                f.write("not read by the config, only checked readable\n")
        with open(os.path.join(self.dir, "local.slurm"), "w") as f:
            json.dump(SLURM, f)

    def round_trip(self, text: str):
        config = parse_config(text)
        source = config.source or {}
        policy = {k: source[k] for k in ("sets", "policies") if k in source}
        tables = config_to_tables(config, policy)
        return config, tables, parse_config(to_toml(tables))

    def test_kernel_and_rpki_round_trip(self):
        """[kernel] and [rpki] (caches, TLS files, aspa, slurm) are written and read back the same."""
        config, tables, again = self.round_trip(FILE.format(dir=self.dir))
        self.assertEqual(tables["kernel"]["table"], 254)
        self.assertEqual([c["name"] for c in tables["rpki"]["cache"]], ["one", "two"])
        self.assertIsNotNone(again.kernel)
        self.assertEqual(again.kernel, config.kernel)
        self.assertEqual(again.rpki, config.rpki)
        self.assertIsNotNone(again.rpki.slurm_rules)
        self.assertEqual(again, config)

    def test_defaults_round_trip(self):
        """An empty [kernel] and a cache with only name and address read back with the same defaults."""
        text = (FILE.split("[kernel]")[0]
                + '[kernel]\n\n[rpki]\n[[rpki.cache]]\nname = "c"\naddress = "192.0.2.9"\n')
        config, tables, again = self.round_trip(text)
        self.assertEqual(tables["rpki"], {"aspa": False, "cache": [
            {"name": "c", "address": "192.0.2.9", "port": 323, "preference": 100, "transport": "tcp"}]})
        self.assertEqual(again, config)

    def test_absent_sections_stay_absent(self):
        """Without [kernel] and [rpki] the tables have neither, and nothing goes to the kernel."""
        config, tables, again = self.round_trip(FILE.split("[kernel]")[0])
        self.assertNotIn("kernel", tables)
        self.assertNotIn("rpki", tables)
        self.assertIsNone(again.kernel)
        self.assertEqual(again, config)
