"""The sync engine against in-memory connectors and the in-memory store."""

from __future__ import annotations

from dataclasses import dataclass, field, replace
from datetime import UTC, datetime, timedelta
from typing import Any

import pytest
import trio

from sluiced.clock import TrioClock
from sluiced.config import ConnectorConfig, DeletionThreshold, IntegrationConfig, RetryPolicy
from sluiced.engine import (
    EngineResult,
    Interrupted,
    JobControl,
    SyncEngine,
    TooManyDeletes,
    default_mapper,
)
from sluiced.errors import TransientError
from sluiced.mapping.mapper import SchemaMapper
from sluiced.models import Job, JobType
from sluiced.retrying import Breakers
from sluiced.store import MemoryStore
from sluiced.testing import MemorySource, MemoryTarget

T0 = datetime(2026, 5, 1, tzinfo=UTC)


@dataclass
class Env:
    source: MemorySource = field(default_factory=MemorySource)
    target: MemoryTarget = field(default_factory=MemoryTarget)
    store: MemoryStore = field(default_factory=MemoryStore)
    cfg: IntegrationConfig = field(
        default_factory=lambda: IntegrationConfig(
            id="hr",
            name="hr",
            source=ConnectorConfig(connector="memory"),
            target=ConnectorConfig(connector="memory"),
            entity_types=("user",),
            batch_size=10,
            retry=RetryPolicy(attempts=3, base=timedelta(seconds=1), cap=timedelta(seconds=4)),
        )
    )
    logs: list[str] = field(default_factory=list)
    control: JobControl = field(default_factory=JobControl)
    breakers: Breakers = field(default_factory=Breakers)
    n: int = 0
    clock: TrioClock | None = None

    def job(self, job_type: JobType = JobType.INCREMENTAL) -> Job:
        self.n += 1
        return Job(
            id=f"job-{self.n}",
            integration_id="hr",
            type=job_type.value,
            created_at=T0,
            started_at=T0,
        )

    async def run(
        self,
        job: Job | JobType = JobType.INCREMENTAL,
        *,
        approved: bool = False,
        mapper: SchemaMapper | None = None,
        plan: Any = None,
    ) -> EngineResult:
        if not isinstance(job, Job):
            job = self.job(job)

        async def log(level: str, message: str) -> None:
            self.logs.append(f"{level}: {message}")

        self.clock = self.clock or TrioClock(T0)
        engine = SyncEngine(
            job=job,
            cfg=self.cfg,
            source=self.source,
            target=self.target,
            store=self.store,
            clock=self.clock,
            log=log,
            control=self.control,
            breakers=self.breakers,
            deletions_approved=approved,
            mapper=mapper,
            plan=plan,
        )
        self.engine = engine
        return await engine.run()

    def fill(self, count: int, **extra: Any) -> None:
        for i in range(count):
            self.source.put("user", f"u{i:04d}", name=f"user {i}", **extra)


async def test_first_run_is_full_and_creates_everything() -> None:
    env = Env()
    env.fill(25)
    result = await env.run()
    assert result.full_pass and result.failed == {}
    assert env.target.plain() == env.source.objects["user"]
    s = result.job.stats
    assert (s.processed, s.created, s.updated, s.skipped, s.errors) == (25, 25, 0, 0, 0)
    assert [len(c) for c in env.target.applied] == [10, 10, 5]
    assert await env.store.get_watermarks("hr") == {"user": "00000025"}
    assert result.job.progress == 100.0 and env.target.calls["flush"] == 1


async def test_incremental_with_no_change_writes_nothing() -> None:
    env = Env()
    env.fill(25)
    await env.run()
    calls = len(env.target.applied)
    result = await env.run()
    assert len(env.target.applied) == calls and result.job.stats.processed == 0
    assert not result.full_pass


async def test_full_pass_with_no_change_skips_by_hash() -> None:
    env = Env()
    env.fill(25)
    await env.run()
    calls = len(env.target.applied)
    result = await env.run(JobType.FULL)
    assert len(env.target.applied) == calls
    assert (result.job.stats.processed, result.job.stats.skipped) == (25, 25)


