"""Bench receiver: count the distinct prefixes a BGP peer sends, as cheaply as possible.

A minimal BGP-4 speaker (RFC 4271) for ``bench/rib_scale.py``.  It either
connects to the router under test or listens for a feeder (the "wire
baseline"), does the OPEN exchange (bench/bgp_speaker.py), answers with
KEEPALIVEs, and walks each UPDATE's framing decoding no attribute but the
start of AS_PATH (RFC 4271 section 4.3): the Withdrawn Routes and NLRI fields, and the NLRI of
MP_REACH_NLRI (type 14) and MP_UNREACH_NLRI (type 15) (RFC 4760 sections 3
and 4).  No ADD-PATH is negotiated, so every NLRI is length + prefix octets.

It keeps one map of prefix keys per family (to the AS each came through,
see ``Counter``); announcements add or replace, withdrawals remove.  When
the maps hold ``--expect-v4`` and ``--expect-v6`` prefixes (and, given
``--feed``, exactly the prefixes of the feeder's file) it reports
``complete`` with the monotonic time; it reports ``progress`` about once a
second (with ``whole``: the maps hold exactly the expected prefixes right
now, each through ``--expect-via`` when given, so a later withdrawal or a
best-path change the router never sent shows), and keeps the session up
until it is stopped.

With ``--churn`` (bench/churn.py) it also reads the Large Communities
(RFC 8092) of what it receives, for the feeder's churn stamps, and reports
``churn`` events: per step, the changes seen and how late.  It reports the
largest gap between two reads from the router (``gap`` events; the router's
KEEPALIVEs must keep coming, RFC 4271 section 4.4).

    python3 -m bench.bgp_sink --connect 192.0.2.2 --asn 65002 --expect-v4 N --expect-v6 M
    python3 -m bench.bgp_sink --listen 192.0.2.3 --asn 65002 --expect-v4 N --expect-v6 M
"""

from __future__ import annotations

import argparse
import os
import socket
import sys
import time

sys.path.insert(0, os.path.join(os.path.dirname(os.path.abspath(__file__)), ".."))

from bench.bgp_speaker import (  # noqa: E402
    KEEPALIVE_BYTES,
    SessionError,
    accept_one,
    connect,
    emit,
    handshake,
)
from bench.churn import MARK, ChurnStats  # noqa: E402
from bgpd.wire.notification import Notification  # noqa: E402

_AS_PATH = 2
_MP_REACH = 14
_MP_UNREACH = 15
_LARGE_COMMUNITIES = 32


class Counter:
    """Distinct prefixes per family, fed raw UPDATE bodies.

    ``v4`` and ``v6`` map each prefix held to the AS it came through: the
    second AS of the AS_PATH (the first is the router's own, prepended on
    eBGP export, RFC 4271 5.1.2), or the only one.  Checking that against
    the path the router should have chosen shows a best-path change the
    router failed to send, which a prefix count alone cannot see.
    """

    def __init__(self) -> None:
        self.v4: dict[bytes, int] = {}
        self.v6: dict[bytes, int] = {}
        self.updates = 0
        self.end_of_rib: set[int] = set()
        #: churn stamps seen (bench/churn.py)
        self.churn = ChurnStats()

    def _family(self, afi: int) -> dict[bytes, int] | None:
        return self.v4 if afi == 1 else self.v6 if afi == 2 else None

    def update(self, buf: bytes, i: int, end: int) -> None:
        """Account one UPDATE whose body is ``buf[i:end]`` (header already stripped)."""
        self.updates += 1
        wlen = (buf[i] << 8) | buf[i + 1]
        i += 2
        if wlen:
            _remove(self.v4, _walk(buf, i, i + wlen))
        i += wlen
        alen = (buf[i] << 8) | buf[i + 1]
        i += 2
        aend = i + alen
        if not wlen and not alen and aend == end:
            self.end_of_rib.add(1)
        via = 0
        reach: tuple[dict[bytes, int], list[bytes]] | None = None
        stamp: tuple[int, int] | None = None
        while i < aend:
            flags = buf[i]
            code = buf[i + 1]
            if flags & 0x10:
                length = (buf[i + 2] << 8) | buf[i + 3]
                i += 4
            else:
                length = buf[i + 2]
                i += 3
            if code == _AS_PATH:
                via = _via(buf, i, i + length)
            elif code == _MP_REACH:
                afi = (buf[i] << 8) | buf[i + 1]
                nhlen = buf[i + 3]
                fam = self._family(afi)
                if fam is not None and buf[i + 2] == 1:
                    reach = (fam, _walk(buf, i + 5 + nhlen, i + length))
            elif code == _LARGE_COMMUNITIES:
                for j in range(i, i + length - 11, 12):
                    if int.from_bytes(buf[j:j + 4], "big") == MARK:
                        stamp = (int.from_bytes(buf[j + 4:j + 8], "big"),
                                 int.from_bytes(buf[j + 8:j + 12], "big"))
            elif code == _MP_UNREACH:
                afi = (buf[i] << 8) | buf[i + 1]
                fam = self._family(afi)
                if length == 3:
                    self.end_of_rib.add(afi)
                elif fam is not None and buf[i + 2] == 1:
                    _remove(fam, _walk(buf, i + 3, i + length))
            i += length
        # AS_PATH may come after MP_REACH_NLRI: add once every attribute is read.
        announced = 0
        if reach is not None:
            reach[0].update(dict.fromkeys(reach[1], via))
            announced = len(reach[1])
        if aend < end:
            nlri = _walk(buf, aend, end)
            self.v4.update(dict.fromkeys(nlri, via))
            announced += len(nlri)
        if stamp is not None:
            # The router packs changes with equal attributes (the same stamp)
            # into one UPDATE: each prefix is one change seen.
            self.churn.seen(stamp[0], stamp[1], announced)


