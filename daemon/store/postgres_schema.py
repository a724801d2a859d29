"""The store's PostgreSQL schema: versioned forward migrations, applied once.

The tables live in a PostgreSQL schema of their own (``sluiced`` unless the config names
another), next to a ``schema_version`` table with one row per applied version. Whichever
node opens the store first applies the missing versions, in one transaction that holds a
transaction-level advisory lock: a node opening it at the same time waits for that
transaction and then finds nothing left to do. A database at a version newer than this
code is refused rather than misread.

Every table is keyed by its integration first, so that a node's writes can be made
conditional on the lease it holds for that integration: version 2 adds ``leases`` (one
row per integration: the holding node, its fencing epoch and an expiry on the database's
clock) and ``nodes`` (each daemon that joined, with its last heartbeat); see
:mod:`sluiced.cluster.postgres`. Version 3 adds ``commands``, the control API's commands
on its way to the node that holds an integration (:mod:`sluiced.cluster.commands`).
Version 4 adds the node that ran each job; version 5 ``changes``, the provisioning log
(:mod:`.postgres_changes`); version 6 the key of a change copied from a target's outbox.
"""

from __future__ import annotations

import zlib
from typing import Any

import psycopg
from psycopg import sql

from .errors import StoreMissing, StoreRefused

__all__ = ["MIGRATIONS", "check_version", "lock_key", "migrate"]

#: Every text column that is compared or ordered uses the "C" collation: byte order,
#: as the SQLite store orders, whatever the database's locale.
MIGRATIONS: tuple[str, ...] = (
    # 1: the first schema.
    """
    CREATE TABLE jobs (
        id text COLLATE "C" PRIMARY KEY,
        integration_id text COLLATE "C" NOT NULL,
        status text COLLATE "C" NOT NULL,
        created_at text COLLATE "C" NOT NULL,
        duration_ms bigint,
        body text NOT NULL
    );
    CREATE INDEX jobs_by_integration ON jobs (integration_id, created_at);
    CREATE INDEX jobs_by_status ON jobs (status);
    CREATE TABLE job_logs (
        job_id text COLLATE "C" NOT NULL,
        seq bigint NOT NULL,
        ts text NOT NULL,
        level text NOT NULL,
        message text NOT NULL,
        PRIMARY KEY (job_id, seq)
    );
    CREATE TABLE integration_state (
        integration_id text COLLATE "C" PRIMARY KEY,
        body text NOT NULL
    );
    CREATE TABLE watermarks (
        integration_id text COLLATE "C" NOT NULL,
        entity_type text COLLATE "C" NOT NULL,
        value text NOT NULL,
        PRIMARY KEY (integration_id, entity_type)
    );
    CREATE TABLE links (
        integration_id text COLLATE "C" NOT NULL,
        entity_type text COLLATE "C" NOT NULL,
        source_id text COLLATE "C" NOT NULL,
        target_id text NOT NULL,
        hash text NOT NULL,
        seen_pass text COLLATE "C",
        data text,
        disabled_at text,
        PRIMARY KEY (integration_id, entity_type, source_id)
    );
    CREATE TABLE escrows (
        integration_id text COLLATE "C" NOT NULL,
        entity_type text COLLATE "C" NOT NULL,
        object_id text COLLATE "C" NOT NULL,
        kind text COLLATE "C" NOT NULL,
        next_retry text COLLATE "C" NOT NULL,
        pass_id text COLLATE "C",
        body text NOT NULL,
        PRIMARY KEY (integration_id, entity_type, object_id)
    );
    CREATE INDEX escrows_due ON escrows (integration_id, next_retry);
    CREATE TABLE staged_deletions (
        integration_id text COLLATE "C" NOT NULL,
        entity_type text COLLATE "C" NOT NULL,
        source_id text COLLATE "C" NOT NULL,
        target_id text NOT NULL,
        staged_at text NOT NULL,
        PRIMARY KEY (integration_id, entity_type, source_id)
    );
    CREATE TABLE definitions (
        integration_id text COLLATE "C" PRIMARY KEY,
        body text NOT NULL
    );
    """,
    # 2: the nodes sharing the database and the leases on integrations they hold.
    """
    CREATE TABLE nodes (
        node_id text COLLATE "C" PRIMARY KEY,
        started_at timestamptz NOT NULL,
        heartbeat_at timestamptz NOT NULL,
        pid integer NOT NULL,
        host text NOT NULL,
        left_at timestamptz
    );
    CREATE TABLE leases (
        integration_id text COLLATE "C" PRIMARY KEY,
        node_id text COLLATE "C",
        epoch bigint NOT NULL DEFAULT 0,
        expires_at timestamptz
    );
    CREATE INDEX leases_by_node ON leases (node_id);
    """,
    # 3: commands sent through the database to the node that holds an integration.
    """
    CREATE TABLE commands (
        id bigserial PRIMARY KEY,
        integration_id text COLLATE "C" NOT NULL,
        node_id text COLLATE "C",
        kind text NOT NULL,
        body jsonb NOT NULL,
        created_at timestamptz NOT NULL DEFAULT now(),
        taken_at timestamptz,
        done_at timestamptz,
        result jsonb
    );
    CREATE INDEX commands_waiting ON commands (integration_id) WHERE taken_at IS NULL;
    """,
    # 4: the node that ran each job (also in its body), for looking jobs up by node.
    """
    ALTER TABLE jobs ADD COLUMN node text COLLATE "C";
    """,
    # 5: the provisioning log.
    """
    CREATE TABLE changes (
        id bigserial PRIMARY KEY,
        integration_id text COLLATE "C" NOT NULL,
        job_id text COLLATE "C" NOT NULL,
        entity_type text COLLATE "C" NOT NULL,
        source_id text COLLATE "C" NOT NULL,
        target_id text COLLATE "C",
        action text COLLATE "C" NOT NULL,
        at text COLLATE "C" NOT NULL,
        body text
    );
    CREATE INDEX changes_by_time ON changes (integration_id, at);
    CREATE INDEX changes_by_source ON changes (integration_id, source_id);
    CREATE INDEX changes_by_target ON changes (integration_id, target_id);
    CREATE INDEX changes_by_job ON changes (job_id);
    """,
    # 6: a change copied from a target's outbox carries its key, kept once.
    """
    ALTER TABLE changes ADD COLUMN key text COLLATE "C";
    CREATE UNIQUE INDEX changes_by_key ON changes (key);
    """,
)

