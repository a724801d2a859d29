"""Where a job of the mirror stands, and what it has written so far, kept in the
mirror's own ``sync_state`` table (key ``job:<id>``).

The position and the job's counts are one JSON value, written in the same transaction
as the rows they describe: after a crash the mirror, the position and the counts agree,
and the job's stats in the daemon's store (saved after the mirror commits, and only at
batch boundaries) are taken from here when the job resumes. Nothing is counted twice
or lost, whatever moment the process died.

A position outlives its job's end (a crash between the mirror's last commit and the
store's "completed" must not run the job again from scratch); it is dropped once the
store says the job is over for good (see :func:`forget_ended`).
"""

from __future__ import annotations

import json
from collections.abc import Awaitable, Callable, Mapping, Sequence
from dataclasses import asdict, fields, replace
from typing import Any

from sluiced.models import Job, JobStats, JobStatus

from .mirror import Mirror

__all__ = ["PREFIX", "PositionedWrites", "decode", "encode", "forget_ended"]

PREFIX = "job:"
_STATS = "stats"


def encode(where: Mapping[str, Any], stats: JobStats) -> str:
    """The ``sync_state`` value of a job at *where* having written *stats*."""
    return json.dumps({**where, _STATS: asdict(stats)}, sort_keys=True)


def decode(value: str | None) -> tuple[dict[str, Any], JobStats | None]:
    """``(where, stats)`` of a stored value; stats None when the value has none (no
    value, or one written before counts were kept with it)."""
    data = json.loads(value) if value else {}
    counts = data.pop(_STATS, None)
    if not isinstance(counts, dict):
        return data, None
    known = {f.name for f in fields(JobStats)}
    return data, JobStats(**{k: int(v) for k, v in counts.items() if k in known})


async def forget_ended(mirror: Mirror, store: Any, keep: str) -> int:
    """Drop the positions of jobs other than *keep* that can never run again: gone from
    the store, completed, or stopped by a person (paused and failed jobs may be resumed,
    interrupted ones are). Returns how many were dropped."""
    drop: list[str] = []
    for key in await mirror.state(PREFIX):
        job_id = key[len(PREFIX) :]
        if job_id == keep:
            continue
        job = await store.get_job(job_id)
        if (
            job is None
            or job.status is JobStatus.COMPLETED
            or (job.status is JobStatus.STOPPED and not job.interrupted)
        ):
            drop.append(key)
    if drop:
        await mirror.save_state(dict.fromkeys(drop))
    return len(drop)


class PositionedWrites:
    """The mirror writes of a job driver (``StashSync``) that move its counts: each
    commits the job's position and counts with its rows. ``job`` follows in memory;
    ``_save`` (the driver's) writes it to the daemon's store when the driver chooses."""

    mirror: Mirror
    job: Job | None
    _where: dict[str, Any]

    async def _save(self, **changes: Any) -> None:
        raise NotImplementedError

    def _position(self) -> str:
        assert self.job is not None
        return f"{PREFIX}{self.job.id}"

    async def _resume(self) -> dict[str, Any]:
        """The job's position in the mirror. The job's stats become the counts committed
        with it (none: the job starts from scratch, and so do its counts)."""
        assert self.job is not None
        where, stats = decode((await self.mirror.state(self._position())).get(self._position()))
        if stats is not None or not where:  # a position of an older sluiced has no counts
            await self._save(stats=stats or JobStats())
        self._where = where
        return where

    async def _write(
        self,
        write: Callable[[Mapping[str, str | None]], Awaitable[Any]],
        where: Mapping[str, Any] | None = None,
        delta: JobStats = JobStats(),  # noqa: B008 - frozen
        state: Mapping[str, str | None] | None = None,
    ) -> Any:
        """Run the mirror write *write(state)* with the job's position *where* (default:
        where it is) and its counts plus *delta*, and the entries of *state*, as *state*:
        the rows, the position, the counts and *state* commit in one transaction. ``job``
        follows in memory; the store is written by the caller (:meth:`_save`) when it
        chooses."""
        assert self.job is not None
        at = dict(self._where if where is None else where)
        stats = self.job.stats + delta
        result = await write({**(state or {}), self._position(): encode(at, stats)})
        self._where = at
        self.job = replace(self.job, stats=stats, checkpoint=at)
        return result

    async def _commit(
        self, kind: str, records: Sequence[Mapping[str, Any]], position: Mapping[str, Any]
    ) -> None:
        """Apply a page with the job's position and counts, in one mirror transaction."""
        created = (
            len(await self.mirror.missing(kind, [int(r["id"]) for r in records])) if records else 0
        )
        await self._write(
            lambda state: self.mirror.apply(kind, records, state),
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
        await self._write(
            lambda at: self.mirror.delete(kind, keys, at),
            delta=JobStats(deleted=present),
            state=state,
        )
        await self._save()
        return present
