"""The shapes of request bodies and query parameters, declared once: a :class:`Field`
both checks a received value and documents itself as JSON Schema (``Field.schema()``),
so that the OpenAPI document states exactly the limits the server enforces.

Reading is strict: wrong types, bad values, ``null`` where a field is not nullable and
unknown fields are 422 naming the field; malformed or too deeply nested JSON is 400; a
body over ``MAX_BODY`` bytes is 413. Pure functions of the received bytes and dicts.
"""

from __future__ import annotations

import json
import math
import re
from collections.abc import Mapping
from dataclasses import dataclass, field
from typing import Any

from .errors import ApiError

__all__ = ["MAX_BODY", "MAX_DEPTH", "Field", "parse_body", "read_fields", "read_query"]

MAX_BODY = 1 << 20
#: Arrays and objects nested deeper than this are refused (400) before any field is read.
MAX_DEPTH = 32
#: Integers with more digits than this are read as out of range (the field is then named).
_MAX_DIGITS = 400


@dataclass(frozen=True)
class Field:
    """One accepted value: its JSON type and limits.

    ``kind`` is ``bool``, ``int``, ``number``, ``string``, ``array`` (of ``items``),
    ``object`` (with ``fields``; other keys are refused unless ``extra``), ``id``
    (a string or an integer) or ``any`` (checked by the handler; documented by
    ``any_of``, or not at all). ``any_of`` lists alternatives for one value: the first
    whose required fields are all present is the one checked and named in errors.
    """

    kind: str
    required: bool = False
    nullable: bool = False
    choices: tuple[str, ...] = ()
    minimum: float | None = None
    maximum: float | None = None
    min_length: int | None = None
    max_length: int | None = None
    pattern: str | None = None
    items: Field | None = None
    fields: Mapping[str, Field] = field(default_factory=dict)
    extra: bool = False
    any_of: tuple[Field, ...] = ()
    description: str = ""

    # -- the document ---------------------------------------------------------------------
    def schema(self) -> dict[str, Any]:
        """This field as JSON Schema (OpenAPI 3.1)."""
        if self.any_of:
            out: dict[str, Any] = {"anyOf": [f.schema() for f in self.any_of]}
        else:
            out = self._own_schema()
        if self.nullable:
            out = {"anyOf": [out, {"type": "null"}]}
        if self.description:
            out["description"] = self.description
        return out

    def _own_schema(self) -> dict[str, Any]:
        kind = self.kind
        out: dict[str, Any] = {}
        if kind in ("bool", "int", "number", "string", "array", "object"):
            out["type"] = {"bool": "boolean", "int": "integer"}.get(kind, kind)
        elif kind == "id":
            out["type"] = ["string", "integer"]
        if kind in ("int", "number", "id"):
            if self.minimum is not None:
                out["minimum"] = self.minimum
            if self.maximum is not None:
                out["maximum"] = self.maximum
        if kind in ("string", "id"):
            if self.choices:
                out["enum"] = list(self.choices)
            else:
                out["minLength"] = self.min_length if self.min_length is not None else 1
                if self.max_length is not None:
                    out["maxLength"] = self.max_length
                if self.pattern is not None:
                    out["pattern"] = self.pattern
        if kind == "array":
            if self.items is not None:
                out["items"] = self.items.schema()
            if self.min_length:
                out["minItems"] = self.min_length
            if self.max_length is not None:
                out["maxItems"] = self.max_length
        if kind == "object" and (self.fields or not self.extra):
            out["properties"] = {name: f.schema() for name, f in self.fields.items()}
            required = [name for name, f in self.fields.items() if f.required]
            if required:
                out["required"] = required
            out["additionalProperties"] = self.extra
        return out

    # -- checking ---------------------------------------------------------------------------
    def check(self, name: str, value: Any) -> Any:
        """*value* if it fits; else :class:`ApiError` 422 naming *name*."""
        if value is None:
            if self.nullable:
                return None
            raise ApiError(422, "InvalidField", f"{name} must not be null", field=name)
        if self.any_of:
            return self._pick(value).check(name, value)
        return self._check_own(name, value)

    def _pick(self, value: Any) -> Field:
        for alt in self.any_of:
            if alt.accepts_shape(value):
                return alt
        return self.any_of[0]

    def accepts_shape(self, value: Any) -> bool:
        """Whether *value* is of this field's JSON type (and has its required fields)."""
        kind = self.kind
        if kind == "object":  # its required fields with fixed values have one of them
            return isinstance(value, dict) and all(
                value.get(n) in f.choices
                for n, f in self.fields.items()
                if f.required and f.choices
            )
        if kind == "array":
            return isinstance(value, list)
        if kind in ("string", "id") and isinstance(value, str):
            return True
        if kind == "bool":
            return isinstance(value, bool)
        return kind in ("int", "number", "id") and _is_number(value)

    def _check_own(self, name: str, value: Any) -> Any:
        kind = self.kind
        if kind == "bool":
            if not isinstance(value, bool):
                raise _bad(name, value, "true or false")
        elif kind in ("int", "number") or (kind == "id" and not isinstance(value, str)):
            integral = kind != "number"
            if integral and isinstance(value, float) and value.is_integer():
                value = int(value)  # JSON Schema: 3.0 is an integer
            if not _is_number(value) or (integral and not isinstance(value, int)):
                raise _bad(name, value, "an integer" if integral else "a number")
            if self.minimum is not None and value < self.minimum:
                raise _bad(name, value, f"at least {_number(self.minimum)}")
            if self.maximum is not None and value > self.maximum:
                raise _bad(name, value, f"at most {_number(self.maximum)}")
        elif kind in ("string", "id"):
            self._check_string(name, value)
        elif kind == "array":
            if not isinstance(value, list):
                raise _bad(name, value, "an array")
            if self.min_length and len(value) < self.min_length:
                raise _bad(name, value, f"an array of at least {self.min_length} items")
            if self.max_length is not None and len(value) > self.max_length:
                raise _bad(name, value, f"an array of at most {self.max_length} items")
            if self.items is not None:
                return [self.items.check(f"{name}[{i}]", v) for i, v in enumerate(value)]
        elif kind == "object":
            if not isinstance(value, dict):
                raise _bad(name, value, "an object")
            if self.fields or not self.extra:
                prefix = f"{name}." if name else ""
                checked = read_fields(value, self.fields, prefix=prefix, extra=self.extra)
                return {**value, **checked} if self.extra else checked
        return value

    def _check_string(self, name: str, value: Any) -> None:
        if not isinstance(value, str):
            raise _bad(name, value, "a string")
        if self.choices:
            if value not in self.choices:
                raise _bad(name, value, "one of " + ", ".join(self.choices))
            return
        shortest = self.min_length if self.min_length is not None else 1
        if len(value) < shortest:
            raise _bad(name, value, "a non-empty string")
        if self.max_length is not None and len(value) > self.max_length:
            raise _bad(name, value, f"a string of at most {self.max_length} characters")
        # JSON Schema's "$" is the end of the text, not also before a last newline.
        pattern = (
            self.pattern[:-1] + r"\Z"
            if self.pattern and self.pattern.endswith("$")
            else self.pattern
        )
        if pattern is not None and re.search(pattern, value) is None:
            rule = f"a string matching {self.pattern}"
            if self.description:  # a long pattern is left to the API's description
                rule = self.description + (f" ({self.pattern})" if len(pattern) <= 60 else "")
            raise _bad(name, value, rule)


