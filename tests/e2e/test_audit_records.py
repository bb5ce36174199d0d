"""Every KMS request leaves its CloudTrail-shaped record in the audit store before its answer
leaves: successes, client errors, access denied and authentication failures alike."""

from __future__ import annotations

import json
import sqlite3
from datetime import UTC, datetime

import boto3
import httpx
import pytest
from botocore.exceptions import ClientError

from tests.e2e.conftest import JSON_CONTENT_TYPE, raw_kms_call, sign, stored_audit_record


def test_a_successful_encrypt_is_recorded_before_its_answer(store_server, e2e):
    kms = store_server.kms()
    key = kms.create_key(Description="audited")["KeyMetadata"]
    answer = kms.encrypt(KeyId=key["KeyId"], Plaintext=b"secret-plaintext",
                         EncryptionContext={"app": "audit"})
    record = stored_audit_record(store_server, answer["ResponseMetadata"]["RequestId"])
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


def test_an_encrypt_naming_its_algorithm_records_its_material(store_server):
    """ct-encrypt: additionalEventData.keyMaterialId, whether or not the request named
    SYMMETRIC_DEFAULT."""
    kms = store_server.kms()
    key = kms.create_key()["KeyMetadata"]
    answer = kms.encrypt(KeyId=key["Arn"], Plaintext=b"x", EncryptionAlgorithm="SYMMETRIC_DEFAULT")
    record = stored_audit_record(store_server, answer["ResponseMetadata"]["RequestId"])
    assert (record["requestParameters"], record["additionalEventData"]) == (
        {"keyId": key["Arn"], "encryptionAlgorithm": "SYMMETRIC_DEFAULT"},
        {"keyMaterialId": key["CurrentKeyMaterialId"]})


def test_a_request_over_tls_records_the_host_it_named(server_factory):
    """tlsDetails.clientProvidedHostHeader (CloudTrail record contents); here TLS ends at a
    proxy on loopback that says so (X-Forwarded-Proto), trusted as the deployment says
    (FORWARDED_ALLOW_IPS). The TLS version and cipher suite are not known to the server: left
    out, not made up."""
    store_server = server_factory("tls", env={"FORWARDED_ALLOW_IPS": "127.0.0.1"})
    kms = store_server.kms()

    def over_tls(request, **_):
        request.headers["X-Forwarded-Proto"] = "https"

    kms.meta.events.register("before-sign.kms.ListKeys", over_tls)
    answer = kms.list_keys(Limit=1)
    record = stored_audit_record(store_server, answer["ResponseMetadata"]["RequestId"])
    assert record["tlsDetails"] == {"clientProvidedHostHeader": store_server.url.split("://")[1]}
    plain = store_server.kms().list_keys(Limit=1)
    assert "tlsDetails" not in stored_audit_record(store_server, plain["ResponseMetadata"]["RequestId"])


def test_a_management_request_names_the_events_it_wrote(store_server):
    kms = store_server.kms()
    key_id = kms.create_key()["KeyMetadata"]["KeyId"]
    answer = kms.update_key_description(KeyId=key_id, Description="second")
    record = stored_audit_record(store_server, answer["ResponseMetadata"]["RequestId"])
    assert record["additionalEventData"] == {"ledgerEvents": [{"aggregateId": key_id, "version": 2}]}
    assert record["readOnly"] is False
    assert record["requestParameters"] == {"keyId": key_id, "description": "second"}


def test_a_client_error_is_recorded_with_its_code_and_message(store_server):
    kms = store_server.kms()
    missing = "00000000-0000-0000-0000-000000000000"
    with pytest.raises(ClientError) as failure:
        kms.describe_key(KeyId=missing)
    record = stored_audit_record(store_server, failure.value.response["ResponseMetadata"]["RequestId"])
    assert (record["errorCode"], record["errorMessage"]) == (
        "NotFoundException", f"Key 'arn:aws:kms:us-east-1:111122223333:key/{missing}' does not exist")
    assert record["resources"] == []


