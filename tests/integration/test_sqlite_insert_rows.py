"""infrastructure.sqlite_files.insert_rows: many rows, few statements, every row once and in
order, within the connection's host-parameter limit."""

from __future__ import annotations

import sqlite3

import pytest

from infrastructure.sqlite_files import MAX_ROWS_PER_INSERT, insert_rows


def _table() -> sqlite3.Connection:
    db = sqlite3.connect(":memory:")
    db.execute("CREATE TABLE t (position INTEGER PRIMARY KEY AUTOINCREMENT, a INTEGER, "
               "b TEXT UNIQUE, c BLOB)")
    return db


def _statements(db: sqlite3.Connection) -> list[str]:
    """The INSERT statements ``db`` runs from now on (as it runs them)."""
    seen: list[str] = []
    db.set_trace_callback(lambda sql: seen.append(sql) if sql.startswith("INSERT") else None)
    return seen


@pytest.mark.parametrize("count", [1, 2, 3, 63, 64, 65, 255, 256, 257, 1000])
def test_every_row_is_inserted_once_in_order(count):
    db = _table()
    rows = [(n, f"b{n}", bytes([n % 256]) * 3) for n in range(count)]
    assert insert_rows(db, "INSERT INTO t (a, b, c)", rows) == count
    assert db.execute("SELECT position, a, b, c FROM t ORDER BY position").fetchall() == [
        (n + 1, *row) for n, row in enumerate(rows)]


def test_the_statements_are_few_and_of_few_sizes():
    db = _table()
    statements = _statements(db)
    insert_rows(db, "INSERT INTO t (a, b, c)", [(n, f"b{n}", b"") for n in range(1000)])
    sizes = [statement.count("(") - 1 for statement in statements]  # (one for the columns)
    # 1000 = 3 × 256 + 128 + 64 + 32 + 8: one statement a chunk, each a power of two
    assert sizes == [256, 256, 256, 128, 64, 32, 8]
    assert max(sizes) == MAX_ROWS_PER_INSERT


def test_the_host_parameter_limit_bounds_a_statement():
    db = _table()
    db.setlimit(sqlite3.SQLITE_LIMIT_VARIABLE_NUMBER, 20)  # 6 rows of 3 values at most
    statements = _statements(db)
    assert insert_rows(db, "INSERT INTO t (a, b, c)", [(n, f"b{n}", b"") for n in range(11)]) == 11
    assert [statement.count("(") - 1 for statement in statements] == [4, 4, 2, 1]
    assert db.execute("SELECT COUNT(*) FROM t").fetchone() == (11,)


def test_the_count_is_of_the_rows_stored_and_a_tail_applies_to_every_chunk():
    db = _table()
    db.execute("INSERT INTO t (a, b, c) VALUES (0, 'b3', x'')")
    rows = [(n, f"b{n}", b"") for n in range(5)]  # b3 is stored already
    assert insert_rows(db, "INSERT INTO t (a, b, c)", rows, "ON CONFLICT (b) DO NOTHING") == 4
    assert [b for (b,) in db.execute("SELECT b FROM t ORDER BY position")] == [
        "b3", "b0", "b1", "b2", "b4"]


def test_no_rows_no_statement():
    db = _table()
    statements = _statements(db)
    assert insert_rows(db, "INSERT INTO t (a, b, c)", []) == 0
    assert statements == []
