"""Grants through the application on real stores (SQLite and PostgreSQL): CreateGrant,
ListGrants, ListRetirableGrants, RetireGrant and RevokeGrant, restarts, key deletion, a
second process, and who may create and retire grants."""

from __future__ import annotations

import base64
import json
import re

import pytest

from domain import errors
from domain.grants import new_grant_token, parse_grant_token
from domain.principals import Principal, PrincipalKind

ACCOUNT = "111122223333"
OTHER_ACCOUNT = "444455556666"
BOB = f"arn:aws:iam::{ACCOUNT}:user/bob"
ALICE = f"arn:aws:iam::{ACCOUNT}:user/alice"
OPS = f"arn:aws:iam::{ACCOUNT}:role/ops"
AUDIT = f"arn:aws:iam::{ACCOUNT}:role/audit"
UNKNOWN_KEY = "00000000-0000-4000-8000-000000000000"
DRY_RUN = "The request would have succeeded, but the DryRun option is set."


def _key(kms, **params) -> tuple[str, str]:
    meta = kms.call("CreateKey", **params)["KeyMetadata"]
    return meta["KeyId"], meta["Arn"]


def _grant(kms, key_id: str, grantee: str = BOB, operations=("Decrypt",), **params) -> dict:
    return kms.call("CreateGrant", KeyId=key_id, GranteePrincipal=grantee,
                    Operations=list(operations), **params)


def _ids(listing: dict) -> list[str]:
    return [g["GrantId"] for g in listing["Grants"]]


def _types(kms, key_id: str) -> list[str]:
    return [e["Type"] for e in kms.service.key_history("us-east-1", key_id)]


def _user(name: str, *statements: dict) -> Principal:
    policies = {"inline": {"Version": "2012-10-17", "Statement": list(statements)}} if statements else {}
    return Principal(account=ACCOUNT, kind=PrincipalKind.USER, name=name, policies=policies)


# -- round trips --------------------------------------------------------------------------------


def test_create_list_retire_revoke_round_trip(kms):
    key_id, arn = _key(kms)
    before = kms.service.clock.now()
    created = _grant(kms, key_id, operations=["Decrypt", "Encrypt", "Decrypt"], RetiringPrincipal=OPS,
                     Constraints={"EncryptionContextSubset": {"Dept": "IT"}})
    after = kms.service.clock.now()
    grant_id = created["GrantId"]
    assert re.fullmatch(r"[0-9a-f]{64}", grant_id)
    assert parse_grant_token(created["GrantToken"]) == (key_id, grant_id)

    [entry] = kms.call("ListGrants", KeyId=key_id)["Grants"]
    assert before <= entry["CreationDate"] <= after
    assert entry == {
        "KeyId": arn,
        "GrantId": grant_id,
        "Name": "",
        "CreationDate": entry["CreationDate"],
        "GranteePrincipal": BOB,
        "RetiringPrincipal": OPS,
        "IssuingAccount": f"arn:aws:iam::{ACCOUNT}:root",
        "Operations": ["Decrypt", "Encrypt"],
        "Constraints": {"EncryptionContextSubset": {"Dept": "IT"}},
    }
    assert kms.call("ListGrants", KeyId=key_id) == {"Grants": [entry], "Truncated": False}

    assert kms.call("RetireGrant", GrantToken=created["GrantToken"]) == {}
    assert kms.call("ListGrants", KeyId=key_id) == {"Grants": [], "Truncated": False}

    revoked = _grant(kms, key_id)["GrantId"]
    assert kms.call("RevokeGrant", KeyId=key_id, GrantId=revoked) == {}
    assert kms.call("ListGrants", KeyId=key_id) == {"Grants": [], "Truncated": False}

    history = kms.service.key_history("us-east-1", key_id)
    assert [e["Type"] for e in history] == [
        "KeyCreated", "GrantCreated", "GrantRetired", "GrantCreated", "GrantRevoked",
    ]
    assert {e["Actor"]["principal"] for e in history} == {f"arn:aws:iam::{ACCOUNT}:root"}


def test_a_named_grant_retried_with_identical_parameters_is_the_same_grant(kms):
    key_id, _ = _key(kms)
    first = _grant(kms, key_id, Name="app-decrypt", operations=["Decrypt", "Encrypt"])
    again = _grant(kms, key_id, Name="app-decrypt", operations=["Encrypt", "Decrypt"])
    assert again["GrantId"] == first["GrantId"]
    assert again["GrantToken"] != first["GrantToken"]
    assert parse_grant_token(again["GrantToken"]) == (key_id, first["GrantId"])
    [entry] = kms.call("ListGrants", KeyId=key_id)["Grants"]
    assert (entry["GrantId"], entry["Name"]) == (first["GrantId"], "app-decrypt")
    assert _types(kms, key_id) == ["KeyCreated", "GrantCreated"]

    # the same name with other parameters, and no name at all, make new grants
    other = _grant(kms, key_id, Name="app-decrypt", operations=["Decrypt"])["GrantId"]
    unnamed = [_grant(kms, key_id)["GrantId"] for _ in range(2)]
    assert len({first["GrantId"], other, *unnamed}) == 4
    assert _ids(kms.call("ListGrants", KeyId=key_id)) == [first["GrantId"], other, *unnamed]


def test_create_grant_by_key_arn(kms):
    key_id, arn = _key(kms)
    grant_id = _grant(kms, arn)["GrantId"]
    assert _ids(kms.call("ListGrants", KeyId=arn)) == [grant_id]


