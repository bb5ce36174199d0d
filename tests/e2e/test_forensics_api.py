"""Forensics over HTTP and the CLI, against the real server on SQLite and PostgreSQL:
``GET /ledger/v1/keys/{id}/state|access|materials`` (signed GETs, authorized by
``keyledger:ReadHistory``), GetKeyLastUsage through boto3, and ``keyledger history --at`` /
``keyledger who-can`` offline on the server's store.

Instants are the ledger's own event timestamps, read from the events route; audit records
are the ones the server writes for each request.
"""

from __future__ import annotations

import json
import os
import subprocess
import sys
from datetime import UTC, datetime, timedelta
from urllib.parse import quote, urlencode

import pytest
from botocore.exceptions import ClientError

from tests.e2e import identities_fixture as ids
from tests.e2e.conftest import (
    PROJECT_ROOT,
    KeyledgerServer,
    stored_audit_record,
    stored_audit_records,
)
from tests.e2e.identities_fixture import (
    ACCOUNT,
    ALICE_ARN,
    DAVE_ARN,
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
        "detail": "at must be ISO 8601 (2024-05-01T09:14:00Z) or epoch seconds, not 'yesterday'."})
    status, answer = _get(server, key_id, "access", action="kms:Decrypt", at="9999-12-31T23:59:59Z")
    assert (status, answer["detail"].split(": the ledger")[0]) == (
        400, "'9999-12-31T23:59:59Z' is in the future")
    # keyledger:ReadHistory decides, as for the events route
    resource = key["Arn"]
    assert _get(server, key_id, "state", ids.ALICE) == (403, {"detail": "AccessDeniedException: " + denied(
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
    assert printed == _get(server, key_id, "state", at=_epoch(v2))[1]  # the API's answer, as text
    history = _cli(server, "history", key_id, "--json")
    assert (history.returncode, json.loads(history.stdout)) == (0, server.events(key_id)), \
        history.stderr
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
    # account B named: the account, as the key policy names it; never its users (carol, whose
    # identity policy allows her the keys of A) nor their policies, which are B's, not A's
    account_b = [
        {"Principal": OTHER_ACCOUNT, "Via": "key-policy", "Statement": "AccountB",
         "Conditions": None},
        ROOT_ROUTE, ALICE_ROUTE,
    ]
    assert who(v2) == (2, account_b)
    # a grant to the deployer role: its sessions can decrypt through it
    with_grant = [
        account_b[0],
        {"Principal": DEPLOYER_ROLE_ARN, "Via": "grant", "GrantId": grant["GrantId"],
         "Conditions": None},
        *account_b[1:],
    ]
    assert who(v3) == (3, with_grant)
    assert who(v3, ids.AUDITOR) == (3, with_grant)
    assert who(v1) == (1, [ROOT_ROUTE, ALICE_ROUTE])  # the past stays as it was
    # refused and malformed requests
    assert _get(server, key_id, "access", ids.ALICE, action="kms:Decrypt") == (403, {
        "detail": "AccessDeniedException: " + denied(ALICE_ARN, "keyledger:ReadHistory",
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
    assert body == {"KeyId": key_id, "KeyArn": key["Arn"],
                    "TrackingStartDate": body["TrackingStartDate"], "Materials": [{
        "KeyMaterialId": key["CurrentKeyMaterialId"],
        "Created": server.events(key_id)["Events"][0]["Details"]["created_at"],
        "RotationType": None, "RotationDate": None, "KeyMaterialState": "CURRENT",
        "Destroyed": False,
        "Produced": {"Encrypt": 2, "GenerateDataKey*": 1, "ReEncrypt": 0},
        "Decryptions": {"Decrypt": 1, "ReEncrypt": 1},
        "FirstUsed": body["Materials"][0]["FirstUsed"], "LastUsed": body["Materials"][0]["LastUsed"],
    }]}
    # the instants stored with the records, as GetKeyLastUsage's Timestamp (eventTime shows
    # only the second: a first use in the second the key was made came before its creation);
    # the KMS answer carries its Timestamp as epoch seconds, a float: to the microsecond
    first, last = (_iso(body["Materials"][0][name]) for name in ("FirstUsed", "LastUsed"))
    assert abs(first - first_use) <= timedelta(microseconds=1)
    assert abs(last - reencrypt_use) <= timedelta(microseconds=1)
    assert first >= _iso(body["Materials"][0]["Created"])
    assert _iso(body["TrackingStartDate"]) == key["CreationDate"]  # (records began before it)
    status, destination = _get(server, other["KeyId"], "materials", days="7")
    assert (status, destination["Materials"][0]["Produced"],
            destination["Materials"][0]["Decryptions"]) == (
        200, {"Encrypt": 0, "GenerateDataKey*": 0, "ReEncrypt": 1}, {"Decrypt": 0, "ReEncrypt": 0})
    for days in ("soon", "²"):  # ("²".isdigit(), yet no int)
        assert _get(server, key_id, "materials", days=days) == (400, {
            "detail": "days must be a whole number of days."})
    assert _get(server, key_id, "materials", days="9" * 5000) == (400, {  # (int() refuses it)
        "detail": "days must be between 1 and 3650."})

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
    # CloudTrail's session attributes: no MFA; the session began when the identities file says
    (record,) = [r for r in records if r["requestID"] == request_id]
    assert record["userIdentity"]["sessionContext"]["attributes"] == {
        "creationDate": ids.DEPLOYER_SESSION_CREATED, "mfaAuthenticated": "false"}


# -- a key ARN names the key as its key id does; an alias never ------------------------------------

WEST = "us-west-2"
_LEDGER_EVENT = {"events": "ReadHistory", "state": "ReadKeyState", "access": "ReadKeyAccess",
                 "materials": "ReadMaterials"}  # a key route's eventName
ALIAS_REFUSED = ("This route takes a key id or key ARN, not an alias: {!r} (an alias can point "
                 "at another key at another time, and this route reads the past).")


def _recorded(server: KeyledgerServer, key_ref: str, route: str, credentials=ids.ROOT,
              stored_in: str = REGION, **query) -> tuple[int, dict, dict]:
    """(status, body, the request's one audit record, read from the store of ``stored_in``)."""
    path = f"/ledger/v1/keys/{key_ref}/{route}"
    if query:
        path += "?" + urlencode(query)
    response = server.ledger_get(path, credentials=credentials)
    record = stored_audit_record(server, response.headers["x-amzn-RequestId"], stored_in)
    return response.status_code, response.json(), record


def _key_resource(arn: str, account: str = ACCOUNT) -> list[dict[str, str]]:
    return [{"accountId": account, "type": "AWS::KMS::Key", "ARN": arn}]


def test_the_key_routes_answer_a_key_arn_as_its_key_id(server, kms):
    key = kms.create_key(Description="by arn")["KeyMetadata"]
    key_id, arn = key["KeyId"], key["Arn"]
    assert arn == f"arn:aws:kms:{REGION}:{ACCOUNT}:key/{key_id}"
    kms.tag_resource(KeyId=key_id, Tags=[{"TagKey": "team", "TagValue": "green"}])
    kms.encrypt(KeyId=key_id, Plaintext=b"x")
    v1, v2 = _stamps(server, key_id)
    routes = [("events", {}), ("state", {"at": _epoch(v1)}),
              ("access", {"action": "kms:Decrypt", "at": _epoch(v2)}), ("materials", {})]
    for route, query in routes:
        by_id = _get(server, key_id, route, **query)
        status, body, record = _recorded(server, arn, route, **query)
        assert (status, body) == by_id, route
        # the record names the key ARN, as for a key id; the parameter as it was given
        assert (record["eventName"], record.get("errorCode"), record["awsRegion"],
                record["resources"], record["requestParameters"]) == (
            _LEDGER_EVENT[route], None, REGION, _key_resource(arn), {"keyId": arn, **query}), route
    # what the four answers said (the same by key id and by key ARN)
    assert [e["Type"] for e in _get(server, arn, "events")[1]["Events"]] == [
        "KeyCreated", "TagsAdded"]
    state = _get(server, arn, "state", at=_epoch(v1))[1]
    assert (state["KeyMetadata"]["Arn"], state["Version"], state["Tags"]) == (arn, 1, [])
    access = _get(server, arn, "access", action="kms:Decrypt", at=_epoch(v2))[1]
    assert (access["KeyId"], access["Version"], access["Principals"]) == (
        key_id, 2, [ROOT_ROUTE, ALICE_ROUTE])
    materials = _get(server, arn, "materials")[1]
    assert (materials["KeyArn"], materials["Materials"][0]["Produced"]["Encrypt"]) == (arn, 1)
    # region= may repeat the ARN's Region; a refusal names the key ARN as for a key id
    assert _get(server, arn, "state", at=_epoch(v1), region=REGION) == (200, state)
    assert _get(server, arn, "state", ids.ALICE) == _get(server, key_id, "state", ids.ALICE) == (
        403, {"detail": "AccessDeniedException: " + denied(ALICE_ARN, "keyledger:ReadHistory", arn, NO_IDENTITY)})
    # a URL-encoded ARN is the same path
    assert _get(server, arn.replace(":", "%3A").replace("/", "%2F"), "state", at=_epoch(v1)) == (
        200, state)


def test_a_key_arns_region_is_the_region_read(server):
    west = server.kms(region=WEST).create_key(Description="west")["KeyMetadata"]
    arn = west["Arn"]
    assert arn.startswith(f"arn:aws:kms:{WEST}:{ACCOUNT}:key/")
    # no region=: the ARN's Region is read, and the record is that Region's
    status, body, record = _recorded(server, arn, "state", stored_in=WEST)
    assert (status, body["KeyMetadata"]["Arn"], body["KeyMetadata"]["Description"]) == (
        200, arn, "west")
    assert (record["awsRegion"], record["resources"]) == (WEST, _key_resource(arn))
    assert _get(server, arn, "events")[1]["Region"] == WEST
    # by key id the default Region is read, where this key is not
    assert _get(server, west["KeyId"], "state") == (404, {
        "detail": f"Key '{west['KeyId']}' does not exist in {REGION}"})
    # a region= that is not the ARN's: 400, recorded (in the Region asked for)
    for route, query in (("events", {}), ("state", {}), ("access", {"action": "kms:Decrypt"}),
                         ("materials", {})):
        detail = f"The key ARN names Region '{WEST}', but region is '{REGION}'."
        status, body, record = _recorded(server, arn, route, stored_in=REGION, region=REGION,
                                         **query)
        assert (status, body) == (400, {"detail": detail}), route
        assert (record["eventName"], record["errorCode"], record["errorMessage"],
                record["awsRegion"], record["resources"]) == (
            _LEDGER_EVENT[route], "ValidationException", detail, REGION, []), route


def test_the_audit_of_a_key_arn_is_read_in_its_region(server):
    west = server.kms(region=WEST).create_key(Description="west")["KeyMetadata"]
    arn = quote(west["Arn"], safe="")
    found = server.ledger_get(f"/ledger/v1/audit?key_id={arn}&region={WEST}")
    assert found.status_code == 200, found.text
    assert [r["eventName"] for r in found.json()["Records"]] == ["CreateKey"]
    elsewhere = server.ledger_get(f"/ledger/v1/audit?key_id={arn}")  # the default Region
    assert (elsewhere.status_code, elsewhere.json()) == (400, {
        "detail": f"The key ARN names Region '{WEST}': read it with region={WEST}."})


def test_a_key_arn_of_another_account_is_no_key_of_the_callers(server, kms):
    mine = kms.create_key(Description="mine")["KeyMetadata"]
    theirs = server.kms(credentials=ids.OTHER_ROOT).create_key(Description="theirs")["KeyMetadata"]
    assert theirs["Arn"] == f"arn:aws:kms:{REGION}:{OTHER_ACCOUNT}:key/{theirs['KeyId']}"
    unknown = "00000000-0000-4000-8000-000000000000"
    # the other account's key by its own ARN, and my key under the other account's ARN: both
    # answered as a key id of no key of mine is
    for key_id in (theirs["KeyId"], mine["KeyId"]):
        other_arn = f"arn:aws:kms:{REGION}:{OTHER_ACCOUNT}:key/{key_id}"
        for route, query in (("events", {}), ("state", {}),
                             ("access", {"action": "kms:Decrypt"}), ("materials", {})):
            status, body, record = _recorded(server, other_arn, route, **query)
            assert (status, body) == (404, {"detail": f"Key '{key_id}' does not exist in {REGION}"})
            assert _get(server, unknown, route, **query) == (404, {
                "detail": f"Key '{unknown}' does not exist in {REGION}"})
            # recorded once, in the caller's account only, naming the ARN it was asked about
            assert (record["eventName"], record["errorCode"], record["recipientAccountId"],
                    record["resources"]) == (_LEDGER_EVENT[route], "NotFoundException", ACCOUNT,
                                             _key_resource(other_arn, OTHER_ACCOUNT)), route
    # its owner reads it by that ARN
    assert _get(server, theirs["Arn"], "state", ids.OTHER_ROOT)[1]["KeyMetadata"]["Description"] == (
        "theirs")


def test_an_alias_is_refused_by_the_key_routes(server, kms):
    key_id = kms.create_key(Description="aliased")["KeyMetadata"]["KeyId"]
    alias = f"alias/forensic-arn-{key_id[:8]}"
    kms.create_alias(AliasName=alias, TargetKeyId=key_id)
    alias_arn = f"arn:aws:kms:{REGION}:{ACCOUNT}:{alias}"
    for named in (alias, alias_arn):
        for route, query in (("events", {}), ("state", {}),
                             ("access", {"action": "kms:Decrypt"}), ("materials", {})):
            status, body, record = _recorded(server, named, route, **query)
            assert (status, body) == (400, {"detail": ALIAS_REFUSED.format(named)}), (named, route)
            assert (record["eventName"], record["errorCode"], record["errorMessage"],
                    record["resources"], record["requestParameters"]["keyId"]) == (
                _LEDGER_EVENT[route], "ValidationException", ALIAS_REFUSED.format(named), [],
                named), (named, route)
    # an ARN that names no key at all
    status, body, record = _recorded(server, "arn:aws:s3:::bucket", "state")
    detail = ("This route takes a key id or key ARN (arn:aws:kms:REGION:ACCOUNT:key/KEY_ID), "
              "not 'arn:aws:s3:::bucket'.")
    assert (status, body, record["errorCode"]) == (400, {"detail": detail}, "ValidationException")
    # the other ledger routes are not taken for key routes
    assert server.ledger_get("/ledger/v1/replication").status_code == 200
    assert server.ledger_get("/ledger/v1/keys/events").status_code == 404
    assert server.ledger_get("/ledger/v1/keys/events").json() == {"detail": "Not Found"}


def test_the_identities_of_a_store_once_served_with_another_default_region(store, server_factory):
    """A server records the identities in its default region. Served first with us-west-2 as
    its default (dave may Encrypt), then with us-east-1 (dave gone): who could Encrypt before
    the change is read from us-west-2's record, over HTTP as by the CLI."""
    srv = server_factory("identities-moved", identities=ids.identities(dave=True), store=store,
                         extra_args=("--default-region", "us-west-2"))
    try:
        key_id = srv.kms().create_key(Description="before the move")["KeyMetadata"]["KeyId"]
        (before,) = _stamps(srv, key_id)
        srv.stop()
        srv.write_identities(ids.identities())
        srv.extra_args = ()
        srv.start()
        after = datetime.now(UTC)

        def principals(instant: datetime) -> list[str]:
            status, body = _get(srv, key_id, "access", action="kms:Encrypt", at=_epoch(instant))
            assert status == 200, body
            printed = _cli(srv, "who-can", "kms:Encrypt", key_id, "--at", _epoch(instant), "--json")
            assert printed.returncode == 0, printed.stderr
            assert json.loads(printed.stdout)["Principals"] == body["Principals"]
            return [route["Principal"] for route in body["Principals"]]

        assert principals(before) == [ROOT_ARN, ALICE_ARN, DAVE_ARN]
        assert principals(after) == [ROOT_ARN, ALICE_ARN]
    finally:
        srv.cleanup()


def test_the_cli_takes_a_key_arn_as_its_key_id(server, kms):
    key = kms.create_key(Description="cli by arn")["KeyMetadata"]
    key_id, arn = key["KeyId"], key["Arn"]
    kms.tag_resource(KeyId=key_id, Tags=[{"TagKey": "team", "TagValue": "green"}])
    v1, v2 = _stamps(server, key_id)

    def commands(key_ref: str) -> list[list[str]]:
        return [["history", key_ref, "--json"],
                ["history", key_ref, "--at", _epoch(v1), "--json"],
                ["who-can", "kms:Decrypt", key_ref, "--at", _epoch(v2), "--json"]]

    printed = []
    for by_id, by_arn in zip(commands(key_id), commands(arn), strict=True):
        with_id, with_arn = _cli(server, *by_id), _cli(server, *by_arn)
        assert (with_arn.returncode, with_arn.stdout) == (0, with_id.stdout), with_arn.stderr
        printed.append(json.loads(with_arn.stdout))
    history, state, who = printed
    assert (history["KeyId"], history["Region"], [e["Type"] for e in history["Events"]]) == (
        key_id, REGION, ["KeyCreated", "TagsAdded"])
    assert (state["KeyMetadata"]["Arn"], state["Version"], state["Tags"]) == (arn, 1, [])
    assert (who["KeyId"], who["Version"], who["Principals"]) == (
        key_id, 2, [ROOT_ROUTE, ALICE_ROUTE])
    table = _cli(server, "history", arn, "--at", _epoch(v2))
    assert table.returncode == 0, table.stderr
    assert table.stdout.splitlines()[0] == f"{key_id} in {REGION} at {v2.isoformat()} (version 2)"

    # the ARN's Region is read; a --region that differs is refused
    west = server.kms(region=WEST).create_key(Description="cli west")["KeyMetadata"]
    in_west = _cli(server, "history", west["Arn"], "--json")
    assert in_west.returncode == 0, in_west.stderr
    assert (json.loads(in_west.stdout)["KeyId"], json.loads(in_west.stdout)["Region"]) == (
        west["KeyId"], WEST)
    mismatch = _cli(server, "who-can", "kms:Decrypt", west["Arn"], "--region", REGION)
    assert (mismatch.returncode, mismatch.stdout, mismatch.stderr.strip()) == (
        1, "", f"ValidationException: The key ARN names Region '{WEST}', but region is "
               f"'{REGION}'.")
    # a key ARN of another account than the key's names no key
    other_arn = f"arn:aws:kms:{REGION}:{OTHER_ACCOUNT}:key/{key_id}"
    for args in (["history", other_arn], ["history", other_arn, "--at", _epoch(v2)],
                 ["who-can", "kms:Decrypt", other_arn]):
        refused = _cli(server, *args)
        assert (refused.returncode, refused.stdout, refused.stderr.strip()) == (
            1, "", f"NotFoundException: Key '{key_id}' does not exist in {REGION}"), args
    # an alias, by name or ARN
    alias = f"alias/cli-arn-{key_id[:8]}"
    kms.create_alias(AliasName=alias, TargetKeyId=key_id)
    for named in (alias, f"arn:aws:kms:{REGION}:{ACCOUNT}:{alias}"):
        for command, args in (("history", ["history", named]),
                              ("history", ["history", named, "--at", _epoch(v2)]),
                              ("who-can", ["who-can", "kms:Decrypt", named])):
            refused = _cli(server, *args)
            assert (refused.returncode, refused.stdout, refused.stderr.strip()) == (
                1, "", f"ValidationException: keyledger {command} takes a key id or key ARN, "
                       f"not an alias: {named!r} (an alias can point at another key at another "
                       "time, and this command reads the past)."), args


def test_a_regions_first_key_is_tracked_from_its_creation(server_factory, store):
    """The first key of a Region: its CreateKey record is the store's first, written after
    the key was made; tracking still covers the key's whole life, so a look-back from before
    it was made is complete ("safe to delete?" can say no decryption happened)."""
    from tests.e2e.test_imported_material import import_material

    fresh = server_factory("first-key", identities=ids.identities(), store=store)
    kms = fresh.kms()
    key = kms.create_key(Origin="EXTERNAL")["KeyMetadata"]  # the Region's first request
    import_material(kms, key["KeyId"], os.urandom(32))
    usage = kms.get_key_last_usage(KeyId=key["KeyId"])
    assert usage["TrackingStartDate"] == usage["KeyCreationDate"] == key["CreationDate"]
    status, body = _get(fresh, key["KeyId"], "materials", days="30")
    assert (status, _iso(body["TrackingStartDate"])) == (200, key["CreationDate"])
    assert [m["DecryptedInLastDays"] for m in body["Materials"]] == [
        {"days": 30, "any": False, "Complete": True}]


def test_a_decrypt_refused_before_it_used_another_accounts_key_names_no_key(server, kms):
    """A caller names a key of another account and is refused before any policy was read: its
    own record names no key, and the key's account gets no copy (the key's policy never let
    this caller write into that account's audit)."""
    key = kms.create_key()["KeyMetadata"]
    other = server.kms(credentials=ids.OTHER_ROOT)
    blob = kms.encrypt(KeyId=key["KeyId"], Plaintext=b"x")["CiphertextBlob"]
    other_key = other.create_key()["KeyMetadata"]
    for named, ciphertext, code in ((key, b"\0" * 40, "InvalidCiphertextException"),
                                    (key, other.encrypt(KeyId=other_key["KeyId"], Plaintext=b"y")[
                                        "CiphertextBlob"], "IncorrectKeyException"),
                                    (other_key, blob, "IncorrectKeyException")):
        with pytest.raises(ClientError) as refused:
            other.decrypt(KeyId=named["Arn"], CiphertextBlob=ciphertext)
        assert refused.value.response["Error"]["Code"] == code
        request_id = refused.value.response["ResponseMetadata"]["RequestId"]
        records = stored_audit_records(server, request_id)
        own = named is other_key  # the caller's own key is named; another account's never
        assert [(r["recipientAccountId"], [x["ARN"] for x in r["resources"]]) for r in records] == [
            (ids.OTHER_ACCOUNT, [other_key["Arn"]] if own else [])]
    # nor is another account's key looked at: that it is asymmetric shows to its owner only
    rsa = kms.create_key(KeySpec="RSA_2048", KeyUsage="ENCRYPT_DECRYPT")["KeyMetadata"]
    for caller, code in ((kms, "InvalidKeyUsageException"),
                         (other, "InvalidCiphertextException")):
        with pytest.raises(ClientError) as refused:
            caller.decrypt(KeyId=rsa["Arn"], CiphertextBlob=b"\0" * 40)
        assert refused.value.response["Error"]["Code"] == code
