"""Interop: bgpd as Graceful Restart helper for a restarting BIRD (RFC 4724).

Lab (``harness.Lab``, one segment): bgpd 192.0.2.1 AS 65000, BIRD 2
192.0.2.2 AS 65001 with ``graceful restart on`` (the restarting speaker),
GoBGP 192.0.2.3 AS 65003 receiving from bgpd; IPv4 unicast over IPv4 and
IPv6 unicast over IPv6 (2001:db8::1-3), one session each.  BIRD announces
three prefixes per family: KEEP (announced again unchanged after the
restart), CHANGE (announced again with other communities) and DROP (not
announced after the restart).  bgpd advertises the Graceful Restart
capability as helper (its default).

BIRD is stopped with SIGKILL, or with ``birdc graceful restart``: either
way its TCP connection to bgpd closes with no NOTIFICATION, which is how a
restarting speaker's session ends (RFC 4724 section 4.2).  It is started
again with ``-R`` (graceful restart recovery) on the new configuration, so
its OPEN carries the Restart State bit.
Checked:

* Section 4.2, helper: while BIRD is down and until its End-of-RIB, its
  routes stay at GoBGP: polled every 0.2 s, and no UPDATE bgpd sends to
  GoBGP (decoded from a capture of the segment) withdraws KEEP or CHANGE.
* After BIRD's End-of-RIB (section 2) the refreshed CHANGE reaches GoBGP with
  its new communities, and DROP, stale and not refreshed, is withdrawn
  (only after BIRD's End-of-RIB on the new session): nothing stale is left.

Needs root, bird, gobgpd and tcpdump; skips without them (fails under
CI=true, like the harness).
"""

from __future__ import annotations

import os
import re
import signal
import tempfile
import time
from typing import Any, ClassVar

from twisted.trial.unittest import SynchronousTestCase

from tests.interop import harness
from tests.interop.bgpd_driver import BgpdDriver, BgpdNeighbor
from tests.interop.capture_golden import (
    decode_open,
    decode_update,
    split_messages,
    streams,
    tcp_segments,
)
from tests.interop.harness import Bird, GoBGP, Lab, Neighbor, poll

BGPD_AS, BIRD_AS, GOBGP_AS = 65000, 65001, 65003
# Per family (one session each): the prefix announced again unchanged, the
# one announced again with other communities, the one not announced again.
PREFIXES = {
    "ipv4": ("198.51.100.0/27", "198.51.100.32/27", "198.51.100.64/27"),
    "ipv6": ("2001:db8:100::/48", "2001:db8:101::/48", "2001:db8:102::/48"),
}
KEEPS = tuple(p[0] for p in PREFIXES.values())
CHANGES = tuple(p[1] for p in PREFIXES.values())
DROPS = tuple(p[2] for p in PREFIXES.values())
ROUTES_BEFORE: dict[str, dict[str, Any]] = {}
ROUTES_AFTER: dict[str, dict[str, Any]] = {}
for _keep, _change, _drop in PREFIXES.values():
    ROUTES_BEFORE.update({_keep: {"communities": ["65001:1"]}, _change: {"communities": ["65001:2"]},
                          _drop: {"communities": ["65001:3"]}})
    ROUTES_AFTER.update({_keep: {"communities": ["65001:1"]}, _change: {"communities": ["65001:22"]}})
ESTABLISH_TIMEOUT = 40.0
ROUTE_TIMEOUT = 25.0
# How long BIRD stays down: long enough for bgpd to have acted on the loss.
DOWN_SECONDS = 4.0


class _RestartingBird(Bird):
    """BIRD that, once ``recovering`` is set, starts with ``-R`` (graceful restart recovery)."""

    recovering = False

    def _command(self) -> list[str]:
        return super()._command() + (["-R"] if self.recovering else [])


def _bgp_messages(pcap: str, src: str, dst: str) -> list[tuple[float, bytes]]:
    """(capture time of the segment that ended it, message) for each message ``src`` sent ``dst``."""
    out: list[tuple[float, bytes]] = []
    for st in streams(tcp_segments(pcap)):
        if st.src != src or st.dst != dst:
            continue
        # Timestamp each message by the segment holding its last byte.
        base = st.isn + 1 if st.isn is not None else min(s.seq for s in st.segs)
        ends = sorted(((s.seq - base) % 2**32 + len(s.payload), s.ts) for s in st.segs if s.payload)
        pos = 0
        for m in split_messages(st.data()):
            pos += len(m)
            ts = next((t for end, t in ends if end >= pos), ends[-1][1] if ends else 0.0)
            out.append((ts, m))
    return sorted(out, key=lambda x: x[0])


