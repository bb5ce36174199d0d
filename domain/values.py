"""Value objects of the KMS domain."""

from __future__ import annotations

import re
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


#: a Region's name (us-east-1, us-gov-west-1, ap-southeast-4 ...)
REGION_PATTERN = re.compile(r"^([a-z]+-){2,3}\d+$")


class Origin(StrEnum):
    AWS_KMS = "AWS_KMS"
    EXTERNAL = "EXTERNAL"


class RotationType(StrEnum):
    AUTOMATIC = "AUTOMATIC"
    ON_DEMAND = "ON_DEMAND"


class KeyMaterialState(StrEnum):
    CURRENT = "CURRENT"
    NON_CURRENT = "NON_CURRENT"
    PENDING_ROTATION = "PENDING_ROTATION"
    #: a multi-Region primary's imported material not yet imported into every replica
    PENDING_MULTI_REGION_IMPORT_AND_ROTATION = "PENDING_MULTI_REGION_IMPORT_AND_ROTATION"


class ExpirationModel(StrEnum):
    KEY_MATERIAL_EXPIRES = "KEY_MATERIAL_EXPIRES"
    KEY_MATERIAL_DOES_NOT_EXPIRE = "KEY_MATERIAL_DOES_NOT_EXPIRE"


@dataclass(frozen=True)
class BackingKey:
    """One version of a key's backing material.

    ``sealed_material`` is the material sealed under a data-encryption key (see
    docs/architecture.md); the domain never sees material in clear. Generated material is
    sealed under its KMS key's data-encryption key; imported material under a data key of
    its own (``own_data_key``), so deleting it shreds that version alone. ``public_key`` is
    the DER SubjectPublicKeyInfo of asymmetric material (not secret).
    """

    key_material_id: str
    sealed_material: bytes
    created: datetime
    rotation_type: RotationType | None = None  # None for the key's first material
    public_key: bytes | None = None
    own_data_key: bool = False


def arn(region: str, account: str, resource: str) -> str:
    return f"arn:aws:kms:{region}:{account}:{resource}"


def key_arn(region: str, account: str, key_id: str) -> str:
    return f"arn:aws:kms:{region}:{account}:key/{key_id}"  # arn(region, account, "key/" + key_id)


def alias_arn(region: str, account: str, alias_name: str) -> str:
    return arn(region, account, alias_name)
