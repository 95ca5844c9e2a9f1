"""The kernel writer with its netlink backend against the real kernel, in a namespace the test made.

Checks with ``ip -j route show table N proto 186`` in that namespace.
"""

from __future__ import annotations

from twisted.internet import defer
from twisted.trial.unittest import SynchronousTestCase

from bgpd.kernel.netlink import NetlinkBackend, encode_route, table_number
from bgpd.kernel.writer import KernelRoute, KernelWriter, WriterOptions
from bgpd.rib import Rib, RibOptions
from bgpd.rib.testing import IPV4, IPV6, FakeSink, announce, make_peer, pfx, withdraw
from bgpd.wire.negotiated import Negotiated
from tests.kernel.netns import Netns, gateways
from tests.rib.support import attrs

TABLE = 100
P1 = pfx("203.0.113.0/24")
P2 = pfx("198.51.100.0/25")
P3 = pfx("198.51.100.128/25")
P6 = pfx("2001:db8:99::/48")
#: Two eBGP peers in one neighbouring AS: equal up to the router id (ECMP).
A1 = make_peer("192.0.2.2", 65001, local_address="192.0.2.1")
A2 = make_peer("192.0.2.3", 65001, local_address="192.0.2.1")
#: Another AS, a longer path: a worse route.
B1 = make_peer("192.0.2.4", 65002, local_address="192.0.2.1")


def sync(fn, *args):
    """deferToThread stand-in: the netlink call is made here and now (blocking is fine in a test)."""
    return defer.maybeDeferred(fn, *args)


class NetnsTestCase(SynchronousTestCase):
    max_paths = 1

    def setUp(self) -> None:
        self.ns = Netns()
        self.addCleanup(self.ns.close)
        self.backends: list[NetlinkBackend] = []

    def writer(self, ecmp: bool = True, metric: int = 20) -> KernelWriter:
        def factory() -> NetlinkBackend:
            b = NetlinkBackend(TABLE, 186, metric, netns=self.ns.name)
            self.backends.append(b)
            return b

        opts = WriterOptions(families=frozenset({IPV4, IPV6}), ecmp=ecmp)
        w = KernelWriter(factory, opts, self._never, sync)
        self.successResultOf(w.start())
        return w

    def _never(self, delay, fn, *args):
        self.fail("nothing should be retried")

    def rib(self, writer: KernelWriter) -> Rib:
        calls: list = []

        def call_later(delay, fn, *args):
            calls.append((fn, args))

            class H:
                def cancel(self) -> None:
                    pass
            return H()

        rib = Rib("192.0.2.1", 65000, options=RibOptions(mrai_ebgp=0.0, max_paths=self.max_paths),
                  call_later=call_later)
        rib.subscribe(writer.changes)
        for peer in (A1, A2, B1):
            rib.add_peer(peer, (IPV4, IPV6), Negotiated(ibgp=False, peer_as=peer.remote_as), FakeSink())
        return rib


class InstallTests(NetnsTestCase):
    def test_install_withdraw(self):
        """BGP routes appear in the table with our proto, next hop and metric; a withdrawal removes them."""
        w = self.writer(metric=33)
        rib = self.rib(w)
        rib.receive(A1, announce(attrs(nh="192.0.2.2"), [P1, P2]))
        rib.drain()
        got = self.ns.routes(TABLE)
        self.assertEqual(set(got), {"203.0.113.0/24", "198.51.100.0/25"})
        self.assertEqual(gateways(got["203.0.113.0/24"]), ["192.0.2.2"])
        self.assertEqual(got["203.0.113.0/24"]["metric"], 33)
        rib.receive(A1, withdraw([P1]))
        rib.drain()
        self.assertEqual(set(self.ns.routes(TABLE)), {"198.51.100.0/25"})

    def test_better_path_one_message(self):
        """A better path replaces the route with one RTM_NEWROUTE, no delete."""
        w = self.writer()
        rib = self.rib(w)
        rib.receive(B1, announce(attrs(path=(65002, 7), nh="192.0.2.4"), [P1]))
        rib.drain()
        self.assertEqual(gateways(self.ns.routes(TABLE)["203.0.113.0/24"]), ["192.0.2.4"])
        b = self.backends[0]
        before = (b.replaced, b.deleted)
        rib.receive(A1, announce(attrs(nh="192.0.2.2"), [P1]))
        rib.drain()
        self.assertEqual(gateways(self.ns.routes(TABLE)["203.0.113.0/24"]), ["192.0.2.2"])
        self.assertEqual((b.replaced - before[0], b.deleted - before[1]), (1, 0))

    def test_table_above_255(self):
        """A table number above 255 goes in RTA_TABLE."""
        b = NetlinkBackend(1000, netns=self.ns.name)
        self.addCleanup(b.close)
        self.assertEqual(b.apply([KernelRoute(IPV4, P1, (("192.0.2.2", None),))]), [])
        self.assertEqual(set(self.ns.routes(1000)), {"203.0.113.0/24"})
        self.assertEqual(set(b.dump()), {(IPV4, P1)})

    def test_ipv6(self):
        """An IPv6 route goes in with its global next hop."""
        w = self.writer()
        rib = self.rib(w)
        rib.receive(A1, announce(attrs(nh="2001:db8:0:1::2"), [P6], IPV6))
        rib.drain()
        got = self.ns.routes(TABLE, family="-6")
        self.assertEqual(gateways(got["2001:db8:99::/48"]), ["2001:db8:0:1::2"])

    def test_error_does_not_stop_the_others(self):
        """An unreachable next hop fails that route only (errno counted), the rest go in."""
        opts = WriterOptions(families=frozenset({IPV4}))
        handles: list = []
        w = KernelWriter(lambda: NetlinkBackend(TABLE, netns=self.ns.name), opts,
                         lambda d, fn, *a: handles.append((d, fn)), sync)
        self.successResultOf(w.start())
        rib = self.rib(w)
        rib.receive(A1, announce(attrs(nh="192.0.2.2"), [P1]))
        rib.receive(A2, announce(attrs(nh="203.0.113.77"), [P2]))  # not on any link
        rib.drain()
        self.assertEqual(set(self.ns.routes(TABLE)), {"203.0.113.0/24"})
        st = w.status()[IPV4]
        self.assertEqual((st.installed, st.failed), (1, 1))
        self.assertEqual(len(handles), 1)  # the retry is scheduled


