"""uvicorn's HTTP/1.1 protocol (httptools), sending each response in one write.

uvicorn writes a response's status line and headers, then its body, as two writes to the
connection: two system calls and, with Nagle off, two TCP segments the client must wake up
for. A KMS answer is small and whole when it is sent, so :class:`OneWritePerResponse` holds
the first write back until the next one joins it, which for every keyledger response comes in
the same step of the event loop. Whatever is held is written at the latest when the loop next
runs its callbacks, before the connection closes, and before the client's flow control is
consulted, so nothing waits behind it.
"""

from __future__ import annotations

import asyncio
from typing import Any

from uvicorn.protocols.http.httptools_impl import HttpToolsProtocol


class OneWritePerResponse:
    """A connection's transport whose writes leave in pairs: the first is held until the
    second arrives (or the loop comes round), then both go in one system call."""

    __slots__ = ("_transport", "_loop", "_held")

    def __init__(self, transport: asyncio.Transport, loop: asyncio.AbstractEventLoop) -> None:
        self._transport = transport
        self._loop = loop
        self._held: bytes | None = None

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


class KmsHttpProtocol(HttpToolsProtocol):
    """uvicorn's httptools protocol on a :class:`OneWritePerResponse` transport."""

    def connection_made(self, transport: asyncio.Transport) -> None:  # type: ignore[override]
        super().connection_made(OneWritePerResponse(transport, self.loop))  # type: ignore[arg-type]
