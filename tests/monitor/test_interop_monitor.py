"""Interop: bgpd's MRT dump read by bgpdump, and its metrics scraped over HTTP, with BIRD.

BIRD 2 (AS65001) in a namespace announces IPv4 routes over an IPv4 session
and IPv6 routes over an IPv6 session, each with its own AS path (BIRD
prepends).  bgpd dumps its Loc-RIB (RFC 6396 TABLE_DUMP_V2, through the
API's DumpRib, as ``bgpctl dump rib`` does); ``bgpdump -m`` (Debian's
bgpdump) must list exactly the Loc-RIB's prefixes with the AS paths BIRD
sent, plain and gzip-compressed; the ``[mrt] updates`` log (BGP4MP) lists
BIRD's UPDATEs and the state changes.  The Prometheus endpoint, scraped over
HTTP inside bgpd's namespace during the run, shows both sessions
Established with the prefix counts, then the session down after BIRD stops.
Needs root, BIRD and bgpdump; skips without them (fails under CI=true).
"""

from __future__ import annotations

import io
import json
import os
import subprocess
import sys

from prometheus_client.parser import text_string_to_metric_families
from twisted.trial.unittest import SynchronousTestCase

from bgpd import cli
from tests.interop import harness
from tests.interop.bgpd_driver import BgpdDriver, BgpdNeighbor
from tests.interop.harness import Bird, Lab, Neighbor, poll

BGPD_AS, BIRD_AS = 65000, 65001
METRICS_PORT = 9179
V4_ROUTES = {f"198.51.100.{16 * i}/28": {"as_path": [BIRD_AS] * (i % 3) + [64500 + i]}
             for i in range(12)}
V6_ROUTES = {f"2001:db8:1{i:02x}::/48": {"as_path": [64600 + i]} for i in range(6)}
TIMEOUT = 40.0

_SCRAPE = ("import sys, urllib.request; "
           "sys.stdout.write(urllib.request.urlopen(sys.argv[1], timeout=10).read().decode())")


class _Bgpd(BgpdDriver):
    """The interop driver with extra config sections ([api], [monitor]) appended."""

    extra = ""

    def config_text(self) -> str:
        return super().config_text() + "\n" + self.extra


