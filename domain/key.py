"""The KMS key aggregate: its state is rebuilt from its events, which are the audit trail.

Public methods check the business rules (the key-state table, limits) and then call a
private ``@event`` method whose body only changes state, so replaying history never
re-runs a check or a non-deterministic call. Every event records its :class:`Actor`.
"""

from __future__ import annotations

from datetime import datetime, timedelta

from eventsourcing.domain import event

from domain import errors
from domain.base import StrAggregate
from domain.key_states import KEY_STATE_TABLE, KeyState, Outcome, check_key_state
from domain.policy import DEFAULT_POLICY_NAME, validate_key_policy
from domain.values import (
    Actor,
    BackingKey,
    KeyMaterialState,
    KeySpec,
    KeyUsage,
    Origin,
    RotationType,
    key_arn,
)

MIN_PENDING_WINDOW_DAYS, MAX_PENDING_WINDOW_DAYS, DEFAULT_PENDING_WINDOW_DAYS = 7, 30, 30
MIN_ROTATION_PERIOD_DAYS, MAX_ROTATION_PERIOD_DAYS, DEFAULT_ROTATION_PERIOD_DAYS = 90, 2560, 365
MAX_ON_DEMAND_ROTATIONS = 25
MAX_TAGS_PER_KEY = 50


