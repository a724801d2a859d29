"""What an operator can ask of a running daemon: the operations behind the control API.

Each method checks the request against the current state and raises
:class:`NotFound` (HTTP 404) or :class:`Conflict` (HTTP 409) rather than doing half of
it. Seeds 002 (jobs, integration sync control) and 003 (integration start, pause,
restart, delete) are both served from here.
"""

from __future__ import annotations

from collections.abc import Collection, Mapping, Sequence
from dataclasses import dataclass, replace
from datetime import datetime, timedelta
from typing import TYPE_CHECKING, Any

import trio

from .config import IntegrationConfig
from .connectors import ConnectorContext, ConnectorFactory
from .errors import SyncError
from .mapping import parse_schema
from .mapping.mapper import SchemaMapper
from .models import RESET_SCOPES, Escrow, IntegrationState, Job, JobStatus, JobType, LogEntry
from .plans import read_plan
from .redact import redact_text, redact_value
from .runner import IntegrationBusy, Resolved, new_job
from .schedule import effective_interval, next_due
from .store import JobHistory, Store
from .sync import JobControl, SyncEngine

if TYPE_CHECKING:
    from .supervisor import Daemon

__all__ = ["RESET_SCOPES", "Conflict", "Controller", "IntegrationView", "NotFound"]

DEFAULT_RESET = ("QuarantineState", "Watermark", "Escrows")


class NotFound(LookupError):
    """No such job or integration."""


class Conflict(Exception):
    """The request is valid but not allowed in the current state."""


#: The type of the job that records a provisioning on demand (it is never resumed).
PROVISION_JOB = "provision_on_demand"


class Unavailable(Exception):
    """The source or target could not be used for the request (502)."""


class _NoPlan:
    """A dry run of one object: the trace says what would happen; nothing is kept."""

    async def add(self, entries: Sequence[Mapping[str, Any]]) -> None:
        return None


@dataclass(frozen=True, kw_only=True)
class IntegrationView:
    """Everything shown about one integration."""

    cfg: IntegrationConfig
    state: IntegrationState
    next_run: datetime | None
    current_job: Job | None
    history: JobHistory
    synced: Mapping[str, int]


