"""A stand-in for a Rib with some of its methods replaced (tests that watch or bend one call).

The RIB is compiled (mypyc, :mod:`bgpd.hotpath`): ``Rib`` is then a native
class, whose methods cannot be replaced on an instance.  The code under test
reads the RIB from a Python object (``RibService.rib``, a BMP host's
``rib``), so a test puts this there instead: the named methods are the
test's, everything else is the real RIB's.
"""

from __future__ import annotations

from typing import Any


class RibSpy:
    """``rib`` with the methods given as keywords replaced."""

    def __init__(self, rib: Any, **methods: Any) -> None:
        self.rib = rib
        self.__dict__.update(methods)

    def __getattr__(self, name: str) -> Any:
        return getattr(self.rib, name)
