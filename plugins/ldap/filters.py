"""Search filters (RFC 4515) and DNs (RFC 4514) built from values that may come from
anywhere: every value is escaped, so source data cannot change a filter's meaning."""

from __future__ import annotations

from collections.abc import Sequence

import ldap  # type: ignore[import-untyped]
import ldap.dn  # type: ignore[import-untyped]
import ldap.filter  # type: ignore[import-untyped]

__all__ = ["all_of", "any_of", "equals", "escape", "normalize_dn", "parent", "rdn"]


def escape(value: str) -> str:
    """*value* with ``* ( ) \\`` and NUL escaped for an assertion value (RFC 4515)."""
    return str(ldap.filter.escape_filter_chars(value))


def equals(attr: str, value: str) -> str:
    """``"(attr=value)"`` with *value* escaped."""
    return f"({attr}={escape(value)})"


def any_of(attr: str, values: Sequence[str]) -> str:
    """``"(|(attr=v1)(attr=v2)...)"`` (one value: ``"(attr=v1)"``; none: a filter that
    matches nothing)."""
    if not values:
        return "(!(objectClass=*))"
    if len(values) == 1:
        return equals(attr, values[0])
    return "(|" + "".join(equals(attr, v) for v in values) + ")"


def all_of(*filters: str) -> str:
    """``"(&f1f2...)"`` of filters that are already filters (one: itself)."""
    if len(filters) == 1:
        return filters[0]
    return "(&" + "".join(filters) + ")"


def rdn(attr: str, value: str) -> str:
    """``"attr=value"`` with *value* escaped per RFC 4514."""
    return f"{attr}={ldap.dn.escape_dn_chars(value)}"


def parent(dn: str) -> str:
    """The DN of *dn*'s parent (``""`` for a one-RDN DN).

    Raises:
        ValueError: *dn* is not a DN.
    """
    try:
        parts = ldap.dn.str2dn(dn)
    except ldap.DECODING_ERROR:
        raise ValueError(f"not a DN: {dn!r}") from None
    return str(ldap.dn.dn2str(parts[1:]))


def normalize_dn(dn: str) -> str:
    """*dn* in one spelling for comparisons: lower-cased, spaces around separators gone,
    escapes canonical. A string that is not a DN is only stripped and lower-cased."""
    try:
        parts = ldap.dn.str2dn(dn)
    except ldap.DECODING_ERROR:
        return dn.strip().lower()
    return str(ldap.dn.dn2str(parts)).lower()
