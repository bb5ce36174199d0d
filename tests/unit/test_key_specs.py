"""Key specs and their request rules (domain.key_specs). Pure domain: no I/O, no crypto.

The expected values are written out here from the AWS KMS documentation, not derived from
the table under test:
  * https://docs.aws.amazon.com/kms/latest/developerguide/symm-asymm-choose-key-spec.html
  * https://docs.aws.amazon.com/kms/latest/APIReference/API_CreateKey.html (KeySpec, KeyUsage)
  * https://docs.aws.amazon.com/kms/latest/APIReference/API_Sign.html (MessageType)
  * https://docs.aws.amazon.com/kms/latest/developerguide/asymmetric-key-specs.html
    (RSA OAEP plaintext limits: k - 2*hLen - 2)
"""

from __future__ import annotations

import pytest

from domain import errors
from domain.key_specs import (
    KEY_SPECS,
    KeySpec,
    KeyUsage,
    algorithms,
    check_creatable,
    check_rsa_plaintext,
    check_signing_message,
    rotatable,
    spec_info,
)

RSA_SIGNING = [
    "RSASSA_PSS_SHA_256", "RSASSA_PSS_SHA_384", "RSASSA_PSS_SHA_512",
    "RSASSA_PKCS1_V1_5_SHA_256", "RSASSA_PKCS1_V1_5_SHA_384", "RSASSA_PKCS1_V1_5_SHA_512",
]
RSA_ENCRYPTION = ["RSAES_OAEP_SHA_1", "RSAES_OAEP_SHA_256"]

#: What AWS documents: key spec -> usage -> the algorithms listed for a key of that usage.
AWS: dict[str, dict[str, list[str]]] = {
    "SYMMETRIC_DEFAULT": {"ENCRYPT_DECRYPT": ["SYMMETRIC_DEFAULT"]},
    "RSA_2048": {"ENCRYPT_DECRYPT": RSA_ENCRYPTION, "SIGN_VERIFY": RSA_SIGNING},
    "RSA_3072": {"ENCRYPT_DECRYPT": RSA_ENCRYPTION, "SIGN_VERIFY": RSA_SIGNING},
    "RSA_4096": {"ENCRYPT_DECRYPT": RSA_ENCRYPTION, "SIGN_VERIFY": RSA_SIGNING},
    "ECC_NIST_P256": {"SIGN_VERIFY": ["ECDSA_SHA_256"], "KEY_AGREEMENT": ["ECDH"]},
    "ECC_NIST_P384": {"SIGN_VERIFY": ["ECDSA_SHA_384"], "KEY_AGREEMENT": ["ECDH"]},
    "ECC_NIST_P521": {"SIGN_VERIFY": ["ECDSA_SHA_512"], "KEY_AGREEMENT": ["ECDH"]},
    "ECC_SECG_P256K1": {"SIGN_VERIFY": ["ECDSA_SHA_256"]},
    "ECC_NIST_EDWARDS25519": {"SIGN_VERIFY": ["ED25519_SHA_512", "ED25519_PH_SHA_512"]},
    "HMAC_224": {"GENERATE_VERIFY_MAC": ["HMAC_SHA_224"]},
    "HMAC_256": {"GENERATE_VERIFY_MAC": ["HMAC_SHA_256"]},
    "HMAC_384": {"GENERATE_VERIFY_MAC": ["HMAC_SHA_384"]},
    "HMAC_512": {"GENERATE_VERIFY_MAC": ["HMAC_SHA_512"]},
    "ML_DSA_44": {"SIGN_VERIFY": ["ML_DSA_SHAKE_256"]},
    "ML_DSA_65": {"SIGN_VERIFY": ["ML_DSA_SHAKE_256"]},
    "ML_DSA_87": {"SIGN_VERIFY": ["ML_DSA_SHAKE_256"]},
    "ML_KEM_512": {"ENCAPSULATE_DECAPSULATE": ["ML_KEM"]},
    "ML_KEM_768": {"ENCAPSULATE_DECAPSULATE": ["ML_KEM"]},
    "ML_KEM_1024": {"ENCAPSULATE_DECAPSULATE": ["ML_KEM"]},
    "SM2": {"ENCRYPT_DECRYPT": ["SM2PKE"], "SIGN_VERIFY": ["SM2DSA"], "KEY_AGREEMENT": ["ECDH"]},
}
UNSUPPORTED = {"ML_KEM_512", "SM2"}  # no library keyledger relies on implements them
ALL_USAGES = [
    "ENCRYPT_DECRYPT", "SIGN_VERIFY", "GENERATE_VERIFY_MAC", "KEY_AGREEMENT",
    "ENCAPSULATE_DECAPSULATE",
]
PAIRS = [(spec, usage) for spec in AWS for usage in ALL_USAGES]


def test_the_documented_specs_and_usages_are_exactly_the_enums():
    assert sorted(KeySpec) == sorted(AWS)
    assert sorted(KeyUsage) == sorted(ALL_USAGES)
    assert sorted(KEY_SPECS) == sorted(AWS)


