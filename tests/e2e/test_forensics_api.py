"""Forensics over HTTP and the CLI, against the real server on SQLite and PostgreSQL:
``GET /ledger/v1/keys/{id}/state|access|materials`` (signed GETs, authorized by
``keyledger:ReadHistory``), GetKeyLastUsage through boto3, and ``keyledger history --at`` /
``keyledger who-can`` offline on the server's store.

Instants are the ledger's own event timestamps, read from the events route; audit records
are the ones the server writes for each request.
"""

from __future__ import annotations

import json
import subprocess
import sys
from datetime import datetime, timedelta
from urllib.parse import urlencode

import pytest
from botocore.exceptions import ClientError

from tests.e2e import identities_fixture as ids
from tests.e2e.conftest import PROJECT_ROOT, KeyledgerServer, stored_audit_record
from tests.e2e.identities_fixture import (
    ACCOUNT,
    ALICE_ARN,
    CAROL_ARN,
    DEPLOYER_ROLE_ARN,
    NO_IDENTITY,
    OTHER_ACCOUNT,
    REGION,
    ROOT_ARN,
    denied,
)

pytestmark = pytest.mark.e2e

OTHER_ROOT_ARN = f"arn:aws:iam::{OTHER_ACCOUNT}:root"
DEFAULT_STATEMENT = {"Sid": "Enable IAM User Permissions", "Effect": "Allow",
                     "Principal": {"AWS": ROOT_ARN}, "Action": "kms:*", "Resource": "*"}
ROOT_ROUTE = {"Principal": ROOT_ARN, "Via": "key-policy",
              "Statement": "Enable IAM User Permissions", "Conditions": None}
ALICE_ROUTE = {"Principal": ALICE_ARN, "Via": "identity-policy", "PolicyName": "AliceUsesKeys",
               "Statement": "UseKeys", "Conditions": None,
               "KeyPolicyStatement": "Enable IAM User Permissions", "KeyPolicyConditions": None}


@pytest.fixture(scope="module")
def server(store, server_factory):
    srv = server_factory("forensics", identities=ids.identities(), store=store)
    yield srv
    srv.cleanup()


@pytest.fixture(scope="module")
def kms(server):
    return server.kms()


def _get(server: KeyledgerServer, key_id: str, route: str, credentials=ids.ROOT, **query):
    path = f"/ledger/v1/keys/{key_id}/{route}"
    if query:
        path += "?" + urlencode(query)
    response = server.ledger_get(path, credentials=credentials)
    return response.status_code, response.json()


def _iso(value: str) -> datetime:
    return datetime.fromisoformat(value)


def _epoch(value: datetime) -> str:
    """Exact epoch seconds (microseconds as six decimals)."""
    seconds = value - datetime(1970, 1, 1, tzinfo=value.tzinfo)
    return f"{seconds.days * 86400 + seconds.seconds}.{seconds.microseconds:06d}"


def _stamps(server: KeyledgerServer, key_id: str) -> list[datetime]:
    return [_iso(e["Timestamp"]) for e in server.events(key_id)["Events"]]


def _cli(server: KeyledgerServer, *args: str) -> subprocess.CompletedProcess:
    cmd = [sys.executable, "-m", "api", *args, "--data-dir", str(server.data_dir)]
    if server.store:
        cmd += ["--store", server.store]
    return subprocess.run(cmd, cwd=PROJECT_ROOT, capture_output=True, text=True, timeout=120,
                          env=server.child_env())


# -- time travel ----------------------------------------------------------------------------------


