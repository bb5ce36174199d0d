"""Grants: constraints, who a grant names, operations per key type, child grants, tokens,
and the KmsKey aggregate's grant events (replay, snapshots, idempotency, deletion, limit).

No I/O but the in-memory ledger; time is passed in explicitly.
"""

from __future__ import annotations

import base64
import copy
from datetime import UTC, datetime, timedelta
from functools import reduce

import pytest

from domain import errors
from domain.grants import (
    CONTEXT_OPERATIONS,
    GRANT_OPERATIONS,
    MAX_GRANT_TOKEN_LENGTH,
    MAX_GRANTS_PER_KEY,
    Grant,
    GrantConstraints,
    check_child_grant,
    check_grant_constraints,
    check_grant_operations,
    grant_operations_for,
    new_grant_id,
    new_grant_token,
    parse_grant_token,
    parse_grant_tokens,
)
from domain.key import KmsKey
from domain.policy import default_key_policy
from domain.principals import Principal, PrincipalKind
from domain.values import Actor, BackingKey, Origin

ACCOUNT = "111122223333"
OTHER = "444455556666"
REGION = "us-east-1"
KEY_ID = "1234abcd-12ab-34cd-56ef-1234567890ab"
ARN = f"arn:aws:kms:{REGION}:{ACCOUNT}:key/{KEY_ID}"
T0 = datetime(2030, 1, 1, 12, 0, tzinfo=UTC)
ALICE = Actor(f"arn:aws:iam::{ACCOUNT}:user/alice", "AKIAALICE", "req-1")
BOB = Actor(f"arn:aws:iam::{ACCOUNT}:user/bob", "AKIABOB", "req-2")
SERVICE = Actor.service("req-svc")

ROOT = Principal.root(ACCOUNT)
ALICE_P = Principal(ACCOUNT, PrincipalKind.USER, name="alice")
BOB_P = Principal(ACCOUNT, PrincipalKind.USER, name="bob")
SESSION = Principal(ACCOUNT, PrincipalKind.ASSUMED_ROLE, name="app", session_name="s1")
OTHER_SESSION = Principal(ACCOUNT, PrincipalKind.ASSUMED_ROLE, name="app", session_name="s2")
FOREIGN_ROOT = Principal.root(OTHER)
FOREIGN_USER = Principal(OTHER, PrincipalKind.USER, name="carol")

ALICE_ARN = ALICE_P.arn
ROLE_ARN = f"arn:aws:iam::{ACCOUNT}:role/app"


def gid(n: int) -> str:
    return f"{n:064x}"


GRANT_1 = gid(1)


def make_grant(operations=("Encrypt", "Decrypt"), constraints=None, grantee=ALICE_ARN,
               retiring=None, grant_id=GRANT_1, name="") -> Grant:
    return Grant(
        grant_id=grant_id, key_id=KEY_ID, name=name, grantee_principal=grantee,
        retiring_principal=retiring, operations=tuple(operations), constraints=constraints,
        issuing_account=ACCOUNT, creation_date=T0,
    )


def new_key(key_spec="SYMMETRIC_DEFAULT", key_usage="ENCRYPT_DECRYPT") -> KmsKey:
    material = BackingKey(gid(0), b"fake-sealed", T0, public_key=None)
    return KmsKey.create(
        key_id=KEY_ID, account=ACCOUNT, region=REGION, description="", tags={},
        policy=default_key_policy(ACCOUNT), material=material, now=T0, actor=ALICE,
        key_spec=key_spec, key_usage=key_usage, origin=Origin.AWS_KMS,
    )


def grant_on(key: KmsKey, n: int = 1, actor: Actor = ALICE, **kw) -> Grant:
    args = dict(grant_id=gid(n), grantee_principal=ALICE_ARN, operations=["Encrypt", "Decrypt"],
                issuing_account=ACCOUNT, now=T0 + timedelta(minutes=n), actor=actor)
    args.update(kw)
    return key.create_grant(**args)


def state(aggregate) -> dict:
    return {k: v for k, v in vars(aggregate).items() if k != "_pending_events"}


def event_names(key: KmsKey) -> list[str]:
    return [type(e).__name__ for e in key.pending_events]


def equals(**context) -> GrantConstraints:
    return GrantConstraints(encryption_context_equals=context)


