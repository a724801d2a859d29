"""Escrows that end without a change of their own are logged as ``drop``: dropped by an
operator (in the store transaction that removes them), or found settled by their retry
(the source object is gone, or nothing is left to apply); one whose retry succeeds is
logged once, as the create or update it applied."""

from __future__ import annotations

import copy
import functools
from dataclasses import replace
from datetime import timedelta
from typing import Any

import trio

from sluiced.changes import OPERATOR_DROP, SETTLED, SOURCE_GONE, UNREAD, ChangeQuery, dropped
from sluiced.mapping import BUILTINS, parse_schema
from sluiced.mapping.mapper import SchemaMapper
from sluiced.models import Escrow, JobType

from .test_changes_engine import log_of
from .test_engine import MAPPED, T0, Env


async def escrowed_b(env: Env) -> Escrow:
    """Sync a, b and c with the target refusing b; returns b's escrow."""
    for ident in "abc":
        env.source.put("user", ident, name=ident)
    env.target.reject = lambda op: "quota exceeded" if op.source_id == "b" else None
    await env.run()
    (escrow,) = await env.store.list_escrows("hr")
    return escrow


async def until_due(env: Env, escrow: Escrow) -> None:
    assert env.clock is not None
    await trio.sleep((escrow.next_retry - env.clock.now()).total_seconds() + 1)


async def test_an_escrow_whose_retry_succeeds_is_logged_once_as_its_create(
    autojump_clock: trio.abc.Clock,
) -> None:
    env = Env()
    escrow = await escrowed_b(env)
    env.target.reject = lambda op: None
    await until_due(env, escrow)
    retry = await env.run()
    await env.run()
    assert await env.store.list_escrows("hr") == []
    assert await log_of(env, object_id="b") == [("escrow", "b", None), ("create", "b", "t-b")]
    (create,) = await env.store.list_changes("hr", ChangeQuery(actions=("create",), object_id="b"))
    assert create.job_id == retry.job.id and create.attributes == {"id": "b", "name": "b"}


async def test_an_escrow_whose_source_object_is_gone_is_logged_as_dropped(
    autojump_clock: trio.abc.Clock,
) -> None:
    env = Env()
    escrow = await escrowed_b(env)
    env.source.delete("user", "b")
    await until_due(env, escrow)
    retry = await env.run()
    assert await env.store.list_escrows("hr") == []
    assert await log_of(env, object_id="b") == [("escrow", "b", None), ("drop", "b", None)]
    (drop,) = await env.store.list_changes("hr", ChangeQuery(actions=("drop",)))
    assert (drop.job_id, drop.kind, drop.reason) == (retry.job.id, "target", SOURCE_GONE)


async def test_an_escrow_left_out_of_scope_is_logged_as_dropped(
    autojump_clock: trio.abc.Clock,
) -> None:
    env = Env()
    mapper = SchemaMapper(parse_schema(MAPPED, BUILTINS, ["user"]))
    env.source.put("user", "b", name="b", dept="eng")
    env.target.reject = lambda op: "quota exceeded"
    await env.run(mapper=mapper)
    (escrow,) = await env.store.list_escrows("hr")
    env.source.put("user", "b", name="b", dept="sales")  # out of scope: nothing to apply
    await until_due(env, escrow)
    await env.run(mapper=mapper)
    assert await env.store.list_escrows("hr") == [] and env.target.plain() == {}
    assert await log_of(env) == [("escrow", "b", None), ("drop", "b", None)]
    (drop,) = await env.store.list_changes("hr", ChangeQuery(actions=("drop",)))
    assert drop.reason == SETTLED


async def test_a_dry_run_and_a_log_kept_for_no_time_log_no_drop(
    autojump_clock: trio.abc.Clock,
) -> None:
    class Plan:
        async def add(self, entries: Any) -> None:
            pass

    env = Env()
    escrow = await escrowed_b(env)
    env.source.delete("user", "b")
    await until_due(env, escrow)
    await env.run(plan=Plan())
    assert await env.store.list_escrows("hr") == [escrow]
    env.cfg = replace(env.cfg, changes_retention=timedelta(0))
    await env.run()
    assert await env.store.list_escrows("hr") == []
    assert await env.store.list_changes("hr", ChangeQuery(actions=("drop",))) == []


