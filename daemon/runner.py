"""Running jobs: each in its own task and cancel scope, within the global limit.

* At most ``max_concurrent_jobs`` jobs run at once (a capacity limiter); a job waiting
  for a slot stays ``queued``.
* Never two jobs of one integration at once (a lock per integration); provisioning one
  object on demand holds the integration the same way (:meth:`JobRunner.hold`).
* ``pause`` and graceful ``stop`` are requests the engine honours at the next object
  or batch boundary; an immediate stop cancels the job's scope. Every write the engine
  made is already committed (store writes are cancel-safe), so the job is recorded as
  ``stopped`` with its last checkpoint.
* When a job ends, its outcome updates the integration (last execution, failures,
  quarantine) and plugins observe it through ``sluiced_job_event``.
"""

from __future__ import annotations

import uuid
from collections.abc import AsyncIterator, Callable, Mapping
from contextlib import asynccontextmanager
from dataclasses import dataclass, field, replace
from datetime import datetime
from pathlib import Path
from typing import Any

import structlog
import trio

from .clock import Clock
from .config import IntegrationConfig
from .connectors import ConnectorContext, DriverContext, JobDriver, ParsedConnector, Target
from .errors import SyncError
from .events import JobEvent
from .jobstate import check_transition
from .logs import get_logger
from .mapping import BUILTINS, Schema, default_schema, parse_schema
from .mapping.expressions import Function
from .mapping.mapper import SchemaMapper
from .models import (
    Execution,
    ExecutionError,
    IntegrationState,
    Job,
    JobStats,
    JobStatus,
    LogEntry,
)
from .plans import PlanFile
from .quarantine import (
    COMPLETED_STATES,
    RunOutcome,
    apply_run_outcome,
    escrow_proportion_exceeded,
)
from .redact import redact_text
from .retrying import Breakers, RetryWaits, job_retry_waits
from .store import Store, StoreUnavailable
from .sync import EngineResult, Interrupted, JobControl, SyncEngine, content_hash

__all__ = ["JobHandle", "JobRunner", "Resolved", "new_job"]

log = get_logger("sluiced.runner")


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


class IntegrationBusy(Exception):
    """The integration has an active job, or is held (:meth:`JobRunner.hold`)."""


@dataclass(frozen=True, kw_only=True)
class Resolved:
    """An integration ready to run: its config and its validated connectors."""

    cfg: IntegrationConfig
    source: ParsedConnector
    target: ParsedConnector


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


class _Driven:
    """A job run by its target's :class:`JobDriver`, seen like an engine run."""

    def __init__(self, driver: JobDriver, job: Job, ctx: DriverContext) -> None:
        self.driver = driver
        self.ctx = ctx
        self._job = job

    @property
    def job(self) -> Job:
        return getattr(self.driver, "job", None) or self._job

    async def run(self) -> EngineResult:
        result: EngineResult = await self.driver.run(self._job, self.ctx)
        return result


