"""Interop harness: real BGP daemons in network namespaces made by the test.

A library, not tests.  It builds throw-away labs out of Linux network
namespaces (``ip netns``) and veth pairs and drives real BGP-4 speakers
(RFC 4271) in them: BIRD 2, FRR's bgpd, GoBGP and ExaBGP.  Later interop
tests put bgpd itself in one namespace and these daemons in the others.

Rules this module keeps (they are the project's network rules):

* Interface addresses come from 192.0.2.0/24, 198.51.100.0/24 (RFC 5737)
  and 2001:db8::/32 (RFC 3849) only; ``check_address`` refuses anything else.
  Links exist only between namespaces the harness made itself.
* Every wait is a bounded ``poll``; every subprocess call has a timeout.
* Everything started is stopped by its PID (SIGTERM, bounded wait, SIGKILL)
  and reaped; every namespace is deleted, also from ``atexit`` as a last
  resort when a test forgot.

Address plan of a ``Lab`` (one shared L2 segment, a bridge in its own
"switch" namespace, one veth per node)::

    node index 0 ("bgpd" by default)  192.0.2.1/24  2001:db8::1/64
    node index 1                      192.0.2.2/24  2001:db8::2/64
    node index 2                      192.0.2.3/24  2001:db8::3/64
    ...                               192.0.2.(i+1)   2001:db8::(i+1)

198.51.100.0/24 and 2001:db8:100::/48 are left free for announced prefixes.
Each node's interface is called ``eth0``; router ids equal the IPv4 address.
"""

from __future__ import annotations

import atexit
import contextlib
import ipaddress
import json
import os
import re
import secrets
import shutil
import signal
import subprocess
import sys
import tempfile
import textwrap
import time
from collections.abc import Callable, Iterable, Sequence
from dataclasses import dataclass, field
from typing import Any

from tests.ci import in_ci
from tests.ci import missing as _missing

NS_PREFIX = "bgpdt-"

ALLOWED_NETWORKS = (
    ipaddress.ip_network("192.0.2.0/24"),
    ipaddress.ip_network("198.51.100.0/24"),
    ipaddress.ip_network("2001:db8::/32"),
)

# Default timeout for one helper command (ip, birdc, vtysh, gobgp).
CMD_TIMEOUT = 15.0

STATES = ("idle", "connect", "active", "opensent", "openconfirm", "established")


# --------------------------------------------------------------------------
# small helpers


def check_address(addr: str) -> str:
    """Return ``addr`` if it lies in the documentation ranges, else raise ValueError.

    Accepts interface form (``192.0.2.1/24``) and plain addresses.
    """
    iface = ipaddress.ip_interface(addr)
    if not any(
        iface.ip.version == net.version and iface.ip in net for net in ALLOWED_NETWORKS
    ):
        raise ValueError(f"address {addr} is outside 192.0.2.0/24, 198.51.100.0/24, 2001:db8::/32")
    return addr


def check_prefix(prefix: str) -> str:
    """Return ``prefix`` if it lies inside the documentation ranges, else raise ValueError."""
    net = ipaddress.ip_network(prefix, strict=False)
    if not any(net.version == a.version and net.subnet_of(a) for a in ALLOWED_NETWORKS):
        raise ValueError(f"prefix {prefix} is outside the documentation ranges")
    return str(net)


def require_root() -> None:
    """Skip (or fail under CI=true) unless running as root."""
    if os.geteuid() != 0:
        _missing("interop tests need root for ip netns")


def require_binary(name: str) -> str:
    """Return the full path of ``name``; skip (or fail under CI=true) when absent."""
    path = shutil.which(name) or (name if os.path.isabs(name) and os.access(name, os.X_OK) else None)
    if path is None:
        _missing(f"{name} is not installed")
    assert path is not None
    return path


def poll(
    fn: Callable[[], Any],
    timeout: float = 10.0,
    interval: float = 0.2,
    what: str = "condition",
) -> Any:
    """Call ``fn`` until it returns something truthy and return that.

    Exceptions from ``fn`` count as "not yet".  On timeout raise
    AssertionError naming ``what`` and the last value (or exception) seen.
    """
    deadline = time.monotonic() + timeout
    last: Any = None
    tries = 0
    # Bounded by time and, for a pathological clock, by count.
    while tries < 100_000:
        tries += 1
        try:
            last = fn()
        except Exception as e:  # noqa: BLE001 - any failure is "not yet"
            last = e
        else:
            if last:
                return last
        if time.monotonic() >= deadline:
            break
        time.sleep(interval)
    raise AssertionError(f"timed out after {timeout:.1f}s waiting for {what}; last seen: {last!r}")


def free_port(lo: int = 20000, hi: int = 60000) -> int:
    """A random TCP port number for a loopback-only API inside one namespace."""
    return lo + secrets.randbelow(hi - lo)


# --------------------------------------------------------------------------
# processes and namespaces


class Process:
    """A child process, stopped by its PID.

    Output goes to ``log_path`` (a file, so a chatty daemon never blocks on
    a full pipe); ``output()`` reads it back.
    """

    def __init__(self, popen: subprocess.Popen, argv: Sequence[str], log_path: str) -> None:
        self._popen = popen
        self.argv = list(argv)
        self.log_path = log_path
        self.pid = popen.pid

    def alive(self) -> bool:
        """True while the process has not exited."""
        return self._popen.poll() is None

    @property
    def returncode(self) -> int | None:
        """Exit status once exited, else None."""
        return self._popen.poll()

    def signal(self, sig: int) -> None:
        """Send ``sig`` to this PID (no-op once it has exited)."""
        if self.alive():
            with contextlib.suppress(ProcessLookupError):
                os.kill(self.pid, sig)

    def stop(self, timeout: float = 5.0) -> int | None:
        """SIGTERM, wait up to ``timeout``, then SIGKILL; always reaps.  Idempotent."""
        if self._popen.poll() is None:
            # A frozen process cannot act on SIGTERM.
            self.signal(signal.SIGCONT)
            self.signal(signal.SIGTERM)
            try:
                self._popen.wait(timeout)
            except subprocess.TimeoutExpired:
                self.signal(signal.SIGKILL)
                with contextlib.suppress(subprocess.TimeoutExpired):
                    self._popen.wait(5.0)
        return self._popen.poll()

    def output(self) -> str:
        """Everything the process has written to stdout/stderr so far."""
        try:
            with open(self.log_path, errors="replace") as f:
                return f.read()
        except OSError:
            return ""

    def __repr__(self) -> str:
        return f"<Process pid={self.pid} {' '.join(self.argv)[:80]!r} rc={self.returncode}>"


_LIVE_NAMESPACES: set[Netns] = set()


def _atexit_cleanup() -> None:
    for ns in list(_LIVE_NAMESPACES):
        with contextlib.suppress(Exception):
            ns.close()


atexit.register(_atexit_cleanup)


