"""The store interface: every piece of state the daemon keeps between runs.

Implementations: :class:`~sluiced.store.memory.MemoryStore` (tests),
:class:`~sluiced.store.sqlite.SqliteStore` (the daemon's default) and
:class:`~sluiced.store.postgres.PostgresStore` (``store = "postgresql://..."``).
``tests/test_store_contract.py`` runs one suite against all three; a new backend must
pass it.

Contract for every implementation:

* Each method is atomic: it happens entirely or not at all.
* Writes are cancel-safe: once a write method has been called, a cancellation of the
  caller does not undo or tear it; the method returns only after the write is durable
  (for SQLite: committed in WAL mode). A cancelled :meth:`Store.commit_batch` has
  committed all of its batch or nothing of it, never a part.
* Reads may be cancelled at any await; they change nothing.
* Returned records are immutable snapshots.
* Every method may raise :class:`~sluiced.store.StoreUnavailable` when the store cannot
  be read or written now (a full or read-only disk, an I/O error, a database server that
  is down or unreachable). A write that raises
  it wrote nothing; the daemon stays up and the caller tries again later. Nothing else
  is raised for a problem of the store's medium.
"""

from __future__ import annotations

from abc import ABC, abstractmethod
from collections.abc import Callable, Collection, Mapping, Sequence
from dataclasses import dataclass, field
from datetime import datetime
from typing import Any, Protocol

import trio

from ..changes import Change, ChangeQuery
from ..models import Escrow, IntegrationState, Job, JobStatus, Link, LogEntry

__all__ = ["BatchCommit", "JobHistory", "StagedDeletion", "Store", "StoreWatcher"]


class StoreWatcher(Protocol):
    """Told of job writes once they are durable (the daemon's live job events).

    Called synchronously in the store's caller's task: must return at once and not raise.
    """

    def job_saved(self, job: Job) -> None: ...

    def logs_appended(self, job_id: str, entries: Sequence[LogEntry]) -> None:
        """*entries* carry the ``seq`` the store gave them."""


@dataclass(frozen=True, kw_only=True)
class StagedDeletion:
    integration_id: str
    entity_type: str
    source_id: str
    target_id: str
    staged_at: datetime


@dataclass(frozen=True, kw_only=True)
class JobHistory:
    """Aggregates over an integration's finished jobs (seed 002's status ``stats``)."""

    total_jobs: int
    succeeded: int
    finished: int
    average_duration_ms: float | None


@dataclass(frozen=True, kw_only=True)
class BatchCommit:
    """Everything one applied batch changes, committed in one transaction.

    The job (with its new checkpoint, stats and progress) is saved; links of objects
    now in the target are upserted, links of deleted objects removed; objects seen by a
    full pass are marked with ``seen_pass``; escrows added and removed. When the pass is
    complete, ``watermark`` is stored and, if it read everything (``exhaustive``), the
    source escrows not met again by this pass (``seen_pass``) are cleared.

    ``stale_watermarks`` are dropped first: the entity types whose objects reference
    objects whose links this batch changed. Their next pass has no baseline and so reads
    every object again, whether this job goes on, fails, stops or crashes; the watermark
    comes back when a pass of that type completes.

    ``changes`` are appended to the provisioning log in the same transaction: what the
    batch's links, escrows and checkpoint say was done is logged exactly when they are
    committed. ``keyed_changes`` too, each under a key the store keeps once: one whose
    key it holds already is left out (a change a target's outbox holds until the store
    has it, see :class:`~sluiced.connectors.TransactionalTarget`).
    """

    job: Job
    entity_type: str
    upsert_links: Sequence[Link] = ()
    delete_links: Sequence[str] = ()
    seen_pass: str | None = None
    seen_ids: Sequence[str] = ()
    add_escrows: Sequence[Escrow] = ()
    remove_escrows: Sequence[str] = ()
    #: Set when the pass over ``entity_type`` completes.
    watermark: str | None = None
    pass_complete: bool = False
    #: The completed pass read every object: source escrows it did not meet again are
    #: stale (the problem is gone) and are cleared.
    exhaustive: bool = False
    staged_deletions: Sequence[StagedDeletion] = field(default_factory=tuple)
    #: Entity types (of the same integration) whose watermarks are dropped.
    stale_watermarks: Sequence[str] = ()
    #: Rows of the provisioning log (each is given the next id). A ``drop`` is written
    #: only if the escrow it names is there when the commit begins (one removed
    #: meanwhile, by an operator say, logged its own drop).
    changes: Sequence[Change] = ()
    #: Rows of the provisioning log under their keys (those the store holds left out).
    keyed_changes: Sequence[tuple[str, Change]] = ()


