"""The KmsKey aggregate with imported key material (Origin EXTERNAL). No I/O, no crypto.

Time is passed in explicitly; sealed material is fake bytes. AWS behaviour is the contract:
  * https://docs.aws.amazon.com/kms/latest/APIReference/API_GetParametersForImport.html
  * https://docs.aws.amazon.com/kms/latest/APIReference/API_ImportKeyMaterial.html
  * https://docs.aws.amazon.com/kms/latest/APIReference/API_DeleteImportedKeyMaterial.html
  * https://docs.aws.amazon.com/kms/latest/developerguide/importing-keys-conceptual.html
"""

from __future__ import annotations

from datetime import UTC, datetime, timedelta
from functools import reduce

import pytest

from domain import errors
from domain.key import ImportedMaterial, ImportParameters, KmsKey
from domain.key_states import KeyState
from domain.policy import default_key_policy
from domain.values import (
    Actor,
    BackingKey,
    ExpirationModel,
    KeyMaterialState,
    RotationType,
)
from tests.unit.test_key_aggregate import state

ACCOUNT = "111122223333"
REGION = "us-east-1"
KEY_ID = "1234abcd-12ab-34cd-56ef-1234567890ab"
ARN = f"arn:aws:kms:{REGION}:{ACCOUNT}:key/{KEY_ID}"
T0 = datetime(2030, 1, 1, 12, 0, tzinfo=UTC)
ALICE = Actor("arn:aws:iam::111122223333:user/alice", "AKIAALICE", "req-1", "10.0.0.1", "ua/1")
SERVICE = Actor.service("req-svc")
EXPIRES = "KEY_MATERIAL_EXPIRES"
NO_EXPIRY = "KEY_MATERIAL_DOES_NOT_EXPIRE"
NEW, EXISTING = "NEW_KEY_MATERIAL", "EXISTING_KEY_MATERIAL"


def imported(n: int, created: datetime = T0) -> BackingKey:
    """Imported material version ``n`` as the service builds it (its own data key)."""
    return BackingKey(f"{n:064x}", b"fake-sealed-import-" + bytes([n]) * 8, created,
                      public_key=None, own_data_key=True)


def generated(n: int) -> BackingKey:
    return BackingKey(f"{0xAA00 + n:064x}", b"fake-sealed-" + bytes([n]) * 8, T0)


def new_key(key_spec: str = "SYMMETRIC_DEFAULT", key_usage: str = "ENCRYPT_DECRYPT",
            origin: str = "EXTERNAL", material: BackingKey | None = None) -> KmsKey:
    return KmsKey.create(
        key_id=KEY_ID, account=ACCOUNT, region=REGION, description="imported",
        policy=default_key_policy(ACCOUNT), tags={}, material=material, now=T0, actor=ALICE,
        key_spec=key_spec, key_usage=key_usage, origin=origin,
    )


def do_import(key: KmsKey, n: int, *, import_type: str | None = None,
              key_material_id: str | None = None, model: str | None = NO_EXPIRY,
              valid_to: datetime | None = None, now: datetime = T0,
              description: str | None = None) -> None:
    key.import_material(
        imported(n, now), import_type=import_type, key_material_id=key_material_id,
        description=description, expiration_model=model, valid_to=valid_to, now=now, actor=ALICE,
    )


def issue(key: KmsKey, token: str, now: datetime = T0) -> ImportParameters:
    return key.issue_import_parameters(token, "RSA_2048", "RSAES_OAEP_SHA_256",
                                       b"sealed-wrapping-" + token.encode(), now, ALICE)


def event_names(key: KmsKey) -> list[str]:
    return [type(e).__name__ for e in key.pending_events]


def mid(n: int) -> str:
    return imported(n).key_material_id


# -- creation --------------------------------------------------------------------------------------


