"""Tamper evidence: one hash chain per region over its ledger events and audit records,
signed checkpoints, retention that keeps the chain verifiable, and the offline verifier.

What is chained, per region, into one chain (``keyledger_chain``, in the region's
``audit.db`` on SQLite and in its schema ``keyledger_<region>`` on PostgreSQL):

* every stored ledger event (``stored_events`` in ``ledger.db`` / ``keyledger_events``), in
  notification-id order; its digest covers every stored field: notification id, originator
  id, version, topic and the state bytes;
* every audit record (``keyledger_audit``), in position order; its digest covers the
  position, the record's canonical bytes and the columns it is queried by.

Both sources commit in position order (their writers are serialized), so a chainer that
appends "what is after the last chained position" never skips a row. Each entry is
``(seq, source, source_position, digest, prev_hash, hash)`` with
``hash = SHA-256(prefix || seq || source || position || digest || prev_hash)``; the first
entry links to a genesis hash bound to the region's name.

The chainer runs on each server process's maintenance thread. One process per region holds
the chainer's lease (SQLite: an flock on ``<region>/.chainer.lock``; PostgreSQL: a session
advisory lock), so workers do not hash the same rows; the OS or the server releases it when
the process dies, and another process takes over on its next pass. The chainer reads new
rows and hashes them without a lock (on PostgreSQL the database computes each row's digest
with ``sha256()`` over the same canonical bytes; the verifier hashes in Python, trusting no
function of the store), then appends under the store's lock
(SQLite ``BEGIN IMMEDIATE`` on ``audit.db``; PostgreSQL ``LOCK TABLE keyledger_chain IN
EXCLUSIVE MODE``) only if the chain's tip is still the one it built on: even without the
lease, processes sharing a store never fork the chain and never chain a row twice.

A checkpoint (``keyledger_checkpoints``) is written every :data:`CHECKPOINT_EVERY` entries or
:data:`CHECKPOINT_INTERVAL` seconds when anything new was chained: its sequence number, the
chain's length and head hash, the time, the previous checkpoint's hash, and an Ed25519
signature by a key generated once per store and kept sealed under the root key in the
keyring (entry :data:`SIGNING_KEY_ENTRY`, in every region's keyring).

:func:`verify` checks all of it offline, from the store alone and the exported public key.
"""

from __future__ import annotations

import contextlib
import fcntl
import hashlib
import logging
import sqlite3
import struct
import threading
import time
import uuid
from collections import deque
from collections.abc import Callable, Iterable, Iterator
from dataclasses import dataclass, field
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

import psycopg
import psycopg.sql
from cryptography.exceptions import InvalidSignature
from cryptography.hazmat.primitives import serialization
from cryptography.hazmat.primitives.asymmetric.ed25519 import Ed25519PrivateKey, Ed25519PublicKey

from domain.values import REGION_PATTERN
from infrastructure.audit_store import RECORD_TEXT, RECORD_TEXT_BODY
from infrastructure.audit_store import TABLE as AUDIT_TABLE
from infrastructure.persistence import StoreConfig, file_lock, schema_name
from infrastructure.root_key import RootKey
from infrastructure.sqlite_files import insert_rows, open_sqlite_read_only

log = logging.getLogger("keyledger.chain")

CHAIN_TABLE = "keyledger_chain"
CHECKPOINT_TABLE = "keyledger_checkpoints"
#: the keyring entry of the checkpoint signing key (never a KMS key id, nor a material entry)
SIGNING_KEY_ENTRY = "keyledger:checkpoint-signing-key"
CHECKPOINT_EVERY = 10_000  # chain entries
CHECKPOINT_INTERVAL = 60.0  # seconds
EVENT, AUDIT = "event", "audit"
SOURCES = (EVENT, AUDIT)  # the chained rows' tables
#: a retention marker: "the audit records up to this position were pruned" (no row of its own)
RETENTION = "retention"

_BATCH = 2_000  # entries appended per transaction (the lock is held for their inserts only)
_PAGE = 5_000  # rows read per query by the verifier
_PRUNE_CHUNK = 10_000  # audit records deleted per transaction (at most)
_REORDER_WINDOW = 10_000  # how far ahead a misplaced record's rightful position is looked for

_EVENT_PREFIX = b"keyledger/chain/v1/event\x00"
_AUDIT_PREFIX = b"keyledger/chain/v1/audit\x00"
_RETENTION_PREFIX = b"keyledger/chain/v1/retention\x00"
_LINK_PREFIX = b"keyledger/chain/v1/link\x00"
_GENESIS_PREFIX = b"keyledger/chain/v1/genesis\x00"
_CHECKPOINT_PREFIX = b"keyledger/chain/v1/checkpoint\x00"
_CHECKPOINT_HASH_PREFIX = b"keyledger/chain/v1/checkpoint-hash\x00"
_NO_CHECKPOINT = bytes(32)
_MIN_POSITION = -(2**63)

_INT = struct.Struct(">q").pack
_FLOAT = struct.Struct(">d").pack
_LEN = struct.Struct(">I").pack

_AUDIT_COLUMNS = ("position, event_time, account, key_id, principal, event_name, error_code, "
                  "request_id, event_id, record")


# -- canonical bytes and hashes -------------------------------------------------------------------

def _text(value: str) -> bytes:
    data = value.encode()
    return b"S" + _LEN(len(data)) + data


def _blob(value: Any) -> bytes:
    data = bytes(value)
    return b"B" + _LEN(len(data)) + data


def _tagged(value: Any) -> bytes:
    """Any value, by the same rules as the fast paths (subclasses, bool, bytearray ...); a
    UUID (an event's originator id read from PostgreSQL) as its text, as ``_PG_REST`` takes it."""
    if value is None:
        return b"N"
    if isinstance(value, uuid.UUID):
        return _text(str(value))
    if isinstance(value, int):
        return b"I" + _INT(value)
    if isinstance(value, float):
        return b"F" + _FLOAT(value)
    if isinstance(value, str):
        return _text(value)
    return _blob(value)


def canonical(values: Iterable[Any]) -> bytes:
    """Type-tagged, length-prefixed bytes of a row's values (the same on SQLite and PostgreSQL)."""
    parts: list[bytes] = []
    add = parts.append
    for value in values:  # the types a row holds, tested inline (the chainer's hot loop)
        kind = type(value)
        if kind is str:
            data = value.encode()
            add(b"S" + _LEN(len(data)) + data)
        elif kind is bytes:
            add(b"B" + _LEN(len(value)) + value)
        elif value is None:
            add(b"N")
        elif kind is float:
            add(b"F" + _FLOAT(value))
        elif kind is int:
            add(b"I" + _INT(value))
        else:
            add(_tagged(value))
    return b"".join(parts)


def event_digest(row: tuple) -> bytes:
    """``row``: (notification id, originator id, originator version, topic, state)."""
    return hashlib.sha256(_EVENT_PREFIX + canonical(row)).digest()


def audit_digest(row: tuple) -> bytes:
    """``row``: (position, event_time, account, key_id, principal, event_name, error_code,
    request_id, event_id, record)."""
    return hashlib.sha256(_AUDIT_PREFIX + canonical(row)).digest()


_PREFIX = {EVENT: _EVENT_PREFIX, AUDIT: _AUDIT_PREFIX}
_SOURCE_BYTES = {EVENT: _text(EVENT), AUDIT: _text(AUDIT), RETENTION: _text(RETENTION)}


def _digest(source: str, position: int, rest: bytes) -> bytes:
    """A row's digest from its position and the canonical bytes of its other fields."""
    return hashlib.sha256(_PREFIX[source] + b"I" + _INT(position) + rest).digest()


def _row_digest(source: str, row: tuple) -> bytes:
    """A stored row's digest (its position first): ``_digest(source, position, canonical(the
    rest))``, with the row's last value (an audit record's bytes, an event's state: the bulk
    of it) hashed where it lies rather than copied into the canonical bytes."""
    last = row[-1]
    if type(last) is not bytes:
        return _digest(source, row[0], canonical(row[1:]))
    digest = hashlib.sha256(_PREFIX[source] + b"I" + _INT(row[0]) + canonical(row[1:-1])
                            + b"B" + _LEN(len(last)))
    digest.update(last)
    return digest.digest()


def retention_digest(position: int) -> bytes:
    """The digest of a retention marker: the newest audit position retention deleted."""
    return hashlib.sha256(_RETENTION_PREFIX + b"I" + _INT(position)).digest()


def link_hash(seq: int, source: str, position: int, digest: bytes, prev_hash: bytes) -> bytes:
    try:  # canonical((seq, source, position)), spelled out: this runs for every entry
        head = b"I" + _INT(seq) + _SOURCE_BYTES[source] + b"I" + _INT(position)
    except (KeyError, TypeError, struct.error):  # not what the chainer writes: a tampered row
        head = canonical((seq, source, position))
    return hashlib.sha256(_LINK_PREFIX + head + digest + prev_hash).digest()


def genesis_hash(region: str) -> bytes:
    """What the first entry of a region's chain links to: a chain cannot move to another region."""
    return hashlib.sha256(_GENESIS_PREFIX + region.encode()).digest()


def checkpoint_message(region: str, seq: int, chain_seq: int, head_hash: bytes, created: float,
                       prev_hash: bytes, key_id: str) -> bytes:
    """The bytes a checkpoint's signature covers."""
    return _CHECKPOINT_PREFIX + canonical(
        (region, seq, chain_seq, head_hash, created, prev_hash, key_id)
    )


