"""Time-driven behaviour (deletion after the waiting period, automatic rotation) via the test clock.

These tests move the server's clock, so they run against a server of their own.
"""

from __future__ import annotations

import re
from datetime import UTC, datetime, timedelta

import httpx
import pytest

pytestmark = pytest.mark.e2e

DAY = 86400
CTX = {"app": "clock-test"}


@pytest.fixture(scope="module")
def clock_server(server_factory):
    return server_factory("clock")


@pytest.fixture(scope="module")
def ckms(clock_server):
    return clock_server.kms()


def _server_now(clock_server) -> datetime:
    return datetime.fromtimestamp(clock_server.advance_clock(0), tz=UTC)


def test_clock_endpoint_advances_time(clock_server):
    t0 = clock_server.advance_clock(0)
    t1 = clock_server.advance_clock(3600)
    assert t1 - t0 >= 3600
    assert t1 - t0 < 3600 + 60
    # the advanced clock is what the KMS API sees
    md = clock_server.kms().create_key(Description="clock-stamped")["KeyMetadata"]
    assert abs(md["CreationDate"].timestamp() - t1) < 60


@pytest.mark.parametrize("seconds", ["-1", "NaN", "Infinity", "1e300", "3200000000"])
def test_the_clock_moves_forward_by_at_most_a_century(clock_server, seconds):
    """Backward, not a number or past a century (datetime's years end at 9999): a 400."""
    r = httpx.post(clock_server.url + "/_test/clock", content=f'{{"advance_seconds": {seconds}}}',
                   headers={"Content-Type": "application/json"}, timeout=10)
    assert (r.status_code, r.json()) == (400, {
        "detail": "the clock only moves forward, by at most 100 years at a time, and not past "
                  "the year 9000"})


def test_the_clock_stops_short_of_the_year_9000(server_factory):
    """A century at a time, the clock would pass datetime's last year: a 400 before that, and
    the server keeps answering (the offset is kept on disk)."""
    srv = server_factory("far-clock")
    answers = []
    while not answers or answers[-1].status_code == 200:
        answers.append(httpx.post(srv.url + "/_test/clock", json={"advance_seconds": 3153600000},
                                  timeout=60))
    assert (answers[-1].status_code, answers[-1].json()) == (400, {
        "detail": "the clock only moves forward, by at most 100 years at a time, and not past "
                  "the year 9000"})
    last = datetime.fromtimestamp(answers[-2].json()["now"], tz=UTC)
    assert 8900 <= last.year <= 9000
    assert srv.kms().create_key()["KeyMetadata"]["KeyState"] == "Enabled"


def test_test_clock_is_disabled_without_flag(server_factory):
    srv = server_factory("noclock", test_control=False)
    r = httpx.post(srv.url + "/_test/clock", json={"advance_seconds": 10}, timeout=10)
    assert r.status_code == 404
    # the KMS API is unaffected
    assert srv.kms().create_key()["KeyMetadata"]["KeyState"] == "Enabled"


def test_key_is_deleted_after_waiting_period(clock_server, ckms, aws_error):
    md = ckms.create_key(Description="to be deleted")["KeyMetadata"]
    key_id = md["KeyId"]
    alias = f"alias/clock-del-{key_id[:8]}"
    ckms.create_alias(AliasName=alias, TargetKeyId=key_id)
    blob = ckms.encrypt(KeyId=key_id, Plaintext=b"shred me", EncryptionContext=CTX)["CiphertextBlob"]

    sched = ckms.schedule_key_deletion(KeyId=key_id, PendingWindowInDays=7)
    deletion_date = sched["DeletionDate"]

    # one second short of the deadline: still pending
    now = _server_now(clock_server)
    remaining = (deletion_date - now).total_seconds()
    assert 7 * DAY - 120 <= remaining <= 7 * DAY + 3600, remaining
    clock_server.advance_clock(remaining - 5)
    assert ckms.describe_key(KeyId=key_id)["KeyMetadata"]["KeyState"] == "PendingDeletion"

    clock_server.advance_clock(6)  # now past DeletionDate (7 days + 1 s after scheduling)

    with aws_error("NotFoundException"):
        ckms.describe_key(KeyId=key_id)
    with aws_error("NotFoundException"):
        ckms.describe_key(KeyId=alias)
    # Real KMS: "The ciphertext refers to a customer master key that does not exist, does not
    # exist in this region, or you are not allowed to access." (AccessDeniedException, HTTP 400)
    with aws_error("AccessDeniedException"):
        ckms.decrypt(CiphertextBlob=blob, EncryptionContext=CTX)
    with aws_error("NotFoundException"):
        ckms.encrypt(KeyId=key_id, Plaintext=b"x")
    with aws_error("NotFoundException"):
        ckms.cancel_key_deletion(KeyId=key_id)

    ids = {k["KeyId"] for page in ckms.get_paginator("list_keys").paginate() for k in page["Keys"]}
    assert key_id not in ids
    aliases = {a["AliasName"] for page in ckms.get_paginator("list_aliases").paginate() for a in page["Aliases"]}
    assert alias not in aliases

    # The ledger keeps the full history of the deleted key.
    timeline = clock_server.events(key_id)
    assert timeline["KeyId"] == key_id  # the ledger API echoes the key id it was asked for
    events = timeline["Events"]
    types = [e["Type"] for e in events]
    assert types[0] == "KeyCreated"
    assert [e["Version"] for e in events] == sorted(e["Version"] for e in events)
    assert len({e["Version"] for e in events}) == len(events)
    assert any(re.search(r"Deletion.*Scheduled|Scheduled.*Deletion", t) for t in types), types
    assert any(re.search(r"Deleted|Shredded|Destroyed", t) for t in types), types
    # deletion is the last thing that happens to a key
    assert re.search(r"Deleted|Shredded|Destroyed", types[-1]), types
    for e in events:
        assert isinstance(e["Timestamp"], str) and e["Timestamp"]
        datetime.fromisoformat(e["Timestamp"].replace("Z", "+00:00"))
        assert {"principal", "request_id", "source_ip", "user_agent"} <= set(e["Actor"])


