"""The daemon's store: one SQLite file in WAL mode, owned by one thread.

Schema changes are forward migrations numbered by ``PRAGMA user_version``; opening a
store runs the missing ones in a transaction each. A database newer than this code is
refused rather than misread.

Errors: a file that is not a sound SQLite database raises :class:`StoreDamaged` when it
is opened (with ``verify``, after ``PRAGMA quick_check``); any other failure to open,
read or write (a full or read-only disk, an I/O error) raises :class:`StoreUnavailable`
naming the file. Neither leaves a transaction open: the next write can succeed.
"""

from __future__ import annotations

import json
import sqlite3
from collections.abc import Callable, Collection, Mapping, Sequence
from dataclasses import replace
from datetime import datetime
from pathlib import Path
from typing import Any, TypeVar

from ..codec import dumps, from_dict, loads, to_dict
from ..models import Escrow, IntegrationState, Job, JobStatus, Link, LogEntry
from .abc import BatchCommit, JobHistory, StagedDeletion, Store
from .errors import StoreDamaged, StoreRefused, StoreUnavailable
from .thread import ConnectionThread

__all__ = ["MIGRATIONS", "SqliteStore"]

T = TypeVar("T")

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
)

_LINK_COLUMNS = "source_id, target_id, hash, seen_pass, data, disabled_at"
_LINK_COLUMNS_ALL = f"integration_id, entity_type, {_LINK_COLUMNS}"


def _link(r: Sequence[Any]) -> Link:
    return Link(
        source_id=r[0],
        target_id=r[1],
        hash=r[2],
        seen_pass=r[3],
        data=loads(r[4]) if r[4] is not None else None,
        disabled_at=datetime.fromisoformat(r[5]) if r[5] is not None else None,
    )


def _link_row(iid: str, et: str, k: Link) -> tuple[Any, ...]:
    data = k.encoded if k.encoded is not None else dumps(k.data) if k.data is not None else None
    disabled = k.disabled_at.isoformat() if k.disabled_at is not None else None
    return (iid, et, k.source_id, k.target_id, k.hash, k.seen_pass, data, disabled)


def _setup(conn: sqlite3.Connection) -> None:
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


def _check_version(conn: sqlite3.Connection) -> None:
    """For a read-only store: its schema is the one this sluiced reads."""
    conn.execute("PRAGMA busy_timeout=5000")
    version = conn.execute("PRAGMA user_version").fetchone()[0]
    if version != len(MIGRATIONS):
        raise StoreRefused(
            f"the store is at schema version {version}, and this sluiced reads version "
            f"{len(MIGRATIONS)}; "
            + ("upgrade sluiced" if version > len(MIGRATIONS) else "`sluiced run` upgrades it")
        )


def _verify(conn: sqlite3.Connection) -> None:
    """Raise ``sqlite3.DatabaseError`` unless ``PRAGMA quick_check`` finds the file sound."""
    problems = [r[0] for r in conn.execute("PRAGMA quick_check(5)").fetchall()]
    if problems != ["ok"]:
        raise sqlite3.DatabaseError("; ".join(problems))


#: SQLite's primary result codes that mean the file itself is bad, not the disk.
_DAMAGED_CODES = frozenset({11, 26})  # SQLITE_CORRUPT, SQLITE_NOTADB


def _damaged(exc: sqlite3.DatabaseError) -> bool:
    code = getattr(exc, "sqlite_errorcode", None)
    if code is None:  # raised by _verify
        return type(exc) is sqlite3.DatabaseError
    return (code & 0xFF) in _DAMAGED_CODES


def _job_row(job: Job) -> tuple[Any, ...]:
    return (
        job.id,
        job.integration_id,
        job.status.value,
        job.created_at.isoformat(),
        job.duration_ms,
        json.dumps(to_dict(job)),
    )


def _escrow_row(e: Escrow) -> tuple[Any, ...]:
    return (
        e.integration_id,
        e.entity_type,
        e.object_id,
        e.kind,
        e.next_retry.isoformat(),
        e.pass_id,
        json.dumps(to_dict(e)),
    )