class Netns:
    """A uniquely named network namespace ``bgpdt-<random>`` with ``lo`` up.

    Use as a context manager or call ``open()``/``close()``.  ``close()``
    stops every process started through ``popen`` and deletes the namespace;
    it is safe to call twice and after a half-failed ``open()``.
    """

    def __init__(self, label: str = "", workdir: str | None = None) -> None:
        suffix = secrets.token_hex(4)
        # Interface/namespace names are short; keep the label tiny.
        self.label = re.sub(r"[^a-z0-9]", "", label.lower())[:6]
        self.name = f"{NS_PREFIX}{self.label + '-' if self.label else ''}{suffix}"
        self._own_workdir = workdir is None
        self.workdir = workdir or tempfile.mkdtemp(prefix=self.name + "-")
        self._procs: list[Process] = []
        self._created = False
        self._closed = False

    # -- lifecycle

    def open(self) -> Netns:
        """Create the namespace, bring ``lo`` up, turn off IPv6 DAD."""
        require_root()
        require_binary("ip")
        _LIVE_NAMESPACES.add(self)
        subprocess.run(["ip", "netns", "add", self.name], check=True, timeout=CMD_TIMEOUT,
                       capture_output=True)
        self._created = True
        self.run(["ip", "link", "set", "lo", "up"])
        # Without DAD, addresses (link-local ones too) are usable at once.
        for key in ("all", "default"):
            self.run(["sysctl", "-q", "-w", f"net.ipv6.conf.{key}.accept_dad=0"], check=False)
        return self

    def __enter__(self) -> Netns:
        try:
            return self.open()
        except BaseException:
            self.close()
            raise

    def __exit__(self, *exc: object) -> None:
        self.close()

    def close(self) -> None:
        """Stop what was started here, delete the namespace.  Idempotent."""
        if self._closed:
            return
        self._closed = True
        for proc in reversed(self._procs):
            with contextlib.suppress(Exception):
                proc.stop()
        if self._created:
            # Anything still inside (a daemon's own helper children) was
            # started by us through this namespace: end those PIDs too.
            for pid in self.pids():
                with contextlib.suppress(ProcessLookupError):
                    os.kill(pid, signal.SIGKILL)
            subprocess.run(["ip", "netns", "del", self.name], check=False,
                           timeout=CMD_TIMEOUT, capture_output=True)
        _LIVE_NAMESPACES.discard(self)
        if self._own_workdir and not os.environ.get("BGPDT_KEEP"):
            shutil.rmtree(self.workdir, ignore_errors=True)

    def pids(self) -> list[int]:
        """PIDs currently running inside this namespace."""
        r = subprocess.run(["ip", "netns", "pids", self.name], capture_output=True, text=True,
                           timeout=CMD_TIMEOUT, check=False)
        return [int(x) for x in r.stdout.split() if x.isdigit()]

    # -- commands

    def _argv(self, cmd: Sequence[str]) -> list[str]:
        return ["ip", "netns", "exec", self.name, *cmd]

    def run(
        self,
        cmd: Sequence[str],
        timeout: float = CMD_TIMEOUT,
        check: bool = True,
        input: str | None = None,
        env: dict[str, str] | None = None,
    ) -> subprocess.CompletedProcess:
        """Run ``cmd`` inside the namespace and wait (bounded) for it."""
        r = subprocess.run(self._argv(cmd), capture_output=True, text=True, timeout=timeout,
                           input=input, env=env, check=False)
        if check and r.returncode != 0:
            raise RuntimeError(f"{' '.join(cmd)} in {self.name} -> {r.returncode}: "
                               f"{r.stderr.strip() or r.stdout.strip()}")
        return r

    def popen(
        self,
        cmd: Sequence[str],
        log_name: str | None = None,
        env: dict[str, str] | None = None,
        cwd: str | None = None,
    ) -> Process:
        """Start ``cmd`` inside the namespace; stdout+stderr go to a log file.

        ``ip netns exec`` execs the command, so the handle's PID is the
        command's own PID.  The namespace's ``close()`` stops it.
        """
        log_name = log_name or f"{os.path.basename(cmd[0])}-{len(self._procs)}.log"
        log_path = os.path.join(self.workdir, log_name)
        full_env = dict(os.environ)
        if env:
            full_env.update(env)
        with open(log_path, "ab") as log:
            p = subprocess.Popen(self._argv(cmd), stdout=log, stderr=subprocess.STDOUT,
                                 stdin=subprocess.DEVNULL, env=full_env, cwd=cwd,
                                 start_new_session=True)
        proc = Process(p, cmd, log_path)
        self._procs.append(proc)
        return proc

    def popen_bgpd(self, config_path: str, extra: Sequence[str] = (),
                   python: str | None = None, log_name: str = "bgpd.log") -> Process:
        """Start our own daemon in the foreground: ``twistd -n --pidfile= bgpd -c FILE``.

        ``python`` defaults to the interpreter running the tests (the venv's),
        never a ``python3`` from PATH, which on a fresh machine has no Twisted.
        """
        repo = os.path.dirname(os.path.dirname(os.path.dirname(os.path.abspath(__file__))))
        env = {"PYTHONPATH": repo + os.pathsep + os.environ.get("PYTHONPATH", ""),
               "PYTHONUNBUFFERED": "1"}
        # twisted.scripts.twistd has no __main__ guard, so ``-m`` would exit
        # at once; call its run() the way the twistd script does.
        boot = "import sys; from twisted.scripts.twistd import run; sys.argv[0] = 'twistd'; run()"
        return self.popen([python or sys.executable, "-c", boot, "-n", "--pidfile=", "bgpd", "-c",
                           config_path, *extra], log_name=log_name, env=env, cwd=repo)

    def capture(self, ifname: str, path: str, bpf: str = "tcp port 179") -> Process:
        """Start tcpdump on ``ifname`` writing ``path``; stop the handle to flush it."""
        require_binary("tcpdump")
        proc = self.popen(["tcpdump", "-i", ifname, "-U", "-n", "-s", "0", "-Z", "root",
                           "-w", path, bpf], log_name=f"tcpdump-{ifname}.log")
        poll(lambda: "listening on" in proc.output() or not proc.alive(), 10, 0.05,
             "tcpdump to start")
        if not proc.alive():
            raise RuntimeError(f"tcpdump failed: {proc.output()}")
        return proc

    def __repr__(self) -> str:
        return f"<Netns {self.name}>"


def veth(
    ns_a: Netns,
    ns_b: Netns,
    addrs_a: Iterable[str] = (),
    addrs_b: Iterable[str] = (),
    name_a: str = "eth0",
    name_b: str = "eth0",
) -> tuple[str, str]:
    """Link two namespaces with a veth pair and give each end its addresses.

    Addresses are interface form (``192.0.2.1/24``, ``2001:db8::1/64``) and
    must be in the documentation ranges.  IPv6 ones get ``nodad``.
    """
    addrs_a, addrs_b = list(addrs_a), list(addrs_b)
    for a in addrs_a + addrs_b:
        check_address(a)
    # Made directly inside the two namespaces: nothing appears in the host's.
    subprocess.run(["ip", "link", "add", name_a, "netns", ns_a.name, "type", "veth",
                    "peer", "name", name_b, "netns", ns_b.name],
                   check=True, timeout=CMD_TIMEOUT, capture_output=True)
    for ns, name, addrs in ((ns_a, name_a, addrs_a), (ns_b, name_b, addrs_b)):
        set_addresses(ns, name, addrs)
    return name_a, name_b


def set_addresses(ns: Netns, ifname: str, addrs: Iterable[str]) -> None:
    """Add checked addresses to ``ifname`` in ``ns`` and bring it up."""
    for a in addrs:
        check_address(a)
        extra = ["nodad"] if ipaddress.ip_interface(a).version == 6 else []
        ns.run(["ip", "addr", "add", a, "dev", ifname, *extra])
    ns.run(["ip", "link", "set", ifname, "up"])


def link_local(ns: Netns, ifname: str = "eth0") -> str:
    """The fe80:: address of ``ifname`` (waits briefly for the kernel to add it)."""
    def ll() -> str | None:
        out = ns.run(["ip", "-6", "-o", "addr", "show", "dev", ifname, "scope", "link"]).stdout
        m = re.search(r"inet6 (fe80::[0-9a-f:]+)/64", out)
        return m.group(1) if m else None
    return poll(ll, 5, 0.05, f"link-local address on {ifname} in {ns.name}")


