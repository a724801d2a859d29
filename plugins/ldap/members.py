"""DN values resolved to source ids: what a group's ``member`` (or a ``manager``) names is
written as the id of the entry it names, so a schema maps it through links.

A DN names whichever entry has it when the entry holding the DN is read: an entry read
earlier in the job may have been renamed since, and another may have taken its DN. So
:class:`Members` looks every DN of a page up again (base searches for the id
attribute, all of the page's DNs pipelined in one round trip to the connection's
thread) and keeps nothing between pages: its memory is a page's, whatever the size of
the directory. A DN that names no entry stays the DN (logged once per pass).
"""

from __future__ import annotations

from collections.abc import Iterable, Mapping, Sequence
from typing import TYPE_CHECKING, Any

from sluiced.logs import get_logger

from .filters import escape, normalize_dn
from .settings import EntitySettings

if TYPE_CHECKING:
    from .connection import LdapConnection
    from .schema import AttributeSchema

__all__ = [
    "Members",
    "attribute",
    "dn_keys_of",
    "dn_values",
    "id_assertion",
    "id_value",
    "replace_dns",
]

log = get_logger("sluiced.ldap")

#: Lookups in flight at once on the connection.
WINDOW = 50


def id_value(values: Sequence[bytes], attribute: str) -> str:
    """The source id in *values* (an entry's id attribute).

    Returns:
        The value as text: UTF-8, or for Active Directory's binary ``objectGUID`` its
        UUID form.

    Raises:
        ValueError: no value, several values, or a value that is not text.
    """
    if not values:
        raise ValueError(f"it has no {attribute}")
    if len(values) > 1:
        raise ValueError(f"it has {len(values)} values of {attribute}")
    raw = values[0]
    if attribute.lower() == "objectguid" and len(raw) == 16:
        from uuid import UUID

        return str(UUID(bytes_le=raw))
    try:
        return raw.decode("utf-8")
    except UnicodeDecodeError:
        raise ValueError(f"its {attribute} is not text") from None


def id_assertion(attribute: str, value: str) -> str:
    """The filter assertion value that matches the source id *value* of *attribute*
    (the inverse of :func:`id_value`): *value* escaped (RFC 4515), or for
    ``objectGUID`` in its UUID form the 16 bytes it stands for, each escaped."""
    if attribute.lower() == "objectguid":
        from uuid import UUID

        try:
            raw = UUID(value).bytes_le
        except ValueError:
            return escape(value)
        return "".join(f"\\{b:02x}" for b in raw)
    return escape(value)


def attribute(attrs: Mapping[str, Sequence[bytes]], name: str) -> Sequence[bytes]:
    """The values of attribute *name* in *attrs*, whatever the server's spelling."""
    if name in attrs:
        return attrs[name]
    lowered = name.lower()
    for key, values in attrs.items():
        if key.lower() == lowered:
            return values
    return ()


class Members:
    """DN → source id, looked up for each page (see the module)."""

    def __init__(self, connection: LdapConnection, entities: Iterable[EntitySettings]) -> None:
        self.connection = connection
        #: (normalized base, id attribute), the deepest base first.
        self._bases = sorted(
            ((normalize_dn(e.base), e.id_attribute) for e in entities),
            key=lambda b: -len(b[0]),
        )
        self._reported: set[str] = set()

    def id_attribute(self, dn: str) -> str:
        """The id attribute of the entity table whose base holds *dn* (the deepest)."""
        key = normalize_dn(dn)
        for base, attr in self._bases:
            if key == base or key.endswith("," + base) or not base:
                return attr
        return self._bases[0][1] if self._bases else "entryUUID"

    async def resolve(self, dns: Iterable[str]) -> Mapping[str, str]:
        """The source ids of the entries *dns* name now, by DN as given; a DN that names
        no entry (or one without an id) is left out. Each distinct DN (compared
        normalized: case, spaces, escapes) is looked up once.

        Raises:
            TransientError, CredentialsError, SyncError: the lookups failed as a whole.

        Cancellation: the lookups in flight run to their end on the connection's
        thread; nothing to undo.
        """
        wanted = {dn: normalize_dn(dn) for dn in dns}
        keys = sorted(set(wanted.values()))
        found: Mapping[str, str | None] = {}
        if keys:
            asked = [(key, self.id_attribute(key)) for key in keys]
            found = await self.connection.call(lambda conn: _lookup(conn, asked))
        resolved: dict[str, str] = {}
        for dn, key in wanted.items():
            sid = found.get(key)
            if sid is not None:
                resolved[dn] = sid
            elif key not in self._reported:
                self._reported.add(key)
                log.info("ldap DN value names no entry; kept as the DN", dn=dn)
        return resolved

    def forget_reports(self) -> None:
        """Start a new pass: a DN that names no entry is logged again once."""
        self._reported.clear()


def _lookup(conn: Any, asked: Sequence[tuple[str, str]]) -> dict[str, str | None]:
    """Base searches for the id attribute of each (DN, attribute), sent :data:`WINDOW`
    at a time before their answers are read (servers bound the requests pending on one
    connection). A DN that names no entry, is malformed, lies elsewhere (a referral) or
    cannot be read maps to None."""
    found: dict[str, str | None] = {}
    for at in range(0, len(asked), WINDOW):
        found.update(_lookup_window(conn, asked[at : at + WINDOW]))
    return found


def _lookup_window(conn: Any, asked: Sequence[tuple[str, str]]) -> dict[str, str | None]:
    import ldap  # type: ignore[import-untyped]

    #: What leaves a DN as it is: no such entry, not a DN, elsewhere, not readable.
    unresolvable = (
        ldap.NO_SUCH_OBJECT,
        ldap.INVALID_DN_SYNTAX,
        ldap.REFERRAL,
        ldap.INSUFFICIENT_ACCESS,
    )
    pending: list[tuple[str, str, int | None]] = []
    for dn, attr in asked:
        try:
            msgid = conn.search_ext(dn, ldap.SCOPE_BASE, "(objectClass=*)", [attr])
        except unresolvable:
            msgid = None
        pending.append((dn, attr, msgid))
    found: dict[str, str | None] = {}
    for dn, attr, msgid in pending:
        found[dn] = None
        if msgid is None:
            continue
        try:
            _, entries, _, _ = conn.result3(msgid)
        except unresolvable:
            continue
        for _, attrs in entries or ():
            if isinstance(attrs, dict):
                try:
                    found[dn] = id_value(attribute(attrs, attr), attr)
                except ValueError:
                    found[dn] = None
    return found


def replace_dns(data: dict[str, Any], keys: Iterable[str], ids: Mapping[str, str]) -> None:
    """Replace, in *data*'s attributes *keys*, every DN that *ids* knows by its id."""
    for key in keys:
        value = data.get(key)
        if isinstance(value, str):
            data[key] = ids.get(value, value)
        elif isinstance(value, list):
            data[key] = [ids.get(v, v) if isinstance(v, str) else v for v in value]


def dn_keys_of(schema: AttributeSchema, extra: set[str]) -> Any:
    """A function giving the keys of a record's data that hold DNs: those in *extra*
    (lower-cased) and those of DN syntax."""

    def keys(data: Mapping[str, Any]) -> list[str]:
        return [k for k in data if k != "dn" and (k.lower() in extra or schema.is_dn(k))]

    return keys


def dn_values(value: Any) -> list[str]:
    """The text values of one attribute's value (a string or a list)."""
    if isinstance(value, str):
        return [value]
    if isinstance(value, list):
        return [v for v in value if isinstance(v, str)]
    return []
