"""A plugin for end-to-end tests, installed by a test as a real entry point (a
``.dist-info`` on the daemon's ``PYTHONPATH``): the ``chatty`` target keeps nothing,
and its reconciler writes ``lines`` log lines as fast as it can after each pass's
reads, pausing after ``first`` of them until the file ``gate`` exists."""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import trio

from sluiced.connectors import (
    ConnectorContext,
    ConnectorFactory,
    Op,
    OpResult,
    Reconciler,
    ReconcilingTarget,
    Source,
    SourceKeyedTarget,
    Survey,
    Target,
    Writes,
)
from sluiced.hookspecs import hookimpl
from sluiced.tables import TableReader


@dataclass(frozen=True)
class Settings:
    lines: int
    first: int
    gate: Path


class Chatter(Reconciler):
    def __init__(self, settings: Settings, source: Source, writes: Writes) -> None:
        self.settings = settings
        self.source = source
        self.writes = writes

    async def survey(self, entity_type: str) -> Survey:
        watermark = await self.writes.call(lambda: self.source.watermark(entity_type))
        return Survey(watermark=watermark)

    async def owed(self, entity_type: str, writes: Writes) -> None:
        pass

    async def reconcile(
        self, entity_type: str, *, full: bool, facts: Mapping[str, Any], writes: Writes
    ) -> None:
        s = self.settings
        for n in range(1, s.lines + 1):
            await writes.log("info", f"line {n}")
            if n == s.first:
                while not s.gate.exists():  # noqa: ASYNC110 - another process makes it
                    await trio.sleep(0.02)


class Chatty(Target, SourceKeyedTarget, ReconcilingTarget):
    def __init__(self, settings: Settings) -> None:
        self.settings = settings

    async def apply(self, entity_type: str, ops: Sequence[Op]) -> Sequence[OpResult]:
        return [OpResult(ok=True, target_id=op.source_id) for op in ops]

    async def missing(self, entity_type: str, ids: Sequence[str]) -> list[str]:
        return list(ids)

    def reconciler(self, source: Source, writes: Writes) -> Reconciler:
        return Chatter(self.settings, source, writes)


class ChattyConnector(ConnectorFactory):
    name = "chatty"
    keyed_by_source_ids = True
    description = "writes many log lines (tests)"

    def parse_settings(self, reader: TableReader) -> Settings:
        settings = Settings(
            lines=reader.get_int("lines", 100),
            first=reader.get_int("first", 0),
            gate=reader.get_path("gate", Path("gate")),
        )
        reader.finish()
        return settings

    def open_target(self, settings: Any, ctx: ConnectorContext) -> Target:
        return Chatty(settings)


@hookimpl
def sluiced_connectors() -> list[ConnectorFactory]:
    return [ChattyConnector()]
