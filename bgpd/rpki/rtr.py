"""The RTR client: one cache's session (RFC 8210 sections 5-8, 10; RFC 6810; 8210bis ASPA).

:class:`RTRFactory` is the controller for one configured cache: it keeps
what outlives a connection (protocol version, Session ID, serial, the
cache's current data set for duplicate detection, the section 6 timers,
the expire timer) and connects with back-off.  :class:`RTRProtocol` frames
the byte stream by the header's length field, decodes with
:mod:`bgpd.rpki.pdu`, runs the section 8 exchanges (Reset Query at start,
Serial Query once it has data, Cache Response ... End of Data as one
transaction handed to the :class:`~bgpd.rpki.records.RpkiSink`, Cache
Reset, Serial Notify) and answers a PDU it cannot accept with an Error
Report (section 5.11, codes of section 12) before closing.

Version negotiation (section 7): the first query goes out at the highest
version configured (2 when ASPA is on, else 1).  A cache that answers with
an Error Report "Unsupported Protocol Version", or with PDUs of a lower
version, is spoken to at that version from then on; once a version is in
use, a PDU of another version is "Unexpected Protocol Version".

Duplicate announcements and withdrawals of unknown records (section 5.6:
errors 7 and 6) are told without a second copy of the cache's data: while
a Reset Query's answer runs, the keys it announced are a set of packed
integers, dropped at its End of Data; a Serial Query's answer is checked
against that cache's data in the sink (:meth:`RpkiSink.has_vrp`, as of its
last End of Data) and what the running transaction announced and withdrew.

A Session ID that does not match the one held (section 5.1: the cache
restarted) is answered with Corrupt Data, or reported so by the cache in
answer to a Serial Query; either way "the router MUST flush all data
learned from that cache": it is dropped from the sink at once (one
revalidation) and loaded again by a Reset Query on a new connection.

Timers (section 6): Refresh and Retry from End of Data (version 1 and
later), bounded to the section's ranges, overridable by config; version 0
uses the defaults 3600 / 600 / 7200.  Data not refreshed within Expire is
dropped from the sink (every route it covered becomes NotFound).
"""

from __future__ import annotations

import random as _random
import struct
import time
from collections.abc import Callable
from typing import Any, Protocol

import attrs
from twisted.internet import protocol
from twisted.internet.interfaces import IAddress
from twisted.logger import Logger
from twisted.python.failure import Failure

from bgpd.rpki import pdu as P
from bgpd.rpki.pdu import ErrorCode, PduError, PduType
from bgpd.rpki.records import Aspa, RpkiSink, Vrp
from bgpd.wire.constants import IPV4_UNICAST, IPV6_UNICAST
from bgpd.wire.nlri import prefix_to_str

__all__ = [
    "DEFAULT_TIMERS",
    "TIMER_BOUNDS",
    "CacheListener",
    "CacheSettings",
    "CacheStatus",
    "RTRFactory",
    "RTRProtocol",
    "Timers",
    "bound_timers",
]

log = Logger()

_HEADER = struct.Struct("!BBHI").unpack_from
_V4_BODY = struct.Struct("!BBBxII").unpack_from
_V6_BODY = struct.Struct("!BBBxQQI").unpack_from
_PLEN_BYTE = [bytes((n,)) for n in range(129)]
_NBYTES = [(n + 7) >> 3 for n in range(129)]
# the host bits of an address of each prefix length
_HOST4 = [(1 << (32 - n)) - 1 for n in range(33)] + [0] * 96
_HOST6 = [(1 << (128 - n)) - 1 for n in range(129)]

#: RFC 8210 section 6: (minimum, maximum) seconds of each interval.
TIMER_BOUNDS = {"refresh": (1, 86400), "retry": (1, 7200), "expire": (600, 172800)}

#: first reconnect delay after a failure; doubled per failure up to the Retry interval
INITIAL_BACKOFF = 1.0
#: how long a TCP connect may take before it counts as failed
CONNECT_TIMEOUT = 30.0
#: Serial Queries in a row a cache may answer by closing before the client resets (see connectionLost)
SILENT_SERIAL_FAILURES = 2


@attrs.frozen
class Timers:
    """The three intervals of RFC 8210 section 6, in seconds."""

    refresh: float = 3600.0
    retry: float = 600.0
    expire: float = 7200.0


#: What version 0 (and a version 1 End of Data with zeros) leaves in force.
DEFAULT_TIMERS = Timers()


def bound_timers(refresh: float, retry: float, expire: float) -> Timers:
    """The intervals clamped into section 6's ranges (a cache's out-of-range value is not fatal).

    Expire must also exceed Refresh and Retry (section 6): otherwise data
    held from a cache that is up and fine would expire before the next
    query, so those two are brought down to half of Expire.
    """
    def clamp(name: str, value: float) -> float:
        lo, hi = TIMER_BOUNDS[name]
        return float(min(max(value, lo), hi))

    expire = clamp("expire", expire)
    return Timers(min(clamp("refresh", refresh), expire / 2), min(clamp("retry", retry), expire / 2), expire)


