"""Each response leaves in one write: api.http_protocol on its own, and under uvicorn's protocol."""

from __future__ import annotations

import asyncio
import functools

import pytest
import uvicorn
from uvicorn.server import ServerState

from api.http_protocol import KmsHttpProtocol, OneWritePerResponse


def on_a_loop(test):
    """Run an async test on a fresh event loop (the suite has no async test plugin)."""

    @functools.wraps(test)
    def run(*args, **kwargs):
        asyncio.run(test(*args, **kwargs))

    return run


class RecordingTransport(asyncio.Transport):
    """A connection that records what is written to it and in how many writes."""

    def __init__(self) -> None:
        super().__init__()
        self.writes: list[bytes] = []
        self.closed = False
        self.eof = False
        self.reading_paused = False

    def write(self, data) -> None:
        assert not self.closed, "written after close"
        self.writes.append(bytes(data))

    def write_eof(self) -> None:
        self.eof = True

    def close(self) -> None:
        self.closed = True

    def is_closing(self) -> bool:
        return self.closed

    def get_write_buffer_size(self) -> int:
        return 7

    def pause_reading(self) -> None:
        self.reading_paused = True

    def resume_reading(self) -> None:
        self.reading_paused = False

    def get_extra_info(self, name, default=None):
        return {"peername": ("127.0.0.1", 50000), "sockname": ("127.0.0.1", 8000)}.get(name, default)


@on_a_loop
async def test_a_head_and_its_body_leave_in_one_write():
    transport = RecordingTransport()
    corked = OneWritePerResponse(transport, asyncio.get_running_loop())
    corked.write(b"HTTP/1.1 200 OK\r\n\r\n")
    assert transport.writes == []
    corked.write(b"{}")
    assert transport.writes == [b"HTTP/1.1 200 OK\r\n\r\n{}"]
    await asyncio.sleep(0)  # the pending flush finds nothing held
    assert transport.writes == [b"HTTP/1.1 200 OK\r\n\r\n{}"]


@on_a_loop
async def test_a_lone_write_leaves_when_the_loop_comes_round():
    transport = RecordingTransport()
    corked = OneWritePerResponse(transport, asyncio.get_running_loop())
    corked.write(b"HTTP/1.1 100 Continue\r\n\r\n")
    assert corked.get_write_buffer_size() == 7 + len(b"HTTP/1.1 100 Continue\r\n\r\n")
    await asyncio.sleep(0)
    assert transport.writes == [b"HTTP/1.1 100 Continue\r\n\r\n"]
    assert corked.get_write_buffer_size() == 7


@on_a_loop
async def test_writes_keep_their_order_past_the_pairs():
    transport = RecordingTransport()
    corked = OneWritePerResponse(transport, asyncio.get_running_loop())
    for chunk in (b"a", b"b", b"c"):
        corked.write(chunk)
    await asyncio.sleep(0)
    assert transport.writes == [b"ab", b"c"]


@pytest.mark.parametrize("ending", ["close", "write_eof"])
@on_a_loop
async def test_what_is_held_is_written_before_the_connection_ends(ending):
    transport = RecordingTransport()
    corked = OneWritePerResponse(transport, asyncio.get_running_loop())
    corked.write(b"HTTP/1.1 400 Bad Request\r\n\r\nbad")
    getattr(corked, ending)()
    assert transport.writes == [b"HTTP/1.1 400 Bad Request\r\n\r\nbad"]
    assert transport.closed if ending == "close" else transport.eof


@on_a_loop
async def test_everything_else_is_the_connections_own():
    transport = RecordingTransport()
    corked = OneWritePerResponse(transport, asyncio.get_running_loop())
    corked.pause_reading()
    assert transport.reading_paused
    assert corked.get_extra_info("peername") == ("127.0.0.1", 50000)
    assert not corked.is_closing()


