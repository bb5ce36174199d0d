"""Authorization as AWS KMS does it, driven with unmodified boto3 against the real server.

Key policies, identity (IAM) policies, account delegation, explicit denies, role sessions,
condition keys, cross-account use, the IAM-only operations, the PutKeyPolicy lockout check,
principal validation, and grants. One server per store (SQLite, PostgreSQL) for the module,
with the identities of :mod:`tests.e2e.identities_fixture`.

AWS behaviour is the contract (docs/kms-access-control.md, the facts brief, cites each rule):

* §2.2 and KDG:key-policy-default: the default key policy delegates to the account's IAM
  policies; the root needs none; an IAM allow is ineffective unless the key policy delegates.
* §2.2 and KDG:key-policy-modifying-external-accounts: a principal of another account needs
  the key policy to allow it (or its account) AND an identity policy of its own.
* §3 (IAM:troubleshoot_access-denied; KMS wire samples elastic/cloudbeat#1749,
  4dn-dcic/tibanna#402): ``User: <caller ARN> is not authorized to perform: <action> on
  resource: <key ARN> because no <identity|resource>-based policy allows the <action> action``
  or ``... with an explicit deny in a(n) <identity|resource>-based policy``, HTTP 400, no
  trailing period; a role session is named by its session ARN.
* §4: ``The new key policy will not allow you to update the key policy in the future.`` and
  ``Policy contains a statement with one or more invalid principals.``
  (MalformedPolicyDocumentException, HTTP 400).
* §5 and §2.3: grants (KDG:grants, KDG:grant-manage; the KMS API reference for CreateGrant,
  ListGrants, ListRetirableGrants, RetireGrant, RevokeGrant).
"""

from __future__ import annotations

import json
from typing import Any

import pytest
from botocore.exceptions import ClientError

from tests.e2e import identities_fixture as ids
from tests.e2e.conftest import stored_audit_records
from tests.e2e.identities_fixture import (
    ACCOUNT,
    ALICE_ARN,
    BOB_ARN,
    CAROL_ARN,
    DENY_IDENTITY,
    DENY_RESOURCE,
    DEPLOYER_ROLE_ARN,
    DEPLOYER_SESSION_ARN,
    FRANK_ARN,
    NO_IDENTITY,
    NO_RESOURCE,
    OTHER_ACCOUNT,
    ROOT_ARN,
    denied,
)

pytestmark = pytest.mark.e2e

DEFAULT_POLICY = (
    "{\n"
    '  "Version" : "2012-10-17",\n'
    '  "Id" : "key-default-1",\n'
    '  "Statement" : [ {\n'
    '    "Sid" : "Enable IAM User Permissions",\n'
    '    "Effect" : "Allow",\n'
    '    "Principal" : {\n'
    f'      "AWS" : "arn:aws:iam::{ACCOUNT}:root"\n'
    "    },\n"
    '    "Action" : "kms:*",\n'
    '    "Resource" : "*"\n'
    "  } ]\n"
    "}"
)
ROOT_STATEMENT = {"Sid": "Enable IAM User Permissions", "Effect": "Allow",
                  "Principal": {"AWS": ROOT_ARN}, "Action": "kms:*", "Resource": "*"}
INVALID_PRINCIPALS = "Policy contains a statement with one or more invalid principals."
LOCKOUT = "The new key policy will not allow you to update the key policy in the future."


def policy(*statements: dict[str, Any]) -> str:
    return json.dumps({"Version": "2012-10-17", "Statement": list(statements)})


def allow(principal: Any, actions: Any, condition: dict | None = None, **extra) -> dict:
    statement = {"Effect": "Allow", "Principal": principal, "Action": actions, "Resource": "*"}
    if condition is not None:
        statement["Condition"] = condition
    return {**statement, **extra}


def deny(principal: Any, actions: Any, condition: dict | None = None) -> dict:
    return {**allow(principal, actions, condition), "Effect": "Deny"}


def refused(call, *args, **kwargs) -> tuple[int, str, str]:
    """(HTTP status, error code, message) of a boto3 call that must fail."""
    with pytest.raises(ClientError) as excinfo:
        call(*args, **kwargs)
    return ids.client_error(excinfo.value)


def access_denied(principal: str, action: str, resource: str, why: str):
    return 400, "AccessDeniedException", denied(principal, action, resource, why)


