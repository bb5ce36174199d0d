"""The real front end behind the real HTTP protocol, in process: which requests are answered in
place (no task) and which in a task, and what each answer waits for (api.http_protocol,
KmsFrontend.answer_now). The transport is a recording one; the store is SQLite."""

from __future__ import annotations

import asyncio
import base64
import json
from pathlib import Path

import orjson
import pytest
import uvicorn
from uvicorn.server import ServerState

from api.app import create_app
from api.bootstrap import serve_crypto_helpers_on, stop_crypto_helpers
from api.http_protocol import KmsHttpProtocol
from api.settings import Settings
from application.audit import AuditQuery
from tests.integration.test_unaudited_use import BrokenStore
from tests.unit.test_http_protocol import RecordingTransport


def kms_request(operation: str, params: dict, region: str = "us-east-1") -> bytes:
    body = json.dumps(params).encode()
    return (f"POST / HTTP/1.1\r\nHost: kms\r\nContent-Type: application/x-amz-json-1.1\r\n"
            f"X-Amz-Target: TrentService.{operation}\r\nUser-Agent: answer-now-test\r\n"
            f"Authorization: AWS4-HMAC-SHA256 Credential=AKIDEXAMPLE/20261207/{region}/kms/"
            f"aws4_request, SignedHeaders=host, Signature=00\r\n"
            f"Content-Length: {len(body)}\r\n\r\n").encode() + body


def answers(transport: RecordingTransport) -> list[tuple[int, dict, dict]]:
    """(status, headers, body) of each answer written."""
    found = []
    for write in transport.writes:
        head, _, body = write.partition(b"\r\n\r\n")
        status_line, *lines = head.decode().split("\r\n")
        headers = dict(line.split(": ", 1) for line in lines)
        found.append((int(status_line.split()[1]), headers, orjson.loads(body)))
    return found


def stored(app, region: str, request_id: str) -> list[dict]:
    store = app.service.region(region).audit.store
    records = [orjson.loads(record) for _, record in store.query(AuditQuery(limit=1000))]
    return [record for record in records if record["requestID"] == request_id]


@pytest.fixture
def front(tmp_path: Path):
    app = create_app(Settings(data_dir=str(tmp_path / "data"), auth="open"))
    yield app
    app.service.close()


def connect(app, loop) -> tuple[KmsHttpProtocol, RecordingTransport, ServerState]:
    config = uvicorn.Config(app, lifespan="off", access_log=False, server_header=False,
                            proxy_headers=False)
    config.load()
    state = ServerState()
    protocol = KmsHttpProtocol(config, state, {}, _loop=loop)
    transport = RecordingTransport()
    protocol.connection_made(transport)
    return protocol, transport, state


async def written(transport: RecordingTransport, count: int = 1) -> None:
    for _ in range(2000):  # (the audit writer is a thread: its commit wakes the loop)
        if len(transport.writes) >= count:
            return
        await asyncio.sleep(0.001)
    raise AssertionError(f"{len(transport.writes)} answers written, not {count}")


def test_an_encrypt_is_answered_in_place_once_its_record_is_stored(front):
    async def run():
        loop = asyncio.get_running_loop()
        protocol, transport, state = connect(front, loop)
        protocol.data_received(kms_request("CreateKey", {}))
        await written(transport)
        key_id = answers(transport)[0][2]["KeyMetadata"]["KeyId"]
        while state.tasks:  # (CreateKey's task: answered, about to end)
            await asyncio.sleep(0)
        tasks_before = asyncio.all_tasks()
        protocol.data_received(kms_request("Encrypt", {
            "KeyId": key_id, "Plaintext": base64.b64encode(b"in place").decode()}))
        assert asyncio.all_tasks() == tasks_before and state.tasks == set()  # no task for it
        await written(transport, 2)
        status, headers, body = answers(transport)[1]
        assert status == 200 and body["KeyId"].endswith(key_id)
        (record,) = stored(front, "us-east-1", headers["x-amzn-requestid"])
        assert (record["eventName"], record["userAgent"]) == ("Encrypt", "answer-now-test")
        protocol.connection_lost(None)

    asyncio.run(run())


