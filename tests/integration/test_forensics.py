"""Forensics on real stores (SQLite and PostgreSQL): a key as of any instant, who could use it
then, its material versions' lineage and use, and GetKeyLastUsage (application.forensics).

Instants are the ledger's own event timestamps (events are stamped by the wall clock when
they are recorded); audit records are inserted into the region's audit store as the front end
writes them (application.audit_records), since these tests call the handlers directly.
"""

from __future__ import annotations

import json
import os
import uuid
from datetime import UTC, datetime, timedelta

import pytest

from api.auth import directory_digest
from application.audit import audit_row
from application.audit_records import api_call_record
from application.forensics import Forensics, identity_events, parse_instant, past_instant
from domain import errors
from domain.alias import alias_aggregate_id
from domain.policy import default_key_policy
from domain.principals import Directory, Principal, PrincipalKind
from infrastructure.identities import directory_changes, parse_directory
from tests.integration.test_key_types_ledger import _import, _parameters

ACCOUNT = "111122223333"
OTHER = "444455556666"
REGION = "us-east-1"
ROOT_ARN = f"arn:aws:iam::{ACCOUNT}:root"
ALICE_ARN = f"arn:aws:iam::{ACCOUNT}:user/alice"
BOB_ARN = f"arn:aws:iam::{ACCOUNT}:user/bob"
DAVE_ARN = f"arn:aws:iam::{ACCOUNT}:user/dave"
DEPLOYER_ARN = f"arn:aws:iam::{ACCOUNT}:role/deployer"
ACCOUNT_B_ROUTE = {"Principal": OTHER, "Via": "key-policy", "Statement": "AccountB",
                   "Conditions": None}
CAROL_ARN = f"arn:aws:iam::{OTHER}:user/carol"
MICROSECOND = timedelta(microseconds=1)


def _create(kms, **params) -> str:
    return kms.call("CreateKey", **params)["KeyMetadata"]["KeyId"]


def _arn(key_id: str) -> str:
    return f"arn:aws:kms:{REGION}:{ACCOUNT}:key/{key_id}"


def _forensics(kms) -> Forensics:
    return Forensics(kms.service, REGION)


def _stamps(kms, key_id: str) -> list[datetime]:
    """The timestamp of each event of the key, by version (index 0 is version 1)."""
    return [e["Timestamp"] for e in kms.service.key_history(REGION, key_id)]


def _alias_stamps(kms, alias_name: str) -> list[datetime]:
    store = kms.service.region(REGION).ledger.repository.event_store
    return [e.timestamp for e in store.get(alias_aggregate_id(ACCOUNT, alias_name))]


# -- instants -------------------------------------------------------------------------------------


def test_instants_are_iso_8601_or_exact_epoch_seconds():
    assert parse_instant("1700000000.000001") == datetime(2023, 11, 14, 22, 13, 20, 1, tzinfo=UTC)
    assert parse_instant("1700000000") == datetime(2023, 11, 14, 22, 13, 20, tzinfo=UTC)
    assert parse_instant("2024-05-01T09:14:00Z") == datetime(2024, 5, 1, 9, 14, tzinfo=UTC)
    assert parse_instant("2024-05-01T11:14:00+02:00") == datetime(2024, 5, 1, 9, 14, tzinfo=UTC)
    assert parse_instant("2024-05-01T09:14:00.250000") == datetime(2024, 5, 1, 9, 14, 0, 250000,
                                                                   tzinfo=UTC)
    with pytest.raises(errors.ValidationException) as raised:
        parse_instant("last tuesday")
    assert raised.value.message == ("at must be ISO 8601 (2024-05-01T09:14:00Z) or epoch "
                                    "seconds, not 'last tuesday'.")
    assert parse_instant("253402300799") == datetime(9999, 12, 31, 23, 59, 59, tzinfo=UTC)
    for outside in ("253402300800", "0001-01-01T00:00:00+14:00"):  # past 9999, before year 1
        with pytest.raises(errors.ValidationException) as raised:
            parse_instant(outside)
        assert raised.value.message == ("at must be ISO 8601 (2024-05-01T09:14:00Z) or epoch "
                                        f"seconds, not '{outside}'.")


# -- time travel ----------------------------------------------------------------------------------

POLICY_2 = json.dumps({"Version": "2012-10-17", "Id": "second", "Statement": [
    {"Sid": "Enable IAM User Permissions", "Effect": "Allow", "Principal": {"AWS": ROOT_ARN},
     "Action": "kms:*", "Resource": "*"},
]})


def _summary(state: dict) -> tuple:
    meta = state["KeyMetadata"]
    return (state["Version"], meta["Description"], [(t["TagKey"], t["TagValue"]) for t in state["Tags"]],
            [a["AliasName"] for a in state["Aliases"]], [g["GrantId"] for g in state["Grants"]],
            meta["KeyState"], state["KeyRotationStatus"]["KeyRotationEnabled"],
            meta["CurrentKeyMaterialId"], state["Policy"] == POLICY_2, state["Deleted"])


