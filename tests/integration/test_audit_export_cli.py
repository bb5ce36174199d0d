"""``keyledger audit export`` run as a command on a store with audit records: on a terminal
(a pseudo-terminal) it draws a progress bar on stderr; through pipes it prints none; the files
it writes are the same either way."""

from __future__ import annotations

import gzip
import os
import pty
import re
import select
import subprocess
import sys
import time
from datetime import UTC, datetime, timedelta
from pathlib import Path

import orjson

from application.audit import audit_row, new_event_id
from application.audit_records import api_call_record
from domain.principals import Principal

PROJECT_ROOT = Path(__file__).resolve().parents[2]
ACCOUNT = "111122223333"
START = datetime(2026, 3, 1, 9, 1, tzinfo=UTC)
#: (region, minutes after START) of each record: five-minute windows 09:00, 09:05, 09:10 and
#: 09:20 in us-east-1, 09:00 and 09:05 in eu-west-1 — six CloudTrail files
RECORDS = [("us-east-1", m) for m in (0, 1, 3, 5, 7, 9, 12, 20)] + [
    ("eu-west-1", m) for m in (2, 6, 8)]
FILES = 6
BAR = re.compile(r"\r\[(#*)(\.*)\] (\d+)/(\d+) files")


def populate(kms) -> None:
    """Encrypt records, as the front end stores them, in two regions' audit stores."""
    principal = Principal.root(ACCOUNT)
    for region, minutes in RECORDS:
        when = START + timedelta(minutes=minutes)
        arn = f"arn:aws:kms:{region}:{ACCOUNT}:key/1234abcd-12ab-34cd-56ef-1234567890ab"
        request_id = f"req-{region}-{minutes}"
        record = api_call_record(
            principal=principal, access_key_id="AKIDTEST", account=ACCOUNT, region=region,
            operation="Encrypt", params={"KeyId": arn, "Plaintext": b"secret"},
            result={"KeyId": arn, "CiphertextBlob": b"blob"}, error_code=None,
            error_message=None, event_time=when, event_id=new_event_id(), request_id=request_id,
            source_ip="127.0.0.1", user_agent="pytest", resources=(arn,),
        )
        kms.service.region(region).audit.record_blocking(
            audit_row(record, when, ACCOUNT, (arn,), principal.arn, request_id))


def command(settings, out: Path) -> list[str]:
    args = [sys.executable, "-m", "api", "audit", "export", "--out", str(out),
            "--data-dir", str(settings.data_path)]
    return args + (["--store", settings.store] if settings.store else [])


def child_env() -> dict[str, str]:
    return {k: v for k, v in os.environ.items() if not k.startswith("KEYLEDGER_")}


def run_on_a_terminal(cmd: list[str], timeout: float = 60) -> tuple[int, str]:
    """Run ``cmd`` with stdin, stdout and stderr on a pseudo-terminal; everything it wrote."""
    master, slave = pty.openpty()
    try:
        proc = subprocess.Popen(cmd, stdin=slave, stdout=slave, stderr=slave, cwd=PROJECT_ROOT,
                                env=child_env(), start_new_session=True)
    finally:
        os.close(slave)
    output = bytearray()
    deadline = time.monotonic() + timeout
    try:
        while time.monotonic() < deadline:
            ready, _, _ = select.select([master], [], [], 0.5)
            if not ready:
                continue
            try:
                chunk = os.read(master, 65536)
            except OSError:  # EIO: the child closed its end
                break
            if not chunk:
                break
            output += chunk
        else:
            proc.kill()
            raise AssertionError(f"export still running after {timeout}s: {bytes(output)!r}")
        return proc.wait(timeout=10), output.decode()
    finally:
        os.close(master)


def exported(out: Path) -> dict[str, bytes]:
    """Each file's bytes, by its path without the export's random file id."""
    files = {}
    for path in sorted(out.rglob("*")):
        if path.is_file():
            name = re.sub(r"_[0-9a-f]{16}\.json\.gz$", ".json.gz", str(path.relative_to(out)))
            files[name] = path.read_bytes()
    return files


