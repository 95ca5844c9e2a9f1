"""The Debian package (debian/, issue 14) and the pieces of bgpd it relies on.

- setup.py's two generators of bgpd/api/_gen: grpc_tools, and Debian's
  protoc + grpc_python_plugin, whose code must import with Debian 12's own
  python3-protobuf 3.21 runtime (the one the package depends on).
- sd_notify(3) READY=1 for the unit's ``Type=notify``.
- ``[api] socket_mode``: the group ``bgpd`` may connect to the API socket.
- bgpctl's default socket: the package's ``/run/bgpd/bgpd.sock`` when it exists.
- ``debian/test-package.sh``: the .deb built, installed, tested with its
  autopkgtests, upgraded, removed and purged (root; it installs a system
  package, so it runs under CI=true or with BGPD_TEST_PACKAGE=1); and the
  same again by ``debian/test-systemd.sh`` in a Debian 12 container with
  systemd as PID 1, where the unit itself runs (systemctl, its sandbox,
  reload, Restart=, the restart on upgrade and the stop on remove).
"""

from __future__ import annotations

import argparse
import importlib.util
import os
import re
import shutil
import socket
import subprocess
import sys
import tempfile
import unittest
from unittest import mock

from twisted.internet.testing import MemoryReactorClock
from twisted.trial.unittest import SynchronousTestCase

from bgpd.cli import PACKAGE_SOCKET, default_target
from bgpd.config import DEFAULT_API_LISTEN, ApiConfig, ConfigError, api_config_from_table, parse_config
from bgpd.service import BgpdService, sd_notify
from tests.ci import in_ci, missing

ROOT = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
#: Debian's python3, with Debian's python3-protobuf and python3-grpcio
DEBIAN_PYTHON = "/usr/bin/python3"
_MODULES = ("events", "global", "peers", "policy", "routes")
_IMPORT_ALL = ("from bgpd.api._gen.bgpd.v1 import "
               + ", ".join(f"{m}_pb2, {m}_pb2_grpc" for m in _MODULES)
               + "; import google.protobuf as p; "
               + "r = routes_pb2.Route(prefix='198.51.100.0/24'); "
               + "assert routes_pb2.Route.FromString(r.SerializeToString()).prefix == r.prefix; "
               + "assert hasattr(routes_pb2_grpc, 'RoutesStub'); print(p.__version__)")


def _generate(generator: str) -> str:
    """Run setup.py's generate_protos in a copy of setup.py and proto/; returns the copy."""
    tree = tempfile.mkdtemp(prefix="bgpd-gen-")
    shutil.copy(os.path.join(ROOT, "setup.py"), tree)
    shutil.copytree(os.path.join(ROOT, "proto"), os.path.join(tree, "proto"))
    for pkg in ("bgpd", os.path.join("bgpd", "api")):
        os.makedirs(os.path.join(tree, pkg), exist_ok=True)
        open(os.path.join(tree, pkg, "__init__.py"), "w").close()
    # setup.py may read build settings from bgpd/ at import (the compiled hot path's list).
    hotpath = os.path.join(ROOT, "bgpd", "hotpath.py")
    if os.path.exists(hotpath):
        shutil.copy(hotpath, os.path.join(tree, "bgpd"))
    spec = importlib.util.spec_from_file_location("bgpd_setup_under_test", os.path.join(tree, "setup.py"))
    assert spec is not None and spec.loader is not None
    module = importlib.util.module_from_spec(spec)
    env = {"BGPD_PROTOC": "protoc"} if generator == "protoc" else {}
    with mock.patch.dict(os.environ, env):
        if generator != "protoc":
            os.environ.pop("BGPD_PROTOC", None)
        spec.loader.exec_module(module)
        used = module.generate_protos()
    assert used == generator, (used, generator)
    return tree


def _import_in(python: str, tree: str) -> subprocess.CompletedProcess:
    """Import every generated module with ``python``, from ``tree`` only (no installed bgpd)."""
    return subprocess.run([python, "-c", _IMPORT_ALL], cwd=tree, capture_output=True, text=True,
                          timeout=120, env={"PATH": "/usr/bin:/bin", "PYTHONPATH": tree})


