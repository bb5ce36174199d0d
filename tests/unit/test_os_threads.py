"""Operating-system thread names: what the kernel's 15 bytes keep of keyledger's names."""

from __future__ import annotations

import threading
from pathlib import Path

from infrastructure.os_threads import name_os_threads, os_name


def test_names_keep_what_tells_threads_apart():
    assert os_name(threading.Thread(name="keyledger-audit")) == "kl-audit"
    assert os_name(threading.Thread(name="keyledger-maintenance")) == "kl-maintenance"
    assert os_name(threading.Thread(name="AnyIO worker thread")) == "AnyIO worker th"


def test_a_running_thread_is_named_once_and_the_main_thread_never():
    main_comm = Path(f"/proc/self/task/{threading.main_thread().native_id}/comm").read_text()
    stop = threading.Event()
    thread = threading.Thread(target=stop.wait, name="keyledger-unit-naming")
    thread.start()
    try:
        name_os_threads()
        comm = Path(f"/proc/self/task/{thread.native_id}/comm")
        assert comm.read_text().strip() == "kl-unit-naming"
        comm.write_text("renamed")  # named once: a later pass leaves it
        name_os_threads()
        assert comm.read_text().strip() == "renamed"
    finally:
        stop.set()
        thread.join()
    assert Path(f"/proc/self/task/{threading.main_thread().native_id}/comm").read_text() == main_comm
