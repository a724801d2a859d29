"""In-memory connectors for tests: the twins of :mod:`sluiced.connectors`.

Like httpx's ``MockTransport``, they let a plugin's (or the daemon's) tests run the real
engine with no network or disk: deterministic, fast, and with hooks to make them fail.

* :class:`MemorySource` holds objects a test edits (:meth:`~MemorySource.put`,
  :meth:`~MemorySource.delete`); entries of :attr:`~MemorySource.malformed` are read
  as :class:`~sluiced.connectors.Malformed` items; with ``report_deletions`` its
  incremental reads yield a :class:`~sluiced.connectors.Gone` item for each deletion.
* :class:`MemoryTarget` applies ops to dicts a test inspects (:meth:`~MemoryTarget.plain`);
  :attr:`~MemoryTarget.reject` refuses single objects.
* :class:`MemoryConnector` is a :class:`~sluiced.connectors.ConnectorFactory` named
  ``memory`` that hands the same source and target to every job, so a test sees what
  the daemon did.

Both count the calls of each method (``calls["apply"]``) and can be told to fail:
``fail("apply", after=2)`` makes the third ``apply`` from now raise a new
:class:`~sluiced.errors.TransientError` (or a new copy of the error given), whatever
else is planned. A source also counts ``"page"``, each page it yields:
``fail("page", after=1)`` fails the second page from now (the next read's second page,
if no read is under way).
"""

from __future__ import annotations

from collections import Counter
from collections.abc import AsyncIterator, Callable, Mapping, Sequence
from dataclasses import dataclass, field
from typing import Any

import trio

from .connectors import (
    ConnectorContext,
    ConnectorFactory,
    Gone,
    Malformed,
    Op,
    OpResult,
    Page,
    Record,
    Source,
    Target,
)
from .errors import TransientError
from .tables import TableReader

__all__ = ["MemoryConnector", "MemorySource", "MemoryTarget"]


class _Faults:
    """Failures planned for the calls of some methods, and the count of every call."""

    def __init__(self) -> None:
        #: How many times each method was called (a source also counts ``"page"``).
        self.calls: Counter[str] = Counter()
        self._planned: dict[str, list[_Plan]] = {}

    def fail(
        self,
        method: str,
        *,
        times: int = 1,
        after: int = 0,
        error: Exception | Callable[[], Exception] | None = None,
    ) -> None:
        """Make calls of *method* raise, counting from now: the next *after* calls go
        through, the *times* calls that follow raise. Each of them raises a new
        exception: a :class:`~sluiced.errors.TransientError` if *error* is None, a copy
        of *error* if it is an exception (same type, ``args`` and attributes), else what
        calling *error* returns (an exception class or any factory).

        Plans are independent: each counts from the call of ``fail`` that made it, and a
        call that falls within several raises the error of the one planned first."""
        first = self.calls[method] + after + 1
        self._planned.setdefault(method, []).append(
            _Plan(first=first, last=first + times - 1, error=error)
        )

    def heal(self) -> None:
        """Drop every planned failure."""
        self._planned.clear()

    def _call(self, method: str) -> None:
        """Count a call of *method*; raise if a failure is planned for it."""
        self.calls[method] += 1
        n = self.calls[method]
        plans = [p for p in self._planned.get(method, []) if p.last >= n]
        self._planned[method] = plans
        for plan in plans:
            if plan.first <= n:
                raise plan.new_error(method)


@dataclass(frozen=True)
class _Plan:
    """Calls *first* to *last* of a method (counted over the object's life) raise."""

    first: int
    last: int
    error: Exception | Callable[[], Exception] | None

    def new_error(self, method: str) -> Exception:
        """A new exception for one failing call; see :meth:`_Faults.fail`."""
        error = self.error
        if error is None:
            return TransientError(f"{method} failed (planned)", retry_after=1)
        if isinstance(error, BaseException):
            fresh = type(error).__new__(type(error), *error.args)
            fresh.__dict__.update(error.__dict__)
            if "__notes__" in error.__dict__:
                fresh.__notes__ = list(error.__notes__)
            return fresh
        return error()


