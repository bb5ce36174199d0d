"""The audit store: one table of CloudTrail-shaped records per region, apart from the ledger.

* SQLite: ``<data-dir>/regions/<region>/audit.db`` (WAL, ``synchronous=FULL`` like the ledger:
  a committed record survives a crash of the process and of the machine).
* PostgreSQL: table ``keyledger_audit`` in the region's schema ``keyledger_<region>``.

A record is stored as its canonical JSON bytes (``record``) beside the columns the queries
filter on. ``position`` is the store's own order (the order records were committed in), which
the tamper-evidence chain follows.

The records KMS writes itself that a crash could make it write twice (a replica Region's
entries for the events it applied: written before the events are saved, and again if the
process dies in between) carry an eventID derived from what they record; a unique partial
index on ``event_id`` of the records without a caller (``principal IS NULL``) keeps one row
of each, and ``append`` leaves out a row whose eventID is already stored there. Requests'
records have random eventIDs and are never left out.

A key's records are those naming it first (``key_id``) and the ReEncrypt records naming it as
their destination (``resources[1]``): a partial index on that expression of the record, built
by the database from the stored bytes, so the write path and the chained columns stay as they
are and records stored before the index existed are found too.
"""

from __future__ import annotations

import contextlib
import sqlite3
import threading
from collections.abc import Callable, Sequence
from pathlib import Path
from typing import Any

import psycopg
from psycopg.sql import SQL, Identifier

from application.audit import AuditQuery, AuditRow
from infrastructure.sqlite_files import insert_rows, open_sqlite_read_only

__all__ = ["AuditQuery", "AuditRow", "AuditStore", "PostgresAuditStore", "SQLiteAuditStore"]

TABLE = "keyledger_audit"
#: the operation whose records name a second key: ReEncrypt's destination (resources[1])
SECOND_KEY_OPERATION = "ReEncrypt"
_COLUMNS = "event_time, account, key_id, principal, event_name, error_code, request_id, event_id, record"
#: the records of role sessions (the role index's rows; a query by role names it as it is)
SESSIONS = "substr(principal, 1, 13) = 'arn:aws:sts::'"
#: the records whose eventID is unique in the store (AuditStore docstring)
_ONCE = "principal IS NULL"
_ONCE_INDEX = f"CREATE UNIQUE INDEX IF NOT EXISTS {TABLE}_once ON {{table}} (event_id) WHERE {_ONCE}"
_INSERT_HEAD = f"INSERT INTO {{table}} ({_COLUMNS})"
_ON_CONFLICT = f"ON CONFLICT (event_id) WHERE {_ONCE} DO NOTHING"
_INSERT = _INSERT_HEAD + " VALUES ({values}) " + _ON_CONFLICT
#: a record unless it is stored already (found by its time, then its eventID: the time index)
_INSERT_MISSING = (_INSERT_HEAD + " SELECT {values} WHERE NOT EXISTS "
                   "(SELECT 1 FROM {table} WHERE event_time = {p} AND event_id = {p}) "
                   + _ON_CONFLICT)


def _callers(rows: Sequence[AuditRow]) -> int:
    """How many of ``rows`` are requests' records: their eventIDs are random, none is ever
    left out as stored already (the AuditStore docstring)."""
    return sum(row.principal is not None for row in rows)


def _check_stored(stored: int, at_least: int) -> None:
    """Fewer rows stored than requests' records given: something in the store (a trigger)
    swallowed some; the transaction is rolled back and the requests fail, as when the store
    cannot be written, rather than be answered unaudited."""
    if stored < at_least:
        raise RuntimeError(f"the audit store kept {stored} of {at_least} requests' records")


def _check_present(found: Callable[[str, tuple], Any], table: str, placeholder: str,
                   rows: Sequence[AuditRow]) -> None:
    """Every row of ``rows`` is in the store (append_missing, in its transaction): found by
    its time and eventID, or, for KMS's own records (one per eventID), by its eventID. A row
    neither stored nor stored already (a trigger swallowed it) fails the move, as a commit
    that stores fewer requests' records than it was given fails: the spool keeps it."""
    by_time = (f"SELECT 1 FROM {table} WHERE event_time = {placeholder} "
               f"AND event_id = {placeholder} LIMIT 1")
    once = f"SELECT 1 FROM {table} WHERE event_id = {placeholder} AND {_ONCE} LIMIT 1"
    lost = sum(
        not found(once, (row.event_id,)) if row.principal is None
        else not found(by_time, (row.event_time, row.event_id))
        for row in rows)
    if lost:
        raise RuntimeError(f"the audit store did not keep {lost} of {len(rows)} records moved "
                           "into it")


