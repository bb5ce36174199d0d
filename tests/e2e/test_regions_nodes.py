"""Regions on separate nodes: two `keyledger serve` processes (us-east-1 on one, us-west-2 on the
other, separate data dirs, SigV4 on, one identities file with a "nodes" key), each reading the
other's ledger feed over HTTP. Driven with boto3; the replica node is killed and comes back."""

from __future__ import annotations

import time

import httpx
import pytest
from botocore.credentials import Credentials
from botocore.exceptions import ClientError

from tests.e2e.conftest import free_port, root_identities, sign, until

EAST, WEST = "us-east-1", "us-west-2"
NODE_KEY = ("AKIAE2ENODE000000001", "e2e/node/secret/access/key/00000000000001")


def _identities() -> dict:
    identities = root_identities()
    identities["nodes"] = {"access_keys": [
        {"access_key_id": NODE_KEY[0], "secret_access_key": NODE_KEY[1]}]}
    return identities


@pytest.fixture(scope="module")
def nodes(server_factory, store):
    east_port, west_port = free_port(), free_port()
    east = server_factory("east", start=False, port=east_port, store=store,
                          identities=_identities(), extra_args=(
                              "--regions", EAST,
                              "--peers", f"{WEST}=http://127.0.0.1:{west_port}"))
    west = server_factory("west", start=False, port=west_port, store=store,  # its own schema
                          identities=_identities(), extra_args=(
                              "--regions", WEST, "--default-region", WEST,
                              "--peers", f"{EAST}=http://127.0.0.1:{east_port}"))
    east.start()
    west.start()
    yield east, west
    west.cleanup()
    east.cleanup()


def _current(client, key_id: str) -> str:
    return client.describe_key(KeyId=key_id)["KeyMetadata"]["CurrentKeyMaterialId"]


def test_a_node_answers_only_for_its_regions(nodes):
    east, west = nodes
    with pytest.raises(ClientError) as wrong:
        east.kms(WEST).list_keys()
    assert wrong.value.response["Error"]["Code"] == "InvalidSignatureException"
    assert wrong.value.response["Error"]["Message"] == (
        f"Credential should be scoped to a valid region, not '{WEST}'. ")


def test_replicate_key_into_a_region_the_deployment_does_not_serve(nodes):
    east, _ = nodes
    e = east.kms(EAST)
    key_id = e.create_key(MultiRegion=True)["KeyMetadata"]["KeyId"]
    with pytest.raises(ClientError) as refused:
        e.replicate_key(KeyId=key_id, ReplicaRegion="eu-west-1")
    error = refused.value.response["Error"]
    assert (error["Code"], error["Message"]) == (  # MultiRegion.REGION_NOT_SERVED
        "UnsupportedOperationException",
        "This keyledger deployment does not serve the eu-west-1 Region: serve it on a node and "
        "name that node in --peers.")


def test_the_feed_is_for_nodes_only(nodes):
    east, _ = nodes
    url = f"{east.url}/ledger/v1/feed?region={EAST}&after=0&limit=5"
    as_root = httpx.get(url, headers=sign(url, {}, b"", EAST, method="GET"))
    assert as_root.status_code == 403
    as_node = httpx.get(url, headers=sign(url, {}, b"", EAST, method="GET",
                                          credentials=Credentials(*NODE_KEY)))
    assert as_node.status_code == 200 and as_node.json()["Region"] == EAST
    # the signature is checked before the parameters: a caller that is no node learns nothing
    for query in ("", "?region=", f"?region={EAST}&after=x", f"?region={EAST}&limit=-1"):
        for path in ("/ledger/v1/feed", "/ledger/v1/transport-key"):
            unsigned = httpx.get(f"{east.url}{path}{query}")
            assert unsigned.status_code == 403, (path, query, unsigned.text)
    bad = f"{east.url}/ledger/v1/feed?region={EAST}&after=x"
    as_node = httpx.get(bad, headers=sign(bad, {}, b"", EAST, method="GET",
                                          credentials=Credentials(*NODE_KEY)))
    assert (as_node.status_code, as_node.json()) == (400, {
        "detail": "0 ≤ after < 2^63 and 1 ≤ limit ≤ 1000"})
    with pytest.raises(ClientError) as kms_call:  # a node key is not a KMS caller
        east.kms(EAST, credentials=Credentials(*NODE_KEY)).list_keys()
    assert kms_call.value.response["Error"]["Code"] == "UnrecognizedClientException"


