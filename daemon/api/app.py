"""The handlers of the control API over the :class:`~sluiced.control.Controller`: each
gets a :class:`~sluiced.api.routing.Call` whose parameters and body were already checked
against its route's declaration (the table is :data:`sluiced.api.routes.ROUTES`)."""

from __future__ import annotations

from collections.abc import Mapping
from typing import Any

import trio
from starlette.responses import JSONResponse, Response, StreamingResponse

from ..control import Controller
from ..errors import ConfigError
from ..mapping import SchemaError
from ..models import JobStatus, JobType
from .errors import ApiError
from .routing import Call
from .shapes import (
    LEGACY_TYPES,
)
from .sse import job_event_stream, last_event_id
from .views import integration_json, integration_status_json, job_json, stamp

__all__ = [
    "create_integration",
    "create_job",
    "create_sync",
    "create_sync_scenes",
    "delete_integration",
    "delete_job",
    "drop_escrow",
    "get_integration",
    "get_job",
    "get_plan",
    "get_schema",
    "healthz",
    "initialize",
    "integrations_status",
    "job_events",
    "list_escrows",
    "list_integrations",
    "list_jobs",
    "metrics",
    "pause_integration",
    "provision_on_demand",
    "put_schema",
    "restart_integration",
    "resume_job",
    "retry_escrow",
    "set_interval",
    "start_integration",
    "stop_all",
    "stop_integration",
    "stop_job",
    "validate_credentials",
]


# -- jobs (seed 002) -------------------------------------------------------------------
async def list_jobs(call: Call, ctl: Controller) -> Any:
    names = call.query.get("status")
    statuses = (
        {JobStatus.QUEUED if n == "pending" else JobStatus(n) for n in names}
        if names is not None
        else None
    )
    jobs, total = await ctl.list_jobs(
        statuses=statuses,
        integration_id=call.query.get("integrationId"),
        limit=call.query.get("limit", 20),
    )
    return {"jobs": [job_json(j) for j in jobs], "total": total}


async def get_job(call: Call, ctl: Controller) -> Any:
    job, logs = await ctl.job_with_logs(call.path["jobId"])
    return job_json(job, logs=logs, detail=True)


async def create_job(call: Call, ctl: Controller) -> Any:
    body = call.body
    if "job_type" in body:
        return JSONResponse(await _create_seed_job(body, ctl), status_code=202)
    options = body.get("options", {})
    job_type = JobType(body["type"])  # a selective one has options.entityTypes (declared)
    extra = (
        {"include_archived": options["includeArchived"]} if "includeArchived" in options else None
    )
    job, estimate = await ctl.create_job(
        body["integrationId"],
        job_type,
        force=options.get("force", False),
        entity_types=options.get("entityTypes", ()),
        batch_size=options.get("batchSize"),
        extra=extra,
        dry_run=options.get("dryRun", False),
    )
    return {
        "success": True,
        "jobId": job.id,
        "status": job.status.value,
        "estimatedDuration": round(estimate) if estimate is not None else None,
    }


# -- Stash jobs (seeds 000 and 001) ---------------------------------------------------------
def _stash_job_json(job: Any) -> dict[str, Any]:
    return {
        "id": job.id,
        "type": job.type,
        "status": "pending" if job.status.value == "queued" else job.status.value,
        "progress": 0,
        "parameters": dict(job.params),
        "integrationId": job.integration_id,
    }


def _sync_params(data: Mapping[str, Any]) -> dict[str, Any]:
    params = {k: v for k, v in data.items() if k not in ("integrationId", "scene_ids")}
    if "force" in params:  # the legacy name of full_resync
        params.setdefault("full_resync", params["force"])
    return params


def _scene_ids(data: Mapping[str, Any], prefix: str = "") -> list[str]:
    ids = data.get("scene_ids")
    if not ids:
        raise ApiError(
            422,
            "MissingField",
            f"{prefix}scene_ids must be a non-empty array of scene ids",
            field=f"{prefix}scene_ids",
        )
    return [str(i) for i in ids]


async def create_sync(call: Call, ctl: Controller) -> Any:
    params = _sync_params(call.body)
    job = await ctl.create_stash_job(call.body.get("integrationId"), "sync", params)
    return _stash_job_json(job)


async def create_sync_scenes(call: Call, ctl: Controller) -> Any:
    ids = _scene_ids(call.body)
    job = await ctl.create_stash_job(
        call.body.get("integrationId"), "sync_scenes", {"scene_ids": ids}
    )
    return _stash_job_json(job)


