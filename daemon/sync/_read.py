"""A pass's read phase: each page mapped, decided, applied and committed as one batch.

An incremental read's :class:`~sluiced.connectors.Gone` items are objects that left the
source: their links are deprovisioned with those that left the scope (through the
deletion threshold, when the read phase ends) and their escrows dropped. A Gone with no
link to deprovision is counted as skipped; a full read's Gone items change nothing
(its delete phase deprovisions what it did not see) and are skipped too.

An incremental read whose pages all say they are ``exhaustive``, from its first, came
whole (the source could not tell what changed): like a full read it marks what it sees,
and its pass ends with the delete phase (``_deletions.compares_ids``). The checkpoint
keeps ``whole`` (None until the first page), so a resumed read goes on by the same rule.
"""

from __future__ import annotations

from collections.abc import Callable, Mapping, Sequence
from typing import Any

from ..connectors import Gone, Page, Record
from ..models import Escrow, JobStats, Link
from ..retrying import Interrupted
from ..store import BatchCommit
from ._commit import Applier, Committer
from ._context import JobContext
from ._decide import Decisions, deprovision_op
from ._decider import Decider
from ._deletions import Deletions, compares_ids
from ._escrows import Escrows
from ._pipeline import read_pages

__all__ = [
    "Reader",
]


