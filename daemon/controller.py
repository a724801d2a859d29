"""The daemon's :class:`~sluiced.control.Control`: jobs (:mod:`.control_jobs`),
integrations (:mod:`.control_integrations`), which node answers for which
(:mod:`.control_cluster`), and here their schemas, escrows, credentials, provisioning on
demand and the daemon's health. Each of these that writes for an integration or opens
its connectors is answered by the node that holds the integration."""

from __future__ import annotations

from collections.abc import Awaitable, Callable, Mapping
from typing import Any

import trio

from .changes import OPERATOR_DROP, drop_log
from .control import Conflict, NotFound, Unavailable
from .control_cluster import ClusterOps
from .errors import SyncError
from .logs import get_logger
from .mapping import SchemaError
from .models import Escrow, Job, JobType
from .redact import redact_text
from .runner import IntegrationBusy

__all__ = ["Controller"]

log = get_logger("sluiced.controller")

#: How long ``health`` waits for the store to answer.
STORE_CHECK_TIMEOUT = 5


class Controller(ClusterOps):
    """Build it with the daemon as *host*, its runner, store and clock, the node's
    *coordinator* (default: a node alone) and its *bus* of commands to the others
    (see :class:`~sluiced.control_cluster.ClusterOps`). :meth:`run` owns the background
    work plugins' routes start (:meth:`start_soon`)."""

    _background: trio.Nursery | None = None

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

    async def here(self, integration_id: str) -> None:
        await self._here(integration_id)

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
        await self._here(integration_id)
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
        await self._here(integration_id)
        if not await self.store.retry_escrow_at(
            integration_id, entity_type, object_id, self.clock.now()
        ):
            raise NotFound(f"no escrow {entity_type}/{object_id} in {integration_id!r}")
        if self.runner.busy(integration_id):
            return None
        job, _ = await self.create_job(integration_id, JobType.INCREMENTAL)
        return job

    async def drop_escrow(self, integration_id: str, entity_type: str, object_id: str) -> None:
        """The drop is logged in the provisioning log (a ``drop`` by no job, "dropped by
        an operator") with the escrow's removal, unless the integration keeps no log."""
        resolved = self._integration(integration_id)
        await self._here(integration_id)
        log = drop_log(resolved.cfg.changes_retention, self.clock.now(), OPERATOR_DROP)
        if not await self.store.drop_escrow(integration_id, entity_type, object_id, log=log):
            raise NotFound(f"no escrow {entity_type}/{object_id} in {integration_id!r}")

    # -- the connectors, now -------------------------------------------------------------------
    async def validate_credentials(self, integration_id: str) -> dict[str, dict[str, Any]]:
        self._integration(integration_id)
        await self._here(integration_id)
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
        await self._here(integration_id)
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