async def test_updates_reach_the_target_and_only_they_are_written() -> None:
    env = Env()
    env.fill(25)
    await env.run()
    env.source.put("user", "u0003", name="renamed")
    env.source.put("user", "new", name="newcomer")
    result = await env.run()
    assert (result.job.stats.created, result.job.stats.updated) == (1, 1)
    assert env.target.plain() == env.source.objects["user"]
    assert [(o.kind, o.source_id) for o in env.target.applied[-1]] == [
        ("create", "new"),
        ("update", "u0003"),
    ]


async def test_full_pass_deletes_what_left_the_source() -> None:
    env = Env()
    env.fill(25)
    await env.run()
    env.source.delete("user", "u0001")
    env.source.delete("user", "u0020")
    result = await env.run(JobType.INCREMENTAL)
    assert result.job.stats.deleted == 0  # incremental passes do not detect deletions
    result = await env.run(JobType.FULL)
    assert result.job.stats.deleted == 2
    assert env.target.plain() == env.source.objects["user"]
    assert await env.store.count_links("hr", "user") == 23


async def test_deletion_threshold_stages_and_quarantines_until_approved() -> None:
    env = Env()
    env.cfg = replace(env.cfg, deletion_threshold=DeletionThreshold(count=3))
    env.fill(25)
    await env.run()
    for i in range(5):
        env.source.delete("user", f"u{i:04d}")
    watermark = await env.store.get_watermarks("hr")
    result = await env.run(JobType.FULL)
    assert isinstance(result.failed["user"], TooManyDeletes)
    assert await env.store.get_watermarks("hr") == watermark  # the failed pass stores none
    assert "5 deletions staged" in str(result.failed["user"])
    assert len(env.target.plain()) == 25  # nothing deleted
    assert len(await env.store.list_staged_deletions("hr")) == 5
    result = await env.run(JobType.FULL, approved=True)
    assert result.failed == {} and result.job.stats.deleted == 5
    assert env.target.plain() == env.source.objects["user"]


async def test_an_empty_source_never_empties_the_target() -> None:
    env = Env()
    env.fill(5)
    await env.run()
    for i in range(5):
        env.source.delete("user", f"u{i:04d}")
    result = await env.run(JobType.FULL)
    assert "source returned none of them" in str(result.failed["user"])
    assert len(env.target.plain()) == 5


async def test_percent_threshold() -> None:
    env = Env()
    env.cfg = replace(env.cfg, deletion_threshold=DeletionThreshold(count=None, percent=10))
    env.fill(20)
    await env.run()
    env.source.delete("user", "u0000")
    assert (await env.run(JobType.FULL)).failed == {}
    env.source.delete("user", "u0001")
    env.source.delete("user", "u0002")
    assert "more than 10% of 19" in str((await env.run(JobType.FULL)).failed["user"])


async def test_malformed_objects_are_escrowed_while_the_rest_syncs() -> None:
    env = Env()
    env.fill(5)
    env.source.malformed["user"] = {"file:3": "bad"}
    result = await env.run()
    assert result.job.stats.errors == 1 and len(env.target.plain()) == 5
    (escrow,) = await env.store.list_escrows("hr")
    assert (escrow.object_id, escrow.kind, escrow.reason) == ("file:3", "source", "bad")
    await env.run()  # an incremental pass that reads nothing keeps the escrow
    assert [e.object_id for e in await env.store.list_escrows("hr")] == ["file:3"]
    env.source.malformed["user"] = {}
    env.source.put("user", "u0001", name="touched")
    await env.run(JobType.FULL)  # an exhaustive read no longer finds it
    assert await env.store.list_escrows("hr") == []


async def test_a_read_with_unreadable_items_detects_no_deletions() -> None:
    """What a source could not read may be any object: a full pass that met a Malformed
    item deprovisions nothing; the next complete one does."""
    env = Env()
    env.fill(5)
    await env.run(JobType.FULL)
    env.source.delete("user", "u0001")
    env.source.malformed["user"] = {"file:2": "bad"}
    result = await env.run(JobType.FULL)
    assert result.failed == {} and result.job.stats.deleted == 0
    assert not result.full_pass  # a full sync owed (a new schema's, say) stays owed
    assert "u0001" in env.target.plain()
    assert any("could not be read" in m and "deprovisions nothing" in m for m in env.logs)
    assert [e.object_id for e in await env.store.list_escrows("hr")] == ["file:2"]
    env.source.malformed["user"] = {}
    result = await env.run(JobType.FULL)
    assert result.job.stats.deleted == 1 and "u0001" not in env.target.plain()
    assert result.full_pass
    assert await env.store.list_escrows("hr") == []


