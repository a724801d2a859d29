"""The daemon in one process under trio's virtual clock: schedule, limits, quarantine,
stop and resume. No real sleeps."""

from __future__ import annotations

from collections.abc import AsyncIterator, Sequence
from dataclasses import dataclass, replace
from datetime import UTC, datetime
from functools import partial
from pathlib import Path
from typing import Any

import pytest
import trio

from sluiced.clock import TrioClock
from sluiced.config import Config, parse_config
from sluiced.connectors import Op, OpResult
from sluiced.errors import CredentialsError
from sluiced.models import Job, JobStatus
from sluiced.pluginmanager import build_plugin_manager
from sluiced.store import MemoryStore
from sluiced.supervisor import Daemon
from sluiced.testing import MemoryConnector, MemoryTarget

from .fakes import MemoryPlugin

T0 = datetime(2026, 6, 1, tzinfo=UTC)


def make_config(tmp_path: Path, integrations: Sequence[str] = ("hr",), **overrides: Any) -> Config:
    daemon = {"state_dir": str(tmp_path), **overrides.pop("daemon", {})}
    table = {
        ident: {
            "entity_types": ["user"],
            "interval": "10m",
            "jitter": "0s",
            "batch_size": 10,
            "source": {"connector": "memory"},
            "target": {"connector": "memory"},
            "retry": {"attempts": 2, "base": "1s", "cap": "2s"},
            **overrides,
        }
        for ident in integrations
    }
    return parse_config({"daemon": daemon, "integrations": table}, path=tmp_path / "config.toml")


@dataclass
class Harness:
    daemon: Daemon
    connector: MemoryConnector
    plugin: MemoryPlugin
    store: MemoryStore

    async def jobs(self) -> list[Job]:
        jobs, _ = await self.store.list_jobs(limit=None)
        return sorted(jobs, key=lambda j: (j.created_at, j.id))


@pytest.fixture
async def harness(tmp_path: Path) -> AsyncIterator[Harness]:
    yield await make_harness(tmp_path)


async def make_harness(
    tmp_path: Path,
    config: Config | None = None,
    store: MemoryStore | None = None,
    connector: MemoryConnector | None = None,
) -> Harness:
    connector = connector or MemoryConnector()
    plugin = MemoryPlugin(connector)
    store = store or MemoryStore()
    daemon = Daemon(
        config or make_config(tmp_path),
        clock=TrioClock(T0),
        pm=build_plugin_manager(entry_points=False, extra=[plugin]),
        store=store,
    )
    for i in range(25):
        connector.source.put("user", f"u{i:03d}", name=f"n{i}")
    return Harness(daemon=daemon, connector=connector, plugin=plugin, store=store)


async def run_for(daemon: Daemon, seconds: float) -> None:
    with trio.move_on_after(seconds):
        await daemon.run(api=False)


async def test_runs_at_start_then_a_fixed_delay_after_each_end(
    harness: Harness, autojump_clock: trio.abc.Clock
) -> None:
    harness.connector.target.apply_delay = 30  # each batch takes 30 s: 3 batches = 90 s
    await run_for(harness.daemon, 25 * 60)
    jobs = await harness.jobs()
    assert [j.status for j in jobs] == [JobStatus.COMPLETED] * 3
    assert [j.type for j in jobs] == ["full_sync", "incremental_sync", "incremental_sync"]
    starts = [(j.started_at - T0).total_seconds() for j in jobs if j.started_at]
    ends = [(j.completed_at - T0).total_seconds() for j in jobs if j.completed_at]
    assert starts[0] == pytest.approx(0, abs=1)
    assert starts[1] == pytest.approx(ends[0] + 600, abs=1)
    assert starts[2] == pytest.approx(ends[1] + 600, abs=1)
    kinds = [
        e.job.status.value
        for e in harness.plugin.events
        if e.kind == "job" and e.job.id == jobs[0].id
    ]
    assert kinds == ["queued", "running", "completed"]


async def test_a_changed_interval_takes_effect_at_once(
    harness: Harness, autojump_clock: trio.abc.Clock
) -> None:
    async with trio.open_nursery() as nursery:
        nursery.start_soon(partial(harness.daemon.run, api=False))
        await trio.sleep(60)
        state = await harness.store.get_state("hr")
        await harness.store.put_state(replace(state, interval_s=120))
        harness.daemon.wake()
        await trio.sleep(100)
        nursery.cancel_scope.cancel()
    jobs = await harness.jobs()
    assert len(jobs) == 2 and jobs[1].started_at is not None
    assert (jobs[1].started_at - T0).total_seconds() == pytest.approx(120, abs=2)


