"""Calling a flaky service: retries with backoff, and a circuit breaker per endpoint."""

from __future__ import annotations

from collections.abc import Awaitable, Callable
from typing import TypeVar

import trio

from .backoff import CircuitBreaker, CircuitOpenError, backoff_delay
from .config import RetryPolicy
from .errors import TransientError

__all__ = ["Breakers", "call_with_retry"]

T = TypeVar("T")


class Breakers:
    """The daemon's circuit breakers, one per endpoint, shared by all jobs."""

    def __init__(self, *, threshold: int = 5, reset_after: float = 30.0) -> None:
        self.threshold = threshold
        self.reset_after = reset_after
        self._by_endpoint: dict[str, CircuitBreaker] = {}

    def get(self, endpoint: str) -> CircuitBreaker:
        if endpoint not in self._by_endpoint:
            self._by_endpoint[endpoint] = CircuitBreaker(
                endpoint, threshold=self.threshold, reset_after=self.reset_after
            )
        return self._by_endpoint[endpoint]


async def call_with_retry(
    fn: Callable[[], Awaitable[T]],
    *,
    policy: RetryPolicy,
    breaker: CircuitBreaker,
    on_retry: Callable[[int, float, Exception], Awaitable[None]] | None = None,
) -> T:
    """Await ``fn()``, retrying :class:`TransientError` up to ``policy.attempts`` times.

    Waits :func:`backoff_delay` between attempts (honouring ``retry_after``); an open
    breaker counts as a transient error whose ``retry_after`` is the breaker's wait.
    Other exceptions propagate at once. Raises the last error when attempts run out.
    Cancellation interrupts the wait.
    """
    attempt = 0
    while True:
        err: TransientError
        try:
            breaker.before_call(trio.current_time())
        except CircuitOpenError as exc:
            err = TransientError(str(exc), retry_after=exc.retry_in)
        else:
            try:
                result = await fn()
            except TransientError as exc:
                breaker.record_failure(trio.current_time())
                err = exc
            else:
                breaker.record_success()
                return result
        attempt += 1
        if attempt >= policy.attempts:
            raise err
        delay = backoff_delay(
            attempt,
            base=policy.base.total_seconds(),
            cap=policy.cap.total_seconds(),
            retry_after=err.retry_after,
        )
        if on_retry is not None:
            await on_retry(attempt, delay, err)
        await trio.sleep(delay)
