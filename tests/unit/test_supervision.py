"""A worker of ``serve --workers N`` ends with its supervisor (infrastructure.supervision); the
real supervisor and workers: tests/e2e/test_workers.py."""

from __future__ import annotations

import os
import signal
import subprocess
import sys

import pytest

from infrastructure.supervision import SUPERVISOR_ENV, end_with_supervisor

pytestmark = pytest.mark.skipif(not sys.platform.startswith("linux"), reason="PR_SET_PDEATHSIG")

_ASK = "from infrastructure.supervision import end_with_supervisor as e; print(e(), flush=True)"


def _child(supervisor: str | None) -> subprocess.CompletedProcess:
    env = {k: v for k, v in os.environ.items() if k != SUPERVISOR_ENV}
    if supervisor is not None:
        env[SUPERVISOR_ENV] = supervisor
    return subprocess.run([sys.executable, "-c", _ASK + "; import time; time.sleep(0.5)"],
                          capture_output=True, text=True, timeout=30, env=env,
                          cwd=os.path.dirname(os.path.dirname(os.path.dirname(__file__))))


def test_a_process_that_is_no_worker_asks_nothing(monkeypatch):
    monkeypatch.delenv(SUPERVISOR_ENV, raising=False)
    assert end_with_supervisor() is False
    monkeypatch.setenv(SUPERVISOR_ENV, str(os.getpid()))  # the supervisor itself
    assert end_with_supervisor() is False


def test_a_worker_of_a_living_supervisor_asks_and_lives_on():
    result = _child(str(os.getpid()))  # this process is the child's parent
    assert (result.returncode, result.stdout) == (0, "True\n"), result.stderr


def test_a_worker_whose_supervisor_already_ended_ends_at_once():
    result = _child("1")  # not its parent: the supervisor it names is gone
    assert result.returncode == -signal.SIGTERM, (result.stdout, result.stderr)
