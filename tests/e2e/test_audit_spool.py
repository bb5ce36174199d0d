"""A management request whose record the audit store refuses: its change is already in the
ledger, so its record is spooled (fsynced, on the node) and the request answered as it ended; a
request that changed nothing still fails (no unaudited use). The spool moves into the store before
the next record. Real server, real store (a trigger / a CHECK constraint refuses the inserts)."""

from __future__ import annotations

import json
import sqlite3

import psycopg
import pytest
from botocore.exceptions import ClientError

from tests.e2e.conftest import DEFAULT_REGION, stored_audit_record, stored_audit_rows

REFUSE = "keyledger_test_refuse"


def _refuse_audit_writes(server, refuse: bool) -> None:
    if server.store is None:
        db = sqlite3.connect(server.data_dir / "regions" / DEFAULT_REGION / "audit.db",
                             isolation_level=None, timeout=30)
        try:
            db.execute(f"CREATE TRIGGER {REFUSE} BEFORE INSERT ON keyledger_audit BEGIN "
                       "SELECT RAISE(ABORT, 'refused by the test'); END" if refuse else
                       f"DROP TRIGGER {REFUSE}")
        finally:
            db.close()
    else:
        table = "keyledger_" + DEFAULT_REGION.replace("-", "_") + ".keyledger_audit"
        with psycopg.connect(server.store, autocommit=True) as conn:
            conn.execute(f"ALTER TABLE {table} ADD CONSTRAINT {REFUSE} CHECK (false) NOT VALID"
                         if refuse else f"ALTER TABLE {table} DROP CONSTRAINT {REFUSE}")


@pytest.fixture(scope="module")
def server(store, server_factory):
    return server_factory("spool", store=store)


def test_a_change_the_store_cannot_record_is_answered_and_its_record_kept(server):
    kms = server.kms()
    kms.list_keys()  # the Region's store exists
    spool = server.data_dir / "regions" / DEFAULT_REGION / "audit-spool.jsonl"
    _refuse_audit_writes(server, True)
    try:
        created = kms.create_key(Description="made while the audit store refused")
        key_id = created["KeyMetadata"]["KeyId"]
        request_id = created["ResponseMetadata"]["RequestId"]
        with pytest.raises(ClientError) as refused:  # it would change nothing: it fails
            kms.encrypt(KeyId=key_id, Plaintext=b"x")
        assert (refused.value.response["ResponseMetadata"]["HTTPStatusCode"],
                refused.value.response["Error"]["Code"]) == (500, "KMSInternalException")
        spooled = [json.loads(line) for line in spool.read_bytes().splitlines()]
        assert [(row[4], row[6]) for row in spooled] == [("CreateKey", request_id)]
        assert spool.stat().st_mode & 0o777 == 0o600
    finally:
        _refuse_audit_writes(server, False)
    described = kms.describe_key(KeyId=key_id)  # the next record: the spool goes in first
    record = stored_audit_record(server, request_id)
    assert (record["eventName"], record["responseElements"]["keyMetadata"]["keyId"]) == (
        "CreateKey", key_id)
    assert spool.stat().st_size == 0
    assert _position(server, request_id) < _position(
        server, described["ResponseMetadata"]["RequestId"])  # stored before what came after


def _position(server, request_id: str) -> int:
    """Where the store put a request's record (its commit order)."""
    ((position, _),) = stored_audit_rows(server, request_id)
    return position
