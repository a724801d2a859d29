"""The records sluiced keeps: jobs, their logs, integration state, escrows, links.

All are frozen keyword-only dataclasses; change one with :func:`dataclasses.replace`.
Times are timezone-aware UTC datetimes.
"""

from __future__ import annotations

import dataclasses
from collections.abc import Callable, Mapping
from dataclasses import dataclass, field
from datetime import datetime
from enum import StrEnum
from typing import Any

__all__ = [
    "RESET_SCOPES",
    "Escrow",
    "Execution",
    "ExecutionError",
    "IntegrationState",
    "IntegrationStatus",
    "Job",
    "JobStats",
    "JobStatus",
    "JobType",
    "Link",
    "LogEntry",
    "Quarantine",
    "slot_setters",
]


def slot_setters(cls: type) -> tuple[Callable[[Any, Any], None], ...]:
    """The setters of the slots of the dataclass *cls*, in the order of its fields: a
    frozen dataclass refuses ``setattr``, and these set a field faster than
    ``object.__setattr__`` (for the records made once per object on the hot path)."""
    return tuple(getattr(cls, f.name).__set__ for f in dataclasses.fields(cls))


#: What ``restart`` can reset (seed 003's ``criteria.resetScope``).
RESET_SCOPES = (
    "Watermark",
    "Escrows",
    "QuarantineState",
    "ConnectorDataStore",
    "ForceDeletes",
    "Full",
)


class JobStatus(StrEnum):
    """Seed 002's job statuses. A plugin's job types may answer ``queued`` in their
    own words (``pending``, as seeds 000 and 001 do)."""

    QUEUED = "queued"
    RUNNING = "running"
    PAUSED = "paused"
    STOPPING = "stopping"
    STOPPED = "stopped"
    COMPLETED = "completed"
    FAILED = "failed"

    @property
    def terminal(self) -> bool:
        return self in (JobStatus.STOPPED, JobStatus.COMPLETED, JobStatus.FAILED)

    @property
    def active(self) -> bool:
        """Holds a slot or is about to: queued, running or stopping."""
        return self in (JobStatus.QUEUED, JobStatus.RUNNING, JobStatus.STOPPING)


class JobType(StrEnum):
    FULL = "full_sync"
    INCREMENTAL = "incremental_sync"
    SELECTIVE = "selective_sync"


class IntegrationStatus(StrEnum):
    """Seed 003's ``status.code``."""

    NOT_RUN = "NotRun"
    ACTIVE = "Active"
    PAUSED = "Paused"
    QUARANTINE = "Quarantine"
    DISABLED = "Disabled"


@dataclass(frozen=True, kw_only=True)
class JobStats:
    processed: int = 0
    created: int = 0
    updated: int = 0
    deleted: int = 0
    #: Deprovisioned by a disable (soft delete), apart from ``deleted``.
    disabled: int = 0
    skipped: int = 0
    errors: int = 0

    def __add__(self, other: JobStats) -> JobStats:
        return JobStats(
            processed=self.processed + other.processed,
            created=self.created + other.created,
            updated=self.updated + other.updated,
            deleted=self.deleted + other.deleted,
            disabled=self.disabled + other.disabled,
            skipped=self.skipped + other.skipped,
            errors=self.errors + other.errors,
        )

    @property
    def exported(self) -> int:
        return self.created + self.updated + self.deleted + self.disabled


@dataclass(frozen=True, kw_only=True)
class Job:
    id: str
    integration_id: str
    type: str
    status: JobStatus = JobStatus.QUEUED
    params: Mapping[str, Any] = field(default_factory=dict)
    progress: float = 0.0
    stage: str | None = None
    stats: JobStats = JobStats()
    created_at: datetime
    started_at: datetime | None = None
    completed_at: datetime | None = None
    estimated_completion: datetime | None = None
    error: str | None = None
    error_code: str | None = None
    #: Where a paused, stopped or crashed job continues; owned by the sync engine.
    checkpoint: Mapping[str, Any] | None = None
    #: Stopped by a daemon shutdown rather than by a person: resumed at the next start.
    interrupted: bool = False
    #: The node that ran it: set when it starts running, and again by a node that
    #: resumes it (None: it never ran, or was recorded before nodes were).
    node: str | None = None

    @property
    def duration_ms(self) -> int | None:
        if self.started_at is None or self.completed_at is None:
            return None
        return round((self.completed_at - self.started_at).total_seconds() * 1000)


