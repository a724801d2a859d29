"""The JSON the control API answers, in the shapes and names of seeds 002 and 003."""

from __future__ import annotations

from datetime import UTC, datetime
from typing import Any

from ..cluster import NodeInfo
from ..control import IntegrationView
from ..durations import format_iso8601
from ..models import Execution, ExecutionError, Job, JobStats, JobStatus, LogEntry, Quarantine

__all__ = [
    "execution_json",
    "integration_json",
    "integration_status_json",
    "job_json",
    "node_json",
    "stamp",
]


def stamp(value: datetime | None) -> str | None:
    """``2024-01-01T12:00:00.000Z``, as the seeds write times."""
    if value is None:
        return None
    return value.astimezone(UTC).isoformat(timespec="milliseconds").replace("+00:00", "Z")


def stats_json(stats: JobStats) -> dict[str, int]:
    return {
        "processed": stats.processed,
        "created": stats.created,
        "updated": stats.updated,
        "deleted": stats.deleted,
        "disabled": stats.disabled,
        "skipped": stats.skipped,
        "errors": stats.errors,
    }


def job_json(
    job: Job, *, logs: list[LogEntry] | None = None, detail: bool = False, node: str | None = None
) -> dict[str, Any]:
    """The job, with the node that ran it; for a job that recorded none (it has not
    started, or was recorded before jobs named their node), *node*: the node that runs
    its integration's jobs (None: none now)."""
    out: dict[str, Any] = {
        "id": job.id,
        "integrationId": job.integration_id,
        "type": job.type,
        "status": job.status.value,
        "progress": round(job.progress, 1),
        "stage": job.stage,
        "parameters": dict(job.params),
        "createdAt": stamp(job.created_at),
        "startedAt": stamp(job.started_at),
        "completedAt": stamp(job.completed_at),
        "duration": job.duration_ms,
        "estimatedCompletion": stamp(job.estimated_completion) if not job.status.terminal else None,
        "error": job.error,
        "errorCode": job.error_code,
        # Seed 002's statuses stay as they are: a completed job whose objects did not all
        # sync says so here (its integration's last execution is ``EntryLevelErrors``).
        "completedWithErrors": job.status is JobStatus.COMPLETED and job.stats.errors > 0,
        "node": job.node or node,
    }
    out["stats" if detail else "result"] = stats_json(job.stats)
    if logs is not None:
        out["logs"] = [
            {"timestamp": stamp(e.timestamp), "level": e.level, "message": e.message} for e in logs
        ]
    return out


def error_json(error: ExecutionError | None) -> dict[str, Any] | None:
    if error is None:
        return None
    return {
        "code": error.code,
        "message": error.message,
        "tenantActionable": error.tenant_actionable,
    }


def execution_json(ex: Execution | None) -> dict[str, Any] | None:
    if ex is None:
        return None
    return {
        "activityIdentifier": ex.job_id,
        "countImported": ex.count_imported,
        "countExported": ex.count_exported,
        "countEscrowed": ex.count_escrowed,
        "countDeleted": ex.count_deleted,
        "state": ex.state,
        "error": error_json(ex.error),
        "timeBegan": stamp(ex.time_began),
        "timeEnded": stamp(ex.time_ended),
    }


def quarantine_json(q: Quarantine | None) -> dict[str, Any] | None:
    if q is None:
        return None
    return {
        "currentBegan": stamp(q.current_began),
        "nextAttempt": stamp(q.next_attempt),
        "reason": q.reason,
        "seriesBegan": stamp(q.series_began),
        "seriesCount": q.series_count,
        "error": error_json(q.error),
    }


def status_code(view: IntegrationView) -> str:
    st, cfg = view.state, view.cfg
    if st.disabled_reason or (st.schedule_state or cfg.state) == "Disabled":
        return "Disabled"
    if cfg.expiration is not None and cfg.expiration <= datetime.now(UTC):
        return "Disabled"
    if (st.schedule_state or cfg.state) == "Paused":
        return "Paused"
    if st.quarantine is not None:
        return "Quarantine"
    if st.last_execution is None and view.current_job is None:
        return "NotRun"
    return "Active"


def integration_json(view: IntegrationView) -> dict[str, Any]:
    """Seed 003's synchronizationJob, with sluiced's own additions (``origin``, ...)."""
    cfg, st = view.cfg, view.state
    return {
        "id": cfg.id,
        "name": cfg.name,
        "templateId": f"{cfg.source.connector}-to-{cfg.target.connector}",
        "origin": cfg.origin,
        "entityTypes": list(cfg.entity_types),
        "source": {"connector": cfg.source.connector},
        "target": {"connector": cfg.target.connector},
        "schedule": {
            "expiration": stamp(cfg.expiration),
            "interval": format_iso8601(view.interval),
            "state": (st.disabled_reason and "Disabled") or st.schedule_state or cfg.state,
        },
        "nextRun": stamp(view.next_run),
        "node": view.node,
        "currentJob": job_json(view.current_job, node=view.node) if view.current_job else None,
        "status": {
            "code": status_code(view),
            "countSuccessiveCompleteFailures": st.successive_failures,
            "escrowsPruned": st.escrows_pruned,
            "synchronizedEntryCountByType": [
                {"key": k, "value": v} for k, v in view.synced.items()
            ],
            "lastExecution": execution_json(st.last_execution),
            "lastSuccessfulExecution": execution_json(st.last_successful_execution),
            "lastSuccessfulExecutionWithExports": execution_json(
                st.last_successful_execution_with_exports
            ),
            "steadyStateFirstAchievedTime": stamp(st.steady_state_first),
            "steadyStateLastAchievedTime": stamp(st.steady_state_last),
            "quarantine": quarantine_json(st.quarantine),
            "disabledReason": st.disabled_reason,
            "deletionsApproved": st.deletions_approved,
        },
    }


def integration_status_json(view: IntegrationView) -> dict[str, Any]:
    """Seed 002's entry of ``GET /api/sync/integrations/status``."""
    st, h = view.state, view.history
    job = view.current_job
    code = status_code(view)
    last = st.last_execution
    return {
        "integrationId": view.cfg.id,
        "name": view.cfg.name,
        "status": "not_run" if code == "NotRun" else code.lower(),
        "lastSync": stamp(st.last_successful_execution.time_ended)
        if st.last_successful_execution
        else None,
        "nextSync": stamp(view.next_run),
        # How the last run ended (``Succeeded``, ``EntryLevelErrors``: completed with
        # objects left in escrow, ``Failed``, ``Stopped``) and its error, if any.
        "lastResult": last.state if last else None,
        "lastError": last.error.message if last and last.error else None,
        "syncInterval": round(view.interval.total_seconds()),
        "node": view.node,
        "currentJob": {"id": job.id, "status": job.status.value, "progress": round(job.progress, 1)}
        if job
        else None,
        "stats": {
            "totalJobs": h.total_jobs,
            "successRate": round(h.succeeded / h.finished, 4) if h.finished else None,
            "averageDuration": round(h.average_duration_ms)
            if h.average_duration_ms is not None
            else None,
        },
    }


def node_json(node: NodeInfo) -> dict[str, Any]:
    """A node of the store: its times are the database's clock."""
    return {
        "nodeId": node.node_id,
        "host": node.host,
        "pid": node.pid,
        "startedAt": stamp(node.started_at),
        "heartbeatAt": stamp(node.heartbeat_at),
        "leftAt": stamp(node.left_at),
        "live": node.live,
        "leases": node.leases,
    }