def test_a_decrypt_refused_before_its_key_is_used_names_the_key_it_named(store_server):
    """IncorrectKeyException and InvalidCiphertextException are refused before the key is
    used, and their records still name the key the request named: a key's audit lists them."""
    kms = store_server.kms()
    key = kms.create_key()["KeyMetadata"]
    other = kms.create_key()["KeyMetadata"]
    blob = kms.encrypt(KeyId=key["KeyId"], Plaintext=b"x")["CiphertextBlob"]
    for named, ciphertext, code in ((other, blob, "IncorrectKeyException"),
                                    (key, b"\0" * 40, "InvalidCiphertextException")):
        with pytest.raises(ClientError) as failure:
            kms.decrypt(KeyId=named["KeyId"], CiphertextBlob=ciphertext)
        request_id = failure.value.response["ResponseMetadata"]["RequestId"]
        record = stored_audit_record(store_server, request_id)
        assert (record["errorCode"], [r["ARN"] for r in record["resources"]]) == (
            code, [named["Arn"]])
        found = store_server.ledger_get(f"/ledger/v1/audit?key_id={named['KeyId']}&errors_only=true")
        assert [r["requestID"] for r in found.json()["Records"]][:1] == [request_id]


def test_a_create_grant_with_a_malformed_grant_token_names_the_key_it_named(store_server, e2e):
    """Its grant tokens are read when the key is authorized, as Encrypt's are: the refusal's
    record names the key, and the key's audit lists it."""
    kms = store_server.kms()
    key = kms.create_key()["KeyMetadata"]
    with pytest.raises(ClientError) as failure:
        kms.create_grant(KeyId=key["KeyId"], GranteePrincipal=f"arn:aws:iam::{e2e.ACCOUNT_ID}:root",
                         Operations=["Decrypt"], GrantTokens=["not-a-grant-token"])
    assert failure.value.response["Error"]["Code"] == "InvalidGrantTokenException"
    record = stored_audit_record(store_server, failure.value.response["ResponseMetadata"][
        "RequestId"])
    assert [r["ARN"] for r in record["resources"]] == [key["Arn"]]


def test_a_request_tried_again_after_catching_up_names_its_key_once(store_server, e2e):
    """A refused Encrypt right after CreateKey is tried once more after the server catches up
    with the ledger (the policy may have changed in another process): its record names the key
    once, not once per try."""
    kms = store_server.kms()
    root = f"arn:aws:iam::{e2e.ACCOUNT_ID}:root"
    policy = {"Version": "2012-10-17", "Statement": [{
        "Effect": "Allow", "Principal": {"AWS": root}, "Resource": "*",
        "Action": ["kms:DescribeKey", "kms:GetKeyPolicy", "kms:PutKeyPolicy",
                   "kms:ScheduleKeyDeletion"]}]}
    for _ in range(3):
        key = kms.create_key(Policy=json.dumps(policy))["KeyMetadata"]
        with pytest.raises(ClientError) as failure:
            kms.encrypt(KeyId=key["KeyId"], Plaintext=b"x")
        assert failure.value.response["Error"]["Code"] == "AccessDeniedException"
        record = stored_audit_record(store_server, failure.value.response["ResponseMetadata"]["RequestId"])
        assert record["resources"] == [{"accountId": e2e.ACCOUNT_ID, "type": "AWS::KMS::Key",
                                        "ARN": key["Arn"]}]


def test_retire_grant_names_its_grant_and_key(store_server, e2e):
    """AWS's RetireGrant entry (developerguide/ct-retire-grant): requestParameters null when a
    token named the grant, additionalEventData {grantId} (keyledger adds its ledgerEvents), the
    key in resources."""
    kms = store_server.kms()
    key = kms.create_key()["KeyMetadata"]
    root = f"arn:aws:iam::{e2e.ACCOUNT_ID}:root"
    resource = [{"accountId": e2e.ACCOUNT_ID, "type": "AWS::KMS::Key", "ARN": key["Arn"]}]
    by_token = kms.create_grant(KeyId=key["KeyId"], GranteePrincipal=root,
                                RetiringPrincipal=root, Operations=["Decrypt"])
    answer = kms.retire_grant(GrantToken=by_token["GrantToken"])
    record = stored_audit_record(store_server, answer["ResponseMetadata"]["RequestId"])
    assert (record["requestParameters"], record["additionalEventData"], record["resources"]) == (
        None, {"grantId": by_token["GrantId"],
               "ledgerEvents": [{"aggregateId": key["KeyId"], "version": 3}]}, resource)
    by_id = kms.create_grant(KeyId=key["KeyId"], GranteePrincipal=root, RetiringPrincipal=root,
                             Operations=["Decrypt"])
    answer = kms.retire_grant(KeyId=key["Arn"], GrantId=by_id["GrantId"])
    record = stored_audit_record(store_server, answer["ResponseMetadata"]["RequestId"])
    assert (record["requestParameters"], record["additionalEventData"], record["resources"]) == (
        {"keyId": key["Arn"], "grantId": by_id["GrantId"]},
        {"grantId": by_id["GrantId"], "ledgerEvents": [{"aggregateId": key["KeyId"], "version": 5}]},
        resource)


