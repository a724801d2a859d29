"""Stash as a source: the one place that reads Stash.

Every request sluiced sends to Stash goes through :class:`StashSource`: the generic
``read``/``get_many``/``watermark`` of a :class:`~sluiced.connectors.Source` (records
are Stash's objects as the mirror queries them, the cursor is the last id read, the
watermark the newest ``updated_at`` string), and the reads the mirror's sync and its
detection of what Stash changes without a trace need (see ``detect.py``): the newest
``updated_at`` with the counts read with it, scenes by keyset, changed scenes (their
own, their files' and their markers' ``updated_at``), small types in one request,
records by id with the missing-id retry, ids only, counts of id ranges, confirmations
by id, tags by alias.

A request is sent once: the engine retries around the generic reads (its retry
policy, behind the endpoint's circuit breaker), so the source does not retry them too.
The mirror's reconciler reads through :meth:`StashSource.retried`, a view of the source
sending each request through ``Writes.call`` (the same policy and breaker): each
request to Stash is retried by one layer.
"""

from __future__ import annotations

import copy
import re
from collections.abc import AsyncIterator, Awaitable, Callable, Mapping, Sequence
from dataclasses import dataclass
from datetime import datetime, timedelta
from typing import Any

from sluiced.connectors import LinkingSource, Page, Record, Source

from .client import StashClient, StashQueryError
from .queries import (
    ENTITY_QUERIES,
    MARKER_IDS_PAGE,
    MARKER_SCENES,
    SCENE_IDS_CHANGED,
    SCENE_IDS_PAGE,
    SCENES_PAGE,
    EntityQueries,
    confirm_query,
    range_counts_query,
    range_ids_query,
    tags_by_alias_query,
)

__all__ = ["ID_PAGE", "Newest", "StashSource", "since_value"]

#: Ids per request when scenes' or markers' ids are read.
ID_PAGE = 10_000
#: Names looked up a request among tags' aliases (where merged tags went).
ALIASES_PER_REQUEST = 50
_MISSING = re.compile(r"with id (\d+) not found")

Answer = dict[str, Any]
#: Sends one request: ``await calls(request)``.
Calls = Callable[[Callable[[], Awaitable[Answer]]], Awaitable[Answer]]


def since_value(watermark: str, overlap: timedelta) -> str:
    """``watermark - overlap`` as Stash compares it: in the watermark's offset, to the
    second, the offset dropped (so that every ``updated_at`` of that second is greater)."""
    moment = datetime.fromisoformat(watermark.replace("Z", "+00:00"))
    return (moment - overlap).strftime("%Y-%m-%dT%H:%M:%S")


def find_field(field: str) -> str:
    """The query answering a result field: ``performers`` -> ``findPerformers``."""
    return "find" + field[0].upper() + field[1:]


async def _once(request: Callable[[], Awaitable[Answer]]) -> Answer:
    return await request()


@dataclass(frozen=True)
class Newest:
    """What is read before a pass: the newest ``updated_at`` (None: no object) and
    Stash's count of the type (and, for scenes, of markers) at that moment."""

    watermark: str | None
    count: int | None
    markers: int | None = None


def links(kind: str, record: Mapping[str, Any]) -> dict[str, set[str]]:
    """The entities *record* (of *kind*) links to, by entity type."""
    ids: dict[str, set[str]] = {"performer": set(), "tag": set(), "studio": set()}

    def add(k: str, objs: Any) -> None:
        for o in objs or ():
            ids[k].add(str(o["id"]))

    if kind == "performer":
        add("tag", record.get("tags"))
    elif kind == "tag":
        add("tag", record.get("parents"))
        add("tag", record.get("children"))
    elif kind == "studio":
        add("tag", record.get("tags"))
        add("studio", [record["parent_studio"]] if record.get("parent_studio") else [])
    elif kind == "scene":
        add("performer", record.get("performers"))
        add("tag", record.get("tags"))
        add("studio", [record["studio"]] if record.get("studio") else [])
        for marker in record.get("scene_markers") or ():
            add("tag", [marker["primary_tag"]] if marker.get("primary_tag") else [])
            add("tag", marker.get("tags"))
    return ids


