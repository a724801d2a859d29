"""Built-in plugin ``files``: JSONL and CSV files as sources and targets.

Settings (the ``source`` or ``target`` table of an integration)::

    connector = "jsonl"            # or "csv"
    id_attribute = "id"            # the attribute that identifies an object
    delimiter = ","                # csv only
    [integrations.<id>.source.paths]
    user = "people.jsonl"          # one file per entity type; relative to the config

Malformed lines are escrowed with file name and line number while the rest syncs, and
so are bytes that are not UTF-8, a CSV quote left open (reading goes on from the next
line) and records sharing an id; a read that met any of them deletes nothing. A read
sees one version of a file (see :mod:`.source`).
"""

from __future__ import annotations

from collections.abc import Sequence
from pathlib import Path
from typing import Any

from sluiced.connectors import ConnectorContext, ConnectorFactory, Source, Target
from sluiced.hookspecs import hookimpl
from sluiced.tables import TableReader

from .formats import CsvFormat, FileFormat, JsonlFormat
from .source import FileSettings, FileSource
from .target import FileTarget

__all__ = ["FileConnector", "sluiced_connectors"]


class FileConnector(ConnectorFactory):
    def __init__(self, name: str, description: str) -> None:
        self.name = name
        self.description = description

    def parse_settings(self, reader: TableReader) -> FileSettings:
        fmt: FileFormat = JsonlFormat()
        if self.name == "csv":
            delimiter = reader.get_str("delimiter", ",")
            if not isinstance(delimiter, str) or len(delimiter) != 1:
                reader.problems.add(reader.key("delimiter"), repr(delimiter), "a single character")
                delimiter = ","
            fmt = CsvFormat(delimiter)
        id_attribute = reader.get_str("id_attribute", "id")
        paths_table = reader.get_table("paths", required=True)
        paths: dict[str, Path] = {}
        for entity_type in paths_table.table:
            paths[entity_type] = paths_table.get_path(entity_type, Path())
        paths_table.finish()
        if not paths and paths_table.table == {} and reader.has("paths"):
            reader.problems.add(
                reader.key("paths"),
                "an empty table",
                'one file per entity type, like user = "people.jsonl"',
            )
        reader.finish()
        return FileSettings(paths=paths, id_attribute=id_attribute, format=fmt)

    def open_source(self, settings: Any, ctx: ConnectorContext) -> Source:
        return FileSource(settings)

    def open_target(self, settings: Any, ctx: ConnectorContext) -> Target:
        return FileTarget(settings)


@hookimpl
def sluiced_connectors() -> Sequence[ConnectorFactory]:
    return [
        FileConnector("jsonl", "a JSON Lines file per entity type"),
        FileConnector("csv", "a CSV file with a header row per entity type"),
    ]
