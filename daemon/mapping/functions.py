"""The built-in functions of mapping expressions: Entra's names and argument orders.

Each takes the evaluation context first, then its arguments (already evaluated; an
omitted argument is None). Multi-valued attributes arrive as lists; functions that
expect one value take the first. Plugins add functions through the
``sluiced_mapping_functions`` hook.
"""

from __future__ import annotations

import base64
import codecs
import unicodedata
from collections.abc import Callable, Mapping
from typing import Any

from regex import Match

from .dates import date_add, format_date_time, now
from .expressions import EvalContext, Function
from .patterns import PatternTimeout, compile_pattern
from .values import empty, flatten, one, text

__all__ = ["BUILTINS", "IGNORE", "functions_from"]


class _Ignore:
    """Returned by IgnoreFlowIfNullOrEmpty: the attribute is left out of the export."""

    def __repr__(self) -> str:
        return "IGNORE"


IGNORE: Any = _Ignore()


def append(ctx: EvalContext, source: Any, suffix: Any) -> str | None:
    s, x = text(source), text(suffix)
    if s is None and x is None:
        return None
    return (s or "") + (x or "")


def coalesce(ctx: EvalContext, *sources: Any) -> Any:
    for s in sources:
        if not empty(s):
            return s
    return None


def join(ctx: EvalContext, separator: Any, *sources: Any) -> str | None:
    parts = [text(v) for v in flatten(sources) if not empty(v)]
    return (text(separator) or "").join(p for p in parts if p is not None) if parts else None


def split(ctx: EvalContext, source: Any, delimiter: Any) -> list[str] | None:
    s = text(source)
    if s is None:
        return None
    return s.split(text(delimiter) or ",")


def left(ctx: EvalContext, source: Any, count: Any) -> str | None:
    s = text(source)
    n = int(one(count) or 0)
    if n < 0:
        raise ValueError("the number of characters cannot be negative")
    return None if s is None else s[:n]


def mid(ctx: EvalContext, source: Any, start: Any, length: Any) -> str | None:
    s = text(source)
    begin, n = int(one(start)), int(one(length))
    if begin < 1 or n < 0:
        raise ValueError("start counts from 1 and length cannot be negative")
    return None if s is None else s[begin - 1 : begin - 1 + n]


def replace(
    ctx: EvalContext,
    source: Any,
    old: Any = None,
    pattern: Any = None,
    group: Any = None,
    value: Any = None,
    value_attribute: Any = None,
    template: Any = None,
) -> str | None:
    s = text(source)
    replacement = text(value) if value is not None else text(value_attribute)
    if template is not None and old is not None:
        return (text(template) or "").replace(text(old) or "", s or "")
    if s is None:
        return None
    if old is not None:
        return s.replace(text(old) or "", replacement or "")
    if pattern is not None:
        regex = compile_pattern(text(pattern) or "")
        try:
            if group is not None:
                name = text(group) or ""

                def sub(match: Match[str]) -> str:
                    whole, start = match.group(0), match.start(name) - match.start(0)
                    return (
                        whole[:start]
                        + (replacement or "")
                        + whole[start + len(match.group(name) or "") :]
                    )

                return regex.sub(sub, s)
            return regex.sub(lambda m: replacement or "", s)
        except PatternTimeout as exc:
            raise exc.within("Replace") from None
    raise ValueError("give oldValue or regexPattern")


def to_lower(ctx: EvalContext, source: Any, culture: Any = None) -> str | None:
    s = text(source)
    return None if s is None else s.lower()


def to_upper(ctx: EvalContext, source: Any, culture: Any = None) -> str | None:
    s = text(source)
    return None if s is None else s.upper()


def pcase(ctx: EvalContext, source: Any, separators: Any = None) -> str | None:
    s = text(source)
    if s is None:
        return None
    seps = text(separators) or " ,.-_/\\'\""
    out, new_word = [], True
    for ch in s:
        out.append(ch.upper() if new_word else ch.lower())
        new_word = ch in seps or ch.isspace()
    return "".join(out)


def strip_spaces(ctx: EvalContext, source: Any) -> str | None:
    s = text(source)
    return None if s is None else "".join(s.split())


def normalize_diacritics(ctx: EvalContext, source: Any) -> str | None:
    s = text(source)
    if s is None:
        return None
    special = {
        "ß": "ss",
        "Æ": "AE",
        "æ": "ae",
        "Ø": "O",
        "ø": "o",
        "Ł": "L",
        "ł": "l",
        "Đ": "D",
        "đ": "d",
    }
    s = "".join(special.get(ch, ch) for ch in s)
    return "".join(ch for ch in unicodedata.normalize("NFKD", s) if not unicodedata.combining(ch))


