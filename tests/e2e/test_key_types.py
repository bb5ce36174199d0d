"""Asymmetric, HMAC, key-agreement and post-quantum KMS keys, driven by unmodified boto3.

Every output of the real server is checked *outside* keyledger with the ``cryptography`` library
(and, for Ed25519ph, which ``cryptography`` does not offer, with a small RFC 8032 reference
verifier in this file that is itself checked against an RFC 8032 test vector and ``cryptography``).

AWS behaviour is the contract. Sources:
  * botocore's KMS service model (operation/field/enum names, documented errors)
  * https://docs.aws.amazon.com/kms/latest/developerguide/symm-asymm-choose-key-spec.html
  * https://docs.aws.amazon.com/kms/latest/developerguide/asymmetric-key-specs.html
  * https://docs.aws.amazon.com/kms/latest/APIReference/API_Sign.html (MessageType)
"""

from __future__ import annotations

import hashlib
import os
import uuid

import pytest
from cryptography.exceptions import InvalidSignature
from cryptography.hazmat.primitives import hashes, serialization
from cryptography.hazmat.primitives.asymmetric import ec, ed25519, mldsa, mlkem, padding, rsa, utils

pytestmark = pytest.mark.e2e

# --------------------------------------------------------------------------------------------
# The contract: key specs, usages and the algorithms AWS lists for them
# --------------------------------------------------------------------------------------------

RSA_SIGNING = [
    "RSASSA_PSS_SHA_256",
    "RSASSA_PSS_SHA_384",
    "RSASSA_PSS_SHA_512",
    "RSASSA_PKCS1_V1_5_SHA_256",
    "RSASSA_PKCS1_V1_5_SHA_384",
    "RSASSA_PKCS1_V1_5_SHA_512",
]
RSA_ENCRYPTION = ["RSAES_OAEP_SHA_1", "RSAES_OAEP_SHA_256"]
RSA_SPECS = ["RSA_2048", "RSA_3072", "RSA_4096"]
NIST_CURVES = ["ECC_NIST_P256", "ECC_NIST_P384", "ECC_NIST_P521"]
HMAC_SPECS = {"HMAC_224": "HMAC_SHA_224", "HMAC_256": "HMAC_SHA_256",
              "HMAC_384": "HMAC_SHA_384", "HMAC_512": "HMAC_SHA_512"}
ML_DSA_SPECS = ["ML_DSA_44", "ML_DSA_65", "ML_DSA_87"]
ML_KEM_SPECS = ["ML_KEM_768", "ML_KEM_1024"]

ECDSA_FOR_CURVE = {
    "ECC_NIST_P256": "ECDSA_SHA_256",
    "ECC_NIST_P384": "ECDSA_SHA_384",
    "ECC_NIST_P521": "ECDSA_SHA_512",
    "ECC_SECG_P256K1": "ECDSA_SHA_256",
}
CURVE_CLASS = {
    "ECC_NIST_P256": ec.SECP256R1,
    "ECC_NIST_P384": ec.SECP384R1,
    "ECC_NIST_P521": ec.SECP521R1,
    "ECC_SECG_P256K1": ec.SECP256K1,
}
RSA_BITS = {"RSA_2048": 2048, "RSA_3072": 3072, "RSA_4096": 4096}
ML_DSA_PUBLIC = {"ML_DSA_44": mldsa.MLDSA44PublicKey, "ML_DSA_65": mldsa.MLDSA65PublicKey,
                 "ML_DSA_87": mldsa.MLDSA87PublicKey}
ML_KEM_PUBLIC = {"ML_KEM_768": mlkem.MLKEM768PublicKey, "ML_KEM_1024": mlkem.MLKEM1024PublicKey}
ML_KEM_PRIVATE = {"ML_KEM_768": mlkem.MLKEM768PrivateKey, "ML_KEM_1024": mlkem.MLKEM1024PrivateKey}
ML_DSA_SIGNATURE_LEN = {"ML_DSA_44": 2420, "ML_DSA_65": 3309, "ML_DSA_87": 4627}  # FIPS 204, Table 2
ML_KEM_CIPHERTEXT_LEN = {"ML_KEM_768": 1088, "ML_KEM_1024": 1568}  # FIPS 203, Table 3

ALGORITHM_FIELDS = ("EncryptionAlgorithms", "SigningAlgorithms", "MacAlgorithms",
                    "KeyAgreementAlgorithms", "EncapsulationAlgorithms")


def _expected_algorithms(spec: str, usage: str) -> dict[str, list[str]]:
    if spec in RSA_SPECS:
        return {"EncryptionAlgorithms": RSA_ENCRYPTION} if usage == "ENCRYPT_DECRYPT" \
            else {"SigningAlgorithms": RSA_SIGNING}
    if spec in ECDSA_FOR_CURVE:
        return {"KeyAgreementAlgorithms": ["ECDH"]} if usage == "KEY_AGREEMENT" \
            else {"SigningAlgorithms": [ECDSA_FOR_CURVE[spec]]}
    if spec == "ECC_NIST_EDWARDS25519":
        return {"SigningAlgorithms": ["ED25519_SHA_512", "ED25519_PH_SHA_512"]}
    if spec in HMAC_SPECS:
        return {"MacAlgorithms": [HMAC_SPECS[spec]]}
    if spec in ML_DSA_SPECS:
        return {"SigningAlgorithms": ["ML_DSA_SHAKE_256"]}
    if spec in ML_KEM_SPECS:
        return {"EncapsulationAlgorithms": ["ML_KEM"]}
    raise AssertionError(spec)


VALID_COMBINATIONS = (
    [(s, u) for s in RSA_SPECS for u in ("ENCRYPT_DECRYPT", "SIGN_VERIFY")]
    + [(c, u) for c in NIST_CURVES for u in ("SIGN_VERIFY", "KEY_AGREEMENT")]
    + [("ECC_SECG_P256K1", "SIGN_VERIFY"), ("ECC_NIST_EDWARDS25519", "SIGN_VERIFY")]
    + [(s, "GENERATE_VERIFY_MAC") for s in HMAC_SPECS]
    + [(s, "SIGN_VERIFY") for s in ML_DSA_SPECS]
    + [(s, "ENCAPSULATE_DECAPSULATE") for s in ML_KEM_SPECS]
)
ASYMMETRIC_COMBINATIONS = [(s, u) for s, u in VALID_COMBINATIONS if s not in HMAC_SPECS]


def _ids(combos):
    return [f"{s}-{u}" for s, u in combos]


HASH_FOR = {"SHA_256": hashes.SHA256, "SHA_384": hashes.SHA384, "SHA_512": hashes.SHA512}


def _hash_of(algorithm: str) -> hashes.HashAlgorithm:
    for suffix, cls in HASH_FOR.items():
        if algorithm.endswith(suffix):
            return cls()
    raise AssertionError(algorithm)


def _digest(algorithm: str, message: bytes) -> bytes:
    return hashlib.new(_hash_of(algorithm).name, message).digest()


def _tamper(blob: bytes) -> bytes:
    return blob[:-1] + bytes([blob[-1] ^ 0x01])


# --------------------------------------------------------------------------------------------
# A tiny RFC 8032 Ed25519 / Ed25519ph verifier (``cryptography`` has no Ed25519ph)
# --------------------------------------------------------------------------------------------

