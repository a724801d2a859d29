"""The journal of a file target: the ops applied since the last merge, on disk.

One SQLite file next to the target file (``<file>.sluiced-journal``, synchronous=FULL):
one row per object id, the last op wins, so replaying ops after a crash changes
nothing. Rows keep the order they first came in (``seq``), which the merge appends new
objects in. That is also their rowid order, which the merge reads them in (no sort): a
new row takes a seq and a rowid above every row's, a row taken again keeps both, and
rows are deleted only all at once.
"""

from __future__ import annotations

import sqlite3
import threading
from collections.abc import Iterator, Sequence
from contextlib import contextmanager
from pathlib import Path

__all__ = ["Journal"]

#: ``PRAGMA user_version`` of a journal whose every row holds its object as
#: :func:`sluiced.codec.dumps` writes it (a merge may copy it as it is).
ENCODED = 1
#: Seconds a journal waits for another connection's merge (or write) to finish.
MERGE_WAIT = 600.0


class Journal:
    """The journal at *path*, created if it does not exist.

    ``encoded`` says whether every row's object is in :func:`sluiced.codec.dumps` form:
    true for a new or empty journal, false for one an older version left rows in (its
    merge decodes them) until it is emptied.

    Raises:
        sqlite3.Error: the journal cannot be opened or created.
    """

    def __init__(self, path: Path) -> None:
        self.path = path
        # Another target on the same file waits while this one merges (see ``merging``).
        self.conn = sqlite3.connect(
            path, isolation_level=None, check_same_thread=False, timeout=MERGE_WAIT
        )
        try:
            self.conn.execute("PRAGMA journal_mode=WAL")
            self.conn.execute("PRAGMA synchronous=FULL")
            self.conn.execute(
                "CREATE TABLE IF NOT EXISTS ops (id TEXT PRIMARY KEY, seq INTEGER NOT NULL,"
                " op TEXT NOT NULL, data TEXT)"
            )
            self._next_seq = self._last_seq() + 1
            self._data_version = self._version()
            form = self.conn.execute("PRAGMA user_version").fetchone()[0]
            self.encoded = form == ENCODED or self._next_seq == 1
            if self.encoded and form != ENCODED:
                self.conn.execute(f"PRAGMA user_version={ENCODED}")
        except sqlite3.Error:
            self.conn.close()
            raise
        self.lock = threading.Lock()

    def add(self, ops: Sequence[tuple[str, int, str, str | None]]) -> None:
        """Record ``(id, place, op, encoded object)`` rows in one durable transaction,
        *place* being the row's position in *ops* (0, 1, ...): new ids come after those
        already there, in that order; an id already there keeps its place in the order
        and takes the new op.

        Raises:
            sqlite3.Error: the write failed; nothing of *ops* was recorded.
        """
        with self.lock:
            c = self.conn
            try:
                c.execute("BEGIN IMMEDIATE")
                if self._version() != self._data_version:  # another connection wrote
                    self._next_seq = self._last_seq() + 1
                seq = self._next_seq
                c.executemany(  # the rows as they are: their sequence number is made here
                    f"INSERT INTO ops VALUES (?1, ?2 + {int(seq)}, ?3, ?4) ON CONFLICT(id)"
                    " DO UPDATE SET op=excluded.op, data=excluded.data",
                    ops,
                )
                version = self._version()  # no other connection commits before ours
                c.execute("COMMIT")
            except sqlite3.Error:
                if c.in_transaction:
                    c.execute("ROLLBACK")
                raise
            self._next_seq = seq + len(ops)
            self._data_version = version

    def _last_seq(self) -> int:
        """The largest sequence number (a scan: read when the journal is opened, and
        again only if another connection wrote to it since)."""
        return int(self.conn.execute("SELECT coalesce(max(seq), 0) FROM ops").fetchone()[0])

    def _version(self) -> int:
        """SQLite's ``data_version``: it changes when another connection commits."""
        return int(self.conn.execute("PRAGMA data_version").fetchone()[0])

    @contextmanager
    def merging(self) -> Iterator[sqlite3.Connection]:
        """The journal held for a merge: the lock taken and a write transaction open, so
        that no other connection (another target on the same file) adds rows between
        the merge's reading them and :meth:`emptied`; committed when the block ends,
        rolled back (every row kept for the next merge) if it raises."""
        with self.lock:
            c = self.conn
            c.execute("BEGIN IMMEDIATE")
            try:
                if self._version() != self._data_version:  # another connection wrote
                    self._next_seq = self._last_seq() + 1
                yield c
                version = self._version()  # no other connection commits before ours
                c.execute("COMMIT")
            except BaseException:
                if c.in_transaction:
                    c.execute("ROLLBACK")
                raise
            self._data_version = version

    def emptied(self) -> None:
        """Delete every row (the merge wrote them all into the file), in the merge's
        transaction (:meth:`merging`)."""
        self.conn.execute("DELETE FROM ops")
        if not self.encoded:
            self.conn.execute(f"PRAGMA user_version={ENCODED}")
            self.encoded = True

    def pending(self) -> int:
        with self.lock:
            return int(self.conn.execute("SELECT count(*) FROM ops").fetchone()[0])

    def close(self) -> None:
        with self.lock:
            self.conn.close()
