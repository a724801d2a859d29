"""Objects that reference others (groups' ``members``) are read again in full after the
links of the referenced objects changed, even when the job fails, stops or crashes
before their pass completes: the store drops their watermark in the same commit."""

from __future__ import annotations

from dataclasses import replace
from typing import Any

import pytest
import trio

from sluiced.config import RetryPolicy
from sluiced.engine import Interrupted
from sluiced.errors import TransientError

from .test_engine import Env
from .test_matching import GROUPS, USERS, by_name, mapper, user


def users_and_groups(env: Env) -> None:
    env.cfg = replace(env.cfg, entity_types=("user", "group"), retry=RetryPolicy(attempts=1))
    for sid in "abz":
        user(env, sid, f"{sid}@example.org")
    env.source.put("user", "x", mail="x@example.org", status="left")  # never provisioned
    env.source.put("group", "g", name="admins", members=["a", "b", "x"])


def fail_group_reads(env: Env, times: int) -> None:
    original = env.source.read
    left = [times]

    async def failing() -> Any:
        raise TransientError("groups unavailable")
        yield  # pragma: no cover

    def read(entity_type: str, **kw: Any) -> Any:
        if entity_type == "group" and left[0]:
            left[0] -= 1
            return failing()
        return original(entity_type, **kw)

    env.source.read = read  # type: ignore[method-assign]


async def test_a_failed_groups_pass_still_reads_the_groups_again_next_run(
    autojump_clock: trio.abc.Clock,
) -> None:
    env = Env()
    users_and_groups(env)
    m = mapper(USERS, GROUPS)
    await env.run(mapper=m)
    assert by_name(env, "Group")["admins"]["members"] == ["t-a", "t-b"]
    # b leaves the scope (disabled); the groups read fails in that job.
    env.source.put("user", "b", mail="b@example.org", status="left")
    fail_group_reads(env, 1)
    result = await env.run(mapper=m)
    assert set(result.failed) == {"group"} and result.job.stats.disabled == 1
    assert "group" not in await env.store.get_watermarks("hr")
    # The next job reads the groups, unchanged in the source, again: b leaves them.
    result = await env.run(mapper=m)
    assert result.failed == {}
    assert by_name(env, "Group")["admins"]["members"] == ["t-a"]
    # Once a groups pass completed, the next one is incremental again.
    assert "group" in await env.store.get_watermarks("hr")
    logs = len(env.logs)
    await env.run(mapper=m)
    assert any("group: incremental pass started" in line for line in env.logs[logs:])
    assert by_name(env, "Group")["admins"]["members"] == ["t-a"]


async def stopped_after_x_is_created(env: Env) -> Any:
    """A job that stops after its first batch, which created x (in scope now)."""
    users_and_groups(env)
    m = mapper(USERS, GROUPS)
    await env.run(mapper=m)
    assert by_name(env, "Group")["admins"]["members"] == ["t-a", "t-b"]
    env.cfg = replace(env.cfg, batch_size=1)
    env.source.put("user", "x", mail="x@example.org", status="active")
    user(env, "z", "z@example.org", title="manager")  # changed, no link change
    env.control.stop_requested = True
    with pytest.raises(Interrupted, match="stop"):
        await env.run(mapper=m)
    env.control.stop_requested = False
    assert "x@example.org" in by_name(env) and by_name(env)["z@example.org"]["title"] == "engineer"
    saved = await env.store.get_job(f"job-{env.n}")
    assert saved is not None and saved.checkpoint is not None
    return saved


async def test_a_resumed_job_reads_the_groups_again_after_its_users_changed(
    autojump_clock: trio.abc.Clock,
) -> None:
    env = Env()
    saved = await stopped_after_x_is_created(env)
    result = await env.run(saved, mapper=mapper(USERS, GROUPS))  # a new engine: nothing in memory
    assert result.failed == {} and by_name(env)["z@example.org"]["title"] == "manager"
    assert by_name(env, "Group")["admins"]["members"] == ["t-a", "t-b", "t-x"]


async def test_a_fresh_job_after_a_crash_reads_the_groups_again(
    autojump_clock: trio.abc.Clock,
) -> None:
    env = Env()
    await stopped_after_x_is_created(env)  # never resumed, as after a crash
    result = await env.run(mapper=mapper(USERS, GROUPS))
    assert result.failed == {}
    assert by_name(env, "Group")["admins"]["members"] == ["t-a", "t-b", "t-x"]
