"""Each request to Stash is retried by one layer, the engine's: under a persistent
failure a request is tried ``retry.attempts`` times, not that number squared."""

from __future__ import annotations

from datetime import timedelta
from pathlib import Path
from types import SimpleNamespace
from typing import Any

import httpx
import pytest
import trio

from sluiced.connectors import ConnectorContext
from sluiced.errors import TransientError
from sluiced.plugins.stash import StashConnector, StashMirrorConnector
from sluiced.plugins.stash.fake import generate
from sluiced.plugins.stash.source import StashSource
from sluiced.tables import Problems, TableReader

from .test_stash_sync import T0, Env


def failing(env: Env, fails: set[str] | None = None) -> list[str]:
    """Make every request (or those of the operations *fails*) fail as unreachable;
    returns the operations asked, in order."""
    asked: list[str] = []

    def before(name: str) -> None:
        asked.append(name)
        if fails is None or name in fails:
            raise httpx.ConnectError("refused")

    env.before = before
    return asked


async def test_a_sync_of_scenes_by_id_tries_each_request_attempts_times(
    tmp_path: Path, autojump_clock: trio.abc.Clock
) -> None:
    env = Env(tmp_path, generate(performers=3, tags=3, studios=1, scenes=5, now=T0), attempts=3)
    asked = failing(env)
    with pytest.raises(TransientError):
        await env.run(env.driver(), env.job("sync_scenes", scene_ids=["1", "2"]))
    assert asked == ["ScenesByIds"] * 3


@pytest.mark.parametrize("kind", ["performer", "scene"])
async def test_a_failing_read_tries_each_request_attempts_times(
    tmp_path: Path, autojump_clock: trio.abc.Clock, kind: str
) -> None:
    env = Env(tmp_path, generate(performers=3, tags=3, studios=1, scenes=5, now=T0), attempts=3)
    newest = "PerformersNewest" if kind == "performer" else "ScenesNewest"
    asked = failing(env, fails={"PerformersMatching", "ScenesPage"})
    only = {f"include_{k}s": k == kind for k in ("performer", "tag", "studio", "scene")}
    result = await env.run(env.driver(), env.job("sync", **only))
    assert set(result.failed) == {kind}
    read = "PerformersMatching" if kind == "performer" else "ScenesPage"
    assert [a for a in asked if a != newest] == [read] * 3


async def test_a_failing_survey_tries_its_request_attempts_times(
    tmp_path: Path, autojump_clock: trio.abc.Clock
) -> None:
    env = Env(tmp_path, generate(performers=3, tags=3, studios=1, scenes=5, now=T0), attempts=3)
    asked = failing(env)
    only = {f"include_{k}s": k == "performer" for k in ("performer", "tag", "studio", "scene")}
    result = await env.run(env.driver(), env.job("sync", **only))
    assert set(result.failed) == {"performer"}
    assert asked == ["PerformersNewest"] * 3


def test_the_overlap_is_a_setting_of_the_source_and_the_mirrors_as_before(
    tmp_path: Path,
) -> None:
    def parse(factory: Any, table: dict[str, Any]) -> tuple[Any, list[str]]:
        problems = Problems("config.toml")
        reader = TableReader(table, path="t", problems=problems, base_dir=tmp_path)
        settings = factory.parse_settings(reader)
        return settings, [p.key for p in problems.items]

    def opened(table: dict[str, Any]) -> StashSource:
        settings, found = parse(StashConnector(), {"url": "http://stash", **table})
        assert not found
        source = StashConnector().open_source(
            settings, ConnectorContext(integration_id="stash", state_dir=tmp_path)
        )
        assert isinstance(source, StashSource)
        return source

    assert opened({"overlap": "5m"}).overlap == timedelta(minutes=5)
    assert opened({}).overlap == timedelta(minutes=70)
    # A config of an earlier version sets it in the mirror's table: it still counts,
    # unless the source's table sets its own.
    mirror_settings, found = parse(StashMirrorConnector(), {"path": "m.sqlite3", "overlap": "5m"})
    assert not found and mirror_settings.overlap == timedelta(minutes=5)
    target = StashMirrorConnector().open_target(
        mirror_settings, ConnectorContext(integration_id="stash", state_dir=tmp_path)
    )
    writes: Any = SimpleNamespace(call=None, page_size=10)
    plain, own = opened({}), opened({"overlap": "1m"})
    target.reconciler(plain, writes)  # type: ignore[attr-defined]
    target.reconciler(own, writes)  # type: ignore[attr-defined]
    assert plain.overlap == timedelta(minutes=5) and own.overlap == timedelta(minutes=1)
