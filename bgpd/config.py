"""Configuration: a TOML file -> validated, frozen attrs records.

Everything the daemon runs from is checked here, before any service starts, and
every problem is reported with the dotted key that caused it and the reason
(DESIGN.md: "config -> an error naming the key").  All problems in a file are
collected and reported together, so one edit-check cycle fixes them all.

The limits come from the protocol:

- RFC 4271 section 4.2 / 10: Hold Time is 0 or at least 3 seconds;
  ConnectRetryTime; section 8.1.1 DelayOpen / IdleHoldTime (DampPeerOscillations).
- RFC 6793: 4-octet AS numbers; AS_TRANS (23456) is not a real AS.
- RFC 7607: AS 0 must not be used.
- RFC 6286: the BGP Identifier is any non-zero 4-octet value (written as IPv4).
- RFC 4456: CLUSTER_ID and route-reflector clients (iBGP only).
- RFC 7947: route-server clients (eBGP only).
- RFC 9234: BGP roles, eBGP only; strict mode needs a role.
- RFC 4760: address families; RFC 7911: ADD-PATH; RFC 8654: extended messages;
  RFC 2918: route refresh; RFC 4724 section 3: Restart Time is a 12-bit field.
- RFC 2385 / Linux TCP_MD5SIG_MAXKEYLEN: MD5 keys are 1..80 bytes.
- RFC 5082: GTSM, hop counts 1..254.
- RFC 4486 section 4: maximum-prefix limits (Cease subcode 1).
- RFC 8212: with no policy configured, eBGP routes are neither accepted nor
  advertised; that default is resolved here into an explicit policy chain.
- RFC 4271 section 9.1.2.2: the decision-process knobs (MED comparison,
  default LOCAL_PREF) and multipath; section 9.2.1.1: MinRouteAdvertisementInterval.
- RFC 4271 section 9.1.2.1 / common practice: allowas-in, soft reconfiguration.
- RFC 2545 / RFC 5549: the next hop of the other family on a session.
- Originated routes (``[[originate]]``): RFC 4271 section 5.1 attributes;
  RFC 1997, RFC 8092, RFC 4360 / RFC 5668 communities, whose text notation is
  `bgpd.wire.communities`.

Records compare with ``==`` by value: on reload, a neighbor whose
``NeighborConfig`` differs from the running one has changed (every setting that
is inherited from ``[bgp]`` is copied into the neighbor record, so a change there
shows up in each affected neighbor).  ``Config.neighbor_changes`` does that diff.
The one exception is ``mrai``: None there means "the [bgp] default for this
session type" (`NeighborConfig.effective_mrai`), so a changed ``bgp.mrai_ebgp``
or ``bgp.mrai_ibgp`` shows up in ``Config.bgp``, not per neighbor.
"""

from __future__ import annotations

import copy
import datetime
import difflib
import ipaddress
import json
import math
import os
import re
import time
import tomllib
from collections.abc import Callable, Iterable, Mapping
from typing import Any

import attrs

from bgpd.kernel.tables import table_number
from bgpd.rpki.slurm import Slurm, SlurmError, load_slurm
from bgpd.wire.address import normalize_address
from bgpd.wire.communities import parse_community, parse_ext_community, parse_large_community
from bgpd.wire.constants import (
    AS_TRANS,
    FAMILIES_BY_NAME,
    FAMILY_NAMES,
    IPV4_UNICAST,
    IPV6_UNICAST,
    ORIGIN_NAMES,
    ROLE_NAMES,
)

__all__ = [
    "ADD_PATH_MODES",
    "API_KEYS",
    "BUILTIN_POLICIES",
    "FAMILIES",
    "ROLES",
    "SOFT_FIELDS",
    "ApiConfig",
    "MonitorConfig",
    "MrtConfig",
    "BgpConfig",
    "Config",
    "ConfigError",
    "ConfigErrors",
    "KernelConfig",
    "MaxPrefix",
    "NeighborChanges",
    "NeighborConfig",
    "ORIGINS",
    "OriginateConfig",
    "PolicyDef",
    "PolicySets",
    "api_config_from_table",
    "config_from_dict",
    "config_to_tables",
    "listen_is_local",
    "neighbor_from_table",
    "policies_from_toml",
    "policy_tables_of_file",
    "split_listen",
    "to_toml",
    "load_config",
    "parse_config",
]

IPV4_UNICAST_NAME = FAMILY_NAMES[IPV4_UNICAST]
IPV6_UNICAST_NAME = FAMILY_NAMES[IPV6_UNICAST]
FAMILIES = (IPV4_UNICAST_NAME, IPV6_UNICAST_NAME)
BUILTIN_POLICIES = ("accept-all", "reject-all")
ROLES = tuple(ROLE_NAMES)  # RFC 9234 section 4.1
ADD_PATH_MODES = ("off", "receive", "send", "both")
ORIGINS = tuple(ORIGIN_NAMES)  # RFC 4271 section 5.1.1, in code order

MAX_AS = 4294967295
TCP_MD5SIG_MAXKEYLEN = 80  # linux/tcp.h
MAX_RESTART_TIME = 4095  # RFC 4724 section 3: 12 bits
MAX_DELAY_OPEN_TIME = 240
MAX_U32 = 4294967295  # MED, LOCAL_PREF
MAX_PATHS = 64
MAX_ALLOWAS_IN = 10
DEFAULT_STATE_DIR = "/var/lib/bgpd"


# -- errors -------------------------------------------------------------------


class ConfigError(Exception):
    """One problem in the configuration: the dotted key path and the reason.

    For TOML syntax errors ``key`` is the file name and ``line``/``column``
    are set when tomllib reported them.
    """

    def __init__(self, key: str, reason: str, line: int | None = None, column: int | None = None) -> None:
        super().__init__(key, reason)
        self.key = key
        self.reason = reason
        self.line = line
        self.column = column

    def __str__(self) -> str:
        return f"config error at {self.key}: {self.reason}"

    @property
    def errors(self) -> list[ConfigError]:
        """Every problem; a single error is a list of itself, so callers can always iterate."""
        return [self]


class ConfigErrors(ConfigError):
    """All the problems found in one configuration, in document order.

    ``key`` and ``reason`` are those of the first; ``str()`` is one line per error.
    """

    def __init__(self, errors: Iterable[ConfigError]) -> None:
        errs = list(errors)
        if not errs:
            raise ValueError("ConfigErrors needs at least one error")
        super().__init__(errs[0].key, errs[0].reason, errs[0].line, errs[0].column)
        self.args = (errs,)
        self._errors = errs

    def __str__(self) -> str:
        return "\n".join(str(e) for e in self._errors)

    @property
    def errors(self) -> list[ConfigError]:
        """Every problem, in document order."""
        return list(self._errors)


# -- records ------------------------------------------------------------------


@attrs.frozen
class MaxPrefix:
    """A per-family limit on prefixes accepted from one neighbor (RFC 4486 section 4).

    ``restart_time`` 0 means the session stays down after the limit is hit,
    until an operator restarts it.
    """

    limit: int
    warning_percent: int = 90
    restart_time: int = 0


def _max_prefix_pairs(
    value: Mapping[str, MaxPrefix] | Iterable[tuple[str, MaxPrefix]],
) -> tuple[tuple[str, MaxPrefix], ...]:
    # Sorted, so that the same limits written in another order compare equal.
    items = value.items() if isinstance(value, Mapping) else value
    return tuple(sorted(items, key=lambda pair: pair[0]))


def _hide_secret(value: str | None) -> str:
    # Configs end up in logs and tracebacks; the key must not.
    return "None" if value is None else "'<hidden>'"


@attrs.frozen
class NeighborConfig:
    """One configured peer, with every default already resolved.

    Built by `config_from_dict`, which validates; building one directly (in
    tests) skips validation.  Addresses are normalised strings.
    """

    address: str
    remote_as: int
    local_as: int
    description: str | None = None
    enabled: bool = True
    passive: bool = False
    local_address: str | None = None
    port: int = 179
    hold_time: int = 90
    connect_retry_time: int = 120
    idle_hold_time: int = 5
    max_idle_hold_time: int = 300
    delay_open_time: int = 0
    families: tuple[str, ...] = attrs.field(converter=tuple)
    md5_password: str | None = attrs.field(default=None, repr=_hide_secret)
    ttl_security: int | None = None
    max_prefix: tuple[tuple[str, MaxPrefix], ...] = attrs.field(default=(), converter=_max_prefix_pairs)
    import_policy: tuple[str, ...] = attrs.field(converter=tuple)
    export_policy: tuple[str, ...] = attrs.field(converter=tuple)
    route_reflector_client: bool = False
    route_server_client: bool = False
    next_hop_self: bool = False
    role: str | None = None
    strict_role: bool = False
    add_path: str = "off"
    graceful_restart: bool = True
    graceful_restart_time: int = 120
    extended_message: bool = True
    #: RFC 8950: IPv4 unicast routes with an IPv6 next hop, both ways
    extended_next_hop: bool = False
    route_refresh: bool = True
    allowas_in: int = 0
    soft_reconfiguration_inbound: bool = False
    mrai: float | None = None
    next_hop_ipv4: str | None = None
    next_hop_ipv6: str | None = None

    @families.default
    def _default_families(self) -> tuple[str, ...]:
        return (IPV6_UNICAST_NAME,) if ":" in self.address else (IPV4_UNICAST_NAME,)

    @import_policy.default
    def _default_import_policy(self) -> tuple[str, ...]:
        return _rfc8212_default(self.remote_as, self.local_as)

    @export_policy.default
    def _default_export_policy(self) -> tuple[str, ...]:
        return _rfc8212_default(self.remote_as, self.local_as)

    @property
    def is_ebgp(self) -> bool:
        """True when the peer is in another AS (as seen from this session's local AS)."""
        return self.remote_as != self.local_as

    @property
    def ip_version(self) -> int:
        """4 or 6: the family of the transport address."""
        return 6 if ":" in self.address else 4

    def max_prefix_for(self, family: str) -> MaxPrefix | None:
        """The prefix limit for ``family``, or None when there is none."""
        for name, limit in self.max_prefix:
            if name == family:
                return limit
        return None

    def effective_mrai(self, bgp: BgpConfig) -> float:
        """This neighbor's MinRouteAdvertisementInterval: its own, else the [bgp] default."""
        if self.mrai is not None:
            return self.mrai
        return bgp.mrai_ebgp if self.is_ebgp else bgp.mrai_ibgp


@attrs.frozen
class BgpConfig:
    """The ``[bgp]`` table: this speaker's identity, listeners and timer defaults."""

    local_as: int
    router_id: str
    listen_addresses: tuple[str, ...] = attrs.field(default=("0.0.0.0", "::"), converter=tuple)
    listen_port: int = 179
    hold_time: int = 90
    connect_retry_time: int = 120
    idle_hold_time: int = 5
    max_idle_hold_time: int = 300
    cluster_id: str = attrs.field()
    always_compare_med: bool = False
    deterministic_med: bool = False
    max_paths: int = 1
    multipath_relax: bool = False
    default_local_pref: int = 100
    mrai_ebgp: float = 0.5
    mrai_ibgp: float = 0.0
    #: Policies applied to every neighbor's routes before its own import_policy.
    import_policy: tuple[str, ...] = attrs.field(default=(), converter=tuple)
    #: Where changes made through the API are kept (`bgpd.state`); a relative
    #: path is taken relative to the config file's directory.
    state_dir: str = DEFAULT_STATE_DIR

    @cluster_id.default
    def _default_cluster_id(self) -> str:
        return self.router_id


def _family_of_prefix(prefix: str) -> str:
    return IPV6_UNICAST_NAME if ":" in prefix else IPV4_UNICAST_NAME


def _large_tuple(value: Iterable[Iterable[int]]) -> tuple[tuple[int, int, int], ...]:
    return tuple(tuple(v) for v in value)  # type: ignore[misc]


def _bytes_tuple(value: Iterable[bytes]) -> tuple[bytes, ...]:
    return tuple(bytes(v) for v in value)


@attrs.frozen
class OriginateConfig:
    """One ``[[originate]]`` table: a route this speaker announces itself.

    ``prefix`` is the normalised network text and ``family`` follows from it.
    ``next_hop`` None means our own address on each session (next-hop-self).
    Communities are stored as the wire carries them: 32-bit ints,
    ``(global, local1, local2)`` triples and 8-octet ``bytes``.
    """

    prefix: str
    family: str = attrs.field()
    next_hop: str | None = None
    origin: str = "igp"
    med: int | None = None
    local_pref: int | None = None
    communities: tuple[int, ...] = attrs.field(default=(), converter=tuple)
    large_communities: tuple[tuple[int, int, int], ...] = attrs.field(default=(), converter=_large_tuple)
    ext_communities: tuple[bytes, ...] = attrs.field(default=(), converter=_bytes_tuple)

    @family.default
    def _default_family(self) -> str:
        return _family_of_prefix(self.prefix)


@attrs.frozen
class KernelConfig:
    """The ``[kernel]`` table: best paths into a kernel routing table.

    ``table`` is the number (a name is resolved when validated); the routes
    carry ``protocol`` and ``metric``, and bgpd touches no route of another
    protocol.  ``ecmp`` installs the multipath set (``[bgp] max_paths`` > 1)
    as one route.  ``reconcile_time``: how long routes left by an earlier
    run stay at most before those bgpd no longer wants are removed (sooner
    when every peer has sent End-of-RIB).  ``export_policy``: the policy
    chain each best path meets before it goes to the kernel (empty: all go).
    """

    ipv4: bool = True
    ipv6: bool = True
    table: int = 254
    protocol: int = 186
    metric: int = 20
    ecmp: bool = True
    keep_on_stop: bool = False
    reconcile_time: float = 120.0
    export_policy: tuple[str, ...] = attrs.field(default=(), converter=tuple)


#: What a BMP collector may be sent (RFC 7854 4.6, RFC 8671, RFC 9069).
BMP_MONITORING = ("pre-policy", "post-policy", "adj-rib-out", "loc-rib")


