"""Structured logs: JSON lines on stdout for journald, readable lines on a terminal.

Every line a job writes carries ``integration_id`` and ``job_id`` (bound with
contextvars in the job's task). Secrets cannot leak through here: values of keys that
name secrets are replaced, :class:`~sluiced.tables.Secret` renders redacted, and the
credentials of URLs in any value (the message, errors, a traceback) are hidden.
"""

from __future__ import annotations

import logging
import sys
from collections.abc import MutableMapping
from typing import Any, TextIO

import structlog

from .redact import redact_value

__all__ = ["configure_logging", "get_logger", "redact_secrets", "redact_urls"]

_SECRET_WORDS = ("password", "secret", "token", "api_key", "apikey", "authorization")


def redact_secrets(
    _logger: Any, _name: str, event: MutableMapping[str, Any]
) -> MutableMapping[str, Any]:
    for key in list(event):
        if any(word in key.lower() for word in _SECRET_WORDS):
            event[key] = "[redacted]"
    return event


def redact_urls(
    _logger: Any, _name: str, event: MutableMapping[str, Any]
) -> MutableMapping[str, Any]:
    """Hide user-info and sensitive query values of URLs in every value of the line."""
    for key, value in event.items():
        event[key] = redact_value(value)
    return event


def configure_logging(
    *, fmt: str = "auto", level: str = "info", stream: TextIO | None = None
) -> None:
    """Configure structlog for the process. ``fmt`` is ``json``, ``console`` or ``auto``
    (console on a terminal, JSON otherwise)."""
    stream = stream or sys.stdout
    if fmt == "auto":
        fmt = "console" if stream.isatty() else "json"
    renderer: Any = (
        structlog.processors.JSONRenderer()
        if fmt == "json"
        else structlog.dev.ConsoleRenderer(colors=stream.isatty())
    )
    structlog.configure(
        processors=[
            structlog.contextvars.merge_contextvars,
            structlog.processors.add_log_level,
            structlog.processors.TimeStamper(fmt="iso", utc=True),
            redact_secrets,
            structlog.processors.format_exc_info,
            redact_urls,
            renderer,
        ],
        wrapper_class=structlog.make_filtering_bound_logger(getattr(logging, level.upper())),
        logger_factory=structlog.PrintLoggerFactory(stream),
        cache_logger_on_first_use=False,
    )


def get_logger(name: str = "sluiced") -> Any:
    return structlog.get_logger(name)
