"""A blocking connection owned by one dedicated thread, awaited from trio.

sqlite3, psycopg's synchronous API and python-ldap block, none runs on trio, and a
connection of theirs must not be used by two threads at once. So one thread owns the
connection for its whole life: it opens it, runs the functions submitted to it one at a
time in the order they came, and closes it at the end; a trio task waits for its
function's result on an event set through the run's :class:`trio.lowlevel.TrioToken`.
This is aiosqlite's design, bound to trio.

The connection is opened when the owner is made (*eager*: the thread starts at once and
the opening's error is the constructor's) or by the first function (the thread starts
with the first call). A connection found unusable before a function runs, or lost when
a function failed, is closed; the next function opens a new one first, and the error of
that opening is the function's.

Cancellation: a submitted function always runs to its end on the thread (a transaction
is never torn), even one whose caller was cancelled before it started. With
``call(..., shield=True)`` the caller waits for it despite a cancellation, so it knows
the write is done (or failed) before it unwinds; without, a cancelled caller stops
waiting at once, its function's result is dropped, and the next call queues behind it.

Shutdown: :meth:`OwnedConnection.close` lets the queued functions run, closes the
connection and joins the thread; :meth:`OwnedConnection.aclose` does the same from trio
but waits at most a given time.
"""

from __future__ import annotations

import contextlib
import queue
import threading
from collections.abc import Callable
from typing import Any, Generic, TypeVar

import outcome
import trio

__all__ = ["OwnedConnection"]

C = TypeVar("C")
T = TypeVar("T")

_Work = tuple[Callable[[Any], Any], Callable[[outcome.Outcome[Any]], None]]


class OwnedConnection(Generic[C]):
    """Run functions on a connection made by ``connect(first)`` in a thread named *name*.

    ``connect(True)`` makes the connection opened at start (*eager*), ``connect(False)``
    every other one. ``disconnect(conn)`` closes one (its errors are ignored).
    ``usable(conn)``, asked before each function, says whether *conn* can still serve
    (None: always); ``lost(conn, exc)``, asked when a function raised *exc*, whether
    *conn* is gone (None: never). *what* names the connection in the error of a call
    after :meth:`close`.

    Raises (eager only): the error of ``connect(True)``; no thread is left running.
    """

    def __init__(
        self,
        connect: Callable[[bool], C],
        disconnect: Callable[[C], None],
        *,
        name: str,
        eager: bool = True,
        usable: Callable[[C], bool] | None = None,
        lost: Callable[[C, BaseException], bool] | None = None,
        what: str = "the connection",
    ) -> None:
        self._connect = connect
        self._disconnect = disconnect
        self._usable = usable
        self._lost = lost
        self._name = name
        self._what = what
        self._queue: queue.SimpleQueue[_Work | None] = queue.SimpleQueue()
        self._conn: C | None = None  # touched on the thread only
        self._thread: threading.Thread | None = None
        self._closed = False
        if eager:
            opened: list[outcome.Outcome[object]] = []
            started = threading.Event()

            def report(result: outcome.Outcome[object]) -> None:
                opened.append(result)
                started.set()

            self._start(report)
            started.wait()
            opened[0].unwrap()

    def _start(self, report: Callable[[outcome.Outcome[object]], None] | None) -> None:
        self._thread = threading.Thread(
            target=self._main, args=(report,), name=self._name, daemon=True
        )
        self._thread.start()

    # -- on the thread -------------------------------------------------------------

    def _main(self, report: Callable[[outcome.Outcome[object]], None] | None) -> None:
        """Open first when *report* is given (and end if that failed), then run the
        queued functions until the end mark; close the connection last."""
        if report is not None:
            opened = outcome.capture(self._open, True)
            report(opened)
            if isinstance(opened, outcome.Error):
                return
        try:
            while (work := self._queue.get()) is not None:
                fn, deliver = work
                deliver(outcome.capture(self._run, fn))
        finally:
            self._drop()

    def _open(self, first: bool) -> C:
        conn = self._conn = self._connect(first)
        return conn

    def _drop(self) -> None:
        conn, self._conn = self._conn, None
        if conn is not None:
            with contextlib.suppress(Exception):
                self._disconnect(conn)

    def _run(self, fn: Callable[[C], T]) -> T:
        conn = self._conn
        if conn is None or (self._usable is not None and not self._usable(conn)):
            self._drop()
            conn = self._open(False)
        try:
            return fn(conn)
        except BaseException as exc:
            if self._lost is not None and self._lost(conn, exc):
                self._drop()
            raise

    # -- from trio -----------------------------------------------------------------

    async def call(self, fn: Callable[[C], T], *, shield: bool = False) -> T:
        """Run ``fn(conn)`` on the connection's thread and return its result.

        Raises:
            RuntimeError: the owner was closed.
            Exception: *fn*'s error, or the error of opening a connection for it.

        Cancellation: *fn* runs to its end regardless; with *shield* the caller waits
        for it (and returns its result or raises its error, the cancellation being
        delivered at its next checkpoint), without it stops waiting at once.
        """
        if self._closed:
            raise RuntimeError(f"{self._what} is closed")
        if self._thread is None:
            self._start(None)
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

    def close(self) -> None:
        """Let the queued functions run, close the connection and join the thread
        (blocking). Later calls raise RuntimeError; closing again does nothing."""
        if self._closed:
            return
        self._closed = True
        self._queue.put(None)
        if self._thread is not None:
            self._thread.join()

    async def aclose(self, within: float) -> None:
        """:meth:`close` from trio: waits, shielded, at most *within* seconds for the
        queued functions and the closing, then leaves the thread to end on its own.
        Never raises."""
        if self._closed:
            return
        self._closed = True
        self._queue.put(None)
        thread = self._thread
        if thread is None:
            return
        with trio.move_on_after(within, shield=True):
            await trio.to_thread.run_sync(thread.join, abandon_on_cancel=True)
