"""A pass's reads into a target keyed by source ids: each page of the source written
with the job's checkpoint in one commit (:class:`._keyed.KeyedWrites`)."""

from __future__ import annotations

from typing import Any

from ..connectors import Gone, Page, Record
from ..models import JobStats
from ..retrying import Interrupted
from ._keyed import KeyedWrites, deletions, upserts
from ._pipeline import read_pages

__all__ = ["read_keyed"]


async def read_keyed(
    writes: KeyedWrites,
    entity_type: str,
    state: dict[str, Any],
    since: str | None,
    cursor: Any,
    progress: Any,
) -> bool:
    """Read every page of *entity_type* (changes *since*, after *cursor*) and write it with
    *writes*,
    a commit a page; *state* (the pass's checkpoint) follows the cursor. An
    incremental pass deletes the objects of the page's Gone items in the page's
    commit. Returns whether a page said the read covers everything.

    Raises:
        Interrupted: pause or stop, after the page in hand.
        SyncError: the source or the target failed as a whole.
    """
    ctx = writes.ctx
    exhaustive = False

    async def on_page(page: Page) -> None:
        nonlocal exhaustive
        exhaustive |= page.exhaustive
        records = [i for i in page.items if isinstance(i, Record)]
        gone = [i.id for i in page.items if isinstance(i, Gone)]
        unreadable = len(page.items) - len(records) - len(gone)
        state["unreadable"] = state.get("unreadable", 0) + unreadable
        cursors = [i.cursor for i in page.items if i.cursor is not None]
        if cursors:
            state["cursor"] = cursors[-1]
        await writes.linked_first(entity_type, [r.data for r in records])
        lacking = await writes.keyed.missing(entity_type, [r.id for r in records])
        created = len(lacking)
        deletes = [] if state["full"] else deletions(gone, records)
        absent = (
            await writes.keyed.missing(entity_type, [op.source_id for op in deletes])
            if deletes
            else []
        )
        deleted = len(deletes) - len(absent)
        delta = JobStats(
            processed=len(page.items),
            created=created,
            updated=len(records) - created,
            deleted=deleted,
            skipped=len(gone) - deleted,
            errors=unreadable,
        )
        if page.fraction is not None:
            progress(page.fraction)
        ops = [*upserts(records), *deletes]
        await writes.commit(
            entity_type, ops, {**state, "phase": "read"}, delta, lacking=[*lacking, *absent]
        )
        if ctx.control.pause_requested:
            raise Interrupted("pause")
        if ctx.control.stop_requested:
            raise Interrupted("stop")

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
    return exhaustive
