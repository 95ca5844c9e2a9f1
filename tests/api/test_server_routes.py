"""The Routes service against a real in-process grpc server and reactor."""

from __future__ import annotations

import os

import grpc
from twisted.internet import reactor, threads
from twisted.internet.task import deferLater

from bgpd.api._gen.bgpd.v1 import routes_pb2, routes_pb2_grpc
from bgpd.api.control import Control
from bgpd.api.server import ApiServer
from bgpd.config import ApiConfig
from tests.api.test_server import TIMEOUT, _ServerCase
from tests.deferreds import as_deferred

REPO = os.path.dirname(os.path.dirname(os.path.dirname(os.path.abspath(__file__))))


def paths(n: int, start: int = 0) -> list[routes_pb2.OriginatePath]:
    return [routes_pb2.OriginatePath(prefix=f"10.{(i >> 8) & 255}.{i & 255}.0/24", next_hop="192.0.2.254")
            for i in range(start, start + n)]


class RoutesServiceTests(_ServerCase):
    def setUp(self):
        super().setUp()
        self.routes = routes_pb2_grpc.RoutesStub(self.channel)

    def add(self, batches):
        return threads.deferToThread(self.routes.AddPaths, iter(batches), timeout=TIMEOUT)

    def listing(self, **kwargs):
        req = routes_pb2.ListRoutesRequest(**kwargs)
        return threads.deferToThread(
            lambda: [r for m in self.routes.ListRoutes(req, timeout=TIMEOUT) for r in m.routes])

    async def settle(self, prefix: str, present: bool = True):
        """Bounded wait until the RIB's queue has processed ``prefix`` (50 x 0.1 s)."""
        for _ in range(50):
            got = await self.listing(prefix=prefix)
            if bool(got) == present:
                return got
            await deferLater(reactor, 0.1, lambda: None)
        self.fail(f"{prefix} never {'appeared' if present else 'went'}")

    @as_deferred
    async def test_add_list_delete(self):
        """AddPaths in batches, ListRoutes with every attribute, DeletePaths withdraws."""
        r = await self.add([routes_pb2.AddPathsRequest(paths=paths(3)),
                            routes_pb2.AddPathsRequest(paths=[routes_pb2.OriginatePath(
                                prefix="203.0.113.0/24", next_hop="192.0.2.254", med=9, local_pref=200,
                                communities=["65000:7", "no-export"], large_communities=["65000:1:2"],
                                origin="incomplete")])])
        self.assertEqual(r.count, 4)
        got = await self.settle("203.0.113.0/24")
        a = got[0].attributes
        self.assertEqual((a.med, a.local_pref, a.origin, a.next_hop), (9, 200, "incomplete", "192.0.2.254"))
        self.assertEqual(list(a.communities), ["65000:7", "no-export"])
        self.assertEqual(list(a.large_communities), ["65000:1:2"])
        self.assertTrue(got[0].best)
        self.assertEqual(got[0].source_peer, "local")
        everything = await self.listing()
        self.assertEqual(len(everything), 4)
        lm = await self.listing(longest_match="10.0.1.77")
        self.assertEqual([x.prefix for x in lm], ["10.0.1.0/24"])
        ms = await self.listing(more_specifics="10.0.0.0/8")
        self.assertEqual(len(ms), 3)
        d = await threads.deferToThread(self.routes.DeletePaths, routes_pb2.DeletePathsRequest(
            prefixes=["203.0.113.0/24"]), timeout=TIMEOUT)
        self.assertEqual(d.count, 1)
        await self.settle("203.0.113.0/24", present=False)

    @as_deferred
    async def test_paging(self):
        """page_size pages the listing with next_page_token; a used or foreign token is refused."""
        await self.add([routes_pb2.AddPathsRequest(paths=paths(25))])
        await self.settle("10.0.24.0/24")

        def page(token="", size=10, **kw):
            msgs = list(self.routes.ListRoutes(routes_pb2.ListRoutesRequest(
                page_size=size, page_token=token, **kw), timeout=TIMEOUT))
            return [r.prefix for m in msgs for r in m.routes], msgs[-1].next_page_token if msgs else ""

        seen = []
        token = ""
        sizes = []
        for _ in range(10):
            got, token = await threads.deferToThread(page, token)
            seen.extend(got)
            sizes.append(len(got))
            if not token:
                break
        self.assertEqual(sizes, [10, 10, 5])
        self.assertEqual(sorted(seen), sorted(p.prefix for p in paths(25)))
        first, token = await threads.deferToThread(page)
        code, details = await self.status_of(
            lambda req, timeout: list(self.routes.ListRoutes(req, timeout=timeout)),
            routes_pb2.ListRoutesRequest(page_size=10, page_token=token, all_paths=True))
        self.assertEqual(code, grpc.StatusCode.INVALID_ARGUMENT)
        self.assertIn("page_token", details)
        code, details = await self.status_of(
            lambda req, timeout: list(self.routes.ListRoutes(req, timeout=timeout)),
            routes_pb2.ListRoutesRequest(page_size=10, page_token=token))
        self.assertEqual(code, grpc.StatusCode.INVALID_ARGUMENT)  # used up by the refused call

    @as_deferred
    async def test_errors(self):
        """Bad next hop, bad filter, unknown peer, down peer, unknown path: each status names the field."""
        code, details = await self.status_of(lambda req, timeout: self.routes.AddPaths(
            iter([req]), timeout=timeout), routes_pb2.AddPathsRequest(paths=[
                *paths(2), routes_pb2.OriginatePath(prefix="2001:db8::/32", next_hop="192.0.2.1")]))
        self.assertEqual(code, grpc.StatusCode.INVALID_ARGUMENT)
        self.assertIn("paths[2].next_hop", details)
        self.assertEqual(await self.listing(), [])  # nothing applied

        def first(req, timeout):
            return list(self.routes.ListRoutes(req, timeout=timeout))

        def first_watch(req, timeout):
            return next(iter(self.routes.WatchRoutes(req, timeout=timeout)))

        cases = [
            (routes_pb2.ListRoutesRequest(prefix="10.0.0.1/8"), grpc.StatusCode.INVALID_ARGUMENT, "prefix"),
            (routes_pb2.ListRoutesRequest(family="x"), grpc.StatusCode.INVALID_ARGUMENT, "family"),
            (routes_pb2.ListRoutesRequest(table=routes_pb2.ADJ_RIB_IN, peer="192.0.2.99"),
             grpc.StatusCode.NOT_FOUND, "peer"),
            (routes_pb2.ListRoutesRequest(table=routes_pb2.ADJ_RIB_OUT, peer="192.0.2.1"),
             grpc.StatusCode.FAILED_PRECONDITION, "peer"),
        ]
        for req, want, field in cases:
            code, details = await self.status_of(first, req)
            self.assertEqual(code, want, req)
            self.assertIn(field, details)
        watches = [
            (routes_pb2.WatchRoutesRequest(table=routes_pb2.ADJ_RIB_IN), grpc.StatusCode.INVALID_ARGUMENT,
             "peer"),
            (routes_pb2.WatchRoutesRequest(peer="192.0.2.1"), grpc.StatusCode.INVALID_ARGUMENT, "peer"),
            (routes_pb2.WatchRoutesRequest(table=routes_pb2.ADJ_RIB_OUT, peer="192.0.2.1"),
             grpc.StatusCode.INVALID_ARGUMENT, "table"),
            (routes_pb2.WatchRoutesRequest(table=routes_pb2.ADJ_RIB_IN_PRE, peer="192.0.2.1"),
             grpc.StatusCode.FAILED_PRECONDITION, "peer"),
        ]
        for req, want, field in watches:
            code, details = await self.status_of(first_watch, req)
            self.assertEqual(code, want, req)
            self.assertIn(field, details)
        code, details = await self.status_of(self.routes.DeletePaths,
                                             routes_pb2.DeletePathsRequest(prefixes=["10.9.0.0/16"]))
        self.assertEqual(code, grpc.StatusCode.NOT_FOUND)
        self.assertIn("prefixes[0]", details)

    @as_deferred
    async def test_watch_with_dump(self):
        """WatchRoutes: the dump, end_of_dump, then a new path and its withdrawal, in order."""
        await self.add([routes_pb2.AddPathsRequest(paths=paths(2))])
        await self.settle("10.0.1.0/24")
        call = self.routes.WatchRoutes(routes_pb2.WatchRoutesRequest(dump=True), timeout=TIMEOUT)
        self.addCleanup(call.cancel)
        it = iter(call)
        pending = []

        def take(n):
            # Events arrive batched, several to a message: flatten them.
            while len(pending) < n:
                pending.extend(next(it).events)
            out = pending[:n]
            del pending[:n]
            return out

        head = await threads.deferToThread(take, 3)
        self.assertEqual([m.WhichOneof("event") for m in head], ["update", "update", "end_of_dump"])
        self.assertEqual(head[2].end_of_dump.count, 2)
        await self.add([routes_pb2.AddPathsRequest(paths=paths(1, start=5))])
        await threads.deferToThread(self.routes.DeletePaths, routes_pb2.DeletePathsRequest(
            prefixes=["10.0.5.0/24"]), timeout=TIMEOUT)
        tail = await threads.deferToThread(take, 2)
        self.assertEqual(tail[0].update.prefix, "10.0.5.0/24")
        self.assertEqual(tail[1].withdraw.prefix, "10.0.5.0/24")


