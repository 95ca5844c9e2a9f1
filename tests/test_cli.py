"""bgpctl against a real in-process bgpd API server (real reactor, real grpc)."""

from __future__ import annotations

import io
import json
import os
import subprocess
import sys
import tempfile

from twisted.internet import reactor, threads
from twisted.internet.task import deferLater
from twisted.trial.unittest import TestCase

from bgpd import cli
from bgpd.config import DEFAULT_API_LISTEN, parse_config
from bgpd.service import BgpdService
from bgpd.state.overlay import API_MARK
from tests.deferreds import as_deferred

CONFIG = """
[bgp]
local_as = 65000
router_id = "192.0.2.254"
listen_addresses = ["127.0.0.1"]
listen_port = 0

[[neighbors]]
address = "192.0.2.1"
remote_as = 65001
passive = true
description = "transit"
import_policy = ["accept-all"]
export_policy = ["accept-all"]

[api]
listen = "unix:{socket}"
"""


class _CliCase(TestCase):
    timeout = 60

    def setUp(self):
        self.dir = tempfile.mkdtemp(prefix="bgpctl-")
        self.socket = os.path.join(self.dir, "api.sock")
        self.svc = BgpdService(parse_config(CONFIG.format(socket=self.socket)), None, reactor)
        self.svc.startService()
        self.addCleanup(self._cleanup)

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

    async def settle(self, prefix):
        for _ in range(50):  # bounded: the RIB's queue runs on the reactor
            code, out, _ = await self.run_cli("--json", "show", "routes", prefix)
            if json.loads(out)["routes"]:
                return json.loads(out)["routes"]
            await deferLater(reactor, 0.1, lambda: None)
        self.fail(f"{prefix} never appeared")


