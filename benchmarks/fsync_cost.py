"""What one durable write costs on this machine: CPU (user + system, of the calling thread) and
wall time per write, for the three ways a group commit can make a batch durable.

    .venv/bin/python benchmarks/fsync_cost.py [--dir DIR] [--writes 2000] [--size 9000]

* ``append + fdatasync``: the file grows with every write (the file system commits its size);
* ``preallocated pwrite + fdatasync``: the blocks were written once before, the write lands in
  place (only the data is flushed);
* ``preallocated O_DSYNC pwrite``: the same, the flush inside the write.

``--size`` defaults to a group commit of ~8 audit records (1.1 KB each). Each way runs twice,
side by side; the figures are per write. ``--dir`` should be on the disk the data dir uses.
"""

from __future__ import annotations

import argparse
import os
import resource
import tempfile
import time
from collections.abc import Callable
from pathlib import Path


def _thread_cpu() -> float:
    usage = resource.getrusage(resource.RUSAGE_THREAD)
    return usage.ru_utime + usage.ru_stime


def _preallocated(path: Path, size: int, extra_flags: int = 0) -> int:
    fd = os.open(path, os.O_RDWR | os.O_CREAT | os.O_TRUNC, 0o600)
    os.write(fd, bytes(size))
    os.fsync(fd)
    if extra_flags:
        os.close(fd)
        fd = os.open(path, os.O_RDWR | extra_flags)
    return fd


def measure(name: str, fd: int, write: Callable[[int, int], None], writes: int) -> None:
    cpu, wall = _thread_cpu(), time.perf_counter()
    for i in range(writes):
        write(fd, i)
    cpu, wall = _thread_cpu() - cpu, time.perf_counter() - wall
    os.close(fd)
    print(f"{name:34s} CPU {cpu / writes * 1e6:6.1f} µs   wall {wall / writes * 1e6:6.1f} µs")


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--dir", type=Path, default=None)
    parser.add_argument("--writes", type=int, default=2000)
    parser.add_argument("--size", type=int, default=9000)
    args = parser.parse_args()
    blob, stride = os.urandom(args.size), -(-args.size // 4096) * 4096
    with tempfile.TemporaryDirectory(dir=args.dir) as folder:
        log, slots = Path(folder) / "append.log", Path(folder) / "slots.log"

        def append(fd: int, _: int) -> None:
            os.write(fd, blob)
            os.fdatasync(fd)

        def in_place(fd: int, i: int) -> None:
            os.pwrite(fd, blob, i * stride)
            os.fdatasync(fd)

        def in_place_dsync(fd: int, i: int) -> None:
            os.pwrite(fd, blob, i * stride)

        print(f"{args.writes} writes of {args.size} bytes in {folder}")
        for _ in range(2):
            measure("append + fdatasync", os.open(
                log, os.O_WRONLY | os.O_CREAT | os.O_TRUNC | os.O_APPEND, 0o600), append, args.writes)
            measure("preallocated pwrite + fdatasync",
                    _preallocated(slots, args.writes * stride), in_place, args.writes)
            measure("preallocated O_DSYNC pwrite",
                    _preallocated(slots, args.writes * stride, os.O_DSYNC), in_place_dsync,
                    args.writes)


if __name__ == "__main__":
    main()
