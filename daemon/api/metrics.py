"""Prometheus metrics, rendered by prometheus-client from a registry of the daemon's own.

Counters and the duration histogram follow job events as jobs end; gauges (jobs by
status, escrows, quarantined integrations) are read from the store at scrape time.
"""

from __future__ import annotations

from typing import TYPE_CHECKING

from prometheus_client import CollectorRegistry, Counter, Gauge, Histogram, generate_latest

from ..events import JobEvent
from ..models import JobStatus

if TYPE_CHECKING:
    from ..control import Controller

__all__ = ["Metrics"]


class Metrics:
    def __init__(self) -> None:
        self.registry = CollectorRegistry(auto_describe=True)
        self.jobs = Gauge(
            "sluiced_jobs", "Jobs in the store by status", ["status"], registry=self.registry
        )
        self.durations = Histogram(
            "sluiced_job_duration_seconds",
            "Duration of finished jobs",
            ["integration", "status"],
            buckets=(1, 5, 15, 60, 300, 900, 3600, 4 * 3600, float("inf")),
            registry=self.registry,
        )
        self.objects = Counter(
            "sluiced_objects_synced",
            "Objects synced by finished jobs, by action",
            ["integration", "action"],
            registry=self.registry,
        )
        self.escrows = Gauge(
            "sluiced_escrows", "Escrowed objects", ["integration"], registry=self.registry
        )
        self.quarantined = Gauge(
            "sluiced_integrations_quarantined", "Integrations in quarantine", registry=self.registry
        )
        self.integrations = Gauge(
            "sluiced_integrations", "Integrations configured", registry=self.registry
        )

    def observe(self, event: JobEvent) -> None:
        job = event.job
        if event.kind != "job" or job is None or not job.status.terminal:
            return
        if job.params.get("dry_run"):
            return  # a plan: nothing was done
        if job.duration_ms is not None:
            self.durations.labels(job.integration_id, job.status.value).observe(
                job.duration_ms / 1000
            )
        for action in ("created", "updated", "deleted", "disabled", "skipped", "errors"):
            self.objects.labels(job.integration_id, action).inc(getattr(job.stats, action))

    async def render(self, ctl: Controller) -> bytes:
        store = ctl.daemon.store
        for status in JobStatus:
            _, total = await store.list_jobs(statuses={status}, limit=0)
            self.jobs.labels(status.value).set(total)
        quarantined = 0
        for ident in list(ctl.daemon.integrations):
            state = await store.get_state(ident)
            quarantined += state.quarantine is not None
            self.escrows.labels(ident).set(len(await store.list_escrows(ident)))
        self.quarantined.set(quarantined)
        self.integrations.set(len(ctl.daemon.integrations))
        return generate_latest(self.registry)