def test_state_at_any_instant_follows_every_change(kms):
    key_id = _create(kms, Description="payments", Tags=[{"TagKey": "env", "TagValue": "prod"}])
    kms.call("TagResource", KeyId=key_id, Tags=[{"TagKey": "team", "TagValue": "blue"}])
    kms.call("CreateAlias", AliasName="alias/pay", TargetKeyId=key_id)
    kms.call("UpdateKeyDescription", KeyId=key_id, Description="payments v2")
    kms.call("PutKeyPolicy", KeyId=key_id, PolicyName="default", Policy=POLICY_2)
    grant = kms.call("CreateGrant", KeyId=key_id, GranteePrincipal=DEPLOYER_ARN,
                     Operations=["Decrypt"], Name="deployer")
    other = _create(kms, Description="other")
    kms.call("UpdateAlias", AliasName="alias/pay", TargetKeyId=other)
    kms.call("EnableKeyRotation", KeyId=key_id)
    first_material = kms.call("DescribeKey", KeyId=key_id)["KeyMetadata"]["CurrentKeyMaterialId"]
    kms.call("RotateKeyOnDemand", KeyId=key_id)
    second_material = kms.call("DescribeKey", KeyId=key_id)["KeyMetadata"]["CurrentKeyMaterialId"]
    kms.call("RevokeGrant", KeyId=key_id, GrantId=grant["GrantId"])
    kms.call("UntagResource", KeyId=key_id, TagKeys=["env"])
    kms.call("ScheduleKeyDeletion", KeyId=key_id, PendingWindowInDays=7)
    kms.advance(days=8)  # the deletion completes and the key's material is shredded

    history = kms.service.key_history(REGION, key_id)
    assert [e["Type"] for e in history] == [
        "KeyCreated", "TagsAdded", "DescriptionUpdated", "KeyPolicyPut", "GrantCreated",
        "KeyRotationEnabled", "KeyMaterialRotated", "GrantRevoked", "TagsRemoved",
        "KeyDeletionScheduled", "KeyDeleted", "KeyMaterialShredded",
    ]
    stamps = _stamps(kms, key_id)
    created_alias, retargeted_alias = _alias_stamps(kms, "alias/pay")
    forensics = _forensics(kms)

    def at(instant):
        return _summary(forensics.key_state(REGION, key_id, instant))

    env, team = ("env", "prod"), ("team", "blue")
    g = grant["GrantId"]
    m1, m2 = first_material, second_material
    assert [at(t) for t in stamps] == [
        (1, "payments", [env], [], [], "Enabled", False, m1, False, False),
        (2, "payments", [env, team], [], [], "Enabled", False, m1, False, False),
        (3, "payments v2", [env, team], ["alias/pay"], [], "Enabled", False, m1, False, False),
        (4, "payments v2", [env, team], ["alias/pay"], [], "Enabled", False, m1, True, False),
        (5, "payments v2", [env, team], ["alias/pay"], [g], "Enabled", False, m1, True, False),
        (6, "payments v2", [env, team], [], [g], "Enabled", True, m1, True, False),
        (7, "payments v2", [env, team], [], [g], "Enabled", True, m2, True, False),
        (8, "payments v2", [env, team], [], [], "Enabled", True, m2, True, False),
        (9, "payments v2", [team], [], [], "Enabled", True, m2, True, False),
        (10, "payments v2", [team], [], [], "PendingDeletion", False, m2, True, False),
        (11, "payments v2", [team], [], [], "PendingDeletion", False, m2, True, True),
        (12, "payments v2", [team], [], [], "PendingDeletion", False, m2, True, True),
    ]
    # between events: the alias appears and leaves at its own instants
    assert at(created_alias) == (2, "payments", [env, team], ["alias/pay"], [], "Enabled", False,
                                 m1, False, False)
    assert at(created_alias - MICROSECOND)[3] == []
    assert at(retargeted_alias) == (5, "payments v2", [env, team], [], [g], "Enabled", False, m1,
                                    True, False)
    assert _summary(forensics.key_state(REGION, other, retargeted_alias))[3] == ["alias/pay"]
    assert _summary(forensics.key_state(REGION, other, retargeted_alias - MICROSECOND))[3] == []
    # the key exists from its CreationDate (before its first event's commit: as that event
    # made it); before that: not found; a key of another account: not found
    created = history[0]["Details"]["created_at"]
    assert created <= stamps[0]
    assert at(created) == at(stamps[0])
    with pytest.raises(errors.NotFoundException) as raised:
        forensics.key_state(REGION, key_id, created - MICROSECOND)
    assert raised.value.message == (f"Key '{key_id}' did not exist in {REGION} at "
                                    f"{(created - MICROSECOND).isoformat()}")
    with pytest.raises(errors.NotFoundException) as raised:
        forensics.key_state(REGION, key_id, stamps[4], account=OTHER)
    assert raised.value.message == f"Key '{key_id}' does not exist in {REGION}"
    with pytest.raises(errors.NotFoundException) as raised:
        forensics.key_state(REGION, key_id, stamps[0] - MICROSECOND, account=OTHER)
    assert raised.value.message == f"Key '{key_id}' does not exist in {REGION}"
    unknown = str(uuid.uuid4())
    with pytest.raises(errors.NotFoundException) as raised:
        forensics.key_state(REGION, unknown, stamps[0])
    assert raised.value.message == f"Key '{unknown}' does not exist in {REGION}"

    # the whole answer at version 5, exactly
    describe_v5 = forensics.key_state(REGION, key_id, retargeted_alias - MICROSECOND)
    key_created = history[0]["Details"]["created_at"]
    assert describe_v5 == {
        "KeyMetadata": {
            "AWSAccountId": ACCOUNT, "KeyId": key_id, "Arn": _arn(key_id),
            "CreationDate": key_created, "Enabled": True, "Description": "payments v2",
            "KeyUsage": "ENCRYPT_DECRYPT", "KeyState": "Enabled", "Origin": "AWS_KMS",
            "KeyManager": "CUSTOMER", "CustomerMasterKeySpec": "SYMMETRIC_DEFAULT",
            "KeySpec": "SYMMETRIC_DEFAULT", "EncryptionAlgorithms": ["SYMMETRIC_DEFAULT"],
            "MultiRegion": False, "CurrentKeyMaterialId": m1,
        },
        "Policy": POLICY_2,
        "Tags": [{"TagKey": "env", "TagValue": "prod"}, {"TagKey": "team", "TagValue": "blue"}],
        "Aliases": [{
            "AliasName": "alias/pay", "AliasArn": f"arn:aws:kms:{REGION}:{ACCOUNT}:alias/pay",
            "TargetKeyId": key_id, "CreationDate": history_alias_created(kms),
            "LastUpdatedDate": history_alias_created(kms),
        }],
        "Grants": [{
            "KeyId": _arn(key_id), "GrantId": g, "Name": "deployer",
            "CreationDate": history[4]["Details"]["grant"]["creation_date"],
            "GranteePrincipal": DEPLOYER_ARN, "IssuingAccount": ROOT_ARN,
            "Operations": ["Decrypt"],
        }],
        "KeyRotationStatus": {"KeyRotationEnabled": False, "KeyId": _arn(key_id)},
        "Version": 5,
        "Deleted": False,
    }
    # rotation as GetKeyRotationStatus answered then; deletion date as DescribeKey showed it
    rotation = forensics.key_state(REGION, key_id, stamps[5])["KeyRotationStatus"]
    assert rotation == {"KeyRotationEnabled": True, "KeyId": _arn(key_id),
                        "RotationPeriodInDays": 365,
                        "NextRotationDate": history[5]["Details"]["next_rotation_date"]}
    deleting = forensics.key_state(REGION, key_id, stamps[9])["KeyMetadata"]
    assert (deleting["Enabled"], deleting["DeletionDate"]) == (
        False, history[9]["Details"]["deletion_date"])


def history_alias_created(kms) -> datetime:
    """The alias' creation date as its AliasCreated event recorded it."""
    store = kms.service.region(REGION).ledger.repository.event_store
    return next(iter(store.get(alias_aggregate_id(ACCOUNT, "alias/pay")))).created_at


def test_state_at_survives_a_restart_and_reads_snapshots(kms):
    key_id = _create(kms, Description="d0")
    for n in range(1, 120):
        kms.call("UpdateKeyDescription", KeyId=key_id, Description=f"d{n}")
    stamps = _stamps(kms, key_id)
    kms.restart()  # a fresh process: nothing remembered
    ledger = kms.service.region(REGION).ledger
    assert [s.originator_version for s in ledger.snapshots.get(key_id)] == [50, 100]
    forensics = _forensics(kms)
    for version in (1, 49, 50, 51, 99, 100, 101, 120):
        state = forensics.key_state(REGION, key_id, stamps[version - 1])
        assert (state["Version"], state["KeyMetadata"]["Description"]) == (version, f"d{version - 1}")
    assert forensics.key_state(REGION, key_id, datetime.now(UTC))["Version"] == 120


# -- access review --------------------------------------------------------------------------------


def _identities(*, alice_policy: bool = True, dave: bool = False) -> Directory:
    def allow_decrypt(sid: str, resource: str = "*") -> dict:
        return {"Version": "2012-10-17", "Statement": [
            {"Sid": sid, "Effect": "Allow", "Action": "kms:Decrypt", "Resource": resource}]}

    users = {"alice": {"policies": {"Crypto": allow_decrypt("AllowDecrypt")}} if alice_policy
             else {}, "bob": {"tags": {"team": "red"}}}
    if dave:
        users["dave"] = {"policies": {"DaveDecrypts": allow_decrypt("DaveDecrypt")}}
    return parse_directory(json.dumps({"accounts": {
        ACCOUNT: {"users": users, "roles": {"deployer": {}}},
        OTHER: {"users": {"carol": {"policies": {"UseA": allow_decrypt(
            "CarolDecrypts", f"arn:aws:kms:*:{ACCOUNT}:key/*")}}}},
    }}))


def _record_identities(kms, old: Directory, new: Directory) -> None:
    kms.service.record_identities(REGION, directory_digest(new), directory_changes(old, new))


