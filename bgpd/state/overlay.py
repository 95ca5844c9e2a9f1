"""Precedence: the config file is the base, the API's changes an overlay.

`effective_config` lays the stored changes (`bgpd.state.store.Change`) over
the document the config file was read from, in the order they were made, and
validates the result with the config module's own validation: an API
neighbor that names a policy the file no longer has is an error naming the
key (``neighbors[3].import_policy``), marked as coming from the API, exactly
as if it were written in the file.

- a neighbor put replaces the file's neighbor at the same address, or is
  added after the file's neighbors; a remove drops it (also one from the file);
- an originate put replaces the file's ``[[originate]]`` of the same prefix or
  is added; a remove withdraws it;
- a policies put replaces ``[sets]`` and ``[policies]`` as a whole (the API
  replaces policy atomically); ``[bgp]`` is the file's alone.

A SIGHUP reload reads the file again and lays the same overlay over it.
`render_toml` prints the effective document as TOML with each part that
came from the API marked (``bgpctl config show``).
"""

from __future__ import annotations

import copy
import ipaddress
import json
import math
import re
from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field
from typing import Any

import attrs

from bgpd.config import Config, ConfigError, ConfigErrors, config_from_dict
from bgpd.state.store import Change
from bgpd.wire.address import normalize_address

__all__ = [
    "API_MARK",
    "Effective",
    "effective_config",
    "effective_document",
    "neighbor_key",
    "originate_key",
    "render_toml",
]

API_MARK = "# from the API (state store)"
_API_NOTE = " (set through the API; see the state store)"


def neighbor_key(address: object) -> str:
    """The store key of a neighbor: its normalised address.  ValueError when it is none."""
    if not isinstance(address, str):
        raise ValueError(f"a neighbor address must be a string, got {address!r}")
    return normalize_address(address)


def originate_key(prefix: object) -> str:
    """The store key of an originated path: its normalised prefix.  ValueError when it is none."""
    if not isinstance(prefix, str):
        raise ValueError(f"a prefix must be a string, got {prefix!r}")
    return str(ipaddress.ip_network(prefix))


def _quiet(fn: Any, value: object) -> str | None:
    try:
        return fn(value)
    except ValueError:
        return None


@dataclass
class Effective:
    """The effective document and which of its parts came from the API."""

    doc: dict[str, Any]
    api_neighbors: set[str] = field(default_factory=set)
    api_originate: set[str] = field(default_factory=set)
    api_policies: bool = False

    def api_indices(self, section: str) -> set[int]:
        """Positions in ``neighbors`` / ``originate`` of the entries the API set."""
        keys, keyfn = ((self.api_neighbors, neighbor_key) if section == "neighbors"
                       else (self.api_originate, originate_key))
        field_name = "address" if section == "neighbors" else "prefix"
        items = self.doc.get(section, [])
        return {i for i, item in enumerate(items)
                if isinstance(item, Mapping) and _quiet(keyfn, item.get(field_name)) in keys}


def _records_document(config: Config) -> dict[str, Any]:
    """A document for a Config built directly (no ``source``): tests mostly."""
    if config.sets != type(config.sets)() or config.policies:
        raise ValueError("a Config with policies needs its source document (use config_from_dict)")
    bgp = attrs.asdict(config.bgp)
    for key in ("listen_addresses", "import_policy"):
        bgp[key] = list(bgp[key])
    neighbors = []
    for n in config.neighbors:
        d = {k: v for k, v in attrs.asdict(n, recurse=False).items() if v is not None}
        d["families"] = list(n.families)
        d["import_policy"] = list(n.import_policy)
        d["export_policy"] = list(n.export_policy)
        d["max_prefix"] = {fam: attrs.asdict(mp) for fam, mp in n.max_prefix}
        if not d["max_prefix"]:
            del d["max_prefix"]
        neighbors.append(d)
    doc: dict[str, Any] = {"bgp": bgp, "neighbors": neighbors}
    if config.originate:
        raise ValueError("a Config with [[originate]] needs its source document (use config_from_dict)")
    return doc


def effective_document(base: Config, overlay: Sequence[Change]) -> Effective:
    """The base's document with ``overlay`` applied in order (not validated)."""
    doc = copy.deepcopy(dict(base.source)) if base.source is not None else _records_document(base)
    eff = Effective(doc)
    for change in overlay:
        if change.kind == "neighbor":
            _apply_listed(doc, "neighbors", "address", neighbor_key, change)
            (eff.api_neighbors.add if change.op == "put" else eff.api_neighbors.discard)(change.key)
        elif change.kind == "originate":
            _apply_listed(doc, "originate", "prefix", originate_key, change)
            (eff.api_originate.add if change.op == "put" else eff.api_originate.discard)(change.key)
        elif change.kind == "policies":
            table = change.table or {}
            for section in ("sets", "policies"):
                if table.get(section):
                    doc[section] = copy.deepcopy(table[section])
                else:
                    doc.pop(section, None)
            eff.api_policies = change.op == "put"
    return eff


