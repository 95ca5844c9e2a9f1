"""MRT TABLE_DUMP_V2 snapshots of the Loc-RIB and the Adj-RIBs-In (RFC 6396, RFC 8050).

Records (RFC 6396 section 4.3): the MRT common header (section 2:
timestamp, type 13 TABLE_DUMP_V2, subtype, length), one PEER_INDEX_TABLE
(4.3.1: collector BGP ID, view name, peer entries with their type bits for
IPv6 addresses and 4-octet ASNs), then one RIB_IPV4_UNICAST (subtype 2) or
RIB_IPV6_UNICAST (subtype 4) record per prefix (4.3.2: sequence number,
prefix, RIB entries of peer index, originated time and attributes).  A
path received with an ADD-PATH identifier (RFC 7911) goes in the
RIB_IPV4_UNICAST_ADDPATH / RIB_IPV6_UNICAST_ADDPATH subtypes 8 / 10 of RFC
8050 section 4, each entry carrying its path identifier.

Attributes are encoded as section 4.3.4 says: AS_PATH always with 4-octet
ASNs, and MP_REACH_NLRI (IPv6 routes, or an IPv6 next hop of an IPv4 route)
holding only the next hop length and the next hop.

Taking a snapshot never blocks the reactor: the table's keys are copied at
once (one C-level copy), then :data:`CHUNK` prefixes are looked up and
encoded per reactor turn (``call_later(0)``); the encoded bytes go through
a bounded chain of writes to a thread (``deferToThread``), which also
compresses (gzip or bz2), and the producer waits while the chain is full.
The file is written as ``NAME.tmp`` and renamed when complete.
"""

from __future__ import annotations

import bz2
import gzip
import os
import socket
import struct
import time
from collections.abc import Callable, Iterable
from typing import Any

import attrs
from twisted.internet import defer
from twisted.logger import Logger

from bgpd.wire.constants import IPV4_UNICAST, IPV6_UNICAST

__all__ = [
    "CHUNK", "MrtDump", "MrtPeer", "MrtScheduler", "DumpResult", "encode_peer_index",
    "encode_rib", "encode_attributes", "mrt_record", "snapshot_sources",
]

log = Logger()

TABLE_DUMP_V2 = 13
PEER_INDEX_TABLE = 1
RIB_IPV4_UNICAST = 2
RIB_IPV6_UNICAST = 4
RIB_IPV4_UNICAST_ADDPATH = 8
RIB_IPV6_UNICAST_ADDPATH = 10
_RIB_SUBTYPE = {(IPV4_UNICAST, False): RIB_IPV4_UNICAST, (IPV4_UNICAST, True): RIB_IPV4_UNICAST_ADDPATH,
                (IPV6_UNICAST, False): RIB_IPV6_UNICAST, (IPV6_UNICAST, True): RIB_IPV6_UNICAST_ADDPATH}
_PEER_IPV6 = 0x01
_PEER_AS4 = 0x02
_MP_REACH = 14

#: prefixes looked up and encoded per reactor turn
CHUNK = 2000
#: encoded bytes gathered before one write goes to the thread
WRITE_SIZE = 1 << 20
#: writes queued to the thread at most; the producer waits beyond this
MAX_PENDING_WRITES = 4

_HEADER = struct.Struct("!IHHI")
_SEQ = struct.Struct("!I")
#: entry count 1, then one entry's peer index, originated time, attribute length
_ONE_ENTRY = struct.Struct("!HHIH")
_ENTRY = struct.Struct("!HIH")
_ENTRY_ADDPATH = struct.Struct("!HIIH")

LOC_RIB = "loc-rib"
ADJ_RIB_IN = "adj-rib-in"
SUFFIXES = {"none": "", "gzip": ".gz", "bz2": ".bz2"}


def mrt_record(timestamp: int, subtype: int, body: bytes, mrt_type: int = TABLE_DUMP_V2) -> bytes:
    """One MRT record: the common header (RFC 6396 section 2) and ``body``."""
    return _HEADER.pack(timestamp & 0xFFFFFFFF, mrt_type, subtype, len(body)) + body


@attrs.frozen
class MrtPeer:
    """One entry of the PEER_INDEX_TABLE: whose routes the RIB entries are."""

    bgp_id: str
    address: str
    asn: int


