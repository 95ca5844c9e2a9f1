"""The RTR client's session (RFC 8210 sections 5-8, 12; RFC 6810; 8210bis ASPA).

Each test runs an :class:`RTRFactory` on a MemoryReactorClock, with the
bytes on StringTransports: against the test cache of
:mod:`bgpd.rpki.testing`, or fed PDU by PDU to reach one exact case.
"""

from __future__ import annotations

import gc
import tracemalloc

from hypothesis import given, settings
from hypothesis import strategies as st
from twisted.trial.unittest import SynchronousTestCase

from bgpd.rpki import pdu as P
from bgpd.rpki.pdu import ErrorCode
from bgpd.rpki.records import Aspa, Validity
from bgpd.rpki.rtr import CONNECTED, DOWN, Timers, bound_timers
from bgpd.rpki.table import VrpTable
from bgpd.rpki.testing import CacheServer, synthetic_vrps

from .helpers import Rig, vrp

A = vrp("192.0.2.0/24")
B = vrp("198.51.100.0/22", 24, 64501)
C = vrp("2001:db8::/32", 48, 64502)


class ExchangeTests(SynchronousTestCase):
    """Reset Query, Serial Query, Cache Response ... End of Data as one transaction (section 8)."""

    def test_reset_query_first(self) -> None:
        """A new connection sends Reset Query at the highest version configured."""
        rig = Rig(max_version=2)
        rig.factory.start()
        self.assertEqual(rig.attempts(), 1)
        link = rig.connect(pump=False)
        self.assertEqual(link.sent(), [P.ResetQuery(2)])
        self.assertEqual(rig.factory.state, CONNECTED)

    def test_full_load_is_one_transaction(self) -> None:
        """The VRPs of a Cache Response reach the sink between begin(reset) and end(serial)."""
        server = CacheServer([A, B, C], serial=7)
        rig = Rig(server=server)
        rig.factory.start()
        rig.connect()
        names = rig.sink.names()
        self.assertEqual(names[0], "begin")
        self.assertEqual(rig.sink.calls[0], ("begin", "c1", True))
        self.assertEqual(names[-1], "end")
        self.assertEqual(rig.sink.calls[-1], ("end", "c1", 7))
        self.assertEqual(rig.sink.data["c1"], {A, B, C})
        st = rig.factory.status()
        self.assertEqual((st.session_id, st.serial, st.ipv4_vrps, st.ipv6_vrps), (4242, 7, 2, 1))

    def test_serial_query_after_refresh(self) -> None:
        """After Refresh seconds the client asks for changes since its serial; they are applied."""
        server = CacheServer([A, B], timers=(120, 60, 1200))
        rig = Rig(server=server)
        rig.factory.start()
        link = rig.connect()
        server.set_data([A, C], notify=False)
        rig.reactor.advance(119)
        link.pump()
        self.assertEqual(len(server.queries), 1)
        rig.reactor.advance(1)
        link.pump()
        self.assertEqual(server.queries[-1], P.SerialQuery(1, 4242, 1))
        self.assertEqual(rig.sink.data["c1"], {A, C})
        self.assertEqual(rig.sink.calls[-3:], [("begin", "c1", False), ("vrps", "c1", 1, 1),
                                               ("end", "c1", 2)])
        self.assertEqual(rig.factory.timers, Timers(120, 60, 1200))

    def test_serial_answer_spanning_serials(self) -> None:
        """A VRP added at one serial and removed at the next, in one answer: gone; announced later: fine."""
        server = CacheServer([A], timers=(120, 60, 1200))
        table = VrpTable()
        rig = Rig(server=server, sink=table)
        rig.factory.start()
        link = rig.connect()
        server.set_data([A, B], notify=False)
        server.set_data([A], notify=False)
        rig.reactor.advance(120)
        link.pump()
        self.assertEqual(server.queries[-1], P.SerialQuery(1, 4242, 1))
        self.assertFalse(table.has_vrp("c1", B))
        self.assertEqual(table.validate(1, B.prefix, B.asn), Validity.NOT_FOUND)
        server.set_data([A, B])
        link.pump()
        self.assertEqual(rig.factory.status().last_error, "")
        self.assertEqual((table.has_vrp("c1", B), rig.factory.status().serial), (True, 4))

    def test_serial_notify_triggers_query(self) -> None:
        """Serial Notify makes the client send Serial Query at once."""
        server = CacheServer([A])
        rig = Rig(server=server)
        rig.factory.start()
        link = rig.connect()
        server.set_data([A, B])
        link.pump()
        self.assertEqual(server.queries[-1], P.SerialQuery(1, 4242, 1))
        self.assertEqual(rig.sink.data["c1"], {A, B})

    def test_notify_while_querying_is_ignored(self) -> None:
        """A Serial Notify during a running query does not send a second query."""
        rig = Rig()
        rig.factory.start()
        link = rig.connect(pump=False)
        link.sent()
        link.feed(P.SerialNotify(1, 9, 3))
        self.assertEqual(link.sent(), [])

    def test_cache_reset_sends_reset_query(self) -> None:
        """Cache Reset in answer to a Serial Query: the client sends Reset Query (section 8.3)."""
        rig = Rig()
        rig.factory.start()
        link = rig.connect(pump=False)
        link.sent()
        link.feed(P.CacheResponse(1, 5), P.PrefixPdu(1, True, A), P.EndOfData(1, 5, 1, 60, 30, 600))
        rig.reactor.advance(60)
        self.assertEqual(link.sent(), [P.SerialQuery(1, 5, 1)])
        link.feed(P.CacheReset(1))
        self.assertEqual(link.sent(), [P.ResetQuery(1)])
        link.feed(P.CacheResponse(1, 5), P.PrefixPdu(1, True, B), P.EndOfData(1, 5, 9, 60, 30, 600))
        self.assertEqual(rig.sink.data["c1"], {B})

    def test_aspa_in_version_2(self) -> None:
        """ASPA PDUs reach the sink's aspas(); a withdrawal removes the customer."""
        server = CacheServer([A], aspas=[Aspa(65000, (65001, 65002))])
        rig = Rig(server=server, max_version=2)
        rig.factory.start()
        link = rig.connect()
        self.assertEqual(rig.sink.aspa["c1"], {65000: (65001, 65002)})
        server.set_data([A], aspas=[Aspa(65010, (65011,))])
        link.pump()
        self.assertEqual(rig.sink.aspa["c1"], {65010: (65011,)})
        self.assertEqual(rig.factory.status().aspas, 1)

    def test_aspa_draft10_per_family(self) -> None:
        """Per-family ASPAs of the draft-10 layout: one record per customer, the union; gone with both."""
        rig = Rig(max_version=2)
        rig.factory.start()
        link = rig.connect(pump=False)
        link.sent()
        link.feed(P.CacheResponse(2, 5), P.AspaPdu(2, True, 65000, (65001,), afi=1),
                  P.AspaPdu(2, True, 65000, (65002,), afi=2), P.EndOfData(2, 5, 1, 60, 30, 600))
        self.assertEqual(rig.sink.aspa["c1"], {65000: (65001, 65002)})
        rig.reactor.advance(60)
        link.sent()
        link.feed(P.CacheResponse(2, 5), P.AspaPdu(2, False, 65000, (65001,), afi=1),
                  P.EndOfData(2, 5, 2, 60, 30, 600))
        self.assertEqual(rig.sink.aspa["c1"], {65000: (65002,)})
        rig.reactor.advance(60)
        link.sent()
        link.feed(P.CacheResponse(2, 5), P.AspaPdu(2, False, 65000, (65002,), afi=2),
                  P.EndOfData(2, 5, 3, 60, 30, 600))
        self.assertEqual(rig.sink.aspa["c1"], {})
        self.assertEqual(link.sent(), [])

    def test_router_key_ignored(self) -> None:
        """A Router Key PDU inside a response is accepted and not kept."""
        rig = Rig()
        rig.factory.start()
        link = rig.connect(pump=False)
        link.sent()
        link.feed(P.CacheResponse(1, 5), P.RouterKey(1, True, bytes(20), 64500, b"k"),
                  P.PrefixPdu(1, True, A), P.EndOfData(1, 5, 1, 60, 30, 600))
        self.assertEqual(rig.sink.data["c1"], {A})
        self.assertEqual(link.sent(), [])

    def test_split_reads(self) -> None:
        """PDUs cut at any byte boundary are framed by the length field."""
        server = CacheServer([A, B, C])
        data = server.response(1, None)
        rig = Rig()
        rig.factory.start()
        link = rig.connect(pump=False)
        for i in range(len(data)):
            link.client.dataReceived(data[i:i + 1])
        self.assertEqual(rig.sink.data["c1"], {A, B, C})

    def test_session_id_change_resets(self) -> None:
        """A Cache Response with another Session ID: Corrupt Data, the data flushed, a Reset Query at once."""
        rig = Rig()
        rig.factory.start()
        link = rig.connect(pump=False)
        link.sent()
        link.feed(P.CacheResponse(1, 5), P.PrefixPdu(1, True, A), P.EndOfData(1, 5, 1, 60, 30, 600))
        rig.reactor.advance(60)
        link.sent()
        link.feed(P.CacheResponse(1, 6))
        (report,) = link.sent()
        self.assertEqual(report.code, ErrorCode.CORRUPT_DATA)
        self.assertTrue(link.ct.disconnecting)
        link.lose()
        # Section 5.1: "the router MUST flush all data learned from that cache".
        self.assertNotIn("c1", rig.sink.data)
        self.assertEqual(rig.sink.calls[-1], ("drop", "c1"))
        st = rig.factory.status()
        self.assertEqual((st.session_id, st.serial, st.ipv4_vrps), (None, None, 0))
        rig.reactor.advance(0)
        self.assertEqual(rig.attempts(), 2)
        link2 = rig.connect(pump=False)
        self.assertEqual(link2.sent(), [P.ResetQuery(1)])