@dataclass
class LabNode:
    """One host of a Lab: its namespace, interface and addresses."""

    name: str
    index: int
    ns: Netns
    ifname: str = "eth0"

    @property
    def ipv4(self) -> str:
        return f"192.0.2.{self.index + 1}"

    @property
    def ipv6(self) -> str:
        return f"2001:db8::{self.index + 1:x}"

    @property
    def router_id(self) -> str:
        return self.ipv4

    def link_local(self) -> str:
        return link_local(self.ns, self.ifname)


class Lab:
    """Namespaces on one shared Ethernet segment (see the module docstring's plan).

    ``Lab(["bgpd", "bird", "gobgp"])`` makes nodes ``bgpd`` (192.0.2.1,
    2001:db8::1), ``bird`` (.2, ::2) and ``gobgp`` (.3, ::3), each with its
    own namespace and ``eth0``, all plugged into bridge ``br0`` inside a
    separate switch namespace.  ``lab.capture(path)`` records the whole
    segment from the bridge.
    """

    def __init__(self, names: Sequence[str] = ("bgpd", "peer1", "peer2")) -> None:
        if len(names) > 250 or len(set(names)) != len(names):
            raise ValueError("node names must be unique, at most 250")
        self.names = list(names)
        self.switch: Netns | None = None
        self.nodes: dict[str, LabNode] = {}
        self._closed = False

    def open(self) -> Lab:
        """Create the switch and node namespaces and wire them up."""
        self.switch = Netns("sw").open()
        self.switch.run(["ip", "link", "add", "br0", "type", "bridge"])
        # No STP/forwarding delay: ports forward the moment they come up.
        self.switch.run(["ip", "link", "set", "br0", "type", "bridge", "stp_state", "0",
                         "forward_delay", "0"], check=False)
        self.switch.run(["ip", "link", "set", "br0", "up"])
        for i, name in enumerate(self.names):
            node = LabNode(name, i, Netns(name).open())
            self.nodes[name] = node
            port = f"p{i}"
            veth(node.ns, self.switch, [f"{node.ipv4}/24", f"{node.ipv6}/64"], [],
                 name_a=node.ifname, name_b=port)
            self.switch.run(["ip", "link", "set", port, "master", "br0"])
        return self

    def __enter__(self) -> Lab:
        try:
            return self.open()
        except BaseException:
            self.close()
            raise

    def __exit__(self, *exc: object) -> None:
        self.close()

    def __getitem__(self, name: str) -> LabNode:
        return self.nodes[name]

    def capture(self, path: str, bpf: str = "tcp port 179") -> Process:
        """tcpdump on the bridge: every BGP packet between any two nodes."""
        assert self.switch is not None
        return self.switch.capture("br0", path, bpf)

    def close(self) -> None:
        """Close every node namespace and the switch.  Idempotent."""
        if self._closed:
            return
        self._closed = True
        for node in reversed(list(self.nodes.values())):
            with contextlib.suppress(Exception):
                node.ns.close()
        if self.switch is not None:
            self.switch.close()


# --------------------------------------------------------------------------
# daemon drivers


@dataclass
class Neighbor:
    """A BGP neighbor as the driven daemon sees it.

    ``families`` defaults to the transport family (``ipv4`` over IPv4,
    ``ipv6`` over IPv6).  ``local_address`` is this daemon's own address
    on the link (needed by BIRD and ExaBGP).
    """

    address: str
    asn: int
    local_address: str | None = None
    md5: str | None = None
    families: tuple[str, ...] = ()
    passive: bool = False
    hold_time: int = 90
    graceful_restart: bool = False
    add_path: bool = False
    # Raw daemon-specific lines for this neighbor's block: BIRD protocol
    # statements, FRR ``neighbor X ...`` lines, GoBGP TOML, ExaBGP statements.
    extra: tuple[str, ...] = ()

    def __post_init__(self) -> None:
        check_address(self.address)
        if self.local_address:
            check_address(self.local_address)
        if not self.families:
            v = ipaddress.ip_address(self.address).version
            self.families = ("ipv4",) if v == 4 else ("ipv6",)

    @property
    def version(self) -> int:
        return ipaddress.ip_address(self.address).version


@dataclass
class Route:
    """A received route, as much as the daemon's CLI shows."""

    prefix: str
    next_hop: tuple[str, ...] = ()
    as_path: tuple[int, ...] = ()
    as_set: tuple[int, ...] = ()
    origin: str | None = None
    med: int | None = None
    local_pref: int | None = None
    communities: tuple[str, ...] = ()
    large_communities: tuple[str, ...] = ()
    ext_communities: tuple[str, ...] = ()
    peer: str | None = None
    raw: Any = field(default=None, repr=False, compare=False)


WELL_KNOWN = {
    "no-export": "65535:65281",
    "noexport": "65535:65281",
    "no-advertise": "65535:65282",
    "noadvertise": "65535:65282",
    "no-export-subconfed": "65535:65283",
    "local-as": "65535:65283",
    "no-peer": "65535:65284",
    "nopeer": "65535:65284",
    "blackhole": "65535:666",
    "graceful-shutdown": "65535:0",
    "llgr-stale": "65535:6",
    "no-llgr": "65535:7",
}


def norm_community(c: str | int) -> str:
    """``a:b`` from a number, a well-known name or ``a:b``."""
    if isinstance(c, int):
        return f"{c >> 16}:{c & 0xFFFF}"
    c = c.strip()
    return WELL_KNOWN.get(c.lower().replace("_", "-"), c)


def _family_of(prefix: str) -> str:
    return "ipv6" if ":" in prefix else "ipv4"


