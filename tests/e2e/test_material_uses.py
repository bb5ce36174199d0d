"""``GET /ledger/v1/keys/{id}/materials`` counts the uses of signing, MAC and key agreement
keys too (their records name no ciphertext), and their first and last use."""

from __future__ import annotations

import hashlib
from datetime import datetime

import pytest
from cryptography.hazmat.primitives.asymmetric import ec
from cryptography.hazmat.primitives.serialization import Encoding, PublicFormat


@pytest.fixture(scope="module")
def server(store_server):
    return store_server


def _materials(server, key_id: str) -> dict:
    response = server.ledger_get(f"/ledger/v1/keys/{key_id}/materials")
    assert response.status_code == 200, response.text
    (material,) = response.json()["Materials"]
    return material


def _used(material: dict) -> tuple[datetime, datetime]:
    return (datetime.fromisoformat(material["FirstUsed"]),
            datetime.fromisoformat(material["LastUsed"]))


def _audit_time(server, key_id: str, response) -> datetime:
    """The eventTime of a request's audit record (to the second, as CloudTrail shows it)."""
    request_id = response["ResponseMetadata"]["RequestId"]
    records = server.ledger_get(f"/ledger/v1/audit?key_id={key_id}&limit=1000").json()["Records"]
    (record,) = [r for r in records if r["requestID"] == request_id]
    return datetime.fromisoformat(record["eventTime"].replace("Z", "+00:00"))


def test_signatures_are_counted_per_material(server):
    kms = server.kms()
    key_id = kms.create_key(KeyUsage="SIGN_VERIFY", KeySpec="ECC_NIST_P256")["KeyMetadata"]["KeyId"]
    assert _materials(server, key_id)["Signatures"] == {"Sign": 0, "Verify": 0}
    digest = hashlib.sha256(b"signed").digest()
    first = kms.sign(KeyId=key_id, Message=digest, MessageType="DIGEST",
                     SigningAlgorithm="ECDSA_SHA_256")
    kms.sign(KeyId=key_id, Message=digest, MessageType="DIGEST", SigningAlgorithm="ECDSA_SHA_256")
    last = kms.verify(KeyId=key_id, Message=digest, MessageType="DIGEST",
                      Signature=first["Signature"], SigningAlgorithm="ECDSA_SHA_256")
    material = _materials(server, key_id)
    assert material["Signatures"] == {"Sign": 2, "Verify": 1}
    assert "Macs" not in material and "SharedSecrets" not in material
    assert (material["Produced"], material["Decryptions"]) == (
        {"Encrypt": 0, "GenerateDataKey*": 0, "ReEncrypt": 0}, {"Decrypt": 0, "ReEncrypt": 0})
    first_used, last_used = _used(material)
    assert (first_used.replace(microsecond=0), last_used.replace(microsecond=0)) == (
        _audit_time(server, key_id, first), _audit_time(server, key_id, last))


def test_macs_are_counted_per_material(server):
    kms = server.kms()
    key_id = kms.create_key(KeyUsage="GENERATE_VERIFY_MAC",
                            KeySpec="HMAC_256")["KeyMetadata"]["KeyId"]
    mac = kms.generate_mac(KeyId=key_id, Message=b"m", MacAlgorithm="HMAC_SHA_256")
    kms.verify_mac(KeyId=key_id, Message=b"m", MacAlgorithm="HMAC_SHA_256", Mac=mac["Mac"])
    kms.verify_mac(KeyId=key_id, Message=b"m", MacAlgorithm="HMAC_SHA_256", Mac=mac["Mac"])
    material = _materials(server, key_id)
    assert material["Macs"] == {"GenerateMac": 1, "VerifyMac": 2}
    assert material["FirstUsed"] is not None and material["FirstUsed"] <= material["LastUsed"]


def test_shared_secrets_are_counted_per_material(server):
    kms = server.kms()
    key_id = kms.create_key(KeyUsage="KEY_AGREEMENT", KeySpec="ECC_NIST_P256")["KeyMetadata"]["KeyId"]
    peer = ec.generate_private_key(ec.SECP256R1()).public_key().public_bytes(
        Encoding.DER, PublicFormat.SubjectPublicKeyInfo)
    kms.derive_shared_secret(KeyId=key_id, KeyAgreementAlgorithm="ECDH", PublicKey=peer)
    material = _materials(server, key_id)
    assert material["SharedSecrets"] == {"DeriveSharedSecret": 1}
    assert material["FirstUsed"] == material["LastUsed"] is not None
