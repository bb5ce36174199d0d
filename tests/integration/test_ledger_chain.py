"""The tamper-evidence chain on real stores (SQLite files and PostgreSQL schemas).

Events come from real KMS calls; audit rows are appended through the audit store. Every
tampering test changes the store the way someone with the files or the database would,
behind keyledger's back, and checks that ``verify`` names exactly what was done and where.
"""

from __future__ import annotations

import json
import sqlite3
import threading
import time
import uuid

import psycopg
import pytest
from cryptography.exceptions import InvalidTag
from cryptography.hazmat.primitives.asymmetric.ed25519 import Ed25519PrivateKey

from infrastructure import ledger_chain
from infrastructure.audit_store import AuditQuery, AuditRow, PostgresAuditStore, SQLiteAuditStore
from infrastructure.ledger_chain import (
    AUDIT,
    EVENT,
    SIGNING_KEY_ENTRY,
    LedgerChainer,
    audit_digest,
    checkpoint_public_key,
    event_digest,
    link_hash,
    verify,
)
from infrastructure.persistence import StoreConfig, schema_name
from infrastructure.root_key import RootKey

REGION = "us-east-1"
ACCOUNT = "111122223333"


class Clock:
    def __init__(self) -> None:
        self.now = time.time()

    def __call__(self) -> float:
        return self.now


class Store:
    """The region's tables, reached directly (no keyledger code on the write side)."""

    def __init__(self, settings, region: str = REGION) -> None:
        self.settings = settings
        self.region = region
        self.config = StoreConfig(settings.data_path, settings.store)
        self.postgres = self.config.is_postgres
        if self.postgres:
            schema = schema_name(region)
            self.names = {"events": f'"{schema}".keyledger_events', "pos": "notification_id",
                          "audit": f'"{schema}".keyledger_audit',
                          "chain": f'"{schema}".keyledger_chain',
                          "cps": f'"{schema}".keyledger_checkpoints',
                          "keyring": f'"{schema}".data_keys'}
            self._conn = psycopg.connect(**self.config.postgres_conninfo(), autocommit=True)
        else:
            folder = self.config.region_folder(region)
            self.names = {"events": "stored_events", "pos": "rowid", "audit": "keyledger_audit",
                          "chain": "keyledger_chain", "cps": "keyledger_checkpoints",
                          "keyring": "data_keys"}
            self._ledger = sqlite3.connect(folder / "ledger.db", isolation_level=None, timeout=30)
            self._audit = sqlite3.connect(folder / "audit.db", isolation_level=None, timeout=30)
            self._keyring = sqlite3.connect(folder / "keyring.db", isolation_level=None, timeout=30)

    def sql(self, template: str, args: tuple = (), db: str = "audit") -> list[tuple]:
        text = template.format(**self.names)
        if self.postgres:
            cursor = self._conn.execute(text.replace("?", "%s"), args)
            return cursor.fetchall() if cursor.description else []
        conn = {"ledger": self._ledger, "audit": self._audit, "keyring": self._keyring}[db]
        return conn.execute(text, args).fetchall()

    def events(self, template: str, args: tuple = ()) -> list[tuple]:
        return self.sql(template, args, db="ledger")

    def event_positions(self) -> list[int]:
        return [r[0] for r in self.events("SELECT {pos} FROM {events} ORDER BY {pos}")]

    def audit_positions(self) -> list[int]:
        return [r[0] for r in self.sql("SELECT position FROM {audit} ORDER BY position")]

    def chain_seq_of(self, source: str, position: int) -> int:
        return self.sql("SELECT seq FROM {chain} WHERE source = ? AND source_position = ?",
                        (source, position))[0][0]

    def audit_store(self):
        if self.postgres:
            return PostgresAuditStore(self.config.postgres_conninfo(), schema_name(self.region))
        return SQLiteAuditStore(self.config.region_folder(self.region) / "audit.db")

    def append_audit(self, count: int, event_time: float | None = None) -> None:
        start = time.time() if event_time is None else event_time
        rows = []
        for i in range(count):
            event_id = str(uuid.uuid4())
            record = {"eventVersion": "1.11", "eventID": event_id, "eventName": "Encrypt",
                      "eventSource": "kms.amazonaws.com", "awsRegion": self.region,
                      "requestParameters": {"keyId": "k", "n": i}}
            rows.append(AuditRow(start + i * 1e-3, ACCOUNT, None, f"arn:aws:iam::{ACCOUNT}:root",
                                 "Encrypt", None, str(uuid.uuid4()), event_id,
                                 json.dumps(record, sort_keys=True).encode()))
        store = self.audit_store()
        try:
            store.append(rows)
        finally:
            store.close()

    def skip_audit_position(self) -> None:
        """Leave a gap in the audit positions, as a failed insert does on PostgreSQL."""
        if self.postgres:
            self.sql("SELECT nextval(pg_get_serial_sequence('{audit}', 'position'))")
        else:
            self.sql("UPDATE sqlite_sequence SET seq = seq + 1 WHERE name = 'keyledger_audit'")

    def close(self) -> None:
        if self.postgres:
            self._conn.close()
        else:
            for conn in (self._ledger, self._audit, self._keyring):
                conn.close()


@pytest.fixture
def store(kms):
    kms.service.region(REGION)  # its store is created on first use
    s = Store(kms.settings)
    yield s
    s.close()


@pytest.fixture
def clock():
    return Clock()


#: a test's chainer chains everything new at each call: a server's stops a pass after 0.25 s
#: and takes the rest on its next, which a loaded test machine would leave to a test's next call
WHOLE_PASS = 600.0


@pytest.fixture
def chainer(kms, clock):
    c = LedgerChainer(StoreConfig(kms.settings.data_path, kms.settings.store),
                      RootKey.load(kms.settings.data_path), clock=clock, pass_budget=WHOLE_PASS)
    yield c
    c.close()


def create_keys(kms, count: int) -> list[str]:
    keys = []
    for i in range(count):
        key_id = kms.call("CreateKey", Description=f"chain test {i}")["KeyMetadata"]["KeyId"]
        kms.call("TagResource", KeyId=key_id, Tags=[{"TagKey": "n", "TagValue": str(i)}])
        keys.append(key_id)
    return keys


def report(kms, chainer) -> ledger_chain.VerifyReport:
    public_key = chainer.public_key_pem(REGION)
    return verify(StoreConfig(kms.settings.data_path, kms.settings.store), public_key, [REGION])


def problem(kms, chainer) -> tuple[str, str]:
    result = report(kms, chainer)
    assert not result.ok, result.lines()
    _, found = result.first_problem
    return found.kind, found.where


@pytest.fixture
def populated(kms, store, chainer, clock):
    """4 keys (8 events) and 6 audit records, chained and checkpointed; then 2 more keys and
    4 more audit records chained after that checkpoint (unanchored)."""
    create_keys(kms, 4)
    store.append_audit(6)
    chainer.chain(REGION)
    create_keys(kms, 2)
    store.append_audit(4)
    chainer.chain(REGION)
    return store


# -- the chain itself -------------------------------------------------------------------------------

