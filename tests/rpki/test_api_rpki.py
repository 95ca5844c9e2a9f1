"""The Rpki service's validation RPCs and route listing states, over a real in-process grpc server.

ValidateRoute (RFC 6811 section 2 with the reason), ListVrps (covering
VRPs), ValidateAsPath (the ASPA draft's procedures) and the per-path
``rpki`` / ``aspa`` fields of ListRoutes.
"""

from __future__ import annotations

import grpc
from twisted.internet import reactor, threads
from twisted.internet.task import deferLater
from twisted.trial.unittest import SynchronousTestCase, TestCase

from bgpd.api._gen.bgpd.v1 import routes_pb2, routes_pb2_grpc, rpki_pb2, rpki_pb2_grpc
from bgpd.api.control import RouteRecord
from bgpd.api.server import RouteEncoder, route_to_pb
from bgpd.config import parse_config
from bgpd.rib.testing import IPV4, pfx
from bgpd.rpki.records import Aspa, Vrp
from bgpd.service import BgpdService
from bgpd.wire.attributes import PathAttributes
from tests.deferreds import as_deferred

CONFIG = """
[bgp]
local_as = 65000
router_id = "192.0.2.254"
listen_addresses = ["127.0.0.1"]
listen_port = 0

{rpki}

[[originate]]
prefix = "192.0.2.0/24"
next_hop = "192.0.2.254"

[[originate]]
prefix = "198.51.100.0/24"
next_hop = "192.0.2.254"

[api]
listen = "127.0.0.1:0"
"""

RPKI = """
[rpki]
[[rpki.cache]]
name = "local"
address = "127.0.0.1"
port = 1
"""

TIMEOUT = 10.0


class _Case(TestCase):
    timeout = 60
    rpki = RPKI

    def setUp(self):
        self.svc = BgpdService(parse_config(CONFIG.format(rpki=self.rpki)), None, reactor)
        self.svc.startService()
        self.addCleanup(self.svc.stopService)
        self.channel = grpc.insecure_channel(self.svc.api.server.target)
        self.addCleanup(self.channel.close)
        self.stub = rpki_pb2_grpc.RpkiStub(self.channel)
        self.routes = routes_pb2_grpc.RoutesStub(self.channel)

    def rpc(self, method, request):
        return threads.deferToThread(method, request, timeout=TIMEOUT)

    def load(self):
        v = self.svc.rib_service.validation
        v.table.begin("local", True)
        v.table.vrps("local", [Vrp(IPV4, pfx("192.0.2.0/24"), 24, 64500),
                               Vrp(IPV4, pfx("192.0.0.0/16"), 16, 64499)], [])
        v.table.aspas("local", [Aspa(64496, (64497,))], [])
        v.table.end("local", 1)


