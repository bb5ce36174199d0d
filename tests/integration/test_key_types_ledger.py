"""Asymmetric, HMAC, ML-DSA and ML-KEM keys and imported key material on real stores.

Each test runs on SQLite and on PostgreSQL (the ``kms`` fixture), with the service in
process and its clock moved by the test. Outputs are checked with ``cryptography`` outside
keyledger; material is looked for in every stored byte.
"""

from __future__ import annotations

import hmac
import os
import sqlite3
from datetime import timedelta
from functools import reduce
from pathlib import Path

import pytest
from cryptography.hazmat.primitives import hashes, serialization
from cryptography.hazmat.primitives.asymmetric import ec, padding
from cryptography.hazmat.primitives.keywrap import aes_key_wrap_with_padding

from api.bootstrap import build_service
from domain import errors
from domain.key import ImportedMaterial, ImportParameters
from domain.key_states import KeyState
from infrastructure.key_hierarchy import MaterialShredded, material_entry
from tests import secret_scan
from tests.integration.test_ledger import _all_stored_bytes, _drop_view

REGION = "us-east-1"
KEYS = {  # name -> CreateKey parameters
    "rsa": {"KeySpec": "RSA_2048", "KeyUsage": "SIGN_VERIFY"},
    "ecc": {"KeySpec": "ECC_NIST_P256", "KeyUsage": "SIGN_VERIFY"},
    "mldsa": {"KeySpec": "ML_DSA_44", "KeyUsage": "SIGN_VERIFY"},
    "hmac": {"KeySpec": "HMAC_256", "KeyUsage": "GENERATE_VERIFY_MAC"},
    "mlkem": {"KeySpec": "ML_KEM_768", "KeyUsage": "ENCAPSULATE_DECAPSULATE"},
}
MESSAGE = b"signed before the restart"


def _region(kms):
    return kms.service.region(REGION)


def _keyring(kms):
    return _region(kms).resources.hierarchy._keyring


def _create(kms, **params) -> str:
    return kms.call("CreateKey", **params)["KeyMetadata"]["KeyId"]


def _material(kms, key_id: str, key_material_id: str | None = None) -> bytes:
    """A key's material in clear, unsealed as the service does."""
    key = _region(kms).ledger.get_key(key_id)
    version = key.materials[key_material_id or key.current_key_material_id]
    return _region(kms).hierarchy.unseal(key_id, version.key_material_id, version.sealed_material,
                                         version.own_data_key)


def _assert_nowhere(kms, *secrets: bytes) -> None:
    """None of ``secrets`` at rest, raw, hex or base64 (tests/secret_scan.py); the scan must
    have read the ledger's events (every key of the region appears in them)."""
    recorded = _region(kms).ledger.recorder.select_notifications(start=1, limit=1000)
    keys = {str(n.originator_id).encode() for n in recorded}
    assert keys
    hits = secret_scan.scan(_all_stored_bytes(kms.settings),
                            {f"secret {n} ({s[:4].hex()}…)": s for n, s in enumerate(secrets)},
                            must_see=keys)
    assert not hits, "stored in clear:\n" + "\n".join(hits)


def _sign(kms, key_id: str, algorithm: str, message: bytes = MESSAGE) -> bytes:
    return kms.call("Sign", KeyId=key_id, Message=message, MessageType="RAW",
                    SigningAlgorithm=algorithm)["Signature"]


def _verify(kms, key_id: str, algorithm: str, signature: bytes, message: bytes = MESSAGE) -> bool:
    return kms.call("Verify", KeyId=key_id, Message=message, MessageType="RAW",
                    SigningAlgorithm=algorithm, Signature=signature)["SignatureValid"]


def _verify_locally(name: str, public_der: bytes, signature: bytes, message: bytes = MESSAGE) -> None:
    public = serialization.load_der_public_key(public_der)
    if name == "rsa":
        h = hashes.SHA256()
        public.verify(signature, message, padding.PSS(mgf=padding.MGF1(h), salt_length=32), h)
    elif name == "ecc":
        public.verify(signature, message, ec.ECDSA(hashes.SHA256()))
    else:
        public.verify(signature, message)


SIGNING = {"rsa": "RSASSA_PSS_SHA_256", "ecc": "ECDSA_SHA_256", "mldsa": "ML_DSA_SHAKE_256"}


