"""Detection of what Stash changes without a trace (detect.py), in process: the id
comparison, the count shortcut and the confirmation by id, against a real mirror file
and a stand-in for the sync's requests."""

from __future__ import annotations

import itertools
import re
import sqlite3
from collections.abc import AsyncIterator, Mapping
from datetime import timedelta
from pathlib import Path
from typing import Any

import pytest

from sluiced.connectors import Writes
from sluiced.models import JobStats
from sluiced.plugins.stash import detect
from sluiced.plugins.stash.entities import BUILTIN_ENTITY_TYPES
from sluiced.plugins.stash.mirror import Mirror
from sluiced.plugins.stash.reconcile import StashReconciler
from sluiced.plugins.stash.source import StashSource


async def pages(*chunks: list[int]) -> AsyncIterator[list[int]]:
    for chunk in chunks:
        yield chunk


def held(ids: list[int]) -> Any:
    async def mirror_ids(after: int, until: int | None) -> list[int]:
        top = until if until is not None else 10**9
        return [i for i in sorted(ids) if after < i <= top][:2]  # small chunks: the loop

    return mirror_ids


async def test_ids_are_compared_range_by_range() -> None:
    mirror = [1, 2, 4, 5, 7, 10, 11]
    extra, lacking, empty = await detect._diff(pages([2, 3], [5, 7, 9]), held(mirror))
    assert (extra, lacking, empty) == ([1, 4, 10, 11], [3, 9], False)
    # A page shifted back by a concurrent insertion repeats ids: nothing counted twice.
    extra, lacking, _ = await detect._diff(pages([2, 3], [3, 5], [2, 3]), held([2, 3, 5]))
    assert (extra, lacking) == ([], [])
    assert await detect._diff(pages(), held([1, 2])) == ([1, 2], [], True)


class Stand(Writes):
    """What detect.py uses: the engine's writes, and a reconciler whose source's
    requests are answered from *stash* (ids) and *still_there* (ids the id list missed
    but ``find<X>(id)`` still finds)."""

    def __init__(self, mirror: Mirror, stash: list[int], still_there: set[int]) -> None:
        self.mirror = mirror
        self.endpoint = "http://stash/graphql"
        source = StashSource(self, overlap=timedelta(minutes=70))
        types = {e.name: e for e in BUILTIN_ENTITY_TYPES}
        self.reconciler = StashReconciler(mirror, source, types, page_size=100)
        self.page_size = 100
        self.stash = stash
        self.still_there = still_there
        self.sent: list[str] = []
        self.stats = JobStats()
        self.logs: list[str] = []

    async def log(self, level: str, message: str) -> None:
        self.logs.append(message)

    async def call(self, request: Any) -> Any:
        return await request()

    async def apply(self, kind: str, data: Any, state: Any = None) -> None:
        await self.mirror.apply(kind, data, state)

    async def delete(self, kind: str, ids: Any, state: Any = None) -> int:
        self.stats = self.stats + JobStats(deleted=len(ids))
        return await self.mirror.delete(kind, [int(i) for i in ids], state)

    async def execute(self, document: str, variables: Mapping[str, Any] | None = None) -> Any:
        self.sent.append(document.split()[1].split("(")[0])
        if "query Confirm" in document:
            asked = re.findall(r'(a\d+): findPerformer\(id: "(\d+)"\)', document)
            return {
                alias: ({"id": i} if int(i) in self.still_there else None) for alias, i in asked
            }
        return {"findPerformers": {"performers": [{"id": str(i)} for i in self.stash]}}


@pytest.fixture
async def mirror(tmp_path: Path) -> AsyncIterator[Mirror]:
    m = Mirror(tmp_path / "mirror.sqlite3", BUILTIN_ENTITY_TYPES)
    await m.apply("performer", [{"id": str(i), "name": f"p{i}"} for i in range(1, 6)])
    yield m
    await m.aclose()


async def test_equal_counts_cost_no_request(mirror: Mirror) -> None:
    stand = Stand(mirror, [1, 2, 3, 4], set())
    await detect.reconcile(stand.reconciler, stand, "performer", False, 5)
    assert stand.sent == [] and await mirror.count("performer") == 5


async def test_only_deletions_confirmed_by_id_leave_the_mirror(mirror: Mirror) -> None:
    stand = Stand(mirror, [1, 2, 4], still_there={3})
    await detect.reconcile(stand.reconciler, stand, "performer", False, 3)
    assert stand.sent == ["PerformersIds", "Confirm"]
    assert await mirror.ids("performer") == [1, 2, 3, 4] and stand.stats.deleted == 1


async def test_an_empty_answer_is_refused(mirror: Mirror) -> None:
    from sluiced.errors import SyncError

    stand = Stand(mirror, [], set())
    with pytest.raises(SyncError, match="refusing to delete them"):
        await detect.reconcile(stand.reconciler, stand, "performer", False, 0)
    assert await mirror.count("performer") == 5 and "Confirm" not in stand.sent


async def test_a_tags_children_replace_the_rows_naming_it_parent(tmp_path: Path) -> None:
    m = Mirror(tmp_path / "m.sqlite3", BUILTIN_ENTITY_TYPES)
    tag = {"name": "t", "parents": [], "children": []}
    await m.apply("tag", [{**tag, "id": "1"}, {**tag, "id": "2", "parents": [{"id": "1"}]}])
    await m.apply("tag", [{**tag, "id": "3"}])
    # tagUpdate(id: 1, child_ids: [3]): only tag 1 is re-read.
    await m.apply("tag", [{**tag, "id": "1", "children": [{"id": "3"}]}])
    with sqlite3.connect(m.path) as c:
        assert c.execute("SELECT tag_id, parent_id FROM tag_parents").fetchall() == [(3, 1)]
    await m.aclose()


async def test_markers_deleted_with_their_tag_take_their_tags(tmp_path: Path) -> None:
    m = Mirror(tmp_path / "m.sqlite3", BUILTIN_ENTITY_TYPES)
    await m.apply("tag", [{"id": str(i), "name": "t"} for i in (1, 2)])
    marker = {"id": "9", "title": "", "seconds": 1.0, "primary_tag": {"id": "1"}}
    scene = {"id": "5", "scene_markers": [{**marker, "tags": [{"id": "2"}]}]}
    await m.apply("scene", [scene])
    await m.delete("tag", [1])
    with sqlite3.connect(m.path) as c:
        assert c.execute("SELECT count(*) FROM markers").fetchone() == (0,)
        assert c.execute("SELECT count(*) FROM marker_tags").fetchone() == (0,)
    await m.aclose()


@pytest.mark.parametrize(("lo", "hi"), [(1, 100), (1, 15), (5, 5), (1, 100_000), (17, 2**31 - 1)])
def test_ranges_split_in_at_most_fanout_contiguous_parts(lo: int, hi: int) -> None:
    parts = detect._split(lo, hi)
    assert 1 <= len(parts) <= detect.FANOUT and parts[0][0] == lo and parts[-1][1] == hi
    assert all(a[1] + 1 == b[0] for a, b in itertools.pairwise(parts))
