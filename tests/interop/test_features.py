"""Interop: bgpd's protocol features against real BIRD 2, FRR and GoBGP.

Real daemons in network namespaces made by the test (see ``harness``); each
class builds one lab and closes it.  bgpd has no API yet, so what it does
is read from what its peers see and, where the peers' CLIs cannot tell,
from the bytes on the segment (tcpdump on the lab's bridge, decoded by
``capture_golden``'s small independent decoder).  Checked:

* RFC 2918 / RFC 7313 route refresh: ``birdc reload in`` makes BIRD send
  ROUTE-REFRESH; bgpd sends its Adj-RIB-Out again between BoRR and EoRR
  and nothing is lost; the same for FRR's ``clear bgp ... soft in``.
  bgpd itself asks FRR for a refresh when a SIGHUP changes the import
  policy (soft reconfiguration off), and must then apply the new policy
  to what FRR re-sends.
* RFC 4486 max-prefix: a peer that sends more than ``max_prefix`` allows
  gets Cease / Maximum Number of Prefixes Reached (6/1); the session comes
  back only after ``restart_time``, with bgpd dialling (BIRD) and with bgpd
  listening (FRR dials in).
* SIGHUP (README "Running it"): an added neighbor comes up, a removed one
  gets Cease / Peer De-configured (6/3), a kept one is not reset.
* RFC 7911 ADD-PATH: two paths for one prefix from two sources reach an
  add-path receiver (GoBGP) as two paths; two paths from an add-path sender
  (GoBGP, path ids 1 and 2) are both kept and sent on (to BIRD), and
  withdrawing one leaves the other.
* RFC 6793 with a 2-octet-only peer (BIRD ``enable as4 off``) and routes
  carrying 4-octet ASNs: bgpd's UPDATEs to BIRD carry AS_TRANS with
  AS4_PATH (section 4.2.2), and a path from BIRD holding AS_TRANS +
  AS4_PATH reaches a 4-octet peer (GoBGP) rebuilt (section 4.2.3).  The
  same with bgpd in a 4-octet AS and ExaBGP (``asn4 disable``): its OPEN
  says AS_TRANS; BIRD so configured cannot peer with a 4-octet AS.
* RFC 4456 route reflection: a route from one iBGP client (BIRD or FRR)
  reaches the other with ORIGINATOR_ID = the first client's router id and
  CLUSTER_LIST = [bgpd's cluster id].
* RFC 4760 IPv6 NLRI over an IPv4 session (MP_REACH_NLRI with an IPv6 next
  hop, ``next_hop_ipv6``), both directions, BIRD and FRR.

Address plan: each lab is one Ethernet segment (192.0.2.0/24,
2001:db8::/64; ``harness.Lab``); announced prefixes come from
198.51.100.0/24 and 2001:db8:100::/40.  Needs root; skips without it
(fails under CI=true, like the harness).
"""

from __future__ import annotations

import ipaddress
import json
import os
import re
import signal
import time
from datetime import datetime
from typing import Any, ClassVar

from twisted.trial.unittest import SynchronousTestCase

from tests.interop import capture_golden as cg
from tests.interop import harness
from tests.interop.bgpd_driver import BgpdDriver, BgpdNeighbor
from tests.interop.harness import Bird, Frr, GoBGP, Lab, LabNode, Neighbor, Route, poll

BGPD_AS = 65000
BIRD_AS = 65001
FRR_AS = 65002
GOBGP_AS = 4200000003
AS_TRANS = 23456

V4 = ("ipv4-unicast",)
BOTH = ("ipv4-unicast", "ipv6-unicast")
ESTABLISH_TIMEOUT = 40.0
ROUTE_TIMEOUT = 25.0
# A route that must not (yet) be somewhere is watched this long.
ABSENT_WATCH = 3.0


# --------------------------------------------------------------------------
# reading the peers' CLIs beyond what the harness parses


def bird_paths(bird: Bird, family: str = "ipv4") -> dict[str, list[Route]]:
    """Every BGP path BIRD holds per prefix (``Bird.routes`` keeps the best only)."""
    out = bird.birdc("show", "route", "all", "table", "master4" if family == "ipv4"
                     else "master6", "where", "source", "=", "RTS_BGP", timeout=30)
    paths: dict[str, list[Route]] = {}
    prefix = None
    block: list[str] = []

    def flush() -> None:
        if prefix is not None and block:
            # parse_bird_routes reads one path when it is the only one shown.
            text = "\n".join(block) + "\n"
            paths.setdefault(prefix, []).extend(harness.parse_bird_routes(text).values())

    for line in out.splitlines():
        m = re.match(r"^(\S+/\d+)\s+(\w+ \[.*)$", line)
        m2 = re.match(r"^\s+(\w+ \[\S+ .*)$", line)
        if m:
            flush()
            prefix, block = str(ipaddress.ip_network(m.group(1))), [line]
        elif m2 and prefix is not None:
            flush()
            # Give the continuation path its prefix so it parses on its own.
            block = [f"{prefix} {m2.group(1)}"]
        elif prefix is not None:
            block.append(line)
    flush()
    return paths


def bird_since(bird: Bird, peer: str) -> str:
    """The "since" column of BIRD's protocol line (epoch seconds in the harness's config)."""
    out = bird.birdc("show", "protocols", bird.proto_name(peer))
    for line in out.splitlines():
        cols = line.split()
        if cols and cols[0] == bird.proto_name(peer):
            return cols[4]
    raise AssertionError(f"no protocol line for {peer}: {out}")


def bird_import_received(bird: Bird, peer: str) -> int:
    """BIRD's "Import updates: received" counter for the session with ``peer`` (all channels)."""
    total, seen = 0, False
    for line in bird.protocol_info(peer).splitlines():
        m = re.match(r"\s+Import updates:\s+(\d+)", line)
        if m:
            total += int(m.group(1))
            seen = True
    if not seen:
        raise AssertionError(f"no import counters for {peer}")
    return total


def frr_neighbor(frr: Frr, peer: str) -> dict[str, Any]:
    """FRR's ``show bgp neighbors PEER json`` for one peer (counters, last NOTIFICATION)."""
    data = frr.vtysh_json(f"show bgp neighbors {peer} json")
    return data.get(peer) or next(iter(data.values()), {})


