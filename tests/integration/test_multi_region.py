"""Multi-Region keys on real stores: replicas built and kept current from the primary Region's
ledger stream, exactly once, across restarts."""

from __future__ import annotations

import os
import re
from datetime import UTC, datetime, timedelta

import orjson
import pytest
from cryptography.hazmat.primitives import hashes, serialization
from cryptography.hazmat.primitives.asymmetric import padding

from application.audit import AuditQuery
from application.replication import Replicator
from domain import errors
from domain.policy import default_key_policy
from tests.integration.conftest import Harness

PRIMARY, REPLICA, THIRD = "us-east-1", "us-west-2", "eu-west-1"


def mrk(kms, **params) -> dict:
    return kms.call("CreateKey", MultiRegion=True, **params)["KeyMetadata"]


def import_into(kms, ctx, key_id: str, material: bytes, **params) -> str:
    """GetParametersForImport and ImportKeyMaterial of ``material`` in ``ctx``'s Region."""
    parameters = kms.call("GetParametersForImport", ctx, KeyId=key_id,
                          WrappingAlgorithm="RSAES_OAEP_SHA_256", WrappingKeySpec="RSA_2048")
    public = serialization.load_der_public_key(parameters["PublicKey"])
    wrapped = public.encrypt(material, padding.OAEP(mgf=padding.MGF1(hashes.SHA256()),
                                                    algorithm=hashes.SHA256(), label=None))
    return kms.call("ImportKeyMaterial", ctx, KeyId=key_id, ImportToken=parameters["ImportToken"],
                    EncryptedKeyMaterial=wrapped,
                    ExpirationModel="KEY_MATERIAL_DOES_NOT_EXPIRE", **params)["KeyMaterialId"]


def test_create_key_multi_region_gives_an_mrk_primary(kms):
    md = mrk(kms, Description="primary")
    assert re.fullmatch(r"mrk-[0-9a-f]{32}", md["KeyId"])
    assert md["MultiRegion"] is True
    assert md["MultiRegionConfiguration"] == {
        "MultiRegionKeyType": "PRIMARY",
        "PrimaryKey": {"Arn": md["Arn"], "Region": PRIMARY},
        "ReplicaKeys": [],
    }
    single = kms.call("CreateKey")["KeyMetadata"]
    assert single["MultiRegion"] is False and "MultiRegionConfiguration" not in single


def test_replicate_key_answers_creating_and_the_replica_follows_from_the_stream(kms):
    md = mrk(kms, Description="primary", Tags=[{"TagKey": "team", "TagValue": "core"}])
    answer = kms.call("ReplicateKey", KeyId=md["KeyId"], ReplicaRegion=REPLICA,
                      Description="the copy", Tags=[{"TagKey": "site", "TagValue": "west"}])
    replica_arn = md["Arn"].replace(PRIMARY, REPLICA)
    assert answer["ReplicaKeyMetadata"]["KeyState"] == "Creating"
    assert answer["ReplicaKeyMetadata"]["Arn"] == replica_arn
    assert answer["ReplicaKeyMetadata"]["Description"] == "the copy"
    assert answer["ReplicaTags"] == [{"TagKey": "site", "TagValue": "west"}]
    assert answer["ReplicaPolicy"] == default_key_policy(md["AWSAccountId"])  # not the primary's

    west = kms.context(REPLICA)
    replica = kms.call("DescribeKey", west, KeyId=md["KeyId"])["KeyMetadata"]
    assert replica["KeyState"] == "Enabled"
    assert replica["Arn"] == replica_arn
    assert replica["Description"] == "the copy"  # independent: its own
    assert replica["MultiRegionConfiguration"] == {
        "MultiRegionKeyType": "REPLICA",
        "PrimaryKey": {"Arn": md["Arn"], "Region": PRIMARY},
        "ReplicaKeys": [{"Arn": replica_arn, "Region": REPLICA}],
    }
    assert kms.call("ListResourceTags", west, KeyId=md["KeyId"])["Tags"] == [
        {"TagKey": "site", "TagValue": "west"}]
    primary = kms.call("DescribeKey", KeyId=md["KeyId"])["KeyMetadata"]
    assert primary["MultiRegionConfiguration"]["ReplicaKeys"] == [
        {"Arn": replica_arn, "Region": REPLICA}]
    assert primary["CurrentKeyMaterialId"] == replica["CurrentKeyMaterialId"]


def test_ciphertext_of_either_key_decrypts_with_the_other(kms):
    md = mrk(kms)
    kms.call("ReplicateKey", KeyId=md["KeyId"], ReplicaRegion=REPLICA)
    west = kms.context(REPLICA)
    east_blob = kms.call("Encrypt", KeyId=md["KeyId"], Plaintext=b"from the east")["CiphertextBlob"]
    west_blob = kms.call("Encrypt", west, KeyId=md["KeyId"], Plaintext=b"from the west")["CiphertextBlob"]
    decrypted = kms.call("Decrypt", west, CiphertextBlob=east_blob)
    assert decrypted["Plaintext"] == b"from the east"
    assert decrypted["KeyId"] == md["Arn"].replace(PRIMARY, REPLICA)  # the local key's ARN
    assert kms.call("Decrypt", CiphertextBlob=west_blob)["Plaintext"] == b"from the west"


def test_rotation_of_the_primary_reaches_every_replica_old_material_included(kms):
    md = mrk(kms)
    old_blob = kms.call("Encrypt", KeyId=md["KeyId"], Plaintext=b"before the replica")["CiphertextBlob"]
    kms.call("ReplicateKey", KeyId=md["KeyId"], ReplicaRegion=REPLICA)
    kms.call("RotateKeyOnDemand", KeyId=md["KeyId"])
    kms.call("EnableKeyRotation", KeyId=md["KeyId"], RotationPeriodInDays=180)
    new_blob = kms.call("Encrypt", KeyId=md["KeyId"], Plaintext=b"after rotation")["CiphertextBlob"]
    kms.service.replicate()
    west = kms.context(REPLICA)
    assert kms.call("Decrypt", west, CiphertextBlob=old_blob)["Plaintext"] == b"before the replica"
    assert kms.call("Decrypt", west, CiphertextBlob=new_blob)["Plaintext"] == b"after rotation"
    status = kms.call("GetKeyRotationStatus", west, KeyId=md["KeyId"])
    assert status["KeyRotationEnabled"] is True and status["RotationPeriodInDays"] == 180
    primary = kms.call("DescribeKey", KeyId=md["KeyId"])["KeyMetadata"]
    replica = kms.call("DescribeKey", west, KeyId=md["KeyId"])["KeyMetadata"]
    assert replica["CurrentKeyMaterialId"] == primary["CurrentKeyMaterialId"]
    rotations = kms.call("ListKeyRotations", west, KeyId=md["KeyId"])["Rotations"]
    assert [r["RotationType"] for r in rotations] == ["ON_DEMAND"]


