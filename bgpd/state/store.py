"""The state store: changes made through the API, kept across restarts.

The config file is the base; what the API changes (neighbors added, changed
or removed, the policy sections replaced, paths originated without a lease)
is an overlay written here before the call returns and replayed at start
(`bgpd.state.overlay` lays it over the file).  Each change is a TOML-shaped
table, the same shape the config file has, so that it is validated by the
config module exactly like a table written in the file.

One row per (kind, key): a later change of the same neighbor, prefix or
policy set replaces the earlier row, so the store holds the overlay, not a
growing log.  Rows come back in the order of their last change.

The standard library only (``sqlite3``): this layer knows no RIB, session or
reactor (an import-linter contract in setup.cfg keeps it so).
"""

from __future__ import annotations

import json
import os
import sqlite3
import threading
import time
from collections.abc import Iterable, Mapping, Sequence
from dataclasses import dataclass, field
from typing import Any, Protocol, runtime_checkable

__all__ = [
    "KINDS",
    "SCHEMA_VERSION",
    "Change",
    "CorruptState",
    "MemoryStore",
    "SqliteStore",
    "StateError",
    "StateStore",
    "move_aside",
]

#: kind -> what ``key`` is: a normalised neighbor address, a normalised
#: prefix, or "" for the one [sets] + [policies] pair.
KINDS = ("neighbor", "originate", "policies")
#: put: the table replaces the entry; remove: the entry is dropped (also one
#: in the config file); clear: the stored row goes, the file decides again.
OPS = ("put", "remove", "clear")
SCHEMA_VERSION = 1
DB_NAME = "state.sqlite3"


class StateError(Exception):
    """The store could not be written or read; nothing was changed.

    ``key`` names what failed: ``neighbor 192.0.2.1``, or the file itself.
    """

    def __init__(self, key: str, reason: str) -> None:
        super().__init__(key, reason)
        self.key = key
        self.reason = reason

    def __str__(self) -> str:
        return f"state store error at {self.key}: {self.reason}"


class CorruptState(StateError):
    """The state file exists but cannot be trusted (not a database, bad rows)."""


@dataclass(frozen=True)
class Change:
    """One API change: ``op`` "put" carries ``table``, "remove" and "clear" none.

    ``table`` is TOML-shaped: a ``[[neighbors]]`` table, an ``[[originate]]``
    table, or ``{"sets": {...}, "policies": {...}}`` for kind "policies".
    ``seq`` orders changes; it is 0 until the store has written the change.
    """

    kind: str
    key: str
    op: str = "put"
    table: Mapping[str, Any] | None = field(default=None, compare=True)
    seq: int = 0

    def __post_init__(self) -> None:
        if self.kind not in KINDS:
            raise ValueError(f"kind must be one of {', '.join(KINDS)}, got {self.kind!r}")
        if self.op not in OPS:
            raise ValueError(f"op must be put or remove, got {self.op!r}")
        if (self.op == "put") != (self.table is not None):
            raise ValueError("a put carries a table, a remove none")

    @property
    def label(self) -> str:
        """How errors name this change: ``neighbor 192.0.2.1``, ``policies``."""
        return f"{self.kind} {self.key}" if self.key else self.kind


@runtime_checkable
class StateStore(Protocol):
    """What bgpd needs from a state store; SQLite is the embedded default."""

    def changes(self) -> list[Change]:
        """Every stored change, oldest first.  Raises `CorruptState`."""

    def record(self, changes: Sequence[Change]) -> list[Change]:
        """Write ``changes`` in one transaction, each replacing the stored row of
        its (kind, key) ("clear" only deletes it); returns those stored, with
        their ``seq``.

        When it raises (`StateError`), nothing was written.  When it returns,
        the changes are durable.  May be called from a thread other than the
        one that made the store (one call at a time is the store's to ensure).
        """

    def reset_corrupt(self) -> str:
        """Set unreadable state aside (kept for inspection) and start empty; say where it went."""

    def close(self) -> None:
        """Release the file; a later call opens it again."""