async def test_target_rejections_are_escrowed_and_retried_with_backoff(
    autojump_clock: trio.abc.Clock,
) -> None:
    env = Env()
    env.fill(5)
    env.target.reject = lambda op: "quota exceeded" if op.source_id == "u0002" else None
    result = await env.run()
    assert result.job.stats.errors == 1 and result.escrowed == 1
    assert set(env.target.plain()) == {"u0000", "u0001", "u0003", "u0004"}
    (e,) = await env.store.list_escrows("hr")
    assert (e.object_id, e.kind, e.attempts, e.reason) == ("u0002", "target", 1, "quota exceeded")
    # Not due yet: the next run leaves it alone.
    await env.run()
    assert (await env.store.list_escrows("hr"))[0].attempts == 1
    # Due, still failing: attempts and backoff grow.
    await trio.sleep((e.next_retry - T0).total_seconds() + 1)
    await env.run()
    (e2,) = await env.store.list_escrows("hr")
    assert e2.attempts == 2 and e2.next_retry > e.next_retry
    # Due and the target accepts it now.
    env.target.reject = lambda op: None
    await trio.sleep((e2.next_retry - e.next_retry).total_seconds() + 1)
    await env.run()
    assert await env.store.list_escrows("hr") == []
    assert env.target.plain() == env.source.objects["user"]


async def test_transient_read_failure_resumes_after_the_last_page(
    autojump_clock: trio.abc.Clock,
) -> None:
    env = Env()
    env.fill(35)
    env.source.fail("page", after=2)
    result = await env.run()
    assert result.failed == {}
    assert env.source.reads == [("user", None), ("user", "u0019")]
    assert result.job.stats.created == 35 and env.target.plain() == env.source.objects["user"]
    assert any("reading failed" in line for line in env.logs)


async def test_transient_errors_exhausted_fail_the_entity_type(
    autojump_clock: trio.abc.Clock,
) -> None:
    env = Env()
    env.fill(5)
    env.source.fail("read", times=10)
    result = await env.run()
    assert isinstance(result.failed["user"], TransientError)
    assert await env.store.get_watermarks("hr") == {}


async def test_target_transient_errors_are_retried(autojump_clock: trio.abc.Clock) -> None:
    env = Env()
    env.fill(5)
    env.target.fail("apply", times=2)
    result = await env.run()
    assert result.failed == {} and env.target.plain() == env.source.objects["user"]


async def test_one_failing_entity_type_does_not_stop_the_others(
    autojump_clock: trio.abc.Clock,
) -> None:
    env = Env()
    env.cfg = replace(env.cfg, entity_types=("user", "group"))
    env.fill(3)
    env.source.put("group", "g1", name="admins")
    env.target.reject = lambda op: None

    async def failing_read(*a: Any, **k: Any) -> Any:
        raise TransientError("down")
        yield  # pragma: no cover

    original = env.source.read

    def read(entity_type: str, **kw: Any) -> Any:
        return failing_read() if entity_type == "user" else original(entity_type, **kw)

    env.source.read = read  # type: ignore[method-assign]
    result = await env.run()
    assert (
        set(result.failed) == {"user"} and env.target.plain("group") == env.source.objects["group"]
    )


async def test_pause_stops_at_an_object_boundary_and_resume_continues() -> None:
    env = Env()
    env.fill(25)
    job = env.job(JobType.FULL)

    class PauseAfter(SchemaMapper):
        seen = 0

        def map(self, entity_type: str, record: Any, *, creating: bool) -> Any:
            self.seen += 1
            if self.seen == 13:
                env.control.pause_requested = True
            return super().map(entity_type, record, creating=creating)

    mapper = PauseAfter(default_mapper(env.cfg).schema)

    async def log(level: str, message: str) -> None:
        env.logs.append(message)

    engine = SyncEngine(
        job=job,
        cfg=env.cfg,
        source=env.source,
        target=env.target,
        store=env.store,
        clock=TrioClock(T0),
        log=log,
        control=env.control,
        breakers=env.breakers,
        mapper=mapper,
    )
    with pytest.raises(Interrupted) as info:
        await engine.run()
    assert info.value.kind == "pause"
    saved = await env.store.get_job(job.id)
    assert saved is not None and saved.checkpoint is not None
    assert saved.checkpoint["cursor"] == "u0012" and saved.stats.created == 13
    assert len(env.target.plain()) == 13
    env.control.pause_requested = False
    result = await env.run(saved)
    assert env.source.reads[-1] == ("user", "u0012")
    assert result.job.stats.created == 25 and env.target.plain() == env.source.objects["user"]
    assert any("resuming the read phase" in line for line in env.logs)