def test_every_event_and_audit_record_is_chained_once_in_order(kms, populated, chainer):
    store = populated
    chain = store.sql("SELECT seq, source, source_position, digest, prev_hash, hash FROM {chain} "
                      "ORDER BY seq")
    assert [row[0] for row in chain] == list(range(1, len(chain) + 1))
    assert [r[2] for r in chain if r[1] == EVENT] == store.event_positions()
    assert [r[2] for r in chain if r[1] == AUDIT] == store.audit_positions()
    prev = ledger_chain.genesis_hash(REGION)
    events = {r[0]: r for r in store.events(
        "SELECT {pos}, originator_id, originator_version, topic, state FROM {events}")}
    audit = {r[0]: r for r in store.sql(f"SELECT {ledger_chain._AUDIT_COLUMNS} FROM {{audit}}")}
    for seq, source, position, digest, prev_hash, entry_hash in chain:
        row = events[position] if source == EVENT else audit[position]
        assert bytes(digest) == (event_digest if source == EVENT else audit_digest)(row)
        assert bytes(prev_hash) == prev
        assert bytes(entry_hash) == link_hash(seq, source, position, bytes(digest), prev)
        prev = bytes(entry_hash)
    assert chainer.chain(REGION) == 0  # nothing new: idempotent

    result = report(kms, chainer)
    assert result.ok, result.lines()
    assert result.headline().startswith(f"OK: {len(chain)} records, 1 checkpoints, last checkpoint ")
    (region,) = result.regions
    assert (region.events, region.audit) == (len(events), 10)
    assert region.after_checkpoint == 4 + 4  # 2 keys (2 events each) and 4 audit records


def test_checkpoints_every_interval_if_anything_new_and_on_the_way_out(kms, store, chainer, clock):
    create_keys(kms, 1)
    chainer.chain(REGION)
    checkpoints = lambda: store.sql("SELECT seq, chain_seq FROM {cps} ORDER BY seq")  # noqa: E731
    assert checkpoints() == [(1, 2)]  # the first chained records are anchored at once
    clock.now += 120
    chainer.chain(REGION)
    assert checkpoints() == [(1, 2)]  # idle and nothing new: no checkpoint
    store.append_audit(3)
    chainer.chain(REGION)
    assert checkpoints() == [(1, 2), (2, 5)]  # new, and 60 s have passed: anchored at once
    store.append_audit(1)
    chainer.chain(REGION)
    clock.now += 59
    chainer.chain(REGION)
    assert checkpoints() == [(1, 2), (2, 5)]  # not yet 60 s
    clock.now += 1.5
    chainer.chain(REGION)
    assert checkpoints() == [(1, 2), (2, 5), (3, 6)]  # an idle pass anchors it after 60 s
    store.append_audit(1)
    chainer.run([REGION], final=True)  # a server's last pass
    assert checkpoints() == [(1, 2), (2, 5), (3, 6), (4, 7)]
    result = report(kms, chainer)
    assert result.ok and result.regions[0].unanchored == 0, result.lines()


def test_a_checkpoint_every_n_entries(kms, store, clock):
    chainer = LedgerChainer(StoreConfig(kms.settings.data_path, kms.settings.store),
                            RootKey.load(kms.settings.data_path), clock=clock, checkpoint_every=10,
                            pass_budget=WHOLE_PASS)
    try:
        store.append_audit(3)
        chainer.chain(REGION)
        store.append_audit(45)
        chainer.chain(REGION)
        assert [r[0] for r in store.sql("SELECT chain_seq FROM {cps} ORDER BY seq")] == \
            [3, 13, 23, 33, 43]
        assert report(kms, chainer).ok
    finally:
        chainer.close()


@pytest.mark.parametrize("exclusive", [True, False], ids=["lease", "no-lease"])
def test_processes_sharing_a_store_never_fork_the_chain(kms, store, clock, exclusive):
    """Two chainers (as two server processes) run while records keep arriving. With the lease
    one of them chains and the other skips; without it they race, and the store's lock with
    the tip check keeps a single chain."""
    config = StoreConfig(kms.settings.data_path, kms.settings.store)
    chainers = [LedgerChainer(config, RootKey.load(kms.settings.data_path), clock=clock,
                              exclusive=exclusive) for _ in range(2)]
    stop = threading.Event()
    errors: list[BaseException] = []
    appended = [0, 0]

    def chain_loop(index):
        try:
            while not stop.is_set():
                appended[index] += chainers[index].chain(REGION)
        except BaseException as error:  # pragma: no cover - reported below
            errors.append(error)

    threads = [threading.Thread(target=chain_loop, args=(i,)) for i in range(2)]
    for thread in threads:
        thread.start()
    try:
        for _ in range(10):
            create_keys(kms, 1)
            store.append_audit(20)
            clock.now += 30
            time.sleep(0.02)
    finally:
        stop.set()
        for thread in threads:
            thread.join()
    assert not errors, errors
    if exclusive:
        assert 0 in appended  # the other process never had the lease
    holder = next(c for c in chainers if c.region(REGION).db.lease())
    holder.run([REGION], final=True)
    try:
        (count, distinct, top), = store.sql(
            "SELECT COUNT(*), COUNT(DISTINCT source || ':' || source_position), MAX(seq) "
            "FROM {chain}")
        assert count == distinct == top == len(store.event_positions()) + 200
        result = report(kms, chainers[1])
        assert result.ok and result.regions[0].unanchored == 0, result.lines()
    finally:
        for chainer in chainers:
            chainer.close()


def test_a_stopping_process_waits_for_the_lease_to_anchor_its_records(kms, store, clock):
    config = StoreConfig(kms.settings.data_path, kms.settings.store)
    first, second = (LedgerChainer(config, RootKey.load(kms.settings.data_path), clock=clock)
                     for _ in range(2))
    try:
        store.append_audit(2)
        assert first.chain(REGION) == 2  # the lease holder
        store.append_audit(3)
        assert second.chain(REGION) == 0  # not the chainer: skips
        threading.Timer(0.3, first.close).start()  # the holder stops a moment later
        assert second.run([REGION], final=True) == 3  # waited for the lease
        result = report(kms, second)
        assert result.ok and result.regions[0].unanchored == 0, result.lines()
    finally:
        second.close()


def test_signing_key_is_sealed_once_per_store_and_shared_by_regions(kms, chainer, store):
    kms.call("CreateKey", ctx=kms.context(region="eu-west-1"))
    create_keys(kms, 1)
    chainer.run([REGION, "eu-west-1"])
    pem = chainer.public_key_pem(REGION)
    assert chainer.public_key_pem("eu-west-1") == pem
    config = StoreConfig(kms.settings.data_path, kms.settings.store)
    assert checkpoint_public_key(config, RootKey.load(kms.settings.data_path)) == pem
    (wrapped,), = store.sql("SELECT wrapped FROM {keyring} WHERE key_id = ?", (SIGNING_KEY_ENTRY,),
                            db="keyring")
    assert len(bytes(wrapped)) == 12 + 32 + 16  # AES-GCM nonce, sealed 32-byte key, tag
    result = verify(config, pem)
    assert result.ok and [r.region for r in result.regions] == ["eu-west-1", REGION]
    with pytest.raises(InvalidTag):  # another root key cannot unseal it
        checkpoint_public_key(config, RootKey(b"\x01" * 32))


