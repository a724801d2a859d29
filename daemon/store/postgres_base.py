"""What the PostgreSQL store's parts share: the connection (owned by one thread, opened
again after it was lost), reads and writes through it with their errors sorted, and
the bulk upsert of rows.

Fencing: with a lease view attached (:meth:`PostgresBase.fence_with`, the node's
:class:`~sluiced.cluster.Coordinator`), every write of an integration's job runs, in its
own transaction and before anything else, a check that this node still holds that
integration's lease at the epoch it was given (``FOR KEY SHARE``: no other node can
claim it until the transaction ends, while its heartbeat and the reaper never wait for
the write); otherwise it raises :class:`LeaseLost` and writes nothing. The rest of the
transaction is bounded by the time the lease has left (:func:`bound_to_lease`): a node
frozen in the middle of a write keeps its lock only about as long as its lease.

Errors: any failure of the server or of the way to it (it restarted, is down or
unreachable, a timeout ended a statement or a transaction) raises
:class:`StoreUnavailable` naming the server (never a password). A write whose connection
was lost (the server restarted, an administrator ended the session) is made again on a
new connection for up to :data:`RECONNECT_WITHIN` seconds first, so that a restart of
the server fails no job's write; a read is made again once. Nothing is left half-written: each write is one transaction. A
connection lost during a commit may have committed it; the write made again writes the
same thing again (a fenced write checks its lease again).
"""

from __future__ import annotations

import socket
from collections.abc import Awaitable, Callable, Mapping, Sequence
from typing import Any, Protocol, TypeVar
from urllib.parse import parse_qsl, urlencode, urlsplit, urlunsplit

import psycopg
import trio

from ..redact import sensitive_name
from ..tables import Secret
from .abc import Store
from .errors import LeaseLost, StoreInUse, StoreRefused, StoreUnavailable
from .pgthread import Connection, PgConnectionThread, connection_lost
from .postgres_schema import check_version, lock_key, migrate

__all__ = [
    "COPY_FROM",
    "FENCE_FLOOR",
    "READ_AGAIN_WITHIN",
    "RECONNECT_WITHIN",
    "LeaseView",
    "PostgresBase",
    "Timeouts",
    "bound_to_lease",
    "check_lease",
    "shown_url",
    "upsert",
]

T = TypeVar("T")

#: How long a write whose connection was lost is made again on new ones (seconds).
RECONNECT_WITHIN = 10.0
#: How long a read is: once more at once (a session ended under it); a server that is
#: down is reported without delay.
READ_AGAIN_WITHIN = 0.1

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
    """*url* without a password (in its user-info) or a secret in its query (``password``,
    ``sslpassword``, anything :func:`~sluiced.redact.sensitive_name` names), to be shown."""
    parts = urlsplit(url)
    netloc = parts.netloc
    if "@" in netloc:
        userinfo, _, host = netloc.rpartition("@")
        netloc = f"{userinfo.partition(':')[0]}@{host}"
    query = urlencode(
        [(k, v) for k, v in parse_qsl(parts.query) if not sensitive_name(k)], safe="/"
    )
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


class LeaseView(Protocol):
    """What the store's fencing reads of the node's coordinator: its name and the epoch of
    each integration it holds."""

    @property
    def node_id(self) -> str: ...

    @property
    def held(self) -> Mapping[str, int]: ...


def check_lease(c: Connection, integration_id: str, node_id: str, epoch: int | None) -> float:
    """In the caller's transaction: *node_id* holds *integration_id*'s unexpired lease at
    *epoch* (on the database's clock); the row is key-share-locked until the transaction
    ends (no node can claim it meanwhile; its holder's heartbeat and the reaper still
    update it). Returns how long the lease has left, in seconds.

    Raises:
        LeaseLost: it does not (or *epoch* is None).
    """
    if epoch is not None:
        row = c.execute(
            "SELECT extract(epoch FROM expires_at - clock_timestamp()) FROM leases"
            " WHERE integration_id=%s AND node_id=%s AND epoch=%s"
            " AND expires_at > clock_timestamp() FOR KEY SHARE",
            (integration_id, node_id, epoch),
        ).fetchone()
        if row is not None:
            return float(row[0])
    holder = c.execute(
        "SELECT node_id FROM leases WHERE integration_id=%s AND expires_at > clock_timestamp()",
        (integration_id,),
    ).fetchone()
    raise LeaseLost(
        integration_id, node_id, epoch, str(holder[0]) if holder and holder[0] else None
    )


