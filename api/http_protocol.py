"""uvicorn's HTTP/1.1 protocol (httptools), sending each response in one write, and answering
KMS requests without an ASGI task.

uvicorn writes a response's status line and headers, then its body, as two writes to the
connection: two system calls and, with Nagle off, two TCP segments the client must wake up
for. A KMS answer is small and whole when it is sent, so :class:`OneWritePerResponse` holds
the first write back until the next one joins it, which for every keyledger response comes in
the same step of the event loop. Whatever is held is written at the latest when the loop next
runs its callbacks, before the connection closes, and before the client's flow control is
consulted, so nothing waits behind it.

uvicorn runs every request as an ASGI task: a scope, a task, ``receive`` and ``send``
coroutines and an event per request, which on this machine cost more than keyledger's whole
Encrypt (docs/benchmarks.md, "Session 19"). :class:`KmsHttpProtocol` hands a KMS request
(``POST /`` over HTTP/1.1 with a ``Content-Length`` of at most :data:`DIRECT_BODY_LIMIT`, no
``Expect: 100-continue`` and no ``Transfer-Encoding``) to the front end's ``answer_now`` once
its body has arrived, and writes the answer when the front end calls back (its audit record
durable); a request the front end answers in a task is tracked as uvicorn tracks its own, so a
shutdown waits for it. Such a request takes its place in uvicorn's own order of a connection's
requests (an :class:`_Exchange` stands where a cycle would): pipelined requests wait their
turn, keep-alive, ``Connection: close``, shutdown and a lost connection behave as uvicorn has
them. Every other request, and every request when the application is not keyledger's front
end (a proxy-header middleware around it, say), is uvicorn's, unchanged.
"""

from __future__ import annotations

import asyncio
import contextvars
from typing import Any

from uvicorn.protocols.http.httptools_impl import STATUS_LINE, HttpToolsProtocol

#: the largest declared body of a request answered without an ASGI task: above any KMS
#: operation's usual request (a 4 KiB plaintext is 5.5 KiB of JSON), below uvicorn's high-water
#: mark (at which it stops reading until the application asks for more)
DIRECT_BODY_LIMIT = 64 * 1024
_CONTENT_TYPE = b"content-type: application/x-amz-json-1.1\r\n"


class OneWritePerResponse:
    """A connection's transport whose writes leave in pairs: the first is held until the
    second arrives (or the loop comes round), then both go in one system call."""

    __slots__ = ("_transport", "_loop", "_held")

    def __init__(self, transport: asyncio.Transport, loop: asyncio.AbstractEventLoop) -> None:
        self._transport = transport
        self._loop = loop
        self._held: bytes | None = None

    def write_whole(self, data: bytes) -> None:
        """A whole response: one write (after anything held)."""
        held = self._held
        if held is not None:
            self._held = None
            data = held + data
        self._transport.write(data)

    def write(self, data: bytes) -> None:
        held = self._held
        if held is None:
            self._held = data
            self._loop.call_soon(self.flush)
        else:
            self._held = None
            self._transport.write(held + data)

    def flush(self) -> None:
        held = self._held
        if held is not None:
            self._held = None
            self._transport.write(held)

    def close(self) -> None:
        self.flush()
        self._transport.close()

    def write_eof(self) -> None:
        self.flush()
        self._transport.write_eof()

    def is_closing(self) -> bool:  # asked on every request: spare it the __getattr__ detour
        return self._transport.is_closing()

    def get_write_buffer_size(self) -> int:
        held = self._held
        return self._transport.get_write_buffer_size() + (len(held) if held is not None else 0)

    def __getattr__(self, name: str) -> Any:  # everything else is the connection's own
        return getattr(self._transport, name)


class _Nothing:
    """An event nobody waits for (uvicorn sets a cycle's event as the request's body arrives)."""

    __slots__ = ()

    def set(self) -> None:
        pass


_NOTHING = _Nothing()


class _Exchange:
    """A KMS request answered without an ASGI task, with what uvicorn's protocol reads and
    writes of a request's cycle."""

    __slots__ = ("scope", "body", "more_body", "keep_alive", "disconnected",
                 "response_complete", "started")
    message_event = _NOTHING

    def __init__(self, scope: dict[str, Any]) -> None:
        self.scope = scope
        self.body = bytearray()
        self.more_body = True
        self.keep_alive = True
        self.disconnected = False
        self.response_complete = False
        self.started = False  # its turn has come (the requests before it are answered)