def test_created_external_key_is_pending_import_without_material():
    key = new_key()
    assert key.key_state is KeyState.PENDING_IMPORT
    assert not key.enabled and key.imported and key.origin == "EXTERNAL"
    assert key.current_key_material_id is None
    assert key.materials == {} and key.imports == {} and key.import_parameters == {}
    assert key.material_shred_pending == []
    assert key.next_expiry() is None and key.expired_materials(T0 + timedelta(days=999)) == []
    assert event_names(key) == ["KeyCreated"]
    with pytest.raises(errors.KMSInvalidStateException, match=f"{ARN} is pending import"):
        key.check("Encrypt")
    key.check("DescribeKey")
    key.check("GetParametersForImport")


def test_external_keys_start_without_material_and_others_with_it():
    with pytest.raises(ValueError):
        new_key(material=generated(0))
    with pytest.raises(ValueError):
        new_key(origin="AWS_KMS", material=None)


# -- import tokens ---------------------------------------------------------------------------------


def test_issued_parameters_are_valid_for_24_hours():
    key = new_key()
    parameters = issue(key, "t1")
    assert parameters == ImportParameters("RSA_2048", "RSAES_OAEP_SHA_256", b"sealed-wrapping-t1",
                                          T0 + timedelta(hours=24))
    assert key.import_parameters == {"t1": parameters}
    assert key.import_parameters_for("t1", T0) == parameters
    assert key.import_parameters_for("t1", T0 + timedelta(hours=24) - timedelta(seconds=1)) == parameters
    assert event_names(key) == ["KeyCreated", "ImportParametersIssued"]
    assert key.key_state is KeyState.PENDING_IMPORT


def test_an_unknown_token_is_invalid():
    key = new_key()
    issue(key, "t1")
    with pytest.raises(errors.InvalidImportTokenException):
        key.import_parameters_for("not-issued", T0)


def test_a_token_expires_after_24_hours():
    key = new_key()
    issue(key, "t1")
    for later in (timedelta(hours=24), timedelta(hours=24, seconds=1), timedelta(days=3)):
        with pytest.raises(errors.ExpiredImportTokenException):
            key.import_parameters_for("t1", T0 + later)


def test_several_tokens_are_valid_at_once_and_expired_ones_are_pruned_on_the_next_issue():
    key = new_key()
    issue(key, "a", T0)
    issue(key, "b", T0 + timedelta(hours=1))
    assert set(key.import_parameters) == {"a", "b"}
    assert key.import_parameters_for("a", T0 + timedelta(hours=2)).sealed_wrapping_key == b"sealed-wrapping-a"
    later = T0 + timedelta(hours=24, minutes=30)  # a has expired, b has not
    issue(key, "c", later)
    assert set(key.import_parameters) == {"b", "c"}
    with pytest.raises(errors.InvalidImportTokenException):
        key.import_parameters_for("a", later)
    assert key.import_parameters_for("b", later).valid_to == T0 + timedelta(hours=25)


def test_tokens_can_be_issued_while_enabled_and_disabled_but_not_pending_deletion():
    key = new_key()
    do_import(key, 1)
    issue(key, "enabled")
    key.disable(ALICE)
    issue(key, "disabled")
    key.schedule_deletion(7, T0, ALICE)
    with pytest.raises(errors.KMSInvalidStateException):
        issue(key, "pending-deletion")
    with pytest.raises(errors.KMSInvalidStateException):
        key.import_parameters_for("disabled", T0)
    with pytest.raises(errors.KMSInvalidStateException):
        do_import(key, 1, import_type=EXISTING)


# -- import_material: expiration ---------------------------------------------------------------------


def test_valid_to_is_required_when_material_expires():
    key = new_key()
    for model in (EXPIRES, None):  # KEY_MATERIAL_EXPIRES is the default
        with pytest.raises(errors.ValidationException, # AWS's text (localstack's recorded snapshot)
                           match="^A validTo date must be set if the ExpirationModel is KEY_MATERIAL_EXPIRES$"):
            do_import(key, 1, model=model, valid_to=None)
    assert key.key_state is KeyState.PENDING_IMPORT and event_names(key) == ["KeyCreated"]


