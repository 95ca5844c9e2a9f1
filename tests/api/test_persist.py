"""API changes kept by the state store: over a real in-process grpc server, across restarts and SIGHUP."""

from __future__ import annotations

import os
import shutil
import stat
import tempfile
import tomllib

import grpc
from twisted.internet import reactor, threads
from twisted.internet.testing import MemoryReactorClock
from twisted.trial.unittest import SynchronousTestCase, TestCase

from bgpd.api._gen.bgpd.v1 import (
    global_pb2,
    global_pb2_grpc,
    peers_pb2,
    peers_pb2_grpc,
    policy_pb2,
    policy_pb2_grpc,
    routes_pb2,
    routes_pb2_grpc,
)
from bgpd.api.control import Control, parse_paths
from bgpd.config import (
    DEFAULT_API_LISTEN,
    ApiConfig,
    ConfigErrors,
    api_config_from_table,
    config_to_tables,
    load_config,
    parse_config,
    to_toml,
)
from bgpd.service import BgpdService
from bgpd.state.overlay import API_MARK
from bgpd.state.store import MemoryStore, SqliteStore
from tests.deferreds import as_deferred

FILE = """
[bgp]
local_as = 65000
router_id = "192.0.2.254"
listen_addresses = ["127.0.0.1"]
listen_port = 0
state_dir = "state"

[[neighbors]]
address = "192.0.2.1"
remote_as = 65001
passive = true
import_policy = ["accept-all"]
export_policy = ["accept-all"]

[api]
listen = "127.0.0.1:0"
"""

POLICIES = """
[policies.mine]
default = "accept"
"""

TIMEOUT = 10.0  # seconds, every RPC


class _Case(TestCase):
    timeout = 60

    def setUp(self):
        self.dir = tempfile.mkdtemp(prefix="bgpd-persist-")
        self.addCleanup(shutil.rmtree, self.dir)
        self.path = os.path.join(self.dir, "bgpd.toml")
        with open(self.path, "w") as f:
            f.write(FILE)
        self.svc: BgpdService | None = None

    async def start(self, store=None) -> None:
        """(Re)build the service from the file and the state store in state_dir, as bgpd's start does."""
        if self.svc is not None:
            await self.stop()
        if store is None:
            store = SqliteStore(os.path.join(self.dir, "state"))
        self.svc = BgpdService(load_config(self.path), self.path, reactor, store=store)
        self.svc.startService()
        self.channel = grpc.insecure_channel(self.svc.api.server.target)
        self.peers = peers_pb2_grpc.PeersStub(self.channel)
        self.policy = policy_pb2_grpc.PolicyStub(self.channel)
        self.routes = routes_pb2_grpc.RoutesStub(self.channel)
        self.glob = global_pb2_grpc.GlobalStub(self.channel)

    @as_deferred
    async def stop(self) -> None:
        svc, self.svc = self.svc, None
        self.channel.close()
        await svc.stopService()

    def tearDown(self):
        if self.svc is not None:
            return self.stop()
        return None

    def rpc(self, method, request):
        """Call ``method`` on a thread (the handler needs this reactor thread free)."""
        return threads.deferToThread(method, request, timeout=TIMEOUT)

    def add_path(self, prefix: str):
        request = routes_pb2.AddPathsRequest(paths=[routes_pb2.OriginatePath(
            prefix=prefix, next_hop="192.0.2.254", med=7)])
        return threads.deferToThread(self.routes.AddPaths, iter([request]), timeout=TIMEOUT)

    async def status_of(self, call):
        try:
            await call
        except grpc.RpcError as err:
            return err.code(), err.details()
        self.fail("the call succeeded")

    async def change_everything(self) -> None:
        """AddPeer, ReplacePolicy (the new peer uses the new policy) and a lease-less AddPaths."""
        await self.rpc(self.policy.ReplacePolicy, policy_pb2.PolicyCandidate(toml=POLICIES))
        cfg = peers_pb2.PeerConfig(address="192.0.2.3", remote_as=65003, passive=True,
                                   import_policy=["mine"], export_policy=["accept-all"])
        await self.rpc(self.peers.AddPeer, peers_pb2.AddPeerRequest(config=cfg))
        r = await self.add_path("198.51.100.0/24")
        self.assertEqual(r.count, 1)

    def assert_all_back(self) -> None:
        config = self.svc.config
        n = config.neighbor("192.0.2.3")
        self.assertIsNotNone(n)
        self.assertEqual(tuple(n.import_policy), ("mine",))
        self.assertIn("192.0.2.3", self.svc.sessions.peers)
        self.assertEqual([name for name, _ in config.policies], ["mine"])
        self.assertEqual([(o.prefix, o.med) for o in config.originate], [("198.51.100.0/24", 7)])
        self.assertIsNotNone(self.svc.config.neighbor("192.0.2.1"))


