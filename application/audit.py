"""The audit log of a region: every request's record is durable before its response leaves.

Records are group-committed: the requests of one event-loop turn hand their records to the
writer thread together (one hand-over per turn, not per request); the writer takes every record
waiting, stores them in one transaction, and then wakes their requests — one wake-up per event
loop per batch. If the store cannot be written, every request of the batch fails (the front end
answers KMSInternalException): no use goes unaudited — but for the records of requests that have
already changed the ledger (``kept``: a management request's events are committed before its
record, which names them). Failing those would not undo the change and would lose its record;
they go to the spool instead (infrastructure.audit_spool: a local file, fsynced), and their
requests are answered as they ended; only if the spool cannot be written either do they fail.
The spool is moved into the store when the log opens, before every commit (whichever process
spooled: one ``stat`` per commit tells) and every second while none arrive. Spooled records
that cannot be moved do not hold the commits after them back (one the store refused for good
would stop every request): those commit, and the spool is tried again before the next.

Under concurrent load the writer waits ``commit_delay`` before a commit that follows one of
several records, so that more records share it (PostgreSQL's ``commit_delay`` with
``commit_siblings``): fewer durable writes per request. A commit of one record is a sign of no
company: the next is not delayed, and a lone request never waits.
"""

from __future__ import annotations

import asyncio
import itertools
import logging
import os
import threading
import time
from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass
from datetime import datetime
from typing import Any, NamedTuple, Protocol

from application.audit_records import canonical_bytes

log = logging.getLogger("keyledger.audit")

_DRAIN_RETRY = 1.0  # seconds between attempts to move spooled records while none arrive


class AuditRow(NamedTuple):
    """One stored record and the columns it is found by (a named tuple: one is built per
    request, and a frozen dataclass takes four times as long to build)."""

    event_time: float  # epoch seconds
    account: str
    key_id: str | None  # the first key the request named (in resources), if any
    principal: str | None  # the caller's ARN (None: not authenticated, or the service itself)
    event_name: str
    error_code: str | None
    request_id: str | None
    event_id: str
    record: bytes  # canonical JSON

    def values(self) -> tuple[Any, ...]:
        """The stored columns, in the table's order."""
        return self


@dataclass(frozen=True, slots=True)
class AuditQuery:
    account: str | None = None  # the recipient account (whose audit it is)
    key_id: str | None = None
    principal: str | None = None
    #: the caller ARN begins so: a role's sessions (arn:aws:sts::ACCOUNT:assumed-role/NAME/)
    principal_prefix: str | None = None
    event_name: str | None = None
    start: float | None = None  # epoch seconds, inclusive
    end: float | None = None  # epoch seconds, inclusive
    errors_only: bool = False
    before_position: int | None = None  # paging: records older than this position
    limit: int = 50


def audit_row(record: Mapping[str, Any], event_time: datetime, account: str,
              resources: Sequence[str], principal_arn: str | None,
              request_id: str | None) -> AuditRow:
    """The stored form of a record built by application.audit_records."""
    key_id = None
    for arn in resources:  # (an alias may come first)
        if ":key/" in arn:
            key_id = arn.rsplit("/", 1)[-1]
            break
    return AuditRow(event_time.timestamp(), account, key_id, principal_arn,
                    record["eventName"], record.get("errorCode"), request_id, record["eventID"],
                    canonical_bytes(record))


def row_note(row: AuditRow) -> dict[str, Any]:
    """A row as a ledger note holds it (domain.request_records): JSON values."""
    return {**row._asdict(), "record": row.record.decode()}


def noted_row(note: Mapping[str, Any]) -> AuditRow:
    """The row a ledger note holds (row_note's inverse)."""
    return AuditRow(**{**note, "record": note["record"].encode()})


_prefix = os.urandom(10).hex()
_EVENT_ID_PREFIX = f"{_prefix[:8]}-{_prefix[8:12]}-{_prefix[12:16]}-{_prefix[16:20]}-"
# a random 48-bit start with bit 48 set, as api.app's request ids
_event_ids = itertools.count(1 << 48 | int.from_bytes(os.urandom(6), "big"))


def new_event_id() -> str:
    """A unique, UUID-shaped CloudTrail eventID: a random per-process prefix and a counter."""
    return _EVENT_ID_PREFIX + hex(next(_event_ids))[3:]


class AuditStorePort(Protocol):
    """What the application needs of the audit store (infrastructure.audit_store)."""

    def append(self, rows: list[AuditRow]) -> None: ...
    def append_missing(self, rows: list[AuditRow]) -> None: ...
    def query(self, query: AuditQuery) -> list[tuple[int, bytes]]: ...
    def after(self, position: int, limit: int) -> list[tuple[int, float, bytes]]: ...
    def first_of_key(self, account: str, key_id: str) -> bytes | None: ...
    def close(self) -> None: ...


class AuditSpoolPort(Protocol):
    """Where kept records wait when the store fails (infrastructure.audit_spool)."""

    def add(self, rows: list[AuditRow]) -> None: ...
    def waiting(self) -> bool: ...
    def drain(self, store: Callable[[list[AuditRow]], None]) -> int: ...


def _settle(futures: list[asyncio.Future], error: BaseException | None) -> None:
    for future in futures:
        if not future.done():
            if error is None:
                future.set_result(None)
            else:
                future.set_exception(error)


