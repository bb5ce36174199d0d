"""KMS requests answered without an ASGI task (api/http_protocol.py), checked on the wire.

A ``POST /`` over HTTP/1.1 with a ``Content-Length`` of at most 64 KiB, no ``Expect`` and no
``Transfer-Encoding`` is answered by ``KmsHttpProtocol`` through the front end's
``answer_now``; every other request takes uvicorn's ASGI path. These tests drive a real
server over raw TCP sockets and check what each path puts on the wire: pipelining order,
``Connection: close``, the same answer (header names, content type) on both paths, bodies
that arrive in pieces, clients that leave early, the 64 KiB boundary, and one audit record
per answered request (durable before its answer: read back at once, no polling).
"""

from __future__ import annotations

import base64
import json
import re
import socket
import struct
import time
from dataclasses import dataclass

import pytest

from tests.e2e.conftest import ACCOUNT_ID

pytestmark = pytest.mark.e2e

CT = "application/x-amz-json-1.1"
#: the names of a KMS answer's headers, in the order both paths write them
ANSWER_HEADERS = ["date", "content-type", "content-length", "x-amzn-requestid"]
DIRECT_BODY_LIMIT = 64 * 1024  # api/http_protocol.py
PLAINTEXT_TOO_LONG = {
    "__type": "ValidationException",
    "message": "1 validation error detected: Value at 'plaintext' failed to satisfy constraint: "
               "Member must have length less than or equal to 4096",
}
_REQUEST_ID = re.compile(r"[0-9a-f]{8}-[0-9a-f]{4}-[0-9a-f]{4}-[0-9a-f]{4}-[0-9a-f]{12}")


# -- the server, its keys, raw requests --------------------------------------------------------


@pytest.fixture(scope="module")
def server(server_factory):
    """This module's own server: its log holds only what these tests made it write."""
    return server_factory("direct")


@pytest.fixture(scope="module")
def kms(server):
    return server.kms()


@pytest.fixture()
def key_id(kms):
    """A fresh key per test: its Encrypt records are exactly the test's answered Encrypts."""
    return kms.create_key(Description="direct answers")["KeyMetadata"]["KeyId"]


def _json(payload: dict | bytes) -> bytes:
    return payload if isinstance(payload, bytes) else json.dumps(payload).encode()


def request(e2e, operation: str, payload: dict | bytes, *, version: str = "HTTP/1.1",
            extra: tuple[str, ...] = (), chunked: bool = False, region: str = "us-east-1") -> bytes:
    """The bytes of one signed KMS request. SigV4 signs Content-Type, Host, X-Amz-Date and
    X-Amz-Target over the (unchunked) body, exactly as botocore signs; ``extra`` headers
    (Connection, Expect, ...) are sent unsigned. ``chunked``: the body in two chunks under
    ``Transfer-Encoding: chunked`` (no Content-Length)."""
    body = _json(payload)
    target = f"TrentService.{operation}"
    signed = e2e.sign("http://kms/", {"Content-Type": CT, "X-Amz-Target": target}, body, region)
    lines = [f"POST / {version}", "Host: kms", f"Content-Type: {CT}", f"X-Amz-Target: {target}",
             f"X-Amz-Date: {signed['X-Amz-Date']}", f"Authorization: {signed['Authorization']}"]
    lines.append("Transfer-Encoding: chunked" if chunked else f"Content-Length: {len(body)}")
    lines.extend(extra)
    head = ("\r\n".join(lines) + "\r\n\r\n").encode()
    if chunked:
        half = len(body) // 2
        body = b"".join(b"%x\r\n%s\r\n" % (len(part), part)
                        for part in (body[:half], body[half:])) + b"0\r\n\r\n"
    return head + body


def encrypt_payload(key_id: str, plaintext: bytes) -> dict:
    return {"KeyId": key_id, "Plaintext": base64.b64encode(plaintext).decode()}