class EcmpTests(NetnsTestCase):
    max_paths = 4

    def test_two_equal_paths_one_multipath_route(self):
        """Two equal paths become one multipath route with both next hops; losing one leaves one."""
        w = self.writer()
        rib = self.rib(w)
        rib.receive(A1, announce(attrs(nh="192.0.2.2"), [P1]))
        rib.receive(A2, announce(attrs(nh="192.0.2.3"), [P1]))
        rib.drain()
        got = self.ns.routes(TABLE)
        self.assertEqual(sorted(gateways(got["203.0.113.0/24"])), ["192.0.2.2", "192.0.2.3"])
        rib.receive(A2, withdraw([P1]))
        rib.drain()
        self.assertEqual(gateways(self.ns.routes(TABLE)["203.0.113.0/24"]), ["192.0.2.2"])


class OwnershipTests(NetnsTestCase):
    def test_other_protocols_untouched(self):
        """Routes of other protocols in the table, one for the same prefix too, stay as they are."""
        self.ns.ip("route", "add", "203.0.113.0/24", "via", "192.0.2.9", "table", str(TABLE),
                   "proto", "static", "metric", "10")
        self.ns.ip("route", "add", "198.51.100.0/25", "via", "192.0.2.9", "table", str(TABLE),
                   "proto", "static")
        others = self.ns.routes(TABLE, proto="static")
        w = self.writer()
        rib = self.rib(w)
        rib.receive(A1, announce(attrs(nh="192.0.2.2"), [P1, P3]))
        rib.drain()
        self.assertEqual(set(self.ns.routes(TABLE)), {"203.0.113.0/24", "198.51.100.128/25"})
        rib.receive(A1, withdraw([P1, P3]))
        rib.drain()
        w.converged()
        self.successResultOf(w.stop())
        self.assertEqual(self.ns.routes(TABLE), {})
        self.assertEqual(self.ns.routes(TABLE, proto="static"), others)

    def test_same_prefix_same_metric_not_overwritten(self):
        """A static route with bgpd's prefix and metric stays: bgpd's write fails (EEXIST, counted,
        retried) instead of replacing it, for IPv4 and IPv6, and goes in once the route is gone."""
        for fam, dst, _prefix, nh in (("-4", "203.0.113.0/24", P1, "192.0.2.2"),
                                      ("-6", "2001:db8:99::/48", P6, "2001:db8:0:1::2")):
            self.ns.ip(fam, "route", "add", dst, "via", nh[:-1] + "9", "table", str(TABLE),
                       "proto", "static", "metric", "20")
        retries: list = []
        opts = WriterOptions(families=frozenset({IPV4, IPV6}))
        w = KernelWriter(lambda: NetlinkBackend(TABLE, 186, 20, netns=self.ns.name), opts,
                         lambda d, fn, *a: retries.append(fn), sync)
        self.successResultOf(w.start())
        rib = self.rib(w)
        rib.receive(A1, announce(attrs(nh="192.0.2.2"), [P1]))
        rib.receive(A1, announce(attrs(nh="2001:db8:0:1::2"), [P6], IPV6))
        rib.drain()
        for fam, dst, fam_key, prefix in (("-4", "203.0.113.0/24", IPV4, P1),
                                          ("-6", "2001:db8:99::/48", IPV6, P6)):
            got = self.ns.routes(TABLE, proto=None, family=fam)[dst]
            self.assertEqual((got["protocol"], got.get("metric")), ("static", 20), fam)
            self.assertEqual(w.state(fam_key, prefix), "failed")
        self.assertEqual(w.status()[IPV4].failed, 1)
        self.assertTrue(retries)
        # The other protocol's route goes: the retry installs ours.
        self.ns.ip("route", "del", "203.0.113.0/24", "table", str(TABLE), "proto", "static")
        retries.pop()()
        self.assertEqual(self.ns.routes(TABLE)["203.0.113.0/24"]["gateway"], "192.0.2.2")
        self.assertEqual(w.state(IPV4, P1), "installed")


