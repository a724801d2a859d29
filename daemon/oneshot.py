"""``sluiced run --once``: one job of each integration this node may run, then exit.

On a store of its own (SQLite) a node holds every integration: each gets one job (its
interrupted one if there is one, else the kind that is due), and the run ends when they
all ended.

On a PostgreSQL store shared with other nodes, a one-shot run is a node for as long as
it runs, as a cron job would use it: it joins, claims every integration no live node
holds (past its fair share: it leaves as soon as it is done), resumes the jobs their
last holder left interrupted and starts one job of each of the others. Integrations
other live nodes hold are left to them (they run them on their schedule) and listed as
skipped: waiting for their leases would wait for as long as those nodes run. While its
jobs run it renews its leases every heartbeat, ends the jobs of a lease it lost, and
takes up the integrations freed meanwhile (one job each too). At the end it hands its
leases back and leaves, so the other nodes claim them at their next heartbeat.
"""

from __future__ import annotations

import math
from collections.abc import Awaitable, Callable, Collection, Mapping

import trio

from .clock import Clock
from .cluster import Coordinator
from .logs import get_logger
from .models import JobStatus
from .resolved import Resolved
from .runner import JobRunner, new_job
from .schedule import next_due
from .store import Store, StoreUnavailable

__all__ = ["OneShot"]

log = get_logger("sluiced.daemon")


class OneShot:
    """One job of each integration of *integrations* (a function: they may change) that
    this node holds through *coordinator* or can claim, run by *runner*; *resume*
    queues the interrupted jobs of the integrations it is given and returns their ids."""

    def __init__(
        self,
        *,
        coordinator: Coordinator,
        runner: JobRunner,
        store: Store,
        clock: Clock,
        integrations: Callable[[], Mapping[str, Resolved]],
        resume: Callable[[Collection[str]], Awaitable[list[str]]],
    ) -> None:
        self.coordinator = coordinator
        self.runner = runner
        self.store = store
        self.clock = clock
        self.integrations = integrations
        self.resume = resume
        #: The integrations that had their job (or needed none) in this run.
        self.handled: set[str] = set()
        self.jobs: list[str] = []

    async def run(self, resumed: list[str]) -> int:
        """Run to the end (*resumed*: the jobs already resumed at start-up). Returns 0 if
        every job it ran completed, else 1; integrations other nodes hold do not count.

        Raises:
            StoreUnavailable: the store cannot be read to start the jobs.
        """
        self.jobs = []
        await self._started(resumed)
        await self._take_up(await self._claim_free())
        while True:
            idle = False
            with trio.move_on_after(self.coordinator.heartbeat):
                await self.runner.wait_idle()
                idle = True
            if not idle:
                await self._heartbeat()
            elif claimed := await self._claim_free():  # freed since the last look
                await self._take_up(claimed)
            else:
                break
        return await self._outcome()

    async def _started(self, job_ids: list[str]) -> None:
        """Count *job_ids* (queued) as their integrations' jobs of this run."""
        self.jobs += job_ids
        for job_id in job_ids:
            job = await self.store.get_job(job_id)
            if job is not None:
                self.handled.add(job.integration_id)

    async def _claim_free(self) -> list[str]:
        """Claim every integration no live node holds; returns those claimed. A store out
        of reach claims nothing (logged)."""
        if math.isinf(self.coordinator.heartbeat):
            return []  # a node alone held every integration from the start
        claimed: list[str] = []
        try:
            while True:
                held = self.coordinator.held
                wanted = [i for i in self.integrations() if i not in held]
                if not wanted:
                    break
                elsewhere = await self.coordinator.holders(wanted)
                free = [i for i in wanted if i not in elsewhere]
                got = await self.coordinator.claim(free) if free else {}
                if not got:
                    break
                claimed += sorted(got)
        except StoreUnavailable as exc:
            log.error("cannot claim leases", error=str(exc))
        return claimed

    async def _heartbeat(self) -> None:
        """Renew the leases (ending the jobs of those lost) and take up what was freed."""
        try:
            lost = await self.coordinator.renew()
        except StoreUnavailable as exc:
            log.error("cannot renew the leases; trying again", error=str(exc))
            return
        if lost:
            log.warning("leases lost; their jobs end on this node", integrations=sorted(lost))
            self.runner.end_jobs(lost)
        await self._take_up(await self._claim_free())

    async def _take_up(self, claimed: list[str]) -> None:
        """Resume the interrupted jobs of *claimed*, then start one job of each held
        integration that has had none in this run and is due."""
        if claimed:
            log.info("leases claimed", integrations=claimed)
            await self._started(await self.resume(claimed))
        integrations = self.integrations()
        for ident in sorted(self.coordinator.held):
            resolved = integrations.get(ident)
            if resolved is None or ident in self.handled:
                continue
            self.handled.add(ident)
            if self.runner.busy(ident):
                continue
            now = self.clock.now()
            due = next_due(resolved.cfg, await self.store.get_state(ident), now=now, started=now)
            if due is not None:
                job = await self.runner.submit(new_job(ident, due.job_type.value, now))
                self.jobs.append(job.id)

    async def _outcome(self) -> int:
        skipped = sorted(set(self.integrations()) - self.handled)
        holders = await self._holders(skipped)
        jobs = [await self.store.get_job(j) for j in self.jobs]
        failed = sorted(j.id for j in jobs if j is not None and j.status is not JobStatus.COMPLETED)
        log.info(
            "one-shot run over",
            ran=sorted(self.handled),
            skipped={i: holders.get(i) for i in skipped},
            failed=failed,
        )
        return 0 if all(j is not None and j.status is JobStatus.COMPLETED for j in jobs) else 1

    async def _holders(self, ids: list[str]) -> dict[str, str]:
        if not ids:
            return {}
        try:
            return await self.coordinator.holders(ids)
        except StoreUnavailable:
            return {}