async def test_graceful_stop_finishes_the_batch() -> None:
    env = Env()
    env.fill(25)
    env.control.stop_requested = True
    with pytest.raises(Interrupted, match="stop"):
        await env.run(JobType.FULL)
    assert len(env.target.plain()) == 10  # exactly one batch
    saved = await env.store.get_job("job-1")
    assert (
        saved is not None and saved.checkpoint is not None and saved.checkpoint["cursor"] == "u0009"
    )


async def test_fetching_the_next_page_overlaps_writing_this_one(
    autojump_clock: trio.abc.Clock,
) -> None:
    env = Env()
    env.fill(30)
    env.target.apply_delay = 1.0
    events: list[str] = []
    env.source.events = events
    env.target.events = events
    await env.run()
    assert events.index("read 1") < events.index("apply end 0")


async def test_watermark_advances_only_when_the_pass_completes() -> None:
    env = Env()
    env.fill(25)
    env.control.stop_requested = True
    with pytest.raises(Interrupted):
        await env.run(JobType.FULL)
    assert await env.store.get_watermarks("hr") == {}


async def test_watermark_is_read_before_the_pass() -> None:
    env = Env()
    env.fill(25)
    original = env.target.apply

    async def apply_and_edit(entity_type: str, ops: Any) -> Any:
        if not env.source.objects["user"].get("late"):
            env.source.put("user", "late", name="edited during the pass")
        return await original(entity_type, ops)

    env.target.apply = apply_and_edit  # type: ignore[method-assign]
    await env.run()
    assert (await env.store.get_watermarks("hr"))["user"] == "00000025"
    env.target.apply = original  # type: ignore[method-assign]
    await env.run()
    assert "late" in env.target.plain()


def schema_env(schema: dict[str, Any]) -> tuple[Env, SchemaMapper]:
    from sluiced.mapping import BUILTINS, parse_schema

    env = Env()
    return env, SchemaMapper(parse_schema(schema, BUILTINS, ["user"]))


async def run_mapped(
    env: Env, mapper: SchemaMapper, job_type: JobType = JobType.INCREMENTAL
) -> EngineResult:
    return await env.run(job_type, mapper=mapper)


MAPPED = {
    "objectMappings": [
        {
            "sourceObjectName": "user",
            "flowTypes": ["Add", "Update", "Delete"],
            "scope": {
                "groups": [
                    {
                        "clauses": [
                            {
                                "sourceOperandName": "dept",
                                "operatorName": "EQUALS",
                                "targetOperand": {"values": ["eng"]},
                            }
                        ]
                    }
                ]
            },
            "attributeMappings": [
                {"targetAttributeName": "id", "source": {"type": "Direct", "name": "id"}},
                {
                    "targetAttributeName": "display",
                    "source": {"type": "Expression", "expression": "ToUpper([name])"},
                },
                {
                    "targetAttributeName": "initial",
                    "source": {"type": "Expression", "expression": "Mid([name], 1, 1)"},
                },
                {
                    "targetAttributeName": "created",
                    "source": {"type": "Constant", "value": True},
                    "flowType": "ObjectAddOnly",
                },
            ],
        }
    ]
}


async def test_a_schema_maps_scopes_and_deprovisions() -> None:
    env, mapper = schema_env(MAPPED)
    env.source.put("user", "a", name="ada", dept="eng")
    env.source.put("user", "b", name="bob", dept="sales")
    env.source.put("user", "c", name="", dept="eng")  # Mid fails on an empty name? no: gives ""
    result = await run_mapped(env, mapper)
    assert env.target.plain() == {
        "a": {"id": "a", "display": "ADA", "initial": "a", "created": True},
        "c": {"id": "c", "display": "", "initial": "", "created": True},
    }
    assert result.job.stats.skipped == 1  # b is out of scope
    env.source.put("user", "a", name="alan", dept="eng")
    await run_mapped(env, mapper)
    assert env.target.plain()["a"] == {
        "id": "a",
        "display": "ALAN",
        "initial": "a",
        "created": True,
    }  # the add-only attribute is not written again, and not taken away
    assert env.target.applied[-1][0].data == {"id": "a", "display": "ALAN", "initial": "a"}
    env.source.put(
        "user", "a", name="alan", dept="sales"
    )  # leaves the scope: deprovisioned at once
    result = await run_mapped(env, mapper)
    assert "a" not in env.target.plain() and result.job.stats.deleted == 1
    assert await env.store.get_links("hr", "user", ["a"]) == {}