def gobgp_paths(gobgp: GoBGP, family: str = "ipv4") -> dict[str, list[dict[str, Any]]]:
    """Every received path GoBGP holds per prefix (raw JSON paths)."""
    data = json.loads(gobgp.gobgp("global", "rib", "-a", family, "-j") or "{}")
    out: dict[str, list[dict[str, Any]]] = {}
    for prefix, paths in data.items():
        recv = [p for p in paths if p.get("neighbor-ip") not in (None, "<nil>", "")]
        if recv:
            out[str(ipaddress.ip_network(prefix))] = recv
    return out


def gobgp_as_path(path: dict[str, Any]) -> tuple[int, ...]:
    """The AS numbers of one GoBGP JSON path's AS_PATH, segments joined."""
    for a in path.get("attrs", []):
        if a.get("type") == 2:
            return tuple(x for s in a.get("as_paths", []) for x in s.get("asns", []))
    return ()


def _watch_absent(fn: Any, seconds: float = ABSENT_WATCH) -> list[Any]:
    """Call ``fn`` for ``seconds``; collect everything truthy it returned."""
    seen = []
    deadline = time.monotonic() + seconds
    for _ in range(int(seconds / 0.5) + 2):
        v = fn()
        if v:
            seen.append(v)
        if time.monotonic() >= deadline:
            break
        time.sleep(0.5)
    return seen


def _messages(pcap: str, src: str, dst: str) -> list[bytes]:
    """Every BGP message ``src`` sent to ``dst`` in ``pcap``, connection by connection."""
    msgs: list[bytes] = []
    for st in cg.streams(cg.tcp_segments(pcap)):
        if st.src == src and st.dst == dst:
            msgs += cg.split_messages(st.data())
    return msgs


def _wait_messages(pcap: str, src: str, dst: str, pred: Any, what: str,
                   timeout: float = 10.0) -> list[bytes]:
    """Poll the (live) capture until ``pred(messages src sent to dst)`` holds; return them.

    tcpdump hands packets over from the kernel's ring in blocks, so a packet
    can reach the file a second or so after it crossed the bridge.
    """
    def check() -> list[bytes] | None:
        msgs = _messages(pcap, src, dst)
        return msgs if pred(msgs) else None
    return poll(check, timeout, 0.25, what)


def _updates(pcap: str, src: str, dst: str, prefix: str, asn4: bool) -> list[str]:
    """Decoded UPDATEs ``src`` sent ``dst`` that carry ``prefix`` (polled from the capture)."""
    def found(msgs: list[bytes]) -> bool:
        return any(m[18] == 2 and prefix in cg.decode_update(m, asn4, set())[1] for m in msgs)
    msgs = _wait_messages(pcap, src, dst, found, f"an UPDATE {src} -> {dst} for {prefix}")
    return [d for m in msgs if m[18] == 2
            for d in [cg.decode_update(m, asn4, set())[1]] if prefix in d]


# --------------------------------------------------------------------------
# one lab per class


class _LabCase(SynchronousTestCase):
    """One lab per class, built once, closed once (trial: once per test)."""

    lab: ClassVar[Lab | None] = None
    bgpd: ClassVar[BgpdDriver]

    @classmethod
    def _build(cls) -> None:
        raise NotImplementedError

    @classmethod
    def setUpClass(cls) -> None:
        harness.require_root()
        cls.lab = None
        try:
            cls._build()
        except BaseException:
            cls.tearDownClass()
            raise

    @classmethod
    def tearDownClass(cls) -> None:
        if cls.lab is not None:
            cls.lab.close()
            cls.lab = None

    def setUp(self) -> None:
        # trial runs no class fixtures: there, each test builds its own lab.
        if type(self).lab is None:
            type(self).setUpClass()
            self.addCleanup(type(self).tearDownClass)

    def assert_clean_log(self) -> None:
        """bgpd logged no Python traceback."""
        self.assertNotIn("Traceback", self.bgpd.log(), self.bgpd.log()[-6000:])

    def fail_with_log(self, problems: list[str]) -> None:
        if problems:
            self.fail("\n".join(problems) + f"\n--- bgpd log tail:\n{self.bgpd.log()[-4000:]}")

    def sighup(self) -> None:
        """Rewrite bgpd's config from the driver and SIGHUP its PID."""
        bgpd = self.bgpd
        n = bgpd.run_log().count("reloading config from")
        bgpd.write_config()
        assert bgpd.proc is not None
        bgpd.proc.signal(signal.SIGHUP)
        poll(lambda: bgpd.run_log().count("reloading config from") > n, 20, 0.1,
             "bgpd to reload its config")


def _bird(node: LabNode, asn: int, neighbors: list[Neighbor],
          routes: dict[str, dict[str, Any]] | None = None) -> Bird:
    return Bird(node.ns, asn, node.router_id, neighbors, routes=routes)


# --------------------------------------------------------------------------
# 1. route refresh


REFRESH_ORIGINATE = [{"prefix": f"198.51.100.{i * 16}/28"} for i in range(3)]
FRR_REFRESH_ROUTES = {"198.51.100.128/28": {}, "198.51.100.144/28": {}}


