"""Interop: pmacct's BMP collector ``pmbmpd`` reads bgpd's BMP stream (RFC 7854).

bgpd (AS65000) has an eBGP session with BIRD 2 (AS65001), IPv4 and IPv6
unicast, in namespaces made by the test (``harness.Lab``).  ``pmbmpd``
(Debian's pmacct) listens on loopback inside bgpd's namespace and logs every
BMP message it reads as JSON (``bmp_daemon_msglog_file``).  bgpd keeps the
pre-policy table (``soft_reconfiguration_inbound``) and tags the routes it
accepts with a community, so the two views differ.  Checked, from pmbmpd's
log alone:

* Initiation (4.3) with bgpd's sysName, and the Peer Up (4.10) of the BIRD
  session: BIRD's address, AS and BGP Identifier, both ports;
* Route Monitoring (4.6) of every prefix BIRD announced, pre-policy (as
  BIRD sent it: AS_PATH 65001, no tag) and post-policy (L flag: the tag);
* the Loc-RIB (RFC 9069: BIRD's routes and bgpd's own) and the Adj-RIB-Out
  towards BIRD (RFC 8671: bgpd's own route, with bgpd's AS);
* Statistics Reports (4.8): the Adj-RIB-In route count;
* the Peer Down (4.9) once BIRD stops, with the reason BIRD gave (its Cease
  NOTIFICATION, reason 3);
* the Termination (4.5) once a SIGHUP has taken the collector out of the
  config.

Needs root and pmacct; skips without them (fails under CI=true).
"""

from __future__ import annotations

import json
import os
import signal
import textwrap
from typing import Any, ClassVar

from twisted.trial.unittest import SynchronousTestCase

from tests.interop import harness
from tests.interop.bgpd_driver import BgpdDriver, BgpdNeighbor
from tests.interop.harness import Bird, Lab, Neighbor, Process, poll

BGPD_AS = 65000
BIRD_AS = 65001
TAG = "65000:77"
BMP_PORT = 1790
ROUTES = {"198.51.100.0/25": {"med": 5}, "198.51.100.128/26": {},
          "2001:db8:100::/48": {}, "2001:db8:101::/48": {"communities": ["65001:9"]}}
TIMEOUT = 40.0
#: bgpd's own route: in its Loc-RIB, and sent to BIRD (its Adj-RIB-Out).
OWN = "198.51.100.192/27"

POLICY = f"""
[policies.tag-in]
default = "reject"
[[policies.tag-in.terms]]
name = "tag"
action = {{ accept = true, add_communities = ["{TAG}"] }}
"""

BMP = f"""
[bmp]
sys_name = "bgpd-interop"
sys_descr = "bgpd under test"
[[bmp.collector]]
name = "pmacct"
address = "127.0.0.1"
port = {BMP_PORT}
monitoring = ["pre-policy", "post-policy", "adj-rib-out", "loc-rib"]
statistics_interval = 2
retry_time = 2
"""


class BmpBgpd(BgpdDriver):
    """The driver's config plus the policy and (while ``bmp``) the [bmp] section."""

    bmp = True

    def config_text(self) -> str:
        return super().config_text() + "\n" + POLICY + ("\n" + BMP if self.bmp else "")


class Pmbmpd:
    """pmacct's BMP collector in a namespace, logging every message as JSON."""

    def __init__(self, ns: harness.Netns) -> None:
        self.ns = ns
        self.dir = os.path.join(ns.workdir, "pmbmpd")
        os.makedirs(self.dir, exist_ok=True)
        self.msglog = os.path.join(self.dir, "bmp.json")
        self.proc: Process | None = None

    def start(self) -> Pmbmpd:
        harness.require_binary("pmbmpd")
        conf = os.path.join(self.dir, "pmbmpd.conf")
        with open(conf, "w") as f:
            f.write(textwrap.dedent(f"""\
                bmp_daemon_ip: 127.0.0.1
                bmp_daemon_port: {BMP_PORT}
                bmp_daemon_msglog_file: {self.msglog}
                bmp_daemon_msglog_output: json
                logfile: {os.path.join(self.dir, 'pmbmpd.log')}
                """))
        self.proc = self.ns.popen(["pmbmpd", "-f", conf], log_name="pmbmpd.out")
        poll(lambda: os.path.exists(os.path.join(self.dir, "pmbmpd.log"))
             and "waiting for BMP data" in self.log(), 20, 0.1, "pmbmpd to listen")
        return self

    def stop(self) -> None:
        if self.proc is not None:
            self.proc.stop()

    def log(self) -> str:
        try:
            with open(os.path.join(self.dir, "pmbmpd.log")) as f:
                return f.read()
        except OSError:
            return ""

    def messages(self) -> list[dict[str, Any]]:
        """Every JSON record logged so far (a line cut mid-write is left for later)."""
        out = []
        try:
            with open(self.msglog) as f:
                for line in f:
                    try:
                        out.append(json.loads(line))
                    except ValueError:
                        pass
        except OSError:
            pass
        return out

    def of(self, kind: str) -> list[dict[str, Any]]:
        return [m for m in self.messages() if m.get("bmp_msg_type") == kind]


