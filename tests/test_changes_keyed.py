"""The provisioning log of a target keyed by source ids (the Stash mirror): each object
a commit of the mirror wrote or deleted, held in the mirror's outbox with that commit
and logged with the store's commit that follows it, exactly once whatever moment the
process dies."""

from __future__ import annotations

from collections import Counter
from datetime import timedelta
from pathlib import Path

import pytest
import trio

from sluiced.changes import ChangeQuery
from sluiced.plugins.stash.fake import Library, generate
from sluiced.store import BatchCommit, StoreUnavailable

from .mirrordb import Backend
from .test_stash_sync import T0, Crash, Env


async def rows(env: Env, **kw: object) -> list[tuple[str, str, str]]:
    found = await env.store.list_changes("stash", ChangeQuery(limit=1000, **kw))  # type: ignore[arg-type]
    return [(c.action, c.entity_type, c.source_id) for c in reversed(found)]


async def test_mirror_writes_are_logged_as_creates_updates_and_deletes(
    tmp_path: Path, autojump_clock: trio.abc.Clock, mirror_db: Backend
) -> None:
    lib = generate(performers=5, tags=4, studios=2, scenes=6, now=T0)
    env = Env(tmp_path, lib, page_size=4, backend=mirror_db)
    await env.run(env.driver(), env.job("sync", "job-0", full_resync=True))
    first = await rows(env)
    assert outbox(env) == []  # the job's end removed what the store had saved
    await env.run(env.driver(), env.job("sync_scenes", "job-s", scene_ids=["1", "2"]))
    assert outbox(env) == []  # a job by ids too
    # Each object is created once (those others link to before their own page), and
    # written again (an update) when its own page comes.
    created = Counter((t, s) for a, t, s in first if a == "create")
    assert len(created) == 5 + 4 + 2 + 6 and set(created.values()) == {1}
    assert {a for a, _, _ in first} <= {"create", "update"}
    lib.fixed_now = T0 + timedelta(days=1)
    lib.update("performer", "2", name="renamed")
    lib.delete("performer", "4")
    await env.run(env.driver(), env.job("sync", "job-1"))
    assert ("update", "performer", "2") in await rows(env, job_id="job-1")
    deleted = await rows(env, job_id="job-1", actions=("delete",))
    assert deleted == [("delete", "performer", "4")]
    (c,) = await env.store.list_changes(
        "stash", ChangeQuery(object_id="4", entity_type="performer", actions=("delete",))
    )
    assert c.target_id == "4" and c.attributes is None and c.changes is None


@pytest.mark.parametrize("die_at", [1, 3, 5])
async def test_a_crash_between_the_mirror_and_the_store_logs_nothing_twice(
    tmp_path: Path, autojump_clock: trio.abc.Clock, mirror_db: Backend, die_at: int
) -> None:
    lib = generate(performers=12, tags=8, studios=3, scenes=12, now=T0)
    env = Env(tmp_path, lib, page_size=4, backend=mirror_db)
    env.store.die_at = die_at
    with pytest.raises(Crash):
        await env.run(env.driver(), env.job("sync", full_resync=True))
    stored = await env.store.get_job("job-1")
    assert stored is not None
    await env.run(env.driver(), stored)
    assert_logged_once(await rows(env), lib)
    assert outbox(env) == []  # moved when the job started again, then emptied


def objects(lib: Library) -> set[tuple[str, str]]:
    return {(t, i) for t in ("performer", "tag", "studio", "scene") for i in lib.tables[t]}


def assert_logged_once(logged: list[tuple[str, str, str]], lib: Library) -> None:
    """A full sync into an empty mirror: each object created once, none lost, and no
    change logged twice."""
    counts = Counter(logged)
    assert [r for r, n in counts.items() if n > 1] == []
    assert {(t, s) for a, t, s in logged if a == "create"} == objects(lib)


def outbox(env: Env) -> list[str]:
    """The keys of the rows the mirror's outbox holds."""
    return [r[0] for r in env.query("SELECT key FROM change_outbox ORDER BY key")]


