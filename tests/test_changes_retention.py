"""The provisioning log's retention: configured per daemon and per integration, and
pruned in bounded batches by a daemon task."""

from __future__ import annotations

from datetime import UTC, datetime, timedelta
from pathlib import Path

import trio

from sluiced.changes import Change, ChangeQuery
from sluiced.clock import TrioClock
from sluiced.config import ConnectorConfig, IntegrationConfig, load_config
from sluiced.models import Job
from sluiced.resolved import Resolved
from sluiced.retention import ChangesPruner
from sluiced.store import BatchCommit, MemoryStore

from .test_config import GOOD, problems, write

T0 = datetime(2026, 5, 1, tzinfo=UTC)


def test_retention_defaults_to_30_days_and_an_integration_may_override_it(
    tmp_path: Path,
) -> None:
    c = load_config(write(tmp_path, GOOD))
    assert c.daemon.changes_retention == timedelta(days=30)
    assert c.integrations["hr"].changes_retention == timedelta(days=30)
    text = GOOD.replace('log_format = "json"', 'log_format = "json"\nchanges_retention = "0s"')
    c = load_config(write(tmp_path, text))
    assert c.integrations["hr"].changes_retention == timedelta(0)  # keeps none
    text = text.replace('jitter = "1m30s"', 'jitter = "1m30s"\nchanges_retention = "90d"')
    c = load_config(write(tmp_path, text))
    assert c.daemon.changes_retention == timedelta(0)
    assert c.integrations["hr"].changes_retention == timedelta(days=90)


def test_a_bad_retention_names_file_key_and_expectation(tmp_path: Path) -> None:
    text = GOOD.replace(
        'log_format = "json"', 'log_format = "json"\nchanges_retention = "a month"'
    ).replace('jitter = "1m30s"', 'jitter = "1m30s"\nchanges_retention = -5')
    found = problems(tmp_path, text)
    path = str(tmp_path / "config.toml")
    assert f'{path}: daemon.changes_retention: found "a month"; expected a duration' in "\n".join(
        found
    )
    assert any(
        p.startswith(f"{path}: integrations.hr.changes_retention: found") and "a duration" in p
        for p in found
    )


def integration(ident: str, retention: timedelta) -> Resolved:
    cfg = IntegrationConfig(
        id=ident,
        name=ident,
        source=ConnectorConfig(connector="memory"),
        target=ConnectorConfig(connector="memory"),
        entity_types=("user",),
        changes_retention=retention,
    )
    return Resolved(cfg=cfg, source=None, target=None)  # type: ignore[arg-type]


async def test_the_pruner_deletes_what_is_older_than_each_retention_in_batches(
    autojump_clock: trio.abc.Clock,
) -> None:
    store = MemoryStore()
    for ident in ("hr", "crm", "off"):
        changes = [
            Change(
                integration_id=ident,
                job_id="j",
                entity_type="user",
                source_id=str(i),
                target_id=None,
                action="create",
                at=T0 + timedelta(hours=i),
            )
            for i in range(50)
        ]
        job = Job(id=f"j-{ident}", integration_id=ident, type="full_sync", created_at=T0)
        await store.commit_batch(BatchCommit(job=job, entity_type="user", changes=changes))
    integrations = {
        "hr": integration("hr", timedelta(hours=10)),
        "crm": integration("crm", timedelta(hours=45)),
        "off": integration("off", timedelta(0)),
    }
    clock = TrioClock(T0 + timedelta(hours=49, minutes=30))
    calls: list[int] = []
    prune = store.prune_changes

    async def counting(ident: str, before: datetime, *, limit: int) -> int:
        n = await prune(ident, before, limit=limit)
        calls.append(n)
        return n

    store.prune_changes = counting  # type: ignore[method-assign]
    pruner = ChangesPruner(
        store=store,
        clock=clock,
        integrations=lambda: integrations,
        retention=lambda: timedelta(days=30),
        batch=7,
        every=60,
    )
    async with trio.open_nursery() as nursery:
        await nursery.start(pruner.run)
        await trio.sleep(1)

        async def left(ident: str) -> int:
            return len(await store.list_changes(ident, ChangeQuery(limit=1000)))

        assert (await left("hr"), await left("crm"), await left("off")) == (10, 45, 0)
        assert max(calls) == 7  # never more than a batch in one transaction
        # Time passes: the next pruning (woken after a job, or on its own) takes more.
        await trio.sleep(3600)
        assert await left("hr") == 9
        nursery.cancel_scope.cancel()


