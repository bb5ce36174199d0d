"""The listing view's rows and the projection from ledger events to view changes.

The view itself is an infrastructure adapter (``infrastructure.directory``); this module
says *what* it holds: keys (with their scheduled deletion and rotation dates) and aliases.
"""

from __future__ import annotations

from dataclasses import dataclass
from datetime import datetime
from typing import Any

from domain.alias import Alias
from domain.key import KmsKey


@dataclass(frozen=True)
class KeyRow:
    account: str
    key_id: str
    position: int


@dataclass(frozen=True)
class KeyDate:
    """A date of a key: ``deletion_date``, ``next_rotation_date``, ``material_due`` (imported
    material expires, or deleted material awaits shredding) or ``deleted_at`` (a deleted key
    stays in the view, unlisted, until its material is shredded)."""

    key_id: str
    field: str
    value: float | None


@dataclass(frozen=True)
class AliasRow:
    account: str
    alias_name: str
    target_key_id: str
    creation_date: float
    last_updated_date: float
    position: int


@dataclass(frozen=True)
class DeleteKey:
    key_id: str


@dataclass(frozen=True)
class AliasTarget:
    account: str
    alias_name: str
    target_key_id: str
    last_updated_date: float


@dataclass(frozen=True)
class DeleteAlias:
    account: str
    alias_name: str


ViewChange = KeyRow | KeyDate | DeleteKey | AliasRow | AliasTarget | DeleteAlias



def _epoch(value: datetime | None) -> float | None:
    return None if value is None else value.timestamp()


def view_changes(notification_id: int, event: Any) -> list[ViewChange]:
    """What one ledger event changes in the listing view."""
    key_id = event.originator_id
    if isinstance(event, KmsKey.KeyCreated):
        return [KeyRow(account=event.account, key_id=key_id, position=notification_id)]
    if isinstance(event, KmsKey.ReplicaRecreated):  # listed again; nothing left to shred
        return [DeleteKey(key_id), KeyRow(account=event.account, key_id=key_id,
                                          position=notification_id)]
    if isinstance(event, KmsKey.KeyDeletionScheduled):
        return [KeyDate(key_id, "deletion_date", _epoch(event.deletion_date))]
    if isinstance(event, KmsKey.KeyDeletionCancelled):
        return [KeyDate(key_id, "deletion_date", None)]
    if isinstance(event, KmsKey.ReplicaRemoved) and event.deletion_date is not None:
        return [KeyDate(key_id, "deletion_date", _epoch(event.deletion_date))]  # its last replica
    if isinstance(event, KmsKey.KeyRotationEnabled | KmsKey.KeyMaterialRotated):
        return [KeyDate(key_id, "next_rotation_date", _epoch(event.next_rotation_date))]
    if isinstance(event, KmsKey.KeyRotationDisabled):
        return [KeyDate(key_id, "next_rotation_date", None)]
    if isinstance(event, KmsKey.KeyMaterialImported | KmsKey.ImportedKeyMaterialShredded):
        return [KeyDate(key_id, "material_due", _epoch(event.next_expiry))]
    if isinstance(event, KmsKey.ImportedKeyMaterialDeleted):
        return [KeyDate(key_id, "material_due", event.timestamp.timestamp())]  # left to shred
    if isinstance(event, KmsKey.KeyDeleted):
        return [KeyDate(key_id, "deleted_at", event.timestamp.timestamp())]  # left to shred
    if isinstance(event, KmsKey.KeyMaterialShredded):
        return [DeleteKey(key_id)]
    if isinstance(event, Alias.AliasCreated | Alias.AliasRecreated):
        account, alias_name = key_id.split("/", 1)
        created = event.created_at.timestamp()
        return [AliasRow(account, alias_name, event.target_key_id, created, created, notification_id)]
    if isinstance(event, Alias.AliasTargetUpdated):
        account, alias_name = key_id.split("/", 1)
        return [AliasTarget(account, alias_name, event.target_key_id, event.updated_at.timestamp())]
    if isinstance(event, Alias.AliasDeleted):
        account, alias_name = key_id.split("/", 1)
        return [DeleteAlias(account, alias_name)]
    return []
