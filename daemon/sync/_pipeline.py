"""The page pipeline: page k+1 is read while page k is applied.

A channel of one page keeps memory flat. This is the engine's only prefetch pipeline;
anything that reads a source's pages goes through :func:`read_pages`.
"""

from __future__ import annotations

from collections.abc import AsyncGenerator, Awaitable, Callable, Iterator
from contextlib import aclosing, contextmanager
from typing import Any

import trio

from ..backoff import backoff_delay
from ..config import RetryPolicy
from ..connectors import Page, Source
from ..errors import TransientError
from ..retrying import Interrupted, retry_wait
from ._job import JobLog

__all__ = [
    "read_pages",
    "single_errors",
]


@contextmanager
def single_errors() -> Iterator[None]:
    """Re-raise a nursery's group of one exception as that exception."""
    try:
        yield
    except BaseExceptionGroup as group:
        if len(group.exceptions) == 1:
            raise group.exceptions[0] from None
        raise


async def _pages(
    source: Source,
    entity_type: str,
    *,
    since: str | None,
    cursor: Any,
    page_size: int,
    retry: RetryPolicy,
    log: JobLog,
) -> AsyncGenerator[Page, None]:
    """The source's pages; a transient failure reopens the read after the last page
    yielded, with backoff. The source's iterator is always closed.

    Raises:
        TransientError: the read failed ``retry.attempts`` times in a row.
        Interrupted: a retry wait was cut short (pause or stop).
    """
    attempt = 0
    while True:
        pages = source.read(entity_type, since=since, cursor=cursor, page_size=page_size)
        try:
            async for page in pages:
                attempt = 0
                yield page
                cursors = [i.cursor for i in page.items if i.cursor is not None]
                cursor = cursors[-1] if cursors else cursor
            return
        except TransientError as exc:
            attempt += 1
            if attempt >= retry.attempts:
                raise
            retry_after = exc.retry_after
            error = exc
        finally:
            aclose = getattr(pages, "aclose", None)
            if aclose is not None:
                await aclose()
        delay = backoff_delay(
            attempt,
            base=retry.base.total_seconds(),
            cap=retry.cap.total_seconds(),
            retry_after=retry_after,
        )
        await log(
            "warning",
            f"{entity_type}: reading failed ({error}); retry {attempt} in {delay:.1f}s",
        )
        await retry_wait(delay)


async def read_pages(
    source: Source,
    entity_type: str,
    *,
    since: str | None,
    cursor: Any,
    page_size: int,
    retry: RetryPolicy,
    log: JobLog,
    on_page: Callable[[Page], Awaitable[None]],
    name: str,
) -> None:
    """Read *entity_type*'s pages from *source* (changes *since* a watermark, after
    *cursor*) and await ``on_page(page)`` for each, in order, while the next page is
    read in a task named *name*. Returns when the last page has been handled.

    Raises:
        Exception: what *on_page* raises; the read then stops and its iterator is closed.
        TransientError: reading failed ``retry.attempts`` times in a row.
        Interrupted: a retry wait was cut short; the page in hand is handled first, and
            the pages that stopped short are never taken for the end of the read.

    On cancellation the read stops and the source's iterator is closed.
    """
    send, receive = trio.open_memory_channel[Page](1)
    interrupted: list[Interrupted] = []

    async def produce() -> None:
        reading = _pages(
            source,
            entity_type,
            since=since,
            cursor=cursor,
            page_size=page_size,
            retry=retry,
            log=log,
        )
        async with send, aclosing(reading) as pages:
            try:
                async for page in pages:
                    try:
                        await send.send(page)
                    except trio.BrokenResourceError:
                        return  # the consumer stopped (pause, stop, error): so do we
            except Interrupted as exc:  # a retry wait cut short: the page in hand ends first
                interrupted.append(exc)

    with single_errors():
        async with trio.open_nursery() as nursery:
            nursery.start_soon(produce, name=name)
            async with receive:
                async for page in receive:
                    await on_page(page)
    if interrupted:
        raise interrupted[0]