def _is_number(value: Any) -> bool:
    return (
        isinstance(value, int | float)
        and not isinstance(value, bool)
        and (not isinstance(value, float) or math.isfinite(value))
    )


def _number(bound: float) -> str:
    """*bound* as written in JSON: an integral one without exponent or fraction."""
    return str(int(bound)) if float(bound).is_integer() else f"{bound:g}"


def _json_kind(value: Any) -> str:
    """The JSON kind of a decoded *value*, as a message names it."""
    if value is None:
        return "null"
    if isinstance(value, bool):
        return "a boolean"
    if isinstance(value, (int, float)):
        return "a number"
    if isinstance(value, str):
        return "a string"
    return "an array" if isinstance(value, list) else "an object"


def _bad(name: str, value: Any, expected: str) -> ApiError:
    try:
        shown = json.dumps(value)
    except ValueError:
        shown = "a value"
    if isinstance(value, float) and not math.isfinite(value):
        shown = "an integer out of range"
    if len(shown) > 80:
        shown = shown[:77] + "..."
    return ApiError(422, "InvalidField", f"{name} must be {expected}, not {shown}", field=name)


def _parse_int(text: str) -> int | float:
    """Integers beyond any limit are read as infinite, so the field they are in is named."""
    if len(text.lstrip("-")) > _MAX_DIGITS:
        return -math.inf if text.startswith("-") else math.inf
    return int(text)


