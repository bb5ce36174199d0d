"""Micro-benchmark of application.audit_records: µs per audit record on the hot path.

Cases:

* ``Encrypt (IAM user)``: api_call_record for a successful Encrypt with a two-entry encryption
  context, a 1 KiB plaintext in the params, the key material id in additionalEventData;
* ``Encrypt + canonical_bytes``: the same and the canonical bytes the hash chain takes;
* ``Decrypt (role session)``: a successful Decrypt by an assumed-role session over TLS
  (encryptionAlgorithm defaulted, keyMaterialId taken from the result);
* ``Encrypt AccessDenied``: a failed Encrypt with errorCode and errorMessage;
* ``CreateKey``: a management request (keyMetadata in responseElements, one ledger event).

Run: ``.venv/bin/python benchmarks/audit_record_bench.py [--number N] [--repeat R]``; prints
the best of R runs of N calls each, in µs per call.
"""

from __future__ import annotations

import argparse
import os
import sys
import timeit
import uuid
from datetime import UTC, datetime
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

from application.audit_records import api_call_record, canonical_bytes  # noqa: E402
from domain.principals import Principal, PrincipalKind  # noqa: E402

ACCOUNT = "111122223333"
KEY = f"arn:aws:kms:us-east-1:{ACCOUNT}:key/1234abcd-12ab-34cd-56ef-1234567890ab"
NOW = datetime(2025, 1, 2, 3, 4, 5, 678901, tzinfo=UTC)
UA = "aws-cli/2.15.0 Python/3.11.6 Linux/6.5.0 exe/x86_64.ubuntu.22 prompt/off command/kms.encrypt"


def cases() -> dict[str, object]:
    alice = Principal(ACCOUNT, PrincipalKind.USER, name="alice", unique_id="AIDAEXAMPLE0000000001")
    role = Principal(ACCOUNT, PrincipalKind.ASSUMED_ROLE, name="App", session_name="s1",
                     unique_id="AROAEXAMPLE0000000001")
    encrypt_params = {"KeyId": KEY, "Plaintext": os.urandom(1024),
                      "EncryptionContext": {"Department": "Engineering", "Project": "Alpha"}}
    encrypt_result = {"CiphertextBlob": os.urandom(1100), "KeyId": KEY,
                      "EncryptionAlgorithm": "SYMMETRIC_DEFAULT"}
    material = {"keyMaterialId": "a" * 64}
    event_id, request_id = str(uuid.uuid4()), str(uuid.uuid4())

    def encrypt():
        return api_call_record(
            principal=alice, access_key_id="AKIAEXAMPLE000000001", account=ACCOUNT,
            region="us-east-1", operation="Encrypt", params=encrypt_params, result=encrypt_result,
            error_code=None, error_message=None, event_time=NOW, event_id=event_id,
            request_id=request_id, source_ip="192.0.2.10", user_agent=UA, resources=(KEY,),
            additional=material)

    decrypt_params = {"CiphertextBlob": os.urandom(1100),
                      "EncryptionContext": {"Department": "Engineering"}}
    decrypt_result = {"KeyId": KEY, "Plaintext": os.urandom(1024),
                      "EncryptionAlgorithm": "SYMMETRIC_DEFAULT", "KeyMaterialId": "b" * 64}

    def decrypt():
        return api_call_record(
            principal=role, access_key_id="ASIAEXAMPLE000000001", account=ACCOUNT,
            region="us-east-1", operation="Decrypt", params=decrypt_params, result=decrypt_result,
            error_code=None, error_message=None, event_time=NOW, event_id=event_id,
            request_id=request_id, source_ip="192.0.2.10", user_agent=UA, resources=(KEY,),
            tls=True, tls_version="TLSv1.3", cipher_suite="TLS_AES_256_GCM_SHA384",
            host="kms.us-east-1.amazonaws.com")

    def denied():
        return api_call_record(
            principal=alice, access_key_id="AKIAEXAMPLE000000001", account=ACCOUNT,
            region="us-east-1", operation="Encrypt", params=encrypt_params, result=None,
            error_code="AccessDeniedException",
            error_message=f"User: {alice.arn} is not authorized to perform: kms:Encrypt on "
                          f"resource: {KEY} because no resource-based policy allows the "
                          "kms:Encrypt action",
            event_time=NOW, event_id=event_id, request_id=request_id, source_ip="192.0.2.10",
            user_agent=UA, resources=(KEY,))

    metadata = {"AWSAccountId": ACCOUNT, "KeyId": KEY.rsplit("/", 1)[1], "Arn": KEY,
                "CreationDate": NOW, "Enabled": True, "Description": "", "KeyUsage": "ENCRYPT_DECRYPT",
                "KeyState": "Enabled", "Origin": "AWS_KMS", "KeyManager": "CUSTOMER",
                "CustomerMasterKeySpec": "SYMMETRIC_DEFAULT", "KeySpec": "SYMMETRIC_DEFAULT",
                "EncryptionAlgorithms": ["SYMMETRIC_DEFAULT"], "MultiRegion": False,
                "CurrentKeyMaterialId": "c" * 64}

    def create_key():
        return api_call_record(
            principal=alice, access_key_id="AKIAEXAMPLE000000001", account=ACCOUNT,
            region="us-east-1", operation="CreateKey",
            params={"Description": "", "Tags": [{"TagKey": "team", "TagValue": "a"}]},
            result={"KeyMetadata": metadata}, error_code=None, error_message=None,
            event_time=NOW, event_id=event_id, request_id=request_id, source_ip="192.0.2.10",
            user_agent=UA, resources=(KEY,), ledger_events=((KEY.rsplit("/", 1)[1], 1),))

    return {
        "Encrypt (IAM user)": encrypt,
        "Encrypt + canonical_bytes": lambda: canonical_bytes(encrypt()),
        "Decrypt (role session, TLS)": decrypt,
        "Encrypt AccessDenied": denied,
        "CreateKey": create_key,
    }


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--number", type=int, default=100_000)
    parser.add_argument("--repeat", type=int, default=5)
    args = parser.parse_args()
    for name, case in cases().items():
        best = min(timeit.repeat(case, number=args.number, repeat=args.repeat))
        print(f"{name:32s} {best / args.number * 1e6:7.2f} µs")


if __name__ == "__main__":
    main()