def checkpoint_hash(message: bytes, signature: bytes) -> bytes:
    """What the next checkpoint's ``prev_hash`` holds: it covers the signature too."""
    return hashlib.sha256(_CHECKPOINT_HASH_PREFIX + canonical((message, signature))).digest()


def public_key_id(public_key: Ed25519PublicKey) -> str:
    raw = public_key.public_bytes(serialization.Encoding.Raw, serialization.PublicFormat.Raw)
    return hashlib.sha256(raw).hexdigest()[:32]


def public_key_pem(public_key: Ed25519PublicKey) -> bytes:
    return public_key.public_bytes(serialization.Encoding.PEM,
                                   serialization.PublicFormat.SubjectPublicKeyInfo)


def load_public_key(pem: bytes) -> Ed25519PublicKey:
    key = serialization.load_pem_public_key(pem)
    if not isinstance(key, Ed25519PublicKey):
        raise ValueError("not an Ed25519 public key")
    return key


def _iso(epoch: float | None) -> str:
    if epoch is None:
        return "none"
    return datetime.fromtimestamp(epoch, UTC).isoformat(timespec="seconds").replace("+00:00", "Z")


# -- one region's tables --------------------------------------------------------------------------

@dataclass
class _Tip:
    seq: int
    hash: bytes
    heads: dict[str, int]  # the last chained position of each source


@dataclass(frozen=True)
class _Checkpoint:
    seq: int
    chain_seq: int
    head_hash: bytes
    created: float
    prev_hash: bytes
    key_id: str
    signature: bytes

    def message(self, region: str) -> bytes:
        return checkpoint_message(region, self.seq, self.chain_seq, self.head_hash, self.created,
                                  self.prev_hash, self.key_id)

    def hash(self, region: str) -> bytes:
        return checkpoint_hash(self.message(region), self.signature)


def _bytes(value: Any) -> Any:
    """A blob column's value as bytes (anything else is left as is, for the checks to reject:
    SQLite keeps whatever type was written)."""
    return bytes(value) if isinstance(value, bytes | bytearray | memoryview) else value


def _checkpoint_of(row: tuple) -> _Checkpoint:
    seq, chain_seq, head_hash, created, prev_hash, key_id, signature = row
    return _Checkpoint(seq, chain_seq, _bytes(head_hash), created, _bytes(prev_hash), key_id,
                       _bytes(signature))


def _well_typed(checkpoint: _Checkpoint) -> bool:
    return (type(checkpoint.chain_seq) is int and isinstance(checkpoint.created, float)
            and isinstance(checkpoint.key_id, str)
            and all(isinstance(v, bytes) for v in (checkpoint.head_hash, checkpoint.prev_hash,
                                                   checkpoint.signature)))


class _RegionDB:
    """The tables of one region: its events, audit records, chain, checkpoints and keyring."""

    placeholder = "?"
    names: dict[str, str]

    def __init__(self, region: str) -> None:
        self.region = region
        self.lock = threading.RLock()
        self._tables: set[str] = set()

    # primitives of each backend
    def _rows(self, sql: str, args: tuple = (), ledger: bool = False) -> list[tuple]:
        raise NotImplementedError

    def _execute(self, sql: str, args: tuple = ()) -> int:
        raise NotImplementedError

    def _exists(self, table: str) -> bool:
        raise NotImplementedError

    def write_lock(self) -> contextlib.AbstractContextManager[None]:
        raise NotImplementedError

    def snapshot(self) -> contextlib.AbstractContextManager[None]:
        raise NotImplementedError

    def create_tables(self) -> None:
        raise NotImplementedError

    def structure_problem(self) -> str | None:
        """What is wrong with the store beneath its rows, that a walk of the rows cannot see
        (None: nothing): its tables not tables, a file or function that is not what it says."""
        raise NotImplementedError

    #: the columns of each table that the chainer and the verifier read (the events' position
    #: column is ``names["event_position"]``)
    _READ = {"events": ("originator_id", "originator_version", "topic", "state"),
             "snapshots": ("originator_id", "originator_version", "topic", "state"),
             "audit": tuple(_AUDIT_COLUMNS.split(", ")),
             "chain": ("seq", "source", "source_position", "digest", "prev_hash", "hash"),
             "checkpoints": ("seq", "chain_seq", "head_hash", "created", "prev_hash", "key_id",
                             "signature")}

    def _columns(self, table: str) -> set[str]:
        """The columns a table (``names``) has."""
        raise NotImplementedError

    def _missing_column(self, table: str, name: str) -> str | None:
        """A column the verifier reads that a table lacks (one dropped): None if it has them."""
        needed = self._READ[table]
        if table == "events" and self.names["event_position"] != "rowid":
            needed = (self.names["event_position"], *needed)
        have = self._columns(table)
        missing = next((column for column in needed if column not in have), None)
        if missing is None:
            return None
        return f"{name} has no column {missing}: a column the verifier reads was dropped"

    def _try_lease(self) -> bool:
        raise NotImplementedError

    def lease(self, wait: float = 0.0) -> bool:
        """Become the region's one chainer among the processes sharing the store (held until
        :meth:`close`, released by the OS or the server if the process dies)."""
        deadline = time.monotonic() + wait
        while not self._try_lease():
            if time.monotonic() >= deadline:
                return False
            time.sleep(0.05)
        return True

    def close(self) -> None:
        raise NotImplementedError

    # shared queries
    def sql(self, template: str) -> str:
        return template.format(**self.names).replace("?", self.placeholder)

    def _value(self, template: str, args: tuple = (), ledger: bool = False) -> Any:
        rows = self._rows(self.sql(template), args, ledger)
        return rows[0][0] if rows else None

    def has(self, table: str) -> bool:
        """Whether a table exists (remembered once it does)."""
        if table not in self._tables and self._exists(table):
            self._tables.add(table)
        return table in self._tables

    def source_heads(self) -> dict[str, int]:
        """The newest position of each source (0 when empty)."""
        event = self._value("SELECT MAX({event_position}) FROM {events}", ledger=True) \
            if self.has("events") else None
        audit = self._value("SELECT MAX(position) FROM {audit}") if self.has("audit") else None
        return {EVENT: event or 0, AUDIT: audit or 0}

    _COLUMNS = {EVENT: "originator_id, originator_version, topic, state",
                AUDIT: _AUDIT_COLUMNS.split(", ", 1)[1]}

    def _source_rows(self, source: str, columns: str, where: str, args: tuple) -> list[tuple]:
        """``SELECT position, columns ... WHERE where`` (``{position}``: the position column)."""
        if source == EVENT:
            if not self.has("events"):
                return []
            where = where.replace("{position}", "{event_position}")
            return self._rows(self.sql(
                "SELECT {event_position}, " + columns + " FROM {events} WHERE " + where),
                args, ledger=True)
        if not self.has("audit"):
            return []
        where = where.replace("{position}", "position")
        return self._rows(self.sql("SELECT position, " + columns + " FROM {audit} WHERE " + where),
                          args)

    def source_digests(self, source: str, after: int, limit: int) -> list[tuple[int, bytes]]:
        """(position, digest) of a source's rows after ``position``, in order."""
        return [(row[0], _row_digest(source, row)) for row in self._source_rows(
            source, self._COLUMNS[source], "{position} > ? ORDER BY {position} LIMIT ?",
            (after, limit))]

    def _rests(self, source: str, where: str, args: tuple) -> list[tuple[int, bytes]]:
        """(position, the canonical bytes of the row's other fields) of the rows ``where``."""
        return [(row[0], canonical(row[1:]))
                for row in self._source_rows(source, self._COLUMNS[source], where, args)]

    def source_rest(self, source: str, position: int) -> bytes | None:
        """The canonical bytes of a row's fields but its position (None: no such row)."""
        rows = self._rests(source, "{position} = ?", (position,))
        return rows[0][1] if rows else None

    def source_rests(self, source: str, after: int, limit: int) -> list[tuple[int, bytes]]:
        """(position, canonical bytes of the other fields) of a source's rows after ``after``."""
        return self._rests(source, "{position} > ? ORDER BY {position} LIMIT ?", (after, limit))

    def count_after(self, source: str, after: int) -> int:
        if source == EVENT:
            if not self.has("events"):
                return 0
            return self._value("SELECT COUNT(*) FROM {events} WHERE {event_position} > ?",
                               (after,), ledger=True)
        if not self.has("audit"):
            return 0
        return self._value("SELECT COUNT(*) FROM {audit} WHERE position > ?", (after,))

    def tip(self, region: str) -> _Tip:
        if not self.has("chain"):
            return _Tip(0, genesis_hash(region), {EVENT: 0, AUDIT: 0})
        rows = self._rows(self.sql("SELECT seq, hash FROM {chain} ORDER BY seq DESC LIMIT 1"))
        if not rows:
            return _Tip(0, genesis_hash(region), {EVENT: 0, AUDIT: 0})
        heads = {
            source: self._value("SELECT MAX(source_position) FROM {chain} WHERE source = ?",
                                (source,)) or 0
            for source in SOURCES
        }
        return _Tip(rows[0][0], bytes(rows[0][1]), heads)

    def chain_after(self, seq: int, limit: int) -> list[tuple]:
        if not self.has("chain"):
            return []
        return self._rows(self.sql(
            "SELECT seq, source, source_position, digest, prev_hash, hash FROM {chain} "
            "WHERE seq > ? ORDER BY seq LIMIT ?"), (seq, limit))

    def retention_upto(self, max_seq: int) -> int:
        """The newest audit position a retention marker at or before chain entry ``max_seq``
        says was pruned (the minimum position when none does). The chain is numbered from 1:
        a row below is none of its entries, whatever it says."""
        if not self.has("chain"):
            return _MIN_POSITION
        upto = self._value("SELECT MAX(source_position) FROM {chain} WHERE source = ? AND "
                           "seq BETWEEN 1 AND ?", (RETENTION, max_seq))
        return _MIN_POSITION if upto is None else upto

    def chained_after(self, source: str, position: int, limit: int) -> list[tuple]:
        """(position, digest) of a source's chain entries after ``position``."""
        return self._rows(self.sql(
            "SELECT source_position, digest FROM {chain} WHERE source = ? AND source_position > ? "
            "ORDER BY source_position LIMIT ?"), (source, position, limit))

    def insert_entries(self, entries: list[tuple]) -> None:
        """Append (seq, source, source_position, digest, prev_hash, hash) rows to the chain."""
        raise NotImplementedError

    def checkpoints_after(self, seq: int, limit: int) -> list[_Checkpoint]:
        if not self.has("checkpoints"):
            return []
        rows = self._rows(self.sql(
            "SELECT seq, chain_seq, head_hash, created, prev_hash, key_id, signature "
            "FROM {checkpoints} WHERE seq > ? ORDER BY seq LIMIT ?"), (seq, limit))
        return [_checkpoint_of(r) for r in rows]

    def last_checkpoint(self) -> _Checkpoint | None:
        if not self.has("checkpoints"):
            return None
        rows = self._rows(self.sql(  # (numbered from 1: a row below is no checkpoint)
            "SELECT seq, chain_seq, head_hash, created, prev_hash, key_id, signature "
            "FROM {checkpoints} WHERE seq >= 1 ORDER BY seq DESC LIMIT 1"))
        return _checkpoint_of(rows[0]) if rows else None

    def row_count(self, table: str) -> int:
        """Every row of a table (``names``), whatever its position."""
        if not self.has(table):
            return 0
        return self._value(f"SELECT COUNT(*) FROM {{{table}}}", ledger=table == "events")

    def insert_checkpoint(self, cp: _Checkpoint) -> None:
        self._execute(self.sql(
            "INSERT INTO {checkpoints} (seq, chain_seq, head_hash, created, prev_hash, key_id, "
            "signature) VALUES (?, ?, ?, ?, ?, ?, ?)"),
            (cp.seq, cp.chain_seq, cp.head_hash, cp.created, cp.prev_hash, cp.key_id,
             cp.signature))

    def keyring_get(self, entry: str) -> bytes | None:
        raise NotImplementedError

    def keyring_put(self, entry: str, wrapped: bytes) -> None:
        raise NotImplementedError


