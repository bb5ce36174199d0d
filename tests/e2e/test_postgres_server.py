"""The server on the PostgreSQL event store (``--store postgresql://...``).

Skipped only when neither KEYLEDGER_TEST_POSTGRES_URL nor CI is set (the ``pg_database``
fixture). With either set, an unreachable PostgreSQL is a test failure, not a skip.
"""

from __future__ import annotations

import base64
import os
import time
import uuid

import pytest

pytestmark = [pytest.mark.e2e, pytest.mark.postgres]


@pytest.fixture(scope="module")
def pg_server(server_factory, pg_database):
    return server_factory("pg", store=pg_database)


def test_postgres_round_trip_and_crash_restart(pg_server, aws_error):
    kms = pg_server.kms()
    md = kms.create_key(Description="on postgres")["KeyMetadata"]
    key_id = md["KeyId"]
    alias = f"alias/pg-{uuid.uuid4().hex[:10]}"
    kms.create_alias(AliasName=alias, TargetKeyId=key_id)
    ctx = {"store": "postgres"}
    blobs = {bytes([i]) * (i + 1): kms.encrypt(KeyId=alias, Plaintext=bytes([i]) * (i + 1),
                                               EncryptionContext=ctx)["CiphertextBlob"] for i in range(10)}
    for pt, blob in blobs.items():
        assert kms.decrypt(CiphertextBlob=blob, EncryptionContext=ctx)["Plaintext"] == pt

    kms.rotate_key_on_demand(KeyId=key_id)
    rotated_material = kms.describe_key(KeyId=key_id)["KeyMetadata"]["CurrentKeyMaterialId"]
    assert rotated_material != md["CurrentKeyMaterialId"]
    other = kms.create_key(Description="pg disabled")["KeyMetadata"]
    kms.disable_key(KeyId=other["KeyId"])

    pg_server.kill()
    pg_server.start()
    kms = pg_server.kms()

    desc = kms.describe_key(KeyId=alias)["KeyMetadata"]
    assert desc["KeyId"] == key_id
    assert desc["KeyState"] == "Enabled"
    assert desc["CurrentKeyMaterialId"] == rotated_material
    for pt, blob in blobs.items():
        resp = kms.decrypt(CiphertextBlob=blob, EncryptionContext=ctx)
        assert resp["Plaintext"] == pt
        assert resp["KeyMaterialId"] == md["CurrentKeyMaterialId"]
    assert kms.describe_key(KeyId=other["KeyId"])["KeyMetadata"]["KeyState"] == "Disabled"
    with aws_error("DisabledException"):
        kms.encrypt(KeyId=other["KeyId"], Plaintext=b"x")
    listed = {k["KeyId"] for page in kms.get_paginator("list_keys").paginate() for k in page["Keys"]}
    assert {key_id, other["KeyId"]} <= listed
    assert [a["AliasName"] for a in kms.list_aliases(KeyId=key_id)["Aliases"]] == [alias]

    events = pg_server.events(key_id)["Events"]
    assert events[0]["Type"] == "KeyCreated"
    assert any("Rotat" in e["Type"] for e in events)


def test_two_servers_on_one_database_agree(pg_server, server_factory, pg_database, e2e):
    # same --data-dir: the root key (data-dir/root.key) must be shared by every instance
    second = server_factory("pg-second", store=pg_database, start=False)
    second.data_dir = pg_server.data_dir
    second.start()
    ka, kb = pg_server.kms(), second.kms()
    md = ka.create_key(Description="pg shared")["KeyMetadata"]
    key_id = md["KeyId"]
    blob = ka.encrypt(KeyId=key_id, Plaintext=b"shared pg")["CiphertextBlob"]
    assert kb.decrypt(CiphertextBlob=blob)["Plaintext"] == b"shared pg"

    ka.disable_key(KeyId=key_id)
    started = time.monotonic()
    while True:
        r = e2e.raw_kms_call(second.url, "Encrypt", {"KeyId": key_id, "Plaintext": base64.b64encode(b"p").decode()})
        assert r.status_code < 500, r.text
        if r.status_code == 400 and e2e.aws_error_type(r.json()) == "DisabledException":
            break
        assert time.monotonic() - started < 1.0, f"second server still answers {r.status_code} after 1s"
        time.sleep(0.05)


