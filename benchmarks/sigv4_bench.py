"""Micro-benchmark of :class:`infrastructure.sigv4.SigV4Verifier`: µs per ``verify`` call.

A real boto3 KMS client signs one Encrypt request (its ``before-send`` hook captures the request
and answers it locally, so nothing goes on the network); the verifier then checks that request
N times with its clock pinned to the request's timestamp, as the HTTP front end would for a
stream of such requests (every cache warm: parsed Authorization header, signing key, trimmed
header values). Also timed: the same with temporary credentials (a session token), and a cold
verifier (a new verifier per call: nothing cached).

    .venv/bin/python benchmarks/sigv4_bench.py [--body-bytes 1024] [--number 20000] [--rounds 7]
"""

from __future__ import annotations

import argparse
import base64
import calendar
import json
import sys
import time
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent.parent))

import boto3  # noqa: E402
from botocore.awsrequest import AWSResponse  # noqa: E402

from domain.principals import AccessKey, Directory, Principal  # noqa: E402
from infrastructure.sigv4 import SigV4Verifier  # noqa: E402

ACCESS_KEY_ID = "AKIAIOSFODNN7EXAMPLE"
SECRET = "wJalrXUtnFEMI/K7MDENG/bPxRfiCYEXAMPLEKEY"
TOKEN = "IQoJb3JpZ2luX2VjEXAMPLETOKEN" * 12
REGION = "us-east-1"
KEY_ID = "1234abcd-12ab-34cd-56ef-1234567890ab"


class _Headers:
    def __init__(self) -> None:
        self.items: list[tuple[bytes, bytes]] = []


def signed_encrypt(body_bytes: int, token: str | None) -> tuple[list[tuple[bytes, bytes]], bytes]:
    """ASGI headers and body of a boto3-signed Encrypt whose JSON body is about ``body_bytes``."""
    overhead = len(json.dumps({"KeyId": KEY_ID, "Plaintext": ""}).encode())
    plaintext = b"p" * max(1, (body_bytes - overhead) * 3 // 4)
    captured: dict[str, object] = {}

    def before_send(request, **_kwargs):
        captured["request"] = request
        reply = json.dumps(
            {
                "CiphertextBlob": base64.b64encode(b"c" * 32).decode(),
                "KeyId": KEY_ID,
                "EncryptionAlgorithm": "SYMMETRIC_DEFAULT",
            }
        ).encode()
        return AWSResponse(request.url, 200, {"x-amzn-RequestId": "r"}, _Raw(reply))

    client = boto3.client(
        "kms",
        region_name=REGION,
        aws_access_key_id=ACCESS_KEY_ID,
        aws_secret_access_key=SECRET,
        aws_session_token=token,
        endpoint_url=f"https://kms.{REGION}.amazonaws.com",
    )
    client.meta.events.register("before-send.kms.Encrypt", before_send)
    client.encrypt(KeyId=KEY_ID, Plaintext=plaintext)
    request = captured["request"]
    headers = [
        (name.lower().encode(), value if isinstance(value, bytes) else value.encode("latin-1"))
        for name, value in request.headers.items()
    ]
    if not any(name == b"host" for name, _ in headers):
        headers.append((b"host", f"kms.{REGION}.amazonaws.com".encode()))
    return headers, request.body


class _Raw:
    def __init__(self, data: bytes) -> None:
        self._data = data

    def stream(self, **_kwargs):
        yield self._data


def timestamp_of(headers: list[tuple[bytes, bytes]]) -> float:
    value = dict(headers)[b"x-amz-date"].decode()
    return float(calendar.timegm(time.strptime(value, "%Y%m%dT%H%M%SZ")))


def per_call(function, number: int, rounds: int) -> float:
    """Best of ``rounds`` of the mean µs per call over ``number`` calls."""
    best = float("inf")
    for _ in range(rounds):
        start = time.perf_counter()
        for _ in range(number):
            function()
        best = min(best, (time.perf_counter() - start) / number)
    return best * 1e6


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--body-bytes", type=int, default=1024)
    parser.add_argument("--number", type=int, default=20000)
    parser.add_argument("--rounds", type=int, default=7)
    args = parser.parse_args()

    principal = Principal.root("111122223333")
    results = {}
    for label, token in (("long-term key", None), ("session token", TOKEN)):
        headers, body = signed_encrypt(args.body_bytes, token)
        key = AccessKey(ACCESS_KEY_ID, SECRET, principal, session_token=token)
        directory = Directory(access_keys={ACCESS_KEY_ID: key})
        now = timestamp_of(headers)
        verifier = SigV4Verifier(lambda d=directory: d, {REGION}, now=lambda n=now: n)
        assert verifier.verify("POST", "/", b"", headers, body)[0] is key

        def warm(v=verifier, h=headers, b=body):
            v.verify("POST", "/", b"", h, b)

        results[label] = per_call(warm, args.number, args.rounds)
        if token is None:
            signed = dict(headers)[b"authorization"].split(b"SignedHeaders=")[1].split(b",")[0]
            print(f"body {len(body)} bytes; signed headers {signed.decode()}")

            def cold(h=headers, b=body, d=directory, n=now):
                SigV4Verifier(lambda: d, {REGION}, now=lambda: n).verify("POST", "/", b"", h, b)

            results["cold (nothing cached)"] = per_call(
                cold, max(1, args.number // 10), args.rounds
            )
    for label, micros in results.items():
        print(f"{label:>22}: {micros:6.2f} µs/verify")


if __name__ == "__main__":
    main()
