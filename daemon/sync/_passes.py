"""A job's passes: one per entity type, full or incremental, checkpointed.

1. Read the source's watermark *before* reading (changes made during the pass are
   caught by the next one). A full pass reads everything; an incremental pass reads
   what changed since the stored watermark. Incremental needs a baseline: without a
   stored watermark the pass is full.
2. Retry escrowed objects that are due.
3. Read pages while the previous page is being written; each page is one batch.
4. An incremental pass deprovisions the objects that left their scope. The objects
   whose references to objects of their own type were provisioned only later in the
   pass are read again (``_rereads.py``). A full pass then deletes from the target what
   the source no longer has, through the deletion gate; so does an incremental pass
   whose read came whole (``_read.py``).
5. The watermark is stored only now, when the pass completed.

A failing entity type does not stop the others; the job then reports which failed.

Into a target keyed by source ids (``_keyed.py``) the same pass keeps no links or
escrows: its watermark is the target's when the target is transactional (an
incremental pass whose baseline the target lost is a full one), a reconciler (if the
target has one for this source) does what it owes first, surveys instead of step 1,
and compares after step 3 instead of step 4; every commit goes through the target. A
pass there that met unreadable items stores no watermark in step 5: with no escrows,
only a pass from the same baseline reads them again.
"""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import replace
from typing import Any

from ..connectors import ReconcilingTarget
from ..errors import SyncError
from ..models import JobType
from ..store import BatchCommit, StoreUnavailable
from ._commit import Committer
from ._context import JobContext
from ._deletions import Deletions, compares_ids
from ._escrows import Escrows
from ._job import CHECKPOINT_VERSION, EngineResult
from ._keyed import KeyedWrites
from ._keyedread import read_keyed
from ._read import Reader
from ._rereads import UNRESOLVED_LIMIT, Rereads, Unresolved

__all__ = [
    "Passes",
]