def subset(**context) -> GrantConstraints:
    return GrantConstraints(encryption_context_subset=context)


# -- constraints ---------------------------------------------------------------------------------


@pytest.mark.parametrize(
    ("context", "expected"),
    [
        ({"Department": "IT", "Project": "x"}, True),
        ({"Project": "x", "Department": "IT"}, True),  # any order
        ({"department": "IT", "PROJECT": "x"}, True),  # keys are case-insensitive
        ({"Department": "it", "Project": "x"}, False),  # values are case-sensitive
        ({"Department": "IT"}, False),  # a pair missing
        ({"Department": "IT", "Project": "x", "More": "y"}, False),  # a pair too many
        ({"Department": "IT", "department": "IT", "Project": "x"}, False),  # same key twice
        ({}, False),
        (None, False),
    ],
)
def test_equals_constraint(context, expected):
    assert equals(Department="IT", Project="x").matches(context) is expected


@pytest.mark.parametrize(
    ("context", "expected"),
    [
        ({"Department": "IT"}, True),
        ({"Customer": "12345", "Department": "IT", "Purpose": "Test"}, True),  # more is fine
        ({"DEPARTMENT": "IT"}, True),  # keys are case-insensitive
        ({"Department": "it"}, False),  # values are case-sensitive
        ({"Customer": "12345"}, False),
        ({}, False),
        (None, False),
    ],
)
def test_subset_constraint(context, expected):
    assert subset(Department="IT").matches(context) is expected


def test_kdg_subset_example():
    constraint = subset(Department="Finance", Classification="Public")
    for ok in ({"Department": "Finance", "Classification": "Public"},
               {"Classification": "Public", "Department": "Finance"},
               {"Customer": "12345", "Department": "Finance", "Classification": "Public",
                "Purpose": "Test"}):
        assert constraint.matches(ok)
    for bad in ({"Department": "Finance"}, {"department": "finance", "classification": "public"},
                {"Classification": "Public", "Customer": "12345"}):
        assert not constraint.matches(bad)


def test_empty_equals_matches_only_no_context():
    assert equals().matches(None) and equals().matches({})
    assert not equals().matches({"a": "b"})


def test_both_constraints_must_hold():
    both = GrantConstraints({"a": "1", "b": "2"}, {"a": "1"})
    assert both.matches({"A": "1", "b": "2"})
    assert not both.matches({"a": "1"})
    assert not GrantConstraints({"a": "1"}, {"b": "2"}).matches({"a": "1"})


def test_constraints_copy_their_maps_and_hash():
    context = {"a": "1"}
    constraint = equals(**context)
    context["b"] = "2"
    assert constraint.encryption_context_equals == {"a": "1"}
    assert hash(constraint) == hash(equals(a="1")) and constraint == equals(a="1")
    assert {constraint, equals(a="1")} == {constraint}


def test_constraint_limits():
    eight = {f"k{i}": "v" for i in range(8)}
    GrantConstraints(eight, eight).check()
    with pytest.raises(errors.ValidationException) as info:
        GrantConstraints(encryption_context_subset={**eight, "k8": "v"}).check()
    assert info.value.message == (
        "EncryptionContextSubset can contain at most 8 encryption context pairs."
    )
    equals(k="v" * 384).check()
    with pytest.raises(errors.ValidationException) as info:
        equals(k="v" * 385).check()
    assert info.value.message == (
        "Each value in EncryptionContextEquals can be at most 384 characters long."
    )


def test_constraints_from_request_and_to_wire():
    assert GrantConstraints.from_request(None) is None
    assert GrantConstraints.from_request({}) is None
    parsed = GrantConstraints.from_request({"EncryptionContextSubset": {"Department": "IT"}})
    assert parsed == subset(Department="IT")
    assert parsed.to_wire() == {"EncryptionContextSubset": {"Department": "IT"}}
    both = GrantConstraints.from_request(
        {"EncryptionContextEquals": {"a": "1"}, "EncryptionContextSubset": {"a": "1"}}
    )
    assert both.to_wire() == {"EncryptionContextEquals": {"a": "1"},
                              "EncryptionContextSubset": {"a": "1"}}
    with pytest.raises(errors.UnsupportedOperationException):
        GrantConstraints.from_request({"SourceArn": "arn:aws:s3:::bucket"})


