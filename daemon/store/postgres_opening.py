"""Opening a PostgreSQL store at start-up: what :mod:`.opening` does for the SQLite file,
for a schema of a database that other nodes may share. Only the configured schema is
ever looked at or changed; nothing is ever dropped.

* **Lost**: the schema holds no table (or does not exist) while this node's state
  directory shows that sluiced ran there before: it is refused, since starting with an
  empty store would forget every link and watermark.
* **Damaged**: the schema records a version of the store but lacks tables of that
  version: it is refused.
* **Not a store**: the schema holds tables but no ``schema_version``: it is refused
  always (it may be another application's; setting it aside would break that one).
* **Beginning anew** (``sluiced run --fresh-store`` or the ``fresh-store`` file): a lost
  store is accepted and a damaged one renamed aside (``<schema>_damaged_<UTC time>``),
  as the SQLite file is; a sound store is kept. It is refused while other nodes are live
  on the store (in ``nodes``, a heartbeat within the lease's TTL): beginning anew must
  never set aside a store that other nodes use.

The inspection runs in one transaction under the schema's migration lock, so a node
migrating at the same time is waited for.
"""

from __future__ import annotations

import os
import re
import socket
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

import psycopg
from psycopg import sql

from ..logs import get_logger
from ..tables import Secret
from .errors import StoreRefused, StoreUnavailable
from .postgres_base import Timeouts, shown_url
from .postgres_schema import MIGRATIONS, lock_key

__all__ = ["check_postgres_store", "process_alive"]

log = get_logger("sluiced.store")

_TABLE = re.compile(r"CREATE TABLE (\w+)")


def _tables(conn: psycopg.Connection[Any], schema: str) -> set[str]:
    rows = conn.execute("SELECT tablename FROM pg_tables WHERE schemaname=%s", (schema,))
    return {str(r[0]) for r in rows.fetchall()}


def _version(conn: psycopg.Connection[Any], schema: str) -> int:
    row = conn.execute(
        sql.SQL("SELECT coalesce(max(version), 0) FROM {}.schema_version").format(
            sql.Identifier(schema)
        )
    ).fetchone()
    return int(row[0]) if row is not None else 0


def process_alive(pid: int) -> bool:
    """Whether a process *pid* runs on this host."""
    try:
        os.kill(pid, 0)
    except ProcessLookupError:
        return False
    except PermissionError:
        return True
    return True


def _live_others(conn: psycopg.Connection[Any], schema: str, node_id: str, ttl: float) -> list[str]:
    """The live nodes of the store other than this one (an earlier process of this node
    on this host that is gone does not count), each as it is shown."""
    rows = conn.execute(
        sql.SQL(
            "SELECT node_id, host, pid, extract(epoch FROM now() - heartbeat_at)"
            " FROM {}.nodes WHERE left_at IS NULL AND heartbeat_at > now() - %s::interval"
            " ORDER BY node_id"
        ).format(sql.Identifier(schema)),
        (f"{ttl} seconds",),
    ).fetchall()
    here = socket.gethostname()
    return [
        f"{r[0]} (host {r[1]}, process {r[2]}, last heartbeat {float(r[3]):.0f}s ago)"
        for r in rows
        if r[0] != node_id or r[1] != here or process_alive(int(r[2]))
    ]


def _marker_hint(state_dir: Path) -> str:
    return f"(or create the file {state_dir / 'fresh-store'})"


def check_postgres_store(
    url: str,
    *,
    password: Secret | str | None,
    schema: str,
    node_id: str,
    ttl: float,
    state_dir: Path,
    signs: list[str],
    fresh: bool,
    timeouts: Timeouts | None = None,
) -> None:
    """Inspect the store's *schema* before the daemon migrates and uses it (see the
    module docstring); with *fresh*, set a damaged one aside. *signs* are what in the
    state directory shows that this node ran before.

    Raises:
        StoreRefused: the store is lost, damaged or not a store and beginning anew was not
            asked for, or it was asked for while other nodes are live.
        StoreUnavailable: the server cannot be reached or failed.
    """
    where = f"{shown_url(url)} (schema {schema})"
    kwargs = (timeouts or Timeouts()).connect_kwargs(f"sluiced {node_id}", schema)
    if password is not None:
        kwargs["password"] = password.reveal() if isinstance(password, Secret) else password
    try:
        with psycopg.connect(url, **kwargs) as conn, conn.transaction():
            conn.execute("SELECT pg_advisory_xact_lock(%s, %s)", lock_key("migrate", schema))
            _inspect(conn, schema, where, node_id, ttl, state_dir, signs, fresh)
    except psycopg.Error as exc:
        message = " ".join(str(exc).split()) or type(exc).__name__
        raise StoreUnavailable(f"cannot open the store {where}: {message}") from None


def _inspect(
    conn: psycopg.Connection[Any],
    schema: str,
    where: str,
    node_id: str,
    ttl: float,
    state_dir: Path,
    signs: list[str],
    fresh: bool,
) -> None:
    tables = _tables(conn, schema)
    if tables and "schema_version" not in tables:
        shown = ", ".join(sorted(tables)[:5]) + (", ..." if len(tables) > 5 else "")
        raise StoreRefused(
            f"the store {where} holds tables that are not a sluiced store's ({shown}) and no "
            "schema_version: set store_schema to a schema of sluiced's own"
        )
    if fresh and "nodes" in tables and (others := _live_others(conn, schema, node_id, ttl)):
        raise StoreRefused(
            f"beginning anew (--fresh-store, or the file {state_dir / 'fresh-store'}) is "
            f"refused: other nodes are live on the store {where}: {'; '.join(others)}. "
            "Beginning anew must never set aside a store other nodes use: stop them first, "
            "or start this node without it (remove the file if it is there)"
        )
    if not tables or tables == {"schema_version"}:
        if signs and not fresh:
            raise StoreRefused(
                f"the store {where} holds no sluiced tables, but the state directory "
                f"{state_dir} shows that sluiced ran there before ({', '.join(signs)}): "
                "starting with an empty store would forget every link and watermark, and the "
                "next run would create or match every object again. Check store and "
                "store_schema, or restore the database from a backup; to begin anew (this "
                "node used another store before, say), start once with "
                f"`sluiced run --fresh-store` {_marker_hint(state_dir)}"
            )
        if signs:
            log.warning("beginning with an empty store, as told", store=where)
        return
    version = _version(conn, schema)
    wanted = {t for script in MIGRATIONS[:version] for t in _TABLE.findall(script)}
    missing = sorted(wanted - tables)
    if not missing:
        return
    detail = f"at schema version {version}, without the tables {', '.join(missing)}"
    if not fresh:
        raise StoreRefused(
            f"the store {where} is damaged ({detail}). Restore it from a backup, or start "
            f"once with `sluiced run --fresh-store` {_marker_hint(state_dir)} to set the "
            "schema aside (renamed, never dropped) and begin with an empty store: links, "
            "watermarks and job history are lost, and the next run matches every object again"
        )
    stamp = datetime.now(UTC).strftime("%Y%m%dt%H%M%Sz")
    aside = f"{schema[:40]}_damaged_{stamp}"
    conn.execute(
        sql.SQL("ALTER SCHEMA {} RENAME TO {}").format(
            sql.Identifier(schema), sql.Identifier(aside)
        )
    )
    log.warning("the damaged store was set aside; beginning anew", damaged=detail, aside=aside)