def test_a_store_with_checkpoints_whose_signing_key_is_gone_gets_no_new_one(kms, populated,
                                                                            chainer, store):
    """The keyrings lost the signing key (deleted, or a keyring file lost) while signed
    checkpoints remain: checkpoint-key refuses to make a new key, which would verify none of
    them; the public key exported before still verifies the store."""
    pem = chainer.public_key_pem(REGION)
    chainer.close()
    store.sql("DELETE FROM {keyring} WHERE key_id = ?", (SIGNING_KEY_ENTRY,), db="keyring")
    config = StoreConfig(kms.settings.data_path, kms.settings.store)
    with pytest.raises(ledger_chain.SigningKeyLost, match=f"the {REGION} Region has checkpoints "
                       "signed by key .*, which no keyring of this store holds"):
        checkpoint_public_key(config, RootKey.load(kms.settings.data_path))
    assert store.sql("SELECT COUNT(*) FROM {keyring} WHERE key_id = ?", (SIGNING_KEY_ENTRY,),
                     db="keyring") == [(0,)]
    assert verify(config, pem).ok


# -- tampering with the sources -------------------------------------------------------------------

def test_edited_event_state(kms, populated, chainer):
    store = populated
    position = store.event_positions()[3]
    (state,), = store.events("SELECT state FROM {events} WHERE {pos} = ?", (position,))
    state = bytes(state)
    store.events("UPDATE {events} SET state = ? WHERE {pos} = ?",
                 (state[:-1] + bytes([state[-1] ^ 1]), position))
    seq = store.chain_seq_of(EVENT, position)
    assert problem(kms, chainer) == ("edited", f"event at notification id {position} (chain seq {seq})")
    assert report(kms, chainer).headline() == (
        f"FAILED: region {REGION}, event at notification id {position} (chain seq {seq}): edited "
        "(its stored fields do not match the digest chained for it)")


def test_edited_audit_record(kms, populated, chainer):
    store = populated
    position = store.audit_positions()[2]
    store.sql("UPDATE {audit} SET record = ? WHERE position = ?", (b'{"eventName":"Nothing"}', position))
    assert problem(kms, chainer) == (
        "edited", f"audit record at position {position} (chain seq {store.chain_seq_of(AUDIT, position)})")


def test_edited_audit_query_column(kms, populated, chainer):
    """The columns audit queries filter on are covered too: hiding a record from
    ``--principal`` by editing its column is an edit."""
    store = populated
    position = store.audit_positions()[4]
    store.sql("UPDATE {audit} SET principal = ? WHERE position = ?", ("arn:aws:iam::1:root", position))
    assert problem(kms, chainer)[0] == "edited"


def test_deleted_audit_record(kms, populated, chainer):
    store = populated
    position = store.audit_positions()[3]
    store.sql("DELETE FROM {audit} WHERE position = ?", (position,))
    assert problem(kms, chainer) == (
        "missing", f"audit record at position {position} (chain seq {store.chain_seq_of(AUDIT, position)})")


def test_deleted_event(kms, populated, chainer):
    store = populated
    position = store.event_positions()[1]
    store.events("DELETE FROM {events} WHERE {pos} = ?", (position,))
    assert problem(kms, chainer) == (
        "missing", f"event at notification id {position} (chain seq {store.chain_seq_of(EVENT, position)})")


def test_inserted_audit_record(kms, store, chainer):
    store.append_audit(3)
    store.skip_audit_position()  # a gap in the positions (on PostgreSQL: a failed insert)
    store.append_audit(3)
    chainer.chain(REGION)
    assert report(kms, chainer).ok
    positions = store.audit_positions()
    gap = next(p + 1 for p, q in zip(positions, positions[1:], strict=False) if q != p + 1)
    (row,) = store.sql(f"SELECT {ledger_chain._AUDIT_COLUMNS} FROM {{audit}} WHERE position = ?",
                        (positions[0],))
    store.sql(f"INSERT INTO {{audit}} ({ledger_chain._AUDIT_COLUMNS}) "
              "VALUES (?, ?, ?, ?, ?, ?, ?, ?, ?, ?)", (gap, *row[1:]))
    assert problem(kms, chainer) == ("inserted", f"audit record at position {gap}")


def test_inserted_event(kms, populated, chainer):
    store = populated
    (row,) = store.events("SELECT originator_id, originator_version, topic, state FROM {events} "
                           "ORDER BY {pos} LIMIT 1")
    store.events("INSERT INTO {events} ({pos}, originator_id, originator_version, topic, state) "
                 "VALUES (?, ?, ?, ?, ?)", (0, "forged-key", *row[1:]))
    assert problem(kms, chainer) == ("inserted", "event at notification id 0")


def _renumber_audit_from(store, position: int, by: int) -> None:
    """Move every audit record from ``position`` on by ``by`` positions (in two steps: the
    positions are unique at every row)."""
    store.sql("UPDATE {audit} SET position = position + 1000000 WHERE position >= ?", (position,))
    store.sql("UPDATE {audit} SET position = position - 1000000 + ? WHERE position >= 1000000",
              (by,))


def _first_problem_is(kms, chainer, store, position: int, kind: str, why: str) -> None:
    """verify's first problem: ``kind`` at the audit record at ``position``, because ``why``."""
    seq = store.chain_seq_of(AUDIT, position)
    assert problem(kms, chainer) == (kind, f"audit record at position {position} (chain seq {seq})")
    assert report(kms, chainer).headline().endswith(f"{kind} ({why})")


def test_a_record_inserted_by_renumbering_the_later_ones_is_inserted(kms, populated, chainer):
    store = populated
    positions = store.audit_positions()
    at = positions[2]
    (row,) = store.sql(f"SELECT {ledger_chain._AUDIT_COLUMNS} FROM {{audit}} WHERE position = ?",
                       (positions[0],))
    _renumber_audit_from(store, at, 1)
    store.sql(f"INSERT INTO {{audit}} ({ledger_chain._AUDIT_COLUMNS}) "
              "VALUES (?, ?, ?, ?, ?, ?, ?, ?, ?, ?)",
              (at, row[1], *row[2:8], str(uuid.uuid4()), row[9]))
    _first_problem_is(kms, chainer, store, at, "inserted", (
        f"this row is not in the chain: the record chained here is now at position {at + 1}, "
        "the later records renumbered to make room"))


def test_a_record_deleted_by_renumbering_the_later_ones_is_missing(kms, populated, chainer):
    store = populated
    at = store.audit_positions()[2]
    store.sql("DELETE FROM {audit} WHERE position = ?", (at,))
    _renumber_audit_from(store, at + 1, -1)
    _first_problem_is(kms, chainer, store, at, "missing", (
        "the record chained here is gone, and the later records were renumbered over it (this "
        f"row holds the one chained at position {at + 1})"))


def test_swapped_audit_records(kms, populated, chainer):
    store = populated
    first, second = store.audit_positions()[1:3]
    columns = ledger_chain._AUDIT_COLUMNS.split(", ")[1:]
    rows = {p: store.sql(f"SELECT {', '.join(columns)} FROM {{audit}} WHERE position = ?", (p,))[0]
            for p in (first, second)}
    assignments = ", ".join(f"{c} = ?" for c in columns)
    for position, other in ((first, second), (second, first)):
        store.sql(f"UPDATE {{audit}} SET {assignments} WHERE position = ?", (*rows[other], position))
    assert problem(kms, chainer) == (
        "reordered", f"audit record at position {first} (chain seq {store.chain_seq_of(AUDIT, first)})")
    assert f"holds the record chained at position {second}" in report(kms, chainer).headline()


