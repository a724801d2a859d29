"""The control API on TCP with the web console on: a request is let through with the
bearer token, or with a console session's cookie; with the cookie, a request that
changes state (POST, PUT, PATCH, DELETE) must also carry the session's CSRF token in the
``X-CSRF-Token`` header (the console's script sends it). Otherwise: 401 without valid
credentials, 403 without the CSRF token. Comparisons of secrets are constant-time.
"""

from __future__ import annotations

import hmac
import json
from collections.abc import Awaitable, Callable, MutableMapping
from http.cookies import CookieError, SimpleCookie
from typing import Any

from .sessions import Session, Sessions

__all__ = [
    "CSRF_HEADER",
    "SAFE_METHODS",
    "SESSION_COOKIE",
    "refuse",
    "session_id",
    "session_or_token",
]

ASGIApp = Callable[
    [MutableMapping[str, Any], Callable[..., Any], Callable[..., Any]], Awaitable[None]
]

SESSION_COOKIE = "sluiced_session"
CSRF_HEADER = "x-csrf-token"
SAFE_METHODS = frozenset({"GET", "HEAD", "OPTIONS"})


def session_id(scope: MutableMapping[str, Any]) -> str | None:
    """The session id the request's cookie carries, if any."""
    for name, value in scope.get("headers") or []:
        if name == b"cookie":
            try:
                jar = SimpleCookie(value.decode("latin-1"))
            except CookieError:
                continue
            if SESSION_COOKIE in jar:
                return jar[SESSION_COOKIE].value
    return None


def header(scope: MutableMapping[str, Any], name: bytes) -> bytes | None:
    """The request header *name* (lower case), or None."""
    for key, value in scope.get("headers") or []:
        if key == name:
            return bytes(value)
    return None


async def refuse(send: Callable[..., Any], status: int, code: str, message: str) -> None:
    """Answer a bare JSON error (the API's shape) with *status*."""
    body = json.dumps({"error": {"code": code, "message": message, "field": None}}).encode()
    headers = [
        (b"content-type", b"application/json"),
        (b"content-length", str(len(body)).encode()),
        (b"cache-control", b"no-store"),
    ]
    if status == 401:
        headers.append((b"www-authenticate", b"Bearer"))
    await send({"type": "http.response.start", "status": status, "headers": headers})
    await send({"type": "http.response.body", "body": body})


def csrf_ok(scope: MutableMapping[str, Any], session: Session) -> bool:
    """Whether the request is safe, or carries *session*'s CSRF token."""
    if scope.get("method", "GET") in SAFE_METHODS:
        return True
    given = header(scope, CSRF_HEADER.encode())
    return session.csrf_matches(given.decode("latin-1") if given is not None else None)


def session_or_token(app: ASGIApp, token: str, sessions: Sessions) -> ASGIApp:
    """Wrap *app*: HTTP requests need ``Authorization: Bearer <token>``, or a live
    session's cookie (and, to change state, its CSRF token)."""
    expected = f"Bearer {token}".encode()

    async def guarded(
        scope: MutableMapping[str, Any], receive: Callable[..., Any], send: Callable[..., Any]
    ) -> None:
        if scope["type"] != "http":
            await app(scope, receive, send)
            return
        given = header(scope, b"authorization")
        if given is not None:
            if hmac.compare_digest(given, expected):
                await app(scope, receive, send)
            else:
                await refuse(send, 401, "Unauthorized", "a valid bearer token is required")
            return
        session = sessions.get(session_id(scope))
        if session is None:
            await refuse(
                send, 401, "Unauthorized", "a valid bearer token or console session is required"
            )
        elif not csrf_ok(scope, session):
            await refuse(
                send, 403, "CsrfTokenMissing", "a request that changes state needs X-CSRF-Token"
            )
        else:
            await app(scope, receive, send)

    return guarded
