"""AWS fidelity: request → the answer AWS KMS gives, down to the HTTP status, the error code and
the message text — or the absence of a ``message`` member, where AWS sends none.

One row per error path (domain/messages.py has the texts; every entry of its catalogue has a
row here, or is named in UNREACHABLE with the reason). Each row says where its expectation comes
from: ``source`` names the recorded AWS response, issue thread or documentation the text was
confirmed against; ``source=None`` marks keyledger's own text, listed in docs/compatibility.md
under "Messages not confirmed against AWS".

The rows run against a real server per store (SQLite, and PostgreSQL when configured), over raw
signed HTTP, so the test sees the exact JSON body. The server is this module's own: the last
rows move its clock.
"""

from __future__ import annotations

import base64
import json
import os
import uuid
from collections.abc import Callable
from dataclasses import dataclass
from types import SimpleNamespace
from typing import Any

import httpx
import pytest
from cryptography.hazmat.primitives import hashes, serialization
from cryptography.hazmat.primitives.asymmetric import ec, padding

from domain.messages import CATALOGUE, recorded
from tests.e2e.conftest import ACCOUNT_ID, JSON_CONTENT_TYPE, b64, raw_kms_call, sign

pytestmark = pytest.mark.e2e

REGION = "us-east-1"
WEST = "us-west-2"  # the multi-Region rows' replica Region
ARN = f"arn:aws:kms:{REGION}:{ACCOUNT_ID}"
MISSING = "7c0d9c5e-5b6a-4b9a-8f4e-2f7d3c1a9b10"  # a well-formed key id no key has
MISSING_MRK = "mrk-" + "d3b95762" * 4

# -- sources ------------------------------------------------------------------------------------

LS = recorded  # localstack's snapshots, recorded from AWS
FORM = LS("the model's generic form: test_generate_random_invalid_number_of_bytes, "
          "test_plaintext_size_for_encrypt, test_key_with_long_tag_value_raises_error")
STATE = LS("test_rotate_key_on_demand_raises_error_given_key_is_disabled, test_import_key_symmetric "
           "(the key-state texts)") + "; github.com/hashicorp/terraform-provider-aws/issues/17889"
USAGE = LS("test_error_messaging_for_invalid_keys, test_derive_shared_secret (key usage text)")
DRY_RUN = LS("test_generate_data_key_pair_dry_run") + "; CloudTrail examples (errorMessage)"
NOT_FOUND = LS("test_get_key_does_not_exist")
INVALID_KEY_ID = LS("test_get_key_invalid_uuid")
ALIAS_NOT_FOUND = "github.com/sigstore/cosign/issues/1474, github.com/cloudposse/docs/issues/152"
KEY_STATE_DOC = ("KMS Developer Guide, key-state.html: \"If the destination KMS key is pending "
                 "deletion, the command fails with error: KMSInvalidStateException : <key ARN> is "
                 "pending deletion.\"")


# -- the table ----------------------------------------------------------------------------------

ABSENT = None  # the answer has no message member
#: markers in keyledger's encoding (application.paging) that no listing ever issues
FORGED_MARKER = base64.urlsafe_b64encode(b"kl1:anything").decode()
FORGED_EMPTY_MARKER = base64.urlsafe_b64encode(b"kl1:").decode()


@dataclass(frozen=True)
class Row:
    id: str
    operation: str
    params: Callable[[Any], dict[str, Any]] | dict[str, Any]
    code: str | None  # None: the request succeeds (HTTP 200)
    message: str | None  # a template over the environment; ABSENT: no message member
    source: str | None  # None: not confirmed against AWS
    entry: str | None = None  # the catalogue entry (domain.messages) the row exercises
    status: int = 400
    region: str = REGION
    #: send the request some other way than a signed KMS call: (server, env, row) -> response
    send: Callable[..., httpx.Response] | None = None

    def expected_message(self, env) -> str | None:
        return None if self.message is None else self.message.format_map(vars(env))


def _params(row: Row, env) -> dict[str, Any]:
    return row.params(env) if callable(row.params) else dict(row.params)


def _wire(value: Any) -> Any:
    """Request values as AWS JSON 1.1 carries them (bytes as base64)."""
    if isinstance(value, bytes):
        return b64(value)
    if isinstance(value, dict):
        return {k: _wire(v) for k, v in value.items()}
    if isinstance(value, list):
        return [_wire(v) for v in value]
    return value


def _signed(url: str, target: str | None, body: bytes, content_type: str = JSON_CONTENT_TYPE,
            region: str = REGION, credentials=None) -> httpx.Response:
    headers = {"Content-Type": content_type}
    if target is not None:
        headers["X-Amz-Target"] = target
    kwargs = {} if credentials is None else {"credentials": credentials}
    signed = sign(url + "/", headers, body, region, **kwargs)
    return httpx.post(url + "/", content=body, headers=signed, timeout=30)


def _raw_body(body: bytes, target: str = "TrentService.DescribeKey", **kw):
    return lambda server, env, row: _signed(server.url, target, body, **kw)


def _unsigned(server, env, row):
    return httpx.post(server.url + "/", content=b"{}", timeout=30, headers={
        "Content-Type": JSON_CONTENT_TYPE, "X-Amz-Target": "TrentService.ListKeys"})


def _unknown_access_key(server, env, row):
    from botocore.credentials import Credentials
    return _signed(server.url, "TrentService.ListKeys", b"{}",
                   credentials=Credentials("AKIAUNKNOWN000000001", "secret"))


def _wrong_secret(server, env, row):
    from botocore.credentials import Credentials

    from tests.e2e.conftest import ROOT_ACCESS_KEY_ID
    return _signed(server.url, "TrentService.ListKeys", b"{}",
                   credentials=Credentials(ROOT_ACCESS_KEY_ID, "not-the-secret"))


def _too_large(server, env, row):
    body = json.dumps({"KeyId": env.sym, "Plaintext": "A" * (600 * 1024)}).encode()
    return _signed(server.url, "TrentService.Encrypt", body)


def _alias_arn(name: str) -> str:
    return f"{ARN}:{name}"


