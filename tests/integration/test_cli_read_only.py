"""The commands that only read (audit, audit export, history, history --at, who-can, regions,
verify, checkpoint-key), run as commands: pointed at a data dir or database that holds no
keyledger store, or at a Region with no ledger, they say so on one line of stderr and exit 1,
creating nothing (no data dir, root key, Region folder or schema); on a real store they work.
And `audit export` keeps the records of one second in the order they were stored."""

from __future__ import annotations

import gzip
import os
import shutil
import signal
import subprocess
import sys
from datetime import UTC, datetime
from pathlib import Path

import orjson
import psycopg
import pytest
from cryptography.hazmat.primitives.asymmetric.ed25519 import Ed25519PrivateKey

from api.settings import Settings
from application.audit import audit_row, new_event_id
from application.audit_query import cloudtrail_files
from application.audit_records import api_call_record
from domain.principals import Principal
from infrastructure.ledger_chain import public_key_pem
from infrastructure.persistence import StoreConfig
from tests.integration.conftest import Harness

PROJECT_ROOT = Path(__file__).resolve().parents[2]
ACCOUNT = "111122223333"
KEY = "1234abcd-12ab-34cd-56ef-1234567890ab"
BOGUS = "xx-bogus-9"


def child_env() -> dict[str, str]:
    return {k: v for k, v in os.environ.items() if not k.startswith("KEYLEDGER_")}


def run_all(commands: list[list[str]]) -> list[subprocess.CompletedProcess]:
    """``python -m api ARGS`` for each, side by side (each reads only)."""
    procs = [(args, subprocess.Popen([sys.executable, "-m", "api", *args], cwd=PROJECT_ROOT,
                                     env=child_env(), stdout=subprocess.PIPE,
                                     stderr=subprocess.PIPE, text=True))
             for args in commands]
    done = []
    for args, proc in procs:
        out, err = proc.communicate(timeout=120)
        done.append(subprocess.CompletedProcess(args, proc.returncode, out, err))
    return done


def cli(*args: str) -> subprocess.CompletedProcess:
    return run_all([list(args)])[0]


def tree(root: Path) -> dict[str, bytes | None]:
    """Every path under ``root``: a file's bytes (None: a directory). SQLite's transient
    -wal/-shm files left by a reader are not part of a store's contents."""
    return {str(p.relative_to(root)): (None if p.is_dir() else p.read_bytes())
            for p in sorted(root.rglob("*")) if not p.name.endswith(("-wal", "-shm"))}


def keyledger_schemas(url: str) -> list[str]:
    with psycopg.connect(url, autocommit=True, connect_timeout=10) as conn:
        return sorted(row[0] for row in conn.execute(
            "SELECT schema_name FROM information_schema.schemata"
            " WHERE schema_name LIKE 'keyledger%'").fetchall())


def a_public_key(path: Path) -> Path:
    path.write_bytes(public_key_pem(Ed25519PrivateKey.generate().public_key()))
    return path


def read_commands(out: Path, pem: Path) -> list[tuple[str, list[str]]]:
    """(the command's name in its error line, its arguments) of every command that reads."""
    return [
        ("audit", ["audit"]),
        ("audit export", ["audit", "export", "--out", str(out)]),
        ("history", ["history", KEY]),
        ("history", ["history", KEY, "--at", "2026-01-01T00:00:00Z"]),
        ("who-can", ["who-can", "kms:Decrypt", KEY]),
        ("regions", ["regions"]),
        ("verify", ["verify", "--public-key", str(pem)]),
        ("checkpoint-key", ["checkpoint-key"]),
    ]


def store_args(settings, data_dir: Path | None = None) -> list[str]:
    args = ["--data-dir", str(data_dir or settings.data_path)]
    return args + (["--store", settings.store] if settings.store else [])


def assert_refused(results, names: list[str], line: str) -> None:
    for name, result in zip(names, results, strict=True):
        assert (result.returncode, result.stdout, result.stderr) == (
            1, "", f"keyledger {name}: {line}\n"), result.args


# -- no store --------------------------------------------------------------------------------


def test_a_data_dir_that_does_not_exist_is_refused_and_not_created(tmp_path):
    pem = a_public_key(tmp_path / "ledger.pub")
    missing = tmp_path / "x" / "nonexistent"
    commands = read_commands(tmp_path / "out", pem)
    before = tree(tmp_path)
    results = run_all([args + ["--data-dir", str(missing)] for _, args in commands])
    assert_refused(results, [name for name, _ in commands],
                   f"no keyledger store in {missing.resolve()}")
    assert tree(tmp_path) == before  # no data dir, root key, region or export directory
    assert not (tmp_path / "x").exists()


