"""The kernel flag per path in ListRoutes (and bgpctl show routes), through a real in-process grpc server.

The daemon's RIB feeds a kernel writer in the test's namespace; the flag
is looked up per listed path in the writer's tables (Control ->
KernelService.path_state), so nothing is kept per route.
"""

from __future__ import annotations

import io

import grpc
from twisted.internet import defer, reactor, threads
from twisted.trial.unittest import TestCase

from bgpd import cli
from bgpd.api._gen.bgpd.v1 import routes_pb2, routes_pb2_grpc
from bgpd.config import parse_config
from bgpd.kernel.service import KernelService
from bgpd.rib.testing import IPV4, FakeSink, announce, make_peer, pfx
from bgpd.service import BgpdService
from bgpd.wire.negotiated import Negotiated
from tests.deferreds import as_deferred
from tests.kernel.netns import Netns
from tests.rib.support import attrs

BASE = """
[bgp]
local_as = 65000
router_id = "192.0.2.1"
listen_addresses = []

[api]
listen = "127.0.0.1:0"

[sets.prefix.drop]
prefixes = ["198.51.100.0/24"]
[sets.prefix.bad-source]
prefixes = ["192.0.2.128/25"]

[policies.to-kernel]
default = "accept"
[[policies.to-kernel.terms]]
name = "drop"
match = { prefix_set = "drop" }
action = "reject"
[[policies.to-kernel.terms]]
name = "not-ours"
match = { prefix_set = "bad-source" }
action = { accept = true, kernel_source = "198.51.100.99" }
"""
KERNEL = """
[kernel]
table = 100
ipv6 = false
export_policy = "to-kernel"
"""
A1 = make_peer("192.0.2.2", 65001, local_address="192.0.2.1")
A2 = make_peer("192.0.2.3", 65002, local_address="192.0.2.1")
P1 = pfx("203.0.113.0/24")
P2 = pfx("198.51.100.0/24")
P3 = pfx("192.0.2.128/25")
TIMEOUT = 10.0


def sync(fn, *args):
    return defer.maybeDeferred(fn, *args)


class KernelFlagTests(TestCase):
    timeout = 60

    def setUp(self):
        self.ns = Netns()
        self.addCleanup(self.ns.close)
        self.daemon = BgpdService(parse_config(BASE), None, reactor)
        self.daemon.startService()
        self.addCleanup(self.daemon.stopService)
        self.channel = grpc.insecure_channel(self.daemon.api.server.target)
        self.addCleanup(self.channel.close)
        self.routes = routes_pb2_grpc.RoutesStub(self.channel)
        self.rib = self.daemon.rib_service.rib

    def with_kernel(self) -> KernelService:
        ksvc = KernelService(parse_config(BASE + KERNEL), self.rib, reactor, netns=self.ns.name,
                             defer_to_thread=sync, watch_events=False)
        ksvc.startService()
        self.addCleanup(ksvc.stopService)
        self.daemon.kernel = ksvc
        return ksvc

    def feed(self):
        for peer in (A1, A2):
            self.rib.add_peer(peer, (IPV4,), Negotiated(ibgp=False, peer_as=peer.remote_as), FakeSink())
        self.rib.receive(A1, announce(attrs(nh="192.0.2.2"), [P1, P2, P3]))
        self.rib.receive(A2, announce(attrs(path=(65002, 7), nh="192.0.2.3"), [P1]))
        self.rib.drain()

    def listing(self, **kwargs):
        req = routes_pb2.ListRoutesRequest(**kwargs)
        return threads.deferToThread(
            lambda: [r for m in self.routes.ListRoutes(req, timeout=TIMEOUT) for r in m.routes])

    @as_deferred
    async def test_flags(self):
        """Installed, filtered by policy, failed (a source not on the host), not selected."""
        self.with_kernel()
        self.feed()
        got = {(r.prefix, r.source_peer): r.kernel for r in await self.listing(all_paths=True)}
        self.assertEqual(got, {
            ("203.0.113.0/24", "192.0.2.2"): routes_pb2.KERNEL_STATE_INSTALLED,
            ("203.0.113.0/24", "192.0.2.3"): routes_pb2.KERNEL_STATE_NOT_SELECTED,
            ("198.51.100.0/24", "192.0.2.2"): routes_pb2.KERNEL_STATE_FILTERED,
            ("192.0.2.128/25", "192.0.2.2"): routes_pb2.KERNEL_STATE_FAILED,
        })
        self.assertEqual(set(self.ns.routes(100)), {"203.0.113.0/24"})

    @as_deferred
    async def test_no_kernel_writer(self):
        """Without [kernel] every path's flag is unspecified."""
        self.feed()
        got = await self.listing(all_paths=True)
        self.assertEqual(len(got), 4)
        self.assertEqual({r.kernel for r in got}, {routes_pb2.KERNEL_STATE_UNSPECIFIED})

    @as_deferred
    async def test_bgpctl_column(self):
        """bgpctl show routes prints a Kernel column with the flags; show route prints a kernel line."""
        self.with_kernel()
        self.feed()
        target = self.daemon.api.server.target

        def run(*argv: str) -> str:
            out = io.StringIO()
            cli.main(["--target", target, *argv], out=out)
            return out.getvalue()

        table = await threads.deferToThread(run, "show", "routes")
        lines = {line.split()[1]: line.split()[-1] for line in table.splitlines()[1:]}
        self.assertIn("Kernel", table.splitlines()[0])
        self.assertEqual(lines, {"203.0.113.0/24": "installed", "198.51.100.0/24": "filtered",
                                 "192.0.2.128/25": "failed"})
        detail = await threads.deferToThread(run, "show", "route", "198.51.100.0/24")
        self.assertIn("  kernel filtered\n", detail)
