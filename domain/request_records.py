"""The audit records of a management request, noted in the ledger with the change it makes.

A management request's events are committed before its audit record is stored (the record
names them). A process killed between the two (kill -9, a power cut) would leave the change
without a record. So each save a request makes carries a note of the request's record in the
same ledger transaction (``RequestRecordNoted``, an aggregate of its own per request and save:
no two requests write the same one). The record noted is the one the request will store, with
the same eventID and eventTime, less what only its answer tells (responseElements).

Nothing strikes a note: the region's maintenance reads the notes some time after they were
written and stores each record the audit store lacks (the audit store's ``append_missing``
leaves out a record whose eventTime and eventID are stored already). So a request whose
process died after its commit gets its record, and any other request keeps the one it stored.
"""

from __future__ import annotations

from typing import Any

from eventsourcing.domain import event

from domain.base import StrAggregate

#: the prefix of the notes' aggregate ids: ``keyledger:request-record:<request id>/<n>``
REQUEST_RECORD_PREFIX = "keyledger:request-record:"


def request_record_id(request_id: str, saves: int) -> str:
    """The note of a request's ``saves``-th save (a request may save more than once)."""
    return f"{REQUEST_RECORD_PREFIX}{request_id}/{saves}"


class RequestRecord(StrAggregate):
    @event("RequestRecordNoted")
    def __init__(self, *, id: str, rows: list[dict[str, Any]]) -> None:
        #: the records as they will be stored (one per account that logs the request):
        #: {"record": canonical JSON, and the columns it is found by: "event_time" (epoch
        #: seconds), "account", "key_id", "principal", "event_name", "request_id", "event_id"}
        self.rows = rows
