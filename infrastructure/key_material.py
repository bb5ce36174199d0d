"""Key material: generating it and using it, for every key spec, with ``cryptography``.

This adapter is the only place that knows how material is encoded and which primitive
each KMS algorithm names. The rules about *which* algorithms a key may use live in
:mod:`domain.key_specs`; callers check those first.

Encodings (what is sealed into the ledger):

* SYMMETRIC_DEFAULT: 32 random bytes (AES-256-GCM).
* HMAC_*: the raw HMAC key.
* RSA, ECC, Ed25519, ML-DSA, ML-KEM: the private key as PKCS#8 DER.

Asymmetric material is loaded as a :class:`PrivateKey`. Cheap operations (public-key work,
ECDSA and Ed25519 signing) are computed in this process; private-key work that takes a
millisecond or more is computed in helper processes at a lower CPU priority (see
:mod:`infrastructure.crypto_workers`), so it never competes with the event loop. The
operations that use a key for a request (sign, verify, decrypt, derive, decapsulate) are
coroutines: the event loop awaits the helper. Key generation and imports, done by threads that
manage keys, block on a helper.

Public keys are DER SubjectPublicKeyInfo, as GetPublicKey returns them. Signatures match
what AWS KMS produces and any standard verifier accepts: PKCS#1 v1.5 with the DigestInfo
prefix, RSASSA-PSS with MGF1 and a salt as long as the digest, DER-encoded ECDSA, pure
Ed25519 for RAW messages and Ed25519ph (RFC 8032) for ED25519_PH_SHA_512, pure ML-DSA with
an empty context or its external-mu form.
"""

from __future__ import annotations

import hmac
import os
from collections.abc import Callable
from typing import Any

from cryptography.exceptions import InvalidSignature, UnsupportedAlgorithm
from cryptography.hazmat.primitives import hashes, keywrap, serialization
from cryptography.hazmat.primitives.asymmetric import ec, ed25519, mldsa, mlkem, padding, rsa, utils
from cryptography.hazmat.primitives.ciphers.aead import AESGCM
from nacl import bindings as sodium

from domain.key_specs import Family, KeySpec, spec_info
from infrastructure.crypto_workers import CryptoWorkers, memoized

SYMMETRIC_KEY_BYTES = 32

_CURVES = {
    KeySpec.ECC_NIST_P256: ec.SECP256R1,
    KeySpec.ECC_NIST_P384: ec.SECP384R1,
    KeySpec.ECC_NIST_P521: ec.SECP521R1,
    KeySpec.ECC_SECG_P256K1: ec.SECP256K1,
}
_RSA_BITS = {KeySpec.RSA_2048: 2048, KeySpec.RSA_3072: 3072, KeySpec.RSA_4096: 4096}
_ML_DSA = {
    KeySpec.ML_DSA_44: mldsa.MLDSA44PrivateKey,
    KeySpec.ML_DSA_65: mldsa.MLDSA65PrivateKey,
    KeySpec.ML_DSA_87: mldsa.MLDSA87PrivateKey,
}
_ML_KEM = {KeySpec.ML_KEM_768: mlkem.MLKEM768PrivateKey, KeySpec.ML_KEM_1024: mlkem.MLKEM1024PrivateKey}
_HASHES = {"SHA_1": hashes.SHA1, "SHA_256": hashes.SHA256, "SHA_384": hashes.SHA384, "SHA_512": hashes.SHA512}
_HMAC_HASHES = {"HMAC_SHA_224": "sha224", "HMAC_SHA_256": "sha256", "HMAC_SHA_384": "sha384",
                "HMAC_SHA_512": "sha512"}
#: ML-KEM ciphertext lengths (FIPS 203)
ML_KEM_CIPHERTEXT_BYTES = {KeySpec.ML_KEM_768: 1088, KeySpec.ML_KEM_1024: 1568}


