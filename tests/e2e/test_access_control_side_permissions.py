"""Permissions an operation needs beside its own, and condition keys of particular operations,
as the KMS API reference documents them; driven with boto3 against a real server (found in an
adversarial review: each was skipped or never set).

* CreateKey: "To use the Tags parameter, kms:TagResource (IAM policy)".
* ReplicateKey: "kms:CreateKey in an IAM policy in the replica Region. To use the Tags
  parameter, kms:TagResource in an IAM policy in the replica Region."
* kms:PolicyName (GetKeyPolicy, PutKeyPolicy: "If the request doesn't include PolicyName, the
  value of kms:PolicyName is default"), kms:ReplicaRegion (ReplicateKey), kms:PrimaryRegion
  (UpdatePrimaryRegion).
* kms:RequestAlias: the alias a cryptographic operation's KeyId names, Decrypt's too.
"""

from __future__ import annotations

import json
from typing import Any

import pytest
from botocore.credentials import Credentials
from botocore.exceptions import ClientError

from tests.e2e.conftest import ACCOUNT_ID, root_identities, until

pytestmark = pytest.mark.e2e

MAKER = Credentials("AKIAE2EMAKER00000001", "maker/secret/access/key/00000000000001")
NO_TAGS = Credentials("AKIAE2ENOTAGS0000001", "notags/secret/access/key/0000000000001")
REPLICATOR = Credentials("AKIAE2EREPLICATOR001", "replicator/secret/access/key/00000000001")
ALICE = Credentials("AKIAE2EALICESIDE0001", "alice/side/secret/access/key/000000000001")
ROOT = f"arn:aws:iam::{ACCOUNT_ID}:root"


def _policy(*statements: dict[str, Any]) -> dict[str, Any]:
    return {"Version": "2012-10-17", "Statement": list(statements)}


def _user(credentials: Credentials, *statements: dict[str, Any]) -> dict[str, Any]:
    return {"access_keys": [{"access_key_id": credentials.access_key,
                             "secret_access_key": credentials.secret_key}],
            "policies": {"Policy": _policy(*statements)}}


def _identities() -> dict[str, Any]:
    identities = root_identities()
    identities["accounts"][ACCOUNT_ID]["users"] = {
        "maker": _user(MAKER, {"Effect": "Allow", "Action": "kms:CreateKey", "Resource": "*"}),
        "notags": _user(NO_TAGS, {"Effect": "Allow", "Action": "kms:*", "Resource": "*"},
                        {"Effect": "Deny", "Action": "kms:TagResource", "Resource": "*"}),
        "replicator": _user(
            REPLICATOR,
            {"Effect": "Allow", "Action": ["kms:ReplicateKey", "kms:DescribeKey"],
             "Resource": "*"},
            {"Effect": "Allow", "Action": ["kms:CreateKey", "kms:TagResource"], "Resource": "*",
             "Condition": {"StringEquals": {"aws:RequestedRegion": "eu-west-1",
                                            "kms:MultiRegionKeyType": "REPLICA",
                                            "kms:KeySpec": "RSA_2048"},
                           "Bool": {"kms:MultiRegion": "true"}}}),
        "alice": _user(ALICE, {"Effect": "Allow", "Action": "kms:*", "Resource": "*"}),
    }
    return identities


@pytest.fixture(scope="module")
def server(server_factory):
    srv = server_factory("side-permissions", identities=_identities())
    yield srv
    srv.cleanup()


def refused(call, **kwargs) -> tuple[str, str]:
    with pytest.raises(ClientError) as excinfo:
        call(**kwargs)
    error = excinfo.value.response["Error"]
    return error["Code"], error["Message"]


def denied(user: str, action: str, resource: str, why: str) -> tuple[str, str]:
    return ("AccessDeniedException", f"User: arn:aws:iam::{ACCOUNT_ID}:user/{user} is not "
            f"authorized to perform: {action} on resource: {resource} {why}")


NO_IDENTITY = "because no identity-based policy allows the {} action"
DENY_IDENTITY = "with an explicit deny in an identity-based policy"
DENY_RESOURCE = "with an explicit deny in a resource-based policy"
TAGS = [{"TagKey": "team", "TagValue": "payments"}]


def test_create_key_with_tags_needs_tag_resource(server):
    maker, notags, root = (server.kms(credentials=MAKER), server.kms(credentials=NO_TAGS),
                           server.kms())
    before = {k["KeyId"] for k in root.list_keys()["Keys"]}
    code, message = refused(maker.create_key, Tags=TAGS)
    assert code == "AccessDeniedException"
    assert message.startswith(f"User: arn:aws:iam::{ACCOUNT_ID}:user/maker is not authorized to "
                              f"perform: kms:TagResource on resource: arn:aws:kms:us-east-1:"
                              f"{ACCOUNT_ID}:key/")
    assert message.endswith(NO_IDENTITY.format("kms:TagResource"))
    code, message = refused(notags.create_key, Tags=TAGS)
    assert (code, message.endswith(DENY_IDENTITY)) == ("AccessDeniedException", True)
    assert {k["KeyId"] for k in root.list_keys()["Keys"]} == before  # no key was made
    assert maker.create_key()["KeyMetadata"]["KeyState"] == "Enabled"  # without tags: its own


