"""Reading a schema document: its parts checked, each problem a :class:`SchemaError`
naming the JSON path where it is."""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from typing import Any

__all__ = ["SchemaError", "expect", "keys", "optional_string", "string"]


class SchemaError(ValueError):
    """An invalid schema; ``path`` is the JSON path of the problem."""

    def __init__(self, path: str, message: str) -> None:
        super().__init__(f"{path}: {message}")
        self.path = path
        self.message = message


def expect(cond: bool, path: str, message: str) -> None:
    if not cond:
        raise SchemaError(path, message)


def keys(
    data: Any, path: str, allowed: Sequence[str], required: Sequence[str] = ()
) -> Mapping[str, Any]:
    expect(isinstance(data, dict), path, "must be an object")
    for key in data:
        expect(key in allowed, f"{path}.{key}", f"unknown field (accepted: {', '.join(allowed)})")
    for key in required:
        expect(data.get(key) is not None, f"{path}.{key}", "is required")
    return data  # type: ignore[no-any-return]


def string(data: Mapping[str, Any], key: str, path: str, default: str | None = None) -> str:
    value = data.get(key, default)
    expect(isinstance(value, str) and bool(value), f"{path}.{key}", "must be a non-empty string")
    return value  # type: ignore[no-any-return]


def optional_string(data: Mapping[str, Any], key: str, path: str) -> str | None:
    if data.get(key) is None:
        return None
    return string(data, key, path)
