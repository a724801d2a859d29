"""One job's writes to an LDAP directory, as the target makes them: calls whose refusal
of the one object they write is an answer (:class:`Refused`) rather than an error, the
DNs of entries by target id (looked up many at once, remembered for the job), renames,
and the fix of the entries that list a renamed entry's old DN.
"""

from __future__ import annotations

from collections.abc import Callable, Iterable, Mapping, Sequence
from dataclasses import dataclass
from typing import Any, TypeVar

import ldap  # type: ignore[import-untyped]

from .connection import LdapConnection
from .errors import object_error, result_name
from .filters import any_of, equals, normalize_dn, parent
from .settings import EntitySettings, LdapSettings
from .writes import Mod, reference_fix

__all__ = ["POST_READ", "Directory", "Refused", "chunks", "first", "values_of"]

T = TypeVar("T")

#: Values per lookup filter: ``(|(entryUUID=...)...)``.
CHUNK = 100
#: The post-read control (RFC 4527) in the root DSE's ``supportedControl``.
POST_READ = "1.3.6.1.1.13.2"


@dataclass(frozen=True)
class Refused:
    """The server refused one object's write: ``code`` is the result's name
    (``entryAlreadyExists``), ``reason`` what is escrowed (``"<code>: <message>"``)."""

    code: str
    reason: str


def values_of(attrs: Mapping[str, Sequence[bytes]], name: str) -> Sequence[bytes]:
    """The values of attribute *name* (names compared case-insensitively)."""
    for key, values in attrs.items():
        if key.casefold() == name.casefold():
            return values
    return ()


def first(attrs: Mapping[str, Sequence[bytes]], name: str) -> str | None:
    """The first value of attribute *name* as text, or None."""
    values = values_of(attrs, name)
    return values[0].decode("utf-8", "replace") if values else None


def chunks(items: Sequence[T], size: int = CHUNK) -> Iterable[Sequence[T]]:
    return (items[i : i + size] for i in range(0, len(items), size))


class Directory:
    """The directory of *settings* over *conn*, for one job."""

    def __init__(self, conn: LdapConnection, settings: LdapSettings) -> None:
        self.conn = conn
        self.settings = settings
        #: Target id → DN of the entries this job has met.
        self.dns: dict[str, str] = {}
        self._post_read: bool | None = None

    async def write(self, fn: Callable[[Any], T]) -> T | Refused:
        """``fn(conn)`` on the connection. An error about the one object it writes
        (:func:`.errors.object_error`) is returned as a :class:`Refused`.

        Raises:
            TransientError, CredentialsError, SyncError: any other error, translated
                by the connection."""

        def attempt(conn: Any) -> T | Refused:
            try:
                return fn(conn)
            except ldap.LDAPError as exc:
                reason = object_error(exc)
                if reason is None:
                    raise
                return Refused(result_name(exc), reason)

        return await self.conn.call(attempt)

    async def modify(self, dn: str, mods: list[Mod]) -> Refused | None:
        return await self.write(lambda c: c.modify_s(dn, mods))

    async def rename(self, tid: str, dn: str, new_rdn: str, superior: str | None) -> str | Refused:
        """A modrdn (the old RDN value deleted) of the entry *tid* at *dn* to *new_rdn*
        under *superior* (None: where it is); returns its new DN."""
        done = await self.write(lambda c: c.rename_s(dn, new_rdn, superior, delold=1))
        if isinstance(done, Refused):
            return done
        moved = f"{new_rdn},{superior or parent(dn)}"
        self.dns[tid] = moved
        return moved

    async def fix_references(self, old_dn: str, new_dn: str) -> list[str]:
        """Makes every entry under the bases of the target's entities that lists
        *old_dn* in a DN-valued attribute (``dn_attributes``) list *new_dn* instead.
        Returns what it could not change ("<group DN> still lists <old DN>: <reason>")."""
        entities = self.settings.entities.values()
        attrs = sorted({a for e in entities for a in e.dn_attributes})
        if not attrs:
            return []
        refs = frozenset(a.casefold() for a in attrs)
        query = "(|" + "".join(equals(a, old_dn) for a in attrs) + ")"
        seen: set[str] = set()
        errors = []
        for base in dict.fromkeys(e.base for e in entities):
            for dn, entry in await self.conn.search_all(base, "sub", query, attrs):
                if normalize_dn(dn) in seen:
                    continue
                seen.add(normalize_dn(dn))
                mods = reference_fix(entry, refs, old_dn, new_dn)
                if not mods:
                    continue
                done = await self.modify(dn, mods)
                if isinstance(done, Refused):
                    errors.append(f"{dn} still lists {old_dn}: {done.reason}")
        return errors

    async def locate(self, ids: Iterable[str], entities: Iterable[EntitySettings]) -> None:
        """Finds the DNs of *ids* the job has not met yet among the entries of
        *entities* (under ``base``, and ``move_to``), with searches of many ids at once;
        ids found nowhere stay unknown."""
        wanted = [i for i in dict.fromkeys(ids) if i not in self.dns]
        places = {
            (container, scope, e.id_attribute): None
            for e in entities
            for container, scope in ((e.base, e.scope), (e.move_to, "sub"))
            if container
        }
        for container, scope, id_attr in places:
            wanted = [i for i in wanted if i not in self.dns]
            for chunk in chunks(wanted):
                found = await self.conn.search_all(
                    container, scope, any_of(id_attr, list(chunk)), [id_attr]
                )
                for dn, attrs in found:
                    tid = first(attrs, id_attr)
                    if tid is not None:
                        self.dns[tid] = dn

    async def read_id(self, dn: str, id_attribute: str) -> str | None:
        """The id of the entry at *dn*, or None (no entry, or it has no such attribute)."""
        entry = await self.conn.read_entry(dn, [id_attribute])
        return first(entry, id_attribute) if entry is not None else None

    async def offers_post_read(self) -> bool:
        """Whether the server's root DSE lists the post-read control (read once)."""
        if self._post_read is None:
            dse = await self.conn.root_dse()
            self._post_read = POST_READ.encode() in values_of(dse, "supportedControl")
        return self._post_read
