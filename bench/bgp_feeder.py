"""Bench feeder: send a whole Internet-shaped table to a BGP peer as fast as it takes it.

A minimal BGP-4 speaker (RFC 4271) for ``bench/rib_scale.py``, in two steps:

``prepare``  builds the table (``bench.synthetic``'s shape: about 1,040,000
             IPv4 prefixes over 260,000 AS paths and 225,000 IPv6 prefixes
             over 140,000 paths at scale 1) and encodes it once into a file of
             complete UPDATE messages (RFC 4271 section 4.3; IPv6 in
             MP_REACH_NLRI, RFC 4760), followed by End-of-RIB for both
             families (RFC 4724 section 2).  Not timed.
``send``     connects, does the OPEN exchange (bench/bgp_speaker.py), notes the
             time just before the first UPDATE byte is written, then writes the
             file as fast as the socket takes it while reading (and
             discarding) what the peer sends and sending KEEPALIVEs between
             whole messages when due, so the session stays up until stopped.
             ``--go-file F`` holds the table back until F exists (several
             feeders starting at one moment); ``--pace S`` spreads it over
             at least S seconds.  ``--churn-go F``: once the table is written
             and F exists, churn (``bench/churn.py``) at doubling rates until
             ``--churn-stop`` exists or ``--churn-max`` is passed.

It reports the largest gap between two reads of what the peer sent (``gap``
events: the peer's KEEPALIVEs must keep coming, RFC 4271 section 4.4).

    python3 -m bench.bgp_feeder prepare --scale 1.0 --out /tmp/feed.bin
    python3 -m bench.bgp_feeder send --feed /tmp/feed.bin --connect 192.0.2.2 --asn 65001

The table is ``bench.synthetic.scaled(scale)`` with the feeder's own
address as next hop, less the prefixes in special-purpose space (127/8,
10/8, 169.254/16, ...): no real table carries them, and BIRD drops 127/8 and
169.254/16 as bogus, so with them in the table BIRD would never deliver it all.
"""

from __future__ import annotations

import argparse
import ipaddress
import json
import os
import select
import socket
import sys
import time
from collections import deque
from dataclasses import dataclass, field

sys.path.insert(0, os.path.join(os.path.dirname(os.path.abspath(__file__)), ".."))

from bench import synthetic  # noqa: E402
from bench.bgp_speaker import (  # noqa: E402
    KEEPALIVE_BYTES,
    SessionError,
    connect,
    emit,
    handshake,
)
from bench.churn import Churn, v4_routes  # noqa: E402
from bgpd.wire.negotiated import Negotiated  # noqa: E402
from bgpd.wire.notification import Notification  # noqa: E402
from bgpd.wire.update import pack_end_of_rib, pack_reach  # noqa: E402

# Special-purpose IPv4 space (RFC 6890 and friends) that no real table
# carries and that routers may refuse: BIRD drops 127/8 and 169.254/16 as
# bogus routes, so a table holding them never "converges" through BIRD.  The
# lab's own link (192.0.2.0/24) is in the list too.
_V4_SPECIAL = tuple(
    (int(net.network_address), int(net.broadcast_address) + 1)
    for net in map(ipaddress.IPv4Network, (
        "0.0.0.0/8", "10.0.0.0/8", "100.64.0.0/10", "127.0.0.0/8", "169.254.0.0/16",
        "172.16.0.0/12", "192.0.0.0/24", "192.0.2.0/24", "192.168.0.0/16", "198.18.0.0/15",
        "198.51.100.0/24", "203.0.113.0/24", "224.0.0.0/3")))
_V6_GLOBAL = (0x2000 << 112, 0x4000 << 112)  # 2000::/3