class StoreDiesAfter:
    """Makes the store's *n*-th commit carrying changes under keys commit, then the
    process die (before the mirror removed them from its outbox)."""

    def __init__(self, env: Env, n: int) -> None:
        self.left = n
        self.commit = env.store.commit_batch
        env.store.commit_batch = self  # type: ignore[method-assign]

    async def __call__(self, batch: BatchCommit) -> None:
        await self.commit(batch)
        if batch.keyed_changes:
            self.left -= 1
            if self.left == 0:
                raise Crash


@pytest.mark.parametrize("die_at", [1, 4, 9])
async def test_a_crash_after_the_store_committed_the_outbox_logs_nothing_twice(
    tmp_path: Path, autojump_clock: trio.abc.Clock, mirror_db: Backend, die_at: int
) -> None:
    lib = generate(performers=12, tags=8, studios=3, scenes=12, now=T0)
    env = Env(tmp_path, lib, page_size=4, backend=mirror_db)
    StoreDiesAfter(env, die_at)
    with pytest.raises(Crash):
        await env.run(env.driver(), env.job("sync", full_resync=True))
    assert outbox(env) != []  # the store has them, the mirror had not removed them yet
    stored = await env.store.get_job("job-1")
    assert stored is not None
    await env.run(env.driver(), stored)
    assert_logged_once(await rows(env), lib)


async def test_the_outbox_waits_for_a_store_out_of_reach_and_is_moved_once(
    tmp_path: Path, autojump_clock: trio.abc.Clock, mirror_db: Backend
) -> None:
    lib = generate(performers=12, tags=8, studios=3, scenes=12, now=T0)
    env = Env(tmp_path, lib, page_size=4, backend=mirror_db)
    env.store.die_at = 5
    with pytest.raises(Crash):
        await env.run(env.driver(), env.job("sync", full_resync=True))
    held = outbox(env)
    assert held and all(k.startswith("job-1/") for k in held)
    add = env.store.add_changes

    async def out_of_reach(changes: object) -> int:
        raise StoreUnavailable("the store is out of reach")

    env.store.add_changes = out_of_reach  # type: ignore[method-assign,assignment]
    stored = await env.store.get_job("job-1")
    assert stored is not None
    # The job starts (and here fails at the store's next commit): the outbox keeps what
    # the store could not take.
    env.store.die_at = env.store.commits + 1
    with pytest.raises(Crash):
        await env.run(env.driver(), stored)
    assert set(held) <= set(outbox(env))
    env.store.add_changes = add  # type: ignore[method-assign]
    stored = await env.store.get_job("job-1")
    assert stored is not None
    await env.run(env.driver(), stored)
    assert_logged_once(await rows(env), lib)
    assert not set(held) & set(outbox(env))
    moved = [m for _, m in env.logs if "before the store heard of them" in m]
    assert moved and moved[0].split()[0].isdigit()


async def test_a_by_ids_job_that_fails_mid_batch_logs_what_the_mirror_committed(
    tmp_path: Path, autojump_clock: trio.abc.Clock, mirror_db: Backend
) -> None:
    lib = generate(performers=3, tags=3, studios=1, scenes=8, now=T0)
    env = Env(tmp_path, lib, page_size=4, backend=mirror_db)
    await env.run(env.driver(), env.job("sync", "job-0", full_resync=True))
    for i in range(1, 6):
        lib.update("scene", str(i), title=f"edited {i}")
    driver = env.driver()
    apply = driver.target.apply
    calls = 0

    async def failing(*args: object, **kw: object) -> object:
        nonlocal calls
        calls += 1
        if calls == 4:
            raise RuntimeError("the mirror's disk is gone")
        return await apply(*args, **kw)  # type: ignore[arg-type]

    driver.target.apply = failing  # type: ignore[method-assign]
    job = env.job("sync_scenes", "job-1", scene_ids=[str(i) for i in range(1, 6)])
    with pytest.raises(Exception):  # noqa: B017 - whatever the engine makes of it
        await env.run(driver, job)
    logged = await rows(env, job_id="job-1")
    # Each scene the mirror committed before the failure is in the log already.
    assert [s for a, t, s in logged if t == "scene"] == ["1", "2"]
    stored = await env.store.get_job("job-1")
    assert stored is not None
    await env.run(env.driver(), stored)
    logged = await rows(env, job_id="job-1")
    assert [s for a, t, s in logged if t == "scene"] == ["1", "2", "3", "4", "5"]