@on_a_loop
async def test_uvicorn_sends_a_kms_answer_in_one_write():
    """The protocol the server runs: a whole request in, one write out holding head and body."""

    async def app(scope, receive, send):
        await receive()
        await send({"type": "http.response.start", "status": 200,
                    "headers": [(b"content-type", b"application/x-amz-json-1.1"),
                                (b"content-length", b"2")]})
        await send({"type": "http.response.body", "body": b"{}"})

    config = uvicorn.Config(app, lifespan="off", access_log=False, server_header=False)
    config.load()
    protocol = KmsHttpProtocol(config, ServerState(), {}, _loop=asyncio.get_running_loop())
    transport = RecordingTransport()
    protocol.connection_made(transport)
    protocol.data_received(
        b"POST / HTTP/1.1\r\nHost: kms\r\nContent-Type: application/x-amz-json-1.1\r\n"
        b"X-Amz-Target: TrentService.ListKeys\r\nContent-Length: 2\r\n\r\n{}"
    )
    for _ in range(20):  # the request's task runs on the loop
        if transport.writes:
            break
        await asyncio.sleep(0)
    await asyncio.sleep(0)
    assert len(transport.writes) == 1
    head, _, body = transport.writes[0].partition(b"\r\n\r\n")
    assert head.startswith(b"HTTP/1.1 200 OK\r\n")
    assert body == b"{}"
    protocol.connection_lost(None)


# --------------------------------------------------------------------------- answer_now

REQUEST = (b"POST / HTTP/1.1\r\nHost: kms\r\nContent-Type: application/x-amz-json-1.1\r\n"
           b"X-Amz-Target: TrentService.Encrypt\r\nContent-Length: 2\r\n\r\n{}")
ANSWER_HEAD = (b"HTTP/1.1 200 OK\r\ncontent-type: application/x-amz-json-1.1\r\n"
               b"content-length: 4\r\nx-amzn-requestid: r-%d\r\n\r\n")


class FrontEnd:
    """keyledger's front end as the protocol sees it: ``answer_now`` for KMS requests (answered
    when the test says, as once a record is durable), ASGI for the rest."""

    def __init__(self) -> None:
        self.now: list[tuple[bytes, list, object]] = []  # (body, headers, respond)
        self.asgi: list[tuple[str, str, bytes]] = []  # (method, path, body)

    def answer_now(self, scope, body, respond) -> None:
        self.now.append((body, list(scope["headers"]), respond))

    async def __call__(self, scope, receive, send) -> None:
        if scope["type"] != "http":
            return
        body = b""
        while True:
            message = await receive()
            body += message.get("body", b"")
            if not message.get("more_body"):
                break
        self.asgi.append((scope["method"], scope["path"], body))
        await send({"type": "http.response.start", "status": 200, "headers": [
            (b"content-type", b"application/x-amz-json-1.1"), (b"content-length", b"4"),
            (b"x-amzn-requestid", b"r-%d" % len(self.asgi))]})
        await send({"type": "http.response.body", "body": b"asgi"})


def connect(app, state: ServerState | None = None):
    config = uvicorn.Config(app, lifespan="off", access_log=False, server_header=False,
                            date_header=False, proxy_headers=False)  # (no proxy: as `serve`)
    config.load()
    protocol = KmsHttpProtocol(config, state or ServerState(), {}, _loop=asyncio.get_running_loop())
    transport = RecordingTransport()
    protocol.connection_made(transport)
    return protocol, transport


async def turns(transport: RecordingTransport, writes: int) -> None:
    for _ in range(50):
        if len(transport.writes) >= writes:
            return
        await asyncio.sleep(0)


@on_a_loop
async def test_a_kms_request_is_answered_by_answer_now_in_one_write_once_it_responds():
    front = FrontEnd()
    protocol, transport = connect(front)
    protocol.data_received(REQUEST)
    assert [body for body, _, _ in front.now] == [b"{}"] and front.asgi == []
    assert (b"x-amz-target", b"TrentService.Encrypt") in front.now[0][1]
    await asyncio.sleep(0)
    assert transport.writes == []  # nothing leaves before the front end responds
    front.now[0][2](200, b"done", "r-1")
    assert transport.writes == [ANSWER_HEAD % 1 + b"done"]
    assert not transport.closed
    protocol.connection_lost(None)


