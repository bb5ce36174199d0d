"""Audit records: CloudTrail's shapes per operation, user identities, service events, the
ledger API's records, canonical bytes, and that no secret member ever reaches a record."""

from __future__ import annotations

import base64
from dataclasses import replace
from datetime import UTC, datetime, timedelta, timezone
from typing import Any

import botocore.session
import orjson
import pytest
from botocore.model import Shape, ShapeResolver

from application import audit_records
from application.audit_records import (
    EVENT_VERSION,
    LEDGER_EVENT_SOURCE,
    api_call_record,
    canonical_bytes,
    compile_shape,
    describe,
    ledger_api_record,
    service_event_record,
    user_identity,
)
from domain.operations import OPERATIONS, Kind
from domain.principals import Principal, PrincipalKind

ACCOUNT = "111122223333"
OTHER = "444455556666"
KEY_ID = "1234abcd-12ab-34cd-56ef-1234567890ab"
KEY = f"arn:aws:kms:us-west-2:{ACCOUNT}:key/{KEY_ID}"
KEY2 = f"arn:aws:kms:us-west-2:{OTHER}:key/0987dcba-09fe-87dc-65ba-ab0987654321"
NOW = datetime(2025, 3, 7, 22, 36, 44, 123456, tzinfo=UTC)
MATERIAL = "a" * 64

ALICE = Principal(ACCOUNT, PrincipalKind.USER, name="Alice", unique_id="AIDAEXAMPLEALICE00001")
ROOT = Principal.root(ACCOUNT)
ROLE = Principal(ACCOUNT, PrincipalKind.ASSUMED_ROLE, name="App", path="/svc/",
                 session_name="build-42", unique_id="AROAEXAMPLEAPPROLE001")


def record(operation: str, params: dict[str, Any] | None = None, result: dict[str, Any] | None = None,
           **overrides: Any) -> dict[str, Any]:
    arguments: dict[str, Any] = dict(
        principal=ALICE, access_key_id="AKIAEXAMPLE000000001", account=ACCOUNT,
        region="us-west-2", operation=operation, params=params, result=result, error_code=None,
        error_message=None, event_time=NOW, event_id="ev-1", request_id="req-1",
        source_ip="192.0.2.0", user_agent="aws-cli/2.15.0", resources=(KEY,),
    )
    arguments.update(overrides)
    built = api_call_record(**arguments)
    orjson.loads(canonical_bytes(built))  # always serialisable
    return built


KEY_RESOURCE = {"accountId": ACCOUNT, "type": "AWS::KMS::Key", "ARN": KEY}


# --- per-operation shapes ---------------------------------------------------------------

def test_encrypt_is_logged_as_cloudtrail_shows_it():
    params = {"KeyId": KEY, "Plaintext": b"top secret", "EncryptionContext": {"Department": "Eng"},
              "EncryptionAlgorithm": "SYMMETRIC_DEFAULT"}
    result = {"CiphertextBlob": b"\x01\x02", "KeyId": KEY, "EncryptionAlgorithm": "SYMMETRIC_DEFAULT"}
    got = record("Encrypt", params, result, additional={"keyMaterialId": MATERIAL})
    assert got == {
        "eventVersion": "1.11",
        "userIdentity": {"type": "IAMUser", "principalId": "AIDAEXAMPLEALICE00001",
                         "arn": f"arn:aws:iam::{ACCOUNT}:user/Alice", "accountId": ACCOUNT,
                         "accessKeyId": "AKIAEXAMPLE000000001", "userName": "Alice"},
        "eventTime": "2025-03-07T22:36:44Z",
        "eventSource": "kms.amazonaws.com",
        "eventName": "Encrypt",
        "awsRegion": "us-west-2",
        "sourceIPAddress": "192.0.2.0",
        "userAgent": "aws-cli/2.15.0",
        "requestParameters": {"keyId": KEY, "encryptionContext": {"Department": "Eng"},
                              "encryptionAlgorithm": "SYMMETRIC_DEFAULT"},
        "responseElements": None,
        "additionalEventData": {"keyMaterialId": MATERIAL},
        "requestID": "req-1",
        "eventID": "ev-1",
        "readOnly": True,
        "resources": [KEY_RESOURCE],
        "eventType": "AwsApiCall",
        "managementEvent": True,
        "recipientAccountId": ACCOUNT,
        "eventCategory": "Management",
    }
    assert EVENT_VERSION == "1.11"


