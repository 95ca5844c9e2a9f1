"""Full-table convergence through a router in the middle, over real TCP sessions.

A feeder (bench/bgp_feeder.py) announces an Internet-shaped table -- at scale
1.0 ``bench.synthetic``'s 1,040,000 IPv4 prefixes over 260,000 AS paths, none
in special-purpose space (127/8, 10/8, ...), and 225,000 IPv6
prefixes over 140,000 paths; mostly /24 and /48, communities on many routes --
to the router in the middle, which sends it on to a receiver
(bench/bgp_sink.py).  Every session is eBGP (RFC 4271): feeder AS 65001, the
middle AS 65000, the sink AS 65002, so the middle router prepends its AS and
rewrites next hops; IPv6 rides in MP_REACH_NLRI over the IPv4 sessions
(RFC 4760).  Policies accept everything.

The same workload runs with each router in turn (bgpd, BIRD 2, GoBGP and,
with --with-frr, FRR's bgpd), one at a time, plus a "wire baseline" in which
the feeder talks to the sink directly: that is what the sink and feeder cost
on their own, so a router's figure means something only well above it.

With ``--feeders N`` (N > 1) N feeders send the same table at once, each
with its own AS first (65001, then 65012, 65013, ...) and its own address as
next hop: every prefix then has N candidate paths of equal length, and the
decision process (RFC 4271 9.1.2.2) picks one per prefix while the tables are
still arriving -- the load under which routes were once lost.  Each feeder
also receives the others' routes from the router (they are all eBGP peers).

Topology: harness ``Lab(["feeder", "mid", "sink", "feeder2", ..., "probe"])``,
namespaces on one segment: feeder 192.0.2.1, mid 192.0.2.2, sink 192.0.2.3
(2001:db8::1-3), feeder K at 192.0.2.(K+2), and for bgpd a stall probe
(bench/stall_probe.py) at the next address.  The middle router starts first,
then the sink, which connects to it; once that session is Established the
feeders are started together (``--stagger S``: feeder K S seconds after
feeder K-1), each sending its table as soon as its own session is up, so
later sessions come up while earlier tables are still being passed on
(``--barrier``: none sends before all are Established).  With
``--sink-late S`` the sink connects only S seconds after every feeder has
begun sending: its session comes up while the router is still passing the
tables on (its initial table and End-of-RIB, RFC 4724 section 2, then go
out while other changes are still queued).  ``--pace S`` spreads each
feeder's table over at least S seconds, so that a late sink comes up in the
middle of the load on a fast machine too.

The time is from the first UPDATE byte any feeder wrote to the sink first
holding every prefix of both families.  The run then goes on until every
feeder has written its table and, for 5 s, the sink has had no UPDATE and
the router no CPU to speak of; only if the sink then still holds exactly the
table does the run count ("held" is what it ended with).  Through bgpd the
sink also checks that every prefix came through feeder 1 (its lowest BGP
Identifier wins the tie, RFC 4271 9.1.2.2 (f)): a prefix held through
another feeder is "stale", a best-path change bgpd never sent.  The middle
router's VmRSS/VmHWM are read from /proc every 0.2 s; bytes per prefix =
(peak RSS - RSS before the feeders connected) / prefixes.  For bgpd,
"longest stall" is the probe's longest wait for bgpd's event loop during
the load, and in brackets after it, while bgpd drops the feeders' sessions
(stopped at the end) and withdraws their routes.

Prints one line, e.g.::

    rib_scale: 1,265,000 prefixes (1,040,000 v4 + 225,000 v6) from 1 feeder
    bgpd: 40.1s 31,262 pfx/s peak 620 MiB 490 B/pfx held 1,265,000 session drops 0
    longest stall 0.41s  bird: ...  gobgp: ...  wire baseline: 3.1s 404,512 pfx/s

    sudo .venv/bin/python bench/rib_scale.py                       # full table, bgpd, bird, gobgp
    sudo .venv/bin/python bench/rib_scale.py --scale 0.02 --routers bgpd   # CI smoke size
    sudo .venv/bin/python bench/rib_scale.py --routers bird --with-frr
    sudo .venv/bin/python bench/rib_scale.py --feeders 4 --routers bgpd --no-wire

``--policy ixp`` (bgpd, one feeder) puts the README's IXP route-server import
filter (``examples/ixp-route-server.toml``'s ``ixp-in``: 10 terms, a
5,000-entry registered-prefix set drawn from the table, an AS-path regex) on
the feeder session; the registered set also covers every prefix up to /24 and
/48, so nearly the whole table is accepted and the run moves as many routes as
without it (``bench/policy.py --for-feed``).  The feeder is then AS3333: a
private AS in every path would make the filter's bogon-ASN term reject all.
The sink waits for exactly what the filter accepts (counted, not matched
against the feed's prefixes).

``--churn`` (issue 13): once the sink holds the table and the run is quiet,
the first feeder changes random prefixes of its table (``bench/churn.py``:
path changes, withdrawals and re-announcements) at ``--churn-start``
UPDATEs/s for ``--churn-step`` seconds, then at twice that, and so on, each
announcement stamped with the time it was written; a step counts when the
sink saw every change of it within 1 s and the router took the UPDATEs at
the rate.  At the first step that fails the churn stops; ``churn`` is the
highest rate of a step that counted (0: none), then each step's verdict,
and the router's CPU seconds for the whole churn with the UPDATEs it was
sent, and per UPDATE ("load cpu" is the same for the load): on a busy machine
these hold where the wall-clock rates do not.
For every router the line also gives the largest gap between two reads of
what the router sent to the sink or a feeder during the whole run
("keepalive gap", with the negotiated hold time: KEEPALIVEs are due every
third of it, RFC 4271 section 4.4).

Needs root (network namespaces).  Exit status 0 when every router delivered
(and still held, at the end) every prefix; 1 on any shortfall.
"""