@on_a_loop
async def test_the_direct_answer_is_byte_for_byte_what_uvicorn_sends_for_the_same_answer():
    state = ServerState()
    state.default_headers = [(b"date", b"Mon, 07 Dec 2026 00:00:00 GMT")]
    front = FrontEnd()
    protocol, transport = connect(front, state)
    protocol.data_received(REQUEST)
    front.now[0][2](200, b"asgi", "r-1")
    protocol.data_received(REQUEST.replace(b"POST / ", b"POST /?via=asgi "))  # uvicorn's path
    await turns(transport, 2)
    assert front.asgi == [("POST", "/", b"{}")]
    assert transport.writes[0] == transport.writes[1]
    assert transport.writes[0].startswith(b"HTTP/1.1 200 OK\r\ndate: Mon, 07 Dec 2026")
    protocol.connection_lost(None)


@on_a_loop
async def test_pipelined_requests_are_answered_in_their_order():
    front = FrontEnd()
    protocol, transport = connect(front)
    protocol.data_received(REQUEST + REQUEST.replace(b"{}", b"[]"))
    assert len(front.now) == 1  # the second waits for the first's answer
    assert transport.reading_paused
    front.now[0][2](200, b"one!", "r-1")
    assert [body for body, _, _ in front.now] == [b"{}", b"[]"]
    front.now[1][2](200, b"two!", "r-2")
    assert transport.writes == [ANSWER_HEAD % 1 + b"one!", ANSWER_HEAD % 2 + b"two!"]
    protocol.connection_lost(None)


@on_a_loop
async def test_a_kms_request_pipelined_behind_an_asgi_one_waits_for_it():
    front = FrontEnd()
    protocol, transport = connect(front)
    protocol.data_received(REQUEST.replace(b"POST / ", b"POST /?first ") + REQUEST)
    assert front.now == []
    await turns(transport, 1)
    assert transport.writes == [ANSWER_HEAD % 1 + b"asgi"]
    assert len(front.now) == 1
    front.now[0][2](200, b"next", "r-2")
    assert transport.writes[1] == ANSWER_HEAD % 2 + b"next"
    protocol.connection_lost(None)


@on_a_loop
async def test_a_body_in_pieces_is_answered_once_whole():
    front = FrontEnd()
    protocol, transport = connect(front)
    request = REQUEST.replace(b"Content-Length: 2", b"Content-Length: 7").replace(b"{}", b"")
    protocol.data_received(request + b'{"a"')
    assert front.now == []
    protocol.data_received(b":1}")
    assert [body for body, _, _ in front.now] == [b'{"a":1}']
    front.now[0][2](200, b"done", "r-1")
    assert transport.writes == [ANSWER_HEAD % 1 + b"done"] and not transport.closed
    protocol.connection_lost(None)


@on_a_loop
async def test_connection_close_is_answered_and_the_connection_closed():
    front = FrontEnd()
    protocol, transport = connect(front)
    protocol.data_received(REQUEST.replace(b"Host: kms\r\n", b"Host: kms\r\nConnection: close\r\n"))
    front.now[0][2](200, b"done", "r-1")
    assert transport.writes == [(ANSWER_HEAD % 1).replace(b"\r\n\r\n", b"\r\nconnection: close\r\n\r\n")
                                + b"done"]
    assert transport.closed


@on_a_loop
async def test_a_shutdown_lets_the_request_in_flight_finish_then_closes():
    front = FrontEnd()
    protocol, transport = connect(front)
    protocol.data_received(REQUEST)
    protocol.shutdown()
    assert not transport.closed
    front.now[0][2](200, b"done", "r-1")
    assert transport.writes[0].endswith(b"connection: close\r\n\r\ndone")
    assert transport.closed


@on_a_loop
async def test_an_answer_to_a_lost_connection_is_not_written():
    front = FrontEnd()
    protocol, transport = connect(front)
    protocol.data_received(REQUEST)
    transport.close()
    protocol.connection_lost(None)
    front.now[0][2](200, b"done", "r-1")
    assert transport.writes == []


