"""Commands of the control API for an integration another node holds, sent to that node
through the database (schema version 3, table ``commands``).

The node that got the request writes the command (its method, path and checked body)
and ``NOTIFY sluiced_commands, '<holder>'``; the holder, which ``LISTEN``\\ s on a
connection of its own, takes its commands (``FOR UPDATE SKIP LOCKED``, only those of
integrations whose lease it holds unexpired), answers each through its own control API,
as a local request would be answered, and writes the status and body back. The sender
waits for that answer up to :data:`WAIT` seconds of the database's clock. A notification
lost (the listening connection dropped) is made up for by a poll every heartbeat.

A command no node took within the wait (no node holds the integration, or its holder is
frozen) is withdrawn: nothing was done, and the sender answers 503. One taken whose
answer did not come within the wait runs to its end on the holder; the sender answers
503 saying so.
"""

from __future__ import annotations

import contextlib
import json
import threading
from collections.abc import Awaitable, Callable, Mapping
from datetime import timedelta
from typing import Any, TypeVar

import psycopg
import trio

from ..logs import get_logger
from ..store.errors import StoreUnavailable
from ..store.pgthread import Connection, PgConnectionThread
from ..store.postgres_base import PostgresBase
from .coordinator import Coordinator, Elsewhere

__all__ = ["CHANNEL", "WAIT", "CommandBus", "Elsewhere", "NoAnswer"]

log = get_logger("sluiced.cluster")

T = TypeVar("T")

CHANNEL = "sluiced_commands"
#: How long a sender waits for the holder's answer, in seconds (the database's clock).
WAIT = 5.0
#: Commands older than this are deleted.
KEEP = timedelta(hours=1)

#: Answers a command: ``(kind, body)`` in (kind is ``"METHOD /path?query"``), the HTTP
#: status and JSON body out.
Execute = Callable[[str, Mapping[str, Any]], Awaitable[tuple[int, Any]]]


class NoAnswer(StoreUnavailable):
    """The node holding the integration did not answer a command in time."""

    code = "NoAnswer"


_TAKE = (
    "UPDATE commands SET taken_at=now(), node_id=%(me)s WHERE id IN (SELECT c.id FROM"
    " commands c JOIN leases l ON l.integration_id=c.integration_id"
    " JOIN unnest(%(ids)s::text[], %(epochs)s::bigint[]) AS h(iid, epoch)"
    " ON h.iid=c.integration_id AND h.epoch=l.epoch"
    " WHERE c.taken_at IS NULL AND l.node_id=%(me)s AND l.expires_at > now()"
    " AND c.created_at > now() - %(wait)s::interval FOR UPDATE OF c SKIP LOCKED)"
    " RETURNING id, kind, body"
)


