"""Process-wide settings the daemon and the benchmarks share.

Garbage collection: a full table is millions of long-lived objects (prefix
keys, attribute sets, RIB entries) with hardly any reference cycles among
them.  CPython's default thresholds (700, 10, 10) run a young collection
every 700 allocations and keep re-scanning the growing old generation while
a table loads, which costs more than decoding the table.  Larger thresholds
keep cyclic garbage collected, just in bigger, rarer batches.
"""

from __future__ import annotations

import gc

GC_THRESHOLDS = (100_000, 50, 1_000)


def tune_gc() -> tuple[int, int, int]:
    """Apply bgpd's collector thresholds; return the previous ones."""
    old = gc.get_threshold()
    gc.set_threshold(*GC_THRESHOLDS)
    return old