class RouteRefreshTests(_LabCase):
    """bgpd between BIRD (bgpd dials) and FRR (dials bgpd); FRR's routes start rejected."""

    @classmethod
    def _build(cls) -> None:
        cls.lab = lab = Lab(["bgpd", "bird", "frr"]).open()
        b = lab["bgpd"]
        cls.bird = _bird(lab["bird"], BIRD_AS, [Neighbor(b.ipv4, BGPD_AS, passive=True)])
        cls.frr = Frr(lab["frr"].ns, FRR_AS, lab["frr"].router_id,
                      [Neighbor(b.ipv4, BGPD_AS)], routes=FRR_REFRESH_ROUTES)
        cls.frr_nbr = BgpdNeighbor(lab["frr"].ipv4, FRR_AS, families=V4, passive=True,
                                   keys={"import_policy": ["reject-all"]})
        cls.bgpd = BgpdDriver(b.ns, BGPD_AS, b.router_id,
                              [BgpdNeighbor(lab["bird"].ipv4, BIRD_AS, families=V4),
                               cls.frr_nbr],
                              originate=REFRESH_ORIGINATE, mrai_ebgp=0)
        cls.bird.start()
        cls.frr.start()
        cls.bgpd.start()
        for n in ("bird", "frr"):
            cls.bgpd.wait_established(lab[n].ipv4, ESTABLISH_TIMEOUT)

    def test_peer_refresh_resends_adj_rib_out(self):
        """`birdc reload in`: BIRD sends ROUTE-REFRESH, bgpd re-sends every route, nothing lost."""
        lab, bird = self.lab, self.bird
        b = lab["bgpd"].ipv4
        want = {o["prefix"] for o in REFRESH_ORIGINATE}
        poll(lambda: want <= set(bird.routes()), ROUTE_TIMEOUT, 0.25, "BIRD to hold bgpd's routes")
        before = bird_import_received(bird, b)
        pcap = os.path.join(lab["bgpd"].ns.workdir, "refresh.pcap")
        cap = lab.capture(pcap)
        out = bird.birdc("reload", "in", bird.proto_name(b))
        self.assertIn("reload", out.lower(), out)
        self.bgpd.wait_log(r"ROUTE-REFRESH for 1/1")
        # Each of bgpd's routes was received once more.
        poll(lambda: bird_import_received(bird, b) >= before + len(want), ROUTE_TIMEOUT, 0.25,
             f"BIRD's import counter to grow by {len(want)} from {before}")
        self.assertTrue(want <= set(bird.routes()), bird.routes())
        # On the wire: BIRD asked (type 5), bgpd answered with UPDATEs for all of them.
        _wait_messages(pcap, lab["bird"].ipv4, b, lambda ms: any(m[18] == 5 for m in ms),
                       "a ROUTE-REFRESH from BIRD in the capture")

        def resent(msgs: list[bytes]) -> set[str]:
            sent: set[str] = set()
            for m in msgs:
                if m[18] == 2:
                    _, desc = cg.decode_update(m, True, set())
                    sent |= set(re.findall(r"198\.51\.100\.\d+/28", desc))
            return sent
        def framed(msgs: list[bytes]) -> bool:
            # Both sides announced Enhanced Route Refresh (checked below), so
            # the re-sent routes come between BoRR (subtype 1) and EoRR
            # (subtype 2) for IPv4 unicast (RFC 7313 section 4).
            subtypes = [(i, m[21]) for i, m in enumerate(msgs)
                        if m[18] == 5 and m[19:21] == b"\x00\x01" and m[22] == 1]
            borr = next((i for i, st in subtypes if st == 1), None)
            eorr = next((i for i, st in subtypes if st == 2 and borr is not None and i > borr),
                        None)
            return borr is not None and eorr is not None and want <= resent(msgs[borr:eorr])
        try:
            _wait_messages(pcap, b, lab["bird"].ipv4, framed,
                           "bgpd's BoRR, UPDATEs for all its routes, EoRR in the capture")
        finally:
            cap.stop()
        info = bird.protocol_info(b)
        local, _, neighbor = info.partition("Neighbor capabilities")
        self.assertIn("Enhanced refresh", local)
        self.assertIn("Enhanced refresh", neighbor.split("Session:")[0])
        # The session was not reset for it.
        self.assertEqual(self.bgpd.established_count(lab["bird"].ipv4), 1)
        self.assertEqual(bird.session_state(b), "established")
        self.assert_clean_log()

    def test_frr_soft_in_refresh(self):
        """FRR `clear bgp ... soft in`: ROUTE-REFRESH to bgpd, bgpd's routes re-sent, session kept."""
        lab, frr = self.lab, self.frr
        b = lab["bgpd"].ipv4
        want = {o["prefix"] for o in REFRESH_ORIGINATE}
        poll(lambda: want <= set(frr.routes()), ROUTE_TIMEOUT, 0.25, "FRR to hold bgpd's routes")

        def stat(key: str) -> int:
            return int(frr_neighbor(frr, b).get("messageStats", {}).get(key, 0))
        sent, received = stat("routeRefreshSent"), stat("updatesRecv")
        frr.vtysh(f"clear bgp ipv4 unicast {b} soft in")
        poll(lambda: stat("routeRefreshSent") > sent, ROUTE_TIMEOUT, 0.25,
             "FRR to send a ROUTE-REFRESH")
        self.bgpd.wait_log(rf"peer {re.escape(lab['frr'].ipv4)}: ROUTE-REFRESH for 1/1")
        poll(lambda: stat("updatesRecv") > received, ROUTE_TIMEOUT, 0.25,
             f"FRR to receive bgpd's routes again (updatesRecv was {received})")
        self.assertTrue(want <= set(frr.routes()), frr.routes())
        self.assertEqual(self.bgpd.established_count(lab["frr"].ipv4), 1)
        self.assertEqual(frr.session_state(b), "established")
        self.assert_clean_log()

    def test_bgpd_requests_refresh_on_import_policy_change(self):
        """SIGHUP reject-all -> accept-all on FRR: bgpd sends ROUTE-REFRESH, FRR's routes reach BIRD."""
        lab, frr = self.lab, self.frr
        b = lab["bgpd"].ipv4
        self.assertEqual(_watch_absent(lambda: set(FRR_REFRESH_ROUTES) & set(self.bird.routes())),
                         [], "FRR's routes went through a reject-all import policy")

        def stat(key: str) -> int:
            return int(frr_neighbor(frr, b).get("messageStats", {}).get(key, 0))
        refreshes, updates = stat("routeRefreshRecv"), stat("updatesSent")
        self.frr_nbr.keys["import_policy"] = ["accept-all"]
        try:
            self.sighup()
            poll(lambda: stat("routeRefreshRecv") > refreshes, ROUTE_TIMEOUT, 0.25,
                 "FRR to count a ROUTE-REFRESH from bgpd")
            # FRR answered it with its routes again (its UPDATEs and End-of-RIB) ...
            poll(lambda: stat("updatesSent") > updates, ROUTE_TIMEOUT, 0.25,
                 f"FRR to send its routes again (updatesSent was {updates})")
            # ... and now they pass the new policy and go on to BIRD.
            problems = []
            for prefix in FRR_REFRESH_ROUTES:
                try:
                    r = self.bird.wait_route(prefix, ROUTE_TIMEOUT)
                except AssertionError as e:
                    problems.append(f"bgpd asked, FRR re-sent, yet the new import policy "
                                    f"was not applied to the re-sent routes: {e}")
                    continue
                if r.as_path != (BGPD_AS, FRR_AS):
                    problems.append(f"{prefix}: AS_PATH {r.as_path}")
            self.fail_with_log(problems)
            # Neither session was reset for it.
            for n in ("bird", "frr"):
                self.assertEqual(self.bgpd.established_count(lab[n].ipv4), 1, n)
        finally:
            self.frr_nbr.keys["import_policy"] = ["reject-all"]
            self.sighup()
        self.assert_clean_log()