class _SQLiteRegionDB(_RegionDB):
    names = {"events": "stored_events", "event_position": "rowid", "audit": AUDIT_TABLE,
             "chain": CHAIN_TABLE, "checkpoints": CHECKPOINT_TABLE,
             "snapshots": "stored_snapshots"}
    _TABLE_NAMES = {"events": "stored_events", "audit": AUDIT_TABLE, "chain": CHAIN_TABLE,
                    "checkpoints": CHECKPOINT_TABLE, "snapshots": "stored_snapshots"}
    _IN_LEDGER = ("events", "snapshots")  # (the tables of ledger.db; the others: audit.db)

    def __init__(self, folder: Path, region: str, writable: bool) -> None:
        super().__init__(region)
        self.folder = folder
        self.writable = writable
        if writable:
            folder.mkdir(parents=True, exist_ok=True)
            self._main = sqlite3.connect(folder / "audit.db", isolation_level=None,
                                         check_same_thread=False, timeout=30)
            self._main.execute("PRAGMA journal_mode=WAL")
            # The chain is rebuilt from the sources if its newest commit is lost, and WAL keeps
            # commits in order: no fsync of its own (the audit records' commits have theirs).
            self._main.execute("PRAGMA synchronous=NORMAL")
        else:
            self._main = open_sqlite_read_only(folder / "audit.db")
        self._ledger: sqlite3.Connection | None = None
        self._keyring: sqlite3.Connection | None = None
        self._lease: Any = None  # the open lock file while this process is the chainer

    def _ledger_conn(self) -> sqlite3.Connection | None:
        if self._ledger is None:
            self._ledger = open_sqlite_read_only(self.folder / "ledger.db")
        return self._ledger

    def _rows(self, sql: str, args: tuple = (), ledger: bool = False) -> list[tuple]:
        conn = self._ledger_conn() if ledger else self._main
        if conn is None:
            return []
        return conn.execute(sql, args).fetchall()

    def insert_entries(self, entries: list[tuple]) -> None:
        insert_rows(self._main, self.sql(
            "INSERT INTO {chain} (seq, source, source_position, digest, prev_hash, hash)"), entries)

    def _execute(self, sql: str, args: tuple = ()) -> int:
        return self._main.execute(sql, args).rowcount

    def _exists(self, table: str) -> bool:
        conn = self._ledger_conn() if table in self._IN_LEDGER else self._main
        if conn is None:
            return False
        return conn.execute("SELECT 1 FROM sqlite_master WHERE type = 'table' AND name = ?",
                            (self._TABLE_NAMES[table],)).fetchone() is not None

    @contextlib.contextmanager
    def write_lock(self) -> Iterator[None]:
        with self.lock:
            self._main.execute("BEGIN IMMEDIATE")
            try:
                yield
            except BaseException:
                self._main.execute("ROLLBACK")
                raise
            self._main.execute("COMMIT")

    @contextlib.contextmanager
    def snapshot(self) -> Iterator[None]:
        """One read transaction per file; the chain's first, so every event it chained is in
        the ledger's (later) snapshot."""
        with self.lock:
            opened = []
            try:
                for conn in (self._main, self._ledger_conn()):
                    if conn is not None:
                        conn.execute("BEGIN")
                        conn.execute("SELECT COUNT(*) FROM sqlite_master").fetchone()
                        opened.append(conn)
                yield
            finally:
                for conn in opened:
                    conn.execute("ROLLBACK")

    def create_tables(self) -> None:
        self._main.executescript(f"""
            CREATE TABLE IF NOT EXISTS {CHAIN_TABLE} (
                seq INTEGER PRIMARY KEY,
                source TEXT NOT NULL,
                source_position INTEGER NOT NULL,
                digest BLOB NOT NULL,
                prev_hash BLOB NOT NULL,
                hash BLOB NOT NULL
            );
            CREATE UNIQUE INDEX IF NOT EXISTS {CHAIN_TABLE}_source
                ON {CHAIN_TABLE} (source, source_position);
            CREATE TABLE IF NOT EXISTS {CHECKPOINT_TABLE} (
                seq INTEGER PRIMARY KEY,
                chain_seq INTEGER NOT NULL,
                head_hash BLOB NOT NULL,
                created REAL NOT NULL,
                prev_hash BLOB NOT NULL,
                key_id TEXT NOT NULL,
                signature BLOB NOT NULL
            );
        """)

    def structure_problem(self) -> str | None:
        files = (("audit.db", self._main, ("audit", "chain", "checkpoints")),
                 ("ledger.db", self._ledger_conn(), self._IN_LEDGER))
        for name, conn, tables in files:
            if conn is None:
                continue
            for table in tables:
                found = conn.execute("SELECT type, sql FROM sqlite_master WHERE name = ? "
                                     "COLLATE NOCASE", (self._TABLE_NAMES[table],)).fetchone()
                if found is not None and found[0] != "table":
                    return f"{name}: {self._TABLE_NAMES[table]} is a {found[0]}, not a table"
                # (no column of these tables is declared with one: NOCASE would widen what a
                # query by key or principal matches, and the integrity check agrees)
                if found is not None and "COLLATE" in (found[1] or "").upper():
                    return (f"{name}: {self._TABLE_NAMES[table]} declares a collation: what a "
                            "query matches may not be what is stored")
                if found is not None and (
                        missing := self._missing_column(table, self._TABLE_NAMES[table])):
                    return f"{name}: {missing}"
            # a trigger can drop what the server writes (RAISE(IGNORE)) or rewrite it: the
            # chain would never see the record or event it swallowed
            trigger = conn.execute("SELECT name, tbl_name FROM sqlite_master WHERE type = "
                                   "'trigger'").fetchone()
            if trigger is not None:
                return (f"{name}: trigger {trigger[0]} on {trigger[1]}: it can drop or change "
                        "what the server writes before the chain sees it")
            # indexes that agree with their tables (a query may read either), pages, records
            found = [row[0] for row in conn.execute("PRAGMA integrity_check(5)")]
            if found != ["ok"]:
                return f"{name}: SQLite's integrity check: " + "; ".join(found)
        return None

    def _columns(self, table: str) -> set[str]:
        conn = self._ledger_conn() if table in self._IN_LEDGER else self._main
        return {row[1] for row in conn.execute(
            "SELECT * FROM pragma_table_info(?)", (self._TABLE_NAMES[table],))}

    def _try_lease(self) -> bool:
        if self._lease is not None:
            return True
        handle = open(self.folder / ".chainer.lock", "a")  # noqa: SIM115 - held until close()
        try:
            fcntl.flock(handle, fcntl.LOCK_EX | fcntl.LOCK_NB)
        except BlockingIOError:
            handle.close()
            return False
        self._lease = handle
        return True

    def _keyring_conn(self) -> sqlite3.Connection:
        if self._keyring is None:
            conn = sqlite3.connect(self.folder / "keyring.db", isolation_level=None,
                                   check_same_thread=False, timeout=30)
            conn.execute("PRAGMA journal_mode=WAL")
            conn.execute("PRAGMA synchronous=FULL")
            conn.execute("CREATE TABLE IF NOT EXISTS data_keys "
                         "(key_id TEXT PRIMARY KEY, wrapped BLOB NOT NULL)")
            self._keyring = conn
        return self._keyring

    def keyring_get(self, entry: str) -> bytes | None:
        return read_sqlite_keyring(self.folder / "keyring.db", entry)

    def keyring_put(self, entry: str, wrapped: bytes) -> None:
        self._keyring_conn().execute(
            "INSERT INTO data_keys VALUES (?, ?) ON CONFLICT (key_id) DO NOTHING", (entry, wrapped))

    def close(self) -> None:
        for conn in (self._main, self._ledger, self._keyring):
            if conn is not None:
                conn.close()
        if self._lease is not None:
            self._lease.close()  # releases the flock
            self._lease = None


