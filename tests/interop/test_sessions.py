"""Interop: bgpd's peer sessions against BIRD 2, FRR, GoBGP and itself.

Real daemons in network namespaces made by the test (see ``harness``).
What is checked, all at the session level (the RIB is not wired yet):

* RFC 4271 section 8: Established with bgpd active and passive, over IPv4
  and IPv6 transport, with both IPv4 and IPv6 unicast negotiated (RFC 4760
  section 8), and no flap over three hold intervals (section 4.4 keepalives).
* Section 6.5 / 8.2.2 Event 10: a frozen peer's session ends in
  HoldTimer_Expires with a Hold Timer Expired NOTIFICATION; it comes back.
* A restarted peer is re-established.
* A peer that only dials in (BIRD listening on another port), bgpd not
  passive: bgpd's attempts are refused and it takes BIRD's connection.
* RFC 2385 TCP MD5: matching keys connect; a wrong key, or no key at all,
  never does, and bgpd keeps running.
* RFC 4271 6.8 connection collision, forced with a scripted peer that holds
  both connections open: the one the higher BGP Identifier opened survives
  (told by the ports of the surviving TCP connection).
* bgpd to bgpd, and RFC 4486 / RFC 9003: SIGTERM sends Cease
  "Administrative Shutdown" carrying "bgpd shutting down".
* RFC 5082 GTSM (``ttl_security = 1``) between two bgpd and with FRR's
  ``ttl-security hops 1``; a peer sending TTL 1 is never heard.

Needs root; skips without it (fails under CI=true, like the harness).
"""

from __future__ import annotations

import json
import os
import re
import signal
import sys
import time
from collections.abc import Callable

from twisted.trial.unittest import SynchronousTestCase

from tests.interop import harness
from tests.interop.bgpd_driver import BgpdDriver, BgpdNeighbor
from tests.interop.harness import Bird, Daemon, Frr, GoBGP, Lab, LabNode, Neighbor, poll

BGPD_AS = 65001
PEER_AS = 65002
OTHER_AS = 65003
UNSIGNED_AS = 65004
# Short hold times keep "three hold intervals" quick; 4 s (keepalive every
# 1 s or so) still leaves room on a loaded two-core machine.
HOLD = 4
BOTH = ("ipv4-unicast", "ipv6-unicast")
ESTABLISH_TIMEOUT = 30.0
# Where BIRD listens when it must only dial in (any port but 179).
BIRD_LISTEN_PORT = 1179
REESTABLISH_TIMEOUT = 45.0


def _open_lab(case: SynchronousTestCase, names: list[str]) -> Lab:
    harness.require_root()
    lab = Lab(names)
    case.addCleanup(lab.close)
    lab.open()
    return lab


def _steady(duration: float, check: Callable[[], None], interval: float = 0.5) -> None:
    """Run ``check`` repeatedly for ``duration`` seconds; it raises on the first failure."""
    deadline = time.monotonic() + duration
    for _ in range(int(duration / interval) + 2):
        check()
        if time.monotonic() >= deadline:
            return
        time.sleep(interval)


def _established_ports(ns: harness.Netns) -> set[tuple[str, int, str, int]]:
    """(local addr, local port, peer addr, peer port) of each established TCP connection."""
    out = ns.run(["ss", "-Htn", "state", "established"]).stdout
    conns = set()
    for line in out.splitlines():
        cols = line.split()
        if len(cols) < 4:
            continue
        local, peer = cols[-2], cols[-1]
        la, _, lp = local.rpartition(":")
        pa, _, pp = peer.rpartition(":")
        conns.add((la.strip("[]"), int(lp), pa.strip("[]"), int(pp)))
    return conns


def _peer_neighbors(bgpd_node: LabNode, passive: bool) -> list[Neighbor]:
    """The peer daemon's view of bgpd: one IPv4 and one IPv6 session, both families."""
    return [Neighbor(addr, BGPD_AS, families=("ipv4", "ipv6"), passive=passive,
                     hold_time=HOLD)
            for addr in (bgpd_node.ipv4, bgpd_node.ipv6)]


def _bgpd_neighbors(peer_node: LabNode, passive: bool, asn: int = PEER_AS,
                    **kw: object) -> list[BgpdNeighbor]:
    return [BgpdNeighbor(addr, asn, families=BOTH, passive=passive, **kw)
            for addr in (peer_node.ipv4, peer_node.ipv6)]


