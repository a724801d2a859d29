"""The controller's operations on jobs (seed 002), and the state all its operations
share. See :class:`~sluiced.control.Control` for the contract of each."""

from __future__ import annotations

from collections.abc import Collection, Mapping, Sequence
from dataclasses import replace
from datetime import datetime
from typing import Any

import trio

from .clock import Clock
from .control import Conflict, Control, Host, NotFound, Runner
from .jobfeed import JobFeed
from .models import Job, JobStatus, JobType, LogEntry
from .plans import read_plan
from .resolved import Resolved
from .runner import new_job
from .schedule import effective_interval, next_due
from .store import Store

__all__ = ["JobOps"]


#: How long deleting a job that is over waits for its task to close its connectors.
_CLOSING_WAIT = 35.0


class JobOps(Control):
    """Jobs: looking at them, creating, resuming, stopping and deleting them."""

    def __init__(self, *, host: Host, runner: Runner, store: Store, clock: Clock) -> None:
        self.host = host
        self.runner = runner
        self.store = store
        self.clock = clock

    # -- lookups ------------------------------------------------------------------------
    def _integration(self, integration_id: str) -> Resolved:
        resolved = self.host.integrations.get(integration_id)
        if resolved is None:
            raise NotFound(f"no integration {integration_id!r}")
        return resolved

    async def job(self, job_id: str) -> Job:
        job = await self.store.get_job(job_id)
        if job is None:
            raise NotFound(f"no job {job_id!r}")
        return self.live(job)

    async def get_job(self, job_id: str) -> Job | None:
        return await self.store.get_job(job_id)

    async def get_logs(self, job_id: str, *, after: int | None = None) -> list[LogEntry]:
        return await self.store.get_logs(job_id, after=after)

    def live(self, job: Job) -> Job:
        """A running job's progress, stage and estimate as its run holds them in memory:
        they move between the store saves (which come at batch boundaries)."""
        now = self.runner.live(job.id)
        if job.status is not JobStatus.RUNNING or now is None:
            return job
        return replace(
            job,
            progress=max(job.progress, now.progress),
            stage=now.stage,
            estimated_completion=now.estimated_completion,
        )

    def task_ended(self, job_id: str) -> trio.Event | None:
        return self.runner.task_ended(job_id)

    @property
    def feed(self) -> JobFeed:
        return self.host.feed

    async def job_with_logs(
        self, job_id: str, *, log_limit: int = 100
    ) -> tuple[Job, list[LogEntry]]:
        job = await self.job(job_id)
        return job, await self.store.get_logs(job_id, limit=log_limit)

    async def list_jobs(
        self, *, statuses: Collection[JobStatus] | None, integration_id: str | None, limit: int
    ) -> tuple[list[Job], int]:
        jobs, total = await self.store.list_jobs(
            statuses=statuses, integration_id=integration_id, limit=limit
        )
        return [self.live(j) for j in jobs], total

    async def current_job(self, integration_id: str) -> Job | None:
        ids = self.runner.tasks(integration_id)
        job = await self.store.get_job(ids[0]) if ids else None
        return None if job is None else self.live(job)

    # -- creating and resuming ----------------------------------------------------------------
    async def create_job(
        self,
        integration_id: str,
        job_type: JobType,
        *,
        force: bool = False,
        entity_types: Sequence[str] = (),
        batch_size: int | None = None,
        extra: Mapping[str, Any] | None = None,
        dry_run: bool = False,
    ) -> tuple[Job, float | None]:
        resolved = self._integration(integration_id)
        unknown = [e for e in entity_types if e not in resolved.cfg.entity_types]
        if unknown:
            raise Conflict(
                f"entity types {unknown} are not synced by {integration_id!r} "
                f"({', '.join(resolved.cfg.entity_types)})"
            )
        if not force and self.runner.busy(integration_id):
            raise Conflict(
                f"integration {integration_id!r} already has an active job; use force to queue another"
            )
        params: dict[str, Any] = dict(extra or {})
        if entity_types:
            params["entity_types"] = list(entity_types)
        if batch_size:
            params["batch_size"] = batch_size
        if dry_run:
            if self.runner.source_keyed(integration_id):
                raise Conflict(
                    f"{integration_id!r} writes into a target keyed by source ids; dry runs"
                    " are for targets the engine keeps links for"
                )
            params["dry_run"] = True
        job = await self.runner.submit(
            new_job(integration_id, job_type.value, self.clock.now(), params)
        )
        history = await self.store.job_history(integration_id)
        return job, history.average_duration_ms

    def _integration_with_target(self, integration_id: str | None, targets: Collection[str]) -> str:
        """The integration a request for a plugin's job type means: the one named, or
        the only one whose target connector is one of *targets*."""
        fitting = sorted(
            i for i, r in self.host.integrations.items() if r.cfg.target.connector in targets
        )
        names = " or ".join(sorted(targets))
        if integration_id is None:
            if len(fitting) != 1:
                raise Conflict(
                    f"{len(fitting)} integrations write to {names} "
                    f"({', '.join(fitting) or 'none'}); name one with integrationId"
                )
            return fitting[0]
        self._integration(integration_id)
        if integration_id not in fitting:
            raise Conflict(f"integration {integration_id!r} does not write to {names}")
        return integration_id

    async def queue_job(
        self,
        integration_id: str | None,
        job_type: str,
        params: Mapping[str, Any],
        *,
        targets: Collection[str],
    ) -> Job:
        ident = self._integration_with_target(integration_id, targets)
        return await self.runner.submit(new_job(ident, job_type, self.clock.now(), dict(params)))

    async def resume(self, job_id: str) -> Job:
        job = await self.job(job_id)
        if job.status not in (JobStatus.PAUSED, JobStatus.FAILED):
            raise Conflict(
                f"a {job.status.value} job cannot be resumed (only paused or failed ones)"
            )
        if job.integration_id not in self.host.integrations:
            raise Conflict(f"its integration {job.integration_id!r} is no longer configured")
        return await self.runner.submit(job)

    # -- stopping and deleting ---------------------------------------------------------------
    async def stop_job(self, job_id: str, *, graceful: bool) -> Job:
        job = await self.job(job_id)
        if job.status is JobStatus.PAUSED:
            job = replace(job, status=JobStatus.STOPPED, completed_at=self.clock.now())
            await self.store.save_job(job)
            return job
        if not self.runner.stop(job_id, graceful=graceful):
            raise Conflict(f"a {job.status.value} job is not running")
        if graceful and job.status is JobStatus.RUNNING:
            job = replace(job, status=JobStatus.STOPPING)
            await self.store.save_job(job)
        return job

    async def stop_all(self, integration_id: str | None = None) -> list[str]:
        if integration_id is not None:
            self._integration(integration_id)
        ids = self.runner.tasks(integration_id, finishing=False)
        for job_id in ids:
            try:
                await self.stop_job(job_id, graceful=True)
            except NotFound:  # submitted a moment ago, not saved yet: stopped before it starts
                self.runner.stop(job_id, graceful=True)
        return ids

    async def delete_job(self, job_id: str, *, delete_logs: bool) -> None:
        job = await self.job(job_id)
        ended = self.runner.task_ended(job_id)
        if ended is not None and job.status.terminal:
            # Recorded as over, its task still closing the connectors: wait for it.
            with trio.move_on_after(_CLOSING_WAIT):
                await ended.wait()
            ended = self.runner.task_ended(job_id)
        if ended is not None:
            raise Conflict(f"the job is {job.status.value}; stop it first")
        await self.store.delete_job(job_id, delete_logs=delete_logs)

    async def set_interval(
        self, job_id: str, seconds: float
    ) -> tuple[float, float, datetime | None]:
        job = await self.job(job_id)
        resolved = self._integration(job.integration_id)
        async with self.store.state_lock(job.integration_id):
            state = await self.store.get_state(job.integration_id)
            old = effective_interval(resolved.cfg, state).total_seconds()
            state = replace(state, interval_s=seconds)
            await self.store.put_state(state)
        self.host.wake()
        due = next_due(resolved.cfg, state, now=self.clock.now(), started=self.host.started)
        return old, seconds, due.at if due else None

    async def plan(self, job_id: str, *, offset: int, limit: int) -> dict[str, Any]:
        job = await self.store.get_job(job_id)
        if job is None:
            raise NotFound(f"no job {job_id!r}")
        if not job.params.get("dry_run"):
            raise Conflict(f"job {job_id!r} is not a dry run; it has no plan")
        path = self.runner.plan_path(job_id)
        if not path.exists():
            raise Conflict(f"the dry run {job_id!r} has not started yet")
        page = await trio.to_thread.run_sync(lambda: read_plan(path, offset=offset, limit=limit))
        return {"jobId": job_id, "status": job.status.value, **page}