@dataclass
class Answer:
    status: int
    reason: str
    headers: list[tuple[str, str]]  # (lower-case name, value), in the order received
    body: bytes

    @property
    def names(self) -> list[str]:
        return [name for name, _ in self.headers]

    def header(self, name: str) -> str:
        values = [value for n, value in self.headers if n == name]
        assert len(values) == 1, (name, self.headers)
        return values[0]

    @property
    def request_id(self) -> str:
        return self.header("x-amzn-requestid")

    def json(self) -> dict:
        return json.loads(self.body)


class Wire:
    """One client TCP connection, read as HTTP/1.1 answers (bodies by Content-Length)."""

    def __init__(self, server, *, nodelay: bool = True) -> None:
        self.sock = socket.create_connection(("127.0.0.1", server.port), timeout=5)
        if nodelay:  # each sendall leaves at once, in its own segment
            self.sock.setsockopt(socket.IPPROTO_TCP, socket.TCP_NODELAY, 1)
        self.buffer = b""

    def send(self, data: bytes) -> None:
        self.sock.sendall(data)

    def _more(self) -> None:
        data = self.sock.recv(65536)
        if not data:
            raise AssertionError(f"the server closed the connection; unread: {self.buffer!r}")
        self.buffer += data

    def answer(self) -> Answer:
        while b"\r\n\r\n" not in self.buffer:
            self._more()
        head, self.buffer = self.buffer.split(b"\r\n\r\n", 1)
        status_line, *lines = head.decode("latin-1").split("\r\n")
        version, status, reason = status_line.split(" ", 2)
        assert version == "HTTP/1.1", status_line
        headers = []
        for line in lines:
            name, value = line.split(":", 1)
            headers.append((name.lower(), value.strip()))
        answer = Answer(int(status), reason, headers, b"")
        if answer.status < 200:  # an interim answer has no body
            return answer
        length = int(answer.header("content-length"))
        while len(self.buffer) < length:
            self._more()
        answer.body, self.buffer = self.buffer[:length], self.buffer[length:]
        return answer

    def closed_by_server(self, timeout: float = 5.0) -> bool:
        """True once recv returns b"" (nothing else arrives first)."""
        assert self.buffer == b"", self.buffer
        self.sock.settimeout(timeout)
        return self.sock.recv(65536) == b""

    def nothing_more(self, wait: float = 0.3) -> None:
        """Nothing further arrives within ``wait`` seconds (the connection stays open)."""
        self.sock.settimeout(wait)
        try:
            data = self.sock.recv(65536)
        except TimeoutError:
            data = None
        assert data is None and self.buffer == b"", (data, self.buffer)

    def close(self) -> None:
        self.sock.close()

    def __enter__(self) -> Wire:
        return self

    def __exit__(self, *exc) -> None:
        self.close()


def assert_ok_answer(answer: Answer) -> None:
    """A 200 KMS answer: its headers (names in order, content type, length, request id)."""
    assert (answer.status, answer.reason) == (200, "OK"), (answer, answer.body[:300])
    assert answer.names[:4] == ANSWER_HEADERS, answer.headers
    assert answer.header("content-type") == CT
    assert int(answer.header("content-length")) == len(answer.body)
    assert _REQUEST_ID.fullmatch(answer.request_id), answer.request_id


def assert_decrypts(kms, answer: Answer, key_id: str, plaintext: bytes) -> None:
    assert_ok_answer(answer)
    blob = base64.b64decode(answer.json()["CiphertextBlob"])
    decrypted = kms.decrypt(CiphertextBlob=blob)
    assert decrypted["Plaintext"] == plaintext
    assert decrypted["KeyId"] == answer.json()["KeyId"]
    assert answer.json()["KeyId"].endswith("/" + key_id)


def audited(server, key_id: str, event_name: str) -> list[dict]:
    """The key's audit records of ``event_name`` (ledger audit API), newest first."""
    found = server.ledger_get(f"/ledger/v1/audit?key_id={key_id}&event_name={event_name}"
                              "&limit=1000")
    assert found.status_code == 200, found.text
    return found.json()["Records"]


