"""Full KMS key lifecycle driven by a real boto3 client against the running server."""

from __future__ import annotations

import json
import re
import uuid
from datetime import UTC, datetime, timedelta

import pytest

pytestmark = pytest.mark.e2e

ACCOUNT = "111122223333"
REGION = "us-east-1"
UUID_RE = re.compile(r"^[0-9a-f]{8}-[0-9a-f]{4}-[0-9a-f]{4}-[0-9a-f]{4}-[0-9a-f]{12}$")


def key_arn(key_id: str, region: str = REGION) -> str:
    return f"arn:aws:kms:{region}:{ACCOUNT}:key/{key_id}"


def alias_arn(alias_name: str, region: str = REGION) -> str:
    return f"arn:aws:kms:{region}:{ACCOUNT}:{alias_name}"


def unique_alias(prefix: str = "e2e") -> str:
    return f"alias/{prefix}-{uuid.uuid4().hex[:12]}"


def utcnow() -> datetime:
    return datetime.now(UTC)


# --------------------------------------------------------------------------------------------
# CreateKey / DescribeKey / ListKeys / UpdateKeyDescription
# --------------------------------------------------------------------------------------------


def test_create_key_returns_complete_metadata(kms):
    before = utcnow() - timedelta(minutes=2)
    md = kms.create_key(Description="lifecycle: metadata")["KeyMetadata"]
    after = utcnow() + timedelta(minutes=2)

    assert UUID_RE.match(md["KeyId"]), md["KeyId"]
    assert md["AWSAccountId"] == ACCOUNT
    assert md["Arn"] == key_arn(md["KeyId"])
    assert md["Description"] == "lifecycle: metadata"
    assert md["Enabled"] is True
    assert md["KeyState"] == "Enabled"
    assert md["KeySpec"] == "SYMMETRIC_DEFAULT"
    assert md["KeyUsage"] == "ENCRYPT_DECRYPT"
    assert md["EncryptionAlgorithms"] == ["SYMMETRIC_DEFAULT"]
    assert md["Origin"] == "AWS_KMS"
    assert md["KeyManager"] == "CUSTOMER"
    assert md.get("MultiRegion", False) is False
    assert isinstance(md["CreationDate"], datetime)
    assert before <= md["CreationDate"] <= after
    assert isinstance(md["CurrentKeyMaterialId"], str) and md["CurrentKeyMaterialId"]
    assert "DeletionDate" not in md


def test_describe_key_matches_create_key_by_every_identifier(kms, new_key):
    md = new_key("lifecycle: describe")
    alias = unique_alias("describe")
    kms.create_alias(AliasName=alias, TargetKeyId=md["KeyId"])

    for ident in (md["KeyId"], md["Arn"], alias, alias_arn(alias)):
        got = kms.describe_key(KeyId=ident)["KeyMetadata"]
        assert got["KeyId"] == md["KeyId"], ident
        assert got["Arn"] == md["Arn"]
        assert got["CreationDate"] == md["CreationDate"]
        assert got["CurrentKeyMaterialId"] == md["CurrentKeyMaterialId"]
        assert got["KeyState"] == "Enabled"
        assert got["Description"] == "lifecycle: describe"


def test_unknown_key_ids_raise_not_found(kms, aws_error):
    missing = str(uuid.uuid4())
    for ident in (missing, key_arn(missing), "alias/does-not-exist-" + missing[:8], "not-a-key-id"):
        with aws_error("NotFoundException"):
            kms.describe_key(KeyId=ident)
    with aws_error("NotFoundException"):
        kms.encrypt(KeyId=missing, Plaintext=b"x")
    with aws_error("NotFoundException"):
        kms.enable_key(KeyId=missing)
    with aws_error("NotFoundException"):
        kms.schedule_key_deletion(KeyId=missing, PendingWindowInDays=7)


def test_list_keys_pagination(shared_server, aws_error):
    # A region of its own so the exact key set is known.
    kms = shared_server.kms("ca-central-1")
    created = {kms.create_key(Description=f"page {i}")["KeyMetadata"]["KeyId"] for i in range(5)}

    seen: list[str] = []
    pages = 0
    marker = None
    while True:
        kwargs = {"Limit": 2}
        if marker:
            kwargs["Marker"] = marker
        resp = kms.list_keys(**kwargs)
        pages += 1
        assert len(resp["Keys"]) <= 2
        for entry in resp["Keys"]:
            assert entry["KeyArn"] == key_arn(entry["KeyId"], "ca-central-1")
            seen.append(entry["KeyId"])
        if not resp["Truncated"]:
            assert "NextMarker" not in resp or not resp["NextMarker"]
            break
        assert resp["NextMarker"]
        marker = resp["NextMarker"]
        assert pages < 10, "pagination does not terminate"

    assert pages == 3
    assert len(seen) == len(set(seen)) == 5
    assert set(seen) == created

    unpaged = kms.list_keys()
    assert unpaged["Truncated"] is False
    assert {k["KeyId"] for k in unpaged["Keys"]} == created

    paginated = {
        k["KeyId"]
        for page in kms.get_paginator("list_keys").paginate(PaginationConfig={"PageSize": 2})
        for k in page["Keys"]
    }
    assert paginated == created

    with aws_error("InvalidMarkerException"):
        kms.list_keys(Limit=2, Marker="this-is-not-a-marker")