def test_cancelled_deletion_survives_the_deadline(clock_server, ckms):
    md = ckms.create_key(Description="reprieve")["KeyMetadata"]
    blob = ckms.encrypt(KeyId=md["KeyId"], Plaintext=b"saved")["CiphertextBlob"]
    ckms.schedule_key_deletion(KeyId=md["KeyId"], PendingWindowInDays=7)
    clock_server.advance_clock(3 * DAY)
    ckms.cancel_key_deletion(KeyId=md["KeyId"])
    clock_server.advance_clock(10 * DAY)
    desc = ckms.describe_key(KeyId=md["KeyId"])["KeyMetadata"]
    assert desc["KeyState"] == "Disabled"
    ckms.enable_key(KeyId=md["KeyId"])
    assert ckms.decrypt(CiphertextBlob=blob)["Plaintext"] == b"saved"


def test_automatic_rotation(clock_server, ckms):
    md = ckms.create_key(Description="auto-rotate")["KeyMetadata"]
    key_id = md["KeyId"]
    first_material = md["CurrentKeyMaterialId"]
    old_blob = ckms.encrypt(KeyId=key_id, Plaintext=b"gen 1", EncryptionContext=CTX)["CiphertextBlob"]

    enabled_at = _server_now(clock_server)
    ckms.enable_key_rotation(KeyId=key_id, RotationPeriodInDays=90)
    status = ckms.get_key_rotation_status(KeyId=key_id)
    assert status["KeyRotationEnabled"] is True
    assert status["RotationPeriodInDays"] == 90
    next_rotation = status["NextRotationDate"]
    assert timedelta(days=89) <= next_rotation - enabled_at <= timedelta(days=91)

    clock_server.advance_clock(89 * DAY)
    assert ckms.describe_key(KeyId=key_id)["KeyMetadata"]["CurrentKeyMaterialId"] == first_material
    assert ckms.list_key_rotations(KeyId=key_id)["Rotations"] == []

    clock_server.advance_clock(2 * DAY)  # 91 days after enabling

    second_material = ckms.describe_key(KeyId=key_id)["KeyMetadata"]["CurrentKeyMaterialId"]
    assert second_material and second_material != first_material

    rotations = ckms.list_key_rotations(KeyId=key_id)["Rotations"]
    automatic = [r for r in rotations if r.get("RotationType") == "AUTOMATIC"]
    assert len(automatic) == 1, rotations
    assert automatic[0]["KeyMaterialId"] == second_material
    rotated_at = automatic[0]["RotationDate"]
    assert abs((rotated_at - next_rotation).total_seconds()) <= 2 * DAY

    old = ckms.decrypt(CiphertextBlob=old_blob, EncryptionContext=CTX)
    assert old["Plaintext"] == b"gen 1"
    assert old["KeyMaterialId"] == first_material
    new_blob = ckms.encrypt(KeyId=key_id, Plaintext=b"gen 2")["CiphertextBlob"]
    assert ckms.decrypt(CiphertextBlob=new_blob)["KeyMaterialId"] == second_material

    # the schedule moves forward by one period
    status = ckms.get_key_rotation_status(KeyId=key_id)
    assert status["KeyRotationEnabled"] is True
    assert status["NextRotationDate"] > next_rotation
    assert timedelta(days=89) <= status["NextRotationDate"] - rotated_at <= timedelta(days=91)

    # the ledger records the automatic rotation
    types = [e["Type"] for e in clock_server.events(key_id)["Events"]]
    assert any("Rotat" in t for t in types), types


def test_disabled_rotation_does_not_rotate(clock_server, ckms):
    md = ckms.create_key(Description="rotation off")["KeyMetadata"]
    ckms.enable_key_rotation(KeyId=md["KeyId"], RotationPeriodInDays=90)
    ckms.disable_key_rotation(KeyId=md["KeyId"])
    clock_server.advance_clock(100 * DAY)
    assert ckms.describe_key(KeyId=md["KeyId"])["KeyMetadata"]["CurrentKeyMaterialId"] == md["CurrentKeyMaterialId"]
    assert ckms.list_key_rotations(KeyId=md["KeyId"])["Rotations"] == []
