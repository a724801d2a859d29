"""The route table of the control API: each route declares its path parameters, query
and body once (shapes in :mod:`sluiced.api.shapes`, answers in
:mod:`sluiced.api.responses`), and both the app's checks and the OpenAPI document
(``GET /api/openapi.json``) are made from that declaration (see
:mod:`sluiced.api.routing`)."""

from __future__ import annotations

from typing import Any

from starlette.applications import Starlette

from ..control import Controller
from . import responses as R
from . import routing
from .app import (
    create_integration,
    create_job,
    create_sync,
    create_sync_scenes,
    delete_integration,
    delete_job,
    drop_escrow,
    get_integration,
    get_job,
    get_plan,
    get_schema,
    healthz,
    initialize,
    integrations_status,
    job_events,
    list_escrows,
    list_integrations,
    list_jobs,
    metrics,
    pause_integration,
    provision_on_demand,
    put_schema,
    restart_integration,
    resume_job,
    retry_escrow,
    set_interval,
    start_integration,
    stop_all,
    stop_integration,
    stop_job,
    validate_credentials,
)
from .bodies import Field
from .routing import Call, Route
from .shapes import (
    CREATE_INTEGRATION,
    CREATE_JOB,
    ESCROW_KEY,
    INTEGRATION_ID,
    JOB_ID,
    PROVISION,
    RESTART,
    STATUS_NAMES,
    SYNC,
    SYNC_SCENES,
    YEAR_S,
)

__all__ = ["ROUTES", "build_app", "openapi_document"]


async def openapi(call: Call, ctl: Controller) -> Any:
    """The document, with the connectors this daemon has loaded named for each end."""
    doc = openapi_document()
    create = doc["paths"]["/api/sync/integrations"]["post"]["requestBody"]
    props = create["content"]["application/json"]["schema"]["properties"]
    for end in ("source", "target"):
        names = sorted(n for n, f in ctl.daemon.registry.connectors.items() if end in f.roles)
        props[end]["properties"]["connector"] = {"enum": names}
    return doc


def _obj(**fields: Field) -> Field:
    return Field("object", fields=fields)


JOB = {"jobId": JOB_ID}
INTEGRATION = {"integrationId": INTEGRATION_ID}
EMPTY = _obj()

ROUTES: tuple[Route, ...] = (
    Route(
        "GET",
        "/healthz",
        healthz,
        "Liveness, and whether the store and the scheduler work (ok)",
        errors=(),
        response=R.HEALTH,
    ),
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
