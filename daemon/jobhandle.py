"""Jobs as the runner holds them: a new one, and the handle of one whose task lives
(how to pause, stop or cancel it, and whether its end is recorded yet)."""

from __future__ import annotations

import uuid
from collections.abc import Callable
from dataclasses import dataclass, field
from datetime import datetime
from typing import Any

import trio

from .models import Job
from .retrying import RetryWaits
from .sync import JobControl

__all__ = ["JobHandle", "new_job"]


def new_job(
    integration_id: str, job_type: str, now: datetime, params: dict[str, Any] | None = None
) -> Job:
    return Job(
        id=f"job-{uuid.uuid4().hex[:12]}",
        integration_id=integration_id,
        type=job_type,
        params=params or {},
        created_at=now,
    )


@dataclass
class JobHandle:
    job_id: str
    integration_id: str
    control: JobControl = field(default_factory=JobControl)
    scope: trio.CancelScope = field(default_factory=trio.CancelScope)
    #: Stopped because the daemon is shutting down: resume at the next start.
    shutdown: bool = False
    #: Set when the job's task has ended.
    done: trio.Event = field(default_factory=trio.Event)
    #: The job's end (or pause) is recorded; the task is finishing up.
    finished: bool = False
    #: The job as its run holds it in memory (progress moves between store saves).
    live: Callable[[], Job] | None = None
    #: The job's retry waits: a stop or pause request ends them at once.
    waits: RetryWaits = field(default_factory=RetryWaits)
