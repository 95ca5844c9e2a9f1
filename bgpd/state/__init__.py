"""The state store for API changes (see `bgpd.state.store`) and the overlay
logic that lays them over the config file (`bgpd.state.overlay`).

Changes are kept as TOML-shaped tables so that the config module validates
them exactly as it validates the file (RFC-level limits there).  The store
itself uses only the standard library; this package knows no RIB, session,
policy engine or reactor.
"""

from __future__ import annotations

from bgpd.state.store import (
    Change,
    CorruptState,
    MemoryStore,
    SqliteStore,
    StateError,
    StateStore,
)

__all__ = [
    "Change",
    "CorruptState",
    "MemoryStore",
    "SqliteStore",
    "StateError",
    "StateStore",
]