def read_sqlite_keyring(path: Path, entry: str) -> bytes | None:
    conn = open_sqlite_read_only(path)
    if conn is None:
        return None
    try:
        row = conn.execute("SELECT wrapped FROM data_keys WHERE key_id = ?", (entry,)).fetchone()
    except sqlite3.OperationalError:  # no keyring table yet
        return None
    finally:
        conn.close()
    return None if row is None else bytes(row[0])


def _pg_canonical(columns: Iterable[tuple[str, str]]) -> str:
    """SQL building :func:`canonical`'s bytes of columns (name, int | float | text | bytea)."""
    tag = {name: f"'\\x{name.encode().hex()}'::bytea" for name in "NIFSB"}
    parts = []
    for column, kind in columns:
        if kind == "int":
            value = f"{tag['I']} || int8send({column}::bigint)"
        elif kind == "float":
            value = f"{tag['F']} || float8send({column}::float8)"
        elif kind == "text":
            utf8 = f"convert_to({column}::text, 'UTF8')"
            value = f"{tag['S']} || int4send(octet_length({utf8})) || {utf8}"
        else:
            value = f"{tag['B']} || int4send(length({column})) || {column}"
        parts.append(f"CASE WHEN {column} IS NULL THEN {tag['N']} ELSE {value} END")
    return "(" + " || ".join(parts) + ")"


_PG_REST = {
    EVENT: _pg_canonical([("originator_id", "text"), ("originator_version", "int"),
                          ("topic", "text"), ("state", "bytea")]),
    AUDIT: _pg_canonical([("event_time", "float"), ("account", "text"), ("key_id", "text"),
                          ("principal", "text"), ("event_name", "text"), ("error_code", "text"),
                          ("request_id", "text"), ("event_id", "text"), ("record", "bytea")]),
}


class _PostgresRegionDB(_RegionDB):
    """For the chainer the database computes each row's digest (pure-Python psycopg decodes
    values slowly); the verifier computes them itself (``_hash_in_database``)."""

    placeholder = "%s"

    def __init__(self, conninfo: dict[str, Any], region: str, writable: bool) -> None:
        super().__init__(region)
        self.schema = schema_name(region)
        q = f'"{self.schema}".'  # the schema name is built from a validated region name
        self.names = {"events": q + '"keyledger_events"', "event_position": "notification_id",
                      "audit": q + f'"{AUDIT_TABLE}"', "chain": q + f'"{CHAIN_TABLE}"',
                      "checkpoints": q + f'"{CHECKPOINT_TABLE}"', "keyring": q + '"data_keys"',
                      "snapshots": q + '"keyledger_snapshots"'}
        self._table_names = {"events": "keyledger_events", "audit": AUDIT_TABLE,
                             "chain": CHAIN_TABLE, "checkpoints": CHECKPOINT_TABLE,
                             "snapshots": "keyledger_snapshots"}
        self._conn = psycopg.connect(**conninfo, autocommit=True)
        self._leased = False  # a session advisory lock: released when the connection closes
        #: the chainer has the database hash its rows (pure-Python psycopg decodes slowly);
        #: the verifier trusts nothing the store defines: it hashes in Python (and, as every
        #: keyledger connection, reads on a search path of pg_catalog alone: persistence)
        self._hash_in_database = writable
        if writable:
            # as on SQLite: a lost newest chain commit is rebuilt; PostgreSQL's WAL keeps order
            self._conn.execute("SET synchronous_commit = off")

    def _rows(self, sql: str, args: tuple = (), ledger: bool = False) -> list[tuple]:
        return self._conn.execute(sql, args).fetchall()

    def source_digests(self, source: str, after: int, limit: int) -> list[tuple[int, bytes]]:
        if not self._hash_in_database:
            return super().source_digests(source, after, limit)
        position = "{event_position}" if source == EVENT else "position"
        prefix = f"'\\x{(_PREFIX[source] + b'I').hex()}'::bytea"
        rows = self._source_rows(
            source, f"sha256({prefix} || int8send({position}) || {_PG_REST[source]})",
            "{position} > ? ORDER BY {position} LIMIT ?", (after, limit))
        return [(p, bytes(d)) for p, d in rows]

    def _rests(self, source: str, where: str, args: tuple) -> list[tuple[int, bytes]]:
        if not self._hash_in_database:
            return super()._rests(source, where, args)
        return [(p, bytes(rest)) for p, rest in self._source_rows(source, _PG_REST[source],
                                                                  where, args)]

    def structure_problem(self) -> str | None:
        for key, name in self._table_names.items():
            found = self._conn.execute(
                "SELECT c.oid, c.relkind, c.relrowsecurity FROM pg_class c JOIN pg_namespace n "
                "ON n.oid = c.relnamespace WHERE n.nspname = %s AND c.relname = %s",
                (self.schema, name)).fetchone()
            if found is None:
                continue
            table, kind, row_security = found
            if (kind, row_security) != ("r", False):
                return (f"{self.schema}.{name} is not a plain table (relkind {kind!r}, "
                        f"row security {'on' if row_security else 'off'}): what a reader sees "
                        "of it may not be what is stored")
            # a domain (with its own =) or a nondeterministic collation changes what a query
            # matches without changing what is stored
            odd = self._conn.execute(
                "SELECT a.attname, format_type(a.atttypid, a.atttypmod) FROM pg_attribute a "
                "JOIN pg_type t ON t.oid = a.atttypid LEFT JOIN pg_collation c ON "
                "c.oid = a.attcollation WHERE a.attrelid = %s AND a.attnum > 0 AND NOT "
                "a.attisdropped AND (t.typtype <> 'b' OR t.typnamespace <> "
                "'pg_catalog'::regnamespace OR c.collisdeterministic IS FALSE)",
                (table,)).fetchone()
            if odd is not None:
                return (f"{self.schema}.{name}.{odd[0]} is of type {odd[1]}, or has a "
                        "collation, that is not PostgreSQL's own: what a query matches may "
                        "not be what is stored")
            trigger = self._conn.execute("SELECT tgname FROM pg_trigger WHERE tgrelid = %s "
                                         "AND NOT tgisinternal", (table,)).fetchone()
            if trigger is not None:
                return (f"{self.schema}.{name} has trigger {trigger[0]}: it can drop or change "
                        "what the server writes before the chain sees it")
            rule = self._conn.execute("SELECT rulename FROM pg_rewrite WHERE ev_class = %s",
                                      (table,)).fetchone()
            if rule is not None:  # (a plain table has none: a view's is its relkind, above)
                return (f"{self.schema}.{name} has rule {rule[0]}: it can drop or change what "
                        "the server writes before the chain sees it")
            related = self._conn.execute(
                "SELECT c.oid::regclass::text FROM pg_inherits i JOIN pg_class c ON c.oid = "
                "CASE WHEN i.inhparent = %s THEN i.inhrelid ELSE i.inhparent END "
                "WHERE i.inhparent = %s OR i.inhrelid = %s", (table, table, table)).fetchone()
            if related is not None:
                return (f"{self.schema}.{name} inherits from, or is inherited by, {related[0]}: "
                        "a query by key or principal may read other rows than the ones "
                        "checked")
            if (missing := self._missing_column(key, f"{self.schema}.{name}")) is not None:
                return missing
        functions = self._conn.execute(
            "SELECT p.prosrc, p.proconfig, l.lanname FROM pg_proc p JOIN pg_namespace n ON "
            "n.oid = p.pronamespace JOIN pg_language l ON l.oid = p.prolang "
            "WHERE n.nspname = %s AND p.proname = %s", (self.schema, RECORD_TEXT)).fetchall()
        if any(tuple(f) != (RECORD_TEXT_BODY, None, "sql") for f in functions):
            return (f"{self.schema}.{RECORD_TEXT} is not the function keyledger defines: the "
                    "audit's queries by key read records through it")
        return self._index_problem()

    def _columns(self, table: str) -> set[str]:
        return {row[0] for row in self._conn.execute(
            "SELECT a.attname FROM pg_attribute a JOIN pg_class c ON c.oid = a.attrelid JOIN "
            "pg_namespace n ON n.oid = c.relnamespace WHERE n.nspname = %s AND c.relname = %s "
            "AND a.attnum > 0 AND NOT a.attisdropped", (self.schema, self._table_names[table]))}

    def _index_problem(self) -> str | None:
        """With PostgreSQL's amcheck extension installed, whether every B-tree index of the
        tables holds what its table does (an expression index built while its function said
        something else does not): otherwise nothing is checked (docs/audit.md)."""
        where = self._conn.execute("SELECT n.nspname FROM pg_extension e JOIN pg_namespace n "
                                   "ON n.oid = e.extnamespace WHERE e.extname = 'amcheck'").fetchone()
        if where is None:
            return None
        check = psycopg.sql.SQL("SELECT {}.bt_index_check(%s, true)").format(
            psycopg.sql.Identifier(where[0]))
        indexes = self._conn.execute(
            "SELECT i.indexrelid, i.indexrelid::regclass::text FROM pg_index i JOIN pg_class c "
            "ON c.oid = i.indexrelid JOIN pg_am a ON a.oid = c.relam JOIN pg_class t ON "
            "t.oid = i.indrelid JOIN pg_namespace n ON n.oid = t.relnamespace WHERE "
            "n.nspname = %s AND t.relname = ANY(%s) AND a.amname = 'btree'",
            (self.schema, list(self._table_names.values()))).fetchall()
        for index, name in indexes:
            try:
                with self._conn.transaction():  # (a savepoint inside the verifier's snapshot)
                    self._conn.execute(check, (index,))
            except psycopg.Error as error:
                return f"index {name} does not hold what its table does (amcheck: {error})"
        return None

    def source_heads(self) -> dict[str, int]:
        if not (self.has("events") and self.has("audit")):
            return super().source_heads()
        event, audit = self._rows(self.sql(  # one round trip per idle pass
            "SELECT (SELECT MAX({event_position}) FROM {events}), "
            "(SELECT MAX(position) FROM {audit})"))[0]
        return {EVENT: event or 0, AUDIT: audit or 0}

    def insert_entries(self, entries: list[tuple]) -> None:
        data = "".join(f"{seq}\t{source}\t{position}\t\\\\x{digest.hex()}\t\\\\x{prev.hex()}"
                       f"\t\\\\x{entry_hash.hex()}\n"
                       for seq, source, position, digest, prev, entry_hash in entries)
        with self._conn.cursor() as cursor, cursor.copy(self.sql(
                "COPY {chain} (seq, source, source_position, digest, prev_hash, hash) "
                "FROM STDIN")) as copy:
            copy.write(data)

    def _execute(self, sql: str, args: tuple = ()) -> int:
        return self._conn.execute(sql, args).rowcount

    def _exists(self, table: str) -> bool:
        return self._conn.execute(
            "SELECT to_regclass(%s)", (f'"{self.schema}"."{self._table_names[table]}"',)
        ).fetchone()[0] is not None

    @contextlib.contextmanager
    def write_lock(self) -> Iterator[None]:
        with self.lock, self._conn.transaction():
            self._conn.execute("SET LOCAL lock_timeout = '30s'")
            self._conn.execute(self.sql("LOCK TABLE {chain} IN EXCLUSIVE MODE"))
            yield

    @contextlib.contextmanager
    def snapshot(self) -> Iterator[None]:
        with self.lock:
            self._conn.isolation_level = psycopg.IsolationLevel.REPEATABLE_READ
            self._conn.read_only = True
            try:
                with self._conn.transaction(force_rollback=True):
                    yield
            finally:
                self._conn.isolation_level = None
                self._conn.read_only = None

    def _create_schema(self) -> None:
        try:
            self._conn.execute(f'CREATE SCHEMA IF NOT EXISTS "{self.schema}"')
        except psycopg.errors.UniqueViolation:
            pass  # another process created it at the same moment

    def create_tables(self) -> None:
        self._create_schema()
        with self._conn.transaction():
            # concurrent CREATE TABLE IF NOT EXISTS can collide in the catalog: take turns
            self._conn.execute("SELECT pg_advisory_xact_lock(hashtext(%s))",
                               (self.schema + ".chain-ddl",))
            self._conn.execute(self.sql("""
                CREATE TABLE IF NOT EXISTS {chain} (
                    seq BIGINT PRIMARY KEY,
                    source TEXT NOT NULL,
                    source_position BIGINT NOT NULL,
                    digest BYTEA NOT NULL,
                    prev_hash BYTEA NOT NULL,
                    hash BYTEA NOT NULL
                )"""))
            self._conn.execute(self.sql(
                f"CREATE UNIQUE INDEX IF NOT EXISTS {CHAIN_TABLE}_source "
                "ON {chain} (source, source_position)"))
            self._conn.execute(self.sql("""
                CREATE TABLE IF NOT EXISTS {checkpoints} (
                    seq BIGINT PRIMARY KEY,
                    chain_seq BIGINT NOT NULL,
                    head_hash BYTEA NOT NULL,
                    created DOUBLE PRECISION NOT NULL,
                    prev_hash BYTEA NOT NULL,
                    key_id TEXT NOT NULL,
                    signature BYTEA NOT NULL
                )"""))

    def keyring_get(self, entry: str) -> bytes | None:
        return read_postgres_keyring(self._conn, self.schema, entry)

    def keyring_put(self, entry: str, wrapped: bytes) -> None:
        self._create_schema()
        with self._conn.transaction():
            self._conn.execute(self.sql(
                "CREATE TABLE IF NOT EXISTS {keyring} (key_id TEXT PRIMARY KEY, wrapped BYTEA NOT NULL)"))
            self._conn.execute(self.sql(
                "INSERT INTO {keyring} VALUES (?, ?) ON CONFLICT (key_id) DO NOTHING"),
                (entry, wrapped))

    def _try_lease(self) -> bool:
        if self._leased:
            return True
        self._leased = self._conn.execute("SELECT pg_try_advisory_lock(hashtext(%s))",
                                          (self.schema + ".chainer",)).fetchone()[0]
        return self._leased

    @contextlib.contextmanager
    def store_lock(self) -> Iterator[None]:
        """All processes of the store take turns (creating the signing key)."""
        with self._conn.transaction():
            self._conn.execute("SELECT pg_advisory_xact_lock(hashtext('keyledger.checkpoint-key'))")
            yield

    def close(self) -> None:
        self._conn.close()


