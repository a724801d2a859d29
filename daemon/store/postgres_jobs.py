"""The PostgreSQL store's jobs: their records, logs and history."""

from __future__ import annotations

import json
from collections.abc import Collection, Sequence
from dataclasses import replace
from datetime import datetime
from typing import Any

from ..codec import from_dict
from ..models import Job, JobStatus, LogEntry
from .abc import JobHistory
from .pgthread import Connection
from .postgres_base import PostgresBase
from .sqlite_base import job_row

__all__ = ["SAVE_JOB", "PostgresJobs"]

SAVE_JOB = (
    "INSERT INTO jobs (id, integration_id, status, created_at, duration_ms, body, node)"
    " VALUES (%s,%s,%s,%s,%s,%s,%s) ON CONFLICT (id) DO UPDATE SET"
    " integration_id=excluded.integration_id, status=excluded.status,"
    " created_at=excluded.created_at, duration_ms=excluded.duration_ms, body=excluded.body,"
    " node=excluded.node"
)


class PostgresJobs(PostgresBase):
    """Jobs, their logs (the newest ``log_limit`` of each) and their history."""

    async def save_job(self, job: Job) -> None:
        row = job_row(job)
        await self._job_write(job.integration_id, lambda c: c.execute(SAVE_JOB, row))
        self._saw_job(job)

    async def get_job(self, job_id: str) -> Job | None:
        row = await self._read(
            lambda c: c.execute("SELECT body FROM jobs WHERE id=%s", (job_id,)).fetchone()
        )
        return from_dict(Job, json.loads(row[0])) if row else None

    async def list_jobs(
        self,
        *,
        statuses: Collection[JobStatus] | None = None,
        integration_id: str | None = None,
        limit: int | None = 20,
    ) -> tuple[list[Job], int]:
        where: list[str] = ["TRUE"]
        args: list[Any] = []
        if statuses is not None:
            where.append("status = ANY(%s::text[])")
            args.append([s.value for s in statuses])
        if integration_id is not None:
            where.append("integration_id=%s")
            args.append(integration_id)
        cond = " AND ".join(where)

        def query(c: Connection) -> tuple[list[Any], int]:
            total = c.execute(f"SELECT count(*) FROM jobs WHERE {cond}", args).fetchone()
            rows = c.execute(
                f"SELECT body FROM jobs WHERE {cond} ORDER BY created_at DESC, id DESC"
                " LIMIT %s::bigint",
                [*args, limit],
            ).fetchall()
            return rows, int(total[0]) if total else 0

        rows, total = await self._read(query)
        return [from_dict(Job, json.loads(r[0])) for r in rows], total

    async def delete_job(self, job_id: str, *, delete_logs: bool) -> bool:
        def delete(c: Connection) -> bool:
            if delete_logs:
                c.execute("DELETE FROM job_logs WHERE job_id=%s", (job_id,))
            return c.execute("DELETE FROM jobs WHERE id=%s", (job_id,)).rowcount > 0

        return await self._write(delete)

    async def append_logs(self, job_id: str, entries: Sequence[LogEntry]) -> None:
        if not entries:
            return
        limit = self.log_limit

        def append(c: Connection) -> int:
            row = c.execute("SELECT max(seq) FROM job_logs WHERE job_id=%s", (job_id,)).fetchone()
            start: int = (row[0] if row and row[0] is not None else 0) + 1
            c.execute(
                "INSERT INTO job_logs (job_id, seq, ts, level, message)"
                " SELECT %s, * FROM unnest(%s::bigint[], %s::text[], %s::text[], %s::text[])",
                (
                    job_id,
                    list(range(start, start + len(entries))),
                    [e.timestamp.isoformat() for e in entries],
                    [e.level for e in entries],
                    [e.message.replace("\x00", "\ufffd") for e in entries],
                ),
            )
            c.execute(
                "DELETE FROM job_logs WHERE job_id=%s AND seq<=%s",
                (job_id, start + len(entries) - 1 - limit),
            )
            return start

        def integration(c: Connection) -> str | None:
            row = c.execute("SELECT integration_id FROM jobs WHERE id=%s", (job_id,)).fetchone()
            return str(row[0]) if row else None

        start = await self._job_write(integration, append)
        self._saw_logs(job_id, [replace(e, seq=start + i) for i, e in enumerate(entries)])

    async def get_logs(
        self, job_id: str, *, limit: int | None = None, after: int | None = None
    ) -> list[LogEntry]:
        rows = await self._read(
            lambda c: c.execute(
                "SELECT ts, level, message, seq FROM (SELECT * FROM job_logs WHERE job_id=%s"
                " AND seq>%s ORDER BY seq DESC LIMIT %s::bigint) AS newest ORDER BY seq",
                (job_id, after or 0, limit),
            ).fetchall()
        )
        return [
            LogEntry(timestamp=datetime.fromisoformat(t), level=lv, message=m, seq=int(n))
            for t, lv, m, n in rows
        ]

    async def job_history(self, integration_id: str) -> JobHistory:
        row = await self._read(
            lambda c: c.execute(
                "SELECT count(*), count(*) FILTER (WHERE status='completed'),"
                " count(*) FILTER (WHERE status IN ('completed','failed')),"
                " avg(duration_ms) FILTER (WHERE status='completed')"
                " FROM jobs WHERE integration_id=%s",
                (integration_id,),
            ).fetchone()
        )
        assert row is not None
        return JobHistory(
            total_jobs=int(row[0]),
            succeeded=int(row[1]),
            finished=int(row[2]),
            average_duration_ms=float(row[3]) if row[3] is not None else None,
        )
