"""Every RPC of Global and Peers against a real in-process grpc server and reactor."""

from __future__ import annotations

import os
import tempfile

import grpc
from twisted.internet import reactor, threads
from twisted.internet.task import deferLater
from twisted.trial.unittest import TestCase

from bgpd.api._gen.bgpd.v1 import global_pb2, global_pb2_grpc, peers_pb2, peers_pb2_grpc
from bgpd.api.control import Control
from bgpd.api.server import ApiServer
from bgpd.config import ApiConfig, api_config_from_table, parse_config
from bgpd.service import BgpdService
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
import_policy = ["accept-all"]
export_policy = ["accept-all"]

[[neighbors]]
address = "192.0.2.2"
remote_as = 65002
enabled = false
passive = true
import_policy = ["accept-all"]
export_policy = ["accept-all"]

[api]
listen = "127.0.0.1:0"
{extra}
"""

TIMEOUT = 10.0  # seconds, every RPC


class _ServerCase(TestCase):
    timeout = 60
    extra = ""

    def setUp(self):
        self.svc = BgpdService(parse_config(CONFIG.format(extra=self.extra)), None, reactor)
        self.svc.startService()
        self.addCleanup(self.svc.stopService)
        self.channel = grpc.insecure_channel(self.svc.api.server.target)
        self.addCleanup(self.channel.close)
        self.peers = peers_pb2_grpc.PeersStub(self.channel)
        self.glob = global_pb2_grpc.GlobalStub(self.channel)

    def rpc(self, method, request):
        """Call ``method`` on a thread (the handler needs this reactor thread free)."""
        return threads.deferToThread(method, request, timeout=TIMEOUT)

    async def status_of(self, method, request):
        try:
            await self.rpc(method, request)
        except grpc.RpcError as err:
            return err.code(), err.details()
        self.fail("the call succeeded")


class GlobalServiceTests(_ServerCase):
    @as_deferred
    async def test_get_global(self):
        """GetGlobal returns the router id, AS, version and peer counts."""
        g = await self.rpc(self.glob.GetGlobal, global_pb2.GetGlobalRequest())
        self.assertEqual((g.router_id, g.local_as, g.peers_total, g.peers_established),
                         ("192.0.2.254", 65000, 2, 0))
        self.assertTrue(g.version)
        self.assertFalse(g.read_only)

    @as_deferred
    async def test_health_and_reflection(self):
        """grpc.health.v1 answers SERVING for bgpd.v1.Peers; reflection lists the services."""
        from grpc_health.v1 import health_pb2, health_pb2_grpc
        from grpc_reflection.v1alpha import reflection_pb2, reflection_pb2_grpc

        stub = health_pb2_grpc.HealthStub(self.channel)
        r = await self.rpc(stub.Check, health_pb2.HealthCheckRequest(service="bgpd.v1.Peers"))
        self.assertEqual(r.status, health_pb2.HealthCheckResponse.SERVING)
        refl = reflection_pb2_grpc.ServerReflectionStub(self.channel)

        def list_services():
            req = reflection_pb2.ServerReflectionRequest(list_services="")
            return [s.name for r in refl.ServerReflectionInfo(iter([req]), timeout=TIMEOUT)
                    for s in r.list_services_response.service]

        names = await threads.deferToThread(list_services)
        self.assertIn("bgpd.v1.Global", names)
        self.assertIn("bgpd.v1.Peers", names)


class PeersServiceTests(_ServerCase):
    @as_deferred
    async def test_list_and_get(self):
        """ListPeers lists both neighbors in address order; GetPeer returns one."""
        r = await self.rpc(self.peers.ListPeers, peers_pb2.ListPeersRequest())
        self.assertEqual([p.config.address for p in r.peers], ["192.0.2.1", "192.0.2.2"])
        p = await self.rpc(self.peers.GetPeer, peers_pb2.GetPeerRequest(address="192.0.2.2"))
        self.assertEqual((p.config.remote_as, p.enabled, p.state), (65002, False, "Idle"))
        self.assertEqual(list(p.config.import_policy), ["accept-all"])

    @as_deferred
    async def test_get_errors(self):
        """GetPeer: unknown address NOT_FOUND, malformed INVALID_ARGUMENT, both naming address."""
        code, details = await self.status_of(self.peers.GetPeer,
                                             peers_pb2.GetPeerRequest(address="192.0.2.9"))
        self.assertEqual(code, grpc.StatusCode.NOT_FOUND)
        self.assertIn("address", details)
        code, details = await self.status_of(self.peers.GetPeer, peers_pb2.GetPeerRequest(address="x"))
        self.assertEqual(code, grpc.StatusCode.INVALID_ARGUMENT)
        self.assertIn("address", details)

    @as_deferred
    async def test_enable_disable(self):
        """EnablePeer / DisablePeer switch the peer; a repeat is FAILED_PRECONDITION."""
        p = await self.rpc(self.peers.EnablePeer, peers_pb2.EnablePeerRequest(address="192.0.2.2"))
        self.assertTrue(p.enabled)
        code, _ = await self.status_of(self.peers.EnablePeer,
                                       peers_pb2.EnablePeerRequest(address="192.0.2.2"))
        self.assertEqual(code, grpc.StatusCode.FAILED_PRECONDITION)
        p = await self.rpc(self.peers.DisablePeer,
                           peers_pb2.DisablePeerRequest(address="192.0.2.2", message="bye"))
        self.assertFalse(p.enabled)
        code, details = await self.status_of(
            self.peers.DisablePeer, peers_pb2.DisablePeerRequest(address="192.0.2.1", message="x" * 300))
        self.assertEqual(code, grpc.StatusCode.INVALID_ARGUMENT)
        self.assertIn("message", details)

    @as_deferred
    async def test_reset(self):
        """Hard reset works on an enabled peer; soft reset of a down one is FAILED_PRECONDITION."""
        p = await self.rpc(self.peers.ResetPeer, peers_pb2.ResetPeerRequest(address="192.0.2.1"))
        self.assertTrue(p.enabled)
        code, _ = await self.status_of(self.peers.ResetPeer, peers_pb2.ResetPeerRequest(
            address="192.0.2.1", kind=peers_pb2.ResetPeerRequest.SOFT_IN))
        self.assertEqual(code, grpc.StatusCode.FAILED_PRECONDITION)
        code, _ = await self.status_of(self.peers.ResetPeer, peers_pb2.ResetPeerRequest(
            address="192.0.2.1", kind=7))
        self.assertEqual(code, grpc.StatusCode.INVALID_ARGUMENT)

    @as_deferred
    async def test_add_update_delete(self):
        """AddPeer, UpdatePeer and DeletePeer change the running neighbors."""
        cfg = peers_pb2.PeerConfig(address="192.0.2.3", remote_as=65003, passive=True,
                                   import_policy=["accept-all"])
        p = await self.rpc(self.peers.AddPeer, peers_pb2.AddPeerRequest(config=cfg))
        self.assertTrue(p.from_api)
        self.assertEqual(list(p.config.export_policy), ["reject-all"])
        code, _ = await self.status_of(self.peers.AddPeer, peers_pb2.AddPeerRequest(config=cfg))
        self.assertEqual(code, grpc.StatusCode.ALREADY_EXISTS)
        cfg.description = "added"
        p = await self.rpc(self.peers.UpdatePeer, peers_pb2.UpdatePeerRequest(config=cfg))
        self.assertEqual(p.config.description, "added")
        await self.rpc(self.peers.DeletePeer, peers_pb2.DeletePeerRequest(address="192.0.2.3"))
        code, _ = await self.status_of(self.peers.GetPeer, peers_pb2.GetPeerRequest(address="192.0.2.3"))
        self.assertEqual(code, grpc.StatusCode.NOT_FOUND)
        code, _ = await self.status_of(self.peers.DeletePeer,
                                       peers_pb2.DeletePeerRequest(address="192.0.2.3"))
        self.assertEqual(code, grpc.StatusCode.NOT_FOUND)
        code, _ = await self.status_of(self.peers.UpdatePeer, peers_pb2.UpdatePeerRequest(config=cfg))
        self.assertEqual(code, grpc.StatusCode.NOT_FOUND)

    @as_deferred
    async def test_add_errors_name_the_field(self):
        """AddPeer with a bad or missing field is INVALID_ARGUMENT naming neighbor.KEY."""
        code, details = await self.status_of(self.peers.AddPeer, peers_pb2.AddPeerRequest(
            config=peers_pb2.PeerConfig(address="192.0.2.3", remote_as=65003, hold_time=2)))
        self.assertEqual(code, grpc.StatusCode.INVALID_ARGUMENT)
        self.assertIn("neighbor.hold_time", details)
        code, details = await self.status_of(self.peers.AddPeer, peers_pb2.AddPeerRequest(
            config=peers_pb2.PeerConfig(address="192.0.2.3")))
        self.assertEqual(code, grpc.StatusCode.INVALID_ARGUMENT)
        self.assertIn("neighbor.remote_as", details)
        code, details = await self.status_of(self.peers.AddPeer, peers_pb2.AddPeerRequest())
        self.assertEqual(code, grpc.StatusCode.INVALID_ARGUMENT)
        self.assertIn("config", details)
        r = await self.rpc(self.peers.ListPeers, peers_pb2.ListPeersRequest())
        self.assertEqual(len(r.peers), 2)


class ReadOnlyTests(_ServerCase):
    extra = "read_only = true"

    @as_deferred
    async def test_mutating_calls_denied(self):
        """In read-only mode every mutating call is PERMISSION_DENIED and reads still work."""
        calls = [
            (self.peers.EnablePeer, peers_pb2.EnablePeerRequest(address="192.0.2.2")),
            (self.peers.DisablePeer, peers_pb2.DisablePeerRequest(address="192.0.2.1")),
            (self.peers.ResetPeer, peers_pb2.ResetPeerRequest(address="192.0.2.1")),
            (self.peers.AddPeer, peers_pb2.AddPeerRequest(
                config=peers_pb2.PeerConfig(address="192.0.2.3", remote_as=1))),
            (self.peers.UpdatePeer, peers_pb2.UpdatePeerRequest(
                config=peers_pb2.PeerConfig(address="192.0.2.1", remote_as=1))),
            (self.peers.DeletePeer, peers_pb2.DeletePeerRequest(address="192.0.2.1")),
        ]
        for method, request in calls:
            code, _ = await self.status_of(method, request)
            self.assertEqual(code, grpc.StatusCode.PERMISSION_DENIED)
        from bgpd.api._gen.bgpd.v1 import policy_pb2, policy_pb2_grpc, routes_pb2, routes_pb2_grpc

        routes = routes_pb2_grpc.RoutesStub(self.channel)
        add = routes_pb2.AddPathsRequest(paths=[routes_pb2.OriginatePath(prefix="203.0.113.0/24",
                                                                         next_hop="192.0.2.1")])
        for method, request in [
            (lambda req, timeout: routes.AddPaths(iter([req]), timeout=timeout), add),
            (routes.DeletePaths, routes_pb2.DeletePathsRequest(prefixes=["203.0.113.0/24"])),
            (policy_pb2_grpc.PolicyStub(self.channel).ReplacePolicy, policy_pb2.PolicyCandidate(toml="")),
        ]:
            code, _ = await self.status_of(method, request)
            self.assertEqual(code, grpc.StatusCode.PERMISSION_DENIED)
        g = await self.rpc(self.glob.GetGlobal, global_pb2.GetGlobalRequest())
        self.assertTrue(g.read_only)
        self.assertEqual(self.svc.sessions.peers["192.0.2.2"].enabled, False)


class ListenTests(TestCase):
    timeout = 30

    def test_beyond_loopback_needs_tls(self):
        """[api] listen on a non-loopback address without TLS is refused naming api.tls_cert."""
        from bgpd.config import ConfigError

        with self.assertRaises(ConfigError) as cm:
            parse_config(CONFIG.format(extra="").replace('"127.0.0.1:0"', '"0.0.0.0:50051"'))
        self.assertIn("api.tls_cert", str(cm.exception))
        self.assertIn("api.tls_key", str(cm.exception))
        with self.assertRaises(ValueError) as cm2:
            ApiServer(reactor, None, ApiConfig(enabled=True, listen="0.0.0.0:0"))
        self.assertIn("api.tls_cert", str(cm2.exception))

    def test_missing_tls_file_named(self):
        """A TLS key file that cannot be read is refused naming its key."""
        cfg = api_config_from_table({"listen": "127.0.0.1:0", "tls_cert": "/nonexistent/c.pem",
                                     "tls_key": "/nonexistent/k.pem"})
        with self.assertRaises(ValueError) as cm:
            ApiServer(reactor, None, cfg)
        self.assertIn("api.tls_cert", str(cm.exception))

    def test_unix_path_not_a_socket(self):
        """listen = unix:PATH on an existing regular file is refused naming api.listen; the file stays."""
        d = tempfile.mkdtemp(prefix="bgpd-api-")
        path = os.path.join(d, "not-a-socket")
        with open(path, "w") as f:
            f.write("keep me")
        try:
            with self.assertRaises(ValueError) as cm:
                ApiServer(reactor, None, ApiConfig(enabled=True, listen=f"unix:{path}"))
            self.assertIn("api.listen", str(cm.exception))
            with open(path) as f:
                self.assertEqual(f.read(), "keep me")
        finally:
            os.unlink(path)
            os.rmdir(d)

    def test_port_in_use(self):
        """A TCP port already taken is refused naming api.listen."""
        import socket

        s = socket.socket()
        s.bind(("127.0.0.1", 0))
        s.listen(1)
        self.addCleanup(s.close)
        port = s.getsockname()[1]
        with self.assertRaises(ValueError) as cm:
            server = ApiServer(reactor, None, ApiConfig(enabled=True, listen=f"127.0.0.1:{port}"))
            server.stop(0)
        self.assertIn("api.listen", str(cm.exception))

    @as_deferred
    async def test_unix_socket(self):
        """listen = unix:PATH serves the API on a Unix socket."""
        d = tempfile.mkdtemp(prefix="bgpd-api-")
        path = os.path.join(d, "api.sock")
        svc = BgpdService(parse_config(CONFIG.format(extra="").replace(
            '"127.0.0.1:0"', f'"unix:{path}"')), None, reactor)
        svc.startService()
        try:
            self.assertTrue(os.path.exists(path))
            channel = grpc.insecure_channel(f"unix:{path}")
            try:
                stub = global_pb2_grpc.GlobalStub(channel)
                g = await threads.deferToThread(stub.GetGlobal, global_pb2.GetGlobalRequest(),
                                                timeout=TIMEOUT)
                self.assertEqual(g.local_as, 65000)
            finally:
                channel.close()
        finally:
            await svc.stopService()
            if os.path.exists(path):
                os.unlink(path)
            os.rmdir(d)


class ControlWithoutServerTests(TestCase):
    def test_control_is_the_services(self):
        """The API service hands its servicers the one Control built on the service tree."""
        svc = BgpdService(parse_config(CONFIG.format(extra="")), None, reactor)
        svc.startService()
        self.addCleanup(svc.stopService)
        self.assertIsInstance(svc.api.control, Control)
        self.assertIs(svc.api.server.bridge.control, svc.api.control)


class EventsServiceTests(_ServerCase):
    @as_deferred
    async def test_watch_events(self):
        """WatchEvents streams the state change a DisablePeer causes, with its reason."""
        from bgpd.api._gen.bgpd.v1 import events_pb2, events_pb2_grpc

        stub = events_pb2_grpc.EventsStub(self.channel)
        # Others watch state changes too (the session history): count them first.
        bridge = self.svc.rib_service.bridge
        others = len(bridge.state_watchers)
        call = stub.WatchEvents(events_pb2.WatchEventsRequest(peer="192.0.2.1"), timeout=TIMEOUT)
        self.addCleanup(call.cancel)
        it = iter(call)
        # The stream subscribes on the reactor thread: wait (bounded) until it has.
        for _ in range(100):
            if len(bridge.state_watchers) > others:
                break
            await deferLater(reactor, 0.05, lambda: None)
        self.assertGreater(len(bridge.state_watchers), others)
        await self.rpc(self.peers.DisablePeer,
                       peers_pb2.DisablePeerRequest(address="192.0.2.1", message="work"))
        e = await threads.deferToThread(next, it)
        self.assertEqual((e.peer, e.new_state), ("192.0.2.1", "Idle"))
        self.assertIn("work", e.reason)


class SecondServerTests(TestCase):
    def test_second_server_on_the_same_port_fails(self):
        """A second API server on a port the first holds is refused (no SO_REUSEPORT sharing)."""
        first = ApiServer(reactor, None, ApiConfig(enabled=True, listen="127.0.0.1:0"))
        first.start()
        self.addCleanup(first.stop, 0)
        with self.assertRaises(ValueError) as cm:
            second = ApiServer(reactor, None, ApiConfig(enabled=True, listen=first.target))
            second.stop(0)
        self.assertIn("api.listen", str(cm.exception))
