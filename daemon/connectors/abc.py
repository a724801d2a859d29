"""The contracts of connectors: what a source reads and what a target applies.

A connector plugin returns :class:`ConnectorFactory` objects from the
``sluiced_connectors`` hook. The daemon asks a factory to validate its settings once,
when the config is loaded, and to open a :class:`Source` or :class:`Target` for each
job. All I/O is async and lives on these objects; hooks only hand them over.

Cursors are small JSON values chosen by the source: where a read continues after a
record. The engine stores them in the job's checkpoint, so a paused or crashed job
resumes with ``read(..., cursor=...)``. A source that cannot honour a stale cursor
(its data changed meanwhile) starts over; the engine's writes are idempotent.

Errors, by what the engine does with them (:mod:`sluiced.errors`):

* :class:`~sluiced.errors.TransientError`: retried with backoff inside the job (a read
  reopens at the last cursor); a job that still fails counts towards quarantine.
* :class:`~sluiced.errors.CredentialsError`, :class:`~sluiced.errors.ProtocolError`:
  retrying cannot help; the integration is quarantined at once.
* any other :class:`~sluiced.errors.SyncError`: the job fails with its message.
* :class:`~sluiced.errors.ObjectError` is never raised across these contracts: one
  object's failure is a :class:`Malformed` item (reading) or a failed :class:`OpResult`
  (writing), and the object goes to escrow while the rest syncs.

Cancellation: the engine runs every call inside the job's cancel scope, so any await may
be cancelled (a pause, a stop, the daemon shutting down). Nothing a source or target
does is taken for done until the engine has committed it with the job's checkpoint:
what was read is read again, what was applied is applied again.

:class:`~sluiced.testing.MemorySource`, :class:`~sluiced.testing.MemoryTarget` and
:class:`~sluiced.testing.MemoryConnector` implement these contracts in memory.
"""

from __future__ import annotations

from abc import ABC, abstractmethod
from collections.abc import AsyncIterator, Mapping, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, Protocol, runtime_checkable

from ..tables import TableReader
from .capabilities import TargetCapabilities
from .records import Gone, Malformed, Op, OpResult, Page, Record

__all__ = [
    "ConnectorContext",
    "ConnectorFactory",
    "EntityType",
    "Gone",
    "Malformed",
    "Op",
    "OpResult",
    "Page",
    "Record",
    "Source",
    "Target",
]


@runtime_checkable
class EntityType(Protocol):
    """What the ``sluiced_entity_types`` hook returns: one kind of object a connector
    understands beyond the generic ``user`` and ``group``.

    ``name`` is unique across plugins (two plugins defining it is a registry error);
    ``depends_on`` names the entity types its objects link to, which are synced first.
    A plugin adds whatever else its connectors need (queries, tables) to its own class;
    connectors find it in :attr:`ConnectorContext.entity_types`.
    """

    @property
    def name(self) -> str: ...

    @property
    def depends_on(self) -> Sequence[str]: ...


@dataclass(frozen=True, kw_only=True)
class ConnectorContext:
    """What a factory gets to open a source or target for one integration."""

    integration_id: str
    #: A directory the connector may keep files in (``<state_dir>/connectors/<id>``).
    state_dir: Path
    #: Entity types from every plugin's ``sluiced_entity_types``, by name.
    entity_types: Mapping[str, EntityType] = field(default_factory=dict)


