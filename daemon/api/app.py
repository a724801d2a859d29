"""The control API: a Starlette app over the :class:`~sluiced.control.Controller`.

``ROUTES`` is the one route table: the app's routing and the OpenAPI document
(``GET /api/openapi.json``) are both built from it.
"""

from __future__ import annotations

import json
from collections.abc import AsyncIterator, Awaitable, Callable, Mapping
from dataclasses import dataclass, field
from typing import Any

import trio
from starlette.applications import Starlette
from starlette.requests import Request
from starlette.responses import JSONResponse, Response, StreamingResponse
from starlette.routing import Route as StarletteRoute

from ..control import RESET_SCOPES, Conflict, Controller, NotFound, Unavailable
from ..durations import DurationError
from ..errors import ConfigError
from ..mapping import SchemaError
from ..models import JobStatus, JobType
from ..store import StoreUnavailable
from .bodies import MAX_BODY, Field, parse_body, read_fields
from .errors import ApiError
from .views import integration_json, integration_status_json, job_json, stamp

__all__ = ["ROUTES", "Route", "build_app", "openapi_document"]

Handler = Callable[[Request, Controller], Awaitable[Any]]


@dataclass(frozen=True)
class Route:
    method: str
    path: str
    handler: Handler
    summary: str
    body: Mapping[str, Field] = field(default_factory=dict)
    status: int = 200


async def _body(
    request: Request, fields: Mapping[str, Field], *, optional: bool = True
) -> dict[str, Any]:
    return read_fields(parse_body(await _raw_body(request), optional=optional), fields)


async def _raw_body(request: Request) -> bytes:
    """The request's body, refused (413) past MAX_BODY without reading further."""
    length = request.headers.get("content-length")
    if length is not None and length.isdigit() and int(length) > MAX_BODY:
        raise ApiError(413, "BodyTooLarge", f"the body is larger than {MAX_BODY} bytes")
    raw = b""
    async for chunk in request.stream():
        raw += chunk
        if len(raw) > MAX_BODY:
            raise ApiError(413, "BodyTooLarge", f"the body is larger than {MAX_BODY} bytes")
    return raw


def _query(request: Request, allowed: tuple[str, ...]) -> None:
    for name in request.query_params:
        if name not in allowed:
            raise ApiError(
                422,
                "UnknownField",
                f"unknown query parameter {name} (accepted: {', '.join(allowed)})",
                field=name,
            )


# -- jobs (seed 002) -------------------------------------------------------------------
STATUS_NAMES = [s.value for s in JobStatus] + ["pending"]


async def list_jobs(request: Request, ctl: Controller) -> Any:
    _query(request, ("status", "integrationId", "limit"))
    statuses = None
    if "status" in request.query_params:
        names = [n for part in request.query_params.getlist("status") for n in part.split(",") if n]
        bad = [n for n in names if n not in STATUS_NAMES]
        if bad:
            raise ApiError(
                422,
                "InvalidField",
                f"status must be among {', '.join(STATUS_NAMES)}",
                field="status",
            )
        statuses = {JobStatus.QUEUED if n == "pending" else JobStatus(n) for n in names}
    raw_limit = request.query_params.get("limit", "20")
    if not raw_limit.isdigit() or not 1 <= int(raw_limit) <= 1000:
        raise ApiError(
            422, "InvalidField", "limit must be an integer from 1 to 1000", field="limit"
        )
    jobs, total = await ctl.list_jobs(
        statuses=statuses,
        integration_id=request.query_params.get("integrationId"),
        limit=int(raw_limit),
    )
    return {"jobs": [job_json(j) for j in jobs], "total": total}


async def get_job(request: Request, ctl: Controller) -> Any:
    _query(request, ())
    job, logs = await ctl.job_with_logs(request.path_params["jobId"])
    return job_json(job, logs=logs, detail=True)


JOB_TYPES = tuple(t.value for t in JobType)
CREATE_JOB = {
    "integrationId": Field("string", required=True),
    "type": Field("string", required=True, choices=JOB_TYPES),
    "options": Field("object"),
}
JOB_OPTIONS = {
    "force": Field("bool"),
    "includeArchived": Field("bool"),
    "batchSize": Field("int", minimum=1, maximum=100_000),
    "entityTypes": Field("strings"),
    "dryRun": Field("bool"),
}