@attrs.frozen
class CacheSettings:
    """How to reach one cache and what to ask of it (built from ``[[rpki.cache]]``)."""

    name: str
    address: str
    port: int = 323
    preference: int = 100
    #: "tcp" or "tls" (RFC 8210 section 9)
    transport: str = "tcp"
    #: highest protocol version to offer (2 asks for ASPA PDUs)
    max_version: int = 1
    #: interval overrides: None takes the cache's (or the defaults)
    refresh: float | None = None
    retry: float | None = None
    expire: float | None = None
    #: for TLS: a ``twisted.internet.interfaces.IOpenSSLClientConnectionCreator``
    tls: Any = attrs.field(default=None, eq=False, repr=False)

    @property
    def endpoint(self) -> str:
        host = f"[{self.address}]" if ":" in self.address else self.address
        return f"{host}:{self.port}"


class CacheListener(Protocol):
    """What a cache's factory reports (the RPKI service implements it)."""

    def cache_changed(self, cache: RTRFactory) -> None:
        """The connection state changed (connecting, connected, down)."""

    def cache_synced(self, cache: RTRFactory) -> None:
        """An End of Data was applied: the cache's data in the sink is complete."""

    def cache_expired(self, cache: RTRFactory) -> None:
        """The cache's data outlived Expire and was dropped from the sink."""

    def cache_flushed(self, cache: RTRFactory) -> None:
        """The cache's Session ID did not match: its data was flushed from the sink (section 5.1)."""


class NullCacheListener:
    """Hears nothing (a factory used on its own)."""

    def cache_changed(self, cache: RTRFactory) -> None:
        pass

    def cache_synced(self, cache: RTRFactory) -> None:
        pass

    def cache_expired(self, cache: RTRFactory) -> None:
        pass

    def cache_flushed(self, cache: RTRFactory) -> None:
        pass


@attrs.frozen
class CacheStatus:
    """One cache for ``bgpctl rpki status``."""

    name: str
    address: str
    port: int
    transport: str
    preference: int
    #: "idle", "connecting", "connected" or "down"
    state: str
    version: int
    session_id: int | None
    serial: int | None
    #: wall-clock seconds of the last End of Data, None when never
    last_update: float | None
    timers: Timers
    ipv4_vrps: int
    ipv6_vrps: int
    aspas: int
    last_error: str


IDLE = "idle"
CONNECTING = "connecting"
CONNECTED = "connected"
DOWN = "down"


class _Transaction:
    """One Cache Response up to its End of Data: what changed, so an abort can undo it."""

    __slots__ = ("reset", "v4", "v6", "gone4", "gone6", "aspas", "legacy_aspas", "undo", "announced",
                 "withdrawn", "aspa_announced", "aspa_withdrawn", "added", "removed")

    def __init__(self, reset: bool, factory: RTRFactory) -> None:
        self.reset = reset
        #: packed keys of the VRPs this transaction announced and did not withdraw again
        self.v4: set[int] = set()
        self.v6: set[int] = set()
        #: a Serial Query's answer: keys of the data before it (the sink's) that it withdrew
        self.gone4: set[int] = set()
        self.gone6: set[int] = set()
        if reset:
            # A reset replaces the cache's data: built aside, swapped in at End of Data.
            self.aspas: dict[int, tuple[int, ...]] = {}
            self.legacy_aspas: dict[tuple[int, int], tuple[int, ...]] = {}
        else:
            self.aspas = factory.aspa_table
            self.legacy_aspas = factory.legacy_aspas
        #: (ASPA dict, key, old value or None): changed in the live tables, reversed on abort
        self.undo: list[tuple[Any, int, Any]] = []
        self.announced: list[Vrp] = []
        self.withdrawn: list[Vrp] = []
        self.aspa_announced: list[Aspa] = []
        self.aspa_withdrawn: list[int] = []
        self.added = 0
        self.removed = 0


