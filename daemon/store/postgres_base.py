"""What the PostgreSQL store's parts share: the connection (owned by one thread, opened
again after it was lost), reads and writes through it with their errors sorted, and
the bulk upsert of rows.

Errors: any failure of the server or of the way to it (it restarted, is down or
unreachable, a timeout ended a statement or a transaction) raises
:class:`StoreUnavailable` naming the server (never a password); the next call opens a
new connection if the old one was lost. Nothing is left half-written: each write is one
transaction. A connection lost during a commit may have committed it; the caller's retry
writes the same thing again.
"""

from __future__ import annotations

import socket
from collections.abc import Callable, Sequence
from typing import Any, TypeVar
from urllib.parse import parse_qsl, urlencode, urlsplit, urlunsplit

import psycopg

from ..tables import Secret
from .abc import Store
from .errors import StoreInUse, StoreRefused, StoreUnavailable
from .pgthread import Connection, PgConnectionThread
from .postgres_schema import check_version, lock_key, migrate

__all__ = ["COPY_FROM", "PostgresBase", "Timeouts", "shown_url", "upsert"]

T = TypeVar("T")

#: psycopg's errors that are bugs of this code, not a problem of the server.
_BUGS = (psycopg.IntegrityError, psycopg.ProgrammingError, psycopg.DataError)


class Timeouts:
    """How long one lock wait, one statement and an idle open transaction may last, in
    seconds (set on every connection), and how long connecting may take."""

    def __init__(
        self,
        *,
        lock: float = 5.0,
        statement: float = 30.0,
        idle_in_transaction: float = 60.0,
        connect: int = 10,
    ) -> None:
        self.lock = lock
        self.statement = statement
        self.idle_in_transaction = idle_in_transaction
        self.connect = connect

    def options(self) -> str:
        ms = {
            "lock_timeout": self.lock,
            "statement_timeout": self.statement,
            "idle_in_transaction_session_timeout": self.idle_in_transaction,
        }
        return " ".join(f"-c {k}={int(v * 1000)}" for k, v in ms.items())

    def connect_kwargs(self, application_name: str, schema: str) -> dict[str, Any]:
        """``psycopg.connect``'s keyword arguments for a connection bounded so, in
        autocommit mode, whose unqualified names are those of *schema*, in UTC."""
        return {
            "autocommit": True,
            "application_name": application_name[:63],
            "connect_timeout": self.connect,
            # A server gone silent (no reset: a dead host, a cut network) is noticed
            # within half a minute rather than the system's TCP timeouts.
            "keepalives_idle": 10,
            "keepalives_interval": 5,
            "keepalives_count": 3,
            "tcp_user_timeout": 30_000,
            "options": f"{self.options()} -c search_path={schema} -c TimeZone=UTC",
        }


def shown_url(url: str) -> str:
    """*url* without a password (in its user-info or its query), to be shown."""
    parts = urlsplit(url)
    netloc = parts.netloc
    if "@" in netloc:
        userinfo, _, host = netloc.rpartition("@")
        netloc = f"{userinfo.partition(':')[0]}@{host}"
    query = urlencode([(k, v) for k, v in parse_qsl(parts.query) if k != "password"], safe="/")
    return urlunsplit((parts.scheme, netloc, parts.path, query, parts.fragment))


def _message(exc: BaseException) -> str:
    return " ".join(str(exc).split()) or type(exc).__name__


#: From this many rows on, :func:`upsert` stages them with COPY (measured: about twice
#: the rows per second of one INSERT over arrays for batches of 500).
COPY_FROM = 64


def upsert(
    c: Connection, table: str, columns: Sequence[str], key: int, rows: Sequence[tuple[Any, ...]]
) -> None:
    """Insert or replace *rows* (every column text): the first *key* columns are the
    primary key; of rows with one key, the last wins. Many rows are copied into a
    temporary table of the transaction first, then upserted from it in one statement."""
    if not rows:
        return
    if len(rows) > 1:
        rows = list({r[:key]: r for r in rows}.values())
    names = ", ".join(columns)
    conflict = f"ON CONFLICT ({', '.join(columns[:key])}) DO UPDATE SET " + ", ".join(
        f"{n}=excluded.{n}" for n in columns[key:]
    )
    if len(rows) < COPY_FROM:
        arrays = ", ".join(["%s::text[]"] * len(columns))
        c.execute(
            f"INSERT INTO {table} ({names}) SELECT * FROM unnest({arrays}) {conflict}",
            [list(column) for column in zip(*rows, strict=True)],
        )
        return
    stage = f"{table}_staged"
    c.execute(f"CREATE TEMP TABLE IF NOT EXISTS {stage} (LIKE {table}) ON COMMIT DELETE ROWS")
    with c.cursor().copy(f"COPY {stage} ({names}) FROM STDIN") as copy:
        for row in rows:
            copy.write_row(row)
    c.execute(f"INSERT INTO {table} ({names}) SELECT {names} FROM {stage} {conflict}")


