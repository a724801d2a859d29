"""References to objects of the same entity type (a user's ``manager``): an object
whose reference could not be resolved because the referenced object was not provisioned
yet (later in the read order, or in the same batch) is read again by id at the end of
the pass, once the referenced object has its link."""

from __future__ import annotations

import copy
from dataclasses import replace
from typing import Any

import pytest

from sluiced.engine import Interrupted
from sluiced.mapping import BUILTINS, parse_schema
from sluiced.mapping.mapper import SchemaMapper
from sluiced.models import JobType

from .test_engine import Env
from .test_matching import USERS, by_name, user

MANAGED: dict[str, Any] = copy.deepcopy(USERS)
MANAGED["attributeMappings"] = [  # no add-only attribute: a full pass writes nothing again
    a for a in MANAGED["attributeMappings"] if a.get("flowType") != "ObjectAddOnly"
]
MANAGED["attributeMappings"].append(
    {
        "targetAttributeName": "manager",
        "source": {"type": "Direct", "name": "manager"},
        "referencedObject": "user",
    }
)


def mapper() -> SchemaMapper:
    return SchemaMapper(parse_schema({"objectMappings": [copy.deepcopy(MANAGED)]}, BUILTINS))


def managers(env: Env) -> dict[str, Any]:
    return {name: o.get("manager") for name, o in by_name(env).items()}


def target_id(env: Env, mail: str) -> str:
    (tid,) = [t for t, o in env.target.objects["User"].items() if o["userName"] == mail]
    return tid


def staff(env: Env) -> None:
    """b and c report to m, who comes after them in the read order; m reports to x,
    who is out of scope (never provisioned)."""
    user(env, "b", "b@example.org", manager="m")
    user(env, "c", "c@example.org", manager="m")
    user(env, "m", "m@example.org", manager="x")
    env.source.put("user", "x", mail="x@example.org", status="left")


@pytest.mark.parametrize("batch_size", [10, 1])
async def test_a_manager_later_in_the_read_order_is_written_by_the_same_pass(
    batch_size: int,
) -> None:
    env = Env()
    env.cfg = replace(env.cfg, batch_size=batch_size)
    staff(env)
    result = await env.run(mapper=mapper())
    assert result.failed == {}
    boss = target_id(env, "m@example.org")
    assert managers(env) == {"b@example.org": boss, "c@example.org": boss, "m@example.org": None}
    s = result.job.stats
    assert (s.created, s.updated, s.errors) == (3, 2, 0)
    assert any("user: reading 2 objects again" in line for line in env.logs), env.logs
    # Stored and complete: nothing is left to write, and m's manager (out of scope) does
    # not make anything read again.
    assert "user" in await env.store.get_watermarks("hr")
    applied = len(env.target.applied)
    result = await env.run(JobType.FULL, mapper=mapper())
    assert len(env.target.applied) == applied and result.job.stats.updated == 0
    assert not any("again" in line for line in env.logs[-3:]), env.logs


async def test_an_incremental_pass_resolves_a_manager_it_provisions() -> None:
    env = Env()
    staff(env)
    await env.run(mapper=mapper())
    user(env, "a", "a@example.org", manager="n")  # n is new too, and after a
    user(env, "n", "n@example.org")
    result = await env.run(mapper=mapper())
    assert any("user: incremental pass started" in line for line in env.logs)
    assert managers(env)["a@example.org"] == target_id(env, "n@example.org")
    assert (result.job.stats.created, result.job.stats.updated) == (2, 1)


async def test_a_stopped_pass_keeps_what_it_owes_in_its_checkpoint() -> None:
    env = Env()
    env.cfg = replace(env.cfg, batch_size=1)
    staff(env)
    env.control.stop_requested = True
    with pytest.raises(Interrupted, match="stop"):
        await env.run(mapper=mapper())  # b created, without its manager
    env.control.stop_requested = False
    saved = await env.store.get_job(f"job-{env.n}")
    assert saved is not None and saved.checkpoint is not None
    assert by_name(env)["b@example.org"].get("manager") is None
    await env.run(saved, mapper=mapper())  # a new engine: nothing in memory
    boss = target_id(env, "m@example.org")
    assert managers(env) == {"b@example.org": boss, "c@example.org": boss, "m@example.org": None}


async def test_too_many_to_hold_drops_the_watermark_so_the_next_pass_reads_all(
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    from sluiced.sync import _rereads

    monkeypatch.setattr(_rereads, "UNRESOLVED_LIMIT", 1)
    env = Env()
    staff(env)
    await env.run(mapper=mapper())
    assert any("the next pass reads every user again" in line for line in env.logs), env.logs
    assert "user" not in await env.store.get_watermarks("hr")
    await env.run(mapper=mapper())
    boss = target_id(env, "m@example.org")
    assert managers(env) == {"b@example.org": boss, "c@example.org": boss, "m@example.org": None}
    assert "user" in await env.store.get_watermarks("hr")


async def test_a_manager_in_escrow_is_read_again_by_nobody_and_nothing_loops() -> None:
    env = Env()
    staff(env)
    env.target.reject = lambda op: "locked" if op.source_id == "m" else None
    result = await env.run(mapper=mapper())
    assert result.failed == {} and result.escrowed == 1
    assert managers(env) == {"b@example.org": None, "c@example.org": None}
    assert not any("again" in line for line in env.logs), env.logs
    assert "user" in await env.store.get_watermarks("hr")