def _create_all(kms) -> dict[str, str]:
    return {name: _create(kms, Description=name, **params) for name, params in KEYS.items()}


# -- keys of every family survive a restart -----------------------------------------------------------


def test_asymmetric_hmac_and_kem_keys_work_after_a_restart(kms):
    keys = _create_all(kms)
    public = {name: kms.call("GetPublicKey", KeyId=keys[name])["PublicKey"]
              for name in ("rsa", "ecc", "mldsa", "mlkem")}
    with pytest.raises(errors.UnsupportedOperationException):
        kms.call("GetPublicKey", KeyId=keys["hmac"])
    signatures = {name: _sign(kms, keys[name], algorithm) for name, algorithm in SIGNING.items()}
    tag = kms.call("GenerateMac", KeyId=keys["hmac"], MacAlgorithm="HMAC_SHA_256",
                   Message=MESSAGE)["Mac"]
    encapsulated = kms.call("Encapsulate", KeyId=keys["mlkem"], EncapsulationAlgorithm="ML_KEM")

    kms.restart()

    for name in ("rsa", "ecc", "mldsa", "mlkem"):
        assert kms.call("GetPublicKey", KeyId=keys[name])["PublicKey"] == public[name]
    for name, algorithm in SIGNING.items():
        assert _verify(kms, keys[name], algorithm, signatures[name])
        fresh = _sign(kms, keys[name], algorithm, b"after the restart")
        _verify_locally(name, public[name], fresh, b"after the restart")
        _verify_locally(name, public[name], signatures[name])
    again = kms.call("GenerateMac", KeyId=keys["hmac"], MacAlgorithm="HMAC_SHA_256", Message=MESSAGE)
    assert again["Mac"] == tag
    assert kms.call("VerifyMac", KeyId=keys["hmac"], MacAlgorithm="HMAC_SHA_256", Message=MESSAGE,
                    Mac=tag)["MacValid"]
    assert hmac.new(_material(kms, keys["hmac"]), MESSAGE, "sha256").digest() == tag
    decapsulated = kms.call("Decapsulate", KeyId=keys["mlkem"], EncapsulationAlgorithm="ML_KEM",
                            SharedSecretCiphertextBlob=encapsulated["SharedSecretCiphertextBlob"])
    assert decapsulated["SharedSecret"] == encapsulated["SharedSecret"]
    # encapsulation outside keyledger, to the public key read before the restart
    secret, ciphertext = serialization.load_der_public_key(public["mlkem"]).encapsulate()
    assert kms.call("Decapsulate", KeyId=keys["mlkem"], EncapsulationAlgorithm="ML_KEM",
                    SharedSecretCiphertextBlob=ciphertext)["SharedSecret"] == secret
    for name, key_id in keys.items():
        meta = kms.call("DescribeKey", KeyId=key_id)["KeyMetadata"]
        assert (meta["KeySpec"], meta["KeyUsage"], meta["KeyState"]) == (
            KEYS[name]["KeySpec"], KEYS[name]["KeyUsage"], "Enabled"
        )


def test_private_keys_are_never_stored_in_clear(kms):
    keys = _create_all(kms)
    secrets = []
    for name in ("rsa", "ecc", "mldsa", "mlkem"):
        der = _material(kms, keys[name])
        private = serialization.load_der_private_key(der, password=None)  # PKCS#8 DER
        spki = private.public_key().public_bytes(
            serialization.Encoding.DER, serialization.PublicFormat.SubjectPublicKeyInfo
        )
        assert spki == kms.call("GetPublicKey", KeyId=keys[name])["PublicKey"]
        secrets.append(der)
        if name == "ecc":  # the bare private scalar too
            secrets.append(private.private_numbers().private_value.to_bytes(32, "big"))
    hmac_key = _material(kms, keys["hmac"])
    assert len(hmac_key) == 32
    secrets.append(hmac_key)
    kms.restart()  # everything flushed and reopened
    _assert_nowhere(kms, *secrets)