from __future__ import annotations

import argparse
import contextlib
import json
import os
import shutil
import subprocess
import sys
import tempfile
import textwrap
import threading
import time
from collections.abc import Callable
from dataclasses import dataclass, field

REPO = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
sys.path.insert(0, REPO)

from bench.churn import verdict  # noqa: E402
from tests.interop.harness import (  # noqa: E402
    Bird,
    Daemon,
    Frr,
    GoBGP,
    Lab,
    Neighbor,
    Process,
    require_binary,
)

AS_FEEDER, AS_MID, AS_SINK = 65001, 65000, 65002
#: --policy ixp: the feeder's AS (see the module docstring).
IXP_FEEDER_AS = 3333
FEEDER_IP, MID_IP, SINK_IP = "192.0.2.1", "192.0.2.2", "192.0.2.3"
MAX_FEEDERS = 16
# After the last feeder has written its table: this many seconds with no
# UPDATE at the sink and (almost) no router CPU, and the run is over.
QUIET_SECONDS = 5
QUIET_CPU = 0.15  # router CPU seconds per second that still count as quiet
DEFAULT_ROUTERS = "bgpd,bird,gobgp"
KNOWN_ROUTERS = ("bgpd", "bird", "gobgp", "frr")
# How long the sink may take to reach Established with a freshly started router.
SESSION_TIMEOUT = 60.0


@dataclass(frozen=True)
class Feeder:
    """One feeding speaker: its lab node, AS, addresses and prepared table."""

    node: str
    asn: int
    ip: str
    ip6: str
    feed: str


def plan_feeders(n: int, tmp: str, first_as: int = AS_FEEDER) -> list[Feeder]:
    """Feeder 1 keeps the single-feeder addresses; feeder K > 1 is node index K + 1."""
    out = []
    for k in range(1, n + 1):
        index = 0 if k == 1 else k + 1
        out.append(Feeder("feeder" if k == 1 else f"feeder{k}",
                          first_as if k == 1 else 65010 + k,
                          f"192.0.2.{index + 1}", f"2001:db8::{index + 1:x}",
                          os.path.join(tmp, f"feed{k}.bin")))
    return out


def lab_names(feeders: list[Feeder]) -> list[str]:
    """Node names in address order (see ``plan_feeders``), the probe last."""
    return ["feeder", "mid", "sink"] + [f.node for f in feeders[1:]] + ["probe"]


def log(text: str) -> None:
    """Progress for the operator, on stderr; stdout carries only the result line."""
    sys.stderr.write(f"[rib_scale {time.strftime('%H:%M:%S')}] {text}\n")
    sys.stderr.flush()


@dataclass
class Result:
    """One run's figures.  ``seconds`` is None when it did not converge."""

    name: str
    total: int
    seconds: float | None = None
    got: int = 0
    base_kib: int = 0
    peak_kib: int = 0
    problem: str = ""
    limit: float = 0.0
    #: bgpd only: sessions that left Established during the run (hold 9 s, so a
    #: reactor blocked for more than a few seconds would show here).
    drops: int | None = None
    #: bgpd only: the stall probe's longest wait, seconds (None: no sample),
    #: during the load, and after it while bgpd dropped the feeders' sessions.
    stall: float | None = None
    stall_leaving: float | None = None
    #: Monotonic time the load was over (just before the feeders were stopped).
    load_end: float = 0.0
    #: Prefixes the sink ended holding through another feeder than the best.
    stale: int = 0
    #: The router's CPU seconds (user + system) over its whole run, read
    #: just before it is stopped (bench/monitor.py compares them).
    cpu: float | None = None
    #: --churn: the highest rate of a step the router kept up with (None: no churn run)
    churn_rate: float | None = None
    churn_steps: list[str] = field(default_factory=list)
    churn_peak_kib: int = 0
    #: The router's CPU seconds (user + system) for the load (up to the end of
    #: the quiet period) and for the churn, and the UPDATEs the churn wrote:
    #: figures that hold on a busy machine, where wall-clock rates do not.
    load_cpu: float | None = None
    churn_cpu: float | None = None
    churn_msgs: int = 0
    #: paths the router holds per prefix (one per feeder)
    paths_per_prefix: int = 1
    #: largest gap between two reads from the router (sink and feeders), s; the hold time
    gap: float | None = None
    hold: int | None = None

    def _tail(self) -> str:
        text = f" stale {self.stale:,}" if self.stale else ""
        if self.drops is not None:
            text += f" session drops {self.drops}"
        if self.stall is not None:
            text += f" longest stall {self.stall:.2f}s"
        if self.stall_leaving is not None:
            text += f" ({self.stall_leaving:.2f}s as the feeders left)"
        if self.gap is not None:
            text += f" keepalive gap {self.gap:.2f}s (hold {self.hold}s)"
        if self.load_cpu is not None:
            text += f" load cpu {self.load_cpu:.1f}s"
        if self.churn_rate is not None:
            text += f" churn {self.churn_rate:,.0f} upd/s"
            if self.churn_peak_kib:
                text += f" (peak {self.churn_peak_kib / 1024:,.0f} MiB)"
            if self.churn_cpu is not None and self.churn_msgs:
                text += (f" churn cpu {self.churn_cpu:.1f}s for {self.churn_msgs:,} UPDATEs"
                         f" = {1e6 * self.churn_cpu / self.churn_msgs:,.0f} us/UPDATE")
            text += f" [{'; '.join(self.churn_steps)}]"
        return text

    def describe(self) -> str:
        if self.seconds is None:
            what = self.problem or f"did not converge in {self.limit:.0f} s"
            return (f"{self.name}: {what} (sink had {self.got:,} of {self.total:,} prefixes)"
                    + self._tail())
        rate = self.total / self.seconds if self.seconds > 0 else float("inf")
        secs = f"{self.seconds:.2f}" if self.seconds < 10 else f"{self.seconds:.1f}"
        text = f"{self.name}: {secs}s {rate:,.0f} pfx/s"
        if self.peak_kib:
            per = max(0, self.peak_kib - self.base_kib) * 1024 / self.total
            text += f" peak {self.peak_kib / 1024:,.0f} MiB {per:,.0f} B/pfx"
            if self.paths_per_prefix > 1:
                text += f" {per / self.paths_per_prefix:,.0f} B/path"
        return text + f" held {self.got:,}" + self._tail()


