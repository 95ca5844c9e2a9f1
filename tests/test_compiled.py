"""The compiled hot path (issue 13): what runs, the fallback, and the suite on both builds.

The modules of ``bgpd.hotpath.HOT_MODULES`` (RFC 4271 4.1-4.3 framing and
UPDATE decode, RFC 4760 NLRI, RFC 7606 attribute handling) are compiled by
mypyc at install time; ``BGPD_PURE_PYTHON=1``, a missing build or a source
edited after the build select the ``.py`` files instead.  Under ``CI=true``
the build must have compiled, and the whole unit suite runs a second time on
the pure source.
"""

from __future__ import annotations

import importlib
import importlib.machinery
import importlib.util
import json
import os
import subprocess
import sys
import tempfile

from twisted.internet.testing import MemoryReactorClock
from twisted.logger import globalLogPublisher
from twisted.trial.unittest import SynchronousTestCase

from bgpd import hotpath
from tests.ci import in_ci, missing

ROOT = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
_PROBE = """
import json
from bgpd import hotpath
import bgpd.wire.message, bgpd.wire.update
mods = [__import__(m, fromlist=['x']) for m in hotpath.HOT_MODULES]
print(json.dumps({'variant': hotpath.VARIANT, 'line': hotpath.describe(),
                  'files': [m.__file__ for m in mods], 'compiled': hotpath.loaded_compiled()}))
"""


def probe(env: dict[str, str]) -> dict:
    """Which build a fresh interpreter with ``env`` loads."""
    r = subprocess.run([sys.executable, "-c", _PROBE], cwd=ROOT, env=env, capture_output=True,
                       text=True, timeout=120, check=True)
    return json.loads(r.stdout)


def _forced_pure() -> bool:
    return os.environ.get(hotpath.ENV_PURE, "") not in ("", "0")


class CompiledBuildTests(SynchronousTestCase):
    """Which build runs, and why."""

    def test_this_run_loads_the_expected_build(self):
        """The hot modules are compiled extensions, or all .py when BGPD_PURE_PYTHON=1."""
        for name in hotpath.HOT_MODULES:
            importlib.import_module(name)
        from bgpd.wire.update import decode_update

        if _forced_pure():
            self.assertEqual(hotpath.VARIANT, "pure")
            self.assertEqual(hotpath.loaded_compiled(), [])
            self.assertEqual(type(decode_update).__name__, "function")
            return
        if hotpath.VARIANT != "compiled":
            missing(f"the compiled hot path: {hotpath.REASON}")
        self.assertEqual(hotpath.loaded_compiled(), list(hotpath.HOT_MODULES))
        for name in hotpath.HOT_MODULES:
            loader = sys.modules[name].__spec__.loader
            self.assertIsInstance(loader, importlib.machinery.ExtensionFileLoader, name)
        # A mypyc function is a builtin, not a Python function object.
        self.assertEqual(type(decode_update).__name__, "builtin_function_or_method")

    def test_pure_python_forced(self):
        """BGPD_PURE_PYTHON=1 loads every hot module from its .py file, and says so."""
        got = probe(dict(os.environ, BGPD_PURE_PYTHON="1"))
        self.assertEqual(got["variant"], "pure")
        self.assertEqual(got["compiled"], [])
        self.assertTrue(all(f.endswith(".py") for f in got["files"]), got["files"])
        self.assertEqual(got["line"], "bgpd: pure Python hot path (BGPD_PURE_PYTHON=1)")

    def test_zero_does_not_force(self):
        """BGPD_PURE_PYTHON=0 is the same as unset."""
        env = dict(os.environ)
        env.pop("BGPD_PURE_PYTHON", None)
        unset = probe(env)
        zero = probe(dict(env, BGPD_PURE_PYTHON="0"))
        self.assertEqual(unset["variant"], zero["variant"])
        self.assertEqual(unset["compiled"], zero["compiled"])
        if unset["variant"] == "compiled":
            self.assertEqual(zero["line"], "bgpd: compiled hot path (mypyc) loaded")


