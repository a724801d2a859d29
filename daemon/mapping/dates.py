"""The date functions of mapping expressions: FormatDateTime, DateAdd and Now, with .NET
format strings (``yyyyMMddHHmmss.fZ``). Times without an offset are taken as UTC."""

from __future__ import annotations

from datetime import UTC, datetime, timedelta
from typing import Any

from .expressions import EvalContext
from .values import empty, one, text

__all__ = ["date_add", "format_date_time", "now"]


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
    s = text(value) or ""
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
    if empty(source):
        return None
    moment = _parse_datetime(source, text(input_format))
    fmt = text(output_format)
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
    unit = _INTERVALS.get((text(interval) or "").lower())
    if unit is None:
        raise ValueError(f"interval must be one of {', '.join(_INTERVALS)}")
    if empty(moment):
        return None
    n = int(float(one(value)))
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
