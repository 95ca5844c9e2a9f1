"""Next-hop resolution (bgpd.kernel.nexthop): the snapshot, the events, and the real kernel in a namespace."""

from __future__ import annotations

import json
import select
import struct
import time

from twisted.internet import defer
from twisted.internet.task import Clock
from twisted.trial.unittest import SynchronousTestCase

from bgpd.kernel.netlink import NetlinkBackend, dump_covering, open_event_socket
from bgpd.kernel.nexthop import NextHopTracker, RouteSnapshot, relevant
from bgpd.kernel.writer import KernelWriter, WriterOptions
from bgpd.rib import Change, Rib, RibOptions, make_path
from bgpd.rib.testing import IPV4, IPV6, FakeSink, announce, make_peer, pfx
from bgpd.wire.negotiated import Negotiated
from tests.kernel.netns import Netns, gateways
from tests.rib.support import attrs

TABLE = 100
P1 = pfx("203.0.113.0/24")
P2 = pfx("203.0.113.128/25")
P6 = pfx("2001:db8:99::/48")
P6B = pfx("2001:db8:98::/48")
A1 = make_peer("192.0.2.2", 65001, local_address="192.0.2.1")
B1 = make_peer("198.51.100.2", 65002, local_address="198.51.100.1")


def v4(text: str) -> tuple[int, int, int]:
    net, plen = text.split("/")
    return 4, int.from_bytes(bytes(map(int, net.split("."))), "big"), int(plen)


def sync(fn, *args):
    return defer.maybeDeferred(fn, *args)


class SnapshotTests(SynchronousTestCase):
    def test_longest_match(self):
        """An address resolves when a route covers it; the default route never counts."""
        snap = RouteSnapshot([v4("192.0.2.0/24"), v4("0.0.0.0/0"), (6, 0x20010DB8 << 96, 32)])
        self.assertTrue(snap.resolves("192.0.2.77"))
        self.assertFalse(snap.resolves("198.51.100.1"))
        self.assertTrue(snap.resolves("2001:db8::5"))
        self.assertFalse(snap.resolves("2001:db9::5"))
        self.assertTrue(snap.resolves("fe80::1"))
        self.assertFalse(snap.resolves(None))


def _msg(kind: int, proto: int = 0) -> bytes:
    body = struct.pack("=BBBBBBBBI", 2, 24, 0, 0, 254, proto, 0, 1, 0)
    return struct.pack("=IHHII", 16 + len(body), kind, 0, 0, 0) + body


class RelevantTests(SynchronousTestCase):
    def test_own_routes_ignored(self):
        """Our own route events do not call for a resync; another protocol's and link events do."""
        self.assertFalse(relevant(_msg(24, 186) * 3, 186))
        self.assertTrue(relevant(_msg(24, 186) + _msg(25, 4), 186))
        self.assertTrue(relevant(_msg(16), 186))


