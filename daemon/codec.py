"""JSON: objects to text and back, their content hashes, and dataclass records to
JSON-ready dicts and back, driven by their type hints.

:func:`to_dict` and :func:`from_dict` are used by the SQLite store (and the control API)
so that a record type is described once, by its dataclass. They handle nested
dataclasses, datetimes (ISO 8601), enums, optionals, tuples and plain JSON values.
"""

from __future__ import annotations

import dataclasses
import hashlib
import json
import math
import re
import types
import typing
from collections.abc import Mapping
from datetime import datetime
from enum import Enum
from typing import Any, TypeVar

import orjson

from .errors import ObjectError

__all__ = [
    "HASH_FORM",
    "content_hash",
    "dumps",
    "encode_object",
    "from_dict",
    "loads",
    "object_hash",
    "same_content",
    "to_dict",
]

T = TypeVar("T")


#: The form of :func:`object_hash` digests; a digest without it is of the first form,
#: :func:`content_hash`, which links written by older versions hold.
HASH_FORM = "2:"
_ORJSON = orjson.OPT_SORT_KEYS | orjson.OPT_NON_STR_KEYS


def _default(value: Any) -> Any:
    """A value JSON has no type for: a mapping as an object, anything else as its ``str``."""
    return dict(value) if isinstance(value, Mapping) else str(value)


def dumps(obj: Any) -> str:
    """*obj* as compact JSON text, keys sorted, non-ASCII characters as they are; a
    mapping as an object, another value JSON cannot hold as its ``str``. Equal objects
    give equal text (the JSON Lines form the file target writes)."""
    try:
        return orjson.dumps(obj, default=_default, option=_ORJSON).decode()
    except TypeError:  # an integer beyond 64 bits, a key orjson cannot sort
        return json.dumps(
            obj, sort_keys=True, separators=(",", ":"), ensure_ascii=False, default=_default
        )


def _dumps_utf8(obj: Any) -> bytes:
    """:func:`dumps` of *obj*, encoded in UTF-8.

    Raises:
        UnicodeEncodeError: *obj* holds a string that is not Unicode text (a lone
            surrogate).
    """
    try:
        return orjson.dumps(obj, default=_default, option=_ORJSON)
    except TypeError:
        return dumps(obj).encode()


#: A run of digits as long as the longest 64-bit integers: orjson reads an integer
#: beyond 64 bits as a float (losing digits, silently), so text with such a run is
#: read by the standard library, which keeps every integer exact.
_LONG_DIGITS = re.compile(r"[0-9]{19}")
_LONG_DIGITS_BYTES = re.compile(rb"[0-9]{19}")


def orjson_exact(text: str | bytes) -> bool:
    """Whether orjson reads *text* exactly as the standard library does (as far as
    numbers go): it holds no run of digits long enough for an integer beyond 64 bits."""
    if isinstance(text, bytes):
        return _LONG_DIGITS_BYTES.search(text) is None
    return _LONG_DIGITS.search(text) is None


def loads(text: str | bytes) -> Any:
    """The value of the JSON *text*; integers exact, however long.

    Raises:
        ValueError: *text* is not JSON.
    """
    if orjson_exact(text):
        try:
            return orjson.loads(text)
        except orjson.JSONDecodeError:
            pass
    return json.loads(text)  # NaN, Infinity and integers beyond 64 bits, as Python reads them


def content_hash(data: Any) -> str:
    """A digest of *data*'s content (32 hex digits) that never changes from one version
    to the next (a fingerprint of a schema); :func:`object_hash` is faster."""
    text = json.dumps(data, sort_keys=True, separators=(",", ":"), default=str)
    return hashlib.sha256(text.encode()).hexdigest()[:32]