class _PeerSessionsMixin:
    """bgpd against one kind of real daemon (``peer_cls``)."""

    peer_cls: type[Daemon]

    def _pair(self) -> tuple[Lab, BgpdDriver, Daemon]:
        """bgpd dials the IPv4 session, the peer dials the IPv6 one."""
        lab = _open_lab(self, ["bgpd", "peer"])
        b, p = lab["bgpd"], lab["peer"]
        bgpd = BgpdDriver(b.ns, BGPD_AS, b.router_id, [
            BgpdNeighbor(p.ipv4, PEER_AS, families=BOTH, passive=False),
            BgpdNeighbor(p.ipv6, PEER_AS, families=BOTH, passive=True),
        ], hold_time=HOLD)
        peer = self.peer_cls(p.ns, PEER_AS, p.router_id, [
            Neighbor(b.ipv4, BGPD_AS, families=("ipv4", "ipv6"), passive=True, hold_time=HOLD),
            Neighbor(b.ipv6, BGPD_AS, families=("ipv4", "ipv6"), passive=False, hold_time=HOLD),
        ])
        bgpd.start()
        peer.start()
        for addr in (p.ipv4, p.ipv6):
            bgpd.wait_established(addr, ESTABLISH_TIMEOUT)
        for addr in (b.ipv4, b.ipv6):
            peer.wait_established(addr, ESTABLISH_TIMEOUT)
        return lab, bgpd, peer

    def test_established_both_directions_both_transports(self):
        """bgpd active and passive, over IPv4 and IPv6, both families, no flap in 3 hold times."""
        lab = _open_lab(self, ["bgpd", "pasv", "actv"])
        b, pas, act = lab["bgpd"], lab["pasv"], lab["actv"]
        # A long ConnectRetry on the passive side, so that the peer's own
        # connection is the one accepted even while a passive neighbor still
        # dials out (PassiveTests.test_passive_neighbor_never_dials).
        bgpd = BgpdDriver(b.ns, BGPD_AS, b.router_id,
                          _bgpd_neighbors(pas, passive=False, asn=PEER_AS)
                          + _bgpd_neighbors(act, passive=True, asn=OTHER_AS,
                                            keys={"connect_retry_time": 120}),
                          hold_time=HOLD)
        waits_for_us = self.peer_cls(pas.ns, PEER_AS, pas.router_id,
                                     _peer_neighbors(b, passive=True))
        dials_us = self.peer_cls(act.ns, OTHER_AS, act.router_id,
                                 _peer_neighbors(b, passive=False))
        bgpd.start()
        waits_for_us.start()
        dials_us.start()
        peers = [pas.ipv4, pas.ipv6, act.ipv4, act.ipv6]
        for addr in peers:
            bgpd.wait_established(addr, ESTABLISH_TIMEOUT)
        for daemon in (waits_for_us, dials_us):
            for addr in (b.ipv4, b.ipv6):
                daemon.wait_established(addr, ESTABLISH_TIMEOUT)

        for addr in peers:
            info = bgpd.established_info(addr)
            self.assertIsNotNone(info, addr)
            self.assertEqual(set(info["families"]), set(BOTH), addr)
            self.assertEqual(info["hold_time"], HOLD, addr)
            self.assertEqual(info["asn"], PEER_AS if addr in (pas.ipv4, pas.ipv6) else OTHER_AS)

        # Who dialled whom: bgpd's end is port 179 only on the sessions the peer opened.
        conns = _established_ports(b.ns)
        for addr in (pas.ipv4, pas.ipv6):
            self.assertIn(179, {pp for _, _, pa, pp in conns if pa == addr}, conns)
        for addr in (act.ipv4, act.ipv6):
            self.assertIn(179, {lp for _, lp, pa, _ in conns if pa == addr}, conns)

        def no_flap() -> None:
            for addr in peers:
                self.assertEqual(bgpd.session_state(addr), "established", addr)
                self.assertEqual(bgpd.established_count(addr), 1, bgpd.transitions(addr))

        _steady(3 * HOLD + 1, no_flap)
        for daemon in (waits_for_us, dials_us):
            for addr in (b.ipv4, b.ipv6):
                self.assertEqual(daemon.session_state(addr), "established")
            self._assert_peer_no_flap(daemon, [b.ipv4, b.ipv6])
        self.assertNotIn("Traceback", bgpd.log())

    def _assert_peer_no_flap(self, daemon: Daemon, addrs: list[str]) -> None:
        """The peer's own counters, where its CLI has them, show one session each."""
        if isinstance(daemon, Frr):
            for addr in addrs:
                data = daemon.vtysh_json(f"show bgp neighbors {addr} json")
                info = data.get(addr) or next(iter(data.values()), {})
                self.assertEqual(info.get("connectionsEstablished"), 1, info)
                self.assertEqual(info.get("connectionsDropped"), 0, info)
        elif isinstance(daemon, GoBGP):
            for n in daemon.neighbors_json():
                self.assertEqual(n.get("state", {}).get("flops", 0), 0, n)
        elif isinstance(daemon, Bird):
            for addr in addrs:
                info = daemon.protocol_info(addr)
                # A flap would show up as a non-zero error/"Last error" line.
                self.assertNotRegex(info, r"Last error:\s+\S", info)

    def test_hold_timer_expires_when_peer_frozen(self):
        """A SIGSTOPped peer sends no keepalives: bgpd's hold timer expires; it recovers."""
        lab, bgpd, peer = self._pair()
        p = lab["peer"]
        peer.freeze()
        try:
            for addr in (p.ipv4, p.ipv6):
                bgpd.wait_log(rf"peer {re.escape(addr)} ESTABLISHED -> IDLE: HoldTimer_Expires",
                              HOLD + 6)
                bgpd.wait_log(rf"peer {re.escape(addr)}: sending NOTIFICATION .*[Hh]old", 5)
        finally:
            peer.thaw()
        # The peer's own back-off after its hold timer fired decides when it
        # is back (GoBGP waits longest), hence the longer wait.
        for addr in (p.ipv4, p.ipv6):
            bgpd.wait_established(addr, REESTABLISH_TIMEOUT, count=2)
        b = lab["bgpd"]
        for addr in (b.ipv4, b.ipv6):
            peer.wait_established(addr, REESTABLISH_TIMEOUT)

    def test_peer_restart_reestablishes(self):
        """The peer daemon is restarted: bgpd notices and both sessions come back."""
        lab, bgpd, peer = self._pair()
        p, b = lab["peer"], lab["bgpd"]
        peer.restart()
        for addr in (p.ipv4, p.ipv6):
            poll(lambda a=addr: any(t.old == "established" for t in bgpd.transitions(a)),
                 HOLD + 6, 0.2, f"bgpd to see {addr} go down")
            bgpd.wait_established(addr, ESTABLISH_TIMEOUT, count=2)
        for addr in (b.ipv4, b.ipv6):
            peer.wait_established(addr, ESTABLISH_TIMEOUT)