def read_postgres_keyring(conn: psycopg.Connection, schema: str, entry: str) -> bytes | None:
    if conn.execute("SELECT to_regclass(%s)", (f'"{schema}"."data_keys"',)).fetchone()[0] is None:
        return None
    row = conn.execute(f'SELECT wrapped FROM "{schema}"."data_keys" WHERE key_id = %s',
                       (entry,)).fetchone()
    return None if row is None else bytes(row[0])


def _open_region_db(store: StoreConfig, region: str, writable: bool) -> _RegionDB:
    if not REGION_PATTERN.match(region):
        raise ValueError(f"invalid region name {region!r}")
    if store.is_postgres:
        return _PostgresRegionDB(store.postgres_conninfo(), region, writable)
    return _SQLiteRegionDB(store.region_folder(region), region, writable)


# -- the checkpoint signing key -------------------------------------------------------------------

class CheckpointKey:
    """The store's Ed25519 checkpoint key, sealed under the root key in every region's keyring.

    Generated once per store (under a store-wide lock, after looking in every region's
    keyring); a region without it gets a copy of the one the others hold.
    """

    def __init__(self, store: StoreConfig, root_key: RootKey) -> None:
        self._store = store
        self._root = root_key
        self._keys: dict[str, Ed25519PrivateKey] = {}

    def private_key(self, db: _RegionDB) -> Ed25519PrivateKey:
        key = self._keys.get(db.region)
        if key is None:
            wrapped = db.keyring_get(SIGNING_KEY_ENTRY) or self._find_or_create(db)
            key = Ed25519PrivateKey.from_private_bytes(self._root.unwrap(SIGNING_KEY_ENTRY, wrapped))
            self._keys[db.region] = key
        return key

    def public_key(self, db: _RegionDB) -> Ed25519PublicKey:
        return self.private_key(db).public_key()

    def _find_or_create(self, db: _RegionDB) -> bytes:
        with self._store_lock(db):
            wrapped = db.keyring_get(SIGNING_KEY_ENTRY) or self._find_elsewhere(db)
            if wrapped is None:
                raw = Ed25519PrivateKey.generate().private_bytes(
                    serialization.Encoding.Raw, serialization.PrivateFormat.Raw,
                    serialization.NoEncryption())
                wrapped = self._root.wrap(SIGNING_KEY_ENTRY, raw)
                log.info("created the checkpoint signing key (region %s)", db.region)
            db.keyring_put(SIGNING_KEY_ENTRY, wrapped)
            return db.keyring_get(SIGNING_KEY_ENTRY) or wrapped

    def _find_elsewhere(self, db: _RegionDB) -> bytes | None:
        for region in self._store.known_regions():
            if region == db.region:
                continue
            if isinstance(db, _PostgresRegionDB):
                wrapped = read_postgres_keyring(db._conn, schema_name(region), SIGNING_KEY_ENTRY)
            else:
                wrapped = read_sqlite_keyring(self._store.region_folder(region) / "keyring.db",
                                              SIGNING_KEY_ENTRY)
            if wrapped is not None:
                return wrapped
        return None

    def _store_lock(self, db: _RegionDB) -> contextlib.AbstractContextManager[None]:
        if isinstance(db, _PostgresRegionDB):
            return db.store_lock()
        return file_lock(self._store.data_dir / "regions" / ".checkpoint-key.lock")


class SigningKeyLost(Exception):
    """The store has signed checkpoints, and no keyring of it holds the key that signed them."""


