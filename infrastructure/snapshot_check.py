"""Snapshots against the chained events: the part of ``keyledger verify`` that checks every
stored snapshot of a region once the walk of its chain found the region's events intact.

Snapshots (``stored_snapshots`` in ``ledger.db`` on SQLite, ``keyledger_snapshots`` in the
region's schema on PostgreSQL) are not chained: they are an optimisation the ledger rebuilds
from, and a new one is written for a key every 50 events. Yet a server loads a key from its
newest snapshot and only the events after it, and so does ``history --at``: a forged snapshot
would decide the key's state (a disabled key made usable) while every chained event stays as
it was. So each snapshot is checked against the events it stands for:

* its aggregate's events are read once, in version order (one pass per aggregate with
  snapshots, up to its newest snapshot: O(events), not a replay per snapshot), and folded as
  the ledger's repository folds them (``event.mutate(aggregate)``);
* at each snapshot's version, the aggregate a server would load from the stored snapshot (the
  ledger application's own mapper decodes it, its snapshot class's ``mutate`` builds it) is
  compared with the aggregate a snapshot the ledger takes of the replayed one would load
  (``Snapshot.take``, stored and decoded by the same mapper, ``mutate``): attribute by
  attribute (by name, so the order attributes were written in does not matter), each as JSON
  of the application's transcoder in its own order (the order within a key's mappings is what
  the server lists them in; the transcoder's type tags, and JSON's own distinctions — true
  and 1, 1 and 1.0 — kept). What a snapshot cannot change (its timestamp) is not compared;
  neither is the stored byte string.

A snapshot whose state differs, that does not decode, or whose topic is not the snapshot class
of the aggregate's class (nor its state's the aggregate's class) is ``edited``; one at a version
the aggregate's stored events never reached, or of an aggregate with no events, is
``inserted``. Topics are compared before anything is decoded: nothing a snapshot row names is
imported. The snapshot table's structure (a plain table, the columns read here, no trigger) is
checked with the chained tables' before the walk (``_RegionDB.structure_problem``). The rows
are read on the verifier's own connection, in its read transaction: the
events replayed are those the walk just checked against the chain (and, past the chain's tip,
the unanchored ones it counted).
"""

from __future__ import annotations

import json
from collections.abc import Callable, Iterator
from dataclasses import dataclass
from typing import Any

from eventsourcing.persistence import Mapper, StoredEvent
from eventsourcing.utils import get_topic

from infrastructure.ledger_chain import _RegionDB

_PAGE = 2_000  # events read per query
_DETAIL = 200  # characters of an error message quoted in a problem's detail

#: (kind, where, detail): ledger_chain.Problem's fields
Finding = tuple[str, str, str]


@dataclass
class SnapshotCheck:
    checked: int  # snapshots found to load what their aggregate's events make
    problem: Finding | None  # the first snapshot that does not (None: every one does)


class _Found(Exception):
    def __init__(self, kind: str, where: str, detail: str) -> None:
        super().__init__(kind)
        self.finding = (kind, where, detail)


def check_snapshots(db: _RegionDB) -> SnapshotCheck:
    """Check every stored snapshot of ``db``'s region (call inside ``db.snapshot()``, after the
    walk found no problem). Database errors propagate (a store it cannot read: not a verdict);
    anything a snapshot row holds is a finding, never an exception."""
    checker = _Checker(db)
    try:
        checker.run()
    except _Found as found:
        return SnapshotCheck(checker.checked, found.finding)
    finally:
        checker.close()
    return SnapshotCheck(checker.checked, None)


def _ledger_mapper() -> tuple[Mapper, Any, Any]:
    """The ledger application's mapper, its fallback snapshot class and the application (to
    close), built as a Region builds its ledger (``KeyLedger`` with the transcodings the
    composition root registers, its environment on top of the process's), on an in-memory
    store: nothing is opened."""
    from application.ledger import KeyLedger  # (the application's decoder, not a second one)
    from infrastructure.transcoding import TRANSCODINGS

    in_memory = "eventsourcing.popo"
    ledger = KeyLedger({"PERSISTENCE_MODULE": in_memory,
                        "KEYLEDGER_PERSISTENCE_MODULE": in_memory}, TRANSCODINGS)
    return ledger.mapper, type(ledger).snapshot_class, ledger


