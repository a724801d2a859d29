"""The contracts of connectors: what a source reads and what a target applies.

A connector plugin returns :class:`ConnectorFactory` objects from the
``sluiced_connectors`` hook. The daemon asks a factory to validate its settings once,
when the config is loaded, and to open a :class:`Source` or :class:`Target` for each
job. All I/O is async and lives on these objects; hooks only hand them over.

Cursors are small JSON values chosen by the source: where a read continues after a
record. The engine stores them in the job's checkpoint, so a paused or crashed job
resumes with ``read(..., cursor=...)``. A source that cannot honour a stale cursor
(its data changed meanwhile) starts over; the engine's writes are idempotent.
"""

from __future__ import annotations

from abc import ABC, abstractmethod
from collections.abc import AsyncIterator, Awaitable, Callable, Mapping, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from .config import ConnectorConfig
from .errors import ConfigError
from .tables import Problems, TableReader

__all__ = [
    "Checkpoint",
    "ConnectorContext",
    "ConnectorFactory",
    "JobPlan",
    "LinkingSource",
    "Malformed",
    "Op",
    "OpResult",
    "Page",
    "PlanningTarget",
    "Reconciler",
    "ReconcilingTarget",
    "Record",
    "Source",
    "SourceKeyedTarget",
    "Survey",
    "Target",
    "TransactionalTarget",
    "Writes",
    "parse_connector",
]


@dataclass(frozen=True, kw_only=True)
class Record:
    """One object read from a source."""

    id: str
    data: Mapping[str, Any]
    #: Where a read continues after this record.
    cursor: Any = None


@dataclass(frozen=True, kw_only=True)
class Malformed:
    """Something in the source that is not a valid object; it is escrowed with ``reason``.

    ``key`` identifies it for people (``people.jsonl:17``). What could not be read may
    be any object, one the target holds too: a read that yields a Malformed item is not
    complete, and the engine detects no deletions from it. A source yields one for
    everything it knows it could not read (bytes it cannot decode, a record that does
    not end, an id that several records share), never a silently altered object.
    """

    key: str
    reason: str
    cursor: Any = None


@dataclass(frozen=True, kw_only=True)
class Page:
    items: Sequence[Record | Malformed]
    #: Share of the pass done after this page (0..1), if the source can tell.
    fraction: float | None = None
    #: True if this read covers every object of the entity type (not just changes).
    exhaustive: bool = False


@dataclass(frozen=True, kw_only=True)
class Op:
    """One change to a target object.

    ``kind`` is ``create``, ``update`` (``data`` holds the mapped attributes; the target
    keeps attributes it is not given), ``disable`` (soft delete: ``active: false`` or what
    the target calls it) or ``delete``. ``previous`` is what was last exported for the
    object (None if unknown, e.g. matched by attributes), so a target may send only what
    changed. ``enable`` asks an update to re-enable an object that was disabled.
    """

    kind: str
    source_id: str
    target_id: str | None = None
    data: Mapping[str, Any] | None = None
    previous: Mapping[str, Any] | None = None
    enable: bool = False


@dataclass(frozen=True, kw_only=True)
class OpResult:
    ok: bool
    target_id: str | None = None
    error: str | None = None
    #: For a failure: a later retry may succeed.
    transient: bool = False


@dataclass(frozen=True, kw_only=True)
class ConnectorContext:
    integration_id: str
    #: A directory the connector may keep files in (``<state_dir>/connectors/<id>``).
    state_dir: Path
    #: Entity types from every plugin's ``sluiced_entity_types``, by name.
    entity_types: Mapping[str, Any] = field(default_factory=dict)