#: The least a fenced transaction's statements and idle waits are bounded to (seconds),
#: however little its lease has left.
FENCE_FLOOR = 1.0


def bound_to_lease(c: Connection, left: float, timeouts: Timeouts) -> None:
    """Bound the rest of the caller's transaction to the *left* seconds its lease has
    (:data:`FENCE_FLOOR` at least, the *timeouts* at most): a node frozen in the middle of
    it (its locks held, its lease not renewed) has its session ended by the server about
    when its lease runs out, so that another node can claim the integration then."""
    left = max(left, FENCE_FLOOR)
    statement = min(left, timeouts.statement) if timeouts.statement > 0 else left
    idle = min(left, timeouts.idle_in_transaction) if timeouts.idle_in_transaction > 0 else left
    c.execute(
        "SELECT set_config('statement_timeout', %s, true),"
        " set_config('idle_in_transaction_session_timeout', %s, true)",
        (str(int(statement * 1000)), str(int(idle * 1000))),
    )


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
        self._leases: LeaseView | None = None
        try:
            self._db = PgConnectionThread(self._connect, name=self.where, reopen_ended=True)
        except psycopg.Error as exc:
            raise StoreUnavailable(f"cannot open the store {self.where}: {_message(exc)}") from None

    def fence_with(self, leases: LeaseView | None) -> None:
        """Make every job write conditional on the lease *leases* holds for its
        integration (None: unconditional, as for a node alone on the database)."""
        self._leases = leases

    def connection_options(self) -> dict[str, Any]:
        """libpq keyword arguments for another connection of this node to the store's
        database and schema, with the same bounds (the coordinator's)."""
        password = self._password
        kwargs = self._timeouts.connect_kwargs(f"sluiced {self.node_id}", self.schema)
        if password is not None:
            kwargs["password"] = password.reveal() if isinstance(password, Secret) else password
        return kwargs

    def _connect(self, first: bool) -> Connection:
        """A new connection, set up; at start (*first*) a refusal raises StoreRefused or
        StoreInUse, later StoreUnavailable (the daemon stays up)."""
        kwargs = self.connection_options()
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

    async def _again(self, call: Callable[[], Awaitable[T]], within: float) -> T:
        """``await call()``, made again while it fails because its connection was lost,
        for up to *within* seconds; then its error is raised. Cancelled between two
        attempts, it writes nothing more."""
        deadline = trio.current_time() + within
        delay = 0.05
        while True:
            try:
                return await call()
            except psycopg.OperationalError as exc:
                if not connection_lost(exc) or trio.current_time() + delay > deadline:
                    raise
            await trio.sleep(delay)
            delay = min(delay * 2, 1.0)

    async def _read(self, fn: Callable[[Connection], T]) -> T:
        try:
            return await self._again(lambda: self._db.call(fn), READ_AGAIN_WITHIN)
        except psycopg.Error as exc:
            raise self._unavailable(exc, "read") from None

    async def _write(self, fn: Callable[[Connection], T]) -> T:
        try:
            result = await self._again(lambda: self._db.write(fn), RECONNECT_WITHIN)
        except (psycopg.Error, StoreUnavailable) as exc:
            error = self._unavailable(exc, "write") if isinstance(exc, psycopg.Error) else exc
            if isinstance(error, StoreUnavailable) and not isinstance(error, LeaseLost):
                self._write_failure = str(error)
            raise error from None
        self._write_failure = None
        return result

    async def _job_write(
        self, integration: str | Callable[[Connection], str | None], fn: Callable[[Connection], T]
    ) -> T:
        """:meth:`_write` of a job's *fn* for *integration* (or for the integration that
        function of the connection finds; None: unfenced), fenced when a lease view is
        attached (see the module docstring).

        Raises:
            LeaseLost: this node does not hold the integration's lease; nothing written.
        """
        leases = self._leases
        if leases is None:
            return await self._write(fn)
        node, held, timeouts = leases.node_id, dict(leases.held), self._timeouts

        def fenced(c: Connection) -> T:
            iid = integration if isinstance(integration, str) else integration(c)
            if iid is not None:
                bound_to_lease(c, check_lease(c, iid, node, held.get(iid)), timeouts)
            return fn(c)

        return await self._write(fenced)

    async def check(self) -> str | None:
        """None, or why the store cannot be read, or the error of its last write if
        that failed and none succeeded since."""
        return await super().check() or self._write_failure

    async def aclose(self) -> None:
        self._db.close()
