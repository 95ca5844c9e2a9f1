"""Interop driver for our own daemon, in the style of the harness's drivers.

A library, not tests.  :class:`BgpdDriver` writes a TOML config (the format
of ``bgpd/config.py``), runs ``twistd -n bgpd -c FILE`` in a namespace made
by the harness (``Netns.popen_bgpd``) and reads the session state back from
the daemon's log, which is all bgpd exposes until its API exists.  State
changes are the RFC 4271 section 8 transitions bgpd logs as::

    ... [bgpd.session.factory#info] peer 192.0.2.2 OPEN_CONFIRM -> ESTABLISHED: KeepAliveMsg
    ... [bgpd.session.factory#info] peer 192.0.2.2 established: AS65002 id 192.0.2.2 hold 6s ...

Everything the driver starts is stopped by its PID (SIGTERM, bounded wait,
SIGKILL), through the harness's :class:`~tests.interop.harness.Process`.
"""

from __future__ import annotations

import ipaddress
import os
import re
import signal
import tempfile
from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field
from typing import Any

from tests.interop.harness import Netns, Process, check_address, poll

# "peer ADDR OLD -> NEW: reason" (one FSM transition).
_TRANSITION = re.compile(r"\] peer (\S+) ([A-Z_]+) -> ([A-Z_]+): ?(.*)$")
# "peer ADDR established: AS65002 id 192.0.2.2 hold 6s families a,b"
_ESTABLISHED = re.compile(
    r"\] peer (\S+) established: AS(\d+) id (\S+) hold (\d+)s families (\S*)")


def check_peer_address(addr: str) -> str:
    """Like ``check_address``, but loopback (127/8, ::1) is allowed too (the bench)."""
    ip = ipaddress.ip_address(addr.split("%")[0])
    if ip.is_loopback:
        return addr
    return check_address(addr)


def _same(a: str, b: str) -> bool:
    try:
        return ipaddress.ip_address(a) == ipaddress.ip_address(b)
    except ValueError:
        return a == b


def _toml_value(v: Any) -> str:
    if isinstance(v, bool):
        return "true" if v else "false"
    if isinstance(v, int):
        return str(v)
    if isinstance(v, str):
        return '"' + v.replace("\\", "\\\\").replace('"', '\\"') + '"'
    if isinstance(v, (list, tuple)):
        return "[" + ", ".join(_toml_value(x) for x in v) + "]"
    if isinstance(v, Mapping):
        return "{ " + ", ".join(f"{_toml_value(str(k))} = {_toml_value(x)}"
                                for k, x in v.items()) + " }"
    raise TypeError(f"cannot write {v!r} as TOML")


@dataclass
class BgpdNeighbor:
    """One ``[[neighbors]]`` table.  ``keys`` holds any other config key verbatim."""

    address: str
    remote_as: int
    families: tuple[str, ...] = ("ipv4-unicast", "ipv6-unicast")
    passive: bool = False
    local_address: str | None = None
    hold_time: int | None = None
    md5_password: str | None = None
    ttl_security: int | None = None
    port: int | None = None
    keys: dict[str, Any] = field(default_factory=dict)

    def __post_init__(self) -> None:
        check_peer_address(self.address)
        if self.local_address:
            check_peer_address(self.local_address)

    def toml(self) -> str:
        d: dict[str, Any] = {"address": self.address, "remote_as": self.remote_as,
                             "families": list(self.families), "passive": self.passive,
                             # Sessions only for now, but open both directions so
                             # nothing changes once the RIB is wired.
                             "import_policy": ["accept-all"], "export_policy": ["accept-all"]}
        for k in ("local_address", "hold_time", "md5_password", "ttl_security", "port"):
            if getattr(self, k) is not None:
                d[k] = getattr(self, k)
        d.update(self.keys)
        return "[[neighbors]]\n" + "".join(f"{k} = {_toml_value(v)}\n" for k, v in d.items())