class Clients:
    """boto3 KMS clients of the module's server, one per principal."""

    def __init__(self, server) -> None:
        self.server = server
        self.root = server.kms(credentials=ids.ROOT)
        self.alice = server.kms(credentials=ids.ALICE)
        self.bob = server.kms(credentials=ids.BOB)
        self.deployer = server.kms(credentials=ids.DEPLOYER)
        self.carol = server.kms(credentials=ids.CAROL)
        self.frank = server.kms(credentials=ids.FRANK)
        self.other_root = server.kms(credentials=ids.OTHER_ROOT)

    def key(self, key_policy: str | None = None, **kwargs) -> dict[str, Any]:
        """A new key of 111122223333, created by its root (with ``key_policy`` if given)."""
        if key_policy is not None:
            kwargs["Policy"] = key_policy
        return self.root.create_key(Description="access control e2e", **kwargs)["KeyMetadata"]


@pytest.fixture(scope="module")
def acl(store, server_factory):
    server = server_factory("acl", identities=ids.identities(), store=store)
    yield Clients(server)
    server.cleanup()


# -- the default key policy: delegation to IAM ------------------------------------------------------


def test_default_key_policy_is_the_documented_document(acl):
    key = acl.key()
    assert acl.root.get_key_policy(KeyId=key["KeyId"], PolicyName="default")["Policy"] \
        == DEFAULT_POLICY


def test_default_policy_root_allowed_without_any_iam_policy(acl):
    key = acl.key()
    blob = acl.root.encrypt(KeyId=key["KeyId"], Plaintext=b"root")["CiphertextBlob"]
    assert acl.root.decrypt(CiphertextBlob=blob)["Plaintext"] == b"root"
    assert acl.root.disable_key(KeyId=key["KeyId"])["ResponseMetadata"]["HTTPStatusCode"] == 200


def test_default_policy_alice_allowed_what_her_identity_policy_allows(acl):
    key = acl.key()
    blob = acl.alice.encrypt(KeyId=key["KeyId"], Plaintext=b"alice")["CiphertextBlob"]
    assert acl.alice.decrypt(CiphertextBlob=blob)["Plaintext"] == b"alice"
    assert acl.alice.describe_key(KeyId=key["KeyId"])["KeyMetadata"]["Arn"] == key["Arn"]
    data_key = acl.alice.generate_data_key(KeyId=key["Arn"], KeySpec="AES_256")
    assert len(data_key["Plaintext"]) == 32


def test_default_policy_alice_refused_what_her_identity_policy_does_not_allow(acl):
    key = acl.key()
    assert refused(acl.alice.disable_key, KeyId=key["KeyId"]) == access_denied(
        ALICE_ARN, "kms:DisableKey", key["Arn"], NO_IDENTITY)
    assert refused(acl.alice.get_key_policy, KeyId=key["KeyId"], PolicyName="default") == \
        access_denied(ALICE_ARN, "kms:GetKeyPolicy", key["Arn"], NO_IDENTITY)


def test_default_policy_bob_without_identity_policy_is_refused(acl):
    key = acl.key()
    assert refused(acl.bob.encrypt, KeyId=key["KeyId"], Plaintext=b"x") == access_denied(
        BOB_ARN, "kms:Encrypt", key["Arn"], NO_IDENTITY)
    # the resource is the key's ARN whichever way the request names the key
    assert refused(acl.bob.describe_key, KeyId=key["Arn"]) == access_denied(
        BOB_ARN, "kms:DescribeKey", key["Arn"], NO_IDENTITY)


def test_default_policy_role_session_refused_by_its_session_arn(acl):
    key = acl.key()
    assert refused(acl.deployer.encrypt, KeyId=key["KeyId"], Plaintext=b"x") == access_denied(
        DEPLOYER_SESSION_ARN, "kms:Encrypt", key["Arn"], NO_IDENTITY)


# -- key policies naming principals ----------------------------------------------------------------


def test_key_policy_naming_a_user_needs_no_identity_policy(acl):
    key = acl.key(policy(
        ROOT_STATEMENT,
        allow({"AWS": ALICE_ARN}, ["kms:DisableKey", "kms:EnableKey"]),
        allow({"AWS": BOB_ARN}, "kms:Encrypt"),
    ))
    acl.alice.disable_key(KeyId=key["KeyId"])
    acl.alice.enable_key(KeyId=key["KeyId"])
    assert acl.bob.encrypt(KeyId=key["KeyId"], Plaintext=b"b")["KeyId"] == key["Arn"]
    # what the key policy does not name bob for still needs an identity policy
    assert refused(acl.bob.describe_key, KeyId=key["KeyId"]) == access_denied(
        BOB_ARN, "kms:DescribeKey", key["Arn"], NO_IDENTITY)


