"""A file of objects as a target, written atomically and idempotently.

Applied ops go first to a journal next to the file (:mod:`.journal`): one row per
object id, the last op wins, so replaying ops after a crash changes nothing.
``flush()`` merges the journal into the file: it streams the old file, replaces or
drops journalled objects, appends new ones in the order they came, writes a temporary
file, fsyncs it, renames it over the old one, fsyncs the directory, and only then
empties the journal. A crash at any point leaves either the old file or
the new one, and the journal to replay. Memory stays flat: the journal is on disk.
"""

from __future__ import annotations

import os
import sqlite3
from collections.abc import Iterator, Mapping, Sequence
from contextlib import closing
from pathlib import Path
from typing import Any

import trio

from sluiced.codec import dumps, loads
from sluiced.connectors import Op, OpResult, Target
from sluiced.errors import SyncError

from .formats import FileFormat, LineError
from .journal import Journal
from .records import read_header
from .source import FileSettings

__all__ = ["FileTarget"]


class FileTarget(Target):
    def __init__(self, settings: FileSettings) -> None:
        self.settings = settings
        self.endpoint = ", ".join(str(p) for p in settings.paths.values())
        self._journals: dict[Path, Journal] = {}

    def _path(self, entity_type: str) -> Path:
        """The file of an object type; the schema's target names (``User``) find the
        path of the same name in any case (``user``)."""
        paths = self.settings.paths
        if entity_type in paths:
            return paths[entity_type]
        for name, path in paths.items():
            if name.casefold() == entity_type.casefold():
                return path
        raise SyncError(f"no file for {entity_type} objects: add paths.{entity_type}")

    def _journal_path(self, path: Path) -> Path:
        return path.with_name(path.name + ".sluiced-journal")

    def _open(self, entity_type: str) -> Journal:
        """The journal of an entity type's file, opened once. A journal left by a process
        that died before its merge ended is merged first, before anything else touches
        the file (in a worker thread)."""
        path = self._path(entity_type)
        journal = self._journals.get(path)
        if journal is None:
            leftover = self._journal_path(path).exists()
            try:
                path.parent.mkdir(parents=True, exist_ok=True)
                journal = Journal(self._journal_path(path))
            except (OSError, sqlite3.Error) as exc:
                raise cannot_write(path, exc, journal=not isinstance(exc, OSError)) from None
            self._journals[path] = journal
            if leftover:
                self._merge(path, journal)
        return journal

    async def apply(self, entity_type: str, ops: Sequence[Op]) -> Sequence[OpResult]:
        rows: list[tuple[str, int, str, str | None]] = []
        results: list[OpResult] = []
        id_attr = self.settings.id_attribute
        for n, op in enumerate(ops):
            target_id = op.target_id or op.source_id
            if op.kind == "delete":
                rows.append((target_id, n, "delete", None))
            elif _written_as_given(op, id_attr):
                assert op.data is not None and op.encoded is not None
                target_id = str(op.data[id_attr])
                rows.append((target_id, n, "upsert", op.encoded))
            else:
                # A row is replaced whole: start from what was exported last time, so
                # attributes set on create only (and a disabled flag) are kept.
                data = {**(op.previous or {}), **(op.data or {})}
                if op.kind == "disable":
                    data["active"] = False
                elif op.enable:
                    data["active"] = (op.data or {}).get("active", True)
                data[self.settings.id_attribute] = data.get(self.settings.id_attribute, target_id)
                target_id = str(data[self.settings.id_attribute])
                rows.append((target_id, n, "upsert", dumps(data)))
            results.append(OpResult(ok=True, target_id=target_id))
        journal = await trio.to_thread.run_sync(self._open, entity_type)
        try:
            await trio.to_thread.run_sync(journal.add, rows)
        except sqlite3.Error as exc:
            raise cannot_write(self._path(entity_type), exc, journal=True) from None
        return results

    async def validate(self) -> str:
        found = []
        for entity_type, path in self.settings.paths.items():
            existing = path.parent
            while not existing.exists():  # created on the first write
                existing = existing.parent
            if not existing.is_dir() or not os.access(existing, os.W_OK):
                raise SyncError(f"{entity_type}: cannot write in {existing}")
            found.append(f"{entity_type}: {path} (writable)")
        return "; ".join(found)

    async def flush(self) -> None:
        """Merge every journal into its file, those a dead process left included; when
        this returns, everything applied is durable in the files."""
        for entity_type, path in self.settings.paths.items():
            if path in self._journals or self._journal_path(path).exists():
                journal = await trio.to_thread.run_sync(self._open, entity_type)
                await trio.to_thread.run_sync(self._merge, path, journal)

    async def aclose(self) -> None:
        for journal in self._journals.values():
            journal.close()
        self._journals.clear()

    # -- the merge, in a worker thread ----------------------------------------------------
    def _merge(self, path: Path, journal: Journal) -> None:
        """Merge *journal* into *path*.

        Raises:
            SyncError: a write failed (a full or read-only disk), naming the file; the
                file is as it was, the journal keeps everything for the next flush.
        """
        tmp = path.with_name(f".{path.name}.sluiced-tmp")
        try:
            self._write_merged(path, journal, tmp)
        except sqlite3.Error as exc:
            raise cannot_write(path, exc, journal=True) from None
        except OSError as exc:
            raise cannot_write(path, exc) from None
        finally:
            tmp.unlink(missing_ok=True)  # a failed merge leaves no half file taking space

    def _write_merged(self, path: Path, journal: Journal, tmp: Path) -> None:
        if not journal.pending():
            return
        fmt, id_attr = self.settings.format, self.settings.id_attribute
        with journal.merging() as c:
            c.execute("CREATE TEMP TABLE IF NOT EXISTS seen (id TEXT PRIMARY KEY)")
            c.execute("DELETE FROM seen")
            header = self._header(c, path, fmt) if fmt.has_header else None
            # Bytes that are not UTF-8 in the old file are kept as they are.
            with tmp.open("w", encoding="utf-8", errors="surrogateescape", newline="") as out:
                if header is not None:
                    out.write(fmt.dump_header(header))
                self._rewrite_existing(c, path, fmt, id_attr, header, journal.encoded, out)
                # Closed whatever happens: a statement left open would keep the journal's
                # files open after the journal is closed. Rowid order is seq order.
                with closing(
                    c.execute(
                        "SELECT data FROM ops WHERE op='upsert'"
                        " AND id NOT IN (SELECT id FROM seen) ORDER BY rowid"
                    )
                ) as new:
                    while rows := new.fetchmany(1000):
                        texts = [data for (data,) in rows]
                        if journal.encoded:
                            out.write(fmt.dump_encoded_many(texts, header))
                        else:
                            out.write("".join([_line(fmt, t, header, False) for t in texts]))
                out.flush()
                os.fsync(out.fileno())
            os.replace(tmp, path)
            dir_fd = os.open(path.parent, os.O_RDONLY)
            try:
                os.fsync(dir_fd)
            finally:
                os.close(dir_fd)
            journal.emptied()

    def _header(self, c: sqlite3.Connection, path: Path, fmt: FileFormat) -> list[str]:
        header = read_header(path, fmt)[0] if path.exists() else []
        known = set(header or [])
        out = list(header or [])
        for (data,) in c.execute("SELECT data FROM ops WHERE op='upsert' ORDER BY seq"):
            for key in loads(data):
                if key not in known:
                    known.add(key)
                    out.append(key)
        return out

    def _rewrite_existing(
        self,
        c: sqlite3.Connection,
        path: Path,
        fmt: FileFormat,
        id_attr: str,
        header: list[str] | None,
        encoded: bool,
        out: Any,
    ) -> None:
        """Copy the old file, replacing or dropping journalled objects, in chunks of
        lines so the journal is asked once per chunk rather than once per line."""
        if not path.exists():
            return
        old_header = read_header(path, fmt)[0]
        chunk: list[str] = []
        for text in _records(path, fmt):
            chunk.append(text)
            if len(chunk) == 1000:
                self._rewrite_chunk(c, chunk, fmt, id_attr, old_header, header, encoded, out)
                chunk = []
        self._rewrite_chunk(c, chunk, fmt, id_attr, old_header, header, encoded, out)

    def _rewrite_chunk(
        self,
        c: sqlite3.Connection,
        chunk: list[str],
        fmt: FileFormat,
        id_attr: str,
        old_header: list[str] | None,
        header: list[str] | None,
        encoded: bool,
        out: Any,
    ) -> None:
        parsed: list[tuple[str, Mapping[str, Any] | None, str | None]] = []
        for text in chunk:
            try:
                obj: Mapping[str, Any] | None = fmt.parse(text, old_header)
            except LineError:
                obj = None
            ident = None if obj is None or obj.get(id_attr) is None else str(obj.get(id_attr))
            parsed.append((text, obj, ident))
        ids = [i for _, _, i in parsed if i is not None]
        ops: dict[str, tuple[str, str | None]] = {}
        for n in range(0, len(ids), 500):
            part = ids[n : n + 500]
            for ident, op, data in c.execute(
                f"SELECT id, op, data FROM ops WHERE id IN ({','.join('?' * len(part))})", part
            ):
                ops[ident] = (op, data)
        already = {
            row[0]
            for n in range(0, len(ids), 500)
            for row in c.execute(
                f"SELECT id FROM seen WHERE id IN ({','.join('?' * len(ids[n : n + 500]))})",
                ids[n : n + 500],
            )
        }
        c.executemany("INSERT OR IGNORE INTO seen VALUES (?)", [(i,) for i in ids])
        for text, obj, ident in parsed:
            if ident is None or obj is None:
                out.write(text + "\n")  # not ours to judge: kept as it was
                continue
            if ident in already:
                continue  # a duplicate of an id already written
            already.add(ident)
            op = ops.get(ident)
            if op is None:
                out.write(fmt.dump(obj, header) if header is not None else text + "\n")
            elif op[0] == "upsert" and op[1] is not None:
                out.write(_line(fmt, op[1], header, encoded))


