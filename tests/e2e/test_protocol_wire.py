"""AWS JSON 1.1 wire protocol details, exercised with raw HTTP (httpx) requests."""

from __future__ import annotations

import base64
import json
import socket
import time
import uuid

import httpx
import pytest

pytestmark = pytest.mark.e2e

CT = "application/x-amz-json-1.1"


@pytest.fixture(scope="module")
def http(shared_server):
    with httpx.Client(base_url=shared_server.url, timeout=30) as client:
        yield client


def _headers(e2e, target: str | None, region: str = "us-east-1", content_type: str | None = CT,
             body: bytes = b"", url: str = "http://127.0.0.1/", **extra):
    """Headers of a raw request, signed with the e2e root key (as boto3 signs)."""
    h = {}
    if content_type is not None:
        h["Content-Type"] = content_type
    if target is not None:
        h["X-Amz-Target"] = target
    h.update(extra)
    return e2e.sign(url, h, body, region)


def _post(http, e2e, target, body, **kw):
    content = body if isinstance(body, (bytes, str)) else json.dumps(body)
    data = content.encode() if isinstance(content, str) else content
    return http.post("/", content=content,
                     headers=_headers(e2e, target, body=data, url=str(http.base_url), **kw))


_ANY = object()


def _assert_error(resp, e2e, expected_type: str, status=400, message=_ANY):
    """One error answer: this code, this status, and this ``message`` (by default any
    non-empty text)."""
    assert resp.status_code == status, f"{resp.status_code} {resp.text[:300]}"
    assert resp.headers.get("x-amzn-RequestId"), dict(resp.headers)
    body = resp.json()
    assert body["__type"] == expected_type, body
    if message is _ANY:
        assert isinstance(body.get("message"), str) and body["message"], body
    else:
        assert body.get("message") == message, body
    return body


def test_successful_call_shape(http, e2e):
    r = _post(http, e2e, "TrentService.CreateKey", {"Description": "raw"})
    assert r.status_code == 200, r.text
    assert r.headers["content-type"].startswith(CT)
    request_id = r.headers.get("x-amzn-RequestId")
    assert request_id
    md = r.json()["KeyMetadata"]
    assert md["Arn"].startswith("arn:aws:kms:us-east-1:111122223333:key/")
    # timestamps travel as epoch seconds (JSON numbers), as botocore expects for awsJson1_1
    assert isinstance(md["CreationDate"], (int, float))

    r2 = _post(http, e2e, "TrentService.DescribeKey", {"KeyId": md["KeyId"]})
    assert r2.status_code == 200
    assert r2.headers["x-amzn-RequestId"] != request_id

    # blobs are base64 in JSON
    pt = base64.b64encode(b"raw bytes").decode()
    enc = _post(http, e2e, "TrentService.Encrypt", {"KeyId": md["KeyId"], "Plaintext": pt})
    assert enc.status_code == 200, enc.text
    blob = enc.json()["CiphertextBlob"]
    base64.b64decode(blob, validate=True)
    dec = _post(http, e2e, "TrentService.Decrypt", {"CiphertextBlob": blob})
    assert dec.status_code == 200 and dec.json()["Plaintext"] == pt


def test_missing_target_header(http, e2e):
    r = _post(http, e2e, None, {})
    _assert_error(r, e2e, "UnknownOperationException",
                  message="Missing or invalid X-Amz-Target header.")


def test_unknown_operation(http, e2e):
    _assert_error(_post(http, e2e, "TrentService.MakeCoffee", {}), e2e, "UnknownOperationException")
    _assert_error(_post(http, e2e, "WrongService.CreateKey", {}), e2e, "UnknownOperationException")


def test_two_target_headers_name_no_operation(http, e2e):
    """A repeated header's values are read joined (RFC 9110 5.3), as SigV4 signs them: two
    X-Amz-Target headers name no one operation (the last one named used to run)."""
    joined = "TrentService.ListKeys,TrentService.DescribeKey"
    signed = _headers(e2e, joined, body=b"{}", url=str(http.base_url))
    pairs = [(name, value) for name, value in signed.items() if name != "X-Amz-Target"]
    pairs += [("X-Amz-Target", target) for target in joined.split(",")]
    _assert_error(http.post("/", content=b"{}", headers=pairs), e2e, "UnknownOperationException",
                  message="Unknown operation ListKeys,TrentService.DescribeKey.")


