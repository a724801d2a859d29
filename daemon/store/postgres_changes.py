"""The provisioning log in the PostgreSQL store: listing and pruning it, and the append
of a batch's changes (with COPY when there are many, like the links); changes copied
from a target's outbox under their keys are inserted leaving out the keys it holds."""

from __future__ import annotations

from collections.abc import Sequence
from datetime import datetime
from typing import Any

from ..changes import Change, ChangeQuery, at_text
from .pgthread import Connection
from .postgres_base import COPY_FROM, PostgresBase
from .sqlite_changes import (
    CHANGE_COLUMNS,
    KEYED_COLUMNS,
    LOGGED_INTEGRATIONS,
    change,
    change_where,
    keyed_rows,
)

__all__ = ["PostgresChanges", "append_changes", "append_keyed"]

_NAMES = ", ".join(CHANGE_COLUMNS)
_KEYED = ", ".join(KEYED_COLUMNS)


def append_changes(c: Connection, rows: Sequence[tuple[Any, ...]]) -> None:
    """Insert *rows* (of :data:`~.sqlite_changes.CHANGE_COLUMNS`) in the caller's
    transaction: in one statement, or copied in when there are many."""
    if not rows:
        return
    if len(rows) < COPY_FROM:
        arrays = ", ".join(["%s::text[]"] * len(CHANGE_COLUMNS))
        c.execute(
            f"INSERT INTO changes ({_NAMES}) SELECT * FROM unnest({arrays})",
            [list(column) for column in zip(*rows, strict=True)],
        )
        return
    with c.cursor().copy(f"COPY changes ({_NAMES}) FROM STDIN") as copy:
        for row in rows:
            copy.write_row(row)


def append_keyed(c: Connection, rows: Sequence[tuple[Any, ...]]) -> int:
    """Insert *rows* (of :data:`~.sqlite_changes.KEYED_COLUMNS`) in the caller's
    transaction, in one statement, leaving out those whose key the store holds; returns
    how many were inserted."""
    if not rows:
        return 0
    arrays = ", ".join(["%s::text[]"] * len(KEYED_COLUMNS))
    cursor = c.execute(
        f"INSERT INTO changes ({_KEYED}) SELECT * FROM unnest({arrays})"
        " ON CONFLICT (key) DO NOTHING",
        [list(column) for column in zip(*rows, strict=True)],
    )
    return max(cursor.rowcount, 0)


class PostgresChanges(PostgresBase):
    """The provisioning log: listing and pruning it, and the copy of a target's outbox."""

    async def add_changes(self, changes: Sequence[tuple[str, Change]]) -> int:
        rows = keyed_rows(changes)
        if not rows:
            return 0
        return int(await self._write(lambda c: append_keyed(c, rows)))

    async def list_changes(self, integration_id: str, query: ChangeQuery) -> list[Change]:
        where, args = change_where(integration_id, query, "%s")
        sql = (
            f"SELECT id, {_NAMES} FROM changes WHERE {where}"
            " ORDER BY at DESC, id DESC LIMIT %s::bigint"
        )
        rows = await self._read(lambda c: c.execute(sql, [*args, query.limit]).fetchall())
        return [change(r) for r in rows]

    async def logged_integrations(self) -> list[str]:
        rows = await self._read(lambda c: c.execute(LOGGED_INTEGRATIONS).fetchall())
        return sorted(r[0] for r in rows)

    async def prune_changes(self, integration_id: str, before: datetime, *, limit: int) -> int:
        cutoff = at_text(before)

        def prune(c: Connection) -> int:
            return c.execute(
                "DELETE FROM changes WHERE id IN (SELECT id FROM changes WHERE"
                " integration_id=%s AND at<%s ORDER BY at LIMIT %s::bigint)",
                (integration_id, cutoff, limit),
            ).rowcount

        return int(await self._write(prune))