@dataclass
class RssSampler:
    """Reads VmRSS and VmHWM of one PID every ``interval`` seconds, in a thread."""

    pid: int
    interval: float = 0.2
    peak_kib: int = 0
    last_kib: int = 0
    _stop: threading.Event = field(default_factory=threading.Event)
    _thread: threading.Thread | None = None

    def read(self) -> tuple[int, int]:
        """(VmRSS, VmHWM) in KiB now; (0, 0) once the process is gone."""
        rss = hwm = 0
        try:
            with open(f"/proc/{self.pid}/status") as f:
                for line in f:
                    if line.startswith("VmRSS:"):
                        rss = int(line.split()[1])
                    elif line.startswith("VmHWM:"):
                        hwm = int(line.split()[1])
        except OSError:
            pass
        return rss, hwm

    def _sample(self) -> None:
        rss, hwm = self.read()
        if rss:
            self.last_kib = rss
        self.peak_kib = max(self.peak_kib, rss, hwm)

    def start(self) -> None:
        def loop() -> None:
            while not self._stop.wait(self.interval):
                self._sample()
        self._sample()
        self._thread = threading.Thread(target=loop, name=f"rss-{self.pid}", daemon=True)
        self._thread.start()

    def stop(self) -> None:
        self._sample()
        self._stop.set()
        if self._thread is not None:
            self._thread.join(5)


def events(proc: Process) -> list[dict]:
    """The JSON event lines a bench speaker has written so far."""
    out = []
    for line in proc.output().splitlines():
        if line.startswith("{"):
            try:
                out.append(json.loads(line))
            except ValueError:
                continue
    return out


def last_event(proc: Process, *names: str) -> dict | None:
    found = None
    for e in events(proc):
        if e.get("event") in names:
            found = e
    return found


def wait_event(proc: Process, names: tuple[str, ...], timeout: float) -> dict | None:
    """Bounded wait for one of ``names`` (or the process ending); return it or None."""
    deadline = time.monotonic() + timeout
    while True:
        e = last_event(proc, *names)
        if e is not None or not proc.alive() or time.monotonic() >= deadline:
            return e
        time.sleep(0.1)


def speaker(lab: Lab, node: str, module: str, args: list[str], log_name: str) -> Process:
    """Start bench/<module>.py inside ``node``'s namespace."""
    return lab[node].ns.popen([sys.executable, "-m", f"bench.{module}", *args], log_name=log_name,
                              env={"PYTHONPATH": REPO, "PYTHONUNBUFFERED": "1"}, cwd=REPO)


# -- the routers in the middle --------------------------------------------------


def _neighbors(feeders: list[Feeder]) -> list[Neighbor]:
    # Every session is opened by the bench speakers, so the router only listens.
    return [Neighbor(f.ip, f.asn, local_address=MID_IP, passive=True, families=("ipv4", "ipv6"))
            for f in feeders] + [Neighbor(SINK_IP, AS_SINK, local_address=MID_IP, passive=True,
                                          families=("ipv4", "ipv6"))]


class _BenchBird(Bird):
    """BIRD 2 with an IPv6 next hop to use towards the IPv4-transport peers.

    Without ``next hop address`` BIRD has no IPv6 address of its own for
    IPv6 routes sent over an IPv4 session.
    """

    def _write_config(self) -> None:
        super()._write_config()
        path = os.path.join(self.dir, "bird.conf")
        with open(path) as f:
            conf = f.read()
        conf = conf.replace("        extended next hop off;",
                            "        extended next hop off;\n        next hop address 2001:db8::2;")
        with open(path, "w") as f:
            f.write(conf)


