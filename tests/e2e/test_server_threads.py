"""The server names its threads for the operating system (``top -H``, ``ps -L``, the HTTP
benchmark's CPU split): the audit writer, the commit writer and the maintenance threads."""

from __future__ import annotations

from pathlib import Path

from tests.e2e.conftest import until


def _thread_names(pid: int) -> dict[int, str]:
    names = {}
    for task in Path(f"/proc/{pid}/task").iterdir():
        try:
            names[int(task.name)] = (task / "comm").read_text().strip()
        except OSError:  # the thread ended meanwhile
            continue
    return names


def test_the_servers_threads_carry_their_names(shared_server, kms, new_key):
    kms.encrypt(KeyId=new_key()["KeyId"], Plaintext=b"names")  # the Region's writers run
    pid = shared_server.proc.pid
    wanted = {"kl-audit", "kl-commit", "kl-maintenance", "kl-replication"}
    assert until(lambda: wanted <= set(_thread_names(pid).values())), _thread_names(pid)
    main = _thread_names(pid)[pid]
    assert not main.startswith("kl-"), main  # the main thread keeps the process's name