class MonitorInteropTests(SynchronousTestCase):
    """bgpdump reads the Loc-RIB dump; the metrics follow the BIRD sessions."""

    def setUp(self) -> None:
        harness.require_root()
        harness.require_binary("bird")
        harness.require_binary("bgpdump")
        self.lab = Lab(["bgpd", "bird"]).open()
        self.addCleanup(self.lab.close)
        b, r = self.lab["bgpd"], self.lab["bird"]
        routes = {**V4_ROUTES, **V6_ROUTES}
        self.bird = Bird(r.ns, BIRD_AS, r.router_id,
                         [Neighbor(b.ipv4, BGPD_AS, passive=True),
                          Neighbor(b.ipv6, BGPD_AS, passive=True)], routes=routes)
        neighbors = [BgpdNeighbor(r.ipv4, BIRD_AS, families=("ipv4-unicast",)),
                     BgpdNeighbor(r.ipv6, BIRD_AS, families=("ipv6-unicast",))]
        self.bgpd = _Bgpd(b.ns, BGPD_AS, b.router_id, neighbors, mrai_ebgp=0)
        self.socket = os.path.join(self.bgpd.dir, "api.sock")
        self.mrt_dir = os.path.join(self.bgpd.dir, "mrt")
        self.bgpd.extra = (f'[api]\nlisten = "unix:{self.socket}"\n\n'
                           f'[monitor]\nmetrics_listen = "{METRICS_PORT}"\nhistory_size = 16\n\n'
                           f'[mrt]\ndirectory = "{self.mrt_dir}"\ntables = []\nupdates = true\n'
                           'interval = 3600\nfile_pattern = "{table}.%Y%m%d.%H%M.mrt"\n')
        self.bird.start()
        self.bgpd.start()
        self.addCleanup(self.bgpd.stop)
        self.addCleanup(self.bird.stop)
        self.bgpd.wait_established(r.ipv4, TIMEOUT)
        self.bgpd.wait_established(r.ipv6, TIMEOUT)

    def cli(self, *argv: str) -> tuple[int, str, str]:
        out, err = io.StringIO(), io.StringIO()
        code = cli.main(["--socket", self.socket, *argv], out, err)
        return code, out.getvalue(), err.getvalue()

    def scrape(self) -> dict[tuple, float]:
        """GET /metrics inside bgpd's namespace (loopback), parsed by prometheus_client."""
        r = self.lab["bgpd"].ns.run([sys.executable, "-c", _SCRAPE,
                                     f"http://127.0.0.1:{METRICS_PORT}/metrics"])
        out = {}
        for fam in text_string_to_metric_families(r.stdout):
            for s in fam.samples:
                out[(s.name, tuple(sorted(s.labels.items())))] = s.value
        return out

    def loc_rib(self) -> dict[str, list[int]]:
        """prefix -> AS path of the best path, from the API (bgpctl --json show routes)."""
        table = {}
        for family in ("ipv4-unicast", "ipv6-unicast"):
            code, out, err = self.cli("--json", "show", "routes", "--family", family)
            self.assertEqual(code, 0, err)
            for route in json.loads(out).get("routes", []):
                path = [int(a) for seg in route["attributes"].get("as_path", [])
                        for a in seg.get("asns", [])]
                table[route["prefix"]] = path
        return table

    def test_bgpdump_lists_the_loc_rib(self):
        """bgpdump -m lists every Loc-RIB prefix once, with BIRD's AS paths, plain and gzip."""
        want = {p: [BIRD_AS, *a["as_path"]] for p, a in {**V4_ROUTES, **V6_ROUTES}.items()}

        def learned() -> bool:
            return self.loc_rib() == want

        poll(learned, TIMEOUT, 0.5, "bgpd's Loc-RIB to hold every BIRD route")
        loc = self.loc_rib()
        for compression, name in (("none", "rib.mrt"), ("gzip", "rib.mrt.gz")):
            path = os.path.join(self.bgpd.dir, name)
            code, out, err = self.cli("dump", "rib", path, "--compression", compression)
            self.assertEqual(code, 0, err)
            lines = subprocess.run(["bgpdump", "-m", path], capture_output=True, text=True,
                                   timeout=60, check=True).stdout.splitlines()
            got: dict[str, list[int]] = {}
            for line in lines:
                f = line.split("|")
                self.assertEqual(f[0], "TABLE_DUMP2", line)
                self.assertNotIn(f[5], got, f"{f[5]} listed twice")
                got[f[5]] = [int(x) for x in f[6].split()]
                self.assertIn(f[3], (self.lab["bird"].ipv4, self.lab["bird"].ipv6), line)
                self.assertEqual(f[4], str(BIRD_AS), line)
            self.assertEqual(got, loc, compression)

    def test_updates_log(self):
        """The [mrt] updates log: bgpdump lists BIRD's UPDATEs with their AS paths and the state changes."""
        want = {p: [BIRD_AS, *a["as_path"]] for p, a in {**V4_ROUTES, **V6_ROUTES}.items()}
        poll(lambda: self.loc_rib() == want, TIMEOUT, 0.5, "bgpd's Loc-RIB to hold every BIRD route")
        self.bgpd.stop()  # the log's file is complete (renamed from .tmp) once bgpd has stopped
        # One file per hour: a run across the hour has two.
        files = sorted(os.path.join(self.mrt_dir, f) for f in os.listdir(self.mrt_dir))
        self.assertTrue(files and all(os.path.basename(f).startswith("updates.")
                                      and f.endswith(".mrt") for f in files), files)
        lines = []
        for path in files:
            lines += subprocess.run(["bgpdump", "-m", path], capture_output=True, text=True,
                                    timeout=60, check=True).stdout.splitlines()
        announced: dict[str, list[int]] = {}
        states = []
        for line in lines:
            f = line.split("|")
            self.assertEqual(f[0], "BGP4MP_ET", line)
            if f[2] == "A":
                announced[f[5]] = [int(x) for x in f[6].split()]
            elif f[2] == "STATE":
                states.append((f[3], f[5], f[6]))
        self.assertEqual(announced, want)
        for addr in (self.lab["bird"].ipv4, self.lab["bird"].ipv6):
            self.assertIn((addr, "5", "6"), states)  # OpenConfirm -> Established

    def test_metrics_follow_the_sessions(self):
        """Metrics over HTTP: both sessions up with their prefix counts; BIRD gone, down and a flap."""
        r = self.lab["bird"]
        v4 = (("family", "ipv4-unicast"), ("peer", r.ipv4), ("table", "accepted"))
        v6 = (("family", "ipv6-unicast"), ("peer", r.ipv6), ("table", "accepted"))

        def counted() -> bool:
            s = self.scrape()
            return (s.get(("bgpd_peer_prefixes", v4)) == len(V4_ROUTES)
                    and s.get(("bgpd_peer_prefixes", v6)) == len(V6_ROUTES))

        poll(counted, TIMEOUT, 0.5, "the metrics to count every BIRD route")
        s = self.scrape()
        for addr in (r.ipv4, r.ipv6):
            self.assertEqual(s[("bgpd_peer_state", (("peer", addr),))], 6)
            self.assertEqual(s[("bgpd_peer_up", (("peer", addr),))], 1)
            self.assertGreater(s[("bgpd_peer_messages_received_total",
                                  (("peer", addr), ("type", "update")))], 0)
        self.assertEqual(s[("bgpd_rib_prefixes", (("family", "ipv4-unicast"), ("table", "loc-rib")))],
                         len(V4_ROUTES))
        self.assertEqual(s[("bgpd_rib_prefixes", (("family", "ipv6-unicast"), ("table", "loc-rib")))],
                         len(V6_ROUTES))
        self.assertIn(("bgpd_reactor_lag_seconds_count", ()), s)
        self.bird.stop()

        def down() -> bool:
            s = self.scrape()
            return s.get(("bgpd_peer_up", (("peer", r.ipv4),))) == 0

        poll(down, TIMEOUT, 0.5, "the metrics to show the BIRD session down")
        s = self.scrape()
        self.assertEqual(s[("bgpd_peer_flaps_total", (("peer", r.ipv4),))], 1)
        self.assertEqual(s[("bgpd_rib_prefixes", (("family", "ipv4-unicast"), ("table", "loc-rib")))], 0)
        code, out, err = self.cli("show", "neighbor", r.ipv4)
        self.assertEqual(code, 0, err)
        self.assertIn("Session history", out)
        self.assertIn("Established -> ", out)
        self.assertNotIn("Traceback", self.bgpd.log())
