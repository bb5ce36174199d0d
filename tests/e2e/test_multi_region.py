"""Multi-Region keys through boto3 against the real server: two Regions of one process, the
replica fed by the primary Region's ledger stream (SQLite and PostgreSQL)."""

from __future__ import annotations

import time

import pytest
from botocore.exceptions import ClientError

from tests.e2e.conftest import until

EAST, WEST = "us-east-1", "us-west-2"


@pytest.fixture(scope="module")
def regions(store_server):
    return store_server.kms(EAST), store_server.kms(WEST)


def test_replicate_rotate_and_decrypt_across_regions(regions):
    east, west = regions
    primary = east.create_key(MultiRegion=True, Description="payments")["KeyMetadata"]
    key_id = primary["KeyId"]
    assert key_id.startswith("mrk-") and primary["MultiRegion"] is True
    before = east.encrypt(KeyId=key_id, Plaintext=b"made before the replica")["CiphertextBlob"]

    answer = east.replicate_key(KeyId=key_id, ReplicaRegion=WEST, Description="payments west")
    assert answer["ReplicaKeyMetadata"]["KeyState"] == "Creating"
    assert answer["ReplicaKeyMetadata"]["MultiRegionConfiguration"]["MultiRegionKeyType"] == "REPLICA"
    def enabled_replica():
        metadata = west.describe_key(KeyId=key_id)["KeyMetadata"]
        return metadata if metadata["KeyState"] == "Enabled" else None

    replica = until(enabled_replica)
    assert replica["Arn"] == primary["Arn"].replace(EAST, WEST)
    assert replica["MultiRegionConfiguration"]["PrimaryKey"] == {"Arn": primary["Arn"], "Region": EAST}
    assert east.describe_key(KeyId=key_id)["KeyMetadata"]["MultiRegionConfiguration"][
        "ReplicaKeys"] == [{"Arn": replica["Arn"], "Region": WEST}]

    assert west.decrypt(CiphertextBlob=before)["Plaintext"] == b"made before the replica"
    west_blob = west.encrypt(KeyId=key_id, Plaintext=b"made in the west")["CiphertextBlob"]
    decrypted = east.decrypt(CiphertextBlob=west_blob)
    assert decrypted["Plaintext"] == b"made in the west" and decrypted["KeyId"] == primary["Arn"]

    # rotate the primary: as on AWS, the set encrypts with the new material once every replica
    # holds it (within a second here), so what either side encrypts decrypts on the other at once
    east.rotate_key_on_demand(KeyId=key_id)
    rotated = east.list_key_rotations(KeyId=key_id)["Rotations"][-1]["KeyMaterialId"]
    after = east.encrypt(KeyId=key_id, Plaintext=b"meanwhile")["CiphertextBlob"]
    assert west.decrypt(CiphertextBlob=after)["Plaintext"] == b"meanwhile"
    started = time.monotonic()

    def current(client) -> str:
        return client.describe_key(KeyId=key_id)["KeyMetadata"]["CurrentKeyMaterialId"]

    until(lambda: current(east) == current(west) == rotated)
    assert time.monotonic() - started < 1.0
    after = east.encrypt(KeyId=key_id, Plaintext=b"new material")["CiphertextBlob"]
    assert west.decrypt(CiphertextBlob=after)["Plaintext"] == b"new material"
    assert [r["RotationType"] for r in west.list_key_rotations(KeyId=key_id)["Rotations"]] == [
        "ON_DEMAND"]


def test_replica_refusals_as_aws(regions):
    east, west = regions
    key_id = east.create_key(MultiRegion=True)["KeyMetadata"]["KeyId"]
    east.replicate_key(KeyId=key_id, ReplicaRegion=WEST)
    with pytest.raises(ClientError) as again:
        east.replicate_key(KeyId=key_id, ReplicaRegion=WEST)
    assert again.value.response["Error"]["Code"] == "AlreadyExistsException"
    until(lambda: west.describe_key(KeyId=key_id)["KeyMetadata"]["KeyState"] == "Enabled")
    with pytest.raises(ClientError) as from_replica:
        west.replicate_key(KeyId=key_id, ReplicaRegion="eu-west-1")
    assert from_replica.value.response["Error"]["Code"] == "UnsupportedOperationException"
    single = east.create_key()["KeyMetadata"]["KeyId"]
    with pytest.raises(ClientError) as not_mrk:
        east.replicate_key(KeyId=single, ReplicaRegion=WEST)
    assert not_mrk.value.response["Error"]["Code"] == "UnsupportedOperationException"


