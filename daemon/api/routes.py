"""The route table of the control API, assembled from one module per resource (jobs,
integrations, escrows, the provisioning log, schemas, provisioning, the daemon itself)
and the plugins' routes and job types. Each route declares its path parameters, query and body once,
and both the app's checks and the OpenAPI document (``GET /api/openapi.json``) are made
from that declaration (see :mod:`sluiced.api.routing`)."""

from __future__ import annotations

from collections.abc import Sequence
from typing import Any

from starlette.applications import Starlette

from ..control import Control
from . import changes, escrows, integrations, provisioning, routing, schema, service
from .jobs import job_routes
from .jobtypes import JobType
from .routing import Route

__all__ = ["ROUTES", "build_app", "openapi_document", "route_table"]


def route_table(
    job_types: Sequence[JobType] = (), plugin_routes: Sequence[Route] = ()
) -> tuple[Route, ...]:
    """The core's routes (``POST /api/sync/jobs`` taking *job_types*' forms too), then
    *plugin_routes*.

    Raises:
        ValueError: two routes of one method and path, or two job types asking for
            themselves by one ``job_type`` name.
    """
    forms: dict[str, str] = {}
    for kind in job_types:
        for form in kind.forms:
            if form in forms:
                raise ValueError(
                    f"job_type {form!r} asks for both {forms[form]!r} and {kind.name!r}"
                )
            forms[form] = kind.name
    table = (
        *service.ROUTES,
        *job_routes(job_types),
        *provisioning.ROUTES,
        *integrations.ROUTES,
        *escrows.ROUTES,
        *changes.ROUTES,
        *schema.ROUTES,
        *plugin_routes,
    )
    seen: set[tuple[str, str]] = set()
    for route in table:
        key = (route.method, route.path)
        if key in seen:
            raise ValueError(f"two routes answer {route.method} {route.path}")
        seen.add(key)
    return table


#: The core's routes alone.
ROUTES: tuple[Route, ...] = route_table()


def openapi_document(
    job_types: Sequence[JobType] = (), plugin_routes: Sequence[Route] = ()
) -> dict[str, Any]:
    """The OpenAPI 3.1 document of :func:`route_table`."""
    return routing.openapi_document(route_table(job_types, plugin_routes))


def build_app(
    ctl: Control, job_types: Sequence[JobType] = (), plugin_routes: Sequence[Route] = ()
) -> Starlette:
    """The control API over *ctl*: the core's routes and the plugins'."""
    return routing.build_app(ctl, route_table(job_types, plugin_routes))