#: The first key of every advisory lock sluiced takes ("sl").
_LOCK_CLASS = 0x736C


def lock_key(purpose: str, schema: str) -> tuple[int, int]:
    """The two-integer advisory lock key for *purpose* on the tables in *schema*."""
    digest = zlib.crc32(f"{purpose}:{schema}".encode())
    return _LOCK_CLASS, digest - (1 << 32) if digest >= 1 << 31 else digest


def _version(conn: psycopg.Connection[Any], schema: str) -> int | None:
    """The newest applied version, or None if the schema has no version table."""
    exists = conn.execute(
        "SELECT 1 FROM pg_tables WHERE schemaname=%s AND tablename='schema_version'", (schema,)
    ).fetchone()
    if exists is None:
        return None
    row = conn.execute(
        sql.SQL("SELECT coalesce(max(version), 0) FROM {}.schema_version").format(
            sql.Identifier(schema)
        )
    ).fetchone()
    return int(row[0]) if row is not None else 0


def _too_new(version: int, where: str) -> StoreRefused:
    return StoreRefused(
        f"the store {where} is at schema version {version}, newer than this sluiced, which "
        f"knows versions up to {len(MIGRATIONS)}: another node with a newer sluiced upgraded "
        "it. Upgrade sluiced on this node to that release (a database is never migrated "
        "back)"
    )


def migrate(conn: psycopg.Connection[Any], schema: str, *, where: str, node_id: str) -> None:
    """Create *schema* and apply the migrations it misses, in one transaction under an
    advisory lock (see the module docstring). *where* names the store in messages.

    Raises:
        StoreRefused: the database's schema is newer than this code.
        psycopg.Error: the server failed (nothing applied).
    """
    with conn.transaction():
        conn.execute("SELECT pg_advisory_xact_lock(%s, %s)", lock_key("migrate", schema))
        conn.execute(sql.SQL("CREATE SCHEMA IF NOT EXISTS {}").format(sql.Identifier(schema)))
        conn.execute(
            sql.SQL(
                "CREATE TABLE IF NOT EXISTS {}.schema_version (version integer PRIMARY KEY,"
                " applied_at timestamptz NOT NULL DEFAULT now(), node_id text)"
            ).format(sql.Identifier(schema))
        )
        version = _version(conn, schema) or 0
        if version > len(MIGRATIONS):
            raise _too_new(version, where)
        for number, script in enumerate(MIGRATIONS[version:], start=version + 1):
            for statement in script.split(";"):
                if statement.strip():
                    conn.execute(statement)  # search_path names the schema
            conn.execute(
                sql.SQL("INSERT INTO {}.schema_version (version, node_id) VALUES (%s, %s)").format(
                    sql.Identifier(schema)
                ),
                (number, node_id),
            )


def check_version(conn: psycopg.Connection[Any], schema: str, *, where: str) -> None:
    """For a store only read: its schema is the one this sluiced reads.

    Raises:
        StoreMissing: the schema holds no store (no daemon created it yet).
        StoreRefused: it is at another version.
    """
    version = _version(conn, schema)
    if version is None:
        raise StoreMissing(f"the store {where} holds no sluiced tables yet")
    if version > len(MIGRATIONS):
        raise _too_new(version, where)
    if version < len(MIGRATIONS):
        raise StoreRefused(
            f"the store {where} is at schema version {version}, and this sluiced reads "
            f"version {len(MIGRATIONS)}; `sluiced run` upgrades it"
        )
