"""The KmsKey aggregate: business rules, events and replay. No I/O, no sleeping.

Time is always passed in explicitly; backing key material is fake sealed bytes.
"""

from __future__ import annotations

import json
from datetime import UTC, datetime, timedelta
from functools import reduce

import pytest

from domain import errors
from domain.key import KmsKey
from domain.key_states import KeyState
from domain.policy import default_key_policy
from domain.values import Actor, BackingKey, KeyMaterialState, RotationType

ACCOUNT = "111122223333"
REGION = "us-east-1"
KEY_ID = "1234abcd-12ab-34cd-56ef-1234567890ab"
ARN = f"arn:aws:kms:{REGION}:{ACCOUNT}:key/{KEY_ID}"
T0 = datetime(2030, 1, 1, 12, 0, tzinfo=UTC)
ALICE = Actor("arn:aws:iam::111122223333:user/alice", "AKIAALICE", "req-1", "10.0.0.1", "ua/1")
BOB = Actor("arn:aws:iam::111122223333:user/bob", "AKIABOB", "req-2", "10.0.0.2", "ua/2")
SERVICE = Actor.service("req-svc")


def material(n: int, rotation_type: RotationType | None = None, created: datetime = T0) -> BackingKey:
    return BackingKey(f"{n:064x}", b"fake-sealed-" + bytes([n % 256]) * 8, created, rotation_type)


def new_key(tags: dict[str, str] | None = None, actor: Actor = ALICE, **kw) -> KmsKey:
    args = dict(
        key_id=KEY_ID,
        account=ACCOUNT,
        region=REGION,
        description="test key",
        policy=default_key_policy(ACCOUNT),
        tags=tags or {},
        material=material(0),
        now=T0,
        actor=actor,
    )
    args.update(kw)
    return KmsKey.create(**args)


def state(aggregate) -> dict:
    """Everything but the eventsourcing bookkeeping that is not part of the key's state."""
    return {k: v for k, v in vars(aggregate).items() if k != "_pending_events"}


def event_names(key: KmsKey) -> list[str]:
    return [type(e).__name__ for e in key.pending_events]


# -- creation ------------------------------------------------------------------------------------


def test_create_is_enabled_with_one_current_material():
    key = new_key(tags={"team": "a"})
    assert key.key_state is KeyState.ENABLED
    assert key.enabled
    assert key.id == key.key_id == KEY_ID
    assert key.arn == ARN
    assert key.creation_date == T0
    assert key.key_spec == "SYMMETRIC_DEFAULT"
    assert key.key_usage == "ENCRYPT_DECRYPT"
    assert key.origin == "AWS_KMS"
    assert key.tags == {"team": "a"}
    assert key.deletion_date is None
    assert not key.rotation_enabled and key.next_rotation_date is None
    assert key.current_key_material_id == material(0).key_material_id
    assert key.current_material == material(0)
    assert key.materials == {material(0).key_material_id: material(0)}
    assert key.rotations() == []
    assert event_names(key) == ["KeyCreated"]
    assert key.version == 1


def test_create_copies_tags():
    tags = {"a": "1"}
    key = new_key(tags=tags)
    tags["b"] = "2"
    assert key.tags == {"a": "1"}


def test_create_rejects_malformed_policy():
    with pytest.raises(errors.MalformedPolicyDocumentException):
        new_key(policy="{not json")


# -- enable / disable ------------------------------------------------------------------------------


def test_disable_then_enable():
    key = new_key()
    key.disable(ALICE)
    assert key.key_state is KeyState.DISABLED and not key.enabled
    with pytest.raises(errors.DisabledException, match=f"^{ARN} is disabled\\.$"):
        key.check("Encrypt")
    key.enable(BOB)
    assert key.key_state is KeyState.ENABLED
    key.check("Encrypt")
    assert event_names(key) == ["KeyCreated", "KeyDisabled", "KeyEnabled"]


def test_enable_and_disable_are_idempotent_without_events():
    key = new_key()
    key.enable(ALICE)
    assert event_names(key) == ["KeyCreated"]
    key.disable(ALICE)
    key.disable(ALICE)
    assert event_names(key) == ["KeyCreated", "KeyDisabled"]


def test_update_description():
    key = new_key()
    key.update_description("new", BOB)
    assert key.description == "new"
    assert event_names(key)[-1] == "DescriptionUpdated"


# -- deletion --------------------------------------------------------------------------------------


