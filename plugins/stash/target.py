"""The mirror as a target: exactly-once, keyed by Stash's ids.

:class:`MirrorTarget` offers two capabilities of targets:

* :class:`~sluiced.connectors.TransactionalTarget`: a page of rows and the job's
  checkpoint (its position and counts, one JSON value under ``job:<id>`` in the
  mirror's ``sync_state``) commit in one transaction. After a crash the mirror, the
  position and the counts agree, and the job's stats in the daemon's store (written
  after the mirror commits) are taken from here when the job resumes: nothing is
  counted twice or lost, whatever moment the process died. A checkpoint outlives its
  job's end (a crash between the mirror's last commit and the store's "completed" must
  not run the job again from scratch) until the store says the job is over for good.
  The rows of the provisioning log a commit makes are added to the mirror's outbox
  (``change_outbox``) in the same transaction, and removed by a later one once the
  daemon's store has them.
* :class:`~sluiced.connectors.SourceKeyedTarget`: objects are held under their Stash
  ids, written as Stash returns them (an op's ``data`` is the record); the mirror
  answers which ids it lacks.

``create`` and ``update`` ops replace an object's rows; ``delete`` and ``disable`` (the
mirror keeps nothing disabled) remove it with every link to it.
"""

from __future__ import annotations

import json
from collections.abc import Awaitable, Callable, Mapping, Sequence
from dataclasses import asdict, fields
from datetime import timedelta
from typing import Any

from sluiced.connectors import (
    Checkpoint,
    JobPlan,
    Op,
    OpResult,
    PlanningTarget,
    Reconciler,
    ReconcilingTarget,
    Source,
    SourceKeyedTarget,
    Target,
    TransactionalTarget,
    Writes,
)
from sluiced.models import JobStats

from .mirror import Mirror
from .reconcile import StashReconciler
from .scenes import BATCH as SCENES_BATCH
from .scenes import scene_ids
from .source import StashSource

__all__ = ["PREFIX", "SYNC_CHANGES", "MirrorTarget", "decode", "encode"]

PREFIX = "job:"
#: The job type reading the objects Stash's hooks reported changed (``coalesce.py``).
SYNC_CHANGES = "sync_changes"
WATERMARK = "watermark:"
#: The order of a ``sync`` job's entity types (seed 000); plugins' types come after.
ORDER = ("performer", "tag", "studio", "scene")
_STATS = "stats"


def encode(where: Mapping[str, Any], stats: JobStats) -> str:
    """The ``sync_state`` value of a job at *where* having written *stats*."""
    return json.dumps({**where, _STATS: asdict(stats)}, sort_keys=True)


def decode(value: str | None) -> tuple[dict[str, Any], JobStats | None]:
    """``(where, stats)`` of a stored value; stats None when the value has none (no
    value, or one written before counts were kept with it)."""
    data = json.loads(value) if value else {}
    counts = data.pop(_STATS, None)
    if not isinstance(counts, dict):
        return data, None
    known = {f.name for f in fields(JobStats)}
    return data, JobStats(**{k: int(v) for k, v in counts.items() if k in known})


