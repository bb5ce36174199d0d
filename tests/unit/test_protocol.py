"""api/protocol.py: request validation against botocore's KMS model, with AWS's messages."""

from __future__ import annotations

import base64
import json
from datetime import UTC, datetime

import pytest

from api.protocol import (
    SerializationException,
    encode_error,
    encode_response,
    operation_names,
    parse_credential_scope,
    parse_request,
    service_model,
)
from domain.errors import KmsError, ValidationException

KEY = "1234abcd-12ab-34cd-56ef-1234567890ab"


def b64(data: bytes) -> str:
    return base64.b64encode(data).decode()


def body(**fields) -> bytes:
    return json.dumps(fields).encode()


def validation_message(operation: str, payload: bytes) -> str:
    with pytest.raises(ValidationException) as info:
        parse_request(operation, payload)
    assert type(info.value) is ValidationException
    assert info.value.code == "ValidationException"
    return info.value.message


def serialization_error(operation: str, payload: bytes) -> SerializationException:
    with pytest.raises(SerializationException) as info:
        parse_request(operation, payload)
    assert info.value.code == "SerializationException"
    assert info.value.status == 400
    return info.value


# -- valid requests ----------------------------------------------------------------------------------


def test_valid_encrypt_decodes_blob_and_keeps_strings():
    params = parse_request(
        "Encrypt",
        body(KeyId=KEY, Plaintext=b64(b"hello"), EncryptionContext={"a": "1"}, GrantTokens=["t"],
             EncryptionAlgorithm="SYMMETRIC_DEFAULT", DryRun=False),
    )
    assert params == {
        "KeyId": KEY, "Plaintext": b"hello", "EncryptionContext": {"a": "1"}, "GrantTokens": ["t"],
        "EncryptionAlgorithm": "SYMMETRIC_DEFAULT", "DryRun": False,
    }


def test_plaintext_of_exactly_4096_bytes_is_accepted():
    params = parse_request("Encrypt", body(KeyId=KEY, Plaintext=b64(b"\x00" * 4096)))
    assert params["Plaintext"] == b"\x00" * 4096


@pytest.mark.parametrize("payload", [b"", b"   ", b"{}", b"\n"])
def test_empty_body_is_an_empty_object(payload):
    assert parse_request("ListKeys", payload) == {}


def test_unknown_members_are_ignored_and_nulls_are_absent():
    params = parse_request("Encrypt", body(KeyId=KEY, Plaintext=b64(b"x"), Nope=1, DryRun=None))
    assert params == {"KeyId": KEY, "Plaintext": b"x"}


def test_nested_structures_are_validated():
    params = parse_request("CreateKey", body(Tags=[{"TagKey": "k", "TagValue": "v"}]))
    assert params == {"Tags": [{"TagKey": "k", "TagValue": "v"}]}


def test_every_model_operation_accepts_or_refuses_an_empty_object_cleanly():
    for operation in sorted(operation_names()):
        try:
            result = parse_request(operation, b"{}")
        except (ValidationException, SerializationException) as error:
            assert error.message
        else:
            assert isinstance(result, dict)


# -- validation messages -----------------------------------------------------------------------------


def test_missing_required_member():
    message = validation_message("DescribeKey", b"{}")
    assert message == (
        "1 validation error detected: Value null at 'keyId' failed to satisfy constraint: "
        "Member must not be null"
    )


def test_explicit_null_is_missing():
    message = validation_message("DescribeKey", b'{"KeyId": null}')
    assert message == (
        "1 validation error detected: Value null at 'keyId' failed to satisfy constraint: "
        "Member must not be null"
    )


def test_plaintext_too_long_exact_message():
    message = validation_message("Encrypt", body(KeyId=KEY, Plaintext=b64(b"x" * 4097)))
    assert message == (
        "1 validation error detected: Value at 'plaintext' failed to satisfy constraint: "
        "Member must have length less than or equal to 4096"
    )


def test_empty_plaintext_message_hides_value():
    message = validation_message("Encrypt", body(KeyId=KEY, Plaintext=""))
    assert message == (
        "1 validation error detected: Value at 'plaintext' failed to satisfy constraint: "
        "Member must have length greater than or equal to 1"
    )


