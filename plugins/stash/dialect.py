"""Where the mirror's tables live: the narrow interface the mirror writes through, and
its SQLite implementation (``pgmirror.py`` has the PostgreSQL one).

The mirror's logic (``mirror.py``, ``schema.py``) is written once, in SQL both engines
read: ``?`` placeholders, ``INSERT ... ON CONFLICT``, the entity types' DDL. What
differs is here: opening the database (and the thread that owns its connection),
placeholders, replacing whole rows, the DDL's column types, how a flag is stored (SQLite
1 or 0, PostgreSQL a boolean), the steps and the transaction that migrate the tables,
and how a table's existence is found.

A migration step is a DDL statement (translated by :meth:`MirrorDb.ddl`) or a
:class:`RowChange`, whose flags are given as Python booleans and bound as the database
stores them (:meth:`MirrorDb.flag`): so ``SET is_primary = ?`` with ``True`` reads alike
in both, where ``SET is_primary = 1`` is an error in PostgreSQL.
"""

from __future__ import annotations

import contextlib
import sqlite3
from abc import ABC, abstractmethod
from collections.abc import Callable, Iterator, Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any, Protocol, TypeVar

from sluiced.store.thread import ConnectionThread

__all__ = ["MirrorDb", "Owner", "RowChange", "SqliteMirrorDb", "Step"]

T = TypeVar("T")


@dataclass(frozen=True)
class RowChange:
    """A migration step that changes rows, not tables: *sql* (``?`` placeholders) with
    *params*, where a flag is a Python ``bool``."""

    sql: str
    params: tuple[Any, ...] = ()


#: One step of a migration: a DDL statement (SQLite's, as the entity types write theirs)
#: or a change of rows.
Step = str | RowChange


class Owner(Protocol):
    """The thread owning a connection (:class:`~sluiced.store.thread.ConnectionThread`
    or its PostgreSQL counterpart)."""

    async def call(self, fn: Callable[[Any], T], *, shield: bool = False) -> T: ...

    async def write(self, fn: Callable[[Any], T]) -> T: ...

    def close(self) -> None: ...


class MirrorDb(ABC):
    """A database holding a mirror. ``conn`` is the connection the owning thread hands
    the functions it runs."""

    #: The database as messages name it (a file, or a URL without its password).
    where: str
    #: ``sync_state``'s DDL: key, value, and when it was last written (UTC, as text).
    sync_state: str

    @abstractmethod
    def open(self, setup: Callable[[Any], None]) -> Owner:
        """The thread owning a new connection, *setup* run on it first (its error is
        raised here)."""

    @abstractmethod
    def execute(self, conn: Any, sql: str, params: Sequence[Any] = ()) -> list[tuple[Any, ...]]:
        """Run *sql* (``?`` placeholders); returns its rows (none for a write)."""

    @abstractmethod
    def executemany(self, conn: Any, sql: str, rows: Sequence[Sequence[Any]]) -> int:
        """Run *sql* once per row of *rows*; returns how many rows it changed in all."""

    @abstractmethod
    def replace(self, conn: Any, table: str, rows: Sequence[tuple[Any, ...]]) -> None:
        """Insert *rows* (every column, in the table's order), each replacing the row of
        its primary key; of rows with one key, the last wins."""

    @abstractmethod
    def ddl(self, statement: str, booleans: Sequence[str] = ()) -> str:
        """*statement* (an entity type's SQLite DDL) as this database reads it;
        *booleans* are the columns holding flags (0 or 1)."""

    @abstractmethod
    def flag(self, value: bool) -> Any:
        """*value* as this database stores a flag, to be bound as a parameter."""

    def migrate_step(self, conn: Any, step: Step, booleans: Sequence[str] = ()) -> None:
        """Run one migration *step* (in :meth:`migrating`'s transaction): a DDL statement
        as this database reads it (*booleans*: see :meth:`ddl`), or a change of rows with
        its flags bound as this database stores them."""
        if isinstance(step, str):
            self.execute(conn, self.ddl(step, booleans))
        else:
            params = [self.flag(v) if isinstance(v, bool) else v for v in step.params]
            self.execute(conn, step.sql, params)

    @abstractmethod
    def migrating(self, conn: Any) -> contextlib.AbstractContextManager[None]:
        """The one transaction that creates or migrates the tables, exclusive of any
        other opener's: committed when the block ends, rolled back if it raises."""

    @abstractmethod
    def table_exists(self, conn: Any, table: str) -> bool:
        """Whether *table* exists in the mirror's database."""


class SqliteMirrorDb(MirrorDb):
    """A SQLite file (WAL mode: readers query while a sync writes)."""

    sync_state = (
        "CREATE TABLE IF NOT EXISTS sync_state (key TEXT PRIMARY KEY, value TEXT NOT NULL,"
        " updated_at TEXT NOT NULL DEFAULT (strftime('%Y-%m-%dT%H:%M:%SZ', 'now')))"
    )

    def __init__(self, path: Path | str) -> None:
        self.path = Path(path)
        self.where = str(self.path)

    def open(self, setup: Callable[[Any], None]) -> Owner:
        def prepare(conn: sqlite3.Connection) -> None:
            conn.execute("PRAGMA journal_mode=WAL")
            conn.execute("PRAGMA synchronous=NORMAL")
            conn.execute("PRAGMA busy_timeout=5000")
            setup(conn)

        self.path.parent.mkdir(parents=True, exist_ok=True)
        return ConnectionThread(self.path, prepare)

    def execute(
        self, conn: sqlite3.Connection, sql: str, params: Sequence[Any] = ()
    ) -> list[tuple[Any, ...]]:
        return conn.execute(sql, params).fetchall()

    def executemany(self, conn: sqlite3.Connection, sql: str, rows: Sequence[Sequence[Any]]) -> int:
        before = conn.total_changes
        conn.executemany(sql, rows)
        return conn.total_changes - before

    def replace(
        self, conn: sqlite3.Connection, table: str, rows: Sequence[tuple[Any, ...]]
    ) -> None:
        if rows:
            marks = ",".join("?" * len(rows[0]))
            conn.executemany(f"INSERT OR REPLACE INTO {table} VALUES ({marks})", rows)

    def ddl(self, statement: str, booleans: Sequence[str] = ()) -> str:
        return statement

    def flag(self, value: bool) -> int:
        return int(value)

    @contextlib.contextmanager
    def migrating(self, conn: sqlite3.Connection) -> Iterator[None]:
        conn.execute("BEGIN IMMEDIATE")
        try:
            yield
        except BaseException:
            conn.execute("ROLLBACK")
            raise
        conn.execute("COMMIT")

    def table_exists(self, conn: sqlite3.Connection, table: str) -> bool:
        found = conn.execute(
            "SELECT 1 FROM sqlite_master WHERE type='table' AND name=?", (table,)
        ).fetchone()
        return found is not None
