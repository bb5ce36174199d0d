"""A server worker process ends with the process that supervises it (Linux).

``keyledger serve --workers N`` (N > 1) runs uvicorn's supervisor, which starts N worker
processes that share its listening socket. If the supervisor dies without stopping them
(``kill -9``, the OOM killer), the workers would go on serving on the port, with no supervisor
to restart or stop them, and a server started again on that port and data dir could not bind.
Each worker therefore asks the kernel for SIGTERM when its parent ends (``PR_SET_PDEATHSIG``):
it then shuts down as on ``kill -TERM`` — requests in flight are answered, their audit records
stored, the chain checkpointed.

The supervisor's pid reaches the workers in the environment (:data:`SUPERVISOR_ENV`), as their
settings do: a worker whose supervisor ended before it asked (its parent is no longer the
supervisor) sends itself SIGTERM, which uvicorn takes once it serves: it starts, then stops
as the others do. Elsewhere than on Linux this does nothing.
"""

from __future__ import annotations

import ctypes
import os
import signal
import sys

SUPERVISOR_ENV = "KEYLEDGER_SUPERVISOR_PID"
_PR_SET_PDEATHSIG = 1  # <linux/prctl.h>


def end_with_supervisor() -> bool:
    """In a worker of ``serve --workers N`` (this process is not the supervisor named in the
    environment), get SIGTERM when the supervisor ends. Returns whether it was asked."""
    supervisor = os.environ.get(SUPERVISOR_ENV)
    if not supervisor or not supervisor.isdigit() or int(supervisor) == os.getpid():
        return False  # not a worker: a single-process server, or an app built in a test
    if not sys.platform.startswith("linux"):
        return False
    libc = ctypes.CDLL(None, use_errno=True)
    if libc.prctl(_PR_SET_PDEATHSIG, signal.SIGTERM, 0, 0, 0) != 0:
        return False
    if os.getppid() != int(supervisor):  # it ended before the request: as if it ended now
        os.kill(os.getpid(), signal.SIGTERM)
    return True