def test_list_keys_includes_new_key_and_rejects_bad_limit(shared_server, kms, new_key, aws_error):
    md = new_key("lifecycle: list")
    ids = {
        k["KeyId"] for page in kms.get_paginator("list_keys").paginate() for k in page["Keys"]
    }
    assert md["KeyId"] in ids
    raw = shared_server.kms(validate=False)
    with aws_error("ValidationException"):
        raw.list_keys(Limit=0)
    with aws_error("ValidationException"):
        raw.list_keys(Limit=1001)


def test_update_key_description(kms, new_key):
    md = new_key("before")
    kms.update_key_description(KeyId=md["KeyId"], Description="after")
    assert kms.describe_key(KeyId=md["Arn"])["KeyMetadata"]["Description"] == "after"


# --------------------------------------------------------------------------------------------
# Aliases
# --------------------------------------------------------------------------------------------


def test_alias_lifecycle(kms, new_key, aws_error):
    k1 = new_key("alias target 1")
    k2 = new_key("alias target 2")
    alias = unique_alias("life")

    kms.create_alias(AliasName=alias, TargetKeyId=k1["KeyId"])

    listed = kms.list_aliases(KeyId=k1["KeyId"])["Aliases"]
    assert [a["AliasName"] for a in listed] == [alias]
    entry = listed[0]
    assert entry["AliasArn"] == alias_arn(alias)
    assert entry["TargetKeyId"] == k1["KeyId"]
    assert isinstance(entry.get("CreationDate"), datetime)

    all_names = {
        a["AliasName"] for page in kms.get_paginator("list_aliases").paginate() for a in page["Aliases"]
    }
    assert alias in all_names

    # encrypt by alias name and alias ARN resolves to the key
    for ident in (alias, alias_arn(alias)):
        resp = kms.encrypt(KeyId=ident, Plaintext=b"via alias")
        assert resp["KeyId"] == k1["Arn"]

    with aws_error("AlreadyExistsException"):
        kms.create_alias(AliasName=alias, TargetKeyId=k2["KeyId"])

    kms.update_alias(AliasName=alias, TargetKeyId=k2["KeyId"])
    assert kms.describe_key(KeyId=alias)["KeyMetadata"]["KeyId"] == k2["KeyId"]
    assert kms.list_aliases(KeyId=k1["KeyId"])["Aliases"] == []
    assert [a["AliasName"] for a in kms.list_aliases(KeyId=k2["KeyId"])["Aliases"]] == [alias]

    kms.delete_alias(AliasName=alias)
    assert kms.list_aliases(KeyId=k2["KeyId"])["Aliases"] == []
    with aws_error("NotFoundException"):
        kms.describe_key(KeyId=alias)
    with aws_error("NotFoundException"):
        kms.delete_alias(AliasName=alias)
    with aws_error("NotFoundException"):
        kms.update_alias(AliasName=alias, TargetKeyId=k1["KeyId"])

    # the key itself is untouched by alias operations
    assert kms.describe_key(KeyId=k2["KeyId"])["KeyMetadata"]["KeyState"] == "Enabled"


def test_key_can_have_several_aliases(kms, new_key):
    md = new_key("multi-alias")
    names = sorted(unique_alias("multi") for _ in range(3))
    for name in names:
        kms.create_alias(AliasName=name, TargetKeyId=md["Arn"])
    listed = sorted(a["AliasName"] for a in kms.list_aliases(KeyId=md["KeyId"])["Aliases"])
    assert listed == names
    for name in names:
        assert kms.describe_key(KeyId=name)["KeyMetadata"]["KeyId"] == md["KeyId"]


def test_alias_validation_errors(kms, new_key, aws_error):
    md = new_key("alias validation")
    # The alias/aws/ prefix is reserved for AWS managed keys.
    with aws_error("NotAuthorizedException"):
        kms.create_alias(AliasName="alias/aws/e2e-" + uuid.uuid4().hex[:8], TargetKeyId=md["KeyId"])
    # Real KMS: "Alias must start with the prefix "alias/"" -> ValidationException
    with aws_error("ValidationException"):
        kms.create_alias(AliasName="no-prefix-" + uuid.uuid4().hex[:8], TargetKeyId=md["KeyId"])
    with aws_error("NotFoundException"):
        kms.create_alias(AliasName=unique_alias("orphan"), TargetKeyId=str(uuid.uuid4()))
    assert kms.list_aliases(KeyId=md["KeyId"])["Aliases"] == []


# --------------------------------------------------------------------------------------------
# Tags and key policy
# --------------------------------------------------------------------------------------------


def _tags(kms, key_id):
    resp = kms.list_resource_tags(KeyId=key_id)
    assert resp["Truncated"] is False
    return {t["TagKey"]: t["TagValue"] for t in resp["Tags"]}


def test_tags(kms, new_key, aws_error):
    md = new_key("tags")
    assert _tags(kms, md["KeyId"]) == {}

    kms.tag_resource(
        KeyId=md["KeyId"],
        Tags=[{"TagKey": "env", "TagValue": "test"}, {"TagKey": "team", "TagValue": "kms"}],
    )
    assert _tags(kms, md["KeyId"]) == {"env": "test", "team": "kms"}

    kms.tag_resource(KeyId=md["Arn"], Tags=[{"TagKey": "env", "TagValue": "prod"}])
    assert _tags(kms, md["KeyId"]) == {"env": "prod", "team": "kms"}

    kms.untag_resource(KeyId=md["KeyId"], TagKeys=["team"])
    assert _tags(kms, md["Arn"]) == {"env": "prod"}

    with aws_error("NotFoundException"):
        kms.list_resource_tags(KeyId=str(uuid.uuid4()))
    with aws_error("NotFoundException"):
        kms.tag_resource(KeyId=str(uuid.uuid4()), Tags=[{"TagKey": "a", "TagValue": "b"}])


