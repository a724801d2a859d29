"""A plugin for end-to-end tests of several nodes, installed by a test as a real entry
point: the ``recording`` target appends one line per write to a shared file, naming the
integration, the writing node (``$SLUICED_TEST_NODE``), the time and the ids, as the write
starts; then it takes ``delay`` seconds (a slow target, so that jobs are in flight when a
node is killed or frozen)."""

from __future__ import annotations

import json
import os
import time
from collections.abc import Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import trio

from sluiced.connectors import ConnectorContext, ConnectorFactory, Op, OpResult, Target
from sluiced.hookspecs import hookimpl
from sluiced.tables import TableReader


@dataclass(frozen=True)
class Settings:
    log: Path
    delay: float


class Recording(Target):
    def __init__(self, settings: Settings, integration_id: str) -> None:
        self.settings = settings
        self.integration_id = integration_id
        self.endpoint = str(settings.log)

    async def apply(self, entity_type: str, ops: Sequence[Op]) -> Sequence[OpResult]:
        line = {
            "integration": self.integration_id,
            "node": os.environ.get("SLUICED_TEST_NODE", "?"),
            "at": time.time(),
            "ids": [op.source_id for op in ops],
        }
        with self.settings.log.open("a") as f:  # one short append: lines never mix
            f.write(json.dumps(line) + "\n")
        await trio.sleep(self.settings.delay)
        return [OpResult(ok=True, target_id=op.source_id) for op in ops]


class RecordingConnector(ConnectorFactory):
    name = "recording"
    description = "records every write with the writing node (tests)"

    def parse_settings(self, reader: TableReader) -> Settings:
        settings = Settings(
            log=reader.get_path("log", Path("writes.jsonl")),
            delay=float(reader.get_str("delay", "0.2")),
        )
        reader.finish()
        return settings

    def open_target(self, settings: Any, ctx: ConnectorContext) -> Target:
        return Recording(settings, ctx.integration_id)


@hookimpl
def sluiced_connectors() -> list[ConnectorFactory]:
    return [RecordingConnector()]
