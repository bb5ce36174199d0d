"""The audit records of changes KMS makes on its own, noted in the ledger until they are stored.

A scheduled deletion, an automatic rotation or the expiry of imported material is saved in the
same ledger transaction as a note of its audit record (``ServiceRecordNoted``); the record is
stored in the audit log next, and the note struck (``ServiceRecordsStored``). A process that
dies in between leaves the note, and the next scheduler pass (of any process serving the
region) stores the record and strikes it: its eventID is fixed by the note, and the audit store
keeps one record per eventID of KMS's own records. So every such change has its record.
"""

from __future__ import annotations

from typing import Any

from eventsourcing.domain import event

from domain.base import StrAggregate

#: the aggregate id of a region's notes (one per region's ledger)
SERVICE_RECORDS_ID = "keyledger:service-records"


class ServiceRecords(StrAggregate):
    @event("ServiceRecordsStarted")
    def __init__(self, *, id: str) -> None:
        #: eventID -> the record as it will be stored: {"record": canonical JSON, and the
        #: columns it is found by: "event_time" (epoch seconds), "account", "key_id",
        #: "event_name"}
        self.pending: dict[str, dict[str, Any]] = {}

    @classmethod
    def start(cls) -> ServiceRecords:
        return cls(id=SERVICE_RECORDS_ID)

    def note(self, event_id: str, record: str, event_time: float, account: str, key_id: str,
             event_name: str) -> None:
        self._note(event_id=event_id, noted={"record": record, "event_time": event_time,
                                             "account": account, "key_id": key_id,
                                             "event_name": event_name})

    @event("ServiceRecordNoted")
    def _note(self, event_id: str, noted: dict[str, Any]) -> None:
        self.pending[event_id] = noted

    def stored(self, event_ids: list[str]) -> None:
        """The records are in the audit store: strike their notes."""
        struck = [event_id for event_id in event_ids if event_id in self.pending]
        if struck:
            self._stored(event_ids=struck)

    @event("ServiceRecordsStored")
    def _stored(self, event_ids: list[str]) -> None:
        for event_id in event_ids:
            self.pending.pop(event_id, None)
