"""Every coroutine test and cleanup runs on Twisted 22.4 too (tests/deferreds.py says why)."""

from __future__ import annotations

import os

from twisted.internet.defer import Deferred
from twisted.internet.task import Clock, deferLater
from twisted.trial.unittest import SynchronousTestCase

from tests.deferreds import as_deferred, unawaited

TESTS = os.path.dirname(os.path.abspath(__file__))

BAD = '''
class T:
    def setUp(self):
        self.addCleanup(self.stop)
        self.addCleanup(self.sync_stop)

    async def stop(self):
        pass

    def sync_stop(self):
        pass

    async def test_plain(self):
        pass

    @as_deferred
    async def test_wrapped(self):
        pass

    async def helper(self):
        await self.helper2()

    async def helper2(self):
        pass

    async def returned(self):
        pass

    def tearDown(self):
        return self.returned()

class U:
    async def setUp(self):
        pass
'''


class AsDeferredTests(SynchronousTestCase):
    def test_returns_deferred(self):
        """The wrapped coroutine function returns a Deferred: what trial 22.4 waits for."""

        @as_deferred
        async def f(x):
            return x + 1

        d = f(1)
        self.assertIsInstance(d, Deferred)
        self.assertEqual(self.successResultOf(d), 2)

    def test_body_runs_and_fails(self):
        """The body runs to its end on the clock, and its exception fails the Deferred."""
        clock = Clock()
        seen = []

        @as_deferred
        async def f():
            seen.append("start")
            await deferLater(clock, 5, lambda: None)
            seen.append("after")
            raise ValueError("boom")

        d = f()
        self.assertNoResult(d)
        self.assertEqual(seen, ["start"])
        clock.advance(5)
        self.assertEqual(seen, ["start", "after"])
        self.failureResultOf(d, ValueError)

    def test_keeps_name_and_docstring(self):
        """Trial and pytest still see the test's name and its one-line docstring."""

        async def probe():
            """Doc."""

        wrapped = as_deferred(probe)
        self.assertEqual((wrapped.__name__, wrapped.__doc__), ("probe", "Doc."))


class UnawaitedTests(SynchronousTestCase):
    def test_finds_unwrapped(self):
        """Unwrapped async tests, tearDown, cleanups and returned coroutines are found; awaited ones not."""
        self.assertEqual(unawaited(BAD),
                         ["stop (line 7)", "test_plain (line 13)", "returned (line 26)",
                          "setUp (line 33)"])

    def test_suite_has_none(self):
        """No test module has an async test or cleanup that Twisted 22.4's trial never awaits."""
        bad = {}
        for root, dirs, files in os.walk(TESTS):
            dirs[:] = [d for d in dirs if d != "__pycache__"]
            for name in files:
                if name.endswith(".py"):
                    path = os.path.join(root, name)
                    with open(path, encoding="utf-8") as f:
                        found = unawaited(f.read())
                    if found:
                        bad[os.path.relpath(path, TESTS)] = found
        self.assertEqual(bad, {}, "add @as_deferred (from tests.deferreds) to these")