def test_an_empty_constraint_map_is_not_specified():
    """IAM Access Analyzer's KmsGrantConstraints: "An empty map is treated as not specified."
    Terraform's aws_kms_grant sends the constraint it does not use as {}: a subset grant must
    not also require an empty encryption context."""
    assert GrantConstraints.from_request({"EncryptionContextEquals": {}}) is None
    assert GrantConstraints.from_request(
        {"EncryptionContextEquals": {}, "EncryptionContextSubset": {}}) is None
    parsed = GrantConstraints.from_request(
        {"EncryptionContextEquals": {}, "EncryptionContextSubset": {"department": "finance"}})
    assert parsed == subset(department="finance")
    assert parsed.to_wire() == {"EncryptionContextSubset": {"department": "finance"}}
    assert parsed.matches({"department": "finance", "purpose": "audit"})


# -- who and what a grant permits ---------------------------------------------------------------


def test_user_grantee():
    grant = make_grant(grantee=ALICE_ARN)
    assert grant.permits(ALICE_P, "Encrypt", None)
    assert not grant.permits(BOB_P, "Encrypt", None)
    assert not grant.permits(ROOT, "Encrypt", None)  # the account's root is not the user
    assert not grant.permits(ALICE_P, "GenerateDataKey", None)  # not listed
    assert not grant.permits_by_delegation(ALICE_P, "Encrypt", None)


def test_role_grantee_covers_every_session_of_the_role():
    grant = make_grant(grantee=ROLE_ARN)
    assert grant.permits(SESSION, "Decrypt", None)
    assert grant.permits(OTHER_SESSION, "Decrypt", None)
    assert not grant.permits(ALICE_P, "Decrypt", None)


def test_session_grantee_names_one_session():
    grant = make_grant(grantee=SESSION.arn)
    assert grant.permits(SESSION, "Decrypt", None)
    assert not grant.permits(OTHER_SESSION, "Decrypt", None)


@pytest.mark.parametrize("grantee", [f"arn:aws:iam::{OTHER}:root", OTHER])
def test_account_grantee_is_its_root_and_delegates_to_its_principals(grantee):
    grant = make_grant(grantee=grantee)
    assert grant.permits(FOREIGN_ROOT, "Encrypt", None)
    assert not grant.permits_by_delegation(FOREIGN_ROOT, "Encrypt", None)
    # the account's users and sessions: through an identity policy of theirs only
    assert not grant.permits(FOREIGN_USER, "Encrypt", None)
    assert grant.permits_by_delegation(FOREIGN_USER, "Encrypt", None)
    assert not grant.permits_by_delegation(FOREIGN_USER, "Sign", None)
    # nobody of another account
    for principal in (ROOT, ALICE_P, SESSION):
        assert not grant.permits(principal, "Encrypt", None)
        assert not grant.permits_by_delegation(principal, "Encrypt", None)


@pytest.mark.parametrize("operation", sorted(CONTEXT_OPERATIONS))
def test_constraints_apply_to_operations_with_an_encryption_context(operation):
    grant = make_grant(operations=[operation], constraints=subset(Department="IT"))
    assert grant.permits(ALICE_P, operation, {"Department": "IT"})
    assert not grant.permits(ALICE_P, operation, {"Department": "HR"})
    assert not grant.permits(ALICE_P, operation, None)


@pytest.mark.parametrize("operation", ["DescribeKey", "CreateGrant", "RetireGrant"])
def test_constraints_do_not_apply_to_other_operations(operation):
    grant = make_grant(operations=["Decrypt", operation], constraints=equals(Department="IT"))
    assert grant.permits(ALICE_P, operation, None)
    assert grant.permits(ALICE_P, operation, {"Other": "x"})
    assert not grant.permits(ALICE_P, "Decrypt", None)


def test_may_retire():
    grant = make_grant(retiring=ROLE_ARN)
    assert grant.may_retire(SESSION)  # the retiring principal (a role: any of its sessions)
    assert grant.may_retire(ROOT)  # the account in which the grant was created
    assert not grant.may_retire(ALICE_P)  # the grantee, without RetireGrant
    assert not grant.may_retire(FOREIGN_ROOT)
    assert make_grant(operations=["Decrypt", "RetireGrant"]).may_retire(ALICE_P)
    assert make_grant(retiring=f"arn:aws:iam::{OTHER}:root").may_retire(FOREIGN_ROOT)


