"""A test process that dies mid-run (``make test`` runs the suite in pytest-xdist processes,
a test file's tests in one of them) fails the test it was running, says how it died, and the
run goes on to its end.

pytest-xdist 3.8's file scheduler (``--dist loadfile``) hangs after a process dies: it puts
back every file the process was given, finished ones too, and a file with nothing left to
run is sent as an empty batch that never completes, so the run waits for it forever with
its processes idle (pytest-xdist issues #784, #1313, #1323; CI sat out its whole timeout so).
:class:`CrashSafeLoadFileScheduling` puts back only the unfinished tests of the files the
dead process held, the test it died on counted as finished (xdist has reported it failed:
running it again would take the replacement process down too, or report it twice). A process
runs a test only once it holds the next one or is told to end, so each is given two tests or
the last ones and the word to end (a replacement given one test would wait for ever).

When a process dies, :func:`pytest_testnodedown` prints its exit status: ``-9`` is a SIGKILL
from outside it, ``-11`` a crash in native code (whose traceback pytest's faulthandler has
written to the run's output just before), ``-13`` SIGPIPE: a write to a socket or pipe whose
reader has gone, in a process where something set SIGPIPE's default action (keyledger's CLI
did, until it stopped: its processes died after tests that ran it in-process).
"""

from __future__ import annotations

import time

from xdist.scheduler import LoadFileScheduling


class CrashSafeLoadFileScheduling(LoadFileScheduling):
    def remove_node(self, node):
        workload = self.assigned_work.pop(node)
        unfinished = {scope: unit for scope, unit in workload.items() if not all(unit.values())}
        if not unfinished:
            return None
        crashitem = next(nodeid for unit in unfinished.values()
                         for nodeid, done in unit.items() if not done)
        unfinished[self._split_scope(crashitem)][crashitem] = True
        self.workqueue.update((scope, unit) for scope, unit in unfinished.items()
                              if not all(unit.values()))
        for other in self.assigned_work:
            self._reschedule(other)
        return crashitem

    def _reschedule(self, node) -> None:
        super()._reschedule(node)
        # a process runs a test once it holds the next one too, or is told to end: a
        # replacement given one test from the files put back would wait for ever
        while (not node.shutting_down and self.workqueue
               and self._pending_of(self.assigned_work[node]) < 2):
            self._assign_work_unit(node)

    def _assign_work_unit(self, node) -> None:
        super()._assign_work_unit(node)
        if not self.workqueue:
            node.shutdown()  # it runs what it holds, then ends


def pytest_xdist_make_scheduler(config, log):
    if config.getvalue("dist") == "loadfile":
        return CrashSafeLoadFileScheduling(config, log)
    return None


def pytest_testnodedown(node, error) -> None:
    if error is None:
        return
    popen = getattr(getattr(node.gateway, "_io", None), "popen", None)
    status = None
    deadline = time.monotonic() + 5
    while popen is not None and status is None and time.monotonic() < deadline:
        status = popen.poll()
        time.sleep(0.05)
    terminal = node.config.pluginmanager.get_plugin("terminalreporter")
    if terminal is not None:
        terminal.write_line(f"{node.gateway.id} (pid {getattr(popen, 'pid', '?')}) ended with "
                            f"exit status {status}")