# -- ListGrants ---------------------------------------------------------------------------------


def test_list_grants_pages_and_filters(kms):
    key_id, _ = _key(kms)
    grantees = [BOB, ALICE, BOB, ALICE, BOB]
    ids = [_grant(kms, key_id, grantee)["GrantId"] for grantee in grantees]

    first = kms.call("ListGrants", KeyId=key_id, Limit=2)
    assert (_ids(first), first["Truncated"]) == (ids[:2], True)
    # the grant a marker points after may go away meanwhile: paging goes on from where it was
    kms.call("RevokeGrant", KeyId=key_id, GrantId=ids[1])
    second = kms.call("ListGrants", KeyId=key_id, Limit=2, Marker=first["NextMarker"])
    assert (_ids(second), second["Truncated"]) == (ids[2:4], True)
    third = kms.call("ListGrants", KeyId=key_id, Limit=2, Marker=second["NextMarker"])
    assert third == {"Grants": third["Grants"], "Truncated": False}
    assert _ids(third) == ids[4:]

    assert _ids(kms.call("ListGrants", KeyId=key_id)) == [ids[0], *ids[2:]]
    assert _ids(kms.call("ListGrants", KeyId=key_id, GrantId=ids[3])) == [ids[3]]
    assert _ids(kms.call("ListGrants", KeyId=key_id, GrantId=ids[1])) == []  # revoked
    assert _ids(kms.call("ListGrants", KeyId=key_id, GranteePrincipal=BOB)) == [ids[0], ids[2], ids[4]]
    assert _ids(kms.call("ListGrants", KeyId=key_id, GranteePrincipal=ALICE, Limit=1)) == [ids[3]]
    assert _ids(kms.call("ListGrants", KeyId=key_id, GranteePrincipal=OPS)) == []
    assert _ids(kms.call("ListGrants", KeyId=key_id, GrantId=ids[0], GranteePrincipal=ALICE)) == []
    assert _ids(kms.call("ListGrants", KeyId=key_id,
                         GranteeServicePrincipal="dynamodb.us-east-1.amazonaws.com")) == []


def test_list_grants_defaults_to_50_and_allows_at_most_100(kms):
    key_id, _ = _key(kms)
    ids = [_grant(kms, key_id)["GrantId"] for _ in range(51)]
    first = kms.call("ListGrants", KeyId=key_id)
    assert (_ids(first), first["Truncated"]) == (ids[:50], True)
    rest = kms.call("ListGrants", KeyId=key_id, Marker=first["NextMarker"])
    assert rest == {"Grants": rest["Grants"], "Truncated": False}
    assert _ids(rest) == ids[50:]
    assert _ids(kms.call("ListGrants", KeyId=key_id, Limit=100)) == ids
    with pytest.raises(errors.ValidationException) as raised:
        kms.call("ListGrants", KeyId=key_id, Limit=101)
    assert raised.value.message == (
        "1 validation error detected: Value '101' at 'limit' failed to satisfy constraint: "
        "Member must have value less than or equal to 100"
    )


def test_list_grants_errors(kms):
    key_id, _ = _key(kms)
    with pytest.raises(errors.InvalidGrantIdException) as raised:
        kms.call("ListGrants", KeyId=key_id, GrantId="not-a-grant-id")
    assert raised.value.message == "'not-a-grant-id' is not a valid grant ID."
    for marker in ("garbage", base64.urlsafe_b64encode(b"kl1:1.5 xyz").decode()):
        with pytest.raises(errors.InvalidMarkerException) as raised:
            kms.call("ListGrants", KeyId=key_id, Marker=marker)
        assert raised.value.message == "Invalid marker"
    unknown = UNKNOWN_KEY
    with pytest.raises(errors.NotFoundException) as raised:
        kms.call("ListGrants", KeyId=unknown)
    assert raised.value.message == f"Key 'arn:aws:kms:us-east-1:{ACCOUNT}:key/{unknown}' does not exist"


# -- ListRetirableGrants ------------------------------------------------------------------------


def test_list_retirable_grants_across_the_accounts_keys(kms):
    first_key, first_arn = _key(kms)
    second_key, second_arn = _key(kms)
    a = _grant(kms, first_key, RetiringPrincipal=OPS)["GrantId"]
    _grant(kms, first_key, RetiringPrincipal=AUDIT)
    _grant(kms, first_key)
    b = _grant(kms, second_key, RetiringPrincipal=OPS)["GrantId"]
    c = _grant(kms, first_key, RetiringPrincipal=OPS)["GrantId"]
    d = _grant(kms, second_key, RetiringPrincipal=OPS)["GrantId"]

    listing = kms.call("ListRetirableGrants", RetiringPrincipal=OPS)
    assert listing["Truncated"] is False
    # keys in ListKeys order, each key's grants oldest first
    assert [(g["KeyId"], g["GrantId"]) for g in listing["Grants"]] == [
        (first_arn, a), (first_arn, c), (second_arn, b), (second_arn, d),
    ]
    assert {g["RetiringPrincipal"] for g in listing["Grants"]} == {OPS}

    seen, marker = [], None
    while True:
        page = kms.call("ListRetirableGrants", RetiringPrincipal=OPS, Limit=1,
                        **({"Marker": marker} if marker else {}))
        seen += _ids(page)
        if not page["Truncated"]:
            assert "NextMarker" not in page
            break
        marker = page["NextMarker"]
        if len(seen) == 2:  # the first key's grants are done; one goes away meanwhile
            kms.call("RetireGrant", KeyId=second_key, GrantId=b)
    assert seen == [a, c, d]

    assert _ids(kms.call("ListRetirableGrants", RetiringPrincipal=BOB)) == []
    assert kms.call("ListRetirableGrants", RetiringServicePrincipal="dynamodb.amazonaws.com") == {
        "Grants": [], "Truncated": False,
    }


