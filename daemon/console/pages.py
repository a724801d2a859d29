"""The console's own routes under ``/console/``: its pages and static files, the login
form that exchanges the API token for a session cookie, logout, the session's CSRF
token for the script, the job types the plugins add (with the forms they declare for the
console), and the target connectors keyed by source ids (their integrations have no
schema, dry run or provisioning on demand).

The token travels only in the login form's body (POST): never in a URL, a page or a log.
"""

from __future__ import annotations

import hmac
import html
import math
from collections.abc import Collection, Sequence
from contextlib import aclosing
from importlib.resources import files
from urllib.parse import parse_qs

from starlette.applications import Starlette
from starlette.requests import Request
from starlette.responses import JSONResponse, RedirectResponse, Response
from starlette.routing import Route

from ..api.auth import SESSION_COOKIE, csrf_ok, session_id
from ..api.jobtypes import JobType
from ..api.sessions import LoginLimiter, Session, Sessions

__all__ = ["STATIC", "console_pages"]

_SCRIPT = "text/javascript; charset=utf-8"
#: The files served under ``/console/static/`` and their media types: the script's
#: modules (``app.js`` imports the others) and the style sheet.
STATIC = {
    **{
        f"{name}.js": _SCRIPT
        for name in ("app", "api", "dom", "integrations", "jobforms", "schema", "changes", "jobs")
    },
    "console.css": "text/css; charset=utf-8",
}
MAX_LOGIN_BODY = 4096
NO_STORE = {"Cache-Control": "no-store"}


def _read(name: str) -> bytes:
    return (files(__package__) / "static" / name).read_bytes()


def _same_origin(request: Request) -> bool:
    """Whether a form post comes from the console's own page, as far as the browser
    says (``Sec-Fetch-Site``, else ``Origin``; with ``Referrer-Policy: no-referrer`` a
    browser's form post says ``Origin: null``). A request that says neither is not a
    browser's, and is let through."""
    site = request.headers.get("sec-fetch-site")
    if site is not None:
        return site in ("same-origin", "none")
    origin = request.headers.get("origin")
    if origin is None:
        return True
    return origin == f"{request.url.scheme}://{request.headers.get('host', '')}"


class _TooLarge(Exception):
    """A login form over :data:`MAX_LOGIN_BODY` bytes."""


async def _form_token(request: Request) -> str | None:
    """The ``token`` field of a small url-encoded form, or None.

    Raises:
        _TooLarge: the body is over :data:`MAX_LOGIN_BODY` bytes (not read further).
    """
    length = request.headers.get("content-length", "")
    if length.isdigit() and int(length) > MAX_LOGIN_BODY:
        raise _TooLarge
    body = b""
    async with aclosing(request.stream()) as chunks:
        async for chunk in chunks:
            body += chunk
            if len(body) > MAX_LOGIN_BODY:
                raise _TooLarge
    values = parse_qs(body.decode("utf-8", "replace"), max_num_fields=8).get("token")
    return values[0].strip() if values else None


