"""What Stash changes without a trace, found on every pass (incremental ones too).

Stash bumps no ``updated_at`` when an object is deleted (links cascade), when tags are
merged (``tagsMerge`` re-points scenes', markers', performers', studios' and child
tags' links to the destination, gives it the sources' names, aliases and stash ids,
and deletes the sources) or when a marker is deleted (its scene is untouched). So after
the changed records of an entity type are applied, each pass compares sets:

* **Counts first.** Stash's ``count`` of the type comes with the watermark (the same
  request, read before the pass), scenes' together with the markers' count. Every
  object Stash had then is in the mirror or among the changes just applied, so the
  mirror holds at least those: equal counts mean nothing vanished, and a pass with no
  change costs no request more. A deletion racing the pass is found by the next one.
* **Then ids.** When the counts differ (and on every full pass) Stash's ids are read,
  ids only (performers, tags, studios in one request; scenes by keyset, 10,000 a page),
  and compared with the mirror's, range by range (flat memory). Ids the mirror lacks
  are fetched by id; ids Stash lacks are each confirmed with ``find<X>(id) == null``
  (100 a request) before the mirror drops them, and an empty answer while the mirror
  holds rows is refused: nothing is deleted.
* **Scenes narrowed by counts.** An incremental pass first narrows where scenes
  differ: the scene ids are split in 16 ranges whose counts (``per_page: 0``, 64 in one
  request) are compared with the mirror's, those that differ split again, down to
  ranges of at most 32 ids, whose ids are then read. One deleted scene among 100,000
  costs 3 small requests of counts and one of a few ids. Deletions in more than 64
  ranges fall back to reading every id.
* **Merges.** What linked to a deleted object is read again by id (scenes, performers,
  studios; a merge re-pointed those links); for a deleted tag, the tags having its name
  as an alias are read again: ``tagsMerge`` makes the sources' names aliases of the
  destination, which also got their aliases, stash ids, parents and children (its
  record lists them all; the children's ``tag_parents`` rows follow it). These re-reads
  are owed in the deletion's own transaction and done until none is left
  (``pending.py``): a crash, a pause or a failure between the two loses none.
* **Markers.** When the markers' count differs, the same narrowing over scene ids (the
  markers of the scenes in a range are counted) finds the ranges, whose markers are
  listed with their scene (or, past 64 ranges, every marker id is read, 10,000 a page);
  the scenes of markers gone from Stash, or missing from the mirror, are read again by
  id: a scene's record is the authority on its markers.

``tagUpdate(child_ids:)`` bumps only the parent: a tag's record lists its ``children``
too, and the mirror replaces the ``tag_parents`` rows naming it as parent (see
:attr:`~.entities.EntityType.inverse`).
"""

from __future__ import annotations

from collections.abc import AsyncIterator, Awaitable, Callable, Sequence
from typing import TYPE_CHECKING, Any

from sluiced.errors import SyncError

from .pending import drain, owe, reread
from .source import ID_PAGE

if TYPE_CHECKING:
    from sluiced.connectors import Writes

    from .reconcile import StashReconciler

__all__ = ["ID_PAGE", "reconcile", "reconcile_markers"]

#: Ids per ``find<X>(id)`` confirmation request.
CONFIRM_BATCH = 100
#: Narrowing scenes' and markers' differences by counts: each range of scene ids that
#: differs is split in FANOUT; ranges at most LEAF wide are listed (LEAVES_PER_REQUEST a
#: request); more than MAX_RANGES differing ranges and every id is read instead.
FANOUT = 16
LEAF = 32
MAX_RANGES = 64
COUNTS_PER_REQUEST = 64
LEAVES_PER_REQUEST = 16
TOP = 2**31 - 1  # GraphQL's Int

IdPages = AsyncIterator[list[int]]
MirrorIds = Callable[[int, int | None], Awaitable[list[int]]]


