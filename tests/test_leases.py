"""Leases on integrations in a real PostgreSQL database: claims by several nodes at once,
expiry and takeover with a larger epoch, renewal reporting what was lost, fenced store
writes, a graceful leave, fair shares, and the coordinator of a node alone."""

from __future__ import annotations

import socket
from collections.abc import AsyncIterator, Callable
from contextlib import asynccontextmanager
from dataclasses import replace
from datetime import UTC, datetime, timedelta
from pathlib import Path

import pytest
import trio

from sluiced.cluster import Coordinator, LocalCoordinator
from sluiced.config import load_config
from sluiced.models import IntegrationState, Job, JobStatus, Link, LogEntry
from sluiced.store import BatchCommit, StoreUnavailable
from sluiced.store.errors import LeaseLost, StoreInUse

psycopg = pytest.importorskip("psycopg", reason="psycopg is not installed")

from sluiced.cluster.postgres import PostgresCoordinator  # noqa: E402
from sluiced.store.postgres import PostgresStore  # noqa: E402

T0 = datetime(2026, 1, 1, 12, 0, tzinfo=UTC)
IDS = [f"i{n:02d}" for n in range(20)]


def job(iid: str, n: int = 1) -> Job:
    return Job(
        id=f"{iid}-job-{n}",
        integration_id=iid,
        type="full_sync",
        status=JobStatus.RUNNING,
        created_at=T0,
    )


class Clock:
    """A monotonic clock the test moves."""

    def __init__(self) -> None:
        self.now = 1000.0

    def __call__(self) -> float:
        return self.now


@asynccontextmanager
async def node(
    url: str, name: str, *, ttl: float = 30.0, heartbeat: float = 10.0, **kw: object
) -> AsyncIterator[tuple[PostgresStore, PostgresCoordinator]]:
    """A node's store and coordinator, joined."""
    store = PostgresStore(url, node_id=name)
    coordinator = PostgresCoordinator(store, ttl=ttl, heartbeat=heartbeat, **kw)  # type: ignore[arg-type]
    try:
        await coordinator.join()
        yield store, coordinator
    finally:
        await coordinator.aclose()
        await store.aclose()


def rows(url: str, query: str) -> list[tuple[object, ...]]:
    with psycopg.connect(url) as conn:
        return conn.execute(query).fetchall()


def expire(url: str, *ids: str) -> None:
    """Make the leases of *ids* expire now (as if their holder stopped renewing)."""
    with psycopg.connect(url) as conn:
        conn.execute(
            "UPDATE sluiced.leases SET expires_at=now() - interval '1 second'"
            " WHERE integration_id = ANY(%s)",
            (list(ids),),
        )


async def test_four_nodes_claiming_at_once_never_get_one_integration_twice(pg_url: str) -> None:
    async with (
        node(pg_url, "a") as (_, a),
        node(pg_url, "b") as (_, b),
        node(pg_url, "c") as (_, c),
        node(pg_url, "d") as (_, d),
    ):
        coordinators: list[Coordinator] = [a, b, c, d]
        for _ in range(3):
            async with trio.open_nursery() as nursery:
                for coordinator in coordinators:
                    nursery.start_soon(coordinator.claim, IDS)
            held = [iid for k in coordinators for iid in k.held]
            assert len(held) == len(set(held))
        assert sorted(held) == IDS  # every one is held, each by one node
        assert all(len(k.held) == 5 for k in coordinators)  # the fair share: 20 / 4
        in_db = dict(rows(pg_url, "SELECT integration_id, node_id FROM sluiced.leases"))
        assert in_db == {iid: k.node_id for k in coordinators for iid in k.held}
        assert {e for k in coordinators for e in k.held.values()} == {1}


async def test_a_node_claims_its_fair_share_of_the_live_nodes(pg_url: str) -> None:
    async with node(pg_url, "a") as (_, a), node(pg_url, "b") as (_, b):
        async with node(pg_url, "c") as (_, c):
            assert len(await a.claim(IDS)) == 7  # ceil(20 / 3)
            assert len(await b.claim(IDS)) == 7
            assert len(await c.claim(IDS)) == 6
            assert await a.claim(IDS) == {}  # at its share, and nothing is free
            await c.leave()
        assert len(await a.claim(IDS)) == 3  # c left: ceil(20 / 2) - 7
        assert len(await b.claim(IDS)) == 3
        assert len(a.held) + len(b.held) == 20