POLICY_WIDE = json.dumps({"Version": "2012-10-17", "Statement": [
    {"Sid": "Enable IAM User Permissions", "Effect": "Allow", "Principal": {"AWS": ROOT_ARN},
     "Action": "kms:*", "Resource": "*"},
    {"Sid": "DeployerDecrypts", "Effect": "Allow", "Principal": {"AWS": DEPLOYER_ARN},
     "Action": "kms:Decrypt", "Resource": "*",
     "Condition": {"StringEquals": {"kms:EncryptionContext:app": "pay"}}},
    {"Sid": "AccountB", "Effect": "Allow", "Principal": {"AWS": OTHER},
     "Action": ["kms:Decrypt", "kms:DescribeKey"], "Resource": "*"},
    {"Sid": "AnyoneInAForTheLedgerApp", "Effect": "Allow", "Principal": "*", "Action": "kms:Decrypt",
     "Resource": "*", "Condition": {"StringEquals": {
         "kms:CallerAccount": ACCOUNT, "kms:EncryptionContext:app": "ledger"}}},
    {"Sid": "BobOnlyOverTls", "Effect": "Deny", "Principal": {"AWS": BOB_ARN},
     "Action": "kms:*", "Resource": "*", "Condition": {"Bool": {"aws:SecureTransport": "false"}}},
    {"Sid": "NotCarol", "Effect": "Deny", "Principal": {"AWS": CAROL_ARN},
     "Action": "kms:Decrypt", "Resource": "*"},
    {"Sid": "RedTeamNever", "Effect": "Deny", "Principal": "*", "Action": "kms:Decrypt",
     "Resource": "*", "Condition": {"StringEquals": {"aws:PrincipalTag/team": "purple"}}},
]})

ROOT_ROUTE = {"Principal": ROOT_ARN, "Via": "key-policy",
              "Statement": "Enable IAM User Permissions", "Conditions": None}
ALICE_ROUTE = {"Principal": ALICE_ARN, "Via": "identity-policy", "PolicyName": "Crypto",
               "Statement": "AllowDecrypt", "Conditions": None,
               "KeyPolicyStatement": "Enable IAM User Permissions", "KeyPolicyConditions": None}
FOR_LEDGER_APP = {"StringEquals": {"kms:EncryptionContext:app": "ledger"}}
def _for_ledger_app(arn: str) -> dict:
    """A principal of A let in by the statement for anyone in A, for the ledger app."""
    return {"Principal": arn, "Via": "key-policy", "Statement": "AnyoneInAForTheLedgerApp",
            "Conditions": FOR_LEDGER_APP}


BOB_DENIED_WHEN = [{"Via": "key-policy", "Statement": "BobOnlyOverTls",
                    "Conditions": {"Bool": {"aws:SecureTransport": "false"}}}]


def test_who_can_follows_policy_grant_and_identity_changes(kms):
    first = _identities()
    _record_identities(kms, Directory(), first)
    key_id = _create(kms)
    kms.call("PutKeyPolicy", KeyId=key_id, PolicyName="default", Policy=POLICY_WIDE)
    grant = kms.call("CreateGrant", KeyId=key_id, GranteePrincipal=BOB_ARN, Operations=["Decrypt"],
                     Constraints={"EncryptionContextSubset": {"app": "pay"}})
    _record_identities(kms, first, _identities(alice_policy=False, dave=True))
    stamps = _stamps(kms, key_id)
    directory_stamps = [e.timestamp for e in kms.service.region(REGION).ledger.repository
                        .event_store.get("keyledger:identities")]
    forensics = _forensics(kms)

    def who(instant, action="kms:Decrypt"):
        answer = forensics.who_can(REGION, key_id, action, instant)
        assert (answer["KeyId"], answer["At"]) == (key_id, instant)
        return answer["Action"], answer["Version"], answer["Principals"]

    # the default key policy: the root, and alice through her identity policy
    assert who(stamps[0]) == ("kms:Decrypt", 1, [ROOT_ROUTE, ALICE_ROUTE])
    # the wider policy: "*" and bob only for the ledger app in account A (their account is known for bob,
    # not for "*"), deployer with an encryption context, account B's root, carol refused by an
    # explicit deny, bob's conditional deny reported
    wide = [
        {"Principal": "*", "Via": "key-policy", "Statement": "AnyoneInAForTheLedgerApp",
         "Conditions": {"StringEquals": {"kms:CallerAccount": ACCOUNT,
                                         "kms:EncryptionContext:app": "ledger"}},
         "DeniedWhen": [{"Via": "key-policy", "Statement": "RedTeamNever",
                         "Conditions": {"StringEquals": {"aws:PrincipalTag/team": "purple"}}}]},
        # account B as the key policy names it: its principals are its own (B's identities,
        # recorded too, are never read into A's key's review)
        ACCOUNT_B_ROUTE,
        # (two ways in, either suffices: the statement for anyone in A, its own)
        {"Principal": DEPLOYER_ARN, "Via": "key-policy", "Statement": "AnyoneInAForTheLedgerApp",
         "Conditions": FOR_LEDGER_APP},
        {"Principal": DEPLOYER_ARN, "Via": "key-policy", "Statement": "DeployerDecrypts",
         "Conditions": {"StringEquals": {"kms:EncryptionContext:app": "pay"}}},
        # the root and alice: their unconditional ways in hide none of the conditional ones
        # (taking them away leaves the statement for anyone in A open to them)
        _for_ledger_app(ROOT_ARN),
        ROOT_ROUTE,
        _for_ledger_app(ALICE_ARN),
        ALICE_ROUTE,
        {"Principal": BOB_ARN, "Via": "key-policy", "Statement": "AnyoneInAForTheLedgerApp",
         "Conditions": FOR_LEDGER_APP, "DeniedWhen": BOB_DENIED_WHEN},
    ]
    assert who(stamps[1]) == ("kms:Decrypt", 2, wide)
    # a grant to bob: a route of its own, with its constraint
    bob_grant = {"Principal": BOB_ARN, "Via": "grant", "GrantId": grant["GrantId"],
                 "Conditions": {"EncryptionContextSubset": {"app": "pay"}},
                 "DeniedWhen": BOB_DENIED_WHEN}
    with_grant = [*wide, bob_grant]
    assert who(stamps[2]) == ("kms:Decrypt", 3, with_grant)
    # the identities change: alice loses her policy (the ledger app only, like bob), dave arrives
    now = datetime.now(UTC)
    changed = [
        *wide[:6], _for_ledger_app(ALICE_ARN), wide[8], bob_grant, _for_ledger_app(DAVE_ARN),
        {"Principal": DAVE_ARN, "Via": "identity-policy", "PolicyName": "DaveDecrypts",
         "Statement": "DaveDecrypt", "Conditions": None,
         "KeyPolicyStatement": "Enable IAM User Permissions", "KeyPolicyConditions": None},
    ]
    assert who(directory_stamps[1]) == ("kms:Decrypt", 3, changed)
    assert who(now) == ("kms:Decrypt", 3, changed)
    assert who(directory_stamps[1] - MICROSECOND) == ("kms:Decrypt", 3, with_grant)
    # the past does not change: the first answer again
    assert who(stamps[0]) == ("kms:Decrypt", 1, [ROOT_ROUTE, ALICE_ROUTE])
    # another action: the account-B statement also covers DescribeKey; carol's identity
    # policy does not (Decrypt only); actions are matched case-insensitively
    # (carol of account B, named by the key policy's Deny of Decrypt, gets in as it names her)
    assert who(now, "KMS:describekey") == ("kms:DescribeKey", 3, [
        ACCOUNT_B_ROUTE, ROOT_ROUTE, {**ACCOUNT_B_ROUTE, "Principal": CAROL_ARN}])
    with pytest.raises(errors.ValidationException):
        forensics.who_can(REGION, key_id, "kms:Fly", now)
    created = kms.service.key_history(REGION, key_id)[0]["Details"]["created_at"]
    assert who(created) == who(stamps[0])  # the key exists from its CreationDate
    with pytest.raises(errors.NotFoundException):
        forensics.who_can(REGION, key_id, "kms:Decrypt", created - MICROSECOND)