def routable(afi: int, key: bytes) -> bool:
    """False for a prefix key in special-purpose space (IPv4) or outside 2000::/3 (IPv6)."""
    bits = 32 if afi == 1 else 128
    lo = int.from_bytes(key[1:].ljust(bits // 8, b"\0"), "big")
    hi = lo + (1 << (bits - key[0]))
    if afi != 1:
        return _V6_GLOBAL[0] <= lo and hi <= _V6_GLOBAL[1]
    return not any(lo < s_hi and s_lo < hi for s_lo, s_hi in _V4_SPECIAL)


def internet_table(scale: float, next_hop4: str, next_hop6: str, first_as: int = 65001,
                   seed: int = 1) -> tuple[list, list]:
    """``synthetic.scaled`` with our next hops, less the prefixes ``routable`` refuses.

    Groups left empty are dropped, so the table is a little smaller than the
    nominal figures (about 1 % of IPv4); callers count what is left.
    """
    v4, v6 = synthetic.scaled(scale, seed=seed, first_as=first_as, next_hop4=next_hop4,
                              next_hop6=next_hop6)
    out = []
    for afi, groups in ((1, v4), (2, v6)):
        kept = []
        for attrs, prefixes in groups:
            ok = [k for k in prefixes if routable(afi, k)]
            if ok:
                kept.append((attrs, ok))
        out.append(kept)
    return out[0], out[1]


def prepare(scale: float, out: str, next_hop4: str, next_hop6: str, first_as: int) -> dict:
    """Encode the table into ``out``; return its figures (prefixes per family, messages, bytes)."""
    v4, v6 = internet_table(scale, next_hop4, next_hop6, first_as)
    neg = Negotiated()
    n_msgs = 0
    n_bytes = 0
    with open(out, "wb") as f:
        for afi, groups in ((1, v4), (2, v6)):
            for attrs, prefixes in groups:
                for msg in pack_reach(afi, 1, attrs, prefixes, neg):
                    f.write(msg)
                    n_msgs += 1
                    n_bytes += len(msg)
        for afi in (1, 2):
            eor = pack_end_of_rib(afi, 1)
            f.write(eor)
            n_msgs += 1
            n_bytes += len(eor)
    return {"v4": sum(len(p) for _, p in v4), "v6": sum(len(p) for _, p in v6),
            "v4_paths": len(v4), "v6_paths": len(v6), "messages": n_msgs, "bytes": n_bytes}


def _chunks(feed: bytes, target: int = 65536) -> deque:
    # Runs of whole messages, so a KEEPALIVE can go between two of them.
    out: deque = deque()
    view = memoryview(feed)
    start = pos = 0
    n = len(feed)
    while pos < n:
        length = (feed[pos + 16] << 8) | feed[pos + 17]
        if length < 19:
            raise ValueError(f"bad message length {length} at offset {pos} of the feed")
        pos += length
        if pos - start >= target:
            out.append(view[start:pos])
            start = pos
    if start < n:
        out.append(view[start:n])
    return out


@dataclass
class ChurnPlan:
    """``--churn-*``: when to start and stop, and the rates (``bench/churn.py``)."""

    go_file: str
    stop_file: str
    start: float
    max_rate: float
    step: float
    #: ``(attribute block, prefix key)`` of the feed's IPv4 routes, found
    #: before the session comes up: decoding the whole feed takes seconds,
    #: and done in the send loop it kept the feeder from reading the router
    #: for that long, which then showed as a keepalive gap of the router's
    routes: list = field(default_factory=list)


def send(sock: socket.socket, leftover: bytes, hold: int, feed: bytes, max_seconds: float,
         go_file: str | None = None, pace: float = 0.0, churn_plan: ChurnPlan | None = None) -> int:
    """Write ``feed``, then keep the session up; return an exit status.

    With ``go_file`` nothing is written until that file exists, so several
    feeders can start their tables at one moment.  With ``pace`` the table
    is spread over at least that many seconds (chunk K of N not before
    K/N of it), so a load lasts about as long on any machine.
    """
    chunks = _chunks(feed, 16384 if pace else 65536)
    n_chunks = len(chunks)
    queue: deque = deque() if go_file else chunks
    paced_from: float | None = None
    keepalive_every = hold / 3 if hold else None
    sock.setblocking(False)
    cur: memoryview | None = None
    cur_is_feed = False
    sent = 0
    started = False
    reported = False
    last_sent = time.monotonic()
    deadline = last_sent + max_seconds
    inbuf = leftover
    churn: Churn | None = None
    last_rx = last_sent
    max_gap = 0.0
    for _ in range(1 << 40):
        now = time.monotonic()
        if now >= deadline:
            emit("timeout", sent=sent)
            return 0
        if (churn_plan is not None and churn is None and reported and cur is None
                and os.path.exists(churn_plan.go_file)):
            churn = Churn(churn_plan.routes, churn_plan.start, churn_plan.max_rate, churn_plan.step)
            emit("churn_start", routes=len(churn.routes))
        if churn is not None and not churn.done and cur is None:
            if now < churn.pause_until and os.path.exists(churn_plan.stop_file):
                emit(**churn.stop())
            else:
                data, notes = churn.batch(now)
                for note in notes:
                    emit(**note)
                if data:
                    cur, cur_is_feed = memoryview(data), False
        if go_file and os.path.exists(go_file):
            go_file = None
            queue = chunks
            emit("go")
        if cur is None:
            if keepalive_every is not None and now - last_sent >= keepalive_every:
                cur, cur_is_feed = memoryview(KEEPALIVE_BYTES), False
            elif queue:
                if paced_from is None:
                    paced_from = now
                if not pace or now >= paced_from + pace * (n_chunks - len(queue)) / n_chunks:
                    cur, cur_is_feed = queue.popleft(), True
        want_write = [sock] if cur is not None else []
        waiting = go_file or (pace and queue and cur is None) or (churn is not None and not churn.done)
        readable, writable, _ = select.select([sock], want_write, [], 0.01 if waiting else 0.5)
        if readable:
            try:
                data = sock.recv(1 << 20)
            except BlockingIOError:
                data = None
            if data == b"":
                emit("closed", sent=sent)
                return 1
            if data:
                if now - last_rx > max_gap:
                    max_gap = now - last_rx
                    if max_gap >= 1.0:
                        emit("gap", s=round(max_gap, 3))
                last_rx = now
                inbuf += data
                inbuf, note = _drain(inbuf)
                if note:
                    emit("notification", reason=note, sent=sent)
                    return 1
        if writable and cur is not None:
            if not started and cur_is_feed:
                started = True
                emit("first_update")
            try:
                n = sock.send(cur)
            except BlockingIOError:
                n = 0
            if cur_is_feed:
                sent += n
            last_sent = time.monotonic()
            cur = cur[n:] if n < len(cur) else None
            if cur is None and not queue and started and not reported:
                reported = True
                emit("sent", bytes=sent)
    return 0


def _drain(buf: bytes) -> tuple[bytes, str | None]:
    # Frame what the peer sent; only a NOTIFICATION matters to the feeder.
    pos = 0
    n = len(buf)
    while n - pos >= 19:
        length = (buf[pos + 16] << 8) | buf[pos + 17]
        if length < 19:
            return b"", f"bad message length {length}"
        if n - pos < length:
            break
        if buf[pos + 18] == 3:
            return b"", Notification.unpack(buf[pos + 19:pos + length]).describe()
        pos += length
    return buf[pos:], None


def main(argv: list[str] | None = None) -> int:
    ap = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    sub = ap.add_subparsers(dest="cmd", required=True)
    p = sub.add_parser("prepare", help="build and encode the table into a file")
    p.add_argument("--scale", type=float, default=1.0)
    p.add_argument("--out", required=True)
    p.add_argument("--next-hop4", default="192.0.2.1")
    p.add_argument("--next-hop6", default="2001:db8::1")
    p.add_argument("--asn", type=int, default=65001)
    s = sub.add_parser("send", help="connect and send a prepared file")
    s.add_argument("--feed", required=True)
    s.add_argument("--connect", required=True, metavar="ADDR")
    s.add_argument("--port", type=int, default=179)
    s.add_argument("--asn", type=int, default=65001)
    s.add_argument("--router-id", default="192.0.2.1")
    s.add_argument("--hold-time", type=int, default=90)
    s.add_argument("--connect-timeout", type=float, default=60.0)
    s.add_argument("--max-seconds", type=float, default=7200.0,
                   help="exit after this long even if never stopped")
    s.add_argument("--go-file", help="once established, wait for this file to exist before sending")
    s.add_argument("--pace", type=float, default=0.0, metavar="SECONDS",
                   help="spread the table over at least this long (default: as fast as it goes)")
    s.add_argument("--churn-go", metavar="FILE", help="churn once the table is sent and FILE exists")
    s.add_argument("--churn-stop", metavar="FILE", help="stop churning once FILE exists")
    s.add_argument("--churn-start", type=float, default=500.0, metavar="UPDATES_PER_S")
    s.add_argument("--churn-max", type=float, default=256000.0, metavar="UPDATES_PER_S")
    s.add_argument("--churn-step", type=float, default=5.0, metavar="SECONDS")
    args = ap.parse_args(argv)
    if args.cmd == "prepare":
        figures = prepare(args.scale, args.out, args.next_hop4, args.next_hop6, args.asn)
        print(json.dumps(figures))
        return 0
    with open(args.feed, "rb") as f:
        feed = f.read()
    churn_routes = v4_routes(feed) if args.churn_go else []
    try:
        sock = connect(args.connect, args.port, args.connect_timeout)
        with sock:
            peer, hold, leftover = handshake(sock, args.asn, args.router_id, args.hold_time)
            emit("established", peer_as=peer.asn, hold=hold)
            plan = None
            if args.churn_go:
                plan = ChurnPlan(args.churn_go, args.churn_stop or args.churn_go + ".stop",
                                 args.churn_start, args.churn_max, args.churn_step, churn_routes)
            return send(sock, leftover, hold, feed, args.max_seconds, args.go_file, args.pace, plan)
    except (SessionError, OSError) as e:
        emit("error", reason=str(e))
        return 1


if __name__ == "__main__":
    sys.exit(main())
