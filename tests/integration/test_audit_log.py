"""The audit log: records are group-committed, durable when record() returns, and a store
that cannot be written fails every request of the batch."""

from __future__ import annotations

import asyncio
import sqlite3
import subprocess
import sys
import threading
import time

import orjson
import pytest

from application.audit import AuditLog
from infrastructure.audit_store import (
    AuditQuery,
    AuditRow,
    PostgresAuditStore,
    SQLiteAuditStore,
    open_sqlite_read_only,
)
from infrastructure.persistence import StoreConfig, schema_name


def _row(i: int, key_id: str | None = "k1", error: str | None = None) -> AuditRow:
    return AuditRow(1_700_000_000.0 + i, "111122223333", key_id, "arn:aws:iam::111122223333:root",
                    "Encrypt", error, f"req-{i}", f"evt-{i}", b'{"n":%d}' % i)


@pytest.fixture(params=["sqlite", pytest.param("postgres", marks=pytest.mark.postgres)])
def open_store(request, tmp_path):
    """A factory of connections to one fresh audit store (each call: a new connection)."""
    if request.param == "sqlite":
        def make():
            return SQLiteAuditStore(tmp_path / "audit.db")
    else:
        url = request.getfixturevalue("postgres_url")
        config = StoreConfig(tmp_path, url)
        region = "ap-south-2"
        env = config._postgres_env(region)
        config._create_schema(env)
        with config._connect(env) as conn:
            conn.execute(f"DROP TABLE IF EXISTS {schema_name(region)}.keyledger_audit")

        def make():
            return PostgresAuditStore(config._conninfo(env), schema_name(region))
    return make


class CountingStore:
    def __init__(self, store) -> None:
        self.store, self.batches = store, []
        #: (monotonic time each commit started, and ended)
        self.started: list[float] = []
        self.ended: list[float] = []

    def append(self, rows) -> None:
        self.batches.append(len(rows))
        self.started.append(time.monotonic())
        self.store.append(rows)
        self.ended.append(time.monotonic())

    def close(self) -> None:
        self.store.close()


def test_records_are_durable_when_record_returns_and_share_commits(open_store):
    counting = CountingStore(open_store())
    audit = AuditLog(counting)

    async def main():
        await asyncio.gather(*(audit.record(_row(i)) for i in range(200)))

    asyncio.run(main())
    reader = open_store()  # another connection: what is committed, not what is cached
    rows = reader.query(AuditQuery(key_id="k1", limit=1000))
    assert [record for _, record in rows] == [b'{"n":%d}' % i for i in reversed(range(200))]
    assert sum(counting.batches) == 200 and len(counting.batches) < 200
    audit.close()
    reader.close()


def test_a_commit_after_one_of_several_records_waits_for_company(tmp_path):
    """commit_delay: after a commit of several records the writer waits, so records handed
    over meanwhile share the next commit; after a commit of one record it does not wait."""
    counting = CountingStore(SQLiteAuditStore(tmp_path / "audit.db"))
    audit = AuditLog(counting, commit_delay=0.5)
    audit.record_blocking(_row(0), _row(1))  # several: the next commit waits 0.5 s
    writers = [threading.Thread(target=audit.record_blocking, args=(_row(i),))
               for i in range(2, 6)]
    for writer in writers:  # one by one, each in its own hand-over, within the delay
        writer.start()
    for writer in writers:
        writer.join()
    assert counting.batches == [2, 4]
    audit.record_blocking(_row(6))  # follows a commit of several: waits out the delay
    audit.record_blocking(_row(7))  # follows a commit of one: does not wait
    audit.record_blocking(_row(8))
    assert counting.batches == [2, 4, 1, 1, 1]
    # (measured from the commit the writer waits after, not from this thread's next step,
    # which a busy machine may take well after the wait began)
    assert counting.started[2] - counting.ended[1] >= 0.5
    assert counting.started[4] - counting.ended[1] < 1.0
    audit.close()