class Passes:
    """Runs (or continues) every pass of a job over *entity_types*."""

    def __init__(
        self,
        ctx: JobContext,
        entity_types: tuple[str, ...],
        committer: Committer,
        escrows: Escrows,
        deletions: Deletions,
        *,
        force_full: bool,
        keyed: KeyedWrites | None = None,
    ) -> None:
        self.ctx = ctx
        self.entity_types = entity_types
        self.committer = committer
        self.escrows = escrows
        self.deletions = deletions
        #: Every pass is full (the schema changed since the last full pass).
        self.force_full = force_full
        #: The writes of a target keyed by source ids (None: links are kept in the store).
        self.keyed = keyed
        target = ctx.target
        #: What finds the changes the source's reads cannot show (deletions, merges).
        self.reconciler = (
            target.reconciler(ctx.source, keyed)
            if keyed is not None and isinstance(target, ReconcilingTarget)
            else None
        )
        self.reader = Reader(
            ctx,
            escrows.decider,
            escrows.applier,
            committer,
            escrows,
            deletions,
            progress=self.set_progress,
        )
        self.rereads = Rereads(ctx, escrows)
        self._index = 0
        #: Where the job stands once the current pass completes.
        self._after: dict[str, Any] = {"v": CHECKPOINT_VERSION, "index": 1}
        self._all_full = True

    async def run(self) -> EngineResult:
        """Run (or continue) every pass of the job. Raises :class:`Interrupted` on pause or
        stop, and :class:`StoreUnavailable` when the job's record cannot be written; other
        errors of one entity type are collected in ``failed``.

        The checkpoint remembers the entity types that failed; resuming the job runs
        them again first, then continues where it was.
        """
        ctx = self.ctx
        cp = dict(ctx.job.checkpoint or {})
        if cp and cp.get("v") != CHECKPOINT_VERSION:
            cp = {}
        types = self.entity_types
        failed: dict[str, SyncError] = {}
        start = int(cp.get("index", 0))
        owed = [t for t in cp.get("failed", []) if t in types and types.index(t) < start]
        ctx.failed_types = list(owed)
        # Each pass with where the job stands once it ends. An owed pass's end takes the
        # job back to where it was: the pass in progress there resumes after its cursor.
        back = {k: v for k, v in cp.items() if k not in ("failed", "seq")}
        if not back.get("pass_id"):
            back = {"v": CHECKPOINT_VERSION, "index": start}
        plan: list[tuple[str, Mapping[str, Any] | None, dict[str, Any]]] = [
            (t, None, back) for t in owed
        ]
        plan += [
            (
                types[i],
                cp if i == start and cp.get("pass_id") else None,
                {"v": CHECKPOINT_VERSION, "index": i + 1},
            )
            for i in range(start, len(types))
        ]
        for entity_type, resume, after in plan:
            self._index = types.index(entity_type)
            self._after = after
            ctx.job = replace(ctx.job, stage=entity_type)
            try:
                await self._pass(entity_type, resume)
            except StoreUnavailable:
                raise  # the job's own record cannot be written: no other type can go on
            except SyncError as exc:
                failed[entity_type] = exc
                if entity_type not in ctx.failed_types:
                    ctx.failed_types.append(entity_type)
                await ctx.log(
                    "error", f"{entity_type}: {exc} ({exc.code}); continuing with the other types"
                )
                checkpoint = dict(after)
                if self.keyed is not None:
                    await self.keyed.commit(entity_type, (), checkpoint)
                else:
                    await self.committer.checkpoint(entity_type, checkpoint)
        await ctx.write_target(ctx.target.flush)
        ctx.job = replace(ctx.job, progress=100.0 if not failed else ctx.job.progress, stage=None)
        return EngineResult(
            job=ctx.job,
            escrowed=ctx.escrowed,
            full_pass=self._all_full and not failed,
            failed=failed,
        )

    async def _pass(self, entity_type: str, cp: Mapping[str, Any] | None) -> None:
        ctx, keyed = self.ctx, self.keyed
        if keyed is not None:
            if cp is not None and not cp.get("full") and not await keyed.watermark(entity_type):
                cp = None  # its baseline is gone (the target migrated its tables): a full pass
            if self.reconciler is not None:  # what an earlier reconciliation still owes
                await self.reconciler.owed(entity_type, keyed)
        state, phase, cursor = await self._begin(entity_type, cp)
        full = state["full"]
        if keyed is not None:
            exhaustive = await read_keyed(
                keyed, entity_type, state, state["since"], cursor, self.set_progress
            )
            self.reader.exhaustive |= exhaustive
            if self.reconciler is not None and not state["unreadable"]:
                facts = state.get("facts") or {}
                await self.reconciler.reconcile(entity_type, full=full, facts=facts, writes=keyed)
        elif phase == "read":
            if ctx.plan is None:  # a dry run writes no links: nothing would resolve
                self.escrows.decider.unresolved = Unresolved(entity_type, state)
            try:
                if cp is None:
                    await self.escrows.retry_due(entity_type, state)
                await self.reader.read(entity_type, state, state["since"], cursor)
            finally:
                self.escrows.decider.unresolved = None
            cursor = None
            if not full:
                await self.deletions.deprovision_leavers(entity_type, state)
            await self.rereads.run(entity_type, state)
        complete = not state["unreadable"]
        # An incomplete read is no full pass: it does not stand for one in the schedule
        # (a full sync still owed, for a new schema say, stays owed).
        self._all_full &= complete
        if not complete and keyed is not None:
            # It keeps no escrows: only a pass from the same baseline reads them again.
            await ctx.log(
                "warning",
                f"{entity_type}: {state['unreadable']} items of the source could not be read;"
                " the watermark stays where it was, so the next pass reads them again"
                + ("; an incomplete read deletes nothing" if full else ""),
            )
        elif full and not complete:
            await ctx.log(
                "warning",
                f"{entity_type}: {state['unreadable']} items of the source could not be read"
                " (escrowed); an incomplete read deletes, disables and deprovisions nothing",
            )
        elif keyed is None and complete and compares_ids(state):
            await self.deletions.delete_phase(
                entity_type, state, resume_after=cursor if phase == "delete" else None
            )
        watermark = state["watermark"] if complete or keyed is None else None
        if state.get("unresolved_over"):
            watermark = None
            await ctx.log(
                "warning",
                f"{entity_type}: more than {UNRESOLVED_LIMIT} objects reference {entity_type}"
                " objects that were not provisioned yet when they were written; the watermark"
                f" is dropped, so the next pass reads every {entity_type} again",
            )
        if entity_type in ctx.failed_types:  # owed no more: its completion says so
            ctx.failed_types.remove(entity_type)
        done = dict(self._after)
        batch = {
            "seen_pass": state["pass_id"],
            "pass_complete": True,
            "exhaustive": (full or self.reader.exhaustive) and complete,
            "watermark": watermark,
        }
        if keyed is not None:
            marks = {entity_type: watermark} if watermark is not None else None
            await keyed.commit(entity_type, (), done, watermarks=marks, batch=batch)
        else:
            now = ctx.clock.now()
            cleared = (
                self.escrows.cleared(entity_type, state["pass_id"], now)
                if batch["exhaustive"]
                else []
            )
            await self.committer.commit(
                BatchCommit(
                    job=ctx.with_checkpoint(done),
                    entity_type=entity_type,
                    stale_watermarks=[entity_type] if state.get("unresolved_over") else [],
                    changes=cleared,
                    **batch,
                )
            )
        await ctx.log("info", f"{entity_type}: pass complete ({ctx.stats_text()})")

    async def _begin(
        self, entity_type: str, cp: Mapping[str, Any] | None
    ) -> tuple[dict[str, Any], str, Any]:
        """Start (or resume from *cp*) a pass: full or incremental, its watermark read
        before anything else (with the facts a reconciler compares). Returns the pass's
        checkpoint, its phase and the cursor to read after."""
        ctx = self.ctx
        facts: dict[str, Any] = {}
        if cp is not None:
            pass_id, full, watermark = cp["pass_id"], bool(cp["full"]), cp.get("watermark")
            phase, cursor = cp.get("phase", "read"), cp.get("cursor")
            facts = dict(cp.get("facts") or {})
            if self.keyed is not None and cursor is not None:
                await ctx.log("info", f"{entity_type}: resuming the pass after id {cursor}")
            else:
                await ctx.log(
                    "info", f"{entity_type}: resuming the {phase} phase from the checkpoint"
                )
        else:
            stored = await self._stored(entity_type)
            # Objects that reference a type whose provisioned objects changed in this job
            # (groups whose members were just provisioned, disabled or deleted) are all
            # read again: their mapped references change although they did not. The
            # commit of those changes dropped their watermark (``Committer.commit``), so a
            # later job reads them all too if this one fails, stops or crashes before.
            newly_linked = sorted(
                t for t in ctx.mapper.references(entity_type).values() if t in self.committer.linked
            )
            full = ctx.job.type in (JobType.FULL, JobType.SELECTIVE) or self.force_full
            if newly_linked and not full:
                await ctx.log(
                    "info",
                    f"{entity_type}: reading every object again, since {', '.join(newly_linked)}"
                    " objects they may reference were provisioned or deprovisioned",
                )
            full = full or stored is None or bool(newly_linked)
            pass_id = f"{ctx.job.id}:{entity_type}"
            if self.reconciler is not None:  # its requests go through ``Writes.call``
                survey = await self.reconciler.survey(entity_type)
                watermark, facts = survey.watermark, dict(survey.facts)
            else:
                watermark = await ctx.call(
                    ctx.source.endpoint, lambda: ctx.source.watermark(entity_type)
                )
            phase, cursor = "read", None
            kind = "full" if full else "incremental"
            await ctx.log("info", f"{entity_type}: {kind} pass started")
        self._all_full &= full
        self.reader.exhaustive = False  # set when a page says the read covers everything
        if cp is not None and "since" in cp:
            since = cp["since"]  # the pass's own baseline, even if dropped since
        else:
            since = None if full else await self._stored(entity_type)
        state = {
            "v": CHECKPOINT_VERSION,
            "index": self._index,
            "pass_id": pass_id,
            "full": full,
            "watermark": watermark,
            "since": since,
            # Items the read could not make out (Malformed): it is then incomplete.
            "unreadable": int(cp.get("unreadable", 0)) if cp is not None else 0,
        }
        if facts:
            state["facts"] = facts
        for key in ("unresolved", "unresolved_over"):  # owed by the pass (``_rereads.py``)
            if cp is not None and cp.get(key):
                state[key] = cp[key]
        if cp is not None and "whole" in cp:
            state["whole"] = cp["whole"]  # the incremental read came whole so far
        if self.keyed is None:
            await self.escrows.load(entity_type)
        else:
            state["cursor"] = cursor
        return state, phase, cursor

    async def _stored(self, entity_type: str) -> str | None:
        """The watermark of *entity_type*'s last completed pass."""
        if self.keyed is not None:
            return await self.keyed.watermark(entity_type)
        return (await self.ctx.store.get_watermarks(self.ctx.cfg.id)).get(entity_type)

    def set_progress(self, fraction: float) -> None:
        """Set the job's progress: *fraction* of the current entity type read, and an
        estimated completion from the time spent so far."""
        ctx = self.ctx
        n = len(self.entity_types)
        progress = round(min(99.9, 100.0 * (self._index + max(0.0, min(fraction, 1.0))) / n), 1)
        estimated = None
        started = ctx.job.started_at
        if started is not None and progress > 0:
            elapsed = ctx.clock.now() - started
            estimated = started + elapsed * (100.0 / progress)
        ctx.job = replace(ctx.job, progress=progress, estimated_completion=estimated)