class StashSource(Source, LinkingSource):
    def __init__(
        self,
        client: StashClient,
        *,
        overlap: timedelta = timedelta(minutes=70),
        queries: Mapping[str, EntityQueries] | None = None,
    ) -> None:
        self.client = client
        self.endpoint = client.endpoint
        #: How far before its watermark an incremental read starts again.
        self.overlap = overlap
        #: Whether the source's own table set ``overlap`` (a mirror's then does not count).
        self.overlap_set = False
        #: The queries of each entity type (plugins' types join the built-in ones).
        self.queries: dict[str, EntityQueries] = dict(ENTITY_QUERIES)
        self.queries.update(queries or {})
        #: How each request is sent: once (see :meth:`retried`).
        self.calls: Calls = _once

    def retried(self, calls: Calls) -> StashSource:
        """The same source (its client, overlap and queries) sending each request
        through *calls* (``Writes.call``: retried, behind the circuit breaker); this
        source is left as it is."""
        view = copy.copy(self)
        view.calls = calls
        return view

    async def aclose(self) -> None:
        await self.client.aclose()

    async def validate(self) -> str:
        return f"Stash {await self.client.version()} at {self.client.url}"

    async def _query(self, document: str, variables: Mapping[str, Any] | None = None) -> Answer:
        return await self.calls(lambda: self.client.execute(document, variables))

    def _field(self, kind: str) -> tuple[EntityQueries, str]:
        q = self.queries[kind]
        return q, find_field(q.field)

    # -- the Source contract -------------------------------------------------------------
    async def watermark(self, entity_type: str) -> str | None:
        return (await self.newest(entity_type)).watermark

    async def read(
        self, entity_type: str, *, since: str | None, cursor: Any, page_size: int
    ) -> AsyncIterator[Page]:
        after = int(cursor or 0)
        value = since_value(since, self.overlap) if since else None
        # A page's fraction is of the whole pass: a read resumed after a cursor counts
        # what came before it as done.
        if entity_type == "scene" and value is None:
            seen, total, before = 0, 0, 0
            while True:
                count, page = await self.scene_page(after, page_size)
                if not page:
                    return
                if not total:  # *count*: what was left at the start
                    total = count
                    if after:  # one request, on a resume only
                        total = max((await self.newest("scene")).count or 0, count)
                        before = total - count
                seen += len(page)
                after = int(page[-1]["id"])
                yield Page(
                    items=[Record(id=s["id"], data=s, cursor=int(s["id"])) for s in page],
                    fraction=(before + seen) / max(total, 1),
                    exhaustive=True,
                )
        if entity_type == "scene":
            every = sorted(await self.changed_scene_ids(value or ""))
            ids = [i for i in every if i > after]
            before = len(every) - len(ids)
            for n in range(0, len(ids), page_size):
                chunk = [str(i) for i in ids[n : n + page_size]]
                found = await self.get_many("scene", chunk)
                yield Page(
                    items=[found[k] for k in sorted(found, key=int)],
                    fraction=(before + n + len(chunk)) / len(every),
                )
            return
        matching = await self.matching(entity_type, value)
        records = [r for r in matching if int(r["id"]) > after]
        before = len(matching) - len(records)
        for n in range(0, len(records), page_size):
            page = records[n : n + page_size]
            yield Page(
                items=[Record(id=r["id"], data=r, cursor=int(r["id"])) for r in page],
                fraction=(before + n + len(page)) / len(matching),
                exhaustive=value is None,
            )

    async def get_many(self, entity_type: str, ids: Sequence[str]) -> Mapping[str, Record]:
        """By id; a missing id fails Stash's whole call, so it is dropped and the rest
        asked again."""
        found, _ = await self.by_ids(entity_type, ids)
        return {r["id"]: Record(id=r["id"], data=r, cursor=int(r["id"])) for r in found}

    def links(self, entity_type: str, data: Mapping[str, Any]) -> Mapping[str, set[str]]:
        return links(entity_type, data)

    # -- what a pass reads ------------------------------------------------------------------
    async def newest(self, kind: str) -> Newest:
        """The newest ``updated_at`` and the counts, in one request."""
        q, find = self._field(kind)
        answer = await self._query(q.newest)
        rows = answer[find][q.field]
        return Newest(
            watermark=str(rows[0]["updated_at"]) if rows else None,
            count=answer[find].get("count"),
            markers=(answer.get("findSceneMarkers") or {}).get("count"),
        )

    async def matching(self, kind: str, since: str | None) -> list[dict[str, Any]]:
        """Every object of *kind* (updated after *since*, a :func:`since_value`, if
        given), sorted by id, in one request."""
        q, find = self._field(kind)
        criteria = {"updated_at": {"value": since, "modifier": "GREATER_THAN"}} if since else None
        return list((await self._query(q.matching, {"filter": criteria}))[find][q.field])

    async def scene_page(self, after: int, per_page: int) -> tuple[int, list[dict[str, Any]]]:
        """``(count of scenes after *after*, the first *per_page* of them)`` by keyset."""
        data = (
            await self._query(
                SCENES_PAGE,
                {
                    "filter": {"id": {"value": after, "modifier": "GREATER_THAN"}},
                    "per_page": per_page,
                },
            )
        )["findScenes"]
        return int(data["count"]), list(data["scenes"])

    async def changed_scene_ids(self, since: str) -> set[int]:
        """Scenes changed after *since* (a :func:`since_value`): their own
        ``updated_at``, their files' or their markers' (which do not bump the scene)."""
        ts = {"value": since, "modifier": "GREATER_THAN"}
        changed: set[int] = set()
        for criterion in (
            {"updated_at": ts},
            {"files_filter": {"updated_at": ts}},
            {"markers_filter": {"updated_at": ts}},
        ):
            data = await self._query(SCENE_IDS_CHANGED, {"filter": criterion})
            changed.update(int(s["id"]) for s in data["findScenes"]["scenes"])
        return changed

    async def by_ids(self, kind: str, ids: Sequence[str]) -> tuple[list[dict[str, Any]], list[str]]:
        """Records with these ids, and the ids Stash does not have. One missing id fails
        Stash's whole call: drop it, note it, ask again for the rest."""
        q, find = self._field(kind)
        wanted, missing = list(ids), []
        while wanted:
            try:
                data = await self._query(q.by_ids, {"ids": wanted})
            except StashQueryError as exc:
                found = _MISSING.search(str(exc))
                if found is None or found.group(1) not in wanted:
                    raise
                wanted.remove(found.group(1))
                missing.append(found.group(1))
                continue
            return list(data[find][q.field]), missing
        return [], missing

    # -- what detection reads ---------------------------------------------------------------
    async def ids(self, kind: str) -> AsyncIterator[list[int]]:
        """Stash's ids of *kind*, ids only, in ascending pages (scenes by keyset, ID_PAGE
        a request; other types in one request)."""
        if kind == "scene":
            after = 0
            while True:
                data = await self._query(SCENE_IDS_PAGE, {"after": after, "per_page": ID_PAGE})
                page = [int(s["id"]) for s in data["findScenes"]["scenes"]]
                if page:
                    yield page
                if len(page) < ID_PAGE:
                    return
                after = max(page)
        q, find = self._field(kind)
        data = (await self._query(q.all_ids))[find]
        yield [int(o["id"]) for o in data[q.field]]

    async def marker_ids(self) -> AsyncIterator[list[int]]:
        """Stash's marker ids, in pages of ID_PAGE sorted by id."""
        page_number = 1
        while True:
            data = await self._query(MARKER_IDS_PAGE, {"page": page_number, "per_page": ID_PAGE})
            page = [int(m["id"]) for m in data["findSceneMarkers"]["scene_markers"]]
            if not page:
                return
            yield page
            if len(page) < ID_PAGE:
                return
            page_number += 1

    async def marker_scenes(self, marker_ids: Sequence[int]) -> set[int]:
        """Stash's scenes of these markers; a marker gone meanwhile is left out."""
        scenes: set[int] = set()
        for n in range(0, len(marker_ids), ID_PAGE):
            wanted = [str(i) for i in marker_ids[n : n + ID_PAGE]]
            while wanted:
                try:
                    data = await self._query(MARKER_SCENES, {"ids": wanted})
                except StashQueryError as exc:
                    found = _MISSING.search(str(exc))
                    if found is None or found.group(1) not in wanted:
                        raise
                    wanted.remove(found.group(1))
                    continue
                scenes.update(
                    int(m["scene"]["id"]) for m in data["findSceneMarkers"]["scene_markers"]
                )
                break
        return scenes

    async def range_counts(self, ranges: Sequence[tuple[int, int]], *, markers: bool) -> list[int]:
        """For each range of scene ids, Stash's count of scenes (or markers) in it; one
        request (``per_page: 0``)."""
        answer = await self._query(range_counts_query(ranges, markers=markers))
        return [int(answer[f"r{k}"]["count"]) for k in range(len(ranges))]

    async def range_ids(
        self, ranges: Sequence[tuple[int, int]], *, markers: bool
    ) -> list[list[dict[str, Any]]]:
        """For each range of scene ids, Stash's scenes (``{id}``) or markers (``{id
        scene {id}}``) in it; one request."""
        answer = await self._query(range_ids_query(ranges, markers=markers))
        field = "scene_markers" if markers else "scenes"
        return [list(answer[f"r{k}"][field]) for k in range(len(ranges))]

    async def gone(self, kind: str, ids: Sequence[int]) -> list[int]:
        """Which of *ids* Stash does not have, each asked with its own ``find<X>(id)``
        in one request (null: it does not exist)."""
        part = [str(i) for i in ids]
        answer = await self._query(confirm_query(kind, part))
        return [int(i) for k, i in enumerate(part) if answer.get(f"a{k}") is None]

    async def tags_by_alias(self, names: Sequence[str]) -> list[dict[str, Any]]:
        """The tags having one of *names* as alias (where merged tags went), by id."""
        found: dict[str, dict[str, Any]] = {}
        for n in range(0, len(names), ALIASES_PER_REQUEST):
            part = names[n : n + ALIASES_PER_REQUEST]
            answer = await self._query(
                tags_by_alias_query(len(part)), {f"n{k}": name for k, name in enumerate(part)}
            )
            for k in range(len(part)):
                found.update((t["id"], t) for t in answer[f"a{k}"]["tags"])
        return [found[i] for i in sorted(found, key=int)]
