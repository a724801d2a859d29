"""A node that loses an integration's lease and claims it back in the same heartbeat (its
lease was freed while it was frozen, and nobody else took it): the job ended for the lost
lease finishes ending before the same job resumes, and the daemon stays up."""

from __future__ import annotations

from functools import partial
from pathlib import Path

import trio

from sluiced.models import JobStatus

from .test_daemon import make_harness


async def test_a_job_lost_and_claimed_back_at_once_resumes_after_its_old_task_ended(
    tmp_path: Path, autojump_clock: trio.abc.Clock
) -> None:
    h = await make_harness(tmp_path)
    h.connector.target.apply_delay = 30  # three batches of 30 s
    async with trio.open_nursery() as nursery:
        nursery.start_soon(partial(h.daemon.run, api=False))
        await trio.sleep(45)  # inside the second batch
        (job,) = await h.jobs()
        assert job.status is JobStatus.RUNNING
        await h.daemon._lost({"hr"})
        await h.daemon._claimed(["hr"])  # no checkpoint between: the old task still runs
        await trio.sleep(200)
        done = await h.store.get_job(job.id)
        nursery.cancel_scope.cancel()
    assert done is not None and done.status is JobStatus.COMPLETED, done
    assert sorted(h.connector.target.objects["user"]) == [f"t-u{i:03d}" for i in range(25)]