def checkpoint_public_key(store: StoreConfig, root_key: RootKey, region: str = "us-east-1") -> bytes:
    """The store's checkpoint public key (PEM); created (in ``region``'s keyring) if the store
    has none yet. SigningKeyLost if it has checkpoints and no keyring holds their key: a new
    key would verify none of them, and only the public key exported before can."""
    known = sorted(store.known_regions(), key=lambda name: name != region)  # ``region`` first
    stored = {name: _stored_signing_key(store, name) for name in known}
    holders = [name for name in known if stored[name] is not None]
    if holders:  # read as it is stored: nothing of the store is opened for writing
        raw = root_key.unwrap(SIGNING_KEY_ENTRY, stored[holders[0]])
        return public_key_pem(Ed25519PrivateKey.from_private_bytes(raw).public_key())
    if not holders:
        for name in known:
            reader = _open_region_db(store, name, writable=False)
            try:
                signed = reader.last_checkpoint()
            finally:
                reader.close()
            if signed is not None:
                raise SigningKeyLost(
                    f"the {name} Region has checkpoints signed by key {signed.key_id}, which no "
                    "keyring of this store holds: verify them with the public key exported "
                    "before (a new key would verify none of them)")
    db = _open_region_db(store, holders[0] if holders else region, writable=True)
    try:
        return public_key_pem(CheckpointKey(store, root_key).public_key(db))
    finally:
        db.close()


def _stored_signing_key(store: StoreConfig, region: str) -> bytes | None:
    if not store.is_postgres:
        return read_sqlite_keyring(store.region_folder(region) / "keyring.db", SIGNING_KEY_ENTRY)
    with psycopg.connect(**store.postgres_conninfo(), autocommit=True) as conn:
        return read_postgres_keyring(conn, schema_name(region), SIGNING_KEY_ENTRY)


# -- the chainer ----------------------------------------------------------------------------------

class RegionChain:
    """Appends one region's new events and audit records to its chain and writes checkpoints."""

    def __init__(self, db: _RegionDB, key: CheckpointKey, *, checkpoint_every: int,
                 checkpoint_interval: float, clock: Callable[[], float],
                 exclusive: bool = True) -> None:
        self.db = db
        self._exclusive = exclusive
        self.region = db.region
        self._key = key
        self._every = checkpoint_every
        self._interval = checkpoint_interval
        self._clock = clock
        db.create_tables()
        with db.lock:
            self._tip = db.tip(self.region)
            self._checkpoint = db.last_checkpoint()

    @property
    def head(self) -> int:
        return self._tip.seq

    def run(self, budget: float = 0.25, final: bool = False) -> int:
        """Chain what is new (for up to ``budget`` seconds), then write a checkpoint if one is
        due (``final``: if anything is not yet checkpointed). Returns how many entries this
        process appended."""
        deadline = time.monotonic() + budget
        appended = 0
        with self.db.lock:
            # One process chains a region at a time: the others would hash the same rows only
            # to find them chained. On the way out, wait for the lease: what this process wrote
            # gets chained and checkpointed even if another process was the chainer.
            if self._exclusive and not self.db.lease(wait=3.0 if final else 0.0):
                return 0
            while True:
                heads = self.db.source_heads()
                if all(heads[s] <= self._tip.heads[s] for s in SOURCES):
                    break
                self._tip = self.db.tip(self.region)  # another process may have chained them
                if all(heads[s] <= self._tip.heads[s] for s in SOURCES):
                    break
                appended += self._append_batch()
                self._checkpoint_if_due(False)
                if time.monotonic() > deadline:
                    break
            self._checkpoint_if_due(final)
        return appended

    def _append_batch(self) -> int:
        tip = self._tip
        limit = _BATCH
        uncheckpointed = tip.seq - (self._checkpoint.chain_seq if self._checkpoint else 0)
        if self._checkpoint is not None and uncheckpointed < self._every:
            limit = min(limit, self._every - uncheckpointed)  # checkpoints land on the 10,000s
        entries = []
        seq, prev = tip.seq, tip.hash
        heads = dict(tip.heads)
        for source in SOURCES:
            if len(entries) >= limit:
                break
            for position, digest in self.db.source_digests(source, heads[source],
                                                           limit - len(entries)):
                seq += 1
                entry_hash = link_hash(seq, source, position, digest, prev)
                entries.append((seq, source, position, digest, prev, entry_hash))
                prev = entry_hash
                heads[source] = position
        if not entries:
            return 0
        with self.db.write_lock():
            current = self.db.tip(self.region)
            if current.seq != tip.seq or current.hash != tip.hash:
                self._tip = current  # another process chained first: build on its tip
                return 0
            self.db.insert_entries(entries)
        self._tip = _Tip(seq, prev, heads)
        return len(entries)

    def _due(self, final: bool) -> bool:
        cp = self._checkpoint
        if cp is None:
            return self._tip.seq > 0
        if self._tip.seq <= cp.chain_seq:
            return False
        return (final or self._tip.seq - cp.chain_seq >= self._every
                or self._clock() - cp.created >= self._interval)

    def _checkpoint_if_due(self, final: bool) -> None:
        if not self._due(final):
            return
        signer = self._key.private_key(self.db)
        with self.db.write_lock():
            self._checkpoint_locked(final, signer)

    def _checkpoint_locked(self, final: bool, signer: Ed25519PrivateKey) -> None:
        """Write the checkpoint if it is due, in the store's write transaction (held)."""
        self._checkpoint = self.db.last_checkpoint()
        self._tip = self.db.tip(self.region)
        if not self._due(final):
            return  # another process wrote it
        previous = self._checkpoint
        seq = previous.seq + 1 if previous else 1
        prev_hash = previous.hash(self.region) if previous else _NO_CHECKPOINT
        created = max(self._clock(), previous.created if previous else 0.0)
        key_id = public_key_id(signer.public_key())
        message = checkpoint_message(self.region, seq, self._tip.seq, self._tip.hash, created,
                                     prev_hash, key_id)
        cp = _Checkpoint(seq, self._tip.seq, self._tip.hash, created, prev_hash, key_id,
                         signer.sign(message))
        self.db.insert_checkpoint(cp)
        self._checkpoint = cp

    def checkpoint(self) -> None:
        """Write a checkpoint now if anything chained is not yet checkpointed."""
        with self.db.lock:
            self._checkpoint_if_due(True)

    def prune_before(self, cutoff_time: float) -> int:
        """Delete the audit records older than ``cutoff_time`` (epoch seconds) that a
        checkpoint already anchors, a whole checkpointed prefix at a time; returns how many.

        Records are deleted up to the newest checkpoint before which every audit record is
        older than the cutoff; the chain entries and checkpoints stay, so the verifier still
        checks the chain (and every event) from the start. Each deletion appends a retention
        marker to the chain in its transaction ("audit records up to position P were pruned"),
        and a checkpoint signs it in the same transaction: the verifier accepts missing audit
        records only up to a signed marker, so deleting records behind keyledger's back is still
        "missing". Deletion goes checkpoint by checkpoint, each deletion with its marker and
        their checkpoint at once, so an interruption (a kill included) leaves a valid prefix.
        """
        db = self.db
        with db.lock:
            if not db.has("audit") or not db.has("checkpoints"):
                return 0
            keep = db._value("SELECT MIN(position) FROM {audit} WHERE event_time >= ?",
                             (cutoff_time,))
            limit_seq = None
            if keep is not None:
                limit_seq = db._value("SELECT seq FROM {chain} WHERE source = ? AND "
                                      "source_position >= ? ORDER BY source_position LIMIT 1",
                                      (AUDIT, keep))
            boundaries = [row[0] for row in db._rows(db.sql(
                "SELECT chain_seq FROM {checkpoints} WHERE chain_seq < ? ORDER BY seq"),
                (limit_seq if limit_seq is not None else 2**62,))]
            oldest = db._value("SELECT MIN(position) FROM {audit}")
            if oldest is None:
                return 0
            deleted, done_upto = 0, oldest - 1
            signer = self._key.private_key(db) if boundaries else None
            for index, chain_seq in enumerate(boundaries):
                upto = db._value("SELECT source_position FROM {chain} WHERE source = ? AND "
                                 "seq <= ? ORDER BY seq DESC LIMIT 1", (AUDIT, chain_seq))
                if upto is None or upto <= done_upto:
                    continue
                if upto - done_upto < _PRUNE_CHUNK and index < len(boundaries) - 1:
                    continue  # delete several small checkpointed prefixes at once
                with db.write_lock():
                    deleted += db._execute(db.sql("DELETE FROM {audit} WHERE position <= ?"),
                                           (upto,))
                    tip = db.tip(self.region)
                    seq, digest = tip.seq + 1, retention_digest(upto)
                    entry_hash = link_hash(seq, RETENTION, upto, digest, tip.hash)
                    db.insert_entries([(seq, RETENTION, upto, digest, tip.hash, entry_hash)])
                    self._tip = _Tip(seq, entry_hash, tip.heads)
                    self._checkpoint_locked(True, signer)  # the marker, signed as it commits
                done_upto = upto
            return deleted

    def close(self) -> None:
        self.db.close()


