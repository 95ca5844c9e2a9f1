"""Build hooks: the gRPC/protobuf Python code, and the compiled hot path.

The generated modules are not committed (bgpd/api/_gen is ignored by git);
``pip install .`` and ``pip install -e .`` both run ``build_py``, which
runs grpc_tools.protoc first.

The hot modules (``bgpd.hotpath.HOT_MODULES``) are compiled with mypyc
from the same ``.py`` files when mypyc (a build requirement), a C compiler
and the Python headers are there; if anything fails the build goes on
without them and bgpd runs the pure-Python source.  Everything else is
declarative (setup.cfg).
"""

from __future__ import annotations

import ast
import glob
import hashlib
import json
import os
import re
import sys

from setuptools import setup
from setuptools.command.build_ext import build_ext
from setuptools.command.build_py import build_py

HERE = os.path.dirname(os.path.abspath(__file__))
GEN_PACKAGE = "bgpd.api._gen"
GEN_DIR = os.path.join(HERE, "bgpd", "api", "_gen")
# protoc writes "from bgpd.v1 import x_pb2" (the proto package path); the
# modules live under bgpd.api._gen, so the imports are rewritten to match.
_IMPORT = re.compile(r"^from bgpd\.v1 import ", re.MULTILINE)


def generate_protos() -> None:
    """Run protoc (grpcio-tools) over proto/bgpd/v1/*.proto into bgpd/api/_gen."""
    from importlib.resources import files

    from grpc_tools import protoc

    sources = sorted(glob.glob(os.path.join(HERE, "proto", "bgpd", "v1", "*.proto")))
    if not sources:
        raise SystemExit("no .proto files under proto/bgpd/v1")
    os.makedirs(GEN_DIR, exist_ok=True)
    well_known = str(files("grpc_tools") / "_proto")
    args = ["grpc_tools.protoc", f"-I{os.path.join(HERE, 'proto')}", f"-I{well_known}",
            f"--python_out={GEN_DIR}", f"--grpc_python_out={GEN_DIR}", *sources]
    if protoc.main(args) != 0:
        raise SystemExit("protoc failed on " + " ".join(sources))
    for dirpath, _dirs, names in os.walk(GEN_DIR):
        open(os.path.join(dirpath, "__init__.py"), "a").close()
        for name in names:
            if name.endswith(".py"):
                path = os.path.join(dirpath, name)
                with open(path) as f:
                    text = f.read()
                fixed = _IMPORT.sub(f"from {GEN_PACKAGE}.bgpd.v1 import ", text)
                if fixed != text:
                    with open(path, "w") as f:
                        f.write(fixed)


class BuildPyWithProtos(build_py):
    """build_py that generates bgpd/api/_gen first and packages it."""

    def run(self) -> None:
        generate_protos()
        wanted = [GEN_PACKAGE, f"{GEN_PACKAGE}.bgpd", f"{GEN_PACKAGE}.bgpd.v1"]
        for pkg in wanted:
            if pkg not in self.packages:
                self.packages.append(pkg)
        super().run()


# -- the compiled hot path (issue 13) ------------------------------------------

HOTPATH = os.path.join(HERE, "bgpd", "hotpath.py")


def _hotpath_constant(name: str) -> object:
    """A literal from bgpd/hotpath.py, read without importing bgpd."""
    with open(HOTPATH) as f:
        tree = ast.parse(f.read())
    for node in tree.body:
        target = node.targets[0] if isinstance(node, ast.Assign) else getattr(node, "target", None)
        if isinstance(target, ast.Name) and target.id == name:
            return ast.literal_eval(node.value)
    raise SystemExit(f"{name} not found in {HOTPATH}")


HOT_MODULES = list(_hotpath_constant("HOT_MODULES"))
HOT_MANIFEST = str(_hotpath_constant("MANIFEST"))


def _say_pure(reason: str) -> None:
    print(f"bgpd: compiled hot path not built ({reason}); bgpd will run the pure-Python source",
          file=sys.stderr)


# The commands that build: only they pay for mypyc's type check and C
# generation (pip runs setup.py several times, for metadata first).
_BUILDING = {"build", "build_ext", "bdist_wheel", "editable_wheel", "install", "develop", "bdist"}


def hot_extensions() -> list:
    """mypyc's extensions for the hot modules, or [] (with one message) if it cannot."""
    if not _BUILDING.intersection(sys.argv[1:]):
        return []
    if os.environ.get("BGPD_BUILD_PURE", "") not in ("", "0"):
        _say_pure("BGPD_BUILD_PURE is set")
        return []
    try:
        from mypyc.build import mypycify
    except ImportError as e:
        _say_pure(f"mypyc is not installed: {e}")
        return []
    paths = [os.path.relpath(os.path.join(HERE, *m.split(".")) + ".py") for m in HOT_MODULES]
    # Type errors in the modules the hot ones import (not compiled, run as
    # they are) must not cost the compiled build: only the compiled modules
    # are checked.
    paths += ["--follow-imports=silent", "--ignore-missing-imports"]
    try:
        try:
            return mypycify(paths, opt_level="3", group_name="bgpd._hot")
        except TypeError:  # an older mypyc (Debian 12's 1.0) has no group_name
            return mypycify(paths, opt_level="3")
    except (Exception, SystemExit) as e:  # mypy's type errors end in SystemExit
        _say_pure(f"mypyc failed: {e!r}")
        return []


class BuildExtOrPure(build_ext):
    """build_ext that falls back to the pure-Python source when compiling fails.

    On success it writes the manifest bgpd.hotpath checks at import: the
    SHA-256 of each compiled source, so a ``.py`` edited after the build
    is never shadowed by a stale extension.
    """

    def run(self) -> None:
        try:
            super().run()
            if not self.inplace and os.path.samefile(os.getcwd(), HERE):
                # Built from the checkout itself (pip builds in place): put the
                # extensions beside their sources too, as build_py does for the
                # generated gRPC code, so that a test run from the checkout
                # imports what was built; the manifest keeps them from
                # shadowing a source edited afterwards.
                self.copy_extensions_to_source()
        except Exception as e:  # CompileError, LinkError, a missing Python.h...
            for path in self.get_outputs():
                if os.path.exists(path):
                    os.remove(path)
            self._write_manifest(None)
            _say_pure(f"the C build failed: {e}")
            return
        self._write_manifest({m: _sha256(os.path.join(HERE, *m.split(".")) + ".py")
                              for m in HOT_MODULES})

    def _write_manifest(self, sources: dict[str, str] | None) -> None:
        dirs = [os.path.join(self.build_lib, "bgpd")]
        if self.inplace or os.path.samefile(os.getcwd(), HERE):
            dirs.append(os.path.join(HERE, "bgpd"))
        for d in dirs:
            path = os.path.join(d, HOT_MANIFEST)
            if sources is None:
                if os.path.exists(path):
                    os.remove(path)
                continue
            os.makedirs(d, exist_ok=True)
            with open(path, "w") as f:
                json.dump({"compiler": "mypyc", "cache_tag": sys.implementation.cache_tag,
                           "sources": sources}, f, indent=1, sort_keys=True)

    def get_outputs(self) -> list[str]:
        outputs = super().get_outputs()
        if self.extensions:
            outputs.append(os.path.join(self.build_lib, "bgpd", HOT_MANIFEST))
        return outputs


def _sha256(path: str) -> str:
    with open(path, "rb") as f:
        return hashlib.sha256(f.read()).hexdigest()


setup(
    cmdclass={"build_py": BuildPyWithProtos, "build_ext": BuildExtOrPure},
    ext_modules=hot_extensions(),
)