def test_who_can_names_another_accounts_principals_only_as_the_key_policy_does(kms):
    """Account B's key, whose policy lets anyone decrypt and names A's alice: B's review lists
    alice as the policy names her, account A, and "*" for the rest; nothing of A's identities
    (alice's identity policy, bob, dave, the deployer role), which are A's, not B's, to read."""
    _record_identities(kms, Directory(), _identities(dave=True))
    b_root = kms.context(principal=Principal.root(OTHER))
    key_id = kms.call("CreateKey", b_root)["KeyMetadata"]["KeyId"]
    kms.call("PutKeyPolicy", b_root, KeyId=key_id, PolicyName="default", Policy=json.dumps({
        "Version": "2012-10-17", "Statement": [
            {"Sid": "Enable IAM User Permissions", "Effect": "Allow",
             "Principal": {"AWS": f"arn:aws:iam::{OTHER}:root"}, "Action": "kms:*",
             "Resource": "*"},
            {"Sid": "AnyoneDecrypts", "Effect": "Allow", "Principal": "*",
             "Action": "kms:Decrypt", "Resource": "*"},
            {"Sid": "AliceOfA", "Effect": "Allow", "Principal": {"AWS": ALICE_ARN},
             "Action": "kms:Decrypt", "Resource": "*"}]}))
    now = datetime.now(UTC)
    answer = _forensics(kms).who_can(REGION, key_id, "kms:Decrypt", now)
    by_statement = "Enable IAM User Permissions"
    assert answer["Principals"] == [
        {"Principal": "*", "Via": "key-policy", "Statement": "AnyoneDecrypts",
         "Conditions": None},
        # (account A, named by alice's ARN: its principals as A's own IAM lets them)
        {"Principal": ACCOUNT, "Via": "key-policy", "Statement": "AnyoneDecrypts",
         "Conditions": None},
        # (through the key policy and A's IAM: as a route through an identity policy names
        # one key policy statement that admits it, the first)
        {"Principal": ALICE_ARN, "Via": "key-policy", "Statement": "AnyoneDecrypts",
         "Conditions": None},
        {"Principal": f"arn:aws:iam::{OTHER}:root", "Via": "key-policy",
         "Statement": "AnyoneDecrypts", "Conditions": None},
        {"Principal": f"arn:aws:iam::{OTHER}:root", "Via": "key-policy",
         "Statement": by_statement, "Conditions": None},
        {"Principal": f"arn:aws:iam::{OTHER}:user/carol", "Via": "key-policy",
         "Statement": "AnyoneDecrypts", "Conditions": None},
    ]


def test_who_can_without_identities_names_accounts_and_grantee_accounts(kms):
    """Before any identities were recorded (or in --auth open): the accounts the key policy and
    the grants name stand for their principals."""
    key_id = _create(kms)
    grant = kms.call("CreateGrant", KeyId=key_id, GranteePrincipal=OTHER,
                     Operations=["Decrypt", "Encrypt"])
    now = datetime.now(UTC)
    answer = _forensics(kms).who_can(REGION, key_id, "kms:Decrypt", now)
    assert answer["Principals"] == [
        {"Principal": ACCOUNT, "Via": "key-policy", "Statement": "Enable IAM User Permissions",
         "Conditions": None},
        {"Principal": OTHER, "Via": "grant", "GrantId": grant["GrantId"], "Conditions": None},
    ]
    assert default_key_policy(ACCOUNT) == kms.call("GetKeyPolicy", KeyId=key_id)["Policy"]


def test_who_can_answers_nobody_when_the_keys_state_refused_the_action(kms):
    """A disabled key: no one could Decrypt (DisabledException), DescribeKey still had its
    routes; pending deletion: KMSInvalidStateException; the state is named either way."""
    key_id = _create(kms)
    kms.call("DisableKey", KeyId=key_id)
    disabled = _stamps(kms, key_id)[-1]
    kms.call("ScheduleKeyDeletion", KeyId=key_id, PendingWindowInDays=7)
    pending = _stamps(kms, key_id)[-1]
    forensics = _forensics(kms)

    def answer(action: str, at: datetime) -> tuple:
        found = forensics.who_can(REGION, key_id, action, at)
        return found["KeyState"], found.get("RefusedByKeyState"), found["Principals"]

    assert answer("kms:Decrypt", disabled) == ("Disabled", "DisabledException", [])
    assert answer("kms:DescribeKey", disabled) == ("Disabled", None, [
        {"Principal": ACCOUNT, "Via": "key-policy", "Statement": "Enable IAM User Permissions",
         "Conditions": None}])
    assert answer("kms:Decrypt", pending) == ("PendingDeletion", "KMSInvalidStateException", [])
    assert answer("kms:CancelKeyDeletion", pending)[1] is None


def test_a_grants_constraint_binds_only_operations_that_take_a_context(kms):
    key_id = _create(kms)
    grant = kms.call("CreateGrant", KeyId=key_id, GranteePrincipal=OTHER,
                     Operations=["DescribeKey", "Decrypt"],
                     Constraints={"EncryptionContextEquals": {"a": "b"}})
    now = datetime.now(UTC)

    def via_grant(action: str) -> dict:
        found = _forensics(kms).who_can(REGION, key_id, action, now)["Principals"]
        return next(route for route in found if route["Via"] == "grant")

    assert via_grant("kms:DescribeKey") == {"Principal": OTHER, "Via": "grant",
                                            "GrantId": grant["GrantId"], "Conditions": None}
    assert via_grant("kms:Decrypt")["Conditions"] == {"EncryptionContextEquals": {"a": "b"}}


def test_who_can_knows_a_keys_multi_region_condition_keys(kms):
    _record_identities(kms, Directory(), _identities())
    mr_policy = json.dumps({"Version": "2012-10-17", "Statement": [
        {"Sid": "Root", "Effect": "Allow", "Principal": {"AWS": ROOT_ARN}, "Action": "kms:*",
         "Resource": "*"},
        {"Sid": "BobMultiRegion", "Effect": "Allow", "Principal": {"AWS": BOB_ARN},
         "Action": "kms:Decrypt", "Resource": "*", "Condition": {"Bool": {"kms:MultiRegion": "true"}}},
        {"Sid": "BobPrimary", "Effect": "Allow", "Principal": {"AWS": BOB_ARN},
         "Action": "kms:Encrypt", "Resource": "*",
         "Condition": {"StringEquals": {"kms:MultiRegionKeyType": "PRIMARY"}}},
    ]})
    primary = _create(kms, MultiRegion=True, Policy=mr_policy)
    single = _create(kms, Policy=mr_policy)
    now = datetime.now(UTC)

    def bob(key_id: str, action: str) -> list[dict]:
        found = _forensics(kms).who_can(REGION, key_id, action, now)["Principals"]
        return [route for route in found if route["Principal"] == BOB_ARN]

    assert bob(primary, "kms:Decrypt") == [{"Principal": BOB_ARN, "Via": "key-policy",
                                            "Statement": "BobMultiRegion", "Conditions": None}]
    assert bob(primary, "kms:Encrypt") == [{"Principal": BOB_ARN, "Via": "key-policy",
                                            "Statement": "BobPrimary", "Conditions": None}]
    assert bob(single, "kms:Decrypt") == bob(single, "kms:Encrypt") == []


def test_an_instant_in_the_future_is_refused():
    now = datetime(2026, 12, 6, 12, 0, tzinfo=UTC)
    assert past_instant(None, now) == past_instant("", now) == now
    with pytest.raises(errors.ValidationException, match="is in the future"):
        past_instant("2026-12-06T12:00:00.000001Z", now)
    with pytest.raises(errors.ValidationException, match="is in the future"):
        past_instant("2026-12-06T12:00:01Z", now)


def test_a_time_to_the_second_is_all_of_that_second():
    """As a record's eventTime shows an instant (and as the audit API's end takes one): the
    state after what that second's records show, up to now; a fraction is exact."""
    now = datetime(2026, 12, 6, 12, 0, tzinfo=UTC)
    assert past_instant("2026-12-06T11:59:59Z", now) == now - timedelta(microseconds=1)
    assert past_instant(str(int(now.timestamp()) - 1), now) == now - timedelta(microseconds=1)
    assert past_instant("2026-12-06T12:00:00Z", now) == now
    assert past_instant("2026-12-06T11:59:59.5Z", now) == now - timedelta(milliseconds=500)