@pytest.mark.parametrize("contents", ["empty", "root key only", "region without a ledger"])
def test_a_data_dir_without_a_store_is_refused_and_left_as_it_was(tmp_path, contents):
    """What the read commands used to leave behind is no store either: a root key alone, or
    a Region folder with a keyring and no ledger (checkpoint-key on a wrong data dir)."""
    pem = a_public_key(tmp_path / "ledger.pub")
    data = tmp_path / "data"
    data.mkdir()
    if contents != "empty":
        (data / "root.key").write_bytes(b"AAAA\n")
        (data / "root.key").chmod(0o600)
    if contents == "region without a ledger":
        (data / "regions" / "us-east-1").mkdir(parents=True)
        (data / "regions" / "us-east-1" / "keyring.db").write_bytes(b"")
    commands = read_commands(tmp_path / "out", pem)
    before = tree(tmp_path)
    results = run_all([args + ["--data-dir", str(data)] for _, args in commands])
    assert_refused(results, [name for name, _ in commands],
                   f"no keyledger store in {data.resolve()}")
    assert tree(tmp_path) == before


@pytest.mark.postgres
def test_a_database_without_keyledgers_schemas_is_refused_and_left_empty(postgres_url,
                                                                          tmp_path):
    pem = a_public_key(tmp_path / "ledger.pub")
    missing = tmp_path / "nonexistent"
    commands = read_commands(tmp_path / "out", pem)
    before = tree(tmp_path)
    results = run_all([args + ["--data-dir", str(missing), "--store", postgres_url]
                       for _, args in commands])
    where = StoreConfig(missing, postgres_url).describe()  # PostgreSQL HOST:PORT/DB
    assert where.startswith("PostgreSQL ") and "@" not in where  # (no password shown)
    assert_refused(results, [name for name, _ in commands], f"no keyledger store in {where}")
    assert tree(tmp_path) == before
    assert keyledger_schemas(postgres_url) == []


# -- a real store ----------------------------------------------------------------------------


def store_audit_records(kms, key_id: str, request_ids: list[str], when: datetime,
                        region: str = "us-east-1") -> None:
    """Encrypt records, as the front end stores them (the harness calls the service itself),
    one after the other."""
    principal = Principal.root(ACCOUNT)
    arn = f"arn:aws:kms:{region}:{ACCOUNT}:key/{key_id}"
    for request_id in request_ids:
        record = api_call_record(
            principal=principal, access_key_id="AKIDTEST", account=ACCOUNT, region=region,
            operation="Encrypt", params={"KeyId": arn, "Plaintext": b"secret"},
            result={"KeyId": arn, "CiphertextBlob": b"blob"}, error_code=None,
            error_message=None, event_time=when, event_id=new_event_id(), request_id=request_id,
            source_ip="127.0.0.1", user_agent="pytest", resources=(arn,),
        )
        kms.service.region(region).audit.record_blocking(
            audit_row(record, when, ACCOUNT, (arn,), principal.arn, request_id))


def exercise(kms) -> str:
    """A few KMS calls (a key, a tag, an encryption) and an audit record of the encryption."""
    key_id = kms.call("CreateKey", Description="read-only CLI")["KeyMetadata"]["KeyId"]
    kms.call("TagResource", KeyId=key_id, Tags=[{"TagKey": "team", "TagValue": "a"}])
    kms.call("Encrypt", KeyId=key_id, Plaintext=b"secret")
    store_audit_records(kms, key_id, ["req-encrypt"], datetime.now(UTC))
    return key_id


def store_state(kms) -> tuple[dict[str, bytes | None], list[str]]:
    """Every path of the data dir with its bytes (a reader opens each SQLite file read-only:
    it never merges the write-ahead log into it) and the database's keyledger schemas."""
    data = tree(kms.settings.data_path)
    return data, keyledger_schemas(kms.settings.store) if kms.settings.store else []


