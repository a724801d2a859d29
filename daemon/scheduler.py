"""The scheduling loop: it starts each integration's job when it comes due, and sleeps
until the next one is due, a minute at most, or until it is woken (a job ended, a
setting changed). A store it cannot write (a full disk) is tried again later; the
daemon stays up.
"""

from __future__ import annotations

from collections.abc import Callable, Collection, Mapping
from dataclasses import replace
from datetime import datetime, timedelta
from typing import Any

import trio

from .clock import Clock
from .logs import get_logger
from .models import Job, JobStatus
from .ondemand import PROVISION_JOB
from .resolved import Resolved
from .runner import JobRunner, new_job
from .schedule import next_due
from .store import Store, StoreUnavailable
from .store.errors import LeaseLost

__all__ = ["STORE_RETRY", "TICK", "Scheduler"]

log = get_logger("sluiced.daemon")

#: How long the scheduler waits before it tries a store it could not write again.
STORE_RETRY = timedelta(seconds=30)
#: The scheduler looks at the schedule at least this often (its heartbeat in ``/healthz``).
TICK = timedelta(seconds=60)


#: The statuses of a job that a crash, a shutdown or a lost lease may have interrupted.
_INTERRUPTED = frozenset(
    {JobStatus.RUNNING, JobStatus.STOPPING, JobStatus.QUEUED, JobStatus.STOPPED}
)


def _everything(integration_id: str) -> bool:
    return True


class Scheduler:
    """Starts the due jobs of *integrations* (looked at anew each time) on *runner*, of
    those this node *holds* (its leases) and is *ready* to start new jobs of (their
    interrupted jobs were resumed); *started* is when the daemon started (a never-run
    integration is due then)."""

    def __init__(
        self,
        *,
        integrations: Mapping[str, Resolved],
        runner: JobRunner,
        store: Store,
        clock: Clock,
        started: Callable[[], datetime],
        holds: Callable[[str], bool] = _everything,
        ready: Callable[[str], bool] = _everything,
    ) -> None:
        self.integrations = integrations
        self.holds = holds
        self.ready = ready
        self.runner = runner
        self.store = store
        self.clock = clock
        self.started = started
        self._wake = trio.Event()
        #: When the scheduler last looked at the schedule, and what failed then, if anything.
        self.last_tick: datetime | None = None
        self.tick_error: str | None = None

    def wake(self) -> None:
        """Look at the schedule again now."""
        self._wake.set()

    def health(self) -> dict[str, Any]:
        """``ok`` when the scheduler's last look at the schedule succeeded and is no
        older than three ticks (or it has not had its first yet, at start)."""
        since = self.last_tick or self.started()
        fresh = self.clock.now() - since <= 3 * TICK
        return {
            "ok": fresh and self.tick_error is None,
            "lastTick": self.last_tick.isoformat() if self.last_tick else None,
            "error": self.tick_error or (None if fresh else "the scheduler has not run lately"),
        }

    async def resume_interrupted(self, only: Collection[str] | None = None) -> list[str]:
        """Queue again the jobs a crash or shutdown interrupted (from their checkpoints),
        of the integrations *only* names (None: all) that this node holds; return their
        ids. Those of an integration no longer configured, and provisionings, fail
        instead. A job that runs here already is left alone; one whose task is being
        cancelled here (its lease was lost and claimed back) is resumed once that task
        ended, if it is still interrupted then. A job whose lease is lost meanwhile is
        left to the node that holds it.

        Raises:
            StoreUnavailable: the store failed; some jobs may have been resumed (calling
                again resumes the others).
        """
        jobs, _ = await self.store.list_jobs(statuses=_INTERRUPTED, limit=None)
        resumed = []
        for job in sorted(jobs, key=lambda j: j.created_at):
            if (only is not None and job.integration_id not in only) or not self.holds(
                job.integration_id
            ):
                continue
            if self.runner.running(job.id):
                continue
            ended = self.runner.task_ended(job.id)
            if ended is not None:
                await ended.wait()
                again = await self.store.get_job(job.id)
                if again is None:
                    continue
                job = again
            if job.status not in _INTERRUPTED or (
                job.status is JobStatus.STOPPED and not job.interrupted
            ):
                continue
            try:
                if await self._resume(job):
                    resumed.append(job.id)
            except LeaseLost as exc:
                log.warning("not resumed: the lease is lost", job_id=job.id, error=str(exc))
        return resumed

    async def _resume(self, job: Job) -> bool:
        """Queue *job* again, or fail it if it cannot be; returns whether it was queued."""
        error = None
        if job.integration_id not in self.integrations:
            error = "its integration is no longer configured"
        elif job.type == PROVISION_JOB:
            error = "the daemon stopped while it ran; provision the object again"
        if error is not None:
            await self.store.save_job(
                replace(job, status=JobStatus.FAILED, completed_at=self.clock.now(), error=error)
            )
            return False
        log.info(
            "resuming job",
            job_id=job.id,
            integration_id=job.integration_id,
            was=job.status.value,
        )
        await self.runner.submit(job)
        return True

    async def run(self) -> None:
        """Schedule until cancelled."""
        while True:
            self._wake = trio.Event()
            now = self.clock.now()
            try:
                earliest = await self._start_due(now)
                self.tick_error = None
            except StoreUnavailable as exc:  # a full disk: stay up, try again later
                log.error(
                    "the scheduler cannot use the store; trying again",
                    error=str(exc),
                    retry_in_s=STORE_RETRY.total_seconds(),
                )
                self.tick_error = str(exc)
                earliest = now + STORE_RETRY
            self.last_tick = self.clock.now()
            delay = (
                TICK.total_seconds()
                if earliest is None
                else max(0.0, min(TICK, earliest - self.clock.now()).total_seconds())
            )
            with trio.move_on_after(delay):
                await self._wake.wait()

    async def _start_due(self, now: datetime) -> datetime | None:
        """Start the jobs due at *now*; return when the next one is due, if any."""
        earliest: datetime | None = None
        for ident, resolved in list(self.integrations.items()):  # changes while we await
            # A job finishing up counts: its run's end is not in the state yet, and the
            # scheduler is woken again when its task is over.
            if self.runner.busy(ident, finishing=True) or not self.ready(ident):
                continue
            state = await self.store.get_state(ident)
            due = next_due(resolved.cfg, state, now=now, started=self.started())
            if due is None or ident not in self.integrations:
                continue
            if due.at <= now:
                # Claimed only if still idle: start may have run it while we awaited.
                try:
                    job = await self.runner.submit_if_idle(
                        new_job(ident, due.job_type.value, now), finishing=True
                    )
                except LeaseLost as exc:  # lost while we looked: its holder runs it
                    log.warning("the due job is not started here", error=str(exc))
                    continue
                if job is None:
                    continue
                log.info(
                    "scheduled job started", integration_id=ident, job_id=job.id, type=job.type
                )
            elif earliest is None or due.at < earliest:
                earliest = due.at
        return earliest
