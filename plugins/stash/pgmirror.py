"""The mirror in a PostgreSQL database: the same tables as the SQLite mirror, in a
schema of their own (``stash`` unless the config names another), so that any node can
run a Stash integration and other applications query the mirror with plain SQL.

Types: SQLite's ``INTEGER`` is ``bigint``, ``REAL`` ``double precision``, ``TEXT``
``text COLLATE "C"`` (byte order, as SQLite compares), an entity type's flags
(``EntityType.booleans``) ``boolean``. Times stay Stash's strings, and
``sync_state.updated_at`` is UTC text as the SQLite mirror writes it.

psycopg's synchronous API runs on a thread that owns the connection
(:class:`~sluiced.store.pgthread.PgConnectionThread`), opened again after it was lost.
Every transaction is bounded (``lock_timeout``, ``statement_timeout``,
``idle_in_transaction_session_timeout``): a frozen node cannot hold the tables. The
tables are created or migrated in one transaction under an advisory lock of the
schema, so nodes opening the mirror at once migrate it once. A failure of the server,
or of the way to it, raises :class:`~sluiced.errors.TransientError` naming the server
(never a password): the job fails with nothing half-written, and is run again.
"""

from __future__ import annotations

import contextlib
import re
from collections.abc import Callable, Iterator, Sequence
from typing import Any, TypeVar

import psycopg

from sluiced.errors import TransientError
from sluiced.store.pgthread import Connection, PgConnectionThread
from sluiced.store.postgres_base import COPY_FROM, Timeouts, shown_url
from sluiced.store.postgres_schema import lock_key
from sluiced.tables import Secret

from .dialect import MirrorDb, Owner

__all__ = ["PostgresMirrorDb"]

T = TypeVar("T")

#: psycopg's errors that are a bug or bad data, not a problem of the server.
_NOT_TRANSIENT = (psycopg.IntegrityError, psycopg.ProgrammingError, psycopg.DataError)
_TYPES = (
    (re.compile(r"\bINTEGER\b"), "BIGINT"),
    (re.compile(r"\bREAL\b"), "DOUBLE PRECISION"),
    (re.compile(r"\bTEXT\b"), 'TEXT COLLATE "C"'),
)


def _message(exc: BaseException) -> str:
    return " ".join(str(exc).split()) or type(exc).__name__


class _Owner:
    """A :class:`PgConnectionThread` whose server failures raise TransientError."""

    def __init__(self, thread: PgConnectionThread, where: str) -> None:
        self._thread = thread
        self._where = where

    def _error(self, exc: psycopg.Error, doing: str) -> Exception:
        if isinstance(exc, _NOT_TRANSIENT):
            return exc
        return TransientError(f"cannot {doing} the mirror {self._where}: {_message(exc)}")

    async def call(self, fn: Callable[[Any], T], *, shield: bool = False) -> T:
        try:
            return await self._thread.call(fn, shield=shield)
        except psycopg.Error as exc:
            raise self._error(exc, "read") from None

    async def write(self, fn: Callable[[Any], T]) -> T:
        try:
            return await self._thread.write(fn)
        except psycopg.Error as exc:
            raise self._error(exc, "write") from None

    def close(self) -> None:
        self._thread.close()


