"""The daemon's configuration: ``config.toml`` read once into frozen dataclasses.

``load_config(path)`` reads and validates the file and raises :class:`ConfigError`
listing *every* problem, each naming the file, the key path, what was found and what
was expected. Unknown keys are errors. Connector settings stay raw here; each
connector plugin validates its own (see :func:`sluiced.connectors.resolve_connectors`),
with the same error format. The ``[daemon]`` table is :mod:`sluiced.daemonconfig`'s.
"""

from __future__ import annotations

import json
import re
import tomllib
from collections.abc import Mapping
from dataclasses import dataclass, field
from datetime import datetime, timedelta
from pathlib import Path
from typing import Any

from .daemonconfig import CHANGES_RETENTION, DaemonConfig, parse_daemon
from .notifications import NotifySettings, check_email, parse_notify
from .redact import has_userinfo
from .tables import Problems, TableReader

__all__ = [
    "CHANGES_RETENTION",
    "ID_PATTERN",
    "SCHEDULE_STATES",
    "Config",
    "ConnectorConfig",
    "DaemonConfig",
    "DeletionThreshold",
    "EscrowPolicy",
    "IntegrationConfig",
    "QuarantinePolicy",
    "RetryPolicy",
    "load_config",
    "parse_config",
]

SCHEDULE_STATES = ("Active", "Paused", "Disabled")
#: Integration ids, in the config and the API alike: safe as a file name and a URL
#: path segment (no ".", no "/").
ID_PATTERN = r"^[A-Za-z0-9][A-Za-z0-9_-]{0,63}$"


@dataclass(frozen=True, kw_only=True)
class RetryPolicy:
    """Retries of transient errors inside one run: capped exponential backoff with jitter."""

    attempts: int = 5
    base: timedelta = timedelta(seconds=1)
    cap: timedelta = timedelta(seconds=60)


@dataclass(frozen=True, kw_only=True)
class QuarantinePolicy:
    """When an integration that keeps failing is quarantined, and how its retries escalate.

    Modelled on Entra's published policy (retry after 6 h, 12 h, 24 h, then daily;
    disabled after 28 days), scaled down for intervals of minutes.
    """

    after_failures: int = 3
    escalation: tuple[timedelta, ...] = (
        timedelta(minutes=10),
        timedelta(minutes=30),
        timedelta(hours=1),
        timedelta(hours=2),
        timedelta(hours=6),
    )
    disable_after: timedelta = timedelta(days=28)
    #: A run where more than this share of objects was escrowed counts as failed...
    escrow_proportion: float = 0.4
    #: ...once at least this many objects failed.
    escrow_min_failures: int = 50


@dataclass(frozen=True, kw_only=True)
class EscrowPolicy:
    """Backoff between retries of one escrowed object."""

    base: timedelta = timedelta(minutes=5)
    cap: timedelta = timedelta(hours=6)


@dataclass(frozen=True, kw_only=True)
class DeletionThreshold:
    """A run that would delete more than ``count`` objects, or more than ``percent`` of
    the objects synced so far, deletes nothing and quarantines with ``TooManyDeletes``.
    ``None`` switches that check off."""

    count: int | None = 500
    percent: float | None = None


@dataclass(frozen=True, kw_only=True)
class ConnectorConfig:
    connector: str
    settings: Mapping[str, Any] = field(default_factory=dict)
    #: Key path of the table, for error messages (``integrations.hr.source``).
    key: str = ""


@dataclass(frozen=True, kw_only=True)
class IntegrationConfig:
    id: str
    name: str
    source: ConnectorConfig
    target: ConnectorConfig
    entity_types: tuple[str, ...]
    interval: timedelta = timedelta(minutes=40)
    full_sync_interval: timedelta | None = None
    jitter: timedelta = timedelta(seconds=30)
    state: str = "Active"
    expiration: datetime | None = None
    batch_size: int = 500
    retry: RetryPolicy = RetryPolicy()
    quarantine: QuarantinePolicy = QuarantinePolicy()
    escrow: EscrowPolicy = EscrowPolicy()
    deletion_threshold: DeletionThreshold = DeletionThreshold()
    #: The synchronization schema from the config (inline, or read from its file), not
    #: yet validated against the plugins' functions; one set through the API wins.
    schema: Mapping[str, Any] | None = None
    #: Where the definition comes from: "config" (this file) or "api".
    origin: str = "config"
    #: ``[integrations.<id>.notify]``: overrides the config's ``[notify]`` key by key.
    notify: NotifySettings = field(default_factory=NotifySettings)
    #: How long its provisioning log keeps a change (zero: none is written).
    changes_retention: timedelta = CHANGES_RETENTION


