"""bgpctl rpki validate / vrps / aspa and the RPKI column of show routes, against an in-process bgpd."""

from __future__ import annotations

import io
import json
import os
import tempfile

from twisted.internet import reactor, threads
from twisted.internet.task import deferLater
from twisted.trial.unittest import TestCase

from bgpd import cli
from bgpd.config import parse_config
from bgpd.rib.testing import IPV4, pfx
from bgpd.rpki.records import Aspa, Vrp
from bgpd.service import BgpdService
from tests.deferreds import as_deferred

CONFIG = """
[bgp]
local_as = 65000
router_id = "192.0.2.254"
listen_addresses = ["127.0.0.1"]
listen_port = 0

[rpki]
[[rpki.cache]]
name = "local"
address = "127.0.0.1"
port = 1

[[originate]]
prefix = "192.0.2.0/24"
next_hop = "192.0.2.254"

[api]
listen = "unix:{socket}"
"""


class RpkiCliTests(TestCase):
    timeout = 60

    def setUp(self):
        self.dir = tempfile.mkdtemp(prefix="bgpctl-")
        self.socket = os.path.join(self.dir, "api.sock")
        self.svc = BgpdService(parse_config(CONFIG.format(socket=self.socket)), None, reactor)
        self.svc.startService()
        self.addCleanup(self._cleanup)
        t = self.svc.rib_service.validation.table
        t.begin("local", True)
        t.vrps("local", [Vrp(IPV4, pfx("192.0.2.0/24"), 24, 64500)], [])
        t.aspas("local", [Aspa(64496, (64497,))], [])
        t.end("local", 1)

    @as_deferred
    async def _cleanup(self):
        await self.svc.stopService()
        for name in os.listdir(self.dir):
            os.unlink(os.path.join(self.dir, name))
        os.rmdir(self.dir)

    async def run_cli(self, *argv):
        out, err = io.StringIO(), io.StringIO()
        code = await threads.deferToThread(cli.main, ["--socket", self.socket, *argv], out, err)
        return code, out.getvalue(), err.getvalue()

    @as_deferred
    async def test_validate(self):
        """rpki validate prints the state, the reason and the VRPs; --json after the command works."""
        code, out, err = await self.run_cli("rpki", "validate", "192.0.2.0/24", "AS64500")
        self.assertEqual(code, 0, err)
        self.assertEqual(out, "192.0.2.0/24 AS64500: valid: VRP 192.0.2.0/24-24 AS64500 matches\n"
                              "  match 192.0.2.0/24-24 AS64500\n")
        code, out, _ = await self.run_cli("rpki", "validate", "192.0.2.0/24", "64501", "--json")
        doc = json.loads(out)
        self.assertEqual(doc["state"], "RPKI_INVALID")
        self.assertIn("origin AS64501 does not match", doc["reason"])

    @as_deferred
    async def test_validate_bad_asn(self):
        """A bad AS number is a usage error."""
        code, _, err = await self.run_cli("rpki", "validate", "192.0.2.0/24", "ASx")
        self.assertEqual(code, cli.EXIT_USAGE)
        self.assertIn("not an AS number", err)

    @as_deferred
    async def test_vrps(self):
        """rpki vrps lists the covering VRPs, or says there are none."""
        code, out, _ = await self.run_cli("rpki", "vrps", "192.0.2.128/25")
        self.assertEqual((code, out), (0, "192.0.2.0/24-24 AS64500\n"))
        code, out, _ = await self.run_cli("--json", "rpki", "vrps", "10.0.0.0/8")
        self.assertEqual(json.loads(out), {})
        code, out, _ = await self.run_cli("rpki", "vrps", "10.0.0.0/8")
        self.assertEqual(out, "no VRP covers 10.0.0.0/8\n")

    @as_deferred
    async def test_aspa(self):
        """rpki aspa prints the state and the hop checks."""
        code, out, _ = await self.run_cli("rpki", "aspa", "upstream", "64497", "64496")
        self.assertEqual(out, "64497 64496 (upstream): valid\n  AS64496 -> AS64497: provider+\n")

    @as_deferred
    async def test_show_routes_column(self):
        """show routes has RPKI / ASPA columns when bgpd validates (our own route: origin NONE, Invalid)."""
        for _ in range(50):  # bounded: the RIB's queue runs on the reactor
            code, out, _ = await self.run_cli("show", "routes")
            if "192.0.2.0/24" in out:
                break
            await deferLater(reactor, 0.1, lambda: None)
        head, row = out.splitlines()[:2]
        self.assertTrue(head.rstrip().endswith("RPKI  ASPA"), head)
        self.assertTrue(row.rstrip().endswith("I     -"), row)
        code, out, _ = await self.run_cli("show", "route", "192.0.2.0/24")
        self.assertIn("RPKI invalid, ASPA not verified", out)