def test_a_time_to_the_minute_hour_or_day_is_all_of_it_up_to_now():
    now = datetime(2026, 12, 6, 12, 0, 30, tzinfo=UTC)
    assert past_instant("2026-12-06T11:58Z", now) == datetime(2026, 12, 6, 11, 58, 59, 999_999,
                                                              tzinfo=UTC)
    assert past_instant("2026-12-06T10Z", now) == datetime(2026, 12, 6, 10, 59, 59, 999_999,
                                                           tzinfo=UTC)
    assert past_instant("2026-12-05", now) == datetime(2026, 12, 5, 23, 59, 59, 999_999, tzinfo=UTC)
    assert past_instant("2026-12-06", now) == now  # today: up to now
    assert past_instant("2026-12-06T12:00Z", now) == now


def test_a_keys_state_at_its_creation_records_second_shows_it(kms):
    key_id = _create(kms, Description="made")
    (created,) = [e for e in kms.service.key_history(REGION, key_id) if e["Type"] == "KeyCreated"]
    event_time = created["Timestamp"].strftime("%Y-%m-%dT%H:%M:%SZ")  # (as eventTime shows it)
    state = _forensics(kms).key_state(REGION, key_id, past_instant(event_time, datetime.now(UTC)))
    assert (state["Version"], state["KeyMetadata"]["Description"]) == (1, "made")


# -- material lineage and use ---------------------------------------------------------------------


def _audit(kms, operation: str, key_ids: list[str], when: datetime, *, result: dict | None = None,
           additional: dict | None = None, error: str | None = None) -> dict:
    """Store the record the front end writes for one request."""
    root = Principal.root(ACCOUNT)
    record = api_call_record(
        principal=root, access_key_id="AKIDTEST", account=ACCOUNT, region=REGION,
        operation=operation, params={"KeyId": key_ids[0]} if key_ids else {},
        result=None if error else (result or {}), error_code=error,
        error_message="failed" if error else None, event_time=when,
        event_id=str(uuid.uuid4()), request_id=str(uuid.uuid4()), source_ip="127.0.0.1",
        user_agent="pytest", resources=[_arn(k) for k in key_ids], additional=additional,
    )
    row = audit_row(record, when, ACCOUNT, [_arn(k) for k in key_ids], root.arn,
                    record["requestID"])
    kms.service.region(REGION).resources.audit.append([row])
    return record


def _second(offset: int, base: datetime) -> datetime:
    return base + timedelta(seconds=offset)


def test_materials_count_what_each_version_produced_and_decrypted(kms):
    key_id = _create(kms)
    other = _create(kms)
    m1 = kms.call("DescribeKey", KeyId=key_id)["KeyMetadata"]["CurrentKeyMaterialId"]
    rotated = kms.call("RotateKeyOnDemand", KeyId=key_id)
    assert rotated == {"KeyId": _arn(key_id)}
    m2 = kms.call("DescribeKey", KeyId=key_id)["KeyMetadata"]["CurrentKeyMaterialId"]
    mo = kms.call("DescribeKey", KeyId=other)["KeyMetadata"]["CurrentKeyMaterialId"]
    base = datetime.now(UTC).replace(microsecond=0)
    t = lambda n: _second(n, base)  # noqa: E731
    _audit(kms, "Encrypt", [key_id], t(1), additional={"keyMaterialId": m1})
    _audit(kms, "GenerateDataKey", [key_id], t(2), result={"KeyMaterialId": m1})
    _audit(kms, "Decrypt", [key_id], t(3), result={"KeyMaterialId": m1})
    _audit(kms, "Decrypt", [key_id], t(4), error="InvalidCiphertextException")
    _audit(kms, "Encrypt", [key_id], t(5), additional={"keyMaterialId": m2})
    _audit(kms, "ReEncrypt", [key_id, other], t(6),
           result={"SourceKeyMaterialId": m1, "DestinationKeyMaterialId": mo})
    _audit(kms, "ReEncrypt", [other, key_id], t(7),
           result={"SourceKeyMaterialId": mo, "DestinationKeyMaterialId": m2})
    _audit(kms, "GenerateDataKeyWithoutPlaintext", [key_id], t(8), result={"KeyMaterialId": m2})
    _audit(kms, "DescribeKey", [key_id], t(9))
    _audit(kms, "ReEncrypt", [key_id, key_id], t(10),
           result={"SourceKeyMaterialId": m2, "DestinationKeyMaterialId": m2})

    rotations = kms.call("ListKeyRotations", KeyId=key_id)["Rotations"]
    created = kms.service.key_history(REGION, key_id)[0]["Details"]["created_at"]
    answer = _forensics(kms).materials(REGION, key_id)
    assert answer == {"KeyId": key_id, "KeyArn": _arn(key_id), "TrackingStartDate": t(1),
                      "Materials": [
        {"KeyMaterialId": m1, "Created": created, "RotationType": None, "RotationDate": None,
         "KeyMaterialState": "NON_CURRENT", "Destroyed": False,
         "Produced": {"Encrypt": 1, "GenerateDataKey*": 1, "ReEncrypt": 0},
         "Decryptions": {"Decrypt": 1, "ReEncrypt": 1}, "FirstUsed": t(1), "LastUsed": t(6)},
        {"KeyMaterialId": m2, "Created": rotations[0]["RotationDate"], "RotationType": "ON_DEMAND",
         "RotationDate": rotations[0]["RotationDate"], "KeyMaterialState": "CURRENT",
         "Destroyed": False,
         "Produced": {"Encrypt": 1, "GenerateDataKey*": 1, "ReEncrypt": 2},
         "Decryptions": {"Decrypt": 0, "ReEncrypt": 1}, "FirstUsed": t(5), "LastUsed": t(10)},
    ]}
    assert _forensics(kms).materials(REGION, other)["Materials"][0]["Produced"] == {
        "Encrypt": 0, "GenerateDataKey*": 0, "ReEncrypt": 1}
    assert _forensics(kms).materials(REGION, other)["Materials"][0]["Decryptions"] == {
        "Decrypt": 0, "ReEncrypt": 1}


def test_imported_material_says_whether_it_was_decrypted_lately(kms):
    key_id = _create(kms, Origin="EXTERNAL")
    first = _import(kms, key_id, os.urandom(32))
    second = _import(kms, key_id, os.urandom(32), _parameters(kms, key_id),
                     ImportType="NEW_KEY_MATERIAL")
    kms.call("RotateKeyOnDemand", KeyId=key_id)
    kms.call("DeleteImportedKeyMaterial", KeyId=key_id, KeyMaterialId=first)
    created = kms.call("DescribeKey", KeyId=key_id)["KeyMetadata"]["CreationDate"]
    base = created + timedelta(seconds=1)
    _audit(kms, "Decrypt", [key_id], base, result={"KeyMaterialId": first})
    _audit(kms, "Decrypt", [key_id], base + timedelta(days=10), result={"KeyMaterialId": second})
    forensics = _forensics(kms)

    def view(days):
        materials = forensics.materials(REGION, key_id, days, now=base + timedelta(days=35))
        return [(m["KeyMaterialId"], m["RotationType"], m["KeyMaterialState"], m["ImportState"],
                 m["Destroyed"], m["DecryptedInLastDays"]) for m in materials["Materials"]]

    assert view(30) == [
        (first, None, "NON_CURRENT", "PENDING_IMPORT", True,
         {"days": 30, "any": False, "Complete": True}),
        (second, "ON_DEMAND", "CURRENT", "IMPORTED", False,
         {"days": 30, "any": True, "Complete": True}),
    ]
    assert view(24)[1][5] == {"days": 24, "any": False, "Complete": True}
    # tracking began 1 s after the key was made (its first record; the in-process harness
    # writes no CreateKey record): a look-back from before then cannot be complete
    assert view(36)[0][5] == {"days": 36, "any": True, "Complete": False}
    with pytest.raises(errors.ValidationException):
        forensics.materials(REGION, key_id, 0)