def test_a_region_without_a_ledger_is_refused_and_not_created(kms, tmp_path):
    key_id = exercise(kms)
    kms.close()  # the commands read the store offline
    pem = a_public_key(tmp_path / "ledger.pub")
    commands = [(name, args) for name, args in read_commands(tmp_path / "out", pem)
                if name not in ("regions", "checkpoint-key")]  # (they name no Region)
    commands = [(name, [key_id if a == KEY else a for a in args]) for name, args in commands]
    before = store_state(kms)
    results = run_all([args + store_args(kms.settings) + ["--region", BOGUS]
                       for _, args in commands])
    assert_refused(results, [name for name, _ in commands],
                   f"region {BOGUS} has no ledger in this store")
    assert store_state(kms) == before
    assert not (tmp_path / "out").exists()
    regions = cli("regions", *store_args(kms.settings))  # and no Region was added
    assert regions.returncode == 0 and BOGUS not in regions.stdout, regions.stderr


def test_the_read_commands_work_on_a_real_store_and_create_nothing(kms, tmp_path):
    key_id = exercise(kms)
    kms.close()
    args = store_args(kms.settings)
    public_key = cli("checkpoint-key", *args)  # made in the existing store the first time
    assert public_key.returncode == 0, public_key.stderr
    assert public_key.stdout.startswith("-----BEGIN PUBLIC KEY-----\n")
    pem = tmp_path / "ledger.pub"
    pem.write_text(public_key.stdout)
    before = store_state(kms)

    audit, history, history_at, who_can, regions, again = run_all([
        ["audit", *args],
        ["history", key_id, *args],
        ["history", key_id, "--at", datetime.now(UTC).isoformat(), *args],
        ["who-can", "kms:Decrypt", key_id, *args],
        ["regions", *args],
        ["checkpoint-key", *args],
    ])
    assert audit.returncode == 0, audit.stderr
    assert "Encrypt" in audit.stdout and "request req-encrypt)" in audit.stdout, audit.stdout
    assert history.returncode == 0, history.stderr
    assert "KeyCreated" in history.stdout and "TagsAdded" in history.stdout, history.stdout
    assert history.stdout.startswith(f"History of {key_id} in us-east-1 (2 events)\n")
    assert history_at.returncode == 0 and key_id in history_at.stdout, history_at.stderr
    assert who_can.returncode == 0, who_can.stderr
    assert who_can.stdout.startswith(f"Who could kms:Decrypt {key_id} at "), who_can.stdout
    assert "key policy Enable IAM User Permissions" in who_can.stdout, who_can.stdout
    assert regions.returncode == 0 and regions.stdout.startswith("SOURCE"), regions.stderr
    assert (again.returncode, again.stdout) == (0, public_key.stdout), again.stderr
    verified = cli("verify", *args, "--public-key", str(pem), "--region", "us-east-1")
    assert (verified.returncode, verified.stderr) == (0, ""), verified.stdout + verified.stderr
    assert verified.stdout.startswith("OK: ") and "  us-east-1: " in verified.stdout
    twice = cli("verify", *args, "--public-key", str(pem), "--region", "us-east-1",
                "--region", "us-east-1")  # a Region named twice is checked and counted once
    assert (twice.returncode, twice.stdout) == (0, verified.stdout), twice.stderr
    assert store_state(kms) == before


@pytest.mark.postgres
def test_a_postgres_store_is_read_without_creating_a_data_dir_or_root_key(postgres_url,
                                                                          tmp_path):
    kms = Harness(Settings(data_dir=str(tmp_path / "data"), store=postgres_url))
    key_id = exercise(kms)
    kms.close()
    typo = tmp_path / "typo"
    schemas = keyledger_schemas(postgres_url)
    audit, history, checkpoint_key = run_all([
        ["audit", "--data-dir", str(typo), "--store", postgres_url],
        ["history", key_id, "--data-dir", str(typo), "--store", postgres_url],
        ["checkpoint-key", "--data-dir", str(typo), "--store", postgres_url],
    ])
    assert audit.returncode == 0 and "request req-encrypt)" in audit.stdout, audit.stderr
    assert history.returncode == 0 and key_id in history.stdout, history.stderr
    # a signing key sealed with a new root key could never be unsealed by the store's nodes
    assert (checkpoint_key.returncode, checkpoint_key.stdout, checkpoint_key.stderr) == (
        1, "", f"keyledger checkpoint-key: no root key at {typo.resolve() / 'root.key'}\n")
    assert not typo.exists()
    assert keyledger_schemas(postgres_url) == schemas


# -- audit export: records of one second, oldest first ---------------------------------------