class ResolutionTests(SynchronousTestCase):
    """Against the kernel: v0 192.0.2.1/24 and w0 198.51.100.1/25 connected, a static route further."""

    def setUp(self) -> None:
        self.ns = Netns()
        self.addCleanup(self.ns.close)
        ns = self.ns
        ns.ip("link", "add", "w0", "type", "veth", "peer", "name", "w1")
        ns.ip("addr", "add", "198.51.100.1/25", "dev", "w0")
        ns.ip("link", "set", "w0", "up")
        ns.ip("link", "set", "w1", "up")
        ns.ip("route", "add", "198.51.100.128/25", "via", "198.51.100.2", "proto", "static")
        self.clock = Clock()
        self.rib = Rib("192.0.2.1", 65000, options=RibOptions(mrai_ebgp=0.0), call_later=self.clock.callLater)
        self.writer = KernelWriter(lambda: NetlinkBackend(TABLE, netns=ns.name),
                                   WriterOptions(families=frozenset({IPV4})), self.clock.callLater, sync)
        self.successResultOf(self.writer.start())
        self.rib.subscribe(self.writer.changes)
        self.tracker = NextHopTracker(self.rib, lambda: dump_covering((254, TABLE), 186, ns.name), None,
                                      186, self.clock.callLater, None, sync)
        self.writer.forwarding = self.tracker.forwarding
        self.tracker.forwarding_watchers.append(self.writer.rewrite_next_hops)
        self.successResultOf(self.tracker.start())
        for peer in (A1, B1):
            self.rib.add_peer(peer, (IPV4,), Negotiated(ibgp=False, peer_as=peer.remote_as), FakeSink())

    def settle(self) -> None:
        self.rib.drain()

    def resync(self) -> None:
        """What an event does: the debounced resync, then the RIB's work."""
        self.tracker.changed()
        self.clock.advance(self.tracker.debounce)
        self.settle()

    def test_unresolvable_not_installed(self):
        """A next hop no kernel route covers is not installed; one through a static route is (recursive)."""
        self.rib.receive(A1, announce(attrs(nh="203.0.113.200"), [P1]))
        self.rib.receive(B1, announce(attrs(path=(65002,), nh="198.51.100.200"), [P2]))
        self.settle()
        got = self.ns.routes(TABLE)
        self.assertEqual(set(got), {"203.0.113.128/25"})
        # Through the gateway of the covering route: the kernel takes onlink ones only.
        self.assertEqual(gateways(got["203.0.113.128/25"]), ["198.51.100.2"])
        self.assertIsNone(self.rib.best(IPV4, P1))

    def test_covering_route_deleted_and_back(self):
        """Deleting the covering route removes the routes through it; they return with it."""
        self.rib.receive(B1, announce(attrs(path=(65002,), nh="198.51.100.200"), [P2]))
        self.settle()
        self.assertIn("203.0.113.128/25", self.ns.routes(TABLE))
        self.ns.ip("route", "del", "198.51.100.128/25", "via", "198.51.100.2", "proto", "static")
        self.resync()
        self.assertEqual(self.ns.routes(TABLE), {})
        self.ns.ip("route", "add", "198.51.100.128/25", "via", "198.51.100.2", "proto", "static")
        self.resync()
        self.assertIn("203.0.113.128/25", self.ns.routes(TABLE))

    def test_covering_route_moves(self):
        """The covering route's gateway changes: the routes through it follow."""
        self.ns.ip("addr", "add", "198.51.100.3/25", "dev", "w0")
        self.rib.receive(B1, announce(attrs(path=(65002,), nh="198.51.100.200"), [P2]))
        self.settle()
        self.ns.ip("route", "replace", "198.51.100.128/25", "via", "198.51.100.4", "proto", "static")
        self.resync()
        self.assertEqual(gateways(self.ns.routes(TABLE)["203.0.113.128/25"]), ["198.51.100.4"])

    def test_interface_down_other_path_takes_over(self):
        """The best path's interface goes down: the other path takes over, and gives way when it returns."""
        self.rib.receive(A1, announce(attrs(nh="192.0.2.2"), [P1]))
        self.rib.receive(B1, announce(attrs(path=(65002, 7), nh="198.51.100.2"), [P1]))
        self.settle()
        self.assertEqual(gateways(self.ns.routes(TABLE)["203.0.113.0/24"]), ["192.0.2.2"])
        self.ns.ip("link", "set", "v0", "down")
        self.resync()
        self.assertEqual(gateways(self.ns.routes(TABLE)["203.0.113.0/24"]), ["198.51.100.2"])
        self.ns.ip("link", "set", "v0", "up")
        self.resync()
        self.assertEqual(gateways(self.ns.routes(TABLE)["203.0.113.0/24"]), ["192.0.2.2"])

    def test_events_arrive(self):
        """A link going down and another protocol's route are events that call for a resync; ours are not."""
        sock = open_event_socket(self.ns.name)
        self.addCleanup(sock.close)

        def read() -> bytes:
            data = b""
            deadline = time.monotonic() + 10
            while time.monotonic() < deadline:
                r, _w, _x = select.select([sock], [], [], 0.2)
                if not r:
                    if data:
                        return data
                    continue
                data += sock.recv(1 << 20)
            return data

        self.ns.ip("route", "add", "203.0.113.0/24", "via", "192.0.2.9", "proto", "186")
        self.assertFalse(relevant(read(), 186))
        self.ns.ip("route", "add", "203.0.113.128/25", "via", "192.0.2.9", "proto", "static")
        self.assertTrue(relevant(read(), 186))
        self.ns.ip("link", "set", "w0", "down")
        self.assertTrue(relevant(read(), 186))


class LinkLocalTests(SynchronousTestCase):
    """IPv6 link-local next hops go in with the interface of the peer's link."""

    def setUp(self) -> None:
        self.ns = Netns()
        self.addCleanup(self.ns.close)
        self.index = json.loads(self.ns.ip("-j", "link", "show", "v0"))[0]["ifindex"]

    def test_peer_link_from_connected_route(self):
        """The tracker finds the interface of a peer on a connected IPv6 subnet."""
        tracker = NextHopTracker(FakeRib(), lambda: dump_covering((254,), 186, self.ns.name), None, 186,
                                 Clock().callLater, None, sync)
        self.successResultOf(tracker.start())
        self.assertEqual(tracker.link("2001:db8:0:1::2"), self.index)
        self.assertIsNone(tracker.link("2001:db8:99::2"))

    def test_installed_with_interface(self):
        """A path with a link-local next hop is installed via it, dev the peer's interface."""
        writer = KernelWriter(lambda: NetlinkBackend(TABLE, netns=self.ns.name),
                              WriterOptions(families=frozenset({IPV6})), Clock().callLater, sync)
        writer.link_of = lambda address: self.index if address == "2001:db8:0:1::2" else None
        self.successResultOf(writer.start())
        peer = make_peer("2001:db8:0:1::2", 65001)
        path = make_path(peer, attrs(nh="2001:db8:0:1::2", next_hop_ll="fe80::1234"))
        ll_only = make_path(peer, attrs(nh="fe80::99"))
        writer.changes([Change(IPV6, P6, None, path, (path,)),
                        Change(IPV6, P6B, None, ll_only, (ll_only,))])
        got = self.ns.routes(TABLE, family="-6")
        # A global next hop is used when there is one; a link-local one with its interface.
        self.assertEqual(gateways(got["2001:db8:99::/48"]), ["2001:db8:0:1::2"])
        self.assertEqual(gateways(got["2001:db8:98::/48"]), ["fe80::99"])
        self.assertEqual(got["2001:db8:98::/48"]["dev"], "v0")


class FakeRib:
    def set_resolver(self, fn) -> None:
        pass

    def redecide_next_hops(self, old) -> None:
        pass
