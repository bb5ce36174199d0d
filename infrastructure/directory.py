"""The key directory: the materialised view behind ListKeys, ListAliases and the scheduler.

It is an eventsourcing ``TrackingRecorder``: each batch of view changes is written in the
same transaction as the notification id it came from, so the view follows the ledger's
notification log exactly once, resumes where it stopped after a restart, and can be rebuilt
from zero. The same SQL runs on SQLite (``?`` placeholders) and PostgreSQL (``%s``).
"""

from __future__ import annotations

from collections.abc import Sequence
from typing import Any

from eventsourcing.persistence import Tracking
from eventsourcing.postgres import PostgresTrackingRecorder
from eventsourcing.sqlite import SQLiteTrackingRecorder
from psycopg.sql import SQL, Identifier

from application.listing import (
    AliasRow,
    AliasTarget,
    DeleteKey,
    KeyDate,
    KeyRow,
    ViewChange,
)

_TABLES = (
    "CREATE TABLE IF NOT EXISTS {keys} ("
    " key_id TEXT PRIMARY KEY, account TEXT NOT NULL, position BIGINT NOT NULL,"
    " deletion_date DOUBLE PRECISION, next_rotation_date DOUBLE PRECISION,"
    " deleted_at DOUBLE PRECISION, material_due DOUBLE PRECISION)",
    "CREATE INDEX IF NOT EXISTS {keys_idx} ON {keys} (account, position)",
    "CREATE TABLE IF NOT EXISTS {aliases} ("
    " account TEXT NOT NULL, alias_name TEXT NOT NULL, target_key_id TEXT NOT NULL,"
    " creation_date DOUBLE PRECISION NOT NULL, last_updated_date DOUBLE PRECISION NOT NULL,"
    " position BIGINT NOT NULL, PRIMARY KEY (account, alias_name))",
)

#: columns added to the key view after its first release: column -> ALTER TABLE statement
_ADDED_COLUMNS = {
    "material_due": "ALTER TABLE {keys} ADD COLUMN {if_not_exists}material_due DOUBLE PRECISION",
}


