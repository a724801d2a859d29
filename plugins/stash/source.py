"""Stash as a source for the generic engine (e.g. Stash into JSONL files).

With the ``stash-mirror`` target, the mirror's own driver runs the jobs (see
``sync.py``); this source serves every other target: records are Stash's objects as
the mirror queries them, the cursor is the last id read, and the watermark the newest
``updated_at`` string.
"""

from __future__ import annotations

import re
from collections.abc import AsyncIterator, Mapping, Sequence
from datetime import timedelta
from typing import Any

from sluiced.connectors import Page, Record, Source

from .client import StashClient, StashQueryError
from .queries import ENTITY_QUERIES, SCENE_IDS_CHANGED, SCENES_PAGE

__all__ = ["StashSource"]

_MISSING = re.compile(r"with id (\d+) not found")


def find_field(kind: str) -> str:
    return "find" + ENTITY_QUERIES[kind].field.capitalize()


class StashSource(Source):
    def __init__(self, client: StashClient, *, overlap: timedelta) -> None:
        self.client = client
        self.endpoint = client.endpoint
        self.overlap = overlap

    async def aclose(self) -> None:
        await self.client.aclose()

    async def validate(self) -> str:
        return f"Stash {await self.client.version()} at {self.client.url}"

    async def watermark(self, entity_type: str) -> str | None:
        q = ENTITY_QUERIES[entity_type]
        rows = (await self.client.execute(q.newest))[find_field(entity_type)][q.field]
        return str(rows[0]["updated_at"]) if rows else None

    async def read(
        self, entity_type: str, *, since: str | None, cursor: Any, page_size: int
    ) -> AsyncIterator[Page]:
        from .sync import since_value

        q = ENTITY_QUERIES[entity_type]
        after = int(cursor or 0)
        value = since_value(since, self.overlap) if since else None
        if entity_type == "scene" and value is None:
            while True:
                data = await self.client.execute(
                    SCENES_PAGE,
                    {
                        "filter": {"id": {"value": after, "modifier": "GREATER_THAN"}},
                        "per_page": page_size,
                    },
                )
                page = data["findScenes"]["scenes"]
                if not page:
                    return
                after = int(page[-1]["id"])
                yield Page(
                    items=[Record(id=s["id"], data=s, cursor=int(s["id"])) for s in page],
                    exhaustive=True,
                )
        if entity_type == "scene":
            ts = {"value": value, "modifier": "GREATER_THAN"}
            changed: set[int] = set()
            for criterion in (
                {"updated_at": ts},
                {"files_filter": {"updated_at": ts}},
                {"markers_filter": {"updated_at": ts}},
            ):
                data = await self.client.execute(SCENE_IDS_CHANGED, {"filter": criterion})
                changed.update(int(s["id"]) for s in data["findScenes"]["scenes"])
            ids = sorted(i for i in changed if i > after)
            for n in range(0, len(ids), page_size):
                found = await self.get_many("scene", [str(i) for i in ids[n : n + page_size]])
                yield Page(items=[found[k] for k in sorted(found, key=int)])
            return
        criteria = {"updated_at": {"value": value, "modifier": "GREATER_THAN"}} if value else None
        records = (await self.client.execute(q.matching, {"filter": criteria}))[
            find_field(entity_type)
        ][q.field]
        records = [r for r in records if int(r["id"]) > after]
        for n in range(0, len(records), page_size):
            page = records[n : n + page_size]
            yield Page(
                items=[Record(id=r["id"], data=r, cursor=int(r["id"])) for r in page],
                fraction=(n + len(page)) / len(records),
                exhaustive=value is None,
            )

    async def get_many(self, entity_type: str, ids: Sequence[str]) -> Mapping[str, Record]:
        """By id; a missing id fails Stash's whole call, so it is dropped and the rest
        asked again."""
        q = ENTITY_QUERIES[entity_type]
        wanted = list(ids)
        while wanted:
            try:
                data = await self.client.execute(q.by_ids, {"ids": wanted})
            except StashQueryError as exc:
                found = _MISSING.search(str(exc))
                if found is None or found.group(1) not in wanted:
                    raise
                wanted.remove(found.group(1))
                continue
            return {
                r["id"]: Record(id=r["id"], data=r, cursor=int(r["id"]))
                for r in data[find_field(entity_type)][q.field]
            }
        return {}
