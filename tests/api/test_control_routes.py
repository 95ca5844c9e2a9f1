"""The control object's Routes part without gRPC: listings, originate, watch."""

from __future__ import annotations

from twisted.internet.testing import MemoryReactorClock
from twisted.trial.unittest import SynchronousTestCase

from bgpd.api.control import (
    ADJ_RIB_IN,
    ADJ_RIB_IN_PRE,
    ADJ_RIB_OUT,
    LOC_RIB,
    WATCH_GRACE,
    WATCH_HARD,
    Control,
    EndOfDump,
    FailedPrecondition,
    InvalidArgument,
    NotFound,
    Overflow,
    RouteRecord,
    Withdrawn,
    parse_paths,
)
from bgpd.config import parse_config
from bgpd.service import BgpdService
from bgpd.wire.attributes import PathAttributes
from bgpd.wire.update import pack_reach, pack_withdraw
from tests.rib_spy import RibSpy
from tests.test_pipeline import Peer, pfx

CONFIG = """
[bgp]
local_as = 65000
router_id = "192.0.2.1"
listen_addresses = []
mrai_ebgp = 0

[[neighbors]]
address = "192.0.2.2"
remote_as = 65002
local_address = "192.0.2.1"
import_policy = ["accept-all"]
export_policy = ["accept-all"]
soft_reconfiguration_inbound = true

[[neighbors]]
address = "192.0.2.3"
remote_as = 65003
local_address = "192.0.2.1"
import_policy = ["accept-all"]
export_policy = ["accept-all"]
"""


def drain(cursor) -> list[RouteRecord]:
    out = []
    for _ in range(10_000):
        out.extend(cursor.next(3))
        if cursor.done:
            return out
    raise AssertionError("cursor never finished")


def queued(watch) -> list:
    """Every event the watch queued, taken as its reader would."""
    items = []
    for _ in range(1000):
        got = watch.take(100)
        if isinstance(got, Overflow):
            return [*items, got]
        if not got.events:
            return items
        items.extend(got.records())
    raise AssertionError("the queue never emptied")