def _short(value: Any) -> str:
    text = repr(value)
    return text if len(text) <= 80 else text[:77] + "..."


def _where(aggregate_id: Any, version: Any) -> str:
    if type(aggregate_id) is str and type(version) is int:
        return f"snapshot of aggregate {aggregate_id} at version {version}"
    return f"snapshot of aggregate {_short(aggregate_id)} at version {_short(version)}"


def _error(error: BaseException) -> str:
    error = error.__cause__ or error  # (the mapper's error wraps the decoder's)
    text = f"{type(error).__name__}: {error}"
    return text if len(text) <= _DETAIL else text[:_DETAIL - 3] + "..."


class _Checker:
    def __init__(self, db: _RegionDB) -> None:
        self.db = db
        self.checked = 0
        self._mapper, self._snapshot_class, self._ledger = _ledger_mapper()

    def close(self) -> None:
        self._ledger.close()

    def _read(self, template: str, args: tuple = ()) -> list[tuple]:
        """Rows of the region's ledger (``{snapshots}``, and ``{events}`` as the walk names it)
        on the verifier's connection, in its read transaction."""
        db = self.db
        return db._rows(db.sql(template), args, ledger=True)

    def run(self) -> None:
        if not self.db.has("snapshots"):  # (what it is: the walk's structure check)
            return
        listed = self._read("SELECT originator_id, originator_version FROM {snapshots} "
                            "ORDER BY originator_id, originator_version")
        versions: dict[str, list[int]] = {}
        for aggregate_id, version in listed:
            if type(aggregate_id) is not str or type(version) is not int:
                raise _Found("edited", _where(aggregate_id, version),
                             "its aggregate id or version does not have the type the ledger "
                             "writes (SQLite keeps whatever type is written)")
            versions.setdefault(aggregate_id, []).append(version)
        for aggregate_id, wanted in versions.items():
            self._check_aggregate(aggregate_id, sorted(wanted))
        if self.checked != len(listed):
            raise _Found("edited", "the ledger's snapshots",
                         f"{len(listed)} snapshots are stored, a read by aggregate met "
                         f"{self.checked}: the table does not answer queries by aggregate with "
                         "what it holds")

    # one aggregate -------------------------------------------------------------------------

    def _snapshot_rows(self, aggregate_id: str) -> list[tuple]:
        rows = self._read("SELECT originator_id, originator_version, topic, state FROM "
                          "{snapshots} WHERE originator_id = ? ORDER BY originator_version",
                          (aggregate_id,))
        # (a collation could make the query match other ids: those are checked as their own)
        return [row for row in rows if type(row[0]) is str and row[0] == aggregate_id
                and type(row[1]) is int]

    def _events(self, aggregate_id: str, upto: int) -> Iterator[tuple]:
        """(version, topic, state) of the aggregate's stored events up to ``upto``, in order."""
        if not self.db.has("events"):  # (snapshots without an events table: of no events)
            return
        after = 0
        while True:
            page = self._read("SELECT originator_version, topic, state FROM {events} WHERE "
                              "originator_id = ? AND originator_version > ? AND "
                              "originator_version <= ? ORDER BY originator_version LIMIT ?",
                              (aggregate_id, after, upto, _PAGE))
            yield from page
            if len(page) < _PAGE:
                return
            after = page[-1][0]

    def _check_aggregate(self, aggregate_id: str, wanted: list[int]) -> None:
        rows = self._snapshot_rows(aggregate_id)
        if not rows:
            return  # listed, not met by the read by aggregate: the count in run() says so
        replay = _Replay(self._mapper, aggregate_id, self._events(aggregate_id, max(wanted)))
        for _, version, topic, state in rows:
            where = _where(aggregate_id, version)
            if version < 1:
                raise _Found("inserted", where, "an aggregate's versions start at 1: no event "
                                                "of its made this one")
            try:
                reached = replay.advance(version)
            except Exception as error:  # a stored event the ledger's mapper cannot replay
                raise _Found("edited", where,
                             f"it cannot be what its events make: the aggregate's event at "
                             f"version {replay.version + 1} does not replay ({_error(error)})"
                             ) from None
            if not reached:
                raise _Found("inserted", where,
                             "the aggregate has no stored event" if replay.version == 0 else
                             f"the aggregate's stored events end at version {replay.version}: "
                             "no event made this version")
            self._compare(where, replay.aggregate, topic, state)
            self.checked += 1

    def _compare(self, where: str, replayed: Any, topic: Any, state: Any) -> None:
        mapper = self._mapper
        if isinstance(state, bytearray | memoryview):
            state = bytes(state)
        if type(topic) is not str or type(state) is not bytes:
            raise _Found("edited", where, "its topic or state does not have the type the "
                                          "ledger writes")
        try:  # what a snapshot the ledger takes of the replayed aggregate would load
            snapshot_class = getattr(type(replayed), "Snapshot", self._snapshot_class)
            expected = mapper.to_stored_event(snapshot_class.take(replayed))
            reference = mapper.to_domain_event(expected).mutate(None)
        except Exception as error:
            raise _Found("edited", where, "no snapshot of the aggregate's events at this "
                                          f"version can be taken ({_error(error)})") from None
        aggregate_topic = get_topic(type(replayed))
        if topic != expected.topic:
            raise _Found("edited", where,
                         f"its topic {_short(topic)} is not {expected.topic!r}, the snapshot "
                         f"class of the aggregate's class {aggregate_topic!r}")
        stored = StoredEvent(originator_id=replayed.id, originator_version=replayed.version,
                             topic=topic, state=state)
        try:
            decoded = mapper.to_domain_event(stored)
        except Exception as error:
            raise _Found("edited", where, f"its state does not decode ({_error(error)})") from None
        named = getattr(decoded, "topic", None)
        if named != aggregate_topic or not isinstance(getattr(decoded, "state", None), dict):
            raise _Found("edited", where,
                         f"its state names class {_short(named)}, not the aggregate's class "
                         f"{aggregate_topic!r}, or holds no attributes")
        try:
            loaded = decoded.mutate(None)  # what a server loads from it
            differing = _differing(self._mapper, vars(loaded), vars(reference))
        except Exception as error:
            raise _Found("edited", where, f"it does not load ({_error(error)})") from None
        if differing:
            names = ", ".join(differing[:10]) + (", ..." if len(differing) > 10 else "")
            raise _Found("edited", where,
                         "the state a server loads from it differs from its aggregate's events "
                         f"replayed up to this version, in: {names}")


