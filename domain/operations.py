"""The one table of KMS operations: everything that asks "which operations are …" asks it.

Per operation: its IAM action, the request members that name KMS keys (and whether an alias
may name the key there), its kind (cryptographic / read-only / management), whether it is
authorized by identity policies alone (operations on no key), and how the server runs it
(``hot``: served on the event loop from memory; ``awaits``: a coroutine that may await a
crypto helper process).
"""

from __future__ import annotations

from dataclasses import dataclass
from enum import StrEnum


class Kind(StrEnum):
    CRYPTOGRAPHIC = "cryptographic"  # uses key material; only an Enabled key may be used
    READ_ONLY = "read-only"  # reads a key or a listing (CloudTrail readOnly: true)
    MANAGEMENT = "management"  # changes a key, an alias or a grant


@dataclass(frozen=True, slots=True)
class KeyMember:
    """A request member that names a KMS key."""

    name: str  # "KeyId", "SourceKeyId", ...
    aliases: bool  # an alias name or alias ARN may name the key here
    action: str  # the IAM action authorized on that key ("kms:ReEncryptFrom" for SourceKeyId)
    required: bool = True


@dataclass(frozen=True, slots=True)
class Operation:
    name: str
    action: str  # "kms:Encrypt"
    kind: Kind
    keys: tuple[KeyMember, ...] = ()
    hot: bool = False
    awaits: bool = False
    #: the operation names an alias (AliasName): kms:<Op> is authorized on the alias ARN too
    alias_resource: bool = False
    #: RetireGrant: the grant itself says who may retire it (kms:RetireGrant in a key policy
    #: has no effect; an identity-policy Deny still applies)
    retired_by_grant: bool = False
    #: a key ARN of another account may name the key (the API Reference's "Cross-account
    #: use: Yes"); elsewhere another account's key is not found
    cross_account: bool = False

    @property
    def answers_invalid_arn(self) -> bool:
        """InvalidArnException is among the operation's errors in the model; elsewhere a
        malformed ARN is a key id that names no key."""
        return self.name in _ANSWER_INVALID_ARN

    @property
    def iam_only(self) -> bool:
        """Authorized by identity policies alone: the operation names no key and no alias."""
        return not self.keys and not self.alias_resource and not self.retired_by_grant


#: the operations whose errors in the model (service-2.json) include InvalidArnException
_ANSWER_INVALID_ARN = frozenset({
    "CancelKeyDeletion", "CreateGrant", "CreateKey", "DeleteImportedKeyMaterial", "DescribeKey",
    "DisableKey", "DisableKeyRotation", "EnableKey", "EnableKeyRotation", "GetKeyLastUsage",
    "GetKeyPolicy", "GetKeyRotationStatus", "GetParametersForImport", "GetPublicKey",
    "ImportKeyMaterial", "ListAliases", "ListGrants", "ListKeyPolicies", "ListKeyRotations",
    "ListResourceTags", "ListRetirableGrants", "PutKeyPolicy", "ReplicateKey", "RetireGrant",
    "RevokeGrant", "RotateKeyOnDemand", "ScheduleKeyDeletion", "TagResource", "UntagResource",
    "UpdateKeyDescription", "UpdatePrimaryRegion",
})


def _op(name: str, kind: Kind, *members: tuple[str, bool] | KeyMember, hot=False, awaits=False,
        alias_resource=False, retired_by_grant=False, cross_account=None) -> Operation:
    action = "kms:" + name
    keys = tuple(
        m if isinstance(m, KeyMember) else KeyMember(m[0], m[1], action) for m in members
    )
    if cross_account is None:
        cross_account = kind is Kind.CRYPTOGRAPHIC
    return Operation(name, action, kind, keys, hot, awaits, alias_resource, retired_by_grant,
                     cross_account)


C, R, M = Kind.CRYPTOGRAPHIC, Kind.READ_ONLY, Kind.MANAGEMENT
KEY = ("KeyId", False)  # a key id or key ARN
KEY_OR_ALIAS = ("KeyId", True)