def test_enum_violation_message():
    enum = service_model().shape_for("EncryptionAlgorithmSpec").enum
    message = validation_message(
        "Encrypt", body(KeyId=KEY, Plaintext=b64(b"x"), EncryptionAlgorithm="ROT13")
    )
    assert message == (
        "1 validation error detected: Value 'ROT13' at 'encryptionAlgorithm' failed to satisfy "
        f"constraint: Member must satisfy enum value set: [{', '.join(enum)}]"
    )
    assert "SYMMETRIC_DEFAULT" in message


def test_integer_range_messages():
    assert validation_message("GenerateDataKey", body(KeyId=KEY, NumberOfBytes=1025)) == (
        "1 validation error detected: Value '1025' at 'numberOfBytes' failed to satisfy "
        "constraint: Member must have value less than or equal to 1024"
    )
    assert validation_message("GenerateDataKey", body(KeyId=KEY, NumberOfBytes=0)) == (
        "1 validation error detected: Value '0' at 'numberOfBytes' failed to satisfy "
        "constraint: Member must have value greater than or equal to 1"
    )


def test_string_length_message_shows_value():
    assert validation_message("DescribeKey", body(KeyId="")) == (
        "1 validation error detected: Value '' at 'keyId' failed to satisfy constraint: "
        "Member must have length greater than or equal to 1"
    )


def test_pattern_message():
    pattern = service_model().shape_for("AliasNameType").metadata["pattern"]
    message = validation_message("CreateAlias", body(AliasName="alias/bad name", TargetKeyId=KEY))
    assert message == (
        "1 validation error detected: Value 'alias/bad name' at 'aliasName' failed to satisfy "
        f"constraint: Member must satisfy regular expression pattern: {pattern}"
    )


def test_nested_member_paths():
    message = validation_message("TagResource", body(KeyId=KEY, Tags=[{"TagKey": "k"}]))
    assert message == (
        "1 validation error detected: Value null at 'tags.1.member.tagValue' failed to satisfy "
        "constraint: Member must not be null"
    )


def test_two_errors():
    message = validation_message("Encrypt", b"{}")
    assert message == (
        "2 validation errors detected: "
        "Value null at 'keyId' failed to satisfy constraint: Member must not be null; "
        "Value null at 'plaintext' failed to satisfy constraint: Member must not be null"
    )


def test_three_errors_mixed():
    message = validation_message(
        "Encrypt", body(KeyId="", Plaintext=b64(b"x" * 4097), EncryptionAlgorithm="NOPE")
    )
    assert message.startswith("3 validation errors detected: ")
    parts = message[len("3 validation errors detected: "):].split("; ")
    assert len(parts) == 3
    assert parts[0].startswith("Value '' at 'keyId'")
    assert parts[1].startswith("Value at 'plaintext'")
    assert parts[2].startswith("Value 'NOPE' at 'encryptionAlgorithm'")


def test_list_value_rendering_matches_aws():
    message = validation_message(
        "Encrypt", body(KeyId=KEY, Plaintext=b64(b"x"), GrantTokens=["a"] * 11)
    )
    assert message == (
        "1 validation error detected: Value '[a, a, a, a, a, a, a, a, a, a, a]' at 'grantTokens' "
        "failed to satisfy constraint: Member must have length less than or equal to 10"
    )


# -- serialization errors ----------------------------------------------------------------------------