class Controller:
    def __init__(self, daemon: Daemon) -> None:
        self.daemon = daemon

    @property
    def store(self) -> Store:
        return self.daemon.store

    # -- lookups ------------------------------------------------------------------------
    def _integration(self, integration_id: str) -> Resolved:
        resolved = self.daemon.integrations.get(integration_id)
        if resolved is None:
            raise NotFound(f"no integration {integration_id!r}")
        return resolved

    async def job(self, job_id: str) -> Job:
        job = await self.store.get_job(job_id)
        if job is None:
            raise NotFound(f"no job {job_id!r}")
        return self.live(job)

    def live(self, job: Job) -> Job:
        """A running job's progress, stage and estimate as its run holds them in memory:
        they move between the store saves (which come at batch boundaries)."""
        handle = self.daemon.runner.handles.get(job.id)
        if job.status is not JobStatus.RUNNING or handle is None or handle.live is None:
            return job
        now = handle.live()
        return replace(
            job,
            progress=max(job.progress, now.progress),
            stage=now.stage,
            estimated_completion=now.estimated_completion,
        )

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
        for handle in self.daemon.runner.handles.values():
            if handle.integration_id == integration_id:
                job = await self.store.get_job(handle.job_id)
                return None if job is None else self.live(job)
        return None

    async def view(self, integration_id: str) -> IntegrationView:
        resolved = self._integration(integration_id)
        state = await self.store.get_state(integration_id)
        now = self.daemon.clock.now()
        due = next_due(resolved.cfg, state, now=now, started=self.daemon.started)
        synced = {
            et: await self.store.count_links(integration_id, et) for et in resolved.cfg.entity_types
        }
        return IntegrationView(
            cfg=resolved.cfg,
            state=state,
            next_run=due.at if due else None,
            current_job=await self.current_job(integration_id),
            history=await self.store.job_history(integration_id),
            synced=synced,
        )

    async def views(self) -> list[IntegrationView]:
        return [await self.view(i) for i in sorted(self.daemon.integrations)]

    # -- jobs ---------------------------------------------------------------------------
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
        """Queue a job; returns it and its estimated duration in ms (from past runs).

        Without *force*, a job while another of the integration is active is a conflict.
        """
        resolved = self._integration(integration_id)
        unknown = [e for e in entity_types if e not in resolved.cfg.entity_types]
        if unknown:
            raise Conflict(
                f"entity types {unknown} are not synced by {integration_id!r} "
                f"({', '.join(resolved.cfg.entity_types)})"
            )
        if not force and self.daemon.runner.busy(integration_id):
            raise Conflict(
                f"integration {integration_id!r} already has an active job; use force to queue another"
            )
        params: dict[str, Any] = dict(extra or {})
        if entity_types:
            params["entity_types"] = list(entity_types)
        if batch_size:
            params["batch_size"] = batch_size
        if dry_run:
            if self._opens_driver(resolved):
                raise Conflict(
                    f"{integration_id!r} writes through its own driver; dry runs are for "
                    "integrations the sync engine runs"
                )
            params["dry_run"] = True
        job = await self.daemon.runner.submit(
            new_job(integration_id, job_type.value, self.daemon.clock.now(), params)
        )
        history = await self.store.job_history(integration_id)
        return job, history.average_duration_ms

    def stash_integration(self, integration_id: str | None) -> str:
        """The Stash integration a seed-000/001 request means: the one named, or the only
        one there is."""
        mirrors = sorted(
            i
            for i, r in self.daemon.integrations.items()
            if r.cfg.target.connector == "stash-mirror"
        )
        if integration_id is None:
            if len(mirrors) != 1:
                raise Conflict(
                    f"{len(mirrors)} Stash integrations ({', '.join(mirrors) or 'none'}); "
                    "name one with integrationId"
                )
            return mirrors[0]
        self._integration(integration_id)
        if integration_id not in mirrors:
            raise Conflict(f"integration {integration_id!r} does not mirror Stash")
        return integration_id

    async def create_stash_job(
        self, integration_id: str | None, job_type: str, params: Mapping[str, Any]
    ) -> Job:
        """Queue a ``sync`` or ``sync_scenes`` job (seeds 000 and 001); it waits for any
        job of the integration that is running, so the two never write at once."""
        ident = self.stash_integration(integration_id)
        job = new_job(ident, job_type, self.daemon.clock.now(), dict(params))
        return await self.daemon.runner.submit(job)

    async def resume(self, job_id: str) -> Job:
        job = await self.job(job_id)
        if job.status not in (JobStatus.PAUSED, JobStatus.FAILED):
            raise Conflict(
                f"a {job.status.value} job cannot be resumed (only paused or failed ones)"
            )
        if job.integration_id not in self.daemon.integrations:
            raise Conflict(f"its integration {job.integration_id!r} is no longer configured")
        return await self.daemon.runner.submit(job)

    async def stop_job(self, job_id: str, *, graceful: bool) -> Job:
        job = await self.job(job_id)
        if job.status is JobStatus.PAUSED:
            job = replace(job, status=JobStatus.STOPPED, completed_at=self.daemon.clock.now())
            await self.store.save_job(job)
            return job
        if not self.daemon.runner.stop(job_id, graceful=graceful):
            raise Conflict(f"a {job.status.value} job is not running")
        if graceful and job.status is JobStatus.RUNNING:
            job = replace(job, status=JobStatus.STOPPING)
            await self.store.save_job(job)
        return job

    async def stop_all(self, integration_id: str | None = None) -> list[str]:
        if integration_id is not None:
            self._integration(integration_id)
        ids = [
            h.job_id
            for h in list(self.daemon.runner.handles.values())
            if not h.finished and (integration_id is None or h.integration_id == integration_id)
        ]
        for job_id in ids:
            try:
                await self.stop_job(job_id, graceful=True)
            except NotFound:  # submitted a moment ago, not saved yet: stopped before it starts
                self.daemon.runner.stop(job_id, graceful=True)
        return ids

    async def delete_job(self, job_id: str, *, delete_logs: bool) -> None:
        job = await self.job(job_id)
        if job_id in self.daemon.runner.handles:
            raise Conflict(f"the job is {job.status.value}; stop it first")
        await self.store.delete_job(job_id, delete_logs=delete_logs)

    async def set_interval(
        self, job_id: str, seconds: float
    ) -> tuple[float, float, datetime | None]:
        """Change the interval of the job's integration; persists across restarts."""
        job = await self.job(job_id)
        resolved = self._integration(job.integration_id)
        state = await self.store.get_state(job.integration_id)
        old = effective_interval(resolved.cfg, state).total_seconds()
        state = replace(state, interval_s=seconds)
        await self.store.put_state(state)
        self.daemon.wake()
        due = next_due(
            resolved.cfg, state, now=self.daemon.clock.now(), started=self.daemon.started
        )
        return old, seconds, due.at if due else None

    # -- integrations ----------------------------------------------------------------------
    async def _set_state(self, integration_id: str, **changes: Any) -> IntegrationState:
        state = replace(await self.store.get_state(integration_id), **changes)
        await self.store.put_state(state)
        self.daemon.wake()
        return state

    async def start(
        self, integration_id: str, *, job_type: JobType | None = None, immediate: bool = True
    ) -> Job | None:
        """Resume a paused integration (and its paused job), lift quarantine, and — if
        *immediate* — run a job now. A job already active is a conflict.

        One start is one run: the scheduler, which may find the integration Active and
        due in the meantime, and this request claim it atomically; if the scheduler won,
        its job is the one returned."""
        resolved = self._integration(integration_id)
        runner = self.daemon.runner
        if runner.busy(integration_id):
            raise Conflict(f"integration {integration_id!r} is already running a job")
        state = replace(
            await self.store.get_state(integration_id),
            schedule_state="Active",
            quarantine=None,
            successive_failures=0,
            disabled_reason=None,
        )
        await self.store.put_state(state)
        try:  # the scheduler is woken once our job is claimed
            paused, _ = await self.store.list_jobs(
                statuses={JobStatus.PAUSED}, integration_id=integration_id, limit=1
            )
            now = self.daemon.clock.now()
            if paused:
                job = await runner.submit_if_idle(paused[0])
            elif not immediate:
                return None
            else:
                if job_type is None:
                    due = next_due(resolved.cfg, state, now=now, started=self.daemon.started)
                    job_type = due.job_type if due else JobType.INCREMENTAL
                job = await runner.submit_if_idle(new_job(integration_id, job_type.value, now))
        finally:
            self.daemon.wake()
        return job if job is not None else await self.current_job(integration_id)

    async def pause(self, integration_id: str) -> list[str]:
        """Pause the schedule and the active job (at an object boundary, checkpoint kept)."""
        self._integration(integration_id)
        await self._set_state(integration_id, schedule_state="Paused")
        paused = []
        for handle in list(self.daemon.runner.handles.values()):
            if handle.integration_id == integration_id and not handle.finished:
                self.daemon.runner.pause(handle.job_id)
                paused.append(handle.job_id)
        return paused

    async def stop_integration(self, integration_id: str) -> list[str]:
        """Stop the integration's jobs and its schedule (``start`` brings it back)."""
        self._integration(integration_id)
        await self._set_state(integration_id, schedule_state="Paused")
        return await self.stop_all(integration_id)

    async def _stop_and_wait(self, integration_id: str) -> None:
        handles = [
            h for h in self.daemon.runner.handles.values() if h.integration_id == integration_id
        ]
        for handle in handles:
            self.daemon.runner.stop(handle.job_id, graceful=False)
        with trio.fail_after(30):
            for handle in handles:
                await handle.done.wait()

    async def restart(self, integration_id: str, scopes: Sequence[str]) -> Job:
        """Stop what runs, forget the given state, and run a full sync from scratch.

        The schedule is left as it is: an integration started through the API stays
        Active (whatever the config says), one paused stays paused after this one run."""
        self._integration(integration_id)
        chosen = set(scopes or DEFAULT_RESET)
        if "Full" in chosen:
            chosen = set(RESET_SCOPES)
        await self._stop_and_wait(integration_id)
        paused, _ = await self.store.list_jobs(
            statuses={JobStatus.PAUSED}, integration_id=integration_id, limit=None
        )
        for job in paused:
            await self.store.save_job(
                replace(job, status=JobStatus.STOPPED, completed_at=self.daemon.clock.now())
            )
        if "Watermark" in chosen:
            await self.store.clear_watermarks(integration_id)
        if "Escrows" in chosen:
            await self.store.clear_escrows(integration_id)
        if "ConnectorDataStore" in chosen:
            await self.store.clear_links(integration_id)
        # The schedule (Active, Paused, interval) is the operator's: no scope resets it.
        changes: dict[str, Any] = {}
        if "QuarantineState" in chosen:
            changes.update(quarantine=None, successive_failures=0, disabled_reason=None)
        if "ForceDeletes" in chosen:
            changes.update(deletions_approved=True, quarantine=None)
        await self._set_state(integration_id, **changes)
        job, _ = await self.create_job(integration_id, JobType.FULL)
        return job

    async def delete_integration(self, integration_id: str) -> None:
        """Stop the integration and delete all its state. It leaves the schedule first,
        so that nothing starts it again while its jobs stop."""
        resolved = self._integration(integration_id)
        if resolved.cfg.origin == "config":
            raise Conflict(
                f"integration {integration_id!r} comes from {self.daemon.config.path}; "
                "remove it there and reload"
            )
        await self.daemon.remove_integration(integration_id)
        await self._stop_and_wait(integration_id)
        await self.store.delete_integration(integration_id)

    async def create_integration(
        self, integration_id: str, table: Mapping[str, Any]
    ) -> IntegrationView:
        if integration_id in self.daemon.integrations:
            raise Conflict(f"integration {integration_id!r} exists")
        await self.daemon.add_integration(integration_id, table)
        return await self.view(integration_id)

    async def get_schema(self, integration_id: str) -> Mapping[str, Any]:
        resolved = self._integration(integration_id)
        state = await self.store.get_state(integration_id)
        return self.daemon.runner.schema_of(resolved.cfg, state).source

    async def put_schema(self, integration_id: str, data: Any) -> Mapping[str, Any]:
        """Validate and store a new schema; an invalid one raises SchemaError and the old
        one stays. The next run is a full pass (cheap: unchanged results are skipped)."""
        resolved = self._integration(integration_id)
        schema = parse_schema(data, self.daemon.runner.functions, resolved.cfg.entity_types)
        await self.store.clear_watermarks(integration_id)
        await self._set_state(integration_id, schema=schema.source, full_sync_required=True)
        return schema.source

    async def escrows(self, integration_id: str) -> list[Escrow]:
        self._integration(integration_id)
        return await self.store.list_escrows(integration_id)

    async def retry_escrow(
        self, integration_id: str, entity_type: str, object_id: str
    ) -> Job | None:
        """Make one escrowed object due now and run a job for it (if none is running; the
        running one's successor retries it)."""
        self._integration(integration_id)
        if not await self.store.retry_escrow_at(
            integration_id, entity_type, object_id, self.daemon.clock.now()
        ):
            raise NotFound(f"no escrow {entity_type}/{object_id} in {integration_id!r}")
        if self.daemon.runner.busy(integration_id):
            return None
        job, _ = await self.create_job(integration_id, JobType.INCREMENTAL)
        return job

    async def drop_escrow(self, integration_id: str, entity_type: str, object_id: str) -> None:
        self._integration(integration_id)
        if not await self.store.drop_escrow(integration_id, entity_type, object_id):
            raise NotFound(f"no escrow {entity_type}/{object_id} in {integration_id!r}")

    async def validate_credentials(self, integration_id: str) -> dict[str, dict[str, Any]]:
        """Open the integration's source and target and check them; each answers
        ``{"ok", "message"}`` (never a secret)."""
        resolved = self._integration(integration_id)
        ctx = self._context(integration_id)
        out: dict[str, dict[str, Any]] = {}
        source = resolved.source.factory.open_source(resolved.source.settings, ctx)
        driver = resolved.target.factory.open_driver(resolved.target.settings, ctx)
        target = driver or resolved.target.factory.open_target(resolved.target.settings, ctx)
        for end, connector in (("source", source), ("target", target)):
            try:
                with trio.fail_after(60):
                    out[end] = {"ok": True, "message": redact_text(await connector.validate())}
            except (SyncError, OSError, trio.TooSlowError) as exc:
                code = getattr(exc, "code", type(exc).__name__)
                out[end] = {"ok": False, "code": code, "message": redact_text(str(exc) or code)}
            finally:
                await connector.aclose()
        return out

    def _context(self, integration_id: str) -> ConnectorContext:
        return ConnectorContext(
            integration_id=integration_id,
            state_dir=self.daemon.config.daemon.state_dir / "connectors" / integration_id,
            entity_types=self.daemon.registry.entity_types,
        )

    def _opens_driver(self, resolved: Resolved) -> bool:
        return type(resolved.target.factory).open_driver is not ConnectorFactory.open_driver

    # -- plans and provisioning on demand ----------------------------------------------------
    async def plan(self, job_id: str, *, offset: int, limit: int) -> dict[str, Any]:
        """A dry run's plan, a page of it."""
        job = await self.store.get_job(job_id)
        if job is None:
            raise NotFound(f"no job {job_id!r}")
        if not job.params.get("dry_run"):
            raise Conflict(f"job {job_id!r} is not a dry run; it has no plan")
        path = self.daemon.runner.plan_path(job_id)
        if not path.exists():
            raise Conflict(f"the dry run {job_id!r} has not started yet")
        page = await trio.to_thread.run_sync(lambda: read_plan(path, offset=offset, limit=limit))
        return {"jobId": job_id, "status": job.status.value, **page}

    async def provision(
        self,
        integration_id: str,
        object_id: str,
        *,
        entity_type: str | None = None,
        dry_run: bool = False,
    ) -> dict[str, Any]:
        """Sync one source object now (or say what would happen) and trace each step."""
        resolved = self._integration(integration_id)
        cfg = resolved.cfg
        entity_type = entity_type or cfg.entity_types[0]
        if entity_type not in cfg.entity_types:
            raise Conflict(
                f"{integration_id!r} syncs no {entity_type!r} objects ({', '.join(cfg.entity_types)})"
            )
        if self._opens_driver(resolved):
            raise Conflict(f"{integration_id!r} writes through its own driver: use its sync jobs")
        if dry_run:  # writes nothing: it may run beside a job
            return await self._provision(
                integration_id, resolved, entity_type, object_id, dry_run=True
            )
        try:
            # Held like a job for the whole provisioning: no job starts on it meanwhile.
            async with self.daemon.runner.hold(integration_id):
                return await self._provision(
                    integration_id, resolved, entity_type, object_id, dry_run=False
                )
        except IntegrationBusy:
            raise Conflict(
                f"integration {integration_id!r} has an active job; provision when it ends"
            ) from None

    async def _provision(
        self,
        integration_id: str,
        resolved: Resolved,
        entity_type: str,
        object_id: str,
        *,
        dry_run: bool,
    ) -> dict[str, Any]:
        cfg = resolved.cfg
        clock = self.daemon.clock
        params = {"object_id": object_id, "entity_type": entity_type, "dry_run": dry_run}
        job = replace(
            new_job(integration_id, PROVISION_JOB, clock.now(), params),
            status=JobStatus.RUNNING,
            started_at=clock.now(),
        )
        ctx = self._context(integration_id)
        source = resolved.source.factory.open_source(resolved.source.settings, ctx)
        target = resolved.target.factory.open_target(resolved.target.settings, ctx)
        state = await self.store.get_state(integration_id)
        logs: list[str] = []

        async def log(level: str, message: str) -> None:
            logs.append(redact_text(message))

        engine = SyncEngine(
            job=job,
            cfg=replace(cfg, retry=replace(cfg.retry, attempts=min(cfg.retry.attempts, 2))),
            source=source,
            target=target,
            store=self.store,
            clock=clock,
            log=log,
            control=JobControl(),
            breakers=self.daemon.runner.breakers,
            mapper=SchemaMapper(self.daemon.runner.schema_of(cfg, state)),
            plan=_NoPlan() if dry_run else None,
        )
        error: Exception | None = None
        steps: list[dict[str, Any]] = []
        try:
            with trio.fail_after(120):
                steps = await engine.provision(entity_type, object_id)
        except (SyncError, trio.TooSlowError) as exc:
            error = exc
        finally:
            with trio.CancelScope(shield=True):
                await source.aclose()
                await target.aclose()
                if not dry_run:  # the record of what was done, whatever happened
                    failed = error is not None or steps == []
                    done = replace(
                        engine.job,
                        status=JobStatus.FAILED if failed else JobStatus.COMPLETED,
                        completed_at=clock.now(),
                        progress=100.0,
                        error=redact_text(str(error or "cancelled")) if failed else None,
                        error_code=getattr(error, "code", None) if error else None,
                    )
                    await self.store.save_job(done)
        if error is not None:
            code = getattr(error, "code", type(error).__name__)
            raise Unavailable(redact_text(f"{code}: {error}"))
        return {
            "integrationId": integration_id,
            "entityType": entity_type,
            "objectId": object_id,
            "dryRun": dry_run,
            "jobId": None if dry_run else job.id,
            "steps": redact_value(steps),
        }

    @staticmethod
    def interval_of(view: IntegrationView) -> timedelta:
        return effective_interval(view.cfg, view.state)
