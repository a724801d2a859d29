"""Calling a flaky service: retries with backoff, and a circuit breaker per endpoint.

Waits between attempts belong to the job that makes them: when the job is asked to stop
or pause (a daemon shutdown included), every retry wait of the job ends at once with
:class:`Interrupted`, so the job stops at its last checkpoint instead of sleeping on.
The runner binds a job's :class:`RetryWaits` with :func:`job_retry_waits`; tasks the job
starts inherit it.
"""

from __future__ import annotations

from collections.abc import Awaitable, Callable, Iterator
from contextlib import contextmanager
from contextvars import ContextVar
from typing import TypeVar

import trio

from .backoff import CircuitBreaker, CircuitOpenError, backoff_delay
from .config import RetryPolicy
from .errors import TransientError

__all__ = [
    "Breakers",
    "Interrupted",
    "RetryWaits",
    "call_with_retry",
    "job_retry_waits",
    "retry_wait",
]

T = TypeVar("T")


class Interrupted(Exception):
    """The job stopped at a boundary on request; ``kind`` is ``pause`` or ``stop``."""

    def __init__(self, kind: str) -> None:
        super().__init__(kind)
        self.kind = kind


class RetryWaits:
    """The retry waits of one job, cut short once the job is asked to stop or pause."""

    def __init__(self) -> None:
        self.kind: str | None = None
        self._requested = trio.Event()

    def interrupt(self, kind: str) -> None:
        """End every wait, now and later, with ``Interrupted(kind)`` (the first kind stays)."""
        if self.kind is None:
            self.kind = kind
            self._requested.set()

    async def sleep(self, seconds: float) -> None:
        """Sleep *seconds*, or raise :class:`Interrupted` as soon as interrupted."""
        if self.kind is None:
            with trio.move_on_after(seconds):
                await self._requested.wait()
        if self.kind is not None:
            raise Interrupted(self.kind)


_current_waits: ContextVar[RetryWaits | None] = ContextVar("sluiced_retry_waits", default=None)


@contextmanager
def job_retry_waits(waits: RetryWaits) -> Iterator[None]:
    """Make *waits* the current job's retry waits within the block (and its tasks)."""
    token = _current_waits.set(waits)
    try:
        yield
    finally:
        _current_waits.reset(token)


async def retry_wait(seconds: float) -> None:
    """Wait *seconds* before trying again. Within a job (see :func:`job_retry_waits`),
    raises :class:`Interrupted` at once when the job is asked to stop or pause."""
    waits = _current_waits.get()
    if waits is None:
        await trio.sleep(seconds)
    else:
        await waits.sleep(seconds)


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
    Cancellation interrupts the wait; so does a stop or pause of the current job, with
    :class:`Interrupted` (see :func:`retry_wait`).
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
        await retry_wait(delay)