def test_a_second_replica_is_known_to_the_first(kms):
    md = mrk(kms)
    kms.call("ReplicateKey", KeyId=md["KeyId"], ReplicaRegion=REPLICA)
    kms.call("ReplicateKey", KeyId=md["KeyId"], ReplicaRegion=THIRD)
    kms.service.replicate()
    regions = [r["Region"] for r in kms.call("DescribeKey", kms.context(REPLICA), KeyId=md["KeyId"])[
        "KeyMetadata"]["MultiRegionConfiguration"]["ReplicaKeys"]]
    assert regions == [REPLICA, THIRD]


def test_replicate_key_refusals(kms):
    md = mrk(kms)
    single = kms.call("CreateKey")["KeyMetadata"]
    with pytest.raises(errors.UnsupportedOperationException):
        kms.call("ReplicateKey", KeyId=single["KeyId"], ReplicaRegion=REPLICA)
    with pytest.raises(errors.AlreadyExistsException):
        kms.call("ReplicateKey", KeyId=md["KeyId"], ReplicaRegion=PRIMARY)
    kms.call("ReplicateKey", KeyId=md["KeyId"], ReplicaRegion=REPLICA)
    with pytest.raises(errors.AlreadyExistsException):
        kms.call("ReplicateKey", KeyId=md["KeyId"], ReplicaRegion=REPLICA)
    with pytest.raises(errors.UnsupportedOperationException):  # a replica is not replicated
        kms.call("ReplicateKey", kms.context(REPLICA), KeyId=md["KeyId"], ReplicaRegion=THIRD)
    with pytest.raises(errors.UnsupportedOperationException):  # shared: set on the primary
        kms.call("EnableKeyRotation", kms.context(REPLICA), KeyId=md["KeyId"])
    kms.call("DisableKey", KeyId=md["KeyId"])
    with pytest.raises(errors.DisabledException):
        kms.call("ReplicateKey", KeyId=md["KeyId"], ReplicaRegion=THIRD)


def test_independent_properties_stay_apart(kms):
    md = mrk(kms)
    kms.call("ReplicateKey", KeyId=md["KeyId"], ReplicaRegion=REPLICA)
    west = kms.context(REPLICA)
    kms.call("DisableKey", KeyId=md["KeyId"])
    kms.call("UpdateKeyDescription", west, KeyId=md["KeyId"], Description="west only")
    kms.service.replicate()
    replica = kms.call("DescribeKey", west, KeyId=md["KeyId"])["KeyMetadata"]
    assert replica["KeyState"] == "Enabled"  # a replica stays usable when its primary is not
    assert kms.call("DescribeKey", KeyId=md["KeyId"])["KeyMetadata"]["Description"] == ""
    kms.call("Encrypt", west, KeyId=md["KeyId"], Plaintext=b"still usable")


def test_replication_is_applied_exactly_once_across_a_restart(kms):
    md = mrk(kms)
    kms.call("ReplicateKey", KeyId=md["KeyId"], ReplicaRegion=REPLICA)
    for _ in range(3):
        kms.call("RotateKeyOnDemand", KeyId=md["KeyId"])
    kms.service.replicate()
    kms.restart()
    kms.service.region(PRIMARY)
    kms.service.region(REPLICA)
    assert kms.service.replicate() == 0  # every event was applied before the restart
    west = kms.context(REPLICA)
    history = kms.service.key_history(REPLICA, md["KeyId"])
    assert [e["Type"] for e in history].count("KeyCreated") == 1
    synchronized = [e for e in history if e["Type"] == "MultiRegionKeySynchronized"]
    # the replica's creation, one per rotation, and the last rotation's material becoming
    # current once the replica held it (the first two never did: a newer one replaced them)
    assert len(synchronized) == 5
    assert len(kms.call("ListKeyRotations", west, KeyId=md["KeyId"])["Rotations"]) == 3
    blob = kms.call("Encrypt", KeyId=md["KeyId"], Plaintext=b"x")["CiphertextBlob"]
    assert kms.call("Decrypt", west, CiphertextBlob=blob)["Plaintext"] == b"x"


def _entries(harness, region: str, key_id: str) -> list[tuple[str, str]]:
    """(eventName, eventID) of the records KMS wrote itself about the key in ``region``."""
    rows = harness.service.region(region).audit.store.query(AuditQuery(key_id=key_id, limit=100))
    records = [orjson.loads(record) for _, record in rows]
    return sorted((r["eventName"], r["eventID"]) for r in records if "invokedBy" in r["userIdentity"])