def test_grants_are_immutable_values_copies_share():
    grant = make_grant(constraints=subset(a="1"))
    assert copy.deepcopy(grant) is grant and copy.copy(grant) is grant
    assert copy.deepcopy(grant.constraints) is grant.constraints
    with pytest.raises(AttributeError):
        grant.name = "x"


def test_list_entry_shape():
    bare = make_grant().to_list_entry(ARN)
    assert bare == {
        "KeyId": ARN,
        "GrantId": gid(1),
        "Name": "",
        "CreationDate": T0,
        "GranteePrincipal": ALICE_ARN,
        "IssuingAccount": f"arn:aws:iam::{ACCOUNT}:root",
        "Operations": ["Encrypt", "Decrypt"],
    }
    full = make_grant(operations=["Decrypt", "RetireGrant"], retiring=ROLE_ARN, name="n-1",
                      constraints=subset(Department="IT")).to_list_entry(ARN)
    assert full["Name"] == "n-1"
    assert full["RetiringPrincipal"] == ROLE_ARN
    assert full["Constraints"] == {"EncryptionContextSubset": {"Department": "IT"}}
    assert full["Operations"] == ["Decrypt", "RetireGrant"]


# -- operations per key type ---------------------------------------------------------------------

ANY_KEY = {"CreateGrant", "RetireGrant", "DescribeKey"}


@pytest.mark.parametrize(
    ("key_spec", "key_usage", "operations"),
    [
        ("SYMMETRIC_DEFAULT", "ENCRYPT_DECRYPT",
         {"Encrypt", "Decrypt", "ReEncryptFrom", "ReEncryptTo", "GenerateDataKey",
          "GenerateDataKeyWithoutPlaintext", "GenerateDataKeyPair",
          "GenerateDataKeyPairWithoutPlaintext"}),
        ("RSA_2048", "ENCRYPT_DECRYPT",
         {"Encrypt", "Decrypt", "ReEncryptFrom", "ReEncryptTo", "GetPublicKey"}),
        ("RSA_4096", "SIGN_VERIFY", {"Sign", "Verify", "GetPublicKey"}),
        ("ECC_NIST_P256", "SIGN_VERIFY", {"Sign", "Verify", "GetPublicKey"}),
        ("ML_DSA_65", "SIGN_VERIFY", {"Sign", "Verify", "GetPublicKey"}),
        ("HMAC_256", "GENERATE_VERIFY_MAC", {"GenerateMac", "VerifyMac"}),
        ("ECC_NIST_P384", "KEY_AGREEMENT", {"DeriveSharedSecret", "GetPublicKey"}),
        ("ML_KEM_768", "ENCAPSULATE_DECAPSULATE", {"Encapsulate", "Decapsulate", "GetPublicKey"}),
    ],
)
def test_grant_operations_per_key_type(key_spec, key_usage, operations):
    allowed = operations | ANY_KEY
    assert grant_operations_for(key_spec, key_usage) == allowed
    assert check_grant_operations(key_spec, key_usage, sorted(allowed)) == tuple(sorted(allowed))
    for refused in set(GRANT_OPERATIONS) - allowed:
        with pytest.raises(errors.ValidationException) as info:
            check_grant_operations(key_spec, key_usage, ["DescribeKey", refused])
        assert info.value.message == (
            f"The grant operation {refused} is not supported for a KMS key with KeySpec "
            f"{key_spec} and KeyUsage {key_usage}."
        )


def test_unsupported_operations_are_all_named():
    with pytest.raises(errors.ValidationException) as info:
        check_grant_operations("SYMMETRIC_DEFAULT", "ENCRYPT_DECRYPT", ["Sign", "Decrypt", "Verify"])
    assert info.value.message == (
        "The grant operations Sign, Verify are not supported for a KMS key with KeySpec "
        "SYMMETRIC_DEFAULT and KeyUsage ENCRYPT_DECRYPT."
    )