@pytest.mark.parametrize(
    ("days", "message"),
    [
        (6, "1 validation error detected: Value '6' at 'pendingWindowInDays' failed to satisfy "
            "constraint: Member must have value greater than or equal to 7"),
        (0, "1 validation error detected: Value '0' at 'pendingWindowInDays' failed to satisfy "
            "constraint: Member must have value greater than or equal to 7"),
        (31, "1 validation error detected: Value '31' at 'pendingWindowInDays' failed to satisfy "
             "constraint: Member must have value less than or equal to 30"),
    ],
)
def test_schedule_deletion_window_bounds(days, message):
    key = new_key()
    with pytest.raises(errors.ValidationException) as info:
        key.schedule_deletion(days, T0, ALICE)
    assert type(info.value) is errors.ValidationException
    assert info.value.message == message
    assert key.key_state is KeyState.ENABLED
    assert event_names(key) == ["KeyCreated"]


@pytest.mark.parametrize("days", [7, 8, 29, 30])
def test_schedule_deletion_within_bounds(days):
    key = new_key()
    key.schedule_deletion(days, T0, ALICE)
    assert key.key_state is KeyState.PENDING_DELETION
    assert key.pending_window_days == days
    assert key.deletion_date == T0 + timedelta(days=days)


def test_schedule_deletion_defaults_to_30_days():
    key = new_key()
    now = T0 + timedelta(hours=5)
    key.schedule_deletion(None, now, ALICE)
    assert key.pending_window_days == 30
    assert key.deletion_date == now + timedelta(days=30)
    assert not key.enabled


def test_schedule_deletion_of_disabled_key():
    key = new_key()
    key.disable(ALICE)
    key.schedule_deletion(7, T0, ALICE)
    assert key.key_state is KeyState.PENDING_DELETION


def test_schedule_deletion_twice_is_invalid_state():
    key = new_key()
    key.schedule_deletion(7, T0, ALICE)
    with pytest.raises(errors.KMSInvalidStateException, match=ARN):
        key.schedule_deletion(7, T0, ALICE)


def test_pending_deletion_key_refuses_crypto_and_configuration():
    key = new_key()
    key.schedule_deletion(7, T0, ALICE)
    for operation in ("Encrypt", "Decrypt", "GenerateDataKey", "ReEncrypt"):
        with pytest.raises(errors.KMSInvalidStateException, match=f"{ARN} is pending deletion"):
            key.check(operation)
    with pytest.raises(errors.KMSInvalidStateException):
        key.enable(ALICE)
    with pytest.raises(errors.KMSInvalidStateException):
        key.disable(ALICE)
    with pytest.raises(errors.KMSInvalidStateException):
        key.tag({"a": "b"}, ALICE)
    with pytest.raises(errors.KMSInvalidStateException):
        key.update_description("x", ALICE)
    with pytest.raises(errors.KMSInvalidStateException):
        key.enable_rotation(None, T0, ALICE)
    key.check("DescribeKey")


def test_cancel_deletion_leaves_key_disabled():
    key = new_key()
    key.schedule_deletion(10, T0, ALICE)
    key.cancel_deletion(T0, BOB)
    assert key.key_state is KeyState.DISABLED
    assert key.deletion_date is None
    assert key.pending_window_days is None
    assert event_names(key)[-2:] == ["KeyDeletionScheduled", "KeyDeletionCancelled"]


def test_cancel_deletion_is_refused_once_the_window_has_passed():
    """The scheduler may already have shredded the material: no cancelling a due deletion."""
    key = new_key()
    key.schedule_deletion(7, T0, ALICE)
    with pytest.raises(errors.KMSInvalidStateException, match="is pending deletion"):
        key.cancel_deletion(T0 + timedelta(days=7), BOB)
    assert key.key_state is KeyState.PENDING_DELETION
    key.cancel_deletion(T0 + timedelta(days=7) - timedelta(seconds=1), BOB)
    assert key.key_state is KeyState.DISABLED


@pytest.mark.parametrize("prepare", ["enabled", "disabled"])
def test_cancel_deletion_requires_pending_deletion(prepare):
    key = new_key()
    if prepare == "disabled":
        key.disable(ALICE)
    with pytest.raises(errors.KMSInvalidStateException, match=ARN):
        key.cancel_deletion(T0, ALICE)


