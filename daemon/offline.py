"""What the read commands (``sluiced jobs``, ``sluiced job``) need: the config's
``[daemon]`` table and the store, opened read-only.

They read the store where the daemon keeps it, usually outside the daemon's unit, where
a store password given as a systemd credential (``store_password_credential``) cannot be
read (``$CREDENTIALS_DIRECTORY`` is set for the service only), nor perhaps its file or
variable. Rather than refusing the whole config for it, they then connect without it, so
that libpq's own means apply (``PGPASSWORD``, ``~/.pgpass``), and say so on stderr. A
password written inline, or any other problem, is refused as everywhere.
"""

from __future__ import annotations

import sys
import tomllib
from collections.abc import Awaitable, Callable
from pathlib import Path
from typing import TypeVar

from .config import Config, load_config, parse_config
from .errors import ConfigError
from .store import Store
from .store.opening import open_configured_store

__all__ = ["load_for_reading", "with_store"]

T = TypeVar("T")

_PASSWORD_KEYS = frozenset(f"daemon.store_password{s}" for s in ("_file", "_env", "_credential"))


def load_for_reading(path: Path) -> Config:
    """The config at *path*, with a store password that cannot be read here left out
    (see the module docstring).

    Raises:
        ConfigError: the config has another problem.
    """
    try:
        return load_config(path)
    except ConfigError as exc:
        if not exc.problems or any(p.key not in _PASSWORD_KEYS for p in exc.problems):
            raise
        data = tomllib.loads(path.read_text(encoding="utf-8"))
        daemon = {
            k: v
            for k, v in dict(data.get("daemon") or {}).items()
            if f"daemon.{k}" not in _PASSWORD_KEYS
        }
        config = parse_config({**data, "daemon": daemon}, path=path)
        for problem in exc.problems:
            print(
                f"sluiced: {problem}; reading the store without it (libpq's PGPASSWORD or "
                "~/.pgpass apply)",
                file=sys.stderr,
            )
        return config


async def with_store(config: Config, fn: Callable[[Store], Awaitable[T]]) -> T:
    """*fn* of the configured store opened read-only (one not created yet: empty),
    closed after.

    Raises:
        StoreRefused: the store is damaged or at another schema version.
        StoreUnavailable: it cannot be opened.
    """
    store = open_configured_store(config.daemon, read_only=True)
    try:
        return await fn(store)
    finally:
        await store.aclose()
