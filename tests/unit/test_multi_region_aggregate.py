"""Multi-Region keys in the KmsKey aggregate: the shared/independent split, the transient
states, epochs and fencing. Pure domain: no store, no crypto (material is fake sealed bytes)."""

from __future__ import annotations

from datetime import UTC, datetime

import pytest

from domain import errors
from domain.key import KmsKey
from domain.key_states import KeyState
from domain.multi_region import MULTI_REGION_KEY_ID, SharedProperties, new_multi_region_key_id
from domain.policy import default_key_policy
from domain.values import Actor, BackingKey, RotationType

ACCOUNT = "111122223333"
EAST, WEST, THIRD = "us-east-1", "us-west-2", "eu-west-1"
T0 = datetime(2030, 1, 1, 12, 0, tzinfo=UTC)
ALICE = Actor("arn:aws:iam::111122223333:user/alice", "AKIAALICE", "req-1")
KEY_ID = "mrk-" + "ab" * 16


def material(n: int, rotation_type: RotationType | None = None) -> BackingKey:
    return BackingKey(f"{n:064x}", b"sealed-" + bytes([n]) * 8, T0, rotation_type)


def primary() -> KmsKey:
    return KmsKey.create(key_id=KEY_ID, account=ACCOUNT, region=EAST, description="east",
                         policy=default_key_policy(ACCOUNT), tags={"team": "a"},
                         material=material(1), now=T0, actor=ALICE, multi_region=True)


def replica_of(key: KmsKey, region: str = WEST) -> KmsKey:
    shared = SharedProperties(key.id, key.account, key.key_spec, key.key_usage, key.origin,
                              key.primary_region, key.replica_regions)
    return KmsKey.replica(primary=shared, region=region, description="west",
                          policy=default_key_policy(ACCOUNT), tags={}, now=T0, actor=ALICE)


def synchronize(replica: KmsKey, key: KmsKey, materials: list[BackingKey]) -> None:
    replica.synchronize(materials, key.current_key_material_id, key.rotation_enabled,
                        key.rotation_period_days, key.next_rotation_date, list(key.replica_regions),
                        ALICE, primary_region=key.region, epoch=key.epoch)


def replay(key: KmsKey) -> KmsKey:
    events = key.collect_events()
    rebuilt = None
    for event in events:
        rebuilt = event.mutate(rebuilt)
    return rebuilt


def test_multi_region_key_ids_are_mrk_and_32_hex_digits():
    ids = {new_multi_region_key_id() for _ in range(100)}
    assert len(ids) == 100 and all(MULTI_REGION_KEY_ID.fullmatch(i) for i in ids)


def test_a_primary_and_its_replica_split_shared_from_independent_properties():
    key = primary()
    key.add_replica(WEST, "west", default_key_policy(ACCOUNT), {"site": "w"}, ALICE)
    replica = replica_of(key)
    assert replica.key_state is KeyState.CREATING and replica.is_replica
    assert (replica.id, replica.key_spec, replica.key_usage, replica.origin) == (
        key.id, key.key_spec, key.key_usage, key.origin)
    synchronize(replica, key, list(key.materials.values()))
    assert replica.key_state is KeyState.ENABLED
    assert replica.current_key_material_id == key.current_key_material_id
    # independent: description, tags, policy, enabled state stay each key's own
    assert (replica.description, replica.tags) == ("west", {})
    key.disable(ALICE)
    assert replica.key_state is KeyState.ENABLED
    replica.update_description("changed", ALICE)
    assert key.description == "east"


def test_a_replica_refuses_shared_property_changes_and_replication():
    key = primary()
    key.add_replica(WEST, "", default_key_policy(ACCOUNT), {}, ALICE)
    replica = replica_of(key)
    synchronize(replica, key, list(key.materials.values()))
    for change in (lambda: replica.enable_rotation(None, T0, ALICE),
                   lambda: replica.disable_rotation(ALICE),
                   lambda: replica.check_on_demand_rotation(T0),
                   lambda: replica.add_replica(THIRD, "", default_key_policy(ACCOUNT), {}, ALICE)):
        with pytest.raises(errors.UnsupportedOperationException):
            change()
    assert not replica.rotation_due(datetime(2099, 1, 1, tzinfo=UTC))  # the primary rotates


