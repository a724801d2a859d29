"""The provisioning log as the engine writes it: every change a real run applied, one
row per object and action, from the same decisions as a dry run's plan, committed
with the batch's links."""

from __future__ import annotations

import copy
from dataclasses import replace
from datetime import timedelta
from typing import Any

import trio

from sluiced.changes import Change, ChangeQuery
from sluiced.mapping import BUILTINS, parse_schema
from sluiced.mapping.mapper import SchemaMapper
from sluiced.models import JobType
from sluiced.store import BatchCommit, MemoryStore

from .test_engine import MAPPED, T0, Env


async def log_of(env: Env, **kw: Any) -> list[tuple[str, str, str | None]]:
    """Oldest first: (action, source id, target id)."""
    found = await env.store.list_changes("hr", ChangeQuery(limit=1000, **kw))
    return [(c.action, c.source_id, c.target_id) for c in reversed(found)]


async def test_creates_updates_and_deletes_are_logged_with_their_attributes() -> None:
    env = Env()
    env.source.put("user", "a", name="ada", password="s3cret")
    env.source.put("user", "b", name="bob")
    first = await env.run()
    env.source.put("user", "a", name="alan", password="0ther")
    await env.run()
    env.source.delete("user", "b")
    await env.run(JobType.FULL)
    assert await log_of(env) == [
        ("create", "a", "t-a"),
        ("create", "b", "t-b"),
        ("update", "a", "t-a"),
        ("delete", "b", "t-b"),
    ]
    changes = await env.store.list_changes("hr", ChangeQuery(object_id="a"))
    update, create = changes
    assert create.job_id == first.job.id and T0 <= create.at < T0 + timedelta(seconds=1)
    # Secrets are never kept, not even as they were before.
    assert create.attributes == {"id": "a", "name": "ada", "password": "[redacted]"}
    assert update.changes == {
        "name": {"from": "ada", "to": "alan"},
        "password": {"from": "[redacted]", "to": "[redacted]"},
    }


async def test_disable_enable_and_escrow_are_logged(autojump_clock: trio.abc.Clock) -> None:
    schema = copy.deepcopy(MAPPED)
    schema["objectMappings"][0]["deprovision"] = "disable"
    env = Env()
    mapper = SchemaMapper(parse_schema(schema, BUILTINS, ["user"]))
    for ident in "abc":
        env.source.put("user", ident, name=ident, dept="eng")
    env.target.reject = lambda op: "quota exceeded" if op.source_id == "b" else None
    await env.run(mapper=mapper)
    env.source.put("user", "a", name="a", dept="sales")  # leaves the scope
    await env.run(mapper=mapper)
    env.source.put("user", "a", name="a", dept="eng")  # back in
    await env.run(mapper=mapper)
    assert await log_of(env) == [
        ("create", "a", "t-a"),
        ("create", "c", "t-c"),
        ("escrow", "b", None),
        ("disable", "a", "t-a"),
        ("enable", "a", "t-a"),
    ]
    escrow, *_ = await env.store.list_changes("hr", ChangeQuery(actions=("escrow",)))
    assert (escrow.kind, escrow.reason) == ("target", "quota exceeded")


async def test_a_dry_run_and_a_log_kept_for_no_time_write_none() -> None:
    class Plan:
        async def add(self, entries: Any) -> None:
            pass

    env = Env()
    env.fill(3)
    await env.run(plan=Plan())
    assert await log_of(env) == []
    env.cfg = replace(env.cfg, changes_retention=timedelta(0))
    await env.run()
    assert len(env.target.plain()) == 3 and await log_of(env) == []


class FailingCommits(MemoryStore):
    """Refuses the first commit that carries links (the store failed, or the daemon
    died before it)."""

    def __init__(self) -> None:
        super().__init__()
        self.failures = 1

    async def commit_batch(self, batch: BatchCommit) -> None:
        if batch.upsert_links and self.failures:
            self.failures -= 1
            from sluiced.store import StoreUnavailable

            raise StoreUnavailable("the disk is full")
        await super().commit_batch(batch)


async def test_a_change_is_logged_once_when_its_commit_failed_and_the_job_resumed() -> None:
    env = Env(store=FailingCommits())
    env.fill(3)
    job = env.job()
    try:
        await env.run(job)
    except Exception as exc:
        assert "the disk is full" in str(exc)
    saved = await env.store.get_job(job.id)
    assert await log_of(env) == []  # applied, but not committed: not logged
    await env.run(saved or job)
    assert await log_of(env) == [("create", f"u{i:04d}", f"t-u{i:04d}") for i in range(3)]
    assert all(isinstance(c, Change) for c in await env.store.list_changes("hr", ChangeQuery()))