#: the helper processes that compute costly private-key work (started on first use)
workers = CryptoWorkers()

#: Signature operations computed in this process, per key family: tens of microseconds each
#: (ECDSA and Ed25519 signing; RSA, ECDSA and Ed25519 verification). The others (RSA signing,
#: ML-DSA) take a millisecond or more and go to the helper processes.
CHEAP_SIGNATURES = {
    "Sign": frozenset({Family.ECC, Family.ED25519}),
    "Verify": frozenset({Family.RSA, Family.ECC, Family.ED25519}),
}


class BadKeyMaterial(ValueError):
    """Material (imported or a peer's public key) that does not fit the key spec."""


class PrivateKey:
    """Asymmetric material, loaded: its PKCS#8 encoding, which is what a helper process is
    sent, and the key object, for what this process computes itself."""

    __slots__ = ("pkcs8", "key")

    def __init__(self, pkcs8: bytes, key: Any) -> None:
        self.pkcs8 = pkcs8
        self.key = key

    def __repr__(self) -> str:  # never the material
        return f"PrivateKey({type(self.key).__name__})"


def _load_private(pkcs8: bytes) -> Any:
    """A private key object from material this service generated, or checked when it was
    imported (:func:`check_import`); the seal authenticates it since. RSA's consistency
    check, tens of milliseconds, is therefore not repeated on every load."""
    return serialization.load_der_private_key(pkcs8, password=None, unsafe_skip_rsa_key_validation=True)


async def _in_helper(function: Callable[..., Any], private_key: PrivateKey, *args: Any) -> Any:
    """``function(private key object, *args)``, computed in a helper process."""
    return await workers.run(_with_loaded_key, function, private_key.pkcs8, *args)


def _with_loaded_key(function: Callable[..., Any], pkcs8: bytes, *args: Any) -> Any:
    return function(memoized(pkcs8, _load_private), *args)  # in the helper


def _hash(algorithm: str) -> hashes.HashAlgorithm:
    """The hash an algorithm name ends with (RSASSA_PSS_SHA_256 -> SHA256)."""
    return _HASHES["SHA_" + algorithm.rsplit("_", 1)[1]]()


def _pkcs8(private_key) -> bytes:
    return private_key.private_bytes(
        serialization.Encoding.DER, serialization.PrivateFormat.PKCS8, serialization.NoEncryption()
    )


def public_der(public_key) -> bytes:
    return public_key.public_bytes(
        serialization.Encoding.DER, serialization.PublicFormat.SubjectPublicKeyInfo
    )


def _generate_private_key(key_spec: KeySpec):
    family = spec_info(key_spec).family
    if family is Family.RSA:
        return rsa.generate_private_key(public_exponent=65537, key_size=_RSA_BITS[key_spec])
    if family is Family.ECC:
        return ec.generate_private_key(_CURVES[key_spec]())
    if family is Family.ED25519:
        return ed25519.Ed25519PrivateKey.generate()
    if family is Family.ML_DSA:
        return _ML_DSA[key_spec].generate()
    if family is Family.ML_KEM:
        return _ML_KEM[key_spec].generate()
    raise UnsupportedAlgorithm(f"no private key for {key_spec}")


def generate(key_spec: str) -> bytes:
    """New material for a key of ``key_spec`` (see the module docstring for encodings)."""
    spec = KeySpec(key_spec)
    info = spec_info(spec)
    if info.family is Family.SYMMETRIC:
        return os.urandom(SYMMETRIC_KEY_BYTES)
    if info.family is Family.HMAC:
        assert info.hmac_key_bytes is not None
        return os.urandom(info.hmac_key_bytes[2])
    return generate_key_pair(spec)[0]


def generate_key_pair(key_spec: str) -> tuple[bytes, bytes]:
    """A key pair (a data key pair, or an import wrapping key): (PKCS#8 DER private key,
    DER SubjectPublicKeyInfo). Generated in a helper process: RSA key generation takes up
    to seconds of CPU at 4096 bits, and the event loop's requests come first."""
    return workers.call(_new_key_pair, KeySpec(key_spec))


