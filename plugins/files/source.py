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

import io
from collections.abc import AsyncGenerator, Mapping, Sequence
from contextlib import aclosing
from dataclasses import dataclass
from pathlib import Path
from typing import Any, BinaryIO

import trio

from sluiced.connectors import Malformed, Page, Record, Source
from sluiced.errors import ObjectError, SyncError

from .formats import FileFormat
from .records import (
    Item,
    Version,
    duplicates,
    fingerprint,
    fingerprint_of,
    header_of,
    open_source_file,
    read_items,
)

__all__ = ["FileSettings", "FileSource"]


@dataclass(frozen=True, kw_only=True)
class FileSettings:
    paths: Mapping[str, Path]
    id_attribute: str
    format: FileFormat


def _page_item(
    path: Path,
    fp: str,
    id_attr: str,
    dups: Mapping[str, Sequence[int]],
    item: Item,
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
        version: Version,
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
        header, start = header_of(f, path, fmt)
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
                for item in read_items(io.BytesIO(raw), fmt, header, id_attr, line_no - 1):
                    items.append(_page_item(path, fp, id_attr, dups, item, offset, line_no))
        else:
            for item in read_items(f, fmt, header, id_attr, line_no):
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
        f = await trio.to_thread.run_sync(open_source_file, path)
        try:
            fp, version = await trio.to_thread.run_sync(fingerprint_of, f, path)
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