class _Replay:
    """An aggregate folded from its stored events, one at a time, as the repository does."""

    def __init__(self, mapper: Mapper, aggregate_id: str, events: Iterator[tuple]) -> None:
        self._mapper = mapper
        self._id = aggregate_id
        self._events = events
        self.aggregate: Any = None
        self.version = 0

    def advance(self, version: int) -> bool:
        """Fold the events up to ``version``; False if they end before it."""
        while self.version < version:
            row = next(self._events, None)
            if row is None:
                return False
            event_version, topic, state = row
            if event_version != self.version + 1:
                raise ValueError(f"the next stored event is at version {_short(event_version)}")
            if isinstance(state, bytearray | memoryview):
                state = bytes(state)
            event = self._mapper.to_domain_event(StoredEvent(
                originator_id=self._id, originator_version=event_version, topic=topic,
                state=state))
            self.aggregate = event.mutate(self.aggregate)
            self.version = event_version
        return self.version == version


def _differing(mapper: Mapper, loaded: dict[str, Any], expected: dict[str, Any]) -> list[str]:
    """The attributes whose values differ, each compared as JSON of the mapper's transcoder
    (an attribute only one side has differs)."""
    encode: Callable[[Any], bytes] = mapper.transcoder.encode
    ours, theirs = json.loads(encode(loaded)), json.loads(encode(expected))
    return sorted(name for name in ours.keys() | theirs.keys()
                  if name not in ours or name not in theirs
                  or _canonical(ours[name]) != _canonical(theirs[name]))


def _canonical(value: Any) -> str:
    """JSON text of a decoded JSON value (true, 1 and 1.0 stay apart), in its own order: the
    order of a key's mappings is what the server lists them in (its material versions, oldest
    first), and the same events always build them in the same order. (The attributes
    themselves are compared by name: the order they were set in means nothing.)"""
    return json.dumps(value, ensure_ascii=False)
