"""SQLite helpers: opening files for reading only (the commands that read a store, a copied
data dir, evidence kept for an investigation, never create, change or merge anything in it),
and inserting many rows at once."""

from __future__ import annotations

import contextlib
import sqlite3
import uuid
from collections.abc import Sequence
from pathlib import Path
from typing import Any

#: the most rows one INSERT statement takes (insert_rows)
MAX_ROWS_PER_INSERT = 256


def read_only_uri(path: Path) -> str | None:
    """The URI that opens ``path`` read-only (None: no such file; nothing is created): the
    file itself, whose write-ahead log a reader reads but never merges into it; an immutable
    view on read-only media, unless a rollback journal or write-ahead log lies beside the file:
    an immutable connection would read past it, while any writable one applies it first (what
    it reads would not be what every other reader of the store sees)."""
    if not path.exists():
        return None
    uri = path.resolve().as_uri()
    try:
        with contextlib.closing(sqlite3.connect(uri + "?mode=ro", uri=True, timeout=30)) as probe:
            probe.execute("SELECT COUNT(*) FROM sqlite_master").fetchone()
        return uri + "?mode=ro"
    except sqlite3.OperationalError as error:
        for suffix in ("-journal", "-wal"):
            pending = path.with_name(path.name + suffix)
            if pending.exists() and pending.stat().st_size > 0:
                raise sqlite3.OperationalError(
                    f"{pending} holds changes a read-only reader cannot apply ({error}): read "
                    "a copy of the store on writable storage") from None
        return uri + "?immutable=1"


def open_sqlite_read_only(path: Path) -> sqlite3.Connection | None:
    """A read-only connection to ``path`` (read_only_uri), or None if there is no such file."""
    uri = read_only_uri(path)
    if uri is None:
        return None
    return sqlite3.connect(uri, uri=True, check_same_thread=False, timeout=30)


def memory_copy(path: Path) -> tuple[str, sqlite3.Connection]:
    """A private in-memory copy of ``path`` (empty if there is none), and the connection that
    keeps it alive: other connections open it by the URI (shared cache) until that one closes.
    For a view a command brings up to date from the ledger as it reads, without writing to the
    store."""
    uri = f"file:keyledger-copy-{uuid.uuid4().hex}?mode=memory&cache=shared"
    keeper = sqlite3.connect(uri, uri=True, check_same_thread=False)
    source = open_sqlite_read_only(path)
    if source is not None:
        with contextlib.closing(source):
            source.backup(keeper)
    return uri, keeper


def insert_rows(db: sqlite3.Connection, head: str, rows: Sequence[Sequence[Any]],
                tail: str = "") -> int:
    """``head VALUES (…), (…), … tail`` for every row of ``rows`` (all of one width); returns
    how many rows the statements changed.

    One statement per chunk of rows rather than one per row (``executemany``): SQLite's work
    at each statement's end (AUTOINCREMENT's counter, the statement's journal) and the
    module's per-row binding, GIL release and reset are paid once a chunk. Chunks are 256, 128,
    … 1 rows, within the connection's host-parameter limit, so that whatever the number of
    rows the statements are the same few, compiled once (the module's statement cache):
    compiling a statement of 64 rows costs about what inserting them does."""
    if not rows:
        return 0
    width = len(rows[0])
    tuple_sql = "(" + ", ".join("?" * width) + ")"
    most = min(MAX_ROWS_PER_INSERT,
               db.getlimit(sqlite3.SQLITE_LIMIT_VARIABLE_NUMBER) // width)
    chunk = 1 << (most.bit_length() - 1)  # (a power of two)
    changed = start = 0
    while start < len(rows):
        while chunk > len(rows) - start:
            chunk //= 2
        sql = f"{head} VALUES {', '.join([tuple_sql] * chunk)} {tail}"
        args = [value for row in rows[start:start + chunk] for value in row]
        changed += db.execute(sql, args).rowcount
        start += chunk
    return changed
