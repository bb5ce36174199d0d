"""Several server processes over one data dir must agree on key state (no stale caches)."""

from __future__ import annotations

import base64
import os
import signal
import subprocess
import sys
import threading
import time
from pathlib import Path

import httpx
import pytest
from botocore.exceptions import ClientError

from tests.e2e.conftest import PROJECT_ROOT, KeyledgerServer, process_stat, process_stats, until

pytestmark = pytest.mark.e2e

PROPAGATION_LIMIT = 1.0
POLL_INTERVAL = 0.05


def _encrypt_raw(e2e, url, key_id):
    """Encrypt over a brand-new TCP connection; returns (status, __type or None)."""
    r = e2e.raw_kms_call(url, "Encrypt", {"KeyId": key_id, "Plaintext": base64.b64encode(b"ping").decode()})
    assert r.status_code < 500, f"{r.status_code} {r.text}"
    if r.status_code == 200:
        assert r.json()["KeyId"].endswith(key_id)
        return 200, None
    return r.status_code, e2e.aws_error_type(r.json())


def _wait_for(e2e, url, key_id, expected, started):
    """Poll every 50 ms until Encrypt yields `expected`; return the elapsed time."""
    seen = []
    while True:
        result = _encrypt_raw(e2e, url, key_id)
        seen.append(result)
        elapsed = time.monotonic() - started
        if result == expected:
            return elapsed
        if elapsed > PROPAGATION_LIMIT:
            pytest.fail(f"{url} still answered {seen[-1]} {elapsed:.2f}s after the change (wanted {expected})")
        time.sleep(POLL_INTERVAL)


def _settled(e2e, url, key_id, expected, started, probes=12):
    """After the propagation limit, every fresh connection must see the new state."""
    remaining = PROPAGATION_LIMIT - (time.monotonic() - started)
    if remaining > 0:
        time.sleep(remaining)
    results = [_encrypt_raw(e2e, url, key_id) for _ in range(probes)]
    assert all(r == expected for r in results), results


DISABLED = (400, "DisabledException")
OK = (200, None)


@pytest.fixture(scope="module")
def pair(server_factory):
    """Two independent server processes sharing one --data-dir."""
    a = server_factory("pair-a")
    b = server_factory("pair-b", start=False)
    b.data_dir = a.data_dir
    b.start()
    assert a.port != b.port
    return a, b


def test_two_processes_share_state(pair, e2e):
    a, b = pair
    ka, kb = a.kms(), b.kms()
    md = ka.create_key(Description="shared across processes")["KeyMetadata"]
    started = time.monotonic()
    _wait_for(e2e, b.url, md["KeyId"], OK, started)
    assert kb.describe_key(KeyId=md["KeyId"])["KeyMetadata"]["Description"] == "shared across processes"

    # ciphertext made by one process decrypts on the other
    blob = ka.encrypt(KeyId=md["KeyId"], Plaintext=b"cross", EncryptionContext={"p": "a"})["CiphertextBlob"]
    assert kb.decrypt(CiphertextBlob=blob, EncryptionContext={"p": "a"})["Plaintext"] == b"cross"

    alias = f"alias/pair-{md['KeyId'][:8]}"
    kb.create_alias(AliasName=alias, TargetKeyId=md["KeyId"])
    deadline = time.monotonic() + PROPAGATION_LIMIT
    while True:
        names = {al["AliasName"] for al in ka.list_aliases(KeyId=md["KeyId"])["Aliases"]}
        if alias in names or time.monotonic() > deadline:
            break
        time.sleep(POLL_INTERVAL)
    assert alias in names
    assert ka.encrypt(KeyId=alias, Plaintext=b"via alias")["KeyId"] == md["Arn"]