def _record(request_id: str, time: str = "2026-12-06T09:14:07Z") -> dict:
    return {"eventTime": time, "awsRegion": "us-east-1", "recipientAccountId": ACCOUNT,
            "userIdentity": {"accountId": ACCOUNT}, "eventName": "Encrypt",
            "requestID": request_id}


def test_cloudtrail_files_keep_the_records_of_one_second_oldest_first():
    """The audit store reads newest first; eventTime shows only the second."""
    newest_first = [_record("r5", "2026-12-06T09:14:08Z"), _record("r4"), _record("r3"),
                    _record("r2"), _record("r1"), _record("r0", "2026-12-06T09:14:06Z")]
    (records,) = cloudtrail_files(newest_first).values()
    assert [r["requestID"] for r in records] == ["r0", "r1", "r2", "r3", "r4", "r5"]


def test_export_writes_the_records_of_one_second_in_the_order_they_were_stored(kms, tmp_path):
    stored = [f"req-{n}" for n in range(5)]
    store_audit_records(kms, KEY, stored, datetime(2026, 3, 1, 9, 1, 30, tzinfo=UTC))  # one second
    kms.close()
    result = cli("audit", "export", "--out", str(tmp_path / "out"), *store_args(kms.settings),
                 "--region", "us-east-1")
    assert result.returncode == 0, result.stderr
    (path,) = (tmp_path / "out").rglob("*.json.gz")
    records = orjson.loads(gzip.decompress(path.read_bytes()))["Records"]
    assert [r["requestID"] for r in records] == stored
    again = cli("audit", "export", "--out", str(tmp_path / "out"), *store_args(kms.settings),
                "--region", "us-east-1")
    assert again.returncode == 0, again.stderr
    assert list((tmp_path / "out").rglob("*.json.gz")) == [path]  # the window's own file
    assert orjson.loads(gzip.decompress(path.read_bytes()))["Records"] == records


def test_export_to_a_file_is_refused_on_one_line(sqlite_store, tmp_path):
    settings, _ = sqlite_store
    (tmp_path / "a-file").write_text("")
    result = cli("audit", "export", "--out", str(tmp_path / "a-file"), *store_args(settings))
    assert (result.returncode, result.stdout) == (1, ""), result.stderr
    assert result.stderr.startswith(f"keyledger audit export: cannot write {tmp_path}/a-file/")
    assert result.stderr.count("\n") == 1, result.stderr


# -- a damaged or unreachable store: one line, exit 2, nothing written --------------------------


@pytest.fixture
def sqlite_store(tmp_path) -> tuple[Settings, str]:
    """An SQLite store with a key and its records, closed (the commands read it offline)."""
    settings = Settings(data_dir=str(tmp_path / "data"))
    harness = Harness(settings)
    key_id = exercise(harness)
    harness.close()
    return settings, key_id


def _sqlite(settings: Settings, name: str, *statements: str) -> list[str]:
    """Run ``statements`` on the us-east-1 database ``name``; its tables and indexes after."""
    import sqlite3

    with sqlite3.connect(settings.data_path / "regions" / "us-east-1" / name) as db:
        for statement in statements:
            db.execute(statement)
        return sorted(row[0] for row in db.execute("SELECT name FROM sqlite_master"))


def _unreadable(result: subprocess.CompletedProcess, command: str, detail: str) -> None:
    assert (result.returncode, result.stdout) == (2, ""), result.args
    assert result.stderr.startswith(f"keyledger {command}: cannot read the store: {detail}")
    assert result.stderr.endswith(" (keyledger verify checks whether it was tampered with)\n")
    assert result.stderr.count("\n") == 1, result.stderr


def test_a_damaged_store_is_reported_on_one_line_and_not_repaired(sqlite_store, tmp_path):
    """A read command never creates what is missing from the store it reads (a copied data
    dir stays as it was copied): a dropped table is reported, not made again."""
    settings, key_id = sqlite_store
    args = store_args(settings)
    audit_tables = _sqlite(settings, "audit.db", "DROP TABLE keyledger_audit")
    audit, export = run_all([["audit", *args],
                             ["audit", "export", "--out", str(tmp_path / "out"), *args]])
    _unreadable(audit, "audit", "no such table: keyledger_audit")
    _unreadable(export, "audit export", "no such table: keyledger_audit")
    assert _sqlite(settings, "audit.db") == audit_tables
    ledger_tables = _sqlite(settings, "ledger.db", "DROP TABLE stored_events")
    _unreadable(cli("history", key_id, *args), "history", "no such table: stored_events")
    assert _sqlite(settings, "ledger.db") == ledger_tables


