"""References to objects of the pass's own entity type (a user's ``manager``), read
again at the pass's end.

A reference resolves through the link of the referenced object. In a pass over users,
a manager later in the read order (or in the same batch) has no link yet when the users
who report to them are decided: their ``manager`` is left out. The decider notes those
objects (:class:`Unresolved`); once the read is done, the ones whose references now have
a link are read again by id and decided again (:class:`Rereads`), before the pass's
watermark is stored. A reference to an object that is escrowed, out of scope or not in
the source stays unresolved and reads nothing again; the objects read again note
nothing, so this never loops.

What is owed is kept in the pass's checkpoint, so that a pause, a stop or a crash
before the read again loses nothing. Beyond :data:`UNRESOLVED_LIMIT` objects the pass
keeps none and stores no watermark instead: its next pass reads every object again.
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from typing import TYPE_CHECKING, Any

from ..connectors import Record
from ..models import Escrow, JobStats
from ..retrying import Interrupted
from ..store import BatchCommit
from ._context import JobContext
from ._decide import Decisions
from ._deletions import compares_ids

if TYPE_CHECKING:
    from ._escrows import Escrows

__all__ = [
    "UNRESOLVED_LIMIT",
    "Rereads",
    "Unresolved",
]

#: How many objects a pass reads again at most; beyond, its next pass reads them all.
UNRESOLVED_LIMIT = 1000


class Unresolved:
    """The objects of the pass over *entity_type* whose references to objects of that
    type found no link: source id → the ids left out. Kept in *state* (the pass's
    checkpoint) as ``unresolved``, or ``unresolved_over`` once there are too many."""

    def __init__(self, entity_type: str, state: dict[str, Any]) -> None:
        self.entity_type = entity_type
        self.state = state
        self.limit = UNRESOLVED_LIMIT
        self.pending: dict[str, list[str]] = {
            str(k): list(v) for k, v in (state.get("unresolved") or {}).items()
        }
        self._changed = False

    def note(self, source_id: str, refs: Sequence[str]) -> None:
        """Note that *source_id*'s references *refs* found no link."""
        if self.state.get("unresolved_over"):
            return
        if source_id not in self.pending and len(self.pending) >= self.limit:
            self.pending.clear()
            self.state.pop("unresolved", None)
            self.state["unresolved_over"] = True
            self._changed = False
            return
        self.pending[source_id] = list(refs)
        self._changed = True

    def save(self) -> None:
        """Put what was noted into the pass's checkpoint (a copy: a commit keeps it)."""
        if self._changed:
            self.state["unresolved"] = {k: list(v) for k, v in self.pending.items()}
            self._changed = False


class Rereads:
    """Reads again, by id, the objects whose references resolve only now."""

    def __init__(self, ctx: JobContext, escrows: Escrows) -> None:
        self.ctx = ctx
        self.escrows = escrows

    async def run(self, entity_type: str, state: dict[str, Any]) -> None:
        """Read again and decide the objects noted in *state* whose references now have
        a link, a batch at a time, each batch committed with what is still owed.

        Raises:
            Interrupted: pause or stop between batches; the checkpoint resumes here.
            SyncError: the source or the target failed as a whole.
        """
        ctx, escrows = self.ctx, self.escrows
        pending: dict[str, list[str]] = dict(state.get("unresolved") or {})
        if not pending or ctx.plan is not None:  # a dry run writes no links: none resolve
            state.pop("unresolved", None)
            return
        refs = {r for ids in pending.values() for r in ids}
        linked = {
            sid
            for sid, link in (await ctx.store.get_links(ctx.cfg.id, entity_type, refs)).items()
            if link.disabled_at is None
        }
        due = [
            sid
            for sid, ids in pending.items()
            if linked.intersection(ids) and not escrows.escrowed(entity_type, sid)
        ]
        if due:
            await ctx.log(
                "info",
                f"{entity_type}: reading {len(due)} objects again, whose references to"
                f" {entity_type} objects provisioned in this pass resolve now",
            )
        size = max(ctx.cfg.batch_size, 1)
        for n in range(0, len(due), size):
            chunk = due[n : n + size]
            rest = {sid: pending[sid] for sid in due[n + size :]}
            if rest:
                state["unresolved"] = rest
            else:
                state.pop("unresolved", None)
            await self._batch(entity_type, state, chunk)
            if ctx.control.pause_requested:
                raise Interrupted("pause")
            if ctx.control.stop_requested:
                raise Interrupted("stop")
        state.pop("unresolved", None)

    async def _batch(self, entity_type: str, state: Mapping[str, Any], ids: list[str]) -> None:
        ctx, escrows = self.ctx, self.escrows
        decider, applier = escrows.decider, escrows.applier
        seen, pass_id = compares_ids(state), state["pass_id"]  # the read saw them
        found = await ctx.call(ctx.source.endpoint, lambda: ctx.source.get_many(entity_type, ids))
        links = await ctx.store.get_links(ctx.cfg.id, entity_type, ids)
        # Gone or unreadable since: the next pass meets them as it meets any other.
        records = [r for r in (found.get(i) for i in ids) if isinstance(r, Record)]
        mapped: dict[str, Mapping[str, Any] | None] = {}
        d = Decisions()
        for rec in records:
            decider.map_into(mapped, d, entity_type, rec, creating=rec.id not in links)
            await ctx.mapper.pace()
        # Those that left the scope since are left to the next pass and its deletion gate.
        await decider.decide(entity_type, records, links, mapped, d, defer_leaving=True)
        now = ctx.clock.now()
        add: list[Escrow] = [
            escrows.make(entity_type, sid, kind, reason, pass_id, now)
            for sid, (kind, reason) in d.problems.items()
        ]
        stats, upserts, removed, failed = await applier.apply(
            entity_type, d.ops, d.hashes, pass_id if seen else None
        )
        add += [
            escrows.make(entity_type, op.source_id, "target", reason, pass_id, now)
            for op, reason in failed
        ]
        ctx.escrowed += len(add)
        ctx.add_stats(stats + JobStats(errors=len(d.problems)))
        await escrows.committer.commit(
            BatchCommit(
                job=ctx.with_checkpoint({**state, "phase": "read"}),
                entity_type=entity_type,
                upsert_links=upserts,
                delete_links=removed,
                add_escrows=add,
            )
        )
        escrows.track(entity_type, add, ())
