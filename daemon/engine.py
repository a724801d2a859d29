"""The sync engine: source pages → mapping → target batches, checkpointed.

One engine serves every kind of integration. For each entity type of the integration
it runs a *pass*:

1. Read the source's watermark *before* reading (changes made during the pass are
   caught by the next one). A full pass reads everything; an incremental pass reads
   what changed since the stored watermark. Incremental needs a baseline: without a
   stored watermark the pass is full.
2. Retry escrowed objects that are due. An escrowed object whose retry is not due is
   held back: a pass that reads it sends nothing for it (the retry reads the object
   again by id, so it goes out with the source's data of then).
3. Read pages while the previous page is being written (a channel of one page keeps
   memory flat). Each object is mapped, hashed, and compared with the link stored for
   it: unchanged objects are skipped, others become create or update ops. The batch is
   applied to the target, then the job (with its checkpoint), links and escrows are
   committed in one store transaction. A crash replays at most one batch, and targets
   apply idempotently.
4. A full pass then deletes from the target what the source no longer has (links the
   pass did not see), unless that exceeds the deletion threshold or would empty the
   target: then nothing is deleted, the deletions are staged and the pass fails with
   ``TooManyDeletes`` until an operator approves.
5. The watermark is stored only now, when the pass completed.

Pause stops at the next object boundary; graceful stop after the current batch; both
leave a checkpoint that ``run`` continues from. A failing entity type does not stop the
others; the job then reports which failed.
"""

from __future__ import annotations

import hashlib
import json
from collections.abc import AsyncGenerator, AsyncIterator, Callable, Iterator, Mapping, Sequence
from contextlib import aclosing, contextmanager
from dataclasses import dataclass, field, replace
from datetime import timedelta
from typing import Any, Protocol

import trio

from .backoff import backoff_delay
from .clock import Clock
from .config import IntegrationConfig
from .connectors import Malformed, Op, OpResult, Page, Record, Source, Target
from .errors import ObjectError, SyncError, TransientError
from .mapping import BUILTINS, ExpressionError, default_schema, parse_schema
from .mapping.mapper import SchemaMapper
from .models import Escrow, Job, JobStats, JobType, Link
from .redact import redact_text
from .retrying import Breakers, Interrupted, call_with_retry, retry_wait
from .store import BatchCommit, StagedDeletion, Store, StoreUnavailable

__all__ = [
    "EngineResult",
    "Interrupted",
    "JobControl",
    "JobLog",
    "SyncEngine",
    "TooManyDeletes",
    "single_errors",
]

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


def default_mapper(cfg: IntegrationConfig) -> SchemaMapper:
    """Objects copied as they are, every flow allowed."""
    return SchemaMapper(parse_schema(default_schema(cfg.entity_types), BUILTINS))


def content_hash(data: Mapping[str, Any]) -> str:
    text = json.dumps(data, sort_keys=True, separators=(",", ":"), default=str)
    return hashlib.sha256(text.encode()).hexdigest()[:32]


class PlanSink(Protocol):
    """Where a dry run puts what it would do, instead of doing it."""

    async def add(self, entries: Sequence[Mapping[str, Any]]) -> None: ...


def plan_entry(entity_type: str, op: Op) -> dict[str, Any]:
    """One line of a plan: the op, with the attributes an update changes."""
    entry: dict[str, Any] = {"action": op.kind, "entityType": entity_type, "sourceId": op.source_id}
    if op.target_id is not None:
        entry["targetId"] = op.target_id
    if op.kind == "create":
        entry["attributes"] = dict(op.data or {})
    elif op.kind == "update":
        before = op.previous or {}
        entry["changes"] = {
            k: {"from": before.get(k), "to": v}
            for k, v in (op.data or {}).items()
            if op.previous is None or before.get(k) != v
        }
        if op.previous is None:
            entry["matched"] = True  # found by the matching attributes, not by a link
        if op.enable:
            entry["enable"] = True
    return entry


@dataclass
class Decisions:
    """What the engine decided for some records."""

    ops: list[Op] = field(default_factory=list)
    hashes: dict[str, str] = field(default_factory=dict)
    #: In scope (a full pass marks their links seen).
    seen: list[str] = field(default_factory=list)
    #: Nothing to do.
    unchanged: list[str] = field(default_factory=list)
    #: source id → (escrow kind, reason).
    problems: dict[str, tuple[str, str]] = field(default_factory=dict)
    #: Links of objects now out of scope, when their deprovisioning is deferred.
    leaving: list[Link] = field(default_factory=list)


def _reference_ids(value: Any) -> list[str]:
    """Source ids in a reference attribute: a string, or a list of strings or of
    ``{"value": id}`` objects (SCIM members)."""
    items = value if isinstance(value, list) else [value]
    ids = [i.get("value") if isinstance(i, Mapping) else i for i in items]
    return [str(i) for i in ids if i is not None and i != ""]


@dataclass(frozen=True, kw_only=True)
class EngineResult:
    job: Job
    escrowed: int = 0
    full_pass: bool = False
    failed: Mapping[str, SyncError] = field(default_factory=dict)


@contextmanager
def single_errors() -> Iterator[None]:
    """Re-raise a nursery's group of one exception as that exception."""
    try:
        yield
    except BaseExceptionGroup as group:
        if len(group.exceptions) == 1:
            raise group.exceptions[0] from None
        raise