class GeneratorTests(SynchronousTestCase):
    """setup.py's one hook, two generators: both give code that imports."""

    def setUp(self):
        if shutil.which("protoc") is None or shutil.which("grpc_python_plugin") is None:
            missing("protoc and grpc_python_plugin (protobuf-compiler, protobuf-compiler-grpc)")

    def _tree(self, generator: str) -> str:
        tree = _generate(generator)
        self.addCleanup(shutil.rmtree, tree)
        return tree

    def test_protoc_code_imports_with_debian_runtime(self):
        """Debian's protoc + grpc_python_plugin give code Debian's python3-protobuf 3.21 imports."""
        if not os.path.exists(DEBIAN_PYTHON) or subprocess.run(
                [DEBIAN_PYTHON, "-c", "import google.protobuf, grpc"], capture_output=True).returncode:
            missing("Debian's python3 with python3-protobuf and python3-grpcio")
        tree = self._tree("protoc")
        result = _import_in(DEBIAN_PYTHON, tree)
        self.assertEqual(result.returncode, 0, result.stderr)
        self.assertTrue(result.stdout.startswith(("3.", "4.")), result.stdout)

    def test_protoc_code_imports_with_this_runtime(self):
        """The protoc-generated code imports with this interpreter's (newer) protobuf too."""
        result = _import_in(sys.executable, self._tree("protoc"))
        self.assertEqual(result.returncode, 0, result.stderr)

    def test_grpc_tools_code_imports(self):
        """grpcio-tools (what pip builds with) gives code this interpreter imports."""
        try:
            import grpc_tools  # noqa: F401
        except ImportError:
            missing("grpcio-tools (the pip build requirement)")
        result = _import_in(sys.executable, self._tree("grpc_tools"))
        self.assertEqual(result.returncode, 0, result.stderr)

    def test_protoc_forced_over_grpc_tools(self):
        """BGPD_PROTOC=protoc (debian/rules) picks protoc even where grpc_tools is importable."""
        tree = self._tree("protoc")
        with open(os.path.join(tree, "bgpd", "api", "_gen", "bgpd", "v1", "routes_pb2.py")) as f:
            text = f.read()
        # grpc_tools' newer generator checks the runtime version; protoc 3.21's does not.
        self.assertNotIn("runtime_version", text)
        self.assertIn("from bgpd.api._gen.bgpd.v1 import", open(
            os.path.join(tree, "bgpd", "api", "_gen", "bgpd", "v1", "policy_pb2.py")).read())


def _receiver(test: SynchronousTestCase) -> tuple[socket.socket, str]:
    d = tempfile.mkdtemp(prefix="bgpd-notify-")
    test.addCleanup(shutil.rmtree, d)
    path = os.path.join(d, "notify")
    s = socket.socket(socket.AF_UNIX, socket.SOCK_DGRAM)
    s.bind(path)
    s.settimeout(5)
    test.addCleanup(s.close)
    return s, path


CONFIG = """
[bgp]
local_as = 64496
router_id = "192.0.2.1"
listen_addresses = []
"""


class SdNotifyTests(SynchronousTestCase):
    """sd_notify(3) over $NOTIFY_SOCKET, for bgpd.service's Type=notify."""

    def test_sends_state(self):
        """The state is one datagram on the socket $NOTIFY_SOCKET names."""
        s, path = _receiver(self)
        self.assertTrue(sd_notify("READY=1", {"NOTIFY_SOCKET": path}))
        self.assertEqual(s.recv(100), b"READY=1")

    def test_abstract_socket(self):
        """An @name is a socket in the abstract namespace."""
        name = f"bgpd-test-{os.getpid()}-{id(self)}"
        s = socket.socket(socket.AF_UNIX, socket.SOCK_DGRAM)
        s.bind("\0" + name)
        s.settimeout(5)
        self.addCleanup(s.close)
        self.assertTrue(sd_notify("READY=1", {"NOTIFY_SOCKET": "@" + name}))
        self.assertEqual(s.recv(100), b"READY=1")

    def test_not_under_systemd(self):
        """Without $NOTIFY_SOCKET nothing is sent and nothing fails."""
        self.assertFalse(sd_notify("READY=1", {}))

    def test_unreachable_socket(self):
        """A socket that is gone is logged, not raised: the daemon runs on."""
        self.assertFalse(sd_notify("READY=1", {"NOTIFY_SOCKET": "/nonexistent/notify"}))
        self.flushLoggedErrors()

    def test_service_ready_after_start(self):
        """BgpdService says READY=1 once its children started, STOPPING=1 when it stops."""
        s, path = _receiver(self)
        svc = BgpdService(parse_config(CONFIG), None, MemoryReactorClock())
        with mock.patch.dict(os.environ, {"NOTIFY_SOCKET": path}):
            svc.startService()
            self.assertTrue(all(child.running for child in svc))
            self.assertEqual(s.recv(100), b"READY=1\nSTATUS=running")
            svc.stopService()
            self.assertEqual(s.recv(100), b"STOPPING=1")


