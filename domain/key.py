"""The KMS key aggregate: its state is rebuilt from its events, which are the audit trail.

Public methods check the business rules (the key-state table, limits) and then call a
private ``@event`` method whose body only changes state, so replaying history never
re-runs a check or a non-deterministic call. Every event records its :class:`Actor`.
"""

from __future__ import annotations

from collections.abc import Iterable, Mapping
from dataclasses import dataclass, replace
from datetime import datetime, timedelta

from eventsourcing.domain import event

from domain import messages
from domain.base import StrAggregate, StrSnapshot
from domain.grants import (
    MAX_GRANTS_PER_KEY,
    Grant,
    GrantConstraints,
    check_grant_constraints,
    check_grant_id,
    check_grant_operations,
    check_grantee,
)
from domain.key_specs import KeyUsage, check_algorithm, check_creatable, check_usage, rotatable
from domain.key_states import ALLOWED_STATES, KeyState, check_key_state
from domain.messages import Import, MultiRegion, NotFound, Rotation, Tags
from domain.multi_region import SharedProperties
from domain.policy import DEFAULT_POLICY_NAME, validate_key_policy
from domain.principals import Principal
from domain.values import (
    Actor,
    BackingKey,
    ExpirationModel,
    KeyMaterialState,
    Origin,
    RotationType,
    key_arn,
)

MIN_PENDING_WINDOW_DAYS, MAX_PENDING_WINDOW_DAYS, DEFAULT_PENDING_WINDOW_DAYS = 7, 30, 30
MIN_ROTATION_PERIOD_DAYS, MAX_ROTATION_PERIOD_DAYS, DEFAULT_ROTATION_PERIOD_DAYS = 90, 2560, 365
MAX_ON_DEMAND_ROTATIONS = 25
#: RotateKeyOnDemand is refused this close to a scheduled automatic rotation
AUTOMATIC_ROTATION_GUARD = timedelta(minutes=20)
MAX_TAGS_PER_KEY = 50
IMPORT_PARAMETERS_VALID_FOR = timedelta(hours=24)
MAX_IMPORT_VALIDITY = timedelta(days=365)


@dataclass(frozen=True)
class ImportParameters:
    """A wrapping key pair and import token issued by GetParametersForImport."""

    wrapping_key_spec: str
    wrapping_algorithm: str
    sealed_wrapping_key: bytes  # the private key, sealed like key material
    valid_to: datetime


@dataclass(frozen=True)
class ImportedMaterial:
    """What the ledger knows about one version of imported key material."""

    key_material_id: str
    description: str
    expiration_model: ExpirationModel
    valid_to: datetime | None
    imported: bool  # False: deleted or expired (ImportState PENDING_IMPORT)
    pending_rotation: bool


