"""The Stash jobs of seeds 000 and 001 in the control API: ``POST /api/sync``, ``POST
/api/sync/scenes``, and their ``job_type`` forms of ``POST /api/sync/jobs`` (with the
old job types ``sync_performers``, ``sync_tags``, ``sync_studios`` and ``sync_all``
mapped as seed 000 says). Registered through the hooks ``sluiced_api_routes`` and
``sluiced_job_types``.

Each answers the job as seed 000 shows it, ``"status": "pending"`` until it starts. A
request without ``integrationId`` means the only integration whose target is the
``stash-mirror``. The web console offers both as the seeds' UI does: "Sync from Stash"
with its checkboxes, and "Sync Scenes" with a text field of scene ids.
"""

from __future__ import annotations

from collections.abc import Mapping
from typing import Any

from sluiced.api import ApiError, Call, Checkbox, ConsoleForm, Field, IdList, JobType, Route
from sluiced.config import ID_PATTERN
from sluiced.control import Control
from sluiced.models import Job, JobStatus

__all__ = ["JOB_TYPES", "ROUTES", "SYNC", "SYNC_SCENES"]

#: The integrations these jobs run on: those whose target is the Stash mirror.
TARGETS = frozenset({"stash-mirror"})

SYNC_PARAMS = {
    "full_resync": Field("bool"),
    "include_scenes": Field("bool"),
    "include_performers": Field("bool"),
    "include_tags": Field("bool"),
    "include_studios": Field("bool"),
    "force": Field("bool", description="the legacy name of full_resync"),
}
_ONLY = ("performers", "tags", "studios", "scenes")
#: Seed 000's migration notes: the old job types are ``sync`` with some types included.
LEGACY_TYPES: dict[str, dict[str, bool]] = {
    **{f"sync_{only}": {f"include_{t}": t == only for t in _ONLY} for only in _ONLY[:3]},
    "sync_all": {},
    "sync": {},
}
STASH_INTEGRATION = Field(
    "string", pattern=ID_PATTERN, description="the Stash integration (the only one if left out)"
)
SCENE_IDS = Field(
    "array", items=Field("id", max_length=64), min_length=1, max_length=10_000, required=True
)
#: The bodies of ``POST /api/sync`` and ``POST /api/sync/scenes``.
SYNC_BODY = Field("object", fields={**SYNC_PARAMS, "integrationId": STASH_INTEGRATION})
SYNC_SCENES_BODY = Field(
    "object", fields={"scene_ids": SCENE_IDS, "integrationId": STASH_INTEGRATION}
)

_STATUSES = [s.value for s in JobStatus]
#: The JSON schema of :func:`job_answer`.
JOB_ANSWER: dict[str, Any] = {
    "type": "object",
    "required": ["id", "type", "status", "progress", "parameters", "integrationId"],
    "properties": {
        "id": {"type": "string"},
        "type": {"type": "string"},
        "status": {"enum": ["pending", *_STATUSES]},
        "progress": {"type": "number"},
        "parameters": {"type": "object"},
        "integrationId": {"type": "string"},
    },
}


def job_answer(job: Job) -> dict[str, Any]:
    """A queued job as seed 000 shows it."""
    return {
        "id": job.id,
        "type": job.type,
        "status": "pending" if job.status is JobStatus.QUEUED else job.status.value,
        "progress": 0,
        "parameters": dict(job.params),
        "integrationId": job.integration_id,
    }


def sync_params(data: Mapping[str, Any]) -> dict[str, Any]:
    """A ``sync`` job's params from a checked body (``force`` is kept, and read as
    ``full_resync`` unless that is given)."""
    params = {k: v for k, v in data.items() if k not in ("integrationId", "scene_ids")}
    if "force" in params:  # the legacy name of full_resync
        params.setdefault("full_resync", params["force"])
    return params


