"""A region's ledger: the eventsourcing application that stores every key's events,
and the two followers of its notification log.

* :class:`LiveKeys` keeps the in-memory state the cryptographic hot path reads (aggregates
  and the loaded material of each version: AES-GCM objects, private keys, HMAC keys); it
  is kept current by applying the ledger's own events, including those written by other
  processes on the same store.
* :class:`DirectoryProjection` maintains the listing view (ListKeys, ListAliases, the
  scheduler's due dates) with a tracked position.
"""

from __future__ import annotations

import copy
import logging
import queue
import threading
from collections import OrderedDict
from collections.abc import Iterable, Sequence
from concurrent.futures import Future
from typing import Any

from eventsourcing.application import AggregateNotFoundError, Application
from eventsourcing.persistence import IntegrityError, Tracking, Transcoder

from domain.alias import Alias
from domain.base import StrAggregate
from domain.identity import IDENTITY_DIRECTORY_ID, IdentityDirectory
from domain.key import KmsKey
from domain.service_records import SERVICE_RECORDS_ID, ServiceRecords

log = logging.getLogger("keyledger.ledger")


class KeyLedger(Application[str]):
    """The event store of one region; its events are the audit trail."""

    name = "KeyLedger"
    snapshotting_intervals = {KmsKey: 50, ServiceRecords: 50}  # noqa: RUF012

    def __init__(self, env: dict[str, str], transcodings: Sequence[Any] = ()) -> None:
        self._transcodings = tuple(transcodings)
        super().__init__(env=env)

    def register_transcodings(self, transcoder: Transcoder) -> None:
        super().register_transcodings(transcoder)
        for transcoding in self._transcodings:
            transcoder.register(transcoding)

    def construct_recorder(self):
        """A process recorder: a replica Region records how far it followed another Region's
        ledger in the same transaction as what it applied (application.replication)."""
        return self.factory.process_recorder()

    def save_tracked(self, aggregates: Sequence[StrAggregate], tracking: Tracking) -> None:
        """Store the aggregates' new events and how far a follower has read another ledger,
        in one transaction (the same position cannot be recorded twice)."""
        self.events.put([e for a in aggregates for e in a.collect_events()], tracking=tracking)

    def notifications_after(self, position: int, limit: int) -> list[Any]:
        """The stored notifications after ``position``, oldest first (at most ``limit``)."""
        return self.recorder.select_notifications(start=position, limit=limit,
                                                  inclusive_of_start=False)

    def events_after(self, position: int, limit: int) -> list[tuple[int, Any]]:
        """(notification id, domain event) after ``position``, oldest first."""
        return [(n.id, self.mapper.to_domain_event(n))
                for n in self.notifications_after(position, limit)]

    def get_key(self, key_id: str) -> KmsKey | None:
        return self._get(key_id, KmsKey)

    def get_alias(self, alias_id: str) -> Alias | None:
        return self._get(alias_id, Alias)

    def get_identities(self) -> IdentityDirectory | None:
        return self._get(IDENTITY_DIRECTORY_ID, IdentityDirectory)

    def get_service_records(self) -> ServiceRecords | None:
        return self._get(SERVICE_RECORDS_ID, ServiceRecords)

    def _get(self, aggregate_id: str, cls: type) -> Any:
        try:
            aggregate = self.repository.get(aggregate_id)
        except AggregateNotFoundError:
            return None
        return aggregate if isinstance(aggregate, cls) else None