def test_key_policy_deny_beats_identity_allow_and_root(acl):
    key = acl.key(policy(
        ROOT_STATEMENT,
        deny({"AWS": ALICE_ARN}, "kms:Encrypt"),
        deny("*", "kms:Decrypt"),
    ))
    blob = acl.root.encrypt(KeyId=key["KeyId"], Plaintext=b"x")["CiphertextBlob"]
    assert refused(acl.alice.encrypt, KeyId=key["KeyId"], Plaintext=b"x") == access_denied(
        ALICE_ARN, "kms:Encrypt", key["Arn"], DENY_RESOURCE)
    assert refused(acl.root.decrypt, CiphertextBlob=blob) == access_denied(
        ROOT_ARN, "kms:Decrypt", key["Arn"], DENY_RESOURCE)
    assert refused(acl.alice.decrypt, CiphertextBlob=blob) == access_denied(
        ALICE_ARN, "kms:Decrypt", key["Arn"], DENY_RESOURCE)
    # alice's other allowed actions are untouched
    assert acl.alice.describe_key(KeyId=key["KeyId"])["KeyMetadata"]["KeyId"] == key["KeyId"]


def test_identity_policy_deny_beats_key_policy_allow(acl):
    key = acl.key(policy(ROOT_STATEMENT, allow({"AWS": ALICE_ARN}, "kms:*")))
    assert refused(acl.alice.schedule_key_deletion, KeyId=key["KeyId"],
                   PendingWindowInDays=7) == access_denied(
        ALICE_ARN, "kms:ScheduleKeyDeletion", key["Arn"], DENY_IDENTITY)
    assert acl.alice.disable_key(KeyId=key["KeyId"])["ResponseMetadata"]["HTTPStatusCode"] == 200


def test_key_policy_naming_the_role_allows_its_sessions(acl):
    key = acl.key(policy(
        ROOT_STATEMENT,
        allow({"AWS": DEPLOYER_ROLE_ARN}, ["kms:Encrypt", "kms:DescribeKey"]),
        # aws:PrincipalArn of a session is the role's ARN (IAM:reference_policies_condition-keys)
        allow("*", "kms:GenerateDataKey",
              {"ArnEquals": {"aws:PrincipalArn": DEPLOYER_ROLE_ARN}}),
    ))
    assert acl.deployer.encrypt(KeyId=key["KeyId"], Plaintext=b"d")["KeyId"] == key["Arn"]
    assert acl.deployer.describe_key(KeyId=key["Arn"])["KeyMetadata"]["Arn"] == key["Arn"]
    assert len(acl.deployer.generate_data_key(KeyId=key["KeyId"],
                                              NumberOfBytes=16)["Plaintext"]) == 16
    assert refused(acl.deployer.disable_key, KeyId=key["KeyId"]) == access_denied(
        DEPLOYER_SESSION_ARN, "kms:DisableKey", key["Arn"], NO_IDENTITY)
    assert refused(acl.bob.generate_data_key, KeyId=key["KeyId"], NumberOfBytes=16) == \
        access_denied(BOB_ARN, "kms:GenerateDataKey", key["Arn"], NO_IDENTITY)


def test_key_policy_naming_the_exact_session(acl):
    key = acl.key(policy(ROOT_STATEMENT, allow({"AWS": DEPLOYER_SESSION_ARN}, "kms:Encrypt")))
    assert acl.deployer.encrypt(KeyId=key["KeyId"], Plaintext=b"d")["KeyId"] == key["Arn"]


# -- a key policy that names neither the root nor the account; the lockout check ---------------------


def test_put_key_policy_lockout_check_then_bypass_shuts_the_root_out(acl):
    key = acl.key()
    bob_only = policy(allow({"AWS": BOB_ARN}, ["kms:Encrypt", "kms:DescribeKey"]))
    assert refused(acl.root.put_key_policy, KeyId=key["KeyId"], PolicyName="default",
                   Policy=bob_only) == (400, "MalformedPolicyDocumentException", LOCKOUT)
    assert refused(acl.root.put_key_policy, KeyId=key["KeyId"], PolicyName="default",
                   Policy=bob_only, BypassPolicyLockoutSafetyCheck=False) == (
        400, "MalformedPolicyDocumentException", LOCKOUT)
    # the key policy is unchanged by the refused calls
    assert acl.root.get_key_policy(KeyId=key["KeyId"])["Policy"] == DEFAULT_POLICY

    acl.root.put_key_policy(KeyId=key["KeyId"], PolicyName="default", Policy=bob_only,
                            BypassPolicyLockoutSafetyCheck=True)
    assert acl.bob.encrypt(KeyId=key["KeyId"], Plaintext=b"b")["KeyId"] == key["Arn"]
    for action, call, kwargs in (
        ("kms:Encrypt", acl.root.encrypt, {"Plaintext": b"x"}),
        ("kms:GetKeyPolicy", acl.root.get_key_policy, {}),
        ("kms:PutKeyPolicy", acl.root.put_key_policy, {"Policy": DEFAULT_POLICY}),
    ):
        assert refused(call, KeyId=key["KeyId"], **kwargs) == access_denied(
            ROOT_ARN, action, key["Arn"], NO_RESOURCE), action
    # alice's identity policy allows Encrypt, but the key policy no longer delegates
    assert refused(acl.alice.encrypt, KeyId=key["KeyId"], Plaintext=b"x") == access_denied(
        ALICE_ARN, "kms:Encrypt", key["Arn"], NO_RESOURCE)


