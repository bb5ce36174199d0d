"""A region: its ledger, the in-memory state of its keys, its listing projection, and
the single writer that group-commits its changes."""

from __future__ import annotations

import random
import threading
import time
from collections.abc import Callable
from contextlib import AbstractContextManager
from contextvars import ContextVar
from dataclasses import dataclass
from typing import Any

from eventsourcing.persistence import IntegrityError

from application.audit import AuditLog, AuditRow, AuditSpoolPort, AuditStorePort, row_note
from application.ledger import (
    DirectoryProjection,
    GroupCommitter,
    KeyLedger,
    LiveKeys,
    LogFollower,
)
from application.listing import view_changes
from application.ports import KeyHierarchy, ListingView
from domain.messages import Requests
from domain.request_records import RequestRecord, request_record_id

_WRITE_ATTEMPTS = 50

#: the ledger events a request wrote, (aggregate id, version), for its audit record: the front
#: end sets a list per management request; saves made outside a request record nothing
WRITTEN: ContextVar[list[tuple[str, int]] | None] = ContextVar("keyledger_written", default=None)

#: a management request's records as they will be stored, given the events it has written
#: (its Region's name, and the rows): each save notes them in the same ledger transaction
#: (domain.request_records), so a process killed before it stores them leaves them noted
NOTE_RECORDS: ContextVar[Callable[[list[tuple[str, int]]], tuple[str, list[AuditRow]]] | None] = (
    ContextVar("keyledger_note_records", default=None))


@dataclass
class RegionResources:
    """What infrastructure provides for one region (built by the composition root)."""

    ledger_env: dict[str, str]
    directory: ListingView
    hierarchy: KeyHierarchy
    close: Callable[[], None]
    audit: AuditStorePort
    #: a lock of that name held across the processes and nodes sharing the store while the
    #: block runs (infrastructure.persistence.StoreConfig.exclusive)
    exclusive: Callable[[str], AbstractContextManager[None]]
    audit_commit_delay: float = 0.0  # seconds (application.audit.AuditLog)
    audit_spool: AuditSpoolPort | None = None  # (application.audit.AuditLog)


class Region:
    """One region's ledger with its in-memory state and listing projection."""

    def __init__(self, name: str, resources: RegionResources, transcodings, load_material) -> None:
        self.name = name
        self.resources = resources
        self.hierarchy = resources.hierarchy
        self.directory = resources.directory
        self.exclusive = resources.exclusive
        self.ledger = KeyLedger(resources.ledger_env, transcodings)
        self.live = LiveKeys(self.ledger, self.hierarchy.unseal, load_material)
        self.projection = DirectoryProjection(self.ledger, self.directory, view_changes)
        self.follower = LogFollower(self.ledger, self.ledger.recorder.max_notification_id() or 0)
        self.committer = GroupCommitter(self.ledger, self.hierarchy.store_data_keys)
        self.audit = AuditLog(resources.audit, resources.audit_commit_delay,
                              resources.audit_spool)
        self._writer_locks = [threading.Lock() for _ in range(64)]
        self._follow_lock = threading.Lock()
        self.projection.catch_up()

    def save(self, *aggregates, data_keys: tuple[tuple[str, bytes], ...] = ()) -> None:
        """Record the aggregates' new events (and new keys' wrapped data keys) durably; in a
        management request, with a note of its records (NOTE_RECORDS)."""
        written = WRITTEN.get()
        self.committer.commit((*aggregates, *self._note(aggregates, written)), data_keys)
        for aggregate in aggregates:
            self.live.put(aggregate)
            if written is not None:
                written.append((aggregate.id, aggregate.version))

    def _note(self, aggregates, written: list[tuple[str, int]] | None) -> tuple[RequestRecord, ...]:
        """The note of the request's records to save with ``aggregates``, if it has records to
        note and they are this Region's."""
        note = NOTE_RECORDS.get() if written is not None else None
        if note is None:
            return ()
        region, rows = note([*written, *((a.id, a.version) for a in aggregates)])
        if region != self.name or not rows:
            return ()
        return (RequestRecord(id=request_record_id(rows[0].request_id or "", len(written)),
                              rows=[row_note(row) for row in rows]),)

    def writer_lock(self, aggregate_id: str) -> threading.Lock:
        """Writers of one aggregate in this process take turns (striped locks)."""
        return self._writer_locks[hash(aggregate_id) % len(self._writer_locks)]

    def change(self, aggregate_id: str, load: Callable[[], Any], change: Callable[[Any], Any],
               data_keys: tuple[tuple[str, bytes], ...] = ()):
        """Load an aggregate, apply ``change``, save; on a concurrent write, load again and retry.

        Writers in this process take turns per aggregate; writers in other processes are
        detected by optimistic concurrency and retried with a jittered backoff.
        """
        with self.writer_lock(aggregate_id):
            for attempt in range(_WRITE_ATTEMPTS):
                aggregate = load()
                change(aggregate)
                try:
                    self.save(aggregate, data_keys=data_keys)
                except IntegrityError:
                    time.sleep(random.uniform(0, 0.002 * (attempt + 1)))
                    continue
                return aggregate
        raise Requests.CONFLICT()

    def follow(self) -> int:
        """Apply events written since the last call (by any process) to the live state;
        returns how many were applied."""
        applied = 0
        with self._follow_lock:
            while batch := self.follower.read():
                self.live.apply(event for _, event in batch)
                self.follower.position = batch[-1][0]
                applied += len(batch)
        return applied

    def close(self) -> None:
        self.audit.close()
        self.committer.close()
        self.ledger.close()
        self.resources.close()
