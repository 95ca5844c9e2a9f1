"""RPKI origin validation at Internet scale (RFC 6811, RFC 8210): load, memory, validation, revalidation.

Four figures, one line::

    rpki: load S s  memory M MB  client C MB (peak P MB)  validate V routes/s  incremental I s

- *load*: 800,000 VRPs (about the global set's 790,000) served by a local RTR
  cache (``bgpd.rpki.testing.CacheServer``, bgpd's own PDU codec, on
  127.0.0.1) to bgpd's RTR client (``RTRFactory``, protocol version 1) whose
  sink is the VRP table: from the connection attempt to the End of Data
  applied.  The cache's PDUs are encoded before the clock starts.
- *memory*: the VRP table's heap after loading the same 800,000 VRPs through
  the sink (``tracemalloc``, so only the table's own objects count); beside
  it (*client*) what the RTR client itself keeps for that cache once the
  load is in, and its peak during the load (``bench/rtr_cache.py``'s
  ``client_memory``).
- *validate*: every route of the synthetic full table (``bench/synthetic.py``,
  1,040,000 IPv4 + 225,000 IPv6 prefixes) validated with its origin AS.
- *incremental*: a RIB holding that table from one peer whose import policy
  rejects RPKI-invalid routes; a serial of 1,000 VRP changes (500 withdrawn,
  500 announced with another origin AS) is applied, and the clock runs from
  End of Data to the RIB having re-run the policy for the affected routes and
  re-decided them (``Rib.drain``).

The VRPs are made from the synthetic table itself: for 600,000 IPv4 and
200,000 IPv6 of its prefixes a VRP with the route's origin AS and max length
the prefix length, except 2 % with another AS, so that validation meets
Valid, Invalid and NotFound routes in about the real proportions.

    .venv/bin/python bench/rpki.py                # 800,000 VRPs, the full table
    .venv/bin/python bench/rpki.py --scale 0.02   # smoke run
"""

from __future__ import annotations

import argparse
import gc
import os
import random
import sys
import time
import tracemalloc

sys.path.insert(0, os.path.join(os.path.dirname(os.path.abspath(__file__)), ".."))

from bench import synthetic  # noqa: E402
from bench.synthetic import scaled  # noqa: E402
from bgpd.config import parse_config  # noqa: E402
from bgpd.policy import registry  # noqa: E402
from bgpd.rib import Rib, RibOptions  # noqa: E402
from bgpd.rib.testing import CountingSink, announce, make_peer  # noqa: E402
from bgpd.rpki.records import Vrp  # noqa: E402
from bgpd.rpki.table import VrpTable  # noqa: E402
from bgpd.rpki.validation import RouteValidation  # noqa: E402
from bgpd.runtime import tune_gc  # noqa: E402
from bgpd.wire.constants import IPV4_UNICAST, IPV6_UNICAST  # noqa: E402
from bgpd.wire.negotiated import Negotiated  # noqa: E402

POLICY = """
[bgp]
local_as = 65000
router_id = "192.0.2.1"
listen_addresses = []

[policies.rov]
default = "accept"
[[policies.rov.terms]]
name = "drop-invalid"
match = { rpki = "invalid" }
action = "reject"
"""


class _Handle:
    def cancel(self) -> None:
        pass


def _never(delay: float, fn: object, *args: object) -> _Handle:
    return _Handle()  # drain() does the work


def make_table(scale: float) -> tuple[list, list, str]:
    note = ""
    try:
        v4, v6 = scaled(scale)
    except OverflowError:
        # As bench/rib_core.py: synthetic.py overflows at full scale; its /16-/17 share goes to /24.
        synthetic.V4_LENGTHS = [(24, 0.63)] + [x for x in synthetic.V4_LENGTHS if x[0] not in (24, 16, 17)]
        v4, v6 = scaled(scale)
        note = "; v4 /16-/17 share moved to /24 (synthetic.py overflows)"
    return v4, v6, note


