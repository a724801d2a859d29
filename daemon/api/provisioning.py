"""What a sync would do, or does for one object, now: a dry run's plan, provisioning one
object on demand, and checking that an integration's source and target can be used."""

from __future__ import annotations

from typing import Any

from ..control import Control
from . import responses as R
from .bodies import Field
from .routing import Call, Route
from .shapes import INTEGRATION_ID, JOB_ID, PROVISION

__all__ = ["ROUTES"]

INTEGRATION = {"integrationId": INTEGRATION_ID}


async def get_plan(call: Call, ctl: Control) -> Any:
    return await ctl.plan(
        call.path["jobId"],
        offset=call.query.get("offset", 0),
        limit=call.query.get("limit", 1000),
    )


async def provision_on_demand(call: Call, ctl: Control) -> Any:
    body = call.body
    return await ctl.provision(
        call.path["integrationId"],
        body["objectId"],
        entity_type=body.get("entityType"),
        dry_run=body.get("dryRun", False),
    )


async def validate_credentials(call: Call, ctl: Control) -> Any:
    iid = call.path["integrationId"]
    checks = await ctl.validate_credentials(iid)
    return {"integrationId": iid, "ok": all(c["ok"] for c in checks.values()), **checks}


ROUTES: tuple[Route, ...] = (
    Route(
        "GET",
        "/api/sync/jobs/{jobId}/plan",
        get_plan,
        "A dry run's plan: creates, updates with the changed attributes, disables, deletes",
        params={"jobId": JOB_ID},
        query={
            "offset": Field("int", minimum=0, maximum=10**9),
            "limit": Field("int", minimum=0, maximum=10_000),
        },
        errors=(404, 409, 422),
        response=R.obj(jobId=R.STRING, status={"enum": R.STATUSES}),
    ),
    Route(
        "POST",
        "/api/sync/integrations/{integrationId}/validate-credentials",
        validate_credentials,
        "Check that the source and the target can be reached with their settings and credentials",
        Field("object"),
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
)