def encode_peer_index(collector_id: str, view: str, peers: Iterable[MrtPeer]) -> bytes:
    """The PEER_INDEX_TABLE body (RFC 6396 section 4.3.1)."""
    name = view.encode("utf-8")
    plist = list(peers)
    out = [socket.inet_aton(collector_id), struct.pack("!H", len(name)), name,
           struct.pack("!H", len(plist))]
    for p in plist:
        address = p.address.partition("%")[0]
        v6 = ":" in address
        as4 = p.asn > 0xFFFF
        flags = (_PEER_IPV6 if v6 else 0) | (_PEER_AS4 if as4 else 0)
        raw = socket.inet_pton(socket.AF_INET6 if v6 else socket.AF_INET, address)
        out.append(bytes((flags,)) + socket.inet_aton(p.bgp_id) + raw
                   + (struct.pack("!I", p.asn) if as4 else struct.pack("!H", p.asn)))
    return b"".join(out)


def encode_attributes(attributes: Any, family: tuple[int, int]) -> bytes:
    """A path's attributes as a RIB entry holds them (RFC 6396 section 4.3.4)."""
    nh = attributes.next_hop
    if family == IPV4_UNICAST and (nh is None or ":" not in nh):
        return attributes.pack_uncached(True, True)
    raw = b""
    if nh is not None:
        raw = socket.inet_pton(socket.AF_INET6 if ":" in nh else socket.AF_INET, nh)
        if attributes.next_hop_ll:
            raw += socket.inet_pton(socket.AF_INET6, attributes.next_hop_ll)
    # Only the next hop's length and the next hop (no AFI/SAFI, no NLRI).
    value = bytes((len(raw),)) + raw
    return attributes.pack_uncached(True, False) + struct.pack("!BBH", 0x90, _MP_REACH, len(value)) + value


def encode_rib(sequence: int, prefix: bytes, entries: Iterable[tuple[int, int, int, bytes]],
               addpath: bool = False) -> bytes:
    """A RIB_IPVx_UNICAST body (RFC 6396 4.3.2; RFC 8050 4 with ``addpath``).

    ``prefix`` is the wire key (length octet and significant octets);
    ``entries`` are (peer index, originated time, path id, encoded attributes).
    """
    elist = list(entries)
    out = [struct.pack("!I", sequence), prefix, struct.pack("!H", len(elist))]
    for index, originated, path_id, attrs_raw in elist:
        if addpath:
            out.append(_ENTRY_ADDPATH.pack(index, originated, path_id, len(attrs_raw)))
        else:
            out.append(_ENTRY.pack(index, originated, len(attrs_raw)))
        out.append(attrs_raw)
    return b"".join(out)


@attrs.frozen
class DumpResult:
    """What one dump wrote."""

    path: str
    table: str
    peers: int
    prefixes: int
    records: int
    bytes: int
    seconds: float


@attrs.define
class _Source:
    """One table a dump reads, and the PEER_INDEX_TABLE index of its peer (-1: the Loc-RIB)."""

    index: int
    table: dict
    #: ADD-PATH tables (keys (path id, prefix)): prefix -> path ids, built at the start
    by_prefix: dict | None = None


def snapshot_sources(rib: Any, table: str, peer_infos: Iterable[Any], local_id: str,
                     local_as: int) -> tuple[list[MrtPeer], dict[tuple[int, int], list[_Source]], dict]:
    """The peer index and, per family, the tables a dump of ``table`` reads.

    Index 0 is this speaker (originated routes).  Loc-RIB: one source, the
    Loc-RIB itself, whose best paths come from any of the RIB's peers, so
    every peer the RIB knows is indexed.  Adj-RIB-In: each given peer's
    accepted table.  Returns (peers, sources, PeerInfo -> index).
    """
    peers: list[MrtPeer] = [MrtPeer(local_id, "0.0.0.0", local_as)]
    sources: dict[tuple[int, int], list[_Source]] = {IPV4_UNICAST: [], IPV6_UNICAST: []}
    index_of: dict[Any, int] = {}
    infos = list(rib.peers()) if table == LOC_RIB else list(peer_infos)
    for pi in infos:
        index_of[pi] = len(peers)
        peers.append(MrtPeer(pi.router_id, pi.address, pi.remote_as))
    for fam in sources:
        if table == LOC_RIB:
            sources[fam].append(_Source(-1, rib.loc_table(fam)))
            continue
        for pi in infos:
            t = rib.adj_rib_in(pi, fam)
            if t:
                sources[fam].append(_Source(index_of[pi], t))
    return peers, sources, index_of


