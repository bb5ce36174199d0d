"""Helper processes for private-key computations that take a millisecond or more.

RSA signing and decryption, ML-DSA, ECDH, ML-KEM decapsulation, key generation and the
unwrapping of imported material run here rather than in the server process, for two reasons:

* **Priority.** The helpers run at a lower CPU priority (``nice``) than the server. On an idle
  machine that changes nothing: they use every core. On a busy one the event loop, which
  serves Encrypt, Decrypt and GenerateDataKey in microseconds, keeps its CPU, and asymmetric
  work takes what is left. Lowering the priority of threads in the server process does not
  work: they share its GIL, and a low-priority thread holding it stalls the loop. A nice
  value still lets a helper take some of the loop's core; Linux's ``SCHED_IDLE`` policy
  (niceness ``idle``) gives helpers only CPU time nothing else wants, at the risk of starving
  asymmetric work on a machine kept busy by other programs.
* **Isolation.** Native code that crashes on hostile input (a peer's public key, a wrapped
  import blob) takes down one helper, which is replaced, not the server.

The server's event loop awaits a helper directly (:meth:`CryptoWorkers.run`): it writes the
call to the helper's pipe and reads the answer when it arrives, so a request waiting for a
signature costs the loop no thread and no GIL hand-over. Calls are written to a helper back to
back (to the one with the fewest in flight) and answered in order, so a busy helper goes from
one call to the next without sleeping in between. Threads that manage keys (key generation,
imports) block on an answer instead (:meth:`CryptoWorkers.call`). Those calls can take
seconds (an RSA_4096 key), so they never go to the last helper, and requests' calls go to a
helper without one whenever they can: a signature never waits behind a key generation.

Each call carries what it needs, the PKCS#8 private key included, over a pipe (kernel memory,
never disk). A helper keeps what it loaded for a short while (:func:`memoized`): the first
signature with a freshly loaded RSA key costs twice a steady one (OpenSSL sets up its
Montgomery and blinding values on first use). Whatever a helper keeps is dropped once it has
gone unused for :data:`MEMO_SECONDS`, idle or not, so key material of a deleted key leaves the
helpers within that time, without the server having to tell them.
A helper that dies is replaced; the calls it was serving fail with :class:`CryptoWorkerLost`.
"""

from __future__ import annotations

import asyncio
import atexit
import collections
import logging
import multiprocessing
import os
import pickle
import socket
import struct
import threading
import time
from collections.abc import Callable, Hashable
from multiprocessing.connection import Connection
from typing import Any

log = logging.getLogger("keyledger.crypto")

#: how much lower than the server the helpers run (a nice increment, 0-19)
DEFAULT_NICENESS = 10
#: the other choice: Linux's SCHED_IDLE policy, CPU time that nothing else wants (nice 19
#: where there is no such policy)
IDLE = "idle"
#: how long a helper keeps an object it made (a loaded private key) after its last use
MEMO_SECONDS = 10.0
#: and how many it keeps at most (the least recently used go first)
MEMO_ENTRIES = 1024


class CryptoWorkerLost(RuntimeError):
    """The helper process serving a call died before it answered."""


class _Helper:
    """One helper process and the server's end of its pipe: calls are written to it back to
    back and answered in order, so ``pending`` holds the futures of the calls in flight."""

    __slots__ = ("process", "transport", "pending", "managing")

    def __init__(self, process: multiprocessing.process.BaseProcess) -> None:
        self.process = process
        self.transport: asyncio.Transport | None = None
        self.pending: collections.deque[asyncio.Future] = collections.deque()
        #: how many of the calls in flight manage keys (CryptoWorkers.call): slow ones
        self.managing = 0


class _HelperPipe(asyncio.Protocol):
    """Reads a helper's answers (multiprocessing's framing: a 4-byte big-endian length, then
    the pickled answer) and resolves the calls' futures in the order they were written."""

    def __init__(self, workers: CryptoWorkers, helper: _Helper) -> None:
        self.workers = workers
        self.helper = helper
        self.buffer = bytearray()

    def data_received(self, data: bytes) -> None:
        buffer = self.buffer
        buffer += data
        while len(buffer) >= 4:
            (size,) = _HEADER.unpack_from(buffer)
            if len(buffer) < 4 + size:
                return
            answer = pickle.loads(buffer[4 : 4 + size])
            del buffer[: 4 + size]
            future = self.helper.pending.popleft()
            if not future.done():  # not cancelled
                future.set_result(answer)

    def connection_lost(self, exc: Exception | None) -> None:
        self.workers._lost(self.helper)