@attrs.frozen
class BmpCollectorConfig:
    """One ``[[bmp.collector]]``: a BMP station bgpd connects to (RFC 7854 3.2).

    ``monitoring`` names the views sent (:data:`BMP_MONITORING`);
    ``statistics_interval`` seconds between Statistics Reports (0: none);
    ``buffer`` the octets queued for a slow station before its session is
    dropped and re-synced; ``retry_time`` the longest wait between connect
    attempts (the back-off doubles from 1 s up to it).
    """

    name: str
    address: str
    port: int
    monitoring: tuple[str, ...] = attrs.field(default=("pre-policy", "post-policy"), converter=tuple)
    statistics_interval: float = 60.0
    buffer: int = 16 * 1024 * 1024
    retry_time: float = 30.0


@attrs.frozen
class BmpConfig:
    """The ``[bmp]`` table: BMP collectors (RFC 7854), and what the Initiation names."""

    collectors: tuple[BmpCollectorConfig, ...] = attrs.field(default=(), converter=tuple)
    #: sysName and sysDescr of the Initiation message (RFC 7854 4.4); "" = hostname / "bgpd".
    sys_name: str = ""
    sys_descr: str = ""


#: NeighborConfig fields a running session takes over as they are: nothing
#: negotiated in the OPEN depends on them, so changing one needs no reset.
SOFT_FIELDS = frozenset({"description", "import_policy", "export_policy", "max_prefix"})


@attrs.frozen
class NeighborChanges:
    """What differs between two configs' neighbor lists, as normalised addresses.

    ``reset`` is the part of ``changed`` whose session must start again: a
    field other than the `SOFT_FIELDS` changed.
    """

    added: tuple[str, ...]
    removed: tuple[str, ...]
    changed: tuple[str, ...]
    reset: tuple[str, ...] = ()


def _lookup_address(address: str) -> str | None:
    try:
        return normalize_address(address)
    except ValueError:
        return None


@attrs.frozen
class Config:
    """The whole validated configuration."""

    bgp: BgpConfig
    neighbors: tuple[NeighborConfig, ...] = attrs.field(default=(), converter=tuple)
    originate: tuple[OriginateConfig, ...] = attrs.field(default=(), converter=tuple)
    #: ``[sets]`` and ``[policies]`` (``((name, PolicyDef), ...)`` in file order).
    sets: PolicySets = attrs.field(factory=lambda: PolicySets())
    policies: tuple[tuple[str, PolicyDef], ...] = attrs.field(default=(), converter=tuple)
    #: The document this was validated from (as tomllib returned it, copied),
    #: or None for a Config built directly.  `bgpd.state.overlay` lays the
    #: API's changes over it; it takes no part in comparisons.
    source: Mapping[str, Any] | None = attrs.field(default=None, repr=False, eq=False, hash=False)
    #: ``[api]``: the gRPC API server (off when the table is absent).
    api: ApiConfig = attrs.field(factory=lambda: ApiConfig())
    #: ``[kernel]``; None when the section is absent (nothing goes to the kernel).
    kernel: KernelConfig | None = None
    #: ``[rpki]``; None when the section is absent (no RTR cache, no validation).
    rpki: RpkiConfig | None = None
    #: ``[monitor]`` (session history, log format, metrics endpoint)
    monitor: MonitorConfig = attrs.field(factory=lambda: MonitorConfig())
    #: ``[mrt]``; None when the section is absent (no scheduled dumps)
    mrt: MrtConfig | None = None
    #: ``[bmp]``; None when the section is absent (no BMP).
    bmp: BmpConfig | None = None
    _by_address: dict[str, NeighborConfig] = attrs.field(init=False, repr=False, eq=False, hash=False)

    @_by_address.default
    def _index(self) -> dict[str, NeighborConfig]:
        return {_lookup_address(n.address) or n.address: n for n in self.neighbors}

    def neighbor(self, address: str) -> NeighborConfig | None:
        """The neighbor configured at ``address`` (any spelling of it), or None.

        IPv4-mapped IPv6 addresses find the IPv4 neighbor.
        """
        key = _lookup_address(address)
        return None if key is None else self._by_address.get(key)

    def neighbor_changes(self, new: Config) -> NeighborChanges:
        """Compare this (running) config with ``new``: neighbors added, removed, changed."""
        old_map, new_map = self._by_address, new._by_address
        changed = tuple(a for a in new_map if a in old_map and old_map[a] != new_map[a])
        return NeighborChanges(
            added=tuple(a for a in new_map if a not in old_map),
            removed=tuple(a for a in old_map if a not in new_map),
            changed=changed,
            reset=tuple(a for a in changed if _needs_reset(old_map[a], new_map[a])),
        )


def _needs_reset(old: NeighborConfig, new: NeighborConfig) -> bool:
    return any(
        getattr(old, f.name) != getattr(new, f.name)
        for f in attrs.fields(NeighborConfig)
        if f.name not in SOFT_FIELDS
    )


def _rfc8212_default(remote_as: int, local_as: int) -> tuple[str, ...]:
    return ("reject-all",) if remote_as != local_as else ("accept-all",)


# -- public entry points --------------------------------------------------------

_TOML_POSITION = re.compile(r"\(at line (\d+), column (\d+)\)")


def load_config(path: str) -> Config:
    """Read, parse and validate the TOML file at ``path``.

    Raises `ConfigError` for an unreadable file or a syntax error, and
    `ConfigErrors` for everything else found wrong.
    """
    try:
        with open(path, "rb") as f:
            raw = f.read()
    except OSError as e:
        raise ConfigError(path, f"cannot read the file: {e.strerror or e}") from None
    try:
        text = raw.decode("utf-8")  # TOML 1.0: a document is UTF-8
    except UnicodeDecodeError as e:
        raise ConfigError(path, f"not valid UTF-8 at byte {e.start}") from None
    return parse_config(text, source=path)


def parse_config(text: str, source: str = "<string>") -> Config:
    """Parse and validate TOML ``text``; ``source`` names it in syntax errors."""
    try:
        data = tomllib.loads(text)
    except tomllib.TOMLDecodeError as e:
        msg = str(e)
        m = _TOML_POSITION.search(msg)
        line, column = (int(m.group(1)), int(m.group(2))) if m else (None, None)
        raise ConfigError(source, f"TOML syntax error: {msg}", line, column) from None
    return config_from_dict(data)


def config_from_dict(d: Mapping[str, Any]) -> Config:
    """Validate an already-parsed document (as tomllib returns it).

    Raises `ConfigErrors` listing every problem found.
    """
    v = _Validator()
    config = v.config(d)
    if v.errors:
        raise ConfigErrors(v.errors)
    assert config is not None
    return attrs.evolve(config, source=copy.deepcopy(dict(d)))


# -- validation -----------------------------------------------------------------

_BARE_KEY = re.compile(r"[A-Za-z0-9_-]+")

BGP_KEYS = (
    "local_as",
    "router_id",
    "listen_addresses",
    "listen_port",
    "hold_time",
    "connect_retry_time",
    "idle_hold_time",
    "max_idle_hold_time",
    "cluster_id",
    "always_compare_med",
    "deterministic_med",
    "max_paths",
    "multipath_relax",
    "default_local_pref",
    "mrai_ebgp",
    "mrai_ibgp",
    "import_policy",
    "state_dir",
)
NEIGHBOR_KEYS = tuple(f.name for f in attrs.fields(NeighborConfig))
MAX_PREFIX_KEYS = tuple(f.name for f in attrs.fields(MaxPrefix))
# family is derived from the prefix, never written.
ORIGINATE_KEYS = tuple(f.name for f in attrs.fields(OriginateConfig) if f.name != "family")
KERNEL_KEYS = tuple(f.name for f in attrs.fields(KernelConfig))
BMP_KEYS = ("collector", "sys_name", "sys_descr")
BMP_COLLECTOR_KEYS = tuple(f.name for f in attrs.fields(BmpCollectorConfig))
TOP_KEYS = ("bgp", "neighbors", "originate", "sets", "policies", "api", "kernel", "bmp")
# bgpd.monitor's sections
TOP_KEYS += ("monitor", "mrt")
# bgpd.rpki's
TOP_KEYS += ("rpki",)

# Settings a neighbor inherits from [bgp] when it does not set them.
_INHERITED = ("local_as", "hold_time", "connect_retry_time", "idle_hold_time", "max_idle_hold_time")


class _Invalid:
    """Marks a value that failed validation (already reported)."""

    def __repr__(self) -> str:
        return "<invalid>"


INVALID: Any = _Invalid()
_REQUIRED: Any = object()


def _join(path: str, name: str) -> str:
    if not _BARE_KEY.fullmatch(name):
        name = '"' + name.replace("\\", "\\\\").replace('"', '\\"') + '"'
    return f"{path}.{name}" if path else name


def _describe(value: object) -> str:
    """Name a TOML value's type and show it, for 'got ...' in messages."""
    if isinstance(value, bool):
        return f"a boolean ({'true' if value else 'false'})"
    if isinstance(value, int):
        return f"an integer ({value})"
    if isinstance(value, float):
        return f"a float ({value!r})"
    if isinstance(value, str):
        shown = value if len(value) <= 40 else value[:37] + "..."
        return f"a string ({shown!r})"
    if isinstance(value, list):
        return "an array"
    if isinstance(value, dict):
        return "a table"
    if isinstance(value, datetime.datetime):
        return "a date-time"
    if isinstance(value, datetime.date):
        return "a date"
    if isinstance(value, datetime.time):
        return "a time"
    return f"a {type(value).__name__}"


def _int_range(lo: int, hi: int | None = None) -> tuple[str, Callable[[int], bool]]:
    if hi is None:
        return f"an integer >= {lo}", lambda n: n >= lo
    return f"an integer from {lo} to {hi}", lambda n: lo <= n <= hi


_HOLD_TIME = ("0 or an integer from 3 to 65535", lambda n: n == 0 or 3 <= n <= 65535)


def _check_as(n: int) -> str | None:
    if not 1 <= n <= MAX_AS:
        return f"must be an AS number from 1 to {MAX_AS}, got {n}"
    if n == AS_TRANS:
        return f"{AS_TRANS} is AS_TRANS (RFC 6793), a placeholder, not a real AS"
    return None


def _parse_ip(text: str) -> ipaddress.IPv4Address | ipaddress.IPv6Address | str:
    """The address, or the reason it is not one."""
    try:
        return ipaddress.ip_address(text)
    except ValueError:
        return f"must be an IPv4 or IPv6 address, got {_describe(text)}"


def _parse_network(text: str) -> ipaddress.IPv4Network | ipaddress.IPv6Network | str:
    """The network, or the reason it is not one (host bits set, no length, ...)."""
    example = "like 198.51.100.0/24 or 2001:db8:100::/48"
    if "/" not in text:
        return f"must be a network with its prefix length, {example}, got {_describe(text)}"
    try:
        return ipaddress.ip_network(text)
    except ValueError:
        pass
    try:
        loose = ipaddress.ip_network(text, strict=False)
    except ValueError:
        return f"must be an IPv4 or IPv6 network, {example}, got {_describe(text)}"
    return f"{text} has host bits set; the network is {loose}"


def _quiet_prefix(item: object) -> str | None:
    """An originate table's normalised prefix, or None when it has none (no report)."""
    if not isinstance(item, Mapping) or not isinstance(item.get("prefix"), str):
        return None
    net = _parse_network(item["prefix"])
    return None if isinstance(net, str) else str(net)


def _quiet_address(item: object) -> str | None:
    """A neighbor table's normalised address, or None when it has none (no report)."""
    if not isinstance(item, Mapping) or not isinstance(item.get("address"), str):
        return None
    return _lookup_address(item["address"])