def make_vrps(v4: list, v6: list, n: int, rng: random.Random) -> list[Vrp]:
    """``n`` VRPs for the table's routes: 3/4 IPv4, 98 % with the route's origin AS."""
    out = []
    for groups, fam, want in ((v4, IPV4_UNICAST, n * 3 // 4), (v6, IPV6_UNICAST, n - n * 3 // 4)):
        routes = [(a.origin_as, p) for a, prefixes in groups for p in prefixes]
        rng.shuffle(routes)
        for origin, p in routes[:want]:
            asn = origin if rng.random() >= 0.02 else 64496 + rng.randrange(16)
            out.append(Vrp(fam, p, p[0], asn))
    return out


def load_over_rtr(vrps: list[Vrp]) -> tuple[float, VrpTable]:
    """Serve ``vrps`` from a local RTR cache to the RTR client; seconds to End of Data applied."""
    from twisted.internet import reactor

    from bgpd.rpki.rtr import CacheSettings, RTRFactory
    from bgpd.rpki.testing import CacheServer

    table = VrpTable()
    server = CacheServer(vrps)
    server.response(1, None)  # encode the 800,000 Prefix PDUs before the clock starts
    port = reactor.listenTCP(0, server, interface="127.0.0.1")
    factory = RTRFactory(CacheSettings(name="bench", address="127.0.0.1", port=port.getHost().port),
                         table, reactor)
    result: dict[str, float] = {}
    end = table.end

    def timed_end(cache: str, serial: int) -> None:
        end(cache, serial)
        result["done"] = time.perf_counter()
        reactor.callLater(0, reactor.stop)

    table.end = timed_end  # type: ignore[method-assign]
    reactor.callLater(300, reactor.stop)  # bounded: a broken run ends
    start = time.perf_counter()
    factory.start()
    reactor.run()
    factory.shutdown()
    port.stopListening()
    if "done" not in result:
        raise SystemExit("rpki: the RTR load did not finish within 300 s")
    return result["done"] - start, table


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__)
    ap.add_argument("--scale", type=float, default=1.0, help="of the full table and of 800,000 VRPs")
    ap.add_argument("--vrps", type=int, default=0, help="VRP count (default 800,000 x scale)")
    ap.add_argument("--direct", action="store_true",
                    help="feed the table through the sink directly instead of over RTR")
    args = ap.parse_args()
    tune_gc()
    rng = random.Random(7)
    v4, v6, note = make_table(args.scale)
    n_vrps = args.vrps or int(800_000 * args.scale)
    vrps = make_vrps(v4, v6, n_vrps, rng)
    routes = sum(len(p) for _, p in v4) + sum(len(p) for _, p in v6)

    # -- load --------------------------------------------------------------------
    gc.collect()
    if args.direct:
        t = time.perf_counter()
        table = VrpTable()
        table.begin("bench", True)
        table.vrps("bench", vrps, [])
        table.end("bench", 1)
        load = time.perf_counter() - t
        how = "through the sink"
    else:
        load, table = load_over_rtr(vrps)
        how = "over RTR from a local cache"
    assert sum(table.counts().values()) == len(vrps), (table.counts(), len(vrps))

    # -- memory (the table's own heap) -------------------------------------------------
    gc.collect()
    tracemalloc.start()
    probe = VrpTable()
    probe.begin("bench", True)
    for i in range(0, len(vrps), 10_000):
        probe.vrps("bench", vrps[i:i + 10_000], [])
    probe.end("bench", 1)
    gc.collect()
    memory, _peak = tracemalloc.get_traced_memory()
    tracemalloc.stop()
    del probe
    from bench.rtr_cache import client_memory
    from bgpd.rpki.testing import CacheServer

    client_kept, client_peak = client_memory(CacheServer(vrps))

    # -- validate the full table -------------------------------------------------------
    states = [0, 0, 0]
    validate = table.validate
    cpu = time.process_time()
    t = time.perf_counter()
    for groups, afi in ((v4, 1), (v6, 2)):
        for a, prefixes in groups:
            origin = a.origin_as
            for p in prefixes:
                states[validate(afi, p, origin)] += 1
    validate_s = time.perf_counter() - t
    validate_cpu = time.process_time() - cpu

    # -- incremental: 1,000 VRPs changed under a RIB that rejects Invalid -----------------
    v = RouteValidation(table=table)
    config = parse_config(POLICY)
    rib = Rib("192.0.2.1", 65000, options=RibOptions(mrai_ebgp=0.0), call_later=_never,
              policies=registry(config.sets, config.policies, v.rpki_state, v.aspa_state))
    v.attach(rib)
    src = make_peer("192.0.2.2", 65001, local_address="192.0.2.1")
    neg = Negotiated(as4=True, ibgp=False, peer_as=65001)
    rib.add_peer(src, [IPV4_UNICAST, IPV6_UNICAST], neg, CountingSink(), import_policy=["rov"])
    t = time.perf_counter()
    for groups, fam in ((v4, IPV4_UNICAST), (v6, IPV6_UNICAST)):
        for i, (a, prefixes) in enumerate(groups):
            rib.receive(src, announce(a, prefixes, fam))
            if i % 200 == 199:
                rib.drain()
    rib.drain()
    import_s = time.perf_counter() - t
    # What the RIB keeps for revalidation (a bench may look inside: nothing else does).
    held = sum(len(h) for h in rib._peers[src.address].held.values())
    withdrawn = rng.sample(vrps, 500)
    covered = {(vv.family, vv.prefix) for vv in vrps}
    free = [(fam, p) for groups, fam in ((v4, IPV4_UNICAST), (v6, IPV6_UNICAST))
            for _a, prefixes in groups for p in prefixes if (fam, p) not in covered]
    added = [Vrp(fam, p, p[0], 64511) for fam, p in rng.sample(free, min(500, len(free)))]
    cpu = time.process_time()
    t = time.perf_counter()
    table.begin("bench", False)
    table.vrps("bench", added, withdrawn)
    table.end("bench", 2)
    queued = v.last_revalidation[0]
    rib.drain()
    incremental = time.perf_counter() - t
    incremental_cpu = time.process_time() - cpu
    find_s = v.last_revalidation[1]
    # The cache's data expires: every route is looked at again (the scan is one
    # reactor turn; the policy runs then go through the RIB's chunked queue).
    table.drop("bench")
    full_queued, full_find = v.last_revalidation
    t = time.perf_counter()
    rib.drain()
    full_s = time.perf_counter() - t
    print(f"rpki: load {load:.2f} s  memory {memory / 1e6:.0f} MB"
          f"  client {client_kept:.0f} MB (peak {client_peak:.0f} MB)"
          f"  validate {routes / validate_s:,.0f} routes/s  incremental {incremental:.3f} s"
          f"  ({len(vrps):,} VRPs {how}; {routes:,} routes validated in {validate_s:.2f} s "
          f"({validate_cpu:.2f} s CPU): "
          f"{states[0]:,} valid, {states[2]:,} invalid, {states[1]:,} not found; "
          f"incremental: 1,000 VRPs, {queued:,} routes re-run, {incremental_cpu:.3f} s CPU, "
          f"{find_s:.3f} s of it finding them; data dropped: {full_queued:,} routes found in "
          f"{full_find:.2f} s (one reactor turn), re-run in {full_s:.1f} s (chunked); "
          f"full table through the rov policy "
          f"{import_s:.1f} s, {held:,} rejected routes kept for revalidation{note})")


if __name__ == "__main__":
    main()