class SqliteStore(Store):
    """The store in the SQLite file *path* (created with its directory if missing).

    With *verify*, the whole file is checked (``PRAGMA quick_check``) before it is used.
    With *read_only* (the read commands of ``sluiced``), the file must exist and is opened
    read-only: nothing is created or migrated, and every write raises ``StoreUnavailable``.

    Raises:
        StoreDamaged: the file is not a sound SQLite database.
        StoreRefused: its schema is newer than this sluiced (read-only: or older).
        StoreUnavailable: it cannot be opened (permissions, a full disk, I/O).
    """

    def __init__(
        self,
        path: Path | str,
        *,
        log_limit: int = 1000,
        verify: bool = False,
        read_only: bool = False,
    ) -> None:
        self.path = Path(path)
        self.log_limit = log_limit
        self._write_failure: str | None = None

        def setup(conn: sqlite3.Connection) -> None:
            if verify:
                _verify(conn)
            if read_only:
                _check_version(conn)
            else:
                _setup(conn)

        try:
            if read_only:
                uri = f"{self.path.resolve().as_uri()}?mode=ro"
                self._db = ConnectionThread(uri, setup, uri=True)
            else:
                self.path.parent.mkdir(parents=True, exist_ok=True)
                self._db = ConnectionThread(self.path, setup)
        except OSError as exc:
            raise StoreUnavailable(f"cannot open the store {self.path}: {exc}") from None
        except sqlite3.DatabaseError as exc:
            if _damaged(exc):
                raise StoreDamaged(self.path, str(exc)) from None
            raise StoreUnavailable(f"cannot open the store {self.path}: {exc}") from None

    def _unavailable(self, exc: sqlite3.DatabaseError, doing: str) -> Exception:
        if isinstance(exc, sqlite3.IntegrityError | sqlite3.ProgrammingError):
            return exc  # a bug, not the file
        return StoreUnavailable(f"cannot {doing} the store {self.path}: {exc}")

    async def _read(self, fn: Callable[[sqlite3.Connection], T]) -> T:
        try:
            return await self._db.call(fn)
        except sqlite3.DatabaseError as exc:
            raise self._unavailable(exc, "read") from None

    async def _write(self, fn: Callable[[sqlite3.Connection], T]) -> T:
        try:
            result = await self._db.write(fn)
        except sqlite3.DatabaseError as exc:
            error = self._unavailable(exc, "write")
            if isinstance(error, StoreUnavailable):
                self._write_failure = str(error)
            raise error from None
        self._write_failure = None
        return result

    async def check(self) -> str | None:
        """None, or why the store cannot be read, or the error of its last write if
        that failed (a full disk) and none succeeded since."""
        return await super().check() or self._write_failure

    async def aclose(self) -> None:
        self._db.close()

    # -- jobs -------------------------------------------------------------------------
    async def save_job(self, job: Job) -> None:
        row = _job_row(job)
        await self._write(
            lambda c: c.execute("INSERT OR REPLACE INTO jobs VALUES (?,?,?,?,?,?)", row)
        )
        self._saw_job(job)

    async def get_job(self, job_id: str) -> Job | None:
        row = await self._read(
            lambda c: c.execute("SELECT body FROM jobs WHERE id=?", (job_id,)).fetchone()
        )
        return from_dict(Job, json.loads(row[0])) if row else None

    async def list_jobs(
        self,
        *,
        statuses: Collection[JobStatus] | None = None,
        integration_id: str | None = None,
        limit: int | None = 20,
    ) -> tuple[list[Job], int]:
        where, args = ["1"], []
        if statuses is not None:
            where.append(f"status IN ({','.join('?' * len(statuses))})")
            args += [s.value for s in statuses]
        if integration_id is not None:
            where.append("integration_id=?")
            args.append(integration_id)
        cond = " AND ".join(where)

        def query(c: sqlite3.Connection) -> tuple[list[Any], int]:
            total = c.execute(f"SELECT count(*) FROM jobs WHERE {cond}", args).fetchone()[0]
            rows = c.execute(
                f"SELECT body FROM jobs WHERE {cond} ORDER BY created_at DESC, id DESC LIMIT ?",
                [*args, -1 if limit is None else limit],
            ).fetchall()
            return rows, total

        rows, total = await self._read(query)
        return [from_dict(Job, json.loads(r[0])) for r in rows], total

    async def delete_job(self, job_id: str, *, delete_logs: bool) -> bool:
        def delete(c: sqlite3.Connection) -> bool:
            if delete_logs:
                c.execute("DELETE FROM job_logs WHERE job_id=?", (job_id,))
            return c.execute("DELETE FROM jobs WHERE id=?", (job_id,)).rowcount > 0

        return await self._write(delete)

    async def append_logs(self, job_id: str, entries: Sequence[LogEntry]) -> None:
        if not entries:
            return
        limit = self.log_limit

        def append(c: sqlite3.Connection) -> int:
            last = c.execute("SELECT max(seq) FROM job_logs WHERE job_id=?", (job_id,)).fetchone()[
                0
            ]
            start: int = (last or 0) + 1
            c.executemany(
                "INSERT INTO job_logs VALUES (?,?,?,?,?)",
                [
                    (job_id, start + i, e.timestamp.isoformat(), e.level, e.message)
                    for i, e in enumerate(entries)
                ],
            )
            c.execute(
                "DELETE FROM job_logs WHERE job_id=? AND seq<=?",
                (job_id, start + len(entries) - 1 - limit),
            )
            return start

        start = await self._write(append)
        self._saw_logs(job_id, [replace(e, seq=start + i) for i, e in enumerate(entries)])

    async def get_logs(
        self, job_id: str, *, limit: int | None = None, after: int | None = None
    ) -> list[LogEntry]:
        rows = await self._read(
            lambda c: c.execute(
                "SELECT ts, level, message, seq FROM (SELECT * FROM job_logs WHERE job_id=? AND seq>?"
                " ORDER BY seq DESC LIMIT ?) ORDER BY seq",
                (job_id, after or 0, -1 if limit is None else limit),
            ).fetchall()
        )
        return [
            LogEntry(timestamp=datetime.fromisoformat(t), level=lv, message=m, seq=n)
            for t, lv, m, n in rows
        ]

    async def job_history(self, integration_id: str) -> JobHistory:
        row = await self._read(
            lambda c: c.execute(
                "SELECT count(*), total(status='completed'), total(status IN ('completed','failed')),"
                " avg(CASE WHEN status='completed' THEN duration_ms END) FROM jobs WHERE integration_id=?",
                (integration_id,),
            ).fetchone()
        )
        return JobHistory(
            total_jobs=row[0],
            succeeded=int(row[1]),
            finished=int(row[2]),
            average_duration_ms=row[3],
        )

    # -- integrations -----------------------------------------------------------------
    async def get_state(self, integration_id: str) -> IntegrationState:
        row = await self._read(
            lambda c: c.execute(
                "SELECT body FROM integration_state WHERE integration_id=?", (integration_id,)
            ).fetchone()
        )
        if row is None:
            return IntegrationState(integration_id=integration_id)
        return from_dict(IntegrationState, json.loads(row[0]))

    async def put_state(self, state: IntegrationState) -> None:
        row = (state.integration_id, json.dumps(to_dict(state)))
        await self._write(
            lambda c: c.execute("INSERT OR REPLACE INTO integration_state VALUES (?,?)", row)
        )

    async def list_states(self) -> list[IntegrationState]:
        rows = await self._read(
            lambda c: c.execute(
                "SELECT body FROM integration_state ORDER BY integration_id"
            ).fetchall()
        )
        return [from_dict(IntegrationState, json.loads(r[0])) for r in rows]

    async def delete_integration(self, integration_id: str) -> None:
        def delete(c: sqlite3.Connection) -> None:
            c.execute(
                "DELETE FROM job_logs WHERE job_id IN (SELECT id FROM jobs WHERE integration_id=?)",
                (integration_id,),
            )
            for table in (
                "jobs",
                "integration_state",
                "watermarks",
                "links",
                "escrows",
                "staged_deletions",
                "definitions",
            ):
                c.execute(f"DELETE FROM {table} WHERE integration_id=?", (integration_id,))

        await self._write(delete)

    async def put_definition(self, integration_id: str, table: Mapping[str, Any]) -> None:
        row = (integration_id, json.dumps(table))
        await self._write(
            lambda c: c.execute("INSERT OR REPLACE INTO definitions VALUES (?,?)", row)
        )

    async def list_definitions(self) -> dict[str, dict[str, Any]]:
        rows = await self._read(
            lambda c: c.execute("SELECT integration_id, body FROM definitions").fetchall()
        )
        return {r[0]: json.loads(r[1]) for r in rows}

    # -- watermarks, links, escrows -----------------------------------------------------
    async def get_watermarks(self, integration_id: str) -> Mapping[str, str]:
        rows = await self._read(
            lambda c: c.execute(
                "SELECT entity_type, value FROM watermarks WHERE integration_id=?",
                (integration_id,),
            ).fetchall()
        )
        return dict(rows)

    async def _delete_all(self, table: str, integration_id: str) -> None:
        await self._write(
            lambda c: c.execute(f"DELETE FROM {table} WHERE integration_id=?", (integration_id,))
        )

    async def clear_watermarks(self, integration_id: str) -> None:
        await self._delete_all("watermarks", integration_id)

    async def get_links(
        self, integration_id: str, entity_type: str, source_ids: Collection[str]
    ) -> dict[str, Link]:
        ids = list(source_ids)

        def query(c: sqlite3.Connection) -> list[Any]:
            rows: list[Any] = []
            for i in range(0, len(ids), 500):
                chunk = ids[i : i + 500]
                rows += c.execute(
                    f"SELECT {_LINK_COLUMNS} FROM links WHERE integration_id=? AND"
                    f" entity_type=? AND source_id IN ({','.join('?' * len(chunk))})",
                    [integration_id, entity_type, *chunk],
                ).fetchall()
            return rows

        rows = await self._read(query)
        return {r[0]: _link(r) for r in rows}

    async def unseen_links(
        self, integration_id: str, entity_type: str, pass_id: str, *, after: str | None, limit: int
    ) -> list[Link]:
        rows = await self._read(
            lambda c: c.execute(
                f"SELECT {_LINK_COLUMNS} FROM links WHERE integration_id=? AND entity_type=?"
                " AND seen_pass IS NOT ? AND source_id>? ORDER BY source_id LIMIT ?",
                (integration_id, entity_type, pass_id, after or "", limit),
            ).fetchall()
        )
        return [_link(r) for r in rows]

    async def count_links(self, integration_id: str, entity_type: str) -> int:
        row = await self._read(
            lambda c: c.execute(
                "SELECT count(*) FROM links WHERE integration_id=? AND entity_type=?",
                (integration_id, entity_type),
            ).fetchone()
        )
        return int(row[0])

    async def clear_links(self, integration_id: str) -> None:
        await self._delete_all("links", integration_id)

    async def list_escrows(
        self,
        integration_id: str,
        *,
        entity_type: str | None = None,
        kind: str | None = None,
        due_before: datetime | None = None,
        limit: int | None = None,
    ) -> list[Escrow]:
        where, args = ["integration_id=?"], [integration_id]
        for column, value in (("entity_type", entity_type), ("kind", kind)):
            if value is not None:
                where.append(f"{column}=?")
                args.append(value)
        if due_before is not None:
            where.append("next_retry<=?")
            args.append(due_before.isoformat())
        sql = (
            f"SELECT body FROM escrows WHERE {' AND '.join(where)}"
            " ORDER BY next_retry, entity_type, object_id LIMIT ?"
        )
        rows = await self._read(
            lambda c: c.execute(sql, [*args, -1 if limit is None else limit]).fetchall()
        )
        return [from_dict(Escrow, json.loads(r[0])) for r in rows]

    async def count_escrows(self) -> dict[tuple[str, str], int]:
        rows = await self._read(
            lambda c: c.execute(
                "SELECT integration_id, entity_type, count(*) FROM escrows"
                " GROUP BY integration_id, entity_type ORDER BY integration_id, entity_type"
            ).fetchall()
        )
        return {(r[0], r[1]): int(r[2]) for r in rows}

    async def drop_escrow(self, integration_id: str, entity_type: str, object_id: str) -> bool:
        return await self._write(
            lambda c: (
                c.execute(
                    "DELETE FROM escrows WHERE integration_id=? AND entity_type=? AND object_id=?",
                    (integration_id, entity_type, object_id),
                ).rowcount
                > 0
            )
        )

    async def retry_escrow_at(
        self, integration_id: str, entity_type: str, object_id: str, when: datetime
    ) -> bool:
        def update(c: sqlite3.Connection) -> bool:
            row = c.execute(
                "SELECT body FROM escrows WHERE integration_id=? AND entity_type=? AND object_id=?",
                (integration_id, entity_type, object_id),
            ).fetchone()
            if row is None:
                return False
            escrow = replace(from_dict(Escrow, json.loads(row[0])), next_retry=when)
            c.execute("INSERT OR REPLACE INTO escrows VALUES (?,?,?,?,?,?,?)", _escrow_row(escrow))
            return True

        return await self._write(update)

    async def clear_escrows(self, integration_id: str) -> None:
        await self._delete_all("escrows", integration_id)

    async def list_staged_deletions(self, integration_id: str) -> list[StagedDeletion]:
        rows = await self._read(
            lambda c: c.execute(
                "SELECT entity_type, source_id, target_id, staged_at FROM staged_deletions"
                " WHERE integration_id=? ORDER BY entity_type, source_id",
                (integration_id,),
            ).fetchall()
        )
        return [
            StagedDeletion(
                integration_id=integration_id,
                entity_type=r[0],
                source_id=r[1],
                target_id=r[2],
                staged_at=datetime.fromisoformat(r[3]),
            )
            for r in rows
        ]

    async def clear_staged_deletions(self, integration_id: str) -> None:
        await self._delete_all("staged_deletions", integration_id)

    # -- the sync engine's write ----------------------------------------------------------
    async def commit_batch(self, batch: BatchCommit) -> None:
        iid, et = batch.job.integration_id, batch.entity_type
        job_row = _job_row(batch.job)

        def commit(c: sqlite3.Connection) -> None:
            c.execute("INSERT OR REPLACE INTO jobs VALUES (?,?,?,?,?,?)", job_row)
            c.executemany(
                f"INSERT OR REPLACE INTO links ({_LINK_COLUMNS_ALL}) VALUES (?,?,?,?,?,?,?,?)",
                [_link_row(iid, et, k) for k in batch.upsert_links],
            )
            c.executemany(
                "DELETE FROM links WHERE integration_id=? AND entity_type=? AND source_id=?",
                [(iid, et, s) for s in batch.delete_links],
            )
            if batch.seen_pass is not None:
                c.executemany(
                    "UPDATE links SET seen_pass=? WHERE integration_id=? AND entity_type=? AND source_id=?",
                    [(batch.seen_pass, iid, et, s) for s in batch.seen_ids],
                )
            c.executemany(
                "DELETE FROM escrows WHERE integration_id=? AND entity_type=? AND object_id=?",
                [(iid, et, o) for o in batch.remove_escrows],
            )
            c.executemany(
                "INSERT OR REPLACE INTO escrows VALUES (?,?,?,?,?,?,?)",
                [_escrow_row(e) for e in batch.add_escrows],
            )
            c.executemany(
                "INSERT OR REPLACE INTO staged_deletions VALUES (?,?,?,?,?)",
                [
                    (
                        d.integration_id,
                        d.entity_type,
                        d.source_id,
                        d.target_id,
                        d.staged_at.isoformat(),
                    )
                    for d in batch.staged_deletions
                ],
            )
            c.executemany(
                "DELETE FROM watermarks WHERE integration_id=? AND entity_type=?",
                [(iid, t) for t in batch.stale_watermarks],
            )
            if batch.pass_complete and batch.watermark is not None:
                c.execute(
                    "INSERT OR REPLACE INTO watermarks VALUES (?,?,?)",
                    (iid, et, batch.watermark),
                )
            if batch.pass_complete and batch.exhaustive:
                c.execute(
                    "DELETE FROM escrows WHERE integration_id=? AND entity_type=? AND kind='source'"
                    " AND pass_id IS NOT ?",
                    (iid, et, batch.seen_pass),
                )

        await self._write(commit)
        self._saw_job(batch.job)
