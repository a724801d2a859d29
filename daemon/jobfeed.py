"""Live job events: every job the store saves and every log line it appends, pushed to
the subscribers of that job (the control API's server-sent events).

The store tells the feed (it is the store's :class:`~sluiced.store.StoreWatcher`) once
a write is durable, so a subscriber that reads the store after subscribing misses
nothing: what it read is older than what it then receives, or the same (skip by
``seq``). Each subscriber has a bounded buffer; one that falls behind (a slow client)
is cut off, its :meth:`Subscription.receive` raising :class:`FellBehind` once it has
drained what it was sent, and catches up from the store's log.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass

import trio

from .models import Job, LogEntry

__all__ = ["BUFFER", "FellBehind", "JobFeed", "JobUpdate", "LogLines", "Subscription"]

#: Updates a subscriber may have waiting before it counts as fallen behind.
BUFFER = 1000


@dataclass(frozen=True)
class JobUpdate:
    job: Job


@dataclass(frozen=True)
class LogLines:
    entries: Sequence[LogEntry]


class FellBehind(Exception):
    """The subscriber's buffer filled up: updates after those it received were dropped."""


class Subscription:
    """Updates of one job, in order, from when it was made. Use as a context manager
    (it unsubscribes on exit)."""

    def __init__(self, feed: JobFeed, job_id: str, buffer: int) -> None:
        self._feed = feed
        self.job_id = job_id
        self._send, self._receive = trio.open_memory_channel[JobUpdate | LogLines](buffer)
        self.fell_behind = False

    def _push(self, update: JobUpdate | LogLines) -> None:
        if self.fell_behind:
            return
        try:
            self._send.send_nowait(update)
        except trio.WouldBlock:
            self.fell_behind = True
            self._send.close()  # what was sent is still received, then FellBehind

    async def receive(self) -> JobUpdate | LogLines:
        """The next update; raises :class:`FellBehind` once the buffered ones are read
        if updates were dropped."""
        try:
            return await self._receive.receive()
        except trio.EndOfChannel:
            raise FellBehind from None

    def receive_nowait(self) -> JobUpdate | LogLines | None:
        """The next buffered update, or None; raises :class:`FellBehind` like
        :meth:`receive`."""
        try:
            return self._receive.receive_nowait()
        except trio.WouldBlock:
            return None
        except trio.EndOfChannel:
            raise FellBehind from None

    def __enter__(self) -> Subscription:
        return self

    def __exit__(self, *exc: object) -> None:
        self._feed._unsubscribe(self)
        self._send.close()
        self._receive.close()


class JobFeed:
    """The daemon's hub of job updates. Methods are called in the trio thread."""

    def __init__(self, buffer: int = BUFFER) -> None:
        self.buffer = buffer
        self._subscribers: dict[str, set[Subscription]] = {}

    def subscribe(self, job_id: str, *, buffer: int | None = None) -> Subscription:
        sub = Subscription(self, job_id, self.buffer if buffer is None else buffer)
        self._subscribers.setdefault(job_id, set()).add(sub)
        return sub

    def _unsubscribe(self, sub: Subscription) -> None:
        subs = self._subscribers.get(sub.job_id)
        if subs is not None:
            subs.discard(sub)
            if not subs:
                del self._subscribers[sub.job_id]

    def subscribers(self, job_id: str) -> int:
        return len(self._subscribers.get(job_id, ()))

    # -- StoreWatcher -------------------------------------------------------------------
    def job_saved(self, job: Job) -> None:
        for sub in list(self._subscribers.get(job.id, ())):
            sub._push(JobUpdate(job))

    def logs_appended(self, job_id: str, entries: Sequence[LogEntry]) -> None:
        for sub in list(self._subscribers.get(job_id, ())):
            sub._push(LogLines(tuple(entries)))