def test_complete_deletion_only_when_due():
    key = new_key()
    key.schedule_deletion(7, T0, ALICE)
    due = T0 + timedelta(days=7)
    for early in (T0, due - timedelta(microseconds=1)):
        assert not key.deletion_due(early)
        with pytest.raises(errors.KMSInvalidStateException, match=ARN):
            key.complete_deletion(early, SERVICE)
        assert not key.deleted
    assert key.deletion_due(due)
    key.complete_deletion(due, SERVICE)
    assert key.deleted and key.shred_pending and not key.shredded
    assert event_names(key)[-1] == "KeyDeleted"
    key.record_shredded(SERVICE)
    assert key.shredded and not key.shred_pending
    assert event_names(key)[-2:] == ["KeyDeleted", "KeyMaterialShredded"]
    with pytest.raises(errors.KMSInvalidStateException):
        key.record_shredded(SERVICE)
    shredded = key.pending_events[-1]
    assert shredded.key_material_ids == [material(0).key_material_id]
    assert not key.deletion_due(due + timedelta(days=1))
    with pytest.raises(errors.NotFoundException, match=f"Key '{ARN}' does not exist"):
        key.check("DescribeKey")


def test_complete_deletion_after_cancel_is_refused():
    key = new_key()
    key.schedule_deletion(7, T0, ALICE)
    key.cancel_deletion(T0, ALICE)
    with pytest.raises(errors.KMSInvalidStateException):
        key.complete_deletion(T0 + timedelta(days=60), SERVICE)


def test_shredding_is_recorded_only_after_deletion():
    key = new_key()
    with pytest.raises(errors.KMSInvalidStateException):
        key.record_shredded(SERVICE)


def test_complete_deletion_of_never_scheduled_key_is_refused():
    key = new_key()
    with pytest.raises(errors.KMSInvalidStateException):
        key.complete_deletion(T0 + timedelta(days=3650), SERVICE)


def test_complete_deletion_shreds_every_material():
    key = new_key()
    key.rotate_on_demand(material(1, RotationType.ON_DEMAND), T0, ALICE)
    key.schedule_deletion(7, T0, ALICE)
    key.complete_deletion(T0 + timedelta(days=8), SERVICE)
    key.record_shredded(SERVICE)
    assert key.pending_events[-1].key_material_ids == sorted(
        [material(0).key_material_id, material(1).key_material_id]
    )


# -- rotation --------------------------------------------------------------------------------------


@pytest.mark.parametrize(
    ("days", "bound"),
    [
        (89, "greater than or equal to 90"),
        (1, "greater than or equal to 90"),
        (2561, "less than or equal to 2560"),
    ],
)
def test_enable_rotation_bounds(days, bound):
    key = new_key()
    with pytest.raises(errors.ValidationException) as info:
        key.enable_rotation(days, T0, ALICE)
    assert info.value.message == (
        f"1 validation error detected: Value '{days}' at 'rotationPeriodInDays' failed to "
        f"satisfy constraint: Member must have value {bound}"
    )
    assert not key.rotation_enabled


@pytest.mark.parametrize("days", [90, 365, 2560])
def test_enable_rotation_within_bounds(days):
    key = new_key()
    key.enable_rotation(days, T0, ALICE)
    assert key.rotation_enabled and key.rotation_is_enabled()
    assert key.rotation_period_days == days
    assert key.next_rotation_date == T0 + timedelta(days=days)


def test_enable_rotation_defaults_to_365_days():
    key = new_key()
    key.enable_rotation(None, T0, ALICE)
    assert key.rotation_period_days == 365
    assert key.next_rotation_date == T0 + timedelta(days=365)


def test_enable_rotation_same_period_twice_records_one_event():
    key = new_key()
    key.enable_rotation(100, T0, ALICE)
    key.enable_rotation(100, T0 + timedelta(days=1), ALICE)
    assert event_names(key).count("KeyRotationEnabled") == 1
    assert key.next_rotation_date == T0 + timedelta(days=100)


def test_rotation_settings_refused_on_disabled_key():
    key = new_key()
    key.disable(ALICE)
    with pytest.raises(errors.DisabledException):
        key.enable_rotation(None, T0, ALICE)
    with pytest.raises(errors.DisabledException):
        key.disable_rotation(ALICE)
    with pytest.raises(errors.DisabledException):
        key.rotate_on_demand(material(1, RotationType.ON_DEMAND), T0, ALICE)


def test_disable_rotation():
    key = new_key()
    key.enable_rotation(None, T0, ALICE)
    key.disable_rotation(BOB)
    assert not key.rotation_enabled and key.next_rotation_date is None
    assert not key.rotation_due(T0 + timedelta(days=1000))
    key.disable_rotation(BOB)  # no-op
    assert event_names(key).count("KeyRotationDisabled") == 1


