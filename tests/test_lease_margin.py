"""A target write never outlives its lease: the engine starts one only if the lease stays
valid on this host's clock longer than the job's recent writes took, else it waits for
the node's next renewal, and if the lease still does not last, the job ends with "lease
lost", writing nothing more. A node alone (no lease runs out) never waits."""

from __future__ import annotations

from collections.abc import Sequence

import pytest
import trio

from sluiced.clock import TrioClock
from sluiced.cluster import LeaseExpired, LocalCoordinator
from sluiced.connectors import Op, OpResult
from sluiced.engine import Interrupted, SyncEngine
from sluiced.retrying import RetryWaits, job_retry_waits
from sluiced.sync._context import WRITE_DECAY, WRITE_FLOOR
from sluiced.testing import MemoryTarget

from .test_engine import T0, Env


class Timed(MemoryTarget):
    """A memory target that notes when each write starts and ends (on trio's clock)."""

    def __init__(self) -> None:
        super().__init__()
        self.spans: list[tuple[float, float]] = []

    async def apply(self, entity_type: str, ops: Sequence[Op]) -> Sequence[OpResult]:
        began = trio.current_time()
        try:
            return await super().apply(entity_type, ops)
        finally:
            self.spans.append((began, trio.current_time()))


class Leases(LocalCoordinator):
    """A node's leases valid here until :attr:`until` on trio's clock (the test moves it,
    as a renewal would); :meth:`renewed` waits for :meth:`beat`, two heartbeats at most."""

    def __init__(self, until: float) -> None:
        super().__init__("n1")
        self.ttl, self.heartbeat = 2.0, 0.5
        self.until = until
        self._beat = trio.Event()
        self.waits = 0

    def beat(self, until: float) -> None:
        """A renewal ends: the leases now last until *until* (earlier: they were lost)."""
        self.until = until
        self._beat.set()
        self._beat = trio.Event()

    def locally_valid(self, integration_id: str) -> bool:
        return self.valid_for(integration_id) > 0

    def valid_for(self, integration_id: str) -> float:
        return max(self.until - trio.current_time(), 0.0)

    async def renewed(self) -> None:
        self.waits += 1
        with trio.move_on_after(2 * self.heartbeat):
            await self._beat.wait()


def engine_of(env: Env, fence: object) -> SyncEngine:
    async def log(level: str, message: str) -> None:
        env.logs.append(f"{level}: {message}")

    return SyncEngine(
        job=env.job(),
        cfg=env.cfg,
        source=env.source,
        target=env.target,
        store=env.store,
        clock=TrioClock(T0),
        log=log,
        control=env.control,
        breakers=env.breakers,
        fence=fence,  # type: ignore[arg-type]
    )


async def test_a_write_that_would_outlive_the_lease_waits_for_the_renewal(
    autojump_clock: trio.abc.Clock,
) -> None:
    env = Env(target=Timed())
    env.fill(15)
    env.target.apply_delay = 0.6
    leases = Leases(until=trio.current_time() + 1.0)
    t0 = trio.current_time()
    renewals: list[float] = []  # each renewal: the end of the lease it left

    async def heartbeat() -> None:
        await trio.sleep(0.8)
        leases.beat(trio.current_time() + 10)
        renewals.append(leases.until)

    async with trio.open_nursery() as nursery:
        nursery.start_soon(heartbeat)
        engine = engine_of(env, leases.fence("hr"))
        await engine.run()
    spans = [(a - t0, b - t0) for a, b in env.target.spans]
    # The first batch: 1 s of lease left, more than the floor. The second, 0.4 s left for
    # a write of 0.6 s: it waits for the renewal (0.8 s), and no write outlives its lease.
    assert spans == [pytest.approx((0, 0.6)), pytest.approx((0.8, 1.4))]
    assert leases.waits == 1 and renewals
    assert all(b <= 1.0 for a, b in spans if a < 0.8)
    assert [len(c) for c in env.target.applied] == [10, 5]
    assert engine.ctx.write_need == max(WRITE_FLOOR, 0.6 * WRITE_DECAY)  # a flush of 0 s