def test_replicate_key_refusals_and_state_rule():
    key = primary()
    with pytest.raises(errors.AlreadyExistsException):
        key.add_replica(EAST, "", default_key_policy(ACCOUNT), {}, ALICE)
    key.add_replica(WEST, "", default_key_policy(ACCOUNT), {}, ALICE)
    with pytest.raises(errors.AlreadyExistsException):
        key.add_replica(WEST, "", default_key_policy(ACCOUNT), {}, ALICE)
    key.disable(ALICE)
    with pytest.raises(errors.DisabledException):
        key.add_replica(THIRD, "", default_key_policy(ACCOUNT), {}, ALICE)


def test_shared_materials_are_tracked_per_region_and_survive_replay():
    key = primary()
    key.add_replica(WEST, "", default_key_policy(ACCOUNT), {}, ALICE)
    assert [m.key_material_id for m in key.unshared_materials(WEST)] == [material(1).key_material_id]
    key.share_properties({WEST: [material(1)]}, ALICE)
    assert key.unshared_materials(WEST) == []
    key.rotate_on_demand(material(2, RotationType.ON_DEMAND), T0, ALICE)
    assert [m.key_material_id for m in key.unshared_materials(WEST)] == [material(2).key_material_id]
    rebuilt = replay(key)
    assert rebuilt.replica_regions == (WEST,) and rebuilt.shared_material_ids == key.shared_material_ids


def test_a_primary_with_replicas_waits_in_pending_replica_deletion():
    key = primary()
    key.add_replica(WEST, "", default_key_policy(ACCOUNT), {}, ALICE)
    key.schedule_deletion(7, T0, ALICE)
    assert key.key_state is KeyState.PENDING_REPLICA_DELETION and key.deletion_date is None
    with pytest.raises(errors.KMSInvalidStateException, match="is pending replica deletion"):
        key.check("Encrypt")
    key.remove_replica(WEST, T0, ALICE)
    assert key.key_state is KeyState.PENDING_DELETION
    assert key.deletion_date is not None and (key.deletion_date - T0).days == 7


def test_update_primary_region_and_promotion_raise_the_epoch():
    key = primary()
    key.add_replica(WEST, "", default_key_policy(ACCOUNT), {}, ALICE)
    replica = replica_of(key)
    synchronize(replica, key, list(key.materials.values()))
    key.update_primary_region(WEST, ALICE)
    assert key.is_replica and key.key_state is KeyState.UPDATING and key.epoch == 1
    replica.promote([EAST], ALICE, epoch=1)
    assert replica.is_primary and replica.epoch == 1 and replica.replica_regions == (EAST,)
    key.primary_region_update_completed(ALICE)
    assert key.key_state is KeyState.ENABLED


def test_an_old_primary_is_fenced_by_a_newer_epoch():
    key = primary()
    key.add_replica(WEST, "", default_key_policy(ACCOUNT), {}, ALICE)
    replica = replica_of(key)
    synchronize(replica, key, list(key.materials.values()))
    replica.promote_in_place_of_primary(ALICE)  # the east Region is gone
    assert replica.is_primary and replica.epoch == 1 and replica.replica_regions == (EAST,)
    key.demote(WEST, 0, ALICE)  # not newer: nothing happens
    assert key.is_primary
    key.demote(WEST, replica.epoch, ALICE)
    assert key.is_replica and key.primary_region == WEST and key.epoch == 1
    with pytest.raises(errors.UnsupportedOperationException):
        key.check_on_demand_rotation(T0)  # fenced: never a shared-property change of its own
    assert replay(key).is_replica


def _set_of_three() -> KmsKey:
    key = primary()
    for region in (WEST, THIRD):
        key.add_replica(region, "", default_key_policy(ACCOUNT), {}, ALICE)
    return key


def test_a_rotated_primary_encrypts_with_the_new_material_once_every_replica_holds_it():
    """AWS: KMS "does not encrypt with the new material until it is present in the primary
    and every replica"."""
    key = _set_of_three()
    first, second = material(1).key_material_id, material(2).key_material_id
    key.rotate_on_demand(material(2, RotationType.ON_DEMAND), T0, ALICE)
    assert (key.current_key_material_id, key.pending_material_id) == (first, second)
    assert second in key.materials and key.on_demand_rotations == 1  # (it decrypts already)
    assert key.replicas_lacking_pending() == [WEST, THIRD]
    assert key.record_replica_materials(WEST, [first], ALICE) is False  # not the new one
    assert key.record_replica_materials(WEST, [second], ALICE) is False  # THIRD lacks it
    assert key.record_replica_materials(WEST, [second], ALICE) is False  # (noted once)
    assert (key.current_key_material_id, key.replicas_lacking_pending()) == (first, [THIRD])
    assert key.record_replica_materials(THIRD, [second], ALICE) is True
    assert (key.current_key_material_id, key.pending_material_id) == (second, None)
    assert [type(e).__name__ for e in key.pending_events][-3:] == [
        "ReplicaHoldsPendingMaterial", "ReplicaHoldsPendingMaterial",
        "MultiRegionRotationCompleted"]
    rebuilt = replay(key)
    assert (rebuilt.current_key_material_id, rebuilt.pending_material_id) == (second, None)