ROWS: list[Row] = [
    # -- DescribeKey: naming a key -----------------------------------------------------------
    Row("describe-missing-id", "DescribeKey", {"KeyId": MISSING}, "NotFoundException",
        f"Key '{ARN}:key/{MISSING}' does not exist", NOT_FOUND, "NotFound.KEY"),
    Row("describe-missing-arn", "DescribeKey", {"KeyId": f"{ARN}:key/{MISSING}"}, "NotFoundException",
        f"Key '{ARN}:key/{MISSING}' does not exist", NOT_FOUND, "NotFound.KEY"),
    Row("describe-missing-mrk", "DescribeKey", {"KeyId": MISSING_MRK}, "NotFoundException",
        f"Key '{ARN}:key/{MISSING_MRK}' does not exist", NOT_FOUND, "NotFound.KEY"),
    Row("describe-invalid-id", "DescribeKey", {"KeyId": "fake-key-id"}, "NotFoundException",
        "Invalid keyId 'fake-key-id'", INVALID_KEY_ID, "NotFound.INVALID_KEY_ID"),
    Row("describe-invalid-id-hex", "DescribeKey", {"KeyId": "134f2428cec14b25a1ae9048164dba47"},
        "NotFoundException", "Invalid keyId '134f2428cec14b25a1ae9048164dba47'", INVALID_KEY_ID,
        "NotFound.INVALID_KEY_ID"),
    Row("describe-invalid-mrk", "DescribeKey", {"KeyId": "mrk-fake-key-id"}, "NotFoundException",
        "Invalid keyId 'mrk-fake-key-id'", INVALID_KEY_ID, "NotFound.INVALID_KEY_ID"),
    Row("describe-arn-other-region", "DescribeKey",
        lambda e: {"KeyId": e.sym_arn.replace(REGION, "eu-west-1")}, "NotFoundException",
        "Invalid arn eu-west-1", LS("test_get_key_in_different_region"), "NotFound.INVALID_ARN_REGION"),
    Row("describe-id-other-region", "DescribeKey", lambda e: {"KeyId": e.sym}, "NotFoundException",
        f"Key 'arn:aws:kms:eu-west-1:{ACCOUNT_ID}:key/{{sym}}' does not exist",
        LS("test_get_key_in_different_region"), "NotFound.KEY", region="eu-west-1"),
    Row("describe-missing-alias", "DescribeKey", {"KeyId": "alias/fidelity-none"}, "NotFoundException",
        f"Alias {ARN}:alias/fidelity-none is not found.", ALIAS_NOT_FOUND, "NotFound.ALIAS"),
    Row("describe-missing-alias-arn", "DescribeKey", {"KeyId": f"{ARN}:alias/fidelity-none"},
        "NotFoundException", f"Alias {ARN}:alias/fidelity-none is not found.", ALIAS_NOT_FOUND,
        "NotFound.ALIAS"),
    Row("describe-alias-arn-other-region", "DescribeKey",
        lambda e: {"KeyId": _alias_arn(e.alias).replace(REGION, "eu-west-1")}, "NotFoundException",
        f"Alias arn:aws:kms:eu-west-1:{ACCOUNT_ID}:{{alias}} is not found.", None, "NotFound.ALIAS"),
    Row("describe-no-key-id", "DescribeKey", {}, "ValidationException",
        "1 validation error detected: Value null at 'keyId' failed to satisfy constraint: Member "
        "must not be null", None, "Validation.MODEL"),
    Row("describe-empty-key-id", "DescribeKey", {"KeyId": ""}, "ValidationException",
        "1 validation error detected: Value '' at 'keyId' failed to satisfy constraint: Member "
        "must have length greater than or equal to 1", FORM, "Validation.MODEL"),
    Row("describe-not-a-kms-arn", "DescribeKey", {"KeyId": "arn:aws:s3:::bucket"},
        "InvalidArnException", "Invalid arn arn:aws:s3:::bucket", None, "InvalidArn.MALFORMED"),
    # a key ARN with no account names no key: the ARN as given (a cross-account operation too)
    Row("encrypt-arn-without-account", "Encrypt",
        lambda e: {"KeyId": e.sym_arn.replace(f":{ACCOUNT_ID}:", "::"), "Plaintext": b"x"},
        "NotFoundException", f"Key 'arn:aws:kms:{REGION}::key/{{sym}}' does not exist", None,
        "NotFound.KEY"),
    # an operation whose model has no InvalidArnException: a key id that names no key
    Row("encrypt-not-a-kms-arn", "Encrypt", {"KeyId": "arn:aws:s3:::bucket", "Plaintext": b"x"},
        "NotFoundException", "Invalid keyId 'arn:aws:s3:::bucket'", None, "NotFound.INVALID_KEY_ID"),
    Row("encrypt-other-partition-arn", "Encrypt",
        {"KeyId": f"arn:aws-cn:kms:{REGION}:{ACCOUNT_ID}:key/{MISSING}", "Plaintext": b"x"},
        "NotFoundException", f"Invalid keyId 'arn:aws-cn:kms:{REGION}:{ACCOUNT_ID}:key/{MISSING}'",
        None, "NotFound.INVALID_KEY_ID"),
    Row("create-alias-not-a-kms-arn", "CreateAlias",
        {"AliasName": "alias/fidelity-bad-target", "TargetKeyId": "arn:aws:s3:::bucket"},
        "NotFoundException", "Invalid keyId 'arn:aws:s3:::bucket'", None, "NotFound.INVALID_KEY_ID"),
    Row("describe-pending-deletion", "DescribeKey", lambda e: {"KeyId": e.pending}, None, None,
        "KMS Developer Guide, key-state.html (DescribeKey: every key state)"),
    # -- Encrypt --------------------------------------------------------------------------------
    Row("encrypt-disabled", "Encrypt", lambda e: {"KeyId": e.disabled, "Plaintext": b"x"},
        "DisabledException", "{disabled_arn} is disabled.", STATE, "KeyState.DISABLED"),
    Row("encrypt-pending-deletion", "Encrypt", lambda e: {"KeyId": e.pending, "Plaintext": b"x"},
        "KMSInvalidStateException", "{pending_arn} is pending deletion.", STATE,
        "KeyState.PENDING_DELETION"),
    Row("encrypt-pending-import", "Encrypt", lambda e: {"KeyId": e.external, "Plaintext": b"x"},
        "KMSInvalidStateException", "{external_arn} is pending import.",
        LS("test_import_key_symmetric (encrypt-before-import-error)"), "KeyState.PENDING_IMPORT"),
    Row("encrypt-sign-key", "Encrypt", lambda e: {"KeyId": e.ecc_sign, "Plaintext": b"x"},
        "InvalidKeyUsageException",
        "{ecc_sign_arn} key usage is SIGN_VERIFY which is not valid for Encrypt.",
        LS("test_error_messaging_for_invalid_keys (encrypt-invalid-key-id)"), "KeyUsage.WRONG_USAGE"),
    Row("encrypt-hmac-key", "Encrypt", lambda e: {"KeyId": e.hmac256, "Plaintext": b"x"},
        "InvalidKeyUsageException",
        "{hmac256_arn} key usage is GENERATE_VERIFY_MAC which is not valid for Encrypt.", USAGE,
        "KeyUsage.WRONG_USAGE"),
    Row("encrypt-plaintext-too-long", "Encrypt", lambda e: {"KeyId": e.sym, "Plaintext": b"x" * 4097},
        "ValidationException",
        "1 validation error detected: Value at 'plaintext' failed to satisfy constraint: Member "
        "must have length less than or equal to 4096", LS("test_plaintext_size_for_encrypt"),
        "Validation.MODEL"),
    Row("encrypt-rsa-oaep-sha1-too-long", "Encrypt",
        lambda e: {"KeyId": e.rsa_enc, "Plaintext": b"x" * 215, "EncryptionAlgorithm": "RSAES_OAEP_SHA_1"},
        "ValidationException",
        "Algorithm RSAES_OAEP_SHA_1 and key spec RSA_2048 cannot encrypt data larger than 214 bytes.",
        LS("test_encrypt_validate_plaintext_size_per_key_type[RSA_2048-RSAES_OAEP_SHA_1]"),
        "Validation.RSA_PLAINTEXT_TOO_LONG"),
    Row("encrypt-rsa-oaep-sha256-too-long", "Encrypt",
        lambda e: {"KeyId": e.rsa_enc, "Plaintext": b"x" * 191, "EncryptionAlgorithm": "RSAES_OAEP_SHA_256"},
        "ValidationException",
        "Algorithm RSAES_OAEP_SHA_256 and key spec RSA_2048 cannot encrypt data larger than 190 bytes.",
        LS("test_encrypt_validate_plaintext_size_per_key_type[RSA_2048-RSAES_OAEP_SHA_256]"),
        "Validation.RSA_PLAINTEXT_TOO_LONG"),
    Row("encrypt-symmetric-with-rsa-algorithm", "Encrypt",
        lambda e: {"KeyId": e.sym, "Plaintext": b"x", "EncryptionAlgorithm": "RSAES_OAEP_SHA_256"},
        "InvalidKeyUsageException",
        "Algorithm RSAES_OAEP_SHA_256 is incompatible with key spec SYMMETRIC_DEFAULT.", None,
        "KeyUsage.WRONG_ALGORITHM"),
    Row("encrypt-rsa-without-algorithm", "Encrypt", lambda e: {"KeyId": e.rsa_enc, "Plaintext": b"x"},
        "InvalidKeyUsageException",
        "Algorithm SYMMETRIC_DEFAULT is incompatible with key spec RSA_2048.", None,
        "KeyUsage.WRONG_ALGORITHM"),
    Row("encrypt-dry-run", "Encrypt", lambda e: {"KeyId": e.sym, "Plaintext": b"x", "DryRun": True},
        "DryRunOperationException", "The request would have succeeded, but the DryRun option is set.",
        DRY_RUN, "Requests.DRY_RUN"),
    Row("encrypt-missing-key", "Encrypt", {"KeyId": MISSING, "Plaintext": b"x"}, "NotFoundException",
        f"Key '{ARN}:key/{MISSING}' does not exist", NOT_FOUND, "NotFound.KEY"),
    Row("encrypt-invalid-algorithm", "Encrypt",
        lambda e: {"KeyId": e.sym, "Plaintext": b"x", "EncryptionAlgorithm": "RSA"},
        "ValidationException",
        "1 validation error detected: Value 'RSA' at 'encryptionAlgorithm' failed to satisfy "
        "constraint: Member must satisfy enum value set: [SYMMETRIC_DEFAULT, RSAES_OAEP_SHA_1, "
        "RSAES_OAEP_SHA_256, SM2PKE]", None, "Validation.MODEL"),
    Row("encrypt-alias-of-disabled", "Encrypt", lambda e: {"KeyId": e.disabled_alias, "Plaintext": b"x"},
        "DisabledException", "{disabled_arn} is disabled.", STATE, "KeyState.DISABLED"),
    # -- Decrypt --------------------------------------------------------------------------------
    Row("decrypt-wrong-context", "Decrypt",
        lambda e: {"CiphertextBlob": e.ciphertext, "EncryptionContext": {"purpose": "other"}},
        "InvalidCiphertextException", ABSENT, LS("test_encrypt_decrypt_encryption_context"),
        "Ciphertext.INVALID"),
    Row("decrypt-missing-context", "Decrypt", lambda e: {"CiphertextBlob": e.ciphertext},
        "InvalidCiphertextException", ABSENT,
        LS("test_encrypt_decrypt_encryption_context (decrypt_response_without_encryption_context)"),
        "Ciphertext.INVALID"),
    Row("decrypt-tampered", "Decrypt",
        lambda e: {"CiphertextBlob": e.tampered, "EncryptionContext": {"purpose": "fidelity"}},
        "InvalidCiphertextException", ABSENT,
        LS("test_encrypt_decrypt_encryption_context (decrypt_response_with_invalid_ciphertext)"),
        "Ciphertext.INVALID"),
    Row("decrypt-not-a-ciphertext", "Decrypt", {"CiphertextBlob": b"not a ciphertext at all"},
        "InvalidCiphertextException", ABSENT, LS("test_key_rotations_encryption_decryption"),
        "Ciphertext.INVALID"),
    Row("decrypt-data-key-without-context", "Decrypt", lambda e: {"CiphertextBlob": e.data_key_blob},
        "InvalidCiphertextException", ABSENT, LS("test_encryption_context_generate_data_key"),
        "Ciphertext.INVALID"),
    Row("decrypt-other-key-id", "Decrypt",
        lambda e: {"CiphertextBlob": e.ciphertext, "EncryptionContext": {"purpose": "fidelity"},
                   "KeyId": e.sym2},
        "IncorrectKeyException",
        "The key ID in the request does not identify a CMK that can perform this operation.",
        LS("test_error_messaging_for_invalid_keys (decrypt-invalid-key-id)"), "Ciphertext.INCORRECT_KEY"),
    Row("decrypt-unknown-key", "Decrypt", lambda e: {"CiphertextBlob": e.foreign_blob},
        "AccessDeniedException",
        "The ciphertext refers to a customer master key that does not exist, does not exist in "
        "this region, or you are not allowed to access.",
        "github.com/aceew/aws-lambda-env-vars/issues/7", "Ciphertext.UNKNOWN_KEY"),
    Row("decrypt-unknown-material", "Decrypt", lambda e: {"CiphertextBlob": e.unknown_material_blob},
        "InvalidCiphertextException", "The ciphertext refers to key material that does not exist.",
        None, "Ciphertext.MATERIAL_UNKNOWN"),
    Row("decrypt-disabled", "Decrypt", lambda e: {"CiphertextBlob": e.disabled_blob},
        "DisabledException", "{disabled_arn} is disabled.", STATE, "KeyState.DISABLED"),
    Row("decrypt-dry-run", "Decrypt",
        lambda e: {"CiphertextBlob": e.ciphertext, "EncryptionContext": {"purpose": "fidelity"},
                   "DryRun": True},
        "DryRunOperationException", "The request would have succeeded, but the DryRun option is set.",
        DRY_RUN, "Requests.DRY_RUN"),
    Row("decrypt-rsa-without-key-id", "Decrypt",
        lambda e: {"CiphertextBlob": e.rsa_blob, "EncryptionAlgorithm": "RSAES_OAEP_SHA_256"},
        "InvalidCiphertextException",
        "KeyId is required to decrypt ciphertext of algorithm RSAES_OAEP_SHA_256.", None,
        "Ciphertext.KEY_ID_REQUIRED"),
    Row("decrypt-rsa-garbage", "Decrypt",
        lambda e: {"CiphertextBlob": b"\x01" * 256, "KeyId": e.rsa_enc,
                   "EncryptionAlgorithm": "RSAES_OAEP_SHA_256"},
        "InvalidCiphertextException", ABSENT, None, "Ciphertext.INVALID"),
    Row("decrypt-no-ciphertext", "Decrypt", {}, "ValidationException",
        "1 validation error detected: Value null at 'ciphertextBlob' failed to satisfy constraint: "
        "Member must not be null", None, "Validation.MISSING"),
    Row("decrypt-ciphertext-too-long", "Decrypt", {"CiphertextBlob": b"x" * 6145}, "ValidationException",
        "1 validation error detected: Value at 'ciphertextBlob' failed to satisfy constraint: Member "
        "must have length less than or equal to 6144", FORM, "Validation.MODEL"),
    Row("decrypt-rsa-symmetric-key-named", "Decrypt",
        lambda e: {"CiphertextBlob": e.rsa_blob, "KeyId": e.rsa_enc},
        "InvalidKeyUsageException", "Algorithm SYMMETRIC_DEFAULT is incompatible with key spec RSA_2048.",
        None, "KeyUsage.WRONG_ALGORITHM"),
    # -- ReEncrypt --------------------------------------------------------------------------------
    Row("reencrypt-incorrect-source-key", "ReEncrypt",
        lambda e: {"CiphertextBlob": e.ciphertext, "SourceEncryptionContext": {"purpose": "fidelity"},
                   "SourceKeyId": e.sym2, "DestinationKeyId": e.sym},
        "IncorrectKeyException",
        "The key ID in the request does not identify a CMK that can perform this operation.",
        LS("test_re_encrypt_incorrect_source_key"), "Ciphertext.INCORRECT_KEY"),
    Row("reencrypt-destination-disabled", "ReEncrypt",
        lambda e: {"CiphertextBlob": e.ciphertext, "SourceEncryptionContext": {"purpose": "fidelity"},
                   "DestinationKeyId": e.disabled},
        "DisabledException", "{disabled_arn} is disabled.", STATE, "KeyState.DISABLED"),
    Row("reencrypt-destination-sign-key", "ReEncrypt",
        lambda e: {"CiphertextBlob": e.ciphertext, "SourceEncryptionContext": {"purpose": "fidelity"},
                   "DestinationKeyId": e.ecc_sign},
        "InvalidKeyUsageException",
        "{ecc_sign_arn} key usage is SIGN_VERIFY which is not valid for ReEncrypt.", USAGE,
        "KeyUsage.WRONG_USAGE"),
    Row("reencrypt-wrong-context", "ReEncrypt",
        lambda e: {"CiphertextBlob": e.ciphertext, "DestinationKeyId": e.sym},
        "InvalidCiphertextException", ABSENT, None, "Ciphertext.INVALID"),
    Row("reencrypt-dry-run", "ReEncrypt",
        lambda e: {"CiphertextBlob": e.ciphertext, "SourceEncryptionContext": {"purpose": "fidelity"},
                   "DestinationKeyId": e.sym2, "DryRun": True},
        "DryRunOperationException", "The request would have succeeded, but the DryRun option is set.",
        DRY_RUN, "Requests.DRY_RUN"),
    Row("reencrypt-destination-missing", "ReEncrypt",
        lambda e: {"CiphertextBlob": e.ciphertext, "SourceEncryptionContext": {"purpose": "fidelity"},
                   "DestinationKeyId": MISSING},
        "NotFoundException", f"Key '{ARN}:key/{MISSING}' does not exist", NOT_FOUND, "NotFound.KEY"),
    Row("reencrypt-no-ciphertext", "ReEncrypt", lambda e: {"DestinationKeyId": e.sym},
        "ValidationException",
        "1 validation error detected: Value null at 'ciphertextBlob' failed to satisfy constraint: "
        "Member must not be null", None, "Validation.MISSING"),
    # -- GenerateDataKey and friends --------------------------------------------------------------
    Row("gdk-no-size", "GenerateDataKey", lambda e: {"KeyId": e.sym}, "ValidationException",
        "Please specify either number of bytes or key spec.", None, "Validation.DATA_KEY_SIZE_MISSING"),
    Row("gdk-two-sizes", "GenerateDataKey",
        lambda e: {"KeyId": e.sym, "KeySpec": "AES_256", "NumberOfBytes": 32}, "ValidationException",
        "You cannot specify both KeySpec and NumberOfBytes.", None, "Validation.DATA_KEY_SIZE_TWICE"),
    Row("gdk-zero-bytes", "GenerateDataKey", lambda e: {"KeyId": e.sym, "NumberOfBytes": 0},
        "ValidationException",
        "1 validation error detected: Value '0' at 'numberOfBytes' failed to satisfy constraint: "
        "Member must have value greater than or equal to 1", FORM, "Validation.MODEL"),
    Row("gdk-too-many-bytes", "GenerateDataKey", lambda e: {"KeyId": e.sym, "NumberOfBytes": 1025},
        "ValidationException",
        "1 validation error detected: Value '1025' at 'numberOfBytes' failed to satisfy constraint: "
        "Member must have value less than or equal to 1024", FORM, "Validation.MODEL"),
    Row("gdk-invalid-key-spec", "GenerateDataKey", lambda e: {"KeyId": e.sym, "KeySpec": "AES_512"},
        "ValidationException",
        "1 validation error detected: Value 'AES_512' at 'keySpec' failed to satisfy constraint: "
        "Member must satisfy enum value set: [AES_256, AES_128]", None, "Validation.MODEL"),
    Row("gdk-sign-key", "GenerateDataKey", lambda e: {"KeyId": e.ecc_sign, "KeySpec": "AES_256"},
        "InvalidKeyUsageException",
        "{ecc_sign_arn} key usage is SIGN_VERIFY which is not valid for GenerateDataKey.", USAGE,
        "KeyUsage.WRONG_USAGE"),
    Row("gdk-rsa-encryption-key", "GenerateDataKey", lambda e: {"KeyId": e.rsa_enc, "KeySpec": "AES_256"},
        "InvalidKeyUsageException",
        "{rsa_enc_arn} key spec RSA_2048 is not valid for GenerateDataKey; it needs a symmetric "
        "encryption KMS key.", None, "KeyUsage.NOT_SYMMETRIC"),
    Row("gdk-disabled", "GenerateDataKey", lambda e: {"KeyId": e.disabled, "KeySpec": "AES_256"},
        "DisabledException", "{disabled_arn} is disabled.", STATE, "KeyState.DISABLED"),
    Row("gdk-pending-import", "GenerateDataKey", lambda e: {"KeyId": e.external, "KeySpec": "AES_256"},
        "KMSInvalidStateException", "{external_arn} is pending import.", STATE, "KeyState.PENDING_IMPORT"),
    Row("gdk-dry-run", "GenerateDataKey", lambda e: {"KeyId": e.sym, "KeySpec": "AES_256", "DryRun": True},
        "DryRunOperationException", "The request would have succeeded, but the DryRun option is set.",
        DRY_RUN, "Requests.DRY_RUN"),
    Row("gdk-recipient", "GenerateDataKey",
        lambda e: {"KeyId": e.sym, "KeySpec": "AES_256",
                   "Recipient": {"KeyEncryptionAlgorithm": "RSAES_OAEP_SHA_256",
                                 "AttestationDocument": b"doc"}},
        "UnsupportedOperationException", "Nitro Enclaves recipients (Recipient) are not supported.",
        None, "Unsupported.RECIPIENT"),
    Row("gdkwp-dry-run", "GenerateDataKeyWithoutPlaintext",
        lambda e: {"KeyId": e.sym, "NumberOfBytes": 16, "DryRun": True},
        "DryRunOperationException", "The request would have succeeded, but the DryRun option is set.",
        "CloudTrail example of GenerateDataKeyWithoutPlaintext with DryRun (errorMessage)",
        "Requests.DRY_RUN"),
    Row("gdkwp-hmac-key", "GenerateDataKeyWithoutPlaintext",
        lambda e: {"KeyId": e.hmac256, "NumberOfBytes": 16}, "InvalidKeyUsageException",
        "{hmac256_arn} key usage is GENERATE_VERIFY_MAC which is not valid for "
        "GenerateDataKeyWithoutPlaintext.", USAGE, "KeyUsage.WRONG_USAGE"),
    Row("gdkp-dry-run", "GenerateDataKeyPair",
        lambda e: {"KeyId": e.sym, "KeyPairSpec": "RSA_2048", "DryRun": True},
        "DryRunOperationException", "The request would have succeeded, but the DryRun option is set.",
        LS("test_generate_data_key_pair_dry_run"), "Requests.DRY_RUN"),
    Row("gdkp-ml-kem-512", "GenerateDataKeyPair", lambda e: {"KeyId": e.sym, "KeyPairSpec": "ML_KEM_512"},
        "UnsupportedOperationException",
        "KeyPairSpec ML_KEM_512 is not supported by keyledger (see docs/compatibility.md).", None,
        "Unsupported.KEY_PAIR_SPEC"),
    Row("gdkp-sign-key", "GenerateDataKeyPair",
        lambda e: {"KeyId": e.ecc_sign, "KeyPairSpec": "ECC_NIST_P256"}, "InvalidKeyUsageException",
        "{ecc_sign_arn} key usage is SIGN_VERIFY which is not valid for GenerateDataKeyPair.", USAGE,
        "KeyUsage.WRONG_USAGE"),
    Row("gdkpwp-dry-run", "GenerateDataKeyPairWithoutPlaintext",
        lambda e: {"KeyId": e.sym, "KeyPairSpec": "RSA_2048", "DryRun": True},
        "DryRunOperationException", "The request would have succeeded, but the DryRun option is set.",
        LS("test_generate_data_key_pair_without_plaintext_dry_run"), "Requests.DRY_RUN"),
    Row("gdkpwp-disabled", "GenerateDataKeyPairWithoutPlaintext",
        lambda e: {"KeyId": e.disabled, "KeyPairSpec": "ECC_NIST_P256"},
        "DisabledException", "{disabled_arn} is disabled.", STATE, "KeyState.DISABLED"),
    # -- GenerateRandom ---------------------------------------------------------------------------
    Row("random-no-size", "GenerateRandom", {}, "ValidationException", "NumberOfBytes is required.",
        LS("test_generate_random_invalid_number_of_bytes[None]"), "Validation.NUMBER_OF_BYTES_REQUIRED"),
    Row("random-zero", "GenerateRandom", {"NumberOfBytes": 0}, "ValidationException",
        "1 validation error detected: Value '0' at 'numberOfBytes' failed to satisfy constraint: "
        "Member must have value greater than or equal to 1",
        LS("test_generate_random_invalid_number_of_bytes[0]"), "Validation.MODEL"),
    Row("random-too-many", "GenerateRandom", {"NumberOfBytes": 1025}, "ValidationException",
        "1 validation error detected: Value '1025' at 'numberOfBytes' failed to satisfy constraint: "
        "Member must have value less than or equal to 1024",
        LS("test_generate_random_invalid_number_of_bytes[1025]"), "Validation.MODEL"),
    Row("random-custom-key-store", "GenerateRandom",
        {"NumberOfBytes": 8, "CustomKeyStoreId": "cks-1234567890abcdef0"},
        "UnsupportedOperationException", "Custom key stores are not supported.", None,
        "Unsupported.CUSTOM_KEY_STORE"),
    # -- Sign and Verify --------------------------------------------------------------------------
    Row("sign-rsa-bad-digest", "Sign",
        lambda e: {"KeyId": e.rsa_sign, "Message": b"d" * 31, "MessageType": "DIGEST",
                   "SigningAlgorithm": "RSASSA_PSS_SHA_256"},
        "ValidationException", "Digest is invalid length for algorithm RSASSA_PSS_SHA_256.",
        LS("test_sign_verify[RSA_2048-RSASSA_PSS_SHA_256] (bad-digest)"), "Validation.DIGEST_LENGTH"),
    Row("sign-rsa-pkcs1-bad-digest", "Sign",
        lambda e: {"KeyId": e.rsa_sign, "Message": b"d" * 65, "MessageType": "DIGEST",
                   "SigningAlgorithm": "RSASSA_PKCS1_V1_5_SHA_512"},
        "ValidationException", "Digest is invalid length for algorithm RSASSA_PKCS1_V1_5_SHA_512.",
        LS("test_sign_verify[RSA_4096-RSASSA_PKCS1_V1_5_SHA_512] (bad-digest)"), "Validation.DIGEST_LENGTH"),
    Row("sign-ecdsa-bad-digest", "Sign",
        lambda e: {"KeyId": e.ecc_sign, "Message": b"d" * 20, "MessageType": "DIGEST",
                   "SigningAlgorithm": "ECDSA_SHA_256"},
        "ValidationException", "Digest is invalid length for algorithm ECDSA_SHA_256.",
        LS("test_sign_verify[ECC_NIST_P256-ECDSA_SHA_256] (bad-digest)"), "Validation.DIGEST_LENGTH"),
    Row("verify-ecdsa-bad-digest", "Verify",
        lambda e: {"KeyId": e.ecc_sign, "Message": b"d" * 33, "MessageType": "DIGEST",
                   "SigningAlgorithm": "ECDSA_SHA_256", "Signature": b"s" * 70},
        "ValidationException", "Digest is invalid length for algorithm ECDSA_SHA_256.",
        LS("test_sign_verify (bad-digest)"), "Validation.DIGEST_LENGTH"),
    Row("verify-bad-signature", "Verify",
        lambda e: {"KeyId": e.ecc_sign, "Message": b"message", "SigningAlgorithm": "ECDSA_SHA_256",
                   "Signature": e.other_signature},
        "KMSInvalidSignatureException", ABSENT, LS("test_sign_verify (bad-signature)"),
        "Signatures.INVALID_SIGNATURE"),
    Row("verify-rsa-bad-signature", "Verify",
        lambda e: {"KeyId": e.rsa_sign, "Message": b"message", "SigningAlgorithm": "RSASSA_PSS_SHA_256",
                   "Signature": b"\x00" * 256},
        "KMSInvalidSignatureException", ABSENT, LS("test_sign_verify[RSA_2048-RSASSA_PSS_SHA_256]"),
        "Signatures.INVALID_SIGNATURE"),
    Row("sign-symmetric-key", "Sign",
        lambda e: {"KeyId": e.sym, "Message": b"m", "SigningAlgorithm": "ECDSA_SHA_256"},
        "InvalidKeyUsageException", "{sym_arn} key usage is ENCRYPT_DECRYPT which is not valid for Sign.",
        USAGE, "KeyUsage.WRONG_USAGE"),
    Row("sign-hmac-key", "Sign",
        lambda e: {"KeyId": e.hmac256, "Message": b"m", "SigningAlgorithm": "ECDSA_SHA_256"},
        "InvalidKeyUsageException",
        "{hmac256_arn} key usage is GENERATE_VERIFY_MAC which is not valid for Sign.",
        LS("test_error_messaging_for_invalid_keys (sign-invalid-key-id)"), "KeyUsage.WRONG_USAGE"),
    Row("verify-symmetric-key", "Verify",
        lambda e: {"KeyId": e.sym, "Message": b"m", "SigningAlgorithm": "ECDSA_SHA_256",
                   "Signature": b"s"},
        "InvalidKeyUsageException", "{sym_arn} key usage is ENCRYPT_DECRYPT which is not valid for Verify.",
        LS("test_error_messaging_for_invalid_keys (verify-invalid-key-id)"), "KeyUsage.WRONG_USAGE"),
    Row("sign-wrong-algorithm", "Sign",
        lambda e: {"KeyId": e.ecc_sign, "Message": b"m", "SigningAlgorithm": "ECDSA_SHA_384"},
        "InvalidKeyUsageException", "Algorithm ECDSA_SHA_384 is incompatible with key spec ECC_NIST_P256.",
        None, "KeyUsage.WRONG_ALGORITHM"),
    Row("sign-rsa-with-ecdsa", "Sign",
        lambda e: {"KeyId": e.rsa_sign, "Message": b"m", "SigningAlgorithm": "ECDSA_SHA_256"},
        "InvalidKeyUsageException", "Algorithm ECDSA_SHA_256 is incompatible with key spec RSA_2048.",
        None, "KeyUsage.WRONG_ALGORITHM"),
    Row("sign-dry-run", "Sign",
        lambda e: {"KeyId": e.ecc_sign, "Message": b"m", "SigningAlgorithm": "ECDSA_SHA_256",
                   "DryRun": True},
        "DryRunOperationException", "The request would have succeeded, but the DryRun option is set.",
        DRY_RUN, "Requests.DRY_RUN"),
    Row("verify-dry-run", "Verify",
        lambda e: {"KeyId": e.ecc_sign, "Message": b"message", "SigningAlgorithm": "ECDSA_SHA_256",
                   "Signature": e.signature, "DryRun": True},
        "DryRunOperationException", "The request would have succeeded, but the DryRun option is set.",
        DRY_RUN, "Requests.DRY_RUN"),
    Row("sign-ed25519-digest", "Sign",
        lambda e: {"KeyId": e.ed25519, "Message": b"d" * 64, "MessageType": "DIGEST",
                   "SigningAlgorithm": "ED25519_SHA_512"},
        "ValidationException", "The ED25519_SHA_512 signing algorithm requires MessageType RAW.", None,
        "Validation.ED25519_RAW_ONLY"),
    Row("sign-ed25519ph-raw", "Sign",
        lambda e: {"KeyId": e.ed25519, "Message": b"m", "SigningAlgorithm": "ED25519_PH_SHA_512"},
        "ValidationException", "The ED25519_PH_SHA_512 signing algorithm requires MessageType DIGEST.",
        None, "Validation.ED25519_PH_DIGEST_ONLY"),
    Row("sign-ml-dsa-digest", "Sign",
        lambda e: {"KeyId": e.mldsa, "Message": b"d" * 64, "MessageType": "DIGEST",
                   "SigningAlgorithm": "ML_DSA_SHAKE_256"},
        "ValidationException", "MessageType DIGEST is not valid for ML-DSA keys; use RAW or EXTERNAL_MU.",
        None, "Validation.DIGEST_ML_DSA"),
    Row("sign-external-mu-ecc", "Sign",
        lambda e: {"KeyId": e.ecc_sign, "Message": b"m" * 64, "MessageType": "EXTERNAL_MU",
                   "SigningAlgorithm": "ECDSA_SHA_256"},
        "ValidationException", "MessageType EXTERNAL_MU is only valid for ML-DSA keys, not ECC_NIST_P256.",
        None, "Validation.EXTERNAL_MU_KEY"),
    Row("sign-external-mu-length", "Sign",
        lambda e: {"KeyId": e.mldsa, "Message": b"m" * 63, "MessageType": "EXTERNAL_MU",
                   "SigningAlgorithm": "ML_DSA_SHAKE_256"},
        "ValidationException", "Message of type EXTERNAL_MU must be 64 bytes long.", None,
        "Validation.EXTERNAL_MU_LENGTH"),
    Row("sign-message-too-long", "Sign",
        lambda e: {"KeyId": e.ecc_sign, "Message": b"m" * 4097, "SigningAlgorithm": "ECDSA_SHA_256"},
        "ValidationException",
        "1 validation error detected: Value at 'message' failed to satisfy constraint: Member must "
        "have length less than or equal to 4096", FORM, "Validation.MODEL"),
    Row("sign-pending-deletion", "Sign",
        lambda e: {"KeyId": e.pending, "Message": b"m", "SigningAlgorithm": "ECDSA_SHA_256"},
        "KMSInvalidStateException", "{pending_arn} is pending deletion.", STATE, "KeyState.PENDING_DELETION"),
    # -- MACs ---------------------------------------------------------------------------------------
    Row("generate-mac-invalid-key-id", "GenerateMac",
        {"KeyId": "key_id", "Message": b"m", "MacAlgorithm": "HMAC_SHA_256"}, "NotFoundException",
        "Invalid keyId 'key_id'", LS("test_generate_and_verify_mac (generate-mac-invalid-key-id)"),
        "NotFound.INVALID_KEY_ID"),
    Row("verify-mac-invalid-key-id", "VerifyMac",
        {"KeyId": "key_id", "Message": b"m", "MacAlgorithm": "HMAC_SHA_256", "Mac": b"m" * 32},
        "NotFoundException", "Invalid keyId 'key_id'",
        LS("test_generate_and_verify_mac (verify-mac-invalid-key-id)"), "NotFound.INVALID_KEY_ID"),
    Row("generate-mac-wrong-algorithm", "GenerateMac",
        lambda e: {"KeyId": e.hmac224, "Message": b"m", "MacAlgorithm": "HMAC_SHA_256"},
        "InvalidKeyUsageException", "Algorithm HMAC_SHA_256 is incompatible with key spec HMAC_224.",
        LS("test_invalid_generate_mac[HMAC_224-HMAC_SHA_256]"), "KeyUsage.WRONG_ALGORITHM"),
    Row("verify-mac-wrong-algorithm", "VerifyMac",
        lambda e: {"KeyId": e.hmac256, "Message": b"m", "MacAlgorithm": "HMAC_SHA_512", "Mac": b"m" * 64},
        "InvalidKeyUsageException", "Algorithm HMAC_SHA_512 is incompatible with key spec HMAC_256.",
        LS("test_invalid_verify_mac[HMAC_256-HMAC_SHA_512-some important message]"),
        "KeyUsage.WRONG_ALGORITHM"),
    Row("generate-mac-invalid-algorithm", "GenerateMac",
        lambda e: {"KeyId": e.hmac256, "Message": b"m", "MacAlgorithm": "INVALID"}, "ValidationException",
        "1 validation error detected: Value 'INVALID' at 'macAlgorithm' failed to satisfy "
        "constraint: Member must satisfy enum value set: [HMAC_SHA_384, HMAC_SHA_256, HMAC_SHA_224, "
        "HMAC_SHA_512]", LS("test_invalid_generate_mac[HMAC_256-INVALID]"), "Validation.MODEL"),
    Row("verify-mac-invalid-algorithm", "VerifyMac",
        lambda e: {"KeyId": e.hmac256, "Message": b"m", "MacAlgorithm": "INVALID", "Mac": b"m"},
        "ValidationException",
        "1 validation error detected: Value 'INVALID' at 'macAlgorithm' failed to satisfy "
        "constraint: Member must satisfy enum value set: [HMAC_SHA_384, HMAC_SHA_256, HMAC_SHA_224, "
        "HMAC_SHA_512]", LS("test_invalid_verify_mac[HMAC_256-INVALID-some important message]"),
        "Validation.MODEL"),
    Row("verify-mac-invalid-mac", "VerifyMac",
        lambda e: {"KeyId": e.hmac256, "Message": b"some different important message",
                   "MacAlgorithm": "HMAC_SHA_256", "Mac": e.mac},
        "KMSInvalidMacException", ABSENT,
        LS("test_invalid_verify_mac[HMAC_256-HMAC_SHA_256-some different important message]"),
        "Signatures.INVALID_MAC"),
    Row("generate-mac-symmetric-key", "GenerateMac",
        lambda e: {"KeyId": e.sym, "Message": b"m", "MacAlgorithm": "HMAC_SHA_256"},
        "InvalidKeyUsageException",
        "{sym_arn} key usage is ENCRYPT_DECRYPT which is not valid for GenerateMac.",
        LS("test_error_messaging_for_invalid_keys (generate-mac-invalid-key-id)"), "KeyUsage.WRONG_USAGE"),
    Row("generate-mac-dry-run", "GenerateMac",
        lambda e: {"KeyId": e.hmac256, "Message": b"m", "MacAlgorithm": "HMAC_SHA_256", "DryRun": True},
        "DryRunOperationException", "The request would have succeeded, but the DryRun option is set.",
        DRY_RUN, "Requests.DRY_RUN"),
    Row("verify-mac-dry-run", "VerifyMac",
        lambda e: {"KeyId": e.hmac256, "Message": b"some important message", "MacAlgorithm": "HMAC_SHA_256",
                   "Mac": e.mac, "DryRun": True},
        "DryRunOperationException", "The request would have succeeded, but the DryRun option is set.",
        DRY_RUN, "Requests.DRY_RUN"),
    # -- DeriveSharedSecret, Encapsulate, Decapsulate, GetPublicKey -----------------------------------
    Row("derive-invalid-public-key", "DeriveSharedSecret",
        lambda e: {"KeyId": e.ecdh, "KeyAgreementAlgorithm": "ECDH", "PublicKey": b"not a public key"},
        "ValidationException", ABSENT, LS("test_derive_shared_secret (response-invalid-public-key)"),
        "Validation.INVALID_PUBLIC_KEY"),
    Row("derive-other-curve", "DeriveSharedSecret",
        lambda e: {"KeyId": e.ecdh, "KeyAgreementAlgorithm": "ECDH", "PublicKey": e.p384_public},
        "ValidationException", ABSENT, None, "Validation.INVALID_PUBLIC_KEY"),
    Row("derive-sign-key", "DeriveSharedSecret",
        lambda e: {"KeyId": e.ecc_sign, "KeyAgreementAlgorithm": "ECDH", "PublicKey": e.peer_public},
        "InvalidKeyUsageException",
        "{ecc_sign_arn} key usage is SIGN_VERIFY which is not valid for DeriveSharedSecret.",
        LS("test_derive_shared_secret (response-invalid-key-usage)"), "KeyUsage.WRONG_USAGE"),
    Row("derive-symmetric-key", "DeriveSharedSecret",
        lambda e: {"KeyId": e.sym, "KeyAgreementAlgorithm": "ECDH", "PublicKey": e.peer_public},
        "InvalidKeyUsageException",
        "{sym_arn} key usage is ENCRYPT_DECRYPT which is not valid for DeriveSharedSecret.",
        LS("test_derive_shared_secret (response-invalid-key)"), "KeyUsage.WRONG_USAGE"),
    Row("derive-invalid-algorithm", "DeriveSharedSecret",
        lambda e: {"KeyId": e.ecdh, "KeyAgreementAlgorithm": "INVALID", "PublicKey": e.peer_public},
        "ValidationException",
        "1 validation error detected: Value 'INVALID' at 'keyAgreementAlgorithm' failed to satisfy "
        "constraint: Member must satisfy enum value set: [ECDH]",
        LS("test_derive_shared_secret (response-invalid-key-agreement-algo)"), "Validation.MODEL"),
    Row("derive-dry-run", "DeriveSharedSecret",
        lambda e: {"KeyId": e.ecdh, "KeyAgreementAlgorithm": "ECDH", "PublicKey": e.peer_public,
                   "DryRun": True},
        "DryRunOperationException", "The request would have succeeded, but the DryRun option is set.",
        DRY_RUN, "Requests.DRY_RUN"),
    Row("encapsulate-symmetric-key", "Encapsulate",
        lambda e: {"KeyId": e.sym, "EncapsulationAlgorithm": "ML_KEM"}, "InvalidKeyUsageException",
        "{sym_arn} key usage is ENCRYPT_DECRYPT which is not valid for Encapsulate.", USAGE,
        "KeyUsage.WRONG_USAGE"),
    Row("encapsulate-dry-run", "Encapsulate",
        lambda e: {"KeyId": e.mlkem, "EncapsulationAlgorithm": "ML_KEM", "DryRun": True},
        "DryRunOperationException", "The request would have succeeded, but the DryRun option is set.",
        DRY_RUN, "Requests.DRY_RUN"),
    Row("decapsulate-wrong-length", "Decapsulate",
        lambda e: {"KeyId": e.mlkem, "EncapsulationAlgorithm": "ML_KEM",
                   "SharedSecretCiphertextBlob": b"c" * 100},
        "InvalidCiphertextException", "The ciphertext length does not match key spec ML_KEM_768.",
        None, "Ciphertext.DECAPSULATION_LENGTH"),
    Row("decapsulate-dry-run", "Decapsulate",
        lambda e: {"KeyId": e.mlkem, "EncapsulationAlgorithm": "ML_KEM",
                   "SharedSecretCiphertextBlob": e.kem_ciphertext, "DryRun": True},
        "DryRunOperationException", "The request would have succeeded, but the DryRun option is set.",
        DRY_RUN, "Requests.DRY_RUN"),
    Row("public-key-symmetric", "GetPublicKey", lambda e: {"KeyId": e.sym},
        "UnsupportedOperationException", "{sym_arn} is a SYMMETRIC_DEFAULT key, which has no public key.",
        None, "Unsupported.NO_PUBLIC_KEY"),
    Row("public-key-hmac", "GetPublicKey", lambda e: {"KeyId": e.hmac256},
        "UnsupportedOperationException", "{hmac256_arn} is a HMAC_256 key, which has no public key.",
        None, "Unsupported.NO_PUBLIC_KEY"),
    Row("public-key-missing", "GetPublicKey", {"KeyId": MISSING}, "NotFoundException",
        f"Key '{ARN}:key/{MISSING}' does not exist", NOT_FOUND, "NotFound.KEY"),
    # -- CreateKey ------------------------------------------------------------------------------------
    Row("create-hmac-without-usage", "CreateKey", {"KeySpec": "HMAC_256"}, "ValidationException",
        "You must specify a KeyUsage value for all KMS keys except for symmetric encryption keys.",
        LS("test_hmac_create_key_invalid_operations (create-hmac-key-without-key-usage)"),
        "Validation.KEY_USAGE_REQUIRED"),
    Row("create-rsa-without-usage", "CreateKey", {"KeySpec": "RSA_2048"}, "ValidationException",
        "You must specify a KeyUsage value for all KMS keys except for symmetric encryption keys.",
        LS("test_hmac_create_key_invalid_operations") + "; API Reference, CreateKey KeyUsage: "
        "\"optional when you are creating a symmetric encryption KMS key; otherwise, it is required\"",
        "Validation.KEY_USAGE_REQUIRED"),
    Row("create-ecc-without-usage", "CreateKey", {"KeySpec": "ECC_NIST_P256"}, "ValidationException",
        "You must specify a KeyUsage value for all KMS keys except for symmetric encryption keys.",
        LS("test_hmac_create_key_invalid_operations") + "; API Reference, CreateKey KeyUsage",
        "Validation.KEY_USAGE_REQUIRED"),
    Row("create-rsa-key-agreement", "CreateKey", {"KeySpec": "RSA_2048", "KeyUsage": "KEY_AGREEMENT"},
        "ValidationException", "KeyUsage KEY_AGREEMENT is not compatible with KeySpec RSA_2048",
        LS("test_derive_shared_secret (response-invalid-key-spec)"), "Validation.USAGE_NOT_COMPATIBLE"),
    Row("create-symmetric-sign", "CreateKey", {"KeySpec": "SYMMETRIC_DEFAULT", "KeyUsage": "SIGN_VERIFY"},
        "ValidationException", "KeyUsage SIGN_VERIFY is not compatible with KeySpec SYMMETRIC_DEFAULT",
        LS("test_derive_shared_secret (response-invalid-key-spec: the same check)"),
        "Validation.USAGE_NOT_COMPATIBLE"),
    Row("create-hmac-encrypt", "CreateKey", {"KeySpec": "HMAC_256", "KeyUsage": "ENCRYPT_DECRYPT"},
        "ValidationException", "KeyUsage ENCRYPT_DECRYPT is not compatible with KeySpec HMAC_256",
        LS("test_derive_shared_secret (response-invalid-key-spec: the same check)"),
        "Validation.USAGE_NOT_COMPATIBLE"),
    Row("create-invalid-usage", "CreateKey", {"KeySpec": "HMAC_256", "KeyUsage": "RANDOM"},
        "ValidationException",
        "1 validation error detected: Value 'RANDOM' at 'keyUsage' failed to satisfy constraint: "
        "Member must satisfy enum value set: [SIGN_VERIFY, ENCRYPT_DECRYPT, GENERATE_VERIFY_MAC, "
        "KEY_AGREEMENT, ENCAPSULATE_DECAPSULATE]", None, "Validation.MODEL"),
    Row("create-too-many-tags", "CreateKey",
        {"Tags": [{"TagKey": f"key{i}", "TagValue": f"value{i}"} for i in range(51)]},
        "TagException", "Too many tags", LS("test_create_key_with_too_many_tags_raises_error"),
        "Tags.TOO_MANY"),
    Row("create-aws-tag", "CreateKey", {"Tags": [{"TagKey": "aws:key1", "TagValue": "value1"}]},
        "TagException", "Tags beginning with aws: are reserved",
        LS("test_create_key_with_invalid_tag_key[lowercase_prefix]"), "Tags.RESERVED"),
    Row("create-AWS-tag", "CreateKey", {"Tags": [{"TagKey": "AWS:key1", "TagValue": "value1"}]},
        "TagException", "Tags beginning with aws: are reserved",
        LS("test_create_key_with_invalid_tag_key[uppercase_prefix]"), "Tags.RESERVED"),
    Row("create-tag-key-too-long", "CreateKey", {"Tags": [{"TagKey": "a" * 129, "TagValue": "value1"}]},
        "ValidationException",
        f"1 validation error detected: Value '{'a' * 129}' at 'tags.1.member.tagKey' failed to "
        "satisfy constraint: Member must have length less than or equal to 128",
        LS("test_create_key_with_invalid_tag_key[too_long_key]"), "Validation.MODEL"),
    Row("create-tag-value-too-long", "CreateKey", {"Tags": [{"TagKey": "tag1", "TagValue": "v" * 257}]},
        "ValidationException",
        f"1 validation error detected: Value '{'v' * 257}' at 'tags.1.member.tagValue' failed to "
        "satisfy constraint: Member must have length less than or equal to 256",
        LS("test_key_with_long_tag_value_raises_error"), "Validation.MODEL"),
    Row("create-duplicate-tags", "CreateKey",
        {"Tags": [{"TagKey": "tag1", "TagValue": "value1"}, {"TagKey": "tag1", "TagValue": "another"}]},
        "TagException", "Duplicate tag keys", None, "Tags.DUPLICATE_KEYS"),
    Row("create-tag-value-aws", "CreateKey", {"Tags": [{"TagKey": "owner", "TagValue": "aws:team"}]},
        None, None, None),
    Row("create-both-specs", "CreateKey",
        {"KeySpec": "SYMMETRIC_DEFAULT", "CustomerMasterKeySpec": "SYMMETRIC_DEFAULT"},
        "ValidationException", "You cannot specify KeySpec and CustomerMasterKeySpec in the same request.",
        None, "Validation.SPEC_AND_CMK_SPEC"),
    Row("create-cloudhsm", "CreateKey", {"Origin": "AWS_CLOUDHSM"}, "UnsupportedOperationException",
        "Origin AWS_CLOUDHSM (custom key stores) is not supported.", None, "Unsupported.ORIGIN"),
    Row("create-custom-key-store", "CreateKey", {"CustomKeyStoreId": "cks-1234567890abcdef0"},
        "UnsupportedOperationException", "Custom key stores are not supported.", None,
        "Unsupported.CUSTOM_KEY_STORE"),
    Row("create-multi-region", "CreateKey", {"MultiRegion": True}, None, None, None),
    # -- multi-Region keys (codes: botocore's ReplicateKey/UpdatePrimaryRegion docs; texts ours) ---
    Row("replicate-single-region-key", "ReplicateKey",
        lambda e: {"KeyId": e.sym, "ReplicaRegion": WEST}, "UnsupportedOperationException",
        "{sym_arn} is not a multi-Region key. You can replicate only multi-Region keys.", None,
        "MultiRegion.NOT_MULTI_REGION"),
    Row("replicate-into-own-region", "ReplicateKey",
        lambda e: {"KeyId": e.mrk, "ReplicaRegion": REGION}, "AlreadyExistsException",
        "A key related to {mrk_arn} already exists in the us-east-1 Region.", None,
        "MultiRegion.ALREADY_IN_REGION"),
    Row("replicate-into-region-with-replica", "ReplicateKey",
        lambda e: {"KeyId": e.mrk, "ReplicaRegion": WEST}, "AlreadyExistsException",
        "A key related to {mrk_arn} already exists in the us-west-2 Region.", None,
        "MultiRegion.ALREADY_IN_REGION"),
    Row("replicate-a-replica", "ReplicateKey",
        lambda e: {"KeyId": e.mrk, "ReplicaRegion": "eu-west-1"}, "UnsupportedOperationException",
        "{mrk_west_arn} is a multi-Region replica key. You can replicate only a multi-Region "
        "primary key.", None, "MultiRegion.REPLICA_NOT_REPLICABLE", region=WEST),
    Row("rotation-on-a-replica", "EnableKeyRotation", lambda e: {"KeyId": e.mrk},
        "UnsupportedOperationException",
        "{mrk_west_arn} is a multi-Region replica key. Change its rotation on the primary key, "
        "{mrk_arn}.", None, "MultiRegion.REPLICA_ROTATION", region=WEST),
    Row("update-primary-on-a-replica", "UpdatePrimaryRegion",
        lambda e: {"KeyId": e.mrk, "PrimaryRegion": REGION}, "UnsupportedOperationException",
        "{mrk_west_arn} is not a multi-Region primary key. Call UpdatePrimaryRegion on the primary "
        "key of the multi-Region key set.", None, "MultiRegion.NOT_PRIMARY", region=WEST),
    Row("update-primary-no-replica-there", "UpdatePrimaryRegion",
        lambda e: {"KeyId": e.mrk, "PrimaryRegion": "ap-south-1"}, "NotFoundException",
        "{mrk_arn} has no replica key in the ap-south-1 Region.", None,
        "MultiRegion.NO_REPLICA_IN_REGION"),
    Row("import-new-material-into-a-replica", "ImportKeyMaterial",
        lambda e: {"KeyId": e.mrk_external, "ImportToken": e.mrk_external_west_token,
                   "EncryptedKeyMaterial": e.mrk_external_west_wrapped,
                   "ImportType": "NEW_KEY_MATERIAL",
                   "ExpirationModel": "KEY_MATERIAL_DOES_NOT_EXPIRE"},
        "UnsupportedOperationException",
        "{mrk_external_west_arn} is a multi-Region replica key. Import new key material into its "
        "primary key, then into this key with ImportType EXISTING_KEY_MATERIAL.", None,
        "MultiRegion.REPLICA_NEW_MATERIAL", region=WEST),
    Row("rotate-before-every-replica-imported", "RotateKeyOnDemand",
        lambda e: {"KeyId": e.mrk_external}, "KMSInvalidStateException",
        "{mrk_external_arn}: key material {mrk_external_pending} is not yet imported into every "
        "replica key (us-west-2).", None, "MultiRegion.PENDING_REPLICA_IMPORTS"),
    Row("encrypt-pending-replica-deletion", "Encrypt",
        lambda e: {"KeyId": e.mrk_deleting, "Plaintext": b"x"}, "KMSInvalidStateException",
        "{mrk_deleting_arn} is pending replica deletion.", None, "KeyState.PENDING_REPLICA_DELETION"),
    Row("create-ml-kem-512", "CreateKey", {"KeySpec": "ML_KEM_512", "KeyUsage": "ENCAPSULATE_DECAPSULATE"},
        "UnsupportedOperationException",
        "KeySpec ML_KEM_512 is not supported by keyledger: no library it relies on implements it "
        "(see docs/compatibility.md).", None, "Unsupported.KEY_SPEC"),
    Row("create-policy-lockout", "CreateKey",
        {"Policy": json.dumps({"Version": "2012-10-17", "Statement": [{
            "Effect": "Allow", "Principal": {"AWS": f"arn:aws:iam::{ACCOUNT_ID}:role/app"},
            "Action": "kms:Encrypt", "Resource": "*"}]})},
        "MalformedPolicyDocumentException",
        "The new key policy will not allow you to update the key policy in the future.",
        "github.com/widdix/aws-cf-templates/issues/259"),
    Row("create-policy-invalid-principal", "CreateKey",
        {"Policy": json.dumps({"Version": "2012-10-17", "Statement": [{
            "Effect": "Allow", "Principal": {"AWS": f"arn:aws:iam::{ACCOUNT_ID}:role/nobody"},
            "Action": "kms:*", "Resource": "*"}]})},
        "MalformedPolicyDocumentException",
        "Policy contains a statement with one or more invalid principals.",
        "github.com/awslabs/minimum-viable-dataspace-on-aws/issues/6"),
    # -- tags -------------------------------------------------------------------------------------------
    Row("tag-duplicate-keys", "TagResource",
        lambda e: {"KeyId": e.sym, "Tags": [{"TagKey": "tag1", "TagValue": "value1"},
                                            {"TagKey": "tag1", "TagValue": "another-value1"}]},
        "TagException", "Duplicate tag keys", LS("test_tag_key_with_duplicate_tag_keys_raises_error"),
        "Tags.DUPLICATE_KEYS"),
    Row("tag-aws-prefix", "TagResource",
        lambda e: {"KeyId": e.sym, "Tags": [{"TagKey": "aws:key1", "TagValue": "value1"}]},
        "TagException", "Tags beginning with aws: are reserved",
        LS("test_tag_existing_key_with_invalid_tag_key"), "Tags.RESERVED"),
    Row("tag-Aws-prefix", "TagResource",
        lambda e: {"KeyId": e.sym, "Tags": [{"TagKey": "Aws:key1", "TagValue": "value1"}]},
        "TagException", "Tags beginning with aws: are reserved",
        LS("test_create_key_with_invalid_tag_key[uppercase_prefix] (any case)"), "Tags.RESERVED"),
    Row("tag-too-many-in-request", "TagResource",
        lambda e: {"KeyId": e.sym, "Tags": [{"TagKey": f"k{i}", "TagValue": "v"} for i in range(51)]},
        "TagException", "Too many tags", None, "Tags.TOO_MANY"),
    Row("tag-over-the-key-limit", "TagResource",
        lambda e: {"KeyId": e.tagged, "Tags": [{"TagKey": "one-more", "TagValue": "v"}]},
        "LimitExceededException",
        "The request was rejected because {tagged_arn} would have more than 50 tags.", None, "Tags.LIMIT"),
    Row("tag-pending-deletion", "TagResource",
        lambda e: {"KeyId": e.pending, "Tags": [{"TagKey": "k", "TagValue": "v"}]},
        "KMSInvalidStateException", "{pending_arn} is pending deletion.", STATE, "KeyState.PENDING_DELETION"),
    Row("tag-alias-name", "TagResource",
        lambda e: {"KeyId": e.alias, "Tags": [{"TagKey": "k", "TagValue": "v"}]},
        "NotFoundException", "Invalid keyId '{alias}'", None, "NotFound.INVALID_KEY_ID"),
    Row("tag-missing-key", "TagResource", {"KeyId": MISSING, "Tags": [{"TagKey": "k", "TagValue": "v"}]},
        "NotFoundException", f"Key '{ARN}:key/{MISSING}' does not exist", NOT_FOUND, "NotFound.KEY"),
    Row("tag-value-aws-prefix", "TagResource",
        lambda e: {"KeyId": e.sym, "Tags": [{"TagKey": "owner", "TagValue": "aws:team"}]}, None, None, None),
    Row("untag-aws-prefix", "UntagResource", lambda e: {"KeyId": e.sym, "TagKeys": ["aws:key1"]},
        "TagException", "Tags beginning with aws: are reserved", None, "Tags.RESERVED"),
    Row("untag-absent-tag", "UntagResource", lambda e: {"KeyId": e.sym, "TagKeys": ["never-set"]},
        None, None, "API Reference, UntagResource: \"if the specified tag key isn't found on the KMS "
        "key, it doesn't throw an exception\""),
    Row("untag-pending-deletion", "UntagResource", lambda e: {"KeyId": e.pending, "TagKeys": ["k"]},
        "KMSInvalidStateException", "{pending_arn} is pending deletion.", STATE, "KeyState.PENDING_DELETION"),
    Row("list-tags-limit", "ListResourceTags", lambda e: {"KeyId": e.sym, "Limit": 51},
        "ValidationException",
        "1 validation error detected: Value '51' at 'limit' failed to satisfy constraint: Member "
        "must have value less than or equal to 50", None, "Validation.CONSTRAINT"),
    Row("list-tags-bad-marker", "ListResourceTags", lambda e: {"KeyId": e.sym, "Marker": "garbage"},
        "InvalidMarkerException", "Invalid marker", None, "Requests.INVALID_MARKER"),
    # keyledger's own encoding around a position no tag key can hold (an empty one)
    Row("list-tags-forged-marker", "ListResourceTags",
        lambda e: {"KeyId": e.sym, "Marker": FORGED_EMPTY_MARKER},
        "InvalidMarkerException", "Invalid marker", None, "Requests.INVALID_MARKER"),
    # -- key lifecycle ----------------------------------------------------------------------------------
    Row("enable-pending-deletion", "EnableKey", lambda e: {"KeyId": e.pending},
        "KMSInvalidStateException", "{pending_arn} is pending deletion.", STATE, "KeyState.PENDING_DELETION"),
    Row("disable-pending-deletion", "DisableKey", lambda e: {"KeyId": e.pending},
        "KMSInvalidStateException", "{pending_arn} is pending deletion.", STATE, "KeyState.PENDING_DELETION"),
    Row("disable-pending-import", "DisableKey", lambda e: {"KeyId": e.external},
        "KMSInvalidStateException", "{external_arn} is pending import.", STATE, "KeyState.PENDING_IMPORT"),
    Row("cancel-deletion-enabled", "CancelKeyDeletion", lambda e: {"KeyId": e.sym},
        "KMSInvalidStateException", "{sym_arn} is not pending deletion.", None,
        "KeyState.NOT_PENDING_DELETION"),
    Row("schedule-deletion-pending", "ScheduleKeyDeletion", lambda e: {"KeyId": e.pending},
        "KMSInvalidStateException", "{pending_arn} is pending deletion.",
        "github.com/hashicorp/terraform-provider-aws/issues/17889", "KeyState.PENDING_DELETION"),
    Row("schedule-deletion-6-days", "ScheduleKeyDeletion",
        lambda e: {"KeyId": e.sym, "PendingWindowInDays": 6}, "ValidationException",
        "1 validation error detected: Value '6' at 'pendingWindowInDays' failed to satisfy "
        "constraint: Member must have value greater than or equal to 7", None, "Validation.CONSTRAINT"),
    Row("schedule-deletion-31-days", "ScheduleKeyDeletion",
        lambda e: {"KeyId": e.sym, "PendingWindowInDays": 31}, "ValidationException",
        "1 validation error detected: Value '31' at 'pendingWindowInDays' failed to satisfy "
        "constraint: Member must have value less than or equal to 30", None, "Validation.CONSTRAINT"),
    Row("describe-update-pending-deletion", "UpdateKeyDescription",
        lambda e: {"KeyId": e.pending, "Description": "d"}, "KMSInvalidStateException",
        "{pending_arn} is pending deletion.", STATE, "KeyState.PENDING_DELETION"),
    Row("describe-update-alias", "UpdateKeyDescription", lambda e: {"KeyId": e.alias, "Description": "d"},
        "NotFoundException", "Invalid keyId '{alias}'", None, "NotFound.INVALID_KEY_ID"),
    Row("enable-alias-arn", "EnableKey", lambda e: {"KeyId": _alias_arn(e.alias)},
        "InvalidArnException", "Key Aliases are not supported for this operation.", None,
        "InvalidArn.ALIAS_NOT_SUPPORTED"),
    Row("list-keys-bad-marker", "ListKeys", {"Marker": "garbage"}, "InvalidMarkerException",
        "Invalid marker", None, "Requests.INVALID_MARKER"),
    Row("list-keys-limit", "ListKeys", {"Limit": 1001}, "ValidationException",
        "1 validation error detected: Value '1001' at 'limit' failed to satisfy constraint: Member "
        "must have value less than or equal to 1000", FORM, "Validation.MODEL"),
    # -- rotation ---------------------------------------------------------------------------------------
    Row("rotate-disabled", "RotateKeyOnDemand", lambda e: {"KeyId": e.disabled}, "DisabledException",
        "{disabled_arn} is disabled.", LS("test_rotate_key_on_demand_raises_error_given_key_is_disabled"),
        "KeyState.DISABLED"),
    Row("rotate-missing", "RotateKeyOnDemand", {"KeyId": MISSING}, "NotFoundException",
        f"Key '{ARN}:key/{MISSING}' does not exist",
        LS("test_rotate_key_on_demand_raises_error_given_key_that_does_not_exist"), "NotFound.KEY"),
    Row("rotate-rsa", "RotateKeyOnDemand", lambda e: {"KeyId": e.rsa_enc}, "UnsupportedOperationException",
        ABSENT, LS("test_rotate_key_on_demand_raises_error_given_non_symmetric_key"),
        "Rotation.ON_DEMAND_UNSUPPORTED"),
    Row("rotate-hmac", "RotateKeyOnDemand", lambda e: {"KeyId": e.hmac256}, "UnsupportedOperationException",
        ABSENT, LS("test_rotate_key_on_demand_raises_error_given_non_symmetric_key (any non-symmetric key)"),
        "Rotation.ON_DEMAND_UNSUPPORTED"),
    Row("rotate-limit", "RotateKeyOnDemand", lambda e: {"KeyId": e.rotated}, "LimitExceededException",
        "The on-demand rotations limit has been reached for the given keyId. No more on-demand "
        "rotations can be performed for this key: {rotated_arn}", LS("test_key_rotations_limits"),
        "Rotation.ON_DEMAND_LIMIT"),
    Row("rotate-imported-without-pending", "RotateKeyOnDemand", lambda e: {"KeyId": e.imported},
        "KMSInvalidStateException", "No available key material pending rotation for the key: {imported_arn}.",
        "keyledger issue 12 (quoted there from a recorded AWS response)", "Rotation.NO_PENDING_MATERIAL"),
    Row("rotate-pending-import", "RotateKeyOnDemand", lambda e: {"KeyId": e.external},
        "KMSInvalidStateException", "{external_arn} is pending import.", STATE, "KeyState.PENDING_IMPORT"),
    Row("enable-rotation-rsa", "EnableKeyRotation", lambda e: {"KeyId": e.rsa_enc},
        "UnsupportedOperationException",
        "{rsa_enc_arn} key spec RSA_2048 with origin AWS_KMS does not support automatic key rotation.",
        None, "Rotation.AUTOMATIC_UNSUPPORTED"),
    Row("enable-rotation-imported", "EnableKeyRotation", lambda e: {"KeyId": e.imported},
        "UnsupportedOperationException",
        "{imported_arn} key spec SYMMETRIC_DEFAULT with origin EXTERNAL does not support automatic "
        "key rotation.", None, "Rotation.AUTOMATIC_UNSUPPORTED"),
    Row("enable-rotation-89-days", "EnableKeyRotation", lambda e: {"KeyId": e.sym, "RotationPeriodInDays": 89},
        "ValidationException",
        "1 validation error detected: Value '89' at 'rotationPeriodInDays' failed to satisfy "
        "constraint: Member must have value greater than or equal to 90", FORM, "Validation.MODEL"),
    Row("enable-rotation-disabled", "EnableKeyRotation", lambda e: {"KeyId": e.disabled},
        "DisabledException", "{disabled_arn} is disabled.", STATE, "KeyState.DISABLED"),
    Row("enable-rotation-pending-deletion", "EnableKeyRotation", lambda e: {"KeyId": e.pending},
        "KMSInvalidStateException", "{pending_arn} is pending deletion.", STATE, "KeyState.PENDING_DELETION"),
    Row("disable-rotation-hmac", "DisableKeyRotation", lambda e: {"KeyId": e.hmac256},
        "UnsupportedOperationException",
        "{hmac256_arn} key spec HMAC_256 with origin AWS_KMS does not support automatic key rotation.",
        None, "Rotation.AUTOMATIC_UNSUPPORTED"),
    Row("rotation-status-rsa", "GetKeyRotationStatus", lambda e: {"KeyId": e.rsa_enc}, None, None,
        "API Reference, GetKeyRotationStatus: \"The key rotation status of these KMS keys is always false\""),
    Row("list-rotations-all-material-rsa", "ListKeyRotations",
        lambda e: {"KeyId": e.rsa_enc, "IncludeKeyMaterial": "ALL_KEY_MATERIAL"},
        "UnsupportedOperationException",
        "{rsa_enc_arn} is a RSA_2048 key, which does not support key rotation: "
        "IncludeKeyMaterial=ALL_KEY_MATERIAL is not valid for it.", None,
        "Rotation.ALL_KEY_MATERIAL_UNSUPPORTED"),
    Row("list-rotations-bad-marker", "ListKeyRotations", lambda e: {"KeyId": e.sym, "Marker": "garbage"},
        "InvalidMarkerException", "Invalid marker", None, "Requests.INVALID_MARKER"),
    # -- imported key material ------------------------------------------------------------------------
    Row("params-aws-kms-key", "GetParametersForImport",
        lambda e: {"KeyId": e.sym, "WrappingAlgorithm": "RSAES_OAEP_SHA_256", "WrappingKeySpec": "RSA_2048"},
        "UnsupportedOperationException", "{sym_arn} origin is AWS_KMS which is not valid for this operation.",
        LS("test_get_parameters_for_import"), "Import.NOT_EXTERNAL"),
    Row("import-aws-kms-key", "ImportKeyMaterial",
        lambda e: {"KeyId": e.sym, "ImportToken": b"t" * 32, "EncryptedKeyMaterial": b"m" * 256,
                   "ExpirationModel": "KEY_MATERIAL_DOES_NOT_EXPIRE"},
        "UnsupportedOperationException", "{sym_arn} origin is AWS_KMS which is not valid for this operation.",
        LS("test_get_parameters_for_import (the same check)"), "Import.NOT_EXTERNAL"),
    Row("delete-import-aws-kms-key", "DeleteImportedKeyMaterial", lambda e: {"KeyId": e.sym},
        "UnsupportedOperationException", "{sym_arn} origin is AWS_KMS which is not valid for this operation.",
        LS("test_get_parameters_for_import (the same check)"), "Import.NOT_EXTERNAL"),
    Row("params-pkcs1", "GetParametersForImport",
        lambda e: {"KeyId": e.external, "WrappingAlgorithm": "RSAES_PKCS1_V1_5", "WrappingKeySpec": "RSA_2048"},
        "UnsupportedOperationException",
        "The RSAES_PKCS1_V1_5 wrapping algorithm is no longer supported; use RSAES_OAEP_SHA_256 or "
        "RSA_AES_KEY_WRAP_SHA_256.", None, "Import.PKCS1_WRAPPING"),
    Row("params-sm2", "GetParametersForImport",
        lambda e: {"KeyId": e.external, "WrappingAlgorithm": "SM2PKE", "WrappingKeySpec": "SM2"},
        "UnsupportedOperationException", "SM2 wrapping keys are available only in China Regions.", None,
        "Import.SM2_WRAPPING"),
    Row("import-unknown-token", "ImportKeyMaterial",
        lambda e: {"KeyId": e.external, "ImportToken": b"t" * 32, "EncryptedKeyMaterial": e.wrapped,
                   "ExpirationModel": "KEY_MATERIAL_DOES_NOT_EXPIRE"},
        "InvalidImportTokenException", "The import token is invalid or does not belong to this KMS key.",
        None, "Import.INVALID_TOKEN"),
    Row("import-expires-without-valid-to", "ImportKeyMaterial",
        lambda e: {"KeyId": e.external, "ImportToken": e.token, "EncryptedKeyMaterial": e.wrapped,
                   "ExpirationModel": "KEY_MATERIAL_EXPIRES"},
        "ValidationException", "A validTo date must be set if the ExpirationModel is KEY_MATERIAL_EXPIRES",
        LS("test_import_key_symmetric (import-expiring-key-without-valid-to)"), "Validation.VALID_TO_REQUIRED"),
    Row("import-default-model-without-valid-to", "ImportKeyMaterial",
        lambda e: {"KeyId": e.external, "ImportToken": e.token, "EncryptedKeyMaterial": e.wrapped},
        "ValidationException", "A validTo date must be set if the ExpirationModel is KEY_MATERIAL_EXPIRES",
        None, "Validation.VALID_TO_REQUIRED"),
    Row("import-valid-to-not-expiring", "ImportKeyMaterial",
        lambda e: {"KeyId": e.external, "ImportToken": e.token, "EncryptedKeyMaterial": e.wrapped,
                   "ExpirationModel": "KEY_MATERIAL_DOES_NOT_EXPIRE", "ValidTo": e.in_a_month},
        "ValidationException", "ValidTo is not valid when ExpirationModel is KEY_MATERIAL_DOES_NOT_EXPIRE.",
        None, "Validation.VALID_TO_NOT_ALLOWED"),
    Row("import-valid-to-too-late", "ImportKeyMaterial",
        lambda e: {"KeyId": e.external, "ImportToken": e.token, "EncryptedKeyMaterial": e.wrapped,
                   "ExpirationModel": "KEY_MATERIAL_EXPIRES", "ValidTo": e.in_two_years},
        "ValidationException", "ValidTo must be a future date no more than 365 days from now.", None,
        "Validation.VALID_TO_RANGE"),
    Row("import-garbage-material", "ImportKeyMaterial",
        lambda e: {"KeyId": e.external, "ImportToken": e.token, "EncryptedKeyMaterial": b"\x01" * 256,
                   "ExpirationModel": "KEY_MATERIAL_DOES_NOT_EXPIRE"},
        "InvalidCiphertextException",
        "The EncryptedKeyMaterial could not be decrypted with the import parameters.", None,
        "Import.UNWRAP_FAILED"),
    Row("import-short-material", "ImportKeyMaterial",
        lambda e: {"KeyId": e.external, "ImportToken": e.token, "EncryptedKeyMaterial": e.wrapped_short,
                   "ExpirationModel": "KEY_MATERIAL_DOES_NOT_EXPIRE"},
        "IncorrectKeyMaterialException", "Symmetric key material must be 256 bits (32 bytes).", None,
        "Import.BAD_MATERIAL"),
    Row("import-new-with-material-id", "ImportKeyMaterial",
        lambda e: {"KeyId": e.external, "ImportToken": e.token, "EncryptedKeyMaterial": e.wrapped,
                   "ExpirationModel": "KEY_MATERIAL_DOES_NOT_EXPIRE", "ImportType": "NEW_KEY_MATERIAL",
                   "KeyMaterialId": "a" * 64},
        "ValidationException", "You cannot specify a KeyMaterialId with ImportType NEW_KEY_MATERIAL.",
        None, "Validation.KEY_MATERIAL_ID_WITH_NEW"),
    Row("import-same-material-as-new", "ImportKeyMaterial",
        lambda e: {"KeyId": e.imported, "ImportToken": e.imported_token,
                   "EncryptedKeyMaterial": e.imported_rewrapped,
                   "ExpirationModel": "KEY_MATERIAL_DOES_NOT_EXPIRE", "ImportType": "NEW_KEY_MATERIAL"},
        "IncorrectKeyMaterialException",
        "The key material is already associated with this KMS key; import it with ImportType "
        "EXISTING_KEY_MATERIAL.", None, "Import.ALREADY_ASSOCIATED"),
    Row("import-other-material-as-existing", "ImportKeyMaterial",
        lambda e: {"KeyId": e.imported, "ImportToken": e.imported_token,
                   "EncryptedKeyMaterial": e.imported_other_wrapped,
                   "ExpirationModel": "KEY_MATERIAL_DOES_NOT_EXPIRE", "ImportType": "EXISTING_KEY_MATERIAL"},
        "IncorrectKeyMaterialException",
        "The key material doesn't match the key material previously imported into this KMS key.",
        None, "Import.DIFFERENT_MATERIAL"),
    Row("import-second-pending", "ImportKeyMaterial",
        lambda e: {"KeyId": e.pending_rotation, "ImportToken": e.pending_rotation_token,
                   "EncryptedKeyMaterial": e.pending_rotation_third,
                   "ExpirationModel": "KEY_MATERIAL_DOES_NOT_EXPIRE", "ImportType": "NEW_KEY_MATERIAL"},
        "KMSInvalidStateException", "{pending_rotation_arn} already has key material in PENDING_ROTATION state.",
        None, "Import.SECOND_PENDING"),
    Row("import-type-on-hmac", "ImportKeyMaterial",
        lambda e: {"KeyId": e.external_hmac, "ImportToken": e.hmac_token, "EncryptedKeyMaterial": e.hmac_wrapped,
                   "ExpirationModel": "KEY_MATERIAL_DOES_NOT_EXPIRE", "ImportType": "NEW_KEY_MATERIAL"},
        "UnsupportedOperationException",
        "ImportType can be used only with symmetric encryption keys; {external_hmac_arn} is a "
        "HMAC_256 key.", None, "Import.SYMMETRIC_ONLY"),
    Row("delete-import-unknown-material", "DeleteImportedKeyMaterial",
        lambda e: {"KeyId": e.imported, "KeyMaterialId": "b" * 64}, "NotFoundException",
        "Key material " + "b" * 64 + " is not associated with {imported_arn}.", None,
        "NotFound.KEY_MATERIAL"),
    # -- aliases ----------------------------------------------------------------------------------------
    Row("alias-without-prefix", "CreateAlias", lambda e: {"AliasName": "fidelity", "TargetKeyId": e.sym},
        "ValidationException",
        'Alias must start with the prefix "alias/". Please see '
        "https://docs.aws.amazon.com/kms/latest/developerguide/kms-alias.html",
        LS("test_create_alias"), "Aliases.PREFIX"),
    Row("alias-reserved", "CreateAlias", lambda e: {"AliasName": "alias/aws/fidelity", "TargetKeyId": e.sym},
        "NotAuthorizedException",
        "Cannot create or change alias/aws/fidelity: the prefix 'alias/aws/' is reserved for AWS "
        "managed keys.", None, "Aliases.RESERVED"),
    Row("alias-exists", "CreateAlias", lambda e: {"AliasName": e.alias, "TargetKeyId": e.sym},
        "AlreadyExistsException", f"An alias with the name {ARN}:{{alias}} already exists",
        "github.com/cloudbees-oss/terraform-aws-cloudbees-ci-eks-addon/issues/66", "Aliases.ALREADY_EXISTS"),
    Row("alias-to-alias", "CreateAlias",
        lambda e: {"AliasName": e.alias + "-second", "TargetKeyId": e.alias}, "ValidationException",
        "Aliases must refer to keys. Not aliases", None, "Aliases.TARGET_IS_ALIAS"),
    Row("alias-missing-target", "CreateAlias",
        lambda e: {"AliasName": e.alias + "-third", "TargetKeyId": MISSING}, "NotFoundException",
        f"Key '{ARN}:key/{MISSING}' does not exist", NOT_FOUND, "NotFound.KEY"),
    Row("alias-target-pending-deletion", "CreateAlias",
        lambda e: {"AliasName": e.alias + "-fourth", "TargetKeyId": e.pending}, "KMSInvalidStateException",
        "{pending_arn} is pending deletion.", KEY_STATE_DOC, "KeyState.PENDING_DELETION"),
    Row("alias-colon", "CreateAlias", lambda e: {"AliasName": "alias/a:b", "TargetKeyId": e.sym},
        "ValidationException", "alias/a:b contains invalid characters for an alias", None,
        "Aliases.INVALID_CHARACTERS"),
    Row("alias-pattern", "CreateAlias", lambda e: {"AliasName": "alias/a b", "TargetKeyId": e.sym},
        "ValidationException",
        "1 validation error detected: Value 'alias/a b' at 'aliasName' failed to satisfy "
        "constraint: Member must satisfy regular expression pattern: ^[a-zA-Z0-9:/_-]+$", None,
        "Validation.MODEL"),
    Row("alias-too-many", "CreateAlias", lambda e: {"AliasName": e.alias + "-51", "TargetKeyId": e.aliased},
        "LimitExceededException", "A KMS key can have at most 50 aliases.", None, "Aliases.TOO_MANY"),
    Row("update-missing-alias", "UpdateAlias", lambda e: {"AliasName": "alias/fidelity-none", "TargetKeyId": e.sym},
        "NotFoundException", f"Alias {ARN}:alias/fidelity-none is not found.", ALIAS_NOT_FOUND,
        "NotFound.ALIAS"),
    Row("update-alias-to-pending-deletion", "UpdateAlias", lambda e: {"AliasName": e.alias, "TargetKeyId": e.pending},
        "KMSInvalidStateException", "{pending_arn} is pending deletion.", KEY_STATE_DOC,
        "KeyState.PENDING_DELETION"),
    Row("delete-missing-alias", "DeleteAlias", {"AliasName": "alias/fidelity-none"}, "NotFoundException",
        f"Alias {ARN}:alias/fidelity-none is not found.", ALIAS_NOT_FOUND, "NotFound.ALIAS"),
    Row("list-aliases-missing-key", "ListAliases", {"KeyId": MISSING}, "NotFoundException",
        f"Key '{ARN}:key/{MISSING}' does not exist", NOT_FOUND, "NotFound.KEY"),
    Row("list-aliases-bad-marker", "ListAliases", {"Marker": "garbage"}, "InvalidMarkerException",
        "Invalid marker", None, "Requests.INVALID_MARKER"),
    # keyledger's own encoding around a position no alias name can hold
    Row("list-aliases-forged-marker", "ListAliases", {"Marker": FORGED_MARKER},
        "InvalidMarkerException", "Invalid marker", None, "Requests.INVALID_MARKER"),
    Row("list-aliases-limit", "ListAliases", {"Limit": 101}, "ValidationException",
        "1 validation error detected: Value '101' at 'limit' failed to satisfy constraint: Member "
        "must have value less than or equal to 100", None, "Validation.CONSTRAINT"),
    # -- grants -----------------------------------------------------------------------------------------
    Row("grant-alias-arn", "CreateGrant",
        lambda e: {"KeyId": _alias_arn(e.alias), "GranteePrincipal": e.app_role, "Operations": ["Decrypt"]},
        "InvalidArnException", "Key Aliases are not supported for this operation.",
        "github.com/hashicorp/terraform/issues/20813 (KMS CreateGrant, relayed by Lambda)",
        "InvalidArn.ALIAS_NOT_SUPPORTED"),
    Row("grant-invalid-principal", "CreateGrant",
        lambda e: {"KeyId": e.sym, "GranteePrincipal": "not-a-principal", "Operations": ["Decrypt"]},
        "InvalidArnException", "ARN does not refer to a valid principal: not-a-principal",
        "KMS CreateGrant error relayed by Lambda (docs/compatibility.md, Grants)", "InvalidArn.PRINCIPAL"),
    Row("grant-no-operations", "CreateGrant",
        lambda e: {"KeyId": e.sym, "GranteePrincipal": e.app_role, "Operations": []},
        "ValidationException", "Operations must include at least one grant operation.", None,
        "Grants.NO_OPERATIONS"),
    Row("grant-sign-on-symmetric", "CreateGrant",
        lambda e: {"KeyId": e.sym, "GranteePrincipal": e.app_role, "Operations": ["Sign"]},
        "ValidationException",
        "The grant operation Sign is not supported for a KMS key with KeySpec SYMMETRIC_DEFAULT and "
        "KeyUsage ENCRYPT_DECRYPT.", None, "Grants.OPERATIONS_REFUSED"),
    Row("grant-constraint-on-rsa", "CreateGrant",
        lambda e: {"KeyId": e.rsa_enc, "GranteePrincipal": e.app_role, "Operations": ["Decrypt"],
                   "Constraints": {"EncryptionContextSubset": {"k": "v"}}},
        "ValidationException",
        "Encryption context grant constraints are not supported for a KMS key with KeySpec RSA_2048 "
        "and KeyUsage ENCRYPT_DECRYPT.", None, "Grants.CONSTRAINTS_REFUSED"),
    Row("grant-nine-pairs", "CreateGrant",
        lambda e: {"KeyId": e.sym, "GranteePrincipal": e.app_role, "Operations": ["Decrypt"],
                   "Constraints": {"EncryptionContextSubset": {f"k{i}": "v" for i in range(9)}}},
        "ValidationException", "EncryptionContextSubset can contain at most 8 encryption context pairs.",
        None, "Grants.CONSTRAINT_PAIRS"),
    Row("grant-long-value", "CreateGrant",
        lambda e: {"KeyId": e.sym, "GranteePrincipal": e.app_role, "Operations": ["Decrypt"],
                   "Constraints": {"EncryptionContextEquals": {"k": "v" * 385}}},
        "ValidationException", "Each value in EncryptionContextEquals can be at most 384 characters long.",
        None, "Grants.CONSTRAINT_VALUE"),
    Row("grant-service-principal", "CreateGrant",
        lambda e: {"KeyId": e.sym, "GranteeServicePrincipal": "dynamodb.amazonaws.com",
                   "Operations": ["Decrypt"]},
        "UnsupportedOperationException",
        "GranteeServicePrincipal is not supported by keyledger (it has no AWS service callers).", None,
        "Unsupported.SERVICE_PRINCIPAL"),
    Row("grant-source-arn", "CreateGrant",
        lambda e: {"KeyId": e.sym, "GranteePrincipal": e.app_role, "Operations": ["Decrypt"],
                   "Constraints": {"SourceArn": f"arn:aws:s3:{REGION}:{ACCOUNT_ID}:bucket"}},
        "UnsupportedOperationException", "The SourceArn grant constraint is not supported by keyledger.",
        None, "Unsupported.SOURCE_ARN"),
    Row("grant-invalid-token", "CreateGrant",
        lambda e: {"KeyId": e.sym, "GranteePrincipal": e.app_role, "Operations": ["Decrypt"],
                   "GrantTokens": ["not-a-token"]},
        "InvalidGrantTokenException", "The grant token is not valid.", None, "Grants.INVALID_GRANT_TOKEN"),
    Row("grant-no-grantee", "CreateGrant", lambda e: {"KeyId": e.sym, "Operations": ["Decrypt"]},
        "ValidationException",
        "1 validation error detected: Value null at 'granteePrincipal' failed to satisfy constraint: "
        "Member must not be null", None, "Validation.MISSING"),
    Row("grant-disabled", "CreateGrant",
        lambda e: {"KeyId": e.disabled, "GranteePrincipal": e.app_role, "Operations": ["Decrypt"]},
        "DisabledException", "{disabled_arn} is disabled.", STATE, "KeyState.DISABLED"),
    Row("grant-dry-run", "CreateGrant",
        lambda e: {"KeyId": e.sym, "GranteePrincipal": e.app_role, "Operations": ["Decrypt"], "DryRun": True},
        "DryRunOperationException", "The request would have succeeded, but the DryRun option is set.",
        DRY_RUN, "Requests.DRY_RUN"),
    Row("list-grants-invalid-id", "ListGrants", lambda e: {"KeyId": e.sym, "GrantId": "xyz"},
        "InvalidGrantIdException", "'xyz' is not a valid grant ID.", None, "Grants.INVALID_GRANT_ID"),
    Row("list-grants-limit", "ListGrants", lambda e: {"KeyId": e.sym, "Limit": 101}, "ValidationException",
        "1 validation error detected: Value '101' at 'limit' failed to satisfy constraint: Member "
        "must have value less than or equal to 100", None, "Validation.CONSTRAINT"),
    Row("list-grants-bad-marker", "ListGrants", lambda e: {"KeyId": e.sym, "Marker": "garbage"},
        "InvalidMarkerException", "Invalid marker", None, "Requests.INVALID_MARKER"),
    Row("list-grants-missing-key", "ListGrants", {"KeyId": MISSING}, "NotFoundException",
        f"Key '{ARN}:key/{MISSING}' does not exist", NOT_FOUND, "NotFound.KEY"),
    Row("retire-nothing-named", "RetireGrant", lambda e: {"KeyId": e.sym}, "ValidationException",
        "Specify either the GrantToken, or both the KeyId and the GrantId, of the grant to retire.",
        None, "Grants.RETIRE_WHICH"),
    Row("retire-token-mismatch", "RetireGrant",
        lambda e: {"GrantToken": e.grant_token, "GrantId": "0" * 64}, "ValidationException",
        "The GrantToken names a different grant than the KeyId and GrantId.", None, "Grants.RETIRE_MISMATCH"),
    Row("retire-unknown-grant", "RetireGrant", lambda e: {"KeyId": e.sym, "GrantId": "0" * 64},
        "NotFoundException", "Grant ID " + "0" * 64 + " not found for key {sym_arn}.", None, "NotFound.GRANT"),
    Row("retire-arn-other-region", "RetireGrant",
        lambda e: {"KeyId": e.sym_arn.replace(REGION, "eu-west-1"), "GrantId": "0" * 64},
        "NotFoundException", "Invalid arn eu-west-1", LS("test_get_key_in_different_region"),
        "NotFound.INVALID_ARN_REGION"),
    Row("retire-dry-run", "RetireGrant", lambda e: {"KeyId": e.sym, "GrantId": e.grant_id, "DryRun": True},
        "DryRunOperationException", "The request would have succeeded, but the DryRun option is set.",
        DRY_RUN, "Requests.DRY_RUN"),
    Row("revoke-invalid-id", "RevokeGrant", lambda e: {"KeyId": e.sym, "GrantId": "xyz"},
        "InvalidGrantIdException", "'xyz' is not a valid grant ID.", None, "Grants.INVALID_GRANT_ID"),
    Row("revoke-unknown-grant", "RevokeGrant", lambda e: {"KeyId": e.sym, "GrantId": "0" * 64},
        "NotFoundException", "Grant ID " + "0" * 64 + " not found for key {sym_arn}.", None, "NotFound.GRANT"),
    Row("revoke-dry-run", "RevokeGrant", lambda e: {"KeyId": e.sym, "GrantId": e.grant_id, "DryRun": True},
        "DryRunOperationException", "The request would have succeeded, but the DryRun option is set.",
        DRY_RUN, "Requests.DRY_RUN"),
    Row("retirable-both", "ListRetirableGrants",
        lambda e: {"RetiringPrincipal": e.app_role, "RetiringServicePrincipal": "dynamodb.amazonaws.com"},
        "ValidationException",
        "You must specify either RetiringPrincipal or RetiringServicePrincipal, but not both.", None,
        "Grants.RETIRING_BOTH"),
    Row("retirable-none", "ListRetirableGrants", {}, "ValidationException",
        "1 validation error detected: Value null at 'retiringPrincipal' failed to satisfy "
        "constraint: Member must not be null", None, "Validation.MISSING"),
    Row("retirable-other-account", "ListRetirableGrants",
        {"RetiringPrincipal": "arn:aws:iam::999999999999:root"}, "InvalidArnException",
        "arn:aws:iam::999999999999:root is not a principal in account 111122223333: "
        "ListRetirableGrants lists the grants of a principal in your account.", None,
        "InvalidArn.NOT_IN_ACCOUNT"),
    # -- key policies, usage --------------------------------------------------------------------------
    Row("get-policy-other-name", "GetKeyPolicy", lambda e: {"KeyId": e.sym, "PolicyName": "other"},
        "NotFoundException", "No such policy exists", None, "NotFound.POLICY"),
    Row("put-policy-other-name", "PutKeyPolicy",
        lambda e: {"KeyId": e.sym, "PolicyName": "other", "Policy": e.default_policy},
        "NotFoundException", "No such policy exists", None, "NotFound.POLICY"),
    Row("put-policy-lockout", "PutKeyPolicy",
        lambda e: {"KeyId": e.sym, "Policy": json.dumps({"Version": "2012-10-17", "Statement": [{
            "Effect": "Allow", "Principal": {"AWS": f"arn:aws:iam::{ACCOUNT_ID}:role/app"},
            "Action": "kms:Encrypt", "Resource": "*"}]})},
        "MalformedPolicyDocumentException",
        "The new key policy will not allow you to update the key policy in the future.",
        "github.com/widdix/aws-cf-templates/issues/259"),
    Row("put-policy-pending-deletion", "PutKeyPolicy",
        lambda e: {"KeyId": e.pending, "Policy": e.default_policy}, None, None,
        None),  # keyledger's key-state table allows it (domain/key_states.py)
    Row("last-usage-missing", "GetKeyLastUsage", {"KeyId": MISSING}, "NotFoundException",
        f"Key '{ARN}:key/{MISSING}' does not exist", NOT_FOUND, "NotFound.KEY"),
    Row("last-usage-alias", "GetKeyLastUsage", lambda e: {"KeyId": e.alias}, "NotFoundException",
        "Invalid keyId '{alias}'", None, "NotFound.INVALID_KEY_ID"),
    # -- the protocol and authentication ---------------------------------------------------------------
    Row("protocol-unknown-operation", "MakeCoffee", {}, "UnknownOperationException",
        "Unknown operation MakeCoffee.", None, "Protocol.UNKNOWN_OPERATION"),
    Row("protocol-no-target", "-", {}, "UnknownOperationException",
        "Missing or invalid X-Amz-Target header.", None, "Protocol.UNKNOWN_TARGET",
        send=lambda server, env, row: _signed(server.url, None, b"{}")),
    Row("protocol-content-type", "-", {}, "UnsupportedMediaTypeException",
        "Content-Type must be application/x-amz-json-1.1, not 'text/plain'.", None, "Protocol.MEDIA_TYPE",
        status=415, send=_raw_body(b"{}", "TrentService.CreateKey", content_type="text/plain")),
    Row("protocol-not-json", "-", {}, "SerializationException", "The request body is not valid JSON.",
        None, "Protocol.NOT_JSON", send=_raw_body(b"{not json")),
    Row("protocol-not-an-object", "-", {}, "SerializationException",
        "The request body must be a JSON object.", None, "Protocol.NOT_AN_OBJECT", send=_raw_body(b"[1]")),
    Row("protocol-wrong-type", "-", {}, "SerializationException",
        "INT_VALUE can not be converted to a String", None, "Protocol.WRONG_TYPE",
        send=_raw_body(b'{"KeyId": 5}')),
    Row("protocol-bad-base64", "-", {}, "SerializationException", "Invalid base64 at 'ciphertextBlob'",
        None, "Protocol.BAD_BASE64", send=_raw_body(b'{"CiphertextBlob": "***"}', "TrentService.Decrypt")),
    Row("protocol-too-large", "-", {}, "RequestEntityTooLargeException",
        "Request bodies are limited to 524288 bytes.", None, "Protocol.TOO_LARGE", status=413,
        send=_too_large),
    Row("protocol-not-implemented", "DescribeCustomKeyStores", {}, "UnsupportedOperationException",
        "keyledger does not implement DescribeCustomKeyStores yet.", None, "Unsupported.OPERATION"),
    Row("auth-unsigned", "-", {}, "MissingAuthenticationTokenException",
        "Request is missing Authentication Token", None, send=_unsigned),
    Row("auth-unknown-access-key", "-", {}, "UnrecognizedClientException",
        "The security token included in the request is invalid.",
        "github.com/BerriAI/litellm/issues/6637 (KMS Encrypt)", send=_unknown_access_key),
    Row("auth-wrong-secret", "-", {}, "InvalidSignatureException",
        "The request signature we calculated does not match the signature you provided. Check your "
        "AWS Secret Access Key and signing method. Consult the service documentation for details.",
        "github.com/teralytics/prometheus-ecs-discovery/issues/7", send=_wrong_secret),
    Row("auth-region-not-served", "ListKeys", {}, "InvalidSignatureException",
        "Credential should be scoped to a valid region, not 'xx-fake-1'. ",
        "github.com/aws/aws-sdk-ruby/issues/508", region="xx-fake-1"),
]

