"""The ``[daemon]`` table of ``config.toml``: where the daemon keeps its state and
listens, how it logs, its store and its cluster settings (see :mod:`sluiced.config`
for the file as a whole, and :mod:`sluiced.storeconfig` for the store's keys).

Directories default to those systemd makes for the unit (``StateDirectory=``,
``RuntimeDirectory=``), else to ``state`` next to the config file.
"""

from __future__ import annotations

import ipaddress
import os
from dataclasses import dataclass
from datetime import timedelta
from pathlib import Path

from .storeconfig import store_settings
from .tables import Secret, TableReader

__all__ = ["CHANGES_RETENTION", "CONSOLE_LISTEN", "DaemonConfig", "parse_daemon"]

#: How long the provisioning log keeps a change unless the config says otherwise.
CHANGES_RETENTION = timedelta(days=30)

LOG_FORMATS = ("auto", "json", "console")
LOG_LEVELS = ("debug", "info", "warning", "error")
#: Where the console listens when ``console = true`` names no ``tcp_listen``.
CONSOLE_LISTEN = "127.0.0.1:8765"


@dataclass(frozen=True, kw_only=True)
class DaemonConfig:
    state_dir: Path
    control_socket: Path
    max_concurrent_jobs: int = 4
    log_format: str = "auto"
    log_level: str = "info"
    disabled_plugins: tuple[str, ...] = ()
    shutdown_grace: timedelta = timedelta(seconds=30)
    job_log_limit: int = 1000
    #: Also serve the control API on TCP (``host:port``); needs ``api_token``.
    tcp_listen: str | None = None
    api_token: Secret | None = None
    #: Serve the web console on the TCP listener (see :mod:`sluiced.console`).
    console: bool = False
    #: Directories that integrations created through the API may name files in
    #: (None: the state directory); see :attr:`api_paths`.
    allowed_paths: tuple[Path, ...] | None = None
    #: A PostgreSQL URL for the store (None: the SQLite file :attr:`store_path`); see
    #: :mod:`sluiced.storeconfig` for these six.
    store: str | None = None
    store_password: Secret | None = None
    store_schema: str = "sluiced"
    node_id: str = ""
    lease_ttl: timedelta = timedelta(seconds=30)
    heartbeat: timedelta = timedelta(seconds=10)
    #: How long the provisioning log keeps a change (zero: none); see
    #: :attr:`sluiced.config.IntegrationConfig.changes_retention`.
    changes_retention: timedelta = CHANGES_RETENTION

    @property
    def api_paths(self) -> tuple[Path, ...]:
        """The directories API-created integrations may name files in."""
        return self.allowed_paths if self.allowed_paths is not None else (self.state_dir,)

    @property
    def store_path(self) -> Path:
        return self.state_dir / "sluiced.sqlite3"


def _systemd_directory(variable: str) -> Path | None:
    """The first directory systemd passes in *variable* (``StateDirectory=`` sets
    ``$STATE_DIRECTORY``, ``RuntimeDirectory=`` ``$RUNTIME_DIRECTORY``; several are
    separated by ``:``), or None outside such a unit."""
    first = os.environ.get(variable, "").split(":")[0]
    return Path(first) if first and Path(first).is_absolute() else None


def parse_daemon(t: TableReader) -> DaemonConfig:
    """The ``[daemon]`` table *t*, its problems added to *t*'s (it is finished here)."""
    console = t.get_bool("console", False)
    # Defaults: the directories systemd made for the unit, else next to the config.
    state_dir = t.get_path(
        "state_dir", _systemd_directory("STATE_DIRECTORY") or t.base_dir / "state"
    )
    runtime_dir = _systemd_directory("RUNTIME_DIRECTORY") or state_dir
    d = DaemonConfig(
        state_dir=state_dir,
        control_socket=t.get_path("control_socket", runtime_dir / "control.sock"),
        max_concurrent_jobs=t.get_int("max_concurrent_jobs", 4, minimum=1),
        log_format=t.get_str("log_format", "auto", choices=LOG_FORMATS),
        log_level=t.get_str("log_level", "info", choices=LOG_LEVELS),
        disabled_plugins=t.get_str_list("disabled_plugins", ()),
        shutdown_grace=t.get_duration("shutdown_grace", timedelta(seconds=30)),
        job_log_limit=t.get_int("job_log_limit", 1000, minimum=10),
        changes_retention=t.get_duration("changes_retention", CHANGES_RETENTION),
        tcp_listen=t.get_str("tcp_listen", CONSOLE_LISTEN if console else None),
        api_token=t.get_secret("api_token", required=t.has("tcp_listen") or console),
        console=console,
        allowed_paths=_allowed_paths(t),
        **store_settings(t),
    )
    if d.tcp_listen is not None and not _valid_address(d.tcp_listen):
        t.problems.add(t.key("tcp_listen"), f'"{d.tcp_listen}"', 'an address like "127.0.0.1:8765"')
    elif d.console and d.tcp_listen is not None and not _loopback(d.tcp_listen):
        t.problems.add(
            t.key("tcp_listen"),
            f'"{d.tcp_listen}" with console = true',
            "a loopback address (127.0.0.1, [::1] or localhost) while the console is on: "
            "reach it from elsewhere through a TLS reverse proxy or an SSH tunnel",
        )
    t.finish()
    return d


def _allowed_paths(t: TableReader) -> tuple[Path, ...] | None:
    names = t.get_str_list("allowed_paths", None)
    if names is None:
        return None
    out = []
    for i, name in enumerate(names):
        if not name:
            t.problems.add(f"{t.key('allowed_paths')}[{i}]", '""', "a directory")
            continue
        p = Path(name).expanduser()
        out.append(p if p.is_absolute() else t.base_dir / p)
    return tuple(out)


def _loopback(address: str) -> bool:
    host = address.rpartition(":")[0].strip("[]")
    if host == "localhost":
        return True
    try:
        return ipaddress.ip_address(host).is_loopback
    except ValueError:
        return False


def _valid_address(text: str) -> bool:
    host, _, port = text.rpartition(":")
    return bool(host) and port.isdigit() and 0 < int(port) < 65536
