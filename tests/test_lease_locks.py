"""Row locks on leases in a real PostgreSQL database: a job's write in progress keeps
other nodes from claiming its integration, but never holds up a heartbeat (its own
node's renewal, another node's reaper), and a node frozen in the middle of a write
(SIGSTOP, a VM stall: its transaction stays open) is taken over once its lease ran out,
not once the server's idle-transaction timeout ends its session."""

from __future__ import annotations

import threading
from collections.abc import Iterator
from contextlib import contextmanager

import pytest
import trio

from sluiced.store.errors import StoreUnavailable

psycopg = pytest.importorskip("psycopg", reason="psycopg is not installed")

from sluiced.store.postgres import PostgresStore  # noqa: E402
from sluiced.store.postgres_jobs import SAVE_JOB  # noqa: E402
from sluiced.store.sqlite_base import job_row  # noqa: E402

from .test_leases import job, node, rows  # noqa: E402


@contextmanager
def frozen() -> Iterator[threading.Event]:
    """An event a write waits on in the middle of its transaction, as a frozen node's
    would: its transaction stays open (its row locks held) until the event is set, which
    happens at the end at the latest."""
    wake = threading.Event()
    try:
        yield wake
    finally:
        wake.set()


async def write_frozen(
    store: PostgresStore, iid: str, wake: threading.Event
) -> BaseException | None:
    """A job write for *iid* that stops after its first statement until *wake*; returns
    its error, if any."""

    def write(c: psycopg.Connection[tuple[object, ...]]) -> None:
        c.execute(SAVE_JOB, job_row(job(iid, 7)))
        wake.wait(60)

    try:
        await store._job_write(iid, write)
    except StoreUnavailable as exc:
        return exc
    return None


async def test_a_nodes_renewal_does_not_wait_for_its_own_job_write(pg_url: str) -> None:
    async with node(pg_url, "a") as (store, a):
        await a.claim(["hr", "crm"])
        async with trio.open_nursery() as nursery:
            with frozen() as wake:
                nursery.start_soon(write_frozen, store, "hr", wake)
                await trio.sleep(0.3)  # the write's transaction is open
                began = trio.current_time()
                assert await a.renew() == set()
                assert trio.current_time() - began < 1  # not the lock timeout (5 s)
                assert dict(a.held) == {"hr": 1, "crm": 1}


async def test_a_node_frozen_in_a_write_holds_up_no_heartbeat_and_is_taken_over_within_its_ttl(
    pg_url: str,
) -> None:
    ttl = 2.0
    async with (
        node(pg_url, "a", ttl=ttl, heartbeat=0.5) as (store_a, a),
        node(pg_url, "b", ttl=ttl, heartbeat=0.5) as (_, b),
    ):
        await a.claim(["hr"])
        await b.claim(["crm"])
        async with trio.open_nursery() as nursery:
            with frozen() as wake:
                outcome: list[BaseException | None] = []

                async def frozen_write() -> None:
                    outcome.append(await write_frozen(store_a, "hr", wake))

                nursery.start_soon(frozen_write)
                began = trio.current_time()
                await trio.sleep(0.3)
                slowest = 0.0
                while "hr" not in b.held:  # not once the idle-transaction timeout (60 s)
                    assert trio.current_time() - began < ttl + 3
                    t = trio.current_time()
                    assert await b.renew() == set()  # the reaper waits for no lock
                    slowest = max(slowest, trio.current_time() - t)
                    await b.claim(["hr", "crm"])
                    await trio.sleep(0.1)
                taken = trio.current_time() - began
                print(f"taken over after {taken:.2f}s; slowest renewal {slowest:.3f}s")
                assert slowest < 1, slowest
                assert taken < ttl + 2, taken
                wake.set()  # the frozen node wakes: its write is refused
        assert isinstance(outcome[0], StoreUnavailable), outcome
        assert rows(pg_url, "SELECT count(*) FROM sluiced.jobs") == [(0,)]
        assert b.held == {"crm": 1, "hr": 2}