class Daemon:
    """Common driver shape.  Subclasses fill in the daemon specifics.

    ``ns`` is the namespace to run in, ``asn``/``router_id`` the daemon's
    own, ``neighbors`` its peers.  ``routes`` (prefix -> attrs dict, the
    keyword arguments of ``announce``) are originated from the start.
    """

    binary = ""
    name = "daemon"

    def __init__(
        self,
        ns: Netns,
        asn: int,
        router_id: str,
        neighbors: Sequence[Neighbor] = (),
        routes: dict[str, dict[str, Any]] | None = None,
        extra_config: str = "",
    ) -> None:
        self.ns = ns
        self.asn = asn
        self.router_id = check_address(router_id)
        self.neighbors = list(neighbors)
        self.announced: dict[str, dict[str, Any]] = {}
        for p, attrs in (routes or {}).items():
            self.announced[check_prefix(p)] = dict(attrs)
        self.extra_config = extra_config
        self.dir = tempfile.mkdtemp(prefix=f"{self.name}-", dir=ns.workdir)
        self.proc: Process | None = None

    # -- to implement

    def _command(self) -> list[str]:
        raise NotImplementedError

    def _write_config(self) -> None:
        raise NotImplementedError

    def _ready(self) -> bool:
        raise NotImplementedError

    def session_state(self, peer: str) -> str:
        """Lower-case RFC 4271 state name of the session with ``peer``."""
        raise NotImplementedError

    def routes(self, family: str = "ipv4") -> dict[str, Route]:
        """Best received route per prefix for ``family`` (``ipv4``/``ipv6``)."""
        raise NotImplementedError

    def announce(self, prefix: str, **attrs: Any) -> None:
        """Originate ``prefix``; attrs: next_hop, as_path, med, local_pref,
        communities, large_communities, ext_communities, origin."""
        raise NotImplementedError

    def withdraw(self, prefix: str) -> None:
        """Stop originating ``prefix``."""
        raise NotImplementedError

    # -- shared

    def start(self) -> Daemon:
        """Check the binary, write the config, start in the foreground, wait until it answers."""
        require_binary(self.binary)
        self._write_config()
        self.proc = self.ns.popen(self._command(), log_name=f"{self.name}.log")
        try:
            poll(lambda: (not self.proc.alive()) or self._ready(), 20, 0.1,
                 f"{self.name} control interface")
        except AssertionError:
            raise AssertionError(f"{self.name} did not come up:\n{self.log()[-3000:]}") from None
        if not self.proc.alive():
            raise RuntimeError(f"{self.name} exited rc={self.proc.returncode}:\n"
                               f"{self.log()[-3000:]}")
        return self

    def stop(self) -> None:
        """Stop the daemon by PID (SIGTERM, bounded wait, SIGKILL)."""
        if self.proc is not None:
            self.proc.stop()

    def restart(self) -> Daemon:
        """Stop, then start again with the current config."""
        self.stop()
        return self.start()

    def freeze(self) -> None:
        """SIGSTOP the daemon: it stops sending keepalives (hold timer tests)."""
        assert self.proc is not None
        self.proc.signal(signal.SIGSTOP)

    def thaw(self) -> None:
        """SIGCONT after ``freeze``."""
        assert self.proc is not None
        self.proc.signal(signal.SIGCONT)

    def log(self) -> str:
        """The daemon's own output so far."""
        return self.proc.output() if self.proc else ""

    def wait_established(self, peer: str, timeout: float = 30.0) -> None:
        """Poll until the session with ``peer`` is Established."""
        poll(lambda: self.session_state(peer) == "established", timeout, 0.25,
             f"{self.name} session with {peer} Established")

    def wait_route(self, prefix: str, timeout: float = 20.0,
                   pred: Callable[[Route], bool] | None = None) -> Route:
        """Poll until ``prefix`` is received (and ``pred(route)`` holds); return it."""
        fam = _family_of(prefix)
        prefix = str(ipaddress.ip_network(prefix))

        def check() -> Route | None:
            r = self.routes(fam).get(prefix)
            return r if r is not None and (pred is None or pred(r)) else None
        return poll(check, timeout, 0.25, f"{self.name} to receive {prefix}")

    def wait_no_route(self, prefix: str, timeout: float = 20.0) -> None:
        """Poll until ``prefix`` is gone from the received routes."""
        fam = _family_of(prefix)
        prefix = str(ipaddress.ip_network(prefix))
        poll(lambda: prefix not in self.routes(fam), timeout, 0.25,
             f"{self.name} to drop {prefix}")

    def neighbor(self, peer: str) -> Neighbor:
        for n in self.neighbors:
            if ipaddress.ip_address(n.address) == ipaddress.ip_address(peer):
                return n
        raise KeyError(peer)


def _norm_state(s: str) -> str:
    s = s.lower().replace("_", "").replace(" ", "")
    for st in STATES:
        if s.startswith(st) or s.endswith(st):
            return st
    return s


# ---- BIRD 2


class Bird(Daemon):
    """BIRD 2: ``bird -f -c CONF -s SOCK -P PID``; ``birdc -s SOCK`` for queries.

    One ``protocol bgp`` per neighbor named ``p_<address>``.  Announced
    routes are static ``blackhole`` routes carrying the attributes; runtime
    changes rewrite the config and run ``birdc configure``.
    """

    binary = "bird"
    name = "bird"
    # What each BGP channel exports: "all", or "filter NAME" / "filter { ... }".
    export_filter = "all"

    @property
    def sock(self) -> str:
        return os.path.join(self.dir, "bird.ctl")

    @staticmethod
    def proto_name(peer: str) -> str:
        return "p_" + re.sub(r"[^0-9a-zA-Z]", "_", peer)

    def _command(self) -> list[str]:
        return ["bird", "-f", "-c", os.path.join(self.dir, "bird.conf"), "-s", self.sock,
                "-P", os.path.join(self.dir, "bird.pid")]

    def birdc(self, *args: str, timeout: float = CMD_TIMEOUT) -> str:
        """Run one birdc command; return its output."""
        r = subprocess.run(["birdc", "-s", self.sock, *args], capture_output=True, text=True,
                           timeout=timeout, check=False)
        if r.returncode != 0:
            raise RuntimeError(f"birdc {' '.join(args)}: {r.stderr or r.stdout}")
        return r.stdout

    def _ready(self) -> bool:
        return os.path.exists(self.sock) and "BIRD" in self.birdc("show", "status")

    @staticmethod
    def _static_route(prefix: str, attrs: dict[str, Any]) -> str:
        stmts = []
        if attrs.get("origin"):
            stmts.append(f"bgp_origin = ORIGIN_{attrs['origin'].upper()};")
        if attrs.get("med") is not None:
            stmts.append(f"bgp_med = {int(attrs['med'])};")
        if attrs.get("local_pref") is not None:
            stmts.append(f"bgp_local_pref = {int(attrs['local_pref'])};")
        for asn in reversed(list(attrs.get("as_path", ()))):
            stmts.append(f"bgp_path.prepend({int(asn)});")
        for c in attrs.get("communities", ()):
            a, b = norm_community(c).split(":")
            stmts.append(f"bgp_community.add(({a},{b}));")
        for c in attrs.get("large_communities", ()):
            a, b, d = c.split(":")
            stmts.append(f"bgp_large_community.add(({a},{b},{d}));")
        for c in attrs.get("ext_communities", ()):
            kind, a, b = c.split(":")
            stmts.append(f"bgp_ext_community.add(({kind},{a},{b}));")
        body = " ".join(stmts)
        return f"    route {prefix} blackhole {{ {body} }};" if body else \
            f"    route {prefix} blackhole;"

    def _write_config(self) -> None:
        lines = [
            f"router id {self.router_id};",
            # One token per time so the protocol table splits on whitespace.
            'timeformat protocol "%s";',
            "protocol device { scan time 5; }",
        ]
        for fam in ("ipv4", "ipv6"):
            routes = [self._static_route(p, a) for p, a in self.announced.items()
                      if _family_of(p) == fam]
            lines.append(f"protocol static static_{fam} {{\n    {fam};")
            lines.extend(routes)
            lines.append("}")
        for n in self.neighbors:
            p = [f"protocol bgp {self.proto_name(n.address)} {{"]
            local = f"local {n.local_address} " if n.local_address else "local "
            p.append(f"    {local}as {self.asn};")
            p.append(f"    neighbor {n.address} as {n.asn};")
            p.append(f"    hold time {n.hold_time};")
            p.append("    connect retry time 2;")
            p.append("    error wait time 1, 4;")
            if n.passive:
                p.append("    passive on;")
            if n.md5:
                p.append(f'    password "{n.md5}";')
            if n.graceful_restart:
                p.append("    graceful restart on;")
            if n.asn == self.asn:
                p.append("    direct;")
            p.extend("    " + x for x in n.extra)
            for fam in n.families:
                ch = [f"    {fam} {{", "        import all;", f"        export {self.export_filter};"]
                if n.add_path:
                    ch.append("        add paths on;")
                if fam == "ipv6" and n.version == 4:
                    ch.append("        extended next hop off;")
                ch.append("    };")
                p.extend(ch)
            p.append("}")
            lines.extend(p)
        if self.extra_config:
            lines.append(self.extra_config)
        with open(os.path.join(self.dir, "bird.conf"), "w") as f:
            f.write("\n".join(lines) + "\n")

    def reconfigure(self) -> None:
        """Rewrite the config from the current state and ``birdc configure``."""
        self._write_config()
        out = self.birdc("configure")
        if "Reconfigur" not in out and "Reconfiguration" not in out:
            raise RuntimeError(f"birdc configure failed: {out}")

    def announce(self, prefix: str, **attrs: Any) -> None:
        self.announced[check_prefix(prefix)] = attrs
        self.reconfigure()

    def withdraw(self, prefix: str) -> None:
        self.announced.pop(str(ipaddress.ip_network(prefix)), None)
        self.reconfigure()

    def session_state(self, peer: str) -> str:
        out = self.birdc("show", "protocols", self.proto_name(peer))
        for line in out.splitlines():
            cols = line.split()
            if cols and cols[0] == self.proto_name(peer):
                # name proto table state since info...
                if len(cols) >= 6:
                    return _norm_state(cols[5])
                return _norm_state(cols[3])
        return "unknown"

    def protocol_info(self, peer: str) -> str:
        """``show protocols all`` for one neighbor (raw text)."""
        return self.birdc("show", "protocols", "all", self.proto_name(peer))

    def routes(self, family: str = "ipv4") -> dict[str, Route]:
        out = self.birdc("show", "route", "all", "table", "master4" if family == "ipv4"
                         else "master6", "where", "source", "=", "RTS_BGP", timeout=30)
        return parse_bird_routes(out)