_P = 2**255 - 19
_L = 2**252 + 27742317777372353535851937790883648493
_D = -121665 * pow(121666, _P - 2, _P) % _P
_SQRT_M1 = pow(2, (_P - 1) // 4, _P)


def _pt_add(p, q):
    a = (p[1] - p[0]) * (q[1] - q[0]) % _P
    b = (p[1] + p[0]) * (q[1] + q[0]) % _P
    c = 2 * p[3] * q[3] * _D % _P
    d = 2 * p[2] * q[2] % _P
    e, f, g, h = b - a, d - c, d + c, b + a
    return (e * f % _P, g * h % _P, f * g % _P, e * h % _P)


def _pt_mul(s, p):
    q = (0, 1, 1, 0)
    while s > 0:
        if s & 1:
            q = _pt_add(q, p)
        p = _pt_add(p, p)
        s >>= 1
    return q


def _pt_equal(p, q):
    return (p[0] * q[2] - q[0] * p[2]) % _P == 0 and (p[1] * q[2] - q[1] * p[2]) % _P == 0


def _recover_x(y, sign):
    if y >= _P:
        return None
    x2 = (y * y - 1) * pow(_D * y * y + 1, _P - 2, _P) % _P
    if x2 == 0:
        return None if sign else 0
    x = pow(x2, (_P + 3) // 8, _P)
    if (x * x - x2) % _P:
        x = x * _SQRT_M1 % _P
    if (x * x - x2) % _P:
        return None
    if (x & 1) != sign:
        x = _P - x
    return x


def _decompress(s: bytes):
    y = int.from_bytes(s, "little")
    sign, y = y >> 255, y & ((1 << 255) - 1)
    x = _recover_x(y, sign)
    return None if x is None else (x, y, 1, x * y % _P)


_GY = 4 * pow(5, _P - 2, _P) % _P
_GX = _recover_x(_GY, 0)
_G = (_GX, _GY, 1, _GX * _GY % _P)


def ed25519_reference_verify(public: bytes, message: bytes, signature: bytes, *,
                             prehash: bool, context: bytes = b"") -> bool:
    """RFC 8032 section 5.1.7; ``prehash=True`` is Ed25519ph (PH = SHA-512, dom2(1, context))."""
    if len(public) != 32 or len(signature) != 64:
        return False
    a_pt, r_pt = _decompress(public), _decompress(signature[:32])
    if a_pt is None or r_pt is None:
        return False
    s = int.from_bytes(signature[32:], "little")
    if s >= _L:
        return False
    dom = b""
    if prehash:
        dom = b"SigEd25519 no Ed25519 collisions" + bytes([1, len(context)]) + context
        message = hashlib.sha512(message).digest()
    k = int.from_bytes(hashlib.sha512(dom + signature[:32] + public + message).digest(), "little") % _L
    return _pt_equal(_pt_mul(s, _G), _pt_add(r_pt, _pt_mul(k, a_pt)))


def test_reference_ed25519_verifier_is_sound():
    """The helper above must agree with RFC 8032 (Ed25519ph vector) and with ``cryptography``."""
    # RFC 8032 section 7.3, TEST abc (Ed25519ph)
    public = bytes.fromhex("ec172b93ad5e563bf4932c70e1245034c35467ef2efd4d64ebf819683467e2bf")
    signature = bytes.fromhex(
        "98a70222f0b8121aa9d30f813d683f809e462b469c7ff87639499bb94e6dae41"
        "31f85042463c2a355a2003d062adf5aaa10b8c61e636062aaad11c2a26083406"
    )
    assert ed25519_reference_verify(public, b"abc", signature, prehash=True)
    assert not ed25519_reference_verify(public, b"abd", signature, prehash=True)
    assert not ed25519_reference_verify(public, b"abc", signature, prehash=False)
    # pure Ed25519 against cryptography
    priv = ed25519.Ed25519PrivateKey.generate()
    raw_pub = priv.public_key().public_bytes(serialization.Encoding.Raw, serialization.PublicFormat.Raw)
    sig = priv.sign(b"pure message")
    assert ed25519_reference_verify(raw_pub, b"pure message", sig, prehash=False)
    assert not ed25519_reference_verify(raw_pub, b"pure message", _tamper(sig), prehash=False)


# --------------------------------------------------------------------------------------------
# Fixtures: one key per (spec, usage), created lazily and shared by the module
# --------------------------------------------------------------------------------------------


@pytest.fixture(scope="module")
def kms(store_server):
    """boto3 against this module's server: the whole module runs on SQLite, then on PostgreSQL."""
    return store_server.kms()


@pytest.fixture(scope="module")
def key_of(kms):
    cache: dict[tuple[str, str], dict] = {}

    def get(spec: str, usage: str) -> dict:
        if (spec, usage) not in cache:
            cache[(spec, usage)] = kms.create_key(
                KeySpec=spec, KeyUsage=usage, Description=f"key-types {spec} {usage}"
            )["KeyMetadata"]
        return cache[(spec, usage)]

    return get


@pytest.fixture(scope="module")
def public_of(kms, key_of):
    """(GetPublicKey response, loaded public key) per (spec, usage)."""
    cache: dict[tuple[str, str], tuple[dict, object]] = {}

    def get(spec: str, usage: str):
        if (spec, usage) not in cache:
            resp = kms.get_public_key(KeyId=key_of(spec, usage)["KeyId"])
            cache[(spec, usage)] = (resp, serialization.load_der_public_key(resp["PublicKey"]))
        return cache[(spec, usage)]

    return get


@pytest.fixture(scope="module")
def symmetric_key(kms):
    return kms.create_key(Description="key-types symmetric")["KeyMetadata"]


@pytest.fixture(scope="module")
def raw_client(store_server):
    """A client without botocore's parameter validation (to send over-long values)."""
    return store_server.kms(validate=False)


# --------------------------------------------------------------------------------------------
# 1-2. CreateKey / DescribeKey: valid and invalid KeySpec x KeyUsage
# --------------------------------------------------------------------------------------------


def _assert_algorithms(md: dict, spec: str, usage: str) -> None:
    expected = _expected_algorithms(spec, usage)
    for field in ALGORITHM_FIELDS:
        if field in expected:
            assert sorted(md.get(field) or []) == sorted(expected[field]), (field, md.get(field))
        else:
            assert not md.get(field), f"{spec}/{usage} must not list {field}: {md.get(field)}"


@pytest.mark.parametrize(("spec", "usage"), VALID_COMBINATIONS, ids=_ids(VALID_COMBINATIONS))
def test_create_and_describe_every_valid_spec_and_usage(kms, key_of, spec, usage):
    md = key_of(spec, usage)
    assert md["KeySpec"] == spec
    assert md["CustomerMasterKeySpec"] == spec
    assert md["KeyUsage"] == usage
    assert md["KeyState"] == "Enabled"
    assert md["Enabled"] is True
    assert md["Origin"] == "AWS_KMS"
    assert md["KeyManager"] == "CUSTOMER"
    _assert_algorithms(md, spec, usage)

    described = kms.describe_key(KeyId=md["Arn"])["KeyMetadata"]
    assert described["KeyId"] == md["KeyId"]
    assert described["KeySpec"] == spec
    assert described["KeyUsage"] == usage
    assert described["KeyState"] == "Enabled"
    _assert_algorithms(described, spec, usage)


INVALID_COMBINATIONS = [
    ("RSA_2048", "GENERATE_VERIFY_MAC"),
    ("RSA_2048", "KEY_AGREEMENT"),
    ("RSA_2048", "ENCAPSULATE_DECAPSULATE"),
    ("HMAC_256", "ENCRYPT_DECRYPT"),
    ("HMAC_256", "SIGN_VERIFY"),
    ("HMAC_384", None),  # KeyUsage defaults to ENCRYPT_DECRYPT
    ("ECC_SECG_P256K1", "KEY_AGREEMENT"),
    ("ECC_SECG_P256K1", "ENCRYPT_DECRYPT"),
    ("ECC_NIST_P256", None),  # KeyUsage defaults to ENCRYPT_DECRYPT
    ("ECC_NIST_P384", "ENCRYPT_DECRYPT"),
    ("ECC_NIST_P521", "GENERATE_VERIFY_MAC"),
    ("ECC_NIST_EDWARDS25519", "KEY_AGREEMENT"),
    ("ECC_NIST_EDWARDS25519", "ENCRYPT_DECRYPT"),
    ("ML_DSA_44", "ENCRYPT_DECRYPT"),
    ("ML_DSA_65", "KEY_AGREEMENT"),
    ("ML_KEM_768", "SIGN_VERIFY"),
    ("ML_KEM_1024", None),
    ("SYMMETRIC_DEFAULT", "SIGN_VERIFY"),
    ("SYMMETRIC_DEFAULT", "GENERATE_VERIFY_MAC"),
]


@pytest.mark.parametrize(("spec", "usage"), INVALID_COMBINATIONS, ids=_ids(INVALID_COMBINATIONS))
def test_invalid_spec_and_usage_combinations(kms, aws_error, spec, usage):
    kwargs = {"KeySpec": spec}
    if usage:
        kwargs["KeyUsage"] = usage
    with aws_error("ValidationException"):
        kms.create_key(Description="must not exist", **kwargs)


@pytest.mark.parametrize(("spec", "usage"), [("ML_KEM_512", "ENCAPSULATE_DECAPSULATE"),
                                             ("SM2", "SIGN_VERIFY"), ("SM2", "ENCRYPT_DECRYPT")])
def test_unsupported_key_specs(kms, aws_error, spec, usage):
    # keyledger does not offer these (no well-kept Python implementation): refused, never faked.
    with aws_error("UnsupportedOperationException"):
        kms.create_key(KeySpec=spec, KeyUsage=usage)


# --------------------------------------------------------------------------------------------
# 4. GetPublicKey
# --------------------------------------------------------------------------------------------


def _assert_public_key_type(spec: str, public) -> None:
    if spec in RSA_BITS:
        assert isinstance(public, rsa.RSAPublicKey)
        assert public.key_size == RSA_BITS[spec]
        assert public.public_numbers().e == 65537
    elif spec in CURVE_CLASS:
        assert isinstance(public, ec.EllipticCurvePublicKey)
        assert isinstance(public.curve, CURVE_CLASS[spec])
    elif spec == "ECC_NIST_EDWARDS25519":
        assert isinstance(public, ed25519.Ed25519PublicKey)
    elif spec in ML_DSA_PUBLIC:
        assert isinstance(public, ML_DSA_PUBLIC[spec])
    elif spec in ML_KEM_PUBLIC:
        assert isinstance(public, ML_KEM_PUBLIC[spec])
    else:
        raise AssertionError(spec)


@pytest.mark.parametrize(("spec", "usage"), ASYMMETRIC_COMBINATIONS, ids=_ids(ASYMMETRIC_COMBINATIONS))
def test_get_public_key(kms, key_of, public_of, spec, usage):
    md = key_of(spec, usage)
    resp, public = public_of(spec, usage)
    assert resp["KeyId"] == md["Arn"]
    assert resp["KeySpec"] == spec
    assert resp["CustomerMasterKeySpec"] == spec
    assert resp["KeyUsage"] == usage
    _assert_public_key_type(spec, public)
    # the DER is canonical SubjectPublicKeyInfo
    assert public.public_bytes(serialization.Encoding.DER,
                               serialization.PublicFormat.SubjectPublicKeyInfo) == resp["PublicKey"]
    expected = _expected_algorithms(spec, usage)
    for field in ("EncryptionAlgorithms", "SigningAlgorithms", "KeyAgreementAlgorithms",
                  "EncapsulationAlgorithms"):
        if field in expected:
            assert sorted(resp.get(field) or []) == sorted(expected[field]), field
        else:
            assert not resp.get(field), (field, resp.get(field))
    # stable: a second call returns the same key
    assert kms.get_public_key(KeyId=md["KeyId"])["PublicKey"] == resp["PublicKey"]


def test_get_public_key_of_symmetric_and_hmac_keys_is_unsupported(kms, key_of, symmetric_key, aws_error):
    with aws_error("UnsupportedOperationException"):
        kms.get_public_key(KeyId=symmetric_key["KeyId"])
    with aws_error("UnsupportedOperationException"):
        kms.get_public_key(KeyId=key_of("HMAC_256", "GENERATE_VERIFY_MAC")["KeyId"])


# --------------------------------------------------------------------------------------------
# 3. Sign / Verify, checked locally
# --------------------------------------------------------------------------------------------

SIGN_CASES = (
    [(s, a, t) for s in RSA_SPECS for a in RSA_SIGNING for t in ("RAW", "DIGEST")]
    + [(c, ECDSA_FOR_CURVE[c], t) for c in ECDSA_FOR_CURVE for t in ("RAW", "DIGEST")]
    # API_Sign.html / API_CreateKey.html: "ED25519_SHA_512 requires MessageType:RAW, while
    # ED25519_PH_SHA_512 requires MessageType:DIGEST. These message types cannot be used
    # interchangeably."
    + [("ECC_NIST_EDWARDS25519", "ED25519_SHA_512", "RAW"),
       ("ECC_NIST_EDWARDS25519", "ED25519_PH_SHA_512", "DIGEST")]
    + [(s, "ML_DSA_SHAKE_256", t) for s in ML_DSA_SPECS for t in ("RAW", "EXTERNAL_MU")]
)


def _local_verify(spec: str, algorithm: str, public, message: bytes, signed: bytes,
                  message_type: str, signature: bytes) -> None:
    """Raise InvalidSignature unless ``signature`` is a valid ``algorithm`` signature of ``message``.

    ``signed`` is what was sent to KMS as Message (``message`` itself, its digest, or mu).
    """
    if algorithm.startswith("RSASSA_PSS"):
        h = _hash_of(algorithm)
        # asymmetric-key-specs.html: PSS uses the same hash for MGF1 and a salt as long as the hash
        pss = padding.PSS(mgf=padding.MGF1(h), salt_length=h.digest_size)
        if message_type == "DIGEST":
            public.verify(signature, signed, pss, utils.Prehashed(h))
        else:
            public.verify(signature, message, pss, h)
    elif algorithm.startswith("RSASSA_PKCS1_V1_5"):
        h = _hash_of(algorithm)
        if message_type == "DIGEST":
            public.verify(signature, signed, padding.PKCS1v15(), utils.Prehashed(h))
        else:
            public.verify(signature, message, padding.PKCS1v15(), h)
    elif algorithm.startswith("ECDSA"):
        h = _hash_of(algorithm)
        if message_type == "DIGEST":
            public.verify(signature, signed, ec.ECDSA(utils.Prehashed(h)))
        else:
            public.verify(signature, message, ec.ECDSA(h))
    elif algorithm == "ED25519_SHA_512":
        public.verify(signature, message)
    elif algorithm == "ED25519_PH_SHA_512":
        # API_Sign.html: with MessageType DIGEST, "KMS still performs the SHA-512 prehash ...
        # the input is hashed twice": the Ed25519ph message is the 64-byte digest itself.
        raw = public.public_bytes(serialization.Encoding.Raw, serialization.PublicFormat.Raw)
        if not ed25519_reference_verify(raw, signed, signature, prehash=True):
            raise InvalidSignature("Ed25519ph")
    elif algorithm == "ML_DSA_SHAKE_256":
        public.verify(signature, message)  # pure ML-DSA, empty context
        mu = mldsa.MLDSAMuHasher(public)
        mu.update(message)
        public.verify_mu(signature, mu.finalize())
    else:
        raise AssertionError(algorithm)


def _prepare_message(public, algorithm: str, message_type: str, message: bytes) -> bytes:
    if message_type == "RAW":
        return message
    if message_type == "EXTERNAL_MU":
        hasher = mldsa.MLDSAMuHasher(public)
        hasher.update(message)
        mu = hasher.finalize()
        assert len(mu) == 64
        return mu
    return _digest(algorithm, message)


@pytest.mark.parametrize(("spec", "algorithm", "message_type"), SIGN_CASES,
                         ids=[f"{s}-{a}-{t}" for s, a, t in SIGN_CASES])
def test_sign_verifies_outside_keyledger(kms, key_of, public_of, aws_error, spec, algorithm,
                                         message_type):
    md = key_of(spec, "SIGN_VERIFY")
    _, public = public_of(spec, "SIGN_VERIFY")
    message = b"keyledger interop " + os.urandom(64)
    signed = _prepare_message(public, algorithm, message_type, message)

    resp = kms.sign(KeyId=md["KeyId"], Message=signed, MessageType=message_type,
                    SigningAlgorithm=algorithm)
    assert resp["KeyId"] == md["Arn"]
    assert resp["SigningAlgorithm"] == algorithm
    signature = resp["Signature"]
    if spec in RSA_BITS:
        assert len(signature) == RSA_BITS[spec] // 8
    elif spec in ML_DSA_SIGNATURE_LEN:
        assert len(signature) == ML_DSA_SIGNATURE_LEN[spec]
    elif spec == "ECC_NIST_EDWARDS25519":
        assert len(signature) == 64

    _local_verify(spec, algorithm, public, message, signed, message_type, signature)
    with pytest.raises(InvalidSignature):
        _local_verify(spec, algorithm, public, message, signed, message_type, _tamper(signature))

    verified = kms.verify(KeyId=md["Arn"], Message=signed, MessageType=message_type,
                          Signature=signature, SigningAlgorithm=algorithm)
    assert verified["SignatureValid"] is True
    assert verified["KeyId"] == md["Arn"]
    assert verified["SigningAlgorithm"] == algorithm

    # API_Verify.html: "The message type does not need to be the same as the one used for
    # signing" and "A message and its hash digest are considered to be the same message"; mldsa.html:
    # "The signatures produced by the externally computed mu are the same as the RAW ones".
    # (Not for Ed25519, where the two message types "cannot be used interchangeably".)
    if spec != "ECC_NIST_EDWARDS25519":
        if message_type == "RAW":
            other_type = "EXTERNAL_MU" if spec in ML_DSA_SPECS else "DIGEST"
            other_message = _prepare_message(public, algorithm, other_type, message)
        else:
            other_type, other_message = "RAW", message
        assert kms.verify(KeyId=md["KeyId"], Message=other_message, MessageType=other_type,
                          Signature=signature, SigningAlgorithm=algorithm)["SignatureValid"] is True

    # A failed verification is an error, never SignatureValid=false.
    with aws_error("KMSInvalidSignatureException"):
        kms.verify(KeyId=md["KeyId"], Message=signed, MessageType=message_type,
                   Signature=_tamper(signature), SigningAlgorithm=algorithm)
    other = _prepare_message(public, algorithm, message_type, message + b"!")
    with aws_error("KMSInvalidSignatureException"):
        kms.verify(KeyId=md["KeyId"], Message=other, MessageType=message_type,
                   Signature=signature, SigningAlgorithm=algorithm)


def test_signatures_are_bound_to_the_key_and_algorithm(kms, key_of, aws_error):
    k1 = key_of("ECC_NIST_P256", "SIGN_VERIFY")
    k2 = kms.create_key(KeySpec="ECC_NIST_P256", KeyUsage="SIGN_VERIFY")["KeyMetadata"]
    sig = kms.sign(KeyId=k1["KeyId"], Message=b"bound", SigningAlgorithm="ECDSA_SHA_256")["Signature"]
    with aws_error("KMSInvalidSignatureException"):
        kms.verify(KeyId=k2["KeyId"], Message=b"bound", Signature=sig, SigningAlgorithm="ECDSA_SHA_256")

    rsa_key = key_of("RSA_2048", "SIGN_VERIFY")
    pss = kms.sign(KeyId=rsa_key["KeyId"], Message=b"bound", SigningAlgorithm="RSASSA_PSS_SHA_256")
    with aws_error("KMSInvalidSignatureException"):
        kms.verify(KeyId=rsa_key["KeyId"], Message=b"bound", Signature=pss["Signature"],
                   SigningAlgorithm="RSASSA_PKCS1_V1_5_SHA_256")
    with aws_error("KMSInvalidSignatureException"):
        kms.verify(KeyId=rsa_key["KeyId"], Message=b"bound", Signature=pss["Signature"],
                   SigningAlgorithm="RSASSA_PSS_SHA_384")


def test_rsa_pkcs1_signatures_are_deterministic(kms, key_of):
    md = key_of("RSA_2048", "SIGN_VERIFY")
    sigs = {kms.sign(KeyId=md["KeyId"], Message=b"same", SigningAlgorithm="RSASSA_PKCS1_V1_5_SHA_256")
            ["Signature"] for _ in range(2)}
    assert len(sigs) == 1
    assert len(next(iter(sigs))) == 256


def test_ed25519_signatures_are_deterministic_and_64_bytes(kms, key_of):
    md = key_of("ECC_NIST_EDWARDS25519", "SIGN_VERIFY")
    sigs = {kms.sign(KeyId=md["KeyId"], Message=b"same", MessageType="RAW",
                     SigningAlgorithm="ED25519_SHA_512")["Signature"] for _ in range(2)}
    assert len(sigs) == 1 and len(next(iter(sigs))) == 64


@pytest.mark.parametrize(("spec", "algorithm", "message_type", "length"), [
    ("ECC_NIST_P256", "ECDSA_SHA_256", "DIGEST", 31),
    ("ECC_NIST_P256", "ECDSA_SHA_256", "DIGEST", 48),
    ("ECC_NIST_P384", "ECDSA_SHA_384", "DIGEST", 32),
    ("ECC_NIST_P521", "ECDSA_SHA_512", "DIGEST", 65),
    ("ECC_SECG_P256K1", "ECDSA_SHA_256", "DIGEST", 0),
    ("RSA_2048", "RSASSA_PSS_SHA_384", "DIGEST", 47),
    ("RSA_2048", "RSASSA_PKCS1_V1_5_SHA_512", "DIGEST", 32),
    ("ECC_NIST_EDWARDS25519", "ED25519_PH_SHA_512", "DIGEST", 63),
    ("ML_DSA_44", "ML_DSA_SHAKE_256", "EXTERNAL_MU", 63),
    ("ML_DSA_65", "ML_DSA_SHAKE_256", "EXTERNAL_MU", 32),
])
def test_sign_digest_of_wrong_length(raw_client, key_of, aws_error, spec, algorithm, message_type,
                                     length):
    # API_Sign.html: "When the value of MessageType is DIGEST, the length of the Message value must
    # match the length of hashed messages ..."; "... EXTERNAL_MU the length ... must be 64 bytes."
    md = key_of(spec, "SIGN_VERIFY")
    for op in ("sign", "verify"):
        kwargs = {"KeyId": md["KeyId"], "Message": b"\x01" * length, "MessageType": message_type,
                  "SigningAlgorithm": algorithm}
        if op == "verify":
            kwargs["Signature"] = b"\x30" * 64
        with aws_error("ValidationException"):
            getattr(raw_client, op)(**kwargs)


def test_ed25519_message_types_are_not_interchangeable(kms, key_of, aws_error):
    # API_Sign.html / API_CreateKey.html: ED25519_SHA_512 requires RAW, ED25519_PH_SHA_512 requires
    # DIGEST.
    md = key_of("ECC_NIST_EDWARDS25519", "SIGN_VERIFY")
    with aws_error("ValidationException"):
        kms.sign(KeyId=md["KeyId"], Message=hashlib.sha512(b"m").digest(), MessageType="DIGEST",
                 SigningAlgorithm="ED25519_SHA_512")
    with aws_error("ValidationException"):
        kms.sign(KeyId=md["KeyId"], Message=b"m", MessageType="RAW",
                 SigningAlgorithm="ED25519_PH_SHA_512")


def test_sign_raw_message_size_limit(raw_client, key_of, public_of, aws_error):
    # API_Sign.html: "Messages can be 0-4096 bytes."
    md = key_of("ECC_NIST_P256", "SIGN_VERIFY")
    _, public = public_of("ECC_NIST_P256", "SIGN_VERIFY")
    at_limit = os.urandom(4096)
    sig = raw_client.sign(KeyId=md["KeyId"], Message=at_limit, MessageType="RAW",
                          SigningAlgorithm="ECDSA_SHA_256")["Signature"]
    public.verify(sig, at_limit, ec.ECDSA(hashes.SHA256()))
    with aws_error("ValidationException"):
        raw_client.sign(KeyId=md["KeyId"], Message=at_limit + b"x", MessageType="RAW",
                        SigningAlgorithm="ECDSA_SHA_256")
    with aws_error("ValidationException"):
        raw_client.verify(KeyId=md["KeyId"], Message=at_limit + b"x", MessageType="RAW",
                          Signature=sig, SigningAlgorithm="ECDSA_SHA_256")


@pytest.mark.parametrize(("spec", "algorithm"), [
    ("ECC_NIST_P256", "ECDSA_SHA_384"),
    ("ECC_NIST_P256", "ECDSA_SHA_512"),
    ("ECC_NIST_P384", "ECDSA_SHA_256"),
    ("ECC_NIST_P521", "ECDSA_SHA_256"),
    ("ECC_SECG_P256K1", "ECDSA_SHA_384"),
    ("ECC_NIST_P256", "RSASSA_PSS_SHA_256"),
    ("RSA_2048", "ECDSA_SHA_256"),
    ("RSA_2048", "ED25519_SHA_512"),
    ("ECC_NIST_EDWARDS25519", "ECDSA_SHA_512"),
    ("ML_DSA_44", "ED25519_SHA_512"),
    ("ML_DSA_44", "RSASSA_PSS_SHA_256"),
    ("ECC_NIST_P256", "ML_DSA_SHAKE_256"),
])
def test_signing_algorithm_not_valid_for_key(kms, key_of, aws_error, spec, algorithm):
    md = key_of(spec, "SIGN_VERIFY")
    with aws_error("InvalidKeyUsageException"):
        kms.sign(KeyId=md["KeyId"], Message=b"m", MessageType="RAW", SigningAlgorithm=algorithm)
    with aws_error("InvalidKeyUsageException"):
        kms.verify(KeyId=md["KeyId"], Message=b"m", MessageType="RAW", Signature=b"\x00" * 64,
                   SigningAlgorithm=algorithm)


@pytest.mark.parametrize(("spec", "usage", "algorithm"), [
    ("RSA_2048", "ENCRYPT_DECRYPT", "RSASSA_PSS_SHA_256"),
    ("ECC_NIST_P256", "KEY_AGREEMENT", "ECDSA_SHA_256"),
    ("HMAC_256", "GENERATE_VERIFY_MAC", "ECDSA_SHA_256"),
    ("ML_KEM_768", "ENCAPSULATE_DECAPSULATE", "ML_DSA_SHAKE_256"),
])
def test_sign_with_a_key_that_is_not_for_signing(kms, key_of, aws_error, spec, usage, algorithm):
    md = key_of(spec, usage)
    with aws_error("InvalidKeyUsageException"):
        kms.sign(KeyId=md["KeyId"], Message=b"m", SigningAlgorithm=algorithm)
    with aws_error("InvalidKeyUsageException"):
        kms.verify(KeyId=md["KeyId"], Message=b"m", Signature=b"\x00" * 64, SigningAlgorithm=algorithm)


def test_sign_with_symmetric_key(kms, symmetric_key, aws_error):
    with aws_error("InvalidKeyUsageException"):
        kms.sign(KeyId=symmetric_key["KeyId"], Message=b"m", SigningAlgorithm="ECDSA_SHA_256")


def test_disabled_asymmetric_key(kms, aws_error):
    md = kms.create_key(KeySpec="ECC_NIST_P256", KeyUsage="SIGN_VERIFY")["KeyMetadata"]
    sig = kms.sign(KeyId=md["KeyId"], Message=b"before", SigningAlgorithm="ECDSA_SHA_256")["Signature"]
    kms.disable_key(KeyId=md["KeyId"])
    with aws_error("DisabledException"):
        kms.sign(KeyId=md["KeyId"], Message=b"m", SigningAlgorithm="ECDSA_SHA_256")
    with aws_error("DisabledException"):
        kms.verify(KeyId=md["KeyId"], Message=b"before", Signature=sig, SigningAlgorithm="ECDSA_SHA_256")
    with aws_error("DisabledException"):
        kms.get_public_key(KeyId=md["KeyId"])
    kms.enable_key(KeyId=md["KeyId"])
    assert kms.verify(KeyId=md["KeyId"], Message=b"before", Signature=sig,
                      SigningAlgorithm="ECDSA_SHA_256")["SignatureValid"] is True


def test_asymmetric_key_pending_deletion(kms, aws_error):
    md = kms.create_key(KeySpec="ECC_NIST_P256", KeyUsage="SIGN_VERIFY")["KeyMetadata"]
    kms.schedule_key_deletion(KeyId=md["KeyId"], PendingWindowInDays=7)
    with aws_error("KMSInvalidStateException"):
        kms.sign(KeyId=md["KeyId"], Message=b"m", SigningAlgorithm="ECDSA_SHA_256")
    with aws_error("KMSInvalidStateException"):
        kms.get_public_key(KeyId=md["KeyId"])
    kms.cancel_key_deletion(KeyId=md["KeyId"])


# --------------------------------------------------------------------------------------------
# 5. RSA encryption
# --------------------------------------------------------------------------------------------

OAEP_HASH = {"RSAES_OAEP_SHA_1": hashes.SHA1, "RSAES_OAEP_SHA_256": hashes.SHA256}
# asymmetric-key-specs.html, "RSA key specs for encryption and decryption": maximum plaintext
OAEP_MAX = {
    ("RSA_2048", "RSAES_OAEP_SHA_1"): 214, ("RSA_3072", "RSAES_OAEP_SHA_1"): 342,
    ("RSA_4096", "RSAES_OAEP_SHA_1"): 470, ("RSA_2048", "RSAES_OAEP_SHA_256"): 190,
    ("RSA_3072", "RSAES_OAEP_SHA_256"): 318, ("RSA_4096", "RSAES_OAEP_SHA_256"): 446,
}


def _oaep(algorithm: str) -> padding.OAEP:
    h = OAEP_HASH[algorithm]()
    return padding.OAEP(mgf=padding.MGF1(h), algorithm=h, label=None)


@pytest.mark.parametrize(("spec", "algorithm"), list(OAEP_MAX), ids=[f"{s}-{a}" for s, a in OAEP_MAX])
def test_rsa_encryption_interop_and_size_limits(kms, raw_client, key_of, public_of, aws_error, spec,
                                                algorithm):
    md = key_of(spec, "ENCRYPT_DECRYPT")
    _, public = public_of(spec, "ENCRYPT_DECRYPT")
    limit = OAEP_MAX[(spec, algorithm)]
    assert limit == RSA_BITS[spec] // 8 - 2 * OAEP_HASH[algorithm]().digest_size - 2

    # encrypted outside keyledger, decrypted inside
    plaintext = os.urandom(limit)
    local_ct = public.encrypt(plaintext, _oaep(algorithm))
    resp = kms.decrypt(KeyId=md["KeyId"], CiphertextBlob=local_ct, EncryptionAlgorithm=algorithm)
    assert resp["Plaintext"] == plaintext
    assert resp["KeyId"] == md["Arn"]
    assert resp["EncryptionAlgorithm"] == algorithm
    assert "KeyMaterialId" not in resp  # "present only when ... a symmetric encryption KMS key"

    # encrypted by keyledger (only keyledger holds the private key: round trip)
    enc = kms.encrypt(KeyId=md["KeyId"], Plaintext=plaintext, EncryptionAlgorithm=algorithm)
    assert enc["KeyId"] == md["Arn"]
    assert enc["EncryptionAlgorithm"] == algorithm
    assert len(enc["CiphertextBlob"]) == RSA_BITS[spec] // 8  # raw RSA ciphertext, no envelope
    assert enc["CiphertextBlob"] != local_ct
    assert kms.decrypt(KeyId=md["Arn"], CiphertextBlob=enc["CiphertextBlob"],
                       EncryptionAlgorithm=algorithm)["Plaintext"] == plaintext

    with aws_error("ValidationException"):
        raw_client.encrypt(KeyId=md["KeyId"], Plaintext=plaintext + b"x", EncryptionAlgorithm=algorithm)

    # the other OAEP hash does not decrypt it
    other = "RSAES_OAEP_SHA_1" if algorithm == "RSAES_OAEP_SHA_256" else "RSAES_OAEP_SHA_256"
    with aws_error("InvalidCiphertextException"):
        kms.decrypt(KeyId=md["KeyId"], CiphertextBlob=local_ct, EncryptionAlgorithm=other)


def test_rsa_decrypt_needs_key_id_and_algorithm(kms, key_of, public_of, aws_error):
    md = key_of("RSA_2048", "ENCRYPT_DECRYPT")
    _, public = public_of("RSA_2048", "ENCRYPT_DECRYPT")
    ct = public.encrypt(b"asymmetric", _oaep("RSAES_OAEP_SHA_256"))
    # API_Decrypt.html: KeyId is required for ciphertext encrypted under an asymmetric key
    with aws_error("InvalidCiphertextException"):
        kms.decrypt(CiphertextBlob=ct)
    with aws_error("InvalidCiphertextException"):
        kms.decrypt(CiphertextBlob=ct, EncryptionAlgorithm="RSAES_OAEP_SHA_256")
    # EncryptionAlgorithm defaults to SYMMETRIC_DEFAULT, which an RSA key does not support
    with aws_error("InvalidKeyUsageException"):
        kms.decrypt(KeyId=md["KeyId"], CiphertextBlob=ct)
    with aws_error("InvalidKeyUsageException"):
        kms.encrypt(KeyId=md["KeyId"], Plaintext=b"x")
    with aws_error("InvalidKeyUsageException"):
        kms.encrypt(KeyId=md["KeyId"], Plaintext=b"x", EncryptionAlgorithm="SYMMETRIC_DEFAULT")
    with aws_error("InvalidCiphertextException"):
        kms.decrypt(KeyId=md["KeyId"], CiphertextBlob=_tamper(ct), EncryptionAlgorithm="RSAES_OAEP_SHA_256")
    assert kms.decrypt(KeyId=md["KeyId"], CiphertextBlob=ct,
                       EncryptionAlgorithm="RSAES_OAEP_SHA_256")["Plaintext"] == b"asymmetric"


def test_encryption_algorithm_and_key_usage_mismatches(kms, key_of, symmetric_key, aws_error):
    with aws_error("InvalidKeyUsageException"):
        kms.encrypt(KeyId=symmetric_key["KeyId"], Plaintext=b"x", EncryptionAlgorithm="RSAES_OAEP_SHA_256")
    with aws_error("InvalidKeyUsageException"):
        kms.encrypt(KeyId=key_of("RSA_2048", "SIGN_VERIFY")["KeyId"], Plaintext=b"x",
                    EncryptionAlgorithm="RSAES_OAEP_SHA_256")
    with aws_error("InvalidKeyUsageException"):
        kms.encrypt(KeyId=key_of("ECC_NIST_P256", "SIGN_VERIFY")["KeyId"], Plaintext=b"x",
                    EncryptionAlgorithm="RSAES_OAEP_SHA_256")
    with aws_error("InvalidKeyUsageException"):
        kms.encrypt(KeyId=key_of("HMAC_256", "GENERATE_VERIFY_MAC")["KeyId"], Plaintext=b"x")
    # GenerateDataKey needs a symmetric encryption key
    with aws_error("InvalidKeyUsageException"):
        kms.generate_data_key(KeyId=key_of("RSA_2048", "ENCRYPT_DECRYPT")["KeyId"], KeySpec="AES_256")


def test_reencrypt_between_rsa_and_symmetric_keys(kms, key_of, public_of, symmetric_key, aws_error):
    rsa_key = key_of("RSA_2048", "ENCRYPT_DECRYPT")
    _, public = public_of("RSA_2048", "ENCRYPT_DECRYPT")
    ct = public.encrypt(b"travelling secret", _oaep("RSAES_OAEP_SHA_1"))

    to_sym = kms.re_encrypt(CiphertextBlob=ct, SourceKeyId=rsa_key["KeyId"],
                            SourceEncryptionAlgorithm="RSAES_OAEP_SHA_1",
                            DestinationKeyId=symmetric_key["KeyId"],
                            DestinationEncryptionContext={"hop": "1"})
    assert to_sym["SourceKeyId"] == rsa_key["Arn"]
    assert to_sym["KeyId"] == symmetric_key["Arn"]
    assert to_sym["SourceEncryptionAlgorithm"] == "RSAES_OAEP_SHA_1"
    assert to_sym["DestinationEncryptionAlgorithm"] == "SYMMETRIC_DEFAULT"
    # material ids only for the symmetric side (API_ReEncrypt.html)
    assert "SourceKeyMaterialId" not in to_sym
    assert to_sym["DestinationKeyMaterialId"] == symmetric_key["CurrentKeyMaterialId"]
    sym_ct = to_sym["CiphertextBlob"]
    assert kms.decrypt(CiphertextBlob=sym_ct, EncryptionContext={"hop": "1"})["Plaintext"] == b"travelling secret"

    back = kms.re_encrypt(CiphertextBlob=sym_ct, SourceEncryptionContext={"hop": "1"},
                          DestinationKeyId=rsa_key["Arn"],
                          DestinationEncryptionAlgorithm="RSAES_OAEP_SHA_256")
    assert back["KeyId"] == rsa_key["Arn"]
    assert back["SourceKeyId"] == symmetric_key["Arn"]
    assert back["DestinationEncryptionAlgorithm"] == "RSAES_OAEP_SHA_256"
    assert back["SourceKeyMaterialId"] == symmetric_key["CurrentKeyMaterialId"]
    assert "DestinationKeyMaterialId" not in back
    assert len(back["CiphertextBlob"]) == 256
    assert kms.decrypt(KeyId=rsa_key["KeyId"], CiphertextBlob=back["CiphertextBlob"],
                       EncryptionAlgorithm="RSAES_OAEP_SHA_256")["Plaintext"] == b"travelling secret"

    # without the source algorithm: SYMMETRIC_DEFAULT with an RSA key, refused as AWS words it
    # ("InvalidKeyUsageException: Algorithm SYMMETRIC_DEFAULT is incompatible with key spec ...")
    with aws_error("InvalidKeyUsageException"):
        kms.re_encrypt(CiphertextBlob=ct, SourceKeyId=rsa_key["KeyId"],
                       DestinationKeyId=symmetric_key["KeyId"])


# --------------------------------------------------------------------------------------------
# 6. GenerateDataKeyPair / GenerateDataKeyPairWithoutPlaintext
# --------------------------------------------------------------------------------------------

DATA_KEY_PAIR_SPECS = RSA_SPECS + list(CURVE_CLASS) + ["ECC_NIST_EDWARDS25519"] + ML_KEM_SPECS


def _check_private_matches_public(spec: str, private_der: bytes, public_der: bytes) -> None:
    private = serialization.load_der_private_key(private_der, password=None)
    derived = private.public_key().public_bytes(serialization.Encoding.DER,
                                                serialization.PublicFormat.SubjectPublicKeyInfo)
    assert derived == public_der
    public = serialization.load_der_public_key(public_der)
    _assert_public_key_type(spec, public)
    # and the pair actually works together
    if spec in RSA_BITS:
        ct = public.encrypt(b"pair", _oaep("RSAES_OAEP_SHA_256"))
        assert private.decrypt(ct, _oaep("RSAES_OAEP_SHA_256")) == b"pair"
    elif spec in CURVE_CLASS:
        public.verify(private.sign(b"pair", ec.ECDSA(hashes.SHA256())), b"pair", ec.ECDSA(hashes.SHA256()))
    elif spec == "ECC_NIST_EDWARDS25519":
        public.verify(private.sign(b"pair"), b"pair")
    elif spec in ML_KEM_SPECS:
        assert isinstance(private, ML_KEM_PRIVATE[spec])
        secret, ct = public.encapsulate()
        assert private.decapsulate(ct) == secret


@pytest.mark.parametrize("spec", DATA_KEY_PAIR_SPECS)
def test_generate_data_key_pair(kms, symmetric_key, aws_error, spec):
    ctx = {"purpose": "data-key-pair", "spec": spec}
    resp = kms.generate_data_key_pair(KeyId=symmetric_key["KeyId"], KeyPairSpec=spec, EncryptionContext=ctx)
    assert resp["KeyId"] == symmetric_key["Arn"]
    assert resp["KeyPairSpec"] == spec
    private_der, public_der = resp["PrivateKeyPlaintext"], resp["PublicKey"]
    _check_private_matches_public(spec, private_der, public_der)

    dec = kms.decrypt(CiphertextBlob=resp["PrivateKeyCiphertextBlob"], EncryptionContext=ctx)
    assert dec["Plaintext"] == private_der
    assert dec["KeyId"] == symmetric_key["Arn"]
    with aws_error("InvalidCiphertextException"):
        kms.decrypt(CiphertextBlob=resp["PrivateKeyCiphertextBlob"])  # context is bound

    if spec not in ("RSA_3072", "RSA_4096"):  # keep the slow RSA generations to one each
        again = kms.generate_data_key_pair(KeyId=symmetric_key["KeyId"], KeyPairSpec=spec)
        assert again["PublicKey"] != public_der


# RSA_4096 pairs are covered by the test above; one more 4096-bit generation is not worth the time.
@pytest.mark.parametrize("spec", [s for s in DATA_KEY_PAIR_SPECS if s != "RSA_4096"])
def test_generate_data_key_pair_without_plaintext(kms, symmetric_key, spec):
    resp = kms.generate_data_key_pair_without_plaintext(
        KeyId=symmetric_key["Arn"], KeyPairSpec=spec, EncryptionContext={"wp": spec})
    assert "PrivateKeyPlaintext" not in resp
    assert resp["KeyId"] == symmetric_key["Arn"]
    assert resp["KeyPairSpec"] == spec
    private_der = kms.decrypt(CiphertextBlob=resp["PrivateKeyCiphertextBlob"],
                              EncryptionContext={"wp": spec})["Plaintext"]
    _check_private_matches_public(spec, private_der, resp["PublicKey"])


def test_generate_data_key_pair_needs_symmetric_encryption_key(kms, key_of, aws_error):
    for spec, usage in [("RSA_2048", "ENCRYPT_DECRYPT"), ("ECC_NIST_P256", "SIGN_VERIFY"),
                        ("HMAC_256", "GENERATE_VERIFY_MAC"), ("ML_KEM_768", "ENCAPSULATE_DECAPSULATE")]:
        key_id = key_of(spec, usage)["KeyId"]
        with aws_error("InvalidKeyUsageException"):
            kms.generate_data_key_pair(KeyId=key_id, KeyPairSpec="ECC_NIST_P256")
        with aws_error("InvalidKeyUsageException"):
            kms.generate_data_key_pair_without_plaintext(KeyId=key_id, KeyPairSpec="ECC_NIST_P256")


@pytest.mark.parametrize("spec", ["SM2", "ML_KEM_512"])
def test_generate_data_key_pair_unsupported_specs(kms, symmetric_key, aws_error, spec):
    with aws_error("UnsupportedOperationException"):
        kms.generate_data_key_pair(KeyId=symmetric_key["KeyId"], KeyPairSpec=spec)


# --------------------------------------------------------------------------------------------
# 7. HMAC keys (the MAC value itself is checked with imported material elsewhere)
# --------------------------------------------------------------------------------------------

MAC_LEN = {"HMAC_SHA_224": 28, "HMAC_SHA_256": 32, "HMAC_SHA_384": 48, "HMAC_SHA_512": 64}


@pytest.mark.parametrize("spec", list(HMAC_SPECS))
def test_generate_and_verify_mac(kms, raw_client, key_of, aws_error, spec):
    md = key_of(spec, "GENERATE_VERIFY_MAC")
    algorithm = HMAC_SPECS[spec]
    message = os.urandom(200)
    resp = kms.generate_mac(KeyId=md["KeyId"], Message=message, MacAlgorithm=algorithm)
    assert resp["KeyId"] == md["Arn"]
    assert resp["MacAlgorithm"] == algorithm
    mac = resp["Mac"]
    assert len(mac) == MAC_LEN[algorithm]
    # HMAC is deterministic
    assert kms.generate_mac(KeyId=md["Arn"], Message=message, MacAlgorithm=algorithm)["Mac"] == mac

    ok = kms.verify_mac(KeyId=md["KeyId"], Message=message, MacAlgorithm=algorithm, Mac=mac)
    assert ok["MacValid"] is True
    assert ok["KeyId"] == md["Arn"]
    assert ok["MacAlgorithm"] == algorithm

    with aws_error("KMSInvalidMacException"):
        kms.verify_mac(KeyId=md["KeyId"], Message=message, MacAlgorithm=algorithm, Mac=_tamper(mac))
    with aws_error("KMSInvalidMacException"):
        kms.verify_mac(KeyId=md["KeyId"], Message=message + b"!", MacAlgorithm=algorithm, Mac=mac)
    with aws_error("KMSInvalidMacException"):
        kms.verify_mac(KeyId=md["KeyId"], Message=message, MacAlgorithm=algorithm, Mac=mac[:-1])

    for wrong in MAC_LEN:
        if wrong != algorithm:
            with aws_error("InvalidKeyUsageException"):
                kms.generate_mac(KeyId=md["KeyId"], Message=message, MacAlgorithm=wrong)
            with aws_error("InvalidKeyUsageException"):
                kms.verify_mac(KeyId=md["KeyId"], Message=message, MacAlgorithm=wrong, Mac=mac)

    # API_GenerateMac.html: Message is 1-4096 bytes
    raw_client.generate_mac(KeyId=md["KeyId"], Message=b"m" * 4096, MacAlgorithm=algorithm)
    with aws_error("ValidationException"):
        raw_client.generate_mac(KeyId=md["KeyId"], Message=b"m" * 4097, MacAlgorithm=algorithm)


def test_hmac_keys_differ(kms):
    macs = set()
    for _ in range(2):
        md = kms.create_key(KeySpec="HMAC_256", KeyUsage="GENERATE_VERIFY_MAC")["KeyMetadata"]
        macs.add(kms.generate_mac(KeyId=md["KeyId"], Message=b"same", MacAlgorithm="HMAC_SHA_256")["Mac"])
    assert len(macs) == 2


def test_mac_with_non_hmac_keys(kms, key_of, symmetric_key, aws_error):
    for key_id in (symmetric_key["KeyId"], key_of("ECC_NIST_P256", "SIGN_VERIFY")["KeyId"]):
        with aws_error("InvalidKeyUsageException"):
            kms.generate_mac(KeyId=key_id, Message=b"m", MacAlgorithm="HMAC_SHA_256")
        with aws_error("InvalidKeyUsageException"):
            kms.verify_mac(KeyId=key_id, Message=b"m", MacAlgorithm="HMAC_SHA_256", Mac=b"\x00" * 32)


# --------------------------------------------------------------------------------------------
# 8. DeriveSharedSecret (ECDH)
# --------------------------------------------------------------------------------------------


def _spki(public) -> bytes:
    return public.public_bytes(serialization.Encoding.DER, serialization.PublicFormat.SubjectPublicKeyInfo)


@pytest.mark.parametrize("curve", NIST_CURVES)
def test_derive_shared_secret_matches_local_ecdh(kms, key_of, public_of, aws_error, curve):
    md = key_of(curve, "KEY_AGREEMENT")
    _, kms_public = public_of(curve, "KEY_AGREEMENT")
    peer = ec.generate_private_key(CURVE_CLASS[curve]())
    resp = kms.derive_shared_secret(KeyId=md["KeyId"], KeyAgreementAlgorithm="ECDH",
                                    PublicKey=_spki(peer.public_key()))
    assert resp["KeyId"] == md["Arn"]
    assert resp["KeyAgreementAlgorithm"] == "ECDH"
    assert resp["KeyOrigin"] == "AWS_KMS"
    expected = peer.exchange(ec.ECDH(), kms_public)
    assert resp["SharedSecret"] == expected
    assert len(expected) == (CURVE_CLASS[curve].key_size + 7) // 8

    # a peer on another curve is rejected
    other = "ECC_NIST_P384" if curve != "ECC_NIST_P384" else "ECC_NIST_P256"
    wrong = ec.generate_private_key(CURVE_CLASS[other]()).public_key()
    with aws_error("ValidationException"):
        kms.derive_shared_secret(KeyId=md["KeyId"], KeyAgreementAlgorithm="ECDH", PublicKey=_spki(wrong))


def test_two_kms_keys_agree(kms, key_of, public_of):
    a = key_of("ECC_NIST_P256", "KEY_AGREEMENT")
    b = kms.create_key(KeySpec="ECC_NIST_P256", KeyUsage="KEY_AGREEMENT")["KeyMetadata"]
    pub_a = kms.get_public_key(KeyId=a["KeyId"])["PublicKey"]
    pub_b = kms.get_public_key(KeyId=b["KeyId"])["PublicKey"]
    s_ab = kms.derive_shared_secret(KeyId=a["KeyId"], KeyAgreementAlgorithm="ECDH", PublicKey=pub_b)
    s_ba = kms.derive_shared_secret(KeyId=b["KeyId"], KeyAgreementAlgorithm="ECDH", PublicKey=pub_a)
    assert s_ab["SharedSecret"] == s_ba["SharedSecret"]


def test_derive_shared_secret_rejections(kms, key_of, aws_error):
    peer = _spki(ec.generate_private_key(ec.SECP256R1()).public_key())
    for spec, usage in [("ECC_NIST_P256", "SIGN_VERIFY"), ("RSA_2048", "ENCRYPT_DECRYPT"),
                        ("ML_KEM_768", "ENCAPSULATE_DECAPSULATE")]:
        with aws_error("InvalidKeyUsageException"):
            kms.derive_shared_secret(KeyId=key_of(spec, usage)["KeyId"], KeyAgreementAlgorithm="ECDH",
                                     PublicKey=peer)
    md = key_of("ECC_NIST_P256", "KEY_AGREEMENT")
    with aws_error("ValidationException"):
        kms.derive_shared_secret(KeyId=md["KeyId"], KeyAgreementAlgorithm="ECDH", PublicKey=b"\x30\x03junk")
    rsa_peer = _spki(rsa.generate_private_key(65537, 2048).public_key())
    with aws_error("ValidationException"):
        kms.derive_shared_secret(KeyId=md["KeyId"], KeyAgreementAlgorithm="ECDH", PublicKey=rsa_peer)


# --------------------------------------------------------------------------------------------
# 9. ML-KEM Encapsulate / Decapsulate
# --------------------------------------------------------------------------------------------


@pytest.mark.parametrize("spec", ML_KEM_SPECS)
def test_ml_kem_interop(kms, key_of, public_of, aws_error, spec):
    md = key_of(spec, "ENCAPSULATE_DECAPSULATE")
    _, public = public_of(spec, "ENCAPSULATE_DECAPSULATE")

    # encapsulated outside keyledger with the published key
    secret, ciphertext = public.encapsulate()
    assert len(ciphertext) == ML_KEM_CIPHERTEXT_LEN[spec]
    dec = kms.decapsulate(KeyId=md["KeyId"], SharedSecretCiphertextBlob=ciphertext,
                          EncapsulationAlgorithm="ML_KEM")
    assert dec["SharedSecret"] == secret
    assert dec["KeyId"] == md["Arn"]
    assert dec["EncapsulationAlgorithm"] == "ML_KEM"

    # encapsulated by keyledger
    enc = kms.encapsulate(KeyId=md["Arn"], EncapsulationAlgorithm="ML_KEM")
    assert enc["KeyId"] == md["Arn"]
    assert enc["EncapsulationAlgorithm"] == "ML_KEM"
    assert len(enc["SharedSecret"]) == 32
    assert len(enc["SharedSecretCiphertextBlob"]) == ML_KEM_CIPHERTEXT_LEN[spec]
    again = kms.decapsulate(KeyId=md["KeyId"], SharedSecretCiphertextBlob=enc["SharedSecretCiphertextBlob"],
                            EncapsulationAlgorithm="ML_KEM")
    assert again["SharedSecret"] == enc["SharedSecret"]
    assert kms.encapsulate(KeyId=md["KeyId"], EncapsulationAlgorithm="ML_KEM")["SharedSecret"] != enc["SharedSecret"]

    # API_Decapsulate.html: wrong length -> InvalidCiphertextException; otherwise implicit
    # rejection: a 32-byte pseudo-random value, no error.
    with aws_error("InvalidCiphertextException"):
        kms.decapsulate(KeyId=md["KeyId"], SharedSecretCiphertextBlob=ciphertext[:-1],
                        EncapsulationAlgorithm="ML_KEM")
    with aws_error("InvalidCiphertextException"):
        kms.decapsulate(KeyId=md["KeyId"], SharedSecretCiphertextBlob=ciphertext + b"\x00",
                        EncapsulationAlgorithm="ML_KEM")
    rejected = kms.decapsulate(KeyId=md["KeyId"], SharedSecretCiphertextBlob=_tamper(ciphertext),
                               EncapsulationAlgorithm="ML_KEM")["SharedSecret"]
    assert len(rejected) == 32 and rejected != secret


def test_ml_kem_operations_on_other_keys(kms, key_of, symmetric_key, aws_error):
    for key_id in (symmetric_key["KeyId"], key_of("ECC_NIST_P256", "KEY_AGREEMENT")["KeyId"],
                   key_of("RSA_2048", "ENCRYPT_DECRYPT")["KeyId"]):
        with aws_error("InvalidKeyUsageException"):
            kms.encapsulate(KeyId=key_id, EncapsulationAlgorithm="ML_KEM")
        with aws_error("InvalidKeyUsageException"):
            kms.decapsulate(KeyId=key_id, SharedSecretCiphertextBlob=b"\x00" * 1088,
                            EncapsulationAlgorithm="ML_KEM")
    # ML-KEM keys do not encrypt
    with aws_error("InvalidKeyUsageException"):
        kms.encrypt(KeyId=key_of("ML_KEM_768", "ENCAPSULATE_DECAPSULATE")["KeyId"], Plaintext=b"x",
                    EncryptionAlgorithm="RSAES_OAEP_SHA_256")


# --------------------------------------------------------------------------------------------
# 10. Rotation is for symmetric encryption keys only
# --------------------------------------------------------------------------------------------

NON_ROTATABLE = [("RSA_2048", "SIGN_VERIFY"), ("RSA_2048", "ENCRYPT_DECRYPT"),
                 ("ECC_NIST_P256", "KEY_AGREEMENT"), ("ECC_NIST_EDWARDS25519", "SIGN_VERIFY"),
                 ("HMAC_256", "GENERATE_VERIFY_MAC"), ("ML_DSA_44", "SIGN_VERIFY"),
                 ("ML_KEM_768", "ENCAPSULATE_DECAPSULATE")]


@pytest.mark.parametrize(("spec", "usage"), NON_ROTATABLE, ids=_ids(NON_ROTATABLE))
def test_rotation_is_unsupported(kms, key_of, aws_error, spec, usage):
    # API_EnableKeyRotation.html / API_RotateKeyOnDemand.html: not for asymmetric or HMAC keys
    md = key_of(spec, usage)
    with aws_error("UnsupportedOperationException"):
        kms.enable_key_rotation(KeyId=md["KeyId"])
    with aws_error("UnsupportedOperationException"):
        kms.rotate_key_on_demand(KeyId=md["KeyId"])
    # GetKeyRotationStatus answers: "The key rotation status of these KMS keys is always false"
    # (API_GetKeyRotationStatus.html; Terraform reads it for every AWS_KMS key)
    status = kms.get_key_rotation_status(KeyId=md["KeyId"])
    assert (status["KeyRotationEnabled"], status["KeyId"]) == (False, md["Arn"])
    assert "RotationPeriodInDays" not in status and "NextRotationDate" not in status
    # ListKeyRotations: no rotations; IncludeKeyMaterial "can only be used with KMS keys that
    # support automatic or on-demand key rotation" (API_ListKeyRotations.html)
    assert kms.list_key_rotations(KeyId=md["KeyId"])["Rotations"] == []
    with aws_error("UnsupportedOperationException"):
        kms.list_key_rotations(KeyId=md["KeyId"], IncludeKeyMaterial="ALL_KEY_MATERIAL")
    # CurrentKeyMaterialId "is present for symmetric encryption keys" (KeyMetadata)
    assert "CurrentKeyMaterialId" not in md
    assert "CurrentKeyMaterialId" not in kms.describe_key(KeyId=md["KeyId"])["KeyMetadata"]


def test_unknown_asymmetric_key_is_not_found(kms, aws_error):
    missing = str(uuid.uuid4())
    with aws_error("NotFoundException"):
        kms.get_public_key(KeyId=missing)
    with aws_error("NotFoundException"):
        kms.sign(KeyId=missing, Message=b"m", SigningAlgorithm="ECDSA_SHA_256")