class CryptoWorkers:
    """A fixed set of helper processes, started on first use.

    The helpers' pipes belong to one event loop, the *home* loop: the server's, once
    :meth:`serve_on` names it, otherwise a loop of the pool's own on a background thread.
    Calls awaited on the home loop go straight to a helper; calls from threads
    (:meth:`call`) or from other loops are handed to the home loop."""

    def __init__(self, processes: int | None = None, niceness: int | str = DEFAULT_NICENESS,
                 memo_seconds: float = MEMO_SECONDS) -> None:
        self.processes = processes or os.cpu_count() or 2
        self.memo_seconds = memo_seconds
        self.niceness: int | str = 0
        self.set_niceness(niceness)
        self._context = multiprocessing.get_context("spawn")  # no copy of the server's memory
        self._lock = threading.Lock()
        self._home: asyncio.AbstractEventLoop | None = None
        self._own_loop_thread: threading.Thread | None = None
        self._helpers: list[_Helper] = []
        self._starting: asyncio.Future | None = None
        atexit.register(self.close)  # before multiprocessing's own exit handler stops them

    def set_niceness(self, niceness: int | str) -> None:
        """How much lower than the server the helpers run: a nice increment, 0 (the same
        priority) to 19, or :data:`IDLE`. Takes effect for helpers started afterwards."""
        if str(niceness).strip().lower() == IDLE:
            self.niceness = IDLE
            return
        try:
            value = int(niceness)
        except (TypeError, ValueError):
            value = None
        if value is None or not 0 <= value <= 19:
            raise ValueError(
                f"the crypto helpers' niceness must be 0 to 19 or {IDLE}, not {niceness}"
            )
        self.niceness = value

    def serve_on(self, loop: asyncio.AbstractEventLoop) -> None:
        """Make ``loop`` (the server's) the home of the helpers' pipes."""
        with self._lock:
            if self._home is loop:
                return
        self.close()
        with self._lock:
            self._home = loop

    # -- calls ---------------------------------------------------------------------------------

    async def run(self, function: Callable[..., Any], *args: Any) -> Any:
        """``function(*args)`` in a helper, awaited; the function's exception is raised here.
        ``function`` must be a module-level function and its arguments and result picklable
        (small: a request's worth)."""
        home = self._home_loop()
        if asyncio.get_running_loop() is home:
            return await self._run_at_home(function, args, False)
        return await asyncio.wrap_future(
            asyncio.run_coroutine_threadsafe(self._run_at_home(function, args, False), home)
        )

    def call(self, function: Callable[..., Any], *args: Any) -> Any:
        """``function(*args)`` in a helper for a thread that manages keys, blocking it until
        the helper answers (never call it on an event loop's thread: await :meth:`run` there).
        Such calls may be slow: they keep off the last helper (see :meth:`_choose`)."""
        if _loop_running_here():
            raise RuntimeError("CryptoWorkers.call() would block the event loop; await run()")
        home = self._home_loop()
        return asyncio.run_coroutine_threadsafe(self._run_at_home(function, args, True),
                                                home).result()

    async def _run_at_home(self, function: Callable[..., Any], args: tuple[Any, ...],
                           managing: bool) -> Any:
        if len(self._helpers) < self.processes:
            await self._start()
        helper = self._choose(managing)
        assert helper.transport is not None
        answer = asyncio.get_running_loop().create_future()
        payload = _dumps((function, args))
        helper.pending.append(answer)
        helper.managing += managing
        helper.transport.write(_HEADER.pack(len(payload)) + payload)
        try:
            ok, value = await answer  # cancelled: the helper's answer is read and dropped
        finally:
            helper.managing -= managing
        if not ok:
            raise value
        return value

    def _choose(self, managing: bool) -> _Helper:
        """The helper for a call: the one with the fewest calls in flight, except that calls
        managing keys never go to the last helper (so one is always free of them), and other
        calls avoid helpers busy managing keys while there is one that is not."""
        helpers = self._helpers
        if managing:
            return min(helpers[:-1] or helpers, key=_calls_in_flight)
        return min(helpers, key=_managing_then_in_flight)

    # -- processes -------------------------------------------------------------------------------

    def _home_loop(self) -> asyncio.AbstractEventLoop:
        with self._lock:
            if self._home is not None and not self._home.is_closed():
                return self._home
            loop = asyncio.new_event_loop()
            thread = threading.Thread(target=loop.run_forever, name="keyledger-crypto-pipes",
                                      daemon=True)
            thread.start()
            self._home, self._own_loop_thread = loop, thread
            self._helpers, self._starting = [], None
            return loop

    async def _start(self) -> None:
        """Start the missing helpers (on the home loop; concurrent first calls wait for it)."""
        if self._starting is None or self._starting.done():
            self._starting = asyncio.ensure_future(self._start_helpers())
        await asyncio.shield(self._starting)

    async def _start_helpers(self) -> None:
        while len(self._helpers) < self.processes:
            self._helpers.append(await self._spawn())

    async def _spawn(self) -> _Helper:
        ours, theirs = socket.socketpair()
        child_end = Connection(theirs.detach())
        process = self._context.Process(
            target=_serve, args=(child_end, self.niceness, self.memo_seconds),
            name="keyledger-crypto", daemon=True,
        )
        process.start()
        child_end.close()  # the child has its own copy: when it dies, the pipe closes
        helper = _Helper(process)
        loop = asyncio.get_running_loop()
        helper.transport, _ = await loop.connect_accepted_socket(
            lambda: _HelperPipe(self, helper), sock=ours
        )
        return helper

    def _lost(self, helper: _Helper) -> None:
        """A helper's pipe closed: fail its calls in flight and start another helper."""
        if helper not in self._helpers:
            return  # closed on purpose
        self._helpers.remove(helper)
        log.error("crypto helper process %s is lost (exit code %s); starting another",
                  helper.process.pid, helper.process.exitcode)
        while helper.pending:
            future = helper.pending.popleft()
            if not future.done():
                future.set_exception(CryptoWorkerLost("a crypto helper process died during a call"))
        if helper.process.is_alive():
            helper.process.kill()
        helper.process.join(timeout=1)  # reap it
        asyncio.ensure_future(self._start())

    def pids(self) -> list[int]:
        return [helper.process.pid for helper in self._helpers if helper.process.pid is not None]

    def close(self) -> None:
        """Stop the helpers (and the pool's own loop, if it has one)."""
        with self._lock:
            home, thread = self._home, self._own_loop_thread
            helpers, self._helpers, self._starting = self._helpers, [], None
            self._home = self._own_loop_thread = None
        transports = [helper.transport for helper in helpers if helper.transport is not None]
        if home is not None and asyncio._get_running_loop() is home:
            for transport in transports:
                transport.close()
        elif home is not None and home.is_running():
            home.call_soon_threadsafe(lambda: [t.close() for t in transports])
        for helper in helpers:  # they keep nothing worth a clean exit
            helper.process.terminate()
        for helper in helpers:
            helper.process.join(timeout=5)
            if helper.process.is_alive():
                helper.process.kill()
        if thread is not None and home is not None:
            home.call_soon_threadsafe(home.stop)
            thread.join(timeout=5)
            home.close()


