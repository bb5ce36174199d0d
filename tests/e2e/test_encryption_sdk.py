"""The AWS Encryption SDK (4.x, master-key-provider API) talking to keyledger as its KMS."""

from __future__ import annotations

import os

import aws_encryption_sdk
import boto3
import botocore.session
import pytest
from aws_encryption_sdk import CommitmentPolicy, StrictAwsKmsMasterKeyProvider
from aws_encryption_sdk.exceptions import DecryptKeyError

pytestmark = pytest.mark.e2e

CTX = {"tenant": "tenant-42", "purpose": "esdk-e2e"}


class KmsCallRecorder:
    """Records every KMS call the SDK makes (operation, error code) via botocore events."""

    def __init__(self) -> None:
        self.calls: list[tuple[str, str | None]] = []

    def __call__(self, http_response, parsed, model, **kwargs):
        self.calls.append((model.name, (parsed.get("Error") or {}).get("Code")))

    def clear(self) -> None:
        self.calls.clear()

    def errors(self, operation: str) -> list[str | None]:
        return [code for op, code in self.calls if op == operation]


@pytest.fixture(scope="module")
def sdk_env(shared_server, tmp_path_factory, e2e):
    """A botocore session whose KMS clients point at keyledger (endpoint_url in the profile)."""
    cfg_dir = tmp_path_factory.mktemp("esdk-aws")
    config = cfg_dir / "config"
    config.write_text(
        "[profile keyledger-e2e]\n"
        "region = us-east-1\n"
        f"endpoint_url = {shared_server.url}\n"
        f"aws_access_key_id = {e2e.ROOT_ACCESS_KEY_ID}\n"
        f"aws_secret_access_key = {e2e.ROOT_SECRET_ACCESS_KEY}\n"
        "retry_mode = standard\n"
        "max_attempts = 1\n"
    )
    session = botocore.session.Session()
    session.set_config_variable("config_file", str(config))
    session.set_config_variable("credentials_file", os.devnull)
    session.set_config_variable("profile", "keyledger-e2e")
    recorder = KmsCallRecorder()
    session.register("after-call.kms", recorder)

    probe = boto3.session.Session(botocore_session=session).client("kms", region_name="us-east-1")
    assert probe.meta.endpoint_url == shared_server.url

    client = aws_encryption_sdk.EncryptionSDKClient(
        commitment_policy=CommitmentPolicy.REQUIRE_ENCRYPT_REQUIRE_DECRYPT
    )
    return session, recorder, client


def _provider(session, *arns):
    return StrictAwsKmsMasterKeyProvider(key_ids=list(arns), botocore_session=session)


@pytest.fixture()
def sdk_key(kms):
    return kms.create_key(Description="esdk wrapping key")["KeyMetadata"]


def test_one_megabyte_round_trip_with_encryption_context(sdk_env, sdk_key, kms):
    session, recorder, client = sdk_env
    provider = _provider(session, sdk_key["Arn"])
    message = os.urandom(1024 * 1024)
    recorder.clear()

    ciphertext, enc_header = client.encrypt(source=message, key_provider=provider, encryption_context=CTX)
    assert message[:4096] not in ciphertext
    assert recorder.errors("GenerateDataKey") == [None]

    edks = list(enc_header.encrypted_data_keys)
    assert len(edks) == 1
    assert edks[0].key_provider.provider_id == "aws-kms"
    assert edks[0].key_provider.key_info == sdk_key["Arn"].encode()

    plaintext, dec_header = client.decrypt(source=ciphertext, key_provider=_provider(session, sdk_key["Arn"]))
    assert plaintext == message
    assert recorder.errors("Decrypt") == [None]
    assert CTX.items() <= dec_header.encryption_context.items()
    assert dec_header.encryption_context == enc_header.encryption_context

    # The EDK is a plain KMS ciphertext bound to the message's full encryption context.
    edk_blob = edks[0].encrypted_data_key
    raw = kms.decrypt(CiphertextBlob=edk_blob, EncryptionContext=dict(enc_header.encryption_context))
    assert raw["KeyId"] == sdk_key["Arn"]
    assert len(raw["Plaintext"]) == enc_header.algorithm.kdf_input_len