def test_valid_to_is_forbidden_when_material_does_not_expire():
    key = new_key()
    with pytest.raises(errors.ValidationException, match="ValidTo is not valid"):
        do_import(key, 1, model=NO_EXPIRY, valid_to=T0 + timedelta(days=1))


@pytest.mark.parametrize("valid_to", [T0, T0 - timedelta(seconds=1), T0 - timedelta(days=30),
                                      T0 + timedelta(days=365, seconds=1), T0 + timedelta(days=366)])
def test_valid_to_must_be_future_and_at_most_365_days_away(valid_to):
    key = new_key()
    with pytest.raises(errors.ValidationException, match="365 days"):
        do_import(key, 1, model=EXPIRES, valid_to=valid_to)
    assert key.imports == {}


@pytest.mark.parametrize("valid_to", [T0 + timedelta(seconds=1), T0 + timedelta(days=365)])
def test_valid_to_at_the_bounds_is_accepted(valid_to):
    key = new_key()
    do_import(key, 1, model=EXPIRES, valid_to=valid_to)
    assert key.imports[mid(1)].valid_to == valid_to
    assert key.imports[mid(1)].expiration_model is ExpirationModel.KEY_MATERIAL_EXPIRES
    assert key.next_expiry() == valid_to


# -- import_material: import types -------------------------------------------------------------------


def test_first_import_enables_the_key_with_that_material_current():
    key = new_key()
    do_import(key, 1, description="first")
    assert key.key_state is KeyState.ENABLED
    assert key.current_key_material_id == mid(1)
    assert key.current_material == imported(1)
    assert key.imports == {mid(1): ImportedMaterial(mid(1), "first", ExpirationModel.KEY_MATERIAL_DOES_NOT_EXPIRE,
                                                    None, imported=True, pending_rotation=False)}
    assert key.material_state(mid(1)) is KeyMaterialState.CURRENT
    assert key.rotations() == []
    assert event_names(key) == ["KeyCreated", "KeyMaterialImported"]
    event = key.pending_events[-1]
    assert event.next_expiry is None and event.pending_rotation is False
    key.check("Encrypt")


@pytest.mark.parametrize("import_type", [None, EXISTING])
def test_reimporting_the_same_material_updates_its_expiry(import_type):
    key = new_key()
    do_import(key, 1, model=EXPIRES, valid_to=T0 + timedelta(days=10))
    later = T0 + timedelta(days=1)
    do_import(key, 1, import_type=import_type, model=EXPIRES, valid_to=later + timedelta(days=30),
              now=later)
    record = key.imports[mid(1)]
    assert record.valid_to == later + timedelta(days=30) and record.imported
    assert key.current_key_material_id == mid(1) and key.key_state is KeyState.ENABLED
    assert key.materials[mid(1)].created == T0  # a re-import keeps the version's history
    assert key.pending_events[-1].next_expiry == later + timedelta(days=30)


def test_existing_import_of_different_material_is_incorrect_key_material():
    key = new_key()
    do_import(key, 1)
    for import_type in (EXISTING, None):  # once a key has material, the default is EXISTING
        with pytest.raises(errors.IncorrectKeyMaterialException):
            do_import(key, 2, import_type=import_type)
    assert list(key.imports) == [mid(1)]


def test_existing_import_into_a_key_that_never_had_material_is_incorrect():
    key = new_key()
    with pytest.raises(errors.IncorrectKeyMaterialException):
        do_import(key, 1, import_type=EXISTING)


def test_existing_import_naming_another_key_material_id_is_incorrect():
    key = new_key()
    do_import(key, 1)
    do_import(key, 2, import_type=NEW)
    with pytest.raises(errors.IncorrectKeyMaterialException):
        do_import(key, 1, import_type=EXISTING, key_material_id=mid(2))
    do_import(key, 1, import_type=EXISTING, key_material_id=mid(1))
    assert key.imports[mid(1)].imported