def test_a_replica_entry_written_before_a_crash_is_kept_once_when_the_event_is_applied_again(kms):
    """The replica Region's entry is durable before the event it records is applied: a
    process dying in between applies the event again after its restart, and the entry,
    written again with the same eventID, is stored once."""
    md = mrk(kms)
    west = kms.service.region(REPLICA).ledger
    save_tracked = west.save_tracked

    def dies_before_saving(*args, **kwargs):
        west.save_tracked = save_tracked  # the restarted process saves
        raise SystemExit("killed between the entry and the tracked save")

    west.save_tracked = dies_before_saving
    with pytest.raises(SystemExit):  # the replica Region applies the ReplicateKey at once
        kms.call("ReplicateKey", KeyId=md["KeyId"], ReplicaRegion=REPLICA)
    assert [name for name, _ in _entries(kms, REPLICA, md["KeyId"])] == ["CreateKey"]
    with pytest.raises(errors.NotFoundException):  # the crash lost the applied event
        kms.call("DescribeKey", kms.context(REPLICA), KeyId=md["KeyId"])
    kms.restart()
    kms.service.region(PRIMARY)
    kms.service.region(REPLICA)
    assert kms.service.replicate() == 2  # the replica's creation, again, and its properties
    assert kms.call("DescribeKey", kms.context(REPLICA), KeyId=md["KeyId"])["KeyMetadata"][
        "MultiRegionConfiguration"]["MultiRegionKeyType"] == "REPLICA"
    entries = _entries(kms, REPLICA, md["KeyId"])
    assert [name for name, _ in entries] == ["CreateKey", "SynchronizeMultiRegionKey"]
    assert len({event_id for _, event_id in entries}) == 2
    kms.call("RotateKeyOnDemand", KeyId=md["KeyId"])
    kms.service.replicate()  # the rotation's material, then its becoming current
    assert [name for name, _ in _entries(kms, REPLICA, md["KeyId"])] == [
        "CreateKey", "SynchronizeMultiRegionKey", "SynchronizeMultiRegionKey",
        "SynchronizeMultiRegionKey"]


def test_a_replica_region_that_cannot_write_its_audit_entry_does_not_apply_the_event(kms):
    """No event applied without its entry: while the replica Region's audit store fails, the
    replica is not created; once it works, the next pass creates it, entry and all."""
    md = mrk(kms)
    audit = kms.service.region(REPLICA).audit
    record_blocking = audit.record_blocking

    def fails(*rows):
        raise OSError("disk full")

    audit.record_blocking = fails
    kms.call("ReplicateKey", KeyId=md["KeyId"], ReplicaRegion=REPLICA)
    with pytest.raises(errors.NotFoundException):
        kms.call("DescribeKey", kms.context(REPLICA), KeyId=md["KeyId"])
    audit.record_blocking = record_blocking
    assert kms.service.replicate(REPLICA) == 2
    assert [name for name, _ in _entries(kms, REPLICA, md["KeyId"])] == [
        "CreateKey", "SynchronizeMultiRegionKey"]


def test_no_material_in_clear_in_the_primary_events(kms):
    md = mrk(kms)
    kms.call("ReplicateKey", KeyId=md["KeyId"], ReplicaRegion=REPLICA)
    history = kms.service.key_history(PRIMARY, md["KeyId"])
    shared = [e for e in history if e["Type"] == "SharedPropertiesChanged"]
    assert shared and all("sealed_material" not in str(e["Details"]) for e in shared)


def test_a_primary_with_replicas_waits_for_their_deletion(kms):
    md = mrk(kms)
    kms.call("ReplicateKey", KeyId=md["KeyId"], ReplicaRegion=REPLICA)
    west = kms.context(REPLICA)
    scheduled = kms.call("ScheduleKeyDeletion", KeyId=md["KeyId"], PendingWindowInDays=7)
    assert scheduled["KeyState"] == "PendingReplicaDeletion"
    assert "DeletionDate" not in scheduled and scheduled["PendingWindowInDays"] == 7
    primary = kms.call("DescribeKey", KeyId=md["KeyId"])["KeyMetadata"]
    assert primary["KeyState"] == "PendingReplicaDeletion"
    assert primary["PendingDeletionWindowInDays"] == 7 and "DeletionDate" not in primary
    with pytest.raises(errors.KMSInvalidStateException):
        kms.call("Encrypt", KeyId=md["KeyId"], Plaintext=b"x")
    # the replica is unaffected, and is deleted on its own schedule
    kms.call("Encrypt", west, KeyId=md["KeyId"], Plaintext=b"x")
    kms.call("ScheduleKeyDeletion", west, KeyId=md["KeyId"], PendingWindowInDays=7)
    kms.advance(days=8)  # the replica's window passes: it is deleted in its Region
    kms.service.replicate()  # the primary learns it from that Region's stream
    primary = kms.call("DescribeKey", KeyId=md["KeyId"])["KeyMetadata"]
    assert primary["KeyState"] == "PendingDeletion"
    assert primary["MultiRegionConfiguration"]["ReplicaKeys"] == []
    assert "PendingDeletionWindowInDays" not in primary and "DeletionDate" in primary
    kms.advance(days=8)  # and its own window, which started with the last replica's deletion
    with pytest.raises(errors.NotFoundException):
        kms.call("DescribeKey", KeyId=md["KeyId"])


def test_cancel_deletion_of_a_primary_pending_replica_deletion(kms):
    md = mrk(kms)
    kms.call("ReplicateKey", KeyId=md["KeyId"], ReplicaRegion=REPLICA)
    kms.call("ScheduleKeyDeletion", KeyId=md["KeyId"])
    kms.call("CancelKeyDeletion", KeyId=md["KeyId"])
    assert kms.call("DescribeKey", KeyId=md["KeyId"])["KeyMetadata"]["KeyState"] == "Disabled"


def test_update_primary_region_swaps_the_roles_through_the_streams(kms):
    md = mrk(kms, Description="east")
    kms.call("ReplicateKey", KeyId=md["KeyId"], ReplicaRegion=REPLICA, Description="west")
    kms.call("ReplicateKey", KeyId=md["KeyId"], ReplicaRegion=THIRD)
    kms.service.replicate()
    west, third = kms.context(REPLICA), kms.context(THIRD)
    assert kms.call("UpdatePrimaryRegion", KeyId=md["KeyId"], PrimaryRegion=REPLICA) == {}
    kms.service.replicate()
    old = kms.call("DescribeKey", KeyId=md["KeyId"])["KeyMetadata"]
    new = kms.call("DescribeKey", west, KeyId=md["KeyId"])["KeyMetadata"]
    other = kms.call("DescribeKey", third, KeyId=md["KeyId"])["KeyMetadata"]
    west_arn = md["Arn"].replace(PRIMARY, REPLICA)
    assert new["MultiRegionConfiguration"]["MultiRegionKeyType"] == "PRIMARY"
    assert old["MultiRegionConfiguration"]["MultiRegionKeyType"] == "REPLICA"
    for metadata in (old, new, other):
        assert metadata["MultiRegionConfiguration"]["PrimaryKey"] == {"Arn": west_arn, "Region": REPLICA}
        assert sorted(r["Region"] for r in metadata["MultiRegionConfiguration"]["ReplicaKeys"]) == [
            THIRD, PRIMARY]
    assert old["KeyState"] == "Enabled" and new["KeyState"] == "Enabled"
    assert (old["Description"], new["Description"]) == ("east", "west")  # independent, unchanged
    # the new primary rotates for the set, the old primary follows it
    kms.call("RotateKeyOnDemand", west, KeyId=md["KeyId"])
    kms.service.replicate()
    blob = kms.call("Encrypt", west, KeyId=md["KeyId"], Plaintext=b"after the swap")["CiphertextBlob"]
    assert kms.call("Decrypt", CiphertextBlob=blob)["Plaintext"] == b"after the swap"
    assert kms.call("Decrypt", third, CiphertextBlob=blob)["Plaintext"] == b"after the swap"
    with pytest.raises(errors.UnsupportedOperationException):  # only the primary rotates now
        kms.call("RotateKeyOnDemand", KeyId=md["KeyId"])