def test_rotation_status_is_false_while_pending_deletion():
    key = new_key()
    key.enable_rotation(None, T0, ALICE)
    key.schedule_deletion(7, T0, ALICE)
    assert key.rotation_enabled
    assert not key.rotation_is_enabled()
    key.cancel_deletion(T0, ALICE)
    key.enable(ALICE)
    assert key.rotation_is_enabled()


def test_rotate_on_demand_keeps_older_material_resolvable():
    key = new_key()
    key.enable_rotation(180, T0, ALICE)
    next_date = key.next_rotation_date
    m0 = key.current_key_material_id
    m1 = material(1, RotationType.ON_DEMAND, T0 + timedelta(days=1))
    key.rotate_on_demand(m1, T0, BOB)
    assert key.current_key_material_id == m1.key_material_id
    assert key.current_material is m1
    assert key.materials[m0] == material(0)  # older material: a dict lookup
    assert key.materials[m1.key_material_id] == m1
    assert key.material_state(m1.key_material_id) is KeyMaterialState.CURRENT
    assert key.material_state(m0) is KeyMaterialState.NON_CURRENT
    assert key.rotations() == [m1]
    assert key.on_demand_rotations == 1
    # on-demand rotation does not move the automatic schedule
    assert key.next_rotation_date == next_date

    m2 = material(2, RotationType.ON_DEMAND)
    key.rotate_on_demand(m2, T0, BOB)
    assert key.material_state(m1.key_material_id) is KeyMaterialState.NON_CURRENT
    assert key.material_state(m2.key_material_id) is KeyMaterialState.CURRENT
    assert [m.key_material_id for m in key.rotations()] == [m1.key_material_id, m2.key_material_id]
    assert set(key.materials) == {m0, m1.key_material_id, m2.key_material_id}


def test_twenty_sixth_on_demand_rotation_exceeds_limit():
    key = new_key()
    for n in range(1, 26):
        key.rotate_on_demand(material(n, RotationType.ON_DEMAND), T0, ALICE)
    assert key.on_demand_rotations == 25
    assert len(key.materials) == 26
    before = key.current_key_material_id
    with pytest.raises(errors.LimitExceededException) as info:
        key.rotate_on_demand(material(26, RotationType.ON_DEMAND), T0, ALICE)
    assert type(info.value) is errors.LimitExceededException
    assert ARN in info.value.message
    assert key.current_key_material_id == before
    assert len(key.materials) == 26


def test_on_demand_rotation_is_refused_within_20_minutes_of_an_automatic_one():
    """The model's ConflictException for RotateKeyOnDemand: "an automatic rotation of this key is
    currently in progress or scheduled to begin within the next 20 minutes"."""
    key = new_key()
    key.enable_rotation(90, T0, ALICE)
    due = key.next_rotation_date
    key.rotate_on_demand(material(1, RotationType.ON_DEMAND), due - timedelta(minutes=21), ALICE)
    for now in (due - timedelta(minutes=20), due - timedelta(seconds=1), due + timedelta(hours=1)):
        with pytest.raises(errors.ConflictException):
            key.rotate_on_demand(material(2, RotationType.ON_DEMAND), now, ALICE)
    assert key.on_demand_rotations == 1
    key.disable_rotation(ALICE)  # no automatic rotation scheduled: allowed again
    key.rotate_on_demand(material(2, RotationType.ON_DEMAND), due, ALICE)
    assert key.on_demand_rotations == 2


def test_automatic_rotations_do_not_count_against_on_demand_limit():
    key = new_key()
    key.enable_rotation(90, T0, ALICE)
    now = T0
    for n in range(1, 4):
        now = key.next_rotation_date
        key.rotate_automatically(material(100 + n, RotationType.AUTOMATIC, now), now, SERVICE)
    assert key.on_demand_rotations == 0
    for n in range(1, 26):
        key.rotate_on_demand(material(n, RotationType.ON_DEMAND), T0, ALICE)
    with pytest.raises(errors.LimitExceededException):
        key.rotate_on_demand(material(26, RotationType.ON_DEMAND), T0, ALICE)