def test_list_retirable_grants_errors(kms):
    with pytest.raises(errors.ValidationException) as raised:
        kms.call("ListRetirableGrants")
    assert raised.value.message == (
        "1 validation error detected: Value null at 'retiringPrincipal' failed to satisfy "
        "constraint: Member must not be null"
    )
    with pytest.raises(errors.ValidationException) as raised:
        kms.call("ListRetirableGrants", RetiringPrincipal=OPS,
                 RetiringServicePrincipal="dynamodb.amazonaws.com")
    assert raised.value.message == (
        "You must specify either RetiringPrincipal or RetiringServicePrincipal, but not both."
    )
    with pytest.raises(errors.ValidationException) as raised:
        kms.call("ListRetirableGrants", RetiringPrincipal=OPS, Limit=101)
    assert raised.value.message == (
        "1 validation error detected: Value '101' at 'limit' failed to satisfy constraint: "
        "Member must have value less than or equal to 100"
    )
    foreign = f"arn:aws:iam::{OTHER_ACCOUNT}:role/ops"
    with pytest.raises(errors.InvalidArnException) as raised:
        kms.call("ListRetirableGrants", RetiringPrincipal=foreign)
    assert raised.value.message == (
        f"{foreign} is not a principal in account {ACCOUNT}: ListRetirableGrants lists the "
        "grants of a principal in your account."
    )
    with pytest.raises(errors.InvalidArnException) as raised:
        kms.call("ListRetirableGrants", RetiringPrincipal="not-a-principal")
    assert raised.value.message == "ARN does not refer to a valid principal: not-a-principal"
    key_id, _ = _key(kms)
    _grant(kms, key_id, RetiringPrincipal=OPS)
    _grant(kms, key_id, RetiringPrincipal=OPS)
    grants_marker = kms.call("ListGrants", KeyId=key_id, Limit=1)["NextMarker"]
    with pytest.raises(errors.InvalidMarkerException) as raised:  # a ListGrants marker
        kms.call("ListRetirableGrants", RetiringPrincipal=OPS, Marker=grants_marker)
    assert raised.value.message == "Invalid marker"


# -- RetireGrant and RevokeGrant ----------------------------------------------------------------


def test_retire_by_token_or_by_key_and_grant_id(kms):
    key_id, arn = _key(kms)
    by_token = _grant(kms, key_id)
    by_arn = _grant(kms, key_id)["GrantId"]
    by_id = _grant(kms, key_id)["GrantId"]
    kept = _grant(kms, key_id)["GrantId"]

    assert kms.call("RetireGrant", GrantToken=by_token["GrantToken"]) == {}
    assert kms.call("RetireGrant", KeyId=arn, GrantId=by_arn) == {}
    assert kms.call("RetireGrant", KeyId=key_id, GrantId=by_id) == {}
    assert _ids(kms.call("ListGrants", KeyId=key_id)) == [kept]
    assert _types(kms, key_id)[-3:] == ["GrantRetired", "GrantRetired", "GrantRetired"]

    # a second retirement finds nothing to retire
    with pytest.raises(errors.NotFoundException) as raised:
        kms.call("RetireGrant", GrantToken=by_token["GrantToken"])
    assert raised.value.message == f"Grant ID {by_token['GrantId']} not found for key {arn}."
    with pytest.raises(errors.NotFoundException) as raised:
        kms.call("RevokeGrant", KeyId=key_id, GrantId=by_id)
    assert raised.value.message == f"Grant ID {by_id} not found for key {arn}."

    # a token and a KeyId/GrantId that name the same grant agree
    token = _grant(kms, key_id)
    assert kms.call("RetireGrant", GrantToken=token["GrantToken"], KeyId=arn,
                    GrantId=token["GrantId"]) == {}
    assert _ids(kms.call("ListGrants", KeyId=key_id)) == [kept]