def test_unsupported_operation(http, e2e):
    key_id = _post(http, e2e, "TrentService.CreateKey", {}).json()["KeyMetadata"]["KeyId"]
    r = _post(http, e2e, "TrentService.UpdatePrimaryRegion", {"KeyId": key_id, "PrimaryRegion": "eu-west-1"})
    _assert_error(r, e2e, "UnsupportedOperationException")
    _assert_error(_post(http, e2e, "TrentService.ReplicateKey", {
        "KeyId": key_id, "ReplicaRegion": "eu-west-1"}), e2e, "UnsupportedOperationException")


def test_sign_with_a_symmetric_key_is_an_invalid_key_usage(http, e2e):
    key_id = _post(http, e2e, "TrentService.CreateKey", {}).json()["KeyMetadata"]["KeyId"]
    r = _post(http, e2e, "TrentService.Sign", {
        "KeyId": key_id, "Message": base64.b64encode(b"m").decode(), "SigningAlgorithm": "RSASSA_PSS_SHA_256"})
    _assert_error(r, e2e, "InvalidKeyUsageException")


def test_malformed_json(http, e2e):
    _assert_error(_post(http, e2e, "TrentService.CreateKey", b"{not json"), e2e, "SerializationException")
    _assert_error(_post(http, e2e, "TrentService.DescribeKey", b'{"KeyId": '), e2e, "SerializationException")
    _assert_error(_post(http, e2e, "TrentService.CreateKey", b"\xff\xfe\x00garbage"), e2e, "SerializationException")


def test_wrong_json_types(http, e2e):
    r = _post(http, e2e, "TrentService.DescribeKey", {"KeyId": 12345})
    _assert_error(r, e2e, "SerializationException",
                  message="INT_VALUE can not be converted to a String")
    r = _post(http, e2e, "TrentService.DescribeKey", [1, 2, 3])
    _assert_error(r, e2e, "SerializationException", message="The request body must be a JSON object.")
    r = _post(http, e2e, "TrentService.Decrypt", {"CiphertextBlob": "***not base64***"})
    _assert_error(r, e2e, "SerializationException", message="Invalid base64 at 'ciphertextBlob'")


def test_missing_required_parameter(http, e2e):
    _assert_error(_post(http, e2e, "TrentService.DescribeKey", {}), e2e, "ValidationException")
    _assert_error(_post(http, e2e, "TrentService.Encrypt", {"Plaintext": "eA=="}), e2e, "ValidationException")


def test_empty_body_is_an_empty_object(http, e2e):
    r = _post(http, e2e, "TrentService.ListKeys", b"")
    # AWS treats an empty payload as {} for operations without required members
    assert r.status_code == 200, r.text
    assert isinstance(r.json()["Keys"], list)


def test_wrong_content_type(http, e2e):
    r = _post(http, e2e, "TrentService.CreateKey", {}, content_type="text/plain")
    _assert_error(r, e2e, "UnsupportedMediaTypeException", 415,
                  "Content-Type must be application/x-amz-json-1.1, not 'text/plain'.")


def test_oversized_body(http, e2e, shared_server):
    big = json.dumps({"KeyId": "x", "Plaintext": "A" * (2 * 1024 * 1024)}).encode()
    try:
        r = http.post("/", content=big, headers=_headers(e2e, "TrentService.Encrypt", body=big,
                                                         url=str(http.base_url)))
    except httpx.HTTPError as exc:  # server may hang up early; it must still be healthy
        pytest.fail(f"server dropped the connection instead of answering: {exc!r}")
    # refused on its declared Content-Length, before the body is read
    _assert_error(r, e2e, "RequestEntityTooLargeException", 413,
                  "Request bodies are limited to 524288 bytes.")
    assert httpx.get(shared_server.url + "/healthz", timeout=5).status_code == 200


def test_unknown_key_error_body(http, e2e):
    missing = str(uuid.uuid4())
    body = _assert_error(_post(http, e2e, "TrentService.DescribeKey", {"KeyId": missing}), e2e, "NotFoundException")
    assert missing in body.get("message", body.get("Message", ""))