class BirdSessionsTests(_PeerSessionsMixin, SynchronousTestCase):
    """bgpd <-> BIRD 2."""

    peer_cls = Bird


class FrrSessionsTests(_PeerSessionsMixin, SynchronousTestCase):
    """bgpd <-> FRR's bgpd."""

    peer_cls = Frr


class GoBGPSessionsTests(_PeerSessionsMixin, SynchronousTestCase):
    """bgpd <-> GoBGP."""

    peer_cls = GoBGP


class Md5Tests(SynchronousTestCase):
    """RFC 2385 TCP MD5 signatures."""

    def test_matching_key_connects_wrong_key_never(self):
        """FRR with the same key is Established (both directions); GoBGP with another, or none, never."""
        lab = _open_lab(self, ["bgpd", "good", "bad", "plain"])
        b, good, bad, plain = lab["bgpd"], lab["good"], lab["bad"], lab["plain"]
        key = "interop-md5-key"
        bgpd = BgpdDriver(b.ns, BGPD_AS, b.router_id, [
            # bgpd dials over IPv4 (key on the connecting socket) and waits
            # over IPv6 (key on the listening socket), to each peer.
            BgpdNeighbor(good.ipv4, PEER_AS, families=BOTH, md5_password=key),
            BgpdNeighbor(good.ipv6, PEER_AS, families=BOTH, md5_password=key, passive=True),
            BgpdNeighbor(bad.ipv4, OTHER_AS, families=BOTH, md5_password=key),
            BgpdNeighbor(bad.ipv6, OTHER_AS, families=BOTH, md5_password=key, passive=True),
            # A peer with no key at all: its SYNs carry no signature.
            BgpdNeighbor(plain.ipv4, UNSIGNED_AS, families=BOTH, md5_password=key),
            BgpdNeighbor(plain.ipv6, UNSIGNED_AS, families=BOTH, md5_password=key,
                         passive=True),
        ], hold_time=HOLD)
        frr = Frr(good.ns, PEER_AS, good.router_id, [
            Neighbor(b.ipv4, BGPD_AS, families=("ipv4", "ipv6"), md5=key, passive=True,
                     hold_time=HOLD),
            Neighbor(b.ipv6, BGPD_AS, families=("ipv4", "ipv6"), md5=key, hold_time=HOLD)])
        gobgp = GoBGP(bad.ns, OTHER_AS, bad.router_id, [
            Neighbor(b.ipv4, BGPD_AS, families=("ipv4", "ipv6"), md5="not-" + key,
                     passive=True, hold_time=HOLD),
            Neighbor(b.ipv6, BGPD_AS, families=("ipv4", "ipv6"), md5="not-" + key,
                     hold_time=HOLD)])
        unsigned = GoBGP(plain.ns, UNSIGNED_AS, plain.router_id, [
            Neighbor(b.ipv4, BGPD_AS, families=("ipv4", "ipv6"), passive=True,
                     hold_time=HOLD),
            Neighbor(b.ipv6, BGPD_AS, families=("ipv4", "ipv6"), hold_time=HOLD)])
        bgpd.start()
        frr.start()
        gobgp.start()
        unsigned.start()
        for addr in (good.ipv4, good.ipv6):
            bgpd.wait_established(addr, ESTABLISH_TIMEOUT)
        for addr in (b.ipv4, b.ipv6):
            frr.wait_established(addr, ESTABLISH_TIMEOUT)

        def never_up() -> None:
            for addr in (bad.ipv4, bad.ipv6, plain.ipv4, plain.ipv6):
                self.assertNotIn(bgpd.session_state(addr), ("openconfirm", "established"),
                                 bgpd.transitions(addr))
                self.assertEqual(bgpd.established_count(addr), 0)
            for daemon in (gobgp, unsigned):
                for addr in (b.ipv4, b.ipv6):
                    self.assertNotIn(daemon.session_state(addr), ("openconfirm", "established"))
            self.assertTrue(bgpd.alive(), bgpd.log()[-3000:])

        _steady(15, never_up, interval=1.0)
        # The unsigned peer really tried: GoBGP dials bgpd over IPv6 (and is
        # dropped by the kernel: no TCP connection, so bgpd logs nothing).
        self.assertEqual({pa for _, _, pa, _ in _established_ports(b.ns)}
                         & {bad.ipv4, bad.ipv6, plain.ipv4, plain.ipv6}, set())
        # Meanwhile the good sessions stayed up and bgpd kept running.
        for addr in (good.ipv4, good.ipv6):
            self.assertEqual(bgpd.session_state(addr), "established")
            self.assertEqual(bgpd.established_count(addr), 1)
        self.assertTrue(bgpd.alive())
        self.assertNotIn("Traceback", bgpd.log())


