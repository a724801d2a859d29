"""Incremental reads a source answers whole (exhaustive pages): deletions are detected
as in a full pass."""

from __future__ import annotations

import json
from collections.abc import AsyncIterator, Sequence
from contextlib import aclosing
from dataclasses import replace
from pathlib import Path
from typing import Any

import pytest

from sluiced.config import DeletionThreshold
from sluiced.connectors import Op, OpResult, Page
from sluiced.engine import Interrupted, TooManyDeletes
from sluiced.models import JobType
from sluiced.testing import MemorySource

from .test_engine import Env
from .test_engine_gone import users


class Whole(MemorySource):
    """Reads every object whatever *since* (it cannot tell what changed), in
    exhaustive pages; with :attr:`first_partial`, the first page of an incremental read
    says it is not exhaustive."""

    first_partial = False

    async def read(
        self, entity_type: str, *, since: str | None, cursor: Any, page_size: int
    ) -> AsyncIterator[Page]:
        first = since is not None and cursor is None and self.first_partial
        read = super().read(entity_type, since=None, cursor=cursor, page_size=page_size)
        async with aclosing(read) as pages:
            async for page in pages:
                yield replace(page, exhaustive=not first)
                first = False


def whole(count: int) -> Env:
    """An environment whose source reads whole, after a full sync of *count* users."""
    env = Env(source=Whole())
    env.fill(count)
    return env


@pytest.mark.parametrize("deprovision", ["disable", "delete"])
async def test_an_incremental_read_that_comes_whole_deprovisions_what_it_did_not_read(
    deprovision: str,
) -> None:
    env = whole(25)
    m = users(deprovision)
    await env.run(mapper=m)
    env.source.delete("user", "u0003")
    env.source.delete("user", "u0017")
    env.source.put("user", "u0005", name="renamed")
    result = await env.run(mapper=m)
    assert result.failed == {} and not result.full_pass
    s = result.job.stats
    if deprovision == "delete":
        assert (s.deleted, s.disabled, s.updated) == (2, 0, 1)
        assert env.target.plain() == env.source.objects["user"]
        assert await env.store.get_links("hr", "user", ["u0003", "u0017"]) == {}
    else:
        assert (s.deleted, s.disabled, s.updated) == (0, 2, 1)
        plain = env.target.plain()
        assert plain["u0003"]["active"] is False and plain["u0017"]["active"] is False
    assert await env.store.get_watermarks("hr") == {"user": await env.source.watermark("user")}
    assert any("the source reads every object" in line for line in env.logs)
    assert any("2 objects left the source or its scope" in line for line in env.logs)
    calls = len(env.target.applied)
    result = await env.run(mapper=m)  # nothing left to deprovision
    assert len(env.target.applied) == calls and result.job.stats.deleted == 0


async def test_a_memory_source_read_with_since_is_not_exhaustive_and_detects_no_deletions() -> None:
    env = Env()
    env.fill(5)
    await env.run()
    env.source.delete("user", "u0001")
    env.source.put("user", "u0002", name="renamed")
    result = await env.run()
    assert result.failed == {} and result.job.stats.deleted == 0
    assert "u0001" in env.target.plain()
    assert not any("the source reads every object" in line for line in env.logs)


async def test_a_read_whose_first_page_is_not_exhaustive_is_incremental() -> None:
    env = whole(25)
    await env.run()
    assert isinstance(env.source, Whole)
    env.source.first_partial = True
    env.source.delete("user", "u0017")
    result = await env.run()
    assert result.failed == {} and result.job.stats.deleted == 0
    assert "u0017" in env.target.plain()


async def test_an_incomplete_whole_read_deletes_nothing() -> None:
    env = whole(5)
    await env.run()
    env.source.delete("user", "u0001")
    env.source.malformed["user"] = {"file:2": "bad"}
    result = await env.run()
    assert result.failed == {} and result.job.stats.deleted == 0
    assert "u0001" in env.target.plain()
    assert await env.store.get_watermarks("hr") == {"user": await env.source.watermark("user")}
    env.source.malformed["user"] = {}
    env.source.put("user", "u0002", name="renamed")
    result = await env.run()
    assert result.job.stats.deleted == 1 and "u0001" not in env.target.plain()


async def test_deletions_of_a_whole_read_go_through_the_threshold() -> None:
    env = whole(20)
    env.cfg = replace(env.cfg, deletion_threshold=DeletionThreshold(count=3))
    await env.run()
    for i in range(5):
        env.source.delete("user", f"u{i:04d}")
    watermark = await env.store.get_watermarks("hr")
    calls = len(env.target.applied)
    result = await env.run()
    assert isinstance(result.failed.get("user"), TooManyDeletes)
    assert "5 deletions staged" in str(result.failed["user"])
    assert len(env.target.applied) == calls and len(env.target.plain()) == 20
    assert len(await env.store.list_staged_deletions("hr")) == 5
    assert await env.store.get_watermarks("hr") == watermark
    result = await env.run(approved=True)
    assert result.failed == {} and result.job.stats.deleted == 5
    assert env.target.plain() == env.source.objects["user"]


