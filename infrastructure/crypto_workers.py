"""Helper processes for private-key computations that take a millisecond or more.

RSA signing and decryption, ML-DSA, ECDH, ML-KEM decapsulation, key generation and the
unwrapping of imported material run here rather than in the server process, for two reasons:

* **Priority.** The helpers run at a lower CPU priority (``nice``) than the server. On an idle
  machine that changes nothing: they use every core. On a busy one the event loop, which
  serves Encrypt, Decrypt and GenerateDataKey in microseconds, keeps its CPU, and asymmetric
  work takes what is left. Lowering the priority of threads in the server process does not
  work: they share its GIL, and a low-priority thread holding it stalls the loop.
* **Isolation.** Native code that crashes on hostile input (a peer's public key, a wrapped
  import blob) takes down one helper, which is replaced, not the server.

The event loop awaits a helper directly (:meth:`CryptoWorkers.run`): it writes the call to
the helper's pipe and is woken when the answer is readable, so a request waiting for a
signature costs the loop no thread and no GIL hand-over. Threads that manage keys (key
generation, imports) block on a helper instead (:meth:`CryptoWorkers.call`). A helper serves
one call at a time and belongs to its caller until it has answered.

Each call carries what it needs, the PKCS#8 private key included, over a pipe (kernel memory,
never disk). A helper keeps what it loaded for a short while (:func:`memoized`): the first
signature with a freshly loaded RSA key costs twice a steady one (OpenSSL sets up its
Montgomery and blinding values on first use). Whatever a helper keeps is dropped once it has
gone unused for :data:`MEMO_SECONDS`, idle or not, so key material of a deleted key leaves the
helpers within that time, without the server having to tell them.
A helper that dies is replaced; the call it was serving fails with :class:`CryptoWorkerLost`.
"""

from __future__ import annotations

import asyncio
import collections
import logging
import multiprocessing
import os
import pickle
import threading
import time
from collections.abc import Callable, Hashable
from multiprocessing.connection import Connection
from typing import Any

log = logging.getLogger("keyledger.crypto")

#: how much lower than the server the helpers run (a nice increment, 0-19)
DEFAULT_NICENESS = 10
#: how long a helper keeps an object it made (a loaded private key) after its last use
MEMO_SECONDS = 10.0
#: and how many it keeps at most (the least recently used go first)
MEMO_ENTRIES = 1024


class CryptoWorkerLost(RuntimeError):
    """The helper process serving a call died before it answered."""


class _Helper:
    __slots__ = ("connection", "process", "fd")

    def __init__(self, connection: Connection, process: multiprocessing.process.BaseProcess) -> None:
        self.connection = connection
        self.process = process
        self.fd = connection.fileno()

    def blocking(self) -> Connection:
        """The pipe, in blocking mode: an event loop watching it (uvloop) makes it
        non-blocking, and Connection reads and writes whole messages only when blocking."""
        os.set_blocking(self.fd, True)
        return self.connection


class _BlockedCaller:
    """A thread waiting for a free helper."""

    __slots__ = ("ready", "helper")

    def __init__(self) -> None:
        self.ready = threading.Event()
        self.helper: _Helper | None = None


