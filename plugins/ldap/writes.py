"""What the LDAP target writes, decided without I/O: the DN and attributes of a new
entry, the modifications that bring an entry from what it held to what it is to hold,
the RDN an entry is renamed to, and the fix of the groups that list a renamed entry.

Values are encoded by :func:`.entries.to_ldap_values` (lists, base64 for binary
attributes, ``TRUE``/``FALSE``); the attributes that hold DNs (the entity's
``dn_attributes``: ``member``, ``uniqueMember``, ..., and those of the DN syntax) arrive
as the target ids of the entries they name and are written as those entries' DNs (a
value that is a DN already is written as it is; see :func:`references`).

Every modification is a ``replace``: one with no values removes the attribute, and is
ignored by the server when the attribute is already gone (RFC 4511 §4.6), so applying
the same modifications twice changes nothing more.
"""

from __future__ import annotations

from collections.abc import Callable, Container, Iterable, Mapping, Sequence
from typing import Any

import ldap  # type: ignore[import-untyped]
import ldap.dn  # type: ignore[import-untyped]

from sluiced.errors import SyncError

from .entries import to_ldap_values
from .filters import normalize_dn, rdn
from .schema import AttributeSchema
from .settings import EntitySettings

__all__ = [
    "MissingReference",
    "Mod",
    "References",
    "add_entry",
    "changed_attributes",
    "differing_attributes",
    "encoder",
    "entry_rdn_value",
    "is_dn",
    "new_rdn",
    "rdn_with",
    "reference_fix",
    "referenced_ids",
    "references",
    "replace_mods",
    "require_writable",
    "written_keys",
]

#: One modification of python-ldap's ``modify_s``: (operation, attribute, values).
Mod = tuple[int, str, list[bytes] | None]
#: Encodes one attribute's value for writing: ``encode(attribute, value)``.
Encoder = Callable[[str, Any], list[bytes]]

#: Attributes the target never writes from an object's data: the DN is where the entry
#: is, ``objectClass`` comes from the entity's ``object_classes`` (and is written only
#: when an entry is created), ``entryUUID`` is the server's own.
_NOT_WRITTEN = frozenset({"dn", "objectclass", "entryuuid"})


class MissingReference(Exception):
    """A DN-valued attribute names a target id that no entry of the target has."""

    def __init__(self, attribute: str, target_id: str) -> None:
        super().__init__(f"{attribute} {target_id} not found in the target")
        self.attribute = attribute
        self.target_id = target_id


def require_writable(entity: EntitySettings) -> None:
    """Raises SyncError unless *entity* says how to name and make entries
    (``rdn_attribute``, ``object_classes``)."""
    missing = [
        key
        for key, value in (
            ("rdn_attribute", entity.rdn_attribute),
            ("object_classes", entity.object_classes),
        )
        if not value
    ]
    if missing:
        raise SyncError(
            f"entity {entity.name}: {' and '.join(missing)} must be set to write entries"
        )


def is_dn(value: str) -> bool:
    """Whether *value* is written as it is in a DN-valued attribute (it is a DN), rather
    than being the target id of an entry."""
    return "=" in value and ldap.dn.is_dn(value)


class References:
    """The attributes that hold DNs: the entity's ``dn_attributes``, and those of the
    DN syntax in the server's schema. ``name in references`` (any case)."""

    def __init__(self, names: Iterable[str], schema: AttributeSchema) -> None:
        self.names = frozenset(n.casefold() for n in names)
        self.schema = schema
        self._known: dict[str, bool] = {}

    def __contains__(self, attr: object) -> bool:
        if not isinstance(attr, str):
            return False
        known = self._known.get(attr)
        if known is None:
            known = self._known[attr] = attr.casefold() in self.names or self.schema.is_dn(attr)
        return known


def references(entity: EntitySettings, schema: AttributeSchema) -> References:
    """The attributes of *entity* that hold DNs, by its settings and *schema*."""
    return References(entity.dn_attributes, schema)


def _values(value: Any) -> list[Any]:
    if value is None:
        return []
    if isinstance(value, (list, tuple)):
        return [v for v in value if v is not None]
    return [value]