def test_alias_records_name_the_alias_and_its_key(store_server, e2e):
    """AWS's entries (ct-createalias, ct-updatealias, ct-deletealias): the alias and the key in
    resources (each in AWS's order), the key ARN as responseElements.keyId; and a key's
    audit query finds them."""
    kms = store_server.kms()
    first, second = (kms.create_key()["KeyMetadata"] for _ in range(2))
    name = f"alias/audited-{first['KeyId'][:8]}"
    alias = f"arn:aws:kms:us-east-1:{e2e.ACCOUNT_ID}:alias/{name[6:]}"

    def entry(arn: str) -> dict:
        return {"accountId": e2e.ACCOUNT_ID, "type": "AWS::KMS::Key", "ARN": arn}

    def logged(answer) -> tuple:
        record = stored_audit_record(store_server, answer["ResponseMetadata"]["RequestId"])
        return record["resources"], record["responseElements"]

    created = kms.create_alias(AliasName=name, TargetKeyId=first["KeyId"])
    assert logged(created) == ([entry(first["Arn"]), entry(alias)], {"keyId": first["Arn"]})
    updated = kms.update_alias(AliasName=name, TargetKeyId=second["KeyId"])
    assert logged(updated) == ([entry(alias), entry(second["Arn"])], {"keyId": second["Arn"]})
    deleted = kms.delete_alias(AliasName=name)
    assert logged(deleted) == ([entry(alias), entry(second["Arn"])], {"keyId": second["Arn"]})
    enabled = kms.enable_key(KeyId=first["KeyId"])
    assert logged(enabled) == ([entry(first["Arn"])], {"keyId": first["Arn"]})
    found = store_server.ledger_get(f"/ledger/v1/audit?key_id={second['KeyId']}&limit=10")
    assert [r["eventName"] for r in found.json()["Records"]] == [
        "DeleteAlias", "UpdateAlias", "CreateKey"]


def test_a_keys_audit_finds_re_encryptions_to_it(store_server):
    """A ReEncrypt names its source key first and its destination second (ct-reencrypt): the
    destination's audit finds the record too, once."""
    kms = store_server.kms()
    source, destination = (kms.create_key()["KeyMetadata"] for _ in range(2))
    blob = kms.encrypt(KeyId=source["KeyId"], Plaintext=b"moved")["CiphertextBlob"]
    moved = kms.re_encrypt(CiphertextBlob=blob, DestinationKeyId=destination["Arn"])
    again = kms.re_encrypt(CiphertextBlob=moved["CiphertextBlob"],
                           DestinationKeyId=destination["KeyId"])
    request_ids = [answer["ResponseMetadata"]["RequestId"] for answer in (again, moved)]

    def audit(key: dict) -> list[tuple[str, str]]:
        found = store_server.ledger_get(f"/ledger/v1/audit?key_id={key['KeyId']}&limit=10")
        return [(r["eventName"], r["requestID"]) for r in found.json()["Records"]]

    assert audit(destination)[:2] == [("ReEncrypt", request_ids[0]), ("ReEncrypt", request_ids[1])]
    assert [name for name, _ in audit(destination)] == ["ReEncrypt", "ReEncrypt", "CreateKey"]
    assert [name for name, _ in audit(source)] == ["ReEncrypt", "Encrypt", "CreateKey"]


