"""Imported key material (Origin EXTERNAL), driven by unmodified boto3 against the real server.

Because the test knows the material, results are checked exactly outside keyledger: HMACs equal
``hmac.new``, signatures verify with the locally known public key, keyledger verifies signatures
made locally, and the material never appears in clear in the server's files.

AWS behaviour is the contract. Sources:
  * botocore's KMS service model (ImportKeyMaterial, GetParametersForImport, ... documentation)
  * https://docs.aws.amazon.com/kms/latest/developerguide/importing-keys-encrypt-key-material.html
  * https://docs.aws.amazon.com/kms/latest/developerguide/importing-keys-get-public-key-and-token.html
  * https://docs.aws.amazon.com/kms/latest/developerguide/importing-keys-conceptual.html
"""

from __future__ import annotations

import base64
import hashlib
import hmac
import os
import subprocess
import time
import uuid
from datetime import UTC, datetime, timedelta
from pathlib import Path

import pytest
from cryptography.hazmat.primitives import hashes, serialization
from cryptography.hazmat.primitives.asymmetric import ec, padding, rsa
from cryptography.hazmat.primitives.keywrap import aes_key_wrap_with_padding

from tests import secret_scan

pytestmark = pytest.mark.e2e

HOUR = 3600
DAY = 86400


# --------------------------------------------------------------------------------------------
# Helpers
# --------------------------------------------------------------------------------------------


def wrap_material(public_key_der: bytes, wrapping_algorithm: str, material: bytes) -> bytes:
    """Encrypt key material as importing-keys-encrypt-key-material.html describes.

    RSAES_OAEP_SHA_*: RSA-OAEP (MGF1 with the same hash) over the material.
    RSA_AES_KEY_WRAP_SHA_*: a fresh AES-256 key wrapped with RSA-OAEP, followed by the material
    wrapped under that AES key with AES key wrap with padding (RFC 5649).
    """
    public = serialization.load_der_public_key(public_key_der)
    h = hashes.SHA1() if wrapping_algorithm.endswith("SHA_1") else hashes.SHA256()
    oaep = padding.OAEP(mgf=padding.MGF1(h), algorithm=h, label=None)
    if wrapping_algorithm.startswith("RSAES_OAEP"):
        return public.encrypt(material, oaep)
    assert wrapping_algorithm.startswith("RSA_AES_KEY_WRAP"), wrapping_algorithm
    aes_key = os.urandom(32)
    return public.encrypt(aes_key, oaep) + aes_key_wrap_with_padding(aes_key, material)


def import_material(kms, key_id: str, material: bytes, *,
                    wrapping_algorithm: str = "RSAES_OAEP_SHA_256",
                    wrapping_key_spec: str = "RSA_2048", **kwargs) -> dict:
    params = kms.get_parameters_for_import(KeyId=key_id, WrappingAlgorithm=wrapping_algorithm,
                                           WrappingKeySpec=wrapping_key_spec)
    kwargs.setdefault("ExpirationModel", "KEY_MATERIAL_DOES_NOT_EXPIRE")
    return kms.import_key_material(
        KeyId=key_id, ImportToken=params["ImportToken"],
        EncryptedKeyMaterial=wrap_material(params["PublicKey"], wrapping_algorithm, material),
        **kwargs,
    )


def create_external(kms, **kwargs) -> dict:
    kwargs.setdefault("Description", "imported material e2e")
    return kms.create_key(Origin="EXTERNAL", **kwargs)["KeyMetadata"]


def server_now(server) -> datetime:
    return datetime.fromtimestamp(server.advance_clock(0), tz=UTC)


def pkcs8(private_key) -> bytes:
    return private_key.private_bytes(serialization.Encoding.DER, serialization.PrivateFormat.PKCS8,
                                     serialization.NoEncryption())


def spki(public_key) -> bytes:
    return public_key.public_bytes(serialization.Encoding.DER,
                                   serialization.PublicFormat.SubjectPublicKeyInfo)


def wait_for_state(kms, key_id: str, state: str, timeout: float = 5.0) -> dict:
    deadline = time.monotonic() + timeout
    while True:
        md = kms.describe_key(KeyId=key_id)["KeyMetadata"]
        if md["KeyState"] == state or time.monotonic() > deadline:
            return md
        time.sleep(0.1)


def stored_files(server, dump_dir: Path) -> list[Path]:
    """Everything the server keeps at rest: its data dir and logs, and, on PostgreSQL, a dump
    of its database (bytea columns come out as hex, which the scan looks for too)."""
    files = secret_scan.files(server.data_dir, server.log_path)
    if server.store:
        dump = dump_dir / f"store-{uuid.uuid4().hex[:8]}.sql"
        subprocess.run(["pg_dump", "--data-only", "--no-owner", "--file", str(dump), server.store],
                       check=True, capture_output=True, timeout=60)
        assert dump.stat().st_size > 0
        files.append(dump)
    return files


def find_secret_at_rest(paths: list[Path], secrets: dict[str, bytes], must_see=()) -> list[str]:
    """Every (file, secret name, encoding) hit of the shared scanner (tests/secret_scan.py)."""
    return secret_scan.scan(secret_scan.file_blobs(paths), secrets, must_see)


def test_secret_scanner_finds_planted_material(tmp_path):
    """The at-rest scan below must be able to see material in each encoding it claims to check."""
    secret = os.urandom(48)
    (tmp_path / "clean").write_bytes(os.urandom(4096))
    assert find_secret_at_rest(secret_scan.files(tmp_path), {"s": secret}) == []
    planted = {
        "raw": secret[5:37],
        "hex": secret[10:42].hex().encode(),
        "base64": base64.b64encode(secret),
        "base64-shifted": base64.b64encode(b"xy" + secret),
        "base64url": base64.urlsafe_b64encode(b"z" + secret),
    }
    for name, blob in planted.items():
        path = tmp_path / name
        path.write_bytes(b"{\"k\": \"" + blob + b"\"}")
        assert find_secret_at_rest([path], {"s": secret}), name
    # a scan that reads nothing, or not what it was told to look at, fails instead of passing
    with pytest.raises(AssertionError, match="read nothing"):
        find_secret_at_rest([tmp_path / "absent"], {"s": secret})
    with pytest.raises(AssertionError, match="did not read the store"):
        find_secret_at_rest([tmp_path / "clean"], {"s": secret}, must_see=[b"key-id"])


# --------------------------------------------------------------------------------------------
# Fixtures
# --------------------------------------------------------------------------------------------


@pytest.fixture(scope="module")
def kms(store_server):
    """boto3 against this module's server: the whole module runs on SQLite, then on PostgreSQL."""
    return store_server.kms()


@pytest.fixture(scope="module")
def import_server(server_factory, store):
    """A server of our own, on the module's store: its clock is moved and its files are
    scanned."""
    return server_factory("imported", store=store)


@pytest.fixture(scope="module")
def ikms(import_server):
    return import_server.kms()


@pytest.fixture(scope="module")
def raw_client(store_server):
    return store_server.kms(validate=False)