def test_update_primary_region_refusals(kms):
    md = mrk(kms)
    with pytest.raises(errors.NotFoundException):  # no replica there
        kms.call("UpdatePrimaryRegion", KeyId=md["KeyId"], PrimaryRegion=REPLICA)
    kms.call("ReplicateKey", KeyId=md["KeyId"], ReplicaRegion=REPLICA)
    with pytest.raises(errors.UnsupportedOperationException):  # called on a replica
        kms.call("UpdatePrimaryRegion", kms.context(REPLICA), KeyId=md["KeyId"], PrimaryRegion=PRIMARY)
    kms.call("DisableKey", kms.context(REPLICA), KeyId=md["KeyId"])
    with pytest.raises(errors.DisabledException):  # the replica must be Enabled too
        kms.call("UpdatePrimaryRegion", KeyId=md["KeyId"], PrimaryRegion=REPLICA)


def test_the_regions_command_reports_each_pair_offline(kms, settings, capsys):
    from api.cli import main

    md = mrk(kms)
    kms.call("ReplicateKey", KeyId=md["KeyId"], ReplicaRegion=REPLICA)
    kms.service.replicate()
    kms.call("RotateKeyOnDemand", KeyId=md["KeyId"])  # not applied yet: the rotation's two
    # events (KeyMaterialRotated, SharedPropertiesChanged) are still to read
    kms.close()
    args = ["regions", "--data-dir", settings.data_dir, "--json"]
    if settings.store:
        args += ["--store", settings.store]
    assert main(args) == 0
    import json
    rows = {(r["Source"], r["Target"]): r for r in map(json.loads, capsys.readouterr().out.splitlines())}
    assert rows[(PRIMARY, REPLICA)]["Behind"] == 2
    assert rows[(REPLICA, PRIMARY)]["Behind"] == 0


def test_promote_fences_the_old_primary_which_rejoins_as_a_replica(kms, settings, capsys):
    from api.cli import main

    md = mrk(kms)
    kms.call("ReplicateKey", KeyId=md["KeyId"], ReplicaRegion=REPLICA)
    kms.call("ReplicateKey", KeyId=md["KeyId"], ReplicaRegion=THIRD)
    kms.service.replicate()
    old_blob = kms.call("Encrypt", KeyId=md["KeyId"], Plaintext=b"before the outage")["CiphertextBlob"]
    # the primary's Region is "gone": promote the west replica from the command line
    args = ["promote", md["KeyId"], "--region", REPLICA, "--data-dir", settings.data_dir]
    if settings.store:
        args += ["--store", settings.store]
    kms.close()
    assert main(args) == 0
    assert "is the primary now (epoch 1)" in capsys.readouterr().out
    kms.restart()
    # the new primary's Region records the promotion, naming the events it wrote
    (promoted,) = [orjson.loads(r) for _, r in kms.service.region(REPLICA).audit.store.query(
        AuditQuery(event_name="UpdatePrimaryRegion", limit=10))]
    key_arn = f"arn:aws:kms:{REPLICA}:{md['Arn'].split(':')[4]}:key/{md['KeyId']}"
    assert (promoted["userIdentity"]["invokedBy"], promoted["requestParameters"],
            [r["ARN"] for r in promoted["resources"]]) == (
        "keyledger promote", {"keyId": key_arn, "primaryRegion": REPLICA}, [key_arn])
    assert [e["aggregateId"] for e in promoted["additionalEventData"]["ledgerEvents"]] == [
        md["KeyId"]]
    for name in (PRIMARY, REPLICA, THIRD):
        kms.service.region(name)
    west, third = kms.context(REPLICA), kms.context(THIRD)
    kms.call("RotateKeyOnDemand", west, KeyId=md["KeyId"])  # the new primary rotates for the set
    new_blob = kms.call("Encrypt", west, KeyId=md["KeyId"], Plaintext=b"after")["CiphertextBlob"]
    kms.service.replicate()  # the old primary comes back and reads the newer epoch
    old = kms.call("DescribeKey", KeyId=md["KeyId"])["KeyMetadata"]["MultiRegionConfiguration"]
    assert old["MultiRegionKeyType"] == "REPLICA" and old["PrimaryKey"]["Region"] == REPLICA
    assert kms.call("Decrypt", CiphertextBlob=new_blob)["Plaintext"] == b"after"
    assert kms.call("Decrypt", third, CiphertextBlob=new_blob)["Plaintext"] == b"after"
    assert kms.call("Decrypt", west, CiphertextBlob=old_blob)["Plaintext"] == b"before the outage"
    with pytest.raises(errors.UnsupportedOperationException):  # fenced: no change of its own
        kms.call("RotateKeyOnDemand", KeyId=md["KeyId"])
    third_md = kms.call("DescribeKey", third, KeyId=md["KeyId"])["KeyMetadata"]
    assert third_md["MultiRegionConfiguration"]["PrimaryKey"]["Region"] == REPLICA


