"""Where a record waits, durably, when the audit store cannot take it and its request has
already changed the ledger.

A management request's events are committed before its record is written (the record names
them). If the audit store then fails (a lock held too long, PostgreSQL gone, a refused insert),
failing the request would not undo the change: the key exists, its record would be lost, and a
client that retries gets a second key. Such records are appended to this spool instead, one JSON
line each, and fsynced before the request is answered; the audit log moves them into the store
(:meth:`AuditStore.append_missing`: a record already there is not stored twice) before its next
commit, and when it opens.

The spool is a file of the node (``<data-dir>/regions/<region>/audit-spool.jsonl``, mode 0600),
whatever the store: with PostgreSQL gone it is still writable. Processes sharing it (the
workers of one server) take an exclusive ``flock`` to append and to drain. Records hold no
secret (application.audit_records), so the spool holds none. A line that is no record (the
torn last line of a write a crash cut short: its request was never answered) is set aside in
``audit-spool.jsonl.unreadable`` when the spool is drained, and logged.
"""

from __future__ import annotations

import contextlib
import fcntl
import logging
import os
from collections.abc import Callable, Iterator
from pathlib import Path

import orjson

from application.audit import AuditRow

FILE_NAME = "audit-spool.jsonl"

log = logging.getLogger("keyledger.audit")


class AuditSpool:
    def __init__(self, path: Path) -> None:
        self.path = Path(path)
        self._name = os.fspath(self.path)  # (waiting() runs before every commit)

    @contextlib.contextmanager
    def _locked(self) -> Iterator[int]:
        self.path.parent.mkdir(parents=True, exist_ok=True)
        created = not self.path.exists()
        fd = os.open(self.path, os.O_RDWR | os.O_APPEND | os.O_CREAT, 0o600)
        try:
            fcntl.flock(fd, fcntl.LOCK_EX)
            if created:  # the file's name is durable too
                directory = os.open(self.path.parent, os.O_RDONLY)
                try:
                    os.fsync(directory)
                finally:
                    os.close(directory)
            yield fd
        finally:
            os.close(fd)  # (releases the lock)

    def add(self, rows: list[AuditRow]) -> None:
        """Append ``rows``; return once they are on disk. A torn line left by a write a crash
        or a full disk cut short is ended first, so these rows start lines of their own; if
        this write fails, the file is cut back to what it held."""
        lines = b"".join(orjson.dumps([*row.values()[:-1], row.record.decode()]) + b"\n"
                         for row in rows)
        with self._locked() as fd:
            size = os.fstat(fd).st_size
            if size and os.pread(fd, 1, size - 1) != b"\n":
                lines = b"\n" + lines
            try:
                view = memoryview(lines)
                while view:
                    view = view[os.write(fd, view):]
                os.fsync(fd)
            except BaseException:
                with contextlib.suppress(OSError):
                    os.ftruncate(fd, size)
                raise

    def waiting(self) -> bool:
        """Whether records wait here (read without the lock: a hint)."""
        try:
            return os.stat(self._name).st_size > 0
        except OSError:  # none, or none can be: adding one will say why
            return False

    def drain(self, store: Callable[[list[AuditRow]], None]) -> int:
        """Hand every waiting record to ``store`` (in one call), then empty the spool; returns
        how many. If ``store`` raises, the records stay, to be handed over again."""
        if not self.waiting():
            return 0
        with self._locked() as fd:
            with open(fd, "rb", closefd=False) as spool:
                data = spool.read()
            rows, unreadable = [], []
            for line in data.splitlines():
                if not line:
                    continue
                try:
                    *columns, record = orjson.loads(line)
                    rows.append(AuditRow(*columns, record.encode()))
                except (orjson.JSONDecodeError, TypeError, ValueError, AttributeError):
                    unreadable.append(line)  # (a torn last line: its request was not answered)
            if rows:
                store(rows)
            if unreadable:  # (once the rest is stored: a failed drain sets nothing aside twice)
                self._set_aside(unreadable)
            os.ftruncate(fd, 0)
            os.fsync(fd)
        return len(rows)

    def _set_aside(self, lines: list[bytes]) -> None:
        """Lines that are no record go to ``<spool>.unreadable`` for the operator, not away."""
        aside = self.path.with_name(self.path.name + ".unreadable")
        fd = os.open(aside, os.O_WRONLY | os.O_APPEND | os.O_CREAT, 0o600)
        try:
            os.write(fd, b"".join(line + b"\n" for line in lines))
            os.fsync(fd)
        finally:
            os.close(fd)
        log.error("%d unreadable lines of %s set aside in %s", len(lines), self.path, aside)
