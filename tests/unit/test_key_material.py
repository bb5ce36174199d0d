"""The key material adapter (infrastructure.key_material): no I/O, real cryptography.

Everything the adapter produces is checked with an independent call of ``cryptography`` (or
a published test vector), never only with the adapter's own verify. RSA keys are 2048 bits
except one 4096-bit case; RSA key generation goes through a process pool (its first call
starts the pool, about a second), so RSA keys are generated once per module.
"""

from __future__ import annotations

import asyncio
import hashlib
import hmac
import os

import pytest
from cryptography.exceptions import InvalidSignature
from cryptography.hazmat.primitives import hashes, serialization
from cryptography.hazmat.primitives.asymmetric import (
    ec,
    ed25519,
    mldsa,
    mlkem,
    padding,
    rsa,
    utils,
    x25519,
)
from cryptography.hazmat.primitives.ciphers.aead import AESGCM
from cryptography.hazmat.primitives.keywrap import aes_key_wrap_with_padding
from nacl import bindings as sodium

from infrastructure import key_material as km
from infrastructure.key_material import BadKeyMaterial

#: the key operations a request awaits (they may run in a crypto helper process), run to the end
awaited = asyncio.run

ASYMMETRIC_SPECS = [
    "RSA_2048", "ECC_NIST_P256", "ECC_NIST_P384", "ECC_NIST_P521", "ECC_SECG_P256K1",
    "ECC_NIST_EDWARDS25519", "ML_DSA_44", "ML_DSA_65", "ML_DSA_87", "ML_KEM_768", "ML_KEM_1024",
]
HASHES = {"SHA_256": hashes.SHA256, "SHA_384": hashes.SHA384, "SHA_512": hashes.SHA512}


def _hash_of(algorithm: str) -> hashes.HashAlgorithm:
    return HASHES["SHA_" + algorithm.rsplit("_", 1)[1]]()


def _digest(algorithm: str, message: bytes) -> bytes:
    h = hashes.Hash(_hash_of(algorithm))
    h.update(message)
    return h.finalize()


def _pkcs8(private_key) -> bytes:
    return private_key.private_bytes(
        serialization.Encoding.DER, serialization.PrivateFormat.PKCS8, serialization.NoEncryption()
    )


def _spki(public_key) -> bytes:
    return public_key.public_bytes(
        serialization.Encoding.DER, serialization.PublicFormat.SubjectPublicKeyInfo
    )


@pytest.fixture(scope="module")
def material() -> dict[str, bytes]:
    """Generated material of every supported asymmetric spec (plus one RSA 4096), once."""
    specs = [*ASYMMETRIC_SPECS, "RSA_4096"]
    return {spec: km.generate(spec) for spec in specs}


@pytest.fixture(scope="module")
def loaded(material) -> dict[str, object]:
    return {spec: km.load(spec, der) for spec, der in material.items()}


# -- generate / load / public key ----------------------------------------------------------------

EXPECTED_TYPES = {
    "RSA_2048": rsa.RSAPrivateKey, "RSA_4096": rsa.RSAPrivateKey,
    "ECC_NIST_P256": ec.EllipticCurvePrivateKey, "ECC_NIST_P384": ec.EllipticCurvePrivateKey,
    "ECC_NIST_P521": ec.EllipticCurvePrivateKey, "ECC_SECG_P256K1": ec.EllipticCurvePrivateKey,
    "ECC_NIST_EDWARDS25519": ed25519.Ed25519PrivateKey,
    "ML_DSA_44": mldsa.MLDSA44PrivateKey, "ML_DSA_65": mldsa.MLDSA65PrivateKey,
    "ML_DSA_87": mldsa.MLDSA87PrivateKey,
    "ML_KEM_768": mlkem.MLKEM768PrivateKey, "ML_KEM_1024": mlkem.MLKEM1024PrivateKey,
}
CURVE_NAMES = {"ECC_NIST_P256": "secp256r1", "ECC_NIST_P384": "secp384r1",
               "ECC_NIST_P521": "secp521r1", "ECC_SECG_P256K1": "secp256k1"}