# --------------------------------------------------------------------------------------------
# Keys waiting for material
# --------------------------------------------------------------------------------------------


def test_external_key_starts_pending_import(kms, aws_error):
    md = create_external(kms)
    assert md["Origin"] == "EXTERNAL"
    assert md["KeyState"] == "PendingImport"
    assert md["Enabled"] is False
    assert md["KeySpec"] == "SYMMETRIC_DEFAULT"
    assert md["KeyUsage"] == "ENCRYPT_DECRYPT"
    assert not md.get("CurrentKeyMaterialId")
    assert "ExpirationModel" not in md and "ValidTo" not in md
    described = kms.describe_key(KeyId=md["KeyId"])["KeyMetadata"]
    assert described["KeyState"] == "PendingImport"
    assert not described.get("CurrentKeyMaterialId")

    with aws_error("KMSInvalidStateException"):
        kms.encrypt(KeyId=md["KeyId"], Plaintext=b"no material yet")
    with aws_error("KMSInvalidStateException"):
        kms.generate_data_key(KeyId=md["KeyId"], KeySpec="AES_256")
    # a key without material cannot simply be enabled
    with aws_error("KMSInvalidStateException"):
        kms.enable_key(KeyId=md["KeyId"])


# --------------------------------------------------------------------------------------------
# GetParametersForImport x wrapping algorithms -> ImportKeyMaterial
# --------------------------------------------------------------------------------------------

WRAPPING_CASES = [
    (spec, algorithm)
    for spec in ("RSA_2048", "RSA_3072", "RSA_4096")
    for algorithm in ("RSAES_OAEP_SHA_1", "RSAES_OAEP_SHA_256", "RSA_AES_KEY_WRAP_SHA_1",
                      "RSA_AES_KEY_WRAP_SHA_256")
]


@pytest.mark.parametrize(("wrapping_key_spec", "wrapping_algorithm"), WRAPPING_CASES,
                         ids=[f"{s}-{a}" for s, a in WRAPPING_CASES])
def test_import_with_every_wrapping_algorithm(store_server, kms, wrapping_key_spec,
                                              wrapping_algorithm):
    md = create_external(kms)
    now = server_now(store_server)
    params = kms.get_parameters_for_import(KeyId=md["KeyId"], WrappingAlgorithm=wrapping_algorithm,
                                           WrappingKeySpec=wrapping_key_spec)
    assert params["KeyId"] == md["Arn"]
    assert params["ImportToken"]
    # "Each public key and import token set is valid for 24 hours."
    valid_to = params["ParametersValidTo"]
    assert abs((valid_to - (now + timedelta(hours=24))).total_seconds()) < 300, valid_to
    public = serialization.load_der_public_key(params["PublicKey"])
    assert isinstance(public, rsa.RSAPublicKey)
    assert public.key_size == int(wrapping_key_spec.split("_")[1])

    material = os.urandom(32)
    resp = kms.import_key_material(
        KeyId=md["KeyId"], ImportToken=params["ImportToken"],
        EncryptedKeyMaterial=wrap_material(params["PublicKey"], wrapping_algorithm, material),
        ExpirationModel="KEY_MATERIAL_DOES_NOT_EXPIRE",
    )
    assert resp["KeyId"] == md["Arn"]
    assert resp["KeyMaterialId"]

    after = kms.describe_key(KeyId=md["KeyId"])["KeyMetadata"]
    assert after["KeyState"] == "Enabled"
    assert after["Enabled"] is True
    assert after["Origin"] == "EXTERNAL"
    assert after["ExpirationModel"] == "KEY_MATERIAL_DOES_NOT_EXPIRE"
    assert "ValidTo" not in after
    assert after["CurrentKeyMaterialId"] == resp["KeyMaterialId"]

    blob = kms.encrypt(KeyId=md["KeyId"], Plaintext=b"imported", EncryptionContext={"w": wrapping_algorithm})
    dec = kms.decrypt(CiphertextBlob=blob["CiphertextBlob"], EncryptionContext={"w": wrapping_algorithm})
    assert dec["Plaintext"] == b"imported"
    assert dec["KeyId"] == md["Arn"]
    assert dec["KeyMaterialId"] == resp["KeyMaterialId"]


def test_wrapping_keys_are_fresh_per_request(kms, aws_error):
    md = create_external(kms)
    a = kms.get_parameters_for_import(KeyId=md["KeyId"], WrappingAlgorithm="RSAES_OAEP_SHA_256",
                                      WrappingKeySpec="RSA_2048")
    b = kms.get_parameters_for_import(KeyId=md["KeyId"], WrappingAlgorithm="RSAES_OAEP_SHA_256",
                                      WrappingKeySpec="RSA_2048")
    assert a["ImportToken"] != b["ImportToken"]
    # the material must be wrapped under the public key of the SAME response as the token
    material = os.urandom(32)
    import_kwargs = {"KeyId": md["KeyId"], "ExpirationModel": "KEY_MATERIAL_DOES_NOT_EXPIRE"}
    if a["PublicKey"] != b["PublicKey"]:
        with aws_error("InvalidCiphertextException"):
            kms.import_key_material(ImportToken=a["ImportToken"],
                                    EncryptedKeyMaterial=wrap_material(b["PublicKey"], "RSAES_OAEP_SHA_256", material),
                                    **import_kwargs)
    kms.import_key_material(ImportToken=b["ImportToken"],
                            EncryptedKeyMaterial=wrap_material(b["PublicKey"], "RSAES_OAEP_SHA_256", material),
                            **import_kwargs)
    assert kms.describe_key(KeyId=md["KeyId"])["KeyMetadata"]["KeyState"] == "Enabled"


# --------------------------------------------------------------------------------------------
# Same material, two keys; reimport
# --------------------------------------------------------------------------------------------