class LedgerChainer:
    """The chainer of one server process: every region it has open, on each maintenance pass."""

    def __init__(self, store: StoreConfig, root_key: RootKey, *,
                 checkpoint_every: int = CHECKPOINT_EVERY,
                 checkpoint_interval: float = CHECKPOINT_INTERVAL,
                 pass_budget: float = 0.25, clock: Callable[[], float] = time.time,
                 exclusive: bool = True) -> None:
        self.store = store
        self.key = CheckpointKey(store, root_key)
        self._options = {"checkpoint_every": checkpoint_every,
                         "checkpoint_interval": checkpoint_interval, "clock": clock,
                         "exclusive": exclusive}
        self._budget = pass_budget
        self._regions: dict[str, RegionChain] = {}
        self._lock = threading.Lock()

    @classmethod
    def for_store(cls, data_dir: Path, store_url: str | None, root_key_file: str | None = None,
                  **options: Any) -> LedgerChainer:
        return cls(StoreConfig(Path(data_dir), store_url),
                   RootKey.load(Path(data_dir), root_key_file), **options)

    def region(self, name: str) -> RegionChain:
        with self._lock:
            chain = self._regions.get(name)
            if chain is None:
                chain = RegionChain(_open_region_db(self.store, name, writable=True), self.key,
                                    **self._options)
                self._regions[name] = chain
            return chain

    def chain(self, region: str, final: bool = False) -> int:
        """Chain one region's new rows now (raises on failure)."""
        return self.region(region).run(self._budget, final)

    def run(self, regions: Iterable[str], final: bool = False) -> int:
        """One maintenance pass over ``regions``: never raises (a failed region is retried on
        the next pass). Returns how many entries were appended."""
        appended = 0
        for name in regions:
            try:
                appended += self.chain(name, final)
            except Exception:
                log.exception("chaining region %s failed; retrying on the next pass", name)
                self._drop(name)
        return appended

    def prune_before(self, cutoff_time: float, regions: Iterable[str] | None = None) -> dict[str, int]:
        """Retention: :meth:`RegionChain.prune_before` in every region (default: every region of
        the store); returns the number of audit records deleted per region."""
        names = list(regions) if regions is not None else self.store.known_regions()
        return {name: self.region(name).prune_before(cutoff_time) for name in names}

    def public_key_pem(self, region: str) -> bytes:
        return public_key_pem(self.key.public_key(self.region(region).db))

    def _drop(self, name: str) -> None:
        with self._lock:
            chain = self._regions.pop(name, None)
        if chain is not None:
            with contextlib.suppress(Exception):
                chain.close()

    def close(self) -> None:
        with self._lock:
            chains, self._regions = list(self._regions.values()), {}
        for chain in chains:
            chain.close()


def prune_before(store: StoreConfig, root_key: RootKey, cutoff_time: float,
                 regions: Iterable[str] | None = None) -> dict[str, int]:
    """Retention in every region of a store (see :meth:`RegionChain.prune_before`)."""
    chainer = LedgerChainer(store, root_key)
    try:
        return chainer.prune_before(cutoff_time, regions)
    finally:
        chainer.close()


# -- the verifier ---------------------------------------------------------------------------------

@dataclass(frozen=True)
class Problem:
    kind: str  # edited | missing | inserted | reordered | truncated | truncated after the last
    #            checkpoint | bad signature | unanchored (verify's ``anchored`` only)
    where: str  # e.g. "audit record at position 17 (chain seq 40)"
    detail: str

    def message(self, region: str) -> str:
        return f"region {region}, {self.where}: {self.kind} ({self.detail})"


@dataclass
class RegionReport:
    region: str
    events: int = 0  # events verified
    audit: int = 0  # audit records verified
    pruned: int = 0  # audit records chained and since pruned by retention (a signed marker)
    checkpoints: int = 0
    last_checkpoint: float | None = None
    after_checkpoint: int = 0  # chained after the last checkpoint
    unchained: dict[str, int] = field(default_factory=lambda: {EVENT: 0, AUDIT: 0})
    problem: Problem | None = None
    snapshots: int = 0  # snapshots found to load what their events make (snapshot_check)

    @property
    def records(self) -> int:
        return self.events + self.audit

    @property
    def unanchored(self) -> int:
        return self.after_checkpoint + sum(self.unchained.values())

    def summary(self) -> str:
        text = (f"{self.region}: {self.events} events and {self.audit} audit records verified, "
                f"{self.snapshots} snapshots checked, "
                f"{self.checkpoints} checkpoints, last checkpoint {_iso(self.last_checkpoint)}")
        if self.pruned:
            text += (f"; {self.pruned} older audit records pruned by retention (a signed "
                     "retention marker covers them)")
        if self.unanchored:
            text += (f"; {self.unanchored} records unanchored ({self.after_checkpoint} chained "
                     f"after the last checkpoint, {sum(self.unchained.values())} not yet chained)"
                     " — anything after the last checkpoint can be changed without detection")
        return text


@dataclass
class VerifyReport:
    regions: list[RegionReport]

    @property
    def ok(self) -> bool:
        return bool(self.regions) and all(r.problem is None for r in self.regions)

    @property
    def records(self) -> int:
        return sum(r.records for r in self.regions)

    @property
    def checkpoints(self) -> int:
        return sum(r.checkpoints for r in self.regions)

    @property
    def last_checkpoint(self) -> float | None:
        times = [r.last_checkpoint for r in self.regions if r.last_checkpoint is not None]
        return max(times) if times else None

    @property
    def first_problem(self) -> tuple[str, Problem] | None:
        for report in self.regions:
            if report.problem is not None:
                return report.region, report.problem
        return None

    def headline(self) -> str:
        if not self.regions:
            return "FAILED: no region ledger found in this store"
        if self.ok:
            return (f"OK: {self.records} records, {self.checkpoints} checkpoints, "
                    f"last checkpoint {_iso(self.last_checkpoint)}")
        region, problem = self.first_problem
        return "FAILED: " + problem.message(region)

    def lines(self) -> list[str]:
        out = [self.headline()]
        first = self.first_problem  # (the headline names it already)
        for report in self.regions:
            out.append("  " + report.summary())
            if report.problem is not None and (report.region, report.problem) != first:
                out.append("    FAILED: " + report.problem.message(report.region))
        return out


class _Failed(Exception):
    def __init__(self, kind: str, where: str, detail: str) -> None:
        super().__init__(kind)
        self.problem = Problem(kind, where, detail)


def _where(source: str, position: int, seq: int | None = None) -> str:
    name = "event at notification id" if source == EVENT else "audit record at position"
    return f"{name} {position}" + (f" (chain seq {seq})" if seq is not None else "")


#: what a problem with a whole table names (by its name in ``_RegionDB.names``)
_TABLES = {"events": "the ledger's events", "audit": "the audit records",
           "chain": "the chain", "checkpoints": "the checkpoints"}


class _Rows:
    """One source's rows in position order, read a page at a time."""

    def __init__(self, db: _RegionDB, source: str) -> None:
        self._db = db
        self._source = source
        self._buffer: deque[tuple] = deque()
        self._after = _MIN_POSITION
        self._done = False
        self.last = _MIN_POSITION  # the last position taken or skipped

    def peek(self) -> tuple | None:
        if not self._buffer and not self._done:
            try:
                rows = self._db.source_digests(self._source, self._after, _PAGE)
            except (struct.error, TypeError):  # a value that does not pack as its column's type
                table = _TABLES["events" if self._source == EVENT else "audit"]
                raise _Failed("edited", table, "a row holds a value not of its column's type: a "
                              "position that is not an integer (SQLite keeps whatever type is "
                              "written), or a column whose type was changed") from None
            if rows:
                self._buffer.extend(rows)
                self._after = rows[-1][0]
            else:
                self._done = True
        return self._buffer[0] if self._buffer else None

    def take(self, position: int) -> tuple | None:
        """The row at ``position`` (None: absent); a row before it is not chained: inserted."""
        row = self.peek()
        if row is not None and row[0] < position:
            raise _Failed("inserted", _where(self._source, row[0]),
                          "this row is not in the chain, though the chain holds later rows of "
                          "its table: it was added behind the chain's back")
        self.last = position
        if row is not None and row[0] == position:
            self._buffer.popleft()
            return row
        return None


def _paged(fetch: Callable[[Any, int], list], key: Callable[[Any], Any], start: Any) -> Iterator:
    after = start
    while True:
        page = fetch(after, _PAGE)
        if not page:
            return
        yield from page
        after = key(page[-1])


