"""JSON schemas of the control API's answers, for the OpenAPI document. They name the
fields each answer always has and their types; answers may carry more fields (later
additions stay compatible), so objects are open."""

from __future__ import annotations

from typing import Any

from ..models import JobStatus

__all__ = [
    "ESCROWS",
    "HEALTH",
    "INTEGRATION",
    "INTEGRATIONS",
    "INTEGRATIONS_STATUS",
    "JOB",
    "JOBS",
    "JOB_CREATED",
    "OBJECT",
    "STATUSES",
    "STOP_ALL",
    "obj",
    "success",
]

STRING: dict[str, Any] = {"type": "string"}
TIME: dict[str, Any] = {"type": ["string", "null"], "description": "2024-01-01T12:00:00.000Z"}
MAYBE_STRING: dict[str, Any] = {"type": ["string", "null"]}
MAYBE_INT: dict[str, Any] = {"type": ["integer", "null"]}
COUNT: dict[str, Any] = {"type": "integer", "minimum": 0}
OBJECT: dict[str, Any] = {"type": "object"}
STATUSES = [s.value for s in JobStatus]


def obj(**properties: dict[str, Any]) -> dict[str, Any]:
    """An object that has at least these properties."""
    return {"type": "object", "required": list(properties), "properties": properties}


def success(**properties: dict[str, Any]) -> dict[str, Any]:
    return obj(success={"type": "boolean"}, **properties)


STATS = obj(
    **{k: COUNT for k in ("processed", "created", "updated", "deleted", "skipped", "errors")}
)
_JOB_FIELDS: dict[str, dict[str, Any]] = {
    "id": STRING,
    "integrationId": STRING,
    "type": STRING,
    "status": {"enum": STATUSES},
    "progress": {"type": "number", "minimum": 0, "maximum": 100},
    "stage": MAYBE_STRING,
    "parameters": OBJECT,
    "createdAt": TIME,
    "startedAt": TIME,
    "completedAt": TIME,
    "duration": MAYBE_INT,
    "estimatedCompletion": TIME,
    "error": MAYBE_STRING,
    "errorCode": MAYBE_STRING,
    "node": {
        **MAYBE_STRING,
        "description": "the node that ran it (one that has not run: the node that runs its"
        " integration's jobs)",
    },
}
JOBS = obj(jobs={"type": "array", "items": obj(**_JOB_FIELDS, result=STATS)}, total=COUNT)
LOG = obj(timestamp=TIME, level=STRING, message=STRING)
JOB = obj(**_JOB_FIELDS, stats=STATS, logs={"type": "array", "items": LOG})
JOB_CREATED = success(
    jobId=STRING, status={"enum": STATUSES}, estimatedDuration={"type": ["number", "null"]}
)
_IDS: dict[str, Any] = {"type": "array", "items": STRING}
STOP_ALL = success(stoppedJobs=COUNT, jobs=_IDS)
STOP_ALL["properties"]["nodes"] = {
    "type": "array",
    "description": "on several nodes, unless integrationId is given: each node's answer"
    " (error: it did not answer, its jobs may still run)",
    "items": obj(nodeId=STRING, stoppedJobs=COUNT, jobs=_IDS, error=MAYBE_STRING),
}

_EXECUTION = {
    "anyOf": [
        {"type": "null"},
        obj(
            activityIdentifier=STRING,
            countImported=COUNT,
            countExported=COUNT,
            countEscrowed=COUNT,
            countDeleted=COUNT,
            state=STRING,
            timeBegan=TIME,
            timeEnded=TIME,
        ),
    ]
}
_CODES = ["Active", "Paused", "Disabled", "Quarantine", "NotRun"]
INTEGRATION = obj(
    id=STRING,
    name=STRING,
    templateId=STRING,
    origin={"enum": ["config", "api"]},
    entityTypes={"type": "array", "items": STRING},
    source=obj(connector=STRING),
    target=obj(connector=STRING),
    schedule=obj(expiration=TIME, interval=STRING, state=STRING),
    nextRun=TIME,
    node={**MAYBE_STRING, "description": "the node that runs its jobs (null: none now)"},
    currentJob={"anyOf": [{"type": "null"}, obj(id=STRING, status={"enum": STATUSES})]},
    status=obj(
        code={"enum": _CODES},
        countSuccessiveCompleteFailures=COUNT,
        lastExecution=_EXECUTION,
        lastSuccessfulExecution=_EXECUTION,
        quarantine={"type": ["object", "null"]},
    ),
)
INTEGRATIONS = obj(value={"type": "array", "items": INTEGRATION})
INTEGRATIONS_STATUS = obj(
    integrations={
        "type": "array",
        "items": obj(
            integrationId=STRING,
            name=STRING,
            status={"enum": [c.lower() for c in _CODES if c != "NotRun"] + ["not_run"]},
            lastSync=TIME,
            nextSync=TIME,
            syncInterval=COUNT,
            node={**MAYBE_STRING, "description": "the node that runs its jobs (null: none now)"},
            currentJob={"type": ["object", "null"]},
            stats=obj(
                totalJobs=COUNT,
                successRate={"type": ["number", "null"]},
                averageDuration=MAYBE_INT,
            ),
        ),
    },
    nodes={
        "type": "array",
        "items": obj(
            nodeId=STRING,
            host=STRING,
            pid=COUNT,
            startedAt=TIME,
            heartbeatAt={**TIME, "description": "the last heartbeat, on the database's clock"},
            leftAt=TIME,
            live={"type": "boolean"},
            leases=COUNT,
        ),
    },
)
ESCROWS = obj(
    escrows={
        "type": "array",
        "items": obj(
            entityType=STRING,
            objectId=STRING,
            kind=STRING,
            reason=STRING,
            attempts=COUNT,
            firstFailed=TIME,
            lastFailed=TIME,
            nextRetry=TIME,
        ),
    },
    total=COUNT,
)
_BOOL: dict[str, Any] = {"type": "boolean"}
HEALTH = obj(
    status={"enum": ["ok", "degraded"]},
    ok=_BOOL,
    integrations=COUNT,
    activeJobs=COUNT,
    store=obj(ok=_BOOL, error=MAYBE_STRING),
    scheduler=obj(ok=_BOOL, lastTick=TIME, error=MAYBE_STRING),
)
