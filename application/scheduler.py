"""Changes KMS makes on its own: scheduled deletion, automatic rotation, expiry of imported
key material (CloudTrail's AwsServiceEvent). Run by each server process's maintenance pass."""

from __future__ import annotations

import logging
import threading
import time
from collections.abc import Callable, Iterable, Sequence
from datetime import datetime
from typing import Any

from eventsourcing.persistence import IntegrityError, Tracking
from eventsourcing.utils import get_topic

from application.audit import AuditRow, audit_row, new_event_id, noted_row
from application.audit_records import service_event_record
from application.clock import Clock
from application.region import Region
from application.shredder import finish_shredding
from domain.alias import alias_aggregate_id
from domain.key import KmsKey
from domain.request_records import RequestRecord
from domain.service_records import SERVICE_RECORDS_ID, ServiceRecords
from domain.values import Actor, BackingKey, RotationType

log = logging.getLogger("keyledger.scheduler")

#: the ledger's tracking name of how far the requests' notes were read (_store_request_notes)
REQUEST_NOTES = "audit:request-notes"
_NOTE_TOPIC = get_topic(RequestRecord.RequestRecordNoted)
#: seconds after which a request's noted record is stored if the audit store lacks it: well
#: past the audit store's 30 s busy timeout, after which a record is spooled instead
#: (``keyledger serve --audit-record-grace``)
RECORD_GRACE = 120.0


def _request_of(note: RequestRecord.RequestRecordNoted) -> str:
    """The request a note is of (its aggregate id, less the save's number)."""
    return note.originator_id.rsplit("/", 1)[0]


