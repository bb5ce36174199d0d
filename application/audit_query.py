"""Reading the audit: filters, time bounds, newest first, opaque paging tokens, and the
CloudTrail file layout for export."""

from __future__ import annotations

import base64
import binascii
import gzip
import hashlib
import math
import re
from collections.abc import Iterable, Iterator
from dataclasses import dataclass
from datetime import UTC, datetime, timedelta
from decimal import Decimal
from typing import Any, NamedTuple

import orjson

from domain import errors
from domain.values import REGION_PATTERN

MAX_LIMIT = 1000
DEFAULT_LIMIT = 50
MAX_POSITION = 2**63 - 1  # a store position is a signed 64-bit integer (SQLite, BIGSERIAL)
_TOKEN = re.compile(r"kla:([0-9]{1,19})")
_TRUE, _FALSE = ("true", "t", "yes", "y", "on", "1"), ("false", "f", "no", "n", "off", "0")


class WholeUnit(float):
    """A time given to a whole unit, without a fractional part: to the second (as eventTime
    shows records), minute, hour or day (a date). As an end bound it takes in all of that unit
    (end_bound: ``< T + unit``)."""

    __slots__ = ("unit",)

    def __new__(cls, seconds: float, unit: int) -> WholeUnit:
        value = super().__new__(cls, seconds)
        value.unit = unit
        return value


_EPOCH = re.compile(r"[0-9]{1,12}(?:\.[0-9]{1,9})?")
#: a decimal sign with no digit after it (ISO 8601 wants one; Python 3.11 reads "56.Z")
_EMPTY_FRACTION = re.compile(r"[.,](?![0-9])")


def parse_instant(text: str, name: str = "at") -> datetime:
    """An instant given as ISO 8601 (a time without a zone is UTC) or epoch seconds (with up to
    nine decimals, read exactly). ValidationException otherwise, naming the parameter ``name``
    (one wording for every time a read takes: at, start, end, --since, --until)."""
    value = text.strip()
    try:  # (an instant past year 9999 or before year 1, in UTC, is no time either)
        if _EPOCH.fullmatch(value):
            seconds = Decimal(value)
            whole = int(seconds)
            micros = int((seconds - whole) * 1_000_000)
            return datetime.fromtimestamp(whole, UTC) + timedelta(microseconds=micros)
        if _EMPTY_FRACTION.search(value):
            raise ValueError(value)
        when = datetime.fromisoformat(value)
        return when.replace(tzinfo=UTC) if when.tzinfo is None else when.astimezone(UTC)
    except (ValueError, OverflowError, OSError):
        raise errors.ValidationException(
            f"{name} must be ISO 8601 (2024-05-01T09:14:00Z) or epoch seconds, not {text[:64]!r}."
        ) from None


def parse_time(value: str | None, name: str) -> float | None:
    """Epoch seconds of a time given as parse_instant reads it (the forensic reads' ``at``
    too); a WholeUnit when it has no fractional part."""
    if value is None or value == "":
        return None
    seconds = parse_instant(value, name).timestamp()
    unit = whole_unit(value)
    return WholeUnit(seconds, unit) if unit else seconds


_ZONE = re.compile(r"(?:[Zz]|[+-][0-9]{2}(?::?[0-9]{2})?)$")
_UNIT_OF_DIGITS = {2: 3600, 4: 60, 6: 1}  # a time of day as HH, HHMM or HHMMSS


def whole_unit(value: str) -> int:
    """The seconds in the unit a time is given to: a date 86,400, a time of day to the hour
    3,600, to the minute 60, to the second (or epoch seconds without decimals) 1; 0 for a time
    with a fractional part, which is exact. (For a text parse_instant reads.)"""
    value = value.strip()
    if "." in value or "," in value:
        return 0
    if _EPOCH.fullmatch(value):
        return 1
    date_and_time = re.split(r"[Tt ]", value, maxsplit=1)
    if len(date_and_time) == 1:
        return 86_400
    digits = _ZONE.sub("", date_and_time[1]).replace(":", "")
    return _UNIT_OF_DIGITS.get(len(digits), 1)


