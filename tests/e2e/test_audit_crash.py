"""kill -9 under mixed load, then restart: every request that was answered has its audit
record (records are durable before the answer leaves), and the ledger still verifies."""

from __future__ import annotations

import base64
import json
import sqlite3
import threading
import time

import httpx
import psycopg
import pytest

from tests.e2e.test_verify_cli import cli, export_public_key, store_args


def _load(server, e2e, key_id: str, stop: threading.Event, answered: list[str]) -> None:
    """Encrypt, DescribeKey, TagResource and a failing call, each on a fresh connection."""
    calls = [
        ("Encrypt", {"KeyId": key_id, "Plaintext": base64.b64encode(b"crash").decode()}),
        ("DescribeKey", {"KeyId": key_id}),
        ("TagResource", {"KeyId": key_id, "Tags": [{"TagKey": "t", "TagValue": "v"}]}),
        ("DescribeKey", {"KeyId": "00000000-0000-0000-0000-000000000000"}),
    ]
    n = 0
    while not stop.is_set():
        operation, payload = calls[n % len(calls)]
        n += 1
        try:
            response = e2e.raw_kms_call(server.url, operation, payload, timeout=5)
        except httpx.HTTPError:
            continue  # the server died under this request: it was never answered
        answered.append(response.headers["x-amzn-requestid"])


def test_every_answered_request_survives_a_kill_and_the_ledger_verifies(server_factory, e2e,
                                                                         tmp_path):
    server = server_factory("audit-crash")
    key_id = server.kms().create_key()["KeyMetadata"]["KeyId"]
    stop, answered = threading.Event(), []
    threads = [threading.Thread(target=_load, args=(server, e2e, key_id, stop, answered))
               for _ in range(4)]
    for thread in threads:
        thread.start()
    time.sleep(3.0)
    server.kill()  # SIGKILL: no shutdown, no final flush
    stop.set()
    for thread in threads:
        thread.join()
    assert len(answered) >= 20  # the load ran (a sanity floor, not a speed target)
    server.start()
    server.stop()
    db = sqlite3.connect(server.data_dir / "regions" / "us-east-1" / "audit.db")
    try:
        stored = {row[0] for row in db.execute("SELECT request_id FROM keyledger_audit")}
    finally:
        db.close()
    assert set(answered) <= stored, f"{len(set(answered) - stored)} answered requests unaudited"
    result = cli("verify", *store_args(server), "--public-key", export_public_key(server, tmp_path))
    assert result.returncode == 0, result.stdout + result.stderr
    assert result.stdout.startswith("OK: ")


def _changes(server, key_id: str, stop: threading.Event, e2e) -> None:
    """Management requests only: each changes the key (a new event), so a kill lands between
    a change and its record as often as it can."""
    n = 0
    while not stop.is_set():
        n += 1
        payload = ({"KeyId": key_id, "Tags": [{"TagKey": "n", "TagValue": str(n)}]} if n % 2
                   else {"KeyId": key_id, "Description": f"change {n}"})
        try:
            e2e.raw_kms_call(server.url, "TagResource" if n % 2 else "UpdateKeyDescription",
                             payload, timeout=5)
        except httpx.HTTPError:
            continue


def _rows(server, sqlite_file: str, sql: str, args: tuple) -> list[tuple]:
    """Rows of the us-east-1 Region's store, read straight from it (``sql`` with ``{t}`` for
    the table's schema prefix and ``?`` placeholders)."""
    if server.store is None:
        db = sqlite3.connect(server.data_dir / "regions" / "us-east-1" / sqlite_file)
        try:
            return db.execute(sql.format(t=""), args).fetchall()
        finally:
            db.close()
    with psycopg.connect(server.store, autocommit=True) as conn:
        return conn.execute(sql.format(t="keyledger_us_east_1.").replace("?", "%s"),
                            args).fetchall()


def _request_ids_of_changes(server, key_id: str) -> set[str]:
    """The requests that changed the key, as its ledger events name them (their actor)."""
    events = "stored_events" if server.store is None else "keyledger_events"
    states = [bytes(row[0]) for row in _rows(
        server, "ledger.db", f"SELECT state FROM {{t}}{events} WHERE originator_id = ?",
        (key_id,))]
    return {json.loads(state)["actor"]["_data_"]["request_id"] for state in states} - {""}


def _stored_request_ids(server) -> list[str]:
    return [row[0] for row in _rows(server, "audit.db",
                                    "SELECT request_id FROM {t}keyledger_audit", ())]


@pytest.mark.parametrize("store_name", ["sqlite", pytest.param("postgresql",
                                                                marks=pytest.mark.postgres)])
def test_every_change_a_killed_server_made_gets_its_record_once(server_factory, e2e, request,
                                                                store_name):
    """A change committed before the kill whose record was not stored yet gets it from the
    note its save carried (docs/audit.md): after the restart, every request that changed the
    key has exactly one record, answered or not. On PostgreSQL with two workers, which both
    read the notes."""
    if store_name == "sqlite":
        server = server_factory("notes-crash")
    else:
        server = server_factory("notes-crash-pg", store=request.getfixturevalue("pg_database"),
                                workers=2)
    key_id = server.kms().create_key()["KeyMetadata"]["KeyId"]
    stop = threading.Event()
    threads = [threading.Thread(target=_changes, args=(server, key_id, stop, e2e))
               for _ in range(6)]
    for thread in threads:
        thread.start()
    time.sleep(3.0)
    server.kill()
    stop.set()
    for thread in threads:
        thread.join()
    changed = _request_ids_of_changes(server, key_id)
    assert len(changed) >= 20  # the load ran (a sanity floor, not a speed target)
    server.extra_args = ("--audit-record-grace", "0")  # (nothing is in flight any more)
    server.start()
    deadline = time.monotonic() + 30
    while not changed <= set(_stored_request_ids(server)) and time.monotonic() < deadline:
        time.sleep(0.5)
    server.stop()
    stored = _stored_request_ids(server)
    missing = changed - set(stored)
    assert not missing, f"{len(missing)} of {len(changed)} changes have no record"
    twice = {request_id for request_id in changed if stored.count(request_id) > 1}
    assert not twice, f"{len(twice)} changes have two records"