@pytest.mark.parametrize(
    ("operation", "payload"),
    [
        ("DescribeKey", b'{"KeyId": 5}'),
        ("DescribeKey", b'{"KeyId": true}'),
        ("DescribeKey", b'{"KeyId": ["k"]}'),
        ("DescribeKey", b'{"KeyId": {"a": 1}}'),
        ("GenerateDataKey", b'{"KeyId": "k", "NumberOfBytes": "32"}'),
        ("GenerateDataKey", b'{"KeyId": "k", "NumberOfBytes": 32.5}'),
        ("GenerateDataKey", b'{"KeyId": "k", "NumberOfBytes": true}'),
        ("Encrypt", b'{"KeyId": "k", "Plaintext": 12}'),
        ("Encrypt", b'{"KeyId": "k", "Plaintext": "eA==", "DryRun": "true"}'),
        ("Encrypt", b'{"KeyId": "k", "Plaintext": "eA==", "EncryptionContext": []}'),
        ("Encrypt", b'{"KeyId": "k", "Plaintext": "eA==", "EncryptionContext": {"a": 1}}'),
        ("Encrypt", b'{"KeyId": "k", "Plaintext": "eA==", "GrantTokens": "t"}'),
        ("Encrypt", b'{"KeyId": "k", "Plaintext": "eA==", "GrantTokens": [1]}'),
        ("CreateKey", b'{"Tags": [1]}'),
        ("CreateKey", b'{"Tags": {"TagKey": "a", "TagValue": "b"}}'),
    ],
)
def test_wrong_json_type_is_serialization_exception(operation, payload):
    error = serialization_error(operation, payload)
    assert not isinstance(error, ValidationException)


@pytest.mark.parametrize("blob", ["!!!!", "eA", "e A==", "eA==\n", "====", "eA=="[::-1], "@@@@"])
def test_invalid_base64_is_serialization_exception(blob):
    serialization_error("Encrypt", body(KeyId=KEY, Plaintext=blob))


@pytest.mark.parametrize(
    "payload", [b"{", b"nope", b'{"KeyId": }', b"\xff\xfe", b'{"a": 1}{', b"[", b"1e99999"]
)
def test_invalid_json_is_serialization_exception(payload):
    serialization_error("DescribeKey", payload)


@pytest.mark.parametrize("payload", [b"[]", b"null", b'"x"', b"1", b"true"])
def test_non_object_body_is_serialization_exception(payload):
    serialization_error("DescribeKey", payload)


def test_serialization_checked_before_collecting_validation_errors():
    # A type error anywhere wins over constraint violations elsewhere.
    serialization_error("Encrypt", b'{"KeyId": "", "Plaintext": 5}')


def test_errors_are_kms_errors():
    assert issubclass(SerializationException, KmsError)
    assert SerializationException.code == "SerializationException"


# -- wire encodings ----------------------------------------------------------------------------------


def test_encode_response_blobs_and_timestamps():
    when = datetime(2030, 1, 1, tzinfo=UTC)
    decoded = json.loads(encode_response({"CiphertextBlob": b"\x00\x01", "CreationDate": when, "N": 1}))
    assert decoded == {"CiphertextBlob": "AAE=", "CreationDate": when.timestamp(), "N": 1}


def test_encode_error():
    assert json.loads(encode_error("NotFoundException", "nope")) == {
        "__type": "NotFoundException", "message": "nope",
    }


# -- credential scope --------------------------------------------------------------------------------


def sigv4(credential: str) -> str:
    return (
        f"AWS4-HMAC-SHA256 Credential={credential}, "
        "SignedHeaders=content-type;host;x-amz-date;x-amz-target, Signature=" + "0" * 64
    )


@pytest.mark.parametrize(
    ("header", "expected"),
    [
        (sigv4("AKIDEXAMPLE/20260101/us-east-1/kms/aws4_request"), ("AKIDEXAMPLE", "us-east-1")),
        (sigv4("ASIA123/20991231/eu-west-2/kms/aws4_request"), ("ASIA123", "eu-west-2")),
        (sigv4("AKID/20260101/ap-southeast-1/kms/aws4_request"), ("AKID", "ap-southeast-1")),
        (sigv4("AKID/20260101/us-gov-west-1/kms/aws4_request"), ("AKID", "us-gov-west-1")),
    ],
)
def test_parse_credential_scope(header, expected):
    assert parse_credential_scope(header) == expected


@pytest.mark.parametrize(
    "header",
    [
        None,
        "",
        "garbage",
        "Bearer abc",
        sigv4("AKID/20260101/us-east-1/s3/aws4_request"),  # another service
        sigv4("AKID/2026010/us-east-1/kms/aws4_request"),  # bad date
        sigv4("AKID/20260101/us-east-1/kms"),  # no terminator
        sigv4("/20260101/us-east-1/kms/aws4_request"),  # no access key
    ],
)
def test_parse_credential_scope_rejects(header):
    assert parse_credential_scope(header) is None
