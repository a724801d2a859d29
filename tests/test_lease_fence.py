"""A job's fence: once its integration's lease is no longer valid on this node, the
engine writes nothing more to the target and the job stops with "lease lost"."""

from __future__ import annotations

import pytest

from sluiced.clock import TrioClock
from sluiced.cluster import LeaseExpired
from sluiced.engine import Interrupted, SyncEngine

from .test_engine import T0, Env


async def run_fenced(env: Env, allowed: int) -> list[int]:
    """Run a job whose fence holds for *allowed* checks; returns the checks' count."""
    checks: list[int] = []

    def fence() -> bool:
        checks.append(1)
        return len(checks) <= allowed

    async def log(level: str, message: str) -> None:
        env.logs.append(f"{level}: {message}")

    engine = SyncEngine(
        job=env.job(),
        cfg=env.cfg,
        source=env.source,
        target=env.target,
        store=env.store,
        clock=TrioClock(T0),
        log=log,
        control=env.control,
        breakers=env.breakers,
        fence=fence,
    )
    await engine.run()
    return checks


async def test_a_job_whose_lease_is_lost_writes_nothing_more_to_the_target() -> None:
    env = Env()
    env.fill(45)
    with pytest.raises(LeaseExpired) as caught:
        await run_fenced(env, allowed=2)
    assert isinstance(caught.value, Interrupted) and caught.value.kind == "lease"
    assert str(caught.value) == "lease lost: this node no longer holds the integration hr"
    assert [len(c) for c in env.target.applied] == [10, 10]  # the third batch is not sent
    assert env.target.calls.get("flush", 0) == 0


async def test_a_job_whose_lease_holds_runs_to_its_end() -> None:
    env = Env()
    env.fill(25)
    checks = await run_fenced(env, allowed=1000)
    assert [len(c) for c in env.target.applied] == [10, 10, 5]
    assert len(checks) == 4  # three batches and the flush
