"""A file of objects as a source: read by byte offset, so a read can resume anywhere.

The watermark is a fingerprint of the file (size, mtime and SHA-256): an incremental
pass over an unchanged file reads nothing; a changed file is read whole and the engine
skips unchanged objects by their content hash.

A read sees one version of the file: it opens the file once and takes the fingerprint,
the duplicate ids and every page through that one descriptor (a file replaced by a
rename meanwhile is read as it was). A file written in place while it is read is a
:class:`TransientError`, so the read starts again and never counts as complete.
"""

from __future__ import annotations

import hashlib
import io
import os
import sqlite3
from collections.abc import AsyncGenerator, Iterator, Mapping, Sequence
from contextlib import aclosing
from dataclasses import dataclass
from pathlib import Path
from typing import Any, BinaryIO, NamedTuple

import trio

from sluiced.connectors import Malformed, Page, Record, Source
from sluiced.errors import ObjectError, SyncError, TransientError

from .formats import FileFormat, LineError

__all__ = ["FileSettings", "FileSource"]


@dataclass(frozen=True, kw_only=True)
class FileSettings:
    paths: Mapping[str, Path]
    id_attribute: str
    format: FileFormat


@dataclass(frozen=True, slots=True)
class _Version:
    """What tells the content of an open file from what it was, without reading it
    (not the change time: a rename over the file's name changes that, not the content)."""

    size: int
    mtime_ns: int

    @classmethod
    def of(cls, f: BinaryIO) -> _Version:
        st = os.fstat(f.fileno())
        return cls(st.st_size, st.st_mtime_ns)

    def check(self, f: BinaryIO, path: Path) -> None:
        """Raise :class:`TransientError` if the open file *f* (of *path*) was written
        since this version was taken."""
        if _Version.of(f) != self:
            raise TransientError(f"{path} changed while it was read; read again")


def _fingerprint_of(f: BinaryIO, path: Path) -> tuple[str, _Version]:
    """``size:mtime_ns:sha256`` of the open file *f*, and the version it is of.

    Raises:
        TransientError: the file was written while it was hashed.
    """
    version = _Version.of(f)
    digest = hashlib.sha256()
    f.seek(0)
    while chunk := f.read(1 << 20):
        digest.update(chunk)
    version.check(f, path)
    return f"{version.size}:{version.mtime_ns}:{digest.hexdigest()}", version


def fingerprint(path: Path) -> str | None:
    """``size:mtime_ns:sha256`` of *path*, or None if it does not exist.

    Raises:
        TransientError: the file was written while it was hashed.
    """
    try:
        f = path.open("rb")
    except FileNotFoundError:
        return None
    with f:
        return _fingerprint_of(f, path)[0]


def _open(path: Path) -> BinaryIO:
    """*path* opened for reading.

    Raises:
        SyncError: it does not exist (never "the source is empty": reading it as empty
            would delete every object from the target) or cannot be read.
    """
    try:
        return path.open("rb")
    except FileNotFoundError:
        raise SyncError(f"source file {path} does not exist") from None
    except OSError as exc:
        raise SyncError(f"cannot read source file {path}: {exc.strerror}") from None


def read_header(path: Path, fmt: FileFormat) -> tuple[list[str] | None, int]:
    """The header (for formats that have one) and the offset where records start.

    Raises:
        SyncError: the header line is not UTF-8 (nothing after it can be read).
    """
    if not fmt.has_header:
        return None, 0
    with path.open("rb") as f:
        return _header_of(f, path, fmt)


def _header_of(f: BinaryIO, path: Path, fmt: FileFormat) -> tuple[list[str] | None, int]:
    """:func:`read_header` of the open file *f* (of *path*)."""
    if not fmt.has_header:
        return None, 0
    f.seek(0)
    line = f.readline()
    if not line:
        return [], 0
    try:
        text = line.decode("utf-8")
    except UnicodeDecodeError as exc:
        raise SyncError(f"{path}:1: the header is not UTF-8 ({_bad_bytes(exc)})") from None
    return fmt.split(text.rstrip("\r\n")), len(line)


def _bad_bytes(exc: UnicodeDecodeError) -> str:
    return f"invalid UTF-8 byte 0x{exc.object[exc.start]:02x} at byte {exc.start + 1} of the line"


class _Item(NamedTuple):
    """One record of a file, read or not: ``obj`` or ``error``; ``end`` and ``end_line``
    are where reading continues after it. (A tuple: one is made per line read.)"""

    line: int
    end: int
    end_line: int
    obj: dict[str, Any] | None = None
    ident: str | None = None
    error: str | None = None