def test_an_authentication_failure_is_recorded_without_an_identity(store_server):
    stranger = boto3.client("kms", endpoint_url=store_server.url, region_name="us-east-1",
                            aws_access_key_id="AKIASTRANGER0000000", aws_secret_access_key="x")
    with pytest.raises(ClientError) as failure:
        stranger.list_keys()
    record = stored_audit_record(store_server, failure.value.response["ResponseMetadata"]["RequestId"])
    assert record["userIdentity"] == {"type": "Unknown", "accessKeyId": "AKIASTRANGER0000000"}
    assert (record["eventName"], record["errorCode"]) == ("ListKeys", "UnrecognizedClientException")


def test_an_authentication_failure_is_recorded_in_the_region_it_was_made_to(store_server):
    """awsRegion is the Region the request was made to: its credential scope's, where that
    Region's store is open (a request no one authenticated opens none)."""
    store_server.kms(region="us-west-2").list_keys()  # us-west-2's store is open
    stranger = boto3.client("kms", endpoint_url=store_server.url, region_name="us-west-2",
                            aws_access_key_id="AKIASTRANGER0000000", aws_secret_access_key="x")
    with pytest.raises(ClientError) as failure:
        stranger.list_keys()
    request_id = failure.value.response["ResponseMetadata"]["RequestId"]
    record = stored_audit_record(store_server, request_id, region="us-west-2")
    assert (record["awsRegion"], record["errorCode"]) == ("us-west-2", "UnrecognizedClientException")


def test_a_validation_error_quoting_grant_tokens_is_recorded_without_them(store_server):
    """The answer quotes the request's values as AWS's does; grant tokens are not shown in the
    record (audit_records.is_secret), their values left out of its errorMessage."""
    key_id = store_server.kms().create_key()["KeyMetadata"]["KeyId"]
    tokens = [f"GRANTTOKENSECRET{i:02d}" for i in range(11)]
    answer = raw_kms_call(store_server.url, "Encrypt",
                          {"KeyId": key_id, "Plaintext": "eA==", "GrantTokens": tokens})
    rule = "failed to satisfy constraint: Member must have length less than or equal to 10"
    assert (answer.status_code, answer.json()["message"]) == (400, (
        f"1 validation error detected: Value '[{', '.join(tokens)}]' at 'grantTokens' {rule}"))
    record = stored_audit_record(store_server, answer.headers["x-amzn-RequestId"])
    assert (record["errorCode"], record["errorMessage"]) == (
        "ValidationException", f"1 validation error detected: Value at 'grantTokens' {rule}")
    assert "GRANTTOKENSECRET" not in json.dumps(record)


def test_a_signature_error_quoting_the_authorization_header_is_recorded_without_its_signature(
        store_server):
    """AWS's message repeats the Authorization header; a reader of the audit could replay its
    signature (the body of a ListKeys is guessable) while it is valid: the record has it not."""
    url = store_server.url + "/"
    headers = sign(url, {"Content-Type": JSON_CONTENT_TYPE,
                         "X-Amz-Target": "TrentService.ListKeys"}, b"{}")
    signature = headers["Authorization"].rsplit("Signature=", 1)[1]
    no_date = {k: v for k, v in headers.items() if k != "X-Amz-Date"}
    lower_case = {**headers, "Authorization": headers["Authorization"].replace(
        "Signature=", "signature=")}  # (then no 'Signature' parameter: the header is repeated)
    in_credential = {**headers, "Authorization": headers["Authorization"].replace(
        "/aws4_request,", f"/aws4_request/{signature},")}  # (the credential is repeated)
    for sent, spelt in ((no_date, "Signature="), (lower_case, "signature="),
                        (in_credential, "aws4_request/")):
        answer = httpx.post(url, content=b"{}", headers=sent, timeout=10)
        assert (answer.status_code, answer.json()["__type"]) == (
            400, "IncompleteSignatureException")
        assert f"{spelt}{signature}" in answer.json()["message"]
        record = stored_audit_record(store_server, answer.headers["x-amzn-RequestId"])
        assert record["errorMessage"] == answer.json()["message"].replace(
            f"{spelt}{signature}", f"{spelt}(not logged)")
        assert signature not in json.dumps(record)