def assert_audited_once_each(server, key_id: str, request_ids: list[str],
                             event_name: str = "Encrypt") -> None:
    """Exactly one ``event_name`` record of the key per answered request, and no other: read
    right after the answers (a record is durable before its answer leaves)."""
    records = audited(server, key_id, event_name)
    assert sorted(r["requestID"] for r in records) == sorted(request_ids), records
    assert len(set(request_ids)) == len(request_ids), request_ids
    for record in records:
        assert record["eventName"] == event_name
        assert "errorCode" not in record, record


# -- 1. pipelining --------------------------------------------------------------------------------


def test_two_pipelined_encrypts_in_one_send_get_two_answers_in_order(server, kms, key_id, e2e):
    first, second = b"first plaintext", b"second plaintext"
    with Wire(server) as wire:
        wire.send(request(e2e, "Encrypt", encrypt_payload(key_id, first))
                  + request(e2e, "Encrypt", encrypt_payload(key_id, second)))
        one, two = wire.answer(), wire.answer()
        wire.nothing_more()
    assert one.request_id != two.request_id
    assert_decrypts(kms, one, key_id, first)  # in request order: the first answer is the first's
    assert_decrypts(kms, two, key_id, second)
    assert one.names == two.names == ANSWER_HEADERS
    assert_audited_once_each(server, key_id, [one.request_id, two.request_id])


# -- 2. a management request (answered in a task) ahead of hot ones ------------------------------


def test_answers_come_in_request_order_when_a_management_request_goes_first(server, kms, key_id,
                                                                            e2e):
    first, second = b"after the description", b"after the tag"
    with Wire(server) as wire:
        wire.send(request(e2e, "UpdateKeyDescription", {"KeyId": key_id, "Description": "changed"})
                  + request(e2e, "Encrypt", encrypt_payload(key_id, first))
                  + request(e2e, "TagResource", {"KeyId": key_id,
                                                  "Tags": [{"TagKey": "k", "TagValue": "v"}]})
                  + request(e2e, "Encrypt", encrypt_payload(key_id, second)))
        answers = [wire.answer() for _ in range(4)]
        wire.nothing_more()
    update, encrypted, tag, encrypted_again = answers
    for answer in answers:
        assert_ok_answer(answer)
        assert answer.names == ANSWER_HEADERS
    assert len({answer.request_id for answer in answers}) == 4
    assert update.body == b"{}" and tag.body == b"{}"
    assert_decrypts(kms, encrypted, key_id, first)
    assert_decrypts(kms, encrypted_again, key_id, second)
    # each answer is its request's: the records name them by the answers' request ids
    assert [r["requestID"] for r in audited(server, key_id, "UpdateKeyDescription")] == [
        update.request_id]
    assert [r["requestID"] for r in audited(server, key_id, "TagResource")] == [tag.request_id]
    assert_audited_once_each(server, key_id, [encrypted.request_id, encrypted_again.request_id])
    assert kms.describe_key(KeyId=key_id)["KeyMetadata"]["Description"] == "changed"
    assert kms.list_resource_tags(KeyId=key_id)["Tags"] == [{"TagKey": "k", "TagValue": "v"}]


def test_direct_and_asgi_requests_pipelined_together_are_answered_in_order(server, kms, key_id,
                                                                          e2e):
    """A direct answer queued behind an ASGI one (a chunked body, a GET) and the reverse."""
    texts = [b"direct 1", b"chunked 2", b"direct 3"]
    with Wire(server) as wire:
        wire.send(request(e2e, "Encrypt", encrypt_payload(key_id, texts[0]))
                  + request(e2e, "Encrypt", encrypt_payload(key_id, texts[1]), chunked=True)
                  + b"GET /healthz HTTP/1.1\r\nHost: kms\r\n\r\n"
                  + request(e2e, "Encrypt", encrypt_payload(key_id, texts[2])))
        one, two, health, three = (wire.answer() for _ in range(4))
        wire.nothing_more()
    assert_decrypts(kms, one, key_id, texts[0])
    assert_decrypts(kms, two, key_id, texts[1])
    assert health.status == 200 and "x-amzn-requestid" not in health.names, health
    assert_decrypts(kms, three, key_id, texts[2])
    assert_audited_once_each(server, key_id, [one.request_id, two.request_id, three.request_id])


