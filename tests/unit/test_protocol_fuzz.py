"""Property test of the wire front: whatever arrives on ``POST /``, the answer is a well-formed
AWS JSON 1.1 response and never a server error.

The real ASGI app runs in-process (SQLite store in a temporary directory) and is driven by
httpx's ASGI transport; the maintenance thread (lifespan) is not started, which the app
does not need to serve requests.
"""

from __future__ import annotations

import asyncio
import base64
import json
import os
import string
from typing import Any

import httpx
import pytest
from botocore.model import Shape
from hypothesis import HealthCheck, event, given, settings
from hypothesis import strategies as st

from api.app import create_app
from api.protocol import JSON_CONTENT_TYPE, TARGET_PREFIX, operation_names, service_model
from api.settings import Settings
from application.service import IMPLEMENTED_OPERATIONS
from domain.messages import CATALOGUE

ACCOUNT = "111122223333"
REGION = "us-east-1"
OPERATIONS = sorted(operation_names())
IMPLEMENTED = sorted(IMPLEMENTED_OPERATIONS & operation_names())
ALIAS = "alias/fuzz-target"
#: error codes AWS sends without a message member in some case (domain.messages)
MESSAGELESS = frozenset(t.code for t in CATALOGUE.values() if t.template is None)


class Wire:
    """A synchronous face over httpx.AsyncClient on one event loop."""

    def __init__(self, app) -> None:
        self.loop = asyncio.new_event_loop()
        self.client = httpx.AsyncClient(
            transport=httpx.ASGITransport(app=app), base_url="http://kms", timeout=30
        )

    def post(self, headers: dict[str, str], content: bytes) -> httpx.Response:
        return self.loop.run_until_complete(self.client.post("/", headers=headers, content=content))

    def call(self, operation: str, params: dict[str, Any]) -> tuple[int, dict[str, Any]]:
        response = self.post(
            {"X-Amz-Target": TARGET_PREFIX + operation, "Content-Type": JSON_CONTENT_TYPE},
            json.dumps(params).encode(),
        )
        return response.status_code, response.json()

    def close(self) -> None:
        self.loop.run_until_complete(self.client.aclose())
        self.loop.close()


@pytest.fixture(scope="module")
def wire(tmp_path_factory):
    data_dir = tmp_path_factory.mktemp("keyledger-fuzz")
    # unsigned requests: the wire front's answers, not authentication, are under test here
    app = create_app(Settings(data_dir=str(data_dir), account_id=ACCOUNT, default_region=REGION,
                              auth="open"))
    w = Wire(app)
    yield w
    w.close()
    app.service.close()


@pytest.fixture(scope="module")
def seeds(wire) -> dict[str, Any]:
    """A real key, an alias and a ciphertext, so generated requests can reach real state."""
    status, created = wire.call("CreateKey", {"Description": "fuzz target"})
    assert status == 200, created
    key_id = created["KeyMetadata"]["KeyId"]
    status, _ = wire.call("CreateAlias", {"AliasName": ALIAS, "TargetKeyId": key_id})
    assert status == 200
    status, encrypted = wire.call(
        "Encrypt", {"KeyId": key_id, "Plaintext": base64.b64encode(b"seed").decode(),
                    "EncryptionContext": {"k": "v"}}
    )
    assert status == 200, encrypted
    return {
        "key_id": key_id,
        "key_arn": created["KeyMetadata"]["Arn"],
        "ciphertext": base64.b64decode(encrypted["CiphertextBlob"]),
    }


# -- strategies --------------------------------------------------------------------------------------

json_scalars = st.none() | st.booleans() | st.integers(-(2**63), 2**63 - 1) | st.floats(
    allow_nan=False, allow_infinity=False
) | st.text(max_size=30)
json_values = st.recursive(
    json_scalars,
    lambda children: st.lists(children, max_size=4) | st.dictionaries(st.text(max_size=10), children, max_size=4),
    max_leaves=12,
)
# printable ASCII (what an HTTP header value can carry), no line breaks
header_text = st.text(alphabet=string.digits + string.ascii_letters + string.punctuation + " \t", max_size=60)