def test_queries_filter_and_page_newest_first(open_store):
    store = open_store()
    store.append([_row(0), _row(1, error="AccessDeniedException"), _row(2, key_id="k2"), _row(3)])
    positions = [p for p, _ in store.query(AuditQuery(limit=10))]
    assert [r for _, r in store.query(AuditQuery(key_id="k1", limit=10))] == [
        b'{"n":3}', b'{"n":1}', b'{"n":0}']
    assert [r for _, r in store.query(AuditQuery(errors_only=True, limit=10))] == [b'{"n":1}']
    assert [r for _, r in store.query(AuditQuery(start=1_700_000_001.0, end=1_700_000_002.0,
                                                 limit=10))] == [b'{"n":2}', b'{"n":1}']
    assert [r for _, r in store.query(AuditQuery(before_position=positions[1], limit=10))] == [
        b'{"n":1}', b'{"n":0}']
    assert [(p, t) for p, t, _ in store.after(positions[2], 10)] == [
        (positions[1], 1_700_000_002.0), (positions[0], 1_700_000_003.0)]
    store.close()


def test_a_principal_prefix_finds_a_roles_sessions(open_store):
    store = open_store()
    session = "arn:aws:sts::111122223333:assumed-role/Reader/{}"
    rows = [_row(0), _row(1), _row(2), _row(3)]
    rows[1] = AuditRow(*rows[1].values()[:3], session.format("alice"), *rows[1].values()[4:])
    rows[2] = AuditRow(*rows[2].values()[:3], session.format("bob"), *rows[2].values()[4:])
    rows[3] = AuditRow(*rows[3].values()[:3], "arn:aws:sts::111122223333:assumed-role/ReaderX/c",
                       *rows[3].values()[4:])
    store.append(rows)
    prefix = "arn:aws:sts::111122223333:assumed-role/Reader/"
    assert [r for _, r in store.query(AuditQuery(principal_prefix=prefix, limit=10))] == [
        b'{"n":2}', b'{"n":1}']
    store.close()


def test_a_roles_sessions_are_read_newest_first_from_the_role_index(open_store):
    """The role index, read backwards from the newest position: a page costs its own rows,
    whether the role wrote few records or millions (not a scan of every record kept, nor a
    sort of every record of the role)."""
    store = open_store()
    query = AuditQuery(principal_prefix="arn:aws:sts::111122223333:assumed-role/Reader/")
    if isinstance(store, SQLiteAuditStore):
        sql, args = store._select(query, "?")
        plan = " ".join(row[-1] for row in store._db.execute("EXPLAIN QUERY PLAN " + sql, args))
        assert "keyledger_audit_role" in plan and "TEMP B-TREE" not in plan, plan
    else:  # (an empty table: forbid the scan the planner would rather do)
        sql, args = store._select(query, "%s")
        with store._conn.transaction():
            store._conn.execute("SET LOCAL enable_seqscan = off")
            plan = " ".join(row[0] for row in store._conn.execute("EXPLAIN " + sql, args))
        assert "Index Scan Backward using keyledger_audit_role" in plan and "Sort" not in plan, plan
    store.close()


def _re_encrypt(i: int, source: str, destination: str, context: dict | None = None) -> AuditRow:
    arn = "arn:aws:kms:ap-south-2:111122223333:key/{}"
    record = orjson.dumps({"eventName": "ReEncrypt", "n": i, "resources": [
        {"ARN": arn.format(source), "accountId": "111122223333", "type": "AWS::KMS::Key"},
        {"ARN": arn.format(destination), "accountId": "111122223333", "type": "AWS::KMS::Key"}],
        "requestParameters": {"destinationEncryptionContext": context or {}}},
        option=orjson.OPT_SORT_KEYS)
    return AuditRow(1_700_000_000.0 + i, "111122223333", source, "arn:aws:iam::111122223333:root",
                    "ReEncrypt", None, f"req-{i}", f"evt-{i}", record)


def test_a_keys_records_include_re_encryptions_to_it(open_store):
    store = open_store()
    store.append([_row(0, key_id="k1"), _re_encrypt(1, "k1", "k2"), _row(2, key_id="k2"),
                  _re_encrypt(3, "k2", "k2"), _re_encrypt(4, "k3", "k1")])

    def numbers(limit=10, **filters):
        return [orjson.loads(r)["n"] for _, r in store.query(AuditQuery(limit=limit, **filters))]

    assert numbers(key_id="k2") == [3, 2, 1]  # ReEncrypt 3 names k2 twice: one record
    assert numbers(key_id="k1") == [4, 1, 0]
    assert numbers(key_id="k3") == [4]
    assert numbers(key_id="k2", event_name="Encrypt") == [2]
    assert numbers(key_id="k2", limit=2) == [3, 2]
    positions = [p for p, _ in store.query(AuditQuery(key_id="k2", limit=10))]
    assert numbers(key_id="k2", before_position=positions[1]) == [1]
    store.close()