def test_retire_grant_errors(kms):
    key_id, arn = _key(kms)
    created = _grant(kms, key_id)
    unknown = "0" * 64
    cases = [
        ({}, errors.ValidationException,
         "Specify either the GrantToken, or both the KeyId and the GrantId, of the grant to retire."),
        ({"GrantId": created["GrantId"]}, errors.ValidationException,
         "Specify either the GrantToken, or both the KeyId and the GrantId, of the grant to retire."),
        ({"KeyId": key_id}, errors.ValidationException,
         "Specify either the GrantToken, or both the KeyId and the GrantId, of the grant to retire."),
        ({"GrantToken": "not a token"}, errors.InvalidGrantTokenException,
         "The grant token is not valid."),
        ({"GrantToken": "AAAA"}, errors.InvalidGrantTokenException, "The grant token is not valid."),
        ({"KeyId": key_id, "GrantId": "xyz"}, errors.InvalidGrantIdException,
         "'xyz' is not a valid grant ID."),
        ({"KeyId": key_id, "GrantId": unknown}, errors.NotFoundException,
         f"Grant ID {unknown} not found for key {arn}."),
        ({"GrantToken": new_grant_token(UNKNOWN_KEY, unknown)}, errors.NotFoundException,
         f"Key 'arn:aws:kms:us-east-1:{ACCOUNT}:key/{UNKNOWN_KEY}' does not exist"),
        ({"GrantToken": new_grant_token(key_id, unknown)}, errors.NotFoundException,
         f"Grant ID {unknown} not found for key {arn}."),
        ({"GrantToken": created["GrantToken"], "GrantId": unknown}, errors.ValidationException,
         "The GrantToken names a different grant than the KeyId and GrantId."),
        # not a key id: AWS's "Invalid keyId" (localstack's recorded snapshot,
        # test_get_key_invalid_uuid); a key ARN of another Region: "Invalid arn <region>"
        # (test_get_key_in_different_region)
        ({"KeyId": "alias/anything", "GrantId": unknown}, errors.NotFoundException,
         "Invalid keyId 'alias/anything'"),
        ({"KeyId": f"arn:aws:kms:eu-west-1:{ACCOUNT}:key/{key_id}", "GrantId": unknown},
         errors.NotFoundException, "Invalid arn eu-west-1"),
    ]
    for params, error, message in cases:
        with pytest.raises(error) as raised:
            kms.call("RetireGrant", **params)
        assert raised.value.message == message, params
    assert _ids(kms.call("ListGrants", KeyId=key_id)) == [created["GrantId"]]


def test_revoke_grant_errors(kms):
    key_id, arn = _key(kms)
    with pytest.raises(errors.InvalidGrantIdException) as raised:
        kms.call("RevokeGrant", KeyId=key_id, GrantId="xyz")
    assert raised.value.message == "'xyz' is not a valid grant ID."
    with pytest.raises(errors.NotFoundException) as raised:
        kms.call("RevokeGrant", KeyId=key_id, GrantId="a" * 64)
    assert raised.value.message == f"Grant ID {'a' * 64} not found for key {arn}."
    unknown = UNKNOWN_KEY
    with pytest.raises(errors.NotFoundException) as raised:
        kms.call("RevokeGrant", KeyId=unknown, GrantId="a" * 64)
    assert raised.value.message == f"Key 'arn:aws:kms:us-east-1:{ACCOUNT}:key/{unknown}' does not exist"


def test_dry_run_checks_everything_and_records_nothing(kms):
    key_id, arn = _key(kms)
    with pytest.raises(errors.DryRunOperationException) as raised:
        _grant(kms, key_id, DryRun=True)
    assert raised.value.message == DRY_RUN
    with pytest.raises(errors.ValidationException) as raised:  # checks come first
        _grant(kms, key_id, operations=["Sign"], DryRun=True)
    assert raised.value.message == (
        "The grant operation Sign is not supported for a KMS key with KeySpec SYMMETRIC_DEFAULT "
        "and KeyUsage ENCRYPT_DECRYPT."
    )
    assert _ids(kms.call("ListGrants", KeyId=key_id)) == []

    created = _grant(kms, key_id)
    for operation, params in [
        ("RetireGrant", {"GrantToken": created["GrantToken"]}),
        ("RetireGrant", {"KeyId": key_id, "GrantId": created["GrantId"]}),
        ("RevokeGrant", {"KeyId": key_id, "GrantId": created["GrantId"]}),
    ]:
        with pytest.raises(errors.DryRunOperationException) as raised:
            kms.call(operation, DryRun=True, **params)
        assert raised.value.message == DRY_RUN
    with pytest.raises(errors.NotFoundException) as raised:
        kms.call("RevokeGrant", KeyId=key_id, GrantId="b" * 64, DryRun=True)
    assert raised.value.message == f"Grant ID {'b' * 64} not found for key {arn}."
    assert _ids(kms.call("ListGrants", KeyId=key_id)) == [created["GrantId"]]
    assert _types(kms, key_id) == ["KeyCreated", "GrantCreated"]

    kms.call("DisableKey", KeyId=key_id)
    with pytest.raises(errors.DisabledException) as raised:
        _grant(kms, key_id, DryRun=True)
    assert raised.value.message == f"{arn} is disabled."


# -- CreateGrant's errors -----------------------------------------------------------------------


def test_create_grant_follows_the_key_state(kms):
    key_id, arn = _key(kms)
    kms.call("DisableKey", KeyId=key_id)
    with pytest.raises(errors.DisabledException) as raised:
        _grant(kms, key_id)
    assert raised.value.message == f"{arn} is disabled."

    imported, imported_arn = _key(kms, Origin="EXTERNAL")
    with pytest.raises(errors.KMSInvalidStateException) as raised:
        _grant(kms, imported)
    assert raised.value.message == f"{imported_arn} is pending import."

    # listing, retiring and revoking work in every state
    kms.call("EnableKey", KeyId=key_id)
    grants = [_grant(kms, key_id) for _ in range(3)]
    kms.call("DisableKey", KeyId=key_id)
    assert _ids(kms.call("ListGrants", KeyId=key_id)) == [g["GrantId"] for g in grants]
    kms.call("RetireGrant", GrantToken=grants[0]["GrantToken"])
    kms.call("RevokeGrant", KeyId=key_id, GrantId=grants[1]["GrantId"])
    assert _ids(kms.call("ListGrants", KeyId=key_id)) == [grants[2]["GrantId"]]