@on_a_loop
async def test_an_answer_waits_while_the_client_does_not_read():
    front = FrontEnd()
    protocol, transport = connect(front)
    protocol.data_received(REQUEST)
    protocol.pause_writing()
    front.now[0][2](200, b"done", "r-1")
    await asyncio.sleep(0)
    assert transport.writes == []
    protocol.resume_writing()
    await turns(transport, 1)
    assert transport.writes == [ANSWER_HEAD % 1 + b"done"]
    protocol.connection_lost(None)


@pytest.mark.parametrize("request_bytes", [
    REQUEST.replace(b"HTTP/1.1", b"HTTP/1.0"),
    REQUEST.replace(b"Host: kms\r\n", b"Host: kms\r\nExpect: 100-continue\r\n"),
    REQUEST.replace(b"Content-Length: 2\r\n\r\n{}", b"Transfer-Encoding: chunked\r\n\r\n2\r\n{}\r\n0\r\n\r\n"),
    REQUEST.replace(b"POST / ", b"POST /?Action=Encrypt "),
    REQUEST.replace(b"POST / ", b"PUT / "),
    REQUEST.replace(b"Content-Length: 2\r\n\r\n{}", b"\r\n"),
], ids=["http-1.0", "expect", "chunked", "query", "put", "no-length"])
@on_a_loop
async def test_other_requests_take_uvicorns_asgi_path(request_bytes):
    front = FrontEnd()
    protocol, transport = connect(front)
    protocol.data_received(request_bytes)
    await turns(transport, 1)
    assert front.now == []
    assert len(front.asgi) == 1
    protocol.connection_lost(None)


@on_a_loop
async def test_a_large_body_takes_uvicorns_asgi_path():
    front = FrontEnd()
    protocol, transport = connect(front)
    body = b"x" * (64 * 1024 + 1)
    protocol.data_received(REQUEST.replace(b"Content-Length: 2", b"Content-Length: %d" % len(body))
                           .replace(b"{}", body))
    await turns(transport, 1)
    assert front.now == [] and front.asgi == [("POST", "/", body)]
    protocol.connection_lost(None)


@on_a_loop
async def test_an_application_without_answer_now_gets_every_request_through_asgi():
    front = FrontEnd()

    async def app(scope, receive, send):
        await front(scope, receive, send)

    protocol, transport = connect(app)
    protocol.data_received(REQUEST)
    await turns(transport, 1)
    assert front.now == [] and front.asgi == [("POST", "/", b"{}")]
    protocol.connection_lost(None)


@on_a_loop
async def test_behind_uvicorns_proxy_header_middleware_every_request_goes_through_asgi():
    """(``FORWARDED_ALLOW_IPS`` set: the middleware, not the front end, is the application)"""
    front = FrontEnd()
    config = uvicorn.Config(front, lifespan="off", access_log=False, proxy_headers=True)
    config.load()
    protocol = KmsHttpProtocol(config, ServerState(), {}, _loop=asyncio.get_running_loop())
    transport = RecordingTransport()
    protocol.connection_made(transport)
    protocol.data_received(REQUEST)
    await turns(transport, 1)
    assert front.now == [] and front.asgi == [("POST", "/", b"{}")]
    protocol.connection_lost(None)


@on_a_loop
async def test_a_request_the_front_end_answers_in_a_task_is_one_a_shutdown_waits_for():
    """(uvicorn's graceful shutdown waits for ``server_state.tasks``: a client that left must not
    let it drop a request half done)"""
    front = FrontEnd()
    release = asyncio.Event()

    async def later(respond) -> None:
        await release.wait()
        respond(200, b"late", "r-1")

    front.answer_now = lambda scope, body, respond: later(respond)
    state = ServerState()
    protocol, transport = connect(front, state)
    protocol.data_received(REQUEST)
    await asyncio.sleep(0)
    (task,) = state.tasks
    assert not task.done() and transport.writes == []
    release.set()
    await task
    assert transport.writes == [ANSWER_HEAD % 1 + b"late"]
    assert state.tasks == set()
    protocol.connection_lost(None)