def key_refs(seed: dict[str, Any]) -> st.SearchStrategy[str]:
    key_id = seed["key_id"]
    known_refs = st.sampled_from(
        [
            key_id,
            seed["key_arn"],
            ALIAS,
            f"arn:aws:kms:{REGION}:{ACCOUNT}:{ALIAS}",
            f"arn:aws:kms:eu-west-1:{ACCOUNT}:key/{key_id}",
            f"arn:aws:kms:{REGION}:999999999999:key/{key_id}",
            "arn:aws:kms",
            "arn:aws:kms:::",
            "arn:aws:kms:us-east-1:111122223333:key/",
            "arn:aws:kms:us-east-1:111122223333:alias/",
            "arn:aws:s3:::bucket",
            "alias/",
            "alias/aws/ebs",
            "alias/does-not-exist",
            "mrk-" + "0" * 32,
            "00000000-0000-0000-0000-000000000000",
        ]
    )
    return chance(0.75).flatmap(
        lambda known: known_refs if known else st.text(min_size=1, max_size=80)
    )


def blob_values(seed: dict[str, Any]) -> st.SearchStrategy[str]:
    ciphertext = seed["ciphertext"]

    def mutate(args):
        position, value = args
        data = bytearray(ciphertext)
        data[position % len(data)] = value
        return bytes(data)

    raw = st.one_of(
        st.binary(max_size=64),
        st.just(ciphertext),
        st.tuples(st.integers(0, 10_000), st.integers(0, 255)).map(mutate),
        st.integers(0, len(ciphertext)).map(lambda n: ciphertext[:n]),
        st.sampled_from([b"", b"x" * 4096, b"x" * 4097, b"x" * 6145]),
    )
    return raw.map(lambda b: base64.b64encode(b).decode()) | st.text(max_size=12)


KEY_MEMBERS = {"KeyId", "TargetKeyId", "SourceKeyId", "DestinationKeyId"}


def for_shape(shape: Shape, seed: dict[str, Any], name: str = "", depth: int = 0) -> st.SearchStrategy:
    """Values for ``shape``: mostly the right JSON type (in or out of range), sometimes not."""
    typed = _typed(shape, seed, name, depth)
    if not depth:
        return typed
    return chance(0.1).flatmap(lambda wrong: json_values if wrong else typed)


def chance(p: float) -> st.SearchStrategy[bool]:
    """True with probability about ``p``."""
    return st.integers(0, 999).map(lambda n: n < p * 1000)


def _typed(shape: Shape, seed: dict[str, Any], name: str, depth: int) -> st.SearchStrategy:
    kind, meta = shape.type_name, shape.metadata
    if kind == "structure":
        members = {
            member_name: for_shape(member, seed, member_name, depth + 1)
            for member_name, member in shape.members.items()
        }
        required = set(shape.required_members)
        return st.fixed_dictionaries(
            {k: v for k, v in members.items() if k in required and depth == 0},
            optional={k: v for k, v in members.items() if k not in required or depth > 0},
        ) if depth < 3 else st.just({})
    if kind == "list":
        return st.lists(for_shape(shape.member, seed, name, depth + 1), max_size=12) if depth < 3 else st.just([])
    if kind == "map":
        return st.dictionaries(
            st.text(max_size=12), st.text(max_size=12) | json_values, max_size=5
        )
    if kind == "string":
        size = int(meta.get("max", 64))
        anything = st.text(max_size=size + 2 if size < 64 else 64)
        special = []
        if "enum" in meta:
            special.append(st.sampled_from(meta["enum"]))
        if name in KEY_MEMBERS:
            special.append(key_refs(seed))
        if name == "AliasName":
            special.append(
                st.sampled_from([ALIAS, "alias/fuzz-new", "alias/aws/x", "alias/", "x", "alias/a:b"])
            )
        if name == "Policy":
            special.append(
                st.sampled_from(['{"Statement":[{"Effect":"Allow","Action":"kms:*"}]}', "{}", "[]"])
            )
        if name == "Marker":
            special.append(
                st.text(max_size=20).map(
                    lambda s: base64.urlsafe_b64encode(("kl1:" + s).encode()).decode()
                )
            )
        if not special:
            return anything
        return chance(0.8).flatmap(lambda pick: st.one_of(special) if pick else anything)
    if kind == "blob":
        return blob_values(seed)
    if kind in ("integer", "long"):
        low, high = meta.get("min", 0), meta.get("max", 10_000)
        return st.integers(low - 2, high + 2) | st.sampled_from([low - 1, low, high, high + 1, -1, 0])
    if kind == "boolean":
        return st.booleans()
    if kind == "timestamp":
        return st.floats(0, 4e9)
    return json_values


