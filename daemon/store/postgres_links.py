"""The PostgreSQL store's sync state: watermarks, links, escrows, staged deletions, and
the engine's batch commit of them in one transaction (each kind of row in one or two
statements, whatever the batch's size: see :func:`~.postgres_base.upsert`)."""

from __future__ import annotations

import json
from collections.abc import Callable, Collection, Mapping
from dataclasses import replace
from datetime import datetime

from ..changes import Change
from ..codec import from_dict
from ..models import Escrow, Link
from .abc import BatchCommit, StagedDeletion
from .pgthread import Connection
from .postgres_base import PostgresBase, upsert
from .postgres_changes import append_changes, append_keyed
from .postgres_jobs import SAVE_JOB
from .sqlite_base import LINK_COLUMNS, escrow_row, job_row, link, link_row
from .sqlite_changes import change_rows, keyed_rows

__all__ = ["PostgresSyncState"]

_LINKS = (
    "integration_id",
    "entity_type",
    "source_id",
    "target_id",
    "hash",
    "seen_pass",
    "data",
    "disabled_at",
)
_ESCROWS = ("integration_id", "entity_type", "object_id", "kind", "next_retry", "pass_id", "body")
_STAGED = ("integration_id", "entity_type", "source_id", "target_id", "staged_at")


