"""MRT BGP4MP log of received messages and session state changes (RFC 6396 4.4, RFC 8050).

Records are BGP4MP_ET (type 17: the common header and a microsecond
timestamp, RFC 6396 section 3): BGP4MP_MESSAGE_AS4 (subtype 4) for each
message a peer sent us, whole, marker included, as it came off the wire;
BGP4MP_MESSAGE_AS4_ADDPATH (subtype 9, RFC 8050 section 3) when ADD-PATH
receive was negotiated for a family of the session, so that a reader parses
its NLRI with path identifiers; BGP4MP_STATE_CHANGE_AS4 (subtype 5) for each
FSM state change, with the RFC 4271 section 8.2.2 state numbers.

The log is fed by the sessions' message tap (``message``) and the session
history's watchers (``state_changed``), both on the reactor thread: each
record is packed and appended to a buffer there; a timer hands the buffer
to a worker thread every second (or at 1 MB), which writes and compresses
it.  Routing never waits for the disk: past ``MAX_PENDING`` octets queued
to the thread, records are dropped and counted.  One file per ``[mrt]
interval`` (rotation by time): ``updates`` for ``{table}`` in the file
pattern, written as ``NAME.tmp`` and renamed when the interval ends.
"""

from __future__ import annotations

import os
import socket
import struct
import time
from collections.abc import Callable
from typing import Any

from twisted.internet import defer
from twisted.logger import Logger

from bgpd.monitor.mrt import _FileSink, dump_file_name
from bgpd.wire.address import normalize_address

__all__ = ["BGP4MP_ET", "UpdatesLog", "encode_message", "encode_state_change"]

log = Logger()

BGP4MP_ET = 17
STATE_CHANGE_AS4 = 5
MESSAGE_AS4 = 4
MESSAGE_AS4_ADDPATH = 9
_ET_HEADER = struct.Struct("!IHHII")
_AS4_HEAD = struct.Struct("!IIHH")
_STATES = struct.Struct("!HH")

#: octets gathered before a write goes to the thread (else once a second)
WRITE_SIZE = 1 << 20
FLUSH_INTERVAL = 1.0
#: octets queued to the thread at most; beyond, records are dropped (and counted)
MAX_PENDING = 64 << 20


def _et_record(timestamp: float, subtype: int, body: bytes) -> bytes:
    secs = int(timestamp)
    usecs = int((timestamp - secs) * 1_000_000) % 1_000_000
    # The length counts the microsecond field (RFC 6396 section 3).
    return _ET_HEADER.pack(secs & 0xFFFFFFFF, BGP4MP_ET, subtype, len(body) + 4, usecs) + body


def _peer_head(peer_as: int, local_as: int, peer_ip: str, local_ip: str) -> bytes:
    v6 = ":" in peer_ip
    fam = socket.AF_INET6 if v6 else socket.AF_INET
    if (":" in local_ip) != v6:
        local_ip = "::" if v6 else "0.0.0.0"  # an address of the other family cannot be written
    return (_AS4_HEAD.pack(peer_as, local_as, 0, 2 if v6 else 1)
            + socket.inet_pton(fam, peer_ip) + socket.inet_pton(fam, local_ip))


def encode_message(timestamp: float, peer_as: int, local_as: int, peer_ip: str, local_ip: str,
                   message: bytes, addpath: bool = False) -> bytes:
    """A BGP4MP_ET MESSAGE_AS4 (or MESSAGE_AS4_ADDPATH) record of one whole BGP message."""
    return _et_record(timestamp, MESSAGE_AS4_ADDPATH if addpath else MESSAGE_AS4,
                      _peer_head(peer_as, local_as, peer_ip, local_ip) + message)


def encode_state_change(timestamp: float, peer_as: int, local_as: int, peer_ip: str,
                        local_ip: str, old: int, new: int) -> bytes:
    """A BGP4MP_ET STATE_CHANGE_AS4 record (states numbered as RFC 4271 8.2.2 and RFC 6396 4.4.1)."""
    return _et_record(timestamp, STATE_CHANGE_AS4,
                      _peer_head(peer_as, local_as, peer_ip, local_ip) + _STATES.pack(old, new))


