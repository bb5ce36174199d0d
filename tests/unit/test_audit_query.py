"""Reading the audit: times, paging tokens, limits and CloudTrail's file layout."""

from __future__ import annotations

import gzip
import json

import pytest

from application.audit_query import (
    check_limit,
    cloudtrail_files,
    page_token,
    parse_time,
    position_of,
)
from domain import errors


@pytest.mark.parametrize(("text", "epoch"), [
    ("1765012440", 1765012440.0),
    ("1765012440.5", 1765012440.5),
    ("2025-12-06T09:14:00Z", 1765012440.0),
    ("2025-12-06T10:14:00+01:00", 1765012440.0),
    ("2025-12-06T09:14:00", 1765012440.0),  # no zone: UTC
    ("2025-12-06", 1764979200.0),
])
def test_times_are_iso_8601_or_epoch_seconds(text, epoch):
    assert parse_time(text, "start") == epoch


def test_a_time_that_is_neither_is_refused():
    with pytest.raises(errors.ValidationException) as refused:
        parse_time("last tuesday", "start")
    assert refused.value.message == "start must be ISO 8601 or epoch seconds, not 'last tuesday'."
    assert parse_time(None, "start") is None and parse_time("", "end") is None


def test_paging_tokens_round_trip_and_forgeries_are_refused():
    assert position_of(page_token(12345)) == 12345
    assert position_of(None) is None
    for forged in ("12345", "a2xhOg==", "not base64!"):
        with pytest.raises(errors.InvalidMarkerException):
            position_of(forged)


def test_limit_is_one_to_a_thousand():
    assert (check_limit(None), check_limit(1), check_limit(1000)) == (50, 1, 1000)
    for bad in (0, 1001):
        with pytest.raises(errors.ValidationException):
            check_limit(bad)


def _record(time: str, region: str = "us-east-1", account: str = "111122223333") -> dict:
    return {"eventTime": time, "awsRegion": region, "recipientAccountId": account,
            "userIdentity": {"accountId": account}, "eventName": "Encrypt"}


def test_export_uses_cloudtrails_layout_one_file_per_account_region_and_five_minutes():
    records = [_record("2026-12-06T09:14:59Z"), _record("2026-12-06T09:10:00Z"),
               _record("2026-12-06T09:15:00Z"), _record("2026-12-06T09:11:00Z", "eu-west-1")]
    files = cloudtrail_files(records, "abc123")
    assert sorted(files) == [
        "AWSLogs/111122223333/CloudTrail/eu-west-1/2026/12/06/"
        "111122223333_CloudTrail_eu-west-1_20261206T0910Z_abc123.json.gz",
        "AWSLogs/111122223333/CloudTrail/us-east-1/2026/12/06/"
        "111122223333_CloudTrail_us-east-1_20261206T0910Z_abc123.json.gz",
        "AWSLogs/111122223333/CloudTrail/us-east-1/2026/12/06/"
        "111122223333_CloudTrail_us-east-1_20261206T0915Z_abc123.json.gz",
    ]
    first = json.loads(gzip.decompress(files[sorted(files)[1]]))
    assert [r["eventTime"] for r in first["Records"]] == ["2026-12-06T09:10:00Z",
                                                          "2026-12-06T09:14:59Z"]
