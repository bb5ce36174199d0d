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
