"""The Stash mirror's two databases, for tests that hold for both.

The fixture ``mirror_db`` (registered in ``conftest.py``) is a :class:`Backend`, once
SQLite and once PostgreSQL (a database of the test's own on the session's server; the
PostgreSQL run skips where none can be started). A test names its mirror by a folder:
the SQLite file ``mirror.sqlite3`` in it, or a PostgreSQL schema named after it, so a
test may keep several mirrors apart as it keeps folders.
"""

from __future__ import annotations

import hashlib
import sqlite3
from pathlib import Path
from typing import Any
from urllib.parse import urlsplit

import pytest

from sluiced.plugins.stash.dialect import MirrorDb, SqliteMirrorDb

try:
    from sluiced.plugins.stash.pgmirror import PostgresMirrorDb
except ImportError:  # no psycopg: the PostgreSQL runs skip
    PostgresMirrorDb = None  # type: ignore[assignment,misc]

__all__ = ["Backend", "mirror_db", "read"]


class Backend:
    """SQLite (``url`` None) or the PostgreSQL database at ``url``."""

    def __init__(self, url: str | None = None) -> None:
        self.url = url

    @property
    def postgres(self) -> bool:
        return self.url is not None

    @staticmethod
    def schema(folder: Path) -> str:
        """The PostgreSQL schema of the mirror named by *folder*."""
        return "m_" + hashlib.sha1(str(folder).encode()).hexdigest()[:16]

    def db(self, folder: Path) -> MirrorDb | Path:
        """What :class:`~sluiced.plugins.stash.mirror.Mirror` takes for the mirror of
        *folder*."""
        if self.url is None:
            return folder / "mirror.sqlite3"
        return PostgresMirrorDb(self.url, schema=self.schema(folder))

    def query(self, folder: Path, sql: str, *args: Any) -> list[tuple[Any, ...]]:
        """The rows of *sql* in the mirror of *folder*, as :func:`read`."""
        return read(self.db(folder), sql, *args)

    def target_keys(self, folder: Path) -> str:
        """The ``stash-mirror`` table's keys naming the mirror of *folder* (TOML)."""
        if self.url is None:
            return f'path = "{folder / "mirror.sqlite3"}"'
        # Connector settings hold no user-info: the user goes in the query.
        parts = urlsplit(self.url)
        user, _, host = parts.netloc.rpartition("@")
        query = "&".join(q for q in (parts.query, f"user={user}" if user else "") if q)
        dsn = f"{parts.scheme}://{host}{parts.path}?{query}"
        return f'dsn = "{dsn}"\nschema = "{self.schema(folder)}"'


def read(db: MirrorDb | Path, sql: str, *args: Any) -> list[tuple[Any, ...]]:
    """The rows of *sql* (``?`` placeholders) in the mirror *db*, read by another
    application: a connection of its own, as a user querying the mirror would."""
    if isinstance(db, SqliteMirrorDb):
        db = db.path
    if isinstance(db, Path):
        with sqlite3.connect(db) as conn:
            return conn.execute(sql, args).fetchall()
    import psycopg

    assert isinstance(db, PostgresMirrorDb)
    with psycopg.connect(db.url, autocommit=True, options=f"-c search_path={db.schema}") as pg:
        return pg.execute(sql.replace("?", "%s"), args).fetchall()


@pytest.fixture(params=["sqlite", "postgresql"])
def mirror_db(request: pytest.FixtureRequest) -> Backend:
    """The mirror's database: SQLite, then PostgreSQL."""
    if request.param == "sqlite":
        return Backend()
    return Backend(request.getfixturevalue("pg_url"))
