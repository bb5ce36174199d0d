"""Processes that open a new SQLite data dir at the same moment (a server's workers on their
first start) must not trip over each other's table creation."""

from __future__ import annotations

import subprocess
import sys
from pathlib import Path

ROOT = Path(__file__).resolve().parents[2]
OPEN_A_REGION = (
    "import sys\n"
    "from api.bootstrap import build_service\n"
    "from api.settings import Settings\n"
    "service = build_service(Settings(data_dir=sys.argv[1]))\n"
    "service.region('us-east-1')\n"
    "service.close()\n"
)


def test_processes_opening_a_new_region_together_all_succeed(tmp_path):
    """Before: each process created the Region's tables, and eventsourcing's first tracking
    row (its "__migration__" marker) was inserted by each: one of them failed with
    "IntegrityError: Failed to record tracking for __migration__ 1"."""
    failures = []
    for round_ in range(4):
        data = tmp_path / f"data-{round_}"
        processes = [subprocess.Popen(
            [sys.executable, "-c", OPEN_A_REGION, str(data)],
            cwd=ROOT, stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True)
            for _ in range(6)]
        for process in processes:
            _, err = process.communicate(timeout=120)
            if process.returncode != 0:
                failures.append(err.strip().splitlines()[-1])
    assert failures == []
