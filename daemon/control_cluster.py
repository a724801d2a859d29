"""The controller's operations as one node of several on a store: every request that
writes for one integration (or opens its connectors) is answered by the node that holds
the integration's lease, and what only that node knows in memory is read from the store
on the others. See :class:`~sluiced.control.Control` for the contract of each.

A request for an integration another node holds raises
:class:`~sluiced.cluster.Elsewhere` before it does anything; the control API then sends
it to the holder (:meth:`ClusterOps.forward`, :mod:`sluiced.cluster.commands`), which
answers it as it answers its own, and that answer is the answer here."""

from __future__ import annotations

from collections.abc import Collection, Mapping, Sequence
from dataclasses import replace
from datetime import datetime
from typing import TYPE_CHECKING, Any

import trio

from .clock import Clock
from .cluster import Coordinator, Elsewhere, LocalCoordinator, NodeInfo
from .control import Conflict, Host, IntegrationView, NodeStop, Runner
from .control_integrations import IntegrationOps
from .models import Job, JobStatus, JobType
from .store import Store, StoreUnavailable

if TYPE_CHECKING:
    from .cluster.commands import CommandBus

__all__ = ["STOP_ALL", "ClusterOps"]

#: The command that stops every job of the node that answers it.
STOP_ALL = "POST /api/sync/jobs/stop-all"
#: The statuses of a job that has not ended (what a node that does not run it reads).
_ACTIVE = frozenset({JobStatus.QUEUED, JobStatus.RUNNING, JobStatus.STOPPING})


class ClusterOps(IntegrationOps):
    """Build it with the daemon as *host*, its runner, store and clock, the node's
    *coordinator* (default: a node alone) and the *bus* of commands to other nodes
    (None: a node alone, which answers every request itself)."""

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

    # -- which node answers ------------------------------------------------------------
    def _holds(self, integration_id: str) -> bool:
        """Whether this node answers for the integration: it is alone, or holds the
        lease (as its own clock tells)."""
        return self.bus is None or self.coordinator.locally_valid(integration_id)

    async def _here(self, integration_id: str) -> None:
        """Raises :class:`~sluiced.cluster.Elsewhere` (the API sends the request to the
        holder) unless this node holds the integration, or is alone, or knows no such
        integration (the operation itself then says so)."""
        if self._holds(integration_id) or integration_id not in self.host.integrations:
            return
        held = await self.coordinator.holders([integration_id])
        raise Elsewhere(integration_id, held.get(integration_id))

    async def forward(
        self, integration_id: str, kind: str, body: Mapping[str, Any]
    ) -> tuple[int, Any]:
        if self.bus is None:
            raise Conflict(f"no other node runs {integration_id!r}")
        return await self.bus.send(integration_id, kind, body)

    # -- jobs ------------------------------------------------------------------------------
    async def current_job(self, integration_id: str) -> Job | None:
        """On the holder, the job its runner runs; elsewhere, the oldest job of the
        integration the store records as not ended, as last saved."""
        if self._holds(integration_id) or self.runner.tasks(integration_id):
            return await super().current_job(integration_id)
        jobs, _ = await self.store.list_jobs(
            statuses=_ACTIVE, integration_id=integration_id, limit=None
        )
        return jobs[-1] if jobs else None

    async def create_job(
        self, integration_id: str, job_type: JobType, **options: Any
    ) -> tuple[Job, float | None]:
        await self._here(integration_id)
        return await super().create_job(integration_id, job_type, **options)

    async def queue_job(
        self,
        integration_id: str | None,
        job_type: str,
        params: Mapping[str, Any],
        *,
        targets: Collection[str],
    ) -> Job:
        ident = self._integration_with_target(integration_id, targets)
        await self._here(ident)
        return await super().queue_job(ident, job_type, params, targets=targets)

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

    async def stop_cluster(self) -> list[NodeStop] | None:
        if self.bus is None:
            return None
        me = self.coordinator.node_id
        held = await self.coordinator.holders(sorted(self.host.integrations))
        one_each: dict[str, str] = {}  # another node -> one integration it holds
        for ident, node in sorted(held.items()):
            if node != me:
                one_each.setdefault(node, ident)
        stops: dict[str, NodeStop] = {}

        async def there(node: str, ident: str) -> None:
            stops[node] = await self._stop_on(node, ident)

        async with trio.open_nursery() as nursery:
            for node, ident in one_each.items():
                nursery.start_soon(there, node, ident)
            stops[me] = NodeStop(me, await super().stop_all(None))
        return [stops[me], *(stops[n] for n in sorted(one_each))]

    async def _stop_on(self, node: str, ident: str) -> NodeStop:
        """Stop every job of *node* by a command for *ident*, which it holds."""
        try:
            status, body = await self.forward(ident, STOP_ALL, {})
        except StoreUnavailable as exc:
            return NodeStop(node, [], str(exc))
        if status != 200 or not isinstance(body, dict):
            error = body.get("error", {}) if isinstance(body, dict) else {}
            return NodeStop(node, [], str(error.get("message", f"it answered {status}")))
        return NodeStop(node, [str(j) for j in body.get("jobs", [])])

    async def delete_job(self, job_id: str, *, delete_logs: bool) -> None:
        await self._here((await self.job(job_id)).integration_id)
        await super().delete_job(job_id, delete_logs=delete_logs)

    async def set_interval(
        self, job_id: str, seconds: float
    ) -> tuple[float, float, datetime | None]:
        await self._here((await self.job(job_id)).integration_id)
        return await super().set_interval(job_id, seconds)

    async def plan(self, job_id: str, *, offset: int, limit: int) -> dict[str, Any]:
        """A dry run's plan is a file of the node that ran it: asked elsewhere before it
        is there, the holder answers."""
        job = await self.store.get_job(job_id)
        if (
            job is not None
            and job.params.get("dry_run")
            and not self.runner.plan_path(job_id).exists()
        ):
            await self._here(job.integration_id)
        return await super().plan(job_id, offset=offset, limit=limit)

    # -- integrations ------------------------------------------------------------------------
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

    async def delete_integration(self, integration_id: str) -> None:
        await self._here(integration_id)
        await super().delete_integration(integration_id)

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
            replace(await super(ClusterOps, self).view(i), node=held.get(i))
            for i in sorted(self.host.integrations)
        ]