@pytest.mark.parametrize(("spec", "usage"), PAIRS)
def test_check_creatable_for_every_spec_and_usage(spec, usage):
    if spec in UNSUPPORTED:
        with pytest.raises(errors.UnsupportedOperationException, match=spec):
            check_creatable(spec, usage)
    elif usage in AWS[spec]:
        assert check_creatable(spec, usage) is None
    else:
        with pytest.raises(errors.ValidationException) as info:
            check_creatable(spec, usage)
        assert type(info.value) is errors.ValidationException
        # AWS's text has no final period (localstack's AWS-recorded snapshot,
        # test_derive_shared_secret: "KeyUsage KEY_AGREEMENT is not compatible with KeySpec RSA_2048")
        assert info.value.message == f"KeyUsage {usage} is not compatible with KeySpec {spec}"


@pytest.mark.parametrize("spec", sorted(UNSUPPORTED))
def test_unsupported_specs_are_refused_even_for_a_usage_aws_allows(spec):
    usage = next(iter(AWS[spec]))
    with pytest.raises(errors.UnsupportedOperationException) as info:
        check_creatable(spec, usage)
    assert "not supported" in info.value.message


@pytest.mark.parametrize(
    ("spec", "usage"), [(spec, usage) for spec, usages in AWS.items() for usage in usages]
)
def test_algorithms_listed_per_spec_and_usage(spec, usage):
    assert list(algorithms(spec, usage)) == AWS[spec][usage]


def test_algorithms_of_a_usage_the_spec_lacks_is_not_an_answer():
    with pytest.raises(KeyError):
        algorithms("ECC_SECG_P256K1", "KEY_AGREEMENT")


# -- Sign / Verify MessageType rules ----------------------------------------------------------------

DIGEST_LENGTH = {
    ("RSA_2048", "RSASSA_PSS_SHA_256"): 32,
    ("RSA_2048", "RSASSA_PSS_SHA_384"): 48,
    ("RSA_2048", "RSASSA_PSS_SHA_512"): 64,
    ("RSA_3072", "RSASSA_PKCS1_V1_5_SHA_256"): 32,
    ("RSA_3072", "RSASSA_PKCS1_V1_5_SHA_384"): 48,
    ("RSA_4096", "RSASSA_PKCS1_V1_5_SHA_512"): 64,
    ("ECC_NIST_P256", "ECDSA_SHA_256"): 32,
    ("ECC_SECG_P256K1", "ECDSA_SHA_256"): 32,
    ("ECC_NIST_P384", "ECDSA_SHA_384"): 48,
    ("ECC_NIST_P521", "ECDSA_SHA_512"): 64,
    ("ECC_NIST_EDWARDS25519", "ED25519_PH_SHA_512"): 64,
}


@pytest.mark.parametrize(("spec", "algorithm"), sorted(DIGEST_LENGTH))
def test_digest_of_exactly_the_hash_length_is_accepted(spec, algorithm):
    length = DIGEST_LENGTH[(spec, algorithm)]
    assert check_signing_message(spec, algorithm, "DIGEST", b"\x01" * length) is None


@pytest.mark.parametrize(("spec", "algorithm"), sorted(DIGEST_LENGTH))
@pytest.mark.parametrize("delta", [-1, 1])
def test_digest_of_another_length_is_a_validation_error(spec, algorithm, delta):
    length = DIGEST_LENGTH[(spec, algorithm)]
    with pytest.raises(errors.ValidationException) as info:
        check_signing_message(spec, algorithm, "DIGEST", b"\x01" * (length + delta))
    # AWS's text (localstack's AWS-recorded snapshot, test_sign_verify bad-digest)
    assert info.value.message == f"Digest is invalid length for algorithm {algorithm}."


@pytest.mark.parametrize("spec", ["RSA_2048", "ECC_NIST_P256"])
def test_an_empty_digest_is_refused(spec):
    algorithm = "RSASSA_PSS_SHA_256" if spec == "RSA_2048" else "ECDSA_SHA_256"
    with pytest.raises(errors.ValidationException):
        check_signing_message(spec, algorithm, "DIGEST", b"")


@pytest.mark.parametrize("spec", ["ML_DSA_44", "ML_DSA_65", "ML_DSA_87"])
def test_external_mu_is_exactly_64_bytes_for_ml_dsa(spec):
    assert check_signing_message(spec, "ML_DSA_SHAKE_256", "EXTERNAL_MU", b"\x07" * 64) is None
    for length in (0, 32, 63, 65, 128):
        with pytest.raises(errors.ValidationException, match="64 bytes"):
            check_signing_message(spec, "ML_DSA_SHAKE_256", "EXTERNAL_MU", b"\x07" * length)


