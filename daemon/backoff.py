"""Backoff delays and circuit breakers: pure, clock passed in, no event loop.

``backoff_delay`` gives capped exponential backoff with "equal jitter": half the delay
is fixed, half is random, so retries spread out without ever collapsing to zero.
A server's ``Retry-After`` wins when it asks for longer.
"""

from __future__ import annotations

import random
from dataclasses import dataclass
from datetime import UTC, datetime
from email.utils import parsedate_to_datetime
from enum import StrEnum

__all__ = [
    "BreakerState",
    "CircuitBreaker",
    "CircuitOpenError",
    "backoff_delay",
    "parse_retry_after",
]


def parse_retry_after(value: str | None, now: datetime | None = None) -> float | None:
    """Seconds a ``Retry-After`` header asks for: delta-seconds or an HTTP-date
    (RFC 9110 §10.2.3). None when absent or unreadable."""
    if value is None:
        return None
    value = value.strip()
    if value.isdigit():
        return float(value)
    try:
        when = parsedate_to_datetime(value)
    except (TypeError, ValueError):
        return None
    if when.tzinfo is None:
        return None
    return max(0.0, (when - (now or datetime.now(UTC))).total_seconds())


def backoff_delay(
    attempt: int,
    *,
    base: float,
    cap: float,
    retry_after: float | None = None,
    rng: random.Random | None = None,
) -> float:
    """Seconds to wait before retry number *attempt* (1 = first retry).

    The un-jittered delay is ``min(cap, base * 2 ** (attempt - 1))``; the result lies in
    ``[delay / 2, delay]``. ``retry_after`` (seconds, from the server) is honoured even
    above *cap*, since hammering a server that asked us to wait only gets us throttled.
    """
    if attempt < 1:
        raise ValueError("attempt counts from 1")
    delay = min(cap, base * 2.0 ** min(attempt - 1, 62))
    r = (rng or random).random()
    jittered = delay / 2 + r * delay / 2
    if retry_after is not None:
        return max(jittered, retry_after)
    return jittered


class BreakerState(StrEnum):
    CLOSED = "closed"
    OPEN = "open"
    HALF_OPEN = "half_open"


class CircuitOpenError(Exception):
    """Raised instead of calling a service whose breaker is open."""

    def __init__(self, endpoint: str, retry_in: float) -> None:
        super().__init__(f"{endpoint} is failing; not calling it for {retry_in:.0f}s more")
        self.endpoint = endpoint
        self.retry_in = retry_in


@dataclass
class CircuitBreaker:
    """Stops calls to an endpoint after ``threshold`` consecutive failures.

    Open for ``reset_after`` seconds, then half-open: one trial call is let through; its
    success closes the breaker, its failure opens it again. Times are numbers from any
    monotonic clock (``trio.current_time()`` in the daemon), passed in by the caller.
    """

    endpoint: str
    threshold: int = 5
    reset_after: float = 30.0
    failures: int = 0
    opened_at: float | None = None
    trial_in_flight: bool = False

    def state(self, now: float) -> BreakerState:
        if self.opened_at is None:
            return BreakerState.CLOSED
        if now - self.opened_at >= self.reset_after:
            return BreakerState.HALF_OPEN
        return BreakerState.OPEN

    def before_call(self, now: float) -> None:
        """Raise :class:`CircuitOpenError` unless a call may go out now."""
        state = self.state(now)
        if state is BreakerState.OPEN or (state is BreakerState.HALF_OPEN and self.trial_in_flight):
            assert self.opened_at is not None
            raise CircuitOpenError(self.endpoint, max(0.0, self.opened_at + self.reset_after - now))
        if state is BreakerState.HALF_OPEN:
            self.trial_in_flight = True

    def record_success(self) -> None:
        self.failures = 0
        self.opened_at = None
        self.trial_in_flight = False

    def record_failure(self, now: float) -> None:
        self.trial_in_flight = False
        self.failures += 1
        if self.opened_at is not None or self.failures >= self.threshold:
            self.opened_at = now
