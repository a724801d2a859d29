"""The local mirror: a database of Stash's entities that users query (a SQLite file,
or a schema of a PostgreSQL database: ``dialect.py``, ``pgmirror.py``).

One thread owns the connection (as for the daemon's store). Every write is one
transaction that also records the sync state it reaches (``sync_state``: watermarks,
the position of a running job), so a page of rows and its checkpoint are committed
together: after a crash the mirror and its state agree, and nothing is applied twice
or lost. The rows of the provisioning log a commit makes go in the same transaction
into ``change_outbox`` (its key, its text), until the daemon's store has them. Readers query while a sync writes, and see whole pages only (SQLite's WAL
mode, PostgreSQL's snapshots).

The database is opened, and its tables created or migrated (``schema.py``), at the
first call, so that a problem with it fails a job with its message rather than the
opener.
"""

from __future__ import annotations

from collections.abc import Callable, Iterable, Mapping, Sequence
from pathlib import Path
from typing import Any

from .dialect import MirrorDb, Owner, SqliteMirrorDb
from .entities import EntityType
from .schema import upgrade

__all__ = ["Mirror"]


class Mirror:
    """The mirror in *db*: a :class:`MirrorDb`, or the path of a SQLite file."""

    def __init__(self, db: MirrorDb | Path | str, entity_types: Sequence[EntityType]) -> None:
        self.db = db if isinstance(db, MirrorDb) else SqliteMirrorDb(db)
        #: The SQLite file (None: the mirror is in PostgreSQL).
        self.path = self.db.path if isinstance(self.db, SqliteMirrorDb) else None
        self.entity_types = {e.name: e for e in entity_types}
        #: Entity types whose tables the opening migrated (read whole at the next sync).
        self.migrated: list[str] = []
        self._thread: Owner | None = None

    @property
    def where(self) -> str:
        """The mirror as messages name it."""
        return self.db.where

    @property
    def _db(self) -> Owner:
        if self._thread is None:

            def setup(conn: Any) -> None:
                self.migrated = upgrade(self.db, conn, list(self.entity_types.values()))

            self._thread = self.db.open(setup)
        return self._thread

    async def aclose(self) -> None:
        if self._thread is not None:
            self._thread.close()

    async def _write(self, fn: Any) -> Any:
        return await self._db.write(fn)

    def _save_state(self, conn: Any, state: Mapping[str, str | None]) -> None:
        for key, value in state.items():
            if value is None:
                self.db.execute(conn, "DELETE FROM sync_state WHERE key=?", (key,))
            else:
                self.db.execute(
                    conn,
                    "INSERT INTO sync_state (key, value) VALUES (?, ?) ON CONFLICT(key) DO UPDATE SET"
                    " value=excluded.value, updated_at=excluded.updated_at",
                    (key, value),
                )

    def _clear_own_rows(self, conn: Any, entity: EntityType, ids: list[tuple[int]]) -> None:
        owner = f"{entity.name}_id"
        for table, column, parent, parent_column in entity.grandchildren:
            self.db.executemany(
                conn,
                f"DELETE FROM {table} WHERE {column} IN (SELECT {parent_column} FROM {parent}"
                f" WHERE {owner}=?)",
                ids,
            )
        for child in entity.children:
            self.db.executemany(conn, f"DELETE FROM {child} WHERE {owner}=?", ids)
        for table, column in entity.inverse:
            self.db.executemany(conn, f"DELETE FROM {table} WHERE {column}=?", ids)

    def _rows_writer(
        self, entity: EntityType, records: Iterable[Mapping[str, Any]]
    ) -> Callable[[Any], int]:
        """What writes *records*' rows (replacing their own rows): one bulk write per
        table for them all, in the order a record lists its tables (its own row first)."""
        tables: dict[str, list[tuple[Any, ...]]] = {}
        ids: list[tuple[int]] = []
        for record in records:
            row = entity.rows(record)
            ids.append((row[entity.table][0][0],))
            for table, values in row.items():
                tables.setdefault(table, []).extend(values)

        def write(conn: Any) -> int:
            self._clear_own_rows(conn, entity, ids)
            for table, values in tables.items():
                self.db.replace(conn, table, values)
            return len(ids)

        return write

    def _delete_rows(self, conn: Any, entity: EntityType, ids: Iterable[int]) -> int:
        """Delete entities and every link to them (Stash's cascade); returns how many
        rows of the entity's table went."""
        keys = [(int(i),) for i in ids]
        # Rows that belong to a referencing row (a marker's tags) go with it.
        owned = {
            parent: (table, column, parent_column)
            for e in self.entity_types.values()
            for table, column, parent, parent_column in e.grandchildren
        }
        self._clear_own_rows(conn, entity, keys)
        for table, column, action in entity.references:
            if action == "null":
                self.db.executemany(
                    conn, f"UPDATE {table} SET {column}=NULL WHERE {column}=?", keys
                )
                continue
            if table in owned:
                sub, sub_column, parent_column = owned[table]
                self.db.executemany(
                    conn,
                    f"DELETE FROM {sub} WHERE {sub_column} IN (SELECT {parent_column}"
                    f" FROM {table} WHERE {column}=?)",
                    keys,
                )
            self.db.executemany(conn, f"DELETE FROM {table} WHERE {column}=?", keys)
        return self.db.executemany(conn, f"DELETE FROM {entity.table} WHERE id=?", keys)

    async def commit(
        self,
        entity_name: str | None,
        records: Iterable[Mapping[str, Any]] = (),
        deleted: Iterable[int] = (),
        state: Mapping[str, str | None] | None = None,
        *,
        outbox: Mapping[str, str] | None = None,
        logged: Sequence[str] = (),
    ) -> tuple[int, int]:
        """In one transaction: replace the rows of *records* (and their links, files,
        markers, ...), delete the entities *deleted* with every link to them, save
        *state*, add the rows *outbox* (text by key) to the outbox and remove those of
        the keys *logged*. Idempotent. Returns (records written, entities deleted)."""
        entity = self.entity_types[entity_name] if entity_name is not None else None
        write = self._rows_writer(entity, records) if entity is not None else None
        keys = [int(i) for i in deleted]
        added = list((outbox or {}).items())
        removed_keys = [(k,) for k in logged]

        def transaction(conn: Any) -> tuple[int, int]:
            written = write(conn) if write is not None else 0
            removed = self._delete_rows(conn, entity, keys) if entity and keys else 0
            if removed_keys:
                self.db.executemany(conn, "DELETE FROM change_outbox WHERE key=?", removed_keys)
            if added:
                self.db.replace(conn, "change_outbox", added)
            self._save_state(conn, state or {})
            return written, removed

        written, removed = await self._write(transaction)
        return int(written), int(removed)

    async def apply(
        self,
        entity_name: str,
        records: Iterable[Mapping[str, Any]],
        state: Mapping[str, str | None] | None = None,
    ) -> int:
        """Replace the rows of *records* (and their links, files, markers, ...) and save
        *state*, in one transaction. Idempotent. Returns the number of records."""
        return (await self.commit(entity_name, records, (), state))[0]

    async def delete(
        self, entity_name: str, ids: Iterable[int], state: Mapping[str, str | None] | None = None
    ) -> int:
        """Delete entities and every link to them (Stash's cascade), and save *state*.
        Returns how many rows of the entity's table went."""
        return (await self.commit(entity_name, (), ids, state))[1]

    async def save_state(self, state: Mapping[str, str | None]) -> None:
        await self._write(lambda conn: self._save_state(conn, state))

    async def outbox(self, limit: int) -> dict[str, str]:
        """Up to *limit* rows of the outbox, text by key, the smallest keys first."""
        sql = "SELECT key, body FROM change_outbox ORDER BY key LIMIT ?"
        return dict(await self._rows(sql, limit))

    async def forget_outbox(self, keys: Sequence[str]) -> None:
        """Remove the outbox's rows of *keys*, in one transaction."""
        rows = [(k,) for k in keys]
        if rows:
            await self._write(
                lambda conn: self.db.executemany(
                    conn, "DELETE FROM change_outbox WHERE key=?", rows
                )
            )

    async def _rows(self, sql: str, *params: Any) -> list[tuple[Any, ...]]:
        """The rows of one query."""
        return list(await self._db.call(lambda c: self.db.execute(c, sql, params)))

    async def _in(self, sql: str, keys: Sequence[int]) -> list[tuple[Any, ...]]:
        """The rows of *sql* (its ``{}`` the placeholders of an ``IN`` list) for *keys*,
        500 keys a query."""

        def query(c: Any) -> list[tuple[Any, ...]]:
            rows: list[tuple[Any, ...]] = []
            for n in range(0, len(keys), 500):
                chunk = keys[n : n + 500]
                rows += self.db.execute(c, sql.format(",".join("?" * len(chunk))), chunk)
            return rows

        return list(await self._db.call(query))

    async def state(self, prefix: str = "") -> dict[str, str]:
        sql = "SELECT key, value FROM sync_state WHERE key >= ? AND key < ?"
        return dict(await self._rows(sql, prefix, prefix + "\uffff"))

    async def ids(
        self, entity_name: str, *, after: int = 0, limit: int = 10_000, until: int | None = None
    ) -> list[int]:
        """The entity's ids in the mirror, in order, a chunk at a time (flat memory):
        at most *limit* of them greater than *after* (and not greater than *until*)."""
        return await self._table_ids(self.entity_types[entity_name].table, after, limit, until)

    async def marker_ids(
        self, *, after: int = 0, limit: int = 10_000, until: int | None = None
    ) -> list[int]:
        """The markers' ids in the mirror, as :meth:`ids`."""
        return await self._table_ids("markers", after, limit, until)

    async def _table_ids(self, table: str, after: int, limit: int, until: int | None) -> list[int]:
        top = until if until is not None else 2**63 - 1
        sql = f"SELECT id FROM {table} WHERE id > ? AND id <= ? ORDER BY id LIMIT ?"
        return [r[0] for r in await self._rows(sql, after, top, limit)]

    async def marker_scenes(self, marker_ids: Iterable[int]) -> list[int]:
        """The scenes holding these markers in the mirror."""
        keys = sorted({int(i) for i in marker_ids})
        rows = await self._in("SELECT scene_id FROM markers WHERE id IN ({})", keys)
        return sorted({r[0] for r in rows})

    async def missing(self, entity_name: str, ids: Iterable[int]) -> list[int]:
        """Which of *ids* the mirror does not hold (links to fetch by id)."""
        table = self.entity_types[entity_name].table
        wanted = sorted(set(ids))
        present = {
            r[0] for r in await self._in(f"SELECT id FROM {table} WHERE id IN ({{}})", wanted)
        }
        return [i for i in wanted if i not in present]

    async def linking(self, entity_name: str, ids: Iterable[int]) -> dict[str, list[int]]:
        """The records whose links point at these entities, by entity type: what a merge
        in Stash re-points without bumping them (re-read them when the entities go)."""
        queries = {
            "tag": (
                ("scene", "SELECT scene_id FROM scene_tags WHERE tag_id=?"),
                ("scene", "SELECT scene_id FROM markers WHERE primary_tag_id=?"),
                (
                    "scene",
                    "SELECT m.scene_id FROM marker_tags t JOIN markers m ON m.id = t.marker_id"
                    " WHERE t.tag_id=?",
                ),
                ("performer", "SELECT performer_id FROM performer_tags WHERE tag_id=?"),
                ("studio", "SELECT studio_id FROM studio_tags WHERE tag_id=?"),
            ),
            "performer": (("scene", "SELECT scene_id FROM scene_performers WHERE performer_id=?"),),
            "studio": (("scene", "SELECT id FROM scenes WHERE studio_id=?"),),
        }.get(entity_name, ())
        keys = [int(i) for i in ids]

        def query(c: Any) -> dict[str, list[int]]:
            found: dict[str, set[int]] = {}
            for kind, sql in queries:
                if kind not in self.entity_types:
                    continue
                for key in keys:
                    rows = self.db.execute(c, sql, (key,))
                    found.setdefault(kind, set()).update(r[0] for r in rows)
            return {k: sorted(v) for k, v in found.items() if v}

        return dict(await self._db.call(query))

    async def scene_range_counts(
        self, ranges: Sequence[tuple[int, int]], *, markers: bool
    ) -> list[int]:
        """For each range ``(lo, hi)`` of scene ids (inclusive), how many scenes the
        mirror holds in it, or how many markers of those scenes."""
        sql = (
            "SELECT count(*) FROM markers WHERE scene_id BETWEEN ? AND ?"
            if markers
            else "SELECT count(*) FROM scenes WHERE id BETWEEN ? AND ?"
        )

        def query(c: Any) -> list[int]:
            return [int(self.db.execute(c, sql, (lo, hi))[0][0]) for lo, hi in ranges]

        return list(await self._db.call(query))

    async def markers_between(self, lo: int, hi: int) -> dict[int, int]:
        """The markers of the scenes with ids from *lo* to *hi*: marker id -> scene id."""
        sql = "SELECT id, scene_id FROM markers WHERE scene_id BETWEEN ? AND ?"
        return dict(await self._rows(sql, lo, hi))

    async def names(self, entity_name: str, ids: Iterable[int]) -> list[str]:
        """The ``name`` column of these entities (tags, performers, studios)."""
        table = self.entity_types[entity_name].table
        keys = sorted({int(i) for i in ids})
        return [r[0] for r in await self._in(f"SELECT name FROM {table} WHERE id IN ({{}})", keys)]

    async def last_id(self, entity_name: str) -> int:
        """The entity's greatest id in the mirror (0: none)."""
        table = self.entity_types[entity_name].table
        return int((await self._rows(f"SELECT max(id) FROM {table}"))[0][0] or 0)

    async def marker_count(self) -> int:
        """How many markers the mirror holds."""
        return int((await self._rows("SELECT count(*) FROM markers"))[0][0])

    async def count(self, entity_name: str) -> int:
        table = self.entity_types[entity_name].table
        return int((await self._rows(f"SELECT count(*) FROM {table}"))[0][0])
