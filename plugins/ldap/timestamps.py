"""Incremental reads by timestamps, for servers without Content Synchronization: entries
whose ``modifyTimestamp`` or ``createTimestamp`` is at least the watermark minus an
overlap. Deletions are not seen this way; full passes find them by comparing ids.

The watermark is the server's time: the root DSE's ``currentTime`` where it offers one
(Active Directory), else the greatest ``modifyTimestamp``/``createTimestamp`` under the
entity's base (a paged search asking for those two attributes only).
"""

from __future__ import annotations

from contextlib import aclosing
from datetime import UTC, datetime, timedelta

from . import filters
from .connection import LdapConnection
from .members import attribute
from .settings import EntitySettings

__all__ = ["changed_since", "generalized_time", "parse_generalized_time", "watermark"]

STAMPS = ("modifyTimestamp", "createTimestamp")


def generalized_time(when: datetime) -> str:
    """*when* as an LDAP generalized time in UTC: ``20250601120000Z``."""
    return when.astimezone(UTC).strftime("%Y%m%d%H%M%SZ")


def parse_generalized_time(text: str) -> datetime:
    """``20250601120000Z`` (with or without fractions, ``Z`` or an offset) as UTC.

    Raises:
        ValueError: not a generalized time.
    """
    text = text.strip()
    digits, rest = text[:14], text[14:]
    when = datetime.strptime(digits, "%Y%m%d%H%M%S")
    if rest.startswith((".", ",")):
        rest = rest.lstrip(".,0123456789")
    if rest in ("Z", ""):
        return when.replace(tzinfo=UTC)
    offset = datetime.strptime(rest, "%z").utcoffset()
    return (when - offset).replace(tzinfo=UTC) if offset is not None else when.replace(tzinfo=UTC)


def changed_since(entity: EntitySettings, since: str, overlap: timedelta) -> str | None:
    """The entity's filter narrowed to entries stamped at or after *since* - *overlap*;
    None when *since* is not a generalized time (the caller reads everything)."""
    try:
        after = generalized_time(parse_generalized_time(since) - overlap)
    except ValueError:
        return None
    changed = f"(|(modifyTimestamp>={after})(createTimestamp>={after}))"
    return filters.all_of(entity.filter, changed)


async def watermark(
    connection: LdapConnection, entity: EntitySettings, page_size: int
) -> str | None:
    """The server's time now, as a generalized time; None when it tells none.

    Raises:
        TransientError, CredentialsError, SyncError: as the connection's searches.
    """
    now = attribute(await connection.read_entry("", ["currentTime"]) or {}, "currentTime")
    if now:
        try:
            return generalized_time(parse_generalized_time(now[0].decode("ascii")))
        except (UnicodeDecodeError, ValueError):
            pass
    latest: datetime | None = None
    search = connection.search(
        entity.base, entity.scope, "(objectClass=*)", list(STAMPS), page_size=page_size
    )
    async with aclosing(search) as pages:  # type: ignore[type-var]
        async for entries, _ in pages:
            for _, attrs in entries:
                for name in STAMPS:
                    for value in attribute(attrs, name):
                        try:
                            when = parse_generalized_time(value.decode("ascii"))
                        except (UnicodeDecodeError, ValueError):
                            continue
                        latest = when if latest is None or when > latest else latest
    return generalized_time(latest) if latest is not None else None
