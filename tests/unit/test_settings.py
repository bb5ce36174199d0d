"""Server settings refuse values that would make the server misbehave, before it starts."""

from __future__ import annotations

import subprocess
import sys
from pathlib import Path

import pytest

from api.settings import Settings

ROOT = Path(__file__).resolve().parents[2]


@pytest.mark.parametrize("days", ["0", "-30"])
def test_audit_retention_must_keep_records_at_least_a_day(days):
    with pytest.raises(ValueError, match=f"--audit-retention-days must be at least 1, not {days}"):
        Settings.from_env(audit_retention_days=days)


@pytest.mark.parametrize("delay", ["-1", "100001"])
def test_audit_commit_delay_is_0_to_100_ms(delay):
    with pytest.raises(ValueError, match=f"--audit-commit-delay-us must be 0 to 100000, not {delay}"):
        Settings.from_env(audit_commit_delay_us=delay)
    assert Settings.from_env(audit_commit_delay_us="0").audit_commit_delay_us == 0


def test_workers_must_be_at_least_one():
    with pytest.raises(ValueError, match="--workers must be at least 1, not 0"):
        Settings.from_env(workers="0")


def test_retention_from_the_environment_is_checked_too(monkeypatch):
    monkeypatch.setenv("KEYLEDGER_AUDIT_RETENTION_DAYS", "0")
    with pytest.raises(ValueError, match="--audit-retention-days must be at least 1, not 0"):
        Settings.from_env()
    monkeypatch.setenv("KEYLEDGER_AUDIT_RETENTION_DAYS", "30")
    assert Settings.from_env().audit_retention_days == 30


def test_serve_refuses_a_zero_retention_before_starting(tmp_path):
    done = subprocess.run(
        [sys.executable, "-m", "api", "serve", "--data-dir", str(tmp_path / "data"),
         "--port", "0", "--audit-retention-days", "0"],
        cwd=ROOT, capture_output=True, text=True, timeout=60)
    assert done.returncode == 1
    assert done.stderr.strip().splitlines()[-1] == (
        "keyledger serve: --audit-retention-days must be at least 1, not 0: audit records are "
        "kept that many days")
    assert not (tmp_path / "data").exists()