# -- 3. Connection: close --------------------------------------------------------------------------


def test_connection_close_is_answered_then_the_connection_closes(server, kms, key_id, e2e):
    """The answer says ``connection: close`` and the server closes; a request pipelined after
    it is neither answered nor run (no record)."""
    text = b"and close"
    with Wire(server) as wire:
        wire.send(request(e2e, "Encrypt", encrypt_payload(key_id, text),
                          extra=("Connection: close",))
                  + request(e2e, "Encrypt", encrypt_payload(key_id, b"never run")))
        answer = wire.answer()
        assert wire.buffer == b""
        assert wire.closed_by_server()
    assert_decrypts(kms, answer, key_id, text)
    assert answer.names == ANSWER_HEADERS + ["connection"]
    assert answer.header("connection") == "close"
    assert_audited_once_each(server, key_id, [answer.request_id])


# -- 4. the same answer on every path ------------------------------------------------------------


def test_the_same_encrypt_is_answered_alike_on_every_path(server, kms, key_id, e2e):
    """(a) direct; (b) HTTP/1.0, (c) Expect: 100-continue, (d) chunked: uvicorn's ASGI path.
    A chunked body verifies: SigV4 signs the payload, which the server reads unchunked."""
    texts = {path: f"path {path}".encode() for path in "abcd"}
    answers = {}
    with Wire(server) as wire:
        wire.send(request(e2e, "Encrypt", encrypt_payload(key_id, texts["a"])))
        answers["a"] = wire.answer()
        # (c) the interim answer alone, then the body, then the final answer
        whole = request(e2e, "Encrypt", encrypt_payload(key_id, texts["c"]),
                        extra=("Expect: 100-continue",))
        head = whole[:whole.index(b"\r\n\r\n") + 4]
        wire.send(head)
        interim = wire.answer()
        assert (interim.status, interim.reason, interim.headers) == (100, "Continue", [])
        assert wire.buffer == b""
        wire.send(whole[len(head):])
        answers["c"] = wire.answer()
        wire.send(request(e2e, "Encrypt", encrypt_payload(key_id, texts["d"]), chunked=True))
        answers["d"] = wire.answer()
        wire.nothing_more()  # HTTP/1.1: still open
    with Wire(server) as wire:  # (b) HTTP/1.0: answered, then closed
        wire.send(request(e2e, "Encrypt", encrypt_payload(key_id, texts["b"]), version="HTTP/1.0"))
        answers["b"] = wire.answer()
        assert wire.closed_by_server()
    for path, answer in answers.items():
        assert_decrypts(kms, answer, key_id, texts[path])
    assert answers["a"].names == ANSWER_HEADERS
    assert answers["c"].names == answers["a"].names
    assert answers["d"].names == answers["a"].names
    assert answers["b"].names == answers["a"].names + ["connection"]
    assert answers["b"].header("connection") == "close"
    assert_audited_once_each(server, key_id, [answer.request_id for answer in answers.values()])


# -- 5. a body in two segments ---------------------------------------------------------------------


def test_a_body_arriving_in_two_segments_is_answered(server, kms, key_id, e2e):
    text = b"in two segments"
    whole = request(e2e, "Encrypt", encrypt_payload(key_id, text))
    cut = whole.index(b"\r\n\r\n") + 4 + 20  # the headers and 20 bytes of the body, then the rest
    with Wire(server) as wire:
        wire.send(whole[:cut])
        time.sleep(0.2)
        wire.sock.settimeout(0.0)
        with pytest.raises(BlockingIOError):  # nothing answered on half a body
            wire.sock.recv(1)
        wire.sock.settimeout(5)
        wire.send(whole[cut:])
        answer = wire.answer()
        wire.nothing_more()
    assert_decrypts(kms, answer, key_id, text)
    assert answer.names == ANSWER_HEADERS
    assert_audited_once_each(server, key_id, [answer.request_id])


