"""Value objects of the KMS domain."""

from __future__ import annotations

from dataclasses import dataclass
from datetime import datetime
from enum import StrEnum


@dataclass(frozen=True)
class Actor:
    """Who caused an event: recorded on every event of the ledger (the audit trail)."""

    principal: str
    access_key_id: str = ""
    request_id: str = ""
    source_ip: str = ""
    user_agent: str = ""

    @classmethod
    def service(cls, request_id: str = "") -> Actor:
        """The service itself (scheduled rotation, deletion)."""
        return cls(principal="kms.amazonaws.com", request_id=request_id)


class KeySpec(StrEnum):
    SYMMETRIC_DEFAULT = "SYMMETRIC_DEFAULT"


class KeyUsage(StrEnum):
    ENCRYPT_DECRYPT = "ENCRYPT_DECRYPT"


class Origin(StrEnum):
    AWS_KMS = "AWS_KMS"


class RotationType(StrEnum):
    AUTOMATIC = "AUTOMATIC"
    ON_DEMAND = "ON_DEMAND"


class KeyMaterialState(StrEnum):
    CURRENT = "CURRENT"
    NON_CURRENT = "NON_CURRENT"


@dataclass(frozen=True)
class BackingKey:
    """One version of a key's backing material.

    ``sealed_material`` is the material sealed under the key's own data-encryption key
    (see docs/architecture.md); the domain never sees material in clear.
    """

    key_material_id: str
    sealed_material: bytes
    created: datetime
    rotation_type: RotationType | None = None  # None for the key's first material


def arn(region: str, account: str, resource: str) -> str:
    return f"arn:aws:kms:{region}:{account}:{resource}"


def key_arn(region: str, account: str, key_id: str) -> str:
    return f"arn:aws:kms:{region}:{account}:key/{key_id}"  # arn(region, account, "key/" + key_id)


def alias_arn(region: str, account: str, alias_name: str) -> str:
    return arn(region, account, alias_name)
