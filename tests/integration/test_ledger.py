"""The ledger on real stores (SQLite and PostgreSQL): persistence, projections, shredding."""

from __future__ import annotations

import os
from pathlib import Path

import pytest
from eventsourcing.persistence import IntegrityError

from domain import errors
from infrastructure.key_hierarchy import MaterialShredded
from tests import secret_scan


def _create(kms, **params) -> str:
    return kms.call("CreateKey", **params)["KeyMetadata"]["KeyId"]


def test_keys_and_ciphertext_survive_a_restart(kms):
    key_id = _create(kms, Description="payments")
    kms.call("CreateAlias", AliasName="alias/payments", TargetKeyId=key_id)
    blob = kms.call("Encrypt", KeyId="alias/payments", Plaintext=b"secret", EncryptionContext={"k": "v"})[
        "CiphertextBlob"
    ]
    kms.call("RotateKeyOnDemand", KeyId=key_id)
    kms.restart()
    out = kms.call("Decrypt", CiphertextBlob=blob, EncryptionContext={"k": "v"})
    assert out["Plaintext"] == b"secret"
    meta = kms.call("DescribeKey", KeyId="alias/payments")["KeyMetadata"]
    assert meta["Description"] == "payments"
    assert meta["CurrentKeyMaterialId"] != out["KeyMaterialId"]
    assert [k["KeyId"] for k in kms.call("ListKeys")["Keys"]] == [key_id]


def test_regions_are_separate_ledgers(kms):
    key_id = _create(kms)
    eu = kms.context("eu-west-1")
    with pytest.raises(errors.NotFoundException):
        kms.call("DescribeKey", eu, KeyId=key_id)
    assert kms.call("ListKeys", eu)["Keys"] == []
    eu_key = kms.call("CreateKey", eu)["KeyMetadata"]
    assert eu_key["Arn"].startswith("arn:aws:kms:eu-west-1:")
    assert [k["KeyId"] for k in kms.call("ListKeys")["Keys"]] == [key_id]


def _populate(kms) -> list[str]:
    keys = [_create(kms, Description=f"k{i}") for i in range(6)]
    kms.call("CreateAlias", AliasName="alias/a", TargetKeyId=keys[0])
    kms.call("CreateAlias", AliasName="alias/b", TargetKeyId=keys[1])
    kms.call("UpdateAlias", AliasName="alias/b", TargetKeyId=keys[2])
    kms.call("CreateAlias", AliasName="alias/c", TargetKeyId=keys[3])
    kms.call("DeleteAlias", AliasName="alias/c")
    kms.call("EnableKeyRotation", KeyId=keys[4], RotationPeriodInDays=90)
    kms.call("ScheduleKeyDeletion", KeyId=keys[5], PendingWindowInDays=7)
    return keys


def test_listing_projection_resumes_after_restart_and_rebuilds_exactly(kms):
    keys = _populate(kms)
    region = kms.service.region("us-east-1")
    region.projection.catch_up()
    before = region.directory.snapshot()
    assert region.projection.position == region.ledger.recorder.max_notification_id()

    # Events written while the projection is not following: a restart catches up.
    late_key = _create(kms)
    kms.restart()
    region = kms.service.region("us-east-1")
    assert region.projection.position == region.ledger.recorder.max_notification_id()
    assert late_key in [k["KeyId"] for k in kms.call("ListKeys")["Keys"]]

    # Rebuild from zero into an empty view: the same rows as the live view.
    kms.close()
    _drop_view(kms.settings)
    kms.restart()
    region = kms.service.region("us-east-1")
    keys_after, aliases_after = region.directory.snapshot()
    assert aliases_after == before[1]
    assert [r for r in keys_after if r["key_id"] != late_key] == before[0]
    listed = kms.call("ListAliases")["Aliases"]
    assert [(a["AliasName"], a["TargetKeyId"]) for a in listed] == [
        ("alias/a", keys[0]), ("alias/b", keys[2])
    ]


