"""RPKI validation in the running daemon: [rpki] slurm (RFC 8416) at start and on SIGHUP, policy hooks.

A bad SLURM file is a config error naming ``rpki.slurm`` (start, ``--check``
and SIGHUP: the reload is refused and the file in force stays); a good one
is applied over the caches' data and re-applied on reload without a fetch.
"""

from __future__ import annotations

import json
import os
import tempfile

from twisted.internet.testing import MemoryReactorClock
from twisted.logger import formatEvent, globalLogPublisher
from twisted.trial.unittest import SynchronousTestCase

from bgpd.config import ConfigError, parse_config
from bgpd.rib.testing import IPV4, announce, pfx
from bgpd.rpki.records import Validity, Vrp
from bgpd.service import BgpdService, RibService
from tests.test_policy_service import FakeFactory, info, route

CONFIG = """
[bgp]
local_as = 65000
router_id = "192.0.2.1"
listen_addresses = []

[rpki]
{slurm}
[[rpki.cache]]
name = "local"
address = "127.0.0.1"

[policies.rov]
default = "accept"
[[policies.rov.terms]]
name = "drop-invalid"
match = {{ rpki = "invalid" }}
action = "reject"

[[neighbors]]
address = "192.0.2.2"
remote_as = 65001
local_address = "192.0.2.1"
import_policy = ["rov"]
export_policy = ["accept-all"]

[[neighbors]]
address = "198.51.100.2"
remote_as = 65002
local_address = "198.51.100.1"
import_policy = ["accept-all"]
export_policy = ["accept-all"]
"""


def slurm_doc(asn: int) -> dict:
    return {"slurmVersion": 1,
            "validationOutputFilters": {"prefixFilters": [], "bgpsecFilters": []},
            "locallyAddedAssertions": {"prefixAssertions": [{"prefix": "10.0.0.0/16", "asn": asn}],
                                       "bgpsecAssertions": []}}


class SlurmConfigTests(SynchronousTestCase):
    """[rpki] slurm is read and checked with the config."""

    def setUp(self):
        self.dir = tempfile.mkdtemp()
        self.path = os.path.join(self.dir, "slurm.json")
        self.addCleanup(self._clean)

    def _clean(self):
        for f in os.listdir(self.dir):
            os.unlink(os.path.join(self.dir, f))
        os.rmdir(self.dir)

    def write(self, doc) -> None:
        with open(self.path, "w") as f:
            f.write(doc if isinstance(doc, str) else json.dumps(doc))

    def config(self):
        return parse_config(CONFIG.format(slurm=f'slurm = "{self.path}"'))

    def test_missing_file(self):
        """A SLURM file that cannot be read is an error at rpki.slurm."""
        with self.assertRaises(ConfigError) as cm:
            self.config()
        self.assertEqual(cm.exception.errors[0].key, "rpki.slurm")
        self.assertIn("cannot read", cm.exception.errors[0].reason)

    def test_bad_file_names_json_path(self):
        """A malformed SLURM file: the error names rpki.slurm and the JSON path inside it."""
        doc = slurm_doc(65001)
        doc["locallyAddedAssertions"]["prefixAssertions"][0]["asn"] = "x"
        self.write(doc)
        with self.assertRaises(ConfigError) as cm:
            self.config()
        self.assertEqual(cm.exception.errors[0].key, "rpki.slurm")
        self.assertIn("locallyAddedAssertions.prefixAssertions[0].asn", cm.exception.errors[0].reason)

    def test_good_file(self):
        """A good file is parsed into the config."""
        self.write(slurm_doc(65001))
        c = self.config()
        self.assertEqual(c.rpki.slurm, self.path)
        self.assertEqual(len(c.rpki.slurm_rules.assertions), 1)