class JobRunner:
    def __init__(
        self,
        *,
        store: Store,
        clock: Clock,
        resolve: Callable[[str], Resolved | None],
        max_concurrent: int,
        state_dir: Any,
        emit: Callable[[JobEvent], None] = lambda event: None,
        on_job_end: Callable[[], None] = lambda: None,
        functions: Mapping[str, Function] = BUILTINS,
        entity_types: Mapping[str, Any] | None = None,
    ) -> None:
        self.store = store
        self.clock = clock
        self.resolve = resolve
        self.limiter = trio.CapacityLimiter(max_concurrent)
        self.state_dir = state_dir
        self.emit = emit
        self.on_job_end = on_job_end
        self.breakers = Breakers()
        self.functions = functions
        self.entity_types = dict(entity_types or {})
        self.handles: dict[str, JobHandle] = {}
        self._locks: dict[str, trio.Lock] = {}
        #: Integrations held by work outside a job (:meth:`hold`).
        self._held: set[str] = set()
        self._nursery: trio.Nursery | None = None
        self._idle = trio.Event()
        self._idle.set()
        #: The grace of a running :meth:`shutdown`, ended early by :meth:`hurry`.
        self._grace = trio.CancelScope()

    async def run(self, *, task_status: trio.TaskStatus[None] = trio.TASK_STATUS_IGNORED) -> None:
        """Own the nursery of job tasks until cancelled."""
        async with trio.open_nursery() as nursery:
            self._nursery = nursery
            task_status.started()
            await trio.sleep_forever()

    def schema_of(self, cfg: IntegrationConfig, state: IntegrationState) -> Schema:
        """The integration's schema: the one set through the API, else the config's, or
        objects copied as they are. (A stored schema was validated when it was set.)"""
        data = state.schema if state.schema is not None else cfg.schema
        if data is None:
            data = default_schema(cfg.entity_types)
        return parse_schema(data, self.functions, cfg.entity_types)

    # -- requests ------------------------------------------------------------------------
    def busy(self, integration_id: str, *, finishing: bool = False) -> bool:
        """Whether a job of the integration is queued, running or paused-in-progress, or
        the integration is held (:meth:`hold`). A job whose end is already recorded does
        not count (its task is finishing up: a client that saw it end may start another)
        unless *finishing*: the scheduler counts it, since the integration's state (its
        last execution, what is next due) is written after the job's end."""
        return integration_id in self._held or any(
            h.integration_id == integration_id and (finishing or not h.finished)
            for h in self.handles.values()
        )

    @asynccontextmanager
    async def hold(self, integration_id: str) -> AsyncIterator[None]:
        """Hold the integration for work outside a job (provisioning one object now) as
        a job holds it, for the whole ``async with``: :meth:`busy` is true from the call
        on (so ``submit_if_idle`` and the scheduler start nothing), and a job submitted
        anyway (forced, resumed) waits for the integration's lock until it is released.
        A job that came due meanwhile starts when it is released.

        Raises:
            IntegrationBusy: the integration is busy already; nothing was held.
        """
        if self.busy(integration_id):
            raise IntegrationBusy(integration_id)
        self._held.add(integration_id)
        try:
            async with self._locks.setdefault(integration_id, trio.Lock()):
                yield
        finally:
            self._held.discard(integration_id)
            self.on_job_end()  # the scheduler looks again at once

    async def submit(self, job: Job) -> Job:
        """Queue *job* (saved first) and start its task.

        The job counts for :meth:`busy` from the call on, before anything is awaited: a
        caller that checked ``busy`` and submits without awaiting in between claims the
        integration alone (see :meth:`submit_if_idle`)."""
        assert self._nursery is not None, "the runner is not running"
        job = replace(job, status=JobStatus.QUEUED, interrupted=False)
        handle = JobHandle(job_id=job.id, integration_id=job.integration_id)
        self.handles[job.id] = handle
        if self._idle.is_set():  # a new busy period; waiters of the current one keep their event
            self._idle = trio.Event()
        try:
            await self.store.save_job(job)
        except BaseException:
            if self.handles.get(job.id) is handle:
                del self.handles[job.id]
            if not self.handles:
                self._idle.set()
            raise
        self._nursery.start_soon(self._job_task, job, handle, name=f"job {job.id}")
        self._emit_job(job)
        return job

    async def submit_if_idle(self, job: Job, *, finishing: bool = False) -> Job | None:
        """Queue *job* unless a job of its integration is active (then ``None``; with
        *finishing*, also while one is finishing, see :meth:`busy`). The check and the
        claim are one step: of two callers racing, exactly one gets it."""
        if self.busy(job.integration_id, finishing=finishing):
            return None
        return await self.submit(job)

    def pause(self, job_id: str) -> bool:
        handle = self.handles.get(job_id)
        if handle is None:
            return False
        handle.control.pause_requested = True
        handle.waits.interrupt("pause")
        return True

    def stop(self, job_id: str, *, graceful: bool = True) -> bool:
        handle = self.handles.get(job_id)
        if handle is None:
            return False
        handle.control.stop_requested = True
        handle.waits.interrupt("stop")
        if not graceful:
            handle.scope.cancel()
        return True

    async def shutdown(self, grace: float) -> None:
        """Stop every job gracefully, marked for resumption: retry waits end at once, the
        jobs checkpoint and stop. Cancel what is left after *grace* seconds, or as soon
        as :meth:`hurry` is called (an immediate stop: each job keeps its last checkpoint)."""
        for handle in self.handles.values():
            handle.shutdown = True
            handle.control.stop_requested = True
            handle.waits.interrupt("stop")
        self._grace = trio.move_on_after(grace)
        with self._grace:
            await self._idle.wait()
        for handle in list(self.handles.values()):
            handle.scope.cancel()
        with trio.move_on_after(5):
            await self._idle.wait()

    def hurry(self) -> None:
        """End a running :meth:`shutdown`'s grace now (a second SIGTERM or SIGINT)."""
        self._grace.cancel()

    async def wait_idle(self) -> None:
        await self._idle.wait()

    # -- one job ---------------------------------------------------------------------------
    def _emit_job(self, job: Job) -> None:
        self.emit(JobEvent(kind="job", integration_id=job.integration_id, job=job))

    async def _job_task(self, job: Job, handle: JobHandle) -> None:
        try:
            with structlog.contextvars.bound_contextvars(
                integration_id=job.integration_id, job_id=job.id
            ):
                with handle.scope, job_retry_waits(handle.waits):
                    lock = self._locks.setdefault(job.integration_id, trio.Lock())
                    async with lock, self.limiter:
                        try:
                            await self._execute(job, handle)
                        except StoreUnavailable as exc:
                            await self._fail_when_stored(job, exc)
                if handle.scope.cancelled_caught:
                    try:
                        await self._record_cancel(job.id, handle)
                    except StoreUnavailable as exc:  # resumed at the next start instead
                        log.error("could not record the stop", error=str(exc))
        finally:
            handle.done.set()
            del self.handles[job.id]
            if not self.handles:
                self._idle.set()
            self.on_job_end()

    async def _fail_when_stored(self, job: Job, exc: StoreUnavailable) -> None:
        """The store could not be written (a full disk): record the job as failed with
        that error once it can be, trying again with backoff meanwhile. The daemon stays
        up; the integration counts as busy until then, so nothing else starts on it."""
        log.error("the store cannot be written; the job fails", error=str(exc))
        delay = 1.0
        while True:
            try:
                current = await self.store.get_job(job.id) or job
                if not current.status.terminal:
                    await self._finish(current, failure=exc)
                    return
                # The job's failure was saved, what followed it not: the integration's
                # last execution must still say so.
                last = (await self.store.get_state(job.integration_id)).last_execution
                if current.status is JobStatus.FAILED and (last is None or last.job_id != job.id):
                    error = ExecutionError(
                        code=current.error_code or exc.code,
                        message=current.error or str(exc),
                        tenant_actionable=False,
                    )
                    await self._update_state(current, "Failed", error, None)
                return
            except StoreUnavailable:
                await trio.sleep(delay)
                delay = min(delay * 2, 60.0)

    async def _log(self, job_id: str, level: str, message: str) -> None:
        message = redact_text(message)
        getattr(log, level)(message)
        await self.store.append_logs(
            job_id, [LogEntry(timestamp=self.clock.now(), level=level, message=message)]
        )

    async def _save(self, job: Job) -> Job:
        await self.store.save_job(job)
        handle = self.handles.get(job.id)
        if handle is not None and (job.status.terminal or job.status is JobStatus.PAUSED):
            handle.finished = True  # recorded as over: others may start (they queue on the lock)
        self._emit_job(job)
        return job

    async def _execute(self, job: Job, handle: JobHandle) -> None:
        current = await self.store.get_job(job.id) or job
        if handle.control.stop_requested:
            await self._save(
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
        )
        await self._save(job)
        if resolved is None:
            await self._finish(
                job, failure=SyncError(f"integration {job.integration_id!r} is not configured")
            )
            return
        state = await self.store.get_state(job.integration_id)
        ctx = ConnectorContext(
            integration_id=job.integration_id,
            state_dir=self.state_dir / "connectors" / job.integration_id,
            entity_types=self.entity_types,
        )
        source = resolved.source.factory.open_source(resolved.source.settings, ctx)
        driver = resolved.target.factory.open_driver(resolved.target.settings, ctx)
        target = (
            None if driver else resolved.target.factory.open_target(resolved.target.settings, ctx)
        )

        async def job_log(level: str, message: str) -> None:
            await self._log(job.id, level, message)

        run: SyncEngine | _Driven
        if driver is not None:
            run = _Driven(
                driver,
                job,
                DriverContext(
                    cfg=resolved.cfg,
                    store=self.store,
                    clock=self.clock,
                    log=job_log,
                    control=handle.control,
                    breakers=self.breakers,
                    source=source,
                ),
            )
        else:
            assert target is not None
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
            )
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
            await self._flush(target, job.id)
            await self._interrupted(run.job, handle, exc.kind)
        except Exception as exc:  # the job's boundary: record, log, let the schedule back off
            failure = (
                exc if isinstance(exc, SyncError) else SyncError(f"{type(exc).__name__}: {exc}")
            )
            if not isinstance(exc, SyncError):
                log.exception("job failed unexpectedly")
            await self._flush(target, job.id)
            await self._finish(run.job, failure=failure)
        else:
            await self._finish(result.job, result=result)
        finally:
            with trio.move_on_after(30, shield=True):
                await source.aclose()
                if target is not None:
                    await target.aclose()
                if driver is not None:
                    await driver.aclose()

    def plan_path(self, job_id: str) -> Path:
        return Path(self.state_dir) / "plans" / f"{job_id}.jsonl"

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
            await self._log(job_id, "warning", f"could not flush the target: {exc}")

    async def _interrupted(self, job: Job, handle: JobHandle, kind: str) -> None:
        now = self.clock.now()
        if kind == "pause":
            await self._save(replace(job, status=JobStatus.PAUSED))
            await self._log(job.id, "info", "paused; the checkpoint is kept")
            return
        job = await self._save(
            replace(job, status=JobStatus.STOPPED, completed_at=now, interrupted=handle.shutdown)
        )
        await self._log(
            job.id,
            "info",
            "stopped after the current batch" + (" (daemon shutdown)" if handle.shutdown else ""),
        )
        await self._update_state(job, "Stopped", None, None)

    async def _record_cancel(self, job_id: str, handle: JobHandle) -> None:
        with trio.CancelScope(shield=True):
            job = await self.store.get_job(job_id)
            if job is None or job.status.terminal:
                return
            job = await self._save(
                replace(
                    job,
                    status=JobStatus.STOPPED,
                    completed_at=self.clock.now(),
                    interrupted=handle.shutdown,
                )
            )
            await self._log(
                job_id, "info", "stopped immediately; resumable from the last checkpoint"
            )
            await self._update_state(job, "Stopped", None, None)

    async def _finish(
        self, job: Job, *, result: EngineResult | None = None, failure: SyncError | None = None
    ) -> None:
        resolved = self.resolve(job.integration_id)
        now = self.clock.now()
        quarantine_reason = None
        if failure is None and result is not None and result.failed:
            # The other entity types synced; the job still fails and says which did not.
            failure = next(iter(result.failed.values()))
            details = "; ".join(f"{name}: {exc}" for name, exc in result.failed.items())
            job = replace(job, error=f"failed entity types: {', '.join(result.failed)}; {details}")
        escrowed = result.escrowed if result else 0
        if (
            failure is None
            and resolved
            and escrow_proportion_exceeded(resolved.cfg.quarantine, job.stats.processed, escrowed)
        ):
            failure = SyncError(f"{escrowed} of {job.stats.processed} objects escrowed")
            failure.code = "EncounteredEscrowProportionThreshold"
        if failure is not None:
            if failure.quarantine_now or failure.code == "TooManyDeletes":
                quarantine_reason = failure.code
            job = replace(
                job,
                status=JobStatus.FAILED,
                completed_at=now,
                error=redact_text(job.error or str(failure)),
                error_code=failure.code,
            )
            await self._save(job)
            await self._log(job.id, "error", f"failed: {job.error}")
        else:
            job = await self._save(
                replace(
                    job,
                    status=JobStatus.COMPLETED,
                    completed_at=now,
                    progress=100.0,
                    checkpoint=None,
                )
            )
            s = job.stats
            await self._log(
                job.id,
                "info",
                f"completed: processed {s.processed}, created {s.created}, "
                f"updated {s.updated}, deleted {s.deleted}, disabled {s.disabled}, "
                f"skipped {s.skipped}, errors {s.errors}",
            )
        error = None
        outcome = "Failed" if failure else "Succeeded"
        if failure is not None:
            error = ExecutionError(
                code=failure.code,
                message=job.error or str(failure),
                tenant_actionable=failure.quarantine_now or failure.code == "TooManyDeletes",
            )
        elif not job.params.get("dry_run"):
            error = await self._entry_level_errors(job)
            if error is not None:
                outcome = "EntryLevelErrors"
                await self._log(job.id, "warning", error.message)
        await self._update_state(
            job,
            outcome,
            error,
            quarantine_reason,
            escrowed=escrowed,
            full_pass=bool(result and result.full_pass),
        )

    async def _entry_level_errors(self, job: Job) -> ExecutionError | None:
        """For a job that completed: the error that says objects stay escrowed (the run
        is then ``EntryLevelErrors``, not ``Succeeded``), or None if none do."""
        left = len(await self.store.list_escrows(job.integration_id))
        if not left and not job.stats.errors:
            return None
        message = (
            f"completed with errors: {job.stats.errors} of {job.stats.processed} "
            "objects not synced in this run"
        )
        if left:
            message += f"; {left} objects stay escrowed (sluicectl escrows {job.integration_id})"
        return ExecutionError(code="EntryLevelErrors", message=message)

    async def _update_state(
        self,
        job: Job,
        outcome: str,
        error: ExecutionError | None,
        quarantine_reason: str | None,
        *,
        escrowed: int = 0,
        full_pass: bool = False,
    ) -> None:
        resolved = self.resolve(job.integration_id)
        if resolved is None or job.params.get("dry_run"):
            return  # a dry run changes nothing, the integration's state included
        with trio.CancelScope(shield=True):
            state = await self.store.get_state(job.integration_id)
            was_quarantined = state.quarantine is not None
            execution = Execution(
                job_id=job.id,
                state=outcome,
                time_began=job.started_at or job.created_at,
                time_ended=job.completed_at or self.clock.now(),
                count_imported=job.stats.processed,
                count_exported=job.stats.exported,
                count_escrowed=escrowed,
                count_deleted=job.stats.deleted,
                error=error,
            )
            state = apply_run_outcome(
                state,
                resolved.cfg.quarantine,
                RunOutcome(
                    execution=execution, quarantine_reason=quarantine_reason, full_pass=full_pass
                ),
            )
            if outcome in COMPLETED_STATES and full_pass:
                fingerprint = content_hash(self.schema_of(resolved.cfg, state).source)
                state = replace(state, schema_fingerprint=fingerprint)
            if outcome in COMPLETED_STATES and state.deletions_approved:
                state = replace(state, deletions_approved=False)
                await self.store.clear_staged_deletions(job.integration_id)
            if state.escrows_pruned and state.disabled_reason:
                await self.store.clear_escrows(job.integration_id)
            await self.store.put_state(state)
        if (state.quarantine is not None) != was_quarantined:
            q = state.quarantine
            if q is not None:
                log.warning(
                    "integration quarantined",
                    reason=q.reason,
                    next_attempt=q.next_attempt.isoformat() if q.next_attempt else None,
                )
            else:
                log.info("integration left quarantine")
            self.emit(JobEvent(kind="quarantine", integration_id=job.integration_id, state=state))