def _written_as_given(op: Op, id_attr: str) -> bool:
    """Whether the object *op* writes is its ``data`` as it came, whose encoded form
    it carries: nothing kept from ``previous``, no ``active`` set, the id attribute
    there."""
    if op.encoded is None or op.data is None or op.kind == "disable" or op.enable:
        return False
    return id_attr in op.data and (op.previous is None or op.previous.keys() <= op.data.keys())


def _line(fmt: FileFormat, data: str, header: list[str] | None, encoded: bool) -> str:
    """The file's line of a journalled object: its encoded form as it is where the
    format writes that (*encoded*: the journal holds :func:`dumps` forms)."""
    return fmt.dump_encoded(data, header) if encoded else fmt.dump(loads(data), header)


def cannot_write(path: Path, exc: OSError | sqlite3.Error, *, journal: bool = False) -> SyncError:
    """A failed write as a job's error, naming the file (and not a traceback)."""
    reason = (exc.strerror or str(exc)) if isinstance(exc, OSError) else str(exc)
    where = f"{path}.sluiced-journal (the journal of {path.name})" if journal else str(path)
    if isinstance(exc, OSError) and exc.filename and Path(exc.filename).parent != path.parent:
        where = f"{exc.filename} (for {path})"  # the directory it is in
    return SyncError(f"cannot write {where}: {reason}")


def _records(path: Path, fmt: FileFormat) -> Iterator[str]:
    """The records of the file at *path* after its header, as text (line ends stripped).

    Nothing in the file is dropped: a record whose quote is never closed (the file ends
    first) gives its first line as it is, and the lines after it are read again as
    records, as the source reads them (so an open quote does not swallow the rest).
    """
    with path.open("r", encoding="utf-8", errors="surrogateescape", newline="") as f:
        if fmt.has_header:
            f.readline()
        lines = iter(f)
        again: list[str] = []  # lines to read again, the next one last
        pending: list[str] = []
        text = ""
        while True:
            line = again.pop() if again else next(lines, None)
            if line is None:
                if not pending:
                    return
                yield pending[0].rstrip("\r\n")  # never complete: kept as it was
                again.extend(reversed(pending[1:]))
                pending, text = [], ""
                continue
            pending.append(line)
            text += line
            if fmt.record_complete(text):
                record = text.rstrip("\r\n")
                pending, text = [], ""
                if record.strip():
                    yield record
