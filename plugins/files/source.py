"""A file of objects as a source: read by byte offset, so a read can resume anywhere.

The watermark is a fingerprint of the file (size, mtime and SHA-256): an incremental
pass over an unchanged file reads nothing; a changed file is read whole and the engine
skips unchanged objects by their content hash.
"""

from __future__ import annotations

import hashlib
import os
from collections.abc import AsyncIterator, Mapping, Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import trio

from sluiced.connectors import Malformed, Page, Record, Source
from sluiced.errors import ObjectError, SyncError

from .formats import FileFormat, LineError

__all__ = ["FileSettings", "FileSource"]


@dataclass(frozen=True, kw_only=True)
class FileSettings:
    paths: Mapping[str, Path]
    id_attribute: str
    format: FileFormat


def fingerprint(path: Path) -> str | None:
    """``size:mtime_ns:sha256`` of *path*, or None if it does not exist."""
    try:
        st = path.stat()
    except FileNotFoundError:
        return None
    digest = hashlib.sha256()
    with path.open("rb") as f:
        while chunk := f.read(1 << 20):
            digest.update(chunk)
    return f"{st.st_size}:{st.st_mtime_ns}:{digest.hexdigest()}"


def read_header(path: Path, fmt: FileFormat) -> tuple[list[str] | None, int]:
    """The header (for formats that have one) and the offset where records start."""
    if not fmt.has_header:
        return None, 0
    with path.open("rb") as f:
        line = f.readline()
    if not line:
        return [], 0
    return fmt.split(line.decode("utf-8").rstrip("\r\n")), len(line)


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
        self, path: Path, fp: str, offset: int, line_no: int, page_size: int
    ) -> tuple[list[Record | Malformed], int, int, int]:
        fmt, id_attr = self.settings.format, self.settings.id_attribute
        header, start = read_header(path, fmt)
        items: list[Record | Malformed] = []
        size = os.path.getsize(path)
        with path.open("rb") as f:
            if offset < start:
                offset, line_no = start, 1 if fmt.has_header else 0
            f.seek(offset)
            while len(items) < page_size:
                raw = f.readline()
                if not raw:
                    break
                line_no += 1
                first_line = line_no
                text = raw.decode("utf-8", errors="replace")
                while not fmt.record_complete(text) and (more := f.readline()):
                    line_no += 1
                    text += more.decode("utf-8", errors="replace")
                offset = f.tell()
                cursor = {"offset": offset, "line": line_no, "fp": fp}
                stripped = text.rstrip("\r\n")
                if not stripped.strip():
                    continue
                key = f"{path.name}:{first_line}"
                try:
                    obj = fmt.parse(stripped, header)
                    ident = obj.get(id_attr)
                    if isinstance(ident, bool) or not isinstance(ident, str | int) or ident == "":
                        raise LineError(f"no usable {id_attr!r} attribute (found {ident!r})")
                    items.append(Record(id=str(ident), data=obj, cursor=cursor))
                except LineError as exc:
                    items.append(Malformed(key=key, reason=str(exc), cursor=cursor))
        return items, offset, line_no, size

    async def read(
        self, entity_type: str, *, since: str | None, cursor: Any, page_size: int
    ) -> AsyncIterator[Page]:
        path = self._path(entity_type)
        fp = await self.watermark(entity_type)
        if fp is None:
            # A missing file is an error, never "the source is empty": reading it as
            # empty would delete every object from the target.
            raise SyncError(f"source file {path} does not exist")
        if since is not None and since == fp:
            return  # unchanged file: no changes
        offset, line_no = 0, 0
        if isinstance(cursor, dict) and cursor.get("fp") == fp:
            offset, line_no = int(cursor["offset"]), int(cursor["line"])
        while True:
            items, offset, line_no, size = await trio.to_thread.run_sync(
                self._read_page, path, fp, offset, line_no, page_size
            )
            if not items:
                return
            yield Page(items=items, fraction=offset / size if size else 1.0, exhaustive=True)

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

    async def get_many(self, entity_type: str, ids: Sequence[str]) -> Mapping[str, Record]:
        wanted, found = set(ids), {}
        async for page in self.read(entity_type, since=None, cursor=None, page_size=1000):
            for item in page.items:
                if isinstance(item, Record) and item.id in wanted:
                    found[item.id] = item
        return found