def test_state_at_an_instant_over_http_and_the_cli(server, kms):
    key = kms.create_key(Description="forensic")["KeyMetadata"]
    key_id = key["KeyId"]
    kms.tag_resource(KeyId=key_id, Tags=[{"TagKey": "team", "TagValue": "blue"}])
    kms.create_alias(AliasName=f"alias/forensic-{key_id[:8]}", TargetKeyId=key_id)
    kms.update_key_description(KeyId=key_id, Description="forensic v2")
    v1, v2, v3 = _stamps(server, key_id)
    created_at = server.events(key_id)["Events"][0]["Details"]["created_at"]

    status, state = _get(server, key_id, "state", at=_epoch(v1))
    assert status == 200
    assert state == {
        "KeyMetadata": {
            "AWSAccountId": ACCOUNT, "KeyId": key_id, "Arn": key["Arn"], "CreationDate": created_at,
            "Enabled": True, "Description": "forensic", "KeyUsage": "ENCRYPT_DECRYPT",
            "KeyState": "Enabled", "Origin": "AWS_KMS", "KeyManager": "CUSTOMER",
            "CustomerMasterKeySpec": "SYMMETRIC_DEFAULT", "KeySpec": "SYMMETRIC_DEFAULT",
            "EncryptionAlgorithms": ["SYMMETRIC_DEFAULT"], "MultiRegion": False,
            "CurrentKeyMaterialId": key["CurrentKeyMaterialId"],
        },
        "Policy": kms.get_key_policy(KeyId=key_id)["Policy"],
        "Tags": [],
        "Aliases": [],
        "Grants": [],
        "KeyRotationStatus": {"KeyRotationEnabled": False, "KeyId": key["Arn"]},
        "Version": 1,
        "Deleted": False,
    }
    # ISO 8601 works as well as epoch seconds; no instant: now
    status, at_v2 = _get(server, key_id, "state", at=v2.isoformat(), region=REGION)
    assert (status, at_v2["Version"], at_v2["Tags"]) == (
        200, 2, [{"TagKey": "team", "TagValue": "blue"}])
    status, now = _get(server, key_id, "state")
    assert (status, now["Version"], now["KeyMetadata"]["Description"],
            [a["AliasName"] for a in now["Aliases"]]) == (
        200, 3, "forensic v2", [f"alias/forensic-{key_id[:8]}"])
    # the key exists from its CreationDate (DescribeKey's, the CreateKey record's), which is
    # before its first event's commit; before that it did not exist; a malformed instant
    creation = datetime.fromisoformat(created_at)
    assert creation <= v1
    assert _get(server, key_id, "state", at=_epoch(creation)) == (200, state)
    before = creation - timedelta(microseconds=1)
    assert _get(server, key_id, "state", at=_epoch(before)) == (404, {
        "detail": f"Key '{key_id}' did not exist in {REGION} at {before.isoformat()}"})
    assert _get(server, key_id, "state", at="yesterday") == (400, {
        "detail": "'yesterday' is not a time: use ISO 8601 (2024-05-01T09:14:00Z) or epoch seconds."})
    status, answer = _get(server, key_id, "access", action="kms:Decrypt", at="9999-12-31T23:59:59Z")
    assert (status, answer["detail"].split(": the ledger")[0]) == (
        400, "'9999-12-31T23:59:59Z' is in the future")
    # keyledger:ReadHistory decides, as for the events route
    resource = key["Arn"]
    assert _get(server, key_id, "state", ids.ALICE) == (403, {"detail": denied(
        ALICE_ARN, "keyledger:ReadHistory", resource, NO_IDENTITY)})
    assert _get(server, key_id, "state", ids.AUDITOR)[1]["Version"] == 3
    # another account's root needs no identity policy, and finds no such key in its account
    assert _get(server, key_id, "state", ids.OTHER_ROOT) == (404, {
        "detail": f"Key '{key_id}' does not exist in {REGION}"})

    # the CLI, offline on the same store
    proc = _cli(server, "history", key_id, "--at", _epoch(v2), "--json")
    assert proc.returncode == 0, proc.stderr
    printed = json.loads(proc.stdout)
    assert (printed["Version"], printed["Tags"], printed["KeyMetadata"]["Description"],
            printed["Aliases"]) == (2, [{"TagKey": "team", "TagValue": "blue"}], "forensic", [])
    table = _cli(server, "history", key_id, "--at", v3.isoformat())
    assert table.returncode == 0, table.stderr
    assert table.stdout.splitlines()[0] == f"{key_id} in {REGION} at {v3.isoformat()} (version 3)"
    missing = _cli(server, "history", key_id, "--at", _epoch(before))
    assert (missing.returncode, missing.stderr.strip()) == (
        1, f"NotFoundException: Key '{key_id}' did not exist in {REGION} at {before.isoformat()}")


# -- access review --------------------------------------------------------------------------------


