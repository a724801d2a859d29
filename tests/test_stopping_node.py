"""A node that is stopping (its grace period) claims no more leases, and a job that
starts on it meanwhile (due, resumed, asked for) is stopped and recorded interrupted for
the next holder or the next start to resume, never left stopped for good."""

from __future__ import annotations

from dataclasses import replace
from functools import partial
from pathlib import Path

import pytest
import trio

from sluiced.models import JobStatus
from sluiced.runner import new_job

from .test_daemon import T0, make_config, make_harness
from .test_membership import Driven


async def test_a_stopping_node_claims_nothing_more_and_leaves_the_jobs_it_would_resume(
    tmp_path: Path, autojump_clock: trio.abc.Clock, monkeypatch: pytest.MonkeyPatch
) -> None:
    k = Driven()
    k.offer = {"hr"}
    monkeypatch.setattr("sluiced.supervisor.coordinator_for", lambda store, daemon: k)
    h = await make_harness(tmp_path, make_config(tmp_path, ["hr", "crm"]))
    orphan = replace(new_job("crm", "full_sync", T0), status=JobStatus.RUNNING)
    await h.store.save_job(orphan)  # a dead node's job
    h.connector.target.apply_delay = 30
    async with trio.open_nursery() as nursery:
        nursery.start_soon(partial(h.daemon.run, api=False))
        await trio.sleep(45)
        nursery.start_soon(h.daemon.stop)
        await trio.sleep(1)
        k.offer = {"crm"}  # free now: the stopping node must leave it to the others
        await trio.sleep(300)
    assert k.offer == {"crm"}
    left = await h.store.get_job(orphan.id)
    assert left is not None and left.status is JobStatus.RUNNING, left
    jobs = [j for j in (await h.store.list_jobs(limit=None))[0] if j.integration_id == "hr"]
    assert [(j.status, j.interrupted) for j in jobs] == [(JobStatus.STOPPED, True)]


async def test_a_job_started_while_the_daemon_stops_is_recorded_interrupted(
    tmp_path: Path, autojump_clock: trio.abc.Clock
) -> None:
    h = await make_harness(tmp_path, make_config(tmp_path, ["hr", "crm"]))
    h.connector.target.apply_delay = 30
    async with trio.open_nursery() as nursery:
        nursery.start_soon(partial(h.daemon.run, api=False))
        await trio.sleep(45)
        for job_id in h.daemon.runner.tasks("crm"):
            h.daemon.runner.stop(job_id, graceful=False)
        await trio.sleep(1)
        nursery.start_soon(h.daemon.stop)
        await trio.sleep(1)
        late = await h.daemon.runner.submit(new_job("crm", "full_sync", T0))
        await trio.sleep(300)
    done = await h.store.get_job(late.id)
    assert done is not None and done.status is JobStatus.STOPPED and done.interrupted, done
