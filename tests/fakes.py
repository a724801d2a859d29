"""A plugin that registers a :class:`~sluiced.testing.MemoryConnector` and records the
job events it observes."""

from __future__ import annotations

from collections.abc import Sequence
from typing import Any

from sluiced.connectors import ConnectorFactory
from sluiced.hookspecs import hookimpl
from sluiced.testing import MemoryConnector


class MemoryPlugin:
    def __init__(self, connector: MemoryConnector) -> None:
        self.connector = connector
        self.events: list[Any] = []

    @hookimpl
    def sluiced_connectors(self) -> Sequence[ConnectorFactory]:
        return [self.connector]

    @hookimpl
    def sluiced_job_event(self, event: Any) -> None:
        self.events.append(event)
