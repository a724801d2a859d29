"""Pure decisions: job transitions, schedule, backoff, circuit breaker, quarantine."""

from __future__ import annotations

import random
from dataclasses import replace
from datetime import UTC, datetime, timedelta

import pytest

from sluiced.backoff import BreakerState, CircuitBreaker, CircuitOpenError, backoff_delay
from sluiced.config import ConnectorConfig, IntegrationConfig, QuarantinePolicy
from sluiced.jobstate import InvalidTransition, can_transition, check_transition
from sluiced.models import (
    Execution,
    ExecutionError,
    IntegrationState,
    JobStatus,
    JobType,
    Quarantine,
)
from sluiced.quarantine import RunOutcome, apply_run_outcome, escrow_proportion_exceeded
from sluiced.schedule import jitter_for, next_due

T0 = datetime(2026, 3, 1, 12, 0, tzinfo=UTC)
S = JobStatus


def cfg(**kw: object) -> IntegrationConfig:
    c = IntegrationConfig(
        id="hr",
        name="hr",
        source=ConnectorConfig(connector="jsonl"),
        target=ConnectorConfig(connector="jsonl"),
        entity_types=("user",),
        interval=timedelta(minutes=40),
        jitter=timedelta(0),
    )
    return replace(c, **kw)  # type: ignore[arg-type]


def ran(state: str = "Succeeded", ended: datetime = T0, exported: int = 0) -> Execution:
    return Execution(
        job_id="j",
        state=state,
        time_began=ended - timedelta(minutes=1),
        time_ended=ended,
        count_exported=exported,
    )


# -- job state machine ----------------------------------------------------------------
@pytest.mark.parametrize(
    ("a", "b"),
    [
        (S.QUEUED, S.RUNNING),
        (S.RUNNING, S.COMPLETED),
        (S.RUNNING, S.PAUSED),
        (S.RUNNING, S.STOPPING),
        (S.STOPPING, S.STOPPED),
        (S.PAUSED, S.QUEUED),
        (S.FAILED, S.QUEUED),
        (S.RUNNING, S.FAILED),
        (S.QUEUED, S.STOPPED),
        (S.PAUSED, S.STOPPED),
        (S.STOPPING, S.COMPLETED),
        (S.RUNNING, S.STOPPED),
    ],
)
def test_allowed_transitions(a: JobStatus, b: JobStatus) -> None:
    assert check_transition(a, b) is b


@pytest.mark.parametrize(
    ("a", "b"),
    [
        (S.COMPLETED, S.QUEUED),
        (S.COMPLETED, S.RUNNING),
        (S.QUEUED, S.PAUSED),
        (S.PAUSED, S.RUNNING),
        (S.STOPPED, S.RUNNING),
        (S.FAILED, S.COMPLETED),
        (S.STOPPING, S.RUNNING),
    ],
)
def test_refused_transitions(a: JobStatus, b: JobStatus) -> None:
    assert not can_transition(a, b)
    with pytest.raises(InvalidTransition, match=f"a {a.value} job cannot become {b.value}"):
        check_transition(a, b)


def test_completed_is_final() -> None:
    assert not any(can_transition(S.COMPLETED, s) for s in S)


# -- schedule ---------------------------------------------------------------------------
def test_never_run_is_due_at_start_as_a_full_sync() -> None:
    due = next_due(cfg(), IntegrationState(integration_id="hr"), now=T0, started=T0)
    assert due is not None and due.at == T0 and due.job_type is JobType.FULL


def test_fixed_delay_after_the_end_of_the_last_run() -> None:
    st = IntegrationState(
        integration_id="hr", last_execution=ran(), last_successful_execution=ran()
    )
    due = next_due(cfg(), st, now=T0, started=T0 - timedelta(hours=1))
    assert due is not None and due.at == T0 + timedelta(minutes=40)
    assert due.job_type is JobType.INCREMENTAL


def test_changed_interval_takes_effect_at_once() -> None:
    st = IntegrationState(
        integration_id="hr", last_execution=ran(), last_successful_execution=ran(), interval_s=60
    )
    due = next_due(cfg(), st, now=T0, started=T0 - timedelta(hours=1))
    assert due is not None and due.at == T0 + timedelta(minutes=1)


def test_missed_runs_coalesce_into_one_spread_by_jitter_after_restart() -> None:
    st = IntegrationState(
        integration_id="hr", last_execution=ran(), last_successful_execution=ran()
    )
    later = T0 + timedelta(days=3)
    due = next_due(cfg(jitter=timedelta(minutes=5)), st, now=later, started=later)
    assert due is not None and later <= due.at < later + timedelta(minutes=5)


