"""The controller's start and restart under trio's virtual clock, against the scheduler
running in the same process: one start is one run, and no restart touches the schedule."""

from __future__ import annotations

from functools import partial
from pathlib import Path

import pytest
import trio

from sluiced.models import JobStatus
from sluiced.schedule import next_due

from .test_daemon import Harness, make_config, make_harness


async def paused_harness(tmp_path: Path) -> Harness:
    return await make_harness(tmp_path, make_config(tmp_path, state="Paused"))


async def test_start_of_a_paused_never_run_integration_runs_one_job(
    tmp_path: Path, autojump_clock: trio.abc.Clock
) -> None:
    h = await paused_harness(tmp_path)
    async with trio.open_nursery() as nursery:
        nursery.start_soon(partial(h.daemon.run, api=False))
        await trio.sleep(60)
        assert await h.jobs() == []  # paused by the config: the scheduler leaves it
        job = await h.daemon.controller.start("hr")
        assert job is not None
        with trio.fail_after(300):
            await h.daemon.runner.wait_idle()
        await trio.sleep(60)
        nursery.cancel_scope.cancel()
    jobs = await h.jobs()
    assert [(j.id, j.status) for j in jobs] == [(job.id, JobStatus.COMPLETED)]
    assert jobs[0].node == h.daemon.controller.coordinator.node_id  # the node that ran it


async def test_start_while_the_scheduler_fires_returns_the_one_job_that_runs(
    tmp_path: Path, autojump_clock: trio.abc.Clock
) -> None:
    """Whoever claims the integration first runs it; the other finds it busy."""
    h = await paused_harness(tmp_path)
    async with trio.open_nursery() as nursery:
        nursery.start_soon(partial(h.daemon.run, api=False))
        await trio.sleep(1)
        # The scheduler is told before start is: it sees the integration Active first.
        state = await h.store.get_state("hr")
        from dataclasses import replace

        await h.store.put_state(replace(state, schedule_state="Active"))
        h.daemon.wake()
        job = await h.daemon.controller.start("hr")
        with trio.fail_after(300):
            await h.daemon.runner.wait_idle()
        nursery.cancel_scope.cancel()
    jobs = await h.jobs()
    assert job is not None and [j.id for j in jobs] == [job.id]


@pytest.mark.parametrize("scopes", [["ForceDeletes"], ["Full"], []])
async def test_no_reset_scope_touches_the_schedule(
    tmp_path: Path, autojump_clock: trio.abc.Clock, scopes: list[str]
) -> None:
    h = await paused_harness(tmp_path)
    async with trio.open_nursery() as nursery:
        nursery.start_soon(partial(h.daemon.run, api=False))
        await trio.sleep(1)
        await h.daemon.controller.start("hr")
        with trio.fail_after(300):
            await h.daemon.runner.wait_idle()
        await h.daemon.controller.restart("hr", scopes)
        with trio.fail_after(300):
            await h.daemon.runner.wait_idle()
        nursery.cancel_scope.cancel()
    state = await h.store.get_state("hr")
    assert state.schedule_state == "Active"
    cfg = h.daemon.integrations["hr"].cfg
    now = h.daemon.clock.now()
    assert next_due(cfg, state, now=now, started=h.daemon.started) is not None


async def test_the_scheduler_waits_for_a_finishing_jobs_state(
    tmp_path: Path, autojump_clock: trio.abc.Clock
) -> None:
    """Between a job's end being saved and its integration's state (the last execution)
    being written, a wake-up of the scheduler (another integration's job ending, its
    periodic tick) must not find the integration never run and start it again."""
    h = await make_harness(tmp_path, make_config(tmp_path))
    put_state = h.store.put_state

    async def slow_put_state(state: object) -> None:
        await trio.sleep(5)  # the state is written a while after the job's end
        h.daemon.wake()  # ... and meanwhile something wakes the scheduler
        await trio.sleep(5)
        await put_state(state)  # type: ignore[arg-type]

    h.store.put_state = slow_put_state  # type: ignore[method-assign]
    async with trio.open_nursery() as nursery:
        nursery.start_soon(partial(h.daemon.run, api=False))
        await trio.sleep(60)
        with trio.fail_after(300):
            await h.daemon.runner.wait_idle()
        await trio.sleep(60)
        nursery.cancel_scope.cancel()
    assert len(await h.jobs()) == 1
