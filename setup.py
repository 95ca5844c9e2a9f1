"""Build hook: generate the gRPC/protobuf Python code from proto/ at build time.

The generated modules are not committed (bgpd/api/_gen is ignored by git);
``pip install .`` and ``pip install -e .`` both run ``build_py``, which
runs grpc_tools.protoc first.  Everything else is declarative (setup.cfg).
"""

from __future__ import annotations

import glob
import os
import re

from setuptools import setup
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


setup(cmdclass={"build_py": BuildPyWithProtos})
