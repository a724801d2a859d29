"""The provisioning log of an integration: ``GET /api/sync/integrations/{id}/changes``,
newest first, filtered by object, entity type, action, job and time, in pages that a
cursor continues."""

from __future__ import annotations

import json
from datetime import datetime
from typing import Any

from ..changes import ACTIONS, Change, ChangeQuery, cursor_of, parse_cursor
from ..control import Control
from . import responses as R
from .bodies import Field
from .errors import ApiError
from .routing import Call, Route
from .shapes import DATE_TIME_PATTERN, ENTITY_TYPE, INTEGRATION_ID, JOB_ID, date_time
from .views import stamp

__all__ = ["ROUTES", "change_json"]

#: The most changes one page holds.
MAX_LIMIT = 1000
_TIME = Field(
    "string",
    pattern=DATE_TIME_PATTERN,
    description="a date-time with an offset (RFC 3339), from 1970 to 2999",
)
_CURSOR = Field(
    "string", pattern=r"^[0-9]{1,16}-[0-9]{1,18}$", description="the nextCursor of an answer"
)


def _time(call: Call, name: str) -> datetime | None:
    text = call.query.get(name)
    if text is None:
        return None
    try:
        return date_time(text)
    except ValueError:
        raise ApiError(
            422,
            "InvalidField",
            f"{name} must be {_TIME.description}, not {json.dumps(text)}",
            field=name,
        ) from None


def change_json(c: Change) -> dict[str, Any]:
    """A change as the API answers it: its optional fields only when set, ``jobId``
    null for a change no job made (an operator's drop)."""
    out: dict[str, Any] = {
        "id": c.id,
        "at": stamp(c.at),
        "jobId": c.job_id or None,
        "entityType": c.entity_type,
        "sourceId": c.source_id,
        "targetId": c.target_id,
        "action": c.action,
    }
    for key, value in (
        ("attributes", c.attributes),
        ("changes", c.changes),
        ("reason", c.reason),
        ("kind", c.kind),
    ):
        if value is not None:
            out[key] = value
    return out


async def list_changes(call: Call, ctl: Control) -> Any:
    q = call.query
    before = None
    if "cursor" in q:
        try:
            before = parse_cursor(q["cursor"])
        except ValueError:
            raise ApiError(
                422, "InvalidField", "cursor must be a nextCursor of an answer", field="cursor"
            ) from None
    limit = q.get("limit", 100)
    query = ChangeQuery(
        object_id=q.get("objectId"),
        entity_type=q.get("entityType"),
        actions=tuple(dict.fromkeys(q.get("action", ()))),
        job_id=q.get("jobId"),
        since=_time(call, "since"),
        until=_time(call, "until"),
        before=before,
        limit=limit + 1,  # one more: is there a next page?
    )
    found = await ctl.changes(call.path["integrationId"], query)
    page = found[:limit]
    return {
        "integrationId": call.path["integrationId"],
        "changes": [change_json(c) for c in page],
        "nextCursor": cursor_of(page[-1]) if len(found) > limit else None,
    }


_CHANGE = {
    **R.obj(
        id=R.COUNT,
        at=R.TIME,
        jobId=R.MAYBE_STRING,
        entityType=R.STRING,
        sourceId=R.STRING,
        targetId=R.MAYBE_STRING,
        action={"enum": list(ACTIONS)},
    ),
}
_CHANGE["properties"] = {
    **_CHANGE["properties"],
    "attributes": {"type": "object", "description": "a create's attributes"},
    "changes": {
        "type": "object",
        "description": "an update's changed attributes",
        "additionalProperties": R.obj(**{"from": {}, "to": {}}),
    },
    "reason": {"type": "string", "description": "why the object was escrowed, or dropped"},
    "kind": {"enum": ["source", "target"], "description": "the escrow's kind"},
}
CHANGES = R.obj(
    integrationId=R.STRING,
    changes={"type": "array", "items": _CHANGE},
    nextCursor=R.MAYBE_STRING,
)

ROUTES: tuple[Route, ...] = (
    Route(
        "GET",
        "/api/sync/integrations/{integrationId}/changes",
        list_changes,
        "The provisioning log: every change a real run applied, newest first",
        params={"integrationId": INTEGRATION_ID},
        query={
            "objectId": Field("string", max_length=1024, description="a source or a target id"),
            "entityType": ENTITY_TYPE,
            "action": Field("array", items=Field("string", choices=ACTIONS), min_length=1),
            "jobId": JOB_ID,
            "since": _TIME,
            "until": _TIME,
            "limit": Field("int", minimum=1, maximum=MAX_LIMIT),
            "cursor": _CURSOR,
        },
        response=CHANGES,
    ),
)