async def test_a_whole_read_resumed_after_a_stop_still_deprovisions() -> None:
    """The checkpoint keeps that the read came whole: the resumed read, which starts
    after the first batch, deletes what neither part of it read."""
    env = whole(25)
    await env.run()
    env.source.delete("user", "u0003")  # in the first page
    env.source.delete("user", "u0020")  # in the last
    env.control.stop_requested = True
    job = env.job()
    with pytest.raises(Interrupted, match="stop"):
        await env.run(job)
    saved = await env.store.get_job(job.id)
    assert saved is not None and saved.checkpoint is not None
    assert saved.checkpoint["whole"] is True and saved.checkpoint["cursor"] == "u0010"
    assert len(env.target.plain()) == 25
    env.control.stop_requested = False
    result = await env.run(saved)
    assert env.source.reads[-1] == ("user", "u0010")
    assert result.failed == {} and result.job.stats.deleted == 2
    assert env.target.plain() == env.source.objects["user"]


async def test_a_read_resumed_from_a_checkpoint_that_does_not_say_is_not_whole() -> None:
    """Resumed after its first page with no word of how the read began (a checkpoint
    written before the engine kept it), the read cannot tell it came whole."""
    env = whole(25)
    await env.run()
    env.source.delete("user", "u0020")
    env.control.stop_requested = True
    job = env.job()
    with pytest.raises(Interrupted, match="stop"):
        await env.run(job)
    saved = await env.store.get_job(job.id)
    assert saved is not None and saved.checkpoint is not None
    checkpoint = {k: v for k, v in saved.checkpoint.items() if k != "whole"}
    env.control.stop_requested = False
    result = await env.run(replace(saved, checkpoint=checkpoint))
    assert result.failed == {} and result.job.stats.deleted == 0
    assert "u0020" in env.target.plain()


async def test_the_delete_phase_of_a_whole_read_resumes_after_a_pause() -> None:
    env = whole(40)
    await env.run()
    for i in range(0, 40, 2):
        env.source.delete("user", f"u{i:04d}")
    apply = env.target.apply

    async def pausing(entity_type: str, ops: Sequence[Op]) -> Sequence[OpResult]:
        if any(op.kind == "delete" for op in ops):
            env.control.pause_requested = True  # after this batch of the delete phase
        return await apply(entity_type, ops)

    env.target.apply = pausing  # type: ignore[method-assign]
    job = env.job()
    with pytest.raises(Interrupted, match="pause"):
        await env.run(job)
    saved = await env.store.get_job(job.id)
    assert saved is not None and saved.checkpoint is not None
    assert saved.checkpoint["phase"] == "delete" and saved.checkpoint["whole"] is True
    assert len(env.target.plain()) == 30
    env.control.pause_requested = False
    env.target.apply = apply  # type: ignore[method-assign]
    result = await env.run(saved)
    assert result.failed == {} and result.job.stats.deleted == 20
    assert env.target.plain() == env.source.objects["user"]


async def test_an_incremental_pass_over_a_changed_file_deletes_what_it_no_longer_has(
    tmp_path: Path,
) -> None:
    """The file source reads a changed file whole, in exhaustive pages."""
    from sluiced.plugins.files.source import FileSource
    from sluiced.plugins.files.target import FileTarget

    from .test_files import settings

    src, out = tmp_path / "in.csv", tmp_path / "out.jsonl"
    rows = [f"{i},person {i}" for i in range(25)]
    src.write_text("id,name\n" + "\n".join(rows) + "\n")
    env = Env()
    env.source = FileSource(settings("csv", tmp_path, paths={"user": "in.csv"}))  # type: ignore[assignment]
    env.target = FileTarget(settings("jsonl", tmp_path, paths={"user": "out.jsonl"}))  # type: ignore[assignment]
    try:
        assert (await env.run(JobType.FULL)).job.stats.created == 25
        del rows[17]
        rows[4] = "4,renamed"
        src.write_text("id,name\n" + "\n".join(rows) + "\n")
        result = await env.run(JobType.INCREMENTAL)
        assert result.failed == {} and not result.full_pass
        s = result.job.stats
        assert (s.updated, s.deleted) == (1, 1)
        ids = [json.loads(line)["id"] for line in out.read_text().splitlines()]
        assert "17" not in ids and len(ids) == 24
    finally:
        await env.target.aclose()


async def test_objects_read_again_at_the_end_of_a_whole_read_stay_seen() -> None:
    """A user whose manager was provisioned later in the same pass is read again by id
    after the read: it is still one the read saw, and the delete phase keeps it."""
    from .test_matching import by_name, user
    from .test_reference_self import managers, mapper, staff, target_id

    env = Env(source=Whole())
    staff(env)
    await env.run(mapper=mapper())
    user(env, "a", "a@example.org", manager="n")  # n is new too, and after a
    user(env, "n", "n@example.org")
    env.source.delete("user", "c")
    result = await env.run(mapper=mapper())
    assert result.failed == {} and not result.full_pass
    assert any("user: reading 1 objects again" in line for line in env.logs), env.logs
    assert managers(env)["a@example.org"] == target_id(env, "n@example.org")
    s = result.job.stats
    assert (s.created, s.updated, s.disabled) == (2, 1, 1)  # c only
    active = {name: o.get("active") for name, o in by_name(env).items()}
    assert active["c@example.org"] is False and active["a@example.org"] is not False
