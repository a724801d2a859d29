"""Aggregates over finished jobs, shared by the store implementations."""

from __future__ import annotations

from collections.abc import Iterable

from ..models import Job, JobStatus
from .abc import JobHistory

__all__ = ["history_of"]


def history_of(jobs: Iterable[Job]) -> JobHistory:
    total = succeeded = finished = 0
    durations: list[int] = []
    for job in jobs:
        total += 1
        if job.status in (JobStatus.COMPLETED, JobStatus.FAILED):
            finished += 1
            if job.status is JobStatus.COMPLETED:
                succeeded += 1
                if job.duration_ms is not None:
                    durations.append(job.duration_ms)
    average = sum(durations) / len(durations) if durations else None
    return JobHistory(
        total_jobs=total, succeeded=succeeded, finished=finished, average_duration_ms=average
    )