class _Bgpd:
    """Our own daemon, in the foreground under twistd (``Netns.popen_bgpd``)."""

    def __init__(self, lab: Lab, feeders: list[Feeder], policy: str = "", extra: str = "") -> None:
        self.ns = lab["mid"].ns
        self.feeders = feeders
        #: ``[sets]`` / ``[policies]`` text; when set, the first feeder's import policy is ixp-in.
        self.policy = policy
        #: More config tables, as they are (bench/monitor.py's [bmp]).
        self.extra = extra
        self.proc: Process | None = None

    def start(self) -> _Bgpd:
        conf = os.path.join(self.ns.workdir, "bgpd.toml")
        peers = ""
        who = [(f.ip, f.asn, f"feeder {f.node}") for f in self.feeders] + [(SINK_IP, AS_SINK, "sink")]
        for addr, asn, desc in who:
            ixp = self.policy and addr == self.feeders[0].ip
            import_policy = '["ixp-in"]' if ixp else '["accept-all"]'
            peers += textwrap.dedent(f"""
                [[neighbors]]
                address = "{addr}"
                remote_as = {asn}
                description = "bench {desc}"
                passive = true
                hold_time = 9
                local_address = "{MID_IP}"
                families = ["ipv4-unicast", "ipv6-unicast"]
                import_policy = {import_policy}
                export_policy = ["accept-all"]
                """)
        with open(conf, "w") as f:
            f.write(textwrap.dedent(f"""\
                [bgp]
                local_as = {AS_MID}
                router_id = "{MID_IP}"
                listen_addresses = ["{MID_IP}"]
                listen_port = 179
                state_dir = "{os.path.join(os.path.dirname(conf), 'bgpd-state')}"
                """) + peers + "\n" + self.policy + "\n" + self.extra)
        self.proc = self.ns.popen_bgpd(conf)
        return self

    def stop(self) -> None:
        if self.proc is not None:
            self.proc.stop(timeout=30)

    def log(self) -> str:
        return self.proc.output() if self.proc else ""


def start_router(lab: Lab, name: str, feeders: list[Feeder], policy: str = "",
                 extra: str = "") -> Daemon | _Bgpd:
    """Start ``name`` in the mid namespace; it only listens (every peer is passive).

    ``policy``: bgpd's ``[sets]`` / ``[policies]`` for --policy ixp.
    """
    ns = lab["mid"].ns
    if name == "bgpd":
        return _Bgpd(lab, feeders, policy, extra).start()
    if name == "bird":
        return _BenchBird(ns, AS_MID, MID_IP, _neighbors(feeders)).start()
    if name == "gobgp":
        return GoBGP(ns, AS_MID, MID_IP, _neighbors(feeders)).start()
    if name == "frr":
        return Frr(ns, AS_MID, MID_IP, _neighbors(feeders)).start()
    raise ValueError(f"unknown router {name!r}")


# -- one run ------------------------------------------------------------------


def cpu_seconds(pid: int) -> float:
    """User + system CPU time of ``pid`` so far (0.0 once it is gone)."""
    try:
        with open(f"/proc/{pid}/stat") as f:
            fields = f.read().rsplit(")", 1)[1].split()
    except (OSError, IndexError):
        return 0.0
    # utime and stime are fields 14 and 15 of stat(5); fields[0] is field 3.
    return (int(fields[11]) + int(fields[12])) / os.sysconf("SC_CLK_TCK")


@dataclass(frozen=True)
class ChurnArgs:
    """--churn: first rate, last rate, seconds per step (bench/churn.py)."""

    start: float = 500.0
    max_rate: float = 256000.0
    step: float = 5.0


def run_churn(res: Result, feeder: Process, sink: Process, go: str, stop: str,
              churn: ChurnArgs) -> None:
    """Let the first feeder churn; judge each step from the sink's stamps; stop at the first miss."""
    with open(go, "w"):
        pass
    steps_max = 1
    rate = churn.start
    while rate * 2 <= churn.max_rate:
        rate *= 2
        steps_max += 1
    deadline = time.monotonic() + steps_max * (churn.step + 6) + 120
    judged: set[int] = set()
    failed = False
    res.churn_rate = 0.0
    while time.monotonic() < deadline:
        now = time.monotonic()
        steps = {e["step"]: e for e in events(feeder) if e.get("event") == "churn_step"}
        seen = last_event(sink, "churn")
        for k in sorted(steps):
            st = steps[k]
            if k in judged:
                continue
            # The sink reports once a second: wait for a report taken a full
            # second after the step's last change (or give up waiting).
            if not (seen and seen["t"] >= st["t1"] + 1.0) and now < st["t1"] + 2.5:
                break
            judged.add(k)
            ok, why = verdict(st, (seen or {}).get("steps", {}).get(str(k)))
            res.churn_steps.append(f"{st['rate']:,.0f}/s {'kept up' if ok else 'behind'}: {why}")
            log(f"{res.name}: churn step {k} at {st['rate']:,.0f} UPDATEs/s: {res.churn_steps[-1]}")
            if ok and not failed:
                res.churn_rate = st["rate"]
            elif not ok and not failed:
                failed = True
                with open(stop, "w"):
                    pass
        done = last_event(feeder, "churn_done")
        if done is not None and len(judged) >= done["steps"]:
            return
        if not feeder.alive() or not sink.alive():
            res.churn_steps.append("a speaker exited")
            return
        time.sleep(0.2)
    res.churn_steps.append("timed out")


