"""A management request's change carries a note of its audit record in the same ledger
transaction, so a process that dies after the change and before the record leaves the record
noted; the maintenance pass stores it later, once (domain.request_records). The real ASGI app,
in process, on SQLite and PostgreSQL; the death is a store that keeps nothing for a while."""

from __future__ import annotations

import asyncio
import base64
import json
import os
import time
from dataclasses import replace
from datetime import UTC, datetime
from types import SimpleNamespace

import httpx
import orjson
import pytest
from cryptography.hazmat.primitives import hashes, serialization
from cryptography.hazmat.primitives.asymmetric import padding

from api.app import create_app
from api.bootstrap import build_service
from api.cli import main
from api.settings import Settings
from application import scheduler as scheduler_module
from application.audit import AuditQuery
from application.scheduler import _NOTE_TOPIC, RECORD_GRACE


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


def test_a_lost_create_keys_record_names_the_key_it_made(server):
    audit = server.service.region("us-east-1").audit
    audit.store = ForgetfulStore(audit.store)
    lost = server.call("CreateKey", Description="made, unrecorded")
    audit.store = audit.store.real
    key = lost.json()["KeyMetadata"]
    recover(server)
    (record,) = records(server, lost.headers["x-amzn-RequestId"])
    assert (record["eventName"], record["resources"]) == ("CreateKey", [
        {"accountId": "111122223333", "type": "AWS::KMS::Key", "ARN": key["Arn"]}])
    assert record["requestParameters"]["description"] == "made, unrecorded"
    store = audit.store
    assert [orjson.loads(r)["requestID"] for _, r in store.query(
        AuditQuery(key_id=key["KeyId"], limit=10))] == [lost.headers["x-amzn-RequestId"]]


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


def test_a_fork_reads_the_notes_it_copies_as_read(server, settings, tmp_path):
    """A fork copies the ledger, notes included, and starts its own audit: the records of the
    requests it copied are the source's, not its own to recover."""
    key_id = server.call("CreateKey").json()["KeyMetadata"]["KeyId"]
    server.call("TagResource", KeyId=key_id, Tags=[{"TagKey": "t", "TagValue": "v"}])
    out = tmp_path / "fork"
    args = ["fork", "--data-dir", settings.data_dir, "--out", str(out),
            "--at", datetime.now(UTC).isoformat()]
    assert main(args + (["--store", settings.store] if settings.store else [])) == 0
    fork = build_service(Settings(data_dir=str(out)))
    try:
        fork.scheduler.record_grace = 0.0
        region = fork.region("us-east-1")
        fork.scheduler.run([region])
        assert region.audit.store.query(AuditQuery(limit=10)) == []
        assert region.ledger.get_key(key_id) is not None  # (the fork holds the key)
    finally:
        fork.close()


def test_a_request_that_saved_twice_gets_the_record_naming_both_saves(server, monkeypatch):
    """DeleteImportedKeyMaterial saves the deletion, then the shredding: each save's note names
    the events written so far; the recovered record is the last note's."""
    key_id = server.call("CreateKey", Origin="EXTERNAL").json()["KeyMetadata"]["KeyId"]
    wrapping = server.call("GetParametersForImport", KeyId=key_id,
                           WrappingAlgorithm="RSAES_OAEP_SHA_256",
                           WrappingKeySpec="RSA_2048").json()
    public_key = serialization.load_der_public_key(base64.b64decode(wrapping["PublicKey"]))
    material = public_key.encrypt(os.urandom(32), padding.OAEP(
        mgf=padding.MGF1(hashes.SHA256()), algorithm=hashes.SHA256(), label=None))
    server.call("ImportKeyMaterial", KeyId=key_id, ImportToken=wrapping["ImportToken"],
                EncryptedKeyMaterial=base64.b64encode(material).decode(),
                ExpirationModel="KEY_MATERIAL_DOES_NOT_EXPIRE")
    region = server.service.region("us-east-1")
    before = region.ledger.get_key(key_id).version
    region.audit.store = ForgetfulStore(region.audit.store)
    lost = server.call("DeleteImportedKeyMaterial", KeyId=key_id)
    region.audit.store = region.audit.store.real
    written = list(range(before + 1, region.ledger.get_key(key_id).version + 1))
    assert len(written) == 2  # (the two saves)
    first, second = (region.ledger.mapper.to_domain_event(n).timestamp.timestamp()
                     for n in region.ledger.recorder.select_notifications(
                         start=0, limit=1000, topics=(_NOTE_TOPIC,))[-2:])
    now = time.time()  # the pass reads the notes older than (first + second) / 2, however slow
    monkeypatch.setattr(scheduler_module, "time", SimpleNamespace(time=lambda: now))
    recover(server, grace=now - (first + second) / 2)  # (a pass between the saves:
    assert records(server, lost.headers["x-amzn-RequestId"]) == []  # the request's notes wait)
    recover(server)
    (record,) = records(server, lost.headers["x-amzn-RequestId"])
    assert record["additionalEventData"]["ledgerEvents"] == [
        {"aggregateId": key_id, "version": version} for version in written]
