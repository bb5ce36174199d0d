"""``keyledger checkpoint-key`` and ``keyledger verify`` on the store of a real server: stopped,
copied, crashed, and tampered with behind its back."""

from __future__ import annotations

import re
import shutil
import sqlite3
import subprocess
import sys
import time

import psycopg
import pytest
from botocore.exceptions import ClientError

from tests.e2e.conftest import PROJECT_ROOT, KeyledgerServer

OK_LINE = re.compile(r"^OK: (\d+) records, (\d+) checkpoints, "
                     r"last checkpoint \d{4}-\d\d-\d\dT\d\d:\d\d:\d\dZ$")


def cli(*args: str) -> subprocess.CompletedProcess:
    return subprocess.run([sys.executable, "-m", "api", *args], cwd=PROJECT_ROOT,
                          capture_output=True, text=True, timeout=120,
                          env=KeyledgerServer.child_env())


def store_args(server: KeyledgerServer, data_dir=None) -> list[str]:
    args = ["--data-dir", str(data_dir or server.data_dir)]
    return args + (["--store", server.store] if server.store else [])


def exercise(server: KeyledgerServer, keys: int = 4) -> None:
    """Management and cryptographic requests, and a failing one: events and audit records."""
    kms = server.kms()
    for i in range(keys):
        key_id = kms.create_key(Description=f"verify {i}")["KeyMetadata"]["KeyId"]
        kms.tag_resource(KeyId=key_id, Tags=[{"TagKey": "n", "TagValue": str(i)}])
        blob = kms.encrypt(KeyId=key_id, Plaintext=b"secret")["CiphertextBlob"]
        kms.decrypt(CiphertextBlob=blob)
    with pytest.raises(ClientError):
        kms.describe_key(KeyId="00000000-0000-0000-0000-000000000000")


def export_public_key(server: KeyledgerServer, tmp_path) -> str:
    result = cli("checkpoint-key", *store_args(server))
    assert result.returncode == 0, result.stderr
    assert result.stdout.startswith("-----BEGIN PUBLIC KEY-----\n")
    path = tmp_path / "ledger.pub"
    path.write_text(result.stdout)
    return str(path)


def test_verify_a_stopped_server_then_tamper_with_it(store, server_factory, tmp_path):
    server = server_factory("verify", store=store)
    exercise(server)
    server.stop()  # its last maintenance pass chains and checkpoints what is left
    public_key = export_public_key(server, tmp_path)
    again = export_public_key(server, tmp_path.parent)
    assert open(again).read() == open(public_key).read()  # one key per store

    result = cli("verify", *store_args(server), "--public-key", public_key)
    assert result.returncode == 0, result.stdout + result.stderr
    lines = result.stdout.splitlines()
    match = OK_LINE.match(lines[0])
    assert match, lines
    assert int(match[1]) >= 4 * 2 and int(match[2]) >= 1
    assert "unanchored" not in result.stdout  # a graceful stop leaves nothing unanchored

    if store is None:  # SQLite: tamper with a copy of the data dir (verify reads it offline)
        copy = tmp_path / "copy"
        shutil.copytree(server.data_dir, copy)
        assert cli("verify", "--data-dir", str(copy), "--public-key", public_key).returncode == 0
        with sqlite3.connect(copy / "regions" / "us-east-1" / "ledger.db") as db:
            position, state = db.execute(
                "SELECT rowid, state FROM stored_events ORDER BY rowid LIMIT 1 OFFSET 2").fetchone()
            db.execute("UPDATE stored_events SET state = ? WHERE rowid = ?",
                       (state[:-1] + bytes([state[-1] ^ 1]), position))
        result = cli("verify", "--data-dir", str(copy), "--public-key", public_key)
    else:
        with psycopg.connect(store, autocommit=True) as db:
            position = db.execute("SELECT notification_id FROM keyledger_us_east_1.keyledger_events "
                                  "ORDER BY notification_id LIMIT 1 OFFSET 2").fetchone()[0]
            db.execute("UPDATE keyledger_us_east_1.keyledger_events SET state = state || '\\x00'::bytea "
                       "WHERE notification_id = %s", (position,))
        result = cli("verify", *store_args(server), "--public-key", public_key)
    assert result.returncode == 1, result.stdout + result.stderr
    assert re.match(rf"^FAILED: region us-east-1, event at notification id {position} "
                    r"\(chain seq \d+\): edited \(", result.stdout), result.stdout
    assert result.stdout.count("FAILED") == 1, result.stdout  # (the headline names it)