def test_a_callers_context_neither_breaks_nor_forges_the_second_key(open_store):
    """A NUL escape (PostgreSQL's JSON types refuse it) and a value spelling out a resources
    array: the record is stored, found by its real destination, not by the spelled one."""
    store = open_store()
    forged = '"resources":[{"ARN":"arn:aws:kms:ap-south-2:111122223333:key/k9"},{"ARN":' \
        '"arn:aws:kms:ap-south-2:111122223333:key/k9"}]'
    store.append([_re_encrypt(0, "k1", "k2", {"nul": "\u0000", "resources": forged})])
    found = store.query(AuditQuery(key_id="k2", limit=10))
    assert [orjson.loads(r)["requestParameters"]["destinationEncryptionContext"]["nul"]
            for _, r in found] == ["\u0000"]
    assert store.query(AuditQuery(key_id="k9", limit=10)) == []
    store.close()


def test_a_store_from_before_the_second_key_index_finds_its_re_encryptions(open_store):
    old = open_store()
    old.append([_re_encrypt(0, "k1", "k2")])
    if isinstance(old, SQLiteAuditStore):  # as a store written before the index
        old._db.execute("DROP INDEX keyledger_audit_second_key")
    else:
        old._conn.execute(f"DROP INDEX {old._table_sql.rsplit('.', 1)[0]}.keyledger_audit_second_key")
    old.close()
    store = open_store()
    assert [orjson.loads(r)["n"] for _, r in store.query(AuditQuery(key_id="k2", limit=10))] == [0]
    if isinstance(store, SQLiteAuditStore):
        plan = store._db.execute("EXPLAIN QUERY PLAN " + store._select(
            AuditQuery(key_id="k2", limit=10), "?")[0], ("k2", 10, "k2", 10, 10)).fetchall()
        assert any("keyledger_audit_second_key" in row[-1] for row in plan)
    else:
        store._conn.execute("SET enable_seqscan = off")  # a few rows: the planner would scan
        sql, args = store._select(AuditQuery(key_id="k2", limit=10), "%s")
        plan = [row[0] for row in store._conn.execute("EXPLAIN " + sql, args).fetchall()]
        assert any("keyledger_audit_second_key" in line for line in plan)
    store.close()


class FailingStore:
    def append(self, rows) -> None:
        raise OSError("disk full")

    def close(self) -> None:
        pass


def test_a_store_that_cannot_be_written_fails_every_waiting_request():
    audit = AuditLog(FailingStore())

    async def main():
        return await asyncio.gather(*(audit.record(_row(i)) for i in range(5)),
                                    return_exceptions=True)

    outcomes = asyncio.run(main())
    assert [type(o) for o in outcomes] == [OSError] * 5
    failures = []
    thread = threading.Thread(target=lambda: failures.append(
        pytest.raises(OSError, audit.record_blocking, _row(9))))
    thread.start()
    thread.join()
    assert len(failures) == 1
    audit.close()


def test_a_thread_stores_several_records_in_one_commit(open_store):
    counting = CountingStore(open_store())
    audit = AuditLog(counting)
    audit.record_blocking(_row(0), _row(1), _row(2))  # returns once all three are durable
    audit.record_blocking()  # nothing to store: returns at once
    reader = open_store()
    assert [r for _, r in reader.query(AuditQuery(limit=10))] == [
        b'{"n":2}', b'{"n":1}', b'{"n":0}']
    assert counting.batches == [3]
    audit.close()
    reader.close()