def switch(ctx: EvalContext, source: Any, default: Any, *pairs: Any) -> Any:
    if len(pairs) % 2:
        raise ValueError("keys and values must come in pairs")
    s = text(source)
    for key, value in zip(pairs[::2], pairs[1::2], strict=True):
        if text(key) == s:
            return value
    return default


def _truthy(value: Any) -> bool:
    value = one(value)
    if isinstance(value, str):
        return value.strip().lower() in ("true", "1", "yes")
    return bool(value)


def iif(ctx: EvalContext, condition: Any, if_true: Any, if_false: Any) -> Any:
    return if_true if _truthy(condition) else if_false


def is_null(ctx: EvalContext, value: Any) -> bool:
    return value is None


def is_null_or_empty(ctx: EvalContext, value: Any) -> bool:
    return empty(value)


def is_present(ctx: EvalContext, value: Any) -> bool:
    return not empty(value)


def not_(ctx: EvalContext, value: Any) -> bool:
    return not _truthy(value)


def cstr(ctx: EvalContext, value: Any) -> str | None:
    return text(value)


def cbool(ctx: EvalContext, value: Any) -> bool:
    value = one(value)
    if isinstance(value, int | float) and not isinstance(value, bool):
        return value != 0
    return _truthy(value)


def guid(ctx: EvalContext) -> str:
    return ctx.new_guid()


def select_unique_value(ctx: EvalContext, *candidates: Any) -> Any:
    for candidate in candidates:
        if not empty(candidate) and ctx.is_unique(candidate):
            return candidate
    raise ValueError("no candidate is unique in the target")


def ignore_flow_if_null_or_empty(ctx: EvalContext, value: Any) -> Any:
    return IGNORE if empty(value) else value


def redact(ctx: EvalContext, value: Any) -> str | None:
    return None if value is None else "*"


def convert_to_base64(ctx: EvalContext, value: Any, encoding: Any = "utf-16-le") -> str | None:
    """Entra's ConvertToBase64: the text's bytes as base64, in UTF-16LE ("Unicode") as
    Entra encodes them, or in the encoding named by the second argument (``"utf-8"``:
    what an LDAP ``userPassword`` or another Octet String attribute expects)."""
    if value is None:
        return None
    name = text(encoding)
    try:
        codecs.lookup(name)
    except LookupError:
        raise ValueError(f'ConvertToBase64: unknown encoding "{name}"') from None
    return base64.b64encode(text(value).encode(name)).decode("ascii")


def _f(name: str, fn: Callable[..., Any], lo: int, hi: int | None) -> tuple[str, Function]:
    return name, Function(name, fn, lo, hi)


BUILTINS: dict[str, Function] = dict(
    [
        _f("Append", append, 2, 2),
        _f("Coalesce", coalesce, 1, None),
        _f("Join", join, 1, None),
        _f("Split", split, 2, 2),
        _f("Left", left, 2, 2),
        _f("Mid", mid, 3, 3),
        _f("Replace", replace, 2, 7),
        _f("ToLower", to_lower, 1, 2),
        _f("ToUpper", to_upper, 1, 2),
        _f("PCase", pcase, 1, 2),
        _f("StripSpaces", strip_spaces, 1, 1),
        _f("NormalizeDiacritics", normalize_diacritics, 1, 1),
        _f("Switch", switch, 2, None),
        _f("IIF", iif, 3, 3),
        _f("IsNull", is_null, 1, 1),
        _f("IsNullOrEmpty", is_null_or_empty, 1, 1),
        _f("IsPresent", is_present, 1, 1),
        _f("Not", not_, 1, 1),
        _f("CStr", cstr, 1, 1),
        _f("CBool", cbool, 1, 1),
        _f("ConvertToBase64", convert_to_base64, 1, 2),
        _f("DateAdd", date_add, 3, 3),
        _f("FormatDateTime", format_date_time, 1, 4),
        _f("Now", now, 0, 0),
        _f("Guid", guid, 0, 0),
        _f("SelectUniqueValue", select_unique_value, 1, None),
        _f("IgnoreFlowIfNullOrEmpty", ignore_flow_if_null_or_empty, 1, 1),
        _f("Redact", redact, 1, 1),
    ]
)


def functions_from(extra: Mapping[str, Callable[..., Any]]) -> dict[str, Function]:
    """The built-ins plus plugin functions (``fn(*args)``, any number of arguments).

    A plugin function may not replace a built-in.
    """
    out = dict(BUILTINS)
    for name, fn in extra.items():
        if name.lower() in {k.lower() for k in BUILTINS}:
            raise ValueError(f"a plugin function may not replace the built-in {name}")
        out[name] = Function(name, lambda ctx, *args, _fn=fn: _fn(*args), 0, None)
    return out