class RoutesControlTests(SynchronousTestCase):
    def setUp(self):
        self.reactor = MemoryReactorClock()
        self.svc = BgpdService(parse_config(CONFIG), None, self.reactor)
        self.svc.startService()
        self.a = Peer(self, "192.0.2.2", 65002)
        self.b = Peer(self, "192.0.2.3", 65003)
        self.a.establish()
        self.b.establish()
        self.control = Control(self.svc)

    def tearDown(self):
        self.svc.stopService()
        self.reactor.advance(3)

    def settle(self):
        for _ in range(30):
            self.reactor.advance(0.1)

    def announce(self, peer, prefixes, **attrs):
        a = PathAttributes(as_path=((2, (peer.asn,)),), next_hop=peer.address, **attrs)
        peer.send(*pack_reach(1, 1, a, [pfx(p) for p in prefixes]))
        self.settle()

    def test_raw_listing_equals_records(self):
        """next_raw + raw_response give the very Routes that next + route_to_pb give, in chunks."""
        from bgpd.api._gen.bgpd.v1 import routes_pb2
        from bgpd.api.server import RouteEncoder, route_to_pb

        self.announce(self.a, [f"198.51.100.{i}/32" for i in range(20)], med=5)
        self.announce(self.a, [f"198.51.101.{i}/32" for i in range(7)], local_pref=9)
        self.announce(self.b, ["198.51.100.0/32", "203.0.113.0/24"], local_pref=50)
        want = routes_pb2.ListRoutesResponse(routes=[route_to_pb(r) for r in drain(
            self.control.list_routes())])
        self.assertEqual(len(want.routes), 28)
        cursor = self.control.list_routes()
        self.assertTrue(cursor.raw)
        encoder = RouteEncoder()
        data = b""
        for _ in range(100):
            chunk = cursor.next_raw(3)
            self.assertLessEqual(len(chunk.items), 3)
            data += b"".join(encoder.raw_response(chunk))
            if cursor.done:
                break
        self.assertEqual(routes_pb2.ListRoutesResponse.FromString(data), want)
        # cut into messages of about message_bytes: every route in one of them, in order
        cursor = self.control.list_routes()
        small = RouteEncoder(message_bytes=200).raw_response(cursor.next_raw(100))
        self.assertGreater(len(small), 3)
        self.assertTrue(all(len(m) < 200 + 150 for m in small))
        self.assertEqual([r for m in small for r in routes_pb2.ListRoutesResponse.FromString(m).routes],
                         list(want.routes))
        # a limit and a filter hold as in next()
        cursor = self.control.list_routes(more_specifics="198.51.101.0/24", limit=5)
        got = cursor.next_raw(100)
        self.assertEqual([k[-1] for k, _ in got.items], [0, 1, 2, 3, 4])
        self.assertTrue(cursor.done)
        self.assertFalse(self.control.list_routes(all_paths=True).raw)

    def test_loc_rib_listing_with_explain(self):
        """The Loc-RIB lists best paths; all_paths adds the loser with its decision step."""
        self.announce(self.a, ["198.51.100.0/24", "198.51.100.128/25"], med=5)
        self.announce(self.b, ["198.51.100.0/24"], local_pref=50)
        routes = drain(self.control.list_routes(LOC_RIB))
        self.assertEqual(sorted(r.prefix for r in routes), ["198.51.100.0/24", "198.51.100.128/25"])
        self.assertTrue(all(r.best for r in routes))
        every = drain(self.control.list_routes(LOC_RIB, prefix="198.51.100.0/24", all_paths=True))
        self.assertEqual(len(every), 2)
        best, other = every
        self.assertTrue(best.best)
        self.assertFalse(other.best)
        self.assertTrue(other.explain_step)
        self.assertEqual(best.source_peer, "192.0.2.2")
        self.assertEqual(best.attributes.med, 5)

    def test_cap_never_splits_a_prefix(self):
        """next(most=) stops before a prefix whose candidates would pass the cap."""
        self.announce(self.a, ["198.51.100.0/24", "198.51.100.128/25"])
        self.announce(self.b, ["198.51.100.0/24"])
        cursor = self.control.list_routes(LOC_RIB, all_paths=True)
        pages = []
        for _ in range(10):
            got = cursor.next(most=1)
            pages.append(sorted(r.prefix for r in got))
            if cursor.done:
                break
        self.assertEqual(sorted(pages), [["198.51.100.0/24", "198.51.100.0/24"], ["198.51.100.128/25"]])

    def test_filters(self):
        """Exact, longest-match and more-specifics filters pick the right prefixes."""
        self.announce(self.a, ["198.51.100.0/24", "198.51.100.128/25", "192.0.2.128/25"])
        lm = drain(self.control.list_routes(LOC_RIB, longest_match="198.51.100.200"))
        self.assertEqual([r.prefix for r in lm], ["198.51.100.128/25"])
        lm = drain(self.control.list_routes(LOC_RIB, longest_match="198.51.100.1"))
        self.assertEqual([r.prefix for r in lm], ["198.51.100.0/24"])
        ms = drain(self.control.list_routes(LOC_RIB, more_specifics="198.51.100.0/24"))
        self.assertEqual(sorted(r.prefix for r in ms), ["198.51.100.0/24", "198.51.100.128/25"])
        self.assertEqual(drain(self.control.list_routes(LOC_RIB, prefix="203.0.113.0/24")), [])
        self.assertEqual(len(drain(self.control.list_routes(LOC_RIB, limit=2))), 2)

    def test_adj_rib_tables(self):
        """Adj-RIB-In (pre and post) of A and the Adj-RIB-Out towards B list A's route."""
        self.announce(self.a, ["198.51.100.0/24"])
        for table in (ADJ_RIB_IN, ADJ_RIB_IN_PRE):
            r = drain(self.control.list_routes(table, peer="192.0.2.2"))
            self.assertEqual([x.prefix for x in r], ["198.51.100.0/24"])
        out = drain(self.control.list_routes(ADJ_RIB_OUT, peer="192.0.2.3"))
        self.assertEqual([x.prefix for x in out], ["198.51.100.0/24"])
        self.assertEqual(out[0].attributes.as_path, ((2, (65000, 65002)),))

    def test_listing_errors(self):
        """Bad table, family, prefix, missing peer and no pre-policy table are refused by field."""
        cases = [
            (dict(table="nope"), InvalidArgument, "table"),
            (dict(family="ipv9"), InvalidArgument, "family"),
            (dict(prefix="198.51.100.1/24"), InvalidArgument, "prefix"),
            (dict(prefix="2001:db8::/32"), InvalidArgument, "prefix"),
            (dict(table=ADJ_RIB_IN), InvalidArgument, "peer"),
            (dict(table=LOC_RIB, peer="192.0.2.2"), InvalidArgument, "peer"),
            (dict(table=ADJ_RIB_IN, peer="192.0.2.9"), NotFound, "peer"),
            (dict(table=ADJ_RIB_IN_PRE, peer="192.0.2.3"), FailedPrecondition, "table"),
        ]
        for kwargs, error, field in cases:
            with self.assertRaises(error, msg=kwargs) as cm:
                self.control.list_routes(**kwargs)
            self.assertEqual(cm.exception.field, field, kwargs)

    def test_originate_and_withdraw(self):
        """Originated paths reach the Loc-RIB and the peers; delete withdraws them."""
        paths = parse_paths([{"prefix": "203.0.113.0/24", "next_hop": "192.0.2.1",
                              "communities": ["65000:1"], "med": 7}])
        self.assertEqual(self.control.add_paths(paths), 1)
        self.assertEqual(self.control.add_paths(paths), 0)  # unchanged
        self.settle()
        r = drain(self.control.list_routes(LOC_RIB, prefix="203.0.113.0/24"))
        self.assertEqual((r[0].source_peer, r[0].attributes.med), ("local", 7))
        self.assertIn("203.0.113.0/24", self.b.routes())
        with self.assertRaises(NotFound) as cm:
            self.control.delete_paths(["203.0.113.0/24", "198.51.100.0/24"])
        self.assertEqual(cm.exception.field, "prefixes[1]")
        self.assertEqual(self.control.delete_paths(["203.0.113.0/24"]), 1)
        self.settle()
        self.assertEqual(drain(self.control.list_routes(LOC_RIB)), [])

    def test_parse_paths_errors(self):
        """A wrong-family next hop and other bad fields are named paths[i].FIELD."""
        cases = [
            ({"prefix": "2001:db8::/32", "next_hop": "192.0.2.1"}, "paths[0].next_hop"),
            ({"prefix": "203.0.113.0/24", "next_hop": "2001:db8::1"}, "paths[0].next_hop"),
            ({"prefix": "203.0.113.1/24", "next_hop": "192.0.2.1"}, "paths[0].prefix"),
            ({"next_hop": "192.0.2.1"}, "paths[0].prefix"),
            ({"prefix": "203.0.113.0/24"}, "paths[0].next_hop"),
            ({"prefix": "203.0.113.0/24", "next_hop": "192.0.2.1", "origin": "x"}, "paths[0].origin"),
            ({"prefix": "203.0.113.0/24", "next_hop": "192.0.2.1", "communities": ["1:x"]},
             "paths[0].communities"),
            ({"prefix": "203.0.113.0/24", "next_hop": "192.0.2.1", "large_communities": ["1"]},
             "paths[0].large_communities"),
        ]
        for item, field in cases:
            with self.assertRaises(InvalidArgument, msg=item) as cm:
                parse_paths([item])
            self.assertEqual(cm.exception.field, field)
        with self.assertRaises(InvalidArgument) as cm:
            parse_paths([{"prefix": "2001:db8::/32"}], offset=41)
        self.assertEqual(cm.exception.field, "paths[41].next_hop")

    def test_watch_dump_then_changes(self):
        """A watch with dump sends the table, end-of-dump, then changes in order."""
        self.announce(self.a, ["198.51.100.0/24"])
        watch = self.control.watch_routes(dump=True)
        self.settle()
        self.announce(self.a, ["198.51.100.128/25"])
        items = queued(watch)
        self.assertEqual([type(i) for i in items], [RouteRecord, EndOfDump, RouteRecord])
        self.assertEqual(items[1].count, 1)
        self.assertEqual(items[2].prefix, "198.51.100.128/25")
        self.control.add_paths(parse_paths([{"prefix": "203.0.113.0/24", "next_hop": "192.0.2.1"}]))
        self.settle()
        self.control.delete_paths(["203.0.113.0/24"])
        self.settle()
        items = queued(watch)
        self.assertEqual(items[-1], Withdrawn("203.0.113.0/24", "ipv4-unicast"))
        watch.close()
        self.announce(self.a, ["192.0.2.128/25"])
        self.assertEqual(queued(watch), [])

    def test_path_age_is_since_the_attribute_set_arrived(self):
        """A path's age counts from when its peer first sent that attribute set, in listings and watches."""
        self.reactor.advance(1)  # (the clock's 0 is "no time"); within the hold time throughout
        self.announce(self.a, ["198.51.100.0/24"], med=5)  # settle() takes 3 s
        arrived = self.svc.rib_service.rib.best((1, 1), pfx("198.51.100.0/24")).since
        self.assertGreaterEqual(arrived, 1)  # whole seconds
        self.reactor.advance(30)
        watch = self.control.watch_routes()
        # the same attribute set for another prefix: the shared path, its age
        self.announce(self.a, ["203.0.113.0/24"], med=5)
        age = int(self.reactor.seconds() - arrived)
        ages = {r.prefix: r.age for r in drain(self.control.list_routes())}
        self.assertEqual(ages, {"198.51.100.0/24": age, "203.0.113.0/24": age})
        cursor = self.control.list_routes()
        chunk = cursor.next_raw(10)
        self.assertEqual({f.age for f in chunk.meta.values()}, {age})
        self.assertGreaterEqual(queued(watch)[0].age, 30)
        # a new attribute set is a new path: its age starts again
        self.announce(self.a, ["198.51.100.0/24"], med=6)
        ages = {r.prefix: r.age for r in drain(self.control.list_routes())}
        self.assertLessEqual(ages["198.51.100.0/24"], 3)
        self.assertEqual(ages["203.0.113.0/24"], age + 3)

    def test_watch_coalesces_per_prefix(self):
        """A prefix changed twice before the reader took it is sent once, with its latest state."""
        watch = self.control.watch_routes()
        self.announce(self.a, ["198.51.100.0/24", "203.0.113.0/24"], med=1)
        self.announce(self.a, ["198.51.100.0/24"], med=2)
        self.assertEqual(watch.count, 2)
        items = queued(watch)
        self.assertEqual([(i.prefix, i.attributes.med) for i in items],
                         [("198.51.100.0/24", 2), ("203.0.113.0/24", 1)])
        self.announce(self.a, ["198.51.100.0/24"], med=3)
        self.a.send(*pack_withdraw(1, 1, [pfx("198.51.100.0/24")]))
        self.settle()
        self.assertEqual(queued(watch), [Withdrawn("198.51.100.0/24", "ipv4-unicast")])

    def test_watch_lag_and_batches(self):
        """take() returns at most the batch asked for; lag counts what is still queued behind it."""
        watch = self.control.watch_routes()
        self.announce(self.a, [f"198.51.100.{i * 16}/28" for i in range(10)])
        first = watch.take(4)
        self.assertEqual((len(first.events), first.lag), (4, 6))
        self.assertTrue(watch.ready.is_set())
        second = watch.take(100)
        self.assertEqual((len(second.events), second.lag), (6, 0))
        self.assertFalse(watch.ready.is_set())

    def test_change_of_a_dumped_prefix_follows_the_end_of_dump(self):
        """A dumped path not read yet stays in the dump; its change comes after end-of-dump."""
        self.announce(self.a, ["198.51.100.0/24"], med=1)
        watch = self.control.watch_routes(dump=True)
        self.settle()
        self.announce(self.a, ["198.51.100.0/24"], med=2)
        items = queued(watch)
        self.assertEqual([type(i) for i in items], [RouteRecord, EndOfDump, RouteRecord])
        self.assertEqual([items[0].attributes.med, items[2].attributes.med], [1, 2])

    def test_adj_rib_in_watch(self):
        """A watch of one peer's Adj-RIB-In sees its announcements and withdrawals only, dump first."""
        self.announce(self.a, ["198.51.100.0/24"], med=1)
        watch = self.control.watch_adj_rib_in("192.0.2.2", dump=True)
        pre = self.control.watch_adj_rib_in("192.0.2.2", pre_policy=True, prefix="203.0.113.0/24")
        self.settle()
        self.announce(self.b, ["203.0.113.0/24", "198.51.100.0/24"], local_pref=50)
        self.announce(self.a, ["203.0.113.0/24"], med=2)
        self.a.send(*pack_withdraw(1, 1, [pfx("198.51.100.0/24")]))
        self.settle()
        items = queued(watch)
        self.assertEqual([type(i) for i in items], [RouteRecord, EndOfDump, RouteRecord, Withdrawn])
        self.assertEqual([(i.prefix, i.source_peer) for i in items[::2]],
                         [("198.51.100.0/24", "192.0.2.2"), ("203.0.113.0/24", "192.0.2.2")])
        self.assertEqual(items[3], Withdrawn("198.51.100.0/24", "ipv4-unicast"))
        # b's local-pref 50 loses to a's default 100 for 203.0.113.0/24: a's path is the best
        self.assertTrue(items[2].best)
        self.assertEqual([(i.prefix, i.attributes.med) for i in queued(pre)], [("203.0.113.0/24", 2)])
        watch.close()
        pre.close()
        self.announce(self.a, ["192.0.2.128/25"])
        self.assertEqual(queued(watch), [])

    def test_adj_rib_in_watch_sees_the_session_drop(self):
        """When the peer's session goes down, its routes are withdrawn in the post- and pre-policy watch."""
        self.announce(self.a, ["198.51.100.0/24"])
        post = self.control.watch_adj_rib_in("192.0.2.2")
        pre = self.control.watch_adj_rib_in("192.0.2.2", pre_policy=True)
        self.svc.sessions.peers["192.0.2.2"].stop("test")
        self.settle()
        want = [Withdrawn("198.51.100.0/24", "ipv4-unicast")]
        self.assertEqual((queued(post), queued(pre)), (want, want))

    def test_pre_policy_watch_when_the_kept_table_is_gone(self):
        """A peer kept across a session drop (graceful restart) has no pre-policy table: keys read as gone."""
        self.announce(self.a, ["198.51.100.0/24"])
        pre = self.control.watch_adj_rib_in("192.0.2.2", pre_policy=True)
        rib = self.svc.rib_service.rib
        real = rib.adj_rib_in

        def without_pre(peer, family, pre_policy=False):
            if pre_policy:  # what the RIB answers once it dropped st.pre but kept the peer
                raise ValueError("soft reconfiguration is not enabled")
            return real(peer, family, pre_policy)

        self.patch(self.svc.rib_service, "rib", RibSpy(rib, adj_rib_in=without_pre))
        self.a.send(*pack_withdraw(1, 1, [pfx("198.51.100.0/24")]))
        self.settle()
        self.assertEqual(queued(pre), [Withdrawn("198.51.100.0/24", "ipv4-unicast")])

    def test_adj_rib_in_watch_errors(self):
        """An unknown peer is NOT_FOUND; pre-policy without soft reconfiguration is FAILED_PRECONDITION."""
        with self.assertRaises(NotFound):
            self.control.watch_adj_rib_in("192.0.2.99")
        with self.assertRaises(FailedPrecondition) as cm:
            self.control.watch_adj_rib_in("192.0.2.3", pre_policy=True)
        self.assertEqual(cm.exception.field, "table")

    def test_watch_filter(self):
        """A watch of one prefix sees only it and its more-specifics."""
        watch = self.control.watch_routes(family="ipv4-unicast", prefix="198.51.100.0/24")
        self.announce(self.a, ["198.51.100.0/25", "192.0.2.128/25"])
        self.assertEqual([i.prefix for i in queued(watch)], ["198.51.100.0/25"])

    def test_watch_overflow(self):
        """Past its bound with no read for WATCH_GRACE seconds a watch ends (Overflow); routing goes on."""
        watch = self.control.watch_routes(bound=3)
        self.announce(self.a, [f"198.51.100.{i * 16}/28" for i in range(6)])
        self.assertFalse(watch.closed)  # past the bound, but the reader may still come
        self.reactor.advance(WATCH_GRACE)
        self.announce(self.a, ["203.0.113.0/24"])
        self.assertTrue(watch.closed)
        self.assertEqual(watch.take(100), Overflow(3))
        self.assertEqual(len(drain(self.control.list_routes(LOC_RIB))), 7)

    def test_a_reading_watcher_is_only_behind(self):
        """A reader that keeps taking may trail past the bound (lag says by how much), up to WATCH_HARD x."""
        watch = self.control.watch_routes(bound=3)
        self.announce(self.a, [f"198.51.100.{i * 16}/28" for i in range(6)])
        for i in range(3):
            batch = watch.take(1)
            self.assertEqual(len(batch.events), 1)
            self.reactor.advance(WATCH_GRACE)
            self.announce(self.a, [f"203.0.113.{i}/32"])
            self.assertFalse(watch.closed)
        self.assertEqual(watch.take(100).lag, 0)
        self.announce(self.a, [f"192.0.2.{i}/32" for i in range(3 * WATCH_HARD + 1)])
        self.assertTrue(watch.closed)
        self.assertEqual(watch.take(100), Overflow(3))

    def test_dump_waits_for_the_reader(self):
        """A dump bigger than the bound pauses instead of overflowing while the reader keeps up."""
        self.announce(self.a, [f"198.51.100.{i * 8}/29" for i in range(20)])
        watch = self.control.watch_routes(dump=True, bound=8)
        got = []
        for _ in range(200):
            got.extend(queued(watch))
            self.reactor.advance(0.01)
            if got and isinstance(got[-1], EndOfDump):
                break
        self.assertFalse(any(isinstance(i, Overflow) for i in got))
        self.assertEqual(got[-1], EndOfDump(20))


