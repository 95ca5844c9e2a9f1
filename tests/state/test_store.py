"""The state store: atomic, ordered, durable writes; corrupt files detected by key."""

from __future__ import annotations

import os
import sqlite3
import tempfile

from twisted.trial.unittest import SynchronousTestCase

from bgpd.state.store import (
    SCHEMA_VERSION,
    Change,
    CorruptState,
    MemoryStore,
    SqliteStore,
    StateError,
    StateStore,
)

N1 = Change("neighbor", "192.0.2.2", "put", {"address": "192.0.2.2", "remote_as": 65002})
N2 = Change("neighbor", "192.0.2.3", "put", {"address": "192.0.2.3", "remote_as": 65003})
O1 = Change("originate", "198.51.100.0/24", "put", {"prefix": "198.51.100.0/24", "med": 10})


def _plain(changes: list[Change]) -> list[tuple]:
    return [(c.kind, c.key, c.op, c.table) for c in changes]


class _StoreContract:
    """What every StateStore does; mixed into one test case per implementation."""

    def make(self) -> StateStore:
        raise NotImplementedError

    def test_is_a_state_store(self):
        """The implementation satisfies the declared interface."""
        self.assertIsInstance(self.make(), StateStore)

    def test_read_back_in_order(self):
        """Changes come back in the order they were made, tables intact."""
        store = self.make()
        stored = store.record([N1, O1])
        store.record([N2])
        self.assertEqual(_plain(store.changes()), _plain([N1, O1, N2]))
        self.assertTrue(stored[0].seq < stored[1].seq)

    def test_same_key_replaces_and_moves_last(self):
        """A later change of one key replaces its row and takes the latest place."""
        store = self.make()
        store.record([N1, N2])
        again = Change("neighbor", "192.0.2.2", "put", {"address": "192.0.2.2", "remote_as": 65099})
        store.record([again])
        self.assertEqual(_plain(store.changes()), _plain([N2, again]))

    def test_remove_kept_clear_forgets(self):
        """A remove is a stored row; a clear deletes the row and stores nothing."""
        store = self.make()
        store.record([N1, N2])
        store.record([Change("neighbor", "192.0.2.2", "remove"), Change("neighbor", "192.0.2.3", "clear")])
        self.assertEqual(_plain(store.changes()), [("neighbor", "192.0.2.2", "remove", None)])

    def test_unstorable_batch_changes_nothing(self):
        """A batch with one value that cannot be stored raises and writes none of it."""
        store = self.make()
        store.record([N1])
        bad = Change("originate", "203.0.113.0/24", "put", {"prefix": object()})
        self.assertRaises(StateError, store.record, [N2, bad])
        self.assertEqual(_plain(store.changes()), _plain([N1]))

    def test_change_checks_its_shape(self):
        """A put without a table, or an unknown kind, is refused when built."""
        self.assertRaises(ValueError, Change, "neighbor", "192.0.2.2", "put")
        self.assertRaises(ValueError, Change, "bgp", "", "put", {})


class MemoryStoreTests(_StoreContract, SynchronousTestCase):
    def make(self) -> StateStore:
        return MemoryStore()

    def test_fail_raises_and_changes_nothing(self):
        """With ``fail`` set every write raises StateError and nothing changes."""
        store = MemoryStore([N1])
        store.fail = "disk full"
        self.assertRaises(StateError, store.record, [N2])
        self.assertEqual(_plain(store.changes()), _plain([N1]))