def _new_key_pair(key_spec: KeySpec) -> tuple[bytes, bytes]:
    private_key = _generate_private_key(key_spec)  # in the helper
    return _pkcs8(private_key), public_der(private_key.public_key())


def load(key_spec: str, material: bytes) -> Any:
    """The object the operations below take: AESGCM, the HMAC key, or a :class:`PrivateKey`."""
    family = spec_info(key_spec).family
    if family is Family.SYMMETRIC:
        return AESGCM(material)
    if family is Family.HMAC:
        return material
    return PrivateKey(material, _load_private(material))


def public_key(key_spec: str, material: bytes) -> bytes | None:
    """DER SubjectPublicKeyInfo of asymmetric material; None for symmetric and HMAC."""
    if not spec_info(key_spec).asymmetric:
        return None
    return public_der(_load_private(material).public_key())


def check_import(key_spec: str, material: bytes) -> None:
    """Imported material must be exactly what a key of ``key_spec`` uses."""
    spec = KeySpec(key_spec)
    info = spec_info(spec)
    if info.family is Family.SYMMETRIC:
        if len(material) != SYMMETRIC_KEY_BYTES:
            raise BadKeyMaterial("Symmetric key material must be 256 bits (32 bytes).")
        return
    if info.family is Family.HMAC:
        assert info.hmac_key_bytes is not None
        low, high, _ = info.hmac_key_bytes
        if not low <= len(material) <= high:
            raise BadKeyMaterial(f"{key_spec} key material must be {low} to {high} bytes long.")
        return
    workers.call(_check_private_key, spec, material)  # RSA's full key check: tens of ms


def _check_private_key(spec: KeySpec, material: bytes) -> None:
    try:
        if not _is_pkcs8(material):
            raise ValueError("not PKCS#8")
        private_key = serialization.load_der_private_key(material, password=None)
    except (ValueError, TypeError, UnsupportedAlgorithm):
        raise BadKeyMaterial("Asymmetric key material must be a PKCS#8 DER private key.") from None
    if not _matches(spec, private_key):
        raise BadKeyMaterial(f"The private key does not match key spec {spec.value}.")


def _is_pkcs8(der: bytes) -> bool:
    """Whether DER is a PKCS#8 PrivateKeyInfo, as AWS requires for imported asymmetric keys:
    SEQUENCE { INTEGER version, SEQUENCE algorithm, ... }. ``load_der_private_key`` also takes
    PKCS#1 and SEC1 keys, whose version INTEGER is followed by an INTEGER or OCTET STRING."""
    if len(der) < 4 or der[0] != 0x30:
        return False
    header = 2 + (der[1] & 0x7F if der[1] & 0x80 else 0)  # the outer SEQUENCE's tag and length
    if len(der) < header + 3 or der[header] != 0x02 or der[header + 1] >= 0x80:
        return False
    after_version = header + 2 + der[header + 1]
    return len(der) > after_version and der[after_version] == 0x30


def _matches(spec: KeySpec, private_key) -> bool:
    family = spec_info(spec).family
    if family is Family.RSA:
        return isinstance(private_key, rsa.RSAPrivateKey) and private_key.key_size == _RSA_BITS[spec]
    if family is Family.ECC:
        return isinstance(private_key, ec.EllipticCurvePrivateKey) and isinstance(
            private_key.curve, _CURVES[spec]
        )
    if family is Family.ED25519:
        return isinstance(private_key, ed25519.Ed25519PrivateKey)
    if family is Family.ML_DSA:
        return isinstance(private_key, _ML_DSA[spec])
    if family is Family.ML_KEM:
        return isinstance(private_key, _ML_KEM[spec])
    return False


