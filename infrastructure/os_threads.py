"""Operating-system names for a server's threads (Linux), so that ``top -H``, ``ps -L``,
``perf`` and ``benchmarks/http_bench.py`` tell the event loop, the audit writer, the commit
writer and the maintenance threads apart (Python 3.11 gives every thread its process's name).

The kernel keeps 15 bytes of a name: ``keyledger-audit`` becomes ``kl-audit``. The main
thread (its name is the process's) keeps its name. Elsewhere than on Linux this does nothing.
"""

from __future__ import annotations

import threading
import weakref

_named: weakref.WeakSet[threading.Thread] = weakref.WeakSet()


def os_name(thread: threading.Thread) -> str:
    return thread.name.replace("keyledger-", "kl-")[:15]


def name_os_threads() -> None:
    """Give every live thread but the main one its name, once (threads start later too: call
    again)."""
    main = threading.main_thread()
    for thread in threading.enumerate():
        if thread is main or thread in _named or thread.native_id is None:
            continue
        try:
            with open(f"/proc/self/task/{thread.native_id}/comm", "w") as comm:
                comm.write(os_name(thread))
        except OSError:  # not Linux, or the thread ended meanwhile
            continue
        _named.add(thread)