class AuditStore:
    """Append and query audit records (SQLite or PostgreSQL)."""

    def append(self, rows: Sequence[AuditRow]) -> None:
        raise NotImplementedError

    def append_missing(self, rows: Sequence[AuditRow]) -> None:
        """Append the rows not stored already (a spool drained twice: application.audit)."""
        raise NotImplementedError

    @staticmethod
    def _missing_args(rows: Sequence[AuditRow]) -> list[tuple[Any, ...]]:
        return [(*row.values(), row.event_time, row.event_id) for row in rows]

    def query(self, query: AuditQuery) -> list[tuple[int, bytes]]:
        """(position, record) newest first."""
        raise NotImplementedError

    def after(self, position: int, limit: int) -> list[tuple[int, float, bytes]]:
        """(position, event_time, record) after ``position``, oldest first (chain, export)."""
        raise NotImplementedError

    def first_of_key(self, account: str, key_id: str) -> bytes | None:
        """The oldest record kept that names the key first (its CreateKey, unless retention
        pruned it or the key is older than the audit)."""
        raise NotImplementedError

    def _first_of_key_sql(self, placeholder: str) -> str:
        return (f"SELECT record FROM {self._table_sql} WHERE key_id = {placeholder} "
                f"AND account = {placeholder} ORDER BY position LIMIT 1")


    def close(self) -> None:
        raise NotImplementedError

    #: SQL of a record's second key id (the destination of a ReEncrypt record), per store
    _second_key: str
    #: the table's name as SQL
    _table_sql: str

    def _select(self, query: AuditQuery, placeholder: str) -> tuple[str, list[Any]]:
        """``SELECT position, record ...`` newest first, ``query.limit`` rows: a key's records
        are the union of those naming it first and the ReEncrypt records naming it second."""
        clauses, args = self._where(query, placeholder)
        if query.key_id is None:
            return self._arm(clauses) + f" ORDER BY position DESC LIMIT {placeholder}", [
                *args, query.limit]
        newest = f" ORDER BY position DESC LIMIT {placeholder}"  # each arm stops early
        first = self._arm([f"key_id = {placeholder}", *clauses]) + newest
        second = self._arm([f"event_name = '{SECOND_KEY_OPERATION}'",
                            f"{self._second_key} = {placeholder}", *clauses]) + newest
        return (f"SELECT * FROM ({first}) AS named_first UNION "
                f"SELECT * FROM ({second}) AS named_second{newest}",
                [query.key_id, *args, query.limit, query.key_id, *args, query.limit, query.limit])

    def _arm(self, clauses: list[str]) -> str:
        where = (" WHERE " + " AND ".join(clauses)) if clauses else ""
        return f"SELECT position, record FROM {self._table_sql}{where}"

    #: SQL of a role session's role (its ARN up to the session name: ``arn:aws:sts::ACCOUNT:
    #: assumed-role/NAME/``), per store; indexed, with the position, for the role's sessions
    _role: str

    def _where(self, query: AuditQuery, placeholder: str) -> tuple[list[str], list[Any]]:
        """The filters but the key (_select applies it)."""
        clauses, args = [], []
        for column, value in (("account", query.account), ("principal", query.principal),
                              ("event_name", query.event_name)):
            if value is not None:
                clauses.append(f"{column} = {placeholder}")
                args.append(value)
        if query.principal_prefix is not None:  # a role's sessions: the role index, newest first
            clauses += [SESSIONS, f"{self._role} = {placeholder}"]
            args.append(query.principal_prefix)
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
        return clauses, args


_SQLITE_ARN = "json_extract(CAST(record AS TEXT), '$.resources[1].ARN')"