def test_same_material_in_two_keys_and_reimport(kms, aws_error):
    material = os.urandom(32)
    k1, k2 = create_external(kms), create_external(kms)
    id1 = import_material(kms, k1["KeyId"], material)["KeyMaterialId"]
    id2 = import_material(kms, k2["KeyId"], material, wrapping_algorithm="RSA_AES_KEY_WRAP_SHA_256")["KeyMaterialId"]
    # "Even if you import the same key material in different keys, AWS KMS will assign distinct
    # key material identifiers." (AWS security blog, on-demand rotation for imported keys)
    assert id1 != id2

    ct1 = kms.encrypt(KeyId=k1["KeyId"], Plaintext=b"one")["CiphertextBlob"]
    ct2 = kms.encrypt(KeyId=k2["KeyId"], Plaintext=b"two")["CiphertextBlob"]
    assert kms.decrypt(CiphertextBlob=ct1)["Plaintext"] == b"one"
    assert kms.decrypt(CiphertextBlob=ct2)["Plaintext"] == b"two"
    assert kms.decrypt(CiphertextBlob=ct1, KeyId=k1["KeyId"])["KeyId"] == k1["Arn"]
    # ciphertexts are bound to their key, whatever the material
    with aws_error("IncorrectKeyException"):
        kms.decrypt(CiphertextBlob=ct1, KeyId=k2["KeyId"])

    # reimporting the same material into an enabled key works and keeps the material id
    again = import_material(kms, k1["KeyId"], material, wrapping_algorithm="RSAES_OAEP_SHA_1")
    assert again["KeyMaterialId"] == id1
    md = kms.describe_key(KeyId=k1["KeyId"])["KeyMetadata"]
    assert md["KeyState"] == "Enabled" and md["CurrentKeyMaterialId"] == id1
    assert kms.decrypt(CiphertextBlob=ct1)["Plaintext"] == b"one"
    # API_EnableKeyRotation.html: no automatic rotation for keys with imported key material
    with aws_error("UnsupportedOperationException"):
        kms.enable_key_rotation(KeyId=k1["KeyId"])
    # ... and its status reads false ("always false" for imported key material)
    assert kms.get_key_rotation_status(KeyId=k1["KeyId"])["KeyRotationEnabled"] is False

    # different material (ImportType defaults to EXISTING_KEY_MATERIAL after the first import)
    with aws_error("IncorrectKeyMaterialException"):
        import_material(kms, k1["KeyId"], os.urandom(32))
    with aws_error("IncorrectKeyMaterialException"):
        import_material(kms, k1["KeyId"], os.urandom(32), ImportType="EXISTING_KEY_MATERIAL")
    # naming the wrong key material id
    with aws_error("IncorrectKeyMaterialException"):
        import_material(kms, k1["KeyId"], material, ImportType="EXISTING_KEY_MATERIAL", KeyMaterialId=id2)
    assert kms.describe_key(KeyId=k1["KeyId"])["KeyMetadata"]["CurrentKeyMaterialId"] == id1
    assert kms.decrypt(CiphertextBlob=ct1)["Plaintext"] == b"one"


# --------------------------------------------------------------------------------------------
# Imported HMAC material: GenerateMac equals hmac.new
# --------------------------------------------------------------------------------------------

# importing-keys-conceptual.html, "Requirements for imported key material": HMAC_224 28-64 bytes,
# HMAC_256 32-64, HMAC_384 48-128, HMAC_512 64-128.
HMAC_CASES = [
    ("HMAC_224", "HMAC_SHA_224", "sha224", 28),
    ("HMAC_224", "HMAC_SHA_224", "sha224", 64),
    ("HMAC_256", "HMAC_SHA_256", "sha256", 32),
    ("HMAC_256", "HMAC_SHA_256", "sha256", 57),
    ("HMAC_384", "HMAC_SHA_384", "sha384", 48),
    ("HMAC_384", "HMAC_SHA_384", "sha384", 128),
    ("HMAC_512", "HMAC_SHA_512", "sha512", 64),
    ("HMAC_512", "HMAC_SHA_512", "sha512", 100),
]


@pytest.mark.parametrize(("spec", "algorithm", "hash_name", "length"), HMAC_CASES,
                         ids=[f"{c[0]}-{c[3]}B" for c in HMAC_CASES])
def test_imported_hmac_matches_local_hmac(kms, aws_error, spec, algorithm, hash_name, length):
    material = os.urandom(length)
    md = create_external(kms, KeySpec=spec, KeyUsage="GENERATE_VERIFY_MAC")
    assert md["KeyState"] == "PendingImport"
    assert md["MacAlgorithms"] == [algorithm]
    with aws_error("KMSInvalidStateException"):
        kms.generate_mac(KeyId=md["KeyId"], Message=b"m", MacAlgorithm=algorithm)

    import_material(kms, md["KeyId"], material, wrapping_algorithm="RSA_AES_KEY_WRAP_SHA_256")
    assert kms.describe_key(KeyId=md["KeyId"])["KeyMetadata"]["KeyState"] == "Enabled"

    for message in (b"x", os.urandom(1000), b"\x00" * 4096):
        expected = hmac.new(material, message, hash_name).digest()
        resp = kms.generate_mac(KeyId=md["KeyId"], Message=message, MacAlgorithm=algorithm)
        assert resp["Mac"] == expected
        assert kms.verify_mac(KeyId=md["KeyId"], Message=message, MacAlgorithm=algorithm,
                              Mac=expected)["MacValid"] is True

    # a second key with the same material computes the same MACs
    twin = create_external(kms, KeySpec=spec, KeyUsage="GENERATE_VERIFY_MAC")
    import_material(kms, twin["KeyId"], material, wrapping_algorithm="RSAES_OAEP_SHA_1")
    assert kms.generate_mac(KeyId=twin["KeyId"], Message=b"twin", MacAlgorithm=algorithm)["Mac"] == \
        kms.generate_mac(KeyId=md["KeyId"], Message=b"twin", MacAlgorithm=algorithm)["Mac"]

    # different material cannot replace it (asymmetric and HMAC material never changes)
    with aws_error("IncorrectKeyMaterialException"):
        import_material(kms, md["KeyId"], os.urandom(length))


# --------------------------------------------------------------------------------------------
# Imported asymmetric material
# --------------------------------------------------------------------------------------------


def test_imported_rsa_signing_key(kms, aws_error):
    private = rsa.generate_private_key(public_exponent=65537, key_size=2048)
    md = create_external(kms, KeySpec="RSA_2048", KeyUsage="SIGN_VERIFY")
    assert md["KeyState"] == "PendingImport"
    with aws_error("KMSInvalidStateException"):
        kms.get_public_key(KeyId=md["KeyId"])
    # GetParametersForImport: "To import an RSA private key, you must use an RSA_AES wrapping
    # algorithm."
    import_material(kms, md["KeyId"], pkcs8(private), wrapping_algorithm="RSA_AES_KEY_WRAP_SHA_256",
                    wrapping_key_spec="RSA_3072")
    after = kms.describe_key(KeyId=md["KeyId"])["KeyMetadata"]
    assert after["KeyState"] == "Enabled"
    assert after["Origin"] == "EXTERNAL"
    assert after["KeySpec"] == "RSA_2048"

    assert kms.get_public_key(KeyId=md["KeyId"])["PublicKey"] == spki(private.public_key())

    message = b"signed inside, verified outside"
    pss = kms.sign(KeyId=md["KeyId"], Message=message, SigningAlgorithm="RSASSA_PSS_SHA_256")["Signature"]
    private.public_key().verify(pss, message, padding.PSS(mgf=padding.MGF1(hashes.SHA256()), salt_length=32),
                                hashes.SHA256())
    pkcs1 = kms.sign(KeyId=md["KeyId"], Message=message,
                     SigningAlgorithm="RSASSA_PKCS1_V1_5_SHA_384")["Signature"]
    # PKCS#1 v1.5 is deterministic: keyledger's signature is byte-identical to ours
    assert pkcs1 == private.sign(message, padding.PKCS1v15(), hashes.SHA384())

    # signed outside, verified inside
    local = private.sign(b"made locally", padding.PSS(mgf=padding.MGF1(hashes.SHA512()), salt_length=64),
                         hashes.SHA512())
    assert kms.verify(KeyId=md["KeyId"], Message=b"made locally", Signature=local,
                      SigningAlgorithm="RSASSA_PSS_SHA_512")["SignatureValid"] is True
    digest = hashlib.sha256(b"digest made locally").digest()
    local = private.sign(b"digest made locally", padding.PKCS1v15(), hashes.SHA256())
    assert kms.verify(KeyId=md["KeyId"], Message=digest, MessageType="DIGEST", Signature=local,
                      SigningAlgorithm="RSASSA_PKCS1_V1_5_SHA_256")["SignatureValid"] is True

    other = rsa.generate_private_key(public_exponent=65537, key_size=2048)
    with aws_error("IncorrectKeyMaterialException"):
        import_material(kms, md["KeyId"], pkcs8(other), wrapping_algorithm="RSA_AES_KEY_WRAP_SHA_1")