def test_region_comes_from_credential_scope(http, e2e):
    r = _post(http, e2e, "TrentService.CreateKey", {"Description": "eu"}, region="eu-west-1")
    assert r.status_code == 200, r.text
    md = r.json()["KeyMetadata"]
    assert md["Arn"] == f"arn:aws:kms:eu-west-1:111122223333:key/{md['KeyId']}"

    same = _post(http, e2e, "TrentService.DescribeKey", {"KeyId": md["KeyId"]}, region="eu-west-1")
    assert same.status_code == 200 and same.json()["KeyMetadata"]["KeyId"] == md["KeyId"]

    _assert_error(_post(http, e2e, "TrentService.DescribeKey", {"KeyId": md["KeyId"]}, region="us-east-1"),
                  e2e, "NotFoundException")
    us_list = _post(http, e2e, "TrentService.ListKeys", {}, region="us-east-1").json()
    assert md["KeyId"] not in {k["KeyId"] for k in us_list["Keys"]}
    eu_list = _post(http, e2e, "TrentService.ListKeys", {"Limit": 1000}, region="eu-west-1").json()
    assert md["KeyId"] in {k["KeyId"] for k in eu_list["Keys"]}



def test_an_unsigned_request_is_refused(http, e2e, shared_server):
    """sigv4 mode: no Authorization header is MissingAuthenticationTokenException (400)."""
    r = http.post("/", content=b"{}", headers={"Content-Type": CT, "X-Amz-Target": "TrentService.CreateKey"})
    assert r.status_code == 400, r.text
    assert r.json() == {"__type": "MissingAuthenticationTokenException",
                        "message": "Request is missing Authentication Token"}


def test_method_and_path_errors_are_not_5xx(http, e2e):
    """Only ``POST /`` speaks KMS; anything else is FastAPI's 404 (no such route), but under
    ``/ledger/v1/``, where the caller is authenticated first (a path the ledger API does not
    have is answered 404 and audited: test_ledger_api_hardening.py)."""
    headers = _headers(e2e, "TrentService.ListKeys", url=str(http.base_url))  # signed for POST /
    for method, path in (("GET", "/"), ("PUT", "/"), ("POST", "/nope")):
        r = http.request(method, path, headers=headers)
        assert (r.status_code, r.json()) == (404, {"detail": "Not Found"}), (method, path, r.text[:200])
    r = http.request("GET", "/ledger/v1/keys", headers=headers)
    assert (r.status_code, r.json()["detail"].split(":")[0]) == (403, "InvalidSignatureException")


def test_healthz_and_startup_banner(shared_server):
    r = httpx.get(shared_server.url + "/healthz", timeout=5)
    assert r.status_code == 200
    # the server announces its endpoint on startup
    assert f"127.0.0.1:{shared_server.port}" in shared_server.log_text()


# The answer to each (operation, payload) below, in order (the key is scheduled for deletion
# by the fourth ScheduleKeyDeletion payload, which is valid for it): 200, or the error code (all
# errors are HTTP 400). S = SerializationException, V = ValidationException, I =
# KMSInvalidStateException, U = InvalidKeyUsageException.
_FUZZ_ANSWERS = {
    "Encrypt":             "V V V V S S U V V V V V V V V V",
    "GenerateDataKey":     "V V V V S S V V S V S V V V V V",
    "GenerateRandom":      "V V V V V V V V S V S V V V V V",
    "ListKeys":            "200 200 200 200 200 200 200 200 200 200 200 S S 200 200 200",
    "TagResource":         "V V V V V V V V V V V V V V V V",
    "ScheduleKeyDeletion": "V V V 200 I I I I I I V V V I S I",
    "EnableKeyRotation":   "V V V I I I I I I I V V V I I V",
    "DescribeKey":         "V V V 200 200 200 200 200 200 200 V V V 200 200 200",
    "CreateAlias":         "V V V V V V V V V V V V V V V V",
    "ReEncrypt":           "V V V V V V V V V V V V V V V V",
}
_CODES = {"S": "SerializationException", "V": "ValidationException",
          "I": "KMSInvalidStateException", "U": "InvalidKeyUsageException"}