def test_a_request_whose_task_is_cancelled_is_still_answered():
    """(a task answering a request that ends without an answer would hold its connection, and
    every request pipelined behind it, open forever: uvicorn answers 500, so does the front end)"""
    from api.app import KmsFrontend

    frontend = KmsFrontend.__new__(KmsFrontend)

    async def cancelled(scope, headers, body):
        raise asyncio.CancelledError

    frontend._answer = cancelled
    answers = []
    with pytest.raises(asyncio.CancelledError):
        asyncio.run(frontend._answer_later({}, {}, b"{}", lambda *answer: answers.append(answer)))
    ((status, payload, request_id),) = answers
    assert (status, payload) == (500, b'{"__type":"KMSInternalException","message":"An internal '
                                      b'error occurred."}')
    assert len(request_id) == 36


# --------------------------------------------------------------------------- _run_on


def _started(coroutine):
    """Run ``coroutine`` outside a task until it first waits (as answer_now does): what it
    yielded."""
    return coroutine.send(None)


@on_a_loop
async def test_a_coroutine_started_outside_a_task_runs_on_to_its_value():
    from api.app import _run_on

    loop = asyncio.get_running_loop()
    first, second = loop.create_future(), loop.create_future()

    async def operation():
        a = await first
        await asyncio.sleep(0)
        b = await second
        return a + b

    coroutine = operation()
    waiting = _started(coroutine)
    assert waiting is first
    task = asyncio.ensure_future(_run_on(coroutine, waiting))
    loop.call_soon(first.set_result, 40)
    loop.call_later(0.01, second.set_result, 2)
    assert await task == 42


@on_a_loop
async def test_the_coroutine_reads_a_failure_of_what_it_waited_for_itself():
    from api.app import _run_on

    loop = asyncio.get_running_loop()
    answer = loop.create_future()

    async def operation():
        try:
            await answer
        except LookupError as error:
            return f"caught {error}"

    coroutine = operation()
    task = asyncio.ensure_future(_run_on(coroutine, _started(coroutine)))
    loop.call_soon(answer.set_exception, LookupError("it"))
    assert await task == "caught it"


@on_a_loop
async def test_cancelling_the_task_cancels_what_it_waits_for_and_the_coroutine_sees_it():
    from api.app import _run_on

    loop = asyncio.get_running_loop()
    answer = loop.create_future()
    cleaned = []

    async def operation():
        try:
            await answer
        except asyncio.CancelledError:
            cleaned.append(True)
            raise

    coroutine = operation()
    task = asyncio.ensure_future(_run_on(coroutine, _started(coroutine)))
    await asyncio.sleep(0)
    task.cancel()
    with pytest.raises(asyncio.CancelledError):
        await task
    assert answer.cancelled() and cleaned == [True]


@on_a_loop
async def test_cancelling_a_coroutine_that_waits_for_nothing_throws_the_cancellation_into_it():
    from api.app import _run_on

    seen = []

    async def operation():
        try:
            await asyncio.sleep(0)
            await asyncio.sleep(3600)
        except asyncio.CancelledError:
            seen.append("cancelled")
            raise

    coroutine = operation()
    task = asyncio.ensure_future(_run_on(coroutine, _started(coroutine)))  # (it yielded None)
    await asyncio.sleep(0)
    task.cancel()
    with pytest.raises(asyncio.CancelledError):
        await task
    assert seen == ["cancelled"]


def test_a_request_whose_operation_is_cancelled_while_it_waits_is_still_answered():
    from api.app import KmsFrontend

    frontend = KmsFrontend.__new__(KmsFrontend)
    answers = []

    async def run():
        answer = asyncio.get_running_loop().create_future()

        async def operation():
            return await answer

        coroutine = operation()
        task = asyncio.ensure_future(frontend._answer_after(
            coroutine, _started(coroutine), {}, {}, "r-1", None, None, None,
            lambda *answered: answers.append(answered)))
        await asyncio.sleep(0)
        task.cancel()
        with pytest.raises(asyncio.CancelledError):
            await task
        assert answer.cancelled()

    asyncio.run(run())
    assert answers == [(500, b'{"__type":"KMSInternalException","message":"An internal error '
                             b'occurred."}', "r-1")]
