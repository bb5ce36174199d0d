"""kill -9 under mixed load, then restart: every request that was answered has its audit
record (records are durable before the answer leaves), and the ledger still verifies."""

from __future__ import annotations

import base64
import sqlite3
import threading
import time

import httpx

from tests.e2e.test_verify_cli import cli, export_public_key, store_args


def _load(server, e2e, key_id: str, stop: threading.Event, answered: list[str]) -> None:
    """Encrypt, DescribeKey, TagResource and a failing call, each on a fresh connection."""
    calls = [
        ("Encrypt", {"KeyId": key_id, "Plaintext": base64.b64encode(b"crash").decode()}),
        ("DescribeKey", {"KeyId": key_id}),
        ("TagResource", {"KeyId": key_id, "Tags": [{"TagKey": "t", "TagValue": "v"}]}),
        ("DescribeKey", {"KeyId": "00000000-0000-0000-0000-000000000000"}),
    ]
    n = 0
    while not stop.is_set():
        operation, payload = calls[n % len(calls)]
        n += 1
        try:
            response = e2e.raw_kms_call(server.url, operation, payload, timeout=5)
        except httpx.HTTPError:
            continue  # the server died under this request: it was never answered
        answered.append(response.headers["x-amzn-requestid"])


def test_every_answered_request_survives_a_kill_and_the_ledger_verifies(server_factory, e2e,
                                                                         tmp_path):
    server = server_factory("audit-crash")
    key_id = server.kms().create_key()["KeyMetadata"]["KeyId"]
    stop, answered = threading.Event(), []
    threads = [threading.Thread(target=_load, args=(server, e2e, key_id, stop, answered))
               for _ in range(4)]
    for thread in threads:
        thread.start()
    time.sleep(3.0)
    server.kill()  # SIGKILL: no shutdown, no final flush
    stop.set()
    for thread in threads:
        thread.join()
    assert len(answered) >= 20  # the load ran (a sanity floor, not a speed target)
    server.start()
    server.stop()
    db = sqlite3.connect(server.data_dir / "regions" / "us-east-1" / "audit.db")
    try:
        stored = {row[0] for row in db.execute("SELECT request_id FROM keyledger_audit")}
    finally:
        db.close()
    assert set(answered) <= stored, f"{len(set(answered) - stored)} answered requests unaudited"
    result = cli("verify", *store_args(server), "--public-key", export_public_key(server, tmp_path))
    assert result.returncode == 0, result.stdout + result.stderr
    assert result.stdout.startswith("OK: ")