# -- 6. clients that leave before their answer ----------------------------------------------------


def _reset_on_close(wire: Wire) -> None:
    """close() then sends RST, not FIN (the server's next write fails)."""
    wire.sock.setsockopt(socket.SOL_SOCKET, socket.SO_LINGER, struct.pack("ii", 1, 0))


def test_clients_leaving_before_their_answers_do_not_hurt_the_server(server, kms, key_id, e2e):
    encrypt = request(e2e, "Encrypt", encrypt_payload(key_id, b"gone"))
    update = request(e2e, "UpdateKeyDescription", {"KeyId": key_id, "Description": "gone"})
    leavers = [
        (encrypt, False),  # a direct answer, FIN right after the request
        (encrypt, True),  # the same, RST
        (update + encrypt + encrypt, False),  # a task's answer with direct ones queued behind it
        (update + encrypt + encrypt, True),
        (encrypt[:-10], False),  # the body never completes
        (encrypt[:-10], True),
        (request(e2e, "Encrypt", encrypt_payload(key_id, b"gone"), chunked=True), True),  # ASGI
    ]
    for data, reset in leavers:
        wire = Wire(server)
        if reset:
            _reset_on_close(wire)
        wire.send(data)
        wire.close()
    time.sleep(0.5)  # the answers of the requests above are due (and dropped) by now
    text = b"still serving"
    with Wire(server) as wire:
        wire.send(request(e2e, "Encrypt", encrypt_payload(key_id, text)))
        answer = wire.answer()
    assert_decrypts(kms, answer, key_id, text)
    log = server.log_text()
    assert "Traceback" not in log, log[-4000:]
    assert "ERROR" not in log, log[-4000:]
    assert server.is_running()


# -- 7. the 64 KiB boundary ------------------------------------------------------------------------


def _padded(payload: dict, size: int) -> bytes:
    """``payload`` as JSON of exactly ``size`` bytes (whitespace before its closing brace)."""
    body = json.dumps(payload).encode()
    assert len(body) <= size
    return body[:-1] + b" " * (size - len(body)) + b"}"


