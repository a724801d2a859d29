"""The control API: a Starlette app over the :class:`~sluiced.control.Controller`.

``ROUTES`` is the one route table: each route declares its path parameters, query and
body once (shapes in :mod:`sluiced.api.shapes`), and the app's checks and the OpenAPI
document (``GET /api/openapi.json``) are both made from that declaration (see
:mod:`sluiced.api.routing`).
"""

from __future__ import annotations

import json
from collections.abc import AsyncIterator, Mapping
from typing import Any

import trio
from starlette.applications import Starlette
from starlette.responses import JSONResponse, Response, StreamingResponse

from ..control import Controller
from ..errors import ConfigError
from ..mapping import SchemaError
from ..models import JobStatus, JobType
from . import responses as R
from . import routing
from .bodies import Field
from .errors import ApiError
from .routing import Call, Route
from .shapes import (
    CREATE_INTEGRATION,
    CREATE_JOB,
    ESCROW_KEY,
    INTEGRATION_ID,
    JOB_ID,
    LEGACY_TYPES,
    PROVISION,
    RESTART,
    STATUS_NAMES,
    SYNC,
    SYNC_SCENES,
    YEAR_S,
)
from .views import integration_json, integration_status_json, job_json, stamp

__all__ = ["ROUTES", "Route", "build_app", "openapi_document"]


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
    """Server-sent events: ``progress`` (the job) when it changes, ``log`` lines, ``end``."""
    job_id = call.path["jobId"]
    await ctl.job(job_id)

    async def events() -> AsyncIterator[str]:
        last: dict[str, Any] | None = None
        seen: list[tuple[str | None, str]] = []
        while True:
            job, logs = await ctl.job_with_logs(job_id, log_limit=50)
            current = job_json(job)
            if current != last:
                yield f"event: progress\ndata: {json.dumps(current)}\n\n"
                last = current
            entries = [(stamp(e.timestamp), e.message) for e in logs]
            start = 0
            for n in range(len(entries), 0, -1):
                if seen and entries[:n] == seen[-n:]:
                    start = n
                    break
            for e in logs[start:]:
                data = {"timestamp": stamp(e.timestamp), "level": e.level, "message": e.message}
                yield f"event: log\ndata: {json.dumps(data)}\n\n"
            seen = entries
            if job.status.terminal or job.status is JobStatus.PAUSED:
                yield f"event: end\ndata: {json.dumps({'status': job.status.value})}\n\n"
                return
            await trio.sleep(0.2)

    return StreamingResponse(
        events(), media_type="text/event-stream", headers={"Cache-Control": "no-store"}
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
    return {
        "status": "ok",
        "integrations": len(ctl.daemon.integrations),
        "activeJobs": len(ctl.daemon.runner.handles),
    }


async def metrics(call: Call, ctl: Controller) -> Any:
    body = await ctl.daemon.metrics.render(ctl)
    return Response(body, media_type="text/plain; version=0.0.4; charset=utf-8")


async def openapi(call: Call, ctl: Controller) -> Any:
    return openapi_document()


def _obj(**fields: Field) -> Field:
    return Field("object", fields=fields)


JOB = {"jobId": JOB_ID}
INTEGRATION = {"integrationId": INTEGRATION_ID}
EMPTY = _obj()

ROUTES: tuple[Route, ...] = (
    Route("GET", "/healthz", healthz, "Liveness: the daemon answers", errors=(), response=R.HEALTH),
    Route(
        "POST",
        "/api/sync",
        create_sync,
        "Stash: queue a sync job (seed 000)",
        SYNC,
        202,
        errors=(404, 409, 422),
        response=R.STASH_JOB,
    ),
    Route(
        "POST",
        "/api/sync/scenes",
        create_sync_scenes,
        "Stash: queue a sync_scenes job (seed 001)",
        SYNC_SCENES,
        202,
        errors=(404, 409, 422),
        response=R.STASH_JOB,
    ),
    Route("GET", "/metrics", metrics, "Prometheus metrics", media_type="text/plain", errors=()),
    Route(
        "GET", "/api/openapi.json", openapi, "This API as OpenAPI 3.1", errors=(), response=R.OBJECT
    ),
    Route(
        "GET",
        "/api/sync/jobs",
        list_jobs,
        "List jobs, newest first",
        query={
            "status": Field("array", items=Field("string", choices=STATUS_NAMES), min_length=1),
            "integrationId": INTEGRATION_ID,
            "limit": Field("int", minimum=1, maximum=1000),
        },
        errors=(422,),
        response=R.JOBS,
    ),
    Route(
        "POST",
        "/api/sync/jobs",
        create_job,
        "Create a job",
        CREATE_JOB,
        202,
        errors=(404, 409, 422),
        response={"anyOf": [R.JOB_CREATED, R.STASH_JOB]},
    ),
    Route(
        "POST",
        "/api/sync/jobs/stop-all",
        stop_all,
        "Stop all running jobs (of one integration if integrationId is given)",
        _obj(integrationId=INTEGRATION_ID),
        response=R.success(stoppedJobs=R.COUNT, jobs={"type": "array", "items": R.STRING}),
    ),
    Route(
        "GET",
        "/api/sync/jobs/{jobId}",
        get_job,
        "One job with stats and logs",
        params=JOB,
        response=R.JOB,
    ),
    Route(
        "GET",
        "/api/sync/jobs/{jobId}/events",
        job_events,
        "Follow a job: server-sent events",
        params=JOB,
        media_type="text/event-stream",
    ),
    Route(
        "GET",
        "/api/sync/jobs/{jobId}/plan",
        get_plan,
        "A dry run's plan: creates, updates with the changed attributes, disables, deletes",
        params=JOB,
        query={
            "offset": Field("int", minimum=0, maximum=10**9),
            "limit": Field("int", minimum=0, maximum=10_000),
        },
        errors=(404, 409, 422),
        response=R.obj(jobId=R.STRING, status={"enum": R.STATUSES}),
    ),
    Route(
        "POST",
        "/api/sync/jobs/{jobId}/resume",
        resume_job,
        "Resume a paused or failed job",
        EMPTY,
        params=JOB,
        errors=(404, 409, 422),
        response=R.success(jobId=R.STRING, status={"enum": R.STATUSES}, message=R.STRING),
    ),
    Route(
        "POST",
        "/api/sync/jobs/{jobId}/stop",
        stop_job,
        "Stop a job",
        _obj(graceful=Field("bool")),
        params=JOB,
        errors=(404, 409, 422),
        response=R.success(jobId=R.STRING, status={"enum": R.STATUSES}, message=R.STRING),
    ),
    Route(
        "PUT",
        "/api/sync/jobs/{jobId}/interval",
        set_interval,
        "Change the interval (seconds) of the job's integration",
        _obj(interval=Field("number", required=True, minimum=1, maximum=YEAR_S)),
        params=JOB,
        response=R.success(
            jobId=R.STRING, oldInterval=R.COUNT, newInterval=R.COUNT, nextRun=R.TIME
        ),
    ),
    Route(
        "DELETE",
        "/api/sync/jobs/{jobId}",
        delete_job,
        "Delete a job",
        _obj(deleteLogs=Field("bool")),
        params=JOB,
        errors=(404, 409, 422),
        response=R.success(deleted=R.STRING),
    ),
    Route(
        "POST",
        "/api/sync/initialize",
        initialize,
        "Re-read the config and (re)start scheduling",
        EMPTY,
        errors=(422,),
        response=R.success(message=R.STRING, integrationsFound=R.COUNT),
    ),
    Route(
        "GET",
        "/api/sync/integrations/status",
        integrations_status,
        "Sync status of all integrations",
        errors=(),
        response=R.INTEGRATIONS_STATUS,
    ),
    Route(
        "GET",
        "/api/sync/integrations",
        list_integrations,
        "List integrations",
        errors=(),
        response=R.INTEGRATIONS,
    ),
    Route(
        "POST",
        "/api/sync/integrations",
        create_integration,
        "Create an integration",
        CREATE_INTEGRATION,
        201,
        errors=(409, 422),
        response=R.INTEGRATION,
    ),
    Route(
        "GET",
        "/api/sync/integrations/{integrationId}",
        get_integration,
        "One integration",
        params=INTEGRATION,
        response=R.INTEGRATION,
    ),
    Route(
        "GET",
        "/api/sync/integrations/{integrationId}/escrows",
        list_escrows,
        "Objects that failed: reason, attempts, next retry",
        params=INTEGRATION,
        response=R.ESCROWS,
    ),
    Route(
        "POST",
        "/api/sync/integrations/{integrationId}/escrows/retry",
        retry_escrow,
        "Retry one escrowed object now",
        ESCROW_KEY,
        params=INTEGRATION,
        errors=(404, 409, 422),
        response=R.success(jobId=R.MAYBE_STRING, message=R.STRING),
    ),
    Route(
        "POST",
        "/api/sync/integrations/{integrationId}/escrows/drop",
        drop_escrow,
        "Forget one escrowed object",
        ESCROW_KEY,
        params=INTEGRATION,
        response=R.success(dropped=R.STRING),
    ),
    Route(
        "POST",
        "/api/sync/integrations/{integrationId}/validate-credentials",
        validate_credentials,
        "Check that the source and the target can be reached with their settings and credentials",
        EMPTY,
        params=INTEGRATION,
        response=R.obj(
            integrationId=R.STRING,
            ok={"type": "boolean"},
            source=R.obj(ok={"type": "boolean"}, message=R.STRING),
            target=R.obj(ok={"type": "boolean"}, message=R.STRING),
        ),
    ),
    Route(
        "POST",
        "/api/sync/integrations/{integrationId}/provision-on-demand",
        provision_on_demand,
        "Sync one source object now and trace each step; dryRun: only say what would happen",
        PROVISION,
        params=INTEGRATION,
        errors=(404, 409, 422, 502),
        response=R.obj(
            integrationId=R.STRING,
            objectId=R.STRING,
            dryRun={"type": "boolean"},
            jobId=R.MAYBE_STRING,
            steps={"type": "array", "items": R.obj(step=R.STRING, status=R.STRING)},
        ),
    ),
    Route(
        "DELETE",
        "/api/sync/integrations/{integrationId}",
        delete_integration,
        "Stop an integration and delete all its state",
        params=INTEGRATION,
        errors=(404, 409, 422),
        response=R.success(deleted=R.STRING),
    ),
    Route(
        "POST",
        "/api/sync/integrations/{integrationId}/start",
        start_integration,
        "Start: resume from a pause, lift quarantine, run now",
        _obj(
            syncType=Field("string", choices=("incremental", "full")),
            scheduleImmediate=Field("bool"),
        ),
        202,
        params=INTEGRATION,
        errors=(404, 409, 422),
        response=R.success(integrationId=R.STRING, jobId=R.MAYBE_STRING, message=R.STRING),
    ),
    Route(
        "POST",
        "/api/sync/integrations/{integrationId}/stop",
        stop_integration,
        "Stop an integration's jobs",
        EMPTY,
        params=INTEGRATION,
        response=R.success(integrationId=R.STRING, activeJobsStopped=R.COUNT, message=R.STRING),
    ),
    Route(
        "POST",
        "/api/sync/integrations/{integrationId}/pause",
        pause_integration,
        "Pause at an object boundary, checkpoint kept",
        EMPTY,
        params=INTEGRATION,
        errors=(404, 409, 422),
        response=R.success(
            integrationId=R.STRING,
            pausedJobs={"type": "array", "items": R.STRING},
            message=R.STRING,
        ),
    ),
    Route(
        "POST",
        "/api/sync/integrations/{integrationId}/restart",
        restart_integration,
        "Reset the given state and sync from scratch",
        RESTART,
        202,
        params=INTEGRATION,
        errors=(404, 409, 422),
        response=R.success(integrationId=R.STRING, jobId=R.STRING, message=R.STRING),
    ),
    Route(
        "GET",
        "/api/sync/integrations/{integrationId}/schema",
        get_schema,
        "The effective schema",
        params=INTEGRATION,
        response=R.obj(objectMappings={"type": "array"}),
    ),
    Route(
        "PUT",
        "/api/sync/integrations/{integrationId}/schema",
        put_schema,
        "Replace the schema (validated; an invalid one is refused and the old one stays)",
        Field(
            "object",
            fields={
                "objectMappings": Field("array", required=True, items=Field("object", extra=True))
            },
            description="a schema (see the README, Schemas); its meaning is checked too",
        ),
        params=INTEGRATION,
        response=R.obj(objectMappings={"type": "array"}),
    ),
)


def openapi_document() -> dict[str, Any]:
    """The OpenAPI 3.1 document of ``ROUTES``."""
    return routing.openapi_document(ROUTES)


def build_app(ctl: Controller) -> Starlette:
    """The control API over *ctl*."""
    return routing.build_app(ctl, ROUTES)
