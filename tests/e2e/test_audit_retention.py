"""Audit retention on a real server: ``--audit-retention-days`` prunes old records, only as whole
prefixes ending at a checkpoint, and ``keyledger verify`` still passes.

Records are stamped by the wall clock and retention measures their age on the service clock, so
moving the test clock ages every record made so far; a scheduled deletion run on the moved clock
leaves a *recent* record (an AwsServiceEvent stamped by the service clock). Checkpoints and
retention passes are triggered through ``POST /_test/maintenance``; the hourly pass itself is
seen at a restart (it runs once at the start, before the first request).
"""

from __future__ import annotations

import sqlite3
import time

import httpx
import psycopg

from tests.e2e.conftest import KeyledgerServer
from tests.e2e.test_verify_cli import OK_LINE, cli, export_public_key, store_args

DAY = 86400
REGION = "us-east-1"
RETENTION_DAYS = 7


def maintenance(server: KeyledgerServer, *, checkpoint: bool = False, prune: bool = False) -> dict:
    r = httpx.post(server.url + "/_test/maintenance",
                   json={"checkpoint": checkpoint, "prune": prune}, timeout=60)
    assert r.status_code == 200, f"/_test/maintenance -> {r.status_code} {r.text}"
    return r.json()["pruned"]


def audit_rows(server: KeyledgerServer) -> list[tuple[int, str | None, str]]:
    """(position, request id, event name) of every stored audit record, read from the store."""
    sql = "SELECT position, request_id, event_name FROM {} ORDER BY position"
    if server.store:
        with psycopg.connect(server.store, autocommit=True) as db:
            return db.execute(sql.format("keyledger_us_east_1.keyledger_audit")).fetchall()
    path = server.data_dir / "regions" / REGION / "audit.db"
    db = sqlite3.connect(path.resolve().as_uri() + "?mode=ro", uri=True)
    try:
        return db.execute(sql.format("keyledger_audit")).fetchall()
    finally:
        db.close()


def checkpoint_count(server: KeyledgerServer) -> int:
    sql = "SELECT COUNT(*) FROM {}"
    if server.store:
        with psycopg.connect(server.store, autocommit=True) as db:
            return db.execute(sql.format("keyledger_us_east_1.keyledger_checkpoints")).fetchone()[0]
    path = server.data_dir / "regions" / REGION / "audit.db"
    db = sqlite3.connect(path.resolve().as_uri() + "?mode=ro", uri=True)
    try:
        return db.execute(sql.format("keyledger_checkpoints")).fetchone()[0]
    finally:
        db.close()


def request_ids(*responses) -> set[str]:
    return {response["ResponseMetadata"]["RequestId"] for response in responses}


def stored_request_ids(server: KeyledgerServer) -> set[str | None]:
    return {request_id for _, request_id, _ in audit_rows(server)}


def test_retention_prunes_checkpointed_old_records_and_verify_still_passes(store, server_factory,
                                                                         tmp_path):
    server = server_factory("retention", store=store,
                            extra_args=("--audit-retention-days", str(RETENTION_DAYS)))
    kms = server.kms()

    # A: old records, anchored by a checkpoint of their own
    created = kms.create_key(Description="retention")
    key_id = created["KeyMetadata"]["KeyId"]
    doomed = kms.create_key(Description="deleted on the moved clock")
    a = request_ids(
        created, doomed, kms.encrypt(KeyId=key_id, Plaintext=b"a"),
        kms.schedule_key_deletion(KeyId=doomed["KeyMetadata"]["KeyId"], PendingWindowInDays=7),
    )
    assert stored_request_ids(server) == a  # every record is durable before its response
    assert maintenance(server, checkpoint=True) == {}  # a checkpoint covers A
    checkpoints = checkpoint_count(server)

    # B: old records in the span of the next checkpoint, which also anchors a recent one
    b = request_ids(kms.encrypt(KeyId=key_id, Plaintext=b"b"), kms.describe_key(KeyId=key_id))
    server.advance_clock(8 * DAY)  # the deletion completes: DeleteKey, stamped 8 days ahead
    service_events = [(p, name) for p, request_id, name in audit_rows(server) if request_id is None]
    assert [name for _, name in service_events] == ["DeleteKey"]
    c = request_ids(kms.encrypt(KeyId=key_id, Plaintext=b"c"))  # wall clock: old again
    assert maintenance(server, checkpoint=True) == {}  # checkpoint covers B, DeleteKey, C

    # Retention now keeps everything from the newest checkpoint before the recent DeleteKey on:
    # A goes; B and C are old but share a checkpoint span with it, so they stay. The deletion's
    # retention marker is signed at once, by a checkpoint of its own.
    assert maintenance(server, prune=True) == {REGION: len(a)}
    assert checkpoint_count(server) == checkpoints + 2
    remaining = stored_request_ids(server)
    assert not a & remaining
    assert b | c | {None} <= remaining
    assert maintenance(server, prune=True) == {REGION: 0}  # idempotent
    assert checkpoint_count(server) == checkpoints + 2  # nothing pruned: no marker to sign
    e = request_ids(kms.list_keys())  # after every checkpoint so far

    # A week later the DeleteKey record is old too: everything a checkpoint anchors goes; E,
    # after the newest checkpoint, stays however old it is (until the next prune: the marker's
    # checkpoint anchors it).
    server.advance_clock(8 * DAY)
    assert maintenance(server, prune=True) == {REGION: len(b | c) + len(service_events)}
    assert [request_id for _, request_id, _ in audit_rows(server)] == list(e)
    assert checkpoint_count(server) == checkpoints + 3

    # Stopping anchors E; the restarted server's start-up retention pass (then hourly) prunes
    # it with the retention the command line set.
    server.stop()
    public_key = export_public_key(server, tmp_path)
    result = cli("verify", *store_args(server), "--public-key", public_key)
    pruned = len(a | b | c) + len(service_events)
    assert result.returncode == 0, result.stdout + result.stderr
    match = OK_LINE.match(result.stdout.splitlines()[0])
    assert match and int(match[2]) == checkpoints + 3, result.stdout  # nothing new at the stop
    assert f"events and {len(e)} audit records verified" in result.stdout, result.stdout
    assert f"; {pruned} older audit records pruned" in result.stdout, result.stdout

    server.start()
    deadline = time.monotonic() + 10
    while stored_request_ids(server) & e and time.monotonic() < deadline:
        time.sleep(0.1)
    assert not stored_request_ids(server) & e, server.log_text()[-2000:]
    assert "audit retention: pruned {'us-east-1': 1}" in server.log_text()
    server.stop()
    result = cli("verify", *store_args(server), "--public-key", public_key)
    assert result.returncode == 0, result.stdout + result.stderr
    assert "events and 0 audit records verified" in result.stdout, result.stdout
    assert f"; {pruned + len(e)} older audit records pruned" in result.stdout, result.stdout
    assert "unanchored" not in result.stdout, result.stdout
