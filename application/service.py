"""The KMS application: per-region ledgers, the gate, and the handlers of every operation.

Handlers live in ``application/handlers/`` by KMS concept; which operations exist and how
they are run and authorized is the one table in ``domain/operations.py``.
"""

from __future__ import annotations

import inspect
import logging
import threading
import uuid
from collections.abc import Awaitable, Callable
from typing import Any

from eventsourcing.persistence import IntegrityError, StoredEvent, Tracking

from application.audit import audit_row, new_event_id
from application.audit_records import PROMOTE_COMMAND, replica_region_record
from application.authorization import Authorizer
from application.clock import Clock
from application.context import RequestContext
from application.gate import KEY_ID_PATTERN, Gate
from application.handlers import Core, Handlers
from application.handlers.aliases import Aliases
from application.handlers.asymmetric import AsymmetricKeys
from application.handlers.crypto import Encryption
from application.handlers.data_keys import DataKeys
from application.handlers.grants import Grants
from application.handlers.imports import ImportedMaterial
from application.handlers.lifecycle import KeyLifecycle
from application.handlers.multi_region import MultiRegionKeys
from application.handlers.rotation import Rotation
from application.handlers.tags_policies import TagsAndPolicies
from application.handlers.usage import KeyUsage
from application.ports import CiphertextFormat, KeyMaterial
from application.presenters import describe_event
from application.region import NOTE_RECORDS, WRITTEN, Region, RegionResources
from application.replication import LocalFeed, Replicator, share_with_replicas, stored_event
from application.scheduler import REQUEST_NOTES, Scheduler
from domain import errors
from domain.identity import IDENTITY_DIRECTORY_ID, IdentityDirectory
from domain.operations import OPERATIONS
from domain.values import Actor

#: replication rounds one pass may run while each applies something (KeyManagementService.replicate)
_SETTLE_ROUNDS = 5

log = logging.getLogger("keyledger.service")

__all__ = ["KeyManagementService", "RegionResources", "IMPLEMENTED_OPERATIONS"]

Handler = Callable[[RequestContext, dict[str, Any]], dict[str, Any] | Awaitable[dict[str, Any]]]

HANDLER_GROUPS: tuple[type[Handlers], ...] = (
    KeyLifecycle, Rotation, ImportedMaterial, Encryption, DataKeys, AsymmetricKeys, Aliases,
    TagsAndPolicies, Grants, KeyUsage, MultiRegionKeys,
)

#: Errors whose answer depends on what this process has seen of the ledger: before answering
#: one of them, catch up with writes made by other processes and try once more.
STATE_DEPENDENT_ERRORS = frozenset({
    "NotFoundException", "KMSInvalidStateException", "DisabledException", "AccessDeniedException",
    "InvalidImportTokenException", "InvalidCiphertextException", "IncorrectKeyException",
    "InvalidGrantTokenException", "InvalidGrantIdException", "KeyUnavailableException",
})