def test_a_nodes_malformed_request_is_a_400(nodes):
    """A position past 64 bits, and a body nested too deep to parse (read before the
    signature is checked): answered as any malformed node request, not a 500."""
    east, _ = nodes
    url = f"{east.url}/ledger/v1/feed?region={EAST}&after={2**63}&limit=5"
    far = httpx.get(url, headers=sign(url, {}, b"", EAST, method="GET",
                                      credentials=Credentials(*NODE_KEY)))
    assert (far.status_code, far.json()) == (400, {
        "detail": "0 ≤ after < 2^63 and 1 ≤ limit ≤ 1000"})
    deep = httpx.post(f"{east.url}/ledger/v1/authorize",
                      content=b'{"a":' * 100_000 + b"1" + b"}" * 100_000)
    assert (deep.status_code, deep.json()) == (400, {"detail": "expected a JSON object with Region"})


def test_replicate_rotate_and_decrypt_across_nodes_with_a_crash(nodes):
    east, west = nodes
    e, w = east.kms(EAST), west.kms(WEST)
    key_id = e.create_key(MultiRegion=True, Description="across nodes")["KeyMetadata"]["KeyId"]
    before = e.encrypt(KeyId=key_id, Plaintext=b"before the replica")["CiphertextBlob"]
    assert e.replicate_key(KeyId=key_id, ReplicaRegion=WEST)["ReplicaKeyMetadata"][
        "KeyState"] == "Creating"
    until(lambda: w.describe_key(KeyId=key_id)["KeyMetadata"]["KeyState"] == "Enabled")
    assert w.decrypt(CiphertextBlob=before)["Plaintext"] == b"before the replica"
    assert e.describe_key(KeyId=key_id)["KeyMetadata"]["MultiRegionConfiguration"][
        "ReplicaKeys"][0]["Region"] == WEST

    previous = e.describe_key(KeyId=key_id)["KeyMetadata"]["CurrentKeyMaterialId"]
    e.rotate_key_on_demand(KeyId=key_id)
    started = time.monotonic()
    # as on AWS, the set encrypts with the new material once every replica Region holds it:
    # the primary's too, until then, with the previous one
    assert e.describe_key(KeyId=key_id)["KeyMetadata"]["CurrentKeyMaterialId"] == previous
    new = e.list_key_rotations(KeyId=key_id)["Rotations"][-1]["KeyMaterialId"]
    until(lambda: _current(e, key_id) == _current(w, key_id) == new)
    assert time.monotonic() - started < 1.0  # the round trip takes less than a second

    west.kill()  # the replica's node dies; the primary rotates twice meanwhile
    e.rotate_key_on_demand(KeyId=key_id)
    e.rotate_key_on_demand(KeyId=key_id)
    after = e.encrypt(KeyId=key_id, Plaintext=b"while west was down")["CiphertextBlob"]
    assert _current(e, key_id) == new  # (west lacks the new material: it waits)
    west.restart(crash=True)
    w = west.kms(WEST)
    assert until(lambda: w.decrypt(CiphertextBlob=after)["Plaintext"]) == b"while west was down"
    newest = e.list_key_rotations(KeyId=key_id)["Rotations"][-1]["KeyMaterialId"]
    until(lambda: _current(e, key_id) == _current(w, key_id) == newest)
    history = [e["Type"] for e in west.events(key_id, WEST)["Events"]]
    assert history.count("KeyCreated") == 1
    # once each: the creation, 3 rotations, and 2 materials becoming current (the newer of
    # the two made while west was down replaced the older as the one waiting)
    assert history.count("MultiRegionKeySynchronized") == 6
    assert len(w.list_key_rotations(KeyId=key_id)["Rotations"]) == 3

    # the replica's node reports how far it followed the primary's Region, and the lag
    status = west.ledger_get("/ledger/v1/replication", WEST)
    assert status.status_code == 200, status.text
    (pair,) = [p for p in status.json()["Replication"] if p["Source"] == EAST]
    assert pair["Target"] == WEST and pair["Applied"] >= 2 and pair["LagP99Ms"] >= 0
    # and `keyledger regions --endpoint` prints it
    import os
    import subprocess
    import sys

    from tests.e2e.conftest import PROJECT_ROOT, ROOT_ACCESS_KEY_ID, ROOT_SECRET_ACCESS_KEY
    env = {**os.environ, "AWS_ACCESS_KEY_ID": ROOT_ACCESS_KEY_ID,
           "AWS_SECRET_ACCESS_KEY": ROOT_SECRET_ACCESS_KEY}
    printed = subprocess.run([sys.executable, "-m", "api", "regions", "--endpoint", west.url,
                              "--region", WEST], cwd=PROJECT_ROOT, env=env, capture_output=True,
                             text=True, timeout=60)
    assert printed.returncode == 0, printed.stderr
    header, *lines = printed.stdout.splitlines()
    assert "LAG P99" in header
    (row,) = [line.split() for line in lines if line.split()[:2] == [EAST, WEST]]
    assert row[3] == str(pair["Applied"])  # the same count as the ledger API's