def test_operations_must_be_known_and_at_least_one():
    with pytest.raises(errors.ValidationException, match="at least one grant operation"):
        check_grant_operations("SYMMETRIC_DEFAULT", "ENCRYPT_DECRYPT", [])
    with pytest.raises(errors.ValidationException, match="^ScheduleKeyDeletion is not a valid"):
        check_grant_operations("SYMMETRIC_DEFAULT", "ENCRYPT_DECRYPT", ["ScheduleKeyDeletion"])


def test_operations_keep_request_order_without_repeats():
    assert check_grant_operations(
        "SYMMETRIC_DEFAULT", "ENCRYPT_DECRYPT", ["Decrypt", "Encrypt", "Decrypt", "DescribeKey"]
    ) == ("Decrypt", "Encrypt", "DescribeKey")


@pytest.mark.parametrize(
    ("key_spec", "key_usage"),
    [("RSA_2048", "ENCRYPT_DECRYPT"), ("ECC_NIST_P256", "SIGN_VERIFY"),
     ("HMAC_512", "GENERATE_VERIFY_MAC"), ("ML_KEM_1024", "ENCAPSULATE_DECAPSULATE")],
)
def test_constraints_only_for_symmetric_encryption_keys(key_spec, key_usage):
    check_grant_constraints(key_spec, key_usage, None)
    with pytest.raises(errors.ValidationException) as info:
        check_grant_constraints(key_spec, key_usage, subset(a="1"))
    assert info.value.message == (
        "Encryption context grant constraints are not supported for a KMS key with KeySpec "
        f"{key_spec} and KeyUsage {key_usage}."
    )
    check_grant_constraints("SYMMETRIC_DEFAULT", "ENCRYPT_DECRYPT", subset(a="1"))


# -- child grants --------------------------------------------------------------------------------

PARENT_OPS = ("GenerateDataKey", "Decrypt", "CreateGrant")


@pytest.mark.parametrize(
    ("parent_constraints", "child_operations", "child_constraints", "allowed"),
    [
        (None, ["Decrypt"], None, True),
        (None, ["GenerateDataKey", "Decrypt", "CreateGrant"], subset(a="1"), True),
        (None, ["Decrypt", "Encrypt"], None, False),  # an operation the parent lacks
        (None, ["ReEncryptFrom"], None, False),
        # a Subset may gain pairs, or become an Equals that contains it
        (subset(a="1"), ["Decrypt"], subset(a="1"), True),
        (subset(a="1"), ["Decrypt"], subset(A="1", b="2"), True),
        (subset(a="1"), ["Decrypt"], equals(a="1", b="2"), True),
        (subset(a="1", b="2"), ["Decrypt"], subset(a="1"), False),  # a pair removed
        (subset(a="1"), ["Decrypt"], subset(a="2"), False),
        (subset(a="1"), ["Decrypt"], None, False),
        (subset(a="1"), ["Decrypt"], equals(b="2"), False),
        # an Equals stays the same Equals (keys in any case); never a Subset
        (equals(a="1"), ["Decrypt"], equals(A="1"), True),
        (equals(a="1"), ["Decrypt"], GrantConstraints({"a": "1"}, {"a": "1"}), True),
        (equals(a="1"), ["Decrypt"], equals(a="1", b="2"), False),
        (equals(a="1"), ["Decrypt"], subset(a="1"), False),
        (equals(a="1"), ["Decrypt"], None, False),
    ],
)
def test_child_grant_rules(parent_constraints, child_operations, child_constraints, allowed):
    parent = make_grant(operations=PARENT_OPS, constraints=parent_constraints)
    assert parent.allows_child(child_operations, child_constraints) is allowed
    if allowed:
        check_child_grant(parent, child_operations, child_constraints)
    else:
        with pytest.raises(errors.AccessDeniedException) as info:
            check_child_grant(parent, child_operations, child_constraints)
        assert info.value.message == (
            f"Grant {gid(1)} allows creating only grants that allow a subset of its operations "
            "(GenerateDataKey, Decrypt, CreateGrant) with equally strict or stricter "
            "encryption context constraints."
        )


def test_a_grant_without_create_grant_has_no_children():
    assert not make_grant(operations=["Decrypt"]).allows_child(["Decrypt"], None)


# -- ids and tokens ------------------------------------------------------------------------------


def test_grant_id():
    assert new_grant_id(bytes(range(32))) == bytes(range(32)).hex()
    assert len(new_grant_id(b"\xff" * 32)) == 64
    with pytest.raises(ValueError):
        new_grant_id(b"short")


