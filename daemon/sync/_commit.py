"""Writing a batch: ops to the target, then links, escrows and the job in one commit.

Provisioned objects that change (created, adopted, enabled, disabled, deleted) change
how references to them resolve: the commit of those link changes also drops the
watermarks of the entity types referencing them.
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from dataclasses import replace
from typing import Any

from ..connectors import Op, OpResult
from ..models import JobStats, Link
from ..store import BatchCommit
from ._context import JobContext
from ._decide import plan_entry

__all__ = [
    "Applier",
    "Committer",
]


class Committer:
    """Commits batches for one job and remembers which entity types were relinked."""

    def __init__(self, ctx: JobContext) -> None:
        self.ctx = ctx
        #: Entity types whose provisioned objects changed in this job: created, adopted,
        #: enabled again, disabled or deleted (references to them resolve differently).
        self.linked: set[str] = set()
        #: Those of them whose link changes the store has not committed yet: the next
        #: commit drops the watermarks of the types referencing them.
        self.relinked: set[str] = set()

    def relink(self, entity_type: str) -> None:
        """Note that a provisioned object of *entity_type* changed."""
        self.linked.add(entity_type)
        self.relinked.add(entity_type)

    async def commit(self, batch: BatchCommit) -> None:
        """Commit *batch*; a dry run keeps only the job's progress and the seen marks.

        With the link changes of provisioned objects, the same commit drops the watermarks
        of the entity types referencing them (a group's ``members`` of changed users):
        the next pass of those types reads every object, even if this job fails, stops
        or crashes before it gets there.
        """
        ctx = self.ctx
        if ctx.plan is not None:
            batch = replace(
                batch,
                upsert_links=[],
                delete_links=[],
                add_escrows=[],
                remove_escrows=[],
                pass_complete=False,
                stale_watermarks=[],
            )
            self.relinked.clear()
        elif self.relinked:
            stale = sorted(
                t
                for t in ctx.cfg.entity_types
                if self.relinked & set(ctx.mapper.references(t).values())
            )
            batch = replace(batch, stale_watermarks=sorted({*batch.stale_watermarks, *stale}))
        committed = set(self.relinked)
        await ctx.store.commit_batch(batch)
        self.relinked -= committed

    async def checkpoint(self, entity_type: str, checkpoint: Mapping[str, Any]) -> None:
        """Commit the job with *checkpoint* and nothing else."""
        await self.commit(
            BatchCommit(job=self.ctx.with_checkpoint(checkpoint), entity_type=entity_type)
        )


class Applier:
    """Applies ops to the target, or in a dry run adds them to the plan."""

    def __init__(self, ctx: JobContext, committer: Committer) -> None:
        self.ctx = ctx
        self.committer = committer
        #: A dry run keeps no links: what it deprovisioned, for the delete phase.
        self.planned_out: set[tuple[str, str]] = set()

    async def apply(
        self, entity_type: str, ops: Sequence[Op], hashes: Mapping[str, str], seen_pass: str | None
    ) -> tuple[JobStats, list[Link], list[str], list[tuple[Op, str]]]:
        """Apply *ops* (in a dry run: add them to the plan); returns stats, links to
        upsert, source ids deleted, and failures (op, reason).

        Raises:
            SyncError: the target failed as a whole, after retries.
        """
        ctx = self.ctx
        if not ops:
            return JobStats(), [], [], []
        if ctx.plan is not None:
            self.planned_out.update(
                (entity_type, op.source_id) for op in ops if op.kind in ("disable", "delete")
            )
            await ctx.plan.add([plan_entry(entity_type, op) for op in ops])
            results: Sequence[OpResult] = [OpResult(ok=True, target_id=op.target_id) for op in ops]
        else:
            target_type = ctx.mapper.target_type(entity_type)
            results = await ctx.call(
                ctx.target.endpoint, lambda: ctx.target.apply(target_type, ops)
            )
        now = ctx.clock.now()
        counts = {"create": 0, "update": 0, "delete": 0, "disable": 0}
        upserts: list[Link] = []
        removed: list[str] = []
        failed: list[tuple[Op, str]] = []
        relinked = False
        for op, res in zip(ops, results, strict=True):
            if not res.ok:
                failed.append((op, res.error or "the target refused the object"))
                continue
            kind, previous, data = op.kind, op.previous, op.data
            counts[kind] += 1
            relinked = relinked or kind != "update" or previous is None or op.enable
            if kind == "delete":
                removed.append(op.source_id)
                continue
            if not previous:  # what was exported is what the op wrote, as it was encoded
                exported, encoded = data if data is not None else {}, op.encoded
            else:
                exported = {**previous, **(data or {})}
                encoded = op.encoded if previous.keys() <= (data or {}).keys() else None
            upserts.append(
                Link(
                    source_id=op.source_id,
                    target_id=res.target_id or op.target_id or op.source_id,
                    hash=hashes[op.source_id],
                    seen_pass=seen_pass,
                    data=exported,
                    disabled_at=now if kind == "disable" else None,
                    encoded=encoded,
                )
            )
        if relinked:
            self.committer.relink(entity_type)
        stats = JobStats(
            created=counts["create"],
            updated=counts["update"],
            deleted=counts["delete"],
            disabled=counts["disable"],
            errors=len(failed),
        )
        if ctx.plan is not None:
            return stats, [], [], []
        return stats, upserts, removed, failed