def _prefix_keys(sources: list[_Source]) -> list:
    """The prefixes of ``sources``, each once (ADD-PATH tables get their by_prefix index)."""
    if len(sources) == 1 and next(iter(sources[0].table)).__class__ is not tuple:
        return list(sources[0].table)  # one C-level copy
    keys: dict = {}
    for src in sources:
        if next(iter(src.table)).__class__ is tuple:
            by: dict = {}
            for pid, prefix in src.table:
                by.setdefault(prefix, []).append(pid)
            src.by_prefix = by
            keys.update(dict.fromkeys(by))
        else:
            keys.update(dict.fromkeys(src.table))
    return list(keys)


class _FileSink:
    """The writing end, on the thread: opens (compressed) at the first write."""

    def __init__(self, path: str, compression: str) -> None:
        self.path = path
        self.tmp = path + ".tmp"
        self.compression = compression
        self.f: Any = None

    def write(self, data: bytes) -> None:
        if self.f is None:
            if self.compression == "gzip":
                # Level 6 (gzip's own default): 9 took 2.8 times as long for 3% less (bench/mrt.py).
                self.f = gzip.open(self.tmp, "wb", compresslevel=6)
            elif self.compression == "bz2":
                self.f = bz2.open(self.tmp, "wb")
            else:
                self.f = open(self.tmp, "wb")  # noqa: SIM115
        self.f.write(data)

    def close(self) -> None:
        if self.f is None:
            self.write(b"")
        self.f.close()
        # Complete files only: a collector never reads a half-written dump.
        os.replace(self.tmp, self.path)

    def abort(self) -> None:
        if self.f is not None:
            self.f.close()
        try:
            os.unlink(self.tmp)
        except OSError:
            pass