@pytest.mark.parametrize(("sent", "kept"), [
    ("Basic ZWxhc3RpYzpzZWNyZXQ=", "Authorization=Basic (not logged)"),
    ("Bearer eyJhbGciOiJIUzI1NiJ9.e30.c2lnbmF0dXJl", "header: 'Bearer (not logged)'."),
])
def test_a_credential_of_another_scheme_is_answered_as_aws_does_and_recorded_without_it(
        store_server, sent, kept):
    """A client configured for another service sends its own credential: AWS's answer repeats
    it; the audit record, which many may read, keeps the scheme only."""
    answer = httpx.post(store_server.url + "/", content=b"{}", timeout=10, headers={
        "Content-Type": JSON_CONTENT_TYPE, "X-Amz-Target": "TrentService.ListKeys",
        "X-Amz-Date": "20261207T000000Z", "Authorization": sent})
    assert (answer.status_code, answer.json()["__type"]) == (400, "IncompleteSignatureException")
    token = sent.split(" ")[1]
    assert token in answer.json()["message"]
    record = stored_audit_record(store_server, answer.headers["x-amzn-RequestId"])
    assert record["errorMessage"].endswith(kept)
    assert record["errorMessage"] == answer.json()["message"].replace(token, "(not logged)")
    assert token not in json.dumps(record)


def test_a_ledger_request_is_recorded_without_a_query_strings_signature_or_session_token(
        store_server):
    answer = store_server.ledger_get("/ledger/v1/audit?limit=1&X-Amz-Security-Token=SESSIONSECRET"
                                     "&X-Amz-Signature=0123456789abcdef")
    record = stored_audit_record(store_server, answer.headers["x-amzn-RequestId"])
    assert record["requestParameters"] == {"limit": "1"}, record


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


def test_the_audit_api_pages_newest_first_and_filters(store_server, e2e):
    kms = store_server.kms()
    key_id = kms.create_key()["KeyMetadata"]["KeyId"]
    ids = [kms.encrypt(KeyId=key_id, Plaintext=b"x")["ResponseMetadata"]["RequestId"]
           for _ in range(3)]
    with pytest.raises(ClientError):  # not pending deletion: KMSInvalidStateException
        kms.cancel_key_deletion(KeyId=key_id)
    first = store_server.ledger_get(f"/ledger/v1/audit?key_id={key_id}&event_name=Encrypt&limit=2")
    assert first.status_code == 200, first.text
    page = first.json()
    assert [r["requestID"] for r in page["Records"]] == [ids[2], ids[1]]
    second = store_server.ledger_get(f"/ledger/v1/audit?key_id={key_id}&event_name=Encrypt"
                                     f"&limit=2&next_token={page['NextToken']}").json()
    assert [r["requestID"] for r in second["Records"]] == [ids[0]] and "NextToken" not in second
    errors = store_server.ledger_get(f"/ledger/v1/audit?key_id={key_id}&errors_only=true").json()
    assert [(r["eventName"], r["errorCode"]) for r in errors["Records"]] == [
        ("CancelKeyDeletion", "KMSInvalidStateException")]
    future = store_server.ledger_get("/ledger/v1/audit?start=2999-01-01T00:00:00Z").json()
    assert future == {"Records": []}
    bad = store_server.ledger_get("/ledger/v1/audit?start=yesterday")
    assert (bad.status_code, bad.json()) == (
        400, {"detail": "start must be ISO 8601 (2024-05-01T09:14:00Z) or epoch seconds, not 'yesterday'."})
    # the ledger API requests themselves are audited
    reads = store_server.ledger_get("/ledger/v1/audit?event_name=ReadAudit&limit=1").json()
    (read,) = reads["Records"]
    assert (read["eventSource"], read["eventName"], read["userIdentity"]["type"]) == (
        "keyledger.ledger", "ReadAudit", "Root")