def test_swapped_events(kms, populated, chainer):
    store = populated
    first, second = store.event_positions()[2:4]
    fields = "originator_id, originator_version, topic, state"
    rows = {p: store.events(f"SELECT {fields} FROM {{events}} WHERE {{pos}} = ?", (p,))[0]
            for p in (first, second)}
    store.events("DELETE FROM {events} WHERE {pos} IN (?, ?)", (first, second))
    for position, other in ((first, second), (second, first)):
        store.events(f"INSERT INTO {{events}} ({{pos}}, {fields}) VALUES (?, ?, ?, ?, ?)",
                     (position, *rows[other]))
    assert problem(kms, chainer) == (
        "reordered", f"event at notification id {first} (chain seq {store.chain_seq_of(EVENT, first)})")


def test_tail_truncated_after_the_last_checkpoint(kms, populated, chainer):
    store = populated
    (last_checkpoint,), = store.sql("SELECT MAX(chain_seq) FROM {cps}")
    after = [p for p in store.audit_positions() if store.chain_seq_of(AUDIT, p) > last_checkpoint]
    assert len(after) == 4
    store.sql("DELETE FROM {audit} WHERE position >= ?", (after[0],))
    assert problem(kms, chainer) == (
        "truncated after the last checkpoint",
        f"audit record at position {after[0]} (chain seq {store.chain_seq_of(AUDIT, after[0])})")


def test_records_not_yet_chained_are_reported_unanchored(kms, populated, chainer):
    store = populated
    store.append_audit(5)
    create_keys(kms, 1)
    result = report(kms, chainer)
    assert result.ok
    assert result.regions[0].unchained == {EVENT: 2, AUDIT: 5}
    assert "15 records unanchored (8 chained after the last checkpoint, 7 not yet chained)" in \
        "\n".join(result.lines())


def anchored_problem(kms, chainer) -> tuple[str, str, str] | None:
    """The first problem of a verify with ``anchored`` (None: it passed)."""
    result = verify(StoreConfig(kms.settings.data_path, kms.settings.store),
                    chainer.public_key_pem(REGION), [REGION], anchored=True)
    return None if result.ok else (result.first_problem[1].kind, result.first_problem[1].where,
                                   result.first_problem[1].detail)


def test_anchored_fails_on_records_no_checkpoint_covers_and_passes_once_one_does(
        kms, populated, chainer):
    assert report(kms, chainer).ok
    assert anchored_problem(kms, chainer) == (
        "unanchored", "after the last checkpoint", "8 records are covered by no signed "
        "checkpoint (8 chained, 0 not chained): a running server writes one every 60 s and one "
        "when it stops")
    chainer.run([REGION], final=True)  # a stopping server's last pass
    assert anchored_problem(kms, chainer) is None


def test_deleting_every_checkpoint_leaves_records_only_anchored_fails_on(kms, populated, chainer):
    """Without a checkpoint nothing in the chain is signed: verify can say only that every
    record is unanchored; with ``anchored`` that is a failure."""
    chainer.run([REGION], final=True)
    populated.sql("DELETE FROM {cps}")
    result = report(kms, chainer)
    assert result.ok and result.regions[0].unanchored == result.regions[0].records == 22
    assert anchored_problem(kms, chainer)[:2] == ("unanchored", "every record (no checkpoint)")


def test_deleting_the_audit_chain_and_checkpoints_leaves_events_anchored_fails_on(
        kms, populated, chainer):
    chainer.run([REGION], final=True)
    for table in ("{audit}", "{chain}", "{cps}"):
        populated.sql(f"DELETE FROM {table}")
    assert report(kms, chainer).regions[0].unchained == {EVENT: 12, AUDIT: 0}
    assert anchored_problem(kms, chainer) == (
        "unanchored", "every record (no checkpoint)", "12 records are covered by no signed "
        "checkpoint (0 chained, 12 not chained): a running server writes one every 60 s and one "
        "when it stops")


# -- tampering with the chain and the checkpoints ---------------------------------------------------

def test_corrupted_checkpoint_signature(kms, populated, chainer, clock):
    store = populated
    clock.now += 61
    chainer.chain(REGION)  # a second checkpoint
    (signature, chain_seq), = store.sql("SELECT signature, chain_seq FROM {cps} WHERE seq = 2")
    signature = bytes(signature)
    store.sql("UPDATE {cps} SET signature = ? WHERE seq = 2",
              (bytes([signature[0] ^ 0x80]) + signature[1:],))
    assert problem(kms, chainer) == ("bad signature", f"checkpoint #2 (chain seq {chain_seq})")


def test_wrong_public_key(kms, populated, chainer):
    other = ledger_chain.public_key_pem(Ed25519PrivateKey.generate().public_key())
    result = verify(StoreConfig(kms.settings.data_path, kms.settings.store), other, [REGION])
    region, found = result.first_problem
    assert (found.kind, found.where.split(" (")[0]) == ("bad signature", "checkpoint #1")
    assert "it names key" in found.detail


def test_deleted_checkpoint(kms, populated, chainer, clock):
    store = populated
    for _ in range(2):
        clock.now += 61
        store.append_audit(1)
        chainer.chain(REGION)
    store.sql("DELETE FROM {cps} WHERE seq = 2")
    assert problem(kms, chainer) == ("missing", "checkpoint #2")


def test_deleted_chain_entry(kms, populated, chainer):
    store = populated
    store.sql("DELETE FROM {chain} WHERE seq = 5")
    assert problem(kms, chainer) == ("missing", "chain entry 5")


def test_a_chain_entry_with_a_foreign_type(kms, populated, chainer):
    """SQLite keeps whatever type is written: an edit that changes one is still an edit."""
    store = populated
    if store.postgres:
        pytest.skip("PostgreSQL columns keep their types")
    store.sql("UPDATE {chain} SET source_position = 'x' WHERE seq = 3")
    assert problem(kms, chainer) == ("edited", "chain entry 3")
    store.sql("UPDATE {chain} SET source_position = 3 WHERE seq = 3")
    store.sql("UPDATE {cps} SET chain_seq = 'x' WHERE seq = 1")
    assert problem(kms, chainer)[0] == "edited"


def test_chain_truncated_below_a_checkpoint(kms, populated, chainer):
    store = populated
    (last_checkpoint,), = store.sql("SELECT MAX(chain_seq) FROM {cps}")
    store.sql("DELETE FROM {chain} WHERE seq > ?", (last_checkpoint - 3,))
    kind, where = problem(kms, chainer)
    assert (kind, where) == ("truncated", f"chain entry {last_checkpoint - 2}")