def test_decrypt_always_logs_the_encryption_algorithm_and_the_material_id():
    params = {"CiphertextBlob": b"ct", "EncryptionContext": {"Project": "Alpha"}}
    result = {"KeyId": KEY, "Plaintext": b"pt", "EncryptionAlgorithm": "SYMMETRIC_DEFAULT",
              "KeyMaterialId": MATERIAL}
    got = record("Decrypt", params, result)
    assert got["requestParameters"] == {"encryptionContext": {"Project": "Alpha"},
                                        "encryptionAlgorithm": "SYMMETRIC_DEFAULT"}
    assert got["responseElements"] is None
    assert got["additionalEventData"] == {"keyMaterialId": MATERIAL}
    assert got["readOnly"] is True
    rsa = record("Decrypt", {"CiphertextBlob": b"ct", "KeyId": KEY,
                             "EncryptionAlgorithm": "RSAES_OAEP_SHA_256"},
                 {"KeyId": KEY, "Plaintext": b"pt", "EncryptionAlgorithm": "RSAES_OAEP_SHA_256"})
    assert rsa["requestParameters"] == {"keyId": KEY, "encryptionAlgorithm": "RSAES_OAEP_SHA_256"}
    assert "additionalEventData" not in rsa


def test_reencrypt_lists_source_then_destination():
    params = {"CiphertextBlob": b"ct", "SourceEncryptionContext": {"Project": "Alpha"},
              "DestinationKeyId": KEY2, "DestinationEncryptionContext": {"Level": "3A"},
              "GrantTokens": ["token-value"]}
    result = {"CiphertextBlob": b"ct2", "SourceKeyId": KEY, "KeyId": KEY2,
              "SourceEncryptionAlgorithm": "SYMMETRIC_DEFAULT",
              "DestinationEncryptionAlgorithm": "SYMMETRIC_DEFAULT",
              "SourceKeyMaterialId": "s" * 64, "DestinationKeyMaterialId": "d" * 64}
    got = record("ReEncrypt", params, result, resources=(KEY, KEY2))
    # ct-reencrypt: both algorithms are logged, defaulted ones too
    assert got["requestParameters"] == {
        "sourceEncryptionContext": {"Project": "Alpha"}, "destinationKeyId": KEY2,
        "destinationEncryptionContext": {"Level": "3A"},
        "sourceEncryptionAlgorithm": "SYMMETRIC_DEFAULT",
        "destinationEncryptionAlgorithm": "SYMMETRIC_DEFAULT"}
    assert got["additionalEventData"] == {"sourceKeyMaterialId": "s" * 64,
                                          "destinationKeyMaterialId": "d" * 64}
    assert got["resources"] == [KEY_RESOURCE,
                                {"accountId": OTHER, "type": "AWS::KMS::Key", "ARN": KEY2}]
    assert "token-value" not in canonical_bytes(got).decode()


def test_generate_data_key():
    got = record("GenerateDataKey",
                 {"KeyId": "alias/app", "KeySpec": "AES_256", "EncryptionContext": {"a": "b"}},
                 {"CiphertextBlob": b"ct", "Plaintext": b"pt", "KeyId": KEY, "KeyMaterialId": MATERIAL})
    assert got["requestParameters"] == {"keyId": "alias/app", "encryptionContext": {"a": "b"},
                                        "keySpec": "AES_256"}
    assert got["responseElements"] is None
    assert got["additionalEventData"] == {"keyMaterialId": MATERIAL}
    assert got["readOnly"] is True
    assert record("GenerateDataKey", {"KeyId": KEY, "NumberOfBytes": 64})["requestParameters"] == {
        "keyId": KEY, "numberOfBytes": 64}