def _drop_view(settings) -> None:
    if settings.store:
        import psycopg

        with psycopg.connect(settings.store, autocommit=True) as conn:
            for table in ("key_listing", "alias_listing", "keydirectory_tracking"):
                conn.execute(f"DROP TABLE keyledger_us_east_1.{table}")
    else:
        for path in (Path(settings.data_dir) / "regions" / "us-east-1").glob("directory.db*"):
            path.unlink()


def test_list_keys_pages_with_markers(kms):
    keys = [_create(kms) for _ in range(5)]
    seen, marker = [], None
    while True:
        page = kms.call("ListKeys", Limit=2, **({"Marker": marker} if marker else {}))
        seen += [k["KeyId"] for k in page["Keys"]]
        if not page["Truncated"]:
            assert "NextMarker" not in page
            break
        marker = page["NextMarker"]
    assert seen == keys
    with pytest.raises(errors.InvalidMarkerException):
        kms.call("ListKeys", Marker="garbage")


def test_deletion_completes_on_the_clock_and_shreds_the_material(kms):
    key_id = _create(kms)
    kms.call("CreateAlias", AliasName="alias/doomed", TargetKeyId=key_id)
    blob = kms.call("Encrypt", KeyId=key_id, Plaintext=b"x" * 32)["CiphertextBlob"]
    region = kms.service.region("us-east-1")
    key = region.ledger.get_key(key_id)
    sealed = key.current_material.sealed_material
    material = region.hierarchy.unseal(key_id, key.current_key_material_id, sealed)
    wrapped_dek = region.resources.hierarchy._keyring.get(key_id)

    kms.call("ScheduleKeyDeletion", KeyId=key_id, PendingWindowInDays=7)
    kms.advance(days=6)
    assert kms.call("DescribeKey", KeyId=key_id)["KeyMetadata"]["KeyState"] == "PendingDeletion"
    kms.advance(days=1, seconds=1)

    with pytest.raises(errors.NotFoundException):
        kms.call("DescribeKey", KeyId=key_id)
    with pytest.raises(errors.NotFoundException):
        kms.call("DescribeKey", KeyId="alias/doomed")
    with pytest.raises(errors.AccessDeniedException):
        kms.call("Decrypt", CiphertextBlob=blob)
    assert kms.call("ListAliases")["Aliases"] == []
    assert kms.call("ListKeys")["Keys"] == []

    # The history still replays and reads...
    kms.restart()
    history = kms.service.key_history("us-east-1", key_id)
    types = [e["Type"] for e in history]
    assert types[-2:] == ["KeyDeleted", "KeyMaterialShredded"]
    assert history[-1]["Actor"]["principal"] == "kms.amazonaws.com"
    # ...but nobody, not even with the whole database and the root key, recovers the material.
    region = kms.service.region("us-east-1")
    replayed = region.ledger.get_key(key_id)
    assert replayed.current_material.sealed_material == sealed
    with pytest.raises(MaterialShredded):
        region.hierarchy.unseal(key_id, replayed.current_key_material_id, sealed)
    assert region.resources.hierarchy._keyring.get(key_id) is None
    hits = secret_scan.scan(_all_stored_bytes(kms.settings),
                            {"wrapped data key": wrapped_dek, "material": material},
                            must_see=[key_id.encode()])
    assert not hits, "\n".join(hits)


def test_key_material_never_stored_in_clear(kms):
    key_id = _create(kms)
    kms.call("RotateKeyOnDemand", KeyId=key_id)
    region = kms.service.region("us-east-1")
    key = region.ledger.get_key(key_id)
    secrets = {m.key_material_id: region.hierarchy.unseal(key_id, m.key_material_id, m.sealed_material)
               for m in key.materials.values()}
    assert len(secrets) == 2
    kms.restart()  # everything flushed and reopened
    # raw, hex and base64 (events keep bytes as base64), and the scan must have read the events
    hits = secret_scan.scan(_all_stored_bytes(kms.settings), secrets,
                            must_see=[key_id.encode(), *(m.encode() for m in secrets)])
    assert not hits, "key material stored in clear:\n" + "\n".join(hits)


