"""Secrets inside URLs, hidden wherever a URL or an error is shown.

A URL can carry credentials in two places: its user-info (``https://user:pass@host``)
and its query or fragment (``?access_token=...``, ``&apikey=...``). :func:`redact_text`
finds both anywhere in a text (an error message, a log line, a config value) and replaces
the secret with ``[redacted]``, leaving the rest readable:
``https://[redacted]@host/scim?access_token=[redacted]&page=2``.

It is applied where such text leaves the daemon: job errors and job logs (the runner),
escrow reasons (the engine), every log line (the log processor), credential checks
(validate-credentials), config problems and ``sluiced config show``. Connector URLs with
user-info are refused when the config is read (see :func:`url_userinfo_keys`).
"""

from __future__ import annotations

import re
from collections.abc import Mapping
from typing import Any

__all__ = ["REDACTED", "has_userinfo", "redact_text", "redact_value", "sensitive_name"]

REDACTED = "[redacted]"

#: A query parameter whose (normalized) name contains one of these holds a secret...
_SECRET_PARTS = (
    "token",
    "secret",
    "password",
    "passwd",
    "apikey",
    "api_key",
    "auth",
    "credential",
    "signature",
    "session",
)
#: ...and so does one called one of these, or ending in ``_`` and one of them...
_SECRET_WORDS = ("sig", "pass", "pwd")
#: ...or ending in ``key`` (``key``, ``accesskey``, ``x_api_key``), or called ``code``.

_USERINFO = re.compile(r"(?P<scheme>\b[a-zA-Z][a-zA-Z0-9+.-]*://)(?P<userinfo>[^/?#@\s'\"<>]+)@")
_PARAM = re.compile(r"(?P<pre>[?&;#])(?P<name>[^=&;?#\s'\"<>]+)=(?P<value>[^&;#\s'\"<>]*)")


def sensitive_name(name: str) -> bool:
    """Whether a query parameter called *name* holds a secret (``access_token``,
    ``apikey``, ``X-Api-Key``, ``password``, ``sig``, ``key``...)."""
    n = name.lower().replace("-", "_")
    return (
        any(p in n for p in _SECRET_PARTS)
        or n.endswith("key")
        or n == "code"
        or any(n == w or n.endswith("_" + w) for w in _SECRET_WORDS)
    )


def _param(match: re.Match[str]) -> str:
    if not match["value"] or not sensitive_name(match["name"]):
        return match[0]
    return f"{match['pre']}{match['name']}={REDACTED}"


def redact_text(text: str) -> str:
    """*text* with the user-info and sensitive query values of every URL in it hidden."""
    if "=" not in text and "@" not in text:
        return text
    text = _USERINFO.sub(lambda m: f"{m['scheme']}{REDACTED}@", text)
    return _PARAM.sub(_param, text)


def redact_value(value: Any) -> Any:
    """:func:`redact_text` over the strings of *value* and of the lists, tuples and
    mappings in it (keys are kept; anything else is returned as it is)."""
    if isinstance(value, str):
        return redact_text(value)
    if isinstance(value, Mapping):
        return {k: redact_value(v) for k, v in value.items()}
    if isinstance(value, list):
        return [redact_value(v) for v in value]
    if type(value) is tuple:
        return tuple(redact_value(v) for v in value)
    return value


def has_userinfo(text: str) -> bool:
    """Whether *text* holds a URL with user-info (``scheme://user[:pass]@host``)."""
    return _USERINFO.search(text) is not None
