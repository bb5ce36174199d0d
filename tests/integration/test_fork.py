"""keyledger fork: a new data dir with the ledger as it was at an instant or a position."""

from __future__ import annotations

import time
from datetime import UTC, datetime
from pathlib import Path

import pytest

from api.bootstrap import build_service
from api.cli import main
from api.settings import Settings
from domain import errors
from tests.integration.conftest import Harness


def _args(settings, *extra) -> list[str]:
    args = ["fork", "--data-dir", settings.data_dir, *extra]
    return args + (["--store", settings.store] if settings.store else [])


def test_fork_at_an_instant_holds_the_keys_as_they_were(kms, settings, tmp_path, capsys):
    kept = kms.call("CreateKey", Description="before")["KeyMetadata"]["KeyId"]
    blob = kms.call("Encrypt", KeyId=kept, Plaintext=b"made before")["CiphertextBlob"]
    doomed = kms.call("CreateKey")["KeyMetadata"]["KeyId"]
    mrk = kms.call("CreateKey", MultiRegion=True)["KeyMetadata"]["KeyId"]
    kms.call("ReplicateKey", KeyId=mrk, ReplicaRegion="us-west-2")
    time.sleep(0.01)
    at = datetime.now(UTC)
    time.sleep(0.01)
    kms.call("UpdateKeyDescription", KeyId=kept, Description="after")
    kms.call("RotateKeyOnDemand", KeyId=kept)
    after = kms.call("CreateKey")["KeyMetadata"]["KeyId"]
    kms.call("ScheduleKeyDeletion", KeyId=doomed, PendingWindowInDays=7)
    kms.advance(days=8)  # deleted and crypto-shredded after the instant
    kms.close()

    out = tmp_path / "fork"
    assert main(_args(settings, "--at", at.isoformat(), "--out", str(out))) == 0
    assert "us-east-1:" in capsys.readouterr().out
    fork = Harness(Settings(data_dir=str(out), enable_test_control=True))
    try:
        for name in ("us-east-1", "us-west-2"):
            fork.service.region(name)
        md = fork.call("DescribeKey", KeyId=kept)["KeyMetadata"]
        assert md["Description"] == "before"
        assert fork.call("ListKeyRotations", KeyId=kept)["Rotations"] == []
        assert fork.call("Decrypt", CiphertextBlob=blob)["Plaintext"] == b"made before"
        with pytest.raises(errors.NotFoundException):
            fork.call("DescribeKey", KeyId=after)
        assert fork.call("DescribeKey", KeyId=doomed)["KeyMetadata"]["KeyState"] == "Enabled"
        with pytest.raises(errors.KeyUnavailableException):  # shredded since: gone for good
            fork.call("Encrypt", KeyId=doomed, Plaintext=b"x")
        west = fork.context("us-west-2")
        assert fork.call("DescribeKey", west, KeyId=mrk)["KeyMetadata"]["KeyState"] == "Enabled"
        assert fork.call("Encrypt", west, KeyId=mrk, Plaintext=b"x")["KeyId"].endswith(mrk)
    finally:
        fork.close()


def test_fork_at_a_position_of_one_region(kms, settings, tmp_path, capsys):
    first = kms.call("CreateKey")["KeyMetadata"]["KeyId"]
    position = kms.service.region("us-east-1").ledger.recorder.max_notification_id()
    second = kms.call("CreateKey")["KeyMetadata"]["KeyId"]
    kms.close()
    assert main(_args(settings, "--position", "1", "--out", str(tmp_path / "x"))) == 1
    assert "--region" in capsys.readouterr().err
    out = tmp_path / "fork"
    assert main(_args(settings, "--position", str(position), "--region", "us-east-1",
                      "--out", str(out))) == 0
    service = build_service(Settings(data_dir=str(out)))
    try:
        ledger = service.region("us-east-1").ledger
        assert ledger.get_key(first) is not None and ledger.get_key(second) is None
    finally:
        service.close()


def test_fork_refuses_a_time_it_cannot_read_in_one_line(kms, settings, tmp_path, capsys):
    kms.call("CreateKey")
    kms.close()
    out = tmp_path / "fork"
    assert main(_args(settings, "--at", "yesterday", "--out", str(out))) == 1
    assert capsys.readouterr().err == ("ValidationException: --at must be ISO 8601 "
                                       "(2024-05-01T09:14:00Z) or epoch seconds, not 'yesterday'.\n")
    assert not out.exists()


def test_fork_only_reads_its_source(kms, settings, tmp_path, capsys):
    """The source keeps every file's bytes (SQLite files are opened read-only); a Region or
    data dir that holds no ledger is refused, and nothing is made there; a repeated --region
    is read once; a time in the future is refused as history refuses it."""
    kms.call("CreateKey")
    kms.close()
    source = Path(settings.data_dir)

    def files() -> dict[str, bytes]:
        return {str(p.relative_to(source)): p.read_bytes() for p in sorted(source.rglob("*"))
                if p.is_file() and not p.name.endswith(("-wal", "-shm"))}

    before = files()
    out = tmp_path / "fork"
    assert main(_args(settings, "--at", datetime.now(UTC).isoformat(), "--region", "us-east-1",
                      "--region", "us-east-1", "--out", str(out))) == 0
    assert capsys.readouterr().out.splitlines()[0].startswith("us-east-1: ")
    assert files() == before
    refused = [(["--region", "eu-central-1"], "region eu-central-1 has no ledger in this store"),
               (["--region", "nowhere-1"], "region nowhere-1 has no ledger in this store")]
    for extra, why in refused:
        assert main(_args(settings, "--at", datetime.now(UTC).isoformat(), *extra,
                          "--out", str(tmp_path / "refused"))) == 1
        assert capsys.readouterr().err == f"keyledger fork: {why}\n"
    assert files() == before and not (tmp_path / "refused").exists()
    assert main(["fork", "--data-dir", str(tmp_path / "none"), "--at", "2026-01-01T00:00:00Z",
                 "--out", str(tmp_path / "refused")]) == 1
    assert capsys.readouterr().err == f"keyledger fork: no keyledger store in {tmp_path / 'none'}\n"
    assert not (tmp_path / "none").exists()
    assert main(_args(settings, "--at", "9999-01-01T00:00:00Z", "--out", str(tmp_path / "x"))) == 1
    assert "is in the future" in capsys.readouterr().err
