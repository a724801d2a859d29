"""An integration's schema: reading it, and replacing it with a validated one."""

from __future__ import annotations

from typing import Any

from ..control import Control
from ..mapping import SchemaError
from . import responses as R
from .bodies import Field
from .errors import ApiError
from .routing import Call, Route
from .shapes import INTEGRATION_ID

__all__ = ["ROUTES"]

INTEGRATION = {"integrationId": INTEGRATION_ID}


async def get_schema(call: Call, ctl: Control) -> Any:
    return await ctl.get_schema(call.path["integrationId"])


async def put_schema(call: Call, ctl: Control) -> Any:
    try:
        return await ctl.put_schema(call.path["integrationId"], dict(call.body))
    except SchemaError as exc:
        raise ApiError(422, "InvalidSchema", str(exc), field=exc.path) from None


ROUTES: tuple[Route, ...] = (
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
