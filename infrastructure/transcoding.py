"""Transcodings for the values our events carry (registered on the ledger application)."""

from __future__ import annotations

import base64
from datetime import datetime
from typing import Any

from eventsourcing.persistence import Transcoding

from domain.grants import Grant, GrantConstraints
from domain.key import ImportedMaterial, ImportParameters
from domain.values import Actor, BackingKey, ExpirationModel, RotationType


class BytesAsBase64(Transcoding):
    type = bytes
    name = "b64"

    def encode(self, obj: bytes) -> str:
        return base64.b64encode(obj).decode()

    def decode(self, data: str) -> bytes:
        return base64.b64decode(data)


class ActorAsDict(Transcoding):
    type = Actor
    name = "actor"

    def encode(self, obj: Actor) -> dict[str, str]:
        return dict(obj.__dict__)

    def decode(self, data: dict[str, str]) -> Actor:
        return Actor(**data)


class BackingKeyAsDict(Transcoding):
    type = BackingKey
    name = "backing_key"

    def encode(self, obj: BackingKey) -> dict[str, Any]:
        return {
            "key_material_id": obj.key_material_id,
            "sealed_material": obj.sealed_material,
            "created": obj.created,
            "rotation_type": obj.rotation_type.value if obj.rotation_type else None,
            "public_key": obj.public_key,
            "own_data_key": obj.own_data_key,
        }

    def decode(self, data: dict[str, Any]) -> BackingKey:
        created = data["created"]
        return BackingKey(
            key_material_id=data["key_material_id"],
            sealed_material=data["sealed_material"],
            created=_datetime(created),
            rotation_type=RotationType(data["rotation_type"]) if data["rotation_type"] else None,
            public_key=data.get("public_key"),
            own_data_key=data.get("own_data_key", False),
        )


class ImportParametersAsDict(Transcoding):
    type = ImportParameters
    name = "import_parameters"

    def encode(self, obj: ImportParameters) -> dict[str, Any]:
        return dict(obj.__dict__)

    def decode(self, data: dict[str, Any]) -> ImportParameters:
        return ImportParameters(**{**data, "valid_to": _datetime(data["valid_to"])})


class ImportedMaterialAsDict(Transcoding):
    """Aggregate state (snapshots), not an event payload."""

    type = ImportedMaterial
    name = "imported_material"

    def encode(self, obj: ImportedMaterial) -> dict[str, Any]:
        return {**obj.__dict__, "expiration_model": obj.expiration_model.value}

    def decode(self, data: dict[str, Any]) -> ImportedMaterial:
        return ImportedMaterial(**{
            **data,
            "expiration_model": ExpirationModel(data["expiration_model"]),
            "valid_to": _datetime(data["valid_to"]),
        })


class GrantConstraintsAsDict(Transcoding):
    """Encryption contexts as lists of pairs, not JSON objects: a context whose keys are
    ``_type_`` and ``_data_`` would otherwise read back as a transcoded value."""

    type = GrantConstraints
    name = "grant_constraints"

    def encode(self, obj: GrantConstraints) -> dict[str, Any]:
        return {
            "equals": _pairs(obj.encryption_context_equals),
            "subset": _pairs(obj.encryption_context_subset),
        }

    def decode(self, data: dict[str, Any]) -> GrantConstraints:
        return GrantConstraints(
            encryption_context_equals=_mapping(data.get("equals")),
            encryption_context_subset=_mapping(data.get("subset")),
        )


class GrantAsDict(Transcoding):
    type = Grant
    name = "grant"

    def encode(self, obj: Grant) -> dict[str, Any]:
        return {**obj.__dict__, "operations": list(obj.operations)}

    def decode(self, data: dict[str, Any]) -> Grant:
        return Grant(**{
            **data,
            "operations": tuple(data["operations"]),
            "creation_date": _datetime(data["creation_date"]),
        })


def _pairs(context: Any) -> list[list[str]] | None:
    return None if context is None else [[k, v] for k, v in context.items()]


def _mapping(pairs: Any) -> dict[str, str] | None:
    return None if pairs is None else dict(pairs)


def _datetime(value: Any) -> datetime | None:
    if value is None or isinstance(value, datetime):
        return value
    return datetime.fromisoformat(value)


TRANSCODINGS = (
    BytesAsBase64(), ActorAsDict(), BackingKeyAsDict(), ImportParametersAsDict(),
    ImportedMaterialAsDict(), GrantConstraintsAsDict(), GrantAsDict(),
)