@pytest.mark.parametrize("spec", [*ASYMMETRIC_SPECS, "RSA_4096"])
def test_generated_material_is_pkcs8_of_the_spec(spec, material, loaded):
    der = material[spec]
    independent = serialization.load_der_private_key(der, password=None)
    assert isinstance(independent, EXPECTED_TYPES[spec])
    assert isinstance(loaded[spec].key, EXPECTED_TYPES[spec])
    assert _pkcs8(independent) == der  # it is PKCS#8 DER, canonically encoded
    if spec.startswith("RSA_"):
        assert independent.key_size == int(spec[4:])
        assert independent.private_numbers().public_numbers.e == 65537
    if spec in CURVE_NAMES:
        assert independent.curve.name == CURVE_NAMES[spec]
    # the public key GetPublicKey returns: DER SubjectPublicKeyInfo of that private key
    public = km.public_key(spec, der)
    assert public == _spki(independent.public_key())
    assert serialization.load_der_public_key(public) is not None
    # and generated material is what an import of that spec accepts
    km.check_import(spec, der)


def test_generated_keys_differ(material):
    assert km.generate("ECC_NIST_P256") != material["ECC_NIST_P256"]
    assert km.generate("ML_DSA_44") != material["ML_DSA_44"]


def test_symmetric_and_hmac_material():
    symmetric = km.generate("SYMMETRIC_DEFAULT")
    assert len(symmetric) == 32 and symmetric != km.generate("SYMMETRIC_DEFAULT")
    aes = km.load("SYMMETRIC_DEFAULT", symmetric)
    assert isinstance(aes, AESGCM)
    nonce = os.urandom(12)
    assert AESGCM(symmetric).decrypt(nonce, aes.encrypt(nonce, b"p", b"a"), b"a") == b"p"
    for spec, length in [("HMAC_224", 28), ("HMAC_256", 32), ("HMAC_384", 48), ("HMAC_512", 64)]:
        key = km.generate(spec)
        assert len(key) == length
        assert km.load(spec, key) == key
        assert km.public_key(spec, key) is None
    assert km.public_key("SYMMETRIC_DEFAULT", symmetric) is None


def test_generate_key_pair_returns_matching_halves():
    private_der, public_der = km.generate_key_pair("ECC_NIST_P384")
    private = serialization.load_der_private_key(private_der, password=None)
    assert _spki(private.public_key()) == public_der
    signature = private.sign(b"m", ec.ECDSA(hashes.SHA384()))
    serialization.load_der_public_key(public_der).verify(signature, b"m", ec.ECDSA(hashes.SHA384()))


# -- signatures ------------------------------------------------------------------------------------

RSA_SIGNING = [
    "RSASSA_PSS_SHA_256", "RSASSA_PSS_SHA_384", "RSASSA_PSS_SHA_512",
    "RSASSA_PKCS1_V1_5_SHA_256", "RSASSA_PKCS1_V1_5_SHA_384", "RSASSA_PKCS1_V1_5_SHA_512",
]
MESSAGE = b"keyledger signs this message"


@pytest.mark.parametrize("algorithm", RSA_SIGNING)
@pytest.mark.parametrize("message_type", ["RAW", "DIGEST"])
def test_rsa_signatures_verify_independently(loaded, algorithm, message_type):
    key = loaded["RSA_2048"]
    h = _hash_of(algorithm)
    message = MESSAGE if message_type == "RAW" else _digest(algorithm, MESSAGE)
    signature = awaited(km.sign("RSA_2048", key, algorithm, message_type, message))
    assert len(signature) == 256
    if algorithm.startswith("RSASSA_PSS"):
        # salt as long as the digest, MGF1 with the same hash
        pss = padding.PSS(mgf=padding.MGF1(h), salt_length=h.digest_size)
        key.key.public_key().verify(signature, MESSAGE, pss, h)
        longer = padding.PSS(mgf=padding.MGF1(h), salt_length=h.digest_size + 1)
        with pytest.raises(InvalidSignature):
            key.key.public_key().verify(signature, MESSAGE, longer, h)
    else:
        key.key.public_key().verify(signature, MESSAGE, padding.PKCS1v15(), h)
    assert awaited(km.verify("RSA_2048", key, algorithm, message_type, message, signature)) is True


@pytest.mark.parametrize("algorithm", [a for a in RSA_SIGNING if "PKCS1" in a])
def test_pkcs1_digest_signature_equals_the_raw_one(loaded, algorithm):
    """PKCS#1 v1.5 is deterministic: signing the digest (Prehashed) is signing the message."""
    key = loaded["RSA_2048"]
    raw = awaited(km.sign("RSA_2048", key, algorithm, "RAW", MESSAGE))
    digest = awaited(km.sign("RSA_2048", key, algorithm, "DIGEST", _digest(algorithm, MESSAGE)))
    assert raw == digest
    h = _hash_of(algorithm)
    assert raw == key.key.sign(MESSAGE, padding.PKCS1v15(), h)
    assert raw == key.key.sign(_digest(algorithm, MESSAGE), padding.PKCS1v15(), utils.Prehashed(h))