# --------------------------------------------------------------------------
# 2. max-prefix


MAXPFX_LIMIT = 2
MAXPFX_RESTART = 5
TOO_MANY = {f"198.51.100.{i * 16}/28": {} for i in range(4)}
FRR_TOO_MANY = {f"198.51.100.{128 + i * 16}/28": {} for i in range(4)}


class MaxPrefixTests(_LabCase):
    """BIRD (bgpd dials) and FRR (dials bgpd) each send 4 prefixes; bgpd allows 2."""

    @classmethod
    def _build(cls) -> None:
        cls.lab = lab = Lab(["bgpd", "bird", "frr"]).open()
        b = lab["bgpd"]
        limit = {"ipv4-unicast": {"limit": MAXPFX_LIMIT, "restart_time": MAXPFX_RESTART}}
        cls.bird = _bird(lab["bird"], BIRD_AS, [Neighbor(b.ipv4, BGPD_AS, passive=True)],
                         routes=TOO_MANY)
        cls.frr = Frr(lab["frr"].ns, FRR_AS, lab["frr"].router_id,
                      [Neighbor(b.ipv4, BGPD_AS)], routes=FRR_TOO_MANY)
        cls.bgpd = BgpdDriver(b.ns, BGPD_AS, b.router_id, [
            BgpdNeighbor(lab["bird"].ipv4, BIRD_AS, families=V4, keys={"max_prefix": limit}),
            BgpdNeighbor(lab["frr"].ipv4, FRR_AS, families=V4, passive=True,
                         keys={"max_prefix": limit})], mrai_ebgp=0)
        cls.bird.start()
        cls.frr.start()
        cls.bgpd.start()

    def _cease_then_back(self, addr: str, seen_by_peer: Any) -> None:
        """bgpd sends 6/1 to ``addr``; the peer shows it; Established again only after restart_time."""
        bgpd = self.bgpd
        cease = re.compile(rf"^(\S+) .*\] peer {re.escape(addr)}: sending NOTIFICATION Cease"
                           r".*\(6/1\)", re.M)
        back = re.compile(rf"^(\S+) .*\] peer {re.escape(addr)} OPEN_CONFIRM -> ESTABLISHED",
                          re.M)

        def cease_and_back() -> tuple[datetime, datetime] | None:
            # The first Cease and the first Established after it, by the log's clock.
            log = bgpd.run_log()
            m = cease.search(log)
            m2 = back.search(log, m.end()) if m else None
            if m is None or m2 is None:
                return None
            return datetime.fromisoformat(m.group(1)), datetime.fromisoformat(m2.group(1))
        try:
            poll(lambda: cease.search(bgpd.run_log()), ESTABLISH_TIMEOUT, 0.25,
                 f"bgpd to send Cease 6/1 to {addr}")
        except AssertionError as e:
            self.fail_with_log([str(e)])
        poll(seen_by_peer, ROUTE_TIMEOUT, 0.25, f"{addr} to show the received Cease 6/1")
        try:
            t_cease, t_back = poll(cease_and_back, MAXPFX_RESTART + ESTABLISH_TIMEOUT, 0.25,
                                   f"the session with {addr} back after the Cease")
        except AssertionError as e:
            self.fail_with_log([str(e)])
        gap = (t_back - t_cease).total_seconds()
        # The log has whole seconds: back sooner than restart_time - 1 means
        # the timer was not honoured.
        self.assertGreaterEqual(gap, MAXPFX_RESTART - 1,
                                f"session with {addr} back {gap:.0f}s after the Cease")
        self.assertLessEqual(gap, MAXPFX_RESTART + 15, "the session came back very late")
        self.assert_clean_log()

    def test_dialled_peer_gets_cease_and_returns_after_restart_time(self):
        """BIRD (bgpd dials): Cease 6/1 shown by BIRD; the session returns after restart_time."""
        b = self.lab["bgpd"].ipv4

        def bird_saw() -> bool:
            info = self.bird.protocol_info(b)
            return bool(re.search(r"Last error:\s+Received: Maximum number of prefixes", info))
        self._cease_then_back(self.lab["bird"].ipv4, bird_saw)

    def test_listening_bgpd_refuses_until_restart_time(self):
        """FRR (dials bgpd every 2 s): Cease 6/1 shown by FRR; bgpd accepts it only after restart_time."""
        b = self.lab["bgpd"].ipv4

        def frr_saw() -> bool:
            n = frr_neighbor(self.frr, b)
            return (n.get("lastErrorCodeSubcode") == "0601"
                    and n.get("lastResetDueTo") == "BGP Notification received")
        self._cease_then_back(self.lab["frr"].ipv4, frr_saw)


# --------------------------------------------------------------------------
# 3. SIGHUP: add and remove a peer


