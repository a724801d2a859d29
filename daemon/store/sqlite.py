"""The daemon's store: one SQLite file in WAL mode, owned by one thread.

Its parts: the connection and rows (:mod:`.sqlite_base`), the schema and its
migrations (:mod:`.sqlite_schema`), jobs (:mod:`.sqlite_jobs`), the sync state
(:mod:`.sqlite_links`), the provisioning log (:mod:`.sqlite_changes`); this module adds
the integrations' state and definitions.

Schema changes are forward migrations numbered by ``PRAGMA user_version``; opening a
store runs the missing ones in a transaction each. A database newer than this code is
refused rather than misread.

Errors: a file that is not a sound SQLite database raises :class:`StoreDamaged` when it
is opened (with ``verify``, after ``PRAGMA quick_check``); any other failure to open,
read or write (a full or read-only disk, an I/O error) raises :class:`StoreUnavailable`
naming the file. Neither leaves a transaction open: the next write can succeed.
"""

from __future__ import annotations

import json
import sqlite3
from collections.abc import Mapping
from typing import Any

from ..codec import from_dict, to_dict
from ..models import IntegrationState
from .sqlite_changes import SqliteChanges
from .sqlite_jobs import SqliteJobs
from .sqlite_links import SqliteSyncState
from .sqlite_schema import MIGRATIONS

__all__ = ["MIGRATIONS", "SqliteStore"]


class SqliteStore(SqliteJobs, SqliteSyncState, SqliteChanges):
    """The store in the SQLite file *path* (created with its directory if missing).

    With *verify*, the whole file is checked (``PRAGMA quick_check``) before it is used.
    With *read_only* (the read commands of ``sluiced``), the file must exist and is opened
    read-only: nothing is created or migrated, and every write raises ``StoreUnavailable``.

    Raises:
        StoreDamaged: the file is not a sound SQLite database.
        StoreRefused: its schema is newer than this sluiced (read-only: or older).
        StoreUnavailable: it cannot be opened (permissions, a full disk, I/O).
    """

    async def get_state(self, integration_id: str) -> IntegrationState:
        row = await self._read(
            lambda c: c.execute(
                "SELECT body FROM integration_state WHERE integration_id=?", (integration_id,)
            ).fetchone()
        )
        if row is None:
            return IntegrationState(integration_id=integration_id)
        return from_dict(IntegrationState, json.loads(row[0]))

    async def put_state(self, state: IntegrationState) -> None:
        row = (state.integration_id, json.dumps(to_dict(state)))
        await self._write(
            lambda c: c.execute("INSERT OR REPLACE INTO integration_state VALUES (?,?)", row)
        )

    async def list_states(self) -> list[IntegrationState]:
        rows = await self._read(
            lambda c: c.execute(
                "SELECT body FROM integration_state ORDER BY integration_id"
            ).fetchall()
        )
        return [from_dict(IntegrationState, json.loads(r[0])) for r in rows]

    async def delete_integration(self, integration_id: str, *, keep_changes: bool = False) -> None:
        def delete(c: sqlite3.Connection) -> None:
            c.execute(
                "DELETE FROM job_logs WHERE job_id IN (SELECT id FROM jobs WHERE integration_id=?)",
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
                c.execute(f"DELETE FROM {table} WHERE integration_id=?", (integration_id,))

        await self._write(delete)

    async def put_definition(self, integration_id: str, table: Mapping[str, Any]) -> None:
        row = (integration_id, json.dumps(table))
        await self._write(
            lambda c: c.execute("INSERT OR REPLACE INTO definitions VALUES (?,?)", row)
        )

    async def list_definitions(self) -> dict[str, dict[str, Any]]:
        rows = await self._read(
            lambda c: c.execute("SELECT integration_id, body FROM definitions").fetchall()
        )
        return {r[0]: json.loads(r[1]) for r in rows}