def _apply_listed(doc: dict[str, Any], section: str, name: str, keyfn: Any, change: Change) -> None:
    items = doc.get(section)
    if not isinstance(items, list):
        items = []  # a broken file section: validation of the result reports it
    kept = [item for item in items
            if not (isinstance(item, Mapping) and _quiet(keyfn, item.get(name)) == change.key)]
    at = next((i for i, item in enumerate(items)
               if isinstance(item, Mapping) and _quiet(keyfn, item.get(name)) == change.key), None)
    if change.op == "put":
        table = copy.deepcopy(dict(change.table or {}))
        kept.insert(len(kept) if at is None else at, table)
    if kept:
        doc[section] = kept
    else:
        doc.pop(section, None)


_INDEXED = re.compile(r"(neighbors|originate)\[(\d+)\]")


def effective_config(base: Config, overlay: Sequence[Change]) -> Config:
    """The running config: ``base`` (the file) with ``overlay`` (the API's changes) laid over it.

    Re-validated as a whole; raises `ConfigErrors` whose keys are those of the
    effective document, an API entry's reason saying it came from the API.
    With no overlay, ``base`` itself.
    """
    if not overlay:
        return base
    eff = effective_document(base, overlay)
    try:
        return config_from_dict(eff.doc)
    except ConfigError as err:
        raise _mark_api_errors(err, eff) from None


def _mark_api_errors(err: ConfigError, eff: Effective) -> ConfigErrors:
    api = {"neighbors": eff.api_indices("neighbors"), "originate": eff.api_indices("originate")}
    out = []
    for e in err.errors:
        m = _INDEXED.match(e.key)
        from_api = (m is not None and int(m.group(2)) in api[m.group(1)]) or (
            eff.api_policies and e.key.split(".", 1)[0] in ("sets", "policies"))
        out.append(ConfigError(e.key, e.reason + _API_NOTE, e.line, e.column) if from_api else e)
    return ConfigErrors(out)


# -- TOML ----------------------------------------------------------------------

_BARE = re.compile(r"[A-Za-z0-9_-]+")
_HIDDEN = ("md5_password",)


def _key(name: str) -> str:
    return name if _BARE.fullmatch(name) else _string(name)


def _string(text: str) -> str:
    # JSON's string escapes are TOML's, but for DEL, which TOML wants escaped.
    return json.dumps(text, ensure_ascii=False).replace("\x7f", "\\u007f")


def _value(v: Any) -> str:
    if isinstance(v, bool):
        return "true" if v else "false"
    if isinstance(v, int):
        return str(v)
    if isinstance(v, float):
        if math.isnan(v):
            return "nan"
        if math.isinf(v):
            return "inf" if v > 0 else "-inf"
        return repr(v)
    if isinstance(v, str):
        return _string(v)
    if isinstance(v, Mapping):
        return "{ " + ", ".join(f"{_key(str(k))} = {_value(x)}" for k, x in v.items()) + " }" if v else "{}"
    if isinstance(v, (list, tuple)):
        return "[" + ", ".join(_value(x) for x in v) + "]"
    # date/time values: TOML's own text for them is their ISO form
    return v.isoformat()


def _is_table_array(v: Any) -> bool:
    return isinstance(v, list) and bool(v) and all(isinstance(x, Mapping) for x in v)


def _table(out: list[str], path: str, tbl: Mapping[str, Any], header: str | None, mark: bool,
           hide: bool) -> None:
    """Write ``tbl`` at ``path``: scalars first, then sub-tables and arrays of tables."""
    if mark:
        out.append(API_MARK)
    if header is not None:
        out.append(header)
    subs = []
    for k, v in tbl.items():
        if isinstance(v, Mapping) or _is_table_array(v):
            subs.append((k, v))
            continue
        shown = '"<hidden>"' if hide and k in _HIDDEN and isinstance(v, str) else _value(v)
        out.append(f"{_key(str(k))} = {shown}")
    for k, v in subs:
        sub = f"{path}.{_key(str(k))}" if path else _key(str(k))
        if isinstance(v, Mapping):
            out.append("")
            _table(out, sub, v, f"[{sub}]", False, hide)
        else:
            for item in v:
                out.append("")
                _table(out, sub, item, f"[[{sub}]]", False, hide)


def render_toml(base: Config, overlay: Sequence[Change], hide_secrets: bool = True) -> str:
    """The effective config as a TOML document; each part the API set follows an `API_MARK` line.

    ``hide_secrets`` prints MD5 keys as ``"<hidden>"`` (the output is for
    people and logs); the result then reads back only with real keys put in.
    """
    eff = effective_document(base, overlay)
    doc = eff.doc
    out: list[str] = []
    api = {"neighbors": eff.api_indices("neighbors"), "originate": eff.api_indices("originate")}
    for name, value in doc.items():
        if name in ("neighbors", "originate") and _is_table_array(value):
            for i, item in enumerate(value):
                out.append("")
                _table(out, name, item, f"[[{name}]]", i in api[name], hide_secrets)
        elif isinstance(value, Mapping):
            out.append("")
            mark = eff.api_policies and name in ("sets", "policies")
            _table(out, name, value, f"[{name}]", mark, hide_secrets)
        else:
            out.insert(0, f"{_key(name)} = {_value(value)}")
    return "\n".join(out).lstrip("\n") + "\n"