class RouteEncoderTests(SynchronousTestCase):
    def test_hand_encoding_equals_protobuf(self):
        """RouteEncoder's bytes parse to exactly the Route messages route_to_pb builds."""
        from bgpd.api._gen.bgpd.v1 import routes_pb2
        from bgpd.api.server import RouteEncoder, route_to_pb

        a = PathAttributes(origin=2, as_path=((2, (65001, 65002)), (1, (7, 8))), next_hop="192.0.2.9",
                           med=0, local_pref=300, communities=(65000 << 16 | 1,),
                           large_communities=((65000, 1, 2),), atomic_aggregate=True,
                           aggregator=(65001, "192.0.2.7"), originator_id="192.0.2.8",
                           cluster_list=("192.0.2.6",), unknown=((0xC0, 99, b"\x01\x02"),))
        records = [
            RouteRecord("198.51.100.0/24", "ipv4-unicast", 0, True, "192.0.2.2", "192.0.2.2", a),
            RouteRecord("198.51.100.0/24", "ipv4-unicast", 7, False, "192.0.2.3", "192.0.2.3", a,
                        "local-pref", True),
            RouteRecord("2001:db8::/32", "ipv6-unicast", 0, False, "", "", PathAttributes(
                next_hop="2001:db8::1")),
            RouteRecord("10.0.0.0/8", "ipv4-unicast", 300, True, "local", "0.0.0.0", a, "x" * 200),
            RouteRecord("10.0.0.0/9", "ipv4-unicast", 0, True, "local", "0.0.0.0", a, age=86400 * 400),
        ]
        got = RouteEncoder().response(records)
        want = routes_pb2.ListRoutesResponse(routes=[route_to_pb(r) for r in records])
        self.assertEqual(got, want)
        items = [records[0], Withdrawn("198.51.100.0/24", "ipv4-unicast"), EndOfDump(0), EndOfDump(300),
                 records[1]]
        got = RouteEncoder().watch_response(items, 1234)
        want = routes_pb2.WatchRoutesResponse(lag=1234, events=[
            routes_pb2.RouteEvent(update=route_to_pb(records[0])),
            routes_pb2.RouteEvent(withdraw=routes_pb2.Withdrawal(prefix="198.51.100.0/24",
                                                                 family="ipv4-unicast")),
            routes_pb2.RouteEvent(end_of_dump=routes_pb2.EndOfDump()),
            routes_pb2.RouteEvent(end_of_dump=routes_pb2.EndOfDump(count=300)),
            routes_pb2.RouteEvent(update=route_to_pb(records[1]))])
        self.assertEqual(got, want)
        self.assertEqual(got.events[2].WhichOneof("event"), "end_of_dump")

    def test_attribute_pieces_equal_protobuf(self):
        """AttributePieces' bytes parse to exactly attributes_to_pb's message, for sets of every shape."""
        import random

        from bgpd.api._gen.bgpd.v1 import routes_pb2
        from bgpd.api.server import AttributePieces, attributes_to_pb

        rng = random.Random(7)
        sets = [
            PathAttributes(),
            PathAttributes(origin=2, as_path=((2, ()),), med=0, local_pref=0, otc=0),
            PathAttributes(as_path=((1, (4_200_000_000, 1)), (3, (64512,)), (4, (7,))),
                           next_hop="2001:db8::1", next_hop_ll="fe80::1", aggregator=(0, "192.0.2.7"),
                           cluster_list=("192.0.2.6",),
                           originator_id="192.0.2.8", atomic_aggregate=True,
                           ext_communities=(bytes.fromhex("0002fde800000001"),),
                           unknown=((0xC0, 99, b""), (0, 0, b"\x01" * 300))),
        ]
        for _ in range(300):
            sets.append(PathAttributes(
                origin=rng.choice((0, 1, 2)),
                as_path=((2, tuple(rng.randrange(1 << 32) for _ in range(rng.randrange(8)))),),
                next_hop=rng.choice(("192.0.2.1", "192.0.2.2", None)),
                med=rng.choice((None, 0, rng.randrange(1 << 32))),
                local_pref=rng.choice((None, 100, rng.randrange(1 << 32))),
                communities=tuple(rng.randrange(1 << 32) for _ in range(rng.randrange(70))),
                large_communities=tuple((rng.randrange(1 << 32), 1, rng.randrange(9))
                                        for _ in range(rng.randrange(3)))))
        pieces = AttributePieces()
        for a in sets * 2:  # the second round from the cached pieces
            self.assertEqual(routes_pb2.PathAttributes.FromString(pieces.encode(a)), attributes_to_pb(a), a)

    def test_watch_raw_equals_watch_response(self):
        """watch_raw's bytes parse to the message watch_response builds from the same batch's records."""
        from bgpd.api._gen.bgpd.v1 import routes_pb2
        from bgpd.api.control import PathFacts, WatchBatch
        from bgpd.api.server import RouteEncoder

        a = PathAttributes(as_path=((2, (65001,)),), next_hop="192.0.2.9", med=0,
                           communities=(65000 << 16 | 1,))
        # long enough that the Route's and the RouteEvent's lengths take two octets
        b = PathAttributes(next_hop="2001:db8::1", local_pref=7,
                           communities=tuple(65000 << 16 | i for i in range(40)))
        pa = (object(), PathFacts(a, "192.0.2.2", "192.0.2.2", 0, False, True))
        pb = (object(), PathFacts(b, "192.0.2.3", "192.0.2.3", 9, True, True))
        batch = WatchBatch([((1, 1), pfx("198.51.100.0/24"), pa), EndOfDump(1), EndOfDump(0),
                            ((1, 1), pfx("203.0.113.0/24"), None), ((2, 1), pfx("2001:db8::/32"), pb),
                            ((1, 1), pfx("198.51.100.0/24"), pa)], 42)
        encoder = RouteEncoder()
        messages = encoder.watch_raw(batch)
        self.assertEqual(len(messages), 1)
        got = routes_pb2.WatchRoutesResponse.FromString(messages[0])
        self.assertEqual(got, encoder.watch_response(batch.records(), 42))
        self.assertEqual(len(got.events), 6)
        # cut into messages of about message_bytes, each with the lag behind it
        small = RouteEncoder(message_bytes=300)
        messages = [routes_pb2.WatchRoutesResponse.FromString(m) for m in small.watch_raw(batch)]
        self.assertGreater(len(messages), 2)
        self.assertEqual([e for m in messages for e in m.events], list(got.events))
        lags = [m.lag for m in messages]
        self.assertEqual(lags[-1], 42)
        self.assertEqual(lags, sorted(lags, reverse=True))
        self.assertEqual(lags[0], 42 + sum(len(m.events) for m in messages[1:]))


