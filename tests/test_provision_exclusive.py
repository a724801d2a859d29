"""Provisioning one object on demand holds its integration as a job does: no job
starts on it meanwhile (started, forced, scheduled), and it is refused while a job runs."""

from __future__ import annotations

from collections.abc import AsyncIterator
from datetime import timedelta
from functools import partial
from pathlib import Path
from typing import Any

import pytest
import trio

from sluiced.control import PROVISION_JOB, Conflict
from sluiced.models import JobStatus, JobType

from .test_daemon import Harness, make_harness


@pytest.fixture
async def harness(tmp_path: Path) -> AsyncIterator[Harness]:
    yield await make_harness(tmp_path)


async def test_no_job_runs_on_an_integration_while_an_object_is_provisioned(
    harness: Harness,
    autojump_clock: trio.abc.Clock,
) -> None:
    daemon, controller = harness.daemon, harness.daemon.controller
    answers: dict[str, Any] = {}
    async with trio.open_nursery() as nursery:
        nursery.start_soon(partial(daemon.run, api=False))
        await trio.sleep(590)  # the first full sync is over; the next one is due at 600 s
        assert [j.status for j in await harness.jobs()] == [JobStatus.COMPLETED]
        harness.connector.source.put("user", "new", name="new")
        harness.connector.target.apply_delay = 30  # the provisioning's write takes 30 s

        async def provision() -> None:
            answers["steps"] = (await controller.provision("hr", "new"))["steps"]

        nursery.start_soon(provision)
        await trio.sleep(15)  # the scheduled run comes due meanwhile
        assert daemon.runner.busy("hr")
        with pytest.raises(Conflict, match="active job"):
            await controller.create_job("hr", JobType.INCREMENTAL)
        with pytest.raises(Conflict, match="active job"):
            await controller.provision("hr", "u001")
        forced, _ = await controller.create_job("hr", JobType.INCREMENTAL, force=True)
        await trio.sleep(5)
        assert (await harness.store.get_job(forced.id)).status is JobStatus.QUEUED  # type: ignore[union-attr]
        await trio.sleep(300)
        nursery.cancel_scope.cancel()
    assert answers["steps"][-1]["status"] == "ok"
    jobs = await harness.jobs()
    (provisioned,) = [j for j in jobs if j.type == PROVISION_JOB]
    assert provisioned.status is JobStatus.COMPLETED and provisioned.completed_at is not None
    later = [j for j in jobs[1:] if j.type != PROVISION_JOB]
    assert forced.id in {j.id for j in later}
    for job in later:  # none ran beside the provisioning
        assert job.started_at is not None and job.started_at >= provisioned.completed_at, job
    assert (await harness.store.get_job(forced.id)).status is JobStatus.COMPLETED  # type: ignore[union-attr]


async def test_provisioning_is_refused_while_a_job_runs(
    harness: Harness,
    autojump_clock: trio.abc.Clock,
) -> None:
    harness.connector.target.apply_delay = 10  # the first full sync takes 30 s
    harness.connector.source.put("user", "new", name="new")
    async with trio.open_nursery() as nursery:
        nursery.start_soon(partial(harness.daemon.run, api=False))
        await trio.sleep(5)
        with pytest.raises(Conflict, match="active job"):
            await harness.daemon.controller.provision("hr", "new")
        assert harness.daemon.runner.busy("hr")
        await trio.sleep(60)
        assert not harness.daemon.runner.busy("hr")
        answer = await harness.daemon.controller.provision("hr", "u001")
        assert not harness.daemon.runner.busy("hr")
        nursery.cancel_scope.cancel()
    assert answer["steps"][-1]["step"] == "action"  # unchanged: nothing to do


async def test_a_run_that_came_due_during_a_provisioning_starts_when_it_ends(
    harness: Harness,
    autojump_clock: trio.abc.Clock,
) -> None:
    async with trio.open_nursery() as nursery:
        nursery.start_soon(partial(harness.daemon.run, api=False))
        await trio.sleep(590)  # the next run is due at 600 s
        harness.connector.source.put("user", "new", name="new")
        harness.connector.target.apply_delay = 30
        await harness.daemon.controller.provision("hr", "new")
        harness.connector.target.apply_delay = 0
        await trio.sleep(10)
        nursery.cancel_scope.cancel()
    _, provisioned, scheduled = await harness.jobs()
    assert provisioned.type == PROVISION_JOB and provisioned.completed_at is not None
    assert scheduled.type == "incremental_sync" and scheduled.started_at is not None
    assert timedelta(0) <= scheduled.started_at - provisioned.completed_at < timedelta(seconds=5)