def test_token_round_trip_and_uniqueness():
    tokens = {new_grant_token(KEY_ID, gid(7)) for _ in range(20)}
    assert len(tokens) == 20  # unique per call
    for token in tokens:
        assert parse_grant_token(token) == (KEY_ID, gid(7))
        assert 1 <= len(token) <= MAX_GRANT_TOKEN_LENGTH
        assert set(token) <= set("ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz0123456789-_")
    mrk = "mrk-" + "ab" * 16
    assert parse_grant_token(new_grant_token(mrk, gid(8), nonce=b"\0" * 16)) == (mrk, gid(8))
    assert parse_grant_tokens([new_grant_token(KEY_ID, gid(1))] * 10) == [(KEY_ID, gid(1))] * 10
    assert parse_grant_tokens(None) == []


def _b64(raw: bytes) -> str:
    return base64.urlsafe_b64encode(raw).rstrip(b"=").decode()


GOOD = bytes([1]) + b"\0" * 16 + bytes.fromhex(gid(7)) + KEY_ID.encode()


@pytest.mark.parametrize(
    "token",
    [
        "",
        "not a token",
        "abc=",  # padding is not part of a token
        "A" * 5,  # a length base64 cannot have
        "A" * (MAX_GRANT_TOKEN_LENGTH + 1),
        _b64(b"\2" + GOOD[1:]),  # unknown version
        _b64(GOOD[:49]),  # no key id
        _b64(GOOD[:60]),  # key id cut short
        _b64(GOOD[:49] + b"\xff\xfe"),  # not ASCII
        _b64(GOOD[:49] + b"alias/x"),
        base64.b64encode(GOOD).decode(),  # standard alphabet, padded
        None,
        42,
    ],
)
def test_malformed_tokens(token):
    assert parse_grant_token(_b64(GOOD)) == (KEY_ID, gid(7))
    with pytest.raises(errors.InvalidGrantTokenException) as info:
        parse_grant_token(token)
    assert info.value.message == "The grant token is not valid."


def test_at_most_ten_grant_tokens():
    with pytest.raises(errors.ValidationException, match="^1 validation error detected: .* at "
                       "'grantTokens' failed to satisfy constraint: Member must have length less "
                       "than or equal to 10$"):
        parse_grant_tokens(["t"] * 11)


def test_token_needs_a_grant_id_and_key_id():
    with pytest.raises(ValueError):
        new_grant_token(KEY_ID, "abc")
    with pytest.raises(ValueError):
        new_grant_token("alias/x", gid(1))


# -- the aggregate -------------------------------------------------------------------------------


def test_create_grant_records_an_event_with_its_actor():
    key = new_key()
    grant = grant_on(key, 1, actor=BOB, retiring_principal=ROLE_ARN,
                     constraints=subset(Department="IT"), name="first")
    assert grant == Grant(
        grant_id=gid(1), key_id=KEY_ID, name="first", grantee_principal=ALICE_ARN,
        retiring_principal=ROLE_ARN, operations=("Encrypt", "Decrypt"),
        constraints=subset(Department="IT"), issuing_account=ACCOUNT,
        creation_date=T0 + timedelta(minutes=1),
    )
    assert key.grants == {gid(1): grant}
    assert event_names(key) == ["KeyCreated", "GrantCreated"]
    assert key.pending_events[-1].actor == BOB
    assert key.permitting_grant(ALICE_P, "Decrypt", {"Department": "IT"}) is grant
    assert key.permitting_grant(ALICE_P, "Decrypt", {"Department": "HR"}) is None
    assert key.permitting_grant(BOB_P, "Decrypt", {"Department": "IT"}) is None


def test_create_grant_validates_the_request():
    key = new_key()
    with pytest.raises(errors.ValidationException, match="Sign is not supported"):
        grant_on(key, operations=["Sign"])
    with pytest.raises(errors.ValidationException, match="at 'granteePrincipal'"):
        grant_on(key, grantee_principal=None)
    with pytest.raises(errors.ValidationException, match="at most 8"):
        grant_on(key, constraints=subset(**{f"k{i}": "v" for i in range(9)}))
    signing = new_key("ECC_NIST_P256", "SIGN_VERIFY")
    with pytest.raises(errors.ValidationException, match="constraints are not supported"):
        grant_on(signing, operations=["Sign"], constraints=subset(a="1"))
    assert grant_on(signing, operations=["Sign", "GetPublicKey"]).operations == (
        "Sign", "GetPublicKey"
    )
    assert event_names(key) == ["KeyCreated"]