async def reconcile(
    r: StashReconciler, writes: Writes, kind: str, full: bool, counted: int | None
) -> None:
    """Make the mirror's set of *kind* equal Stash's (see the module). *counted* is
    Stash's count read with the watermark (``None``: unknown, compare ids)."""
    held = await r.mirror.count(kind)
    if not full and counted is not None and counted == held:
        return
    q = r.entity_types[kind].queries

    async def mirror_ids(after: int, until: int | None) -> list[int]:
        return await r.mirror.ids(kind, after=after, until=until)

    if counted == 0 and held:
        raise SyncError(
            f"Stash answered no {q.field} while the mirror holds {held}; refusing to delete them"
        )
    leaves = await _narrow(r, markers=False) if kind == "scene" and not full else None
    if leaves is not None:
        (extra, lacking), empty = await _diff_leaves(r, leaves), False
    else:
        extra, lacking, empty = await _diff(r.source.ids(kind), mirror_ids)
    if empty and held:
        raise SyncError(
            f"Stash answered no {q.field} while the mirror holds {held}; refusing to delete them"
        )
    if lacking:
        await writes.log(
            "warning",
            f"{kind}: {len(lacking)} {q.field} in Stash were missing from the mirror; fetching them",
        )
        await reread(r, writes, kind, lacking)
    if extra:
        await _remove(r, writes, kind, extra)


async def reconcile_markers(r: StashReconciler, writes: Writes, counted: int | None) -> None:
    """Read again the scenes whose markers were deleted (or are missing) without their
    scene being bumped, when the markers' counts differ."""
    held = await r.mirror.marker_count()
    if counted is not None and counted == held:
        return

    async def mirror_ids(after: int, until: int | None) -> list[int]:
        return await r.mirror.marker_ids(after=after, until=until)

    leaves = await _narrow(r, markers=True)
    if leaves is not None:
        extra, lacking, scenes = await _diff_marker_leaves(r, leaves)
    else:
        extra, lacking, _ = await _diff(r.source.marker_ids(), mirror_ids)
        scenes = set(await r.mirror.marker_scenes(extra))
        scenes.update(await r.source.marker_scenes(lacking))
    if scenes:
        await reread(r, writes, "scene", sorted(scenes))
        await writes.log(
            "info",
            f"scene: re-read {len(scenes)} scenes whose markers changed without a trace "
            f"({len(extra)} markers gone, {len(lacking)} missing)",
        )