@dataclass(frozen=True)
class Shape:
    """How the feeders and the sink come up (see the module docstring)."""

    #: Feeder K starts this many seconds after feeder K-1.
    stagger: float = 0.0
    #: No feeder sends before every feeder is Established.
    barrier: bool = False
    #: None: the sink is Established before any feeder connects; S: it
    #: connects S seconds after every feeder has begun sending.
    sink_delay: float | None = None
    #: Each feeder spreads its table over at least this many seconds.
    pace: float = 0.0


def _converge(lab: Lab, res: Result, sinks: list[Process], feeders: list[Feeder], target: str,
              timeout: float, mid: Process | None = None,
              sampler: RssSampler | None = None,
              drops: Callable[[], int] | None = None, shape: Shape = Shape(),
              make_sink: Callable[[], Process] | None = None,
              churn: ChurnArgs | None = None) -> Result:
    """Start the feeders towards ``target`` and wait until the sink has all, and stays so.

    ``sinks`` holds the running sink, or is empty and ``make_sink`` starts it
    (``shape.sink_delay``) and it is added there, for the caller to stop.
    ``drops`` counts the router's session drops so far; it is read before
    the feeders are stopped, whose own ends are no drops.
    """
    if sampler is not None:
        res.base_kib = sampler.read()[0]
        sampler.start()
    go = os.path.join(lab["mid"].ns.workdir, f"go-{res.name.replace(' ', '-')}")
    churn_go, churn_stop = go + ".churn", go + ".churn-stop"
    for path in (go, churn_go, churn_stop):
        with contextlib.suppress(FileNotFoundError):
            os.unlink(path)
    procs: list[Process] = []
    load_peak = 0
    try:
        start = time.monotonic()
        deadline = start + timeout
        for i, f in enumerate(feeders):
            if i and shape.stagger:
                time.sleep(shape.stagger)
            argv = ["send", "--feed", f.feed, "--connect", target, "--asn", str(f.asn),
                    "--router-id", f.ip, "--connect-timeout", str(SESSION_TIMEOUT),
                    "--pace", str(shape.pace)]
            if churn is not None and i == 0:
                argv += ["--churn-go", churn_go, "--churn-stop", churn_stop,
                         "--churn-start", str(churn.start), "--churn-max", str(churn.max_rate),
                         "--churn-step", str(churn.step)]
            procs.append(speaker(lab, f.node, "bgp_feeder",
                                 argv + (["--go-file", go] if shape.barrier else []),
                                 f"feeder-{f.node}-{res.name}.log"))
        if shape.barrier:
            # Every feeder Established before any of them sends.
            while time.monotonic() < deadline:
                ups = [last_event(p, "established", "error", "closed", "notification") for p in procs]
                if all(u is not None for u in ups) or not all(p.alive() for p in procs):
                    break
                time.sleep(0.1)
            bad = [f.node for f, p in zip(feeders, procs, strict=True)
                   if (last_event(p, "established") is None)]
            if bad:
                res.problem = f"feeder session(s) did not come up: {', '.join(bad)}"
                return res
            with open(go, "w"):
                pass
        next_note = time.monotonic() + 30
        first_t: float | None = None
        all_first: float | None = None
        done: dict | None = None
        quiet = 0
        next_tick = time.monotonic() + 1.0
        last_updates = -1
        last_cpu = cpu_seconds(mid.pid) if mid is not None else 0.0
        while time.monotonic() < deadline:
            if all_first is None:
                firsts = [e["t"] for e in (last_event(p, "first_update") for p in procs) if e]
                first_t = min(firsts) if firsts else None
                all_first = max(firsts) if len(firsts) == len(procs) else None
            if not sinks:
                # The late sink: its session comes up while the tables are
                # still being passed on.
                if (make_sink is not None and shape.sink_delay is not None and all_first is not None
                        and time.monotonic() >= all_first + shape.sink_delay):
                    sinks.append(make_sink())
                else:
                    time.sleep(0.02)
                    continue
            sink = sinks[0]
            if done is None:
                done = last_event(sink, "complete")
            trouble = None
            for p in procs + [sink]:
                trouble = trouble or last_event(p, "error", "notification", "closed")
            if trouble is not None:
                res.problem = f"session failed: {trouble.get('event')} {trouble.get('reason', '')}".strip()
                break
            gone = [f.node for f, p in zip(feeders, procs, strict=True) if not p.alive()]
            if not sink.alive():
                gone.append("sink")
            if mid is not None and not mid.alive():
                gone.append(res.name)
            if gone:
                res.problem = f"{', '.join(gone)} exited"
                break
            now = time.monotonic()
            if now >= next_tick:
                # Once a second: has anything moved since the last tick?
                next_tick = now + 1.0
                p = last_event(sink, "progress") or {}
                cpu = cpu_seconds(mid.pid) if mid is not None else 0.0
                sent_all = all(last_event(x, "sent") is not None for x in procs)
                still = p.get("updates", 0) == last_updates and cpu - last_cpu < QUIET_CPU
                quiet = quiet + 1 if sent_all and still and p else 0
                last_updates, last_cpu = p.get("updates", 0), cpu
                if quiet >= QUIET_SECONDS:
                    break
            if now >= next_note:
                next_note += 30
                p = last_event(sink, "progress") or {}
                log(f"{res.name}: {now - start:.0f} s, sink has "
                    f"{p.get('v4', 0):,} v4 + {p.get('v6', 0):,} v6")
            time.sleep(0.1)
        if not sinks:
            res.problem = res.problem or "the feeders never all began sending"
            return res
        # What the sink holds at the end is what counts; ``complete`` only
        # dates the moment it first held everything.
        time.sleep(1.2)
        p = last_event(sinks[0], "progress") or {}
        res.got = p.get("v4", 0) + p.get("v6", 0)
        res.stale = p.get("stale", 0)
        if done is not None and first_t is not None and p.get("whole"):
            res.seconds = done["t"] - first_t
            if mid is not None:
                res.load_cpu = cpu_seconds(mid.pid)
            if churn is not None:
                # Peak RSS per prefix is the load's; the churn's is its own figure.
                load_peak = sampler.peak_kib if sampler is not None else 0
                run_churn(res, procs[0], sinks[0], churn_go, churn_stop, churn)
                if mid is not None and res.load_cpu is not None:
                    res.churn_cpu = cpu_seconds(mid.pid) - res.load_cpu
                res.churn_msgs = sum(e.get("msgs", 0) for e in events(procs[0])
                                     if e.get("event") == "churn_step")
        elif not res.problem:
            stray = last_event(sinks[0], "stray")
            if quiet >= QUIET_SECONDS:
                if res.stale and res.got == res.total:
                    res.problem = "settled on paths the router did not choose last"
                else:
                    res.problem = "settled short" if done is None else "held every prefix, then lost some"
            if stray is not None:
                res.problem = ((res.problem or f"did not converge in {timeout:.0f} s")
                               + f", and sent {stray['count']:,} prefixes the feeder never announced")
    finally:
        if sampler is not None:
            sampler.stop()
            res.peak_kib = load_peak or sampler.peak_kib
            if load_peak:
                res.churn_peak_kib = sampler.peak_kib
        if drops is not None:
            res.drops = drops()
        res.load_end = time.monotonic()
        gaps = [e["s"] for p in procs + sinks[:1] for e in events(p) if e.get("event") == "gap"]
        up = last_event(sinks[0], "established") if sinks else None
        if up is not None:
            res.gap = max(gaps, default=0.0)
            res.hold = up.get("hold")
        for p in procs:
            p.stop()
    return res