def test_deleted_asymmetric_keys_are_shredded(kms):
    key_ids = [_create(kms, **KEYS["ecc"]), _create(kms, **KEYS["mlkem"])]
    secrets, wrapped_deks, versions = [], [], []
    for key_id in key_ids:
        secrets.append(_material(kms, key_id))
        wrapped_deks.append(_keyring(kms).get(key_id))
        key = _region(kms).ledger.get_key(key_id)
        versions.append((key.current_key_material_id, key.current_material.sealed_material))
        kms.call("ScheduleKeyDeletion", KeyId=key_id, PendingWindowInDays=7)
    assert all(wrapped_deks)
    kms.advance(days=7, seconds=1)

    for key_id in key_ids:
        with pytest.raises(errors.NotFoundException):
            kms.call("DescribeKey", KeyId=key_id)
    assert kms.call("ListKeys")["Keys"] == []
    kms.restart()
    region = _region(kms)
    for key_id, (material_id, sealed) in zip(key_ids, versions, strict=True):
        types = [e["Type"] for e in kms.service.key_history(REGION, key_id)]
        assert types[-2:] == ["KeyDeleted", "KeyMaterialShredded"]
        assert region.ledger.get_key(key_id).current_material.sealed_material == sealed
        with pytest.raises(MaterialShredded):
            region.hierarchy.unseal(key_id, material_id, sealed)
        assert _keyring(kms).get(key_id) is None
    _assert_nowhere(kms, *secrets, *wrapped_deks)


# -- imported material --------------------------------------------------------------------------------


def _wrap(public_der: bytes, algorithm: str, material: bytes) -> bytes:
    public = serialization.load_der_public_key(public_der)
    h = hashes.SHA1() if algorithm.endswith("SHA_1") else hashes.SHA256()
    oaep = padding.OAEP(mgf=padding.MGF1(h), algorithm=h, label=None)
    if algorithm.startswith("RSAES_OAEP"):
        return public.encrypt(material, oaep)
    aes_key = os.urandom(32)
    return public.encrypt(aes_key, oaep) + aes_key_wrap_with_padding(aes_key, material)


def _parameters(kms, key_id: str, algorithm: str = "RSAES_OAEP_SHA_256") -> dict:
    return kms.call("GetParametersForImport", KeyId=key_id, WrappingAlgorithm=algorithm,
                    WrappingKeySpec="RSA_2048")


def _import(kms, key_id: str, material: bytes, parameters: dict | None = None,
            algorithm: str = "RSAES_OAEP_SHA_256", **params) -> str:
    parameters = parameters or _parameters(kms, key_id, algorithm)
    params.setdefault("ExpirationModel", "KEY_MATERIAL_DOES_NOT_EXPIRE")
    return kms.call(
        "ImportKeyMaterial", KeyId=key_id, ImportToken=parameters["ImportToken"],
        EncryptedKeyMaterial=_wrap(parameters["PublicKey"], algorithm, material), **params,
    )["KeyMaterialId"]


def _state(kms, key_id: str) -> str:
    return kms.call("DescribeKey", KeyId=key_id)["KeyMetadata"]["KeyState"]


def test_deleting_imported_material_destroys_its_own_data_key(kms):
    key_id = _create(kms, Origin="EXTERNAL")
    assert _state(kms, key_id) == "PendingImport"
    material = os.urandom(32)
    parameters = _parameters(kms, key_id, "RSA_AES_KEY_WRAP_SHA_256")
    material_id = _import(kms, key_id, material, parameters, "RSA_AES_KEY_WRAP_SHA_256")
    assert _state(kms, key_id) == "Enabled"
    assert _material(kms, key_id, material_id) == material
    blob = kms.call("Encrypt", KeyId=key_id, Plaintext=b"imported")["CiphertextBlob"]
    entry = material_entry(key_id, material_id)
    wrapped_material_dek = _keyring(kms).get(entry)
    assert wrapped_material_dek is not None
    key = _region(kms).ledger.get_key(key_id)
    sealed = key.materials[material_id].sealed_material
    _assert_nowhere(kms, material)

    out = kms.call("DeleteImportedKeyMaterial", KeyId=key_id)
    assert out["KeyMaterialId"] == material_id
    assert _state(kms, key_id) == "PendingImport"
    assert _keyring(kms).get(entry) is None
    assert _keyring(kms).get(key_id) is not None  # the key itself lives on
    with pytest.raises(MaterialShredded):
        _region(kms).hierarchy.unseal(key_id, material_id, sealed, own_data_key=True)
    with pytest.raises(errors.KMSInvalidStateException):
        kms.call("Decrypt", CiphertextBlob=blob)
    _assert_nowhere(kms, material, wrapped_material_dek)

    # The history still replays, after a restart, to a key awaiting its material.
    kms.restart()
    history = kms.service.key_history(REGION, key_id)
    assert [e["Type"] for e in history][-2:] == ["ImportedKeyMaterialDeleted",
                                                 "ImportedKeyMaterialShredded"]
    replayed = _region(kms).ledger.get_key(key_id)
    assert replayed.material_shred_pending == [] and replayed.materials == {}
    assert not replayed.imports[material_id].imported
    assert _region(kms).directory.due_key_ids(kms.service.clock.now().timestamp()) == []
    # Re-importing the same material (same token, still valid) makes old ciphertext readable.
    assert _import(kms, key_id, material, parameters, "RSA_AES_KEY_WRAP_SHA_256") == material_id
    assert _state(kms, key_id) == "Enabled"
    assert kms.call("Decrypt", CiphertextBlob=blob)["Plaintext"] == b"imported"