def test_edit_with_the_chain_recomputed_is_caught_by_the_checkpoint(kms, populated, chainer):
    """Someone without the signing key edits a record and rebuilds every hash after it: the
    chain is consistent again, but no longer ends in the signed head."""
    store = populated
    position = store.audit_positions()[1]
    store.sql("UPDATE {audit} SET record = ? WHERE position = ?", (b'{"rewritten":true}', position))
    seq = store.chain_seq_of(AUDIT, position)
    (prev,), = store.sql("SELECT prev_hash FROM {chain} WHERE seq = ?", (seq,))
    prev = bytes(prev)
    for entry_seq, source, entry_position in store.sql(
            "SELECT seq, source, source_position FROM {chain} WHERE seq >= ? ORDER BY seq", (seq,)):
        if source == AUDIT:
            (row,) = store.sql(f"SELECT {ledger_chain._AUDIT_COLUMNS} FROM {{audit}} "
                                "WHERE position = ?", (entry_position,))
            digest = audit_digest(row)
        else:
            (row,) = store.events("SELECT {pos}, originator_id, originator_version, topic, state "
                                   "FROM {events} WHERE {pos} = ?", (entry_position,))
            digest = event_digest(row)
        entry_hash = link_hash(entry_seq, source, entry_position, digest, prev)
        store.sql("UPDATE {chain} SET digest = ?, prev_hash = ?, hash = ? WHERE seq = ?",
                  (digest, prev, entry_hash, entry_seq))
        prev = entry_hash
    (cp_seq,), = store.sql("SELECT chain_seq FROM {cps} WHERE seq = 1")
    assert problem(kms, chainer) == ("edited", f"chain entry {cp_seq}")
    assert f"entries 1..{cp_seq} were rewritten" in report(kms, chainer).headline()


# -- retention ------------------------------------------------------------------------------------

def test_prune_before_keeps_a_verifiable_checkpointed_prefix(kms, store, chainer, clock):
    old = time.time() - 400 * 86400
    create_keys(kms, 1)
    store.append_audit(5, event_time=old)
    chainer.chain(REGION)  # checkpoint #1 after the 5 old records
    store.append_audit(3, event_time=old + 10)
    clock.now += 61
    chainer.chain(REGION)  # checkpoint #2 after 3 more old records
    store.append_audit(4)  # recent
    clock.now += 61
    chainer.chain(REGION)  # checkpoint #3
    cutoff = time.time() - 365 * 86400

    assert chainer.prune_before(cutoff) == {REGION: 8}  # everything up to checkpoint #2
    remaining = store.audit_positions()
    assert len(remaining) == 4
    result = report(kms, chainer)
    assert result.ok, result.lines()
    assert (result.regions[0].pruned, result.regions[0].audit) == (8, 4)
    assert "8 older audit records pruned" in "\n".join(result.lines())
    assert chainer.prune_before(cutoff) == {REGION: 0}  # idempotent

    # a record deleted after the pruned prefix is still missing
    store.sql("DELETE FROM {audit} WHERE position = ?", (remaining[1],))
    assert problem(kms, chainer)[0] == "missing"


def test_retention_interrupted_between_prefixes_leaves_a_verifiable_store(
        kms, store, chainer, clock, monkeypatch):
    """Each checkpointed prefix goes with its marker and their checkpoint in one transaction:
    a retention pass that dies in its second prefix (a kill) leaves the first pruned and
    signed, and verify passes without a server finishing the pass."""
    old = time.time() - 400 * 86400
    for _ in range(3):  # three checkpointed prefixes of old records, then recent ones
        store.append_audit(4, event_time=old)
        clock.now += 61
        chainer.chain(REGION)
    store.append_audit(2)
    clock.now += 61
    chainer.chain(REGION)
    monkeypatch.setattr(ledger_chain, "_PRUNE_CHUNK", 1)  # (a prefix per transaction)
    markers, digest = [], ledger_chain.retention_digest

    def dies_in_the_second(position):
        markers.append(position)
        if len(markers) == 2:
            raise SystemExit("killed while pruning the second prefix")
        return digest(position)

    monkeypatch.setattr(ledger_chain, "retention_digest", dies_in_the_second)
    with pytest.raises(SystemExit):
        chainer.prune_before(time.time() - 365 * 86400)
    monkeypatch.undo()
    result = report(kms, chainer)
    assert result.ok, result.lines()
    assert (result.regions[0].pruned, len(store.audit_positions())) == (4, 8 + 2)


def prune_five_old_records(store, chainer, clock, recent: int) -> None:
    """5 old records under checkpoint #1, ``recent`` new ones under #2; retention prunes the 5."""
    store.append_audit(5, event_time=time.time() - 400 * 86400)
    chainer.chain(REGION)  # checkpoint #1
    store.append_audit(recent)
    clock.now += 61
    chainer.chain(REGION)  # checkpoint #2
    assert chainer.prune_before(time.time() - 365 * 86400) == {REGION: 5}


def test_retention_leaves_a_signed_marker_in_the_chain(kms, store, chainer, clock):
    prune_five_old_records(store, chainer, clock, recent=2)
    upto = store.audit_positions()[0] - 1  # the newest position pruned
    (seq, position, digest), = store.sql(
        "SELECT seq, source_position, digest FROM {chain} WHERE source = ?",
        (ledger_chain.RETENTION,))
    assert (position, bytes(digest)) == (upto, ledger_chain.retention_digest(upto))
    (newest,), = store.sql("SELECT MAX(chain_seq) FROM {cps}")
    assert newest == seq  # signed at once
    result = report(kms, chainer)
    assert result.ok and result.regions[0].pruned == 5, result.lines()


def test_deleting_the_audit_up_to_a_checkpoint_is_not_retention(kms, store, chainer, clock):
    """Records deleted behind keyledger's back are missing, even when the gap ends at a
    checkpoint: only a signed retention marker lets audit records go."""
    store.append_audit(6)
    chainer.chain(REGION)  # checkpoint #1 after the 6 records
    clock.now += 61
    store.append_audit(3)
    chainer.chain(REGION)  # checkpoint #2
    first = store.audit_positions()[0]
    store.sql("DELETE FROM {audit}")
    assert problem(kms, chainer) == (
        "missing", f"audit record at position {first} (chain seq {store.chain_seq_of(AUDIT, first)})")
    assert "no retention marker signed by a checkpoint covers it" in report(kms, chainer).headline()


def test_an_unsigned_retention_marker_covers_nothing(kms, store, chainer, clock):
    """Anyone can append to the chain's tail: a marker after the last checkpoint is not taken."""
    store.append_audit(4)
    chainer.chain(REGION)  # checkpoint #1
    positions = store.audit_positions()
    (seq, tip), = store.sql("SELECT seq, hash FROM {chain} ORDER BY seq DESC LIMIT 1")
    digest = ledger_chain.retention_digest(positions[-1])
    forged = link_hash(seq + 1, ledger_chain.RETENTION, positions[-1], digest, bytes(tip))
    store.sql("INSERT INTO {chain} (seq, source, source_position, digest, prev_hash, hash) "
              "VALUES (?, ?, ?, ?, ?, ?)",
              (seq + 1, ledger_chain.RETENTION, positions[-1], digest, bytes(tip), forged))
    store.sql("DELETE FROM {audit}")
    assert problem(kms, chainer) == (
        "missing",
        f"audit record at position {positions[0]} (chain seq {store.chain_seq_of(AUDIT, positions[0])})")


