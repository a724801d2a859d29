"""Where the mirror's tables live: the narrow interface the mirror writes through, and
its SQLite implementation (``pgmirror.py`` has the PostgreSQL one).

The mirror's logic (``mirror.py``, ``schema.py``) is written once, in SQL both engines
read: ``?`` placeholders, ``INSERT ... ON CONFLICT``, the entity types' DDL. What
differs is here: opening the database (and the thread that owns its connection),
placeholders, replacing whole rows, the DDL's column types, the transaction that
migrates the tables, and how a table's existence is found.
"""

from __future__ import annotations

import contextlib
import sqlite3
from abc import ABC, abstractmethod
from collections.abc import Callable, Iterator, Sequence
from pathlib import Path
from typing import Any, Protocol, TypeVar

from sluiced.store.thread import ConnectionThread

__all__ = ["MirrorDb", "Owner", "SqliteMirrorDb"]

T = TypeVar("T")


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
