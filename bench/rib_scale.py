"""Full-table convergence through a router in the middle, over real TCP sessions.

A feeder (bench/bgp_feeder.py) announces an Internet-shaped table -- at scale
1.0 ``bench.synthetic``'s 1,040,000 IPv4 prefixes over 260,000 AS paths, less
the 1 % that fall in special-purpose space (127/8, 10/8, ...), and 225,000 IPv6
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

Topology: harness ``Lab(["feeder", "mid", "sink"])``, three namespaces on one
segment: feeder 192.0.2.1, mid 192.0.2.2, sink 192.0.2.3 (2001:db8::1-3).
The middle router starts first, then the sink, which connects to it; once that
session is Established the feeder connects.  The time is from the feeder's
first UPDATE byte written to the sink holding every prefix of both families.
The middle router's VmRSS/VmHWM are read from /proc every 0.2 s; bytes per
prefix = (peak RSS - RSS before the feeder connected) / prefixes.

Prints one line, e.g.::

    rib_scale: 1,253,987 prefixes (1,028,987 v4 + 225,000 v6)  bgpd: 40.1s 31,262 pfx/s
    peak 620 MiB 490 B/pfx  bird: ...  gobgp: ...  wire baseline: 3.1s 404,512 pfx/s

    sudo python3 bench/rib_scale.py                       # full table, bgpd, bird, gobgp
    sudo python3 bench/rib_scale.py --scale 0.02 --routers bgpd   # CI smoke size
    sudo python3 bench/rib_scale.py --routers bird --with-frr
    sudo python3 bench/rib_scale.py --routers bgpd --no-wire --policy ixp

``--policy ixp`` (bgpd only) puts the README's IXP route-server import filter
(``examples/ixp-route-server.toml``'s ``ixp-in``: 10 terms, a 5,000-entry
registered-prefix set drawn from the table, an AS-path regex) on the feeder
session; the registered set also covers every prefix up to /24 and /48, so
nearly the whole table is accepted and the run moves as many routes as
without it (``bench/policy.py --for-feed``).  The feeder is then AS3333: a
private AS in every path would make the filter's bogon-ASN term reject all.
The sink waits for exactly what the filter accepts.

Needs root (network namespaces).  Exit status 0 when every router converged.
"""

from __future__ import annotations

import argparse
import json
import os
import shutil
import subprocess
import sys
import tempfile
import textwrap
import threading
import time
from dataclasses import dataclass, field

REPO = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
sys.path.insert(0, REPO)

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
FEEDER_IP, MID_IP, SINK_IP = "192.0.2.1", "192.0.2.2", "192.0.2.3"
FEEDER_IP6 = "2001:db8::1"
DEFAULT_ROUTERS = "bgpd,bird,gobgp"
KNOWN_ROUTERS = ("bgpd", "bird", "gobgp", "frr")
# How long the sink may take to reach Established with a freshly started router.
SESSION_TIMEOUT = 60.0


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

    def describe(self) -> str:
        if self.seconds is None:
            what = self.problem or f"did not converge in {self.limit:.0f} s"
            return f"{self.name}: {what} (sink had {self.got:,} of {self.total:,} prefixes)"
        rate = self.total / self.seconds if self.seconds > 0 else float("inf")
        secs = f"{self.seconds:.2f}" if self.seconds < 10 else f"{self.seconds:.1f}"
        text = f"{self.name}: {secs}s {rate:,.0f} pfx/s"
        if self.peak_kib:
            per = max(0, self.peak_kib - self.base_kib) * 1024 / self.total
            text += f" peak {self.peak_kib / 1024:,.0f} MiB {per:,.0f} B/pfx"
        if self.drops is not None:
            text += f" session drops {self.drops}"
        return text


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


#: The feeder's AS; --policy ixp makes it a public one (see the module docstring).
_feeder_as = [AS_FEEDER]
#: --policy ixp: the [sets] / [policies] text for bgpd, else "".
_bgpd_policy = [""]
IXP_FEEDER_AS = 3333


