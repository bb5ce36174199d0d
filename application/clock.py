"""The application's clock: deletion windows and rotation dates are measured on it."""

from __future__ import annotations

import os
import threading
from datetime import UTC, datetime, timedelta
from pathlib import Path


class Clock:
    """Wall-clock time (UTC)."""

    def now(self) -> datetime:
        return datetime.now(UTC)


class AdjustableClock(Clock):
    """Wall-clock time plus an offset that tests move forward (never backward).

    With ``offset_file``, the offset is shared by every process that uses the same file
    (the workers of one server), so a clock moved through one worker moves for all.
    """

    def __init__(self, offset_file: Path | None = None) -> None:
        self._offset_file = offset_file
        self._offset = timedelta(0)
        self._lock = threading.Lock()

    def _load(self) -> timedelta:
        if self._offset_file is None:
            return self._offset
        try:
            return timedelta(seconds=float(self._offset_file.read_text()))
        except (FileNotFoundError, ValueError):
            return timedelta(0)

    def now(self) -> datetime:
        return super().now() + self._load()

    def advance(self, delta: timedelta) -> datetime:
        if delta < timedelta(0):
            raise ValueError("the clock only moves forward")
        with self._lock:
            self._offset = self._load() + delta
            if self._offset_file is not None:
                tmp = self._offset_file.with_suffix(f".{os.getpid()}.tmp")
                tmp.write_text(repr(self._offset.total_seconds()))
                os.replace(tmp, self._offset_file)
        return self.now()