def test_a_record_that_is_not_json_is_reported_on_one_line(sqlite_store):
    settings, _ = sqlite_store
    _sqlite(settings, "audit.db", "UPDATE keyledger_audit SET record = x'7b7b'")
    _unreadable(cli("audit", *store_args(settings)), "audit", "")


def test_a_store_from_before_an_index_is_read_without_adding_it(sqlite_store):
    settings, _ = sqlite_store
    tables = _sqlite(settings, "audit.db", "DROP INDEX keyledger_audit_once",
                     "DROP INDEX keyledger_audit_second_key")
    audit = cli("audit", *store_args(settings))
    assert audit.returncode == 0 and "Encrypt" in audit.stdout, audit.stderr
    assert _sqlite(settings, "audit.db") == tables


def test_a_reader_that_stops_early_ends_the_command_quietly(tmp_path):
    settings = Settings(data_dir=str(tmp_path / "data"))
    harness = Harness(settings)
    key_id = exercise(harness)
    # more than a pipe holds: the command is still writing when the reader goes
    store_audit_records(harness, key_id, [f"req-{n}" for n in range(600)], datetime.now(UTC))
    harness.close()
    done = subprocess.run(
        f"set -o pipefail; {sys.executable} -m api audit --json --data-dir {settings.data_path}"
        " | head -c 10",
        shell=True, executable="/bin/bash", cwd=PROJECT_ROOT, env=child_env(),
        capture_output=True, text=True, timeout=120)
    # (141: the status of a program that SIGPIPE ended, as `yes | head` ends)
    assert (len(done.stdout), done.stderr, done.returncode) == (10, "", 141)


def test_a_command_run_in_a_process_leaves_its_sigpipe_action_alone(sqlite_store, capsys):
    """``main`` called in another program (the test suite, a script) does not set SIGPIPE's
    default action there: that would end the program silently the next time a socket it
    writes to is cut (a server it calls, killed). The ``keyledger`` program ends quietly on
    a reader that stops early without it (above)."""
    from api.cli import main

    settings, _ = sqlite_store
    before = signal.getsignal(signal.SIGPIPE)
    assert main(["audit", "--json", *store_args(settings)]) == 0
    assert "Encrypt" in capsys.readouterr().out
    assert signal.getsignal(signal.SIGPIPE) == before == signal.SIG_IGN


def test_an_unreachable_database_is_reported_on_one_line(tmp_path):
    store = ["--store", "postgresql://nobody@127.0.0.1:1/nothing", "--data-dir",
             str(tmp_path / "data")]
    results = run_all([["audit", *store], ["audit", "export", "--out", str(tmp_path), *store],
                       ["history", KEY, *store], ["who-can", "kms:Decrypt", KEY, *store],
                       ["checkpoint-key", *store]])
    for name, result in zip(["audit", "audit export", "history", "who-can", "checkpoint-key"],
                            results, strict=True):
        _unreadable(result, name, "connection failed")
    assert not (tmp_path / "data").exists()


def test_audit_key_arn_reads_its_region_and_account(sqlite_store):
    settings, key_id = sqlite_store
    args = store_args(settings)
    arn = f"arn:aws:kms:us-east-1:{ACCOUNT}:key/{key_id}"
    by_arn, by_id, other_account, other_region, mismatch = run_all([
        ["audit", "--key", arn, "--json", *args], ["audit", "--key", key_id, "--json", *args],
        ["audit", "--key", arn.replace(ACCOUNT, "444455556666"), "--json", *args],
        ["audit", "--key", arn.replace("us-east-1", "us-west-2"), *args],
        ["audit", "--key", arn, "--region", "eu-west-1", *args]])
    assert by_arn.returncode == 0 and by_arn.stdout == by_id.stdout
    assert '"eventName": "Encrypt"' in by_arn.stdout, by_arn.stdout
    assert (other_account.returncode, other_account.stdout) == (0, "")  # no record of that key
    assert (other_region.returncode, other_region.stderr) == (
        1, "keyledger audit: region us-west-2 has no ledger in this store\n")
    assert (mismatch.returncode, mismatch.stderr) == (
        1, "ValidationException: The key ARN names Region 'us-east-1', but region is "
           "'eu-west-1'.\n")


