"""Escrows: objects that failed, held back and retried with a growing backoff."""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from datetime import datetime, timedelta
from typing import Any

from ..backoff import backoff_delay
from ..changes import SETTLED, SOURCE_GONE, UNREAD, Change, dropped
from ..connectors import Malformed, Record
from ..models import Escrow, JobStats
from ..redact import redact_text
from ..store import BatchCommit
from ._commit import Applier, Committer
from ._context import JobContext
from ._decide import Decisions, deprovision_op
from ._decider import Decider

__all__ = [
    "Escrows",
]


class Escrows:
    """The escrows of the current pass, kept as the store has them, and the objects
    retried in this job."""

    def __init__(
        self, ctx: JobContext, decider: Decider, applier: Applier, committer: Committer
    ) -> None:
        self.ctx = ctx
        self.decider = decider
        self.applier = applier
        self.committer = committer
        #: Escrows by (entity type, object id): those of the current pass, kept current.
        self.current: dict[tuple[str, str], Escrow] = {}
        #: Per entity type: the escrowed objects retried in this job.
        self.retried: dict[str, set[str]] = {}

    async def load(self, entity_type: str, object_id: str | None = None) -> None:
        """Make the store's escrows of *entity_type* (only *object_id*'s, if given) the
        current ones."""
        ctx = self.ctx
        self.current = {
            (entity_type, e.object_id): e
            for e in await ctx.store.list_escrows(ctx.cfg.id, entity_type=entity_type)
            if object_id is None or e.object_id == object_id
        }

    def escrowed(self, entity_type: str, object_id: str) -> bool:
        """Whether *object_id* has a current escrow."""
        return (entity_type, object_id) in self.current

    def make(
        self,
        entity_type: str,
        object_id: str,
        kind: str,
        reason: str,
        pass_id: str,
        now: datetime,
    ) -> Escrow:
        """The escrow of a failure of *object_id* now: attempt one, or the next attempt
        of the escrow it already has (its backoff grows)."""
        cfg = self.ctx.cfg
        previous = self.current.get((entity_type, object_id))
        attempts = previous.attempts + 1 if previous else 1
        delay = backoff_delay(
            attempts, base=cfg.escrow.base.total_seconds(), cap=cfg.escrow.cap.total_seconds()
        )
        return Escrow(
            integration_id=cfg.id,
            entity_type=entity_type,
            object_id=object_id,
            kind=kind,
            reason=redact_text(reason),
            attempts=attempts,
            first_failed=previous.first_failed if previous else now,
            last_failed=now,
            next_retry=now + timedelta(seconds=delay),
            pass_id=pass_id,
        )

    def _dropped(
        self,
        due: Sequence[Escrow],
        done: Sequence[str],
        found: Mapping[str, object],
        d: Decisions,
        now: datetime,
    ) -> list[Change]:
        """The ``drop`` changes of the retried escrows *done* that no op applied: the
        source object is gone (with nothing to deprovision), or nothing is left to
        apply (out of scope, or the target holds it already). A source problem is not
        one (the next exhaustive read escrows it again). None when the job writes no
        log."""
        if not self.committer.logging:
            return []
        unsettled = {op.source_id for op in d.ops} | d.problems.keys()
        settled = set(done) - unsettled
        return [
            dropped(
                e,
                at=now,
                reason=SOURCE_GONE if e.object_id not in found else SETTLED,
                job_id=self.ctx.job.id,
            )
            for e in due
            if e.object_id in settled
        ]

    def ended(
        self, entity_type: str, gone: Sequence[str], settled: Sequence[str], now: datetime
    ) -> list[Change]:
        """The ``drop`` changes of the current escrows of the objects *gone* from the
        source with nothing to deprovision, and of those *settled* (nothing left to
        apply), which a commit removes. None when the job writes no log."""
        if not self.committer.logging or not self.current:
            return []
        out = []
        for ids, reason in ((gone, SOURCE_GONE), (settled, SETTLED)):
            for i in ids:
                e = self.current.get((entity_type, i))
                if e is not None:
                    out.append(dropped(e, at=now, reason=reason, job_id=self.ctx.job.id))
        return out

    def cleared(self, entity_type: str, pass_id: str, now: datetime) -> list[Change]:
        """The ``drop`` changes of the source escrows of *entity_type* that the complete,
        exhaustive pass *pass_id* did not meet again: its commit clears them (the
        source no longer has what it could not read). None when the job writes no
        log."""
        stale = [
            e
            for (t, _), e in self.current.items()
            if t == entity_type and e.kind == "source" and e.pass_id != pass_id
        ]
        self.track(entity_type, (), [e.object_id for e in stale])
        if not self.committer.logging:
            return []
        return [dropped(e, at=now, reason=UNREAD, job_id=self.ctx.job.id) for e in stale]

    def held(self, entity_type: str, object_id: str) -> bool:
        """Whether *object_id* has a target escrow whose retry is not due yet: nothing is
        sent for it until then."""
        e = self.current.get((entity_type, object_id))
        return e is not None and e.kind == "target" and e.next_retry > self.ctx.clock.now()

    def track(self, entity_type: str, added: Sequence[Escrow], removed: Sequence[str]) -> None:
        """Keep the pass's escrows as the store has them after a commit."""
        if self.ctx.plan is not None:
            return  # a dry run writes no escrows
        for i in removed:
            self.current.pop((entity_type, i), None)
        for e in added:
            self.current[(entity_type, e.object_id)] = e

    async def retry_due(self, entity_type: str, state: Mapping[str, Any]) -> None:
        """Retry the target escrows that are due, a batch at a time, each once: read
        again from the source by id, then applied; a failure is the escrow's next attempt.

        Raises:
            SyncError: the source or the target failed as a whole.
        """
        ctx = self.ctx
        tried = self.retried.setdefault(entity_type, set())
        while True:
            now = ctx.clock.now()
            due = [
                e
                for e in await ctx.store.list_escrows(
                    ctx.cfg.id,
                    entity_type=entity_type,
                    kind="target",
                    due_before=now,
                    limit=ctx.cfg.batch_size + len(tried),
                )
                if e.object_id not in tried
            ][: ctx.cfg.batch_size]
            if not due:
                return
            tried.update(e.object_id for e in due)
            await self._retry_batch(entity_type, state, due, now)

    async def _retry_batch(
        self, entity_type: str, state: Mapping[str, Any], due: Sequence[Escrow], now: datetime
    ) -> None:
        ctx, decider = self.ctx, self.decider
        await ctx.log("info", f"{entity_type}: retrying {len(due)} escrowed objects")
        ids = [e.object_id for e in due]
        found = await ctx.call(ctx.source.endpoint, lambda: ctx.source.get_many(entity_type, ids))
        links = await ctx.store.get_links(ctx.cfg.id, entity_type, ids)
        records = [r for r in (found.get(i) for i in ids) if isinstance(r, Record)]
        mapped: dict[str, Mapping[str, Any] | None] = {}
        d = Decisions()
        for i in ids:  # the source could not read it: it stays escrowed, never taken for gone
            item = found.get(i)
            if isinstance(item, Malformed):
                d.problems[i] = ("target", f"the source could not read it: {item.reason}")
        for rec in records:
            decider.map_into(mapped, d, entity_type, rec, creating=rec.id not in links)
            await ctx.mapper.pace()
        await decider.decide(entity_type, records, links, mapped, d)
        for i in ids:
            link = links.get(i)
            if i not in found and link is not None:  # gone from the source
                op = deprovision_op(ctx.mapper, entity_type, link, now=ctx.clock.now())
                if op is not None:
                    d.ops.append(op)
                    d.hashes[i] = link.hash
        stats, upserts, removed, failed = await self.applier.apply(
            entity_type, d.ops, d.hashes, None
        )
        reasons = [(op.source_id, reason) for op, reason in failed]
        # A source problem is escrowed again by the next exhaustive read; ambiguity stays.
        reasons += [(i, r) for i, (kind, r) in d.problems.items() if kind == "target"]
        again = [self.make(entity_type, i, "target", r, state["pass_id"], now) for i, r in reasons]
        done = [i for i in ids if i not in {r[0] for r in reasons}]
        ctx.add_stats(stats + JobStats(processed=len(due)))
        await self.committer.commit(
            BatchCommit(
                job=ctx.with_checkpoint({**state, "phase": "read", "cursor": None}),
                entity_type=entity_type,
                upsert_links=upserts,
                delete_links=removed,
                add_escrows=again,
                remove_escrows=done,
                changes=self._dropped(due, done, found, d, now),
            )
        )
        self.track(entity_type, again, done)
        ctx.escrowed += len(again)