def test_full_sync_interval() -> None:
    st = IntegrationState(
        integration_id="hr",
        last_execution=ran(),
        last_successful_execution=ran(),
        last_full_sync_end=T0 - timedelta(hours=23, minutes=30),
    )
    due = next_due(cfg(full_sync_interval=timedelta(days=1)), st, now=T0, started=T0)
    assert due is not None and due.job_type is JobType.FULL
    st = replace(st, last_full_sync_end=T0)
    due = next_due(cfg(full_sync_interval=timedelta(days=1)), st, now=T0, started=T0)
    assert due is not None and due.job_type is JobType.INCREMENTAL


@pytest.mark.parametrize("state", ["Paused", "Disabled"])
def test_paused_and_disabled_are_never_due(state: str) -> None:
    assert (
        next_due(cfg(state=state), IntegrationState(integration_id="hr"), now=T0, started=T0)
        is None
    )
    st = IntegrationState(integration_id="hr", schedule_state=state)
    assert next_due(cfg(), st, now=T0, started=T0) is None


def test_expiration() -> None:
    st = IntegrationState(integration_id="hr")
    assert next_due(cfg(expiration=T0), st, now=T0, started=T0) is None
    st = IntegrationState(integration_id="hr", last_execution=ran())
    assert next_due(cfg(expiration=T0 + timedelta(minutes=10)), st, now=T0, started=T0) is None


def test_quarantine_replaces_the_interval() -> None:
    q = Quarantine(
        current_began=T0,
        next_attempt=T0 + timedelta(hours=1),
        reason="x",
        series_began=T0,
        series_count=1,
    )
    st = IntegrationState(integration_id="hr", last_execution=ran(), quarantine=q)
    due = next_due(cfg(), st, now=T0, started=T0 - timedelta(days=1))
    assert due is not None and due.at == T0 + timedelta(hours=1)
    st = replace(st, quarantine=replace(q, next_attempt=None))
    assert next_due(cfg(), st, now=T0, started=T0) is None


def test_jitter_is_stable_bounded_and_spread() -> None:
    j = timedelta(minutes=10)
    values = {jitter_for(f"int-{i}", j) for i in range(100)}
    assert all(timedelta(0) <= v < j for v in values) and len(values) == 100
    assert jitter_for("a", j) == jitter_for("a", j)
    assert jitter_for("a", timedelta(0)) == timedelta(0)


# -- backoff and breaker -----------------------------------------------------------------
def test_backoff_is_capped_exponential_with_equal_jitter() -> None:
    rng = random.Random(1)
    for attempt, full in [(1, 1.0), (2, 2.0), (3, 4.0), (10, 30.0), (1000, 30.0)]:
        for _ in range(20):
            d = backoff_delay(attempt, base=1.0, cap=30.0, rng=rng)
            assert full / 2 <= d <= full


def test_retry_after_is_read_as_seconds_or_an_http_date() -> None:
    from datetime import UTC, datetime

    from sluiced.backoff import parse_retry_after

    now = datetime(2026, 11, 23, 8, 0, 0, tzinfo=UTC)
    assert parse_retry_after("120") == 120
    assert parse_retry_after("Mon, 23 Nov 2026 08:01:30 GMT", now) == 90
    assert parse_retry_after("Mon, 23 Nov 2026 07:59:00 GMT", now) == 0  # in the past
    assert parse_retry_after(None) is None and parse_retry_after("soon") is None
    assert parse_retry_after("-5") is None


def test_backoff_honours_retry_after() -> None:
    assert backoff_delay(1, base=1, cap=2, retry_after=120) == 120
    assert backoff_delay(5, base=10, cap=100, retry_after=1, rng=random.Random(0)) >= 50


def test_circuit_breaker_opens_half_opens_and_closes() -> None:
    b = CircuitBreaker("stash", threshold=3, reset_after=10)
    for t in range(3):
        b.before_call(t)
        b.record_failure(t)
    assert b.state(3) is BreakerState.OPEN
    with pytest.raises(CircuitOpenError, match="stash is failing"):
        b.before_call(5)
    assert b.state(12) is BreakerState.HALF_OPEN
    b.before_call(12)  # the trial call
    with pytest.raises(CircuitOpenError):
        b.before_call(12)  # only one trial at a time
    b.record_failure(12)
    assert b.state(13) is BreakerState.OPEN
    b.before_call(23)
    b.record_success()
    assert b.state(23) is BreakerState.CLOSED


# -- quarantine -------------------------------------------------------------------------------
POLICY = QuarantinePolicy(
    after_failures=2,
    escalation=(timedelta(minutes=10), timedelta(hours=1)),
    disable_after=timedelta(days=1),
)


