"""Prometheus metrics, in the text format prometheus-client writes.

Counters and the duration histogram follow job events as jobs end (since the daemon
started); gauges (jobs by status, escrows, quarantine, the last success of each
integration) are read from the store at scrape time, escrows counted by the store.

The families are built by a collector of the daemon's own rather than by
prometheus-client's ``Counter``/``Histogram``: those add ``_created`` series, which
only a process-wide switch turns off.
"""

from __future__ import annotations

import platform
from collections import defaultdict
from collections.abc import Iterable, Iterator

from prometheus_client import CollectorRegistry, generate_latest
from prometheus_client.core import (
    CounterMetricFamily,
    GaugeMetricFamily,
    HistogramMetricFamily,
    Metric,
)
from prometheus_client.registry import Collector

from .. import __version__
from ..events import JobEvent
from ..models import JobStatus
from ..store import Store

__all__ = ["ACTIONS", "BUCKETS", "Metrics"]

#: The actions of ``sluiced_objects_synced_total`` (errors have a counter of their own).
ACTIONS = ("created", "updated", "deleted", "disabled", "skipped")
BUCKETS = (1.0, 5.0, 15.0, 60.0, 300.0, 900.0, 3600.0, 4 * 3600.0)


class _Histogram:
    def __init__(self) -> None:
        self.counts = [0] * (len(BUCKETS) + 1)  # the last one is +Inf
        self.sum = 0.0

    def observe(self, value: float) -> None:
        for i, bound in enumerate(BUCKETS):
            if value <= bound:
                self.counts[i] += 1
        self.counts[-1] += 1
        self.sum += value


class Metrics(Collector):
    """The daemon's metrics: :meth:`observe` every job event, :meth:`render` to scrape."""

    def __init__(self) -> None:
        self.registry = CollectorRegistry(auto_describe=False)
        self.registry.register(self)
        self._objects: defaultdict[tuple[str, str], int] = defaultdict(int)
        self._errors: defaultdict[str, int] = defaultdict(int)
        self._durations: defaultdict[tuple[str, str], _Histogram] = defaultdict(_Histogram)
        self._scraped: list[Metric] = []

    def observe(self, event: JobEvent) -> None:
        job = event.job
        if event.kind != "job" or job is None or not job.status.terminal:
            return
        if job.params.get("dry_run"):
            return  # a plan: nothing was done
        if job.duration_ms is not None:
            self._durations[job.integration_id, job.status.value].observe(job.duration_ms / 1000)
        for action in ACTIONS:
            self._objects[job.integration_id, action] += getattr(job.stats, action)
        self._errors[job.integration_id] += job.stats.errors

    async def render(self, store: Store, integration_ids: Iterable[str]) -> bytes:
        """The exposition text; reads the gauges from *store*, for the integrations
        configured now."""
        idents = sorted(integration_ids)
        jobs = GaugeMetricFamily("sluiced_jobs", "Jobs in the store by status", labels=["status"])
        for status in JobStatus:
            _, total = await store.list_jobs(statuses={status}, limit=0)
            jobs.add_metric([status.value], total)
        escrows = GaugeMetricFamily(
            "sluiced_escrows",
            "Escrowed objects by integration and entity type",
            labels=["integration", "entity_type"],
        )
        for (ident, entity_type), n in (await store.count_escrows()).items():
            escrows.add_metric([ident, entity_type], n)
        states = {s.integration_id: s for s in await store.list_states()}
        quarantined = GaugeMetricFamily(
            "sluiced_integration_quarantined",
            "1 while the integration is in quarantine",
            labels=["integration"],
        )
        success = GaugeMetricFamily(
            "sluiced_integration_last_success_timestamp_seconds",
            "When the integration's last successful run ended (Unix time; 0: never)",
            labels=["integration"],
        )
        for ident in idents:
            state = states.get(ident)
            quarantined.add_metric([ident], int(state is not None and state.quarantine is not None))
            last = state.last_successful_execution if state is not None else None
            success.add_metric([ident], last.time_ended.timestamp() if last is not None else 0)
        total_q = GaugeMetricFamily(
            "sluiced_integrations_quarantined", "Integrations in quarantine"
        )
        total_q.add_metric(
            [], sum(s.quarantine is not None for i, s in states.items() if i in idents)
        )
        configured = GaugeMetricFamily("sluiced_integrations", "Integrations configured")
        configured.add_metric([], len(idents))
        self._scraped = [jobs, escrows, quarantined, success, total_q, configured]
        return generate_latest(self.registry)

    def collect(self) -> Iterator[Metric]:
        info = GaugeMetricFamily(
            "sluiced_build_info",
            "The running sluiced: its version (always 1)",
            labels=["version", "python"],
        )
        info.add_metric([__version__, platform.python_version()], 1)
        yield info
        yield from self._scraped
        objects = CounterMetricFamily(
            "sluiced_objects_synced",
            "Objects synced by finished jobs, by action",
            labels=["integration", "action"],
        )
        for (ident, action), n in sorted(self._objects.items()):
            objects.add_metric([ident, action], n)
        yield objects
        errors = CounterMetricFamily(
            "sluiced_object_errors",
            "Objects that failed in finished jobs (escrowed or skipped with an error)",
            labels=["integration"],
        )
        for ident, n in sorted(self._errors.items()):
            errors.add_metric([ident], n)
        yield errors
        durations = HistogramMetricFamily(
            "sluiced_job_duration_seconds",
            "Duration of finished jobs",
            labels=["integration", "status"],
        )
        for (ident, status), h in sorted(self._durations.items()):
            cumulative = [(str(bound), n) for bound, n in zip(BUCKETS, h.counts, strict=False)] + [
                ("+Inf", h.counts[-1])
            ]
            durations.add_metric([ident, status], cumulative, h.sum)
        yield durations