class MrtDump:
    """One snapshot of one table into one file, chunk by chunk on the reactor.

    ``call_later(delay, fn)`` schedules the chunks; ``defer_to_thread(fn, *a)``
    runs the writes (tests pass synchronous stand-ins); ``wall()`` gives the
    record timestamps.  ``sink`` (write/close/abort) replaces the file.
    """

    def __init__(self, rib: Any, table: str, path: str, peer_infos: Iterable[Any], local_id: str,
                 local_as: int, call_later: Callable[..., Any], defer_to_thread: Callable[..., Any],
                 compression: str = "none", wall: Callable[[], float] = time.time,
                 chunk: int = CHUNK, sink: Any = None) -> None:
        self.rib = rib
        self.table = table
        self.path = path
        self.call_later = call_later
        self.defer_to_thread = defer_to_thread
        self.wall = wall
        self.chunk = chunk
        self.sink = sink if sink is not None else _FileSink(path, compression)
        self.timestamp = int(wall())
        self.peers, self.sources, self.index_of = snapshot_sources(
            rib, table, peer_infos, local_id, local_as)
        self._seq = 0
        self._prefixes = 0
        self._records = 0
        self._bytes = 0
        self._buffer: list[bytes] = []
        self._buffered = 0
        self._pending = 0
        self._tail: defer.Deferred = defer.succeed(None)
        self._failure: Any = None
        self._done: defer.Deferred = defer.Deferred()
        self._started = wall()
        #: per family: the prefixes still to visit (copied at the start)
        self._work: list[tuple[tuple[int, int], list, int]] = []
        #: attribute set -> its encoding, for this dump only (sets are shared by many prefixes)
        self._encoded: dict[tuple[Any, tuple[int, int]], bytes] = {}
        #: family -> source -> attribute set -> a Loc-RIB record's part after
        #: the prefix, this dump only
        self._tails: dict[tuple[int, int], dict[Any, dict[Any, bytes]]] = {}
        #: most prefixes encoded in one reactor turn (the tests' bound), and turns taken
        self.largest_turn = 0
        self.turns = 0

    def start(self) -> defer.Deferred:
        """Begin; the Deferred fires with a :class:`DumpResult` when the file is complete."""
        for fam in (IPV4_UNICAST, IPV6_UNICAST):
            srcs = [s for s in self.sources[fam] if s.table]
            if srcs:
                self._work.append((fam, _prefix_keys(srcs), 0))
        self._add(mrt_record(self.timestamp, PEER_INDEX_TABLE,
                             encode_peer_index(self.peers[0].bgp_id, self.table, self.peers)))
        self.call_later(0, self._step)
        return self._done

    # -- the reactor side ------------------------------------------------

    def _step(self) -> None:
        if self._failure is not None:
            self._finish_failed()
            return
        if self._pending >= MAX_PENDING_WRITES:
            # The thread is behind (a slow disk, bz2): wait for it, queue no more.
            self.call_later(0.01, self._step)
            return
        n = self._encode_chunk()
        self.turns += 1
        self.largest_turn = max(self.largest_turn, n)
        if self._work:
            if self._buffered >= WRITE_SIZE:
                self._flush()
            self.call_later(0, self._step)
            return
        self._encoded = {}
        self._tails = {}
        self._flush()
        self._tail.addCallback(
            lambda _: None if self._failure is not None else self.defer_to_thread(self.sink.close))
        self._tail.addCallbacks(self._finished, self._write_failed)

    def _encode_chunk(self) -> int:
        budget = self.chunk
        done = 0
        while budget > 0 and self._work:
            fam, keys, pos = self._work[0]
            end = min(len(keys), pos + budget)
            if self.table == LOC_RIB:
                self._encode_loc(fam, keys, pos, end)
            else:
                for i in range(pos, end):
                    self._encode_prefix(fam, keys[i])
            done += end - pos
            budget -= end - pos
            if end >= len(keys):
                self._work.pop(0)
            else:
                self._work[0] = (fam, keys, end)
        return done

    def _encode_loc(self, fam: tuple[int, int], keys: list, pos: int, end: int) -> None:
        """The Loc-RIB's records for ``keys[pos:end]``: one entry (the best path) each.

        The hot loop of a full-table dump: the part of a record after the
        prefix (entry count, the entry's head, the attributes) is built once
        per (attribute set, source) and shared by every prefix using it.
        """
        table = self.sources[fam][0].table
        get = table.get
        eligible = self.rib.eligible
        index_of = self.index_of
        # Per family: equal attribute sets encode differently in IPv4 and IPv6.
        tails = self._tails.setdefault(fam, {})
        ts = self.timestamp
        head = _HEADER.pack
        seq_pack = _SEQ.pack
        subtype = _RIB_SUBTYPE[(fam, False)]
        seq = self._seq
        out = self._buffer
        n_bytes = 0
        n = 0
        for i in range(pos, end):
            prefix = keys[i]
            entry = get(prefix)
            if entry is None:
                continue  # withdrawn since the dump began
            best = entry if entry.__class__ is not tuple else entry[0]
            if not eligible(best):
                continue
            info = best.owner.info
            # Nested dicts, not a tuple key: no allocation per prefix (and so
            # no garbage collections triggered by a full table's worth).
            by_attrs = tails.get(info)
            if by_attrs is None:
                by_attrs = tails[info] = {}
            tail = by_attrs.get(best.attrs)
            if tail is None:
                index = 0 if info.address == "local" else index_of.get(info)
                if index is None:
                    continue  # a peer that came up after the dump began
                raw = encode_attributes(best.attrs, fam)
                tail = by_attrs[best.attrs] = _ONE_ENTRY.pack(1, index, ts, len(raw)) + raw
            record = (head(ts & 0xFFFFFFFF, TABLE_DUMP_V2, subtype, 4 + len(prefix) + len(tail))
                      + seq_pack(seq) + prefix + tail)
            seq += 1
            n += 1
            n_bytes += len(record)
            out.append(record)
        self._seq = seq
        self._prefixes += n
        self._records += n
        self._bytes += n_bytes
        self._buffered += n_bytes

    def _encode_prefix(self, fam: tuple[int, int], prefix: bytes) -> None:
        entries: list[tuple[int, int, int, bytes]] = []
        addpath = False
        ts = self.timestamp
        for src in self.sources[fam]:
            t = src.table
            if src.index < 0:
                entry = t.get(prefix)
                if entry is None:
                    continue  # withdrawn since the dump began
                best = entry if entry.__class__ is not tuple else entry[0]
                if not self.rib.eligible(best):
                    continue
                info = best.owner.info
                index = 0 if info.address == "local" else self.index_of.get(info)
                if index is None:
                    continue  # a peer that came up after the dump began
                entries.append((index, ts, 0, self._attrs(best.attrs, fam)))
            elif src.by_prefix is not None:
                for pid in src.by_prefix.get(prefix, ()):
                    path = t.get((pid, prefix))
                    if path is not None:
                        entries.append((src.index, ts, pid, self._attrs(path.attrs, fam)))
                        addpath = True
            else:
                path = t.get(prefix)
                if path is not None:
                    entries.append((src.index, ts, 0, self._attrs(path.attrs, fam)))
        if not entries:
            return
        if addpath:
            # One record kind per prefix: entries without an id get id 0.
            body = encode_rib(self._seq, prefix, entries, True)
        else:
            body = encode_rib(self._seq, prefix, entries)
        self._seq += 1
        self._prefixes += 1
        self._add(mrt_record(ts, _RIB_SUBTYPE[(fam, addpath)], body))

    def _attrs(self, attributes: Any, fam: tuple[int, int]) -> bytes:
        key = (attributes, fam)
        raw = self._encoded.get(key)
        if raw is None:
            raw = self._encoded[key] = encode_attributes(attributes, fam)
        return raw

    def _add(self, record: bytes) -> None:
        self._buffer.append(record)
        self._buffered += len(record)
        self._records += 1
        self._bytes += len(record)

    def _flush(self) -> None:
        data = b"".join(self._buffer)
        self._buffer = []
        self._buffered = 0
        if not data:
            return
        self._pending += 1

        def written(result: Any) -> Any:
            self._pending -= 1
            return result

        self._tail.addCallback(
            lambda _: None if self._failure is not None else self.defer_to_thread(self.sink.write, data))
        self._tail.addBoth(written)
        self._tail.addErrback(self._note_failure)

    def _note_failure(self, failure: Any) -> None:
        # Later writes in the chain are skipped: they see the failure first.
        self._failure = failure

    def _finished(self, _: Any) -> None:
        if self._failure is not None:
            self._finish_failed()
            return
        result = DumpResult(path=self.path, table=self.table, peers=len(self.peers),
                            prefixes=self._prefixes, records=self._records, bytes=self._bytes,
                            seconds=max(0.0, self.wall() - self._started))
        self._done.callback(result)

    def _write_failed(self, failure: Any) -> None:
        self._failure = failure
        self._finish_failed()

    def _finish_failed(self) -> None:
        if self._done.called:
            return
        try:
            self.sink.abort()
        except Exception:  # noqa: BLE001 - the write's own error is the one reported
            pass
        self._done.errback(self._failure)