class SQLiteAuditStore(AuditStore):
    _second_key = f"substr({_SQLITE_ARN}, instr({_SQLITE_ARN}, ':key/') + 5)"
    # (trimmed from the right of every character but '/': up to the last '/')
    _role = "rtrim(principal, replace(principal, '/', ''))"
    _table_sql = TABLE

    def __init__(self, path: Path, read_only: bool = False) -> None:
        """``read_only``: for the commands that read a store (a copied data dir too): the file
        is opened read-only and nothing is created, not even an index."""
        self.path = Path(path)
        self._lock = threading.Lock()
        if read_only:
            db = open_sqlite_read_only(self.path)
            if db is None:
                raise sqlite3.OperationalError(f"no audit store at {self.path}")
            self._db = db
            return
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
            CREATE INDEX IF NOT EXISTS {TABLE}_second_key ON {TABLE} ({self._second_key}, position)
                WHERE event_name = '{SECOND_KEY_OPERATION}';
            CREATE INDEX IF NOT EXISTS {TABLE}_role ON {TABLE} ({self._role}, position)
                WHERE {SESSIONS};
            {_ONCE_INDEX.format(table=TABLE)};
        """)

    def append(self, rows: Sequence[AuditRow]) -> None:
        self._insert(lambda: insert_rows(self._db, _INSERT_HEAD.format(table=TABLE), rows,
                                             _ON_CONFLICT),
                     _callers(rows))

    def append_missing(self, rows: Sequence[AuditRow]) -> None:
        sql = _INSERT_MISSING.format(table=TABLE, values=", ".join("?" * 9), p="?")

        def write() -> int:
            stored = self._db.executemany(sql, self._missing_args(rows)).rowcount
            _check_present(lambda query, args: self._db.execute(query, args).fetchone(),
                           TABLE, "?", rows)
            return stored

        self._insert(write)

    def _insert(self, write: Callable[[], int], at_least: int = 0) -> None:
        """``write`` (returns the rows it stored) in a transaction of its own."""
        with self._lock:
            try:
                self._db.execute("BEGIN IMMEDIATE")
                _check_stored(write(), at_least)
                self._db.execute("COMMIT")
            except BaseException:
                if self._db.in_transaction:
                    self._db.execute("ROLLBACK")
                raise

    def query(self, query: AuditQuery) -> list[tuple[int, bytes]]:
        sql, args = self._select(query, "?")
        with self._lock:
            return self._db.execute(sql, args).fetchall()

    def first_of_key(self, account: str, key_id: str) -> bytes | None:
        with self._lock:
            row = self._db.execute(self._first_of_key_sql("?"), (key_id, account)).fetchone()
        return None if row is None else row[0]

    def after(self, position: int, limit: int) -> list[tuple[int, float, bytes]]:
        with self._lock:
            return self._db.execute(
                f"SELECT position, event_time, record FROM {TABLE} WHERE position > ? "
                "ORDER BY position LIMIT ?", (position, limit),
            ).fetchall()


    def close(self) -> None:
        with self._lock:
            self._db.close()


#: the function (in the region's schema) the second-key index and queries read a record's text
#: through, and its body (``keyledger verify`` checks that it is still this one)
RECORD_TEXT = "keyledger_record_text"
RECORD_TEXT_BODY = "SELECT convert_from($1, 'UTF8')"

#: the key id of the second ARN in ``resources``, found in the canonical JSON without parsing it:
#: PostgreSQL's JSON types refuse the escape ``\u0000`` that a caller's encryption context may
#: hold, and an index expression that fails would fail the record's whole group commit. Keys
#: are sorted and strings escape their quotes, so only the record's own ``resources`` array
#: matches; its entries hold no braces.
_PG_SECOND_ARN = r'"resources":\[\{[^{}]*\},\{"ARN":"[^"]*:key/([^"]+)"'


class PostgresAuditStore(AuditStore):
    _role = "substring(principal from '^(.*/)')"

    def __init__(self, conninfo: dict[str, Any], schema: str, read_only: bool = False) -> None:
        """``read_only``: nothing is created (SQLiteAuditStore)."""
        self._conninfo = conninfo
        self._table = Identifier(schema, TABLE)
        self._lock = threading.Lock()
        self._conn = psycopg.connect(**conninfo, autocommit=True)
        self._table_sql = self._table.as_string(self._conn)
        text = Identifier(schema, RECORD_TEXT)
        self._second_key = f"substring({text.as_string(self._conn)}(record) from '{_PG_SECOND_ARN}')"
        if read_only:
            return
        # convert_from is STABLE (its conversion is looked up at run time), so an index
        # cannot call it; the records are UTF-8 JSON and the database's encoding cannot change
        # under the index: this wrapper may say IMMUTABLE.
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
        self._conn.execute(SQL(f"CREATE INDEX IF NOT EXISTS {{i}} ON {{t}} ({self._role}, "
                               f"position) WHERE {SESSIONS}").format(
            i=Identifier(f"{TABLE}_role"), t=self._table))
        self._conn.execute(_ONCE_INDEX.format(table=self._table_sql))
        index = f"{TABLE}_second_key"
        qualified = Identifier(schema, index).as_string(self._conn)
        if self._conn.execute("SELECT to_regclass(%s)", (qualified,)).fetchone()[0] is None:
            # made once (a new store, or one written before the index), its function with it:
            # opening a store then writes nothing
            self._conn.execute(SQL(
                "CREATE OR REPLACE FUNCTION {f}(bytea) RETURNS text LANGUAGE sql IMMUTABLE "
                "STRICT PARALLEL SAFE AS $$" + RECORD_TEXT_BODY + "$$").format(f=text))
            self._conn.execute(f"CREATE INDEX {Identifier(index).as_string(self._conn)} ON "
                               f"{self._table_sql} ({self._second_key}, position) "
                               f"WHERE event_name = '{SECOND_KEY_OPERATION}'")

    def append(self, rows: Sequence[AuditRow]) -> None:
        self._insert(_INSERT.format(table=self._table_sql, values=", ".join(["%s"] * 9)),
                     [row.values() for row in rows], _callers(rows))

    def append_missing(self, rows: Sequence[AuditRow]) -> None:
        self._insert(_INSERT_MISSING.format(table=self._table_sql, values=", ".join(["%s"] * 9),
                                            p="%s"), self._missing_args(rows), moved=rows)

    def _live(self) -> psycopg.Connection:
        """The connection, made again if it was lost (PostgreSQL restarted, or was out of
        reach): the request that found it lost failed; the next one goes through. (Under the
        lock.)"""
        if self._conn.closed or self._conn.broken:
            with contextlib.suppress(psycopg.Error):
                self._conn.close()
            self._conn = psycopg.connect(**self._conninfo, autocommit=True)
        return self._conn

    def _insert(self, sql: str, args: list[tuple[Any, ...]], at_least: int = 0,
                moved: Sequence[AuditRow] = ()) -> None:
        """``moved``: rows append_missing moves, each of which must be in the store after."""
        with self._lock:
            conn = self._live()
            with conn.transaction(), conn.cursor() as cursor:
                # Writers of every process take turns, so positions are committed in order and
                # a reader that follows "position > last seen" never skips a late-committing row.
                cursor.execute(SQL("LOCK TABLE {t} IN EXCLUSIVE MODE").format(t=self._table))
                cursor.executemany(sql, args)
                _check_stored(cursor.rowcount, at_least)
                if moved:
                    _check_present(lambda query, values: cursor.execute(query, values).fetchone(),
                                   self._table_sql, "%s", moved)

    def query(self, query: AuditQuery) -> list[tuple[int, bytes]]:
        sql, args = self._select(query, "%s")
        with self._lock:
            rows = self._live().execute(sql, args).fetchall()
        return [(position, bytes(record)) for position, record in rows]

    def first_of_key(self, account: str, key_id: str) -> bytes | None:
        with self._lock:
            row = self._live().execute(self._first_of_key_sql("%s"), (key_id, account)).fetchone()
        return None if row is None else bytes(row[0])

    def after(self, position: int, limit: int) -> list[tuple[int, float, bytes]]:
        with self._lock:
            rows = self._live().execute(
                SQL("SELECT position, event_time, record FROM {t} WHERE position > %s "
                    "ORDER BY position LIMIT %s").format(t=self._table), (position, limit),
            ).fetchall()
        return [(p, t, bytes(r)) for p, t, r in rows]


    def close(self) -> None:
        with self._lock:
            self._conn.close()