def test_key_material_id_is_not_valid_with_new_key_material():
    key = new_key()
    with pytest.raises(errors.ValidationException, match="KeyMaterialId"):
        do_import(key, 1, import_type=NEW, key_material_id=mid(1))
    assert key.imports == {}


def test_new_import_of_material_the_key_already_has_is_incorrect():
    key = new_key()
    do_import(key, 1)
    with pytest.raises(errors.IncorrectKeyMaterialException):
        do_import(key, 1, import_type=NEW)


def test_second_new_material_of_a_symmetric_key_is_pending_rotation():
    key = new_key()
    do_import(key, 1)
    do_import(key, 2, import_type=NEW, description="next")
    assert key.current_key_material_id == mid(1)
    assert key.imports[mid(2)].pending_rotation and key.imports[mid(2)].imported
    assert key.material_state(mid(2)) is KeyMaterialState.PENDING_ROTATION
    assert key.material_state(mid(1)) is KeyMaterialState.CURRENT
    assert key.key_state is KeyState.ENABLED
    assert key.pending_events[-1].pending_rotation is True
    # only one version may wait for rotation at a time
    with pytest.raises(errors.KMSInvalidStateException, match="PENDING_ROTATION"):
        do_import(key, 3, import_type=NEW)
    # re-importing the pending version keeps it pending
    do_import(key, 2, import_type=EXISTING)
    assert key.imports[mid(2)].pending_rotation


@pytest.mark.parametrize(("spec", "usage"), [("HMAC_256", "GENERATE_VERIFY_MAC"),
                                             ("RSA_2048", "SIGN_VERIFY"),
                                             ("ECC_NIST_P256", "KEY_AGREEMENT"),
                                             ("ML_DSA_44", "SIGN_VERIFY"),
                                             ("ML_KEM_768", "ENCAPSULATE_DECAPSULATE")])
def test_non_symmetric_keys_take_no_second_material(spec, usage):
    key = new_key(spec, usage)
    do_import(key, 1)
    assert key.key_state is KeyState.ENABLED
    with pytest.raises(errors.IncorrectKeyMaterialException, match="doesn't match"):
        do_import(key, 2)  # no ImportType: the existing material is the only one it takes
    assert list(key.imports) == [mid(1)]
    with pytest.raises(errors.UnsupportedOperationException):
        key.rotate_on_demand(None, T0, ALICE)


@pytest.mark.parametrize("option", [{"import_type": NEW}, {"import_type": EXISTING},
                                    {"key_material_id": "0" * 64}, {"description": "mine"}])
def test_import_options_of_symmetric_keys_are_refused_for_other_keys(option):
    """ImportType, KeyMaterialId and KeyMaterialDescription are "only usable with symmetric
    encryption keys" (ImportKeyMaterial)."""
    key = new_key("HMAC_256", "GENERATE_VERIFY_MAC")
    with pytest.raises(errors.UnsupportedOperationException, match="only with symmetric"):
        do_import(key, 1, **option)
    assert key.key_state is KeyState.PENDING_IMPORT
    do_import(key, 1)
    do_import(key, 1)  # and re-importing the same material needs none of them
    assert key.key_state is KeyState.ENABLED


def test_a_reimport_without_a_description_keeps_the_last_one():
    key = new_key()
    do_import(key, 1, description="from the HSM")
    do_import(key, 1)
    assert key.imports[mid(1)].description == "from the HSM"
    do_import(key, 1, description="")
    assert key.imports[mid(1)].description == ""


# -- deleting imported material ----------------------------------------------------------------------


