"""The daemon itself: health, metrics, this API's OpenAPI document, and re-reading the
config."""

from __future__ import annotations

from typing import Any

from starlette.responses import Response

from ..control import Control
from . import responses as R
from . import routing
from .bodies import Field
from .routing import Call, Route

__all__ = ["ROUTES"]


async def healthz(call: Call, ctl: Control) -> Any:
    """The daemon answers; ``ok`` when its store and its scheduler work too."""
    return await ctl.health()


async def metrics(call: Call, ctl: Control) -> Any:
    body = await ctl.metrics()
    return Response(body, media_type="text/plain; version=0.0.4; charset=utf-8")


async def openapi(call: Call, ctl: Control) -> Any:
    """The document of the app's routes, with the connectors this daemon has loaded
    named for each end."""
    doc = routing.openapi_document(call.routes)
    create = doc["paths"]["/api/sync/integrations"]["post"]["requestBody"]
    props = create["content"]["application/json"]["schema"]["properties"]
    for end in ("source", "target"):
        props[end]["properties"]["connector"] = {"enum": sorted(ctl.connectors(end))}
    return doc


async def initialize(call: Call, ctl: Control) -> Any:
    ok = await ctl.reload()
    return {
        "success": ok,
        "message": "Sync system initialized" if ok else "the config is invalid; see the log",
        "schedulerStatus": "running",
        "integrationsFound": len(ctl.integration_ids()),
    }


ROUTES: tuple[Route, ...] = (
    Route(
        "GET",
        "/healthz",
        healthz,
        "Liveness, and whether the store and the scheduler work (ok)",
        errors=(),
        response=R.HEALTH,
    ),
    Route("GET", "/metrics", metrics, "Prometheus metrics", media_type="text/plain", errors=()),
    Route(
        "GET", "/api/openapi.json", openapi, "This API as OpenAPI 3.1", errors=(), response=R.OBJECT
    ),
    Route(
        "POST",
        "/api/sync/initialize",
        initialize,
        "Re-read the config and (re)start scheduling",
        Field("object"),
        errors=(422,),
        response=R.success(message=R.STRING, integrationsFound=R.COUNT),
    ),
)