class RTRProtocol(protocol.Protocol):
    """One connection to a cache: framing, the exchanges of section 8, errors both ways."""

    def __init__(self, factory: RTRFactory) -> None:
        self.factory = factory
        self._buf = b""
        self._tx: _Transaction | None = None
        #: a query is out and its answer (Cache Response ... End of Data, or Cache Reset) not complete
        self._querying = False
        #: the Session ID the outstanding Serial Query named (None for a Reset Query)
        self._query_session: int | None = None
        #: the version is settled for this connection (first PDU from the cache seen)
        self._settled = False
        self._closing = False
        self._refresh_call: Any = None
        self._retry_call: Any = None

    # -- Twisted ------------------------------------------------------------

    def connectionMade(self) -> None:  # noqa: N802
        self.factory.connected(self)
        self.query()

    def connectionLost(self, reason: Failure = protocol.connectionDone) -> None:  # noqa: N802
        self._cancel_timers()
        f = self.factory
        if self._querying and self._query_session is not None and self._tx is None:
            # A Serial Query answered by a closed connection and nothing else:
            # some caches (stayrtr) drop a router whose Session ID they do not
            # know, and their Corrupt Data report can be lost with the
            # connection.  Twice in a row and the session is given up: the
            # next query is a Reset Query (the data stays until it is replaced).
            f.silent_serial_failures += 1
            if f.silent_serial_failures >= SILENT_SERIAL_FAILURES:
                f.note_error(f"{f.silent_serial_failures} Serial Queries answered by a closed connection: "
                             "asking for the whole data set next")
                f.forget_session()
        self._abort()
        f.lost(self, reason)

    def dataReceived(self, data: bytes) -> None:  # noqa: N802
        if self._closing:
            return
        if self._buf:
            data = self._buf + data
        i, n = 0, len(data)
        try:
            i = self._frames(data, n)
        except PduError as err:
            self._buf = b""
            self.send_error(err.code, err.reason, err.pdu)
            return
        self._buf = data[i:] if i < n else b""
        if self._closing:
            return
        self._flush()
        if self._querying and self._retry_call is not None:
            # A long transfer that keeps moving is not a query that failed.
            self._retry_call.reset(self.factory.timers.retry)

    def _frames(self, data: bytes, n: int) -> int:
        """Handle every whole PDU in ``data``; returns where the first incomplete one starts.

        Prefix PDUs inside a transaction, the bulk of any transfer, are
        decoded right here from the buffer: no copy of the PDU, no record
        but the Vrp, set and list methods bound once.
        """
        i = 0
        version = self.factory.version
        tx = self._tx
        header = _HEADER
        v4body, v6body = _V4_BODY, _V6_BODY
        plen_byte, nbytes, host4, host6 = _PLEN_BYTE, _NBYTES, _HOST4, _HOST6
        while n - i >= 8:
            ver, ptype, _field, length = header(data, i)
            if length < 8 or length > P.MAX_PDU_LEN:
                P.parse_header(data, i)  # raises with the right code and bytes
            j = i + length
            if j > n:
                break
            if tx is not None and ver == version:
                if ptype == 4 and length == 20:
                    flags, plen, maxlen, addr, asn = v4body(data, i + 8)
                    if plen > 32 or maxlen > 32 or maxlen < plen:
                        P.decode_prefix(data[i:j])  # raises Corrupt Data with the reason
                    if addr & host4[plen]:
                        addr &= ~host4[plen] & 0xFFFFFFFF
                        prefix = plen_byte[plen] + addr.to_bytes(4, "big")[:nbytes[plen]]
                    else:
                        prefix = plen_byte[plen] + data[i + 12:i + 12 + nbytes[plen]]
                    keys = tx.v4
                    family = IPV4_UNICAST
                elif ptype == 6 and length == 32:
                    flags, plen, maxlen, hi, lo, asn = v6body(data, i + 8)
                    if plen > 128 or maxlen > 128 or maxlen < plen:
                        P.decode_prefix(data[i:j])
                    addr = hi << 64 | lo
                    if addr & host6[plen]:
                        addr &= ~host6[plen] & (1 << 128) - 1
                        prefix = plen_byte[plen] + addr.to_bytes(16, "big")[:nbytes[plen]]
                    else:
                        prefix = plen_byte[plen] + data[i + 12:i + 12 + nbytes[plen]]
                    keys = tx.v6
                    family = IPV6_UNICAST
                else:
                    self._pdu(data[i:j])
                    i = j
                    if self._closing:
                        return i
                    tx = self._tx
                    version = self.factory.version
                    continue
                # (address, length, max length, AS) in one int: one-to-one, a third of a Vrp's size
                key = addr << 48 | plen << 40 | maxlen << 32 | asn
                if not tx.reset:
                    gone = tx.gone4 if keys is tx.v4 else tx.gone6
                    self._delta(tx, keys, gone, key, Vrp(family, prefix, maxlen, asn), flags & 1, data[i:j])
                elif flags & 1:
                    if key in keys:
                        raise PduError(ErrorCode.DUPLICATE_ANNOUNCEMENT,
                                       f"{_show(Vrp(family, prefix, maxlen, asn))} announced twice",
                                       data[i:j])
                    keys.add(key)
                    tx.announced.append(Vrp(family, prefix, maxlen, asn))
                else:
                    if key not in keys:
                        raise PduError(ErrorCode.WITHDRAWAL_OF_UNKNOWN_RECORD,
                                       f"{_show(Vrp(family, prefix, maxlen, asn))} was not announced",
                                       data[i:j])
                    keys.discard(key)
                    tx.withdrawn.append(Vrp(family, prefix, maxlen, asn))
                i = j
                continue
            self._pdu(data[i:j])
            i = j
            if self._closing:
                return i
            tx = self._tx
            version = self.factory.version
        return i

    # -- queries --------------------------------------------------------------

    def query(self) -> None:
        """Serial Query when the cache's data is held, else Reset Query (section 8.1, 8.2)."""
        if self._querying or self._closing:
            return
        f = self.factory
        self._cancel(self._refresh_call)
        if f.session_id is not None and f.serial is not None:
            self._query_session = f.session_id
            self._send(P.SerialQuery(f.version, f.session_id, f.serial))
        else:
            self._query_session = None
            self._send(P.ResetQuery(f.version))
        self._querying = True
        self._retry_call = f.clock.callLater(f.timers.retry, self._query_timed_out)

    def _query_timed_out(self) -> None:
        self._retry_call = None
        self.factory.note_error(f"no answer to the query within {self.factory.timers.retry:.0f} s (Retry)")
        self._close()

    def _refresh(self) -> None:
        self._refresh_call = None
        self.query()

    # -- PDUs -----------------------------------------------------------------

    def _check_version(self, version: int, data: bytes) -> None:
        f = self.factory
        if version == f.version:
            self._settled = True
            return
        if not self._settled and version < f.version and version in P.SUPPORTED_VERSIONS:
            # Section 7: the cache answers at the version it speaks; follow it down.
            f.downgrade(version, f"the cache answered with version {version}")
            self._settled = True
            return
        raise PduError(ErrorCode.UNEXPECTED_PROTOCOL_VERSION,
                       f"PDU of version {version} in a version {f.version} session", data)

    def _pdu(self, data: bytes) -> None:
        f = self.factory
        version, ptype = data[0], data[1]
        if ptype == PduType.ERROR_REPORT:
            # Checked before the version: a cache refusing ours reports at its own.
            try:
                report = P.decode(data)
            except PduError as err:
                # Never an Error Report about an Error Report (section 5.11): just close.
                f.note_error(f"unreadable Error Report from the cache: {err}")
                self._abort()
                self._close()
                return
            assert isinstance(report, P.ErrorReport)
            self._error_report(report)
            return
        if ptype == PduType.SERIAL_NOTIFY and not self._settled:
            # Section 7: ignored while the version is not settled, whatever version it has.
            return
        pdu = P.decode(data)
        self._check_version(version, data)
        if isinstance(pdu, P.PrefixPdu):
            if self._tx is None:
                raise PduError(ErrorCode.CORRUPT_DATA, "Prefix PDU outside a Cache Response", data)
            self._prefix(data)
        elif isinstance(pdu, P.AspaPdu):
            if self._tx is None:
                raise PduError(ErrorCode.CORRUPT_DATA, "ASPA PDU outside a Cache Response", data)
            self._aspa(pdu, data)
        elif isinstance(pdu, P.RouterKey):
            if self._tx is None:
                raise PduError(ErrorCode.CORRUPT_DATA, "Router Key PDU outside a Cache Response", data)
            # BGPsec is not validated by bgpd: the key is accepted and not kept.
        elif isinstance(pdu, P.CacheResponse):
            self._cache_response(pdu, data)
        elif isinstance(pdu, P.EndOfData):
            self._end_of_data(pdu, data)
        elif isinstance(pdu, P.CacheReset):
            if self._tx is not None:
                raise PduError(ErrorCode.CORRUPT_DATA, "Cache Reset inside a Cache Response", data)
            if self._querying and self._query_session is None:
                # Section 8.3: the answer to a Serial Query only; answering a
                # Reset Query so would have the two ask each other forever.
                raise PduError(ErrorCode.CORRUPT_DATA, "Cache Reset in answer to a Reset Query", data)
            log.info("rpki: cache {cache} ({address}): Cache Reset, sending Reset Query",
                     cache=f.settings.name, address=f.settings.endpoint)
            self._cancel(self._retry_call)
            self._querying = False
            f.forget_session()
            self.query()
        elif isinstance(pdu, P.SerialNotify):
            if f.session_id is not None and pdu.session_id != f.session_id:
                self._session_mismatch(pdu.session_id, data)
            elif not self._querying:
                self.query()
        else:
            # Serial Query / Reset Query go from routers to caches only.
            raise PduError(ErrorCode.UNSUPPORTED_PDU_TYPE,
                           f"{PduType(ptype).name} is sent by routers, not caches", data)

    def _session_mismatch(self, got: int, data: bytes) -> None:
        f = self.factory
        want = f.pending_session if self._tx is not None else f.session_id
        if want is None:
            want = self._query_session
        # Section 5.1: a Session ID change means the cache restarted; its
        # serials mean nothing now, and "the router MUST flush all data
        # learned from that cache".  The running transaction is undone
        # first, so the flush is the one change the tables see (one
        # revalidation); the Reset Query goes out at once on a new connection.
        why = f"Session ID {got}, expected {want}"
        self._abort()
        f.flush(why)
        f.reconnect_now = True
        raise PduError(ErrorCode.CORRUPT_DATA, why, data)

    def _cache_response(self, pdu: P.CacheResponse, data: bytes) -> None:
        f = self.factory
        if not self._querying or self._tx is not None:
            raise PduError(ErrorCode.CORRUPT_DATA, "Cache Response without a query", data)
        if self._query_session is not None and pdu.session_id != self._query_session:
            self._session_mismatch(pdu.session_id, data)
        reset = self._query_session is None
        f.pending_session = pdu.session_id
        self._tx = _Transaction(reset, f)
        f.sink.begin(f.settings.name, reset)

    def _delta(self, tx: _Transaction, keys: set[int], gone: set[int], key: int, vrp: Vrp,
               announce: int, pdu: bytes) -> None:
        """A Prefix PDU of a Serial Query's answer, checked against the data before it and the answer so far.

        The data before it is the sink's (its state at the last End of Data):
        the client keeps no copy.  ``keys`` are what this answer announced,
        ``gone`` what it withdrew of the data before.
        """
        f = self.factory
        if announce:
            if key in keys or (key not in gone and f.sink.has_vrp(f.settings.name, vrp)):
                raise PduError(ErrorCode.DUPLICATE_ANNOUNCEMENT, f"{_show(vrp)} announced twice", pdu)
            if key in gone:
                gone.discard(key)
            else:
                keys.add(key)
            tx.announced.append(vrp)
        else:
            if key in keys:
                keys.discard(key)
            elif key not in gone and f.sink.has_vrp(f.settings.name, vrp):
                gone.add(key)
            else:
                raise PduError(ErrorCode.WITHDRAWAL_OF_UNKNOWN_RECORD, f"{_show(vrp)} was not announced", pdu)
            tx.withdrawn.append(vrp)

    def _prefix(self, data: bytes) -> None:
        """A Prefix PDU that reached the general path: handled by the same fast code."""
        self._frames(data, len(data))

    def _aspa(self, pdu: P.AspaPdu, data: bytes) -> None:
        tx = self._tx
        assert tx is not None
        if pdu.afi is not None:
            self._legacy_aspa(pdu, data)
            return
        table = tx.aspas
        old = table.get(pdu.customer_as)
        if pdu.announce:
            # 8210bis: an announcement for a customer AS replaces the one held.
            table[pdu.customer_as] = pdu.providers
            tx.aspa_announced.append(pdu.aspa)
        else:
            if old is None:
                raise PduError(ErrorCode.WITHDRAWAL_OF_UNKNOWN_RECORD,
                               f"ASPA of AS{pdu.customer_as} was not announced", data)
            del table[pdu.customer_as]
            tx.aspa_withdrawn.append(pdu.customer_as)
        if not tx.reset:
            tx.undo.append((table, pdu.customer_as, old))

    def _legacy_aspa(self, pdu: P.AspaPdu, data: bytes) -> None:
        """A draft-10 per-family ASPA: the sink sees one record per customer, its providers' union."""
        tx = self._tx
        assert tx is not None
        per_afi, table = tx.legacy_aspas, tx.aspas
        key = (pdu.customer_as, pdu.afi)
        old = per_afi.get(key)
        if pdu.announce:
            per_afi[key] = pdu.providers
        else:
            if old is None:
                raise PduError(ErrorCode.WITHDRAWAL_OF_UNKNOWN_RECORD,
                               f"ASPA of AS{pdu.customer_as} (AFI {pdu.afi}) was not announced", data)
            del per_afi[key]
        merged = tuple(sorted(set(per_afi.get((pdu.customer_as, 1), ()))
                              | set(per_afi.get((pdu.customer_as, 2), ()))))
        was = table.get(pdu.customer_as)
        if merged:
            table[pdu.customer_as] = merged
            if merged != was:
                tx.aspa_announced.append(Aspa(pdu.customer_as, merged))
        elif was is not None:
            del table[pdu.customer_as]
            tx.aspa_withdrawn.append(pdu.customer_as)
        if not tx.reset:
            tx.undo.append((per_afi, key, old))
            tx.undo.append((table, pdu.customer_as, was))

    def _flush(self) -> None:
        tx = self._tx
        if tx is None:
            return
        f = self.factory
        if tx.announced or tx.withdrawn:
            tx.added += len(tx.announced)
            tx.removed += len(tx.withdrawn)
            f.sink.vrps(f.settings.name, tx.announced, tx.withdrawn)
            tx.announced, tx.withdrawn = [], []
        if tx.aspa_announced or tx.aspa_withdrawn:
            f.sink.aspas(f.settings.name, tx.aspa_announced, tx.aspa_withdrawn)
            tx.aspa_announced, tx.aspa_withdrawn = [], []

    def _end_of_data(self, pdu: P.EndOfData, data: bytes) -> None:
        f = self.factory
        tx = self._tx
        if tx is None:
            raise PduError(ErrorCode.CORRUPT_DATA, "End of Data without a Cache Response", data)
        if pdu.session_id != f.pending_session:
            self._session_mismatch(pdu.session_id, data)
        self._flush()
        self._tx = None
        self._querying = False
        self._cancel(self._retry_call)
        self._retry_call = None
        f.sink.end(f.settings.name, pdu.serial)
        f.synced(pdu, tx)
        self._refresh_call = f.clock.callLater(f.timers.refresh, self._refresh)

    def _error_report(self, report: P.ErrorReport) -> None:
        f = self.factory
        text = f"{P.error_name(report.code)}" + (f": {report.text}" if report.text else "")
        f.note_error(f"Error Report from the cache: {text}")
        self._abort()
        self._cancel(self._retry_call)
        self._retry_call = None
        self._querying = False
        if report.code == ErrorCode.NO_DATA_AVAILABLE:
            # Not fatal (section 12): the cache has no data yet.  Section 8.5:
            # ask again periodically, and meanwhile let the other caches be
            # tried, in preference order.
            self._refresh_call = f.clock.callLater(f.timers.retry, self._refresh)
            f.no_data()
            return
        if report.code == ErrorCode.CORRUPT_DATA and self._query_session is not None and self._tx is None:
            # Section 5.1: the answer a cache gives a Serial Query naming a
            # Session ID it does not have (it restarted).  The router must
            # flush that cache's data; then ask for everything.
            f.flush(f"the cache answered the Serial Query with {text}")
            f.reconnect_now = True
        if report.code == ErrorCode.UNSUPPORTED_PROTOCOL_VERSION and not self._settled and f.version > 0:
            # Section 7: the report's version is the highest the cache speaks.
            f.downgrade(min(report.version, f.version - 1), "the cache does not speak it")
            f.reconnect_now = True
        # Never answer an Error Report with one (section 5.11).
        self._close()

    # -- errors, closing ------------------------------------------------------

    def send_error(self, code: int, reason: str, offending: bytes = b"") -> None:
        """Send an Error Report (section 5.11) about ``offending`` and close the connection."""
        f = self.factory
        f.note_error(f"sent Error Report {P.error_name(code)}: {reason}")
        if self.transport is not None:
            self._send(P.ErrorReport(f.version, code, offending, reason))
        self._abort()
        self._close()

    def _abort(self) -> None:
        tx, self._tx = self._tx, None
        if tx is None:
            return
        f = self.factory
        # The VRP keys were the transaction's own; only the ASPA tables were changed in place.
        for table, key, old in reversed(tx.undo):
            if old is None:
                table.pop(key, None)
            else:
                table[key] = old
        f.pending_session = f.session_id
        f.sink.abort(f.settings.name)

    def _close(self) -> None:
        if self._closing:
            return
        self._closing = True
        self._cancel_timers()
        if self.transport is not None:
            self.transport.loseConnection()

    def close(self) -> None:
        """Close the connection (the service no longer wants this cache)."""
        self._abort()
        self._close()

    def _send(self, pdu: P.Pdu) -> None:
        if self.transport is not None:
            self.transport.write(pdu.encode())

    @staticmethod
    def _cancel(call: Any) -> None:
        if call is not None and call.active():
            call.cancel()

    def _cancel_timers(self) -> None:
        self._cancel(self._refresh_call)
        self._cancel(self._retry_call)
        self._refresh_call = self._retry_call = None


