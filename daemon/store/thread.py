"""A SQLite connection owned by one dedicated thread, awaited from trio.

aiosqlite has this design but is bound to asyncio: inside ``trio.run`` it fails with
"trio.run received unrecognized yield message <Future pending>". This is the same idea
bound to trio: the thread owns the connection for its whole life and runs submitted
functions one at a time; a trio task waits for the result on an event set through the
run's :class:`trio.lowlevel.TrioToken`.

Cancellation: a submitted function always runs to its end (a transaction is never
torn). ``call(..., shield=True)`` also makes the caller wait for it despite a
cancellation, so the caller knows the write is durable before it unwinds; writes use it.
"""

from __future__ import annotations

import contextlib
import queue
import sqlite3
import threading
from collections.abc import Callable
from pathlib import Path
from typing import Any, TypeVar

import outcome
import trio

__all__ = ["ConnectionThread"]

T = TypeVar("T")

_Work = tuple[Callable[[sqlite3.Connection], Any], Callable[[outcome.Outcome[Any]], None]]


class ConnectionThread:
    """Open *path* (an SQLite URI with *uri*) in a new thread; ``setup`` runs there once, first."""

    def __init__(
        self, path: Path | str, setup: Callable[[sqlite3.Connection], None], *, uri: bool = False
    ) -> None:
        self._queue: queue.SimpleQueue[_Work | None] = queue.SimpleQueue()
        self._ready: outcome.Outcome[None] | None = None
        started = threading.Event()
        self._closed = False

        def main() -> None:
            conn: sqlite3.Connection | None = None
            try:
                conn = sqlite3.connect(path, isolation_level=None, check_same_thread=True, uri=uri)
                setup(conn)
            except BaseException as exc:  # reported to the opener
                if conn is not None:
                    conn.close()
                self._ready = outcome.Error(exc)
                started.set()
                return
            self._ready = outcome.Value(None)
            started.set()
            try:
                while (work := self._queue.get()) is not None:
                    fn, deliver = work
                    deliver(outcome.capture(fn, conn))
            finally:
                conn.close()

        self._thread = threading.Thread(
            target=main, name=f"sluiced-sqlite:{Path(path).name}", daemon=True
        )
        self._thread.start()
        started.wait()
        assert self._ready is not None
        self._ready.unwrap()

    async def call(self, fn: Callable[[sqlite3.Connection], T], *, shield: bool = False) -> T:
        """Run ``fn(conn)`` on the connection's thread and return its result."""
        if self._closed:
            raise RuntimeError("the store is closed")
        token = trio.lowlevel.current_trio_token()
        done = trio.Event()
        box: list[outcome.Outcome[T]] = []

        def deliver(result: outcome.Outcome[T]) -> None:
            box.append(result)
            with contextlib.suppress(trio.RunFinishedError):
                token.run_sync_soon(done.set)

        self._queue.put((fn, deliver))
        with trio.CancelScope(shield=shield):
            await done.wait()
        return box[0].unwrap()

    async def write(self, fn: Callable[[sqlite3.Connection], T]) -> T:
        """Run ``fn(conn)`` in one transaction (``BEGIN IMMEDIATE``; rolled back if it
        or the commit raises), shielded: the caller returns only once it is committed or
        rolled back. A failed write (a full disk) leaves no transaction open, so the next
        one can succeed once the cause is gone; the error raised is the original one."""

        def transaction(conn: sqlite3.Connection) -> T:
            conn.execute("BEGIN IMMEDIATE")
            try:
                result = fn(conn)
                conn.execute("COMMIT")
            except BaseException:
                if conn.in_transaction:  # SQLite may have rolled back already
                    with contextlib.suppress(sqlite3.Error):
                        conn.execute("ROLLBACK")
                raise
            return result

        return await self.call(transaction, shield=True)

    def close(self) -> None:
        """Finish queued work, close the connection and join the thread."""
        if not self._closed:
            self._closed = True
            self._queue.put(None)
            self._thread.join()