def test_create_grant_validates_operations_and_constraints_for_the_key(kms):
    symmetric, _ = _key(kms)
    rsa, _ = _key(kms, KeySpec="RSA_2048", KeyUsage="ENCRYPT_DECRYPT")
    signing, _ = _key(kms, KeySpec="ECC_NIST_P256", KeyUsage="SIGN_VERIFY")
    hmac, _ = _key(kms, KeySpec="HMAC_256", KeyUsage="GENERATE_VERIFY_MAC")
    cases = [
        (symmetric, ["Sign"], {},
         "The grant operation Sign is not supported for a KMS key with KeySpec "
         "SYMMETRIC_DEFAULT and KeyUsage ENCRYPT_DECRYPT."),
        (symmetric, ["Decrypt", "Verify", "GetPublicKey"], {},
         "The grant operations Verify, GetPublicKey are not supported for a KMS key with KeySpec "
         "SYMMETRIC_DEFAULT and KeyUsage ENCRYPT_DECRYPT."),
        (rsa, ["GenerateDataKey"], {},
         "The grant operation GenerateDataKey is not supported for a KMS key with KeySpec "
         "RSA_2048 and KeyUsage ENCRYPT_DECRYPT."),
        (signing, ["Decrypt"], {},
         "The grant operation Decrypt is not supported for a KMS key with KeySpec "
         "ECC_NIST_P256 and KeyUsage SIGN_VERIFY."),
        (rsa, ["Decrypt"], {"Constraints": {"EncryptionContextEquals": {"a": "b"}}},
         "Encryption context grant constraints are not supported for a KMS key with KeySpec "
         "RSA_2048 and KeyUsage ENCRYPT_DECRYPT."),
        (hmac, ["GenerateMac"], {"Constraints": {"EncryptionContextSubset": {"a": "b"}}},
         "Encryption context grant constraints are not supported for a KMS key with KeySpec "
         "HMAC_256 and KeyUsage GENERATE_VERIFY_MAC."),
        (symmetric, ["Decrypt"],
         {"Constraints": {"EncryptionContextSubset": {f"k{i}": "v" for i in range(9)}}},
         "EncryptionContextSubset can contain at most 8 encryption context pairs."),
        (symmetric, [], {}, "Operations must include at least one grant operation."),
    ]
    for key_id, operations, params, message in cases:
        with pytest.raises(errors.ValidationException) as raised:
            _grant(kms, key_id, operations=operations, **params)
        assert raised.value.message == message
    with pytest.raises(errors.ValidationException) as raised:
        kms.call("CreateGrant", KeyId=symmetric, Operations=["Decrypt"])
    assert raised.value.message == (
        "1 validation error detected: Value null at 'granteePrincipal' failed to satisfy "
        "constraint: Member must not be null"
    )
    # what each key type allows
    allowed = {
        symmetric: ["GenerateDataKeyPair", "ReEncryptFrom", "ReEncryptTo", "DescribeKey"],
        rsa: ["Encrypt", "Decrypt", "GetPublicKey", "DescribeKey"],
        signing: ["Sign", "Verify", "RetireGrant"],
        hmac: ["GenerateMac", "VerifyMac", "CreateGrant"],
    }
    for key_id, operations in allowed.items():
        _grant(kms, key_id, operations=operations)
        assert [g["Operations"] for g in kms.call("ListGrants", KeyId=key_id)["Grants"]] == [operations]


def test_create_grant_request_errors(kms):
    key_id, _ = _key(kms)
    token = _grant(kms, key_id)["GrantToken"]
    with pytest.raises(errors.InvalidGrantTokenException) as raised:
        _grant(kms, key_id, GrantTokens=[token, "not a token"])
    assert raised.value.message == "The grant token is not valid."
    with pytest.raises(errors.ValidationException) as raised:
        _grant(kms, key_id, GrantTokens=[token] * 11)
    assert raised.value.message == (
        f"1 validation error detected: Value '[{', '.join([token] * 11)}]' at 'grantTokens' "
        "failed to satisfy constraint: Member must have length less than or equal to 10"
    )
    with_tokens = _grant(kms, key_id, GrantTokens=[token] * 10)["GrantId"]
    assert _ids(kms.call("ListGrants", KeyId=key_id))[-1] == with_tokens
    for member, value in [("GranteeServicePrincipal", "dynamodb.amazonaws.com"),
                          ("RetiringServicePrincipal", "dynamodb.amazonaws.com")]:
        with pytest.raises(errors.UnsupportedOperationException) as raised:
            _grant(kms, key_id, **{member: value})
        assert raised.value.message == (
            f"{member} is not supported by keyledger (it has no AWS service callers)."
        )
    with pytest.raises(errors.UnsupportedOperationException) as raised:
        _grant(kms, key_id, Constraints={"SourceArn": "arn:aws:s3:::bucket"})
    assert raised.value.message == "The SourceArn grant constraint is not supported by keyledger."
    for principal in ("not-a-principal", "arn:aws:iam::111122223333:group/admins",
                      "arn:aws:s3:::bucket", "arn:aws-cn:iam::111122223333:root"):
        with pytest.raises(errors.InvalidArnException) as raised:
            _grant(kms, key_id, grantee=principal)
        assert raised.value.message == f"ARN does not refer to a valid principal: {principal}"
        with pytest.raises(errors.InvalidArnException) as raised:
            _grant(kms, key_id, RetiringPrincipal=principal)
        assert raised.value.message == f"ARN does not refer to a valid principal: {principal}"
    unknown = UNKNOWN_KEY
    with pytest.raises(errors.NotFoundException) as raised:
        _grant(kms, unknown)
    assert raised.value.message == f"Key 'arn:aws:kms:us-east-1:{ACCOUNT}:key/{unknown}' does not exist"
    # not a key id: AWS's "Invalid keyId" (localstack's recorded snapshot, test_get_key_invalid_uuid)
    with pytest.raises(errors.NotFoundException) as raised:
        _grant(kms, "alias/anything")
    assert raised.value.message == "Invalid keyId 'alias/anything'"
    # an alias ARN: AWS's InvalidArnException for CreateGrant (as Lambda relays it,
    # hashicorp/terraform#20813)
    with pytest.raises(errors.InvalidArnException) as raised:
        _grant(kms, f"arn:aws:kms:us-east-1:{ACCOUNT}:alias/anything")
    assert raised.value.message == "Key Aliases are not supported for this operation."


