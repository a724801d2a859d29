"""The daemon's :class:`~sluiced.control.Control`: jobs (:mod:`.control_jobs`),
integrations (:mod:`.control_integrations`), and here their schemas, escrows,
credentials, provisioning on demand and the daemon's health."""

from __future__ import annotations

from collections.abc import Awaitable, Callable, Mapping, Sequence
from dataclasses import replace
from typing import TYPE_CHECKING, Any

import trio

from .clock import Clock
from .cluster import Coordinator, Elsewhere, LocalCoordinator, NodeInfo
from .control import Conflict, Host, IntegrationView, NotFound, Runner, Unavailable
from .control_integrations import IntegrationOps
from .errors import SyncError
from .logs import get_logger
from .mapping import SchemaError
from .models import Escrow, Job, JobStatus, JobType
from .redact import redact_text
from .runner import IntegrationBusy
from .store import Store

if TYPE_CHECKING:
    from .cluster.commands import CommandBus

__all__ = ["Controller"]

log = get_logger("sluiced.controller")

#: How long ``health`` waits for the store to answer.
STORE_CHECK_TIMEOUT = 5


class Controller(IntegrationOps):
    """Build it with the daemon as *host*, its runner, store and clock, and the node's
    *coordinator* (default: a node alone)."""

    def __init__(
        self,
        *,
        host: Host,
        runner: Runner,
        store: Store,
        clock: Clock,
        coordinator: Coordinator | None = None,
        bus: CommandBus | None = None,
    ) -> None:
        super().__init__(host=host, runner=runner, store=store, clock=clock)
        self.coordinator = coordinator or LocalCoordinator()
        self.bus = bus
        self._background: trio.Nursery | None = None

    async def run(self, *, task_status: trio.TaskStatus[None] = trio.TASK_STATUS_IGNORED) -> None:
        """Own the nursery of :meth:`start_soon`'s work until cancelled."""
        async with trio.open_nursery() as nursery:
            self._background = nursery
            task_status.started()
            try:
                await trio.sleep_forever()
            finally:
                self._background = None

    def start_soon(self, work: Callable[[], Awaitable[None]], *, name: str) -> None:
        if self._background is None:
            raise Conflict("the daemon is not running")

        async def logged() -> None:
            try:
                await work()
            except Exception:
                log.exception("background work failed", work=name)

        self._background.start_soon(logged, name=name)

    # -- commands for what another node holds ---------------------------------------------
    async def _here(self, integration_id: str) -> None:
        """Raises :class:`~sluiced.cluster.commands.Elsewhere` (the API sends the request
        to the holder) unless this node holds the integration, or is alone, or knows no
        such integration (the operation itself then says so)."""
        if (
            self.bus is None
            or integration_id not in self.host.integrations
            or self.coordinator.locally_valid(integration_id)
        ):
            return
        held = await self.coordinator.holders([integration_id])
        raise Elsewhere(integration_id, held.get(integration_id))

    async def here(self, integration_id: str) -> None:
        await self._here(integration_id)

    async def forward(
        self, integration_id: str, kind: str, body: Mapping[str, Any]
    ) -> tuple[int, Any]:
        if self.bus is None:
            raise Conflict(f"no other node runs {integration_id!r}")
        return await self.bus.send(integration_id, kind, body)

    async def start(
        self, integration_id: str, *, job_type: JobType | None = None, immediate: bool = True
    ) -> Job | None:
        await self._here(integration_id)
        return await super().start(integration_id, job_type=job_type, immediate=immediate)

    async def pause(self, integration_id: str) -> list[str]:
        await self._here(integration_id)
        return await super().pause(integration_id)

    async def stop_integration(self, integration_id: str) -> list[str]:
        await self._here(integration_id)
        return await super().stop_integration(integration_id)

    async def restart(self, integration_id: str, scopes: Sequence[str]) -> Job:
        await self._here(integration_id)
        return await super().restart(integration_id, scopes)

    async def create_job(
        self, integration_id: str, job_type: JobType, **options: Any
    ) -> tuple[Job, float | None]:
        await self._here(integration_id)
        return await super().create_job(integration_id, job_type, **options)

    async def resume(self, job_id: str) -> Job:
        job = await self.job(job_id)
        if job.status in (JobStatus.PAUSED, JobStatus.FAILED):
            await self._here(job.integration_id)
        return await super().resume(job_id)

    async def stop_job(self, job_id: str, *, graceful: bool) -> Job:
        job = await self.job(job_id)
        if not job.status.terminal:
            await self._here(job.integration_id)
        return await super().stop_job(job_id, graceful=graceful)

    async def stop_all(self, integration_id: str | None = None) -> list[str]:
        if integration_id is not None:
            await self._here(integration_id)
        return await super().stop_all(integration_id)

    # -- the nodes -------------------------------------------------------------------------
    async def nodes(self) -> list[NodeInfo]:
        return await self.coordinator.nodes()

    async def holders(self) -> dict[str, str]:
        return await self.coordinator.holders(sorted(self.host.integrations))

    async def view(self, integration_id: str) -> IntegrationView:
        view = await super().view(integration_id)
        held = await self.coordinator.holders([integration_id])
        return replace(view, node=held.get(integration_id))

    async def views(self) -> list[IntegrationView]:
        held = await self.holders()
        return [
            replace(await super(Controller, self).view(i), node=held.get(i))
            for i in sorted(self.host.integrations)
        ]

    # -- schemas -----------------------------------------------------------------------------
    async def get_schema(self, integration_id: str) -> Mapping[str, Any]:
        resolved = self._integration(integration_id)
        state = await self.store.get_state(integration_id)
        return self.runner.schema_of(resolved.cfg, state).source

    async def put_schema(self, integration_id: str, data: Any) -> Mapping[str, Any]:
        """An invalid schema raises SchemaError and the old one stays; so does any
        schema for a target keyed by source ids (it takes records as the source returns
        them). The next run is a full pass (cheap: unchanged results are skipped)."""
        resolved = self._integration(integration_id)
        if self.runner.source_keyed(integration_id):
            raise SchemaError(
                "schema",
                f"{integration_id!r} writes into a target keyed by source ids, which takes"
                " records as the source returns them: it has no schema",
            )
        schema = self.runner.check_schema(resolved.cfg, data)
        await self.store.clear_watermarks(integration_id)
        await self._set_state(integration_id, schema=schema.source, full_sync_required=True)
        return schema.source

    # -- escrows -----------------------------------------------------------------------------
    async def escrows(self, integration_id: str) -> list[Escrow]:
        self._integration(integration_id)
        return await self.store.list_escrows(integration_id)

    async def retry_escrow(
        self, integration_id: str, entity_type: str, object_id: str
    ) -> Job | None:
        """A job runs for it now if none is running; else the running one's successor
        retries it."""
        self._integration(integration_id)
        if not await self.store.retry_escrow_at(
            integration_id, entity_type, object_id, self.clock.now()
        ):
            raise NotFound(f"no escrow {entity_type}/{object_id} in {integration_id!r}")
        if self.runner.busy(integration_id):
            return None
        job, _ = await self.create_job(integration_id, JobType.INCREMENTAL)
        return job

    async def drop_escrow(self, integration_id: str, entity_type: str, object_id: str) -> None:
        self._integration(integration_id)
        if not await self.store.drop_escrow(integration_id, entity_type, object_id):
            raise NotFound(f"no escrow {entity_type}/{object_id} in {integration_id!r}")

    # -- the connectors, now -------------------------------------------------------------------
    async def validate_credentials(self, integration_id: str) -> dict[str, dict[str, Any]]:
        self._integration(integration_id)
        return await self.runner.validate(integration_id)

    async def provision(
        self,
        integration_id: str,
        object_id: str,
        *,
        entity_type: str | None = None,
        dry_run: bool = False,
    ) -> dict[str, Any]:
        """A dry run writes nothing and may run beside a job; otherwise the integration
        is held like a job for the whole provisioning (a conflict while it is busy)."""
        resolved = self._integration(integration_id)
        cfg = resolved.cfg
        entity_type = entity_type or cfg.entity_types[0]
        if entity_type not in cfg.entity_types:
            raise Conflict(
                f"{integration_id!r} syncs no {entity_type!r} objects ({', '.join(cfg.entity_types)})"
            )
        if self.runner.source_keyed(integration_id):
            raise Conflict(
                f"{integration_id!r} writes into a target keyed by source ids: use its sync jobs"
            )
        try:
            job, steps = await self.runner.provision(
                integration_id, entity_type, object_id, dry_run=dry_run
            )
        except IntegrationBusy:
            raise Conflict(
                f"integration {integration_id!r} has an active job; provision when it ends"
            ) from None
        except (SyncError, trio.TooSlowError) as error:
            code = getattr(error, "code", type(error).__name__)
            raise Unavailable(redact_text(f"{code}: {error}")) from None
        return {
            "integrationId": integration_id,
            "entityType": entity_type,
            "objectId": object_id,
            "dryRun": dry_run,
            "jobId": None if dry_run else job.id,
            "steps": steps,
        }

    # -- the daemon ----------------------------------------------------------------------------
    async def health(self) -> dict[str, Any]:
        """``ok`` when the store and the scheduler work too."""
        problem: str | None = f"the store did not answer within {STORE_CHECK_TIMEOUT} s"
        with trio.move_on_after(STORE_CHECK_TIMEOUT):
            problem = await self.store.check()
        scheduler = self.host.scheduler_health()
        ok = problem is None and scheduler["ok"]
        return {
            "status": "ok" if ok else "degraded",
            "ok": ok,
            "integrations": len(self.host.integrations),
            "activeJobs": len(self.runner.tasks()),
            "store": {"ok": problem is None, "error": problem},
            "scheduler": scheduler,
        }

    async def metrics(self) -> bytes:
        return await self.host.render_metrics()

    def connectors(self, role: str) -> list[str]:
        return self.host.connector_names(role)