def test_who_could_decrypt_then_over_http_and_the_cli(server, kms):
    key_id = kms.create_key(Description="who")["KeyMetadata"]["KeyId"]
    kms.put_key_policy(KeyId=key_id, PolicyName="default", Policy=json.dumps({
        "Version": "2012-10-17", "Statement": [
            DEFAULT_STATEMENT,
            {"Sid": "AccountB", "Effect": "Allow", "Principal": {"AWS": OTHER_ACCOUNT},
             "Action": "kms:Decrypt", "Resource": "*"},
        ]}))
    grant = kms.create_grant(KeyId=key_id, GranteePrincipal=DEPLOYER_ROLE_ARN,
                             Operations=["Decrypt"])
    v1, v2, v3 = _stamps(server, key_id)

    def who(instant: datetime, credentials=ids.ROOT, action: str = "kms:Decrypt"):
        status, body = _get(server, key_id, "access", credentials, action=action,
                            at=_epoch(instant))
        assert status == 200, body
        assert (body["KeyId"], body["Action"], _iso(body["At"])) == (key_id, action, instant)
        return body["Version"], body["Principals"]

    # the default key policy: its account's root, and alice through her identity policy
    assert who(v1) == (1, [ROOT_ROUTE, ALICE_ROUTE])
    # account B named: its root, and carol through her identity policy (a statement without Sid)
    account_b = [
        ROOT_ROUTE, ALICE_ROUTE,
        {"Principal": OTHER_ROOT_ARN, "Via": "key-policy", "Statement": "AccountB",
         "Conditions": None},
        {"Principal": CAROL_ARN, "Via": "identity-policy", "PolicyName": "CarolUsesKeysOfA",
         "Statement": "#0", "Conditions": None, "KeyPolicyStatement": "AccountB",
         "KeyPolicyConditions": None},
    ]
    assert who(v2) == (2, account_b)
    # a grant to the deployer role: its sessions can decrypt through it
    with_grant = [
        {"Principal": DEPLOYER_ROLE_ARN, "Via": "grant", "GrantId": grant["GrantId"],
         "Conditions": None},
        *account_b,
    ]
    assert who(v3) == (3, with_grant)
    assert who(v3, ids.AUDITOR) == (3, with_grant)
    assert who(v1) == (1, [ROOT_ROUTE, ALICE_ROUTE])  # the past stays as it was
    # refused and malformed requests
    assert _get(server, key_id, "access", ids.ALICE, action="kms:Decrypt") == (403, {
        "detail": denied(ALICE_ARN, "keyledger:ReadHistory",
                         f"arn:aws:kms:{REGION}:{ACCOUNT}:key/{key_id}", NO_IDENTITY)})
    assert _get(server, key_id, "access") == (400, {
        "detail": "action is required, e.g. action=kms:Decrypt."})
    assert _get(server, key_id, "access", action="kms:Teleport") == (400, {
        "detail": "'kms:Teleport' is not an action authorized on a KMS key (for example "
                  "kms:Decrypt, kms:Encrypt, kms:ReEncryptFrom)."})

    # the CLI prints the same answer, offline
    proc = _cli(server, "who-can", "kms:Decrypt", key_id, "--at", _epoch(v3), "--json")
    assert proc.returncode == 0, proc.stderr
    printed = json.loads(proc.stdout)
    assert (printed["Version"], printed["Principals"]) == (3, with_grant)
    table = _cli(server, "who-can", "kms:Decrypt", key_id, "--at", _epoch(v1))
    assert table.returncode == 0, table.stderr
    assert table.stdout.splitlines() == [
        f"Who could kms:Decrypt {key_id} at {v1.isoformat()} (version 1, Enabled): 2 route(s)",
        f"  {ROOT_ARN.ljust(len(ALICE_ARN))}  key policy Enable IAM User Permissions  "
        "conditions: -",
        f"  {ALICE_ARN}  identity policy AliceUsesKeys / UseKeys "
        "(key policy Enable IAM User Permissions)  conditions: -",
    ]


# -- material use and GetKeyLastUsage ----------------------------------------------------------------


