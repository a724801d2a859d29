"""What a mirror offers beyond the contracts: the capabilities of targets that hold a
source's objects under the source's ids, and of the sources they mirror.

A source or target offers a capability by deriving from its ABC as well; the engine
looks for it with ``isinstance`` and uses it when it is there (see README, "Plugins"):

* :class:`TransactionalTarget`: rows, the job's :class:`Checkpoint` and the rows of the
  provisioning log they make (its outbox) commit in one transaction (exactly-once), and
  the target keeps its watermarks;
* :class:`SourceKeyedTarget`: the target is its own link table;
* :class:`LinkingSource`: what a record links to, written first;
* :class:`ReconcilingTarget`: a :class:`Reconciler` finds what the source's reads
  cannot show (deletions, merges), writing through the engine's :class:`Writes`;
* :class:`PlanningTarget`: the target's own job types, as a :class:`JobPlan`.
"""

from __future__ import annotations

from abc import ABC, abstractmethod
from collections.abc import Awaitable, Callable, Mapping, Sequence
from dataclasses import dataclass, field
from typing import Any

from .abc import Source
from .records import Op, OpResult

__all__ = [
    "Checkpoint",
    "JobPlan",
    "LinkingSource",
    "PlanningTarget",
    "Reconciler",
    "ReconcilingTarget",
    "SourceKeyedTarget",
    "Survey",
    "TransactionalTarget",
    "Writes",
]


@dataclass(frozen=True, kw_only=True)
class Checkpoint:
    """Where a job stands, as a :class:`TransactionalTarget` commits it with its rows."""

    job_id: str
    #: The job's position (a JSON object) after the commit.
    position: Mapping[str, Any]
    #: The job's counts after the commit (:class:`~sluiced.models.JobStats` fields).
    stats: Mapping[str, int]
    #: Entries of the target's own state to commit with it (None removes one).
    state: Mapping[str, str | None] = field(default_factory=dict)
    #: Watermarks of entity types whose pass completes with this commit.
    watermarks: Mapping[str, str] = field(default_factory=dict)
    #: Rows of the provisioning log this commit makes, to add to the target's outbox:
    #: text the engine encoded (opaque to the target) under keys unique across jobs.
    changes: Mapping[str, str] = field(default_factory=dict)
    #: Keys of rows of the outbox the store now holds, removed from it by this commit.
    logged: Sequence[str] = ()


class TransactionalTarget(ABC):
    """A target that commits its rows and the job's checkpoint in one transaction, so a
    job resumes exactly where its writes are: nothing applied twice or lost (a local
    database, a mirror). Other targets apply idempotently instead.

    The rows of the provisioning log that a commit makes go into the target's *outbox*
    in the same transaction (:attr:`Checkpoint.changes`). The engine copies them into
    the store, which keeps each key once, and then has them removed
    (:attr:`Checkpoint.logged`, :meth:`forget_changes`); at the start of every job it
    first moves whatever the outbox still holds (:meth:`outbox`). A crash at any moment
    leaves every change logged exactly once."""

    @abstractmethod
    async def apply(
        self, entity_type: str, ops: Sequence[Op], *, checkpoint: Checkpoint | None = None
    ) -> Sequence[OpResult]:
        """Apply *ops* (none is fine) and, with them, record *checkpoint* (its state
        entries, watermarks, outbox rows to add and outbox rows to remove too): all of
        it is committed or none. An outbox row added under a key the outbox holds
        replaces it; a key to remove that it lacks is ignored. Returns one result per
        op, as :meth:`Target.apply`.

        Raises:
            Exception: what failed; nothing of the call is committed. On cancellation
                the call is committed whole or not at all."""

    @abstractmethod
    async def checkpoint(self, job_id: str) -> Checkpoint | None:
        """The checkpoint last committed for *job_id* (None: none). It outlives the
        job's end until :meth:`forget_checkpoints` drops it."""

    @abstractmethod
    async def forget_checkpoints(self, over: Callable[[str], Awaitable[bool]]) -> int:
        """Drop the checkpoints of the jobs for which ``await over(job_id)`` is true
        (the store says they can never run again). Returns how many were dropped."""

    @abstractmethod
    async def outbox(self, limit: int) -> Mapping[str, str]:
        """Up to *limit* rows of the outbox (any job's), text by key, the smallest keys
        first: those committed with a checkpoint and not removed since. They are the
        target's: they outlive the connection (a new file has none).

        Raises:
            Exception: the target could not be read."""

    @abstractmethod
    async def forget_changes(self, keys: Sequence[str]) -> None:
        """Remove the rows of *keys* from the outbox (the store holds them), in one
        transaction; keys it lacks are ignored.

        Raises:
            Exception: what failed; nothing is removed. On cancellation the rows are
                removed all or none."""

    @abstractmethod
    async def watermarks(self) -> Mapping[str, str]:
        """The watermarks committed with the passes that completed, by entity type. They
        are the target's: a target that loses its data (a new file) loses them too,
        and its next passes read everything."""