def test_a_look_back_is_complete_when_tracking_began_with_the_key(kms):
    """A key whose first record is its CreateKey is tracked from its creation: a look-back
    reaching before the key existed misses nothing ("safe to delete?" can say so)."""
    key_id = _create(kms, Origin="EXTERNAL")
    material = _import(kms, key_id, os.urandom(32))
    created = kms.call("DescribeKey", KeyId=key_id)["KeyMetadata"]["CreationDate"]
    _audit(kms, "CreateKey", [key_id], created + timedelta(milliseconds=5))
    answer = _forensics(kms).materials(REGION, key_id, 30, now=created + timedelta(days=2))
    assert answer["TrackingStartDate"] == created
    assert [m["DecryptedInLastDays"] for m in answer["Materials"]] == [
        {"days": 30, "any": False, "Complete": True}]
    assert answer["Materials"][0]["KeyMaterialId"] == material
    usage = kms.call("GetKeyLastUsage", KeyId=key_id)
    assert usage["TrackingStartDate"] == usage["KeyCreationDate"] == created


def test_a_replica_lists_the_material_versions_it_took_from_its_primary(kms):
    """A replica's versions come in MultiRegionKeySynchronized events, not KeyCreated."""
    key_id = kms.call("CreateKey", MultiRegion=True)["KeyMetadata"]["KeyId"]
    kms.call("ReplicateKey", KeyId=key_id, ReplicaRegion="us-west-2")
    kms.call("RotateKeyOnDemand", KeyId=key_id)
    kms.service.replicate()
    primary = [m["KeyMaterialId"] for m in _forensics(kms).materials(REGION, key_id)["Materials"]]
    replica = _forensics(kms).materials("us-west-2", key_id)["Materials"]
    assert [(m["KeyMaterialId"], m["KeyMaterialState"]) for m in replica] == [
        (primary[0], "NON_CURRENT"), (primary[1], "CURRENT")]


def test_an_ml_kem_keys_encapsulations_are_counted_per_material(kms):
    key_id = _create(kms, KeySpec="ML_KEM_768", KeyUsage="ENCAPSULATE_DECAPSULATE")
    base = datetime.now(UTC).replace(microsecond=0)  # (an asymmetric key has one version)
    _audit(kms, "Encapsulate", [key_id], base)
    _audit(kms, "Decapsulate", [key_id], base + timedelta(seconds=1))
    (only,) = _forensics(kms).materials(REGION, key_id)["Materials"]
    assert (only["Encapsulations"], only["FirstUsed"], only["LastUsed"]) == (
        {"Encapsulate": 1, "Decapsulate": 1}, base, base + timedelta(seconds=1))


# -- GetKeyLastUsage ------------------------------------------------------------------------------


def test_last_usage_in_the_second_the_key_was_created_is_not_before_its_creation(kms):
    """eventTime shows the second; the answer's Timestamp is the stored instant."""
    key_id = _create(kms)
    created = kms.call("DescribeKey", KeyId=key_id)["KeyMetadata"]["CreationDate"]
    used = created + timedelta(microseconds=1)
    _audit(kms, "Encrypt", [key_id], used)
    answer = kms.call("GetKeyLastUsage", KeyId=key_id)
    assert answer["KeyLastUsage"]["Timestamp"] == used >= answer["KeyCreationDate"]


def test_get_key_last_usage_reads_the_audit_store(kms):
    key_id = _create(kms)
    other = _create(kms)
    created = kms.call("DescribeKey", KeyId=key_id)["KeyMetadata"]["CreationDate"]
    # no record at all (the in-process harness writes none; on a server, retention pruned
    # every one): tracking starts now, not at the key's creation, whose uses are unknown
    before = datetime.now(UTC)
    empty = kms.call("GetKeyLastUsage", KeyId=key_id)
    after = datetime.now(UTC)
    assert (empty["KeyLastUsage"], empty["KeyCreationDate"]) == ({}, created)
    assert created < before <= empty["TrackingStartDate"] <= after
    # tracking began with the region's first audit record, after the key was created
    base = created.replace(microsecond=0) + timedelta(minutes=10)
    m = kms.call("DescribeKey", KeyId=key_id)["KeyMetadata"]["CurrentKeyMaterialId"]
    mo = kms.call("DescribeKey", KeyId=other)["KeyMetadata"]["CurrentKeyMaterialId"]
    _audit(kms, "DescribeKey", [key_id], base)
    assert kms.call("GetKeyLastUsage", KeyId=_arn(key_id)) == {
        "KeyId": key_id, "KeyLastUsage": {}, "TrackingStartDate": base, "KeyCreationDate": created,
    }
    encrypt = _audit(kms, "Encrypt", [key_id], base + timedelta(seconds=1),
                     additional={"keyMaterialId": m})
    _audit(kms, "Decrypt", [key_id], base + timedelta(seconds=2), error="AccessDeniedException")
    _audit(kms, "GetPublicKey", [key_id], base + timedelta(seconds=3))
    _audit(kms, "DescribeKey", [key_id], base + timedelta(seconds=4))

    def usage(record, seconds):
        return {"KeyId": key_id, "KeyLastUsage": {
            "Operation": record["eventName"], "Timestamp": base + timedelta(seconds=seconds),
            "CloudTrailEventId": record["eventID"], "KmsRequestId": record["requestID"]},
            "TrackingStartDate": base, "KeyCreationDate": created}

    assert kms.call("GetKeyLastUsage", KeyId=key_id) == usage(encrypt, 1)
    # ReEncrypt counts for its destination (its record is found by its source key) ...
    reencrypt = _audit(kms, "ReEncrypt", [other, key_id], base + timedelta(seconds=5),
                       result={"SourceKeyMaterialId": mo, "DestinationKeyMaterialId": m})
    assert kms.call("GetKeyLastUsage", KeyId=key_id) == usage(reencrypt, 5)
    assert kms.call("GetKeyLastUsage", KeyId=other)["KeyLastUsage"]["CloudTrailEventId"] == (
        reencrypt["eventID"])
    # ... and a newer use by the key's own records wins
    decrypt = _audit(kms, "Decrypt", [key_id], base + timedelta(seconds=6),
                     result={"KeyMaterialId": m})
    assert kms.call("GetKeyLastUsage", KeyId=key_id) == usage(decrypt, 6)

    kms.call("CreateAlias", AliasName="alias/used", TargetKeyId=key_id)
    with pytest.raises(errors.NotFoundException):  # "Alias names are not supported"
        kms.call("GetKeyLastUsage", KeyId="alias/used")
    bob = Principal(ACCOUNT, PrincipalKind.USER, name="bob", unique_id="AIDABOB0000000000000")
    with pytest.raises(errors.AccessDeniedException) as raised:
        kms.call("GetKeyLastUsage", kms.context(principal=bob), KeyId=key_id)
    assert raised.value.message == (
        f"User: {BOB_ARN} is not authorized to perform: kms:GetKeyLastUsage on resource: "
        f"{_arn(key_id)} because no identity-based policy allows the kms:GetKeyLastUsage action")
    kms.call("ScheduleKeyDeletion", KeyId=key_id, PendingWindowInDays=7)
    assert kms.call("GetKeyLastUsage", KeyId=key_id) == usage(decrypt, 6)


