"""Key specs, key usages and the algorithms each allows, as AWS KMS documents them.

One table (:data:`KEY_SPECS`) answers every question the API asks about a kind of key:
which usages it may be created with, which algorithms DescribeKey and GetPublicKey list
for each usage, whether it has a public key, and whether its material may be rotated.
The rules that check a request against the table live here too, so the service and the
crypto adapter never re-encode them.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from enum import StrEnum

from domain.messages import KeyUsage as Usage
from domain.messages import Unsupported, Validation


class KeySpec(StrEnum):
    SYMMETRIC_DEFAULT = "SYMMETRIC_DEFAULT"
    RSA_2048 = "RSA_2048"
    RSA_3072 = "RSA_3072"
    RSA_4096 = "RSA_4096"
    ECC_NIST_P256 = "ECC_NIST_P256"
    ECC_NIST_P384 = "ECC_NIST_P384"
    ECC_NIST_P521 = "ECC_NIST_P521"
    ECC_SECG_P256K1 = "ECC_SECG_P256K1"
    ECC_NIST_EDWARDS25519 = "ECC_NIST_EDWARDS25519"
    HMAC_224 = "HMAC_224"
    HMAC_256 = "HMAC_256"
    HMAC_384 = "HMAC_384"
    HMAC_512 = "HMAC_512"
    ML_DSA_44 = "ML_DSA_44"
    ML_DSA_65 = "ML_DSA_65"
    ML_DSA_87 = "ML_DSA_87"
    ML_KEM_512 = "ML_KEM_512"
    ML_KEM_768 = "ML_KEM_768"
    ML_KEM_1024 = "ML_KEM_1024"
    SM2 = "SM2"


class KeyUsage(StrEnum):
    ENCRYPT_DECRYPT = "ENCRYPT_DECRYPT"
    SIGN_VERIFY = "SIGN_VERIFY"
    GENERATE_VERIFY_MAC = "GENERATE_VERIFY_MAC"
    KEY_AGREEMENT = "KEY_AGREEMENT"
    ENCAPSULATE_DECAPSULATE = "ENCAPSULATE_DECAPSULATE"


class Family(StrEnum):
    """How the material of a key spec is made and used (the crypto adapter's switch)."""

    SYMMETRIC = "SYMMETRIC"
    RSA = "RSA"
    ECC = "ECC"
    ED25519 = "ED25519"
    HMAC = "HMAC"
    ML_DSA = "ML_DSA"
    ML_KEM = "ML_KEM"
    SM2 = "SM2"


SYMMETRIC_DEFAULT = "SYMMETRIC_DEFAULT"
RSA_SIGNING = (
    "RSASSA_PSS_SHA_256", "RSASSA_PSS_SHA_384", "RSASSA_PSS_SHA_512",
    "RSASSA_PKCS1_V1_5_SHA_256", "RSASSA_PKCS1_V1_5_SHA_384", "RSASSA_PKCS1_V1_5_SHA_512",
)
RSA_ENCRYPTION = ("RSAES_OAEP_SHA_1", "RSAES_OAEP_SHA_256")


@dataclass(frozen=True)
class SpecInfo:
    """What AWS allows for one key spec."""

    family: Family
    #: usage -> the algorithms DescribeKey/GetPublicKey list for a key of that usage
    usages: dict[KeyUsage, tuple[str, ...]]
    #: for RSA encryption: algorithm -> largest plaintext in bytes
    max_plaintext: dict[str, int] = field(default_factory=dict)
    #: for HMAC: (shortest, longest) imported key in bytes, and the generated length
    hmac_key_bytes: tuple[int, int, int] | None = None
    supported: bool = True  # False: no well-kept library here provides it

    @property
    def asymmetric(self) -> bool:
        return self.family not in (Family.SYMMETRIC, Family.HMAC)


def _rsa(bits: int) -> SpecInfo:
    size = bits // 8
    return SpecInfo(
        Family.RSA,
        {KeyUsage.ENCRYPT_DECRYPT: RSA_ENCRYPTION, KeyUsage.SIGN_VERIFY: RSA_SIGNING},
        # OAEP: k - 2*hLen - 2 bytes
        max_plaintext={"RSAES_OAEP_SHA_1": size - 2 * 20 - 2, "RSAES_OAEP_SHA_256": size - 2 * 32 - 2},
    )


def _hmac(bits: int, longest: int) -> SpecInfo:
    algorithm = f"HMAC_SHA_{bits}"
    return SpecInfo(
        Family.HMAC, {KeyUsage.GENERATE_VERIFY_MAC: (algorithm,)},
        hmac_key_bytes=(bits // 8, longest, bits // 8),
    )


KEY_SPECS: dict[KeySpec, SpecInfo] = {
    KeySpec.SYMMETRIC_DEFAULT: SpecInfo(
        Family.SYMMETRIC, {KeyUsage.ENCRYPT_DECRYPT: (SYMMETRIC_DEFAULT,)}
    ),
    KeySpec.RSA_2048: _rsa(2048),
    KeySpec.RSA_3072: _rsa(3072),
    KeySpec.RSA_4096: _rsa(4096),
    KeySpec.ECC_NIST_P256: SpecInfo(
        Family.ECC, {KeyUsage.SIGN_VERIFY: ("ECDSA_SHA_256",), KeyUsage.KEY_AGREEMENT: ("ECDH",)}
    ),
    KeySpec.ECC_NIST_P384: SpecInfo(
        Family.ECC, {KeyUsage.SIGN_VERIFY: ("ECDSA_SHA_384",), KeyUsage.KEY_AGREEMENT: ("ECDH",)}
    ),
    KeySpec.ECC_NIST_P521: SpecInfo(
        Family.ECC, {KeyUsage.SIGN_VERIFY: ("ECDSA_SHA_512",), KeyUsage.KEY_AGREEMENT: ("ECDH",)}
    ),
    KeySpec.ECC_SECG_P256K1: SpecInfo(Family.ECC, {KeyUsage.SIGN_VERIFY: ("ECDSA_SHA_256",)}),
    KeySpec.ECC_NIST_EDWARDS25519: SpecInfo(
        Family.ED25519, {KeyUsage.SIGN_VERIFY: ("ED25519_SHA_512", "ED25519_PH_SHA_512")}
    ),
    KeySpec.HMAC_224: _hmac(224, 64),
    KeySpec.HMAC_256: _hmac(256, 64),
    KeySpec.HMAC_384: _hmac(384, 128),
    KeySpec.HMAC_512: _hmac(512, 128),
    KeySpec.ML_DSA_44: SpecInfo(Family.ML_DSA, {KeyUsage.SIGN_VERIFY: ("ML_DSA_SHAKE_256",)}),
    KeySpec.ML_DSA_65: SpecInfo(Family.ML_DSA, {KeyUsage.SIGN_VERIFY: ("ML_DSA_SHAKE_256",)}),
    KeySpec.ML_DSA_87: SpecInfo(Family.ML_DSA, {KeyUsage.SIGN_VERIFY: ("ML_DSA_SHAKE_256",)}),
    KeySpec.ML_KEM_512: SpecInfo(
        Family.ML_KEM, {KeyUsage.ENCAPSULATE_DECAPSULATE: ("ML_KEM",)}, supported=False
    ),
    KeySpec.ML_KEM_768: SpecInfo(Family.ML_KEM, {KeyUsage.ENCAPSULATE_DECAPSULATE: ("ML_KEM",)}),
    KeySpec.ML_KEM_1024: SpecInfo(Family.ML_KEM, {KeyUsage.ENCAPSULATE_DECAPSULATE: ("ML_KEM",)}),
    KeySpec.SM2: SpecInfo(
        Family.SM2,
        {KeyUsage.ENCRYPT_DECRYPT: ("SM2PKE",), KeyUsage.SIGN_VERIFY: ("SM2DSA",),
         KeyUsage.KEY_AGREEMENT: ("ECDH",)},
        supported=False,
    ),
}

#: KeyMetadata / GetPublicKey field that lists a usage's algorithms
ALGORITHM_FIELDS = {
    KeyUsage.ENCRYPT_DECRYPT: "EncryptionAlgorithms",
    KeyUsage.SIGN_VERIFY: "SigningAlgorithms",
    KeyUsage.GENERATE_VERIFY_MAC: "MacAlgorithms",
    KeyUsage.KEY_AGREEMENT: "KeyAgreementAlgorithms",
    KeyUsage.ENCAPSULATE_DECAPSULATE: "EncapsulationAlgorithms",
}

#: data key pairs (GenerateDataKeyPair): the same key specs, and the same support
DATA_KEY_PAIR_SPECS = frozenset(
    {KeySpec.RSA_2048, KeySpec.RSA_3072, KeySpec.RSA_4096, KeySpec.ECC_NIST_P256,
     KeySpec.ECC_NIST_P384, KeySpec.ECC_NIST_P521, KeySpec.ECC_SECG_P256K1,
     KeySpec.ECC_NIST_EDWARDS25519, KeySpec.SM2, KeySpec.ML_KEM_512, KeySpec.ML_KEM_768,
     KeySpec.ML_KEM_1024}
)

#: signing algorithm -> digest length in bytes (MessageType DIGEST)
DIGEST_LENGTHS = {
    **{a: 32 for a in ("RSASSA_PSS_SHA_256", "RSASSA_PKCS1_V1_5_SHA_256", "ECDSA_SHA_256")},
    **{a: 48 for a in ("RSASSA_PSS_SHA_384", "RSASSA_PKCS1_V1_5_SHA_384", "ECDSA_SHA_384")},
    **{a: 64 for a in ("RSASSA_PSS_SHA_512", "RSASSA_PKCS1_V1_5_SHA_512", "ECDSA_SHA_512",
                       "ED25519_PH_SHA_512")},
}
EXTERNAL_MU_BYTES = 64


def spec_info(key_spec: str) -> SpecInfo:
    # KeySpec is a StrEnum: its members hash and compare as their values, so the plain
    # string finds its entry without a KeySpec(...) call (an Enum lookup costs ~1 µs, and
    # every asymmetric request asks a few times)
    info = KEY_SPECS.get(key_spec)  # type: ignore[call-overload]
    if info is None:
        raise ValueError(f"{key_spec!r} is not a valid KeySpec")
    return info


def check_creatable(key_spec: str, key_usage: str | None) -> None:
    """CreateKey's rules for a KeySpec and KeyUsage (both already valid enum values; a
    KeyUsage None was not given: it "is optional when you are creating a symmetric encryption
    KMS key; otherwise, it is required")."""
    info = spec_info(key_spec)
    if key_usage is None:
        if key_spec != SYMMETRIC_DEFAULT:
            raise Validation.KEY_USAGE_REQUIRED()
        key_usage = KeyUsage.ENCRYPT_DECRYPT
    if not info.supported:
        raise Unsupported.KEY_SPEC(key_spec=key_spec)
    if KeyUsage(key_usage) not in info.usages:
        raise Validation.USAGE_NOT_COMPATIBLE(usage=key_usage, key_spec=key_spec)


def algorithms(key_spec: str, key_usage: str) -> tuple[str, ...]:
    return spec_info(key_spec).usages[key_usage]  # type: ignore[index]  # a StrEnum key


def check_usage(key_usage: str, required: KeyUsage, arn: str, operation: str) -> None:
    if key_usage != required:
        raise Usage.WRONG_USAGE(arn=arn, usage=key_usage, operation=operation)


def check_algorithm(key_spec: str, key_usage: str, algorithm: str) -> None:
    if algorithm not in algorithms(key_spec, key_usage):
        raise Usage.WRONG_ALGORITHM(algorithm=algorithm, key_spec=key_spec)


def check_signing_message(key_spec: str, algorithm: str, message_type: str, message: bytes) -> None:
    """The MessageType rules of Sign and Verify (after the algorithm fits the key)."""
    family = spec_info(key_spec).family
    if message_type == "EXTERNAL_MU":
        if family is not Family.ML_DSA:
            raise Validation.EXTERNAL_MU_KEY(key_spec=key_spec)
        if len(message) != EXTERNAL_MU_BYTES:
            raise Validation.EXTERNAL_MU_LENGTH(length=EXTERNAL_MU_BYTES)
        return
    if message_type == "DIGEST":
        if family is Family.ML_DSA:
            raise Validation.DIGEST_ML_DSA()
        if algorithm == "ED25519_SHA_512":
            raise Validation.ED25519_RAW_ONLY()
        if len(message) != DIGEST_LENGTHS[algorithm]:
            raise Validation.DIGEST_LENGTH(algorithm=algorithm)
        return
    if algorithm == "ED25519_PH_SHA_512":
        raise Validation.ED25519_PH_DIGEST_ONLY()


def check_rsa_plaintext(key_spec: str, algorithm: str, plaintext: bytes) -> None:
    limit = spec_info(key_spec).max_plaintext[algorithm]
    if len(plaintext) > limit:
        raise Validation.RSA_PLAINTEXT_TOO_LONG(algorithm=algorithm, key_spec=key_spec, limit=limit)


def rotatable(key_spec: str) -> bool:
    """Automatic and on-demand rotation: symmetric encryption keys only."""
    return spec_info(key_spec).family is Family.SYMMETRIC