def test_list_grants_filters():
    key = new_key()
    first = grant_on(key, 1)
    second = grant_on(key, 2, grantee_principal=ROLE_ARN)
    assert key.list_grants() == [first, second]
    assert key.get_grant(gid(2)) is second
    assert key.list_grants(grant_id=gid(2)) == [second]
    assert key.list_grants(grantee_principal=ALICE_ARN) == [first]
    assert key.list_grants(grant_id=gid(2), grantee_principal=ALICE_ARN) == []


def test_named_retry_with_identical_parameters_returns_the_grant_and_records_nothing():
    key = new_key()
    first = grant_on(key, 1, name="retry-me", constraints=equals(a="1"))
    again = grant_on(key, 2, name="retry-me", constraints=equals(a="1"),
                     operations=["Decrypt", "Encrypt", "Decrypt"])  # order and repeats: same
    assert again is first
    assert list(key.grants) == [gid(1)]
    assert event_names(key) == ["KeyCreated", "GrantCreated"]


@pytest.mark.parametrize(
    "change",
    [
        {"operations": ["Encrypt"]},
        {"grantee_principal": ROLE_ARN},
        {"retiring_principal": ROLE_ARN},
        {"constraints": equals(a="2")},
        {"constraints": subset(a="1")},
        {"issuing_account": OTHER},
    ],
)
def test_same_name_with_other_parameters_makes_a_new_grant(change):
    key = new_key()
    grant_on(key, 1, name="n", constraints=equals(a="1"))
    second = grant_on(key, 2, **{"name": "n", "constraints": equals(a="1"), **change})
    assert second.grant_id == gid(2) and second.name == "n"
    assert list(key.grants) == [gid(1), gid(2)]


def test_without_a_name_every_request_makes_a_grant():
    key = new_key()
    grant_on(key, 1)
    grant_on(key, 2)
    assert list(key.grants) == [gid(1), gid(2)]
    assert key.grants[gid(1)].name == ""


def test_retire_and_revoke():
    key = new_key()
    first, second = grant_on(key, 1), grant_on(key, 2)
    assert key.retire_grant(gid(1), BOB) == first
    assert key.revoke_grant(gid(2), ALICE) == second
    assert key.grants == {}
    assert event_names(key)[-2:] == ["GrantRetired", "GrantRevoked"]
    assert [e.actor for e in key.pending_events[-2:]] == [BOB, ALICE]


@pytest.mark.parametrize("method", ["retire_grant", "revoke_grant"])
def test_retire_and_revoke_errors(method):
    key = new_key()
    grant_on(key, 1)
    with pytest.raises(errors.NotFoundException) as info:
        getattr(key, method)(gid(2), ALICE)
    assert info.value.message == f"Grant ID {gid(2)} not found for key {ARN}."
    for malformed in ("abc", gid(0xABC).upper(), gid(1) + "0", "g" * 64, ""):
        with pytest.raises(errors.InvalidGrantIdException) as info:
            getattr(key, method)(malformed, ALICE)
        assert info.value.message == f"'{malformed}' is not a valid grant ID."
    getattr(key, method)(gid(1), ALICE)
    with pytest.raises(errors.NotFoundException):
        getattr(key, method)(gid(1), ALICE)  # already gone
    assert event_names(key) == ["KeyCreated", "GrantCreated",
                                "GrantRetired" if method == "retire_grant" else "GrantRevoked"]


def test_grants_on_a_key_pending_deletion():
    key = new_key()
    grant_on(key, 1)
    grant_on(key, 2)
    key.schedule_deletion(7, T0, ALICE)
    with pytest.raises(errors.KMSInvalidStateException, match=f"^{ARN} is pending deletion\\.$"):
        grant_on(key, 3)
    key.retire_grant(gid(1), ALICE)
    key.revoke_grant(gid(2), ALICE)
    assert key.grants == {}


