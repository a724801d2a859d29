"""Sessions the PostgreSQL server ended while they were idle (an administrator's
``pg_terminate_backend``, a restart of the server, ``idle_session_timeout``): the next
write, read or heartbeat opens a new session and succeeds, instead of failing once (a
job's write failing fails the job)."""

from __future__ import annotations

import pytest

psycopg = pytest.importorskip("psycopg", reason="psycopg is not installed")

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
