"""Escrowed objects of an integration: listing them, retrying one now, dropping one."""

from __future__ import annotations

from typing import Any

from ..control import Control
from . import responses as R
from .routing import Call, Route
from .shapes import ESCROW_KEY, INTEGRATION_ID
from .views import stamp

__all__ = ["ROUTES"]

INTEGRATION = {"integrationId": INTEGRATION_ID}


async def list_escrows(call: Call, ctl: Control) -> Any:
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


async def retry_escrow(call: Call, ctl: Control) -> Any:
    body = call.body
    job = await ctl.retry_escrow(call.path["integrationId"], body["entityType"], body["objectId"])
    return {
        "success": True,
        "jobId": job.id if job else None,
        "message": "retrying now" if job else "due now: the next run retries it",
    }


async def drop_escrow(call: Call, ctl: Control) -> Any:
    body = call.body
    await ctl.drop_escrow(call.path["integrationId"], body["entityType"], body["objectId"])
    return {"success": True, "dropped": f"{body['entityType']}/{body['objectId']}"}


ROUTES: tuple[Route, ...] = (
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
)
