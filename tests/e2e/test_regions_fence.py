"""A primary's node that restarts while cut off from its replica's node (two `keyledger serve`
processes, us-east-1 reading us-west-2 through a link the test cuts): the replica was promoted
while the old primary's node was down, and the old primary cannot know it yet. It serves what
needs no agreement (Encrypt, Decrypt), but changes nothing the set shares until it has read
the replica's ledger since it started: no second primary (docs/regions.md, "Disaster
recovery"). Once the link heals it reads the announcement and rejoins as a replica."""

from __future__ import annotations

import subprocess
import sys

import pytest
from botocore.exceptions import ClientError

from tests.e2e.conftest import PROJECT_ROOT, free_port, root_identities, until
from tests.e2e.test_regions_drill import Link

EAST, WEST = "us-east-1", "us-west-2"
NODE_KEY = ("AKIAE2EFENCE00000001", "e2e/fence/node/secret/00000000000000001")
UNREACHED = f"The {WEST} Region of this deployment could not be reached."
DAY = 86400


@pytest.fixture(scope="module")
def fence(server_factory, store):
    identities = root_identities()
    identities["nodes"] = {"access_keys": [
        {"access_key_id": NODE_KEY[0], "secret_access_key": NODE_KEY[1]}]}
    east_port, west_port = free_port(), free_port()
    link = Link(west_port)  # the primary's node reads the replica's feed through the link
    east = server_factory("fence-east", start=False, port=east_port, store=store,
                          identities=identities,
                          extra_args=("--regions", EAST,
                                      "--peers", f"{WEST}=http://127.0.0.1:{link.port}"))
    west = server_factory("fence-west", start=False, port=west_port, store=store,
                          identities=identities,
                          extra_args=("--regions", WEST, "--default-region", WEST,
                                      "--peers", f"{EAST}=http://127.0.0.1:{east_port}"))
    east.start()
    west.start()
    yield east, west, link
    link.close()


def _current(client, key_id: str) -> str:
    return client.describe_key(KeyId=key_id)["KeyMetadata"]["CurrentKeyMaterialId"]


def _refused(call, **params) -> dict:
    with pytest.raises(ClientError) as refused:
        call(**params)
    return refused.value.response


def test_a_primary_restarted_while_cut_off_changes_nothing_shared_until_it_reads_the_replica(
        fence):
    east, west, link = fence
    e, w = east.kms(EAST), west.kms(WEST)
    key_id = e.create_key(MultiRegion=True, Description="fence")["KeyMetadata"]["KeyId"]
    e.enable_key_rotation(KeyId=key_id, RotationPeriodInDays=90)
    e.replicate_key(KeyId=key_id, ReplicaRegion=WEST)
    until(lambda: w.describe_key(KeyId=key_id)["KeyMetadata"]["KeyState"] == "Enabled")
    e.rotate_key_on_demand(KeyId=key_id)  # the primary's node has read the replica's: allowed
    rotations = e.list_key_rotations(KeyId=key_id)["Rotations"]
    newest = rotations[-1]["KeyMaterialId"]  # current once the replica holds it
    until(lambda: _current(e, key_id) == _current(w, key_id) == newest)
    rotations = e.list_key_rotations(KeyId=key_id)["Rotations"]

    # The primary's node dies; the replica is promoted beside its running node and rotates.
    east.kill()
    command = [sys.executable, "-m", "api", "promote", key_id, "--region", WEST,
               "--data-dir", str(west.data_dir)]
    if west.store:
        command += ["--store", west.store]
    promoted = subprocess.run(command, cwd=PROJECT_ROOT, capture_output=True, text=True,
                              timeout=60)
    assert promoted.returncode == 0, promoted.stderr
    until(lambda: w.describe_key(KeyId=key_id)["KeyMetadata"]["MultiRegionConfiguration"][
        "MultiRegionKeyType"] == "PRIMARY")
    w.rotate_key_on_demand(KeyId=key_id)

    # The old primary's node comes back cut off from the new primary: it cannot know.
    link.cut()
    east.restart(crash=True)
    e = east.kms(EAST)
    metadata = e.describe_key(KeyId=key_id)["KeyMetadata"]
    assert metadata["MultiRegionConfiguration"]["MultiRegionKeyType"] == "PRIMARY"
    blob = e.encrypt(KeyId=key_id, Plaintext=b"while cut off")["CiphertextBlob"]
    assert e.decrypt(CiphertextBlob=blob)["Plaintext"] == b"while cut off"
    for call, params in ((e.rotate_key_on_demand, {}),
                         (e.disable_key_rotation, {}),
                         (e.enable_key_rotation, {"RotationPeriodInDays": 180}),
                         (e.update_primary_region, {"PrimaryRegion": WEST})):
        answer = _refused(call, KeyId=key_id, **params)
        assert (answer["ResponseMetadata"]["HTTPStatusCode"], answer["Error"]["Code"],
                answer["Error"]["Message"]) == (500, "KMSInternalException", UNREACHED), call
    # nor does its own schedule rotate it: the rotation is due, and waits
    east.advance_clock(400 * DAY)
    assert e.list_key_rotations(KeyId=key_id)["Rotations"] == rotations
    assert e.get_key_rotation_status(KeyId=key_id)["KeyRotationEnabled"] is True

    # The link heals: the old primary reads the announcement and rejoins as a replica, with
    # the new primary's material; what it encrypted while cut off decrypts on both sides.
    link.heal()
    config = until(lambda: (c := e.describe_key(KeyId=key_id)["KeyMetadata"][
        "MultiRegionConfiguration"])["MultiRegionKeyType"] == "REPLICA" and c)
    assert config["PrimaryKey"]["Region"] == WEST
    assert _refused(e.rotate_key_on_demand, KeyId=key_id)["Error"]["Code"] == (
        "UnsupportedOperationException")
    assert w.decrypt(CiphertextBlob=blob)["Plaintext"] == b"while cut off"
    # the new primary's rotation waited for its replica: now both encrypt with its material
    newest = w.list_key_rotations(KeyId=key_id)["Rotations"][-1]["KeyMaterialId"]
    assert until(lambda: _current(e, key_id) == _current(w, key_id) == newest, timeout=10)
    made_by_west = w.list_key_rotations(KeyId=key_id)["Rotations"]
    assert e.list_key_rotations(KeyId=key_id)["Rotations"] == made_by_west
    assert len(made_by_west) == len(rotations) + 1