def test_disable_on_one_process_is_seen_by_the_other_within_a_second(pair, e2e, aws_error):
    a, b = pair
    ka, kb = a.kms(), b.kms()
    md = ka.create_key(Description="disable propagation")["KeyMetadata"]
    key_id = md["KeyId"]
    _wait_for(e2e, b.url, key_id, OK, time.monotonic())
    # warm B's view of the key so a cache (if any) would be populated
    for _ in range(3):
        assert _encrypt_raw(e2e, b.url, key_id) == OK

    ka.disable_key(KeyId=key_id)
    started = time.monotonic()
    elapsed = _wait_for(e2e, b.url, key_id, DISABLED, started)
    assert elapsed <= PROPAGATION_LIMIT
    _settled(e2e, b.url, key_id, DISABLED, started)
    with aws_error("DisabledException"):
        kb.encrypt(KeyId=key_id, Plaintext=b"x")

    # and back: enable through B, A must follow
    kb.enable_key(KeyId=key_id)
    started = time.monotonic()
    _wait_for(e2e, a.url, key_id, OK, started)
    _settled(e2e, a.url, key_id, OK, started)

    # deletion scheduled through B stops encryption on A
    kb.schedule_key_deletion(KeyId=key_id, PendingWindowInDays=7)
    started = time.monotonic()
    _wait_for(e2e, a.url, key_id, (400, "KMSInvalidStateException"), started)


def test_concurrent_writers_lose_nothing(pair):
    """Two writers per process hammer one key (and create keys): every acknowledged write survives."""
    a, b = pair
    clients = {"a1": a.kms(), "a2": a.kms(), "b1": b.kms(), "b2": b.kms()}
    target = clients["a1"].create_key(Description="contended")["KeyMetadata"]["KeyId"]
    errors: list[BaseException] = []
    acked: list[str] = []
    created: dict[str, list[str]] = {name: [] for name in clients}
    barrier = threading.Barrier(len(clients))

    def worker(name, client):
        try:
            barrier.wait(timeout=30)
            for i in range(10):
                if i % 3 == 0:
                    created[name].append(client.create_key(Description=f"{name}-{i}")["KeyMetadata"]["KeyId"])
                try:
                    client.tag_resource(KeyId=target, Tags=[{"TagKey": f"{name}-{i}", "TagValue": str(i)}])
                    acked.append(f"{name}-{i}")
                except ClientError as exc:  # TagResource has no ConflictException in the KMS API
                    errors.append(exc)
        except BaseException as exc:  # noqa: BLE001 - surfaced below
            errors.append(exc)

    threads = [threading.Thread(target=worker, args=item) for item in clients.items()]
    for t in threads:
        t.start()
    for t in threads:
        t.join(timeout=120)
    all_created = {k for ids in created.values() for k in ids}
    expected_tags = set(acked)
    # Each process may lag the other's writes by up to the propagation limit, no more;
    # whatever is missing after that was lost (or the processes diverged).
    started = time.monotonic()
    for name, client in (("a", clients["a1"]), ("b", clients["b1"])):
        while True:
            listed = {k["KeyId"] for page in client.get_paginator("list_keys").paginate() for k in page["Keys"]}
            tags = {t["TagKey"] for t in client.list_resource_tags(KeyId=target)["Tags"]}
            if (all_created <= listed and tags == expected_tags) or time.monotonic() - started > PROPAGATION_LIMIT:
                break
            time.sleep(POLL_INTERVAL)
        assert all_created <= listed, f"server {name} is missing keys {all_created - listed}"
        assert tags == expected_tags, (
            f"server {name}: acknowledged TagResource writes lost {sorted(expected_tags - tags)}"
        )
    events = a.events(target)["Events"]
    tag_events = [e for e in events if e["Type"] != "KeyCreated"]
    assert len(tag_events) == len(expected_tags), f"{len(tag_events)} ledger events for {len(expected_tags)} writes"
    # and no write was refused: KMS serialises concurrent changes to one key itself
    assert not errors, errors
    assert len(all_created) == 16
    assert expected_tags == {f"{n}-{i}" for n in clients for i in range(10)}