class SqliteStoreTests(_StoreContract, SynchronousTestCase):
    def setUp(self):
        self.dir = tempfile.mkdtemp(prefix="bgpd-state-")
        self.state_dir = os.path.join(self.dir, "state")

    def tearDown(self):
        for root, dirs, files in os.walk(self.dir, topdown=False):
            for name in files:
                os.unlink(os.path.join(root, name))
            for name in dirs:
                os.rmdir(os.path.join(root, name))
        os.rmdir(self.dir)

    def make(self) -> SqliteStore:
        store = SqliteStore(self.state_dir)
        self.addCleanup(store.close)
        return store

    def test_survives_reopen(self):
        """What one store wrote, a new store on the same directory reads back."""
        store = self.make()
        store.record([N1, O1])
        store.close()
        self.assertEqual(_plain(self.make().changes()), _plain([N1, O1]))

    def test_wal_and_full_sync(self):
        """The database runs a WAL journal with synchronous=FULL, and records its schema version."""
        store = self.make()
        store.record([N1])
        conn = store._connect()
        self.assertEqual(conn.execute("PRAGMA journal_mode").fetchone()[0], "wal")
        self.assertEqual(conn.execute("PRAGMA synchronous").fetchone()[0], 2)
        self.assertEqual(conn.execute("SELECT version FROM schema_version").fetchall(), [(SCHEMA_VERSION,)])

    def test_file_is_private(self):
        """The database (which may hold MD5 keys) is readable by its owner only."""
        store = self.make()
        store.record([N1])
        for name in os.listdir(self.state_dir):
            mode = os.stat(os.path.join(self.state_dir, name)).st_mode & 0o777
            self.assertEqual(mode & 0o077, 0, (name, oct(mode)))

    def test_failure_inside_the_transaction_rolls_back(self):
        """A write that fails half-way through a batch leaves no part of it stored."""
        store = self.make()
        store.record([N1])
        store._connect().execute(
            "CREATE TRIGGER boom BEFORE INSERT ON changes WHEN NEW.key = '192.0.2.3' "
            "BEGIN SELECT RAISE(ABORT, 'disk full'); END")
        err = self.assertRaises(StateError, store.record, [O1, N2])
        self.assertIn("disk full", str(err))
        self.assertEqual(_plain(store.changes()), _plain([N1]))

    def test_unwritable_directory(self):
        """A state_dir that cannot be made raises StateError naming the file, on read and write."""
        blocker = os.path.join(self.dir, "file")
        with open(blocker, "w") as f:
            f.write("not a directory")
        store = SqliteStore(os.path.join(blocker, "state"))
        self.assertRaises(StateError, store.changes)
        err = self.assertRaises(StateError, store.record, [N1])
        self.assertIn(os.path.join(blocker, "state"), err.key)

    def test_garbage_file_is_corrupt_and_set_aside(self):
        """A file that is not a database is CorruptState; reset_corrupt renames it with a timestamp."""
        os.makedirs(self.state_dir)
        path = os.path.join(self.state_dir, "state.sqlite3")
        with open(path, "wb") as f:
            f.write(b"this is not sqlite" * 300)
        store = self.make()
        err = self.assertRaises(CorruptState, store.changes)
        self.assertEqual(err.key, path)
        moved = store.reset_corrupt()
        self.assertTrue(moved.startswith(path + ".corrupt-"), moved)
        with open(moved, "rb") as f:
            self.assertTrue(f.read().startswith(b"this is not sqlite"))
        self.assertEqual(store.changes(), [])
        store.record([N1])
        self.assertEqual(_plain(store.changes()), _plain([N1]))

    def test_bad_row_is_reported_by_key(self):
        """A row whose table is not JSON is CorruptState naming the change's key."""
        store = self.make()
        store.record([N1])
        store._connect().execute("UPDATE changes SET body = '{not json' WHERE key = '192.0.2.2'")
        err = self.assertRaises(CorruptState, store.changes)
        self.assertEqual(err.key, "neighbor 192.0.2.2")

    def test_unknown_schema_version_is_corrupt(self):
        """A schema version this bgpd does not know is refused, naming the version."""
        store = self.make()
        store.record([N1])
        store.close()
        conn = sqlite3.connect(os.path.join(self.state_dir, "state.sqlite3"))
        conn.execute("UPDATE schema_version SET version = 99")
        conn.commit()
        conn.close()
        err = self.assertRaises(CorruptState, self.make().changes)
        self.assertIn("schema version 99", str(err))
