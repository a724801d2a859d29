"""Writing into a target keyed by source ids, exactly once where the target can.

A :class:`~sluiced.connectors.SourceKeyedTarget` holds objects under their source ids:
it is its own link table, so the engine keeps no links, hashes or escrows for it. Every
record read is written as the source returned it (an ``update`` op, which the target
counts as created when it lacked the id). What a record links to and the target lacks
(a :class:`~sluiced.connectors.LinkingSource` says what) is read by id and written
first, and what that links to, a bounded number of levels deep. An incremental read's
:class:`~sluiced.connectors.Gone` items are deleted from the target with the page they
came in (a full read's are ignored: the reconciler, if any, compares sets).

When the target is also a :class:`~sluiced.connectors.TransactionalTarget`, every
commit that moves the job (a page, a deletion, a re-read, a pass's end, the linked
objects written first) goes through the target's transaction with the job's checkpoint
and counts, numbered by ``seq``, and with the rows of the provisioning log it makes
(the target's outbox, each under the key ``job/run/seq/index``); only then does the job
move in memory, and the store's commit follows, with those rows under their keys. The
next commit of the target removes them from the outbox; what the outbox still holds
when a job starts is copied into the store first (:mod:`._outbox`). A job resumes from
the target's checkpoint and counts: a failure or a crash at any moment loses and
repeats nothing, in the target, in the counts or in the log.
"""

from __future__ import annotations

from collections.abc import AsyncIterator, Awaitable, Callable, Mapping, Sequence
from contextlib import asynccontextmanager
from dataclasses import asdict, replace
from functools import partial
from typing import Any

import trio

from ..changes import Change
from ..connectors import (
    Checkpoint,
    LinkingSource,
    Op,
    Record,
    SourceKeyedTarget,
    TransactionalTarget,
    Writes,
)
from ..logs import get_logger
from ..models import JobStats, JobStatus
from ..store import BatchCommit, Store, StoreUnavailable
from . import _changes
from ._commit import Committer
from ._context import JobContext
from ._job import CHECKPOINT_VERSION
from ._outbox import move_outbox, new_run

log = get_logger("sluiced.engine")

__all__ = ["KeyedWrites", "over_for_good"]

#: How many levels of linked objects are fetched first (chains of parents are short).
_LINK_DEPTH = 20


def upserts(records: Sequence[Record]) -> list[Op]:
    """Ops writing *records* as the source returned them."""
    return [Op(kind="update", source_id=r.id, target_id=r.id, data=r.data) for r in records]


def deletions(gone: Sequence[str], records: Sequence[Record]) -> list[Op]:
    """Ops deleting the objects of a page's Gone *gone* ids, each once, except those the
    page also holds as *records*."""
    if not gone:
        return []
    read = {r.id for r in records}
    keys = sorted({i for i in gone if i not in read}, key=_order)
    return [Op(kind="delete", source_id=i, target_id=i) for i in keys]


