"""Where a paged read of an LDAP source continues: an item's cursor.

A cursor holds the item's position in the read (``n``: how many items precede the
next one), its key (source id, or DN when it has none) and, after the last item of a
search page, the paging cookie that continues the search. The server honours a cookie
only on the connection that got it (OpenLDAP: only the one it handed out last), so a
read from a cursor uses the cookie when it can, else reads from the start and skips
``n`` items when the ``n``-th is still the cursor's key, else reads everything again.
"""

from __future__ import annotations

import base64
from collections.abc import Mapping
from dataclasses import dataclass
from typing import Any

from sluiced.connectors import Malformed, Record

from .connection import Entry
from .members import attribute, id_value
from .settings import EntitySettings

__all__ = ["Cursor", "Restart", "cursor_key", "with_cursor"]


class Restart(Exception):
    """A cursor that cannot be honoured: read from the start."""


@dataclass(frozen=True, kw_only=True)
class Cursor:
    """Where a paged read continues (see the module)."""

    n: int = 0
    key: str | None = None
    cookie: bytes | None = None

    def dump(self) -> dict[str, Any]:
        out: dict[str, Any] = {"n": self.n, "key": self.key}
        if self.cookie:
            out["cookie"] = base64.b64encode(self.cookie).decode("ascii")
        return out

    @classmethod
    def of(cls, cursor: Any) -> Cursor:
        """The cursor an item carried; anything else reads from the start."""
        if not isinstance(cursor, Mapping):
            return cls()
        n, key, cookie = cursor.get("n"), cursor.get("key"), cursor.get("cookie")
        if not isinstance(n, int) or n < 0 or not isinstance(key, str):
            return cls()
        raw: bytes | None = None
        if isinstance(cookie, str):
            try:
                raw = base64.b64decode(cookie, validate=True) or None
            except ValueError:
                raw = None
        return cls(n=n, key=key, cookie=raw)


def cursor_key(entity: EntitySettings, entry: Entry) -> str:
    """What identifies *entry* in a cursor: its id, or its DN when it has none."""
    dn, attrs = entry
    try:
        return id_value(attribute(attrs, entity.id_attribute), entity.id_attribute)
    except ValueError:
        return dn


def with_cursor(item: Record | Malformed, cursor: Any) -> Record | Malformed:
    """*item* carrying *cursor*."""
    if isinstance(item, Record):
        return Record(id=item.id, data=item.data, cursor=cursor)
    return Malformed(key=item.key, reason=item.reason, cursor=cursor)
