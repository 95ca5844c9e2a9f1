"""A synthetic routing table shaped like today's Internet table, for benchmarks.

Defaults follow the issue's figures: about 1,040,000 IPv4 prefixes over about
260,000 distinct AS paths (about 4 prefixes per path, most paths with one or
two prefixes, a few with hundreds), mostly /24; about 225,000 IPv6 prefixes
over about 140,000 paths, mostly /48; paths of about 4 hops; communities on
many routes, large communities and MED on some.  Deterministic for a seed.
"""

from __future__ import annotations

import random
from collections.abc import Iterator

from bgpd.wire.attributes import PathAttributes
from bgpd.wire.nlri import make_prefix

V4_LENGTHS = [(24, 0.60), (23, 0.08), (22, 0.12), (21, 0.05), (20, 0.06), (19, 0.04), (18, 0.02),
              (17, 0.01), (16, 0.02)]
V6_LENGTHS = [(48, 0.55), (32, 0.12), (44, 0.08), (40, 0.07), (36, 0.04), (29, 0.05), (47, 0.04),
              (46, 0.05)]


def _lengths(rng: random.Random, table: list[tuple[int, float]], n: int) -> list[int]:
    lens, weights = zip(*table, strict=True)
    return rng.choices(lens, weights, k=n)


def _prefixes(rng: random.Random, bits: int, table: list, n: int, start: int) -> list[bytes]:
    # Random aligned networks in the unicast space, no duplicates; like the
    # real table, some of them fall inside others (more-specifics).
    out = []
    seen = set()
    nbytes = bits // 8
    span = (223 << 24) - start if bits == 32 else 1 << 125  # 1.0.0.0-222/8, 2000::/3
    for plen in _lengths(rng, table, n):
        size = 1 << (bits - plen)
        for _ in range(1000):
            addr = (start + rng.randrange(span)) & ~(size - 1)
            key = make_prefix(addr.to_bytes(nbytes, "big"), plen)
            if bits == 32 and _special4(addr, plen):
                continue
            if key not in seen:
                seen.add(key)
                out.append(key)
                break
        else:
            raise ValueError(f"cannot place {n} unique /{plen} prefixes")
    return out


# Special-purpose IPv4 space (RFC 6890) that real routers filter as bogons.
_SPECIAL4 = [(0x00000000, 8), (0x0A000000, 8), (0x64400000, 10), (0x7F000000, 8), (0xA9FE0000, 16),
             (0xAC100000, 12), (0xC0000000, 24), (0xC0000200, 24), (0xC0A80000, 16),
             (0xC6120000, 15), (0xC6336400, 24), (0xCB007100, 24)]


def _special4(addr: int, plen: int) -> bool:
    for net, nlen in _SPECIAL4:
        shift = 32 - min(nlen, plen)
        if addr >> shift == net >> shift:
            return True
    return False


def _group_sizes(rng: random.Random, n_prefixes: int, n_paths: int) -> list[int]:
    # Heavy-tailed prefixes-per-path: most paths carry 1-2 prefixes, a few
    # carry hundreds, the mean is n_prefixes / n_paths.
    sizes = [1] * n_paths
    extra = n_prefixes - n_paths
    weights = [rng.paretovariate(1.2) for _ in range(n_paths)]
    total = sum(weights)
    for i, w in enumerate(weights):
        sizes[i] += int(extra * w / total)
    short = n_prefixes - sum(sizes)
    for i in rng.sample(range(n_paths), short) if short > 0 else ():
        sizes[i] += 1
    return sizes


def _attributes(rng: random.Random, next_hop: str, first_as: int, ll: str | None) -> PathAttributes:
    hops = max(1, min(12, int(rng.gauss(3.0, 1.2)) + 1))  # ~4 ASes incl. the feeder's
    path = [first_as]
    for _ in range(hops - 1):
        path.append(rng.choice((rng.randint(1, 64495), rng.randint(131072, 400000))))
    if rng.random() < 0.1:
        path.extend([path[-1]] * rng.randint(1, 3))  # prepending
    comms = ()
    if rng.random() < 0.6:
        comms = tuple(sorted({(rng.choice((first_as & 0xFFFF, 174, 3356, 6939)) << 16)
                              | rng.randint(1, 3000) for _ in range(rng.randint(1, 6))}))
    large = ()
    if rng.random() < 0.15:
        large = tuple((first_as, rng.randint(1, 100), rng.randint(1, 1000))
                      for _ in range(rng.randint(1, 3)))
    med = rng.randint(0, 1000) if rng.random() < 0.3 else None
    return PathAttributes(origin=0 if rng.random() < 0.9 else 2, as_path=((2, tuple(path)),),
                          next_hop=next_hop, med=med, communities=comms,
                          large_communities=large, next_hop_ll=ll)


def table(
    v4_prefixes: int = 1_040_000,
    v4_paths: int = 260_000,
    v6_prefixes: int = 225_000,
    v6_paths: int = 140_000,
    first_as: int = 65001,
    next_hop4: str = "192.0.2.2",
    next_hop6: str = "2001:db8::2",
    seed: int = 1,
) -> tuple[list[tuple[PathAttributes, list[bytes]]], list[tuple[PathAttributes, list[bytes]]]]:
    """Return (ipv4, ipv6) lists of (attributes, prefixes) groups."""
    rng = random.Random(seed)
    v4 = _prefixes(rng, 32, V4_LENGTHS, v4_prefixes, 1 << 24)
    v6 = _prefixes(rng, 128, V6_LENGTHS, v6_prefixes, 0x2 << 124)
    out4 = []
    i = 0
    for size in _group_sizes(rng, v4_prefixes, v4_paths):
        out4.append((_attributes(rng, next_hop4, first_as, None), v4[i:i + size]))
        i += size
    out6 = []
    i = 0
    for size in _group_sizes(rng, v6_prefixes, v6_paths):
        out6.append((_attributes(rng, next_hop6, first_as, None), v6[i:i + size]))
        i += size
    return out4, out6


def scaled(scale: float, seed: int = 1, **kw: object) -> tuple[list, list]:
    """The default table shrunk by ``scale`` (CI smoke runs use a small one)."""
    return table(int(1_040_000 * scale), max(1, int(260_000 * scale)),
                 int(225_000 * scale), max(1, int(140_000 * scale)), seed=seed, **kw)


def iter_prefixes(groups: list) -> Iterator[bytes]:
    for _, prefixes in groups:
        yield from prefixes