async def test_a_write_that_gets_no_renewal_ends_the_job_writing_nothing(
    autojump_clock: trio.abc.Clock,
) -> None:
    env = Env(target=Timed())
    env.fill(25)
    env.target.apply_delay = 0.6
    leases = Leases(until=trio.current_time() + 1.0)
    t0 = trio.current_time()
    with pytest.raises(LeaseExpired) as caught:
        await engine_of(env, leases.fence("hr")).run()
    assert str(caught.value) == "lease lost: this node no longer holds the integration hr"
    # The second write would have run past the lease: no renewal came within two
    # heartbeats, so it was never sent.
    assert [len(c) for c in env.target.applied] == [10]
    assert env.target.calls.get("flush", 0) == 0
    assert leases.waits == 1
    assert trio.current_time() - t0 == pytest.approx(0.6 + 2 * leases.heartbeat)


async def test_a_renewal_that_finds_the_lease_lost_ends_the_job_at_once(
    autojump_clock: trio.abc.Clock,
) -> None:
    env = Env(target=Timed())
    env.fill(25)
    env.target.apply_delay = 0.6
    leases = Leases(until=trio.current_time() + 1.0)
    t0 = trio.current_time()

    async def heartbeat() -> None:
        await trio.sleep(0.7)
        leases.beat(trio.current_time())  # lost: valid for nothing more

    async with trio.open_nursery() as nursery:
        nursery.start_soon(heartbeat)
        with pytest.raises(LeaseExpired):
            await engine_of(env, leases.fence("hr")).run()
    assert [len(c) for c in env.target.applied] == [10]
    assert trio.current_time() - t0 == pytest.approx(0.7)


async def test_the_need_is_the_longest_recent_write_decaying_with_a_floor(
    autojump_clock: trio.abc.Clock,
) -> None:
    env = Env()
    env.fill(35)
    env.target.apply_delay = 3.0
    leases = Leases(until=trio.current_time() + 100)
    engine = engine_of(env, leases.fence("hr"))
    await engine.run()
    # Four writes of 3 s, then a flush of none: 3 s, decayed once.
    assert engine.ctx.write_need == pytest.approx(3.0 * WRITE_DECAY)
    assert leases.waits == 0
    env = Env()
    env.fill(5)
    engine = engine_of(env, leases.fence("hr"))
    await engine.run()
    assert engine.ctx.write_need == WRITE_FLOOR  # quick writes: the floor


async def test_a_node_alone_never_waits_however_long_its_writes(
    autojump_clock: trio.abc.Clock,
) -> None:
    env = Env()
    env.fill(25)
    env.target.apply_delay = 3600.0
    local = LocalCoordinator("n1")
    await local.claim(["hr"])
    fence = local.fence("hr")
    assert fence() and fence.valid_for() == float("inf")
    t0 = trio.current_time()
    await engine_of(env, fence).run()
    assert [len(c) for c in env.target.applied] == [10, 10, 5]
    assert trio.current_time() - t0 == pytest.approx(3 * 3600.0)  # no wait between


async def test_a_stop_ends_the_wait_for_the_renewal_at_once(
    autojump_clock: trio.abc.Clock,
) -> None:
    env = Env(target=Timed())
    env.fill(25)
    env.target.apply_delay = 0.6
    leases = Leases(until=trio.current_time() + 1.0)
    waits = RetryWaits()
    t0 = trio.current_time()

    async def stop() -> None:
        await trio.sleep(0.7)  # the second write waits for a renewal since 0.6 s
        waits.interrupt("stop")

    async with trio.open_nursery() as nursery:
        nursery.start_soon(stop)
        with job_retry_waits(waits), pytest.raises(Interrupted) as caught:
            await engine_of(env, leases.fence("hr")).run()
    assert caught.value.kind == "stop" and not isinstance(caught.value, LeaseExpired)
    assert trio.current_time() - t0 == pytest.approx(0.7)
    assert [len(c) for c in env.target.applied] == [10]
