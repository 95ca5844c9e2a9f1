"""What a test needs from the machine it runs on, in one place.

A test that needs something the machine may lack (root, a daemon, IPv6, a
kernel socket option such as TCP-MD5, RFC 2385, or GTSM, RFC 5082) calls
`missing` when it is absent: on a developer's machine that is a skip, but
under ``CI=true`` (``.ci/run`` exports it) CI has installed everything, so
the same absence is a failure and can never pass unnoticed as a skip.
"""

from __future__ import annotations

import os
import unittest
from typing import NoReturn

__all__ = ["in_ci", "missing"]


def in_ci() -> bool:
    """True when running in CI (``CI=true``), where every requirement must be met."""
    return os.environ.get("CI", "").lower() == "true"


def missing(what: str) -> NoReturn:
    """Skip the running test because ``what`` is absent; under CI=true fail it instead."""
    if in_ci():
        raise AssertionError(f"{what} (CI=true: everything must be installed and allowed)")
    raise unittest.SkipTest(what)