def parse_bird_routes(out: str) -> dict[str, Route]:
    """Parse ``birdc show route all`` output; the first (best) route per prefix wins."""
    result: dict[str, Route] = {}
    cur: dict[str, Any] | None = None
    prefix = None

    def flush() -> None:
        if cur is not None and prefix is not None and prefix not in result:
            result[prefix] = Route(prefix=prefix, **cur)

    for line in out.splitlines():
        if not line.strip() or line.startswith(("BIRD ", "Table ", "Access")):
            continue
        m = re.match(r"^(\S+)\s+\w+ \[(\S+)", line)
        m2 = re.match(r"^\s+\w+ \[(\S+) ", line)
        if m and "/" in m.group(1):
            flush()
            prefix = str(ipaddress.ip_network(m.group(1)))
            cur = {"raw": line + "\n", "peer": m.group(2)}
            continue
        if m2 and cur is not None:
            flush()
            cur = {"raw": line + "\n", "peer": m2.group(1)}
            continue
        if cur is None:
            continue
        cur["raw"] += line + "\n"
        s = line.strip()
        key, _, val = s.partition(": ")
        val = val.strip()
        if key == "BGP.origin":
            cur["origin"] = val.lower()
        elif key == "BGP.as_path":
            path, aset = [], []
            for tok in re.findall(r"\{[^}]*\}|\d+", val):
                if tok.startswith("{"):
                    aset.extend(int(x) for x in re.findall(r"\d+", tok))
                else:
                    path.append(int(tok))
            cur["as_path"] = tuple(path)
            cur["as_set"] = tuple(aset)
        elif key == "BGP.next_hop":
            cur["next_hop"] = tuple(val.split())
        elif key == "BGP.med":
            cur["med"] = int(val)
        elif key == "BGP.local_pref":
            cur["local_pref"] = int(val)
        elif key == "BGP.community":
            cur["communities"] = tuple(
                f"{a}:{b}" for a, b in re.findall(r"\((\d+),\s*(\d+)\)", val))
        elif key == "BGP.large_community":
            cur["large_communities"] = tuple(
                f"{a}:{b}:{c}" for a, b, c in re.findall(r"\((\d+),\s*(\d+),\s*(\d+)\)", val))
        elif key == "BGP.ext_community":
            cur["ext_communities"] = tuple(
                f"{k}:{a}:{b}" for k, a, b in
                re.findall(r"\((\w+),\s*([\w.]+),\s*(\d+)\)", val))
    flush()
    return result


# ---- FRR