def _withdrawn(m: bytes) -> set[str]:
    """The prefixes an UPDATE withdraws (RFC 4271 section 4.3, MP_UNREACH_NLRI of RFC 4760)."""
    if m[18] != 2:
        return set()
    _kind, desc = decode_update(m, True, set())
    got: set[str] = set()
    for group in re.findall(r"withdrawn=\[([^\]]*)\]", desc):
        got.update(group.split())
    return got


def _is_eor(m: bytes) -> bool:
    return m[18] == 2 and decode_update(m, True, set())[0] == "eor"


class GracefulRestartBirdTests(SynchronousTestCase):
    """BIRD restarts gracefully; bgpd keeps its routes, then refreshes and flushes them."""

    lab: ClassVar[Lab | None] = None

    def setUp(self) -> None:
        harness.require_root()
        harness.require_binary("tcpdump")
        self.lab = Lab(["bgpd", "bird", "gobgp"]).open()
        self.addCleanup(self.lab.close)
        lab = self.lab
        self.pcap = os.path.join(tempfile.mkdtemp(prefix="gr-", dir=lab["bgpd"].ns.workdir),
                                 "segment.pcap")
        self.capture = lab.capture(self.pcap)
        self.addCleanup(self.capture.stop)
        b, r, g = lab["bgpd"], lab["bird"], lab["gobgp"]
        # IPv4 unicast over IPv4 and IPv6 unicast over IPv6: two GR sessions.
        self.bird = _RestartingBird(
            r.ns, BIRD_AS, r.router_id,
            [Neighbor(b.ipv4, BGPD_AS, local_address=r.ipv4, passive=True, graceful_restart=True,
                      hold_time=9),
             Neighbor(b.ipv6, BGPD_AS, local_address=r.ipv6, passive=True, graceful_restart=True,
                      hold_time=9)],
            routes=ROUTES_BEFORE,
            # Recovery waits for the peers' End-of-RIB; bound it anyway.
            extra_config="graceful restart wait 20;")
        self.bird.start()
        self.addCleanup(self.bird.stop)
        self.gobgp = GoBGP(g.ns, GOBGP_AS, g.router_id, [Neighbor(b.ipv4, BGPD_AS, passive=True),
                                                          Neighbor(b.ipv6, BGPD_AS, passive=True)])
        self.gobgp.start()
        self.addCleanup(self.gobgp.stop)
        self.bgpd = BgpdDriver(b.ns, BGPD_AS, b.router_id, [
            BgpdNeighbor(r.ipv4, BIRD_AS, families=("ipv4-unicast",), hold_time=9),
            BgpdNeighbor(r.ipv6, BIRD_AS, families=("ipv6-unicast",), hold_time=9),
            BgpdNeighbor(g.ipv4, GOBGP_AS, families=("ipv4-unicast",)),
            BgpdNeighbor(g.ipv6, GOBGP_AS, families=("ipv6-unicast",)),
        ], listen_addresses=[b.ipv4, b.ipv6])
        self.bgpd.start()
        self.addCleanup(self.bgpd.stop)
        for addr in (r.ipv4, r.ipv6, g.ipv4, g.ipv6):
            self.bgpd.wait_established(addr, ESTABLISH_TIMEOUT)

    def _gobgp_table(self) -> dict[str, harness.Route]:
        return {**self.gobgp.routes("ipv4"), **self.gobgp.routes("ipv6")}

    def test_bird_killed_keeps_routes_then_flushes_stale(self):
        """BIRD killed and back with -R: GoBGP never loses KEEP/CHANGE; DROP goes after BIRD's EoR."""
        self.check_restart(self.kill_bird)

    def test_birdc_graceful_restart(self):
        """``birdc graceful restart``, then back with -R: the same as after a kill."""
        self.check_restart(self.birdc_graceful_restart)

    def kill_bird(self) -> None:
        assert self.bird.proc is not None
        self.bird.proc.signal(signal.SIGKILL)
        self.bird.proc.stop()

    def birdc_graceful_restart(self) -> None:
        # BIRD closes its sessions without a NOTIFICATION and exits.
        out = self.bird.birdc("graceful", "restart")
        assert self.bird.proc is not None
        poll(lambda: not self.bird.proc.alive(), 15, 0.1, f"BIRD to exit after: {out.strip()}")
        self.bird.proc.stop()

    def check_restart(self, restart: Any) -> None:
        r, b, g = self.lab["bird"], self.lab["bgpd"], self.lab["gobgp"]
        poll(lambda: set(ROUTES_BEFORE) <= set(self._gobgp_table()), ROUTE_TIMEOUT, 0.25,
             "GoBGP to receive BIRD's routes through bgpd")
        for p in CHANGES:
            self.assertIn("65001:2", self._gobgp_table()[p].communities)

        # The restart, with no NOTIFICATION; BIRD comes back in graceful
        # restart recovery on a configuration without the DROPs.
        restart_at = time.time()
        restart()
        missing: list[tuple[float, list[str]]] = []
        kept = KEEPS + CHANGES

        def watch(seconds: float, until: Any = None) -> Any:
            # Bounded: at most seconds / 0.2 + 2 looks at GoBGP's table.
            deadline = time.monotonic() + seconds
            for _ in range(int(seconds / 0.2) + 2):
                table = self._gobgp_table()
                gone = [p for p in kept if p not in table]
                if gone:
                    missing.append((time.time() - restart_at, gone))
                if until is not None and until(table):
                    return table
                if time.monotonic() >= deadline:
                    return None
                time.sleep(0.2)
            return None

        watch(DOWN_SECONDS)
        self.assertEqual(missing, [], "routes withdrawn at GoBGP while BIRD was down")
        table = self._gobgp_table()
        self.assertEqual([p for p in DROPS if p not in table], [],
                         "a stale DROP must stay until BIRD's End-of-RIB")
        self.assertIn("graceful restart: keeping its routes", self.bgpd.log())

        self.bird.announced = {p: dict(a) for p, a in ROUTES_AFTER.items()}
        self.bird.recovering = True
        self.bird.start()
        done = watch(ROUTE_TIMEOUT + ESTABLISH_TIMEOUT, lambda t: (
            not set(DROPS) & set(t) and all(p in t and "65001:22" in t[p].communities
                                            for p in CHANGES)))
        table = self._gobgp_table()
        self.assertIsNotNone(done, f"after the restart GoBGP has {sorted(table)}, CHANGEs "
                                   f"{[table.get(p) for p in CHANGES]}; bgpd log:\n"
                                   f"{self.bgpd.log()[-3000:]}")
        # Settle a moment, then nothing stale may be left and nothing kept went.
        watch(2.0)
        self.assertEqual(missing, [], "routes withdrawn at GoBGP during the restart")
        self.assertEqual(set(self._gobgp_table()), set(kept))
        for addr in (b.ipv4, b.ipv6):
            self.assertEqual(self.bird.session_state(addr), "established")

        # The wire, per family: what bgpd told GoBGP, and when BIRD's End-of-RIB came.
        self.capture.stop()
        for (keep, change, drop), src, mid, dst in (
                (PREFIXES["ipv4"], r.ipv4, b.ipv4, g.ipv4), (PREFIXES["ipv6"], r.ipv6, b.ipv6, g.ipv6)):
            to_gobgp = [(t, m) for t, m in _bgp_messages(self.pcap, mid, dst) if t >= restart_at]
            withdrawals = [(t, _withdrawn(m)) for t, m in to_gobgp if _withdrawn(m)]
            self.assertEqual([w for w in withdrawals if w[1] & {keep, change}], [],
                             "bgpd withdrew a route BIRD was restarting with")
            drop_wd = [t for t, w in withdrawals if drop in w]
            self.assertEqual(len(drop_wd), 1, withdrawals)
            from_bird = [(t, m) for t, m in _bgp_messages(self.pcap, src, mid) if t >= restart_at]
            opens = [decode_open(m)[0] for _t, m in from_bird if m[18] == 1]
            self.assertTrue(opens and "graceful-restart flags=R" in opens[0],
                            f"the restarted BIRD's OPEN to {mid} has no Restart State bit: {opens}")
            eors = [t for t, m in from_bird if _is_eor(m)]
            self.assertTrue(eors, f"no End-of-RIB from the restarted BIRD to {mid} in the capture")
            self.assertGreaterEqual(drop_wd[0], eors[0],
                                    f"{drop} was withdrawn before BIRD's End-of-RIB")