def test_fuzzed_payloads_never_5xx(http, e2e):
    key_id = _post(http, e2e, "TrentService.CreateKey", {}).json()["KeyMetadata"]["KeyId"]
    payloads = [
        {"KeyId": None},
        {"KeyId": ""},
        {"KeyId": "x" * 5000},
        {"KeyId": key_id, "Plaintext": ""},
        {"KeyId": key_id, "Plaintext": "eA==", "EncryptionContext": "notamap"},
        {"KeyId": key_id, "Plaintext": "eA==", "EncryptionContext": {"k": 1}},
        {"KeyId": key_id, "Plaintext": "eA==", "EncryptionAlgorithm": "RSAES_OAEP_SHA_256"},
        {"KeyId": key_id, "NumberOfBytes": -1},
        {"KeyId": key_id, "NumberOfBytes": "ten"},
        {"KeyId": key_id, "KeySpec": "AES_512"},
        {"NumberOfBytes": 10**20},
        {"Limit": "x"},
        {"Marker": {"a": 1}},
        {"KeyId": key_id, "Tags": [{"TagKey": "k"}]},
        {"KeyId": key_id, "PendingWindowInDays": 3.5},
        {"KeyId": key_id, "RotationPeriodInDays": 10**12},
    ]
    for op, answers in _FUZZ_ANSWERS.items():
        for payload, answer in zip(payloads, answers.split(), strict=True):
            r = _post(http, e2e, f"TrentService.{op}", payload)
            if answer == "200":
                assert r.status_code == 200, (op, payload, r.text[:300])
            else:
                _assert_error(r, e2e, _CODES[answer])
    # invalid values never take effect
    fresh = _post(http, e2e, "TrentService.CreateKey", {}).json()["KeyMetadata"]["KeyId"]
    for payload, code in (({"KeyId": fresh, "PendingWindowInDays": 3.5}, "SerializationException"),
                          ({"KeyId": fresh, "PendingWindowInDays": "7"}, "SerializationException"),
                          ({"KeyId": fresh, "PendingWindowInDays": 0}, "ValidationException")):
        _assert_error(_post(http, e2e, "TrentService.ScheduleKeyDeletion", payload), e2e, code)
    md = _post(http, e2e, "TrentService.DescribeKey", {"KeyId": fresh}).json()["KeyMetadata"]
    assert md["KeyState"] == "Enabled"


def _raw_exchange(url: str, *chunks: bytes, pause: float = 0.2) -> bytes:
    """Send ``chunks`` over one TCP connection (pausing between them) and read until the
    server closes it or goes quiet."""
    host, port = url.removeprefix("http://").split(":")
    with socket.create_connection((host, int(port)), timeout=5) as sock:
        received = b""
        for n, chunk in enumerate(chunks):
            if n:
                time.sleep(pause)
            sock.sendall(chunk)
        sock.settimeout(1.0)
        try:
            while data := sock.recv(65536):
                received += data
        except TimeoutError:
            pass
        return received


def _raw_request(e2e, target: str, body: bytes, *extra: bytes) -> bytes:
    headers = b"".join(h + b"\r\n" for h in extra)
    signed = e2e.sign("http://kms/", {"Content-Type": CT, "X-Amz-Target": target}, body)
    return (b"POST / HTTP/1.1\r\nHost: kms\r\nContent-Type: " + CT.encode() + b"\r\n"
            b"X-Amz-Target: " + target.encode() + b"\r\nAuthorization: "
            + signed["Authorization"].encode() + b"\r\nX-Amz-Date: " + signed["X-Amz-Date"].encode()
            + b"\r\nContent-Length: %d\r\n" % len(body) + headers + b"\r\n" + body)


def test_responses_held_for_one_write_all_reach_the_client(shared_server, e2e):
    """Every response leaves in one write (api/http_protocol.py): the paths where uvicorn
    writes on its own still reach the client whole."""
    # two requests in one packet: two whole answers, in order
    both = _raw_exchange(shared_server.url,
                         _raw_request(e2e, "TrentService.ListKeys", b"{}")
                         + _raw_request(e2e, "TrentService.NoSuchOperation", b"{}"))
    first, second = both.split(b"HTTP/1.1 ")[1:]
    assert first.startswith(b"200 OK") and b'"Keys"' in first
    assert second.startswith(b"400 Bad Request") and b"UnknownOperationException" in second
    # Expect: 100-continue: the interim answer comes alone, then the final one
    expect = _raw_request(e2e, "TrentService.ListKeys", b"{}", b"Expect: 100-continue")
    head, body = expect[: -2], expect[-2:]
    answered = _raw_exchange(shared_server.url, head, body)
    assert answered.startswith(b"HTTP/1.1 100 Continue\r\n\r\nHTTP/1.1 200 OK\r\n")
    assert answered.endswith(b"}")
    # not HTTP at all: uvicorn's own 400, written just before it closes the connection
    garbage = _raw_exchange(shared_server.url, b"NOT HTTP\r\n\r\n")
    assert garbage.startswith(b"HTTP/1.1 400 Bad Request\r\n")
    assert garbage.endswith(b"Invalid HTTP request received.")