class Reader:
    """Reads a pass's pages through the pipeline and commits a batch per page."""

    def __init__(
        self,
        ctx: JobContext,
        decider: Decider,
        applier: Applier,
        committer: Committer,
        escrows: Escrows,
        deletions: Deletions,
        progress: Callable[[float], None],
    ) -> None:
        self.ctx = ctx
        self.decider = decider
        self.applier = applier
        self.committer = committer
        self.escrows = escrows
        self.deletions = deletions
        self.progress = progress
        #: A page of the current pass said the read covers everything.
        self.exhaustive = False

    async def read(
        self, entity_type: str, state: dict[str, Any], since: str | None, cursor: Any
    ) -> None:
        """Read and apply every page of *entity_type* (changes *since*, after *cursor*);
        *state* (the checkpoint) follows the cursor and counts the unreadable items.

        Raises:
            Interrupted: pause (at an object boundary) or stop (after the batch).
            SyncError: the source or the target failed as a whole.
        """
        ctx = self.ctx
        if not state["full"] and cursor is not None and state.get("whole") is None:
            state["whole"] = False  # resumed with no word of how the read began

        async def on_page(page: Page) -> None:
            await self._apply_page(entity_type, state, page)

        await read_pages(
            ctx.source,
            entity_type,
            since=since,
            cursor=cursor,
            page_size=ctx.cfg.batch_size,
            retry=ctx.cfg.retry,
            log=ctx.log,
            on_page=on_page,
            name=f"read {ctx.cfg.id}/{entity_type}",
        )

    async def _apply_page(self, entity_type: str, state: dict[str, Any], page: Page) -> None:
        ctx, escrows, decider = self.ctx, self.escrows, self.decider
        full, pass_id = state["full"], state["pass_id"]
        self.exhaustive |= page.exhaustive
        if not full:
            await self._whole(entity_type, state, page)
        seen = compares_ids(state)  # the links of what it read are marked with the pass
        now = ctx.clock.now()
        all_records = [i for i in page.items if isinstance(i, Record)]
        wanted = [r.id for r in all_records]
        if not full and len(all_records) < len(page.items):
            wanted += [i.id for i in page.items if isinstance(i, Gone)]
        links = await ctx.store.get_links(ctx.cfg.id, entity_type, wanted)
        records: list[Record] = []
        mapped: dict[str, Mapping[str, Any] | None] = {}
        d = Decisions()
        add_escrows: list[Escrow] = []
        processed = errors = 0
        held: list[str] = []
        gone: list[str] = []
        cursor: Any = None
        paused = False
        control, map_into, pace = ctx.control, decider.map_into, ctx.mapper.pace
        for item in page.items:
            if control.pause_requested:
                paused = True
                break
            cursor = item.cursor if item.cursor is not None else cursor
            processed += 1
            if isinstance(item, Record):
                if escrows.current and escrows.held(entity_type, item.id):
                    held.append(item.id)  # still in error; kept (not deleted) until retried
                else:
                    records.append(item)
                    map_into(mapped, d, entity_type, item, creating=item.id not in links)
                    await pace()
            elif isinstance(item, Gone):
                gone.append(item.id)
            else:
                add_escrows.append(
                    escrows.make(entity_type, item.key, "source", item.reason, pass_id, now)
                )
                errors += 1
        await decider.decide(entity_type, records, links, mapped, d, defer_leaving=True)
        if not full:  # a full pass leaves them unseen: its delete phase deprovisions them
            self.deletions.defer(entity_type, d.leaving)
        gone_escrows, gone_skipped = self._gone(entity_type, gone, links, full, records, held)
        for sid, (kind, reason) in d.problems.items():
            add_escrows.append(escrows.make(entity_type, sid, kind, reason, pass_id, now))
        stats, upserts, removed, failed = await self.applier.apply(
            entity_type, d.ops, d.hashes, pass_id if seen else None
        )
        for op, reason in failed:
            add_escrows.append(
                escrows.make(entity_type, op.source_id, "target", reason, pass_id, now)
            )
        failed_ids = {op.source_id for op, _ in failed}
        remove_escrows = (
            [
                i
                for i in (*d.unchanged, *(op.source_id for op in d.ops))
                if escrows.escrowed(entity_type, i) and i not in failed_ids
            ]
            if escrows.current  # none at all: nothing to look up per object
            else []
        ) + gone_escrows
        if held:
            await ctx.log(
                "info",
                f"{entity_type}: {len(held)} escrowed objects held back until their retry is due",
            )
        ctx.escrowed += len(add_escrows)
        unreadable = errors  # so far, the Malformed items
        state["unreadable"] = state.get("unreadable", 0) + unreadable
        # Held back: in error still (counted once per job: a failed retry counted already).
        errors += len(d.problems) + len(set(held) - escrows.retried.get(entity_type, set()))
        skipped = len(d.unchanged) + gone_skipped
        stats = stats + JobStats(processed=processed, skipped=skipped, errors=errors)
        if page.fraction is not None:
            self.progress(page.fraction)
        new_state = {
            **state,
            "phase": "read",
            "cursor": cursor if cursor is not None else state.get("cursor"),
        }
        state["cursor"] = new_state["cursor"]
        ctx.add_stats(stats)
        await self.committer.commit(
            BatchCommit(
                job=ctx.with_checkpoint(new_state),
                entity_type=entity_type,
                upsert_links=upserts,
                delete_links=removed,
                seen_pass=pass_id if seen else None,
                seen_ids=[*d.seen, *held] if seen else [],
                add_escrows=add_escrows,
                remove_escrows=remove_escrows,
                changes=escrows.ended(
                    entity_type,
                    [i for i in gone_escrows if i not in links],
                    d.unchanged,
                    now,
                ),
            )
        )
        escrows.track(entity_type, add_escrows, remove_escrows)
        if paused:
            raise Interrupted("pause")
        if ctx.control.stop_requested:
            raise Interrupted("stop")

    async def _whole(self, entity_type: str, state: dict[str, Any], page: Page) -> None:
        """Keep in *state* whether the incremental read came whole so far: its first
        *page* and every one after exhaustive."""
        whole = state.get("whole")
        state["whole"] = page.exhaustive if whole is None else whole and page.exhaustive
        if state["whole"] and whole is None:
            await self.ctx.log(
                "info",
                f"{entity_type}: the source reads every object (it cannot tell what changed);"
                " what it does not read is deprovisioned at the end, as in a full pass",
            )

    def _gone(
        self,
        entity_type: str,
        ids: list[str],
        links: Mapping[str, Link],
        full: bool,
        records: Sequence[Record],
        held: Sequence[str],
    ) -> tuple[list[str], int]:
        """Take a page's :class:`Gone` *ids*: in an incremental read, defer the
        deprovisioning of their links with those that left the scope. Returns the ids
        whose escrows go (the objects are gone) and how many of *ids* need nothing (no
        link, a full read, or also read as a record in the page: *records*, *held*)."""
        if not ids:
            return [], 0
        read = {*held, *(r.id for r in records)}
        taken = [] if full else [i for i in dict.fromkeys(ids) if i not in read]
        now, mapper = self.ctx.clock.now(), self.ctx.mapper
        leaving = [
            links[i]
            for i in taken
            if i in links and deprovision_op(mapper, entity_type, links[i], now=now) is not None
        ]
        self.deletions.defer(entity_type, leaving, gone=True)
        escrows = self.escrows
        dropped = [i for i in taken if escrows.current and escrows.escrowed(entity_type, i)]
        return dropped, len(ids) - len(leaving)
