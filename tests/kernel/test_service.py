"""The kernel service (bgpd.kernel.service) with a RIB, against the real kernel in a namespace."""

from __future__ import annotations

from twisted.internet import defer
from twisted.internet.task import Clock
from twisted.internet.testing import MemoryReactorClock
from twisted.trial.unittest import SynchronousTestCase

from bgpd.api.control import Control, KernelStatus
from bgpd.config import parse_config
from bgpd.kernel.service import KernelService
from bgpd.rib import Rib, RibOptions
from bgpd.rib.testing import IPV4, FakeSink, announce, make_peer, pfx
from bgpd.service import BgpdService
from bgpd.wire.negotiated import Negotiated
from tests.kernel.netns import Netns, gateways
from tests.rib.support import attrs

CONFIG = """
[bgp]
local_as = 65000
router_id = "192.0.2.1"

[[neighbors]]
address = "192.0.2.2"
remote_as = 65001

[kernel]
table = 100
ipv6 = false
reconcile_time = 60
{extra}
"""
A1 = make_peer("192.0.2.2", 65001, local_address="192.0.2.1")
P1 = pfx("203.0.113.0/24")
P2 = pfx("198.51.100.0/24")


def sync(fn, *args):
    return defer.maybeDeferred(fn, *args)


class KernelServiceTests(SynchronousTestCase):
    def setUp(self) -> None:
        self.ns = Netns()
        self.addCleanup(self.ns.close)

    def start(self, extra: str = "") -> tuple[KernelService, Rib, Clock]:
        clock = Clock()
        config = parse_config(CONFIG.format(extra=extra))
        rib = Rib("192.0.2.1", 65000, options=RibOptions(mrai_ebgp=0.0), call_later=clock.callLater)
        svc = KernelService(config, rib, clock, netns=self.ns.name, defer_to_thread=sync, watch_events=False)
        svc.startService()
        rib.add_peer(A1, (IPV4,), Negotiated(ibgp=False, peer_as=65001), FakeSink())
        return svc, rib, clock

    def test_converges_on_end_of_rib(self):
        """Stale routes stay until the only neighbor's End-of-RIB, then go; ours go on stop."""
        self.ns.ip("route", "add", "198.51.100.0/24", "via", "192.0.2.9", "table", "100", "proto", "186",
                   "metric", "20")
        svc, rib, clock = self.start()
        rib.receive(A1, announce(attrs(nh="192.0.2.2"), [P1]))
        rib.drain()
        self.assertEqual(set(self.ns.routes(100)), {"203.0.113.0/24", "198.51.100.0/24"})
        rib.end_of_rib(A1, IPV4)
        rib.drain()
        self.assertEqual(set(self.ns.routes(100)), {"203.0.113.0/24"})
        st = svc.status()[IPV4]
        self.assertEqual((st.installed, st.pending, st.failed), (1, 0, 0))
        self.successResultOf(svc.stopService())
        self.assertEqual(self.ns.routes(100), {})

    def test_converges_on_timer(self):
        """Without End-of-RIB the reconcile_time ends the wait."""
        self.ns.ip("route", "add", "198.51.100.0/24", "via", "192.0.2.9", "table", "100", "proto", "186",
                   "metric", "20")
        svc, rib, clock = self.start()
        clock.advance(59)
        self.assertIn("198.51.100.0/24", self.ns.routes(100))
        clock.advance(1)
        self.assertEqual(self.ns.routes(100), {})

    def test_keep_on_stop(self):
        """keep_on_stop leaves the routes in place, even as the sessions' withdrawals follow."""
        svc, rib, clock = self.start("keep_on_stop = true")
        rib.receive(A1, announce(attrs(nh="192.0.2.2"), [P1]))
        rib.drain()
        svc.freeze()
        rib.remove_peer(A1)
        rib.drain()
        self.successResultOf(svc.stopService())
        self.assertEqual(gateways(self.ns.routes(100)["203.0.113.0/24"]), ["192.0.2.2"])

    def test_status_through_the_api(self):
        """The API's control object reports the writer's table and counts (bgpctl show kernel)."""
        ksvc, rib, clock = self.start()
        rib.receive(A1, announce(attrs(nh="192.0.2.2"), [P1]))
        rib.drain()
        daemon = BgpdService(parse_config('[bgp]\nlocal_as = 65000\nrouter_id = "192.0.2.1"\n'
                                          'listen_addresses = []\n'), None, MemoryReactorClock())
        daemon.startService()
        self.addCleanup(daemon.stopService)
        control = Control(daemon)
        self.assertEqual(control.kernel_status(), KernelStatus(enabled=False))
        daemon.kernel = ksvc  # the writer in this test's namespace
        self.assertEqual(control.kernel_status(),
                         KernelStatus(True, 100, 186, 20, (("ipv4-unicast", 1, 0, 0),)))
