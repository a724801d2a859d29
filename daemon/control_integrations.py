"""The controller's operations on integrations (seed 003): what is shown of them, and
starting, pausing, stopping, restarting, creating and deleting them, and their
provisioning log. See :class:`~sluiced.control.Control` for the contract of each."""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from dataclasses import replace
from typing import Any

import trio

from .changes import RESET_DROP, Change, ChangeQuery, drop_log
from .control import RESET_SCOPES, Conflict, IntegrationView, NotFound
from .control_jobs import JobOps
from .models import IntegrationState, Job, JobStatus, JobType
from .runner import new_job
from .schedule import next_due

__all__ = ["DEFAULT_RESET", "IntegrationOps"]

#: How long a restart or a deletion waits for the integration's stopped jobs to end.
STOP_WAIT = 30
#: What ``restart`` resets when no scope is named.
DEFAULT_RESET = ("QuarantineState", "Watermark", "Escrows")


class IntegrationOps(JobOps):
    """Integrations: their views and their lifecycle."""

    async def view(self, integration_id: str) -> IntegrationView:
        resolved = self._integration(integration_id)
        state = await self.store.get_state(integration_id)
        due = next_due(resolved.cfg, state, now=self.clock.now(), started=self.host.started)
        synced = {
            et: await self.store.count_links(integration_id, et) for et in resolved.cfg.entity_types
        }
        return IntegrationView(
            cfg=resolved.cfg,
            state=state,
            next_run=due.at if due else None,
            current_job=await self.current_job(integration_id),
            history=await self.store.job_history(integration_id),
            synced=synced,
        )

    async def views(self) -> list[IntegrationView]:
        return [await self.view(i) for i in sorted(self.host.integrations)]

    async def _set_state(self, integration_id: str, **changes: Any) -> IntegrationState:
        async with self.store.state_lock(integration_id):
            state = replace(await self.store.get_state(integration_id), **changes)
            await self.store.put_state(state)
        self.host.wake()
        return state

    async def start(
        self, integration_id: str, *, job_type: JobType | None = None, immediate: bool = True
    ) -> Job | None:
        """One start is one run: the scheduler, which may find the integration Active
        and due in the meantime, and this request claim it atomically; if the scheduler
        won, its job is the one returned."""
        resolved = self._integration(integration_id)
        runner = self.runner
        if runner.busy(integration_id):
            raise Conflict(f"integration {integration_id!r} is already running a job")
        async with self.store.state_lock(integration_id):
            state = replace(
                await self.store.get_state(integration_id),
                schedule_state="Active",
                quarantine=None,
                successive_failures=0,
                disabled_reason=None,
            )
            await self.store.put_state(state)
        try:  # the scheduler is woken once our job is claimed
            paused, _ = await self.store.list_jobs(
                statuses={JobStatus.PAUSED}, integration_id=integration_id, limit=1
            )
            now = self.clock.now()
            if paused:
                job = await runner.submit_if_idle(paused[0])
            elif not immediate:
                return None
            else:
                if job_type is None:
                    due = next_due(resolved.cfg, state, now=now, started=self.host.started)
                    job_type = due.job_type if due else JobType.INCREMENTAL
                job = await runner.submit_if_idle(new_job(integration_id, job_type.value, now))
        finally:
            self.host.wake()
        return job if job is not None else await self.current_job(integration_id)

    async def pause(self, integration_id: str) -> list[str]:
        """The active job pauses at an object boundary, its checkpoint kept."""
        self._integration(integration_id)
        await self._set_state(integration_id, schedule_state="Paused")
        paused = self.runner.tasks(integration_id, finishing=False)
        for job_id in paused:
            self.runner.pause(job_id)
        return paused

    async def stop_integration(self, integration_id: str) -> list[str]:
        """``start`` brings it back."""
        self._integration(integration_id)
        await self._set_state(integration_id, schedule_state="Paused")
        return await self.stop_all(integration_id)

    async def _stop_and_wait(self, integration_id: str) -> None:
        """Stop the integration's jobs now and wait until their tasks ended.

        Raises:
            trio.TooSlowError: they took longer than :data:`STOP_WAIT` seconds.
        """
        ids = self.runner.tasks(integration_id)
        for job_id in ids:
            self.runner.stop(job_id, graceful=False)
        with trio.fail_after(STOP_WAIT):
            for job_id in ids:
                ended = self.runner.task_ended(job_id)
                if ended is not None:
                    await ended.wait()

    async def restart(self, integration_id: str, scopes: Sequence[str]) -> Job:
        """The schedule is left as it is: an integration started through the API stays
        Active (whatever the config says), one paused stays paused after this one run."""
        resolved = self._integration(integration_id)
        chosen = set(scopes or DEFAULT_RESET)
        if "Full" in chosen:
            chosen = set(RESET_SCOPES)
        await self._stop_and_wait(integration_id)
        paused, _ = await self.store.list_jobs(
            statuses={JobStatus.PAUSED}, integration_id=integration_id, limit=None
        )
        for job in paused:
            await self.store.save_job(
                replace(job, status=JobStatus.STOPPED, completed_at=self.clock.now())
            )
        if "Watermark" in chosen:
            await self.store.clear_watermarks(integration_id)
        if "Escrows" in chosen:
            log = drop_log(resolved.cfg.changes_retention, self.clock.now(), RESET_DROP)
            await self.store.clear_escrows(integration_id, log=log)
        if "ConnectorDataStore" in chosen:
            await self.store.clear_links(integration_id)
        # The schedule (Active, Paused, interval) is the operator's: no scope resets it.
        changes: dict[str, Any] = {}
        if "QuarantineState" in chosen:
            changes.update(quarantine=None, successive_failures=0, disabled_reason=None)
        if "ForceDeletes" in chosen:
            changes.update(deletions_approved=True, quarantine=None)
        await self._set_state(integration_id, **changes)
        job, _ = await self.create_job(integration_id, JobType.FULL)
        return job

    async def delete_integration(self, integration_id: str) -> None:
        """It leaves the schedule first, so that nothing starts it again while its jobs
        stop. Its provisioning log stays until the daemon's retention prunes it."""
        resolved = self._integration(integration_id)
        if resolved.cfg.origin == "config":
            raise Conflict(
                f"integration {integration_id!r} comes from {self.host.config_path}; "
                "remove it there and reload"
            )
        await self.host.remove_integration(integration_id)
        await self._stop_and_wait(integration_id)
        await self.store.delete_integration(integration_id, keep_changes=True)

    async def create_integration(
        self, integration_id: str, table: Mapping[str, Any]
    ) -> IntegrationView:
        if integration_id in self.host.integrations:
            raise Conflict(f"integration {integration_id!r} exists")
        await self.host.add_integration(integration_id, table)
        return await self.view(integration_id)

    async def reload(self) -> bool:
        return await self.host.reload()

    async def changes(self, integration_id: str, query: ChangeQuery) -> list[Change]:
        """An integration the daemon no longer has answers while its log holds changes."""
        if (
            integration_id not in self.host.integrations
            and integration_id not in await self.store.logged_integrations()
        ):
            raise NotFound(f"no integration {integration_id!r}")
        return await self.store.list_changes(integration_id, query)

    def integration_ids(self) -> list[str]:
        return sorted(self.host.integrations)
