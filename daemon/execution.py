"""One job's run, from its start to how it ended: open the integration's connectors,
build the sync engine over them, run it, and record the
outcome. The runner gives each job's task to :meth:`Executor.run` inside the job's
cancel scope, lock and slot.
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import replace
from pathlib import Path

import trio

from .clock import Clock
from .config import IntegrationConfig
from .connectors import ConnectorContext, Source, Target
from .errors import SyncError
from .jobhandle import JobHandle
from .jobstate import check_transition
from .logs import get_logger
from .mapping import Schema
from .mapping.mapper import SchemaMapper
from .models import IntegrationState, Job, JobStats, JobStatus
from .outcomes import Outcomes
from .plans import PlanFile
from .resolved import Resolved
from .retrying import Breakers
from .store import Store, StoreUnavailable
from .sync import Interrupted, SyncEngine, content_hash

__all__ = ["Executor"]

log = get_logger("sluiced.runner")


class Executor:
    """Runs jobs: the connectors of an integration come from *resolve* and *context*,
    its schema from *schema_of*, a dry run's plan file from *plan_path*; *fence_for*
    gives the fence of an integration's jobs (see :class:`~sluiced.sync.SyncEngine`;
    None: unfenced); each job it starts records *node* as the node that ran it."""

    def __init__(
        self,
        *,
        store: Store,
        clock: Clock,
        outcomes: Outcomes,
        breakers: Breakers,
        resolve: Callable[[str], Resolved | None],
        context: Callable[[str], ConnectorContext],
        schema_of: Callable[[IntegrationConfig, IntegrationState], Schema],
        plan_path: Callable[[str], Path],
        fence_for: Callable[[str], Callable[[], bool]] | None = None,
        node: str | None = None,
    ) -> None:
        self.store = store
        self.node = node
        self.fence_for = fence_for
        self.clock = clock
        self.outcomes = outcomes
        self.breakers = breakers
        self.resolve = resolve
        self.context = context
        self.schema_of = schema_of
        self.plan_path = plan_path

    async def run(self, job: Job, handle: JobHandle) -> None:
        """Run *job* to its end and record it (completed, failed, paused, stopped).
        Cancelled, it leaves the job as last saved (the runner records the stop); the
        connectors are closed either way, within 30 s.

        Raises:
            StoreUnavailable: the store could not be written.
        """
        save = self.outcomes.save
        current = await self.store.get_job(job.id) or job
        if handle.control.stop_requested:
            await save(
                replace(
                    current,
                    status=JobStatus.STOPPED,
                    completed_at=self.clock.now(),
                    interrupted=handle.shutdown,
                )
            )
            return
        resolved = self.resolve(job.integration_id)
        now = self.clock.now()
        if current.params.get("dry_run"):  # a plan is made whole: from the start
            current = replace(current, checkpoint=None, stats=JobStats(), progress=0.0)
        job = replace(
            current,
            status=check_transition(current.status, JobStatus.RUNNING),
            started_at=current.started_at or now,
            completed_at=None,
            error=None,
            error_code=None,
            node=self.node,
        )
        await save(job)
        if resolved is None:
            await self.outcomes.finish(
                job, failure=SyncError(f"integration {job.integration_id!r} is not configured")
            )
            return
        state = await self.store.get_state(job.integration_id)
        ctx = self.context(job.integration_id)

        async def job_log(level: str, message: str) -> None:
            await self.outcomes.log(job.id, level, message)

        source: Source | None = None
        target: Target | None = None
        try:
            source = resolved.source.factory.open_source(resolved.source.settings, ctx)
            target = resolved.target.factory.open_target(resolved.target.settings, ctx)
            schema = self.schema_of(resolved.cfg, state)
            fingerprint = content_hash(schema.source)
            if state.schema_fingerprint not in (None, fingerprint):
                await job_log("info", "the schema changed since the last full pass: a full pass")
            run = SyncEngine(
                job=job,
                cfg=resolved.cfg,
                source=source,
                target=target,
                store=self.store,
                clock=self.clock,
                log=job_log,
                control=handle.control,
                breakers=self.breakers,
                deletions_approved=state.deletions_approved,
                mapper=SchemaMapper(schema),
                force_full=state.schema_fingerprint not in (None, fingerprint),
                plan=self._plan_sink(job),
                fence=self.fence_for(job.integration_id) if self.fence_for else None,
            )
        except BaseException as exc:
            # A job that cannot even start (a connector that fails to open, a stored
            # schema that no longer fits the config) fails; the daemon stays up.
            await _close(source, target)
            if not isinstance(exc, Exception) or isinstance(exc, StoreUnavailable):
                raise
            if not isinstance(exc, SyncError):
                log.exception("job could not start")
                exc = SyncError(f"the job could not start: {type(exc).__name__}: {exc}")
            await self.outcomes.finish(job, failure=exc)
            return
        handle.live = lambda: run.job
        if job.checkpoint:
            await job_log(
                "info", f"resuming from the checkpoint, after {job.stats.processed} objects"
            )
        else:
            dry = (
                " (a dry run: its plan is written, nothing else)"
                if job.params.get("dry_run")
                else ""
            )
            await job_log("info", f"starting {job.type}{dry}")
        try:
            result = await run.run()
        except Interrupted as exc:
            if exc.kind == "lease":  # nothing is written: the runner hands it on
                raise
            await self._flush(target, job.id)
            await self.outcomes.interrupted(run.job, exc.kind, shutdown=handle.shutdown)
        except Exception as exc:  # the job's boundary: record, log, let the schedule back off
            failure = (
                exc if isinstance(exc, SyncError) else SyncError(f"{type(exc).__name__}: {exc}")
            )
            if not isinstance(exc, SyncError):
                log.exception("job failed unexpectedly")
            await self._flush(target, job.id)
            await self.outcomes.finish(run.job, failure=failure)
        else:
            await self.outcomes.finish(result.job, result=result)
        finally:
            await _close(source, target)

    def _plan_sink(self, job: Job) -> PlanFile | None:
        """A dry run's plan file, begun again (a resumed dry run starts over)."""
        if not job.params.get("dry_run"):
            return None
        plan = PlanFile(self.plan_path(job.id))
        plan.start()
        return plan

    async def _flush(self, target: Target | None, job_id: str) -> None:
        """Make what the job wrote visible in the target before it pauses, stops or fails."""
        if target is None:
            return
        try:
            await target.flush()
        except Exception as exc:  # the target keeps its journal; the next flush retries
            await self.outcomes.log(job_id, "warning", f"could not flush the target: {exc}")


async def _close(source: Source | None, target: Target | None) -> None:
    """Close what a job opened, whatever happened; given 30 seconds, even if cancelled."""
    with trio.move_on_after(30, shield=True):
        if source is not None:
            await source.aclose()
        if target is not None:
            await target.aclose()
