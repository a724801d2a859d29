"""Deletions a source reports: the engine and its Gone items."""

from __future__ import annotations

from collections.abc import AsyncIterator
from dataclasses import replace
from datetime import timedelta
from pathlib import Path
from typing import Any

import pytest
import trio

from sluiced.config import DeletionThreshold
from sluiced.connectors import Gone, Page, Record
from sluiced.engine import TooManyDeletes
from sluiced.mapping import BUILTINS, parse_schema
from sluiced.mapping.mapper import SchemaMapper
from sluiced.models import JobType
from sluiced.testing import MemorySource

from .test_engine import Env, ops_for


def reporting() -> Env:
    """An environment whose source reports its deletions in incremental reads."""
    return Env(source=MemorySource(report_deletions=True))


def users(deprovision: str, flows: tuple[str, ...] = ("Add", "Update", "Delete")) -> SchemaMapper:
    schema = {
        "objectMappings": [
            {
                "sourceObjectName": "user",
                "flowTypes": list(flows),
                "deprovision": deprovision,
                "attributeMappings": [
                    {"targetAttributeName": "id", "source": {"type": "Direct", "name": "id"}},
                    {"targetAttributeName": "name", "source": {"type": "Direct", "name": "name"}},
                ],
            }
        ]
    }
    return SchemaMapper(parse_schema(schema, BUILTINS, ["user"]))


async def test_memory_source_reports_deletions_after_since_in_id_order() -> None:
    source = MemorySource(report_deletions=True)
    for ident in ("a", "b", "c", "d"):
        source.put("user", ident)
    since = await source.watermark("user")
    source.delete("user", "b")
    source.put("user", "c", name="changed")
    source.delete("user", "d")
    source.put("user", "d")  # back again: a record, not a Gone
    source.delete("user", "a")

    async def items(since: str | None, cursor: Any = None) -> list[Any]:
        pages = source.read("user", since=since, cursor=cursor, page_size=10)
        return [item async for page in pages for item in page.items]

    assert await items(since) == [
        Gone(id="a", cursor="a"),
        Gone(id="b", cursor="b"),
        Record(id="c", data={"id": "c", "name": "changed"}, cursor="c"),
        Record(id="d", data={"id": "d"}, cursor="d"),
    ]
    assert [i.id for i in await items(since, cursor="a")] == ["b", "c", "d"]
    assert [i.id for i in await items(None)] == ["c", "d"]  # a full read names no deletions
    assert not any(isinstance(i, Gone) for i in await items(await source.watermark("user")))
    quiet = MemorySource()
    quiet.put("user", "a")
    mark = await quiet.watermark("user")
    quiet.delete("user", "a")
    assert [p async for p in quiet.read("user", since=mark, cursor=None, page_size=10)] == []


@pytest.mark.parametrize("deprovision", ["disable", "delete"])
async def test_an_incremental_pass_deprovisions_what_the_source_reports_deleted(
    deprovision: str,
) -> None:
    env = reporting()
    m = users(deprovision)
    env.fill(5)
    await env.run(mapper=m)
    env.source.delete("user", "u0001")
    env.source.put("user", "u0002", name="renamed")
    result = await env.run(mapper=m)
    assert result.failed == {} and not result.full_pass
    s = result.job.stats
    link = (await env.store.get_links("hr", "user", ["u0001"])).get("u0001")
    if deprovision == "disable":
        assert (s.disabled, s.deleted) == (1, 0)
        assert env.target.plain()["u0001"]["active"] is False
        assert link is not None and link.disabled_at is not None
    else:
        assert (s.disabled, s.deleted) == (0, 1)
        assert "u0001" not in env.target.plain() and link is None
    # Counted as a leaver of the scope is: the item read, then its deprovisioning.
    assert (s.processed, s.updated, s.skipped, s.errors) == (3, 1, 0, 0)
    assert env.target.plain()["u0002"]["name"] == "renamed"
    assert any("1 objects left the source or its scope" in line for line in env.logs)
    calls = len(env.target.applied)
    result = await env.run(mapper=m)  # the next pass starts after the deletion
    assert len(env.target.applied) == calls and result.job.stats.processed == 0