class DialsInOnlyTests(SynchronousTestCase):
    """A peer that only connects (its port 179 closed), bgpd not passive."""

    def test_bird_only_dials_in(self):
        """BIRD listening on another port dials bgpd; bgpd, refused, takes its connection."""
        lab = _open_lab(self, ["bgpd", "bird"])
        b, p = lab["bgpd"], lab["bird"]
        bgpd = BgpdDriver(b.ns, BGPD_AS, b.router_id, _bgpd_neighbors(p, False, PEER_AS),
                          hold_time=HOLD)
        # "local port N": BIRD listens there, not on 179, and still dials 179.
        bird = Bird(p.ns, PEER_AS, p.router_id, [
            Neighbor(addr, BGPD_AS, families=("ipv4", "ipv6"), hold_time=HOLD,
                     extra=(f"local port {BIRD_LISTEN_PORT};",))
            for addr in (b.ipv4, b.ipv6)])
        bgpd.start()
        for addr in (p.ipv4, p.ipv6):
            # Nothing listens yet: bgpd's own attempt is refused, it waits in Active.
            bgpd.wait_log(rf"peer {re.escape(addr)} CONNECT -> ACTIVE: TcpConnectionFails", 15)
        bird.start()
        poll(lambda: harness.tcp_listening(p.ns, BIRD_LISTEN_PORT), 10, 0.2,
             f"BIRD listening on {BIRD_LISTEN_PORT}")
        self.assertFalse(harness.tcp_listening(p.ns, 179))
        for addr in (p.ipv4, p.ipv6):
            bgpd.wait_established(addr, ESTABLISH_TIMEOUT)
        for addr in (b.ipv4, b.ipv6):
            bird.wait_established(addr, ESTABLISH_TIMEOUT)
        for addr in (p.ipv4, p.ipv6):
            # What README "A peer that only dials in" tells the operator to expect.
            self.assertRegex(bgpd.run_log(), rf"peer {re.escape(addr)}: accepting the peer's "
                             r"connection in (ACTIVE|CONNECT|IDLE)")
        # Both sessions run on connections BIRD opened: bgpd's end is port 179.
        conns = _established_ports(b.ns)
        for addr in (p.ipv4, p.ipv6):
            self.assertEqual({lp for _, lp, pa, _ in conns if pa == addr}, {179}, conns)

        def stays_up() -> None:
            for addr in (p.ipv4, p.ipv6):
                self.assertEqual(bgpd.established_count(addr), 1, bgpd.transitions(addr))
                self.assertEqual(bgpd.session_state(addr), "established")

        _steady(HOLD + 1, stays_up)
        self.assertNotIn("Traceback", bgpd.log())