def test_a_record_kms_writes_itself_is_stored_once_by_its_event_id(open_store):
    """A record without a caller (principal None: KMS's own, e.g. a replica Region's entry)
    whose eventID is stored already is left out, in its batch or a later one; a request's
    record (a caller) is always stored, whatever its eventID."""
    store = open_store()
    own = [AuditRow(1_700_000_000.0 + i, "111122223333", "k1", None, "CreateKey", None,
                    f"req-{i}", "evt-own", b'{"own":%d}' % i) for i in range(2)]
    store.append([own[0], _row(0), own[1]])
    store.append([own[1], _row(1)])
    callers = [AuditRow(1_700_000_100.0, "111122223333", "k1", "arn:aws:iam::111122223333:root",
                        "CreateKey", None, "req-x", "evt-own", b'{"caller":1}')] * 2
    store.append(callers)
    stored = [orjson.loads(record) for _, record in store.query(AuditQuery(limit=10))]
    assert stored == [{"caller": 1}, {"caller": 1}, {"n": 1}, {"n": 0}, {"own": 0}]
    store.close()


# -- the spool: records of requests that changed the ledger are kept when the store fails --------

class SwitchableStore:
    """A real store that refuses writes while ``broken`` (a held lock, a full disk ...)."""

    def __init__(self, store) -> None:
        self.store, self.broken = store, True

    def append(self, rows) -> None:
        if self.broken:
            raise OSError("disk I/O error")
        self.store.append(rows)

    def append_missing(self, rows) -> None:
        if self.broken:
            raise OSError("disk I/O error")
        self.store.append_missing(rows)

    def close(self) -> None:
        self.store.close()


def _stored(store) -> list[dict]:
    return [orjson.loads(r) for _, r in reversed(store.query(AuditQuery(limit=100)))]


def test_a_kept_record_is_spooled_when_the_store_fails_and_stored_before_the_next(open_store,
                                                                                   tmp_path):
    from infrastructure.audit_spool import AuditSpool

    spool = AuditSpool(tmp_path / "spool" / "audit-spool.jsonl")
    store = SwitchableStore(open_store())
    audit = AuditLog(store, spool=spool)

    async def batch():  # one batch: a management request's record and a read's
        return await asyncio.gather(audit.record(_row(1), kept=True), audit.record(_row(2)),
                                    return_exceptions=True)

    assert [type(o) for o in asyncio.run(batch())] == [type(None), OSError]
    audit.record_blocking(_row(3), kept=True)  # the scheduler's service events: kept too
    with pytest.raises(OSError):
        audit.record_blocking(_row(4))
    assert spool.waiting()
    assert (tmp_path / "spool" / "audit-spool.jsonl").stat().st_mode & 0o777 == 0o600
    store.broken = False
    audit.record_blocking(_row(5))  # the spooled records go first, then this one
    assert not spool.waiting()
    assert _stored(store.store) == [{"n": 1}, {"n": 3}, {"n": 5}]
    audit.close()


def test_spooled_records_are_stored_once_if_the_spool_is_drained_twice(open_store, tmp_path):
    """A crash between the store's commit and the spool's truncation drains it again."""
    from infrastructure.audit_spool import AuditSpool

    store = open_store()
    spool = AuditSpool(tmp_path / "audit-spool.jsonl")
    spool.add([_row(1), _row(2, key_id=None, error="AccessDeniedException")])
    spool.add([_row(3)])
    copy = (tmp_path / "audit-spool.jsonl").read_bytes()
    assert spool.drain(store.append_missing) == 3
    (tmp_path / "audit-spool.jsonl").write_bytes(copy)  # as if never truncated
    store.append([_row(4)])
    assert spool.drain(store.append_missing) == 3
    rows = store.query(AuditQuery(limit=100))
    assert [orjson.loads(r) for _, r in reversed(rows)] == [{"n": 1}, {"n": 2}, {"n": 3}, {"n": 4}]
    assert store.query(AuditQuery(errors_only=True, limit=10))[0][1] == b'{"n":2}'
    store.close()


def _until(predicate, timeout: float = 5.0):
    deadline = time.monotonic() + timeout
    while not (value := predicate()):
        assert time.monotonic() < deadline, "not within the time allowed"
        time.sleep(0.02)
    return value