def test_deleting_imported_private_key_material_destroys_its_own_data_key(kms):
    """The same crypto-shredding for an imported private key (ECC P-256 signing)."""
    key_id = _create(kms, Origin="EXTERNAL", KeySpec="ECC_NIST_P256", KeyUsage="SIGN_VERIFY")
    private = ec.generate_private_key(ec.SECP256R1())
    pkcs8 = private.private_bytes(serialization.Encoding.DER, serialization.PrivateFormat.PKCS8,
                                  serialization.NoEncryption())
    scalar = private.private_numbers().private_value.to_bytes(32, "big")
    material_id = _import(kms, key_id, pkcs8, algorithm="RSA_AES_KEY_WRAP_SHA_256")
    private.public_key().verify(_sign(kms, key_id, "ECDSA_SHA_256"), MESSAGE,
                                ec.ECDSA(hashes.SHA256()))
    entry = material_entry(key_id, material_id)
    wrapped_material_dek = _keyring(kms).get(entry)
    assert wrapped_material_dek is not None
    sealed = _region(kms).ledger.get_key(key_id).materials[material_id].sealed_material
    _assert_nowhere(kms, pkcs8, scalar)

    kms.call("DeleteImportedKeyMaterial", KeyId=key_id, KeyMaterialId=material_id)
    assert _state(kms, key_id) == "PendingImport"
    assert _keyring(kms).get(entry) is None
    with pytest.raises(MaterialShredded):
        _region(kms).hierarchy.unseal(key_id, material_id, sealed, own_data_key=True)
    with pytest.raises(errors.KMSInvalidStateException):
        _sign(kms, key_id, "ECDSA_SHA_256")
    _assert_nowhere(kms, pkcs8, scalar, wrapped_material_dek)


def test_imported_material_expires_on_the_clock(kms):
    key_id = _create(kms, Origin="EXTERNAL")
    material = os.urandom(32)
    parameters = _parameters(kms, key_id)
    valid_to = kms.service.clock.now() + timedelta(days=1)
    material_id = _import(kms, key_id, material, parameters, ExpirationModel="KEY_MATERIAL_EXPIRES",
                          ValidTo=valid_to)
    meta = kms.call("DescribeKey", KeyId=key_id)["KeyMetadata"]
    assert (meta["ExpirationModel"], meta["ValidTo"]) == ("KEY_MATERIAL_EXPIRES", valid_to)
    blob = kms.call("Encrypt", KeyId=key_id, Plaintext=b"until tomorrow")["CiphertextBlob"]
    entry = material_entry(key_id, material_id)
    wrapped_material_dek = _keyring(kms).get(entry)

    kms.advance(hours=23)
    assert _state(kms, key_id) == "Enabled"
    kms.advance(hours=1, seconds=1)
    assert _state(kms, key_id) == "PendingImport"
    assert _keyring(kms).get(entry) is None
    with pytest.raises(errors.KMSInvalidStateException):
        kms.call("Encrypt", KeyId=key_id, Plaintext=b"p")
    with pytest.raises(errors.KMSInvalidStateException):
        kms.call("Decrypt", CiphertextBlob=blob)
    history = kms.service.key_history(REGION, key_id)
    deleted, shredded = history[-2:]
    assert (deleted["Type"], shredded["Type"]) == ("ImportedKeyMaterialDeleted",
                                                   "ImportedKeyMaterialShredded")
    assert deleted["Details"]["expired"] is True
    assert deleted["Actor"]["principal"] == shredded["Actor"]["principal"] == "kms.amazonaws.com"
    assert _region(kms).directory.due_key_ids(kms.service.clock.now().timestamp()) == []
    assert kms.service.run_scheduled() == 0  # nothing left to do
    _assert_nowhere(kms, material, wrapped_material_dek)

    # Re-import with a new token (the first expired with the day) and a later ValidTo.
    with pytest.raises(errors.ExpiredImportTokenException):
        _import(kms, key_id, material, parameters, ExpirationModel="KEY_MATERIAL_DOES_NOT_EXPIRE")
    assert _import(kms, key_id, material) == material_id
    assert _state(kms, key_id) == "Enabled"
    assert kms.call("Decrypt", CiphertextBlob=blob)["Plaintext"] == b"until tomorrow"


