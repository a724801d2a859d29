"""How an integration's state changes when a run ends: pure, time passed in.

Policy (DIRECTORY.md, after Entra's published one; thresholds are configuration):

* Credentials rejected or a protocol violation: quarantine at once.
* A run where most objects fail (escrowed > ``escrow_proportion`` of those processed,
  from ``escrow_min_failures`` up) counts as a failed run.
* ``after_failures`` successive failed runs: quarantine.
* In quarantine, attempts follow ``escalation`` (the last step repeats).
* Quarantined for longer than ``disable_after``: escrows dropped, integration disabled.
* Any successful run lifts quarantine. A run that completed with objects left in
  escrow (``EntryLevelErrors``) is no complete failure: it lifts quarantine and resets
  the failure count too, but it is not a *successful* execution (Graph: one "which
  didn't have any errors"), so it leaves ``last_successful_execution`` and the steady
  state as they were.
"""

from __future__ import annotations

from dataclasses import dataclass, replace
from datetime import datetime

from .config import QuarantinePolicy
from .models import Execution, ExecutionError, IntegrationState, Quarantine

__all__ = [
    "COMPLETED_STATES",
    "RunOutcome",
    "apply_run_outcome",
    "escrow_proportion_exceeded",
    "quarantine_now",
]

TOO_MANY_DELETES = "TooManyDeletes"
#: Execution states of a run that completed: cleanly, or with objects left in escrow.
COMPLETED_STATES = ("Succeeded", "EntryLevelErrors")


@dataclass(frozen=True, kw_only=True)
class RunOutcome:
    execution: Execution
    #: Quarantine at once with this reason (credentials, protocol, TooManyDeletes).
    quarantine_reason: str | None = None
    #: A full pass finished (for the full-sync schedule).
    full_pass: bool = False


def escrow_proportion_exceeded(policy: QuarantinePolicy, processed: int, escrowed: int) -> bool:
    return escrowed >= policy.escrow_min_failures and escrowed > policy.escrow_proportion * max(
        processed, 1
    )


def _next_attempt(policy: QuarantinePolicy, began: datetime, series_count: int) -> datetime:
    step = policy.escalation[min(series_count - 1, len(policy.escalation) - 1)]
    return began + step


def quarantine_now(
    state: IntegrationState,
    policy: QuarantinePolicy,
    *,
    reason: str,
    now: datetime,
    error: ExecutionError | None = None,
) -> IntegrationState:
    """Enter (or escalate) quarantine. ``TooManyDeletes`` waits for an operator."""
    q = state.quarantine
    count = q.series_count + 1 if q else 1
    series_began = q.series_began if q else now
    nxt = None if reason == TOO_MANY_DELETES else _next_attempt(policy, now, count)
    return replace(
        state,
        quarantine=Quarantine(
            current_began=now,
            next_attempt=nxt,
            reason=reason,
            series_began=series_began,
            series_count=count,
            error=error,
        ),
    )


def apply_run_outcome(
    state: IntegrationState, policy: QuarantinePolicy, outcome: RunOutcome
) -> IntegrationState:
    """The integration's state after a run ended with *outcome*."""
    ex = outcome.execution
    now = ex.time_ended
    state = replace(state, last_execution=ex)
    if ex.state == "Stopped":
        return state
    if ex.state in COMPLETED_STATES and outcome.quarantine_reason is None:
        state = replace(state, successive_failures=0, quarantine=None)
        if ex.state == "Succeeded":
            state = replace(
                state,
                last_successful_execution=ex,
                steady_state_first=state.steady_state_first or now,
                steady_state_last=now,
            )
            if ex.count_exported:
                state = replace(state, last_successful_execution_with_exports=ex)
        if outcome.full_pass:
            state = replace(state, last_full_sync_end=now, full_sync_required=False)
        return state
    state = replace(state, successive_failures=state.successive_failures + 1)
    if outcome.quarantine_reason is not None:
        state = quarantine_now(
            state, policy, reason=outcome.quarantine_reason, now=now, error=ex.error
        )
    elif state.quarantine is not None or state.successive_failures >= policy.after_failures:
        state = quarantine_now(
            state, policy, reason="EncounteredQuarantineException", now=now, error=ex.error
        )
    q = state.quarantine
    if q is not None and now - q.series_began >= policy.disable_after:
        state = replace(
            state,
            disabled_reason=f"quarantined since {q.series_began.isoformat()}",
            escrows_pruned=True,
        )
    return state
