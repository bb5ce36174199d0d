"""Forensics over a region's ledger and audit store: a key as it was at any instant (time
travel), who could perform an action on it then (access review), the lineage and use of each
of its material versions, and GetKeyLastUsage. Application-layer functions, pure of HTTP:
the ledger API (api/app.py) and the CLI (api/cli.py) present what they return.

Time travel
-----------
The version of a key at T is found by a binary search over its versions, each probe reading
one event (``event_store.get(id, gt=v-1, lte=v)``), the last few versions of the range in one
read: about log2(N) single-row reads, never a scan. Events never change, so each process
remembers the timestamps its searches read (bounded): the first levels of every search are the
same versions, and an instant older than a version already seen needs no read of the newest
event. The key is then rebuilt at that version by the repository
(``repository.get(id, version=v)``), which starts from the newest snapshot at or below v (the
ledger snapshots a key every 50 events), so at most 49 events are replayed.

Where the ledger's recorder offers ``select_at`` (PostgreSQL: infrastructure.ledger_recorder),
the search and the reads of the rebuild are one query instead (the store runs the same binary
search, reading each probed event's timestamp from its stored state); its answer is checked
against the events as the application decodes them (the event at v at or before T, the one
after it after T), and anything it cannot answer goes the way above.

T is compared with the events' own timestamps: the wall clock of the node that recorded them
(the audit records' ``eventTime`` is stamped by the same clock). A key's versions are written
one after another, so their timestamps ascend (across nodes, up to their clocks' skew). "Now"
is that clock's now.

Aliases at T: an alias is its own aggregate, keyed by name, and the listing view holds only
the present. Each process keeps, per ledger, an index "key id -> alias aggregates that ever
named it as their target", built from the alias events of the notification log (the topics
filter leaves every other event in the store) and caught up on each query from the position
it last read (one ``max(id)`` and one empty range select when nothing changed). Each alias
that ever pointed at the key is then folded from its own (short) history up to T. This needs
no new table and no change to the listing projection; its cost is one pass over the region's
alias events per process, once.

Access review
-------------
"Who could perform ACTION on the key at T": the key policy, the grants and the identities (the
IdentityDirectory events folded up to T) as they were at T, decided by
:func:`domain.authorization.authorize` — the evaluator that serves requests. Candidates: every
principal of the identities at T (a role as a session of it), sessions of those roles named by
the key policy or a grant, each account the key policy or a grant names that has no principal
in the identities (evaluated as its root: "principals of that account"), and ``"*"`` (a
principal no policy names, of the key's account).

A request context is only partly known in advance: the caller's attributes (ARN, account,
type, tags), the key's (tags, spec, usage, origin, aliases at T), the time (T) and the Region
are; the rest (encryption context, source IP, TLS, user agent, request members, …) is not.
Each condition test (operator, key) is evaluated when its key is known; a known test that
fails makes the statement not apply to that candidate; the tests that remain are the
statement's *request conditions*. For the decision, an Allow with request conditions counts as
allowing (the caller could meet them: they are reported as ``Conditions``), and a Deny with
request conditions does not deny (it is reported as ``DeniedWhen``). Allows without request
conditions are tried first, so a principal with an unconditional route is reported without
conditions. Grant constraints (encryption context) are reported as the grant's
``Conditions``. Each grant that would allow the principal is a route of its own, besides the
policy route: revoking one route does not remove the others.

Material lineage and use
------------------------
Per material version of a key (in order of appearance): ``Created`` (when it appeared),
``RotationType`` / ``RotationDate`` (how and when a rotation made it current; null for the
first material), ``KeyMaterialState`` (CURRENT, NON_CURRENT, PENDING_ROTATION), ``ImportState``
(imported material), ``Destroyed`` (its data key shredded), and from the audit store's
successful records that name it (``additionalEventData.keyMaterialId``; ReEncrypt's
``sourceKeyMaterialId`` / ``destinationKeyMaterialId``): ``Produced`` (ciphertexts it made:
Encrypt, GenerateDataKey* — the four data-key operations —, ReEncrypt to it), ``Decryptions``
(Decrypt, ReEncrypt from it), for a key of another usage its own operations (``Signatures``:
Sign, Verify; ``Macs``: GenerateMac, VerifyMac; ``SharedSecrets``: DeriveSharedSecret),
``FirstUsed`` / ``LastUsed`` (any of these); for imported material
``DecryptedInLastDays`` ``{"days": N, "any": bool}`` ("safe to delete?"). A record of an
asymmetric key names no material id: it is counted for the key's only material. The records of
a key are read through the audit store's ``key_id`` column (the first key a request named); a
ReEncrypt *to* the key is found among the region's ReEncrypt records since the key was created.

GetKeyLastUsage
---------------
The newest successful cryptographic record of the key (the operations of the model's
``KeyLastUsageTrackingOperation``) in the region's audit store: the records that name it first
(``key_id``) and the ReEncrypt records that name it as destination. TrackingStartDate is the
key's creation when the store keeps its CreateKey record (a replica's: the replica Region's
own CreateKey entry); otherwise the later of the key's creation and the oldest audit record of
the region (tracking starts with the audit store, and moves on when retention prunes it).
"""

from __future__ import annotations

import json
import logging
import re
import threading
import weakref
from collections.abc import Callable, Iterable, Iterator, Mapping
from dataclasses import dataclass, replace
from datetime import UTC, datetime, timedelta
from typing import Any

import orjson
from eventsourcing.persistence import DataError, ProgrammingError
from eventsourcing.utils import get_topic

from application.audit import AuditQuery, AuditStorePort
from application.audit_query import parse_instant, whole_unit
from application.authorization import GRANT_IS_FOR_AWS_RESOURCE_OPERATIONS, compiled
from application.gate import KEY_ID_PATTERN
from application.ledger import KeyLedger
from application.ports import StateAtRecorder
from application.presenters import key_metadata, rotation_status
from application.region import Region
from domain import errors
from domain.alias import Alias
from domain.authorization import AuthorizationRequest, authorize, principal_context
from domain.conditions import compile_condition
from domain.grants import CONTEXT_OPERATIONS, Grant
from domain.identity import IDENTITY_DIRECTORY_ID
from domain.key import KmsKey
from domain.key_states import KEY_STATE_TABLE, Outcome, outcome
from domain.operations import OPERATIONS
from domain.policy import IDENTITY, Policy, PrincipalMatch, Statement
from domain.policy import Caller as PolicyCaller
from domain.principals import (
    Principal,
    PrincipalKind,
    unique_id_for,
)
from domain.values import RotationType, alias_arn

__all__ = [
    "Forensics",
    "KEY_ACTIONS",
    "past_instant",
    "TRACKED_OPERATIONS",
    "access_review",
    "aliases_at",
    "identities_at",
    "key_at",
    "key_last_usage",
    "key_materials",
    "key_state_at",
    "key_then",
    "parse_instant",
    "rebuild_at",
    "version_at",
]

log = logging.getLogger("keyledger.forensics")

# -- instants ---------------------------------------------------------------------------------