def imported_material_id(key_id: str, material: bytes) -> str:
    """KeyMaterialId of imported material: derived from the KMS key id and the material, so
    re-importing the same material finds the same version (and other material does not)."""
    return hmac.digest(key_id.encode(), b"keyledger-imported-material:" + material, "sha256").hex()


# -- signing -----------------------------------------------------------------------------------


def _rsa_padding(algorithm: str, digest: hashes.HashAlgorithm):
    if algorithm.startswith("RSASSA_PSS"):
        return padding.PSS(mgf=padding.MGF1(digest), salt_length=digest.digest_size)
    return padding.PKCS1v15()


async def sign(key_spec: str, private_key: PrivateKey, algorithm: str, message_type: str,
               message: bytes) -> bytes:
    if spec_info(key_spec).family in CHEAP_SIGNATURES["Sign"]:
        return _sign(private_key.key, key_spec, algorithm, message_type, message)
    return await _in_helper(_sign, private_key, key_spec, algorithm, message_type, message)


def _sign(private_key, key_spec: str, algorithm: str, message_type: str, message: bytes) -> bytes:
    family = spec_info(key_spec).family
    if family is Family.ML_DSA:
        return private_key.sign_mu(message) if message_type == "EXTERNAL_MU" else private_key.sign(message)
    if family is Family.ED25519:
        if algorithm == "ED25519_PH_SHA_512":
            return _ed25519ph(private_key, message, None)
        return private_key.sign(message)
    digest = _hash(algorithm)
    chosen = utils.Prehashed(digest) if message_type == "DIGEST" else digest
    if family is Family.RSA:
        return private_key.sign(message, _rsa_padding(algorithm, digest), chosen)
    return private_key.sign(message, ec.ECDSA(chosen))


async def verify(key_spec: str, private_key: PrivateKey, algorithm: str, message_type: str,
                 message: bytes, signature: bytes) -> bool:
    if spec_info(key_spec).family in CHEAP_SIGNATURES["Verify"]:
        return _verify(private_key.key, key_spec, algorithm, message_type, message, signature)
    return await _in_helper(_verify, private_key, key_spec, algorithm, message_type, message, signature)


def _verify(private_key, key_spec: str, algorithm: str, message_type: str, message: bytes,
            signature: bytes) -> bool:
    public = private_key.public_key()
    family = spec_info(key_spec).family
    try:
        if family is Family.ML_DSA:
            if message_type == "EXTERNAL_MU":
                public.verify_mu(signature, message)
            else:
                public.verify(signature, message)
        elif family is Family.ED25519:
            if algorithm == "ED25519_PH_SHA_512":
                return _ed25519ph(private_key, message, signature)
            public.verify(signature, message)
        else:
            digest = _hash(algorithm)
            chosen = utils.Prehashed(digest) if message_type == "DIGEST" else digest
            if family is Family.RSA:
                public.verify(signature, message, _rsa_padding(algorithm, digest), chosen)
            else:
                public.verify(signature, message, ec.ECDSA(chosen))
    except (InvalidSignature, ValueError):
        return False
    return True


def _ed25519ph(private_key, message: bytes, signature: bytes | None):
    """Ed25519ph (RFC 8032, empty context) of ``message`` via libsodium: sign when
    ``signature`` is None, else verify it. KMS prehashes the DIGEST it is given once more."""
    seed = private_key.private_bytes_raw()
    public, secret = sodium.crypto_sign_seed_keypair(seed)
    state = sodium.crypto_sign_ed25519ph_state()
    sodium.crypto_sign_ed25519ph_update(state, message)
    if signature is None:
        return sodium.crypto_sign_ed25519ph_final_create(state, secret)
    try:
        return sodium.crypto_sign_ed25519ph_final_verify(state, signature, public)
    except Exception:  # nacl raises BadSignatureError (and ValueError for bad lengths)
        return False


# -- encryption, MAC, key agreement, encapsulation ---------------------------------------------