class _KeyDirectoryQueries:
    """The view's SQL, written once with ``?`` placeholders."""

    keys: str
    aliases: str
    placeholder = "?"

    def _sql(self, statement: str) -> str:
        statement = statement.format(keys=self.keys, aliases=self.aliases)
        return statement.replace("?", self.placeholder)

    def _apply(self, cursor: Any, change: ViewChange) -> None:
        if isinstance(change, KeyRow):
            cursor.execute(
                self._sql(
                    "INSERT INTO {keys} (key_id, account, position) VALUES (?, ?, ?)"
                    " ON CONFLICT (key_id) DO NOTHING"
                ),
                (change.key_id, change.account, change.position),
            )
        elif isinstance(change, KeyDate):
            column = {
                "deletion_date": "deletion_date",
                "next_rotation_date": "next_rotation_date",
                "deleted_at": "deleted_at",
                "material_due": "material_due",
            }
            cursor.execute(
                self._sql(f"UPDATE {{keys}} SET {column[change.field]} = ? WHERE key_id = ?"),
                (change.value, change.key_id),
            )
        elif isinstance(change, DeleteKey):
            cursor.execute(self._sql("DELETE FROM {keys} WHERE key_id = ?"), (change.key_id,))
        elif isinstance(change, AliasRow):
            cursor.execute(
                self._sql(
                    "INSERT INTO {aliases} (account, alias_name, target_key_id, creation_date,"
                    " last_updated_date, position) VALUES (?, ?, ?, ?, ?, ?)"
                    " ON CONFLICT (account, alias_name) DO UPDATE"
                    " SET target_key_id = excluded.target_key_id,"
                    " creation_date = excluded.creation_date,"
                    " last_updated_date = excluded.last_updated_date"
                ),
                (change.account, change.alias_name, change.target_key_id, change.creation_date,
                 change.last_updated_date, change.position),
            )
        elif isinstance(change, AliasTarget):
            cursor.execute(
                self._sql(
                    "UPDATE {aliases} SET target_key_id = ?, last_updated_date = ?"
                    " WHERE account = ? AND alias_name = ?"
                ),
                (change.target_key_id, change.last_updated_date, change.account,
                 change.alias_name),
            )
        else:
            cursor.execute(
                self._sql("DELETE FROM {aliases} WHERE account = ? AND alias_name = ?"),
                (change.account, change.alias_name),
            )

    def record(self, changes: Sequence[ViewChange], tracking: Tracking) -> None:
        """Apply one notification's view changes and its tracking record atomically."""
        with self.datastore.transaction(commit=True) as cursor:  # type: ignore[attr-defined]
            for change in changes:
                self._apply(cursor, change)
            self._insert_tracking(cursor, tracking)  # type: ignore[attr-defined]

    def _select(self, statement: str, params: Sequence[Any]) -> list[Any]:
        with self.datastore.transaction(commit=False) as cursor:  # type: ignore[attr-defined]
            cursor.execute(self._sql(statement), tuple(params))
            return list(cursor.fetchall())

    def list_keys(self, account: str, after: int, limit: int) -> list[tuple[str, int]]:
        rows = self._select(
            "SELECT key_id, position FROM {keys} WHERE account = ? AND position > ?"
            " AND deleted_at IS NULL ORDER BY position LIMIT ?",
            (account, after, limit),
        )
        return [(row["key_id"], row["position"]) for row in rows]

    def list_aliases(
        self, account: str, key_id: str | None, after: str, limit: int
    ) -> list[AliasRow]:
        where = "account = ? AND alias_name > ?"
        params: list[Any] = [account, after]
        if key_id is not None:
            where += " AND target_key_id = ?"
            params.append(key_id)
        rows = self._select(
            f"SELECT * FROM {{aliases}} WHERE {where} ORDER BY alias_name LIMIT ?",
            (*params, limit),
        )
        return [
            AliasRow(
                account=row["account"], alias_name=row["alias_name"],
                target_key_id=row["target_key_id"], creation_date=row["creation_date"],
                last_updated_date=row["last_updated_date"], position=row["position"],
            )
            for row in rows
        ]

    def due_key_ids(self, now: float) -> list[str]:
        """Keys whose deletion window, rotation date or imported material's expiry has
        passed, or with material awaiting shredding."""
        rows = self._select(
            "SELECT key_id FROM {keys} WHERE deletion_date <= ? OR next_rotation_date <= ?"
            " OR material_due <= ? OR deleted_at IS NOT NULL ORDER BY position",
            (now, now, now),
        )
        return [row["key_id"] for row in rows]

    def snapshot(self) -> tuple[list[Any], list[Any]]:
        """Every row of the view (for rebuild comparisons)."""
        keys = self._select("SELECT * FROM {keys} ORDER BY key_id", ())
        aliases = self._select("SELECT * FROM {aliases} ORDER BY account, alias_name", ())
        return [dict(r) for r in keys], [dict(r) for r in aliases]


class SQLiteKeyDirectory(_KeyDirectoryQueries, SQLiteTrackingRecorder):
    keys = "key_listing"
    aliases = "alias_listing"

    def construct_create_table_statements(self) -> list[str]:
        return super().construct_create_table_statements() + [
            statement.format(keys=self.keys, aliases=self.aliases, keys_idx="key_listing_account")
            for statement in _TABLES
        ]

    def create_table(self) -> None:
        super().create_table()
        with self.datastore.transaction(commit=True) as cursor:
            cursor.execute(f"PRAGMA table_info({self.keys})")
            columns = {row[1] for row in cursor.fetchall()}
            for column, statement in _ADDED_COLUMNS.items():
                if column not in columns:  # a view made by an earlier version
                    cursor.execute(statement.format(keys=self.keys, if_not_exists=""))


class PostgresKeyDirectory(_KeyDirectoryQueries, PostgresTrackingRecorder):
    placeholder = "%s"

    def __init__(self, datastore: Any, **kwargs: Any) -> None:
        super().__init__(datastore, **kwargs)
        schema = self.datastore.schema
        self.keys = f'"{schema}".key_listing'
        self.aliases = f'"{schema}".alias_listing'
        for statement in _TABLES:
            self.sql_create_statements.append(
                SQL(statement).format(
                    keys=SQL(self.keys), aliases=SQL(self.aliases),
                    keys_idx=Identifier("key_listing_account"),
                )
            )
        for statement in _ADDED_COLUMNS.values():  # for a view made by an earlier version
            self.sql_create_statements.append(
                SQL(statement).format(keys=SQL(self.keys), if_not_exists=SQL("IF NOT EXISTS "))
            )
