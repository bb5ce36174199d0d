"""The keyring: each KMS key's data-encryption key (DEK), wrapped by the root key.

This is the one mutable store beside the immutable ledger. Key material in events is
sealed under the key's DEK; destroying the DEK (when deletion completes) is what makes
the material unrecoverable even though the events themselves are never changed
(crypto-shredding). Deleted rows are overwritten: SQLite runs with ``secure_delete`` and a
write-ahead log truncated after each shred, PostgreSQL vacuums the table after a shred.
"""

from __future__ import annotations

import sqlite3
import threading
import time
from pathlib import Path
from typing import Protocol

from psycopg.sql import SQL, Identifier

from infrastructure.sqlite_files import open_sqlite_read_only


class Keyring(Protocol):
    def put_many(self, rows: list[tuple[str, bytes]]) -> None: ...
    def get(self, key_id: str) -> bytes | None: ...
    def entries(self) -> list[tuple[str, bytes]]: ...
    def destroy(self, key_id: str) -> None: ...
    def close(self) -> None: ...


_CREATE_DATA_KEYS = (
    "CREATE TABLE IF NOT EXISTS data_keys (key_id TEXT PRIMARY KEY, wrapped BLOB NOT NULL)")


class SQLiteKeyring:
    def __init__(self, path: Path, read_only: bool = False) -> None:
        """``read_only``: for the commands that read a store (a copied data dir too): the file
        is opened read-only, and a missing one reads as an empty keyring; nothing is created."""
        self._lock = threading.Lock()
        if read_only:
            db = open_sqlite_read_only(path)
            if db is None:
                db = sqlite3.connect(":memory:", check_same_thread=False)
                db.execute(_CREATE_DATA_KEYS)
            self._db = db
            return
        path.parent.mkdir(parents=True, exist_ok=True)
        self._db = sqlite3.connect(path, check_same_thread=False, isolation_level=None, timeout=30)
        self._db.execute("PRAGMA journal_mode=WAL")
        self._db.execute("PRAGMA synchronous=FULL")
        self._db.execute("PRAGMA secure_delete=ON")
        self._db.execute(_CREATE_DATA_KEYS)

    def put_many(self, rows: list[tuple[str, bytes]]) -> None:
        with self._lock:
            self._db.execute("BEGIN IMMEDIATE")
            try:
                self._db.executemany(
                    "INSERT INTO data_keys VALUES (?, ?) ON CONFLICT (key_id) DO NOTHING", rows
                )
            except BaseException:
                self._db.execute("ROLLBACK")
                raise
            self._db.execute("COMMIT")

    def get(self, key_id: str) -> bytes | None:
        with self._lock:
            row = self._db.execute(
                "SELECT wrapped FROM data_keys WHERE key_id = ?", (key_id,)
            ).fetchone()
        return None if row is None else bytes(row[0])

    def entries(self) -> list[tuple[str, bytes]]:
        """Every wrapped data key (for ``keyledger fork``)."""
        with self._lock:
            return [(k, bytes(w)) for k, w in self._db.execute("SELECT key_id, wrapped FROM data_keys")]

    def destroy(self, key_id: str) -> None:
        with self._lock:
            self._db.execute("DELETE FROM data_keys WHERE key_id = ?", (key_id,))
            # secure_delete zeroes the row in the database pages; truncating the write-ahead
            # log removes the frames that still held it. Another process reading the keyring
            # can hold the checkpoint back for a moment: wait for it.
            for _ in range(100):
                busy, _, _ = self._db.execute("PRAGMA wal_checkpoint(TRUNCATE)").fetchone()
                if not busy:
                    return
                time.sleep(0.05)
            raise RuntimeError(f"could not truncate the keyring's write-ahead log ({key_id})")

    def close(self) -> None:
        with self._lock:
            self._db.close()


class PostgresKeyring:
    """Uses the region's PostgreSQL datastore (its pool); the table lives in the region schema."""

    def __init__(self, datastore) -> None:  # eventsourcing.postgres.PostgresDatastore
        self._datastore = datastore
        self._table = SQL("{}.{}").format(Identifier(datastore.schema), Identifier("data_keys"))
        with datastore.transaction(commit=True) as cursor:
            cursor.execute(
                SQL(
                    "CREATE TABLE IF NOT EXISTS {} (key_id TEXT PRIMARY KEY, wrapped BYTEA NOT NULL)"
                ).format(self._table)
            )

    def put_many(self, rows: list[tuple[str, bytes]]) -> None:
        with self._datastore.transaction(commit=True) as cursor:
            cursor.executemany(
                SQL("INSERT INTO {} VALUES (%s, %s) ON CONFLICT (key_id) DO NOTHING").format(
                    self._table
                ),
                rows,
            )

    def get(self, key_id: str) -> bytes | None:
        with self._datastore.transaction(commit=False) as cursor:
            cursor.execute(SQL("SELECT wrapped FROM {} WHERE key_id = %s").format(self._table), (key_id,))
            row = cursor.fetchone()
        return None if row is None else bytes(row["wrapped"])

    def entries(self) -> list[tuple[str, bytes]]:
        with self._datastore.transaction(commit=False) as cursor:
            cursor.execute(SQL("SELECT key_id, wrapped FROM {}").format(self._table))
            return [(row["key_id"], bytes(row["wrapped"])) for row in cursor.fetchall()]

    def destroy(self, key_id: str) -> None:
        with self._datastore.transaction(commit=True) as cursor:
            cursor.execute(SQL("DELETE FROM {} WHERE key_id = %s").format(self._table), (key_id,))
        # Remove the dead tuple now rather than whenever autovacuum comes by.
        with self._datastore.get_connection() as conn:
            conn.autocommit = True
            try:
                conn.execute(SQL("VACUUM {}").format(self._table))
            finally:
                conn.autocommit = False

    def close(self) -> None:
        pass