def end_bound(end: float | None) -> float | None:
    """The inclusive bound the store compares event_time with: a WholeUnit end takes in every
    record of its unit (``event_time < end + unit``: the largest float below it); an end with
    a fractional part is exact."""
    if isinstance(end, WholeUnit):
        return math.nextafter(float(end) + end.unit, -math.inf)
    return end


class KeyReference(NamedTuple):
    """A key named by a key id (``region`` and ``account`` None) or by a key ARN."""

    key_id: str
    region: str | None = None
    account: str | None = None

    def region_read(self, region: str | None, default: str) -> str:
        """The Region to read: a key ARN's own, which a Region also given must match; else
        ``region``, or ``default`` when none is given."""
        if self.region is None:
            return region or default
        if region and region != self.region:
            raise errors.ValidationException(
                f"The key ARN names Region {self.region[:64]!r}, but region is {region[:64]!r}.")
        return self.region


def key_reference(key: str, taker: str = "The key filter", reads: str = "") -> KeyReference:
    """The key a key id or key ARN names (the ARN's Region and account as it gives them).
    An alias (name or ARN) is refused: an alias can point at another key at another time, so
    resolving it now would name the wrong key for the past. ``taker`` names what takes the
    reference in the messages; ``reads`` (a route, a command) says the reason too."""
    parts = key.split(":", 5)
    if key.startswith("alias/") or (len(parts) == 6 and parts[5].startswith("alias/")):
        because = (f" (an alias can point at another key at another time, and {reads} reads "
                   f"the past)") if reads else ""
        raise errors.ValidationException(
            f"{taker} takes a key id or key ARN, not an alias: {key[:300]!r}{because}.")
    if key.startswith("arn:"):
        if (len(parts) != 6 or parts[1] != "aws" or parts[2] != "kms"
                or not REGION_PATTERN.match(parts[3])
                or not (len(parts[4]) == 12 and parts[4].isascii() and parts[4].isdigit())
                or not parts[5].startswith("key/") or len(parts[5]) == 4 or "/" in parts[5][4:]):
            raise errors.ValidationException(
                f"{taker} takes a key id or key ARN "
                f"(arn:aws:kms:REGION:ACCOUNT:key/KEY_ID), not {key[:300]!r}.")
        return KeyReference(parts[5][4:], parts[3], parts[4])
    return KeyReference(key)


def key_filter(key: str | None) -> str | None:
    """The key id a key filter names: a key id as it is, a key ARN's key id (key_reference).
    Records are stored under the key id."""
    if key is None or key == "":
        return None
    return key_reference(key).key_id


_ROLE_ARN = re.compile(r"arn:aws:iam::([0-9]{12}):role/(?:[^/]+/)*([^/]+)")


def principal_filter(principal: str | None) -> tuple[str | None, str | None]:
    """``(principal, principal_prefix)`` of a caller filter. A role calls only through its
    sessions, recorded as ``arn:aws:sts::ACCOUNT:assumed-role/NAME/SESSION`` (no path): a role
    ARN finds the records of all its sessions; any other ARN, its own records."""
    if not principal:
        return None, None
    role = _ROLE_ARN.fullmatch(principal)
    if role is None:
        return principal, None
    return None, f"arn:aws:sts::{role[1]}:assumed-role/{role[2]}/"


def page_token(position: int) -> str:
    return base64.urlsafe_b64encode(f"kla:{position}".encode()).decode()


def position_of(token: str | None) -> int | None:
    if not token:
        return None
    try:
        decoded = base64.urlsafe_b64decode(token.encode("ascii")).decode()
    except (binascii.Error, UnicodeError, ValueError):
        decoded = ""
    found = _TOKEN.fullmatch(decoded)
    # (only a token as page_token spells it: base64 decoding skips what is not base64)
    if found is None or int(found[1]) > MAX_POSITION or page_token(int(found[1])) != token:
        raise errors.InvalidMarkerException("Invalid NextToken")
    return int(found[1])