def test_a_widened_retention_marker_is_an_edit(kms, store, chainer, clock):
    prune_five_old_records(store, chainer, clock, recent=3)
    newest = store.audit_positions()[-1]
    (seq,), = store.sql("SELECT seq FROM {chain} WHERE source = ?", (ledger_chain.RETENTION,))
    store.sql("UPDATE {chain} SET source_position = ?, digest = ? WHERE seq = ?",
              (newest, ledger_chain.retention_digest(newest), seq))  # "everything was pruned"
    store.sql("DELETE FROM {audit}")
    assert problem(kms, chainer) == ("edited", f"chain entry {seq}")


def test_prune_stops_at_the_newest_checkpoint_before_a_recent_record(kms, store, chainer, clock):
    old = time.time() - 400 * 86400
    store.append_audit(5, event_time=old)
    chainer.chain(REGION)  # checkpoint #1: 5 old records
    store.append_audit(2, event_time=old)
    store.append_audit(2)  # recent records chained before the next checkpoint
    clock.now += 61
    chainer.chain(REGION)  # checkpoint #2: 9 records, 2 of them recent
    assert chainer.prune_before(time.time() - 365 * 86400) == {REGION: 5}
    result = report(kms, chainer)
    assert result.ok and result.regions[0].pruned == 5, result.lines()


def test_a_gap_that_does_not_end_at_a_checkpoint_is_not_a_pruned_prefix(kms, store, chainer, clock):
    store.append_audit(6)
    chainer.chain(REGION)
    clock.now += 61
    store.append_audit(3)
    chainer.chain(REGION)
    first = store.audit_positions()[0]
    store.sql("DELETE FROM {audit} WHERE position <= ?", (first + 2,))  # half of checkpoint #1's
    assert problem(kms, chainer) == (
        "missing", f"audit record at position {first} (chain seq {store.chain_seq_of(AUDIT, first)})")


# -- rows where no walk in position order reaches them ----------------------------------------------

LOWEST = -(2**63)  # the lowest integer of SQLite and PostgreSQL: below where the walk's pages start


def _copy_of_first_audit_row(store) -> tuple:
    (row,) = store.sql(f"SELECT {ledger_chain._AUDIT_COLUMNS} FROM {{audit}} ORDER BY position "
                       "LIMIT 1")
    return row


def _insert_audit_row(store, position, row: tuple) -> None:
    store.sql(f"INSERT INTO {{audit}} ({ledger_chain._AUDIT_COLUMNS}) "
              "VALUES (?, ?, ?, ?, ?, ?, ?, ?, ?, ?)", (position, *row[1:]))


def test_an_audit_record_at_the_lowest_position_is_inserted(kms, populated, chainer):
    """``keyledger audit`` lists it (the oldest record), though the walk never met it."""
    _insert_audit_row(populated, LOWEST, _copy_of_first_audit_row(populated))
    assert problem(kms, chainer) == ("inserted", "the audit records")
    assert "11 rows are stored, the walk in position order met 10" in report(
        kms, chainer).headline()


def test_an_event_at_the_lowest_notification_id_is_inserted(kms, populated, chainer):
    """A server loads it into the key's state (a forged KeyEnabled, say): it is no less an
    insertion for being where the walk does not look."""
    (row,) = populated.events("SELECT originator_id, originator_version, topic, state FROM "
                              "{events} ORDER BY {pos} LIMIT 1")
    populated.events("INSERT INTO {events} ({pos}, originator_id, originator_version, topic, "
                     "state) VALUES (?, ?, ?, ?, ?)", (LOWEST, "forged-key", *row[1:]))
    assert problem(kms, chainer) == ("inserted", "the ledger's events")


def test_a_retention_marker_at_the_lowest_seq_covers_nothing(kms, populated, chainer):
    """A forged marker below the chain's first entry does not make deleted records pruned."""
    chainer.run([REGION], final=True)  # every record under a checkpoint
    store = populated
    store.sql("INSERT INTO {chain} (seq, source, source_position, digest, prev_hash, hash) "
              "VALUES (?, ?, ?, ?, ?, ?)",
              (LOWEST, ledger_chain.RETENTION, 10**6, ledger_chain.retention_digest(10**6),
               bytes(32), bytes(32)))
    assert problem(kms, chainer) == ("inserted", "the chain")
    position = store.audit_positions()[3]
    store.sql("DELETE FROM {audit} WHERE position = ?", (position,))
    assert problem(kms, chainer) == (
        "missing", f"audit record at position {position} "
                   f"(chain seq {store.chain_seq_of(AUDIT, position)})")


def test_a_checkpoint_at_the_lowest_seq_anchors_nothing(kms, populated, chainer):
    """Every checkpoint replaced by an unsigned one where the walk does not look: no record is
    anchored, and the stray checkpoint is an insertion (it made ``--anchored`` pass)."""
    chainer.run([REGION], final=True)
    store = populated
    (head,), = store.sql("SELECT MAX(seq) FROM {chain}")
    store.sql("DELETE FROM {cps}")
    store.sql("INSERT INTO {cps} (seq, chain_seq, head_hash, created, prev_hash, key_id, "
              "signature) VALUES (?, ?, ?, ?, ?, ?, ?)",
              (LOWEST, head, bytes(32), 0.0, bytes(32), "x", bytes(64)))
    assert problem(kms, chainer) == ("inserted", "the checkpoints")
    assert anchored_problem(kms, chainer)[:2] == ("inserted", "the checkpoints")


def _rebuilt_without_keys(store) -> None:
    """The audit table as someone who rebuilt it may leave it: no primary key, so a position
    may be missing or repeated."""
    if store.postgres:
        (name,), = store.sql("SELECT conname FROM pg_constraint WHERE contype = 'p' AND "
                             "conrelid = '{audit}'::regclass")
        store.sql(f"ALTER TABLE {{audit}} DROP CONSTRAINT {name}")
        store.sql("ALTER TABLE {audit} ALTER COLUMN position DROP NOT NULL")
    else:
        store.sql("CREATE TABLE rebuilt AS SELECT * FROM keyledger_audit")
        store.sql("DROP TABLE keyledger_audit")
        store.sql("ALTER TABLE rebuilt RENAME TO keyledger_audit")


def test_an_audit_record_with_no_position_is_inserted(kms, populated, chainer):
    store = populated
    _rebuilt_without_keys(store)
    assert report(kms, chainer).ok
    _insert_audit_row(store, None, _copy_of_first_audit_row(store))
    assert problem(kms, chainer) == ("inserted", "the audit records")


def test_an_audit_record_repeating_the_last_position_of_a_page_is_inserted(
        kms, populated, chainer, monkeypatch):
    """The walk reads page after page from after the last position it read: a second row at
    that position is never met (with 5,000-row pages, a store of over 5,000 records)."""
    monkeypatch.setattr(ledger_chain, "_PAGE", 4)
    store = populated
    _rebuilt_without_keys(store)
    assert report(kms, chainer).ok
    positions = store.audit_positions()
    (row,) = store.sql(f"SELECT {ledger_chain._AUDIT_COLUMNS} FROM {{audit}} WHERE position = ?",
                       (positions[3],))
    _insert_audit_row(store, positions[3], row)  # the last of the first page, again
    assert problem(kms, chainer) == ("inserted", "the audit records")