def test_rotate_automatically_only_when_due():
    key = new_key()
    auto = material(7, RotationType.AUTOMATIC)
    with pytest.raises(errors.KMSInvalidStateException):  # rotation not enabled
        key.rotate_automatically(auto, T0 + timedelta(days=10_000), SERVICE)
    key.enable_rotation(90, T0, ALICE)
    due = T0 + timedelta(days=90)
    assert not key.rotation_due(due - timedelta(seconds=1))
    with pytest.raises(errors.KMSInvalidStateException, match=ARN):
        key.rotate_automatically(auto, due - timedelta(seconds=1), SERVICE)
    assert key.rotation_due(due)
    key.rotate_automatically(auto, due, SERVICE)
    assert key.current_key_material_id == auto.key_material_id
    assert key.next_rotation_date == due + timedelta(days=90)
    assert not key.rotation_due(due)
    assert event_names(key)[-1] == "KeyMaterialRotated"


@pytest.mark.parametrize("make_ineligible", ["disable", "schedule_deletion"])
def test_rotate_automatically_only_for_enabled_keys(make_ineligible):
    key = new_key()
    key.enable_rotation(90, T0, ALICE)
    if make_ineligible == "disable":
        key.disable(ALICE)
    else:
        key.schedule_deletion(30, T0, ALICE)
    due = T0 + timedelta(days=91)
    assert not key.rotation_due(due)
    with pytest.raises(errors.KMSInvalidStateException):
        key.rotate_automatically(material(9, RotationType.AUTOMATIC), due, SERVICE)
    assert key.current_key_material_id == material(0).key_material_id


# -- tags ------------------------------------------------------------------------------------------


def test_tag_and_untag():
    key = new_key(tags={"a": "1"})
    key.tag({"b": "2", "a": "one"}, BOB)
    assert key.tags == {"a": "one", "b": "2"}
    key.untag(["a", "missing"], BOB)
    assert key.tags == {"b": "2"}
    assert event_names(key)[-2:] == ["TagsAdded", "TagsRemoved"]


@pytest.mark.parametrize("tag_key", ["aws:foo", "aws:"])
def test_aws_prefixed_tags_are_reserved(tag_key):
    with pytest.raises(errors.TagException):
        new_key(tags={tag_key: "x"})
    key = new_key()
    with pytest.raises(errors.TagException):
        key.tag({"ok": "1", tag_key: "x"}, ALICE)
    assert key.tags == {}
    with pytest.raises(errors.TagException):
        key.untag([tag_key], ALICE)
    assert event_names(key) == ["KeyCreated"]


def test_at_most_50_tags():
    fifty = {f"k{i}": "v" for i in range(50)}
    key = new_key(tags=fifty)
    assert len(key.tags) == 50
    key.tag({"k0": "changed"}, ALICE)  # overwriting keeps the count at 50
    assert key.tags["k0"] == "changed"
    with pytest.raises((errors.LimitExceededException, errors.TagException)):
        key.tag({"k50": "v"}, ALICE)
    assert len(key.tags) == 50
    with pytest.raises((errors.LimitExceededException, errors.TagException)):
        new_key(tags={**fifty, "k50": "v"})
    small = new_key()
    with pytest.raises((errors.LimitExceededException, errors.TagException)):
        small.tag({f"t{i}": "v" for i in range(51)}, ALICE)
    assert small.tags == {}


# -- policy ----------------------------------------------------------------------------------------

NEW_POLICY = json.dumps(
    {"Version": "2012-10-17",
     "Statement": [{"Effect": "Allow", "Principal": {"AWS": "*"}, "Action": "kms:*", "Resource": "*"}]}
)


def test_put_policy():
    key = new_key()
    key.put_policy("default", NEW_POLICY, BOB)
    assert key.policy == NEW_POLICY
    assert event_names(key)[-1] == "KeyPolicyPut"


@pytest.mark.parametrize(
    "policy", ["{not json", "", "[]", '{"Statement": []}', '{"Statement": [{"Action": "kms:*"}]}']
)
def test_put_policy_malformed(policy):
    key = new_key()
    before = key.policy
    with pytest.raises(errors.MalformedPolicyDocumentException):
        key.put_policy("default", policy, ALICE)
    assert key.policy == before


def test_put_policy_wrong_name():
    key = new_key()
    with pytest.raises(errors.NotFoundException):
        key.put_policy("custom", NEW_POLICY, ALICE)
    assert event_names(key) == ["KeyCreated"]


def test_put_policy_allowed_while_pending_deletion():
    key = new_key()
    key.schedule_deletion(7, T0, ALICE)
    key.put_policy("default", NEW_POLICY, ALICE)
    assert key.policy == NEW_POLICY


# -- events: actor and replay ----------------------------------------------------------------------