class BgpctlTests(_CliCase):
    @as_deferred
    async def test_show_summary(self):
        """show summary prints the router id and one line per neighbor; --json one document."""
        code, out, err = await self.run_cli("show", "summary")
        self.assertEqual((code, err), (0, ""))
        self.assertIn("BGP router identifier 192.0.2.254, local AS number 65000", out)
        line = [x for x in out.splitlines() if x.startswith("192.0.2.1")][0]
        self.assertEqual(line.split()[:3], ["192.0.2.1", "65001", "Active"])
        self.assertIn("transit", line)
        code, out, _ = await self.run_cli("--json", "show", "summary")
        doc = json.loads(out)
        self.assertEqual(doc["global"]["local_as"], 65000)
        self.assertEqual(doc["peers"][0]["config"]["address"], "192.0.2.1")

    @as_deferred
    async def test_show_kernel_off(self):
        """show kernel says the writer is off without [kernel]; --json says enabled false."""
        code, out, err = await self.run_cli("show", "kernel")
        self.assertEqual((code, out, err), (0, "kernel routes: off (no [kernel] table in the config)\n", ""))
        code, out, _ = await self.run_cli("--json", "show", "kernel")
        self.assertEqual((code, json.loads(out).get("enabled", False)), (0, False))

    @as_deferred
    async def test_show_neighbor(self):
        """show neighbor ADDR prints its state and policies; an unknown one fails in one line."""
        code, out, _ = await self.run_cli("show", "neighbor", "192.0.2.1")
        self.assertEqual(code, 0)
        self.assertIn("BGP neighbor is 192.0.2.1, remote AS 65001", out)
        self.assertIn("Import policy: accept-all", out)
        code, out, _ = await self.run_cli("show", "neighbors")
        self.assertIn("192.0.2.1", out)
        code, out, err = await self.run_cli("show", "neighbor", "192.0.2.9")
        self.assertEqual(code, cli.EXIT_REFUSED)
        self.assertEqual(err, "bgpctl: not found: address: no neighbor 192.0.2.9\n")

    @as_deferred
    async def test_neighbor_actions(self):
        """neighbor ADDR disable/enable/reset and add/del act through the API."""
        code, out, _ = await self.run_cli("neighbor", "192.0.2.1", "disable", "--message", "work")
        self.assertEqual((code, out), (0, "neighbor 192.0.2.1 disabled (Idle)\n"))
        self.assertFalse(self.svc.sessions.peers["192.0.2.1"].enabled)
        code, out, _ = await self.run_cli("neighbor", "192.0.2.1", "enable")
        self.assertEqual(code, 0)
        code, out, _ = await self.run_cli("neighbor", "192.0.2.1", "reset")
        self.assertEqual(code, 0)
        code, _, err = await self.run_cli("neighbor", "192.0.2.1", "reset", "--soft", "in")
        self.assertEqual(code, cli.EXIT_REFUSED)
        self.assertIn("failed precondition", err)
        code, out, _ = await self.run_cli("neighbor", "add", "192.0.2.5", "--remote-as", "65005",
                                          "--passive", "--import-policy", "accept-all")
        self.assertEqual(code, 0, out)
        self.assertIn("192.0.2.5", self.svc.sessions.peers)
        code, _, err = await self.run_cli("neighbor", "add", "192.0.2.6", "--remote-as", "0")
        self.assertEqual(code, cli.EXIT_REFUSED)
        self.assertIn("neighbor.remote_as", err)
        code, out, _ = await self.run_cli("neighbor", "del", "192.0.2.5")
        self.assertEqual(code, 0)
        self.assertNotIn("192.0.2.5", self.svc.sessions.peers)

    @as_deferred
    async def test_route_add_show_del(self):
        """route add originates, show routes / show route --explain list it, route del withdraws."""
        code, out, err = await self.run_cli("route", "add", "203.0.113.0/24", "--next-hop", "192.0.2.254",
                                            "--med", "5", "--community", "65000:1")
        self.assertEqual((code, err), (0, ""))
        routes = await self.settle("203.0.113.0/24")
        self.assertEqual(routes[0]["attributes"]["med"], 5)
        code, out, _ = await self.run_cli("show", "routes")
        self.assertIn("*>", out)
        self.assertIn("203.0.113.0/24", out)
        code, out, _ = await self.run_cli("show", "route", "203.0.113.7", "--explain")
        self.assertIn("203.0.113.0/24 via 192.0.2.254 from local [best]", out)
        self.assertIn("communities 65000:1", out)
        code, _, err = await self.run_cli("route", "add", "2001:db8::/32", "--next-hop", "192.0.2.1")
        self.assertEqual(code, cli.EXIT_REFUSED)
        self.assertIn("paths[0].next_hop", err)
        code, out, _ = await self.run_cli("route", "del", "203.0.113.0/24")
        self.assertEqual((code, out), (0, "1 path(s) withdrawn\n"))

    @as_deferred
    async def test_watch_routes(self):
        """watch routes --dump --json prints one JSON document per line, end of dump included."""
        code, out, _ = await self.run_cli("--json", "watch", "routes", "--dump", "--count", "1")
        self.assertEqual(code, 0)
        self.assertEqual(json.loads(out.strip()), {"end_of_dump": {}})

    @as_deferred
    async def test_watch_peer_adj_rib_in(self):
        """watch routes --peer ADDR asks for that peer's Adj-RIB-In; --in without --peer is usage."""
        code, _, err = await self.run_cli("watch", "routes", "--peer", "192.0.2.1", "--in-pre")
        self.assertEqual(code, cli.EXIT_REFUSED)
        self.assertIn("failed precondition: peer: neighbor 192.0.2.1 is not Established", err)
        code, _, err = await self.run_cli("watch", "routes", "--in")
        self.assertEqual(code, cli.EXIT_USAGE)
        self.assertIn("--peer", err)

    @as_deferred
    async def test_usage_and_unreachable(self):
        """Bad usage exits 2 in one line; a socket with no bgpd behind it exits 3."""
        code, _, err = await self.run_cli("show", "nonsense")
        self.assertEqual(code, cli.EXIT_USAGE)
        self.assertEqual(len(err.strip().splitlines()), 1)
        out, errs = io.StringIO(), io.StringIO()
        code = await threads.deferToThread(cli.main, ["--socket", os.path.join(self.dir, "none.sock"),
                                                      "show", "summary"], out, errs)
        self.assertEqual(code, cli.EXIT_UNREACHABLE)
        self.assertIn("cannot reach bgpd", errs.getvalue())

    def test_console_script_runs(self):
        """The module runs as a program (what the bgpctl console script calls) and prints help."""
        r = subprocess.run([sys.executable, "-m", "bgpd.cli", "--help"], capture_output=True, text=True,
                           timeout=60)
        self.assertEqual(r.returncode, 0, r.stderr)
        self.assertIn("show", r.stdout)


POLICY = """
[sets.prefix.docs]
prefixes = ["203.0.113.0/24"]

[policies.in]
default = "accept"
[[policies.in.terms]]
name = "docs"
match = { prefix_set = "docs" }
action = { local_pref = 300, accept = true }
"""


