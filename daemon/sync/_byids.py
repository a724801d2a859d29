"""A pass "by ids": the objects a job names, read with ``get_many``, into a target
keyed by source ids (a mirror's job that syncs the objects a person names, say), one
entity type after the other.

The ids are asked for a batch at a time, what they link to and the target lacks first.
Each object commits on its own with the job's position (``done``: how many of the ids
are written) and counts, so progress moves object by object, in memory (the API shows
it while the job runs); the store is written once a batch. An id the source does not
have is an error, and leaves the target. Errors the plan found in the job's params are
logged and counted once, when the job first starts.
"""

from __future__ import annotations

from dataclasses import replace
from functools import partial

from ..connectors import JobPlan, Op, Record
from ..models import JobStats
from ..retrying import Interrupted
from ._context import JobContext
from ._job import CHECKPOINT_VERSION, EngineResult
from ._keyed import KeyedWrites, upserts

__all__ = ["by_ids"]


def _wanted(plan: JobPlan) -> list[tuple[str, str]]:
    """The objects *plan* names, ``(entity type, id)``, in the order they are read."""
    wanted = [(plan.entity_types[0], i) for i in plan.ids or ()]
    for kind in plan.entity_types[1:]:
        wanted += [(kind, i) for i in plan.more_ids.get(kind, ())]
    return wanted


async def by_ids(ctx: JobContext, writes: KeyedWrites, plan: JobPlan) -> EngineResult:
    """Run the pass by ids of *plan* (its ``ids`` of its first entity type, then its
    ``more_ids``); resumable from the position committed after every object.

    Raises:
        Interrupted: pause or stop, at the end of a batch.
        SyncError: the source or the target failed as a whole.
    """
    wanted = _wanted(plan)
    batch = max(ctx.cfg.batch_size, 1)
    ctx.job = replace(ctx.job, stage=plan.entity_types[0])
    position = ctx.job.checkpoint or {}
    if "done" not in position:  # the first start
        for message in plan.rejected:
            await ctx.log("error", message)
        for message in plan.notes:
            await ctx.log("info", message)
        start = {"v": CHECKPOINT_VERSION, "done": 0}
        rejected = len(plan.rejected)  # processed, each with its error
        await writes.commit(
            plan.entity_types[0], (), start, JobStats(processed=rejected, errors=rejected)
        )
    n = int((ctx.job.checkpoint or {}).get("done", 0))
    while n < len(wanted):
        entity_type = wanted[n][0]
        window = wanted[n : n + batch]
        same = next((j for j, (k, _) in enumerate(window) if k != entity_type), len(window))
        chunk = [i for _, i in window[:same]]  # a batch is of one type
        ctx.job = replace(ctx.job, stage=entity_type)
        found = await ctx.call(
            ctx.source.endpoint, partial(ctx.source.get_many, entity_type, chunk)
        )
        await writes.linked_first(
            entity_type, [r.data for r in found.values() if isinstance(r, Record)]
        )
        new = set(await writes.keyed.missing(entity_type, chunk))
        async with writes.saved_on_failure(entity_type):
            for k, ident in enumerate(chunk, start=n + 1):
                item = found.get(ident)
                ops: list[Op] = []
                if isinstance(item, Record):
                    ops = upserts([item])
                    created = ident in new
                    delta = JobStats(processed=1, created=int(created), updated=int(not created))
                elif item is None:
                    await ctx.log("error", plan.missing.format(id=ident, type=entity_type))
                    ops = [Op(kind="delete", source_id=ident, target_id=ident)]
                    delta = JobStats(processed=1, errors=1, deleted=int(ident not in new))
                else:  # the source could not read it: kept as it is
                    await ctx.log("error", f"{entity_type} {ident}: {item.reason}")
                    delta = JobStats(processed=1, errors=1)
                position = {"v": CHECKPOINT_VERSION, "done": k}
                lacking = [ident] if ident in new else []
                await writes.commit(entity_type, ops, position, delta, save=False, lacking=lacking)
                # In memory: the API shows it at once, the store gets it at the batch's end.
                ctx.job = replace(ctx.job, progress=min(99.9, round(100.0 * k / len(wanted), 1)))
        await writes.save(entity_type)
        n += len(chunk)
        if ctx.control.pause_requested:
            raise Interrupted("pause")
        if ctx.control.stop_requested:
            raise Interrupted("stop")
    ctx.job = replace(ctx.job, stage=None, progress=100.0)
    return EngineResult(job=ctx.job)
