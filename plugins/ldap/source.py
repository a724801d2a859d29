"""An LDAP directory as a source: the entries of each entity table (base, scope, filter)
as records keyed by their ``id_attribute`` (``entryUUID`` by default).

Records hold the entry's attributes as :func:`.entries.to_record_data` makes them
(``dn`` included, multi-valued attributes as lists, binary ones base64) with DN values
(``member``, ``manager``, any DN-syntax attribute, or ``dn_attributes``) replaced by the
source ids of the entries they name (:mod:`.members`).

Reads are paged (RFC 2696, :mod:`.paging`). Incremental reads use, per entity table:

* ``syncrepl`` (RFC 4533, :mod:`.syncrepl`): when the server offers it and the id
  attribute is ``entryUUID`` (``incremental = "auto"``); changes and deletions (a
  :class:`~sluiced.connectors.Gone` item each) since the cookie, or the whole entity
  when the refresh cannot tell deletions by source id (a present phase, a size limit,
  an id attribute other than entryUUID);
* ``timestamps``: entries whose ``modifyTimestamp`` or ``createTimestamp`` is at least
  the watermark minus ``overlap``; deletions are found by full passes.
"""

from __future__ import annotations

from collections.abc import AsyncGenerator, AsyncIterator, Mapping, Sequence
from contextlib import aclosing
from functools import partial
from typing import Any

from sluiced.connectors import ConnectorContext, Gone, Malformed, Page, Record, Source
from sluiced.errors import CredentialsError, SyncError, TransientError

from . import filters, timestamps
from .connection import SCOPES, Entry, LdapConnection
from .cursors import Cursor
from .entries import to_record_data
from .members import (
    Members,
    attribute,
    dn_keys_of,
    dn_values,
    id_assertion,
    id_value,
    replace_dns,
)
from .paging import PagedReads
from .settings import EntitySettings, LdapSettings
from .syncrepl import SYNC_CONTROL, Refresh, cookie, is_cookie

__all__ = ["LdapSource"]

PAGED_CONTROL = "1.2.840.113556.1.4.319"
MODES = {
    "syncrepl": "syncrepl (RFC 4533)",
    "timestamps": "timestamps (modifyTimestamp, deletions on full passes)",
}
#: Ids per get_many search.
CHUNK = 100