class SighupTests(_LabCase):
    """bgpd with BIRD (kept) and FRR (removed); GoBGP is added by a SIGHUP."""

    @classmethod
    def _build(cls) -> None:
        cls.lab = lab = Lab(["bgpd", "bird", "frr", "gobgp"]).open()
        b = lab["bgpd"]
        cls.bird = _bird(lab["bird"], BIRD_AS, [Neighbor(b.ipv4, BGPD_AS, passive=True)],
                         routes={"198.51.100.0/28": {}})
        cls.frr = Frr(lab["frr"].ns, FRR_AS, lab["frr"].router_id,
                      [Neighbor(b.ipv4, BGPD_AS, passive=True)])
        cls.gobgp = GoBGP(lab["gobgp"].ns, GOBGP_AS, lab["gobgp"].router_id,
                          [Neighbor(b.ipv4, BGPD_AS, passive=True)])
        cls.bgpd = BgpdDriver(b.ns, BGPD_AS, b.router_id, [
            BgpdNeighbor(lab["bird"].ipv4, BIRD_AS, families=V4),
            BgpdNeighbor(lab["frr"].ipv4, FRR_AS, families=V4)], mrai_ebgp=0)
        for d in (cls.bird, cls.frr, cls.gobgp):
            d.start()
        cls.bgpd.start()
        for n in ("bird", "frr"):
            cls.bgpd.wait_established(lab[n].ipv4, ESTABLISH_TIMEOUT)

    def test_add_and_remove_peer(self):
        """SIGHUP: GoBGP comes up, FRR gets Cease 6/3, BIRD's session keeps its uptime."""
        lab = self.lab
        b = lab["bgpd"].ipv4
        self.frr.wait_route("198.51.100.0/28", ROUTE_TIMEOUT)
        since = bird_since(self.bird, b)
        self.bgpd.neighbors = [n for n in self.bgpd.neighbors if n.address != lab["frr"].ipv4]
        self.bgpd.neighbors.append(BgpdNeighbor(lab["gobgp"].ipv4, GOBGP_AS, families=V4))
        self.sighup()
        self.gobgp.wait_established(b, ESTABLISH_TIMEOUT)
        self.gobgp.wait_route("198.51.100.0/28", ROUTE_TIMEOUT)

        def frr_saw() -> bool:
            n = frr_neighbor(self.frr, b)
            return (n.get("lastErrorCodeSubcode") == "0603"
                    and n.get("lastResetDueTo") == "BGP Notification received")
        poll(frr_saw, ROUTE_TIMEOUT, 0.25, "FRR to show Cease / Peer De-configured")
        self.bgpd.wait_log(rf"peer {re.escape(lab['frr'].ipv4)}: sending NOTIFICATION Cease"
                           r".*\(6/3\)")
        self.frr.wait_no_route("198.51.100.0/28", ROUTE_TIMEOUT)
        # FRR is gone from the config: it stays down.
        self.assertNotEqual(self.frr.session_state(b), "established")
        # BIRD's session was not touched: same uptime, Established once.
        self.assertEqual(bird_since(self.bird, b), since)
        self.assertEqual(self.bird.session_state(b), "established")
        self.assertEqual(self.bgpd.established_count(lab["bird"].ipv4), 1)
        self.assert_clean_log()


# --------------------------------------------------------------------------
# 4. ADD-PATH


SHARED = "198.51.100.0/28"      # announced by both BIRD and FRR
MULTI = "198.51.100.64/28"      # two paths from GoBGP (path ids 1 and 2)


class AddPathTests(_LabCase):
    """BIRD and FRR announce one prefix; GoBGP (add-path both) sends two paths of another."""

    @classmethod
    def _build(cls) -> None:
        cls.lab = lab = Lab(["bgpd", "bird", "frr", "gobgp"]).open()
        b = lab["bgpd"]
        cls.bird = _bird(lab["bird"], BIRD_AS,
                         [Neighbor(b.ipv4, BGPD_AS, passive=True, add_path=True)],
                         routes={SHARED: {}})
        cls.frr = Frr(lab["frr"].ns, FRR_AS, lab["frr"].router_id,
                      [Neighbor(b.ipv4, BGPD_AS, passive=True)], routes={SHARED: {}})
        cls.gobgp = GoBGP(lab["gobgp"].ns, GOBGP_AS, lab["gobgp"].router_id,
                          [Neighbor(b.ipv4, BGPD_AS, passive=True, add_path=True)])
        cls.bgpd = BgpdDriver(b.ns, BGPD_AS, b.router_id, [
            BgpdNeighbor(lab["bird"].ipv4, BIRD_AS, families=V4, keys={"add_path": "both"}),
            BgpdNeighbor(lab["frr"].ipv4, FRR_AS, families=V4),
            BgpdNeighbor(lab["gobgp"].ipv4, GOBGP_AS, families=V4, keys={"add_path": "both"})],
            mrai_ebgp=0)
        for d in (cls.bird, cls.frr, cls.gobgp):
            d.start()
        cls._gobgp_add(1, 64512)
        cls._gobgp_add(2, 64513)
        cls.bgpd.start()
        for n in ("bird", "frr", "gobgp"):
            cls.bgpd.wait_established(lab[n].ipv4, ESTABLISH_TIMEOUT)

    @classmethod
    def _gobgp_add(cls, ident: int, origin_as: int) -> None:
        cls.gobgp.gobgp("global", "rib", "-a", "ipv4", "add", MULTI, "identifier", str(ident),
                        "aspath", str(origin_as), "nexthop", cls.lab["gobgp"].ipv4)

    def test_two_sources_reach_addpath_receiver_as_two_paths(self):
        """SHARED from BIRD and from FRR reaches GoBGP (add-path) as two paths, [65000 65001/65002]."""
        want = {(BGPD_AS, BIRD_AS), (BGPD_AS, FRR_AS)}

        def two() -> set | None:
            got = {gobgp_as_path(p) for p in gobgp_paths(self.gobgp).get(SHARED, [])}
            return got if got == want else None
        try:
            poll(two, ROUTE_TIMEOUT, 0.25, f"GoBGP to hold both paths of {SHARED}")
        except AssertionError as e:
            self.fail_with_log([f"{e}; GoBGP has {gobgp_paths(self.gobgp).get(SHARED)}"])
        # FRR did not negotiate add-path: from bgpd it gets one path, BIRD's
        # (its own is never sent back to it).
        def from_bgpd() -> list[tuple[int, ...]] | None:
            detail = self.frr.vtysh_json(f"show bgp ipv4 unicast {SHARED} json")
            got = [harness._frr_route(SHARED, p).as_path for p in detail.get("paths", [])
                   if p.get("peer", {}).get("peerId") == self.lab["bgpd"].ipv4]
            return got or None
        got = poll(from_bgpd, ROUTE_TIMEOUT, 0.25, f"FRR to get {SHARED} from bgpd")
        self.assertEqual(got, [(BGPD_AS, BIRD_AS)])
        self.assert_clean_log()

    def test_paths_from_addpath_sender_kept_apart(self):
        """GoBGP's two path ids for MULTI both reach BIRD (add-path); withdrawing id 1 leaves id 2."""
        def paths() -> set:
            return {r.as_path for r in bird_paths(self.bird).get(MULTI, [])}
        both = {(BGPD_AS, GOBGP_AS, 64512), (BGPD_AS, GOBGP_AS, 64513)}
        try:
            poll(lambda: paths() == both, ROUTE_TIMEOUT, 0.25,
                 f"BIRD to hold both of GoBGP's paths of {MULTI}")
        except AssertionError as e:
            self.fail_with_log([f"{e}; BIRD has {paths()}"])
        self.gobgp.gobgp("global", "rib", "-a", "ipv4", "del", MULTI, "identifier", "1")
        try:
            try:
                poll(lambda: paths() == {(BGPD_AS, GOBGP_AS, 64513)}, ROUTE_TIMEOUT, 0.25,
                     f"BIRD to keep only path id 2 of {MULTI}")
            except AssertionError as e:
                self.fail_with_log([f"{e}; BIRD has {paths()}"])
            # FRR (no add-path) still has the prefix, by the remaining path.
            r = self.frr.wait_route(MULTI, ROUTE_TIMEOUT,
                                    pred=lambda r: r.as_path == (BGPD_AS, GOBGP_AS, 64513))
            self.assertEqual(r.as_path, (BGPD_AS, GOBGP_AS, 64513))
        finally:
            self._gobgp_add(1, 64512)
        poll(lambda: paths() == both, ROUTE_TIMEOUT, 0.25, "path id 1 back at BIRD")
        self.assert_clean_log()


