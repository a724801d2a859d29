"""An integration's state is read, changed and written back by several parties in one
daemon (a job's outcome, pause/stop/start, a new interval): none of them may write back
a state read before another's write, or that write is lost (a pause undone by the end
of a job that finished at the same moment)."""

from __future__ import annotations

from pathlib import Path

import trio

from sluiced.models import IntegrationState
from sluiced.runner import new_job
from sluiced.store import MemoryStore

from .test_daemon import T0, make_harness


class SlowStateStore(MemoryStore):
    """Reading a state takes a second (a loaded database)."""

    async def get_state(self, integration_id: str) -> IntegrationState:
        state = await super().get_state(integration_id)
        await trio.sleep(1)
        return state


async def test_a_pause_is_not_undone_by_a_job_outcome_written_at_the_same_time(
    tmp_path: Path, autojump_clock: trio.abc.Clock
) -> None:
    h = await make_harness(tmp_path, store=SlowStateStore())
    job = new_job("hr", "full_sync", T0)
    async with trio.open_nursery() as nursery:
        nursery.start_soon(h.daemon.controller.pause, "hr")
        await trio.sleep(0.5)  # the pause read the state; the outcome reads it now
        nursery.start_soon(h.daemon.runner.outcomes._update_state, job, "Succeeded", None, None)
    state = await h.store.get_state("hr")
    assert state.schedule_state == "Paused"
    assert state.last_execution is not None and state.last_execution.job_id == job.id


async def test_an_interval_set_while_a_job_ends_is_kept(
    tmp_path: Path, autojump_clock: trio.abc.Clock
) -> None:
    h = await make_harness(tmp_path, store=SlowStateStore())
    job = new_job("hr", "full_sync", T0)
    await h.store.save_job(job)
    async with trio.open_nursery() as nursery:
        nursery.start_soon(h.daemon.runner.outcomes._update_state, job, "Succeeded", None, None)
        await trio.sleep(0.5)
        nursery.start_soon(h.daemon.controller.set_interval, job.id, 120.0)
    state = await h.store.get_state("hr")
    assert state.interval_s == 120.0
    assert state.last_execution is not None and state.last_execution.job_id == job.id