@pytest.mark.parametrize(
    ("spec", "algorithm"),
    [("RSA_2048", "RSASSA_PSS_SHA_512"), ("ECC_NIST_P521", "ECDSA_SHA_512"),
     ("ECC_NIST_EDWARDS25519", "ED25519_SHA_512"), ("ECC_NIST_EDWARDS25519", "ED25519_PH_SHA_512")],
)
def test_external_mu_is_refused_for_every_other_family(spec, algorithm):
    with pytest.raises(errors.ValidationException, match="only valid for ML-DSA"):
        check_signing_message(spec, algorithm, "EXTERNAL_MU", b"\x07" * 64)


@pytest.mark.parametrize("spec", ["ML_DSA_44", "ML_DSA_65", "ML_DSA_87"])
def test_digest_is_refused_for_ml_dsa(spec):
    for length in (32, 48, 64):
        with pytest.raises(errors.ValidationException, match="DIGEST is not valid for ML-DSA"):
            check_signing_message(spec, "ML_DSA_SHAKE_256", "DIGEST", b"\x00" * length)


@pytest.mark.parametrize("spec", ["ML_DSA_44", "ML_DSA_87"])
def test_raw_messages_of_any_length_are_fine_for_ml_dsa(spec):
    for length in (0, 1, 64, 4096):
        assert check_signing_message(spec, "ML_DSA_SHAKE_256", "RAW", b"m" * length) is None


def test_ed25519_sha_512_takes_raw_messages_only():
    spec = "ECC_NIST_EDWARDS25519"
    assert check_signing_message(spec, "ED25519_SHA_512", "RAW", b"any message") is None
    for length in (32, 64):
        with pytest.raises(errors.ValidationException, match="requires MessageType RAW"):
            check_signing_message(spec, "ED25519_SHA_512", "DIGEST", b"d" * length)


def test_ed25519_ph_sha_512_takes_digests_only():
    spec = "ECC_NIST_EDWARDS25519"
    assert check_signing_message(spec, "ED25519_PH_SHA_512", "DIGEST", b"d" * 64) is None
    for length in (0, 64, 100):
        with pytest.raises(errors.ValidationException, match="requires MessageType DIGEST"):
            check_signing_message(spec, "ED25519_PH_SHA_512", "RAW", b"m" * length)


@pytest.mark.parametrize(
    ("spec", "algorithm"), sorted(k for k in DIGEST_LENGTH if k[1] != "ED25519_PH_SHA_512")
)
def test_raw_messages_of_any_length_for_rsa_and_ecdsa(spec, algorithm):
    for length in (0, 1, 32, 4096):
        assert check_signing_message(spec, algorithm, "RAW", b"m" * length) is None


# -- RSA plaintext limits ------------------------------------------------------------------------

# OAEP: k - 2*hLen - 2, with k the modulus in bytes and hLen 20 (SHA-1) or 32 (SHA-256).
RSA_LIMITS = [
    ("RSA_2048", "RSAES_OAEP_SHA_1", 214),
    ("RSA_2048", "RSAES_OAEP_SHA_256", 190),
    ("RSA_3072", "RSAES_OAEP_SHA_1", 342),
    ("RSA_3072", "RSAES_OAEP_SHA_256", 318),
    ("RSA_4096", "RSAES_OAEP_SHA_1", 470),
    ("RSA_4096", "RSAES_OAEP_SHA_256", 446),
]


@pytest.mark.parametrize(("spec", "algorithm", "limit"), RSA_LIMITS)
def test_rsa_plaintext_at_the_limit_is_accepted(spec, algorithm, limit):
    assert check_rsa_plaintext(spec, algorithm, b"p" * limit) is None
    assert check_rsa_plaintext(spec, algorithm, b"") is None


@pytest.mark.parametrize(("spec", "algorithm", "limit"), RSA_LIMITS)
def test_rsa_plaintext_one_over_the_limit_is_refused(spec, algorithm, limit):
    with pytest.raises(errors.ValidationException) as info:
        check_rsa_plaintext(spec, algorithm, b"p" * (limit + 1))
    # AWS's text (localstack's AWS-recorded snapshot, test_encrypt_validate_plaintext_size_per_key_type)
    assert info.value.message == (
        f"Algorithm {algorithm} and key spec {spec} cannot encrypt data larger than {limit} bytes."
    )


# -- rotation ------------------------------------------------------------------------------------


@pytest.mark.parametrize("spec", sorted(AWS))
def test_only_symmetric_encryption_keys_rotate(spec):
    assert rotatable(spec) is (spec == "SYMMETRIC_DEFAULT")


def test_key_specs_are_looked_up_by_their_plain_names():
    """Keys store their spec and usage as plain strings; the lookups take them as they are."""
    for spec in KeySpec:
        assert spec_info(str(spec)) is KEY_SPECS[spec]
        for usage, listed in KEY_SPECS[spec].usages.items():
            assert algorithms(str(spec), str(usage)) == listed
    with pytest.raises(ValueError, match="not a valid KeySpec"):
        spec_info("RSA_1024")