class PmbmpdTests(SynchronousTestCase):
    """bgpd's BMP stream as pmbmpd logs it: peer up, the routes, statistics, peer down."""

    lab: ClassVar[Lab | None] = None

    def setUp(self) -> None:
        harness.require_root()
        harness.require_binary("pmbmpd")
        harness.require_binary("bird")
        self.lab = lab = Lab(["bgpd", "bird"]).open()
        self.addCleanup(lab.close)
        b = lab["bgpd"]
        self.bird_ip = lab["bird"].ipv4
        self.pm = Pmbmpd(b.ns).start()
        self.addCleanup(self.pm.stop)
        neighbor = BgpdNeighbor(self.bird_ip, BIRD_AS,
                                keys={"import_policy": ["tag-in"],
                                      "soft_reconfiguration_inbound": True})
        self.bgpd = BmpBgpd(b.ns, BGPD_AS, b.router_id, [neighbor], mrai_ebgp=0,
                            originate=[{"prefix": OWN}])
        self.bird = Bird(lab["bird"].ns, BIRD_AS, lab["bird"].router_id,
                         [Neighbor(b.ipv4, BGPD_AS, passive=True, families=("ipv4", "ipv6"),
                                   local_address=lab["bird"].ipv4)], routes=ROUTES)
        self.bird.start()
        self.addCleanup(self.bird.stop)
        self.bgpd.start()
        self.addCleanup(self.bgpd.stop)
        self.bgpd.wait_established(self.bird_ip, TIMEOUT)

    def explain(self) -> str:
        return (f"\n--- pmbmpd messages:\n{json.dumps(self.pm.messages()[-40:], indent=0)[-5000:]}"
                f"\n--- pmbmpd log:\n{self.pm.log()[-2000:]}\n--- bgpd log:\n{self.bgpd.log()[-4000:]}")

    def wait(self, what: str, check: Any) -> Any:
        try:
            return poll(check, TIMEOUT, 0.25, what)
        except AssertionError:
            self.fail(f"pmbmpd never logged {what}" + self.explain())

    def view(self, **flags: int) -> dict[str, dict[str, Any]]:
        """The announced routes pmbmpd logged with every one of ``flags`` (is_post, is_out...)."""
        return {m["ip_prefix"]: m for m in self.pm.of("route_monitor")
                if all(m.get(k) == v for k, v in flags.items())
                and "ip_prefix" in m and m.get("log_type") == "update"}

    def routes(self, post: int) -> dict[str, dict[str, Any]]:
        return self.view(is_post=post, is_in=1, peer_ip=self.bird_ip)

    def test_stream(self):
        """Initiation, Peer Up, pre- and post-policy routes, statistics, then the Peer Down."""
        init = self.wait("the Initiation", lambda: self.pm.of("init"))
        self.assertEqual(init[0].get("bmp_init_info_sysname"), "bgpd-interop")
        ups = self.wait("BIRD's Peer Up", lambda: [m for m in self.pm.of("peer_up")
                                                   if m.get("peer_ip") == self.bird_ip])
        up = ups[0]
        self.assertEqual((up["peer_asn"], up["bgp_id"]), (BIRD_AS, self.lab["bird"].router_id))
        self.assertEqual(up.get("local_ip"), self.lab["bgpd"].ipv4)
        self.assertIn(179, (up.get("local_port"), up.get("remote_port")))

        want = set(ROUTES)
        self.wait("every route pre-policy", lambda: want <= set(self.routes(0)))
        self.wait("every route post-policy", lambda: want <= set(self.routes(1)))
        problems = []
        for prefix, m in self.routes(0).items():
            if m.get("as_path") != str(BIRD_AS):
                problems.append(f"pre-policy {prefix}: AS path {m.get('as_path')!r}")
            if TAG in (m.get("comms") or ""):
                problems.append(f"pre-policy {prefix} carries bgpd's tag: {m}")
        for prefix, m in self.routes(1).items():
            if TAG not in (m.get("comms") or ""):
                problems.append(f"post-policy {prefix} lacks the tag {TAG}: {m}")
        if self.routes(0)["198.51.100.0/25"].get("med") != 5:
            problems.append(f"MED lost: {self.routes(0)['198.51.100.0/25']}")
        if problems:
            self.fail("\n".join(problems) + self.explain())

        # RFC 9069: the Loc-RIB instance (peer type 3) holds BIRD's routes and ours;
        # RFC 8671: what bgpd sent BIRD (its own route, bgpd's AS first).
        self.wait("the Loc-RIB", lambda: want | {OWN} <= set(self.view(is_loc=1)))
        out = self.wait("the Adj-RIB-Out", lambda: self.view(is_out=1, peer_ip=self.bird_ip).get(OWN))
        self.assertEqual(out.get("as_path"), str(BGPD_AS), out)

        def counted() -> bool:
            return any(s.get("counter_type") == 7 and s.get("counter_value") == len(ROUTES)
                       and s.get("peer_ip") == self.bird_ip for s in self.pm.of("stats"))
        self.wait("a Statistics Report with the Adj-RIB-In count", counted)

        self.bird.stop()
        downs = self.wait("BIRD's Peer Down", lambda: [m for m in self.pm.of("peer_down")
                                                       if m.get("peer_ip") == self.bird_ip])
        self.assertIn(downs[0].get("reason_type"), (3, 4), downs[0])

        # SIGHUP without [bmp]: the station gets a Termination (administratively closed).
        self.bgpd.bmp = False
        self.bgpd.write_config()
        self.bgpd.proc.signal(signal.SIGHUP)
        terms = self.wait("the Termination after SIGHUP", lambda: self.pm.of("term"))
        self.assertIn("administratively", terms[0].get("bmp_term_info_reason", ""), terms[0])
        self.assertNotIn("Traceback", self.bgpd.log(), self.bgpd.log()[-4000:])