class RestartTests(NetnsTestCase):
    def test_reconcile_after_crash(self):
        """A writer that died leaves routes; the next one keeps them until converged, then fixes the table."""
        w1 = self.writer()
        rib1 = self.rib(w1)
        rib1.receive(A1, announce(attrs(nh="192.0.2.2"), [P1, P2, P3]))
        rib1.drain()
        self.backends[0].close()  # as if killed: nothing removed
        self.assertEqual(len(self.ns.routes(TABLE)), 3)
        w2 = self.writer()
        rib2 = self.rib(w2)
        self.assertEqual(w2.status()[IPV4].installed, 0)
        # The new run learns P1 unchanged and P2 through another next hop; P3 not (yet).
        rib2.receive(A1, announce(attrs(nh="192.0.2.2"), [P1]))
        rib2.receive(A2, announce(attrs(nh="192.0.2.3"), [P2]))
        rib2.drain()
        got = self.ns.routes(TABLE)
        self.assertEqual(set(got), {"203.0.113.0/24", "198.51.100.0/25", "198.51.100.128/25"})
        self.assertEqual(gateways(got["198.51.100.0/25"]), ["192.0.2.3"])
        self.assertEqual(self.backends[1].replaced, 1)  # P1 was adopted as it was
        w2.converged()
        got = self.ns.routes(TABLE)
        self.assertEqual(set(got), {"203.0.113.0/24", "198.51.100.0/25"})
        self.assertEqual(w2.status()[IPV4].installed, 2)


class EncodingTests(SynchronousTestCase):
    def test_table_names(self):
        """Tables by number or name; an unknown name is an error."""
        self.assertEqual(table_number("main"), 254)
        self.assertEqual(table_number(100), 100)
        self.assertEqual(table_number("100"), 100)
        self.assertRaises(ValueError, table_number, "no-such-table-here")

    def test_replace_flags(self):
        """A route with next hops is RTM_NEWROUTE with NLM_F_CREATE|NLM_F_REPLACE; none is RTM_DELROUTE."""
        import struct

        m = encode_route(KernelRoute(IPV4, P1, (("192.0.2.2", None),)), 1, 1000, 186, 20, True)
        _n, kind, flags, _seq, _pid = struct.unpack_from("=IHHII", m)
        self.assertEqual((kind, flags), (24, 0x1 | 0x4 | 0x100 | 0x400))
        m = encode_route(KernelRoute(IPV4, P1, ()), 1, 100, 186, 20, False)
        _n, kind, flags, _seq, _pid = struct.unpack_from("=IHHII", m)
        self.assertEqual((kind, flags), (25, 0x1))


class SendBufferTests(SynchronousTestCase):
    def setUp(self) -> None:
        self.ns = Netns()
        self.addCleanup(self.ns.close)

    def test_chunk_larger_than_the_send_buffer(self):
        """A chunk of more octets than one send may carry goes in several sends, every route in."""
        import socket

        b = NetlinkBackend(TABLE, netns=self.ns.name)
        self.addCleanup(b.close)
        b._sock.setsockopt(socket.SOL_SOCKET, socket.SO_SNDBUF, 4096)
        b.send_limit = b._sock.getsockopt(socket.SOL_SOCKET, socket.SO_SNDBUF) // 2
        routes = [KernelRoute(IPV4, pfx(f"10.{i >> 8}.{i & 255}.0/24"), (("192.0.2.2", None),))
                  for i in range(500)]
        self.assertEqual(b.apply(routes), [])
        self.assertEqual(len(self.ns.routes(TABLE)), 500)