class RestartedCacheTests(SynchronousTestCase):
    """A cache that restarted: a new Session ID (section 5.1) flushes its data; a silent close does not."""

    def loaded(self) -> tuple[Rig, object]:
        rig = Rig()
        rig.factory.start()
        link = rig.connect(pump=False)
        link.feed(P.CacheResponse(1, 5), P.PrefixPdu(1, True, A), P.EndOfData(1, 5, 1, 60, 30, 600))
        link.lose()
        rig.reactor.advance(1)
        return rig, link

    def test_corrupt_data_to_serial_query_resets(self) -> None:
        """Corrupt Data in answer to a Serial Query: the next connection sends Reset Query at once."""
        rig, _ = self.loaded()
        link = rig.connect(pump=False)
        self.assertEqual(link.sent(), [P.SerialQuery(1, 5, 1)])
        link.feed(P.ErrorReport(1, ErrorCode.CORRUPT_DATA, b"", "session mismatch"))
        link.lose()
        rig.reactor.advance(0)
        link = rig.connect(pump=False)
        self.assertEqual(link.sent(), [P.ResetQuery(1)])
        # The cache found the mismatch; the router flushes all the cache's data (section 5.1).
        self.assertNotIn("c1", rig.sink.data)
        link.feed(P.CacheResponse(1, 6), P.PrefixPdu(1, True, B), P.EndOfData(1, 6, 1, 60, 30, 600))
        self.assertEqual(rig.sink.data["c1"], {B})

    def test_serial_notify_new_session_flushes(self) -> None:
        """A Serial Notify naming another Session ID: Corrupt Data and the data flushed."""
        rig, _ = self.loaded()
        link = rig.connect(pump=False)
        link.sent()
        link.feed(P.CacheResponse(1, 5), P.EndOfData(1, 5, 1, 60, 30, 600))
        link.feed(P.SerialNotify(1, 6, 2))
        (report,) = link.sent()
        self.assertEqual(report.code, ErrorCode.CORRUPT_DATA)
        self.assertNotIn("c1", rig.sink.data)
        self.assertTrue(rig.factory.reconnect_now)

    def test_end_of_data_new_session_undoes_and_flushes(self) -> None:
        """End of Data of another Session ID in a Serial Query's answer: the delta undone, all flushed."""
        rig, _ = self.loaded()
        link = rig.connect(pump=False)
        link.sent()
        link.feed(P.CacheResponse(1, 5), P.PrefixPdu(1, True, B), P.EndOfData(1, 6, 2, 60, 30, 600))
        (report,) = link.sent()
        self.assertEqual(report.code, ErrorCode.CORRUPT_DATA)
        self.assertEqual(rig.sink.names()[-2:], ["abort", "drop"])
        self.assertNotIn("c1", rig.sink.data)
        self.assertEqual(rig.factory.status().ipv4_vrps, 0)

    def test_flush_is_one_revalidation_batch(self) -> None:
        """With the VRP table as sink, the flush is one batch of changes and validation falls to NotFound."""
        table = VrpTable()
        batches: list = []
        table.subscribe(batches.append)
        rig = Rig(sink=table)
        rig.factory.start()
        link = rig.connect(pump=False)
        link.feed(P.CacheResponse(1, 5), P.PrefixPdu(1, True, A), P.PrefixPdu(1, True, B),
                  P.EndOfData(1, 5, 1, 60, 30, 600))
        self.assertEqual(len(batches), 1)
        self.assertEqual(table.validate(1, A.prefix, A.asn), Validity.VALID)
        link.feed(P.SerialNotify(1, 6, 2))
        self.assertEqual(batches[1:], [{1: {A.prefix, B.prefix}}])
        self.assertEqual(table.validate(1, A.prefix, A.asn), Validity.NOT_FOUND)
        link.lose()
        rig.reactor.advance(0)
        link = rig.connect(pump=False)
        self.assertEqual(link.sent(), [P.ResetQuery(1)])
        link.feed(P.CacheResponse(1, 6), P.PrefixPdu(1, True, A), P.EndOfData(1, 6, 1, 60, 30, 600))
        self.assertEqual(batches[2:], [{1: {A.prefix}}])
        self.assertEqual(table.validate(1, A.prefix, A.asn), Validity.VALID)

    def test_silent_close_twice_resets(self) -> None:
        """A Serial Query answered by a bare close, twice: the third connection sends Reset Query."""
        rig, _ = self.loaded()
        for _ in range(2):
            link = rig.connect(pump=False)
            self.assertEqual(link.sent(), [P.SerialQuery(1, 5, 1)])
            link.lose()
            rig.reactor.advance(30)
        link = rig.connect(pump=False)
        self.assertEqual(link.sent(), [P.ResetQuery(1)])
        # No Session ID was seen to differ: the data stays until the reset's End of Data.
        self.assertEqual(rig.sink.data["c1"], {A})


