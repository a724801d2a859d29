"""Versions of the mirror's tables, and the migration of an existing mirror.

Each entity type declares the version of its tables (``EntityType.version``) and, for
each version after the first, the statements that bring the one before to it
(``EntityType.migrations``). Columns are added with ``ALTER TABLE ... ADD COLUMN``,
which puts them last: that is why ``rows()`` lists later columns last. A step is a DDL
statement or a change of rows (:class:`~.dialect.RowChange`), written once for both
databases: flags are bound as parameters, never written as ``1`` or ``0``.

The mirror records each entity type's version in ``mirror_schema``. A mirror written
before versions were recorded holds version 1 of every table it has. Opening a mirror
migrates what is older, in one transaction with the record of the new versions, and
drops the migrated types' watermarks: the next ``sync`` reads them whole, filling what
the new columns hold (until then they hold what could be derived, or nulls). Each
migrated type is noted in ``sync_state`` under ``migrated:<type>`` (its new version),
until the first pass that syncs it says so in its job's log (see ``reconcile.py``). A mirror
written by a newer sluiced is refused, naming the mirror and the versions. The same
statements run on SQLite and PostgreSQL, each database translating the DDL
(``dialect.py``).
"""

from __future__ import annotations

from collections.abc import Sequence
from typing import TYPE_CHECKING, Any

from sluiced.errors import SyncError

if TYPE_CHECKING:
    from .dialect import MirrorDb
    from .entities import EntityType

__all__ = ["MIGRATED", "MirrorTooNew", "upgrade"]

#: The ``sync_state`` prefix of the types migrated and not synced since.
MIGRATED = "migrated:"

VERSIONS = (
    "CREATE TABLE IF NOT EXISTS mirror_schema (entity TEXT PRIMARY KEY, version INTEGER NOT NULL)"
)

#: The mirror's own tables, versioned in ``mirror_schema`` as the entity types' are:
#: for each, the statements that bring each version to the next (the first creates
#: it). ``change_outbox``: the rows of the provisioning log a commit made, until the
#: daemon's store has them (``target.py``).
OWN_TABLES: tuple[tuple[str, tuple[tuple[str, ...], ...]], ...] = (
    (
        "change_outbox",
        (("CREATE TABLE IF NOT EXISTS change_outbox (key TEXT PRIMARY KEY, body TEXT NOT NULL)",),),
    ),
)


class MirrorTooNew(SyncError):
    code = "MirrorTooNew"


def upgrade(db: MirrorDb, conn: Any, entity_types: Sequence[EntityType]) -> list[str]:
    """Create or migrate ``sync_state`` and the tables of *entity_types* in *conn* (no
    transaction open: this runs one, ``db.migrating``). Returns the names of the entity
    types that were migrated.

    Raises:
        MirrorTooNew: the mirror holds a version of some tables newer than their type's.
    """
    migrated: list[str] = []
    with db.migrating(conn):
        db.execute(conn, db.sync_state)
        db.execute(conn, db.ddl(VERSIONS))
        recorded = dict(db.execute(conn, "SELECT entity, version FROM mirror_schema"))
        for name, versions in OWN_TABLES:
            _own_table(db, conn, name, versions, recorded.get(name, 0))
        for entity in entity_types:
            if len(entity.migrations) != entity.version - 1:
                raise ValueError(f"entity type {entity.name}: version without its migrations")
            have = recorded.get(entity.name)
            if have is None:  # new here, or from before versions were recorded
                have = 1 if db.table_exists(conn, entity.table) else entity.version
            if have > entity.version:
                raise MirrorTooNew(
                    f"{db.where}: the mirror's {entity.name} tables are version {have}, newer"
                    f" than this sluiced's ({entity.version}); upgrade sluiced or point the"
                    " target at a new mirror"
                )
            for steps in entity.migrations[have - 1 :]:
                for step in steps:
                    db.migrate_step(conn, step, entity.booleans)
            for statement in entity.ddl:
                db.execute(conn, db.ddl(statement, entity.booleans))
            if have < entity.version:
                migrated.append(entity.name)
                db.execute(
                    conn, "DELETE FROM sync_state WHERE key=?", (f"watermark:{entity.name}",)
                )
                db.execute(
                    conn,
                    "INSERT INTO sync_state (key, value) VALUES (?, ?) ON CONFLICT(key)"
                    " DO UPDATE SET value=excluded.value",
                    (MIGRATED + entity.name, str(entity.version)),
                )
            db.execute(
                conn,
                "INSERT INTO mirror_schema VALUES (?, ?) ON CONFLICT(entity) DO UPDATE"
                " SET version=excluded.version",
                (entity.name, entity.version),
            )
    return migrated


def _own_table(
    db: MirrorDb, conn: Any, name: str, versions: Sequence[Sequence[str]], have: int
) -> None:
    """Bring the mirror's own table *name* from version *have* (0: none) to the last of
    *versions*, recording it.

    Raises:
        MirrorTooNew: the mirror holds a newer version of it.
    """
    if have > len(versions):
        raise MirrorTooNew(
            f"{db.where}: the mirror's {name} table is version {have}, newer than this"
            f" sluiced's ({len(versions)}); upgrade sluiced or point the target at a new mirror"
        )
    if have == len(versions):
        return
    for steps in versions[have:]:
        for step in steps:
            db.execute(conn, db.ddl(step))
    db.execute(
        conn,
        "INSERT INTO mirror_schema VALUES (?, ?) ON CONFLICT(entity) DO UPDATE"
        " SET version=excluded.version",
        (name, len(versions)),
    )