def test_rsa_4096_signature_and_encryption(loaded):
    key = loaded["RSA_4096"]
    signature = awaited(km.sign("RSA_4096", key, "RSASSA_PSS_SHA_512", "RAW", MESSAGE))
    assert len(signature) == 512
    h = hashes.SHA512()
    key.key.public_key().verify(
        signature, MESSAGE, padding.PSS(mgf=padding.MGF1(h), salt_length=64), h
    )
    plaintext = b"q" * 446  # OAEP SHA-256 limit for a 4096-bit key
    blob = km.rsa_encrypt(key, "RSAES_OAEP_SHA_256", plaintext)
    oaep = padding.OAEP(mgf=padding.MGF1(hashes.SHA256()), algorithm=hashes.SHA256(), label=None)
    assert key.key.decrypt(blob, oaep) == plaintext


ECDSA = [("ECC_NIST_P256", "ECDSA_SHA_256"), ("ECC_NIST_P384", "ECDSA_SHA_384"),
         ("ECC_NIST_P521", "ECDSA_SHA_512"), ("ECC_SECG_P256K1", "ECDSA_SHA_256")]


@pytest.mark.parametrize(("spec", "algorithm"), ECDSA)
def test_ecdsa_signatures_verify_independently(loaded, spec, algorithm):
    key = loaded[spec]
    h = _hash_of(algorithm)
    raw = awaited(km.sign(spec, key, algorithm, "RAW", MESSAGE))
    key.key.public_key().verify(raw, MESSAGE, ec.ECDSA(h))
    digest = _digest(algorithm, MESSAGE)
    signed_digest = awaited(km.sign(spec, key, algorithm, "DIGEST", digest))
    key.key.public_key().verify(signed_digest, digest, ec.ECDSA(utils.Prehashed(h)))
    key.key.public_key().verify(signed_digest, MESSAGE, ec.ECDSA(h))  # the same thing signed
    utils.decode_dss_signature(raw)  # DER-encoded (r, s)
    # and signatures made elsewhere verify in the adapter
    local = key.key.sign(MESSAGE, ec.ECDSA(h))
    assert awaited(km.verify(spec, key, algorithm, "RAW", MESSAGE, local)) is True
    assert awaited(km.verify(spec, key, algorithm, "DIGEST", digest, local)) is True


def test_ed25519_pure_signature_verifies_independently(loaded):
    key = loaded["ECC_NIST_EDWARDS25519"]
    signature = awaited(km.sign("ECC_NIST_EDWARDS25519", key, "ED25519_SHA_512", "RAW", MESSAGE))
    key.key.public_key().verify(signature, MESSAGE)
    assert signature == key.key.sign(MESSAGE)  # Ed25519 is deterministic


def test_ed25519ph_matches_the_rfc_8032_test_vector():
    """RFC 8032 section 7.3, TEST abc: Ed25519ph of "abc" (the adapter SHA-512s its input)."""
    seed = bytes.fromhex("833fe62409237b9d62ec77587520911e9a759cec1d19755b7da901b96dca3d42")
    expected = bytes.fromhex(
        "98a70222f0b8121aa9d30f813d683f809e462b469c7ff87639499bb94e6dae41"
        "31f85042463c2a355a2003d062adf5aaa10b8c61e636062aaad11c2a26083406"
    )
    key = km.load("ECC_NIST_EDWARDS25519", _pkcs8(ed25519.Ed25519PrivateKey.from_private_bytes(seed)))
    signature = awaited(km.sign("ECC_NIST_EDWARDS25519", key, "ED25519_PH_SHA_512", "DIGEST", b"abc"))
    assert signature == expected
    assert awaited(km.verify("ECC_NIST_EDWARDS25519", key, "ED25519_PH_SHA_512", "DIGEST", b"abc", expected))