def test_create_key_lockout_check_and_bypass(acl):
    bob_only = policy(allow({"AWS": BOB_ARN}, "kms:*"))
    assert refused(acl.root.create_key, Policy=bob_only) == (
        400, "MalformedPolicyDocumentException", LOCKOUT)
    key = acl.root.create_key(Policy=bob_only, BypassPolicyLockoutSafetyCheck=True)["KeyMetadata"]
    assert acl.bob.get_key_policy(KeyId=key["KeyId"])["Policy"] == bob_only
    assert refused(acl.root.describe_key, KeyId=key["KeyId"]) == access_denied(
        ROOT_ARN, "kms:DescribeKey", key["Arn"], NO_RESOURCE)


def test_a_malformed_grant_token_is_refused_whether_or_not_the_caller_was_allowed_before(acl):
    """The caller's allowed decisions are cached per key and action; a grant token is checked
    on every request all the same."""
    key_id = acl.key()["KeyId"]
    bad_token = (400, "InvalidGrantTokenException", "The grant token is not valid.")
    assert refused(acl.root.encrypt, KeyId=key_id, Plaintext=b"x",
                   GrantTokens=["not-a-grant-token"]) == bad_token
    blob = acl.root.encrypt(KeyId=key_id, Plaintext=b"x")["CiphertextBlob"]  # allowed, cached
    assert refused(acl.root.encrypt, KeyId=key_id, Plaintext=b"x",
                   GrantTokens=["not-a-grant-token"]) == bad_token
    assert refused(acl.root.decrypt, CiphertextBlob=blob,
                   GrantTokens=["not-a-grant-token"]) == bad_token
    acl.root.decrypt(CiphertextBlob=blob)
    assert refused(acl.root.decrypt, CiphertextBlob=blob,
                   GrantTokens=["not-a-grant-token"]) == bad_token


def test_a_policy_nested_too_deep_to_parse_is_malformed(acl):
    """Nesting that exhausts the JSON parser's recursion (a 2 KB policy, 1,000 levels deep) is
    a malformed policy, never a 500."""
    key = acl.key()
    deep = '{"Statement":' + "[" * 1000 + "]" * 1000 + "}"
    malformed = (400, "MalformedPolicyDocumentException", "The policy document is not valid JSON.")
    assert refused(acl.root.put_key_policy, KeyId=key["KeyId"], PolicyName="default",
                   Policy=deep) == malformed
    assert refused(acl.root.create_key, Policy=deep) == malformed
    assert acl.root.get_key_policy(KeyId=key["KeyId"])["Policy"] == DEFAULT_POLICY


@pytest.mark.parametrize("principal", [
    f"arn:aws:iam::{ACCOUNT}:user/mallory",
    f"arn:aws:iam::{OTHER_ACCOUNT}:user/alice",
    f"arn:aws:iam::{ACCOUNT}:role/ghost",
])
def test_policy_naming_a_principal_that_does_not_exist_is_refused(acl, principal):
    key = acl.key()
    bad = policy(ROOT_STATEMENT, allow({"AWS": principal}, "kms:Encrypt"))
    assert refused(acl.root.put_key_policy, KeyId=key["KeyId"], PolicyName="default",
                   Policy=bad) == (400, "MalformedPolicyDocumentException", INVALID_PRINCIPALS)
    assert refused(acl.root.create_key, Policy=bad) == (
        400, "MalformedPolicyDocumentException", INVALID_PRINCIPALS)
    assert acl.root.get_key_policy(KeyId=key["KeyId"])["Policy"] == DEFAULT_POLICY


# -- condition keys -----------------------------------------------------------------------------------