async def test_an_expired_lease_is_claimed_by_another_node_with_the_next_epoch(
    pg_url: str,
) -> None:
    async with node(pg_url, "a") as (_, a), node(pg_url, "b") as (_, b):
        assert await a.claim(["hr"]) == {"hr": 1}
        assert await b.claim(["hr"]) == {}  # a holds it
        expire(pg_url, "hr")
        assert await b.claim(["hr"]) == {"hr": 2}
        assert await a.renew() == {"hr"}  # lost
        assert "hr" not in a.held and not a.locally_valid("hr")
        assert await b.renew() == set()
        assert rows(pg_url, "SELECT node_id, epoch FROM sluiced.leases") == [("b", 2)]


async def test_renew_reports_a_lease_the_reaper_freed_and_keeps_the_others(pg_url: str) -> None:
    async with node(pg_url, "a") as (_, a):
        assert len(await a.claim(["hr", "crm"])) == 2  # alone: its share is both
        async with node(pg_url, "b") as (_, b):
            expire(pg_url, "hr")
            assert await b.renew() == set()  # b's heartbeat reaps a's expired lease
        assert rows(pg_url, "SELECT node_id FROM sluiced.leases WHERE integration_id='hr'") == [
            (None,)
        ]
        assert await a.renew() == {"hr"}
        assert dict(a.held) == {"crm": 1}
        before = rows(pg_url, "SELECT expires_at FROM sluiced.leases WHERE integration_id='crm'")
        await trio.sleep(0.01)
        await a.renew()
        after = rows(pg_url, "SELECT expires_at FROM sluiced.leases WHERE integration_id='crm'")
        assert after[0][0] > before[0][0]  # type: ignore[operator]


async def test_a_fenced_write_with_a_stale_epoch_raises_lease_lost_and_writes_nothing(
    pg_url: str,
) -> None:
    async with node(pg_url, "a") as (store_a, a), node(pg_url, "b") as (store_b, b):
        await a.claim(["hr"])
        await store_a.save_job(job("hr", 1))  # held: written
        await store_a.append_logs(
            "hr-job-1", [LogEntry(timestamp=T0, level="info", message="first")]
        )
        expire(pg_url, "hr")
        await b.claim(["hr"])
        assert "hr" in a.held  # a has not noticed yet: its writes carry epoch 1
        link = Link(source_id="s1", target_id="t1", hash="h")
        attempts: list[Callable[[], object]] = [
            lambda: store_a.save_job(job("hr", 2)),
            lambda: store_a.save_job(replace(job("hr", 1), status=JobStatus.FAILED)),
            lambda: store_a.append_logs(
                "hr-job-1", [LogEntry(timestamp=T0, level="info", message="late")]
            ),
            lambda: store_a.put_state(IntegrationState(integration_id="hr")),
            lambda: store_a.commit_batch(
                BatchCommit(job=job("hr", 1), entity_type="user", upsert_links=[link])
            ),
            lambda: store_a.clear_watermarks("hr"),
            lambda: store_a.drop_escrow("hr", "user", "s1"),
        ]
        for attempt in attempts:
            with pytest.raises(LeaseLost) as caught:
                await attempt()  # type: ignore[misc]
            assert caught.value.integration_id == "hr"
            assert caught.value.node_id == "a" and caught.value.epoch == 1
            assert "lease lost" in str(caught.value) and "epoch 1" in str(caught.value)
            assert caught.value.holder == "b" and "held by node b" in str(caught.value)
        assert rows(pg_url, "SELECT id, status FROM sluiced.jobs") == [("hr-job-1", "running")]
        assert rows(pg_url, "SELECT message FROM sluiced.job_logs") == [("first",)]
        assert rows(pg_url, "SELECT count(*) FROM sluiced.links") == [(0,)]
        assert rows(pg_url, "SELECT count(*) FROM sluiced.integration_state") == [(0,)]
        assert await store_a.check() is None  # the store itself is fine
        await store_b.save_job(job("hr", 2))  # the new holder writes
        await store_b.put_state(IntegrationState(integration_id="hr"))
        assert len(rows(pg_url, "SELECT id FROM sluiced.jobs")) == 2


async def test_a_write_for_an_integration_not_held_is_refused_and_reads_are_not_fenced(
    pg_url: str,
) -> None:
    async with node(pg_url, "a") as (store, a):
        with pytest.raises(LeaseLost, match="it held none"):
            await store.save_job(job("hr"))
        assert isinstance(LeaseLost("hr", "a", None), StoreUnavailable)
        assert await store.list_jobs() == ([], 0)
        await a.claim(["hr"])
        await store.save_job(job("hr"))


async def test_holders_names_the_node_of_each_unexpired_lease(pg_url: str) -> None:
    async with node(pg_url, "a", ttl=2, heartbeat=0.5) as (_, a), node(pg_url, "b") as (_, b):
        await a.claim(["hr"])
        await b.claim(["hr", "crm"])
        assert await b.holders(["hr", "crm", "x"]) == {"hr": "a", "crm": "b"}
        await trio.sleep(2.2)  # a's lease expired, not yet reaped
        assert await b.holders(["hr", "crm"]) == {"crm": "b"}