# --------------------------------------------------------------------------
# 5. a 2-octet-only peer, routes carrying 4-octet ASNs


FAR_AS4 = 4200000005
AS4_FROM_GOBGP = "198.51.100.128/28"
AS4_FROM_BIRD = "198.51.100.144/28"


class TwoOctetPeerTests(_LabCase):
    """bgpd (AS65000) between BIRD (AS65001, ``enable as4 off``) and GoBGP (AS4200000003).

    bgpd's own AS is 2-octet here: BIRD with "enable as4 off" still reads a
    4-octet AS from bgpd's capability and then refuses both that AS (out of
    range) and 23456 ("bad peer AS"), so no session could come up.
    """

    @classmethod
    def _build(cls) -> None:
        cls.lab = lab = Lab(["bgpd", "bird", "gobgp"]).open()
        b = lab["bgpd"]
        cls.pcap = os.path.join(b.ns.workdir, "as4.pcap")
        cls.cap = lab.capture(cls.pcap)
        cls.bird = _bird(lab["bird"], BIRD_AS,
                         [Neighbor(b.ipv4, BGPD_AS, passive=True, extra=("enable as4 off;",))],
                         routes={AS4_FROM_BIRD: {"as_path": [FAR_AS4]}})
        cls.gobgp = GoBGP(lab["gobgp"].ns, GOBGP_AS, lab["gobgp"].router_id,
                          [Neighbor(b.ipv4, BGPD_AS, passive=True)],
                          routes={AS4_FROM_GOBGP: {}})
        cls.bgpd = BgpdDriver(b.ns, BGPD_AS, b.router_id, [
            BgpdNeighbor(lab["bird"].ipv4, BIRD_AS, families=V4),
            BgpdNeighbor(lab["gobgp"].ipv4, GOBGP_AS, families=V4)], mrai_ebgp=0)
        cls.bird.start()
        cls.gobgp.start()
        cls.bgpd.start()
        for n in ("bird", "gobgp"):
            cls.bgpd.wait_established(lab[n].ipv4, ESTABLISH_TIMEOUT)

    def test_bird_session_is_two_octet(self):
        """BIRD's OPEN has no 4-octet AS capability, so the session carries 2-octet AS_PATHs."""
        lab = self.lab
        msgs = _wait_messages(self.pcap, lab["bird"].ipv4, lab["bgpd"].ipv4,
                              lambda ms: any(m[18] == 1 for m in ms), "BIRD's OPEN")
        text, info = cg.decode_open(next(m for m in msgs if m[18] == 1))
        self.assertFalse(info.four_octet, text)
        self.assertEqual(info.asn, BIRD_AS, text)

    def test_bird_sees_as_trans_and_as4_path(self):
        """To BIRD: AS_PATH [65000 23456] + AS4_PATH [65000 4200000003]; BIRD rebuilds [65000 4200000003]."""
        lab = self.lab
        r = self.bird.wait_route(AS4_FROM_GOBGP, ROUTE_TIMEOUT)
        # BIRD merges AS4_PATH into the path it shows (RFC 6793 4.2.3).
        self.assertEqual(r.as_path, (BGPD_AS, GOBGP_AS), r.raw)
        upd = _updates(self.pcap, lab["bgpd"].ipv4, lab["bird"].ipv4, AS4_FROM_GOBGP, False)[-1]
        self.assertIn(f"as_path=[{BGPD_AS} {AS_TRANS}]", upd)
        self.assertIn(f"as4_path=[{BGPD_AS} {GOBGP_AS}]", upd)
        self.assert_clean_log()

    def test_path_from_bird_rebuilt_for_four_octet_peer(self):
        """BIRD's [65001 23456] + AS4_PATH [65001 4200000005] reaches GoBGP as [65000 65001 4200000005]."""
        lab = self.lab
        r = self.gobgp.wait_route(AS4_FROM_BIRD, ROUTE_TIMEOUT)
        self.assertEqual(r.as_path, (BGPD_AS, BIRD_AS, FAR_AS4), r.raw)
        # What BIRD sent really was the 2-octet form (else this proves nothing).
        upd = _updates(self.pcap, lab["bird"].ipv4, lab["bgpd"].ipv4, AS4_FROM_BIRD, False)[-1]
        self.assertIn(f"as_path=[{BIRD_AS} {AS_TRANS}]", upd)
        self.assertIn(f"as4_path=[{BIRD_AS} {FAR_AS4}]", upd)
        # And on to GoBGP in 4-octet form, with no AS4_PATH (RFC 6793 section 4.1).
        upd = _updates(self.pcap, lab["bgpd"].ipv4, lab["gobgp"].ipv4, AS4_FROM_BIRD, True)[-1]
        self.assertIn(f"as_path=[{BGPD_AS} {BIRD_AS} {FAR_AS4}]", upd)
        self.assertNotIn("as4_path", upd)
        self.assert_clean_log()