class Scheduler:
    def __init__(self, clock: Clock,
                 new_material: Callable[[Region, str, str, datetime, RotationType | None], BackingKey],
                 share_with_replicas: Callable[[Region, KmsKey, Actor], None] = lambda *a: None,
                 unread_replica_region: Callable[[str, KmsKey], str | None] = lambda *a: None,
                 record_grace: float = RECORD_GRACE):
        self.clock = clock
        self.record_grace = record_grace  # seconds (_store_request_notes)
        self._new_material = new_material
        self._share_with_replicas = share_with_replicas  # a rotated multi-Region primary
        #: a replica Region of a primary not read since this process started: its rotation
        #: waits (KeyManagementService.fence; the replication thread reads it meanwhile)
        self._unread_replica_region = unread_replica_region
        #: one run at a time in a process: a caller (the maintenance thread, a test-control
        #: request) returns once what was due is done, its records stored, even when another
        #: thread's run had taken those changes first
        self._running = threading.Lock()

    def run(self, regions: Iterable[Region]) -> int:
        """Complete due deletions, rotations and expiries in the regions; returns how many."""
        with self._running:
            return self._run(regions)

    def _run(self, regions: Iterable[Region]) -> int:
        done = 0
        for region in regions:
            for store_noted in (self._store_noted, self._store_request_notes):
                try:  # what a process that died left unrecorded
                    store_noted(region)
                except Exception:  # (the Region's due changes go on; tried again next pass)
                    log.exception("noted audit records in %s could not be stored", region.name)
            region.projection.catch_up()
            now = self.clock.now()
            for key_id in region.directory.due_key_ids(now.timestamp()):
                try:
                    done += self._run_due(region, key_id, now)
                except IntegrityError:
                    log.info("scheduled change of %s raced another process", key_id)
            region.projection.catch_up()
        return done

    @staticmethod
    def _noted(region: Region, key: KmsKey, event_name: str, now: datetime,
               changed: Sequence[Any], details: dict | None = None) -> tuple[ServiceRecords, AuditRow]:
        """The AwsServiceEvent record of a change KMS makes on its own, built before the change
        is saved (it names the events the save writes: ``changed``' versions), and the
        region's note of it, to be saved with the change (domain.service_records)."""
        record = service_event_record(
            event_name=event_name, account=key.account, region=region.name, key_arn=key.arn,
            event_time=now, event_id=new_event_id(), service_event_details=details,
            ledger_events=[(aggregate.id, aggregate.version) for aggregate in changed],
        )
        row = audit_row(record, now, key.account, (key.arn,), None, None)
        notes = region.ledger.get_service_records() or ServiceRecords.start()
        notes.note(row.event_id, row.record.decode(), row.event_time, row.account, key.id,
                   event_name)
        return notes, row

    @staticmethod
    def _store(region: Region, *rows: AuditRow) -> None:
        """Store the records of saved changes (durable before the scheduler goes on, like a
        request's; kept: spooled if the store refuses them), then strike their notes."""
        region.audit.record_blocking(*rows, kept=True)
        event_ids = [row.event_id for row in rows]

        def load() -> ServiceRecords:
            notes = region.ledger.get_service_records()
            assert notes is not None  # (noted in the change's save)
            return notes

        region.change(SERVICE_RECORDS_ID, load, lambda notes: notes.stored(event_ids))

    def _store_noted(self, region: Region) -> None:
        """Store the records noted with changes whose process died before storing them (the
        audit store keeps one per eventID: one stored already is not stored twice)."""
        notes = region.ledger.get_service_records()
        if notes is None or not notes.pending:
            return
        rows = [AuditRow(noted["event_time"], noted["account"], noted["key_id"], None,
                         noted["event_name"], None, None, event_id, noted["record"].encode())
                for event_id, noted in notes.pending.items()]
        log.warning("storing %d audit records of changes KMS made before a process stopped",
                    len(rows))
        self._store(region, *rows)

    def _store_request_notes(self, region: Region) -> int:
        """Store the records noted with management requests' changes at least
        ``record_grace`` seconds ago that the audit store lacks: their process died between
        the change and its record (domain.request_records). Returns how many notes were read.

        The grace outlasts the store's busy timeout, after which a request's own record goes
        to the spool; while records wait in the spool, nothing is recovered (they go first).
        How far the notes were read is tracked in the ledger; a record stored already is left
        out by ``append_missing``, so two processes reading the same notes store each once."""
        spool = region.audit.spool
        if spool is not None and spool.waiting():
            return 0
        ledger = region.ledger
        position = ledger.recorder.max_tracking_id(REQUEST_NOTES) or 0
        before = time.time() - self.record_grace  # (the events' own clock: the system's)
        read = 0
        while True:
            batch = ledger.recorder.select_notifications(
                start=position, limit=500, topics=(_NOTE_TOPIC,), inclusive_of_start=False)
            ready, young = [], None
            for notification in batch:
                note = ledger.mapper.to_domain_event(notification)
                if note.timestamp.timestamp() > before:
                    young = note
                    break
                ready.append((notification.id, note))
            # a request's later save's note names every event it wrote, and its last note is
            # the one to store: the notes of the request this read stopped in wait for it
            waiting = (_request_of(young) if young is not None
                       else _request_of(ready[-1][1]) if len(batch) == 500 and ready else None)
            while ready and _request_of(ready[-1][1]) == waiting:
                ready.pop()
            if not ready:
                return read
            noted = {row.event_id: row for _, note in ready for row in map(noted_row, note.rows)}
            last = ready[-1][0]
            rows = list(noted.values())
            if rows:
                try:
                    region.audit.store.append_missing(rows)
                except Exception as failure:  # (read again next pass; the rest goes on)
                    log.warning("noted audit records of management requests could not be "
                                "stored yet: %s", failure)
                    return read
            try:
                ledger.recorder.insert_events([], tracking=Tracking(REQUEST_NOTES, last))
            except IntegrityError:  # another process read them too (and stored each once)
                pass
            read += len(rows)
            position = last
            if young is not None or len(batch) < 500:
                return read

    def _run_due(self, region: Region, key_id: str, now: datetime) -> int:
        saved: list[AuditRow] = []  # the records of the changes saved
        try:
            with region.writer_lock(key_id):
                return self._change_due(region, key_id, now, saved)
        finally:  # (outside the key's lock: striking the notes takes the notes' lock, which
            # may be the same stripe of the region's writer locks)
            if saved:
                self._store(region, *saved)

    def _change_due(self, region: Region, key_id: str, now: datetime,
                    saved: list[AuditRow]) -> int:
        key = region.ledger.get_key(key_id)
        if key is None:
            return 0
        actor = Actor.service()
        done = 0
        if key.expired_materials(now) and not key.deleted:
            expired = key.expire_imported_material(now, actor)
            notes, row = self._noted(region, key, "DeleteExpiredKeyMaterial", now, [key],
                                     {"keyId": key.id, "keyMaterialIds": list(expired)})
            region.save(key, notes)
            saved.append(row)
            done = 1
        if finish_shredding(region, key, actor):  # left by a crash or a deletion request
            region.save(key)
            done = 1
        if key.deletion_due(now):
            # The key's aliases go with it, in the same transaction as its deletion.
            key.complete_deletion(now, actor)
            aliases = [
                region.ledger.get_alias(alias_aggregate_id(key.account, row.alias_name))
                for row in region.directory.list_aliases(key.account, key.id, "", 10_000)
            ]
            aliases = [a for a in aliases if a is not None and a.target_key_id == key.id]
            for alias in aliases:
                alias.delete(actor)
            notes, row = self._noted(region, key, "DeleteKey", now, [key, *aliases])
            region.save(key, *aliases, notes)
            finish_shredding(region, key, actor)  # (after the deletion is durable)
            region.save(key)
            saved.append(row)
            return 1
        if key.rotation_due(now) and self._unread_replica_region(region.name, key) is None:
            previous = key.current_key_material_id
            material = self._new_material(region, key.id, key.key_spec, now, RotationType.AUTOMATIC)
            key.rotate_automatically(material, now, actor)
            self._share_with_replicas(region, key, actor)
            notes, row = self._noted(region, key, "RotateKey", now, [key], {
                "rotationType": "AUTOMATIC", "keyOrigin": key.origin, "keyId": key.id,
                "previousKeyMaterialId": previous,
                "currentKeyMaterialId": key.current_key_material_id,
            })
            region.save(key, notes)
            saved.append(row)
            return 1
        return done