class RestartTests(_Case):
    @as_deferred
    async def test_restart_replays_the_api_changes(self):
        """AddPeer, ReplacePolicy and AddPaths are back after a restart from the same state_dir."""
        await self.start()
        await self.change_everything()
        self.assert_all_back()
        await self.start()  # a restart: a new service, a new store on the same directory
        self.assert_all_back()
        p = await self.rpc(self.peers.GetPeer, peers_pb2.GetPeerRequest(address="192.0.2.3"))
        self.assertTrue(p.from_api)
        doc = await self.rpc(self.policy.GetPolicy, policy_pb2.GetPolicyRequest())
        self.assertEqual(list(doc.names), ["mine"])
        conf = await self.rpc(self.glob.GetConfig, global_pb2.GetConfigRequest())
        self.assertEqual(list(conf.api_neighbors), ["192.0.2.3"])
        self.assertEqual(list(conf.api_paths), ["198.51.100.0/24"])
        self.assertIn(API_MARK, conf.toml)
        self.assertEqual(len(tomllib.loads(conf.toml)["neighbors"]), 2)

    @as_deferred
    async def test_sighup_keeps_the_api_changes(self):
        """A SIGHUP reload (the file read again) keeps the API's neighbor, policy and path."""
        await self.start()
        await self.change_everything()
        with open(self.path, "a") as f:
            f.write('\n[[originate]]\nprefix = "203.0.113.0/24"\n')
        self.assertTrue(self.svc.reload())
        self.assert_all_back_with_file_path()
        await self.start()
        self.assert_all_back_with_file_path()

    def assert_all_back_with_file_path(self) -> None:
        config = self.svc.config
        self.assertIsNotNone(config.neighbor("192.0.2.3"))
        self.assertEqual([name for name, _ in config.policies], ["mine"])
        self.assertEqual(sorted(o.prefix for o in config.originate), ["198.51.100.0/24", "203.0.113.0/24"])

    @as_deferred
    async def test_delete_and_withdraw_are_kept(self):
        """DeletePeer and DeletePaths stay done after a restart (the file's neighbor too)."""
        await self.start()
        await self.change_everything()
        await self.rpc(self.peers.DeletePeer, peers_pb2.DeletePeerRequest(address="192.0.2.3"))
        await self.rpc(self.peers.DeletePeer, peers_pb2.DeletePeerRequest(address="192.0.2.1"))
        r = await self.rpc(self.routes.DeletePaths,
                           routes_pb2.DeletePathsRequest(prefixes=["198.51.100.0/24"]))
        self.assertEqual(r.count, 1)
        await self.start()
        self.assertEqual(self.svc.config.neighbors, ())
        self.assertEqual(self.svc.config.originate, ())
        code, _ = await self.status_of(self.rpc(self.routes.DeletePaths, routes_pb2.DeletePathsRequest(
            prefixes=["198.51.100.0/24"])))
        self.assertEqual(code, grpc.StatusCode.NOT_FOUND)

    @as_deferred
    async def test_leased_paths_are_not_kept(self):
        """A path tied to a lease lives in memory only: a restart does not bring it back."""
        await self.start()
        lease = await self.rpc(self.routes.CreateLease, routes_pb2.CreateLeaseRequest(ttl_seconds=600))
        request = routes_pb2.AddPathsRequest(lease_id=lease.id, paths=[routes_pb2.OriginatePath(
            prefix="198.51.100.0/24", next_hop="192.0.2.254")])
        await threads.deferToThread(self.routes.AddPaths, iter([request]), timeout=TIMEOUT)
        self.assertEqual(self.svc.config.originate, ())
        self.assertEqual(self.svc.state.overlay, [])
        await self.start()
        self.assertEqual(self.svc.config.originate, ())


class WriteFailureTests(_Case):
    @as_deferred
    async def test_write_failure_is_unavailable_and_changes_nothing(self):
        """When the store cannot write, each change fails with UNAVAILABLE and nothing runs."""
        store = MemoryStore()
        await self.start(store)
        store.fail = "disk full"
        cfg = peers_pb2.PeerConfig(address="192.0.2.3", remote_as=65003, passive=True)
        code, details = await self.status_of(self.rpc(self.peers.AddPeer,
                                                      peers_pb2.AddPeerRequest(config=cfg)))
        self.assertEqual(code, grpc.StatusCode.UNAVAILABLE)
        self.assertIn("disk full", details)
        code, _ = await self.status_of(self.rpc(self.policy.ReplacePolicy,
                                                policy_pb2.PolicyCandidate(toml=POLICIES)))
        self.assertEqual(code, grpc.StatusCode.UNAVAILABLE)
        code, _ = await self.status_of(self.add_path("198.51.100.0/24"))
        self.assertEqual(code, grpc.StatusCode.UNAVAILABLE)
        code, _ = await self.status_of(self.rpc(self.peers.DeletePeer,
                                                peers_pb2.DeletePeerRequest(address="192.0.2.1")))
        self.assertEqual(code, grpc.StatusCode.UNAVAILABLE)
        config = self.svc.config
        self.assertIsNone(config.neighbor("192.0.2.3"))
        self.assertIsNotNone(config.neighbor("192.0.2.1"))
        self.assertEqual(sorted(self.svc.sessions.peers), ["192.0.2.1"])
        self.assertEqual(config.policies, ())
        self.assertEqual(config.originate, ())
        self.assertEqual(store.changes(), [])


