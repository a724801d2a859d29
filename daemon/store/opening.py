"""Opening the daemon's store at start-up, refusing what would silently lose state.

* A damaged store (not a sound SQLite file) is refused with :class:`StoreDamaged`.
* A missing or empty (0-byte) store in a state directory that shows the daemon ran
  before — its lock file, the store's WAL, connector files or plans exist — is refused:
  starting afresh there would forget every link and watermark, and the next run would
  create or match every object again.
* Told to begin anew (``sluiced run --fresh-store``, or the file ``fresh-store`` in the
  state directory, removed once used), a damaged store is renamed aside
  (``sluiced.sqlite3.damaged-<UTC time>``, never deleted) and an empty or missing one is
  accepted. A sound store is always kept: beginning anew never discards one.

With ``store = "postgresql://..."`` in ``[daemon]`` the store is a PostgreSQL database
instead (:func:`open_configured_store`): it is checked as the file is, for a database
other nodes may share (:mod:`.postgres_opening`), and its schema migrated when it is
opened; several nodes share it, each running the integrations it holds leases on
(:mod:`sluiced.cluster`).

The read commands (``sluiced jobs``) open the store read-only, and a store that does
not exist yet (no file, an empty one, or no store tables in the schema) as an empty
one in memory: they never create or change it.
"""

from __future__ import annotations

import contextlib
import fcntl
import socket
from datetime import UTC, datetime
from pathlib import Path

from ..config import DaemonConfig
from ..logs import get_logger
from .abc import Store
from .errors import StoreDamaged, StoreMissing, StoreRefused
from .memory import MemoryStore
from .sqlite import SqliteStore

__all__ = [
    "FRESH_STORE_MARKER",
    "open_configured_store",
    "open_daemon_store",
    "ran_before",
    "store_name",
]

#: A file of this name in the state directory has the effect of ``--fresh-store`` once.
FRESH_STORE_MARKER = "fresh-store"

log = get_logger("sluiced.store")


def ran_before(state_dir: Path, store_path: Path) -> list[str]:
    """What in *state_dir* shows a daemon used it (relative names)."""
    signs = []
    for name in ("sluiced.lock", store_path.name + "-wal"):
        if (state_dir / name).exists():
            signs.append(name)
    for name in ("connectors", "plans"):
        folder = state_dir / name
        if folder.is_dir() and any(folder.iterdir()):
            signs.append(name + "/")
    return signs


def _set_aside(path: Path, state_dir: Path) -> Path:
    """Rename the store and its WAL and shared-memory files aside; return the new name.

    Raises:
        StoreRefused: another daemon holds the state directory.
    """
    with (state_dir / "sluiced.lock").open("ab") as lock:
        try:
            fcntl.flock(lock, fcntl.LOCK_EX | fcntl.LOCK_NB)
        except BlockingIOError:
            raise StoreRefused(
                f"another sluiced is running on the state directory {state_dir}; stop it first"
            ) from None
        stamp = datetime.now(UTC).strftime("%Y%m%dT%H%M%SZ")
        aside = path.with_name(f"{path.name}.damaged-{stamp}")
        for suffix in ("-wal", "-shm", ""):
            part = Path(str(path) + suffix)
            if part.exists():
                part.rename(Path(str(aside) + suffix))
    return aside


def open_daemon_store(
    path: Path, *, state_dir: Path, log_limit: int, fresh: bool = False
) -> SqliteStore:
    """Open the daemon's store at *path*, checked whole (see the module's contract).

    *fresh* (or the marker file) allows beginning with an empty store.

    Raises:
        StoreRefused: the store is lost or damaged and beginning anew was not asked for
            (:class:`StoreDamaged` for a damaged one), or its schema is too new.
        StoreUnavailable: it cannot be opened (permissions, a full disk, I/O).
    """
    marker = state_dir / FRESH_STORE_MARKER
    fresh = fresh or marker.exists()
    empty = not path.exists() or path.stat().st_size == 0
    if empty and not fresh and (signs := ran_before(state_dir, path)):
        what = "missing" if not path.exists() else "empty (0 bytes)"
        raise StoreRefused(
            f"the store {path} is {what}, but the state directory shows that sluiced ran "
            f"there before ({', '.join(signs)}): starting with an empty store would forget "
            "every link and watermark, and the next run would create or match every object "
            "again. Restore the store from a backup, or, to begin anew, start once with "
            f"`sluiced run --fresh-store` (or create the file {marker})"
        )
    try:
        store = SqliteStore(path, log_limit=log_limit, verify=True)
    except StoreDamaged as exc:
        if not fresh:
            raise
        aside = _set_aside(path, state_dir)
        log.warning(
            "the damaged store was set aside; beginning anew", damaged=exc.detail, aside=str(aside)
        )
        store = SqliteStore(path, log_limit=log_limit, verify=True)
    else:
        if fresh and empty:
            log.warning("beginning with an empty store, as told", store=str(path))
    with contextlib.suppress(FileNotFoundError):
        marker.unlink()
    return store


def store_name(daemon: DaemonConfig) -> str:
    """The configured store as it may be shown: its file, or its URL (which holds no
    password: the config refuses one)."""
    return str(daemon.store_path) if daemon.store is None else daemon.store


def open_configured_store(
    daemon: DaemonConfig, *, fresh: bool = False, read_only: bool = False
) -> Store:
    """The store ``[daemon]`` names: :func:`open_daemon_store` for the SQLite file (not
    *read_only*), else the PostgreSQL store, checked and migrated (not *read_only*) or
    opened to be read. Read-only, a store that does not exist yet is an empty one in
    memory (see the module docstring).

    Raises:
        StoreRefused: see :func:`open_daemon_store`,
            :func:`~.postgres_opening.check_postgres_store` and
            :class:`~sluiced.store.postgres.PostgresStore`.
        StoreUnavailable: it cannot be opened.
    """
    if daemon.store is None:
        path = daemon.store_path
        if read_only:
            if not path.exists() or path.stat().st_size == 0:
                return MemoryStore()
            return SqliteStore(path, log_limit=daemon.job_log_limit, read_only=True)
        return open_daemon_store(
            path, state_dir=daemon.state_dir, log_limit=daemon.job_log_limit, fresh=fresh
        )
    # psycopg: the postgresql extra, checked by the config
    from .postgres import PostgresStore
    from .postgres_opening import check_postgres_store

    node_id = daemon.node_id or None
    marker = daemon.state_dir / FRESH_STORE_MARKER
    if not read_only:
        check_postgres_store(
            daemon.store,
            password=daemon.store_password,
            schema=daemon.store_schema,
            node_id=node_id or socket.gethostname(),
            ttl=daemon.lease_ttl.total_seconds(),
            state_dir=daemon.state_dir,
            signs=ran_before(daemon.state_dir, daemon.store_path),
            fresh=fresh or marker.exists(),
        )
    try:
        store = PostgresStore(
            daemon.store,
            password=daemon.store_password,
            schema=daemon.store_schema,
            node_id=node_id,
            log_limit=daemon.job_log_limit,
            read_only=read_only,
        )
    except StoreMissing:
        return MemoryStore()
    if not read_only:
        with contextlib.suppress(FileNotFoundError):
            marker.unlink()
    return store