def test_update_primary_region_with_boto3(regions):
    east, west = regions
    key_id = east.create_key(MultiRegion=True)["KeyMetadata"]["KeyId"]
    east.replicate_key(KeyId=key_id, ReplicaRegion=WEST)
    until(lambda: west.describe_key(KeyId=key_id)["KeyMetadata"]["KeyState"] == "Enabled")
    east.update_primary_region(KeyId=key_id, PrimaryRegion=WEST)

    def swapped():
        old = east.describe_key(KeyId=key_id)["KeyMetadata"]
        new = west.describe_key(KeyId=key_id)["KeyMetadata"]
        return (old["MultiRegionConfiguration"]["MultiRegionKeyType"] == "REPLICA"
                and old["KeyState"] == "Enabled"
                and new["MultiRegionConfiguration"]["MultiRegionKeyType"] == "PRIMARY")

    until(swapped)
    west.rotate_key_on_demand(KeyId=key_id)
    blob = west.encrypt(KeyId=key_id, Plaintext=b"new primary")["CiphertextBlob"]
    assert until(lambda: east.decrypt(CiphertextBlob=blob)["Plaintext"]) == b"new primary"


def test_the_replica_region_records_what_it_applied(store_server, regions):
    """ReplicateKey: ReplicateKey in the primary's Region, CreateKey in the replica's (same
    requestID); the shared properties reaching the replica: SynchronizeMultiRegionKey there
    (resources: the primary key); UpdatePrimaryRegion: an entry in each Region, the new
    primary's without resources (DG ct-replicate-key, ct-synchronize-multi-region-key,
    ct-update-primary-region)."""
    east, west = regions
    primary = east.create_key(MultiRegion=True)["KeyMetadata"]
    key_id, account = primary["KeyId"], primary["AWSAccountId"]
    replicated = east.replicate_key(KeyId=key_id, ReplicaRegion=WEST)
    until(lambda: west.describe_key(KeyId=key_id)["KeyMetadata"]["KeyState"] == "Enabled")

    def west_records(name: str) -> list[dict]:
        found = store_server.ledger_get(
            f"/ledger/v1/audit?region={WEST}&key_id={key_id}&event_name={name}&limit=10", WEST)
        return found.json()["Records"]

    service = {"accountId": account, "invokedBy": "kms.amazonaws.com"}
    created = until(lambda: west_records("CreateKey"))
    assert [(r["requestID"], r["userIdentity"], r["eventType"], r["resources"][0]["ARN"])
            for r in created] == [(replicated["ResponseMetadata"]["RequestId"], service,
                                   "AwsApiCall", primary["Arn"].replace(EAST, WEST))]
    synchronized = until(lambda: west_records("SynchronizeMultiRegionKey"))
    assert synchronized[0]["userIdentity"] == {"accountId": account, "invokedBy": "AWS Internal"}
    assert [r["ARN"] for r in synchronized[0]["resources"]] == [primary["Arn"]]
    assert (synchronized[0]["requestParameters"], synchronized[0]["responseElements"]) == (None, None)

    updated = east.update_primary_region(KeyId=key_id, PrimaryRegion=WEST)
    entries = until(lambda: west_records("UpdatePrimaryRegion"))
    west_arn = primary["Arn"].replace(EAST, WEST)
    assert [(r["requestID"], r["userIdentity"], r["requestParameters"], "resources" in r)
            for r in entries] == [(updated["ResponseMetadata"]["RequestId"], service,
                                   {"keyId": west_arn, "primaryRegion": WEST}, False)]
