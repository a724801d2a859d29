"""What the server's schema says about each attribute: single- or multi-valued, binary,
DN-valued, and its own spelling of the name."""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass

__all__ = ["BINARY_SYNTAXES", "DN_SYNTAX", "AttributeSchema", "AttributeType"]

DN_SYNTAX = "1.3.6.1.4.1.1466.115.121.1.12"
#: Syntaxes whose values are bytes, not text: sent as base64.
BINARY_SYNTAXES = frozenset(
    "1.3.6.1.4.1.1466.115.121.1." + n
    for n in (
        "4",  # Audio
        "5",  # Binary
        "8",  # Certificate
        "9",  # Certificate List
        "10",  # Certificate Pair
        "23",  # Fax
        "28",  # JPEG
        "40",  # Octet String
        "49",  # Supported Algorithm
    )
)


@dataclass(frozen=True, kw_only=True)
class AttributeType:
    name: str
    oid: str
    syntax: str | None
    single_valued: bool


def _base(attr: str) -> tuple[str, bool]:
    """The attribute's name without options, and whether it had ``;binary``."""
    name, *options = attr.split(";")
    return name, any(o.lower() == "binary" for o in options)


class AttributeSchema:
    """Attribute types by lower-cased name and by OID.

    An attribute the schema does not know is multi-valued, text (unless it carries the
    ``;binary`` option), not DN-valued, and spelled as given.
    """

    def __init__(self, types: Mapping[str, AttributeType] | None = None) -> None:
        self._types = dict(types or {})

    @classmethod
    def from_subschema(cls, entry: Mapping[str, list[bytes]]) -> AttributeSchema:
        """From the server's subschema subentry (its ``attributeTypes`` values), with the
        syntax inherited through ``SUP``.

        Raises:
            ValueError: the entry's attribute types cannot be parsed.
        """
        import ldap.schema  # type: ignore[import-untyped]

        try:
            sub = ldap.schema.SubSchema({k: list(v) for k, v in entry.items()}, check_uniqueness=0)
        except Exception as exc:  # python-ldap raises whatever its parser hits
            raise ValueError(f"unreadable subschema: {exc}") from exc
        types: dict[str, AttributeType] = {}
        for oid in sub.listall(ldap.schema.AttributeType):
            at = sub.get_obj(ldap.schema.AttributeType, oid)
            syntax = sub.get_inheritedattr(ldap.schema.AttributeType, oid, "syntax")
            names = tuple(at.names or ()) or (oid,)
            t = AttributeType(
                name=names[0],
                oid=oid,
                syntax=syntax.split("{")[0] if syntax else None,
                single_valued=bool(at.single_value),
            )
            types[oid.lower()] = t
            for n in names:
                types[n.lower()] = t
        return cls(types)

    def get(self, attr: str) -> AttributeType | None:
        """The type of *attr* (a name or an OID, options ignored), or None."""
        return self._types.get(_base(attr)[0].lower())

    def single_valued(self, attr: str) -> bool:
        t = self.get(attr)
        return t is not None and t.single_valued

    def binary(self, attr: str) -> bool:
        """True for the binary syntaxes (octet string, JPEG, certificates...) or ``;binary``."""
        if _base(attr)[1]:
            return True
        t = self.get(attr)
        return t is not None and t.syntax in BINARY_SYNTAXES

    def is_dn(self, attr: str) -> bool:
        t = self.get(attr)
        return t is not None and t.syntax == DN_SYNTAX

    def canonical(self, attr: str) -> str:
        """The schema's spelling of *attr*'s name, its options kept (``cn``, ``userCertificate;binary``)."""
        name, *options = attr.split(";")
        t = self.get(name)
        return ";".join([t.name if t else name, *options])
