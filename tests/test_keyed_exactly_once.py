"""Exactly once into a transactional target keyed by source ids (the Stash mirror): a
write that fails, a crash after the target's commit, an owed pass, unreadable items."""

from __future__ import annotations

import sqlite3
from collections.abc import AsyncIterator
from dataclasses import replace
from datetime import timedelta
from pathlib import Path
from typing import Any

import httpx
import pytest
import trio

from sluiced.connectors import Malformed, Page, Record
from sluiced.models import JobStats, JobStatus
from sluiced.plugins.stash.fake import generate
from sluiced.plugins.stash.source import StashSource
from sluiced.retrying import Interrupted

from .mirrordb import Backend
from .test_stash_sync import T0, Crash, Driver, Env


def fail_once(driver: Driver, at: int, failure: BaseException) -> None:
    """The mirror's *at*-th transaction raises *failure* instead (a pause raises
    Interrupted, say, while the write waits for a retry)."""
    write = driver.mirror._write
    calls = 0

    async def failing(fn: Any) -> Any:
        nonlocal calls
        calls += 1
        if calls == at:
            raise failure
        return await write(fn)

    driver.mirror._write = failing  # type: ignore[method-assign]


def names(env: Env) -> dict[int, str]:
    return dict(env.query("SELECT id, name FROM performers"))


def watermark(env: Env) -> str:
    return str(env.query("SELECT value FROM sync_state WHERE key = ?", "watermark:performer")[0][0])


@pytest.mark.parametrize(
    ("failure", "status"),
    [
        (sqlite3.OperationalError("database is locked"), JobStatus.FAILED),
        (Interrupted("pause"), JobStatus.PAUSED),
    ],
)
async def test_a_failed_mirror_write_is_written_when_the_job_runs_again(
    tmp_path: Path,
    autojump_clock: trio.abc.Clock,
    failure: BaseException,
    status: JobStatus,
    mirror_db: Backend,
) -> None:
    lib = generate(performers=10, tags=10, studios=3, scenes=20, now=T0)
    env = Env(tmp_path, lib, page_size=4, backend=mirror_db)
    await env.run(env.driver(), env.job("sync", "job-0", full_resync=True))
    lib.fixed_now = T0 + timedelta(days=1)
    for i in range(1, 11):
        lib.update("performer", str(i), name=f"renamed-{i}")
    driver = env.driver()
    fail_once(driver, 2, failure)  # the second page of performers
    try:
        await env.run(driver, env.job("sync"))
    except type(failure):
        assert driver.job is not None  # what the runner records: the job as it stands
        await env.store.save_job(replace(driver.job, status=status))
    else:
        raise AssertionError("the write did not fail")
    assert watermark(env) == "2025-06-01T12:00:00Z"
    failed = await env.store.get_job("job-1")
    assert failed is not None and failed.stats.processed == 4  # the first page only
    result = await env.run(env.driver(), failed)
    assert names(env) == {i: f"renamed-{i}" for i in range(1, 11)}
    # Every object once: 10 performers, and the 19 others linking to them.
    assert result.job.stats == JobStats(processed=29, updated=29)
    assert watermark(env) == "2025-06-02T12:00:00Z"  # once every change is written


async def test_a_crash_after_the_first_commit_of_a_job_keeps_its_counts(
    tmp_path: Path, autojump_clock: trio.abc.Clock, mirror_db: Backend
) -> None:
    def library() -> Any:
        lib = generate(performers=10, tags=10, studios=3, scenes=20, now=T0 - timedelta(days=1))
        lib.fixed_now = T0
        lib.update("performer", "10", name="newest")
        return lib

    expected = JobStats()
    for crash in (False, True):
        lib = library()
        env = Env(tmp_path / str(crash), lib, backend=mirror_db)
        env.tmp.mkdir()
        await env.run(env.driver(), env.job("sync", "job-0", full_resync=True))
        lib.delete("performer", "10")
        if crash:  # after the deletion's mirror commit, the job's first, before the store's
            env.store.die_at = env.store.commits + 1
        try:
            result = await env.run(env.driver(), env.job("sync"))
        except Crash:
            stored = await env.store.get_job("job-1")
            assert stored is not None and stored.checkpoint is None
            result = await env.run(env.driver(), stored)
        if not crash:
            expected = result.job.stats
    assert expected.deleted == 1
    assert result.job.stats == expected


async def crash_after_the_owed_pass_then_resume(env: Env) -> Any:
    """Run job-1 again (it owes the performers' pass), die right after that pass's end
    is committed in the mirror (before the store's commit), then resume it: the result,
    with the job's log of the resumed run only."""
    driver = env.driver()
    apply = driver.target.apply

    async def crash_after(kind: str, ops: Any, *, checkpoint: Any = None) -> Any:
        done = await apply(kind, ops, checkpoint=checkpoint)
        if checkpoint is not None and "performer" in checkpoint.watermarks:
            env.store.die_at = env.store.commits  # the owed pass's end, in the mirror only
        return done

    driver.target.apply = crash_after  # type: ignore[method-assign]
    owing = await env.store.get_job("job-1")
    assert owing is not None
    with pytest.raises(Crash):
        await env.run(driver, owing)
    env.logs.clear()
    stored = await env.store.get_job("job-1")
    assert stored is not None
    return await env.run(env.driver(), stored)