async def test_failing_runs_escalate_into_quarantine(
    tmp_path: Path, autojump_clock: trio.abc.Clock
) -> None:
    config = make_config(tmp_path, quarantine={"after_failures": 2, "escalation": ["30m", "2h"]})
    h = await make_harness(tmp_path, config)
    h.connector.source.fail("read", times=10**6)
    await run_for(h.daemon, 4 * 3600)
    jobs = await h.jobs()
    assert all(j.status is JobStatus.FAILED and j.error_code == "TransientError" for j in jobs)
    starts = [round((j.started_at - T0).total_seconds() / 60) for j in jobs if j.started_at]
    # run, +10m interval, quarantine: +30m, +2h, +2h (the last step repeats)
    assert starts == [0, 10, 40, 160]
    state = await h.store.get_state("hr")
    assert state.quarantine is not None and state.quarantine.series_count == 3
    assert state.quarantine.reason == "EncounteredQuarantineException"
    assert any(e.kind == "quarantine" for e in h.plugin.events)
    assert h.daemon.status_line() == "0 jobs active, 1 integrations, quarantined: hr"
    # Fixed: the next attempt succeeds and lifts quarantine.
    h.connector.source.heal()
    await run_for(h.daemon, 3 * 3600)
    state = await h.store.get_state("hr")
    assert state.quarantine is None and state.successive_failures == 0


async def test_rejected_credentials_quarantine_at_once_whichever_entity_type_meets_them(
    tmp_path: Path, autojump_clock: trio.abc.Clock
) -> None:
    # The users' pass fails first (a transient error, retried out); the groups' pass
    # then meets rejected credentials: that decides the job's outcome, not the order.
    h = await make_harness(tmp_path, make_config(tmp_path, entity_types=["user", "group"]))
    h.connector.source.put("group", "g1", name="staff")
    h.connector.source.fail("read", times=2)
    h.connector.source.fail("read", after=2, times=10**6, error=CredentialsError("401"))
    await run_for(h.daemon, 60)
    [job] = await h.jobs()
    assert job.status is JobStatus.FAILED and job.error_code == "CredentialsRejected"
    assert job.error is not None and "user" in job.error and "group" in job.error
    state = await h.store.get_state("hr")
    assert state.quarantine is not None and state.quarantine.reason == "CredentialsRejected"


async def test_a_job_that_cannot_start_fails_and_the_daemon_stays_up(
    tmp_path: Path, autojump_clock: trio.abc.Clock
) -> None:
    class Breaking(MemoryConnector):
        opened = 0

        def open_target(self, settings: Any, ctx: Any) -> Any:
            self.opened += 1
            if self.opened == 1:
                raise RuntimeError("the target's directory is gone")
            return super().open_target(settings, ctx)

    h = await make_harness(tmp_path, connector=Breaking())
    await run_for(h.daemon, 11 * 60)  # the first job, then the next one after the interval
    jobs = await h.jobs()
    assert [j.status for j in jobs] == [JobStatus.FAILED, JobStatus.COMPLETED]
    assert jobs[0].error is not None and "the target's directory is gone" in jobs[0].error
    assert h.connector.source.calls["aclose"] >= 2  # the source opened first was closed


async def test_checking_credentials_reports_a_connector_that_cannot_open_and_closes_the_other(
    tmp_path: Path, autojump_clock: trio.abc.Clock
) -> None:
    class Breaking(MemoryConnector):
        def open_target(self, settings: Any, ctx: Any) -> Any:
            raise RuntimeError("the target's directory is gone")

    h = await make_harness(tmp_path, connector=Breaking())
    checks = await h.daemon.controller.validate_credentials("hr")
    assert checks["source"]["ok"] is True
    assert checks["target"] == {
        "ok": False,
        "code": "RuntimeError",
        "message": "the target's directory is gone",
    }
    assert h.connector.source.calls["aclose"] == 1


