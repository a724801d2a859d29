"""A command another node sent through the store, answered by this node's control API
in-process, as the request would have been answered here: its status and JSON body."""

from __future__ import annotations

import json
from collections.abc import Mapping
from typing import Any

import trio
from starlette.types import ASGIApp, Message

from .routing import COMMAND_HEADER

__all__ = ["replay"]


async def replay(app: ASGIApp, kind: str, body: Mapping[str, Any]) -> tuple[int, Any]:
    """Answer *kind* (``"METHOD /path?query"``) with *body* through *app*; returns the
    status and the JSON body (None if the answer had none)."""
    method, _, target = kind.partition(" ")
    path, _, query = target.partition("?")
    raw = json.dumps(dict(body)).encode() if body else b""
    scope: dict[str, Any] = {
        "type": "http",
        "asgi": {"version": "3.0"},
        "http_version": "1.1",
        "method": method,
        "scheme": "http",
        "path": path,
        "raw_path": path.encode(),
        "query_string": query.encode(),
        "root_path": "",
        "headers": [
            (b"content-type", b"application/json"),
            (b"content-length", str(len(raw)).encode()),
            (COMMAND_HEADER.encode(), b"1"),
        ],
        "client": None,
        "server": None,
    }
    given = False
    status = 500
    chunks: list[bytes] = []

    async def receive() -> Message:
        nonlocal given
        if not given:
            given = True
            return {"type": "http.request", "body": raw, "more_body": False}
        await trio.sleep_forever()
        raise AssertionError("unreachable")

    async def send(message: Message) -> None:
        nonlocal status
        if message["type"] == "http.response.start":
            status = int(message["status"])
        elif message["type"] == "http.response.body":
            chunks.append(bytes(message.get("body", b"")))

    await app(scope, receive, send)
    data = b"".join(chunks)
    return status, json.loads(data) if data else None