#: catalogue entries no row here reaches, and why
UNREACHABLE = {
    "KeyState.OTHER": "no cell of keyledger's key-state table answers KMSInvalidStateException "
                      "for a state without a text of its own (Enabled, Disabled; Unavailable "
                      "keys keyledger has none)",
    "MultiRegion.REGION_NOT_SERVED": "needs a node with --regions and --peers: the two-node "
                                     "tests check it (tests/e2e/test_regions_nodes.py)",
    "KeyState.CREATING": "transient: in one process the replica Region builds the replica within "
                         "the ReplicateKey request (tests/integration/test_multi_region.py)",
    "KeyState.UPDATING": "transient: in one process the new primary confirms within the "
                         "UpdatePrimaryRegion request (tests/integration/test_multi_region.py)",
    "KeyState.UNAVAILABLE": "Unavailable is a custom key store state; keyledger has none",
    "KeyState.MATERIAL_GONE": "only while a deletion completes (a race: tests/integration)",
    "Ciphertext.MATERIAL_DELETED": "needs a key whose current material is another version than the "
                                   "deleted one (tests/e2e/test_imported_material.py)",
    "Requests.CONFLICT": "a concurrent write that loses ten retries",
    "Requests.INTERNAL": "a bug (tests/unit/test_protocol_fuzz.py asserts it never happens)",
    "Grants.CHILD_GRANT": "needs a grantee with credentials (tests/integration/test_grants_ledger.py)",
    "Grants.NOT_AUTHORIZED": "needs another principal (tests/integration/test_grants_ledger.py)",
    "Grants.TOO_MANY": "50,000 grants per key (tests/unit/test_grants.py)",
    "Grants.UNKNOWN_OPERATION": "the model's enum refuses an unknown grant operation first",
}

