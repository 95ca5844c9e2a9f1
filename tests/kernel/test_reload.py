"""The kernel export policy and [kernel] on SIGHUP, against the real kernel in a namespace.

``[kernel] export_policy`` keeps a rejected prefix out of the kernel and
sets RTA_PREFSRC with ``kernel_source``; a reload of the config file
(``BgpdService.reload``, what SIGHUP runs) re-evaluates the kernel's routes
under a changed policy, moves them to a new metric, turns a family off and
on, and names the keys that need a restart.
"""

from __future__ import annotations

import os
import tempfile

from twisted.internet import defer
from twisted.internet.task import Clock
from twisted.internet.testing import MemoryReactorClock
from twisted.logger import globalLogPublisher
from twisted.trial.unittest import SynchronousTestCase

from bgpd.config import parse_config
from bgpd.kernel.service import KernelService
from bgpd.rib.testing import IPV4, IPV6, FakeSink, announce, make_peer, pfx
from bgpd.service import BgpdService
from bgpd.wire.negotiated import Negotiated
from tests.kernel.netns import Netns, gateways
from tests.rib.support import attrs

CONFIG = """
[bgp]
local_as = 65000
router_id = "192.0.2.1"
listen_addresses = []

[[neighbors]]
address = "192.0.2.2"
remote_as = 65001
import_policy = ["accept-all"]

[sets.prefix.drop]
prefixes = ["{drop}"]

[policies.to-kernel]
default = "accept"
[[policies.to-kernel.terms]]
name = "drop"
match = {{ prefix_set = "drop" }}
action = "reject"
[[policies.to-kernel.terms]]
name = "source"
action = {{ accept = true, kernel_source = "192.0.2.1" }}

[kernel]
table = {table}
metric = {metric}
ipv4 = {ipv4}
ipv6 = false
reconcile_time = 60
{extra}
"""
A1 = make_peer("192.0.2.2", 65001, local_address="192.0.2.1")
P1 = pfx("203.0.113.0/24")
P2 = pfx("198.51.100.0/24")


def sync(fn, *args):
    return defer.maybeDeferred(fn, *args)


def text(drop: str = "198.51.100.0/24", table: int = 100, metric: int = 20, ipv4: str = "true",
         extra: str = 'export_policy = "to-kernel"') -> str:
    return CONFIG.format(drop=drop, table=table, metric=metric, ipv4=ipv4, extra=extra)


