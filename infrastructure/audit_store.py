"""The audit store: one table of CloudTrail-shaped records per region, apart from the ledger.

* SQLite: ``<data-dir>/regions/<region>/audit.db`` (WAL, ``synchronous=FULL`` like the ledger:
  a committed record survives a crash of the process and of the machine).
* PostgreSQL: table ``keyledger_audit`` in the region's schema ``keyledger_<region>``.

A record is stored as its canonical JSON bytes (``record``) beside the columns the queries
filter on. ``position`` is the store's own order (the order records were committed in), which
the tamper-evidence chain follows.
"""

from __future__ import annotations

import sqlite3
import threading
from collections.abc import Sequence
from pathlib import Path
from typing import Any

import psycopg
from psycopg.sql import SQL, Identifier

from application.audit import AuditQuery, AuditRow

__all__ = ["AuditQuery", "AuditRow", "AuditStore", "PostgresAuditStore", "SQLiteAuditStore"]

TABLE = "keyledger_audit"
_COLUMNS = "event_time, account, key_id, principal, event_name, error_code, request_id, event_id, record"


class AuditStore:
    """Append and query audit records (SQLite or PostgreSQL)."""

    def append(self, rows: Sequence[AuditRow]) -> None:
        raise NotImplementedError

    def query(self, query: AuditQuery) -> list[tuple[int, bytes]]:
        """(position, record) newest first."""
        raise NotImplementedError

    def after(self, position: int, limit: int) -> list[tuple[int, float, bytes]]:
        """(position, event_time, record) after ``position``, oldest first (chain, export)."""
        raise NotImplementedError


    def close(self) -> None:
        raise NotImplementedError

    @staticmethod
    def _where(query: AuditQuery, placeholder: str) -> tuple[str, list[Any]]:
        clauses, args = [], []
        for column, value in (("account", query.account), ("key_id", query.key_id),
                              ("principal", query.principal), ("event_name", query.event_name)):
            if value is not None:
                clauses.append(f"{column} = {placeholder}")
                args.append(value)
        if query.principal_prefix is not None:
            clauses.append(f"substr(principal, 1, {placeholder}) = {placeholder}")
            args.extend((len(query.principal_prefix), query.principal_prefix))
        if query.start is not None:
            clauses.append(f"event_time >= {placeholder}")
            args.append(query.start)
        if query.end is not None:
            clauses.append(f"event_time <= {placeholder}")
            args.append(query.end)
        if query.errors_only:
            clauses.append("error_code IS NOT NULL")
        if query.before_position is not None:
            clauses.append(f"position < {placeholder}")
            args.append(query.before_position)
        return (" WHERE " + " AND ".join(clauses)) if clauses else "", args


class SQLiteAuditStore(AuditStore):
    def __init__(self, path: Path) -> None:
        self.path = Path(path)
        self._lock = threading.Lock()
        self._db = sqlite3.connect(self.path, isolation_level=None, check_same_thread=False,
                                   timeout=30)
        self._db.execute("PRAGMA journal_mode=WAL")
        self._db.execute("PRAGMA synchronous=FULL")
        self._db.executescript(f"""
            CREATE TABLE IF NOT EXISTS {TABLE} (
                position INTEGER PRIMARY KEY AUTOINCREMENT,
                event_time REAL NOT NULL,
                account TEXT NOT NULL,
                key_id TEXT,
                principal TEXT,
                event_name TEXT NOT NULL,
                error_code TEXT,
                request_id TEXT,
                event_id TEXT NOT NULL,
                record BLOB NOT NULL
            );
            CREATE INDEX IF NOT EXISTS {TABLE}_time ON {TABLE} (event_time);
            CREATE INDEX IF NOT EXISTS {TABLE}_key ON {TABLE} (key_id, position);
            CREATE INDEX IF NOT EXISTS {TABLE}_principal ON {TABLE} (principal, position);
        """)

    def append(self, rows: Sequence[AuditRow]) -> None:
        with self._lock:
            try:
                self._db.execute("BEGIN IMMEDIATE")
                self._db.executemany(
                    f"INSERT INTO {TABLE} ({_COLUMNS}) VALUES (?, ?, ?, ?, ?, ?, ?, ?, ?)",
                    [row.values() for row in rows],
                )
                self._db.execute("COMMIT")
            except BaseException:
                if self._db.in_transaction:
                    self._db.execute("ROLLBACK")
                raise

    def query(self, query: AuditQuery) -> list[tuple[int, bytes]]:
        where, args = self._where(query, "?")
        with self._lock:
            return self._db.execute(
                f"SELECT position, record FROM {TABLE}{where} ORDER BY position DESC LIMIT ?",
                [*args, query.limit],
            ).fetchall()

    def after(self, position: int, limit: int) -> list[tuple[int, float, bytes]]:
        with self._lock:
            return self._db.execute(
                f"SELECT position, event_time, record FROM {TABLE} WHERE position > ? "
                "ORDER BY position LIMIT ?", (position, limit),
            ).fetchall()


    def close(self) -> None:
        with self._lock:
            self._db.close()


class PostgresAuditStore(AuditStore):
    def __init__(self, conninfo: dict[str, Any], schema: str) -> None:
        self._conninfo = conninfo
        self._table = Identifier(schema, TABLE)
        self._lock = threading.Lock()
        self._conn = psycopg.connect(**conninfo, autocommit=True)
        self._conn.execute(SQL("""
            CREATE TABLE IF NOT EXISTS {t} (
                position BIGSERIAL PRIMARY KEY,
                event_time DOUBLE PRECISION NOT NULL,
                account TEXT NOT NULL,
                key_id TEXT,
                principal TEXT,
                event_name TEXT NOT NULL,
                error_code TEXT,
                request_id TEXT,
                event_id TEXT NOT NULL,
                record BYTEA NOT NULL
            )""").format(t=self._table))
        for name, columns in (("time", "event_time"), ("key", "key_id, position"),
                              ("principal", "principal, position")):
            self._conn.execute(SQL("CREATE INDEX IF NOT EXISTS {i} ON {t} (" + columns + ")").format(
                i=Identifier(f"{TABLE}_{name}"), t=self._table))

    def append(self, rows: Sequence[AuditRow]) -> None:
        with self._lock, self._conn.transaction(), self._conn.cursor() as cursor:
            # Writers of every process take turns, so positions are committed in order and a
            # reader that follows "position > last seen" never skips a late-committing row.
            cursor.execute(SQL("LOCK TABLE {t} IN EXCLUSIVE MODE").format(t=self._table))
            cursor.executemany(
                SQL("INSERT INTO {t} (" + _COLUMNS + ") VALUES (%s, %s, %s, %s, %s, %s, %s, %s, %s)")
                .format(t=self._table),
                [row.values() for row in rows],
            )

    def query(self, query: AuditQuery) -> list[tuple[int, bytes]]:
        where, args = self._where(query, "%s")
        with self._lock:
            rows = self._conn.execute(
                SQL("SELECT position, record FROM {t}" + where + " ORDER BY position DESC LIMIT %s")
                .format(t=self._table), [*args, query.limit],
            ).fetchall()
        return [(position, bytes(record)) for position, record in rows]

    def after(self, position: int, limit: int) -> list[tuple[int, float, bytes]]:
        with self._lock:
            rows = self._conn.execute(
                SQL("SELECT position, event_time, record FROM {t} WHERE position > %s "
                    "ORDER BY position LIMIT %s").format(t=self._table), (position, limit),
            ).fetchall()
        return [(p, t, bytes(r)) for p, t, r in rows]


    def close(self) -> None:
        with self._lock:
            self._conn.close()