class PostgresMirrorDb(MirrorDb):
    """The mirror in *schema* of the database at *url* (no password in it: *password*).

    *timeouts* bound every lock wait, statement and idle transaction.
    """

    sync_state = (
        'CREATE TABLE IF NOT EXISTS sync_state (key TEXT COLLATE "C" PRIMARY KEY,'
        " value TEXT NOT NULL, updated_at TEXT NOT NULL"
        " DEFAULT to_char(now() AT TIME ZONE 'UTC', 'YYYY-MM-DD\"T\"HH24:MI:SS\"Z\"'))"
    )

    def __init__(
        self,
        url: str,
        *,
        password: Secret | str | None = None,
        schema: str = "stash",
        timeouts: Timeouts | None = None,
    ) -> None:
        self.url = url
        self.schema = schema
        self.where = f"{shown_url(url)} (schema {schema})"
        self._password = password
        self._timeouts = timeouts or Timeouts()
        #: table -> (its columns in order, the positions of its primary key's).
        self._shapes: dict[str, tuple[list[str], list[int]]] = {}

    def _connect(self) -> Connection:
        kwargs = self._timeouts.connect_kwargs("sluiced stash-mirror", self.schema)
        if self._password is not None:
            password = self._password
            kwargs["password"] = password.reveal() if isinstance(password, Secret) else password
        return psycopg.connect(self.url, **kwargs)

    def open(self, setup: Callable[[Any], None]) -> Owner:
        """Connect (and run *setup*, the tables' migration) at once; a connection lost
        later is made again when the next function runs.

        Raises:
            TransientError: the server cannot be reached or failed.
        """

        def connect(first: bool) -> Connection:
            conn = self._connect()
            if first:
                try:
                    setup(conn)
                except BaseException:
                    conn.close()
                    raise
            return conn

        try:
            thread = PgConnectionThread(connect, name=self.where)
        except psycopg.Error as exc:
            if isinstance(exc, _NOT_TRANSIENT):
                raise
            raise TransientError(f"cannot open the mirror {self.where}: {_message(exc)}") from None
        return _Owner(thread, self.where)

    def execute(
        self, conn: Connection, sql: str, params: Sequence[Any] = ()
    ) -> list[tuple[Any, ...]]:
        cur = conn.execute(sql.replace("?", "%s"), params)
        return cur.fetchall() if cur.description is not None else []

    def executemany(self, conn: Connection, sql: str, rows: Sequence[Sequence[Any]]) -> int:
        if not rows:
            return 0
        with conn.cursor() as cur:
            cur.executemany(sql.replace("?", "%s"), rows)
            return max(cur.rowcount, 0)

    def _shape(self, conn: Connection, table: str) -> tuple[list[str], list[int]]:
        if table not in self._shapes:
            rows = conn.execute(
                "SELECT a.attname, coalesce(a.attnum = ANY(i.indkey), false) FROM pg_attribute a"
                " LEFT JOIN pg_index i ON i.indrelid = a.attrelid AND i.indisprimary"
                " WHERE a.attrelid = %s::regclass AND a.attnum > 0 AND NOT a.attisdropped"
                " ORDER BY a.attnum",
                (f'"{self.schema}"."{table}"',),
            ).fetchall()
            self._shapes[table] = ([r[0] for r in rows], [n for n, r in enumerate(rows) if r[1]])
        return self._shapes[table]

    def replace(self, conn: Connection, table: str, rows: Sequence[tuple[Any, ...]]) -> None:
        """Upsert *rows*: a few in one ``INSERT ... VALUES`` (each value sent as text,
        read as its column's type), many copied into a temporary table of the
        transaction first, then upserted from it in one statement."""
        if not rows:
            return
        columns, key = self._shape(conn, table)
        if key:
            rows = list({tuple(r[k] for k in key): r for r in rows}.values())
        names = [f'"{c}"' for c in columns]
        conflict = ""
        if key:
            rest = [n for k, n in enumerate(names) if k not in key]
            action = (
                "DO UPDATE SET " + ", ".join(f"{n}=excluded.{n}" for n in rest)
                if rest
                else "DO NOTHING"
            )
            conflict = f"ON CONFLICT ({', '.join(names[k] for k in key)}) {action}"
        if len(rows) < COPY_FROM:
            marks = "(" + ",".join(["%s"] * len(columns)) + ")"
            values = [None if v is None else str(v) for row in rows for v in row]
            conn.execute(
                f'INSERT INTO "{table}" VALUES {",".join([marks] * len(rows))} {conflict}', values
            )
            return
        stage = f"{table}_staged"
        conn.execute(
            f'CREATE TEMP TABLE IF NOT EXISTS "{stage}" (LIKE "{table}" INCLUDING DEFAULTS)'
            " ON COMMIT DELETE ROWS"
        )
        with conn.cursor().copy(f'COPY "{stage}" FROM STDIN') as copy:
            for row in rows:
                copy.write_row(row)
        conn.execute(f'INSERT INTO "{table}" SELECT * FROM "{stage}" {conflict}')

    def ddl(self, statement: str, booleans: Sequence[str] = ()) -> str:
        for column in booleans:
            statement = re.sub(
                rf"\b({column}) INTEGER\b((?: NOT NULL)?)(?: DEFAULT ([01])\b)?",
                lambda m: (
                    f"{m[1]} BOOLEAN{m[2]}"
                    + ("" if m[3] is None else f" DEFAULT {'true' if m[3] == '1' else 'false'}")
                ),
                statement,
            )
        for pattern, replacement in _TYPES:
            statement = pattern.sub(replacement, statement)
        return statement

    def flag(self, value: bool) -> bool:
        return value

    @contextlib.contextmanager
    def migrating(self, conn: Connection) -> Iterator[None]:
        with conn.transaction():
            conn.execute(
                "SELECT pg_advisory_xact_lock(%s, %s)", lock_key("stash-mirror", self.schema)
            )
            conn.execute(f'CREATE SCHEMA IF NOT EXISTS "{self.schema}"')
            yield
        self._shapes.clear()

    def table_exists(self, conn: Connection, table: str) -> bool:
        found = conn.execute(
            "SELECT 1 FROM pg_tables WHERE schemaname=%s AND tablename=%s", (self.schema, table)
        ).fetchone()
        return found is not None