def _depth(value: Any) -> int:
    """How deeply arrays and objects nest in *value* (iterative: no recursion limit)."""
    deepest = 0
    stack = [(value, 1)]
    while stack:
        node, level = stack.pop()
        if isinstance(node, dict | list):
            deepest = max(deepest, level)
            if deepest > MAX_DEPTH:
                return deepest
            children = node.values() if isinstance(node, dict) else node
            stack.extend((child, level + 1) for child in children)
    return deepest


def parse_body(raw: bytes, *, optional: bool = True) -> dict[str, Any]:
    """The JSON object in *raw*; an empty body (no bytes at all) is ``{}`` when
    *optional*. Anything else must be a JSON object: whitespace alone is not JSON."""
    if len(raw) > MAX_BODY:
        raise ApiError(413, "BodyTooLarge", f"the body is larger than {MAX_BODY} bytes")
    if not raw:
        if optional:
            return {}
        raise ApiError(400, "MalformedJson", "a JSON object body is required")
    try:
        data = json.loads(raw, parse_int=_parse_int, parse_constant=_refuse_constant)
    except json.JSONDecodeError as exc:
        raise ApiError(
            400, "MalformedJson", f"the body is not valid JSON ({exc.msg} at {exc.pos})"
        ) from None
    except UnicodeDecodeError:
        raise ApiError(400, "MalformedJson", "the body is not UTF-8") from None
    except (RecursionError, _NotJson):
        raise ApiError(400, "MalformedJson", "the body is not valid JSON") from None
    if _depth(data) > MAX_DEPTH:
        raise ApiError(
            400, "MalformedJson", f"the body nests arrays and objects deeper than {MAX_DEPTH}"
        )
    if not isinstance(data, dict):
        raise ApiError(
            400, "MalformedJson", f"the body must be a JSON object, not {_json_kind(data)}"
        )
    return data


class _NotJson(ValueError):
    pass


def _refuse_constant(name: str) -> Any:
    raise _NotJson(name)  # NaN and Infinity are not JSON


def read_fields(
    data: Mapping[str, Any],
    fields: Mapping[str, Field],
    *,
    prefix: str = "",
    extra: bool = False,
) -> dict[str, Any]:
    """Check *data* against *fields*: unknown fields (unless *extra*), missing required
    ones, ``null`` for one that is not nullable and wrong values are 422 naming the field.
    Absent optional fields are left out of the result."""
    if not extra:
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
        if name not in data:
            if spec.required:
                # A missing object is named by the first field it would need.
                inner = [n for n, f in spec.fields.items() if f.required][:1]
                missing = ".".join([prefix + name, *inner])
                raise ApiError(422, "MissingField", f"{missing} is required", field=missing)
            continue
        out[name] = spec.check(prefix + name, data[name])
    return out


_ASCII_INT = re.compile(r"-?[0-9]+")


def read_query(params: Any, fields: Mapping[str, Field]) -> dict[str, Any]:
    """Check query parameters (a multi-dict) against *fields*: integers and booleans are
    converted; an ``array`` field takes repeated and comma-separated values."""
    for name in params:
        if name not in fields:
            raise ApiError(
                422,
                "UnknownField",
                f"unknown query parameter {name} (accepted: {', '.join(fields) or 'none'})",
                field=name,
            )
    data: dict[str, Any] = {}
    for name, spec in fields.items():
        values: list[str] = params.getlist(name)
        if not values:
            continue
        if spec.kind == "array":
            # "status=" is the empty array; "a,,b" has an empty (invalid) item.
            data[name] = [v for part in values if part for v in part.split(",")]
            continue
        if len(values) > 1:
            raise ApiError(422, "InvalidField", f"{name} is given more than once", field=name)
        text = values[0]
        if spec.kind == "int":
            if _ASCII_INT.fullmatch(text) is None:
                raise _bad(name, text, "an integer")
            data[name] = _parse_int(text)
        elif spec.kind == "bool":
            if text not in ("true", "false"):
                raise _bad(name, text, "true or false")
            data[name] = text == "true"
        else:
            data[name] = text
    return read_fields(data, fields)