class RollbackThroughStoreTests(SynchronousTestCase):
    def setUp(self):
        self.dir = tempfile.mkdtemp(prefix="bgpd-persist-")
        self.addCleanup(shutil.rmtree, self.dir)
        self.path = os.path.join(self.dir, "bgpd.toml")
        with open(self.path, "w") as f:
            f.write(FILE.replace('[api]\nlisten = "127.0.0.1:0"\n', ""))
        self.reactor = MemoryReactorClock()

    def service(self) -> BgpdService:
        return BgpdService(load_config(self.path), self.path, self.reactor,
                           store=SqliteStore(os.path.join(self.dir, "state")))

    def test_confirm_timer_rollback_is_stored(self):
        """The confirm timer's rollback writes the previous policies back: a restart has them."""
        svc = self.service()
        control = Control(svc)
        control.replace_policy(POLICIES)
        control.replace_policy(POLICIES.replace("mine", "theirs"), confirm_seconds=30)
        self.assertEqual([n for n, _ in svc.config.policies], ["theirs"])
        self.reactor.advance(31)
        self.assertEqual([n for n, _ in svc.config.policies], ["mine"])
        svc.state.store.close()
        again = self.service()
        self.assertEqual([n for n, _ in again.config.policies], ["mine"])
        again.state.store.close()

    def test_rollback_to_the_files_policies_forgets_the_replacement(self):
        """Rolled back to the file's policies, the store holds none: a SIGHUP follows the file again."""
        with open(self.path, "a") as f:
            f.write('\n[policies.filed]\ndefault = "accept"\n')
        svc = self.service()
        control = Control(svc)
        control.replace_policy(POLICIES, confirm_seconds=30)
        self.reactor.advance(31)
        self.assertEqual([n for n, _ in svc.config.policies], ["filed"])
        self.assertEqual(svc.state.overlay, [])
        with open(self.path, "a") as f:
            f.write('\n[policies.later]\ndefault = "reject"\n')
        self.assertTrue(svc.reload())
        self.assertEqual([n for n, _ in svc.config.policies], ["filed", "later"])
        svc.state.store.close()

    def test_unconfirmed_policy_is_stored_until_rolled_back(self):
        """An unconfirmed replacement is in the store (a restart before the timer keeps it)."""
        svc = self.service()
        Control(svc).replace_policy(POLICIES, confirm_seconds=30)
        svc.state.store.close()
        again = self.service()
        self.assertEqual([n for n, _ in again.config.policies], ["mine"])
        again.state.store.close()

    def test_lease_less_path_replaces_a_leased_one(self):
        """A path added without a lease takes over a leased one: kept, and the lease lets go of it."""
        svc = self.service()
        control = Control(svc)
        lease = control.create_lease(60)
        path = parse_paths([{"prefix": "198.51.100.0/24", "next_hop": "192.0.2.254"}])
        control.add_paths(path, lease.id)
        self.assertEqual(control.add_paths(path), 1)
        self.assertEqual(control.path_lease, {})
        control.end_lease(lease.id)
        self.assertEqual([o.prefix for o in svc.config.originate], ["198.51.100.0/24"])
        svc.rib_service.rib.drain()
        self.assertEqual(svc.rib_service.rib.loc_rib_size((1, 1)), 1)
        svc.state.store.close()


class DefaultListenTests(_Case):
    @as_deferred
    async def test_default_socket_in_state_dir(self):
        """Without [api] listen the API serves on bgpd.sock in state_dir (relative: next to the file)."""
        with open(self.path, "w") as f:
            f.write(FILE.replace('listen = "127.0.0.1:0"\n', ""))
        await self.start(MemoryStore())
        socket_path = os.path.join(self.dir, "state", "bgpd.sock")
        self.assertEqual(self.svc.api.server.target, f"unix:{socket_path}")
        self.assertTrue(stat.S_ISSOCK(os.lstat(socket_path).st_mode))
        g = await self.rpc(self.glob.GetGlobal, global_pb2.GetGlobalRequest())
        self.assertEqual(g.local_as, 65000)

    def test_empty_listen_is_an_error(self):
        """listen = "" is refused naming api.listen (leaving it out is the default socket)."""
        with self.assertRaises(ConfigErrors) as e:
            api_config_from_table({"listen": ""})
        self.assertEqual(e.exception.errors[0].key, "api.listen")
        self.assertTrue(ApiConfig().local_only)
        self.assertEqual(DEFAULT_API_LISTEN, "unix:/var/lib/bgpd/bgpd.sock")

    def test_default_listen_reads_back(self):
        """The effective config of an [api] without listen reads back as the same config."""
        config = parse_config(FILE.replace('listen = "127.0.0.1:0"\n', ""))
        self.assertEqual(parse_config(to_toml(config_to_tables(config))).api, config.api)