def wait_idle(pid: int, seconds: float = 2.0, limit: float = 120.0) -> None:
    """Until ``pid`` has used (almost) no CPU for ``seconds`` in a row, at most ``limit``."""
    deadline = time.monotonic() + limit
    last = cpu_seconds(pid)
    still = 0.0
    while time.monotonic() < deadline and still < seconds:
        time.sleep(0.5)
        now = cpu_seconds(pid)
        still = still + 0.5 if now - last < QUIET_CPU / 2 else 0.0
        last = now


def run_wire(lab: Lab, feeders: list[Feeder], n4: int, n6: int, timeout: float) -> Result:
    """The first feeder straight to the sink: what the two bench speakers cost on their own."""
    res = Result("wire baseline", n4 + n6, limit=timeout)
    sink = speaker(lab, "sink", "bgp_sink",
                   ["--listen", SINK_IP, "--asn", str(AS_SINK), "--expect-v4", str(n4),
                    "--expect-v6", str(n6), "--feed", feeders[0].feed], "sink-wire.log")
    try:
        if wait_event(sink, ("listening", "error"), 30) is None:
            res.problem = "sink did not listen"
            return res
        return _converge(lab, res, [sink], feeders[:1], SINK_IP, timeout)
    finally:
        sink.stop()


def stall_of(probe: Process, since: float, until: float) -> float | None:
    """The probe's longest wait (seconds) among samples taken in [since, until]."""
    waits = [e["s"] for e in events(probe) if e.get("event") == "lat" and since <= e["t"] <= until]
    return max(waits) if waits else None


