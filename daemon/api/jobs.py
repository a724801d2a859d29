"""Jobs (seed 002): ``/api/sync/jobs`` and what each job answers to. ``POST
/api/sync/jobs`` also takes the forms of the plugins' job types (see
:class:`~sluiced.api.jobtypes.JobType`)."""

from __future__ import annotations

from collections.abc import Sequence
from typing import Any

from starlette.responses import JSONResponse, StreamingResponse

from ..control import Control
from ..models import JobStatus, JobType
from . import responses as R
from .bodies import Field
from .jobtypes import JobType as PluginJobType
from .routing import COMMAND_HEADER, Call, Handler, Route
from .shapes import INTEGRATION_ID, JOB_ID, STATUS_NAMES, YEAR_S, create_job_body
from .sse import job_event_stream, last_event_id
from .views import job_json, stamp

__all__ = ["job_routes"]

JOB = {"jobId": JOB_ID}


async def list_jobs(call: Call, ctl: Control) -> Any:
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
    held = await ctl.holders()
    return {"jobs": [job_json(j, node=held.get(j.integration_id)) for j in jobs], "total": total}


async def get_job(call: Call, ctl: Control) -> Any:
    job, logs = await ctl.job_with_logs(call.path["jobId"])
    node = (await ctl.holders()).get(job.integration_id)
    return job_json(job, logs=logs, detail=True, node=node)


def _create_job(job_types: Sequence[PluginJobType]) -> Handler:
    async def create_job(call: Call, ctl: Control) -> Any:
        body = call.body
        if "job_type" in body:
            kind = next(k for k in job_types if body["job_type"] in k.forms)
            job = await ctl.queue_job(
                body.get("integrationId"), kind.name, kind.params(body), targets=kind.targets
            )
            return JSONResponse(kind.answer(job), status_code=202)
        options = body.get("options", {})
        job_type = JobType(body["type"])  # a selective one has options.entityTypes (declared)
        extra = (
            {"include_archived": options["includeArchived"]}
            if "includeArchived" in options
            else None
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

    return create_job


async def resume_job(call: Call, ctl: Control) -> Any:
    job = await ctl.resume(call.path["jobId"])
    return {"success": True, "jobId": job.id, "status": job.status.value, "message": "Job resumed"}


async def stop_job(call: Call, ctl: Control) -> Any:
    job = await ctl.stop_job(call.path["jobId"], graceful=call.body.get("graceful", True))
    status = (
        job.status.value if job.status.terminal or job.status is JobStatus.STOPPING else "stopping"
    )
    return {"success": True, "jobId": job.id, "status": status, "message": "Job stop requested"}


async def stop_all(call: Call, ctl: Control) -> Any:
    """Of one integration: on the node that holds it. Of all: on every node of the
    store, each node's answer under ``nodes`` (``success`` is false if one did not
    answer); a node answering this for another stops only its own."""
    iid = call.body.get("integrationId")
    stops = None
    if iid is None and not call.request.headers.get(COMMAND_HEADER):
        stops = await ctl.stop_cluster()
    if stops is None:
        ids = await ctl.stop_all(iid)
        return {"success": True, "stoppedJobs": len(ids), "jobs": ids}
    ids = [j for s in stops for j in s.jobs]
    return {
        "success": all(s.error is None for s in stops),
        "stoppedJobs": len(ids),
        "jobs": ids,
        "nodes": [
            {"nodeId": s.node, "stoppedJobs": len(s.jobs), "jobs": s.jobs, "error": s.error}
            for s in stops
        ],
    }


async def set_interval(call: Call, ctl: Control) -> Any:
    old, new, next_run = await ctl.set_interval(call.path["jobId"], float(call.body["interval"]))
    return {
        "success": True,
        "jobId": call.path["jobId"],
        "oldInterval": round(old),
        "newInterval": round(new),
        "nextRun": stamp(next_run),
    }


async def delete_job(call: Call, ctl: Control) -> Any:
    await ctl.delete_job(call.path["jobId"], delete_logs=call.body.get("deleteLogs", False))
    return {"success": True, "deleted": call.path["jobId"]}


async def job_events(call: Call, ctl: Control) -> Any:
    """Server-sent events, pushed as the store records them (see :mod:`.sse`)."""
    job_id = call.path["jobId"]
    await ctl.job(job_id)
    events = job_event_stream(
        job_id,
        store=ctl,
        feed=ctl.feed,
        running=ctl.task_ended,
        live=ctl.live,
        after=last_event_id(call.request.headers.get("last-event-id")),
    )
    return StreamingResponse(
        events,
        media_type="text/event-stream",
        headers={"Cache-Control": "no-store", "X-Accel-Buffering": "no"},
    )


def _answers(job_types: Sequence[PluginJobType]) -> dict[str, Any]:
    """The answers of ``POST /api/sync/jobs``: the core's, then each job type's once."""
    schemas: list[dict[str, Any]] = [R.JOB_CREATED]
    for kind in job_types:
        if dict(kind.response) not in schemas:
            schemas.append(dict(kind.response))
    return {"anyOf": schemas} if len(schemas) > 1 else schemas[0]


def job_routes(job_types: Sequence[PluginJobType] = ()) -> tuple[Route, ...]:
    """The routes of jobs; ``POST /api/sync/jobs`` takes *job_types*' forms too."""
    return (
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
            _create_job(job_types),
            "Create a job",
            create_job_body([k.body for k in job_types]),
            202,
            errors=(404, 409, 422),
            response=_answers(job_types),
        ),
        Route(
            "POST",
            "/api/sync/jobs/stop-all",
            stop_all,
            "Stop all running jobs, on every node (of one integration if integrationId is given)",
            Field("object", fields={"integrationId": INTEGRATION_ID}),
            response=R.STOP_ALL,
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
            "POST",
            "/api/sync/jobs/{jobId}/resume",
            resume_job,
            "Resume a paused or failed job",
            Field("object"),
            params=JOB,
            errors=(404, 409, 422),
            response=R.success(jobId=R.STRING, status={"enum": R.STATUSES}, message=R.STRING),
        ),
        Route(
            "POST",
            "/api/sync/jobs/{jobId}/stop",
            stop_job,
            "Stop a job",
            Field("object", fields={"graceful": Field("bool")}),
            params=JOB,
            errors=(404, 409, 422),
            response=R.success(jobId=R.STRING, status={"enum": R.STATUSES}, message=R.STRING),
        ),
        Route(
            "PUT",
            "/api/sync/jobs/{jobId}/interval",
            set_interval,
            "Change the interval (seconds) of the job's integration",
            Field(
                "object",
                fields={"interval": Field("number", required=True, minimum=1, maximum=YEAR_S)},
            ),
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
            Field("object", fields={"deleteLogs": Field("bool")}),
            params=JOB,
            errors=(404, 409, 422),
            response=R.success(deleted=R.STRING),
        ),
    )