class _Validator:
    """Walks the parsed document, collecting every error instead of stopping."""

    def __init__(self) -> None:
        self.errors: list[ConfigError] = []
        # Names neighbors and [bgp] may use, besides the built-ins ([policies]).
        self.policy_names: tuple[str, ...] = ()
        self.broken_sets: set[tuple[str, str]] = set()  # (kind, name): reported once, at the set

    def error(self, key: str, reason: str) -> Any:
        self.errors.append(ConfigError(key, reason))
        return INVALID

    # -- generic checks --

    def table(self, value: object, path: str, valid: tuple[str, ...]) -> dict[str, Any] | None:
        """Check ``value`` is a table with only ``valid`` keys; report each unknown key."""
        if not isinstance(value, Mapping):
            self.error(path, f"must be a table, got {_describe(value)}")
            return None
        for name in value:
            if name not in valid:
                hint = difflib.get_close_matches(str(name), valid, n=1)
                maybe = f" (did you mean {hint[0]!r}?)" if hint else ""
                self.error(
                    _join(path, str(name)),
                    f"unknown key{maybe}; valid keys are: {', '.join(valid)}",
                )
        return dict(value)

    def integer(
        self,
        tbl: Mapping[str, Any],
        path: str,
        name: str,
        rule: tuple[str, Callable[[int], bool]],
        default: Any = _REQUIRED,
    ) -> Any:
        key = _join(path, name)
        if name not in tbl:
            return self.error(key, "required key is missing") if default is _REQUIRED else default
        value = tbl[name]
        text, ok = rule
        # bool is an int subclass in Python, but TOML `true` is not a number.
        if not isinstance(value, int) or isinstance(value, bool):
            return self.error(key, f"must be {text}, got {_describe(value)}")
        if not ok(value):
            return self.error(key, f"must be {text}, got {value}")
        return value

    def seconds(self, tbl: Mapping[str, Any], path: str, name: str, default: Any) -> Any:
        """A duration: a TOML integer or float >= 0, stored as float."""
        if name not in tbl:
            return default
        value = tbl[name]
        text = "a number of seconds >= 0"
        if not isinstance(value, (int, float)) or isinstance(value, bool):
            return self.error(_join(path, name), f"must be {text}, got {_describe(value)}")
        # TOML has inf and nan; neither is a usable timer.
        if not math.isfinite(value) or value < 0:
            return self.error(_join(path, name), f"must be {text}, got {value!r}")
        return float(value)

    def host_address(
        self, tbl: Mapping[str, Any], path: str, name: str, version: int | None, like: str
    ) -> Any:
        """An optional unicast address, of IP ``version`` when that is known (``like`` says why)."""
        text = self.string(tbl, path, name, None)
        if not isinstance(text, str):
            return text
        key = _join(path, name)
        ip = _parse_ip(text)
        if isinstance(ip, str):
            return self.error(key, ip)
        if ip.is_unspecified or ip.is_multicast:
            return self.error(key, f"must be a unicast host address, got {ip}")
        if version is not None and ip.version != version:
            return self.error(key, f"must be an IPv{version} address{like}, got {ip}")
        if isinstance(ip, ipaddress.IPv6Address) and ip.scope_id:
            # A NEXT_HOP is carried as bare bytes; a zone cannot go on the wire.
            return self.error(key, f"a next hop cannot carry a zone, got {ip}")
        return str(ip)

    def coded_list(self, tbl: Mapping[str, Any], path: str, name: str, parse: Callable[[str], Any]) -> Any:
        """A list of strings, each turned into a value by ``parse`` (whose ValueError is the reason)."""
        items = self.string_list(tbl, path, name, [])
        if items is INVALID:
            return INVALID
        key = _join(path, name)
        result: list[Any] = []
        seen: dict[Any, int] = {}
        good = True
        for i, text in enumerate(items):
            try:
                value = parse(text)
            except ValueError as e:
                self.error(f"{key}[{i}]", str(e))
                good = False
                continue
            if value in seen:
                # "no-export" and "65535:65281" are the same community.
                self.error(f"{key}[{i}]", f"duplicate of {name}[{seen[value]}] ({text!r})")
                good = False
                continue
            seen[value] = i
            result.append(value)
        return tuple(result) if good else INVALID

    def as_number(self, tbl: Mapping[str, Any], path: str, name: str, default: Any = _REQUIRED) -> Any:
        value = self.integer(tbl, path, name, _int_range(1, MAX_AS), default)
        if isinstance(value, int) and (reason := _check_as(value)):
            return self.error(_join(path, name), reason)
        return value

    def boolean(self, tbl: Mapping[str, Any], path: str, name: str, default: bool) -> Any:
        if name not in tbl:
            return default
        value = tbl[name]
        if not isinstance(value, bool):
            return self.error(_join(path, name), f"must be true or false, got {_describe(value)}")
        return value

    def string(self, tbl: Mapping[str, Any], path: str, name: str, default: Any = _REQUIRED) -> Any:
        key = _join(path, name)
        if name not in tbl:
            return self.error(key, "required key is missing") if default is _REQUIRED else default
        value = tbl[name]
        if not isinstance(value, str):
            return self.error(key, f"must be a string, got {_describe(value)}")
        return value

    def choice(
        self, tbl: Mapping[str, Any], path: str, name: str, choices: tuple[str, ...], default: Any
    ) -> Any:
        value = self.string(tbl, path, name, default)
        if isinstance(value, str) and value not in choices:
            return self.error(_join(path, name), f"must be one of {', '.join(choices)}; got {value!r}")
        return value

    def string_list(self, tbl: Mapping[str, Any], path: str, name: str, default: Any) -> Any:
        """A list of strings; reports each non-string item by index."""
        key = _join(path, name)
        if name not in tbl:
            return default
        value = tbl[name]
        if not isinstance(value, list):
            return self.error(key, f"must be an array of strings, got {_describe(value)}")
        good = True
        for i, item in enumerate(value):
            if not isinstance(item, str):
                self.error(f"{key}[{i}]", f"must be a string, got {_describe(item)}")
                good = False
        return list(value) if good else INVALID

    def router_id(self, tbl: Mapping[str, Any], path: str, name: str, default: Any) -> Any:
        value = self.string(tbl, path, name, default)
        if not isinstance(value, str):
            return value
        try:
            ip = ipaddress.IPv4Address(value)
        except ValueError:
            return self.error(_join(path, name), f"must be an IPv4 dotted quad, got {_describe(value)}")
        if int(ip) == 0:
            return self.error(_join(path, name), "must not be 0.0.0.0: the identifier is non-zero")
        return str(ip)

    # -- the document --

    def config(self, d: object) -> Config | None:
        if not isinstance(d, Mapping):
            self.error("<document>", f"must be a table, got {_describe(d)}")
            return None
        top = self.table(d, "", TOP_KEYS)
        if top is None:
            return None
        # First, so that [bgp] and the neighbors can name the policies.
        sets, policies = _policy_section(self, top)
        if "bgp" not in top:
            self.error("bgp", "required table [bgp] is missing")
            bgp = None
        else:
            bgp = self.bgp(top["bgp"])
        neighbors = self.neighbors(top.get("neighbors", []), bgp)
        originate = self.originate_list(top.get("originate", []))
        api = ApiConfig()
        if "api" in top:
            try:
                api = api_config_from_table(top["api"])
            except ConfigError as err:
                self.errors.extend(err.errors)
        kernel = self.kernel(top["kernel"]) if "kernel" in top else None
        rpki = _rpki_section(self, top["rpki"]) if "rpki" in top else None
        bmp = self.bmp(top["bmp"]) if "bmp" in top else None
        monitor, mrt = self.monitor_sections(top)
        if bgp is None or neighbors is None or originate is None or self.errors:
            return None
        return Config(bgp=bgp, neighbors=neighbors, originate=originate, sets=sets, policies=policies,
                      api=api, kernel=kernel, rpki=rpki, bmp=bmp, monitor=monitor, mrt=mrt)

    def monitor_sections(self, top: Mapping[str, Any]) -> tuple[MonitorConfig, MrtConfig | None]:
        """``[monitor]`` and ``[mrt]`` (bgpd.monitor), their errors collected with the rest."""
        monitor, mrt = MonitorConfig(), None
        try:
            if "monitor" in top:
                monitor = monitor_config_from_table(top["monitor"])
        except ConfigError as err:
            self.errors.extend(err.errors)
        try:
            if "mrt" in top:
                mrt = mrt_config_from_table(top["mrt"])
        except ConfigError as err:
            self.errors.extend(err.errors)
        return monitor, mrt

    def kernel(self, value: object) -> KernelConfig | None:
        """``[kernel]``: every key optional."""
        path = "kernel"
        tbl = self.table(value, path, KERNEL_KEYS)
        if tbl is None:
            return None
        n_errors = len(self.errors)
        ipv4 = self.boolean(tbl, path, "ipv4", True)
        ipv6 = self.boolean(tbl, path, "ipv6", True)
        table = self.kernel_table(tbl, path)
        # 0-4 are the kernel's own (unspec, redirect, kernel, boot, static):
        # bgpd deletes routes of its protocol, so it must never be one of those.
        protocol = self.integer(tbl, path, "protocol", _int_range(5, 255), 186)
        metric = self.integer(tbl, path, "metric", _int_range(0, MAX_U32), 20)
        ecmp = self.boolean(tbl, path, "ecmp", True)
        keep = self.boolean(tbl, path, "keep_on_stop", False)
        reconcile = self.seconds(tbl, path, "reconcile_time", 120.0)
        export = self.kernel_export_policy(tbl, path)
        if len(self.errors) > n_errors:
            return None
        return KernelConfig(ipv4=ipv4, ipv6=ipv6, table=table, protocol=protocol, metric=metric,
                            ecmp=ecmp, keep_on_stop=keep, reconcile_time=reconcile,
                            export_policy=export)

    def kernel_export_policy(self, tbl: Mapping[str, Any], path: str) -> Any:
        """``[kernel] export_policy``: one policy name or a chain of them; none lets every route in."""
        if "export_policy" not in tbl:
            return ()
        if isinstance(tbl["export_policy"], str):
            items = [tbl["export_policy"]]
        else:
            items = self.string_list(tbl, path, "export_policy", INVALID)
            if items is INVALID:
                return INVALID
        return self.known_policies(_join(path, "export_policy"), items)

    def kernel_table(self, tbl: Mapping[str, Any], path: str) -> Any:
        """A routing table: a number from 1 to 2^32-1 but 255 (local), or a name iproute2 knows."""
        key = _join(path, "table")
        if "table" not in tbl:
            return 254
        value = tbl["table"]
        if isinstance(value, str):
            try:
                n = table_number(value)
            except ValueError:
                return self.error(key, f"unknown table name {value!r}: use a number, main, "
                                       "or a name from /etc/iproute2/rt_tables")
        elif isinstance(value, int) and not isinstance(value, bool):
            n = value
        else:
            return self.error(key, f"must be a table number or name, got {_describe(value)}")
        if not 1 <= n <= MAX_U32 or n == 255:
            return self.error(key, f"must be a table from 1 to {MAX_U32} other than 255 (local), got {n}")
        return n

    # -- [bmp] (RFC 7854) --

    def bmp(self, value: object) -> BmpConfig | None:
        """``[bmp]``: optional names for the Initiation, and ``[[bmp.collector]]`` tables."""
        path = "bmp"
        tbl = self.table(value, path, BMP_KEYS)
        if tbl is None:
            return None
        n_errors = len(self.errors)
        sys_name = self.string(tbl, path, "sys_name", "")
        sys_descr = self.string(tbl, path, "sys_descr", "")
        items = tbl.get("collector", [])
        collectors: list[BmpCollectorConfig] = []
        if not isinstance(items, list):
            self.error(f"{path}.collector",
                       f"must be an array of tables ([[bmp.collector]]), got {_describe(items)}")
            items = []
        names: dict[str, int] = {}
        stations: dict[tuple[str, int], int] = {}
        for i, item in enumerate(items):
            c = self.bmp_collector(item, f"{path}.collector[{i}]")
            if c is None:
                continue
            if c.name in names:
                self.error(f"{path}.collector[{i}].name",
                           f"duplicate collector name {c.name!r} (also bmp.collector[{names[c.name]}])")
            names.setdefault(c.name, i)
            where = (c.address, c.port)
            if where in stations:
                self.error(f"{path}.collector[{i}].address",
                           f"[{c.address}]:{c.port} is already bmp.collector[{stations[where]}]")
            stations.setdefault(where, i)
            collectors.append(c)
        if len(self.errors) > n_errors:
            return None
        return BmpConfig(collectors=tuple(collectors), sys_name=sys_name, sys_descr=sys_descr)

    def bmp_collector(self, value: object, path: str) -> BmpCollectorConfig | None:
        tbl = self.table(value, path, BMP_COLLECTOR_KEYS)
        if tbl is None:
            return None
        n_errors = len(self.errors)
        name = self.string(tbl, path, "name")
        if isinstance(name, str) and not name.strip():
            self.error(_join(path, "name"), "must not be empty")
        address = self.string(tbl, path, "address")
        if isinstance(address, str):
            ip = _parse_ip(address)
            if isinstance(ip, str):
                address = self.error(_join(path, "address"), ip)
            elif ip.is_unspecified or ip.is_multicast:
                address = self.error(_join(path, "address"),
                                     f"must be a unicast host address, got {ip}")
            else:
                address = str(ip)
        port = self.integer(tbl, path, "port", _int_range(1, 65535))
        monitoring = self.string_list(tbl, path, "monitoring", ["pre-policy", "post-policy"])
        if isinstance(monitoring, list):
            key = _join(path, "monitoring")
            if not monitoring:
                self.error(key, f"must name at least one of {', '.join(BMP_MONITORING)}")
            seen: set[str] = set()
            for j, kind in enumerate(monitoring):
                if kind not in BMP_MONITORING:
                    self.error(f"{key}[{j}]", f"must be one of {', '.join(BMP_MONITORING)}; got {kind!r}")
                elif kind in seen:
                    self.error(f"{key}[{j}]", f"{kind!r} is listed twice")
                seen.add(kind)
        interval = self.seconds(tbl, path, "statistics_interval", 60.0)
        if isinstance(interval, float) and 0 < interval < 1:
            self.error(_join(path, "statistics_interval"),
                       f"must be 0 (no reports) or at least 1 second, got {interval!r}")
        buffer = self.integer(tbl, path, "buffer", _int_range(65536, 2**32), 16 * 1024 * 1024)
        retry = self.seconds(tbl, path, "retry_time", 30.0)
        if isinstance(retry, float) and retry < 1:
            self.error(_join(path, "retry_time"), f"must be at least 1 second, got {retry!r}")
        if len(self.errors) > n_errors:
            return None
        return BmpCollectorConfig(name=name, address=address, port=port, monitoring=tuple(monitoring),
                                  statistics_interval=interval, buffer=buffer, retry_time=retry)

    def bgp(self, value: object) -> BgpConfig | None:
        path = "bgp"
        tbl = self.table(value, path, BGP_KEYS)
        if tbl is None:
            return None
        n_errors = len(self.errors)
        local_as = self.as_number(tbl, path, "local_as")
        router_id = self.router_id(tbl, path, "router_id", _REQUIRED)
        listen = self.listen_addresses(tbl, path)
        listen_port = self.integer(tbl, path, "listen_port", _int_range(0, 65535), 179)
        hold_time = self.integer(tbl, path, "hold_time", _HOLD_TIME, 90)
        connect_retry = self.integer(tbl, path, "connect_retry_time", _int_range(1), 120)
        idle_hold = self.integer(tbl, path, "idle_hold_time", _int_range(0), 5)
        max_idle = self.integer(tbl, path, "max_idle_hold_time", _int_range(0), 300)
        if isinstance(idle_hold, int) and isinstance(max_idle, int) and max_idle < idle_hold:
            self.error(
                "bgp.max_idle_hold_time",
                f"must be >= idle_hold_time ({idle_hold}), got {max_idle}",
            )
        cluster_id = self.router_id(tbl, path, "cluster_id", None)
        always_compare_med = self.boolean(tbl, path, "always_compare_med", False)
        deterministic_med = self.boolean(tbl, path, "deterministic_med", False)
        max_paths = self.integer(tbl, path, "max_paths", _int_range(1, MAX_PATHS), 1)
        # Meaningless while max_paths is 1, but harmless: accepted as written.
        multipath_relax = self.boolean(tbl, path, "multipath_relax", False)
        default_local_pref = self.integer(tbl, path, "default_local_pref", _int_range(0, MAX_U32), 100)
        mrai_ebgp = self.seconds(tbl, path, "mrai_ebgp", 0.5)
        mrai_ibgp = self.seconds(tbl, path, "mrai_ibgp", 0.0)
        import_policy = _global_import_policy(self, tbl, path)
        state_dir = self.state_dir(tbl, path)
        if len(self.errors) > n_errors:
            return None
        return BgpConfig(
            local_as=local_as,
            router_id=router_id,
            listen_addresses=listen,
            listen_port=listen_port,
            hold_time=hold_time,
            connect_retry_time=connect_retry,
            idle_hold_time=idle_hold,
            max_idle_hold_time=max_idle,
            cluster_id=router_id if cluster_id is None else cluster_id,
            always_compare_med=always_compare_med,
            deterministic_med=deterministic_med,
            max_paths=max_paths,
            multipath_relax=multipath_relax,
            default_local_pref=default_local_pref,
            mrai_ebgp=mrai_ebgp,
            mrai_ibgp=mrai_ibgp,
            import_policy=import_policy,
            state_dir=state_dir,
        )

    def state_dir(self, tbl: Mapping[str, Any], path: str) -> Any:
        """``[bgp] state_dir``: a directory path; whether it is usable is checked at start."""
        value = self.string(tbl, path, "state_dir", DEFAULT_STATE_DIR)
        if not isinstance(value, str):
            return value
        if not value.strip():
            return self.error(_join(path, "state_dir"), "must be a directory path, got an empty string")
        if "\0" in value:
            return self.error(_join(path, "state_dir"), "must be a directory path, got a NUL character in it")
        return value

    def listen_addresses(self, tbl: Mapping[str, Any], path: str) -> Any:
        key = _join(path, "listen_addresses")
        items = self.string_list(tbl, path, "listen_addresses", ["0.0.0.0", "::"])
        if items is INVALID:
            return INVALID
        result: list[str] = []
        seen: dict[str, int] = {}
        for i, text in enumerate(items):
            ip = _parse_ip(text)
            if isinstance(ip, str):
                self.error(f"{key}[{i}]", ip)
                continue
            norm = str(ip)
            if norm in seen:
                self.error(f"{key}[{i}]", f"duplicate address {norm} (also {key}[{seen[norm]}])")
                continue
            seen[norm] = i
            result.append(norm)
        return tuple(result) if len(result) == len(items) else INVALID

    def neighbors(self, value: object, bgp: BgpConfig | None) -> tuple[NeighborConfig, ...] | None:
        if not isinstance(value, list):
            self.error(
                "neighbors",
                f"must be an array of tables ([[neighbors]]), got {_describe(value)}",
            )
            return None
        result: list[NeighborConfig] = []
        seen: dict[str, int] = {}
        ok = True
        for i, item in enumerate(value):
            path = f"neighbors[{i}]"
            neighbor = self.neighbor(item, path, bgp)
            if neighbor is None:
                ok = False
            else:
                result.append(neighbor)
            # Checked apart from the rest, so a duplicate is reported even when
            # the neighbor has other errors too.  Invalid addresses were reported.
            address = _quiet_address(item)
            if address is None:
                continue
            if address in seen:
                self.error(
                    f"{path}.address",
                    f"duplicate neighbor {address} (also neighbors[{seen[address]}].address)",
                )
                ok = False
            else:
                seen[address] = i
        return tuple(result) if ok else None

    def neighbor_address(self, tbl: Mapping[str, Any], path: str) -> Any:
        key = _join(path, "address")
        text = self.string(tbl, path, "address")
        if text is INVALID:
            return INVALID
        ip = _parse_ip(text)
        if isinstance(ip, str):
            return self.error(key, ip)
        if ip.is_unspecified or ip.is_multicast:
            return self.error(key, f"must be a unicast host address, got {ip}")
        if isinstance(ip, ipaddress.IPv6Address):
            if ip.ipv4_mapped is not None:
                return self.error(key, f"an IPv4-mapped address; write the IPv4 address {ip.ipv4_mapped}")
            if ip.is_link_local and not ip.scope_id:
                return self.error(key, f"link-local address needs a zone, like {ip}%eth0")
        return ip

    def neighbor(self, value: object, path: str, bgp: BgpConfig | None) -> NeighborConfig | None:
        tbl = self.table(value, path, NEIGHBOR_KEYS)
        if tbl is None:
            return None
        n_errors = len(self.errors)
        # Without a valid [bgp] the inherited values are unknown (INVALID): still
        # check what the neighbor sets itself, but build no record.
        inherit = {name: getattr(bgp, name) if bgp is not None else INVALID for name in _INHERITED}

        ip = self.neighbor_address(tbl, path)
        remote_as = self.as_number(tbl, path, "remote_as")
        local_as = self.as_number(tbl, path, "local_as", inherit["local_as"])
        description = self.string(tbl, path, "description", None)
        enabled = self.boolean(tbl, path, "enabled", True)
        passive = self.boolean(tbl, path, "passive", False)
        local_address = self.local_address(tbl, path, ip)
        port = self.integer(tbl, path, "port", _int_range(1, 65535), 179)
        hold_time = self.integer(tbl, path, "hold_time", _HOLD_TIME, inherit["hold_time"])
        connect_retry = self.integer(
            tbl, path, "connect_retry_time", _int_range(1), inherit["connect_retry_time"]
        )
        idle_hold = self.integer(tbl, path, "idle_hold_time", _int_range(0), inherit["idle_hold_time"])
        max_idle = self.integer(tbl, path, "max_idle_hold_time", _int_range(0), inherit["max_idle_hold_time"])
        if (
            ("idle_hold_time" in tbl or "max_idle_hold_time" in tbl)
            and isinstance(idle_hold, int)
            and isinstance(max_idle, int)
            and max_idle < idle_hold
        ):
            where = "" if "max_idle_hold_time" in tbl else " (from bgp.max_idle_hold_time)"
            self.error(
                f"{path}.max_idle_hold_time",
                f"must be >= idle_hold_time ({idle_hold}), got {max_idle}{where}",
            )
        delay_open = self.integer(tbl, path, "delay_open_time", _int_range(0, MAX_DELAY_OPEN_TIME), 0)
        families = self.families(tbl, path, ip)
        md5 = self.md5_password(tbl, path)
        ttl_security = self.integer(tbl, path, "ttl_security", _int_range(1, 254), None)
        max_prefix = self.max_prefix(tbl, path, families)
        ebgp: bool | None = None
        if isinstance(remote_as, int) and isinstance(local_as, int):
            ebgp = remote_as != local_as
        import_policy = self.policy(tbl, path, "import_policy", ebgp)
        export_policy = self.policy(tbl, path, "export_policy", ebgp)
        rr_client = self.boolean(tbl, path, "route_reflector_client", False)
        rs_client = self.boolean(tbl, path, "route_server_client", False)
        next_hop_self = self.boolean(tbl, path, "next_hop_self", False)
        role = self.choice(tbl, path, "role", ROLES, None)
        strict_role = self.boolean(tbl, path, "strict_role", False)
        add_path = self.choice(tbl, path, "add_path", ADD_PATH_MODES, "off")
        graceful_restart = self.boolean(tbl, path, "graceful_restart", True)
        gr_time = self.integer(tbl, path, "graceful_restart_time", _int_range(0, MAX_RESTART_TIME), 120)
        extended_message = self.boolean(tbl, path, "extended_message", True)
        extended_next_hop = self.boolean(tbl, path, "extended_next_hop", False)
        if extended_next_hop is True and isinstance(families, tuple) and (
                IPV4_UNICAST_NAME not in families):
            self.error(f"{path}.extended_next_hop",
                       "extended next hop (RFC 8950) carries IPv4 unicast routes: "
                       f"needs {IPV4_UNICAST_NAME!r} in families")
        route_refresh = self.boolean(tbl, path, "route_refresh", True)
        allowas_in = self.integer(tbl, path, "allowas_in", _int_range(0, MAX_ALLOWAS_IN), 0)
        soft_reconfiguration = self.boolean(tbl, path, "soft_reconfiguration_inbound", False)
        mrai = self.seconds(tbl, path, "mrai", None)
        next_hop_ipv4 = self.host_address(tbl, path, "next_hop_ipv4", 4, "")
        next_hop_ipv6 = self.host_address(tbl, path, "next_hop_ipv6", 6, "")

        # Cross-field rules that depend on iBGP vs eBGP.
        if ebgp is not None:
            if ebgp and rr_client is True:
                self.error(
                    f"{path}.route_reflector_client",
                    f"route reflection is for iBGP only (RFC 4456); remote_as {remote_as} "
                    f"differs from local_as {local_as}",
                )
            if not ebgp and rs_client is True:
                self.error(
                    f"{path}.route_server_client",
                    f"a route server serves eBGP peers only (RFC 7947); remote_as "
                    f"equals local_as ({local_as})",
                )
            if not ebgp and isinstance(role, str):
                self.error(
                    f"{path}.role",
                    f"roles are for eBGP sessions only (RFC 9234); remote_as equals local_as ({local_as})",
                )
        if strict_role is True and role is None:
            self.error(f"{path}.strict_role", "strict_role = true needs a role")

        if len(self.errors) > n_errors or any(v is INVALID for v in inherit.values()):
            return None
        return NeighborConfig(
            address=normalize_address(str(ip)),
            remote_as=remote_as,
            local_as=local_as,
            description=description,
            enabled=enabled,
            passive=passive,
            local_address=local_address,
            port=port,
            hold_time=hold_time,
            connect_retry_time=connect_retry,
            idle_hold_time=idle_hold,
            max_idle_hold_time=max_idle,
            delay_open_time=delay_open,
            families=families,
            md5_password=md5,
            ttl_security=ttl_security,
            max_prefix=max_prefix,
            import_policy=import_policy,
            export_policy=export_policy,
            route_reflector_client=rr_client,
            route_server_client=rs_client,
            next_hop_self=next_hop_self,
            role=role,
            strict_role=strict_role,
            add_path=add_path,
            graceful_restart=graceful_restart,
            graceful_restart_time=gr_time,
            extended_message=extended_message,
            extended_next_hop=extended_next_hop,
            route_refresh=route_refresh,
            allowas_in=allowas_in,
            soft_reconfiguration_inbound=soft_reconfiguration,
            mrai=mrai,
            next_hop_ipv4=next_hop_ipv4,
            next_hop_ipv6=next_hop_ipv6,
        )

    def local_address(self, tbl: Mapping[str, Any], path: str, peer_ip: Any) -> Any:
        text = self.string(tbl, path, "local_address", None)
        if not isinstance(text, str):
            return text
        key = _join(path, "local_address")
        ip = _parse_ip(text)
        if isinstance(ip, str):
            return self.error(key, ip)
        if ip.is_unspecified or ip.is_multicast:
            return self.error(key, f"must be a unicast host address, got {ip}")
        if peer_ip is not INVALID and ip.version != peer_ip.version:
            return self.error(
                key,
                f"must be an IPv{peer_ip.version} address like the neighbor address {peer_ip}, got {ip}",
            )
        return str(ip)

    def families(self, tbl: Mapping[str, Any], path: str, peer_ip: Any) -> Any:
        key = _join(path, "families")
        if "families" not in tbl:
            if peer_ip is INVALID:
                return INVALID
            return (IPV6_UNICAST_NAME,) if peer_ip.version == 6 else (IPV4_UNICAST_NAME,)
        items = self.string_list(tbl, path, "families", INVALID)
        if items is INVALID:
            return INVALID
        if not items:
            return self.error(key, f"must list at least one of {', '.join(FAMILIES)}")
        good = True
        for i, name in enumerate(items):
            if name not in FAMILIES:
                self.error(f"{key}[{i}]", f"unknown family {name!r}; valid: {', '.join(FAMILIES)}")
                good = False
            elif name in items[:i]:
                self.error(f"{key}[{i}]", f"duplicate family {name!r}")
                good = False
        # ipv6-unicast over an IPv4 session (and the reverse) is fine: RFC 4760
        # carries any family over any transport.
        return tuple(items) if good else INVALID

    def md5_password(self, tbl: Mapping[str, Any], path: str) -> Any:
        value = self.string(tbl, path, "md5_password", None)
        if isinstance(value, str):
            size = len(value.encode("utf-8"))
            if not 1 <= size <= TCP_MD5SIG_MAXKEYLEN:
                # Never echo the secret.
                return self.error(
                    _join(path, "md5_password"),
                    f"must be 1 to {TCP_MD5SIG_MAXKEYLEN} bytes long, got {size} bytes",
                )
        return value

    def max_prefix(self, tbl: Mapping[str, Any], path: str, families: Any) -> Any:
        key = _join(path, "max_prefix")
        if "max_prefix" not in tbl:
            return ()
        outer = self.table(tbl["max_prefix"], key, FAMILIES)
        if outer is None:
            return INVALID
        result: list[tuple[str, MaxPrefix]] = []
        good = True
        for family, value in outer.items():
            if family not in FAMILIES:
                good = False  # reported by table() as an unknown key
                continue
            fpath = _join(key, family)
            if families is not INVALID and family not in families:
                self.error(
                    fpath,
                    f"family {family} is not in this neighbor's families ({', '.join(families)})",
                )
                good = False
            inner = self.table(value, fpath, MAX_PREFIX_KEYS)
            if inner is None:
                good = False
                continue
            n_errors = len(self.errors)
            limit = self.integer(inner, fpath, "limit", _int_range(1))
            warning = self.integer(inner, fpath, "warning_percent", _int_range(1, 100), 90)
            restart = self.integer(inner, fpath, "restart_time", _int_range(0), 0)
            if len(self.errors) > n_errors:
                good = False
                continue
            result.append((family, MaxPrefix(limit, warning, restart)))
        return tuple(result) if good else INVALID

    def policy(self, tbl: Mapping[str, Any], path: str, name: str, ebgp: bool | None) -> Any:
        key = _join(path, name)
        if name not in tbl:
            if ebgp is None:
                return INVALID
            # RFC 8212: nothing in or out of an eBGP session without a policy.
            return ("reject-all",) if ebgp else ("accept-all",)
        items = self.string_list(tbl, path, name, INVALID)
        if items is INVALID:
            return INVALID
        if not items:
            return self.error(key, "must name at least one policy; leave the key out for the default")
        return self.known_policies(key, items)

    def known_policies(self, key: str, items: list) -> Any:
        """``items`` as a tuple when each names a built-in or configured policy, else INVALID
        (each unknown one an error at ``key[i]``)."""
        good = True
        for i, policy in enumerate(items):
            if policy not in BUILTIN_POLICIES and policy not in self.policy_names:
                self.error(
                    f"{key}[{i}]",
                    f"unknown policy {policy!r}; defined policies: "
                    f"{', '.join(BUILTIN_POLICIES + self.policy_names)}",
                )
                good = False
        return tuple(items) if good else INVALID

    # -- [[originate]] --

    def originate_list(self, value: object) -> tuple[OriginateConfig, ...] | None:
        if not isinstance(value, list):
            self.error(
                "originate",
                f"must be an array of tables ([[originate]]), got {_describe(value)}",
            )
            return None
        result: list[OriginateConfig] = []
        seen: dict[str, int] = {}
        ok = True
        for i, item in enumerate(value):
            path = f"originate[{i}]"
            route = self.originate(item, path)
            if route is None:
                ok = False
            else:
                result.append(route)
            # As for neighbors: reported even when the table has other errors.
            prefix = _quiet_prefix(item)
            if prefix is None:
                continue
            if prefix in seen:
                self.error(
                    f"{path}.prefix",
                    f"duplicate prefix {prefix} (also originate[{seen[prefix]}].prefix)",
                )
                ok = False
            else:
                seen[prefix] = i
        return tuple(result) if ok else None

    def originate(self, value: object, path: str) -> OriginateConfig | None:
        tbl = self.table(value, path, ORIGINATE_KEYS)
        if tbl is None:
            return None
        n_errors = len(self.errors)
        net = self.string(tbl, path, "prefix")
        if isinstance(net, str):
            parsed = _parse_network(net)
            net = self.error(_join(path, "prefix"), parsed) if isinstance(parsed, str) else parsed
        if net is INVALID:
            version, like = None, ""
        else:
            version, like = net.version, f" like the prefix {net}"
        next_hop = self.host_address(tbl, path, "next_hop", version, like)
        origin = self.choice(tbl, path, "origin", ORIGINS, "igp")
        med = self.integer(tbl, path, "med", _int_range(0, MAX_U32), None)
        local_pref = self.integer(tbl, path, "local_pref", _int_range(0, MAX_U32), None)
        communities = self.coded_list(tbl, path, "communities", parse_community)
        large = self.coded_list(tbl, path, "large_communities", parse_large_community)
        ext = self.coded_list(tbl, path, "ext_communities", parse_ext_community)
        if len(self.errors) > n_errors:
            return None
        prefix = str(net)
        return OriginateConfig(
            prefix=prefix,
            family=_family_of_prefix(prefix),
            next_hop=next_hop,
            origin=origin,
            med=med,
            local_pref=local_pref,
            communities=communities,
            large_communities=large,
            ext_communities=ext,
        )


