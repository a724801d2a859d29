"""Recording what happens to a job: its saves and log lines, and how its run ended
(completed, failed, paused, stopped), with what that changes for its integration (last
execution, failures, quarantine, the schema's fingerprint).

Every record is written to the store; writes that must land whatever happens (the
integration's state after a run) are shielded from cancellation.
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import replace

import trio

from .changes import DISABLED_DROP, drop_log
from .clock import Clock
from .config import IntegrationConfig
from .errors import SyncError
from .events import JobEvent
from .logs import get_logger
from .mapping import Schema
from .models import Execution, ExecutionError, IntegrationState, Job, JobStatus, LogEntry
from .quarantine import (
    COMPLETED_STATES,
    RunOutcome,
    apply_run_outcome,
    escrow_proportion_exceeded,
)
from .redact import redact_text
from .resolved import Resolved
from .store import Store, StoreUnavailable
from .sync import EngineResult, content_hash

__all__ = ["Outcomes"]

log = get_logger("sluiced.runner")


class Outcomes:
    """Records jobs and their ends in *store*. *saved* is told of every job saved
    (after the write); *emit* of every quarantine entered or left."""

    def __init__(
        self,
        *,
        store: Store,
        clock: Clock,
        resolve: Callable[[str], Resolved | None],
        schema_of: Callable[[IntegrationConfig, IntegrationState], Schema],
        saved: Callable[[Job], None],
        emit: Callable[[JobEvent], None],
    ) -> None:
        self.store = store
        self.clock = clock
        self.resolve = resolve
        self.schema_of = schema_of
        self.saved = saved
        self.emit = emit

    async def save(self, job: Job) -> Job:
        """Save *job*; returns it."""
        await self.store.save_job(job)
        self.saved(job)
        return job

    async def log(self, job_id: str, level: str, message: str) -> None:
        """Log *message* (redacted) to the daemon's log and the job's."""
        message = redact_text(message)
        getattr(log, level)(message)
        await self.store.append_logs(
            job_id, [LogEntry(timestamp=self.clock.now(), level=level, message=message)]
        )

    async def fail_when_stored(self, job: Job, exc: StoreUnavailable) -> None:
        """The store could not be written (a full disk): record the job as failed with
        that error once it can be, trying again with backoff meanwhile. The daemon stays
        up; the integration counts as busy until then, so nothing else starts on it."""
        log.error("the store cannot be written; the job fails", error=str(exc))
        delay = 1.0
        while True:
            try:
                current = await self.store.get_job(job.id) or job
                if not current.status.terminal:
                    await self.finish(current, failure=exc)
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

    async def interrupted(self, job: Job, kind: str, *, shutdown: bool) -> None:
        """The run stopped at a boundary: *kind* ``pause`` keeps the checkpoint for a
        resume; ``stop`` ends the job (*shutdown*: resumed at the next start)."""
        now = self.clock.now()
        if kind == "pause":
            await self.save(replace(job, status=JobStatus.PAUSED))
            await self.log(job.id, "info", "paused; the checkpoint is kept")
            return
        job = await self.save(
            replace(job, status=JobStatus.STOPPED, completed_at=now, interrupted=shutdown)
        )
        await self.log(
            job.id,
            "info",
            "stopped after the current batch" + (" (daemon shutdown)" if shutdown else ""),
        )
        await self._update_state(job, "Stopped", None, None)

    async def cancelled(self, job_id: str, *, shutdown: bool) -> None:
        """The run was cancelled (an immediate stop): record it stopped, resumable from
        its last checkpoint. Shielded from cancellation."""
        with trio.CancelScope(shield=True):
            job = await self.store.get_job(job_id)
            if job is None or job.status.terminal:
                return
            job = await self.save(
                replace(
                    job,
                    status=JobStatus.STOPPED,
                    completed_at=self.clock.now(),
                    interrupted=shutdown,
                )
            )
            await self.log(
                job_id, "info", "stopped immediately; resumable from the last checkpoint"
            )
            await self._update_state(job, "Stopped", None, None)

    async def finish(
        self, job: Job, *, result: EngineResult | None = None, failure: SyncError | None = None
    ) -> None:
        """The run ended: record the job completed or failed (a failed entity type, or
        too many escrowed objects, fail it too) and update its integration."""
        resolved = self.resolve(job.integration_id)
        now = self.clock.now()
        quarantine_reason = None
        if failure is None and result is not None and result.failed:
            # The other entity types synced; the job still fails and says which did not.
            # A failure that quarantines at once (rejected credentials, too many
            # deletions) decides the outcome, whichever entity type met it.
            failures = list(result.failed.values())
            failure = next((e for e in failures if _quarantines_now(e)), failures[0])
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
            if _quarantines_now(failure):
                quarantine_reason = failure.code
            job = replace(
                job,
                status=JobStatus.FAILED,
                completed_at=now,
                error=redact_text(job.error or str(failure)),
                error_code=failure.code,
            )
            await self.save(job)
            await self.log(job.id, "error", f"failed: {job.error}")
        else:
            job = await self.save(
                replace(
                    job,
                    status=JobStatus.COMPLETED,
                    completed_at=now,
                    progress=100.0,
                    checkpoint=None,
                )
            )
            s = job.stats
            await self.log(
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
                tenant_actionable=_quarantines_now(failure),
            )
        elif not job.params.get("dry_run"):
            error = await self._entry_level_errors(job)
            if error is not None:
                outcome = "EntryLevelErrors"
                await self.log(job.id, "warning", error.message)
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
            stay = "1 object stays" if left == 1 else f"{left} objects stay"
            message += f"; {stay} escrowed (sluicectl escrows {job.integration_id})"
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
            async with self.store.state_lock(job.integration_id):
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
                        execution=execution,
                        quarantine_reason=quarantine_reason,
                        full_pass=full_pass,
                    ),
                )
                if outcome in COMPLETED_STATES and full_pass:
                    fingerprint = content_hash(self.schema_of(resolved.cfg, state).source)
                    state = replace(state, schema_fingerprint=fingerprint)
                if outcome in COMPLETED_STATES and state.deletions_approved:
                    state = replace(state, deletions_approved=False)
                    await self.store.clear_staged_deletions(job.integration_id)
                if state.escrows_pruned and state.disabled_reason:
                    drops = drop_log(
                        resolved.cfg.changes_retention, self.clock.now(), DISABLED_DROP
                    )
                    await self.store.clear_escrows(job.integration_id, log=drops)
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


def _quarantines_now(failure: SyncError) -> bool:
    """Whether *failure* quarantines its integration at once (and an operator must act)."""
    return failure.quarantine_now or failure.code == "TooManyDeletes"