async def test_the_log_of_an_integration_the_daemon_no_longer_has_is_pruned_by_the_default(
    autojump_clock: trio.abc.Clock,
) -> None:
    store = MemoryStore()
    for ident in ("hr", "removed", "deleted", "unloaded"):
        changes = [
            Change(
                integration_id=ident,
                job_id="j",
                entity_type="user",
                source_id=str(i),
                target_id=None,
                action="create",
                at=T0 + timedelta(hours=i),
            )
            for i in range(50)
        ]
        job = Job(id=f"j-{ident}", integration_id=ident, type="full_sync", created_at=T0)
        await store.commit_batch(BatchCommit(job=job, entity_type="user", changes=changes))
    await store.delete_integration("deleted", keep_changes=True)
    # defined through the API, but not loaded by this daemon (a plugin it lacks)
    await store.put_definition("unloaded", {"source": {"connector": "elsewhere"}})
    integrations = {"hr": integration("hr", timedelta(hours=40))}
    clock = TrioClock(T0 + timedelta(hours=49, minutes=30))
    pruner = ChangesPruner(
        store=store,
        clock=clock,
        integrations=lambda: integrations,
        retention=lambda: timedelta(hours=20),
        batch=7,
    )
    assert await pruner.prune() == 10 + 30 + 30

    async def left(ident: str) -> int:
        return len(await store.list_changes(ident, ChangeQuery(limit=1000)))

    assert (await left("hr"), await left("removed"), await left("deleted")) == (40, 20, 20)
    assert await left("unloaded") == 50  # its retention is not known here: kept
    integrations.clear()  # hr is removed from the config: the default applies to it too
    await pruner.prune()
    assert await left("hr") == 20
    clock = pruner.clock = TrioClock(T0 + timedelta(days=30))
    await pruner.prune()
    assert await store.logged_integrations() == ["unloaded"]


def test_an_integration_defined_through_the_api_takes_the_daemons_retention(
    tmp_path: Path,
) -> None:
    from sluiced.definitions import parse_definition
    from sluiced.pluginmanager import build_plugin_manager, build_registry
    from sluiced.testing import MemoryConnector

    from .fakes import MemoryPlugin
    from .test_daemon import make_config

    config = make_config(tmp_path, daemon={"changes_retention": "7d"})
    pm = build_plugin_manager(entry_points=False, extra=[MemoryPlugin(MemoryConnector())])
    registry = build_registry(pm)
    table = {
        "entity_types": ["user"],
        "source": {"connector": "memory"},
        "target": {"connector": "memory"},
    }
    made = parse_definition(config, registry, "made", table)
    assert made.cfg.changes_retention == timedelta(days=7)
    own = parse_definition(config, registry, "own", {**table, "changes_retention": "0s"})
    assert own.cfg.changes_retention == timedelta(0)


async def test_run_once_prunes_the_log_after_its_jobs(
    tmp_path: Path, autojump_clock: trio.abc.Clock
) -> None:
    from .test_daemon import T0 as START
    from .test_daemon import make_harness

    h = await make_harness(tmp_path)
    old = Change(
        integration_id="hr",
        job_id="j",
        entity_type="user",
        source_id="gone",
        target_id=None,
        action="delete",
        at=START - timedelta(days=31),
    )
    job = Job(id="j", integration_id="hr", type="full_sync", created_at=old.at)
    await h.store.commit_batch(BatchCommit(job=job, entity_type="user", changes=[old]))
    assert await h.daemon.run(api=False, once=True) == 0
    left = await h.store.list_changes("hr", ChangeQuery(limit=1000))
    assert len(left) == 25 and {c.action for c in left} == {"create"}  # the run's own