def _all_stored_bytes(settings) -> list[tuple[str, bytes]]:
    """Everything the service keeps at rest, for tests/secret_scan.py."""
    return secret_scan.store_blobs(settings.data_dir, settings.store)


def test_automatic_rotation_on_the_clock_keeps_old_ciphertext_readable(kms):
    key_id = _create(kms)
    blob = kms.call("Encrypt", KeyId=key_id, Plaintext=b"old")["CiphertextBlob"]
    first = kms.call("DescribeKey", KeyId=key_id)["KeyMetadata"]["CurrentKeyMaterialId"]
    kms.call("EnableKeyRotation", KeyId=key_id, RotationPeriodInDays=90)
    kms.advance(days=89)
    assert kms.call("DescribeKey", KeyId=key_id)["KeyMetadata"]["CurrentKeyMaterialId"] == first
    kms.advance(days=1, seconds=1)
    second = kms.call("DescribeKey", KeyId=key_id)["KeyMetadata"]["CurrentKeyMaterialId"]
    assert second != first
    rotations = kms.call("ListKeyRotations", KeyId=key_id)["Rotations"]
    assert [(r["KeyMaterialId"], r["RotationType"]) for r in rotations] == [(second, "AUTOMATIC")]
    status = kms.call("GetKeyRotationStatus", KeyId=key_id)
    assert status["NextRotationDate"] > rotations[0]["RotationDate"]
    out = kms.call("Decrypt", CiphertextBlob=blob)
    assert (out["Plaintext"], out["KeyMaterialId"]) == (b"old", first)


def test_cryptographic_operations_do_not_read_the_event_store(kms):
    key_id = _create(kms)
    blob = kms.call("Encrypt", KeyId=key_id, Plaintext=b"warm")["CiphertextBlob"]
    recorder = kms.service.region("us-east-1").ledger.recorder
    reads = []
    original = recorder.select_events
    recorder.select_events = lambda *a, **kw: reads.append(a) or original(*a, **kw)
    try:
        for _ in range(20):
            kms.call("Encrypt", KeyId=key_id, Plaintext=b"p")
            kms.call("Decrypt", CiphertextBlob=blob)
            kms.call("GenerateDataKey", KeyId=key_id, KeySpec="AES_256")
            kms.call("ReEncrypt", CiphertextBlob=blob, DestinationKeyId=key_id)
    finally:
        recorder.select_events = original
    assert reads == []


def test_a_second_process_sees_disable_by_following_the_ledger(kms):
    key_id = _create(kms)
    other = kms.other_process()
    try:
        other.call("Encrypt", KeyId=key_id, Plaintext=b"p")  # warms its in-memory state
        kms.call("DisableKey", KeyId=key_id)
        other.service.follow()
        with pytest.raises(errors.DisabledException):
            other.call("Encrypt", KeyId=key_id, Plaintext=b"p")
    finally:
        other.close()


def test_every_event_records_its_actor(kms):
    key_id = _create(kms)
    kms.call("TagResource", KeyId=key_id, Tags=[{"TagKey": "team", "TagValue": "a"}])
    kms.call("DisableKey", KeyId=key_id)
    for event in kms.service.key_history("us-east-1", key_id):
        assert event["Actor"]["principal"] == "arn:aws:iam::111122223333:root"
        assert event["Actor"]["access_key_id"] == "AKIDTEST"
        assert event["Actor"]["user_agent"] == "pytest"
        assert event["Actor"]["request_id"]


def test_root_key_file_is_created_private(tmp_path):
    from api.settings import Settings
    from tests.integration.conftest import Harness

    harness = Harness(Settings(data_dir=str(tmp_path / "fresh")))
    try:
        mode = os.stat(tmp_path / "fresh" / "root.key").st_mode & 0o777
        assert mode == 0o600
    finally:
        harness.close()