def _pyroute2_dump(netns: str, table: int, protocol: int, metric: int) -> dict:
    """The table as pyroute2 reads it, the reference the raw dump is checked against."""
    import socket

    from pyroute2 import IPRoute

    from bgpd.kernel.netlink import in_netns
    from bgpd.wire.nlri import make_prefix

    out: dict = {}
    with in_netns(netns):
        ip = IPRoute()
    with ip:
        for afi, af in ((1, socket.AF_INET), (2, socket.AF_INET6)):
            for msg in ip.get_routes(family=af):
                if msg["proto"] != protocol or (msg.get_attr("RTA_TABLE") or msg["table"]) != table:
                    continue
                if (msg.get_attr("RTA_PRIORITY") or 0) != metric:
                    continue
                dst = msg.get_attr("RTA_DST") or ("0.0.0.0" if afi == 1 else "::")
                hops = [(msg.get_attr("RTA_GATEWAY"), None)] if msg.get_attr("RTA_GATEWAY") else []
                hops += [(nh.get_attr("RTA_GATEWAY"), None) for nh in msg.get_attr("RTA_MULTIPATH") or ()
                         if nh.get_attr("RTA_GATEWAY")]
                out[((afi, 1), make_prefix(socket.inet_pton(af, dst), msg["dst_len"]))] = tuple(hops)
    return out


class DumpTests(SynchronousTestCase):
    def setUp(self) -> None:
        self.ns = Netns()
        self.addCleanup(self.ns.close)

    def test_raw_dump_reads_what_pyroute2_reads(self):
        """Ours only (protocol, table, metric), IPv4 and IPv6, single and multipath, the default route."""
        self.ns.ip("addr", "add", "192.0.2.3/24", "dev", "v1")
        for table in ("1000", "100"):
            for args in (("203.0.113.0/24", "via", "192.0.2.2"),
                         ("0.0.0.0/0", "via", "192.0.2.2"),
                         ("198.51.100.0/25", "nexthop", "via", "192.0.2.2", "nexthop", "via", "192.0.2.3"),
                         ("2001:db8:5::/48", "via", "2001:db8:0:1::2"),
                         ("2001:db8:6::/48", "nexthop", "via", "2001:db8:0:1::2", "nexthop", "via",
                          "2001:db8:0:1::3")):
                self.ns.ip("route", "add", args[0], "table", table, "proto", "186", "metric", "20",
                           *args[1:])
        self.ns.ip("route", "add", "192.0.2.128/25", "via", "192.0.2.2", "table", "1000", "proto", "186",
                   "metric", "21")
        self.ns.ip("route", "add", "192.0.2.64/26", "via", "192.0.2.2", "table", "1000", "proto", "static",
                   "metric", "20")
        b = NetlinkBackend(1000, 186, 20, netns=self.ns.name)
        self.addCleanup(b.close)
        got = b.dump()
        self.assertEqual(got, _pyroute2_dump(self.ns.name, 1000, 186, 20))
        self.assertEqual(len(got), 5)
        self.assertEqual(got[(IPV4, pfx("198.51.100.0/25"))], (("192.0.2.2", None), ("192.0.2.3", None)))
        self.assertEqual(got[(IPV4, pfx("0.0.0.0/0"))], (("192.0.2.2", None),))

    def test_covering_dump_reads_the_others_routes(self):
        """dump_covering: unicast routes of other protocols in the tables asked, gateway and interface."""
        from bgpd.kernel.netlink import dump_covering

        self.ns.ip("addr", "add", "192.0.2.3/24", "dev", "v1")
        oif = int(self.ns.ip("-o", "link", "show", "v0").split(":")[0])
        self.ns.ip("route", "add", "203.0.113.0/24", "via", "192.0.2.2", "dev", "v0", "table", "1000",
                   "proto", "static")
        self.ns.ip("route", "add", "198.51.100.0/25", "table", "1000", "proto", "static",
                   "nexthop", "via", "192.0.2.2", "dev", "v0", "nexthop", "via", "192.0.2.3", "dev", "v1")
        self.ns.ip("route", "add", "2001:db8:5::/48", "via", "2001:db8:0:1::2", "dev", "v0", "table", "1000",
                   "proto", "static")
        self.ns.ip("route", "add", "198.51.100.128/25", "via", "192.0.2.2", "table", "1000", "proto", "186")
        self.ns.ip("route", "add", "192.0.2.128/25", "via", "192.0.2.2", "table", "1001", "proto", "static")
        self.ns.ip("route", "add", "blackhole", "192.0.2.64/26", "table", "1000", "proto", "static")
        got = sorted(dump_covering((1000,), 186, self.ns.name), key=lambda r: (r[0], r[1], r[2]))
        self.assertEqual(got, [
            (4, 0xC6336400, 25, "192.0.2.2", 0),
            (4, 0xCB007100, 24, "192.0.2.2", oif),
            (6, 0x20010DB8000500000000000000000000, 48, "2001:db8:0:1::2", oif),
        ])
