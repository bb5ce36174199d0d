"""Alias naming rules and the Alias aggregate's lifecycle."""

from __future__ import annotations

from datetime import UTC, datetime, timedelta
from functools import reduce

import pytest

from application.ledger import KeyLedger
from domain import errors
from domain.alias import Alias, alias_aggregate_id, check_alias_name
from domain.values import Actor
from infrastructure.transcoding import TRANSCODINGS

ACCOUNT = "111122223333"
REGION = "eu-west-1"
T0 = datetime(2030, 6, 1, tzinfo=UTC)
ALICE = Actor("arn:aws:iam::111122223333:user/alice", request_id="r1")
BOB = Actor("arn:aws:iam::111122223333:user/bob", request_id="r2")
KEY_A = "11111111-1111-1111-1111-111111111111"
KEY_B = "22222222-2222-2222-2222-222222222222"


def new_alias(name: str = "alias/app", target: str = KEY_A, now: datetime = T0, actor=ALICE) -> Alias:
    return Alias.create(
        account=ACCOUNT, region=REGION, alias_name=name, target_key_id=target, now=now, actor=actor
    )


# -- names -----------------------------------------------------------------------------------------


@pytest.mark.parametrize(
    "name", ["alias/app", "alias/a", "alias/my-app/prod", "alias/aws", "alias/awsfoo", "alias/AWS/x"]
)
def test_valid_alias_names(name):
    check_alias_name(name)


# AWS (and moto, LocalStack, local-kms, which mirror it) answers a name without the prefix
# with ValidationException and a name under alias/aws/ with NotAuthorizedException; the
# model's InvalidAliasNameException is not what CreateAlias returns for these.
@pytest.mark.parametrize(
    "name", ["app", "alias", "alias/", "Alias/app", "aliases/app", "", "/alias/app", "key/app"]
)
def test_alias_names_must_begin_with_alias_prefix(name):
    with pytest.raises(errors.ValidationException) as info:
        check_alias_name(name)
    assert type(info.value) is errors.ValidationException
    assert info.value.message.startswith('Alias must start with the prefix "alias/".')


@pytest.mark.parametrize("name", ["alias/aws/", "alias/aws/s3", "alias/aws/anything/else"])
def test_alias_aws_prefix_is_reserved(name):
    with pytest.raises(errors.NotAuthorizedException) as info:
        check_alias_name(name)
    assert type(info.value) is errors.NotAuthorizedException
    assert "alias/aws/" in info.value.message


def test_alias_name_with_colon_is_invalid():
    with pytest.raises(errors.ValidationException, match="invalid characters"):
        check_alias_name("alias/a:b")


def test_create_checks_the_name():
    with pytest.raises(errors.NotAuthorizedException):
        new_alias("alias/aws/ebs")
    with pytest.raises(errors.ValidationException):
        new_alias("app")


# -- lifecycle -------------------------------------------------------------------------------------


def test_create():
    alias = new_alias()
    assert alias.exists
    assert alias.id == alias_aggregate_id(ACCOUNT, "alias/app") == f"{ACCOUNT}/alias/app"
    assert alias.alias_name == "alias/app"
    assert alias.target_key_id == KEY_A
    assert alias.arn == f"arn:aws:kms:{REGION}:{ACCOUNT}:alias/app"
    assert alias.creation_date == alias.last_updated_date == T0
    assert [type(e).__name__ for e in alias.pending_events] == ["AliasCreated"]
    assert alias.pending_events[0].actor == ALICE


def test_retarget():
    alias = new_alias()
    later = T0 + timedelta(hours=1)
    alias.retarget(KEY_B, later, BOB)
    assert alias.target_key_id == KEY_B
    assert alias.creation_date == T0
    assert alias.last_updated_date == later
    assert alias.pending_events[-1].actor == BOB


def test_delete_then_recreate():
    alias = new_alias()
    alias.delete(BOB)
    assert not alias.exists
    assert alias.target_key_id is None
    later = T0 + timedelta(days=2)
    alias.recreate(KEY_B, later, ALICE)
    assert alias.exists
    assert alias.target_key_id == KEY_B
    assert alias.creation_date == alias.last_updated_date == later
    assert [type(e).__name__ for e in alias.pending_events] == [
        "AliasCreated", "AliasDeleted", "AliasRecreated",
    ]
    assert [e.actor for e in alias.pending_events] == [ALICE, BOB, ALICE]


def test_recreate_of_existing_alias_already_exists():
    alias = new_alias()
    with pytest.raises(errors.AlreadyExistsException) as info:
        alias.recreate(KEY_B, T0, ALICE)
    assert type(info.value) is errors.AlreadyExistsException
    assert alias.arn in info.value.message
    assert alias.target_key_id == KEY_A
    assert len(alias.pending_events) == 1


def test_recreate_after_recreate_already_exists():
    alias = new_alias()
    alias.delete(ALICE)
    alias.recreate(KEY_B, T0, ALICE)
    with pytest.raises(errors.AlreadyExistsException):
        alias.recreate(KEY_A, T0, ALICE)


def test_delete_of_deleted_alias_not_found():
    alias = new_alias()
    alias.delete(ALICE)
    with pytest.raises(errors.NotFoundException) as info:
        alias.delete(ALICE)
    assert type(info.value) is errors.NotFoundException
    assert alias.arn in info.value.message
    assert len(alias.pending_events) == 2


def test_retarget_of_deleted_alias_not_found():
    alias = new_alias()
    alias.delete(ALICE)
    with pytest.raises(errors.NotFoundException):
        alias.retarget(KEY_B, T0, ALICE)
    assert alias.target_key_id is None


def test_alias_ids_are_per_account():
    assert alias_aggregate_id("111111111111", "alias/x") != alias_aggregate_id("222222222222", "alias/x")


def test_alias_history_replays():
    alias = new_alias()
    alias.retarget(KEY_B, T0 + timedelta(hours=1), BOB)
    alias.delete(BOB)
    alias.recreate(KEY_A, T0 + timedelta(hours=2), ALICE)
    expected = {k: v for k, v in vars(alias).items() if k != "_pending_events"}
    events = list(alias.pending_events)

    replayed = reduce(lambda a, e: e.mutate(a), events, None)
    assert {k: v for k, v in vars(replayed).items() if k != "_pending_events"} == expected

    ledger = KeyLedger({"PERSISTENCE_MODULE": "eventsourcing.popo"}, TRANSCODINGS)
    try:
        ledger.save(alias)
        loaded = ledger.get_alias(alias.id)
        assert {k: v for k, v in vars(loaded).items() if k != "_pending_events"} == expected
        assert ledger.get_key(alias.id) is None  # an alias is not a key
    finally:
        ledger.close()