@st.composite
def requests(draw, seed: dict[str, Any]):
    # Mostly well-addressed requests to implemented operations, so bodies reach the handlers.
    operation = draw(st.sampled_from(IMPLEMENTED if draw(chance(0.85)) else OPERATIONS))
    target_kind = "real" if draw(chance(0.85)) else draw(
        st.sampled_from(["garbage", "empty", "missing", "bare", "case"])
    )
    headers: dict[str, str] = {}
    if target_kind == "real":
        headers["X-Amz-Target"] = TARGET_PREFIX + operation
    elif target_kind == "garbage":
        headers["X-Amz-Target"] = draw(header_text)
    elif target_kind == "empty":
        headers["X-Amz-Target"] = ""
    elif target_kind == "bare":
        headers["X-Amz-Target"] = operation
    elif target_kind == "case":
        headers["X-Amz-Target"] = (TARGET_PREFIX + operation).lower()

    content_type = JSON_CONTENT_TYPE if draw(chance(0.8)) else draw(
        st.sampled_from(
            ["application/json", "application/x-amz-json-1.1; charset=utf-8", "APPLICATION/JSON",
               "text/plain", "application/x-amz-json-1.0", "", "multipart/form-data; boundary=x",
               "<random>", "<none>"]
        )
    )
    if content_type == "<random>":
        content_type = draw(header_text)
    if content_type != "<none>":
        headers["Content-Type"] = content_type

    if draw(chance(0.1)):
        region = draw(
            st.sampled_from(["us-east-1", "eu-west-1", "../../etc", "US-EAST-1", "x", "<random>"])
        )
        if region == "<random>":
            region = draw(header_text).replace("/", "").replace(",", "").replace(" ", "") or "r"
        headers["Authorization"] = (
            f"AWS4-HMAC-SHA256 Credential=AKIDFUZZ/20260101/{region}/kms/aws4_request, "
            "SignedHeaders=host, Signature=" + "0" * 64
        )

    body_kind = "shape" if draw(chance(0.8)) else draw(st.sampled_from(["json", "bytes", "empty"]))
    if body_kind == "shape":
        input_shape = service_model().operation_model(operation).input_shape
        document = draw(_typed(input_shape, seed, "", 0)) if input_shape is not None else {}
        body = json.dumps(document).encode()
    elif body_kind == "json":
        body = json.dumps(draw(json_values)).encode()
    elif body_kind == "bytes":
        body = draw(st.binary(max_size=256))
    else:
        body = b""
    return headers, body


# -- the properties ----------------------------------------------------------------------------------


def check_response(response: httpx.Response) -> dict[str, Any]:
    assert response.status_code < 500, (response.status_code, response.text)
    assert response.headers.get("x-amzn-requestid"), dict(response.headers)
    assert response.headers.get("content-type") == JSON_CONTENT_TYPE
    document = response.json()
    assert isinstance(document, dict)
    if response.status_code != 200:
        assert isinstance(document.get("__type"), str) and document["__type"], document
        if "message" in document:
            assert isinstance(document["message"], str) and document["message"], document
        else:  # only where AWS sends the error without one
            assert document["__type"] in MESSAGELESS, document
        assert set(document) <= {"__type", "message"}, document
    else:
        assert "__type" not in document
    return document


@given(data=st.data())
@settings(
    max_examples=int(os.environ.get("FUZZ_EXAMPLES", "300")),
    deadline=None,
    suppress_health_check=[HealthCheck.too_slow, HealthCheck.data_too_large],
)
def test_fuzz_wire(wire, seeds, data):
    headers, body = data.draw(requests(seeds), label="request")
    response = wire.post(headers, body)
    document = check_response(response)
    target = headers.get("X-Amz-Target", "<none>")
    event(f"{response.status_code} {document.get('__type', 'OK')}")
    if response.status_code == 200:
        event(f"succeeded: {target}")


@pytest.mark.parametrize(
    ("headers", "expected_type", "status"),
    [
        ({}, "UnknownOperationException", 400),
        ({"X-Amz-Target": ""}, "UnknownOperationException", 400),
        ({"X-Amz-Target": "TrentService.NoSuchThing"}, "UnknownOperationException", 400),
        ({"X-Amz-Target": "TrentService.Encrypt", "Content-Type": "text/plain"},
         "UnsupportedMediaTypeException", 415),
        ({"X-Amz-Target": "TrentService.Encrypt", "Content-Type": JSON_CONTENT_TYPE},
         "ValidationException", 400),
    ],
)
def test_front_errors(wire, headers, expected_type, status):
    response = wire.post(headers, b"{}")
    document = check_response(response)
    assert response.status_code == status
    assert document["__type"] == expected_type


