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
  quarantine; see :mod:`sluiced.outcomes`) and plugins observe it through
  ``sluiced_job_event``.
"""

from __future__ import annotations

from collections.abc import AsyncIterator, Callable, Collection, Mapping
from contextlib import asynccontextmanager
from dataclasses import replace
from pathlib import Path
from typing import Any

import structlog
import trio

from .clock import Clock
from .cluster import LeaseExpired
from .config import IntegrationConfig
from .events import JobEvent
from .execution import Executor
from .integrationwork import IntegrationWork
from .jobhandle import JobHandle, new_job
from .logs import get_logger
from .mapping import BUILTINS, Schema
from .mapping.expressions import Function
from .models import IntegrationState, Job, JobStatus
from .outcomes import Outcomes
from .resolved import Resolved
from .retrying import Breakers, job_retry_waits
from .store import Store, StoreUnavailable
from .store.errors import LeaseLost

__all__ = ["IntegrationBusy", "JobHandle", "JobRunner", "Resolved", "new_job"]

log = get_logger("sluiced.runner")


class IntegrationBusy(Exception):
    """The integration has an active job, or is held (:meth:`JobRunner.hold`)."""


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
        fence_for: Callable[[str], Callable[[], bool]] | None = None,
        on_lease_end: Callable[[str], None] = lambda integration_id: None,
        node: str | None = None,
    ) -> None:
        self.store = store
        #: This node's name, recorded on each job it runs (None: not recorded).
        self.node = node
        self.clock = clock
        self.resolve = resolve
        self.limiter = trio.CapacityLimiter(max_concurrent)
        self.emit = emit
        self.on_job_end = on_job_end
        self.on_lease_end = on_lease_end
        self.breakers = Breakers()
        self.handles: dict[str, JobHandle] = {}
        #: Schemas, connector contexts and the work on an integration outside a job.
        self.work = IntegrationWork(
            store=store,
            clock=clock,
            resolve=resolve,
            state_dir=state_dir,
            functions=functions,
            entity_types=dict(entity_types or {}),
            breakers=self.breakers,
            fence_for=fence_for,
            node=node,
        )
        self.outcomes = Outcomes(
            store=store,
            clock=clock,
            resolve=resolve,
            schema_of=self.schema_of,
            saved=self._saved,
            emit=emit,
        )
        self._executor = Executor(
            store=store,
            clock=clock,
            outcomes=self.outcomes,
            breakers=self.breakers,
            resolve=resolve,
            context=self.work.context,
            schema_of=self.schema_of,
            plan_path=self.plan_path,
            fence_for=fence_for,
            node=node,
        )
        self._locks: dict[str, trio.Lock] = {}
        #: Integrations held by work outside a job (:meth:`hold`).
        self._held: set[str] = set()
        self._nursery: trio.Nursery | None = None
        self._idle = trio.Event()
        self._idle.set()
        #: The grace of a running :meth:`shutdown`, ended early by :meth:`hurry`.
        self._grace = trio.CancelScope()
        #: A :meth:`shutdown` began.
        self._stopping = False

    async def run(self, *, task_status: trio.TaskStatus[None] = trio.TASK_STATUS_IGNORED) -> None:
        """Own the nursery of job tasks until cancelled."""
        self._stopping = False
        async with trio.open_nursery() as nursery:
            self._nursery = nursery
            task_status.started()
            await trio.sleep_forever()

    def schema_of(self, cfg: IntegrationConfig, state: IntegrationState) -> Schema:
        """See :meth:`~sluiced.integrationwork.IntegrationWork.schema_of`."""
        return self.work.schema_of(cfg, state)

    def check_schema(self, cfg: IntegrationConfig, data: Any) -> Schema:
        """See :meth:`~sluiced.integrationwork.IntegrationWork.check_schema`."""
        return self.work.check_schema(cfg, data)

    def plan_path(self, job_id: str) -> Path:
        """Where a dry run's plan is written."""
        return self.work.plan_path(job_id)

    # -- what runs -------------------------------------------------------------------------
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

    def tasks(self, integration_id: str | None = None, *, finishing: bool = True) -> list[str]:
        """The ids of the jobs that have a task (of one integration, or all), oldest
        first; without *finishing*, only those whose end is not recorded yet."""
        return [
            h.job_id
            for h in list(self.handles.values())
            if (integration_id is None or h.integration_id == integration_id)
            and (finishing or not h.finished)
        ]

    def running(self, job_id: str) -> bool:
        """Whether the job has a task here that is not being cancelled."""
        handle = self.handles.get(job_id)
        return handle is not None and not handle.scope.cancel_called

    def live(self, job_id: str) -> Job | None:
        """The job as its run holds it in memory, if it runs."""
        handle = self.handles.get(job_id)
        return handle.live() if handle is not None and handle.live is not None else None

    def task_ended(self, job_id: str) -> trio.Event | None:
        """The event set when the job's task ends (all it logs is logged by then), or
        None if it has no task."""
        handle = self.handles.get(job_id)
        return handle.done if handle is not None else None

    # -- requests ------------------------------------------------------------------------
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
        integration alone (see :meth:`submit_if_idle`). A job whose earlier run still has
        a task (ended, its stop being recorded: a lease lost and claimed back at once, a
        stopped job resumed) is queued once that task ended, so that the two never run
        or write at once."""
        assert self._nursery is not None, "the runner is not running"
        previous = self.handles.get(job.id)
        if previous is not None:
            await previous.done.wait()
        job = replace(job, status=JobStatus.QUEUED, interrupted=False)
        handle = JobHandle(job_id=job.id, integration_id=job.integration_id)
        if self._stopping:  # it stops at once, to be resumed at the next start
            handle.shutdown = handle.control.stop_requested = True
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

    def end_jobs(self, integration_ids: Collection[str]) -> None:
        """Cancel at once every job of *integration_ids*, whose leases this node lost: they
        end on this node, interrupted, for the node that holds the lease to resume (the
        store refuses their writes unless this node holds the lease again by then)."""
        for handle in list(self.handles.values()):
            if handle.integration_id in integration_ids:
                handle.shutdown = True
                handle.control.stop_requested = True
                handle.scope.cancel()

    async def shutdown(self, grace: float) -> None:
        """Stop every job gracefully, marked for resumption: retry waits end at once, the
        jobs checkpoint and stop. Cancel what is left after *grace* seconds, or as soon
        as :meth:`hurry` is called (an immediate stop: each job keeps its last checkpoint).
        A job submitted from then on stops at once the same way."""
        self._stopping = True
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

    # -- work outside a job (see :mod:`sluiced.integrationwork`) --------------------------
    async def provision(
        self, integration_id: str, entity_type: str, object_id: str, *, dry_run: bool
    ) -> tuple[Job, list[dict[str, Any]]]:
        """Sync one object of the integration now, holding it (see :meth:`hold`) unless
        *dry_run*: :meth:`~sluiced.integrationwork.IntegrationWork.provision`."""
        return await self.work.provision(
            integration_id, entity_type, object_id, dry_run=dry_run, hold=self.hold
        )

    async def validate(self, integration_id: str) -> dict[str, dict[str, Any]]:
        """See :meth:`~sluiced.integrationwork.IntegrationWork.validate`."""
        return await self.work.validate(integration_id)

    def source_keyed(self, integration_id: str) -> bool:
        """See :meth:`~sluiced.integrationwork.IntegrationWork.source_keyed`."""
        return self.work.source_keyed(integration_id)

    # -- one job ---------------------------------------------------------------------------
    def _emit_job(self, job: Job) -> None:
        self.emit(JobEvent(kind="job", integration_id=job.integration_id, job=job))

    def _saved(self, job: Job) -> None:
        handle = self.handles.get(job.id)
        if handle is not None and (job.status.terminal or job.status is JobStatus.PAUSED):
            handle.finished = True  # recorded as over: others may start (they queue on the lock)
        self._emit_job(job)

    async def _job_task(self, job: Job, handle: JobHandle) -> None:
        """Run the job. One that ends for its lease records nothing more; once its task
        ended, *on_lease_end* has the lease's holder (maybe this node) resume it."""
        lease_ended = False
        try:
            with structlog.contextvars.bound_contextvars(
                integration_id=job.integration_id, job_id=job.id
            ):
                with handle.scope, job_retry_waits(handle.waits):
                    lock = self._locks.setdefault(job.integration_id, trio.Lock())
                    async with lock, self.limiter:
                        try:
                            await self._executor.run(job, handle)
                        except (LeaseLost, LeaseExpired) as exc:
                            log.warning("the job ends on this node", error=str(exc))
                            lease_ended = True
                        except StoreUnavailable as exc:
                            await self.outcomes.fail_when_stored(job, exc)
                if handle.scope.cancelled_caught:
                    try:
                        await self.outcomes.cancelled(job.id, shutdown=handle.shutdown)
                    except LeaseLost as exc:
                        log.warning("the job ends on this node", error=str(exc))
                    except StoreUnavailable as exc:  # resumed at the next start instead
                        log.error("could not record the stop", error=str(exc))
        finally:
            handle.done.set()
            if self.handles.get(job.id) is handle:
                del self.handles[job.id]
            if not self.handles:
                self._idle.set()
            if lease_ended:
                self.on_lease_end(job.integration_id)
            self.on_job_end()