class _NullSink:
    """A sink that keeps nothing, so that only the client's own memory is counted."""

    def begin(self, cache: str, reset: bool) -> None:
        pass

    def vrps(self, cache: str, announced: object, withdrawn: object) -> None:
        pass

    def aspas(self, cache: str, announced: object, withdrawn: object) -> None:
        pass

    def end(self, cache: str, serial: int) -> None:
        pass

    def abort(self, cache: str) -> None:
        pass

    def drop(self, cache: str) -> None:
        pass

    def has_vrp(self, cache: str, vrp: object) -> bool:
        return False


class MemoryTests(SynchronousTestCase):
    """The client keeps no second copy of a cache's data beside the sink's table."""

    def test_client_keeps_no_copy_of_the_data(self) -> None:
        """After a Reset Query's 20,000 VRPs the client holds under 4 bytes per VRP (a key set held 70)."""
        data = CacheServer(synthetic_vrps(20_000)).response(1, None)
        gc.collect()
        tracemalloc.start()
        try:
            rig = Rig(sink=_NullSink())
            rig.factory.start()
            link = rig.connect(pump=False)
            for i in range(0, len(data), 65536):
                link.client.dataReceived(data[i:i + 65536])
            gc.collect()
            kept, _peak = tracemalloc.get_traced_memory()
        finally:
            tracemalloc.stop()
        st = rig.factory.status()
        self.assertEqual((st.serial, st.ipv4_vrps + st.ipv6_vrps), (1, 20_000))
        self.assertLess(kept, 20_000 * 4)


