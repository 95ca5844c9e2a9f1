"""Process-wide settings the daemon and the benchmarks share.

Garbage collection: a full table is millions of long-lived objects (prefix
keys, attribute sets, RIB entries) with hardly any reference cycles among
them.  CPython's default thresholds (700, 10, 10) run a young collection
every 700 allocations and keep re-scanning the growing old generation while
a table loads, which costs more than decoding the table.  Larger thresholds
keep cyclic garbage collected, just in bigger, rarer batches.

Each collection is also a stall of the reactor, so no generation may grow
so large that scanning it delays a keepalive.  The middle multiplier sets
how many objects a generation-1 collection scans (up to 100,000 x 5): with
4 full feeds loading at once (6.3 million tracked objects at the end),
measured on 2 cores, a multiplier of 50 made one 1.3 s collection, 5 keeps
the longest at 0.2-0.3 s at the same load time.  A full collection of that
table takes 3.1 s; CPython runs one only after 1,000 generation-1
collections (about 500 million allocations) and only when the long-lived
set has grown by a quarter, so it is rare, not part of a table load.

The young threshold is 20,000, not 100,000: a collection's pause grows
with the objects it scans, and under churn (issue 13) the young objects are
new attribute sets scattered over a heap of millions, each scan a cache
miss: with 100,000 a young collection took 0.19 CPU-s and a generation-1
collection 0.27 CPU-s at 380,000 prefixes (about 0.8 s of wall-clock stall
in bench/rib_scale.py --churn), with 20,000 0.02 and 0.07 CPU-s.  The total
scanned is the same (every survivor is scanned once young and once in
generation 1, whatever the threshold), and a table load was no slower.

Thread switches: the reactor shares the interpreter lock with grpcio's
threads (the API), the kernel writer's netlink thread and deferToThread
work.  A thread that wants the lock waits until the holder drops it, at
most one switch interval (Python's default 5 ms) while the reactor is busy.
grpcio's threads take the lock several times per message (handler, send,
completion): at 5 ms a watch trailed a full-table load by up to 800,000
prefixes, at 1 ms by a few hundred thousand at most (bench/api.py).  The
interval costs nothing while no other thread wants the lock.  It is the
whole process's setting, so the daemon sets it once at start
(``BgpdService.startService``, beside the collector), not a part of it.
"""

from __future__ import annotations

import gc
import sys

GC_THRESHOLDS = (20_000, 5, 1_000)
#: seconds: the interpreter's thread switch interval while bgpd runs
SWITCH_INTERVAL = 0.001


def tune_gc() -> tuple[int, int, int]:
    """Apply bgpd's collector thresholds; return the previous ones."""
    old = gc.get_threshold()
    gc.set_threshold(*GC_THRESHOLDS)
    return old


def tune_switch_interval() -> float:
    """Set the interpreter's thread switch interval to bgpd's (see above); return the previous one.

    An interval already shorter (the operator's, or a profiler's) is kept.
    """
    old = sys.getswitchinterval()
    if old > SWITCH_INTERVAL:
        sys.setswitchinterval(SWITCH_INTERVAL)
    return old