_OPERATIONS = (
    # key lifecycle
    _op("CreateKey", M),
    _op("DescribeKey", R, KEY_OR_ALIAS, hot=True, cross_account=True),
    _op("ListKeys", R),
    _op("UpdateKeyDescription", M, KEY),
    _op("EnableKey", M, KEY),
    _op("DisableKey", M, KEY),
    _op("ScheduleKeyDeletion", M, KEY),
    _op("CancelKeyDeletion", M, KEY),
    # rotation
    _op("EnableKeyRotation", M, KEY),
    _op("DisableKeyRotation", M, KEY),
    _op("GetKeyRotationStatus", R, KEY),
    _op("RotateKeyOnDemand", M, KEY),
    _op("ListKeyRotations", R, KEY),
    # usage: the last successful cryptographic operation, from the audit store
    _op("GetKeyLastUsage", R, KEY),
    # imported key material
    _op("GetParametersForImport", M, KEY),
    _op("ImportKeyMaterial", M, KEY),
    _op("DeleteImportedKeyMaterial", M, KEY),
    # symmetric and RSA encryption
    _op("Encrypt", C, KEY_OR_ALIAS, hot=True),
    _op("Decrypt", C, KeyMember("KeyId", True, "kms:Decrypt", required=False), hot=True, awaits=True),
    _op(
        "ReEncrypt", C,
        KeyMember("SourceKeyId", True, "kms:ReEncryptFrom", required=False),
        KeyMember("DestinationKeyId", True, "kms:ReEncryptTo"),
        hot=True, awaits=True,
    ),
    _op("GenerateRandom", C, hot=True),
    # data keys
    _op("GenerateDataKey", C, KEY_OR_ALIAS, hot=True),
    _op("GenerateDataKeyWithoutPlaintext", C, KEY_OR_ALIAS, hot=True),
    _op("GenerateDataKeyPair", C, KEY_OR_ALIAS),
    _op("GenerateDataKeyPairWithoutPlaintext", C, KEY_OR_ALIAS),
    # asymmetric keys, MACs, key agreement, encapsulation
    _op("Sign", C, KEY_OR_ALIAS, hot=True, awaits=True),
    _op("Verify", C, KEY_OR_ALIAS, hot=True, awaits=True),
    _op("GetPublicKey", C, KEY_OR_ALIAS, hot=True),
    _op("GenerateMac", C, KEY_OR_ALIAS, hot=True),
    _op("VerifyMac", C, KEY_OR_ALIAS, hot=True),
    _op("DeriveSharedSecret", C, KEY_OR_ALIAS, hot=True, awaits=True),
    _op("Encapsulate", C, KEY_OR_ALIAS, hot=True),
    _op("Decapsulate", C, KEY_OR_ALIAS, hot=True, awaits=True),
    # aliases (CreateAlias/UpdateAlias/DeleteAlias are authorized on the alias and its keys)
    _op("CreateAlias", M, ("TargetKeyId", False), alias_resource=True),
    _op("UpdateAlias", M, ("TargetKeyId", False), alias_resource=True),
    _op("DeleteAlias", M, alias_resource=True),
    _op("ListAliases", R),  # IAM-only, also when KeyId filters the listing
    # tags and key policies
    _op("TagResource", M, KEY),
    _op("UntagResource", M, KEY),
    _op("ListResourceTags", R, KEY),
    _op("GetKeyPolicy", R, KEY),
    _op("PutKeyPolicy", M, KEY),
    _op("ListKeyPolicies", R, KEY),
    # grants
    _op("CreateGrant", M, KEY, cross_account=True),
    _op("ListGrants", R, KEY, cross_account=True),
    _op("ListRetirableGrants", R),
    _op("RetireGrant", M, retired_by_grant=True, cross_account=True),
    _op("RevokeGrant", M, KEY, cross_account=True),
    # multi-Region keys
    _op("ReplicateKey", M, KEY),
    _op("UpdatePrimaryRegion", M, KEY),
)

OPERATIONS: dict[str, Operation] = {op.name: op for op in _OPERATIONS}


def of_kind(kind: Kind) -> frozenset[str]:
    return frozenset(op.name for op in _OPERATIONS if op.kind is kind)


CRYPTOGRAPHIC_OPERATIONS = of_kind(Kind.CRYPTOGRAPHIC) - {"GenerateRandom"}  # on no key
HOT_OPERATIONS = frozenset(op.name for op in _OPERATIONS if op.hot)