def test_delete_current_material_returns_the_key_to_pending_import():
    key = new_key()
    do_import(key, 1)
    assert key.delete_imported_material(None, ALICE) == mid(1)
    assert key.key_state is KeyState.PENDING_IMPORT
    assert key.materials == {}
    assert key.current_key_material_id == mid(1)  # the version to re-import
    assert key.imports[mid(1)].imported is False
    assert key.material_shred_pending == [mid(1)]
    assert event_names(key)[-1] == "ImportedKeyMaterialDeleted"
    assert key.pending_events[-1].expired is False
    with pytest.raises(errors.KMSInvalidStateException):
        key.check("Encrypt")
    key.record_material_shredded(mid(1), SERVICE)
    assert key.material_shred_pending == []
    assert event_names(key)[-1] == "ImportedKeyMaterialShredded"
    with pytest.raises(errors.KMSInvalidStateException):
        key.record_material_shredded(mid(1), SERVICE)


def test_deleting_deleted_material_again_records_nothing():
    key = new_key()
    do_import(key, 1)
    key.delete_imported_material(mid(1), ALICE)
    count = len(key.pending_events)
    assert key.delete_imported_material(mid(1), ALICE) == mid(1)
    assert key.delete_imported_material(None, ALICE) == mid(1)
    assert len(key.pending_events) == count
    assert key.material_shred_pending == [mid(1)]


def test_delete_of_unknown_material_is_not_found():
    key = new_key()
    with pytest.raises(errors.NotFoundException, match=f"Key material {mid(9)} is not associated"):
        key.delete_imported_material(mid(9), ALICE)
    do_import(key, 1)
    with pytest.raises(errors.NotFoundException, match=f"Key material {mid(9)} is not associated"):
        key.delete_imported_material(mid(9), ALICE)


def test_delete_of_the_material_of_a_key_that_never_had_any_has_no_effect():
    # KDG key-state table: DeleteImportedKeyMaterial in PendingImport, "(No effect)"
    key = new_key()
    version = key.version
    assert key.delete_imported_material(None, ALICE) is None
    assert (key.key_state, key.version) == (KeyState.PENDING_IMPORT, version)


def test_deleting_material_of_a_disabled_key_makes_it_pending_import():
    key = new_key()
    do_import(key, 1)
    key.disable(ALICE)
    key.delete_imported_material(None, ALICE)
    assert key.key_state is KeyState.PENDING_IMPORT


def test_deleting_material_of_a_key_pending_deletion_keeps_its_state():
    """"When the specified KMS key is in the PendingDeletion state, this operation does not
    change the KMS key's state" (DeleteImportedKeyMaterial); the material is still shredded."""
    key = new_key()
    do_import(key, 1)
    key.schedule_deletion(7, T0, ALICE)
    assert key.delete_imported_material(None, ALICE) == mid(1)
    assert key.key_state is KeyState.PENDING_DELETION
    assert key.materials == {} and key.material_shred_pending == [mid(1)]
    key.cancel_deletion(T0 + timedelta(days=1), ALICE)
    assert key.key_state is KeyState.PENDING_IMPORT  # not Disabled: it has no material to use
    do_import(key, 1)
    assert key.key_state is KeyState.ENABLED


@pytest.mark.parametrize(("imports", "after"), [(0, KeyState.PENDING_IMPORT),
                                                (1, KeyState.DISABLED)])
def test_cancelling_a_deletion_disables_the_key_unless_it_has_no_material(imports, after):
    key = new_key()
    for n in range(1, imports + 1):
        do_import(key, n)
    key.schedule_deletion(7, T0, ALICE)
    key.cancel_deletion(T0, ALICE)
    assert key.key_state is after


def test_deleting_pending_rotation_material_leaves_the_key_enabled():
    key = new_key()
    do_import(key, 1)
    do_import(key, 2, import_type=NEW)
    assert key.delete_imported_material(mid(2), ALICE) == mid(2)
    assert key.key_state is KeyState.ENABLED
    assert key.current_key_material_id == mid(1) and set(key.materials) == {mid(1)}
    assert key.material_shred_pending == [mid(2)]
    with pytest.raises(errors.KMSInvalidStateException, # AWS's text (issue 12)
                       match="^No available key material pending rotation for the key: arn:"):
        key.rotate_on_demand(None, T0, ALICE)  # deleted material cannot be rotated to