class KernelReloadTests(SynchronousTestCase):
    def setUp(self) -> None:
        self.ns = Netns()
        self.addCleanup(self.ns.close)
        fd, self.path = tempfile.mkstemp(suffix=".toml")
        os.close(fd)
        self.addCleanup(os.unlink, self.path)
        self.events: list = []
        globalLogPublisher.addObserver(self.events.append)
        self.addCleanup(globalLogPublisher.removeObserver, self.events.append)

    def start(self, config_text: str) -> tuple[BgpdService, KernelService, Clock]:
        """A daemon (not started: no sessions) whose kernel service writes into the namespace."""
        self.write(config_text)
        clock = MemoryReactorClock()
        daemon = BgpdService(parse_config(config_text), self.path, clock)
        # The tree built a KernelService for the host's tables: never started, replaced by ours.
        daemon.kernel.disownServiceParent()
        rib = daemon.rib_service.rib
        ksvc = KernelService(daemon.config, rib, clock, netns=self.ns.name, defer_to_thread=sync,
                             watch_events=False)
        daemon.kernel = ksvc
        ksvc.startService()
        self.addCleanup(ksvc.stopService)
        rib.add_peer(A1, (IPV4, IPV6), Negotiated(ibgp=False, peer_as=65001), FakeSink(),
                     import_policy=("accept-all",))
        rib.receive(A1, announce(attrs(nh="192.0.2.2"), [P1, P2]))
        rib.drain()
        return daemon, ksvc, clock

    def write(self, config_text: str) -> None:
        with open(self.path, "w") as f:
            f.write(config_text)

    def reload(self, daemon: BgpdService, clock: Clock, config_text: str) -> None:
        self.write(config_text)
        self.assertTrue(daemon.reload())
        for _ in range(100):  # the re-evaluation runs a chunk per reactor turn
            clock.advance(0)

    def test_rejected_out_accepted_with_source(self):
        """A prefix the export policy rejects is not installed; an accepted one is, with src ADDR."""
        daemon, ksvc, clock = self.start(text())
        got = self.ns.routes(100)
        self.assertEqual(set(got), {"203.0.113.0/24"})
        self.assertEqual(got["203.0.113.0/24"]["prefsrc"], "192.0.2.1")
        self.assertEqual(gateways(got["203.0.113.0/24"]), ["192.0.2.2"])
        self.assertEqual(ksvc.writer.state(IPV4, P1), "installed")
        self.assertEqual(ksvc.writer.state(IPV4, P2), "filtered")

    def test_policy_change_on_sighup_reevaluates(self):
        """A changed policy in the reloaded file takes P1 out and puts P2 in."""
        daemon, ksvc, clock = self.start(text())
        self.reload(daemon, clock, text(drop="203.0.113.0/24"))
        got = self.ns.routes(100)
        self.assertEqual(set(got), {"198.51.100.0/24"})
        self.assertEqual(got["198.51.100.0/24"]["prefsrc"], "192.0.2.1")
        self.assertEqual(ksvc.writer.state(IPV4, P1), "filtered")

    def test_policy_replaced_through_the_api(self):
        """ReplacePolicy (the API's Control) re-evaluates the kernel's routes as SIGHUP does."""
        from bgpd.api.control import Control

        daemon, ksvc, clock = self.start(text())
        policies = text(drop="203.0.113.0/24").split("[sets.prefix.drop]", 1)[1].split("[kernel]")[0]
        Control(daemon).replace_policy("[sets.prefix.drop]" + policies)
        for _ in range(100):
            clock.advance(0)
        self.assertEqual(set(self.ns.routes(100)), {"198.51.100.0/24"})
        self.assertEqual(ksvc.writer.state(IPV4, P1), "filtered")

    def test_policy_removed_on_sighup(self):
        """Without export_policy after the reload, every best path goes in, without a source."""
        daemon, ksvc, clock = self.start(text())
        self.reload(daemon, clock, text(extra=""))
        got = self.ns.routes(100)
        self.assertEqual(set(got), {"203.0.113.0/24", "198.51.100.0/24"})
        self.assertNotIn("prefsrc", got["198.51.100.0/24"])
        self.assertNotIn("prefsrc", got["203.0.113.0/24"])

    def test_metric_change(self):
        """A new metric: the routes are at the new metric only, none left at the old one."""
        daemon, ksvc, clock = self.start(text(extra=""))
        self.reload(daemon, clock, text(extra="", metric=30))
        got = self.ns.routes(100)
        self.assertEqual(set(got), {"203.0.113.0/24", "198.51.100.0/24"})
        self.assertEqual({r["metric"] for r in got.values()}, {30})
        # New routes after the change go in at the new metric too.
        daemon.rib_service.rib.receive(A1, announce(attrs(nh="192.0.2.2"), [pfx("192.0.2.128/25")]))
        daemon.rib_service.rib.drain()
        self.assertEqual(self.ns.routes(100)["192.0.2.128/25"]["metric"], 30)

    def test_family_off_and_on(self):
        """ipv4 = false removes the IPv4 routes; true again installs them from the Loc-RIB."""
        daemon, ksvc, clock = self.start(text(extra=""))
        self.reload(daemon, clock, text(extra="", ipv4="false"))
        self.assertEqual(self.ns.routes(100), {})
        self.reload(daemon, clock, text(extra="", ipv4="true"))
        self.assertEqual(set(self.ns.routes(100)), {"203.0.113.0/24", "198.51.100.0/24"})

    def test_restart_keys_logged(self):
        """A changed table is named in one log line and not applied; the metric still is."""
        daemon, ksvc, clock = self.start(text(extra=""))
        self.reload(daemon, clock, text(extra="", table=101, metric=40))
        lines = [e for e in self.events if "restart" in e.get("log_format", "") and e.get("keys")]
        self.assertEqual([e["keys"] for e in lines], ["kernel.table"])
        everywhere = self.ns.routes("all")  # type: ignore[arg-type]
        self.assertEqual({r.get("table") for r in everywhere.values()}, {"100"})
        self.assertEqual({r["metric"] for r in self.ns.routes(100).values()}, {40})