def _refuse_audit_writes(settings, region: str) -> None:
    """The Region's audit store refuses every insert, and its spool cannot be made."""
    import sqlite3

    import psycopg

    from infrastructure.persistence import StoreConfig, schema_name

    config = StoreConfig(settings.data_path, settings.store)
    if settings.store:
        with psycopg.connect(settings.store, autocommit=True) as conn:
            conn.execute(f"ALTER TABLE {schema_name(region)}.keyledger_audit "
                         "ADD CONSTRAINT refuse CHECK (false) NOT VALID")
    else:
        db = sqlite3.connect(config.region_folder(region) / "audit.db", isolation_level=None)
        db.execute("CREATE TRIGGER refuse BEFORE INSERT ON keyledger_audit BEGIN "
                   "SELECT RAISE(ABORT, 'refused'); END")
        db.close()
    (config.region_folder(region) / "audit-spool.jsonl").mkdir(parents=True)  # not a file


def _allow_audit_writes(settings, region: str) -> None:
    """_refuse_audit_writes undone."""
    import sqlite3

    import psycopg

    from infrastructure.persistence import StoreConfig, schema_name

    config = StoreConfig(settings.data_path, settings.store)
    if settings.store:
        with psycopg.connect(settings.store, autocommit=True) as conn:
            conn.execute(f"ALTER TABLE {schema_name(region)}.keyledger_audit DROP CONSTRAINT refuse")
    else:
        db = sqlite3.connect(config.region_folder(region) / "audit.db", isolation_level=None)
        db.execute("DROP TRIGGER refuse")
        db.close()
    (config.region_folder(region) / "audit-spool.jsonl").rmdir()


def test_promote_whose_record_cannot_be_kept_says_so_and_fails(kms, settings, capsys):
    from api.cli import main

    md = mrk(kms)
    kms.call("ReplicateKey", KeyId=md["KeyId"], ReplicaRegion=REPLICA)
    kms.service.replicate()
    kms.close()
    _refuse_audit_writes(settings, REPLICA)
    args = ["promote", md["KeyId"], "--region", REPLICA, "--data-dir", settings.data_dir]
    assert main(args + (["--store", settings.store] if settings.store else [])) == 1
    out, err = capsys.readouterr()
    assert "is the primary now (epoch 1)" in out  # done all the same
    assert err.endswith("keyledger promote: promoted, but its audit record could not be kept "
                        "(neither the audit store nor the spool took it); the record is in the "
                        "log above\n")
    # its note in the ledger keeps it: once the store takes records again, maintenance stores it
    _allow_audit_writes(settings, REPLICA)
    again = Harness(settings)
    try:
        again.service.scheduler.record_grace = 0.0
        region = again.service.region(REPLICA)
        again.service.scheduler.run([region])
        records = [orjson.loads(r) for _, r in region.audit.store.query(AuditQuery(limit=100))
                   if orjson.loads(r)["eventName"] == "UpdatePrimaryRegion"]
        (record,) = records
        assert (record["userIdentity"]["invokedBy"], record["requestParameters"]) == (
            "keyledger promote", {"keyId": md["Arn"].replace(PRIMARY, REPLICA),
                                  "primaryRegion": REPLICA})
        again.service.scheduler.run([region])  # (read once: stored once)
        assert len(region.audit.store.query(AuditQuery(event_name="UpdatePrimaryRegion",
                                                       limit=100))) == 1
    finally:
        again.close()


def test_imported_material_multi_region_keys_take_the_same_material_in_every_region(kms):
    """AWS: replicas of a primary with imported material start PendingImport and need the same
    material imported into each (the material id is the same in every Region)."""
    md = mrk(kms, Origin="EXTERNAL")
    assert md["KeyState"] == "PendingImport"
    material = os.urandom(32)
    primary_material = import_into(kms, kms.context(), md["KeyId"], material)
    kms.call("ReplicateKey", KeyId=md["KeyId"], ReplicaRegion=REPLICA)
    west = kms.context(REPLICA)
    replica = kms.call("DescribeKey", west, KeyId=md["KeyId"])["KeyMetadata"]
    assert replica["KeyState"] == "PendingImport" and replica["Origin"] == "EXTERNAL"
    assert import_into(kms, west, md["KeyId"], material) == primary_material
    blob = kms.call("Encrypt", KeyId=md["KeyId"], Plaintext=b"imported")["CiphertextBlob"]
    assert kms.call("Decrypt", west, CiphertextBlob=blob)["Plaintext"] == b"imported"
    # (imported material is never shared: the replica applying the set's changes without it
    # asks nothing of the primary, pass after pass)
    kms.service.replicate()
    events = [len(kms.service.key_history(r, md["KeyId"])) for r in (PRIMARY, REPLICA)]
    for _ in range(3):
        kms.service.replicate()
    assert [len(kms.service.key_history(r, md["KeyId"])) for r in (PRIMARY, REPLICA)] == events


def test_replicating_again_into_a_region_whose_replica_was_deleted_recreates_it(kms):
    md = mrk(kms)
    old_blob = kms.call("Encrypt", KeyId=md["KeyId"], Plaintext=b"old")["CiphertextBlob"]
    kms.call("ReplicateKey", KeyId=md["KeyId"], ReplicaRegion=REPLICA, Description="first")
    west = kms.context(REPLICA)
    kms.call("TagResource", west, KeyId=md["KeyId"], Tags=[{"TagKey": "gone", "TagValue": "soon"}])
    kms.call("ScheduleKeyDeletion", west, KeyId=md["KeyId"], PendingWindowInDays=7)
    kms.advance(days=8)  # the replica is deleted and shredded in its Region
    kms.service.replicate()  # the primary drops it from the set
    with pytest.raises(errors.NotFoundException):
        kms.call("DescribeKey", west, KeyId=md["KeyId"])
    kms.call("RotateKeyOnDemand", KeyId=md["KeyId"])
    answer = kms.call("ReplicateKey", KeyId=md["KeyId"], ReplicaRegion=REPLICA, Description="again")
    assert answer["ReplicaKeyMetadata"]["KeyId"] == md["KeyId"]  # the same key id
    replica = kms.call("DescribeKey", west, KeyId=md["KeyId"])["KeyMetadata"]
    assert (replica["KeyState"], replica["Description"]) == ("Enabled", "again")
    assert kms.call("ListResourceTags", west, KeyId=md["KeyId"])["Tags"] == []  # nothing old
    assert kms.call("Decrypt", west, CiphertextBlob=old_blob)["Plaintext"] == b"old"  # every version
    assert md["KeyId"] in [k["KeyId"] for k in kms.call("ListKeys", west)["Keys"]]


