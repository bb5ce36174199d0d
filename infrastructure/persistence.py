"""Where each region's ledger lives.

Each region is its own ledger, created on first use:
* SQLite (the embedded default): ``<data-dir>/regions/<region>/ledger.db`` (events),
  ``directory.db`` (listing view + tracking), ``keyring.db`` (wrapped DEKs) and ``audit.db``
  (the audit records).
* PostgreSQL (``--store postgresql://user:pass@host:port/db``): one schema per region,
  ``keyledger_<region>``, holding ``keyledger_events``/``_snapshots``, the listing view,
  its tracking table, ``data_keys`` and ``keyledger_audit``.
"""

from __future__ import annotations

import contextlib
import fcntl
import os
import sqlite3
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path
from urllib.parse import unquote, urlparse

import psycopg
from eventsourcing.persistence import InfrastructureFactory
from eventsourcing.utils import Environment
from psycopg.sql import SQL, Identifier

from domain.values import REGION_PATTERN
from infrastructure.audit_store import TABLE as AUDIT_TABLE
from infrastructure.audit_store import AuditStore, PostgresAuditStore, SQLiteAuditStore
from infrastructure.directory import PostgresKeyDirectory, SQLiteKeyDirectory
from infrastructure.keyring import Keyring, PostgresKeyring, SQLiteKeyring
from infrastructure.sqlite_files import memory_copy, open_sqlite_read_only, read_only_uri


@dataclass(frozen=True)
class RegionStorage:
    ledger_env: dict[str, str]
    directory: SQLiteKeyDirectory | PostgresKeyDirectory
    keyring: Keyring
    factory: InfrastructureFactory
    audit: AuditStore
    #: what keeps a read-only region's in-memory directory alive (sqlite_files.memory_copy)
    keeper: sqlite3.Connection | None = None

    def close(self) -> None:
        self.keyring.close()
        self.factory.close()
        if self.keeper is not None:
            self.keeper.close()


#: every keyledger connection resolves functions and operators in pg_catalog alone: a search
#: path the database or role was given (``ALTER DATABASE ... SET search_path``) could put a
#: schema's ``=`` or ``convert_from`` before the built-in ones and change what queries match,
#: unseen by ``keyledger verify``. Tables are always named with their schema.
SEARCH_PATH = "-c search_path=pg_catalog"


def _pin_search_path() -> None:
    """Through libpq's PGOPTIONS, for every connection of this process and those it starts:
    keyledger's own and eventsourcing's (which takes no connection options)."""
    options = os.environ.get("PGOPTIONS", "")
    if SEARCH_PATH not in options:
        os.environ["PGOPTIONS"] = f"{options} {SEARCH_PATH}".strip()