def encode_object(data: Mapping[str, Any]) -> tuple[str, str]:
    """*data* encoded once: its text (:func:`dumps`) and its :func:`object_hash`.

    Raises:
        ObjectError: a value of *data* is a number JSON has no form for (NaN, an
            infinity: a source the standard library parsed can hold one), naming the
            attribute; written, it would silently become ``null``.
    """
    try:
        raw = _dumps_utf8(data)
    except UnicodeEncodeError as exc:
        raise ObjectError(
            f"a value holds {exc.object[exc.start : exc.end]!r}, a lone surrogate: not"
            " Unicode text, which JSON and the target need"
        ) from None
    if b"null" in raw or b"NaN" in raw or b"Infinity" in raw:
        _refuse_non_finite(data)
    return raw.decode(), HASH_FORM + hashlib.sha256(raw).hexdigest()[:32]


def _refuse_non_finite(data: Mapping[str, Any]) -> None:
    """Raises ObjectError naming the first attribute of *data* holding NaN or an
    infinity, at any depth."""
    for key, value in data.items():
        bad = _non_finite(value)
        if bad is not None:
            raise ObjectError(
                f"attribute {key!r} holds {bad!r}, a number JSON has no form for "
                "(written, it would become null); the object is not written"
            )


def _non_finite(value: Any) -> float | None:
    """The first NaN or infinity in *value* (a JSON-like value), or None."""
    if isinstance(value, float):
        return value if not math.isfinite(value) else None
    if isinstance(value, Mapping):
        value = value.values()
    elif not isinstance(value, list | tuple):
        return None
    for item in value:
        bad = _non_finite(item)
        if bad is not None:
            return bad
    return None


def object_hash(data: Mapping[str, Any]) -> str:
    """A digest of *data*'s content: equal for equal objects, prefixed by :data:`HASH_FORM`."""
    return encode_object(data)[1]


def same_content(stored: str, digest: str, data: Mapping[str, Any]) -> bool:
    """Whether the digest *stored* (of either form) is of the same content as *data*,
    whose :func:`object_hash` is *digest*. A stored digest of the first form is
    compared with *data*'s first form (computed only then), so a link written by an
    older version is not taken for a change."""
    if stored == digest:
        return True
    return not stored.startswith(HASH_FORM) and stored == content_hash(data)


def to_dict(obj: Any) -> Any:
    """A JSON-ready form of *obj* (dataclass, datetime, enum, container or scalar)."""
    if dataclasses.is_dataclass(obj) and not isinstance(obj, type):
        return {f.name: to_dict(getattr(obj, f.name)) for f in dataclasses.fields(obj)}
    if isinstance(obj, datetime):
        return obj.isoformat()
    if isinstance(obj, Enum):
        return obj.value
    if isinstance(obj, Mapping):
        return {str(k): to_dict(v) for k, v in obj.items()}
    if isinstance(obj, list | tuple):
        return [to_dict(v) for v in obj]
    return obj


_HINTS: dict[type, dict[str, Any]] = {}


def _hints(cls: type) -> dict[str, Any]:
    if cls not in _HINTS:
        _HINTS[cls] = typing.get_type_hints(cls)
    return _HINTS[cls]


def _convert(tp: Any, value: Any) -> Any:
    if value is None:
        return None
    origin = typing.get_origin(tp)
    if origin in (typing.Union, types.UnionType):
        args = [a for a in typing.get_args(tp) if a is not type(None)]
        return _convert(args[0], value) if len(args) == 1 else value
    if isinstance(tp, type) and dataclasses.is_dataclass(tp):
        return from_dict(tp, value)
    if tp is datetime:
        return datetime.fromisoformat(value)
    if isinstance(tp, type) and issubclass(tp, Enum):
        return tp(value)
    if origin is tuple:
        item = typing.get_args(tp)[0] if typing.get_args(tp) else Any
        return tuple(_convert(item, v) for v in value)
    return value


def from_dict(cls: type[T], data: Mapping[str, Any]) -> T:
    """Rebuild a *cls* from :func:`to_dict` output; unknown keys are ignored."""
    hints = _hints(cls)
    kwargs = {
        f.name: _convert(hints[f.name], data[f.name])
        for f in dataclasses.fields(cls)  # type: ignore[arg-type]
        if f.name in data
    }
    return cls(**kwargs)