def _show(vrp: Vrp) -> str:
    return f"VRP {prefix_to_str(vrp.prefix, vrp.family[0])}-{vrp.max_length} AS{vrp.asn}"


class RTRFactory(protocol.ClientFactory):
    """One cache: its persistent session state, its timers, connecting and retrying.

    ``reactor`` provides ``callLater``/``seconds`` and ``connectTCP`` /
    ``connectSSL``; ``wall_clock`` gives the time shown as "last update".
    """

    protocol = RTRProtocol
    # Its own log lines say when it connects; Twisted's "Starting factory" would be noise.
    noisy = False

    def __init__(self, settings: CacheSettings, sink: RpkiSink, reactor: Any,
                 listener: CacheListener | None = None, wall_clock: Callable[[], float] | None = None,
                 random: Callable[[], float] = _random.random) -> None:
        self.settings = settings
        self.sink = sink
        self.reactor = reactor
        self.clock = reactor
        self.listener: CacheListener = listener or NullCacheListener()
        self.wall_clock = wall_clock or time.time
        self._random = random
        self.version = settings.max_version
        self.session_id: int | None = None
        #: the Session ID of the running Cache Response (committed at its End of Data)
        self.pending_session: int | None = None
        self.serial: int | None = None
        #: VRPs per family in the cache's data (the data itself is the sink's)
        self.v4_count = 0
        self.v6_count = 0
        self.aspa_table: dict[int, tuple[int, ...]] = {}
        #: (customer AS, AFI) -> providers, from a cache of the draft-10 ASPA layout
        self.legacy_aspas: dict[tuple[int, int], tuple[int, ...]] = {}
        self.has_data = False
        #: connected and in sync: an End of Data arrived on the current connection
        self.live = False
        self.timers = self._timers(DEFAULT_TIMERS)
        self.state = IDLE
        self.enabled = False
        self.last_update: float | None = None
        self.last_error = ""
        #: connection attempts failed since the last End of Data (the back-off)
        self.failures = 0
        #: the next connection attempt goes out at once (version downgrade, Session ID change)
        self.reconnect_now = False
        #: Serial Queries in a row answered only by the connection closing
        self.silent_serial_failures = 0
        self.proto: RTRProtocol | None = None
        self._connector: Any = None
        self._retry_call: Any = None
        self._expire_call: Any = None

    def __repr__(self) -> str:
        return f"<RTRFactory {self.settings.name} {self.settings.endpoint}>"

    # -- control (the service) -------------------------------------------------

    def start(self) -> None:
        """Connect and keep connected (retrying with back-off) until :meth:`stop`."""
        if self.enabled:
            return
        self.enabled = True
        self.failures = 0
        self._connect()

    def stop(self, drop: str = "") -> None:
        """Disconnect, stop retrying; ``drop`` (a reason) also forgets the cache's data and the sink's."""
        self.enabled = False
        self.live = False
        # Stopped by choice, not by failing: when it is wanted again it gets a first try.
        self.failures = 0
        self._cancel_retry()
        if self.proto is not None:
            self.proto.close()
        elif self._connector is not None:
            self._connector.stopConnecting()
        if drop:
            self.drop_data(drop)
        self._set_state(IDLE)

    def shutdown(self) -> None:
        """The service stops: disconnect, cancel every timer; the sink's data is left alone."""
        self.stop()
        if self._expire_call is not None and self._expire_call.active():
            self._expire_call.cancel()
        self._expire_call = None

    def drop_data(self, why: str) -> None:
        """Forget the cache's data here and in the sink (a new session must start with a Reset Query)."""
        if self._expire_call is not None and self._expire_call.active():
            self._expire_call.cancel()
        self._expire_call = None
        had = self.has_data
        self.forget_session()
        self.v4_count = self.v6_count = 0
        self.aspa_table = {}
        self.legacy_aspas = {}
        self.has_data = False
        self.live = False
        if had:
            log.info("rpki: cache {cache} ({address}): data dropped: {why}",
                     cache=self.settings.name, address=self.settings.endpoint, why=why)
            self.sink.drop(self.settings.name)

    # -- connecting -----------------------------------------------------------

    def _connect(self) -> None:
        self._retry_call = None
        if not self.enabled or self.proto is not None:
            return
        s = self.settings
        self._set_state(CONNECTING)
        if s.transport == "tls":
            self._connector = self.reactor.connectSSL(s.address, s.port, self, s.tls, timeout=CONNECT_TIMEOUT)
        else:
            self._connector = self.reactor.connectTCP(s.address, s.port, self, timeout=CONNECT_TIMEOUT)

    def buildProtocol(self, addr: IAddress) -> RTRProtocol:  # noqa: N802
        return RTRProtocol(self)

    def clientConnectionFailed(self, connector: Any, reason: Failure) -> None:  # noqa: N802
        self._connector = None
        if not self.enabled:
            # stop() gave up the attempt: not a failure of the cache.
            self._set_state(IDLE)
            return
        self.note_error(f"cannot connect: {reason.getErrorMessage()}")
        self._down()

    def connected(self, proto: RTRProtocol) -> None:
        """The Protocol is connected (called by it)."""
        self._connector = None
        if not self.enabled:
            proto.close()
            return
        self.proto = proto
        log.info("rpki: cache {cache} ({address}): connected ({transport}), asking at version {version}",
                 cache=self.settings.name, address=self.settings.endpoint,
                 transport=self.settings.transport, version=self.version)
        self._set_state(CONNECTED)

    def lost(self, proto: RTRProtocol, reason: Failure) -> None:
        """The Protocol's connection is gone (called by it)."""
        if proto is not self.proto:
            return
        self.proto = None
        self._connector = None
        self.live = False
        if self.enabled:
            if not self.reconnect_now:
                self.note_error(f"connection lost: {reason.getErrorMessage()}")
            self._down()

    def _down(self) -> None:
        if not self.enabled:
            self._set_state(IDLE)
            return
        if self.reconnect_now:
            self.reconnect_now = False
            delay = 0.0
        else:
            self.failures += 1
            base = min(self.timers.retry, INITIAL_BACKOFF * 2 ** min(self.failures - 1, 20))
            # Jitter so that routers restarted together do not retry together.
            delay = base * (0.75 + 0.25 * self._random())
        log.info("rpki: cache {cache} ({address}): down, next attempt in {delay:.1f} s",
                 cache=self.settings.name, address=self.settings.endpoint, delay=delay)
        self._cancel_retry()
        self._retry_call = self.clock.callLater(delay, self._connect)
        self._set_state(DOWN)

    def _cancel_retry(self) -> None:
        if self._retry_call is not None and self._retry_call.active():
            self._retry_call.cancel()
        self._retry_call = None

    def _set_state(self, state: str) -> None:
        if state != self.state:
            self.state = state
            self.listener.cache_changed(self)

    # -- session state (the Protocol) --------------------------------------------

    def _timers(self, got: Timers) -> Timers:
        s = self.settings
        t = bound_timers(s.refresh if s.refresh is not None else got.refresh,
                         s.retry if s.retry is not None else got.retry,
                         s.expire if s.expire is not None else got.expire)
        if s.expire is not None and float(s.expire) != t.expire:
            # A configured Expire below section 6's 600 s (the config allows
            # 60 and up) is the operator's choice: kept, not clamped as a
            # cache's value is; Refresh and Retry still stay below half of it.
            e = float(s.expire)
            t = Timers(min(t.refresh, e / 2), min(t.retry, e / 2), e)
        return t

    def downgrade(self, version: int, why: str) -> None:
        """Speak ``version`` from now on (section 7)."""
        log.info("rpki: cache {cache} ({address}): protocol version {old} -> {new}: {why}",
                 cache=self.settings.name, address=self.settings.endpoint, old=self.version,
                 new=version, why=why)
        self.version = version

    def no_data(self) -> None:
        """The cache answered "No Data Available": counts as a failure, so the next cache is tried."""
        self.failures += 1
        self.listener.cache_changed(self)

    def flush(self, why: str) -> None:
        """Section 5.1: the Session IDs differ, so "the router MUST flush all data learned from that cache".

        One drop from the sink (one revalidation batch); the listener hears
        of it so that the cache is no longer shown as the one in use.
        """
        had = self.has_data
        self.drop_data(f"Session ID mismatch: {why} (RFC 8210 section 5.1)")
        if had:
            self.listener.cache_flushed(self)

    def forget_session(self) -> None:
        """The Session ID and serial mean nothing any more: the next query is a Reset Query."""
        self.session_id = self.serial = self.pending_session = None

    def note_error(self, text: str) -> None:
        self.last_error = text
        log.warn("rpki: cache {cache} ({address}): {error}",
                 cache=self.settings.name, address=self.settings.endpoint, error=text)

    def synced(self, eod: P.EndOfData, tx: _Transaction) -> None:
        """An End of Data was handed to the sink: commit the transaction here (called by the Protocol)."""
        if tx.reset:
            self.v4_count, self.v6_count = len(tx.v4), len(tx.v6)
            self.aspa_table = tx.aspas
            self.legacy_aspas = tx.legacy_aspas
        else:
            self.v4_count += len(tx.v4) - len(tx.gone4)
            self.v6_count += len(tx.v6) - len(tx.gone6)
        self.session_id = eod.session_id
        self.serial = eod.serial
        self.has_data = True
        self.live = True
        self.failures = 0
        self.silent_serial_failures = 0
        if eod.version >= 1 and eod.refresh and eod.retry and eod.expire:
            got = Timers(float(eod.refresh), float(eod.retry), float(eod.expire))
        else:
            got = DEFAULT_TIMERS
        self.timers = self._timers(got)
        self.last_update = self.wall_clock()
        if self._expire_call is not None and self._expire_call.active():
            self._expire_call.cancel()
        self._expire_call = self.clock.callLater(self.timers.expire, self._expired)
        log.info("rpki: cache {cache} ({address}): End of Data, serial {serial} session {session}"
                 "{kind}: {v4} IPv4 and {v6} IPv6 VRPs, {aspas} ASPAs (+{added} -{removed} VRPs)",
                 cache=self.settings.name, address=self.settings.endpoint, serial=eod.serial,
                 session=eod.session_id, kind=" (reset)" if tx.reset else "",
                 v4=self.v4_count, v6=self.v6_count, aspas=len(self.aspa_table),
                 added=tx.added, removed=tx.removed)
        self.listener.cache_synced(self)

    def _expired(self) -> None:
        self._expire_call = None
        log.warn("rpki: cache {cache} ({address}): data not refreshed for {expire:.0f} s (Expire): "
                 "dropped, routes it covered become NotFound",
                 cache=self.settings.name, address=self.settings.endpoint, expire=self.timers.expire)
        self.drop_data("expired")
        self.listener.cache_expired(self)

    # -- status ---------------------------------------------------------------

    def status(self) -> CacheStatus:
        s = self.settings
        return CacheStatus(
            name=s.name, address=s.address, port=s.port, transport=s.transport,
            preference=s.preference, state=self.state, version=self.version,
            session_id=self.session_id, serial=self.serial, last_update=self.last_update,
            timers=self.timers, ipv4_vrps=self.v4_count, ipv6_vrps=self.v6_count,
            aspas=len(self.aspa_table), last_error=self.last_error)
