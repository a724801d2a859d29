"""When is an integration next due? Pure decisions, no clock and no event loop.

Rules:

* A run is due a fixed ``interval`` after the *end* of the last run (not its start), so
  a slow run never overlaps the next one, plus a jitter derived from the integration id
  (stable across restarts, different between integrations).
* A never-run integration is due at once (plus its jitter).
* Missed runs after downtime coalesce: however many intervals passed, one run is due.
* A run is a full sync when ``full_sync_interval`` has passed since the last full one.
* Paused or Disabled schedules, and expired ones, are never due.
* In quarantine, the quarantine's ``next_attempt`` replaces the interval (``None``:
  waiting for an operator, e.g. ``TooManyDeletes``).
"""

from __future__ import annotations

import hashlib
from dataclasses import dataclass
from datetime import datetime, timedelta

from .config import IntegrationConfig
from .models import IntegrationState, JobType

__all__ = ["Due", "effective_interval", "effective_state", "jitter_for", "next_due"]


@dataclass(frozen=True, kw_only=True)
class Due:
    at: datetime
    job_type: JobType


def jitter_for(integration_id: str, jitter: timedelta) -> timedelta:
    """A stable offset in ``[0, jitter)`` derived from the integration id."""
    if jitter <= timedelta(0):
        return timedelta(0)
    digest = hashlib.sha256(integration_id.encode()).digest()
    fraction = int.from_bytes(digest[:8], "big") / 2**64
    return timedelta(seconds=jitter.total_seconds() * fraction)


def effective_interval(cfg: IntegrationConfig, state: IntegrationState) -> timedelta:
    if state.interval_s is not None:
        return timedelta(seconds=state.interval_s)
    return cfg.interval


def effective_state(cfg: IntegrationConfig, state: IntegrationState) -> str:
    """Active, Paused or Disabled: the API's override wins over the config file."""
    if state.disabled_reason is not None:
        return "Disabled"
    return state.schedule_state or cfg.state


def _job_type(cfg: IntegrationConfig, state: IntegrationState, at: datetime) -> JobType:
    baseline = state.last_successful_execution or state.last_full_sync_end
    if baseline is None or state.full_sync_required:
        return JobType.FULL  # incremental needs a baseline (a run with escrows is one)
    if cfg.full_sync_interval is not None and (
        state.last_full_sync_end is None or state.last_full_sync_end + cfg.full_sync_interval <= at
    ):
        return JobType.FULL
    return JobType.INCREMENTAL


def next_due(
    cfg: IntegrationConfig, state: IntegrationState, *, now: datetime, started: datetime
) -> Due | None:
    """The next run of the integration, or ``None`` if none is scheduled.

    *started* is when the daemon started: the first run after start-up is not earlier
    than that plus the jitter, so a restart does not fire every integration at once.
    A returned time in the past means "now": missed runs coalesce into that one.
    """
    if effective_state(cfg, state) != "Active":
        return None
    if cfg.expiration is not None and now >= cfg.expiration:
        return None
    offset = jitter_for(cfg.id, cfg.jitter)
    if state.quarantine is not None:
        at = state.quarantine.next_attempt
        if at is None:
            return None
    elif state.last_execution is None:
        at = started + offset
    else:
        at = state.last_execution.time_ended + effective_interval(cfg, state) + offset
    if cfg.expiration is not None and at >= cfg.expiration:
        return None
    # Overdue runs after a restart are spread by the jitter too.
    at = max(at, started + offset)
    return Due(at=at, job_type=_job_type(cfg, state, max(at, now)))