def test_grants_may_name_any_kind_of_principal_in_open_mode(kms):
    key_id, _ = _key(kms)
    principals = [
        OTHER_ACCOUNT, f"arn:aws:iam::{OTHER_ACCOUNT}:root", f"arn:aws:iam::{ACCOUNT}:user/path/to/carol",
        OPS, f"arn:aws:sts::{ACCOUNT}:assumed-role/ops/session-1",
        f"arn:aws:sts::{ACCOUNT}:federated-user/fed", "dynamodb.us-west-2.amazonaws.com",
    ]
    for principal in principals:
        _grant(kms, key_id, grantee=principal, RetiringPrincipal=principal)
    listed = kms.call("ListGrants", KeyId=key_id)["Grants"]
    assert [(g["GranteePrincipal"], g["RetiringPrincipal"]) for g in listed] == [
        (p, p) for p in principals
    ]


def test_named_principals_must_exist_when_the_server_knows_its_principals(kms):
    key_id, _ = _key(kms)
    known = {f"arn:aws:iam::{ACCOUNT}:root", BOB, OPS}
    kms.service.authorizer.principal_exists = known.__contains__
    ghost = f"arn:aws:iam::{ACCOUNT}:role/ghost"
    with pytest.raises(errors.InvalidArnException) as raised:
        _grant(kms, key_id, grantee=ghost)
    assert raised.value.message == f"ARN does not refer to a valid principal: {ghost}"
    with pytest.raises(errors.InvalidArnException) as raised:
        _grant(kms, key_id, RetiringPrincipal=ghost)
    assert raised.value.message == f"ARN does not refer to a valid principal: {ghost}"
    with pytest.raises(errors.InvalidArnException) as raised:
        _grant(kms, key_id, grantee=OTHER_ACCOUNT)
    assert raised.value.message == f"ARN does not refer to a valid principal: {OTHER_ACCOUNT}"
    granted = [
        _grant(kms, key_id, grantee=BOB, RetiringPrincipal=OPS)["GrantId"],
        _grant(kms, key_id, grantee=ACCOUNT)["GrantId"],  # the bare id of a known account
        _grant(kms, key_id, grantee="dynamodb.us-west-2.amazonaws.com")["GrantId"],
    ]
    assert _ids(kms.call("ListGrants", KeyId=key_id)) == granted


# -- durability ---------------------------------------------------------------------------------


def test_grants_survive_a_restart(kms):
    key_id, _ = _key(kms)
    created = _grant(kms, key_id, RetiringPrincipal=OPS, Name="kept",
                     Constraints={"EncryptionContextEquals": {"app": "x"}})
    other = _grant(kms, key_id)
    before = kms.call("ListGrants", KeyId=key_id)
    kms.restart()
    assert kms.call("ListGrants", KeyId=key_id) == before
    assert _ids(kms.call("ListRetirableGrants", RetiringPrincipal=OPS)) == [created["GrantId"]]
    # a named retry after the restart still finds the grant
    again = _grant(kms, key_id, RetiringPrincipal=OPS, Name="kept",
                   Constraints={"EncryptionContextEquals": {"app": "x"}})
    assert again["GrantId"] == created["GrantId"]
    assert kms.call("RetireGrant", GrantToken=created["GrantToken"]) == {}
    assert _ids(kms.call("ListGrants", KeyId=key_id)) == [other["GrantId"]]


def test_grants_go_with_their_key_when_its_deletion_completes(kms):
    key_id, arn = _key(kms)
    created = _grant(kms, key_id, RetiringPrincipal=OPS)
    kept = _grant(kms, key_id, RetiringPrincipal=OPS)["GrantId"]
    kms.call("ScheduleKeyDeletion", KeyId=key_id, PendingWindowInDays=7)
    with pytest.raises(errors.KMSInvalidStateException) as raised:
        _grant(kms, key_id)
    assert raised.value.message == f"{arn} is pending deletion."
    assert _ids(kms.call("ListGrants", KeyId=key_id)) == [created["GrantId"], kept]
    kms.call("RetireGrant", GrantToken=created["GrantToken"])  # allowed while pending deletion
    assert _ids(kms.call("ListRetirableGrants", RetiringPrincipal=OPS)) == [kept]

    kms.advance(days=7, seconds=1)
    with pytest.raises(errors.NotFoundException) as raised:
        kms.call("ListGrants", KeyId=key_id)
    assert raised.value.message == f"Key '{arn}' does not exist"
    assert kms.call("ListRetirableGrants", RetiringPrincipal=OPS) == {"Grants": [], "Truncated": False}
    with pytest.raises(errors.NotFoundException) as raised:
        kms.call("RetireGrant", KeyId=key_id, GrantId=kept)
    assert raised.value.message == f"Key '{arn}' does not exist"
    with pytest.raises(errors.NotFoundException) as raised:
        kms.call("RevokeGrant", KeyId=key_id, GrantId=kept)
    assert raised.value.message == f"Key '{arn}' does not exist"
    kms.restart()
    assert kms.service.region("us-east-1").ledger.get_key(key_id).grants == {}


