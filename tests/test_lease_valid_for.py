"""How long a lease in PostgreSQL stays valid on this host's clock, and a job's wait for
the node's next renewal (bounded when none comes)."""

from __future__ import annotations

import pytest
import trio

pytest.importorskip("psycopg", reason="psycopg is not installed")

from .test_leases import Clock, node


async def test_valid_for_counts_down_to_the_last_renewal_plus_the_ttl_less_a_margin(
    pg_url: str,
) -> None:
    clock = Clock()
    async with node(pg_url, "a", ttl=30, heartbeat=10, margin=3, clock=clock) as (_, a):
        await a.claim(["hr"])
        fence = a.fence("hr")
        assert a.valid_for("crm") == 0.0 and not a.fence("crm")()  # not held
        assert fence.valid_for() == pytest.approx(27)
        clock.now += 20
        assert fence.valid_for() == pytest.approx(7) and fence()
        clock.now += 8
        assert fence.valid_for() == 0.0 and not fence()
        assert await a.renew() == set()  # the database's lease did not run out
        assert fence.valid_for() == pytest.approx(27) and fence()


async def test_renewed_wakes_at_the_end_of_the_next_renewal(pg_url: str) -> None:
    clock = Clock()
    async with node(pg_url, "a", ttl=30, heartbeat=10, margin=3, clock=clock) as (_, a):
        await a.claim(["hr"])
        clock.now += 25
        fence = a.fence("hr")
        seen: list[float] = []

        async def wait() -> None:
            await fence.renewed()
            seen.append(fence.valid_for())

        async with trio.open_nursery() as nursery:
            nursery.start_soon(wait)
            await trio.sleep(0.2)
            assert seen == []  # no renewal yet
            await a.renew()
        assert seen == [pytest.approx(27)]  # it saw the renewed lease


async def test_renewed_waits_two_heartbeats_at_most(pg_url: str) -> None:
    async with node(pg_url, "a", ttl=2, heartbeat=0.2) as (_, a):
        await a.claim(["hr"])
        began = trio.current_time()
        await a.fence("hr").renewed()
        assert 0.4 <= trio.current_time() - began < 1.5