def test_multi_worker_server(server_factory, e2e, aws_error):
    srv = server_factory("workers2", workers=2)
    kms = srv.kms()
    md = kms.create_key(Description="multi-worker")["KeyMetadata"]
    key_id = md["KeyId"]
    started = time.monotonic()
    _wait_for(e2e, srv.url, key_id, OK, started)
    _settled(e2e, srv.url, key_id, OK, started, probes=16)

    kms.disable_key(KeyId=key_id)
    started = time.monotonic()
    _wait_for(e2e, srv.url, key_id, DISABLED, started)
    _settled(e2e, srv.url, key_id, DISABLED, started, probes=16)
    with aws_error("DisabledException"):
        srv.kms().encrypt(KeyId=key_id, Plaintext=b"x")

    # ciphertexts are interchangeable between workers
    kms.enable_key(KeyId=key_id)
    _settled(e2e, srv.url, key_id, OK, time.monotonic(), probes=4)
    blobs = [kms.encrypt(KeyId=key_id, Plaintext=bytes([i]))["CiphertextBlob"] for i in range(8)]
    for i, blob in enumerate(blobs):
        r = e2e.raw_kms_call(srv.url, "Decrypt", {"CiphertextBlob": base64.b64encode(blob).decode()})
        assert r.status_code == 200, r.text
        assert base64.b64decode(r.json()["Plaintext"]) == bytes([i])

    # SIGKILL of the whole process group, then restart with the same settings
    srv.kill()
    srv.start()
    assert srv.kms().describe_key(KeyId=key_id)["KeyMetadata"]["KeyState"] == "Enabled"


def _workers_of(supervisor: int) -> list[int]:
    """The worker processes of a ``serve --workers N`` supervisor (uvicorn spawns them with
    multiprocessing; its resource tracker is a child too, and not a worker)."""
    workers = []
    for pid, fields in process_stats():
        if int(fields[1]) == supervisor:
            try:
                if b"spawn_main" in Path(f"/proc/{pid}/cmdline").read_bytes():
                    workers.append(pid)
            except OSError:  # it ended meanwhile
                continue
    return workers


def _running(pid: int) -> bool:
    """The process exists and has not ended (an ended one nobody reaped yet is a zombie)."""
    fields = process_stat(pid)
    return fields is not None and fields[0] != b"Z"


def _keyledger(*args: str) -> subprocess.CompletedProcess:
    return subprocess.run([sys.executable, "-m", "api", *args], cwd=PROJECT_ROOT,
                          capture_output=True, text=True, timeout=120,
                          env=KeyledgerServer.child_env())


def test_workers_end_with_their_supervisor(server_factory, tmp_path):
    """``kill -9`` of the supervisor alone (an operator's ``kill -9 PID``, the OOM killer), not
    of its process group: its workers get SIGTERM from the kernel and stop as on a graceful
    stop. The port is free again, what they stored is chained and anchored by a signed
    checkpoint, and a server started again on the port and data dir serves the key."""
    srv = server_factory("supervised", workers=2)
    kms = srv.kms()
    key_id = kms.create_key(Description="outlives its server")["KeyMetadata"]["KeyId"]
    kms.encrypt(KeyId=key_id, Plaintext=b"x")
    def both_started() -> list[int] | None:  # (the server answers once one worker does)
        found = _workers_of(srv.proc.pid)
        return found if len(found) == 2 else None

    workers = until(both_started, timeout=30)

    os.kill(srv.proc.pid, signal.SIGKILL)
    srv.proc.wait(timeout=10)
    until(lambda: not any(_running(pid) for pid in workers), timeout=15)
    with pytest.raises(httpx.ConnectError):
        httpx.get(srv.url + "/healthz", timeout=2)

    public_key = tmp_path / "ledger.pub"
    exported = _keyledger("checkpoint-key", "--data-dir", str(srv.data_dir))
    assert exported.returncode == 0, exported.stderr
    public_key.write_text(exported.stdout)
    verified = _keyledger("verify", "--data-dir", str(srv.data_dir), "--public-key",
                          str(public_key), "--anchored")
    assert verified.returncode == 0, verified.stdout + verified.stderr

    srv.start()
    assert srv.kms().describe_key(KeyId=key_id)["KeyMetadata"]["KeyState"] == "Enabled"