def test_a_role_is_reviewed_for_any_of_its_sessions(kms):
    """The session names in use are not in the ledger: a role is reviewed for any session, its
    aws:userid (ROLE-ID:SESSION) a condition of the request, and a Deny naming one session
    leaves the others (a review under one assumed name listed neither)."""
    role = f"arn:aws:iam::{ACCOUNT}:role/app"
    session = f"arn:aws:sts::{ACCOUNT}:assumed-role/app/keyledger"
    ci_only = {"StringLike": {"aws:userid": "*:ci"}}
    _record_identities(kms, Directory(), parse_directory(json.dumps({"accounts": {ACCOUNT: {
        "roles": {"app": {"policies": {"CiOnly": {"Version": "2012-10-17", "Statement": [
            {"Sid": "CiSessions", "Effect": "Allow", "Action": "kms:Decrypt", "Resource": "*",
             "Condition": ci_only}]}}}}}}})))
    by_default = _create(kms)
    named = _create(kms, Policy=json.dumps({"Version": "2012-10-17", "Statement": [
        {"Sid": "Enable IAM User Permissions", "Effect": "Allow", "Principal": {"AWS": ROOT_ARN},
         "Action": "kms:*", "Resource": "*"},
        {"Sid": "App", "Effect": "Allow", "Principal": {"AWS": role}, "Action": "kms:Decrypt",
         "Resource": "*"},
        {"Sid": "NotThatSession", "Effect": "Deny", "Principal": {"AWS": session},
         "Action": "kms:Decrypt", "Resource": "*"}]}))
    now = datetime.now(UTC)
    forensics = _forensics(kms)
    assert forensics.who_can(REGION, by_default, "kms:Decrypt", now)["Principals"] == [
        {"Principal": role, "Via": "identity-policy", "PolicyName": "CiOnly",
         "Statement": "CiSessions", "Conditions": ci_only,
         "KeyPolicyStatement": "Enable IAM User Permissions", "KeyPolicyConditions": None},
        ROOT_ROUTE]
    assert forensics.who_can(REGION, named, "kms:Decrypt", now)["Principals"] == [
        {"Principal": role, "Via": "key-policy", "Statement": "App", "Conditions": None},
        # (its ci sessions get in through its own policy too: the key policy's App statement
        # taken away, they still could)
        {"Principal": role, "Via": "identity-policy", "PolicyName": "CiOnly",
         "Statement": "CiSessions", "Conditions": ci_only,
         "KeyPolicyStatement": "Enable IAM User Permissions", "KeyPolicyConditions": None},
        ROOT_ROUTE]


def test_the_identities_at_t_are_those_recorded_last_by_t_in_any_region_read(kms):
    """A store read offline may have been served with another default region (its identities
    recorded there), or with one, then another: the region that recorded them last by T."""
    west = "us-west-2"
    first, second = _identities(), _identities(alice_policy=False, dave=True)
    kms.service.record_identities(west, directory_digest(first), directory_changes(Directory(), first))
    key_id = _create(kms)
    between = datetime.now(UTC)
    kms.service.record_identities(REGION, directory_digest(second),
                                  directory_changes(Directory(), second))
    now = datetime.now(UTC)

    def principals(default_region, at):
        answer = Forensics(kms.service, default_region).who_can(REGION, key_id, "kms:Decrypt", at)
        return [route["Principal"] for route in answer["Principals"]]

    # whichever region is the reader's default, the region that recorded them last by T
    for default_region in (REGION, west):
        assert principals(default_region, between) == [ROOT_ARN, ALICE_ARN]  # west's, then
        assert principals(default_region, now) == [ROOT_ARN, DAVE_ARN]  # this region's, since


def test_a_directory_recorded_again_after_another_regions_record_is_the_one_read(kms):
    """Two servers on one store with other default regions: one records the file with dave in
    us-west-2, then the other loads the file without him, which its region recorded before.
    It records it again, so the record read at T (the last one by T) is the file as loaded."""
    west = "us-west-2"
    without, with_dave = _identities(alice_policy=False), _identities(alice_policy=False, dave=True)
    kms.service.record_identities(REGION, directory_digest(without),
                                  directory_changes(Directory(), without))
    key_id = _create(kms)
    kms.service.record_identities(west, directory_digest(with_dave),
                                  directory_changes(Directory(), with_dave))
    between = datetime.now(UTC)
    kms.service.record_identities(REGION, directory_digest(without),
                                  directory_changes(Directory(), without))
    now = datetime.now(UTC)

    def principals(at):
        answer = Forensics(kms.service, REGION).who_can(REGION, key_id, "kms:Decrypt", at)
        return [route["Principal"] for route in answer["Principals"]]

    assert principals(between) == [ROOT_ARN, DAVE_ARN]
    assert principals(now) == [ROOT_ARN]
    # loaded once more, nothing newer elsewhere: recorded once
    events = len(identity_events(kms.service.region(REGION).ledger, datetime.now(UTC)))
    kms.service.record_identities(REGION, directory_digest(without),
                                  directory_changes(Directory(), without))
    assert len(identity_events(kms.service.region(REGION).ledger, datetime.now(UTC))) == events


def test_condition_keys_keyledger_fixes_are_judged_as_its_evaluator_judges_them(kms):
    """No AWS service calls keyledger: kms:ViaService is never present, and
    kms:GrantIsForAWSResource is false for the grant operations (application.authorization),
    so a statement that needs them never applies, and a Deny of calls not made through a
    service applies to every call."""
    _record_identities(kms, Directory(), _identities())
    policy = {"Version": "2012-10-17", "Statement": [
        {"Sid": "Enable IAM User Permissions", "Effect": "Allow", "Principal": {"AWS": ROOT_ARN},
         "Action": "kms:*", "Resource": "*"},
        {"Sid": "BobViaS3", "Effect": "Allow", "Principal": {"AWS": BOB_ARN},
         "Action": "kms:Decrypt", "Resource": "*",
         "Condition": {"StringEquals": {"kms:ViaService": "s3.us-east-1.amazonaws.com"}}},
        {"Sid": "BobGrantsForAWS", "Effect": "Allow", "Principal": {"AWS": BOB_ARN},
         "Action": "kms:CreateGrant", "Resource": "*",
         "Condition": {"Bool": {"kms:GrantIsForAWSResource": "true"}}}]}
    key_id = _create(kms, Policy=json.dumps(policy))
    only_through_services = _create(kms, Policy=json.dumps({**policy, "Statement": [
        *policy["Statement"],
        {"Sid": "OnlyThroughServices", "Effect": "Deny", "Principal": "*", "Action": "kms:*",
         "Resource": "*", "Condition": {"Null": {"kms:ViaService": "true"}}}]}),
        BypassPolicyLockoutSafetyCheck=True)
    now = datetime.now(UTC)
    forensics = _forensics(kms)

    def principals(key, action):
        return forensics.who_can(REGION, key, action, now)["Principals"]

    assert principals(key_id, "kms:Decrypt") == [ROOT_ROUTE, ALICE_ROUTE]  # (no bob)
    assert principals(key_id, "kms:CreateGrant") == [ROOT_ROUTE]
    assert principals(only_through_services, "kms:Decrypt") == []