@dataclass(frozen=True)
class StoreConfig:
    data_dir: Path
    url: str | None = None

    @property
    def is_postgres(self) -> bool:
        return bool(self.url) and self.url.startswith(("postgresql://", "postgres://"))

    def describe(self) -> str:
        if self.is_postgres:
            parsed = urlparse(self.url)
            return f"PostgreSQL {parsed.hostname}:{parsed.port or 5432}/{parsed.path.lstrip('/')}"
        return f"SQLite under {self.data_dir / 'regions'}"

    def _postgres_env(self, region: str) -> dict[str, str]:
        _pin_search_path()
        parsed = urlparse(self.url)
        return {
            "PERSISTENCE_MODULE": "eventsourcing.postgres",
            "POSTGRES_DBNAME": unquote(parsed.path.lstrip("/")) or "postgres",
            "POSTGRES_HOST": parsed.hostname or "127.0.0.1",
            "POSTGRES_PORT": str(parsed.port or 5432),
            "POSTGRES_USER": unquote(parsed.username or "postgres"),
            "POSTGRES_PASSWORD": unquote(parsed.password or ""),
            "POSTGRES_SCHEMA": schema_name(region),
            "POSTGRES_POOL_SIZE": "4",
            "POSTGRES_MAX_OVERFLOW": "40",
            "POSTGRES_CONNECT_TIMEOUT": "10",
            "ORIGINATOR_ID_TYPE": "text",
            # eventsourcing's recorder plus time travel in one query (forensics)
            "PROCESS_RECORDER_TOPIC": "infrastructure.ledger_recorder:PostgresLedgerRecorder",
        }

    def _sqlite_env(self, db: Path) -> dict[str, str]:
        return {
            "PERSISTENCE_MODULE": "eventsourcing.sqlite",
            "SQLITE_DBNAME": str(db),
            "SQLITE_LOCK_TIMEOUT": "30",
            "ORIGINATOR_ID_TYPE": "text",
        }

    def open_region(self, region: str, read_only: bool = False) -> RegionStorage:
        """``read_only``: a Region that exists, read by a command: its ledger's and audit's
        tables are not created (nor their indexes), so a damaged store is reported as one and a
        copied data dir stays as it was copied."""
        if not REGION_PATTERN.match(region):
            raise ValueError(f"invalid region name {region!r}")
        if self.is_postgres:
            env = self._postgres_env(region)
            if read_only:  # (what follows then creates no table: the env says so)
                env, lock = {**env, "CREATE_TABLE": "false"}, contextlib.nullcontext()
            else:
                # Processes starting together (--workers, several nodes on one database) would
                # race to create the same tables, and PostgreSQL's CREATE TABLE IF NOT EXISTS is
                # not safe against that: each Region's tables are created under one advisory lock.
                lock = self._connect(env)
            with lock as conn:
                if not read_only:
                    conn.execute("SELECT pg_advisory_lock(hashtext(%s))", ("keyledger:" + region,))
                    self._create_schema(env)
                    _create_ledger_tables(env)
                factory = InfrastructureFactory.construct(Environment("KeyDirectory", env))
                directory = factory.tracking_recorder(PostgresKeyDirectory)
                keyring: Keyring = PostgresKeyring(factory.datastore)
                audit = PostgresAuditStore(self._conninfo(env), env["POSTGRES_SCHEMA"],
                                           read_only=read_only)
            # The application built on this env must not create its tables again, outside the
            # lock: concurrent CREATE ... IF NOT EXISTS fails with "tuple concurrently updated".
            return RegionStorage({**env, "CREATE_TABLE": "false"}, directory, keyring, factory,
                                 audit)
        folder = self.data_dir / "regions" / region
        if read_only:
            return self._open_sqlite_read_only(region)
        folder.mkdir(parents=True, exist_ok=True)
        ledger_env = self._sqlite_env(folder / "ledger.db")
        # Workers starting together race to create the same tables, and eventsourcing's first
        # tracking row (its "__migration__" marker) is inserted by each: a Region's files get
        # their tables under one file lock, the ledger's too, as on PostgreSQL.
        with file_lock(folder / ".tables.lock"):
            factory = InfrastructureFactory.construct(
                Environment("KeyDirectory", self._sqlite_env(folder / "directory.db"))
            )
            directory = factory.tracking_recorder(SQLiteKeyDirectory)
            keyring = SQLiteKeyring(folder / "keyring.db")
            audit = SQLiteAuditStore(folder / "audit.db")
            _create_ledger_tables(ledger_env)
        return RegionStorage({**ledger_env, "CREATE_TABLE": "false"}, directory, keyring, factory,
                             audit)

    def _open_sqlite_read_only(self, region: str) -> RegionStorage:
        """A Region's files as a command that only reads opens them: nothing in the folder is
        created, written or merged (a copied data dir stays byte for byte as it was copied).
        The ledger, keyring and audit are read in place; the directory (a view of the ledger,
        which the region brings up to date as it opens) is read from a copy in memory."""
        folder = self.region_folder(region)
        ledger_uri = read_only_uri(folder / "ledger.db")
        if ledger_uri is None:
            raise sqlite3.OperationalError(f"no ledger at {folder / 'ledger.db'}")
        ledger_env = {**self._sqlite_env(folder / "ledger.db"), "SQLITE_DBNAME": ledger_uri}
        directory_uri, keeper = memory_copy(folder / "directory.db")
        try:
            factory = InfrastructureFactory.construct(Environment(
                "KeyDirectory", {**self._sqlite_env(folder / "directory.db"),
                                 "SQLITE_DBNAME": directory_uri}))
            directory = factory.tracking_recorder(SQLiteKeyDirectory)
            keyring = SQLiteKeyring(folder / "keyring.db", read_only=True)
            audit = self.open_audit_store(region)
        except BaseException:
            keeper.close()
            raise
        return RegionStorage({**ledger_env, "CREATE_TABLE": "false"}, directory, keyring, factory,
                             audit, keeper)

    def audit_regions(self) -> list[str]:
        """Regions that have an audit store (their ledger may be damaged or gone)."""
        if self.is_postgres:
            with self._connect(self._postgres_env("us-east-1")) as conn:
                schemas = {row[0] for row in conn.execute(
                    "SELECT table_schema FROM information_schema.tables WHERE table_name = %s",
                    (AUDIT_TABLE,)).fetchall()}
            return [r for r in self.known_regions() if schema_name(r) in schemas]
        return [r for r in self.known_regions() if (self.region_folder(r) / "audit.db").is_file()]

    def open_audit_store(self, region: str) -> AuditStore:
        """A Region's audit store alone, read-only (the audit command reads nothing else)."""
        if not REGION_PATTERN.match(region):
            raise ValueError(f"invalid region name {region!r}")
        if self.is_postgres:
            env = self._postgres_env(region)
            return PostgresAuditStore(self._conninfo(env), env["POSTGRES_SCHEMA"], read_only=True)
        return SQLiteAuditStore(self.region_folder(region) / "audit.db", read_only=True)

    @contextlib.contextmanager
    def exclusive(self, region: str, name: str) -> Iterator[None]:
        """Held by one thread of every process and node sharing the store at a time, while the
        block runs (a rule that counts what several aggregates hold, checked and written at
        once): SQLite: an flock on ``<region>/.NAME.lock``; PostgreSQL: a session advisory lock
        on a connection of its own. Either is released if the process dies."""
        if self.is_postgres:
            with self._connect(self._postgres_env(region)) as conn:
                conn.execute("SELECT pg_advisory_lock(hashtext(%s))",
                             (f"keyledger:{region}:{name}",))
                yield
            return
        with file_lock(self.region_folder(region) / f".{name}.lock"):
            yield

    def sample_data_key(self, region: str) -> tuple[str, bytes] | None:
        """One wrapped data key of a Region's keyring (its entry and its bytes), read without
        creating anything; None if it has none."""
        if self.is_postgres:
            schema = schema_name(region)
            with self._connect(self._postgres_env(region)) as conn:
                if conn.execute("SELECT to_regclass(%s)",
                                (f'"{schema}".data_keys',)).fetchone()[0] is None:
                    return None
                row = conn.execute(SQL("SELECT key_id, wrapped FROM {} LIMIT 1").format(
                    Identifier(schema, "data_keys"))).fetchone()
        else:
            db = open_sqlite_read_only(self.region_folder(region) / "keyring.db")
            if db is None:
                return None
            with contextlib.closing(db):
                try:
                    row = db.execute("SELECT key_id, wrapped FROM data_keys LIMIT 1").fetchone()
                except sqlite3.OperationalError:  # (no table: nothing was ever kept there)
                    return None
        return None if row is None else (row[0], bytes(row[1]))

    def region_folder(self, region: str) -> Path:
        """Where a region's SQLite files live."""
        return self.data_dir / "regions" / region

    def postgres_conninfo(self) -> dict[str, object]:
        """psycopg connection arguments of the PostgreSQL store (any region's schema)."""
        return self._conninfo(self._postgres_env("us-east-1"))

    def known_regions(self) -> list[str]:
        """Regions that already have a ledger in this store."""
        if self.is_postgres:
            env = self._postgres_env("us-east-1")
            with self._connect(env) as conn:
                rows = conn.execute(
                    "SELECT schema_name FROM information_schema.schemata"
                    " WHERE schema_name LIKE 'keyledger\\_%'"
                ).fetchall()
            regions = [row[0][len("keyledger_"):].replace("_", "-") for row in rows]
        else:
            folder = self.data_dir / "regions"
            regions = [p.name for p in folder.iterdir()] if folder.is_dir() else []
        return sorted(r for r in regions if REGION_PATTERN.match(r))

    @staticmethod
    def _conninfo(env: dict[str, str]) -> dict[str, object]:
        return {
            "dbname": env["POSTGRES_DBNAME"], "host": env["POSTGRES_HOST"],
            "port": env["POSTGRES_PORT"], "user": env["POSTGRES_USER"],
            "password": env["POSTGRES_PASSWORD"] or None, "connect_timeout": 10,
        }  # (the search path: PGOPTIONS, set with the env this is made from)

    @classmethod
    def _connect(cls, env: dict[str, str]) -> psycopg.Connection:
        return psycopg.connect(**cls._conninfo(env), autocommit=True)

    @classmethod
    def _create_schema(cls, env: dict[str, str]) -> None:
        with cls._connect(env) as conn:
            try:
                conn.execute(
                    SQL("CREATE SCHEMA IF NOT EXISTS {}").format(Identifier(env["POSTGRES_SCHEMA"]))
                )
            except psycopg.errors.UniqueViolation:
                pass  # another process created it at the same moment


def _create_ledger_tables(env: dict[str, str]) -> None:
    """A Region's ledger tables (events, tracking, snapshots), made once under the Region's
    lock: the application built on ``env`` then creates none."""
    ledger = InfrastructureFactory.construct(Environment("KeyLedger", env))
    try:
        ledger.process_recorder()
        ledger.aggregate_recorder("snapshots")
    finally:
        ledger.close()


@contextlib.contextmanager
def file_lock(path: Path) -> Iterator[None]:
    """An exclusive flock on ``path`` (created if need be) while the block runs."""
    path.parent.mkdir(parents=True, exist_ok=True)
    with open(path, "a") as handle:
        fcntl.flock(handle, fcntl.LOCK_EX)
        try:
            yield
        finally:
            fcntl.flock(handle, fcntl.LOCK_UN)


def schema_name(region: str) -> str:
    return "keyledger_" + region.replace("-", "_")