def test_condition_encryption_context(acl):
    key = acl.key(policy(ROOT_STATEMENT, allow(
        {"AWS": BOB_ARN}, "kms:Encrypt",
        {"StringEquals": {"kms:EncryptionContext:app": "billing"}})))
    assert acl.bob.encrypt(KeyId=key["KeyId"], Plaintext=b"x",
                           EncryptionContext={"app": "billing", "env": "prod"})["KeyId"] \
        == key["Arn"]
    # the key part of kms:EncryptionContext:<k> is case-insensitive (KDG:conditions-kms)
    acl.bob.encrypt(KeyId=key["KeyId"], Plaintext=b"x", EncryptionContext={"APP": "billing"})
    expected = access_denied(BOB_ARN, "kms:Encrypt", key["Arn"], NO_IDENTITY)
    assert refused(acl.bob.encrypt, KeyId=key["KeyId"], Plaintext=b"x",
                   EncryptionContext={"app": "payroll"}) == expected
    # StringEquals compares the value case-sensitively
    assert refused(acl.bob.encrypt, KeyId=key["KeyId"], Plaintext=b"x",
                   EncryptionContext={"app": "Billing"}) == expected
    assert refused(acl.bob.encrypt, KeyId=key["KeyId"], Plaintext=b"x") == expected


def test_condition_caller_account(acl):
    key = acl.key(policy(ROOT_STATEMENT, allow(
        "*", "kms:Encrypt", {"StringEquals": {"kms:CallerAccount": ACCOUNT}})))
    assert acl.bob.encrypt(KeyId=key["KeyId"], Plaintext=b"x")["KeyId"] == key["Arn"]
    # carol's identity policy allows Encrypt on 111122223333's keys, but the key policy does not
    assert refused(acl.carol.encrypt, KeyId=key["Arn"], Plaintext=b"x") == access_denied(
        CAROL_ARN, "kms:Encrypt", key["Arn"], NO_RESOURCE)


def test_condition_multi_region(acl):
    """kms:MultiRegion and kms:MultiRegionKeyType are the key's (KDG conditions-kms): true and
    PRIMARY for a multi-Region primary; false, and kms:MultiRegionKeyType absent, for a
    single-Region key."""
    statements = policy(
        ROOT_STATEMENT,
        allow({"AWS": BOB_ARN}, "kms:Encrypt", {"Bool": {"kms:MultiRegion": "true"}}),
        allow({"AWS": BOB_ARN}, "kms:DescribeKey",
              {"StringEquals": {"kms:MultiRegionKeyType": "PRIMARY"}}),
    )
    primary = acl.key(statements, MultiRegion=True)
    single = acl.key(statements)
    assert acl.bob.encrypt(KeyId=primary["Arn"], Plaintext=b"x")["KeyId"] == primary["Arn"]
    assert acl.bob.describe_key(KeyId=primary["Arn"])["KeyMetadata"]["KeyId"] == primary["KeyId"]
    assert refused(acl.bob.encrypt, KeyId=single["Arn"], Plaintext=b"x") == access_denied(
        BOB_ARN, "kms:Encrypt", single["Arn"], NO_IDENTITY)
    assert refused(acl.bob.describe_key, KeyId=single["Arn"]) == access_denied(
        BOB_ARN, "kms:DescribeKey", single["Arn"], NO_IDENTITY)


def test_condition_principal_tag(acl):
    key = acl.key(policy(ROOT_STATEMENT, allow(
        "*", ["kms:Encrypt", "kms:GetKeyRotationStatus"],
        {"StringEquals": {"aws:PrincipalTag/team": "red"}})))
    assert acl.bob.encrypt(KeyId=key["KeyId"], Plaintext=b"x")["KeyId"] == key["Arn"]
    assert acl.bob.get_key_rotation_status(KeyId=key["KeyId"])["KeyRotationEnabled"] is False
    assert refused(acl.deployer.encrypt, KeyId=key["KeyId"], Plaintext=b"x") == access_denied(
        DEPLOYER_SESSION_ARN, "kms:Encrypt", key["Arn"], NO_IDENTITY)
    assert refused(acl.alice.get_key_rotation_status, KeyId=key["KeyId"]) == access_denied(
        ALICE_ARN, "kms:GetKeyRotationStatus", key["Arn"], NO_IDENTITY)