def test_every_key_type_and_imported_material_survive_a_crash(pg_server, aws_error):
    """Asymmetric, HMAC, ML-DSA and ML-KEM keys and imported material on PostgreSQL: their
    results verify locally before and after the server is killed."""
    import hashlib
    import hmac

    from cryptography.hazmat.primitives import hashes, serialization
    from cryptography.hazmat.primitives.asymmetric import ec, padding

    kms = pg_server.kms()
    rsa_id = kms.create_key(KeySpec="RSA_2048", KeyUsage="SIGN_VERIFY")["KeyMetadata"]["KeyId"]
    ecc_id = kms.create_key(KeySpec="ECC_NIST_P256", KeyUsage="SIGN_VERIFY")["KeyMetadata"]["KeyId"]
    dsa_id = kms.create_key(KeySpec="ML_DSA_44", KeyUsage="SIGN_VERIFY")["KeyMetadata"]["KeyId"]
    kem_id = kms.create_key(KeySpec="ML_KEM_768", KeyUsage="ENCAPSULATE_DECAPSULATE")["KeyMetadata"]["KeyId"]
    hmac_id = kms.create_key(KeySpec="HMAC_256", KeyUsage="GENERATE_VERIFY_MAC", Origin="EXTERNAL")["KeyMetadata"]["KeyId"]
    publics = {k: kms.get_public_key(KeyId=k)["PublicKey"] for k in (rsa_id, ecc_id, dsa_id, kem_id)}

    material = os.urandom(32)
    params = kms.get_parameters_for_import(
        KeyId=hmac_id, WrappingAlgorithm="RSAES_OAEP_SHA_256", WrappingKeySpec="RSA_2048"
    )
    wrapping = serialization.load_der_public_key(params["PublicKey"])
    kms.import_key_material(
        KeyId=hmac_id, ImportToken=params["ImportToken"],
        EncryptedKeyMaterial=wrapping.encrypt(
            material, padding.OAEP(padding.MGF1(hashes.SHA256()), hashes.SHA256(), None)
        ),
        ExpirationModel="KEY_MATERIAL_DOES_NOT_EXPIRE",
    )
    shared, encapsulated = serialization.load_der_public_key(publics[kem_id]).encapsulate()

    pg_server.kill()
    pg_server.start()
    kms = pg_server.kms()

    for key_id in (rsa_id, ecc_id, dsa_id, kem_id):
        assert kms.get_public_key(KeyId=key_id)["PublicKey"] == publics[key_id]
    message = b"signed on postgres"
    signature = kms.sign(KeyId=rsa_id, Message=message, SigningAlgorithm="RSASSA_PSS_SHA_256")["Signature"]
    serialization.load_der_public_key(publics[rsa_id]).verify(
        signature, message, padding.PSS(padding.MGF1(hashes.SHA256()), 32), hashes.SHA256()
    )
    signature = kms.sign(KeyId=ecc_id, Message=message, SigningAlgorithm="ECDSA_SHA_256")["Signature"]
    serialization.load_der_public_key(publics[ecc_id]).verify(signature, message, ec.ECDSA(hashes.SHA256()))
    signature = kms.sign(KeyId=dsa_id, Message=message, SigningAlgorithm="ML_DSA_SHAKE_256")["Signature"]
    serialization.load_der_public_key(publics[dsa_id]).verify(signature, message)
    assert kms.decapsulate(
        KeyId=kem_id, EncapsulationAlgorithm="ML_KEM", SharedSecretCiphertextBlob=encapsulated
    )["SharedSecret"] == shared
    mac = kms.generate_mac(KeyId=hmac_id, Message=message, MacAlgorithm="HMAC_SHA_256")["Mac"]
    assert mac == hmac.new(material, message, hashlib.sha256).digest()

    kms.delete_imported_key_material(KeyId=hmac_id)
    assert kms.describe_key(KeyId=hmac_id)["KeyMetadata"]["KeyState"] == "PendingImport"
    with aws_error("KMSInvalidStateException"):
        kms.generate_mac(KeyId=hmac_id, Message=message, MacAlgorithm="HMAC_SHA_256")
    types = [e["Type"] for e in pg_server.events(hmac_id)["Events"]]
    assert types[-2:] == ["ImportedKeyMaterialDeleted", "ImportedKeyMaterialShredded"]
