"""Every KMS request leaves its CloudTrail-shaped record in the audit store before its answer
leaves: successes, client errors, access denied and authentication failures alike."""

from __future__ import annotations

import json
import sqlite3

import boto3
import psycopg
import pytest
from botocore.exceptions import ClientError


def _record(server, request_id: str) -> dict:
    """The stored record of a request, read straight from the store (no API in between)."""
    if server.store is None:
        db = sqlite3.connect(server.data_dir / "regions" / "us-east-1" / "audit.db")
        try:
            rows = db.execute("SELECT record FROM keyledger_audit WHERE request_id = ?",
                              (request_id,)).fetchall()
        finally:
            db.close()
    else:
        with psycopg.connect(server.store) as conn:
            rows = conn.execute("SELECT record FROM keyledger_us_east_1.keyledger_audit "
                                "WHERE request_id = %s", (request_id,)).fetchall()
    assert len(rows) == 1, rows
    return json.loads(bytes(rows[0][0]))


def test_a_successful_encrypt_is_recorded_before_its_answer(store_server, e2e):
    kms = store_server.kms()
    key = kms.create_key(Description="audited")["KeyMetadata"]
    answer = kms.encrypt(KeyId=key["KeyId"], Plaintext=b"secret-plaintext",
                         EncryptionContext={"app": "audit"})
    record = _record(store_server, answer["ResponseMetadata"]["RequestId"])
    assert record["eventName"] == "Encrypt"
    assert record["userIdentity"] == {"type": "Root", "principalId": e2e.ACCOUNT_ID,
                                      "arn": f"arn:aws:iam::{e2e.ACCOUNT_ID}:root",
                                      "accountId": e2e.ACCOUNT_ID,
                                      "accessKeyId": e2e.ROOT_ACCESS_KEY_ID}
    assert record["requestParameters"] == {"keyId": key["KeyId"],
                                           "encryptionContext": {"app": "audit"},
                                           "encryptionAlgorithm": "SYMMETRIC_DEFAULT"}
    assert record["responseElements"] is None
    assert record["additionalEventData"] == {"keyMaterialId": key["CurrentKeyMaterialId"]}
    assert record["resources"] == [{"accountId": e2e.ACCOUNT_ID, "type": "AWS::KMS::Key",
                                    "ARN": key["Arn"]}]
    assert (record["readOnly"], record["eventType"], record["eventSource"]) == (
        True, "AwsApiCall", "kms.amazonaws.com")
    stored = json.dumps(record)
    for secret in ("secret-plaintext", e2e.b64(b"secret-plaintext"),
                   e2e.b64(answer["CiphertextBlob"])):
        assert secret not in stored


def test_a_management_request_names_the_events_it_wrote(store_server):
    kms = store_server.kms()
    key_id = kms.create_key()["KeyMetadata"]["KeyId"]
    answer = kms.update_key_description(KeyId=key_id, Description="second")
    record = _record(store_server, answer["ResponseMetadata"]["RequestId"])
    assert record["additionalEventData"] == {"ledgerEvents": [{"aggregateId": key_id, "version": 2}]}
    assert record["readOnly"] is False
    assert record["requestParameters"] == {"keyId": key_id, "description": "second"}


def test_a_client_error_is_recorded_with_its_code_and_message(store_server):
    kms = store_server.kms()
    missing = "00000000-0000-0000-0000-000000000000"
    with pytest.raises(ClientError) as failure:
        kms.describe_key(KeyId=missing)
    record = _record(store_server, failure.value.response["ResponseMetadata"]["RequestId"])
    assert (record["errorCode"], record["errorMessage"]) == (
        "NotFoundException", f"Key 'arn:aws:kms:us-east-1:111122223333:key/{missing}' does not exist")
    assert record["resources"] == []


def test_an_authentication_failure_is_recorded_without_an_identity(store_server):
    stranger = boto3.client("kms", endpoint_url=store_server.url, region_name="us-east-1",
                            aws_access_key_id="AKIASTRANGER0000000", aws_secret_access_key="x")
    with pytest.raises(ClientError) as failure:
        stranger.list_keys()
    record = _record(store_server, failure.value.response["ResponseMetadata"]["RequestId"])
    assert record["userIdentity"] == {"type": "Unknown", "accessKeyId": "AKIASTRANGER0000000"}
    assert (record["eventName"], record["errorCode"]) == ("ListKeys", "UnrecognizedClientException")


def _service_records(server, event_name: str) -> list[dict]:
    db = sqlite3.connect(server.data_dir / "regions" / "us-east-1" / "audit.db")
    try:
        rows = db.execute("SELECT record FROM keyledger_audit WHERE event_name = ? "
                          "ORDER BY position", (event_name,)).fetchall()
    finally:
        db.close()
    return [json.loads(row[0]) for row in rows]


def test_changes_kms_makes_on_its_own_are_recorded_as_service_events(server_factory, e2e):
    server = server_factory("audit-clock")
    kms = server.kms()
    rotating = kms.create_key()["KeyMetadata"]
    kms.enable_key_rotation(KeyId=rotating["KeyId"], RotationPeriodInDays=90)
    doomed = kms.create_key()["KeyMetadata"]
    kms.schedule_key_deletion(KeyId=doomed["KeyId"], PendingWindowInDays=7)
    server.advance_clock(91 * 86400)
    (deleted,) = _service_records(server, "DeleteKey")
    assert deleted["userIdentity"] == {"accountId": e2e.ACCOUNT_ID, "invokedBy": "AWS Internal"}
    assert (deleted["eventType"], deleted["sourceIPAddress"], deleted["responseElements"]) == (
        "AwsServiceEvent", "AWS Internal", {"keyId": doomed["Arn"]})
    assert "requestID" not in deleted
    assert [e["aggregateId"] for e in deleted["additionalEventData"]["ledgerEvents"]][0] == doomed["KeyId"]
    (rotated,) = _service_records(server, "RotateKey")
    now_current = kms.describe_key(KeyId=rotating["KeyId"])["KeyMetadata"]["CurrentKeyMaterialId"]
    assert rotated["serviceEventDetails"] == {
        "rotationType": "AUTOMATIC", "keyOrigin": "AWS_KMS", "keyId": rotating["KeyId"],
        "previousKeyMaterialId": rotating["CurrentKeyMaterialId"],
        "currentKeyMaterialId": now_current,
    }