async def test_flow_types_gate_what_flows() -> None:
    import copy

    schema = copy.deepcopy(MAPPED)
    schema["objectMappings"][0].update(flowTypes=["Add"], scope=None)
    env, mapper = schema_env(schema)
    env.source.put("user", "a", name="ada")
    await run_mapped(env, mapper)
    env.source.put("user", "a", name="ann")
    env.source.delete("user", "a")
    env.source.put("user", "b", name="bea")
    await run_mapped(env, mapper, JobType.FULL)
    assert set(env.target.plain()) == {"a", "b"}  # no Update, no Delete
    assert env.target.plain()["a"]["display"] == "ADA"


async def test_an_expression_failing_on_one_object_escrows_it() -> None:
    import copy

    schema = copy.deepcopy(MAPPED)
    schema["objectMappings"][0]["scope"] = None
    schema["objectMappings"][0]["attributeMappings"][2]["source"]["expression"] = (
        'DateAdd("d", 1, [name])'
    )
    env, mapper = schema_env(schema)
    env.source.put("user", "a", name="2024-01-01T00:00:00Z")
    env.source.put("user", "b", name="not a date")
    result = await run_mapped(env, mapper)
    assert set(env.target.plain()) == {"a"} and result.job.stats.errors == 1
    (escrow,) = await env.store.list_escrows("hr")
    assert escrow.object_id == "b" and "DateAdd" in escrow.reason and escrow.kind == "source"


async def test_resuming_a_failed_job_runs_the_failed_entity_type_again(
    autojump_clock: trio.abc.Clock,
) -> None:
    env = Env()
    env.cfg = replace(env.cfg, entity_types=("user", "group"))
    env.fill(3)
    env.source.put("group", "g1", name="admins")
    env.source.fail("read", times=1)  # the first read (users) fails...
    env.cfg = replace(env.cfg, retry=RetryPolicy(attempts=1))
    result = await env.run(JobType.FULL)
    assert (
        set(result.failed) == {"user"} and env.target.plain("group") == env.source.objects["group"]
    )
    saved = await env.store.get_job(result.job.id)
    assert (
        saved is not None
        and saved.checkpoint is not None
        and saved.checkpoint["failed"] == ["user"]
    )
    reads = len(env.source.reads)
    result = await env.run(saved)  # ...and resuming the failed job syncs them
    assert result.failed == {} and env.target.plain() == env.source.objects["user"]
    assert [et for et, _ in env.source.reads[reads:]] == ["user"]  # the groups are not read again


def ops_for(target: MemoryTarget, source_id: str, since: int = 0) -> list[str]:
    """The kinds of the ops sent for *source_id*, in the target's calls from *since* on."""
    return [o.kind for call in target.applied[since:] for o in call if o.source_id == source_id]


async def test_an_escrow_not_due_is_held_back_even_when_a_pass_reads_it(
    autojump_clock: trio.abc.Clock,
) -> None:
    env = Env()
    env.fill(5)
    env.target.reject = lambda op: "quota exceeded" if op.source_id == "u0002" else None
    await env.run()
    (e1,) = await env.store.list_escrows("hr")
    # Full passes read it, an edit makes an incremental pass read it: nothing is sent for
    # it before its retry is due, and the escrow keeps its attempt and its backoff.
    calls = len(env.target.applied)
    for job_type in (JobType.FULL, JobType.FULL):
        result = await env.run(job_type)
        assert result.job.stats.errors == 1 and result.escrowed == 0
    env.source.put("user", "u0002", name="renamed while escrowed")
    await env.run()
    assert ops_for(env.target, "u0002", calls) == []
    assert await env.store.list_escrows("hr") == [e1]
    assert any("1 escrowed objects held back" in line for line in env.logs)
    # Due: retried once in the run, with the source's data of now; failing, attempt 2.
    await trio.sleep((e1.next_retry - T0).total_seconds() + 1)
    calls = len(env.target.applied)
    result = await env.run(JobType.FULL)
    assert ops_for(env.target, "u0002", calls) == ["create"]
    assert env.target.applied[calls][0].data == {"id": "u0002", "name": "renamed while escrowed"}
    assert result.job.stats.errors == 1
    (e2,) = await env.store.list_escrows("hr")
    assert e2.attempts == 2 and e2.first_failed == e1.first_failed
    assert e2.next_retry > e1.next_retry
    # Not due again: a run over unchanged data sends nothing at all.
    calls = len(env.target.applied)
    await env.run(JobType.FULL)
    await env.run()
    assert env.target.applied[calls:] == []
    # Due and accepted: the escrow is gone and the target has the current data.
    env.target.reject = lambda op: None
    await trio.sleep((e2.next_retry - e1.next_retry).total_seconds() + 1)
    await env.run()
    assert await env.store.list_escrows("hr") == []
    assert env.target.plain() == env.source.objects["user"]


