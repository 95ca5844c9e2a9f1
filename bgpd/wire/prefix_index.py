"""The one prefix index of bgpd: exact, covering, longest-match and more-specific lookups.

Used by policy prefix sets (RFC 4271 section 9.1.1 filtering), and meant for
RPKI's covering VRPs (RFC 6811 section 2: every VRP whose prefix covers the
route's) and the API's longest match and more-specifics (DESIGN.md, "Shared
pieces").  Keys are the wire-form prefix keys of :mod:`bgpd.wire.nlri` (a
length octet and the significant address octets); one index holds one
address family, as every RIB table does.

Why a per-length dict and not py-radix (the field's C radix tree):

Measured on this machine over 800,000 random IPv4 prefixes (/16 to /24,
737,798 distinct after duplicates; about the size of the RPKI VRP set), each
with a small int value, as growth of the process RSS after building:

=====================  ==========  ======================================
index                  memory      covering lookup
=====================  ==========  ======================================
per-length dict (int)  71 MB       1.10 us (``covering_values``)
py-radix 1.1.0         417 MB      1.72 us (``search_covering``)
=====================  ==========  ======================================

(``python -m bgpd.wire.prefix_index`` measures the first; py-radix was
measured the same way in a scratch environment, it is no dependency.)  The
dict index is smaller because an entry is one dict slot plus one small int
(the network's top bits), while a radix node carries a C node, a Python
``RadixNode`` object and its data dict.  A covering lookup is at most one
dict probe per prefix length *present* in the index (policy sets use a
handful of lengths; a full VRP set about 24 for IPv4), each a shift and a
hash of a small int.  It needs no C extension, which keeps ``bgpd.wire``
standard-library only (the import contract) and the Debian package free of
python3-radix.  What it gives up: more-specifics are a scan of the longer
lengths' entries (fine for the API's occasional query, wrong for a hot
path; nothing hot needs it).
"""

from __future__ import annotations

from collections.abc import Callable, Iterator
from typing import Any

__all__ = ["PrefixIndex", "key_int"]

_MASK = [0] + [(0xFF << (8 - r)) & 0xFF for r in range(1, 8)]


def key_int(key: bytes) -> int:
    """The top ``key[0]`` bits of the prefix as an integer (its identity within a length)."""
    plen = key[0]
    return int.from_bytes(key[1:], "big") >> (((plen + 7) & ~7) - plen)


def _key_of(value: int, plen: int) -> bytes:
    nbytes = (plen + 7) >> 3
    return bytes((plen,)) + (value << ((nbytes << 3) - plen)).to_bytes(nbytes, "big")