class CheckBuildTests(SynchronousTestCase):
    """check_build accepts only a build made from the source beside it."""

    def setUp(self):
        self.root = tempfile.mkdtemp(prefix="bgpd-hot-")
        self.pkg = os.path.join(self.root, "hotpkg")
        os.mkdir(self.pkg)
        self.source = os.path.join(self.pkg, "mod.py")
        with open(self.source, "w") as f:
            f.write("VALUE = 'source'\n")
        open(os.path.join(self.pkg, "__init__.py"), "w").close()
        self.ext = os.path.join(self.pkg, "mod" + importlib.machinery.EXTENSION_SUFFIXES[0])
        with open(self.ext, "wb") as f:
            f.write(b"not really an extension")
        self.write_manifest(hotpath._sha256(self.source))

    def tearDown(self):
        for dirpath, _dirs, names in os.walk(self.root, topdown=False):
            for name in names:
                os.unlink(os.path.join(dirpath, name))
            os.rmdir(dirpath)

    def write_manifest(self, digest: str, cache_tag: str = sys.implementation.cache_tag) -> None:
        with open(os.path.join(self.pkg, hotpath.MANIFEST), "w") as f:
            json.dump({"compiler": "mypyc", "cache_tag": cache_tag,
                       "sources": {"hotpkg.mod": digest}}, f)

    def check(self) -> str | None:
        return hotpath.check_build(["hotpkg.mod"], self.root)

    def test_matching_build(self):
        """A build whose recorded hash is the source's is used."""
        self.assertIsNone(self.check())

    def test_source_edited_after_build(self):
        """A .py changed after the build is not shadowed by the stale extension."""
        with open(self.source, "a") as f:
            f.write("# edited\n")
        self.assertIn("changed since it was compiled", self.check())

    def test_no_manifest(self):
        """No manifest: there was no (successful) build."""
        os.unlink(os.path.join(self.pkg, hotpath.MANIFEST))
        self.assertIn("no compiled build", self.check())

    def test_missing_extension(self):
        """A manifest without the extension module beside the source."""
        os.unlink(self.ext)
        self.assertIn("has no compiled module", self.check())

    def test_other_interpreter(self):
        """A build for another interpreter version is not used."""
        self.write_manifest(hotpath._sha256(self.source), cache_tag="cpython-99")
        self.assertIn("compiled for cpython-99", self.check())

    def test_unreadable_manifest(self):
        """A corrupt manifest is a reason, not a crash."""
        with open(os.path.join(self.pkg, hotpath.MANIFEST), "w") as f:
            f.write("{not json")
        self.assertIn("unreadable", self.check())

    def test_source_finder_skips_the_extension(self):
        """The fallback's finder loads the .py even with an extension beside it."""
        finder = hotpath.SourceFinder(["hotpkg.mod"], self.root)
        spec = finder.find_spec("hotpkg.mod")
        self.assertEqual(spec.origin, self.source)
        self.assertIsInstance(spec.loader, importlib.machinery.SourceFileLoader)
        self.assertIsNone(finder.find_spec("hotpkg.other"))
        module = importlib.util.module_from_spec(spec)
        spec.loader.exec_module(module)
        self.assertEqual(module.VALUE, "source")


class StartLogTests(SynchronousTestCase):
    """The daemon says once at start which build runs."""

    def test_logged_once_at_start(self):
        """BgpdService.startService logs the hot path line exactly once."""
        from bgpd.config import parse_config
        from bgpd.service import BgpdService

        events: list[dict] = []
        globalLogPublisher.addObserver(events.append)
        self.addCleanup(globalLogPublisher.removeObserver, events.append)
        config = parse_config('[bgp]\nlocal_as = 65000\nrouter_id = "192.0.2.1"\n'
                              "listen_addresses = []\n")
        svc = BgpdService(config, None, MemoryReactorClock())
        svc.startService()
        self.addCleanup(svc.stopService)
        lines = [e for e in events if "hot_path" in e]
        self.assertEqual(len(lines), 1, lines)
        self.assertEqual(lines[0]["hot_path"], hotpath.describe())
        self.assertEqual(lines[0]["variant"], hotpath.VARIANT)


class PureSuiteTests(SynchronousTestCase):
    """The whole unit suite passes on the pure-Python source too."""

    def test_unit_suite_on_pure_python(self):
        """With the compiled build loaded here, the unit suite runs again with BGPD_PURE_PYTHON=1."""
        if hotpath.VARIANT != "compiled":
            # This run is itself the pure one: nothing compiled may be loaded.
            for name in hotpath.HOT_MODULES:
                importlib.import_module(name)
            self.assertEqual(hotpath.loaded_compiled(), [])
            return
        env = dict(os.environ, BGPD_PURE_PYTHON="1")
        r = subprocess.run(
            [sys.executable, "-m", "pytest", "-q", "-x", "-p", "no:cacheprovider", "tests",
             "--ignore=tests/interop",
             "--deselect", "tests/test_compiled.py::PureSuiteTests::test_unit_suite_on_pure_python"],
            cwd=ROOT, env=env, capture_output=True, text=True, timeout=1800, check=False)
        tail = "\n".join(r.stdout.splitlines()[-15:])
        self.assertEqual(r.returncode, 0, f"pure-Python unit suite failed:\n{tail}\n{r.stderr[-2000:]}")
        self.assertRegex(tail, r"\d+ passed")
        if in_ci():
            self.assertNotRegex(tail, r"skipped")