def test_disaster_recovery_drill_promote_while_the_primary_node_is_gone(nodes):
    """Beyond AWS: the primary's node dies; the replica is promoted with `keyledger promote`
    beside its running node; the new primary rotates; the old node comes back, reads the newer
    epoch and rejoins as a replica that decrypts what was made meanwhile."""
    import subprocess
    import sys

    from tests.e2e.conftest import PROJECT_ROOT

    east, west = nodes
    e, w = east.kms(EAST), west.kms(WEST)
    key_id = e.create_key(MultiRegion=True, Description="drill")["KeyMetadata"]["KeyId"]
    before = e.encrypt(KeyId=key_id, Plaintext=b"before the outage")["CiphertextBlob"]
    e.replicate_key(KeyId=key_id, ReplicaRegion=WEST)
    until(lambda: w.describe_key(KeyId=key_id)["KeyMetadata"]["KeyState"] == "Enabled")

    east.kill()
    command = [sys.executable, "-m", "api", "promote", key_id, "--region", WEST,
               "--data-dir", str(west.data_dir)]
    if west.store:
        command += ["--store", west.store]
    promoted = subprocess.run(command, cwd=PROJECT_ROOT, capture_output=True, text=True, timeout=60)
    assert promoted.returncode == 0, promoted.stderr
    assert "is the primary now (epoch 1)" in promoted.stdout
    until(lambda: w.describe_key(KeyId=key_id)["KeyMetadata"]["MultiRegionConfiguration"][
        "MultiRegionKeyType"] == "PRIMARY")
    w.rotate_key_on_demand(KeyId=key_id)  # the east node is down: shared when it is back
    during = w.encrypt(KeyId=key_id, Plaintext=b"during the outage")["CiphertextBlob"]
    assert w.decrypt(CiphertextBlob=before)["Plaintext"] == b"before the outage"

    east.restart(crash=True)
    e = east.kms(EAST)
    config = until(lambda: (c := e.describe_key(KeyId=key_id)["KeyMetadata"][
        "MultiRegionConfiguration"])["MultiRegionKeyType"] == "REPLICA" and c)
    assert config["PrimaryKey"]["Region"] == WEST
    assert until(lambda: e.decrypt(CiphertextBlob=during)["Plaintext"]) == b"during the outage"
    with pytest.raises(ClientError) as fenced:  # it never changes a shared property again
        e.rotate_key_on_demand(KeyId=key_id)
    assert fenced.value.response["Error"]["Code"] == "UnsupportedOperationException"


def test_update_primary_region_across_nodes_is_authorized_in_the_replica_region(nodes):
    """AWS authorizes kms:UpdatePrimaryRegion on the replica too, in its Region: here the
    primary's node asks the replica's node, whose key policy decides."""
    import json

    east, west = nodes
    e, w = east.kms(EAST), west.kms(WEST)
    key_id = e.create_key(MultiRegion=True)["KeyMetadata"]["KeyId"]
    root = "arn:aws:iam::111122223333:root"
    denying = json.dumps({"Version": "2012-10-17", "Statement": [
        {"Effect": "Allow", "Principal": {"AWS": root}, "Action": "kms:*", "Resource": "*"},
        {"Effect": "Deny", "Principal": {"AWS": root}, "Action": "kms:UpdatePrimaryRegion",
         "Resource": "*"}]})
    e.replicate_key(KeyId=key_id, ReplicaRegion=WEST, Policy=denying)
    until(lambda: w.describe_key(KeyId=key_id)["KeyMetadata"]["KeyState"] == "Enabled")
    with pytest.raises(ClientError) as denied:
        e.update_primary_region(KeyId=key_id, PrimaryRegion=WEST)
    assert denied.value.response["Error"]["Code"] == "AccessDeniedException"
    assert e.describe_key(KeyId=key_id)["KeyMetadata"]["MultiRegionConfiguration"][
        "MultiRegionKeyType"] == "PRIMARY"  # nothing changed

    w.put_key_policy(KeyId=key_id, PolicyName="default", Policy=json.dumps({
        "Version": "2012-10-17", "Statement": [
            {"Effect": "Allow", "Principal": {"AWS": root}, "Action": "kms:*", "Resource": "*"}]}))
    e.update_primary_region(KeyId=key_id, PrimaryRegion=WEST)
    until(lambda: w.describe_key(KeyId=key_id)["KeyMetadata"]["MultiRegionConfiguration"][
        "MultiRegionKeyType"] == "PRIMARY")
    until(lambda: e.describe_key(KeyId=key_id)["KeyMetadata"]["KeyState"] == "Enabled")