async def test_a_mapping_without_delete_lets_no_reported_deletion_flow() -> None:
    env = reporting()
    m = users("delete")
    env.fill(3)
    await env.run(mapper=m)
    env.source.delete("user", "u0001")
    result = await env.run(mapper=users("delete", ("Add", "Update")))
    assert result.failed == {} and "u0001" in env.target.plain()
    assert (result.job.stats.processed, result.job.stats.skipped) == (1, 1)


async def test_reported_deletions_over_the_threshold_are_staged_until_approved() -> None:
    env = reporting()
    env.cfg = replace(env.cfg, deletion_threshold=DeletionThreshold(count=3))
    env.fill(10)
    await env.run()
    for i in range(5):
        env.source.delete("user", f"u{i:04d}")
    watermark = await env.store.get_watermarks("hr")
    calls = len(env.target.applied)
    result = await env.run()  # incremental: no delete phase, yet gated
    assert isinstance(result.failed.get("user"), TooManyDeletes)
    assert "5 deletions staged" in str(result.failed["user"])
    assert len(env.target.applied) == calls and len(env.target.plain()) == 10
    assert len(await env.store.list_staged_deletions("hr")) == 5
    assert await env.store.get_watermarks("hr") == watermark  # read again next time
    result = await env.run(approved=True)  # restarted with ForceDeletes
    assert result.failed == {} and result.job.stats.deleted == 5
    assert env.target.plain() == env.source.objects["user"]


async def test_a_reported_deletion_of_an_object_never_provisioned_changes_nothing() -> None:
    env = reporting()
    env.fill(3)
    await env.run()
    env.source.put("user", "x", name="brief")
    env.source.delete("user", "x")
    calls = len(env.target.applied)
    result = await env.run()
    assert result.failed == {} and len(env.target.applied) == calls
    s = result.job.stats
    assert (s.processed, s.skipped, s.deleted, s.disabled) == (1, 1, 0, 0)
    assert env.target.plain() == env.source.objects["user"]


class Mourning(MemorySource):
    """Yields a Gone item for every deletion in full reads too (in the first page)."""

    async def read(
        self, entity_type: str, *, since: str | None, cursor: Any, page_size: int
    ) -> AsyncIterator[Page]:
        first = since is None and cursor is None
        async for page in super().read(
            entity_type, since=since, cursor=cursor, page_size=page_size
        ):
            if first:
                gone = [Gone(id=i) for (kind, i) in self.deleted_at if kind == entity_type]
                page = replace(page, items=[*gone, *page.items])
                first = False
            yield page


async def test_a_full_read_ignores_gone_items() -> None:
    """A full pass deprovisions what it did not see: its Gone items add nothing, not
    even when an unreadable item makes the read detect no deletions."""
    env = Env(source=Mourning())
    env.fill(5)
    await env.run()
    env.source.delete("user", "u0001")
    env.source.malformed["user"] = {"file:2": "bad"}
    result = await env.run(JobType.FULL)
    assert result.failed == {} and result.job.stats.deleted == 0
    assert "u0001" in env.target.plain()
    assert result.job.stats.skipped == 4 + 1  # the unchanged, and the Gone
    env.source.malformed["user"] = {}
    result = await env.run(JobType.FULL)
    assert result.job.stats.deleted == 1 and "u0001" not in env.target.plain()