class MemorySource(_Faults, Source):
    """Objects by entity type and id, read in id order; a record's cursor is its id.

    The watermark is a counter that every edit bumps: an incremental read yields the
    objects put after *since*, and, with *report_deletions* (a source that knows its
    deletions, like a change feed), a :class:`~sluiced.connectors.Gone` item for each
    object deleted after *since* and not put again, in id order among the records
    (its cursor is its id too). Entries of :attr:`malformed` (entity type → {key:
    reason}) are yielded first by every read from the start, and answer ``get_many``
    for their key. :attr:`reads` lists ``(entity_type, cursor)`` of every read,
    :attr:`events` a line per page (``read 0``, ``read 1``, ...; share one list with a
    :class:`MemoryTarget` to see how reading and writing interleave), and
    :attr:`open_reads` the reads not yet finished or closed.
    """

    endpoint = "memory-source"

    def __init__(self, *, report_deletions: bool = False) -> None:
        super().__init__()
        self.objects: dict[str, dict[str, dict[str, Any]]] = {}
        self.malformed: dict[str, dict[str, str]] = {}
        self.version = 0
        self.changed_at: dict[tuple[str, str], int] = {}
        #: Incremental reads yield Gone items for the objects deleted after *since*.
        self.report_deletions = report_deletions
        #: The tombstones: (entity type, id) of each deleted object → the version then.
        self.deleted_at: dict[tuple[str, str], int] = {}
        self.reads: list[tuple[str, Any]] = []
        self.events: list[str] = []
        self.open_reads = 0

    def put(self, entity_type: str, ident: str, **data: Any) -> None:
        """Create or replace an object; its data is ``{"id": ident, **data}``."""
        self.version += 1
        self.objects.setdefault(entity_type, {})[ident] = {"id": ident, **data}
        self.changed_at[(entity_type, ident)] = self.version
        self.deleted_at.pop((entity_type, ident), None)

    def delete(self, entity_type: str, ident: str) -> None:
        """Remove an object, leaving a tombstone with the new version (read as a
        :class:`~sluiced.connectors.Gone` item with *report_deletions*). Raises KeyError
        if there is none."""
        self.version += 1
        del self.objects[entity_type][ident]
        self.deleted_at[(entity_type, ident)] = self.version

    async def watermark(self, entity_type: str) -> str | None:
        self._call("watermark")
        await trio.lowlevel.checkpoint()
        return f"{self.version:08d}"

    async def read(
        self, entity_type: str, *, since: str | None, cursor: Any, page_size: int
    ) -> AsyncIterator[Page]:
        self.reads.append((entity_type, cursor))
        self.open_reads += 1
        try:
            self._call("read")
            objs = self.objects.get(entity_type, {})
            ids = sorted(objs)
            if since is not None:
                ids = [i for i in ids if self.changed_at[(entity_type, i)] > int(since)]
            bad = self.malformed.get(entity_type, {})
            every: list[Record | Malformed | Gone] = [
                Malformed(key=k, reason=r) for k, r in bad.items()
            ]
            changed: list[Record | Gone] = [Record(id=i, data=dict(objs[i]), cursor=i) for i in ids]
            if since is not None and self.report_deletions:
                changed += [
                    Gone(id=i, cursor=i)
                    for (kind, i), at in self.deleted_at.items()
                    if kind == entity_type and at > int(since)
                ]
                changed.sort(key=lambda item: item.id)
            every += changed
            # A read resumed after *cursor* yields what follows it (no Malformed: they
            # come first), and counts what came before as done.
            items = every
            if cursor is not None:
                items = [x for x in changed if x.cursor is not None and x.cursor > cursor]
            before, whole = len(every) - len(items), len(every)
            for start in range(0, len(items), page_size):
                await trio.lowlevel.checkpoint()
                self._call("page")
                self.events.append(f"read {start // page_size}")
                yield Page(
                    items=items[start : start + page_size],
                    fraction=min(1.0, (before + start + page_size) / whole),
                    exhaustive=since is None,
                )
        finally:
            self.open_reads -= 1

    async def get_many(
        self, entity_type: str, ids: Sequence[str]
    ) -> Mapping[str, Record | Malformed]:
        self._call("get_many")
        await trio.lowlevel.checkpoint()
        objs = self.objects.get(entity_type, {})
        bad = self.malformed.get(entity_type, {})
        found: dict[str, Record | Malformed] = {}
        for i in ids:
            if i in bad:
                found[i] = Malformed(key=i, reason=bad[i])
            elif i in objs:
                found[i] = Record(id=i, data=dict(objs[i]), cursor=i)
        return found

    async def validate(self) -> str:
        self._call("validate")
        return f"{sum(map(len, self.objects.values()))} objects in memory"

    async def aclose(self) -> None:
        self.calls["aclose"] += 1