def full_history() -> KmsKey:
    """A key that went through every kind of event, each caused by a distinct actor."""
    actors = iter(Actor(f"arn:aws:iam::{ACCOUNT}:user/u{i}", request_id=f"r{i}") for i in range(100))
    key = new_key(tags={"t": "1"}, actor=next(actors))
    key.update_description("changed", next(actors))
    key.disable(next(actors))
    key.enable(next(actors))
    key.tag({"u": "2"}, next(actors))
    key.untag(["t"], next(actors))
    key.put_policy("default", NEW_POLICY, next(actors))
    key.enable_rotation(90, T0, next(actors))
    key.rotate_on_demand(material(1, RotationType.ON_DEMAND, T0 + timedelta(days=1)), T0, next(actors))
    due = T0 + timedelta(days=90)
    key.rotate_automatically(material(2, RotationType.AUTOMATIC, due), due, next(actors))
    key.disable_rotation(next(actors))
    key.schedule_deletion(7, due, next(actors))
    key.cancel_deletion(T0, next(actors))
    key.schedule_deletion(None, due, next(actors))
    deleter = next(actors)
    key.complete_deletion(due + timedelta(days=30), deleter)
    key.record_shredded(deleter)
    return key


def test_every_event_carries_the_actor_passed_in():
    key = full_history()
    events = key.pending_events
    principals = [e.actor.principal for e in events]
    assert principals == [f"arn:aws:iam::{ACCOUNT}:user/u{i}" for i in range(len(events) - 1)] + [
        principals[-2]  # KeyDeleted and KeyMaterialShredded are both the scheduler's
    ]
    assert all(isinstance(e.actor, Actor) for e in events)
    assert {type(e).__name__ for e in events} == {
        "KeyCreated", "DescriptionUpdated", "KeyDisabled", "KeyEnabled", "TagsAdded",
        "TagsRemoved", "KeyPolicyPut", "KeyRotationEnabled", "KeyMaterialRotated",
        "KeyRotationDisabled", "KeyDeletionScheduled", "KeyDeletionCancelled", "KeyDeleted",
        "KeyMaterialShredded",
    }


def test_actor_recorded_per_command():
    key = new_key(actor=ALICE)
    key.disable(BOB)
    key.schedule_deletion(7, T0, SERVICE)
    actors = [e.actor for e in key.pending_events]
    assert actors == [ALICE, BOB, SERVICE]


def test_events_replay_in_memory_to_identical_state():
    key = full_history()
    events = key.collect_events()
    replayed = reduce(lambda aggregate, e: e.mutate(aggregate), events, None)
    assert type(replayed) is KmsKey
    assert state(replayed) == state(key)
    assert replayed.version == key.version == len(events)


def test_events_replay_through_ledger_to_identical_state(ledger):
    key = full_history()
    actors = [e.actor for e in key.pending_events]
    ledger.save(key)
    loaded = ledger.get_key(KEY_ID)
    assert loaded is not key
    assert state(loaded) == state(key)
    assert loaded.materials[material(1).key_material_id].sealed_material == material(
        1, RotationType.ON_DEMAND
    ).sealed_material
    assert loaded.key_state is KeyState.PENDING_DELETION and loaded.deleted and loaded.shredded
    stored = list(ledger.repository.event_store.get(KEY_ID))
    assert [e.actor for e in stored] == actors


def test_actor_survives_ledger_round_trip(ledger):
    key = new_key(actor=ALICE)
    key.disable(BOB)
    ledger.save(key)
    stored = list(ledger.repository.event_store.get(KEY_ID))
    assert [e.actor for e in stored] == [ALICE, BOB]
    assert ledger.get_key(KEY_ID).key_state is KeyState.DISABLED


def test_ledger_replay_of_rotated_key_resolves_all_materials(ledger):
    key = new_key()
    for n in range(1, 6):
        key.rotate_on_demand(material(n, RotationType.ON_DEMAND), T0, ALICE)
    ledger.save(key)
    loaded = ledger.get_key(KEY_ID)
    assert loaded.current_key_material_id == material(5).key_material_id
    for n in range(6):
        assert loaded.materials[material(n).key_material_id].sealed_material == material(n).sealed_material
    assert loaded.on_demand_rotations == 5
    assert state(loaded) == state(key)


def test_a_snapshot_from_before_keys_stored_their_arn_restores_it():
    key = new_key()
    snapshot = KmsKey.Snapshot.take(key)
    del snapshot.state["arn"]
    restored = snapshot.mutate(None)
    assert restored.arn == key.arn == f"arn:aws:kms:{key.region}:{key.account}:key/{key.id}"