def test_create_key_logs_the_policy_tags_and_key_metadata():
    policy = '{"Version":"2012-10-17","Statement":[]}'
    params = {"Policy": policy, "Description": "", "KeyUsage": "ENCRYPT_DECRYPT",
              "Origin": "AWS_KMS", "BypassPolicyLockoutSafetyCheck": False,
              "Tags": [{"TagKey": "Department", "TagValue": "IT"}]}
    metadata = {"AWSAccountId": ACCOUNT, "KeyId": KEY_ID, "Arn": KEY,
                "CreationDate": datetime(2020, 6, 30, 2, 34, 7, 500000, tzinfo=UTC),
                "Enabled": True, "Description": "", "KeyUsage": "ENCRYPT_DECRYPT",
                "KeyState": "Enabled", "Origin": "AWS_KMS", "KeyManager": "CUSTOMER",
                "CustomerMasterKeySpec": "SYMMETRIC_DEFAULT", "KeySpec": "SYMMETRIC_DEFAULT",
                "EncryptionAlgorithms": ["SYMMETRIC_DEFAULT"], "MultiRegion": False,
                "CurrentKeyMaterialId": MATERIAL}
    got = record("CreateKey", params, {"KeyMetadata": metadata},
                 ledger_events=((KEY_ID, 1), ("alias-x", 3)))
    assert got["requestParameters"] == {
        "policy": policy, "description": "", "keyUsage": "ENCRYPT_DECRYPT", "origin": "AWS_KMS",
        "bypassPolicyLockoutSafetyCheck": False,
        "tags": [{"tagKey": "Department", "tagValue": "IT"}]}
    assert got["responseElements"] == {"keyMetadata": {
        "aWSAccountId": ACCOUNT, "keyId": KEY_ID, "arn": KEY, "creationDate": "2020-06-30T02:34:07Z",
        "enabled": True, "description": "", "keyUsage": "ENCRYPT_DECRYPT", "keyState": "Enabled",
        "origin": "AWS_KMS", "keyManager": "CUSTOMER", "customerMasterKeySpec": "SYMMETRIC_DEFAULT",
        "keySpec": "SYMMETRIC_DEFAULT", "encryptionAlgorithms": ["SYMMETRIC_DEFAULT"],
        "multiRegion": False, "currentKeyMaterialId": MATERIAL}}
    assert got["additionalEventData"] == {"ledgerEvents": [
        {"aggregateId": KEY_ID, "version": 1}, {"aggregateId": "alias-x", "version": 3}]}
    assert got["readOnly"] is False


def test_schedule_key_deletion_response():
    got = record("ScheduleKeyDeletion", {"KeyId": KEY_ID, "PendingWindowInDays": 20},
                 {"KeyId": KEY, "DeletionDate": datetime(2021, 4, 12, 18, 58, 30, tzinfo=UTC),
                  "KeyState": "PendingDeletion", "PendingWindowInDays": 20},
                 ledger_events=((KEY_ID, 7),))
    assert got["requestParameters"] == {"keyId": KEY_ID, "pendingWindowInDays": 20}
    assert got["responseElements"] == {"keyId": KEY, "deletionDate": "2021-04-12T18:58:30Z",
                                       "keyState": "PendingDeletion", "pendingWindowInDays": 20}
    assert got["readOnly"] is False


def test_create_grant_logs_the_grant_id_never_the_token():
    params = {"KeyId": KEY, "GranteePrincipal": f"arn:aws:iam::{ACCOUNT}:role/App",
              "Operations": ["Encrypt", "RetireGrant"],
              "Constraints": {"EncryptionContextSubset": {"ContextKey1": "Value1"}},
              "GrantTokens": ["an-earlier-grant-token"]}
    got = record("CreateGrant", params, {"GrantToken": "the-new-grant-token", "GrantId": "g" * 64})
    assert got["requestParameters"] == {
        "keyId": KEY, "granteePrincipal": f"arn:aws:iam::{ACCOUNT}:role/App",
        "operations": ["Encrypt", "RetireGrant"],
        "constraints": {"encryptionContextSubset": {"ContextKey1": "Value1"}}}
    assert got["responseElements"] == {"grantId": "g" * 64}
    text = canonical_bytes(got).decode()
    assert "grant-token" not in text


def test_retire_grant_by_token_logs_no_request_parameters():
    got = record("RetireGrant", {"GrantToken": "secret-grant-token"}, {},
                 additional={"grantId": "g" * 64})
    assert got["requestParameters"] is None
    assert got["responseElements"] is None
    assert got["additionalEventData"] == {"grantId": "g" * 64}
    assert "secret-grant-token" not in canonical_bytes(got).decode()
    revoke = record("RevokeGrant", {"KeyId": KEY_ID, "GrantId": "g" * 64}, {})
    assert revoke["requestParameters"] == {"keyId": KEY_ID, "grantId": "g" * 64}


def test_put_key_policy_logs_the_policy():
    policy = '{"Version":"2012-10-17","Statement":[{"Effect":"Allow"}]}'
    got = record("PutKeyPolicy", {"KeyId": KEY_ID, "PolicyName": "default", "Policy": policy,
                                  "BypassPolicyLockoutSafetyCheck": False}, {})
    assert got["requestParameters"] == {"keyId": KEY_ID, "policyName": "default", "policy": policy,
                                        "bypassPolicyLockoutSafetyCheck": False}
    assert got["responseElements"] is None
    assert got["readOnly"] is False
    read = record("GetKeyPolicy", {"KeyId": KEY_ID}, {"Policy": policy, "PolicyName": "default"})
    assert read["requestParameters"] == {"keyId": KEY_ID}
    assert read["responseElements"] is None  # GetKeyPolicy responses are omitted