@pytest.mark.parametrize("spec, usage", [("RSA_2048", "SIGN_VERIFY"), ("ECC_NIST_P256", "SIGN_VERIFY"),
                                         ("HMAC_256", "GENERATE_VERIFY_MAC"),
                                         ("RSA_3072", "ENCRYPT_DECRYPT")])
def test_asymmetric_and_hmac_multi_region_keys_share_their_key_pair_or_secret(kms, spec, usage):
    md = mrk(kms, KeySpec=spec, KeyUsage=usage)
    kms.call("ReplicateKey", KeyId=md["KeyId"], ReplicaRegion=REPLICA)
    west = kms.context(REPLICA)
    replica = kms.call("DescribeKey", west, KeyId=md["KeyId"])["KeyMetadata"]
    assert (replica["KeyState"], replica["KeySpec"], replica["KeyUsage"]) == ("Enabled", spec, usage)
    if usage == "GENERATE_VERIFY_MAC":
        mac = kms.call("GenerateMac", KeyId=md["KeyId"], Message=b"m", MacAlgorithm="HMAC_SHA_256")["Mac"]
        assert kms.call("VerifyMac", west, KeyId=md["KeyId"], Message=b"m", Mac=mac,
                        MacAlgorithm="HMAC_SHA_256")["MacValid"] is True
        return
    # "the key pair is copied to every replica; GetPublicKey from any related key returns the same"
    public = kms.call("GetPublicKey", KeyId=md["KeyId"])["PublicKey"]
    assert kms.call("GetPublicKey", west, KeyId=md["KeyId"])["PublicKey"] == public
    if usage == "SIGN_VERIFY":
        algorithm = "RSASSA_PSS_SHA_256" if spec.startswith("RSA") else "ECDSA_SHA_256"
        signature = kms.call("Sign", KeyId=md["KeyId"], Message=b"m", SigningAlgorithm=algorithm)["Signature"]
        assert kms.call("Verify", west, KeyId=md["KeyId"], Message=b"m", Signature=signature,
                        SigningAlgorithm=algorithm)["SignatureValid"] is True
    else:
        blob = kms.call("Encrypt", KeyId=md["KeyId"], Plaintext=b"m",
                        EncryptionAlgorithm="RSAES_OAEP_SHA_256")["CiphertextBlob"]
        assert kms.call("Decrypt", west, KeyId=md["KeyId"], CiphertextBlob=blob,
                        EncryptionAlgorithm="RSAES_OAEP_SHA_256")["Plaintext"] == b"m"


def test_new_imported_material_goes_into_the_primary_then_every_replica_then_rotates(kms):
    """AWS (ImportKeyMaterial): new material is imported into the primary (NEW_KEY_MATERIAL),
    then into each replica (EXISTING_KEY_MATERIAL, the same material id); the primary's copy is
    PENDING_MULTI_REGION_IMPORT_AND_ROTATION until every replica has it; then RotateKeyOnDemand
    on the primary makes it current in the whole set."""
    east, west = kms.context(), kms.context(REPLICA)
    md = mrk(kms, Origin="EXTERNAL")
    first = os.urandom(32)
    import_into(kms, east, md["KeyId"], first)
    kms.call("ReplicateKey", KeyId=md["KeyId"], ReplicaRegion=REPLICA)
    import_into(kms, west, md["KeyId"], first)
    kms.service.replicate()

    second = os.urandom(32)
    new_id = import_into(kms, east, md["KeyId"], second, ImportType="NEW_KEY_MATERIAL")
    kms.service.replicate()

    def state(ctx):
        rows = kms.call("ListKeyRotations", ctx, KeyId=md["KeyId"],
                        IncludeKeyMaterial="ALL_KEY_MATERIAL")["Rotations"]
        return {r["KeyMaterialId"]: r["KeyMaterialState"] for r in rows}[new_id]

    assert state(east) == "PENDING_MULTI_REGION_IMPORT_AND_ROTATION"
    with pytest.raises(errors.KMSInvalidStateException, match="not yet imported into every replica"):
        kms.call("RotateKeyOnDemand", KeyId=md["KeyId"])
    with pytest.raises(errors.UnsupportedOperationException):  # new material: primary first
        import_into(kms, west, md["KeyId"], os.urandom(32), ImportType="NEW_KEY_MATERIAL")
    assert import_into(kms, west, md["KeyId"], second, ImportType="EXISTING_KEY_MATERIAL",
                       KeyMaterialId=new_id) == new_id
    kms.service.replicate()  # the primary reads that its replica has it
    assert state(east) == "PENDING_ROTATION"
    kms.call("RotateKeyOnDemand", KeyId=md["KeyId"])
    kms.service.replicate()
    for ctx in (east, west):
        assert kms.call("DescribeKey", ctx, KeyId=md["KeyId"])["KeyMetadata"][
            "CurrentKeyMaterialId"] == new_id
    blob = kms.call("Encrypt", west, KeyId=md["KeyId"], Plaintext=b"new")["CiphertextBlob"]
    assert kms.call("Decrypt", CiphertextBlob=blob)["Plaintext"] == b"new"


def _out_of_reach(*args):
    raise ConnectionError("the replica Region's node is down")


