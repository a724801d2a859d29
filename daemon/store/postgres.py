"""The daemon's store in a PostgreSQL database, which several nodes may share.

Its parts: the connection and errors (:mod:`.postgres_base`, on a thread of
:mod:`.pgthread`), the schema and its migrations (:mod:`.postgres_schema`), jobs
(:mod:`.postgres_jobs`), the sync state (:mod:`.postgres_links`), the provisioning log
(:mod:`.postgres_changes`); this module adds the integrations' state and definitions.

Every connection bounds what it does: a lock wait (``lock_timeout``), a statement
(``statement_timeout``) and an open transaction left idle
(``idle_in_transaction_session_timeout``) end with an error instead of holding the
database. Several nodes share the tables, each writing only what its leases allow (see
:meth:`~.postgres_base.PostgresBase.fence_with` and :mod:`sluiced.cluster`). With
*exclusive*, the store instead holds a session advisory lock for its connection's life,
so that no other process opened *exclusive* uses the same tables.

Needs psycopg 3 (the ``sluiced[postgresql]`` extra).
"""

from __future__ import annotations

import json
from collections.abc import Mapping
from typing import Any

from ..codec import from_dict, to_dict
from ..models import IntegrationState
from .pgthread import Connection
from .postgres_base import Timeouts, upsert
from .postgres_changes import PostgresChanges
from .postgres_jobs import PostgresJobs
from .postgres_links import PostgresSyncState
from .postgres_schema import MIGRATIONS

__all__ = ["MIGRATIONS", "PostgresStore", "Timeouts"]


class PostgresStore(PostgresJobs, PostgresSyncState, PostgresChanges):
    """The store in the PostgreSQL database of *url* (a ``postgresql://`` URL or a
    libpq connection string, without a password: give *password*), in the tables of
    *schema* (created with them if missing, and migrated).

    *node_id* (default: the host name) names this node to the others. With *exclusive*,
    the daemon's lock is held (see the module docstring). With *read_only* (the read
    commands of ``sluiced``) nothing is created or migrated, and every write raises
    ``StoreUnavailable``.

    Raises:
        StoreRefused: the database's schema is newer than this sluiced (read-only: or
            older).
        StoreInUse: with *exclusive*, another node holds the store.
        StoreUnavailable: the server cannot be reached or refused the connection.
    """

    async def get_state(self, integration_id: str) -> IntegrationState:
        row = await self._read(
            lambda c: c.execute(
                "SELECT body FROM integration_state WHERE integration_id=%s", (integration_id,)
            ).fetchone()
        )
        if row is None:
            return IntegrationState(integration_id=integration_id)
        return from_dict(IntegrationState, json.loads(row[0]))

    async def put_state(self, state: IntegrationState) -> None:
        row = (state.integration_id, json.dumps(to_dict(state)))
        await self._job_write(
            state.integration_id,
            lambda c: upsert(c, "integration_state", ("integration_id", "body"), 1, [row]),
        )

    async def list_states(self) -> list[IntegrationState]:
        rows = await self._read(
            lambda c: c.execute(
                "SELECT body FROM integration_state ORDER BY integration_id"
            ).fetchall()
        )
        return [from_dict(IntegrationState, json.loads(r[0])) for r in rows]

    async def delete_integration(self, integration_id: str, *, keep_changes: bool = False) -> None:
        def delete(c: Connection) -> None:
            c.execute(
                "DELETE FROM job_logs WHERE job_id IN"
                " (SELECT id FROM jobs WHERE integration_id=%s)",
                (integration_id,),
            )
            for table in (
                "jobs",
                "integration_state",
                "watermarks",
                "links",
                "escrows",
                "staged_deletions",
                "definitions",
                *(() if keep_changes else ("changes",)),
            ):
                c.execute(f"DELETE FROM {table} WHERE integration_id=%s", (integration_id,))

        await self._write(delete)

    async def put_definition(self, integration_id: str, table: Mapping[str, Any]) -> None:
        row = (integration_id, json.dumps(table))
        await self._write(lambda c: upsert(c, "definitions", ("integration_id", "body"), 1, [row]))

    async def list_definitions(self) -> dict[str, dict[str, Any]]:
        rows = await self._read(
            lambda c: c.execute("SELECT integration_id, body FROM definitions").fetchall()
        )
        return {r[0]: json.loads(r[1]) for r in rows}