def test_snapshots_are_taken_and_replay_matches_history(kms):
    key_id = _create(kms)
    for i in range(60):
        kms.call("TagResource", KeyId=key_id, Tags=[{"TagKey": f"t{i % 7}", "TagValue": str(i)}])
    region = kms.service.region("us-east-1")
    snapshots = list(region.ledger.snapshots.get(key_id))
    assert [s.originator_version for s in snapshots] == [50]
    kms.restart()
    tags = {t["TagKey"]: t["TagValue"] for t in kms.call("ListResourceTags", KeyId=key_id)["Tags"]}
    assert tags == {f"t{i % 7}": str(i) for i in range(60)}
    assert len(kms.service.key_history("us-east-1", key_id)) == 61


def test_deletion_recorded_before_shredding_finishes_after_a_crash(kms):
    """KeyDeleted is written (version-checked) first; a crash before the shred is finished
    by the next scheduler pass, and a deletion that loses a race destroys nothing."""
    from datetime import timedelta

    from domain.values import Actor

    key_id = _create(kms)
    kms.call("ScheduleKeyDeletion", KeyId=key_id, PendingWindowInDays=7)
    region = kms.service.region("us-east-1")
    keyring = region.resources.hierarchy._keyring

    # A scheduler pass that read the key just before a CancelKeyDeletion committed: its
    # version-checked write fails, and the data key is untouched.
    stale = region.ledger.get_key(key_id)
    kms.call("CancelKeyDeletion", KeyId=key_id)
    due = kms.service.clock.now() + timedelta(days=8)
    stale.complete_deletion(due, Actor.service())
    with pytest.raises(IntegrityError):
        region.save(stale)
    assert keyring.get(key_id) is not None
    kms.call("EnableKey", KeyId=key_id)
    kms.call("Encrypt", KeyId=key_id, Plaintext=b"still usable")

    # A pass that recorded the deletion and died before destroying the data key.
    kms.call("ScheduleKeyDeletion", KeyId=key_id, PendingWindowInDays=7)
    kms.service.clock.advance(timedelta(days=8))
    key = region.ledger.get_key(key_id)
    key.complete_deletion(kms.service.clock.now(), Actor.service())
    region.save(key)
    kms.restart()
    region = kms.service.region("us-east-1")  # a starting server opens its known regions
    kms.service.run_scheduled()
    assert region.resources.hierarchy._keyring.get(key_id) is None
    types = [e["Type"] for e in kms.service.key_history("us-east-1", key_id)]
    assert types[-2:] == ["KeyDeleted", "KeyMaterialShredded"]
    assert region.directory.due_key_ids(kms.service.clock.now().timestamp()) == []


def test_a_change_committed_while_a_key_loads_is_not_lost(kms):
    key_id = _create(kms)
    other = kms.other_process()
    try:
        region = other.service.region("us-east-1")
        read_key = region.ledger.get_key

        def read_then_race(aggregate_id):
            loaded = read_key(aggregate_id)  # still Enabled
            kms.call("DisableKey", KeyId=key_id)  # committed by the first process meanwhile
            region.follow()  # ...and seen by this process's follower before the load ends
            return loaded

        region.ledger.get_key = read_then_race
        with pytest.raises(errors.DisabledException):
            other.call("Encrypt", KeyId=key_id, Plaintext=b"p")
    finally:
        other.close()


def test_unknown_key_ids_are_remembered_until_the_key_appears(kms):
    unknown = "00000000-0000-4000-8000-000000000000"
    recorder = kms.service.region("us-east-1").ledger.recorder
    with pytest.raises(errors.NotFoundException):
        kms.call("DescribeKey", KeyId=unknown)
    reads = []
    original = recorder.select_events
    recorder.select_events = lambda *a, **kw: reads.append(a) or original(*a, **kw)
    try:
        for _ in range(5):
            with pytest.raises(errors.NotFoundException):
                kms.call("Encrypt", KeyId=unknown, Plaintext=b"p")
    finally:
        recorder.select_events = original
    assert reads == []
    created = _create(kms)  # a new key is never shadowed by the memory of a miss
    assert kms.call("DescribeKey", KeyId=created)["KeyMetadata"]["KeyId"] == created


