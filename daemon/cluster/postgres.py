"""Leases in the store's PostgreSQL database, shared by every node on it.

Tables (schema version 2): ``nodes`` (each node that joined: its process, its last
heartbeat, when it left) and ``leases`` (one row per integration: the holding node, the
fencing epoch, the expiry). Every time is the database's (``now()``), never a node's.

* :meth:`PostgresCoordinator.claim` takes free or expired leases with ``FOR UPDATE SKIP
  LOCKED`` (two nodes claiming at once never get one integration both, and neither waits
  on the other), each with its epoch incremented, up to the node's fair share: the
  configured integrations divided among the live nodes, rounded up. A node at its share
  still takes one lease that stayed free longer than a TTL, so that no integration is left
  unheld when the nodes' counts disagree.
* :meth:`PostgresCoordinator.renew` (each heartbeat) renews the leases held at their
  epoch; those not renewed are lost. The same heartbeat reaps: expired leases are freed
  and nodes without a heartbeat for a TTL are marked gone.
* A node holding more than its share (it started first) hands back the surplus it is not
  running (:meth:`~.coordinator.Coordinator.surplus`), for the others to claim.
* :meth:`PostgresCoordinator.leave` hands every lease back at once.
* :meth:`PostgresCoordinator.valid_for` tells a job how long its lease stays valid on
  this host's clock, and :meth:`PostgresCoordinator.renewed` lets it wait for the next
  heartbeat: a job starts a target write only if the lease outlasts it (see
  :meth:`~sluiced.sync._context.JobContext.write_target`).

The coordinator uses a connection of its own (heartbeats never queue behind a large
write), bounded as the store's are (lock, statement and idle-transaction timeouts).
"""

from __future__ import annotations

import math
import os
import socket
import time
from collections.abc import Callable, Collection, Mapping
from datetime import datetime, timedelta
from typing import Any, TypeVar

import psycopg
import trio

from ..store.errors import StoreInUse, StoreUnavailable
from ..store.pgthread import Connection, PgConnectionThread
from ..store.postgres_base import PostgresBase
from ..store.postgres_opening import process_alive
from .coordinator import Coordinator, NodeInfo

__all__ = ["PostgresCoordinator"]

T = TypeVar("T")

_CLAIM = (
    "UPDATE leases SET node_id=%(me)s, epoch=epoch+1, expires_at=now() + %(ttl)s::interval"
    " WHERE integration_id IN (SELECT integration_id FROM leases"
    " WHERE (node_id IS NULL OR expires_at < now()) AND integration_id = ANY(%(known)s)"
    " ORDER BY integration_id LIMIT %(n)s FOR UPDATE SKIP LOCKED)"
    " RETURNING integration_id, epoch"
)
_RENEW = (
    "UPDATE leases l SET expires_at=now() + %(ttl)s::interval"
    " FROM unnest(%(ids)s::text[], %(epochs)s::bigint[]) AS h(iid, epoch)"
    " WHERE l.integration_id=h.iid AND l.epoch=h.epoch AND l.node_id=%(me)s"
    " RETURNING l.integration_id"
)
_REAP = (
    "UPDATE leases SET node_id=NULL WHERE integration_id IN (SELECT integration_id FROM leases"
    " WHERE node_id IS NOT NULL AND expires_at < now() FOR NO KEY UPDATE SKIP LOCKED)"
)
_GONE = (
    "UPDATE nodes SET left_at=now() WHERE node_id IN (SELECT node_id FROM nodes"
    " WHERE left_at IS NULL AND heartbeat_at < now() - %s::interval"
    " FOR NO KEY UPDATE SKIP LOCKED)"
)
_NODES = (
    "SELECT n.node_id, n.started_at, n.heartbeat_at, n.pid, n.host, n.left_at,"
    " n.left_at IS NULL AND n.heartbeat_at > now() - %s::interval,"
    " (SELECT count(*) FROM leases l WHERE l.node_id=n.node_id AND l.expires_at > now())"
    " FROM nodes n ORDER BY n.node_id"
)


