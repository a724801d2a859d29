"""Routes of the control API, declared once: each :class:`Route` names its method, path,
path parameters, query parameters and body as :class:`~sluiced.api.bodies.Field`\\ s,
from which both the checks of every request and the OpenAPI document are made.

A command for an integration another node of the store holds is answered by that node
(:class:`~sluiced.cluster.commands.Elsewhere`, :meth:`~sluiced.control.Control.forward`),
with its status and body. Dispatch goes by path first: a path that exists answers 405 with ``Allow`` for a
method it does not have (``GET /api/sync/jobs/stop-all`` is not taken for a job id).
Errors are ``{"error": {"code", "message", "field"}}``; an unexpected exception is
logged with an id and answered 500 with that id only, never its text.
"""

from __future__ import annotations

import re
import uuid
from collections.abc import Awaitable, Callable, Mapping
from dataclasses import dataclass, field
from typing import Any

from starlette.applications import Starlette
from starlette.requests import Request
from starlette.responses import JSONResponse, Response
from starlette.routing import Match
from starlette.routing import Route as StarletteRoute
from starlette.types import Receive, Scope, Send

from ..cluster import Elsewhere
from ..control import Conflict, Control, NotFound, Unavailable
from ..logs import get_logger
from ..store import StoreUnavailable
from ..store.errors import LeaseLost
from .bodies import MAX_BODY, Field, parse_body, read_query
from .errors import ApiError

__all__ = ["COMMAND_HEADER", "Call", "Route", "build_app", "openapi_document"]

#: The header of a request a node answers for another (see :mod:`sluiced.cluster.commands`):
#: it is never sent on again.
COMMAND_HEADER = "x-sluiced-command"

log = get_logger("sluiced.api")


@dataclass(frozen=True)
class Call:
    """A request whose path parameters, query and body have been checked; ``routes``
    is the table of the app that answers it."""

    request: Request
    path: Mapping[str, str]
    query: Mapping[str, Any]
    body: Mapping[str, Any]
    routes: tuple[Route, ...] = ()


#: What answers a route: its checked request and the control interface in, and the
#: answer out (JSON-able data, answered with the route's status, or a ``Response``).
Handler = Callable[[Call, Control], Awaitable[Any]]


@dataclass(frozen=True)
class Route:
    """One operation. ``body`` is an ``object`` :class:`Field` (None: no body);
    ``params`` declares path parameters (``{name}`` in ``path``), ``query`` the query
    parameters; ``responses`` maps a status to its description and JSON schema."""

    method: str
    path: str
    handler: Handler
    summary: str
    body: Field | None = None
    status: int = 200
    params: Mapping[str, Field] = field(default_factory=dict)
    query: Mapping[str, Field] = field(default_factory=dict)
    response: Mapping[str, Any] | None = None
    media_type: str = "application/json"
    errors: tuple[int, ...] = (404, 422)

    @property
    def path_names(self) -> list[str]:
        return re.findall(r"\{(\w+)\}", self.path)


ERROR_SCHEMA: dict[str, Any] = {
    "type": "object",
    "required": ["error"],
    "properties": {
        "error": {
            "type": "object",
            "required": ["code", "message", "field"],
            "properties": {
                "code": {"type": "string"},
                "message": {"type": "string"},
                "field": {"type": ["string", "null"]},
            },
            "additionalProperties": False,
        }
    },
    "additionalProperties": False,
}
_REASONS = {
    400: "Malformed JSON",
    401: "No valid bearer token (TCP listener only)",
    404: "No such job, integration or endpoint",
    405: "Method not allowed (see Allow)",
    409: "Not allowed in the current state",
    413: f"Body over {MAX_BODY} bytes",
    422: "A field of the wrong type or value, or an unknown field (named in field)",
    500: "Internal error (the answer gives an id to find in the daemon's log)",
    502: "The source or target could not be used",
    503: "The store cannot be written (the state directory is full); the daemon stays up",
}


async def _raw_body(request: Request) -> bytes:
    """The request's body, refused (413) past MAX_BODY without reading further."""
    length = request.headers.get("content-length")
    if length is not None and length.isdigit() and int(length) > MAX_BODY:
        raise ApiError(413, "BodyTooLarge", f"the body is larger than {MAX_BODY} bytes")
    raw = b""
    async for chunk in request.stream():
        raw += chunk
        if len(raw) > MAX_BODY:
            raise ApiError(413, "BodyTooLarge", f"the body is larger than {MAX_BODY} bytes")
    return raw


async def _call(route: Route, request: Request, routes: tuple[Route, ...]) -> Call:
    path = dict(request.path_params)
    for name, spec in route.params.items():
        spec.check(name, path.get(name, ""))
    query = read_query(request.query_params, route.query)
    raw = await _raw_body(request)
    body: Mapping[str, Any] = {}
    if route.body is not None:
        required = any(f.required for f in route.body.fields.values()) or bool(route.body.any_of)
        data = parse_body(raw, optional=not required)
        body = route.body.check("", data)
    elif raw and parse_body(raw):  # malformed JSON is still 400
        raise ApiError(422, "UnknownField", "this operation takes no body", field="body")
    return Call(request=request, path=path, query=query, body=body, routes=routes)


class _PathRoute(StarletteRoute):
    """A Starlette route that matches its path whatever the method: the endpoint
    answers 405 with ``Allow`` itself."""

    def matches(self, scope: Scope) -> tuple[Match, Scope]:
        match, child = super().matches(scope)
        return (Match.FULL if match is Match.PARTIAL else match), child

    async def handle(self, scope: Scope, receive: Receive, send: Send) -> None:
        await self.app(scope, receive, send)