#: rows of the clock section at the end (test_fidelity_on_the_clock), by catalogue entry
CLOCK_ENTRIES = {
    "Rotation.AUTOMATIC_ROTATION_DUE": None,  # the model's description; not confirmed
    "Import.EXPIRED_TOKEN": None,
}


# -- the environment the rows name ------------------------------------------------------------------


@pytest.fixture(scope="module")
def server(store, server_factory):
    """This module's own server on each store (its clock moves at the end)."""
    srv = server_factory("fidelity", store=store)
    yield srv
    srv.cleanup()


def _wrap(public_der: bytes, material: bytes) -> bytes:
    public = serialization.load_der_public_key(public_der)
    return public.encrypt(material, padding.OAEP(mgf=padding.MGF1(hashes.SHA256()),
                                                 algorithm=hashes.SHA256(), label=None))


def _import_parameters(kms, key_id: str) -> tuple[bytes, bytes]:
    params = kms.get_parameters_for_import(KeyId=key_id, WrappingAlgorithm="RSAES_OAEP_SHA_256",
                                           WrappingKeySpec="RSA_2048")
    return params["ImportToken"], params["PublicKey"]


def _import(kms, key_id: str, material: bytes, **extra) -> None:
    token, public = _import_parameters(kms, key_id)
    kms.import_key_material(KeyId=key_id, ImportToken=token, EncryptedKeyMaterial=_wrap(public, material),
                            ExpirationModel="KEY_MATERIAL_DOES_NOT_EXPIRE", **extra)