def test_imported_ec_signing_key(kms, aws_error):
    private = ec.generate_private_key(ec.SECP256R1())
    md = create_external(kms, KeySpec="ECC_NIST_P256", KeyUsage="SIGN_VERIFY")
    import_material(kms, md["KeyId"], pkcs8(private), wrapping_algorithm="RSAES_OAEP_SHA_256")
    assert kms.describe_key(KeyId=md["KeyId"])["KeyMetadata"]["KeyState"] == "Enabled"
    assert kms.get_public_key(KeyId=md["KeyId"])["PublicKey"] == spki(private.public_key())

    sig = kms.sign(KeyId=md["KeyId"], Message=b"ec", SigningAlgorithm="ECDSA_SHA_256")["Signature"]
    private.public_key().verify(sig, b"ec", ec.ECDSA(hashes.SHA256()))
    local = private.sign(b"local ec", ec.ECDSA(hashes.SHA256()))
    assert kms.verify(KeyId=md["KeyId"], Message=b"local ec", Signature=local,
                      SigningAlgorithm="ECDSA_SHA_256")["SignatureValid"] is True
    with aws_error("KMSInvalidSignatureException"):
        kms.verify(KeyId=md["KeyId"], Message=b"local ec!", Signature=local, SigningAlgorithm="ECDSA_SHA_256")


def _signing_material(spec: str):
    """(private key, sign(message), verify(signature, message), KMS algorithm) for a spec."""
    from cryptography.hazmat.primitives.asymmetric import ed25519, mldsa

    if spec.startswith("ML_DSA"):
        private = {"ML_DSA_44": mldsa.MLDSA44PrivateKey, "ML_DSA_65": mldsa.MLDSA65PrivateKey,
                   "ML_DSA_87": mldsa.MLDSA87PrivateKey}[spec].generate()
        return private, private.sign, private.public_key().verify, "ML_DSA_SHAKE_256"
    if spec == "ECC_NIST_EDWARDS25519":
        private = ed25519.Ed25519PrivateKey.generate()
        return private, private.sign, private.public_key().verify, "ED25519_SHA_512"
    curve, digest, algorithm = {
        "ECC_NIST_P521": (ec.SECP521R1, hashes.SHA512, "ECDSA_SHA_512"),
        "ECC_SECG_P256K1": (ec.SECP256K1, hashes.SHA256, "ECDSA_SHA_256"),
    }[spec]
    private = ec.generate_private_key(curve())
    return (private, lambda m: private.sign(m, ec.ECDSA(digest())),
            lambda sig, m: private.public_key().verify(sig, m, ec.ECDSA(digest())), algorithm)


@pytest.mark.parametrize("spec", ["ECC_NIST_P521", "ECC_SECG_P256K1", "ECC_NIST_EDWARDS25519",
                                  "ML_DSA_44", "ML_DSA_65", "ML_DSA_87"])
def test_imported_signing_material_of_every_other_spec(kms, aws_error, spec):
    """GetParametersForImport: "All KMS key types are supported". Material generated here signs
    in keyledger, and both sides verify each other's signatures."""
    private, sign, verify, algorithm = _signing_material(spec)
    md = create_external(kms, KeySpec=spec, KeyUsage="SIGN_VERIFY")
    import_material(kms, md["KeyId"], pkcs8(private), wrapping_algorithm="RSA_AES_KEY_WRAP_SHA_256")
    assert kms.get_public_key(KeyId=md["KeyId"])["PublicKey"] == spki(private.public_key())
    verify(kms.sign(KeyId=md["KeyId"], Message=b"inside", SigningAlgorithm=algorithm)["Signature"],
           b"inside")
    assert kms.verify(KeyId=md["KeyId"], Message=b"outside", Signature=sign(b"outside"),
                      SigningAlgorithm=algorithm)["SignatureValid"] is True
    with aws_error("KMSInvalidSignatureException"):
        kms.verify(KeyId=md["KeyId"], Message=b"outside!", Signature=sign(b"outside"),
                   SigningAlgorithm=algorithm)
    # the same material again, RSAES-OAEP wrapped ("You cannot use the RSAES_OAEP_SHA_256
    # wrapping algorithm with the RSA_2048 wrapping key spec to wrap ECC_NIST_P521 key material")
    import_material(kms, md["KeyId"], pkcs8(private), wrapping_key_spec="RSA_4096")
    other, *_ = _signing_material(spec)
    with aws_error("IncorrectKeyMaterialException"):
        import_material(kms, md["KeyId"], pkcs8(other), wrapping_algorithm="RSA_AES_KEY_WRAP_SHA_1")


@pytest.mark.parametrize("spec", ["ML_KEM_768", "ML_KEM_1024"])
def test_imported_ml_kem_material(kms, spec):
    from cryptography.hazmat.primitives.asymmetric import mlkem

    private = {"ML_KEM_768": mlkem.MLKEM768PrivateKey,
               "ML_KEM_1024": mlkem.MLKEM1024PrivateKey}[spec].generate()
    md = create_external(kms, KeySpec=spec, KeyUsage="ENCAPSULATE_DECAPSULATE")
    import_material(kms, md["KeyId"], pkcs8(private), wrapping_algorithm="RSA_AES_KEY_WRAP_SHA_256")
    assert kms.get_public_key(KeyId=md["KeyId"])["PublicKey"] == spki(private.public_key())
    secret, ciphertext = private.public_key().encapsulate()
    assert kms.decapsulate(KeyId=md["KeyId"], SharedSecretCiphertextBlob=ciphertext,
                           EncapsulationAlgorithm="ML_KEM")["SharedSecret"] == secret
    enc = kms.encapsulate(KeyId=md["KeyId"], EncapsulationAlgorithm="ML_KEM")
    assert private.decapsulate(enc["SharedSecretCiphertextBlob"]) == enc["SharedSecret"]