def test_condition_via_service_is_absent_on_direct_calls(acl):
    key = acl.key(policy(
        ROOT_STATEMENT,
        allow({"AWS": BOB_ARN}, "kms:Encrypt",
              {"StringEquals": {"kms:ViaService": f"ec2.{ids.REGION}.amazonaws.com"}}),
        allow({"AWS": BOB_ARN}, "kms:DescribeKey", {"Null": {"kms:ViaService": "true"}}),
        deny("*", "kms:Decrypt", {"Null": {"kms:ViaService": "true"}}),
    ))
    assert refused(acl.bob.encrypt, KeyId=key["KeyId"], Plaintext=b"x") == access_denied(
        BOB_ARN, "kms:Encrypt", key["Arn"], NO_IDENTITY)
    assert acl.bob.describe_key(KeyId=key["KeyId"])["KeyMetadata"]["Arn"] == key["Arn"]
    blob = acl.root.encrypt(KeyId=key["KeyId"], Plaintext=b"x")["CiphertextBlob"]
    assert refused(acl.root.decrypt, CiphertextBlob=blob) == access_denied(
        ROOT_ARN, "kms:Decrypt", key["Arn"], DENY_RESOURCE)


# -- cross-account ---------------------------------------------------------------------------------------


def test_cross_account_default_policy_refuses_the_other_account(acl):
    key = acl.key()
    assert refused(acl.carol.encrypt, KeyId=key["Arn"], Plaintext=b"x") == access_denied(
        CAROL_ARN, "kms:Encrypt", key["Arn"], NO_RESOURCE)
    assert refused(acl.other_root.encrypt, KeyId=key["Arn"], Plaintext=b"x") == access_denied(
        f"arn:aws:iam::{OTHER_ACCOUNT}:root", "kms:Encrypt", key["Arn"], NO_RESOURCE)


def test_cross_account_needs_the_key_policy_and_an_identity_policy(acl):
    key = acl.key(policy(ROOT_STATEMENT, allow(
        {"AWS": OTHER_ACCOUNT}, ["kms:Encrypt", "kms:Decrypt", "kms:DescribeKey"])))
    blob = acl.carol.encrypt(KeyId=key["Arn"], Plaintext=b"carol")["CiphertextBlob"]
    assert acl.carol.decrypt(CiphertextBlob=blob, KeyId=key["Arn"])["Plaintext"] == b"carol"
    assert acl.carol.describe_key(KeyId=key["Arn"])["KeyMetadata"]["AWSAccountId"] == ACCOUNT
    # the other account's root needs no identity policy
    assert acl.other_root.encrypt(KeyId=key["Arn"], Plaintext=b"r")["KeyId"] == key["Arn"]
    # frank: the key policy allows his account, but no identity policy of his allows
    assert refused(acl.frank.encrypt, KeyId=key["Arn"], Plaintext=b"x") == access_denied(
        FRANK_ARN, "kms:Encrypt", key["Arn"], NO_IDENTITY)
    # an action the key policy does not extend to the other account
    assert refused(acl.carol.generate_data_key, KeyId=key["Arn"], NumberOfBytes=16) == \
        access_denied(CAROL_ARN, "kms:GenerateDataKey", key["Arn"], NO_RESOURCE)
    # a bare key id names a key of the caller's own account
    assert refused(acl.carol.encrypt, KeyId=key["KeyId"], Plaintext=b"x") == (
        400, "NotFoundException",
        f"Key 'arn:aws:kms:{ids.REGION}:{OTHER_ACCOUNT}:key/{key['KeyId']}' does not exist")


def test_a_cross_account_call_is_recorded_in_both_accounts(acl):
    """DG logging-using-cloudtrail: a cross-account call is logged in the caller's and the key
    owner's account (copies sharing a sharedEventID); one denied access, in the caller's only."""
    key = acl.key(policy(ROOT_STATEMENT, allow({"AWS": OTHER_ACCOUNT}, "kms:Encrypt")))
    answer = acl.carol.encrypt(KeyId=key["Arn"], Plaintext=b"carol")
    copies = stored_audit_records(acl.server, answer["ResponseMetadata"]["RequestId"])
    assert [c["recipientAccountId"] for c in copies] == [OTHER_ACCOUNT, ACCOUNT]
    assert copies[0]["sharedEventID"] == copies[1]["sharedEventID"]
    assert copies[0]["eventID"] != copies[1]["eventID"]
    assert all(c["userIdentity"]["arn"] == CAROL_ARN for c in copies)
    found = acl.server.ledger_get(f"/ledger/v1/audit?key_id={key['KeyId']}&limit=10")
    assert [(r["eventName"], r["recipientAccountId"]) for r in found.json()["Records"]] == [
        ("Encrypt", ACCOUNT), ("CreateKey", ACCOUNT)]
    materials = acl.server.ledger_get(f"/ledger/v1/keys/{key['KeyId']}/materials").json()
    assert materials["Materials"][0]["Produced"]["Encrypt"] == 1  # one use, counted once
    with pytest.raises(ClientError) as denied:
        acl.carol.generate_data_key(KeyId=key["Arn"], NumberOfBytes=16)
    request_id = denied.value.response["ResponseMetadata"]["RequestId"]
    assert [(c["recipientAccountId"], "sharedEventID" in c)
            for c in stored_audit_records(acl.server, request_id)] == [(OTHER_ACCOUNT, False)]