async def create_job(request: Request, ctl: Controller) -> Any:
    raw = parse_body(await _raw_body(request), optional=False)
    if "job_type" in raw:
        return JSONResponse(await _create_seed_job(raw, ctl), status_code=202)
    body = read_fields(raw, CREATE_JOB)
    options = read_fields(body.get("options", {}), JOB_OPTIONS, prefix="options.")
    job_type = JobType(body["type"])
    if job_type is JobType.SELECTIVE and not options.get("entityTypes"):
        raise ApiError(
            422,
            "MissingField",
            "a selective_sync needs options.entityTypes",
            field="options.entityTypes",
        )
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
SYNC_PARAMS = {
    "full_resync": Field("bool"),
    "include_scenes": Field("bool"),
    "include_performers": Field("bool"),
    "include_tags": Field("bool"),
    "include_studios": Field("bool"),
    "force": Field("bool"),
}
#: Seed 000's migration notes: the old job types are ``sync`` with some types included.
LEGACY_TYPES = {
    "sync_performers": {
        "include_performers": True,
        "include_tags": False,
        "include_studios": False,
        "include_scenes": False,
    },
    "sync_tags": {
        "include_performers": False,
        "include_tags": True,
        "include_studios": False,
        "include_scenes": False,
    },
    "sync_studios": {
        "include_performers": False,
        "include_tags": False,
        "include_studios": True,
        "include_scenes": False,
    },
    "sync_all": {},
    "sync": {},
}


def _stash_job_json(job: Any) -> dict[str, Any]:
    return {
        "id": job.id,
        "type": job.type,
        "status": "pending" if job.status.value == "queued" else job.status.value,
        "progress": 0,
        "parameters": dict(job.params),
        "integrationId": job.integration_id,
    }


def _sync_params(data: Mapping[str, Any], prefix: str = "") -> dict[str, Any]:
    params = read_fields(data, {**SYNC_PARAMS, "integrationId": Field("string")}, prefix=prefix)
    params.pop("integrationId", None)
    if "force" in params:  # the legacy name of full_resync
        params.setdefault("full_resync", params["force"])
    return params


def _scene_ids(data: Mapping[str, Any], prefix: str = "") -> list[str]:
    fields = read_fields(
        data,
        {"scene_ids": Field("any", required=True), "integrationId": Field("string")},
        prefix=prefix,
    )
    ids = fields["scene_ids"]
    if (
        not isinstance(ids, list)
        or not ids
        or not all(isinstance(i, str | int) and not isinstance(i, bool) for i in ids)
    ):
        raise ApiError(
            422,
            "InvalidField",
            f"{prefix}scene_ids must be a non-empty array of scene ids",
            field=f"{prefix}scene_ids",
        )
    return [str(i) for i in ids]


async def create_sync(request: Request, ctl: Controller) -> Any:
    body = parse_body(await _raw_body(request), optional=True)
    params = _sync_params(body)
    job = await ctl.create_stash_job(body.get("integrationId"), "sync", params)
    return _stash_job_json(job)


async def create_sync_scenes(request: Request, ctl: Controller) -> Any:
    body = parse_body(await _raw_body(request), optional=True)
    ids = _scene_ids(body)
    job = await ctl.create_stash_job(body.get("integrationId"), "sync_scenes", {"scene_ids": ids})
    return _stash_job_json(job)


async def _create_seed_job(body: Mapping[str, Any], ctl: Controller) -> Any:
    """``{"job_type": ..., "metadata": {...}}`` (seeds 000 and 001)."""
    fields = read_fields(
        body,
        {
            "job_type": Field("string", required=True, choices=(*LEGACY_TYPES, "sync_scenes")),
            "metadata": Field("object"),
            "integrationId": Field("string"),
        },
    )
    metadata = fields.get("metadata", {})
    if fields["job_type"] == "sync_scenes":
        job = await ctl.create_stash_job(
            fields.get("integrationId"),
            "sync_scenes",
            {"scene_ids": _scene_ids(metadata, "metadata.")},
        )
    else:
        params = {**_sync_params(metadata, "metadata."), **LEGACY_TYPES[fields["job_type"]]}
        job = await ctl.create_stash_job(fields.get("integrationId"), "sync", params)
    return _stash_job_json(job)


async def resume_job(request: Request, ctl: Controller) -> Any:
    await _body(request, {})
    job = await ctl.resume(request.path_params["jobId"])
    return {"success": True, "jobId": job.id, "status": job.status.value, "message": "Job resumed"}