@dataclass(frozen=True, kw_only=True)
class LogEntry:
    timestamp: datetime
    level: str
    message: str
    #: The line's number in its job's log, from 1, assigned by the store (0: not stored).
    seq: int = 0


@dataclass(frozen=True, kw_only=True)
class ExecutionError:
    code: str
    message: str
    #: True when the operator must act (credentials, deletion approval).
    tenant_actionable: bool = False


@dataclass(frozen=True, kw_only=True)
class Execution:
    """One finished run, as seed 003's ``lastExecution`` reports it."""

    job_id: str
    #: "Succeeded"; "EntryLevelErrors" (completed, but objects stay escrowed: Graph's
    #: synchronizationTaskExecutionResult); "Failed"; "Stopped".
    state: str
    time_began: datetime
    time_ended: datetime
    count_imported: int = 0
    count_exported: int = 0
    count_escrowed: int = 0
    count_deleted: int = 0
    error: ExecutionError | None = None


@dataclass(frozen=True, kw_only=True)
class Quarantine:
    current_began: datetime
    next_attempt: datetime | None
    reason: str
    series_began: datetime
    series_count: int
    error: ExecutionError | None = None


@dataclass(frozen=True, kw_only=True)
class IntegrationState:
    """What sluiced has learnt about an integration at run time (the config is separate).

    ``schedule_state`` and ``interval_s`` override the config when set through the API
    (pause, change of interval) and survive restarts.
    """

    integration_id: str
    schedule_state: str | None = None
    interval_s: float | None = None
    successive_failures: int = 0
    last_execution: Execution | None = None
    last_successful_execution: Execution | None = None
    last_successful_execution_with_exports: Execution | None = None
    last_full_sync_end: datetime | None = None
    quarantine: Quarantine | None = None
    disabled_reason: str | None = None
    escrows_pruned: bool = False
    steady_state_first: datetime | None = None
    steady_state_last: datetime | None = None
    #: Set by ``restart`` with ``ForceDeletes``: the next run may exceed the threshold.
    deletions_approved: bool = False
    #: The next run must be a full sync (the schema changed, the watermark was reset).
    full_sync_required: bool = False
    #: The schema set through the API (JSON), if any; validated before it is stored.
    schema: Mapping[str, Any] | None = None
    #: A hash of the schema the last complete full pass applied: a schema edited in the
    #: config since makes the next run a full one.
    schema_fingerprint: str | None = None


@dataclass(frozen=True, kw_only=True)
class Escrow:
    """One object that failed to sync, kept for retry.

    ``kind`` is ``source`` (the source gave something malformed; re-detected on every
    full read) or ``target`` (the target refused it; retried with backoff).
    """

    integration_id: str
    entity_type: str
    object_id: str
    kind: str
    reason: str
    attempts: int = 1
    first_failed: datetime
    last_failed: datetime
    next_retry: datetime
    pass_id: str | None = None


@dataclass(frozen=True, kw_only=True, slots=True, init=False)
class Link:
    """What the target holds for one source object: its id there, a hash of what was
    exported, the exported object itself (for plans, and to send only what changed),
    and when it was disabled (soft-deleted) if it was. ``encoded``, when given, is
    ``data`` as :func:`sluiced.codec.dumps` writes it (a store need not encode it again)."""

    source_id: str
    target_id: str
    hash: str
    seen_pass: str | None = None
    data: Mapping[str, Any] | None = None
    disabled_at: datetime | None = None
    encoded: str | None = field(default=None, compare=False, repr=False)

    # One is made per object on the hot path: set through the slots' own setters (the
    # generated __init__ of a frozen dataclass goes through object.__setattr__, slower).
    def __init__(
        self,
        *,
        source_id: str,
        target_id: str,
        hash: str,
        seen_pass: str | None = None,
        data: Mapping[str, Any] | None = None,
        disabled_at: datetime | None = None,
        encoded: str | None = None,
    ) -> None:
        (
            set_source_id,
            set_target_id,
            set_hash,
            set_seen_pass,
            set_data,
            set_disabled_at,
            set_encoded,
        ) = _LINK_SLOTS
        set_source_id(self, source_id)
        set_target_id(self, target_id)
        set_hash(self, hash)
        set_seen_pass(self, seen_pass)
        set_data(self, data)
        set_disabled_at(self, disabled_at)
        set_encoded(self, encoded)


_LINK_SLOTS = slot_setters(Link)