def test_sign_logs_neither_message_nor_signature():
    got = record("Sign", {"KeyId": KEY_ID, "Message": b"the message", "MessageType": "RAW",
                          "SigningAlgorithm": "RSASSA_PKCS1_V1_5_SHA_256"},
                 {"KeyId": KEY, "Signature": b"the signature",
                  "SigningAlgorithm": "RSASSA_PKCS1_V1_5_SHA_256"})
    assert got["requestParameters"] == {"keyId": KEY_ID, "messageType": "RAW",
                                        "signingAlgorithm": "RSASSA_PKCS1_V1_5_SHA_256"}
    assert got["responseElements"] is None
    assert got["readOnly"] is True


def test_rotate_key_on_demand_and_cancel_key_deletion_respond_with_the_key_id():
    for operation in ("RotateKeyOnDemand", "CancelKeyDeletion"):
        got = record(operation, {"KeyId": KEY_ID}, {"KeyId": KEY})
        assert got["requestParameters"] == {"keyId": KEY_ID}
        assert got["responseElements"] == {"keyId": KEY}


def test_import_key_material_logs_the_settings_not_the_material():
    got = record("ImportKeyMaterial",
                 {"KeyId": KEY_ID, "ImportToken": b"token", "EncryptedKeyMaterial": b"material",
                  "ValidTo": datetime(2021, 1, 1, 20, 0, tzinfo=UTC),
                  "ExpirationModel": "KEY_MATERIAL_EXPIRES"},
                 {"KeyId": KEY, "KeyMaterialId": MATERIAL})
    assert got["requestParameters"] == {"keyId": KEY_ID, "validTo": "2021-01-01T20:00:00Z",
                                        "expirationModel": "KEY_MATERIAL_EXPIRES"}
    assert got["responseElements"] == {"keyId": KEY, "keyMaterialId": MATERIAL}
    params = record("GetParametersForImport",
                    {"KeyId": KEY_ID, "WrappingAlgorithm": "RSAES_OAEP_SHA_256",
                     "WrappingKeySpec": "RSA_2048"},
                    {"KeyId": KEY, "ImportToken": b"token", "PublicKey": b"pk",
                     "ParametersValidTo": NOW})
    assert params["readOnly"] is True  # as AWS logs it
    assert params["responseElements"] is None


def test_operations_on_no_key_have_no_resources():
    got = record("GenerateRandom", {"NumberOfBytes": 32}, {"Plaintext": b"random"}, resources=())
    assert got["resources"] == []
    assert got["requestParameters"] == {"numberOfBytes": 32}
    listing = record("ListAliases", {"Limit": 5, "Marker": "m"}, {"Aliases": []}, resources=())
    assert listing["requestParameters"] == {"limit": 5, "marker": "m"}
    assert listing["responseElements"] is None


def test_create_alias_names_the_alias_resource():
    alias = f"arn:aws:kms:us-west-2:{ACCOUNT}:alias/my_alias"
    got = record("CreateAlias", {"AliasName": "alias/my_alias", "TargetKeyId": KEY_ID}, {},
                 resources=(KEY, alias))
    assert got["requestParameters"] == {"aliasName": "alias/my_alias", "targetKeyId": KEY_ID}
    # AWS's entry (ct-createalias): the alias listed with the key's resource type, and the key
    # ARN as responseElements.keyId (entries since December 2022)
    assert got["resources"][1] == {"accountId": ACCOUNT, "type": "AWS::KMS::Key", "ARN": alias}
    assert got["responseElements"] == {"keyId": KEY}


def test_operations_returning_nothing_name_their_key_where_aws_does():
    for operation in ("EnableKey", "DisableKey", "EnableKeyRotation", "UntagResource"):
        assert record(operation, {"KeyId": KEY_ID}, {}, resources=(KEY,))["responseElements"] == {
            "keyId": KEY}, operation
    for operation in ("PutKeyPolicy", "TagResource", "UpdateKeyDescription", "DisableKeyRotation"):
        assert record(operation, {"KeyId": KEY_ID}, {}, resources=(KEY,))["responseElements"] is None
    alias = f"arn:aws:kms:us-west-2:{ACCOUNT}:alias/my_alias"
    deleted = record("DeleteAlias", {"AliasName": "alias/my_alias"}, {}, resources=(alias, KEY))
    assert deleted["responseElements"] == {"keyId": KEY}
    failed = record("EnableKey", {"KeyId": KEY_ID}, None, resources=(KEY,),
                    error_code="KMSInvalidStateException")
    assert failed["responseElements"] is None


