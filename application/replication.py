"""Multi-Region keys: replica Regions follow the primary Region's ledger.

The primary key records every change of the set's shared properties as an event of its own
(``ReplicaAdded``, ``SharedPropertiesChanged``; material travels in them sealed to the replica
Region's transport key, never in clear). Each Region follows every other Region's notification
log with a :class:`Replicator`: it applies the events meant for it to its replica keys and
records the position it reached in the same transaction (eventsourcing's tracking record), so
each event is applied exactly once and a restart resumes where it stopped. The feed a
Replicator reads is a port: the other Region's store in this process, or another node's
``/ledger/v1/feed`` — the same events either way, no object is copied between Regions.
"""

from __future__ import annotations

import base64
import logging
import time
import uuid
from collections import deque
from collections.abc import Callable
from typing import Any, Protocol

from eventsourcing.persistence import IntegrityError, Tracking

from application.audit import AuditRow, audit_row
from application.audit_records import AWS_INTERNAL, KMS_SERVICE, replica_region_record
from domain.key import KmsKey
from domain.multi_region import SharedProperties
from domain.values import BackingKey, key_arn

log = logging.getLogger("keyledger.replication")

#: the namespace of the eventIDs of a replica Region's audit entries (Replicator._entry)
_ENTRY_IDS = uuid.UUID("6b1d3c2e-5f4a-4e0b-9c7d-2a8e1f3b4c5d")


class Feed(Protocol):
    """Another Region's ledger, read after a position: [(notification id, domain event)]."""

    def read(self, after: int, limit: int) -> list[tuple[int, Any]]: ...


class LocalFeed:
    """The ledger of a Region served by this process, read from its store."""

    def __init__(self, region) -> None:
        self.region = region

    def read(self, after: int, limit: int) -> list[tuple[int, Any]]:
        return self.region.ledger.events_after(after, limit)


def stored_event(notification) -> dict[str, Any]:
    """One notification of a Region's ledger as the feed carries it to another node: as stored
    (its material sealed, shared material sealed to the receiving Region's transport key)."""
    return {"Id": notification.id, "OriginatorId": str(notification.originator_id),
            "OriginatorVersion": notification.originator_version, "Topic": notification.topic,
            "State": base64.b64encode(notification.state).decode()}


def share_with_replicas(region, key: KmsKey, transport_key_of: Callable[[str], bytes], actor,
                        always: bool = False) -> None:
    """On a primary with replicas: record the set's shared properties now, with each replica
    Region's material versions it does not have yet, sealed to that Region's transport key
    (``always``: also when the key has no new event, e.g. for a replica that rejoined)."""
    if not key.is_primary or not key.replica_regions or not (always or key.pending_events):
        return  # (no pending event: the command changed nothing)
    shares: dict[str, list[BackingKey]] = {}
    for replica_region in key.replica_regions:
        materials = [] if key.imported else key.unshared_materials(replica_region)
        if materials:
            try:
                recipient = transport_key_of(replica_region)
            except Exception:  # its node is down: shared when it is back (Replicator._missed)
                log.warning("material of %s not shared with %s now (its transport key is out "
                            "of reach): shared once that Region applies this change",
                            key.id, replica_region, exc_info=True)
                continue
            shares[replica_region] = [
                BackingKey(m.key_material_id,
                           region.hierarchy.seal_for_region(recipient, replica_region, key.id,
                                                            m.key_material_id, m.sealed_material,
                                                            m.own_data_key),
                           m.created, m.rotation_type, m.public_key)
                for m in materials
            ]
    key.share_properties(shares, actor)


