"""Integrations (seeds 002 and 003): ``/api/sync/integrations``, their status, and
starting, stopping, pausing, restarting, creating and deleting them."""

from __future__ import annotations

from typing import Any

from ..control import Control
from ..errors import ConfigError
from ..models import JobType
from . import responses as R
from .bodies import Field
from .errors import ApiError
from .routing import Call, Route
from .shapes import CREATE_INTEGRATION, INTEGRATION_ID, RESTART
from .views import integration_json, integration_status_json, node_json

__all__ = ["ROUTES"]

INTEGRATION = {"integrationId": INTEGRATION_ID}


async def integrations_status(call: Call, ctl: Control) -> Any:
    views = await ctl.views()
    return {
        "integrations": [integration_status_json(v) for v in views],
        "nodes": [node_json(n) for n in await ctl.nodes()],
    }


async def list_integrations(call: Call, ctl: Control) -> Any:
    return {"value": [integration_json(v) for v in await ctl.views()]}


async def get_integration(call: Call, ctl: Control) -> Any:
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


async def create_integration(call: Call, ctl: Control) -> Any:
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


async def delete_integration(call: Call, ctl: Control) -> Any:
    await ctl.delete_integration(call.path["integrationId"])
    return {"success": True, "deleted": call.path["integrationId"]}


async def start_integration(call: Call, ctl: Control) -> Any:
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


async def stop_integration(call: Call, ctl: Control) -> Any:
    iid = call.path["integrationId"]
    ids = await ctl.stop_integration(iid)
    return {
        "success": True,
        "integrationId": iid,
        "activeJobsStopped": len(ids),
        "message": "Integration sync stopped",
    }


async def pause_integration(call: Call, ctl: Control) -> Any:
    iid = call.path["integrationId"]
    ids = await ctl.pause(iid)
    return {
        "success": True,
        "integrationId": iid,
        "pausedJobs": ids,
        "message": "Integration paused",
    }


async def restart_integration(call: Call, ctl: Control) -> Any:
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


EMPTY = Field("object")

ROUTES: tuple[Route, ...] = (
    Route(
        "GET",
        "/api/sync/integrations/status",
        integrations_status,
        "Sync status of all integrations (each with the node that runs it) and of the nodes",
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
        Field(
            "object",
            fields={
                "syncType": Field("string", choices=("incremental", "full")),
                "scheduleImmediate": Field("bool"),
            },
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
)