# A peer that keeps both connections of a collision open until bgpd resolves
# it (real daemons settle most races before both connections reach OpenSent).
# Run with sys.executable inside the peer's namespace; argv: bgpd address,
# own address, own AS, BGP Identifier to send, seconds to live.  It prints one
# JSON line per event; "result" says which connection bgpd closed and how.
_COLLIDING_PEER = r"""
import json, select, socket, struct, sys, time
from bgpd.wire.capabilities import Multiprotocol
from bgpd.wire.message import KEEPALIVE_BYTES, encode_message
from bgpd.wire.open import Open

bgpd_addr, own_addr, asn, bgp_id, life = sys.argv[1:6]
deadline = time.monotonic() + float(life)
def say(**kw):
    print(json.dumps(kw), flush=True)

lsock = socket.socket()
lsock.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
lsock.bind((own_addr, 179))
lsock.listen(4)
say(event="listening")
lsock.settimeout(30)
theirs, _ = lsock.accept()          # bgpd dialled us: bgpd's outbound connection
say(event="accepted", port=theirs.getpeername()[1])
# Dial only once bgpd's OPEN shows that connection is in OpenSent: before
# that, bgpd may rightly drop a connect still in progress for ours.
theirs.settimeout(10)
first = b""
while len(first) < 19 or len(first) < struct.unpack("!H", first[16:18])[0]:
    chunk = theirs.recv(65535)
    if not chunk:
        break
    first += chunk
theirs.settimeout(None)
ours = None
for _ in range(100):                # then we dial bgpd: bgpd's inbound connection
    try:
        ours = socket.create_connection((bgpd_addr, 179), timeout=5, source_address=(own_addr, 0))
        break
    except OSError:
        time.sleep(0.1)
say(event="connected", port=ours.getsockname()[1])
conns = {"bgpd_opened": theirs, "peer_opened": ours}
bufs = {"bgpd_opened": first, "peer_opened": b""}
seen = {k: [] for k in conns}
def read_some(timeout):
    live = [c for c in conns.values() if c is not None]
    ready, _, _ = select.select(live, [], [], timeout)
    for name, c in list(conns.items()):
        if c is None or c not in ready:
            continue
        data = c.recv(65535)
        if not data:
            conns[name] = None
            seen[name].append("closed")
            continue
        bufs[name] += data
        parse(name)
def parse(name):
    while len(bufs[name]) >= 19:
        length = struct.unpack("!H", bufs[name][16:18])[0]
        if len(bufs[name]) < length:
            break
        msg, bufs[name] = bufs[name][:length], bufs[name][length:]
        kind = {1: "open", 2: "update", 3: "notification", 4: "keepalive"}.get(msg[18], "?")
        seen[name].append(f"notification {msg[19]}/{msg[20]}" if kind == "notification" else kind)
parse("bgpd_opened")
# bgpd sends its OPEN on both connections before either hears ours.
for _ in range(100):
    read_some(0.1)
    if all("open" in seen[k] for k in conns):
        break
say(event="opens", seen=seen)
if not all(c is not None for c in conns.values()):
    say(event="result", seen=seen, open=[k for k, c in conns.items() if c is not None])
    sys.exit(1)
peer_open = encode_message(Open.make(int(asn), 90, bgp_id, (Multiprotocol(1, 1),)))
for name in ("bgpd_opened", "peer_opened"):
    conns[name].sendall(peer_open + KEEPALIVE_BYTES)
reported = False
while time.monotonic() < deadline:
    read_some(1.0)
    for name, c in conns.items():
        if c is not None:
            try:
                c.sendall(KEEPALIVE_BYTES)
            except OSError:
                conns[name] = None
    if not reported and any(c is None for c in conns.values()):
        say(event="result", seen=seen, open=[k for k, c in conns.items() if c is not None])
        reported = True
"""


