"""Which build of the hot path runs: compiled (mypyc) or the pure-Python source.

The modules named in :data:`HOT_MODULES` (framing and UPDATE decode, RFC 4271
sections 4.1-4.3 and 6; NLRI, RFC 4760 section 5 and RFC 7911; path
attributes, RFC 4271 section 5 and RFC 7606; the RIB's paths, decision
process and Adj-RIB-In, RFC 4271 section 9.1; the update groups' export and
packing loop, RFC 4271 section 9.2) are one source of truth: the
``.py`` files the interpreter runs are the files mypyc compiles at
``pip install`` time.  The extension modules sit beside the ``.py`` files
and, being extensions, win Python's own import.  This module decides at
``import bgpd`` time whether they may:

- ``BGPD_PURE_PYTHON=1`` forces the pure-Python source.
- A build that does not match the source beside it (a ``.py`` edited after
  the build, a missing module, a build for another interpreter) falls back
  to the source too, all modules at once, so the two variants never mix:
  :file:`bgpd/_hotpath_build.json`, written by the build, holds the SHA-256
  of every source it compiled.

Either way a finder put first on :data:`sys.meta_path` loads the hot modules
from their ``.py`` file, so the fallback is exactly the code a checkout
without a compiler runs.  :data:`VARIANT` says what was chosen and
:data:`REASON` why; :func:`describe` is the line the daemon logs at start.
"""

from __future__ import annotations

import hashlib
import importlib.abc
import importlib.machinery
import importlib.util
import json
import os
import sys
from collections.abc import Sequence
from types import ModuleType

#: The modules the build compiles, in one mypyc group (their calls to each
#: other are then direct C calls).  setup.py reads this list.
HOT_MODULES: tuple[str, ...] = (
    "bgpd.wire.nlri",
    "bgpd.wire.attributes",
    "bgpd.wire.update",
    "bgpd.wire.message",
    "bgpd.rib.route",
    "bgpd.rib.decision",
    "bgpd.rib.adjout",
    "bgpd.rib.rib",
)

#: The build's record of what it compiled (module -> SHA-256 of the source).
MANIFEST = "_hotpath_build.json"
ENV_PURE = "BGPD_PURE_PYTHON"

#: the directory holding the bgpd package
_ROOT = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))


def _source_path(name: str, root: str = _ROOT) -> str:
    return os.path.join(root, *name.split(".")) + ".py"


def _extension_path(name: str, root: str = _ROOT) -> str | None:
    base = os.path.join(root, *name.split("."))
    for suffix in importlib.machinery.EXTENSION_SUFFIXES:
        if os.path.exists(base + suffix):
            return base + suffix
    return None


def _sha256(path: str) -> str:
    with open(path, "rb") as f:
        return hashlib.sha256(f.read()).hexdigest()


def check_build(modules: Sequence[str] = HOT_MODULES, root: str = _ROOT) -> str | None:
    """Why the compiled build of ``modules`` under ``root`` cannot be used, or None if it can."""
    try:
        with open(os.path.join(root, modules[0].split(".")[0], MANIFEST)) as f:
            manifest = json.load(f)
    except FileNotFoundError:
        return "no compiled build (installed without a compiler, or the build failed)"
    except (OSError, ValueError) as e:
        return f"unreadable {MANIFEST}: {e}"
    if manifest.get("cache_tag") != sys.implementation.cache_tag:
        return f"compiled for {manifest.get('cache_tag')}, running {sys.implementation.cache_tag}"
    sources = manifest.get("sources", {})
    for name in modules:
        if _extension_path(name, root) is None:
            return f"{name} has no compiled module"
        try:
            digest = _sha256(_source_path(name, root))
        except OSError as e:
            return f"{name}: {e}"
        if sources.get(name) != digest:
            return f"{name}.py changed since it was compiled (rebuild: pip install -e .)"
    return None


class SourceFinder(importlib.abc.MetaPathFinder):
    """Loads the hot modules from their ``.py`` source, never the extension."""

    def __init__(self, modules: Sequence[str], root: str = _ROOT) -> None:
        self._modules = frozenset(modules)
        self._root = root

    def find_spec(self, fullname: str, path: Sequence[str] | None = None,
                  target: ModuleType | None = None) -> importlib.machinery.ModuleSpec | None:
        if fullname not in self._modules:
            return None
        source = _source_path(fullname, self._root)
        if not os.path.exists(source):
            return None
        return importlib.util.spec_from_file_location(fullname, source)


def _choose() -> tuple[str, str]:
    if os.environ.get(ENV_PURE, "") not in ("", "0"):
        return "pure", f"{ENV_PURE}={os.environ[ENV_PURE]}"
    problem = check_build()
    if problem is None:
        return "compiled", "built from this source"
    return "pure", problem


VARIANT, REASON = _choose()
if VARIANT == "pure" and not any(isinstance(f, SourceFinder) for f in sys.meta_path):
    sys.meta_path.insert(0, SourceFinder(HOT_MODULES))


def loaded_compiled() -> list[str]:
    """The hot modules imported so far that run as compiled extensions."""
    out = []
    for name in HOT_MODULES:
        module = sys.modules.get(name)
        if module is not None and not (getattr(module, "__file__", "") or "").endswith(".py"):
            out.append(name)
    return out


def describe() -> str:
    """One line for the log at start: which variant runs, and why."""
    if VARIANT == "compiled":
        return "bgpd: compiled hot path (mypyc) loaded"
    return f"bgpd: pure Python hot path ({REASON})"