async def test_every_due_escrow_is_retried_once_per_run(autojump_clock: trio.abc.Clock) -> None:
    env = Env()  # batch_size 10
    env.fill(25)
    env.target.reject = lambda op: "refused"
    await env.run()
    assert len(await env.store.list_escrows("hr")) == 25
    await trio.sleep(3600)
    calls = len(env.target.applied)
    result = await env.run()  # incremental, nothing changed: the retries are all there is
    assert sorted(o.source_id for c in env.target.applied[calls:] for o in c) == sorted(
        env.source.objects["user"]
    )
    assert result.job.stats.errors == 25
    assert {e.attempts for e in await env.store.list_escrows("hr")} == {2}


async def test_a_failed_deprovisioning_counts_its_attempts(autojump_clock: trio.abc.Clock) -> None:
    env = Env()
    env.fill(5)
    await env.run()
    env.source.delete("user", "u0001")
    env.target.reject = lambda op: "locked" if op.kind == "delete" else None
    await env.run(JobType.FULL)
    (e1,) = await env.store.list_escrows("hr")
    assert (e1.object_id, e1.attempts) == ("u0001", 1)
    calls = len(env.target.applied)
    await env.run(JobType.FULL)  # not due: the delete phase leaves it alone
    assert ops_for(env.target, "u0001", calls) == []
    await trio.sleep((e1.next_retry - T0).total_seconds() + 1)
    await env.run(JobType.FULL)
    assert ops_for(env.target, "u0001", calls) == ["delete"]
    (e2,) = await env.store.list_escrows("hr")
    assert e2.attempts == 2


async def test_provisioning_an_escrowed_object_that_fails_again_is_its_next_attempt() -> None:
    env = Env()
    env.fill(3)
    env.target.reject = lambda op: "quota exceeded" if op.source_id == "u0002" else None
    await env.run()
    (e1,) = await env.store.list_escrows("hr")

    async def log(level: str, message: str) -> None:
        env.logs.append(message)

    assert env.clock is not None
    engine = SyncEngine(
        job=env.job(),
        cfg=env.cfg,
        source=env.source,
        target=env.target,
        store=env.store,
        clock=env.clock,
        log=log,
        control=env.control,
        breakers=env.breakers,
    )
    steps = await engine.provision("user", "u0002")
    assert steps[-1]["status"] == "failed"
    (e2,) = await env.store.list_escrows("hr")
    assert e2.attempts == 2 and e2.first_failed == e1.first_failed


async def test_a_store_that_cannot_be_written_stops_the_job_not_only_its_type() -> None:
    """A full state directory is no failure of one entity type: the job stops there
    (the runner records it failed once it can), and no other type goes on writing to the
    target while the store may be unable to keep its links."""
    from sluiced.store import StoreUnavailable

    env = Env()
    env.cfg = replace(env.cfg, entity_types=("user", "group"))
    env.fill(3)
    env.source.put("group", "g1", name="group 1")

    commit, failures = env.store.commit_batch, [1]

    async def full_once(batch: Any) -> None:  # the disk fills, then has room again
        if failures:
            failures.pop()
            raise StoreUnavailable("cannot write the store state/sluiced.sqlite3: disk full")
        await commit(batch)

    env.store.commit_batch = full_once  # type: ignore[method-assign]
    with pytest.raises(StoreUnavailable):
        await env.run(JobType.FULL)
    assert not any(op.source_id == "g1" for call in env.target.applied for op in call)