def _via(buf: bytes, i: int, end: int) -> int:
    # The second AS of the path (4-octet ASNs, RFC 6793), or the only one;
    # 0 for an empty path.
    asns: list[int] = []
    while i + 2 <= end and len(asns) < 2:
        n = buf[i + 1]
        j = i + 2
        for _ in range(n):
            if len(asns) == 2 or j + 4 > end:
                break
            asns.append(int.from_bytes(buf[j:j + 4], "big"))
            j += 4
        i += 2 + 4 * n
    return asns[1] if len(asns) > 1 else asns[0] if asns else 0


def _walk(buf: bytes, i: int, end: int) -> list[bytes]:
    # The hot loop: one slice per prefix.
    out = []
    while i < end:
        j = i + 1 + ((buf[i] + 7) >> 3)
        out.append(buf[i:j])
        i = j
    return out


def _remove(fam: dict[bytes, int], keys: list[bytes]) -> None:
    pop = fam.pop
    for k in keys:
        pop(k, None)


def expected_sets(path: str) -> tuple[set[bytes], set[bytes]]:
    """The prefixes a feeder's prepared file announces, per family (read before connecting)."""
    with open(path, "rb") as f:
        feed = f.read()
    counter = Counter()
    pos = 0
    while pos < len(feed):
        length = (feed[pos + 16] << 8) | feed[pos + 17]
        if feed[pos + 18] == 2:
            counter.update(feed, pos + 19, pos + length)
        pos += max(length, 19)
    return set(counter.v4), set(counter.v6)