class WatchOverflowTests(_ServerCase):
    @as_deferred
    async def test_slow_watcher_overflows(self):
        """A watcher that does not read is ended with RESOURCE_EXHAUSTED; routing goes on."""
        control = Control(self.svc)
        server = ApiServer(reactor, control, ApiConfig(enabled=True, listen="127.0.0.1:0"),
                           watch_bound=50)
        server.start()
        self.addCleanup(threads.deferToThread, server.stop)
        channel = grpc.insecure_channel(server.target)
        self.addCleanup(channel.close)
        stub = routes_pb2_grpc.RoutesStub(channel)
        call = stub.WatchRoutes(routes_pb2.WatchRoutesRequest(dump=True), timeout=TIMEOUT * 3)
        self.addCleanup(call.cancel)
        it = iter(call)
        # The (empty) dump's end says the watch is subscribed; then stop reading.
        first = await threads.deferToThread(next, it)
        self.assertEqual(first.events[0].WhichOneof("event"), "end_of_dump")
        await threads.deferToThread(stub.AddPaths, iter([routes_pb2.AddPathsRequest(paths=paths(20_000))]),
                                    timeout=TIMEOUT * 3)

        def read_all():
            n = 0
            try:
                for _ in it:
                    n += 1
            except grpc.RpcError as err:
                return n, err.code(), err.details()
            return n, None, ""

        n, code, details = await threads.deferToThread(read_all)
        self.assertEqual(code, grpc.StatusCode.RESOURCE_EXHAUSTED)
        self.assertIn("50", details)
        self.assertLess(n, 20_000)
        for _ in range(100):  # bounded: the RIB works through its queue in chunks
            if self.svc.rib_service.rib.loc_rib_size((1, 1)) == 20_000:
                break
            await deferLater(reactor, 0.1, lambda: None)
        self.assertEqual(self.svc.rib_service.rib.loc_rib_size((1, 1)), 20_000)


