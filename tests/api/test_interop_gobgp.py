"""Interop: bgpctl drives a real bgpd peering a real GoBGP in network namespaces.

bgpd (AS65000) and gobgpd (AS65003) on one segment (``harness.Lab``:
192.0.2.0/24, 2001:db8::/64); bgpd serves its API on a Unix socket in its
work directory, and ``bgpctl`` (this interpreter, ``-m bgpd.cli``) talks to
it.  Checked: a path originated with ``bgpctl route add`` reaches GoBGP
(RFC 4271 9.1.3, AS_PATH bgpd's AS alone), ``bgpctl show routes --json``
lists what GoBGP announced, ``bgpctl route del`` withdraws it, and a
neighbor added with ``bgpctl neighbor add`` comes up, and a path held by a
HoldPaths client (a lease on its stream) leaves GoBGP when that client is
killed with SIGKILL, and ``bgpctl watch routes --peer`` follows GoBGP's
routes in bgpd's Adj-RIB-In.  Needs root; skips without it (fails under CI=true,
like the harness).
"""

from __future__ import annotations

import json
import os
import queue
import signal
import subprocess
import sys
import threading

from twisted.trial.unittest import SynchronousTestCase

from tests.interop import harness
from tests.interop.bgpd_driver import BgpdDriver, BgpdNeighbor
from tests.interop.harness import GoBGP, Lab, Neighbor

BGPD_AS = 65000
GOBGP_AS = 65003
TIMEOUT = 40.0
REPO = os.path.dirname(os.path.dirname(os.path.dirname(os.path.abspath(__file__))))


class _ApiBgpd(BgpdDriver):
    """The harness's bgpd driver with an ``[api]`` table on a Unix socket."""

    def __init__(self, *args, **kw) -> None:
        super().__init__(*args, **kw)
        self.socket = os.path.join(self.dir, "api.sock")

    def config_text(self) -> str:
        return super().config_text() + f'\n[api]\nlisten = "unix:{self.socket}"\n'


