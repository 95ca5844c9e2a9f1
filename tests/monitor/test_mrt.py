"""MRT TABLE_DUMP_V2 (bgpd.monitor.mrt): golden bytes from RFC 6396 / RFC 8050, round trips, chunks.

The golden bytes are written by hand from the layouts of RFC 6396 sections
2, 4.3.1, 4.3.2 and 4.3.4 and RFC 8050 section 4; the round trips go
through the test's own reader (tests/monitor/mrtdecode.py); the chunking
tests check that no reactor turn encodes more than one chunk.
"""

from __future__ import annotations

import bz2
import gzip
import os

from twisted.internet import defer
from twisted.internet.task import Clock
from twisted.internet.testing import MemoryReactorClock
from twisted.trial.unittest import SynchronousTestCase

from bgpd.config import parse_config
from bgpd.monitor.mrt import (
    DumpResult,
    MrtDump,
    MrtPeer,
    MrtScheduler,
    dump_file_name,
    encode_attributes,
    encode_peer_index,
    encode_rib,
    mrt_record,
)
from bgpd.monitor.service import DumpError
from bgpd.rib import Rib, RibOptions
from bgpd.rib.testing import IPV4, IPV6, FakeSink, announce, make_peer, pfx
from bgpd.service import BgpdService
from bgpd.wire.attributes import PathAttributes
from bgpd.wire.negotiated import Negotiated
from bgpd.wire.update import pack_reach
from tests.monitor import mrtdecode
from tests.monitor.support import temp_path
from tests.test_pipeline import Peer

TS = 1_700_000_000  # 0x6553F100


def h(text: str) -> bytes:
    return bytes.fromhex("".join(text.split()))


def sync_thread(fn, *args):
    """deferToThread's stand-in: the write happens now, on this thread."""
    return defer.maybeDeferred(fn, *args)


class GoldenBytesTests(SynchronousTestCase):
    """Each record kind against bytes laid out from the RFC."""

    def test_mrt_header(self):
        """Common header: timestamp, type 13, subtype, length (RFC 6396 section 2)."""
        self.assertEqual(mrt_record(TS, 1, b"\xaa\xbb"), h("6553f100 000d 0001 00000002 aabb"))

    def test_peer_index_table(self):
        """Collector id, view name, peer entries with the IPv6 and AS4 type bits (4.3.1)."""
        body = encode_peer_index("192.0.2.1", "loc-rib", [
            MrtPeer("192.0.2.1", "0.0.0.0", 65000),
            MrtPeer("192.0.2.2", "192.0.2.2", 4_200_000_000),
            MrtPeer("192.0.2.3", "2001:db8::3", 65003),
        ])
        self.assertEqual(body, h(
            "c0000201 0007 6c6f632d726962 0003"
            "00 c0000201 00000000 fde8"
            "02 c0000202 c0000202 fa56ea00"
            "01 c0000203 20010db8000000000000000000000003 fdeb"))

    def test_rib_ipv4_unicast(self):
        """Sequence, prefix, entry count, entries: index, originated time, attributes (4.3.2)."""
        a = PathAttributes(origin=0, as_path=((2, (65002, 65010)),), next_hop="192.0.2.2", med=5)
        raw = encode_attributes(a, IPV4)
        self.assertEqual(raw, h(
            "40 01 01 00"                           # ORIGIN IGP
            "40 02 0a 02 02 0000fdea 0000fdf2"      # AS_PATH, 4-octet ASNs (4.3.4)
            "40 03 04 c0000202"                     # NEXT_HOP
            "80 04 04 00000005"))                   # MED
        body = encode_rib(7, pfx("198.51.100.0/24"), [(1, TS, 0, raw)])
        self.assertEqual(body, h("00000007 18 c63364 0001 0001 6553f100 001f") + raw)

    def test_rib_ipv6_unicast(self):
        """IPv6: MP_REACH_NLRI holds only the next hop length and next hop (4.3.4)."""
        a = PathAttributes(origin=2, as_path=((2, (65003,)),), next_hop="2001:db8::3",
                           next_hop_ll="fe80::3")
        raw = encode_attributes(a, IPV6)
        self.assertEqual(raw, h(
            "40 01 01 02"
            "40 02 06 02 01 0000fdeb"
            "90 0e 0021 20 20010db8000000000000000000000003 fe800000000000000000000000000003"))
        body = encode_rib(0, pfx("2001:db8:1::/48"), [(2, TS, 0, raw)])
        self.assertEqual(body, h("00000000 30 20010db80001 0001 0002 6553f100 0032") + raw)

    def test_rib_addpath(self):
        """RFC 8050 section 4: each entry carries its path identifier after the time."""
        raw = h("40 01 01 00")
        body = encode_rib(1, pfx("203.0.113.0/24"), [(1, TS, 9, raw), (1, TS, 10, raw)], addpath=True)
        self.assertEqual(body, h("00000001 18 cb0071 0002"
                                 "0001 6553f100 00000009 0004 40010100"
                                 "0001 6553f100 0000000a 0004 40010100"))

    def test_ipv4_route_with_ipv6_next_hop(self):
        """An IPv4 route with an IPv6 next hop (RFC 8950) has it in the abbreviated MP_REACH."""
        a = PathAttributes(as_path=(), next_hop="2001:db8::2")
        raw = encode_attributes(a, IPV4)
        self.assertEqual(mrtdecode.next_hop(mrtdecode.attributes(raw)), "2001:db8::2")
        self.assertNotIn(3, mrtdecode.attributes(raw))


