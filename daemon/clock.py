"""Wall-clock time for records and schedules, separable from trio's clock for tests."""

from __future__ import annotations

from datetime import UTC, datetime, timedelta
from typing import Protocol

import trio

__all__ = ["Clock", "SystemClock", "TrioClock"]


class Clock(Protocol):
    def now(self) -> datetime:
        """The current time, timezone-aware UTC."""
        ...


class SystemClock:
    def now(self) -> datetime:
        return datetime.now(UTC)


class TrioClock:
    """Wall time that moves with ``trio.current_time()``: under an ``autojump_clock``
    schedules can be tested in virtual time with no real sleeps."""

    def __init__(self, origin: datetime) -> None:
        self.origin = origin
        self.t0 = trio.current_time()

    def now(self) -> datetime:
        return self.origin + timedelta(seconds=trio.current_time() - self.t0)