BGPD_AS4 = 4200000000
EXABGP_AS = 65010
GOBGP2_AS = 65020
AS4L_FROM_GOBGP = "198.51.100.160/28"
AS4L_FROM_EXABGP = "198.51.100.176/28"


class FourOctetLocalAsTests(_LabCase):
    """bgpd in AS4200000000 between ExaBGP (AS65010, ``asn4 disable``) and GoBGP (AS65020).

    ExaBGP without the capability knows bgpd as AS_TRANS (RFC 6793 section
    4.2.1) and only dials out, so bgpd listens for it.
    """

    @classmethod
    def _build(cls) -> None:
        cls.lab = lab = Lab(["bgpd", "exabgp", "gobgp"]).open()
        b, e, g = lab["bgpd"], lab["exabgp"], lab["gobgp"]
        cls.pcap = os.path.join(b.ns.workdir, "as4-local.pcap")
        cls.cap = lab.capture(cls.pcap)
        cls.gobgp = GoBGP(g.ns, GOBGP2_AS, g.router_id,
                          [Neighbor(b.ipv4, BGPD_AS4, passive=True)],
                          routes={AS4L_FROM_GOBGP: {}})
        cls.exabgp = harness.ExaBGP(
            e.ns, EXABGP_AS, e.router_id,
            [Neighbor(b.ipv4, AS_TRANS, local_address=e.ipv4,
                      extra=("capability { asn4 disable; }",))],
            routes={AS4L_FROM_EXABGP: {"as_path": [FAR_AS4]}})
        cls.bgpd = BgpdDriver(b.ns, BGPD_AS4, b.router_id, [
            BgpdNeighbor(e.ipv4, EXABGP_AS, families=V4, passive=True),
            BgpdNeighbor(g.ipv4, GOBGP2_AS, families=V4)], mrai_ebgp=0)
        cls.gobgp.start()
        cls.bgpd.start()
        cls.exabgp.start()
        for n in ("exabgp", "gobgp"):
            cls.bgpd.wait_established(lab[n].ipv4, ESTABLISH_TIMEOUT)

    def test_open_and_updates_carry_as_trans(self):
        """To ExaBGP: OPEN My AS 23456 + capability 4200000000; AS_PATH [23456 65020] + AS4_PATH."""
        lab = self.lab
        b, e = lab["bgpd"].ipv4, lab["exabgp"].ipv4
        msgs = _wait_messages(self.pcap, b, e, lambda ms: any(m[18] == 1 for m in ms),
                              "bgpd's OPEN to ExaBGP")
        text, info = cg.decode_open(next(m for m in msgs if m[18] == 1))
        self.assertIn(f"my_as={AS_TRANS} (AS_TRANS) as4={BGPD_AS4}", text)
        r = self.exabgp.wait_route(AS4L_FROM_GOBGP, ROUTE_TIMEOUT)
        # ExaBGP shows the path rebuilt from AS4_PATH (RFC 6793 4.2.3).
        self.assertEqual(r.as_path, (BGPD_AS4, GOBGP2_AS), r.raw)
        upd = _updates(self.pcap, b, e, AS4L_FROM_GOBGP, False)[-1]
        self.assertIn(f"as_path=[{AS_TRANS} {GOBGP2_AS}]", upd)
        self.assertIn(f"as4_path=[{BGPD_AS4} {GOBGP2_AS}]", upd)
        self.assert_clean_log()

    def test_path_from_exabgp_rebuilt_for_four_octet_peer(self):
        """ExaBGP's [65010 23456] + AS4_PATH [65010 4200000005] reaches GoBGP rebuilt, bgpd's AS first."""
        lab = self.lab
        r = self.gobgp.wait_route(AS4L_FROM_EXABGP, ROUTE_TIMEOUT)
        self.assertEqual(r.as_path, (BGPD_AS4, EXABGP_AS, FAR_AS4), r.raw)
        upd = _updates(self.pcap, lab["exabgp"].ipv4, lab["bgpd"].ipv4, AS4L_FROM_EXABGP, False)[-1]
        self.assertIn(f"as_path=[{EXABGP_AS} {AS_TRANS}]", upd)
        self.assertIn(f"as4_path=[{EXABGP_AS} {FAR_AS4}]", upd)
        upd = _updates(self.pcap, lab["bgpd"].ipv4, lab["gobgp"].ipv4, AS4L_FROM_EXABGP, True)[-1]
        self.assertIn(f"as_path=[{BGPD_AS4} {EXABGP_AS} {FAR_AS4}]", upd)
        self.assertNotIn("as4_path", upd)
        self.assert_clean_log()


# --------------------------------------------------------------------------
# 6. route reflection


CLUSTER_ID = "192.0.2.254"
RR_FROM_BIRD = "198.51.100.0/28"
RR_FROM_FRR = "198.51.100.16/28"


