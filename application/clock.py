"""The application's clock: deletion windows and rotation dates are measured on it."""

from __future__ import annotations

import threading
from datetime import datetime, timedelta, timezone


class Clock:
    """Wall-clock time (UTC)."""

    def now(self) -> datetime:
        return datetime.now(timezone.utc)


class AdjustableClock(Clock):
    """Wall-clock time plus an offset that tests move forward (never backward)."""

    def __init__(self) -> None:
        self._offset = timedelta(0)
        self._lock = threading.Lock()

    def now(self) -> datetime:
        return super().now() + self._offset

    def advance(self, delta: timedelta) -> datetime:
        if delta < timedelta(0):
            raise ValueError("the clock only moves forward")
        with self._lock:
            self._offset += delta
        return self.now()