class ValidateRouteTests(_Case):
    @as_deferred
    async def test_valid(self):
        """A matching VRP: RPKI_VALID, the VRP listed, the reason names it."""
        self.load()
        r = await self.rpc(self.stub.ValidateRoute,
                           rpki_pb2.ValidateRouteRequest(prefix="192.0.2.0/24", origin_as=64500))
        self.assertEqual(r.state, rpki_pb2.RPKI_VALID)
        self.assertEqual([(v.prefix, v.max_length, v.asn) for v in r.matching], [("192.0.2.0/24", 24, 64500)])
        self.assertEqual(r.reason, "VRP 192.0.2.0/24-24 AS64500 matches")

    @as_deferred
    async def test_invalid(self):
        """Covered, other AS: RPKI_INVALID with every covering VRP and the words."""
        self.load()
        r = await self.rpc(self.stub.ValidateRoute,
                           rpki_pb2.ValidateRouteRequest(prefix="192.0.2.0/24", origin_as=64501))
        self.assertEqual(r.state, rpki_pb2.RPKI_INVALID)
        self.assertEqual(len(r.covering), 2)
        self.assertEqual(r.reason, "covered by 192.0.0.0/16-16 AS64499, 192.0.2.0/24-24 AS64500 "
                                   "but origin AS64501 does not match")

    @as_deferred
    async def test_not_found_and_none(self):
        """No covering VRP: NOT_FOUND; origin absent is NONE: covered -> INVALID."""
        self.load()
        r = await self.rpc(self.stub.ValidateRoute,
                           rpki_pb2.ValidateRouteRequest(prefix="10.0.0.0/8", origin_as=64500))
        self.assertEqual((r.state, r.reason), (rpki_pb2.RPKI_NOT_FOUND, "no covering VRP"))
        r = await self.rpc(self.stub.ValidateRoute, rpki_pb2.ValidateRouteRequest(prefix="192.0.2.0/24"))
        self.assertEqual(r.state, rpki_pb2.RPKI_INVALID)
        self.assertIn("NONE", r.reason)

    @as_deferred
    async def test_bad_prefix(self):
        """A malformed prefix is INVALID_ARGUMENT naming the field."""
        with self.assertRaises(grpc.RpcError) as cm:
            await self.rpc(self.stub.ValidateRoute, rpki_pb2.ValidateRouteRequest(prefix="192.0.2.1/24"))
        self.assertEqual(cm.exception.code(), grpc.StatusCode.INVALID_ARGUMENT)
        self.assertIn("prefix", cm.exception.details())

    @as_deferred
    async def test_list_vrps(self):
        """ListVrps lists the covering VRPs, shortest first."""
        self.load()
        r = await self.rpc(self.stub.ListVrps, rpki_pb2.ListVrpsRequest(prefix="192.0.2.128/25"))
        self.assertEqual([v.prefix for v in r.vrps], ["192.0.0.0/16", "192.0.2.0/24"])

    @as_deferred
    async def test_validate_as_path(self):
        """ValidateAsPath: attested chain valid with its hops; bad direction INVALID_ARGUMENT."""
        self.load()
        r = await self.rpc(self.stub.ValidateAsPath,
                           rpki_pb2.ValidateAsPathRequest(as_path=[64497, 64496], direction="upstream"))
        self.assertEqual(r.state, rpki_pb2.ASPA_VALID)
        self.assertEqual([(h.customer_as, h.provider_as, h.result) for h in r.hops],
                         [(64496, 64497, "provider+")])
        r = await self.rpc(self.stub.ValidateAsPath,
                           rpki_pb2.ValidateAsPathRequest(as_path=[64498, 64496], direction="upstream"))
        self.assertEqual(r.state, rpki_pb2.ASPA_INVALID)
        with self.assertRaises(grpc.RpcError) as cm:
            await self.rpc(self.stub.ValidateAsPath,
                           rpki_pb2.ValidateAsPathRequest(as_path=[1], direction="sideways"))
        self.assertEqual(cm.exception.code(), grpc.StatusCode.INVALID_ARGUMENT)

    @as_deferred
    async def test_listing_states(self):
        """ListRoutes carries each path's RPKI state; ASPA is not verified for our own routes."""
        self.load()
        req = routes_pb2.ListRoutesRequest()
        for _ in range(50):
            got = await threads.deferToThread(
                lambda: [r for m in self.routes.ListRoutes(req, timeout=TIMEOUT) for r in m.routes])
            if len(got) == 2:
                break
            await deferLater(reactor, 0.1, lambda: None)
        states = {r.prefix: (r.rpki, r.aspa) for r in got}
        # Originated routes have an empty AS path: origin NONE, so covered means Invalid.
        self.assertEqual(states, {"192.0.2.0/24": (rpki_pb2.RPKI_INVALID, rpki_pb2.ASPA_NOT_VERIFIED),
                                  "198.51.100.0/24": (rpki_pb2.RPKI_NOT_FOUND, rpki_pb2.ASPA_NOT_VERIFIED)})


class WithoutRpkiTests(_Case):
    rpki = ""

    @as_deferred
    async def test_failed_precondition(self):
        """Without [rpki] the queries are FAILED_PRECONDITION naming rpki; listings say not validated."""
        with self.assertRaises(grpc.RpcError) as cm:
            await self.rpc(self.stub.ValidateRoute,
                           rpki_pb2.ValidateRouteRequest(prefix="192.0.2.0/24", origin_as=1))
        self.assertEqual(cm.exception.code(), grpc.StatusCode.FAILED_PRECONDITION)
        self.assertIn("rpki", cm.exception.details())


class EncoderTests(SynchronousTestCase):
    """The hand-written listing encoder writes the rpki / aspa fields as protobuf does."""

    def test_same_as_protobuf(self):
        """RouteEncoder.response equals route_to_pb with the states set, unset, and beside the kernel's."""
        a = PathAttributes(as_path=((2, (64500,)),), next_hop="192.0.2.1")
        records = [RouteRecord("192.0.2.0/24", "ipv4-unicast", 0, True, "192.0.2.1", "192.0.2.1", a, "",
                               False, 1, 3),
                   RouteRecord("192.0.3.0/24", "ipv4-unicast", 0, True, "192.0.2.1", "192.0.2.1", a),
                   RouteRecord("192.0.4.0/24", "ipv4-unicast", 0, True, "192.0.2.1", "192.0.2.1", a, "",
                               False, 2, 0, "installed")]
        got = RouteEncoder().response(records)
        self.assertEqual(list(got.routes), [route_to_pb(r) for r in records])
        first = got.routes[0]
        self.assertEqual((first.rpki, first.aspa), (rpki_pb2.RPKI_VALID, rpki_pb2.ASPA_UNKNOWN))
