"""Who may read what through the ledger API (``GET /ledger/v1/...``), against the real server:
a key policy's explicit Deny refuses the reads of its key, a ReadAudit of one key's records is
authorized on that key, a failed sign-in is recorded in the account of the access key it
named, a record names the key the path named, a key ARN of another account finds the
caller's own records of it, and a refused request opens no Region's store."""

from __future__ import annotations

import json
from typing import Any
from urllib.parse import urlencode

import pytest
from botocore.credentials import Credentials

from tests.e2e import identities_fixture as ids
from tests.e2e.conftest import stored_audit_record

pytestmark = pytest.mark.e2e

ERIN = Credentials("AKIAE2EERIN000000001", "erin/secret/access/key/00000000000000001")
ERIN_ARN = f"arn:aws:iam::{ids.ACCOUNT}:user/erin"
KEYS_OF_A = f"arn:aws:kms:{ids.REGION}:{ids.ACCOUNT}:key/*"


def _identities() -> dict[str, Any]:
    """The access-control identities, alice allowed every ledger read, and erin allowed them
    but denied ReadAudit and ReadHistory on the keys of account A."""
    found = ids.identities()
    users = found["accounts"][ids.ACCOUNT]["users"]
    users["alice"]["policies"]["ReadsLedger"] = {"Version": "2012-10-17", "Statement": [
        {"Effect": "Allow", "Action": "keyledger:*", "Resource": "*"}]}
    users["erin"] = {"access_keys": [{"access_key_id": ERIN.access_key,
                                      "secret_access_key": ERIN.secret_key}],
                     "policies": {"ReadsAllButKeys": {"Version": "2012-10-17", "Statement": [
                         {"Effect": "Allow", "Action": "keyledger:*", "Resource": "*"},
                         {"Effect": "Deny",
                          "Action": ["keyledger:ReadAudit", "keyledger:ReadHistory"],
                          "Resource": KEYS_OF_A}]}}}
    return found


@pytest.fixture(scope="module")
def server(server_factory):
    srv = server_factory("ledger-authz", identities=_identities())
    yield srv
    srv.cleanup()


def _get(server, path: str, credentials: Credentials, **query):
    return server.ledger_get(path + ("?" + urlencode(query) if query else ""),
                             credentials=credentials)


def _key(server, policy: dict | None = None, credentials: Credentials = ids.ROOT) -> str:
    kms = server.kms(credentials=credentials)
    key = kms.create_key(Description="authz")["KeyMetadata"]
    if policy is not None:
        kms.put_key_policy(KeyId=key["KeyId"], PolicyName="default", Policy=json.dumps(policy))
    return key["KeyId"]


def _detail(response) -> str:
    return response.json()["detail"]


ROOT_STATEMENT = {"Sid": "Enable IAM User Permissions", "Effect": "Allow",
                  "Principal": {"AWS": ids.ROOT_ARN}, "Action": "kms:*", "Resource": "*"}


def test_a_key_policys_explicit_deny_refuses_the_ledger_reads_of_its_key(server):
    shut = _key(server, {"Version": "2012-10-17", "Statement": [
        ROOT_STATEMENT,
        {"Sid": "NotAlice", "Effect": "Deny", "Principal": {"AWS": ids.ALICE_ARN},
         "Action": ["kms:*", "keyledger:*"], "Resource": "*"}]})
    open_key = _key(server)
    arn = f"arn:aws:kms:{ids.REGION}:{ids.ACCOUNT}:key/{shut}"
    for route, query in (("events", {}), ("state", {}), ("access", {"action": "kms:Decrypt"}),
                         ("materials", {})):
        refused = _get(server, f"/ledger/v1/keys/{shut}/{route}", ids.ALICE, **query)
        assert (refused.status_code, _detail(refused)) == (403, "AccessDeniedException: " + ids.denied(
            ids.ALICE_ARN, "keyledger:ReadHistory", arn, ids.DENY_RESOURCE)), route
        assert _get(server, f"/ledger/v1/keys/{open_key}/{route}", ids.ALICE,
                    **query).status_code == 200, route
        assert _get(server, f"/ledger/v1/keys/{shut}/{route}", ids.ROOT,
                    **query).status_code == 200, route
    # the key's records, by its id, its ARN, or its id under an ARN of another account
    for named in (shut, arn, f"arn:aws:kms:{ids.REGION}:999999999999:key/{shut}"):
        refused = _get(server, "/ledger/v1/audit", ids.ALICE, key_id=named)
        assert (refused.status_code, _detail(refused)) == (
            403, "AccessDeniedException: " + ids.denied(ids.ALICE_ARN, "keyledger:ReadAudit", arn,
                                                        ids.DENY_RESOURCE)), named
    assert _get(server, "/ledger/v1/audit", ids.ALICE, key_id=open_key).status_code == 200