class _RibCase(SynchronousTestCase):
    def setUp(self):
        self.clock = Clock()
        self.rib = Rib("192.0.2.1", 65000, options=RibOptions(mrai_ebgp=0.0), call_later=self.clock.callLater)

    def up(self, peer, families=(IPV4,), neg=None):
        neg = neg or Negotiated(ibgp=False, peer_as=peer.remote_as)
        self.rib.add_peer(peer, families, neg, FakeSink())

    def dump(self, table="loc-rib", peers=(), chunk=1000, compression="none"):
        path = temp_path(self)
        d = MrtDump(self.rib, table, path, peers, "192.0.2.1", 65000, self.clock.callLater,
                    sync_thread, compression, wall=lambda: TS, chunk=chunk)
        results = []
        d.start().addCallback(results.append)
        for _ in range(100_000):
            if results:
                break
            self.clock.advance(0)
        self.assertTrue(results, "the dump never finished")
        return d, results[0], path


class RoundTripTests(_RibCase):
    """A RIB dumped and read back by the test's own reader."""

    def test_loc_rib(self):
        """The Loc-RIB's best path of every prefix, with the right peer, AS path and next hop."""
        a = make_peer("192.0.2.2", 65002)
        b = make_peer("2001:db8::3", 4_200_000_000, router_id="192.0.2.3")
        self.up(a)
        self.up(b, (IPV4, IPV6))
        self.rib.receive(a, announce(PathAttributes(as_path=((2, (65002,)),),
                                                    next_hop="192.0.2.2"), ["198.51.100.0/24"]))
        self.rib.receive(b, announce(PathAttributes(as_path=((2, (4_200_000_000, 65020)),),
                                                    next_hop="192.0.2.9"),
                                     ["198.51.100.0/24", "203.0.113.0/24"]))
        self.rib.receive(b, announce(PathAttributes(as_path=((2, (4_200_000_000,)),),
                                                    next_hop="2001:db8::3"), ["2001:db8:1::/48"], IPV6))
        self.rib.originate(IPV4, pfx("192.0.2.0/24"), PathAttributes(next_hop="192.0.2.1"))
        self.rib.drain()
        _, result, path = self.dump()
        index, ribs = mrtdecode.read(open(path, "rb").read())
        self.assertEqual(index["view"], "loc-rib")
        self.assertEqual(index["collector"], "192.0.2.1")
        got = {r["prefix"]: (index["peers"][r["entries"][0]["peer"]], r["entries"][0]["as_path"],
                             r["entries"][0]["next_hop"]) for r in ribs}
        self.assertEqual(got, {
            "198.51.100.0/24": (("192.0.2.2", "192.0.2.2", 65002), [65002], "192.0.2.2"),
            "203.0.113.0/24": (("192.0.2.3", "2001:db8::3", 4_200_000_000), [4_200_000_000, 65020],
                               "192.0.2.9"),
            "2001:db8:1::/48": (("192.0.2.3", "2001:db8::3", 4_200_000_000), [4_200_000_000],
                                "2001:db8::3"),
            "192.0.2.0/24": (("192.0.2.1", "0.0.0.0", 65000), [], "192.0.2.1"),
        })
        self.assertTrue(all(len(r["entries"]) == 1 for r in ribs))
        self.assertEqual([r["seq"] for r in ribs], list(range(4)))
        self.assertEqual((result.prefixes, result.records), (4, 5))
        self.assertEqual(result.bytes, os.path.getsize(path))
        self.assertFalse(os.path.exists(path + ".tmp"))

    def test_adj_rib_in_of_every_peer(self):
        """Adj-RIB-In: one record per prefix holding each peer's path, peers indexed from 1."""
        a, b = make_peer("192.0.2.2", 65002), make_peer("192.0.2.3", 65003)
        self.up(a)
        self.up(b)
        self.rib.receive(a, announce(PathAttributes(as_path=((2, (65002,)),), next_hop="192.0.2.2"),
                                     ["198.51.100.0/24", "203.0.113.0/24"]))
        self.rib.receive(b, announce(PathAttributes(as_path=((2, (65003, 65010)),),
                                                    next_hop="192.0.2.3"), ["198.51.100.0/24"]))
        self.rib.drain()
        _, result, path = self.dump("adj-rib-in", [a, b])
        index, ribs = mrtdecode.read(open(path, "rb").read())
        self.assertEqual([p[1] for p in index["peers"]], ["0.0.0.0", "192.0.2.2", "192.0.2.3"])
        by = {r["prefix"]: sorted((e["peer"], tuple(e["as_path"])) for e in r["entries"]) for r in ribs}
        self.assertEqual(by, {"198.51.100.0/24": [(1, (65002,)), (2, (65003, 65010))],
                              "203.0.113.0/24": [(1, (65002,))]})

    def test_adj_rib_in_addpath(self):
        """Paths received with ADD-PATH ids are RIB_IPV4_UNICAST_ADDPATH entries with their ids."""
        a = make_peer("192.0.2.2", 65002)
        self.up(a, neg=Negotiated(ibgp=False, peer_as=65002, addpath_rx=frozenset({IPV4})))
        key = pfx("198.51.100.0/24")
        for pid, asn in ((1, 65010), (2, 65020)):
            self.rib.receive(a, announce(PathAttributes(as_path=((2, (65002, asn)),),
                                                        next_hop="192.0.2.2"), [(pid, key)]))
        self.rib.drain()
        _, _, path = self.dump("adj-rib-in", [a])
        _, ribs = mrtdecode.read(open(path, "rb").read())
        self.assertEqual(len(ribs), 1)
        self.assertEqual(ribs[0]["subtype"], mrtdecode.RIB_IPV4_AP)
        self.assertEqual(sorted((e["path_id"], e["as_path"][-1]) for e in ribs[0]["entries"]),
                         [(1, 65010), (2, 65020)])

    def test_compression(self):
        """gzip and bz2 files decompress to the same records as the plain file."""
        a = make_peer("192.0.2.2", 65002)
        self.up(a)
        self.rib.receive(a, announce(PathAttributes(as_path=((2, (65002,)),), next_hop="192.0.2.2"),
                                     ["198.51.100.0/24"]))
        self.rib.drain()
        plain = open(self.dump()[2], "rb").read()
        self.assertEqual(gzip.open(self.dump(compression="gzip")[2]).read(), plain)
        self.assertEqual(bz2.open(self.dump(compression="bz2")[2]).read(), plain)

    def test_dump_leaves_no_encoding_behind(self):
        """The attribute sets keep no cached encoding after a dump; each is encoded once per dump."""
        a = make_peer("192.0.2.2", 65002)
        self.up(a)
        shared = PathAttributes(as_path=((2, (65002,)),), next_hop="192.0.2.2", med=1)
        self.rib.receive(a, announce(shared, [bytes((24, 10, 0, i)) for i in range(50)]))
        self.rib.drain()
        calls = []
        from bgpd.monitor import mrt

        real = mrt.encode_attributes
        self.patch(mrt, "encode_attributes", lambda at, fam: calls.append(at) or real(at, fam))
        dump, result, _ = self.dump()
        self.assertEqual(result.prefixes, 50)
        self.assertEqual(len(calls), 1)
        stored = self.rib.best(IPV4, bytes((24, 10, 0, 0))).attrs
        self.assertIsNone(stored._packed)  # no copy kept on the shared set
        self.assertEqual(dump._encoded, {})

    def test_same_attributes_in_both_families(self):
        """One attribute set on an IPv4 and an IPv6 prefix: NEXT_HOP for one, MP_REACH for the other."""
        a = make_peer("192.0.2.2", 65002)
        self.up(a, (IPV4, IPV6))
        shared = PathAttributes(as_path=((2, (65002,)),), next_hop="192.0.2.2")
        self.rib.receive(a, announce(shared, ["198.51.100.0/24"]))
        self.rib.receive(a, announce(shared, ["2001:db8:1::/48"], IPV6))
        self.rib.drain()
        _, _, path = self.dump()
        _, ribs = mrtdecode.read(open(path, "rb").read())
        attrs = {r["prefix"]: r["entries"][0]["attrs"] for r in ribs}
        self.assertIn(3, attrs["198.51.100.0/24"])
        self.assertNotIn(14, attrs["198.51.100.0/24"])
        self.assertIn(14, attrs["2001:db8:1::/48"])
        self.assertNotIn(3, attrs["2001:db8:1::/48"])

    def test_empty_rib(self):
        """An empty RIB is a file with the peer index alone."""
        _, result, path = self.dump()
        index, ribs = mrtdecode.read(open(path, "rb").read())
        self.assertEqual((ribs, result.prefixes), ([], 0))