@dataclass(frozen=True, kw_only=True)
class Config:
    path: Path
    daemon: DaemonConfig
    integrations: Mapping[str, IntegrationConfig]
    #: ``[notify]``: notifications of every integration (see :mod:`sluiced.notifications`).
    notify: NotifySettings = field(default_factory=NotifySettings)


def load_config(path: str | Path) -> Config:
    """Read and validate *path*.

    Raises:
        ConfigError: the file cannot be read, is not TOML, or has problems; every
            problem is listed.
    """
    path = Path(path)
    problems = Problems(str(path))
    try:
        text = path.read_text(encoding="utf-8")
    except OSError as exc:
        problems.add("", f"no readable file ({exc.strerror})", "a readable TOML file")
        problems.raise_if_any()
        raise AssertionError("unreachable") from None
    try:
        data = tomllib.loads(text)
    except tomllib.TOMLDecodeError as exc:
        problems.add("", f"invalid TOML ({exc})", "a TOML document")
        problems.raise_if_any()
    return parse_config(data, path=path)


def parse_config(
    data: Mapping[str, Any],
    *,
    path: Path,
    confine: tuple[Path, ...] | None = None,
    changes_retention: timedelta | None = None,
) -> Config:
    """Validate already-parsed TOML *data* as if read from *path*; with *confine*, every
    path it names must lie inside one of those directories. An integration without its
    own ``changes_retention`` takes *changes_retention*, else the daemon's."""
    problems = Problems(str(path))
    base_dir = path.parent.resolve() if path.parent else Path.cwd()
    root = TableReader(data, path="", problems=problems, base_dir=base_dir, confine=confine)
    daemon = parse_daemon(root.get_table("daemon"))
    integrations: dict[str, IntegrationConfig] = {}
    table = root.get_table("integrations")
    for ident in table.table:
        table.ignore(ident)
        sub = table.get_table(ident)
        if not _valid_id(ident):
            problems.add(
                sub.path,
                f"integration id {ident!r}",
                "an id of up to 64 ASCII letters, digits, '-' and '_', starting with a letter"
                " or digit",
            )
        retention = changes_retention if changes_retention is not None else daemon.changes_retention
        integrations[ident] = _integration(ident, sub, retention)
    notify_table = root.get_table("notify")
    notify = parse_notify(notify_table)
    if confine is None:  # the config file: every integration's settings are complete here
        for ident, cfg in integrations.items():
            check_email(problems, f"integrations.{ident}.notify", cfg.notify.over(notify))
    root.finish()
    problems.raise_if_any()
    return Config(path=path, daemon=daemon, integrations=integrations, notify=notify)


def _valid_id(ident: str) -> bool:
    return re.fullmatch(ID_PATTERN, ident) is not None


def _connector(t: TableReader, name: str) -> ConnectorConfig:
    sub = t.get_table(name, required=True)
    connector = sub.get_str("connector")
    settings = {k: v for k, v in sub.table.items() if k != "connector"}
    for k in settings:
        sub.ignore(k)  # validated by the connector plugin
    for key in _keys_with_userinfo(settings, sub.path):
        t.problems.add(
            key,
            "a URL with a user name or password in it (not shown)",
            "a URL without credentials; give the secret with the connector's own key "
            "ending in _file, _env or _credential (like token_file or api_key_credential)",
        )
    return ConnectorConfig(
        connector=connector if isinstance(connector, str) else "", settings=settings, key=sub.path
    )