def _replay_without_snapshots(kms, key_id: str):
    events = list(_region(kms).ledger.repository.event_store.get(key_id))
    return reduce(lambda aggregate, event: event.mutate(aggregate), events, None)


def _key_state(aggregate) -> dict:
    return {k: v for k, v in vars(aggregate).items() if k != "_pending_events"}


def test_snapshot_of_an_imported_key_reloads_to_the_same_state(kms):
    key_id = _create(kms, Origin="EXTERNAL")
    first, second = os.urandom(32), os.urandom(32)
    parameters = _parameters(kms, key_id)
    valid_to = kms.service.clock.now() + timedelta(days=30)
    first_id = _import(kms, key_id, first, parameters, ExpirationModel="KEY_MATERIAL_EXPIRES",
                       ValidTo=valid_to, KeyMaterialDescription="first")
    second_id = _import(kms, key_id, second, parameters, ImportType="NEW_KEY_MATERIAL",
                        KeyMaterialDescription="second")
    _parameters(kms, key_id, "RSA_AES_KEY_WRAP_SHA_1")  # a second live token
    version = len(kms.service.key_history(REGION, key_id))
    for i in range(55 - version):
        kms.call("TagResource", KeyId=key_id, Tags=[{"TagKey": f"t{i % 9}", "TagValue": str(i)}])
    assert len(kms.service.key_history(REGION, key_id)) == 55
    snapshots = list(_region(kms).ledger.snapshots.get(key_id))
    assert [s.originator_version for s in snapshots] == [50]
    live = _key_state(_region(kms).ledger.get_key(key_id))

    kms.restart()
    loaded = _region(kms).ledger.get_key(key_id)  # from the snapshot and five events
    assert _key_state(loaded) == live
    # (== alone passes for a plain str: KeyState is a StrEnum; the aggregate compares with `is`)
    assert type(loaded.key_state) is KeyState, f"key_state reloaded as {type(loaded.key_state)}"
    assert loaded.enabled
    assert _key_state(_replay_without_snapshots(kms, key_id)) == live
    assert isinstance(loaded.imports[first_id], ImportedMaterial)
    assert all(isinstance(p, ImportParameters) for p in loaded.import_parameters.values())
    assert len(loaded.import_parameters) == 2
    assert loaded.imports[first_id].valid_to == valid_to
    # the service reads the same from it
    meta = kms.call("DescribeKey", KeyId=key_id)["KeyMetadata"]
    assert (meta["CurrentKeyMaterialId"], meta["ValidTo"]) == (first_id, valid_to)
    rotations = kms.call("ListKeyRotations", KeyId=key_id,
                         IncludeKeyMaterial="ALL_KEY_MATERIAL")["Rotations"]
    assert [(r["KeyMaterialId"], r["KeyMaterialState"], r["KeyMaterialDescription"])
            for r in rotations] == [(first_id, "CURRENT", "first"),
                                    (second_id, "PENDING_ROTATION", "second")]
    # the snapshot is a working base: rotate to the pending material, and the token still imports
    kms.call("RotateKeyOnDemand", KeyId=key_id)
    assert kms.call("DescribeKey", KeyId=key_id)["KeyMetadata"]["CurrentKeyMaterialId"] == second_id
    assert _import(kms, key_id, first, parameters, ImportType="EXISTING_KEY_MATERIAL",
                   KeyMaterialId=first_id) == first_id


