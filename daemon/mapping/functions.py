"""The built-in functions of mapping expressions: Entra's names and argument orders.

Each takes the evaluation context first, then its arguments (already evaluated; an
omitted argument is None). Multi-valued attributes arrive as lists; functions that
expect one value take the first. Plugins add functions through the
``sluiced_mapping_functions`` hook.
"""

from __future__ import annotations

import unicodedata
from collections.abc import Callable, Iterable, Mapping
from datetime import UTC, datetime, timedelta
from typing import Any

from regex import Match

from .expressions import EvalContext, Function
from .patterns import PatternTimeout, compile_pattern

__all__ = ["BUILTINS", "IGNORE", "functions_from"]


class _Ignore:
    """Returned by IgnoreFlowIfNullOrEmpty: the attribute is left out of the export."""

    def __repr__(self) -> str:
        return "IGNORE"


IGNORE: Any = _Ignore()


def _one(value: Any) -> Any:
    if isinstance(value, list):
        return value[0] if value else None
    return value


def _text(value: Any) -> str | None:
    value = _one(value)
    if value is None:
        return None
    if isinstance(value, bool):
        return "True" if value else "False"
    return str(value)


def _empty(value: Any) -> bool:
    return value is None or value == "" or value == []


def _flatten(values: Iterable[Any]) -> list[Any]:
    out: list[Any] = []
    for v in values:
        out.extend(v if isinstance(v, list) else [v])
    return out


def append(ctx: EvalContext, source: Any, suffix: Any) -> str | None:
    s, x = _text(source), _text(suffix)
    if s is None and x is None:
        return None
    return (s or "") + (x or "")


def coalesce(ctx: EvalContext, *sources: Any) -> Any:
    for s in sources:
        if not _empty(s):
            return s
    return None


def join(ctx: EvalContext, separator: Any, *sources: Any) -> str | None:
    parts = [_text(v) for v in _flatten(sources) if not _empty(v)]
    return (_text(separator) or "").join(p for p in parts if p is not None) if parts else None


def split(ctx: EvalContext, source: Any, delimiter: Any) -> list[str] | None:
    s = _text(source)
    if s is None:
        return None
    return s.split(_text(delimiter) or ",")


def left(ctx: EvalContext, source: Any, count: Any) -> str | None:
    s = _text(source)
    n = int(_one(count) or 0)
    if n < 0:
        raise ValueError("the number of characters cannot be negative")
    return None if s is None else s[:n]


def mid(ctx: EvalContext, source: Any, start: Any, length: Any) -> str | None:
    s = _text(source)
    begin, n = int(_one(start)), int(_one(length))
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
    s = _text(source)
    replacement = _text(value) if value is not None else _text(value_attribute)
    if template is not None and old is not None:
        return (_text(template) or "").replace(_text(old) or "", s or "")
    if s is None:
        return None
    if old is not None:
        return s.replace(_text(old) or "", replacement or "")
    if pattern is not None:
        regex = compile_pattern(_text(pattern) or "")
        try:
            if group is not None:
                name = _text(group) or ""

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
    s = _text(source)
    return None if s is None else s.lower()


def to_upper(ctx: EvalContext, source: Any, culture: Any = None) -> str | None:
    s = _text(source)
    return None if s is None else s.upper()


def pcase(ctx: EvalContext, source: Any, separators: Any = None) -> str | None:
    s = _text(source)
    if s is None:
        return None
    seps = _text(separators) or " ,.-_/\\'\""
    out, new_word = [], True
    for ch in s:
        out.append(ch.upper() if new_word else ch.lower())
        new_word = ch in seps or ch.isspace()
    return "".join(out)


def strip_spaces(ctx: EvalContext, source: Any) -> str | None:
    s = _text(source)
    return None if s is None else "".join(s.split())


def normalize_diacritics(ctx: EvalContext, source: Any) -> str | None:
    s = _text(source)
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
    s = _text(source)
    for key, value in zip(pairs[::2], pairs[1::2], strict=True):
        if _text(key) == s:
            return value
    return default


def _truthy(value: Any) -> bool:
    value = _one(value)
    if isinstance(value, str):
        return value.strip().lower() in ("true", "1", "yes")
    return bool(value)


def iif(ctx: EvalContext, condition: Any, if_true: Any, if_false: Any) -> Any:
    return if_true if _truthy(condition) else if_false


