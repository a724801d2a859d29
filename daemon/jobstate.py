"""The job state machine of seed 002, as a pure function.

::

    queued ──► running ──► completed
      │          │  ├────► failed ──(resume)──► queued
      │          │  ├────► paused ──(resume)──► queued
      │          │  ├────► stopped            (immediate stop)
      │          └─► stopping ──► stopped | completed | failed | paused
      └──► stopped                           (stopped before it started)

``paused`` can also be stopped. ``stopped`` by a daemon shutdown (``interrupted``) is
queued again at the next start; a ``stopped`` job is otherwise final.
"""

from __future__ import annotations

from .models import JobStatus

__all__ = ["InvalidTransition", "can_transition", "check_transition"]

S = JobStatus

_ALLOWED: dict[JobStatus, frozenset[JobStatus]] = {
    S.QUEUED: frozenset({S.RUNNING, S.STOPPED, S.FAILED}),
    S.RUNNING: frozenset({S.COMPLETED, S.FAILED, S.PAUSED, S.STOPPING, S.STOPPED, S.QUEUED}),
    S.STOPPING: frozenset({S.STOPPED, S.COMPLETED, S.FAILED, S.PAUSED}),
    S.PAUSED: frozenset({S.QUEUED, S.STOPPED}),
    S.FAILED: frozenset({S.QUEUED}),
    S.STOPPED: frozenset({S.QUEUED}),
    S.COMPLETED: frozenset(),
}


class InvalidTransition(Exception):
    """A job cannot go from its status to the one asked for (HTTP 409)."""

    def __init__(self, current: JobStatus, wanted: JobStatus) -> None:
        super().__init__(f"a {current.value} job cannot become {wanted.value}")
        self.current = current
        self.wanted = wanted


def can_transition(current: JobStatus, wanted: JobStatus) -> bool:
    return wanted in _ALLOWED[current]


def check_transition(current: JobStatus, wanted: JobStatus) -> JobStatus:
    """Return *wanted* if the move is allowed, else raise :class:`InvalidTransition`."""
    if not can_transition(current, wanted):
        raise InvalidTransition(current, wanted)
    return wanted
