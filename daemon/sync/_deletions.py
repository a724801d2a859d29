"""Deprovisioning: objects that left the source or its scope, through the deletion gate."""

from __future__ import annotations

from collections.abc import AsyncIterator, Callable, Mapping, Sequence
from typing import Any

from ..models import JobStats, Link
from ..retrying import Interrupted
from ..store import BatchCommit, StagedDeletion
from ._commit import Applier, Committer
from ._context import JobContext
from ._decide import deprovision_op, gate_reasons
from ._escrows import Escrows
from ._job import TooManyDeletes

__all__ = [
    "Deletions",
    "compares_ids",
]

#: Links counted (and staged) per store query when a full pass gates its deletions.
_GATE_BATCH = 5000


def compares_ids(state: Mapping[str, Any]) -> bool:
    """Whether the pass whose checkpoint is *state* marks the links of what it reads and,
    if its read is complete, ends with :meth:`Deletions.delete_phase`: a full pass, or an
    incremental one whose read came whole (``whole``: every page exhaustive, from the
    first)."""
    return bool(state["full"]) or state.get("whole") is True


class Deletions:
    """Disables or deletes what left, once the deletion gate lets it."""

    def __init__(
        self, ctx: JobContext, escrows: Escrows, applier: Applier, committer: Committer
    ) -> None:
        self.ctx = ctx
        self.escrows = escrows
        self.applier = applier
        self.committer = committer
        #: Links of objects an incremental pass found out of scope, deprovisioned (through
        #: the threshold) when the read phase ends; after a complete read that came whole,
        #: the delete phase takes them (they are unseen, as in a full pass).
        self.leaving: dict[str, list[Link]] = {}
        #: Of those, the objects the source reported deleted (their escrows are gone).
        self.gone: set[tuple[str, str]] = set()

    def defer(self, entity_type: str, links: Sequence[Link], *, gone: bool = False) -> None:
        """Keep *links* (out of scope, found by an incremental read; with *gone*, of
        objects the source reported deleted) for :meth:`deprovision_leavers`."""
        self.leaving.setdefault(entity_type, []).extend(links)
        if gone:
            self.gone.update((entity_type, k.source_id) for k in links)

    async def delete_phase(
        self, entity_type: str, state: Mapping[str, Any], resume_after: str | None
    ) -> None:
        """The end of a complete pass that compares ids (:func:`compares_ids`):
        deprovision the links it did not see, a batch per commit, after gating them all
        (unless resuming after *resume_after*).

        Raises:
            TooManyDeletes: over the threshold, not approved; they are staged instead.
            Interrupted: pause or stop between batches; the checkpoint resumes here.
        """
        ctx = self.ctx
        iid, pass_id = ctx.cfg.id, state["pass_id"]
        if not ctx.mapper.allows(entity_type, "Delete"):
            return  # the mapping does not let deletions flow
        if resume_after is None:
            count = 0
            async for batch in self._unseen(entity_type, pass_id, _GATE_BATCH):
                count += len(batch)
            await self._gate(
                entity_type, count, lambda: self._unseen(entity_type, pass_id, _GATE_BATCH)
            )
        after = resume_after
        while True:
            unseen = await ctx.store.unseen_links(
                iid, entity_type, pass_id, after=after, limit=ctx.cfg.batch_size
            )
            if not unseen:
                self.gone = {g for g in self.gone if g[0] != entity_type}
                return
            if ctx.control.pause_requested:
                raise Interrupted("pause")
            after = unseen[-1].source_id
            leaving = [k for k in unseen if self._leaves(entity_type, k)]
            checkpoint = {**state, "phase": "delete", "cursor": after}
            await self._deprovision(entity_type, leaving, pass_id, checkpoint)
            if ctx.control.stop_requested:
                raise Interrupted("stop")

    async def deprovision_leavers(self, entity_type: str, state: Mapping[str, Any]) -> None:
        """An incremental pass's objects that left the source or their scope: counted
        against the threshold as a whole, then disabled or deleted. After a complete
        read that came whole, nothing: they were not seen, so its delete phase
        deprovisions them with the rest, through one count.

        Raises:
            TooManyDeletes: over the threshold, not approved; they are staged instead.
        """
        size = self.ctx.cfg.batch_size
        deferred = self.leaving.pop(entity_type, [])
        if compares_ids(state) and not state["unreadable"]:
            return  # what it reported deleted stays in ``gone`` for the delete phase
        leaving = [k for k in deferred if self._leaves(entity_type, k)]
        self.gone = {g for g in self.gone if g[0] != entity_type}
        if not leaving:
            return

        async def all_of_them() -> AsyncIterator[list[Link]]:
            yield leaving

        await self._gate(entity_type, len(leaving), all_of_them)
        for i in range(0, len(leaving), size):
            checkpoint = {**state, "phase": "read"}
            await self._deprovision(
                entity_type, leaving[i : i + size], state["pass_id"], checkpoint
            )

    def _leaves(self, entity_type: str, link: Link) -> bool:
        """Whether deprovisioning *link* now does something (and a dry run has not
        planned it already, and it is not held back by an escrow not yet due, unless the
        source reported the object deleted: its escrow is dropped)."""
        key = (entity_type, link.source_id)
        return (
            key not in self.applier.planned_out
            and (not self.escrows.held(entity_type, link.source_id) or key in self.gone)
            and deprovision_op(self.ctx.mapper, entity_type, link, now=self.ctx.clock.now())
            is not None
        )

    async def _deprovision(
        self, entity_type: str, links: Sequence[Link], pass_id: str, checkpoint: Mapping[str, Any]
    ) -> None:
        """Disable or delete *links*' objects; one store commit with *checkpoint*."""
        ctx = self.ctx
        ops = [
            op
            for k in links
            if (op := deprovision_op(ctx.mapper, entity_type, k, now=ctx.clock.now())) is not None
        ]
        hashes = {k.source_id: k.hash for k in links}
        stats, upserts, removed, failed = await self.applier.apply(entity_type, ops, hashes, None)
        now = ctx.clock.now()
        escrows = [
            self.escrows.make(
                entity_type, op.source_id, "target", f"{op.kind} failed: {reason}", pass_id, now
            )
            for op, reason in failed
        ]
        ctx.escrowed += len(escrows)
        ctx.add_stats(stats + JobStats(processed=len(ops)))
        await self.committer.commit(
            BatchCommit(
                job=ctx.with_checkpoint(checkpoint),
                entity_type=entity_type,
                upsert_links=upserts,
                delete_links=removed,
                add_escrows=escrows,
            )
        )
        self.escrows.track(entity_type, escrows, ())

    async def _unseen(self, entity_type: str, pass_id: str, size: int) -> AsyncIterator[list[Link]]:
        """The links a full pass did not see and would deprovision, in batches."""
        ctx = self.ctx
        after = None
        while batch := await ctx.store.unseen_links(
            ctx.cfg.id, entity_type, pass_id, after=after, limit=size
        ):
            after = batch[-1].source_id
            yield [k for k in batch if self._leaves(entity_type, k)]

    async def _gate(
        self,
        entity_type: str,
        count: int,
        leaving: Callable[[], AsyncIterator[list[Link]]],
    ) -> None:
        """Check *count* deprovisionings against the threshold. Over it (and not approved):
        stage them all and raise :class:`TooManyDeletes`, before anything is touched. A
        dry run adds the gate to its plan instead, and goes on."""
        if not count:
            return
        ctx = self.ctx
        iid = ctx.cfg.id
        total = await ctx.store.count_links(iid, entity_type)
        reasons = gate_reasons(count, total, ctx.cfg.deletion_threshold)
        if not reasons or ctx.deletions_approved:
            await ctx.log(
                "info",
                f"{entity_type}: {count} objects left the source or its scope; deprovisioning"
                + (" (approved)" if reasons else ""),
            )
            return
        if ctx.plan is not None:
            await ctx.plan.add(
                [
                    {
                        "action": "gate",
                        "entityType": entity_type,
                        "reason": "TooManyDeletes",
                        "message": f"a run would stop here: {count} deletions, {'; '.join(reasons)}",
                    }
                ]
            )
            return
        now = ctx.clock.now()
        async for batch in leaving():
            staged = [
                StagedDeletion(
                    integration_id=iid,
                    entity_type=entity_type,
                    source_id=k.source_id,
                    target_id=k.target_id,
                    staged_at=now,
                )
                for k in batch
            ]
            await ctx.store.commit_batch(
                BatchCommit(job=ctx.job, entity_type=entity_type, staged_deletions=staged)
            )
        raise TooManyDeletes(
            f"{count} deletions staged, not applied: {'; '.join(reasons)}. "
            "Approve with restart --scope ForceDeletes once the source is right"
        )