def test_reimport_after_deletion_restores_enabled():
    key = new_key()
    do_import(key, 1)
    key.delete_imported_material(None, ALICE)
    key.record_material_shredded(mid(1), SERVICE)
    later = T0 + timedelta(days=2)
    do_import(key, 1, now=later)  # ImportType defaults to EXISTING
    assert key.key_state is KeyState.ENABLED
    assert key.imports[mid(1)].imported and key.current_key_material_id == mid(1)
    assert key.materials[mid(1)].sealed_material == imported(1).sealed_material
    key.check("Encrypt")


def test_reimport_before_the_shred_is_recorded_cancels_it():
    key = new_key()
    do_import(key, 1)
    key.delete_imported_material(None, ALICE)
    do_import(key, 1)
    assert key.material_shred_pending == []
    assert key.key_state is KeyState.ENABLED
    with pytest.raises(errors.KMSInvalidStateException):
        key.record_material_shredded(mid(1), SERVICE)


# -- expiry ----------------------------------------------------------------------------------------


def test_material_expires_at_valid_to():
    key = new_key()
    valid_to = T0 + timedelta(days=10)
    do_import(key, 1, model=EXPIRES, valid_to=valid_to)
    assert key.pending_events[-1].next_expiry == valid_to
    assert key.expired_materials(valid_to - timedelta(seconds=1)) == []
    assert key.expire_imported_material(valid_to - timedelta(seconds=1), SERVICE) == []
    assert key.key_state is KeyState.ENABLED
    assert key.expired_materials(valid_to) == [mid(1)]
    assert key.expire_imported_material(valid_to, SERVICE) == [mid(1)]
    assert key.key_state is KeyState.PENDING_IMPORT
    assert key.materials == {} and key.material_shred_pending == [mid(1)]
    event = key.pending_events[-1]
    assert type(event).__name__ == "ImportedKeyMaterialDeleted" and event.expired is True
    assert event.actor == SERVICE
    assert key.expired_materials(valid_to + timedelta(days=1)) == []  # expires once
    key.record_material_shredded(mid(1), SERVICE)
    assert key.pending_events[-1].next_expiry is None
    # re-import (with a new expiry) makes it usable again
    do_import(key, 1, model=EXPIRES, valid_to=valid_to + timedelta(days=5), now=valid_to)
    assert key.key_state is KeyState.ENABLED


def test_next_expiry_is_the_earliest_of_the_present_material():
    key = new_key()
    do_import(key, 1, model=EXPIRES, valid_to=T0 + timedelta(days=10))
    do_import(key, 2, import_type=NEW, model=EXPIRES, valid_to=T0 + timedelta(days=5))
    assert key.pending_events[-1].next_expiry == T0 + timedelta(days=5)
    assert key.next_expiry() == T0 + timedelta(days=5)
    expired = key.expire_imported_material(T0 + timedelta(days=6), SERVICE)
    assert expired == [mid(2)]
    assert key.key_state is KeyState.ENABLED  # the current version is still there
    key.record_material_shredded(mid(2), SERVICE)
    assert key.pending_events[-1].next_expiry == T0 + timedelta(days=10)


def test_material_that_does_not_expire_never_does():
    key = new_key()
    do_import(key, 1)
    assert key.expired_materials(T0 + timedelta(days=10_000)) == []


def test_a_deleted_key_has_nothing_to_expire():
    key = new_key()
    do_import(key, 1, model=EXPIRES, valid_to=T0 + timedelta(days=30))
    key.schedule_deletion(7, T0, ALICE)
    key.complete_deletion(T0 + timedelta(days=7), SERVICE)
    assert key.expired_materials(T0 + timedelta(days=31)) == []


