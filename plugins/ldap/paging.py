"""Paged reads of one entity of an LDAP directory (RFC 2696), resumable from a cursor.

A read resumes from its cursor (see :mod:`.cursors`): with the server's cookie while the
server still honours it, else at the position, checked by the key of the entry before
it, else from the start (as the source contract allows: writes are idempotent and
unchanged objects skipped). Entries the server refers elsewhere for are not read: each
such reference is a :class:`~sluiced.connectors.Malformed` item, so the read is not
complete.
"""

from __future__ import annotations

from collections.abc import AsyncGenerator, Awaitable, Callable, Sequence
from contextlib import aclosing
from dataclasses import dataclass
from typing import Any

from sluiced.connectors import Malformed, Page, Record
from sluiced.errors import TransientError

from .connection import Entry, LdapConnection
from .cursors import Cursor, Restart, cursor_key, with_cursor
from .errors import StaleCookieError
from .settings import EntitySettings

__all__ = ["PagedReads", "not_followed"]


def not_followed(url: str) -> Malformed:
    """What a search continuation reference stands for: entries not read."""
    return Malformed(
        key=url,
        reason=f"the server refers to {url} for part of the entries (a search continuation"
        " reference), which sluiced does not follow: those entries are not read",
    )


@dataclass(frozen=True, kw_only=True)
class PagedReads:
    """Paged searches of entities over one connection."""

    connection: LdapConnection
    #: The size of the server's pages (the settings' ``page_size``).
    search_page_size: int
    #: The attributes to ask for of an entity's entries.
    attrs: Callable[[EntitySettings], list[str]]
    #: Records (or Malformed items) for an entity's entries, DN values resolved.
    items: Callable[[EntitySettings, Sequence[Entry]], Awaitable[list[Record | Malformed]]]

    async def read(
        self, entity: EntitySettings, filterstr: str, cursor: Any, page_size: int
    ) -> AsyncGenerator[Page, None]:
        """A paged search from *cursor* (see :mod:`.cursors`): the server's cookie when
        it still honours it, else the position checked by key, else everything again (as
        the contract allows: writes are idempotent and unchanged objects skipped)."""
        exhaustive = filterstr == entity.filter
        at = Cursor.of(cursor)
        if at.cookie is not None:
            try:
                async with aclosing(
                    self._pages(entity, filterstr, at, page_size, exhaustive)
                ) as pages:
                    async for page in pages:
                        yield page
                return
            except Restart:
                at = Cursor(n=at.n, key=at.key)
        try:
            async with aclosing(self._pages(entity, filterstr, at, page_size, exhaustive)) as pages:
                async for page in pages:
                    yield page
        except Restart:
            async with aclosing(
                self._pages(entity, filterstr, Cursor(), page_size, exhaustive)
            ) as pages:
                async for page in pages:
                    yield page

    async def _pages(
        self,
        entity: EntitySettings,
        filterstr: str,
        at: Cursor,
        page_size: int,
        exhaustive: bool,
    ) -> AsyncGenerator[Page, None]:
        """Pages of at most *page_size* items, from searches paged by the settings'
        ``page_size``. Raises Restart before its first page when the cursor cannot be
        honoured."""
        resumed = at.cookie is not None
        position = at.n if resumed else 0
        skip = 0 if resumed else at.n
        referrals: list[str] = []
        search = self.connection.search(
            entity.base,
            entity.scope,
            filterstr,
            self.attrs(entity),
            page_size=self.search_page_size,
            cookie=at.cookie,
            references=referrals,
        )
        try:
            while True:
                try:
                    entries, next_cookie = await search.__anext__()
                except StopAsyncIteration:
                    return
                except StaleCookieError as exc:
                    if resumed:
                        raise Restart from exc  # the cursor's cookie: honoured no more
                    # The connection was opened again between two pages: the engine
                    # reopens the read at the last cursor it got.
                    raise TransientError(str(exc)) from None
                resumed = False
                if skip > len(entries):
                    skip -= len(entries)
                    position += len(entries)
                    if next_cookie is None:
                        raise Restart  # fewer items than before: start over
                    continue
                if skip:
                    if cursor_key(entity, entries[skip - 1]) != at.key:
                        raise Restart  # the order changed: start over
                    position += skip
                    entries, skip = entries[skip:], 0
                items = await self.items(entity, entries)
                # Entries held by another server are not read: the read is incomplete.
                items += [not_followed(url) for url in referrals]
                referrals.clear()
                last = len(items) - 1
                marked = [
                    with_cursor(
                        item,
                        Cursor(
                            n=position + i + 1,
                            key=item.id if isinstance(item, Record) else item.key,
                            cookie=next_cookie if i == last else None,
                        ).dump(),
                    )
                    for i, item in enumerate(items)
                ]
                position += len(items)
                for start in range(0, len(marked), page_size):
                    yield Page(items=marked[start : start + page_size], exhaustive=exhaustive)
                if not marked:
                    yield Page(items=[], exhaustive=exhaustive)
                if next_cookie is None:
                    return
        finally:
            await search.aclose()  # type: ignore[attr-defined]
