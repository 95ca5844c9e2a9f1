"""Origin validation and ASPA verification of the RIB's routes (RFC 6811, RFC 8416, the ASPA draft).

:class:`RouteValidation` owns the VRP table, the ASPA table and the SLURM
exceptions, and is what the rest of bgpd sees of them:

- the validators the policy compiler is given (``rpki`` and ``aspa``
  conditions; :mod:`bgpd.policy.engine`), so a route's state is computed
  when import policy runs and never stored on the shared path;
- :meth:`attach` subscribes to both tables: a VRP transaction (or expiry,
  or a SLURM reload) makes the RIB run the import chains that read a state
  again for the routes inside the changed VRP prefixes only
  (:meth:`bgpd.rib.Rib.revalidate`); an ASPA transaction for the paths
  through a changed customer AS; no session is reset;
- :meth:`route_states` gives a listed route's states (the API computes them
  per listed path, nothing is cached per prefix).
"""

from __future__ import annotations

import time
from collections.abc import Callable
from typing import Any

from twisted.logger import Logger

from bgpd.rpki.aspa import AspaTable, Hop, collapse, direction_for_role
from bgpd.rpki.records import Validity, Vrp
from bgpd.rpki.slurm import Slurm
from bgpd.rpki.table import Changes, VrpTable, affected_by
from bgpd.wire.attributes import PathAttributes
from bgpd.wire.constants import Role
from bgpd.wire.nlri import prefix_to_str

__all__ = ["ASPA_NAMES", "RPKI_NAMES", "Explained", "RouteValidation", "vrp_text"]

log = Logger()

#: Validity -> the policy's names (RFC 6811 states; the ASPA draft's).
RPKI_NAMES = {Validity.VALID: "valid", Validity.INVALID: "invalid", Validity.NOT_FOUND: "not-found"}
ASPA_NAMES = {Validity.VALID: "valid", Validity.INVALID: "invalid", Validity.NOT_FOUND: "unknown"}
_RPKI_BY_VALUE = tuple(RPKI_NAMES[Validity(i)] for i in range(3))
_CACHE_MAX = 1 << 16
#: Validity -> the API's RpkiState / AspaState number (proto/bgpd/v1/rpki.proto).
_CODE = (1, 3, 2)


def vrp_text(v: Vrp) -> str:
    """``192.0.2.0/24-24 AS64500``: prefix, max length, AS (how RPKI tools write a VRP)."""
    return f"{prefix_to_str(v.prefix, v.family[0])}-{v.max_length} AS{v.asn}"


class Explained(tuple):
    """(state, matching VRPs, covering VRPs with their ``asserted`` flag, reason in words)."""

    __slots__ = ()

    def __new__(cls, state: Validity, matching: list[Vrp], covering: list[tuple[Vrp, bool]],
                reason: str) -> Explained:
        return super().__new__(cls, (state, matching, covering, reason))

    @property
    def state(self) -> Validity:
        return self[0]

    @property
    def matching(self) -> list[Vrp]:
        return self[1]

    @property
    def covering(self) -> list[tuple[Vrp, bool]]:
        return self[2]

    @property
    def reason(self) -> str:
        return self[3]


HOP_NAMES = {Hop.PROVIDER_PLUS: "provider+", Hop.NOT_PROVIDER_PLUS: "not-provider+",
             Hop.NO_ATTESTATION: "no-attestation"}


