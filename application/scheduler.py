"""Changes KMS makes on its own: scheduled deletion, automatic rotation, expiry of imported
key material (CloudTrail's AwsServiceEvent). Run by each server process's maintenance pass."""

from __future__ import annotations

import logging
from collections.abc import Callable, Iterable
from datetime import datetime

from eventsourcing.persistence import IntegrityError

from application.audit import audit_row, new_event_id
from application.audit_records import service_event_record
from application.clock import Clock
from application.region import WRITTEN, Region
from application.shredder import finish_shredding
from domain.alias import alias_aggregate_id
from domain.key import KmsKey
from domain.values import Actor, BackingKey, RotationType

log = logging.getLogger("keyledger.scheduler")


class Scheduler:
    def __init__(self, clock: Clock,
                 new_material: Callable[[Region, str, str, datetime, RotationType | None], BackingKey],
                 share_with_replicas: Callable[[Region, KmsKey, Actor], None] = lambda *a: None,
                 unread_replica_region: Callable[[str, KmsKey], str | None] = lambda *a: None):
        self.clock = clock
        self._new_material = new_material
        self._share_with_replicas = share_with_replicas  # a rotated multi-Region primary
        #: a replica Region of a primary not read since this process started: its rotation
        #: waits (KeyManagementService.fence; the replication thread reads it meanwhile)
        self._unread_replica_region = unread_replica_region

    def run(self, regions: Iterable[Region]) -> int:
        """Complete due deletions, rotations and expiries in the regions; returns how many."""
        done = 0
        for region in regions:
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
    def _audit(region: Region, key: KmsKey, event_name: str, now: datetime, written: list,
               details: dict | None = None) -> None:
        """The AwsServiceEvent record of a change KMS made on its own (durable before the
        scheduler goes on, like a request's)."""
        record = service_event_record(
            event_name=event_name, account=key.account, region=region.name, key_arn=key.arn,
            event_time=now, event_id=new_event_id(), service_event_details=details,
            ledger_events=tuple(written),
        )
        region.audit.record_blocking(audit_row(record, now, key.account, (key.arn,), None, None),
                                     kept=True)  # the change is saved: its record is kept
        written.clear()

    def _run_due(self, region: Region, key_id: str, now: datetime) -> int:
        written: list[tuple[str, int]] = []
        token = WRITTEN.set(written)
        try:
            return self._run_due_recorded(region, key_id, now, written)
        finally:
            WRITTEN.reset(token)

    def _run_due_recorded(self, region: Region, key_id: str, now: datetime, written: list) -> int:
        with region.writer_lock(key_id):
            key = region.ledger.get_key(key_id)
            if key is None:
                return 0
            actor = Actor.service()
            done = 0
            if key.expired_materials(now) and not key.deleted:
                expired = key.expire_imported_material(now, actor)
                region.save(key)
                self._audit(region, key, "DeleteExpiredKeyMaterial", now, written,
                            {"keyId": key.id, "keyMaterialIds": list(expired)})
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
                region.save(key, *aliases)
                finish_shredding(region, key, actor)
                region.save(key)
                self._audit(region, key, "DeleteKey", now, written)
                return 1
            if key.rotation_due(now) and self._unread_replica_region(region.name, key) is None:
                previous = key.current_key_material_id
                material = self._new_material(region, key.id, key.key_spec, now, RotationType.AUTOMATIC)
                key.rotate_automatically(material, now, actor)
                self._share_with_replicas(region, key, actor)
                region.save(key)
                self._audit(region, key, "RotateKey", now, written, {
                    "rotationType": "AUTOMATIC", "keyOrigin": key.origin, "keyId": key.id,
                    "previousKeyMaterialId": previous,
                    "currentKeyMaterialId": key.current_key_material_id,
                })
                return 1
            return done
