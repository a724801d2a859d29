"""The records of an open source file, read without trusting it: the file's version
and fingerprint, its header, each record parsed from where a read stands (a line that
cannot be read is an error item, never lost), and the ids several records share.

Every function reads through a descriptor it is given, so that one read of a file sees
one version of it (see :mod:`.source`).
"""

from __future__ import annotations

import hashlib
import io
import os
import sqlite3
from collections.abc import Iterator, Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any, BinaryIO, NamedTuple

from sluiced.errors import SyncError, TransientError

from .formats import FileFormat, LineError

__all__ = [
    "Item",
    "Version",
    "duplicates",
    "fingerprint",
    "fingerprint_of",
    "header_of",
    "open_source_file",
    "read_header",
    "read_items",
]


@dataclass(frozen=True, slots=True)
class Version:
    """What tells the content of an open file from what it was, without reading it
    (not the change time: a rename over the file's name changes that, not the content)."""

    size: int
    mtime_ns: int

    @classmethod
    def of(cls, f: BinaryIO) -> Version:
        st = os.fstat(f.fileno())
        return cls(st.st_size, st.st_mtime_ns)

    def check(self, f: BinaryIO, path: Path) -> None:
        """Raise :class:`TransientError` if the open file *f* (of *path*) was written
        since this version was taken."""
        if Version.of(f) != self:
            raise TransientError(f"{path} changed while it was read; read again")


def fingerprint_of(f: BinaryIO, path: Path) -> tuple[str, Version]:
    """``size:mtime_ns:sha256`` of the open file *f*, and the version it is of.

    Raises:
        TransientError: the file was written while it was hashed.
    """
    version = Version.of(f)
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
        return fingerprint_of(f, path)[0]


def open_source_file(path: Path) -> BinaryIO:
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
        return header_of(f, path, fmt)


def header_of(f: BinaryIO, path: Path, fmt: FileFormat) -> tuple[list[str] | None, int]:
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


class Item(NamedTuple):
    """One record of a file, read or not: ``obj`` or ``error``; ``end`` and ``end_line``
    are where reading continues after it. (A tuple: one is made per line read.)"""

    line: int
    end: int
    end_line: int
    obj: dict[str, Any] | None = None
    ident: str | None = None
    error: str | None = None


def read_items(
    f: BinaryIO, fmt: FileFormat, header: Sequence[str] | None, id_attr: str, line_no: int
) -> Iterator[Item]:
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
            yield Item(line_no, pos, line_no, *found)
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
            yield Item(line=first, end=after_first, end_line=first, error=_bad_bytes(exc) + line)
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
                yield Item(line=first, end=pos, end_line=line_no, error=str(exc))
                continue
            reason = str(exc)
            if "never closed" not in reason:
                reason += f" (lines {first}-{line_no} read as one record: a quote left open?)"
            pos = f.seek(after_first)
            line_no = first
            yield Item(
                line=first,
                end=after_first,
                end_line=first,
                error=f"{reason}; reading on from line {first + 1}",
            )
            continue
        yield Item(first, pos, line_no, obj, ident)


def _ids(
    f: BinaryIO, fmt: FileFormat, header: Sequence[str] | None, id_attr: str, line_no: int
) -> Iterator[tuple[str, int]]:
    """The id and first line of each record of *f* from where it stands (after line
    *line_no*) that has one: those :func:`read_items` reads. Where records are lines, a line
    the format reads at a glance (:meth:`FileFormat.line_record`) is not taken apart
    further; only the others are."""
    if not fmt.lines_are_records:
        for item in read_items(f, fmt, header, id_attr, line_no):
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
        for item in read_items(io.BytesIO(raw), fmt, header, id_attr, line_no - 1):
            if item.ident is not None:
                yield item.ident, item.line


def duplicates(
    f: BinaryIO, path: Path, version: Version, fmt: FileFormat, id_attr: str
) -> dict[str, list[int]]:
    """The ids that more than one record of the open file *f* (of *path*) has, with
    the lines of each.

    The ids go to a temporary on-disk SQLite table (memory stays flat whatever the
    file's size); only the duplicates come back.

    Raises:
        TransientError: the file is no longer at *version* (it was written meanwhile).
    """
    header, start = header_of(f, path, fmt)
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
