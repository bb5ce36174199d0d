"""A test process that dies mid-run fails its test, says how it died, and the run goes on to its
end (tests/xdist_crashes.py): a small suite run as ``make test`` runs ours."""

from __future__ import annotations

import os
import subprocess
import sys
from pathlib import Path

import pytest

PROJECT_ROOT = Path(__file__).resolve().parents[2]

_PASSING = "def test_one():\n    pass\n\ndef test_two():\n    pass\n"
_DYING = """import os, signal

def test_before():
    pass

def test_dies():
    os.kill(os.getpid(), signal.SIGKILL)

def test_after():
    pass
"""


@pytest.mark.parametrize("dying", ["test_a.py", "test_z.py"])  # given out first, and last
def test_a_process_killed_mid_file_fails_its_test_and_the_run_ends(tmp_path, dying):
    (tmp_path / "pytest.ini").write_text("[pytest]\n")
    (tmp_path / dying).write_text(_DYING)
    for name in ("test_b.py", "test_c.py", "test_d.py"):
        (tmp_path / name).write_text(_PASSING)
    env = {**os.environ, "PYTHONPATH": str(PROJECT_ROOT)}
    result = subprocess.run(
        [sys.executable, "-m", "pytest", "-p", "tests.xdist_crashes", "-p", "no:cacheprovider",
         "-n", "2", "--dist", "loadfile", "-q", "-rf"],
        cwd=tmp_path, env=env, capture_output=True, text=True, timeout=120,
    )
    output = result.stdout + result.stderr
    assert result.returncode == 1, output
    assert "1 failed, 8 passed" in output, output  # test_dies failed, test_after ran
    assert f"crashed while running '{dying}::test_dies'" in output, output
    assert "ended with exit status -9" in output, output