def test_a_second_process_sees_a_new_grant(kms):
    key_id, _ = _key(kms)
    other = kms.other_process()
    try:
        assert _ids(other.call("ListGrants", KeyId=key_id)) == []  # warms its in-memory key
        created = _grant(kms, key_id, RetiringPrincipal=OPS)
        other.service.follow()
        assert _ids(other.call("ListGrants", KeyId=key_id)) == [created["GrantId"]]
        assert _ids(other.call("ListRetirableGrants", RetiringPrincipal=OPS)) == [created["GrantId"]]
        # the other process retires it; the first sees that once it follows the ledger
        assert other.call("RetireGrant", GrantToken=created["GrantToken"]) == {}
        kms.service.follow()
        assert _ids(kms.call("ListGrants", KeyId=key_id)) == []
    finally:
        other.close()


# -- who may create and retire grants (identity policies, grants) -------------------------------


def test_a_grantee_creates_only_narrower_grants(kms):
    key_id, arn = _key(kms)
    alice = _user("alice")
    parent = _grant(kms, key_id, ALICE, operations=["CreateGrant", "Decrypt", "Encrypt"],
                    Constraints={"EncryptionContextSubset": {"dept": "a"}})["GrantId"]
    as_alice = kms.context(principal=alice)
    narrower = [
        {"Operations": ["Decrypt"], "Constraints": {"EncryptionContextSubset": {"dept": "a", "t": "1"}}},
        {"Operations": ["Encrypt", "Decrypt"], "Constraints": {"EncryptionContextEquals": {"dept": "a"}}},
    ]
    children = [
        kms.call("CreateGrant", as_alice, KeyId=key_id, GranteePrincipal=BOB, **request)["GrantId"]
        for request in narrower
    ]
    refused = (
        f"Grant {parent} allows creating only grants that allow a subset of its operations "
        "(CreateGrant, Decrypt, Encrypt) with equally strict or stricter encryption context "
        "constraints."
    )
    for request in [
        {"Operations": ["GenerateDataKey"], "Constraints": {"EncryptionContextSubset": {"dept": "a"}}},
        {"Operations": ["Decrypt"]},
        {"Operations": ["Decrypt"], "Constraints": {"EncryptionContextSubset": {"dept": "b"}}},
    ]:
        with pytest.raises(errors.AccessDeniedException) as raised:
            kms.call("CreateGrant", as_alice, KeyId=key_id, GranteePrincipal=BOB, **request)
        assert raised.value.message == refused
    # the account's root holds kms:CreateGrant from the key policy: no such limit
    wide = _grant(kms, key_id, operations=["GenerateDataKey"])["GrantId"]
    assert _ids(kms.call("ListGrants", KeyId=key_id)) == [parent, *children, wide]
    # without a grant (and without an identity policy) the user may not create grants at all
    with pytest.raises(errors.AccessDeniedException) as raised:
        kms.call("CreateGrant", kms.context(principal=_user("carol")), KeyId=key_id,
                 GranteePrincipal=BOB, Operations=["Decrypt"])
    assert raised.value.message == (
        f"User: arn:aws:iam::{ACCOUNT}:user/carol is not authorized to perform: kms:CreateGrant "
        f"on resource: {arn} because no identity-based policy allows the kms:CreateGrant action"
    )


def test_who_may_retire_a_grant(kms):
    key_id, arn = _key(kms)
    allow = {"Effect": "Allow", "Action": "kms:RetireGrant", "Resource": "*"}
    deny = {"Effect": "Deny", "Action": "kms:*", "Resource": "*"}

    def retire_as(principal: Principal, token: str) -> dict:
        return kms.call("RetireGrant", kms.context(principal=principal), GrantToken=token)

    # the retiring principal and a grantee whose grant allows RetireGrant need no policy
    ops_retires = _grant(kms, key_id, RetiringPrincipal=f"arn:aws:iam::{ACCOUNT}:user/ops-user")
    assert retire_as(_user("ops-user"), ops_retires["GrantToken"]) == {}
    self_retiring = _grant(kms, key_id, BOB, operations=["Decrypt", "RetireGrant"])
    assert retire_as(_user("bob"), self_retiring["GrantToken"]) == {}

    # another principal of the issuing account needs an identity policy allowing it
    created = _grant(kms, key_id)
    with pytest.raises(errors.AccessDeniedException) as raised:
        retire_as(_user("carol"), created["GrantToken"])
    assert raised.value.message == (
        f"User: arn:aws:iam::{ACCOUNT}:user/carol is not authorized to perform: kms:RetireGrant "
        f"on resource: {arn} because no identity-based policy allows the kms:RetireGrant action"
    )
    # a grantee whose grant does not allow RetireGrant is such a principal
    with pytest.raises(errors.AccessDeniedException) as raised:
        retire_as(_user("bob"), created["GrantToken"])
    assert raised.value.message == (
        f"User: {BOB} is not authorized to perform: kms:RetireGrant on resource: {arn} because "
        "no identity-based policy allows the kms:RetireGrant action"
    )
    assert retire_as(_user("dave", allow), created["GrantToken"]) == {}

    # an identity-policy Deny refuses even the retiring principal
    denied = _grant(kms, key_id, RetiringPrincipal=f"arn:aws:iam::{ACCOUNT}:user/erin")
    with pytest.raises(errors.AccessDeniedException) as raised:
        retire_as(_user("erin", deny), denied["GrantToken"])
    assert raised.value.message == (
        f"User: arn:aws:iam::{ACCOUNT}:user/erin is not authorized to perform: kms:RetireGrant "
        f"on resource: {arn} with an explicit deny in an identity-based policy"
    )
    assert _ids(kms.call("ListGrants", KeyId=key_id)) == [denied["GrantId"]]
    assert retire_as(_user("erin"), denied["GrantToken"]) == {}