class CountingTarget(MemoryTarget):
    def __init__(self) -> None:
        super().__init__()
        self.active = 0
        self.most = 0

    async def apply(self, entity_type: str, ops: Sequence[Op]) -> Sequence[OpResult]:
        self.active += 1
        self.most = max(self.most, self.active)
        try:
            await trio.sleep(5)
            return await super().apply(entity_type, ops)
        finally:
            self.active -= 1


async def test_global_limit_of_concurrent_jobs(
    tmp_path: Path, autojump_clock: trio.abc.Clock
) -> None:
    config = make_config(tmp_path, integrations=("a", "b", "c"), daemon={"max_concurrent_jobs": 2})
    connector = MemoryConnector(target=CountingTarget())
    h = await make_harness(tmp_path, config, connector=connector)
    await run_for(h.daemon, 60)
    assert connector.target.most == 2  # type: ignore[attr-defined]
    assert [j.status for j in await h.jobs()] == [JobStatus.COMPLETED] * 3


async def test_never_two_runs_of_one_integration(
    harness: Harness, autojump_clock: trio.abc.Clock
) -> None:
    harness.connector.target.apply_delay = 10
    async with trio.open_nursery() as nursery:
        nursery.start_soon(partial(harness.daemon.run, api=False))
        await trio.sleep(1)
        from sluiced.runner import new_job

        extra = await harness.daemon.runner.submit(new_job("hr", "full_sync", T0))
        await trio.sleep(5)
        assert (await harness.store.get_job(extra.id)).status is JobStatus.QUEUED  # type: ignore[union-attr]
        await trio.sleep(200)
        nursery.cancel_scope.cancel()
    jobs = await harness.jobs()
    first, second = jobs[0], next(j for j in jobs if j.id == extra.id)
    assert second.started_at is not None and first.completed_at is not None
    assert second.started_at >= first.completed_at


async def test_immediate_stop_then_resume_loses_and_duplicates_nothing(
    harness: Harness, autojump_clock: trio.abc.Clock
) -> None:
    harness.connector.target.apply_delay = 10
    async with trio.open_nursery() as nursery:
        nursery.start_soon(partial(harness.daemon.run, api=False))
        await trio.sleep(15)  # inside the second batch
        (job,) = await harness.jobs()
        assert harness.daemon.runner.stop(job.id, graceful=False)
        await trio.sleep(1)
        stopped = await harness.store.get_job(job.id)
        assert stopped is not None and stopped.status is JobStatus.STOPPED
        assert stopped.checkpoint is not None and stopped.checkpoint["cursor"] == "u009"
        assert stopped.stats.created == 10
        nursery.cancel_scope.cancel()
    # The cancelled batch may have reached the target; resuming re-applies it, idempotently.
    await harness.daemon.runner.store.save_job(replace(stopped, status=JobStatus.QUEUED))
    await run_for(harness.daemon, 100)
    done = await harness.store.get_job(job.id)
    assert done is not None and done.status is JobStatus.COMPLETED
    assert harness.connector.target.plain() == harness.connector.source.objects["user"]


async def test_jobs_interrupted_by_a_crash_resume_at_start(
    tmp_path: Path, autojump_clock: trio.abc.Clock
) -> None:
    store = MemoryStore()
    crashed = Job(
        id="job-crashed",
        integration_id="hr",
        type="full_sync",
        status=JobStatus.RUNNING,
        created_at=T0,
        started_at=T0,
        checkpoint={
            "v": 1,
            "index": 0,
            "pass_id": "job-crashed:user",
            "full": True,
            "watermark": "00000025",
            "phase": "read",
            "cursor": "u019",
        },
    )
    await store.save_job(crashed)
    h = await make_harness(tmp_path, store=store)
    await run_for(h.daemon, 30)
    job = await store.get_job("job-crashed")
    assert job is not None and job.status is JobStatus.COMPLETED
    assert h.connector.source.reads[0] == ("user", "u019")  # from the checkpoint, not from scratch
    assert set(h.connector.target.plain()) == {f"u{i:03d}" for i in range(20, 25)}


async def test_graceful_shutdown_marks_jobs_to_resume(
    harness: Harness, autojump_clock: trio.abc.Clock
) -> None:
    harness.connector.target.apply_delay = 10
    async with trio.open_nursery() as nursery:
        nursery.start_soon(partial(harness.daemon.run, api=False))
        await trio.sleep(5)
        await harness.daemon.stop()
    (job,) = await harness.jobs()
    assert job.status is JobStatus.STOPPED and job.interrupted
    assert job.checkpoint is not None and job.checkpoint["cursor"] == "u009"


