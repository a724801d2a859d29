"""The control API on TCP with the web console on: a request is let through with the
bearer token, or with a console session's cookie; with the cookie, a request that
changes state (POST, PUT, PATCH, DELETE) must also carry the session's CSRF token in the
``X-CSRF-Token`` header (the console's script sends it). Otherwise: 401 without valid
credentials, 403 without the CSRF token. Comparisons of secrets are constant-time.

An event stream (``text/event-stream``) opened with a session lasts only as long as the
session: once it is closed (logged out in any tab, or replaced) or expires, the stream
ends within :data:`SESSION_CHECK_EVERY` seconds (its response is closed, as when the
stream ends by itself). A stream opened with the bearer token is not bound to any
session.
"""

from __future__ import annotations

import hmac
import json
from collections.abc import Awaitable, Callable, MutableMapping
from http.cookies import CookieError, SimpleCookie
from typing import Any

import trio

from .sessions import Session, Sessions

__all__ = [
    "CSRF_HEADER",
    "SAFE_METHODS",
    "SESSION_CHECK_EVERY",
    "SESSION_COOKIE",
    "refuse",
    "session_id",
    "session_or_token",
    "while_session_lasts",
]

ASGIApp = Callable[
    [MutableMapping[str, Any], Callable[..., Any], Callable[..., Any]], Awaitable[None]
]

SESSION_COOKIE = "sluiced_session"
CSRF_HEADER = "x-csrf-token"
SAFE_METHODS = frozenset({"GET", "HEAD", "OPTIONS"})
#: How often, in seconds, an event stream opened with a session checks that it lasts.
SESSION_CHECK_EVERY = 1.0


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
    session's cookie (and, to change state, its CSRF token); an event stream opened
    with the cookie ends with its session (:func:`while_session_lasts`)."""
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
            sid = session_id(scope)
            await while_session_lasts(
                app, scope, receive, send, lambda: sessions.get(sid) is not None
            )

    return guarded


def _is_event_stream(message: MutableMapping[str, Any]) -> bool:
    for name, value in message.get("headers") or []:
        if bytes(name).lower() == b"content-type":
            return bytes(value).split(b";")[0].strip().lower() == b"text/event-stream"
    return False


async def while_session_lasts(
    app: ASGIApp,
    scope: MutableMapping[str, Any],
    receive: Callable[..., Any],
    send: Callable[..., Any],
    lasts: Callable[[], bool],
) -> None:
    """Run *app* on the request; if it answers an event stream, end the stream once
    *lasts* says False (looked at every :data:`SESSION_CHECK_EVERY` seconds): *app* is
    cancelled between two of its sends and the response closed. Any other answer runs
    to its end."""
    streaming = finished = sending_now = False

    async def sending(message: MutableMapping[str, Any]) -> None:
        nonlocal streaming, finished, sending_now
        if message["type"] == "http.response.start":
            streaming = _is_event_stream(message)
        elif message["type"] == "http.response.body" and not message.get("more_body", False):
            finished = True
        sending_now = True
        try:
            await send(message)
        finally:
            sending_now = False

    async def watch(stream: trio.CancelScope) -> None:
        while True:
            await trio.sleep(SESSION_CHECK_EVERY)
            if streaming and not finished and not sending_now and not lasts():
                stream.cancel()
                return

    try:
        with trio.CancelScope() as stream:
            async with trio.open_nursery() as nursery:
                nursery.start_soon(watch, stream)
                await app(scope, receive, sending)
                nursery.cancel_scope.cancel()
    except BaseExceptionGroup as group:  # the app's own error, raised as it raised it
        if len(group.exceptions) == 1:
            raise group.exceptions[0] from None
        raise
    if stream.cancelled_caught and not finished:
        await send({"type": "http.response.body", "body": b"", "more_body": False})