def test_material_a_down_replica_could_not_take_is_shared_once_it_is_back(kms, monkeypatch):
    """ReplicateKey and a rotation while the replica Region's node is down (its transport key
    out of reach; it applies nothing), then the primary's node restarts: the replica waits,
    creating, not pending import (its origin is AWS_KMS), and once its node is back the
    primary reads it apply the changes without the material and shares it; ciphertext made
    meanwhile decrypts there."""
    md = mrk(kms)
    west = kms.context(REPLICA)
    with monkeypatch.context() as down:
        down.setattr(kms.service.region(REPLICA).hierarchy, "transport_public_key", _out_of_reach)
        down.setattr(Replicator, "follow", lambda self: 0)  # (nothing moves between them)
        kms.call("ReplicateKey", KeyId=md["KeyId"], ReplicaRegion=REPLICA)
        kms.call("RotateKeyOnDemand", KeyId=md["KeyId"])
        blob = kms.call("Encrypt", KeyId=md["KeyId"], Plaintext=b"made while west was down")[
            "CiphertextBlob"]
    kms.restart()  # (what the primary's node knew in memory is gone)
    for name in (PRIMARY, REPLICA):
        kms.service.region(name)
    kms.service.replicate(REPLICA)  # west is back: it creates the replica, without material
    assert kms.call("DescribeKey", west, KeyId=md["KeyId"])["KeyMetadata"][
        "KeyState"] == "Creating"
    kms.service.replicate()  # east reads west apply it, and shares; west takes it
    kms.service.replicate()
    replica = kms.call("DescribeKey", west, KeyId=md["KeyId"])["KeyMetadata"]
    primary = kms.call("DescribeKey", KeyId=md["KeyId"])["KeyMetadata"]
    assert replica["KeyState"] == "Enabled"
    assert replica["CurrentKeyMaterialId"] == primary["CurrentKeyMaterialId"]
    assert kms.call("Decrypt", west, CiphertextBlob=blob)["Plaintext"] == b"made while west was down"
    assert len(kms.call("ListKeyRotations", west, KeyId=md["KeyId"])["Rotations"]) == 1
    events = len(kms.service.key_history(PRIMARY, md["KeyId"]))
    kms.service.replicate()  # (and nothing more is written once it has it all)
    kms.service.replicate()
    assert len(kms.service.key_history(PRIMARY, md["KeyId"])) == events


def test_a_primary_pending_replica_deletion_that_rejoins_as_a_replica_is_pending_deletion(
        kms, settings):
    """Its deletion was asked for: demoted, it is a replica pending deletion in its window from
    then (a replica waits for no other), not a replica pending replica deletion for good."""
    from api.cli import main

    md = mrk(kms)
    kms.call("ReplicateKey", KeyId=md["KeyId"], ReplicaRegion=REPLICA)
    kms.service.replicate()
    kms.call("ScheduleKeyDeletion", KeyId=md["KeyId"], PendingWindowInDays=9)
    args = ["promote", md["KeyId"], "--region", REPLICA, "--data-dir", settings.data_dir]
    if settings.store:
        args += ["--store", settings.store]
    kms.close()
    assert main(args) == 0
    kms.restart()
    for name in (PRIMARY, REPLICA):
        kms.service.region(name)
    kms.service.replicate()  # the old primary comes back and reads the newer epoch
    old = kms.call("DescribeKey", KeyId=md["KeyId"])["KeyMetadata"]
    assert (old["MultiRegionConfiguration"]["MultiRegionKeyType"], old["KeyState"]) == (
        "REPLICA", "PendingDeletion")
    left = old["DeletionDate"] - datetime.now(UTC)
    assert timedelta(days=9) - timedelta(minutes=1) < left <= timedelta(days=9)


def test_material_is_not_shared_while_the_replicas_transport_key_is_out_of_reach(
        kms, monkeypatch):
    """The replica applied a change without its material, but its transport key cannot be had
    (yet): nothing is written (no change answering a change, pass after pass); its next change
    asks again."""
    md = mrk(kms)
    with monkeypatch.context() as down:
        down.setattr(kms.service.region(REPLICA).hierarchy, "transport_public_key", _out_of_reach)
        kms.call("ReplicateKey", KeyId=md["KeyId"], ReplicaRegion=REPLICA)
        for _ in range(3):
            kms.service.replicate()
        events = len(kms.service.key_history(PRIMARY, md["KeyId"]))
        kms.service.replicate()
        assert len(kms.service.key_history(PRIMARY, md["KeyId"])) == events
    kms.call("UpdateKeyDescription", KeyId=md["KeyId"], Description="any change")  # (none of
    kms.call("EnableKeyRotation", KeyId=md["KeyId"])  # the set: this one is)
    for _ in range(3):
        kms.service.replicate()
    assert kms.call("DescribeKey", kms.context(REPLICA), KeyId=md["KeyId"])["KeyMetadata"][
        "KeyState"] == "Enabled"


def test_an_on_demand_rotation_waiting_for_a_replica_is_in_progress(kms, monkeypatch):
    """GetKeyRotationStatus names an in-progress on-demand rotation (OnDemandRotationStartDate,
    "Once the on-demand rotation is complete, KMS removes this field"), and the key's state
    at that time says so too."""
    from application.forensics import Forensics

    md = mrk(kms)
    kms.call("ReplicateKey", KeyId=md["KeyId"], ReplicaRegion=REPLICA)
    kms.service.replicate()
    assert "OnDemandRotationStartDate" not in kms.call("GetKeyRotationStatus", KeyId=md["KeyId"])
    with monkeypatch.context() as down:
        down.setattr(Replicator, "follow", lambda self: 0)  # (the replica's node is down)
        kms.call("RotateKeyOnDemand", KeyId=md["KeyId"])
        (rotation,) = kms.call("ListKeyRotations", KeyId=md["KeyId"])["Rotations"]
        status = kms.call("GetKeyRotationStatus", KeyId=md["KeyId"])
        assert status["OnDemandRotationStartDate"] == rotation["RotationDate"]
        state = Forensics(kms.service, PRIMARY).key_state(PRIMARY, md["KeyId"], datetime.now(UTC))
        assert state["KeyRotationStatus"]["OnDemandRotationStartDate"] == rotation["RotationDate"]
    kms.service.replicate()  # the replica takes the material: the rotation completes
    assert "OnDemandRotationStartDate" not in kms.call("GetKeyRotationStatus", KeyId=md["KeyId"])
    assert kms.call("DescribeKey", KeyId=md["KeyId"])["KeyMetadata"][
        "CurrentKeyMaterialId"] == rotation["KeyMaterialId"]


