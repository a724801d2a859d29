"""In-memory connectors for fast tests: a source whose objects a test edits, and a
target that records what was applied and can be told to fail."""

from __future__ import annotations

from collections.abc import AsyncIterator, Callable, Mapping, Sequence
from dataclasses import dataclass, field
from typing import Any

import trio

from sluiced.connectors import (
    ConnectorContext,
    ConnectorFactory,
    Malformed,
    Op,
    OpResult,
    Page,
    Record,
    Source,
    Target,
)
from sluiced.errors import TransientError
from sluiced.hookspecs import hookimpl
from sluiced.tables import TableReader


class MemorySource(Source):
    """Objects by entity type, read in id order; cursor = last id read.

    ``version`` bumps on every edit and is the watermark; an incremental read returns
    objects edited after ``since``. ``fail_reads`` makes the next reads raise.
    """

    endpoint = "memory-source"

    def __init__(self) -> None:
        self.objects: dict[str, dict[str, dict[str, Any]]] = {}
        self.changed_at: dict[tuple[str, str], int] = {}
        self.malformed: dict[str, list[str]] = {}
        self.version = 0
        self.fail_reads = 0
        self.fail_after_pages: int | None = None
        self.reads: list[tuple[str, Any]] = []
        self.events: list[str] = []

    def put(self, entity_type: str, ident: str, **data: Any) -> None:
        self.version += 1
        self.objects.setdefault(entity_type, {})[ident] = {"id": ident, **data}
        self.changed_at[(entity_type, ident)] = self.version

    def delete(self, entity_type: str, ident: str) -> None:
        self.version += 1
        del self.objects[entity_type][ident]

    async def watermark(self, entity_type: str) -> str | None:
        return f"{self.version:08d}"

    async def read(
        self, entity_type: str, *, since: str | None, cursor: Any, page_size: int
    ) -> AsyncIterator[Page]:
        self.reads.append((entity_type, cursor))
        if self.fail_reads:
            self.fail_reads -= 1
            raise TransientError("source unavailable", retry_after=1)
        objs = self.objects.get(entity_type, {})
        ids = sorted(i for i in objs if cursor is None or i > cursor)
        if since is not None:
            ids = [i for i in ids if self.changed_at[(entity_type, i)] > int(since)]
        items: list[Record | Malformed] = [Record(id=i, data=dict(objs[i]), cursor=i) for i in ids]
        if cursor is None:
            items = [
                Malformed(key=k, reason="bad", cursor=None)
                for k in self.malformed.get(entity_type, [])
            ] + items
        for pages, start in enumerate(range(0, len(items), page_size)):
            if self.fail_after_pages is not None and pages >= self.fail_after_pages:
                self.fail_after_pages = None
                raise TransientError("connection reset")
            await trio.lowlevel.checkpoint()
            self.events.append(f"read {start // page_size}")
            yield Page(
                items=items[start : start + page_size],
                fraction=min(1.0, (start + page_size) / len(items)),
                exhaustive=since is None,
            )

    async def get_many(self, entity_type: str, ids: Sequence[str]) -> Mapping[str, Record]:
        objs = self.objects.get(entity_type, {})
        return {i: Record(id=i, data=dict(objs[i]), cursor=i) for i in ids if i in objs}


class MemoryTarget(Target):
    endpoint = "memory-target"

    def __init__(self) -> None:
        self.objects: dict[str, dict[str, dict[str, Any]]] = {}
        self.calls: list[list[Op]] = []
        self.reject: Callable[[Op], str | None] = lambda op: None
        self.fail_calls = 0
        self.flushes = 0
        self.apply_delay = 0.0
        self.events: list[str] = []
        self.finds: list[tuple[str, str, list[Any]]] = []

    async def apply(self, entity_type: str, ops: Sequence[Op]) -> Sequence[OpResult]:
        if self.fail_calls:
            self.fail_calls -= 1
            raise TransientError("target unavailable")
        self.calls.append(list(ops))
        self.events.append(f"apply start {len(self.calls) - 1}")
        if self.apply_delay:
            await trio.sleep(self.apply_delay)
        table = self.objects.setdefault(entity_type, {})
        results = []
        for op in ops:
            reason = self.reject(op)
            if reason:
                results.append(OpResult(ok=False, error=reason))
                continue
            tid = op.target_id or f"t-{op.source_id}"
            if op.kind == "delete":
                table.pop(tid, None)
            elif op.kind == "disable":
                table[tid] = {**table.get(tid, {}), "active": False}
            elif op.kind == "update":
                table[tid] = {**table.get(tid, {}), **(op.data or {})}
                if op.enable:
                    table[tid]["active"] = (op.data or {}).get("active", True)
            else:
                table[tid] = dict(op.data or {})
            results.append(OpResult(ok=True, target_id=tid))
        self.events.append(f"apply end {len(self.calls) - 1}")
        return results

    async def count(self, entity_type: str) -> int | None:
        return len(self.objects.get(entity_type, {}))

    async def find(
        self, entity_type: str, attribute: str, values: Sequence[Any]
    ) -> Mapping[Any, Sequence[str]] | None:
        self.finds.append((entity_type, attribute, list(values)))
        found: dict[Any, list[str]] = {}
        for tid, obj in self.objects.get(entity_type, {}).items():
            if obj.get(attribute) in values:
                found.setdefault(obj[attribute], []).append(tid)
        return found

    async def flush(self) -> None:
        self.flushes += 1

    def plain(self, entity_type: str = "user") -> dict[str, dict[str, Any]]:
        """Target objects keyed by their source id."""
        return {v["id"]: v for v in self.objects.get(entity_type, {}).values()}


@dataclass
class MemoryConnector(ConnectorFactory):
    """Hands out the same source and target objects to every job, so tests can see them."""

    source: MemorySource = field(default_factory=MemorySource)
    target: MemoryTarget = field(default_factory=MemoryTarget)
    name: str = "memory"

    def parse_settings(self, reader: TableReader) -> None:
        reader.finish()

    def open_source(self, settings: Any, ctx: ConnectorContext) -> Source:
        return self.source

    def open_target(self, settings: Any, ctx: ConnectorContext) -> Target:
        return self.target


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