# --- failures --------------------------------------------------------------------------

def test_failure_records_error_code_and_message():
    params = {"CiphertextBlob": b"ct", "KeyId": KEY, "EncryptionContext": {"Project": "Alpha"}}
    message = "The key ID in the request does not identify a CMK that can perform this operation."
    got = record("Decrypt", params, None, error_code="IncorrectKeyException", error_message=message)
    assert got["errorCode"] == "IncorrectKeyException"
    assert got["errorMessage"] == message
    assert got["requestParameters"] == {"keyId": KEY, "encryptionContext": {"Project": "Alpha"},
                                        "encryptionAlgorithm": "SYMMETRIC_DEFAULT"}
    assert got["responseElements"] is None
    assert "additionalEventData" not in got
    bare = record("GenerateDataKeyWithoutPlaintext", {"KeyId": KEY}, None,
                  error_code="InvalidKeyUsageException", error_message=None)
    assert bare["errorCode"] == "InvalidKeyUsageException"
    assert "errorMessage" not in bare
    assert "errorCode" not in record("Encrypt", {"KeyId": KEY}, {"KeyId": KEY})


def test_failure_ignores_a_result():
    got = record("ScheduleKeyDeletion", {"KeyId": KEY_ID}, {"KeyId": KEY, "KeyState": "x"},
                 error_code="KMSInvalidStateException", error_message="pending")
    assert got["responseElements"] is None


def test_access_denied():
    message = (f"User: {ALICE.arn} is not authorized to perform: kms:Decrypt on resource: {KEY} "
               "because no resource-based policy allows the kms:Decrypt action")
    got = record("Decrypt", {"CiphertextBlob": b"ct", "KeyId": KEY}, None,
                 error_code="AccessDeniedException", error_message=message)
    assert got["errorCode"] == "AccessDeniedException"
    assert got["errorMessage"] == message
    assert got["userIdentity"]["arn"] == ALICE.arn
    assert got["resources"] == [KEY_RESOURCE]


def test_authentication_failure():
    got = record("Encrypt", None, None, principal=None, access_key_id="AKIAUNKNOWN000000000",
                 error_code="UnrecognizedClientException",
                 error_message="The security token included in the request is invalid.",
                 resources=())
    assert got["userIdentity"] == {"type": "Unknown", "accessKeyId": "AKIAUNKNOWN000000000"}
    assert got["requestParameters"] is None
    assert got["responseElements"] is None
    assert got["errorCode"] == "UnrecognizedClientException"
    assert got["resources"] == []
    unsigned = record("Decrypt", None, None, principal=None, access_key_id="",
                      error_code="MissingAuthenticationTokenException", error_message="x")
    assert unsigned["userIdentity"] == {"type": "Unknown"}
    assert unsigned["requestParameters"] is None  # no default for a request never parsed


def test_unknown_operation_logs_nothing_of_the_request():
    got = record("NoSuchOperation" + "x" * 500, {"KeyId": KEY, "Plaintext": b"p"}, None,
                 error_code="UnknownOperationException", error_message=None, resources=())
    assert got["requestParameters"] is None
    assert len(got["eventName"]) == 128
    assert got["readOnly"] is False


def test_long_fields_are_cut_at_one_kilobyte():
    got = record("Encrypt", {"KeyId": KEY}, None, user_agent="é" * 2000,
                 error_code="ValidationException", error_message="m" * 5000)
    assert len(got["userAgent"].encode()) <= 1024
    assert got["userAgent"] == "é" * 512
    assert len(got["errorMessage"]) == 1024
    assert record("Encrypt", {"KeyId": KEY}, None, user_agent="u" * 1500)["userAgent"] == "u" * 1024


# --- envelope details ------------------------------------------------------------------

def test_tls_details_only_over_tls():
    assert "tlsDetails" not in record("Encrypt", {"KeyId": KEY})
    got = record("Encrypt", {"KeyId": KEY}, tls=True, tls_version="TLSv1.3",
                 cipher_suite="TLS_AES_256_GCM_SHA384", host="kms.us-west-2.amazonaws.com")
    assert got["tlsDetails"] == {"tlsVersion": "TLSv1.3", "cipherSuite": "TLS_AES_256_GCM_SHA384",
                                 "clientProvidedHostHeader": "kms.us-west-2.amazonaws.com"}