class CollisionTests(SynchronousTestCase):
    """RFC 4271 6.8: of two connections, the one the higher BGP Identifier opened survives."""

    def _collide(self, peer_id: str) -> tuple[dict, set[tuple[str, int, str, int]], str]:
        lab = _open_lab(self, ["bgpd", "peer"])
        b, p = lab["bgpd"], lab["peer"]
        repo = os.path.dirname(os.path.dirname(os.path.dirname(os.path.abspath(__file__))))
        script = p.ns.popen([sys.executable, "-c", _COLLIDING_PEER, b.ipv4, p.ipv4,
                             str(PEER_AS), peer_id, "60"], log_name="colliding-peer.log",
                            env={"PYTHONPATH": repo}, cwd=repo)
        poll(lambda: '"listening"' in script.output() or not script.alive(), 15, 0.1,
             "the scripted peer to listen")
        bgpd = BgpdDriver(b.ns, BGPD_AS, b.router_id,
                          [BgpdNeighbor(p.ipv4, PEER_AS, families=("ipv4-unicast",))],
                          hold_time=HOLD)
        bgpd.start()

        def result() -> dict | None:
            for line in script.output().splitlines():
                if line.startswith("{") and '"result"' in line:
                    return json.loads(line)
            return None

        try:
            outcome = poll(result, ESTABLISH_TIMEOUT, 0.2, "bgpd to resolve the collision")
            bgpd.wait_established(p.ipv4, ESTABLISH_TIMEOUT)
        except AssertionError as e:
            raise AssertionError(f"{e}\npeer:\n{script.output()[-3000:]}") from None
        conns = {c for c in _established_ports(b.ns) if c[2] == p.ipv4}
        return outcome, conns, bgpd.run_log()

    def test_peer_identifier_higher(self):
        """The peer's identifier is higher: its connection survives, bgpd's gets Cease 6/7."""
        outcome, conns, log = self._collide("192.0.2.250")
        self.assertEqual(outcome["open"], ["peer_opened"], outcome)
        self.assertIn("notification 6/7", outcome["seen"]["bgpd_opened"], outcome)
        # The surviving TCP connection: bgpd's end is port 179 (the peer dialled).
        self.assertEqual(len(conns), 1, conns)
        [(_, local_port, _, peer_port)] = conns
        self.assertEqual(local_port, 179, conns)
        self.assertNotEqual(peer_port, 179, conns)
        self.assertIn("connection collision, keeping the inbound connection", log)

    def test_peer_identifier_lower(self):
        """The peer's identifier is lower: bgpd's connection survives, the peer's gets Cease 6/7."""
        outcome, conns, log = self._collide("192.0.2.0")
        self.assertEqual(outcome["open"], ["bgpd_opened"], outcome)
        self.assertIn("notification 6/7", outcome["seen"]["peer_opened"], outcome)
        # The surviving TCP connection: the peer's end is port 179 (bgpd dialled).
        self.assertEqual(len(conns), 1, conns)
        [(_, local_port, _, peer_port)] = conns
        self.assertEqual(peer_port, 179, conns)
        self.assertNotEqual(local_port, 179, conns)
        self.assertIn("connection collision, keeping the outbound connection", log)