async def _create_seed_job(body: Mapping[str, Any], ctl: Controller) -> Any:
    """``{"job_type": ..., "metadata": {...}}`` (seeds 000 and 001)."""
    metadata = body.get("metadata", {})
    if body["job_type"] == "sync_scenes":
        job = await ctl.create_stash_job(
            body.get("integrationId"),
            "sync_scenes",
            {"scene_ids": _scene_ids(metadata, "metadata.")},
        )
    else:
        params = {**_sync_params(metadata), **LEGACY_TYPES[body["job_type"]]}
        job = await ctl.create_stash_job(body.get("integrationId"), "sync", params)
    return _stash_job_json(job)


async def resume_job(call: Call, ctl: Controller) -> Any:
    job = await ctl.resume(call.path["jobId"])
    return {"success": True, "jobId": job.id, "status": job.status.value, "message": "Job resumed"}


async def stop_job(call: Call, ctl: Controller) -> Any:
    job = await ctl.stop_job(call.path["jobId"], graceful=call.body.get("graceful", True))
    status = (
        job.status.value if job.status.terminal or job.status is JobStatus.STOPPING else "stopping"
    )
    return {"success": True, "jobId": job.id, "status": status, "message": "Job stop requested"}


async def stop_all(call: Call, ctl: Controller) -> Any:
    ids = await ctl.stop_all(call.body.get("integrationId"))
    return {"success": True, "stoppedJobs": len(ids), "jobs": ids}


async def set_interval(call: Call, ctl: Controller) -> Any:
    old, new, next_run = await ctl.set_interval(call.path["jobId"], float(call.body["interval"]))
    return {
        "success": True,
        "jobId": call.path["jobId"],
        "oldInterval": round(old),
        "newInterval": round(new),
        "nextRun": stamp(next_run),
    }


async def delete_job(call: Call, ctl: Controller) -> Any:
    await ctl.delete_job(call.path["jobId"], delete_logs=call.body.get("deleteLogs", False))
    return {"success": True, "deleted": call.path["jobId"]}


async def job_events(call: Call, ctl: Controller) -> Any:
    """Server-sent events, pushed as the store records them (see :mod:`.sse`)."""
    job_id = call.path["jobId"]
    await ctl.job(job_id)
    daemon = ctl.daemon

    def running(ident: str) -> trio.Event | None:
        handle = daemon.runner.handles.get(ident)
        return handle.done if handle is not None else None

    events = job_event_stream(
        job_id,
        store=daemon.store,
        feed=daemon.feed,
        running=running,
        live=ctl.live,
        after=last_event_id(call.request.headers.get("last-event-id")),
    )
    return StreamingResponse(
        events,
        media_type="text/event-stream",
        headers={"Cache-Control": "no-store", "X-Accel-Buffering": "no"},
    )


# -- integrations (seeds 002 and 003) -----------------------------------------------------
async def initialize(call: Call, ctl: Controller) -> Any:
    ok = await ctl.daemon.reload()
    return {
        "success": ok,
        "message": "Sync system initialized" if ok else "the config is invalid; see the log",
        "schedulerStatus": "running",
        "integrationsFound": len(ctl.daemon.integrations),
    }


async def integrations_status(call: Call, ctl: Controller) -> Any:
    return {"integrations": [integration_status_json(v) for v in await ctl.views()]}


async def list_integrations(call: Call, ctl: Controller) -> Any:
    return {"value": [integration_json(v) for v in await ctl.views()]}


async def get_integration(call: Call, ctl: Controller) -> Any:
    return integration_json(await ctl.view(call.path["integrationId"]))


_TO_CONFIG = {
    "name": "name",
    "entityTypes": "entity_types",
    "fullSyncInterval": "full_sync_interval",
    "jitter": "jitter",
    "batchSize": "batch_size",
    "source": "source",
    "target": "target",
    "retry": "retry",
    "quarantine": "quarantine",
    "escrow": "escrow",
    "deletionThreshold": "deletion_threshold",
}
_SCHEDULE_KEYS = ("interval", "state", "expiration")


async def create_integration(call: Call, ctl: Controller) -> Any:
    body = call.body
    table = {_TO_CONFIG[k]: v for k, v in body.items() if k in _TO_CONFIG}
    table.update(body.get("schedule", {}))
    fields = {v: k for k, v in _TO_CONFIG.items()} | {k: f"schedule.{k}" for k in _SCHEDULE_KEYS}
    try:
        view = await ctl.create_integration(body["id"], table)
    except ConfigError as exc:
        problem = exc.problems[0]
        parts = problem.key.split(".")[2:]  # integrations.<id>.<key>...
        name = ".".join([fields.get(parts[0], parts[0]), *parts[1:]]) if parts else "id"
        raise ApiError(
            422,
            "InvalidField",
            f"{name}: found {problem.found}; expected {problem.expected}",
            field=name,
        ) from None
    return integration_json(view)


async def delete_integration(call: Call, ctl: Controller) -> Any:
    await ctl.delete_integration(call.path["integrationId"])
    return {"success": True, "deleted": call.path["integrationId"]}


