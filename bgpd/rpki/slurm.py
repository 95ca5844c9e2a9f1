"""Local exceptions to RPKI data: SLURM files (RFC 8416).

A SLURM file (RFC 8416 section 3) is JSON with ``slurmVersion`` 1, filters
(``validationOutputFilters``: ``prefixFilters`` and ``bgpsecFilters``) and
assertions (``locallyAddedAssertions``: ``prefixAssertions`` and
``bgpsecAssertions``).  bgpd uses the prefix filters and prefix assertions;
the BGPsec members are checked for shape and otherwise ignored (bgpd does not
do BGPsec).  The result is applied on top of the caches' data in the VRP
table (:meth:`bgpd.rpki.table.VrpTable.set_exceptions`), so a reload
re-applies without fetching anything from a cache.

Every error names the JSON path (``validationOutputFilters.prefixFilters[2].prefix``)
and the reason, as the config's errors name their key.
"""

from __future__ import annotations

import ipaddress
import json
from collections.abc import Mapping
from typing import Any

import attrs

from bgpd.rpki.records import Vrp
from bgpd.wire.nlri import make_prefix

__all__ = ["PrefixFilter", "Slurm", "SlurmError", "load_slurm", "parse_slurm"]

_MAX_U32 = 0xFFFFFFFF


class SlurmError(ValueError):
    """A SLURM file that cannot be used: ``path`` is the JSON path, ``reason`` why."""

    def __init__(self, path: str, reason: str) -> None:
        super().__init__(f"{path}: {reason}" if path else reason)
        self.path = path
        self.reason = reason


@attrs.frozen
class PrefixFilter:
    """One prefix filter (RFC 8416 section 3.3.1): a prefix, an ASN, or both; ``comment`` kept for display."""

    afi: int | None
    prefix: bytes | None
    asn: int | None
    comment: str = ""


@attrs.frozen
class Slurm:
    """The parts of a SLURM file bgpd applies."""

    filters: tuple[PrefixFilter, ...] = ()
    assertions: tuple[Vrp, ...] = ()

    def table_filters(self) -> list[tuple[int | None, bytes | None, int | None]]:
        """The filters as :meth:`VrpTable.set_exceptions` takes them."""
        return [(f.afi, f.prefix, f.asn) for f in self.filters]


def _obj(value: Any, path: str, keys: tuple[str, ...], required: tuple[str, ...] = ()) -> Mapping[str, Any]:
    if not isinstance(value, dict):
        raise SlurmError(path, "must be an object")
    for k in value:
        if k not in keys:
            raise SlurmError(_join(path, k), f"unknown member (expected one of {', '.join(keys)})")
    for k in required:
        if k not in value:
            raise SlurmError(_join(path, k), "is required")
    return value


def _join(path: str, key: str) -> str:
    return f"{path}.{key}" if path else key


def _array(value: Any, path: str) -> list[Any]:
    if not isinstance(value, list):
        raise SlurmError(path, "must be an array")
    return value


def _asn(value: Any, path: str) -> int:
    if isinstance(value, bool) or not isinstance(value, int) or not 0 <= value <= _MAX_U32:
        raise SlurmError(path, "must be an AS number (0 to 4294967295)")
    return value


def _comment(value: Any, path: str) -> str:
    if not isinstance(value, str):
        raise SlurmError(path, "must be a string")
    return value


def _prefix(value: Any, path: str) -> tuple[int, bytes, int]:
    if not isinstance(value, str):
        raise SlurmError(path, "must be a prefix string such as \"192.0.2.0/24\"")
    try:
        net = ipaddress.ip_network(value, strict=True)
    except ValueError as e:
        raise SlurmError(path, f"not a prefix with its host bits clear: {e}") from None
    afi = 1 if net.version == 4 else 2
    return afi, make_prefix(net.network_address.packed, net.prefixlen), net.prefixlen