def test_times_are_utc_seconds_with_z():
    plus_two = timezone(timedelta(hours=2))
    assert record("Encrypt", {"KeyId": KEY}, event_time=datetime(2025, 1, 1, 1, 30, 5, 999999,
                                                                  tzinfo=plus_two))["eventTime"] \
        == "2024-12-31T23:30:05Z"
    assert record("Encrypt", {"KeyId": KEY}, event_time=datetime(2025, 1, 1))["eventTime"] \
        == "2025-01-01T00:00:00Z"
    # epoch seconds in a timestamp member
    got = record("ImportKeyMaterial", {"KeyId": KEY_ID, "ValidTo": 1609531200})
    assert got["requestParameters"]["validTo"] == "2021-01-01T20:00:00Z"


def test_canonical_bytes_sort_keys_at_every_depth():
    a = record("Encrypt", {"KeyId": KEY, "EncryptionContext": {"b": "2", "a": "1"}})
    b = record("Encrypt", {"EncryptionContext": {"a": "1", "b": "2"}, "KeyId": KEY})
    assert canonical_bytes(a) == canonical_bytes(b)
    assert canonical_bytes(dict(reversed(list(a.items())))) == canonical_bytes(a)
    text = canonical_bytes(a)
    assert text.startswith(b'{"additionalEventData"') or text.startswith(b'{"awsRegion"')
    assert b'"encryptionContext":{"a":"1","b":"2"}' in text
    assert orjson.loads(text) == a


def test_records_are_deterministic():
    params = {"KeyId": KEY, "EncryptionContext": {"x": "y"}}
    assert canonical_bytes(record("Encrypt", params)) == canonical_bytes(record("Encrypt", params))


# --- user identities -------------------------------------------------------------------

def test_root_identity():
    assert user_identity(ROOT, "AKIAROOT") == {
        "type": "Root", "principalId": ACCOUNT, "arn": f"arn:aws:iam::{ACCOUNT}:root",
        "accountId": ACCOUNT, "accessKeyId": "AKIAROOT"}


def test_user_identity():
    assert user_identity(ALICE, "AKIAALICE") == {
        "type": "IAMUser", "principalId": "AIDAEXAMPLEALICE00001",
        "arn": f"arn:aws:iam::{ACCOUNT}:user/Alice", "accountId": ACCOUNT,
        "accessKeyId": "AKIAALICE", "userName": "Alice"}
    # a user without a stored unique id gets the derived one
    bob = Principal(ACCOUNT, PrincipalKind.USER, name="Bob")
    assert user_identity(bob, "")["principalId"].startswith("AIDA")
    assert "accessKeyId" not in user_identity(bob, "")


def test_role_session_identity():
    assert user_identity(ROLE, "ASIAROLE") == {
        "type": "AssumedRole", "principalId": "AROAEXAMPLEAPPROLE001:build-42",
        "arn": f"arn:aws:sts::{ACCOUNT}:assumed-role/App/build-42", "accountId": ACCOUNT,
        "accessKeyId": "ASIAROLE",
        "sessionContext": {"sessionIssuer": {
            "type": "Role", "principalId": "AROAEXAMPLEAPPROLE001",
            "arn": f"arn:aws:iam::{ACCOUNT}:role/svc/App", "accountId": ACCOUNT,
            "userName": "App"}, "attributes": {"mfaAuthenticated": "false"}}}
    began = datetime(2025, 3, 7, 22, 0, tzinfo=UTC).timestamp()
    created = user_identity(replace(ROLE, session_created=began), "ASIAROLE")
    assert created["sessionContext"]["attributes"] == {"creationDate": "2025-03-07T22:00:00Z",
                                                       "mfaAuthenticated": "false"}
    got = record("Encrypt", {"KeyId": KEY}, principal=ROLE, access_key_id="ASIAROLE")
    assert got["userIdentity"]["type"] == "AssumedRole"


def test_identity_is_per_principal_and_access_key():
    assert user_identity(ALICE, "AKIA1")["accessKeyId"] == "AKIA1"
    assert user_identity(ALICE, "AKIA2")["accessKeyId"] == "AKIA2"
    assert user_identity(ROOT, "AKIA1")["type"] == "Root"
    twin = Principal(ACCOUNT, PrincipalKind.USER, name="Twin", unique_id="AIDATWIN")
    assert user_identity(twin, "AKIA1")["userName"] == "Twin"


# --- service events and ledger API requests --------------------------------------------