def test_create_key_with_tags(kms):
    md = kms.create_key(
        Description="tagged at birth", Tags=[{"TagKey": "owner", "TagValue": "e2e"}]
    )["KeyMetadata"]
    assert _tags(kms, md["KeyId"]) == {"owner": "e2e"}


def _principals(statement) -> list[str]:
    principal = statement.get("Principal", {})
    if isinstance(principal, str):
        return [principal]
    aws = principal.get("AWS", [])
    return [aws] if isinstance(aws, str) else list(aws)


def _actions(statement) -> list[str]:
    action = statement.get("Action", [])
    return [action] if isinstance(action, str) else list(action)


def test_key_policy(kms, new_key, aws_error):
    md = new_key("policy")
    policy = json.loads(kms.get_key_policy(KeyId=md["KeyId"], PolicyName="default")["Policy"])
    statements = policy["Statement"]
    if isinstance(statements, dict):
        statements = [statements]
    assert any(
        s.get("Effect") == "Allow"
        and f"arn:aws:iam::{ACCOUNT}:root" in _principals(s)
        and "kms:*" in _actions(s)
        and s.get("Resource") in ("*", ["*"])
        for s in statements
    ), policy

    assert kms.list_key_policies(KeyId=md["KeyId"])["PolicyNames"] == ["default"]
    # a key has one policy, so no Marker is ever issued: any Marker is past its end (the
    # model gives ListKeyPolicies no InvalidMarkerException)
    for marker in ("garbage", "a2wxOmRlZmF1bHQ="):
        listed = kms.list_key_policies(KeyId=md["KeyId"], Marker=marker)
        assert (listed["PolicyNames"], listed["Truncated"]) == ([], False)

    new_policy = {
        "Version": "2012-10-17",
        "Id": "e2e-policy",
        "Statement": [
            {
                "Sid": "Enable IAM User Permissions",
                "Effect": "Allow",
                "Principal": {"AWS": f"arn:aws:iam::{ACCOUNT}:root"},
                "Action": "kms:*",
                "Resource": "*",
            },
            {
                "Sid": "AllowDecryptForApp",
                "Effect": "Allow",
                "Principal": {"AWS": f"arn:aws:iam::{ACCOUNT}:role/app"},
                "Action": ["kms:Decrypt"],
                "Resource": "*",
            },
        ],
    }
    kms.put_key_policy(KeyId=md["KeyId"], PolicyName="default", Policy=json.dumps(new_policy))
    stored = json.loads(kms.get_key_policy(KeyId=md["Arn"], PolicyName="default")["Policy"])
    assert stored == new_policy

    with aws_error("MalformedPolicyDocumentException"):
        kms.put_key_policy(KeyId=md["KeyId"], PolicyName="default", Policy="{not json")
    with aws_error("MalformedPolicyDocumentException"):
        kms.put_key_policy(KeyId=md["KeyId"], PolicyName="default", Policy="[1, 2, 3]")
    # a rejected policy leaves the stored one untouched
    assert json.loads(kms.get_key_policy(KeyId=md["KeyId"], PolicyName="default")["Policy"]) == new_policy

    with aws_error("NotFoundException"):
        kms.get_key_policy(KeyId=str(uuid.uuid4()), PolicyName="default")


# --------------------------------------------------------------------------------------------
# Cryptographic operations
# --------------------------------------------------------------------------------------------

CTX = {"purpose": "e2e", "tenant": "t-1"}