def parse_slurm(data: Any) -> Slurm:
    """Validate a decoded SLURM document (RFC 8416 section 3) and keep what bgpd applies."""
    top = _obj(data, "", ("slurmVersion", "validationOutputFilters", "locallyAddedAssertions"),
               ("slurmVersion", "validationOutputFilters", "locallyAddedAssertions"))
    if top["slurmVersion"] != 1 or isinstance(top["slurmVersion"], bool):
        raise SlurmError("slurmVersion", "must be 1 (RFC 8416 section 3.2)")
    path = "validationOutputFilters"
    vof = _obj(top[path], path, ("prefixFilters", "bgpsecFilters"), ("prefixFilters", "bgpsecFilters"))
    filters = []
    for i, f in enumerate(_array(vof["prefixFilters"], f"{path}.prefixFilters")):
        fp = f"{path}.prefixFilters[{i}]"
        f = _obj(f, fp, ("prefix", "asn", "comment"))
        if "prefix" not in f and "asn" not in f:
            raise SlurmError(fp, "needs a prefix, an asn or both (RFC 8416 section 3.3.1)")
        afi = key = asn = None
        if "prefix" in f:
            afi, key, _plen = _prefix(f["prefix"], _join(fp, "prefix"))
        if "asn" in f:
            asn = _asn(f["asn"], _join(fp, "asn"))
        filters.append(PrefixFilter(afi, key, asn, _comment(f.get("comment", ""), _join(fp, "comment"))))
    for i, f in enumerate(_array(vof["bgpsecFilters"], f"{path}.bgpsecFilters")):
        fp = f"{path}.bgpsecFilters[{i}]"
        f = _obj(f, fp, ("asn", "SKI", "comment"))
        if "asn" not in f and "SKI" not in f:
            raise SlurmError(fp, "needs an asn, an SKI or both (RFC 8416 section 3.3.2)")
        if "asn" in f:
            _asn(f["asn"], _join(fp, "asn"))
    path = "locallyAddedAssertions"
    laa = _obj(top[path], path, ("prefixAssertions", "bgpsecAssertions"),
               ("prefixAssertions", "bgpsecAssertions"))
    assertions = []
    for i, a in enumerate(_array(laa["prefixAssertions"], f"{path}.prefixAssertions")):
        ap = f"{path}.prefixAssertions[{i}]"
        a = _obj(a, ap, ("prefix", "asn", "maxPrefixLength", "comment"), ("prefix", "asn"))
        afi, key, plen = _prefix(a["prefix"], _join(ap, "prefix"))
        asn = _asn(a["asn"], _join(ap, "asn"))
        top_len = 32 if afi == 1 else 128
        max_length = plen
        if "maxPrefixLength" in a:
            m = a["maxPrefixLength"]
            mp = _join(ap, "maxPrefixLength")
            if isinstance(m, bool) or not isinstance(m, int) or not plen <= m <= top_len:
                raise SlurmError(mp, f"must be an integer from the prefix length {plen} to {top_len}")
            max_length = m
        _comment(a.get("comment", ""), _join(ap, "comment"))
        assertions.append(Vrp((afi, 1), key, max_length, asn))
    for i, a in enumerate(_array(laa["bgpsecAssertions"], f"{path}.bgpsecAssertions")):
        ap = f"{path}.bgpsecAssertions[{i}]"
        _obj(a, ap, ("asn", "SKI", "routerPublicKey", "comment"), ("asn", "SKI", "routerPublicKey"))
    return Slurm(tuple(filters), tuple(assertions))


def load_slurm(path: str) -> Slurm:
    """Read and validate the SLURM file at ``path`` (SlurmError, OSError)."""
    with open(path, encoding="utf-8") as f:
        text = f.read()
    try:
        data = json.loads(text)
    except json.JSONDecodeError as e:
        raise SlurmError("", f"not JSON: {e}") from None
    return parse_slurm(data)