class MemoryTarget(_Faults, Target):
    """Objects by target type and target id (``t-<source id>`` when an op has none).

    :attr:`applied` lists the ops of every ``apply``; :attr:`reject` may refuse single
    ops: it returns None (apply), a reason (a permanent failure) or an
    :class:`~sluiced.connectors.OpResult` to answer with. Each ``apply`` first sleeps
    :attr:`apply_delay` seconds (cancellable, so a test can cancel it mid-batch).
    Without *can_find* / *can_count* the target offers no lookups / count.
    """

    endpoint = "memory-target"

    def __init__(self, *, can_find: bool = True, can_count: bool = True) -> None:
        super().__init__()
        self.can_find = can_find
        self.can_count = can_count
        self.objects: dict[str, dict[str, dict[str, Any]]] = {}
        self.applied: list[list[Op]] = []
        self.reject: Callable[[Op], str | OpResult | None] = lambda op: None
        self.apply_delay = 0.0
        self.events: list[str] = []
        self.finds: list[tuple[str, str, list[Any]]] = []

    async def apply(self, entity_type: str, ops: Sequence[Op]) -> Sequence[OpResult]:
        self._call("apply")
        self.applied.append(list(ops))
        n = len(self.applied) - 1
        self.events.append(f"apply start {n}")
        if self.apply_delay:
            await trio.sleep(self.apply_delay)
        else:
            await trio.lowlevel.checkpoint()
        table = self.objects.setdefault(entity_type, {})
        results = [self._apply_one(table, op) for op in ops]
        self.events.append(f"apply end {n}")
        return results

    def _apply_one(self, table: dict[str, dict[str, Any]], op: Op) -> OpResult:
        refusal = self.reject(op)
        if isinstance(refusal, OpResult):
            return refusal
        if refusal:
            return OpResult(ok=False, error=refusal)
        tid = op.target_id or f"t-{op.source_id}"
        if op.kind == "delete":
            table.pop(tid, None)
        elif op.kind == "disable":
            if tid in table:
                table[tid] = {**table[tid], "active": False}
        elif op.kind == "update":
            table[tid] = {**table.get(tid, {}), **(op.data or {})}
            if op.enable:
                table[tid]["active"] = (op.data or {}).get("active", True)
        else:
            table[tid] = dict(op.data or {})
        return OpResult(ok=True, target_id=tid)

    async def count(self, entity_type: str) -> int | None:
        self._call("count")
        await trio.lowlevel.checkpoint()
        return len(self.objects.get(entity_type, {})) if self.can_count else None

    async def find(
        self, entity_type: str, attribute: str, values: Sequence[Any]
    ) -> Mapping[Any, Sequence[str]] | None:
        self._call("find")
        await trio.lowlevel.checkpoint()
        if not self.can_find:
            return None
        self.finds.append((entity_type, attribute, list(values)))
        wanted = set(values)
        found: dict[Any, list[str]] = {}
        for tid, obj in self.objects.get(entity_type, {}).items():
            value = obj.get(attribute)
            if isinstance(value, str | int) and value in wanted:
                found.setdefault(value, []).append(tid)
        return found

    async def flush(self) -> None:
        self._call("flush")

    async def validate(self) -> str:
        self._call("validate")
        return f"{sum(map(len, self.objects.values()))} objects in memory"

    async def aclose(self) -> None:
        self.calls["aclose"] += 1

    def plain(self, entity_type: str = "user") -> dict[str, dict[str, Any]]:
        """The target's objects of *entity_type* keyed by their ``id`` attribute (the
        source id when the mapping copies it, as the default schema does)."""
        return {v["id"]: v for v in self.objects.get(entity_type, {}).values()}


@dataclass
class MemoryConnector(ConnectorFactory):
    """A connector named *name* (``memory``) that takes no settings and hands the same
    :attr:`source` and :attr:`target` to every job, so a test sees what the jobs did."""

    source: MemorySource = field(default_factory=MemorySource)
    target: MemoryTarget = field(default_factory=MemoryTarget)
    name: str = "memory"
    description: str = "objects in memory (tests)"

    def parse_settings(self, reader: TableReader) -> None:
        reader.finish()

    def open_source(self, settings: Any, ctx: ConnectorContext) -> Source:
        return self.source

    def open_target(self, settings: Any, ctx: ConnectorContext) -> Target:
        return self.target
