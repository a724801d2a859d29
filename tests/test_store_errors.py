"""A store that cannot be written: the SQLite store names its file and keeps no
transaction open; the daemon (in trio's virtual time) stays up, fails the job once it can
record that, and runs again when writes succeed."""

from __future__ import annotations

from collections.abc import Sequence
from pathlib import Path
from typing import Any

import pytest
import trio

from sluiced.models import IntegrationState, Job, JobStatus, LogEntry
from sluiced.store import BatchCommit, MemoryStore, SqliteStore, StoreUnavailable

from .test_daemon import T0, make_config, make_harness


async def test_a_full_sqlite_store_names_its_file_and_writes_again_once_space_is_back(
    tmp_path: Path,
) -> None:
    path = tmp_path / "state.sqlite3"
    store = SqliteStore(path)
    try:
        pages = await store._read(lambda c: c.execute("PRAGMA page_count").fetchone()[0])
        # SQLite's own "disk full": no page beyond the current ones.
        await store._read(lambda c: c.execute(f"PRAGMA max_page_count={pages}"))
        big = [LogEntry(timestamp=T0, level="info", message="x" * 2000) for _ in range(50)]
        with pytest.raises(StoreUnavailable) as caught:
            await store.append_logs("job-1", big)
        assert str(caught.value) == (f"cannot write the store {path}: database or disk is full")
        assert caught.value.code == "StoreUnavailable"
        assert await store._read(lambda c: c.in_transaction) is False
        assert await store.get_logs("job-1") == []  # nothing half-written

        await store._read(lambda c: c.execute("PRAGMA max_page_count=1073741823"))
        await store.append_logs("job-1", big)
        assert len(await store.get_logs("job-1")) == 50
    finally:
        await store.aclose()


class FullDisk(MemoryStore):
    """A MemoryStore whose writes fail while ``full``; ``fill_at_commit`` turns ``full``
    on at that commit of the sync engine (counted from 1)."""

    def __init__(self) -> None:
        super().__init__()
        self.full = False
        self.fill_at_commit: int | None = None
        self.commits = 0
        self.refused = 0

    def _check(self) -> None:
        if self.full:
            self.refused += 1
            raise StoreUnavailable("cannot write the store /state/sluiced.sqlite3: disk full")

    async def save_job(self, job: Job) -> None:
        self._check()
        await super().save_job(job)

    async def append_logs(self, job_id: str, entries: Sequence[LogEntry]) -> None:
        self._check()
        await super().append_logs(job_id, entries)

    async def put_state(self, state: IntegrationState) -> None:
        self._check()
        await super().put_state(state)

    async def commit_batch(self, batch: BatchCommit) -> None:
        self.commits += 1
        if self.commits == self.fill_at_commit:
            self.full = True
        self._check()
        await super().commit_batch(batch)


async def test_a_store_that_cannot_be_written_fails_the_job_and_the_daemon_stays_up(
    tmp_path: Path, autojump_clock: Any
) -> None:
    store = FullDisk()
    store.fill_at_commit = 2  # the first job's second batch
    h = await make_harness(tmp_path, make_config(tmp_path), store=store)
    async with trio.open_nursery() as nursery:
        await nursery.start(lambda task_status: h.daemon.run(api=False, task_status=task_status))
        await trio.sleep(600)  # the disk stays full for ten minutes
        assert store.refused > 3  # the job's end was tried again, and the schedule's next job
        jobs = await h.jobs()
        assert [j.status for j in jobs] == [JobStatus.RUNNING]  # its end cannot be recorded
        assert h.daemon.runner.busy("hr")

        store.full = False
        await trio.sleep(61)  # the longest wait between two tries
        first = (await h.jobs())[0]
        assert first.status is JobStatus.FAILED
        assert first.error == "cannot write the store /state/sluiced.sqlite3: disk full"
        assert first.error_code == "StoreUnavailable"
        state = await store.get_state("hr")
        assert state.last_execution is not None and state.last_execution.error is not None
        assert state.last_execution.error.message == first.error

        await trio.sleep(15 * 60)  # the schedule runs it again, and it completes
        jobs = await h.jobs()
        assert jobs[-1].status is JobStatus.COMPLETED
        assert len(h.connector.target.objects["user"]) == 25
        nursery.cancel_scope.cancel()


async def test_the_schedule_survives_a_store_it_cannot_write(
    tmp_path: Path, autojump_clock: Any
) -> None:
    store = FullDisk()
    store.full = True
    h = await make_harness(tmp_path, make_config(tmp_path), store=store)
    async with trio.open_nursery() as nursery:
        await nursery.start(lambda task_status: h.daemon.run(api=False, task_status=task_status))
        await trio.sleep(95)
        assert store.refused == 4  # at 0, 30, 60 and 90 s
        assert await h.jobs() == []
        store.full = False
        await trio.sleep(60)
        assert [j.status for j in await h.jobs()] == [JobStatus.COMPLETED]
        nursery.cancel_scope.cancel()
