"""Durability: state survives a SIGKILL crash and a graceful restart on the same data dir."""

from __future__ import annotations

import json
import os
import uuid

import pytest

pytestmark = pytest.mark.e2e


def _snapshot(kms):
    keys = sorted(
        (k["KeyId"], k["KeyArn"]) for page in kms.get_paginator("list_keys").paginate() for k in page["Keys"]
    )
    aliases = sorted(
        (a["AliasName"], a["AliasArn"], a.get("TargetKeyId"))
        for page in kms.get_paginator("list_aliases").paginate()
        for a in page["Aliases"]
    )
    described = {}
    for key_id, _ in keys:
        md = kms.describe_key(KeyId=key_id)["KeyMetadata"]
        rot = kms.get_key_rotation_status(KeyId=key_id) if md["KeyState"] != "PendingDeletion" else {}
        tags = kms.list_resource_tags(KeyId=key_id)["Tags"]
        described[key_id] = {
            "KeyState": md["KeyState"],
            "Enabled": md["Enabled"],
            "Description": md["Description"],
            "CreationDate": md["CreationDate"],
            "DeletionDate": md.get("DeletionDate"),
            "CurrentKeyMaterialId": md.get("CurrentKeyMaterialId"),
            "KeyRotationEnabled": rot.get("KeyRotationEnabled"),
            "RotationPeriodInDays": rot.get("RotationPeriodInDays"),
            "Tags": sorted((t["TagKey"], t["TagValue"]) for t in tags),
            "Policy": json.loads(kms.get_key_policy(KeyId=key_id, PolicyName="default")["Policy"]),
        }
    return keys, aliases, described


@pytest.fixture(scope="module")
def populated(server_factory):
    srv = server_factory("restart")
    kms = srv.kms()
    keys = [kms.create_key(Description=f"durable {i}")["KeyMetadata"] for i in range(4)]
    aliases = {}
    for i, md in enumerate(keys):
        name = f"alias/restart-{i}-{uuid.uuid4().hex[:8]}"
        kms.create_alias(AliasName=name, TargetKeyId=md["KeyId"])
        aliases[name] = md["KeyId"]

    messages = []
    for n in range(24):
        md = keys[n % 3]  # the last key stays unused for encryption
        ctx = {"msg": str(n)}
        pt = os.urandom(1 + n * 37 % 300)
        blob = kms.encrypt(KeyId=md["KeyId"], Plaintext=pt, EncryptionContext=ctx)["CiphertextBlob"]
        messages.append((blob, ctx, pt, md["Arn"]))

    # A variety of states and side data to survive the crash
    kms.rotate_key_on_demand(KeyId=keys[0]["KeyId"])
    post_rotation = kms.encrypt(KeyId=keys[0]["KeyId"], Plaintext=b"after rotation")["CiphertextBlob"]
    messages.append((post_rotation, {}, b"after rotation", keys[0]["Arn"]))
    kms.enable_key_rotation(KeyId=keys[0]["KeyId"], RotationPeriodInDays=180)
    kms.tag_resource(KeyId=keys[1]["KeyId"], Tags=[{"TagKey": "tier", "TagValue": "gold"}])
    kms.update_key_description(KeyId=keys[1]["KeyId"], Description="renamed before crash")
    kms.disable_key(KeyId=keys[2]["KeyId"])
    kms.schedule_key_deletion(KeyId=keys[3]["KeyId"], PendingWindowInDays=7)
    kms.put_key_policy(
        KeyId=keys[1]["KeyId"], PolicyName="default",
        Policy=json.dumps({"Version": "2012-10-17", "Statement": [{
            "Sid": "root", "Effect": "Allow", "Principal": {"AWS": "arn:aws:iam::111122223333:root"},
            "Action": "kms:*", "Resource": "*"}]}),
    )
    before = _snapshot(kms)
    return srv, keys, aliases, messages, before


def _assert_everything_intact(kms, keys, aliases, messages, before, aws_error):
    after = _snapshot(kms)
    assert after[0] == before[0], "ListKeys changed"
    assert after[1] == before[1], "ListAliases changed"
    assert after[2] == before[2], "DescribeKey/rotation/tags/policy changed"
    assert set(aliases) <= {name for name, _, _ in after[1]}

    for name, key_id in aliases.items():
        assert kms.describe_key(KeyId=name)["KeyMetadata"]["KeyId"] == key_id

    disabled_key = keys[2]["Arn"]
    for blob, ctx, pt, arn in messages:
        kwargs = {"CiphertextBlob": blob}
        if ctx:
            kwargs["EncryptionContext"] = ctx
        if arn == disabled_key:
            with aws_error("DisabledException"):
                kms.decrypt(**kwargs)
            continue
        resp = kms.decrypt(**kwargs)
        assert resp["Plaintext"] == pt
        assert resp["KeyId"] == arn


