"""bgpd: a BGP-4 routing daemon on Twisted."""

# First, before any hot module is imported: it decides whether the compiled
# hot path or its pure-Python source runs (BGPD_PURE_PYTHON=1 forces the latter).
from bgpd import hotpath as _hotpath  # noqa: F401

__version__ = "0.1.0"
