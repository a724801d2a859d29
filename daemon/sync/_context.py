"""What every step of a job shares: the job record, its configuration and connectors."""

from __future__ import annotations

from collections.abc import Callable, Mapping
from dataclasses import dataclass, field, replace
from typing import Any

from ..clock import Clock
from ..cluster import LeaseExpired
from ..config import IntegrationConfig
from ..connectors import Source, Target
from ..mapping.mapper import SchemaMapper
from ..models import Job, JobStats
from ..retrying import Breakers, call_with_retry
from ..store import Store
from ._job import JobControl, JobLog, PlanSink

__all__ = [
    "JobContext",
]


def _unfenced() -> bool:
    return True


@dataclass(kw_only=True, eq=False)
class JobContext:
    """A job in progress. ``job`` is replaced as the job advances (stats, checkpoint,
    progress); every collaborator reads it here."""

    job: Job
    cfg: IntegrationConfig
    source: Source
    target: Target
    store: Store
    clock: Clock
    log: JobLog
    control: JobControl
    breakers: Breakers
    mapper: SchemaMapper
    #: A dry run: ops go to the plan; links, escrows and watermarks stay as they are.
    plan: PlanSink | None = None
    deletions_approved: bool = False
    #: Entity types that failed in this job and are owed a pass (kept in the checkpoint).
    failed_types: list[str] = field(default_factory=list)
    #: Objects escrowed in this job.
    escrowed: int = 0
    #: The number of the job's last commit through a transactional target (kept in
    #: the checkpoint; None: the target is not transactional).
    seq: int | None = None
    #: Whether this node may still write for the job's integration (its lease is valid
    #: on this host's clock); checked before each write to the target.
    fence: Callable[[], bool] = _unfenced

    async def write_target(self, fn: Callable[[], Any]) -> Any:
        """:meth:`call` of a write to the target, each attempt made only while
        :attr:`fence` holds.

        Raises:
            LeaseExpired: the fence does not hold (nothing more is written).
        """

        def fenced() -> Any:
            if not self.fence():
                raise LeaseExpired(self.job.integration_id)
            return fn()

        return await self.call(self.target.endpoint, fenced)

    async def call(self, endpoint: str, fn: Callable[[], Any]) -> Any:
        """``await fn()`` with the integration's retries and *endpoint*'s breaker; each
        retry is logged. Raises what the last attempt raised."""

        async def on_retry(attempt: int, delay: float, exc: Exception) -> None:
            await self.log("warning", f"{endpoint}: {exc}; retry {attempt} in {delay:.1f}s")

        return await call_with_retry(
            fn, policy=self.cfg.retry, breaker=self.breakers.get(endpoint), on_retry=on_retry
        )

    def checkpoint_of(self, checkpoint: Mapping[str, Any], seq: int | None) -> dict[str, Any]:
        """*checkpoint* with the failed types owed and the commit number *seq*; nothing
        changes."""
        data = dict(checkpoint)
        if self.failed_types:
            data["failed"] = list(self.failed_types)
        if seq is not None:
            data["seq"] = seq
        return data

    def with_checkpoint(self, checkpoint: Mapping[str, Any]) -> Job:
        """The job with *checkpoint* (and the failed types owed), now the job's record."""
        self.job = replace(self.job, checkpoint=self.checkpoint_of(checkpoint, self.seq))
        return self.job

    def add_stats(self, stats: JobStats) -> None:
        """Count *stats* into the job's."""
        self.job = replace(self.job, stats=self.job.stats + stats)

    def stats_text(self) -> str:
        """The job's counts, for a log line."""
        s = self.job.stats
        return (
            f"processed {s.processed}, created {s.created}, updated {s.updated}, deleted {s.deleted}, "
            f"disabled {s.disabled}, skipped {s.skipped}, errors {s.errors}"
        )
