"""The exceptions sluiced raises, by what the caller should do about them.

* :class:`TransientError` — try again later (connection reset, 5xx, 429). Retried inside a
  run with backoff; a run that still fails counts towards quarantine.
* :class:`CredentialsError` — the other end rejected our credentials. Retrying cannot
  help, so the integration is quarantined at once.
* :class:`ProtocolError` — the other end answered something that is not its protocol.
  Also quarantines at once.
* :class:`ObjectError` — one object cannot be synced; it goes to escrow, the rest syncs.
* :class:`ConfigError` — a bad config; the message names the file, the key path, what
  was found and what was expected.
"""

from __future__ import annotations

from collections.abc import Sequence

from .redact import redact_text

__all__ = [
    "ConfigError",
    "ConfigProblem",
    "CredentialsError",
    "ObjectError",
    "ProtocolError",
    "SyncError",
    "TransientError",
]


class SyncError(Exception):
    """Base class of errors raised while an integration runs.

    ``code`` is a stable CamelCase identifier shown in status and quarantine records.
    """

    code = "SyncError"
    #: True when the integration should be quarantined at once (retrying cannot help).
    quarantine_now = False


class TransientError(SyncError):
    """Worth retrying. ``retry_after`` is the server's requested delay in seconds, if any."""

    code = "TransientError"

    def __init__(self, message: str, *, retry_after: float | None = None) -> None:
        super().__init__(message)
        self.retry_after = retry_after


class CredentialsError(SyncError):
    code = "CredentialsRejected"
    quarantine_now = True


class ProtocolError(SyncError):
    code = "ProtocolViolation"
    quarantine_now = True


class ObjectError(SyncError):
    """One object failed. ``transient`` says whether a later retry may succeed."""

    code = "ObjectError"

    def __init__(self, message: str, *, transient: bool = False) -> None:
        super().__init__(message)
        self.transient = transient


class ConfigProblem:
    """One problem in a config: where it is, what was found and what was expected."""

    __slots__ = ("expected", "file", "found", "key")

    def __init__(self, *, file: str, key: str, found: str, expected: str) -> None:
        self.file = file
        self.key = key
        self.found = redact_text(found)  # a URL's credentials are never repeated
        self.expected = expected

    def __str__(self) -> str:
        key = self.key or "(top level)"
        return f"{self.file}: {key}: found {self.found}; expected {self.expected}"

    def __repr__(self) -> str:
        return f"ConfigProblem({self})"


class ConfigError(Exception):
    """A config that cannot be used; ``problems`` lists every problem found."""

    def __init__(self, problems: Sequence[ConfigProblem]) -> None:
        self.problems = tuple(problems)
        super().__init__("\n".join(str(p) for p in self.problems))
