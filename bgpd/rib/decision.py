"""The BGP decision process: RFC 4271 section 9.1.2, with the usual operator options.

Pure functions over candidate paths (:class:`bgpd.rib.route.Path`).  The steps,
in order (9.1.2.1 and the tie-breaking rules of 9.1.2.2, RFC 4456 section 9
for reflected routes):

1. ``next-hop``: a path whose NEXT_HOP does not resolve is not eligible.
   ``stale``: a path kept stale for a peer that restarts (RFC 4724 section
   4.2) loses to every fresh one, so the routes of the peers that are up
   are used while it is away.
2. ``local-pref``: highest LOCAL_PREF (absent: the configured default, 100).
3. ``local-origin``: routes this speaker originates win.
4. ``as-path``: shortest AS_PATH (an AS_SET counts 1, confederation segments 0).
5. ``origin``: lowest ORIGIN (IGP < EGP < INCOMPLETE).
6. ``med``: lowest MULTI_EXIT_DISC, compared only between routes from the
   same neighbouring AS unless ``always_compare_med``; a missing MED is 0.
   ``deterministic_med`` ranks routes per neighbouring AS first, so the result
   does not depend on arrival order.
7. ``ebgp``: routes learned by eBGP over those learned by iBGP.
   (The interior cost to the next hop would come here; multipath stops here.)
8. ``router-id``: lowest BGP Identifier, or ORIGINATOR_ID when present.
9. ``cluster-list``: shortest CLUSTER_LIST.
10. ``peer-address``: lowest peer address; then lowest received path id.
"""

from __future__ import annotations

import functools
import socket
from collections.abc import Sequence

from bgpd.rib.options import RibOptions
from bgpd.rib.route import LOCAL, STALE_RESTART, Path

__all__ = ["STEPS", "compare", "eligible", "explain", "multipath", "select"]

STEPS = (
    "next-hop",
    "stale",
    "local-pref",
    "local-origin",
    "as-path",
    "origin",
    "med",
    "ebgp",
    "router-id",
    "cluster-list",
    "peer-address",
    "path-id",
)
#: Paths that differ only from this step on are equal-cost for multipath.
_MULTIPATH_FROM = STEPS.index("router-id")
_DEFAULT = RibOptions()


def _ip_int(address: str) -> int:
    return int.from_bytes(socket.inet_aton(address), "big")


def eligible(path: Path, options: RibOptions = _DEFAULT) -> bool:
    """RFC 4271 9.1.2.1: a route whose NEXT_HOP is unresolvable is excluded."""
    resolver = options.resolver
    return resolver is None or bool(resolver(path.attrs.next_hop))


def compare(a: Path, b: Path, options: RibOptions = _DEFAULT, med: bool = True) -> tuple[int, str | None]:
    """``(-1, step)`` if ``a`` is preferred, ``(1, step)`` if ``b`` is, ``(0, None)`` if equal.

    ``med`` False skips the MED step (deterministic-MED's second round, where
    the routes come from different neighbouring ASes anyway).
    """
    if options.resolver is not None:
        ra = eligible(a, options)
        rb = eligible(b, options)
        if ra != rb:
            return (-1 if ra else 1), "next-hop"
    sa = a.stale == STALE_RESTART
    if sa != (b.stale == STALE_RESTART):
        return (1 if sa else -1), "stale"
    aa = a.attrs
    ba = b.attrs
    default = options.default_local_pref
    lpa = aa.local_pref if aa.local_pref is not None else default
    lpb = ba.local_pref if ba.local_pref is not None else default
    if lpa != lpb:
        return (-1 if lpa > lpb else 1), "local-pref"
    pa = a.owner.info
    pb = b.owner.info
    la = pa is LOCAL
    lb = pb is LOCAL
    if la != lb:
        return (-1 if la else 1), "local-origin"
    x = aa.as_path_length
    y = ba.as_path_length
    if x != y:
        return (-1 if x < y else 1), "as-path"
    if aa.origin != ba.origin:
        return (-1 if aa.origin < ba.origin else 1), "origin"
    if med:
        ma = aa.med or 0
        mb = ba.med or 0
        # Equal MEDs decide nothing whichever the neighbouring ASes: only
        # different ones need the (derived, not stored) neighbouring AS.
        if ma != mb and (options.always_compare_med or aa.neighbor_as == ba.neighbor_as):
            return (-1 if ma < mb else 1), "med"
    if pa.ibgp != pb.ibgp:
        return (-1 if not pa.ibgp else 1), "ebgp"
    ia = _ip_int(aa.originator_id) if aa.originator_id else pa.router_id_int
    ib = _ip_int(ba.originator_id) if ba.originator_id else pb.router_id_int
    if ia != ib:
        return (-1 if ia < ib else 1), "router-id"
    ca = len(aa.cluster_list)
    cb = len(ba.cluster_list)
    if ca != cb:
        return (-1 if ca < cb else 1), "cluster-list"
    ka = pa.address_key
    kb = pb.address_key
    if ka != kb:
        return (-1 if ka < kb else 1), "peer-address"
    if a.path_id != b.path_id:
        return (-1 if a.path_id < b.path_id else 1), "path-id"
    return 0, None