def _bgpd_pair(case: SynchronousTestCase) -> tuple[Lab, BgpdDriver, BgpdDriver]:
    """Two bgpd on one link, IPv4 and IPv6 sessions Established both ways."""
    lab = _open_lab(case, ["bgpd1", "bgpd2"])
    n1, n2 = lab["bgpd1"], lab["bgpd2"]
    # Both sides active: the connection collision (RFC 4271 6.8) is
    # part of what this exercises.
    one = BgpdDriver(n1.ns, BGPD_AS, n1.router_id, _bgpd_neighbors(n2, False, PEER_AS),
                     hold_time=HOLD)
    two = BgpdDriver(n2.ns, PEER_AS, n2.router_id, _bgpd_neighbors(n1, False, BGPD_AS),
                     hold_time=HOLD)
    one.start()
    two.start()
    for addr in (n2.ipv4, n2.ipv6):
        one.wait_established(addr, ESTABLISH_TIMEOUT)
    for addr in (n1.ipv4, n1.ipv6):
        two.wait_established(addr, ESTABLISH_TIMEOUT)
    return lab, one, two


class BgpdToBgpdTests(SynchronousTestCase):
    """Two bgpd instances peering each other, IPv4 and IPv6."""

    def test_established(self):
        """Both sessions reach Established on both sides with both families, and stay up."""
        lab, one, two = _bgpd_pair(self)
        n1, n2 = lab["bgpd1"], lab["bgpd2"]
        for drv, addrs, asn in ((one, (n2.ipv4, n2.ipv6), PEER_AS),
                                (two, (n1.ipv4, n1.ipv6), BGPD_AS)):
            for addr in addrs:
                info = drv.established_info(addr)
                self.assertEqual(set(info["families"]), set(BOTH), addr)
                self.assertEqual((info["asn"], info["hold_time"]), (asn, HOLD), addr)
        _steady(HOLD + 1, lambda: self.assertEqual(
            [one.established_count(a) for a in (n2.ipv4, n2.ipv6)]
            + [two.established_count(a) for a in (n1.ipv4, n1.ipv6)], [1, 1, 1, 1]))
        self.assertNotIn("Traceback", one.log() + two.log())


class PassiveTests(SynchronousTestCase):
    """``passive = true``: "only accept connections from the peer; never connect to it"."""

    def test_passive_neighbor_never_dials(self):
        """With both ends passive nobody connects, over several ConnectRetry intervals."""
        lab = _open_lab(self, ["bgpd", "peer"])
        b, p = lab["bgpd"], lab["peer"]
        bgpd = BgpdDriver(b.ns, BGPD_AS, b.router_id, _bgpd_neighbors(p, True, PEER_AS),
                          hold_time=HOLD, connect_retry_time=1)
        gobgp = GoBGP(p.ns, PEER_AS, p.router_id, _peer_neighbors(b, passive=True))
        bgpd.start()
        gobgp.start()
        for addr in (p.ipv4, p.ipv6):
            poll(lambda a=addr: bgpd.session_state(a) == "active", 10, 0.2,
                 f"bgpd in Active for {addr}")

        def waits() -> None:
            for addr in (p.ipv4, p.ipv6):
                self.assertEqual(bgpd.session_state(addr), "active", bgpd.transitions(addr))
            self.assertEqual(_established_ports(b.ns), set())

        _steady(5, waits)


