"""A SCIM service provider as a source: Users and Groups listed page by page.

Entity types are the server's resource type names (``User``, ``Group``). Records are the
resources without ``meta``; a group's ``members`` keep their ``value`` (the member's id
here, which is its source id), so a schema maps them with ``referencedObject``.

Incremental reads ask for ``meta.lastModified gt <watermark - overlap>``; the watermark
is the server's own clock (its ``Date`` header) read before the pass. A server that
cannot filter on it is read whole (the engine skips unchanged objects by hash).
"""

from __future__ import annotations

from collections.abc import AsyncGenerator, AsyncIterator, Mapping, Sequence
from contextlib import aclosing
from datetime import UTC, datetime, timedelta
from email.utils import parsedate_to_datetime
from typing import Any

import trio

from sluiced.connectors import Page, Record, Source
from sluiced.engine import single_errors

from .client import ScimClient, ScimRequestError

__all__ = ["ScimSource"]


def _record(resource: Mapping[str, Any], cursor: int) -> Record:
    data = {k: v for k, v in resource.items() if k != "meta"}
    return Record(id=str(resource["id"]), data=data, cursor=cursor)


class ScimSource(Source):
    def __init__(self, client: ScimClient, *, overlap: timedelta = timedelta(minutes=5)) -> None:
        self.client = client
        self.overlap = overlap
        self.endpoint = client.url

    async def validate(self) -> str:
        provider = await self.client.check()
        return f"SCIM service at {self.client.url} ({', '.join(provider.resource_types)})"

    async def aclose(self) -> None:
        await self.client.aclose()

    async def watermark(self, entity_type: str) -> str | None:
        r = await self.client.request("GET", "/ServiceProviderConfig")
        try:
            when = parsedate_to_datetime(r.headers.get("date", ""))
        except (TypeError, ValueError):
            return None
        return when.astimezone(UTC).isoformat() if when.tzinfo else None

    async def read(
        self, entity_type: str, *, since: str | None, cursor: Any, page_size: int
    ) -> AsyncIterator[Page]:
        provider = await self.client.provider()
        rt = provider.resource_type(entity_type)
        query = None
        if since is not None and provider.filter:
            after = datetime.fromisoformat(since) - self.overlap
            query = f'meta.lastModified gt "{after.astimezone(UTC).strftime("%Y-%m-%dT%H:%M:%SZ")}"'
        start = int(cursor) if isinstance(cursor, int) else 1
        try:
            async with aclosing(self._pages(rt.endpoint, query, start, page_size)) as pages:
                async for page in pages:
                    yield page
        except ScimRequestError as exc:
            if query is None or exc.response.status != 400 or start != 1:
                raise
            # The server cannot filter on meta.lastModified: read everything instead.
            async with aclosing(self._pages(rt.endpoint, None, 1, page_size)) as pages:
                async for page in pages:
                    yield page

    async def _pages(
        self, endpoint: str, query: str | None, start: int, page_size: int
    ) -> AsyncGenerator[Page, None]:
        listed = self.client.pages(endpoint, filter=query, count=page_size, start=start)
        async with aclosing(listed):
            async for resources, next_index, total in listed:
                records = [
                    _record(r, next_index - len(resources) + i + 1)
                    for i, r in enumerate(resources)
                    if r.get("id")
                ]
                fraction = (next_index - 1) / total if total else 1.0
                yield Page(items=records, fraction=fraction, exhaustive=query is None)

    async def get_many(self, entity_type: str, ids: Sequence[str]) -> Mapping[str, Record]:
        provider = await self.client.provider()
        rt = provider.resource_type(entity_type)
        found: dict[str, Record] = {}

        async def one(object_id: str) -> None:
            r = await self.client.request("GET", f"{rt.endpoint}/{object_id}")
            if r.ok and isinstance(r.body, Mapping) and r.body.get("id"):
                found[object_id] = _record(r.body, 0)
            elif r.status != 404:
                raise ScimRequestError(f"{rt.endpoint}/{object_id}", r)

        with single_errors():
            async with trio.open_nursery() as nursery:
                for object_id in ids:
                    nursery.start_soon(one, object_id)
        return found