async def start_integration(call: Call, ctl: Controller) -> Any:
    job_type = {"incremental": JobType.INCREMENTAL, "full": JobType.FULL}.get(
        call.body.get("syncType", "")
    )
    iid = call.path["integrationId"]
    job = await ctl.start(
        iid, job_type=job_type, immediate=call.body.get("scheduleImmediate", True)
    )
    return {
        "success": True,
        "integrationId": iid,
        "jobId": job.id if job else None,
        "message": "Sync started" if job else "Schedule resumed",
    }


async def stop_integration(call: Call, ctl: Controller) -> Any:
    iid = call.path["integrationId"]
    ids = await ctl.stop_integration(iid)
    return {
        "success": True,
        "integrationId": iid,
        "activeJobsStopped": len(ids),
        "message": "Integration sync stopped",
    }


async def pause_integration(call: Call, ctl: Controller) -> Any:
    iid = call.path["integrationId"]
    ids = await ctl.pause(iid)
    return {
        "success": True,
        "integrationId": iid,
        "pausedJobs": ids,
        "message": "Integration paused",
    }


async def restart_integration(call: Call, ctl: Controller) -> Any:
    scope = call.body.get("criteria", {}).get("resetScope", [])
    if isinstance(scope, str):  # Graph writes "Watermark, Escrows"
        scope = [s.strip() for s in scope.split(",") if s.strip()]
    iid = call.path["integrationId"]
    job = await ctl.restart(iid, scope)
    return {
        "success": True,
        "integrationId": iid,
        "jobId": job.id,
        "message": "Integration restarted",
    }


async def get_schema(call: Call, ctl: Controller) -> Any:
    return await ctl.get_schema(call.path["integrationId"])


async def put_schema(call: Call, ctl: Controller) -> Any:
    try:
        return await ctl.put_schema(call.path["integrationId"], dict(call.body))
    except SchemaError as exc:
        raise ApiError(422, "InvalidSchema", str(exc), field=exc.path) from None


async def list_escrows(call: Call, ctl: Controller) -> Any:
    escrows = await ctl.escrows(call.path["integrationId"])
    return {
        "escrows": [
            {
                "entityType": e.entity_type,
                "objectId": e.object_id,
                "kind": e.kind,
                "reason": e.reason,
                "attempts": e.attempts,
                "firstFailed": stamp(e.first_failed),
                "lastFailed": stamp(e.last_failed),
                "nextRetry": stamp(e.next_retry),
            }
            for e in escrows
        ],
        "total": len(escrows),
    }


async def retry_escrow(call: Call, ctl: Controller) -> Any:
    body = call.body
    job = await ctl.retry_escrow(call.path["integrationId"], body["entityType"], body["objectId"])
    return {
        "success": True,
        "jobId": job.id if job else None,
        "message": "retrying now" if job else "due now: the next run retries it",
    }


async def drop_escrow(call: Call, ctl: Controller) -> Any:
    body = call.body
    await ctl.drop_escrow(call.path["integrationId"], body["entityType"], body["objectId"])
    return {"success": True, "dropped": f"{body['entityType']}/{body['objectId']}"}


async def validate_credentials(call: Call, ctl: Controller) -> Any:
    iid = call.path["integrationId"]
    checks = await ctl.validate_credentials(iid)
    return {"integrationId": iid, "ok": all(c["ok"] for c in checks.values()), **checks}


async def provision_on_demand(call: Call, ctl: Controller) -> Any:
    body = call.body
    return await ctl.provision(
        call.path["integrationId"],
        body["objectId"],
        entity_type=body.get("entityType"),
        dry_run=body.get("dryRun", False),
    )


async def get_plan(call: Call, ctl: Controller) -> Any:
    return await ctl.plan(
        call.path["jobId"],
        offset=call.query.get("offset", 0),
        limit=call.query.get("limit", 1000),
    )


# -- service ----------------------------------------------------------------------------------
async def healthz(call: Call, ctl: Controller) -> Any:
    """The daemon answers; ``ok`` when its store and its scheduler work too."""
    problem: str | None = "the store did not answer within 5 s"
    with trio.move_on_after(5):
        problem = await ctl.daemon.store.check()
    scheduler = ctl.daemon.scheduler_health()
    ok = problem is None and scheduler["ok"]
    return {
        "status": "ok" if ok else "degraded",
        "ok": ok,
        "integrations": len(ctl.daemon.integrations),
        "activeJobs": len(ctl.daemon.runner.handles),
        "store": {"ok": problem is None, "error": problem},
        "scheduler": scheduler,
    }


async def metrics(call: Call, ctl: Controller) -> Any:
    body = await ctl.daemon.metrics.render(ctl)
    return Response(body, media_type="text/plain; version=0.0.4; charset=utf-8")