class RouteReflectorTests(_LabCase):
    """bgpd reflects between two iBGP clients in AS65000: BIRD (bgpd dials) and FRR (dials bgpd)."""

    @classmethod
    def _build(cls) -> None:
        cls.lab = lab = Lab(["bgpd", "bird", "frr"]).open()
        b = lab["bgpd"]
        cls.bird = _bird(lab["bird"], BGPD_AS, [Neighbor(b.ipv4, BGPD_AS, passive=True)],
                         routes={RR_FROM_BIRD: {"local_pref": 150}})
        cls.frr = Frr(lab["frr"].ns, BGPD_AS, lab["frr"].router_id,
                      [Neighbor(b.ipv4, BGPD_AS)], routes={RR_FROM_FRR: {"local_pref": 160}})
        cls.bgpd = BgpdDriver(b.ns, BGPD_AS, b.router_id, [
            BgpdNeighbor(lab["bird"].ipv4, BGPD_AS, families=V4,
                         keys={"route_reflector_client": True}),
            BgpdNeighbor(lab["frr"].ipv4, BGPD_AS, families=V4, passive=True,
                         keys={"route_reflector_client": True})],
            cluster_id=CLUSTER_ID)
        cls.bird.start()
        cls.frr.start()
        cls.bgpd.start()
        for n in ("bird", "frr"):
            cls.bgpd.wait_established(lab[n].ipv4, ESTABLISH_TIMEOUT)

    def test_bird_route_reflected_to_frr(self):
        """BIRD's route at FRR: ORIGINATOR_ID 192.0.2.2, CLUSTER_LIST [cluster id], NEXT_HOP kept."""
        lab = self.lab
        r = self.frr.wait_route(RR_FROM_BIRD, ROUTE_TIMEOUT)
        raw = r.raw
        problems = []
        if raw.get("originatorId") != lab["bird"].router_id:
            problems.append(f"ORIGINATOR_ID {raw.get('originatorId')}")
        clusters = raw.get("clusterList", {}).get("list", [])
        if clusters != [CLUSTER_ID]:
            problems.append(f"CLUSTER_LIST {clusters}")
        if r.next_hop[:1] != (lab["bird"].ipv4,):
            problems.append(f"NEXT_HOP {r.next_hop}")
        if r.local_pref != 150:
            problems.append(f"LOCAL_PREF {r.local_pref}")
        if r.as_path != ():
            problems.append(f"AS_PATH {r.as_path}")
        self.fail_with_log([f"{x}; got {json.dumps(raw)}" for x in problems])
        self.assert_clean_log()

    def test_frr_route_reflected_to_bird(self):
        """FRR's route at BIRD: ORIGINATOR_ID 192.0.2.3, CLUSTER_LIST [cluster id], NEXT_HOP kept."""
        lab = self.lab
        r = self.bird.wait_route(RR_FROM_FRR, ROUTE_TIMEOUT)
        raw = r.raw
        problems = []
        m = re.search(r"BGP\.originator_id:\s*(\S+)", raw)
        if not m or m.group(1) != lab["frr"].router_id:
            problems.append(f"ORIGINATOR_ID {m and m.group(1)}")
        m = re.search(r"BGP\.cluster_list:\s*(.*)", raw)
        if not m or m.group(1).split() != [CLUSTER_ID]:
            problems.append(f"CLUSTER_LIST {m and m.group(1)}")
        if r.next_hop[:1] != (lab["frr"].ipv4,):
            problems.append(f"NEXT_HOP {r.next_hop}")
        if r.local_pref != 160:
            problems.append(f"LOCAL_PREF {r.local_pref}")
        self.fail_with_log([f"{x}; got {raw}" for x in problems])
        self.assert_clean_log()


# --------------------------------------------------------------------------
# 7. IPv6 NLRI over IPv4 sessions


V6_FROM_BGPD = "2001:db8:110::/48"
V6_FROM_BIRD = "2001:db8:111::/48"
V6_FROM_FRR = "2001:db8:112::/48"


class Ipv6OverIpv4Tests(_LabCase):
    """IPv4 sessions carrying IPv6 unicast: BIRD (bgpd dials) and FRR (dials bgpd)."""

    @classmethod
    def _build(cls) -> None:
        cls.lab = lab = Lab(["bgpd", "bird", "frr"]).open()
        b = lab["bgpd"]
        fams = ("ipv4", "ipv6")
        cls.bird = _bird(lab["bird"], BIRD_AS, [Neighbor(b.ipv4, BGPD_AS, passive=True,
                                                         families=fams)],
                         routes={V6_FROM_BIRD: {}})
        # FRR's own next hop on an IPv4 session is IPv4-mapped without zebra's
        # interface list; with zebra it knows its global IPv6 address.
        cls.frr = Frr(lab["frr"].ns, FRR_AS, lab["frr"].router_id,
                      [Neighbor(b.ipv4, BGPD_AS, families=fams)], routes={V6_FROM_FRR: {}},
                      zebra=True)
        cls.bgpd = BgpdDriver(b.ns, BGPD_AS, b.router_id, [
            BgpdNeighbor(lab["bird"].ipv4, BIRD_AS, families=BOTH,
                         keys={"next_hop_ipv6": b.ipv6}),
            BgpdNeighbor(lab["frr"].ipv4, FRR_AS, families=BOTH, passive=True,
                         keys={"next_hop_ipv6": b.ipv6})],
            originate=[{"prefix": V6_FROM_BGPD}], mrai_ebgp=0)
        cls.bird.start()
        cls.frr.start()
        cls.bgpd.start()
        for n in ("bird", "frr"):
            cls.bgpd.wait_established(lab[n].ipv4, ESTABLISH_TIMEOUT)
        info = cls.bgpd.established_info(lab["bird"].ipv4)
        assert info is not None

    def _check(self, recv: Any, prefix: str, as_path: tuple[int, ...]) -> list[str]:
        b = self.lab["bgpd"]
        try:
            r = recv.wait_route(prefix, ROUTE_TIMEOUT)
        except AssertionError as e:
            return [f"{recv.name} {prefix}: {e}"]
        bad = []
        if r.as_path != as_path:
            bad.append(f"AS_PATH {r.as_path} != {as_path}")
        if not r.next_hop or ipaddress.ip_address(r.next_hop[0]) != ipaddress.ip_address(b.ipv6):
            bad.append(f"NEXT_HOP {r.next_hop} != ({b.ipv6}, ...)")
        return [f"{recv.name} {prefix}: {x}; got {r!r}" for x in bad]

    def test_bgpd_ipv6_route_over_ipv4_sessions(self):
        """bgpd's IPv6 route reaches BIRD and FRR over IPv4 with next hop 2001:db8::1."""
        problems = []
        for recv in (self.bird, self.frr):
            problems += self._check(recv, V6_FROM_BGPD, (BGPD_AS,))
        self.fail_with_log(problems)
        self.assert_clean_log()

    def test_peer_ipv6_routes_through_bgpd(self):
        """BIRD's IPv6 route reaches FRR and FRR's reaches BIRD, both over IPv4, via bgpd's IPv6 next hop."""
        problems = self._check(self.frr, V6_FROM_BIRD, (BGPD_AS, BIRD_AS))
        problems += self._check(self.bird, V6_FROM_FRR, (BGPD_AS, FRR_AS))
        self.fail_with_log(problems)
        self.assert_clean_log()


__all__ = ["AddPathTests", "FourOctetLocalAsTests", "Ipv6OverIpv4Tests", "MaxPrefixTests",
           "RouteRefreshTests", "RouteReflectorTests", "SighupTests", "TwoOctetPeerTests"]