def test_list_retirable_grants_is_authorized_by_identity_policies_on_the_principal(kms):
    key_id, _ = _key(kms)
    created = _grant(kms, key_id, RetiringPrincipal=OPS)["GrantId"]
    with pytest.raises(errors.AccessDeniedException) as raised:
        kms.call("ListRetirableGrants", kms.context(principal=_user("carol")), RetiringPrincipal=OPS)
    assert raised.value.message == (
        f"User: arn:aws:iam::{ACCOUNT}:user/carol is not authorized to perform: "
        f"kms:ListRetirableGrants on resource: {OPS} because no identity-based policy allows the "
        "kms:ListRetirableGrants action"
    )
    reader = _user("reader", {"Effect": "Allow", "Action": "kms:ListRetirableGrants", "Resource": OPS})
    listing = kms.call("ListRetirableGrants", kms.context(principal=reader), RetiringPrincipal=OPS)
    assert _ids(listing) == [created]
    with pytest.raises(errors.AccessDeniedException) as raised:
        kms.call("ListRetirableGrants", kms.context(principal=reader), RetiringPrincipal=AUDIT)
    assert raised.value.message == (
        f"User: arn:aws:iam::{ACCOUNT}:user/reader is not authorized to perform: "
        f"kms:ListRetirableGrants on resource: {AUDIT} because no identity-based policy allows "
        "the kms:ListRetirableGrants action"
    )


def test_grants_across_accounts(kms):
    key_id, arn = _key(kms)
    policy = {
        "Version": "2012-10-17",
        "Statement": [
            {"Sid": "Enable IAM User Permissions", "Effect": "Allow",
             "Principal": {"AWS": f"arn:aws:iam::{ACCOUNT}:root"}, "Action": "kms:*", "Resource": "*"},
            {"Sid": "Grants for the other account", "Effect": "Allow",
             "Principal": {"AWS": f"arn:aws:iam::{OTHER_ACCOUNT}:root"}, "Action": "kms:CreateGrant",
             "Resource": "*"},
        ],
    }
    kms.call("PutKeyPolicy", KeyId=key_id, Policy=json.dumps(policy))
    other_root = kms.context(principal=Principal.root(OTHER_ACCOUNT))

    # another account creates a grant on the key by its ARN: that account issued it
    created = kms.call("CreateGrant", other_root, KeyId=arn, GranteePrincipal=BOB,
                       Operations=["Decrypt"])
    [entry] = kms.call("ListGrants", KeyId=key_id)["Grants"]
    assert (entry["GrantId"], entry["IssuingAccount"]) == (
        created["GrantId"], f"arn:aws:iam::{OTHER_ACCOUNT}:root"
    )
    with pytest.raises(errors.NotFoundException) as raised:  # a key id names its own account's key
        kms.call("CreateGrant", other_root, KeyId=key_id, GranteePrincipal=BOB, Operations=["Decrypt"])
    assert raised.value.message == (
        f"Key 'arn:aws:kms:us-east-1:{OTHER_ACCOUNT}:key/{key_id}' does not exist"
    )

    # the key's own account did not issue it, so it may revoke it but not retire it
    with pytest.raises(errors.AccessDeniedException) as raised:
        kms.call("RetireGrant", KeyId=key_id, GrantId=created["GrantId"])
    assert raised.value.message == (
        f"User: arn:aws:iam::{ACCOUNT}:root is not authorized to perform: kms:RetireGrant on "
        f"resource: {arn} because no resource-based policy allows the kms:RetireGrant action"
    )
    # the issuing account retires it by key ARN and grant id, or by token
    assert kms.call("RetireGrant", other_root, KeyId=arn, GrantId=created["GrantId"]) == {}
    by_token = kms.call("CreateGrant", other_root, KeyId=arn, GranteePrincipal=BOB,
                        Operations=["Decrypt"])
    assert kms.call("RetireGrant", other_root, GrantToken=by_token["GrantToken"]) == {}
    revoked = kms.call("CreateGrant", other_root, KeyId=arn, GranteePrincipal=BOB,
                       Operations=["Decrypt"])["GrantId"]
    assert kms.call("RevokeGrant", KeyId=key_id, GrantId=revoked) == {}
    assert _ids(kms.call("ListGrants", KeyId=key_id)) == []