def _sorted(paths: Sequence[Path], options: RibOptions, med: bool) -> list[Path]:
    def sign(a: Path, b: Path) -> int:
        return compare(a, b, options, med)[0]

    return sorted(paths, key=functools.cmp_to_key(sign))


def select(candidates: Sequence[Path], options: RibOptions = _DEFAULT) -> list[Path]:
    """All candidates, best first (unresolvable next hops last).

    Without ``deterministic_med`` the MED rule makes the order depend on the
    order of ``candidates`` (RFC 4271 9.1.2.2 c is not transitive); with it,
    routes are ranked within each neighbouring AS first, and the group
    leaders then compared without MED.
    """
    n = len(candidates)
    if n < 2:
        return list(candidates)
    if not options.deterministic_med or options.always_compare_med:
        if n == 2:
            # What sorted() does with two, without its key objects: the
            # second goes first only if it is preferred (a stable sort).
            a, b = candidates
            return [b, a] if compare(a, b, options)[0] > 0 else [a, b]
        return _sorted(candidates, options, True)
    groups: dict[int | None, list[Path]] = {}
    for p in candidates:
        groups.setdefault(p.attrs.neighbor_as, []).append(p)
    ranked = [_sorted(g, options, True) for g in groups.values()]
    def leaders(a: list[Path], b: list[Path]) -> int:
        return compare(a[0], b[0], options, False)[0]

    ranked.sort(key=functools.cmp_to_key(leaders))
    return [p for g in ranked for p in g]


def explain(candidates: Sequence[Path], options: RibOptions = _DEFAULT) -> list[tuple[str, Path, Path]]:
    """Why the best path won: ``(step, winner, loser)`` for each other candidate."""
    ordered = select(candidates, options)
    if not ordered:
        return []
    best = ordered[0]
    out = []
    for other in ordered[1:]:
        sign, step = compare(best, other, options)
        if sign > 0 and options.deterministic_med:
            # Deterministic MED ranked ``best`` first although a pairwise MED
            # comparison would not: say so rather than report a wrong step.
            step = "deterministic-med"
        out.append((step or "equal", best, other))
    return out


def multipath(ordered: Sequence[Path], options: RibOptions = _DEFAULT) -> list[Path]:
    """The ECMP set: paths equal to the best up to the interior-cost step.

    They must share the neighbouring AS, unless ``multipath_relax`` (then any
    AS_PATH of the same length will do).  At most ``max_paths`` paths.
    """
    if not ordered:
        return []
    best = ordered[0]
    if not eligible(best, options):
        return []
    out = [best]
    limit = max(1, options.max_paths)
    for p in ordered[1:]:
        if len(out) >= limit:
            break
        sign, step = compare(best, p, options)
        if step is not None and STEPS.index(step) < _MULTIPATH_FROM:
            continue
        if not options.multipath_relax and p.attrs.neighbor_as != best.attrs.neighbor_as:
            continue
        out.append(p)
    return out