class Frr(Daemon):
    """FRR's bgpd without zebra (``-Z``), own config, pid file and vty socket dir.

    Queried with ``vtysh --vty_socket DIR -d bgpd -c ...`` (JSON outputs).
    Announced prefixes are ``network`` statements with a route-map that
    sets the attributes (``no bgp network import-check``).
    """

    binary = "/usr/lib/frr/bgpd"
    name = "frr"

    def __init__(self, *args: Any, zebra: bool = False, **kw: Any) -> None:
        super().__init__(*args, **kw)
        self.use_zebra = zebra
        self.zebra_proc: Process | None = None
        self._rm = 0

    def _command(self) -> list[str]:
        cmd = [self.binary, "-f", os.path.join(self.dir, "bgpd.conf"),
               "-i", os.path.join(self.dir, "bgpd.pid"),
               "--vty_socket", self.dir, "-P", "0", "-S",
               "--log", "stdout", "--moduledir", "/nonexistent"]
        if self.use_zebra:
            cmd += ["-z", os.path.join(self.dir, "zserv.api"), "-n"]
        else:
            cmd += ["-Z", "-n", "-z", os.path.join(self.dir, "zserv.api")]
        return cmd

    def start(self) -> Daemon:
        if self.use_zebra:
            require_binary("/usr/lib/frr/zebra")
            with open(os.path.join(self.dir, "zebra.conf"), "w") as f:
                f.write("hostname zebra\n")
            # zebra has no -S: it drops to the frr user, which must reach its files.
            os.chmod(self.ns.workdir, 0o711)
            for p in (self.dir, os.path.join(self.dir, "zebra.conf")):
                shutil.chown(p, "frr", "frr")
            self.zebra_proc = self.ns.popen(
                ["/usr/lib/frr/zebra", "-f", os.path.join(self.dir, "zebra.conf"),
                 "-i", os.path.join(self.dir, "zebra.pid"), "--vty_socket", self.dir,
                 "-z", os.path.join(self.dir, "zserv.api"), "-P", "0",
                 "-u", "frr", "-g", "frr", "--log", "stdout"], log_name="zebra.log")
            poll(lambda: os.path.exists(os.path.join(self.dir, "zserv.api")), 10, 0.1,
                 "zebra socket")
        return super().start()

    def stop(self) -> None:
        super().stop()
        if self.zebra_proc is not None:
            self.zebra_proc.stop()

    def vtysh(self, *cmds: str, timeout: float = CMD_TIMEOUT) -> str:
        """Run vtysh commands against this bgpd; return stdout."""
        argv = ["vtysh", "--vty_socket", self.dir, "-d", "bgpd"]
        for c in cmds:
            argv += ["-c", c]
        r = subprocess.run(argv, capture_output=True, text=True, timeout=timeout, check=False)
        if r.returncode != 0:
            raise RuntimeError(f"vtysh {cmds}: {r.stderr.strip() or r.stdout.strip()}")
        return r.stdout

    def vtysh_json(self, cmd: str) -> Any:
        return json.loads(self.vtysh(cmd) or "{}")

    def _ready(self) -> bool:
        return os.path.exists(os.path.join(self.dir, "bgpd.vty")) and \
            "BGP" in self.vtysh("show bgp summary")

    def _route_map(self, prefix: str, attrs: dict[str, Any]) -> list[str]:
        name = "RM_" + re.sub(r"[^0-9a-zA-Z]", "_", prefix)
        lines = [f"route-map {name} permit 10"]
        if attrs.get("origin"):
            lines.append(f" set origin {attrs['origin'].lower()}")
        if attrs.get("med") is not None:
            lines.append(f" set metric {int(attrs['med'])}")
        if attrs.get("local_pref") is not None:
            lines.append(f" set local-preference {int(attrs['local_pref'])}")
        if attrs.get("as_path"):
            lines.append(" set as-path prepend " + " ".join(str(a) for a in attrs["as_path"]))
        if attrs.get("communities"):
            cs = " ".join(norm_community(c) for c in attrs["communities"])
            lines.append(f" set community {cs}")
        if attrs.get("large_communities"):
            lines.append(" set large-community " + " ".join(attrs["large_communities"]))
        if attrs.get("ext_communities"):
            rts = [c.split(":", 1)[1] for c in attrs["ext_communities"] if c.startswith("rt:")]
            if rts:
                lines.append(" set extcommunity rt " + " ".join(rts))
        if attrs.get("next_hop"):
            nh = attrs["next_hop"]
            v = "ipv6 next-hop global" if ":" in nh else "ip next-hop"
            lines.append(f" set {v} {nh}")
        return lines

    def _write_config(self) -> None:
        lines = ["hostname frr", "log stdout debugging" if os.environ.get("BGPDT_DEBUG")
                 else "log stdout informational", "!"]
        for p, a in self.announced.items():
            lines += self._route_map(p, a) + ["!"]
        lines += [f"router bgp {self.asn}", f" bgp router-id {self.router_id}",
                  " no bgp ebgp-requires-policy", " no bgp network import-check",
                  " no bgp default ipv4-unicast"]
        if any(n.graceful_restart for n in self.neighbors):
            lines.append(" bgp graceful-restart")
        for n in self.neighbors:
            a = n.address
            lines.append(f" neighbor {a} remote-as {n.asn}")
            lines.append(f" neighbor {a} timers {max(n.hold_time // 3, 1)} {n.hold_time}")
            lines.append(f" neighbor {a} timers connect 2")
            lines.append(f" neighbor {a} advertisement-interval 0")
            if n.passive:
                lines.append(f" neighbor {a} passive")
            if n.md5:
                lines.append(f" neighbor {a} password {n.md5}")
            if n.local_address:
                lines.append(f" neighbor {a} update-source {n.local_address}")
            if not self.use_zebra and n.asn != self.asn:
                # Without zebra bgpd knows no interfaces, so it cannot tell
                # that the peer is on a connected subnet.
                lines.append(f" neighbor {a} disable-connected-check")
            lines.extend(" " + x for x in n.extra)
        for fam in ("ipv4", "ipv6"):
            lines.append(f" address-family {fam} unicast")
            for p in self.announced:
                if _family_of(p) == fam:
                    lines.append(f"  network {p} route-map RM_{re.sub(r'[^0-9a-zA-Z]', '_', p)}")
            for n in self.neighbors:
                if fam in n.families:
                    lines.append(f"  neighbor {n.address} activate")
                    lines.append(f"  neighbor {n.address} send-community all")
                    if n.add_path:
                        lines.append(f"  neighbor {n.address} addpath-tx-all-paths")
            lines.append(" exit-address-family")
        lines.append("!")
        if self.extra_config:
            lines.append(self.extra_config)
        with open(os.path.join(self.dir, "bgpd.conf"), "w") as f:
            f.write("\n".join(lines) + "\n")

    def configure(self, *cmds: str) -> str:
        """Run configuration commands (``configure terminal`` is prepended)."""
        return self.vtysh("configure terminal", *cmds)

    def announce(self, prefix: str, **attrs: Any) -> None:
        prefix = check_prefix(prefix)
        self.announced[prefix] = attrs
        fam = _family_of(prefix)
        rm = self._route_map(prefix, attrs)
        self.configure(f"no {rm[0]}", *rm, "exit", f"router bgp {self.asn}",
                       f"address-family {fam} unicast",
                       f"network {prefix} route-map {rm[0].split()[1]}")

    def withdraw(self, prefix: str) -> None:
        prefix = str(ipaddress.ip_network(prefix))
        self.announced.pop(prefix, None)
        self.configure(f"router bgp {self.asn}", f"address-family {_family_of(prefix)} unicast",
                       f"no network {prefix}")

    def session_state(self, peer: str) -> str:
        data = self.vtysh_json(f"show bgp neighbors {peer} json")
        info = data.get(peer) or next(iter(data.values()), {})
        return _norm_state(str(info.get("bgpState", "unknown")))

    def routes(self, family: str = "ipv4") -> dict[str, Route]:
        table = self.vtysh_json(f"show bgp {family} unicast json")
        out: dict[str, Route] = {}
        for prefix, paths in (table.get("routes") or {}).items():
            paths = [p for p in paths if p.get("peerId") not in (None, "(unspec)")]
            if not paths:
                continue
            detail = self.vtysh_json(f"show bgp {family} unicast {prefix} json")
            dpaths = [p for p in detail.get("paths", [])
                      if p.get("peer", {}).get("peerId") not in (None, "(unspec)")]
            if not dpaths:
                continue
            best = next((p for p in dpaths if p.get("bestpath", {}).get("overall")), dpaths[0])
            out[str(ipaddress.ip_network(prefix))] = _frr_route(prefix, best)
        return out


def _frr_route(prefix: str, p: dict[str, Any]) -> Route:
    segs = p.get("aspath", {}).get("segments", [])
    path, aset = [], []
    for s in segs:
        (aset if s.get("type") == "as-set" else path).extend(int(x) for x in s.get("list", []))
    comms = tuple(norm_community(c) for c in p.get("community", {}).get("string", "").split())
    large = tuple(p.get("largeCommunity", {}).get("string", "").split())
    ext = tuple(p.get("extendedCommunity", {}).get("string", "").split())
    ext = tuple(e.replace("RT:", "rt:") for e in ext)
    nh = tuple(n.get("ip") for n in p.get("nexthops", []) if n.get("ip"))
    return Route(
        prefix=str(ipaddress.ip_network(prefix)),
        next_hop=nh,
        as_path=tuple(path),
        as_set=tuple(aset),
        origin=str(p.get("origin", "")).lower() or None,
        med=p.get("metric"),
        local_pref=p.get("locPrf") if p.get("locPrf") is not None else p.get("localpref"),
        communities=comms,
        large_communities=large,
        ext_communities=ext,
        peer=p.get("peer", {}).get("peerId"),
        raw=p,
    )


# ---- GoBGP