class PostgresCoordinator(Coordinator):
    """This node's leases in the database of *store* (a ``PostgresStore`` opened without
    *exclusive*), with leases of *ttl* seconds renewed every *heartbeat* seconds.
    :meth:`locally_valid` keeps *margin* seconds (default a tenth of the TTL) for the
    difference between this host's clock rate and the database's; *clock* is this
    host's monotonic clock.

    Raises:
        StoreUnavailable: its connection cannot be opened.
    """

    def __init__(
        self,
        store: PostgresBase,
        *,
        ttl: float = 30.0,
        heartbeat: float = 10.0,
        margin: float | None = None,
        clock: Callable[[], float] = time.monotonic,
    ) -> None:
        if not 0 < heartbeat < ttl:
            raise ValueError(f"the heartbeat ({heartbeat}s) must be shorter than the TTL ({ttl}s)")
        self.node_id = store.node_id
        self.ttl = ttl
        self.heartbeat = heartbeat
        self.margin = ttl / 10 if margin is None else margin
        self._store = store
        self._clock = clock
        self._held: dict[str, int] = {}
        self._share: int | None = None
        self._valid_until: dict[str, float] = {}
        self._renewal = trio.Event()
        self._interval = timedelta(seconds=ttl)
        options = store.connection_options()

        def connect(first: bool) -> Connection:
            conn: Connection = psycopg.connect(store.url, **options)
            return conn

        try:
            self._db = PgConnectionThread(connect, name=f"{store.where} leases", reopen_ended=True)
        except psycopg.Error as exc:
            raise StoreUnavailable(f"cannot open the store {store.where}: {exc}") from None

    @property
    def held(self) -> Mapping[str, int]:
        return self._held

    async def _call(self, fn: Callable[[Connection], T], doing: str) -> T:
        """Run *fn* in one transaction on the coordinator's connection.

        Raises:
            StoreUnavailable: the server failed or is out of reach.
        """

        def transaction(c: Connection) -> T:
            with c.transaction():
                return fn(c)

        try:
            return await self._db.call(transaction, shield=True)
        except (psycopg.OperationalError, psycopg.InternalError) as exc:
            message = " ".join(str(exc).split())
            raise StoreUnavailable(
                f"cannot {doing} on the store {self._store.where}: {message}"
            ) from None

    def _hold(self, got: Mapping[str, int], since: float) -> None:
        self._held.update(got)
        for iid in got:
            self._valid_until[iid] = since + self.ttl - self.margin

    def _drop(self, ids: Collection[str]) -> None:
        for iid in ids:
            self._held.pop(iid, None)
            self._valid_until.pop(iid, None)

    async def join(self) -> None:
        me, pid, host = self.node_id, os.getpid(), socket.gethostname()

        def join(c: Connection) -> None:
            row = c.execute(
                "SELECT pid, host, extract(epoch FROM now() - heartbeat_at) FROM nodes"
                " WHERE node_id=%s AND left_at IS NULL"
                " AND heartbeat_at > now() - %s::interval FOR UPDATE",
                (me, self._interval),
            ).fetchone()
            if row is not None and (row[1] != host or process_alive(int(row[0]))):
                raise StoreInUse(
                    f"the node_id {me} is in use by another sluiced (process {row[0]} on host "
                    f"{row[1]}, last heartbeat {float(row[2]):.0f}s ago) on the store "
                    f"{self._store.where}; give each node its own node_id"
                )
            c.execute(
                "INSERT INTO nodes (node_id, started_at, heartbeat_at, pid, host)"
                " VALUES (%s, now(), now(), %s, %s) ON CONFLICT (node_id) DO UPDATE SET"
                " started_at=now(), heartbeat_at=now(), pid=excluded.pid,"
                " host=excluded.host, left_at=NULL",
                (me, pid, host),
            )
            # What an earlier process of this node held: it is gone (checked above).
            c.execute("UPDATE leases SET node_id=NULL, expires_at=NULL WHERE node_id=%s", (me,))

        await self._call(join, "join")
        self._store.fence_with(self)

    async def claim(self, known_ids: Collection[str]) -> dict[str, int]:
        known = sorted(set(known_ids))
        if not known:
            return {}
        held = sum(1 for iid in known if iid in self._held)
        since = self._clock()

        def claim(c: Connection) -> dict[str, int]:
            c.execute(
                "INSERT INTO leases (integration_id) SELECT unnest(%s::text[])"
                " ON CONFLICT DO NOTHING",
                (known,),
            )
            row = c.execute(
                "SELECT count(*) FROM nodes WHERE left_at IS NULL"
                " AND heartbeat_at > now() - %s::interval",
                (self._interval,),
            ).fetchone()
            live = max(int(row[0]) if row else 0, 1)
            self._share = math.ceil(len(known) / live)
            n = self._share - held
            if n <= 0:
                row = c.execute(
                    "SELECT EXISTS (SELECT 1 FROM leases WHERE integration_id = ANY(%s)"
                    " AND (node_id IS NULL OR expires_at < now())"
                    " AND expires_at < now() - %s::interval)",
                    (known, self._interval),
                ).fetchone()
                n = 1 if row and row[0] else 0
            if n <= 0:
                return {}
            rows = c.execute(
                _CLAIM, {"me": self.node_id, "ttl": self._interval, "known": known, "n": n}
            ).fetchall()
            return {str(r[0]): int(r[1]) for r in rows}

        got = await self._call(claim, "claim leases")
        self._hold(got, since)
        return got

    async def renew(self) -> set[str]:
        held = dict(self._held)
        since = self._clock()

        def renew(c: Connection) -> set[str]:
            c.execute(
                "UPDATE nodes SET heartbeat_at=now(), left_at=NULL WHERE node_id=%s",
                (self.node_id,),
            )
            rows = c.execute(
                _RENEW,
                {
                    "ttl": self._interval,
                    "ids": list(held),
                    "epochs": list(held.values()),
                    "me": self.node_id,
                },
            ).fetchall()
            # The reaper: expired leases are freed, silent nodes marked gone.
            # Rows another transaction locks are left for a later heartbeat, never waited
            # for (a node frozen in a transaction holds its locks until the server ends it).
            c.execute(_REAP)
            c.execute(_GONE, (self._interval,))
            return {str(r[0]) for r in rows}

        try:
            renewed = await self._call(renew, "renew leases")
            lost = {iid for iid in held if iid not in renewed}
            self._drop(lost)
            self._hold({iid: held[iid] for iid in renewed if iid in self._held}, since)
            return lost
        finally:
            self._renewal.set()
            self._renewal = trio.Event()

    async def renewed(self) -> None:
        """Wait for the end of the next :meth:`renew`, successful or not, two heartbeats
        at most (the heartbeat's sleep, then its round trip to the database)."""
        with trio.move_on_after(2 * self.heartbeat):
            await self._renewal.wait()

    async def release(self, ids: Collection[str]) -> None:
        mine = {iid: self._held[iid] for iid in ids if iid in self._held}
        if not mine:
            return
        self._drop(mine)

        def release(c: Connection) -> None:
            c.execute(
                "UPDATE leases l SET node_id=NULL, expires_at=NULL"
                " FROM unnest(%s::text[], %s::bigint[]) AS h(iid, epoch)"
                " WHERE l.integration_id=h.iid AND l.epoch=h.epoch AND l.node_id=%s",
                (list(mine), list(mine.values()), self.node_id),
            )

        await self._call(release, "release leases")

    async def leave(self) -> None:
        await self.release(list(self._held))
        await self._call(
            lambda c: c.execute("UPDATE nodes SET left_at=now() WHERE node_id=%s", (self.node_id,)),
            "leave",
        )

    def surplus(self) -> int:
        return 0 if self._share is None else max(len(self._held) - self._share, 0)

    def locally_valid(self, integration_id: str) -> bool:
        return self.valid_for(integration_id) > 0

    def valid_for(self, integration_id: str) -> float:
        until = self._valid_until.get(integration_id)
        return 0.0 if until is None else max(until - self._clock(), 0.0)

    async def nodes(self) -> list[NodeInfo]:
        rows = await self._call(
            lambda c: c.execute(_NODES, (self._interval,)).fetchall(), "list nodes"
        )
        return [_node(r) for r in rows]

    async def holders(self, ids: Collection[str]) -> dict[str, str]:
        rows = await self._call(
            lambda c: c.execute(
                "SELECT integration_id, node_id FROM leases WHERE integration_id = ANY(%s)"
                " AND node_id IS NOT NULL AND expires_at > now()",
                (sorted(set(ids)),),
            ).fetchall(),
            "list the leases",
        )
        return {str(r[0]): str(r[1]) for r in rows}

    async def aclose(self) -> None:
        self._db.close()


def _node(r: tuple[Any, ...]) -> NodeInfo:
    started: datetime = r[1]
    return NodeInfo(
        node_id=str(r[0]),
        started_at=started,
        heartbeat_at=r[2],
        pid=int(r[3]),
        host=str(r[4]),
        left_at=r[5],
        live=bool(r[6]),
        leases=int(r[7]),
    )