@dataclass(frozen=True)
class Transition:
    """One logged FSM transition."""

    peer: str
    old: str
    new: str
    reason: str


def _state_name(s: str) -> str:
    # OPEN_CONFIRM -> openconfirm, the harness's spelling (STATES).
    return s.lower().replace("_", "")


class BgpdDriver:
    """Our daemon in a namespace, observed through its log.

    ``bgp`` holds extra ``[bgp]`` keys (``hold_time``, ``listen_port``,
    ``listen_addresses``...).  Short retry timers are the default here so a
    lab converges in seconds; pass them in ``bgp`` to override.
    ``originate`` is a list of ``[[originate]]`` tables (key -> value, as in
    the config file: ``{"prefix": "198.51.100.0/27", "med": 5}``).
    """

    name = "bgpd"

    def __init__(self, ns: Netns, local_as: int, router_id: str,
                 neighbors: Sequence[BgpdNeighbor] = (), log_name: str = "bgpd.log",
                 originate: Sequence[Mapping[str, Any]] = (), **bgp: Any) -> None:
        self.ns = ns
        self.local_as = local_as
        self.router_id = check_peer_address(router_id)
        self.neighbors = list(neighbors)
        self.originate = [dict(o) for o in originate]
        self.dir = tempfile.mkdtemp(prefix="bgpd-", dir=ns.workdir)
        # Each daemon keeps its API state in its own folder, never in the
        # host's /var/lib/bgpd (the default), which parallel runs would share.
        self.bgp = {"idle_hold_time": 1, "max_idle_hold_time": 4, "connect_retry_time": 2,
                    "state_dir": os.path.join(self.dir, "state"), **bgp}
        self.config_path = os.path.join(self.dir, "bgpd.toml")
        self.log_name = log_name
        self.proc: Process | None = None
        # Where the current run's output starts in the (appended) log file.
        self._run_offset = 0

    # -- config and lifecycle

    def config_text(self) -> str:
        head = {"local_as": self.local_as, "router_id": self.router_id, **self.bgp}
        lines = ["[bgp]"] + [f"{k} = {_toml_value(v)}" for k, v in head.items()] + [""]
        text = "\n".join(lines) + "\n".join(n.toml() for n in self.neighbors)
        for o in self.originate:
            text += "\n[[originate]]\n" + "".join(f"{k} = {_toml_value(v)}\n"
                                                 for k, v in o.items())
        return text

    def write_config(self) -> None:
        with open(self.config_path, "w") as f:
            f.write(self.config_text())

    def start(self, wait_listening: bool = True, timeout: float = 20.0) -> BgpdDriver:
        """Write the config, start bgpd, wait until it has started its service tree."""
        self.write_config()
        path = os.path.join(self.ns.workdir, self.log_name)
        self._run_offset = os.path.getsize(path) if os.path.exists(path) else 0
        self.proc = self.ns.popen_bgpd(self.config_path, log_name=self.log_name)
        listens = self.bgp.get("listen_addresses") != []

        def up() -> bool:
            out = self.run_log()
            if not self.proc.alive():
                return True
            # The first FSM line means the peers were started; "listening"
            # means the ports are bound (when there are any).
            started = " peer " in out or not self.neighbors
            return started and (not (wait_listening and listens) or "listening for BGP" in out)
        try:
            poll(up, timeout, 0.1, "bgpd to start")
        except AssertionError:
            raise AssertionError(f"bgpd did not start:\n{self.run_log()[-3000:]}") from None
        if not self.proc.alive():
            raise RuntimeError(f"bgpd exited rc={self.proc.returncode}:\n{self.run_log()[-3000:]}")
        return self

    @property
    def pid(self) -> int:
        assert self.proc is not None
        return self.proc.pid

    def alive(self) -> bool:
        return self.proc is not None and self.proc.alive()

    def stop(self, timeout: float = 10.0) -> int | None:
        """SIGTERM by PID (bgpd sends its Cease NOTIFICATIONs), then SIGKILL; reaped."""
        if self.proc is None:
            return None
        return self.proc.stop(timeout)

    def restart(self) -> BgpdDriver:
        self.stop()
        return self.start()

    def freeze(self) -> None:
        """SIGSTOP: no keepalives go out, so the peer's hold timer expires."""
        assert self.proc is not None
        self.proc.signal(signal.SIGSTOP)

    def thaw(self) -> None:
        assert self.proc is not None
        self.proc.signal(signal.SIGCONT)

    def rss_kb(self) -> int:
        """Resident set size from /proc/PID/status (VmRSS), in kB."""
        with open(f"/proc/{self.pid}/status") as f:
            for line in f:
                if line.startswith("VmRSS:"):
                    return int(line.split()[1])
        raise RuntimeError(f"no VmRSS for {self.pid}")

    # -- observation

    def log(self) -> str:
        """All output of every run so far (the log file is appended to on restart)."""
        return self.proc.output() if self.proc else ""

    def run_log(self) -> str:
        """Output of the current run only."""
        return self.log()[self._run_offset:]

    def transitions(self, peer: str | None = None, whole_log: bool = False) -> list[Transition]:
        out = []
        for line in (self.log() if whole_log else self.run_log()).splitlines():
            m = _TRANSITION.search(line)
            if m and (peer is None or _same(m.group(1), peer)):
                out.append(Transition(m.group(1), _state_name(m.group(2)),
                                      _state_name(m.group(3)), m.group(4)))
        return out

    def states(self) -> dict[str, str]:
        """Every peer's current state, from one pass over the log (cheap for many peers)."""
        result: dict[str, str] = {}
        for line in self.run_log().splitlines():
            m = _TRANSITION.search(line)
            if m:
                result[m.group(1)] = _state_name(m.group(3))
        return result

    def session_state(self, peer: str) -> str:
        """Lower-case RFC 4271 state from the last transition logged for ``peer``."""
        t = self.transitions(peer)
        return t[-1].new if t else "idle"

    def established_count(self, peer: str, whole_log: bool = False) -> int:
        """How many times the session with ``peer`` reached Established."""
        return sum(1 for t in self.transitions(peer, whole_log) if t.new == "established")

    def established_info(self, peer: str) -> dict[str, Any] | None:
        """The last "established:" line for ``peer``: asn, router id, hold, families."""
        info = None
        for line in self.run_log().splitlines():
            m = _ESTABLISHED.search(line)
            if m and _same(m.group(1), peer):
                info = {"asn": int(m.group(2)), "router_id": m.group(3),
                        "hold_time": int(m.group(4)),
                        "families": tuple(x for x in m.group(5).split(",") if x)}
        return info

    def wait_established(self, peer: str, timeout: float = 30.0, count: int = 1) -> None:
        """Poll the log until ``peer`` is Established (for the ``count``-th time)."""
        def ok() -> bool:
            return (self.session_state(peer) == "established"
                    and self.established_count(peer) >= count)
        try:
            poll(ok, timeout, 0.2, f"bgpd session with {peer} Established")
        except AssertionError as e:
            raise AssertionError(f"{e}\nbgpd log (tail):\n{self.run_log()[-4000:]}") from None

    def wait_log(self, pattern: str, timeout: float = 20.0, whole_log: bool = False) -> re.Match:
        """Poll until ``pattern`` (a regex) appears in the log; return the match."""
        rx = re.compile(pattern)

        def seen() -> re.Match | None:
            return rx.search(self.log() if whole_log else self.run_log())
        try:
            return poll(seen, timeout, 0.2, f"bgpd log to show {pattern!r}")
        except AssertionError as e:
            raise AssertionError(f"{e}\nbgpd log (tail):\n{self.run_log()[-4000:]}") from None

    def __repr__(self) -> str:
        return f"<BgpdDriver AS{self.local_as} {self.router_id} {self.proc!r}>"


__all__ = ["BgpdDriver", "BgpdNeighbor", "Transition", "check_peer_address"]
