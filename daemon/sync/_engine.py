"""The engine's face: a job's collaborators composed, and its two entry points."""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import replace
from typing import Any

from ..clock import Clock
from ..config import IntegrationConfig
from ..connectors import PlanningTarget, Source, SourceKeyedTarget, Target
from ..mapping.mapper import SchemaMapper
from ..models import Job
from ..retrying import Breakers
from ..store import Store
from ._byids import by_ids
from ._commit import Applier, Committer
from ._context import JobContext
from ._decider import Decider
from ._deletions import Deletions
from ._escrows import Escrows
from ._job import EngineResult, JobControl, JobLog, PlanSink, default_mapper
from ._keyed import KeyedWrites
from ._passes import Passes
from ._provision import provision

__all__ = [
    "SyncEngine",
]


class SyncEngine:
    """One job of an integration: source pages → mapping → target batches, checkpointed.

    *plan* makes it a dry run (ops go to the plan; links, escrows and watermarks stay
    as they are); *force_full* makes every pass full (the schema changed since the last
    full pass). *fence* (see :attr:`JobContext.fence`) is checked before each write to
    the target: once it fails the job raises
    :class:`~sluiced.cluster.LeaseExpired` (an :class:`Interrupted` of kind ``lease``). A job's ``entity_types`` param selects the types it syncs, and its
    ``batch_size`` param overrides the integration's.
    """

    def __init__(
        self,
        *,
        job: Job,
        cfg: IntegrationConfig,
        source: Source,
        target: Target,
        store: Store,
        clock: Clock,
        log: JobLog,
        control: JobControl,
        breakers: Breakers,
        mapper: SchemaMapper | None = None,
        deletions_approved: bool = False,
        plan: PlanSink | None = None,
        force_full: bool = False,
        fence: Callable[[], bool] | None = None,
    ) -> None:
        selected = job.params.get("entity_types")
        self.entity_types: tuple[str, ...] = tuple(selected) if selected else cfg.entity_types
        #: How the target's own job types run (None: full, incremental or selective).
        self.job_plan = (
            target.plan_job(job.type, job.params, cfg.entity_types)
            if isinstance(target, PlanningTarget)
            else None
        )
        if self.job_plan is not None:
            self.entity_types = tuple(self.job_plan.entity_types)
            force_full = force_full or self.job_plan.full
            if self.job_plan.batch_size:
                cfg = replace(cfg, batch_size=self.job_plan.batch_size)
        if job.params.get("batch_size"):
            cfg = replace(cfg, batch_size=int(job.params["batch_size"]))
        self.ctx = JobContext(
            job=job,
            cfg=cfg,
            source=source,
            target=target,
            store=store,
            clock=clock,
            log=log,
            control=control,
            breakers=breakers,
            mapper=mapper or default_mapper(cfg),
            plan=plan,
            deletions_approved=deletions_approved,
        )
        if fence is not None:
            self.ctx.fence = fence
        committer = Committer(self.ctx)
        applier = Applier(self.ctx, committer)
        self.escrows = Escrows(self.ctx, Decider(self.ctx), applier, committer)
        deletions = Deletions(self.ctx, self.escrows, applier, committer)
        #: Writes into a target keyed by source ids (None: links are kept in the store).
        self.keyed = (
            KeyedWrites(self.ctx, committer) if isinstance(target, SourceKeyedTarget) else None
        )
        self.passes = Passes(
            self.ctx,
            self.entity_types,
            committer,
            self.escrows,
            deletions,
            force_full=force_full,
            keyed=self.keyed,
        )

    @property
    def job(self) -> Job:
        """The job as it stands: stats, checkpoint, progress."""
        return self.ctx.job

    @property
    def escrowed(self) -> int:
        """Objects escrowed so far in this job."""
        return self.ctx.escrowed

    async def run(self) -> EngineResult:
        """Run (or continue) every pass of the job. Raises :class:`Interrupted` on pause or
        stop; other errors of one entity type are collected in ``failed``."""
        if self.keyed is None:
            return await self.passes.run()
        await self.keyed.resume()
        try:
            if self.job_plan is not None and self.job_plan.ids is not None:
                return await by_ids(self.ctx, self.keyed, self.job_plan)
            return await self.passes.run()
        finally:
            await self.keyed.forget_logged()

    async def provision(self, entity_type: str, object_id: str) -> list[dict[str, Any]]:
        """Sync one object now and say what happened at each step: import, scoping,
        matching, action, export. In a dry run nothing is written.

        Raises:
            SyncError: the source or the target failed as a whole.
        """
        return await provision(self.ctx, self.escrows, entity_type, object_id)