def run_router(lab: Lab, name: str, feeders: list[Feeder], n4: int, n6: int,
               timeout: float, shape: Shape = Shape(), policy: str = "",
               extra: str = "", churn: ChurnArgs | None = None) -> Result:
    """The whole workload through ``name``; everything started here is stopped here.

    ``policy`` (--policy ixp): bgpd's filter tables; ``n4`` / ``n6`` are then
    what the filter accepts, and the sink counts instead of matching the feed.
    """
    res = Result(name, n4 + n6, limit=timeout, paths_per_prefix=len(feeders))
    router: Daemon | _Bgpd | None = None
    sinks: list[Process] = []
    probe: Process | None = None
    # Every feeder's paths are alike but for the first AS (and next hop),
    # so bgpd's tie-break is the lowest BGP Identifier (RFC 4271
    # 9.1.2.2 (f)): feeder 1 for every prefix.  Other routers may prefer
    # the oldest path (RFC 5004), so only their prefix count is checked.
    via = ["--expect-via", str(feeders[0].asn)] if name == "bgpd" else []

    exact = [] if policy else ["--feed", feeders[0].feed]

    def make_sink() -> Process:
        return speaker(lab, "sink", "bgp_sink",
                       ["--connect", MID_IP, "--asn", str(AS_SINK), "--router-id", SINK_IP,
                        "--expect-v4", str(n4), "--expect-v6", str(n6), *exact,
                        "--connect-timeout", str(SESSION_TIMEOUT), *via], f"sink-{name}.log")

    try:
        router = start_router(lab, name, feeders, policy, extra)
        assert router.proc is not None
        if shape.sink_delay is None:
            sinks.append(make_sink())
            up = wait_event(sinks[0], ("established", "error"), SESSION_TIMEOUT + 5)
            if up is None or up.get("event") != "established":
                res.problem = "sink session did not come up" + (f": {up.get('reason')}" if up else "")
                log(f"{name}: {res.problem}; router log tail:\n{router.log()[-2000:]}")
                return res
        if name == "bgpd":
            probe = speaker(lab, "probe", "stall_probe",
                            ["--connect", MID_IP, "--source", lab["probe"].ipv4],
                            f"probe-{name}.log")
        since = time.monotonic()
        bgpd_log = router.log
        _converge(lab, res, sinks, feeders, MID_IP, timeout, router.proc,
                  RssSampler(router.proc.pid),
                  (lambda: bgpd_log().count("ESTABLISHED -> ")) if name == "bgpd" else None,
                  shape, make_sink, churn)
        if probe is not None:
            # The feeders' sessions end when they are stopped: bgpd then
            # withdraws their routes everywhere, which is load of its own.
            wait_idle(router.proc.pid)
            res.stall = stall_of(probe, since, res.load_end)
            res.stall_leaving = stall_of(probe, res.load_end, time.monotonic())
        if res.seconds is None:
            log(f"{name}: router log tail:\n{router.log()[-1500:]}")
        return res
    except (AssertionError, RuntimeError, OSError) as e:
        res.problem = f"failed to run: {str(e).splitlines()[0] if str(e) else type(e).__name__}"
        return res
    finally:
        if probe is not None:
            probe.stop()
        for sink in sinks:
            sink.stop()
        if router is not None:
            if router.proc is not None and router.proc.alive():
                res.cpu = cpu_seconds(router.proc.pid)
            router.stop()


def _prepare_argv(scale: float, f: Feeder) -> list[str]:
    return [sys.executable, "-m", "bench.bgp_feeder", "prepare", "--scale", str(scale),
            "--out", f.feed, "--next-hop4", f.ip, "--next-hop6", f.ip6, "--asn", str(f.asn)]


def prepare_feeds(scale: float, feeders: list[Feeder]) -> dict:
    """Encode each feeder's table in child processes, two at a time (their memory goes when they exit).

    Every feeder's table has the same prefixes and paths but for its own AS
    first and its own next hop; return the figures (the same for all).
    """
    figures: list[dict] = []
    env = dict(os.environ, PYTHONPATH=REPO)
    for i in range(0, len(feeders), 2):
        batch = [(f, subprocess.Popen(_prepare_argv(scale, f), cwd=REPO, env=env,
                                      stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True))
                 for f in feeders[i:i + 2]]
        for f, p in batch:
            try:
                out, err = p.communicate(timeout=1800)
            except subprocess.TimeoutExpired:
                p.kill()
                p.communicate()
                raise RuntimeError(f"preparing {f.node}'s feed took too long") from None
            if p.returncode != 0:
                raise RuntimeError(f"preparing {f.node}'s feed failed: {err.strip()[-2000:]}")
            figures.append(json.loads(out.strip().splitlines()[-1]))
    if any(fig != figures[0] for fig in figures):
        raise RuntimeError(f"the feeders' tables differ: {figures}")
    return figures[0]


def ixp_filter(scale: float, f: Feeder) -> dict:
    """The IXP filter for ``f``'s table and its accepted counts, from a child process (bench/policy.py)."""
    r = subprocess.run([sys.executable, "-m", "bench.policy", "--for-feed", "--scale", str(scale),
                        "--next-hop4", f.ip, "--next-hop6", f.ip6, "--asn", str(f.asn)],
                       cwd=REPO, env=dict(os.environ, PYTHONPATH=REPO), capture_output=True,
                       text=True, timeout=1800, check=False)
    if r.returncode != 0:
        raise RuntimeError(f"building the IXP filter failed: {r.stderr.strip()[-2000:]}")
    return json.loads(r.stdout.strip().splitlines()[-1])