def _encode(change: Change) -> str | None:
    if change.table is None:
        return None
    try:
        # sort_keys is not used: the order of keys is the order the
        # operator wrote them in, and config show prints them back so.
        return json.dumps(change.table, allow_nan=True)
    except (TypeError, ValueError) as e:
        raise StateError(change.label, f"cannot be stored: {e}") from None


def _decode(seq: int, kind: str, key: str, op: str, body: str | None) -> Change:
    label = f"{kind} {key}" if key else str(kind)
    try:
        table = None if body is None else json.loads(body)
    except (TypeError, ValueError) as e:
        raise CorruptState(label, f"row {seq}: the stored table is not valid JSON: {e}") from None
    if table is not None and not isinstance(table, dict):
        raise CorruptState(label, f"row {seq}: the stored table is not a table")
    try:
        return Change(kind=kind, key=key, op=op, table=table, seq=seq)
    except ValueError as e:
        raise CorruptState(label, f"row {seq}: {e}") from None


class MemoryStore:
    """A `StateStore` in memory, for tests; ``fail`` makes the next writes raise."""

    def __init__(self, changes: Iterable[Change] = ()) -> None:
        self._rows: dict[tuple[str, str], Change] = {}
        self._seq = 0
        self.fail: str | None = None
        self._lock = threading.Lock()
        self.record(list(changes))

    def changes(self) -> list[Change]:
        with self._lock:
            return sorted(self._rows.values(), key=lambda c: c.seq)

    def record(self, changes: Sequence[Change]) -> list[Change]:
        with self._lock:
            return self._record(changes)

    def _record(self, changes: Sequence[Change]) -> list[Change]:
        if self.fail is not None:
            raise StateError("<memory>", self.fail)
        for c in changes:
            _encode(c)  # the same check the file store makes, before anything changes
        out = []
        for c in changes:
            if c.op == "clear":
                self._rows.pop((c.kind, c.key), None)
                continue
            self._seq += 1
            stored = Change(c.kind, c.key, c.op, c.table, self._seq)
            self._rows[(c.kind, c.key)] = stored
            out.append(stored)
        return out

    def reset_corrupt(self) -> str:
        self._rows.clear()
        return "<memory>"

    def close(self) -> None:
        pass


_SCHEMA = (
    "CREATE TABLE IF NOT EXISTS schema_version (version INTEGER NOT NULL)",
    "CREATE TABLE IF NOT EXISTS changes ("
    " seq INTEGER PRIMARY KEY AUTOINCREMENT,"
    " kind TEXT NOT NULL, key TEXT NOT NULL, op TEXT NOT NULL, body TEXT,"
    " UNIQUE (kind, key))",
)