def _reference(value: Any) -> str:
    """A member value as the engine maps it: a target id, or ``{"value": id}``."""
    if isinstance(value, Mapping):
        value = value.get("value")
    return str(value)


def referenced_ids(data: Mapping[str, Any], refs: Container[str]) -> set[str]:
    """The target ids the DN-valued attributes of *data* name (DNs are left out)."""
    out: set[str] = set()
    for key, value in data.items():
        if key.casefold() in refs:
            out.update(v for v in map(_reference, _values(value)) if not is_dn(v))
    return out


def written_keys(data: Mapping[str, Any]) -> list[str]:
    """The keys of *data* that are attributes to write on an update (not ``dn``,
    ``objectClass``, ``entryUUID``)."""
    return [k for k in data if k.casefold() not in _NOT_WRITTEN]


def encoder(schema: AttributeSchema, refs: Container[str], dns: Mapping[str, str]) -> Encoder:
    """Encodes values for writing: target ids in DN-valued attributes become the DNs
    *dns* gives them.

    The encoder raises :class:`MissingReference` for an id *dns* lacks, and ValueError
    for a value that cannot be written (see :func:`.entries.to_ldap_values`)."""
    #: attribute → whether its values are plain text (neither DNs nor binary).
    plain: dict[str, bool] = {}

    def encode(attr: str, value: Any) -> list[bytes]:
        text = plain.get(attr)
        if text is None:
            text = plain[attr] = attr.casefold() not in refs and not schema.binary(attr)
        if text:
            if type(value) is str:
                return [value.encode()]
            if type(value) is list and all(type(v) is str for v in value):
                return [v.encode() for v in value]
        if attr.casefold() not in refs:
            return to_ldap_values(attr, value, schema)
        out: list[str] = []
        for v in map(_reference, _values(value)):
            if is_dn(v):
                out.append(v)
            elif v in dns:
                out.append(dns[v])
            else:
                raise MissingReference(attr, v)
        return [v.encode() for v in out]

    return encode


def add_entry(
    entity: EntitySettings, data: Mapping[str, Any], encode: Encoder
) -> tuple[str, list[tuple[str, list[bytes]]]]:
    """The DN and the attributes of a new entry for *data*: ``rdn_attribute=value,base``
    with the entity's ``object_classes`` (and any ``objectClass`` *data* adds), every
    attribute of *data* that has a value.

    Raises:
        ValueError: *data* has no value for the RDN attribute.
        MissingReference: from *encode*.
    """
    assert entity.rdn_attribute is not None
    value = rdn_value(entity, data)
    if value is None:
        raise ValueError(f"no value for the RDN attribute {entity.rdn_attribute}")
    dn = f"{rdn(entity.rdn_attribute, value)},{entity.base}"
    classes = list(entity.object_classes)
    for key, given in data.items():
        if key.casefold() == "objectclass":
            seen = {c.casefold() for c in classes}
            classes += [str(c) for c in _values(given) if str(c).casefold() not in seen]
    attrs: list[tuple[str, list[bytes]]] = [("objectClass", [c.encode() for c in classes])]
    for key in written_keys(data):
        values = encode(key, data[key])
        if values:
            attrs.append((key, values))
    return dn, attrs


def rdn_value(entity: EntitySettings, data: Mapping[str, Any]) -> str | None:
    """The value *data* gives the RDN attribute (its first, if it gives several)."""
    attr = (entity.rdn_attribute or "").casefold()
    for key, value in data.items():
        if key.casefold() == attr:
            values = _values(value)
            return str(values[0]) if values else None
    return None


def entry_rdn_value(dn: str, attribute: str) -> str | None:
    """The value of *attribute* in the RDN of *dn* (None if its RDN has another)."""
    for attr, value, _ in ldap.dn.str2dn(dn)[0]:
        if attr.casefold() == attribute.casefold():
            return str(value)
    return None