class GtsmTests(SynchronousTestCase):
    """RFC 5082 Generalized TTL Security Mechanism, one hop (``ttl_security = 1``)."""

    def test_gtsm_bgpd_dials_frr(self):
        """bgpd dials FRR (ttl-security hops 1): Established; a peer sending TTL 1 never is."""
        lab = _open_lab(self, ["bgpd", "frr", "ttl1"])
        b, nf, nt = lab["bgpd"], lab["frr"], lab["ttl1"]
        bgpd = BgpdDriver(b.ns, BGPD_AS, b.router_id,
                          _bgpd_neighbors(nf, False, PEER_AS, ttl_security=1)
                          # GoBGP without GTSM sends eBGP with TTL 1: never heard.
                          + [BgpdNeighbor(nt.ipv4, OTHER_AS, families=BOTH, ttl_security=1)],
                          hold_time=HOLD)
        frr = Frr(nf.ns, PEER_AS, nf.router_id, [
            Neighbor(addr, BGPD_AS, families=("ipv4", "ipv6"), passive=True, hold_time=HOLD,
                     extra=(f"neighbor {addr} ttl-security hops 1",))
            for addr in (b.ipv4, b.ipv6)])
        plain = GoBGP(nt.ns, OTHER_AS, nt.router_id, [
            Neighbor(b.ipv4, BGPD_AS, families=("ipv4", "ipv6"), hold_time=HOLD)])
        bgpd.start()
        frr.start()
        plain.start()
        for addr in (nf.ipv4, nf.ipv6):
            bgpd.wait_established(addr, ESTABLISH_TIMEOUT)
        for addr in (b.ipv4, b.ipv6):
            frr.wait_established(addr, ESTABLISH_TIMEOUT)

        def ttl1_never_up() -> None:
            self.assertEqual(bgpd.established_count(nt.ipv4), 0, bgpd.transitions(nt.ipv4))
            self.assertNotEqual(plain.session_state(b.ipv4), "established")

        _steady(8, ttl1_never_up, interval=1.0)


class ShutdownTests(SynchronousTestCase):
    """RFC 4486 subcode 2 with an RFC 9003 message when bgpd is stopped."""

    def test_sigterm_sends_shutdown_notification(self):
        """bgpd2 gets SIGTERM: bgpd1 receives Cease/Administrative Shutdown "bgpd shutting down"."""
        lab, one, two = _bgpd_pair(self)
        n1, n2 = lab["bgpd1"], lab["bgpd2"]
        rc = two.stop()
        # twistd ends a clean SIGTERM shutdown by re-raising the signal.
        self.assertIn(rc, (0, -signal.SIGTERM), two.log()[-3000:])
        for addr in (n1.ipv4, n1.ipv6):
            self.assertRegex(two.log(), rf"peer {re.escape(addr)}: sending NOTIFICATION .*\(6/2\)")
        for addr in (n2.ipv4, n2.ipv6):
            poll(lambda a=addr: one.session_state(a) != "established", 10, 0.2,
                 f"bgpd1 to leave Established with {addr}")
            one.wait_log(rf"peer {re.escape(addr)}: NOTIFICATION received: .*[Cc]ease.*"
                         r"\(6/2\).*bgpd shutting down", 5)


class GtsmAcceptTests(SynchronousTestCase):
    """RFC 5082 on the accepting side: the SYN-ACK must already carry TTL 255."""

    def test_gtsm_bgpd_accepts(self):
        """bgpd accepts GTSM sessions from another bgpd and from FRR (its SYN-ACK has TTL 255)."""
        lab = _open_lab(self, ["bgpd1", "bgpd2", "frr"])
        n1, n2, nf = lab["bgpd1"], lab["bgpd2"], lab["frr"]
        one = BgpdDriver(n1.ns, BGPD_AS, n1.router_id,
                         _bgpd_neighbors(n2, True, PEER_AS, ttl_security=1)
                         + _bgpd_neighbors(nf, True, OTHER_AS, ttl_security=1),
                         hold_time=HOLD)
        two = BgpdDriver(n2.ns, PEER_AS, n2.router_id,
                         _bgpd_neighbors(n1, False, BGPD_AS, ttl_security=1), hold_time=HOLD)
        frr = Frr(nf.ns, OTHER_AS, nf.router_id, [
            Neighbor(addr, BGPD_AS, families=("ipv4", "ipv6"), hold_time=HOLD,
                     extra=(f"neighbor {addr} ttl-security hops 1",))
            for addr in (n1.ipv4, n1.ipv6)])
        one.start()
        two.start()
        frr.start()
        for addr in (n2.ipv4, n2.ipv6, nf.ipv4, nf.ipv6):
            one.wait_established(addr, ESTABLISH_TIMEOUT)
        for addr in (n1.ipv4, n1.ipv6):
            two.wait_established(addr, ESTABLISH_TIMEOUT)
            frr.wait_established(addr, ESTABLISH_TIMEOUT)