async def stop_job(request: Request, ctl: Controller) -> Any:
    body = await _body(request, {"graceful": Field("bool")})
    job = await ctl.stop_job(request.path_params["jobId"], graceful=body.get("graceful", True))
    status = (
        job.status.value if job.status.terminal or job.status is JobStatus.STOPPING else "stopping"
    )
    return {"success": True, "jobId": job.id, "status": status, "message": "Job stop requested"}


async def stop_all(request: Request, ctl: Controller) -> Any:
    body = await _body(request, {"integrationId": Field("string")})
    ids = await ctl.stop_all(body.get("integrationId"))
    return {"success": True, "stoppedJobs": len(ids), "jobs": ids}


async def set_interval(request: Request, ctl: Controller) -> Any:
    body = await _body(
        request,
        {"interval": Field("number", required=True, minimum=1, maximum=366 * 86400)},
        optional=False,
    )
    old, new, next_run = await ctl.set_interval(
        request.path_params["jobId"], float(body["interval"])
    )
    return {
        "success": True,
        "jobId": request.path_params["jobId"],
        "oldInterval": round(old),
        "newInterval": round(new),
        "nextRun": stamp(next_run),
    }


async def delete_job(request: Request, ctl: Controller) -> Any:
    body = await _body(request, {"deleteLogs": Field("bool")})
    await ctl.delete_job(request.path_params["jobId"], delete_logs=body.get("deleteLogs", False))
    return {"success": True, "deleted": request.path_params["jobId"]}


async def job_events(request: Request, ctl: Controller) -> Any:
    """Server-sent events: ``progress`` (the job) when it changes, ``log`` lines, ``end``."""
    job_id = request.path_params["jobId"]
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
async def initialize(request: Request, ctl: Controller) -> Any:
    await _body(request, {})
    ok = await ctl.daemon.reload()
    return {
        "success": ok,
        "message": "Sync system initialized" if ok else "the config is invalid; see the log",
        "schedulerStatus": "running",
        "integrationsFound": len(ctl.daemon.integrations),
    }


async def integrations_status(request: Request, ctl: Controller) -> Any:
    return {"integrations": [integration_status_json(v) for v in await ctl.views()]}


async def list_integrations(request: Request, ctl: Controller) -> Any:
    return {"value": [integration_json(v) for v in await ctl.views()]}


async def get_integration(request: Request, ctl: Controller) -> Any:
    return integration_json(await ctl.view(request.path_params["integrationId"]))


SCHEDULE = {
    "interval": Field("any"),
    "state": Field("string", choices=("Active", "Paused", "Disabled")),
    "expiration": Field("string"),
}
CREATE_INTEGRATION = {
    "id": Field("string", required=True),
    "name": Field("string"),
    "templateId": Field("string"),
    "entityTypes": Field("strings", required=True),
    "schedule": Field("object"),
    "fullSyncInterval": Field("any"),
    "jitter": Field("any"),
    "batchSize": Field("int", minimum=1),
    "source": Field("object", required=True),
    "target": Field("object", required=True),
    "retry": Field("object"),
    "quarantine": Field("object"),
    "escrow": Field("object"),
    "deletionThreshold": Field("object"),
}
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


async def create_integration(request: Request, ctl: Controller) -> Any:
    body = await _body(request, CREATE_INTEGRATION, optional=False)
    schedule = read_fields(body.get("schedule", {}), SCHEDULE, prefix="schedule.")
    table = {_TO_CONFIG[k]: v for k, v in body.items() if k in _TO_CONFIG}
    table.update({k: v for k, v in schedule.items()})
    fields = {v: k for k, v in _TO_CONFIG.items()} | {k: f"schedule.{k}" for k in SCHEDULE}
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


async def delete_integration(request: Request, ctl: Controller) -> Any:
    await ctl.delete_integration(request.path_params["integrationId"])
    return {"success": True, "deleted": request.path_params["integrationId"]}


async def start_integration(request: Request, ctl: Controller) -> Any:
    body = await _body(
        request,
        {
            "syncType": Field("string", choices=("incremental", "full")),
            "scheduleImmediate": Field("bool"),
        },
    )
    job_type = {"incremental": JobType.INCREMENTAL, "full": JobType.FULL}.get(
        body.get("syncType", "")
    )
    iid = request.path_params["integrationId"]
    job = await ctl.start(iid, job_type=job_type, immediate=body.get("scheduleImmediate", True))
    return {
        "success": True,
        "integrationId": iid,
        "jobId": job.id if job else None,
        "message": "Sync started" if job else "Schedule resumed",
    }