class ServiceTests(SynchronousTestCase):
    """RibService with [rpki]: validators in policy, SLURM applied at start and on reload."""

    def setUp(self):
        self.dir = tempfile.mkdtemp()
        self.path = os.path.join(self.dir, "slurm.json")
        self.addCleanup(self._clean)

    def _clean(self):
        for f in os.listdir(self.dir):
            os.unlink(os.path.join(self.dir, f))
        os.rmdir(self.dir)

    def write(self, doc) -> None:
        with open(self.path, "w") as f:
            f.write(doc if isinstance(doc, str) else json.dumps(doc))

    def start(self, asn: int) -> None:
        self.write(slurm_doc(asn))
        config = parse_config(CONFIG.format(slurm=f'slurm = "{self.path}"'))
        self.reactor = MemoryReactorClock()
        self.svc = RibService(config, self.reactor)
        self.feeder = FakeFactory(config.neighbors[0])
        self.receiver = FakeFactory(config.neighbors[1])
        self.svc.peer_up(self.feeder, info(65001, "192.0.2.2"))
        self.svc.peer_up(self.receiver, info(65002, "198.51.100.2"))
        self.svc.update(self.feeder, announce(route(), [pfx("10.0.0.0/16")]))
        self.svc.rib.drain()

    def best(self):
        return self.svc.rib.best(IPV4, pfx("10.0.0.0/16"))

    def test_no_rpki_no_validation(self):
        """Without [rpki] nothing is built and rpki conditions see not-found."""
        text = CONFIG.split("[rpki]")[0] + "[policies.p]\ndefault = \"accept\"\n"
        svc = RibService(parse_config(text), MemoryReactorClock())
        self.assertIsNone(svc.validation)

    def test_assertion_at_start(self):
        """The SLURM assertion for another AS makes the route Invalid at import: rejected."""
        self.start(65099)
        self.assertIsNone(self.best())

    def test_sighup_applies_new_file(self):
        """A changed SLURM file on reload is applied: the route becomes Valid and comes in."""
        self.start(65099)
        self.write(slurm_doc(65001))
        self.svc.reload(parse_config(CONFIG.format(slurm=f'slurm = "{self.path}"')))
        self.svc.rib.drain()
        self.assertIsNotNone(self.best())
        self.assertIn(pfx("10.0.0.0/16"), self.receiver.sink.routes())
        self.assertEqual(self.feeder.refreshes, 0)

    def test_cache_data_revalidates(self):
        """VRPs from the RTR sink (the RpkiService's) re-run the policy: an Invalid appears, no reset."""
        self.start(65001)
        self.svc.reload(parse_config(CONFIG.format(slurm="")))  # the SLURM file is taken away
        self.svc.rib.drain()
        table = self.svc.validation.table
        table.begin("local", True)
        table.vrps("local", [Vrp(IPV4, pfx("10.0.0.0/8"), 16, 65099)], [])
        table.end("local", 1)
        self.svc.rib.drain()
        self.assertIsNone(self.best())
        self.assertEqual(self.feeder.refreshes, 0)


class SighupTests(SynchronousTestCase):
    """BgpdService.reload (the SIGHUP path) with [rpki] slurm: a bad file keeps the one in force."""

    def setUp(self):
        self.dir = tempfile.mkdtemp()
        self.path = os.path.join(self.dir, "slurm.json")
        self.config_path = os.path.join(self.dir, "bgpd.toml")
        self.addCleanup(self._clean)

    def _clean(self):
        for f in os.listdir(self.dir):
            path = os.path.join(self.dir, f)
            if os.path.isdir(path):
                for g in os.listdir(path):
                    os.unlink(os.path.join(path, g))
                os.rmdir(path)
            else:
                os.unlink(path)
        os.rmdir(self.dir)

    def write_slurm(self, doc) -> None:
        with open(self.path, "w") as f:
            f.write(doc if isinstance(doc, str) else json.dumps(doc))

    def test_bad_file_on_sighup(self):
        """A malformed SLURM file on reload: refused, logged, the assertion in force stays."""
        self.write_slurm(slurm_doc(65001))
        text = CONFIG.format(slurm=f'slurm = "{self.path}"').replace(
            "listen_addresses = []", f'listen_addresses = []\nstate_dir = "{self.dir}/state"')
        with open(self.config_path, "w") as f:
            f.write(text)
        svc = BgpdService(parse_config(text), self.config_path, MemoryReactorClock())
        svc.startService()
        self.addCleanup(svc.stopService)
        table = svc.rib_service.validation.table
        self.assertEqual(table.validate(1, pfx("10.0.0.0/16"), 65001), Validity.VALID)
        self.write_slurm('{"slurmVersion": 2}')
        errors = []
        observer = errors.append
        globalLogPublisher.addObserver(observer)
        self.addCleanup(globalLogPublisher.removeObserver, observer)
        self.assertFalse(svc.reload())
        self.assertTrue(any("rpki.slurm" in formatEvent(e) for e in errors))
        self.assertEqual(table.validate(1, pfx("10.0.0.0/16"), 65001), Validity.VALID)
        self.write_slurm(slurm_doc(65002))
        self.assertTrue(svc.reload())
        self.assertEqual(table.validate(1, pfx("10.0.0.0/16"), 65001), Validity.INVALID)