class UpdatesLog:
    """The ``[mrt] updates`` log: a SessionTap-shaped receiver and a history watcher.

    ``call_later`` and ``wall`` come from the reactor; ``defer_to_thread``
    runs the writes (tests pass synchronous stand-ins).
    """

    def __init__(self, mrt: Any, call_later: Callable[..., Any], defer_to_thread: Callable[..., Any],
                 wall: Callable[[], float] = time.time) -> None:
        self.mrt = mrt
        self.call_later = call_later
        self.defer_to_thread = defer_to_thread
        self.wall = wall
        self._buffer: list[bytes] = []
        self._buffered = 0
        self._pending = 0
        self._tail: defer.Deferred = defer.succeed(None)
        self._sink: _FileSink | None = None
        self._period_end = 0.0
        self._timer: Any = None
        #: peer -> (connection, packed head, add-path) for the current connection
        self._heads: dict[Any, tuple[Any, bytes, bool]] = {}
        self.records = 0
        self.dropped = 0
        self.files: list[str] = []
        self.running = False

    # -- lifecycle --------------------------------------------------------

    def start(self) -> None:
        self.running = True
        self._rotate()
        self._timer = self.call_later(FLUSH_INTERVAL, self._tick)

    def stop(self) -> defer.Deferred:
        """Write what is buffered, close the file; fires when it is on disk."""
        self.running = False
        if self._timer is not None and self._timer.active():
            self._timer.cancel()
        self._timer = None
        self._flush()
        self._close_current()
        return self._tail

    def _tick(self) -> None:
        self._timer = self.call_later(FLUSH_INTERVAL, self._tick)
        if self.wall() >= self._period_end:
            self._flush()
            self._close_current()
            self._rotate()
        else:
            self._flush()

    def _rotate(self) -> None:
        now = self.wall()
        interval = self.mrt.interval
        start = (int(now) // interval) * interval
        self._period_end = start + interval
        name = dump_file_name(self.mrt.file_pattern, "updates", start, self.mrt.compression)
        path = os.path.join(self.mrt.directory, name)
        if os.path.exists(path):
            # A restart within the interval: a new file, not the old one overwritten.
            path = f"{path}.{int(now)}"
        self._sink = sink = _FileSink(path, self.mrt.compression)
        self.files.append(path)
        directory = self.mrt.directory
        self._tail.addCallback(lambda _: self.defer_to_thread(os.makedirs, directory, 0o755, True))
        self._tail.addErrback(self._failed, sink.path)
        log.info("mrt: logging received messages and state changes to {path}", path=path)

    def _close_current(self) -> None:
        sink, self._sink = self._sink, None
        if sink is None:
            return
        self._tail.addCallback(lambda _: self.defer_to_thread(sink.close))
        self._tail.addErrback(self._failed, sink.path)

    def _failed(self, failure: Any, path: str) -> None:
        log.error("mrt: cannot write {path}: {error}", path=path, error=failure.getErrorMessage())

    # -- records, on the reactor thread -------------------------------------

    def _add(self, record: bytes) -> None:
        if self._pending + self._buffered > MAX_PENDING or not self.running:
            self.dropped += 1
            return
        self._buffer.append(record)
        self._buffered += len(record)
        self.records += 1
        if self._buffered >= WRITE_SIZE:
            self._flush()

    def _flush(self) -> None:
        if not self._buffer or self._sink is None:
            return
        data = b"".join(self._buffer)
        self._buffer = []
        self._buffered = 0
        self._pending += len(data)
        sink = self._sink

        def written(result: Any) -> Any:
            self._pending -= len(data)
            return result

        self._tail.addCallback(lambda _: self.defer_to_thread(sink.write, data))
        self._tail.addBoth(written)
        self._tail.addErrback(self._failed, sink.path)

    def _head(self, peer: Any) -> tuple[bytes, bool]:
        proto = peer.protocol_instance
        hit = self._heads.get(peer)
        if hit is not None and hit[0] is proto:
            return hit[1], hit[2]
        local = "0.0.0.0"
        if proto is not None and proto.transport is not None:
            try:
                local = normalize_address(proto.transport.getHost().host, keep_zone=False)
            except (AttributeError, ValueError):
                pass
        remote = normalize_address(peer.config.address, keep_zone=False)
        head = _peer_head(peer.config.remote_as, peer.config.local_as, remote, local)
        info = peer.session_info
        addpath = bool(info is not None and info.negotiated.addpath_rx)
        if info is not None:
            # Only once the OPENs are done is ADD-PATH known: keep it from then on.
            self._heads[peer] = (proto, head, addpath)
        return head, addpath

    def message(self, peer: Any, direction: str, timestamp: float, data: bytes) -> None:
        """The session tap's message callback: received messages are logged."""
        if direction != "in":
            return
        head, addpath = self._head(peer)
        self._add(_et_record(timestamp, MESSAGE_AS4_ADDPATH if addpath else MESSAGE_AS4, head + data))

    def session_up(self, peer: Any, up: Any) -> None:
        self._heads.pop(peer, None)

    def session_down(self, peer: Any, down: Any) -> None:
        self._heads.pop(peer, None)

    def state_changed(self, peer: Any, old: Any, new: Any, reason: str) -> None:
        """A ``watch_state`` callback: one STATE_CHANGE_AS4 record."""
        head, _ = self._head(peer)
        self._add(_et_record(self.wall(), STATE_CHANGE_AS4, head + _STATES.pack(int(old), int(new))))