async def stop_integration(request: Request, ctl: Controller) -> Any:
    await _body(request, {})
    iid = request.path_params["integrationId"]
    ids = await ctl.stop_integration(iid)
    return {
        "success": True,
        "integrationId": iid,
        "activeJobsStopped": len(ids),
        "message": "Integration sync stopped",
    }


async def pause_integration(request: Request, ctl: Controller) -> Any:
    await _body(request, {})
    iid = request.path_params["integrationId"]
    ids = await ctl.pause(iid)
    return {
        "success": True,
        "integrationId": iid,
        "pausedJobs": ids,
        "message": "Integration paused",
    }


async def restart_integration(request: Request, ctl: Controller) -> Any:
    body = await _body(request, {"criteria": Field("object")})
    criteria = read_fields(
        body.get("criteria", {}), {"resetScope": Field("any")}, prefix="criteria."
    )
    scope = criteria.get("resetScope", [])
    if isinstance(scope, str):  # Graph writes "Watermark, Escrows"
        scope = [s.strip() for s in scope.split(",") if s.strip()]
    if not isinstance(scope, list) or any(s not in RESET_SCOPES for s in scope):
        raise ApiError(
            422,
            "InvalidField",
            f"criteria.resetScope must list scopes among {', '.join(RESET_SCOPES)}",
            field="criteria.resetScope",
        )
    iid = request.path_params["integrationId"]
    job = await ctl.restart(iid, scope)
    return {
        "success": True,
        "integrationId": iid,
        "jobId": job.id,
        "message": "Integration restarted",
    }


async def get_schema(request: Request, ctl: Controller) -> Any:
    return await ctl.get_schema(request.path_params["integrationId"])


async def put_schema(request: Request, ctl: Controller) -> Any:
    raw = await _raw_body(request)
    try:
        return await ctl.put_schema(
            request.path_params["integrationId"], parse_body(raw, optional=False)
        )
    except SchemaError as exc:
        raise ApiError(422, "InvalidSchema", str(exc), field=exc.path) from None


ESCROW_KEY = {
    "entityType": Field("string", required=True),
    "objectId": Field("string", required=True),
}


async def list_escrows(request: Request, ctl: Controller) -> Any:
    escrows = await ctl.escrows(request.path_params["integrationId"])
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


async def retry_escrow(request: Request, ctl: Controller) -> Any:
    body = await _body(request, ESCROW_KEY, optional=False)
    job = await ctl.retry_escrow(
        request.path_params["integrationId"], body["entityType"], body["objectId"]
    )
    return {
        "success": True,
        "jobId": job.id if job else None,
        "message": "retrying now" if job else "due now: the next run retries it",
    }


async def drop_escrow(request: Request, ctl: Controller) -> Any:
    body = await _body(request, ESCROW_KEY, optional=False)
    await ctl.drop_escrow(
        request.path_params["integrationId"], body["entityType"], body["objectId"]
    )
    return {"success": True, "dropped": f"{body['entityType']}/{body['objectId']}"}


async def validate_credentials(request: Request, ctl: Controller) -> Any:
    await _body(request, {})
    iid = request.path_params["integrationId"]
    checks = await ctl.validate_credentials(iid)
    return {"integrationId": iid, "ok": all(c["ok"] for c in checks.values()), **checks}


PROVISION = {
    "objectId": Field("string", required=True),
    "entityType": Field("string"),
    "dryRun": Field("bool"),
}


async def provision_on_demand(request: Request, ctl: Controller) -> Any:
    body = await _body(request, PROVISION, optional=False)
    return await ctl.provision(
        request.path_params["integrationId"],
        body["objectId"],
        entity_type=body.get("entityType"),
        dry_run=body.get("dryRun", False),
    )


def _int_param(request: Request, name: str, default: int, maximum: int) -> int:
    raw = request.query_params.get(name, str(default))
    if not raw.isdigit() or int(raw) > maximum:
        raise ApiError(
            422, "InvalidField", f"{name} must be an integer from 0 to {maximum}", field=name
        )
    return int(raw)


async def get_plan(request: Request, ctl: Controller) -> Any:
    _query(request, ("offset", "limit"))
    return await ctl.plan(
        request.path_params["jobId"],
        offset=_int_param(request, "offset", 0, 10**9),
        limit=_int_param(request, "limit", 1000, 10_000),
    )


