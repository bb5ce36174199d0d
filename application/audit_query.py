"""Reading the audit: filters, time bounds, newest first, opaque paging tokens, and the
CloudTrail file layout for export."""

from __future__ import annotations

import base64
import binascii
import gzip
from collections.abc import Iterable, Iterator
from dataclasses import dataclass
from datetime import UTC, datetime
from typing import Any

import orjson

from domain import errors

MAX_LIMIT = 1000
DEFAULT_LIMIT = 50


def parse_time(value: str | None, name: str) -> float | None:
    """ISO 8601 (``2026-12-06T09:14:00Z``, a date, an offset) or epoch seconds."""
    if value is None or value == "":
        return None
    try:
        return float(value)
    except ValueError:
        pass
    try:
        moment = datetime.fromisoformat(value.replace("Z", "+00:00"))
    except ValueError:
        raise errors.ValidationException(
            f"{name} must be ISO 8601 or epoch seconds, not {value[:64]!r}."
        ) from None
    if moment.tzinfo is None:
        moment = moment.replace(tzinfo=UTC)
    return moment.timestamp()


def page_token(position: int) -> str:
    return base64.urlsafe_b64encode(f"kla:{position}".encode()).decode()


def position_of(token: str | None) -> int | None:
    if not token:
        return None
    try:
        decoded = base64.urlsafe_b64decode(token.encode("ascii")).decode()
    except (binascii.Error, UnicodeError, ValueError):
        decoded = ""
    if not decoded.startswith("kla:") or not decoded[4:].isdigit():
        raise errors.InvalidMarkerException("Invalid NextToken")
    return int(decoded[4:])


def check_limit(limit: int | None) -> int:
    if limit is None:
        return DEFAULT_LIMIT
    if not 1 <= limit <= MAX_LIMIT:
        raise errors.ValidationException(f"limit must be between 1 and {MAX_LIMIT}.")
    return limit


@dataclass(frozen=True)
class AuditFilter:
    account: str | None = None
    key_id: str | None = None
    principal: str | None = None
    event_name: str | None = None
    start: float | None = None
    end: float | None = None
    errors_only: bool = False


def read_page(store, query_type, wanted: AuditFilter, limit: int,
              next_token: str | None) -> dict[str, Any]:
    """``{"Records": [...], "NextToken": …}``, newest first (``query_type``: the store's query
    value class, infrastructure.audit_store.AuditQuery)."""
    rows = store.query(query_type(
        account=wanted.account, key_id=wanted.key_id, principal=wanted.principal,
        event_name=wanted.event_name, start=wanted.start, end=wanted.end,
        errors_only=wanted.errors_only, before_position=position_of(next_token), limit=limit + 1,
    ))
    page = rows[:limit]
    result: dict[str, Any] = {"Records": [orjson.loads(record) for _, record in page]}
    if len(rows) > limit:
        result["NextToken"] = page_token(page[-1][0])
    return result


def all_records(store, query_type, wanted: AuditFilter, batch: int = MAX_LIMIT) -> Iterator[dict]:
    """Every matching record, newest first."""
    token = None
    while True:
        page = read_page(store, query_type, wanted, batch, token)
        yield from page["Records"]
        token = page.get("NextToken")
        if token is None:
            return


def cloudtrail_files(records: Iterable[dict[str, Any]], file_id: str) -> dict[str, bytes]:
    """CloudTrail's delivery layout: one gzip file of ``{"Records": [...]}`` per account,
    Region and five-minute window, at
    ``AWSLogs/ACCOUNT/CloudTrail/REGION/YYYY/MM/DD/ACCOUNT_CloudTrail_REGION_YYYYMMDDTHHMMZ_ID.json.gz``
    (records oldest first within a file)."""
    groups: dict[tuple[str, str, str], list[dict[str, Any]]] = {}
    for record in records:
        moment = datetime.strptime(record["eventTime"], "%Y-%m-%dT%H:%M:%SZ")
        window = moment.replace(minute=moment.minute - moment.minute % 5, second=0)
        account = record.get("recipientAccountId") or record["userIdentity"].get("accountId", "")
        groups.setdefault((account, record["awsRegion"], window.strftime("%Y%m%dT%H%MZ")),
                          []).append(record)
    files = {}
    for (account, region, stamp), group in sorted(groups.items()):
        group.sort(key=lambda r: r["eventTime"])
        path = (f"AWSLogs/{account}/CloudTrail/{region}/{stamp[:4]}/{stamp[4:6]}/{stamp[6:8]}/"
                f"{account}_CloudTrail_{region}_{stamp}_{file_id}.json.gz")
        files[path] = gzip.compress(orjson.dumps({"Records": group}), mtime=0)
    return files