class AuditLog:
    """Group commit of one region's audit records."""

    def __init__(self, store: AuditStorePort, commit_delay: float = 0.0,
                 spool: AuditSpoolPort | None = None) -> None:
        self.store = store
        self.commit_delay = commit_delay  # seconds (module docstring)
        self.spool = spool
        self._drain_failing = False  # (the first failure is logged with its traceback)
        self._pending: list[tuple[object, object, bool]] = []  # (row, waiter, kept)
        self._cond = threading.Condition()
        self._closed = False
        # this turn's records per event loop, handed to the writer at the end of the turn
        self._turns: dict[asyncio.AbstractEventLoop, list[tuple[object, object, bool]]] = {}
        self._thread = threading.Thread(target=self._run, name="keyledger-audit", daemon=True)
        self._thread.start()

    async def record(self, row, kept: bool = False) -> None:
        """Store ``row``; return once it is durable (raise if it could not be stored).
        ``kept``: its request has changed the ledger (module docstring)."""
        await self.submit(row, kept)

    def submit(self, row, kept: bool = False) -> asyncio.Future:
        """Hand ``row`` to the writer (from the running event loop): the future is done once it
        is durable, or failed if it could not be stored (:meth:`record` awaits it; a request
        answered from a callback adds one to it)."""
        loop = asyncio.get_running_loop()
        future = loop.create_future()
        turn = self._turns.get(loop)
        if turn is None:
            if self._closed:
                raise RuntimeError("the audit log is closed")
            turn = self._turns[loop] = []
            loop.call_soon(self._hand_over, loop)
        turn.append((row, future, kept))
        return future

    def _hand_over(self, loop: asyncio.AbstractEventLoop) -> None:
        """The records of a loop's turn go to the writer together."""
        turn = self._turns.pop(loop)
        with self._cond:
            if self._closed:
                error = RuntimeError("the audit log is closed")
                for _, future, _ in turn:
                    if not future.done():
                        future.set_exception(error)
                return
            self._pending.extend(turn)
            self._cond.notify()

    def record_blocking(self, *rows, kept: bool = False) -> None:
        """Store ``rows`` from a thread (the scheduler, replication); return once they are
        durable (one group commit for all of them, if the writer is idle). ``kept``: as for
        :meth:`record`."""
        if not rows:
            return
        done = threading.Event()
        outcome: list[BaseException | None] = []

        def waiter(error: BaseException | None) -> None:
            outcome.append(error)
            if len(outcome) == len(rows):
                done.set()

        with self._cond:
            if self._closed:
                raise RuntimeError("the audit log is closed")
            self._pending.extend((row, waiter, kept) for row in rows)
            self._cond.notify()
        done.wait()
        failure = next((error for error in outcome if error is not None), None)
        if failure is not None:
            raise failure

    def _run(self) -> None:
        shared = False  # the last commit stored several records
        self._drain()  # what a crash or another process left
        while True:
            if shared and self.commit_delay:
                time.sleep(self.commit_delay)
            with self._cond:
                while not self._pending and not self._closed:
                    if self.spool is None:
                        self._cond.wait()
                    elif not self._cond.wait(timeout=_DRAIN_RETRY):
                        break  # idle: move what this or another process spooled meanwhile
                if not self._pending and self._closed:
                    return
                batch, self._pending = self._pending, []
            if not batch:  # (outside the lock: the event loop hands records over under it)
                self._drain()
                continue
            shared = len(batch) > 1
            self._drain()  # spooled records go first when they can
            error: BaseException | None = None
            try:
                self.store.append([row for row, _, _ in batch])
            except Exception as failure:  # the requests fail; the log says why
                log.exception("audit records could not be stored (%d requests fail)", len(batch))
                error = failure
            if error is None or not any(kept for _, _, kept in batch):
                self._wake(batch, error)
            else:
                self._wake(*self._spool_kept(batch, error))

    def _drain(self) -> None:
        """Move the spooled records into the store, before the records that come after them.
        If they cannot be moved, the records after them are stored without waiting for them
        (a record the store refuses for good must not stop every request): the log says so,
        every time, until they move."""
        if self.spool is None or not self.spool.waiting():
            return
        try:
            moved = self.spool.drain(self.store.append_missing)
        except Exception as failure:
            if not self._drain_failing:
                log.exception("spooled audit records could not be moved into the store yet")
            else:
                log.warning("spooled audit records could not be moved into the store yet: %s",
                            failure)
            self._drain_failing = True
            return
        self._drain_failing = False
        if moved:
            log.warning("%d spooled audit records moved into the store", moved)

    def _spool_kept(self, batch, error: BaseException) -> tuple[list, BaseException | None]:
        """The batch's kept records to the spool: their requests end as they ended; the others
        (and the kept ones, if the spool fails too) fail with ``error``. Returns what to wake
        with which outcome, as two batches."""
        if self.spool is None:
            return batch, error
        kept = [item for item in batch if item[2]]
        failed = [item for item in batch if not item[2]]
        try:
            self.spool.add([row for row, _, _ in kept])
        except Exception:
            log.exception("%d audit records of requests that changed the ledger could not be "
                          "spooled either: %s", len(kept),
                          b"\n".join(row.record for row, _, _ in kept).decode())
            return batch, error
        log.warning("%d audit records spooled: the audit store cannot be written", len(kept))
        self._wake(kept, None)
        return failed, error

    @staticmethod
    def _wake(batch, error: BaseException | None) -> None:
        by_loop: dict[asyncio.AbstractEventLoop, list[asyncio.Future]] = {}
        for _, waiter, _ in batch:
            if isinstance(waiter, asyncio.Future):
                by_loop.setdefault(waiter.get_loop(), []).append(waiter)
            else:
                waiter(error)
        for loop, futures in by_loop.items():
            try:
                loop.call_soon_threadsafe(_settle, futures, error)
            except RuntimeError:  # the loop closed meanwhile (shutdown)
                pass

    def close(self) -> None:
        with self._cond:
            self._closed = True
            self._cond.notify()
        self._thread.join(timeout=10)
        self._drain()  # (the writer has stopped: this thread may use the store)
        self.store.close()


Waiter = Callable[[BaseException | None], None]