class ErrorTests(SynchronousTestCase):
    """Error Reports both ways (sections 5.11, 12): the right code, then the session closes."""

    def setUp(self) -> None:
        self.rig = Rig()
        self.rig.factory.start()
        self.link = self.rig.connect(pump=False)
        self.link.sent()

    def loaded(self) -> None:
        self.link.feed(P.CacheResponse(1, 5), P.PrefixPdu(1, True, A), P.EndOfData(1, 5, 1, 60, 30, 600))
        self.rig.reactor.advance(60)
        self.link.sent()

    def expect(self, code: ErrorCode, *pdus: P.Pdu | bytes) -> P.ErrorReport:
        self.link.feed(*pdus)
        sent = self.link.sent()
        self.assertEqual(len(sent), 1, sent)
        (report,) = sent
        self.assertIsInstance(report, P.ErrorReport)
        self.assertEqual(report.code, code, report.text)
        self.assertTrue(self.link.ct.disconnecting)
        self.link.lose()
        self.assertEqual(self.rig.factory.state, DOWN)
        return report

    def test_corrupt_pdu(self) -> None:
        """A prefix PDU with a bad max length: Corrupt Data with the PDU encapsulated; abort."""
        bad = bytes.fromhex("01 04 0000 00000014 01 18 10 00 c0000200 0000fbf4".replace(" ", ""))
        report = self.expect(ErrorCode.CORRUPT_DATA, P.CacheResponse(1, 5), bad)
        self.assertEqual(report.pdu, bad)
        self.assertEqual(self.rig.sink.names(), ["begin", "abort"])

    def test_unsupported_type(self) -> None:
        """An unknown PDU type: Unsupported PDU Type."""
        self.expect(ErrorCode.UNSUPPORTED_PDU_TYPE, bytes.fromhex("01c8000000000008"))

    def test_router_query_from_cache(self) -> None:
        """A Reset Query sent by the cache is not a PDU a router accepts."""
        self.expect(ErrorCode.UNSUPPORTED_PDU_TYPE, P.ResetQuery(1))

    def test_unexpected_version(self) -> None:
        """After version 1 is in use, a version 0 PDU: Unexpected Protocol Version."""
        self.expect(ErrorCode.UNEXPECTED_PROTOCOL_VERSION, P.CacheResponse(1, 5), P.PrefixPdu(0, True, A))

    def test_higher_version_unexpected(self) -> None:
        """A cache answering above the version asked: Unexpected Protocol Version."""
        self.expect(ErrorCode.UNEXPECTED_PROTOCOL_VERSION, P.CacheResponse(2, 5))

    def test_duplicate_announcement(self) -> None:
        """The same VRP announced twice: Duplicate Announcement; the transaction is aborted."""
        self.expect(ErrorCode.DUPLICATE_ANNOUNCEMENT, P.CacheResponse(1, 5), P.PrefixPdu(1, True, A),
                    P.PrefixPdu(1, True, A))
        self.assertEqual(self.rig.sink.names()[-1], "abort")

    def test_duplicate_across_serials(self) -> None:
        """Announcing in a serial update what the cache already sent: Duplicate Announcement."""
        self.loaded()
        self.expect(ErrorCode.DUPLICATE_ANNOUNCEMENT, P.CacheResponse(1, 5), P.PrefixPdu(1, True, A))

    def test_withdrawal_of_unknown(self) -> None:
        """Withdrawing a VRP never announced: Withdrawal of Unknown Record."""
        self.loaded()
        self.expect(ErrorCode.WITHDRAWAL_OF_UNKNOWN_RECORD, P.CacheResponse(1, 5), P.PrefixPdu(1, False, B))

    def test_serial_answer_checked_against_the_sink(self) -> None:
        """A Serial Query's answer is checked against the sink's data: re-announce after withdraw is fine."""
        self.loaded()
        self.link.feed(P.CacheResponse(1, 5), P.PrefixPdu(1, False, A), P.PrefixPdu(1, True, A),
                       P.PrefixPdu(1, True, B), P.EndOfData(1, 5, 2, 60, 30, 600))
        self.assertEqual(self.link.sent(), [])
        self.assertEqual(self.rig.sink.data["c1"], {A, B})
        self.assertEqual(self.rig.factory.status().ipv4_vrps, 2)
        self.rig.reactor.advance(60)
        self.link.sent()
        self.expect(ErrorCode.DUPLICATE_ANNOUNCEMENT, P.CacheResponse(1, 5), P.PrefixPdu(1, True, B))

    def test_abort_restores_the_set(self) -> None:
        """After an aborted update the set is as before it: a later withdrawal of A is accepted."""
        self.loaded()
        self.expect(ErrorCode.WITHDRAWAL_OF_UNKNOWN_RECORD, P.CacheResponse(1, 5),
                    P.PrefixPdu(1, False, A), P.PrefixPdu(1, True, B), P.PrefixPdu(1, False, C))
        self.assertEqual(self.rig.factory.status().ipv4_vrps, 1)
        self.rig.reactor.advance(2)
        link = self.rig.connect(pump=False)
        self.assertEqual(link.sent(), [P.SerialQuery(1, 5, 1)])
        link.feed(P.CacheResponse(1, 5), P.PrefixPdu(1, False, A), P.EndOfData(1, 5, 2, 60, 30, 600))
        self.assertEqual(link.sent(), [])
        self.assertEqual(self.rig.sink.data["c1"], set())

    def test_aspa_withdrawal_of_unknown(self) -> None:
        """Withdrawing an ASPA never announced: Withdrawal of Unknown Record (version 2)."""
        rig = Rig(max_version=2)
        rig.factory.start()
        link = rig.connect(pump=False)
        link.sent()
        link.feed(P.CacheResponse(2, 5), P.AspaPdu(2, False, 65000))
        (report,) = link.sent()
        self.assertEqual(report.code, ErrorCode.WITHDRAWAL_OF_UNKNOWN_RECORD)

    def test_aspa_provider_list_error(self) -> None:
        """An ASPA announcement without providers: ASPA Provider List Error (9)."""
        bad = bytes.fromhex("02 0b 0100 0000000c 0000fde8".replace(" ", ""))
        rig = Rig(max_version=2)
        rig.factory.start()
        link = rig.connect(pump=False)
        link.sent()
        link.feed(P.CacheResponse(2, 5), bad)
        (report,) = link.sent()
        self.assertEqual((report.code, report.pdu), (ErrorCode.ASPA_PROVIDER_LIST_ERROR, bad))

    def test_cache_reset_to_reset_query(self) -> None:
        """Cache Reset in answer to a Reset Query is Corrupt Data, not another Reset Query."""
        self.expect(ErrorCode.CORRUPT_DATA, P.CacheReset(1))

    def test_prefix_outside_response(self) -> None:
        """A Prefix PDU with no Cache Response before it: Corrupt Data."""
        self.expect(ErrorCode.CORRUPT_DATA, P.PrefixPdu(1, True, A))

    def test_end_of_data_wrong_session(self) -> None:
        """End of Data naming another Session ID than its Cache Response: Corrupt Data."""
        self.expect(ErrorCode.CORRUPT_DATA, P.CacheResponse(1, 5), P.EndOfData(1, 6, 1, 60, 30, 600))

    def test_absurd_length(self) -> None:
        """A header claiming 16 MB is Corrupt Data at once, not a wait for the bytes."""
        self.expect(ErrorCode.CORRUPT_DATA, bytes.fromhex("0104000001000000"))

    def test_error_report_received_is_logged_not_answered(self) -> None:
        """An Error Report from the cache closes the session without an Error Report back."""
        self.link.feed(P.ErrorReport(1, ErrorCode.INTERNAL_ERROR, b"", "disk on fire"))
        self.assertEqual(self.link.sent(), [])
        self.assertTrue(self.link.ct.disconnecting)
        self.assertIn("disk on fire", self.rig.factory.last_error)

    def test_error_report_of_unknown_version_not_answered(self) -> None:
        """An Error Report of a version bgpd does not know closes the session, unanswered (section 7)."""
        self.link.feed(bytes.fromhex("05 0a 0001 00000010 00000000 00000000".replace(" ", "")))
        self.assertEqual(self.link.sent(), [])
        self.assertTrue(self.link.ct.disconnecting)

    def test_no_data_available_retries(self) -> None:
        """No Data Available is not fatal: the query goes again after Retry, same connection."""
        self.link.feed(P.ErrorReport(1, ErrorCode.NO_DATA_AVAILABLE, b"", "warming up"))
        self.assertFalse(self.link.ct.disconnecting)
        self.rig.reactor.advance(599)
        self.assertEqual(self.link.sent(), [])
        self.rig.reactor.advance(1)
        self.assertEqual(self.link.sent(), [P.ResetQuery(1)])


