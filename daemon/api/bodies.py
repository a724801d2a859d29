"""Reading request bodies and query parameters strictly: wrong types, bad values and
unknown fields are 422 with the field named; malformed JSON is 400; a body over
``MAX_BODY`` bytes is 413. Pure functions of the received bytes and dicts."""

from __future__ import annotations

import json
import math
from collections.abc import Mapping
from dataclasses import dataclass
from typing import Any

from .errors import ApiError

__all__ = ["MAX_BODY", "Field", "parse_body", "read_fields"]

MAX_BODY = 1 << 20


@dataclass(frozen=True)
class Field:
    """One accepted field: its JSON type(s), and for strings the allowed values."""

    kind: str  # "bool" | "int" | "number" | "string" | "strings" | "object" | "any"
    required: bool = False
    choices: tuple[str, ...] = ()
    minimum: float | None = None
    maximum: float | None = None


def parse_body(raw: bytes, *, optional: bool = True) -> dict[str, Any]:
    """The JSON object in *raw*; an empty body is ``{}`` when *optional*."""
    if len(raw) > MAX_BODY:
        raise ApiError(413, "BodyTooLarge", f"the body is larger than {MAX_BODY} bytes")
    if not raw.strip():
        if optional:
            return {}
        raise ApiError(400, "MalformedJson", "a JSON object body is required")
    try:
        data = json.loads(raw)
    except (json.JSONDecodeError, UnicodeDecodeError) as exc:
        raise ApiError(400, "MalformedJson", f"the body is not valid JSON: {exc}") from None
    if not isinstance(data, dict):
        raise ApiError(
            400, "MalformedJson", f"the body must be a JSON object, not {type(data).__name__}"
        )
    return data


def _check(name: str, value: Any, spec: Field) -> Any:
    def bad(expected: str) -> ApiError:
        return ApiError(
            422,
            "InvalidField",
            f"{name} must be {expected}, not {json.dumps(value)[:80]}",
            field=name,
        )

    kind = spec.kind
    if kind == "bool":
        if not isinstance(value, bool):
            raise bad("true or false")
    elif kind in ("int", "number"):
        ok = isinstance(value, int) if kind == "int" else isinstance(value, int | float)
        if (
            isinstance(value, bool)
            or not ok
            or (isinstance(value, float) and not math.isfinite(value))
        ):
            raise bad("an integer" if kind == "int" else "a number")
        if spec.minimum is not None and value < spec.minimum:
            raise bad(f"at least {spec.minimum:g}")
        if spec.maximum is not None and value > spec.maximum:
            raise bad(f"at most {spec.maximum:g}")
    elif kind == "string":
        if not isinstance(value, str) or not value:
            raise bad("a non-empty string")
        if spec.choices and value not in spec.choices:
            raise bad("one of " + ", ".join(spec.choices))
    elif kind == "strings":
        if not isinstance(value, list) or not all(isinstance(v, str) and v for v in value):
            raise bad("an array of non-empty strings")
        if spec.choices and any(v not in spec.choices for v in value):
            raise bad("an array of " + ", ".join(spec.choices))
    elif kind == "object" and not isinstance(value, dict):
        raise bad("an object")
    return value


def read_fields(
    data: Mapping[str, Any], fields: Mapping[str, Field], *, prefix: str = ""
) -> dict[str, Any]:
    """Check *data* against *fields*: unknown and missing fields and wrong types are 422."""
    for name in data:
        if name not in fields:
            known = ", ".join(fields) or "none"
            raise ApiError(
                422,
                "UnknownField",
                f"unknown field {prefix}{name} (accepted: {known})",
                field=prefix + name,
            )
    out: dict[str, Any] = {}
    for name, spec in fields.items():
        if name not in data or data[name] is None:
            if spec.required:
                raise ApiError(
                    422, "MissingField", f"{prefix}{name} is required", field=prefix + name
                )
            continue
        out[name] = _check(prefix + name, data[name], spec)
    return out
