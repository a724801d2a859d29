"""Typed reads from a TOML table, collecting every problem instead of stopping at one.

Config loading and connector plugins share this, so that every error in a config —
core keys and connector settings alike — names the file, the key path, what was found
and what was expected, and an unknown key is an error rather than silently ignored.
"""

from __future__ import annotations

import contextlib
import os
from collections.abc import Callable, Mapping, Sequence
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any, TypeVar

from .durations import DurationError, parse_duration
from .errors import ConfigError, ConfigProblem

__all__ = ["MISSING", "Problems", "Secret", "TableReader"]

T = TypeVar("T")


class _Missing:
    def __repr__(self) -> str:
        return "MISSING"


#: Default meaning "the key is required".
MISSING: Any = _Missing()


class Secret:
    """A secret value that never shows itself in ``repr``, ``str`` or logs.

    ``origin`` says where it came from (``file:/path``, ``env:NAME``, ``credential:NAME``)
    and is safe to show; ``reveal()`` gives the value to the code that sends it. A secret
    from a file is read again each time it is revealed, so a rotated token takes effect
    with the next job, without a reload (if the file cannot be read, the last value is used).
    """

    __slots__ = ("_path", "_value", "origin")

    def __init__(self, value: str, origin: str, path: Path | None = None) -> None:
        self._value = value
        self.origin = origin
        self._path = path

    def reveal(self) -> str:
        if self._path is not None:
            with contextlib.suppress(OSError):  # gone or unreadable now: the last value
                self._value = self._path.read_text().rstrip("\r\n")
        return self._value

    def __repr__(self) -> str:
        return f"Secret({self.origin})"

    __str__ = __repr__

    def __eq__(self, other: object) -> bool:
        return isinstance(other, Secret) and other._value == self._value

    def __hash__(self) -> int:
        return hash(self.origin)


def _describe(value: object) -> str:
    if isinstance(value, Mapping):
        return "a table"
    if isinstance(value, list):
        return "an array"
    if isinstance(value, bool):
        return f"boolean {str(value).lower()}"
    if isinstance(value, str):
        shown = value if len(value) <= 60 else value[:57] + "..."
        return f'"{shown}"'
    return f"{type(value).__name__} {value!r}"


class Problems:
    """An accumulator of :class:`ConfigProblem` for one file."""

    def __init__(self, file: str) -> None:
        self.file = file
        self.items: list[ConfigProblem] = []

    def add(self, key: str, found: str, expected: str) -> None:
        self.items.append(ConfigProblem(file=self.file, key=key, found=found, expected=expected))

    def raise_if_any(self) -> None:
        if self.items:
            raise ConfigError(self.items)