# -- service ----------------------------------------------------------------------------------
async def healthz(request: Request, ctl: Controller) -> Any:
    return {
        "status": "ok",
        "integrations": len(ctl.daemon.integrations),
        "activeJobs": len(ctl.daemon.runner.handles),
    }


async def metrics(request: Request, ctl: Controller) -> Any:
    body = await ctl.daemon.metrics.render(ctl)
    return Response(body, media_type="text/plain; version=0.0.4; charset=utf-8")


async def openapi(request: Request, ctl: Controller) -> Any:
    return openapi_document()


ROUTES: tuple[Route, ...] = (
    Route("GET", "/healthz", healthz, "Liveness: the daemon answers"),
    Route("POST", "/api/sync", create_sync, "Stash: queue a sync job (seed 000)", SYNC_PARAMS, 202),
    Route(
        "POST",
        "/api/sync/scenes",
        create_sync_scenes,
        "Stash: queue a sync_scenes job (seed 001)",
        {"scene_ids": Field("strings", required=True)},
        202,
    ),
    Route("GET", "/metrics", metrics, "Prometheus metrics"),
    Route("GET", "/api/openapi.json", openapi, "This API as OpenAPI 3.1"),
    Route("GET", "/api/sync/jobs", list_jobs, "List jobs (status, integrationId, limit)"),
    Route("POST", "/api/sync/jobs", create_job, "Create a job", CREATE_JOB, 202),
    Route(
        "POST",
        "/api/sync/jobs/stop-all",
        stop_all,
        "Stop all running jobs",
        {"integrationId": Field("string")},
    ),
    Route("GET", "/api/sync/jobs/{jobId}", get_job, "One job with stats and logs"),
    Route("GET", "/api/sync/jobs/{jobId}/events", job_events, "Follow a job: server-sent events"),
    Route(
        "GET",
        "/api/sync/jobs/{jobId}/plan",
        get_plan,
        "A dry run's plan: creates, updates with the changed attributes, disables, deletes"
        " (offset, limit)",
    ),
    Route("POST", "/api/sync/jobs/{jobId}/resume", resume_job, "Resume a paused or failed job"),
    Route(
        "POST", "/api/sync/jobs/{jobId}/stop", stop_job, "Stop a job", {"graceful": Field("bool")}
    ),
    Route(
        "PUT",
        "/api/sync/jobs/{jobId}/interval",
        set_interval,
        "Change the interval of the job's integration",
        {"interval": Field("number", required=True)},
    ),
    Route(
        "DELETE",
        "/api/sync/jobs/{jobId}",
        delete_job,
        "Delete a job",
        {"deleteLogs": Field("bool")},
    ),
    Route(
        "POST", "/api/sync/initialize", initialize, "Re-read the config and (re)start scheduling"
    ),
    Route(
        "GET",
        "/api/sync/integrations/status",
        integrations_status,
        "Sync status of all integrations",
    ),
    Route("GET", "/api/sync/integrations", list_integrations, "List integrations"),
    Route(
        "POST",
        "/api/sync/integrations",
        create_integration,
        "Create an integration",
        CREATE_INTEGRATION,
        201,
    ),
    Route("GET", "/api/sync/integrations/{integrationId}", get_integration, "One integration"),
    Route(
        "GET",
        "/api/sync/integrations/{integrationId}/escrows",
        list_escrows,
        "Objects that failed: reason, attempts, next retry",
    ),
    Route(
        "POST",
        "/api/sync/integrations/{integrationId}/escrows/retry",
        retry_escrow,
        "Retry one escrowed object now",
        ESCROW_KEY,
    ),
    Route(
        "POST",
        "/api/sync/integrations/{integrationId}/escrows/drop",
        drop_escrow,
        "Forget one escrowed object",
        ESCROW_KEY,
    ),
    Route(
        "POST",
        "/api/sync/integrations/{integrationId}/validate-credentials",
        validate_credentials,
        "Check that the source and the target can be reached with their settings and credentials",
    ),
    Route(
        "POST",
        "/api/sync/integrations/{integrationId}/provision-on-demand",
        provision_on_demand,
        "Sync one source object now and trace each step; dryRun: only say what would happen",
        PROVISION,
    ),
    Route(
        "DELETE",
        "/api/sync/integrations/{integrationId}",
        delete_integration,
        "Stop an integration and delete all its state",
    ),
    Route(
        "POST",
        "/api/sync/integrations/{integrationId}/start",
        start_integration,
        "Start: resume from a pause, lift quarantine, run now",
        {"syncType": Field("string"), "scheduleImmediate": Field("bool")},
        202,
    ),
    Route(
        "POST",
        "/api/sync/integrations/{integrationId}/stop",
        stop_integration,
        "Stop an integration's jobs",
    ),
    Route(
        "POST",
        "/api/sync/integrations/{integrationId}/pause",
        pause_integration,
        "Pause at an object boundary, checkpoint kept",
    ),
    Route(
        "POST",
        "/api/sync/integrations/{integrationId}/restart",
        restart_integration,
        "Reset the given state and sync from scratch",
        {"criteria": Field("object")},
        202,
    ),
    Route(
        "GET", "/api/sync/integrations/{integrationId}/schema", get_schema, "The effective schema"
    ),
    Route(
        "PUT",
        "/api/sync/integrations/{integrationId}/schema",
        put_schema,
        "Replace the schema (validated; an invalid one is refused and the old one stays)",
        {"objectMappings": Field("any", required=True)},
    ),
)