def test_a_plaintext_too_long_is_the_same_error_under_and_over_64_kib(server, key_id, e2e):
    """60 KiB (direct) and 100 KiB (ASGI, over the direct limit, under the 512 KiB KMS one)."""
    answers = []
    for size in (60 * 1024, 100 * 1024):
        plaintext = b"p" * (size * 3 // 4 - 200)  # base64: just under ``size``
        body = _padded(encrypt_payload(key_id, plaintext), size)
        assert len(body) == size
        with Wire(server) as wire:
            wire.send(request(e2e, "Encrypt", body))
            answers.append(wire.answer())
    for answer in answers:
        assert (answer.status, answer.reason) == (400, "Bad Request"), answer
        assert answer.names == ANSWER_HEADERS
        assert answer.header("content-type") == CT
        assert answer.json() == PLAINTEXT_TOO_LONG
    assert answers[0].body == answers[1].body
    assert answers[0].request_id != answers[1].request_id
    # refused before the key is looked up, their records name no key: read the account's
    found = server.ledger_get("/ledger/v1/audit?event_name=Encrypt&errors_only=true&limit=1000")
    assert found.status_code == 200, found.text
    for answer in answers:
        records = [r for r in found.json()["Records"] if r["requestID"] == answer.request_id]
        assert [(r["errorCode"], r["errorMessage"]) for r in records] == [
            ("ValidationException", PLAINTEXT_TOO_LONG["message"])], records
        # the caller signed it: its record names them, whatever refused it after the signature
        assert records[0]["userIdentity"]["arn"] == f"arn:aws:iam::{ACCOUNT_ID}:root"
        assert records[0]["awsRegion"] == "us-east-1"


def test_a_refused_request_is_recorded_in_the_region_it_was_signed_for(server, key_id, e2e):
    """A Region whose store this server has not opened yet: the refusal opens it and is
    recorded there, with its caller, on the path that answers in place (which hands such a
    request to a task before doing anything) as on uvicorn's."""
    for region, size in (("ap-southeast-2", 60 * 1024), ("ca-central-1", 100 * 1024)):
        body = _padded(encrypt_payload(key_id, b"p" * (size * 3 // 4 - 200)), size)
        with Wire(server) as wire:
            wire.send(request(e2e, "Encrypt", body, region=region))
            answer = wire.answer()
        assert answer.json() == PLAINTEXT_TOO_LONG
        found = server.ledger_get(f"/ledger/v1/audit?region={region}&errors_only=true")
        assert found.status_code == 200, found.text
        (record,) = found.json()["Records"]
        assert (record["requestID"], record["awsRegion"], record["userIdentity"]["arn"]) == (
            answer.request_id, region, f"arn:aws:iam::{ACCOUNT_ID}:root")


def test_valid_encrypts_at_and_just_over_64_kib_are_both_answered(server, kms, key_id, e2e):
    """Bodies of exactly 64 KiB (direct) and 64 KiB + 1 (ASGI) on one connection."""
    texts = [b"at the limit", b"one byte over"]
    with Wire(server) as wire:
        answers = []
        for text, size in zip(texts, (DIRECT_BODY_LIMIT, DIRECT_BODY_LIMIT + 1), strict=True):
            wire.send(request(e2e, "Encrypt", _padded(encrypt_payload(key_id, text), size)))
            answers.append(wire.answer())
        wire.nothing_more()
    for answer, text in zip(answers, texts, strict=True):
        assert_decrypts(kms, answer, key_id, text)
        assert answer.names == ANSWER_HEADERS
    assert_audited_once_each(server, key_id, [answer.request_id for answer in answers])


# -- 8. one record per answer, across many pipelined requests ------------------------------------


def test_every_answer_of_a_long_pipeline_has_exactly_one_record(server, kms, key_id, e2e):
    texts = [f"pipelined {n}".encode() for n in range(40)]
    with Wire(server) as wire:
        wire.send(b"".join(request(e2e, "Encrypt", encrypt_payload(key_id, text))
                           for text in texts))
        answers = [wire.answer() for _ in texts]
        wire.nothing_more()
    for answer, text in zip(answers, texts, strict=True):
        assert_decrypts(kms, answer, key_id, text)
    assert_audited_once_each(server, key_id, [answer.request_id for answer in answers])


# -- 9. a graceful shutdown and the requests answered in a task ----------------------------------


def test_a_shutdown_finishes_the_requests_of_clients_that_left(server_factory, e2e):
    """SIGTERM just after clients sent GenerateDataKeyPair for RSA_4096 pairs (answered in a
    task: it awaits a crypto helper for about a second) and hung up: the shutdown waits for
    those tasks, so every request has its record (without the wait none had)."""
    srv = server_factory("direct-shutdown")
    key_id = srv.kms().create_key(Description="shutdown")["KeyMetadata"]["KeyId"]
    wires = []
    for _ in range(8):
        wire = Wire(srv)
        wire.send(request(e2e, "GenerateDataKeyPair", {"KeyId": key_id, "KeyPairSpec": "RSA_4096"}))
        wires.append(wire)
    time.sleep(0.1)  # (read by the server: under way)
    for wire in wires:
        wire.close()
    srv.stop()
    srv.start()
    records = audited(srv, key_id, "GenerateDataKeyPair")
    assert len(records) == 8, records
    assert len({record["requestID"] for record in records}) == 8
