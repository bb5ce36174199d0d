"""Principals, credentials and request helpers shared by the access-control e2e modules.

Two accounts:

* ``111122223333`` (ACCOUNT): the root (the e2e root key of conftest), ``alice`` (an identity
  policy allowing the everyday cryptographic operations, denying ScheduleKeyDeletion; tag
  team=blue), ``bob`` (no policy; tag team=red), ``auditor`` (an identity policy allowing only
  ``keyledger:ReadHistory``), and the role ``deployer`` (no policy; tag team=platform) with a
  session key (session name ``ci``, a session token) and an expired one (session ``old``).
* ``444455556666`` (OTHER_ACCOUNT): its root, ``carol`` (an identity policy allowing Encrypt,
  Decrypt and DescribeKey on the keys of 111122223333) and ``frank`` (no policy).

The AccessDeniedException texts follow docs/kms-access-control.md §3 (IAM's
troubleshoot_access-denied page; KMS wire samples such as elastic/cloudbeat#1749).
"""

from __future__ import annotations

import datetime
import json
import os
from typing import Any
from unittest import mock

import httpx
from botocore.auth import SigV4Auth
from botocore.awsrequest import AWSRequest
from botocore.credentials import Credentials
from cryptography.hazmat.primitives import hashes, serialization
from cryptography.hazmat.primitives.asymmetric import padding

ACCOUNT = "111122223333"
OTHER_ACCOUNT = "444455556666"
REGION = "us-east-1"
JSON_CONTENT_TYPE = "application/x-amz-json-1.1"

# conftest.ROOT_ACCESS_KEY_ID / ROOT_SECRET_ACCESS_KEY: KeyledgerServer.kms() signs with them
ROOT = Credentials("AKIAE2EROOT000000001", "e2e/root/secret/access/key/0000000000001")
ALICE = Credentials("AKIAE2EALICE00000001", "alice/secret/access/key/000000000000001")
BOB = Credentials("AKIAE2EBOB0000000001", "bob/secret/access/key/00000000000000001")
AUDITOR = Credentials("AKIAE2EAUDITOR000001", "auditor/secret/access/key/0000000000001")
DEPLOYER_TOKEN = "FwoGZXIvYXdzEE2E//deployer/session/token/ci/0001"
DEPLOYER = Credentials("ASIAE2EDEPLOYER00001", "deployer/secret/access/key/000000000001",
                       DEPLOYER_TOKEN)
# a session of the deployer role that ended in 2020
EXPIRED_TOKEN = "FwoGZXIvYXdzEE2E//deployer/session/token/old/0001"
EXPIRED_SESSION = Credentials("ASIAE2EDEPLOYER00002", "deployer/secret/access/key/000000000002",
                              EXPIRED_TOKEN)
OTHER_ROOT = Credentials("AKIAE2EOTHERROOT0001", "other/root/secret/access/key/00000000001")
CAROL = Credentials("AKIAE2ECAROL00000001", "carol/secret/access/key/000000000000001")
FRANK = Credentials("AKIAE2EFRANK00000001", "frank/secret/access/key/000000000000001")
DAVE = Credentials("AKIAE2EDAVE000000001", "dave/secret/access/key/0000000000000001")

ROOT_ARN = f"arn:aws:iam::{ACCOUNT}:root"
ALICE_ARN = f"arn:aws:iam::{ACCOUNT}:user/alice"
BOB_ARN = f"arn:aws:iam::{ACCOUNT}:user/bob"
AUDITOR_ARN = f"arn:aws:iam::{ACCOUNT}:user/auditor"
DEPLOYER_ROLE_ARN = f"arn:aws:iam::{ACCOUNT}:role/deployer"
DEPLOYER_SESSION_ARN = f"arn:aws:sts::{ACCOUNT}:assumed-role/deployer/ci"
DEPLOYER_SESSION_CREATED = "2026-12-01T08:00:00Z"  # when the ci session began
OTHER_ROOT_ARN = f"arn:aws:iam::{OTHER_ACCOUNT}:root"
CAROL_ARN = f"arn:aws:iam::{OTHER_ACCOUNT}:user/carol"
FRANK_ARN = f"arn:aws:iam::{OTHER_ACCOUNT}:user/frank"
DAVE_ARN = f"arn:aws:iam::{ACCOUNT}:user/dave"

ALICE_ACTIONS = ["kms:Encrypt", "kms:Decrypt", "kms:DescribeKey", "kms:GenerateDataKey"]


def _key(credentials: Credentials) -> dict[str, str]:
    return {"access_key_id": credentials.access_key,
            "secret_access_key": credentials.secret_key}


def _policy(*statements: dict[str, Any]) -> dict[str, Any]:
    return {"Version": "2012-10-17", "Statement": list(statements)}


