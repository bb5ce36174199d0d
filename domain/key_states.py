"""Key states and the AWS "Key states of AWS KMS keys" table, in one place.

Every operation that acts on an existing KMS key asks :func:`check_key_state` before it
does anything. The table answers, for each operation and each key state, whether the
operation succeeds, fails with ``DisabledException`` or fails with
``KMSInvalidStateException`` (``KeyUnavailableException`` for custom key stores).
"""

from __future__ import annotations

from enum import Enum, StrEnum

from domain import messages
from domain.operations import CRYPTOGRAPHIC_OPERATIONS  # ReEncrypt: checked for both keys


class KeyState(StrEnum):
    CREATING = "Creating"
    ENABLED = "Enabled"
    DISABLED = "Disabled"
    PENDING_DELETION = "PendingDeletion"
    PENDING_IMPORT = "PendingImport"
    PENDING_REPLICA_DELETION = "PendingReplicaDeletion"
    UNAVAILABLE = "Unavailable"
    UPDATING = "Updating"


class Outcome(Enum):
    ALLOWED = "allowed"
    DISABLED = "DisabledException"
    INVALID_STATE = "KMSInvalidStateException"
    UNAVAILABLE = "KeyUnavailableException"


_OK = Outcome.ALLOWED
_DIS = Outcome.DISABLED
_INV = Outcome.INVALID_STATE
_UNA = Outcome.UNAVAILABLE
S = KeyState

# Cryptographic operations: only an Enabled key may be used.
# (Updating: a multi-Region key whose primary Region is changing stays usable)
_CRYPTO = {S.ENABLED: _OK, S.DISABLED: _DIS, S.UNAVAILABLE: _UNA, S.UPDATING: _OK}
# Read-only management operations succeed in every state.
_READ = {state: _OK for state in S}
# Changes to a key's configuration: refused while the key is being deleted or changed.
_CONFIGURE = {
    S.ENABLED: _OK,
    S.DISABLED: _OK,
    S.PENDING_IMPORT: _OK,
    S.UNAVAILABLE: _OK,
    S.UPDATING: _OK,
}
# Rotation settings follow the key's ability to be used.
_ROTATION = {S.ENABLED: _OK, S.DISABLED: _DIS, S.PENDING_IMPORT: _OK, S.UNAVAILABLE: _UNA}

#: operation -> {state: outcome}; a state missing from a row means KMSInvalidStateException.
KEY_STATE_TABLE: dict[str, dict[KeyState, Outcome]] = {
    **{op: _CRYPTO for op in CRYPTOGRAPHIC_OPERATIONS},
    "DescribeKey": _READ,
    "ListResourceTags": _READ,
    "ListAliases": _READ,
    "ListKeyRotations": _READ,
    "GetKeyPolicy": _READ,
    "ListKeyPolicies": _READ,
    "GetKeyRotationStatus": _READ,
    "GetKeyLastUsage": _READ,  # keyledger's choice: AWS's key-state table does not list it
    "DeleteAlias": _READ,
    "PutKeyPolicy": {**_CONFIGURE, S.PENDING_DELETION: _OK},
    "UpdateKeyDescription": _CONFIGURE,
    "TagResource": _CONFIGURE,
    "UntagResource": _CONFIGURE,
    "CreateAlias": _CONFIGURE,
    "UpdateAlias": _CONFIGURE,
    "EnableKey": {S.ENABLED: _OK, S.DISABLED: _OK, S.UNAVAILABLE: _UNA},
    "DisableKey": {S.ENABLED: _OK, S.DISABLED: _OK, S.UNAVAILABLE: _UNA},
    "ScheduleKeyDeletion": {
        S.ENABLED: _OK,
        S.DISABLED: _OK,
        S.PENDING_IMPORT: _OK,
        S.UNAVAILABLE: _OK,
    },
    "CancelKeyDeletion": {S.PENDING_DELETION: _OK, S.PENDING_REPLICA_DELETION: _OK},
    "EnableKeyRotation": _ROTATION,
    "DisableKeyRotation": _ROTATION,
    "RotateKeyOnDemand": {S.ENABLED: _OK, S.DISABLED: _DIS, S.UNAVAILABLE: _UNA},
    # Imported key material: possible while the key waits for material, not while it is deleted;
    # but material can be deleted from a key pending deletion (its state stays as it is).
    "GetParametersForImport": {S.ENABLED: _OK, S.DISABLED: _OK, S.PENDING_IMPORT: _OK},
    "ImportKeyMaterial": {S.ENABLED: _OK, S.DISABLED: _OK, S.PENDING_IMPORT: _OK,
                          S.UPDATING: _OK},
    "DeleteImportedKeyMaterial": {S.ENABLED: _OK, S.DISABLED: _OK, S.PENDING_IMPORT: _OK,
                                  S.PENDING_DELETION: _OK},
    # Grants: created on a usable key (DisabledException for a disabled one); listed, retired
    # and revoked in every state.
    "CreateGrant": {S.ENABLED: _OK, S.DISABLED: _DIS, S.UNAVAILABLE: _OK, S.UPDATING: _OK},
    "ListGrants": _READ,
    "RetireGrant": _READ,
    "RevokeGrant": _READ,
    # multi-Region keys (AWS's key-state table: an Enabled primary; DisabledException when
    # disabled; KMSInvalidStateException in every other state)
    "ReplicateKey": {S.ENABLED: _OK, S.DISABLED: _DIS},
    "UpdatePrimaryRegion": {S.ENABLED: _OK, S.DISABLED: _DIS},
}