class KmsKey(StrAggregate):
    """A KMS key. ``id`` is the KMS key id."""

    @event("KeyCreated")
    def __init__(
        self,
        *,
        id: str,
        account: str,
        region: str,
        description: str,
        key_spec: str,
        key_usage: str,
        origin: str,
        policy: str,
        tags: dict[str, str],
        material: BackingKey,
        created_at: datetime,
        actor: Actor,
    ) -> None:
        self.account = account
        self.region = region
        self.description = description
        self.key_spec = key_spec
        self.key_usage = key_usage
        self.origin = origin
        self.policy = policy
        self.tags = dict(tags)
        self.creation_date = created_at
        self.key_state = KeyState.ENABLED
        self.deletion_date: datetime | None = None
        self.pending_window_days: int | None = None
        self.deleted = False
        self.shredded = False
        self.rotation_enabled = False
        self.rotation_period_days: int | None = None
        self.next_rotation_date: datetime | None = None
        self.on_demand_rotations = 0
        self.materials: dict[str, BackingKey] = {material.key_material_id: material}
        self.current_key_material_id = material.key_material_id

    # -- factories and derived values ---------------------------------------------------------

    @classmethod
    def create(
        cls,
        *,
        key_id: str,
        account: str,
        region: str,
        description: str,
        policy: str,
        tags: dict[str, str],
        material: BackingKey,
        now: datetime,
        actor: Actor,
    ) -> KmsKey:
        validate_key_policy(policy)
        _check_tags(tags)
        return cls(
            id=key_id,
            account=account,
            region=region,
            description=description,
            key_spec=KeySpec.SYMMETRIC_DEFAULT.value,
            key_usage=KeyUsage.ENCRYPT_DECRYPT.value,
            origin=Origin.AWS_KMS.value,
            policy=policy,
            tags=tags,
            material=material,
            created_at=now,
            actor=actor,
        )

    @property
    def key_id(self) -> str:
        return self.id

    @property
    def arn(self) -> str:
        return key_arn(self.region, self.account, self.id)

    @property
    def enabled(self) -> bool:
        return self.key_state is KeyState.ENABLED

    @property
    def current_material(self) -> BackingKey:
        return self.materials[self.current_key_material_id]

    def material_state(self, key_material_id: str) -> KeyMaterialState:
        if key_material_id == self.current_key_material_id:
            return KeyMaterialState.CURRENT
        return KeyMaterialState.NON_CURRENT

    def check(self, operation: str) -> None:
        """Apply the key-state table for ``operation``."""
        if self.deleted:
            raise errors.NotFoundException(f"Key '{self.arn}' does not exist")
        if KEY_STATE_TABLE[operation].get(self.key_state) is not Outcome.ALLOWED:
            check_key_state(operation, self.key_state, self.arn)

    def rotation_is_enabled(self) -> bool:
        """What GetKeyRotationStatus reports: false while the key is pending deletion."""
        return self.rotation_enabled and self.key_state is not KeyState.PENDING_DELETION

    def rotation_due(self, now: datetime) -> bool:
        return (
            not self.deleted
            and self.rotation_enabled
            and self.key_state is KeyState.ENABLED
            and self.next_rotation_date is not None
            and self.next_rotation_date <= now
        )

    def deletion_due(self, now: datetime) -> bool:
        return (
            not self.deleted
            and self.key_state is KeyState.PENDING_DELETION
            and self.deletion_date is not None
            and self.deletion_date <= now
        )

    # -- commands -----------------------------------------------------------------------------

    def update_description(self, description: str, actor: Actor) -> None:
        self.check("UpdateKeyDescription")
        self._update_description(description=description, actor=actor)

    @event("DescriptionUpdated")
    def _update_description(self, description: str, actor: Actor) -> None:
        self.description = description

    def enable(self, actor: Actor) -> None:
        self.check("EnableKey")
        if self.key_state is not KeyState.ENABLED:
            self._enable(actor=actor)

    @event("KeyEnabled")
    def _enable(self, actor: Actor) -> None:
        self.key_state = KeyState.ENABLED

    def disable(self, actor: Actor) -> None:
        self.check("DisableKey")
        if self.key_state is not KeyState.DISABLED:
            self._disable(actor=actor)

    @event("KeyDisabled")
    def _disable(self, actor: Actor) -> None:
        self.key_state = KeyState.DISABLED

    def schedule_deletion(self, window_days: int | None, now: datetime, actor: Actor) -> None:
        self.check("ScheduleKeyDeletion")
        days = pending_window_days(window_days)
        self._schedule_deletion(
            deletion_date=now + timedelta(days=days), pending_window_days=days, actor=actor
        )

    @event("KeyDeletionScheduled")
    def _schedule_deletion(self, deletion_date: datetime, pending_window_days: int, actor: Actor):
        self.key_state = KeyState.PENDING_DELETION
        self.deletion_date = deletion_date
        self.pending_window_days = pending_window_days

    def cancel_deletion(self, now: datetime, actor: Actor) -> None:
        self.check("CancelKeyDeletion")
        if self.deletion_due(now):
            # The window has passed: the deletion is under way and its material may already
            # be shredded, so it can no longer be cancelled.
            raise errors.KMSInvalidStateException(f"{self.arn} is pending deletion.")
        self._cancel_deletion(actor=actor)

    @event("KeyDeletionCancelled")
    def _cancel_deletion(self, actor: Actor) -> None:
        self.key_state = KeyState.DISABLED
        self.deletion_date = None
        self.pending_window_days = None

    def complete_deletion(self, now: datetime, actor: Actor) -> None:
        """The pending window has passed: the key is deleted (its material is shredded next).

        Deletion is recorded before the material is destroyed, so a concurrent change (a
        CancelKeyDeletion that got in first) makes this write fail instead of leaving a live
        key without material.
        """
        if not self.deletion_due(now):
            raise errors.KMSInvalidStateException(f"{self.arn} is not due for deletion.")
        self._delete(actor=actor)

    @property
    def shred_pending(self) -> bool:
        """Deleted, but the destruction of its data-encryption key is not yet recorded."""
        return self.deleted and not self.shredded

    def record_shredded(self, actor: Actor) -> None:
        """The key's data-encryption key has been destroyed."""
        if not self.shred_pending:
            raise errors.KMSInvalidStateException(f"{self.arn} is not awaiting shredding.")
        self._shred(key_material_ids=sorted(self.materials), actor=actor)

    @event("KeyDeleted")
    def _delete(self, actor: Actor) -> None:
        self.deleted = True

    @event("KeyMaterialShredded")
    def _shred(self, key_material_ids: list[str], actor: Actor) -> None:
        """The key's data-encryption key was destroyed: the sealed material is gone for good."""
        self.shredded = True

    # -- rotation -----------------------------------------------------------------------------

    def enable_rotation(self, period_days: int | None, now: datetime, actor: Actor) -> None:
        self.check("EnableKeyRotation")
        days = rotation_period_days(period_days)
        if self.rotation_enabled and self.rotation_period_days == days:
            return
        self._enable_rotation(
            rotation_period_days=days, next_rotation_date=now + timedelta(days=days), actor=actor
        )

    @event("KeyRotationEnabled")
    def _enable_rotation(self, rotation_period_days: int, next_rotation_date: datetime, actor: Actor):
        self.rotation_enabled = True
        self.rotation_period_days = rotation_period_days
        self.next_rotation_date = next_rotation_date

    def disable_rotation(self, actor: Actor) -> None:
        self.check("DisableKeyRotation")
        if self.rotation_enabled:
            self._disable_rotation(actor=actor)

    @event("KeyRotationDisabled")
    def _disable_rotation(self, actor: Actor) -> None:
        self.rotation_enabled = False
        self.next_rotation_date = None

    def rotate_on_demand(self, material: BackingKey, actor: Actor) -> None:
        self.check("RotateKeyOnDemand")
        if self.on_demand_rotations >= MAX_ON_DEMAND_ROTATIONS:
            raise errors.LimitExceededException(
                f"The on-demand rotation limit of {MAX_ON_DEMAND_ROTATIONS} has been reached "
                f"for {self.arn}."
            )
        self._rotate(material=material, next_rotation_date=self.next_rotation_date, actor=actor)

    def rotate_automatically(self, material: BackingKey, now: datetime, actor: Actor) -> None:
        if not self.rotation_due(now):
            raise errors.KMSInvalidStateException(f"{self.arn} is not due for rotation.")
        assert self.rotation_period_days is not None
        self._rotate(
            material=material,
            next_rotation_date=now + timedelta(days=self.rotation_period_days),
            actor=actor,
        )

    @event("KeyMaterialRotated")
    def _rotate(self, material: BackingKey, next_rotation_date: datetime | None, actor: Actor):
        self.materials[material.key_material_id] = material
        self.current_key_material_id = material.key_material_id
        self.next_rotation_date = next_rotation_date
        if material.rotation_type is RotationType.ON_DEMAND:
            self.on_demand_rotations += 1

    def rotations(self) -> list[BackingKey]:
        """Material created by rotation, oldest first (ListKeyRotations)."""
        return [m for m in self.materials.values() if m.rotation_type is not None]

    # -- tags and policy ----------------------------------------------------------------------

    def tag(self, tags: dict[str, str], actor: Actor) -> None:
        self.check("TagResource")
        _check_tags(tags)
        if len(set(self.tags) | set(tags)) > MAX_TAGS_PER_KEY:
            raise errors.LimitExceededException(
                f"The request was rejected because {self.arn} would have more than "
                f"{MAX_TAGS_PER_KEY} tags."
            )
        self._add_tags(tags=tags, actor=actor)

    @event("TagsAdded")
    def _add_tags(self, tags: dict[str, str], actor: Actor) -> None:
        self.tags.update(tags)

    def untag(self, tag_keys: list[str], actor: Actor) -> None:
        self.check("UntagResource")
        for tag_key in tag_keys:
            if tag_key.startswith("aws:"):
                raise errors.TagException("Tag keys beginning with 'aws:' are reserved.")
        self._remove_tags(tag_keys=list(tag_keys), actor=actor)

    @event("TagsRemoved")
    def _remove_tags(self, tag_keys: list[str], actor: Actor) -> None:
        for tag_key in tag_keys:
            self.tags.pop(tag_key, None)

    def put_policy(self, policy_name: str, policy: str, actor: Actor) -> None:
        self.check("PutKeyPolicy")
        check_policy_name(policy_name)
        validate_key_policy(policy)
        self._put_policy(policy=policy, actor=actor)

    @event("KeyPolicyPut")
    def _put_policy(self, policy: str, actor: Actor) -> None:
        self.policy = policy