# -- [sets] and [policies] (route policy, RFC 4271 section 9.1.1 / 9.1.3) ----------
#
# The records are frozen and compare by value, so a reload can tell which
# policies changed; bgpd.policy.engine compiles them (it reads them by
# attribute only: bgpd.policy may not import the config layer, which the
# session layer imports).  Values are in wire form: prefixes as PrefixEntry
# with bgpd.wire.nlri keys, communities as 32-bit ints (RFC 1997),
# (global, local1, local2) (RFC 8092) and 8 octets (RFC 4360); a wildcard
# part of a community pattern is None.


@attrs.frozen
class Range:
    """An integer range; ``None`` is open on that side (``eq`` is ``ge == le``)."""

    ge: int | None = None
    le: int | None = None

    def __contains__(self, value: object) -> bool:
        if not isinstance(value, int):
            return False
        return (self.ge is None or value >= self.ge) and (self.le is None or value <= self.le)


@attrs.frozen
class PrefixEntry:
    """``key`` (of family ``afi``) and every more-specific of length ``ge`` to ``le``."""

    afi: int
    key: bytes
    ge: int
    le: int


@attrs.frozen
class PrefixSet:
    name: str
    entries: tuple[PrefixEntry, ...] = attrs.field(converter=tuple)


@attrs.frozen
class AsPathSet:
    """AS path members; the set matches a path when any member does."""

    name: str
    regex: tuple[str, ...] = attrs.field(default=(), converter=tuple)
    origin_as: tuple[int, ...] = attrs.field(default=(), converter=tuple)
    neighbor_as: tuple[int, ...] = attrs.field(default=(), converter=tuple)
    contains_as: tuple[int, ...] = attrs.field(default=(), converter=tuple)
    length: Range | None = None
    as_set: bool = False

    @property
    def n_members(self) -> int:
        return (
            len(self.regex) + len(self.origin_as) + len(self.neighbor_as) + len(self.contains_as)
            + (self.length is not None) + self.as_set
        )