HOLDER = r"""
import sys, time
import grpc
from bgpd.api._gen.bgpd.v1 import routes_pb2, routes_pb2_grpc
stub = routes_pb2_grpc.RoutesStub(grpc.insecure_channel(sys.argv[1]))
def requests():
    yield routes_pb2.AddPathsRequest(paths=[routes_pb2.OriginatePath(prefix="198.51.100.64/26",
                                                                     next_hop="192.0.2.254")])
    time.sleep(600)  # holds the stream open until killed
for r in stub.HoldPaths(requests()):
    print("held", r.count, flush=True)
"""


class LeaseServiceTests(_ServerCase):
    def setUp(self):
        super().setUp()
        self.routes = routes_pb2_grpc.RoutesStub(self.channel)

    async def wait_loc(self, prefix, present):
        rib = self.svc.rib_service.rib
        from bgpd.wire.nlri import prefix_from_str

        key = prefix_from_str(prefix)[1]
        for _ in range(100):  # bounded: 10 s
            if (rib.best((1, 1), key) is not None) == present:
                return
            await deferLater(reactor, 0.1, lambda: None)
        self.fail(f"{prefix} {'never appeared' if present else 'never went'}")

    @as_deferred
    async def test_lease_rpcs(self):
        """CreateLease, AddPaths with lease_id, RenewLease, DeleteLease withdraws; errors by field."""
        lease = await threads.deferToThread(self.routes.CreateLease,
                                            routes_pb2.CreateLeaseRequest(ttl_seconds=60), timeout=TIMEOUT)
        self.assertEqual(lease.ttl_seconds, 60)
        await threads.deferToThread(self.routes.AddPaths, iter([routes_pb2.AddPathsRequest(
            paths=paths(1), lease_id=lease.id)]), timeout=TIMEOUT)
        await self.wait_loc("10.0.0.0/24", True)
        r = await threads.deferToThread(self.routes.RenewLease, routes_pb2.RenewLeaseRequest(id=lease.id),
                                        timeout=TIMEOUT)
        self.assertEqual(r.paths, 1)
        await threads.deferToThread(self.routes.DeleteLease, routes_pb2.DeleteLeaseRequest(id=lease.id),
                                    timeout=TIMEOUT)
        await self.wait_loc("10.0.0.0/24", False)
        code, _ = await self.status_of(self.routes.RenewLease, routes_pb2.RenewLeaseRequest(id=lease.id))
        self.assertEqual(code, grpc.StatusCode.NOT_FOUND)
        code, details = await self.status_of(self.routes.CreateLease, routes_pb2.CreateLeaseRequest())
        self.assertEqual(code, grpc.StatusCode.INVALID_ARGUMENT)
        self.assertIn("ttl_seconds", details)
        code, details = await self.status_of(lambda req, timeout: self.routes.AddPaths(
            iter([req]), timeout=timeout), routes_pb2.AddPathsRequest(paths=paths(1), lease_id="nope"))
        self.assertEqual(code, grpc.StatusCode.NOT_FOUND)
        self.assertIn("lease_id", details)

    @as_deferred
    async def test_hold_paths_until_cancel(self):
        """HoldPaths: the stream's paths live while it is open and go when it is cancelled."""
        import queue as _queue

        q: _queue.Queue = _queue.Queue()

        def requests():
            yield routes_pb2.AddPathsRequest(paths=paths(2))
            q.get(timeout=30)  # keep the stream open until the test says

        call = self.routes.HoldPaths(requests(), timeout=TIMEOUT * 3)
        first = await threads.deferToThread(next, iter(call))
        self.assertEqual(first.count, 2)
        await self.wait_loc("10.0.1.0/24", True)
        call.cancel()
        q.put(None)
        await self.wait_loc("10.0.1.0/24", False)
        await self.wait_loc("10.0.0.0/24", False)

    @as_deferred
    async def test_killed_client_loses_its_paths(self):
        """A HoldPaths client killed with SIGKILL has its paths withdrawn."""
        import signal
        import subprocess
        import sys

        proc = subprocess.Popen([sys.executable, "-c", HOLDER, self.svc.api.server.target],
                                stdout=subprocess.PIPE, text=True, cwd=REPO)
        self.addCleanup(lambda: proc.poll() is None and proc.kill())
        self.addCleanup(lambda: proc.stdout.close())
        line = await threads.deferToThread(proc.stdout.readline)
        self.assertEqual(line.strip(), "held 1")
        await self.wait_loc("198.51.100.64/26", True)
        proc.send_signal(signal.SIGKILL)
        await threads.deferToThread(proc.wait, 30)
        await self.wait_loc("198.51.100.64/26", False)