def rdn_with(dn: str, attribute: str, value: str) -> str | None:
    """The RDN of *dn* with *value* for *attribute*, its other values (of a multi-valued
    RDN) kept, escaped per RFC 4514; None when the RDN of *dn* has no *attribute*."""
    ava = ldap.dn.str2dn(dn)[0]
    if not any(attr.casefold() == attribute.casefold() for attr, _, _ in ava):
        return None
    kept = [
        (attr, value if attr.casefold() == attribute.casefold() else held, 1)
        for attr, held, _ in ava
    ]
    return str(ldap.dn.dn2str([kept]))


def new_rdn(entity: EntitySettings, dn: str, data: Mapping[str, Any]) -> str | None:
    """The RDN to rename the entry at *dn* to, so that it names the RDN attribute's
    value in *data* (the other values of a multi-valued RDN kept); None when it does
    already (values compared as the common matching rules do: case-insensitively),
    *data* has none, or the entry is named by other attributes (one made or named by
    someone else, found by matching: it keeps its DN, and a modrdn would delete the
    values it is named by)."""
    if entity.rdn_attribute is None:
        return None
    value = rdn_value(entity, data)
    if value is None:
        return None
    current = entry_rdn_value(dn, entity.rdn_attribute)
    if current is None or current.casefold() == value.casefold():
        return None
    return rdn_with(dn, entity.rdn_attribute, value)


def _same(a: Sequence[bytes], b: Sequence[bytes]) -> bool:
    return sorted(a) == sorted(b)


def changed_attributes(
    data: Mapping[str, Any],
    previous: Mapping[str, Any],
    keys: Iterable[str],
    schema: AttributeSchema,
    refs: Container[str],
) -> list[str]:
    """Those of *keys* whose value in *data* differs from *previous* (what was exported
    last). Values are compared as written (order of multiple values aside); target ids
    in DN-valued attributes are compared as ids."""
    before = {k.casefold(): v for k, v in previous.items()}
    out = []
    for k in keys:
        new, old = data[k], before.get(k.casefold())
        if k.casefold() in refs:
            same = sorted(map(_reference, _values(new))) == sorted(map(_reference, _values(old)))
        else:
            same = _same(to_ldap_values(k, new, schema), to_ldap_values(k, old, schema))
        if not same:
            out.append(k)
    return out


def differing_attributes(
    data: Mapping[str, Any],
    current: Mapping[str, Sequence[bytes]],
    keys: Iterable[str],
    encode: Encoder,
    refs: Container[str],
) -> list[str]:
    """Those of *keys* whose value in *data* differs from what the entry holds
    (*current*, as read). DNs are compared normalized.

    Raises:
        MissingReference: from *encode*.
    """
    held = {k.casefold(): list(v) for k, v in current.items()}
    out = []
    for k in keys:
        new, old = encode(k, data[k]), held.get(k.casefold(), [])
        if k.casefold() in refs:
            same = {normalize_dn(v.decode()) for v in new} == {
                normalize_dn(v.decode("utf-8", "replace")) for v in old
            }
        else:
            same = _same(new, old)
        if not same:
            out.append(k)
    return out


def replace_mods(data: Mapping[str, Any], keys: Iterable[str], encode: Encoder) -> list[Mod]:
    """A ``replace`` of each of *keys* with its value in *data* (none: removed).

    Raises:
        MissingReference: from *encode*.
    """
    mods: list[Mod] = []
    for k in keys:
        values = encode(k, data[k])
        mods.append((ldap.MOD_REPLACE, k, values or None))
    return mods


def reference_fix(
    entry: Mapping[str, Sequence[bytes]], refs: Container[str], old_dn: str, new_dn: str
) -> list[Mod]:
    """The modifications that make an entry (a group, as read) that lists *old_dn* in
    its DN-valued attributes list *new_dn* instead."""
    old, new = normalize_dn(old_dn), normalize_dn(new_dn)
    mods: list[Mod] = []
    for attr, values in entry.items():
        if attr.casefold() not in refs:
            continue
        stale = [v for v in values if normalize_dn(v.decode("utf-8", "replace")) == old]
        if not stale:
            continue
        mods.append((ldap.MOD_DELETE, attr, list(stale)))
        if not any(normalize_dn(v.decode("utf-8", "replace")) == new for v in values):
            mods.append((ldap.MOD_ADD, attr, [new_dn.encode()]))
    return mods