class SyncEngine:
    def __init__(
        self,
        *,
        job: Job,
        cfg: IntegrationConfig,
        source: Source,
        target: Target,
        store: Store,
        clock: Clock,
        log: JobLog,
        control: JobControl,
        breakers: Breakers,
        mapper: SchemaMapper | None = None,
        deletions_approved: bool = False,
        plan: PlanSink | None = None,
        force_full: bool = False,
    ) -> None:
        self.job = job
        self.cfg = cfg
        self.source = source
        self.target = target
        self.store = store
        self.clock = clock
        self.log = log
        self.control = control
        self.breakers = breakers
        self.mapper = mapper or default_mapper(cfg)
        self.deletions_approved = deletions_approved
        #: A dry run: ops go to the plan; links, escrows and watermarks stay as they are.
        self.plan = plan
        #: Every pass is full (the schema changed since the last full pass).
        self.force_full = force_full
        self._planned_out: set[tuple[str, str]] = set()
        #: Per entity type of this run: the target held none of them when first asked.
        self._empty_target: dict[str, bool] = {}
        #: Entity types whose provisioned objects changed in this job: created, adopted,
        #: enabled again, disabled or deleted (references to them resolve differently).
        self._linked: set[str] = set()
        #: Those of them whose link changes the store has not committed yet: the next
        #: commit drops the watermarks of the types referencing them (see ``_commit``).
        self._relinked: set[str] = set()
        #: Links of objects an incremental pass found out of scope, deprovisioned (through
        #: the threshold) when the read phase ends. A full pass leaves them unseen instead.
        self._leaving: dict[str, list[Link]] = {}
        #: Escrows by (entity type, object id): those of the current pass, kept current.
        self._escrows: dict[tuple[str, str], Escrow] = {}
        #: Per entity type: the escrowed objects retried in this job.
        self._retried: dict[str, set[str]] = {}
        self.escrowed = 0
        self._index = 0
        self._next_index = 1
        self._failed_types: list[str] = []
        self._all_full = True
        self._exhaustive = False
        # A selective job syncs only some entity types; a job may override the batch size.
        selected = job.params.get("entity_types")
        self.entity_types: tuple[str, ...] = tuple(selected) if selected else cfg.entity_types
        if job.params.get("batch_size"):
            self.cfg = replace(cfg, batch_size=int(job.params["batch_size"]))

    # -- the job --------------------------------------------------------------------------
    async def run(self) -> EngineResult:
        """Run (or continue) every pass of the job. Raises :class:`Interrupted` on pause or
        stop; other errors of one entity type are collected in ``failed``.

        The checkpoint remembers the entity types that failed; resuming the job runs
        them again first, then continues where it was.
        """
        cp = dict(self.job.checkpoint or {})
        if cp and cp.get("v") != CHECKPOINT_VERSION:
            cp = {}
        types = self.entity_types
        failed: dict[str, SyncError] = {}
        start = int(cp.get("index", 0))
        owed = [t for t in cp.get("failed", []) if t in types and types.index(t) < start]
        self._failed_types = list(owed)
        plan: list[tuple[str, Mapping[str, Any] | None, int]] = [(t, None, start) for t in owed]
        plan += [
            (types[i], cp if i == start and cp.get("pass_id") else None, i + 1)
            for i in range(start, len(types))
        ]
        for entity_type, resume, next_index in plan:
            self._index = types.index(entity_type)
            self._next_index = next_index
            self.job = replace(self.job, stage=entity_type)
            try:
                await self._pass(entity_type, resume)
            except StoreUnavailable:
                raise  # the job's own record cannot be written: no other type can go on
            except SyncError as exc:
                failed[entity_type] = exc
                if entity_type not in self._failed_types:
                    self._failed_types.append(entity_type)
                await self.log(
                    "error", f"{entity_type}: {exc} ({exc.code}); continuing with the other types"
                )
                await self._checkpoint(entity_type, {"v": CHECKPOINT_VERSION, "index": next_index})
            else:
                if entity_type in self._failed_types:
                    self._failed_types.remove(entity_type)
        await self._call(self.target.endpoint, self.target.flush)
        self.job = replace(
            self.job, progress=100.0 if not failed else self.job.progress, stage=None
        )
        return EngineResult(
            job=self.job,
            escrowed=self.escrowed,
            full_pass=self._all_full and not failed,
            failed=failed,
        )

    async def _pass(self, entity_type: str, cp: Mapping[str, Any] | None) -> None:
        iid = self.cfg.id
        if cp is not None:
            pass_id, full, watermark = cp["pass_id"], bool(cp["full"]), cp.get("watermark")
            phase, cursor = cp.get("phase", "read"), cp.get("cursor")
            await self.log("info", f"{entity_type}: resuming the {phase} phase from the checkpoint")
        else:
            stored = (await self.store.get_watermarks(iid)).get(entity_type)
            # Objects that reference a type whose provisioned objects changed in this job
            # (groups whose members were just provisioned, disabled or deleted) are all
            # read again: their mapped references change although they did not. The
            # commit of those changes dropped their watermark (``_commit``), so a later
            # job reads them all too if this one fails, stops or crashes before.
            newly_linked = sorted(
                t for t in self.mapper.references(entity_type).values() if t in self._linked
            )
            full = self.job.type in (JobType.FULL, JobType.SELECTIVE) or self.force_full
            if newly_linked and not full:
                await self.log(
                    "info",
                    f"{entity_type}: reading every object again, since {', '.join(newly_linked)}"
                    " objects they may reference were provisioned or deprovisioned",
                )
            full = full or stored is None or bool(newly_linked)
            pass_id = f"{self.job.id}:{entity_type}"
            watermark = await self._call(
                self.source.endpoint, lambda: self.source.watermark(entity_type)
            )
            phase, cursor = "read", None
            kind = "full" if full else "incremental"
            await self.log("info", f"{entity_type}: {kind} pass started")
        self._all_full &= full
        self._exhaustive = False  # set when a page says the read covers everything
        if cp is not None and "since" in cp:
            since = cp["since"]  # the pass's own baseline, even if dropped since
        else:
            since = None if full else (await self.store.get_watermarks(iid)).get(entity_type)
        state = {
            "v": CHECKPOINT_VERSION,
            "index": self._index,
            "pass_id": pass_id,
            "full": full,
            "watermark": watermark,
            "since": since,
            # Items the read could not make out (Malformed): it is then incomplete.
            "unreadable": int(cp.get("unreadable", 0)) if cp is not None else 0,
        }
        self._escrows = {
            (entity_type, e.object_id): e
            for e in await self.store.list_escrows(iid, entity_type=entity_type)
        }
        if phase == "read":
            if cp is None:
                await self._retry_escrows(entity_type, state)
            await self._read_phase(entity_type, state, since, cursor)
            cursor = None
            if not full:
                await self._deprovision_leavers(entity_type, state)
        complete = not state["unreadable"]
        # An incomplete read is no full pass: it does not stand for one in the schedule
        # (a full sync still owed, for a new schema say, stays owed).
        self._all_full &= complete
        if full and not complete:
            await self.log(
                "warning",
                f"{entity_type}: {state['unreadable']} items of the source could not be read"
                " (escrowed); an incomplete read deletes, disables and deprovisions nothing",
            )
        elif full:
            await self._delete_phase(
                entity_type, state, resume_after=cursor if phase == "delete" else None
            )
        await self._commit(
            BatchCommit(
                job=self._with_checkpoint({"v": CHECKPOINT_VERSION, "index": self._next_index}),
                entity_type=entity_type,
                seen_pass=pass_id,
                pass_complete=True,
                exhaustive=(full or self._exhaustive) and complete,
                watermark=watermark,
            )
        )
        await self.log("info", f"{entity_type}: pass complete ({self._stats_text()})")

    # -- one object, now ----------------------------------------------------------------------
    async def provision(self, entity_type: str, object_id: str) -> list[dict[str, Any]]:
        """Sync one object now and say what happened at each step: import, scoping,
        matching, action, export. In a dry run (``plan`` set) nothing is written.

        Raises:
            SyncError: the source or the target failed as a whole.
        """
        steps: list[dict[str, Any]] = []

        def step(name: str, status: str, detail: str, **extra: Any) -> None:
            steps.append({"step": name, "status": status, "detail": detail, **extra})

        iid, now = self.cfg.id, self.clock.now()
        found = await self._call(
            self.source.endpoint, lambda: self.source.get_many(entity_type, [object_id])
        )
        item = found.get(object_id)
        link = (await self.store.get_links(iid, entity_type, [object_id])).get(object_id)
        self._escrows = {  # a failure now is the next attempt of its escrow
            (entity_type, e.object_id): e
            for e in await self.store.list_escrows(iid, entity_type=entity_type)
            if e.object_id == object_id
        }
        if isinstance(item, Malformed):
            step("import", "failed", f"the source could not read {object_id!r}: {item.reason}")
            return steps
        record = item
        if record is None:
            step("import", "notFound", f"the source has no {entity_type} {object_id!r}")
        else:
            step("import", "ok", f"read {entity_type} {object_id!r}", object=dict(record.data))
        d = Decisions()
        if record is not None:
            mapping = self.mapper.mapping(entity_type)
            if mapping is None:
                step("scoping", "skipped", f"no enabled object mapping for {entity_type}")
                return steps
            mapped: dict[str, Mapping[str, Any] | None] = {}
            self._map_into(mapped, d, entity_type, record, creating=link is None)
            if record.id in d.problems:
                step("scoping", "failed", d.problems[record.id][1])
            else:
                inside = mapped[record.id] is not None
                step(
                    "scoping",
                    "inScope" if inside else "outOfScope",
                    f"in the scope of {mapping.name!r}"
                    if inside
                    else f"outside the scope of {mapping.name!r}",
                )
                await self._decide(
                    entity_type, [record], {object_id: link} if link else {}, mapped, d
                )
        elif link is not None:
            op = self._deprovision_op(entity_type, link)
            if op is not None:
                d.ops.append(op)
                d.hashes[object_id] = link.hash
        op = d.ops[0] if d.ops else None
        problem = d.problems.get(object_id)
        if link is not None:
            step(
                "matching",
                "linked",
                f"remembered link to {link.target_id}",
                targetId=link.target_id,
            )
        elif problem is not None and problem[0] == "target":
            step("matching", "ambiguous", problem[1])
        elif op is not None and op.kind == "update":
            step(
                "matching",
                "matched",
                f"found {op.target_id} by the matching attributes",
                targetId=op.target_id,
            )
        elif record is not None and op is not None:
            step("matching", "noMatch", "no object in the target: it will be created")
        if problem is not None:
            step("action", "escrow", problem[1])
        elif op is None:
            step(
                "action",
                "none",
                "nothing to do: unchanged, not provisioned, or a flow the mapping does not allow",
            )
            return steps
        else:
            step(
                "action",
                op.kind,
                f"{op.kind} {entity_type} {object_id!r}",
                plan=plan_entry(entity_type, op),
            )
        if problem is not None or op is None:
            if problem is not None and self.plan is None:
                await self._commit(
                    BatchCommit(
                        job=self.job,
                        entity_type=entity_type,
                        add_escrows=[
                            self._escrow(
                                entity_type, object_id, problem[0], problem[1], self.job.id, now
                            )
                        ],
                    )
                )
            return steps
        if self.plan is not None:
            step("export", "skipped", "a dry run: nothing was written")
            return steps
        stats, upserts, removed, failed = await self._apply_ops(entity_type, d.ops, d.hashes, None)
        self.job = replace(self.job, stats=self.job.stats + stats + JobStats(processed=1))
        escrows = [
            self._escrow(entity_type, object_id, "target", reason, self.job.id, now)
            for _, reason in failed
        ]
        await self._commit(
            BatchCommit(
                job=self.job,
                entity_type=entity_type,
                upsert_links=upserts,
                delete_links=removed,
                add_escrows=escrows,
                remove_escrows=[] if failed else [object_id],
            )
        )
        await self._call(self.target.endpoint, self.target.flush)
        if failed:
            step("export", "failed", failed[0][1])
        else:
            target_id = upserts[0].target_id if upserts else op.target_id
            step("export", "ok", f"{op.kind} applied", targetId=target_id)
        return steps

    # -- reading ------------------------------------------------------------------------------
    async def _pages(
        self, entity_type: str, since: str | None, cursor: Any
    ) -> AsyncGenerator[Page, None]:
        """The source's pages; a transient failure reopens the read after the last page
        yielded, with backoff. The source's iterator is always closed."""
        attempt = 0
        while True:
            pages = self.source.read(
                entity_type, since=since, cursor=cursor, page_size=self.cfg.batch_size
            )
            try:
                async for page in pages:
                    attempt = 0
                    yield page
                    cursors = [i.cursor for i in page.items if i.cursor is not None]
                    cursor = cursors[-1] if cursors else cursor
                return
            except TransientError as exc:
                attempt += 1
                if attempt >= self.cfg.retry.attempts:
                    raise
                retry_after = exc.retry_after
                error = exc
            finally:
                aclose = getattr(pages, "aclose", None)
                if aclose is not None:
                    await aclose()
            delay = backoff_delay(
                attempt,
                base=self.cfg.retry.base.total_seconds(),
                cap=self.cfg.retry.cap.total_seconds(),
                retry_after=retry_after,
            )
            await self.log(
                "warning",
                f"{entity_type}: reading failed ({error}); retry {attempt} in {delay:.1f}s",
            )
            await retry_wait(delay)

    async def _read_phase(
        self,
        entity_type: str,
        state: dict[str, Any],
        since: str | None,
        cursor: Any,
    ) -> None:
        send, receive = trio.open_memory_channel[Page](1)
        interrupted: list[Interrupted] = []

        async def produce() -> None:
            async with send, aclosing(self._pages(entity_type, since, cursor)) as pages:
                try:
                    async for page in pages:
                        try:
                            await send.send(page)
                        except trio.BrokenResourceError:
                            return  # the consumer stopped (pause, stop, error): so do we
                except Interrupted as exc:  # a retry wait cut short: the page in hand ends first
                    interrupted.append(exc)

        with single_errors():
            async with trio.open_nursery() as nursery:
                nursery.start_soon(produce, name=f"read {self.cfg.id}/{entity_type}")
                async with receive:
                    async for page in receive:
                        await self._apply_page(entity_type, state, page)
        if interrupted:  # the pages stopped short: never taken for the end of the read
            raise interrupted[0]

    async def _apply_page(self, entity_type: str, state: dict[str, Any], page: Page) -> None:
        full, pass_id = state["full"], state["pass_id"]
        self._exhaustive |= page.exhaustive
        now = self.clock.now()
        all_records = [i for i in page.items if isinstance(i, Record)]
        links = await self.store.get_links(self.cfg.id, entity_type, [r.id for r in all_records])
        records: list[Record] = []
        mapped: dict[str, Mapping[str, Any] | None] = {}
        d = Decisions()
        add_escrows: list[Escrow] = []
        processed = errors = 0
        held: list[str] = []
        cursor: Any = None
        paused = False
        for item in page.items:
            if self.control.pause_requested:
                paused = True
                break
            cursor = item.cursor if item.cursor is not None else cursor
            processed += 1
            if isinstance(item, Malformed):
                add_escrows.append(
                    self._escrow(entity_type, item.key, "source", item.reason, pass_id, now)
                )
                errors += 1
            elif self._held(entity_type, item.id):
                held.append(item.id)  # still in error; kept (not deleted) until retried
            else:
                records.append(item)
                self._map_into(mapped, d, entity_type, item, creating=item.id not in links)
                await self.mapper.pace()
        await self._decide(entity_type, records, links, mapped, d, defer_leaving=True)
        if not full:  # a full pass leaves them unseen: its delete phase deprovisions them
            self._leaving.setdefault(entity_type, []).extend(d.leaving)
        for sid, (kind, reason) in d.problems.items():
            add_escrows.append(self._escrow(entity_type, sid, kind, reason, pass_id, now))
        stats, upserts, removed, failed = await self._apply_ops(
            entity_type, d.ops, d.hashes, pass_id if full else None
        )
        for op, reason in failed:
            add_escrows.append(
                self._escrow(entity_type, op.source_id, "target", reason, pass_id, now)
            )
        failed_ids = {op.source_id for op, _ in failed}
        remove_escrows = [
            i
            for i in (*d.unchanged, *(op.source_id for op in d.ops))
            if (entity_type, i) in self._escrows and i not in failed_ids
        ]
        if held:
            await self.log(
                "info",
                f"{entity_type}: {len(held)} escrowed objects held back until their retry is due",
            )
        self.escrowed += len(add_escrows)
        unreadable = errors  # so far, the Malformed items
        state["unreadable"] = state.get("unreadable", 0) + unreadable
        # Held back: in error still (counted once per job: a failed retry counted already).
        errors += len(d.problems) + len(set(held) - self._retried.get(entity_type, set()))
        stats = stats + JobStats(processed=processed, skipped=len(d.unchanged), errors=errors)
        if page.fraction is not None:
            self._set_progress(page.fraction)
        new_state = {
            **state,
            "phase": "read",
            "cursor": cursor if cursor is not None else state.get("cursor"),
        }
        state["cursor"] = new_state["cursor"]
        self.job = replace(self.job, stats=self.job.stats + stats)
        await self._commit(
            BatchCommit(
                job=self._with_checkpoint(new_state),
                entity_type=entity_type,
                upsert_links=upserts,
                delete_links=removed,
                seen_pass=pass_id if full else None,
                seen_ids=[*d.seen, *held] if full else [],
                add_escrows=add_escrows,
                remove_escrows=remove_escrows,
            )
        )
        self._track_escrows(entity_type, add_escrows, remove_escrows)
        if paused:
            raise Interrupted("pause")
        if self.control.stop_requested:
            raise Interrupted("stop")

    def _map_into(
        self,
        mapped: dict[str, Mapping[str, Any] | None],
        d: Decisions,
        entity_type: str,
        record: Record,
        *,
        creating: bool,
    ) -> None:
        """Map *record* into *mapped* (None: out of scope); a failure is a problem in *d*."""
        try:
            mapped[record.id] = self.mapper.map(entity_type, record, creating=creating)
        except (ObjectError, ExpressionError) as exc:
            d.problems[record.id] = ("source", str(exc))

    async def _decide(
        self,
        entity_type: str,
        records: Sequence[Record],
        links: Mapping[str, Link],
        mapped: dict[str, Mapping[str, Any] | None],
        d: Decisions,
        *,
        defer_leaving: bool = False,
    ) -> Decisions:
        """What to do with mapped *records*: resolve references, match the unlinked ones
        in the target, and compare with what was exported before. With *defer_leaving*,
        objects out of scope are listed in ``leaving`` instead of getting their op (a
        pass gates them against the deletion threshold together)."""
        await self._resolve_references(entity_type, mapped)
        unlinked = {i: m for i, m in mapped.items() if m is not None and i not in links}
        matched = await self._match(entity_type, unlinked, d)
        for rec in records:
            if rec.id in d.problems:
                # Still in the source, but it could not be mapped (or matched): escrowed,
                # and seen, so that a full pass never deletes it for that.
                d.seen.append(rec.id)
                continue
            if rec.id not in mapped:
                continue
            data, link = mapped[rec.id], links.get(rec.id)
            if rec.id in matched:  # an existing object: add-only attributes are not applied
                holder: dict[str, Mapping[str, Any] | None] = {}
                self._map_into(holder, d, entity_type, rec, creating=False)
                if rec.id not in holder:
                    continue
                await self._resolve_references(entity_type, holder)
                data = holder[rec.id]
            op, digest = self._op_for(entity_type, rec.id, data, link, matched.get(rec.id))
            if defer_leaving and data is None and link is not None and op is not None:
                d.leaving.append(link)
                continue
            if digest is not None:
                d.seen.append(rec.id)  # out-of-scope objects are not seen: they leave the target
            if op is None:
                if data is not None or link is None:
                    d.unchanged.append(rec.id)
                continue
            d.hashes[rec.id] = digest if digest is not None else (link.hash if link else "")
            d.ops.append(op)
        return d

    def _op_for(
        self,
        entity_type: str,
        source_id: str,
        data: Mapping[str, Any] | None,
        link: Link | None,
        matched: str | None = None,
    ) -> tuple[Op | None, str | None]:
        """The op for one mapped object (None: nothing to do — unchanged, or a flow the
        mapping does not allow) and the hash of the mapped object (None: out of scope)."""
        if data is None:  # out of scope: deprovisioned if it was provisioned
            return (self._deprovision_op(entity_type, link) if link else None), None
        digest = content_hash(data)
        if link is not None:
            if link.disabled_at is None and link.hash == digest:
                return None, digest
            if not self.mapper.allows(entity_type, "Update"):
                return None, digest
            op = Op(
                kind="update",
                source_id=source_id,
                target_id=link.target_id,
                data=data,
                previous=self._still_exported(entity_type, link.data, data),
                enable=link.disabled_at is not None,
            )
            return op, digest
        if matched is not None:
            if not self.mapper.allows(entity_type, "Update"):
                return None, digest
            return Op(kind="update", source_id=source_id, target_id=matched, data=data), digest
        if not self.mapper.allows(entity_type, "Add"):
            return None, digest
        return Op(kind="create", source_id=source_id, data=data), digest

    def _still_exported(
        self, entity_type: str, previous: Mapping[str, Any] | None, data: Mapping[str, Any]
    ) -> Mapping[str, Any] | None:
        """What was exported and the mapping still writes: the attributes mapped now, and
        those set on create only. Attributes of an older mapping are forgotten."""
        if previous is None:
            return None
        m = self.mapper.mapping(entity_type)
        add_only = {a.target for a in m.attributes if a.on_create_only} if m else set()
        return {k: v for k, v in previous.items() if k in data or k in add_only}

    def _deprovision_op(self, entity_type: str, link: Link) -> Op | None:
        """Deprovisioning an object that left the source or its scope: delete it, or
        disable it and delete it once it has been disabled for ``deleteAfter``."""
        m = self.mapper.mapping(entity_type)
        if m is None or "Delete" not in m.flow_types:
            return None
        delete = Op(kind="delete", source_id=link.source_id, target_id=link.target_id)
        if m.deprovision == "delete":
            return delete
        if link.disabled_at is None:
            return Op(
                kind="disable",
                source_id=link.source_id,
                target_id=link.target_id,
                previous=link.data,
            )
        if m.delete_after is not None and self.clock.now() - link.disabled_at >= m.delete_after:
            return delete
        return None

    async def _resolve_references(
        self, entity_type: str, mapped: dict[str, Mapping[str, Any] | None]
    ) -> None:
        """Replace source ids in reference attributes (group members) by the ids their
        objects have in the target; ids with no link (not provisioned) or whose object is
        disabled (deprovisioned: out of scope or gone from the source) are left out."""
        for attribute, ref_type in self.mapper.references(entity_type).items():
            wanted = {
                ref
                for data in mapped.values()
                if data is not None
                for ref in _reference_ids(data.get(attribute))
            }
            if not wanted:
                continue
            links = {
                sid: link
                for sid, link in (await self.store.get_links(self.cfg.id, ref_type, wanted)).items()
                if link.disabled_at is None
            }
            for sid, data in mapped.items():
                if data is None or data.get(attribute) is None:
                    continue
                value = data[attribute]
                ids = [links[r].target_id for r in _reference_ids(value) if r in links]
                resolved: Any = ids if isinstance(value, list) else (ids[0] if ids else None)
                mapped[sid] = {**data, attribute: resolved}

    async def _match(
        self, entity_type: str, unlinked: Mapping[str, Mapping[str, Any]], d: Decisions
    ) -> dict[str, str]:
        """Find objects with no link in the target by the matching attributes, in priority
        order. One candidate: it is the object. Several: escrowed, never guessed. None:
        the next attribute is tried; if none matches, the object is created."""
        found: dict[str, str] = {}
        attributes = self.mapper.matching(entity_type)
        if not unlinked or not attributes:
            return found
        target_type = self.mapper.target_type(entity_type)
        if entity_type not in self._empty_target:
            count = await self._call(self.target.endpoint, lambda: self.target.count(target_type))
            self._empty_target[entity_type] = count == 0
        if self._empty_target[entity_type]:
            # Empty when the pass began: whatever is there now, this pass created (and
            # linked), or someone else did, which a create then meets as a conflict.
            return found
        left = dict(unlinked)
        for attribute in attributes:
            values = {
                sid: data[attribute]
                for sid, data in left.items()
                if isinstance(data.get(attribute), str | int) and data[attribute] != ""
            }
            if not values:
                continue
            wanted = sorted(set(values.values()), key=str)
            answer = await self._call(
                self.target.endpoint,
                lambda a=attribute, w=wanted: self.target.find(target_type, a, w),  # type: ignore[misc]
            )
            if answer is None:
                return found  # the target cannot look objects up: links only
            for sid, value in values.items():
                ids = list(dict.fromkeys(answer.get(value, ())))
                if len(ids) == 1:
                    found[sid] = ids[0]
                elif ids:
                    d.problems[sid] = (
                        "target",
                        f"ambiguous match: {len(ids)} {target_type} objects in the target have "
                        f"{attribute} = {value!r} ({', '.join(ids[:5])}); sluiced does not "
                        "guess: remove the duplicates or change the matching attributes",
                    )
                else:
                    continue
                del left[sid]
        return found

    async def _apply_ops(
        self, entity_type: str, ops: Sequence[Op], hashes: Mapping[str, str], seen_pass: str | None
    ) -> tuple[JobStats, list[Link], list[str], list[tuple[Op, str]]]:
        """Apply *ops* (in a dry run: add them to the plan); returns stats, links to
        upsert, source ids deleted, and failures."""
        if not ops:
            return JobStats(), [], [], []
        if self.plan is not None:
            # A dry run keeps no links: remember what it deprovisioned, for the delete phase.
            self._planned_out.update(
                (entity_type, op.source_id) for op in ops if op.kind in ("disable", "delete")
            )
            await self.plan.add([plan_entry(entity_type, op) for op in ops])
            results: Sequence[OpResult] = [OpResult(ok=True, target_id=op.target_id) for op in ops]
        else:
            target_type = self.mapper.target_type(entity_type)
            results = await self._call(
                self.target.endpoint, lambda: self.target.apply(target_type, ops)
            )
        now = self.clock.now()
        counts = {"create": 0, "update": 0, "delete": 0, "disable": 0}
        upserts: list[Link] = []
        removed: list[str] = []
        failed: list[tuple[Op, str]] = []
        for op, res in zip(ops, results, strict=True):
            if not res.ok:
                failed.append((op, res.error or "the target refused the object"))
                continue
            counts[op.kind] += 1
            if op.kind != "update" or op.previous is None or op.enable:
                self._linked.add(entity_type)
                self._relinked.add(entity_type)
            if op.kind == "delete":
                removed.append(op.source_id)
                continue
            exported = {**(op.previous or {}), **(op.data or {})}
            upserts.append(
                Link(
                    source_id=op.source_id,
                    target_id=res.target_id or op.target_id or op.source_id,
                    hash=hashes[op.source_id],
                    seen_pass=seen_pass,
                    data=exported,
                    disabled_at=now if op.kind == "disable" else None,
                )
            )
        stats = JobStats(
            created=counts["create"],
            updated=counts["update"],
            deleted=counts["delete"],
            disabled=counts["disable"],
            errors=len(failed),
        )
        if self.plan is not None:
            return stats, [], [], []
        return stats, upserts, removed, failed

    # -- escrows ----------------------------------------------------------------------------------
    def _escrow(
        self,
        entity_type: str,
        object_id: str,
        kind: str,
        reason: str,
        pass_id: str,
        now: Any,
    ) -> Escrow:
        """The escrow of a failure of *object_id* now: attempt one, or the next attempt
        of the escrow it already has (its backoff grows)."""
        previous = self._escrows.get((entity_type, object_id))
        attempts = previous.attempts + 1 if previous else 1
        delay = backoff_delay(
            attempts,
            base=self.cfg.escrow.base.total_seconds(),
            cap=self.cfg.escrow.cap.total_seconds(),
        )
        return Escrow(
            integration_id=self.cfg.id,
            entity_type=entity_type,
            object_id=object_id,
            kind=kind,
            reason=redact_text(reason),
            attempts=attempts,
            first_failed=previous.first_failed if previous else now,
            last_failed=now,
            next_retry=now + timedelta(seconds=delay),
            pass_id=pass_id,
        )

    def _held(self, entity_type: str, object_id: str) -> bool:
        """Whether *object_id* has a target escrow whose retry is not due yet: nothing is
        sent for it until then."""
        e = self._escrows.get((entity_type, object_id))
        return e is not None and e.kind == "target" and e.next_retry > self.clock.now()

    def _track_escrows(
        self, entity_type: str, added: Sequence[Escrow], removed: Sequence[str]
    ) -> None:
        """Keep the pass's escrows as the store has them after a commit."""
        if self.plan is not None:
            return  # a dry run writes no escrows
        for i in removed:
            self._escrows.pop((entity_type, i), None)
        for e in added:
            self._escrows[(entity_type, e.object_id)] = e

    async def _retry_escrows(self, entity_type: str, state: dict[str, Any]) -> None:
        """Retry the target escrows that are due, a batch at a time, each once: read
        again from the source by id, then applied; a failure is the escrow's next attempt."""
        tried = self._retried.setdefault(entity_type, set())
        while True:
            now = self.clock.now()
            due = [
                e
                for e in await self.store.list_escrows(
                    self.cfg.id,
                    entity_type=entity_type,
                    kind="target",
                    due_before=now,
                    limit=self.cfg.batch_size + len(tried),
                )
                if e.object_id not in tried
            ][: self.cfg.batch_size]
            if not due:
                return
            tried.update(e.object_id for e in due)
            await self._retry_batch(entity_type, state, due, now)

    async def _retry_batch(
        self, entity_type: str, state: dict[str, Any], due: Sequence[Escrow], now: Any
    ) -> None:
        await self.log("info", f"{entity_type}: retrying {len(due)} escrowed objects")
        ids = [e.object_id for e in due]
        found = await self._call(
            self.source.endpoint, lambda: self.source.get_many(entity_type, ids)
        )
        links = await self.store.get_links(self.cfg.id, entity_type, ids)
        records = [r for r in (found.get(i) for i in ids) if isinstance(r, Record)]
        mapped: dict[str, Mapping[str, Any] | None] = {}
        d = Decisions()
        for i in ids:  # the source could not read it: it stays escrowed, never taken for gone
            item = found.get(i)
            if isinstance(item, Malformed):
                d.problems[i] = ("target", f"the source could not read it: {item.reason}")
        for rec in records:
            self._map_into(mapped, d, entity_type, rec, creating=rec.id not in links)
            await self.mapper.pace()
        await self._decide(entity_type, records, links, mapped, d)
        for i in ids:
            link = links.get(i)
            if i not in found and link is not None:  # gone from the source
                op = self._deprovision_op(entity_type, link)
                if op is not None:
                    d.ops.append(op)
                    d.hashes[i] = link.hash
        stats, upserts, removed, failed = await self._apply_ops(entity_type, d.ops, d.hashes, None)
        reasons = [(op.source_id, reason) for op, reason in failed]
        # A source problem is escrowed again by the next exhaustive read; ambiguity stays.
        reasons += [(i, r) for i, (kind, r) in d.problems.items() if kind == "target"]
        again = [
            self._escrow(entity_type, i, "target", r, state["pass_id"], now) for i, r in reasons
        ]
        done = [i for i in ids if i not in {r[0] for r in reasons}]
        self.job = replace(self.job, stats=self.job.stats + stats + JobStats(processed=len(due)))
        await self._commit(
            BatchCommit(
                job=self._with_checkpoint({**state, "phase": "read", "cursor": None}),
                entity_type=entity_type,
                upsert_links=upserts,
                delete_links=removed,
                add_escrows=again,
                remove_escrows=done,
            )
        )
        self._track_escrows(entity_type, again, done)
        self.escrowed += len(again)

    # -- deletions ----------------------------------------------------------------------------------
    async def _delete_phase(
        self, entity_type: str, state: dict[str, Any], resume_after: str | None
    ) -> None:
        iid, pass_id = self.cfg.id, state["pass_id"]
        if not self.mapper.allows(entity_type, "Delete"):
            return  # the mapping does not let deletions flow
        if resume_after is None:
            count = 0
            async for batch in self._unseen(entity_type, pass_id, 5000):
                count += len(batch)
            await self._gate(entity_type, count, lambda: self._unseen(entity_type, pass_id, 5000))
        after = resume_after
        while True:
            unseen = await self.store.unseen_links(
                iid, entity_type, pass_id, after=after, limit=self.cfg.batch_size
            )
            if not unseen:
                return
            if self.control.pause_requested:
                raise Interrupted("pause")
            after = unseen[-1].source_id
            leaving = [k for k in unseen if self._leaves(entity_type, k)]
            checkpoint = {**state, "phase": "delete", "cursor": after}
            await self._deprovision(entity_type, leaving, pass_id, checkpoint)
            if self.control.stop_requested:
                raise Interrupted("stop")

    async def _deprovision_leavers(self, entity_type: str, state: dict[str, Any]) -> None:
        """An incremental pass's objects that left their scope: counted against the
        threshold as a whole, then disabled or deleted."""
        leaving = [k for k in self._leaving.pop(entity_type, []) if self._leaves(entity_type, k)]
        if not leaving:
            return

        async def all_of_them() -> AsyncIterator[list[Link]]:
            yield leaving

        await self._gate(entity_type, len(leaving), all_of_them)
        for i in range(0, len(leaving), self.cfg.batch_size):
            checkpoint = {**state, "phase": "read"}
            batch = leaving[i : i + self.cfg.batch_size]
            await self._deprovision(entity_type, batch, state["pass_id"], checkpoint)

    def _leaves(self, entity_type: str, link: Link) -> bool:
        """Whether deprovisioning *link* now does something (and a dry run has not
        planned it already, and it is not held back by an escrow not yet due)."""
        return (
            (entity_type, link.source_id) not in self._planned_out
            and not self._held(entity_type, link.source_id)
            and self._deprovision_op(entity_type, link) is not None
        )

    async def _deprovision(
        self, entity_type: str, links: Sequence[Link], pass_id: str, checkpoint: Mapping[str, Any]
    ) -> None:
        """Disable or delete *links*' objects; one store commit with *checkpoint*."""
        ops = [op for k in links if (op := self._deprovision_op(entity_type, k)) is not None]
        hashes = {k.source_id: k.hash for k in links}
        stats, upserts, removed, failed = await self._apply_ops(entity_type, ops, hashes, None)
        now = self.clock.now()
        escrows = [
            self._escrow(
                entity_type, op.source_id, "target", f"{op.kind} failed: {reason}", pass_id, now
            )
            for op, reason in failed
        ]
        self.escrowed += len(escrows)
        self.job = replace(self.job, stats=self.job.stats + stats + JobStats(processed=len(ops)))
        await self._commit(
            BatchCommit(
                job=self._with_checkpoint(checkpoint),
                entity_type=entity_type,
                upsert_links=upserts,
                delete_links=removed,
                add_escrows=escrows,
            )
        )
        self._track_escrows(entity_type, escrows, ())

    async def _unseen(self, entity_type: str, pass_id: str, size: int) -> AsyncIterator[list[Link]]:
        """The links a full pass did not see and would deprovision, in batches."""
        after = None
        while batch := await self.store.unseen_links(
            self.cfg.id, entity_type, pass_id, after=after, limit=size
        ):
            after = batch[-1].source_id
            yield [k for k in batch if self._leaves(entity_type, k)]

    async def _gate(
        self,
        entity_type: str,
        count: int,
        leaving: Callable[[], AsyncIterator[list[Link]]],
    ) -> None:
        """Check *count* deprovisionings against the threshold. Over it (and not approved):
        stage them all and raise :class:`TooManyDeletes`, before anything is touched."""
        if not count:
            return
        iid = self.cfg.id
        total = await self.store.count_links(iid, entity_type)
        limit = self.cfg.deletion_threshold
        reasons = []
        if limit.count is not None and count > limit.count:
            reasons.append(f"more than {limit.count}")
        if limit.percent is not None and count * 100 > limit.percent * total:
            reasons.append(f"more than {limit.percent:g}% of {total}")
        if count == total:
            reasons.append("every object in the target: the source returned none of them")
        if not reasons or self.deletions_approved:
            await self.log(
                "info",
                f"{entity_type}: {count} objects left the source or its scope; deprovisioning"
                + (" (approved)" if reasons else ""),
            )
            return
        if self.plan is not None:
            await self.plan.add(
                [
                    {
                        "action": "gate",
                        "entityType": entity_type,
                        "reason": "TooManyDeletes",
                        "message": f"a run would stop here: {count} deletions, {'; '.join(reasons)}",
                    }
                ]
            )
            return
        now = self.clock.now()
        async for batch in leaving():
            staged = [
                StagedDeletion(
                    integration_id=iid,
                    entity_type=entity_type,
                    source_id=k.source_id,
                    target_id=k.target_id,
                    staged_at=now,
                )
                for k in batch
            ]
            await self.store.commit_batch(
                BatchCommit(job=self.job, entity_type=entity_type, staged_deletions=staged)
            )
        raise TooManyDeletes(
            f"{count} deletions staged, not applied: {'; '.join(reasons)}. "
            "Approve with restart --scope ForceDeletes once the source is right"
        )

    # -- helpers ------------------------------------------------------------------------------------
    async def _call(self, endpoint: str, fn: Callable[[], Any]) -> Any:
        async def on_retry(attempt: int, delay: float, exc: Exception) -> None:
            await self.log("warning", f"{endpoint}: {exc}; retry {attempt} in {delay:.1f}s")

        return await call_with_retry(
            fn, policy=self.cfg.retry, breaker=self.breakers.get(endpoint), on_retry=on_retry
        )

    def _with_checkpoint(self, checkpoint: Mapping[str, Any]) -> Job:
        data = dict(checkpoint)
        if self._failed_types:
            data["failed"] = list(self._failed_types)
        self.job = replace(self.job, checkpoint=data)
        return self.job

    async def _commit(self, batch: BatchCommit) -> None:
        """Commit *batch*; a dry run keeps only the job's progress and the seen marks.

        With the link changes of provisioned objects, the same commit drops the watermarks
        of the entity types referencing them (a group's ``members`` of changed users):
        the next pass of those types reads every object, even if this job fails, stops
        or crashes before it gets there.
        """
        if self.plan is not None:
            batch = replace(
                batch,
                upsert_links=[],
                delete_links=[],
                add_escrows=[],
                remove_escrows=[],
                pass_complete=False,
            )
            self._relinked.clear()
        elif self._relinked:
            stale = sorted(
                t
                for t in self.cfg.entity_types
                if self._relinked & set(self.mapper.references(t).values())
            )
            batch = replace(batch, stale_watermarks=stale)
        committed = set(self._relinked)
        await self.store.commit_batch(batch)
        self._relinked -= committed

    async def _checkpoint(self, entity_type: str, checkpoint: Mapping[str, Any]) -> None:
        await self._commit(
            BatchCommit(job=self._with_checkpoint(checkpoint), entity_type=entity_type)
        )

    def _set_progress(self, fraction: float) -> None:
        n = len(self.entity_types)
        progress = round(min(99.9, 100.0 * (self._index + max(0.0, min(fraction, 1.0))) / n), 1)
        estimated = None
        started = self.job.started_at
        if started is not None and progress > 0:
            elapsed = self.clock.now() - started
            estimated = started + elapsed * (100.0 / progress)
        self.job = replace(self.job, progress=progress, estimated_completion=estimated)

    def _stats_text(self) -> str:
        s = self.job.stats
        return (
            f"processed {s.processed}, created {s.created}, updated {s.updated}, deleted {s.deleted}, "
            f"disabled {s.disabled}, skipped {s.skipped}, errors {s.errors}"
        )