def test_spooled_records_are_stored_when_the_log_opens_with_nothing_to_record(open_store,
                                                                              tmp_path):
    from infrastructure.audit_spool import AuditSpool

    spool = AuditSpool(tmp_path / "audit-spool.jsonl")
    spool.add([_row(1)])  # left by a process that stopped before its store came back
    store = open_store()
    audit = AuditLog(store, spool=spool)
    _until(lambda: not spool.waiting())  # (emptied once its records are stored)
    assert _stored(store) == [{"n": 1}]
    audit.close()


def test_a_process_stores_what_another_spooled_before_its_own_records(open_store, tmp_path):
    """Workers share the spool: whichever commits next moves it in first."""
    from infrastructure.audit_spool import AuditSpool

    spool_path = tmp_path / "audit-spool.jsonl"
    broken = SwitchableStore(open_store())  # worker A's connection cannot write
    worker_a = AuditLog(broken, spool=AuditSpool(spool_path))
    store = open_store()
    worker_b = AuditLog(store, spool=AuditSpool(spool_path))  # opened before A spools
    worker_a.record_blocking(_row(1), kept=True)
    worker_b.record_blocking(_row(2))
    assert _stored(store) == [{"n": 1}, {"n": 2}]
    worker_a.close()
    worker_b.close()


class StuckSpoolStore(SwitchableStore):
    """Appends work; moving spooled records in does not (yet)."""

    def __init__(self, store) -> None:
        super().__init__(store)
        self.broken = False
        self.stuck = True

    def append_missing(self, rows) -> None:
        if self.stuck:
            raise OSError("database is locked")
        self.store.append_missing(rows)


def test_spooled_records_that_cannot_be_moved_hold_no_request_back(open_store, tmp_path):
    """A spooled record the store will not take (yet, or ever) does not stop the requests
    after it: they are stored; it is moved in as soon as it can be, with no request to wait for."""
    from infrastructure.audit_spool import AuditSpool

    spool = AuditSpool(tmp_path / "audit-spool.jsonl")
    spool.add([_row(1)])
    store = StuckSpoolStore(open_store())
    audit = AuditLog(store, spool=spool)
    audit.record_blocking(_row(2))
    audit.record_blocking(_row(3), kept=True)
    assert _stored(store.store) == [{"n": 2}, {"n": 3}]
    store.stuck = False
    assert _until(lambda: len(_stored(store.store)) == 3)  # (tried again while idle)
    assert _stored(store.store) == [{"n": 2}, {"n": 3}, {"n": 1}]
    audit.close()


def test_a_record_spooled_while_the_store_was_down_is_stored_once_it_is_back(open_store,
                                                                             tmp_path):
    """No request needs to come after it: the writer tries the spool every second."""
    from infrastructure.audit_spool import AuditSpool

    spool = AuditSpool(tmp_path / "audit-spool.jsonl")
    store = SwitchableStore(open_store())
    audit = AuditLog(store, spool=spool)
    audit.record_blocking(_row(1), kept=True)
    assert spool.waiting()
    store.broken = False
    _until(lambda: not spool.waiting())
    assert _stored(store.store) == [{"n": 1}]
    audit.close()


def test_a_kept_record_fails_if_the_spool_cannot_be_written_either(open_store, tmp_path):
    from infrastructure.audit_spool import AuditSpool

    (tmp_path / "a-file").write_bytes(b"")
    audit = AuditLog(SwitchableStore(open_store()),
                     spool=AuditSpool(tmp_path / "a-file" / "audit-spool.jsonl"))
    with pytest.raises(OSError):
        audit.record_blocking(_row(1), kept=True)
    audit.close()


def test_a_torn_spool_line_is_set_aside_and_the_rest_stored(open_store, tmp_path):
    """A crash in the middle of a spool write leaves a torn last line (its request was never
    answered): it is set aside for the operator, and the records before it are stored."""
    from infrastructure.audit_spool import AuditSpool

    path = tmp_path / "audit-spool.jsonl"
    spool = AuditSpool(path)
    spool.add([_row(1), _row(2)])
    torn = path.read_bytes().splitlines(keepends=True)[1][:40]
    path.write_bytes(path.read_bytes().splitlines(keepends=True)[0] + torn)
    store = open_store()
    assert spool.drain(store.append_missing) == 1
    assert _stored(store) == [{"n": 1}]
    assert (tmp_path / "audit-spool.jsonl.unreadable").read_bytes() == torn + b"\n"
    assert not spool.waiting()
    store.close()