class Source(ABC):
    """Reads objects of some entity types.

    ``endpoint`` names what it talks to (a URL, a file) for logs and circuit breakers.
    """

    endpoint: str = ""

    @abstractmethod
    async def watermark(self, entity_type: str) -> str | None:
        """The point up to which the source's data goes *now*, read before a pass.

        Stored when the pass completes and handed back as ``since`` next time. ``None``
        if the source cannot tell (every pass then reads everything).
        """

    @abstractmethod
    def read(
        self, entity_type: str, *, since: str | None, cursor: Any, page_size: int
    ) -> AsyncIterator[Page]:
        """Yield pages of objects: all of them if *since* is None, else at least those
        changed after *since* (more is fine: unchanged objects are skipped by hash).
        What cannot be read is a :class:`Malformed` item, which makes the read incomplete.

        Raises:
            TransientError: worth retrying; the engine reopens the read at the last
                committed cursor after a backoff.
        """

    @abstractmethod
    async def get_many(
        self, entity_type: str, ids: Sequence[str]
    ) -> Mapping[str, Record | Malformed]:
        """The objects with these ids; ids the source does not have are left out.

        An id the source may hold but could not read (its record is damaged, several
        records share it, or the read met something it could not make out) maps to a
        :class:`Malformed`: the engine then keeps the object as it is and never takes it
        for gone from the source.
        """

    async def validate(self) -> str:
        """Check that the source can be read with its settings and credentials; return
        what it found (a server's version, a file's size).

        Raises:
            SyncError: what is wrong (``CredentialsError`` for rejected credentials).
        """
        return "nothing to check"

    async def aclose(self) -> None:  # noqa: B027 - optional hook
        """Release connections and files."""


class Target(ABC):
    """Writes objects. ``entity_type`` here is the *target* object type: the schema's
    ``targetObjectName`` (the source entity type when the schema does not rename it)."""

    endpoint: str = ""

    @abstractmethod
    async def apply(self, entity_type: str, ops: Sequence[Op]) -> Sequence[OpResult]:
        """Apply *ops* and return one result per op, in order.

        Must be idempotent: applying the same ops again (after a crash, before the
        checkpoint was saved) changes nothing more. Per-object failures are results;
        a failure of the whole call raises (``TransientError`` to be retried).
        """

    async def find(
        self, entity_type: str, attribute: str, values: Sequence[Any]
    ) -> Mapping[Any, Sequence[str]] | None:
        """For matching: the ids of the objects whose *attribute* equals each of *values*
        (a value no object has may be left out). None: this target cannot look objects
        up, so only remembered links match.

        Raises:
            TransientError: worth retrying.
        """
        return None

    async def count(self, entity_type: str) -> int | None:
        """How many objects of *entity_type* the target holds (None: cannot tell). A
        pass that finds the target empty creates without looking each object up."""
        return None

    async def flush(self) -> None:  # noqa: B027 - optional hook
        """Make everything applied so far visible (end of a pass or job)."""

    async def validate(self) -> str:
        """Check that the target can be written; see :meth:`Source.validate`."""
        return "nothing to check"

    async def aclose(self) -> None:  # noqa: B027 - optional hook
        """Release connections and files."""


# -- Capabilities ---------------------------------------------------------------------------
# A source or target offers a capability by deriving from its ABC as well; the engine
# looks for it with ``isinstance`` and uses it when it is there.


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


class TransactionalTarget(ABC):
    """A target that commits its rows and the job's checkpoint in one transaction, so a
    job resumes exactly where its writes are: nothing applied twice or lost (a local
    database, the Stash mirror). Other targets apply idempotently instead."""

    @abstractmethod
    async def apply(
        self, entity_type: str, ops: Sequence[Op], *, checkpoint: Checkpoint | None = None
    ) -> Sequence[OpResult]:
        """Apply *ops* (none is fine) and, with them, record *checkpoint*: both are
        committed or neither. Returns one result per op, as :meth:`Target.apply`."""

    @abstractmethod
    async def checkpoint(self, job_id: str) -> Checkpoint | None:
        """The checkpoint last committed for *job_id* (None: none). It outlives the
        job's end until :meth:`forget_checkpoints` drops it."""

    @abstractmethod
    async def forget_checkpoints(self, over: Callable[[str], Awaitable[bool]]) -> int:
        """Drop the checkpoints of the jobs for which ``await over(job_id)`` is true
        (the store says they can never run again). Returns how many were dropped."""

    @abstractmethod
    async def watermarks(self) -> Mapping[str, str]:
        """The watermarks committed with the passes that completed, by entity type. They
        are the target's: a target that loses its data (a new file) loses them too,
        and its next passes read everything."""