def test_reading_the_audit_needs_keyledger_read_audit(server_factory, e2e):
    from botocore.credentials import Credentials

    identities = e2e.root_identities()
    identities["accounts"][e2e.ACCOUNT_ID]["users"] = {
        "bob": {"access_keys": [{"access_key_id": "AKIABOBAUDIT0000001", "secret_access_key": "b"}]},
        "auditor": {"access_keys": [{"access_key_id": "AKIAAUDITOR00000001", "secret_access_key": "a"}],
                    "policies": {"read-audit": {"Version": "2012-10-17", "Statement": [
                        {"Effect": "Allow", "Action": "keyledger:ReadAudit", "Resource": "*"}]}}},
    }
    server = server_factory("audit-authz", identities=identities)
    bob = server.ledger_get("/ledger/v1/audit", credentials=Credentials("AKIABOBAUDIT0000001", "b"))
    assert (bob.status_code, bob.json()["detail"]) == (403, (
        f"AccessDeniedException: User: arn:aws:iam::{e2e.ACCOUNT_ID}:user/bob is not authorized to perform: "
        "keyledger:ReadAudit on resource: * because no identity-based policy allows the "
        "keyledger:ReadAudit action"))
    auditor = server.ledger_get("/ledger/v1/audit?event_name=ReadAudit",
                                credentials=Credentials("AKIAAUDITOR00000001", "a"))
    assert auditor.status_code == 200
    assert [r["errorCode"] for r in auditor.json()["Records"]] == ["AccessDeniedException"]


def test_the_read_commands_leave_a_data_dir_copied_from_a_running_server_as_it_was(
        server_factory, e2e, tmp_path):
    """Evidence copied while the server runs (each SQLite file with its write-ahead log):
    audit, history, who-can and regions read it, and every file keeps its bytes: no log is
    merged, no file or table is created. (The -shm files are SQLite's shared-memory index,
    which readers take their locks in; their bytes are not content.)"""
    import shutil
    import subprocess
    import sys

    server = server_factory("read-a-copy")
    kms = server.kms()
    key_id = kms.create_key()["KeyMetadata"]["KeyId"]
    kms.create_alias(AliasName="alias/evidence", TargetKeyId=key_id)
    kms.encrypt(KeyId=key_id, Plaintext=b"x")
    copy = tmp_path / "copy"
    shutil.copytree(server.data_dir, copy)
    server.stop()

    def files() -> dict[str, bytes | None]:
        return {str(p.relative_to(copy)): None if p.name.endswith("-shm") else p.read_bytes()
                for p in sorted(copy.rglob("*")) if p.is_file()}

    before = files()
    assert any(name.endswith("ledger.db-wal") and data for name, data in before.items())
    for args in (["audit"], ["audit", "--key", key_id, "--json"], ["history", key_id],
                 ["history", key_id, "--at", datetime.now(UTC).isoformat()],
                 ["who-can", "kms:Decrypt", key_id], ["regions"]):
        done = subprocess.run([sys.executable, "-m", "api", *args, "--data-dir", str(copy)],
                              cwd=e2e.PROJECT_ROOT, capture_output=True, text=True, timeout=60,
                              env=server.child_env())
        assert done.returncode == 0, (args, done.stderr)
        assert files() == before, args


def test_the_audit_cli_reads_and_exports_offline(server_factory, e2e, tmp_path):
    import gzip
    import subprocess
    import sys

    server = server_factory("audit-cli")
    kms = server.kms()
    key_id = kms.create_key()["KeyMetadata"]["KeyId"]
    request_id = kms.encrypt(KeyId=key_id, Plaintext=b"x")["ResponseMetadata"]["RequestId"]
    server.stop()
    base = [sys.executable, "-m", "api", "audit", "--data-dir", str(server.data_dir)]
    lines = subprocess.run([*base, "--key", key_id, "--event-name", "Encrypt", "--json"],
                           cwd=e2e.PROJECT_ROOT, capture_output=True, text=True, timeout=60,
                           env=server.child_env())
    assert lines.returncode == 0, lines.stderr
    assert [json.loads(line)["requestID"] for line in lines.stdout.splitlines()] == [request_id]
    out = tmp_path / "export"
    export = subprocess.run([*base, "export", "--out", str(out)], cwd=e2e.PROJECT_ROOT,
                            capture_output=True, text=True, timeout=60, env=server.child_env())
    assert export.returncode == 0, export.stderr
    files = sorted(out.glob(f"AWSLogs/{e2e.ACCOUNT_ID}/CloudTrail/us-east-1/*/*/*/*.json.gz"))
    assert files and all(f.name.startswith(f"{e2e.ACCOUNT_ID}_CloudTrail_us-east-1_") for f in files)
    exported = [r for f in files for r in json.loads(gzip.decompress(f.read_bytes()))["Records"]]
    assert request_id in [r["requestID"] for r in exported if r["eventName"] == "Encrypt"]
    assert export.stdout.startswith(f"wrote {len(exported)} records in {len(files)} files")