def identities(*, dave: bool = False) -> dict[str, Any]:
    """The identities file of the access-control servers (``dave``: with user dave, who may
    Encrypt with any key)."""
    users: dict[str, Any] = {
        "alice": {
            "access_keys": [_key(ALICE)],
            "policies": {
                "AliceUsesKeys": _policy(
                    {"Sid": "UseKeys", "Effect": "Allow", "Action": ALICE_ACTIONS,
                     "Resource": "*"},
                    {"Sid": "NeverDelete", "Effect": "Deny", "Action": "kms:ScheduleKeyDeletion",
                     "Resource": "*"},
                ),
            },
            "tags": {"team": "blue"},
        },
        "bob": {"access_keys": [_key(BOB)], "tags": {"team": "red"}},
        "auditor": {
            "access_keys": [_key(AUDITOR)],
            "policies": {"ReadsHistory": _policy(
                {"Effect": "Allow", "Action": "keyledger:ReadHistory", "Resource": "*"}
            )},
        },
    }
    if dave:
        users["dave"] = {
            "access_keys": [_key(DAVE)],
            "policies": {"DaveEncrypts": _policy(
                {"Effect": "Allow", "Action": "kms:Encrypt", "Resource": "*"}
            )},
        }
    return {"accounts": {
        ACCOUNT: {
            "root": {"access_keys": [_key(ROOT)]},
            "users": users,
            "roles": {
                "deployer": {
                    "access_keys": [
                        {**_key(DEPLOYER), "session_name": "ci", "session_token": DEPLOYER_TOKEN,
                         "session_created": DEPLOYER_SESSION_CREATED},
                        {**_key(EXPIRED_SESSION), "session_name": "old",
                         "session_token": EXPIRED_TOKEN, "expiration": "2020-01-01T00:00:00Z"},
                    ],
                    "tags": {"team": "platform"},
                },
            },
        },
        OTHER_ACCOUNT: {
            "root": {"access_keys": [_key(OTHER_ROOT)]},
            "users": {
                "carol": {
                    "access_keys": [_key(CAROL)],
                    "policies": {"CarolUsesKeysOfA": _policy(
                        {"Effect": "Allow",
                         "Action": ["kms:Encrypt", "kms:Decrypt", "kms:DescribeKey"],
                         "Resource": f"arn:aws:kms:*:{ACCOUNT}:key/*"}
                    )},
                },
                "frank": {"access_keys": [_key(FRANK)]},
            },
        },
    }}


# -- messages -----------------------------------------------------------------------------------

NO_IDENTITY = "no-identity"
NO_RESOURCE = "no-resource"
DENY_RESOURCE = "deny-resource"
DENY_IDENTITY = "deny-identity"


def denied(principal: str, action: str, resource: str, why: str) -> str:
    """AWS's AccessDeniedException text (docs/kms-access-control.md §3; no trailing period)."""
    head = f"User: {principal} is not authorized to perform: {action} on resource: {resource}"
    return head + {
        NO_IDENTITY: f" because no identity-based policy allows the {action} action",
        NO_RESOURCE: f" because no resource-based policy allows the {action} action",
        DENY_RESOURCE: " with an explicit deny in a resource-based policy",
        DENY_IDENTITY: " with an explicit deny in an identity-based policy",
    }[why]


# -- raw signed requests --------------------------------------------------------------------------


def kms_headers(operation: str) -> dict[str, str]:
    return {"Content-Type": JSON_CONTENT_TYPE, "X-Amz-Target": f"TrentService.{operation}"}


def sign(url: str, headers: dict[str, str], body: bytes, credentials: Credentials, *,
         region: str = REGION, service: str = "kms", method: str = "POST",
         at: datetime.datetime | None = None) -> dict[str, str]:
    """``headers`` plus a botocore SigV4 signature; ``at`` (naive UTC) signs as of that moment
    instead of now (botocore reads the time through ``botocore.auth.get_current_datetime``)."""
    request = AWSRequest(method=method, url=url, data=body, headers=dict(headers))
    signer = SigV4Auth(credentials, service, region)
    if at is None:
        signer.add_auth(request)
    else:
        with mock.patch("botocore.auth.get_current_datetime", return_value=at):
            signer.add_auth(request)
    return dict(request.headers.items())


def call(url: str, operation: str, payload: dict[str, Any] | None, credentials: Credentials,
         *, region: str = REGION) -> httpx.Response:
    """One signed KMS call over a fresh TCP connection."""
    body = json.dumps(payload or {}).encode()
    headers = sign(url + "/", kms_headers(operation), body, credentials, region=region)
    return httpx.post(url + "/", content=body, headers={**headers, "Connection": "close"},
                      timeout=30)


def error_of(response: httpx.Response) -> tuple[int, str, str]:
    """(HTTP status, ``__type``, ``message``) of an AWS JSON 1.1 error reply."""
    body = response.json()
    return response.status_code, body.get("__type", ""), body.get("message", "")


def client_error(error: Any) -> tuple[int, str, str]:
    """(HTTP status, code, message) of a botocore ClientError."""
    response = error.response
    return (response["ResponseMetadata"]["HTTPStatusCode"], response["Error"]["Code"],
            response["Error"]["Message"])


# -- imported key material --------------------------------------------------------------------------


def wrap_material(public_key_der: bytes, material: bytes) -> bytes:
    """RSAES_OAEP_SHA_256 over the material (importing-keys-encrypt-key-material.html)."""
    public = serialization.load_der_public_key(public_key_der)
    oaep = padding.OAEP(mgf=padding.MGF1(hashes.SHA256()), algorithm=hashes.SHA256(), label=None)
    return public.encrypt(material, oaep)


def new_material() -> bytes:
    return os.urandom(32)
