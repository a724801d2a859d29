"""The store's SQLite schema: forward migrations numbered by ``PRAGMA user_version``,
run when a store is opened (one transaction each), and the checks of a file before use.

A database newer than this code is refused rather than misread; a read-only store must
be at exactly this code's version.
"""

from __future__ import annotations

import sqlite3

from .errors import StoreRefused

__all__ = ["MIGRATIONS", "check_version", "damaged", "migrate", "quick_check"]

MIGRATIONS: tuple[str, ...] = (
    # 1: the first schema.
    """
    CREATE TABLE jobs (
        id TEXT PRIMARY KEY,
        integration_id TEXT NOT NULL,
        status TEXT NOT NULL,
        created_at TEXT NOT NULL,
        duration_ms INTEGER,
        body TEXT NOT NULL
    );
    CREATE INDEX jobs_by_integration ON jobs (integration_id, created_at);
    CREATE INDEX jobs_by_status ON jobs (status);
    CREATE TABLE job_logs (
        job_id TEXT NOT NULL,
        seq INTEGER NOT NULL,
        ts TEXT NOT NULL,
        level TEXT NOT NULL,
        message TEXT NOT NULL,
        PRIMARY KEY (job_id, seq)
    ) WITHOUT ROWID;
    CREATE TABLE integration_state (integration_id TEXT PRIMARY KEY, body TEXT NOT NULL);
    CREATE TABLE watermarks (
        integration_id TEXT NOT NULL,
        entity_type TEXT NOT NULL,
        value TEXT NOT NULL,
        PRIMARY KEY (integration_id, entity_type)
    ) WITHOUT ROWID;
    CREATE TABLE links (
        integration_id TEXT NOT NULL,
        entity_type TEXT NOT NULL,
        source_id TEXT NOT NULL,
        target_id TEXT NOT NULL,
        hash TEXT NOT NULL,
        seen_pass TEXT,
        PRIMARY KEY (integration_id, entity_type, source_id)
    ) WITHOUT ROWID;
    CREATE TABLE escrows (
        integration_id TEXT NOT NULL,
        entity_type TEXT NOT NULL,
        object_id TEXT NOT NULL,
        kind TEXT NOT NULL,
        next_retry TEXT NOT NULL,
        pass_id TEXT,
        body TEXT NOT NULL,
        PRIMARY KEY (integration_id, entity_type, object_id)
    );
    CREATE INDEX escrows_due ON escrows (integration_id, next_retry);
    CREATE TABLE staged_deletions (
        integration_id TEXT NOT NULL,
        entity_type TEXT NOT NULL,
        source_id TEXT NOT NULL,
        target_id TEXT NOT NULL,
        staged_at TEXT NOT NULL,
        PRIMARY KEY (integration_id, entity_type, source_id)
    );
    """,
    # 2: integrations created through the control API.
    """
    CREATE TABLE definitions (integration_id TEXT PRIMARY KEY, body TEXT NOT NULL);
    """,
    # 3: links remember the exported object and when it was disabled.
    """
    ALTER TABLE links ADD COLUMN data TEXT;
    ALTER TABLE links ADD COLUMN disabled_at TEXT;
    """,
    # 4: the node that ran each job (also in its body), for looking jobs up by node.
    """
    ALTER TABLE jobs ADD COLUMN node TEXT;
    """,
    # 5: the provisioning log.
    """
    CREATE TABLE changes (
        id INTEGER PRIMARY KEY,
        integration_id TEXT NOT NULL,
        job_id TEXT NOT NULL,
        entity_type TEXT NOT NULL,
        source_id TEXT NOT NULL,
        target_id TEXT,
        action TEXT NOT NULL,
        at TEXT NOT NULL,
        body TEXT
    );
    CREATE INDEX changes_by_time ON changes (integration_id, at);
    CREATE INDEX changes_by_source ON changes (integration_id, source_id);
    CREATE INDEX changes_by_target ON changes (integration_id, target_id);
    CREATE INDEX changes_by_job ON changes (job_id);
    """,
    # 6: a change copied from a target's outbox carries its key, kept once.
    """
    ALTER TABLE changes ADD COLUMN key TEXT;
    CREATE UNIQUE INDEX changes_by_key ON changes (key);
    """,
)


def migrate(conn: sqlite3.Connection) -> None:
    """Set the connection up (WAL) and run the migrations it misses.

    Raises:
        StoreRefused: the file's schema is newer than this code.
    """
    conn.execute("PRAGMA journal_mode=WAL")
    conn.execute("PRAGMA synchronous=NORMAL")
    conn.execute("PRAGMA busy_timeout=5000")
    conn.execute("PRAGMA foreign_keys=ON")
    version = conn.execute("PRAGMA user_version").fetchone()[0]
    if version > len(MIGRATIONS):
        raise StoreRefused(
            f"the store is at schema version {version}, newer than this sluiced "
            f"(which knows up to {len(MIGRATIONS)}); upgrade sluiced"
        )
    for number, script in enumerate(MIGRATIONS[version:], start=version + 1):
        conn.execute("BEGIN IMMEDIATE")
        try:
            for statement in script.split(";"):
                if statement.strip():
                    conn.execute(statement)
            conn.execute(f"PRAGMA user_version={number}")
            conn.execute("COMMIT")
        except BaseException:
            conn.execute("ROLLBACK")
            raise


def check_version(conn: sqlite3.Connection) -> None:
    """For a read-only store: its schema is the one this sluiced reads."""
    conn.execute("PRAGMA busy_timeout=5000")
    version = conn.execute("PRAGMA user_version").fetchone()[0]
    if version != len(MIGRATIONS):
        raise StoreRefused(
            f"the store is at schema version {version}, and this sluiced reads version "
            f"{len(MIGRATIONS)}; "
            + ("upgrade sluiced" if version > len(MIGRATIONS) else "`sluiced run` upgrades it")
        )


def quick_check(conn: sqlite3.Connection) -> None:
    """Raise ``sqlite3.DatabaseError`` unless ``PRAGMA quick_check`` finds the file sound."""
    problems = [r[0] for r in conn.execute("PRAGMA quick_check(5)").fetchall()]
    if problems != ["ok"]:
        raise sqlite3.DatabaseError("; ".join(problems))


#: SQLite's primary result codes that mean the file itself is bad, not the disk.
_DAMAGED_CODES = frozenset({11, 26})  # SQLITE_CORRUPT, SQLITE_NOTADB


def damaged(exc: sqlite3.DatabaseError) -> bool:
    code = getattr(exc, "sqlite_errorcode", None)
    if code is None:  # raised by quick_check
        return type(exc) is sqlite3.DatabaseError
    return (code & 0xFF) in _DAMAGED_CODES