async def test_wait_idle_waits_for_jobs_submitted_while_waiting(
    harness: Harness, autojump_clock: trio.abc.Clock
) -> None:
    from sluiced.runner import new_job

    harness.connector.target.apply_delay = 10
    async with trio.open_nursery() as nursery:
        await nursery.start(
            lambda task_status: harness.daemon.run(api=False, task_status=task_status)
        )
        runner = harness.daemon.runner
        await runner.wait_idle()  # the start-up job
        await runner.submit(new_job("hr", "full_sync", T0))
        waited = trio.Event()

        async def waiter() -> None:
            await runner.wait_idle()
            waited.set()

        nursery.start_soon(waiter)
        await trio.sleep(1)
        await runner.submit(new_job("hr", "full_sync", T0))  # a second job while someone waits
        with trio.fail_after(600):
            await waited.wait()
        assert not runner.handles
        nursery.cancel_scope.cancel()


async def test_a_job_recorded_as_over_no_longer_makes_its_integration_busy(
    harness: Harness, autojump_clock: trio.abc.Clock
) -> None:
    from sluiced.runner import JobHandle, new_job

    runner = harness.daemon.runner
    job = new_job("hr", "full_sync", T0)
    runner.handles[job.id] = JobHandle(job_id=job.id, integration_id="hr")
    assert runner.busy("hr")
    await runner.outcomes.save(
        replace(job, status=JobStatus.COMPLETED)
    )  # the task is still finishing up
    assert not runner.busy("hr")


async def test_a_running_jobs_progress_moves_in_memory_between_store_saves(
    tmp_path: Path, autojump_clock: trio.abc.Clock
) -> None:
    """A run that saves its job at batch boundaries only: the API sees its progress as
    the run holds it, not the store's older value. (A pass by ids into a target keyed by
    source ids moves its progress object by object, and saves once a batch.)"""
    from sluiced.connectors import JobPlan, PlanningTarget, SourceKeyedTarget
    from sluiced.hookspecs import hookimpl

    class Stepper(MemoryTarget, SourceKeyedTarget, PlanningTarget):
        """Each object after the first takes a minute to write."""

        written = 0

        async def apply(self, entity_type: str, ops: Sequence[Any]) -> Sequence[OpResult]:
            if ops and self.written:
                await trio.sleep(60)
            self.written += len(ops)
            return [OpResult(ok=True, target_id=op.source_id) for op in ops]

        async def missing(self, entity_type: str, ids: Sequence[str]) -> list[str]:
            return list(ids)

        def plan_job(self, job_type: str, params: Any, configured: Sequence[str]) -> JobPlan:
            return JobPlan(entity_types=("user",), ids=["1", "2", "3", "4"], batch_size=100)

    class StepperConnector(MemoryConnector):
        keyed_by_source_ids = True

        def open_target(self, settings: Any, ctx: Any) -> Any:
            return Stepper()

    memory, stepper = MemoryConnector(), StepperConnector(name="stepper")
    for ident in ("1", "2", "3", "4"):
        memory.source.put("user", ident, userName=f"u{ident}")

    class Plugin:
        @hookimpl
        def sluiced_connectors(self) -> Sequence[Any]:
            return [memory, stepper]

    store = MemoryStore()
    daemon = Daemon(
        make_config(tmp_path, target={"connector": "stepper"}),
        clock=TrioClock(T0),
        pm=build_plugin_manager(entry_points=False, extra=[Plugin()]),
        store=store,
    )
    seen: list[tuple[float, float, str | None]] = []
    async with trio.open_nursery() as nursery:
        nursery.start_soon(partial(daemon.run, api=False))
        for wait in (30, 60, 60):  # half way through each step
            await trio.sleep(wait)
            jobs, _ = await store.list_jobs(limit=None)
            stored = jobs[0]
            live = await daemon.controller.job(stored.id)
            listed, _ = await daemon.controller.list_jobs(
                statuses=None, integration_id="hr", limit=10
            )
            assert listed[0].progress == live.progress
            seen.append((stored.progress, live.progress, live.stage))
        nursery.cancel_scope.cancel()
    assert seen == [(0.0, 25.0, "user"), (0.0, 50.0, "user"), (0.0, 75.0, "user")]


