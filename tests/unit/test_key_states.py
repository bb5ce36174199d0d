"""The AWS "Key states of AWS KMS keys" table, cell by cell.

The expectations below are written out independently of ``domain.key_states`` (from the
AWS developer guide), so a change to the product's table that disagrees with AWS fails here.
"""

from __future__ import annotations

import pytest

from domain import errors
from domain.key_states import (
    CRYPTOGRAPHIC_OPERATIONS,
    KEY_STATE_TABLE,
    KeyState,
    Outcome,
    check_key_state,
    outcome,
)

ARN = "arn:aws:kms:us-east-1:111122223333:key/1234abcd-12ab-34cd-56ef-1234567890ab"
S = KeyState
OK, DIS, INV, UNA = "ok", errors.DisabledException, errors.KMSInvalidStateException, errors.KeyUnavailableException

CRYPTO_OPS = {
    "Decrypt", "Encrypt", "GenerateDataKey", "GenerateDataKeyWithoutPlaintext",
    "GenerateDataKeyPair", "GenerateDataKeyPairWithoutPlaintext", "ReEncrypt", "Sign", "Verify",
    "GenerateMac", "VerifyMac", "DeriveSharedSecret", "GetPublicKey", "Encapsulate", "Decapsulate",
}
# "DescribeKey, GetKeyPolicy, PutKeyPolicy, List*, Tag/Untag, Retire/RevokeGrant ... OK" in
# every state (DG key-state table, archived 2023; kms-regions-audit.md A.6)
READ_OPS = {
    "DescribeKey", "ListResourceTags", "ListAliases", "ListKeyRotations", "GetKeyPolicy",
    "ListKeyPolicies", "GetKeyRotationStatus", "DeleteAlias", "ListGrants", "RetireGrant",
    "RevokeGrant",
    "GetKeyLastUsage",  # not in AWS's table: keyledger's choice, like the other reads
}
CONFIGURE_OPS = {"UpdateKeyDescription", "TagResource", "UntagResource", "CreateAlias", "UpdateAlias"}


def _row(**cells) -> dict[KeyState, object]:
    """A row of the AWS table; a state not named fails with KMSInvalidStateException."""
    row = {state: INV for state in KeyState}
    for name, expected in cells.items():
        row[KeyState[name]] = expected
    return row


EXPECTED: dict[str, dict[KeyState, object]] = {
    # Updating (a multi-Region key whose primary Region changes): "OK" for the cryptographic
    # operations, CreateGrant, the configuration changes and ImportKeyMaterial (A.6)
    **{op: _row(ENABLED=OK, DISABLED=DIS, UNAVAILABLE=UNA, UPDATING=OK) for op in CRYPTO_OPS},
    **{op: {state: OK for state in KeyState} for op in READ_OPS},
    **{
        op: _row(ENABLED=OK, DISABLED=OK, PENDING_IMPORT=OK, UNAVAILABLE=OK, UPDATING=OK)
        for op in CONFIGURE_OPS
    },
    "PutKeyPolicy": _row(
        ENABLED=OK, DISABLED=OK, PENDING_DELETION=OK, PENDING_IMPORT=OK, UNAVAILABLE=OK,
        UPDATING=OK,
    ),
    "EnableKey": _row(ENABLED=OK, DISABLED=OK, UNAVAILABLE=UNA),
    "DisableKey": _row(ENABLED=OK, DISABLED=OK, UNAVAILABLE=UNA),
    "ScheduleKeyDeletion": _row(ENABLED=OK, DISABLED=OK, PENDING_IMPORT=OK, UNAVAILABLE=OK),
    "CancelKeyDeletion": _row(PENDING_DELETION=OK, PENDING_REPLICA_DELETION=OK),
    # CreateGrant: "Disabled: DisabledException"; PendingImport and PendingDeletion refused
    # (awsdocs/aws-kms-developer-guide doc_source/key-state.md)
    "CreateGrant": _row(ENABLED=OK, DISABLED=DIS, UNAVAILABLE=OK, UPDATING=OK),
    "EnableKeyRotation": _row(ENABLED=OK, DISABLED=DIS, PENDING_IMPORT=OK, UNAVAILABLE=UNA),
    "DisableKeyRotation": _row(ENABLED=OK, DISABLED=DIS, PENDING_IMPORT=OK, UNAVAILABLE=UNA),
    "RotateKeyOnDemand": _row(ENABLED=OK, DISABLED=DIS, UNAVAILABLE=UNA),
    # imported key material: not in a key being deleted; keys in custom key stores can't import
    "GetParametersForImport": _row(ENABLED=OK, DISABLED=OK, PENDING_IMPORT=OK),
    "ImportKeyMaterial": _row(ENABLED=OK, DISABLED=OK, PENDING_IMPORT=OK, UPDATING=OK),
    # "When the specified KMS key is in the PendingDeletion state, this operation does not
    # change the KMS key's state" (API reference, DeleteImportedKeyMaterial)
    "DeleteImportedKeyMaterial": _row(ENABLED=OK, DISABLED=OK, PENDING_IMPORT=OK,
                                      PENDING_DELETION=OK),
    # ReplicateKey on the primary: "Disabled: DisabledException", every other state but
    # Enabled KMSInvalidStateException (kms-regions-audit.md A.17, DG key-state footnotes)
    "ReplicateKey": _row(ENABLED=OK, DISABLED=DIS),
    # UpdatePrimaryRegion: "Both keys must be Enabled" (A.33); Disabled: DisabledException
    "UpdatePrimaryRegion": _row(ENABLED=OK, DISABLED=DIS),
}