class _RegionVerifier:
    def __init__(self, db: _RegionDB, public_key: Ed25519PublicKey) -> None:
        self.db = db
        self.region = db.region
        self.public_key = public_key
        self.key_id = public_key_id(public_key)
        self.report = RegionReport(db.region)

    def run(self) -> RegionReport:
        with self.db.snapshot():
            try:
                self._walk()
                self._check_snapshots()  # (only once the walk found the events intact)
            except _Failed as failure:
                self.report.problem = failure.problem
        return self.report

    # snapshots: not chained, yet a server loads a key from its newest one
    def _check_snapshots(self) -> None:
        """Every stored snapshot against the events the walk just verified, in the same read
        transaction (infrastructure.snapshot_check)."""
        from infrastructure.snapshot_check import check_snapshots  # (it imports this module)

        result = check_snapshots(self.db)
        self.report.snapshots = result.checked
        if result.problem is not None:
            raise _Failed(*result.problem)

    # checkpoints
    def _check_checkpoint(self, cp: _Checkpoint, expected_seq: int, prev_hash: bytes,
                          prev_chain_seq: int) -> None:
        where = f"checkpoint #{cp.seq} (chain seq {cp.chain_seq})"
        if type(cp.seq) is not int or not _well_typed(cp):
            raise _Failed("edited", where, "its fields do not have the types the chainer writes")
        if cp.seq < expected_seq:
            raise _Failed("inserted", where, f"it precedes checkpoint #{expected_seq}")
        if cp.seq > expected_seq:
            raise _Failed("missing", f"checkpoint #{expected_seq}",
                          f"checkpoints #{expected_seq}..#{cp.seq - 1} are gone")
        try:
            self.public_key.verify(cp.signature, cp.message(self.region))
        except InvalidSignature:
            detail = "its signature does not verify with the given public key"
            if cp.key_id != self.key_id:
                detail += f" (it names key {cp.key_id}, the given key is {self.key_id})"
            raise _Failed("bad signature", where, detail) from None
        if cp.prev_hash != prev_hash:
            raise _Failed("edited", where, f"it does not link to checkpoint #{cp.seq - 1}: "
                                           "a checkpoint was replaced")
        if cp.chain_seq <= prev_chain_seq:
            raise _Failed("reordered", where, "its chain position does not follow the previous "
                                              "checkpoint's")

    def _walk(self) -> None:
        db, report = self.db, self.report
        if (problem := db.structure_problem()) is not None:
            raise _Failed("edited", "the store's structure", problem)
        last_cp = db.last_checkpoint()
        last_cp_chain_seq = last_cp.chain_seq if last_cp and _well_typed(last_cp) else 0
        checkpoints = _paged(db.checkpoints_after, lambda cp: cp.seq, _MIN_POSITION)
        next_cp = next(checkpoints, None)
        cp_expected, cp_prev_hash, cp_prev_chain_seq = 1, _NO_CHECKPOINT, 0

        rows = {source: _Rows(db, source) for source in SOURCES}
        prev_hash, expected = genesis_hash(self.region), 1
        last_position = {source: _MIN_POSITION for source in (*SOURCES, RETENTION)}
        # Audit records may be gone up to the newest retention marker a checkpoint signs (a
        # marker not yet signed proves nothing: anyone can append to the chain's tail). A
        # forged or edited marker inside the signed part breaks the chain below.
        pruned_upto = db.retention_upto(last_cp_chain_seq)
        missing_tail: dict[str, tuple[int, int]] = {}  # source -> (position, seq)

        for seq, source, position, digest, entry_prev, entry_hash in _paged(
                db.chain_after, lambda e: e[0], _MIN_POSITION):
            digest, entry_prev, entry_hash = _bytes(digest), _bytes(entry_prev), _bytes(entry_hash)
            where = f"chain entry {seq}"
            if type(seq) is not int or type(position) is not int or not all(
                    isinstance(v, bytes) for v in (digest, entry_prev, entry_hash)):
                raise _Failed("edited", where, "its fields do not have the types the chainer "
                                               "writes")
            if seq < expected:
                raise _Failed("inserted", where, f"it precedes chain entry {expected}")
            if seq > expected:
                raise _Failed("missing", f"chain entry {expected}",
                              f"chain entries {expected}..{seq - 1} are gone")
            if source not in SOURCES and source != RETENTION:
                raise _Failed("edited", where, f"unknown source {source!r}")
            if position <= last_position[source]:
                raise _Failed("reordered", _where(source, position, seq),
                              f"chained after {_where(source, last_position[source])}")
            if link_hash(seq, source, position, digest, entry_prev) != entry_hash:
                raise _Failed("edited", where, "its hash does not match its fields")
            if entry_prev != prev_hash:
                raise _Failed("edited", where, f"it does not link to chain entry {seq - 1}: "
                                               "chain entries were replaced, inserted or reordered")
            last_position[source] = position

            if source == RETENTION:
                if digest != retention_digest(position):
                    raise _Failed("edited", where, "its digest is not a retention marker's")
            elif (row := rows[source].take(position)) is None:
                if source == AUDIT and position <= pruned_upto:
                    report.pruned += 1
                elif seq > last_cp_chain_seq:
                    missing_tail.setdefault(source, (position, seq))
                else:
                    raise _Failed("missing", _where(source, position, seq),
                                  "it was chained, and is no longer in the store" + (
                                      " (no retention marker signed by a checkpoint covers it)"
                                      if source == AUDIT else ""))
            else:
                if source in missing_tail:
                    gone, gone_seq = missing_tail[source]
                    raise _Failed("missing", _where(source, gone, gone_seq),
                                  "it was chained, and is no longer in the store")
                if row[1] != digest:
                    self._edited_or_reordered(source, position, seq, bytes(digest))
                if source == EVENT:
                    report.events += 1
                else:
                    report.audit += 1

            while next_cp is not None and (not _well_typed(next_cp) or next_cp.chain_seq <= seq):
                self._check_checkpoint(next_cp, cp_expected, cp_prev_hash, cp_prev_chain_seq)
                if next_cp.chain_seq != seq or next_cp.head_hash != entry_hash:
                    raise _Failed("edited", f"chain entry {next_cp.chain_seq}",
                                  f"the chain does not end in checkpoint #{next_cp.seq}'s signed "
                                  f"head: entries {cp_prev_chain_seq + 1}..{next_cp.chain_seq} "
                                  "were rewritten")
                cp_expected, cp_prev_hash = next_cp.seq + 1, next_cp.hash(self.region)
                cp_prev_chain_seq = next_cp.chain_seq
                report.checkpoints += 1
                report.last_checkpoint = next_cp.created
                next_cp = next(checkpoints, None)
            prev_hash, expected = entry_hash, expected + 1

        chained = expected - 1
        if next_cp is not None:
            self._check_checkpoint(next_cp, cp_expected, cp_prev_hash, cp_prev_chain_seq)
            raise _Failed("truncated", f"chain entry {chained + 1}",
                          f"the chain ends at entry {chained}, but checkpoint #{next_cp.seq} "
                          f"anchors it up to entry {next_cp.chain_seq}")
        for source, (position, seq) in missing_tail.items():
            raise _Failed("truncated after the last checkpoint", _where(source, position, seq),
                          f"it and every later {source} record chained after the last "
                          "checkpoint are gone")
        report.after_checkpoint = chained - last_cp_chain_seq
        for source in SOURCES:
            extra = rows[source].peek()
            report.unchained[source] = db.count_after(source, extra[0] - 1) if extra else 0
        self._met_every_row({"events": report.events + report.unchained[EVENT],
                             "audit": report.audit + report.unchained[AUDIT],
                             "chain": chained, "checkpoints": report.checkpoints})

    def _met_every_row(self, met: dict[str, int]) -> None:
        """Every row of every table was met by the walk, which reads each table in position
        order, a page after another, from above the lowest integer: a row with no position,
        a repeated one or the lowest integer is never met, yet queries show it
        (``keyledger audit``, the ledger a server loads). The walk meets no row twice."""
        for table, walked in met.items():
            stored = self.db.row_count(table)
            if stored != walked:
                raise _Failed("inserted", _TABLES[table],
                              f"{stored} rows are stored, the walk in position order met "
                              f"{walked}: {stored - walked} were added where no walk reaches "
                              "them (with no position, a repeated one, or the lowest integer)")

    def _edited_or_reordered(self, source: str, position: int, seq: int, digest: bytes) -> None:
        """A row whose digest does not match ``digest``, the one chained for its position: the
        records were reordered (this row holds another position's record, and this position's
        record is further on), renumbered to hide a deletion (it holds another's, and this
        position's is gone) or to make room for a record (this position's record is further
        on, and this row holds none that was chained), or the row was edited."""
        where = _where(source, position, seq)
        here = self.db.source_rest(source, position)
        moved_to = next((other for other, rest in self.db.source_rests(source, position,
                                                                       _REORDER_WINDOW)
                         if _digest(source, position, rest) == digest), None)
        for other, other_digest in self.db.chained_after(source, position, _REORDER_WINDOW):
            if type(other) is not int or not isinstance(other_digest, bytes | memoryview):
                continue  # (a malformed entry further on: the walk names it when it gets there)
            if _digest(source, other, here) == bytes(other_digest):
                if moved_to is None:
                    raise _Failed("missing", where,
                                  f"the record chained here is gone, and the later records were "
                                  f"renumbered over it (this row holds the one chained at "
                                  f"position {other})")
                raise _Failed("reordered", where,
                              f"it holds the record chained at position {other}")
        if moved_to is not None:
            raise _Failed("inserted", where,
                          f"this row is not in the chain: the record chained here is now at "
                          f"position {moved_to}, the later records renumbered to make room")
        raise _Failed("edited", where, "its stored fields do not match the digest chained for it")


def verify(store: StoreConfig, public_key: Ed25519PublicKey | bytes,
           regions: Iterable[str] | None = None, anchored: bool = False) -> VerifyReport:
    """Check every region of a store (offline: the files or the database, no server).

    ``anchored``: records no signed checkpoint covers are a failure, not only counted. A
    stopped server's store has none (a server checkpoints when it stops); without the flag,
    a store whose chain or checkpoints were deleted with its ledger left verifies as
    unanchored records, which is all a verifier can see of it."""
    if isinstance(public_key, bytes):
        public_key = load_public_key(public_key)
    names = list(regions) if regions is not None else store.known_regions()
    reports = []
    for name in names:
        db = _open_region_db(store, name, writable=False)
        try:
            report = _RegionVerifier(db, public_key).run()
        finally:
            db.close()
        if anchored and report.problem is None and report.unanchored:
            report.problem = Problem(
                "unanchored", "after the last checkpoint" if report.checkpoints else
                "every record (no checkpoint)",
                f"{report.unanchored} records are covered by no signed checkpoint "
                f"({report.after_checkpoint} chained, {sum(report.unchained.values())} not "
                "chained): a running server writes one every 60 s and one when it stops")
        reports.append(report)
    return VerifyReport(reports)