class MirrorTarget(
    Target, TransactionalTarget, SourceKeyedTarget, ReconcilingTarget, PlanningTarget
):
    """The mirror's writes (see the module), its reconciler with the Stash source, and
    the plans of its jobs."""

    def __init__(
        self, mirror: Mirror, *, page_size: int = 250, overlap: timedelta | None = None
    ) -> None:
        self.mirror = mirror
        #: ``overlap`` set in the mirror's table, where earlier versions documented it.
        self.overlap = overlap
        self.endpoint = mirror.where
        #: Objects a request and a commit (scenes a page).
        self.page_size = page_size

    async def aclose(self) -> None:
        await self.mirror.aclose()

    async def validate(self) -> str:
        counts = {k: await self.mirror.count(k) for k in self.mirror.entity_types}
        return f"mirror {self.mirror.where}: " + ", ".join(f"{v} {k}s" for k, v in counts.items())

    async def count(self, entity_type: str) -> int | None:
        return await self.mirror.count(entity_type)

    async def apply(
        self, entity_type: str, ops: Sequence[Op], *, checkpoint: Checkpoint | None = None
    ) -> Sequence[OpResult]:
        """Write *ops* and *checkpoint* in one transaction; every op succeeds (a failure
        fails the whole call, and nothing of it is written)."""
        upserts = [op.data or {} for op in ops if op.kind in ("create", "update")]
        removed = [int(op.source_id) for op in ops if op.kind in ("delete", "disable")]
        state: dict[str, str | None] = {}
        outbox: Mapping[str, str] = {}
        logged: Sequence[str] = ()
        if checkpoint is not None:
            stats = JobStats(**checkpoint.stats)
            state = {
                **checkpoint.state,
                **{WATERMARK + k: v for k, v in checkpoint.watermarks.items()},
                PREFIX + checkpoint.job_id: encode(checkpoint.position, stats),
            }
            outbox, logged = checkpoint.changes, checkpoint.logged
        await self.mirror.commit(
            entity_type if ops else None, upserts, removed, state, outbox=outbox, logged=logged
        )
        return [OpResult(ok=True, target_id=op.source_id) for op in ops]

    async def outbox(self, limit: int) -> Mapping[str, str]:
        return await self.mirror.outbox(limit)

    async def forget_changes(self, keys: Sequence[str]) -> None:
        await self.mirror.forget_outbox(keys)

    async def checkpoint(self, job_id: str) -> Checkpoint | None:
        key = PREFIX + job_id
        value = (await self.mirror.state(key)).get(key)
        if value is None:
            return None
        where, stats = decode(value)
        return Checkpoint(
            job_id=job_id, position=where, stats=asdict(stats) if stats is not None else {}
        )

    async def forget_checkpoints(self, over: Callable[[str], Awaitable[bool]]) -> int:
        drop = [key for key in await self.mirror.state(PREFIX) if await over(key[len(PREFIX) :])]
        if drop:
            await self.mirror.save_state(dict.fromkeys(drop))
        return len(drop)

    async def missing(self, entity_type: str, ids: Sequence[str]) -> list[str]:
        if entity_type not in self.mirror.entity_types:
            return []  # a type the mirror has no tables for: nothing to fetch into it
        lacking = set(await self.mirror.missing(entity_type, [int(i) for i in ids]))
        return [i for i in dict.fromkeys(ids) if int(i) in lacking]  # in the order given

    async def watermarks(self) -> Mapping[str, str]:
        found = await self.mirror.state(WATERMARK)
        return {k[len(WATERMARK) :]: v for k, v in found.items()}

    def reconciler(self, source: Source, writes: Writes) -> Reconciler | None:
        """The reconciler of a Stash source: its own requests go through
        ``writes.call`` (retried). An ``overlap`` set in the mirror's table applies to
        *source* when the source's table sets none (configs of earlier versions)."""
        if not isinstance(source, StashSource):
            return None
        if self.overlap is not None and not source.overlap_set:
            source.overlap = self.overlap
        return StashReconciler(
            self.mirror,
            source.retried(writes.call),
            self.mirror.entity_types,
            page_size=writes.page_size,
        )

    def plan_job(
        self, job_type: str, params: Mapping[str, Any], configured: Sequence[str]
    ) -> JobPlan | None:
        """``sync`` (seed 000): the included types, performers, tags, studios, scenes
        first; full with ``full_resync`` (``force``). ``sync_scenes`` (seed 001): the
        given scenes by id (see ``scenes.py``); ``sync_changes``: the objects of each
        entity type Stash's hooks reported (``ids``: lists by type), by id in one job.
        Other jobs run the configured types in that order too."""
        if job_type == SYNC_CHANGES:
            return self._changes(params.get("ids") or {}, configured)
        if job_type == "sync_scenes":
            wanted = scene_ids(params.get("scene_ids") or [])
            notes = []
            if wanted.duplicates:
                notes.append(f"{wanted.duplicates} repeated scene ids: each scene is synced once")
            return JobPlan(
                entity_types=("scene",),
                ids=wanted.ids,
                missing="scene {id} does not exist in Stash",
                rejected=[
                    f'scene id "{text}" is not a Stash scene id (a positive integer)'
                    for text in wanted.malformed
                ],
                notes=notes,
                batch_size=SCENES_BATCH,
            )
        include = {
            "performer": params.get("include_performers", True),
            "tag": params.get("include_tags", True),
            "studio": params.get("include_studios", True),
            "scene": params.get("include_scenes", True),
        }
        kinds = [k for k in ORDER if include[k] and k in configured]
        kinds += [k for k in configured if k not in ORDER]  # plugins' types, after
        if params.get("entity_types"):  # a selective_sync of seed 002
            kinds = [k for k in kinds if k in params["entity_types"]]
        full = job_type in ("full_sync", "selective_sync") or bool(
            params.get("full_resync") or params.get("force")
        )
        return JobPlan(entity_types=kinds, full=full, batch_size=self.page_size)

    def _changes(self, given: Mapping[str, Any], configured: Sequence[str]) -> JobPlan:
        """The plan of a ``sync_changes`` job: the ids *given* by entity type, by id,
        the types in the order of a ``sync``."""
        order = [*ORDER, *sorted(k for k in given if k not in ORDER)]
        checked = {k: scene_ids(given[k]) for k in order if k in given and k in configured}
        kinds = [k for k in checked if checked[k].ids]
        rejected = [
            f'"{text}" is not a Stash {kind} id'
            for kind in checked
            for text in checked[kind].malformed
        ]
        if not kinds:
            return JobPlan(entity_types=(), rejected=rejected)
        return JobPlan(
            entity_types=kinds,
            ids=checked[kinds[0]].ids,
            more_ids={k: checked[k].ids for k in kinds[1:]},
            missing="{type} {id} is gone from Stash: removed from the mirror",
            rejected=rejected,
            batch_size=SCENES_BATCH,
        )