def test_last_usage_and_materials_from_the_servers_audit_records(server, kms, aws_error):
    kms.list_keys()  # the region's audit records began before this key
    key = kms.create_key(Description="used")["KeyMetadata"]
    key_id = key["KeyId"]
    other = kms.create_key(Description="destination")["KeyMetadata"]
    usage = kms.get_key_last_usage(KeyId=key_id)
    assert (usage["KeyId"], usage["KeyLastUsage"], usage["TrackingStartDate"]) == (
        key_id, {}, usage["KeyCreationDate"])
    assert usage["KeyCreationDate"] == key["CreationDate"]

    def last_use(key_ref: str) -> tuple[str, datetime, str, str]:
        found = kms.get_key_last_usage(KeyId=key_ref)["KeyLastUsage"]
        return (found["Operation"], found["Timestamp"], found["CloudTrailEventId"],
                found["KmsRequestId"])

    encrypted = kms.encrypt(KeyId=key_id, Plaintext=b"one")
    request = encrypted["ResponseMetadata"]["RequestId"]
    operation, first_use, event_id, request_id = last_use(key["Arn"])
    assert (operation, event_id, request_id) == (
        "Encrypt", stored_audit_record(server, request)["eventID"], request)
    kms.encrypt(KeyId=key_id, Plaintext=b"two")
    kms.generate_data_key(KeyId=key_id, KeySpec="AES_256")
    kms.describe_key(KeyId=key_id)  # not cryptographic: no use
    decrypted = kms.decrypt(CiphertextBlob=encrypted["CiphertextBlob"])
    operation, _, _, request_id = last_use(key_id)
    assert (operation, request_id) == ("Decrypt", decrypted["ResponseMetadata"]["RequestId"])
    with aws_error("InvalidCiphertextException"):
        kms.decrypt(CiphertextBlob=encrypted["CiphertextBlob"][:-1] + b"\x00")
    assert last_use(key_id)[3] == request_id  # a failure is no use
    reencrypted = kms.re_encrypt(CiphertextBlob=encrypted["CiphertextBlob"],
                                 DestinationKeyId=other["KeyId"])
    reencrypt_id = reencrypted["ResponseMetadata"]["RequestId"]
    _, reencrypt_use, _, _ = last_use(key_id)
    assert last_use(key_id)[::3] == ("ReEncrypt", reencrypt_id)
    assert last_use(other["KeyId"])[::3] == ("ReEncrypt", reencrypt_id)

    status, body = _get(server, key_id, "materials")
    assert status == 200
    assert body == {"KeyId": key_id, "KeyArn": key["Arn"], "Materials": [{
        "KeyMaterialId": key["CurrentKeyMaterialId"],
        "Created": server.events(key_id)["Events"][0]["Details"]["created_at"],
        "RotationType": None, "RotationDate": None, "KeyMaterialState": "CURRENT",
        "Destroyed": False,
        "Produced": {"Encrypt": 2, "GenerateDataKey*": 1, "ReEncrypt": 0},
        "Decryptions": {"Decrypt": 1, "ReEncrypt": 1},
        "FirstUsed": body["Materials"][0]["FirstUsed"], "LastUsed": body["Materials"][0]["LastUsed"],
    }]}
    assert (_iso(body["Materials"][0]["FirstUsed"]), _iso(body["Materials"][0]["LastUsed"])) == (
        first_use, reencrypt_use)
    status, destination = _get(server, other["KeyId"], "materials", days="7")
    assert (status, destination["Materials"][0]["Produced"],
            destination["Materials"][0]["Decryptions"]) == (
        200, {"Encrypt": 0, "GenerateDataKey*": 0, "ReEncrypt": 1}, {"Decrypt": 0, "ReEncrypt": 0})
    assert _get(server, key_id, "materials", days="soon") == (400, {
        "detail": "days must be a whole number of days."})

    # GetKeyLastUsage as AWS answers it: no aliases, the key policy decides
    kms.create_alias(AliasName=f"alias/used-{key_id[:8]}", TargetKeyId=key_id)
    with aws_error("NotFoundException"):
        kms.get_key_last_usage(KeyId=f"alias/used-{key_id[:8]}")
    with aws_error("AccessDeniedException") as raised:
        server.kms(credentials=ids.ALICE).get_key_last_usage(KeyId=key_id)
    assert raised.value.response["Error"]["Message"] == denied(
        ALICE_ARN, "kms:GetKeyLastUsage", key["Arn"], NO_IDENTITY)


def test_a_role_arn_finds_its_sessions_records(server):
    """A role acts only through its sessions (recorded as assumed-role/NAME/SESSION): asking the
    audit for the role's ARN answers with its sessions' records."""
    with pytest.raises(ClientError) as refused:  # no identity policy: refused, and recorded
        server.kms(credentials=ids.DEPLOYER).list_keys()
    request_id = refused.value.response["ResponseMetadata"]["RequestId"]
    for principal in (ids.DEPLOYER_ROLE_ARN, ids.DEPLOYER_SESSION_ARN):
        response = server.ledger_get("/ledger/v1/audit?" + urlencode(
            {"principal": principal, "event_name": "ListKeys", "limit": 1000}))
        assert response.status_code == 200, response.text
        records = response.json()["Records"]
        assert request_id in [r["requestID"] for r in records], principal
        assert {r["userIdentity"]["arn"] for r in records} == {ids.DEPLOYER_SESSION_ARN}