def test_cross_account_decrypt_finds_the_key_from_the_symmetric_ciphertext(acl):
    """Decrypt's KeyId "is required only when the ciphertext was encrypted under an asymmetric
    KMS key"; cross-account: "A short key ID is also acceptable when decrypting symmetric
    ciphertexts" (botocore's KMS model, Decrypt and Decrypt.KeyId)."""
    key = acl.key(policy(ROOT_STATEMENT, allow({"AWS": OTHER_ACCOUNT}, ["kms:Decrypt"])))
    blob = acl.root.encrypt(KeyId=key["KeyId"], Plaintext=b"for carol")["CiphertextBlob"]
    decrypted = acl.carol.decrypt(CiphertextBlob=blob)
    assert (decrypted["KeyId"], decrypted["Plaintext"]) == (key["Arn"], b"for carol")
    decrypted = acl.carol.decrypt(CiphertextBlob=blob, KeyId=key["KeyId"])
    assert (decrypted["KeyId"], decrypted["Plaintext"]) == (key["Arn"], b"for carol")


def test_cross_account_key_policy_naming_the_user_still_needs_her_identity_policy(acl):
    key = acl.key(policy(ROOT_STATEMENT, allow(
        {"AWS": CAROL_ARN}, ["kms:Encrypt", "kms:GenerateDataKey"])))
    assert acl.carol.encrypt(KeyId=key["Arn"], Plaintext=b"x")["KeyId"] == key["Arn"]
    assert refused(acl.carol.generate_data_key, KeyId=key["Arn"], NumberOfBytes=16) == \
        access_denied(CAROL_ARN, "kms:GenerateDataKey", key["Arn"], NO_IDENTITY)


# -- operations authorized by identity policies alone -------------------------------------------------


@pytest.mark.parametrize("operation,action,kwargs", [
    ("create_key", "kms:CreateKey", {}),
    ("list_keys", "kms:ListKeys", {}),
    ("list_aliases", "kms:ListAliases", {}),
    ("generate_random", "kms:GenerateRandom", {"NumberOfBytes": 16}),
])
def test_iam_only_operations_refused_without_identity_policy(acl, operation, action, kwargs):
    assert refused(getattr(acl.bob, operation), **kwargs) == access_denied(
        BOB_ARN, action, "*", NO_IDENTITY)
    getattr(acl.root, operation)(**kwargs)  # the account's root needs no identity policy


# -- grants ------------------------------------------------------------------------------------------------


def _grant(acl, key, grantee=BOB_ARN, operations=("Encrypt", "Decrypt"), **kwargs):
    return acl.root.create_grant(KeyId=key["KeyId"], GranteePrincipal=grantee,
                                 Operations=list(operations), **kwargs)


def _grants(acl, key) -> list[dict[str, Any]]:
    return acl.root.list_grants(KeyId=key["KeyId"])["Grants"]


def test_grant_lets_the_grantee_use_the_key_at_once(acl):
    key = acl.key()
    assert refused(acl.bob.encrypt, KeyId=key["KeyId"], Plaintext=b"x") == access_denied(
        BOB_ARN, "kms:Encrypt", key["Arn"], NO_IDENTITY)
    created = _grant(acl, key)
    blob = acl.bob.encrypt(KeyId=key["KeyId"], Plaintext=b"granted")["CiphertextBlob"]
    blob = acl.bob.encrypt(KeyId=key["KeyId"], Plaintext=b"granted",
                           GrantTokens=[created["GrantToken"]])["CiphertextBlob"]
    assert acl.bob.decrypt(CiphertextBlob=blob,
                           GrantTokens=[created["GrantToken"]])["Plaintext"] == b"granted"
    # only the operations the grant lists
    assert refused(acl.bob.generate_data_key, KeyId=key["KeyId"], NumberOfBytes=16) == \
        access_denied(BOB_ARN, "kms:GenerateDataKey", key["Arn"], NO_IDENTITY)
    # only for its grantee
    assert refused(acl.deployer.encrypt, KeyId=key["KeyId"], Plaintext=b"x") == access_denied(
        DEPLOYER_SESSION_ARN, "kms:Encrypt", key["Arn"], NO_IDENTITY)
    [entry] = _grants(acl, key)
    assert entry["KeyId"] == key["Arn"]
    assert entry["GrantId"] == created["GrantId"]
    assert entry["GranteePrincipal"] == BOB_ARN
    assert entry["IssuingAccount"] == ROOT_ARN
    assert sorted(entry["Operations"]) == ["Decrypt", "Encrypt"]


