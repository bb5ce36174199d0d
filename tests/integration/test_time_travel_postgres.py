"""Time travel on PostgreSQL in one query (infrastructure.ledger_recorder): the store runs the
binary search over a key's versions and returns the snapshot and events of the rebuild. Its
answers must be exactly those of the event-by-event search (application.forensics), which it
replaces, and which still answers when the query cannot."""

from __future__ import annotations

import bisect
import logging
from datetime import timedelta

import pytest
from psycopg.sql import SQL

from application import forensics
from application.ports import StateAtRecorder
from tests.integration.conftest import Harness

pytestmark = pytest.mark.postgres

REGION = "us-east-1"
MICROSECOND = timedelta(microseconds=1)
EVENTS = 120  # snapshots at versions 50 and 100


@pytest.fixture
def pg(postgres_url, tmp_path):
    from api.settings import Settings

    harness = Harness(Settings(data_dir=str(tmp_path / "data"), store=postgres_url,
                               enable_test_control=True))
    yield harness
    harness.close()


def build_key(kms) -> tuple[str, list]:
    key_id = kms.call("CreateKey", Description="d1")["KeyMetadata"]["KeyId"]
    for version in range(2, EVENTS + 1):
        if version % 7 == 0:
            kms.call("TagResource", KeyId=key_id, Tags=[{"TagKey": "v", "TagValue": str(version)}])
        else:
            kms.call("UpdateKeyDescription", KeyId=key_id, Description=f"d{version}")
    stamps = [event["Timestamp"] for event in kms.service.key_history(REGION, key_id)]
    assert len(stamps) == EVENTS
    return key_id, stamps


def instants(stamps: list) -> list:
    """Before the first event, at, just before and just after each event, long after."""
    out = [stamps[0] - timedelta(days=1), stamps[-1] + timedelta(days=1)]
    for stamp in stamps:
        out += [stamp - MICROSECOND, stamp, stamp + MICROSECOND]
    return out


def expected_description(version: int) -> str:
    """The description at ``version``: the last UpdateKeyDescription at or below it."""
    return f"d{max(v for v in range(1, version + 1) if v == 1 or v % 7)}"


def test_one_query_answers_every_instant_as_the_search_does(pg, monkeypatch):
    key_id, stamps = build_key(pg)
    pg.restart()  # a fresh process: no timestamps remembered
    region = pg.service.region(REGION)
    ledger = region.ledger
    assert isinstance(ledger.recorder, StateAtRecorder)
    assert [s.originator_version for s in ledger.snapshots.get(key_id)] == [50, 100]

    def no_search(*_args):
        raise AssertionError("answered event by event")

    with monkeypatch.context() as patched:  # every answer comes from the one query
        patched.setattr(forensics, "version_at", no_search)
        patched.setattr(forensics, "rebuild_at", no_search)
        answers = {at: forensics.key_at(ledger, key_id, at) for at in instants(stamps)}
        assert forensics.key_at(ledger, "00000000-0000-0000-0000-000000000000", stamps[5]) is None
    for at, answer in answers.items():
        version = bisect.bisect_right(stamps, at)  # the events at or before the instant
        if version == 0:
            assert answer is None, at
            continue
        key, found = answer
        assert found == version, at
        assert key.version == version and key.description == expected_description(version), at
        assert key.tags == ({"v": str(version - version % 7)} if version >= 7 else {}), at

    # and the whole state is the event-by-event search's, at the snapshots and around them
    for version in (1, 2, 49, 50, 51, 99, 100, 101, EVENTS):
        at = stamps[version - 1]
        one_query = forensics.key_state_at(region, key_id, at)
        forensics.forget_timelines()
        searched = forensics.rebuild_at(ledger, key_id, forensics.version_at(ledger, key_id, at))
        assert one_query["Version"] == searched.version == version
        assert forensics.key_at(ledger, key_id, at)[0].__dict__ == searched.__dict__


def test_the_search_answers_when_the_query_cannot(pg, caplog):
    key_id, stamps = build_key(pg)
    ledger = pg.service.region(REGION).ledger
    # a store whose event states the query cannot read (say, another encoding): a data error
    ledger.recorder.select_at_statement = SQL("SELECT 'not json'::json AS kind")
    with caplog.at_level(logging.WARNING, logger="keyledger.forensics"):
        key, version = forensics.key_at(ledger, key_id, stamps[60])
    assert (version, key.description) == (61, expected_description(61))
    assert "time travel in one read failed" in caplog.text
    assert ledger in forensics._NO_SELECT_AT  # not tried again by this process
    assert forensics.key_at(ledger, key_id, stamps[0] - MICROSECOND) is None