@attrs.frozen
class CommunitySet:
    """``kind`` is ``community``, ``large_community`` or ``ext_community``.

    ``members`` are exact values or patterns: a standard pattern is
    ``(high, low)``, a large one ``(g, l1, l2)`` (``None`` parts match any),
    an extended pattern ``(leading octets,)``: the octets before a ``*`` value.
    """

    name: str
    kind: str
    members: tuple = attrs.field(converter=tuple)


@attrs.frozen
class AddressSet:
    """Next-hop or neighbor addresses: ``(afi, key)`` prefixes (a host is a /32 or /128)."""

    name: str
    kind: str  # "next_hop" or "neighbor"
    entries: tuple[PrefixEntry, ...] = attrs.field(converter=tuple)


@attrs.frozen
class SetRef:
    """A condition on a named set, with GoBGP's match options."""

    name: str
    mode: str = "any"


@attrs.frozen
class PolicySets:
    """Every ``[sets.KIND.NAME]``, as ``((name, set), ...)`` per kind, sorted by name."""

    prefix: tuple[tuple[str, PrefixSet], ...] = ()
    as_path: tuple[tuple[str, AsPathSet], ...] = ()
    community: tuple[tuple[str, CommunitySet], ...] = ()
    large_community: tuple[tuple[str, CommunitySet], ...] = ()
    ext_community: tuple[tuple[str, CommunitySet], ...] = ()
    next_hop: tuple[tuple[str, AddressSet], ...] = ()
    neighbor: tuple[tuple[str, AddressSet], ...] = ()

    def lookup(self, kind: str, name: str) -> object | None:
        for n, s in getattr(self, kind):
            if n == name:
                return s
        return None


@attrs.frozen
class Term:
    """Conditions (all must hold) and actions (applied in order), then ``result``.

    ``conditions`` and ``actions`` are ``((key, value), ...)`` in the order
    written; the keys are those of the README's ``match`` / ``action`` tables.
    """

    name: str
    conditions: tuple[tuple[str, object], ...] = ()
    actions: tuple[tuple[str, object], ...] = ()
    result: str = "continue"


@attrs.frozen
class PolicyDef:
    """One ``[policies.NAME]``: terms in order and the ``default`` when none decides."""

    name: str
    terms: tuple[Term, ...] = attrs.field(default=(), converter=tuple)
    default: str = "reject"

#
# Module-level functions over the validator, so that this part stays apart from
# the rest.  Values are stored in wire form.

SET_KINDS = ("prefix", "as_path", "community", "large_community", "ext_community", "next_hop", "neighbor")
_SET_KEYS = {
    "prefix": ("prefixes",),
    "as_path": ("regex", "origin_as", "neighbor_as", "contains_as", "length", "as_set"),
    "community": ("members",),
    "large_community": ("members",),
    "ext_community": ("members",),
    "next_hop": ("prefixes",),
    "neighbor": ("addresses",),
}
POLICY_KEYS = ("default", "terms")
TERM_KEYS = ("name", "match", "action")
ROUTE_TYPES = ("ebgp", "ibgp", "local")
RPKI_STATES = ("valid", "invalid", "not-found")  # RFC 6811 section 2
ASPA_STATES = ("valid", "invalid", "unknown")  # draft-ietf-sidrops-aspa-verification
# match key -> the set kind it names
_SET_CONDITIONS = {
    "prefix_set": "prefix",
    "as_path_set": "as_path",
    "community_set": "community",
    "large_community_set": "large_community",
    "ext_community_set": "ext_community",
    "next_hop_set": "next_hop",
    "neighbor_set": "neighbor",
}
_RANGE_CONDITIONS = ("med", "local_pref", "prefix_length", "as_path_length")
MATCH_KEYS = tuple(_SET_CONDITIONS) + _RANGE_CONDITIONS + (
    "family", "peer_address", "peer_as", "route_type", "origin", "first_as_is_peer", "rpki",
    "aspa",
)
_COMMUNITY_ACTIONS = {
    "communities": ("community", parse_community),
    "large_communities": ("large_community", parse_large_community),
    "ext_communities": ("ext_community", parse_ext_community),
}
ACTION_KEYS = ("accept", "reject", "continue") + tuple(
    f"{verb}{field}" for field in _COMMUNITY_ACTIONS for verb in ("", "add_", "remove_", "clear_")
) + ("local_pref", "med", "med_add", "med_subtract", "prepend", "next_hop", "origin")
#: Actions only the kernel export policy ([kernel] export_policy) acts on.
ACTION_KEYS += ("kernel_source",)
_PREFIX_RANGE = re.compile(r"(\S+)(?:\s+ge\s+([0-9]{1,3}))?(?:\s+le\s+([0-9]{1,3}))?")
_MAX_PREPEND = 32


def _policy_section(v: _Validator, top: Mapping[str, Any]) -> tuple[PolicySets, tuple]:
    """Validate ``[sets]`` and ``[policies]``; record the policy names for later checks."""
    sets = _policy_sets(v, top.get("sets", {}))
    policies = _policies(v, top.get("policies", {}), sets)
    return sets, policies


def _policy_sets(v: _Validator, value: object) -> PolicySets:
    tbl = v.table(value, "sets", SET_KINDS)
    if tbl is None:
        return PolicySets()
    found: dict[str, list] = {}
    for kind in SET_KINDS:
        if kind not in tbl:
            continue
        path = _join("sets", kind)
        named = v.table(tbl[kind], path, tuple(tbl[kind]) if isinstance(tbl[kind], Mapping) else ())
        if named is None:
            continue
        items = []
        for name, body in named.items():
            built = _one_set(v, kind, name, body, _join(path, name))
            if built is not None:
                items.append((name, built))
            else:
                v.broken_sets.add((kind, name))
        found[kind] = sorted(items, key=lambda pair: pair[0])
    return PolicySets(**{k: tuple(items) for k, items in found.items()})


def _one_set(v: _Validator, kind: str, name: str, body: object, path: str) -> Any:
    n_errors = len(v.errors)
    tbl = v.table(body, path, _SET_KEYS[kind])
    if tbl is None:
        return None
    if kind == "prefix":
        entries = _prefix_entries(v, tbl, path, "prefixes", ranges=True)
        result: Any = PrefixSet(name, entries or ())
    elif kind in ("next_hop", "neighbor"):
        entries = _prefix_entries(v, tbl, path, _SET_KEYS[kind][0], ranges=False)
        result = AddressSet(name, kind, entries or ())
    elif kind == "as_path":
        result = _as_path_set(v, tbl, path, name)
    else:
        result = CommunitySet(name, kind, _community_members(v, tbl, path, kind))
    if len(v.errors) > n_errors:
        return None
    empty = not (result.n_members if kind == "as_path" else (getattr(result, "entries", None) or
                                                            getattr(result, "members", None)))
    if empty:
        v.error(path, f"a {kind} set needs at least one member; valid keys are: {', '.join(_SET_KEYS[kind])}")
        return None
    return result


def _prefix_entries(v: _Validator, tbl: Mapping[str, Any], path: str, name: str, ranges: bool) -> Any:
    items = v.string_list(tbl, path, name, [])
    if items is INVALID:
        return None
    key = _join(path, name)
    out = []
    for i, text in enumerate(items):
        m = _PREFIX_RANGE.fullmatch(text.strip()) if ranges else None
        net_text = m.group(1) if m else text
        if not ranges and "/" not in net_text:
            # A bare address is a host: the /32 or /128 containing just it.
            ip = _parse_ip(net_text)
            if isinstance(ip, str):
                v.error(f"{key}[{i}]", ip)
                continue
            net_text = f"{ip}/{ip.max_prefixlen}"
        if ranges and m is None:
            v.error(f"{key}[{i}]", f"must be PREFIX [ge N] [le N], like \"10.0.0.0/8 le 32\", got {text!r}")
            continue
        net = _parse_network(net_text)
        if isinstance(net, str):
            v.error(f"{key}[{i}]", net)
            continue
        plen, top = net.prefixlen, net.max_prefixlen
        ge = int(m.group(2)) if m and m.group(2) else None
        le = int(m.group(3)) if m and m.group(3) else None
        if ge is None and le is None:
            lo, hi = plen, plen
        else:
            lo = plen if ge is None else ge
            hi = top if le is None else le
        if not plen <= lo <= hi <= top:
            v.error(
                f"{key}[{i}]",
                f"lengths must satisfy {plen} <= ge <= le <= {top} for {net}, got ge {lo} le {hi}",
            )
            continue
        afi = 1 if net.version == 4 else 2
        nbytes = (plen + 7) >> 3
        wire = bytes((plen,)) + net.network_address.packed[:nbytes]
        out.append(PrefixEntry(afi, wire, lo, hi))
    return tuple(out)


def _asn_list(v: _Validator, tbl: Mapping[str, Any], path: str, name: str) -> Any:
    if name not in tbl:
        return ()
    value = tbl[name]
    values = value if isinstance(value, list) else [value]
    key = _join(path, name)
    out = []
    for i, n in enumerate(values):
        where = f"{key}[{i}]" if isinstance(value, list) else key
        if not isinstance(n, int) or isinstance(n, bool) or not 0 <= n <= MAX_AS:
            v.error(where, f"must be an AS number from 0 to {MAX_AS}, got {_describe(n)}")
            continue
        out.append(n)
    return tuple(out) if len(out) == len(values) else INVALID