def past_instant(text: str | None, now: datetime, name: str = "at") -> datetime:
    """The instant a forensic read is asked about: ``text`` (parse_instant), or ``now`` when
    it is absent or empty. A time given to the second, as a record's eventTime shows one, is
    the end of that second (up to now): the state after what its records show, as the audit
    API's ``end``; to the minute, hour or day (a date), the end of that unit.
    ValidationException for an instant after ``now``: the ledger holds what happened, not
    what will (a scheduled deletion or rotation may not happen)."""
    if not text:
        return now
    at = parse_instant(text, name)
    if at > now:
        raise errors.ValidationException(
            f"'{text[:64]}' is in the future: the ledger answers for instants up to now "
            f"({now.isoformat()}).")
    unit = whole_unit(text)
    if unit:
        at = min(at + timedelta(seconds=unit, microseconds=-1), now)
    return at


# -- versions at an instant ---------------------------------------------------------------------


def _project(aggregate: Any, events: Iterable[Any]) -> Any:
    """The repository's projector without its per-event runtime Protocol check (half of a
    rebuild's cost on Python 3.11)."""
    for event in events:
        aggregate = event.mutate(aggregate)
    return aggregate


class _Timeline:
    """The timestamps of the events a search has read, per ledger: events never change, so a
    probe read once is never read again (the first levels of every search are the same
    versions). Bounded; also the newest version seen per aggregate, with its timestamp: an
    instant before it needs no read of the newest event."""

    MAX_STAMPS = 65_536  # about 10 MB at most

    def __init__(self) -> None:
        self.stamps: dict[tuple[str, int], datetime] = {}
        self.newest: dict[str, tuple[int, datetime]] = {}

    def remember(self, aggregate_id: str, version: int, stamp: datetime) -> None:
        if len(self.stamps) >= self.MAX_STAMPS:
            self.stamps.clear()
            self.newest.clear()
        self.stamps[(aggregate_id, version)] = stamp


#: a search reads the last versions of its range (fewer than this) in one query
_TAIL = 8
_TIMELINES: weakref.WeakKeyDictionary[KeyLedger, _Timeline] = weakref.WeakKeyDictionary()


def _timeline(ledger: KeyLedger) -> _Timeline:
    timeline = _TIMELINES.get(ledger)
    if timeline is None:
        timeline = _TIMELINES.setdefault(ledger, _Timeline())
    return timeline


def forget_timelines() -> None:
    """Forget every timestamp read so far (benchmarks: a query from nothing)."""
    _TIMELINES.clear()


