"""The ``sync_scenes`` job (seed 001): the given scenes, fully, with all they link to.

* The ids are read as Stash reads them (Go's ``strconv.Atoi``: an optional sign and
  decimal digits) and deduplicated as integers *before* anything is asked: one
  malformed or duplicate id fails Stash's whole ``findScenes(ids:)`` call ("converting
  ids: strconv.Atoi ...", "validating ids: duplicate id found: N"). An id that cannot
  be a scene's (``"scene123"``, ``"0"``) is logged as an error and counted in the job's
  errors, like an id Stash does not have; the other scenes sync. Duplicates are synced
  once.
* Scenes are asked for a batch at a time (one request, then what they link to that the
  mirror lacks). An id Stash does not have is an error, and leaves the mirror.
* Each scene commits on its own, with the job's position and counts: progress moves
  scene by scene, in memory (the API shows it while the job runs); the daemon's store
  is written once a batch, and takes its counts from the mirror if the job resumes.
"""

from __future__ import annotations

import re
from collections.abc import Iterable, Mapping
from dataclasses import dataclass, replace
from typing import TYPE_CHECKING, Any

from sluiced.engine import EngineResult
from sluiced.models import JobStats

if TYPE_CHECKING:
    from .sync import StashSync

__all__ = ["BATCH", "SceneIds", "scene_ids", "sync_scenes"]

#: Scenes asked for in one request (seed 001 expects 1 to 100 scenes a job).
BATCH = 100
_ATOI = re.compile(r"[+-]?[0-9]+")
_LARGEST = 2**63 - 1  # Go's int and SQLite's INTEGER


@dataclass(frozen=True)
class SceneIds:
    #: Distinct scene ids, canonical (``"007"`` -> ``"7"``), in the order first given.
    ids: list[str]
    #: Ids that cannot be a Stash scene's, as given.
    malformed: list[str]
    #: How many ids repeated one given before them.
    duplicates: int


def scene_ids(given: Iterable[Any]) -> SceneIds:
    """Sort *given* into ids to ask Stash for and ids that cannot be a scene's."""
    ids: list[str] = []
    seen: set[int] = set()
    malformed: list[str] = []
    duplicates = 0
    for raw in given:
        text = str(raw)
        value = int(text) if _ATOI.fullmatch(text) else 0
        if not 1 <= value <= _LARGEST:
            malformed.append(text)
        elif value in seen:
            duplicates += 1
        else:
            seen.add(value)
            ids.append(str(value))
    return SceneIds(ids=ids, malformed=malformed, duplicates=duplicates)


async def sync_scenes(sync: StashSync, given: list[Any]) -> EngineResult:
    """Run a ``sync_scenes`` job with *sync*'s mirror and Stash client; resumable from
    the position it commits after every scene (``{"done": n}``: the first n ids)."""
    from .position import deletions, upserts

    assert sync.job is not None
    wanted = scene_ids(given)
    ids = wanted.ids
    position = await sync._resume()
    await sync._save(stage="scene")
    if not position:  # the first start: ids Stash would refuse are errors, counted once
        for text in wanted.malformed:
            await sync.ctx.log(
                "error", f'scene id "{text}" is not a Stash scene id (a positive integer)'
            )
        if wanted.duplicates:
            await sync.ctx.log(
                "info", f"{wanted.duplicates} repeated scene ids: each scene is synced once"
            )
        await sync._write("scene", (), {"done": 0}, JobStats(errors=len(wanted.malformed)))
        await sync._save()
    done = int(position.get("done", 0))
    for n in range(done, len(ids), BATCH):
        chunk = ids[n : n + BATCH]
        page, _ = await sync.source.by_ids("scene", chunk)  # the missing ones: not in *found*
        await sync._ensure_linked("scene", page)
        found: Mapping[str, Mapping[str, Any]] = {str(r["id"]): r for r in page}
        new = set(await sync.mirror.missing("scene", [int(i) for i in chunk]))
        for k, ident in enumerate(chunk, start=n + 1):
            key, record = int(ident), found.get(ident)
            if record is None:
                await sync.ctx.log("error", f"scene {ident} does not exist in Stash")
                ops = deletions([key])
                delta = JobStats(errors=1, deleted=int(key not in new))
            else:
                ops = upserts([record])
                delta = JobStats(processed=1, created=int(key in new), updated=int(key not in new))
            await sync._write("scene", ops, {"done": k}, delta)
            # In memory: the API shows it at once, the store gets it at the batch's end.
            sync.job = replace(sync.job, progress=min(99.9, round(100.0 * k / len(ids), 1)))
        await sync._save()
        await sync._boundary()
    await sync._save(stage=None)
    return EngineResult(job=sync.job)