async def test_a_reported_deletion_drops_the_objects_escrows(
    autojump_clock: trio.abc.Clock,
) -> None:
    """An escrowed object the source reports deleted is done with: its escrow goes, and
    its link is deprovisioned at once, although its retry is not due."""
    env = reporting()
    env.fill(4)
    env.target.reject = lambda op: "quota exceeded" if op.source_id == "u0002" else None
    await env.run()  # u0002 is never created
    env.target.reject = lambda op: "locked" if op.source_id == "u0001" else None
    env.source.put("user", "u0001", name="renamed")
    await env.run()  # u0001's update is refused
    escrows = await env.store.list_escrows("hr")
    assert sorted(e.object_id for e in escrows) == ["u0001", "u0002"]
    assert env.clock is not None
    assert all(e.next_retry > env.clock.now() for e in escrows)  # neither is due
    env.target.reject = lambda op: None
    calls = len(env.target.applied)
    env.source.delete("user", "u0001")
    env.source.delete("user", "u0002")
    result = await env.run()
    assert result.failed == {} and await env.store.list_escrows("hr") == []
    assert ops_for(env.target, "u0001", calls) == ["delete"]
    assert ops_for(env.target, "u0002", calls) == []
    assert set(env.target.plain()) == {"u0000", "u0003"}
    assert await env.store.get_links("hr", "user", ["u0001", "u0002"]) == {}
    s = result.job.stats
    assert (s.deleted, s.skipped, s.errors) == (1, 1, 0)


async def test_a_target_keyed_by_source_ids_deletes_what_the_source_reports_deleted(
    tmp_path: Path, autojump_clock: trio.abc.Clock, monkeypatch: pytest.MonkeyPatch
) -> None:
    """Into the Stash mirror: an incremental read's Gone item is a delete committed
    with the page it came in, before any reconciliation."""
    from sluiced.plugins.stash.fake import generate
    from sluiced.plugins.stash.source import StashSource

    from .test_keyed_exactly_once import names
    from .test_stash_sync import T0
    from .test_stash_sync import Env as StashEnv

    lib = generate(performers=10, tags=10, studios=3, scenes=20, now=T0)
    env = StashEnv(tmp_path, lib)
    await env.run(env.driver(), env.job("sync", "job-0", full_resync=True))
    lib.fixed_now = T0 + timedelta(days=1)
    lib.update("performer", "5", name="renamed-5")
    lib.delete("performer", "3")
    read = StashSource.read

    async def reporting_read(self: StashSource, entity_type: str, **kw: Any) -> AsyncIterator[Page]:
        first = entity_type == "performer" and kw["since"] is not None
        async for page in read(self, entity_type, **kw):
            if first:
                page = replace(page, items=[*page.items, Gone(id="3")])
                first = False
            yield page

    monkeypatch.setattr(StashSource, "read", reporting_read)
    driver = env.driver()
    applied: list[list[tuple[str, str]]] = []
    apply = driver.target.apply

    async def recording(kind: str, ops: Any, *, checkpoint: Any = None) -> Any:
        if kind == "performer":
            applied.append([(op.kind, op.source_id) for op in ops])
        return await apply(kind, ops, checkpoint=checkpoint)

    driver.target.apply = recording  # type: ignore[method-assign]
    result = await env.run(driver, env.job("sync", "job-1"))
    assert result.failed == {}
    (page,) = [ops for ops in applied if ("delete", "3") in ops]
    assert ("update", "5") in page
    assert result.job.stats.deleted == 1
    performers = names(env)
    assert 3 not in performers and performers[5] == "renamed-5"


async def test_a_dry_run_plans_the_deprovisioning_of_an_escrowed_object_reported_deleted(
    autojump_clock: trio.abc.Clock,
) -> None:
    from .test_matching import Plan

    env = reporting()
    env.fill(3)
    await env.run()
    env.target.reject = lambda op: "locked" if op.source_id == "u0001" else None
    env.source.put("user", "u0001", name="renamed")
    await env.run()
    (escrow,) = await env.store.list_escrows("hr")
    env.source.delete("user", "u0001")
    plan = Plan()
    calls = len(env.target.applied)
    await env.run(plan=plan)
    assert [(e["action"], e["sourceId"]) for e in plan.entries] == [("delete", "u0001")]
    assert len(env.target.applied) == calls
    assert await env.store.list_escrows("hr") == [escrow]  # a dry run writes nothing