async def test_a_crash_after_an_owed_pass_completed_does_not_run_it_again(
    tmp_path: Path, autojump_clock: trio.abc.Clock, mirror_db: Backend
) -> None:
    def library() -> Any:
        return generate(performers=10, tags=10, studios=3, scenes=20, now=T0)

    whole = Env(tmp_path / "whole", library(), backend=mirror_db)
    whole.tmp.mkdir()
    expected = (await whole.run(whole.driver(), whole.job("sync", full_resync=True))).job.stats
    env = Env(tmp_path, library(), backend=mirror_db)
    down = True

    def before(name: str) -> None:
        if down and name == "PerformersMatching":
            raise httpx.ConnectError("refused")

    env.before = before
    result = await env.run(env.driver(), env.job("sync", full_resync=True))
    assert set(result.failed) == {"performer"}
    await env.store.save_job(replace(result.job, status=JobStatus.FAILED))
    down = False
    resumed = await crash_after_the_owed_pass_then_resume(env)
    assert not resumed.failed
    assert not any(m.startswith("performer:") for _, m in env.logs)
    assert resumed.job.stats.processed == expected.processed


async def test_an_incremental_pass_with_unreadable_items_keeps_its_watermark(
    tmp_path: Path,
    autojump_clock: trio.abc.Clock,
    monkeypatch: pytest.MonkeyPatch,
    mirror_db: Backend,
) -> None:
    lib = generate(performers=10, tags=10, studios=3, scenes=20, now=T0)
    env = Env(tmp_path, lib, backend=mirror_db)
    await env.run(env.driver(), env.job("sync", "job-0", full_resync=True))
    lib.fixed_now = T0 + timedelta(days=1)
    for i in range(1, 11):
        lib.update("performer", str(i), name=f"renamed-{i}")
    read = StashSource.read
    unreadable = True

    async def garbled(self: StashSource, entity_type: str, **kw: Any) -> AsyncIterator[Page]:
        async for page in read(self, entity_type, **kw):
            if unreadable and entity_type == "performer":
                items = [
                    Malformed(key=i.id, reason="garbled", cursor=i.cursor)
                    if isinstance(i, Record) and i.id == "3"
                    else i
                    for i in page.items
                ]
                page = replace(page, items=items)
            yield page

    monkeypatch.setattr(StashSource, "read", garbled)
    result = await env.run(env.driver(), env.job("sync", "job-1"))
    assert result.job.stats.errors == 1
    assert watermark(env) == "2025-06-01T12:00:00Z"  # the next pass reads it again
    assert (
        "warning",
        "performer: 1 items of the source could not be read; the watermark stays where it"
        " was, so the next pass reads them again",
    ) in env.logs
    assert names(env)[3] == "performer 2"
    unreadable = False
    await env.run(env.driver(), env.job("sync", "job-2"))
    assert names(env)[3] == "renamed-3"
    assert watermark(env) == "2025-06-02T12:00:00Z"


async def test_a_failed_mirror_write_of_a_scene_by_id_is_written_when_the_job_runs_again(
    tmp_path: Path, autojump_clock: trio.abc.Clock, mirror_db: Backend
) -> None:
    env = Env(
        tmp_path, generate(performers=10, tags=10, studios=3, scenes=250, now=T0), backend=mirror_db
    )
    driver = env.driver()
    apply = driver.target.apply
    scenes = 0

    async def failing(kind: str, ops: Any, *, checkpoint: Any = None) -> Any:
        nonlocal scenes
        scenes += bool(kind == "scene" and ops)
        if scenes == 130:  # inside the second batch of 100
            raise sqlite3.OperationalError("database is locked")
        return await apply(kind, ops, checkpoint=checkpoint)

    driver.target.apply = failing  # type: ignore[method-assign]
    job = env.job("sync_scenes", scene_ids=[str(i) for i in range(1, 251)])
    with pytest.raises(sqlite3.OperationalError):
        await env.run(driver, job)
    assert driver.job is not None and driver.job.stats.processed == 129
    await env.store.save_job(replace(driver.job, status=JobStatus.FAILED))
    failed = await env.store.get_job("job-1")
    assert failed is not None
    result = await env.run(env.driver(), failed)
    assert result.job.stats == JobStats(processed=250, created=250)
    assert env.query("SELECT count(*) FROM scenes") == [(250,)]


async def test_a_crash_after_an_owed_pass_resumes_the_interrupted_pass_where_it_was(
    tmp_path: Path, autojump_clock: trio.abc.Clock, mirror_db: Backend
) -> None:
    def library() -> Any:
        return generate(performers=10, tags=10, studios=3, scenes=20, now=T0)

    whole = Env(tmp_path / "whole", library(), page_size=4, backend=mirror_db)
    whole.tmp.mkdir()
    expected = (await whole.run(whole.driver(), whole.job("sync", full_resync=True))).job.stats
    env = Env(tmp_path, library(), page_size=4, backend=mirror_db)
    down = True

    def before(name: str) -> None:
        if down and name == "PerformersMatching":
            raise httpx.ConnectError("refused")

    env.before = before
    driver = env.driver()
    apply = driver.target.apply

    async def pause_in_tags(kind: str, ops: Any, *, checkpoint: Any = None) -> Any:
        done = await apply(kind, ops, checkpoint=checkpoint)
        if kind == "tag" and checkpoint is not None and checkpoint.position.get("cursor"):
            assert driver.engine is not None
            driver.engine.ctx.control.pause_requested = True  # after the tags' first page
        return done

    driver.target.apply = pause_in_tags  # type: ignore[method-assign]
    with pytest.raises(Interrupted):
        await env.run(driver, env.job("sync", full_resync=True))
    assert driver.job is not None
    await env.store.save_job(replace(driver.job, status=JobStatus.PAUSED))
    down = False
    resumed = await crash_after_the_owed_pass_then_resume(env)
    assert ("info", "tag: resuming the pass after id 4") in env.logs
    assert resumed.job.stats.processed == expected.processed