def test_an_audit_record_whose_position_is_no_integer_is_an_edit(kms, populated, chainer):
    """SQLite keeps whatever type is written in a rebuilt table's column."""
    store = populated
    if store.postgres:
        pytest.skip("PostgreSQL columns keep their types")
    _rebuilt_without_keys(store)
    newest = store.audit_positions()[-1]
    store.sql("UPDATE {audit} SET position = ? WHERE position = ?", (newest + 0.5, newest))
    assert problem(kms, chainer) == ("edited", "the audit records")


# -- what lies beneath the rows: the store's structure ----------------------------------------------

def test_an_edit_hidden_by_a_shadowed_sha256_is_found(kms, populated, chainer):
    """PostgreSQL: a database whose search path puts a schema before pg_catalog, with a
    sha256() there that answers the chained digest for the edited event. The verifier hashes in
    Python, and reads with pg_catalog first."""
    store = populated
    if not store.postgres:
        pytest.skip("a PostgreSQL store's search path")
    position = store.event_positions()[2]
    (row,) = store.events("SELECT {pos}, originator_id, originator_version, topic, state "
                          "FROM {events} WHERE {pos} = ?", (position,))
    chained = bytes(store.sql("SELECT digest FROM {chain} WHERE source = ? AND "
                              "source_position = ?", (EVENT, position))[0][0])
    edited = (row[0], str(row[1]), row[2], "domain.key:KmsKey.KeyEnabled", bytes(row[4]))
    hashed = ledger_chain._PREFIX[EVENT] + ledger_chain.canonical(edited)
    store.events("UPDATE {events} SET topic = ? WHERE {pos} = ?", (edited[3], position))
    store.sql("CREATE SCHEMA evil")
    store.sql("CREATE TABLE evil.fix (h BYTEA PRIMARY KEY, d BYTEA NOT NULL)")
    store.sql("INSERT INTO evil.fix VALUES (pg_catalog.sha256(?), ?)", (hashed, chained))
    store.sql("CREATE FUNCTION evil.sha256(x BYTEA) RETURNS BYTEA LANGUAGE sql STABLE AS "
              "$$SELECT coalesce((SELECT d FROM evil.fix WHERE h = pg_catalog.sha256(x)), "
              "pg_catalog.sha256(x))$$")
    dbname = store.config.postgres_conninfo()["dbname"]
    store.sql(f'ALTER DATABASE "{dbname}" SET search_path = evil, pg_catalog, public')
    assert problem(kms, chainer) == (
        "edited", f"event at notification id {position} "
                  f"(chain seq {store.chain_seq_of(EVENT, position)})")


def test_a_view_in_place_of_a_table_is_an_edit(kms, populated, chainer):
    """A view can show the verifier one thing and every other reader another."""
    store = populated
    schema = store.names["audit"].rsplit(".", 1)[0] + "." if store.postgres else ""
    store.sql("ALTER TABLE {audit} RENAME TO audit_real")
    store.sql(f"CREATE VIEW {{audit}} AS SELECT * FROM {schema}audit_real")
    assert problem(kms, chainer) == ("edited", "the store's structure")
    said = ("keyledger_audit is not a plain table (relkind 'v', row security off)"
            if store.postgres else "audit.db: keyledger_audit is a view, not a table")
    assert said in report(kms, chainer).headline()


def test_a_redefined_record_text_function_is_an_edit(kms, populated, chainer):
    """PostgreSQL: the audit's queries by key read records through a function of the region's
    schema: one that hides ReEncrypt destinations changes what readers see."""
    store = populated
    if not store.postgres:
        pytest.skip("a function of a PostgreSQL schema")
    schema = store.names["audit"].rsplit(".", 1)[0]
    store.sql(f"CREATE OR REPLACE FUNCTION {schema}.keyledger_record_text(bytea) RETURNS text "
              "LANGUAGE sql IMMUTABLE AS $$SELECT ''$$")
    assert problem(kms, chainer) == ("edited", "the store's structure")


def test_an_index_that_leaves_out_a_record_is_an_edit(kms, populated, chainer):
    """SQLite: an index rewritten (writable_schema) to leave out a record: queries that read
    the index miss it, a walk of the table does not. SQLite's integrity check finds it."""
    store = populated
    if store.postgres:
        pytest.skip("SQLite's schema table")
    (hidden,), = store.sql("SELECT request_id FROM {audit} ORDER BY position LIMIT 1")
    store.sql("DROP INDEX keyledger_audit_principal")
    store.sql("CREATE INDEX keyledger_audit_principal ON keyledger_audit (principal, position) "
              "WHERE request_id <> ?".replace("?", f"'{hidden}'"))
    store.sql("PRAGMA writable_schema = ON")
    store.sql("UPDATE sqlite_master SET sql = 'CREATE INDEX keyledger_audit_principal ON "
              "keyledger_audit (principal, position)' WHERE name = 'keyledger_audit_principal'")
    store.sql("PRAGMA writable_schema = OFF")
    assert problem(kms, chainer) == ("edited", "the store's structure")
    assert "SQLite's integrity check" in report(kms, chainer).headline()


def _pg_only(store, why: str) -> None:
    if not store.postgres:
        pytest.skip(why)


def test_a_database_search_path_changes_no_query_of_keyledgers(kms, populated, chainer):
    """PostgreSQL: ``ALTER DATABASE ... SET search_path`` with a schema's own ``=`` first would
    make every reader's key query miss a key; keyledger's connections resolve in pg_catalog."""
    store = populated
    _pg_only(store, "a PostgreSQL database's search path")
    (hidden,), = store.sql("SELECT principal FROM {audit} LIMIT 1")
    store.sql("CREATE SCHEMA evil")
    store.sql("CREATE FUNCTION evil.text_eq(a text, b text) RETURNS boolean LANGUAGE sql "
              f"IMMUTABLE AS $$SELECT pg_catalog.texteq(a, b) AND a <> '{hidden}'$$")
    store.sql("CREATE OPERATOR evil.= (LEFTARG = text, RIGHTARG = text, FUNCTION = evil.text_eq)")
    dbname = store.config.postgres_conninfo()["dbname"]
    store.sql(f'ALTER DATABASE "{dbname}" SET search_path = evil, pg_catalog, public')
    audit = store.audit_store()
    try:
        assert len(audit.query(AuditQuery(principal=hidden, limit=100))) == 10
    finally:
        audit.close()
    assert report(kms, chainer).ok


def test_a_column_of_a_domain_with_its_own_equality_is_an_edit(kms, populated, chainer):
    """PostgreSQL: a domain over text whose ``=`` leaves a key out: every stored byte is as
    chained, what a query by key matches is not."""
    store = populated
    _pg_only(store, "a PostgreSQL domain")
    store.sql("CREATE DOMAIN public.kid AS text")
    store.sql("ALTER TABLE {audit} ALTER COLUMN key_id TYPE public.kid")
    assert problem(kms, chainer) == ("edited", "the store's structure")
    assert "keyledger_audit.key_id is of type public.kid" in report(kms, chainer).headline()


