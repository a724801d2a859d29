"""Exactly once into a transactional target keyed by source ids (the Stash mirror): a
write that fails, a crash after the target's commit, an owed pass, unreadable items."""

from __future__ import annotations

import sqlite3
from dataclasses import replace
from datetime import timedelta
from pathlib import Path
from typing import Any

import pytest
import trio

from sluiced.models import JobStats, JobStatus
from sluiced.plugins.stash.fake import generate
from sluiced.retrying import Interrupted

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


def names(tmp: Path) -> dict[int, str]:
    with sqlite3.connect(tmp / "mirror.sqlite3") as conn:
        return dict(conn.execute("SELECT id, name FROM performers").fetchall())


def watermark(tmp: Path) -> str:
    with sqlite3.connect(tmp / "mirror.sqlite3") as conn:
        key = "watermark:performer"
        return str(conn.execute("SELECT value FROM sync_state WHERE key = ?", (key,)).fetchone()[0])


@pytest.mark.parametrize(
    ("failure", "status"),
    [
        (sqlite3.OperationalError("database is locked"), JobStatus.FAILED),
        (Interrupted("pause"), JobStatus.PAUSED),
    ],
)
async def test_a_failed_mirror_write_is_written_when_the_job_runs_again(
    tmp_path: Path, autojump_clock: trio.abc.Clock, failure: BaseException, status: JobStatus
) -> None:
    lib = generate(performers=10, tags=10, studios=3, scenes=20, now=T0)
    env = Env(tmp_path, lib, page_size=4)
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
    assert watermark(tmp_path) == "2025-06-01T12:00:00Z"
    failed = await env.store.get_job("job-1")
    assert failed is not None and failed.stats.processed == 4  # the first page only
    result = await env.run(env.driver(), failed)
    assert names(tmp_path) == {i: f"renamed-{i}" for i in range(1, 11)}
    # Every object once: 10 performers, and the 19 others linking to them.
    assert result.job.stats == JobStats(processed=29, updated=29)
    assert watermark(tmp_path) == "2025-06-02T12:00:00Z"  # once every change is written


async def test_a_crash_after_the_first_commit_of_a_job_keeps_its_counts(
    tmp_path: Path, autojump_clock: trio.abc.Clock
) -> None:
    def library() -> Any:
        lib = generate(performers=10, tags=10, studios=3, scenes=20, now=T0 - timedelta(days=1))
        lib.fixed_now = T0
        lib.update("performer", "10", name="newest")
        return lib

    expected = JobStats()
    for crash in (False, True):
        lib = library()
        env = Env(tmp_path / str(crash), lib)
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
