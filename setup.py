"""Build hook: generate the gRPC/protobuf Python code from proto/ at build time.

The generated modules are not committed (bgpd/api/_gen is ignored by git);
``pip install .`` and ``pip install -e .`` both run ``build_py``, which
generates them first.  Everything else is declarative (setup.cfg).

One hook, two generators: grpcio-tools (``grpc_tools.protoc``, what pip
installs as a build requirement), or the ``protoc`` and ``grpc_python_plugin``
on PATH (Debian's protobuf-compiler and protobuf-compiler-grpc), so that a
distribution's build makes code that matches its own protobuf runtime.  The
second is used when grpc_tools is not importable, or always with
``BGPD_PROTOC=protoc`` (debian/rules sets it: an old grpc_tools on the build
machine must not be picked).
"""

from __future__ import annotations

import glob
import os
import re
import shutil
import subprocess

from setuptools import setup
from setuptools.command.build_py import build_py

HERE = os.path.dirname(os.path.abspath(__file__))
GEN_PACKAGE = "bgpd.api._gen"
GEN_DIR = os.path.join(HERE, "bgpd", "api", "_gen")
# protoc writes "from bgpd.v1 import x_pb2" (the proto package path); the
# modules live under bgpd.api._gen, so the imports are rewritten to match.
_IMPORT = re.compile(r"^from bgpd\.v1 import ", re.MULTILINE)


def _grpc_tools_args(sources: list[str]) -> list[str] | None:
    """protoc's arguments for grpc_tools, or None when it is not importable."""
    try:
        from importlib.resources import files

        import grpc_tools  # noqa: F401
    except ImportError:
        return None
    well_known = str(files("grpc_tools") / "_proto")
    return [f"-I{os.path.join(HERE, 'proto')}", f"-I{well_known}",
            f"--python_out={GEN_DIR}", f"--grpc_python_out={GEN_DIR}", *sources]


def _run_grpc_tools(args: list[str]) -> int:
    from grpc_tools import protoc

    return protoc.main(["grpc_tools.protoc", *args])


def _run_system_protoc(sources: list[str]) -> None:
    """protoc with grpc_python_plugin, both from PATH (Debian: protobuf-compiler(-grpc))."""
    protoc = shutil.which("protoc")
    plugin = shutil.which("grpc_python_plugin")
    if protoc is None or plugin is None:
        raise SystemExit("generating bgpd/api/_gen needs grpcio-tools, or protoc and "
                         "grpc_python_plugin on PATH (Debian: protobuf-compiler, "
                         "protobuf-compiler-grpc)")
    args = [protoc, f"--plugin=protoc-gen-grpc_python={plugin}", f"-I{os.path.join(HERE, 'proto')}",
            f"--python_out={GEN_DIR}", f"--grpc_python_out={GEN_DIR}", *sources]
    if subprocess.run(args, check=False).returncode != 0:
        raise SystemExit("protoc failed on " + " ".join(sources))


def generate_protos() -> str:
    """Generate proto/bgpd/v1/*.proto into bgpd/api/_gen; returns the generator used."""
    sources = sorted(glob.glob(os.path.join(HERE, "proto", "bgpd", "v1", "*.proto")))
    if not sources:
        raise SystemExit("no .proto files under proto/bgpd/v1")
    os.makedirs(GEN_DIR, exist_ok=True)
    args = None if os.environ.get("BGPD_PROTOC") == "protoc" else _grpc_tools_args(sources)
    if args is not None:
        if _run_grpc_tools(args) != 0:
            raise SystemExit("protoc failed on " + " ".join(sources))
        used = "grpc_tools"
    else:
        _run_system_protoc(sources)
        used = "protoc"
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
    return used


class BuildPyWithProtos(build_py):
    """build_py that generates bgpd/api/_gen first and packages it."""

    def run(self) -> None:
        generate_protos()
        wanted = [GEN_PACKAGE, f"{GEN_PACKAGE}.bgpd", f"{GEN_PACKAGE}.bgpd.v1"]
        for pkg in wanted:
            if pkg not in self.packages:
                self.packages.append(pkg)
        super().run()


# Guarded so that tests can import the generators (setuptools runs this file as __main__).
if __name__ == "__main__":
    setup(cmdclass={"build_py": BuildPyWithProtos})