class PostgresSyncState(PostgresBase):
    """What the sync engine keeps between runs, and its batch commit."""

    async def get_watermarks(self, integration_id: str) -> Mapping[str, str]:
        rows = await self._read(
            lambda c: c.execute(
                "SELECT entity_type, value FROM watermarks WHERE integration_id=%s",
                (integration_id,),
            ).fetchall()
        )
        return {r[0]: r[1] for r in rows}

    async def _delete_all(self, table: str, integration_id: str) -> None:
        await self._job_write(
            integration_id,
            lambda c: c.execute(f"DELETE FROM {table} WHERE integration_id=%s", (integration_id,)),
        )

    async def clear_watermarks(self, integration_id: str) -> None:
        await self._delete_all("watermarks", integration_id)

    async def get_links(
        self, integration_id: str, entity_type: str, source_ids: Collection[str]
    ) -> dict[str, Link]:
        ids = list(source_ids)
        if not ids:
            return {}
        rows = await self._read(
            lambda c: c.execute(
                f"SELECT {LINK_COLUMNS} FROM links WHERE integration_id=%s AND entity_type=%s"
                " AND source_id = ANY(%s::text[])",
                (integration_id, entity_type, ids),
            ).fetchall()
        )
        return {r[0]: link(r) for r in rows}

    async def unseen_links(
        self, integration_id: str, entity_type: str, pass_id: str, *, after: str | None, limit: int
    ) -> list[Link]:
        rows = await self._read(
            lambda c: c.execute(
                f"SELECT {LINK_COLUMNS} FROM links WHERE integration_id=%s AND entity_type=%s"
                " AND seen_pass IS DISTINCT FROM %s AND source_id>%s ORDER BY source_id"
                " LIMIT %s::bigint",
                (integration_id, entity_type, pass_id, after or "", limit),
            ).fetchall()
        )
        return [link(r) for r in rows]

    async def count_links(self, integration_id: str, entity_type: str) -> int:
        row = await self._read(
            lambda c: c.execute(
                "SELECT count(*) FROM links WHERE integration_id=%s AND entity_type=%s",
                (integration_id, entity_type),
            ).fetchone()
        )
        return int(row[0]) if row else 0

    async def clear_links(self, integration_id: str) -> None:
        await self._delete_all("links", integration_id)

    async def list_escrows(
        self,
        integration_id: str,
        *,
        entity_type: str | None = None,
        kind: str | None = None,
        due_before: datetime | None = None,
        limit: int | None = None,
    ) -> list[Escrow]:
        where, args = ["integration_id=%s"], [integration_id]
        for column, value in (("entity_type", entity_type), ("kind", kind)):
            if value is not None:
                where.append(f"{column}=%s")
                args.append(value)
        if due_before is not None:
            where.append("next_retry<=%s")
            args.append(due_before.isoformat())
        sql = (
            f"SELECT body FROM escrows WHERE {' AND '.join(where)}"
            " ORDER BY next_retry, entity_type, object_id LIMIT %s::bigint"
        )
        rows = await self._read(lambda c: c.execute(sql, [*args, limit]).fetchall())
        return [from_dict(Escrow, json.loads(r[0])) for r in rows]

    async def count_escrows(self) -> dict[tuple[str, str], int]:
        rows = await self._read(
            lambda c: c.execute(
                "SELECT integration_id, entity_type, count(*) FROM escrows"
                " GROUP BY integration_id, entity_type ORDER BY integration_id, entity_type"
            ).fetchall()
        )
        return {(r[0], r[1]): int(r[2]) for r in rows}

    async def drop_escrow(
        self,
        integration_id: str,
        entity_type: str,
        object_id: str,
        *,
        log: Callable[[Escrow], Change] | None = None,
    ) -> bool:
        def drop(c: Connection) -> bool:
            row = c.execute(
                "DELETE FROM escrows WHERE integration_id=%s AND entity_type=%s"
                " AND object_id=%s RETURNING body",
                (integration_id, entity_type, object_id),
            ).fetchone()
            if row is not None and log is not None:
                append_changes(c, change_rows([log(from_dict(Escrow, json.loads(row[0])))]))
            return row is not None

        return await self._job_write(integration_id, drop)

    async def retry_escrow_at(
        self, integration_id: str, entity_type: str, object_id: str, when: datetime
    ) -> bool:
        def update(c: Connection) -> bool:
            row = c.execute(
                "SELECT body FROM escrows WHERE integration_id=%s AND entity_type=%s"
                " AND object_id=%s FOR UPDATE",
                (integration_id, entity_type, object_id),
            ).fetchone()
            if row is None:
                return False
            escrow = replace(from_dict(Escrow, json.loads(row[0])), next_retry=when)
            upsert(c, "escrows", _ESCROWS, 3, [escrow_row(escrow)])
            return True

        return await self._job_write(integration_id, update)

    async def clear_escrows(
        self, integration_id: str, *, log: Callable[[Escrow], Change] | None = None
    ) -> None:
        if log is None:
            await self._delete_all("escrows", integration_id)
            return

        def clear(c: Connection) -> None:
            rows = c.execute(
                "DELETE FROM escrows WHERE integration_id=%s RETURNING body", (integration_id,)
            ).fetchall()
            append_changes(c, change_rows([log(from_dict(Escrow, json.loads(r[0]))) for r in rows]))

        await self._job_write(integration_id, clear)

    async def list_staged_deletions(self, integration_id: str) -> list[StagedDeletion]:
        rows = await self._read(
            lambda c: c.execute(
                "SELECT entity_type, source_id, target_id, staged_at FROM staged_deletions"
                " WHERE integration_id=%s ORDER BY entity_type, source_id",
                (integration_id,),
            ).fetchall()
        )
        return [
            StagedDeletion(
                integration_id=integration_id,
                entity_type=r[0],
                source_id=r[1],
                target_id=r[2],
                staged_at=datetime.fromisoformat(r[3]),
            )
            for r in rows
        ]

    async def clear_staged_deletions(self, integration_id: str) -> None:
        await self._delete_all("staged_deletions", integration_id)

    # -- the sync engine's write ----------------------------------------------------------
    async def commit_batch(self, batch: BatchCommit) -> None:
        iid, et = batch.job.integration_id, batch.entity_type
        jrow = job_row(batch.job)
        # Links written with this pass's mark need not be marked again.
        marked = {k.source_id for k in batch.upsert_links if k.seen_pass == batch.seen_pass}
        unmarked = [s for s in batch.seen_ids if s not in marked]
        links = [link_row(iid, et, k) for k in batch.upsert_links]
        escrows = [escrow_row(e) for e in batch.add_escrows]
        staged = [
            (d.integration_id, d.entity_type, d.source_id, d.target_id, d.staged_at.isoformat())
            for d in batch.staged_deletions
        ]
        changes = change_rows([ch for ch in batch.changes if ch.action != "drop"])
        drops = [ch for ch in batch.changes if ch.action == "drop"]
        keyed = keyed_rows(batch.keyed_changes)

        def where(column: str) -> str:
            return f"integration_id=%s AND entity_type=%s AND {column} = ANY(%s::text[])"

        def commit(c: Connection) -> None:
            if drops:  # those whose escrow is still there (see BatchCommit.changes)
                there = {
                    (r[0], r[1])
                    for r in c.execute(
                        "SELECT entity_type, object_id FROM escrows WHERE integration_id=%s"
                        " AND object_id = ANY(%s::text[]) FOR UPDATE",
                        (iid, [ch.source_id for ch in drops]),
                    ).fetchall()
                }
                changes.extend(
                    change_rows([ch for ch in drops if (ch.entity_type, ch.source_id) in there])
                )
            c.execute(SAVE_JOB, jrow)
            upsert(c, "links", _LINKS, 3, links)
            if batch.delete_links:
                c.execute(
                    f"DELETE FROM links WHERE {where('source_id')}",
                    (iid, et, list(batch.delete_links)),
                )
            if batch.seen_pass is not None and unmarked:
                c.execute(
                    f"UPDATE links SET seen_pass=%s WHERE {where('source_id')}",
                    (batch.seen_pass, iid, et, unmarked),
                )
            if batch.remove_escrows:
                c.execute(
                    f"DELETE FROM escrows WHERE {where('object_id')}",
                    (iid, et, list(batch.remove_escrows)),
                )
            upsert(c, "escrows", _ESCROWS, 3, escrows)
            upsert(c, "staged_deletions", _STAGED, 3, staged)
            if batch.stale_watermarks:
                c.execute(
                    "DELETE FROM watermarks WHERE integration_id=%s"
                    " AND entity_type = ANY(%s::text[])",
                    (iid, list(batch.stale_watermarks)),
                )
            if batch.pass_complete and batch.watermark is not None:
                upsert(
                    c,
                    "watermarks",
                    ("integration_id", "entity_type", "value"),
                    2,
                    [(iid, et, batch.watermark)],
                )
            if batch.pass_complete and batch.exhaustive:
                c.execute(
                    "DELETE FROM escrows WHERE integration_id=%s AND entity_type=%s"
                    " AND kind='source' AND pass_id IS DISTINCT FROM %s",
                    (iid, et, batch.seen_pass),
                )
            append_changes(c, changes)
            append_keyed(c, keyed)

        await self._job_write(iid, commit)
        self._saw_job(batch.job)
