"""The security headers every answer of the console's listener carries: a strict
Content-Security-Policy (no inline script or style, nothing from elsewhere, no
framing), ``nosniff`` and no referrer."""

from __future__ import annotations

from collections.abc import Callable, MutableMapping
from typing import Any

__all__ = ["CONTENT_SECURITY_POLICY", "SECURITY_HEADERS", "with_security_headers"]

CONTENT_SECURITY_POLICY = (
    "default-src 'none'; script-src 'self'; style-src 'self'; connect-src 'self'; "
    "img-src 'self' data:; form-action 'self'; frame-ancestors 'none'; base-uri 'none'"
)
SECURITY_HEADERS: tuple[tuple[bytes, bytes], ...] = (
    (b"content-security-policy", CONTENT_SECURITY_POLICY.encode()),
    (b"x-content-type-options", b"nosniff"),
    (b"referrer-policy", b"no-referrer"),
    (b"x-frame-options", b"DENY"),
)
_NAMES = frozenset(name for name, _ in SECURITY_HEADERS)


def with_security_headers(send: Callable[..., Any]) -> Callable[..., Any]:
    """*send*, adding :data:`SECURITY_HEADERS` to the response's start (in place of any
    the app set)."""

    async def sending(message: MutableMapping[str, Any]) -> None:
        if message["type"] == "http.response.start":
            kept = [(k, v) for k, v in message.get("headers") or [] if k.lower() not in _NAMES]
            message = {**message, "headers": [*kept, *SECURITY_HEADERS]}
        await send(message)

    return sending
