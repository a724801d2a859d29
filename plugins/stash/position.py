"""Where a job of the mirror stands, and what it has written so far, kept in the
mirror's own ``sync_state`` table (key ``job:<id>``).

The position and the job's counts are one JSON value, written in the same transaction
as the rows they describe: after a crash the mirror, the position and the counts agree,
and the job's stats in the daemon's store (saved after the mirror commits, and only at
batch boundaries) are taken from here when the job resumes. Nothing is counted twice
or lost, whatever moment the process died.

A position outlives its job's end (a crash between the mirror's last commit and the
store's "completed" must not run the job again from scratch); it is dropped once the
store says the job is over for good (see :func:`forget_ended`). The mirror's target
(``target.py``) commits them.
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from dataclasses import asdict, replace
from typing import Any

from sluiced.connectors import Checkpoint, Op
from sluiced.models import Job, JobStats, JobStatus

from .mirror import Mirror
from .target import PREFIX, MirrorTarget, decode, encode

__all__ = ["PREFIX", "PositionedWrites", "decode", "encode", "forget_ended"]


async def forget_ended(mirror: Mirror, store: Any, keep: str) -> int:
    """Drop the positions of jobs other than *keep* that can never run again: gone from
    the store, completed, or stopped by a person (paused and failed jobs may be resumed,
    interrupted ones are). Returns how many were dropped."""

    async def over(job_id: str) -> bool:
        if job_id == keep:
            return False
        job = await store.get_job(job_id)
        return (
            job is None
            or job.status is JobStatus.COMPLETED
            or (job.status is JobStatus.STOPPED and not job.interrupted)
        )

    return await MirrorTarget(mirror).forget_checkpoints(over)


class PositionedWrites:
    """The mirror writes of a job driver (``StashSync``) that move its counts: each
    commits the job's position and counts with its rows, through the mirror's target.
    ``job`` follows in memory; ``_save`` (the driver's) writes it to the daemon's store
    when the driver chooses."""

    mirror: Mirror
    target: MirrorTarget
    job: Job | None
    _where: dict[str, Any]

    async def _save(self, **changes: Any) -> None:
        raise NotImplementedError

    async def _resume(self) -> dict[str, Any]:
        """The job's position in the mirror. The job's stats become the counts committed
        with it (none: the job starts from scratch, and so do its counts)."""
        assert self.job is not None
        found = await self.target.checkpoint(self.job.id)
        where = dict(found.position) if found is not None else {}
        stats = JobStats(**found.stats) if found is not None and found.stats else None
        if stats is not None or not where:  # a position of an older sluiced has no counts
            await self._save(stats=stats or JobStats())
        self._where = where
        return where

    async def _write(
        self,
        kind: str,
        ops: Sequence[Op] = (),
        where: Mapping[str, Any] | None = None,
        delta: JobStats = JobStats(),  # noqa: B008 - frozen
        state: Mapping[str, str | None] | None = None,
    ) -> None:
        """Apply *ops* with the job's position *where* (default: where it is), its
        counts plus *delta* and the ``sync_state`` entries *state*, in one transaction.
        ``job`` follows in memory; the store is written by the caller (:meth:`_save`)
        when it chooses."""
        assert self.job is not None
        at = dict(self._where if where is None else where)
        stats = self.job.stats + delta
        checkpoint = Checkpoint(
            job_id=self.job.id, position=at, stats=asdict(stats), state=dict(state or {})
        )
        await self.target.apply(kind, ops, checkpoint=checkpoint)
        self._where = at
        self.job = replace(self.job, stats=stats, checkpoint=at)

    async def _commit(
        self, kind: str, records: Sequence[Mapping[str, Any]], position: Mapping[str, Any]
    ) -> None:
        """Apply a page with the job's position and counts, in one mirror transaction."""
        created = (
            len(await self.mirror.missing(kind, [int(r["id"]) for r in records])) if records else 0
        )
        await self._write(
            kind,
            upserts(records),
            position,
            JobStats(processed=len(records), created=created, updated=len(records) - created),
        )
        await self._save()

    async def _delete(
        self,
        kind: str,
        ids: Sequence[int | str],
        state: Mapping[str, str | None] | None = None,
    ) -> int:
        """Delete from the mirror, counting as deleted the rows that were there, in one
        transaction with the job's position and *state*. Returns that count."""
        keys = sorted({int(i) for i in ids})
        present = len(keys) - len(await self.mirror.missing(kind, keys))
        await self._write(kind, deletions(keys), delta=JobStats(deleted=present), state=state)
        await self._save()
        return present


def upserts(records: Sequence[Mapping[str, Any]]) -> list[Op]:
    """Ops writing *records* as Stash returned them."""
    return [Op(kind="update", source_id=str(r["id"]), data=r) for r in records]


def deletions(ids: Sequence[int | str]) -> list[Op]:
    """Ops deleting these ids."""
    return [Op(kind="delete", source_id=str(i)) for i in ids]
