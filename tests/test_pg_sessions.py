"""Sessions the PostgreSQL server ended while they were idle (an administrator's
``pg_terminate_backend``, a restart of the server, ``idle_session_timeout``): the next
write, read or heartbeat opens a new session and succeeds, instead of failing once (a
job's write failing fails the job); a write whose session is ended under it is written
again on a new session."""

from __future__ import annotations

import threading
import time

import pytest
import trio

psycopg = pytest.importorskip("psycopg", reason="psycopg is not installed")

from sluiced.store.postgres_jobs import SAVE_JOB  # noqa: E402
from sluiced.store.sqlite_base import job_row  # noqa: E402

from .test_leases import job, node, rows  # noqa: E402


def terminate(url: str) -> int:
    """End every session of the daemon's; returns how many."""
    with psycopg.connect(url, autocommit=True) as conn:
        got = conn.execute(
            "SELECT count(pg_terminate_backend(pid)) FROM pg_stat_activity"
            " WHERE application_name LIKE 'sluiced%' AND pid <> pg_backend_pid()"
        ).fetchone()
    assert got is not None
    return int(got[0])


async def test_sessions_ended_while_idle_are_opened_again_unnoticed(pg_url: str) -> None:
    async with node(pg_url, "a") as (store, a):
        await a.claim(["hr"])
        await store.save_job(job("hr", 1))
        assert terminate(pg_url) == 2  # the store's and the coordinator's
        await store.save_job(job("hr", 2))
        assert await a.renew() == set()
        terminate(pg_url)
        assert [j.id for j in (await store.list_jobs())[0]] == ["hr-job-2", "hr-job-1"]
        assert await a.holders(["hr"]) == {"hr": "a"}
        assert rows(pg_url, "SELECT count(*) FROM sluiced.jobs") == [(2,)]


async def test_a_write_whose_session_is_ended_under_it_is_written_on_a_new_one(
    pg_url: str,
) -> None:
    async with node(pg_url, "a") as (store, a):
        await a.claim(["hr"])
        began = threading.Event()
        attempts: list[int] = []

        def write(c: psycopg.Connection[tuple[object, ...]]) -> None:
            attempts.append(c.info.backend_pid)
            c.execute(SAVE_JOB, job_row(job("hr", 3)))
            if len(attempts) == 1:
                began.set()
                time.sleep(0.5)  # the server ends the session meanwhile
            c.execute("SELECT 1")

        async with trio.open_nursery() as nursery:
            nursery.start_soon(store._job_write, "hr", write)
            await trio.to_thread.run_sync(began.wait)
            terminate(pg_url)
        assert len(attempts) == 2 and attempts[0] != attempts[1]
        assert rows(pg_url, "SELECT id FROM sluiced.jobs") == [("hr-job-3",)]
        assert await store.check() is None
