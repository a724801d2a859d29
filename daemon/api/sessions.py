"""Browser sessions of the web console: opaque random ids kept in memory with an
expiry, each bound to its own CSRF token, and a limit on failed logins.

A session id is looked up by its SHA-256 digest, so neither the dictionary's probing
nor a comparison runs on the secret itself; the CSRF token is compared in constant time.
Sessions live in the daemon's memory only: a restart signs everyone out.
"""

from __future__ import annotations

import hashlib
import hmac
import secrets
import time
from collections import deque
from collections.abc import Callable
from dataclasses import dataclass

__all__ = ["SESSION_TTL", "LoginLimiter", "Session", "Sessions"]

#: How long a session lasts after login, in seconds.
SESSION_TTL = 8 * 3600.0


@dataclass
class Session:
    """One signed-in browser: its CSRF token and when it expires (the clock's time)."""

    csrf: str
    expires: float

    def csrf_matches(self, given: str | None) -> bool:
        """Whether *given* is this session's CSRF token (constant-time)."""
        return given is not None and hmac.compare_digest(given.encode(), self.csrf.encode())


def _key(session_id: str) -> bytes:
    return hashlib.sha256(session_id.encode()).digest()


class Sessions:
    """The open sessions; at most *limit* (opening one more closes the oldest)."""

    def __init__(
        self,
        *,
        ttl: float = SESSION_TTL,
        limit: int = 64,
        clock: Callable[[], float] = time.monotonic,
    ) -> None:
        self.ttl, self.limit, self.clock = ttl, limit, clock
        self._open: dict[bytes, Session] = {}

    def open(self) -> tuple[str, Session]:
        """A new session: its id (for the cookie, never kept here) and the session."""
        self._expire()
        while len(self._open) >= self.limit:
            del self._open[next(iter(self._open))]
        session_id = secrets.token_urlsafe(32)
        session = Session(csrf=secrets.token_urlsafe(32), expires=self.clock() + self.ttl)
        self._open[_key(session_id)] = session
        return session_id, session

    def get(self, session_id: str | None) -> Session | None:
        """The live session of *session_id*, or None (unknown, expired or closed)."""
        if not session_id:
            return None
        key = _key(session_id)
        session = self._open.get(key)
        if session is not None and session.expires <= self.clock():
            del self._open[key]
            return None
        return session

    def close(self, session_id: str | None) -> None:
        """End the session of *session_id* (nothing if there is none)."""
        if session_id:
            self._open.pop(_key(session_id), None)

    def _expire(self) -> None:
        now = self.clock()
        for key in [k for k, s in self._open.items() if s.expires <= now]:
            del self._open[key]


class LoginLimiter:
    """At most *attempts* failed logins per client in *window* seconds."""

    def __init__(
        self,
        *,
        attempts: int = 5,
        window: float = 60.0,
        clock: Callable[[], float] = time.monotonic,
    ) -> None:
        self.attempts, self.window, self.clock = attempts, window, clock
        self._failures: dict[str, deque[float]] = {}

    def retry_after(self, client: str) -> float | None:
        """Seconds until *client* may try again, or None if it may now."""
        now = self.clock()
        failures = self._failures.get(client)
        if failures is None:
            return None
        while failures and failures[0] <= now - self.window:
            failures.popleft()
        if not failures:
            del self._failures[client]
            return None
        if len(failures) < self.attempts:
            return None
        return failures[0] + self.window - now

    def failed(self, client: str) -> None:
        """Count a failed login of *client*."""
        if len(self._failures) > 10_000:  # a flood of clients: forget the oldest
            del self._failures[next(iter(self._failures))]
        self._failures.setdefault(client, deque()).append(self.clock())
