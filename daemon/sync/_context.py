"""What every step of a job shares: the job record, its configuration and connectors."""

from __future__ import annotations

import math
from collections.abc import Callable, Mapping
from dataclasses import dataclass, field, replace
from typing import Any

import trio

from ..clock import Clock
from ..cluster import LeaseExpired
from ..cluster.coordinator import LeaseFence
from ..config import IntegrationConfig
from ..connectors import Source, Target
from ..mapping.mapper import SchemaMapper
from ..models import Job, JobStats
from ..retrying import Breakers, Interrupted, call_with_retry, retry_wait
from ..store import Store
from ._job import JobControl, JobLog, PlanSink

__all__ = [
    "WRITE_DECAY",
    "WRITE_FLOOR",
    "JobContext",
]

#: The least time (seconds) a job's lease must stay valid for a target write to start,
#: however quick its earlier writes were.
WRITE_FLOOR = 0.5
#: The share of the longest recent write duration a job still counts at its next write.
WRITE_DECAY = 0.8


def _unfenced() -> bool:
    """The fence of a job that no lease bounds: it always holds."""
    return True


async def _renewal(fence: LeaseFence) -> None:
    """Wait for *fence*'s next renewal (:meth:`LeaseFence.renewed`).

    Raises:
        Interrupted: the current job was asked to stop or pause meanwhile (see
            :func:`~sluiced.retrying.retry_wait`).
    """
    asked: list[Interrupted] = []
    async with trio.open_nursery() as nursery:

        async def until_asked() -> None:
            try:
                await retry_wait(math.inf)
            except Interrupted as exc:
                asked.append(exc)
            nursery.cancel_scope.cancel()

        nursery.start_soon(until_asked)
        await fence.renewed()
        nursery.cancel_scope.cancel()
    if asked:
        raise asked[0]


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
    #: on this host's clock); checked before each write to the target. A
    #: :class:`~sluiced.cluster.coordinator.LeaseFence` also says for how long.
    fence: Callable[[], bool] = _unfenced
    #: How long (seconds) the lease must stay valid for a target write to start: the
    #: longest recent write of this job, decaying by :data:`WRITE_DECAY` at each write,
    #: never under :data:`WRITE_FLOOR`.
    write_need: float = field(default=WRITE_FLOOR, init=False)

    async def write_target(self, fn: Callable[[], Any]) -> Any:
        """:meth:`call` of a write to the target, each attempt started only while the
        lease stays valid longer than :attr:`write_need` (:meth:`hold_lease`); its
        duration counts into :attr:`write_need`.

        Raises:
            LeaseExpired: the lease does not stay valid long enough, even after the next
                renewal (nothing more is written).
        """

        async def fenced() -> Any:
            await self.hold_lease()
            began = trio.current_time()
            try:
                return await fn()
            finally:
                took = trio.current_time() - began
                self.write_need = max(WRITE_FLOOR, took, self.write_need * WRITE_DECAY)

        return await self.call(self.target.endpoint, fenced)

    async def hold_lease(self) -> None:
        """Return once the job's lease stays valid longer than :attr:`write_need`:
        at once if it does, else after the node's next renewal (a heartbeat or two at
        most, for a :class:`~sluiced.cluster.coordinator.LeaseFence`). A fence that
        only says yes or no is asked once. Cancellation ends the wait.

        Raises:
            LeaseExpired: the lease does not stay valid long enough after the renewal
                either (or the fence says no).
            Interrupted: the job was asked to stop or pause while it waited.
        """
        fence = self.fence
        if isinstance(fence, LeaseFence):
            if fence.valid_for() > self.write_need:
                return
            await _renewal(fence)
            if fence.valid_for() > self.write_need:
                return
        elif fence():
            return
        raise LeaseExpired(self.job.integration_id)

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