def test_delete_key_service_event():
    got = service_event_record(event_name="DeleteKey", account=ACCOUNT, region="us-west-2",
                               key_arn=KEY, event_time=NOW, event_id="ev-9",
                               ledger_events=((KEY_ID, 12),))
    assert got == {
        "eventVersion": "1.11",
        "userIdentity": {"accountId": ACCOUNT, "invokedBy": "AWS Internal"},
        "eventTime": "2025-03-07T22:36:44Z",
        "eventSource": "kms.amazonaws.com",
        "eventName": "DeleteKey",
        "awsRegion": "us-west-2",
        "sourceIPAddress": "AWS Internal",
        "userAgent": "AWS Internal",
        "requestParameters": None,
        "responseElements": {"keyId": KEY},
        "additionalEventData": {"ledgerEvents": [{"aggregateId": KEY_ID, "version": 12}]},
        "eventID": "ev-9",
        "readOnly": False,
        "resources": [KEY_RESOURCE],
        "eventType": "AwsServiceEvent",
        "managementEvent": True,
        "recipientAccountId": ACCOUNT,
        "eventCategory": "Management",
        "serviceEventDetails": {"keyId": KEY_ID},
    }
    assert "requestID" not in got
    orjson.loads(canonical_bytes(got))


def test_rotate_key_service_event():
    details = {"rotationType": "AUTOMATIC", "keyOrigin": "AWS_KMS",
               "previousKeyMaterialId": "p" * 64, "currentKeyMaterialId": "c" * 64,
               "keyId": KEY_ID, "rotatedAt": NOW, "sealed": b"never"}
    got = service_event_record(event_name="RotateKey", account=ACCOUNT, region="us-west-2",
                               key_arn=KEY, event_time=NOW, event_id="ev-10",
                               service_event_details=details)
    assert got["serviceEventDetails"] == {
        "rotationType": "AUTOMATIC", "keyOrigin": "AWS_KMS", "previousKeyMaterialId": "p" * 64,
        "currentKeyMaterialId": "c" * 64, "keyId": KEY_ID, "rotatedAt": "2025-03-07T22:36:44Z"}
    assert got["responseElements"] is None
    assert got["eventType"] == "AwsServiceEvent"
    assert "additionalEventData" not in got
    assert "requestID" not in got
    expired = service_event_record(event_name="DeleteExpiredKeyMaterial", account=ACCOUNT,
                                   region="us-west-2", key_arn=KEY, event_time=NOW, event_id="e")
    assert expired["serviceEventDetails"] == {"keyId": KEY_ID}
    assert expired["responseElements"] is None


def test_ledger_api_record():
    got = ledger_api_record(principal=ROOT, access_key_id="AKIAROOT", account=ACCOUNT,
                            region="us-west-2", event_name="ReadAudit",
                            params={"key_id": KEY_ID, "errors_only": True, "limit": 50,
                                    "start": NOW},
                            error_code=None, error_message=None, event_time=NOW,
                            event_id="ev-11", request_id="req-11", source_ip="127.0.0.1",
                            user_agent="curl/8.5.0", resources=(KEY,))
    assert got["eventSource"] == LEDGER_EVENT_SOURCE == "keyledger.ledger"
    assert got["eventName"] == "ReadAudit"
    assert got["requestParameters"] == {"keyId": KEY_ID, "errorsOnly": True, "limit": 50,
                                        "start": "2025-03-07T22:36:44Z"}
    assert got["responseElements"] is None
    assert got["readOnly"] is True
    assert got["eventType"] == "AwsApiCall"
    assert got["userIdentity"]["type"] == "Root"
    assert got["resources"] == [KEY_RESOURCE]
    denied = ledger_api_record(principal=ALICE, access_key_id="AKIA", account=ACCOUNT,
                               region="us-west-2", event_name="ReadHistory", params={},
                               error_code="AccessDeniedException", error_message="denied",
                               event_time=NOW, event_id="e", request_id="r", source_ip="",
                               user_agent="")
    assert denied["requestParameters"] is None
    assert denied["errorCode"] == "AccessDeniedException"
    orjson.loads(canonical_bytes(denied))


# --- no secret ever reaches a record ---------------------------------------------------

MARKER = "SECRET-MARKER-7f3a"
MODEL = botocore.session.get_session().get_service_model("kms")


def _secret_by_test_rule(name: str, shape: Shape) -> bool:
    """The test's own statement of what is secret: blobs, sensitive shapes, tokens."""
    return (shape.type_name == "blob" or shape.metadata.get("sensitive", False)
            or "Token" in name or "Token" in shape.name)


def _fill(shape: Shape, name: str = "") -> Any:
    """A value for every member of ``shape``: secrets carry the marker, others plain text."""
    if _secret_by_test_rule(name, shape):
        if shape.type_name == "blob":
            return MARKER.encode()
        if shape.type_name == "list":
            return [MARKER]
        return MARKER
    kind = shape.type_name
    if kind == "structure":
        return {member: _fill(member_shape, member) for member, member_shape in shape.members.items()}
    if kind == "list":
        return [_fill(shape.member, name)]
    if kind == "map":
        return {"ctx-key": _fill(shape.value, name)}
    if kind == "timestamp":
        return NOW
    if kind in ("integer", "long"):
        return 7
    if kind == "boolean":
        return True
    return f"value-of-{name}"