class VersionTests(SynchronousTestCase):
    """Version negotiation (section 7): down to what the cache speaks."""

    def test_fallback_to_v0_by_error_report(self) -> None:
        """A version-0-only cache's Unsupported Protocol Version: reconnect at once with version 0."""
        server = CacheServer([A, C], versions=(0,))
        rig = Rig(server=server)
        rig.factory.start()
        rig.connect()
        self.assertEqual(rig.factory.version, 0)
        self.assertEqual(rig.factory.state, DOWN)
        rig.reactor.advance(0)
        self.assertEqual(rig.attempts(), 2)
        rig.connect()
        self.assertEqual(server.queries[-1], P.ResetQuery(0))
        self.assertEqual(rig.sink.data["c1"], {A, C})
        # Version 0 carries no timers: the defaults apply.
        self.assertEqual(rig.factory.timers, Timers(3600, 600, 7200))

    def test_fallback_from_v2_to_v1(self) -> None:
        """With ASPA on (version 2) a version 1 cache is used at version 1."""
        server = CacheServer([A], versions=(0, 1))
        rig = Rig(server=server, max_version=2)
        rig.factory.start()
        rig.connect()
        rig.reactor.advance(0)
        rig.connect()
        self.assertEqual(rig.factory.version, 1)
        self.assertEqual(rig.sink.data["c1"], {A})

    def test_serial_notify_ignored_at_startup(self) -> None:
        """Serial Notify before the first answer is ignored, whatever its version (section 7)."""
        rig = Rig(max_version=2)
        rig.factory.start()
        link = rig.connect(pump=False)
        link.sent()
        link.feed(P.SerialNotify(0, 5, 9), bytes.fromhex("03 00 0005 0000000c 00000009".replace(" ", "")))
        self.assertEqual(link.sent(), [])
        self.assertFalse(link.ct.disconnecting)
        self.assertEqual(rig.factory.version, 2)
        link.feed(P.CacheResponse(2, 5), P.PrefixPdu(2, True, A), P.EndOfData(2, 5, 1, 60, 30, 600))
        self.assertEqual(rig.sink.data["c1"], {A})

    def test_downgrade_by_response_version(self) -> None:
        """A cache answering a version 2 query with version 1 PDUs: the session is version 1."""
        rig = Rig(max_version=2)
        rig.factory.start()
        link = rig.connect(pump=False)
        link.sent()
        link.feed(P.CacheResponse(1, 5), P.PrefixPdu(1, True, A), P.EndOfData(1, 5, 1, 60, 30, 600))
        self.assertEqual(rig.factory.version, 1)
        self.assertEqual(rig.sink.data["c1"], {A})
        rig.reactor.advance(60)
        self.assertEqual(link.sent(), [P.SerialQuery(1, 5, 1)])