class _LeaseLab(SynchronousTestCase):
    def setUp(self):
        self.reactor = MemoryReactorClock()
        self.svc = BgpdService(parse_config(CONFIG), None, self.reactor)
        self.svc.startService()
        self.control = Control(self.svc)

    def tearDown(self):
        self.control.close()
        self.svc.stopService()
        self.reactor.advance(3)

    def settle(self):
        for _ in range(30):
            self.reactor.advance(0.1)

    def prefixes(self):
        return sorted(r.prefix for r in drain(self.control.list_routes(LOC_RIB)))


class LeaseTests(_LeaseLab):
    def paths(self, *prefixes):
        return parse_paths([{"prefix": p, "next_hop": "192.0.2.1"} for p in prefixes])

    def test_ttl_expiry_withdraws(self):
        """Paths tied to a lease go when its TTL runs out; a renewal keeps them."""
        lease = self.control.create_lease(10)
        self.control.add_paths(self.paths("203.0.113.0/25", "203.0.113.128/25"), lease.id)
        self.settle()
        self.assertEqual(len(self.prefixes()), 2)
        self.reactor.advance(4)  # 7 s in: renewed, it runs until 17 s
        self.assertEqual(self.control.renew_lease(lease.id).paths, 2)
        self.reactor.advance(4)
        self.settle()  # 14 s in
        self.assertEqual(len(self.prefixes()), 2)
        self.reactor.advance(10)
        self.settle()
        self.assertEqual(self.prefixes(), [])
        with self.assertRaises(NotFound):
            self.control.renew_lease(lease.id)

    def test_detach_and_delete(self):
        """A path originated again without the lease stays when the lease is deleted."""
        lease = self.control.create_lease(60)
        self.control.add_paths(self.paths("203.0.113.0/25", "203.0.113.128/25"), lease.id)
        self.control.add_paths(self.paths("203.0.113.0/25"))
        self.assertEqual(self.control.running_config()[2], ("203.0.113.0/25",))
        self.assertEqual(self.control.end_lease(lease.id).paths, 1)
        self.settle()
        self.assertEqual(self.prefixes(), ["203.0.113.0/25"])
        with self.assertRaises(NotFound) as cm:
            self.control.add_paths(self.paths("203.0.113.0/26"), lease.id)
        self.assertEqual(cm.exception.field, "lease_id")
        with self.assertRaises(InvalidArgument):
            self.control.create_lease(10 ** 6)

    def test_delete_paths_detaches(self):
        """DeletePaths on a leased path withdraws it and leaves the lease empty."""
        lease = self.control.create_lease(60)
        self.control.add_paths(self.paths("203.0.113.0/25"), lease.id)
        self.control.delete_paths(["203.0.113.0/25"])
        self.assertEqual(self.control.renew_lease(lease.id).paths, 0)