class SocketModeTests(SynchronousTestCase):
    """[api] socket_mode: the Unix socket's permission bits."""

    def test_valid(self):
        """An integer 0..0o777 is taken (TOML 0o660)."""
        config = parse_config(CONFIG + '[api]\nlisten = "unix:/run/bgpd/bgpd.sock"\nsocket_mode = 0o660\n')
        self.assertEqual(config.api.socket_mode, 0o660)
        self.assertIsNone(api_config_from_table({}).socket_mode)

    def test_errors_name_the_key(self):
        """A string, a bool, a value above 0o777 or a TCP listen is an error naming api.socket_mode."""
        for table, reason in (({"socket_mode": "0660"}, "got a string"),
                              ({"socket_mode": True}, "got"),
                              ({"socket_mode": 0o1777}, "from 0 to 0o777"),
                              ({"socket_mode": 0o660, "listen": "127.0.0.1:50051"}, "Unix socket only")):
            with self.assertRaises(ConfigError) as cm:
                api_config_from_table(table)
            self.assertIn("api.socket_mode", str(cm.exception))
            self.assertIn(reason, str(cm.exception))

    def test_server_sets_the_mode(self):
        """The API server gives its socket the configured bits, whatever the umask made."""
        from twisted.internet import reactor

        from bgpd.api.server import ApiServer

        d = tempfile.mkdtemp(prefix="bgpd-mode-")
        self.addCleanup(shutil.rmtree, d)
        path = os.path.join(d, "bgpd.sock")
        old = os.umask(0o077)
        try:
            server = ApiServer(reactor, None, ApiConfig(enabled=True, listen=f"unix:{path}",
                                                        socket_mode=0o660))
        finally:
            os.umask(old)
        self.addCleanup(server.stop, 0)
        self.assertEqual(os.stat(path).st_mode & 0o777, 0o660)


class DefaultTargetTests(SynchronousTestCase):
    """bgpctl without --socket or --target."""

    def test_package_socket_first(self):
        """The Debian package's socket when it exists."""
        self.assertEqual(default_target({}, lambda p: p == PACKAGE_SOCKET), f"unix:{PACKAGE_SOCKET}")

    def test_state_dir_socket_otherwise(self):
        """Else the socket in the default state_dir."""
        self.assertEqual(default_target({}, lambda p: False), DEFAULT_API_LISTEN)


class DebianPackageTests(SynchronousTestCase):
    """debian/test-package.sh: build, install, autopkgtests, upgrade, remove, purge."""

    def test_package(self):
        """The .deb builds, passes lintian and its autopkgtests, here and under systemd, and purges clean."""
        if not (in_ci() or os.environ.get("BGPD_TEST_PACKAGE") == "1"):
            raise unittest.SkipTest(
                "installs and purges a system package: runs under CI=true or BGPD_TEST_PACKAGE=1")
        if os.geteuid() != 0:
            missing("root (apt-get install, a system user, network namespaces)")
        for tool in ("dpkg-buildpackage", "lintian", "dh_python3", "protoc", "grpc_python_plugin", "bird",
                     "systemd-nspawn", "debootstrap"):
            if shutil.which(tool, path="/usr/sbin:/usr/bin:/sbin:/bin") is None:
                missing(f"{tool} (.ci/run installs the package build's tools)")
        work = tempfile.mkdtemp(prefix="bgpd-package-")
        self.addCleanup(shutil.rmtree, work, True)
        result = subprocess.run(["/bin/bash", os.path.join(ROOT, "debian", "test-package.sh"), work],
                                capture_output=True, text=True, timeout=1500, stdin=subprocess.DEVNULL)
        output = result.stdout + result.stderr
        last = [line for line in result.stdout.splitlines() if line.strip()][-1:] or [""]
        self.assertEqual(result.returncode, 0, output[-6000:])
        self.assertTrue(last[0].startswith("test-package: PASS"), output[-6000:])
        # The systemd run is part of the PASS, never skipped: its own line and the inner run's.
        self.assertIn("under systemd: PASS", last[0])
        self.assertRegex(result.stdout, r"(?m)^test-systemd: PASS \(systemd \d+ as PID 1: install, "
                                        r"autopkgtests: service bird-smoke hotpath, upgrade, remove, purge\)")


def _unit() -> dict[str, list[str]]:
    """debian/bgpd.service as key -> every value given (systemd's unit syntax, simply read)."""
    values: dict[str, list[str]] = {}
    with open(os.path.join(ROOT, "debian", "bgpd.service")) as f:
        for line in f:
            line = line.strip()
            if line and not line.startswith(("#", "[")):
                key, _, value = line.partition("=")
                values.setdefault(key, []).append(value)
    return values


