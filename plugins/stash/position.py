"""Where a job of the mirror stands, and what it has written so far, kept in the
mirror's own ``sync_state`` table (key ``job:<id>``).

The position and the job's counts are one JSON value, written in the same transaction
as the rows they describe: after a crash the mirror, the position and the counts agree,
and the job's stats in the daemon's store (saved after the mirror commits, and only at
batch boundaries) are taken from here when the job resumes. Nothing is counted twice
or lost, whatever moment the process died.

A position outlives its job's end (a crash between the mirror's last commit and the
store's "completed" must not run the job again from scratch); it is dropped once the
store says the job is over for good (see :func:`forget_ended`).
"""

from __future__ import annotations

import json
from collections.abc import Mapping
from dataclasses import asdict, fields
from typing import Any

from sluiced.models import JobStats, JobStatus

from .mirror import Mirror

__all__ = ["PREFIX", "decode", "encode", "forget_ended"]

PREFIX = "job:"
_STATS = "stats"


def encode(where: Mapping[str, Any], stats: JobStats) -> str:
    """The ``sync_state`` value of a job at *where* having written *stats*."""
    return json.dumps({**where, _STATS: asdict(stats)}, sort_keys=True)


def decode(value: str | None) -> tuple[dict[str, Any], JobStats | None]:
    """``(where, stats)`` of a stored value; stats None when the value has none (no
    value, or one written before counts were kept with it)."""
    data = json.loads(value) if value else {}
    counts = data.pop(_STATS, None)
    if not isinstance(counts, dict):
        return data, None
    known = {f.name for f in fields(JobStats)}
    return data, JobStats(**{k: int(v) for k, v in counts.items() if k in known})


async def forget_ended(mirror: Mirror, store: Any, keep: str) -> int:
    """Drop the positions of jobs other than *keep* that can never run again: gone from
    the store, completed, or stopped by a person (paused and failed jobs may be resumed,
    interrupted ones are). Returns how many were dropped."""
    drop: list[str] = []
    for key in await mirror.state(PREFIX):
        job_id = key[len(PREFIX) :]
        if job_id == keep:
            continue
        job = await store.get_job(job_id)
        if (
            job is None
            or job.status is JobStatus.COMPLETED
            or (job.status is JobStatus.STOPPED and not job.interrupted)
        ):
            drop.append(key)
    if drop:
        await mirror.save_state(dict.fromkeys(drop))
    return len(drop)
