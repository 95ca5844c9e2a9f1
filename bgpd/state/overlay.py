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

import ipaddress
import json
import math
import re
from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field
from typing import Any

import attrs

from bgpd.config import Config, ConfigError, ConfigErrors, OriginateConfig, config_from_dict
from bgpd.state.store import Change
from bgpd.wire.address import normalize_address

__all__ = [
    "API_MARK",
    "Effective",
    "OriginateCache",
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


class OriginateCache:
    """Validated ``[[originate]]`` tables, by identity, for `effective_config`.

    Each API call validates the whole effective config again; with 100,000
    originated paths that would take seconds on the reactor thread for any
    change at all.  An originate table's validation depends on that table
    alone, and tables are never modified once made (the file's document and
    the stored changes are read-only), so a table already validated need not
    be again.  Entries hold their table, so an id is never reused while cached.
    """

    def __init__(self) -> None:
        self._routes: dict[int, tuple[Mapping[str, Any], OriginateConfig]] = {}

    def get(self, table: object) -> OriginateConfig | None:
        hit = self._routes.get(id(table))
        return hit[1] if hit is not None and hit[0] is table else None

    def put(self, table: Mapping[str, Any], route: OriginateConfig) -> None:
        self._routes[id(table)] = (table, route)

    def keep_only(self, tables: Sequence[object]) -> None:
        """Forget every table not in ``tables`` (the current effective document's)."""
        live = {id(t) for t in tables}
        self._routes = {k: v for k, v in self._routes.items() if k in live}

    def prime(self, config: Config) -> None:
        """Take a Config's own validated routes for the tables of its source document."""
        tables = (config.source or {}).get("originate")
        if isinstance(tables, list) and len(tables) == len(config.originate):
            for table, route in zip(tables, config.originate, strict=True):
                self.put(table, route)

    def copy(self) -> OriginateCache:
        """A cache of its own with the same entries (for work on another thread)."""
        other = OriginateCache()
        other._routes = dict(self._routes)
        return other

    def __len__(self) -> int:
        return len(self._routes)


def _originate_key_of(item: object, cache: OriginateCache | None) -> str | None:
    if cache is not None and (route := cache.get(item)) is not None:
        return route.prefix
    return _quiet(originate_key, item.get("prefix")) if isinstance(item, Mapping) else None


def effective_document(base: Config, overlay: Sequence[Change],
                       cache: OriginateCache | None = None) -> Effective:
    """The base's document with ``overlay`` applied in order (not validated).

    Linear in the size of the document and the overlay: a batch of 100,000
    originated paths is one pass, not one list scan per path.  Tables are
    shared with ``base.source`` and the changes, not copied: none is ever
    modified.
    """
    doc = dict(base.source) if base.source is not None else _records_document(base)
    eff = Effective(doc)
    listed = {
        "neighbor": _Listed(doc, "neighbors", "address", neighbor_key, eff.api_neighbors),
        "originate": _Listed(doc, "originate", "prefix", originate_key, eff.api_originate, cache),
    }
    for change in overlay:
        if change.kind == "policies":
            if change.op == "clear":
                # Forgetting the API's replacement (a candidate being
                # checked before it is stored): the file's sections stay.
                continue
            table = change.table or {}
            for section in ("sets", "policies"):
                if table.get(section):
                    doc[section] = table[section]
                else:
                    doc.pop(section, None)
            eff.api_policies = change.op == "put"
        else:
            listed[change.kind].apply(change)
    for part in listed.values():
        part.store()
    return eff


class _Listed:
    """One array of tables (``neighbors``, ``originate``) indexed by its key, order kept."""

    def __init__(self, doc: dict[str, Any], section: str, name: str, keyfn: Any, api: set[str],
                 cache: OriginateCache | None = None) -> None:
        self.doc, self.section, self.api = doc, section, api
        items = doc.get(section)
        self.valid = isinstance(items, list) or section not in doc
        self.items: dict[object, Any] = {}
        for i, item in enumerate(items if isinstance(items, list) else []):
            if section == "originate":
                key = _originate_key_of(item, cache)
            else:
                key = _quiet(keyfn, item.get(name)) if isinstance(item, Mapping) else None
            # Entries without a usable key (or duplicates) stay where they
            # are, for validation of the result to report at their index.
            self.items[(i,) if key is None or key in self.items else key] = item
        self.changed = False

    def apply(self, change: Change) -> None:
        self.changed = True
        if change.op == "put":
            self.items[change.key] = change.table
            self.api.add(change.key)
        else:
            self.items.pop(change.key, None)
            self.api.discard(change.key)

    def store(self) -> None:
        if not self.changed or not self.valid:
            return  # a broken file section is left for validation to report
        if self.items:
            self.doc[self.section] = list(self.items.values())
        else:
            self.doc.pop(self.section, None)


_INDEXED = re.compile(r"(neighbors|originate)\[(\d+)\]")


def effective_config(base: Config, overlay: Sequence[Change],
                     cache: OriginateCache | None = None) -> Config:
    """The running config: ``base`` (the file) with ``overlay`` (the API's changes) laid over it.

    Re-validated as a whole; raises `ConfigErrors` whose keys are those of the
    effective document, an API entry's reason saying it came from the API.
    With no overlay, ``base`` itself.  ``cache`` (kept by the caller from one
    call to the next) spares validating an ``[[originate]]`` table twice; the
    result is the same with or without it.
    """
    if not overlay:
        return base
    eff = effective_document(base, overlay, cache)
    doc = eff.doc
    tables = doc.get("originate")
    if cache is None or not isinstance(tables, list):
        try:
            return config_from_dict(doc)
        except ConfigError as err:
            raise _mark_api_errors(err, eff) from None
    # Everything but [[originate]] as one document; of the originate tables
    # only those not validated before, as a second one with the same [bgp].
    rest = {k: v for k, v in doc.items() if k != "originate"}
    routes: list[OriginateConfig | None] = [cache.get(t) for t in tables]
    fresh = [i for i, r in enumerate(routes) if r is None]
    errors: list[ConfigError] = []
    try:
        main = config_from_dict(rest)
    except ConfigError as err:
        errors.extend(err.errors)
        main = None
    if fresh and isinstance(doc.get("bgp"), Mapping):
        try:
            checked = config_from_dict({"bgp": doc["bgp"], "originate": [tables[i] for i in fresh]})
        except ConfigError as err:
            errors.extend(_reindex(e, fresh) for e in err.errors if e.key.startswith("originate"))
        else:
            for i, route in zip(fresh, checked.originate, strict=True):
                cache.put(tables[i], route)
                routes[i] = route
    seen: dict[str, int] = {}
    for i, route in enumerate(routes):
        if route is None:
            continue
        if route.prefix in seen:  # only a file can have two; the overlay is keyed by prefix
            also = f"originate[{seen[route.prefix]}].prefix"
            reason = f"duplicate prefix {route.prefix} (also {also})"
            errors.append(ConfigError(f"originate[{i}].prefix", reason))
        else:
            seen[route.prefix] = i
    if errors:
        raise _mark_api_errors(ConfigErrors(errors), eff)
    assert main is not None
    cache.keep_only(tables)
    return attrs.evolve(main, originate=routes, source=doc)


def _reindex(err: ConfigError, positions: list[int]) -> ConfigError:
    """An error about ``originate[k]`` of a sub-list, renamed to that table's place in the whole list."""
    m = _INDEXED.match(err.key)
    if m is None or m.group(1) != "originate":
        return err
    key = f"originate[{positions[int(m.group(2))]}]" + err.key[m.end():]
    return ConfigError(key, err.reason, err.line, err.column)


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


def render_toml(base: Config, overlay: Sequence[Change], hide_secrets: bool = True,
                cache: OriginateCache | None = None) -> str:
    """The effective config as a TOML document; each part the API set follows an `API_MARK` line.

    ``hide_secrets`` prints MD5 keys as ``"<hidden>"`` (the output is for
    people and logs); the result then reads back only with real keys put in.
    """
    eff = effective_document(base, overlay, cache)
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