def test_ed25519ph_of_a_digest_verifies_with_libsodium_and_the_public_key(loaded):
    """AWS hashes the 64-byte DIGEST once more: the Ed25519ph message is the digest itself."""
    key = loaded["ECC_NIST_EDWARDS25519"]
    digest = hashlib.sha512(MESSAGE).digest()
    signature = awaited(km.sign("ECC_NIST_EDWARDS25519", key, "ED25519_PH_SHA_512", "DIGEST", digest))
    public = key.key.public_key().public_bytes(serialization.Encoding.Raw, serialization.PublicFormat.Raw)
    state = sodium.crypto_sign_ed25519ph_state()
    sodium.crypto_sign_ed25519ph_update(state, digest)
    assert sodium.crypto_sign_ed25519ph_final_verify(state, signature, public)
    # it is not a pure Ed25519 signature of either
    for message in (digest, MESSAGE):
        with pytest.raises(InvalidSignature):
            key.key.public_key().verify(signature, message)


@pytest.mark.parametrize("spec", ["ML_DSA_44", "ML_DSA_65", "ML_DSA_87"])
def test_ml_dsa_raw_and_external_mu_verify_independently(loaded, spec):
    key = loaded[spec]
    public = key.key.public_key()
    raw = awaited(km.sign(spec, key, "ML_DSA_SHAKE_256", "RAW", MESSAGE))
    public.verify(raw, MESSAGE)  # pure ML-DSA, empty context
    hasher = mldsa.MLDSAMuHasher(public)
    hasher.update(MESSAGE)
    mu = hasher.finalize()
    assert len(mu) == 64
    from_mu = awaited(km.sign(spec, key, "ML_DSA_SHAKE_256", "EXTERNAL_MU", mu))
    public.verify(from_mu, MESSAGE)  # a signature of mu is a signature of the message
    public.verify_mu(raw, mu)
    assert awaited(km.verify(spec, key, "ML_DSA_SHAKE_256", "RAW", MESSAGE, from_mu)) is True
    assert awaited(km.verify(spec, key, "ML_DSA_SHAKE_256", "EXTERNAL_MU", mu, raw)) is True


# (spec, algorithm, message type, message) for every signing family
SIGNING_CASES = [
    ("RSA_2048", "RSASSA_PSS_SHA_256", "RAW", MESSAGE),
    ("RSA_2048", "RSASSA_PKCS1_V1_5_SHA_384", "DIGEST", hashlib.sha384(MESSAGE).digest()),
    ("ECC_NIST_P256", "ECDSA_SHA_256", "RAW", MESSAGE),
    ("ECC_NIST_P521", "ECDSA_SHA_512", "DIGEST", hashlib.sha512(MESSAGE).digest()),
    ("ECC_SECG_P256K1", "ECDSA_SHA_256", "RAW", MESSAGE),
    ("ECC_NIST_EDWARDS25519", "ED25519_SHA_512", "RAW", MESSAGE),
    ("ECC_NIST_EDWARDS25519", "ED25519_PH_SHA_512", "DIGEST", hashlib.sha512(MESSAGE).digest()),
    ("ML_DSA_44", "ML_DSA_SHAKE_256", "RAW", MESSAGE),
    ("ML_DSA_65", "ML_DSA_SHAKE_256", "EXTERNAL_MU", b"\x42" * 64),
]


