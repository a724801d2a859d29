"""A PostgreSQL connection owned by one dedicated thread, awaited from trio, opened
again after it was lost.

No PostgreSQL driver runs on trio, so this is the SQLite store's design
(:class:`~sluiced.store.thread.ConnectionThread`) with psycopg's synchronous API: the
thread owns the connection and runs submitted functions one at a time; a trio task waits
for the result on an event set through the run's :class:`trio.lowlevel.TrioToken`.

A connection found broken (the server restarted, the network went away) is closed after
the function that met it failed; the next submitted function opens a new one first. One
the server ended while it was idle (an administrator, a restart, an idle-session
timeout: the server's last message waits on its socket) is opened again before a
function runs on it, so that function does not fail (with ``reopen_ended``). A statement or lock timeout keeps
the connection.

Cancellation: a submitted function always runs to its end (a transaction is never
torn). ``call(..., shield=True)`` also makes the caller wait for it despite a
cancellation; writes use it.
"""

from __future__ import annotations

import contextlib
import queue
import select
import threading
from collections.abc import Callable
from typing import Any, TypeVar

import outcome
import psycopg
import trio

__all__ = ["PgConnectionThread", "connection_lost"]

T = TypeVar("T")

Connection = psycopg.Connection[tuple[Any, ...]]
_Work = tuple[Callable[[Connection], Any], Callable[[outcome.Outcome[Any]], None]]


#: SQLSTATEs of a session the server ended: an administrator's or a crash's shutdown,
#: or a server not yet accepting connections.
_ENDED = frozenset({"57P01", "57P02", "57P03"})


def _ended(conn: Connection) -> bool:
    """Whether the server ended *conn* while it was idle: an idle connection (no query in
    flight, no ``LISTEN``) has nothing to read unless the server's last message (its
    termination notice) or the end of the stream is waiting."""
    try:
        readable, _, _ = select.select([conn.fileno()], [], [], 0)
    except (OSError, ValueError, psycopg.Error):
        return True
    return bool(readable)


def connection_lost(exc: BaseException) -> bool:
    """Whether *exc* says the connection is gone, even if libpq has not marked it bad
    yet (the server's last message can come before the end of the stream)."""
    if not isinstance(exc, psycopg.OperationalError):
        return False
    state = exc.sqlstate
    return state is None or state.startswith("08") or state in _ENDED


class PgConnectionThread:
    """Run functions on a connection made by ``connect(first)`` in a new thread.

    The first connection is made at once (``first=True``): its error is raised here.
    Later ones (``first=False``) are made when a function is submitted and there is no
    connection; their error is that function's. With *reopen_ended*, a connection the
    server ended while it was idle is opened again before a function runs (see the
    module docstring); without, that function fails.
    """

    def __init__(
        self, connect: Callable[[bool], Connection], *, name: str, reopen_ended: bool = False
    ) -> None:
        self._connect = connect
        self._reopen_ended = reopen_ended
        self._queue: queue.SimpleQueue[_Work | None] = queue.SimpleQueue()
        self._conn: Connection | None = None
        self._closed = False
        ready: list[outcome.Outcome[None]] = []
        started = threading.Event()

        def main() -> None:
            ready.append(outcome.capture(self._open, True))
            started.set()
            if isinstance(ready[0], outcome.Error):
                return
            try:
                while (work := self._queue.get()) is not None:
                    fn, deliver = work
                    deliver(outcome.capture(self._run, fn))
            finally:
                self._drop()

        self._thread = threading.Thread(target=main, name=f"sluiced-pg:{name}", daemon=True)
        self._thread.start()
        started.wait()
        ready[0].unwrap()

    def _open(self, first: bool) -> None:
        self._conn = self._connect(first)

    def _drop(self) -> None:
        if self._conn is not None:
            with contextlib.suppress(Exception):
                self._conn.close()
            self._conn = None

    def _run(self, fn: Callable[[Connection], T]) -> T:
        if self._conn is None or self._conn.closed or (self._reopen_ended and _ended(self._conn)):
            self._drop()
            self._open(False)
        assert self._conn is not None
        try:
            return fn(self._conn)
        except BaseException as exc:
            if self._conn.broken or self._conn.closed or connection_lost(exc):
                self._drop()
            raise

    async def call(self, fn: Callable[[Connection], T], *, shield: bool = False) -> T:
        """Run ``fn(conn)`` on the connection's thread and return its result (or raise
        its error, or the error of opening a connection for it)."""
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

    async def write(self, fn: Callable[[Connection], T]) -> T:
        """Run ``fn(conn)`` in one transaction (rolled back if it or the commit raises),
        shielded: the caller returns only once it is committed or rolled back."""

        def transaction(conn: Connection) -> T:
            with conn.transaction():
                return fn(conn)

        return await self.call(transaction, shield=True)

    def close(self) -> None:
        """Finish queued work, close the connection and join the thread."""
        if not self._closed:
            self._closed = True
            self._queue.put(None)
            self._thread.join()