def test_a_replica_made_while_its_region_was_out_of_reach_gets_the_sets_material_from_a_new_primary(
        kms, monkeypatch):
    """ReplicateKey into a Region whose node is down, then UpdatePrimaryRegion to another
    replica before that node is back: the new primary does not know what that replica holds
    (nothing), and sends it every material version once it applies a change of the set; the
    ciphertext of before decrypts there (found in a review: it stayed Creating for good, and
    after a rotation lacked every older version)."""
    md = mrk(kms)
    west, third = kms.context(REPLICA), kms.context(THIRD)
    before = kms.call("Encrypt", KeyId=md["KeyId"], Plaintext=b"before")["CiphertextBlob"]
    kms.call("ReplicateKey", KeyId=md["KeyId"], ReplicaRegion=REPLICA)
    kms.service.replicate()
    follow = Replicator.follow
    with monkeypatch.context() as down:
        down.setattr(kms.service.region(THIRD).hierarchy, "transport_public_key", _out_of_reach)
        down.setattr(Replicator, "follow",  # (the third Region's node applies nothing)
                     lambda self: 0 if self.target.name == THIRD else follow(self))
        kms.call("ReplicateKey", KeyId=md["KeyId"], ReplicaRegion=THIRD)
        kms.call("UpdatePrimaryRegion", KeyId=md["KeyId"], PrimaryRegion=REPLICA)
        for _ in range(3):
            kms.service.replicate()
        assert kms.call("DescribeKey", west, KeyId=md["KeyId"])["KeyMetadata"][
            "MultiRegionConfiguration"]["MultiRegionKeyType"] == "PRIMARY"
    for _ in range(4):  # its node is back: it applies the set's changes, and gets the material
        kms.service.replicate()
    replica = kms.call("DescribeKey", third, KeyId=md["KeyId"])["KeyMetadata"]
    assert (replica["KeyState"], replica["CurrentKeyMaterialId"]) == (
        "Enabled", md["CurrentKeyMaterialId"])
    assert kms.call("Decrypt", third, CiphertextBlob=before)["Plaintext"] == b"before"
    kms.call("RotateKeyOnDemand", west, KeyId=md["KeyId"])  # and the set goes on as one
    for _ in range(3):
        kms.service.replicate()
    after = kms.call("Encrypt", west, KeyId=md["KeyId"], Plaintext=b"after")["CiphertextBlob"]
    for ctx in (kms.context(), west, third):
        assert kms.call("Decrypt", ctx, CiphertextBlob=before)["Plaintext"] == b"before"
        assert kms.call("Decrypt", ctx, CiphertextBlob=after)["Plaintext"] == b"after"


def _promote(kms, settings, key_id: str, region: str) -> int:
    from api.cli import main

    args = ["promote", key_id, "--region", region, "--data-dir", settings.data_dir]
    if settings.store:
        args += ["--store", settings.store]
    return main(args)


def test_promote_refuses_a_replica_pending_deletion(kms, settings, capsys):
    """The set's primary would be deleted under its replicas (AWS never deletes a primary
    that has replicas): the operator cancels the deletion first (found in a review)."""
    md = mrk(kms)
    west = kms.context(REPLICA)
    kms.call("ReplicateKey", KeyId=md["KeyId"], ReplicaRegion=REPLICA)
    kms.service.replicate()
    kms.call("ScheduleKeyDeletion", west, KeyId=md["KeyId"], PendingWindowInDays=7)
    kms.close()
    assert _promote(kms, settings, md["KeyId"], REPLICA) == 1
    west_arn = md["Arn"].replace(PRIMARY, REPLICA)
    assert capsys.readouterr().err == (
        f"KMSInvalidStateException: {west_arn} is pending deletion: a primary with replicas is "
        f"never deleted; cancel its deletion (CancelKeyDeletion in {REPLICA}) before it is "
        "promoted.\n")
    kms.restart()
    kms.call("CancelKeyDeletion", west, KeyId=md["KeyId"])
    kms.close()
    assert _promote(kms, settings, md["KeyId"], REPLICA) == 0
    kms.restart()
    promoted = kms.call("DescribeKey", west, KeyId=md["KeyId"])["KeyMetadata"]
    assert promoted["MultiRegionConfiguration"]["MultiRegionKeyType"] == "PRIMARY"


def test_promote_refuses_a_replica_that_holds_no_material_yet(kms, settings, capsys, monkeypatch):
    """A replica still Creating (made while its Region was out of reach) would be a primary
    that can never encrypt, rotate or share: refused, nothing written (found in a review)."""
    md = mrk(kms)
    with monkeypatch.context() as down:
        down.setattr(kms.service.region(REPLICA).hierarchy, "transport_public_key", _out_of_reach)
        kms.call("ReplicateKey", KeyId=md["KeyId"], ReplicaRegion=REPLICA)
        kms.service.replicate(REPLICA)
    west = kms.context(REPLICA)
    assert kms.call("DescribeKey", west, KeyId=md["KeyId"])["KeyMetadata"]["KeyState"] == "Creating"
    events = len(kms.service.key_history(REPLICA, md["KeyId"]))
    kms.close()
    assert _promote(kms, settings, md["KeyId"], REPLICA) == 1
    west_arn = md["Arn"].replace(PRIMARY, REPLICA)
    assert capsys.readouterr().err == (
        f"KMSInvalidStateException: {west_arn} is Creating: it holds none of the set's key "
        "material yet, and a primary without it could never be used; promote a replica that "
        "holds it.\n")
    kms.restart()
    assert len(kms.service.key_history(REPLICA, md["KeyId"])) == events


def test_a_replicas_first_import_takes_only_the_sets_material(kms):
    """AWS: the same material is imported into every key of the set; new material never goes
    into a replica. A replica's first import of other material was taken as new (found in a
    review): refused now, and nothing is recorded."""
    md = mrk(kms, Origin="EXTERNAL")
    import_into(kms, kms.context(), md["KeyId"], os.urandom(32))
    kms.call("ReplicateKey", KeyId=md["KeyId"], ReplicaRegion=REPLICA)
    west = kms.context(REPLICA)
    for import_type in ({}, {"ImportType": "NEW_KEY_MATERIAL"}):
        with pytest.raises(errors.IncorrectKeyMaterialException):
            import_into(kms, west, md["KeyId"], os.urandom(32), **import_type)
    assert "KeyMaterialImported" not in [
        event["Type"] for event in kms.service.key_history(REPLICA, md["KeyId"])]
    assert kms.call("DescribeKey", west, KeyId=md["KeyId"])["KeyMetadata"][
        "KeyState"] == "PendingImport"
    assert kms.call("ListKeyRotations", west, KeyId=md["KeyId"],
                    IncludeKeyMaterial="ALL_KEY_MATERIAL")["Rotations"] == []