def test_export_draws_a_progress_bar_on_a_terminal_only(kms, tmp_path):
    populate(kms)
    kms.close()  # the command reads the store offline

    code, terminal = run_on_a_terminal(command(kms.settings, tmp_path / "tty"))
    assert code == 0, terminal
    steps = [(len(m[1]), len(m[2]), int(m[3]), int(m[4])) for m in BAR.finditer(terminal)]
    assert steps == [(40 * done // FILES, 40 - 40 * done // FILES, done, FILES)
                     for done in range(1, FILES + 1)], terminal
    # the bar ends its line before the summary is printed
    assert re.search(rf"\] {FILES}/{FILES} files\r?\nwrote {len(RECORDS)} records in {FILES} "
                     r"files under .*tty/AWSLogs\r?\n$", terminal), terminal

    piped = subprocess.run(command(kms.settings, tmp_path / "pipe"), capture_output=True,
                           text=True, timeout=60, cwd=PROJECT_ROOT, env=child_env())
    assert piped.returncode == 0, piped.stderr
    assert piped.stderr == ""
    assert re.fullmatch(rf"wrote {len(RECORDS)} records in {FILES} files under .*pipe/AWSLogs\n",
                        piped.stdout), piped.stdout

    on_terminal, through_pipes = exported(tmp_path / "tty"), exported(tmp_path / "pipe")
    assert on_terminal == through_pipes
    assert len(on_terminal) == FILES
    records = [orjson.loads(gzip.decompress(data))["Records"] for data in on_terminal.values()]
    assert sorted(r["requestID"] for group in records for r in group) == sorted(
        f"req-{region}-{minutes}" for region, minutes in RECORDS)
    assert f"AWSLogs/{ACCOUNT}/CloudTrail/us-east-1/2026/03/01/{ACCOUNT}_CloudTrail_us-east-1_" \
           "20260301T0920Z.json.gz" in on_terminal


def test_an_export_run_again_says_it_added_nothing_and_leaves_the_files_as_they_were(kms, tmp_path):
    populate(kms)
    kms.close()
    out = tmp_path / "out"
    first = subprocess.run(command(kms.settings, out), capture_output=True, text=True,
                           timeout=60, cwd=PROJECT_ROOT, env=child_env())
    assert first.returncode == 0, first.stderr
    assert re.fullmatch(rf"wrote {len(RECORDS)} records in {FILES} files under .*/AWSLogs\n",
                        first.stdout), first.stdout
    files = sorted(path for path in out.rglob("*") if path.is_file())
    before = {path: (path.read_bytes(), path.stat().st_mtime_ns) for path in files}

    again = subprocess.run(command(kms.settings, out), capture_output=True, text=True,
                           timeout=60, cwd=PROJECT_ROOT, env=child_env())
    assert again.returncode == 0, again.stderr
    assert re.fullmatch(rf"wrote 0 records in 0 files under .*/AWSLogs; {len(RECORDS)} of the "
                        r"records were there already\n", again.stdout), again.stdout
    assert {path: (path.read_bytes(), path.stat().st_mtime_ns) for path in files} == before

    # one file's window loses a record (an operator pruned it): only that file is written again
    window = next(path for path in files if "us-east-1_20260301T0920Z" in path.name)
    window.write_bytes(gzip.compress(orjson.dumps({"Records": []}), mtime=0))
    third = subprocess.run(command(kms.settings, out), capture_output=True, text=True,
                           timeout=60, cwd=PROJECT_ROOT, env=child_env())
    assert re.fullmatch(rf"wrote 1 records in 1 files under .*/AWSLogs; {len(RECORDS) - 1} of "
                        r"the records were there already\n", third.stdout), third.stdout
    assert window.read_bytes() == before[window][0]