def test_grant_constraint_encryption_context_subset(acl):
    key = acl.key()
    _grant(acl, key, operations=["Encrypt"],
           Constraints={"EncryptionContextSubset": {"app": "billing"}})
    assert acl.bob.encrypt(KeyId=key["KeyId"], Plaintext=b"x",
                           EncryptionContext={"app": "billing", "env": "prod"})["KeyId"] \
        == key["Arn"]
    assert acl.bob.encrypt(KeyId=key["KeyId"], Plaintext=b"x",
                           EncryptionContext={"app": "billing"})["KeyId"] == key["Arn"]
    expected = access_denied(BOB_ARN, "kms:Encrypt", key["Arn"], NO_IDENTITY)
    assert refused(acl.bob.encrypt, KeyId=key["KeyId"], Plaintext=b"x",
                   EncryptionContext={"app": "payroll"}) == expected
    assert refused(acl.bob.encrypt, KeyId=key["KeyId"], Plaintext=b"x",
                   EncryptionContext={"env": "prod"}) == expected
    assert refused(acl.bob.encrypt, KeyId=key["KeyId"], Plaintext=b"x") == expected


def test_grantee_retires_a_grant_that_allows_retire_grant(acl):
    key = acl.key()
    created = _grant(acl, key, operations=["Encrypt", "RetireGrant"])
    acl.bob.encrypt(KeyId=key["KeyId"], Plaintext=b"x")
    acl.bob.retire_grant(KeyId=key["Arn"], GrantId=created["GrantId"])
    assert _grants(acl, key) == []
    assert refused(acl.bob.encrypt, KeyId=key["KeyId"], Plaintext=b"x") == access_denied(
        BOB_ARN, "kms:Encrypt", key["Arn"], NO_IDENTITY)


def test_retiring_principal_retires_with_the_grant_token(acl):
    key = acl.key()
    created = _grant(acl, key, grantee=DEPLOYER_ROLE_ARN, operations=["Encrypt"],
                     RetiringPrincipal=BOB_ARN)
    # the grant names the role: its sessions are grantees
    acl.deployer.encrypt(KeyId=key["KeyId"], Plaintext=b"x")
    retirable = acl.root.list_retirable_grants(RetiringPrincipal=BOB_ARN)["Grants"]
    assert [g["GrantId"] for g in retirable if g["KeyId"] == key["Arn"]] == [created["GrantId"]]
    acl.bob.retire_grant(GrantToken=created["GrantToken"])
    assert _grants(acl, key) == []
    assert refused(acl.deployer.encrypt, KeyId=key["KeyId"], Plaintext=b"x") == access_denied(
        DEPLOYER_SESSION_ARN, "kms:Encrypt", key["Arn"], NO_IDENTITY)


def test_root_revokes_a_grant(acl):
    key = acl.key()
    created = _grant(acl, key)
    acl.bob.encrypt(KeyId=key["KeyId"], Plaintext=b"x")
    acl.root.revoke_grant(KeyId=key["KeyId"], GrantId=created["GrantId"])
    assert _grants(acl, key) == []
    assert refused(acl.bob.encrypt, KeyId=key["KeyId"], Plaintext=b"x") == access_denied(
        BOB_ARN, "kms:Encrypt", key["Arn"], NO_IDENTITY)


def test_key_policy_deny_beats_a_grant(acl):
    key = acl.key(policy(ROOT_STATEMENT, deny({"AWS": BOB_ARN}, "kms:Encrypt")))
    created = _grant(acl, key)
    assert refused(acl.bob.encrypt, KeyId=key["KeyId"], Plaintext=b"x") == access_denied(
        BOB_ARN, "kms:Encrypt", key["Arn"], DENY_RESOURCE)
    assert refused(acl.bob.encrypt, KeyId=key["KeyId"], Plaintext=b"x",
                   GrantTokens=[created["GrantToken"]]) == access_denied(
        BOB_ARN, "kms:Encrypt", key["Arn"], DENY_RESOURCE)
    # Decrypt, which the policy does not deny, is granted
    blob = acl.root.encrypt(KeyId=key["KeyId"], Plaintext=b"x")["CiphertextBlob"]
    assert acl.bob.decrypt(CiphertextBlob=blob)["Plaintext"] == b"x"

