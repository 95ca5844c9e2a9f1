"""Helpers for the monitor tests."""

from __future__ import annotations

import shutil
import tempfile
from typing import Any


def temp_path(test: Any, name: str = "f") -> str:
    """An absolute path in a fresh directory removed after ``test`` (trial's mktemp litters
    the working directory with relative paths when pytest runs the suite)."""
    d = tempfile.mkdtemp(prefix="bgpd-monitor-")
    test.addCleanup(shutil.rmtree, d, True)
    return f"{d}/{name}"