#: operation -> the states in which the table allows it: the per-request fast check. A tuple,
#: because ``state in`` a tuple compares identities first, where a dict or set lookup hashes
#: the state (``Enum.__hash__`` is a Python function: a call on every request).
ALLOWED_STATES: dict[str, tuple[KeyState, ...]] = {
    operation: tuple(state for state, result in row.items() if result is _OK)
    for operation, row in KEY_STATE_TABLE.items()
}

_STATE_PHRASES = {
    S.CREATING: "is creating",  # DG key-state.html footnote 14
    S.DISABLED: "is disabled",
    S.PENDING_DELETION: "is pending deletion",
    S.PENDING_IMPORT: "is pending import",
    S.PENDING_REPLICA_DELETION: "is pending replica deletion",
    S.UNAVAILABLE: "is unavailable",
    S.UPDATING: "is updating",  # footnote 15
    S.ENABLED: "is enabled",
}


def outcome(operation: str, state: KeyState) -> Outcome:
    """The table's answer for ``operation`` on a key in ``state``."""
    row = KEY_STATE_TABLE[operation]
    return row.get(state, _INV)


def check_key_state(operation: str, state: KeyState, key_arn: str) -> None:
    """Raise the error AWS raises when ``operation`` meets a key in ``state``."""
    result = outcome(operation, state)
    if result is _OK:
        return
    if result is _DIS:
        raise messages.KeyState.DISABLED(arn=key_arn)
    if result is _UNA:
        raise messages.KeyState.UNAVAILABLE(arn=key_arn)
    if operation == "CancelKeyDeletion":
        raise messages.KeyState.NOT_PENDING_DELETION(arn=key_arn)
    text = _INVALID_STATE_TEXTS.get(state)
    if text is not None:
        raise text(arn=key_arn)
    raise messages.KeyState.OTHER(arn=key_arn, state_phrase=_STATE_PHRASES[state])


_INVALID_STATE_TEXTS = {
    S.PENDING_DELETION: messages.KeyState.PENDING_DELETION,
    S.PENDING_IMPORT: messages.KeyState.PENDING_IMPORT,
    S.CREATING: messages.KeyState.CREATING,
    S.UPDATING: messages.KeyState.UPDATING,
    S.PENDING_REPLICA_DELETION: messages.KeyState.PENDING_REPLICA_DELETION,
}