_HEADER = struct.Struct("!i")  # multiprocessing.Connection's frame header


def _calls_in_flight(helper: _Helper) -> int:
    return len(helper.pending)


def _managing_then_in_flight(helper: _Helper) -> tuple[bool, int]:
    return helper.managing > 0, len(helper.pending)


def _dumps(message: Any) -> bytes:
    """Calls and answers cross the pipe pickled: both ends are this module's own processes."""
    return pickle.dumps(message, protocol=pickle.HIGHEST_PROTOCOL)


def _loop_running_here() -> bool:
    return asyncio._get_running_loop() is not None


#: in a helper: key -> (last use, object), least recently used first; see memoized()
_memo: dict[Hashable, tuple[float, Any]] = {}
_memo_seconds = MEMO_SECONDS


def memoized(key: Hashable, make: Callable[[Hashable], Any]) -> Any:
    """In a helper: ``make(key)``, kept for reuse until it has gone unused for a while."""
    found = _memo.pop(key, None)
    value = make(key) if found is None else found[1]
    _memo[key] = (time.monotonic(), value)  # now the most recently used
    if len(_memo) > MEMO_ENTRIES:
        del _memo[next(iter(_memo))]
    return value


def _forget_unused() -> None:
    now = time.monotonic()
    while _memo:
        oldest = next(iter(_memo))
        if now - _memo[oldest][0] < _memo_seconds:
            return
        del _memo[oldest]


def _lower_priority(niceness: int | str) -> None:
    if niceness != IDLE:
        os.nice(niceness)
    elif hasattr(os, "SCHED_IDLE"):
        os.sched_setscheduler(0, os.SCHED_IDLE, os.sched_param(0))
    else:  # no SCHED_IDLE here (macOS): the lowest nice value instead
        os.nice(19)


def _serve(connection: Connection, niceness: int | str, memo_seconds: float) -> None:
    """A helper's life: answer calls until the server closes the pipe."""
    global _memo_seconds
    _memo_seconds = memo_seconds
    _lower_priority(niceness)
    while True:
        try:
            while not connection.poll(memo_seconds / 2):  # idle: drop what has gone unused
                _forget_unused()
            function, args = pickle.loads(connection.recv_bytes())
        except (EOFError, OSError):
            return
        _forget_unused()
        try:
            answer = (True, function(*args))
        except Exception as error:  # raised again in the server, where the caller handles it
            answer = (False, error)
        try:
            message = _dumps(answer)
        except Exception:  # an exception that does not pickle: send what it said
            error = answer[1]
            message = _dumps((False, RuntimeError(f"{type(error).__name__}: {error}")))
        try:
            connection.send_bytes(message)
        except (EOFError, OSError):
            return