class RouteValidation:
    """The VRP and ASPA tables, the SLURM file, and the hooks into policy and the RIB."""

    def __init__(self, clock: Callable[[], float] = time.monotonic, table: VrpTable | None = None) -> None:
        self.aspa = AspaTable()
        #: ``table``: one already loaded (the bench); it forwards no ASPA records then.
        self.table = VrpTable(aspa_sink=self.aspa) if table is None else table
        #: The SLURM rules in force (``[rpki] slurm``, read and checked with the config).
        self.slurm = Slurm()
        self._clock = clock
        self._ribs: list[Any] = []
        #: (AS path, procedure, neighbor AS) -> Validity; emptied when ASPA data changes.
        self._aspa_cache: dict[tuple, Validity] = {}
        #: The last revalidation: (routes queued, seconds to find them) for the status API.
        self.last_revalidation: tuple[int, float] = (0, 0.0)
        self.table.subscribe(self._vrps_changed)
        self.aspa.subscribe(self._aspas_changed)

    # -- SLURM (RFC 8416) --------------------------------------------------------

    def apply_slurm(self, slurm: Slurm) -> None:
        """Put ``slurm``'s filters and assertions in force over the caches' data."""
        self.slurm = slurm
        self.table.set_exceptions(slurm.table_filters(), slurm.assertions)

    # -- the policy hooks ---------------------------------------------------------------

    def rpki_state(self, family: tuple[int, int], prefix: bytes, attrs: PathAttributes) -> str:
        """The policy's ``rpki`` validator: "valid" / "invalid" / "not-found" (RFC 6811 section 2)."""
        return _RPKI_BY_VALUE[self.table.validate(family[0], prefix, attrs.origin_as)]

    def aspa_validity(self, peer: Any, attrs: PathAttributes) -> Validity:
        """ASPA state of a path from ``peer``: the procedure follows its RFC 9234 role.

        Routes from iBGP, from this speaker, or from a peer without a role
        are not verified (Unknown): the draft verifies at the eBGP edge, by
        the relation to the neighbor, which only a role tells.
        """
        state = self.aspa_verified(peer, attrs)
        return Validity.NOT_FOUND if state is None else state

    def aspa_verified(self, peer: Any, attrs: PathAttributes) -> Validity | None:
        """:meth:`aspa_validity`, None where the path is not verified at all."""
        if peer.ibgp or peer.address == "local":
            return None
        role = peer.role
        direction = direction_for_role(role)
        if direction is None:
            return None
        # A route server does not put its AS in the path (RFC 7947 section 2.2.2.1).
        neighbor = None if role == Role.RS else peer.remote_as
        key = (attrs.as_path_packed, direction, neighbor)  # bytes: cheaper to hash than tuples
        state = self._aspa_cache.get(key)
        if state is None:
            state = self.aspa.verify(attrs.as_path, direction, neighbor)
            if len(self._aspa_cache) >= _CACHE_MAX:
                self._aspa_cache.clear()
            self._aspa_cache[key] = state
        return state

    def aspa_state(self, peer: Any, family: tuple[int, int], attrs: PathAttributes) -> str:
        """The policy's ``aspa`` validator: "valid" / "invalid" / "unknown"."""
        return ASPA_NAMES[self.aspa_validity(peer, attrs)]

    def route_states(self, peer: Any, family: tuple[int, int], prefix: bytes,
                     attrs: PathAttributes) -> tuple[Validity, Validity]:
        """(RPKI state, ASPA state) of one route, for route listings."""
        return self.table.validate(family[0], prefix, attrs.origin_as), self.aspa_validity(peer, attrs)

    def route_codes(self, peer: Any, afi: int, prefix: bytes, attrs: PathAttributes) -> tuple[int, int]:
        """The listing's (RpkiState, AspaState) enum numbers: 1 valid, 2 invalid, 3 not-found / unknown.

        Computed per listed path (a covering lookup, a cached ASPA answer):
        nothing is stored per route.  The ASPA one is 0 where not verified.
        """
        aspa = self.aspa_verified(peer, attrs)
        return (_CODE[self.table.validate(afi, prefix, attrs.origin_as)],
                0 if aspa is None else _CODE[aspa])

    # -- queries (the API) -------------------------------------------------------------

    def explain(self, afi: int, prefix: bytes, origin_as: int | None) -> Explained:
        """RFC 6811 section 2 for (``prefix``, ``origin_as``), with the VRPs and the reason in words."""
        covering = self.table.covering_sources(afi, prefix)
        plen = prefix[0]
        matching = [v for v, _a in covering if origin_as and v.asn == origin_as and v.max_length >= plen]
        if matching:
            return Explained(Validity.VALID, matching, covering, f"VRP {vrp_text(matching[0])} matches")
        if not covering:
            return Explained(Validity.NOT_FOUND, [], covering, "no covering VRP")
        vrps = [v for v, _a in covering]
        same_as = [v for v in vrps if origin_as and v.asn == origin_as]
        if origin_as is None:
            why = "the origin is NONE (the AS path ends in an AS_SET)"
        elif same_as:
            why = (f"origin AS{origin_as} is authorised only up to /{max(v.max_length for v in same_as)},"
                   f" the prefix is /{plen}")
        else:
            why = f"origin AS{origin_as} does not match"
        return Explained(Validity.INVALID, [], covering,
                         f"covered by {', '.join(vrp_text(v) for v in vrps)} but {why}")

    def explain_path(self, as_path: list[int], direction: str,
                     as_set: bool = False) -> tuple[Validity, list[tuple[int, int, str]]]:
        """ASPA verification of ``as_path`` (neighbor first) and the hop checks from the origin up."""
        segments: tuple = ((2, tuple(as_path)),) if as_path else ()
        if as_set:
            segments = (*segments, (1, (0,)))
        state = self.aspa.verify(segments, direction)
        ases = collapse(((2, tuple(as_path)),)) or ()
        up = ases[::-1]
        hops = [(up[i], up[i + 1], HOP_NAMES[self.aspa.hop(up[i], up[i + 1])]) for i in range(len(up) - 1)]
        return state, hops

    # -- revalidation ---------------------------------------------------------------------

    def attach(self, rib: Any) -> Callable[[], None]:
        """Revalidate ``rib``'s routes when the tables change; returns detach."""
        self._ribs.append(rib)

        def detach() -> None:
            if rib in self._ribs:
                self._ribs.remove(rib)

        return detach

    def _families(self, rib: Any, afi: int) -> list[tuple[int, int]]:
        return sorted(fam for fam in rib.families() if fam[0] == afi)

    def _vrps_changed(self, changes: Changes) -> None:
        start = self._clock()
        queued = 0
        for afi, keys in changes.items():
            select = None if keys is None else affected_by(keys, afi)
            for rib in self._ribs:
                for fam in self._families(rib, afi):
                    queued += rib.revalidate(fam, select=select)
        self.last_revalidation = (queued, self._clock() - start)
        if queued:
            log.info("rpki: VRPs changed ({what}): {n} routes to run import policy for again",
                     what=", ".join(f"afi {a}: {'all' if k is None else len(k)} prefixes"
                                    for a, k in sorted(changes.items())), n=queued)

    def _aspas_changed(self, customers: set[int]) -> None:
        self._aspa_cache.clear()
        start = self._clock()
        seen: dict[bytes, bool] = {}

        def through(attrs: PathAttributes) -> bool:
            packed = attrs.as_path_packed
            hit = seen.get(packed)
            if hit is None:
                ases = collapse(attrs.as_path)
                hit = seen[packed] = ases is not None and any(a in customers for a in ases)
            return hit

        queued = 0
        for rib in self._ribs:
            for afi in (1, 2):
                for fam in self._families(rib, afi):
                    queued += rib.revalidate(fam, paths=through)
        self.last_revalidation = (queued, self._clock() - start)
        if queued:
            log.info("rpki: ASPA records of {n_as} customer ASes changed: {n} routes to look at again "
                     "(those through them run import policy again)", n_as=len(customers), n=queued)