def test_imported_rsa_encryption_key(kms):
    private = rsa.generate_private_key(public_exponent=65537, key_size=2048)
    md = create_external(kms, KeySpec="RSA_2048", KeyUsage="ENCRYPT_DECRYPT")
    import_material(kms, md["KeyId"], pkcs8(private), wrapping_algorithm="RSA_AES_KEY_WRAP_SHA_1")
    assert kms.get_public_key(KeyId=md["KeyId"])["PublicKey"] == spki(private.public_key())
    for algorithm, h in (("RSAES_OAEP_SHA_1", hashes.SHA1), ("RSAES_OAEP_SHA_256", hashes.SHA256)):
        oaep = padding.OAEP(mgf=padding.MGF1(h()), algorithm=h(), label=None)
        # encrypted by keyledger, decrypted here
        ct = kms.encrypt(KeyId=md["KeyId"], Plaintext=b"to the outside",
                         EncryptionAlgorithm=algorithm)["CiphertextBlob"]
        assert private.decrypt(ct, oaep) == b"to the outside"
        # encrypted here, decrypted by keyledger
        local = private.public_key().encrypt(b"to the inside", oaep)
        assert kms.decrypt(KeyId=md["KeyId"], CiphertextBlob=local,
                           EncryptionAlgorithm=algorithm)["Plaintext"] == b"to the inside"


def test_imported_ecdh_key(kms):
    private = ec.generate_private_key(ec.SECP384R1())
    md = create_external(kms, KeySpec="ECC_NIST_P384", KeyUsage="KEY_AGREEMENT")
    import_material(kms, md["KeyId"], pkcs8(private), wrapping_algorithm="RSA_AES_KEY_WRAP_SHA_256")
    peer = ec.generate_private_key(ec.SECP384R1())
    resp = kms.derive_shared_secret(KeyId=md["KeyId"], KeyAgreementAlgorithm="ECDH",
                                    PublicKey=spki(peer.public_key()))
    assert resp["SharedSecret"] == private.exchange(ec.ECDH(), peer.public_key())
    assert resp["KeyOrigin"] == "EXTERNAL"


# --------------------------------------------------------------------------------------------
# Tokens and wrapping errors
# --------------------------------------------------------------------------------------------


def test_bad_import_tokens_and_ciphertexts(kms, aws_error):
    md = create_external(kms)
    other = create_external(kms)
    material = os.urandom(32)
    params = kms.get_parameters_for_import(KeyId=md["KeyId"], WrappingAlgorithm="RSAES_OAEP_SHA_256",
                                           WrappingKeySpec="RSA_2048")
    wrapped = wrap_material(params["PublicKey"], "RSAES_OAEP_SHA_256", material)
    common = {"ExpirationModel": "KEY_MATERIAL_DOES_NOT_EXPIRE"}

    with aws_error("InvalidImportTokenException"):
        kms.import_key_material(KeyId=md["KeyId"], ImportToken=os.urandom(600),
                                EncryptedKeyMaterial=wrapped, **common)
    with aws_error("InvalidImportTokenException"):
        kms.import_key_material(KeyId=md["KeyId"], ImportToken=_flip(params["ImportToken"]),
                                EncryptedKeyMaterial=wrapped, **common)
    # the token belongs to another key
    with aws_error("InvalidImportTokenException"):
        kms.import_key_material(KeyId=other["KeyId"], ImportToken=params["ImportToken"],
                                EncryptedKeyMaterial=wrapped, **common)
    # material wrapped for someone else / corrupted
    stranger = rsa.generate_private_key(public_exponent=65537, key_size=2048).public_key()
    with aws_error("InvalidCiphertextException"):
        kms.import_key_material(KeyId=md["KeyId"], ImportToken=params["ImportToken"],
                                EncryptedKeyMaterial=wrap_material(spki(stranger), "RSAES_OAEP_SHA_256", material),
                                **common)
    with aws_error("InvalidCiphertextException"):
        kms.import_key_material(KeyId=md["KeyId"], ImportToken=params["ImportToken"],
                                EncryptedKeyMaterial=_flip(wrapped), **common)
    # wrapped with a different algorithm than the one requested
    with aws_error("InvalidCiphertextException"):
        kms.import_key_material(KeyId=md["KeyId"], ImportToken=params["ImportToken"],
                                EncryptedKeyMaterial=wrap_material(params["PublicKey"], "RSAES_OAEP_SHA_1", material),
                                **common)
    assert kms.describe_key(KeyId=md["KeyId"])["KeyMetadata"]["KeyState"] == "PendingImport"

    # nothing above used up the token
    kms.import_key_material(KeyId=md["KeyId"], ImportToken=params["ImportToken"],
                            EncryptedKeyMaterial=wrapped, **common)
    assert kms.describe_key(KeyId=md["KeyId"])["KeyMetadata"]["KeyState"] == "Enabled"


def _flip(blob: bytes) -> bytes:
    middle = len(blob) // 2
    return blob[:middle] + bytes([blob[middle] ^ 0x40]) + blob[middle + 1:]


def test_expiration_parameters_are_validated(store_server, kms, aws_error):
    md = create_external(kms)
    material = os.urandom(32)
    now = server_now(store_server)
    # ExpirationModel defaults to KEY_MATERIAL_EXPIRES, which requires ValidTo
    with aws_error("ValidationException"):
        import_material(kms, md["KeyId"], material, ExpirationModel="KEY_MATERIAL_EXPIRES")
    # "When value is KEY_MATERIAL_DOES_NOT_EXPIRE, you must omit the ValidTo parameter."
    with aws_error("ValidationException"):
        import_material(kms, md["KeyId"], material, ValidTo=now + timedelta(days=1))
    # "The value of this parameter must be a future date and time. The maximum value is 365 days"
    with aws_error("ValidationException"):
        import_material(kms, md["KeyId"], material, ExpirationModel="KEY_MATERIAL_EXPIRES",
                        ValidTo=now - timedelta(hours=1))
    with aws_error("ValidationException"):
        import_material(kms, md["KeyId"], material, ExpirationModel="KEY_MATERIAL_EXPIRES",
                        ValidTo=now + timedelta(days=366))
    assert kms.describe_key(KeyId=md["KeyId"])["KeyMetadata"]["KeyState"] == "PendingImport"

    valid_to = (now + timedelta(days=30)).replace(microsecond=0)
    import_material(kms, md["KeyId"], material, ExpirationModel="KEY_MATERIAL_EXPIRES", ValidTo=valid_to)
    after = kms.describe_key(KeyId=md["KeyId"])["KeyMetadata"]
    assert after["KeyState"] == "Enabled"
    assert after["ExpirationModel"] == "KEY_MATERIAL_EXPIRES"
    assert abs((after["ValidTo"] - valid_to).total_seconds()) < 2


