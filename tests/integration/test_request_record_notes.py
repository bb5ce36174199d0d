"""A management request's change carries a note of its audit record in the same ledger
transaction, so a process that dies after the change and before the record leaves the record
noted; the maintenance pass stores it later, once (domain.request_records). The real ASGI app,
in process, on SQLite and PostgreSQL; the death is a store that keeps nothing for a while."""

from __future__ import annotations

import asyncio
import json
from dataclasses import replace

import httpx
import orjson
import pytest

from api.app import create_app
from application.audit import AuditQuery
from application.scheduler import RECORD_GRACE


class ForgetfulStore:
    """An audit store that keeps nothing: what a process killed before its record was stored
    leaves behind (its answer never went out; here it does, and is ignored)."""

    def __init__(self, real) -> None:
        self.real = real

    def append(self, rows) -> None:
        pass

    def __getattr__(self, name):
        return getattr(self.real, name)


@pytest.fixture
def server(settings):
    app = create_app(replace(settings, auth="open"))
    loop = asyncio.new_event_loop()
    client = httpx.AsyncClient(transport=httpx.ASGITransport(app=app), base_url="http://kms")

    def call(operation: str, **params) -> httpx.Response:
        response = loop.run_until_complete(client.post("/", content=json.dumps(params), headers={
            "X-Amz-Target": f"TrentService.{operation}",
            "Content-Type": "application/x-amz-json-1.1", "User-Agent": "notes-test/1.0"}))
        assert response.status_code == 200, response.text
        return response

    app.call = call
    yield app
    loop.run_until_complete(client.aclose())
    loop.close()
    app.service.close()


def records(app, request_id: str) -> list[dict]:
    store = app.service.region("us-east-1").audit.store
    found = [orjson.loads(record) for _, record in store.query(AuditQuery(limit=1000))]
    return [record for record in found if record.get("requestID") == request_id]


def recover(app, grace: float = 0.0) -> None:
    scheduler = app.service.scheduler
    scheduler.record_grace = grace
    scheduler.run([app.service.region("us-east-1")])


def test_a_change_whose_record_was_never_stored_gets_it_from_its_note(server):
    key_id = server.call("CreateKey", Description="noted").json()["KeyMetadata"]["KeyId"]
    audit = server.service.region("us-east-1").audit
    audit.store = ForgetfulStore(audit.store)
    policy = json.dumps({"Version": "2012-10-17", "Statement": [{
        "Effect": "Allow", "Principal": {"AWS": "arn:aws:iam::111122223333:root"},
        "Action": "kms:*", "Resource": "*"}]})
    lost = server.call("PutKeyPolicy", KeyId=key_id, PolicyName="default", Policy=policy)
    request_id = lost.headers["x-amzn-RequestId"]
    audit.store = audit.store.real
    assert records(server, request_id) == []

    recover(server, grace=RECORD_GRACE)  # (the note is younger than the grace: it waits)
    assert records(server, request_id) == []
    recover(server)
    (record,) = records(server, request_id)
    key = server.service.region("us-east-1").ledger.get_key(key_id)
    assert record["eventName"] == "PutKeyPolicy"
    assert record["userIdentity"]["arn"] == "arn:aws:iam::111122223333:root"
    assert record["userAgent"] == "notes-test/1.0"
    assert record["requestParameters"] == {"keyId": key_id, "policyName": "default",
                                           "policy": policy}
    assert record["responseElements"] is None
    assert "errorCode" not in record
    assert record["additionalEventData"] == {
        "recoveredFromLedger": True, "ledgerEvents": [{"aggregateId": key_id,
                                                       "version": key.version}]}
    assert record["resources"][0]["ARN"] == key.arn

    recover(server)  # read once: nothing stored twice
    assert len(records(server, request_id)) == 1


def test_a_stored_record_is_not_stored_again_from_its_note(server):
    created = server.call("CreateKey", Description="kept")
    key_id = created.json()["KeyMetadata"]["KeyId"]
    alias = server.call("CreateAlias", AliasName="alias/noted", TargetKeyId=key_id)
    recover(server)
    for response in (created, alias):
        (record,) = records(server, response.headers["x-amzn-RequestId"])
        assert "recoveredFromLedger" not in (record.get("additionalEventData") or {})
    (record,) = records(server, created.headers["x-amzn-RequestId"])
    assert record["responseElements"]["keyMetadata"]["keyId"] == key_id