def scene_ids(data: Mapping[str, Any], prefix: str = "") -> list[str]:
    """The ``scene_ids`` of a checked body, as strings.

    Raises:
        ApiError: 422, there are none.
    """
    ids = data.get("scene_ids")
    if not ids:
        raise ApiError(
            422,
            "MissingField",
            f"{prefix}scene_ids must be a non-empty array of scene ids",
            field=f"{prefix}scene_ids",
        )
    return [str(i) for i in ids]


#: Seed 000's "Sync from Stash" with its checkboxes, checked as the seed's defaults are.
SYNC_FORM = ConsoleForm(
    title="Sync from Stash",
    job_type="sync",
    submit="Sync from Stash",
    legend="What to sync",
    fields=(
        Checkbox(name="full_resync", label="Full Resync (ignore timestamps)", default=False),
        Checkbox(name="include_scenes", label="Include Scenes", default=True),
        Checkbox(name="include_performers", label="Include Performers", default=True),
        Checkbox(name="include_tags", label="Include Tags", default=True),
        Checkbox(name="include_studios", label="Include Studios", default=True),
    ),
)
#: Seed 001's "Sync Scenes" with a text field for scene ids, which the scenes selected
#: in the provisioning log can fill too.
SYNC_SCENES_FORM = ConsoleForm(
    title="Sync Scenes",
    job_type="sync_scenes",
    submit="Sync Scenes",
    fields=(
        IdList(
            name="scene_ids",
            label="Scene IDs",
            separators=", ",
            hint="Separated by commas or spaces.",
            inputmode="text",
            pick="scene",
        ),
    ),
)

SYNC_SCENES = JobType(
    name="sync_scenes",
    body=Field(
        "object",
        fields={
            "job_type": Field("string", required=True, choices=("sync_scenes",)),
            "metadata": Field(
                "object",
                required=True,
                fields={"scene_ids": SCENE_IDS, "integrationId": Field("string")},
            ),
            "integrationId": STASH_INTEGRATION,
        },
        description="seed 001: a Stash sync_scenes job",
    ),
    params=lambda body: {"scene_ids": scene_ids(body["metadata"], "metadata.")},
    targets=TARGETS,
    answer=job_answer,
    response=JOB_ANSWER,
    console=(SYNC_SCENES_FORM,),
)
SYNC = JobType(
    name="sync",
    body=Field(
        "object",
        fields={
            "job_type": Field("string", required=True, choices=tuple(LEGACY_TYPES)),
            "metadata": Field(
                "object",
                fields={**SYNC_PARAMS, "integrationId": Field("string", description="ignored")},
            ),
            "integrationId": STASH_INTEGRATION,
        },
        description="seed 000: a Stash sync job",
    ),
    params=lambda body: {
        **sync_params(body.get("metadata", {})),
        **LEGACY_TYPES[body["job_type"]],
    },
    targets=TARGETS,
    answer=job_answer,
    response=JOB_ANSWER,
    console=(SYNC_FORM,),
)
JOB_TYPES = (SYNC_SCENES, SYNC)


async def create_sync(call: Call, ctl: Control) -> Any:
    params = sync_params(call.body)
    job = await ctl.queue_job(call.body.get("integrationId"), SYNC.name, params, targets=TARGETS)
    return job_answer(job)


async def create_sync_scenes(call: Call, ctl: Control) -> Any:
    params = {"scene_ids": scene_ids(call.body)}
    job = await ctl.queue_job(
        call.body.get("integrationId"), SYNC_SCENES.name, params, targets=TARGETS
    )
    return job_answer(job)


ROUTES = (
    Route(
        "POST",
        "/api/sync",
        create_sync,
        "Stash: queue a sync job (seed 000)",
        SYNC_BODY,
        202,
        errors=(404, 409, 422),
        response=JOB_ANSWER,
    ),
    Route(
        "POST",
        "/api/sync/scenes",
        create_sync_scenes,
        "Stash: queue a sync_scenes job (seed 001)",
        SYNC_SCENES_BODY,
        202,
        errors=(404, 409, 422),
        response=JOB_ANSWER,
    ),
)
