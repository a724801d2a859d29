"""A PostgreSQL connection owned by one dedicated thread, awaited from trio, opened
again after it was lost.

No PostgreSQL driver runs on trio, so this is the SQLite store's design
(:class:`~sluiced.ownedconnection.OwnedConnection`) with psycopg's synchronous API: the
thread owns the connection and runs submitted functions one at a time.

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

import select
from collections.abc import Callable
from typing import Any, TypeVar

import psycopg

from ..ownedconnection import OwnedConnection

__all__ = ["PgConnectionThread", "connection_lost"]

T = TypeVar("T")

Connection = psycopg.Connection[tuple[Any, ...]]


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


class PgConnectionThread(OwnedConnection[Connection]):
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
        def usable(conn: Connection) -> bool:
            return not conn.closed and not (reopen_ended and _ended(conn))

        def lost(conn: Connection, exc: BaseException) -> bool:
            return conn.broken or conn.closed or connection_lost(exc)

        def disconnect(conn: Connection) -> None:
            conn.close()

        super().__init__(
            connect,
            disconnect,
            name=f"sluiced-pg:{name}",
            usable=usable,
            lost=lost,
            what="the store",
        )

    async def write(self, fn: Callable[[Connection], T]) -> T:
        """Run ``fn(conn)`` in one transaction (rolled back if it or the commit raises),
        shielded: the caller returns only once it is committed or rolled back."""

        def transaction(conn: Connection) -> T:
            with conn.transaction():
                return fn(conn)

        return await self.call(transaction, shield=True)
