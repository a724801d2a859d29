"""The TCP listener's app with the console on: ``/console`` and below are the console's
(:mod:`.pages`), everything else is the control API behind the bearer token or a
console session (:func:`~sluiced.api.auth.session_or_token`)."""

from __future__ import annotations

from collections.abc import Awaitable, Callable, Collection, MutableMapping, Sequence
from typing import Any

from ..api.auth import session_or_token
from ..api.jobtypes import JobType
from ..api.sessions import Sessions
from .headers import with_security_headers
from .pages import console_pages

__all__ = ["console_app"]

ASGIApp = Callable[
    [MutableMapping[str, Any], Callable[..., Any], Callable[..., Any]], Awaitable[None]
]


def console_app(
    api: ASGIApp,
    token: str,
    job_types: Sequence[JobType] = (),
    *,
    sessions: Sessions | None = None,
    keyed_targets: Collection[str] = (),
) -> ASGIApp:
    """*api* and the console on one listener; *token* is the API token that logs in,
    *keyed_targets* the target connectors keyed by source ids (mirrors)."""
    sessions = sessions if sessions is not None else Sessions()
    pages = console_pages(token, sessions, job_types, keyed_targets)
    guarded = session_or_token(api, token, sessions)

    async def app(
        scope: MutableMapping[str, Any], receive: Callable[..., Any], send: Callable[..., Any]
    ) -> None:
        if scope["type"] != "http":
            await guarded(scope, receive, send)
            return
        send = with_security_headers(send)
        path = scope["path"]
        if path == "/console" or path.startswith("/console/"):
            await pages(scope, receive, send)
        else:
            await guarded(scope, receive, send)

    return app
