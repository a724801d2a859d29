"""A lease lost while the scheduler starts a due job (the store refuses the job's first
write): that integration is left to the node that holds it now, and the scheduler goes
on with the others at once, healthy."""

from __future__ import annotations

from functools import partial
from pathlib import Path

import trio

from sluiced.models import Job, JobStatus
from sluiced.store import MemoryStore
from sluiced.store.errors import LeaseLost

from .test_daemon import make_config, make_harness


class LosingStore(MemoryStore):
    """Refuses the first write of a job of ``hr``, as for a lease lost meanwhile."""

    def __init__(self) -> None:
        super().__init__()
        self.refused = 0

    async def save_job(self, job: Job) -> None:
        if job.integration_id == "hr" and not self.refused:
            self.refused += 1
            raise LeaseLost("hr", "n1", 1, "n2")
        await super().save_job(job)


async def test_a_lease_lost_while_a_job_starts_holds_up_no_other_integration(
    tmp_path: Path, autojump_clock: trio.abc.Clock
) -> None:
    store = LosingStore()
    h = await make_harness(tmp_path, make_config(tmp_path, ["hr", "crm"]), store=store)
    async with trio.open_nursery() as nursery:
        nursery.start_soon(partial(h.daemon.run, api=False))
        await trio.sleep(5)
        jobs = await h.jobs()
        health = h.daemon.scheduler_health()
        nursery.cancel_scope.cancel()
    assert store.refused == 1
    assert ("crm", JobStatus.COMPLETED) in [(j.integration_id, j.status) for j in jobs]
    assert health["ok"] and health["error"] is None, health