def test_a_rotation_while_another_waits_replaces_it_and_automatic_rotation_waits():
    key = _set_of_three()
    key.enable_rotation(90, T0, ALICE)
    key.rotate_on_demand(material(2, RotationType.ON_DEMAND), T0, ALICE)
    key.record_replica_materials(WEST, [material(2).key_material_id], ALICE)
    assert not key.rotation_due(datetime(2099, 1, 1, tzinfo=UTC))  # one rotation at a time
    key.rotate_on_demand(material(3, RotationType.ON_DEMAND), T0, ALICE)
    assert key.pending_material_id == material(3).key_material_id
    assert key.replicas_lacking_pending() == [WEST, THIRD]  # WEST held the replaced one
    for region in (WEST, THIRD):
        key.record_replica_materials(region, [material(3).key_material_id], ALICE)
    assert key.current_key_material_id == material(3).key_material_id
    assert material(2).key_material_id in key.materials  # never current, still decrypts
    assert key.rotation_due(datetime(2099, 1, 1, tzinfo=UTC))


def test_a_rotation_completes_when_the_last_replica_lacking_its_material_leaves_the_set():
    key = _set_of_three()
    key.rotate_on_demand(material(2, RotationType.ON_DEMAND), T0, ALICE)
    key.record_replica_materials(WEST, [material(2).key_material_id], ALICE)
    key.remove_replica(THIRD, T0, ALICE)
    assert (key.current_key_material_id, key.pending_material_id) == (
        material(2).key_material_id, None)


def test_a_primary_without_replicas_and_one_demoted_wait_for_no_replica():
    alone = primary()
    alone.rotate_on_demand(material(2, RotationType.ON_DEMAND), T0, ALICE)
    assert alone.current_key_material_id == material(2).key_material_id
    key = _set_of_three()
    key.rotate_on_demand(material(2, RotationType.ON_DEMAND), T0, ALICE)
    key.demote(WEST, 1, ALICE, T0)  # its successor never heard of the waiting material
    assert key.pending_material_id is None and key.replicas_lacking_pending() == []
    assert key.current_key_material_id == material(1).key_material_id


def test_a_rotation_stored_before_rotations_could_wait_made_its_material_current():
    key = _set_of_three()
    key.rotate_on_demand(material(2, RotationType.ON_DEMAND), T0, ALICE)
    events = key.collect_events()
    assert type(events[-1]).__name__ == "KeyMaterialRotated" and events[-1].pending is True
    del events[-1].__dict__["pending"]  # as older versions stored it
    rebuilt = None
    for event in events:
        rebuilt = event.mutate(rebuilt)
    assert (rebuilt.current_key_material_id, rebuilt.pending_material_id) == (
        material(2).key_material_id, None)


def test_a_new_primary_sends_every_replica_every_material_and_old_promotions_replay_as_stored():
    """What each replica holds is not known to a new primary (one made while its Region was
    out of reach holds nothing): its replicas are sent every version again. That is an event
    of its own after PromotedToPrimary, so a stored PromotedToPrimary (and a snapshot taken
    after one by an earlier release) replays as it always did (found in a review)."""
    key = primary()
    key.add_replica(WEST, "", default_key_policy(ACCOUNT), {}, ALICE)
    replica = replica_of(key)
    synchronize(replica, key, list(key.materials.values()))
    replica.collect_events()
    replica.promote([EAST, "eu-west-1"], ALICE, epoch=1)
    promoted, unknown = replica.collect_events()
    assert [type(e).__name__ for e in (promoted, unknown)] == [
        "PromotedToPrimary", "ReplicaMaterialsUnknown"]
    assert [m.key_material_id for m in replica.unshared_materials("eu-west-1")] == [
        material(1).key_material_id]
    before = replay_from(replica_of(key), synchronize_with=key)
    promoted.mutate(before)  # an earlier release's promotion: every replica taken to hold all
    assert before.shared_material_ids == {
        EAST: [material(1).key_material_id], "eu-west-1": [material(1).key_material_id]}


def replay_from(replica: KmsKey, synchronize_with: KmsKey) -> KmsKey:
    synchronize(replica, synchronize_with, list(synchronize_with.materials.values()))
    return replay(replica)