def test_replicate_key_needs_create_key_and_tag_resource_in_the_replica_region(server):
    """The replica-Region checks read the replica the request makes: its key spec, multi-Region
    (true) and multi-Region key type (REPLICA); not ReplicateKey's parameters as if they were
    CreateKey's (a first version of the fix did: found in a review)."""
    root, replicator = server.kms(), server.kms(credentials=REPLICATOR)
    key = root.create_key(MultiRegion=True, KeySpec="RSA_2048",
                          KeyUsage="ENCRYPT_DECRYPT")["KeyMetadata"]
    # allowed CreateKey and TagResource in eu-west-1 only, of multi-Region RSA_2048 replicas
    code, message = refused(replicator.replicate_key, KeyId=key["Arn"], ReplicaRegion="us-west-2")
    assert (code, message) == denied("replicator", "kms:CreateKey", "*",
                                     NO_IDENTITY.format("kms:CreateKey"))
    assert root.describe_key(KeyId=key["Arn"])["KeyMetadata"]["MultiRegionConfiguration"][
        "ReplicaKeys"] == []  # nothing was made
    replica = replicator.replicate_key(KeyId=key["Arn"], ReplicaRegion="eu-west-1", Tags=TAGS)
    assert replica["ReplicaTags"] == TAGS
    symmetric = root.create_key(MultiRegion=True)["KeyMetadata"]  # not RSA_2048: refused
    code, message = refused(replicator.replicate_key, KeyId=symmetric["Arn"],
                            ReplicaRegion="eu-west-1")
    assert (code, message) == denied("replicator", "kms:CreateKey", "*",
                                     NO_IDENTITY.format("kms:CreateKey"))


def _statements(action: str, condition: dict[str, Any]) -> str:
    return json.dumps(_policy(
        {"Effect": "Allow", "Principal": {"AWS": ROOT}, "Action": "kms:*", "Resource": "*"},
        {"Effect": "Deny", "Principal": {"AWS": f"arn:aws:iam::{ACCOUNT_ID}:user/alice"},
         "Action": action, "Resource": "*", "Condition": condition}))


def test_policy_name_replica_region_and_primary_region_condition_keys(server):
    root, alice = server.kms(), server.kms(credentials=ALICE)
    key = root.create_key(Policy=_statements(
        "kms:GetKeyPolicy", {"StringEquals": {"kms:PolicyName": "default"}}))["KeyMetadata"]
    assert refused(alice.get_key_policy, KeyId=key["Arn"]) == denied(
        "alice", "kms:GetKeyPolicy", key["Arn"], DENY_RESOURCE)  # (no PolicyName: "default")

    mrk = root.create_key(MultiRegion=True, Policy=_statements(
        "kms:ReplicateKey", {"StringEquals": {"kms:ReplicaRegion": "eu-west-1"}}))["KeyMetadata"]
    assert refused(alice.replicate_key, KeyId=mrk["Arn"], ReplicaRegion="eu-west-1") == denied(
        "alice", "kms:ReplicateKey", mrk["Arn"], DENY_RESOURCE)
    alice.replicate_key(KeyId=mrk["Arn"], ReplicaRegion="us-west-2")  # another Region: allowed
    west = server.kms("us-west-2")
    until(lambda: west.describe_key(KeyId=mrk["KeyId"])["KeyMetadata"]["KeyState"] == "Enabled")

    root.put_key_policy(KeyId=mrk["Arn"], PolicyName="default", Policy=_statements(
        "kms:UpdatePrimaryRegion", {"StringEquals": {"kms:PrimaryRegion": "us-west-2"}}))
    assert refused(alice.update_primary_region, KeyId=mrk["Arn"],
                   PrimaryRegion="us-west-2") == denied(
        "alice", "kms:UpdatePrimaryRegion", mrk["Arn"], DENY_RESOURCE)


def test_decrypt_by_alias_sets_request_alias(server):
    root, alice = server.kms(), server.kms(credentials=ALICE)
    key = root.create_key(Policy=json.dumps(_policy(
        {"Effect": "Allow", "Principal": {"AWS": ROOT}, "Action": "kms:*", "Resource": "*"},
        {"Effect": "Deny", "Principal": {"AWS": f"arn:aws:iam::{ACCOUNT_ID}:user/alice"},
         "Action": ["kms:Encrypt", "kms:Decrypt"], "Resource": "*",
         "Condition": {"StringNotEquals": {"kms:RequestAlias": "alias/side-app"}}})))[
        "KeyMetadata"]
    root.create_alias(AliasName="alias/side-app", TargetKeyId=key["KeyId"])
    blob = alice.encrypt(KeyId="alias/side-app", Plaintext=b"by alias")["CiphertextBlob"]
    assert alice.decrypt(CiphertextBlob=blob, KeyId="alias/side-app")["Plaintext"] == b"by alias"
    alias_arn = f"arn:aws:kms:us-east-1:{ACCOUNT_ID}:alias/side-app"
    assert alice.decrypt(CiphertextBlob=blob, KeyId=alias_arn)["Plaintext"] == b"by alias"
    assert refused(alice.decrypt, CiphertextBlob=blob) == denied(  # named by no alias
        "alice", "kms:Decrypt", key["Arn"], DENY_RESOURCE)
