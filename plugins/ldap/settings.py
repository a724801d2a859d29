"""The ``ldap`` connector's table, read and checked with no I/O (python-ldap not needed).

Every bad key is a problem naming the file, the key, what was found and what was
expected; :func:`parse` reports them all at once through the reader.
"""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass
from datetime import timedelta
from pathlib import Path

from sluiced.errors import SyncError
from sluiced.tables import MISSING, Secret, TableReader

__all__ = [
    "DEFAULT_DN_ATTRIBUTES",
    "INCREMENTAL_MODES",
    "SCOPES",
    "EntitySettings",
    "LdapSettings",
    "filter_problem",
    "parse",
]

SCOPES = ("base", "one", "sub")
INCREMENTAL_MODES = ("auto", "syncrepl", "timestamps")
URL_SCHEMES = ("ldap://", "ldaps://", "ldapi://")
DEFAULT_DN_ATTRIBUTES = ("member", "uniqueMember", "manager", "owner")
#: Keys of an entity table that only a target reads.
TARGET_KEYS = ("rdn_attribute", "object_classes", "disable", "move_to")


@dataclass(frozen=True, kw_only=True)
class EntitySettings:
    """One entity table: where its entries are and, on a target, how to write them."""

    name: str
    base: str
    scope: str = "sub"
    filter: str = "(objectClass=*)"
    id_attribute: str = "entryUUID"
    dn_attributes: tuple[str, ...] = DEFAULT_DN_ATTRIBUTES
    rdn_attribute: str | None = None
    object_classes: tuple[str, ...] = ()
    disable_attribute: str | None = None
    disable_value: str | None = None
    move_to: str | None = None


@dataclass(frozen=True, kw_only=True)
class LdapSettings:
    """The connector's settings; ``password`` never shows itself (a :class:`Secret`)."""

    url: str
    start_tls: bool = False
    ca_file: Path | None = None
    bind_dn: str | None = None
    password: Secret | None = None
    timeout: timedelta = timedelta(seconds=30)
    page_size: int = 500
    incremental: str = "auto"
    overlap: timedelta = timedelta(minutes=5)
    entities: Mapping[str, EntitySettings]

    def entity(self, name: str) -> EntitySettings:
        """The entity table *name*.

        Raises:
            SyncError: there is no ``entities.<name>`` table (naming it and those there are).
        """
        try:
            return self.entities[name]
        except KeyError:
            known = ", ".join(sorted(self.entities)) or "none"
            raise SyncError(
                f"the ldap connector has no table entities.{name} (it has: {known})"
            ) from None


def filter_problem(text: str) -> str | None:
    """Why *text* is not an LDAP filter, by a simple check (parenthesized, balanced, not
    empty between parentheses); None when it passes. The server's verdict comes later."""
    if not text.startswith("(") or not text.endswith(")"):
        return "not in parentheses"
    depth = 0
    escaped = False
    for i, ch in enumerate(text):
        if escaped:
            escaped = False
        elif ch == "\\":
            escaped = True
        elif ch == "(":
            depth += 1
            if text[i + 1 : i + 2] == ")":
                return "empty parentheses"
        elif ch == ")":
            depth -= 1
            if depth < 0:
                return "unbalanced parentheses"
            if depth == 0 and i != len(text) - 1:
                return "more than one filter (combine them with & or |)"
    return "unbalanced parentheses" if depth else None


def _role(reader: TableReader) -> str | None:
    last = reader.path.rsplit(".", 1)[-1]
    return last if last in ("source", "target") else None


