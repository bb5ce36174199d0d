"""Processes that open one PostgreSQL store at the same moment (a server's workers, several
nodes, the CLI beside a server) must not trip over each other's table creation."""

from __future__ import annotations

import subprocess
import sys
from pathlib import Path

from api.bootstrap import build_service
from api.settings import Settings

ROOT = Path(__file__).resolve().parents[2]
OPEN_A_REGION = (
    "import sys\n"
    "from api.bootstrap import build_service\n"
    "from api.settings import Settings\n"
    "service = build_service(Settings(data_dir=sys.argv[1], store=sys.argv[2]), read_only=True)\n"
    "service.region('us-east-1')\n"
    "service.close()\n"
)


def test_processes_opening_a_region_together_all_succeed(postgres_url, tmp_path):
    """Before: each process's applications ran CREATE TABLE / INDEX IF NOT EXISTS again outside
    the Region's advisory lock, and PostgreSQL answered some of them 'tuple concurrently
    updated' (4 of 48 processes in a run of this test)."""
    first = build_service(Settings(data_dir=str(tmp_path / "data"), store=postgres_url))
    first.region("us-east-1")  # the store exists, as when a server ran once
    first.close()
    failures = []
    for _ in range(6):
        processes = [subprocess.Popen(
            [sys.executable, "-c", OPEN_A_REGION, str(tmp_path / "data"), postgres_url],
            cwd=ROOT, stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True)
            for _ in range(8)]
        for process in processes:
            _, err = process.communicate(timeout=120)
            if process.returncode != 0:
                failures.append(err.strip().splitlines()[-1])
    assert failures == []