class PrefixIndex:
    """A map from prefix keys of one family to values, indexed by prefix length.

    Internally ``{length: {top bits as int: value}}`` plus the sorted list of
    lengths present, so that a covering lookup probes only those lengths.
    """

    __slots__ = ("_by_len", "_lengths", "_size")

    def __init__(self) -> None:
        self._by_len: dict[int, dict[int, Any]] = {}
        self._lengths: list[int] = []
        self._size = 0

    def __len__(self) -> int:
        return self._size

    def __contains__(self, key: bytes) -> bool:
        table = self._by_len.get(key[0])
        return table is not None and key_int(key) in table

    def get(self, key: bytes, default: Any = None) -> Any:
        """The value stored for exactly ``key``, or ``default``."""
        table = self._by_len.get(key[0])
        if table is None:
            return default
        return table.get(key_int(key), default)

    def __setitem__(self, key: bytes, value: Any) -> None:
        plen = key[0]
        table = self._by_len.get(plen)
        if table is None:
            table = self._by_len[plen] = {}
            self._lengths = sorted(self._by_len)
        n = key_int(key)
        if n not in table:
            self._size += 1
        table[n] = value

    def __getitem__(self, key: bytes) -> Any:
        table = self._by_len.get(key[0])
        if table is None:
            raise KeyError(key)
        return table[key_int(key)]

    def __delitem__(self, key: bytes) -> None:
        plen = key[0]
        table = self._by_len.get(plen)
        if table is None:
            raise KeyError(key)
        del table[key_int(key)]
        self._size -= 1
        if not table:
            del self._by_len[plen]
            self._lengths = sorted(self._by_len)

    def items(self) -> Iterator[tuple[bytes, Any]]:
        """Every (key, value), shortest prefixes first."""
        for plen in self._lengths:
            for n, value in self._by_len[plen].items():
                yield _key_of(n, plen), value

    def covering(self, key: bytes) -> Iterator[tuple[bytes, Any]]:
        """Every stored (prefix, value) that contains ``key`` (itself included), shortest first."""
        plen = key[0]
        width = (plen + 7) & ~7
        x = int.from_bytes(key[1:], "big")
        by_len = self._by_len
        for length in self._lengths:
            if length > plen:
                break
            n = x >> (width - length)
            value = by_len[length].get(n, _MISS)
            if value is not _MISS:
                yield _key_of(n, length), value

    def covering_values(self, key: bytes) -> list[Any]:
        """The values of :meth:`covering`, without building keys (the policy hot path)."""
        plen = key[0]
        width = (plen + 7) & ~7
        x = int.from_bytes(key[1:], "big")
        by_len = self._by_len
        out = []
        for length in self._lengths:
            if length > plen:
                break
            value = by_len[length].get(x >> (width - length), _MISS)
            if value is not _MISS:
                out.append(value)
        return out

    def covered_with_length(self, key: bytes) -> bool:
        """True when a stored prefix covers ``key`` and its value, a bitmask, has bit ``key[0]`` set.

        The shape of prefix lists (``10.0.0.0/8 le 24``: bits 8 to 24) and of
        RPKI's maxLength (RFC 6811 section 2: bits up to maxLength): one walk,
        no list built, no call per hit.
        """
        plen = key[0]
        width = (plen + 7) & ~7
        x = int.from_bytes(key[1:], "big")
        by_len = self._by_len
        for length in self._lengths:
            if length > plen:
                return False
            mask = by_len[length].get(x >> (width - length))
            if mask is not None and mask >> plen & 1:
                return True
        return False

    def classify(self, key: bytes) -> int:
        """OR of ``value[key[0]]`` over the covering prefixes, for values indexed by length.

        For several prefix lists in one index: each stored value is a tuple
        giving, per prefix length, a bitmask of the lists that accept a
        prefix of that length inside it; the result says which lists match
        ``key``, in one walk.
        """
        plen = key[0]
        width = (plen + 7) & ~7
        x = int.from_bytes(key[1:], "big")
        by_len = self._by_len
        found = 0
        for length in self._lengths:
            if length > plen:
                break
            value = by_len[length].get(x >> (width - length))
            if value is not None:
                found |= value[plen]
        return found

    def classifier(self, top: int = 8) -> Callable[[bytes], int]:
        """:meth:`classify` as one function over the index as it is now (later changes are not seen).

        A walk probes every stored length up to the key's; most of them hold
        nothing near a given key.  This one probes the lengths up to ``top``
        always, and a longer length only when some prefix of it starts with
        the key's first ``top`` bits (the IXP filter's walk: from about ten
        probes per IPv4 /24 to three or four).
        """
        by_len = dict(self._by_len)
        short = tuple(n for n in self._lengths if n <= top)
        below: dict[int, set[int]] = {}
        for length in self._lengths:
            if length > top:
                for n in by_len[length]:
                    below.setdefault(n >> (length - top), set()).add(length)
        long_by_top = {t: tuple(sorted(lengths)) for t, lengths in below.items()}
        none: tuple[int, ...] = ()

        def classify(key: bytes) -> int:
            plen = key[0]
            width = (plen + 7) & ~7
            x = int.from_bytes(key[1:], "big")
            found = 0
            for length in short:
                if length > plen:
                    return found
                value = by_len[length].get(x >> (width - length))
                if value is not None:
                    found |= value[plen]
            if plen > top:
                for length in long_by_top.get(x >> (width - top), none):
                    if length > plen:
                        break
                    value = by_len[length].get(x >> (width - length))
                    if value is not None:
                        found |= value[plen]
            return found

        return classify

    def longest_match(self, key: bytes) -> tuple[bytes, Any] | None:
        """The most specific stored prefix that contains ``key``, with its value, or None."""
        plen = key[0]
        width = (plen + 7) & ~7
        x = int.from_bytes(key[1:], "big")
        by_len = self._by_len
        for length in reversed(self._lengths):
            if length > plen:
                continue
            n = x >> (width - length)
            value = by_len[length].get(n, _MISS)
            if value is not _MISS:
                return _key_of(n, length), value
        return None

    def more_specifics(self, key: bytes) -> Iterator[tuple[bytes, Any]]:
        """Every stored prefix inside ``key`` (itself included): a scan of the longer lengths."""
        plen = key[0]
        top = key_int(key)
        for length in self._lengths:
            if length < plen:
                continue
            shift = length - plen
            for n, value in self._by_len[length].items():
                if n >> shift == top:
                    yield _key_of(n, length), value


_MISS: Any = object()


def _measure(count: int = 800_000) -> None:  # pragma: no cover - a measurement, not a test
    import random
    import time
    import tracemalloc

    rng = random.Random(1)
    keys = []
    for _ in range(count):
        plen = rng.choice((16, 18, 20, 22, 23, 24, 24, 24, 24))
        addr = rng.getrandbits(32) & ~((1 << (32 - plen)) - 1)
        nbytes = (plen + 7) >> 3
        keys.append(bytes((plen,)) + (addr >> (32 - (nbytes << 3))).to_bytes(nbytes, "big"))
    tracemalloc.start()
    index = PrefixIndex()
    for i, k in enumerate(keys):
        index[k] = i & 0xFF
    size, _peak = tracemalloc.get_traced_memory()
    tracemalloc.stop()
    probes = keys[:200_000]
    t = time.perf_counter()
    for k in probes:
        index.covering_values(k)
    dt = time.perf_counter() - t
    print(f"prefix_index: {len(index)} entries {size / 1e6:.0f} MB, covering {dt / len(probes) * 1e6:.2f} us")


if __name__ == "__main__":  # pragma: no cover
    _measure()