def test_successive_failures_then_escalating_quarantine_then_disable() -> None:
    st = IntegrationState(integration_id="hr")
    st = apply_run_outcome(st, POLICY, RunOutcome(execution=ran("Failed", T0)))
    assert st.quarantine is None and st.successive_failures == 1
    t1 = T0 + timedelta(minutes=40)
    st = apply_run_outcome(st, POLICY, RunOutcome(execution=ran("Failed", t1)))
    assert st.quarantine is not None
    assert (st.quarantine.series_count, st.quarantine.next_attempt) == (
        1,
        t1 + timedelta(minutes=10),
    )
    t2 = t1 + timedelta(minutes=10)
    st = apply_run_outcome(st, POLICY, RunOutcome(execution=ran("Failed", t2)))
    assert st.quarantine is not None and st.quarantine.next_attempt == t2 + timedelta(hours=1)
    t3 = t2 + timedelta(hours=1)
    st = apply_run_outcome(st, POLICY, RunOutcome(execution=ran("Failed", t3)))
    assert st.quarantine is not None and st.quarantine.next_attempt == t3 + timedelta(
        hours=1
    )  # last repeats
    assert st.quarantine.series_began == t1 and st.quarantine.series_count == 3
    st = apply_run_outcome(st, POLICY, RunOutcome(execution=ran("Failed", t1 + timedelta(days=1))))
    assert st.disabled_reason is not None and st.escrows_pruned


def test_credentials_quarantine_at_once_and_success_lifts_it() -> None:
    err = ExecutionError(code="CredentialsRejected", message="401", tenant_actionable=True)
    st = apply_run_outcome(
        IntegrationState(integration_id="hr"),
        POLICY,
        RunOutcome(
            execution=replace(ran("Failed"), error=err), quarantine_reason="CredentialsRejected"
        ),
    )
    assert st.quarantine is not None and st.quarantine.reason == "CredentialsRejected"
    assert st.quarantine.error == err
    st = apply_run_outcome(
        st,
        POLICY,
        RunOutcome(execution=ran("Succeeded", T0 + timedelta(hours=1), 5), full_pass=True),
    )
    assert st.quarantine is None and st.successive_failures == 0
    assert st.last_successful_execution_with_exports is not None
    assert st.last_full_sync_end == T0 + timedelta(hours=1)


def test_too_many_deletes_waits_for_an_operator() -> None:
    st = apply_run_outcome(
        IntegrationState(integration_id="hr"),
        POLICY,
        RunOutcome(execution=ran("Failed"), quarantine_reason="TooManyDeletes"),
    )
    assert st.quarantine is not None and st.quarantine.next_attempt is None


def test_stopped_runs_count_neither_way() -> None:
    st = IntegrationState(integration_id="hr", successive_failures=1)
    st = apply_run_outcome(st, POLICY, RunOutcome(execution=ran("Stopped")))
    assert st.successive_failures == 1 and st.last_execution is not None


def test_escrow_proportion() -> None:
    assert not escrow_proportion_exceeded(POLICY, processed=100, escrowed=49)
    assert escrow_proportion_exceeded(POLICY, processed=100, escrowed=50)
    assert not escrow_proportion_exceeded(POLICY, processed=1000, escrowed=300)


def test_a_required_full_sync_is_full_until_one_succeeds() -> None:
    st = IntegrationState(
        integration_id="hr",
        last_execution=ran(),
        last_successful_execution=ran(),
        full_sync_required=True,
    )
    due = next_due(cfg(), st, now=T0, started=T0)
    assert due is not None and due.job_type is JobType.FULL
    st = apply_run_outcome(st, POLICY, RunOutcome(execution=ran("Succeeded"), full_pass=True))
    assert not st.full_sync_required


def test_a_run_with_escrows_left_is_no_failure_and_no_success() -> None:
    quarantined = Quarantine(
        current_began=T0, next_attempt=T0, reason="x", series_began=T0, series_count=1
    )
    clean = ran("Succeeded", T0 - timedelta(days=1), 3)
    st = IntegrationState(
        integration_id="hr",
        successive_failures=2,
        quarantine=quarantined,
        last_successful_execution=clean,
        last_successful_execution_with_exports=clean,
        steady_state_last=clean.time_ended,
    )
    with_errors = replace(
        ran("EntryLevelErrors", T0, 5),
        error=ExecutionError(code="EntryLevelErrors", message="28 objects stay escrowed"),
    )
    st = apply_run_outcome(st, POLICY, RunOutcome(execution=with_errors, full_pass=True))
    assert st.last_execution == with_errors
    assert st.successive_failures == 0 and st.quarantine is None  # no complete failure
    assert st.last_successful_execution == clean  # Graph: the last run "without errors"
    assert st.last_successful_execution_with_exports == clean
    assert st.steady_state_last == clean.time_ended
    assert st.last_full_sync_end == T0  # the full pass did complete


def test_a_first_full_run_with_escrows_left_is_a_baseline_for_incremental_runs() -> None:
    st = apply_run_outcome(
        IntegrationState(integration_id="hr"),
        POLICY,
        RunOutcome(execution=ran("EntryLevelErrors"), full_pass=True),
    )
    assert st.last_successful_execution is None
    due = next_due(cfg(), st, now=T0 + timedelta(hours=1), started=T0)
    assert due is not None and due.job_type is JobType.INCREMENTAL