def test_review_findings_behave_as_aws(kms):
    key_id = _create(kms)
    kms.call("CreateAlias", AliasName="alias/life", TargetKeyId=key_id)
    # Lifecycle operations take a key id or key ARN, never an alias.
    for operation, extra in [
        ("DisableKey", {}), ("EnableKey", {}), ("UpdateKeyDescription", {"Description": "x"}),
        ("ScheduleKeyDeletion", {}), ("CancelKeyDeletion", {}),
    ]:
        with pytest.raises(errors.NotFoundException):
            kms.call(operation, KeyId="alias/life", **extra)
    # A bad window is reported before the key is looked up.
    with pytest.raises(errors.ValidationException, match="pendingWindowInDays"):
        kms.call("ScheduleKeyDeletion", KeyId="00000000-0000-4000-8000-000000000000",
                 PendingWindowInDays=6)
    with pytest.raises(errors.ValidationException, match="rotationPeriodInDays"):
        kms.call("EnableKeyRotation", KeyId="00000000-0000-4000-8000-000000000000",
                 RotationPeriodInDays=89)
    # Nitro Enclaves recipients are refused rather than answered in clear.
    blob = kms.call("Encrypt", KeyId=key_id, Plaintext=b"p")["CiphertextBlob"]
    recipient = {"KeyEncryptionAlgorithm": "RSAES_OAEP_SHA_256", "AttestationDocument": b"doc"}
    with pytest.raises(errors.UnsupportedOperationException):
        kms.call("Decrypt", CiphertextBlob=blob, Recipient=recipient)
    with pytest.raises(errors.UnsupportedOperationException):
        kms.call("GenerateDataKey", KeyId=key_id, KeySpec="AES_256", Recipient=recipient)
    # A marker that decodes to a non-ASCII digit is an invalid marker, not a crash.
    import base64

    with pytest.raises(errors.InvalidMarkerException):
        kms.call("ListKeys", Marker=base64.urlsafe_b64encode("kl1:²".encode()).decode())
    # Only PendingReplicaDeletion keys report PendingDeletionWindowInDays.
    kms.call("ScheduleKeyDeletion", KeyId=key_id, PendingWindowInDays=7)
    meta = kms.call("DescribeKey", KeyId=key_id)["KeyMetadata"]
    assert "DeletionDate" in meta and "PendingDeletionWindowInDays" not in meta
    # ARNs of other partitions do not name keys of this one.
    with pytest.raises(errors.InvalidArnException):
        kms.call("DescribeKey", KeyId=f"arn:aws-cn:kms:us-east-1:111122223333:key/{key_id}")


def test_update_alias_to_its_own_key_is_not_counted_again(kms):
    from domain.alias import MAX_ALIASES_PER_KEY

    key_id = _create(kms)
    for i in range(MAX_ALIASES_PER_KEY):
        kms.call("CreateAlias", AliasName=f"alias/full-{i}", TargetKeyId=key_id)
    kms.call("UpdateAlias", AliasName="alias/full-0", TargetKeyId=key_id)
    with pytest.raises(errors.ValidationException):
        kms.call("UpdateAlias", AliasName="no-prefix", TargetKeyId=key_id)


@pytest.mark.parametrize("operation", ["CreateAlias", "UpdateAlias"])
def test_aliases_added_to_a_key_at_once_stop_at_its_limit(kms, operation):
    """Requests that each find 48 aliases on a key, in two processes and several threads at
    once: two of them get one of the two places left, the rest LimitExceededException (found
    by a review: the count and the save were not one step, and a key got up to 56)."""
    import threading

    from domain.alias import MAX_ALIASES_PER_KEY

    key_id, elsewhere = _create(kms), _create(kms)
    for i in range(MAX_ALIASES_PER_KEY - 2):
        kms.call("CreateAlias", AliasName=f"alias/held-{i}", TargetKeyId=key_id)
    contenders = 8
    if operation == "UpdateAlias":  # aliases of another key, moved onto this one
        for i in range(contenders):
            kms.call("CreateAlias", AliasName=f"alias/new-{i}", TargetKeyId=elsewhere)
    other = kms.other_process()
    start = threading.Barrier(contenders)
    outcomes: list[str] = []

    def add(n: int) -> None:
        harness = kms if n % 2 else other
        start.wait()
        try:
            harness.call(operation, AliasName=f"alias/new-{n}", TargetKeyId=key_id)
            outcomes.append("added")
        except errors.LimitExceededException:
            outcomes.append("limit")

    try:
        threads = [threading.Thread(target=add, args=(n,)) for n in range(contenders)]
        for thread in threads:
            thread.start()
        for thread in threads:
            thread.join(timeout=60)
    finally:
        other.close()
    assert sorted(outcomes) == ["added"] * 2 + ["limit"] * (contenders - 2)
    assert len(kms.call("ListAliases", KeyId=key_id)["Aliases"]) == MAX_ALIASES_PER_KEY


