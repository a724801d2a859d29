"""The SQLite store's jobs: their records, logs and history."""

from __future__ import annotations

import json
import sqlite3
from collections.abc import Collection, Sequence
from dataclasses import replace
from datetime import datetime
from typing import Any

from ..codec import from_dict
from ..models import Job, JobStatus, LogEntry
from .abc import JobHistory
from .sqlite_base import SAVE_JOB, SqliteBase, job_row

__all__ = ["SqliteJobs"]


class SqliteJobs(SqliteBase):
    """Jobs, their logs (the newest ``log_limit`` of each) and their history."""

    async def save_job(self, job: Job) -> None:
        row = job_row(job)
        await self._write(lambda c: c.execute(SAVE_JOB, row))
        self._saw_job(job)

    async def get_job(self, job_id: str) -> Job | None:
        row = await self._read(
            lambda c: c.execute("SELECT body FROM jobs WHERE id=?", (job_id,)).fetchone()
        )
        return from_dict(Job, json.loads(row[0])) if row else None

    async def list_jobs(
        self,
        *,
        statuses: Collection[JobStatus] | None = None,
        integration_id: str | None = None,
        limit: int | None = 20,
    ) -> tuple[list[Job], int]:
        where, args = ["1"], []
        if statuses is not None:
            where.append(f"status IN ({','.join('?' * len(statuses))})")
            args += [s.value for s in statuses]
        if integration_id is not None:
            where.append("integration_id=?")
            args.append(integration_id)
        cond = " AND ".join(where)

        def query(c: sqlite3.Connection) -> tuple[list[Any], int]:
            total = c.execute(f"SELECT count(*) FROM jobs WHERE {cond}", args).fetchone()[0]
            rows = c.execute(
                f"SELECT body FROM jobs WHERE {cond} ORDER BY created_at DESC, id DESC LIMIT ?",
                [*args, -1 if limit is None else limit],
            ).fetchall()
            return rows, total

        rows, total = await self._read(query)
        return [from_dict(Job, json.loads(r[0])) for r in rows], total

    async def delete_job(self, job_id: str, *, delete_logs: bool) -> bool:
        def delete(c: sqlite3.Connection) -> bool:
            if delete_logs:
                c.execute("DELETE FROM job_logs WHERE job_id=?", (job_id,))
            return c.execute("DELETE FROM jobs WHERE id=?", (job_id,)).rowcount > 0

        return await self._write(delete)

    async def append_logs(self, job_id: str, entries: Sequence[LogEntry]) -> None:
        if not entries:
            return
        limit = self.log_limit

        def append(c: sqlite3.Connection) -> int:
            last = c.execute("SELECT max(seq) FROM job_logs WHERE job_id=?", (job_id,)).fetchone()[
                0
            ]
            start: int = (last or 0) + 1
            c.executemany(
                "INSERT INTO job_logs VALUES (?,?,?,?,?)",
                [
                    (job_id, start + i, e.timestamp.isoformat(), e.level, e.message)
                    for i, e in enumerate(entries)
                ],
            )
            c.execute(
                "DELETE FROM job_logs WHERE job_id=? AND seq<=?",
                (job_id, start + len(entries) - 1 - limit),
            )
            return start

        start = await self._write(append)
        self._saw_logs(job_id, [replace(e, seq=start + i) for i, e in enumerate(entries)])

    async def get_logs(
        self, job_id: str, *, limit: int | None = None, after: int | None = None
    ) -> list[LogEntry]:
        rows = await self._read(
            lambda c: c.execute(
                "SELECT ts, level, message, seq FROM (SELECT * FROM job_logs WHERE job_id=? AND seq>?"
                " ORDER BY seq DESC LIMIT ?) ORDER BY seq",
                (job_id, after or 0, -1 if limit is None else limit),
            ).fetchall()
        )
        return [
            LogEntry(timestamp=datetime.fromisoformat(t), level=lv, message=m, seq=n)
            for t, lv, m, n in rows
        ]

    async def job_history(self, integration_id: str) -> JobHistory:
        row = await self._read(
            lambda c: c.execute(
                "SELECT count(*), total(status='completed'), total(status IN ('completed','failed')),"
                " avg(CASE WHEN status='completed' THEN duration_ms END) FROM jobs WHERE integration_id=?",
                (integration_id,),
            ).fetchone()
        )
        return JobHistory(
            total_jobs=row[0],
            succeeded=int(row[1]),
            finished=int(row[2]),
            average_duration_ms=row[3],
        )