def test_import_operations_on_aws_kms_keys(kms, new_key, aws_error):
    md = new_key("not external")
    with aws_error("UnsupportedOperationException"):
        kms.get_parameters_for_import(KeyId=md["KeyId"], WrappingAlgorithm="RSAES_OAEP_SHA_256",
                                      WrappingKeySpec="RSA_2048")
    with aws_error("UnsupportedOperationException"):
        kms.delete_imported_key_material(KeyId=md["KeyId"])
    external = create_external(kms)
    params = kms.get_parameters_for_import(KeyId=external["KeyId"], WrappingAlgorithm="RSAES_OAEP_SHA_256",
                                           WrappingKeySpec="RSA_2048")
    with aws_error("UnsupportedOperationException"):
        kms.import_key_material(
            KeyId=md["KeyId"], ImportToken=params["ImportToken"],
            EncryptedKeyMaterial=wrap_material(params["PublicKey"], "RSAES_OAEP_SHA_256", os.urandom(32)),
            ExpirationModel="KEY_MATERIAL_DOES_NOT_EXPIRE")
    with aws_error("NotFoundException"):
        kms.get_parameters_for_import(KeyId=str(uuid.uuid4()), WrappingAlgorithm="RSAES_OAEP_SHA_256",
                                      WrappingKeySpec="RSA_2048")


# --------------------------------------------------------------------------------------------
# DeleteImportedKeyMaterial
# --------------------------------------------------------------------------------------------


def test_delete_imported_key_material_and_reimport(kms, aws_error):
    md = create_external(kms)
    material = os.urandom(32)
    material_id = import_material(kms, md["KeyId"], material)["KeyMaterialId"]
    ct = kms.encrypt(KeyId=md["KeyId"], Plaintext=b"survives", EncryptionContext={"d": "1"})["CiphertextBlob"]

    deleted = kms.delete_imported_key_material(KeyId=md["KeyId"])
    assert deleted["KeyId"] == md["Arn"]
    assert deleted["KeyMaterialId"] == material_id
    after = kms.describe_key(KeyId=md["KeyId"])["KeyMetadata"]
    assert after["KeyState"] == "PendingImport"
    assert after["Enabled"] is False

    with aws_error("KMSInvalidStateException"):
        kms.decrypt(CiphertextBlob=ct, EncryptionContext={"d": "1"})
    with aws_error("KMSInvalidStateException"):
        kms.encrypt(KeyId=md["KeyId"], Plaintext=b"x")
    # different material cannot take its place
    with aws_error("IncorrectKeyMaterialException"):
        import_material(kms, md["KeyId"], os.urandom(32))

    again = import_material(kms, md["KeyId"], material, wrapping_algorithm="RSA_AES_KEY_WRAP_SHA_1")
    assert again["KeyMaterialId"] == material_id
    assert kms.describe_key(KeyId=md["KeyId"])["KeyMetadata"]["KeyState"] == "Enabled"
    assert kms.decrypt(CiphertextBlob=ct, EncryptionContext={"d": "1"})["Plaintext"] == b"survives"


def test_delete_imported_key_material_of_a_key_that_never_had_any(kms, aws_error):
    """PendingImport with no material: no effect (KDG key-state table, "✓ (No effect)"); a
    KeyMaterialId the key does not have is named in the NotFoundException."""
    md = create_external(kms)
    for _ in range(2):
        answer = kms.delete_imported_key_material(KeyId=md["KeyId"])
        answer.pop("ResponseMetadata")
        assert answer == {"KeyId": md["Arn"]}
    assert kms.describe_key(KeyId=md["KeyId"])["KeyMetadata"]["KeyState"] == "PendingImport"
    unknown = "c" * 64
    with aws_error("NotFoundException") as refused:
        kms.delete_imported_key_material(KeyId=md["KeyId"], KeyMaterialId=unknown)
    assert refused.value.response["Error"]["Message"] == (
        f"Key material {unknown} is not associated with {md['Arn']}.")


def test_reimport_after_deleting_material_of_a_disabled_key_enables_it(kms):
    md = create_external(kms)
    material = os.urandom(32)
    import_material(kms, md["KeyId"], material)
    kms.disable_key(KeyId=md["KeyId"])
    kms.delete_imported_key_material(KeyId=md["KeyId"])
    assert kms.describe_key(KeyId=md["KeyId"])["KeyMetadata"]["KeyState"] == "PendingImport"
    import_material(kms, md["KeyId"], material)
    # API_ImportKeyMaterial.html: "When this operation is successful, the state of the KMS key
    # changes to Enabled".
    assert kms.describe_key(KeyId=md["KeyId"])["KeyMetadata"]["KeyState"] == "Enabled"
    assert kms.encrypt(KeyId=md["KeyId"], Plaintext=b"ok")["CiphertextBlob"]


def test_deleting_material_of_a_key_pending_deletion_keeps_it_pending_deletion(kms):
    """DeleteImportedKeyMaterial: "When the specified KMS key is in the PendingDeletion state,
    this operation does not change the KMS key's state." Cancelling the deletion then leaves
    the key waiting for its material, not Disabled."""
    md = create_external(kms)
    material = os.urandom(32)
    material_id = import_material(kms, md["KeyId"], material)["KeyMaterialId"]
    kms.schedule_key_deletion(KeyId=md["KeyId"], PendingWindowInDays=7)
    deleted = kms.delete_imported_key_material(KeyId=md["KeyId"], KeyMaterialId=material_id)
    assert deleted["KeyMaterialId"] == material_id
    assert kms.describe_key(KeyId=md["KeyId"])["KeyMetadata"]["KeyState"] == "PendingDeletion"
    kms.cancel_key_deletion(KeyId=md["KeyId"])
    assert kms.describe_key(KeyId=md["KeyId"])["KeyMetadata"]["KeyState"] == "PendingImport"
    import_material(kms, md["KeyId"], material)
    assert kms.describe_key(KeyId=md["KeyId"])["KeyMetadata"]["KeyState"] == "Enabled"


def test_cancelling_deletion_of_a_key_never_imported_into_leaves_it_pending_import(kms):
    md = create_external(kms)
    kms.schedule_key_deletion(KeyId=md["KeyId"], PendingWindowInDays=7)
    kms.cancel_key_deletion(KeyId=md["KeyId"])
    assert kms.describe_key(KeyId=md["KeyId"])["KeyMetadata"]["KeyState"] == "PendingImport"


# --------------------------------------------------------------------------------------------
# On-demand rotation of imported symmetric material
# --------------------------------------------------------------------------------------------


def _materials(kms, key_id: str) -> dict[str, dict]:
    resp = kms.list_key_rotations(KeyId=key_id, IncludeKeyMaterial="ALL_KEY_MATERIAL")
    return {entry["KeyMaterialId"]: entry for entry in resp["Rotations"]}