class KeyedWrites(Writes):
    """The engine's writes into a target keyed by source ids (see the module); also
    the :class:`~sluiced.connectors.Writes` a reconciler is given."""

    def __init__(self, ctx: JobContext, committer: Committer) -> None:
        assert isinstance(ctx.target, SourceKeyedTarget)
        self.ctx = ctx
        self.committer = committer
        self.keyed: SourceKeyedTarget = ctx.target
        self.transactional = ctx.target if isinstance(ctx.target, TransactionalTarget) else None
        self.linking = ctx.source if isinstance(ctx.source, LinkingSource) else None
        self.page_size = ctx.cfg.batch_size
        #: Changes the target committed that the store has not saved yet, each under
        #: its key in the target's outbox (None: the target keeps no outbox).
        self.unsaved: list[tuple[str | None, Change]] = []
        #: Keys of the outbox's rows the store saved: the target's next commit removes them.
        self.logged: list[str] = []
        #: Tells this run's outbox keys from those of a run started from scratch before.
        self.run = new_run(ctx.clock.now())

    # -- the job's checkpoint -------------------------------------------------------------
    async def resume(self) -> None:
        """Before the job runs: copy what the target's outbox holds into the store
        (:func:`._outbox.move_outbox`), drop the target's checkpoints of jobs that are
        over, and take this job's checkpoint and counts from the target, which committed
        them with the writes they describe (the store's record follows the target's, and
        is never ahead of it). None there, or one of another version: the job starts
        from scratch, and so do its counts; one kept without counts keeps the store's."""
        target = self.transactional
        if target is None:
            return
        ctx = self.ctx
        await move_outbox(ctx, target, logging=self.committer.logging)

        async def over(job_id: str) -> bool:
            return job_id != ctx.job.id and await over_for_good(ctx.store, job_id)

        await target.forget_checkpoints(over)
        found = await target.checkpoint(ctx.job.id)
        if found is None or found.position.get("v") != CHECKPOINT_VERSION:
            ctx.job = replace(ctx.job, checkpoint=None, stats=JobStats())
            ctx.seq = 0
            return
        stats = JobStats(**found.stats) if found.stats else ctx.job.stats
        ctx.job = replace(ctx.job, checkpoint=dict(found.position), stats=stats)
        ctx.seq = int(found.position.get("seq", 0))
        self.run = str(found.position.get("run") or self.run)

    async def watermark(self, entity_type: str) -> str | None:
        """The watermark of *entity_type*'s last completed pass: the target's, when it
        keeps them, else the store's."""
        if self.transactional is not None:
            return (await self.transactional.watermarks()).get(entity_type)
        return (await self.ctx.store.get_watermarks(self.ctx.cfg.id)).get(entity_type)

    async def commit(
        self,
        entity_type: str,
        ops: Sequence[Op],
        position: Mapping[str, Any] | None = None,
        delta: JobStats = JobStats(),  # noqa: B008 - frozen
        *,
        state: Mapping[str, str | None] | None = None,
        watermarks: Mapping[str, str] | None = None,
        save: bool = True,
        batch: Mapping[str, Any] | None = None,
        lacking: Sequence[str] = (),
    ) -> None:
        """Apply *ops* with the job at *position* (default: where it is) and its counts
        plus *delta*, in one transaction of a transactional target (with *state*, the
        target's own entries, *watermarks*, the changes of *ops* for its outbox and the
        removal of the outbox's rows the store has); then, if *save*, commit the job to
        the store (with the ``BatchCommit`` fields *batch*) and the changes of *ops* to
        the provisioning log (*lacking*: the ids the target lacked before, see
        :func:`._changes.keyed`).

        Raises:
            SyncError: the target failed as a whole, after retries. On this, any other
                error of the target, or cancellation, nothing of it is counted: the
                job's checkpoint, counts and ``seq`` stay where the target holds them.
        """
        ctx = self.ctx
        if position is not None:
            where = dict(position)
        else:
            where = dict(ctx.job.checkpoint or {"v": CHECKPOINT_VERSION, "index": 0})
        seq = (ctx.seq or 0) + 1 if self.transactional is not None else None
        checkpoint = ctx.checkpoint_of(where, seq)
        stats = ctx.job.stats + delta
        made: list[Change] = []
        if self.committer.logging:
            now = ctx.clock.now()
            made = _changes.keyed(ctx.cfg.id, ctx.job.id, entity_type, ops, lacking, now)
        keyed: list[tuple[str | None, Change]]
        if self.transactional is not None:
            target = self.transactional
            checkpoint["run"] = self.run
            prefix = f"{ctx.job.id}/{self.run}/{seq}/"
            keyed = [(f"{prefix}{n}", c) for n, c in enumerate(made)]
            logged = tuple(self.logged)
            at = Checkpoint(
                job_id=ctx.job.id,
                position=checkpoint,
                stats=asdict(stats),
                state=dict(state or {}),
                watermarks=dict(watermarks or {}),
                changes={k: _changes.outboxed(c) for k, c in keyed if k is not None},
                logged=logged,
            )
            await ctx.write_target(lambda: target.apply(entity_type, ops, checkpoint=at))
            self.logged = self.logged[len(logged) :]
        else:
            keyed = [(None, c) for c in made]
            if ops:
                await ctx.write_target(lambda: ctx.target.apply(entity_type, ops))
        # Only now does the job move: a failed or interrupted write leaves it in place.
        ctx.seq = seq
        ctx.job = replace(ctx.job, checkpoint=checkpoint, stats=stats)
        self.unsaved += keyed
        if save:
            await self.save(entity_type, batch)

    @asynccontextmanager
    async def saved_on_failure(self, entity_type: str) -> AsyncIterator[None]:
        """Commits made with ``save=False`` inside the block are saved to the store
        (the job and their changes) should it end with an exception, cancellation
        included: the target committed them, so the job resumes past them and their
        changes would otherwise never be logged. A store that refuses it then (out of
        reach, the lease lost) leaves them unsaved (logged); the exception goes on."""
        try:
            yield
        except BaseException:
            if self.unsaved:
                with trio.CancelScope(shield=True):
                    try:
                        await self.save(entity_type)
                    except StoreUnavailable as exc:
                        log.warning(
                            "the changes of the target's last commits could not be logged",
                            error=str(exc),
                        )
            raise

    async def save(self, entity_type: str, batch: Mapping[str, Any] | None = None) -> None:
        """Commit the job as it stands to the store (with the ``BatchCommit`` fields
        *batch*), and the changes of the target's commits not saved yet (those in its
        outbox under their keys: should the store fail, the outbox keeps them)."""
        pending, self.unsaved = self.unsaved, []
        plain = [c for k, c in pending if k is None]
        keyed = [(k, c) for k, c in pending if k is not None]
        await self.committer.commit(
            BatchCommit(
                job=self.ctx.job,
                entity_type=entity_type,
                changes=plain,
                keyed_changes=keyed,
                **dict(batch or {}),
            )
        )
        self.logged += [k for k, _ in keyed]

    async def forget_logged(self) -> None:
        """As the job ends (however it ends): remove from the target's outbox the changes
        the store has saved, so that none waits there for the next job, which might
        come after retention pruned them and log them again. Best effort, shielded: a
        target that fails leaves them to the next job's move (logged once by key)."""
        if self.transactional is None or not self.logged:
            return
        keys, self.logged = self.logged, []
        with trio.CancelScope(shield=True):
            try:
                await self.transactional.forget_changes(keys)
            except Exception as exc:  # the job's own outcome stands
                log.warning("the target's outbox keeps changes already logged", error=str(exc))

    # -- linked objects first -------------------------------------------------------------
    async def linked_first(self, entity_type: str, data: Sequence[Mapping[str, Any]]) -> None:
        """Write the objects *data* links to that the target lacks, read by id (and what
        those link to, first), each level in a commit of its own (a transactional
        target's with the job's checkpoint where it is, and the changes for its
        outbox); they are not counted, and their creation is saved to the store with
        the job's next save. A linked object the source no longer has is logged."""
        if self.linking is None:
            return
        ctx, linking = self.ctx, self.linking
        pending = [(entity_type, d) for d in data]
        for _ in range(_LINK_DEPTH):
            wanted: dict[str, set[str]] = {}
            for kind, d in pending:
                for other, ids in linking.links(kind, d).items():
                    wanted.setdefault(other, set()).update(ids)
            pending = []
            for other, ids in wanted.items():
                if not ids:
                    continue
                lacking = await self.keyed.missing(other, sorted(ids, key=_order))
                if not lacking:
                    continue
                found = await ctx.call(
                    ctx.source.endpoint, partial(ctx.source.get_many, other, lacking)
                )
                records = [r for r in found.values() if isinstance(r, Record)]
                gone = [i for i in lacking if i not in found]
                if gone:
                    await ctx.log(
                        "warning",
                        f"{entity_type}: linked {other}s {', '.join(gone)} are gone from the source",
                    )
                if records:  # logged with the job's next save
                    await self.commit(
                        other, upserts(records), save=False, lacking=[r.id for r in records]
                    )
                pending += [(other, r.data) for r in records]
            if not pending:
                return

    # -- Writes: what a reconciler writes -------------------------------------------------
    async def log(self, level: str, message: str) -> None:
        await self.ctx.log(level, message)

    async def call(self, request: Callable[[], Awaitable[Any]]) -> Any:
        return await self.ctx.call(self.ctx.source.endpoint, request)

    async def apply(
        self,
        entity_type: str,
        data: Sequence[Mapping[str, Any]],
        state: Mapping[str, str | None] | None = None,
    ) -> None:
        records = [Record(id=str(d["id"]), data=d) for d in data]
        await self.linked_first(entity_type, data)
        lacking = await self.keyed.missing(entity_type, [r.id for r in records])
        created = len(lacking)
        delta = JobStats(processed=len(records), created=created, updated=len(records) - created)
        await self.commit(entity_type, upserts(records), None, delta, state=state, lacking=lacking)

    async def delete(
        self, entity_type: str, ids: Sequence[str], state: Mapping[str, str | None] | None = None
    ) -> int:
        keys = sorted({str(i) for i in ids}, key=_order)
        absent = await self.keyed.missing(entity_type, keys)
        present = len(keys) - len(absent)
        ops = [Op(kind="delete", source_id=i, target_id=i) for i in keys]
        await self.commit(
            entity_type, ops, None, JobStats(deleted=present), state=state, lacking=absent
        )
        return present


async def over_for_good(store: Store, job_id: str) -> bool:
    """Whether the job can never run again: gone from the store, completed, or stopped
    by a person (paused and failed jobs may be resumed, interrupted ones are)."""
    job = await store.get_job(job_id)
    return (
        job is None
        or job.status is JobStatus.COMPLETED
        or (job.status is JobStatus.STOPPED and not job.interrupted)
    )


def _order(source_id: str) -> tuple[int, str]:
    """Numeric ids in numeric order, then the others."""
    return (int(source_id), "") if source_id.isdigit() else (2**63, source_id)