class KeyManagementService:
    """The AWS KMS API on event-sourced per-region ledgers."""

    def __init__(
        self,
        open_region: Callable[[str], RegionResources],
        ciphertext_format: CiphertextFormat,
        key_material: KeyMaterial,
        transcodings=(),
        clock: Clock | None = None,
        known_regions: Callable[[], list[str]] = list,
        authorizer: Authorizer | None = None,
    ) -> None:
        self.known_regions = known_regions  # regions that already have a ledger in the store
        self._open_region = open_region
        self._crypto = key_material
        self._transcodings = tuple(transcodings)
        self.clock = clock or Clock()
        self._regions: dict[str, Region] = {}
        self._regions_lock = threading.Lock()
        self.authorizer = authorizer or Authorizer()
        #: the Regions this process serves (None: every Region) and the deployment's other
        #: nodes by the Region they serve (docs/regions.md)
        self.served_regions: frozenset[str] | None = None
        self._peers: dict[str, Any] = {}
        self._gate = Gate(self.authorizer)
        core = Core(self.region, self._gate, self.authorizer, self.clock, key_material,
                    ciphertext_format, self.replicate, self.transport_key_of, self.reachable,
                    self.serves, self.authorize_elsewhere, self.fence)
        #: (source Region, target Region) -> the target's follower of the source's ledger
        self._replicators: dict[tuple[str, str], Replicator] = {}
        self._replication_lock = threading.Lock()
        #: the (source, target) pairs whose target has read the source's ledger to its end
        #: since this process started (:meth:`fence`)
        self._read_since_start: set[tuple[str, str]] = set()
        groups = [group(core) for group in HANDLER_GROUPS]
        self._handlers: dict[str, Handler] = {}
        for name in OPERATIONS:  # the table names every operation; each has one handler
            (handler,) = [getattr(g, name) for g in groups if hasattr(g, name)]
            self._handlers[name] = self._catching_up(name, handler)
        self.scheduler = Scheduler(self.clock, groups[0].new_material,
                                   groups[0].share_with_replicas, self.unread_replica_region)

    # -- operations ---------------------------------------------------------------------------

    def handler(self, operation: str) -> Handler | None:
        """The handler of a KMS operation (None: not implemented)."""
        return self._handlers.get(operation)

    def _catching_up(self, name: str, handler: Handler) -> Handler:
        """Read your own writes across processes: before a state-dependent error is answered,
        catch up with the ledger and, if it moved on since the request started (whoever
        applied it: this request or the maintenance thread), try once more. Errors are rare,
        so the success path pays one position read."""
        regions = self._regions
        if inspect.iscoroutinefunction(handler):
            async def call_async(ctx: RequestContext, params: dict[str, Any]):
                region = regions.get(ctx.region)
                seen = region.follower.position if region is not None else -1
                try:
                    return await handler(ctx, params)
                except errors.KmsError as error:
                    if error.code not in STATE_DEPENDENT_ERRORS or not self._caught_up(ctx, seen):
                        raise
                ctx.start_over()
                return await handler(ctx, params)

            call_async.__name__ = name
            return call_async

        def call(ctx: RequestContext, params: dict[str, Any]):
            region = regions.get(ctx.region)
            seen = region.follower.position if region is not None else -1
            try:
                return handler(ctx, params)
            except errors.KmsError as error:
                if error.code not in STATE_DEPENDENT_ERRORS or not self._caught_up(ctx, seen):
                    raise
            ctx.start_over()
            return handler(ctx, params)

        call.__name__ = name
        return call

    def _caught_up(self, ctx: RequestContext, seen: int) -> bool:
        """Follow the ledger; whether this process now knows more than it did at ``seen``."""
        region = self._regions.get(ctx.region)
        if region is None:
            return False
        region.follow()
        return region.follower.position > seen

    # -- regions ------------------------------------------------------------------------------

    def region(self, name: str) -> Region:
        region = self._regions.get(name)
        if region is None:
            with self._regions_lock:
                region = self._regions.get(name)
                if region is None:
                    region = Region(name, self._open_region(name), self._transcodings, self._crypto.load)
                    self._regions[name] = region
        return region

    def has_region(self, name: str) -> bool:
        return name in self._regions

    @property
    def regions(self) -> list[Region]:
        return list(self._regions.values())

    def close(self) -> None:
        for region in self.regions:
            region.close()
        self._regions.clear()

    def follow(self) -> None:
        for region in self.regions:
            region.follow()

    def _share(self, region: Region, key, actor: Actor) -> None:
        share_with_replicas(region, key, self.transport_key_of, actor, always=True)

    def promote(self, region_name: str, key_id: str, actor: Actor) -> dict[str, Any]:
        """Beyond AWS, for disaster-recovery drills (``keyledger promote``): the replica of
        ``key_id`` in ``region_name`` becomes the set's primary while the primary's Region is
        gone. The next epoch fences the old primary: when its Region comes back it reads this
        primary's announcement and rejoins as its replica."""
        region = self.region(region_name)

        def promote(key) -> None:
            key.promote_in_place_of_primary(actor)
            key.share_properties({}, actor)  # the announcement every Region of the set reads

        loaded: list[Any] = []

        def load():
            key = region.ledger.get_key(key_id)
            if key is None or key.deleted:
                raise errors.NotFoundException(f"Key '{key_id}' does not exist in {region_name}")
            if not key.is_replica:
                raise errors.UnsupportedOperationException(
                    f"{key.arn} is not a multi-Region replica key: only a replica is promoted")
            loaded[:] = [key]
            return key

        # its record, as the new primary's Region records an UpdatePrimaryRegion, invoked by
        # the command (no caller was authenticated: whoever ran it held the data dir); noted
        # with the change, as a request's (application.region.NOTE_RECORDS), the same record
        now, event_id, request_id = self.clock.now(), new_event_id(), str(uuid.uuid4())

        def rows(events: list[tuple[str, int]]) -> tuple[str, list[Any]]:
            key = loaded[0]
            record = replica_region_record(
                event_name="UpdatePrimaryRegion", account=key.account, region=region_name,
                key_arn=key.arn, event_time=now, event_id=event_id, request_id=request_id,
                invoked_by=PROMOTE_COMMAND,
                request_parameters={"keyId": key.arn, "primaryRegion": region_name},
                ledger_events=events)
            return region_name, [audit_row(record, now, key.account, (key.arn,), None,
                                           request_id)]

        written: list[tuple[str, int]] = []
        token, noting = WRITTEN.set(written), NOTE_RECORDS.set(rows)
        try:
            key = region.change(key_id, load, promote)
        finally:
            NOTE_RECORDS.reset(noting)
            WRITTEN.reset(token)
        (row,) = rows(written)[1]
        result = {"KeyId": key.arn, "Epoch": key.epoch,
                  "ReplicaRegions": list(key.replica_regions), "AuditRecordKept": True}
        try:  # (the store, or else the spool: AuditLog)
            region.audit.record_blocking(row, kept=True)
        except Exception:  # promoted all the same: say so, and keep the record in the log
            log.exception("the promotion of %s is done, but its audit record could not be kept "
                          "(its note in the ledger keeps it for later): %s", key.arn,
                          row.record.decode())
            result["AuditRecordKept"] = False
        return result

    def fork_into(self, other: KeyManagementService, regions: list[str],
                  keep: Callable[[str, int, Any], bool]) -> dict[str, int]:
        """Copy each Region's ledger, as stored, into ``other`` (a new data dir) up to where
        ``keep(region, position, event)`` first says no, with the Region's data keys (still
        wrapped by the same root key). Returns the events copied per Region."""
        copied: dict[str, int] = {}
        for name in regions:
            source, target = self.region(name), other.region(name)
            stored, after = [], 0
            while batch := source.ledger.notifications_after(after, 500):
                for notification in batch:
                    if not keep(name, notification.id, source.ledger.mapper.to_domain_event(
                            notification)):
                        break
                    stored.append(StoredEvent(notification.originator_id,
                                              notification.originator_version,
                                              notification.topic, notification.state))
                else:
                    after = batch[-1].id
                    continue
                break
            target.hierarchy.store_data_keys(source.hierarchy.wrapped_data_keys())
            if stored:
                # with the notes of requests' records it copies marked read, in the same
                # transaction: their records are the source's audit's, and the fork starts its
                # own (scheduler._store_request_notes); its new ledger numbers them on from 1
                copied_upto = (target.ledger.recorder.max_notification_id() or 0) + len(stored)
                target.ledger.recorder.insert_events(
                    stored, tracking=Tracking(REQUEST_NOTES, copied_upto))
            copied[name] = len(stored)
        return copied

    def replication_status(self) -> list[dict[str, Any]]:
        """Per (source, target) Region pair this process replicates: position and lag."""
        with self._replication_lock:
            return [replicator.status() for replicator in self._replicators.values()]

    def serve_regions(self, served: frozenset[str] | None, peers: dict[str, Any]) -> None:
        """This node serves ``served`` (None: every Region); ``peers`` serve the others:
        Region -> infrastructure.peers.Peer."""
        self.served_regions = served
        self._peers = dict(peers)

    def serves(self, region: str) -> bool:
        return self.served_regions is None or region in self.served_regions

    def reachable(self, region: str) -> bool:
        """A Region of the deployment: served here or by a peer."""
        return self.serves(region) or region in self._peers

    def authorize_elsewhere(self, ctx: RequestContext, region: str, key_id: str, operation: str,
                            params: dict[str, Any]) -> None:
        """Authorize the caller's ``operation`` on the key of the set in ``region``, served by a
        peer node (AWS authorizes UpdatePrimaryRegion in the replica's Region too): raise the
        error that node answers. A peer out of reach refuses (KMSInternalException)."""
        peer = self._peers[region]
        try:
            error = peer.authorize(region, {
                "KeyId": key_id, "Operation": operation, "AccessKeyId": ctx.access_key_id,
                "Account": ctx.account_id, "SourceIp": ctx.source_ip, "UserAgent": ctx.user_agent,
                "Params": {k: v for k, v in params.items() if isinstance(v, str | bool | int)},
            })
        except Exception as failure:
            log.warning("authorization in %s out of reach: %s", region, failure)
            raise errors.KMSInternalException(
                f"The {region} Region of this deployment could not be reached.") from None
        if error is not None:
            raise errors.ERROR_TYPES.get(error["Code"], errors.AccessDeniedException)(
                error.get("Message"))

    def authorize_here(self, ctx: RequestContext, key_id: str, operation: str,
                       params: dict[str, Any]) -> None:
        """The other side of :meth:`authorize_elsewhere`: the key-state table and the caller's
        authorization for ``operation`` on this Region's key (raises the KMS error)."""
        op = OPERATIONS[operation]
        self._gate.use(ctx, self.region(ctx.region), key_id, op, op.keys[0], params)

    def transport_key_of(self, region: str) -> bytes:
        """The transport public key of a Region of the deployment (a peer's over HTTP)."""
        if not self.serves(region) and region in self._peers:
            return self._peers[region].transport_public_key(region)
        return self.region(region).hierarchy.transport_public_key()

    def feed(self, region: str, after: int, limit: int) -> list[dict[str, Any]]:
        """A Region's ledger after a position, as the feed endpoint carries it."""
        return [stored_event(n) for n in self.region(region).ledger.notifications_after(after, limit)]

    def replicate(self, target: str | None = None) -> int:
        """Every Region applies what the other Regions' ledgers hold for its multi-Region
        replicas (``target``: only that Region), round after round while a round applied
        something (a replica's answer, such as holding a rotation's material, is read by the
        primary's Region in the next round; at most :data:`_SETTLE_ROUNDS`); returns the
        events applied."""
        applied = 0
        with self._replication_lock:  # one pass at a time in this process
            for _ in range(_SETTLE_ROUNDS):
                applied_now = self._replication_round(target)
                applied += applied_now
                if not applied_now:
                    break
        return applied

    def _replication_round(self, target: str | None) -> int:
        """One read of every other Region's ledger by every Region (``target``: by that one)."""
        applied = 0
        regions = self.regions
        sources = [r.name for r in regions] + [r for r in self._peers if not self.serves(r)]
        for target_region in regions:
            if target is not None and target_region.name != target:
                continue
            for source in sources:
                if source == target_region.name:
                    continue
                pair = (source, target_region.name)
                replicator = self._replicators.get(pair)
                if replicator is None:
                    feed = (self._peers[source].feed(source, target_region.ledger.mapper)
                            if source in self._peers and not self.serves(source)
                            else LocalFeed(self._regions[source]))
                    replicator = self._replicators[pair] = Replicator(
                        source, feed, target_region, self.clock, self._share,
                        self.transport_key_of)
                try:
                    applied += replicator.follow()
                except Exception:  # a peer down or a partition: the next pass retries
                    log.warning("replication %s -> %s: not now", *pair, exc_info=True)
                else:
                    self._read_since_start.add(pair)
        return applied

    def unread_replica_region(self, region_name: str, key) -> str | None:
        """A replica Region of a multi-Region primary whose ledger this process has not read
        to its end since it started (None: none, or the key is no such primary). Until it
        has, this Region cannot know whether that replica was promoted in its place while
        this process was down (docs/regions.md, "Disaster recovery")."""
        if not key.is_primary or not key.replica_regions:
            return None
        return next((replica for replica in key.replica_regions
                     if (replica, region_name) not in self._read_since_start), None)

    def fence(self, region_name: str, key) -> None:
        """Before a multi-Region primary changes what its replicas share (material, rotation,
        the set itself): unless this process has read every replica Region's ledger since it
        started, read them now (a Region served here is opened first), and refuse the change
        if one cannot be read: a primary that restarted while cut off from a replica promoted
        in its place would otherwise make a second primary's changes (a split brain). Each
        pair is read once per process; a key whose replicas were read pays nothing."""
        if self.unread_replica_region(region_name, key) is None:
            return
        for replica in key.replica_regions:
            if self.serves(replica):
                self.region(replica)  # (its replicator exists once the Region is open)
        self.replicate(region_name)
        unread = self.unread_replica_region(region_name, key)
        if unread is not None:
            raise errors.KMSInternalException(
                f"The {unread} Region of this deployment could not be reached.")

    def run_scheduled(self) -> int:
        """Complete due deletions and rotations in every open region; returns how many."""
        return self.scheduler.run(self.regions)

    def record_identities(self, region_name: str, digest: str, changes: list[dict[str, Any]]) -> None:
        """Record a loaded identities file's changes in a region's ledger, once: processes that
        load the same file find its digest already recorded."""
        region = self.region(region_name)
        actor = Actor.service()

        def load() -> IdentityDirectory | None:
            return region.ledger.get_identities()

        with region.writer_lock(IDENTITY_DIRECTORY_ID):
            for _ in range(10):
                directory = load()
                try:
                    if directory is None:
                        region.save(IdentityDirectory.first(digest, changes, actor))
                    elif directory.record(digest, changes, actor,
                                          superseded=self._superseded(region, directory, digest)):
                        region.save(directory)
                    return
                except IntegrityError:
                    continue

    def _superseded(self, region: Region, directory: IdentityDirectory, digest: str) -> bool:
        """Another open region recorded another identities directory after ``region`` last
        recorded ``digest`` (a store served with several default regions: application.forensics
        reads the one recorded last)."""
        if directory.digest != digest:
            return False
        for other in self.regions:
            if other is region:
                continue
            theirs = other.ledger.get_identities()
            if theirs is not None and theirs.digest != digest and \
                    theirs.modified_on > directory.modified_on:
                return True
        return False

    def aliases_of(self, key) -> list[str]:
        """The alias names of a key (kms:ResourceAliases)."""
        region = self.region(key.region)
        region.projection.catch_up()
        return [row.alias_name for row in region.directory.list_aliases(key.account, key.id, "", 101)]

    # -- the ledger's own API -----------------------------------------------------------------

    def key_history(self, region_name: str, key_id: str, account: str | None = None) -> list[dict[str, Any]]:
        """Every event of a key, oldest first, as plain data (no sealed material). With
        ``account``, only a key of that account (no one reads another account's ledger)."""
        if not KEY_ID_PATTERN.fullmatch(key_id) or (
            not self.has_region(region_name) and region_name not in self.known_regions()
        ):
            raise errors.NotFoundException(f"Key '{key_id[:64]}' does not exist in {region_name}")
        region = self.region(region_name)
        key = region.ledger.get_key(key_id)
        if key is None or (account is not None and key.account != account):
            raise errors.NotFoundException(f"Key '{key_id}' does not exist in {region_name}")
        return [describe_event(e) for e in region.ledger.repository.event_store.get(key_id)]


#: the operations keyledger serves: those of the operation table (the rest of the model's
#: answer UnsupportedOperationException)
IMPLEMENTED_OPERATIONS = frozenset(OPERATIONS)