def test_a_management_operation_is_answered_in_a_task_a_symmetric_decrypt_in_place(front):
    async def run():
        loop = asyncio.get_running_loop()
        protocol, transport, state = connect(front, loop)
        protocol.data_received(kms_request("CreateKey", {}))
        (task,) = state.tasks  # (a change of the ledger: on a thread, awaited by a task)
        await written(transport)
        key_id = answers(transport)[0][2]["KeyMetadata"]["KeyId"]
        protocol.data_received(kms_request("Encrypt", {
            "KeyId": key_id, "Plaintext": base64.b64encode(b"back").decode()}))
        await written(transport, 2)
        while state.tasks:  # (CreateKey's task: answered, about to end)
            await asyncio.sleep(0)
        blob = answers(transport)[1][2]["CiphertextBlob"]
        protocol.data_received(kms_request("Decrypt", {"CiphertextBlob": blob}))
        assert state.tasks == set()  # (its handler is a coroutine that had nothing to wait for)
        await written(transport, 3)
        status, headers, body = answers(transport)[2]
        assert (status, base64.b64decode(body["Plaintext"])) == (200, b"back")
        assert [record["eventName"] for record in stored(
            front, "us-east-1", headers["x-amzn-requestid"])] == ["Decrypt"]
        protocol.connection_lost(None)

    asyncio.run(run())


def test_an_operation_that_waits_for_a_crypto_helper_goes_on_in_a_task(front):
    async def run():
        loop = asyncio.get_running_loop()
        serve_crypto_helpers_on(loop)  # (as the server's lifespan does)
        protocol, transport, state = connect(front, loop)
        protocol.data_received(kms_request("CreateKey", {"KeySpec": "RSA_2048",
                                                         "KeyUsage": "ENCRYPT_DECRYPT"}))
        await written(transport)
        key_id = answers(transport)[0][2]["KeyMetadata"]["KeyId"]
        protocol.data_received(kms_request("Encrypt", {
            "KeyId": key_id, "Plaintext": base64.b64encode(b"asymmetric").decode(),
            "EncryptionAlgorithm": "RSAES_OAEP_SHA_256"}))
        await written(transport, 2)
        while state.tasks:
            await asyncio.sleep(0)
        blob = answers(transport)[1][2]["CiphertextBlob"]
        protocol.data_received(kms_request("Decrypt", {
            "KeyId": key_id, "CiphertextBlob": blob, "EncryptionAlgorithm": "RSAES_OAEP_SHA_256"}))
        (task,) = state.tasks  # (the private key's work is a helper process's)
        await written(transport, 3)
        status, headers, body = answers(transport)[2]
        assert (status, base64.b64decode(body["Plaintext"])) == (200, b"asymmetric")
        assert [record["eventName"] for record in stored(
            front, "us-east-1", headers["x-amzn-requestid"])] == ["Decrypt"]
        await task
        protocol.connection_lost(None)
        stop_crypto_helpers()

    asyncio.run(run())


def test_a_request_for_a_region_not_open_yet_opens_it_in_a_task_and_is_recorded_there(front):
    async def run():
        loop = asyncio.get_running_loop()
        protocol, transport, state = connect(front, loop)
        assert not front.service.has_region("eu-west-3")
        protocol.data_received(kms_request("Encrypt", {"KeyId": "alias/none",
                                                       "Plaintext": "AA=="}, "eu-west-3"))
        (task,) = state.tasks
        await written(transport)
        status, headers, body = answers(transport)[0]
        assert (status, body["__type"]) == (400, "NotFoundException")
        (record,) = stored(front, "eu-west-3", headers["x-amzn-requestid"])
        assert (record["awsRegion"], record["errorCode"]) == ("eu-west-3", "NotFoundException")
        protocol.connection_lost(None)

    asyncio.run(run())


def test_an_answer_in_place_whose_record_cannot_be_stored_is_an_internal_error(front):
    async def run():
        loop = asyncio.get_running_loop()
        protocol, transport, state = connect(front, loop)
        audit = front.service.region("us-east-1").audit
        audit.store = BrokenStore(audit.store)
        protocol.data_received(kms_request("GenerateRandom", {"NumberOfBytes": 16}))
        assert state.tasks == set()
        await written(transport)
        status, _, body = answers(transport)[0]
        assert (status, body["__type"]) == (500, "KMSInternalException")
        audit.store = audit.store.real
        protocol.connection_lost(None)

    asyncio.run(run())