class CryptoWorkers:
    """A fixed set of helper processes, started on first use, shared by the event loop
    (:meth:`run`) and by threads (:meth:`call`)."""

    def __init__(self, processes: int | None = None, niceness: int = DEFAULT_NICENESS,
                 memo_seconds: float = MEMO_SECONDS) -> None:
        self.processes = processes or os.cpu_count() or 2
        self.memo_seconds = memo_seconds
        self.niceness = 0
        self.set_niceness(niceness)
        self._context = multiprocessing.get_context("spawn")  # no copy of the server's memory
        self._lock = threading.Lock()
        self._helpers: list[_Helper] = []
        self._idle: collections.deque[_Helper] = collections.deque()  # used in turn
        #: callers waiting for a helper, first come first served: asyncio futures of the
        #: loops that await one, and blocked threads
        self._waiting: collections.deque[asyncio.Future | _BlockedCaller] = collections.deque()

    def set_niceness(self, niceness: int) -> None:
        """How much lower than the server the helpers run: a nice increment, 0 (the same
        priority) to 19. Takes effect for helpers started afterwards."""
        if not 0 <= niceness <= 19:
            raise ValueError(f"the crypto helpers' niceness must be 0 to 19, not {niceness}")
        self.niceness = niceness

    # -- calls ---------------------------------------------------------------------------------

    async def run(self, function: Callable[..., Any], *args: Any) -> Any:
        """``function(*args)`` in a helper, awaited on the running event loop; the function's
        exception is raised here. ``function`` must be a module-level function and its
        arguments and result picklable (small: a request's worth)."""
        loop = asyncio.get_running_loop()
        helper = await self._acquire_async(loop)
        answer = loop.create_future()
        try:
            # a request's worth into an idle helper's empty pipe: written at once, even when
            # the loop's watching made the pipe non-blocking
            helper.connection.send_bytes(_dumps((function, args)))
            loop.add_reader(helper.fd, self._answered, loop, helper, answer)
        except (EOFError, OSError) as error:
            self._lost(helper)
            raise CryptoWorkerLost("a crypto helper process died during a call") from error
        except BaseException:
            self._lost(helper)  # e.g. arguments that do not pickle: start from a clean pipe
            raise
        # the reader hands the helper back, even if this coroutine is cancelled meanwhile
        ok, value = await answer
        if not ok:
            raise value
        return value

    def call(self, function: Callable[..., Any], *args: Any) -> Any:
        """``function(*args)`` in a helper, blocking this thread until it answers (never call
        it on an event loop's thread: use :meth:`run` there)."""
        if _loop_running_here():
            raise RuntimeError("CryptoWorkers.call() would block the event loop; await run()")
        helper = self._acquire_blocking()
        try:
            connection = helper.blocking()
            connection.send_bytes(_dumps((function, args)))
            ok, value = pickle.loads(connection.recv_bytes())
        except (EOFError, OSError) as error:
            self._lost(helper)
            raise CryptoWorkerLost("a crypto helper process died during a call") from error
        except BaseException:
            self._lost(helper)  # the pipe may hold an unread answer: not reusable
            raise
        self._release(helper)
        if not ok:
            raise value
        return value

    def _answered(self, loop: asyncio.AbstractEventLoop, helper: _Helper, answer: asyncio.Future) -> None:
        loop.remove_reader(helper.fd)
        try:
            result = pickle.loads(helper.blocking().recv_bytes())  # there, or its rest on the way
        except (EOFError, OSError) as error:
            self._lost(helper)
            if not answer.done():
                lost = CryptoWorkerLost("a crypto helper process died during a call")
                lost.__cause__ = error
                answer.set_exception(lost)
            return
        self._release(helper)
        if not answer.done():  # not cancelled
            answer.set_result(result)

    # -- helpers in use and idle ---------------------------------------------------------------

    async def _acquire_async(self, loop: asyncio.AbstractEventLoop) -> _Helper:
        with self._lock:
            self._start()
            if self._idle:
                return self._idle.popleft()
            waiter = loop.create_future()
            self._waiting.append(waiter)
        try:
            return await waiter
        except asyncio.CancelledError:
            with self._lock:
                if waiter in self._waiting:
                    self._waiting.remove(waiter)
            if waiter.done() and not waiter.cancelled():  # handed over as we were cancelled
                self._release(waiter.result())
            raise

    def _acquire_blocking(self) -> _Helper:
        with self._lock:
            self._start()
            if self._idle:
                return self._idle.popleft()
            waiter = _BlockedCaller()
            self._waiting.append(waiter)
        waiter.ready.wait()
        assert waiter.helper is not None
        return waiter.helper

    def _release(self, helper: _Helper) -> None:
        """Hand a free helper to the first caller waiting, or mark it idle."""
        with self._lock:
            while self._waiting:
                waiter = self._waiting.popleft()
                if isinstance(waiter, _BlockedCaller):
                    waiter.helper = helper
                    waiter.ready.set()
                    return
                if waiter.done():  # cancelled
                    continue
                if waiter.get_loop() is asyncio._get_running_loop():
                    waiter.set_result(helper)  # on the waiter's loop (an answer came in)
                else:
                    waiter.get_loop().call_soon_threadsafe(_hand_over, waiter, helper, self)
                return
            self._idle.append(helper)

    def _lost(self, helper: _Helper) -> None:
        """Replace a helper that died or whose pipe is in an unknown state."""
        log.error("crypto helper process %s is lost (exit code %s); starting another",
                  helper.process.pid, helper.process.exitcode)
        helper.connection.close()
        if helper.process.is_alive():
            helper.process.kill()
        helper.process.join(timeout=1)
        replacement = self._spawn()
        with self._lock:
            if helper in self._helpers:
                self._helpers[self._helpers.index(helper)] = replacement
        self._release(replacement)

    # -- processes -------------------------------------------------------------------------------

    def pids(self) -> list[int]:
        return [helper.process.pid for helper in self._helpers if helper.process.pid is not None]

    def close(self) -> None:
        with self._lock:
            helpers, self._helpers = self._helpers, []
            self._idle.clear()
        for helper in helpers:
            helper.connection.close()  # the helper sees EOF and exits
        for helper in helpers:
            helper.process.join(timeout=5)
            if helper.process.is_alive():
                helper.process.kill()

    def _start(self) -> None:
        """Start the helpers on first use (under the lock)."""
        while len(self._helpers) < self.processes:
            helper = self._spawn()
            self._helpers.append(helper)
            self._idle.append(helper)

    def _spawn(self) -> _Helper:
        ours, theirs = self._context.Pipe()
        process = self._context.Process(
            target=_serve, args=(theirs, self.niceness, self.memo_seconds), name="keyledger-crypto",
            daemon=True,
        )
        process.start()
        theirs.close()
        return _Helper(ours, process)


def _hand_over(waiter: asyncio.Future, helper: _Helper, workers: CryptoWorkers) -> None:
    """On the waiter's loop: give it the helper, unless it was cancelled meanwhile."""
    if waiter.done():
        workers._release(helper)
    else:
        waiter.set_result(helper)


def _dumps(message: Any) -> bytes:
    """Calls and answers cross the pipe pickled: both ends are this module's own processes."""
    return pickle.dumps(message, protocol=pickle.HIGHEST_PROTOCOL)


def _loop_running_here() -> bool:
    try:
        asyncio.get_running_loop()
    except RuntimeError:
        return False
    return True


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


def _serve(connection: Connection, niceness: int, memo_seconds: float) -> None:
    """A helper's life: answer calls until the server closes the pipe."""
    global _memo_seconds
    _memo_seconds = memo_seconds
    os.nice(niceness)
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