# -- rotation ----------------------------------------------------------------------------------------


def test_rotate_on_demand_without_pending_material_is_invalid_state():
    key = new_key()
    do_import(key, 1)
    with pytest.raises(errors.KMSInvalidStateException, # AWS's text (issue 12)
                       match="^No available key material pending rotation for the key: arn:"):
        key.rotate_on_demand(None, T0, ALICE)
    assert key.current_key_material_id == mid(1)


def test_rotate_on_demand_to_pending_material():
    key = new_key()
    do_import(key, 1)
    do_import(key, 2, import_type=NEW)
    when = T0 + timedelta(days=3)
    key.rotate_on_demand(None, when, ALICE)
    assert key.current_key_material_id == mid(2)
    assert key.material_state(mid(2)) is KeyMaterialState.CURRENT
    assert key.material_state(mid(1)) is KeyMaterialState.NON_CURRENT
    assert not key.imports[mid(2)].pending_rotation
    assert key.on_demand_rotations == 1
    assert [(m.key_material_id, m.rotation_type, m.created) for m in key.rotations()] == [
        (mid(2), RotationType.ON_DEMAND, when)
    ]
    assert event_names(key)[-1] == "ImportedKeyMaterialRotated"
    # both versions are present (old ciphertext still decrypts), and new material may follow
    assert set(key.materials) == {mid(1), mid(2)}
    do_import(key, 3, import_type=NEW)
    assert key.material_state(mid(3)) is KeyMaterialState.PENDING_ROTATION


def test_rotation_to_imported_material_needs_an_enabled_key():
    key = new_key()
    do_import(key, 1)
    do_import(key, 2, import_type=NEW)
    key.disable(ALICE)
    with pytest.raises(errors.DisabledException):
        key.rotate_on_demand(None, T0, ALICE)


def test_automatic_rotation_is_unsupported_for_imported_and_asymmetric_keys():
    external = new_key()
    do_import(external, 1)
    rsa = new_key("RSA_2048", "SIGN_VERIFY", origin="AWS_KMS", material=generated(0))
    hmac_key = new_key("HMAC_256", "GENERATE_VERIFY_MAC", origin="AWS_KMS", material=generated(0))
    for key in (external, rsa, hmac_key):
        with pytest.raises(errors.UnsupportedOperationException):
            key.enable_rotation(None, T0, ALICE)
        with pytest.raises(errors.UnsupportedOperationException):
            key.disable_rotation(ALICE)
        assert not key.rotation_enabled
    for key in (rsa, hmac_key):
        with pytest.raises(errors.UnsupportedOperationException):
            key.rotate_on_demand(generated(1), T0, ALICE)


# -- keys with generated material refuse import operations ----------------------------------------


def test_aws_kms_keys_refuse_every_import_operation():
    key = new_key(origin="AWS_KMS", material=generated(0))
    with pytest.raises(errors.UnsupportedOperationException, match="AWS_KMS"):
        issue(key, "t1")
    with pytest.raises(errors.UnsupportedOperationException):
        key.import_parameters_for("t1", T0)
    with pytest.raises(errors.UnsupportedOperationException):
        do_import(key, 1)
    with pytest.raises(errors.UnsupportedOperationException):
        key.delete_imported_material(None, ALICE)
    assert event_names(key) == ["KeyCreated"]
    assert key.imports == {} and key.key_state is KeyState.ENABLED


# -- replay --------------------------------------------------------------------------------------------