def test_kms_rejects_data_key_under_wrong_context(sdk_env, sdk_key, kms, aws_error):
    session, _, client = sdk_env
    ciphertext, header = client.encrypt(
        source=b"context-bound secret", key_provider=_provider(session, sdk_key["Arn"]), encryption_context=CTX
    )
    edk_blob = next(iter(header.encrypted_data_keys)).encrypted_data_key
    full_ctx = dict(header.encryption_context)

    wrong_value = {**full_ctx, "tenant": "tenant-43"}
    extra_pair = {**full_ctx, "extra": "pair"}
    only_user_ctx = dict(CTX)  # lacks the SDK's aws-crypto-public-key entry
    for ctx in (wrong_value, extra_pair, only_user_ctx, {}):
        with aws_error("InvalidCiphertextException"):
            if ctx:
                kms.decrypt(CiphertextBlob=edk_blob, EncryptionContext=ctx)
            else:
                kms.decrypt(CiphertextBlob=edk_blob)


def test_tampered_stored_context_is_rejected_by_kms(sdk_env, sdk_key):
    """Change a context value inside the message header: KMS must refuse the data key."""
    session, recorder, client = sdk_env
    ciphertext, _ = client.encrypt(
        source=b"do not trust the header", key_provider=_provider(session, sdk_key["Arn"]),
        encryption_context=CTX,
    )
    assert ciphertext.count(b"tenant-42") == 1
    tampered = ciphertext.replace(b"tenant-42", b"tenant-43")

    recorder.clear()
    with pytest.raises(DecryptKeyError):
        client.decrypt(source=tampered, key_provider=_provider(session, sdk_key["Arn"]))
    # the rejection came from KMS (the SDK would only check the header MAC after KMS succeeded)
    assert recorder.errors("Decrypt") == ["InvalidCiphertextException"]

    # untampered message still decrypts
    plaintext, _ = client.decrypt(source=ciphertext, key_provider=_provider(session, sdk_key["Arn"]))
    assert plaintext == b"do not trust the header"


def test_disabled_wrapping_key_blocks_decryption(sdk_env, sdk_key, kms):
    session, recorder, client = sdk_env
    ciphertext, _ = client.encrypt(
        source=b"locked away", key_provider=_provider(session, sdk_key["Arn"]), encryption_context=CTX
    )
    kms.disable_key(KeyId=sdk_key["KeyId"])
    try:
        recorder.clear()
        with pytest.raises(DecryptKeyError):
            client.decrypt(source=ciphertext, key_provider=_provider(session, sdk_key["Arn"]))
        assert recorder.errors("Decrypt") == ["DisabledException"]
    finally:
        kms.enable_key(KeyId=sdk_key["KeyId"])
    plaintext, _ = client.decrypt(source=ciphertext, key_provider=_provider(session, sdk_key["Arn"]))
    assert plaintext == b"locked away"


def test_multiple_wrapping_keys(sdk_env, kms):
    """GenerateDataKey under the first key, Encrypt of the same data key under the second."""
    session, recorder, client = sdk_env
    k1 = kms.create_key(Description="esdk primary")["KeyMetadata"]
    k2 = kms.create_key(Description="esdk secondary")["KeyMetadata"]
    recorder.clear()
    ciphertext, header = client.encrypt(
        source=b"two keys, one message" * 100, key_provider=_provider(session, k1["Arn"], k2["Arn"]),
        encryption_context=CTX,
    )
    assert recorder.errors("GenerateDataKey") == [None]
    assert recorder.errors("Encrypt") == [None]
    assert {e.key_provider.key_info for e in header.encrypted_data_keys} == {
        k1["Arn"].encode(), k2["Arn"].encode()
    }

    # decryptable with either key alone
    for arn in (k1["Arn"], k2["Arn"]):
        plaintext, _ = client.decrypt(source=ciphertext, key_provider=_provider(session, arn))
        assert plaintext == b"two keys, one message" * 100

    # both EDKs wrap the same data key
    ctx = dict(header.encryption_context)
    dks = {kms.decrypt(CiphertextBlob=e.encrypted_data_key, EncryptionContext=ctx)["Plaintext"]
           for e in header.encrypted_data_keys}
    assert len(dks) == 1

    # a strict provider for an unrelated key cannot decrypt
    other = kms.create_key(Description="esdk unrelated")["KeyMetadata"]
    with pytest.raises(DecryptKeyError):
        client.decrypt(source=ciphertext, key_provider=_provider(session, other["Arn"]))
