"""The SQLite store's sync state: watermarks, links, escrows, staged deletions, and
the engine's batch commit of them in one transaction."""

from __future__ import annotations

import json
import sqlite3
from collections.abc import Callable, Collection, Mapping
from dataclasses import replace
from datetime import datetime
from typing import Any

from ..changes import Change
from ..codec import from_dict
from ..models import Escrow, Link
from .abc import BatchCommit, StagedDeletion
from .sqlite_base import (
    LINK_COLUMNS,
    LINK_COLUMNS_ALL,
    SAVE_JOB,
    SqliteBase,
    escrow_row,
    job_row,
    link,
    link_row,
)
from .sqlite_changes import CHANGE_COLUMNS, append_keyed, change_rows, keyed_rows

__all__ = ["SqliteSyncState"]


class SqliteSyncState(SqliteBase):
    """What the sync engine keeps between runs, and its batch commit."""

    async def get_watermarks(self, integration_id: str) -> Mapping[str, str]:
        rows = await self._read(
            lambda c: c.execute(
                "SELECT entity_type, value FROM watermarks WHERE integration_id=?",
                (integration_id,),
            ).fetchall()
        )
        return dict(rows)

    async def _delete_all(self, table: str, integration_id: str) -> None:
        await self._write(
            lambda c: c.execute(f"DELETE FROM {table} WHERE integration_id=?", (integration_id,))
        )

    async def clear_watermarks(self, integration_id: str) -> None:
        await self._delete_all("watermarks", integration_id)

    async def get_links(
        self, integration_id: str, entity_type: str, source_ids: Collection[str]
    ) -> dict[str, Link]:
        ids = list(source_ids)

        def query(c: sqlite3.Connection) -> list[Any]:
            rows: list[Any] = []
            for i in range(0, len(ids), 500):
                chunk = ids[i : i + 500]
                rows += c.execute(
                    f"SELECT {LINK_COLUMNS} FROM links WHERE integration_id=? AND"
                    f" entity_type=? AND source_id IN ({','.join('?' * len(chunk))})",
                    [integration_id, entity_type, *chunk],
                ).fetchall()
            return rows

        rows = await self._read(query)
        return {r[0]: link(r) for r in rows}

    async def unseen_links(
        self, integration_id: str, entity_type: str, pass_id: str, *, after: str | None, limit: int
    ) -> list[Link]:
        rows = await self._read(
            lambda c: c.execute(
                f"SELECT {LINK_COLUMNS} FROM links WHERE integration_id=? AND entity_type=?"
                " AND seen_pass IS NOT ? AND source_id>? ORDER BY source_id LIMIT ?",
                (integration_id, entity_type, pass_id, after or "", limit),
            ).fetchall()
        )
        return [link(r) for r in rows]

    async def count_links(self, integration_id: str, entity_type: str) -> int:
        row = await self._read(
            lambda c: c.execute(
                "SELECT count(*) FROM links WHERE integration_id=? AND entity_type=?",
                (integration_id, entity_type),
            ).fetchone()
        )
        return int(row[0])

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
        where, args = ["integration_id=?"], [integration_id]
        for column, value in (("entity_type", entity_type), ("kind", kind)):
            if value is not None:
                where.append(f"{column}=?")
                args.append(value)
        if due_before is not None:
            where.append("next_retry<=?")
            args.append(due_before.isoformat())
        sql = (
            f"SELECT body FROM escrows WHERE {' AND '.join(where)}"
            " ORDER BY next_retry, entity_type, object_id LIMIT ?"
        )
        rows = await self._read(
            lambda c: c.execute(sql, [*args, -1 if limit is None else limit]).fetchall()
        )
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
        def drop(c: sqlite3.Connection) -> bool:
            row = c.execute(
                "DELETE FROM escrows WHERE integration_id=? AND entity_type=? AND object_id=?"
                " RETURNING body",
                (integration_id, entity_type, object_id),
            ).fetchone()
            if row is not None and log is not None:
                marks = ",".join("?" * len(CHANGE_COLUMNS))
                c.executemany(
                    f"INSERT INTO changes ({', '.join(CHANGE_COLUMNS)}) VALUES ({marks})",
                    change_rows([log(from_dict(Escrow, json.loads(row[0])))]),
                )
            return row is not None

        return await self._write(drop)

    async def retry_escrow_at(
        self, integration_id: str, entity_type: str, object_id: str, when: datetime
    ) -> bool:
        def update(c: sqlite3.Connection) -> bool:
            row = c.execute(
                "SELECT body FROM escrows WHERE integration_id=? AND entity_type=? AND object_id=?",
                (integration_id, entity_type, object_id),
            ).fetchone()
            if row is None:
                return False
            escrow = replace(from_dict(Escrow, json.loads(row[0])), next_retry=when)
            c.execute("INSERT OR REPLACE INTO escrows VALUES (?,?,?,?,?,?,?)", escrow_row(escrow))
            return True

        return await self._write(update)

    async def clear_escrows(
        self, integration_id: str, *, log: Callable[[Escrow], Change] | None = None
    ) -> None:
        if log is None:
            await self._delete_all("escrows", integration_id)
            return

        def clear(c: sqlite3.Connection) -> None:
            rows = c.execute(
                "DELETE FROM escrows WHERE integration_id=? RETURNING body", (integration_id,)
            ).fetchall()
            marks = ",".join("?" * len(CHANGE_COLUMNS))
            c.executemany(
                f"INSERT INTO changes ({', '.join(CHANGE_COLUMNS)}) VALUES ({marks})",
                change_rows([log(from_dict(Escrow, json.loads(r[0]))) for r in rows]),
            )

        await self._write(clear)

    async def list_staged_deletions(self, integration_id: str) -> list[StagedDeletion]:
        rows = await self._read(
            lambda c: c.execute(
                "SELECT entity_type, source_id, target_id, staged_at FROM staged_deletions"
                " WHERE integration_id=? ORDER BY entity_type, source_id",
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
        changes = change_rows([ch for ch in batch.changes if ch.action != "drop"])
        drops = [ch for ch in batch.changes if ch.action == "drop"]
        keyed = keyed_rows(batch.keyed_changes)

        def commit(c: sqlite3.Connection) -> None:
            if drops:  # those whose escrow is still there (see BatchCommit.changes)
                changes.extend(
                    change_rows(
                        [
                            ch
                            for ch in drops
                            if c.execute(
                                "SELECT 1 FROM escrows WHERE integration_id=? AND entity_type=?"
                                " AND object_id=?",
                                (ch.integration_id, ch.entity_type, ch.source_id),
                            ).fetchone()
                        ]
                    )
                )
            c.execute(SAVE_JOB, jrow)
            c.executemany(
                f"INSERT OR REPLACE INTO links ({LINK_COLUMNS_ALL}) VALUES (?,?,?,?,?,?,?,?)",
                [link_row(iid, et, k) for k in batch.upsert_links],
            )
            c.executemany(
                "DELETE FROM links WHERE integration_id=? AND entity_type=? AND source_id=?",
                [(iid, et, s) for s in batch.delete_links],
            )
            if batch.seen_pass is not None:
                c.executemany(
                    "UPDATE links SET seen_pass=? WHERE integration_id=? AND entity_type=? AND source_id=?",
                    [(batch.seen_pass, iid, et, s) for s in batch.seen_ids if s not in marked],
                )
            c.executemany(
                "DELETE FROM escrows WHERE integration_id=? AND entity_type=? AND object_id=?",
                [(iid, et, o) for o in batch.remove_escrows],
            )
            c.executemany(
                "INSERT OR REPLACE INTO escrows VALUES (?,?,?,?,?,?,?)",
                [escrow_row(e) for e in batch.add_escrows],
            )
            c.executemany(
                "INSERT OR REPLACE INTO staged_deletions VALUES (?,?,?,?,?)",
                [
                    (
                        d.integration_id,
                        d.entity_type,
                        d.source_id,
                        d.target_id,
                        d.staged_at.isoformat(),
                    )
                    for d in batch.staged_deletions
                ],
            )
            c.executemany(
                "DELETE FROM watermarks WHERE integration_id=? AND entity_type=?",
                [(iid, t) for t in batch.stale_watermarks],
            )
            if batch.pass_complete and batch.watermark is not None:
                c.execute(
                    "INSERT OR REPLACE INTO watermarks VALUES (?,?,?)",
                    (iid, et, batch.watermark),
                )
            if batch.pass_complete and batch.exhaustive:
                c.execute(
                    "DELETE FROM escrows WHERE integration_id=? AND entity_type=? AND kind='source'"
                    " AND pass_id IS NOT ?",
                    (iid, et, batch.seen_pass),
                )
            if changes:
                c.executemany(
                    f"INSERT INTO changes ({', '.join(CHANGE_COLUMNS)}) VALUES (?,?,?,?,?,?,?,?)",
                    changes,
                )
            if keyed:
                append_keyed(c, keyed)

        await self._write(commit)
        self._saw_job(batch.job)