class TimerTests(SynchronousTestCase):
    """Refresh, Retry, Expire (section 6)."""

    def test_bounds(self) -> None:
        """Values outside section 6's ranges are clamped."""
        self.assertEqual(bound_timers(0, 99999, 10), Timers(1, 300, 600))
        self.assertEqual(bound_timers(100000, 0, 999999), Timers(86400, 1, 172800))

    def test_expire_above_refresh(self) -> None:
        """A cache's Expire not above its Refresh / Retry: those become half of Expire."""
        self.assertEqual(bound_timers(3600, 7000, 1200), Timers(600, 600, 1200))

    def test_config_overrides(self) -> None:
        """Configured intervals win over the cache's."""
        server = CacheServer([A], timers=(120, 60, 1200))
        rig = Rig(server=server, refresh=30, expire=900)
        rig.factory.start()
        rig.connect()
        self.assertEqual(rig.factory.timers, Timers(30, 60, 900))

    def test_local_expire_below_section_6(self) -> None:
        """A configured Expire under 600 s is kept (a cache's is clamped); Refresh, Retry under half of it."""
        server = CacheServer([A, B], timers=(120, 60, 1200))
        rig = Rig(server=server, expire=90)
        rig.factory.start()
        link = rig.connect()
        self.assertEqual(rig.factory.timers, Timers(45, 45, 90))
        link.lose()
        rig.reactor.advance(89)
        self.assertIn("c1", rig.sink.data)
        rig.reactor.advance(1)
        self.assertNotIn("c1", rig.sink.data)

    def test_expire_drops_data(self) -> None:
        """Data not refreshed within Expire is dropped from the sink; status shows none."""
        server = CacheServer([A, B], timers=(120, 60, 1200))
        rig = Rig(server=server)
        rig.factory.start()
        link = rig.connect()
        link.lose()
        self.assertEqual(rig.sink.data["c1"], {A, B})
        rig.reactor.advance(1199)
        self.assertIn("c1", rig.sink.data)
        rig.reactor.advance(1)
        self.assertNotIn("c1", rig.sink.data)
        self.assertEqual(rig.sink.calls[-1], ("drop", "c1"))
        self.assertEqual(rig.factory.status().serial, None)

    def test_refresh_resets_expire(self) -> None:
        """Each End of Data restarts Expire: regular refreshes keep the data."""
        server = CacheServer([A], timers=(100, 60, 700))
        rig = Rig(server=server)
        rig.factory.start()
        link = rig.connect()
        for _ in range(20):
            rig.reactor.advance(100)
            link.pump()
        self.assertEqual(rig.sink.data["c1"], {A})
        self.assertNotIn(("drop", "c1"), rig.sink.calls)

    def test_retry_backoff(self) -> None:
        """Failed connects retry after 1, 2, 4 ... seconds, never longer than Retry."""
        rig = Rig(retry=5)
        rig.factory.start()
        delays = []
        for _ in range(6):
            rig.fail()
            (call,) = [c for c in rig.reactor.getDelayedCalls() if c.active()]
            delays.append(call.getTime() - rig.reactor.seconds())
            rig.reactor.advance(delays[-1])
        self.assertEqual(delays, [1, 2, 4, 5, 5, 5])
        self.assertEqual(rig.attempts(), 7)
        self.assertIn("cannot connect", rig.factory.last_error)

    def test_query_unanswered_closes(self) -> None:
        """A query with no answer within Retry closes the connection (it will be retried)."""
        rig = Rig(retry=30)
        rig.factory.start()
        link = rig.connect(pump=False)
        rig.reactor.advance(29)
        self.assertFalse(link.ct.disconnecting)
        rig.reactor.advance(1)
        self.assertTrue(link.ct.disconnecting)
        self.assertIn("no answer", rig.factory.last_error)

    def test_lost_connection_aborts_transaction(self) -> None:
        """A connection lost in the middle of a Cache Response aborts it; the old data stays."""
        rig = Rig()
        rig.factory.start()
        link = rig.connect(pump=False)
        link.feed(P.CacheResponse(1, 5), P.PrefixPdu(1, True, A), P.EndOfData(1, 5, 1, 60, 30, 600))
        rig.reactor.advance(60)
        link.feed(P.CacheResponse(1, 5), P.PrefixPdu(1, True, B))
        link.lose()
        self.assertEqual(rig.sink.names()[-1], "abort")
        self.assertEqual(rig.sink.data["c1"], {A})
        self.assertEqual(rig.factory.status().ipv4_vrps, 1)