def test_rotate_imported_key_material_on_demand(kms, aws_error):
    md = create_external(kms)
    first, second = os.urandom(32), os.urandom(32)
    first_id = import_material(kms, md["KeyId"], first)["KeyMaterialId"]
    old_ct = kms.encrypt(KeyId=md["KeyId"], Plaintext=b"generation 1")["CiphertextBlob"]

    # "You cannot specify a key material ID with ImportType set to NEW_KEY_MATERIAL."
    with aws_error("ValidationException"):
        import_material(kms, md["KeyId"], second, ImportType="NEW_KEY_MATERIAL", KeyMaterialId=first_id)

    resp = import_material(kms, md["KeyId"], second, ImportType="NEW_KEY_MATERIAL",
                           KeyMaterialDescription="second generation")
    second_id = resp["KeyMaterialId"]
    assert second_id and second_id != first_id

    materials = _materials(kms, md["KeyId"])
    assert set(materials) == {first_id, second_id}, materials
    assert materials[first_id]["KeyMaterialState"] == "CURRENT"
    assert materials[second_id]["KeyMaterialState"] == "PENDING_ROTATION"
    for entry in materials.values():
        assert entry["ImportState"] == "IMPORTED"
        assert entry["ExpirationModel"] == "KEY_MATERIAL_DOES_NOT_EXPIRE"
        assert entry["KeyId"] == md["KeyId"]  # ListKeyRotations names the key by its key id
    assert materials[second_id].get("KeyMaterialDescription") == "second generation"
    # "This field is not present for the first key material or an imported key material in
    # PENDING_ROTATION state."
    assert "RotationDate" not in materials[second_id] and "RotationType" not in materials[second_id]

    # pending material is not used yet
    assert kms.describe_key(KeyId=md["KeyId"])["KeyMetadata"]["CurrentKeyMaterialId"] == first_id
    blob = kms.encrypt(KeyId=md["KeyId"], Plaintext=b"still gen 1")["CiphertextBlob"]
    assert kms.decrypt(CiphertextBlob=blob)["KeyMaterialId"] == first_id

    kms.rotate_key_on_demand(KeyId=md["KeyId"])
    deadline = time.monotonic() + 5
    while kms.describe_key(KeyId=md["KeyId"])["KeyMetadata"]["CurrentKeyMaterialId"] != second_id:
        assert time.monotonic() < deadline, "on-demand rotation did not complete"
        time.sleep(0.1)

    materials = _materials(kms, md["KeyId"])
    assert materials[second_id]["KeyMaterialState"] == "CURRENT"
    assert materials[first_id]["KeyMaterialState"] == "NON_CURRENT"
    assert materials[second_id]["RotationType"] == "ON_DEMAND"
    assert isinstance(materials[second_id]["RotationDate"], datetime)
    rotations_only = kms.list_key_rotations(KeyId=md["KeyId"])["Rotations"]
    assert [r["KeyMaterialId"] for r in rotations_only] == [second_id]

    old = kms.decrypt(CiphertextBlob=old_ct)
    assert old["Plaintext"] == b"generation 1" and old["KeyMaterialId"] == first_id
    new_ct = kms.encrypt(KeyId=md["KeyId"], Plaintext=b"generation 2")["CiphertextBlob"]
    assert kms.decrypt(CiphertextBlob=new_ct)["KeyMaterialId"] == second_id

    # RotateKeyOnDemand: for imported material "you must have already imported new key material
    # and that key material's state should be PENDING_ROTATION". AWS does not name the error for
    # the violation; KMSInvalidStateException ("the state of the specified resource is not valid
    # for this request") is the documented exception that fits.
    with aws_error("KMSInvalidStateException"):
        kms.rotate_key_on_demand(KeyId=md["KeyId"])


def test_new_key_material_cannot_be_imported_into_asymmetric_or_hmac_keys(kms, aws_error):
    material = os.urandom(32)
    md = create_external(kms, KeySpec="HMAC_256", KeyUsage="GENERATE_VERIFY_MAC")
    import_material(kms, md["KeyId"], material)
    # ImportType, KeyMaterialId and KeyMaterialDescription are "optional and only usable with
    # symmetric encryption keys"; UnsupportedOperationException: "a specified parameter is not
    # supported" (AWS does not name the error for this case)
    for option in ({"ImportType": "NEW_KEY_MATERIAL"}, {"ImportType": "EXISTING_KEY_MATERIAL"},
                   {"KeyMaterialDescription": "second"}):
        with aws_error("UnsupportedOperationException"):
            import_material(kms, md["KeyId"], os.urandom(32), **option)
    with aws_error("UnsupportedOperationException"):
        import_material(kms, md["KeyId"], material, KeyMaterialDescription="same material")
    # without them, only the same material is taken again
    with aws_error("IncorrectKeyMaterialException"):
        import_material(kms, md["KeyId"], os.urandom(32))
    import_material(kms, md["KeyId"], material)
    with aws_error("UnsupportedOperationException"):
        kms.rotate_key_on_demand(KeyId=md["KeyId"])
    with aws_error("UnsupportedOperationException"):
        kms.list_key_rotations(KeyId=md["KeyId"], IncludeKeyMaterial="ALL_KEY_MATERIAL")
    assert "CurrentKeyMaterialId" not in kms.describe_key(KeyId=md["KeyId"])["KeyMetadata"]


# --------------------------------------------------------------------------------------------
# Clock-driven: expired import tokens, expiring material (a server of our own)
# --------------------------------------------------------------------------------------------


def test_expired_import_token(import_server, ikms, aws_error):
    md = create_external(ikms)
    material = os.urandom(32)
    params = ikms.get_parameters_for_import(KeyId=md["KeyId"], WrappingAlgorithm="RSAES_OAEP_SHA_256",
                                            WrappingKeySpec="RSA_2048")
    wrapped = wrap_material(params["PublicKey"], "RSAES_OAEP_SHA_256", material)
    import_server.advance_clock(25 * HOUR)
    with aws_error("ExpiredImportTokenException"):
        ikms.import_key_material(KeyId=md["KeyId"], ImportToken=params["ImportToken"],
                                 EncryptedKeyMaterial=wrapped, ExpirationModel="KEY_MATERIAL_DOES_NOT_EXPIRE")
    assert ikms.describe_key(KeyId=md["KeyId"])["KeyMetadata"]["KeyState"] == "PendingImport"
    # fresh parameters work
    import_material(ikms, md["KeyId"], material)
    assert ikms.describe_key(KeyId=md["KeyId"])["KeyMetadata"]["KeyState"] == "Enabled"