def _blob(key_id: str, material_id: bytes) -> bytes:
    """keyledger's ciphertext layout (docs/architecture.md) for a key and material of our choice."""
    kid = key_id.encode()
    return b"KL\x01" + bytes([len(kid)]) + kid + material_id + os.urandom(12) + os.urandom(32)


@pytest.fixture(scope="module")
def env(server):
    kms = server.kms()
    e = SimpleNamespace()

    def key(name: str, **kwargs) -> str:
        md = kms.create_key(Description=f"fidelity {name}", **kwargs)["KeyMetadata"]
        setattr(e, name, md["KeyId"])
        setattr(e, f"{name}_arn", md["Arn"])
        return md["KeyId"]

    key("sym")
    key("sym2")
    key("disabled")
    key("pending")
    key("external", Origin="EXTERNAL")
    key("rsa_enc", KeySpec="RSA_2048", KeyUsage="ENCRYPT_DECRYPT")
    key("rsa_sign", KeySpec="RSA_2048", KeyUsage="SIGN_VERIFY")
    key("ecc_sign", KeySpec="ECC_NIST_P256", KeyUsage="SIGN_VERIFY")
    key("ecdh", KeySpec="ECC_NIST_P256", KeyUsage="KEY_AGREEMENT")
    key("hmac256", KeySpec="HMAC_256", KeyUsage="GENERATE_VERIFY_MAC")
    key("hmac224", KeySpec="HMAC_224", KeyUsage="GENERATE_VERIFY_MAC")
    key("ed25519", KeySpec="ECC_NIST_EDWARDS25519", KeyUsage="SIGN_VERIFY")
    key("mldsa", KeySpec="ML_DSA_44", KeyUsage="SIGN_VERIFY")
    key("mlkem", KeySpec="ML_KEM_768", KeyUsage="ENCAPSULATE_DECAPSULATE")
    key("rotated")
    key("aliased")
    key("tagged", Tags=[{"TagKey": f"t{i}", "TagValue": "v"} for i in range(50)])
    key("imported", Origin="EXTERNAL")
    key("pending_rotation", Origin="EXTERNAL")
    key("external_hmac", Origin="EXTERNAL", KeySpec="HMAC_256", KeyUsage="GENERATE_VERIFY_MAC")

    for name in ("mrk", "mrk_deleting"):  # multi-Region primaries, each with a replica in WEST
        key(name, MultiRegion=True)
        kms.replicate_key(KeyId=getattr(e, name), ReplicaRegion=WEST)
    e.mrk_west_arn = e.mrk_arn.replace(REGION, WEST)
    kms.schedule_key_deletion(KeyId=e.mrk_deleting, PendingWindowInDays=7)
    # an imported-material set: the same material in both Regions, then new material imported
    # into the primary only (pending in the replica Region)
    west = server.kms(WEST)
    key("mrk_external", MultiRegion=True, Origin="EXTERNAL")
    e.mrk_external_west_arn = e.mrk_external_arn.replace(REGION, WEST)
    shared_material = os.urandom(32)
    _import(kms, e.mrk_external, shared_material)
    kms.replicate_key(KeyId=e.mrk_external, ReplicaRegion=WEST)
    _import(west, e.mrk_external, shared_material)
    _import(kms, e.mrk_external, os.urandom(32), ImportType="NEW_KEY_MATERIAL")
    e.mrk_external_pending = [r["KeyMaterialId"] for r in kms.list_key_rotations(
        KeyId=e.mrk_external, IncludeKeyMaterial="ALL_KEY_MATERIAL")["Rotations"]
        if r["KeyMaterialState"] == "PENDING_MULTI_REGION_IMPORT_AND_ROTATION"][0]
    e.mrk_external_west_token, west_public = _import_parameters(west, e.mrk_external)
    e.mrk_external_west_wrapped = _wrap(west_public, os.urandom(32))

    suffix = uuid.uuid4().hex[:8]
    e.alias = f"alias/fidelity-{suffix}"
    kms.create_alias(AliasName=e.alias, TargetKeyId=e.sym)
    e.disabled_alias = f"alias/fidelity-disabled-{suffix}"
    kms.create_alias(AliasName=e.disabled_alias, TargetKeyId=e.disabled)
    for n in range(50):
        kms.create_alias(AliasName=f"{e.alias}-aliased-{n}", TargetKeyId=e.aliased)

    e.ciphertext = kms.encrypt(KeyId=e.sym, Plaintext=b"fidelity",
                               EncryptionContext={"purpose": "fidelity"})["CiphertextBlob"]
    tampered = bytearray(e.ciphertext)
    tampered[-1] ^= 1
    e.tampered = bytes(tampered)
    e.data_key_blob = kms.generate_data_key(KeyId=e.sym, KeySpec="AES_256",
                                            EncryptionContext={"k": "v"})["CiphertextBlob"]
    e.foreign_blob = _blob(str(uuid.uuid4()), os.urandom(32))
    e.unknown_material_blob = _blob(e.sym, os.urandom(32))
    e.disabled_blob = kms.encrypt(KeyId=e.disabled, Plaintext=b"before")["CiphertextBlob"]
    kms.disable_key(KeyId=e.disabled)
    kms.schedule_key_deletion(KeyId=e.pending, PendingWindowInDays=30)
    e.rsa_blob = kms.encrypt(KeyId=e.rsa_enc, Plaintext=b"x",
                             EncryptionAlgorithm="RSAES_OAEP_SHA_256")["CiphertextBlob"]

    e.signature = kms.sign(KeyId=e.ecc_sign, Message=b"message",
                           SigningAlgorithm="ECDSA_SHA_256")["Signature"]
    e.other_signature = kms.sign(KeyId=e.ecc_sign, Message=b"another message",
                                 SigningAlgorithm="ECDSA_SHA_256")["Signature"]
    e.mac = kms.generate_mac(KeyId=e.hmac256, Message=b"some important message",
                             MacAlgorithm="HMAC_SHA_256")["Mac"]
    der = serialization.Encoding.DER, serialization.PublicFormat.SubjectPublicKeyInfo
    e.peer_public = ec.generate_private_key(ec.SECP256R1()).public_key().public_bytes(*der)
    e.p384_public = ec.generate_private_key(ec.SECP384R1()).public_key().public_bytes(*der)
    e.kem_ciphertext = kms.encapsulate(KeyId=e.mlkem, EncapsulationAlgorithm="ML_KEM")[
        "SharedSecretCiphertextBlob"]

    for _ in range(25):
        kms.rotate_key_on_demand(KeyId=e.rotated)

    # imported material: a token and wrapped material for the external key (left pending import),
    # a key with material (no pending rotation), a key with material pending rotation
    e.token, public = _import_parameters(kms, e.external)
    e.wrapped = _wrap(public, os.urandom(32))
    e.wrapped_short = _wrap(public, os.urandom(16))
    material = os.urandom(32)
    _import(kms, e.imported, material)
    e.imported_token, imported_public = _import_parameters(kms, e.imported)
    e.imported_rewrapped = _wrap(imported_public, material)
    e.imported_other_wrapped = _wrap(imported_public, os.urandom(32))
    _import(kms, e.pending_rotation, os.urandom(32))
    _import(kms, e.pending_rotation, os.urandom(32), ImportType="NEW_KEY_MATERIAL")
    e.pending_rotation_token, pending_public = _import_parameters(kms, e.pending_rotation)
    e.pending_rotation_third = _wrap(pending_public, os.urandom(32))
    e.hmac_token, hmac_public = _import_parameters(kms, e.external_hmac)
    e.hmac_wrapped = _wrap(hmac_public, os.urandom(32))

    now = kms.describe_key(KeyId=e.sym)["KeyMetadata"]["CreationDate"].timestamp()
    e.in_a_month = now + 30 * 86400
    e.in_two_years = now + 730 * 86400

    e.app_role = f"arn:aws:iam::{ACCOUNT_ID}:role/app"
    grant = kms.create_grant(KeyId=e.sym, GranteePrincipal=e.app_role, Operations=["Decrypt"])
    e.grant_id, e.grant_token = grant["GrantId"], grant["GrantToken"]
    e.default_policy = kms.get_key_policy(KeyId=e.sym, PolicyName="default")["Policy"]
    return e