class BgpctlCompletionTests(TestCase):
    def complete(self, *words: str) -> list[str]:
        """What bash offers after ``bgpctl WORDS`` (the last word is the one being completed)."""
        script = cli.completion_script("bash")
        line = " ".join(f"'{w}'" for w in ("bgpctl", *words))
        program = (f"{script}\nCOMP_WORDS=({line}); COMP_CWORD={len(words)}; _bgpctl; "
                   'printf "%s\\n" "${COMPREPLY[@]}"')
        r = subprocess.run(["bash", "-c", program], capture_output=True, text=True, timeout=30)
        self.assertEqual(r.returncode, 0, r.stderr)
        return sorted(x for x in r.stdout.splitlines() if x)

    def test_completion_follows_the_parser(self):
        """The generated script completes commands, subcommands and each command's own options."""
        self.assertEqual(self.complete("sh"), ["show"])
        self.assertEqual(self.complete("show", "rou"), ["route", "routes"])
        self.assertIn("--in-pre", self.complete("--json", "show", "routes", "--"))
        self.assertIn("--peer", self.complete("watch", "routes", "--family", "ipv4-unicast", "--p"))
        self.assertEqual(self.complete("--socket", "/tmp/x", "watch", "routes", "--pe"), ["--peer"])
        self.assertEqual(self.complete("policy", "explain", "192.0.2.1", "im"), ["import"])
        self.assertIn("--remote-as", self.complete("neighbor", "add", "192.0.2.9", "--re"))
        self.assertEqual(self.complete("neighbor", "192.0.2.1", "dis"), ["disable"])

    def test_completion_command_prints_it(self):
        """bgpctl completion bash prints the script (no bgpd needed)."""
        out, err = io.StringIO(), io.StringIO()
        self.assertEqual(cli.main(["completion", "bash"], out, err), 0)
        self.assertEqual(out.getvalue(), cli.completion_script("bash"))
        self.assertIn("complete -F _bgpctl bgpctl", out.getvalue())


class SocketFromEnvironmentTests(TestCase):
    def test_bgpd_socket_is_the_default(self):
        """$BGPD_SOCKET (a path or unix:PATH) is the socket without --socket/--target; else the default."""
        self.assertEqual(cli.default_target({"BGPD_SOCKET": "/run/x.sock"}), "unix:/run/x.sock")
        self.assertEqual(cli.default_target({"BGPD_SOCKET": "unix:/run/y.sock"}), "unix:/run/y.sock")
        self.assertEqual(cli.default_target({}, lambda p: False), DEFAULT_API_LISTEN)
        self.assertEqual(cli.default_target({"BGPD_SOCKET": ""}, lambda p: False), DEFAULT_API_LISTEN)

    @as_deferred
    async def test_main_uses_it(self):
        """bgpctl with $BGPD_SOCKET naming a dead socket says so (it tried that one)."""
        out, err = io.StringIO(), io.StringIO()
        code = await threads.deferToThread(cli.main, ["show", "summary"], out, err,
                                           {"BGPD_SOCKET": "/nonexistent/bgpd-test.sock"})
        self.assertEqual(code, cli.EXIT_UNREACHABLE)
        self.assertIn("unix:/nonexistent/bgpd-test.sock", err.getvalue())


class BgpctlPolicyTests(_CliCase):
    @as_deferred
    async def test_policy_commands(self):
        """policy check / rehearse / apply / show work on a candidate file; a bad file fails in one line."""
        path = os.path.join(self.dir, "candidate.toml")
        with open(path, "w") as f:
            f.write(POLICY)
        code, out, err = await self.run_cli("policy", "check", path)
        self.assertEqual((code, out, err), (0, f"{path}: OK (in)\n", ""))
        code, out, _ = await self.run_cli("policy", "rehearse", path)
        self.assertEqual((code, out), (0, ""))  # no Established peer to compare
        code, out, _ = await self.run_cli("policy", "apply", path)
        self.assertEqual((code, out), (0, "policies replaced: in\n"))
        code, out, _ = await self.run_cli("policy", "show")
        self.assertIn("[policies.in]", out)
        code, out, _ = await self.run_cli("policy", "apply", path, "--confirm", "300")
        self.assertEqual(code, 0)
        self.assertIn("rolled back in 300s", out)
        code, out, _ = await self.run_cli("policy", "show")
        self.assertIn("# unconfirmed", out)
        code, out, _ = await self.run_cli("policy", "confirm")
        self.assertEqual((code, out), (0, "policy replacement confirmed\n"))
        code, _, err = await self.run_cli("policy", "confirm")
        self.assertEqual(code, cli.EXIT_REFUSED)
        self.assertIn("no policy replacement awaits confirmation", err)
        with open(path, "w") as f:
            f.write("[policies.in]\ndefault = 3\n")
        code, _, err = await self.run_cli("policy", "check", path)
        self.assertEqual(code, cli.EXIT_REFUSED)
        self.assertIn("policies.in.default", err)
        self.assertEqual(len(err.splitlines()), 1)
        code, _, err = await self.run_cli("policy", "check", os.path.join(self.dir, "missing.toml"))
        self.assertEqual(code, cli.EXIT_REFUSED)
        self.assertIn("cannot read", err)


class BgpctlConfigTests(_CliCase):
    @as_deferred
    async def test_config_show(self):
        """config show prints the effective config, which parses back to the running one."""
        await self.run_cli("neighbor", "add", "192.0.2.7", "--remote-as", "65007", "--passive")
        code, out, err = await self.run_cli("config", "show")
        self.assertEqual((code, err), (0, ""))
        self.assertIn("# Neighbors set through the API: 192.0.2.7", out)
        self.assertIn(API_MARK, out)
        self.assertEqual(parse_config(out), self.svc.config)