class LeaseOverConfiguredTests(_LeaseLab):
    """A leased path over a prefix the config file originates too."""

    CONFIGURED = CONFIG + """
[[originate]]
prefix = "203.0.113.0/25"
next_hop = "192.0.2.1"
med = 7
"""

    def setUp(self):
        self.reactor = MemoryReactorClock()
        self.svc = BgpdService(parse_config(self.CONFIGURED), None, self.reactor)
        self.svc.startService()
        self.control = Control(self.svc)

    def med(self):
        got = drain(self.control.list_routes(LOC_RIB, prefix="203.0.113.0/25"))
        return [r.attributes.med for r in got]

    def leased(self):
        lease = self.control.create_lease(60)
        paths = parse_paths([{"prefix": "203.0.113.0/25", "next_hop": "192.0.2.1", "med": 1}])
        self.control.add_paths(paths, lease.id)
        self.settle()
        self.assertEqual(self.med(), [1])
        return lease

    def test_lease_end_brings_back_the_configured_path(self):
        """When the lease ends, the file's [[originate]] path for the prefix is back."""
        lease = self.leased()
        self.control.end_lease(lease.id)
        self.settle()
        self.assertEqual(self.med(), [7])

    def test_lease_expiry_brings_back_the_configured_path(self):
        """When the lease runs out, the file's path is back too."""
        self.leased()
        self.reactor.advance(61)
        self.settle()
        self.assertEqual(self.med(), [7])
