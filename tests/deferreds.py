"""Coroutine tests that run on every Twisted bgpd supports (setup.cfg: twisted>=22.4).

Trial runs a test method, ``setUp``, ``tearDown`` and each cleanup through
``defer.maybeDeferred`` (cleanups through ``inlineCallbacks``).  Twisted
22.4, Debian 12's python3-twisted, wraps whatever a coroutine function
returns in ``succeed()``: the coroutine is never awaited, its body never
runs, and the test passes whatever it asserts (Python only warns "coroutine
... was never awaited").  Later Twisted releases await coroutines there.
``as_deferred`` turns the coroutine into a Deferred before trial sees it, so
the same test runs on both; ``unawaited`` finds the async tests and
cleanups that lack it, and tests/test_deferreds.py fails on any.
"""

from __future__ import annotations

import ast
import functools
from collections.abc import Callable, Coroutine
from typing import Any, ParamSpec, TypeVar

from twisted.internet.defer import Deferred

__all__ = ["as_deferred", "unawaited"]

_P = ParamSpec("_P")
_T = TypeVar("_T")

DECORATOR = "as_deferred"
# What trial calls through maybeDeferred (and so never awaits on Twisted 22.4).
_TRIAL_METHODS = ("setUp", "tearDown")
# What turns a coroutine into a Deferred that runs it.
_AWAITERS = ("fromCoroutine", "ensureDeferred")


def as_deferred(f: Callable[_P, Coroutine[Any, Any, _T]]) -> Callable[_P, Deferred[_T]]:
    """Wrap a coroutine function (a test or a cleanup) so that calling it returns a Deferred."""

    @functools.wraps(f)
    def run(*args: _P.args, **kwargs: _P.kwargs) -> Deferred[_T]:
        return Deferred.fromCoroutine(f(*args, **kwargs))

    return run


def _decorated(node: ast.AsyncFunctionDef) -> bool:
    for dec in node.decorator_list:
        name = dec.attr if isinstance(dec, ast.Attribute) else getattr(dec, "id", None)
        if name == DECORATOR:
            return True
    return False


def _name(node: ast.AST) -> str | None:
    if isinstance(node, ast.Attribute):
        return node.attr
    if isinstance(node, ast.Name):
        return node.id
    return None


def unawaited(source: str) -> list[str]:
    """Names of the async defs in ``source`` that trial on Twisted 22.4 may never await.

    Those are the undecorated ``async def test*``, ``setUp`` and ``tearDown``,
    and every undecorated async def the module uses other than as ``await
    f(...)``, ``Deferred.fromCoroutine(f(...))``, ``ensureDeferred(f(...))``
    or ``as_deferred(f)``: passed to ``addCleanup``, returned from a sync
    ``tearDown``, handed to a timer, each of which may drop the coroutine.
    Names are matched as ``self.NAME`` or ``NAME`` within the module.
    """
    tree = ast.parse(source)
    parents = {child: node for node in ast.walk(tree) for child in ast.iter_child_nodes(node)}
    coros = [node for node in ast.walk(tree)
             if isinstance(node, ast.AsyncFunctionDef) and not _decorated(node)]
    names = {node.name for node in coros}
    dropped: set[str] = set()
    for node in ast.walk(tree):
        name = _name(node)
        if name not in names:
            continue
        use = parents.get(node)
        if isinstance(use, ast.Call) and use.func is node:
            outer = parents.get(use)
            if isinstance(outer, ast.Await) or (isinstance(outer, ast.Call)
                                                and _name(outer.func) in _AWAITERS):
                continue
        elif isinstance(use, ast.Call) and _name(use.func) == DECORATOR:
            continue
        dropped.add(name)
    return [f"{node.name} (line {node.lineno})" for node in coros
            if node.name.startswith("test") or node.name in _TRIAL_METHODS or node.name in dropped]