def dump_file_name(pattern: str, table: str, when: float, compression: str) -> str:
    """``pattern`` with ``{table}`` and the strftime codes (UTC) expanded, and the suffix."""
    name = time.strftime(pattern.replace("{table}", table), time.gmtime(when))
    return name + SUFFIXES[compression]


class MrtScheduler:
    """The ``[mrt]`` schedule: each table dumped once per ``interval``, one file each time.

    Dumps start on multiples of ``interval`` (UTC), as collectors rotate
    their files, so the names line up with the period they cover.
    ``dump(table, path, compression)`` starts one dump and returns its
    Deferred (the monitor service's).  A dump still running when the next
    is due makes that one skipped, with a warning.
    """

    def __init__(self, mrt: Any, dump: Callable[[str, str, str], defer.Deferred],
                 call_later: Callable[..., Any], wall: Callable[[], float] = time.time) -> None:
        self.mrt = mrt
        self.dump = dump
        self.call_later = call_later
        self.wall = wall
        self._call: Any = None
        self.running = 0
        self.results: list[DumpResult] = []
        self.skipped = 0

    def start(self) -> None:
        self._schedule()

    def stop(self) -> None:
        if self._call is not None and self._call.active():
            self._call.cancel()
        self._call = None

    def _schedule(self) -> None:
        now = self.wall()
        interval = self.mrt.interval
        due = (int(now) // interval + 1) * interval
        self._call = self.call_later(max(0.0, due - now), self._fire, due)

    def _fire(self, due: float) -> None:
        self._call = None
        self._schedule()
        if self.running:
            self.skipped += 1
            log.warn("mrt: the previous dump is still running: skipping the dump due at {due}",
                     due=time.strftime("%Y-%m-%dT%H:%M:%SZ", time.gmtime(due)))
            return
        os.makedirs(self.mrt.directory, exist_ok=True)
        for table in self.mrt.tables:
            path = os.path.join(self.mrt.directory,
                                dump_file_name(self.mrt.file_pattern, table, due, self.mrt.compression))
            self.running += 1
            d = self.dump(table, path, self.mrt.compression)
            d.addCallbacks(self._done, self._failed, errbackArgs=(path,))

    def _done(self, result: DumpResult) -> None:
        self.running -= 1
        self.results = (self.results + [result])[-16:]
        log.info("mrt: wrote {path}: {prefixes} prefixes, {bytes} octets in {seconds:.1f}s",
                 path=result.path, prefixes=result.prefixes, bytes=result.bytes,
                 seconds=result.seconds)

    def _failed(self, failure: Any, path: str) -> None:
        self.running -= 1
        log.error("mrt: cannot write {path}: {error}", path=path, error=failure.getErrorMessage())