def _days_in_range(value: int | None, default: int, low: int, high: int, member: str) -> int:
    days = default if value is None else value
    if not low <= days <= high:
        bound = (
            f"greater than or equal to {low}" if days < low else f"less than or equal to {high}"
        )
        raise errors.ValidationException(
            f"1 validation error detected: Value '{days}' at '{member}' failed to satisfy "
            f"constraint: Member must have value {bound}"
        )
    return days


def pending_window_days(value: int | None) -> int:
    """ScheduleKeyDeletion's window: 7..30 days, default 30 (stricter than the model)."""
    return _days_in_range(
        value, DEFAULT_PENDING_WINDOW_DAYS, MIN_PENDING_WINDOW_DAYS, MAX_PENDING_WINDOW_DAYS,
        "pendingWindowInDays",
    )


def rotation_period_days(value: int | None) -> int:
    """EnableKeyRotation's period: 90..2560 days, default 365."""
    return _days_in_range(
        value, DEFAULT_ROTATION_PERIOD_DAYS, MIN_ROTATION_PERIOD_DAYS, MAX_ROTATION_PERIOD_DAYS,
        "rotationPeriodInDays",
    )


def check_policy_name(policy_name: str) -> None:
    if policy_name != DEFAULT_POLICY_NAME:
        raise errors.NotFoundException("No such policy exists")


def _check_tags(tags: dict[str, str]) -> None:
    for tag_key in tags:
        if tag_key.startswith("aws:"):
            raise errors.TagException("Tag keys beginning with 'aws:' are reserved.")
    if len(tags) > MAX_TAGS_PER_KEY:
        raise errors.TagException(f"A KMS key can have at most {MAX_TAGS_PER_KEY} tags.")