def _oaep(algorithm: str) -> padding.OAEP:
    digest = _hash(algorithm)
    return padding.OAEP(mgf=padding.MGF1(digest), algorithm=digest, label=None)


def rsa_encrypt(private_key: PrivateKey, algorithm: str, plaintext: bytes) -> bytes:
    return private_key.key.public_key().encrypt(plaintext, _oaep(algorithm))


async def rsa_decrypt(private_key: PrivateKey, algorithm: str, ciphertext: bytes) -> bytes:
    """Raises ValueError when the ciphertext is not valid for this key and algorithm."""
    return await _in_helper(_rsa_decrypt, private_key, algorithm, ciphertext)


def _rsa_decrypt(private_key, algorithm: str, ciphertext: bytes) -> bytes:
    return private_key.decrypt(ciphertext, _oaep(algorithm))


def mac(hmac_key: bytes, algorithm: str, message: bytes) -> bytes:
    return hmac.digest(hmac_key, message, _HMAC_HASHES[algorithm])


def verify_mac(hmac_key: bytes, algorithm: str, message: bytes, tag: bytes) -> bool:
    return hmac.compare_digest(mac(hmac_key, algorithm, message), tag)


async def derive_shared_secret(private_key: PrivateKey, peer_public_der: bytes) -> bytes:
    """ECDH with a peer's DER SubjectPublicKeyInfo on the same curve."""
    return await _in_helper(_derive_shared_secret, private_key, peer_public_der)


def _derive_shared_secret(private_key, peer_public_der: bytes) -> bytes:
    try:
        peer = serialization.load_der_public_key(peer_public_der)
    except (ValueError, UnsupportedAlgorithm):
        raise BadKeyMaterial("PublicKey is not a valid DER-encoded SubjectPublicKeyInfo.") from None
    if not isinstance(peer, ec.EllipticCurvePublicKey) or peer.curve.name != private_key.curve.name:
        raise BadKeyMaterial(
            f"The public key must be on the same curve as the KMS key ({private_key.curve.name})."
        )
    return private_key.exchange(ec.ECDH(), peer)


def encapsulate(private_key: PrivateKey) -> tuple[bytes, bytes]:
    """(shared secret, ciphertext) for the key's public key."""
    return private_key.key.public_key().encapsulate()


async def decapsulate(private_key: PrivateKey, ciphertext: bytes) -> bytes:
    return await _in_helper(_decapsulate, private_key, ciphertext)


def _decapsulate(private_key, ciphertext: bytes) -> bytes:
    return private_key.decapsulate(ciphertext)


# -- import wrapping ---------------------------------------------------------------------------


def unwrap(wrapping_key_pkcs8: bytes, algorithm: str, wrapped: bytes) -> bytes:
    """Recover imported material. RSAES_OAEP_SHA_*: the material encrypted with RSA-OAEP.
    RSA_AES_KEY_WRAP_SHA_*: an ephemeral AES key encrypted with RSA-OAEP, followed by the
    material wrapped under it with AES Key Wrap with Padding (RFC 5649).
    Raises ValueError when the blob does not unwrap."""
    return workers.call(_unwrap, wrapping_key_pkcs8, algorithm, wrapped)


def _unwrap(wrapping_key_pkcs8: bytes, algorithm: str, wrapped: bytes) -> bytes:
    private_key = _load_private(wrapping_key_pkcs8)
    oaep = _oaep(algorithm)  # the hash is the algorithm name's last part in both families
    if algorithm.startswith("RSAES_OAEP"):
        return private_key.decrypt(wrapped, oaep)
    size = private_key.key_size // 8
    aes_key = private_key.decrypt(wrapped[:size], oaep)
    try:
        return keywrap.aes_key_unwrap_with_padding(aes_key, wrapped[size:])
    except keywrap.InvalidUnwrap:
        raise ValueError("the wrapped key material does not unwrap") from None