def console_pages(
    token: str,
    sessions: Sessions,
    job_types: Sequence[JobType],
    keyed_targets: Collection[str] = (),
) -> Starlette:
    """The app of ``/console`` and ``/console/...``; *keyed_targets* names the target
    connectors that hold objects under their source ids."""
    index = _read("index.html")
    login_page = _read("login.html").decode()
    static = {name: _read(name) for name in STATIC}
    limiter = LoginLimiter()
    expected = token.encode()

    def page(body: bytes, status: int = 200) -> Response:
        return Response(body, status, media_type="text/html; charset=utf-8", headers=NO_STORE)

    def login_form(error: str = "", status: int = 200) -> Response:
        notice = f'<p class="error" role="alert">{html.escape(error)}</p>' if error else ""
        return page(login_page.replace("<!-- error -->", notice).encode(), status)

    def session_of(request: Request) -> Session | None:
        return sessions.get(session_id(request.scope))

    async def root(request: Request) -> Response:
        return RedirectResponse("/console/", 308)

    async def home(request: Request) -> Response:
        if session_of(request) is None:
            return RedirectResponse("/console/login", 303, headers=NO_STORE)
        return page(index)

    async def show_login(request: Request) -> Response:
        if session_of(request) is not None:
            return RedirectResponse("/console/", 303, headers=NO_STORE)
        return login_form()

    def _too_many(client: str) -> Response | None:
        wait = limiter.retry_after(client)
        if wait is None:
            return None
        seconds = math.ceil(wait)
        response = login_form(f"Too many failed logins: try again in {seconds} s.", 429)
        response.headers["Retry-After"] = str(seconds)
        return response

    async def login(request: Request) -> Response:
        if not _same_origin(request):
            return login_form("The login form must be sent from this console's own page.", 403)
        client = request.client.host if request.client else "?"
        if (refused := _too_many(client)) is not None:
            return refused
        try:
            given = await _form_token(request)
        except _TooLarge:
            return login_form(f"The login form is larger than {MAX_LOGIN_BODY} bytes.", 413)
        # Looked at again once the form is read, with nothing awaited until the failure
        # is counted: logins sent at once are counted one after the other.
        if (refused := _too_many(client)) is not None:
            return refused
        if given is None or not hmac.compare_digest(given.encode(), expected):
            limiter.failed(client)
            return login_form("That is not the API token.", 401)
        sessions.close(session_id(request.scope))
        new_id, _ = sessions.open()
        response = RedirectResponse("/console/", 303, headers=NO_STORE)
        response.set_cookie(
            SESSION_COOKIE,
            new_id,
            max_age=int(sessions.ttl),
            path="/",
            httponly=True,
            samesite="strict",
            secure=request.url.scheme == "https",
        )
        return response

    async def logout(request: Request) -> Response:
        session = session_of(request)
        if session is not None and not csrf_ok(request.scope, session):
            return JSONResponse(
                {"error": {"code": "CsrfTokenMissing", "message": "logout needs X-CSRF-Token"}},
                403,
            )
        sessions.close(session_id(request.scope))
        response = Response(status_code=204, headers=NO_STORE)
        response.delete_cookie(
            SESSION_COOKIE,
            path="/",
            httponly=True,
            samesite="strict",
            secure=request.url.scheme == "https",
        )
        return response

    async def session_info(request: Request) -> Response:
        session = session_of(request)
        if session is None:
            return _unauthorized()
        remaining = max(0, round(session.expires - sessions.clock()))
        return JSONResponse({"csrfToken": session.csrf, "expiresIn": remaining}, headers=NO_STORE)

    async def kinds(request: Request) -> Response:
        if session_of(request) is None:
            return _unauthorized()
        return JSONResponse(
            {
                "jobTypes": [
                    {
                        "name": k.name,
                        "forms": list(k.forms),
                        "targets": sorted(k.targets),
                        "console": [form.as_json() for form in k.console],
                    }
                    for k in sorted(job_types, key=lambda k: k.name)
                ]
            },
            headers=NO_STORE,
        )

    async def keyed(request: Request) -> Response:
        if session_of(request) is None:
            return _unauthorized()
        return JSONResponse({"keyedTargets": sorted(keyed_targets)}, headers=NO_STORE)

    async def login_route(request: Request) -> Response:  # one route: 405 allows both
        return await (login(request) if request.method == "POST" else show_login(request))

    async def static_file(request: Request) -> Response:
        name = request.path_params["name"]
        if name not in static:
            return Response(b"not found", 404, media_type="text/plain")
        return Response(
            static[name], media_type=STATIC[name], headers={"Cache-Control": "no-cache"}
        )

    return Starlette(
        routes=[
            Route("/console", root, methods=["GET"]),
            Route("/console/", home, methods=["GET"]),
            Route("/console/login", login_route, methods=["GET", "POST"]),
            Route("/console/logout", logout, methods=["POST"]),
            Route("/console/session", session_info, methods=["GET"]),
            Route("/console/job-types", kinds, methods=["GET"]),
            Route("/console/keyed-targets", keyed, methods=["GET"]),
            Route("/console/static/{name}", static_file, methods=["GET"]),
        ]
    )


def _unauthorized() -> Response:
    return JSONResponse(
        {"error": {"code": "Unauthorized", "message": "log in to the console", "field": None}},
        401,
        headers=NO_STORE,
    )
