"""The source contract (:class:`sluiced.connectors.Source`), run over every source:
in memory, JSONL and CSV files, a SCIM server, and the fake Stash (performers, tags and
scenes, which Stash pages differently)."""

from __future__ import annotations

from collections.abc import AsyncIterator, Sequence
from typing import Any

import trio

from sluiced.connectors import Malformed, Page, Record, Source

PAGE = 2


async def read_all(
    source: Source, entity_type: str, *, since: str | None = None, cursor: Any = None
) -> list[Page]:
    pages: AsyncIterator[Page] = source.read(
        entity_type, since=since, cursor=cursor, page_size=PAGE
    )
    with trio.fail_after(30):
        return [page async for page in pages]


def records(pages: Sequence[Page]) -> list[Record]:
    items = [item for page in pages for item in page.items]
    assert all(isinstance(item, Record) for item in items), items
    return [item for item in items if isinstance(item, Record)]


async def test_a_full_read_yields_every_object_once_in_pages_of_at_most_page_size(
    source_peer: Any,
) -> None:
    ids = [source_peer.put(n) for n in range(5)]
    source = source_peer.open()
    try:
        pages = await read_all(source, source_peer.entity_type)
        assert all(0 < len(p.items) <= PAGE for p in pages)
        assert all(p.exhaustive for p in pages)
        got = records(pages)
        assert sorted(r.id for r in got) == sorted(ids)
        assert all(r.cursor is not None for r in got)
    finally:
        await source.aclose()


async def test_an_incremental_read_yields_at_least_what_changed_after_the_watermark(
    source_peer: Any,
) -> None:
    ids = [source_peer.put(n) for n in range(4)]
    source = source_peer.open()
    try:
        await read_all(source, source_peer.entity_type)
        watermark = await source.watermark(source_peer.entity_type)
        assert watermark is None or isinstance(watermark, str)
        source_peer.edit(ids[1])
        ids.append(source_peer.put(4))
        changed = records(await read_all(source, source_peer.entity_type, since=watermark))
        assert {ids[1], ids[4]} <= {r.id for r in changed} <= set(ids)
        edited = next(r for r in changed if r.id == ids[1])
        assert "edited" in edited.data.values()
    finally:
        await source.aclose()


async def test_a_read_resumes_after_the_record_whose_cursor_it_is_given(
    source_peer: Any,
) -> None:
    for n in range(5):
        source_peer.put(n)
    source = source_peer.open()
    try:
        first = records(await read_all(source, source_peer.entity_type))
        for k in (0, 2, 4):
            rest = records(await read_all(source, source_peer.entity_type, cursor=first[k].cursor))
            assert [r.id for r in rest] == [r.id for r in first[k + 1 :]]
    finally:
        await source.aclose()


async def test_a_resumed_read_tells_its_share_of_the_whole_pass(source_peer: Any) -> None:
    ids = [source_peer.put(n) for n in range(10)]
    source = source_peer.open()
    try:
        first = await read_all(source, source_peer.entity_type)
        fractions = [p.fraction for p in first if p.fraction is not None]
        if not fractions:
            return  # the source cannot tell: nothing to hold it to
        assert fractions == sorted(fractions) and fractions[-1] == 1.0
        cursor = records(first[:1])[-1].cursor  # a page read, then the job stopped
        rest = await read_all(source, source_peer.entity_type, cursor=cursor)
        # the same share as the uninterrupted read at the same page, not one of the rest
        assert [p.fraction for p in rest] == [p.fraction for p in first[1:]]
        # an incremental read too
        watermark = await source.watermark(source_peer.entity_type)
        for n in (1, 3, 5, 7, 9):  # not the first ones: some before the cursor are unchanged
            source_peer.edit(ids[n])
        changed = await read_all(source, source_peer.entity_type, since=watermark)
        if len(changed) > 1 and changed[0].fraction is not None:
            cursor = records(changed[:1])[-1].cursor
            again = await read_all(source, source_peer.entity_type, since=watermark, cursor=cursor)
            assert [p.fraction for p in again] == [p.fraction for p in changed[1:]]
    finally:
        await source.aclose()


async def test_get_many_answers_the_ids_the_source_has_and_leaves_out_the_others(
    source_peer: Any,
) -> None:
    ids = [source_peer.put(n) for n in range(3)]
    source = source_peer.open()
    try:
        with trio.fail_after(30):
            got = await source.get_many(
                source_peer.entity_type, [ids[0], source_peer.missing_id, ids[2]]
            )
            assert await source.get_many(source_peer.entity_type, []) == {}
        assert set(got) == {ids[0], ids[2]}
        assert all(isinstance(r, Record) and r.id == i for i, r in got.items())
        full = {r.id: r.data for r in records(await read_all(source, source_peer.entity_type))}
        assert {i: r.data for i, r in got.items() if isinstance(r, Record)} == {
            i: full[i] for i in (ids[0], ids[2])
        }
    finally:
        await source.aclose()


async def test_a_read_cancelled_mid_page_or_left_between_pages_is_closed(
    source_peer: Any,
) -> None:
    for n in range(6):
        source_peer.put(n)
    source = source_peer.open()
    try:
        before = source_peer.open_resources()
        # Cancelled while it fetches its first page.
        pages = source.read(source_peer.entity_type, since=None, cursor=None, page_size=PAGE)
        with trio.CancelScope() as scope:
            scope.cancel()
            async for _ in pages:
                raise AssertionError("a page came through a cancelled scope")
        assert scope.cancelled_caught
        await pages.aclose()  # type: ignore[attr-defined]
        # Left after its first page, as the engine leaves a read when a write fails.
        pages = source.read(source_peer.entity_type, since=None, cursor=None, page_size=PAGE)
        async for _ in pages:
            break
        with trio.fail_after(10):
            await pages.aclose()  # type: ignore[attr-defined]
        assert source_peer.open_resources() == before
        # The source still reads everything.
        assert len(records(await read_all(source, source_peer.entity_type))) == 6
    finally:
        await source.aclose()


async def test_validate_says_what_it_found(source_peer: Any) -> None:
    source = source_peer.open()
    try:
        with trio.fail_after(30):
            found = await source.validate()
        assert isinstance(found, str) and found
    finally:
        await source.aclose()


async def test_what_cannot_be_read_is_a_malformed_item_and_the_rest_is_read(
    damageable_source_peer: Any,
) -> None:
    peer = damageable_source_peer
    ids = [peer.put(n) for n in range(3)]
    peer.damage()
    source = peer.open()
    try:
        pages = await read_all(source, peer.entity_type)
        items = [i for p in pages for i in p.items]
        bad = [i for i in items if isinstance(i, Malformed)]
        assert len(bad) == 1 and bad[0].key and bad[0].reason
        assert sorted(i.id for i in items if isinstance(i, Record)) == sorted(ids)
    finally:
        await source.aclose()