class GoBGPApiTests(SynchronousTestCase):
    def setUp(self):
        harness.require_root()
        harness.require_binary("gobgpd")
        self.lab = lab = Lab(["bgpd", "gobgp"]).open()
        self.addCleanup(lab.close)
        b, g = lab["bgpd"], lab["gobgp"]
        self.gobgp = GoBGP(g.ns, GOBGP_AS, g.router_id,
                           [Neighbor(b.ipv4, BGPD_AS, passive=True), Neighbor(b.ipv6, BGPD_AS, passive=True)],
                           routes={"198.51.100.16/28": {"med": 7, "communities": ["65003:7"]}})
        self.gobgp.start()
        self.addCleanup(self.gobgp.stop)
        self.bgpd = _ApiBgpd(b.ns, BGPD_AS, b.router_id, [BgpdNeighbor(
            g.ipv4, GOBGP_AS, families=("ipv4-unicast",),
            keys={"import_policy": ["accept-all"], "export_policy": ["accept-all"]})])
        self.bgpd.start()
        self.addCleanup(self.bgpd.stop)
        self.bgpd.wait_established(g.ipv4, TIMEOUT)

    def bgpctl(self, *argv: str) -> subprocess.CompletedProcess:
        return subprocess.run([sys.executable, "-m", "bgpd.cli", "--socket", self.bgpd.socket, *argv],
                              capture_output=True, text=True, timeout=60, cwd=REPO)

    def test_route_add_reaches_gobgp(self):
        """bgpctl route add reaches GoBGP; show routes --json lists GoBGP's; route del withdraws."""
        g = self.lab["gobgp"]
        r = self.bgpctl("route", "add", "198.51.100.128/28", "--next-hop", self.lab["bgpd"].ipv4,
                        "--community", "65000:5")
        self.assertEqual(r.returncode, 0, r.stderr)
        route = self.gobgp.wait_route("198.51.100.128/28", TIMEOUT)
        self.assertEqual(tuple(route.as_path), (BGPD_AS,))
        self.assertIn("65000:5", route.communities)

        def listed():
            out = self.bgpctl("--json", "show", "routes", "--peer", g.ipv4, "--in")
            if out.returncode != 0:
                return None
            return [x for x in json.loads(out.stdout)["routes"] if x["prefix"] == "198.51.100.16/28"] or None

        got = harness.poll(listed, TIMEOUT, 0.5, "bgpctl to list GoBGP's route")
        self.assertEqual(got[0]["attributes"]["med"], 7)
        self.assertEqual(got[0]["source_peer"], g.ipv4)
        r = self.bgpctl("route", "del", "198.51.100.128/28")
        self.assertEqual(r.returncode, 0, r.stderr)
        self.gobgp.wait_no_route("198.51.100.128/28", TIMEOUT)

    def test_watch_peer_adj_rib_in(self):
        """bgpctl watch routes --peer GOBGP --dump: its table, end of dump, then its announce and withdraw."""
        g = self.lab["gobgp"]
        def listed():
            out = self.bgpctl("--json", "show", "routes", "--peer", g.ipv4, "--in")
            return out.returncode == 0 and json.loads(out.stdout).get("routes")

        harness.poll(listed, TIMEOUT, 0.5, "GoBGP's route in bgpd's Adj-RIB-In")
        proc = subprocess.Popen([sys.executable, "-m", "bgpd.cli", "--socket", self.bgpd.socket, "--json",
                                 "watch", "routes", "--peer", g.ipv4, "--in", "--dump"],
                                stdout=subprocess.PIPE, stderr=subprocess.DEVNULL, text=True, cwd=REPO)
        self.addCleanup(proc.stdout.close)
        self.addCleanup(lambda: (proc.poll() is None and proc.kill(), proc.wait(30)))
        lines: queue.Queue = queue.Queue()
        # A thread reads the stream, so that every wait below is bounded.
        threading.Thread(target=lambda: [lines.put(json.loads(x)) for x in proc.stdout], daemon=True).start()

        def next_event() -> dict:
            try:
                return lines.get(timeout=TIMEOUT)
            except queue.Empty:
                self.fail("bgpctl watch printed nothing in time")

        first, end = next_event(), next_event()
        self.assertEqual(first["update"]["prefix"], "198.51.100.16/28")
        self.assertEqual(first["update"]["source_peer"], g.ipv4)
        self.assertEqual(first["update"]["attributes"]["med"], 7)
        self.assertIn("end_of_dump", end)
        self.gobgp.announce("198.51.100.64/28", med=9)
        added = next_event()
        self.assertEqual((added["update"]["prefix"], added["update"]["attributes"]["med"]),
                         ("198.51.100.64/28", 9))
        self.gobgp.withdraw("198.51.100.64/28")
        self.assertEqual(next_event(), {"withdraw": {"prefix": "198.51.100.64/28", "family": "ipv4-unicast"}})

    def test_neighbor_add_comes_up(self):
        """A neighbor added with bgpctl neighbor add (GoBGP over IPv6) reaches Established."""
        g = self.lab["gobgp"]
        r = self.bgpctl("neighbor", "add", g.ipv6, "--remote-as", str(GOBGP_AS), "--family", "ipv6-unicast",
                        "--import-policy", "accept-all", "--export-policy", "accept-all")
        self.assertEqual(r.returncode, 0, r.stderr)
        self.bgpd.wait_established(g.ipv6, TIMEOUT)

        def established():
            out = self.bgpctl("--json", "show", "neighbor", g.ipv6)
            return out.returncode == 0 and json.loads(out.stdout)["state"] == "Established"

        harness.poll(established, TIMEOUT, 0.5, "bgpctl to show the added neighbor Established")

    def test_lease_bound_route_goes_when_client_killed(self):
        """A path held by a HoldPaths client reaches GoBGP and is withdrawn when the client is killed -9."""
        proc = subprocess.Popen([sys.executable, "-c", HOLDER, f"unix:{self.bgpd.socket}",
                                 "198.51.100.192/28", self.lab["bgpd"].ipv4],
                                stdout=subprocess.PIPE, text=True, cwd=REPO)
        self.addCleanup(proc.stdout.close)
        self.addCleanup(lambda: proc.poll() is None and proc.kill())
        self.assertEqual(proc.stdout.readline().strip(), "held 1")
        self.gobgp.wait_route("198.51.100.192/28", TIMEOUT)
        proc.send_signal(signal.SIGKILL)
        proc.wait(30)
        self.gobgp.wait_no_route("198.51.100.192/28", TIMEOUT)


HOLDER = r"""
import sys, time
import grpc
from bgpd.api._gen.bgpd.v1 import routes_pb2, routes_pb2_grpc
stub = routes_pb2_grpc.RoutesStub(grpc.insecure_channel(sys.argv[1]))
def requests():
    yield routes_pb2.AddPathsRequest(paths=[routes_pb2.OriginatePath(prefix=sys.argv[2],
                                                                     next_hop=sys.argv[3])])
    time.sleep(600)  # holds the stream open until killed
for r in stub.HoldPaths(requests()):
    print("held", r.count, flush=True)
"""