class TableReader:
    """Reads keys of one TOML table, checking types; ``finish()`` reports unknown keys.

    Every ``get_*`` returns the default (or a placeholder for a required key) after
    recording a problem, so a caller can go on reading and report all problems at once.
    Relative paths are resolved against ``base_dir`` (the config file's directory).
    """

    def __init__(
        self,
        table: Mapping[str, Any],
        *,
        path: str,
        problems: Problems,
        base_dir: Path,
        confine: Sequence[Path] | None = None,
    ) -> None:
        self.table = table
        self.path = path
        self.problems = problems
        self.base_dir = base_dir
        #: If given, every path read with :meth:`get_path` (here and in sub-tables) must
        #: lie inside one of these directories (symbolic links followed), else it is a
        #: problem. Connectors read their path settings with ``get_path``, so this
        #: confines them all.
        self.confine = confine
        self._seen: set[str] = set()

    def key(self, name: str) -> str:
        return f"{self.path}.{name}" if self.path else name

    def has(self, name: str) -> bool:
        return name in self.table

    def _raw(self, name: str, default: object, expected: str) -> object:
        self._seen.add(name)
        if name in self.table:
            return self.table[name]
        if default is MISSING:
            self.problems.add(self.key(name), "nothing (the key is required)", expected)
        return default

    def _typed(
        self, name: str, default: object, expected: str, convert: Callable[[object], T]
    ) -> T | Any:
        value = self._raw(name, default, expected)
        if value is MISSING or (value is default and name not in self.table):
            return value
        try:
            return convert(value)
        except (TypeError, ValueError) as exc:
            detail = f" ({exc})" if str(exc) and "expected" not in str(exc) else ""
            self.problems.add(self.key(name), _describe(value) + detail, expected)
            return default

    def get_str(self, name: str, default: Any = MISSING, *, choices: tuple[str, ...] = ()) -> Any:
        expected = "one of " + ", ".join(f'"{c}"' for c in choices) if choices else "a string"

        def convert(v: object) -> str:
            if not isinstance(v, str) or (choices and v not in choices):
                raise TypeError
            return v

        return self._typed(name, default, expected, convert)

    def get_int(self, name: str, default: Any = MISSING, *, minimum: int | None = None) -> Any:
        expected = "an integer" + (f" >= {minimum}" if minimum is not None else "")

        def convert(v: object) -> int:
            if isinstance(v, bool) or not isinstance(v, int):
                raise TypeError
            if minimum is not None and v < minimum:
                raise ValueError
            return v

        return self._typed(name, default, expected, convert)

    def get_float(
        self,
        name: str,
        default: Any = MISSING,
        *,
        minimum: float = 0.0,
        maximum: float | None = None,
    ) -> Any:
        upper = f" and <= {maximum:g}" if maximum is not None else ""
        expected = f"a number >= {minimum:g}{upper}"

        def convert(v: object) -> float:
            if isinstance(v, bool) or not isinstance(v, int | float):
                raise TypeError
            if v < minimum or (maximum is not None and v > maximum):
                raise ValueError
            return float(v)

        return self._typed(name, default, expected, convert)

    def get_bool(self, name: str, default: Any = MISSING) -> Any:
        def convert(v: object) -> bool:
            if not isinstance(v, bool):
                raise TypeError
            return v

        return self._typed(name, default, "true or false", convert)

    def get_duration(self, name: str, default: Any = MISSING, *, positive: bool = False) -> Any:
        expected = 'a duration like "40m", "1h30m", "90s", "PT40M" or a number of seconds'
        if positive:
            expected = "a positive " + expected[2:]

        def convert(v: object) -> timedelta:
            try:
                d = parse_duration(v)
            except DurationError as exc:
                raise ValueError from exc
            if positive and d <= timedelta(0):
                raise ValueError
            return d

        return self._typed(name, default, expected, convert)

    def get_durations(self, name: str, default: Any = MISSING) -> Any:
        expected = 'a non-empty array of durations like ["10m", "1h"]'

        def convert(v: object) -> tuple[timedelta, ...]:
            if not isinstance(v, list) or not v:
                raise TypeError
            try:
                return tuple(parse_duration(x) for x in v)
            except DurationError as exc:
                raise ValueError from exc

        return self._typed(name, default, expected, convert)

    def get_datetime(self, name: str, default: Any = MISSING) -> Any:
        expected = "a date-time with an offset, like 2027-01-01T00:00:00Z"

        def convert(v: object) -> datetime:
            if isinstance(v, str):
                v = datetime.fromisoformat(v.upper())  # RFC 3339 allows "t" and "z"
            if not isinstance(v, datetime) or v.tzinfo is None:
                raise TypeError
            return v.astimezone(UTC)

        return self._typed(name, default, expected, convert)

    def get_str_list(self, name: str, default: Any = MISSING, *, non_empty: bool = False) -> Any:
        expected = ("a non-empty " if non_empty else "an ") + "array of strings"

        def convert(v: object) -> tuple[str, ...]:
            if not isinstance(v, list) or not all(isinstance(x, str) for x in v):
                raise TypeError
            if non_empty and not v:
                raise TypeError
            return tuple(v)

        return self._typed(name, default, expected, convert)

    def get_path(self, name: str, default: Any = MISSING) -> Any:
        def convert(v: object) -> Path:
            if not isinstance(v, str) or not v or "\0" in v:
                raise TypeError
            p = Path(v).expanduser()
            return p if p.is_absolute() else self.base_dir / p

        value = self._typed(
            name, default, "a path (relative paths start at the config file)", convert
        )
        if self.confine is not None and name in self.table and isinstance(value, Path):
            real = value.resolve()
            if not any(real.is_relative_to(d.resolve()) for d in self.confine):
                self.problems.add(
                    self.key(name),
                    f"{_describe(self.table[name])} (outside the allowed directories)",
                    "a path inside a directory of [daemon] allowed_paths: "
                    + ", ".join(str(d) for d in self.confine),
                )
        return value

    def get_table(self, name: str, *, required: bool = False) -> TableReader:
        value = self._raw(name, MISSING if required else {}, "a table")
        if not isinstance(value, Mapping):
            if value is not MISSING:
                self.problems.add(self.key(name), _describe(value), "a table")
            value = {}
        return TableReader(
            value,
            path=self.key(name),
            problems=self.problems,
            base_dir=self.base_dir,
            confine=self.confine,
        )

    def get_secret(self, name: str, *, required: bool = True) -> Secret | None:
        """Read secret *name* from ``<name>_file``, ``<name>_env`` or ``<name>_credential``.

        The secret itself may not be written inline: an inline ``<name>`` is a problem.
        ``_credential`` names a systemd credential (``LoadCredential=``), read from
        ``$CREDENTIALS_DIRECTORY``. Trailing newlines are stripped.
        """
        expected = (
            f'{name}_file = "/path/to/file", {name}_env = "VARIABLE" or '
            f'{name}_credential = "name" (secrets are never written inline)'
        )
        if name in self.table:
            self._seen.add(name)
            self.problems.add(self.key(name), "an inline secret (not shown)", expected)
            return None
        given = [s for s in ("_file", "_env", "_credential") if name + s in self.table]
        if len(given) > 1:
            self.problems.add(
                self.key(name),
                "more than one of " + ", ".join(name + s for s in given),
                "exactly one source for the secret",
            )
        if not given:
            if required:
                self.problems.add(
                    self.key(name + "_file"), "nothing (the secret is required)", expected
                )
            return None
        suffix = given[0]
        ref = self.get_str(name + suffix)
        if not isinstance(ref, str):
            return None
        try:
            if suffix == "_file":
                known = len(self.problems.items)
                path = self.get_path(name + suffix)
                if len(self.problems.items) > known:  # not a path it may read
                    return None
                secret = Secret(path.read_text().rstrip("\r\n"), f"file:{path}", path)
            elif suffix == "_env":
                if ref not in os.environ:
                    raise LookupError(f"environment variable {ref} is not set")
                secret = Secret(os.environ[ref], f"env:{ref}")
            else:
                creds = os.environ.get("CREDENTIALS_DIRECTORY")
                if not creds:
                    raise LookupError("$CREDENTIALS_DIRECTORY is not set (no systemd credentials)")
                cred = Path(creds) / ref
                secret = Secret(cred.read_text().rstrip("\r\n"), f"credential:{ref}", cred)
            if not secret.reveal().strip():
                raise LookupError("it is empty")
            return secret
        except (OSError, LookupError) as exc:
            reason = exc.strerror if isinstance(exc, OSError) and exc.strerror else str(exc)
            self.problems.add(self.key(name + suffix), f'"{ref}" ({reason})', "a readable secret")
            return None

    def finish(self) -> None:
        """Record every key of the table that no ``get_*`` asked for as unknown."""
        for name in self.table:
            if name not in self._seen and not (
                any(
                    name.endswith(s) and name[: -len(s)] in self._seen
                    for s in ("_file", "_env", "_credential")
                )
            ):
                self.problems.add(
                    self.key(name), f"unknown key {name!r}", "only the documented keys"
                )

    def ignore(self, name: str) -> None:
        """Mark *name* as known without reading it (read elsewhere)."""
        self._seen.add(name)