def _items(
    f: BinaryIO, fmt: FileFormat, header: Sequence[str] | None, id_attr: str, line_no: int
) -> Iterator[_Item]:
    """The records of *f* from where it stands (after line *line_no*), parsed.

    Nothing is silently lost or altered: bytes that are not UTF-8 make their line an
    error; a record that spans lines (a CSV quote) but never ends or does not parse is
    an error on its first line, and reading goes on from the line after it, so an open
    quote does not swallow the rest of the file.
    """
    pos = f.tell()  # where the next line starts, counted (tell() costs a system call)
    complete = fmt.record_complete
    quick = fmt.line_record if fmt.lines_are_records else None
    while raw := f.readline():
        line_no += 1
        pos += len(raw)
        if quick is not None and (found := quick(raw, id_attr)) is not None:
            yield _Item(line_no, pos, line_no, *found)
            continue
        first, after_first = line_no, pos
        try:
            text = raw.decode("utf-8")
            while not (whole := complete(text)) and (more := f.readline()):
                line_no += 1
                pos += len(more)
                text += more.decode("utf-8")
        except UnicodeDecodeError as exc:
            line = "" if line_no == first else f" on line {line_no}"
            pos = f.seek(after_first)
            yield _Item(line=first, end=after_first, end_line=first, error=_bad_bytes(exc) + line)
            line_no = first
            continue
        stripped = text.rstrip("\r\n")
        if not stripped.strip():
            continue
        try:
            if not whole:
                raise LineError("a quote opened on this line is never closed")
            obj = fmt.parse(stripped, header)
            ident = obj.get(id_attr)
            if type(ident) is not str or not ident:  # the usual case first: a string
                if isinstance(ident, bool) or not isinstance(ident, str | int) or ident == "":
                    raise LineError(f"no usable {id_attr!r} attribute (found {ident!r})")
                ident = str(ident)
        except LineError as exc:
            if line_no == first:
                yield _Item(line=first, end=pos, end_line=line_no, error=str(exc))
                continue
            reason = str(exc)
            if "never closed" not in reason:
                reason += f" (lines {first}-{line_no} read as one record: a quote left open?)"
            pos = f.seek(after_first)
            line_no = first
            yield _Item(
                line=first,
                end=after_first,
                end_line=first,
                error=f"{reason}; reading on from line {first + 1}",
            )
            continue
        yield _Item(first, pos, line_no, obj, ident)


def _ids(
    f: BinaryIO, fmt: FileFormat, header: Sequence[str] | None, id_attr: str, line_no: int
) -> Iterator[tuple[str, int]]:
    """The id and first line of each record of *f* from where it stands (after line
    *line_no*) that has one: those :func:`_items` reads. Where records are lines, a line
    the format reads at a glance (:meth:`FileFormat.line_record`) is not taken apart
    further; only the others are."""
    if not fmt.lines_are_records:
        for item in _items(f, fmt, header, id_attr, line_no):
            if item.ident is not None:
                yield item.ident, item.line
        return
    line_record = fmt.line_record
    for raw in f:
        line_no += 1
        found = line_record(raw, id_attr)
        if found is not None:
            yield found[1], line_no
            continue
        for item in _items(io.BytesIO(raw), fmt, header, id_attr, line_no - 1):
            if item.ident is not None:
                yield item.ident, item.line


def duplicates(
    f: BinaryIO, path: Path, version: _Version, fmt: FileFormat, id_attr: str
) -> dict[str, list[int]]:
    """The ids that more than one record of the open file *f* (of *path*) has, with
    the lines of each.

    The ids go to a temporary on-disk SQLite table (memory stays flat whatever the
    file's size); only the duplicates come back.

    Raises:
        TransientError: the file is no longer at *version* (it was written meanwhile).
    """
    header, start = _header_of(f, path, fmt)
    db = sqlite3.connect("")  # a private temporary database, on disk
    try:
        db.execute("CREATE TABLE ids (id TEXT NOT NULL, line INTEGER NOT NULL)")
        f.seek(start)
        chunk: list[tuple[str, int]] = []
        for ident, line in _ids(f, fmt, header, id_attr, 1 if fmt.has_header else 0):
            chunk.append((ident, line))
            if len(chunk) == 5000:
                db.executemany("INSERT INTO ids VALUES (?, ?)", chunk)
                chunk = []
        db.executemany("INSERT INTO ids VALUES (?, ?)", chunk)
        version.check(f, path)
        found: dict[str, list[int]] = {}
        for ident, line in db.execute(
            "SELECT id, line FROM ids WHERE id IN"
            " (SELECT id FROM ids GROUP BY id HAVING count(*) > 1) ORDER BY line"
        ):
            found.setdefault(ident, []).append(line)
        return found
    finally:
        db.close()


def _page_item(
    path: Path,
    fp: str,
    id_attr: str,
    dups: Mapping[str, Sequence[int]],
    item: _Item,
    end: int,
    end_line: int,
) -> Record | Malformed:
    """The record *item* of the file at *path* (fingerprint *fp*) is in a page, a read
    continuing after it at byte *end*, line *end_line*: unreadable or sharing its id
    with other records (*dups*), it is :class:`Malformed`."""
    cursor = {"offset": end, "line": end_line, "fp": fp}
    if item.obj is None or item.ident is None:
        return Malformed(key=f"{path.name}:{item.line}", reason=item.error or "", cursor=cursor)
    if item.ident in dups:
        lines = " and ".join(str(n) for n in dups[item.ident])
        reason = f"{id_attr} {item.ident!r} is on more than one line: {lines}"
        return Malformed(key=f"{path.name}:{item.line}", reason=reason, cursor=cursor)
    return Record(id=item.ident, data=item.obj, cursor=cursor)