def full_import_history() -> KmsKey:
    """An imported key through every import event, and a few others."""
    key = new_key()
    issue(key, "t1", T0)
    do_import(key, 1, model=EXPIRES, valid_to=T0 + timedelta(days=100), description="v1")
    key.tag({"team": "a"}, ALICE)
    issue(key, "t2", T0 + timedelta(days=2))  # prunes t1
    do_import(key, 2, import_type=NEW, now=T0 + timedelta(days=2))
    key.rotate_on_demand(None, T0 + timedelta(days=3), ALICE)
    key.delete_imported_material(mid(2), ALICE)
    key.record_material_shredded(mid(2), SERVICE)
    do_import(key, 2, import_type=EXISTING, now=T0 + timedelta(days=4))
    do_import(key, 3, import_type=NEW, model=EXPIRES, valid_to=T0 + timedelta(days=20),
              now=T0 + timedelta(days=4))
    key.expire_imported_material(T0 + timedelta(days=20), SERVICE)
    key.record_material_shredded(mid(3), SERVICE)
    key.disable(ALICE)
    return key


def test_full_history_visits_every_import_event():
    key = full_import_history()
    assert {
        "ImportParametersIssued", "KeyMaterialImported", "ImportedKeyMaterialRotated",
        "ImportedKeyMaterialDeleted", "ImportedKeyMaterialShredded",
    } <= set(event_names(key))
    assert key.current_key_material_id == mid(2) and key.key_state is KeyState.DISABLED
    assert set(key.import_parameters) == {"t2"}
    assert [m.imported for m in key.imports.values()] == [True, True, False]


def test_import_events_replay_in_memory_to_identical_state():
    key = full_import_history()
    events = key.collect_events()
    replayed = reduce(lambda aggregate, e: e.mutate(aggregate), events, None)
    assert type(replayed) is KmsKey
    assert state(replayed) == state(key)
    assert replayed.version == key.version == len(events)


def test_import_events_replay_through_the_ledger_and_a_snapshot(ledger):
    key = full_import_history()
    ledger.save(key)
    loaded = ledger.get_key(KEY_ID)
    assert loaded is not key
    assert state(loaded) == state(key)
    ledger.take_snapshot(KEY_ID)
    [snapshot] = list(ledger.snapshots.get(KEY_ID))
    assert snapshot.originator_version == key.version
    from_snapshot = ledger.repository.get(KEY_ID)
    assert state(from_snapshot) == state(key)
    # == alone would pass for a plain str (KeyState is a StrEnum); the aggregate uses `is`
    assert type(from_snapshot.key_state) is KeyState, type(from_snapshot.key_state)
    assert isinstance(from_snapshot.imports[mid(1)], ImportedMaterial)
    assert isinstance(from_snapshot.import_parameters["t2"], ImportParameters)
    assert from_snapshot.imports[mid(1)].expiration_model is ExpirationModel.KEY_MATERIAL_EXPIRES
    # and the snapshot is a base later events apply to
    from_snapshot.enable(ALICE)
    ledger.save(from_snapshot)
    assert ledger.get_key(KEY_ID).key_state is KeyState.ENABLED


def test_a_snapshot_of_a_key_pending_shredding_replays(ledger):
    key = new_key()
    do_import(key, 1, model=EXPIRES, valid_to=T0 + timedelta(days=1))
    issue(key, "t")
    key.expire_imported_material(T0 + timedelta(days=1), SERVICE)
    ledger.save(key)
    ledger.take_snapshot(KEY_ID)
    loaded = ledger.get_key(KEY_ID)
    assert state(loaded) == state(key)
    assert loaded.material_shred_pending == [mid(1)]
    loaded.record_material_shredded(mid(1), SERVICE)
    assert loaded.material_shred_pending == []


def test_reimport_into_a_key_loaded_from_a_snapshot_enables_it(ledger):
    key = new_key()
    do_import(key, 1)
    key.delete_imported_material(None, ALICE)
    key.record_material_shredded(mid(1), SERVICE)
    ledger.save(key)
    ledger.take_snapshot(KEY_ID)
    loaded = ledger.get_key(KEY_ID)
    assert loaded.key_state == KeyState.PENDING_IMPORT
    do_import(loaded, 1, now=T0 + timedelta(days=1))
    assert loaded.imports[mid(1)].imported
    assert loaded.key_state is KeyState.ENABLED
