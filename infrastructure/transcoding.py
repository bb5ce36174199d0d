"""Transcodings for the values our events carry (registered on the ledger application)."""

from __future__ import annotations

import base64
from datetime import datetime
from typing import Any

from eventsourcing.persistence import Transcoding

from domain.key_states import KeyState
from domain.values import Actor, BackingKey, RotationType


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
        }

    def decode(self, data: dict[str, Any]) -> BackingKey:
        created = data["created"]
        return BackingKey(
            key_material_id=data["key_material_id"],
            sealed_material=data["sealed_material"],
            created=created if isinstance(created, datetime) else datetime.fromisoformat(created),
            rotation_type=RotationType(data["rotation_type"]) if data["rotation_type"] else None,
        )


class KeyStateAsStr(Transcoding):
    type = KeyState
    name = "key_state"

    def encode(self, obj: KeyState) -> str:
        return obj.value

    def decode(self, data: str) -> KeyState:
        return KeyState(data)


TRANSCODINGS = (BytesAsBase64(), ActorAsDict(), BackingKeyAsDict(), KeyStateAsStr())
