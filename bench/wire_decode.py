"""Wire codec throughput on an Internet-shaped table.

Prints one line:
``decode: N prefixes/s  encode: M prefixes/s  ...`` where decode is IPv4
prefixes per second through framing + UPDATE decode of a realistic stream
(about 4 prefixes per UPDATE, every UPDATE with its own attributes), and
encode the same table packed back into UPDATEs; then IPv6 and combined figures.

    .venv/bin/python bench/wire_decode.py            # full table (~1.04M + 225k prefixes)
    .venv/bin/python bench/wire_decode.py --scale 0.02   # quick smoke run
"""

from __future__ import annotations

import argparse
import gc
import os
import sys
import time

sys.path.insert(0, os.path.join(os.path.dirname(os.path.abspath(__file__)), ".."))

from bench.synthetic import scaled  # noqa: E402
from bgpd.runtime import GC_THRESHOLDS, tune_gc  # noqa: E402
from bgpd.wire.attributes import AttributeCache  # noqa: E402
from bgpd.wire.message import Framer  # noqa: E402
from bgpd.wire.negotiated import Negotiated  # noqa: E402
from bgpd.wire.update import decode_update, pack_reach  # noqa: E402


def encode(groups: list, afi: int, neg: Negotiated) -> list[bytes]:
    out = []
    for attrs, prefixes in groups:
        out.extend(pack_reach(afi, 1, attrs, prefixes, neg))
    return out


def decode(stream: bytes, neg: Negotiated) -> tuple[int, int]:
    framer = Framer(neg.max_message_len)
    cache = AttributeCache()
    n_prefixes = 0
    n_updates = 0
    keep = []  # hold results like a RIB would, so interning/GC costs are counted
    for off in range(0, len(stream), 65536):
        for _msg_type, body in framer.feed(stream[off:off + 65536]):
            u = decode_update(body, neg, cache)
            n_updates += 1
            if u.nlri:
                n_prefixes += len(u.nlri)
            if u.mp_reach is not None:
                n_prefixes += len(u.mp_reach.nlri)
            keep.append(u)
    return n_prefixes, n_updates


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__)
    ap.add_argument("--scale", type=float, default=1.0)
    args = ap.parse_args()
    tune_gc()  # what the daemon runs with
    t = time.perf_counter()
    v4, v6 = scaled(args.scale)
    gen_s = time.perf_counter() - t
    neg = Negotiated()
    n4 = sum(len(p) for _, p in v4)
    n6 = sum(len(p) for _, p in v6)

    gc.collect()
    t = time.perf_counter()
    msgs4 = encode(v4, 1, neg)
    enc4_s = time.perf_counter() - t
    t = time.perf_counter()
    msgs6 = encode(v6, 2, neg)
    enc6_s = time.perf_counter() - t
    stream4 = b"".join(msgs4)
    stream6 = b"".join(msgs6)
    del msgs4, msgs6

    gc.collect()
    t = time.perf_counter()
    got4, upd4 = decode(stream4, neg)
    dec4_s = time.perf_counter() - t
    gc.collect()
    t = time.perf_counter()
    got6, upd6 = decode(stream6, neg)
    dec6_s = time.perf_counter() - t
    assert got4 == n4 and got6 == n6, (got4, n4, got6, n6)

    print(
        f"decode: {n4 / dec4_s:,.0f} prefixes/s  encode: {n4 / enc4_s:,.0f} prefixes/s  "
        f"ipv6 decode: {n6 / dec6_s:,.0f} prefixes/s  ipv6 encode: {n6 / enc6_s:,.0f} prefixes/s  "
        f"updates/s: {upd4 / dec4_s:,.0f}  ipv4: {n4:,} prefixes in {upd4:,} UPDATEs "
        f"({len(stream4) / 1e6:.1f} MB)  ipv6: {n6:,} in {upd6:,} ({len(stream6) / 1e6:.1f} MB)  "
        f"table generated in {gen_s:.1f}s  gc thresholds {GC_THRESHOLDS}  python {sys.version.split()[0]}"
    )


if __name__ == "__main__":
    main()
