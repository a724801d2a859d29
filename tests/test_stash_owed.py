"""A merge's re-reads are owed in the deletion's own transaction: whatever stops them
(the process dying, retries running out) after the deletion commits, the resumed job
or the next incremental one does them, and the mirror equals Stash again. In one
process under trio's virtual clock (see ``test_stash_sync.py``)."""

from __future__ import annotations

from datetime import timedelta
from pathlib import Path
from types import SimpleNamespace

import httpx
import pytest
import trio

from sluiced.plugins.stash.entities import BUILTIN_ENTITY_TYPES
from sluiced.plugins.stash.fake import Library, generate
from sluiced.plugins.stash.fake.tags import merge_tags
from sluiced.plugins.stash.mirror import Mirror

from .test_stash_incremental import assert_mirror_equals_stash, linked_tag
from .test_stash_sync import T0, Crash, Env


@pytest.mark.parametrize(
    ("at", "how"),
    [
        ("TagsByAlias", "crash, resumed"),
        ("TagsByAlias", "crash, next job"),
        ("ScenesByIds", "crash, next job"),
        ("PerformersByIds", "crash, resumed"),
        ("TagsByAlias", "failure"),
        ("ScenesByIds", "failure"),
    ],
)
async def test_a_merges_rereads_cut_short_are_done_by_the_next_pass(
    tmp_path: Path, autojump_clock: trio.abc.Clock, at: str, how: str
) -> None:
    lib = generate(performers=30, tags=25, studios=8, scenes=150, now=T0)
    source = linked_tag(lib, "merged")
    env = Env(tmp_path, lib)
    assert (await env.run(env.driver(), env.job("sync"))).failed == {}
    lib.fixed_now = T0 + timedelta(days=1)
    tags = lib.tables["tag"]
    destination = next(i for i in tags if i != source and not tags[i]["parents"])
    merge_tags(lib, [source], destination)

    failing = [True]

    def before(name: str) -> None:
        if name != at or not failing[0]:
            return
        if how.startswith("crash"):
            failing[0] = False
            raise Crash  # the process dies right after the deletion committed
        raise httpx.ConnectError("connection refused")  # every attempt of this job

    env.before = before
    if how.startswith("crash"):
        with pytest.raises(Crash):
            await env.run(env.driver(), env.job("sync", "job-2"))
    else:
        result = await env.run(env.driver(), env.job("sync", "job-2"))
        assert "tag" in result.failed  # (and those after it: each starts with what is owed)
    failing[0] = False

    if how == "crash, resumed":
        stored = await env.store.get_job("job-2")
        assert stored is not None
        result = await env.run(env.driver(), stored)
    else:
        result = await env.run(env.driver(), env.job("sync", "job-3"))
    assert result.failed == {}
    assert_mirror_equals_stash(SimpleNamespace(library=lib), tmp_path / "mirror.sqlite3")  # type: ignore[arg-type]
    mirror = Mirror(tmp_path / "mirror.sqlite3", BUILTIN_ENTITY_TYPES)
    assert await mirror.state("pending:") == {}
    await mirror.aclose()


async def test_a_merge_run_through_leaves_nothing_owed(
    tmp_path: Path, autojump_clock: trio.abc.Clock
) -> None:
    """A merge whose re-reads run through leaves nothing owed."""
    lib = generate(performers=10, tags=12, studios=3, scenes=40, now=T0)
    source = linked_tag(lib, "merged")
    env = Env(tmp_path, lib)
    await env.run(env.driver(), env.job("sync"))
    lib.fixed_now = T0 + timedelta(days=1)
    destination = next(i for i in lib.tables["tag"] if i != source)
    merge_tags(lib, [source], destination)
    assert (await env.run(env.driver(), env.job("sync", "job-2"))).failed == {}
    assert_mirror_equals_stash(SimpleNamespace(library=lib), tmp_path / "mirror.sqlite3")  # type: ignore[arg-type]
    mirror = Mirror(tmp_path / "mirror.sqlite3", BUILTIN_ENTITY_TYPES)
    assert await mirror.state("pending:") == {}
    await mirror.aclose()


async def test_a_crash_after_any_commit_of_a_merges_pass_converges(
    tmp_path: Path, autojump_clock: trio.abc.Clock
) -> None:
    """The process dies after each one of the merge job's mirror transactions in turn
    (before the store hears of it): the resumed job leaves the mirror equal to Stash."""

    def merged(root: Path) -> tuple[Env, Library]:
        root.mkdir()
        lib = generate(performers=8, tags=10, studios=3, scenes=24, now=T0)
        linked_tag(lib, "merged")
        return Env(root, lib), lib

    def merge(lib: Library) -> None:
        lib.fixed_now = T0 + timedelta(days=1)
        tags = lib.tables["tag"]
        source = next(i for i in tags if tags[i]["name"] == "merged")
        merge_tags(lib, [source], next(i for i in tags if i != source and not tags[i]["parents"]))

    whole, lib = merged(tmp_path / "whole")
    await whole.run(whole.driver(), whole.job("sync"))
    merge(lib)
    whole.page_size = 2  # the re-reads in several transactions
    before = whole.store.commits
    await whole.run(whole.driver(), whole.job("sync", "job-2"))
    commits = whole.store.commits - before
    assert commits > 5, commits
    for die_at in range(1, commits):
        env, lib = merged(tmp_path / str(die_at))
        await env.run(env.driver(), env.job("sync"))
        merge(lib)
        env.page_size = 2
        env.store.die_at = env.store.commits + die_at
        with pytest.raises(Crash):
            await env.run(env.driver(), env.job("sync", "job-2"))
        stored = await env.store.get_job("job-2")
        assert stored is not None
        assert (await env.run(env.driver(), stored)).failed == {}
        assert_mirror_equals_stash(SimpleNamespace(library=lib), env.tmp / "mirror.sqlite3")  # type: ignore[arg-type]