def version_at(ledger: KeyLedger, aggregate_id: str, at: datetime) -> int:
    """The version an aggregate had at ``at`` (0: it did not exist yet), by binary search over
    its versions, one event read per probe (a probe read before is not read again)."""
    timeline = _timeline(ledger)
    known = timeline.newest.get(aggregate_id)
    if known is not None and at < known[1]:
        last = known[0]  # the answer is older than an event already seen: no newer one matters
    else:
        newest = ledger.recorder.select_events(aggregate_id, desc=True, limit=1)
        if not newest:
            return 0
        last = newest[0].originator_version
        stamp = ledger.mapper.to_domain_event(newest[0]).timestamp
        timeline.remember(aggregate_id, last, stamp)
        timeline.newest[aggregate_id] = (last, stamp)
        if stamp <= at:
            return last
    events = ledger.repository.event_store
    stamps = timeline.stamps
    low, high = 0, last  # the event at `low` is at or before `at` (0: none), at `high` after
    while high - low > 1:
        if high - low <= _TAIL and (aggregate_id, (low + high) // 2) not in stamps:
            # the last few versions in one read rather than a read per probe
            for event in events.get(aggregate_id, gt=low, lte=high - 1):
                timeline.remember(aggregate_id, event.originator_version, event.timestamp)
                if event.timestamp > at:
                    return event.originator_version - 1
            return high - 1
        middle = (low + high) // 2
        stamp = stamps.get((aggregate_id, middle))
        if stamp is None:
            (event,) = events.get(aggregate_id, gt=middle - 1, lte=middle)
            stamp = event.timestamp
            timeline.remember(aggregate_id, middle, stamp)
        if stamp <= at:
            low = middle
        else:
            high = middle
    return low


def rebuild_at(ledger: KeyLedger, aggregate_id: str, version: int) -> Any:
    """An aggregate at ``version``: the newest snapshot at or below it, then the events after
    it (the repository's point-in-time rebuild)."""
    return ledger.repository.get(aggregate_id, version=version, projector_func=_project)


#: ledgers whose recorder's ``select_at`` could not read their events: they use the search
#: above from then on
_NO_SELECT_AT: weakref.WeakSet[KeyLedger] = weakref.WeakSet()
_UNANSWERED = object()


def _at_in_one_read(ledger: KeyLedger, aggregate_id: str, at: datetime) -> Any:
    """``(aggregate, version)`` at ``at`` from the recorder's ``select_at`` (one read), None if
    the aggregate did not exist then, ``_UNANSWERED`` if the recorder cannot say."""
    recorder = ledger.recorder
    mapper = ledger.mapper
    if (not isinstance(recorder, StateAtRecorder) or ledger.snapshots is None
            or ledger in _NO_SELECT_AT
            or getattr(mapper, "compressor", None) is not None
            or getattr(mapper, "cipher", None) is not None):  # its SQL reads plain JSON states
        return _UNANSWERED
    try:
        found = recorder.select_at(aggregate_id, at)
    except (DataError, ProgrammingError):  # e.g. states it cannot parse: the search can
        log.warning("time travel in one read failed; searching event by event from now on",
                    exc_info=True)
        _NO_SELECT_AT.add(ledger)
        return _UNANSWERED
    if found is None:
        return _UNANSWERED
    version, snapshot, stored = found
    events = {event.originator_version: event for event in stored}
    following = events.get(version + 1)
    if following is not None and not mapper.to_domain_event(following).timestamp > at:
        return _UNANSWERED
    if version == 0:
        return None
    start = snapshot.originator_version if snapshot is not None else 0
    wanted = range(min(start, version - 1) + 1, version + 1)
    if any(v not in events for v in wanted):
        return _UNANSWERED
    decoded = [mapper.to_domain_event(events[v]) for v in wanted]
    if not decoded[-1].timestamp <= at:  # the event at the version found is at or before T
        return _UNANSWERED
    replay = decoded[start + 1 - wanted.start:]  # the events after the snapshot
    if snapshot is not None:
        replay.insert(0, mapper.to_domain_event(snapshot))
    return _project(None, replay), version


def key_at(ledger: KeyLedger, key_id: str, at: datetime) -> tuple[KmsKey, int] | None:
    """The key as it was at ``at`` and its version then (None: it did not exist yet)."""
    found = _at_in_one_read(ledger, key_id, at)
    if found is _UNANSWERED:
        version = version_at(ledger, key_id, at)
        if version == 0:
            return None
        key = rebuild_at(ledger, key_id, version)
    elif found is None:
        return None
    else:
        key, version = found
    return (key, version) if isinstance(key, KmsKey) else None


# -- aliases at an instant ----------------------------------------------------------------------

_TARGETING_TOPICS = tuple(
    get_topic(cls) for cls in (Alias.AliasCreated, Alias.AliasRecreated, Alias.AliasTargetUpdated)
)
_BATCH = 1000


class _AliasIndex:
    """Key id -> the alias aggregates that ever named it as their target, followed from the
    notification log (alias events that name a target only)."""

    def __init__(self, ledger: KeyLedger) -> None:
        self._ledger = weakref.ref(ledger)
        self._position = 0
        self._targets: dict[str, set[str]] = {}
        self._lock = threading.Lock()

    def aliases_of(self, key_id: str) -> list[str]:
        ledger = self._ledger()
        if ledger is None:  # pragma: no cover - the ledger outlives its index's users
            return []
        with self._lock:
            stop = ledger.recorder.max_notification_id() or 0
            while self._position < stop:
                batch = ledger.recorder.select_notifications(
                    start=self._position, limit=_BATCH, stop=stop, topics=_TARGETING_TOPICS,
                    inclusive_of_start=False,
                )
                for notification in batch:
                    event = ledger.mapper.to_domain_event(notification)
                    self._targets.setdefault(event.target_key_id, set()).add(event.originator_id)
                self._position = batch[-1].id if len(batch) == _BATCH else stop
            return sorted(self._targets.get(key_id, ()))


_ALIAS_INDEXES: weakref.WeakKeyDictionary[KeyLedger, _AliasIndex] = weakref.WeakKeyDictionary()
_ALIAS_INDEXES_LOCK = threading.Lock()


def _alias_index(ledger: KeyLedger) -> _AliasIndex:
    with _ALIAS_INDEXES_LOCK:
        index = _ALIAS_INDEXES.get(ledger)
        if index is None:
            index = _ALIAS_INDEXES[ledger] = _AliasIndex(ledger)
        return index


def aliases_at(ledger: KeyLedger, key: KmsKey, at: datetime) -> list[dict[str, Any]]:
    """The aliases that pointed at ``key`` at ``at``, in ListAliases' shape, by name."""
    found = []
    for alias_id in _alias_index(ledger).aliases_of(key.id):
        alias = None
        for event in ledger.repository.event_store.get(alias_id):
            if event.timestamp > at:
                break
            alias = event.mutate(alias)
        if isinstance(alias, Alias) and alias.target_key_id == key.id and alias.account == key.account:
            found.append({
                "AliasName": alias.alias_name,
                "AliasArn": alias_arn(alias.region, alias.account, alias.alias_name),
                "TargetKeyId": key.id,
                "CreationDate": alias.creation_date,
                "LastUpdatedDate": alias.last_updated_date,
            })
    return sorted(found, key=lambda entry: entry["AliasName"])


# -- the state of a key at an instant -----------------------------------------------------------


def _grant_order(grant: Grant) -> tuple[float, str]:
    return grant.creation_date.timestamp(), grant.grant_id  # ListGrants' order


def key_then(region: Region, key_id: str, at: datetime,
             account: str | None = None) -> tuple[KmsKey, int]:
    """The key at ``at`` and its version then. NotFoundException: "does not exist" for no
    such key (or a key of another ``account``), "did not exist … at T" before it was created.

    A key exists from its CreationDate (what DescribeKey and the CreateKey record show), which
    precedes the commit of its first event by the time the request took: in between, it is as
    its first event made it."""
    found = key_at(region.ledger, key_id, at)
    if found is not None and (account is None or found[0].account == account):
        return found
    first = list(region.ledger.repository.event_store.get(key_id, lte=1))
    if (not first or not isinstance(first[0], KmsKey.KeyCreated)
            or (account is not None and first[0].account != account)):
        raise errors.NotFoundException(f"Key '{key_id}' does not exist in {region.name}")
    if found is None and first[0].created_at <= at:
        return rebuild_at(region.ledger, key_id, 1), 1
    raise errors.NotFoundException(
        f"Key '{key_id}' did not exist in {region.name} at {at.isoformat()}"
    )


def key_state_at(region: Region, key_id: str, at: datetime,
                 account: str | None = None) -> dict[str, Any]:
    """The key's full state at ``at``: DescribeKey's KeyMetadata, the key policy, tags,
    aliases, grants, rotation status, its version then and whether it was deleted by then
    (:func:`key_then` says when it is not found)."""
    key, version = key_then(region, key_id, at, account)
    return {
        "KeyMetadata": key_metadata(key),
        "Policy": key.policy,
        "Tags": [{"TagKey": k, "TagValue": key.tags[k]} for k in sorted(key.tags)],
        "Aliases": aliases_at(region.ledger, key, at),
        "Grants": [g.to_list_entry(key.arn) for g in sorted(key.grants.values(), key=_grant_order)],
        "KeyRotationStatus": rotation_status(key),
        "Version": version,
        "Deleted": key.deleted,
    }


# -- identities at an instant -------------------------------------------------------------------

_IAM_ENTITY = re.compile(r"arn:aws:iam::([0-9]{12}):(user|role)(/(?:[^/]+/)*)([^/]+)")


def _principal(arn: str, entry: Mapping[str, Any]) -> Principal | None:
    if entry["kind"] == "root":
        return Principal.root(entry["account"])
    match = _IAM_ENTITY.fullmatch(arn)
    if match is None:
        return None
    account, section, path, name = match.groups()
    kind = PrincipalKind.USER if section == "user" else PrincipalKind.ASSUMED_ROLE
    return Principal(account=account, kind=kind, name=name, path=path,
                     tags=dict(entry["tags"]), policies=dict(entry["policies"]),
                     unique_id=unique_id_for(kind, arn))


def identity_events(ledger: KeyLedger, at: datetime) -> list[Any]:
    """The IdentitiesRecorded / IdentitiesChanged events a ledger recorded up to ``at``."""
    events = []
    for event in ledger.repository.event_store.get(IDENTITY_DIRECTORY_ID):
        if event.timestamp > at:
            break
        events.append(event)
    return events


def identities_at(events: Iterable[Any]) -> dict[str, Principal]:
    """The principals of the identities file as ``events`` (identity_events) recorded them,
    their ``changes`` folded: ARN -> principal (a role as a session-less template). Empty
    when nothing was recorded by then."""
    entries: dict[str, dict[str, Any]] = {}
    for event in events:
        for change in event.changes:
            arn = change["arn"]
            if change["change"] == "removed":
                entries.pop(arn, None)
                continue
            if change["change"] == "added":
                entries[arn] = {"account": change["account"], "kind": change["kind"],
                                "policies": dict(change.get("policies") or {}),
                                "tags": dict(change.get("tags") or {})}
                continue
            entry = entries.setdefault(arn, {"account": change["account"], "kind": change["kind"],
                                             "policies": {}, "tags": {}})
            entry["policies"].update(change.get("policies_added") or {})
            entry["policies"].update(change.get("policies_changed") or {})
            for name in change.get("policies_removed") or ():
                entry["policies"].pop(name, None)
            if "tags" in change:
                entry["tags"] = dict(change["tags"]["new"])
    principals = {}
    for arn, entry in entries.items():
        principal = _principal(arn, entry)
        if principal is not None:
            principals[arn] = principal
    return principals


# -- access review ------------------------------------------------------------------------------

#: the IAM actions authorized on a key (lower case -> as spelt): those of the request members
#: that name keys (kms:ReEncryptFrom/To for ReEncrypt), and of the alias operations (their
#: keys are authorized too: DeleteAlias on the key the alias points at)
KEY_ACTIONS: dict[str, str] = {
    action.lower(): action
    for op in OPERATIONS.values()
    for action in [member.action for member in op.keys] + ([op.action] if op.alias_resource else [])
}

#: the operations each action on a key authorizes (kms:ReEncryptFrom: ReEncrypt), by which
#: the key's state at T decides whether anyone could perform the action then
_ACTION_OPERATIONS: dict[str, tuple[str, ...]] = {
    action: tuple(op.name for op in OPERATIONS.values()
                  if action in {member.action for member in op.keys}
                  or (op.alias_resource and op.action == action))
    for action in KEY_ACTIONS.values()
}


def state_refusal(key: KmsKey, action: str) -> str | None:
    """The error every request ``action`` authorizes would have met on ``key`` in its state
    (the key-state table; NotFoundException once deleted); None when its state allows one."""
    if key.deleted:
        return "NotFoundException"
    outcomes = [outcome(name, key.key_state) for name in _ACTION_OPERATIONS[action]
                if name in KEY_STATE_TABLE]
    if not outcomes or Outcome.ALLOWED in outcomes:
        return None
    return outcomes[0].value


#: condition keys whose value a candidate principal fixes (lower case)
_PRINCIPAL_KEYS = frozenset({
    "aws:principalarn", "aws:principalaccount", "aws:principaltype", "aws:userid",
    "aws:username", "kms:calleraccount",
})
#: the session name a role is reviewed under: any session of the role may call (the session
#: names in use are not in the ledger, and a caller chooses one when it assumes the role).
#: IAM allows none with braces, so no policy naming a session names this one, and the keys
#: a session's name decides (_SESSION_KEYS) are left to the request, as conditions
_ANY_SESSION = "{any-session}"
_SESSION_KEYS = frozenset({"aws:userid"})  # (a session's: ROLE-ID:SESSION-NAME)
#: condition keys whose value keyledger fixes, as its evaluator does (application.authorization):
#: no AWS service calls it, so kms:ViaService is never present, aws:ViaAWSService is false, and
#: kms:GrantIsForAWSResource is false for the grant operations (absent for the others)
_SERVER_KEYS = frozenset({"kms:viaservice", "aws:viaawsservice", "kms:grantisforawsresource"})
#: condition keys whose value the key (as it was at T), T or the Region fix
_KEY_KEYS = frozenset({
    "kms:keyspec", "kms:customermasterkeyspec", "kms:keyusage", "kms:customermasterkeyusage",
    "kms:keyorigin", "kms:multiregion", "kms:multiregionkeytype", "kms:resourcealiases",
    "aws:currenttime",
    "aws:epochtime", "aws:requestedregion",
})
_ACCOUNT = re.compile(r"[0-9]{12}")
_NAMED_ACCOUNT = re.compile(r"arn:aws(?:-[a-z]+)*:(?:iam|sts)::([0-9]{12}):.*")
_SESSION_ARN = re.compile(r"arn:aws:sts::([0-9]{12}):assumed-role/([^/]+)/([^/]+)")
_NONE = PrincipalMatch.NONE
_DIRECT = PrincipalMatch.DIRECT


def _key_context(key: KmsKey, aliases: list[str], at: datetime) -> dict[str, Any]:
    context: dict[str, Any] = {
        "kms:keyspec": key.key_spec, "kms:customermasterkeyspec": key.key_spec,
        "kms:keyusage": key.key_usage, "kms:customermasterkeyusage": key.key_usage,
        "kms:keyorigin": key.origin, "kms:multiregion": key.multi_region,
        "kms:multiregionkeytype": key.multi_region_key_type,
        "kms:resourcealiases": list(aliases) or None,
        "aws:currenttime": at, "aws:epochtime": int(at.timestamp()),
        "aws:requestedregion": key.region,
    }
    for tag, value in key.tags.items():
        context["aws:resourcetag/" + tag.lower()] = value
    return context


@dataclass(frozen=True)
class _Candidate:
    label: str  # what the answer names: an ARN, an account id or "*"
    principal: Principal
    known: bool  # the principal's own condition keys are known (False for "*")
    #: a user or role of another account, named by the key policy or a grant: its own
    #: account's IAM policies, which are that account's, are taken to allow (_elsewhere)
    elsewhere: bool = False


@dataclass
class _Part:
    """One statement of one policy, for one candidate."""

    statement: Statement
    policy_name: str | None  # None: the key policy
    conditions: dict[str, Any] | None  # the request conditions left (None: none)

    @property
    def display(self) -> str:
        return self.statement.sid or f"#{self.statement.index}"


class _Rewritten:
    """A policy as one candidate meets it: statements that cannot apply dropped, the rest
    without conditions, tagged so a decision's ``via`` names the statement."""

    def __init__(self, policy: Policy, document: Any, policy_name: str | None, tag: str,
                 context: Mapping[str, Any], is_known: Callable[[str], bool]) -> None:
        raws = document.get("Statement") if isinstance(document, dict) else None
        raws = [raws] if isinstance(raws, dict) else list(raws or [])
        variables = policy.version == "2012-10-17"
        self.parts: dict[str, _Part] = {}
        plain: list[Statement] = []  # unconditional allows and denies
        conditional: list[Statement] = []  # allows with request conditions (made plain)
        self.conditional_denies: list[_Part] = []
        for statement in policy.statements:
            raw = raws[statement.index] if statement.index < len(raws) else {}
            condition = raw.get("Condition") if isinstance(raw, dict) else None
            holds, residual = (True, None) if statement.condition is None else _partial(
                condition, variables, context, is_known)
            if not holds:
                continue  # a known condition fails: the statement never applies
            sid = f"{tag}{statement.index}"
            part = _Part(statement, policy_name, residual)
            self.parts[sid] = part
            copy = Statement(sid, statement.allow, statement.principals, statement.actions,
                             statement.resources, None, statement.index)
            if residual is None:
                plain.append(copy)
            elif statement.allow:
                conditional.append(copy)
            else:
                self.conditional_denies.append(part)
        kind, version, policy_id = policy.kind, policy.version, policy.id
        self.unconditional = Policy(None, kind, version, policy_id, tuple(plain))
        self.optimistic = Policy(None, kind, version, policy_id, tuple(
            sorted(plain + conditional, key=lambda s: s.index)))
        self.denies = Policy(None, kind, version, policy_id, tuple(s for s in plain if not s.allow))


_VARIABLE = re.compile(r"\$\{([^}]*)\}")


def _variables(values: Any) -> list[str]:
    """The condition keys the policy variables of a condition's values name, in lower case
    (``${aws:PrincipalTag/team}``, ``${aws:username, 'default'}``; not the escapes ``${*}``,
    ``${?}``, ``${$}``)."""
    names = (match.split(",", 1)[0].strip().lower()
             for match in _VARIABLE.findall(json.dumps(values)))
    return [name for name in names if name not in ("*", "?", "$")]


def _partial(condition: Any, variables: bool, context: Mapping[str, Any],
             is_known: Callable[[str], bool]) -> tuple[bool, dict[str, Any] | None]:
    """Evaluate the tests of a Condition element whose keys are known: (False, None) when one
    fails, else (True, the tests left as written, or None when none is left)."""
    if not isinstance(condition, dict):
        return True, None
    residual: dict[str, dict[str, Any]] = {}
    for operator, entries in condition.items():
        if not isinstance(entries, dict):
            continue
        for name, values in entries.items():
            key = name.strip().lower()
            if not is_known(key) or (variables and not all(
                    is_known(variable) for variable in _variables(values))):
                residual.setdefault(operator, {})[name] = values
                continue
            test = compile_condition({operator: {name: values}}, variables=variables)
            if test is not None and not test.evaluate(context):
                return False, None
    return True, residual or None


def _identity_documents(principal: Principal) -> list[tuple[str, Policy, Any]]:
    """(name, compiled, document) of a principal's identity policies, in name order."""
    policies = []
    for name, document in sorted(principal.policies.items()):
        try:
            policies.append((name, Policy.from_document(document, kind=IDENTITY), document))
        except errors.KmsError:
            continue  # a document IAM would refuse allows nothing
    return policies


def _allowing_statements(policy: Policy, caller: PolicyCaller, action: str, resource: str,
                         context: Mapping[str, Any]) -> list[Statement]:
    """The key policy Allows that let a caller's identity policies decide, the one the
    evaluator relies on first: those that name it, then those that name its account
    (domain.authorization steps 3 and 4)."""
    direct, account = [], []
    for statement in policy.applicable(action)[1]:
        match = statement.principals.match(caller)  # type: ignore[union-attr]
        if match is _NONE or not statement.holds(resource, context) & 1:
            continue
        (direct if match is _DIRECT else account).append(statement)
    return direct + account


def _contradict(first: Mapping[str, Any] | None, second: Mapping[str, Any] | None) -> bool:
    """Whether two sets of request conditions can never hold together: each requires a key
    (``StringEquals``) to equal a value of its own, and no value is in both (the keys left to
    the request are single-valued: an encryption context entry, the source IP ...)."""
    if not first or not second:
        return False
    ours = {k.lower(): v for k, v in (first.get("StringEquals") or {}).items()}
    for name, values in (second.get("StringEquals") or {}).items():
        mine = ours.get(name.lower())
        if mine is None:
            continue
        wanted = {mine} if isinstance(mine, str) else set(mine)
        if wanted.isdisjoint({values} if isinstance(values, str) else set(values)):
            return True
    return False


def _identity_allowing(policies: list[Policy], action: str, resource: str,
                       context: Mapping[str, Any]) -> Statement | None:
    for policy in policies:
        for statement in policy.applicable(action)[1]:
            if statement.holds(resource, context) & 1:
                return statement
    return None


def _routes(candidate: _Candidate, key: KmsKey, key_policy: Policy, key_document: Any,
            grants: list[Grant], action: str, key_context: Mapping[str, Any]) -> list[dict[str, Any]]:
    """Every route by which the candidate could perform ``action`` on the key."""
    principal = candidate.principal
    context = dict(key_context)
    if candidate.known:
        context.update(principal_context(principal))
        context["kms:calleraccount"] = principal.account

    any_session = principal.session_name == _ANY_SESSION

    context["aws:viaawsservice"] = False
    if action[len("kms:"):] in GRANT_IS_FOR_AWS_RESOURCE_OPERATIONS:
        context["kms:grantisforawsresource"] = False

    def is_known(name: str) -> bool:
        if name in _KEY_KEYS or name in _SERVER_KEYS or name.startswith("aws:resourcetag/"):
            return True
        if any_session and name in _SESSION_KEYS:
            return False
        return candidate.known and (name in _PRINCIPAL_KEYS or name.startswith("aws:principaltag/"))

    kp = _Rewritten(key_policy, key_document, None, "k", context, is_known)
    ids = [_Rewritten(policy, document, name, f"i{n}.", context, is_known)
           for n, (name, policy, document) in enumerate(_identity_documents(principal))]
    parts = {**kp.parts, **{sid: part for r in ids for sid, part in r.parts.items()}}
    caller = PolicyCaller(principal)
    lowered = action.lower()
    denied_when = []
    for part in kp.conditional_denies + [p for r in ids for p in r.conditional_denies]:
        statement = part.statement
        if not statement.actions(lowered) or statement.resources is None:
            continue
        if statement.principals is not None and statement.principals.match(caller) is _NONE:
            continue
        if not statement.resources(key.arn, context):
            continue
        entry = {"Via": "key-policy" if part.policy_name is None else "identity-policy"}
        if part.policy_name is not None:
            entry["PolicyName"] = part.policy_name
        entry.update({"Statement": part.display, "Conditions": part.conditions})
        denied_when.append(entry)

    def decide(key_policy: Policy, identity: list[Policy], grant: Grant | None):
        return authorize(AuthorizationRequest(
            principal=principal, action=action, resource=key.arn, resource_account=key.account,
            key_policy=key_policy, identity_policies=identity, context=context,
            grants=() if grant is None else (grant,),
            grant_operation=None if grant is None else action[4:],
        ))

    routes: list[dict[str, Any]] = []
    # every statement that would let the candidate in, its conditions met, is a way in of its
    # own (meeting any one's conditions suffices; an unconditional one hides none of the
    # conditional ones: taking it away leaves them open)
    optimistic = [r.optimistic for r in ids]
    decision = decide(kp.optimistic, optimistic, None)
    if decision.allowed:
        routes.extend(_ways_in(decision, decide, kp.optimistic, optimistic, parts, candidate,
                               caller, action, key.arn, context))
    for grant in grants:
        plain = replace(grant, constraints=None)
        for pass_ids in ([r.unconditional for r in ids], [r.optimistic for r in ids]):
            decision = decide(kp.denies, pass_ids, plain)
            if not decision.allowed:
                continue
            conditions: dict[str, Any] = {}
            # a constraint binds only operations that take an encryption context
            if grant.constraints is not None and action[len("kms:"):] in CONTEXT_OPERATIONS:
                conditions.update(grant.constraints.to_wire())
            if not grant.grantee_is(principal):  # by delegation: an identity policy too
                statement = _identity_allowing(pass_ids, action, key.arn, context)
                if statement is not None and parts[statement.sid].conditions:
                    conditions.update(parts[statement.sid].conditions)
            routes.append({"Principal": candidate.label, "Via": "grant",
                           "GrantId": grant.grant_id, "Conditions": conditions or None})
            break
    if denied_when:
        for route in routes:
            route["DeniedWhen"] = denied_when
    return routes


def _without(policy: Policy, sid: str) -> Policy:
    return Policy(None, policy.kind, policy.version, policy.id,
                  tuple(s for s in policy.statements if s.sid != sid))


def _ways_in(decision, decide, key_policy: Policy, identity: list[Policy],
             parts: dict[str, _Part], candidate: _Candidate, caller: PolicyCaller, action: str,
             resource: str, context: Mapping[str, Any]) -> list[dict[str, Any]]:
    """A route per statement that lets the candidate in (``decision``: the evaluator's first):
    the statement it relied on, then again without it, until none is left that would. Every
    one is named, an unconditional one too: taking one away leaves the others open."""
    routes = []
    for _ in parts:  # (each turn takes one statement away: at most one route per statement)
        if not decision.allowed:
            break
        part = parts[decision.via]
        if part.policy_name is None:
            route = {"Principal": candidate.label, "Via": "key-policy",
                     "Statement": part.display, "Conditions": part.conditions}
            key_policy = _without(key_policy, decision.via)
        else:
            # the first key policy statement letting it decide whose conditions can hold with
            # its own (none: this statement is no way in)
            delegating = [parts[s.sid] for s in _allowing_statements(
                key_policy, caller, action, resource, context)]
            through = next((d for d in delegating
                            if not _contradict(part.conditions, d.conditions)), None)
            identity = [_without(policy, decision.via) for policy in identity]
            if delegating and through is None:
                decision = decide(key_policy, identity, None)
                continue
            route = {"Principal": candidate.label, "Via": "identity-policy",
                     "PolicyName": part.policy_name, "Statement": part.display,
                     "Conditions": part.conditions,
                     "KeyPolicyStatement": through.display if through else None,
                     "KeyPolicyConditions": through.conditions if through else None}
        routes.append(route)
        decision = decide(key_policy, identity, None)
    return routes


def _named(key_policy: Policy, grants: list[Grant]) -> tuple[set[str], set[str]]:
    """(ARNs, accounts) the key policy's principals and the grants' grantees name."""
    arns: set[str] = set()
    accounts: set[str] = set()
    for statement in key_policy.statements:
        principals = statement.principals
        if principals is None:
            continue
        arns |= principals.arns
        accounts |= principals.accounts
    for grant in grants:
        arns.add(grant.grantee_principal)
    for arn in list(arns):
        if _ACCOUNT.fullmatch(arn):
            accounts.add(arn)
            continue
        match = _NAMED_ACCOUNT.fullmatch(arn)
        if match is not None:
            accounts.add(match.group(1))
    return arns, accounts


_IAM_ARN = re.compile(r"arn:aws:iam::([0-9]{12}):(user|role)(/(?:[^/]+/)*)([^/]+)")


#: the identity policy a user or role of another account is given in the review: whatever its
#: own account's IAM policies allow, the review of the key cannot know (nor show)
_ITS_ACCOUNTS_IAM = "(its account's IAM policies)"
_ITS_ACCOUNTS = {_ITS_ACCOUNTS_IAM: {"Version": "2012-10-17", "Statement": [
    {"Effect": "Allow", "Action": "*", "Resource": "*"}]}}


def _elsewhere(routes: list[dict[str, Any]]) -> list[dict[str, Any]]:
    """A user or role of another account gets in through the key policy's statement (and its
    own account's IAM, which is that account's): its routes say so, as the key policy's."""
    found = []
    for route in routes:
        if route.get("PolicyName") == _ITS_ACCOUNTS_IAM:
            route = {"Principal": route["Principal"], "Via": "key-policy",
                     "Statement": route.get("KeyPolicyStatement"),
                     "Conditions": route.get("KeyPolicyConditions"),
                     **({"DeniedWhen": route["DeniedWhen"]} if "DeniedWhen" in route else {})}
        if route not in found:
            found.append(route)
    return found


def _named_elsewhere(arn: str) -> Principal | None:
    """The user, role (any of its sessions) or role session an ARN of another account names,
    as the key policy or a grant spells it: nothing of that account's identities (its
    paths, tags and policies are its own, never shown to the key's owner)."""
    session = _SESSION_ARN.fullmatch(arn)
    if session is not None:
        account, role, name = session.groups()
        return Principal(account=account, kind=PrincipalKind.ASSUMED_ROLE, name=role,
                         session_name=name)
    match = _IAM_ARN.fullmatch(arn)
    if match is None:
        return None
    account, kind, path, name = match.groups()
    if kind == "user":
        return Principal(account=account, kind=PrincipalKind.USER, name=name, path=path,
                         unique_id=unique_id_for(PrincipalKind.USER, arn))
    return Principal(account=account, kind=PrincipalKind.ASSUMED_ROLE, name=name, path=path,
                     session_name=_ANY_SESSION,
                     unique_id=unique_id_for(PrincipalKind.ASSUMED_ROLE, arn))


def _candidates(key: KmsKey, key_policy: Policy, grants: list[Grant],
                identities: Mapping[str, Principal]) -> list[_Candidate]:
    """The key's own account's identities, each with its policies and tags; the principals
    of other accounts only as the key policy and grants name them (an account, or an ARN,
    whose own conditions keys are not known), since their identities are their accounts'."""
    own = {arn: p for arn, p in identities.items() if p.account == key.account}
    candidates = []
    for arn, principal in sorted(own.items()):
        if principal.kind is PrincipalKind.ASSUMED_ROLE:  # any of its sessions (_ANY_SESSION)
            principal = replace(principal, session_name=_ANY_SESSION)
        candidates.append(_Candidate(arn, principal, True))
    arns, accounts = _named(key_policy, grants)
    for arn in sorted(arns):
        named = _NAMED_ACCOUNT.fullmatch(arn)
        if named is None or arn in own:
            continue
        if named.group(1) != key.account:
            elsewhere = _named_elsewhere(arn)
            if elsewhere is not None:
                candidates.append(_Candidate(arn, replace(elsewhere, policies=_ITS_ACCOUNTS),
                                             False, elsewhere=True))
            continue
        session = _SESSION_ARN.fullmatch(arn)
        if session is None:
            continue
        account, role, name = session.groups()
        template = next((p for p in own.values() if p.kind is PrincipalKind.ASSUMED_ROLE
                         and p.name == role), None)
        if template is not None:
            candidates.append(_Candidate(arn, replace(template, session_name=name), True))
    present = {p.account for p in own.values()}
    for account in sorted(accounts - present):
        candidates.append(_Candidate(account, Principal.root(account), True))
    anyone = Principal(account=key.account, kind=PrincipalKind.USER, name="*")
    candidates.append(_Candidate("*", anyone, False))
    return candidates


_VIA_ORDER = {"key-policy": 0, "identity-policy": 1, "grant": 2}


def access_review(key: KmsKey, aliases: list[str], identities: Mapping[str, Principal],
                  action: str, at: datetime) -> list[dict[str, Any]]:
    """Every (principal, route) by which ``action`` could be performed on ``key`` as it was at
    ``at`` (with its aliases then and the identities then), ordered by principal and route."""
    key_policy = compiled(key.policy)
    document = json.loads(key.policy)
    grants = sorted(key.grants.values(), key=_grant_order)
    key_context = _key_context(key, aliases, at)
    routes = []
    for candidate in _candidates(key, key_policy, grants, identities):
        found = _routes(candidate, key, key_policy, document, grants, action, key_context)
        routes.extend(_elsewhere(found) if candidate.elsewhere else found)
    return sorted(routes, key=lambda r: (r["Principal"], _VIA_ORDER[r["Via"]],
                                         r.get("GrantId") or r.get("Statement") or ""))


def key_action(action: str) -> str:
    """The IAM action as the operation table spells it; ValidationException for an action
    that is not authorized on a key."""
    canonical = KEY_ACTIONS.get(action.strip().lower())
    if canonical is None:
        raise errors.ValidationException(
            f"'{action[:64]}' is not an action authorized on a KMS key (for example "
            "kms:Decrypt, kms:Encrypt, kms:ReEncryptFrom)."
        )
    return canonical


# -- the audit store ----------------------------------------------------------------------------


def _audit(region: Region) -> AuditStorePort:
    return region.audit.store


def _records(store: AuditStorePort, key: KmsKey) -> Iterator[tuple[int, dict[str, Any]]]:
    """The key's records (those naming it first, and ReEncrypts to it) in its owner's account,
    newest first, page by page: a cross-account call left a copy in each account; the owner's
    is the one counted."""
    before = None
    while True:
        rows = store.query(AuditQuery(account=key.account, key_id=key.id, before_position=before,
                                      limit=_BATCH))
        for position, record in rows:
            yield position, orjson.loads(record)
        if len(rows) < _BATCH:
            return
        before = rows[-1][0]


def _succeeded(record: Mapping[str, Any]) -> bool:
    return record.get("eventSource") == "kms.amazonaws.com" and not record.get("errorCode")


_SECOND = timedelta(seconds=1)


def _stored_time(store: AuditStorePort, position: int) -> datetime:
    """The instant stored with the record at ``position`` (its eventTime shows only the
    second: a use in the second a key or material was created would seem to precede it)."""
    (_, when, _), = store.after(position - 1, 1)
    return datetime.fromtimestamp(when, UTC)


def _record_time(record: Mapping[str, Any]) -> datetime | None:
    try:
        when = datetime.fromisoformat(record["eventTime"])
    except (KeyError, TypeError, ValueError):
        return None
    return when.replace(tzinfo=UTC) if when.tzinfo is None else when


def _resource_arns(record: Mapping[str, Any]) -> list[str]:
    return [r.get("ARN") for r in record.get("resources") or () if isinstance(r, dict)]


def _names_as_destination(record: Mapping[str, Any], key_arn: str) -> bool:
    """A ReEncrypt record whose destination (a resource after the first) is the key."""
    return key_arn in _resource_arns(record)[1:]


# -- material lineage and use -------------------------------------------------------------------

_LINEAGE = {
    get_topic(cls): cls for cls in (
        KmsKey.KeyCreated, KmsKey.KeyMaterialRotated, KmsKey.KeyMaterialImported,
        KmsKey.ImportedKeyMaterialRotated, KmsKey.ImportedKeyMaterialShredded,
        KmsKey.KeyMaterialShredded, KmsKey.MultiRegionKeySynchronized,
    )
}
#: the operations of a key's usage other than encryption, counted per material (and their group)
_USAGE_GROUPS = {
    "SIGN_VERIFY": ("Signatures", ("Sign", "Verify")),
    "GENERATE_VERIFY_MAC": ("Macs", ("GenerateMac", "VerifyMac")),
    "KEY_AGREEMENT": ("SharedSecrets", ("DeriveSharedSecret",)),
    "ENCAPSULATE_DECAPSULATE": ("Encapsulations", ("Encapsulate", "Decapsulate")),
}

_GENERATE_DATA_KEY = frozenset({
    "GenerateDataKey", "GenerateDataKeyWithoutPlaintext", "GenerateDataKeyPair",
    "GenerateDataKeyPairWithoutPlaintext",
})


def _lineage(ledger: KeyLedger, key_id: str) -> dict[str, dict[str, Any]]:
    """Material id -> {Created, RotationType, RotationDate, Destroyed}, in order of appearance,
    from the key's material events (the others are skipped before they are decoded)."""
    lineage: dict[str, dict[str, Any]] = {}

    def appear(material, again: bool = False) -> None:
        """``again``: imported anew (the same material after it was deleted: live again)."""
        if material is None:
            return
        if material.key_material_id in lineage:
            if again:
                lineage[material.key_material_id]["Destroyed"] = False
            return
        rotation = material.rotation_type
        lineage[material.key_material_id] = {
            "Created": material.created,
            "RotationType": None if rotation is None else RotationType(rotation).value,
            "RotationDate": None if rotation is None else material.created,
            "Destroyed": False,
        }

    for stored in ledger.recorder.select_events(key_id):
        cls = _LINEAGE.get(stored.topic)
        if cls is None:
            continue
        event = ledger.mapper.to_domain_event(stored)
        if cls in (KmsKey.KeyCreated, KmsKey.KeyMaterialRotated):
            appear(event.material)
        elif cls is KmsKey.KeyMaterialImported:
            appear(event.material, again=True)
        elif cls is KmsKey.MultiRegionKeySynchronized:  # a replica's versions: the primary's
            for material in event.materials:
                appear(material)
        elif cls is KmsKey.ImportedKeyMaterialRotated:
            entry = lineage.get(event.key_material_id)
            if entry is not None:
                entry["RotationType"] = RotationType.ON_DEMAND.value
                entry["RotationDate"] = event.rotation_date
        elif cls is KmsKey.ImportedKeyMaterialShredded:
            if event.key_material_id in lineage:
                lineage[event.key_material_id]["Destroyed"] = True
        else:  # the key's data-encryption key was destroyed: the versions sealed under it
            for material_id in event.key_material_ids:
                if material_id in lineage:
                    lineage[material_id]["Destroyed"] = True
    return lineage


def key_materials(region: Region, key_id: str, now: datetime, days: int = 30,
                  account: str | None = None) -> dict[str, Any]:
    """Each material version of the key with its lineage and use (see the module docstring).
    ``DecryptedInLastDays`` (imported material only) looks back ``days`` days from ``now``."""
    key = region.ledger.get_key(key_id)
    if key is None or (account is not None and key.account != account):
        raise errors.NotFoundException(f"Key '{key_id}' does not exist in {region.name}")
    lineage = _lineage(region.ledger, key.id)
    use = {m: {"Produced": {"Encrypt": 0, "GenerateDataKey*": 0, "ReEncrypt": 0},
               "Decryptions": {"Decrypt": 0, "ReEncrypt": 0}, "times": [], "decrypted": []}
           for m in lineage}
    only = next(iter(lineage)) if len(lineage) == 1 else None

    def count(material_id: str | None, group: str, name: str,
              when: tuple[datetime, int] | None, decryption: bool) -> None:
        """``when``: the record's eventTime (to the second) and position (its instant)."""
        entry = use.get(material_id if material_id is not None else only)
        if entry is None:
            return
        entry[group][name] += 1
        if when is not None:
            entry["times"].append(when)
            if decryption:
                entry["decrypted"].append(when)

    group = _USAGE_GROUPS.get(key.key_usage)
    if group is not None:
        for entry in use.values():
            entry[group[0]] = dict.fromkeys(group[1], 0)
    store = _audit(region)
    for position, record in _records(store, key):
        if not _succeeded(record):
            continue
        name, extra, when = record.get("eventName"), record.get("additionalEventData") or {}, _record_time(record)
        when = None if when is None else (when, position)
        if group is not None and name in group[1]:
            count(extra.get("keyMaterialId"), group[0], name, when, False)
        elif name == "Encrypt":
            count(extra.get("keyMaterialId"), "Produced", "Encrypt", when, False)
        elif name in _GENERATE_DATA_KEY:
            count(extra.get("keyMaterialId"), "Produced", "GenerateDataKey*", when, False)
        elif name == "Decrypt":
            count(extra.get("keyMaterialId"), "Decryptions", "Decrypt", when, True)
        elif name == "ReEncrypt":
            arns = _resource_arns(record)
            if arns[:1] == [key.arn]:
                count(extra.get("sourceKeyMaterialId"), "Decryptions", "ReEncrypt", when, True)
            if _names_as_destination(record, key.arn) or arns == [key.arn]:
                count(extra.get("destinationKeyMaterialId"), "Produced", "ReEncrypt", when, False)

    since = now - timedelta(days=days)
    counted_since = tracking_start(region, key)  # retention pruned what was before
    materials = []
    for material_id, entry in lineage.items():
        counted = use[material_id]
        item: dict[str, Any] = {
            "KeyMaterialId": material_id,
            "Created": entry["Created"],
            "RotationType": entry["RotationType"],
            "RotationDate": entry["RotationDate"],
            "KeyMaterialState": key.material_state(material_id).value,
        }
        imported = key.imports.get(material_id)
        if imported is not None:
            item["ImportState"] = "IMPORTED" if imported.imported else "PENDING_IMPORT"
        item["Destroyed"] = entry["Destroyed"]
        item["Produced"] = counted["Produced"]
        item["Decryptions"] = counted["Decryptions"]
        if group is not None:
            item[group[0]] = counted[group[0]]
        first, last = min(counted["times"], default=None), max(counted["times"], default=None)
        item["FirstUsed"] = None if first is None else _stored_time(store, first[1])
        item["LastUsed"] = None if last is None else _stored_time(store, last[1])
        if imported is not None:
            item["DecryptedInLastDays"] = {
                "days": days, "any": any(  # (the second before the look-back: its instant)
                    when >= since or (when > since - _SECOND and _stored_time(store, at) >= since)
                    for when, at in counted["decrypted"]),
                # False: the look-back starts before tracking did, and tracking started after
                # the key was created (retention pruned, or the key is older than the audit),
                # so "any": false cannot say that nothing was decrypted
                "Complete": counted_since <= max(since, key.creation_date),
            }
        materials.append(item)
    return {"KeyId": key.id, "KeyArn": key.arn, "TrackingStartDate": counted_since,
            "Materials": materials}


# -- GetKeyLastUsage ----------------------------------------------------------------------------

#: the operations GetKeyLastUsage reports (the model's KeyLastUsageTrackingOperation)
TRACKED_OPERATIONS = frozenset({
    "Decrypt", "DeriveSharedSecret", "Encrypt", "GenerateDataKey", "GenerateDataKeyPair",
    "GenerateDataKeyPairWithoutPlaintext", "GenerateDataKeyWithoutPlaintext", "GenerateMac",
    "ReEncrypt", "Sign", "Verify", "VerifyMac", "Encapsulate", "Decapsulate",
})


def tracking_start(region: Region, key: KmsKey) -> datetime:
    """The key's creation when its CreateKey record is kept (every use since is in the
    store: the first key of a Region too, whose record is the store's first, written after
    the key was made); else the later of its creation and the region's oldest audit record
    (a key older than the audit, or retention pruned its first records), or now when the
    store holds no record at all (retention pruned every one: nothing before now is known)."""
    store = _audit(region)
    first = store.first_of_key(key.account, key.id)
    if first is not None:
        record = orjson.loads(first)
        if record.get("eventName") == "CreateKey" and "errorCode" not in record:
            return key.creation_date
    oldest = store.after(0, 1)
    since = datetime.fromtimestamp(oldest[0][1], UTC) if oldest else datetime.now(UTC)
    return max(key.creation_date, since)


def key_last_usage(region: Region, key: KmsKey) -> dict[str, Any]:
    """GetKeyLastUsage's answer for ``key`` (B.4 semantics)."""
    store = _audit(region)
    found: tuple[int, dict[str, Any]] | None = None
    for position, record in _records(store, key):
        if _succeeded(record) and record.get("eventName") in TRACKED_OPERATIONS:
            found = (position, record)
            break
    usage: dict[str, Any] = {}
    if found is not None:
        position, record = found
        usage = {"Operation": record["eventName"], "Timestamp": _stored_time(store, position),
                 "CloudTrailEventId": record.get("eventID")}
        if record.get("requestID"):
            usage["KmsRequestId"] = record["requestID"]
    return {
        "KeyId": key.id,
        "KeyLastUsage": usage,
        "TrackingStartDate": tracking_start(region, key),
        "KeyCreationDate": key.creation_date,
    }


# -- the service-level entry points -------------------------------------------------------------


class Forensics:
    """The forensic reads of a :class:`~application.service.KeyManagementService`, as the
    ledger API and the CLI ask them: by region name and key id, optionally confined to one
    account (no one reads another account's ledger). A server records the identities events
    in its default region, and a store may have been served with another default region, or
    with several over time: the identities at T are those of the region that recorded them
    last by T, looked for in ``default_region`` and every region the store holds."""

    def __init__(self, service, default_region: str) -> None:
        self.service = service
        self.default_region = default_region

    @property
    def identities_regions(self) -> list[str]:
        """The regions that may hold identities events: the default first, then every region
        open or with a ledger in the store (read when asked: a server creates regions as it
        runs)."""
        others = {region.name for region in self.service.regions} | set(self.service.known_regions())
        return list(dict.fromkeys([self.default_region, *sorted(others)]))

    def _region(self, region_name: str, key_id: str) -> Region:
        if not KEY_ID_PATTERN.fullmatch(key_id) or not self._known(region_name):
            raise errors.NotFoundException(f"Key '{key_id[:64]}' does not exist in {region_name}")
        return self.service.region(region_name)

    def _known(self, region_name: str) -> bool:
        return self.service.has_region(region_name) or region_name in self.service.known_regions()

    def key_state(self, region_name: str, key_id: str, at: datetime,
                  account: str | None = None) -> dict[str, Any]:
        return key_state_at(self._region(region_name, key_id), key_id, at, account)

    def identities(self, at: datetime) -> dict[str, Principal]:
        newest: list[Any] = []
        for name in self.identities_regions:
            if not self._known(name):
                continue
            recorded = identity_events(self.service.region(name).ledger, at)
            if recorded and (not newest or recorded[-1].timestamp > newest[-1].timestamp):
                newest = recorded
        return identities_at(newest)

    def who_can(self, region_name: str, key_id: str, action: str, at: datetime,
                account: str | None = None) -> dict[str, Any]:
        action = key_action(action)
        region = self._region(region_name, key_id)
        key, version = key_then(region, key_id, at, account)
        answer: dict[str, Any] = {"KeyId": key.id, "Action": action, "At": at, "Version": version,
                                  "KeyState": key.key_state.value}
        refused = state_refusal(key, action)
        if refused is not None:  # nobody could: the key's state refused every such request
            return {**answer, "RefusedByKeyState": refused, "Principals": []}
        aliases = [a["AliasName"] for a in aliases_at(region.ledger, key, at)]
        return {**answer, "Principals": access_review(key, aliases, self.identities(at), action, at)}

    def materials(self, region_name: str, key_id: str, days: int = 30,
                  account: str | None = None, now: datetime | None = None) -> dict[str, Any]:
        if not 1 <= days <= 3650:
            raise errors.ValidationException("days must be between 1 and 3650.")
        region = self._region(region_name, key_id)
        return key_materials(region, key_id, now or datetime.now(UTC), days, account)