class SqliteStore:
    """A `StateStore` in ``state_dir/state.sqlite3``.

    WAL journal with ``synchronous=FULL``: a commit is fsynced before the
    call returns, so a change the API confirmed survives a power cut (the
    cost, a few milliseconds per change, is paid per call, and batches share
    one transaction).  The connection is opened on first use and again in a
    child after a fork (twistd daemonises after the service is built).
    """

    def __init__(self, state_dir: str) -> None:
        self.state_dir = state_dir
        self.path = os.path.join(state_dir, DB_NAME)
        self._conn: sqlite3.Connection | None = None
        self._pid = 0
        self._lock = threading.Lock()

    def _connect(self) -> sqlite3.Connection:
        if self._conn is not None and self._pid == os.getpid():
            return self._conn
        self._conn = None  # a parent's connection must not be used after fork
        try:
            os.makedirs(self.state_dir, mode=0o750, exist_ok=True)
            # Neighbor tables may hold MD5 keys: owner only.  SQLite gives
            # its -wal and -shm files the database file's mode.
            os.close(os.open(self.path, os.O_RDWR | os.O_CREAT, 0o600))
            # A large batch is written from a thread (bgpd.statecontrol),
            # every other change on the reactor thread; _lock keeps them apart.
            conn = sqlite3.connect(self.path, isolation_level=None, timeout=5.0, check_same_thread=False)
        except (OSError, sqlite3.Error) as e:
            raise StateError(self.path, f"cannot open: {e}") from None
        try:
            mode = conn.execute("PRAGMA journal_mode=WAL").fetchone()
            conn.execute("PRAGMA synchronous=FULL")
            conn.execute("BEGIN IMMEDIATE")
            for stmt in _SCHEMA:
                conn.execute(stmt)
            rows = conn.execute("SELECT version FROM schema_version").fetchall()
            if not rows:
                conn.execute("INSERT INTO schema_version VALUES (?)", (SCHEMA_VERSION,))
            elif len(rows) != 1 or rows[0][0] != SCHEMA_VERSION:
                conn.execute("ROLLBACK")
                conn.close()
                found = ", ".join(str(r[0]) for r in rows)
                raise CorruptState(self.path, f"schema version {found}, this bgpd reads {SCHEMA_VERSION}")
            conn.execute("COMMIT")
        except sqlite3.DatabaseError as e:
            conn.close()
            # "file is not a database", "database disk image is malformed"
            raise CorruptState(self.path, str(e)) from None
        except sqlite3.Error as e:
            conn.close()
            raise StateError(self.path, str(e)) from None
        if mode is None or str(mode[0]).lower() != "wal":
            conn.close()
            raise StateError(self.path, f"cannot use a WAL journal here (got {mode!r})")
        self._conn, self._pid = conn, os.getpid()
        return conn

    def changes(self) -> list[Change]:
        with self._lock:
            return self._changes()

    def _changes(self) -> list[Change]:
        conn = self._connect()
        try:
            rows = conn.execute("SELECT seq, kind, key, op, body FROM changes ORDER BY seq").fetchall()
        except sqlite3.DatabaseError as e:
            raise CorruptState(self.path, str(e)) from None
        return [_decode(*row) for row in rows]

    def record(self, changes: Sequence[Change]) -> list[Change]:
        bodies = [_encode(c) for c in changes]
        with self._lock:
            return self._record(changes, bodies)

    def _record(self, changes: Sequence[Change], bodies: list[str | None]) -> list[Change]:
        conn = self._connect()
        out = []
        try:
            conn.execute("BEGIN IMMEDIATE")
            try:
                for c, body in zip(changes, bodies, strict=True):
                    conn.execute("DELETE FROM changes WHERE kind = ? AND key = ?", (c.kind, c.key))
                    if c.op == "clear":
                        continue
                    cur = conn.execute(
                        "INSERT INTO changes (kind, key, op, body) VALUES (?, ?, ?, ?)",
                        (c.kind, c.key, c.op, body))
                    out.append(Change(c.kind, c.key, c.op, c.table, int(cur.lastrowid or 0)))
                conn.execute("COMMIT")
            except BaseException:
                conn.execute("ROLLBACK")
                raise
        except sqlite3.Error as e:
            raise StateError(self.path, f"write failed, nothing was changed: {e}") from None
        return out

    def reset_corrupt(self) -> str:
        self.close()
        if not os.path.exists(self.path):
            return "(no file)"
        return move_aside(self.path)

    def close(self) -> None:
        if self._conn is not None:
            if self._pid == os.getpid():
                self._conn.close()
            self._conn = None


def move_aside(path: str, now: float | None = None) -> str:
    """Rename a bad state file (and its WAL files) to ``path.corrupt-<UTC time>``; return the new name."""
    stamp = time.strftime("%Y%m%dT%H%M%SZ", time.gmtime(time.time() if now is None else now))
    target = f"{path}.corrupt-{stamp}"
    n = 1
    while os.path.exists(target):
        n += 1
        target = f"{path}.corrupt-{stamp}-{n}"
    os.replace(path, target)
    for suffix in ("-wal", "-shm"):
        if os.path.exists(path + suffix):
            os.replace(path + suffix, target + suffix)
    return target