def check_limit(limit: int | str | None) -> int:
    """The page size: 1 to MAX_LIMIT (default DEFAULT_LIMIT); as given in a query string too."""
    if limit is None or limit == "":
        return DEFAULT_LIMIT
    if isinstance(limit, str):
        limit = int(limit) if limit.isascii() and limit.isdigit() and len(limit) <= 4 else 0
    if not 1 <= limit <= MAX_LIMIT:
        raise errors.ValidationException(f"limit must be between 1 and {MAX_LIMIT}.")
    return limit


def parse_flag(value: str | None, name: str) -> bool:
    """A true/false query parameter (true/false, yes/no, on/off, 1/0; absent or empty: false)."""
    if value is None or value.lower() in _FALSE or value == "":
        return False
    if value.lower() in _TRUE:
        return True
    raise errors.ValidationException(f"{name} must be true or false, not {value[:64]!r}.")


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
    value class, infrastructure.audit_store.AuditQuery). ``wanted.key_id`` may be a key ARN
    (key_filter), ``wanted.principal`` a role ARN (its sessions: principal_filter); a WholeUnit
    ``wanted.end`` takes in its whole unit (end_bound)."""
    principal, principal_prefix = principal_filter(wanted.principal)
    rows = store.query(query_type(
        account=wanted.account, key_id=key_filter(wanted.key_id), principal=principal,
        principal_prefix=principal_prefix, event_name=wanted.event_name, start=wanted.start, end=end_bound(wanted.end),
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


def cloudtrail_files(records: Iterable[dict[str, Any]]) -> dict[str, list[dict[str, Any]]]:
    """CloudTrail's delivery layout: the records of one gzip file of ``{"Records": [...]}`` per
    account, Region and five-minute window, at
    ``AWSLogs/ACCOUNT/CloudTrail/REGION/YYYY/MM/DD/ACCOUNT_CloudTrail_REGION_YYYYMMDDTHHMMZ_ID.json.gz``
    (records oldest first within a file; cloudtrail_file makes its bytes). ``ID`` names the
    window (the same in every export: an export run again writes the same files). ``records``
    come newest first, as the audit store reads them (all_records): eventTime shows only the
    second, so records of one second keep the order they were stored in, oldest first."""
    groups: dict[tuple[str, str, str], list[dict[str, Any]]] = {}
    for record in records:
        moment = datetime.strptime(record["eventTime"], "%Y-%m-%dT%H:%M:%SZ")
        window = moment.replace(minute=moment.minute - moment.minute % 5, second=0)
        account = record.get("recipientAccountId") or record["userIdentity"].get("accountId", "")
        groups.setdefault((account, record["awsRegion"], window.strftime("%Y%m%dT%H%MZ")),
                          []).append(record)
    files = {}
    for (account, region, stamp), group in sorted(groups.items()):
        group.reverse()  # oldest first: the sort below is stable within a second
        group.sort(key=lambda r: r["eventTime"])
        file_id = hashlib.sha256(f"{account}/{region}/{stamp}".encode()).hexdigest()[:16]
        path = (f"AWSLogs/{account}/CloudTrail/{region}/{stamp[:4]}/{stamp[4:6]}/{stamp[6:8]}/"
                f"{account}_CloudTrail_{region}_{stamp}_{file_id}.json.gz")
        files[path] = group
    return files


def cloudtrail_file(records: list[dict[str, Any]],
                    already: bytes | None = None) -> tuple[bytes, int]:
    """A file's bytes and how many of ``records`` they add: ``records`` after those of the file
    ``already`` exported for the same window, each eventID once (an export run again, or over
    an overlapping time range, adds what is new and repeats nothing)."""
    kept = orjson.loads(gzip.decompress(already))["Records"] if already is not None else []
    seen = {record["eventID"] for record in kept}
    new = [record for record in records if record["eventID"] not in seen]
    merged = kept + new
    merged.sort(key=lambda r: r["eventTime"])  # stable: a second's records keep their order
    return gzip.compress(orjson.dumps({"Records": merged}), mtime=0), len(new)
