"""The provisioning log in the SQLite store: its rows, the query that lists them and
the pruning of old ones. Rows are appended by the batch commit (:mod:`.sqlite_links`);
rows copied from a target's outbox carry a key the store keeps once
(:meth:`~sluiced.store.Store.add_changes`)."""

from __future__ import annotations

import sqlite3
from collections.abc import Sequence
from datetime import datetime
from typing import Any

from ..changes import Change, ChangeQuery, at_of, at_text
from ..codec import dumps, loads
from .sqlite_base import SqliteBase

__all__ = [
    "CHANGE_COLUMNS",
    "KEYED_COLUMNS",
    "LOGGED_INTEGRATIONS",
    "SqliteChanges",
    "append_keyed",
    "change",
    "change_rows",
    "change_where",
    "keyed_rows",
]

#: The columns a change is written to (``id`` is given by the database).
CHANGE_COLUMNS = (
    "integration_id",
    "job_id",
    "entity_type",
    "source_id",
    "target_id",
    "action",
    "at",
    "body",
)
#: The columns of a change with its key (one copied from a target's outbox).
KEYED_COLUMNS = (*CHANGE_COLUMNS, "key")
_SELECT = f"SELECT id, {', '.join(CHANGE_COLUMNS)} FROM changes"
_INSERT_KEYED = (
    f"INSERT INTO changes ({', '.join(KEYED_COLUMNS)}) VALUES ({','.join('?' * len(KEYED_COLUMNS))})"
    " ON CONFLICT (key) DO NOTHING"
)

#: The integration ids in the log, one index lookup each (not a scan of every row).
LOGGED_INTEGRATIONS = """
WITH RECURSIVE ids(id) AS (
    SELECT (SELECT min(integration_id) FROM changes)
    UNION ALL
    SELECT (SELECT min(integration_id) FROM changes WHERE integration_id > ids.id)
    FROM ids WHERE ids.id IS NOT NULL
)
SELECT id FROM ids WHERE id IS NOT NULL
"""


def change_rows(changes: Sequence[Change]) -> list[tuple[Any, ...]]:
    """*changes* as rows of :data:`CHANGE_COLUMNS`."""
    rows = []
    stamps: dict[datetime, str] = {}  # a batch's changes share their time
    for c in changes:
        body = c.encoded if c.encoded is not None else c.body()
        at = stamps.get(c.at)
        if at is None:
            at = stamps[c.at] = at_text(c.at)
        rows.append(
            (
                c.integration_id,
                c.job_id,
                c.entity_type,
                c.source_id,
                c.target_id,
                c.action,
                at,
                body if body is None or type(body) is str else dumps(body),
            )
        )
    return rows


def keyed_rows(changes: Sequence[tuple[str, Change]]) -> list[tuple[Any, ...]]:
    """*changes* (each under its key) as rows of :data:`KEYED_COLUMNS`."""
    rows = change_rows([c for _, c in changes])
    return [(*row, key) for row, (key, _) in zip(rows, changes, strict=True)]


def append_keyed(c: sqlite3.Connection, rows: Sequence[tuple[Any, ...]]) -> int:
    """Insert *rows* (of :data:`KEYED_COLUMNS`) in the caller's transaction, leaving
    out those whose key the store holds; returns how many were inserted."""
    before = c.total_changes
    c.executemany(_INSERT_KEYED, rows)
    return c.total_changes - before


def change(r: Sequence[Any]) -> Change:
    """A change from a row of ``id`` and :data:`CHANGE_COLUMNS`."""
    body = loads(r[8]) if r[8] is not None else {}
    return Change(
        id=int(r[0]),
        integration_id=r[1],
        job_id=r[2],
        entity_type=r[3],
        source_id=r[4],
        target_id=r[5],
        action=r[6],
        at=at_of(r[7]),
        attributes=body.get("attributes"),
        changes=body.get("changes"),
        reason=body.get("reason"),
        kind=body.get("kind"),
    )


def change_where(integration_id: str, q: ChangeQuery, mark: str) -> tuple[str, list[Any]]:
    """The ``WHERE`` clause selecting *q*'s changes, with *mark* as the placeholder,
    and its arguments."""
    where: list[str] = [f"integration_id={mark}"]
    args: list[Any] = [integration_id]
    if q.object_id is not None:
        where.append(f"(source_id={mark} OR target_id={mark})")
        args += [q.object_id, q.object_id]
    for column, value in (("entity_type", q.entity_type), ("job_id", q.job_id)):
        if value is not None:
            where.append(f"{column}={mark}")
            args.append(value)
    if q.actions:
        where.append(f"action IN ({', '.join([mark] * len(q.actions))})")
        args += list(q.actions)
    if q.since is not None:
        where.append(f"at>={mark}")
        args.append(at_text(q.since))
    if q.until is not None:
        where.append(f"at<={mark}")
        args.append(at_text(q.until))
    if q.before is not None:
        where.append(f"(at<{mark} OR (at={mark} AND id<{mark}))")
        args += [q.before[0], q.before[0], q.before[1]]
    return " AND ".join(where), args


class SqliteChanges(SqliteBase):
    """The provisioning log: listing and pruning it, and the copy of a target's outbox."""

    async def list_changes(self, integration_id: str, query: ChangeQuery) -> list[Change]:
        where, args = change_where(integration_id, query, "?")
        sql = f"{_SELECT} WHERE {where} ORDER BY at DESC, id DESC LIMIT ?"
        rows = await self._read(lambda c: c.execute(sql, [*args, query.limit]).fetchall())
        return [change(r) for r in rows]

    async def add_changes(self, changes: Sequence[tuple[str, Change]]) -> int:
        rows = keyed_rows(changes)
        if not rows:
            return 0
        return int(await self._write(lambda c: append_keyed(c, rows)))

    async def logged_integrations(self) -> list[str]:
        rows = await self._read(lambda c: c.execute(LOGGED_INTEGRATIONS).fetchall())
        return sorted(r[0] for r in rows)

    async def prune_changes(self, integration_id: str, before: datetime, *, limit: int) -> int:
        cutoff = at_text(before)

        def prune(c: sqlite3.Connection) -> int:
            return c.execute(
                "DELETE FROM changes WHERE id IN (SELECT id FROM changes WHERE"
                " integration_id=? AND at<? ORDER BY at LIMIT ?)",
                (integration_id, cutoff, limit),
            ).rowcount

        return int(await self._write(prune))