def test_a_key_loaded_from_a_snapshot_completes_its_scheduled_deletion(kms):
    key_id = _create(kms, **KEYS["ecc"])
    secret = _material(kms, key_id)
    for i in range(48):
        kms.call("TagResource", KeyId=key_id, Tags=[{"TagKey": f"t{i % 5}", "TagValue": str(i)}])
    kms.call("ScheduleKeyDeletion", KeyId=key_id, PendingWindowInDays=7)  # version 50: snapshot
    assert [s.originator_version for s in _region(kms).ledger.snapshots.get(key_id)] == [50]
    kms.restart()
    _region(kms)  # a starting server opens its known regions
    kms.advance(days=7, seconds=1)
    types = [e["Type"] for e in kms.service.key_history(REGION, key_id)]
    assert types[-2:] == ["KeyDeleted", "KeyMaterialShredded"]
    with pytest.raises(errors.NotFoundException):
        kms.call("DescribeKey", KeyId=key_id)
    _assert_nowhere(kms, secret)


def test_listing_projection_rebuilds_exactly_with_every_key_type(kms):
    keys = _create_all(kms)
    expiring = _create(kms, Origin="EXTERNAL", Description="expiring")
    _import(kms, expiring, os.urandom(32), ExpirationModel="KEY_MATERIAL_EXPIRES",
            ValidTo=kms.service.clock.now() + timedelta(days=10))
    deleted_import = _create(kms, Origin="EXTERNAL", KeySpec="HMAC_384",
                             KeyUsage="GENERATE_VERIFY_MAC")
    _import(kms, deleted_import, os.urandom(64))
    kms.call("DeleteImportedKeyMaterial", KeyId=deleted_import)
    pending = _create(kms, Origin="EXTERNAL")
    kms.call("ScheduleKeyDeletion", KeyId=keys["mlkem"], PendingWindowInDays=7)
    kms.call("ScheduleKeyDeletion", KeyId=keys["ecc"], PendingWindowInDays=7)
    kms.call("CreateAlias", AliasName="alias/signer", TargetKeyId=keys["rsa"])
    kms.advance(days=7, seconds=1)  # ecc and mlkem deleted and shredded; nothing expired yet

    region = _region(kms)
    region.projection.catch_up()
    before = region.directory.snapshot()
    due_in_a_week = region.directory.due_key_ids((kms.service.clock.now() + timedelta(days=7)).timestamp())
    assert due_in_a_week == [expiring]
    listed = {k["KeyId"] for k in kms.call("ListKeys")["Keys"]}
    assert listed == {keys["rsa"], keys["mldsa"], keys["hmac"], expiring, deleted_import, pending}

    kms.close()
    _drop_view(kms.settings)
    kms.restart()
    region = _region(kms)
    assert region.directory.snapshot() == before
    assert region.directory.due_key_ids(
        (kms.service.clock.now() + timedelta(days=7)).timestamp()) == [expiring]
    assert {k["KeyId"] for k in kms.call("ListKeys")["Keys"]} == listed
    assert [a["TargetKeyId"] for a in kms.call("ListAliases")["Aliases"]] == [keys["rsa"]]


def _drop_material_due_column(settings) -> None:
    """Make the key view look as the first release made it (no material_due column)."""
    if settings.store:
        import psycopg

        with psycopg.connect(settings.store, autocommit=True) as conn:
            conn.execute("ALTER TABLE keyledger_us_east_1.key_listing DROP COLUMN material_due")
    else:
        path = Path(settings.data_dir) / "regions" / "us-east-1" / "directory.db"
        with sqlite3.connect(path) as conn:
            conn.execute("ALTER TABLE key_listing DROP COLUMN material_due")
        conn.close()


def test_a_key_view_from_the_first_release_gains_the_expiry_column(kms):
    """A data dir or schema made before imported material opens, and expiry then works."""
    kms.call("CreateKey")
    kms.service.close()
    _drop_material_due_column(kms.settings)
    kms.service = build_service(kms.settings)
    key_id = _create(kms, Origin="EXTERNAL")
    _import(kms, key_id, os.urandom(32), ExpirationModel="KEY_MATERIAL_EXPIRES",
            ValidTo=kms.service.clock.now() + timedelta(days=1))
    assert _state(kms, key_id) == "Enabled"
    kms.advance(days=2)
    assert _state(kms, key_id) == "PendingImport"