def _public(name: str, shape: Shape) -> bool:
    """Whether some part of a member is not secret (an all-secret structure is left out)."""
    if _secret_by_test_rule(name, shape):
        return False
    if shape.type_name == "structure":
        return any(_public(member, s) for member, s in shape.members.items())
    if shape.type_name == "list":
        return _public(name, shape.member)
    if shape.type_name == "map":
        return _public(name, shape.value)
    return True


def _leaks(built: dict[str, Any]) -> bool:
    data = canonical_bytes(built)
    forms = (MARKER.encode(), base64.b64encode(MARKER.encode()),
             base64.b64encode(MARKER.encode()).rstrip(b"="), MARKER.encode().hex().encode())
    return any(form in data for form in forms)


@pytest.mark.parametrize("operation", sorted(set(OPERATIONS) | set(MODEL.operation_names)))
def test_no_secret_member_is_ever_logged(operation):
    op_model = MODEL.operation_model(operation)
    params = _fill(op_model.input_shape) if op_model.input_shape is not None else {}
    result = _fill(op_model.output_shape) if op_model.output_shape is not None else {}
    for error_code in (None, "KMSInternalException"):
        built = record(operation, params, result, error_code=error_code,
                       additional={"keyMaterialId": MATERIAL}, ledger_events=((KEY_ID, 1),))
        assert not _leaks(built), operation
    # every member that is not secret is logged, at the top level
    built = record(operation, params, result)
    logged = built["requestParameters"] or {}
    for member, member_shape in (op_model.input_shape.members.items()
                                 if op_model.input_shape is not None else ()):
        if _public(member, member_shape):
            assert audit_records.camel(member) in logged, (operation, member)
    if op_model.output_shape is None:  # returns nothing: the key where AWS logs it, else null
        key_logged = operation in audit_records._KEY_IN_RESPONSE
        assert built["responseElements"] == ({"keyId": KEY} if key_logged else None), operation
    elif built["responseElements"] is not None:
        for member, member_shape in op_model.output_shape.members.items():
            if _public(member, member_shape):
                assert audit_records.camel(member) in built["responseElements"], (operation, member)


def test_every_implemented_operation_has_a_table_entry():
    for name, operation in OPERATIONS.items():
        entry = describe(name)
        assert entry["readOnly"] is (operation.kind is not Kind.MANAGEMENT
                                     or name == "GetParametersForImport"), name
        if operation.kind is not Kind.MANAGEMENT:
            assert entry["responseElements"] is None, name


def _synthetic(members: dict[str, dict[str, Any]], extra: dict[str, Any]) -> Shape:
    shapes = {"Request": {"type": "structure", "members": members}, **extra}
    return ShapeResolver(shapes).get_shape_by_name("Request")


def test_a_new_blob_member_is_never_logged():
    shape = _synthetic(
        {"KeyId": {"shape": "String"}, "FreshBlob": {"shape": "Bytes"},
         "Nested": {"shape": "Wrapper"}, "Blobs": {"shape": "BlobList"},
         "BlobMap": {"shape": "BlobMap"}, "Password": {"shape": "Hidden"}},
        {"String": {"type": "string"}, "Bytes": {"type": "blob"},
         "Hidden": {"type": "string", "sensitive": True},
         "Wrapper": {"type": "structure", "members": {"Inner": {"shape": "Bytes"},
                                                      "Label": {"shape": "String"}}},
         "BlobList": {"type": "list", "member": {"shape": "Bytes"}},
         "BlobMap": {"type": "map", "key": {"shape": "String"}, "value": {"shape": "Bytes"}}})
    convert = compile_shape(shape)
    logged = convert({"KeyId": "k", "FreshBlob": b"x", "Nested": {"Inner": b"x", "Label": "l"},
                      "Blobs": [b"x"], "BlobMap": {"a": b"x"}, "Password": "p"})
    assert logged == {"keyId": "k", "nested": {"label": "l"}}


def test_malformed_values_are_dropped_not_raised():
    got = record("CreateKey", {"Tags": "not-a-list", "Description": "d"}, None)
    assert got["requestParameters"] == {"description": "d"}
    got = record("CreateGrant", {"KeyId": KEY, "Constraints": ["wrong"], "Operations": "Encrypt"})
    assert got["requestParameters"] == {"keyId": KEY}