def _split(lo: int, hi: int) -> list[tuple[int, int]]:
    """*lo*..*hi* in at most FANOUT ranges of about equal width."""
    width = -(-(hi - lo + 1) // FANOUT)
    return [(a, min(a + width - 1, hi)) for a in range(lo, hi + 1, width)]


async def _narrow(r: StashReconciler, *, markers: bool) -> list[tuple[int, int]] | None:
    """Ranges of scene ids, each at most LEAF wide (or the open range above the mirror's
    last scene), where Stash's count of scenes (of their markers) differs from the
    mirror's: the ids from 1 to the mirror's last split in FANOUT ranges, those that
    differ split again, COUNTS_PER_REQUEST counts a request (``per_page: 0``). None when
    more than MAX_RANGES differ: reading every id is then cheaper."""
    last = await r.mirror.last_id("scene")
    pending = [*(_split(1, last) if last else []), (last + 1, TOP)]
    leaves: list[tuple[int, int]] = []
    while pending:
        counts: list[int] = []
        for n in range(0, len(pending), COUNTS_PER_REQUEST):
            part = pending[n : n + COUNTS_PER_REQUEST]
            counts += await r.source.range_counts(part, markers=markers)
        held = await r.mirror.scene_range_counts(pending, markers=markers)
        differ = [r for r, a, b in zip(pending, counts, held, strict=True) if a != b]
        leaves += [(lo, hi) for lo, hi in differ if hi - lo < LEAF or lo > last]
        pending = [
            p for lo, hi in differ if not (hi - lo < LEAF or lo > last) for p in _split(lo, hi)
        ]
        if len(leaves) + len(pending) > MAX_RANGES:
            return None
    return leaves


async def _leaf_ids(
    r: StashReconciler, leaves: Sequence[tuple[int, int]], *, markers: bool
) -> list[list[dict[str, Any]]]:
    """Stash's scenes (or markers) in each leaf range, ids only."""
    out: list[list[dict[str, Any]]] = []
    for n in range(0, len(leaves), LEAVES_PER_REQUEST):
        part = leaves[n : n + LEAVES_PER_REQUEST]
        out += await r.source.range_ids(part, markers=markers)
    return out


async def _diff_leaves(
    r: StashReconciler, leaves: Sequence[tuple[int, int]]
) -> tuple[list[int], list[int]]:
    """(scene ids only the mirror has, only Stash has) within the leaf ranges."""
    extra: list[int] = []
    lacking: list[int] = []
    for (lo, hi), found in zip(leaves, await _leaf_ids(r, leaves, markers=False), strict=True):
        in_stash = {int(s["id"]) for s in found}
        held: set[int] = set()
        start = lo - 1
        while chunk := await r.mirror.ids("scene", after=start, until=hi):
            held.update(chunk)
            start = chunk[-1]
        extra += sorted(held - in_stash)
        lacking += sorted(in_stash - held)
    return extra, lacking


async def _diff_marker_leaves(
    r: StashReconciler, leaves: Sequence[tuple[int, int]]
) -> tuple[list[int], list[int], set[int]]:
    """(markers only the mirror has, only Stash has, the scenes of both) within the
    leaf ranges of scene ids."""
    extra: list[int] = []
    lacking: list[int] = []
    scenes: set[int] = set()
    for (lo, hi), found in zip(leaves, await _leaf_ids(r, leaves, markers=True), strict=True):
        in_stash = {int(m["id"]): int(m["scene"]["id"]) for m in found}
        held = await r.mirror.markers_between(lo, hi)
        extra += sorted(set(held) - set(in_stash))
        lacking += sorted(set(in_stash) - set(held))
        scenes.update(held[i] for i in set(held) - set(in_stash))
        scenes.update(in_stash[i] for i in set(in_stash) - set(held))
        # a marker moved to another scene (of the same range) re-reads both
        scenes.update(held[i] for i in set(held) & set(in_stash) if held[i] != in_stash[i])
        scenes.update(in_stash[i] for i in set(held) & set(in_stash) if held[i] != in_stash[i])
    return extra, lacking, scenes


async def _diff(stash_pages: IdPages, mirror_ids: MirrorIds) -> tuple[list[int], list[int], bool]:
    """Compare Stash's ids (pages in ascending order) with the mirror's, range by range:
    (ids only the mirror has, ids only Stash has, whether Stash answered none)."""
    extra: list[int] = []
    lacking: list[int] = []
    after, empty = 0, True
    async for page in stash_pages:
        if not page:
            continue
        empty = False
        last = max(*page, after)  # a page shifted by a concurrent change may lag behind
        in_stash = {i for i in page if after < i <= last}
        held: set[int] = set()
        start = after
        while chunk := await mirror_ids(start, last):
            held.update(chunk)
            start = chunk[-1]
        extra += sorted(held - in_stash)
        lacking += sorted(in_stash - held)
        after = last
    while chunk := await mirror_ids(after, None):  # beyond Stash's last id
        extra += chunk
        after = chunk[-1]
    return extra, lacking, empty


async def _remove(r: StashReconciler, writes: Writes, kind: str, candidates: Sequence[int]) -> None:
    """Confirm each candidate gone with ``find<X>(id)``, delete the confirmed ones with
    their links, and read again what linked to them: owed in the deletion's own
    transaction (``pending.py``), so that nothing can lose it."""
    confirmed: list[int] = []
    for n in range(0, len(candidates), CONFIRM_BATCH):
        confirmed += await r.source.gone(kind, candidates[n : n + CONFIRM_BATCH])
    if not confirmed:
        return
    linking = await r.mirror.linking(kind, confirmed)
    names = await r.mirror.names(kind, confirmed) if kind == "tag" else []
    deleted = await writes.delete(kind, [str(i) for i in confirmed], await owe(r, linking, names))
    field = r.entity_types[kind].queries.field
    await writes.log("info", f"{kind}: {deleted} deleted from the mirror (gone from Stash)")
    await drain(r, writes, note=False)
    for other, ids in linking.items():
        await writes.log(
            "info", f"{kind}: re-read {len(ids)} {other}s that linked to deleted {field}"
        )