def test_a_record_spooled_after_a_torn_line_starts_a_line_of_its_own(open_store, tmp_path):
    """The next kept record after a cut-short write is an answered request's: it is stored,
    and only the torn line is set aside (once, though the first drain fails)."""
    from infrastructure.audit_spool import AuditSpool

    path = tmp_path / "audit-spool.jsonl"
    spool = AuditSpool(path)
    spool.add([_row(1)])
    path.write_bytes(path.read_bytes() + b'[1700000000.5, "1111')  # a write cut short
    spool.add([_row(2)])
    store = SwitchableStore(open_store())
    with pytest.raises(OSError):
        spool.drain(store.append_missing)
    assert not (tmp_path / "audit-spool.jsonl.unreadable").exists()
    store.broken = False
    assert spool.drain(store.append_missing) == 2
    assert _stored(store.store) == [{"n": 1}, {"n": 2}]
    assert (tmp_path / "audit-spool.jsonl.unreadable").read_bytes() == b'[1700000000.5, "1111\n'
    store.close()


@pytest.mark.postgres
@pytest.mark.parametrize("open_store", ["postgres"], indirect=True)
def test_a_postgres_store_connects_again_after_its_connection_was_lost(open_store):
    """PostgreSQL restarted (here: the server ended the connection): the commit that found
    the connection lost fails, the next one connects again."""
    import psycopg

    store = open_store()
    store.append([_row(1)])
    with psycopg.connect(**store._conninfo, autocommit=True) as admin:
        admin.execute("SELECT pg_terminate_backend(%s)", (store._conn.info.backend_pid,))
    with pytest.raises(psycopg.OperationalError):
        store.append([_row(2)])
    store.append([_row(3)])
    store.append_missing([_row(3), _row(4)])
    assert _stored(store) == [{"n": 1}, {"n": 3}, {"n": 4}]
    store.close()


class SlowSpoolStore(SwitchableStore):
    """Moving spooled records in takes a while (a lock held by another process)."""

    def __init__(self, store) -> None:
        super().__init__(store)
        self.broken = False
        self.moving = threading.Event()

    def append_missing(self, rows) -> None:
        self.moving.set()
        time.sleep(1.0)
        self.store.append_missing(rows)


def test_an_idle_writer_moving_the_spool_does_not_block_the_event_loop(open_store, tmp_path):
    """The writer tries the spool outside the lock the event loop hands records over under:
    the loop goes on while the writer waits on the store."""
    from infrastructure.audit_spool import AuditSpool

    spool = AuditSpool(tmp_path / "audit-spool.jsonl")
    store = SlowSpoolStore(open_store())
    audit = AuditLog(store, spool=spool)
    _until(lambda: not spool.waiting())  # (the start's pass: nothing waits)
    spool.add([_row(1)])  # another process spooled it: the idle writer's next pass moves it
    assert store.moving.wait(5)

    async def main():
        recorded = asyncio.ensure_future(audit.record(_row(2)))
        started = time.monotonic()
        await asyncio.sleep(0.05)  # the loop runs while the record waits for the writer
        ticked = time.monotonic() - started
        await recorded
        return ticked

    assert asyncio.run(main()) < 0.5
    assert _stored(store.store) == [{"n": 1}, {"n": 2}]
    audit.close()


def test_a_read_only_reader_refuses_a_file_with_a_journal_it_cannot_apply(tmp_path):
    """A process that died mid-transaction leaves a hot rollback journal: a writable
    connection rolls it back before reading; an immutable one would read the file as it lies.
    The readers of a store (verify, audit, history) refuse rather than see what no one else
    sees."""
    path = tmp_path / "ledger.db"
    conn = sqlite3.connect(path)
    conn.execute("PRAGMA journal_mode=DELETE")
    conn.execute("CREATE TABLE t (a INTEGER PRIMARY KEY, b BLOB)")
    conn.executemany("INSERT INTO t (b) VALUES (?)", [(bytes(3000),)] * 200)
    conn.commit()
    conn.close()
    dies_mid_transaction = (  # a small cache: the change reaches the file before a commit
        "import os, sqlite3, sys\n"
        "c = sqlite3.connect(sys.argv[1], isolation_level=None)\n"
        "c.execute('PRAGMA cache_size=2'); c.execute('BEGIN')\n"
        "c.execute('UPDATE t SET b = zeroblob(2999)')\n"
        "os._exit(0)\n")
    subprocess.run([sys.executable, "-c", dies_mid_transaction, str(path)], check=True)
    assert (tmp_path / "ledger.db-journal").stat().st_size > 0
    with pytest.raises(sqlite3.OperationalError, match="ledger.db-journal holds changes a "
                       "read-only reader cannot apply"):
        open_sqlite_read_only(path)