class SourceKeyedTarget(ABC):
    """A target holding objects under their source ids: it is its own link table (the
    engine keeps no links for it). Ops carry the source id; ``target_id`` is the same.

    The engine writes records into it as the source returns them, with no schema. The
    factory that opens such targets declares it with
    :attr:`~sluiced.connectors.ConnectorFactory.keyed_by_source_ids` (its integrations
    then take no ``schema``), and opens no other kind."""

    @abstractmethod
    async def missing(self, entity_type: str, ids: Sequence[str]) -> list[str]:
        """Which of *ids* the target does not hold, each once, in the order given."""


class LinkingSource(ABC):
    """A source that says what its records link to, so that a target keyed by source
    ids gets the linked objects it lacks first (read with :meth:`Source.get_many`)."""

    @abstractmethod
    def links(self, entity_type: str, data: Mapping[str, Any]) -> Mapping[str, set[str]]:
        """The ids of the objects *data* (a record of *entity_type*) links to, by entity
        type."""


@dataclass(frozen=True, kw_only=True)
class Survey:
    """What a :class:`Reconciler` reads before a pass: the source's watermark, and facts
    read with it (counts, say; JSON), kept with the pass and handed to ``reconcile``."""

    watermark: str | None
    facts: Mapping[str, Any] = field(default_factory=dict)


class Writes(ABC):
    """What the engine offers a :class:`Reconciler`: writes that move the job's counts,
    each committed (with the job's checkpoint, for a transactional target) and counted
    like the pass's own."""

    page_size: int

    @abstractmethod
    async def log(self, level: str, message: str) -> None:
        """Add a line to the job's log."""

    @abstractmethod
    async def call(self, request: Callable[[], Awaitable[Any]]) -> Any:
        """``await request()`` (one request to the source) with the job's retries, behind
        the source's circuit breaker; each retry is logged. Raises what the last attempt
        raised."""

    @abstractmethod
    async def apply(
        self,
        entity_type: str,
        data: Sequence[Mapping[str, Any]],
        state: Mapping[str, str | None] | None = None,
    ) -> None:
        """Write objects read outside the pass's pages (re-reads), what they link to
        first, counted as processed and created or updated; *state* (the target's own
        entries) commits with the last of them."""

    @abstractmethod
    async def delete(
        self, entity_type: str, ids: Sequence[str], state: Mapping[str, str | None] | None = None
    ) -> int:
        """Delete objects gone from the source, with *state*, in one commit. Returns
        how many the target held (counted as deleted)."""


class Reconciler(ABC):
    """Finds what a source changes without a trace its reads can show (deletions,
    merges): the engine calls it at set points of every pass, full and incremental, and
    applies what it finds through :class:`Writes`."""

    @abstractmethod
    async def survey(self, entity_type: str) -> Survey:
        """Read the watermark, and the facts ``reconcile`` compares, before a pass. (A
        reconciler sends its requests through :meth:`Writes.call`: they are retried.)"""

    @abstractmethod
    async def owed(self, entity_type: str, writes: Writes) -> None:
        """Do what an earlier reconciliation owes and has not done (a crash, a pause or
        a failure came in between): at the start of every pass, before ``survey``."""

    @abstractmethod
    async def reconcile(
        self, entity_type: str, *, full: bool, facts: Mapping[str, Any], writes: Writes
    ) -> None:
        """After the pass's read phase: make the target's set of *entity_type* equal
        the source's.

        Raises:
            SyncError: the pass fails (nothing unconfirmed is deleted).
        """


class ReconcilingTarget(ABC):
    """A target that can reconcile itself with some sources (a mirror with its own
    source), beyond what the engine's unseen-links deletion can find."""

    @abstractmethod
    def reconciler(self, source: Source, writes: Writes) -> Reconciler | None:
        """The reconciler for *source* (None: this source is not one it knows). Its
        requests to the source go through ``writes.call``, retried there once; *source*
        itself is the engine's, which retries around its reads, and is left as it is."""


@dataclass(frozen=True, kw_only=True)
class JobPlan:
    """How the engine runs a job of a :class:`PlanningTarget`."""

    #: The entity types, in order.
    entity_types: Sequence[str]
    #: Every pass full.
    full: bool = False
    #: A pass "by ids": these objects of ``entity_types[0]``, read with ``get_many``;
    #: one the source does not have is an error (logged with *missing*, ``{id}`` and
    #: ``{type}`` in it replaced) and leaves the target.
    ids: Sequence[str] | None = None
    missing: str = "{id} does not exist in the source"
    #: With ``ids``: objects of other entity types read by id the same way in the same
    #: job, after them, type by type in the order of ``entity_types``.
    more_ids: Mapping[str, Sequence[str]] = field(default_factory=dict)
    #: Errors found in the job's params (ids that cannot be one, say): logged and
    #: counted once, when the job first starts.
    rejected: Sequence[str] = ()
    #: Lines of information about the params, logged when the job first starts.
    notes: Sequence[str] = ()
    #: Objects a page (a batch of ids), instead of the integration's ``batch_size``.
    batch_size: int | None = None


class PlanningTarget(ABC):
    """A target whose integrations have job types of their own (a mirror's sync of
    chosen entity types, or of objects named by id) that the engine runs."""

    @abstractmethod
    def plan_job(
        self, job_type: str, params: Mapping[str, Any], configured: Sequence[str]
    ) -> JobPlan | None:
        """The plan of a job of *job_type* with *params* over the *configured* entity
        types; None: the engine's own (full, incremental, selective)."""
