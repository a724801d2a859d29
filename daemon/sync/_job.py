"""What a job's caller hands the engine and gets back: control, log, plan, result."""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field
from typing import Any, Protocol

from ..config import IntegrationConfig
from ..errors import SyncError
from ..mapping import BUILTINS, default_schema, parse_schema
from ..mapping.mapper import SchemaMapper
from ..models import Job

__all__ = [
    "CHECKPOINT_VERSION",
    "EngineResult",
    "JobControl",
    "JobLog",
    "PlanSink",
    "TooManyDeletes",
    "default_mapper",
]

#: The version of the checkpoint a job keeps; another version starts the job over.
CHECKPOINT_VERSION = 1


class TooManyDeletes(SyncError):
    code = "TooManyDeletes"


@dataclass
class JobControl:
    """Requests to a running job, checked by the engine at object and batch boundaries."""

    pause_requested: bool = False
    stop_requested: bool = False


class JobLog(Protocol):
    async def __call__(self, level: str, message: str) -> None: ...


class PlanSink(Protocol):
    """Where a dry run puts what it would do, instead of doing it."""

    async def add(self, entries: Sequence[Mapping[str, Any]]) -> None: ...


@dataclass(frozen=True, kw_only=True)
class EngineResult:
    job: Job
    escrowed: int = 0
    full_pass: bool = False
    failed: Mapping[str, SyncError] = field(default_factory=dict)


def default_mapper(cfg: IntegrationConfig) -> SchemaMapper:
    """Objects copied as they are, every flow allowed."""
    return SchemaMapper(parse_schema(default_schema(cfg.entity_types), BUILTINS))