def test_anchored_fails_where_the_audit_file_was_deleted_with_its_chain(server_factory, tmp_path):
    """Deleting a Region's audit.db takes its audit, chain and checkpoints: what is left, the
    ledger, verifies as unanchored records, all a verifier can see; --anchored fails on it."""
    server = server_factory("verify-anchored")
    exercise(server)
    server.stop()
    public_key = export_public_key(server, tmp_path)
    copy = tmp_path / "copy"
    shutil.copytree(server.data_dir, copy)
    args = ["verify", "--data-dir", str(copy), "--public-key", public_key]
    assert cli(*args, "--anchored").returncode == 0  # a stopped server's store: all anchored
    for stored in (copy / "regions" / "us-east-1").glob("audit.db*"):
        stored.unlink()
    plain = cli(*args)
    assert plain.returncode == 0 and "not yet chained" in plain.stdout, plain.stdout
    anchored = cli(*args, "--anchored")
    assert anchored.returncode == 1, anchored.stdout + anchored.stderr
    assert re.match(r"^FAILED: region us-east-1, every record \(no checkpoint\): unanchored "
                    r"\(\d+ records are covered by no signed checkpoint \(0 chained, \d+ not "
                    r"chained\)", anchored.stdout), anchored.stdout


def test_verify_after_a_crash_and_a_restart(server_factory, tmp_path):
    server = server_factory("verify-crash")
    exercise(server, keys=3)
    time.sleep(1.2)  # every record is chained within 1 s of its commit
    server.kill()  # no last pass: records after the first checkpoint stay unanchored
    public_key = export_public_key(server, tmp_path)
    result = cli("verify", *store_args(server), "--public-key", public_key)
    assert result.returncode == 0, result.stdout + result.stderr
    match = OK_LINE.match(result.stdout.splitlines()[0])
    assert match and int(match[1]) >= 3 * 2, result.stdout
    assert "unanchored" not in result.stdout or ", 0 not yet chained)" in result.stdout, \
        result.stdout

    server.start()  # the restarted server's chainer catches up
    exercise(server, keys=1)
    server.stop()
    result = cli("verify", *store_args(server), "--public-key", public_key)
    assert result.returncode == 0 and "unanchored" not in result.stdout, result.stdout


def test_verify_usage_errors(server_factory, tmp_path):
    missing = tmp_path / "nothing-here"
    pem = tmp_path / "bad.pub"
    pem.write_text("not a key")
    result = cli("verify", "--data-dir", str(missing), "--public-key", str(pem))
    assert result.returncode == 2 and "cannot read the public key" in result.stderr
    never_served = server_factory("verify-never-served", start=False)
    result = cli("checkpoint-key", "--data-dir", str(never_served.data_dir))
    assert (result.returncode, result.stdout, result.stderr) == (
        1, "", f"keyledger checkpoint-key: no keyledger store in {never_served.data_dir.resolve()}\n")
    server = server_factory("verify-served")
    server.stop()
    public_key = export_public_key(server, tmp_path)  # made in the store the server created
    result = cli("verify", "--data-dir", str(missing), "--public-key", public_key)
    assert (result.returncode, result.stdout, result.stderr) == (
        1, "", f"keyledger verify: no keyledger store in {missing.resolve()}\n")
    assert not missing.exists()


def test_two_workers_chain_one_ledger(server_factory, tmp_path):
    """Both workers write; one holds the chainer's lease; stopping anchors every record."""
    server = server_factory("verify-workers", workers=2)
    exercise(server, keys=6)
    time.sleep(1.2)
    public_key = export_public_key(server, tmp_path)
    result = cli("verify", *store_args(server), "--public-key", public_key)  # while it runs
    assert result.returncode == 0, result.stdout + result.stderr
    assert "unanchored" not in result.stdout or ", 0 not yet chained)" in result.stdout, \
        result.stdout
    server.stop()
    result = cli("verify", *store_args(server), "--public-key", public_key)
    assert result.returncode == 0 and "unanchored" not in result.stdout, result.stdout