async def _ended_jobs(store: MemoryStore) -> list[Job]:
    """The stored jobs, once there is one and the first has ended."""
    while True:
        jobs, _ = await store.list_jobs(limit=None)
        if jobs and jobs[0].status.terminal:
            return jobs
        await trio.sleep(1)


async def test_a_pass_by_ids_reads_several_entity_types_in_one_job(
    tmp_path: Path, autojump_clock: trio.abc.Clock
) -> None:
    """``JobPlan.more_ids``: the objects of the next types, read by id after ``ids``,
    type by type, batches never mixing two types; an id the source lacks is an error
    that names its type."""
    from sluiced.connectors import JobPlan, PlanningTarget, SourceKeyedTarget
    from sluiced.hookspecs import hookimpl

    class Keyed(MemoryTarget, SourceKeyedTarget, PlanningTarget):
        async def missing(self, entity_type: str, ids: Sequence[str]) -> list[str]:
            held = self.objects.get(entity_type, {})
            return [i for i in ids if i not in held]

        def plan_job(self, job_type: str, params: Any, configured: Sequence[str]) -> JobPlan:
            return JobPlan(
                entity_types=("user", "group"),
                ids=["1", "2", "3"],
                more_ids={"group": ["7", "8", "9"]},
                missing="{type} {id} is gone",
                batch_size=2,
            )

    target = Keyed()
    calls: list[tuple[str, list[str]]] = []
    memory = MemoryConnector()

    class KeyedConnector(MemoryConnector):
        keyed_by_source_ids = True

        def open_target(self, settings: Any, ctx: Any) -> Any:
            return target

    for ident in ("1", "2", "3"):
        memory.source.put("user", ident, userName=f"u{ident}")
    for ident in ("7", "9"):
        memory.source.put("group", ident, displayName=f"g{ident}")
    get_many = memory.source.get_many

    async def counted(entity_type: str, ids: Sequence[str]) -> Any:
        calls.append((entity_type, list(ids)))
        return await get_many(entity_type, ids)

    memory.source.get_many = counted  # type: ignore[method-assign]

    class Plugin:
        @hookimpl
        def sluiced_connectors(self) -> Sequence[Any]:
            return [memory, KeyedConnector(name="keyed")]

    store = MemoryStore()
    daemon = Daemon(
        make_config(tmp_path, target={"connector": "keyed"}, entity_types=["user", "group"]),
        clock=TrioClock(T0),
        pm=build_plugin_manager(entry_points=False, extra=[Plugin()]),
        store=store,
    )
    async with trio.open_nursery() as nursery:
        nursery.start_soon(partial(daemon.run, api=False))
        with trio.fail_after(600):
            jobs = await _ended_jobs(store)
        nursery.cancel_scope.cancel()
    job = jobs[0]
    assert job.status is JobStatus.COMPLETED and job.progress == 100
    assert calls == [("user", ["1", "2"]), ("user", ["3"]), ("group", ["7", "8"]), ("group", ["9"])]
    assert sorted(target.objects["user"]) == ["1", "2", "3"]
    assert sorted(target.objects["group"]) == ["7", "9"]
    assert (job.stats.processed, job.stats.created, job.stats.errors) == (6, 5, 1)
    logs = [e.message for e in await store.get_logs(job.id)]
    assert "group 8 is gone" in logs


async def test_deleting_a_job_recorded_as_over_waits_for_its_task_to_close(
    harness: Harness, autojump_clock: trio.abc.Clock
) -> None:
    # The job is saved as stopped before its task has closed the connectors: a delete
    # asked for in between waits for the task instead of answering "stop it first".
    from sluiced.runner import JobHandle, new_job

    runner = harness.daemon.runner
    job = replace(new_job("hr", "full_sync", T0), status=JobStatus.STOPPED)
    handle = JobHandle(job_id=job.id, integration_id="hr")
    runner.handles[job.id] = handle
    await harness.store.save_job(job)

    async def task_ends() -> None:
        await trio.sleep(0.5)
        handle.done.set()
        del runner.handles[job.id]

    async with trio.open_nursery() as nursery:
        nursery.start_soon(task_ends)
        await harness.daemon.controller.delete_job(job.id, delete_logs=True)
    assert await harness.store.get_job(job.id) is None