_JSON_TYPES = {
    "bool": "boolean",
    "int": "integer",
    "number": "number",
    "string": "string",
    "strings": "array",
    "object": "object",
}


def openapi_document() -> dict[str, Any]:
    paths: dict[str, Any] = {}
    for route in ROUTES:
        op: dict[str, Any] = {
            "summary": route.summary,
            "operationId": route.handler.__name__,
            "responses": {
                str(route.status): {"description": "OK"},
                "4XX": {"description": 'An error: {"error": {code, message, field}}'},
            },
        }
        params = [p[1:-1] for p in route.path.split("/") if p.startswith("{")]
        if params:
            op["parameters"] = [
                {"name": p, "in": "path", "required": True, "schema": {"type": "string"}}
                for p in params
            ]
        if route.body:
            props = {
                name: ({"type": _JSON_TYPES[f.kind]} if f.kind in _JSON_TYPES else {})
                for name, f in route.body.items()
            }
            required = [n for n, f in route.body.items() if f.required]
            schema: dict[str, Any] = {
                "type": "object",
                "properties": props,
                "additionalProperties": False,
            }
            if required:
                schema["required"] = required
            op["requestBody"] = {
                "required": bool(required),
                "content": {"application/json": {"schema": schema}},
            }
        paths.setdefault(route.path, {})[route.method.lower()] = op
    return {
        "openapi": "3.1.0",
        "info": {"title": "sluiced control API", "version": "1"},
        "paths": paths,
    }


def build_app(ctl: Controller) -> Starlette:
    def endpoint(route: Route) -> Callable[[Request], Awaitable[Response]]:
        async def handle(request: Request) -> Response:
            try:
                result = await route.handler(request, ctl)
            except ApiError as exc:
                return JSONResponse(exc.body(), status_code=exc.status)
            except NotFound as exc:
                return JSONResponse(ApiError(404, "NotFound", str(exc)).body(), status_code=404)
            except Conflict as exc:
                return JSONResponse(ApiError(409, "Conflict", str(exc)).body(), status_code=409)
            except Unavailable as exc:
                return JSONResponse(ApiError(502, "Unavailable", str(exc)).body(), status_code=502)
            except StoreUnavailable as exc:  # a full state directory: the daemon stays up
                return JSONResponse(ApiError(503, exc.code, str(exc)).body(), status_code=503)
            except (DurationError, ValueError) as exc:
                return JSONResponse(ApiError(422, "InvalidField", str(exc)).body(), status_code=422)
            if isinstance(result, Response):
                return result
            return JSONResponse(result, status_code=route.status)

        return handle

    routes = [StarletteRoute(r.path, endpoint(r), methods=[r.method]) for r in ROUTES]

    async def not_found(request: Request, exc: Exception) -> Response:
        status = getattr(exc, "status_code", 404)
        code = "MethodNotAllowed" if status == 405 else "NotFound"
        return JSONResponse(
            ApiError(
                status,
                code,
                f"{request.method} {request.url.path}: "
                f"{'method not allowed' if status == 405 else 'no such endpoint'}",
            ).body(),
            status_code=status,
        )

    async def crashed(request: Request, exc: Exception) -> Response:
        return JSONResponse(
            ApiError(500, "InternalError", f"{type(exc).__name__}: {exc}").body(), status_code=500
        )

    return Starlette(
        routes=routes, exception_handlers={404: not_found, 405: not_found, Exception: crashed}
    )