class Source(ABC):
    """Reads objects of some entity types.

    ``endpoint`` names what it talks to (a URL, a file) for logs and circuit breakers.
    A source is opened for one job and closed with :meth:`aclose` when the job ends,
    however it ends.
    """

    endpoint: str = ""

    @abstractmethod
    async def watermark(self, entity_type: str) -> str | None:
        """The point up to which the source's data goes *now*, read before a pass.

        Returns:
            An opaque string the engine stores when the pass completes and hands back
            as ``since`` next time; ``None`` if the source cannot tell (every pass then
            reads everything).

        Raises:
            TransientError: worth retrying (with backoff).
            CredentialsError: the source rejected the credentials.
            SyncError: anything else that stops the job.

        Cancellation: nothing to undo; the engine asks again.
        """

    @abstractmethod
    def read(
        self, entity_type: str, *, since: str | None, cursor: Any, page_size: int
    ) -> AsyncIterator[Page]:
        """Yield pages of objects: all of them if *since* is None, else at least those
        changed after *since* (more is fine: unchanged objects are skipped by hash).

        Implemented as an async generator. Each page holds at most *page_size* items,
        in the source's order; each item's ``cursor`` is where a read continues after
        it, so ``read(..., cursor=c)`` yields what follows the item whose cursor is *c*
        (with the same *since*). Pages of a read with ``since=None`` are
        ``exhaustive``; so are those of a read with *since* given that reads every
        object anyway (it cannot tell what changed): every one of its pages, from the
        first, resumed ones too. The engine takes such a read as a full one for
        deletions: once it completes, the objects it did not yield as a Record are
        deprovisioned (so its pages must hold every object). What cannot be read is a
        :class:`Malformed` item, which makes the read incomplete (the engine then
        detects no deletions).

        A source that knows which objects were deleted since *since* (a change feed,
        LDAP's content synchronization) yields a :class:`Gone` item for each, with a
        cursor like any item; one that does not (timestamps) yields none, and its
        deletions are found by the full passes, which compare ids. Only a read with
        *since* given yields Gone items: they say what left since then, whether or not
        its pages are ``exhaustive`` (the engine deprovisions what they name either
        way: after an exhaustive one, with what it did not see; in a full pass it
        ignores them). A read names an object at most once: as a :class:`Record` if it
        is there, as a :class:`Gone` if it is not (a Gone for an id that the same page
        also holds as a Record is ignored).

        Raises (before the first page or between pages):
            TransientError: worth retrying; after a backoff the engine reopens the read
                (same *since*) after the last page this read yielded: at the cursor of
                that page's last item that has one, or at the cursor the read began with
                if it yielded none. The pages yielded are not read again, whether or not
                the engine has handled or committed them yet. After the integration's
                ``retry.attempts`` failures in a row, the error fails that entity type's
                pass (the job goes on with the other types).
            CredentialsError: the source rejected the credentials.
            SyncError: anything else that stops the job.

        Cancellation: a read may be cancelled mid-page, or abandoned between pages (a
        pause, a stop, a failure of the target). The engine always closes the iterator
        (``aclose()``), so release per-read resources (responses, open files, inner
        iterators) in ``finally`` blocks or ``async with``. Nothing read is taken for
        done until the engine commits its checkpoint: a job resumed after a pause, a
        stop or a restart reads from the cursor committed last.
        """

    @abstractmethod
    async def get_many(
        self, entity_type: str, ids: Sequence[str]
    ) -> Mapping[str, Record | Malformed]:
        """The objects with these ids, by id.

        Returns:
            A mapping with an entry for each id the source has; ids the source does
            not have are left out (the engine may then take the object for gone). An
            id the source may hold but could not read (its record is damaged, several
            records share it, or the read met something it could not make out) maps to
            a :class:`Malformed`: the engine then keeps the object as it is and never
            takes it for gone from the source.

        Raises:
            TransientError, CredentialsError, SyncError: as :meth:`read`.

        Cancellation: nothing to undo.
        """

    async def validate(self) -> str:
        """Check that the source can be read with its settings and credentials.

        Returns:
            What it found, for people (a server's version, a file's size).

        Raises:
            SyncError: what is wrong (``CredentialsError`` for rejected credentials,
                ``TransientError`` for an endpoint that does not answer).

        Cancellation: nothing to undo (the daemon gives up after a minute).
        """
        return "nothing to check"

    async def aclose(self) -> None:  # noqa: B027 - optional hook
        """Release connections and files. Called once when the daemon is done with the
        connector: when its job ends, however it ends, and after a validation or a
        single-object provision. Must not raise.

        Cancellation: a job's ``aclose`` runs shielded from cancellation but is cut
        short after 30 seconds (the other callers do not all shield it or bound it), so
        release what is held locally first and do not wait long on the network.
        """


