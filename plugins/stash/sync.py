"""The ``sync`` and ``sync_scenes`` jobs (seeds 000 and 001): Stash into the mirror.

``sync`` runs the included entity types in the order performers, tags, studios,
scenes. For each, following STASH.md:

* the watermark is the newest ``updated_at`` *string* read from Stash **before** the
  pass, stored in the mirror when the pass completes;
* an incremental pass asks for ``updated_at > watermark - overlap``, the value written
  in the watermark's own offset with the offset dropped, so the whole second is included
  (and same-second edits, writes racing the pass and a DST fall-back hour are re-read;
  the upserts are idempotent);
* performers, tags and studios are read in one ``per_page: -1`` request sorted by id;
  scenes are paged by keyset (``id > after``), and incrementally also caught through
  their files' and markers' ``updated_at`` (which do not bump the scene), then fetched
  by id in batches;
* every pass, incremental ones too, then finds what Stash changes without a trace
  (deletions, tag merges, deleted markers; ``detect.py``): counts read with the
  watermark, ids compared when they differ (always on a full pass), each deletion
  confirmed with ``find<X>(id) == null``, and none when Stash answers no rows at all
  while the mirror holds some; what linked to a deleted object is read again, owed in
  the deletion's transaction and done at the start of every pass until none is left
  (``pending.py``);
* an entity that a record links to and the mirror lacks is fetched by id first (never
  a placeholder).

Each page of rows commits with the job's position and counts in one mirror
transaction (``position.py``), so a crash resumes exactly where it was and the job's
stats are what was written. If one entity type fails the others still run and the job
reports which failed; resuming the job runs the failed ones again.
"""

from __future__ import annotations

from collections.abc import Awaitable, Callable, Mapping, Sequence
from dataclasses import dataclass, replace
from datetime import timedelta
from typing import Any

import trio

from sluiced.connectors import DriverContext, JobDriver, Writes
from sluiced.engine import EngineResult, Interrupted, single_errors
from sluiced.errors import ProtocolError, SyncError
from sluiced.models import Job, JobStats
from sluiced.retrying import call_with_retry
from sluiced.store import StoreUnavailable

from .entities import EntityType
from .mirror import Mirror
from .position import PositionedWrites, forget_ended, upserts
from .reconcile import StashReconciler
from .source import StashSource, since_value
from .target import MirrorTarget

__all__ = ["ORDER", "StashSync", "since_value"]

ORDER = ("performer", "tag", "studio", "scene")


@dataclass
class _Plan:
    kinds: list[str]
    full: bool


