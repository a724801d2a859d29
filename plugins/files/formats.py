"""JSONL and CSV: one object per line (CSV: per record), parsed and written."""

from __future__ import annotations

import csv
import io
import json
from collections.abc import Mapping, Sequence
from typing import Any

import orjson

from sluiced.codec import dumps, loads, orjson_exact

__all__ = ["CsvFormat", "FileFormat", "JsonlFormat", "LineError"]


class LineError(ValueError):
    """A line that is not a valid object; the message says why."""


class FileFormat:
    name = ""
    has_header = False
    #: Every record is one line (:meth:`line_record` may read it at a glance).
    lines_are_records = False

    def parse(self, text: str, header: Sequence[str] | None) -> dict[str, Any]:
        raise TypeError

    def dump(self, obj: Mapping[str, Any], header: Sequence[str] | None) -> str:
        raise TypeError

    def dump_encoded(self, text: str, header: Sequence[str] | None) -> str:
        """:meth:`dump` of the object whose :func:`sluiced.codec.dumps` form is *text*."""
        return self.dump(loads(text), header)

    def dump_encoded_many(self, texts: Sequence[str], header: Sequence[str] | None) -> str:
        """:meth:`dump_encoded` of each of *texts*, one after the other."""
        return "".join([self.dump_encoded(text, header) for text in texts])

    def dump_header(self, header: Sequence[str]) -> str:
        raise TypeError

    def record_complete(self, text: str) -> bool:
        """Whether *text* (physical lines so far) is a whole record."""
        return True

    def split(self, text: str) -> list[str]:
        """The cells of a header line."""
        raise TypeError

    def line_record(self, raw: bytes, id_attr: str) -> tuple[dict[str, Any], str] | None:
        """The record on the line *raw* (bytes as read) and its id, where that is quick
        to tell: an object with a string id, as :meth:`parse` would read it. None: the
        line needs :meth:`parse` (and what it says is wrong with it)."""
        return None


def _stdlib_loads(text: str) -> Any:
    """*text* read by the standard library (which says where it is not JSON).

    Raises:
        LineError: *text* is not JSON.
    """
    try:
        return json.loads(text)
    except json.JSONDecodeError as exc:
        raise LineError(f"invalid JSON: {exc.msg} at column {exc.colno}") from None


class JsonlFormat(FileFormat):
    name = "jsonl"
    lines_are_records = True

    def line_record(self, raw: bytes, id_attr: str) -> tuple[dict[str, Any], str] | None:
        if not orjson_exact(raw):
            return None  # an integer beyond 64 bits, maybe: read exactly by parse()
        try:
            obj = orjson.loads(raw)  # bytes: orjson refuses what is not UTF-8
        except orjson.JSONDecodeError:
            return None
        if type(obj) is dict:
            ident = obj.get(id_attr)
            if type(ident) is str and ident:
                return obj, ident
        return None

    def parse(self, text: str, header: Sequence[str] | None) -> dict[str, Any]:
        try:
            # An integer beyond 64 bits orjson would read as a float: the standard library.
            obj = orjson.loads(text) if orjson_exact(text) else _stdlib_loads(text)
        except orjson.JSONDecodeError:  # NaN, Infinity: as Python reads them
            obj = _stdlib_loads(text)
        if not isinstance(obj, dict):
            raise LineError(f"expected a JSON object, found {type(obj).__name__}")
        return obj

    def dump(self, obj: Mapping[str, Any], header: Sequence[str] | None) -> str:
        return dumps(obj) + "\n"

    def dump_encoded(self, text: str, header: Sequence[str] | None) -> str:
        return text + "\n"  # the dumps() form is the line

    def dump_encoded_many(self, texts: Sequence[str], header: Sequence[str] | None) -> str:
        return "\n".join(texts) + "\n" if texts else ""


class CsvFormat(FileFormat):
    """CSV with a header row. Empty cells read as absent; non-string values are
    written as JSON text (lists, numbers, booleans)."""

    name = "csv"
    has_header = True

    def __init__(self, delimiter: str = ",") -> None:
        self.delimiter = delimiter

    def record_complete(self, text: str) -> bool:
        return text.count('"') % 2 == 0

    def split(self, text: str) -> list[str]:
        rows = list(csv.reader(io.StringIO(text), delimiter=self.delimiter, strict=True))
        if len(rows) != 1:
            raise LineError("expected one CSV record")
        return rows[0]

    def parse(self, text: str, header: Sequence[str] | None) -> dict[str, Any]:
        assert header is not None
        try:
            cells = self.split(text)
        except csv.Error as exc:
            raise LineError(f"invalid CSV: {exc}") from None
        if len(cells) != len(header):
            raise LineError(f"expected {len(header)} cells as in the header, found {len(cells)}")
        return {k: v for k, v in zip(header, cells, strict=True) if v != ""}

    def _cell(self, value: Any) -> str:
        if value is None:
            return ""
        if isinstance(value, str):
            return value
        return json.dumps(value, ensure_ascii=False)

    def _row(self, cells: Sequence[str]) -> str:
        buf = io.StringIO()
        csv.writer(buf, delimiter=self.delimiter, lineterminator="\n").writerow(cells)
        return buf.getvalue()

    def dump(self, obj: Mapping[str, Any], header: Sequence[str] | None) -> str:
        assert header is not None
        return self._row([self._cell(obj.get(k)) for k in header])

    def dump_header(self, header: Sequence[str]) -> str:
        return self._row(header)