def test_invalid_region_in_credential_scope(wire):
    """In open mode a credential that is not a SigV4 scope at all (here: a "Region" with path
    separators) names no Region: the request is served in the default Region, and no store
    is created for the made-up name."""
    response = wire.post(
        {"X-Amz-Target": "TrentService.ListKeys", "Content-Type": JSON_CONTENT_TYPE,
         "Authorization": "AWS4-HMAC-SHA256 Credential=AK/20260101/../../x/kms/aws4_request"},
        b"{}",
    )
    assert response.status_code == 200, response.text
    assert check_response(response)["Truncated"] is False
    data_dir = wire.client._transport.app.settings.data_path
    regions = {p.name for p in (data_dir / "regions").iterdir()}
    assert REGION in regions and "x" not in regions and not (data_dir / "x").exists()


def test_list_keys_marker_with_huge_position(wire):
    """A well-formed marker naming a position beyond 64 bits must not be a server error."""
    marker = base64.urlsafe_b64encode(b"kl1:" + b"9" * 30).decode()
    response = wire.post(
        {"X-Amz-Target": "TrentService.ListKeys", "Content-Type": JSON_CONTENT_TYPE},
        json.dumps({"Marker": marker}).encode(),
    )
    document = check_response(response)
    assert response.status_code == 400
    assert document["__type"] == "InvalidMarkerException"


def test_request_ids_are_unique(wire):
    ids = {
        wire.post({"X-Amz-Target": "TrentService.ListKeys", "Content-Type": JSON_CONTENT_TYPE}, b"{}")
        .headers["x-amzn-requestid"]
        for _ in range(20)
    }
    assert len(ids) == 20


def test_create_encrypt_decrypt_round_trip(wire):
    status, created = wire.call("CreateKey", {"Description": "round trip"})
    assert status == 200, created
    metadata = created["KeyMetadata"]
    assert metadata["KeyState"] == "Enabled" and metadata["Enabled"] is True
    key_id = metadata["KeyId"]
    plaintext = b"\x00attack at dawn\xff"
    context = {"purpose": "unit-test", "tenant": "t1"}

    status, encrypted = wire.call(
        "Encrypt",
        {"KeyId": key_id, "Plaintext": base64.b64encode(plaintext).decode(), "EncryptionContext": context},
    )
    assert status == 200, encrypted
    assert encrypted["KeyId"] == metadata["Arn"]
    assert encrypted["EncryptionAlgorithm"] == "SYMMETRIC_DEFAULT"
    blob = encrypted["CiphertextBlob"]

    status, decrypted = wire.call(
        "Decrypt", {"CiphertextBlob": blob, "EncryptionContext": dict(reversed(list(context.items())))}
    )
    assert status == 200, decrypted
    assert base64.b64decode(decrypted["Plaintext"]) == plaintext
    assert decrypted["KeyId"] == metadata["Arn"]
    assert decrypted["KeyMaterialId"] == metadata["CurrentKeyMaterialId"]

    status, error = wire.call("Decrypt", {"CiphertextBlob": blob, "EncryptionContext": {"purpose": "other"}})
    assert status == 400 and error["__type"] == "InvalidCiphertextException"

    status, error = wire.call("Decrypt", {"CiphertextBlob": blob})
    assert status == 400 and error["__type"] == "InvalidCiphertextException"

    status, _ = wire.call("DisableKey", {"KeyId": key_id})
    assert status == 200
    status, error = wire.call("Decrypt", {"CiphertextBlob": blob, "EncryptionContext": context})
    assert status == 400 and error["__type"] == "DisabledException"
    assert metadata["Arn"] in error["message"]


@pytest.mark.parametrize("region", ["xx-fake-1", "us-east-99", "local-region-1"])
def test_only_real_kms_regions_get_a_ledger(wire, region):
    """A credential scope naming an unknown Region is refused before any store is created, with
    AWS's error for it (aws-sdk-ruby#508: "Credential should be scoped to a valid region")."""
    response = wire.post(
        {
            "X-Amz-Target": TARGET_PREFIX + "CreateKey",
            "Content-Type": JSON_CONTENT_TYPE,
            "Authorization": f"AWS4-HMAC-SHA256 Credential=AKID/20260101/{region}/kms/aws4_request, "
            "SignedHeaders=host, Signature=abc",
        },
        b"{}",
    )
    assert response.status_code == 400
    assert response.json() == {
        "__type": "InvalidSignatureException",
        "message": f"Credential should be scoped to a valid region, not '{region}'. ",
    }
    data_dir = wire.client._transport.app.settings.data_path
    assert not (data_dir / "regions" / region).exists()