def test_a_store_that_is_not_a_postgresql_url_and_a_limit_below_one_are_refused(sqlite_store):
    settings, key_id = sqlite_store
    garbage, history, limit = run_all([
        ["audit", "--store", "garbage", *store_args(settings)],
        ["history", key_id, "--store", "mysql://x/y", *store_args(settings)],
        ["audit", "--limit", "0", *store_args(settings)]])
    assert (garbage.returncode, garbage.stdout, garbage.stderr) == (
        1, "", "keyledger audit: --store takes a postgresql:// URL, not 'garbage'\n")
    assert (history.returncode, history.stderr) == (
        1, "keyledger history: --store takes a postgresql:// URL, not 'mysql://x/y'\n")
    assert (limit.returncode, limit.stdout, limit.stderr) == (
        1, "", "keyledger audit: --limit must be at least 1, not 0\n")


def test_the_audit_table_names_an_alias_as_an_alias_and_a_key_by_its_id_and_lines_up():
    from api.audit_cli import _table

    root = {"arn": f"arn:aws:iam::{ACCOUNT}:root"}
    two = {"eventTime": "2026-12-06T09:14:00Z", "awsRegion": "us-east-1",
           "eventName": "CreateAlias", "userIdentity": root, "requestID": "r1",
           "sourceIPAddress": "127.0.0.1",
           "resources": [{"ARN": f"arn:aws:kms:us-east-1:{ACCOUNT}:alias/app"},
                         {"ARN": f"arn:aws:kms:us-east-1:{ACCOUNT}:key/{KEY}"}]}
    one = {**two, "eventName": "Decrypt", "errorCode": "AccessDeniedException", "requestID": "r2",
           "resources": [{"ARN": f"arn:aws:kms:us-east-1:{ACCOUNT}:key/{KEY}"}]}
    assert _table([two, one]) == [
        f"2026-12-06T09:14:00Z  us-east-1  CreateAlias  OK                     alias/app,{KEY}  "
        f"{root['arn']}  (127.0.0.1, request r1)",
        f"2026-12-06T09:14:00Z  us-east-1  Decrypt      AccessDeniedException  {KEY}"
        f"{' ' * 12}{root['arn']}  (127.0.0.1, request r2)",
    ]


def test_audit_reads_every_regions_audit_store_whatever_its_ledger(tmp_path):
    """Without --region, every Region's records, a Region whose ledger (or keyring) is gone
    or damaged too: the audit lives in its own store. --limit bounds an export as a listing."""
    settings = Settings(data_dir=str(tmp_path / "data"))
    harness = Harness(settings)
    key_id = exercise(harness)
    store_audit_records(harness, key_id, ["req-west"], datetime.now(UTC), region="us-west-2")
    harness.close()
    west = settings.data_path / "regions" / "us-west-2"
    for name in ("ledger.db", "keyring.db", "directory.db"):
        for path in west.glob(name + "*"):
            path.unlink()
    both = cli("audit", "--json", *store_args(settings))
    assert both.returncode == 0, both.stderr
    records = [orjson.loads(line) for line in both.stdout.splitlines()]
    assert {r["awsRegion"] for r in records} == {"us-east-1", "us-west-2"}
    assert "req-west" in [r.get("requestID") for r in records]
    newest = cli("audit", "--json", "--limit", "1", *store_args(settings))
    out = tmp_path / "export"
    export = cli("audit", "--limit", "1", "export", "--out", str(out), *store_args(settings))
    assert export.returncode == 0, export.stderr
    assert export.stdout.startswith("wrote 1 records in 1 files"), export.stdout
    (file,) = out.rglob("*.json.gz")
    assert [orjson.loads(gzip.decompress(file.read_bytes()))["Records"][0]["eventID"]] == [
        orjson.loads(newest.stdout)["eventID"]]


