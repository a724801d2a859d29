"""A plugin for end-to-end tests, installed by a test as a real entry point (a
``.dist-info`` on the daemon's ``PYTHONPATH``): the ``chatty`` target runs its jobs
itself and writes ``lines`` log lines as fast as it can, pausing after ``first`` of
them until the file ``gate`` exists."""

from __future__ import annotations

from dataclasses import dataclass, replace
from pathlib import Path
from typing import Any

import trio

from sluiced.connectors import ConnectorContext, ConnectorFactory, DriverContext, JobDriver
from sluiced.engine import EngineResult
from sluiced.hookspecs import hookimpl
from sluiced.models import JobStats
from sluiced.tables import TableReader


@dataclass(frozen=True)
class Settings:
    lines: int
    first: int
    gate: Path


class Chatty(JobDriver):
    def __init__(self, settings: Settings) -> None:
        self.settings = settings

    async def run(self, job: Any, ctx: DriverContext) -> Any:
        s = self.settings
        for n in range(1, s.lines + 1):
            await ctx.log("info", f"line {n}")
            if n == s.first:
                while not s.gate.exists():  # noqa: ASYNC110 - another process makes it
                    await trio.sleep(0.02)
        job = replace(job, progress=100.0, stats=JobStats(processed=s.lines))
        await ctx.store.save_job(job)
        return EngineResult(job=job)


class ChattyConnector(ConnectorFactory):
    name = "chatty"
    description = "writes many log lines (tests)"

    def parse_settings(self, reader: TableReader) -> Settings:
        settings = Settings(
            lines=reader.get_int("lines", 100),
            first=reader.get_int("first", 0),
            gate=reader.get_path("gate", Path("gate")),
        )
        reader.finish()
        return settings

    def open_driver(self, settings: Any, ctx: ConnectorContext) -> JobDriver:
        return Chatty(settings)


@hookimpl
def sluiced_connectors() -> list[ConnectorFactory]:
    return [ChattyConnector()]