def _range(v: _Validator, tbl: Mapping[str, Any], path: str, name: str, hi: int) -> Any:
    """An integer (exact) or a table of ``eq`` / ``ge`` / ``le``."""
    key = _join(path, name)
    value = tbl[name]
    rule = _int_range(0, hi)
    if isinstance(value, int) and not isinstance(value, bool):
        n = v.integer(tbl, path, name, rule)
        return INVALID if n is INVALID else Range(n, n)
    inner = v.table(value, key, ("eq", "ge", "le"))
    if inner is None:
        return INVALID
    if not inner:
        return v.error(key, "needs eq, ge or le")
    n_errors = len(v.errors)
    eq = v.integer(inner, key, "eq", rule, None)
    ge = v.integer(inner, key, "ge", rule, None)
    le = v.integer(inner, key, "le", rule, None)
    if len(v.errors) > n_errors:
        return INVALID
    if eq is not None:
        if ge is not None or le is not None:
            return v.error(key, "eq cannot be combined with ge or le")
        return Range(eq, eq)
    if ge is not None and le is not None and ge > le:
        return v.error(key, f"ge ({ge}) must not be greater than le ({le})")
    return Range(ge, le)


def _as_path_set(v: _Validator, tbl: Mapping[str, Any], path: str, name: str) -> AsPathSet:
    regexes = v.string_list(tbl, path, "regex", [])
    good = []
    if regexes is not INVALID:
        for i, text in enumerate(regexes):
            try:
                re.compile(text)
            except re.error as e:
                v.error(f"{_join(path, 'regex')}[{i}]", f"bad regular expression {text!r}: {e}")
                continue
            good.append(text)
    origin = _asn_list(v, tbl, path, "origin_as")
    neighbor = _asn_list(v, tbl, path, "neighbor_as")
    contains = _asn_list(v, tbl, path, "contains_as")
    length = _range(v, tbl, path, "length", 1000) if "length" in tbl else None
    as_set = v.boolean(tbl, path, "as_set", False)
    return AsPathSet(
        name,
        regex=good,
        origin_as=origin if origin is not INVALID else (),
        neighbor_as=neighbor if neighbor is not INVALID else (),
        contains_as=contains if contains is not INVALID else (),
        length=None if length is INVALID else length,
        as_set=as_set is True,
    )


def _community_pattern(kind: str, text: str) -> Any:
    """A member: an exact value (the wire form), or a pattern with ``*`` parts (ValueError if bad)."""
    if "*" not in text:
        return {"community": parse_community, "large_community": parse_large_community,
                "ext_community": parse_ext_community}[kind](text)
    parts = text.split(":")
    if kind == "ext_community":
        if len(parts) != 3 or parts[2] != "*" or "*" in parts[0] + parts[1]:
            raise ValueError(
                f"bad extended community pattern {text!r}: only the value may be *, as rt:65000:*"
            )
        exact = parse_ext_community(f"{parts[0]}:{parts[1]}:0")
        # The value is the last 4 octets after a 2-octet AS, else the last 2.
        return (exact[:4] if exact[0] == 0x00 else exact[:6],)
    want, limit = (2, 0xFFFF) if kind == "community" else (3, MAX_U32)
    what = "ASN:VALUE" if kind == "community" else "GLOBAL:LOCAL1:LOCAL2"
    if len(parts) != want:
        raise ValueError(f"bad pattern {text!r}: expected {what}, each a number or *")
    out = []
    for part in parts:
        if part == "*":
            out.append(None)
        elif re.fullmatch(r"[0-9]{1,10}", part) and int(part) <= limit:
            out.append(int(part))
        else:
            raise ValueError(f"bad pattern {text!r}: each part must be * or a number from 0 to {limit}")
    return tuple(out)


def _community_members(v: _Validator, tbl: Mapping[str, Any], path: str, kind: str) -> tuple:
    # Not coded_list: a set may list one value twice ("65535:666" and its name
    # "blackhole", as the issue's example does); membership is what counts.
    items = v.string_list(tbl, path, "members", [])
    if items is INVALID:
        return ()
    key = _join(path, "members")
    out: dict[Any, None] = {}
    for i, text in enumerate(items):
        try:
            out[_community_pattern(kind, text)] = None
        except ValueError as e:
            v.error(f"{key}[{i}]", str(e))
    return tuple(out)


def _set_ref(v: _Validator, value: object, key: str, kind: str, sets: PolicySets) -> Any:
    if isinstance(value, str):
        name, mode = value, "any"
    else:
        inner = v.table(value, key, ("set", "match"))
        if inner is None:
            return INVALID
        name = v.string(inner, key, "set")
        mode = v.choice(inner, key, "match", ("any", "all", "invert"), "any")
        if name is INVALID or mode is INVALID:
            return INVALID
        if mode == "all" and kind in ("prefix", "next_hop", "neighbor"):
            return v.error(_join(key, "match"), f"a {kind} set matches any or invert, not all")
    defined = [n for n, _ in getattr(sets, kind)]
    if (kind, name) in v.broken_sets:
        return INVALID  # its own error was reported
    if name not in defined:
        listed = ", ".join(defined) if defined else "none"
        return v.error(key, f"unknown {kind} set {name!r}; defined {kind} sets: {listed}")
    return SetRef(name, mode)


def _choices(v: _Validator, value: object, key: str, choices: tuple[str, ...]) -> Any:
    values = value if isinstance(value, list) else [value]
    good = True
    for i, item in enumerate(values):
        where = f"{key}[{i}]" if isinstance(value, list) else key
        if item not in choices:
            v.error(where, f"must be one of {', '.join(choices)}; got {_describe(item)}")
            good = False
    if not values:
        return v.error(key, f"must list at least one of {', '.join(choices)}")
    return tuple(values) if good else INVALID


def _condition_value(v: _Validator, name: str, tbl: Mapping[str, Any], path: str, sets: PolicySets) -> Any:
    key = _join(path, name)
    value = tbl[name]
    if name in _SET_CONDITIONS:
        return _set_ref(v, value, key, _SET_CONDITIONS[name], sets)
    if name in _RANGE_CONDITIONS:
        hi = {"prefix_length": 128, "as_path_length": 1000}.get(name, MAX_U32)
        return _range(v, tbl, path, name, hi)
    if name == "family":
        names = _choices(v, value, key, FAMILIES)
        return INVALID if names is INVALID else tuple(FAMILIES_BY_NAME[n] for n in names)
    if name == "route_type":
        return _choices(v, value, key, ROUTE_TYPES)
    if name == "rpki":
        return _choices(v, value, key, RPKI_STATES)
    if name == "aspa":
        return _choices(v, value, key, ASPA_STATES)
    if name == "origin":
        names = _choices(v, value, key, ORIGINS)
        return INVALID if names is INVALID else tuple(ORIGINS.index(n) for n in names)
    if name == "peer_as":
        return _asn_list(v, tbl, path, name)
    if name == "first_as_is_peer":
        return v.boolean(tbl, path, name, False)
    if name == "peer_address":
        values = value if isinstance(value, list) else [value]
        out = []
        for i, text in enumerate(values):
            where = f"{key}[{i}]" if isinstance(value, list) else key
            ip = _parse_ip(text) if isinstance(text, str) else f"must be an address, got {_describe(text)}"
            if isinstance(ip, str):
                v.error(where, ip)
                continue
            out.append(str(ip))
        return tuple(out) if len(out) == len(values) and out else INVALID
    raise AssertionError(name)


def _actions(v: _Validator, value: object, path: str, sets: PolicySets) -> tuple[tuple, str] | None:
    if isinstance(value, str):
        if value not in ("accept", "reject", "continue"):
            v.error(path, f"must be accept, reject, continue or a table of actions; got {value!r}")
            return None
        return (), value
    tbl = v.table(value, path, ACTION_KEYS)
    if tbl is None:
        return None
    n_errors = len(v.errors)
    result = "continue"
    decided = []
    actions: list[tuple[str, object]] = []
    # In the order written: several actions apply in that order (TOML tables keep it).
    for name in tbl:
        if name not in ACTION_KEYS:
            continue
        key = _join(path, name)
        if name in ("accept", "reject", "continue"):
            if v.boolean(tbl, path, name, False) is not True:
                if tbl[name] is False:
                    v.error(key, "write only the one that applies, as true")
                continue
            decided.append(name)
            result = name
            continue
        base = name.split("_", 1)[1] if name.startswith(("add_", "remove_", "clear_")) else name
        if base in _COMMUNITY_ACTIONS:
            kind, parse = _COMMUNITY_ACTIONS[base]
            if name.startswith("remove_"):
                ref = _set_ref(v, tbl[name], key, kind, sets)
                if isinstance(ref, SetRef):
                    actions.append((name, ref.name))
            elif name.startswith("clear_"):
                if v.boolean(tbl, path, name, False) is not True:
                    v.error(key, "must be true (leave it out to keep them)")
                else:
                    actions.append((name, True))
            else:
                values = v.coded_list(tbl, path, name, parse)
                if values is not INVALID:
                    actions.append((name, values))
        elif name in ("local_pref", "med", "med_add", "med_subtract"):
            n = v.integer(tbl, path, name, _int_range(0, MAX_U32))
            if n is not INVALID:
                actions.append((name, n))
        elif name == "origin":
            origin = v.choice(tbl, path, name, ORIGINS, None)
            if isinstance(origin, str):
                actions.append((name, ORIGINS.index(origin)))
        elif name == "next_hop":
            text = v.string(tbl, path, name)
            if text == "self":
                actions.append((name, "self"))
            elif isinstance(text, str):
                nh = v.host_address(tbl, path, name, None, "")
                if isinstance(nh, str):
                    actions.append((name, nh))
        elif name == "kernel_source":
            src = v.host_address(tbl, path, name, None, "")
            if isinstance(src, str):
                actions.append((name, src))
        elif name == "prepend":
            item = tbl[name]
            if isinstance(item, Mapping):
                inner = v.table(item, key, ("as", "count"))
                if inner is None:
                    continue
                asn = v.as_number(inner, key, "as", None)
                count = v.integer(inner, key, "count", _int_range(1, _MAX_PREPEND), 1)
                if asn is not INVALID and count is not INVALID:
                    actions.append((name, (asn, count)))
            else:
                count = v.integer(tbl, path, name, (f"an integer from 1 to {_MAX_PREPEND} (own AS) "
                                                    "or a table {as, count}",
                                                    lambda n: 1 <= n <= _MAX_PREPEND))
                if count is not INVALID:
                    actions.append((name, (None, count)))
    if len(decided) > 1:
        v.error(path, f"only one of accept, reject, continue; got {', '.join(decided)}")
    if len(v.errors) > n_errors:
        return None
    return tuple(actions), result


def _term(v: _Validator, value: object, path: str, index: int, sets: PolicySets) -> Term | None:
    tbl = v.table(value, path, TERM_KEYS)
    if tbl is None:
        return None
    n_errors = len(v.errors)
    name = v.string(tbl, path, "name", f"term-{index}")
    conditions = []
    if "match" in tbl:
        mpath = _join(path, "match")
        match = v.table(tbl["match"], mpath, MATCH_KEYS)
        if match is not None:
            for cond in match:
                if cond in MATCH_KEYS:
                    cv = _condition_value(v, cond, match, mpath, sets)
                    if cv is not INVALID:
                        conditions.append((cond, cv))
    if "action" not in tbl:
        v.error(_join(path, "action"), "required key is missing (accept, reject, continue or a table)")
        return None
    acts = _actions(v, tbl["action"], _join(path, "action"), sets)
    if acts is None or len(v.errors) > n_errors:
        return None
    _kernel_source_family(v, conditions, acts[0], _join(path, "action"))
    if len(v.errors) > n_errors:
        return None
    return Term(name=name, conditions=tuple(conditions), actions=acts[0], result=acts[1])


def _kernel_source_family(v: _Validator, conditions: list, actions: tuple, path: str) -> None:
    """A ``kernel_source`` in a term that matches families must be of one of them.

    RTA_PREFSRC is an address of the route's own family; a term open to
    both families is checked per route instead (the other family's routes
    go in without it).
    """
    families = [value for key, value in conditions if key == "family"]
    if not families:
        return
    afis = {afi for fams in families for afi, _safi in fams}
    for key, value in actions:
        if key != "kernel_source":
            continue
        afi = 2 if ":" in value else 1
        if afi not in afis:
            v.error(_join(path, key), f"an IPv{4 if afi == 1 else 6} address in a term that matches "
                                      f"only IPv{6 if afi == 1 else 4} routes; got {value}")


def _policies(v: _Validator, value: object, sets: PolicySets) -> tuple:
    tbl = v.table(value, "policies", tuple(value) if isinstance(value, Mapping) else ())
    if tbl is None:
        return ()
    out = []
    for name, body in tbl.items():
        path = _join("policies", name)
        if name in BUILTIN_POLICIES:
            v.error(path, f"{name} is a built-in policy; choose another name")
            continue
        # Named even when broken, so neighbors that use it get no second error.
        v.policy_names = v.policy_names + (name,)
        ptbl = v.table(body, path, POLICY_KEYS)
        if ptbl is None:
            continue
        n_errors = len(v.errors)
        default = v.choice(ptbl, path, "default", ("accept", "reject"), "reject")
        terms = []
        raw = ptbl.get("terms", [])
        tpath = _join(path, "terms")
        if not isinstance(raw, list):
            v.error(tpath, f"must be an array of tables ([[{tpath}]]), got {_describe(raw)}")
            continue
        seen: dict[str, int] = {}
        for i, item in enumerate(raw):
            term = _term(v, item, f"{tpath}[{i}]", i, sets)
            if term is None:
                continue
            if term.name in seen:
                v.error(f"{tpath}[{i}].name", f"duplicate term {term.name!r} (also terms[{seen[term.name]}])")
                continue
            seen[term.name] = i
            terms.append(term)
        if len(v.errors) == n_errors:
            out.append((name, PolicyDef(name=name, terms=tuple(terms), default=default)))
    return tuple(out)


def _global_import_policy(v: _Validator, tbl: Mapping[str, Any], path: str) -> Any:
    """``[bgp] import_policy``: like a neighbor's, but empty means none, and no RFC 8212 default."""
    if "import_policy" not in tbl:
        return ()
    items = v.string_list(tbl, path, "import_policy", INVALID)
    if items is INVALID:
        return INVALID
    return v.known_policies(_join(path, "import_policy"), items)