def test_bad_arguments_and_an_unusable_root_key_are_one_line_never_a_traceback(sqlite_store,
                                                                                tmp_path):
    settings, key_id = sqlite_store
    args = store_args(settings)
    endpoint, promote_nowhere, promote_missing = run_all([
        ["regions", "--endpoint", "not-a-url"],
        ["promote", "mrk-" + "0" * 32, "--region", "nowhere-1", *args],
        ["promote", "mrk-" + "0" * 32, "--region", "us-east-1", "--data-dir",
         str(tmp_path / "none")]])
    assert (endpoint.returncode, endpoint.stderr) == (
        1, "keyledger regions: --endpoint takes a node's URL (http://HOST:PORT), not "
           "'not-a-url'\n")
    assert (promote_nowhere.returncode, promote_nowhere.stderr) == (
        1, "keyledger promote: region nowhere-1 has no ledger in this store\n")
    assert (promote_missing.returncode, promote_missing.stderr) == (
        1, f"keyledger promote: no keyledger store in {tmp_path / 'none'}\n")
    assert not (tmp_path / "none").exists()
    root_key = settings.data_path / "root.key"
    root_key.chmod(0o644)
    for command in (["checkpoint-key"], ["fork", "--at", "2026-01-01T00:00:00Z", "--out",
                                         str(tmp_path / "fork")]):
        refused = cli(*command, *args)
        assert (refused.returncode, refused.stderr) == (
            2, f"keyledger {command[0]}: root key file {root_key} must not be readable by others "
               "(mode 644; chmod 600 it)\n")
    root_key.write_bytes(b"garbage\n")
    root_key.chmod(0o600)
    refused = cli("checkpoint-key", *args)
    assert (refused.returncode, refused.stderr) == (
        2, f"keyledger checkpoint-key: root key file {root_key} does not hold a root key "
           "(base64 of 32 bytes)\n")


@pytest.mark.parametrize("url", ["postgresql://u:secret@127.0.0.1:notaport/db",
                                 "postgresql://u:secret@127.0.0.1:99999/db",
                                 "postgresql://[::1/db",
                                 "postgresql://u:hunter2/secret@127.0.0.1:5432/db"])
def test_a_store_url_that_cannot_be_used_is_one_line_without_a_traceback(tmp_path, url):
    commands = [["audit", "--store", url], ["history", KEY, "--store", url],
                ["who-can", "kms:Decrypt", KEY, "--store", url],
                ["checkpoint-key", "--store", url, "--data-dir", str(tmp_path / "d")],
                ["audit", "export", "--store", url, "--out", str(tmp_path / "out")],
                ["verify", "--store", url, "--public-key", str(tmp_path / "none.pub")]]
    for proc in run_all(commands):
        command = " ".join(proc.args[:2] if proc.args[0] == "audit" else proc.args[:1])
        assert proc.returncode == 1, (proc.args, proc.stderr)
        assert proc.stderr.startswith(f"keyledger {command.split(' --')[0]}: --store is not a "
                                      "URL keyledger can use: "), proc.stderr
        assert len(proc.stderr.splitlines()) == 1
        assert "secret" not in proc.stderr and "hunter2" not in proc.stderr
    assert not any(tmp_path.iterdir())  # (nothing made)


def test_verify_reads_no_more_of_a_public_key_file_than_a_key_takes(tmp_path):
    proc = subprocess.run([sys.executable, "-m", "api", "verify", "--data-dir", str(tmp_path),
                           "--public-key", "/dev/zero"], cwd=PROJECT_ROOT, env=child_env(),
                          capture_output=True, text=True, timeout=60)
    assert proc.returncode == 2
    assert proc.stderr == ("keyledger verify: cannot read the public key /dev/zero: more than "
                           "16384 bytes: no PEM public key\n")


def test_checkpoint_key_reads_a_copied_data_dir_as_it_was_copied(kms, tmp_path):
    """Once the store has its signing key, checkpoint-key only reads: on a copy taken while a
    server ran (write-ahead logs full), every file keeps its bytes, the logs too."""
    if kms.settings.store:
        pytest.skip("a data dir's files: SQLite")
    exercise(kms)
    assert cli("checkpoint-key", *store_args(kms.settings)).returncode == 0  # (made: live)
    exercise(kms)  # (the open process's writes wait in the write-ahead logs)
    copy = tmp_path / "copy"
    shutil.copytree(kms.settings.data_path, copy)
    assert (copy / "regions" / "us-east-1" / "audit.db-wal").stat().st_size > 0
    def files() -> dict[str, bytes]:  # (-shm: SQLite's shared index of the log, which a
        # reader rebuilds; the log itself and the databases are the contents)
        return {str(p.relative_to(copy)): p.read_bytes() for p in sorted(copy.rglob("*"))
                if p.is_file() and not p.name.endswith("-shm")}

    before = files()
    printed = cli("checkpoint-key", "--data-dir", str(copy))
    assert printed.returncode == 0, printed.stderr
    assert printed.stdout.startswith("-----BEGIN PUBLIC KEY-----\n")
    assert files() == before