def test_survives_sigkill(populated, aws_error):
    srv, keys, aliases, messages, before = populated
    pid_before = srv.proc.pid
    srv.kill()
    assert not srv.is_running()
    srv.start()
    assert srv.proc.pid != pid_before
    kms = srv.kms()
    _assert_everything_intact(kms, keys, aliases, messages, before, aws_error)

    # the disabled key comes back to life and its old ciphertexts decrypt
    kms.enable_key(KeyId=keys[2]["KeyId"])
    for blob, ctx, pt, arn in messages:
        if arn == keys[2]["Arn"]:
            assert kms.decrypt(CiphertextBlob=blob, EncryptionContext=ctx)["Plaintext"] == pt
    kms.disable_key(KeyId=keys[2]["KeyId"])


def test_writes_acknowledged_right_before_a_crash_are_durable(populated):
    srv, *_ = populated
    kms = srv.kms()
    md = kms.create_key(Description="last write before crash")["KeyMetadata"]
    alias = f"alias/lastwrite-{uuid.uuid4().hex[:8]}"
    kms.create_alias(AliasName=alias, TargetKeyId=md["KeyId"])
    blob = kms.encrypt(KeyId=alias, Plaintext=b"acked")["CiphertextBlob"]
    srv.kill()  # immediately after the acknowledgements
    srv.start()
    kms = srv.kms()
    assert kms.describe_key(KeyId=alias)["KeyMetadata"]["KeyId"] == md["KeyId"]
    assert kms.decrypt(CiphertextBlob=blob)["Plaintext"] == b"acked"
    # clean up so the snapshot in the next test is unaffected
    kms.delete_alias(AliasName=alias)
    kms.schedule_key_deletion(KeyId=md["KeyId"], PendingWindowInDays=7)


def test_graceful_restart_and_history_cli(populated, aws_error):
    srv, keys, aliases, messages, _ = populated
    kms = srv.kms()
    before = _snapshot(kms)
    rest_events = srv.events(keys[0]["KeyId"])

    rc = srv.stop()
    assert rc is not None and not srv.is_running()
    assert rc in (0, -15), f"unclean exit on SIGTERM: {rc}"

    # The history CLI reads the store directly (no server running).
    proc = srv.history_cli(keys[0]["KeyId"])
    assert proc.returncode == 0, proc.stderr
    cli = json.loads(proc.stdout)
    cli_events = cli["Events"] if isinstance(cli, dict) else cli
    assert [(e["Version"], e["Type"]) for e in cli_events] == [
        (e["Version"], e["Type"]) for e in rest_events["Events"]
    ]
    types = [e["Type"] for e in cli_events]
    assert types[0] == "KeyCreated"
    assert any("Rotat" in t for t in types), types

    human = srv.history_cli(keys[0]["KeyId"], as_json=False)
    assert human.returncode == 0, human.stderr
    assert "KeyCreated" in human.stdout

    missing = srv.history_cli(str(uuid.uuid4()))
    assert missing.returncode != 0

    srv.start()
    kms = srv.kms()
    _assert_everything_intact(kms, keys, aliases, messages, before, aws_error)
    assert srv.events(keys[0]["KeyId"])["Events"] == rest_events["Events"]


def test_ledger_records_actor_of_each_change(populated):
    srv, *_ = populated
    kms = srv.kms()
    resp = kms.create_key(Description="actor check")
    key_id = resp["KeyMetadata"]["KeyId"]
    request_id = resp["ResponseMetadata"]["RequestId"]
    assert request_id
    kms.update_key_description(KeyId=key_id, Description="actor check 2")

    events = srv.events(key_id)["Events"]
    assert [e["Version"] for e in events] == list(range(events[0]["Version"], events[0]["Version"] + len(events)))
    created = events[0]
    assert created["Type"] == "KeyCreated"
    actor = created["Actor"]
    assert actor["request_id"] == request_id
    assert actor["source_ip"] == "127.0.0.1"
    assert "boto" in actor["user_agent"].lower()
    assert actor["principal"]
    assert len(events) >= 2 and events[-1]["Actor"]["request_id"] != request_id

    # unknown key -> 404 from the ledger API
    r = srv.ledger_get(f"/ledger/v1/keys/{uuid.uuid4()}/events?region=us-east-1")
    assert r.status_code == 404