def test_deletion_drops_the_keys_grants():
    key = new_key()
    grant_on(key, 1)
    grant_on(key, 2, retiring_principal=ROLE_ARN)
    key.schedule_deletion(7, T0, ALICE)
    key.complete_deletion(T0 + timedelta(days=7), SERVICE)
    assert key.deleted and key.grants == {}
    assert key.permitting_grant(ALICE_P, "Encrypt") is None
    for call in (lambda: grant_on(key, 3), lambda: key.retire_grant(gid(1), ALICE),
                 lambda: key.revoke_grant(gid(2), ALICE)):
        with pytest.raises(errors.NotFoundException, match=f"Key '{ARN}' does not exist"):
            call()
    replayed = reduce(lambda aggregate, e: e.mutate(aggregate), key.collect_events(), None)
    assert replayed.grants == {} and state(replayed) == state(key)


def test_limit_of_grants_per_key():
    key = new_key()
    template = grant_on(key, 1, name="kept")
    key.grants.update({gid(n): template for n in range(2, MAX_GRANTS_PER_KEY + 1)})
    assert len(key.grants) == MAX_GRANTS_PER_KEY
    with pytest.raises(errors.LimitExceededException) as info:
        grant_on(key, MAX_GRANTS_PER_KEY + 1)
    assert info.value.message == (
        f"The request was rejected because {ARN} already has the maximum of 50000 grants."
    )
    # a named retry creates nothing, so the limit does not refuse it
    assert grant_on(key, MAX_GRANTS_PER_KEY + 1, name="kept") is template
    key.revoke_grant(gid(2), ALICE)
    grant_on(key, MAX_GRANTS_PER_KEY + 1)


# -- replay and snapshots ------------------------------------------------------------------------


def grant_history() -> KmsKey:
    key = new_key()
    grant_on(key, 1, constraints=subset(Department="IT"), retiring_principal=ROLE_ARN, name="a")
    grant_on(key, 2, operations=["Decrypt", "CreateGrant", "DescribeKey"],
             constraints=GrantConstraints({"_type_": "x", "_data_": "y"}, {"_type_": "x"}))
    grant_on(key, 3, grantee_principal=f"arn:aws:iam::{OTHER}:root", operations=["Encrypt"])
    grant_on(key, 4, actor=BOB)
    key.retire_grant(gid(1), BOB)
    key.revoke_grant(gid(4), ALICE)
    return key


def test_grant_events_replay_in_memory_to_identical_state():
    key = grant_history()
    events = key.collect_events()
    replayed = reduce(lambda aggregate, e: e.mutate(aggregate), events, None)
    assert state(replayed) == state(key)
    assert list(replayed.grants) == [gid(2), gid(3)]


def test_grants_survive_the_ledger_and_a_snapshot(ledger):
    key = grant_history()
    actors = [e.actor for e in key.pending_events]
    ledger.save(key)
    loaded = ledger.get_key(KEY_ID)
    assert loaded is not key
    assert state(loaded) == state(key)
    assert [e.actor for e in ledger.repository.event_store.get(KEY_ID)] == actors
    ledger.take_snapshot(KEY_ID)
    [snapshot] = list(ledger.snapshots.get(KEY_ID))
    assert snapshot.originator_version == key.version
    from_snapshot = ledger.repository.get(KEY_ID)
    assert state(from_snapshot) == state(key)
    grant = from_snapshot.grants[gid(2)]
    assert type(grant) is Grant and type(grant.operations) is tuple
    assert type(grant.constraints) is GrantConstraints
    assert grant.constraints.encryption_context_equals == {"_type_": "x", "_data_": "y"}
    assert grant.creation_date == T0 + timedelta(minutes=2)
    # and the snapshot is a base later grant events apply to
    grant_on(from_snapshot, 5)
    from_snapshot.revoke_grant(gid(2), ALICE)
    ledger.save(from_snapshot)
    assert list(ledger.get_key(KEY_ID).grants) == [gid(3), gid(5)]


def test_a_snapshot_from_before_keys_had_grants_restores_none():
    key = new_key()
    snapshot = KmsKey.Snapshot.take(key)
    del snapshot.state["grants"]
    restored = snapshot.mutate(None)
    assert restored.grants == {}
    grant_on(restored, 1)
    assert list(restored.grants) == [gid(1)]
