"""What the controller (:class:`~sluiced.controller.Controller`) needs of the daemon that
holds it (:class:`Host`) and of the job runner (:class:`Runner`): two small interfaces,
so that the control layer imports neither the supervisor nor the runner.
"""

from __future__ import annotations

from collections.abc import Mapping
from datetime import datetime
from pathlib import Path
from typing import Any, Protocol

import trio

from .config import IntegrationConfig
from .jobfeed import JobFeed
from .mapping import Schema
from .models import IntegrationState, Job
from .resolved import Resolved

__all__ = ["Host", "Runner"]


class Host(Protocol):
    """What the controller needs of the daemon that holds it."""

    @property
    def integrations(self) -> Mapping[str, Resolved]: ...

    @property
    def started(self) -> datetime: ...

    @property
    def config_path(self) -> Path: ...

    @property
    def feed(self) -> JobFeed: ...

    def wake(self) -> None:
        """Look at the schedule again now."""

    async def reload(self) -> bool:
        """Read the config again; returns whether it was applied."""

    async def add_integration(self, integration_id: str, table: Mapping[str, Any]) -> Resolved:
        """Validate, persist and schedule an integration defined through the API.

        Raises:
            ConfigError: the definition is invalid.
        """

    async def remove_integration(self, integration_id: str) -> None:
        """Take the integration off the schedule."""

    def scheduler_health(self) -> dict[str, Any]:
        """``{"ok", "lastTick", "error"}`` of the scheduling loop."""

    def connector_names(self, role: str) -> list[str]:
        """The loaded connectors that can be a ``source`` or a ``target``."""

    async def render_metrics(self) -> bytes:
        """The Prometheus exposition text."""


class Runner(Protocol):
    """What the controller asks of the job runner (:class:`~sluiced.runner.JobRunner`)."""

    def busy(self, integration_id: str, *, finishing: bool = False) -> bool: ...

    def tasks(self, integration_id: str | None = None, *, finishing: bool = True) -> list[str]: ...

    def live(self, job_id: str) -> Job | None: ...

    def task_ended(self, job_id: str) -> trio.Event | None: ...

    async def submit(self, job: Job) -> Job: ...

    async def submit_if_idle(self, job: Job, *, finishing: bool = False) -> Job | None: ...

    def pause(self, job_id: str) -> bool: ...

    def stop(self, job_id: str, *, graceful: bool = True) -> bool: ...

    def schema_of(self, cfg: IntegrationConfig, state: IntegrationState) -> Schema: ...

    def check_schema(self, cfg: IntegrationConfig, data: Any) -> Schema: ...

    def plan_path(self, job_id: str) -> Path: ...

    async def provision(
        self, integration_id: str, entity_type: str, object_id: str, *, dry_run: bool
    ) -> tuple[Job, list[dict[str, Any]]]: ...

    async def validate(self, integration_id: str) -> dict[str, dict[str, Any]]: ...

    def source_keyed(self, integration_id: str) -> bool: ...