class PostgresBase(Store):
    """A store's PostgreSQL connection, opened (and migrated) as
    :class:`~sluiced.store.postgres.PostgresStore` describes, and its reads and writes."""

    def __init__(
        self,
        url: str,
        *,
        password: Secret | str | None = None,
        schema: str = "sluiced",
        node_id: str | None = None,
        log_limit: int = 1000,
        exclusive: bool = False,
        read_only: bool = False,
        timeouts: Timeouts | None = None,
    ) -> None:
        self.url = url
        self.where = shown_url(url)
        self.schema = schema
        self.node_id = node_id or socket.gethostname()
        self.log_limit = log_limit
        self._write_failure: str | None = None
        self._password = password
        self._exclusive = exclusive
        self._read_only = read_only
        self._timeouts = timeouts or Timeouts()
        try:
            self._db = PgConnectionThread(self._connect, name=self.where)
        except psycopg.Error as exc:
            raise StoreUnavailable(f"cannot open the store {self.where}: {_message(exc)}") from None

    def _connect(self, first: bool) -> Connection:
        """A new connection, set up; at start (*first*) a refusal raises StoreRefused or
        StoreInUse, later StoreUnavailable (the daemon stays up)."""
        password = self._password
        kwargs = self._timeouts.connect_kwargs(f"sluiced {self.node_id}", self.schema)
        if password is not None:
            kwargs["password"] = password.reveal() if isinstance(password, Secret) else password
        if self._read_only:
            kwargs["options"] += " -c default_transaction_read_only=on"
        conn: Connection = psycopg.connect(self.url, **kwargs)
        try:
            if self._read_only:
                check_version(conn, self.schema, where=self.where)
            else:
                migrate(conn, self.schema, where=self.where, node_id=self.node_id)
            if self._exclusive:
                self._lock(conn)
        except (StoreRefused, StoreInUse) as exc:
            conn.close()
            if first:
                raise
            raise StoreUnavailable(str(exc)) from None
        except BaseException:
            conn.close()
            raise
        return conn

    def _lock(self, conn: Connection) -> None:
        """Hold the store's daemon lock for the connection's life.

        Raises:
            StoreInUse: another node's connection holds it.
        """
        key = lock_key("daemon", self.schema)
        row = conn.execute("SELECT pg_try_advisory_lock(%s, %s)", key).fetchone()
        if row is not None and row[0]:
            return
        holder = conn.execute(
            "SELECT a.application_name FROM pg_locks l JOIN pg_stat_activity a ON a.pid=l.pid"
            " WHERE l.locktype='advisory' AND l.granted AND l.objsubid=2"
            " AND l.classid::bigint=%s AND l.objid::bigint=%s"
            " AND l.database=(SELECT oid FROM pg_database WHERE datname=current_database())",
            (key[0], key[1] & 0xFFFFFFFF),
        ).fetchone()
        name = str(holder[0]).removeprefix("sluiced ") if holder and holder[0] else None
        who = f"another sluiced (node {name})" if name else "another sluiced"
        raise StoreInUse(
            f"{who} is running on the store {self.where}; stop it first (one node uses a "
            "store at a time)"
        )

    def _unavailable(self, exc: psycopg.Error, doing: str) -> Exception:
        if isinstance(exc, _BUGS):
            return exc  # a bug, not the server
        return StoreUnavailable(f"cannot {doing} the store {self.where}: {_message(exc)}")

    async def _read(self, fn: Callable[[Connection], T]) -> T:
        try:
            return await self._db.call(fn)
        except psycopg.Error as exc:
            raise self._unavailable(exc, "read") from None

    async def _write(self, fn: Callable[[Connection], T]) -> T:
        try:
            result = await self._db.write(fn)
        except (psycopg.Error, StoreUnavailable) as exc:
            error = self._unavailable(exc, "write") if isinstance(exc, psycopg.Error) else exc
            if isinstance(error, StoreUnavailable):
                self._write_failure = str(error)
            raise error from None
        self._write_failure = None
        return result

    async def check(self) -> str | None:
        """None, or why the store cannot be read, or the error of its last write if
        that failed and none succeeded since."""
        return await super().check() or self._write_failure

    async def aclose(self) -> None:
        self._db.close()