class KmsKey(StrAggregate):
    """A KMS key. ``id`` is the KMS key id."""

    @dataclass(frozen=True)
    class Snapshot(StrSnapshot):
        def mutate(self, _: None) -> KmsKey:
            key = super().mutate(_)
            # JSON keeps a StrEnum as a plain string: give the key its KeyState back
            key.key_state = KeyState(key.key_state)
            if "arn" not in key.__dict__:  # a snapshot from before keys stored their ARN
                key.arn = key_arn(key.region, key.account, key.id)
            if "grants" not in key.__dict__:  # a snapshot from before keys had grants
                key.grants = {}
            if "shared_material_ids" not in key.__dict__:  # from before multi-Region keys
                key.shared_material_ids = {}
            key.replica_regions = tuple(key.replica_regions)
            return key

    # keys (and snapshots) from before multi-Region keys are single-Region keys
    # (plain class attributes: annotations here would make them fields of KeyCreated)
    multi_region = False
    primary_region = None
    replica_regions = ()
    #: multi-Region keys: how many times the set's primary changed; a newer epoch fences an
    #: older primary (docs/regions.md, promote)
    epoch = 0
    #: a replica: the imported material ids of its set (it may import them as
    #: EXISTING_KEY_MATERIAL); a primary: which replica Regions imported each material
    set_imported_ids = ()
    replica_imports = None
    #: a multi-Region primary: the material version a rotation made that Encrypt does not use
    #: until every replica Region holds it (AWS: KMS "does not encrypt with the new material
    #: until it is present in the primary and every replica"), and the replica Regions that
    #: hold it so far (from their ledgers); None: no rotation waits
    pending_material_id = None
    pending_held_by = ()

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
        material: BackingKey | None,
        created_at: datetime,
        actor: Actor,
        multi_region: bool = False,
        primary_region: str | None = None,
        replica_regions: tuple[str, ...] | list[str] = (),
    ) -> None:
        self.account = account
        self.region = region
        self.arn = key_arn(region, account, id)  # read by every request: made once
        self.description = description
        self.key_spec = key_spec
        self.key_usage = key_usage
        self.origin = origin
        self.policy = policy
        self.tags = dict(tags)
        self.creation_date = created_at
        self.key_state = KeyState.ENABLED if material is not None else KeyState.PENDING_IMPORT
        self.multi_region = multi_region
        #: multi-Region keys: the Region of the set's primary key, and of its replicas
        self.primary_region = primary_region if multi_region else None
        self.replica_regions = tuple(replica_regions)
        #: a primary: the material versions shared with each replica Region so far
        self.shared_material_ids: dict[str, list[str]] = {}
        if multi_region and primary_region != region:
            self.key_state = KeyState.CREATING  # a replica: usable once its material arrived
        self.deletion_date: datetime | None = None
        self.pending_window_days: int | None = None
        self.deleted = False
        self.shredded = False
        self.rotation_enabled = False
        self.rotation_period_days: int | None = None
        self.next_rotation_date: datetime | None = None
        self.on_demand_rotations = 0
        #: the material versions present (imported material leaves when deleted or expired)
        self.materials: dict[str, BackingKey] = {}
        self.current_key_material_id: str | None = None
        if material is not None:
            self.materials[material.key_material_id] = material
            self.current_key_material_id = material.key_material_id
        #: import token's SHA-256 (hex) -> its parameters; imported material by id, oldest first
        self.import_parameters: dict[str, ImportParameters] = {}
        self.imports: dict[str, ImportedMaterial] = {}
        #: deleted imported material whose data key is not yet recorded as destroyed
        self.material_shred_pending: list[str] = []
        #: grant id -> grant, oldest first (retired and revoked grants are removed)
        self.grants: dict[str, Grant] = {}

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
        material: BackingKey | None,
        now: datetime,
        actor: Actor,
        key_spec: str = "SYMMETRIC_DEFAULT",
        key_usage: str = "ENCRYPT_DECRYPT",
        origin: str = Origin.AWS_KMS,
        multi_region: bool = False,
    ) -> KmsKey:
        """A new key (AWS's defaults: a symmetric encryption key with generated material)."""
        check_creatable(key_spec, key_usage)
        if (origin == Origin.EXTERNAL) != (material is None):
            raise ValueError("EXTERNAL keys start without material; others with it")
        validate_key_policy(policy)
        _check_tags(tags)
        return cls(
            id=key_id,
            account=account,
            region=region,
            description=description,
            key_spec=key_spec,
            key_usage=key_usage,
            origin=origin,
            policy=policy,
            tags=tags,
            material=material,
            created_at=now,
            actor=actor,
            multi_region=multi_region,
            primary_region=region if multi_region else None,
            replica_regions=(),
        )

    @classmethod
    def replica(cls, *, primary: SharedProperties, region: str, description: str, policy: str,
                tags: dict[str, str], now: datetime, actor: Actor) -> KmsKey:
        """A replica of a multi-Region primary key in ``region``: its independent properties
        are its own; it starts ``Creating`` and takes the shared ones with :meth:`synchronize`."""
        validate_key_policy(policy)
        _check_tags(tags)
        return cls(
            id=primary.key_id, account=primary.account, region=region, description=description,
            key_spec=primary.key_spec, key_usage=primary.key_usage, origin=primary.origin,
            policy=policy, tags=tags, material=None, created_at=now, actor=actor,
            multi_region=True, primary_region=primary.primary_region,
            replica_regions=primary.replica_regions,
        )

    def recreate_replica(self, *, primary: SharedProperties, description: str, policy: str,
                         tags: dict[str, str], now: datetime, actor: Actor) -> None:
        """ReplicateKey into a Region whose replica of the set was deleted: AWS recreates it
        with the same key id and the set's material (this key, deleted, comes back as a new
        replica: ``Creating``, none of its old independent properties)."""
        if not self.deleted:
            raise MultiRegion.NOT_REPLICA_INTERNAL(arn=self.arn)
        validate_key_policy(policy)
        _check_tags(tags)
        self._recreate_replica(description=description, policy=policy, tags=dict(tags),
                               created_at=now, account=self.account,
                               primary_region=primary.primary_region,
                               replica_regions=list(primary.replica_regions), actor=actor)

    @event("ReplicaRecreated")
    def _recreate_replica(self, description: str, policy: str, tags: dict[str, str],
                          created_at: datetime, account: str, primary_region: str,
                          replica_regions: list[str], actor: Actor) -> None:
        self.description, self.policy, self.tags = description, policy, dict(tags)
        self.creation_date = created_at
        self.key_state = KeyState.CREATING
        self.deleted = self.shredded = False
        self.deletion_date = self.pending_window_days = None
        self.rotation_enabled, self.rotation_period_days, self.next_rotation_date = False, None, None
        self.on_demand_rotations = 0
        self.materials, self.current_key_material_id = {}, None
        self.import_parameters, self.imports, self.material_shred_pending = {}, {}, []
        self.grants = {}
        self.multi_region, self.primary_region = True, primary_region
        self.replica_regions = tuple(replica_regions)

    @property
    def key_id(self) -> str:
        return self.id

    @property
    def enabled(self) -> bool:
        return self.key_state is KeyState.ENABLED

    @property
    def imported(self) -> bool:
        return self.origin == Origin.EXTERNAL

    @property
    def current_material(self) -> BackingKey:
        return self.materials[self.current_key_material_id]

    def material_state(self, key_material_id: str) -> KeyMaterialState:
        if key_material_id == self.current_key_material_id:
            return KeyMaterialState.CURRENT
        record = self.imports.get(key_material_id)
        if record is not None and record.pending_rotation:
            if self.replicas_missing(key_material_id):
                return KeyMaterialState.PENDING_MULTI_REGION_IMPORT_AND_ROTATION
            return KeyMaterialState.PENDING_ROTATION
        return KeyMaterialState.NON_CURRENT

    def replicas_missing(self, key_material_id: str) -> list[str]:
        """A multi-Region primary: the replica Regions that have not imported the material."""
        if not self.is_primary or not self.imported:
            return []
        have = set((self.replica_imports or {}).get(key_material_id, ()))
        return [r for r in self.replica_regions if r not in have]

    def check(self, operation: str) -> None:
        """Apply the key-state table for ``operation``."""
        if self.deleted:
            raise NotFound.KEY(arn=self.arn)
        if self.key_state not in ALLOWED_STATES[operation]:
            check_key_state(operation, self.key_state, self.arn)

    def check_use(self, operation: str, usage: KeyUsage, algorithm: str | None = None) -> None:
        """A cryptographic operation needs a key of ``usage`` and, if named, an algorithm the
        key spec allows (InvalidKeyUsageException otherwise)."""
        check_usage(self.key_usage, usage, self.arn, operation)
        if algorithm is not None:
            check_algorithm(self.key_spec, self.key_usage, algorithm)

    def rotation_is_enabled(self) -> bool:
        """What GetKeyRotationStatus reports: false while the key is pending deletion."""
        return self.rotation_enabled and self.key_state is not KeyState.PENDING_DELETION

    @property
    def is_primary(self) -> bool:
        """A multi-Region primary key (its shared properties are the set's)."""
        return self.multi_region and self.primary_region == self.region

    @property
    def is_replica(self) -> bool:
        return self.multi_region and self.primary_region != self.region

    @property
    def multi_region_key_type(self) -> str | None:
        """PRIMARY or REPLICA (MultiRegionConfiguration, kms:MultiRegionKeyType); None for a
        single-Region key."""
        if not self.multi_region:
            return None
        return "PRIMARY" if self.is_primary else "REPLICA"

    def rotation_due(self, now: datetime) -> bool:
        return (
            not self.deleted
            and not self.is_replica  # the primary rotates; its replicas follow
            and self.rotation_enabled
            and self.key_state is KeyState.ENABLED
            and self.next_rotation_date is not None
            and self.next_rotation_date <= now
            and self.pending_material_id is None  # (the last one waits for a replica)
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
        if self.is_primary and self.replica_regions:
            # AWS keeps a primary while it has replicas: its window starts when the last one
            # is deleted (PendingReplicaDeletion until then, with no deletion date)
            self._schedule_replica_deletion(pending_window_days=days, actor=actor)
            return
        self._schedule_deletion(
            deletion_date=now + timedelta(days=days), pending_window_days=days, actor=actor
        )

    @event("KeyReplicaDeletionScheduled")
    def _schedule_replica_deletion(self, pending_window_days: int, actor: Actor) -> None:
        self.key_state = KeyState.PENDING_REPLICA_DELETION
        self.deletion_date = None
        self.pending_window_days = pending_window_days

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
            raise messages.KeyState.PENDING_DELETION(arn=self.arn)
        self._cancel_deletion(actor=actor)

    @event("KeyDeletionCancelled")
    def _cancel_deletion(self, actor: Actor) -> None:
        # Disabled, as AWS leaves it; unless its imported material was deleted or expired
        # meanwhile: then the key waits for that material again.
        self.key_state = (
            KeyState.PENDING_IMPORT
            if self.imported and self.current_key_material_id not in self.materials
            else KeyState.DISABLED
        )
        self.deletion_date = None
        self.pending_window_days = None

    def complete_deletion(self, now: datetime, actor: Actor) -> None:
        """The pending window has passed: the key is deleted (its material is shredded next).

        Deletion is recorded before the material is destroyed, so a concurrent change (a
        CancelKeyDeletion that got in first) makes this write fail instead of leaving a live
        key without material.
        """
        if not self.deletion_due(now):
            raise messages.KeyState.NOT_DUE_FOR_DELETION(arn=self.arn)
        self._delete(actor=actor)

    @property
    def shred_pending(self) -> bool:
        """Deleted, but the destruction of its data-encryption key is not yet recorded."""
        return self.deleted and not self.shredded

    def record_shredded(self, actor: Actor) -> None:
        """The key's data-encryption key has been destroyed."""
        if not self.shred_pending:
            raise messages.KeyState.NOT_AWAITING_SHRED(what=self.arn)
        self._shred(key_material_ids=sorted(self.materials), actor=actor)

    @event("KeyDeleted")
    def _delete(self, actor: Actor) -> None:
        self.deleted = True
        self.grants = {}  # a deleted key's grants go with it

    @event("KeyMaterialShredded")
    def _shred(self, key_material_ids: list[str], actor: Actor) -> None:
        """The key's data-encryption key was destroyed: the sealed material is gone for good."""
        self.shredded = True

    # -- rotation -----------------------------------------------------------------------------

    def _check_rotatable(self, automatic: bool) -> None:
        if self.is_replica:
            raise MultiRegion.REPLICA_ROTATION(
                arn=self.arn, primary_arn=key_arn(self.primary_region or "", self.account, self.id))
        if automatic and (not rotatable(self.key_spec) or self.imported):
            raise Rotation.AUTOMATIC_UNSUPPORTED(arn=self.arn, key_spec=self.key_spec,
                                                 origin=self.origin)
        if not rotatable(self.key_spec):
            raise Rotation.ON_DEMAND_UNSUPPORTED()

    def enable_rotation(self, period_days: int | None, now: datetime, actor: Actor) -> None:
        self.check("EnableKeyRotation")
        self._check_rotatable(automatic=True)
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
        self._check_rotatable(automatic=True)
        if self.rotation_enabled:
            self._disable_rotation(actor=actor)

    @event("KeyRotationDisabled")
    def _disable_rotation(self, actor: Actor) -> None:
        self.rotation_enabled = False
        self.next_rotation_date = None

    def check_on_demand_rotation(self, now: datetime) -> None:
        self.check("RotateKeyOnDemand")
        self._check_rotatable(automatic=False)
        if self.on_demand_rotations >= MAX_ON_DEMAND_ROTATIONS:
            raise Rotation.ON_DEMAND_LIMIT(arn=self.arn)
        # "an automatic rotation of this key is currently in progress or scheduled to begin
        # within the next 20 minutes" (the model's ConflictException for RotateKeyOnDemand)
        if (self.rotation_enabled and self.next_rotation_date is not None
                and self.next_rotation_date - now <= AUTOMATIC_ROTATION_GUARD):
            raise Rotation.AUTOMATIC_ROTATION_DUE()

    def rotate_on_demand(self, material: BackingKey | None, now: datetime, actor: Actor) -> None:
        """Rotate to new material: generated (``material``) or, for imported keys, the
        material imported in PENDING_ROTATION state."""
        self.check_on_demand_rotation(now)
        if not self.imported:
            assert material is not None
            self._rotate(material=material, next_rotation_date=self.next_rotation_date,
                         actor=actor, pending=self._waits_for_replicas())
            return
        pending = [m for m in self.imports.values() if m.pending_rotation and m.imported]
        if not pending:
            raise Rotation.NO_PENDING_MATERIAL(arn=self.arn)
        missing = self.replicas_missing(pending[0].key_material_id)
        if missing:  # a set rotates once every replica has the material
            raise MultiRegion.PENDING_REPLICA_IMPORTS(
                arn=self.arn, material_id=pending[0].key_material_id, regions=", ".join(missing))
        self._rotate_to_imported(key_material_id=pending[0].key_material_id, rotation_date=now, actor=actor)

    @event("ImportedKeyMaterialRotated")
    def _rotate_to_imported(self, key_material_id: str, rotation_date: datetime, actor: Actor):
        self.imports[key_material_id] = replace(self.imports[key_material_id], pending_rotation=False)
        old = self.materials[key_material_id]
        self.materials[key_material_id] = replace(
            old, created=rotation_date, rotation_type=RotationType.ON_DEMAND
        )
        self.current_key_material_id = key_material_id
        self.on_demand_rotations += 1

    def rotate_automatically(self, material: BackingKey, now: datetime, actor: Actor) -> None:
        if not self.rotation_due(now):
            raise messages.KeyState.NOT_DUE_FOR_ROTATION(arn=self.arn)
        assert self.rotation_period_days is not None
        self._rotate(
            material=material,
            next_rotation_date=now + timedelta(days=self.rotation_period_days),
            actor=actor,
            pending=self._waits_for_replicas(),
        )

    def _waits_for_replicas(self) -> bool:
        """A multi-Region primary with replicas: new generated material is not used until
        every replica Region holds it (imported material has its own rule:
        :meth:`replicas_missing`)."""
        return self.is_primary and bool(self.replica_regions) and not self.imported

    @event("KeyMaterialRotated")
    def _rotate(self, material: BackingKey, next_rotation_date: datetime | None, actor: Actor,
                pending: bool = False):
        self.materials[material.key_material_id] = material
        if pending:  # (older events have no such field: they made the material current)
            # (a rotation while another waits: the newer material waits instead; the older
            # stays a version that decrypts, never used to encrypt)
            self.pending_material_id = material.key_material_id
            self.pending_held_by = ()
        else:
            self.current_key_material_id = material.key_material_id
        self.next_rotation_date = next_rotation_date
        if material.rotation_type is RotationType.ON_DEMAND:
            self.on_demand_rotations += 1

    def rotations(self) -> list[BackingKey]:
        """Material created by rotation, oldest first (ListKeyRotations)."""
        return [m for m in self.materials.values() if m.rotation_type is not None]

    def rotation_of(self, key_material_id: str) -> BackingKey | None:
        """The material version if a rotation made it current (and it is still present)."""
        material = self.materials.get(key_material_id)
        return material if material is not None and material.rotation_type is not None else None

    # -- multi-Region keys ----------------------------------------------------------------------

    def add_replica(self, region: str, description: str, policy: str, tags: dict[str, str],
                    actor: Actor) -> None:
        """ReplicateKey, on the primary: the replica's own (independent) properties travel
        in the event to ``region``, which creates the replica from the primary's stream."""
        self.check("ReplicateKey")
        if not self.multi_region:
            raise MultiRegion.NOT_MULTI_REGION(arn=self.arn)
        if not self.is_primary:
            raise MultiRegion.REPLICA_NOT_REPLICABLE(arn=self.arn)
        if region == self.region or region in self.replica_regions:
            raise MultiRegion.ALREADY_IN_REGION(arn=self.arn, region=region)
        validate_key_policy(policy)
        _check_tags(tags)
        self._add_replica(region=region, description=description, policy=policy, tags=dict(tags),
                          account=self.account, key_spec=self.key_spec, key_usage=self.key_usage,
                          origin=self.origin, actor=actor)

    @event("ReplicaAdded")
    def _add_replica(self, region: str, description: str, policy: str, tags: dict[str, str],
                     account: str, key_spec: str, key_usage: str, origin: str,
                     actor: Actor) -> None:
        self.replica_regions = (*self.replica_regions, region)

    def remove_replica(self, region: str, now: datetime, actor: Actor) -> None:
        """The replica in ``region`` was deleted (the primary learns it from that Region's
        stream); a primary pending replica deletion starts its window with the last one."""
        if not self.is_primary or region not in self.replica_regions or self.deleted:
            return
        last = len(self.replica_regions) == 1
        self._remove_replica(
            region=region,
            deletion_date=(now + timedelta(days=self.pending_window_days or 30)
                           if last and self.key_state is KeyState.PENDING_REPLICA_DELETION
                           else None),
            actor=actor,
        )
        self.complete_rotation_if_held(actor)

    def replicas_lacking_pending(self) -> list[str]:
        """The replica Regions that do not hold the material a rotation waits with yet."""
        if self.pending_material_id is None:
            return []
        return [r for r in self.replica_regions if r not in self.pending_held_by]

    def record_replica_materials(self, region: str, key_material_ids: list[str],
                                 actor: Actor) -> bool:
        """The replica in ``region`` applied a change of the set with these material versions
        (its MultiRegionKeySynchronized, read from its ledger). A rotation waiting for every
        replica completes when the last one holds its material; returns whether it did."""
        if (not self.is_primary or self.pending_material_id not in key_material_ids
                or region not in self.replicas_lacking_pending()):
            return False
        self._replica_holds_pending_material(region=region, actor=actor)
        return self.complete_rotation_if_held(actor)

    @event("ReplicaHoldsPendingMaterial")
    def _replica_holds_pending_material(self, region: str, actor: Actor) -> None:
        self.pending_held_by = (*self.pending_held_by, region)

    def complete_rotation_if_held(self, actor: Actor) -> bool:
        """The material a rotation waits with becomes current once every replica Region holds
        it (or the last lacking one left the set); returns whether it did."""
        if self.pending_material_id is None or self.replicas_lacking_pending():
            return False
        self._complete_rotation(key_material_id=self.pending_material_id, actor=actor)
        return True

    @event("MultiRegionRotationCompleted")
    def _complete_rotation(self, key_material_id: str, actor: Actor) -> None:
        self.current_key_material_id = key_material_id
        self.pending_material_id = None
        self.pending_held_by = ()

    @event("ReplicaRemoved")
    def _remove_replica(self, region: str, deletion_date: datetime | None, actor: Actor) -> None:
        self.replica_regions = tuple(r for r in self.replica_regions if r != region)
        self.shared_material_ids.pop(region, None)
        self.pending_held_by = tuple(r for r in self.pending_held_by if r != region)
        if deletion_date is not None:
            self.key_state = KeyState.PENDING_DELETION
            self.deletion_date = deletion_date

    def update_primary_region(self, region: str, actor: Actor) -> None:
        """UpdatePrimaryRegion, on the primary: the replica in ``region`` becomes the primary
        (when that Region applies this event) and this key a replica, ``Updating`` until the
        new primary's stream confirms it."""
        self.check("UpdatePrimaryRegion")
        if not self.is_primary:
            raise MultiRegion.NOT_PRIMARY(arn=self.arn)
        if region not in self.replica_regions:
            raise MultiRegion.NO_REPLICA_IN_REGION(arn=self.arn, region=region)
        self._update_primary_region(
            primary_region=region,
            replica_regions=[self.region, *(r for r in self.replica_regions if r != region)],
            epoch=self.epoch + 1,
            actor=actor,
        )

    @event("PrimaryRegionUpdated")
    def _update_primary_region(self, primary_region: str, replica_regions: list[str],
                               epoch: int, actor: Actor) -> None:
        self.primary_region = primary_region
        self.epoch = epoch
        self.replica_regions = tuple(replica_regions)
        self.shared_material_ids = {}
        self.pending_material_id, self.pending_held_by = None, ()
        self.key_state = KeyState.UPDATING

    def promote(self, replica_regions: list[str], actor: Actor, epoch: int | None = None) -> None:
        """This replica becomes the primary: its Region applies the old primary's
        ``PrimaryRegionUpdated`` (``epoch``: the one it names), or an operator promotes it
        while the primary's Region is gone (the next epoch: the old primary, when it comes
        back, reads it and rejoins as a replica). What each replica holds is not known here (a
        replica made while its Region was out of reach holds nothing): every one is sent every
        material version this key has, as it applies a change of the set
        (application.replication)."""
        if not self.is_replica or self.deleted:
            return
        self._promote(replica_regions=list(replica_regions),
                      epoch=self.epoch + 1 if epoch is None else epoch, actor=actor)
        self._replica_materials_unknown(actor=actor)

    @event("ReplicaMaterialsUnknown")
    def _replica_materials_unknown(self, actor: Actor) -> None:
        """(An event of its own, after PromotedToPrimary: that one's stored events, and the
        snapshots taken after them, keep meaning what they meant.)"""
        self.shared_material_ids = {}

    def promote_in_place_of_primary(self, actor: Actor) -> None:
        """``keyledger promote``: the primary's Region is gone; this replica takes over the set
        (its Region first, then the old primary's, then the other replicas). Not a replica
        pending deletion (the set's primary would be deleted under its replicas), nor one that
        holds no material yet (the set's primary could never encrypt, rotate or share)."""
        if not self.is_replica:
            raise MultiRegion.NOT_REPLICA_INTERNAL(arn=self.arn)
        if self.key_state is KeyState.PENDING_DELETION:
            raise MultiRegion.PROMOTE_PENDING_DELETION(arn=self.arn, region=self.region)
        if self.key_state in (KeyState.CREATING, KeyState.PENDING_IMPORT):
            raise MultiRegion.PROMOTE_NO_MATERIAL(arn=self.arn, state=self.key_state.value)
        replicas = [self.primary_region, *(r for r in self.replica_regions if r != self.region)]
        self.promote([r for r in replicas if r], actor)

    @event("PromotedToPrimary")
    def _promote(self, replica_regions: list[str], epoch: int, actor: Actor) -> None:
        self.primary_region = self.region
        self.epoch = epoch
        self.replica_regions = tuple(replica_regions)
        self.shared_material_ids = {r: list(self.materials) for r in replica_regions}

    def demote(self, primary_region: str, epoch: int, actor: Actor,
               now: datetime | None = None) -> None:
        """A primary that reads a newer epoch's primary (it was promoted while this one's Region
        was gone) rejoins the set as that primary's replica: fenced, it never again changes a
        shared property of its own. One pending replica deletion is a replica pending deletion
        from ``now``, in the window it was given (a replica waits for no other)."""
        if not self.is_primary or epoch <= self.epoch or self.deleted:
            return
        deletion_date = None
        if self.key_state is KeyState.PENDING_REPLICA_DELETION and now is not None:
            deletion_date = now + timedelta(days=self.pending_window_days or 30)
        self._demote(primary_region=primary_region, epoch=epoch, actor=actor,
                     deletion_date=deletion_date)

    @event("DemotedToReplica")
    def _demote(self, primary_region: str, epoch: int, actor: Actor,
                deletion_date: datetime | None = None) -> None:
        self.primary_region = primary_region
        self.epoch = epoch
        self.shared_material_ids = {}
        self.pending_material_id, self.pending_held_by = None, ()
        if deletion_date is not None:
            self.key_state = KeyState.PENDING_DELETION
            self.deletion_date = deletion_date

    def primary_region_update_completed(self, actor: Actor) -> None:
        """The new primary confirmed the change: this key, now a replica, is usable as before."""
        if self.key_state is KeyState.UPDATING:
            self._primary_region_update_completed(actor=actor)

    @event("PrimaryRegionUpdateCompleted")
    def _primary_region_update_completed(self, actor: Actor) -> None:
        self.key_state = KeyState.ENABLED

    def record_replica_import(self, region: str, key_material_id: str, actor: Actor) -> None:
        """The replica in ``region`` imported material of this primary (from its stream)."""
        if (not self.is_primary or region not in self.replica_regions
                or region in (self.replica_imports or {}).get(key_material_id, ())):
            return
        self._record_replica_import(region=region, key_material_id=key_material_id, actor=actor)

    @event("ReplicaMaterialImported")
    def _record_replica_import(self, region: str, key_material_id: str, actor: Actor) -> None:
        imports = {k: list(v) for k, v in (self.replica_imports or {}).items()}
        imports.setdefault(key_material_id, []).append(region)
        self.replica_imports = imports

    def unshared_materials(self, region: str) -> list[BackingKey]:
        """Material versions of this primary not yet shared with the replica in ``region``."""
        shared = set(self.shared_material_ids.get(region, ()))
        return [m for m in self.materials.values() if m.key_material_id not in shared]

    def share_properties(self, shares: dict[str, list[BackingKey]], actor: Actor) -> None:
        """The set's shared properties as they are now, for every replica Region to apply;
        ``shares``: per Region, material versions sealed for that Region's transport key."""
        if not self.is_primary:
            raise MultiRegion.NOT_PRIMARY_INTERNAL(arn=self.arn)
        self._share_properties(
            shares={region: list(materials) for region, materials in shares.items()},
            primary_region=self.region,
            replica_regions=list(self.replica_regions),
            current_key_material_id=self.current_key_material_id,
            rotation_enabled=self.rotation_enabled,
            rotation_period_days=self.rotation_period_days,
            next_rotation_date=self.next_rotation_date,
            epoch=self.epoch,
            imported_material_ids=list(self.imports),
            actor=actor,
        )

    @event("SharedPropertiesChanged")
    def _share_properties(self, shares: dict[str, list[BackingKey]], primary_region: str,
                          replica_regions: list[str],
                          current_key_material_id: str | None, rotation_enabled: bool,
                          rotation_period_days: int | None, next_rotation_date: datetime | None,
                          epoch: int, imported_material_ids: list[str], actor: Actor) -> None:
        for region, materials in shares.items():
            self.shared_material_ids.setdefault(region, []).extend(
                m.key_material_id for m in materials)

    def synchronize(self, materials: list[BackingKey], current_key_material_id: str | None,
                    rotation_enabled: bool, rotation_period_days: int | None,
                    next_rotation_date: datetime | None, replica_regions: list[str],
                    actor: Actor, primary_region: str | None = None, epoch: int = 0,
                    imported_material_ids: list[str] | None = None) -> None:
        """A replica takes the primary's shared properties (its material re-sealed here)."""
        if not self.is_replica:
            raise MultiRegion.NOT_REPLICA_INTERNAL(arn=self.arn)
        if self.deleted:
            return
        self._synchronize(materials=list(materials), current_key_material_id=current_key_material_id,
                          rotation_enabled=rotation_enabled,
                          rotation_period_days=rotation_period_days,
                          next_rotation_date=next_rotation_date,
                          replica_regions=list(replica_regions),
                          primary_region=primary_region or self.primary_region,
                          epoch=max(epoch, self.epoch),
                          imported_material_ids=list(imported_material_ids or ()), actor=actor)

    @event("MultiRegionKeySynchronized")
    def _synchronize(self, materials: list[BackingKey], current_key_material_id: str | None,
                     rotation_enabled: bool, rotation_period_days: int | None,
                     next_rotation_date: datetime | None, replica_regions: list[str],
                     primary_region: str, epoch: int, actor: Actor,
                     imported_material_ids: list[str] | None = None) -> None:
        self.primary_region = primary_region
        self.epoch = epoch
        self.set_imported_ids = tuple(imported_material_ids or ())
        current = self.imports.get(current_key_material_id or "")
        if current is not None and current.pending_rotation:  # the set rotated to it
            self.imports[current_key_material_id] = replace(current, pending_rotation=False)
        for material in materials:
            self.materials[material.key_material_id] = material
        if current_key_material_id is not None and (
                current_key_material_id in self.materials or self.imported):
            self.current_key_material_id = current_key_material_id
        self.rotation_enabled = rotation_enabled
        self.rotation_period_days = rotation_period_days
        self.next_rotation_date = next_rotation_date
        self.on_demand_rotations = sum(
            1 for m in self.materials.values() if m.rotation_type is RotationType.ON_DEMAND)
        self.replica_regions = tuple(replica_regions)
        # a replica is usable once its current material is here; until then it is creating,
        # or, with imported material (EXTERNAL origin), pending import. (A replica of AWS_KMS
        # origin that older code left pending import, synchronized before the material came,
        # leaves it the same way.)
        waiting = self.key_state is KeyState.CREATING or (
            self.key_state is KeyState.PENDING_IMPORT and not self.imported)
        if waiting:
            if self.current_key_material_id in self.materials:
                self.key_state = KeyState.ENABLED
            elif self.imported:
                self.key_state = KeyState.PENDING_IMPORT

    # -- imported key material ------------------------------------------------------------------

    def check_importable(self, operation: str) -> None:
        self.check(operation)
        if not self.imported:
            raise Import.NOT_EXTERNAL(arn=self.arn, origin=self.origin)

    def issue_import_parameters(
        self, token_digest: str, wrapping_key_spec: str, wrapping_algorithm: str,
        sealed_wrapping_key: bytes, now: datetime, actor: Actor,
    ) -> ImportParameters:
        self.check_importable("GetParametersForImport")
        self._issue_import_parameters(
            token_digest=token_digest,
            parameters=ImportParameters(
                wrapping_key_spec, wrapping_algorithm, sealed_wrapping_key,
                now + IMPORT_PARAMETERS_VALID_FOR,
            ),
            now=now,
            actor=actor,
        )
        return self.import_parameters[token_digest]

    @event("ImportParametersIssued")
    def _issue_import_parameters(self, token_digest: str, parameters: ImportParameters, now: datetime,
                                 actor: Actor) -> None:
        self.import_parameters = {
            t: p for t, p in self.import_parameters.items() if p.valid_to > now
        }
        self.import_parameters[token_digest] = parameters

    def import_parameters_for(self, token_digest: str, now: datetime) -> ImportParameters:
        """The parameters an import token (known by its SHA-256) stands for."""
        self.check_importable("ImportKeyMaterial")
        parameters = self.import_parameters.get(token_digest)
        if parameters is None:
            raise Import.INVALID_TOKEN()
        if parameters.valid_to <= now:
            raise Import.EXPIRED_TOKEN()
        return parameters

    def import_material(
        self, material: BackingKey, *, import_type: str | None, key_material_id: str | None,
        description: str | None, expiration_model: str | None, valid_to: datetime | None,
        now: datetime, actor: Actor,
    ) -> None:
        """Record imported material (sealed; its id is derived from key id and material).
        ``import_type``, ``key_material_id`` and ``description`` are None when not given: they
        are "only usable with symmetric encryption keys"."""
        self.check_importable("ImportKeyMaterial")
        if not rotatable(self.key_spec):
            named = [name for name, value in (("ImportType", import_type),
                                              ("KeyMaterialId", key_material_id),
                                              ("KeyMaterialDescription", description))
                     if value is not None]
            if named:
                raise Import.SYMMETRIC_ONLY(members=" and ".join(named), arn=self.arn,
                                            key_spec=self.key_spec)
        model = ExpirationModel(expiration_model or ExpirationModel.KEY_MATERIAL_EXPIRES)
        if model is ExpirationModel.KEY_MATERIAL_EXPIRES:
            if valid_to is None:
                raise messages.Validation.VALID_TO_REQUIRED()
            if not now < valid_to <= now + MAX_IMPORT_VALIDITY:
                raise messages.Validation.VALID_TO_RANGE()
        elif valid_to is not None:
            raise messages.Validation.VALID_TO_NOT_ALLOWED()
        associated = material.key_material_id in self.imports
        known = associated or (self.is_replica and material.key_material_id in self.set_imported_ids)
        if import_type is None:
            import_type = "EXISTING_KEY_MATERIAL" if self.imports else "NEW_KEY_MATERIAL"
        if import_type == "NEW_KEY_MATERIAL" and self.is_replica and self.imports:
            raise MultiRegion.REPLICA_NEW_MATERIAL(arn=self.arn)
        if self.is_replica and not known:  # a replica takes the set's material only
            raise Import.DIFFERENT_MATERIAL()
        if import_type == "NEW_KEY_MATERIAL":
            if key_material_id is not None:
                raise messages.Validation.KEY_MATERIAL_ID_WITH_NEW()
            if associated:
                raise Import.ALREADY_ASSOCIATED()
            if any(m.pending_rotation and m.imported for m in self.imports.values()):
                raise Import.SECOND_PENDING(arn=self.arn)
        else:
            if not known or (key_material_id is not None and key_material_id != material.key_material_id):
                raise Import.DIFFERENT_MATERIAL()
        previous = self.imports.get(material.key_material_id)
        others = [
            m.valid_to for m in self.imports.values()
            if m.imported and m.valid_to is not None and m.key_material_id != material.key_material_id
        ]
        self._import_material(
            material=material,
            # not given: what the last import of this material said ("KMS retains the value")
            description=description if description is not None
            else previous.description if previous is not None else "",
            expiration_model=model.value,
            valid_to=valid_to,
            pending_rotation=previous.pending_rotation if previous is not None else bool(self.imports),
            next_expiry=min([*others, *([valid_to] if valid_to else [])], default=None),
            actor=actor,
        )

    @event("KeyMaterialImported")
    def _import_material(self, material: BackingKey, description: str, expiration_model: str,
                         valid_to: datetime | None, pending_rotation: bool,
                         next_expiry: datetime | None, actor: Actor) -> None:
        """``next_expiry``: when any of the key's imported material expires next."""
        material_id = material.key_material_id
        previous = self.materials.get(material_id)
        if previous is not None:  # a re-import keeps the version's rotation history
            material = replace(material, created=previous.created, rotation_type=previous.rotation_type)
        self.materials[material_id] = material
        if material_id in self.material_shred_pending:
            self.material_shred_pending.remove(material_id)
        self.imports[material_id] = ImportedMaterial(
            material_id, description, ExpirationModel(expiration_model), valid_to,
            imported=True, pending_rotation=pending_rotation,
        )
        if self.current_key_material_id is None:
            self.current_key_material_id = material_id
        if self.key_state is KeyState.PENDING_IMPORT and material_id == self.current_key_material_id:
            self.key_state = KeyState.ENABLED

    def delete_imported_material(self, key_material_id: str | None, actor: Actor) -> str | None:
        """The material id deleted; None for a key that never had material (PendingImport:
        no effect, as AWS's key state table has it)."""
        self.check_importable("DeleteImportedKeyMaterial")
        material_id = key_material_id or self.current_key_material_id
        if material_id is None:
            return None
        record = self.imports.get(material_id)
        if record is None:
            raise NotFound.KEY_MATERIAL(material_id=material_id, arn=self.arn)
        if record.imported:
            self._delete_imported(key_material_id=material_id, expired=False, actor=actor)
        return material_id

    def expired_materials(self, now: datetime) -> list[str]:
        return [
            m.key_material_id for m in self.imports.values()
            if m.imported and m.valid_to is not None and m.valid_to <= now
        ] if not self.deleted else []

    def expire_imported_material(self, now: datetime, actor: Actor) -> list[str]:
        expired = self.expired_materials(now)
        for material_id in expired:
            self._delete_imported(key_material_id=material_id, expired=True, actor=actor)
        return expired

    @event("ImportedKeyMaterialDeleted")
    def _delete_imported(self, key_material_id: str, expired: bool, actor: Actor) -> None:
        """The material is gone from the key (its data key is destroyed next)."""
        self.imports[key_material_id] = replace(self.imports[key_material_id], imported=False)
        self.materials.pop(key_material_id, None)
        self.material_shred_pending.append(key_material_id)
        if key_material_id == self.current_key_material_id and self.key_state in (
            KeyState.ENABLED, KeyState.DISABLED
        ):
            self.key_state = KeyState.PENDING_IMPORT

    def record_material_shredded(self, key_material_id: str, actor: Actor) -> None:
        if key_material_id not in self.material_shred_pending:
            raise messages.KeyState.NOT_AWAITING_SHRED(what=key_material_id)
        self._material_shredded(
            key_material_id=key_material_id, next_expiry=self.next_expiry(), actor=actor
        )

    @event("ImportedKeyMaterialShredded")
    def _material_shredded(self, key_material_id: str, next_expiry: datetime | None,
                           actor: Actor) -> None:
        """The material's own data key was destroyed: that version is gone for good."""
        self.material_shred_pending.remove(key_material_id)

    def next_expiry(self) -> datetime | None:
        dates = [m.valid_to for m in self.imports.values() if m.imported and m.valid_to is not None]
        return min(dates) if dates else None

    # -- grants -------------------------------------------------------------------------------

    def create_grant(
        self, *, grant_id: str, grantee_principal: str | None, operations: Iterable[str],
        issuing_account: str, now: datetime, actor: Actor,
        retiring_principal: str | None = None, constraints: GrantConstraints | None = None,
        name: str | None = None,
    ) -> Grant:
        """CreateGrant on this key (authorization, including the child-grant rule of
        :func:`domain.grants.check_child_grant`, is the caller's). ``grant_id`` is new
        (:func:`domain.grants.new_grant_id`); ``issuing_account`` is the account in which the
        grant is created.

        With a ``name``, a retry with identical parameters returns the existing grant and
        records nothing; the same name with other parameters makes a new grant.
        """
        self.check("CreateGrant")
        grantee_principal = check_grantee(grantee_principal)
        operations = check_grant_operations(self.key_spec, self.key_usage, operations)
        check_grant_constraints(self.key_spec, self.key_usage, constraints)
        name = name or ""
        retiring_principal = retiring_principal or None
        if name:
            for grant in self.grants.values():
                if grant.same_request(
                    grantee_principal=grantee_principal, retiring_principal=retiring_principal,
                    operations=operations, constraints=constraints, name=name,
                    issuing_account=issuing_account,
                ):
                    return grant
        if len(self.grants) >= MAX_GRANTS_PER_KEY:
            raise messages.Grants.TOO_MANY(arn=self.arn, limit=MAX_GRANTS_PER_KEY)
        check_grant_id(grant_id)
        if grant_id in self.grants:
            raise ValueError(f"grant {grant_id} already exists on {self.arn}")
        grant = Grant(
            grant_id=grant_id,
            key_id=self.id,
            name=name,
            grantee_principal=grantee_principal,
            retiring_principal=retiring_principal,
            operations=operations,
            constraints=constraints,
            issuing_account=issuing_account,
            creation_date=now,
        )
        self._create_grant(grant=grant, actor=actor)
        return grant

    @event("GrantCreated")
    def _create_grant(self, grant: Grant, actor: Actor) -> None:
        self.grants[grant.grant_id] = grant

    def get_grant(self, grant_id: str) -> Grant:
        """The key's grant: InvalidGrantIdException for a malformed id, NotFoundException
        for an id the key has no (longer a) grant of."""
        check_grant_id(grant_id)
        grant = self.grants.get(grant_id)
        if grant is None:
            raise NotFound.GRANT(grant_id=grant_id, arn=self.arn)
        return grant

    def retire_grant(self, grant_id: str, actor: Actor) -> Grant:
        """RetireGrant (who may retire is the caller's check: :meth:`Grant.may_retire`)."""
        self.check("RetireGrant")
        grant = self.get_grant(grant_id)
        self._retire_grant(grant_id=grant_id, actor=actor)
        return grant

    @event("GrantRetired")
    def _retire_grant(self, grant_id: str, actor: Actor) -> None:
        del self.grants[grant_id]

    def revoke_grant(self, grant_id: str, actor: Actor) -> Grant:
        self.check("RevokeGrant")
        grant = self.get_grant(grant_id)
        self._revoke_grant(grant_id=grant_id, actor=actor)
        return grant

    @event("GrantRevoked")
    def _revoke_grant(self, grant_id: str, actor: Actor) -> None:
        del self.grants[grant_id]

    def list_grants(
        self, grant_id: str | None = None, grantee_principal: str | None = None
    ) -> list[Grant]:
        """ListGrants' filters over the key's grants, oldest first."""
        return [
            g for g in self.grants.values()
            if (grant_id is None or g.grant_id == grant_id)
            and (grantee_principal is None or g.grantee_principal == grantee_principal)
        ]

    def permitting_grant(
        self, principal: Principal, operation: str,
        encryption_context: Mapping[str, str] | None = None, *, delegated: bool = False,
    ) -> Grant | None:
        """A grant that allows ``principal`` to call ``operation``: directly
        (:meth:`Grant.permits`) or, with ``delegated``, through its account
        (:meth:`Grant.permits_by_delegation`; an identity policy must allow it too)."""
        for grant in self.grants.values():
            if (grant.permits_by_delegation if delegated else grant.permits)(
                principal, operation, encryption_context
            ):
                return grant
        return None

    # -- tags and policy ----------------------------------------------------------------------

    def tag(self, tags: dict[str, str], actor: Actor) -> None:
        self.check("TagResource")
        _check_tags(tags)
        if len(set(self.tags) | set(tags)) > MAX_TAGS_PER_KEY:
            raise Tags.LIMIT(arn=self.arn, limit=MAX_TAGS_PER_KEY)
        self._add_tags(tags=tags, actor=actor)

    @event("TagsAdded")
    def _add_tags(self, tags: dict[str, str], actor: Actor) -> None:
        self.tags.update(tags)

    def untag(self, tag_keys: list[str], actor: Actor) -> None:
        self.check("UntagResource")
        for tag_key in tag_keys:
            if reserved_tag_key(tag_key):
                raise Tags.RESERVED()
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
        raise messages.Validation.CONSTRAINT(value=days, member=member, bound=bound)
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
        raise NotFound.POLICY()


def reserved_tag_key(tag_key: str) -> bool:
    """AWS reserves tag keys beginning with aws: in any case (aws:, AWS:, Aws:, ...)."""
    return tag_key[:4].lower() == "aws:"


def tags_of_request(tags: list[dict[str, str]]) -> dict[str, str]:
    """The Tags of a CreateKey or TagResource request as a mapping, with AWS's TagException
    for a reserved key, the same key twice, or more than 50 tags."""
    for tag in tags:
        if reserved_tag_key(tag["TagKey"]):
            raise Tags.RESERVED()
    mapping = {tag["TagKey"]: tag["TagValue"] for tag in tags}
    if len(mapping) != len(tags):
        raise Tags.DUPLICATE_KEYS()
    if len(mapping) > MAX_TAGS_PER_KEY:
        raise Tags.TOO_MANY()
    return mapping


def _check_tags(tags: dict[str, str]) -> None:
    for tag_key in tags:
        if reserved_tag_key(tag_key):
            raise Tags.RESERVED()
    if len(tags) > MAX_TAGS_PER_KEY:
        raise Tags.TOO_MANY()
