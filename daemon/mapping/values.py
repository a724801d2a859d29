"""How mapping functions read their arguments: one value of a multi-valued attribute,
its text, whether it is empty."""

from __future__ import annotations

from collections.abc import Iterable
from typing import Any

__all__ = ["empty", "flatten", "one", "text"]


def one(value: Any) -> Any:
    """The value, or the first of a list (None for an empty list)."""
    if isinstance(value, list):
        return value[0] if value else None
    return value


def text(value: Any) -> str | None:
    """:func:`one` value as text (``True``/``False`` for booleans), or None."""
    value = one(value)
    if value is None:
        return None
    if isinstance(value, bool):
        return "True" if value else "False"
    return str(value)


def empty(value: Any) -> bool:
    """Null, an empty string or an empty list."""
    return value is None or value == "" or value == []


def flatten(values: Iterable[Any]) -> list[Any]:
    """The values with lists spread out."""
    out: list[Any] = []
    for v in values:
        out.extend(v if isinstance(v, list) else [v])
    return out