def test_a_record_text_function_with_its_own_search_path_is_an_edit(kms, populated, chainer):
    """PostgreSQL: the body unchanged, a search path of the function's own puts another
    convert_from before the built-in one."""
    store = populated
    _pg_only(store, "a function of a PostgreSQL schema")
    schema = store.names["audit"].rsplit(".", 1)[0]
    store.sql(f"ALTER FUNCTION {schema}.keyledger_record_text(bytea) "
              "SET search_path = public, pg_catalog")
    assert problem(kms, chainer) == ("edited", "the store's structure")


def test_an_expression_index_built_by_another_function_is_an_edit_with_amcheck(
        kms, populated, chainer):
    """PostgreSQL: the record-text function changed, the index rebuilt, the function changed
    back: the index no longer holds what its table does. amcheck finds it."""
    store = populated
    _pg_only(store, "PostgreSQL's amcheck")
    schema = store.names["audit"].rsplit(".", 1)[0]
    function = f"{schema}.keyledger_record_text(bytea)"
    store.sql("CREATE EXTENSION IF NOT EXISTS amcheck")
    assert report(kms, chainer).ok
    store.sql(f"CREATE OR REPLACE FUNCTION {function} RETURNS text LANGUAGE sql IMMUTABLE "
              "STRICT PARALLEL SAFE AS $$SELECT ''$$")
    arn = f"arn:aws:kms:{REGION}:{ACCOUNT}:key/"
    audit = store.audit_store()
    audit.append([AuditRow(  # a ReEncrypt record: the index holds its second key
        time.time(), ACCOUNT, "k1", f"arn:aws:iam::{ACCOUNT}:root", "ReEncrypt", None, "r", "e",
        json.dumps({"resources": [{"ARN": arn + "k1"}, {"ARN": arn + "k2"}]},
                   separators=(",", ":")).encode())])
    audit.close()
    store.sql(f"REINDEX INDEX {schema}.keyledger_audit_second_key")
    store.sql(f"CREATE OR REPLACE FUNCTION {function} RETURNS text LANGUAGE sql IMMUTABLE "
              "STRICT PARALLEL SAFE AS $$SELECT convert_from($1, 'UTF8')$$")
    assert problem(kms, chainer) == ("edited", "the store's structure")
    assert "keyledger_audit_second_key does not hold what its table does" in report(
        kms, chainer).headline()


def test_a_column_collation_declared_behind_sqlites_back_is_an_edit(kms, populated, chainer):
    """SQLite: key_id declared NOCASE (writable_schema): the integrity check agrees, while a
    query by key now matches another key's records too."""
    store = populated
    if store.postgres:
        pytest.skip("SQLite's schema table")
    (sql,), = store.sql("SELECT sql FROM sqlite_master WHERE name = 'keyledger_audit'")
    store.sql("PRAGMA writable_schema = ON")
    store.sql("UPDATE sqlite_master SET sql = ? WHERE name = 'keyledger_audit'",
              (sql.replace("key_id TEXT", "key_id TEXT COLLATE NOCASE"),))
    store.sql("PRAGMA writable_schema = OFF")
    assert problem(kms, chainer) == ("edited", "the store's structure")
    assert "keyledger_audit declares a collation" in report(kms, chainer).headline()


def test_a_trigger_on_a_chained_table_is_an_edit(kms, populated, chainer):
    """A trigger can drop what the server writes (SQLite's RAISE(IGNORE), a PostgreSQL BEFORE
    trigger returning NULL): a record or event swallowed so never reaches the chain (the audit
    writer fails a commit that loses requests' records: test_audit_log; not the ledger's)."""
    store = populated
    if store.postgres:
        store.sql("CREATE FUNCTION public.swallow() RETURNS trigger LANGUAGE plpgsql AS "
                  "$$BEGIN RETURN NULL; END$$")
        store.sql("CREATE TRIGGER swallow BEFORE INSERT ON {audit} FOR EACH ROW "
                  "EXECUTE FUNCTION public.swallow()")
        said = "keyledger_audit has trigger swallow"
    else:
        store.sql("CREATE TRIGGER swallow BEFORE INSERT ON keyledger_audit "
                  "BEGIN SELECT RAISE(IGNORE); END")
        said = "audit.db: trigger swallow on keyledger_audit"
    assert problem(kms, chainer) == ("edited", "the store's structure")
    assert said in report(kms, chainer).headline()


@pytest.mark.parametrize("table", ["events", "audit"])
def test_a_child_table_of_a_chained_table_is_an_edit(kms, populated, chainer, table):
    """PostgreSQL: rows moved into a child table (whose CHECK, built on a function that
    claims to be immutable, makes the planner leave it out of a query by key or principal)
    vanish from what the server and the audit read, not from the verifier's walk (found in
    an adversarial review)."""
    store = populated
    _pg_only(store, "PostgreSQL's table inheritance")
    store.sql("CREATE SCHEMA evil")
    store.sql(f"CREATE TABLE evil.hidden () INHERITS ({{{table}}})")
    assert problem(kms, chainer) == ("edited", "the store's structure")
    assert "inherits from, or is inherited by, evil.hidden" in report(kms, chainer).headline()


def test_a_rule_on_a_chained_table_is_an_edit(kms, populated, chainer):
    """PostgreSQL: a rule rewrites (or drops) what the server writes before the chain sees it,
    as a trigger can (found in an adversarial review)."""
    store = populated
    _pg_only(store, "PostgreSQL's rules")
    store.sql("CREATE RULE swallow AS ON INSERT TO {audit} DO INSTEAD NOTHING")
    assert problem(kms, chainer) == ("edited", "the store's structure")
    assert "keyledger_audit has rule swallow" in report(kms, chainer).headline()


@pytest.mark.parametrize("malformed", ["source_position = 'x'", "digest = -1"])
def test_an_edit_before_a_malformed_chain_entry_is_named(kms, populated, chainer, malformed):
    """The edit is named (exit 1), not a verifier that stops on the later entry it looked at
    for the edited record's rightful place ("cannot read the store", exit 2; found in an
    adversarial review)."""
    store = populated
    if store.postgres:
        pytest.skip("PostgreSQL columns keep their types")
    position = store.audit_positions()[2]
    store.sql("UPDATE {audit} SET principal = ? WHERE position = ?", ("arn:aws:iam::1:root", position))
    (last,), = store.sql("SELECT MAX(seq) FROM {chain} WHERE source = 'audit'")
    store.sql(f"UPDATE {{chain}} SET {malformed} WHERE seq = ?", (last,))
    assert problem(kms, chainer) == (
        "edited", f"audit record at position {position} (chain seq {store.chain_seq_of(AUDIT, position)})")


@pytest.mark.parametrize("table, column", [("audit", "error_code"), ("chain", "prev_hash"),
                                           ("cps", "key_id")])
def test_a_chained_table_missing_a_column_is_an_edit(kms, populated, chainer, table, column):
    """A column dropped from a table the verifier reads (SQLite's DROP COLUMN, PostgreSQL's):
    an edit of the store's structure, named, not a verifier that stops on a query error."""
    store = populated
    chainer.chain(REGION, final=True)
    name = {"audit": "keyledger_audit", "chain": "keyledger_chain",
            "cps": "keyledger_checkpoints"}[table]
    store.sql(f"ALTER TABLE {{{table}}} DROP COLUMN {column}")
    assert problem(kms, chainer) == ("edited", "the store's structure")
    assert f"{name} has no column {column}" in report(kms, chainer).headline()