def test_expiring_key_material(import_server, ikms, aws_error):
    md = create_external(ikms)
    material = os.urandom(32)
    valid_to = (server_now(import_server) + timedelta(hours=1)).replace(microsecond=0)
    material_id = import_material(ikms, md["KeyId"], material, ExpirationModel="KEY_MATERIAL_EXPIRES",
                                  ValidTo=valid_to)["KeyMaterialId"]
    before = ikms.describe_key(KeyId=md["KeyId"])["KeyMetadata"]
    assert before["KeyState"] == "Enabled"
    assert before["ExpirationModel"] == "KEY_MATERIAL_EXPIRES"
    assert abs((before["ValidTo"] - valid_to).total_seconds()) < 2
    ct = ikms.encrypt(KeyId=md["KeyId"], Plaintext=b"outlives its material")["CiphertextBlob"]

    import_server.advance_clock(30 * 60)  # half way: still usable
    assert ikms.decrypt(CiphertextBlob=ct)["Plaintext"] == b"outlives its material"

    import_server.advance_clock(31 * 60)  # past ValidTo
    after = wait_for_state(ikms, md["KeyId"], "PendingImport")
    assert after["KeyState"] == "PendingImport", after
    with aws_error("KMSInvalidStateException"):
        ikms.encrypt(KeyId=md["KeyId"], Plaintext=b"x")
    with aws_error("KMSInvalidStateException"):
        ikms.decrypt(CiphertextBlob=ct)

    # "To use the KMS key in cryptographic operations again, you must reimport the same key material."
    with aws_error("IncorrectKeyMaterialException"):
        import_material(ikms, md["KeyId"], os.urandom(32))
    again = import_material(ikms, md["KeyId"], material)  # now without expiration
    assert again["KeyMaterialId"] == material_id
    restored = ikms.describe_key(KeyId=md["KeyId"])["KeyMetadata"]
    assert restored["KeyState"] == "Enabled"
    assert restored["ExpirationModel"] == "KEY_MATERIAL_DOES_NOT_EXPIRE"
    assert "ValidTo" not in restored
    assert ikms.decrypt(CiphertextBlob=ct)["Plaintext"] == b"outlives its material"

    import_server.advance_clock(400 * DAY)  # never expires now
    assert wait_for_state(ikms, md["KeyId"], "PendingImport", timeout=1.0)["KeyState"] == "Enabled"


# --------------------------------------------------------------------------------------------
# Material never at rest in clear
# --------------------------------------------------------------------------------------------


def test_imported_material_never_stored_in_clear(import_server, ikms, tmp_path):
    symmetric = os.urandom(32)
    hmac_material = os.urandom(64)
    ec_private = ec.generate_private_key(ec.SECP256R1())
    ec_scalar = ec_private.private_numbers().private_value.to_bytes(32, "big")
    rsa_private = rsa.generate_private_key(public_exponent=65537, key_size=2048)
    rsa_numbers = rsa_private.private_numbers()
    secrets = {
        "symmetric": symmetric,
        "hmac": hmac_material,
        "ec scalar": ec_scalar,
        "ec pkcs8": pkcs8(ec_private),
        "rsa pkcs8": pkcs8(rsa_private),
        "rsa d": rsa_numbers.d.to_bytes(256, "big"),
        "rsa p": rsa_numbers.p.to_bytes(128, "big"),
    }

    sym = create_external(ikms)
    import_material(ikms, sym["KeyId"], symmetric)
    ct = ikms.encrypt(KeyId=sym["KeyId"], Plaintext=b"at rest")["CiphertextBlob"]
    mac_key = create_external(ikms, KeySpec="HMAC_512", KeyUsage="GENERATE_VERIFY_MAC")
    import_material(ikms, mac_key["KeyId"], hmac_material, wrapping_algorithm="RSA_AES_KEY_WRAP_SHA_256")
    assert ikms.generate_mac(KeyId=mac_key["KeyId"], Message=b"m", MacAlgorithm="HMAC_SHA_512")["Mac"] == \
        hmac.new(hmac_material, b"m", "sha512").digest()
    ec_key = create_external(ikms, KeySpec="ECC_NIST_P256", KeyUsage="SIGN_VERIFY")
    import_material(ikms, ec_key["KeyId"], pkcs8(ec_private))
    ikms.sign(KeyId=ec_key["KeyId"], Message=b"m", SigningAlgorithm="ECDSA_SHA_256")
    rsa_key = create_external(ikms, KeySpec="RSA_2048", KeyUsage="SIGN_VERIFY")
    import_material(ikms, rsa_key["KeyId"], pkcs8(rsa_private), wrapping_algorithm="RSA_AES_KEY_WRAP_SHA_256")
    ikms.sign(KeyId=rsa_key["KeyId"], Message=b"m", SigningAlgorithm="RSASSA_PSS_SHA_256")

    files = stored_files(import_server, tmp_path)
    assert files, "the server wrote nothing to its data dir?"
    stored = [sym["KeyId"].encode(), rsa_key["KeyId"].encode()]  # the scan must read the ledger
    hits = find_secret_at_rest(files, secrets, stored)
    assert not hits, "key material stored in clear:\n" + "\n".join(hits)

    # deleting imported material leaves nothing behind either
    ikms.delete_imported_key_material(KeyId=sym["KeyId"])
    ikms.delete_imported_key_material(KeyId=mac_key["KeyId"])
    ikms.delete_imported_key_material(KeyId=ec_key["KeyId"])
    assert ikms.describe_key(KeyId=sym["KeyId"])["KeyMetadata"]["KeyState"] == "PendingImport"
    hits = find_secret_at_rest(stored_files(import_server, tmp_path), secrets, stored)
    assert not hits, "key material stored in clear after DeleteImportedKeyMaterial:\n" + "\n".join(hits)

    # and a restart does not resurrect anything: the deleted material is gone, the kept key works
    import_server.restart()
    assert ikms.describe_key(KeyId=sym["KeyId"])["KeyMetadata"]["KeyState"] == "PendingImport"
    assert ikms.describe_key(KeyId=ec_key["KeyId"])["KeyMetadata"]["KeyState"] == "PendingImport"
    ikms.sign(KeyId=rsa_key["KeyId"], Message=b"after restart", SigningAlgorithm="RSASSA_PSS_SHA_256")
    hits = find_secret_at_rest(stored_files(import_server, tmp_path), secrets, stored)
    assert not hits, "key material stored in clear after restart:\n" + "\n".join(hits)
    import_material(ikms, sym["KeyId"], symmetric)
    assert ikms.decrypt(CiphertextBlob=ct)["Plaintext"] == b"at rest"


def test_rsa_material_imported_into_two_keys_decrypts_each_others_ciphertext(kms):
    """The issue's interop case: data encrypted under imported material decrypts through a
    second key holding the same material. Symmetric ciphertext is bound to its KMS key (on AWS
    too), so this holds for RSA encryption keys, whose ciphertext is plain RSAES-OAEP."""
    from cryptography.hazmat.primitives.asymmetric import rsa

    private_key = rsa.generate_private_key(public_exponent=65537, key_size=2048)
    material = pkcs8(private_key)
    first, second = (create_external(kms, KeySpec="RSA_2048", KeyUsage="ENCRYPT_DECRYPT")
                     for _ in range(2))
    for md in (first, second):
        import_material(kms, md["KeyId"], material, wrapping_algorithm="RSA_AES_KEY_WRAP_SHA_256")
        assert kms.get_public_key(KeyId=md["KeyId"])["PublicKey"] == (
            private_key.public_key().public_bytes(
                serialization.Encoding.DER, serialization.PublicFormat.SubjectPublicKeyInfo
            )
        )
    blob = kms.encrypt(KeyId=first["KeyId"], Plaintext=b"shared material",
                       EncryptionAlgorithm="RSAES_OAEP_SHA_256")["CiphertextBlob"]
    decrypted = kms.decrypt(KeyId=second["KeyId"], CiphertextBlob=blob,
                            EncryptionAlgorithm="RSAES_OAEP_SHA_256")
    assert decrypted["Plaintext"] == b"shared material"
    assert decrypted["KeyId"] == second["Arn"]