class StashSync(PositionedWrites, JobDriver):
    """Runs jobs of a Stash integration into its mirror."""

    def __init__(
        self,
        mirror: Mirror,
        entity_types: Mapping[str, EntityType],
        *,
        overlap: timedelta,
        page_size: int = 250,
    ) -> None:
        self.mirror = mirror
        self.target = MirrorTarget(mirror)
        self.entity_types = entity_types
        self.overlap = overlap
        self.page_size = page_size
        self.job: Job | None = None
        self._failed: list[str] = []
        #: The job's position as last committed to the mirror (with ``job.stats``).
        self._where: dict[str, Any] = {}

    async def aclose(self) -> None:
        await self.mirror.aclose()

    async def validate(self) -> str:
        counts = {k: await self.mirror.count(k) for k in self.entity_types}
        return f"mirror {self.mirror.path}: " + ", ".join(f"{v} {k}s" for k, v in counts.items())

    # -- plumbing ---------------------------------------------------------------------------
    @property
    def source(self) -> StashSource:
        source = self.ctx.source
        assert isinstance(source, StashSource)
        return source

    async def _retrying(self, request: Callable[[], Awaitable[dict[str, Any]]]) -> dict[str, Any]:
        """Send a request to Stash, retried with backoff behind its circuit breaker."""
        endpoint = self.source.endpoint

        async def on_retry(attempt: int, delay: float, exc: Exception) -> None:
            await self.ctx.log("warning", f"{endpoint}: {exc}; retry {attempt} in {delay:.1f}s")

        result: dict[str, Any] = await call_with_retry(
            request,
            policy=self.ctx.cfg.retry,
            breaker=self.ctx.breakers.get(endpoint),
            on_retry=on_retry,
        )
        return result

    async def _save(self, **changes: Any) -> None:
        assert self.job is not None
        self.job = replace(self.job, **changes)
        await self.ctx.store.save_job(self.job)

    async def _boundary(self) -> None:
        if self.ctx.control.pause_requested:
            raise Interrupted("pause")
        if self.ctx.control.stop_requested:
            raise Interrupted("stop")

    async def _apply(
        self,
        kind: str,
        records: Sequence[Mapping[str, Any]],
        state: Mapping[str, str | None] | None = None,
    ) -> None:
        """Apply records read outside the pass's pages (detection's re-reads), counting
        them as processed and created or updated, in one transaction with the job's
        position, which stays where it is, and *state*."""
        created = len(await self.mirror.missing(kind, [int(r["id"]) for r in records]))
        await self._write(
            kind,
            upserts(records),
            delta=JobStats(processed=len(records), created=created, updated=len(records) - created),
            state=state,
        )
        await self._save()

    # -- fetching ---------------------------------------------------------------------------------
    async def _ensure_linked(self, kind: str, records: Sequence[Mapping[str, Any]]) -> None:
        """Fetch, by id, linked entities the mirror lacks, and their own links, first."""
        pending = [(kind, r) for r in records]
        for _ in range(20):  # chains of parents are short; bounded all the same
            wanted: dict[str, set[str]] = {}
            for k, r in pending:
                for target, ids in self.source.links(k, r).items():
                    wanted.setdefault(target, set()).update(ids)
            pending = []
            for target, ids in wanted.items():
                if target not in self.entity_types or not ids:
                    continue
                lacking = [str(i) for i in await self.mirror.missing(target, [int(i) for i in ids])]
                if not lacking:
                    continue
                fetched, gone = await self.source.by_ids(target, lacking)
                if gone:
                    await self.ctx.log(
                        "warning", f"{kind}: linked {target}s {', '.join(gone)} are gone from Stash"
                    )
                await self.mirror.apply(target, fetched)
                pending += [(target, r) for r in fetched]
            if not pending:
                return

    # -- the jobs ---------------------------------------------------------------------------------
    async def run(self, job: Job, ctx: DriverContext) -> EngineResult:
        if not isinstance(ctx.source, StashSource):
            raise ProtocolError("a stash-mirror target needs a stash source")
        self.ctx = ctx
        ctx.source.calls = self._retrying
        self.job = job
        await forget_ended(self.mirror, ctx.store, job.id)
        for kind in self.mirror.migrated:  # its watermark is gone: read whole at the next sync
            await ctx.log("info", f"mirror: the {kind} tables were migrated to this version")
        if job.type == "sync_scenes":
            from .scenes import sync_scenes

            return await sync_scenes(self, list(job.params.get("scene_ids") or []))
        return await self._sync(self._plan(job))

    def _plan(self, job: Job) -> _Plan:
        plan = self.target.plan_job(job.type, job.params, self.ctx.cfg.entity_types)
        assert plan is not None
        return _Plan(kinds=list(plan.entity_types), full=plan.full)

    async def _sync(self, plan: _Plan) -> EngineResult:
        assert self.job is not None
        position = await self._resume()
        start = int(position.get("index", 0))
        failed: dict[str, SyncError] = {}
        owed = [k for k in position.get("failed", []) if k in plan.kinds]
        order = owed + [k for k in plan.kinds[start:] if k not in owed]
        watermarks = await self.mirror.state("watermark:")
        for kind in order:
            self._failed = sorted(set(failed) | {k for k in owed if k != kind})
            index = plan.kinds.index(kind)
            resume = position if position.get("kind") == kind else {}
            await self._save(stage=kind)
            try:
                await self._pass(
                    kind,
                    index,
                    len(plan.kinds),
                    plan.full,
                    watermarks.get(f"watermark:{kind}"),
                    resume,
                )
            except StoreUnavailable:
                raise  # the job's own record cannot be written: no other type can go on
            except SyncError as exc:
                failed[kind] = exc
                await self.ctx.log(
                    "error", f"{kind}: {exc} ({exc.code}); continuing with the other types"
                )
            done = {"index": max(start, index + 1), "failed": sorted(failed)}
            await self._write(kind, (), done)
            await self._save()
        # The position stays (its last value says "done"): a crash before the store
        # records the end must not run the job again from scratch.
        await self._save(stage=None, progress=100.0 if not failed else self.job.progress)
        return EngineResult(job=self.job, full_pass=plan.full and not failed, failed=failed)

    async def _pass(
        self,
        kind: str,
        index: int,
        total: int,
        full: bool,
        stored: str | None,
        resume: Mapping[str, Any],
    ) -> None:
        writes = _DriverWrites(self)
        reconciler = StashReconciler(
            self.mirror, self.source, self.entity_types, page_size=self.page_size
        )
        await reconciler.owed(kind, writes)  # re-reads an earlier deletion owes
        if resume and not resume.get("full") and stored is None:
            resume = {}  # an incremental pass whose watermark a migration dropped: a full one
        if resume:
            newest, full = resume.get("watermark"), bool(resume.get("full"))
            counts = resume.get("counts") or [None, None]
            await self.ctx.log(
                "info", f"{kind}: resuming the pass after id {resume.get('after', 0)}"
            )
        else:
            survey = await reconciler.survey(kind)
            newest = survey.watermark
            # Stash's counts, read with the watermark: what detection compares (detect.py).
            counts = [survey.facts.get("count"), survey.facts.get("markers")]
            full = full or stored is None
            await self.ctx.log("info", f"{kind}: {'full' if full else 'incremental'} pass started")
        base = {
            "kind": kind,
            "index": index,
            "full": full,
            "watermark": newest,
            "counts": counts,
            "failed": self._failed,
        }
        since = None if full else since_value(stored or "", self.overlap)
        if kind == "scene":
            await self._scenes(base, since, int(resume.get("after", 0)), index, total)
        else:
            await self._small(kind, base, since, int(resume.get("after", 0)), index, total)
        facts = {"count": counts[0], "markers": counts[1]}
        await reconciler.reconcile(kind, full=full, facts=facts, writes=writes)
        if newest is not None:
            await self.mirror.save_state({f"watermark:{kind}": newest})
        assert self.job is not None
        s = self.job.stats
        await self.ctx.log(
            "info",
            f"{kind}: pass complete (processed {s.processed}, created {s.created}, "
            f"updated {s.updated}, deleted {s.deleted})",
        )

    async def _small(
        self, kind: str, base: dict[str, Any], since: str | None, after: int, index: int, total: int
    ) -> None:
        records = await self.source.matching(kind, since)
        records = [r for r in records if int(r["id"]) > after]  # resumed: the rest only
        for n in range(0, len(records), self.page_size):
            page = records[n : n + self.page_size]
            await self._ensure_linked(kind, page)
            await self._commit(kind, page, {**base, "after": int(page[-1]["id"])})
            await self._progress(index, total, (n + len(page)) / len(records))
            await self._boundary()

    async def _scenes(
        self, base: dict[str, Any], since: str | None, after: int, index: int, total: int
    ) -> None:
        if since is None:
            await self._all_scenes(base, after, index, total)
            return
        changed = await self.source.changed_scene_ids(since)
        ids = sorted(i for i in changed if i > after)
        for n in range(0, len(ids), self.page_size):
            chunk = [str(i) for i in ids[n : n + self.page_size]]
            page, gone = await self.source.by_ids("scene", chunk)
            if gone:  # deleted between the two questions: gone from the mirror too
                await self._delete("scene", gone)
            await self._ensure_linked("scene", page)
            await self._commit("scene", page, {**base, "after": int(chunk[-1])})
            await self._progress(index, total, (n + len(chunk)) / len(ids))
            await self._boundary()

    async def _all_scenes(self, base: dict[str, Any], after: int, index: int, total: int) -> None:
        """Every scene by keyset, the next page fetched while this one is written."""
        send, receive = trio.open_memory_channel[tuple[int, list[dict[str, Any]]]](1)

        interrupted: list[Interrupted] = []

        async def fetch(after: int) -> None:
            async with send:
                while True:
                    try:
                        count, scenes = await self.source.scene_page(after, self.page_size)
                    except Interrupted as exc:  # a retry wait cut short: the page in hand ends
                        interrupted.append(exc)
                        return
                    if not scenes:
                        return
                    after = int(scenes[-1]["id"])
                    try:
                        await send.send((count, scenes))
                    except trio.BrokenResourceError:
                        return  # the writer stopped

        seen = 0
        with single_errors():
            async with trio.open_nursery() as nursery:
                nursery.start_soon(fetch, after, name="fetch scenes")
                async with receive:
                    async for count, page in receive:
                        seen += len(page)
                        await self._ensure_linked("scene", page)
                        await self._commit("scene", page, {**base, "after": int(page[-1]["id"])})
                        await self._progress(index, total, seen / max(count, 1))
                        await self._boundary()
        if interrupted:  # the pages stopped short: never taken for the end of the scenes
            raise interrupted[0]

    async def _progress(self, index: int, total: int, fraction: float) -> None:
        assert self.job is not None
        progress = round(
            min(99.9, 100.0 * (index + max(0.0, min(fraction, 1.0))) / max(total, 1)), 1
        )
        await self._save(progress=progress)


class _DriverWrites(Writes):
    def __init__(self, sync: StashSync) -> None:
        self.sync = sync
        self.page_size = sync.page_size

    async def log(self, level: str, message: str) -> None:
        await self.sync.ctx.log(level, message)

    async def apply(
        self,
        entity_type: str,
        data: Sequence[Mapping[str, Any]],
        state: Mapping[str, str | None] | None = None,
    ) -> None:
        await self.sync._ensure_linked(entity_type, data)
        await self.sync._apply(entity_type, data, state)

    async def delete(
        self, entity_type: str, ids: Sequence[str], state: Mapping[str, str | None] | None = None
    ) -> int:
        return await self.sync._delete(entity_type, ids, state)
