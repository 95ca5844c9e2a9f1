"""RIB-wide options: decision process knobs (RFC 4271 9.1.2.2) and pacing."""

from __future__ import annotations

from collections.abc import Callable

import attrs

__all__ = ["RibOptions"]


@attrs.frozen
class RibOptions:
    """Operator options of the decision process and of update generation.

    ``resolver(next_hop) -> bool`` says whether a NEXT_HOP is reachable
    (RFC 4271 9.1.2 (a)); None means every next hop is.  ``max_paths`` > 1
    turns on multipath (the ECMP set handed to the kernel writer).
    ``chunk_size`` bounds the prefixes handled in one reactor turn, in and out.
    ``backlog_high``: queued work items (one per UPDATE and family, mostly)
    at which the service stops reading the sessions until a quarter is left
    (inbound flow control, :meth:`bgpd.rib.rib.Rib.watch_backlog`).
    ``mrai_ebgp`` / ``mrai_ibgp`` are the default MinRouteAdvertisementInterval
    (RFC 4271 9.2.1.1) per update group, in seconds; 0 means the next turn.
    """

    default_local_pref: int = 100
    always_compare_med: bool = False
    deterministic_med: bool = False
    max_paths: int = 1
    multipath_relax: bool = False
    resolver: Callable[[str | None], bool] | None = None
    chunk_size: int = 2000
    backlog_high: int = 4000
    mrai_ebgp: float = 0.5
    mrai_ibgp: float = 0.0
    #: ADD-PATH send: at most this many paths per prefix (0: all candidates).
    add_path_send_max: int = 0