def _send(server, env, row: Row) -> httpx.Response:
    if row.send is not None:
        return row.send(server, env, row)
    return raw_kms_call(server.url, row.operation, _wire(_params(row, env)), row.region, timeout=60)


@pytest.mark.parametrize("row", ROWS, ids=[r.id for r in ROWS])
def test_fidelity(server, env, row: Row):
    response = _send(server, env, row)
    body = response.json()
    if row.code is None:
        assert response.status_code == 200, response.text[:500]
        assert "__type" not in body
        return
    assert (response.status_code, body.get("__type")) == (row.status, row.code), response.text[:500]
    assert set(body) <= {"__type", "message"}, body
    expected = row.expected_message(env)
    if expected is None:
        assert "message" not in body, body  # AWS sends this error without a message member
    else:
        assert body.get("message") == expected


def test_fidelity_on_the_clock(server, env):
    """The rows that move the server's clock (last, so the table above sees an unmoved clock)."""
    kms = server.kms()
    # ImportKeyMaterial with parameters older than 24 hours (the token's lifetime)
    external = kms.create_key(Origin="EXTERNAL")["KeyMetadata"]["KeyId"]
    token, public = _import_parameters(kms, external)
    server.advance_clock(24 * 3600 + 60)
    response = raw_kms_call(server.url, "ImportKeyMaterial", _wire({
        "KeyId": external, "ImportToken": token, "EncryptedKeyMaterial": _wrap(public, os.urandom(32)),
        "ExpirationModel": "KEY_MATERIAL_DOES_NOT_EXPIRE"}))
    assert (response.status_code, response.json()) == (400, {
        "__type": "ExpiredImportTokenException",
        "message": "The import token has expired. Use GetParametersForImport to get a new one.",
    })
    # RotateKeyOnDemand while an automatic rotation is due within 20 minutes: ConflictException
    key_id = kms.create_key()["KeyMetadata"]["KeyId"]
    kms.enable_key_rotation(KeyId=key_id, RotationPeriodInDays=90)
    assert kms.rotate_key_on_demand(KeyId=key_id)["KeyId"]  # well before it: allowed
    server.advance_clock(90 * 86400 - 10 * 60)
    response = raw_kms_call(server.url, "RotateKeyOnDemand", {"KeyId": key_id})
    assert (response.status_code, response.json()) == (400, {
        "__type": "ConflictException",
        "message": "The request was rejected because an automatic rotation of this key is currently "
                   "in progress or scheduled to begin within the next 20 minutes.",
    })


# -- the table itself -------------------------------------------------------------------------------


def test_every_catalogue_entry_has_a_row():
    covered = {r.entry for r in ROWS if r.entry} | set(UNREACHABLE) | set(CLOCK_ENTRIES)
    answered = {name for name, text in CATALOGUE.items() if text.answered}
    assert answered - covered == set()
    assert covered - set(CATALOGUE) == set()  # no row names an entry that does not exist


def test_rows_agree_with_the_catalogue():
    """A row's code is its entry's code, and a row sourced from AWS exercises a sourced entry or
    a text kept outside the catalogue (policy, authentication)."""
    for row in ROWS:
        if row.entry is None:
            continue
        text = CATALOGUE[row.entry]
        assert row.code == text.code, row.id
        assert (row.message is None) == (text.template is None), row.id


def test_the_table_is_big_enough():
    assert len(ROWS) + len(CLOCK_ENTRIES) >= 150
    assert len({r.id for r in ROWS}) == len(ROWS)