class Store(ABC):
    """Async access to the daemon's state. See the module docstring for the contract.

    Every implementation tells :attr:`watcher` (if set) of each job it saved
    (``save_job``, ``commit_batch``) and each batch of log lines it appended, after the
    write is durable and in order, through :meth:`_saw_job` and :meth:`_saw_logs`.
    """

    watcher: StoreWatcher | None = None

    def _saw_job(self, job: Job) -> None:
        if self.watcher is not None:
            self.watcher.job_saved(job)

    def _saw_logs(self, job_id: str, entries: Sequence[LogEntry]) -> None:
        if self.watcher is not None and entries:
            self.watcher.logs_appended(job_id, entries)

    async def check(self) -> str | None:
        """Whether the store works: None, or what is wrong (it cannot be read, or its
        last write failed). Never raises ``StoreUnavailable`` (it returns its message)."""
        try:
            await self.list_jobs(limit=0)
        except Exception as exc:
            return str(exc)
        return None

    # -- lifecycle ------------------------------------------------------------------
    @abstractmethod
    async def aclose(self) -> None:
        """Release resources once the writes under way are done; the store is not used
        afterwards (:class:`~sluiced.store.SqliteStore` raises RuntimeError)."""

    # -- jobs -----------------------------------------------------------------------
    @abstractmethod
    async def save_job(self, job: Job) -> None:
        """Insert or replace *job* (all fields, checkpoint included), then tell the
        :attr:`watcher`. Raises StoreUnavailable (nothing written)."""

    @abstractmethod
    async def get_job(self, job_id: str) -> Job | None:
        """The job, or None if there is no such job."""

    @abstractmethod
    async def list_jobs(
        self,
        *,
        statuses: Collection[JobStatus] | None = None,
        integration_id: str | None = None,
        limit: int | None = 20,
    ) -> tuple[list[Job], int]:
        """Newest first, filtered; returns up to *limit* jobs (all with None) and the
        total that matched."""

    @abstractmethod
    async def delete_job(self, job_id: str, *, delete_logs: bool) -> bool:
        """Delete the job (and its logs if asked); returns False if there was no such
        job."""

    @abstractmethod
    async def append_logs(self, job_id: str, entries: Sequence[LogEntry]) -> None:
        """Append to the job's log, keeping only the newest ``log_limit`` entries.

        Each line gets the next ``seq`` of its job (1, 2, ...; never reused while the
        job's log exists, trimmed lines included), then the :attr:`watcher` is told
        with those ``seq``. Raises StoreUnavailable (nothing appended)."""

    @abstractmethod
    async def get_logs(
        self, job_id: str, *, limit: int | None = None, after: int | None = None
    ) -> list[LogEntry]:
        """Oldest first, with their ``seq``; with *after*, only lines whose ``seq`` is
        greater; with *limit*, the newest *limit* of those."""

    @abstractmethod
    async def job_history(self, integration_id: str) -> JobHistory:
        """Aggregates over the integration's finished jobs (zeros if it has none)."""

    # -- integrations ---------------------------------------------------------------
    @abstractmethod
    async def get_state(self, integration_id: str) -> IntegrationState:
        """The stored state, or a fresh ``NotRun`` one."""

    def state_lock(self, integration_id: str) -> trio.Lock:
        """The lock every read-change-write of the integration's state in this process
        holds from its :meth:`get_state` to its :meth:`put_state`, so that no write
        puts back a state read before another's (a pause undone by a job's end). Across
        nodes, only the node holding the integration writes its state."""
        locks: dict[str, trio.Lock] | None = self.__dict__.get("_state_locks")
        if locks is None:
            locks = self.__dict__["_state_locks"] = {}
        return locks.setdefault(integration_id, trio.Lock())

    @abstractmethod
    async def put_state(self, state: IntegrationState) -> None:
        """Insert or replace the state of ``state.integration_id``."""

    @abstractmethod
    async def list_states(self) -> list[IntegrationState]:
        """Every stored state (integrations never run have none)."""

    @abstractmethod
    async def delete_integration(self, integration_id: str, *, keep_changes: bool = False) -> None:
        """Forget everything about the integration: its definition, state, jobs and
        logs, watermarks, links, escrows, staged deletions and provisioning log (with
        *keep_changes*, all but its provisioning log, which retention prunes)."""

    @abstractmethod
    async def put_definition(self, integration_id: str, table: Mapping[str, Any]) -> None:
        """Keep the definition of an integration created through the API (the same
        table as in ``config.toml``), so it survives restarts."""

    @abstractmethod
    async def list_definitions(self) -> dict[str, dict[str, Any]]:
        """The kept definitions by integration id (see :meth:`put_definition`)."""

    # -- watermarks, links, escrows ---------------------------------------------------
    @abstractmethod
    async def get_watermarks(self, integration_id: str) -> Mapping[str, str]:
        """The watermark of each entity type whose last pass completed, by type (see
        :attr:`BatchCommit.watermark`)."""

    @abstractmethod
    async def clear_watermarks(self, integration_id: str) -> None:
        """Forget every watermark of the integration: its next passes read everything."""

    @abstractmethod
    async def get_links(
        self, integration_id: str, entity_type: str, source_ids: Collection[str]
    ) -> dict[str, Link]:
        """The links of those source ids, by source id; ids with no link are left out."""

    @abstractmethod
    async def unseen_links(
        self, integration_id: str, entity_type: str, pass_id: str, *, after: str | None, limit: int
    ) -> list[Link]:
        """Links not marked by *pass_id*, ordered by source id, after *after*."""

    @abstractmethod
    async def count_links(self, integration_id: str, entity_type: str) -> int:
        """How many objects of the type are linked (counted by the store)."""

    @abstractmethod
    async def clear_links(self, integration_id: str) -> None:
        """Forget every link of the integration: its objects are matched again."""

    @abstractmethod
    async def list_escrows(
        self,
        integration_id: str,
        *,
        entity_type: str | None = None,
        kind: str | None = None,
        due_before: datetime | None = None,
        limit: int | None = None,
    ) -> list[Escrow]:
        """Ordered by next retry."""

    @abstractmethod
    async def count_escrows(self) -> dict[tuple[str, str], int]:
        """The number of escrows by (integration id, entity type), counted by the store
        (none are loaded); pairs without escrows are absent."""

    @abstractmethod
    async def drop_escrow(
        self,
        integration_id: str,
        entity_type: str,
        object_id: str,
        *,
        log: Callable[[Escrow], Change] | None = None,
    ) -> bool:
        """Remove one escrow; returns False if there was none. With *log*, the change
        ``log(escrow)`` makes of the removed escrow is appended to the provisioning log
        in the same transaction (nothing is logged when there was none)."""

    @abstractmethod
    async def retry_escrow_at(
        self, integration_id: str, entity_type: str, object_id: str, when: datetime
    ) -> bool:
        """Make the escrow due at *when* (an operator's "retry now"); False if there is none."""

    @abstractmethod
    async def clear_escrows(
        self, integration_id: str, *, log: Callable[[Escrow], Change] | None = None
    ) -> None:
        """Remove every escrow of the integration; with *log*, append the change
        ``log(escrow)`` makes of each to the provisioning log in the same transaction."""

    @abstractmethod
    async def list_staged_deletions(self, integration_id: str) -> list[StagedDeletion]:
        """Deletions the deletion gate held back, awaiting an operator's decision."""

    @abstractmethod
    async def clear_staged_deletions(self, integration_id: str) -> None:
        """Forget the integration's staged deletions (they were approved or rejected)."""

    # -- the provisioning log ----------------------------------------------------------
    @abstractmethod
    async def list_changes(self, integration_id: str, query: ChangeQuery) -> list[Change]:
        """Up to ``query.limit`` of the integration's changes that match *query*, newest
        first (by time, then by id), each with its ``id``."""

    @abstractmethod
    async def add_changes(self, changes: Sequence[tuple[str, Change]]) -> int:
        """Append *changes* to the provisioning log, each under its key (a string the
        store keeps once), in one transaction, leaving out those whose key it holds: a
        change copied twice is logged once. Returns how many were appended.

        Raises:
            StoreUnavailable: nothing was appended.
        """

    @abstractmethod
    async def logged_integrations(self) -> list[str]:
        """The ids of the integrations that have changes in the provisioning log,
        sorted (configured or not: the log of a deleted integration stays until pruned)."""

    @abstractmethod
    async def prune_changes(self, integration_id: str, before: datetime, *, limit: int) -> int:
        """Delete up to *limit* of the integration's changes older than *before*, the
        oldest first, in one transaction; returns how many were deleted (fewer than
        *limit*: none older is left)."""

    # -- the sync engine's write ----------------------------------------------------
    @abstractmethod
    async def commit_batch(self, batch: BatchCommit) -> None:
        """Apply *batch* in one transaction (see :class:`BatchCommit`), then tell the
        :attr:`watcher` of the job saved.

        Raises:
            StoreUnavailable: nothing of the batch was committed; the engine applies the
                batch to the target again later (targets are idempotent).

        Cancellation: the transaction is shielded: a cancelled call has committed all
        of the batch or nothing of it, and returns (or unwinds) only once that is
        durable.
        """
