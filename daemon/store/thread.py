"""A SQLite connection owned by one dedicated thread, awaited from trio.

aiosqlite has this design but is bound to asyncio: inside ``trio.run`` it fails with
"trio.run received unrecognized yield message <Future pending>". This is the same idea
bound to trio (:class:`~sluiced.ownedconnection.OwnedConnection`): the thread opens the
connection at start, keeps it for its whole life and runs submitted functions one at a
time.

Cancellation: a submitted function always runs to its end (a transaction is never
torn). ``call(..., shield=True)`` also makes the caller wait for it despite a
cancellation, so the caller knows the write is durable before it unwinds; writes use it.
"""

from __future__ import annotations

import contextlib
import sqlite3
from collections.abc import Callable
from pathlib import Path
from typing import TypeVar

from ..ownedconnection import OwnedConnection

__all__ = ["ConnectionThread"]

T = TypeVar("T")


class ConnectionThread(OwnedConnection[sqlite3.Connection]):
    """Open *path* (an SQLite URI with *uri*) in a new thread; ``setup`` runs there once,
    first. Its error, or the opening's, is raised here."""

    def __init__(
        self, path: Path | str, setup: Callable[[sqlite3.Connection], None], *, uri: bool = False
    ) -> None:
        def connect(first: bool) -> sqlite3.Connection:
            conn = sqlite3.connect(path, isolation_level=None, check_same_thread=True, uri=uri)
            try:
                setup(conn)
            except BaseException:
                conn.close()
                raise
            return conn

        super().__init__(
            connect,
            sqlite3.Connection.close,
            name=f"sluiced-sqlite:{Path(path).name}",
            what="the store",
        )

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