class LiveKeys:
    """In-memory key and alias state, kept current by the ledger's events.

    Aggregates are loaded from the store on first use; after that they change only by
    applying events (copy-on-write, so readers never see a half-applied event). Events that
    arrive while an aggregate is being loaded are kept and applied to what the load returns,
    so a change committed during the load is never lost. Ids that do not exist are
    remembered (a bounded set, cleared by any event for the id), so unknown ids do not
    query the store on every request.
    """

    MAX_ABSENT = 65_536

    def __init__(self, ledger: KeyLedger, unseal, load) -> None:
        self._ledger = ledger
        self._unseal = unseal  # (key_id, material_id, sealed, own_data_key) -> material
        self._load_material = load  # (key_spec, material) -> what the crypto operations use
        self._aggregates: dict[str, StrAggregate] = {}
        #: key id -> material id -> loaded material
        self._materials: dict[str, dict[str, Any]] = {}
        self._loading: dict[str, list[Any]] = {}  # id -> events seen while it loads
        self._absent: OrderedDict[str, None] = OrderedDict()
        self._lock = threading.Lock()

    def key(self, key_id: str, plausible=None) -> KmsKey | None:
        """The key's live state; on a miss, load it unless ``plausible(key_id)`` is false."""
        key = self._aggregates.get(key_id)
        if key is None:
            if key_id in self._absent or (plausible is not None and not plausible(key_id)):
                return None
            key = self._load(key_id, self._ledger.get_key)
        return key if isinstance(key, KmsKey) else None

    def peek(self, key_id: str) -> KmsKey | None:
        """The key if it is in memory already (never loads)."""
        key = self._aggregates.get(key_id)
        return key if isinstance(key, KmsKey) else None

    def alias(self, alias_id: str) -> Alias | None:
        alias = self._aggregates.get(alias_id)
        if alias is None:
            if alias_id in self._absent:
                return None
            alias = self._load(alias_id, self._ledger.get_alias)
        return alias if isinstance(alias, Alias) else None

    def _load(self, aggregate_id: str, get) -> StrAggregate | None:
        with self._lock:
            seen = self._loading.setdefault(aggregate_id, [])
        try:
            aggregate = get(aggregate_id)
        finally:
            with self._lock:
                if self._loading.get(aggregate_id) is seen:
                    del self._loading[aggregate_id]
        with self._lock:
            if aggregate is None:
                if not seen:
                    self._absent[aggregate_id] = None
                    if len(self._absent) > self.MAX_ABSENT:
                        self._absent.popitem(last=False)
                return None
            for domain_event in sorted(seen, key=lambda e: e.originator_version):
                if domain_event.originator_version == aggregate.version + 1:
                    domain_event.mutate(aggregate)
            self._put(aggregate)
            return self._aggregates[aggregate_id]

    def material(self, key: KmsKey, key_material_id: str) -> Any:
        """One material version, loaded (an AES-GCM object for symmetric keys): O(1),
        however many rotations. None when the key has no such material (any more)."""
        loaded = self._materials.get(key.id)
        if loaded is not None and (found := loaded.get(key_material_id)) is not None:
            return found
        material = key.materials.get(key_material_id)
        if material is None or key.deleted:
            return None
        found = self._load_material(
            key.key_spec,
            self._unseal(key.id, key_material_id, material.sealed_material, material.own_data_key),
        )
        with self._lock:
            if self._aggregates.get(key.id) is key or key.id not in self._aggregates:
                self._materials.setdefault(key.id, {})[key_material_id] = found
        return found

    def put(self, aggregate: StrAggregate) -> None:
        """Remember the latest state of an aggregate this process just saved."""
        with self._lock:
            self._put(aggregate)

    def _put(self, aggregate: StrAggregate) -> None:
        self._absent.pop(aggregate.id, None)
        cached = self._aggregates.get(aggregate.id)
        if cached is None or cached.version < aggregate.version:
            self._aggregates[aggregate.id] = aggregate
            self._forget_removed_material(aggregate)

    def apply(self, events: Iterable[Any]) -> None:
        """Apply events read from the notification log to the cached aggregates."""
        with self._lock:
            for domain_event in events:
                aggregate_id = domain_event.originator_id
                cached = self._aggregates.get(aggregate_id)
                if cached is None:
                    self._absent.pop(aggregate_id, None)
                    if aggregate_id in self._loading:
                        self._loading[aggregate_id].append(domain_event)
                    continue
                if domain_event.originator_version <= cached.version:
                    continue
                if domain_event.originator_version != cached.version + 1:
                    del self._aggregates[aggregate_id]  # missed something: reload on next use
                    continue
                updated = copy.deepcopy(cached)
                domain_event.mutate(updated)
                self._aggregates[aggregate_id] = updated
                self._forget_removed_material(updated)

    def _forget_removed_material(self, aggregate: StrAggregate) -> None:
        """Drop loaded material the key no longer has (deleted key, deleted import)."""
        loaded = self._materials.get(aggregate.id)
        if loaded is None or not isinstance(aggregate, KmsKey):
            return
        if aggregate.deleted:
            del self._materials[aggregate.id]
            return
        for material_id in [m for m in loaded if m not in aggregate.materials]:
            del loaded[material_id]

    def __len__(self) -> int:
        return len(self._aggregates)