def test_encrypt_decrypt_with_encryption_context(kms, new_key, aws_error):
    k1 = new_key("crypto 1")
    k2 = new_key("crypto 2")
    plaintext = b"attack at dawn \x00\xff" * 10

    enc = kms.encrypt(KeyId=k1["KeyId"], Plaintext=plaintext, EncryptionContext=CTX)
    assert enc["KeyId"] == k1["Arn"]
    assert enc["EncryptionAlgorithm"] == "SYMMETRIC_DEFAULT"
    blob = enc["CiphertextBlob"]
    assert plaintext not in blob and len(blob) > len(plaintext)

    # Decrypt without KeyId: the ciphertext identifies its key; context key order is irrelevant
    dec = kms.decrypt(CiphertextBlob=blob, EncryptionContext=dict(reversed(list(CTX.items()))))
    assert dec["Plaintext"] == plaintext
    assert dec["KeyId"] == k1["Arn"]
    assert dec["EncryptionAlgorithm"] == "SYMMETRIC_DEFAULT"
    assert dec["KeyMaterialId"] == k1["CurrentKeyMaterialId"]

    # with the right KeyId in every accepted form
    for ident in (k1["KeyId"], k1["Arn"]):
        assert kms.decrypt(CiphertextBlob=blob, EncryptionContext=CTX, KeyId=ident)["Plaintext"] == plaintext

    with aws_error("IncorrectKeyException"):
        kms.decrypt(CiphertextBlob=blob, EncryptionContext=CTX, KeyId=k2["KeyId"])

    bad_contexts = [
        None,
        {"purpose": "e2e"},
        {"purpose": "e2e", "tenant": "t-2"},
        {**CTX, "extra": "x"},
        {"Purpose": "e2e", "tenant": "t-1"},
    ]
    for ctx in bad_contexts:
        kwargs = {"CiphertextBlob": blob}
        if ctx is not None:
            kwargs["EncryptionContext"] = ctx
        with aws_error("InvalidCiphertextException"):
            kms.decrypt(**kwargs)

    tampered_tail = blob[:-1] + bytes([blob[-1] ^ 0x01])
    truncated = blob[: len(blob) // 2]
    for bad in (tampered_tail, truncated, b"\x01" * 200, b"x"):
        with aws_error("InvalidCiphertextException"):
            kms.decrypt(CiphertextBlob=bad, EncryptionContext=CTX)


def test_ciphertexts_are_randomized(kms, new_key):
    md = new_key("randomized")
    a = kms.encrypt(KeyId=md["KeyId"], Plaintext=b"same")["CiphertextBlob"]
    b = kms.encrypt(KeyId=md["KeyId"], Plaintext=b"same")["CiphertextBlob"]
    assert a != b
    assert kms.decrypt(CiphertextBlob=a)["Plaintext"] == kms.decrypt(CiphertextBlob=b)["Plaintext"] == b"same"


def test_encrypt_plaintext_size_limit(kms, new_key, aws_error):
    md = new_key("size limit")
    max_pt = bytes(range(256)) * 16  # 4096 bytes
    blob = kms.encrypt(KeyId=md["KeyId"], Plaintext=max_pt)["CiphertextBlob"]
    assert kms.decrypt(CiphertextBlob=blob)["Plaintext"] == max_pt
    with aws_error("ValidationException"):
        kms.encrypt(KeyId=md["KeyId"], Plaintext=max_pt + b"!")
    # asymmetric algorithms do not apply to a SYMMETRIC_DEFAULT key
    with aws_error("InvalidKeyUsageException"):
        kms.encrypt(KeyId=md["KeyId"], Plaintext=b"x", EncryptionAlgorithm="RSAES_OAEP_SHA_256")


def test_reencrypt_between_keys(kms, new_key, aws_error):
    src = new_key("reencrypt source")
    dst = new_key("reencrypt destination")
    dst_ctx = {"stage": "moved"}
    blob = kms.encrypt(KeyId=src["KeyId"], Plaintext=b"migrate me", EncryptionContext=CTX)["CiphertextBlob"]

    resp = kms.re_encrypt(
        CiphertextBlob=blob,
        SourceEncryptionContext=CTX,
        DestinationKeyId=dst["KeyId"],
        DestinationEncryptionContext=dst_ctx,
    )
    assert resp["SourceKeyId"] == src["Arn"]
    assert resp["KeyId"] == dst["Arn"]
    assert resp["SourceEncryptionAlgorithm"] == "SYMMETRIC_DEFAULT"
    assert resp["DestinationEncryptionAlgorithm"] == "SYMMETRIC_DEFAULT"
    new_blob = resp["CiphertextBlob"]
    assert new_blob != blob

    dec = kms.decrypt(CiphertextBlob=new_blob, EncryptionContext=dst_ctx)
    assert dec["Plaintext"] == b"migrate me"
    assert dec["KeyId"] == dst["Arn"]
    with aws_error("IncorrectKeyException"):
        kms.decrypt(CiphertextBlob=new_blob, EncryptionContext=dst_ctx, KeyId=src["KeyId"])
    with aws_error("InvalidCiphertextException"):
        kms.decrypt(CiphertextBlob=new_blob, EncryptionContext=CTX)

    # wrong source context
    with aws_error("InvalidCiphertextException"):
        kms.re_encrypt(CiphertextBlob=blob, SourceEncryptionContext={"x": "y"}, DestinationKeyId=dst["KeyId"])
    # wrong source key id
    with aws_error("IncorrectKeyException"):
        kms.re_encrypt(
            CiphertextBlob=blob, SourceEncryptionContext=CTX,
            SourceKeyId=dst["KeyId"], DestinationKeyId=dst["KeyId"],
        )
    # the original ciphertext is still valid under the source key
    assert kms.decrypt(CiphertextBlob=blob, EncryptionContext=CTX)["Plaintext"] == b"migrate me"


def test_generate_data_key(kms, new_key, aws_error):
    md = new_key("data keys")
    resp = kms.generate_data_key(KeyId=md["KeyId"], KeySpec="AES_256", EncryptionContext=CTX)
    assert resp["KeyId"] == md["Arn"]
    assert len(resp["Plaintext"]) == 32
    assert resp["Plaintext"] not in resp["CiphertextBlob"]
    dec = kms.decrypt(CiphertextBlob=resp["CiphertextBlob"], EncryptionContext=CTX)
    assert dec["Plaintext"] == resp["Plaintext"]
    assert dec["KeyId"] == md["Arn"]
    with aws_error("InvalidCiphertextException"):
        kms.decrypt(CiphertextBlob=resp["CiphertextBlob"])

    assert len(kms.generate_data_key(KeyId=md["KeyId"], KeySpec="AES_128")["Plaintext"]) == 16
    assert len(kms.generate_data_key(KeyId=md["KeyId"], NumberOfBytes=64)["Plaintext"]) == 64
    assert len(kms.generate_data_key(KeyId=md["KeyId"], NumberOfBytes=1)["Plaintext"]) == 1

    two = {kms.generate_data_key(KeyId=md["KeyId"], KeySpec="AES_256")["Plaintext"] for _ in range(2)}
    assert len(two) == 2

    with aws_error("ValidationException"):
        kms.generate_data_key(KeyId=md["KeyId"], KeySpec="AES_256", NumberOfBytes=32)
    with aws_error("ValidationException"):
        kms.generate_data_key(KeyId=md["KeyId"])
    with aws_error("ValidationException"):
        kms.generate_data_key(KeyId=md["KeyId"], NumberOfBytes=1025)


def test_generate_data_key_without_plaintext(kms, new_key):
    md = new_key("data keys without plaintext")
    resp = kms.generate_data_key_without_plaintext(KeyId=md["KeyId"], KeySpec="AES_256", EncryptionContext=CTX)
    assert "Plaintext" not in resp
    assert resp["KeyId"] == md["Arn"]
    dec = kms.decrypt(CiphertextBlob=resp["CiphertextBlob"], EncryptionContext=CTX)
    assert len(dec["Plaintext"]) == 32


def test_generate_random(shared_server, kms, aws_error):
    assert len(kms.generate_random(NumberOfBytes=1)["Plaintext"]) == 1
    a = kms.generate_random(NumberOfBytes=1024)["Plaintext"]
    b = kms.generate_random(NumberOfBytes=1024)["Plaintext"]
    assert len(a) == len(b) == 1024
    assert a != b
    assert len(set(a)) > 128  # not a constant / low-entropy buffer
    with aws_error("ValidationException"):
        kms.generate_random(NumberOfBytes=1025)
    with aws_error("ValidationException"):
        shared_server.kms(validate=False).generate_random(NumberOfBytes=0)


# --------------------------------------------------------------------------------------------
# Key state machine: disable / enable / schedule deletion / cancel
# --------------------------------------------------------------------------------------------


def test_disable_and_enable(kms, new_key, aws_error):
    md = new_key("disable/enable")
    blob = kms.encrypt(KeyId=md["KeyId"], Plaintext=b"before disable")["CiphertextBlob"]

    kms.disable_key(KeyId=md["KeyId"])
    desc = kms.describe_key(KeyId=md["KeyId"])["KeyMetadata"]
    assert desc["KeyState"] == "Disabled"
    assert desc["Enabled"] is False

    with aws_error("DisabledException"):
        kms.encrypt(KeyId=md["KeyId"], Plaintext=b"nope")
    with aws_error("DisabledException"):
        kms.decrypt(CiphertextBlob=blob)
    with aws_error("DisabledException"):
        kms.generate_data_key(KeyId=md["KeyId"], KeySpec="AES_256")
    with aws_error("DisabledException"):
        kms.enable_key_rotation(KeyId=md["KeyId"])

    # metadata operations still work on a disabled key
    kms.update_key_description(KeyId=md["KeyId"], Description="disabled but editable")
    kms.disable_key(KeyId=md["KeyId"])  # idempotent

    kms.enable_key(KeyId=md["KeyId"])
    desc = kms.describe_key(KeyId=md["KeyId"])["KeyMetadata"]
    assert desc["KeyState"] == "Enabled" and desc["Enabled"] is True
    assert kms.decrypt(CiphertextBlob=blob)["Plaintext"] == b"before disable"
    blob2 = kms.encrypt(KeyId=md["KeyId"], Plaintext=b"after enable")["CiphertextBlob"]
    assert kms.decrypt(CiphertextBlob=blob2)["Plaintext"] == b"after enable"


def test_schedule_and_cancel_key_deletion(kms, new_key, aws_error):
    md = new_key("deletion")
    blob = kms.encrypt(KeyId=md["KeyId"], Plaintext=b"doomed")["CiphertextBlob"]

    with aws_error("ValidationException"):
        kms.schedule_key_deletion(KeyId=md["KeyId"], PendingWindowInDays=6)
    with aws_error("ValidationException"):
        kms.schedule_key_deletion(KeyId=md["KeyId"], PendingWindowInDays=31)
    assert kms.describe_key(KeyId=md["KeyId"])["KeyMetadata"]["KeyState"] == "Enabled"

    scheduled_at = utcnow()
    resp = kms.schedule_key_deletion(KeyId=md["KeyId"], PendingWindowInDays=7)
    assert resp["KeyId"] == md["Arn"]
    assert resp["KeyState"] == "PendingDeletion"
    assert resp["PendingWindowInDays"] == 7
    assert isinstance(resp["DeletionDate"], datetime)
    delta = resp["DeletionDate"] - scheduled_at
    assert timedelta(days=7) - timedelta(minutes=5) <= delta <= timedelta(days=7, hours=1), delta

    desc = kms.describe_key(KeyId=md["KeyId"])["KeyMetadata"]
    assert desc["KeyState"] == "PendingDeletion"
    assert desc["Enabled"] is False
    assert desc["DeletionDate"] == resp["DeletionDate"]
    # the model: PendingDeletionWindowInDays is present only in PendingReplicaDeletion
    assert "PendingDeletionWindowInDays" not in desc

    with aws_error("KMSInvalidStateException"):
        kms.encrypt(KeyId=md["KeyId"], Plaintext=b"nope")
    with aws_error("KMSInvalidStateException"):
        kms.decrypt(CiphertextBlob=blob)
    with aws_error("KMSInvalidStateException"):
        kms.enable_key(KeyId=md["KeyId"])
    with aws_error("KMSInvalidStateException"):
        kms.schedule_key_deletion(KeyId=md["KeyId"], PendingWindowInDays=7)

    # still listed while pending deletion
    ids = {k["KeyId"] for page in kms.get_paginator("list_keys").paginate() for k in page["Keys"]}
    assert md["KeyId"] in ids

    cancel = kms.cancel_key_deletion(KeyId=md["KeyId"])
    assert cancel["KeyId"] == md["Arn"]
    desc = kms.describe_key(KeyId=md["KeyId"])["KeyMetadata"]
    assert desc["KeyState"] == "Disabled"
    assert desc["Enabled"] is False
    assert "DeletionDate" not in desc

    with aws_error("KMSInvalidStateException"):
        kms.cancel_key_deletion(KeyId=md["KeyId"])

    kms.enable_key(KeyId=md["KeyId"])
    assert kms.decrypt(CiphertextBlob=blob)["Plaintext"] == b"doomed"


def test_schedule_key_deletion_default_window_is_30_days(kms, new_key):
    md = new_key("default window")
    resp = kms.schedule_key_deletion(KeyId=md["KeyId"])
    assert resp["PendingWindowInDays"] == 30
    deletion = kms.describe_key(KeyId=md["KeyId"])["KeyMetadata"]["DeletionDate"]
    assert timedelta(days=29, hours=23) < deletion - datetime.now(deletion.tzinfo) <= timedelta(days=30)
    kms.cancel_key_deletion(KeyId=md["KeyId"])


# --------------------------------------------------------------------------------------------
# Rotation
# --------------------------------------------------------------------------------------------


def test_rotation_status_and_period_validation(shared_server, kms, new_key, aws_error):
    md = new_key("rotation status")
    status = kms.get_key_rotation_status(KeyId=md["KeyId"])
    assert status["KeyRotationEnabled"] is False

    unvalidated = shared_server.kms(validate=False)  # botocore itself enforces min=90
    with aws_error("ValidationException"):
        unvalidated.enable_key_rotation(KeyId=md["KeyId"], RotationPeriodInDays=89)
    with aws_error("ValidationException"):
        unvalidated.enable_key_rotation(KeyId=md["KeyId"], RotationPeriodInDays=2561)
    assert kms.get_key_rotation_status(KeyId=md["KeyId"])["KeyRotationEnabled"] is False

    enabled_at = utcnow()
    kms.enable_key_rotation(KeyId=md["KeyId"])
    status = kms.get_key_rotation_status(KeyId=md["KeyId"])
    assert status["KeyRotationEnabled"] is True
    assert status["KeyId"] == md["Arn"]
    assert status["RotationPeriodInDays"] == 365
    assert isinstance(status["NextRotationDate"], datetime)
    delta = status["NextRotationDate"] - enabled_at
    assert timedelta(days=364) <= delta <= timedelta(days=366), delta

    kms.enable_key_rotation(KeyId=md["Arn"], RotationPeriodInDays=90)
    status = kms.get_key_rotation_status(KeyId=md["KeyId"])
    assert status["KeyRotationEnabled"] is True
    assert status["RotationPeriodInDays"] == 90
    delta = status["NextRotationDate"] - enabled_at
    assert timedelta(days=89) <= delta <= timedelta(days=91), delta

    kms.disable_key_rotation(KeyId=md["KeyId"])
    assert kms.get_key_rotation_status(KeyId=md["KeyId"])["KeyRotationEnabled"] is False

    with aws_error("NotFoundException"):
        kms.get_key_rotation_status(KeyId=str(uuid.uuid4()))


def test_rotate_key_on_demand(kms, new_key):
    md = new_key("on-demand rotation")
    old_material = md["CurrentKeyMaterialId"]
    old_blob = kms.encrypt(KeyId=md["KeyId"], Plaintext=b"old material", EncryptionContext=CTX)["CiphertextBlob"]
    assert kms.list_key_rotations(KeyId=md["KeyId"])["Rotations"] == []

    resp = kms.rotate_key_on_demand(KeyId=md["KeyId"])
    assert resp["KeyId"] == md["Arn"]

    desc = kms.describe_key(KeyId=md["KeyId"])["KeyMetadata"]
    new_material = desc["CurrentKeyMaterialId"]
    assert new_material and new_material != old_material
    assert desc["KeyState"] == "Enabled"

    old = kms.decrypt(CiphertextBlob=old_blob, EncryptionContext=CTX)
    assert old["Plaintext"] == b"old material"
    assert old["KeyMaterialId"] == old_material

    new_blob = kms.encrypt(KeyId=md["KeyId"], Plaintext=b"new material")["CiphertextBlob"]
    new = kms.decrypt(CiphertextBlob=new_blob)
    assert new["Plaintext"] == b"new material"
    assert new["KeyMaterialId"] == new_material

    rotations = kms.list_key_rotations(KeyId=md["KeyId"])
    assert rotations["Truncated"] is False
    on_demand = [r for r in rotations["Rotations"] if r.get("RotationType") == "ON_DEMAND"]
    assert len(on_demand) == 1, rotations["Rotations"]
    entry = on_demand[0]
    assert entry["KeyId"] == md["Arn"] or entry["KeyId"] == md["KeyId"]
    assert isinstance(entry["RotationDate"], datetime)
    assert entry["KeyMaterialId"] == new_material

    # a second rotation yields a third material; all three ciphertext generations decrypt
    kms.rotate_key_on_demand(KeyId=md["KeyId"])
    third = kms.describe_key(KeyId=md["KeyId"])["KeyMetadata"]["CurrentKeyMaterialId"]
    assert third not in (old_material, new_material)
    assert kms.decrypt(CiphertextBlob=old_blob, EncryptionContext=CTX)["KeyMaterialId"] == old_material
    assert kms.decrypt(CiphertextBlob=new_blob)["KeyMaterialId"] == new_material
    assert len([r for r in kms.list_key_rotations(KeyId=md["KeyId"])["Rotations"]
                if r.get("RotationType") == "ON_DEMAND"]) == 2


def test_reencrypt_reports_key_material(kms, new_key):
    md = new_key("reencrypt after rotation")
    old_material = md["CurrentKeyMaterialId"]
    blob = kms.encrypt(KeyId=md["KeyId"], Plaintext=b"refresh me")["CiphertextBlob"]
    kms.rotate_key_on_demand(KeyId=md["KeyId"])
    new_material = kms.describe_key(KeyId=md["KeyId"])["KeyMetadata"]["CurrentKeyMaterialId"]

    resp = kms.re_encrypt(CiphertextBlob=blob, DestinationKeyId=md["KeyId"])
    assert resp["SourceKeyMaterialId"] == old_material
    assert resp["DestinationKeyMaterialId"] == new_material
    assert kms.decrypt(CiphertextBlob=resp["CiphertextBlob"])["KeyMaterialId"] == new_material


# --------------------------------------------------------------------------------------------
# Regions
# --------------------------------------------------------------------------------------------


def test_regions_are_isolated(shared_server, aws_error):
    eu = shared_server.kms("eu-central-1")
    us = shared_server.kms("us-east-1")
    md = eu.create_key(Description="eu only")["KeyMetadata"]
    assert md["Arn"] == key_arn(md["KeyId"], "eu-central-1")
    assert eu.describe_key(KeyId=md["KeyId"])["KeyMetadata"]["KeyId"] == md["KeyId"]
    with aws_error("NotFoundException"):
        us.describe_key(KeyId=md["KeyId"])
    us_ids = {k["KeyId"] for page in us.get_paginator("list_keys").paginate() for k in page["Keys"]}
    assert md["KeyId"] not in us_ids

    alias = unique_alias("region")
    eu.create_alias(AliasName=alias, TargetKeyId=md["KeyId"])
    with aws_error("NotFoundException"):
        us.describe_key(KeyId=alias)
    # the same alias name is free in another region
    us_key = us.create_key()["KeyMetadata"]
    us.create_alias(AliasName=alias, TargetKeyId=us_key["KeyId"])
    assert us.describe_key(KeyId=alias)["KeyMetadata"]["KeyId"] == us_key["KeyId"]
    assert eu.describe_key(KeyId=alias)["KeyMetadata"]["KeyId"] == md["KeyId"]

    blob = eu.encrypt(KeyId=md["KeyId"], Plaintext=b"eu data")["CiphertextBlob"]
    assert eu.decrypt(CiphertextBlob=blob)["Plaintext"] == b"eu data"
    # Real KMS answers AccessDeniedException ("...does not exist in this region...")
    with aws_error("AccessDeniedException"):
        us.decrypt(CiphertextBlob=blob)


# --------------------------------------------------------------------------------------------
# Paginated aliases, properties, ledger audit trail
# --------------------------------------------------------------------------------------------


def test_list_aliases_pagination(shared_server, aws_error):
    kms = shared_server.kms("ap-southeast-2")  # used by this test only
    md = kms.create_key()["KeyMetadata"]
    names = {unique_alias("page") for _ in range(5)}
    for name in names:
        kms.create_alias(AliasName=name, TargetKeyId=md["KeyId"])

    seen, marker, pages = [], None, 0
    while True:
        kwargs = {"KeyId": md["KeyId"], "Limit": 2}
        if marker:
            kwargs["Marker"] = marker
        resp = kms.list_aliases(**kwargs)
        pages += 1
        assert len(resp["Aliases"]) <= 2
        seen += [a["AliasName"] for a in resp["Aliases"]]
        if not resp["Truncated"]:
            break
        marker = resp["NextMarker"]
        assert pages < 10
    assert pages == 3
    assert sorted(seen) == sorted(names)
    everything = {a["AliasName"] for p in kms.get_paginator("list_aliases").paginate(
        PaginationConfig={"PageSize": 1}) for a in p["Aliases"]}
    assert names <= everything
    with aws_error("InvalidMarkerException"):
        kms.list_aliases(Limit=2, Marker="garbage-marker")


from hypothesis import HealthCheck, given, settings  # noqa: E402
from hypothesis import strategies as st  # noqa: E402

_ctx_text = st.text(
    alphabet=st.characters(blacklist_categories=("Cs",), blacklist_characters="\x00"), min_size=1, max_size=24
)


@pytest.fixture(scope="module")
def property_key(kms):
    return kms.create_key(Description="property tests")["KeyMetadata"]


@settings(max_examples=25, deadline=None, suppress_health_check=[HealthCheck.function_scoped_fixture])
@given(
    plaintext=st.binary(min_size=1, max_size=4096),
    context=st.dictionaries(_ctx_text, _ctx_text, max_size=4),
)
def test_property_round_trip_and_context_binding(kms, property_key, aws_error, plaintext, context):
    kwargs = {"EncryptionContext": context} if context else {}
    blob = kms.encrypt(KeyId=property_key["KeyId"], Plaintext=plaintext, **kwargs)["CiphertextBlob"]
    dec = kms.decrypt(CiphertextBlob=blob, **kwargs)
    assert dec["Plaintext"] == plaintext
    assert dec["KeyId"] == property_key["Arn"]

    if context:
        k = sorted(context)[0]
        other = {**context, k: context[k] + "\u00e9"}
    else:
        other = {"unexpected": "pair"}
    with aws_error("InvalidCiphertextException"):
        kms.decrypt(CiphertextBlob=blob, EncryptionContext=other)


def test_ledger_records_every_change_with_its_request(shared_server, kms):
    created = kms.create_key(Description="audited")
    key_id = created["KeyMetadata"]["KeyId"]

    def events():
        return shared_server.events(key_id)["Events"]

    history = events()
    assert [e["Type"] for e in history] == ["KeyCreated"]
    assert history[0]["Actor"]["request_id"] == created["ResponseMetadata"]["RequestId"]

    changes = [
        lambda: kms.update_key_description(KeyId=key_id, Description="audited 2"),
        lambda: kms.tag_resource(KeyId=key_id, Tags=[{"TagKey": "a", "TagValue": "b"}]),
        lambda: kms.untag_resource(KeyId=key_id, TagKeys=["a"]),
        lambda: kms.disable_key(KeyId=key_id),
        lambda: kms.enable_key(KeyId=key_id),
        lambda: kms.put_key_policy(KeyId=key_id, PolicyName="default", Policy=json.dumps({
            "Version": "2012-10-17", "Statement": [{"Effect": "Allow", "Principal": {
                "AWS": f"arn:aws:iam::{ACCOUNT}:root"}, "Action": "kms:*", "Resource": "*"}]})),
        lambda: kms.enable_key_rotation(KeyId=key_id, RotationPeriodInDays=180),
        lambda: kms.disable_key_rotation(KeyId=key_id),
        lambda: kms.rotate_key_on_demand(KeyId=key_id),
        lambda: kms.schedule_key_deletion(KeyId=key_id, PendingWindowInDays=7),
        lambda: kms.cancel_key_deletion(KeyId=key_id),
    ]
    for change in changes:
        before = events()
        resp = change()
        after = events()
        assert after[: len(before)] == before, "history was rewritten"
        new = after[len(before):]
        assert new, f"no event recorded for {resp['ResponseMetadata']}"
        for event in new:
            assert event["Actor"]["request_id"] == resp["ResponseMetadata"]["RequestId"]
            assert event["Actor"]["source_ip"] == "127.0.0.1"
        assert [e["Version"] for e in after] == list(range(after[0]["Version"], after[0]["Version"] + len(after)))

    # reads do not write to the ledger
    before = events()
    kms.describe_key(KeyId=key_id)
    kms.get_key_policy(KeyId=key_id, PolicyName="default")
    kms.list_resource_tags(KeyId=key_id)
    kms.get_key_rotation_status(KeyId=key_id)
    kms.list_aliases(KeyId=key_id)
    assert events() == before

    # the ledger API is region-scoped too
    r = shared_server.ledger_get(f"/ledger/v1/keys/{key_id}/events?region=eu-central-1", "eu-central-1")
    assert r.status_code == 404


def test_list_default_page_sizes(shared_server, aws_error):
    kms = shared_server.kms("us-west-1")  # used by this test only
    created = {kms.create_key()["KeyMetadata"]["KeyId"] for _ in range(101)}
    first = kms.list_keys()
    assert len(first["Keys"]) <= 100  # AWS default Limit for ListKeys is 100
    assert first["Truncated"] is True and first["NextMarker"]
    everything = {k["KeyId"] for p in kms.get_paginator("list_keys").paginate() for k in p["Keys"]}
    assert everything == created
    big = kms.list_keys(Limit=1000)
    assert {k["KeyId"] for k in big["Keys"]} == created and big["Truncated"] is False

    k1, k2 = sorted(created)[:2]
    for _ in range(50):
        kms.create_alias(AliasName=unique_alias("dflt"), TargetKeyId=k1)
    with aws_error("LimitExceededException"):  # AWS quota: 50 aliases per KMS key
        kms.create_alias(AliasName=unique_alias("dflt"), TargetKeyId=k1)
    kms.create_alias(AliasName=unique_alias("dflt"), TargetKeyId=k2)
    page = kms.list_aliases()
    assert len(page["Aliases"]) <= 50  # AWS default Limit for ListAliases is 50
    assert page["Truncated"] is True
    page = kms.list_aliases(KeyId=k1)
    assert len(page["Aliases"]) <= 50
    all_k1 = [a for p in kms.get_paginator("list_aliases").paginate(KeyId=k1) for a in p["Aliases"]]
    assert len(all_k1) == 50
    raw = shared_server.kms("us-west-1", validate=False)
    with aws_error("ValidationException"):
        raw.list_aliases(Limit=101)  # ListAliases accepts 1..100
