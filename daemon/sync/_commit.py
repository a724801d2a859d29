"""Writing a batch: ops to the target, then links, escrows, the job and the
provisioning log's changes in one commit.

The changes of the ops applied are staged until the commit that carries their links:
each is committed with its link (or the link's removal), so the log holds what the
links hold, however a job ends (a crash before that commit redoes the ops, and logs
them then). The escrows a commit adds are logged with it.

Provisioned objects that change (created, adopted, enabled, disabled, deleted) change
how references to them resolve: the commit of those link changes also drops the
watermarks of the entity types referencing them.
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from dataclasses import replace
from typing import Any

from ..changes import Change, hide_plan_secrets
from ..connectors import Op, OpResult
from ..models import JobStats, Link
from ..store import BatchCommit
from . import _changes
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
        #: Applied ops (by entity type, with their target ids), for the commit of their
        #: links, which logs them.
        self.staged: list[tuple[str, Op, str | None]] = []

    @property
    def logging(self) -> bool:
        """Whether this job writes the provisioning log: a real run, kept for a while."""
        ctx = self.ctx
        return ctx.plan is None and ctx.cfg.changes_retention.total_seconds() > 0

    def stage(self, entity_type: str, done: Sequence[tuple[Op, str | None]]) -> None:
        """Keep the ops *done* (each with its target id) for the next commit carrying
        their links, which logs them."""
        self.staged += [(entity_type, op, target_id) for op, target_id in done]

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
        staged, self.staged = self.staged, []
        if self.logging:
            batch = replace(batch, changes=[*batch.changes, *self._logged(batch, staged)])
        committed = set(self.relinked)
        await ctx.store.commit_batch(batch)
        self.relinked -= committed

    def _logged(
        self, batch: BatchCommit, staged: Sequence[tuple[str, Op, str | None]]
    ) -> list[Change]:
        """The changes *batch* commits, at the job's time now: those of the staged ops
        whose links it writes or removes (any other was not committed, and is done
        again), and its escrows."""
        ctx = self.ctx
        written = {k.source_id for k in batch.upsert_links}
        removed = set(batch.delete_links)
        done = [
            (op, target_id)
            for entity_type, op, target_id in staged
            if entity_type == batch.entity_type
            and (op.source_id in removed if op.kind == "delete" else op.source_id in written)
        ]
        now = ctx.clock.now()
        secrets = ctx.mapper.secrets(batch.entity_type)
        out = _changes.applied(ctx.cfg.id, ctx.job.id, batch.entity_type, done, now, secrets)
        return out + _changes.escrowed(ctx.job.id, batch.add_escrows, now)

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
            secrets = ctx.mapper.secrets(entity_type)
            await ctx.plan.add(
                [hide_plan_secrets(plan_entry(entity_type, op), secrets) for op in ops]
            )
            results: Sequence[OpResult] = [OpResult(ok=True, target_id=op.target_id) for op in ops]
        else:
            target_type = ctx.mapper.target_type(entity_type)
            results = await ctx.write_target(lambda: ctx.target.apply(target_type, ops))
        now = ctx.clock.now()
        counts = {"create": 0, "update": 0, "delete": 0, "disable": 0}
        upserts: list[Link] = []
        removed: list[str] = []
        failed: list[tuple[Op, str]] = []
        relinked = False
        done: list[tuple[Op, str | None]] = []
        for op, res in zip(ops, results, strict=True):
            if not res.ok:
                failed.append((op, res.error or "the target refused the object"))
                continue
            done.append((op, res.target_id or op.target_id))
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
        if self.committer.logging and done:
            self.committer.stage(entity_type, done)
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