def run(sock: socket.socket, leftover: bytes, hold: int, expect4: int, expect6: int,
        max_seconds: float, expected: tuple[set[bytes], set[bytes]] | None = None,
        expect_via: int | None = None) -> int:
    """Receive until stopped (or ``max_seconds``); return an exit status.

    With ``expected`` the sink is complete only when it holds exactly those
    prefixes (checked once the counts match, then about once a second), so a
    router sending wrong prefixes cannot look converged.  With
    ``expect_via`` the ``progress`` events count as ``stale`` the prefixes
    held through any other AS (see ``Counter``), and ``whole`` needs none.
    """
    counter = Counter()
    last_check = 0.0
    # Whether the sets hold exactly the expected prefixes, and at which
    # UPDATE count that was last worked out (an O(n) check, so only when
    # something arrived since).
    whole = False
    whole_at = -1
    stale = 0
    keepalive_every = hold / 3 if hold else None
    last_sent = time.monotonic()
    last_progress = 0.0
    complete = False
    buf = leftover
    pos = 0
    sock.settimeout(1.0)
    deadline = time.monotonic() + max_seconds
    first = None
    last_rx = time.monotonic()
    max_gap = 0.0
    while True:
        n = len(buf)
        while n - pos >= 19:
            length = (buf[pos + 16] << 8) | buf[pos + 17]
            if n - pos < length:
                break
            msg_type = buf[pos + 18]
            if msg_type == 2:
                if first is None:
                    first = time.monotonic()
                    emit("first_update")
                counter.update(buf, pos + 19, pos + length)
            elif msg_type == 3:
                emit("notification", reason=Notification.unpack(buf[pos + 19:pos + length]).describe(),
                     v4=len(counter.v4), v6=len(counter.v6))
                return 1
            elif length < 19:
                emit("error", reason=f"bad message length {length}")
                return 1
            pos += length
        now = time.monotonic()
        if not complete and len(counter.v4) >= expect4 and len(counter.v6) >= expect6:
            if expected is None:
                complete = True
            elif now - last_check >= 1.0 or not last_check:
                # Set comparisons are O(n): only now and then, not per read.
                last_check = now
                stray = len(counter.v4.keys() - expected[0]) + len(counter.v6.keys() - expected[1])
                complete = expected[0] <= counter.v4.keys() and expected[1] <= counter.v6.keys()
                if stray:
                    emit("stray", count=stray, v4=len(counter.v4), v6=len(counter.v6))
            if complete:
                emit("complete", t=now, v4=len(counter.v4), v6=len(counter.v6),
                     updates=counter.updates)
        if now - last_progress >= 1.0:
            last_progress = now
            if whole_at != counter.updates:
                whole_at = counter.updates
                whole = len(counter.v4) == expect4 and len(counter.v6) == expect6 and (
                    expected is None or (expected[0] <= counter.v4.keys()
                                         and expected[1] <= counter.v6.keys()))
                if expect_via is not None and (whole or not expected):
                    stale = sum(1 for fam in (counter.v4, counter.v6) for v in fam.values()
                                if v != expect_via)
                    whole = whole and not stale
            emit("progress", t=now, v4=len(counter.v4), v6=len(counter.v6),
                 updates=counter.updates, eor=sorted(counter.end_of_rib), whole=whole, stale=stale)
            if counter.churn.changed:
                emit("churn", steps=counter.churn.report())
        if keepalive_every is not None and now - last_sent >= keepalive_every:
            sock.sendall(KEEPALIVE_BYTES)
            last_sent = now
        if now >= deadline:
            emit("timeout", v4=len(counter.v4), v6=len(counter.v6))
            return 0 if complete else 1
        try:
            data = sock.recv(1 << 20)
        except TimeoutError:
            continue
        if not data:
            emit("closed", v4=len(counter.v4), v6=len(counter.v6))
            return 0 if complete else 1
        got = time.monotonic()
        if got - last_rx > max_gap:
            max_gap = got - last_rx
            if max_gap >= 1.0:
                emit("gap", s=round(max_gap, 3))
        last_rx = got
        # bytes, not bytearray: prefix slices must be hashable dict keys.
        buf = buf[pos:] + data if pos < n else data
        pos = 0


def main(argv: list[str] | None = None) -> int:
    ap = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    where = ap.add_mutually_exclusive_group(required=True)
    where.add_argument("--connect", metavar="ADDR", help="connect to the router at ADDR")
    where.add_argument("--listen", metavar="ADDR", help="listen on ADDR for one connection")
    ap.add_argument("--port", type=int, default=179)
    ap.add_argument("--asn", type=int, default=65002)
    ap.add_argument("--router-id", default="192.0.2.3")
    ap.add_argument("--hold-time", type=int, default=90)
    ap.add_argument("--expect-v4", type=int, required=True)
    ap.add_argument("--expect-v6", type=int, required=True)
    ap.add_argument("--feed", help="the feeder's prepared file: complete only on exactly its prefixes")
    ap.add_argument("--expect-via", type=int, metavar="ASN",
                    help="every prefix should come through this AS (second in AS_PATH)")
    ap.add_argument("--connect-timeout", type=float, default=60.0)
    ap.add_argument("--max-seconds", type=float, default=7200.0,
                    help="exit after this long even if never stopped")
    args = ap.parse_args(argv)
    expected = expected_sets(args.feed) if args.feed else None
    try:
        if args.connect:
            sock = connect(args.connect, args.port, args.connect_timeout)
        else:
            sock = accept_one(args.listen, args.port, args.connect_timeout)
        with sock:
            peer, hold, leftover = handshake(sock, args.asn, args.router_id, args.hold_time)
            emit("established", peer_as=peer.asn, hold=hold)
            return run(sock, leftover, hold, args.expect_v4, args.expect_v6, args.max_seconds,
                       expected, args.expect_via)
    except (SessionError, OSError) as e:
        emit("error", reason=str(e))
        return 1


if __name__ == "__main__":
    sys.exit(main())