def _neighbors() -> list[Neighbor]:
    # Both sessions are opened by the bench speakers, so the router only listens.
    return [Neighbor(FEEDER_IP, _feeder_as[0], local_address=MID_IP, passive=True,
                     families=("ipv4", "ipv6")),
            Neighbor(SINK_IP, AS_SINK, local_address=MID_IP, passive=True,
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

    def __init__(self, lab: Lab) -> None:
        self.ns = lab["mid"].ns
        self.proc: Process | None = None

    def start(self) -> _Bgpd:
        conf = os.path.join(self.ns.workdir, "bgpd.toml")
        peers = ""
        for addr, asn, desc in ((FEEDER_IP, _feeder_as[0], "feeder"), (SINK_IP, AS_SINK, "sink")):
            import_policy = '["ixp-in"]' if _bgpd_policy[0] and desc == "feeder" else '["accept-all"]'
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
                """) + peers + "\n" + _bgpd_policy[0])
        self.proc = self.ns.popen_bgpd(conf)
        return self

    def stop(self) -> None:
        if self.proc is not None:
            self.proc.stop(timeout=30)

    def log(self) -> str:
        return self.proc.output() if self.proc else ""


def start_router(lab: Lab, name: str) -> Daemon | _Bgpd:
    """Start ``name`` in the mid namespace; it only listens (both peers are passive)."""
    ns = lab["mid"].ns
    if name == "bgpd":
        return _Bgpd(lab).start()
    if name == "bird":
        return _BenchBird(ns, AS_MID, MID_IP, _neighbors()).start()
    if name == "gobgp":
        return GoBGP(ns, AS_MID, MID_IP, _neighbors()).start()
    if name == "frr":
        return Frr(ns, AS_MID, MID_IP, _neighbors()).start()
    raise ValueError(f"unknown router {name!r}")


# -- one run ------------------------------------------------------------------


def _converge(lab: Lab, res: Result, sink: Process, feed_path: str, target: str,
              timeout: float, mid: Process | None = None,
              sampler: RssSampler | None = None) -> Result:
    """Start the feeder towards ``target`` and wait for the sink to be complete."""
    if sampler is not None:
        res.base_kib = sampler.read()[0]
        sampler.start()
    feeder = speaker(lab, "feeder", "bgp_feeder",
                     ["send", "--feed", feed_path, "--connect", target, "--asn", str(_feeder_as[0]),
                      "--router-id", FEEDER_IP], f"feeder-{res.name}.log")
    try:
        start = time.monotonic()
        deadline = start + timeout
        next_note = start + 30
        first: dict | None = None
        done: dict | None = None
        while time.monotonic() < deadline:
            if first is None:
                first = last_event(feeder, "first_update")
            done = last_event(sink, "complete")
            if done is not None and first is not None:
                break
            trouble = last_event(feeder, "error", "notification", "closed") or \
                last_event(sink, "error", "notification", "closed")
            if trouble is not None:
                res.problem = f"session failed: {trouble.get('event')} {trouble.get('reason', '')}".strip()
                break
            if not feeder.alive() or not sink.alive() or (mid is not None and not mid.alive()):
                who = "feeder" if not feeder.alive() else "sink" if not sink.alive() else res.name
                res.problem = f"{who} exited"
                break
            if time.monotonic() >= next_note:
                next_note += 30
                p = last_event(sink, "progress") or {}
                log(f"{res.name}: {time.monotonic() - start:.0f} s, sink has "
                    f"{p.get('v4', 0):,} v4 + {p.get('v6', 0):,} v6")
            time.sleep(0.1)
        if done is not None and first is not None:
            res.seconds = done["t"] - first["t"]
            res.got = done["v4"] + done["v6"]
        else:
            p = last_event(sink, "progress", "complete", "notification", "closed") or {}
            res.got = p.get("v4", 0) + p.get("v6", 0)
            stray = last_event(sink, "stray")
            if stray is not None and not res.problem:
                res.problem = (f"did not converge in {timeout:.0f} s, and sent "
                               f"{stray['count']:,} prefixes the feeder never announced")
    finally:
        if sampler is not None:
            sampler.stop()
            res.peak_kib = sampler.peak_kib
        feeder.stop()
    return res


def run_wire(lab: Lab, feed_path: str, n4: int, n6: int, timeout: float) -> Result:
    """Feeder straight to the sink: what the two bench speakers cost on their own."""
    res = Result("wire baseline", n4 + n6, limit=timeout)
    sink = speaker(lab, "sink", "bgp_sink",
                   ["--listen", SINK_IP, "--asn", str(AS_SINK), "--expect-v4", str(n4),
                    "--expect-v6", str(n6), "--feed", feed_path], "sink-wire.log")
    try:
        if wait_event(sink, ("listening", "error"), 30) is None:
            res.problem = "sink did not listen"
            return res
        return _converge(lab, res, sink, feed_path, SINK_IP, timeout)
    finally:
        sink.stop()


def run_router(lab: Lab, name: str, feed_path: str, n4: int, n6: int, timeout: float) -> Result:
    """The whole workload through ``name``; everything started here is stopped here."""
    res = Result(name, n4 + n6, limit=timeout)
    router: Daemon | _Bgpd | None = None
    sink: Process | None = None
    try:
        router = start_router(lab, name)
        assert router.proc is not None
        # With the IXP filter the sink cannot check for the feed's exact
        # prefixes (it holds what the filter accepted): it counts them.
        exact = [] if _bgpd_policy[0] else ["--feed", feed_path]
        sink = speaker(lab, "sink", "bgp_sink",
                       ["--connect", MID_IP, "--asn", str(AS_SINK), "--router-id", SINK_IP,
                        "--expect-v4", str(n4), "--expect-v6", str(n6), *exact,
                        "--connect-timeout", str(SESSION_TIMEOUT)], f"sink-{name}.log")
        up = wait_event(sink, ("established", "error"), SESSION_TIMEOUT + 5)
        if up is None or up.get("event") != "established":
            res.problem = "sink session did not come up" + (f": {up.get('reason')}" if up else "")
            log(f"{name}: {res.problem}; router log tail:\n{router.log()[-2000:]}")
            return res
        _converge(lab, res, sink, feed_path, MID_IP, timeout, router.proc,
                  RssSampler(router.proc.pid))
        if name == "bgpd":
            res.drops = router.log().count("ESTABLISHED -> ")
        if res.seconds is None:
            log(f"{name}: router log tail:\n{router.log()[-1500:]}")
        return res
    except (AssertionError, RuntimeError, OSError) as e:
        res.problem = f"failed to run: {str(e).splitlines()[0] if str(e) else type(e).__name__}"
        return res
    finally:
        if sink is not None:
            sink.stop()
        if router is not None:
            router.stop()


def prepare_feed(scale: float, path: str) -> dict:
    """Encode the table in a child process (its memory is gone when it exits)."""
    r = subprocess.run([sys.executable, "-m", "bench.bgp_feeder", "prepare", "--scale", str(scale),
                        "--out", path, "--next-hop4", FEEDER_IP, "--next-hop6", FEEDER_IP6,
                        "--asn", str(_feeder_as[0])],
                       cwd=REPO, env=dict(os.environ, PYTHONPATH=REPO), capture_output=True,
                       text=True, timeout=1800, check=False)
    if r.returncode != 0:
        raise RuntimeError(f"preparing the feed failed: {r.stderr.strip()[-2000:]}")
    return json.loads(r.stdout.strip().splitlines()[-1])


def ixp_filter(scale: float) -> dict:
    """The IXP filter for the feed and its accepted counts, from a child process (bench/policy.py)."""
    r = subprocess.run([sys.executable, "-m", "bench.policy", "--for-feed", "--scale", str(scale),
                        "--next-hop4", FEEDER_IP, "--next-hop6", FEEDER_IP6,
                        "--asn", str(_feeder_as[0])],
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
    ap.add_argument("--timeout", type=float, default=None,
                    help="seconds each router may take (default 600 at scale 1, at least 60)")
    ap.add_argument("--no-wire", action="store_true", help="skip the feeder->sink baseline")
    ap.add_argument("--policy", choices=("none", "ixp"), default="none",
                    help="ixp: the README's IXP import filter on bgpd's feeder session (bgpd only)")
    args = ap.parse_args(argv)
    routers = [r.strip() for r in args.routers.split(",") if r.strip()]
    if args.with_frr and "frr" not in routers:
        routers.append("frr")
    unknown = [r for r in routers if r not in KNOWN_ROUTERS]
    if unknown or not routers:
        ap.error(f"unknown router(s) {', '.join(unknown)}; choose from {', '.join(KNOWN_ROUTERS)}")
    if not 0 < args.scale <= 4:
        ap.error("--scale must be in (0, 4]")
    if args.policy == "ixp" and routers != ["bgpd"]:
        ap.error("--policy ixp configures bgpd only: use --routers bgpd")
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
        feed_path = os.path.join(tmp, "feed.bin")
        log(f"encoding the table at scale {args.scale} ...")
        if args.policy == "ixp":
            _feeder_as[0] = IXP_FEEDER_AS
        figures = prepare_feed(args.scale, feed_path)
        n4, n6 = figures["v4"], figures["v6"]
        log(f"{n4:,} v4 + {n6:,} v6 prefixes over {figures['v4_paths']:,} + "
            f"{figures['v6_paths']:,} paths, {figures['messages']:,} UPDATEs, "
            f"{figures['bytes'] / 1e6:.1f} MB")
        # What the sink must end with through the router (all of it, or what the filter accepts).
        want4, want6 = n4, n6
        if args.policy == "ixp":
            ixp = ixp_filter(args.scale)
            _bgpd_policy[0] = ixp["policies"]
            want4, want6 = ixp["v4"], ixp["v6"]
            log(f"--policy ixp: the filter accepts {want4:,} v4 + {want6:,} v6 "
                f"({ixp['set']:,}-entry registered set)")
        lab = Lab(["feeder", "mid", "sink"]).open()
        results: list[Result] = []
        wire = None if args.no_wire else run_wire(lab, feed_path, n4, n6, timeout)
        if wire is not None:
            log(wire.describe())
        for name in routers:
            log(f"{name}: starting")
            res = run_router(lab, name, feed_path, want4, want6, timeout)
            if args.policy == "ixp":
                res.name = f"{name} with the IXP filter"
            log(res.describe())
            results.append(res)
        parts = [f"rib_scale: {n4 + n6:,} prefixes ({n4:,} v4 + {n6:,} v6)"]
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