class ChunkingTests(_RibCase):
    """The dump shares the reactor: one chunk per turn, other calls run in between."""

    def test_turns_are_bounded(self):
        """25,000 prefixes in chunks of 1,000: at least 25 turns, none above 1,000 prefixes."""
        a = make_peer("192.0.2.2", 65002)
        self.up(a)
        keys = [bytes((24, 10 + (i // 65536), (i >> 8) & 0xFF, i & 0xFF)) for i in range(25_000)]
        self.rib.receive(a, announce(PathAttributes(as_path=((2, (65002,)),), next_hop="192.0.2.2"),
                                     keys))
        self.rib.drain()
        ran_between = []

        def other():
            ran_between.append(self.clock.seconds())
            if len(ran_between) < 10:
                self.clock.callLater(0, other)

        self.clock.callLater(0, other)
        dump, result, path = self.dump(chunk=1000)
        self.assertEqual(result.prefixes, 25_000)
        self.assertLessEqual(dump.largest_turn, 1000)
        self.assertGreaterEqual(dump.turns, 25)
        self.assertEqual(len(ran_between), 10)
        self.assertEqual(len(mrtdecode.read(open(path, "rb").read())[1]), 25_000)

    def test_withdrawn_during_dump(self):
        """A prefix withdrawn after the dump began is left out, not an error."""
        a = make_peer("192.0.2.2", 65002)
        self.up(a)
        keys = [bytes((24, 10, i >> 8, i & 0xFF)) for i in range(3000)]
        self.rib.receive(a, announce(PathAttributes(as_path=((2, (65002,)),), next_hop="192.0.2.2"),
                                     keys))
        self.rib.drain()
        turns: list = []  # one reactor turn per call, run by hand

        d = MrtDump(self.rib, "loc-rib", temp_path(self), [], "192.0.2.1", 65000,
                    lambda delay, fn, *args: turns.append((fn, args)), sync_thread,
                    wall=lambda: TS, chunk=1000)
        done = []
        d.start().addCallback(done.append)
        fn, args = turns.pop(0)
        fn(*args)  # the first chunk
        self.rib.remove_peer(a)
        self.rib.drain()
        for _ in range(100):
            if done or not turns:
                break
            fn, args = turns.pop(0)
            fn(*args)
        self.assertEqual(done[0].prefixes, 1000)

    def test_slow_writer_holds_the_producer(self):
        """With the writes queued at the bound, no chunk is encoded until one completes."""
        a = make_peer("192.0.2.2", 65002)
        self.up(a)
        keys = [bytes((24, 10 + (i // 65536), (i >> 8) & 0xFF, i & 0xFF)) for i in range(20_000)]
        self.rib.receive(a, announce(PathAttributes(as_path=((2, (65002,)),), next_hop="192.0.2.2"),
                                     keys))
        self.rib.drain()
        pending: list[defer.Deferred] = []

        def slow(fn, *args):
            d = defer.Deferred()
            d.addCallback(lambda _: fn(*args))
            pending.append(d)
            return d

        from bgpd.monitor import mrt

        self.patch(mrt, "WRITE_SIZE", 1)  # a write after every chunk
        dump = MrtDump(self.rib, "loc-rib", temp_path(self), [], "192.0.2.1", 65000,
                       self.clock.callLater, slow, wall=lambda: TS, chunk=1000)
        dump.start()
        for _ in range(50):
            self.clock.advance(0.01)
        # The chain runs one write at a time: the first is in the thread, the rest wait.
        self.assertEqual(len(pending), 1)
        self.assertEqual(dump._pending, mrt.MAX_PENDING_WRITES)
        turns = dump.turns
        for _ in range(20):
            self.clock.advance(0.01)
        self.assertEqual(dump.turns, turns)
        pending[0].callback(None)
        self.clock.advance(0.01)
        self.assertGreater(dump.turns, turns)

    def test_write_error_fails_the_dump(self):
        """A write that fails ends the dump with its error and leaves no file behind."""
        path = os.path.join(temp_path(self), "missing-dir", "x.mrt")
        d = MrtDump(self.rib, "loc-rib", path, [], "192.0.2.1", 65000, self.clock.callLater,
                    sync_thread, wall=lambda: TS)
        failures = []
        d.start().addErrback(failures.append)
        for _ in range(10):
            self.clock.advance(0)
        self.assertEqual(len(failures), 1)
        failures[0].trap(OSError)
        self.assertFalse(os.path.exists(path))


class SchedulerTests(SynchronousTestCase):
    """[mrt]: one dump per table per interval, on interval boundaries, names from the pattern."""

    def test_schedule_and_names(self):
        """Dumps start at multiples of the interval; a running dump makes the next one skipped."""
        clock = Clock()
        clock.advance(TS + 10)
        cfg = parse_config('[bgp]\nlocal_as = 65000\nrouter_id = "192.0.2.1"\n[mrt]\n'
                           f'directory = "{temp_path(self)}"\ninterval = 600\ncompression = "gzip"\n'
                           'tables = ["loc-rib", "adj-rib-in"]\n').mrt
        started = []
        hold: list[defer.Deferred] = []

        def dump(table, path, compression):
            started.append((clock.seconds(), table, os.path.basename(path), compression))
            d = defer.Deferred()
            hold.append(d)
            return d

        s = MrtScheduler(cfg, dump, clock.callLater, clock.seconds)
        s.start()
        first = (TS // 600 + 1) * 600
        clock.advance(first - clock.seconds())
        self.assertEqual([x[0] for x in started], [first, first])
        self.assertEqual(started[0][2], dump_file_name(cfg.file_pattern, "loc-rib", first, "gzip"))
        self.assertTrue(started[1][2].startswith("adj-rib-in.") and started[1][2].endswith(".mrt.gz"))
        clock.advance(600)  # both still running: skipped
        self.assertEqual((len(started), s.skipped), (2, 1))
        for d in hold:
            d.callback(DumpResult("p", "loc-rib", 1, 0, 1, 40, 0.0))
        clock.advance(600)
        self.assertEqual(len(started), 4)
        s.stop()
        self.assertEqual(clock.getDelayedCalls(), [])

    def test_file_name(self):
        """{table} and strftime codes are expanded in UTC; the suffix follows the compression."""
        self.assertEqual(dump_file_name("{table}.%Y%m%d.%H%M.mrt", "loc-rib", TS, "bz2"),
                         "loc-rib.20231114.2213.mrt.bz2")


SERVICE_CONFIG = """
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

[[neighbors]]
address = "192.0.2.3"
remote_as = 65003
enabled = false
"""


class ServiceDumpTests(SynchronousTestCase):
    """The monitor service's dump(): argument checks and a dump of a running daemon."""

    def setUp(self):
        self.reactor = MemoryReactorClock()
        self.svc = BgpdService(parse_config(SERVICE_CONFIG), None, self.reactor)
        self.svc.monitor.defer_to_thread = sync_thread
        self.svc.startService()
        self.a = Peer(self, "192.0.2.2", 65002)
        self.a.establish()

    def tearDown(self):
        self.svc.stopService()
        self.reactor.advance(3)

    def test_dump_of_a_running_daemon(self):
        """The Loc-RIB and the peer's Adj-RIB-In of the running service, read back."""
        a = PathAttributes(as_path=((2, (65002,)),), next_hop="192.0.2.2")
        self.a.send(*pack_reach(1, 1, a, [pfx("198.51.100.0/24")]))
        for _ in range(10):
            self.reactor.advance(0.1)
        for table, peer in (("loc-rib", ""), ("adj-rib-in", "192.0.2.2"), ("adj-rib-in", "")):
            path = temp_path(self)
            done = []
            self.svc.monitor.dump(table, path, peer=peer).addCallback(done.append)
            for _ in range(10):
                self.reactor.advance(0)
            self.assertEqual(done[0].prefixes, 1, table)
            index, ribs = mrtdecode.read(open(path, "rb").read())
            self.assertEqual(index["view"], table)
            self.assertEqual(ribs[0]["prefix"], "198.51.100.0/24")

    def test_bad_arguments(self):
        """Unknown table, peer on the Loc-RIB, unknown or down peer: DumpError naming the field."""
        m = self.svc.monitor
        for kwargs, field in (({"table": "rib-out", "path": "x"}, "table"),
                              ({"table": "loc-rib", "path": "x", "peer": "192.0.2.2"}, "peer"),
                              ({"table": "adj-rib-in", "path": "x", "peer": "192.0.2.9"}, "peer"),
                              ({"table": "adj-rib-in", "path": "x", "peer": "192.0.2.3"}, "peer"),
                              ({"table": "adj-rib-in", "path": "x", "peer": "bogus"}, "peer"),
                              ({"table": "loc-rib", "path": ""}, "file"),
                              ({"table": "loc-rib", "path": "x", "compression": "xz"}, "compression")):
            with self.assertRaises(DumpError) as cm:
                m.dump(**kwargs)
            self.assertEqual(cm.exception.field, field, kwargs)