def import_chain_names(bgp: BgpConfig, neighbor: NeighborConfig) -> tuple[str, ...]:
    """The import chain of ``neighbor``: ``[bgp] import_policy`` first, then its own."""
    return tuple(bgp.import_policy) + tuple(neighbor.import_policy)


def policy_inputs(config: Config, name: str) -> tuple:
    """What policy ``name`` behaves by: its definition and every set it names.

    Two configs give a policy the same result for every route exactly when
    these are equal, so a reload recompiles, and re-applies, only the
    policies whose inputs changed.  A built-in is its name.
    """
    definition = dict(config.policies).get(name)
    if definition is None:
        return (name,)
    used = []
    for term in definition.terms:
        for key, value in term.conditions:
            kind = _SET_CONDITIONS.get(key)
            if kind is not None:
                used.append((kind, value.name, config.sets.lookup(kind, value.name)))
        for key, value in term.actions:
            if key.startswith("remove_"):
                kind = _COMMUNITY_ACTIONS[key[len("remove_"):]][0]
                used.append((kind, value, config.sets.lookup(kind, value)))
    return (name, definition, tuple(used))


# -- the API: neighbors added at run time, and the [api] table ------------------


def neighbor_from_table(table: Mapping[str, Any], config: Config, path: str = "neighbor") -> NeighborConfig:
    """Validate one neighbor given at run time (the API) exactly as a [[neighbors]] table.

    ``config`` is the running config: it supplies the inherited [bgp] values
    and the policy names a neighbor may use.  Raises `ConfigErrors` whose keys
    start with ``path`` (``neighbor.remote_as``), so an error names the field.
    """
    v = _Validator()
    v.policy_names = tuple(name for name, _ in config.policies)
    neighbor = v.neighbor(dict(table), path, config.bgp)
    if v.errors:
        raise ConfigErrors(v.errors)
    assert neighbor is not None
    return neighbor


API_KEYS = ("enabled", "listen", "read_only", "tls_cert", "tls_key", "tls_client_ca", "socket_mode",
            "max_calls")
#: ``[api] max_calls``: calls served at once by default (each watch stream holds one)
DEFAULT_API_MAX_CALLS = 32
#: its bounds: each call may hold a thread
API_MAX_CALLS_RANGE = (1, 1024)
#: the [api] keys a SIGHUP applies; the others need a restart of bgpd
API_RELOADABLE = ("read_only",)
#: the API's Unix socket in ``[bgp] state_dir``: where it listens unless ``listen`` says otherwise
API_SOCKET_NAME = "bgpd.sock"
#: where bgpctl connects by default: that socket in the default state_dir
DEFAULT_API_LISTEN = f"unix:{DEFAULT_STATE_DIR}/{API_SOCKET_NAME}"


@attrs.frozen
class ApiConfig:
    """The ``[api]`` table: where the gRPC API listens and how it is protected."""

    #: Start the API server at all.
    enabled: bool = False
    #: ``unix:/path/to/socket`` or ``HOST:PORT`` (IPv6 as ``[::1]:50051``); "" (the
    #: default) is the socket ``API_SOCKET_NAME`` in ``[bgp] state_dir``, which
    #: only the service knows where it is (a relative state_dir follows the file).
    listen: str = ""
    #: Reject every mutating call with PERMISSION_DENIED.
    read_only: bool = False
    #: PEM server certificate and key: required to listen beyond loopback.
    tls_cert: str | None = None
    tls_key: str | None = None
    #: PEM CA bundle: when set, clients must present a certificate it signed.
    tls_client_ca: str | None = None
    #: Permission bits given to the Unix socket once bound (None: what the umask
    #: made).  Connecting needs write permission on the socket file, so a group
    #: of operators (the Debian package's ``bgpd`` group) needs 0o660.
    socket_mode: int | None = None
    #: Calls served at once; one more gets RESOURCE_EXHAUSTED (each watch stream holds one).
    max_calls: int = DEFAULT_API_MAX_CALLS

    @property
    def local_only(self) -> bool:
        """True for a Unix socket or a loopback address (no TLS needed)."""
        return not self.listen or listen_is_local(self.listen)


def split_listen(listen: str) -> tuple[str, int]:
    """``HOST:PORT`` or ``[V6]:PORT`` -> (host, port); raises ValueError naming the problem."""
    host, sep, port = listen.rpartition(":")
    if not sep or not host:
        raise ValueError(f"expected unix:PATH or HOST:PORT, got {listen!r}")
    if host.startswith("[") and host.endswith("]"):
        host = host[1:-1]
    try:
        n = int(port)
    except ValueError:
        raise ValueError(f"port must be a number, got {port!r}") from None
    if not 0 <= n <= 65535:
        raise ValueError(f"port must be 0..65535, got {n}")
    if host != "localhost":
        try:
            ipaddress.ip_address(host)
        except ValueError:
            raise ValueError(f"host must be an IP address or localhost, got {host!r}") from None
    return host, n


def listen_is_local(listen: str) -> bool:
    """Whether ``listen`` is a Unix socket or a loopback address."""
    if listen.startswith("unix:"):
        return True
    host, _ = split_listen(listen)
    return host == "localhost" or ipaddress.ip_address(host).is_loopback


def api_config_from_table(table: object, path: str = "api") -> ApiConfig:
    """Validate an ``[api]`` table; raises `ConfigErrors` naming each bad key.

    Listening beyond loopback without ``tls_cert`` and ``tls_key`` is an
    error naming the missing key: the API changes routing, so it is never
    offered in clear text off the host.
    """
    v = _Validator()
    tbl = v.table(table, path, API_KEYS)
    if tbl is None:
        raise ConfigErrors(v.errors)
    enabled = v.boolean(tbl, path, "enabled", True)
    listen = v.string(tbl, path, "listen", "")
    read_only = v.boolean(tbl, path, "read_only", False)
    tls = {name: v.string(tbl, path, name, None) for name in ("tls_cert", "tls_key", "tls_client_ca")}
    max_calls = v.integer(tbl, path, "max_calls", _int_range(*API_MAX_CALLS_RANGE), DEFAULT_API_MAX_CALLS)
    if listen == "" and "listen" in tbl:
        v.error(_join(path, "listen"), "must be unix:PATH or HOST:PORT; leave it out for the "
                f"socket {API_SOCKET_NAME} in bgp.state_dir")
    elif listen is not INVALID and listen:
        if listen.startswith("unix:"):
            if not listen[len("unix:"):]:
                v.error(_join(path, "listen"), "unix: needs a socket path, like unix:/run/bgpd/api.sock")
        else:
            try:
                local = listen_is_local(listen)
            except ValueError as e:
                v.error(_join(path, "listen"), str(e))
            else:
                if not local:
                    for name in ("tls_cert", "tls_key"):
                        if tls[name] is None:
                            v.error(_join(path, name), f"required: {path}.listen {listen} is not "
                                    "loopback, and the API is served beyond loopback only over TLS")
    if tls["tls_client_ca"] is not None and tls["tls_cert"] is None:
        v.error(_join(path, "tls_client_ca"), f"needs {path}.tls_cert and {path}.tls_key (TLS)")
    socket_mode = _api_socket_mode(v, tbl, path, listen)
    if v.errors:
        raise ConfigErrors(v.errors)
    return ApiConfig(enabled=enabled, listen=listen, read_only=read_only, socket_mode=socket_mode,
                     max_calls=max_calls, **tls)


def _api_socket_mode(v: _Validator, tbl: Mapping[str, Any], path: str, listen: Any) -> Any:
    """``[api] socket_mode``: permission bits 0o000..0o777, only for a Unix socket."""
    mode = v.integer(tbl, path, "socket_mode", ("an integer from 0 to 0o777 (write it as 0o660)",
                                                lambda n: 0 <= n <= 0o777), None)
    if isinstance(mode, int) and isinstance(listen, str) and listen and not listen.startswith("unix:"):
        v.error(_join(path, "socket_mode"), f"applies to a Unix socket only, and {path}.listen "
                f"is {listen}")
    return mode


# -- the API: candidate policies --------------------------------------------------

POLICY_DOCUMENT_KEYS = ("sets", "policies")


def policies_from_toml(text: str, config: Config, source: str = "candidate") -> tuple[Config, dict[str, Any]]:
    """Validate a candidate ``[sets]`` + ``[policies]`` document against the running ``config``.

    Returns the config with them in place, and the parsed tables (for
    :func:`to_toml`).  Raises `ConfigError` / `ConfigErrors` naming the key:
    the candidate's own problems, and every policy name ``[bgp]`` or a
    neighbor uses that the candidate no longer defines.
    """
    try:
        data = tomllib.loads(text)
    except tomllib.TOMLDecodeError as e:
        raise ConfigError(source, f"TOML syntax error: {e}") from None
    v = _Validator()
    top = v.table(data, "", POLICY_DOCUMENT_KEYS)
    if top is None:
        raise ConfigErrors(v.errors)
    sets, policies = _policy_section(v, top)
    names = set(BUILTIN_POLICIES) | set(v.policy_names)
    for i, name in enumerate(config.bgp.import_policy):
        if name not in names:
            v.error(f"bgp.import_policy[{i}]", f"policy {name!r} is used here but the candidate lacks it")
    for n, neighbor in enumerate(config.neighbors):
        for key in ("import_policy", "export_policy"):
            for i, name in enumerate(getattr(neighbor, key)):
                if name not in names:
                    v.error(f"neighbors[{n}].{key}[{i}]",
                            f"policy {name!r} is used by neighbor {neighbor.address} "
                            "but the candidate lacks it")
    if v.errors:
        raise ConfigErrors(v.errors)
    return attrs.evolve(config, sets=sets, policies=policies), dict(top)


def policy_tables_of_file(path: str) -> dict[str, Any]:
    """The ``[sets]`` and ``[policies]`` tables of a config file, as tomllib reads them ({} if unreadable)."""
    try:
        with open(path, "rb") as f:
            data = tomllib.load(f)
    except (OSError, tomllib.TOMLDecodeError):
        return {}
    return {k: data[k] for k in POLICY_DOCUMENT_KEYS if k in data}


def to_toml(tables: Mapping[str, Any]) -> str:
    """Write tomllib-shaped data back as TOML (tables, arrays of tables, scalars, arrays)."""
    lines: list[str] = []
    _toml_table(lines, (), tables)
    return "\n".join(lines).strip() + "\n" if lines else ""


def _toml_key(name: str) -> str:
    return name if _BARE_KEY.fullmatch(name) else json.dumps(name)


def _toml_value(value: Any) -> str:
    if isinstance(value, bool):
        return "true" if value else "false"
    if isinstance(value, int | float):
        return repr(value)
    if isinstance(value, str):
        return json.dumps(value, ensure_ascii=False)
    if isinstance(value, list):
        return "[" + ", ".join(_toml_value(x) for x in value) + "]"
    if isinstance(value, Mapping):
        return "{ " + ", ".join(f"{_toml_key(k)} = {_toml_value(x)}" for k, x in value.items()) + " }"
    raise ValueError(f"cannot write {type(value).__name__} as TOML")


def _is_table_array(value: Any) -> bool:
    return isinstance(value, list) and bool(value) and all(isinstance(x, Mapping) for x in value)


def _toml_table(lines: list[str], path: tuple[str, ...], table: Mapping[str, Any]) -> None:
    scalars = [(k, x) for k, x in table.items() if not isinstance(x, Mapping) and not _is_table_array(x)]
    if path and (scalars or not table):
        lines.append(f"[{'.'.join(_toml_key(p) for p in path)}]")
    for k, x in scalars:
        lines.append(f"{_toml_key(k)} = {_toml_value(x)}")
    if scalars:
        lines.append("")
    for k, x in table.items():
        if isinstance(x, Mapping):
            _toml_table(lines, (*path, k), x)
        elif _is_table_array(x):
            for item in x:
                lines.append(f"[[{'.'.join(_toml_key(p) for p in (*path, k))}]]")
                for ik, iv in item.items():
                    lines.append(f"{_toml_key(ik)} = {_toml_value(iv)}")
                lines.append("")


def config_to_tables(config: Config, policy_tables: Mapping[str, Any] | None = None,
                     secret: str = "<hidden>") -> dict[str, Any]:
    """The effective config as tomllib-shaped tables, ready for :func:`to_toml`.

    Every key is written with its resolved value (defaults included), so the
    result is the config bgpd runs, not the file it read.  ``[sets]`` and
    ``[policies]`` are ``policy_tables`` (the compiled records keep no source
    text).  An MD5 password is written as ``secret``.  (``bgpctl config
    show`` renders the effective document of :mod:`bgpd.state.overlay`
    instead: the file's tables with the API's changes laid over them.)
    """
    from bgpd.wire.communities import format_community, format_ext_community, format_large_community

    def plain(value: Any) -> Any:
        if attrs.has(type(value)):
            return {f.name: plain(getattr(value, f.name)) for f in attrs.fields(type(value))
                    if getattr(value, f.name) is not None and not f.name.startswith("_")}
        if isinstance(value, tuple | list):
            return [plain(v) for v in value]
        return value

    bgp = plain(config.bgp)
    neighbors = []
    for n in config.neighbors:
        table = plain(n)
        table["max_prefix"] = {fam: plain(mp) for fam, mp in n.max_prefix}
        if not table["max_prefix"]:
            del table["max_prefix"]
        if n.md5_password is not None:
            table["md5_password"] = secret
        neighbors.append(table)
    originate = []
    for o in config.originate:
        table = plain(o)
        del table["family"]  # follows from the prefix; not a config key
        table["communities"] = [format_community(c) for c in o.communities]
        table["large_communities"] = [format_large_community(c) for c in o.large_communities]
        table["ext_communities"] = [format_ext_community(c) for c in o.ext_communities]
        originate.append(table)
    out: dict[str, Any] = {"bgp": bgp}
    if config.api.enabled or config.api != ApiConfig():
        out["api"] = plain(config.api)
        if not config.api.listen:
            del out["api"]["listen"]  # the default socket in state_dir: written, it would not read back
    if config.kernel is not None:
        out["kernel"] = plain(config.kernel)
    if config.rpki is not None:
        out["rpki"] = _rpki_tables(config.rpki, plain)
    if config.monitor != MonitorConfig():
        out["monitor"] = plain(config.monitor)
    if config.mrt is not None:
        out["mrt"] = plain(config.mrt)
    out.update(dict(policy_tables or {}))
    if neighbors:
        out["neighbors"] = neighbors
    if originate:
        out["originate"] = originate
    if config.bmp is not None:
        out["bmp"] = {"sys_name": config.bmp.sys_name, "sys_descr": config.bmp.sys_descr,
                      "collector": [plain(c) for c in config.bmp.collectors]}
    return out