def _tampered(signature: bytes) -> dict[str, bytes]:
    flipped = bytearray(signature)
    flipped[len(flipped) // 2] ^= 0x01
    last = bytearray(signature)
    last[-1] ^= 0x80
    return {
        "bit flipped": bytes(flipped),
        "last byte changed": bytes(last),
        "truncated": signature[:-1],
        "extended": signature + b"\x00",
        "halved": signature[: len(signature) // 2],
        "empty": b"",
        "garbage": os.urandom(len(signature)),
    }


@pytest.mark.parametrize(("spec", "algorithm", "message_type", "message"), SIGNING_CASES)
def test_verify_is_false_for_tampered_signatures(loaded, spec, algorithm, message_type, message):
    key = loaded[spec]
    signature = awaited(km.sign(spec, key, algorithm, message_type, message))
    assert awaited(km.verify(spec, key, algorithm, message_type, message, signature)) is True
    for name, bad in _tampered(signature).items():
        assert awaited(km.verify(spec, key, algorithm, message_type, message, bad)) is False, name
    other = bytearray(message)
    other[0] ^= 0x01
    assert awaited(km.verify(spec, key, algorithm, message_type, bytes(other), signature)) is False


def test_verify_is_false_for_another_keys_signature(loaded):
    signature = awaited(km.sign("ML_DSA_65", loaded["ML_DSA_65"], "ML_DSA_SHAKE_256", "RAW", MESSAGE))
    other = km.load("ML_DSA_65", km.generate("ML_DSA_65"))
    assert awaited(km.verify("ML_DSA_65", other, "ML_DSA_SHAKE_256", "RAW", MESSAGE, signature)) is False
    rsa_sig = awaited(km.sign("RSA_2048", loaded["RSA_2048"], "RSASSA_PSS_SHA_256", "RAW", MESSAGE))
    # same key, another algorithm of the key
    assert awaited(km.verify("RSA_2048", loaded["RSA_2048"], "RSASSA_PKCS1_V1_5_SHA_256", "RAW", MESSAGE,
                     rsa_sig)) is False


# -- RSA encryption, MACs ----------------------------------------------------------------------------


@pytest.mark.parametrize(("algorithm", "h", "limit"), [("RSAES_OAEP_SHA_1", hashes.SHA1, 214),
                                                         ("RSAES_OAEP_SHA_256", hashes.SHA256, 190)])
def test_rsa_oaep_round_trips_with_independent_calls(loaded, algorithm, h, limit):
    key = loaded["RSA_2048"]
    oaep = padding.OAEP(mgf=padding.MGF1(h()), algorithm=h(), label=None)
    plaintext = os.urandom(limit)
    blob = km.rsa_encrypt(key, algorithm, plaintext)
    assert key.key.decrypt(blob, oaep) == plaintext
    assert awaited(km.rsa_decrypt(key, algorithm, key.key.public_key().encrypt(plaintext, oaep))) == plaintext
    with pytest.raises(ValueError):
        awaited(km.rsa_decrypt(key, algorithm, blob[:-1] + bytes([blob[-1] ^ 1])))
    other = "RSAES_OAEP_SHA_256" if algorithm == "RSAES_OAEP_SHA_1" else "RSAES_OAEP_SHA_1"
    with pytest.raises(ValueError):
        awaited(km.rsa_decrypt(key, other, blob))


@pytest.mark.parametrize(("algorithm", "name"), [("HMAC_SHA_224", "sha224"), ("HMAC_SHA_256", "sha256"),
                                                 ("HMAC_SHA_384", "sha384"), ("HMAC_SHA_512", "sha512")])
def test_mac_equals_hmac_new(algorithm, name):
    key = os.urandom(40)
    tag = km.mac(key, algorithm, MESSAGE)
    assert tag == hmac.new(key, MESSAGE, name).digest()
    assert km.verify_mac(key, algorithm, MESSAGE, tag) is True
    assert km.verify_mac(key, algorithm, MESSAGE, tag[:-1]) is False
    assert km.verify_mac(key, algorithm, MESSAGE, tag + b"\x00") is False
    assert km.verify_mac(key, algorithm, MESSAGE + b"!", tag) is False
    assert km.verify_mac(os.urandom(40), algorithm, MESSAGE, tag) is False


# -- imported material -------------------------------------------------------------------------------


@pytest.mark.parametrize("length", [32])
def test_check_import_accepts_32_byte_symmetric_material(length):
    assert km.check_import("SYMMETRIC_DEFAULT", os.urandom(length)) is None


@pytest.mark.parametrize("length", [0, 1, 16, 24, 31, 33, 64])
def test_check_import_refuses_symmetric_material_of_another_length(length):
    with pytest.raises(BadKeyMaterial, match="32 bytes"):
        km.check_import("SYMMETRIC_DEFAULT", os.urandom(length))


# importing-keys-conceptual.html: HMAC key material between the digest length and the block size
HMAC_RANGES = {"HMAC_224": (28, 64), "HMAC_256": (32, 64), "HMAC_384": (48, 128),
               "HMAC_512": (64, 128)}


@pytest.mark.parametrize("spec", sorted(HMAC_RANGES))
def test_check_import_hmac_length_range(spec):
    low, high = HMAC_RANGES[spec]
    for length in (low, (low + high) // 2, high):
        assert km.check_import(spec, os.urandom(length)) is None
    for length in (0, low - 1, high + 1):
        with pytest.raises(BadKeyMaterial, match=f"{low} to {high} bytes"):
            km.check_import(spec, os.urandom(length))


@pytest.mark.parametrize(
    ("spec", "other"),
    [
        ("ECC_NIST_P256", "ECC_NIST_P384"),  # wrong curve
        ("ECC_NIST_P256", "ECC_SECG_P256K1"),  # same size, wrong curve
        ("ECC_NIST_P521", "ECC_NIST_P256"),
        ("ECC_SECG_P256K1", "ECC_NIST_P256"),
        ("RSA_2048", "RSA_4096"),  # wrong size
        ("RSA_4096", "RSA_2048"),
        ("RSA_2048", "ECC_NIST_P256"),  # wrong type
        ("ECC_NIST_P256", "RSA_2048"),
        ("ECC_NIST_EDWARDS25519", "ECC_NIST_P256"),
        ("ECC_NIST_P256", "ECC_NIST_EDWARDS25519"),
        ("ML_DSA_44", "ML_DSA_65"),
        ("ML_DSA_87", "ML_DSA_44"),
        ("ML_DSA_44", "ECC_NIST_EDWARDS25519"),
        ("ML_KEM_768", "ML_KEM_1024"),
        ("ML_KEM_1024", "ML_KEM_768"),
        ("ML_KEM_768", "ML_DSA_44"),
    ],
)
def test_check_import_refuses_pkcs8_of_another_spec(material, spec, other):
    with pytest.raises(BadKeyMaterial, match="does not match key spec"):
        km.check_import(spec, material[other])
    km.check_import(other, material[other])  # the same bytes are fine for their own spec


@pytest.mark.parametrize("spec", ["RSA_2048", "ECC_NIST_P256", "ECC_NIST_EDWARDS25519", "ML_DSA_44",
                                  "ML_KEM_768"])
def test_check_import_refuses_garbage_and_non_private_keys(material, spec):
    der = material[spec]
    public = km.public_key(spec, der)
    encrypted = serialization.load_der_private_key(der, password=None).private_bytes(
        serialization.Encoding.DER, serialization.PrivateFormat.PKCS8,
        serialization.BestAvailableEncryption(b"pw"),
    )
    for bad in (b"", b"\x00" * 32, os.urandom(200), der[:-1], der[:40], public, encrypted,
                b"-----BEGIN PRIVATE KEY-----"):
        with pytest.raises(BadKeyMaterial, match="PKCS#8"):
            km.check_import(spec, bad)


def test_check_import_refuses_a_key_type_keyledger_has_no_spec_for():
    der = _pkcs8(x25519.X25519PrivateKey.generate())
    with pytest.raises(BadKeyMaterial):
        km.check_import("ECC_NIST_EDWARDS25519", der)


def test_imported_material_id_is_deterministic_per_key_and_material():
    key_a, key_b = "1234abcd-12ab-34cd-56ef-1234567890ab", "1234abcd-12ab-34cd-56ef-1234567890ac"
    one, two = b"\x01" * 32, b"\x02" * 32
    first = km.imported_material_id(key_a, one)
    assert first == km.imported_material_id(key_a, bytes(one))
    assert len(first) == 64 and int(first, 16) >= 0  # 64 hex digits, as KMS material ids
    ids = {
        first,
        km.imported_material_id(key_a, two),
        km.imported_material_id(key_b, one),
        km.imported_material_id(key_b, two),
        km.imported_material_id(key_a, one + b"\x00"),
    }
    assert len(ids) == 5
    # not a plain hash of the material: it reveals nothing about it without the key id
    assert first != hashlib.sha256(one).hexdigest()


# -- import unwrapping ---------------------------------------------------------------------------


@pytest.fixture(scope="module")
def wrapping_key() -> tuple[bytes, bytes]:
    return km.generate_key_pair("RSA_2048")


def _oaep(algorithm: str) -> padding.OAEP:
    h = hashes.SHA1() if algorithm.endswith("SHA_1") else hashes.SHA256()
    return padding.OAEP(mgf=padding.MGF1(h), algorithm=h, label=None)


def _wrap(public_der: bytes, algorithm: str, material: bytes, aes_key: bytes | None = None) -> bytes:
    """importing-keys-encrypt-key-material.html, done locally."""
    public = serialization.load_der_public_key(public_der)
    if algorithm.startswith("RSAES_OAEP"):
        return public.encrypt(material, _oaep(algorithm))
    aes_key = aes_key or os.urandom(32)
    return public.encrypt(aes_key, _oaep(algorithm)) + aes_key_wrap_with_padding(aes_key, material)


WRAPPINGS = ["RSAES_OAEP_SHA_1", "RSAES_OAEP_SHA_256", "RSA_AES_KEY_WRAP_SHA_1",
             "RSA_AES_KEY_WRAP_SHA_256"]


def test_wrapping_key_pair_is_rsa_2048(wrapping_key):
    private_der, public_der = wrapping_key
    private = serialization.load_der_private_key(private_der, password=None)
    assert isinstance(private, rsa.RSAPrivateKey) and private.key_size == 2048
    assert _spki(private.public_key()) == public_der


@pytest.mark.parametrize("algorithm", WRAPPINGS)
def test_unwrap_round_trips(wrapping_key, material, algorithm):
    private_der, public_der = wrapping_key
    symmetric = os.urandom(32)
    assert km.unwrap(private_der, algorithm, _wrap(public_der, algorithm, symmetric)) == symmetric
    if algorithm.startswith("RSA_AES_KEY_WRAP"):  # material longer than RSA-OAEP can carry
        der = material["RSA_2048"]
        assert km.unwrap(private_der, algorithm, _wrap(public_der, algorithm, der)) == der


@pytest.mark.parametrize("algorithm", WRAPPINGS)
def test_unwrap_of_a_corrupted_blob_is_a_value_error(wrapping_key, algorithm):
    private_der, public_der = wrapping_key
    blob = _wrap(public_der, algorithm, os.urandom(32))
    corrupted = []
    for index in (0, 100, 255, len(blob) - 1):
        changed = bytearray(blob)
        changed[index] ^= 0x01
        corrupted.append(bytes(changed))
    corrupted += [blob[:-1], blob[:255], b"", blob + b"\x00" * 8]
    for bad in corrupted:
        with pytest.raises(ValueError):
            km.unwrap(private_der, algorithm, bad)


@pytest.mark.parametrize(("wrapped_with", "unwrapped_with"), [
    ("RSAES_OAEP_SHA_1", "RSAES_OAEP_SHA_256"),
    ("RSAES_OAEP_SHA_256", "RSAES_OAEP_SHA_1"),
    ("RSA_AES_KEY_WRAP_SHA_256", "RSA_AES_KEY_WRAP_SHA_1"),
])
def test_unwrap_with_the_wrong_algorithm_is_a_value_error(wrapping_key, wrapped_with, unwrapped_with):
    private_der, public_der = wrapping_key
    with pytest.raises(ValueError):
        km.unwrap(private_der, unwrapped_with, _wrap(public_der, wrapped_with, os.urandom(32)))


def test_unwrap_with_an_invalid_aes_key_size_is_a_value_error(wrapping_key):
    private_der, public_der = wrapping_key
    public = serialization.load_der_public_key(public_der)
    blob = public.encrypt(b"\x01" * 5, _oaep("RSA_AES_KEY_WRAP_SHA_256")) + b"\x00" * 40
    with pytest.raises(ValueError):
        km.unwrap(private_der, "RSA_AES_KEY_WRAP_SHA_256", blob)


# -- key agreement ---------------------------------------------------------------------------------


@pytest.mark.parametrize("spec", ["ECC_NIST_P256", "ECC_NIST_P384", "ECC_NIST_P521"])
def test_derive_shared_secret_equals_the_peers_view(loaded, spec):
    key = loaded[spec]
    peer = ec.generate_private_key(type(key.key.curve)())
    secret = awaited(km.derive_shared_secret(key, _spki(peer.public_key())))
    assert secret == peer.exchange(ec.ECDH(), key.key.public_key())
    assert len(secret) == (key.key.curve.key_size + 7) // 8


def test_derive_shared_secret_refuses_peers_that_do_not_fit(loaded, material):
    key = loaded["ECC_NIST_P256"]
    good = _spki(ec.generate_private_key(ec.SECP256R1()).public_key())
    off_curve = bytearray(good)
    off_curve[-1] ^= 0x01  # the point's y coordinate: no longer on the curve
    bad_peers = {
        "P-384": _spki(ec.generate_private_key(ec.SECP384R1()).public_key()),
        "secp256k1": _spki(ec.generate_private_key(ec.SECP256K1()).public_key()),
        "Ed25519": _spki(ed25519.Ed25519PrivateKey.generate().public_key()),
        "X25519": _spki(x25519.X25519PrivateKey.generate().public_key()),
        "RSA": km.public_key("RSA_2048", material["RSA_2048"]),
        "ML-KEM": km.public_key("ML_KEM_768", material["ML_KEM_768"]),
        "empty": b"",
        "garbage": os.urandom(91),
        "truncated": good[:-1],
        "off curve": bytes(off_curve),
        "private key": material["ECC_NIST_P256"],
    }
    for name, peer in bad_peers.items():
        with pytest.raises(BadKeyMaterial):
            awaited(km.derive_shared_secret(key, peer))
        assert name  # (the loop names each case in a failure's locals)


# -- encapsulation -----------------------------------------------------------------------------------


@pytest.mark.parametrize(("spec", "length"), [("ML_KEM_768", 1088), ("ML_KEM_1024", 1568)])
def test_ml_kem_encapsulate_decapsulate(loaded, spec, length):
    key = loaded[spec]
    secret, ciphertext = km.encapsulate(key)
    assert len(secret) == 32 and len(ciphertext) == length == km.ML_KEM_CIPHERTEXT_BYTES[spec]
    assert awaited(km.decapsulate(key, ciphertext)) == secret
    assert key.key.decapsulate(ciphertext) == secret  # independently
    # encapsulation done elsewhere, with the public key GetPublicKey returns
    public = serialization.load_der_public_key(km.public_key(spec, key.pkcs8))
    outside_secret, outside_ciphertext = public.encapsulate()
    assert awaited(km.decapsulate(key, outside_ciphertext)) == outside_secret
    # ML-KEM's implicit rejection: a tampered ciphertext gives another secret, not an error
    tampered = bytearray(ciphertext)
    tampered[0] ^= 0x01
    assert awaited(km.decapsulate(key, bytes(tampered))) != secret


@pytest.mark.parametrize("spec", ["RSA_2048", "ECC_NIST_P256", "ECC_SECG_P256K1"])
def test_check_import_takes_pkcs8_only_not_pkcs1_or_sec1(material, spec):
    """AWS requires PKCS#8 for imported asymmetric keys; cryptography also loads the
    traditional PKCS#1 (RSA) and SEC1 (EC) encodings of the same key."""
    traditional = serialization.load_der_private_key(material[spec], password=None).private_bytes(
        serialization.Encoding.DER, serialization.PrivateFormat.TraditionalOpenSSL,
        serialization.NoEncryption(),
    )
    assert serialization.load_der_private_key(traditional, password=None)  # loadable, but
    with pytest.raises(BadKeyMaterial, match="PKCS#8"):
        km.check_import(spec, traditional)
    km.check_import(spec, material[spec])


class _NoHelpers:
    """Stands in for the crypto helper processes: any use of them fails."""

    async def run(self, function, *args):
        raise AssertionError(f"{function.__name__} went to a helper process")

    def call(self, function, *args):
        raise AssertionError(f"{function.__name__} went to a helper process")


def test_cheap_operations_are_computed_in_process_and_costly_ones_in_helpers(loaded, monkeypatch):
    """ECDSA and Ed25519 signing and RSA/ECDSA/Ed25519 verification take tens of microseconds:
    computed here. RSA signing and decryption, ML-DSA, ECDH and ML-KEM decapsulation go to
    the helper processes."""
    monkeypatch.setattr(km, "workers", _NoHelpers())
    for spec, algorithm in [("ECC_NIST_P256", "ECDSA_SHA_256"),
                            ("ECC_NIST_EDWARDS25519", "ED25519_SHA_512"),
                            ("RSA_2048", "RSASSA_PSS_SHA_256")]:
        key = loaded[spec]
        if spec == "RSA_2048":
            with pytest.raises(AssertionError, match="went to a helper"):
                awaited(km.sign(spec, key, algorithm, "RAW", MESSAGE))
            continue
        signature = awaited(km.sign(spec, key, algorithm, "RAW", MESSAGE))
        assert awaited(km.verify(spec, key, algorithm, "RAW", MESSAGE, signature)) is True
    rsa_key = loaded["RSA_2048"]
    signature = rsa_key.key.sign(MESSAGE, padding.PKCS1v15(), hashes.SHA256())
    assert awaited(km.verify("RSA_2048", rsa_key, "RSASSA_PKCS1_V1_5_SHA_256", "RAW", MESSAGE, signature))
    blob = km.rsa_encrypt(rsa_key, "RSAES_OAEP_SHA_256", b"public-key work")
    _, ciphertext = km.encapsulate(loaded["ML_KEM_768"])
    peer = _spki(ec.generate_private_key(ec.SECP256R1()).public_key())
    for costly in [km.rsa_decrypt(rsa_key, "RSAES_OAEP_SHA_256", blob),
                   km.sign("ML_DSA_65", loaded["ML_DSA_65"], "ML_DSA_SHAKE_256", "RAW", MESSAGE),
                   km.decapsulate(loaded["ML_KEM_768"], ciphertext),
                   km.derive_shared_secret(loaded["ECC_NIST_P256"], peer)]:
        with pytest.raises(AssertionError, match="went to a helper"):
            awaited(costly)
    with pytest.raises(AssertionError, match="went to a helper"):
        km.generate("RSA_2048")
