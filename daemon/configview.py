"""The effective config as ``sluiced config show`` prints it: every default filled in,
secrets redacted."""

from __future__ import annotations

from dataclasses import fields, is_dataclass
from datetime import datetime, timedelta
from pathlib import Path
from typing import Any
from urllib.parse import urlsplit

from .config import Config
from .durations import format_duration
from .redact import redact_value
from .tables import Secret

__all__ = ["effective_config"]


def _toml_value(value: Any) -> Any:
    if isinstance(value, Secret):
        return f"[redacted, from {value.origin}]"
    if isinstance(value, timedelta):
        return format_duration(value)
    if isinstance(value, datetime | Path):
        return str(value) if isinstance(value, Path) else value
    if is_dataclass(value) and not isinstance(value, type):
        return {
            f.name: _toml_value(getattr(value, f.name))
            for f in fields(value)
            if getattr(value, f.name) is not None
        }
    if isinstance(value, dict):
        return {k: _toml_value(v) for k, v in value.items() if v is not None}
    if isinstance(value, tuple | list):
        return [_toml_value(v) for v in value]
    return value


def effective_config(config: Config) -> dict[str, Any]:
    """The config as TOML-ready data, every default filled in.

    Inline secrets cannot be in a valid config; as a second guard, any connector key
    that names a secret but not where it comes from is shown as ``[redacted]``, and the
    credentials of every URL in a value (user-info, ``?access_token=``...) are hidden.
    """
    integrations = {}
    for ident, cfg in config.integrations.items():
        data = _toml_value(cfg)
        data.pop("id")
        data.pop("origin")
        for end in ("source", "target"):
            conn = data.pop(end)
            settings = {
                k: ("[redacted]" if _looks_secret(k) else v) for k, v in conn["settings"].items()
            }
            data[end] = {"connector": conn["connector"], **settings}
        notify = _notify_shown(data.pop("notify"))
        if notify:
            data["notify"] = notify
        integrations[ident] = data
    shown: dict[str, Any] = redact_value(
        {
            "daemon": _toml_value(config.daemon),
            "integrations": integrations,
        }
    )
    notify = _notify_shown(_toml_value(config.notify))
    if notify:
        shown = {"daemon": shown["daemon"], "notify": redact_value(notify), **shown}
    return shown


def _notify_shown(table: dict[str, Any]) -> dict[str, Any]:
    """A webhook's URL may hold its secret in the path (Slack's do): only its origin shows."""
    url = table.get("webhook_url")
    if isinstance(url, str):
        parts = urlsplit(url)
        table["webhook_url"] = f"{parts.scheme}://{parts.hostname}/[redacted]"
    return table


def _looks_secret(key: str) -> bool:
    words = ("password", "secret", "token", "api_key", "apikey")
    return any(w in key.lower() for w in words) and not key.endswith(
        ("_file", "_env", "_credential")
    )