PHRASES = {
    S.CREATING: "is creating",  # DG key-state.html footnote 14
    S.DISABLED: "is disabled",
    S.PENDING_DELETION: "is pending deletion",
    S.PENDING_IMPORT: "is pending import",
    S.PENDING_REPLICA_DELETION: "is pending replica deletion",
    S.UNAVAILABLE: "is unavailable",
    S.UPDATING: "is updating",  # footnote 15
}

CELLS = [
    pytest.param(op, state, id=f"{op}-{state.value}")
    for op in sorted(KEY_STATE_TABLE)
    for state in KeyState
]


def test_table_covers_exactly_the_expected_operations():
    assert set(KEY_STATE_TABLE) == set(EXPECTED)
    assert set(CRYPTOGRAPHIC_OPERATIONS) == CRYPTO_OPS


def test_key_state_values_are_the_aws_names():
    assert {s.value for s in KeyState} == {
        "Creating", "Enabled", "Disabled", "PendingDeletion", "PendingImport",
        "PendingReplicaDeletion", "Unavailable", "Updating",
    }


@pytest.mark.parametrize(("operation", "state"), CELLS)
def test_check_key_state_cell(operation: str, state: KeyState):
    expected = EXPECTED[operation][state]
    if expected == OK:
        assert check_key_state(operation, state, ARN) is None
        assert outcome(operation, state) is Outcome.ALLOWED
        return
    with pytest.raises(errors.KmsError) as info:
        check_key_state(operation, state, ARN)
    # exactly the expected class, not merely a subclass of KmsError
    assert type(info.value) is expected
    assert info.value.code == expected.__name__
    assert outcome(operation, state).value == expected.__name__
    assert ARN in info.value.message
    if operation == "CancelKeyDeletion":  # AWS names what is missing, not the current state
        assert info.value.message == f"{ARN} is not pending deletion."
    else:
        assert info.value.message == f"{ARN} {PHRASES[state]}."
    assert str(info.value) == info.value.message


@pytest.mark.parametrize("operation", sorted(CRYPTO_OPS))
def test_crypto_operations_on_disabled_key_raise_disabled(operation):
    with pytest.raises(errors.DisabledException, match=f"^{ARN} is disabled\\.$"):
        check_key_state(operation, S.DISABLED, ARN)


@pytest.mark.parametrize("operation", sorted(CRYPTO_OPS))
@pytest.mark.parametrize("state", [S.PENDING_DELETION, S.PENDING_IMPORT])
def test_crypto_operations_on_pending_keys_raise_invalid_state(operation, state):
    with pytest.raises(errors.KMSInvalidStateException) as info:
        check_key_state(operation, state, ARN)
    assert type(info.value) is errors.KMSInvalidStateException
    assert ARN in info.value.message


@pytest.mark.parametrize("state", list(KeyState))
def test_describe_key_always_allowed(state):
    check_key_state("DescribeKey", state, ARN)


@pytest.mark.parametrize("state", list(KeyState))
def test_cancel_key_deletion_only_in_pending_deletion(state):
    if state in (S.PENDING_DELETION, S.PENDING_REPLICA_DELETION):  # A.6: "CancelKeyDeletion OK"
        check_key_state("CancelKeyDeletion", state, ARN)
    else:
        with pytest.raises(errors.KMSInvalidStateException) as info:
            check_key_state("CancelKeyDeletion", state, ARN)
        assert info.value.message == f"{ARN} is not pending deletion."


def test_schedule_deletion_twice_is_invalid_state():
    with pytest.raises(errors.KMSInvalidStateException, match="is pending deletion"):
        check_key_state("ScheduleKeyDeletion", S.PENDING_DELETION, ARN)


def test_error_wire_codes_and_status():
    assert errors.DisabledException.code == "DisabledException"
    assert errors.DisabledException.status == 400
    assert errors.KMSInvalidStateException.code == "KMSInvalidStateException"
    assert errors.KMSInvalidStateException.status == 400
    assert errors.KeyUnavailableException.status == 500


def test_unknown_operation_is_not_silently_allowed():
    with pytest.raises(KeyError):
        check_key_state("NoSuchOperation", S.ENABLED, ARN)