async def test_leave_hands_every_lease_back_at_once(pg_url: str) -> None:
    async with node(pg_url, "a") as (store_a, a):
        await a.claim(["hr", "crm"])  # alone: its share is both
        async with node(pg_url, "b") as (_, b):
            assert await b.claim(["hr", "crm"]) == {}
            await a.leave()
            assert a.held == {}
            assert await b.claim(["hr", "crm"]) == {"crm": 2, "hr": 2}
            with pytest.raises(LeaseLost):
                await store_a.save_job(job("hr"))
            assert await a.holders(["hr", "crm", "x"]) == {"hr": "b", "crm": "b"}
            listed = {n.node_id: n for n in await b.nodes()}
            assert listed["a"].left_at is not None and not listed["a"].live
            assert listed["b"].live and listed["b"].leases == 2 and listed["b"].left_at is None
            assert listed["b"].host == socket.gethostname()


async def test_locally_valid_ends_at_the_last_renewal_plus_the_ttl_less_a_margin(
    pg_url: str,
) -> None:
    clock = Clock()
    async with node(pg_url, "a", ttl=30, heartbeat=10, margin=3, clock=clock) as (_, a):
        await a.claim(["hr"])
        assert not a.locally_valid("crm")  # not held
        clock.now += 26.9
        assert a.locally_valid("hr")
        clock.now += 0.2  # 27.1 s: past 30 - 3
        assert not a.locally_valid("hr")
        assert await a.renew() == set()  # the database's lease did not run out
        assert a.locally_valid("hr")
        clock.now += 26.9
        assert a.locally_valid("hr")


async def test_a_node_id_live_on_another_host_is_refused(pg_url: str) -> None:
    with psycopg.connect(pg_url) as conn:
        async with node(pg_url, "a"):
            pass  # the tables exist
        conn.execute(
            "INSERT INTO sluiced.nodes (node_id, started_at, heartbeat_at, pid, host)"
            " VALUES ('b', now(), now(), 1, 'elsewhere.example.org')"
        )
    store = PostgresStore(pg_url, node_id="b")
    coordinator = PostgresCoordinator(store)
    try:
        with pytest.raises(StoreInUse, match=r"node_id b is in use .* host elsewhere"):
            await coordinator.join()
    finally:
        await coordinator.aclose()
        await store.aclose()


async def test_a_restarted_node_gets_back_its_dead_process_leases_with_a_new_epoch(
    pg_url: str,
) -> None:
    async with node(pg_url, "a") as (_, a):
        await a.claim(["hr"])
    with psycopg.connect(pg_url) as conn:  # the first process is dead
        conn.execute("UPDATE sluiced.nodes SET pid=2147483647")
    async with node(pg_url, "a") as (store, again):
        assert again.held == {}
        assert await again.claim(["hr"]) == {"hr": 2}
        await store.save_job(job("hr"))


def test_the_heartbeat_must_be_shorter_than_the_ttl() -> None:
    with pytest.raises(ValueError, match="shorter than the TTL"):
        PostgresCoordinator(object(), ttl=5, heartbeat=5)  # type: ignore[arg-type]


async def test_a_node_alone_holds_every_integration_at_epoch_1_forever() -> None:
    local = LocalCoordinator("solo")
    await local.join()
    assert await local.claim(["hr", "crm"]) == {"hr": 1, "crm": 1}
    assert await local.claim(["hr", "crm", "ldap"]) == {"ldap": 1}
    assert await local.renew() == set()
    assert local.locally_valid("hr") and dict(local.held) == {"hr": 1, "crm": 1, "ldap": 1}
    assert await local.holders(["hr", "crm"]) == {"hr": local.node_id, "crm": local.node_id}
    [me] = await local.nodes()
    assert me.node_id == "solo" and me.live and me.leases == 3
    await local.leave()
    assert local.held == {} and not (await local.nodes())[0].live


def test_the_lease_keys_default_to_30s_and_10s_and_the_heartbeat_must_be_shorter(
    tmp_path: Path,
) -> None:
    from .test_store_postgres import config, problems

    d = load_config(config(tmp_path, "")).daemon
    assert d.lease_ttl == timedelta(seconds=30) and d.heartbeat == timedelta(seconds=10)
    d = load_config(config(tmp_path, 'lease_ttl = "2s"\nheartbeat = "0.5s"')).daemon
    assert d.lease_ttl == timedelta(seconds=2) and d.heartbeat == timedelta(milliseconds=500)
    (found,) = problems(tmp_path, 'lease_ttl = "10s"\nheartbeat = "10s"')
    assert "daemon.heartbeat" in found and "shorter than lease_ttl" in found