class PackageFilesTests(SynchronousTestCase):
    """The shipped config and unit agree with each other and with bgpd."""

    def setUp(self):
        with open(os.path.join(ROOT, "debian", "config.toml")) as f:
            self.config = parse_config(f.read())
        self.unit = _unit()

    def test_config_starts_with_no_peers(self):
        """The conffile is valid, has no neighbors and originates nothing."""
        self.assertEqual(self.config.neighbors, ())
        self.assertEqual(tuple(self.config.originate), ())

    def test_api_socket_where_bgpctl_looks(self):
        """The API listens on bgpctl's first default socket, in the unit's RuntimeDirectory, group-usable."""
        self.assertTrue(self.config.api.enabled)
        self.assertEqual(self.config.api.listen, f"unix:{PACKAGE_SOCKET}")
        self.assertEqual(self.config.api.socket_mode, 0o660)
        self.assertEqual(os.path.dirname(PACKAGE_SOCKET), "/run/" + self.unit["RuntimeDirectory"][-1])
        self.assertEqual(self.unit["RuntimeDirectoryMode"], ["0750"])

    def test_state_in_the_state_directory(self):
        """The state store is the unit's StateDirectory, bgpd's default state_dir."""
        from bgpd.config import DEFAULT_STATE_DIR

        self.assertEqual(self.config.bgp.state_dir, DEFAULT_STATE_DIR)
        self.assertEqual("/var/lib/" + self.unit["StateDirectory"][-1], DEFAULT_STATE_DIR)

    def test_unit_runs_the_default_config(self):
        """ExecStart runs twistd3 in the foreground on tap.py's default config file."""
        from bgpd.tap import Options

        words = self.unit["ExecStart"][-1].split()
        self.assertEqual(words[0], "/usr/bin/twistd3")
        self.assertIn("--nodaemon", words)
        self.assertEqual(words[words.index("bgpd") + 1:], ["-c", Options()["config"]])
        self.assertEqual(self.unit["Type"], ["notify"])
        self.assertEqual(self.unit["ExecReload"], ["/bin/kill -HUP $MAINPID"])

    def test_unit_privileges(self):
        """User and group bgpd, exactly the two capabilities, no new privileges."""
        self.assertEqual((self.unit["User"], self.unit["Group"]), (["bgpd"], ["bgpd"]))
        caps = {"CAP_NET_BIND_SERVICE", "CAP_NET_ADMIN"}
        self.assertEqual(set(self.unit["AmbientCapabilities"][-1].split()), caps)
        self.assertEqual(set(self.unit["CapabilityBoundingSet"][-1].split()), caps)
        self.assertEqual(self.unit["NoNewPrivileges"], ["yes"])
        self.assertEqual(set(self.unit["RestrictAddressFamilies"][-1].split()),
                         {"AF_INET", "AF_INET6", "AF_UNIX", "AF_NETLINK"})


def _command_paths(parser: argparse.ArgumentParser, prefix: tuple[str, ...] = ()) -> list[tuple[str, ...]]:
    """Every leaf command of an argparse parser, as its words (``("show", "summary")``)."""
    paths = []
    for action in parser._actions:
        if isinstance(action, argparse._SubParsersAction):
            for name, sub in action.choices.items():
                paths.extend(_command_paths(sub, (*prefix, name)) or [(*prefix, name)])
    return paths


def _man_text(name: str) -> str:
    """A man page's words with the groff markup taken out (macros, fonts, escapes, quotes)."""
    with open(os.path.join(ROOT, "debian", name)) as f:
        text = f.read()
    text = re.sub(r"\\f[BIRP]", "", text).replace("\\-", "-").replace('"', " ")
    text = re.sub(r"^\.[A-Z]+ ?", "", text, flags=re.MULTILINE)
    return " ".join(text.split())


class ManPageTests(SynchronousTestCase):
    """The hand-written man pages say what the code does."""

    def test_every_bgpctl_command_documented(self):
        """Each bgpctl command (and each neighbor verb) is in bgpctl(1)."""
        from bgpd.cli import build_parser

        text = _man_text("bgpctl.1")
        paths = [p for p in _command_paths(build_parser()) if p != ("neighbor",)]
        paths += [("neighbor", "add"), ("neighbor", "del"), ("enable",), ("disable",), ("reset",)]
        self.assertGreater(len(paths), 20)
        undocumented = [" ".join(p) for p in paths if " ".join(p) not in text]
        self.assertEqual(undocumented, [])

    def test_every_option_documented(self):
        """Each option of bgpctl and of twistd bgpd is in its man page."""
        from bgpd.cli import build_parser
        from bgpd.tap import Options

        text = _man_text("bgpctl.1")
        options = {o for a in build_parser()._actions for o in a.option_strings if o.startswith("--")}
        options.discard("--help")
        self.assertEqual(sorted(o for o in options if o not in text), [])
        daemon = _man_text("bgpd.8")
        for long_name, short, _default, _doc in Options.optParameters:
            self.assertIn(f"--{long_name}", daemon)
            self.assertIn(f"-{short}", daemon)
        for long_name, _short, _doc in Options.optFlags:
            self.assertIn(f"--{long_name}", daemon)