def test_a_drop_names_the_escrow_its_kind_and_why() -> None:
    e = Escrow(
        integration_id="hr",
        entity_type="user",
        object_id="b",
        kind="source",
        reason="bad date",
        first_failed=T0,
        last_failed=T0,
        next_retry=T0,
    )
    c = dropped(e, at=T0, reason=OPERATOR_DROP)
    assert (c.integration_id, c.entity_type, c.source_id, c.target_id) == ("hr", "user", "b", None)
    assert (c.action, c.job_id, c.kind, c.reason, c.at) == ("drop", "", "source", OPERATOR_DROP, T0)


async def test_a_source_escrow_a_complete_read_no_longer_meets_is_logged_as_dropped() -> None:
    env = Env()
    env.fill(3)
    env.source.malformed["user"] = {"file:3": "bad"}
    await env.run()
    env.source.malformed["user"] = {}
    full = await env.run(JobType.FULL)  # an exhaustive read no longer finds it
    assert await env.store.list_escrows("hr") == []
    assert await log_of(env, object_id="file:3") == [
        ("escrow", "file:3", None),
        ("drop", "file:3", None),
    ]
    (drop,) = await env.store.list_changes("hr", ChangeQuery(actions=("drop",)))
    assert (drop.job_id, drop.kind, drop.reason) == (full.job.id, "source", UNREAD)
    await env.run(JobType.FULL)
    assert len(await env.store.list_changes("hr", ChangeQuery(actions=("drop",)))) == 1


async def test_escrows_a_read_ends_are_logged_as_dropped() -> None:
    schema = copy.deepcopy(MAPPED)
    schema["objectMappings"][0]["attributeMappings"][2]["source"]["expression"] = (
        'DateAdd("d", 1, [name])'
    )
    env = Env()
    env.source.report_deletions = True
    mapper = SchemaMapper(parse_schema(schema, BUILTINS, ["user"]))
    env.source.put("user", "a", name="2024-01-01T00:00:00Z", dept="eng")
    env.source.put("user", "b", name="2024-01-01T00:00:00Z", dept="eng")
    env.source.put("user", "c", name="not a date", dept="eng")  # a source escrow
    env.target.reject = lambda op: "quota exceeded" if op.source_id == "b" else None
    await env.run(mapper=mapper)
    assert len(await env.store.list_escrows("hr")) == 2
    # Before b's retry is due, b is deleted and c leaves the scope: a read meets both.
    env.source.delete("user", "b")
    env.source.put("user", "c", name="not a date", dept="sales")
    await env.run(mapper=mapper)
    assert await env.store.list_escrows("hr") == []
    drops = await env.store.list_changes("hr", ChangeQuery(actions=("drop",)))
    assert sorted((c.source_id, c.kind, c.reason) for c in drops) == [
        ("b", "target", SOURCE_GONE),
        ("c", "source", SETTLED),
    ]


async def test_an_escrow_dropped_by_an_operator_mid_pass_is_logged_once() -> None:
    env = Env()
    env.fill(3)
    env.source.malformed["user"] = {"x": "unreadable"}
    await env.run(JobType.FULL)
    assert [e.object_id for e in await env.store.list_escrows("hr")] == ["x"]
    env.source.malformed["user"] = {}  # fixed/removed at the source
    read = env.source.read

    async def reading(entity_type: str, **kw: Any) -> Any:
        # the operator drops the escrow from the console while the pass runs
        log = functools.partial(dropped, at=env.clock.now(), reason=OPERATOR_DROP)
        assert await env.store.drop_escrow("hr", "user", "x", log=log)
        async for page in read(entity_type, **kw):
            yield page

    env.source.read = reading  # type: ignore[method-assign]
    await env.run(JobType.FULL)
    drops = await env.store.list_changes("hr", ChangeQuery(actions=("drop",)))
    assert [(c.source_id, c.reason) for c in drops] == [("x", OPERATOR_DROP)]  # once