def _keys_with_userinfo(value: Any, path: str) -> list[str]:
    """The key paths under *path* whose string holds a URL with user-info."""
    if isinstance(value, str):
        return [path] if has_userinfo(value) else []
    if isinstance(value, Mapping):
        return [k for n, v in value.items() for k in _keys_with_userinfo(v, f"{path}.{n}")]
    if isinstance(value, list):
        return [k for i, v in enumerate(value) for k in _keys_with_userinfo(v, f"{path}[{i}]")]
    return []


def _integration(ident: str, t: TableReader, retention: timedelta) -> IntegrationConfig:
    r, q, e, dt = (t.get_table(n) for n in ("retry", "quarantine", "escrow", "deletion_threshold"))
    defaults_q = QuarantinePolicy()
    retry = RetryPolicy(
        attempts=r.get_int("attempts", 5, minimum=1),
        base=r.get_duration("base", timedelta(seconds=1)),
        cap=r.get_duration("cap", timedelta(seconds=60)),
    )
    quarantine = QuarantinePolicy(
        after_failures=q.get_int("after_failures", defaults_q.after_failures, minimum=1),
        escalation=q.get_durations("escalation", defaults_q.escalation),
        disable_after=q.get_duration("disable_after", defaults_q.disable_after, positive=True),
        escrow_proportion=q.get_float("escrow_proportion", 0.4, maximum=1.0),
        escrow_min_failures=q.get_int("escrow_min_failures", 50, minimum=1),
    )
    escrow = EscrowPolicy(
        base=e.get_duration("base", timedelta(minutes=5)),
        cap=e.get_duration("cap", timedelta(hours=6)),
    )
    enabled = dt.get_bool("enabled", True)
    count = dt.get_int("count", 500, minimum=0)  # read (checked) even when not enabled
    percent = dt.get_float("percent", None, maximum=100.0)
    threshold = DeletionThreshold(
        count=count if enabled else None, percent=percent if enabled else None
    )
    for sub in (r, q, e, dt):
        sub.finish()
    cfg = IntegrationConfig(
        id=ident,
        name=t.get_str("name", ident),
        source=_connector(t, "source"),
        target=_connector(t, "target"),
        entity_types=t.get_str_list("entity_types", non_empty=True),
        interval=t.get_duration("interval", timedelta(minutes=40), positive=True),
        full_sync_interval=t.get_duration("full_sync_interval", None, positive=True),
        jitter=t.get_duration("jitter", timedelta(seconds=30)),
        state=t.get_str("state", "Active", choices=SCHEDULE_STATES),
        expiration=t.get_datetime("expiration", None),
        batch_size=t.get_int("batch_size", 500, minimum=1),
        retry=retry,
        quarantine=quarantine,
        escrow=escrow,
        deletion_threshold=threshold,
        schema=_schema(t),
        notify=parse_notify(t.get_table("notify")),
        changes_retention=t.get_duration("changes_retention", retention),
    )
    t.finish()
    return cfg


def _schema(t: TableReader) -> Mapping[str, Any] | None:
    """``schema = "hr-schema.json"`` (a JSON or TOML file) or a ``[...schema]`` table."""
    if not t.has("schema"):
        return None
    value = t.table["schema"]
    if isinstance(value, Mapping):
        t.ignore("schema")  # validated with the plugins' functions when integrations resolve
        return value
    path = t.get_path("schema")
    if not isinstance(path, Path):
        return None
    expected = "a readable JSON or TOML schema file, or a table"
    try:
        text = path.read_text(encoding="utf-8")
        data = tomllib.loads(text) if path.suffix == ".toml" else json.loads(text)
    except OSError as exc:
        t.problems.add(t.key("schema"), f'"{path}" ({exc.strerror})', expected)
        return None
    except ValueError as exc:  # JSONDecodeError and TOMLDecodeError
        t.problems.add(t.key("schema"), f'"{path}" ({exc})', expected)
        return None
    if not isinstance(data, Mapping):
        t.problems.add(t.key("schema"), f'"{path}" (not an object)', expected)
        return None
    return data
