"""Durations as written in config files and the API.

Two spellings are accepted, because both are what people type:

* ISO 8601 durations as used by seed 003's schedules: ``PT40M``, ``P1DT2H``, ``PT1.5S``.
  ``PT1M`` is one minute (the ``T`` separates date from time); years and months are
  refused because their length is not fixed.
* Short forms: ``40m``, ``1h30m``, ``1h 30m``, ``90s``, ``2d``, ``500ms``.

A bare integer (TOML ``interval = 300``) is a number of seconds, as in seed 002's API.
A duration is finite and at most ``MAX_DURATION`` (about 27 years): ``inf``, ``1e300`` or
``"99999999999d"`` are refused with a ``DurationError``, never an ``OverflowError``.
"""

from __future__ import annotations

import math
import re
from datetime import timedelta

__all__ = ["MAX_DURATION", "DurationError", "format_duration", "format_iso8601", "parse_duration"]

#: The longest duration accepted: far beyond any interval, and far inside what
#: ``timedelta`` and a trio deadline can hold.
MAX_DURATION = timedelta(days=10000)


class DurationError(ValueError):
    """A text that is not a duration; the message says what is accepted."""


_EXPECTED = 'a duration like "40m", "1h30m", "90s", "PT40M" or a number of seconds'

_ISO = re.compile(
    r"P(?:(?P<weeks>\d+(?:\.\d+)?)W)?(?:(?P<days>\d+(?:\.\d+)?)D)?"
    r"(?:T(?:(?P<hours>\d+(?:\.\d+)?)H)?(?:(?P<minutes>\d+(?:\.\d+)?)M)?"
    r"(?:(?P<seconds>\d+(?:\.\d+)?)S)?)?",
)
_SHORT_PART = re.compile(r"\s*(\d+(?:\.\d+)?)\s*(ms|d|h|m|s)")
_SHORT_UNITS = {"d": 86400.0, "h": 3600.0, "m": 60.0, "s": 1.0, "ms": 0.001}


def parse_duration(value: object) -> timedelta:
    """Parse *value* (str, int or float seconds) into a non-negative timedelta.

    Raises:
        DurationError: the value is not one of the accepted spellings, or is negative.
    """
    if isinstance(value, bool):
        raise DurationError(f"expected {_EXPECTED}")
    if isinstance(value, int | float):
        if value < 0:
            raise DurationError("a duration cannot be negative")
        return _bounded(float(value), repr(value))
    if not isinstance(value, str):
        raise DurationError(f"expected {_EXPECTED}")
    text = value.strip()
    if text.upper().startswith("P"):
        return _parse_iso(text.upper())
    return _parse_short(text.lower())


def _bounded(seconds: float, shown: str) -> timedelta:
    """*seconds* as a timedelta, refused when not finite or longer than ``MAX_DURATION``."""
    if not math.isfinite(seconds):
        raise DurationError(f"{shown} is not a finite duration")
    if seconds > MAX_DURATION.total_seconds():
        raise DurationError(f"{shown} is too long for a duration (at most 10000 days)")
    return timedelta(seconds=seconds)


_ISO_SECONDS = {"weeks": 604800.0, "days": 86400.0, "hours": 3600.0, "minutes": 60.0}
_MONTHS = re.compile(r"P(?:[\d.]+Y)?(?:[\d.]+M)")


def _parse_iso(text: str) -> timedelta:
    match = _ISO.fullmatch(text)
    if match is None or text in ("P", "PT") or text.endswith("T"):
        if re.match(r"P[\d.]+Y", text) or _MONTHS.match(text):
            raise DurationError(
                f"{text!r}: years and months are not durations (their length varies); "
                'write days or weeks, e.g. "P30D" or "P4W"'
            )
        raise DurationError(f"{text!r} is not an ISO 8601 duration; expected {_EXPECTED}")
    total = sum(
        float(v) * _ISO_SECONDS.get(name, 1.0)
        for name, v in match.groupdict().items()
        if v is not None
    )
    return _bounded(total, repr(text))


def _parse_short(text: str) -> timedelta:
    if not text:
        raise DurationError(f"empty duration; expected {_EXPECTED}")
    total = 0.0
    pos = 0
    for match in _SHORT_PART.finditer(text):
        if match.start() != pos:
            break
        total += float(match.group(1)) * _SHORT_UNITS[match.group(2)]
        pos = match.end()
    if pos != len(text):
        raise DurationError(f"{text!r} is not a duration; expected {_EXPECTED}")
    return _bounded(total, repr(text))


def format_duration(value: timedelta) -> str:
    """The short form of *value*: ``1h30m``, ``40m``, ``0s``. Round-trips through parse."""
    total_ms = round(value.total_seconds() * 1000)
    seconds, ms = divmod(total_ms, 1000)
    out = []
    for unit, size in (("d", 86400), ("h", 3600), ("m", 60), ("s", 1)):
        count, seconds = divmod(seconds, size)
        if count:
            out.append(f"{count}{unit}")
    if ms:
        out.append(f"{ms}ms")
    return "".join(out) or "0s"


def format_iso8601(value: timedelta) -> str:
    """The ISO 8601 form of *value* as seed 003 shows it: ``PT40M``, ``P1DT2H``."""
    total = value.total_seconds()
    days, rest = divmod(total, 86400)
    hours, rest = divmod(rest, 3600)
    minutes, seconds = divmod(rest, 60)
    out = "P"
    if days:
        out += f"{int(days)}D"
    time = ""
    if hours:
        time += f"{int(hours)}H"
    if minutes:
        time += f"{int(minutes)}M"
    if seconds or not (days or time):
        time += f"{seconds:g}S"
    return out + ("T" + time if time else "")