def _error(exc: ApiError, headers: Mapping[str, str] | None = None) -> Response:
    return JSONResponse(exc.body(), status_code=exc.status, headers=headers)


async def _answer(
    route: Route, ctl: Control, request: Request, routes: tuple[Route, ...]
) -> Response:
    call: Call | None = None
    try:
        call = await _call(route, request, routes)
        result = await route.handler(call, ctl)
    except Elsewhere as exc:  # another node holds the integration: it answers
        if call is None or request.headers.get(COMMAND_HEADER):
            return _error(ApiError(409, "LeaseLost", str(exc)))
        query = request.url.query
        kind = f"{request.method} {request.url.path}" + (f"?{query}" if query else "")
        try:
            status, body = await ctl.forward(exc.integration_id, kind, call.body)
        except StoreUnavailable as lost:
            return _error(ApiError(503, lost.code, str(lost)))
        return JSONResponse(body, status_code=status)
    except ApiError as exc:
        return _error(exc)
    except NotFound as exc:
        return _error(ApiError(404, "NotFound", str(exc)))
    except Conflict as exc:
        return _error(ApiError(409, "Conflict", str(exc)))
    except Unavailable as exc:
        return _error(ApiError(502, "Unavailable", str(exc)))
    except LeaseLost as exc:  # another node runs the integration
        return _error(ApiError(409, exc.code, str(exc)))
    except StoreUnavailable as exc:  # a full state directory: the daemon stays up
        return _error(ApiError(503, exc.code, str(exc)))
    if isinstance(result, Response):
        return result
    return JSONResponse(result, status_code=route.status)


def internal_error(request: Request, exc: BaseException) -> Response:
    """Log *exc* with a fresh id; answer 500 with the id (never the exception's text)."""
    error_id = f"err-{uuid.uuid4().hex[:12]}"
    log.error(
        "the control API failed on a request",
        error_id=error_id,
        method=request.method,
        path=request.url.path,
        exc_info=exc,
    )
    return _error(
        ApiError(
            500,
            "InternalError",
            f"an internal error; the daemon's log has the details under {error_id}",
        )
    )


def build_app(ctl: Control, routes: tuple[Route, ...]) -> Starlette:
    """The Starlette app serving *routes* over *ctl*."""
    by_path: dict[str, dict[str, Route]] = {}
    for route in routes:
        by_path.setdefault(route.path, {})[route.method] = route

    def endpoint(methods: Mapping[str, Route]) -> Callable[[Request], Awaitable[Response]]:
        allow = ", ".join(sorted({*methods, *(["HEAD"] if "GET" in methods else [])}))

        async def handle(request: Request) -> Response:
            method = "GET" if request.method == "HEAD" else request.method
            route = methods.get(method)
            if route is None:
                return _error(
                    ApiError(
                        405,
                        "MethodNotAllowed",
                        f"{request.method} {request.url.path}: method not allowed",
                    ),
                    headers={"Allow": allow},
                )
            try:
                return await _answer(route, ctl, request, routes)
            except Exception as exc:
                return internal_error(request, exc)

        return handle

    # Literal paths before templated ones, so that /jobs/stop-all is not a job id.
    ordered = sorted(by_path, key=lambda p: p.count("{"))
    starlette_routes = [_PathRoute(p, endpoint(by_path[p])) for p in ordered]

    async def not_found(request: Request, exc: Exception) -> Response:
        return _error(
            ApiError(404, "NotFound", f"{request.method} {request.url.path}: no such endpoint")
        )

    async def crashed(request: Request, exc: Exception) -> Response:
        return internal_error(request, exc)

    return Starlette(
        routes=starlette_routes, exception_handlers={404: not_found, Exception: crashed}
    )


def _operation(route: Route) -> dict[str, Any]:
    ok: dict[str, Any] = {"description": "OK"}
    if route.response is not None:
        ok["content"] = {route.media_type: {"schema": route.response}}
    responses: dict[str, Any] = {str(route.status): ok}
    errors = {400, 401, 405, 413, 500, 503, *route.errors}
    for status in sorted(errors):
        responses[str(status)] = {
            "description": _REASONS[status],
            "content": {"application/json": {"schema": {"$ref": "#/components/schemas/Error"}}},
        }
    op: dict[str, Any] = {
        "summary": route.summary,
        "operationId": route.handler.__name__,
        "responses": responses,
    }
    params = [
        {"name": n, "in": "path", "required": True, "schema": route.params[n].schema()}
        for n in route.path_names
    ]
    for name, spec in route.query.items():
        schema = spec.schema()
        param: dict[str, Any] = {"name": name, "in": "query", "schema": schema}
        if spec.kind == "array":
            param.update(style="form", explode=False)
        params.append(param)
    if params:
        op["parameters"] = params
    if route.body is not None:
        required = any(f.required for f in route.body.fields.values()) or bool(route.body.any_of)
        op["requestBody"] = {
            "required": required,
            "content": {"application/json": {"schema": route.body.schema()}},
        }
    return op


def openapi_document(routes: tuple[Route, ...]) -> dict[str, Any]:
    """The OpenAPI 3.1 document of *routes*."""
    paths: dict[str, Any] = {}
    for route in routes:
        paths.setdefault(route.path, {})[route.method.lower()] = _operation(route)
    return {
        "openapi": "3.1.0",
        "info": {
            "title": "sluiced control API",
            "version": "1",
            "description": "On the Unix socket no authentication is asked; on the optional"
            " TCP listener every request needs Authorization: Bearer <token>.",
        },
        "paths": paths,
        "components": {
            "schemas": {"Error": ERROR_SCHEMA},
            "securitySchemes": {"bearer": {"type": "http", "scheme": "bearer"}},
        },
        "security": [{"bearer": []}],
    }