def test_a_policy_variable_whose_key_is_known_is_evaluated_not_left_to_the_request(kms):
    """ABAC: bob (team=red) may decrypt keys tagged with his team; both sides are known at T,
    so the review answers as the evaluator would, instead of a condition that never holds."""
    _record_identities(kms, Directory(), _identities())
    policy = json.dumps({"Version": "2012-10-17", "Statement": [
        {"Sid": "Enable IAM User Permissions", "Effect": "Allow", "Principal": {"AWS": ROOT_ARN},
         "Action": "kms:*", "Resource": "*"},
        {"Sid": "OwnTeam", "Effect": "Allow", "Principal": {"AWS": BOB_ARN},
         "Action": "kms:Decrypt", "Resource": "*", "Condition": {"StringEquals": {
             "aws:ResourceTag/team": "${aws:PrincipalTag/team}"}}},
        {"Sid": "OwnAgent", "Effect": "Allow", "Principal": {"AWS": BOB_ARN},
         "Action": "kms:Decrypt", "Resource": "*", "Condition": {"StringEquals": {
             "aws:ResourceTag/agent": "${aws:UserAgent}"}}}]})
    red = _create(kms, Policy=policy, Tags=[{"TagKey": "team", "TagValue": "red"}])
    green = _create(kms, Policy=policy, Tags=[{"TagKey": "team", "TagValue": "green"}])
    now = datetime.now(UTC)

    def bob(key):
        return [route for route in _forensics(kms).who_can(REGION, key, "kms:Decrypt", now)[
            "Principals"] if route["Principal"] == BOB_ARN]

    own_agent = {"Principal": BOB_ARN, "Via": "key-policy", "Statement": "OwnAgent",
                 "Conditions": {"StringEquals": {"aws:ResourceTag/agent": "${aws:UserAgent}"}}}
    # (OwnTeam holds, known at T; OwnAgent is a way in of its own, left to the request)
    assert bob(red) == [own_agent, {"Principal": BOB_ARN, "Via": "key-policy",
                                    "Statement": "OwnTeam", "Conditions": None}]
    # (the user agent is the request's: that statement is left to it, as a condition)
    assert bob(green) == [{"Principal": BOB_ARN, "Via": "key-policy", "Statement": "OwnAgent",
                           "Conditions": {"StringEquals": {
                               "aws:ResourceTag/agent": "${aws:UserAgent}"}}}]


def test_every_statement_that_lets_a_principal_in_is_a_route_of_its_own(kms):
    """Two Allows with different conditions: meeting either suffices, so both are named (the
    review named only the one the evaluator met first)."""
    _record_identities(kms, Directory(), _identities())
    blue = {"StringEquals": {"kms:EncryptionContext:tenant": "blue"}}
    office = {"IpAddress": {"aws:SourceIp": "10.0.0.0/8"}}
    key_id = _create(kms, Policy=json.dumps({"Version": "2012-10-17", "Statement": [
        {"Sid": "Enable IAM User Permissions", "Effect": "Allow", "Principal": {"AWS": ROOT_ARN},
         "Action": "kms:*", "Resource": "*"},
        {"Sid": "BobForBlue", "Effect": "Allow", "Principal": {"AWS": BOB_ARN},
         "Action": "kms:Decrypt", "Resource": "*", "Condition": blue},
        {"Sid": "BobFromTheOffice", "Effect": "Allow", "Principal": {"AWS": BOB_ARN},
         "Action": "kms:Decrypt", "Resource": "*", "Condition": office}]}))
    answer = _forensics(kms).who_can(REGION, key_id, "kms:Decrypt", datetime.now(UTC))
    assert [route for route in answer["Principals"] if route["Principal"] == BOB_ARN] == [
        {"Principal": BOB_ARN, "Via": "key-policy", "Statement": "BobForBlue",
         "Conditions": blue},
        {"Principal": BOB_ARN, "Via": "key-policy", "Statement": "BobFromTheOffice",
         "Conditions": office}]


def test_an_unconditional_statement_does_not_hide_the_other_ways_in(kms):
    """Alice may decrypt through a key-policy statement naming her and through her identity
    policy (which the root statement delegates to): both are named, so a review before the
    statement is removed shows she keeps the access (the review stopped at the first
    unconditional way in)."""
    _record_identities(kms, Directory(), _identities())
    key_id = _create(kms, Policy=json.dumps({"Version": "2012-10-17", "Statement": [
        {"Sid": "Enable IAM User Permissions", "Effect": "Allow", "Principal": {"AWS": ROOT_ARN},
         "Action": "kms:*", "Resource": "*"},
        {"Sid": "AliceDecrypts", "Effect": "Allow", "Principal": {"AWS": ALICE_ARN},
         "Action": "kms:Decrypt", "Resource": "*"}]}))
    answer = _forensics(kms).who_can(REGION, key_id, "kms:Decrypt", datetime.now(UTC))
    assert [route for route in answer["Principals"] if route["Principal"] == ALICE_ARN] == [
        {"Principal": ALICE_ARN, "Via": "key-policy", "Statement": "AliceDecrypts",
         "Conditions": None},
        ALICE_ROUTE]


def test_material_imported_again_after_its_deletion_is_live_again(kms):
    key_id = _create(kms, Origin="EXTERNAL")
    material = os.urandom(32)
    first = _import(kms, key_id, material)
    kms.call("DeleteImportedKeyMaterial", KeyId=key_id, KeyMaterialId=first)
    deleted = _forensics(kms).materials(REGION, key_id, 30)["Materials"]
    assert [(m["KeyMaterialId"], m["ImportState"], m["Destroyed"]) for m in deleted] == [
        (first, "PENDING_IMPORT", True)]
    assert _import(kms, key_id, material) == first
    again = _forensics(kms).materials(REGION, key_id, 30)["Materials"]
    assert [(m["KeyMaterialId"], m["ImportState"], m["Destroyed"]) for m in again] == [
        (first, "IMPORTED", False)]


def test_first_and_last_use_and_the_look_back_read_the_stored_instants(kms):
    """eventTime shows only the second: a use in the second the key was made seemed to come
    before it, and a decryption in the second the look-back starts in fell out of it."""
    key_id = _create(kms, Origin="EXTERNAL")
    material = _import(kms, key_id, os.urandom(32))
    used = datetime.now(UTC).replace(microsecond=500_000) + timedelta(seconds=1)
    _audit(kms, "Decrypt", [key_id], used, result={"KeyMaterialId": material})
    since = used - timedelta(milliseconds=300)  # (in the same second, before the use)
    (found,) = _forensics(kms).materials(REGION, key_id, 30, now=since + timedelta(days=30))[
        "Materials"]
    assert (found["FirstUsed"], found["LastUsed"]) == (used, used)
    assert found["DecryptedInLastDays"]["any"] is True  # (Complete: the audit began with it)
    (later,) = _forensics(kms).materials(
        REGION, key_id, 30, now=used + timedelta(milliseconds=1, days=30))["Materials"]
    assert later["DecryptedInLastDays"]["any"] is False


def test_conditions_that_can_never_hold_together_are_no_way_in(kms):
    """The key policy lets the account's identities decide for tenant red, alice's own policy
    allows tenant blue only: no request meets both (a live one is refused), so she is not
    listed; dave's allows red, and is."""
    red = {"StringEquals": {"kms:EncryptionContext:tenant": "red"}}

    def allow(sid: str, tenant: str) -> dict:
        return {"Version": "2012-10-17", "Statement": [
            {"Sid": sid, "Effect": "Allow", "Action": "kms:Decrypt", "Resource": "*",
             "Condition": {"StringEquals": {"kms:EncryptionContext:tenant": tenant}}}]}

    _record_identities(kms, Directory(), parse_directory(json.dumps({"accounts": {ACCOUNT: {
        "users": {"alice": {"policies": {"Blue": allow("BlueOnly", "blue")}},
                  "dave": {"policies": {"Red": allow("RedOnly", "red")}}}}}})))
    key_id = _create(kms, Policy=json.dumps({"Version": "2012-10-17", "Statement": [
        {"Sid": "Admin", "Effect": "Allow", "Principal": {"AWS": ROOT_ARN},
         "Action": "kms:PutKeyPolicy", "Resource": "*"},
        {"Sid": "RedTenantsDecide", "Effect": "Allow", "Principal": {"AWS": ROOT_ARN},
         "Action": "kms:Decrypt", "Resource": "*", "Condition": red}]}))
    answer = _forensics(kms).who_can(REGION, key_id, "kms:Decrypt", datetime.now(UTC))
    assert [r for r in answer["Principals"] if r["Via"] == "identity-policy"] == [
        {"Principal": DAVE_ARN, "Via": "identity-policy", "PolicyName": "Red",
         "Statement": "RedOnly", "Conditions": red, "KeyPolicyStatement": "RedTenantsDecide",
         "KeyPolicyConditions": red}]
