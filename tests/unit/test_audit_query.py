"""Reading the audit: times, paging tokens, limits and CloudTrail's file layout."""

from __future__ import annotations

import base64
import gzip
import hashlib
import json
import math

import pytest

from application.audit import AuditQuery
from application.audit_query import (
    MAX_POSITION,
    AuditFilter,
    KeyReference,
    WholeUnit,
    check_limit,
    cloudtrail_file,
    cloudtrail_files,
    end_bound,
    key_filter,
    key_reference,
    page_token,
    parse_flag,
    parse_instant,
    parse_time,
    position_of,
    principal_filter,
    read_page,
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
    assert refused.value.message == (
        "start must be ISO 8601 (2024-05-01T09:14:00Z) or epoch seconds, not 'last tuesday'.")
    assert parse_time(None, "start") is None and parse_time("", "end") is None


def test_paging_tokens_round_trip_and_forgeries_are_refused():
    assert position_of(page_token(12345)) == 12345
    assert position_of(None) is None
    for forged in ("12345", "a2xhOg==", "not base64!", page_token(12345) + "!!!",
                   _token("kla:012345")):  # (only a token as the store spells one)
        with pytest.raises(errors.InvalidMarkerException):
            position_of(forged)


@pytest.mark.parametrize("text", ["nan", "NaN", "inf", "-inf", "Infinity", "1e400"])
def test_a_time_that_is_not_finite_is_refused(text):
    with pytest.raises(errors.ValidationException) as refused:
        parse_time(text, "start")
    assert refused.value.message == (
        f"start must be ISO 8601 (2024-05-01T09:14:00Z) or epoch seconds, not {text!r}.")


@pytest.mark.parametrize("text", ["1e5", "-5", "+5", "1.7965954e9", "1796595112000"])
def test_start_and_end_read_times_as_at_does(text):
    """One reading of a time for every query (parse_instant): an exponent, a sign or epoch
    milliseconds are refused for start and end as for at."""
    with pytest.raises(errors.ValidationException) as refused:
        parse_time(text, "start")
    assert refused.value.message == (
        f"start must be ISO 8601 (2024-05-01T09:14:00Z) or epoch seconds, not {text!r}.")
    with pytest.raises(errors.ValidationException):
        parse_instant(text)


@pytest.mark.parametrize("text", ["2026-12-07T21:45:56.Z", "2026-12-07T21:45:56.",
                                  "2026-12-07T21:45:56,+01:00", "2026-12-07T21:45:56.Z "])
def test_a_decimal_sign_without_a_digit_after_it_is_refused(text):
    """ISO 8601 wants a digit after the decimal sign: "56.Z" read as the second's start (an
    exact instant) would answer a reader who meant the whole second otherwise."""
    with pytest.raises(errors.ValidationException) as refused:
        parse_time(text, "end")
    assert refused.value.message == (
        f"end must be ISO 8601 (2024-05-01T09:14:00Z) or epoch seconds, not {text!r}.")
    assert parse_time("2026-12-07T21:45:56.5Z", "end") == 1796679956.5


@pytest.mark.parametrize(("text", "unit"), [
    ("1765012440", 1),
    ("2025-12-06T09:14:00Z", 1),
    ("2025-12-06T10:14:00+01:00", 1),
    ("2025-12-06 09:14:00", 1),
    ("2025-12-06T091400Z", 1),
    ("2025-12-06T09:14Z", 60),
    ("2025-12-06T10:14+01:00", 60),
    ("2025-12-06T09:14", 60),
    ("2025-12-06T09Z", 3600),
    ("2025-12-06T09-05", 3600),
    ("2025-12-06", 86_400),
    ("1765012440.5", 0),
    ("1765012440.0", 0),  # a fractional part given, even zero: exact
    ("2025-12-06T09:14:00.000000Z", 0),
    ("2025-12-06T09:14:00,5Z", 0),
])
def test_a_time_given_to_a_whole_unit_says_which(text, unit):
    parsed = parse_time(text, "end")
    assert (parsed.unit if isinstance(parsed, WholeUnit) else 0) == unit
    assert end_bound(parsed) == (parsed if not unit else math.nextafter(parsed + unit, -math.inf))


def _token(text: str) -> str:
    return base64.urlsafe_b64encode(text.encode()).decode()


def test_paging_tokens_beyond_a_stores_positions_are_refused_as_any_forgery():
    assert position_of(_token(f"kla:{MAX_POSITION}")) == MAX_POSITION
    for forged in (f"kla:{MAX_POSITION + 1}", "kla:99999999999999999999999", "kla:" + "9" * 5000,
                   "kla:\u00b2", "kla:\u0661\u0662", "kla:-1", "kla: 1", "kla:"):
        with pytest.raises(errors.InvalidMarkerException) as refused:
            position_of(_token(forged))
        assert refused.value.message == "Invalid NextToken"


def test_limit_is_one_to_a_thousand():
    assert (check_limit(None), check_limit(1), check_limit(1000)) == (50, 1, 1000)
    for bad in (0, 1001):
        with pytest.raises(errors.ValidationException):
            check_limit(bad)


def test_limit_as_given_in_a_query_string():
    assert (check_limit(""), check_limit("1"), check_limit("1000"), check_limit("0050")) == (
        50, 1, 1000, 50)
    for bad in ("abc", "0", "1001", "-1", "1.5", "1e3", "\u0661", "9" * 5000):
        with pytest.raises(errors.ValidationException) as refused:
            check_limit(bad)
        assert refused.value.message == "limit must be between 1 and 1000."


def test_flags_are_true_or_false():
    assert [parse_flag(v, "errors_only") for v in ("true", "True", "1", "yes", "on")] == [True] * 5
    assert [parse_flag(v, "errors_only") for v in (None, "", "false", "0", "no", "off")] == [
        False] * 6
    with pytest.raises(errors.ValidationException) as refused:
        parse_flag("maybe", "errors_only")
    assert refused.value.message == "errors_only must be true or false, not 'maybe'."


KEY = "7a647ecc-3f6b-4b8e-9a55-0c1d2e3f4a5b"


def test_the_key_filter_takes_a_key_id_or_a_key_arn():
    assert key_filter(KEY) == KEY
    assert key_filter(f"arn:aws:kms:us-east-1:111122223333:key/{KEY}") == KEY
    assert key_filter("arn:aws:kms:eu-west-1:111122223333:key/mrk-" + "a" * 32) == "mrk-" + "a" * 32
    assert key_filter(None) is None and key_filter("") is None


@pytest.mark.parametrize("alias", ["alias/app", "arn:aws:kms:us-east-1:111122223333:alias/app"])
def test_the_key_filter_refuses_an_alias(alias):
    with pytest.raises(errors.ValidationException) as refused:
        key_filter(alias)
    assert refused.value.message == (
        f"The key filter takes a key id or key ARN, not an alias: {alias!r}.")


@pytest.mark.parametrize("arn", ["arn:aws:kms:us-east-1:111122223333:key/",
                                 "arn:aws:kms:us-east-1:key/x", "arn:aws:s3:::bucket",
                                 "arn:aws:kms:us-east-1:111122223333:grant/x"])
def test_the_key_filter_refuses_another_arn(arn):
    with pytest.raises(errors.ValidationException) as refused:
        key_filter(arn)
    assert refused.value.message == (
        "The key filter takes a key id or key ARN (arn:aws:kms:REGION:ACCOUNT:key/KEY_ID), "
        f"not {arn!r}.")


def test_a_key_reference_keeps_a_key_arns_region_and_account():
    assert key_reference(KEY) == KeyReference(KEY, None, None)
    assert key_reference(f"arn:aws:kms:eu-west-1:444455556666:key/{KEY}") == KeyReference(
        KEY, "eu-west-1", "444455556666")
    # a key ARN names a Region and a 12-digit account, and a key id with no path after it
    for arn in (f"arn:aws:kms::111122223333:key/{KEY}", f"arn:aws:kms:eu-west-1::key/{KEY}",
                f"arn:aws:kms:::key/{KEY}", f"arn:aws:kms:eu-west-1:1111:key/{KEY}",
                f"arn:aws:kms:EU-WEST-1:111122223333:key/{KEY}",
                f"arn:aws:kms:eu-west-1:111122223333:key/{KEY}/extra"):
        with pytest.raises(errors.ValidationException) as refused:
            key_reference(arn)
        assert refused.value.message == (
            "The key filter takes a key id or key ARN (arn:aws:kms:REGION:ACCOUNT:key/KEY_ID), "
            f"not {arn!r}."), arn


def test_a_key_arns_region_is_the_one_read():
    arn = key_reference(f"arn:aws:kms:eu-west-1:111122223333:key/{KEY}")
    assert arn.region_read(None, "us-east-1") == "eu-west-1"
    assert arn.region_read("", "us-east-1") == "eu-west-1"
    assert arn.region_read("eu-west-1", "us-east-1") == "eu-west-1"
    with pytest.raises(errors.ValidationException) as refused:
        arn.region_read("us-west-2", "us-east-1")
    assert refused.value.message == (
        "The key ARN names Region 'eu-west-1', but region is 'us-west-2'.")
    # a key id: the Region given, else the default
    assert key_reference(KEY).region_read("us-west-2", "us-east-1") == "us-west-2"
    assert key_reference(KEY).region_read(None, "us-east-1") == "us-east-1"


@pytest.mark.parametrize("alias", ["alias/app", "arn:aws:kms:us-east-1:111122223333:alias/app"])
def test_a_key_reference_that_reads_the_past_says_why_an_alias_is_refused(alias):
    with pytest.raises(errors.ValidationException) as refused:
        key_reference(alias, "This route", "this route")
    assert refused.value.message == (
        f"This route takes a key id or key ARN, not an alias: {alias!r} (an alias can point at "
        "another key at another time, and this route reads the past).")


class _Store:
    """An audit store that keeps the query it was asked and answers from event times."""

    def __init__(self, times: list[float]) -> None:
        self.times, self.asked = times, None

    def query(self, query: AuditQuery) -> list[tuple[int, bytes]]:
        self.asked = query
        return [(n, json.dumps({"n": n}).encode()) for n, t in reversed(list(enumerate(self.times)))
                if (query.start is None or t >= query.start) and (query.end is None or t <= query.end)]


def test_an_end_to_the_whole_second_takes_in_that_second_and_a_fractional_end_is_exact():
    second = 1765012440.0  # 2025-12-06T09:14:00Z, as eventTime shows all of these but the last
    store = _Store([second, second + 0.25, second + 0.999999, second + 1])
    found = read_page(store, AuditQuery, AuditFilter(
        start=parse_time("2025-12-06T09:14:00Z", "start"),
        end=parse_time("2025-12-06T09:14:00Z", "end")), 50, None)
    assert [r["n"] for r in found["Records"]] == [2, 1, 0]
    assert store.asked.end == math.nextafter(second + 1, -math.inf)
    found = read_page(store, AuditQuery, AuditFilter(end=parse_time("1765012440", "end")), 50, None)
    assert [r["n"] for r in found["Records"]] == [2, 1, 0]
    for exact in ("1765012440.25", "2025-12-06T09:14:00.250000Z"):
        found = read_page(store, AuditQuery, AuditFilter(end=parse_time(exact, "end")), 50, None)
        assert ([r["n"] for r in found["Records"]], store.asked.end) == ([1, 0], second + 0.25)


def test_a_page_is_read_by_the_key_id_a_key_arn_names():
    store = _Store([])
    read_page(store, AuditQuery, AuditFilter(
        key_id=f"arn:aws:kms:us-east-1:111122223333:key/{KEY}"), 50, None)
    assert store.asked.key_id == KEY
    with pytest.raises(errors.ValidationException):
        read_page(store, AuditQuery, AuditFilter(key_id="alias/app"), 50, None)


def test_another_accounts_key_arn_finds_this_accounts_records_of_it():
    """A cross-account call leaves a copy of its record in the caller's account too: the key
    ARN of another account's key finds the caller's records of it (by its key id)."""
    store = _Store([1765012440.0])
    arn = f"arn:aws:kms:us-east-1:444455556666:key/{KEY}"
    for account in ("111122223333", "444455556666"):
        found = read_page(store, AuditQuery, AuditFilter(account=account, key_id=arn), 50, None)
        assert [r["n"] for r in found["Records"]] == [0]
        assert (store.asked.account, store.asked.key_id) == (account, KEY)


def _record(time: str, region: str = "us-east-1", account: str = "111122223333") -> dict:
    return {"eventTime": time, "awsRegion": region, "recipientAccountId": account,
            "userIdentity": {"accountId": account}, "eventName": "Encrypt"}


def test_export_uses_cloudtrails_layout_one_file_per_account_region_and_five_minutes():
    records = [_record("2026-12-06T09:14:59Z"), _record("2026-12-06T09:10:00Z"),
               _record("2026-12-06T09:15:00Z"), _record("2026-12-06T09:11:00Z", "eu-west-1")]
    files = cloudtrail_files(records)
    window = {name: hashlib.sha256(name.encode()).hexdigest()[:16] for name in (
        "111122223333/eu-west-1/20261206T0910Z", "111122223333/us-east-1/20261206T0910Z",
        "111122223333/us-east-1/20261206T0915Z")}
    assert sorted(files) == [
        "AWSLogs/111122223333/CloudTrail/eu-west-1/2026/12/06/111122223333_CloudTrail_eu-west-1_"
        f"20261206T0910Z_{window['111122223333/eu-west-1/20261206T0910Z']}.json.gz",
        "AWSLogs/111122223333/CloudTrail/us-east-1/2026/12/06/111122223333_CloudTrail_us-east-1_"
        f"20261206T0910Z_{window['111122223333/us-east-1/20261206T0910Z']}.json.gz",
        "AWSLogs/111122223333/CloudTrail/us-east-1/2026/12/06/111122223333_CloudTrail_us-east-1_"
        f"20261206T0915Z_{window['111122223333/us-east-1/20261206T0915Z']}.json.gz",
    ]
    assert [r["eventTime"] for r in files[sorted(files)[1]]] == ["2026-12-06T09:10:00Z",
                                                                 "2026-12-06T09:14:59Z"]


def test_an_export_again_adds_what_is_new_and_repeats_nothing():
    """The file of a window already exported gets the window's new records, each once."""
    records = [{**_record(f"2026-12-06T09:1{n}:00Z"), "eventID": f"e{n}"} for n in range(4)]
    earlier, added = cloudtrail_file(records[1:3])
    assert added == 2
    again, added = cloudtrail_file(records, earlier)
    assert added == 2  # e0 and e3
    assert [r["eventID"] for r in json.loads(gzip.decompress(again))["Records"]] == [
        "e0", "e1", "e2", "e3"]
    assert cloudtrail_file(records, again) == (again, 0)


def test_a_role_arn_filters_its_sessions():
    assert principal_filter("arn:aws:iam::111122223333:role/Reader") == (
        None, "arn:aws:sts::111122223333:assumed-role/Reader/")
    assert principal_filter("arn:aws:iam::111122223333:role/team/ops/Reader") == (
        None, "arn:aws:sts::111122223333:assumed-role/Reader/")  # session ARNs carry no path
    session = "arn:aws:sts::111122223333:assumed-role/Reader/alice"
    assert principal_filter(session) == (session, None)
    assert principal_filter("arn:aws:iam::111122223333:user/alice") == (
        "arn:aws:iam::111122223333:user/alice", None)
    assert principal_filter(None) == (None, None)