class LogFollower:
    """Reads the ledger's notification log after a position (polling; works on every store)."""

    BATCH = 500

    def __init__(self, ledger: KeyLedger, position: int) -> None:
        self.ledger = ledger
        self.position = position

    def read(self) -> list[tuple[int, Any]]:
        return self.ledger.events_after(self.position, self.BATCH)


class DirectoryProjection:
    """Maintains the key directory view from the notification log, exactly once."""

    def __init__(self, ledger: KeyLedger, directory, to_changes) -> None:
        self._ledger = ledger
        self._directory = directory
        self._to_changes = to_changes  # (notification_id, domain_event) -> list[ViewChange]
        self._lock = threading.Lock()

    @property
    def position(self) -> int:
        return self._directory.max_tracking_id(self._ledger.name) or 0

    def catch_up(self) -> int:
        """Process every notification after the tracked position; returns the new position."""
        with self._lock:
            while True:
                follower = LogFollower(self._ledger, self.position)
                batch = follower.read()
                if not batch:
                    return follower.position
                changes = [c for nid, ev in batch for c in self._to_changes(nid, ev)]
                try:
                    self._directory.record(changes, Tracking(self._ledger.name, batch[-1][0]))
                except IntegrityError:
                    # Another process recorded this batch first: read the position again.
                    log.debug("directory batch already recorded by another process")


class GroupCommitter:
    """Commits concurrent writes of a region together (group commit).

    Each write is the pending events of some aggregates plus, for new keys, their wrapped
    data keys. One
    thread takes every write waiting in the queue, stores the data keys in one keyring
    transaction and then all aggregates in one ledger transaction (``Application.save``
    is atomic), so a burst of requests shares one fsync instead of paying one each. If
    the batch conflicts, each write is retried alone so only the conflicting one fails.
    Data keys are stored before the events that need them, and storing them is idempotent.
    """

    MAX_BATCH = 128

    def __init__(self, ledger: KeyLedger, store_data_keys) -> None:
        self._ledger = ledger
        self._store_data_keys = store_data_keys
        self._queue: queue.Queue = queue.Queue()
        self._thread = threading.Thread(target=self._run, name="keyledger-commit", daemon=True)
        self._thread.start()

    def commit(self, aggregates: Sequence[StrAggregate], data_keys: Sequence[tuple[str, bytes]] = ()):
        # Collect the pending events now: a retried batch must write the same events again.
        events = tuple(event for aggregate in aggregates for event in aggregate.collect_events())
        future: Future = Future()
        self._queue.put((events, tuple(data_keys), future))
        future.result()
        self._snapshot(aggregates, events)

    def _snapshot(self, aggregates: Sequence[StrAggregate], events) -> None:
        """Snapshots are an optimisation: a failure is logged, never reported as the write's."""
        try:
            self._take_snapshots(aggregates, events)
        except Exception:
            log.exception("snapshot failed; the events are recorded")

    def _take_snapshots(self, aggregates: Sequence[StrAggregate], events) -> None:
        for aggregate in aggregates:
            interval = self._ledger.snapshotting_intervals.get(type(aggregate))
            if interval and any(
                e.originator_id == aggregate.id and e.originator_version % interval == 0
                for e in events
            ):
                self._ledger.take_snapshot(aggregate.id, version=aggregate.version)

    def close(self) -> None:
        self._queue.put(None)
        self._thread.join(timeout=10)

    def _run(self) -> None:
        while True:
            item = self._queue.get()
            if item is None:
                return
            batch = [item]
            while len(batch) < self.MAX_BATCH:
                try:
                    nxt = self._queue.get_nowait()
                except queue.Empty:
                    break
                if nxt is None:
                    self._queue.put(None)
                    break
                batch.append(nxt)
            self._commit(batch)

    def _commit(self, batch) -> None:
        try:
            self._write(batch)
        except Exception as error:
            if len(batch) == 1:
                batch[0][2].set_exception(error)
                return
            for single in batch:
                try:
                    self._write([single])
                except Exception as error:  # reported to the request that made it
                    single[2].set_exception(error)
        for _, _, future in batch:
            if not future.done():
                future.set_result(None)

    def _write(self, batch) -> None:
        data_keys = [row for _, rows, _ in batch for row in rows]
        if data_keys:
            self._store_data_keys(data_keys)
        self._ledger.save(*[event for events, _, _ in batch for event in events])
