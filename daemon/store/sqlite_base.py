"""What the SQLite store's parts share: the connection (owned by one thread), reads
and writes through it with their errors sorted, and records as rows and back.

Errors: a file that is not a sound SQLite database raises :class:`StoreDamaged` when it
is opened (with ``verify``, after ``PRAGMA quick_check``); any other failure to open,
read or write (a full or read-only disk, an I/O error) raises :class:`StoreUnavailable`
naming the file. Neither leaves a transaction open: the next write can succeed.
"""

from __future__ import annotations

import json
import sqlite3
from collections.abc import Callable, Sequence
from datetime import datetime
from pathlib import Path
from typing import Any, TypeVar

from ..codec import dumps, loads, to_dict
from ..models import Escrow, Job, Link
from .abc import Store
from .errors import StoreDamaged, StoreUnavailable
from .sqlite_schema import check_version, damaged, migrate, quick_check
from .thread import ConnectionThread

__all__ = [
    "LINK_COLUMNS",
    "LINK_COLUMNS_ALL",
    "SAVE_JOB",
    "SqliteBase",
    "escrow_row",
    "job_row",
    "link",
    "link_row",
]

T = TypeVar("T")

LINK_COLUMNS = "source_id, target_id, hash, seen_pass, data, disabled_at"
LINK_COLUMNS_ALL = f"integration_id, entity_type, {LINK_COLUMNS}"
#: The columns of a job's row (:func:`job_row`), and the write of one.
JOB_COLUMNS = "id, integration_id, status, created_at, duration_ms, body, node"
SAVE_JOB = f"INSERT OR REPLACE INTO jobs ({JOB_COLUMNS}) VALUES (?,?,?,?,?,?,?)"


def link(r: Sequence[Any]) -> Link:
    return Link(
        source_id=r[0],
        target_id=r[1],
        hash=r[2],
        seen_pass=r[3],
        data=loads(r[4]) if r[4] is not None else None,
        disabled_at=datetime.fromisoformat(r[5]) if r[5] is not None else None,
    )


def link_row(iid: str, et: str, k: Link) -> tuple[Any, ...]:
    data = k.encoded if k.encoded is not None else dumps(k.data) if k.data is not None else None
    disabled = k.disabled_at.isoformat() if k.disabled_at is not None else None
    return (iid, et, k.source_id, k.target_id, k.hash, k.seen_pass, data, disabled)


def job_row(job: Job) -> tuple[Any, ...]:
    return (
        job.id,
        job.integration_id,
        job.status.value,
        job.created_at.isoformat(),
        job.duration_ms,
        json.dumps(to_dict(job)),
        job.node,
    )


def escrow_row(e: Escrow) -> tuple[Any, ...]:
    return (
        e.integration_id,
        e.entity_type,
        e.object_id,
        e.kind,
        e.next_retry.isoformat(),
        e.pass_id,
        json.dumps(to_dict(e)),
    )


class SqliteBase(Store):
    """A store's SQLite connection, opened (and migrated) as
    :class:`~sluiced.store.sqlite.SqliteStore` describes, and its reads and writes."""

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
                quick_check(conn)
            if read_only:
                check_version(conn)
            else:
                migrate(conn)

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
            if damaged(exc):
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