def _rpki_tables(rpki: RpkiConfig, plain: Callable[[Any], Any]) -> dict[str, Any]:
    """``[rpki]`` for :func:`config_to_tables`: the SLURM file by its name (its rules are read again)."""
    out: dict[str, Any] = {"aspa": rpki.aspa, "cache": [plain(c) for c in rpki.caches]}
    if rpki.slurm is not None:
        out["slurm"] = rpki.slurm
    return out


# -- [rpki]: RTR caches (RFC 8210) ---------------------------------------------

#: RFC 8210 section 6 bounds of each interval, seconds.
#: Bounds of the [[rpki.cache]] interval overrides.  Refresh and Retry are
#: RFC 8210 section 6's ranges; a local Expire may go down to 60 s, below the
#: 600 s a cache may send: the operator's (or a lab's) choice of how long to
#: trust data from an unreachable cache, which the RFC leaves to the router.
RTR_TIMER_BOUNDS = {"refresh": (1, 86400), "retry": (1, 7200), "expire": (60, 172800)}
#: IANA ports: rpki-rtr over TCP, rpki-rtr-tls over TLS (RFC 6810 section 7, RFC 8210 section 9)
RTR_PORTS = {"tcp": 323, "tls": 324}
RTR_TRANSPORTS = ("tcp", "tls")
_RTR_TLS_KEYS = ("tls_ca", "tls_cert", "tls_key", "tls_server_name")


@attrs.frozen
class RpkiCacheConfig:
    """One ``[[rpki.cache]]``: an RTR cache to take VRPs (and ASPAs) from."""

    name: str
    address: str
    port: int = 323
    #: lower is preferred (RFC 8210 section 10); ties keep the file's order
    preference: int = 100
    transport: str = "tcp"
    #: TLS: PEM CA bundle to verify the cache (None: the system's trust store)
    tls_ca: str | None = None
    #: TLS: PEM client certificate and key, when the cache asks for one
    tls_cert: str | None = None
    tls_key: str | None = None
    #: TLS: the name the cache's certificate must carry (default: ``address``)
    tls_server_name: str | None = None
    #: interval overrides (RFC 8210 section 6); None takes the cache's
    refresh: int | None = None
    retry: int | None = None
    expire: int | None = None


@attrs.frozen
class RpkiConfig:
    """The ``[rpki]`` table: RTR caches and what to ask them for."""

    caches: tuple[RpkiCacheConfig, ...] = attrs.field(default=(), converter=tuple)
    #: ask for ASPA PDUs (RTR version 2, draft-ietf-sidrops-8210bis)
    aspa: bool = False
    #: a SLURM file (RFC 8416): local filters and assertions over the caches' data
    slurm: str | None = None
    #: its contents, read and checked with the config (so a bad file is a config error)
    slurm_rules: Slurm | None = attrs.field(default=None, repr=False)


RPKI_CACHE_KEYS = tuple(f.name for f in attrs.fields(RpkiCacheConfig))
#: the keys of [rpki] itself ("cache" is the array of caches)
RPKI_KEYS = ("cache", "aspa", "slurm")


def _rpki_section(v: _Validator, value: object) -> RpkiConfig | None:
    """``[rpki]``: at least one ``[[rpki.cache]]``, each with a unique name."""
    path = "rpki"
    tbl = v.table(value, path, RPKI_KEYS)
    if tbl is None:
        return None
    n_errors = len(v.errors)
    aspa = v.boolean(tbl, path, "aspa", False)
    items = tbl.get("cache")
    caches: list[RpkiCacheConfig] = []
    if items is None:
        v.error(_join(path, "cache"), "required: at least one [[rpki.cache]] with name and address")
    elif not isinstance(items, list) or not all(isinstance(i, Mapping) for i in items):
        v.error(_join(path, "cache"), f"must be an array of tables ([[rpki.cache]]), got {_describe(items)}")
    elif not items:
        v.error(_join(path, "cache"), "must list at least one cache")
    else:
        seen: dict[str, int] = {}
        for i, item in enumerate(items):
            cache = _rpki_cache(v, item, f"{path}.cache[{i}]")
            if cache is None:
                continue
            if cache.name in seen:
                v.error(f"{path}.cache[{i}].name",
                        f"duplicate of {path}.cache[{seen[cache.name]}].name ({cache.name!r})")
                continue
            seen[cache.name] = i
            caches.append(cache)
    slurm, rules = _rpki_slurm(v, tbl, path)
    if len(v.errors) > n_errors:
        return None
    return RpkiConfig(caches=tuple(caches), aspa=aspa, slurm=slurm, slurm_rules=rules)


def _rpki_slurm(v: _Validator, tbl: Mapping[str, Any], path: str) -> tuple[str | None, Slurm | None]:
    """``[rpki] slurm``: the file is read now, so a bad one is refused like the config (start, SIGHUP)."""
    slurm = v.string(tbl, path, "slurm", None)
    if not isinstance(slurm, str):
        return None, None
    try:
        return slurm, load_slurm(slurm)
    except OSError as e:
        v.error(_join(path, "slurm"), f"cannot read the SLURM file {slurm}: {e.strerror or e}")
    except SlurmError as e:
        v.error(_join(path, "slurm"), f"SLURM file {slurm} (RFC 8416): {e}")
    return None, None


def _rpki_cache(v: _Validator, value: object, path: str) -> RpkiCacheConfig | None:
    tbl = v.table(value, path, RPKI_CACHE_KEYS)
    if tbl is None:
        return None
    n_errors = len(v.errors)
    name = v.string(tbl, path, "name")
    if isinstance(name, str) and not name.strip():
        v.error(_join(path, "name"), "must not be empty: logs and bgpctl name the cache by it")
    address = v.string(tbl, path, "address")
    if isinstance(address, str):
        ip = _parse_ip(address)
        if isinstance(ip, str) and not re.fullmatch(r"[A-Za-z0-9]([A-Za-z0-9.-]*[A-Za-z0-9])?", address):
            v.error(_join(path, "address"), f"must be an IP address or a host name, got {_describe(address)}")
    transport = v.choice(tbl, path, "transport", RTR_TRANSPORTS, "tcp")
    port = v.integer(tbl, path, "port", _int_range(1, 65535), RTR_PORTS.get(transport, 323))
    preference = v.integer(tbl, path, "preference", _int_range(0, 255), 100)
    tls = {key: v.string(tbl, path, key, None) for key in _RTR_TLS_KEYS}
    if transport == "tcp":
        for key in _RTR_TLS_KEYS:
            if key in tbl:
                v.error(_join(path, key), f'only with transport = "tls" ({path}.transport is "tcp")')
    elif transport == "tls":
        for key in ("tls_ca", "tls_cert", "tls_key"):
            file = tls[key]
            if isinstance(file, str) and not os.access(file, os.R_OK):
                v.error(_join(path, key), f"cannot read {file!r}")
        if (tls["tls_cert"] is None) != (tls["tls_key"] is None):
            missing = "tls_key" if tls["tls_key"] is None else "tls_cert"
            v.error(_join(path, missing), "tls_cert and tls_key go together (the client certificate)")
    timers = {}
    for key, (lo, hi) in RTR_TIMER_BOUNDS.items():
        timers[key] = v.integer(tbl, path, key, _int_range(lo, hi), None)
    expire = timers["expire"]
    for key in ("refresh", "retry"):
        other = timers[key]
        if isinstance(expire, int) and isinstance(other, int) and expire <= other:
            v.error(_join(path, "expire"), f"must be larger than {key} ({other}), got {expire} "
                    "(RFC 8210 section 6)")
    if len(v.errors) > n_errors:
        return None
    return RpkiCacheConfig(name=name, address=address, port=port, preference=preference,
                           transport=transport, refresh=timers["refresh"], retry=timers["retry"],
                           expire=timers["expire"], **tls)
# -- [monitor] and [mrt] (bgpd.monitor) --------------------------------------------

MONITOR_KEYS = ("history_size", "log_format", "metrics_listen")
MRT_KEYS = ("directory", "interval", "file_pattern", "compression", "tables", "updates")
LOG_FORMATS = ("text", "json")
MRT_COMPRESSIONS = ("none", "gzip", "bz2")
MRT_TABLES = ("loc-rib", "adj-rib-in")
_MAX_HISTORY = 100_000


@attrs.frozen
class MonitorConfig:
    """The ``[monitor]`` table: session history, log format, the Prometheus endpoint."""

    #: state changes kept per peer (``bgpctl show neighbor``, GetPeer)
    history_size: int = 64
    #: "text" (twistd's lines) or "json" (one JSON object per line)
    log_format: str = "text"
    #: "" (off), or the HOST:PORT the metrics are served on; a bare port is loopback
    metrics_listen: str = ""

    @property
    def metrics_address(self) -> tuple[str, int] | None:
        """(host, port) of the metrics endpoint, or None when off."""
        if not self.metrics_listen:
            return None
        return _metrics_host_port(self.metrics_listen)


@attrs.frozen
class MrtConfig:
    """The ``[mrt]`` table: scheduled TABLE_DUMP_V2 snapshots (RFC 6396 section 4.3)."""

    directory: str
    #: seconds between two dumps; one file per interval (rotation by time)
    interval: int = 7200
    #: file name: ``{table}`` and strftime(3) codes expanded at the dump's time (UTC)
    file_pattern: str = "{table}.%Y%m%d.%H%M.mrt"
    compression: str = "none"
    tables: tuple[str, ...] = attrs.field(default=("loc-rib",), converter=tuple)
    #: also log every received message and state change (BGP4MP, RFC 6396 4.4)
    updates: bool = False


def _metrics_host_port(listen: str) -> tuple[str, int]:
    """``PORT`` (loopback), ``HOST:PORT`` or ``[V6]:PORT`` -> (host, port); ValueError says why."""
    if listen.isdigit():
        port = int(listen)
        if not 1 <= port <= 65535:
            raise ValueError(f"port must be 1..65535, got {port}")
        return "127.0.0.1", port
    host, port = split_listen(listen)
    if host != "localhost":
        try:
            ipaddress.ip_address(host)
        except ValueError:
            raise ValueError(f"host must be an IP address or localhost, got {host!r}") from None
    if port == 0:
        raise ValueError("port must be 1..65535, got 0")
    return host, port


def monitor_config_from_table(table: object, path: str = "monitor") -> MonitorConfig:
    """Validate a ``[monitor]`` table; raises `ConfigErrors` naming each bad key."""
    v = _Validator()
    tbl = v.table(table, path, MONITOR_KEYS)
    if tbl is None:
        raise ConfigErrors(v.errors)
    size = v.integer(tbl, path, "history_size", _int_range(1, _MAX_HISTORY), 64)
    log_format = v.choice(tbl, path, "log_format", LOG_FORMATS, "text")
    listen = v.string(tbl, path, "metrics_listen", "")
    if isinstance(listen, str) and listen:
        try:
            _metrics_host_port(listen)
        except ValueError as e:
            v.error(_join(path, "metrics_listen"), f"must be PORT, HOST:PORT or [V6]:PORT: {e}")
    if v.errors:
        raise ConfigErrors(v.errors)
    return MonitorConfig(history_size=size, log_format=log_format, metrics_listen=listen)


def mrt_config_from_table(table: object, path: str = "mrt") -> MrtConfig:
    """Validate an ``[mrt]`` table; raises `ConfigErrors` naming each bad key."""
    v = _Validator()
    tbl = v.table(table, path, MRT_KEYS)
    if tbl is None:
        raise ConfigErrors(v.errors)
    directory = v.string(tbl, path, "directory")
    if directory == "":
        v.error(_join(path, "directory"), "must name a directory, got an empty string")
    # Under a minute a full table's dump could still be running when the next is due.
    interval = v.integer(tbl, path, "interval", _int_range(60, 7 * 86400), 7200)
    pattern = v.string(tbl, path, "file_pattern", "{table}.%Y%m%d.%H%M.mrt")
    if isinstance(pattern, str):
        try:
            name = time.strftime(pattern.replace("{table}", "loc-rib"), time.gmtime(0))
        except ValueError as e:
            name = None
            v.error(_join(path, "file_pattern"), f"not a strftime pattern: {e}")
        if name is not None and (not name or "/" in name or name in (".", "..")):
            v.error(_join(path, "file_pattern"), f"must make a file name without '/', got {pattern!r}")
    compression = v.choice(tbl, path, "compression", MRT_COMPRESSIONS, "none")
    tables = v.string_list(tbl, path, "tables", ["loc-rib"])
    updates = v.boolean(tbl, path, "updates", False)
    if isinstance(tables, list):
        if not tables and updates is not True:
            v.error(_join(path, "tables"), f"must name at least one of {', '.join(MRT_TABLES)} "
                    "(or set mrt.updates = true)")
        for i, t in enumerate(tables):
            if t not in MRT_TABLES:
                v.error(f"{_join(path, 'tables')}[{i}]", f"must be one of {', '.join(MRT_TABLES)}; got {t!r}")
        if len(set(tables)) != len(tables):
            v.error(_join(path, "tables"), "names a table twice")
        elif (len(tables) + (updates is True)) > 1 and isinstance(pattern, str) \
                and "{table}" not in pattern:
            v.error(_join(path, "file_pattern"), "must contain {table} when more than one kind "
                    "of file is written (mrt.tables, mrt.updates): one file per table")
    if v.errors:
        raise ConfigErrors(v.errors)
    return MrtConfig(directory=directory, interval=interval, file_pattern=pattern,
                     compression=compression, tables=tuple(tables), updates=updates)
