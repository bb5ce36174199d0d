"""An eventsourcing aggregate base whose ids are strings.

KMS key ids are UUID strings for single-Region keys and ``mrk-<32 hex>`` for multi-Region
keys; alias aggregates are named. All of them share this base so one store (with
``ORIGINATOR_ID_TYPE=text``) holds every aggregate of a region.
"""

from __future__ import annotations

from dataclasses import dataclass
from datetime import datetime
from typing import Any

from eventsourcing.domain import (
    BaseAggregate,
    CanInitAggregate,
    CanMutateAggregate,
    CanSnapshotAggregate,
    MetaDomainEvent,
)


@dataclass(frozen=True)
class StrDomainEvent(metaclass=MetaDomainEvent):
    originator_id: str
    originator_version: int
    timestamp: datetime


@dataclass(frozen=True)
class StrSnapshot(StrDomainEvent, CanSnapshotAggregate[str]):
    topic: str
    state: dict[str, Any]


class StrAggregate(BaseAggregate[str]):
    @dataclass(frozen=True)
    class Event(StrDomainEvent, CanMutateAggregate[str]):
        pass

    @dataclass(frozen=True)
    class Created(Event, CanInitAggregate[str]):
        originator_topic: str

    Snapshot = StrSnapshot