class LdapSource(Source):
    """One job's reads of the directory, over one connection (see the module)."""

    def __init__(self, settings: LdapSettings, ctx: ConnectorContext) -> None:
        self.settings = settings
        self.ctx = ctx
        self.connection = LdapConnection(settings)
        self.endpoint = self.connection.endpoint
        self.members = Members(self.connection, settings.entities.values())
        self.paging = PagedReads(
            connection=self.connection,
            search_page_size=settings.page_size,
            attrs=self._attrs,
            items=self._items,
        )
        self._dse: dict[str, list[bytes]] | None = None

    async def aclose(self) -> None:
        await self.connection.aclose()

    # -- what the server offers ----------------------------------------------------------
    async def _root_dse(self) -> dict[str, list[bytes]]:
        if self._dse is None:
            self._dse = dict(await self.connection.root_dse())
        return self._dse

    async def _text(self, name: str) -> list[str]:
        return [v.decode("utf-8", "replace") for v in attribute(await self._root_dse(), name)]

    async def mode(self, entity: EntitySettings) -> str:
        """``syncrepl`` or ``timestamps``: how incremental reads of *entity* go."""
        if self.settings.incremental != "auto":
            return self.settings.incremental
        offered = SYNC_CONTROL in await self._text("supportedControl")
        return (
            "syncrepl" if offered and entity.id_attribute.lower() == "entryuuid" else "timestamps"
        )

    async def validate(self) -> str:
        """Bind, read the root DSE and each entity's base.

        Returns:
            The server (vendor where it says), whether it pages, and per entity table
            how incremental reads go: ``syncrepl (RFC 4533)`` or ``timestamps
            (modifyTimestamp, deletions on full passes)``.

        Raises:
            SyncError: a base that does not exist; CredentialsError, TransientError as
                the connection's calls.
        """
        controls = await self._text("supportedControl")
        found = [f"LDAP server at {self.endpoint}"]
        vendor = " ".join((await self._text("vendorName")) + (await self._text("vendorVersion")))
        if not vendor and "OpenLDAProotDSE" in await self._text("objectClass"):
            vendor = "OpenLDAP"
        if vendor:
            found.append(vendor)
        found.append("paged results" if PAGED_CONTROL in controls else "no paged results")
        for entity in self.settings.entities.values():
            if await self.connection.read_entry(entity.base, ["1.1"]) is None:
                raise SyncError(f"entities.{entity.name}: the base {entity.base} does not exist")
            try:
                await self.connection.call(partial(_probe, entity))
            except (TransientError, CredentialsError):
                raise
            except SyncError as exc:
                raise SyncError(
                    f"entities.{entity.name}: the server refused the filter {entity.filter}: {exc}"
                ) from None
            found.append(f"{entity.name}: incremental by {MODES[await self.mode(entity)]}")
        return "; ".join(found)

    # -- watermarks --------------------------------------------------------------------
    async def watermark(self, entity_type: str) -> str | None:
        entity = self.settings.entity(entity_type)
        if await self.mode(entity) == "syncrepl":
            return await cookie(self.connection, entity.base, await self._text("namingContexts"))
        return await timestamps.watermark(self.connection, entity, self.settings.page_size)

    # -- reading -----------------------------------------------------------------------
    def _attrs(self, entity: EntitySettings) -> list[str]:
        return ["*", entity.id_attribute]

    async def read(
        self, entity_type: str, *, since: str | None, cursor: Any, page_size: int
    ) -> AsyncIterator[Page]:
        entity = self.settings.entity(entity_type)
        self.members.forget_reports()
        mode = await self.mode(entity) if since is not None else None
        if mode == "syncrepl" and since is not None and is_cookie(since):
            if Cursor.of(cursor).key is not None:
                # A read of the whole entity (the refresh could not tell deletions)
                # resumed after a failure: go on with it.
                async with aclosing(self._paged(entity, entity.filter, cursor, page_size)) as pages:
                    async for page in pages:
                        yield page
                return
            async with aclosing(self._refresh(entity, since, page_size)) as pages:
                async for page in pages:
                    yield page
            return
        filterstr = entity.filter
        if mode == "timestamps" and since is not None and not is_cookie(since):
            filterstr = timestamps.changed_since(entity, since, self.settings.overlap) or filterstr
        async with aclosing(self._paged(entity, filterstr, cursor, page_size)) as pages:
            async for page in pages:
                yield page

    def _paged(
        self, entity: EntitySettings, filterstr: str, cursor: Any, page_size: int
    ) -> AsyncGenerator[Page, None]:
        """A paged search from *cursor* (see :meth:`.paging.PagedReads.read`)."""
        return self.paging.read(entity, filterstr, cursor, page_size)

    async def _refresh(
        self, entity: EntitySettings, since: str, page_size: int
    ) -> AsyncGenerator[Page, None]:
        """What changed since the cookie *since*: records and Gone items, without
        cursors (a read retried refreshes again). When the server answers with a present
        phase, a limit cuts the refresh short, or deletions come for an entity whose id
        is not the entryUUID, the entity is read whole instead (exhaustive pages), after
        a Gone item for each deletion the refresh named by entryUUID before (in
        exhaustive pages too: they start the whole read).

        Raises:
            SyncError: the server refused the cookie (its content is older than the
                cookie's: a backup restored, another server); and as the connection's
                calls.
        """
        refresh = Refresh(
            self.connection,
            entity,
            self._attrs(entity),
            since,
            timeout=self.settings.timeout.total_seconds(),
        )
        whole = False
        try:
            await refresh.start()
            while True:
                changes = await refresh.poll(page_size)
                if changes.refused is not None:
                    raise SyncError(
                        f"entities.{entity.name}: the server's content is older than the stored"
                        f" cookie ({changes.refused}): restored from a backup, or another"
                        " server; what changed since cannot be told, so run a full sync"
                    )
                by_uuid = entity.id_attribute.lower() == "entryuuid"
                if changes.present or changes.limited or (changes.deleted and not by_uuid):
                    # Deletions the refresh cannot name by source id: compare ids instead;
                    # those it named before it was cut short are read all the same, in
                    # the first pages of the whole read.
                    if by_uuid:
                        gone = [Gone(id=uuid) for uuid in changes.deleted]
                        for start in range(0, len(gone), page_size):
                            yield Page(items=gone[start : start + page_size], exhaustive=True)
                    whole = True
                    break
                items: list[Record | Malformed | Gone] = list(
                    await self._items(entity, [(dn, attrs) for dn, attrs, _ in changes.entries])
                )
                items += [Gone(id=uuid) for uuid in changes.deleted]
                if items or changes.done:
                    # A set of deletions comes whole: pages of at most page_size items.
                    for start in range(0, max(len(items), 1), page_size):
                        yield Page(items=items[start : start + page_size])
                if changes.done:
                    break
        finally:
            await refresh.abandon()
        if whole:
            async with aclosing(self._paged(entity, entity.filter, None, page_size)) as pages:
                async for page in pages:
                    yield page

    async def _items(
        self, entity: EntitySettings, entries: Sequence[Entry]
    ) -> list[Record | Malformed]:
        """Records (or Malformed items) for *entries*, DN values resolved."""
        schema = await self.connection.schema()
        dn_keys = {a.lower() for a in entity.dn_attributes}
        made: list[tuple[str, dict[str, Any] | None, str]] = []
        for dn, attrs in entries:
            try:
                sid = id_value(attribute(attrs, entity.id_attribute), entity.id_attribute)
                data = dict(to_record_data(dn, attrs, schema))
            except (ValueError, TypeError, UnicodeError) as exc:
                made.append((dn, None, str(exc)))
                continue
            made.append((dn, data, sid))
        keys_of = dn_keys_of(schema, dn_keys)
        wanted = [
            v
            for _, data, _ in made
            if data is not None
            for key in keys_of(data)
            for v in dn_values(data[key])
        ]
        ids = await self.members.resolve(wanted) if wanted else {}
        items: list[Record | Malformed] = []
        for dn, made_data, sid in made:
            if made_data is None:
                items.append(Malformed(key=dn, reason=f"entry {dn} cannot be read: {sid}"))
                continue
            replace_dns(made_data, keys_of(made_data), ids)
            items.append(Record(id=sid, data=made_data))
        return items

    async def get_many(
        self, entity_type: str, ids: Sequence[str]
    ) -> Mapping[str, Record | Malformed]:
        """The entries of *entity_type* whose id attribute holds one of *ids*, by id
        (searched for in chunks, each id escaped; an ``objectGUID`` as its bytes).

        Returns:
            A Record per id found; a Malformed for an id that several entries hold, or
            that an entry holds whose id cannot be read (several values of the id
            attribute): that object is there, and never taken for gone.

        Raises:
            TransientError, CredentialsError, SyncError: as the connection's searches.
        """
        entity = self.settings.entity(entity_type)
        found: dict[str, Record | Malformed] = {}
        asked = {i.lower(): i for i in ids}
        for at in range(0, len(ids), CHUNK):
            terms = [
                f"({entity.id_attribute}={id_assertion(entity.id_attribute, i)})"
                for i in ids[at : at + CHUNK]
            ]
            wanted = terms[0] if len(terms) == 1 else "(|" + "".join(terms) + ")"
            query = filters.all_of(entity.filter, wanted)
            entries = await self.connection.search_all(
                entity.base, entity.scope, query, self._attrs(entity)
            )
            items = await self._items(entity, entries)
            for (_, attrs), item in zip(entries, items, strict=True):
                if isinstance(item, Malformed):
                    # Its id cannot be told (several values, not text): each asked id
                    # among its values is there but unreadable, never gone.
                    for raw in attribute(attrs, entity.id_attribute):
                        key = asked.get(raw.decode("utf-8", "replace").lower())
                        if key is not None:
                            found[key] = Malformed(key=key, reason=item.reason)
                    continue
                key = asked.get(item.id.lower())
                if key is None:
                    continue
                if key in found:
                    found[key] = Malformed(key=key, reason=f"several entries have the id {key}")
                else:
                    found[key] = Record(id=key, data=item.data)
        return found


def _probe(entity: EntitySettings, conn: Any) -> None:
    """Search *entity* for one entry, so the server judges its filter."""
    import ldap  # type: ignore[import-untyped]

    try:
        conn.search_ext_s(entity.base, SCOPES[entity.scope], entity.filter, ["1.1"], sizelimit=1)
    except ldap.SIZELIMIT_EXCEEDED:
        return