def _swallow_request(store, request_id: str) -> None:
    """A trigger that drops, without a word, every insert of ``request_id``'s record."""
    if isinstance(store, SQLiteAuditStore):
        store._db.execute("CREATE TRIGGER swallow BEFORE INSERT ON keyledger_audit "
                          f"WHEN NEW.request_id = '{request_id}' BEGIN SELECT RAISE(IGNORE); END")
    else:
        store._conn.execute("CREATE OR REPLACE FUNCTION public.swallow() RETURNS trigger "
                            "LANGUAGE plpgsql AS $$BEGIN IF NEW.request_id = "
                            f"'{request_id}' THEN RETURN NULL; END IF; RETURN NEW; END$$")
        store._conn.execute(f"CREATE TRIGGER swallow BEFORE INSERT ON {store._table_sql} "
                            "FOR EACH ROW EXECUTE FUNCTION public.swallow()")


def _unswallow(store) -> None:
    if isinstance(store, SQLiteAuditStore):
        store._db.execute("DROP TRIGGER swallow")
    else:
        store._conn.execute(f"DROP TRIGGER swallow ON {store._table_sql}")


def test_spooled_records_a_trigger_swallows_stay_in_the_spool(open_store, tmp_path):
    """Moving the spool checks that every record it moves is in the store afterwards (stored
    now, or already): one a trigger swallowed fails the move, and the spool keeps it all."""
    from infrastructure.audit_spool import AuditSpool

    store = open_store()
    spool = AuditSpool(tmp_path / "audit-spool.jsonl")
    spool.add([_row(0), _row(1), _row(2)])
    store.append([_row(0)])  # (stored already: a crash between the store and the spool)
    _swallow_request(store, "req-1")
    with pytest.raises(RuntimeError, match="the audit store did not keep 1 of 3 records moved"):
        spool.drain(store.append_missing)
    assert [r for _, r in store.query(AuditQuery(limit=10))] == [b'{"n":0}']  # (rolled back)
    assert spool.waiting()
    _unswallow(store)
    assert spool.drain(store.append_missing) == 3
    assert sorted(r for _, r in store.query(AuditQuery(limit=10))) == [
        b'{"n":0}', b'{"n":1}', b'{"n":2}']
    assert not spool.waiting()
    store.close()


def test_records_a_trigger_swallows_fail_their_commit(open_store):
    """A request's record the store does not keep (a trigger dropped it) fails the group
    commit, as a store that cannot be written does: no request is answered unaudited."""
    store = open_store()
    if isinstance(store, SQLiteAuditStore):
        store._db.execute("CREATE TRIGGER swallow BEFORE INSERT ON keyledger_audit "
                          "WHEN NEW.request_id = 'req-1' BEGIN SELECT RAISE(IGNORE); END")
    else:
        store._conn.execute("CREATE FUNCTION public.swallow() RETURNS trigger LANGUAGE plpgsql "
                            "AS $$BEGIN IF NEW.request_id = 'req-1' THEN RETURN NULL; END IF; "
                            "RETURN NEW; END$$")
        store._conn.execute(f"CREATE TRIGGER swallow BEFORE INSERT ON {store._table_sql} "
                            "FOR EACH ROW EXECUTE FUNCTION public.swallow()")
    with pytest.raises(RuntimeError, match="the audit store kept 2 of 3 requests' records"):
        store.append([_row(0), _row(1), _row(2)])
    assert store.query(AuditQuery(limit=10)) == []  # (the whole commit rolled back)
    store.append([_row(2)])
    assert [r for _, r in store.query(AuditQuery(limit=10))] == [b'{"n":2}']
    store.close()