class FuzzTests(SynchronousTestCase):
    """Whatever a cache sends, the client answers with an Error Report or goes on; it never raises."""

    @given(st.lists(st.binary(min_size=1, max_size=64), max_size=8), st.booleans())
    @settings(max_examples=300, deadline=None)
    def test_random_bytes(self, chunks: list[bytes], in_response: bool) -> None:
        """Random reads, inside a Cache Response or not: no exception, any reply is an Error Report."""
        rig = Rig()
        rig.factory.start()
        link = rig.connect(pump=False)
        link.sent()
        if in_response:
            link.feed(P.CacheResponse(1, 5))
        for c in chunks:
            link.client.dataReceived(c)
        for pdu in link.sent():
            self.assertIsInstance(pdu, (P.ErrorReport, P.ResetQuery, P.SerialQuery))

    @given(st.integers(0, 63), st.binary(min_size=1, max_size=4))
    @settings(max_examples=300, deadline=None)
    def test_mutated_stream(self, at: int, junk: bytes) -> None:
        """A valid transfer with bytes overwritten anywhere: the client never raises."""
        data = bytearray(CacheServer([A, B, C]).response(1, None))
        at = at % len(data)
        data[at:at + len(junk)] = junk
        rig = Rig()
        rig.factory.start()
        link = rig.connect(pump=False)
        link.sent()
        link.client.dataReceived(bytes(data))
        for pdu in link.sent():
            self.assertIsInstance(pdu, (P.ErrorReport, P.ResetQuery, P.SerialQuery))