class Target(TargetCapabilities, ABC):
    """Writes objects. ``entity_type`` here is the *target* object type: the schema's
    ``targetObjectName`` (the source entity type when the schema does not rename it).

    Beyond :meth:`apply`, a target may offer lookups by attribute and a count: see
    :mod:`sluiced.connectors.capabilities`.
    """

    endpoint: str = ""

    @abstractmethod
    async def apply(self, entity_type: str, ops: Sequence[Op]) -> Sequence[OpResult]:
        """Apply *ops* (a batch, at most the integration's ``batch_size``).

        Returns:
            One :class:`OpResult` per op, in order. A per-object failure (the target
            refused this object: a conflict, a quota, a bad value) is a result with
            ``ok=False``, never an exception: the object goes to escrow, the rest syncs.

        Raises (a failure of the whole call, nothing known to be applied):
            TransientError: worth retrying; the engine applies the same batch again.
            CredentialsError: the target rejected the credentials.
            SyncError: anything else that stops the job.

        Must be idempotent: applying the same ops again changes nothing more.
        A ``create`` of an object an earlier apply of the same op made updates that
        object (found by its key: an id attribute, a ``userName``) rather than making
        a second one; ``delete`` and ``disable`` of an object that is gone succeed.

        Cancellation: an apply may be cancelled mid-batch (a pause, a stop, the
        daemon shutting down), with part of the batch written. The engine commits
        links and checkpoint only after ``apply`` returned, so it replays the whole
        batch next time; idempotence makes that safe.
        """

    async def flush(self) -> None:
        """Make everything applied so far visible and durable.

        At the end of every job (and after each single-object provision) the engine
        awaits the flush with the integration's retries: a ``TransientError`` is retried
        with backoff up to ``retry.attempts`` times; when they run out, or at once for
        any other error, the error is raised and the job fails. A job is complete only
        once its flush has succeeded (for a file, once the file is durable).

        Before a job that pauses, stops or fails ends, the daemon flushes once more,
        without retries; a failure of that flush is logged as a warning and the job
        ends as it would have. Keep what could not be flushed for the next flush.

        Raises:
            TransientError, CredentialsError, SyncError: as :meth:`apply`.
        """

    async def validate(self) -> str:
        """Check that the target can be written; see :meth:`Source.validate`."""
        return "nothing to check"

    async def aclose(self) -> None:
        """Release connections and files; see :meth:`Source.aclose`."""


class ConnectorFactory(ABC):
    """Builds sources and targets of one kind, named ``name`` in the config."""

    name: str
    description: str = ""
    #: Which ends it can be: {"source", "target"}.
    roles: frozenset[str] = frozenset({"source", "target"})
    #: Its targets hold objects under their source ids: every target it opens is a
    #: :class:`~sluiced.connectors.SourceKeyedTarget`, and one that is not says so
    #: here. The daemon reads it without opening a target: an integration into such a
    #: target takes no ``schema`` (records are written as the source returns them)
    #: and has no dry runs and no provisioning on demand.
    keyed_by_source_ids: bool = False

    @abstractmethod
    def parse_settings(self, reader: TableReader) -> Any:
        """Validate the connector's table and return settings for ``open_*``.

        Called when the config is loaded, with no I/O. ``reader`` records problems
        (its ``get_*`` methods name the key and what was expected); call
        ``reader.finish()`` to report unknown keys. Returns anything ``open_source`` /
        ``open_target`` understand; raises nothing for a bad table (the problems are
        reported together).
        """

    def open_source(self, settings: Any, ctx: ConnectorContext) -> Source:
        """A source for one job; no I/O happens until its methods are awaited.

        Raises:
            TypeError: this connector cannot be a source.
        """
        raise TypeError(f"{self.name} cannot be a source")

    def open_target(self, settings: Any, ctx: ConnectorContext) -> Target:
        """A target for one job; see :meth:`open_source`."""
        raise TypeError(f"{self.name} cannot be a target")