class KmsHttpProtocol(HttpToolsProtocol):
    """uvicorn's httptools protocol on a :class:`OneWritePerResponse` transport, answering KMS
    requests through the front end's ``answer_now`` (module docstring)."""

    def __init__(self, *args: Any, **kwargs: Any) -> None:
        super().__init__(*args, **kwargs)
        self._answer_now = getattr(self.app, "answer_now", None)  # keyledger's front end
        if self.limit_concurrency is not None or self.root_path:
            self._answer_now = None  # (uvicorn's own handling of both)

    def connection_made(self, transport: asyncio.Transport) -> None:  # type: ignore[override]
        super().connection_made(OneWritePerResponse(transport, self.loop))  # type: ignore[arg-type]

    def on_headers_complete(self) -> None:
        if self._answer_now is None or self.url != b"/" or self.expect_100_continue or not self._direct():
            super().on_headers_complete()
            return
        scope = self.scope
        scope["method"] = "POST"
        scope["path"] = "/"
        scope["raw_path"] = b"/"
        scope["query_string"] = b""
        exchange = _Exchange(scope)
        exchange.keep_alive = self.parser.should_keep_alive()  # (no "Connection: close")
        existing, self.cycle = self.cycle, exchange  # type: ignore[assignment]
        if existing is None or existing.response_complete:
            self._start(exchange)
        else:  # pipelined: its turn comes when the requests before it are answered (uvicorn's)
            self.flow.pause_reading()
            self.pipeline.appendleft((exchange, None))  # type: ignore[arg-type]

    def _direct(self) -> bool:
        """POST over HTTP/1.1, no upgrade, a small declared body and no transfer coding."""
        parser = self.parser
        if (parser.get_method() != b"POST" or parser.get_http_version() != "1.1"
                or parser.should_upgrade()):
            return False
        length = None
        for name, value in self.headers:
            if name == b"content-length":
                if length is not None or not value.isdigit():
                    return False
                length = int(value)
            elif name == b"transfer-encoding":
                return False
        return length is not None and length <= DIRECT_BODY_LIMIT

    def _start_asgi_task(self, cycle, app) -> None:  # type: ignore[override]
        if type(cycle) is _Exchange:
            self._start(cycle)
        else:
            super()._start_asgi_task(cycle, app)

    def _start(self, exchange: _Exchange) -> None:
        exchange.started = True
        if not exchange.more_body:
            self._answer(exchange)

    def on_message_complete(self) -> None:
        super().on_message_complete()
        exchange = self.cycle
        if type(exchange) is _Exchange and exchange.started and not exchange.response_complete:
            self._answer(exchange)  # type: ignore[arg-type]

    def _answer(self, exchange: _Exchange) -> None:
        def respond(status: int, payload: bytes, request_id: str) -> None:
            self._respond(exchange, status, payload, request_id)

        # In a context of its own: a request released by the answer before it (its turn come)
        # may be answered inside that answer's task, whose context is that request's.
        later = contextvars.Context().run(self._answer_now, exchange.scope,  # type: ignore[arg-type]
                                          bytes(exchange.body), respond)
        if later is not None:  # answered in a task, which a shutdown waits for (as uvicorn's)
            task = self.loop.create_task(later)
            task.add_done_callback(self.tasks.discard)
            self.tasks.add(task)

    def _respond(self, exchange: _Exchange, status: int, payload: bytes, request_id: str) -> None:
        """Write the answer (as uvicorn's ``send`` would), then let the next request go."""
        if exchange.response_complete:
            return
        if self.transport.is_closing() or exchange.disconnected:
            exchange.response_complete = True
            return
        if self.flow.write_paused:  # the client reads slowly: wait for it, as uvicorn does
            task = self.loop.create_task(self._respond_when_writable(exchange, status, payload,
                                                                     request_id))
            task.add_done_callback(self.tasks.discard)
            self.tasks.add(task)
            return
        content = [STATUS_LINE[status]]
        for name, value in self.server_state.default_headers:
            content.extend((name, b": ", value, b"\r\n"))
        content.append(_CONTENT_TYPE)
        content.append(b"content-length: %d\r\nx-amzn-requestid: %s\r\n"
                       % (len(payload), request_id.encode()))
        if not exchange.keep_alive:
            content.append(b"connection: close\r\n")
        content.append(b"\r\n")
        content.append(payload)
        self.transport.write_whole(b"".join(content))  # type: ignore[attr-defined]
        exchange.response_complete = True
        if not exchange.keep_alive:
            self.transport.close()
        self.on_response_complete()

    async def _respond_when_writable(self, exchange: _Exchange, status: int, payload: bytes,
                                     request_id: str) -> None:
        await self.flow.drain()
        self._respond(exchange, status, payload, request_id)
