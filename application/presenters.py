"""How keys and ledger events look in responses: KeyMetadata, algorithm lists, history."""

from __future__ import annotations

import dataclasses
from typing import Any

from domain.key import KmsKey
from domain.key_specs import ALGORITHM_FIELDS, algorithms, rotatable
from domain.key_states import KeyState
from domain.values import BackingKey, RotationType, key_arn


def algorithm_fields(key: KmsKey) -> dict[str, Any]:
    """The algorithm lists of a key (DescribeKey, GetPublicKey)."""
    field = ALGORITHM_FIELDS[key.key_usage]  # type: ignore[index]  # KeyUsage is a StrEnum
    return {field: list(algorithms(key.key_spec, key.key_usage))}


def rotation_status(key: KmsKey) -> dict[str, Any]:
    """GetKeyRotationStatus' answer for ``key``; ``OnDemandRotationStartDate`` while an
    on-demand rotation is in progress (a multi-Region primary's new material not yet in every
    replica Region: KmsKey.pending_material_id)."""
    status: dict[str, Any] = {"KeyRotationEnabled": key.rotation_is_enabled(), "KeyId": key.arn}
    if key.rotation_is_enabled():
        status["RotationPeriodInDays"] = key.rotation_period_days
        status["NextRotationDate"] = key.next_rotation_date
    waiting = key.materials.get(key.pending_material_id or "")
    if waiting is not None and waiting.rotation_type is RotationType.ON_DEMAND:
        status["OnDemandRotationStartDate"] = waiting.created
    return status


def key_metadata(key: KmsKey) -> dict[str, Any]:
    metadata: dict[str, Any] = {
        "AWSAccountId": key.account,
        "KeyId": key.id,
        "Arn": key.arn,
        "CreationDate": key.creation_date,
        "Enabled": key.enabled,
        "Description": key.description,
        "KeyUsage": key.key_usage,
        "KeyState": key.key_state.value,
        "Origin": key.origin,
        "KeyManager": "CUSTOMER",
        "CustomerMasterKeySpec": key.key_spec,
        "KeySpec": key.key_spec,
        **algorithm_fields(key),
        "MultiRegion": key.multi_region,
    }
    if key.multi_region:
        metadata["MultiRegionConfiguration"] = multi_region_configuration(key)
    if key.current_key_material_id is not None and rotatable(key.key_spec):
        # "present for symmetric encryption keys ... [that] support ... key rotation"
        metadata["CurrentKeyMaterialId"] = key.current_key_material_id
    if key.imported:
        current = key.imports.get(key.current_key_material_id or "")
        if current is not None and current.imported:
            metadata["ExpirationModel"] = current.expiration_model.value
            if current.valid_to is not None:
                metadata["ValidTo"] = current.valid_to
    if key.deletion_date is not None:
        metadata["DeletionDate"] = key.deletion_date
    if key.key_state is KeyState.PENDING_REPLICA_DELETION:  # (present in that state only)
        metadata["PendingDeletionWindowInDays"] = key.pending_window_days
    return metadata


def multi_region_configuration(key: KmsKey) -> dict[str, Any]:
    """DescribeKey's MultiRegionConfiguration: the set as this key knows it (a replica learns
    of the others from the primary's stream)."""
    primary = key.primary_region or key.region
    return {
        "MultiRegionKeyType": key.multi_region_key_type,
        "PrimaryKey": {"Arn": key_arn(primary, key.account, key.id), "Region": primary},
        "ReplicaKeys": [{"Arn": key_arn(r, key.account, key.id), "Region": r}
                        for r in key.replica_regions],
    }


def _material(value: BackingKey) -> dict[str, Any]:
    return {"KeyMaterialId": value.key_material_id, "Created": value.created,
            "RotationType": value.rotation_type.value if value.rotation_type else None,
            "Imported": value.own_data_key}


def _detail(value: Any) -> Any:
    """An event field as plain data: material by id only (also inside the lists and maps of
    multi-Region events), no bytes at any depth (import parameters: never the sealed key)."""
    if isinstance(value, BackingKey):
        return _material(value)
    if isinstance(value, dict):
        return {k: _detail(v) for k, v in value.items() if not isinstance(v, bytes)}
    if isinstance(value, list | tuple):
        return [_detail(v) for v in value if not isinstance(v, bytes)]
    if dataclasses.is_dataclass(value) and not isinstance(value, type):
        return {k: _detail(v) for k, v in vars(value).items() if not isinstance(v, bytes)}
    return value


def describe_event(event: Any) -> dict[str, Any]:
    """A ledger event as audit data: type, version, time, actor and its non-secret fields."""
    details: dict[str, Any] = {}
    for name, value in vars(event).items():
        if name in ("originator_id", "originator_version", "timestamp", "originator_topic", "actor"):
            continue
        if isinstance(value, bytes):
            continue
        details[name] = _detail(value)
    actor = getattr(event, "actor", None)
    return {
        "Version": event.originator_version,
        "Type": type(event).__name__,
        "Timestamp": event.timestamp,
        "Actor": dict(vars(actor)) if actor is not None else None,
        "Details": details,
    }