def is_null(ctx: EvalContext, value: Any) -> bool:
    return value is None


def is_null_or_empty(ctx: EvalContext, value: Any) -> bool:
    return _empty(value)


def is_present(ctx: EvalContext, value: Any) -> bool:
    return not _empty(value)


def not_(ctx: EvalContext, value: Any) -> bool:
    return not _truthy(value)


def cstr(ctx: EvalContext, value: Any) -> str | None:
    return _text(value)


def cbool(ctx: EvalContext, value: Any) -> bool:
    value = _one(value)
    if isinstance(value, int | float) and not isinstance(value, bool):
        return value != 0
    return _truthy(value)


_NET_FORMAT = [
    ("yyyy", "%Y"),
    ("yy", "%y"),
    ("MM", "%m"),
    ("dd", "%d"),
    ("HH", "%H"),
    ("hh", "%I"),
    ("mm", "%M"),
    ("ss", "%S"),
    ("fffffff", "%f0"),
    ("ffffff", "%f"),
    ("fff", "%f"),
    ("tt", "%p"),
]


def _strftime_format(net: str) -> str:
    """A .NET date format (``yyyyMMddHHmmss.fZ``) as a strftime format."""
    out, i = "", 0
    while i < len(net):
        for token, py in _NET_FORMAT:
            if net.startswith(token, i):
                out += py
                i += len(token)
                break
        else:
            out += "%%" if net[i] == "%" else net[i]
            i += 1
    return out


def _parse_datetime(value: Any, input_format: str | None) -> datetime:
    s = _text(value) or ""
    if input_format:
        parsed = datetime.strptime(s, _strftime_format(input_format))
    else:
        parsed = datetime.fromisoformat(s.replace("Z", "+00:00"))
    return parsed if parsed.tzinfo else parsed.replace(tzinfo=UTC)


def format_date_time(
    ctx: EvalContext,
    source: Any,
    styles: Any = None,
    input_format: Any = None,
    output_format: Any = None,
) -> str | None:
    if _empty(source):
        return None
    moment = _parse_datetime(source, _text(input_format))
    fmt = _text(output_format)
    if not fmt:
        return moment.isoformat().replace("+00:00", "Z")
    out = moment.strftime(_strftime_format(fmt))
    return out.replace("%f", "")


_INTERVALS = {
    "yyyy": "years",
    "q": "quarters",
    "m": "months",
    "y": "days",
    "d": "days",
    "w": "days",
    "ww": "weeks",
    "h": "hours",
    "n": "minutes",
    "s": "seconds",
}


def date_add(ctx: EvalContext, interval: Any, value: Any, moment: Any) -> str | None:
    unit = _INTERVALS.get((_text(interval) or "").lower())
    if unit is None:
        raise ValueError(f"interval must be one of {', '.join(_INTERVALS)}")
    if _empty(moment):
        return None
    n = int(float(_one(value)))
    base = _parse_datetime(moment, None)
    if unit in ("years", "quarters", "months"):
        months = n * {"years": 12, "quarters": 3, "months": 1}[unit]
        total = base.month - 1 + months
        year, month = base.year + total // 12, total % 12 + 1
        day = min(
            base.day,
            [
                31,
                29 if year % 4 == 0 and (year % 100 or year % 400 == 0) else 28,
                31,
                30,
                31,
                30,
                31,
                31,
                30,
                31,
                30,
                31,
            ][month - 1],
        )
        result = base.replace(year=year, month=month, day=day)
    else:
        result = base + timedelta(**{unit: n})
    return result.isoformat().replace("+00:00", "Z")


def now(ctx: EvalContext) -> str:
    return ctx.now().astimezone(UTC).isoformat().replace("+00:00", "Z")


def guid(ctx: EvalContext) -> str:
    return ctx.new_guid()


def select_unique_value(ctx: EvalContext, *candidates: Any) -> Any:
    for candidate in candidates:
        if not _empty(candidate) and ctx.is_unique(candidate):
            return candidate
    raise ValueError("no candidate is unique in the target")


def ignore_flow_if_null_or_empty(ctx: EvalContext, value: Any) -> Any:
    return IGNORE if _empty(value) else value


def redact(ctx: EvalContext, value: Any) -> str | None:
    return None if value is None else "*"


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