class GoBGP(Daemon):
    """gobgpd with a TOML config and its gRPC API on 127.0.0.1:PORT in the namespace."""

    binary = "gobgpd"
    name = "gobgp"

    def __init__(self, *args: Any, **kw: Any) -> None:
        super().__init__(*args, **kw)
        self.api_port = free_port()

    def _command(self) -> list[str]:
        return ["gobgpd", "-f", os.path.join(self.dir, "gobgpd.toml"), "-t", "toml",
                "--api-hosts", f"127.0.0.1:{self.api_port}", "-p", "--pprof-disable"]

    def gobgp(self, *args: str, timeout: float = CMD_TIMEOUT) -> str:
        """Run the ``gobgp`` client inside the namespace; return stdout."""
        return self.ns.run(["gobgp", "-u", "127.0.0.1", "-p", str(self.api_port), *args],
                           timeout=timeout).stdout

    def _ready(self) -> bool:
        self.gobgp("global")
        return True

    def _write_config(self) -> None:
        t = ["[global.config]", f"  as = {self.asn}", f'  router-id = "{self.router_id}"',
             "  port = 179", ""]
        for n in self.neighbors:
            t += ["[[neighbors]]", "  [neighbors.config]",
                  f'    neighbor-address = "{n.address}"', f"    peer-as = {n.asn}"]
            if n.md5:
                t.append(f'    auth-password = "{n.md5}"')
            t += ["  [neighbors.timers.config]", f"    hold-time = {n.hold_time}",
                  f"    keepalive-interval = {max(n.hold_time // 3, 1)}",
                  "    connect-retry = 2"]
            t += ["  [neighbors.transport.config]", f"    passive-mode = {str(n.passive).lower()}"]
            if n.local_address:
                t.append(f'    local-address = "{n.local_address}"')
            if n.graceful_restart:
                t += ["  [neighbors.graceful-restart.config]", "    enabled = true",
                      "    restart-time = 120"]
            for fam in n.families:
                t += ["  [[neighbors.afi-safis]]", "    [neighbors.afi-safis.config]",
                      f'      afi-safi-name = "{fam}-unicast"']
                if n.add_path:
                    t += ["    [neighbors.afi-safis.add-paths.config]", "      receive = true",
                          "      send-max = 4"]
                if n.graceful_restart:
                    t += ["    [neighbors.afi-safis.mp-graceful-restart.config]",
                          "      enabled = true"]
            t.extend(n.extra)
            t.append("")
        if self.extra_config:
            t.append(self.extra_config)
        with open(os.path.join(self.dir, "gobgpd.toml"), "w") as f:
            f.write("\n".join(t) + "\n")

    def start(self) -> Daemon:
        super().start()
        for p, a in self.announced.items():
            self._add(p, a)
        return self

    def _add(self, prefix: str, attrs: dict[str, Any]) -> None:
        fam = _family_of(prefix)
        args = ["global", "rib", "-a", fam, "add", prefix]
        nh = attrs.get("next_hop")
        if nh:
            args += ["nexthop", check_address(nh)]
        if attrs.get("origin"):
            args += ["origin", attrs["origin"].lower()]
        if attrs.get("as_path"):
            args += ["aspath", ",".join(str(a) for a in attrs["as_path"])]
        if attrs.get("med") is not None:
            args += ["med", str(int(attrs["med"]))]
        if attrs.get("local_pref") is not None:
            args += ["local-pref", str(int(attrs["local_pref"]))]
        if attrs.get("communities"):
            args += ["community", ",".join(norm_community(c) for c in attrs["communities"])]
        if attrs.get("large_communities"):
            args += ["large-community", ",".join(attrs["large_communities"])]
        if attrs.get("ext_communities"):
            for c in attrs["ext_communities"]:
                kind, _, val = c.partition(":")
                args += [kind, val]
        self.gobgp(*args)

    def announce(self, prefix: str, **attrs: Any) -> None:
        prefix = check_prefix(prefix)
        self.announced[prefix] = attrs
        self._add(prefix, attrs)

    def withdraw(self, prefix: str) -> None:
        prefix = str(ipaddress.ip_network(prefix))
        self.announced.pop(prefix, None)
        self.gobgp("global", "rib", "-a", _family_of(prefix), "del", prefix)

    def neighbors_json(self) -> list[dict[str, Any]]:
        return json.loads(self.gobgp("neighbor", "-j") or "[]")

    def session_state(self, peer: str) -> str:
        for n in self.neighbors_json():
            conf = n.get("conf", {})
            addr = conf.get("neighbor_address") or n.get("state", {}).get("neighbor_address")
            if addr and ipaddress.ip_address(addr) == ipaddress.ip_address(peer):
                st = n.get("state", {}).get("session_state", "unknown")
                if isinstance(st, int):
                    st = ("unknown", "idle", "connect", "active", "opensent", "openconfirm",
                          "established")[st]
                return _norm_state(str(st))
        return "unknown"

    def routes(self, family: str = "ipv4") -> dict[str, Route]:
        data = json.loads(self.gobgp("global", "rib", "-a", family, "-j") or "{}")
        out: dict[str, Route] = {}
        for prefix, paths in data.items():
            recv = [p for p in paths if p.get("source-id") not in (None, "<nil>", "")
                    or p.get("neighbor-ip") not in (None, "<nil>", "")]
            recv = [p for p in recv if p.get("neighbor-ip") not in (None, "<nil>", "")]
            if not recv:
                continue
            best = next((p for p in recv if p.get("best")), recv[0])
            out[str(ipaddress.ip_network(prefix))] = _gobgp_route(prefix, best)
        return out


def _gobgp_route(prefix: str, p: dict[str, Any]) -> Route:
    kw: dict[str, Any] = {"prefix": str(ipaddress.ip_network(prefix)), "raw": p,
                          "peer": p.get("neighbor-ip")}
    for a in p.get("attrs", []):
        t = a.get("type")
        if t == 1:
            kw["origin"] = ("igp", "egp", "incomplete")[a.get("value", 0)]
        elif t == 2:
            path, aset = [], []
            for s in a.get("as_paths", []):
                (aset if s.get("segment_type") == 1 else path).extend(s.get("asns", []))
            kw["as_path"], kw["as_set"] = tuple(path), tuple(aset)
        elif t == 3:
            kw["next_hop"] = (a.get("nexthop"),)
        elif t == 4:
            kw["med"] = a.get("metric")
        elif t == 5:
            kw["local_pref"] = a.get("value")
        elif t == 8:
            kw["communities"] = tuple(norm_community(int(c)) for c in a.get("communities", []))
        elif t == 14:
            nhs = a.get("nexthop")
            kw["next_hop"] = tuple(nhs) if isinstance(nhs, list) else (nhs,)
            if a.get("linklocal_nexthop"):
                kw["next_hop"] += (a["linklocal_nexthop"],)
        elif t == 16:
            ext = []
            for v in a.get("value", []):
                if isinstance(v, dict) and v.get("subtype") == 2:
                    ext.append(f"rt:{v.get('value')}")
                elif isinstance(v, dict) and v.get("subtype") == 3:
                    ext.append(f"soo:{v.get('value')}")
                else:
                    ext.append(json.dumps(v, sort_keys=True))
            kw["ext_communities"] = tuple(ext)
        elif t == 32:
            kw["large_communities"] = tuple(
                f"{v.get('ASN', v.get('global_admin'))}:"
                f"{v.get('LocalData1', v.get('local_data1'))}:"
                f"{v.get('LocalData2', v.get('local_data2'))}"
                for v in a.get("value", []))
    return Route(**kw)


# ---- ExaBGP

_EXA_HELPER = textwrap.dedent('''\
    """ExaBGP API process: FIFO lines -> exabgp, exabgp JSON -> a file."""
    import os, sys, threading
    fifo, log = sys.argv[1], sys.argv[2]
    def commands():
        # Re-open after each writer closes; bounded by the process's life.
        while True:
            with open(fifo) as f:
                for line in f:
                    sys.stdout.write(line if line.endswith("\\n") else line + "\\n")
                    sys.stdout.flush()
    threading.Thread(target=commands, daemon=True).start()
    with open(log, "a") as out:
        for line in sys.stdin:
            out.write(line)
            out.flush()
    ''')