def _entity(name: str, reader: TableReader, role: str | None) -> EntitySettings:
    base = reader.get_str("base")
    scope = reader.get_str("scope", "sub", choices=SCOPES)
    filterstr = reader.get_str("filter", "(objectClass=*)")
    if isinstance(filterstr, str) and (why := filter_problem(filterstr)):
        reader.problems.add(
            reader.key("filter"),
            f'"{filterstr}" ({why})',
            'an LDAP filter like "(objectClass=person)"',
        )
    id_attribute = reader.get_str("id_attribute", "entryUUID")
    dn_attributes = reader.get_str_list("dn_attributes", DEFAULT_DN_ATTRIBUTES)
    if role == "source":
        for key in TARGET_KEYS:
            if reader.has(key):
                reader.ignore(key)
                reader.problems.add(
                    reader.key(key), f"{key} on a source", "it only on a target's entity table"
                )
        rdn_attribute, object_classes, disable_attr, disable_value, move_to = (
            None,
            (),
            None,
            None,
            None,
        )
    else:
        required = role == "target"
        rdn_attribute = reader.get_str("rdn_attribute", MISSING if required else None)
        object_classes = reader.get_str_list(
            "object_classes", MISSING if required else (), non_empty=True
        )
        disable_attr = disable_value = None
        if reader.has("disable"):
            disable = reader.get_table("disable")
            disable_attr = disable.get_str("attribute")
            disable_value = disable.get_str("value")
            disable.finish()
        move_to = reader.get_str("move_to", None)
        if reader.has("disable") and reader.has("move_to"):
            reader.problems.add(
                reader.key("move_to"), "both disable and move_to", "one way to disable"
            )
    reader.finish()

    def text(v: object) -> str:
        return v if isinstance(v, str) else ""

    def opt(v: object) -> str | None:
        return v if isinstance(v, str) else None

    return EntitySettings(
        name=name,
        base=text(base),
        scope=scope if scope in SCOPES else "sub",
        filter=text(filterstr) or "(objectClass=*)",
        id_attribute=text(id_attribute) or "entryUUID",
        dn_attributes=tuple(dn_attributes) if isinstance(dn_attributes, tuple) else (),
        rdn_attribute=opt(rdn_attribute),
        object_classes=tuple(object_classes) if isinstance(object_classes, tuple) else (),
        disable_attribute=opt(disable_attr),
        disable_value=opt(disable_value),
        move_to=opt(move_to),
    )


def parse(reader: TableReader) -> LdapSettings:
    """Read the connector's table (the caller's ``connector`` key already known).

    Records every problem in ``reader.problems`` and returns settings with placeholders
    where a value was bad; never raises for a bad table. When the table is a target's
    (its key path ends in ``.target``), every entity table needs ``rdn_attribute`` and
    ``object_classes``; on a source, the target-only keys are problems.
    """
    role = _role(reader)
    url = reader.get_str("url")
    if isinstance(url, str) and not url.startswith(URL_SCHEMES):
        reader.problems.add(
            reader.key("url"), f'"{url}"', "an ldap://, ldaps:// or ldapi:// URL of an LDAP server"
        )
    start_tls = reader.get_bool("start_tls", False)
    if start_tls is True and isinstance(url, str) and not url.startswith("ldap://"):
        reader.problems.add(
            reader.key("start_tls"),
            f"true with {url.split('://')[0]}://",
            "start_tls = true only with an ldap:// URL (ldaps:// is TLS already)",
        )
    ca_file = reader.get_path("ca_file", None)
    bind_dn = reader.get_str("bind_dn", None)
    password = reader.get_secret("password", required=False)
    given_password = any(reader.has("password" + s) for s in ("", "_file", "_env", "_credential"))
    if bind_dn is not None and not given_password:
        reader.problems.add(
            reader.key("password_file"),
            "nothing (bind_dn is set)",
            "password_file, password_env or password_credential for bind_dn",
        )
    if bind_dn is None and given_password:
        reader.problems.add(
            reader.key("bind_dn"),
            "nothing (a password is set)",
            "the bind_dn the password belongs to",
        )
    timeout = reader.get_duration("timeout", timedelta(seconds=30), positive=True)
    page_size = reader.get_int("page_size", 500, minimum=1)
    incremental = reader.get_str("incremental", "auto", choices=INCREMENTAL_MODES)
    overlap = reader.get_duration("overlap", timedelta(minutes=5))
    if isinstance(overlap, timedelta) and overlap < timedelta(0):
        reader.problems.add(reader.key("overlap"), str(reader.table["overlap"]), "not negative")
        overlap = timedelta(minutes=5)
    tables = reader.get_table("entities", required=True)
    entities: dict[str, EntitySettings] = {}
    for name in tables.table:
        sub = tables.get_table(name)
        entities[name] = _entity(name, sub, role)
    if not tables.table and reader.has("entities"):
        reader.problems.add(
            reader.key("entities"),
            "an empty table",
            "at least one entity table, like entities.user",
        )
    tables.finish()
    reader.finish()
    return LdapSettings(
        url=url if isinstance(url, str) else "",
        start_tls=start_tls is True,
        ca_file=ca_file if isinstance(ca_file, Path) else None,
        bind_dn=bind_dn if isinstance(bind_dn, str) else None,
        password=password,
        timeout=timeout,
        page_size=page_size,
        incremental=incremental if incremental in INCREMENTAL_MODES else "auto",
        overlap=overlap,
        entities=entities,
    )