class FileSource(Source):
    def __init__(self, settings: FileSettings) -> None:
        self.settings = settings
        self.endpoint = ", ".join(str(p) for p in settings.paths.values())

    def _path(self, entity_type: str) -> Path:
        try:
            return self.settings.paths[entity_type]
        except KeyError:
            raise ObjectError(f"no file configured for entity type {entity_type!r}") from None

    async def watermark(self, entity_type: str) -> str | None:
        return await trio.to_thread.run_sync(fingerprint, self._path(entity_type))

    def _read_page(
        self,
        f: BinaryIO,
        path: Path,
        version: _Version,
        fp: str,
        offset: int,
        line_no: int,
        page_size: int,
        dups: Mapping[str, Sequence[int]],
    ) -> tuple[list[Record | Malformed], int, int]:
        """The records of the open file *f* from *offset* (after line *line_no*).

        Raises:
            TransientError: the file is no longer at *version* (it was written meanwhile).
        """
        fmt, id_attr = self.settings.format, self.settings.id_attribute
        version.check(f, path)
        header, start = _header_of(f, path, fmt)
        items: list[Record | Malformed] = []
        if offset < start:
            offset, line_no = start, 1 if fmt.has_header else 0
        f.seek(offset)
        if fmt.lines_are_records:
            quick, readline = fmt.line_record, f.readline
            while len(items) < page_size and (raw := readline()):
                offset += len(raw)
                line_no += 1
                found = quick(raw, id_attr)
                if found is not None and found[1] not in dups:  # the usual line, at a glance
                    cursor = {"offset": offset, "line": line_no, "fp": fp}
                    items.append(Record(id=found[1], data=found[0], cursor=cursor))
                    continue
                for item in _items(io.BytesIO(raw), fmt, header, id_attr, line_no - 1):
                    items.append(_page_item(path, fp, id_attr, dups, item, offset, line_no))
        else:
            for item in _items(f, fmt, header, id_attr, line_no):
                offset, line_no = item.end, item.end_line
                items.append(_page_item(path, fp, id_attr, dups, item, offset, line_no))
                if len(items) >= page_size:
                    break
        version.check(f, path)
        return items, offset, line_no

    async def read(
        self, entity_type: str, *, since: str | None, cursor: Any, page_size: int
    ) -> AsyncGenerator[Page, None]:
        """The file's records; what cannot be read is :class:`Malformed` with file and
        line (so the read is not complete), and so are records sharing an id.

        One version of the file is read: it is opened once, and the fingerprint, the
        duplicate ids and every page come through that descriptor.

        Raises:
            SyncError: the file does not exist or cannot be opened.
            TransientError: the file was written in place while it was read.
        """
        path = self._path(entity_type)
        f = await trio.to_thread.run_sync(_open, path)
        try:
            fp, version = await trio.to_thread.run_sync(_fingerprint_of, f, path)
            if since is not None and since == fp:
                return  # unchanged file: no changes
            offset, line_no = 0, 0
            if isinstance(cursor, dict) and cursor.get("fp") == fp:
                offset, line_no = int(cursor["offset"]), int(cursor["line"])
            fmt, id_attr = self.settings.format, self.settings.id_attribute
            dups = await trio.to_thread.run_sync(duplicates, f, path, version, fmt, id_attr)
            size = version.size
            while True:
                items, offset, line_no = await trio.to_thread.run_sync(
                    self._read_page, f, path, version, fp, offset, line_no, page_size, dups
                )
                if not items:
                    return
                yield Page(items=items, fraction=offset / size if size else 1.0, exhaustive=True)
        finally:
            f.close()

    async def validate(self) -> str:
        found = []
        for entity_type, path in self.settings.paths.items():
            try:
                size = path.stat().st_size
                with path.open("rb"):
                    pass
            except OSError as exc:
                raise SyncError(f"{entity_type}: cannot read {path}: {exc.strerror}") from None
            found.append(f"{entity_type}: {path} ({size} bytes)")
        return "; ".join(found)

    async def get_many(
        self, entity_type: str, ids: Sequence[str]
    ) -> Mapping[str, Record | Malformed]:
        """The records with these ids, read from the whole file. When the file could not
        be read whole, an id not found is a :class:`Malformed` (it may be on a line that
        could not be read), never absent."""
        wanted = set(ids)
        found: dict[str, Record | Malformed] = {}
        damaged: list[str] = []
        pages = self.read(entity_type, since=None, cursor=None, page_size=1000)
        async with aclosing(pages):  # the file is closed whatever happens
            async for page in pages:
                for item in page.items:
                    if isinstance(item, Record):
                        if item.id in wanted:
                            found[item.id] = item
                    elif isinstance(item, Malformed):  # a full read yields no Gone
                        damaged.append(item.key)
        if damaged:
            where = ", ".join(damaged[:3]) + (" ..." if len(damaged) > 3 else "")
            reason = f"not found in a read that met {len(damaged)} unreadable items ({where})"
            for i in wanted - found.keys():
                found[i] = Malformed(key=i, reason=reason)
        return found