def main(argv: list[str] | None = None) -> int:
    ap = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    ap.add_argument("--scale", type=float, default=1.0,
                    help="fraction of today's table (1.0 = ~1,265,000 prefixes)")
    ap.add_argument("--routers", default=DEFAULT_ROUTERS,
                    help=f"comma-separated, from {', '.join(KNOWN_ROUTERS)} (default {DEFAULT_ROUTERS})")
    ap.add_argument("--with-frr", action="store_true", help="add FRR's bgpd to --routers")
    ap.add_argument("--feeders", type=int, default=1,
                    help=f"feeders sending the same table at once, 1-{MAX_FEEDERS} (default 1)")
    ap.add_argument("--stagger", type=float, default=0.0, metavar="SECONDS",
                    help="start feeder K this many seconds after feeder K-1 (default 0)")
    ap.add_argument("--barrier", action="store_true",
                    help="no feeder sends before every feeder is Established")
    ap.add_argument("--sink-late", type=float, default=None, metavar="SECONDS",
                    help="start the sink this long after every feeder began sending "
                         "(default: before the feeders)")
    ap.add_argument("--pace", type=float, default=0.0, metavar="SECONDS",
                    help="each feeder spreads its table over at least this long (default: no pacing)")
    ap.add_argument("--timeout", type=float, default=None,
                    help="seconds each router may take (default 600 at scale 1, at least 60)")
    ap.add_argument("--no-wire", action="store_true", help="skip the feeder->sink baseline")
    ap.add_argument("--churn", action="store_true",
                    help="after convergence, churn at doubling rates until the router falls behind")
    ap.add_argument("--churn-start", type=float, default=500.0, metavar="UPDATES_PER_S")
    ap.add_argument("--churn-max", type=float, default=256000.0, metavar="UPDATES_PER_S")
    ap.add_argument("--churn-step", type=float, default=5.0, metavar="SECONDS")
    ap.add_argument("--policy", choices=("none", "ixp"), default="none",
                    help="ixp: the README's IXP import filter on bgpd's feeder session (bgpd, 1 feeder)")
    args = ap.parse_args(argv)
    routers = [r.strip() for r in args.routers.split(",") if r.strip()]
    if args.with_frr and "frr" not in routers:
        routers.append("frr")
    unknown = [r for r in routers if r not in KNOWN_ROUTERS]
    if unknown or not routers:
        ap.error(f"unknown router(s) {', '.join(unknown)}; choose from {', '.join(KNOWN_ROUTERS)}")
    if not (0 < args.churn_start <= args.churn_max <= 10_000_000 and 0 < args.churn_step <= 120):
        ap.error("--churn-start must be in (0, --churn-max], --churn-max at most 10,000,000, "
                 "--churn-step in (0, 120] seconds")
    if not 0 < args.scale <= 4:
        ap.error("--scale must be in (0, 4]")
    if not 1 <= args.feeders <= MAX_FEEDERS:
        ap.error(f"--feeders must be in 1-{MAX_FEEDERS}")
    if not all(0 <= x <= 600 for x in (args.stagger, args.sink_late or 0, args.pace)):
        ap.error("--stagger, --sink-late and --pace must be in 0-600 seconds")
    if args.policy == "ixp" and (routers != ["bgpd"] or args.feeders != 1):
        ap.error("--policy ixp configures bgpd's one feeder session: use --routers bgpd and one feeder")
    timeout = args.timeout if args.timeout is not None else max(60.0, 600.0 * args.scale)
    if os.geteuid() != 0:
        print("rib_scale: needs root (network namespaces)", file=sys.stderr)
        return 2
    for r in routers:
        require_binary({"bgpd": sys.executable, "bird": "bird", "gobgp": "gobgpd",
                        "frr": "/usr/lib/frr/bgpd"}[r])

    tmp = tempfile.mkdtemp(prefix="rib_scale-")
    lab: Lab | None = None
    try:
        feeders = plan_feeders(args.feeders, tmp,
                               IXP_FEEDER_AS if args.policy == "ixp" else AS_FEEDER)
        log(f"encoding the table at scale {args.scale} for {len(feeders)} feeder(s) ...")
        figures = prepare_feeds(args.scale, feeders)
        n4, n6 = figures["v4"], figures["v6"]
        log(f"{n4:,} v4 + {n6:,} v6 prefixes over {figures['v4_paths']:,} + "
            f"{figures['v6_paths']:,} paths, {figures['messages']:,} UPDATEs, "
            f"{figures['bytes'] / 1e6:.1f} MB per feeder")
        # What the sink must end with through the router: all of it, or what the filter accepts.
        want4, want6, policy = n4, n6, ""
        if args.policy == "ixp":
            ixp = ixp_filter(args.scale, feeders[0])
            want4, want6, policy = ixp["v4"], ixp["v6"], ixp["policies"]
            log(f"--policy ixp: the filter accepts {want4:,} v4 + {want6:,} v6 "
                f"({ixp['set']:,}-entry registered set)")
        lab = Lab(lab_names(feeders)).open()
        results: list[Result] = []
        wire = None if args.no_wire else run_wire(lab, feeders, n4, n6, timeout)
        if wire is not None:
            log(wire.describe())
        for name in routers:
            log(f"{name}: starting")
            churn = ChurnArgs(args.churn_start, args.churn_max, args.churn_step) if args.churn else None
            shape = Shape(args.stagger, args.barrier, args.sink_late, args.pace)
            res = run_router(lab, name, feeders, want4, want6, timeout, shape, policy, churn=churn)
            if policy:
                res.name = f"{name} with the IXP filter"
            log(res.describe())
            results.append(res)
        n = len(feeders)
        parts = [f"rib_scale: {n4 + n6:,} prefixes ({n4:,} v4 + {n6:,} v6) "
                 f"from {n} feeder{'s' if n > 1 else ''}"]
        parts += [r.describe() for r in results]
        if wire is not None:
            parts.append(wire.describe())
        print("  ".join(parts), flush=True)
        ok = all(r.seconds is not None for r in results) and (wire is None or wire.seconds is not None)
        return 0 if ok else 1
    except KeyboardInterrupt:
        log("interrupted; stopping everything")
        return 130
    finally:
        if lab is not None:
            lab.close()
        shutil.rmtree(tmp, ignore_errors=True)


if __name__ == "__main__":
    sys.exit(main())