class CommandBus:
    """Sends this node's commands for integrations held elsewhere and answers those
    sent to it (:meth:`run`), for a node of *coordinator* on *store*'s database.

    Raises:
        StoreUnavailable: its connection cannot be opened.
    """

    def __init__(self, store: PostgresBase, coordinator: Coordinator, *, wait: float = WAIT):
        self.node_id = store.node_id
        self.wait = wait
        self._coordinator = coordinator
        self._url = store.url
        self._options = store.connection_options()
        self._where = store.where
        self._interval = timedelta(seconds=wait)
        self._wake = trio.Event()
        self._closed = threading.Event()

        def connect(first: bool) -> Connection:
            conn: Connection = psycopg.connect(self._url, **self._options)
            return conn

        try:
            self._db = PgConnectionThread(
                connect, name=f"{store.where} commands", reopen_ended=True
            )
        except psycopg.Error as exc:
            raise StoreUnavailable(f"cannot open the store {store.where}: {exc}") from None

    async def _call(self, fn: Callable[[Connection], T]) -> T:
        def transaction(c: Connection) -> T:
            with c.transaction():
                return fn(c)

        try:
            return await self._db.call(transaction, shield=True)
        except psycopg.Error as exc:
            message = " ".join(str(exc).split())
            raise StoreUnavailable(f"cannot send a command on {self._where}: {message}") from None

    async def send(
        self, integration_id: str, kind: str, body: Mapping[str, Any]
    ) -> tuple[int, Any]:
        """Send a command for *integration_id* to its holder and return its answer
        (status, body).

        Raises:
            NoAnswer: none came within the wait (see the module docstring).
            StoreUnavailable: the database cannot be reached.
        """

        def insert(c: Connection) -> int:
            row = c.execute(
                "SELECT node_id FROM leases WHERE integration_id=%s AND expires_at > now()",
                (integration_id,),
            ).fetchone()
            holder = str(row[0]) if row and row[0] else ""
            made = c.execute(
                "INSERT INTO commands (integration_id, node_id, kind, body)"
                " VALUES (%s, %s, %s, %s) RETURNING id",
                (integration_id, holder or None, kind, json.dumps(dict(body))),
            ).fetchone()
            assert made is not None
            c.execute("SELECT pg_notify(%s, %s)", (CHANNEL, holder))
            return int(made[0])

        command = await self._call(insert)

        def look(c: Connection) -> tuple[Any, ...] | None:
            return c.execute(
                "SELECT result, taken_at IS NOT NULL, node_id,"
                " now() > created_at + %s::interval FROM commands WHERE id=%s",
                (self._interval, command),
            ).fetchone()

        while True:
            row = await self._call(look)
            if row is None:
                raise NoAnswer(f"the command {command} for {integration_id} was deleted")
            result, taken, node, late = row
            if result is not None:
                return int(result["status"]), result["body"]
            if late:
                break
            await trio.sleep(0.02)
        if not taken:
            withdrawn = await self._call(
                lambda c: c.execute(
                    "DELETE FROM commands WHERE id=%s AND taken_at IS NULL RETURNING id",
                    (command,),
                ).fetchone()
            )
            if withdrawn is not None:
                raise NoAnswer(
                    f"no node took the command for the integration {integration_id} within "
                    f"{self.wait:g}s (it is held by {node or 'no node'}); nothing was done"
                )
        raise NoAnswer(
            f"the node {node} took the command for the integration {integration_id} but did "
            f"not answer within {self.wait:g}s; it runs there to its end"
        )

    async def take(self, execute: Execute) -> int:
        """Answer the waiting commands of the integrations this node holds, in the order
        they were sent; returns how many."""
        held = {i: e for i, e in self._coordinator.held.items()}
        if not held:
            return 0
        rows = await self._call(
            lambda c: c.execute(
                _TAKE,
                {
                    "me": self.node_id,
                    "ids": list(held),
                    "epochs": list(held.values()),
                    "wait": self._interval,
                },
            ).fetchall()
        )
        for command, kind, body in sorted(rows):
            try:
                status, answer = await execute(str(kind), body)
            except Exception:
                log.exception("a command sent through the store failed", kind=kind)
                status, answer = (
                    500,
                    {
                        "error": {
                            "code": "InternalError",
                            "message": "the node holding the integration failed on the command",
                            "field": None,
                        }
                    },
                )
            await self._call(_answer(int(command), json.dumps({"status": status, "body": answer})))
        return len(rows)

    async def run(self, execute: Execute) -> None:
        """Listen for commands sent to this node and answer them (and poll every
        heartbeat) until cancelled. A store out of reach is logged and tried again."""
        token = trio.lowlevel.current_trio_token()
        listener = threading.Thread(
            target=self._listen, args=(token,), name="sluiced-pg:listen", daemon=True
        )
        listener.start()
        try:
            while True:
                with trio.move_on_after(self._coordinator.heartbeat):
                    await self._wake.wait()
                self._wake = trio.Event()
                try:
                    await self.take(execute)
                    await self._call(
                        lambda c: c.execute(
                            "DELETE FROM commands WHERE created_at < now() - %s::interval",
                            (KEEP,),
                        )
                    )
                except StoreUnavailable as exc:
                    log.error("cannot take the commands sent to this node", error=str(exc))
        finally:
            self._closed.set()

    def _poke(self) -> None:
        self._wake.set()

    def _listen(self, token: trio.lowlevel.TrioToken) -> None:
        """On its own connection, wake :meth:`run` for each notification to this node
        (or to any node: a command for an integration no node held when it was sent)."""
        while not self._closed.is_set():
            try:
                with psycopg.connect(self._url, **self._options) as conn:
                    conn.execute(f"LISTEN {CHANNEL}")
                    while not self._closed.is_set():
                        for note in conn.notifies(timeout=0.5):
                            if note.payload in (self.node_id, ""):
                                with contextlib.suppress(trio.RunFinishedError):
                                    token.run_sync_soon(self._poke)
            except psycopg.Error as exc:
                log.warning("the command listener lost its connection", error=str(exc))
                self._closed.wait(1.0)

    async def aclose(self) -> None:
        self._closed.set()
        self._db.close()


def _answer(command: int, result: str) -> Callable[[Connection], object]:
    """The write of *command*'s *result*."""

    def write(c: Connection) -> object:
        return c.execute(
            "UPDATE commands SET done_at=now(), result=%s WHERE id=%s", (result, command)
        )

    return write