@pytest.mark.parametrize("key_id", ["nul\x00key", "../../etc/passwd", "x" * 5000])
def test_key_history_of_impossible_ids_is_not_found(kms, key_id):
    with pytest.raises(errors.NotFoundException):
        kms.service.key_history("us-east-1", key_id)


@pytest.mark.parametrize("change", ["DeleteKey", "RotateKey"])
def test_a_change_kms_made_whose_process_died_before_its_record_gets_it_once(kms, monkeypatch,
                                                                               change):
    """The change and a note of its audit record are saved together; the process dies before
    the record is stored; the next scheduler pass stores it, once, and strikes the note."""
    import orjson

    from application.audit import AuditQuery
    from application.scheduler import Scheduler

    key_id = _create(kms)
    if change == "DeleteKey":
        kms.call("ScheduleKeyDeletion", KeyId=key_id, PendingWindowInDays=7)
    else:
        kms.call("EnableKeyRotation", KeyId=key_id, RotationPeriodInDays=90)
    store = Scheduler._store

    def dies(region, *rows):
        raise SystemExit("killed between the change and its record")

    monkeypatch.setattr(Scheduler, "_store", staticmethod(dies))
    with pytest.raises(SystemExit):
        kms.advance(days=91)
    monkeypatch.setattr(Scheduler, "_store", staticmethod(store))
    region = kms.service.region("us-east-1")

    def records() -> list[dict]:
        rows = region.audit.store.query(AuditQuery(key_id=key_id, event_name=change, limit=10))
        return [orjson.loads(record) for _, record in rows]

    types = [e["Type"] for e in kms.service.key_history("us-east-1", key_id)]
    assert ("KeyDeleted" if change == "DeleteKey" else "KeyMaterialRotated") in types
    assert records() == []  # the change is saved, its record is not
    kms.restart()
    kms.service.region("us-east-1")
    kms.service.run_scheduled()
    kms.service.run_scheduled()
    region = kms.service.region("us-east-1")
    (record,) = records()
    assert (record["eventType"], record["userIdentity"]) == (
        "AwsServiceEvent", {"accountId": record["recipientAccountId"], "invokedBy": "AWS Internal"})
    assert record["additionalEventData"]["ledgerEvents"][0]["aggregateId"] == key_id
    assert region.ledger.get_service_records().pending == {}


def test_a_scheduled_change_whose_key_shares_the_notes_lock_stripe_completes(kms, monkeypatch):
    """The region's writer locks are striped: a key whose stripe is the service-records
    notes' one deadlocked the scheduler, which struck the note while it held the key's lock."""
    import threading

    key_id = _create(kms)
    kms.call("ScheduleKeyDeletion", KeyId=key_id, PendingWindowInDays=7)
    region = kms.service.region("us-east-1")
    one_stripe = threading.Lock()
    monkeypatch.setattr(region, "writer_lock", lambda aggregate_id: one_stripe)
    done = threading.Thread(target=kms.advance, kwargs={"days": 8}, daemon=True)
    done.start()
    done.join(timeout=20)
    assert not done.is_alive(), "the scheduler deadlocked"
    assert kms.service.key_history("us-east-1", key_id)[-1]["Type"] == "KeyMaterialShredded"
    assert region.ledger.get_service_records().pending == {}