class ExaBGP(Daemon):
    """ExaBGP 4 in the foreground, static routes in its config, runtime
    announce/withdraw through an API process fed from a FIFO, received
    updates and state changes read from that process's JSON log."""

    binary = "exabgp"
    name = "exabgp"

    def __init__(self, *args: Any, **kw: Any) -> None:
        super().__init__(*args, **kw)
        self.fifo = os.path.join(self.dir, "cmd.fifo")
        self.recv_log = os.path.join(self.dir, "received.jsonl")

    def _command(self) -> list[str]:
        return ["exabgp", os.path.join(self.dir, "exabgp.conf")]

    def start(self) -> Daemon:
        require_binary(self.binary)
        if not os.path.exists(self.fifo):
            os.mkfifo(self.fifo)
        with open(os.path.join(self.dir, "api.py"), "w") as f:
            f.write(_EXA_HELPER)
        env = {
            "exabgp.daemon.daemonize": "false",
            "exabgp.daemon.user": "root",
            "exabgp.daemon.drop": "false",
            "exabgp.log.destination": "stdout",
            "exabgp.log.all": "false",
            "exabgp.api.cli": "false",
            "exabgp.tcp.bind": "",
            "exabgp.api.ack": "false",
        }
        self._env = env
        self._write_config()
        self.proc = self.ns.popen(self._command(), log_name="exabgp.log", env=env)
        time.sleep(0.2)
        if not self.proc.alive():
            raise RuntimeError(f"exabgp exited: {self.log()[-3000:]}")
        return self

    def _ready(self) -> bool:
        return True

    def _route_line(self, prefix: str, attrs: dict[str, Any], n: Neighbor | None = None) -> str:
        parts = [f"route {prefix}", f"next-hop {attrs.get('next_hop', 'self')}"]
        if attrs.get("origin"):
            parts.append(f"origin {attrs['origin'].lower()}")
        # ExaBGP sends the AS_PATH literally; other daemons prepend their
        # own AS on eBGP, so do the same here for a uniform ``as_path``.
        path = [int(a) for a in attrs.get("as_path", ())]
        if n is not None and n.asn != self.asn:
            path.insert(0, self.asn)
        if path:
            parts.append("as-path [ " + " ".join(str(a) for a in path) + " ]")
        if attrs.get("med") is not None:
            parts.append(f"med {int(attrs['med'])}")
        if attrs.get("local_pref") is not None:
            parts.append(f"local-preference {int(attrs['local_pref'])}")
        if attrs.get("communities"):
            parts.append("community [ " + " ".join(norm_community(c)
                                                  for c in attrs["communities"]) + " ]")
        if attrs.get("large_communities"):
            parts.append("large-community [ " + " ".join(attrs["large_communities"]) + " ]")
        if attrs.get("ext_communities"):
            parts.append("extended-community [ " + " ".join(
                "target:" + c.split(":", 1)[1] if c.startswith("rt:") else c
                for c in attrs["ext_communities"]) + " ]")
        return " ".join(parts)

    def _write_config(self) -> None:
        c = ["process api {", f"    run /usr/bin/python3 {self.dir}/api.py {self.fifo} "
             f"{self.recv_log};", "    encoder json;", "}", ""]
        for n in self.neighbors:
            local = n.local_address or self.router_id
            c += [f"neighbor {n.address} {{", f"    router-id {self.router_id};",
                  f"    local-address {local};", f"    local-as {self.asn};",
                  f"    peer-as {n.asn};", f"    hold-time {n.hold_time};"]
            if n.md5:
                c.append(f"    md5-password {n.md5};")
            if n.passive:
                c.append("    passive;")
            c.append("    family {")
            c += [f"        {fam} unicast;" for fam in n.families]
            c.append("    }")
            c.append("    capability {")
            c.append("        route-refresh;")
            if n.graceful_restart:
                c.append("        graceful-restart 120;")
            if n.add_path:
                c.append("        add-path send/receive;")
            c.append("    }")
            c += ["    " + x for x in n.extra]
            c += ["    api {", "        processes [ api ];", "        neighbor-changes;",
                  "        receive { parsed; update; }", "    }"]
            routes = [self._route_line(p, a, n) + ";" for p, a in self.announced.items()
                      if _family_of(p) in n.families]
            if routes:
                c.append("    static {")
                c += ["        " + r for r in routes]
                c.append("    }")
            c.append("}")
        if self.extra_config:
            c.append(self.extra_config)
        with open(os.path.join(self.dir, "exabgp.conf"), "w") as f:
            f.write("\n".join(c) + "\n")

    def api(self, line: str) -> None:
        """Send one API command (``announce route ...``) to exabgp."""
        fd = os.open(self.fifo, os.O_WRONLY | os.O_NONBLOCK)
        try:
            os.write(fd, (line.rstrip("\n") + "\n").encode())
        finally:
            os.close(fd)

    def announce(self, prefix: str, **attrs: Any) -> None:
        prefix = check_prefix(prefix)
        self.announced[prefix] = attrs
        for n in self.neighbors:
            if _family_of(prefix) in n.families:
                self.api(f"neighbor {n.address} announce " + self._route_line(prefix, attrs, n))

    def withdraw(self, prefix: str) -> None:
        prefix = str(ipaddress.ip_network(prefix))
        attrs = self.announced.pop(prefix, {})
        for n in self.neighbors:
            if _family_of(prefix) in n.families:
                self.api(f"neighbor {n.address} withdraw " + self._route_line(prefix, attrs, n))

    def _events(self) -> list[dict[str, Any]]:
        events = []
        try:
            with open(self.recv_log) as f:
                for line in f:
                    with contextlib.suppress(ValueError):
                        events.append(json.loads(line))
        except OSError:
            pass
        return events

    def session_state(self, peer: str) -> str:
        state = "idle"
        for e in self._events():
            if e.get("type") != "state":
                continue
            n = e.get("neighbor", {})
            addr = n.get("address", {}).get("peer")
            if addr and ipaddress.ip_address(addr) == ipaddress.ip_address(peer):
                s = n.get("state")
                state = {"up": "established", "connected": "opensent"}.get(s, "idle")
        return state

    def routes(self, family: str = "ipv4") -> dict[str, Route]:
        afi = "ipv4 unicast" if family == "ipv4" else "ipv6 unicast"
        table: dict[str, Route] = {}
        for e in self._events():
            if e.get("type") == "state" and e.get("neighbor", {}).get("state") == "down":
                peer = e["neighbor"].get("address", {}).get("peer")
                table = {k: v for k, v in table.items() if v.peer != peer}
            if e.get("type") != "update":
                continue
            n = e.get("neighbor", {})
            peer = n.get("address", {}).get("peer")
            upd = n.get("message", {}).get("update", {})
            attrs = upd.get("attribute", {})
            for nh, nlris in upd.get("announce", {}).get(afi, {}).items():
                for nlri in nlris:
                    p = nlri["nlri"] if isinstance(nlri, dict) else nlri
                    table[str(ipaddress.ip_network(p))] = _exa_route(p, nh, attrs, peer)
            for nlri in upd.get("withdraw", {}).get(afi, []):
                p = nlri["nlri"] if isinstance(nlri, dict) else nlri
                table.pop(str(ipaddress.ip_network(p)), None)
        return table


def _exa_route(prefix: str, nh: str, a: dict[str, Any], peer: str | None) -> Route:
    path, aset = [], []
    for x in a.get("as-path", []):
        if isinstance(x, list):
            aset.extend(x)
        else:
            path.append(x)
    return Route(
        prefix=str(ipaddress.ip_network(prefix)),
        next_hop=tuple(x for x in nh.split(",") if x) if isinstance(nh, str) else (nh,),
        as_path=tuple(path), as_set=tuple(aset + list(a.get("atomic-aggregate", []) and [])),
        origin=a.get("origin"), med=a.get("med"), local_pref=a.get("local-preference"),
        communities=tuple(f"{x}:{y}" for x, y in a.get("community", [])),
        large_communities=tuple(":".join(str(v) for v in c) for c in a.get("large-community", [])),
        ext_communities=tuple(str(c.get("string", c)) if isinstance(c, dict) else str(c)
                              for c in a.get("extended-community", [])),
        peer=peer, raw=a)


DRIVERS: dict[str, type[Daemon]] = {"bird": Bird, "frr": Frr, "gobgp": GoBGP, "exabgp": ExaBGP}


def tcp_listening(ns: Netns, port: int = 179) -> bool:
    """True when something in ``ns`` listens on TCP ``port`` (uses ``ss``)."""
    out = ns.run(["ss", "-Htln", f"sport = :{port}"], check=False).stdout
    return bool(out.strip())


__all__ = [
    "ALLOWED_NETWORKS", "Bird", "DRIVERS", "Daemon", "ExaBGP", "Frr", "GoBGP", "Lab",
    "LabNode", "Neighbor", "Netns", "NS_PREFIX", "Process", "Route", "check_address",
    "check_prefix", "free_port", "in_ci", "link_local", "norm_community", "poll",
    "require_binary", "require_root", "set_addresses", "tcp_listening", "veth",
]