class SourceKeyedTarget(ABC):
    """A target holding objects under their source ids: it is its own link table (the
    engine keeps no links for it). Ops carry the source id; ``target_id`` is the same."""

    @abstractmethod
    async def missing(self, entity_type: str, ids: Sequence[str]) -> list[str]:
        """Which of *ids* the target does not hold (in the order given)."""


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
        """The reconciler for *source*, which sends its requests through *writes*
        (None: this source is not one it knows)."""


@dataclass(frozen=True, kw_only=True)
class JobPlan:
    """How the engine runs a job of a :class:`PlanningTarget`."""

    #: The entity types, in order.
    entity_types: Sequence[str]
    #: Every pass full.
    full: bool = False
    #: A pass "by ids": these objects of ``entity_types[0]``, read with ``get_many``;
    #: one the source does not have is an error (logged with *missing*, ``{id}`` in it
    #: replaced) and leaves the target.
    ids: Sequence[str] | None = None
    missing: str = "{id} does not exist in the source"
    #: Errors found in the job's params (ids that cannot be one, say): logged and
    #: counted once, when the job first starts.
    rejected: Sequence[str] = ()
    #: Lines of information about the params, logged when the job first starts.
    notes: Sequence[str] = ()
    #: Objects a page (a batch of ids), instead of the integration's ``batch_size``.
    batch_size: int | None = None


class PlanningTarget(ABC):
    """A target whose integrations have job types of their own (the Stash mirror's
    ``sync`` and ``sync_scenes``) that the engine runs."""

    @abstractmethod
    def plan_job(
        self, job_type: str, params: Mapping[str, Any], configured: Sequence[str]
    ) -> JobPlan | None:
        """The plan of a job of *job_type* with *params* over the *configured* entity
        types; None: the engine's own (full, incremental, selective)."""


class ConnectorFactory(ABC):
    """Builds sources and targets of one kind, named ``name`` in the config."""

    name: str
    description: str = ""
    #: Which ends it can be: {"source", "target"}.
    roles: frozenset[str] = frozenset({"source", "target"})

    @abstractmethod
    def parse_settings(self, reader: TableReader) -> Any:
        """Validate the connector's table (``reader`` records problems; call
        ``reader.finish()`` to report unknown keys) and return settings for ``open_*``."""

    def open_source(self, settings: Any, ctx: ConnectorContext) -> Source:
        raise TypeError(f"{self.name} cannot be a source")

    def open_target(self, settings: Any, ctx: ConnectorContext) -> Target:
        raise TypeError(f"{self.name} cannot be a target")


@dataclass(frozen=True, kw_only=True)
class ParsedConnector:
    factory: ConnectorFactory
    settings: Any
    config: ConnectorConfig = field(repr=False)


def parse_connector(
    cfg: ConnectorConfig,
    role: str,
    factories: Mapping[str, ConnectorFactory],
    *,
    problems: Problems,
    base_dir: Path,
    confine: Sequence[Path] | None = None,
) -> ParsedConnector | None:
    """Validate one source or target table with its factory; problems are recorded.
    With *confine*, every path setting (read with ``get_path``) must lie inside one of
    those directories."""
    factory = factories.get(cfg.connector)
    if factory is None:
        known = ", ".join(f'"{n}"' for n in sorted(factories)) or "none loaded"
        problems.add(f"{cfg.key}.connector", f'"{cfg.connector}"', f"a connector name ({known})")
        return None
    if role not in factory.roles:
        problems.add(
            f"{cfg.key}.connector", f'"{cfg.connector}"', f"a connector that can be a {role}"
        )
        return None
    reader = TableReader(
        cfg.settings, path=cfg.key, problems=problems, base_dir=base_dir, confine=confine
    )
    reader.ignore("connector")
    settings = factory.parse_settings(reader)
    return ParsedConnector(factory=factory, settings=settings, config=cfg)


def raise_problems(problems: Problems) -> None:
    if problems.items:
        raise ConfigError(problems.items)