def test_a_read_audit_of_one_keys_records_is_authorized_on_that_key(server):
    key_id = _key(server)
    arn = f"arn:aws:kms:{ids.REGION}:{ids.ACCOUNT}:key/{key_id}"
    for named in (key_id, arn, f"arn:aws:kms:{ids.REGION}:999999999999:key/{key_id}"):
        refused = _get(server, "/ledger/v1/audit", ERIN, key_id=named)
        assert (refused.status_code, _detail(refused)) == (
            403, "AccessDeniedException: " + ids.denied(ERIN_ARN, "keyledger:ReadAudit", arn,
                                                        ids.DENY_IDENTITY))
    # the account's whole audit is read on "*", which her Deny does not name (docs/audit.md:
    # it holds every key's records; a Deny on "*" withholds it)
    assert _get(server, "/ledger/v1/audit", ERIN).status_code == 200


def test_a_failed_sign_in_is_recorded_in_the_account_of_its_access_key_without_parameters(
        server):
    wrong = Credentials(ids.CAROL.access_key, "not/carols/secret/access/key/0000000000")
    refused = _get(server, "/ledger/v1/audit", wrong, event_name="PROBE")
    assert refused.status_code == 403
    record = stored_audit_record(server, refused.headers["x-amzn-RequestId"])
    assert (record["recipientAccountId"], record["userIdentity"], record["requestParameters"]) == (
        ids.OTHER_ACCOUNT, {"type": "Unknown", "accessKeyId": ids.CAROL.access_key}, None)
    kms = ids.call(server.url, "ListKeys", {}, wrong)
    assert kms.status_code == 400
    record = stored_audit_record(server, kms.headers["x-amzn-RequestId"])
    assert record["recipientAccountId"] == ids.OTHER_ACCOUNT
    # an access key no identity holds: the server's own account
    unknown = Credentials("AKIAE2ENOBODY0000001", "no/one/has/this/secret/key/000000000001")
    refused = _get(server, "/ledger/v1/audit", unknown)
    record = stored_audit_record(server, refused.headers["x-amzn-RequestId"])
    assert record["recipientAccountId"] == ids.ACCOUNT


def test_a_record_names_the_key_of_the_path_whatever_the_query_says(server):
    read, other = _key(server), _key(server)
    answer = _get(server, f"/ledger/v1/keys/{read}/state", ids.ROOT, key_id=other)
    assert answer.status_code == 200
    assert answer.json()["KeyMetadata"]["KeyId"] == read
    record = stored_audit_record(server, answer.headers["x-amzn-RequestId"])
    assert record["requestParameters"]["keyId"] == read


def test_another_accounts_key_arn_finds_the_callers_own_records_of_it(server):
    theirs = server.kms(credentials=ids.OTHER_ROOT).create_key(Description="theirs")["KeyMetadata"]
    server.kms(credentials=ids.OTHER_ROOT).put_key_policy(
        KeyId=theirs["KeyId"], PolicyName="default", Policy=json.dumps({
            "Version": "2012-10-17", "Statement": [
                {**ROOT_STATEMENT, "Principal": {"AWS": ids.OTHER_ROOT_ARN}},
                {"Sid": "AEncrypts", "Effect": "Allow", "Principal": {"AWS": ids.ROOT_ARN},
                 "Action": "kms:Encrypt", "Resource": "*"}]}))
    used = server.kms(credentials=ids.ROOT).encrypt(KeyId=theirs["Arn"], Plaintext=b"x")
    request_id = used["ResponseMetadata"]["RequestId"]
    for named in (theirs["Arn"], theirs["KeyId"]):
        found = _get(server, "/ledger/v1/audit", ids.ROOT, key_id=named, event_name="Encrypt")
        assert found.status_code == 200, found.text
        assert [r["requestID"] for r in found.json()["Records"]] == [request_id], named
        assert found.json()["Records"][0]["recipientAccountId"] == ids.ACCOUNT


def test_a_refused_request_opens_no_regions_store(server):
    key_id = _key(server)
    for path, query in (("/ledger/v1/audit", {}), ("/ledger/v1/keys/x/state", {}),
                        ("/ledger/v1/audit", {"key_id": key_id})):
        refused = _get(server, path, ids.BOB, region="ap-southeast-4", **query)
        assert refused.status_code == 403
        assert stored_audit_record(server, refused.headers["x-amzn-RequestId"])[
            "eventSource"] == "keyledger.ledger"
    assert not (server.data_dir / "regions" / "ap-southeast-4").exists()


def test_only_the_deployments_own_account_reads_its_replication(server):
    """Its positions and counts are every account's events: another account's root, which
    reads its own account's ledger without a policy, does not read them."""
    assert _get(server, "/ledger/v1/replication", ids.ROOT).status_code == 200
    refused = _get(server, "/ledger/v1/replication", ids.OTHER_ROOT)
    assert (refused.status_code, _detail(refused)) == (
        403, f"AccessDeniedException: User: {ids.OTHER_ROOT_ARN} is not authorized to perform: "
             "keyledger:ReadReplication on resource: * because the deployment's replication is "
             f"read by its own account ({ids.ACCOUNT})")