class Replicator:
    """Applies one source Region's multi-Region key events to the replicas of one target Region."""

    BATCH = 500

    def __init__(self, source: str, feed: Feed, target, clock,
                 share: Callable[[Any, KmsKey, Any], None] = lambda *args: None,
                 transport_key_of: Callable[[str], bytes] | None = None) -> None:
        self.share = share  # share_with_replicas, with this deployment's transport keys
        self.transport_key_of = transport_key_of
        self.source = source
        self.feed = feed
        self.target = target  # application.region.Region
        self.clock = clock
        self.name = f"replication:{source}"
        #: seconds from an applied event's commit in the source to its commit here (the last
        #: 1,000 applied by this process)
        self.lags: deque[float] = deque(maxlen=1000)
        self.applied = 0

    def status(self) -> dict[str, Any]:
        """How far this Region has followed the source (lag of what this process applied)."""
        lags = sorted(self.lags)

        def percentile(q: float) -> float | None:
            return round(lags[min(len(lags) - 1, int(q * len(lags)))] * 1000, 1) if lags else None

        return {"Source": self.source, "Target": self.target.name, "Position": self.position,
                "Applied": self.applied, "LagP50Ms": percentile(0.50),
                "LagP99Ms": percentile(0.99), "LagMaxMs": percentile(1.0)}

    @property
    def position(self) -> int:
        return self.target.ledger.recorder.max_tracking_id(self.name) or 0

    def follow(self) -> int:
        """Apply what the source wrote since the tracked position; returns events applied."""
        applied = 0
        while True:
            position = self.position
            batch = self.feed.read(position, self.BATCH)
            if not batch:
                return applied
            for notification_id, event in batch:
                changed = self._apply(event)
                tracking = Tracking(self.name, notification_id)
                try:
                    if changed:
                        # this Region's audit entry is durable before the event is applied: a
                        # crash between the two applies the event again after the restart, and
                        # its entry's eventID (from the event's position) is stored once
                        entry = self._entry(event, changed[0], notification_id)
                        if entry is not None:
                            self.target.audit.record_blocking(entry)
                        self.target.ledger.save_tracked(changed, tracking)
                        for aggregate in changed:
                            self.target.live.put(aggregate)
                        applied += 1
                        self.applied += 1
                        self.lags.append(time.time() - event.timestamp.timestamp())
                    elif notification_id == batch[-1][0]:
                        self.target.ledger.recorder.insert_events([], tracking=tracking)
                except IntegrityError:  # another process of this Region applied it first
                    log.debug("replication %s -> %s: %s already applied", self.source,
                              self.target.name, notification_id)
                    break

    def _entry(self, event: Any, key: KmsKey, position: int) -> AuditRow | None:
        """This Region's own audit entry for the event at ``position`` of the source's ledger,
        if that has one (audit_records.replica_region_record). Its eventID is derived from
        where the event is, so an entry written again (the event applied again after a crash,
        or by two processes at once) is the same record, which the store keeps once."""
        now = self.clock.now()
        event_id = str(uuid.uuid5(_ENTRY_IDS, f"{self.target.name}/{self.source}/{position}"))
        if isinstance(event, KmsKey.ReplicaAdded):
            record = replica_region_record(
                event_name="CreateKey", account=key.account, region=key.region, key_arn=key.arn,
                event_time=now, event_id=event_id, request_id=event.actor.request_id,
                invoked_by=KMS_SERVICE)
        elif isinstance(event, KmsKey.PrimaryRegionUpdated):
            record = replica_region_record(
                event_name="UpdatePrimaryRegion", account=key.account, region=key.region,
                key_arn=key.arn, event_time=now, event_id=event_id,
                request_id=event.actor.request_id, invoked_by=KMS_SERVICE,
                request_parameters={"keyId": key.arn, "primaryRegion": key.region},
                with_resources=False)
        elif isinstance(event, KmsKey.SharedPropertiesChanged):
            primary_arn = key_arn(key.primary_region, key.account, key.id)
            record = replica_region_record(
                event_name="SynchronizeMultiRegionKey", account=key.account, region=key.region,
                key_arn=primary_arn, event_time=now, event_id=event_id,
                request_id=str(uuid.uuid5(_ENTRY_IDS, event_id)), invoked_by=AWS_INTERNAL)
        else:
            return None
        return audit_row(record, now, key.account, [key.arn], None, record["requestID"])

    def _apply(self, event: Any) -> list[KmsKey]:
        if isinstance(event, KmsKey.ReplicaAdded) and event.region == self.target.name:
            return self._create_replica(event)
        if isinstance(event, KmsKey.SharedPropertiesChanged):
            return self._synchronize(event)
        if isinstance(event, KmsKey.KeyDeleted):
            return self._replica_deleted(event)
        if isinstance(event, KmsKey.PrimaryRegionUpdated) and event.primary_region == self.target.name:
            return self._promote(event)
        if isinstance(event, KmsKey.PromotedToPrimary):
            return self._update_completed(event)
        if isinstance(event, KmsKey.DemotedToReplica) and event.primary_region == self.target.name:
            return self._missed(event)
        if isinstance(event, KmsKey.MultiRegionKeySynchronized):
            return self._synchronized(event)
        if isinstance(event, KmsKey.KeyMaterialImported):
            return self._replica_imported(event)
        return []

    def _replica_imported(self, event: Any) -> list[KmsKey]:
        """A replica of a primary of this Region imported material: the primary counts it
        (it rotates to imported material once every replica has it)."""
        primary = self.target.ledger.get_key(event.originator_id)
        if primary is None or not primary.is_primary or self.source not in primary.replica_regions:
            return []
        primary.record_replica_import(self.source, event.material.key_material_id, event.actor)
        return [primary] if primary.pending_events else []

    def _primary_of(self, event: Any) -> KmsKey | None:
        """The primary here of the set whose replica in the source Region wrote ``event``."""
        primary = self.target.ledger.get_key(event.originator_id)
        if primary is None or not primary.is_primary or self.source not in primary.replica_regions:
            return None
        return primary

    def _synchronized(self, event: Any) -> list[KmsKey]:
        """The source Region's replica of a primary of this Region applied a change of the
        set. The primary notes that it holds the material a rotation waits with; once every
        replica does, Encrypt uses it and the set learns it is current. Material the replica
        lacks is shared (:meth:`_share_missed`)."""
        primary = self._primary_of(event)
        if primary is None:
            return []
        if primary.record_replica_materials(
                self.source, [m.key_material_id for m in event.materials], event.actor):
            self.share(self.target, primary, event.actor)  # (and whatever a replica lacks)
        else:
            self._share_missed(primary, event)
        return [primary] if primary.pending_events else []

    def _missed(self, event: Any) -> list[KmsKey]:
        """A fenced old primary rejoined as the source Region's replica of a primary of this
        Region: it gets the material it lacks (:meth:`_share_missed`)."""
        primary = self._primary_of(event)
        if primary is None:
            return []
        self._share_missed(primary, event)
        return [primary] if primary.pending_events else []

    def _share_missed(self, primary: KmsKey, event: Any) -> None:
        """The source Region's replica applied a change of the set lacking material versions:
        those made while its node was down, whose transport key was out of reach then (a
        change made while this node had restarted and not yet met it). It gets them now: it
        is up, and this node reads it. (Nothing is written while its transport key is still
        out of reach: the next change it applies asks again.)"""
        if (primary.imported  # (imported material is imported in each Region: never sent)
                or not primary.unshared_materials(self.source) or not self._reachable()):
            return
        self.share(self.target, primary, event.actor)

    def _reachable(self) -> bool:
        """Whether the source Region's transport key can be had now."""
        if self.transport_key_of is None:
            return True
        try:
            self.transport_key_of(self.source)
        except Exception:  # (its node is down again, or was never met)
            return False
        return True

    def _promote(self, event: Any) -> list[KmsKey]:
        """UpdatePrimaryRegion named this Region: its replica becomes the primary and tells
        the set (its first SharedPropertiesChanged names it as the primary)."""
        replica = self.target.ledger.get_key(event.originator_id)
        if replica is None or not replica.is_replica or replica.primary_region != self.source:
            return []
        replica.promote(event.replica_regions, event.actor, epoch=getattr(event, "epoch", None))
        replica.share_properties({}, event.actor)
        return [replica]

    def _update_completed(self, event: Any) -> list[KmsKey]:
        """The new primary confirmed: the old primary (now its replica) leaves Updating."""
        key = self.target.ledger.get_key(event.originator_id)
        if key is None or not key.is_replica or key.primary_region != self.source:
            return []
        key.primary_region_update_completed(event.actor)
        return [key] if key.pending_events else []

    def _replica_deleted(self, event: Any) -> list[KmsKey]:
        """The source's replica of a primary of this Region is deleted: the primary forgets
        it (and its other replicas learn the new set from the primary's next event)."""
        primary = self.target.ledger.get_key(event.originator_id)
        if primary is None or not primary.is_primary or self.source not in primary.replica_regions:
            return []
        primary.remove_replica(self.source, self.clock.now(), event.actor)
        primary.share_properties({}, event.actor)
        return [primary]

    def _create_replica(self, event: Any) -> list[KmsKey]:
        existing = self.target.ledger.get_key(event.originator_id)
        if existing is not None and not existing.deleted:
            return []  # it exists already
        primary = SharedProperties(
            key_id=event.originator_id, account=event.account, key_spec=event.key_spec,
            key_usage=event.key_usage, origin=event.origin, primary_region=self.source,
            replica_regions=(event.region,),
        )
        self.target.hierarchy.data_key_of(event.originator_id)  # the replica's own DEK
        if existing is not None:  # its replica here was deleted: recreated (same key id)
            existing.recreate_replica(primary=primary, description=event.description,
                                      policy=event.policy, tags=event.tags,
                                      now=self.clock.now(), actor=event.actor)
            return [existing]
        replica = KmsKey.replica(primary=primary, region=self.target.name,
                                 description=event.description, policy=event.policy,
                                 tags=event.tags, now=self.clock.now(), actor=event.actor)
        return [replica]

    def _synchronize(self, event: Any) -> list[KmsKey]:
        replica = self.target.ledger.get_key(event.originator_id)
        if replica is None or replica.deleted:
            return []
        if replica.is_primary:  # a primary of an older epoch reads its successor: it rejoins
            epoch = getattr(event, "epoch", 0)
            if epoch <= replica.epoch or getattr(event, "primary_region", None) != self.source:
                return []
            replica.demote(self.source, epoch, event.actor, self.clock.now())
        if not replica.is_replica:
            return []
        announced = getattr(event, "primary_region", None)  # (absent in older events)
        epoch = getattr(event, "epoch", 0)
        if epoch < replica.epoch:
            return []  # a primary of an older epoch: fenced
        if self.source != replica.primary_region and announced != self.source:
            return []  # only the set's primary speaks for its shared properties
        materials = [
            BackingKey(m.key_material_id,
                       self.target.hierarchy.reseal_transported(
                           self.target.name, replica.id, m.key_material_id, m.sealed_material),
                       m.created, m.rotation_type, m.public_key)
            for m in event.shares.get(self.target.name, ())
        ]
        replica.synchronize(materials, event.current_key_material_id, event.rotation_enabled,
                            event.rotation_period_days, event.next_rotation_date,
                            event.replica_regions, event.actor, primary_region=announced,
                            epoch=epoch,
                            imported_material_ids=getattr(event, "imported_material_ids", None))
        return [replica]
