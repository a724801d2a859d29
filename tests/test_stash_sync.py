"""The Stash jobs on the engine in one process under trio's virtual clock: the fake Stash's
app through an in-process transport, a real SQLite mirror, the in-memory store."""

from __future__ import annotations

import json
import re
import sqlite3
from collections.abc import Callable
from dataclasses import dataclass, field
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any

import httpx
import pytest
import trio

from sluiced.clock import TrioClock
from sluiced.config import ConnectorConfig, IntegrationConfig, RetryPolicy
from sluiced.engine import EngineResult, JobControl, SyncEngine
from sluiced.models import Job, JobStats
from sluiced.plugins.stash.client import StashClient
from sluiced.plugins.stash.entities import BUILTIN_ENTITY_TYPES
from sluiced.plugins.stash.fake import Library, build_app, generate
from sluiced.plugins.stash.mirror import Mirror
from sluiced.plugins.stash.schema import MirrorTooNew
from sluiced.plugins.stash.source import StashSource
from sluiced.plugins.stash.target import MirrorTarget
from sluiced.retrying import Breakers
from sluiced.store import BatchCommit, MemoryStore

from .mirrordb import Backend

T0 = datetime(2025, 6, 1, 12, 0, tzinfo=UTC)
KINDS = ("performer", "tag", "studio", "scene")


class Crash(BaseException):
    """The process dies here: nothing after it runs (no handler catches it)."""


class Store(MemoryStore):
    """Counts the job's saves; ``die_after_mirror_commits`` kills the run at the first
    store save after that many mirror transactions."""

    def __init__(self) -> None:
        super().__init__()
        self.saves = 0
        self.die_at: int | None = None
        self.commits = 0

    def _save(self) -> None:
        if self.die_at is not None and self.commits >= self.die_at:
            self.die_at = None
            raise Crash
        self.saves += 1

    async def save_job(self, job: Job) -> None:
        self._save()
        await super().save_job(job)

    async def commit_batch(self, batch: BatchCommit) -> None:
        self._save()
        await super().commit_batch(batch)


class Hooked(httpx.AsyncBaseTransport):
    """The fake's app, each request's operation name first passed to *before* (which
    may raise: the request then fails, or the process dies, there)."""

    def __init__(self, app: Any, before: Callable[[str], None]) -> None:
        self.inner = httpx.ASGITransport(app=app)
        self.before = before

    async def handle_async_request(self, request: httpx.Request) -> httpx.Response:
        found = re.match(r"\s*query\s+(\w+)", json.loads(request.content)["query"])
        self.before(found.group(1) if found else "")
        return await self.inner.handle_async_request(request)


class Driver:
    """A job's mirror target, and the engine running the job once it runs."""

    def __init__(self, target: MirrorTarget) -> None:
        self.target = target
        self.mirror = target.mirror
        self.engine: SyncEngine | None = None

    @property
    def job(self) -> Job | None:
        return self.engine.job if self.engine is not None else None


@dataclass
class Env:
    tmp: Path
    lib: Library
    store: Store = field(default_factory=Store)
    logs: list[tuple[str, str]] = field(default_factory=list)
    page_size: int = 40
    #: Tries of each request (the integration's ``retry.attempts``).
    attempts: int = 2
    #: Called with each request's operation name before the fake answers it.
    before: Callable[[str], None] = field(default=lambda name: None)
    #: The mirror's database (the mirror of ``tmp`` in it).
    backend: Backend = field(default_factory=Backend)

    def job(self, job_type: str, ident: str = "job-1", **params: Any) -> Job:
        return Job(id=ident, integration_id="stash", type=job_type, params=params, created_at=T0)

    def driver(self) -> Driver:
        mirror = self.mirror()
        write = mirror._write

        async def counted(fn: Any) -> Any:
            result = await write(fn)
            self.store.commits += 1
            return result

        mirror._write = counted  # type: ignore[method-assign]
        return Driver(MirrorTarget(mirror, page_size=self.page_size))

    async def run(self, driver: Driver, job: Job) -> EngineResult:
        client = StashClient("http://stash", transport=Hooked(build_app(self.lib), self.before))

        async def log(level: str, message: str) -> None:
            self.logs.append((level, message))

        cfg = IntegrationConfig(
            id="stash",
            name="stash",
            source=ConnectorConfig(connector="stash"),
            target=ConnectorConfig(connector="stash-mirror"),
            entity_types=KINDS,
            retry=RetryPolicy(
                attempts=self.attempts, base=timedelta(seconds=1), cap=timedelta(seconds=2)
            ),
        )
        await self.store.save_job(job)
        driver.engine = SyncEngine(
            job=job,
            cfg=cfg,
            source=StashSource(client, overlap=timedelta(minutes=70)),
            target=driver.target,
            store=self.store,
            clock=TrioClock(T0),
            log=log,
            control=JobControl(),
            breakers=Breakers(),
        )
        try:
            result: EngineResult = await driver.engine.run()
            return result
        finally:
            await client.aclose()
            await driver.target.aclose()

    def mirror(self) -> Mirror:
        """A new handle on the mirror (opened at its first call)."""
        return Mirror(self.backend.db(self.tmp), BUILTIN_ENTITY_TYPES)

    def query(self, sql: str, *args: Any) -> list[tuple[Any, ...]]:
        """The rows of *sql* in the mirror, read by another connection."""
        return self.backend.query(self.tmp, sql, *args)

    def errors(self) -> list[str]:
        return [m for level, m in self.logs if level == "error"]


async def test_malformed_and_repeated_ids_do_not_fail_the_job(
    tmp_path: Path, autojump_clock: trio.abc.Clock, mirror_db: Backend
) -> None:
    env = Env(
        tmp_path, generate(performers=10, tags=10, studios=3, scenes=30, now=T0), backend=mirror_db
    )
    given = ["scene123", "5", "5", "005", "7", "9999", "0", "+8", "7", "9" * 25]
    result = await env.run(env.driver(), env.job("sync_scenes", scene_ids=given))
    # each distinct id is processed; the four in error with it
    assert result.job.stats == JobStats(processed=7, created=3, errors=4)
    assert env.errors() == [
        'scene id "scene123" is not a Stash scene id (a positive integer)',
        'scene id "0" is not a Stash scene id (a positive integer)',
        f'scene id "{"9" * 25}" is not a Stash scene id (a positive integer)',
        "scene 9999 does not exist in Stash",
    ]
    assert ("info", "3 repeated scene ids: each scene is synced once") in env.logs
    mirror = env.mirror()
    assert await mirror.ids("scene") == [5, 7, 8]
    await mirror.aclose()


async def test_each_scene_is_reported_as_it_is_written_and_the_store_once_a_batch(
    tmp_path: Path, autojump_clock: trio.abc.Clock, mirror_db: Backend
) -> None:
    env = Env(
        tmp_path, generate(performers=10, tags=10, studios=3, scenes=250, now=T0), backend=mirror_db
    )
    driver = env.driver()
    seen: list[float] = []
    apply = driver.target.apply

    async def watched(kind: str, ops: Any, *, checkpoint: Any = None) -> Any:
        if kind == "scene" and ops:  # what the job says before each scene's own transaction
            assert driver.job is not None
            seen.append(driver.job.progress)
        return await apply(kind, ops, checkpoint=checkpoint)

    driver.target.apply = watched  # type: ignore[method-assign]
    job = env.job("sync_scenes", scene_ids=[str(i) for i in range(1, 251)])
    result = await env.run(driver, job)
    assert result.job.stats == JobStats(processed=250, created=250)
    assert len(seen) == 250 and seen == sorted(set(seen)) and seen[1] == 0.4
    assert env.store.saves <= 3 + 5  # a save a batch, and a few at the start and the end
    stored = await env.store.get_job("job-1")
    assert stored is not None and stored.stats == result.job.stats


async def test_progress_moves_page_by_page_through_the_scenes(
    tmp_path: Path, autojump_clock: trio.abc.Clock, mirror_db: Backend
) -> None:
    env = Env(
        tmp_path, generate(performers=10, tags=10, studios=3, scenes=200, now=T0), backend=mirror_db
    )
    driver = env.driver()
    seen: list[float] = []
    apply = driver.target.apply

    async def watched(kind: str, ops: Any, *, checkpoint: Any = None) -> Any:
        if kind == "scene" and ops:  # what the job says before each page's transaction
            assert driver.job is not None
            seen.append(driver.job.progress)
        return await apply(kind, ops, checkpoint=checkpoint)

    driver.target.apply = watched  # type: ignore[method-assign]
    await env.run(driver, env.job("sync"))
    assert seen == [80.0, 85.0, 90.0, 95.0, 99.9]  # 40 of 200 scenes a page


async def test_a_crash_between_the_mirror_and_the_store_leaves_the_counts_right(
    tmp_path: Path, autojump_clock: trio.abc.Clock, mirror_db: Backend
) -> None:
    """The mirror commits, the process dies before the store hears of it: the resumed
    job's stats are those of a job that never crashed, neither a page short nor double.
    Tried after every one of the job's mirror transactions."""

    def library() -> Library:
        return generate(performers=30, tags=20, studios=6, scenes=120, now=T0)

    (tmp_path / "whole").mkdir()
    whole = Env(tmp_path / "whole", library(), backend=mirror_db)
    expected = (await whole.run(whole.driver(), whole.job("sync", full_resync=True))).job.stats
    assert expected.processed == 30 + 20 + 6 + 120 and whole.store.commits > 10
    for die_at in range(1, whole.store.commits):
        (tmp_path / str(die_at)).mkdir()
        env = Env(tmp_path / str(die_at), library(), backend=mirror_db)
        env.store.die_at = die_at
        with pytest.raises(Crash):
            await env.run(env.driver(), env.job("sync", full_resync=True))
        stored = await env.store.get_job("job-1")
        assert stored is not None
        resumed = await env.run(env.driver(), stored)
        assert (die_at, resumed.job.stats) == (die_at, expected)


async def test_a_sync_scenes_crash_mid_batch_resumes_after_the_last_scene_written(
    tmp_path: Path, autojump_clock: trio.abc.Clock, mirror_db: Backend
) -> None:
    env = Env(
        tmp_path, generate(performers=10, tags=10, studios=3, scenes=150, now=T0), backend=mirror_db
    )
    job = env.job("sync_scenes", scene_ids=["x", *[str(i) for i in range(1, 151)], "999"])
    first = env.driver()
    env.store.die_at = 60  # inside the first batch of 100: the store has not heard of it
    with pytest.raises(Crash):
        await env.run(first, job)
    stored = await env.store.get_job("job-1")
    # only the malformed id, counted when the job started
    assert stored is not None and stored.stats.processed == 1
    resumed = await env.run(env.driver(), stored)
    assert resumed.job.stats == JobStats(processed=152, created=150, errors=2)
    assert env.errors().count('scene id "x" is not a Stash scene id (a positive integer)') == 1


def _files(path: Path) -> dict[int, tuple[Any, ...]]:
    with sqlite3.connect(path) as conn:
        rows = conn.execute(
            "SELECT id, is_primary, parent_folder_path, zip_file_path FROM files"
        ).fetchall()
    return {r[0]: r[1:] for r in rows}


def _library_files(lib: Library) -> dict[int, tuple[Any, ...]]:
    return {
        int(f["id"]): (
            int(n == 0),
            f["parent_folder"]["path"],
            f["zip_file"]["path"] if f["zip_file"] else None,
        )
        for s in lib.tables["scene"].values()
        for n, f in enumerate(s["files"])
    }


async def test_a_mirror_of_the_version_before_is_migrated_and_its_scenes_read_whole(
    tmp_path: Path, autojump_clock: trio.abc.Clock
) -> None:
    env = Env(tmp_path, generate(performers=10, tags=10, studios=3, scenes=60, now=T0))
    await env.run(env.driver(), env.job("sync"))
    path = tmp_path / "mirror.sqlite3"
    with sqlite3.connect(path) as conn:  # back to the tables sluiced wrote before versions
        for column in ("is_primary", "parent_folder_id", "parent_folder_path"):
            conn.execute(f"ALTER TABLE files DROP COLUMN {column}")
        for column in ("zip_file_id", "zip_file_path"):
            conn.execute(f"ALTER TABLE files DROP COLUMN {column}")
        conn.execute("DROP TABLE mirror_schema")
        before = conn.execute("SELECT count(*) FROM files").fetchone()[0]
    mirror = Mirror(path, BUILTIN_ENTITY_TYPES)
    assert await mirror.count("scene") == 60 and mirror.migrated == ["scene"]
    assert set(await mirror.state("watermark:")) == {
        "watermark:performer",
        "watermark:tag",
        "watermark:studio",
    }
    await mirror.aclose()
    rows = _files(path)
    assert len(rows) == before and {r[1:] for r in rows.values()} == {(None, None)}
    single = {i: v for i, v in _library_files(env.lib).items() if v[0]}
    assert sum(r[0] for r in rows.values()) == len(single) - 6  # 6 scenes have two files
    env.logs.clear()
    await env.run(env.driver(), env.job("sync", "job-2"))
    assert _files(path) == _library_files(env.lib)
    started = [m for _, m in env.logs if m.endswith("pass started")]
    assert started == [
        "performer: incremental pass started",
        "tag: incremental pass started",
        "studio: incremental pass started",
        "scene: full pass started",
    ]
    said = [m for _, m in env.logs if "migrated" in m]
    assert said == ["mirror: the scene tables were migrated to this version"]
    assert env.logs.index(("info", said[0])) < env.logs.index(("info", started[-1]))
    env.logs.clear()
    await env.run(env.driver(), env.job("sync", "job-3"))  # said once
    assert not [m for _, m in env.logs if "migrated" in m]
    with sqlite3.connect(path) as conn:
        assert conn.execute("SELECT * FROM mirror_schema WHERE entity='scene'").fetchall() == [
            ("scene", 2)
        ]
        conn.execute("UPDATE mirror_schema SET version=3 WHERE entity='scene'")
    newer = Mirror(path, BUILTIN_ENTITY_TYPES)
    with pytest.raises(MirrorTooNew, match=rf"^{re.escape(str(path))}: the mirror's scene tables"):
        await newer.count("scene")
    await newer.aclose()


async def test_positions_of_jobs_that_can_never_run_again_are_dropped(
    tmp_path: Path, mirror_db: Backend
) -> None:
    from dataclasses import replace

    from sluiced.models import JobStatus
    from sluiced.plugins.stash.target import encode
    from sluiced.sync._keyed import over_for_good

    store = MemoryStore()
    statuses = {
        "completed": JobStatus.COMPLETED,
        "stopped": JobStatus.STOPPED,
        "failed": JobStatus.FAILED,
        "paused": JobStatus.PAUSED,
        "running": JobStatus.RUNNING,
    }
    base = Job(id="x", integration_id="stash", type="sync", created_at=T0)
    for ident, status in statuses.items():
        await store.save_job(replace(base, id=ident, status=status))
    await store.save_job(replace(base, id="shut-down", status=JobStatus.STOPPED, interrupted=True))
    mirror = Mirror(mirror_db.db(tmp_path), BUILTIN_ENTITY_TYPES)
    keys = [*statuses, "shut-down", "deleted", "mine"]
    await mirror.save_state({f"job:{k}": encode({"index": 1}, JobStats()) for k in keys})

    async def over(job_id: str) -> bool:  # as the engine asks, running the job "mine"
        return job_id != "mine" and await over_for_good(store, job_id)

    assert await MirrorTarget(mirror).forget_checkpoints(over) == 3
    assert set(await mirror.state("job:")) == {
        f"job:{k}" for k in ("failed", "paused", "running", "shut-down", "mine")
    }
    await mirror.aclose()


async def test_an_incremental_pass_interrupted_before_a_migration_starts_again_in_full(
    tmp_path: Path, autojump_clock: trio.abc.Clock, mirror_db: Backend
) -> None:
    from sluiced.engine import CHECKPOINT_VERSION
    from sluiced.plugins.stash.target import encode

    env = Env(
        tmp_path, generate(performers=10, tags=10, studios=3, scenes=60, now=T0), backend=mirror_db
    )
    await env.run(env.driver(), env.job("sync"))
    mirror = env.mirror()
    watermark = (await mirror.state("watermark:scene"))["watermark:scene"]
    where = {
        "v": CHECKPOINT_VERSION,
        "index": 3,
        "pass_id": "job-2:scene",
        "full": False,
        "watermark": watermark,
        "since": watermark,
        "unreadable": 0,
        "phase": "read",
        "cursor": 30,
        "seq": 5,
    }
    await mirror.save_state({"job:job-2": encode(where, JobStats()), "watermark:scene": None})
    await mirror.aclose()
    env.logs.clear()
    await env.run(env.driver(), env.job("sync", "job-2"))
    assert next(m for _, m in env.logs if m.startswith("scene:")) == "scene: full pass started"


def _oldest(backend: Backend, folder: Path) -> list[str]:
    """Bring the mirror of *folder* back to the first version of every entity type's
    tables: the columns their migrations add dropped, version 1 recorded. Returns the
    types brought back."""
    statements, back = [], []
    for entity in BUILTIN_ENTITY_TYPES:
        if entity.version == 1:
            continue
        back.append(entity.name)
        added = [
            re.match(r"ALTER TABLE (\w+) ADD COLUMN (\w+)", step)
            for steps in entity.migrations
            for step in steps
            if isinstance(step, str)
        ]
        statements += [f"ALTER TABLE {m[1]} DROP COLUMN {m[2]}" for m in reversed(added) if m]
        statements.append(f"UPDATE mirror_schema SET version=1 WHERE entity='{entity.name}'")
    if backend.postgres:
        import psycopg

        assert backend.url is not None
        with psycopg.connect(
            backend.url, autocommit=True, options=f"-c search_path={backend.schema(folder)}"
        ) as pg:
            for statement in statements:
                pg.execute(statement)
    else:
        with sqlite3.connect(folder / "mirror.sqlite3") as conn:
            for statement in statements:
                conn.execute(statement)
        conn.close()
    return back


async def test_a_mirror_at_the_oldest_version_opens_migrated_with_its_rows(
    tmp_path: Path, autojump_clock: trio.abc.Clock, mirror_db: Backend
) -> None:
    """Every migration step runs on both databases (a flag is 1 in SQLite, true in
    PostgreSQL), and every row of the old tables survives it."""
    env = Env(
        tmp_path, generate(performers=10, tags=10, studios=3, scenes=60, now=T0), backend=mirror_db
    )
    await env.run(env.driver(), env.job("sync"))
    assert _oldest(mirror_db, tmp_path) == ["scene"]
    tables = ("performers", "tags", "studios", "scenes", "files", "markers", "scene_tags")
    before = {t: sorted(env.query(f"SELECT * FROM {t}")) for t in tables}
    assert len(before["files"]) > 60 and len(before["markers"]) > 0
    mirror = env.mirror()
    assert await mirror.count("scene") == 60 and mirror.migrated == ["scene"]
    await mirror.aclose()
    # The columns a migration adds come last: version 1's are the first ones.
    width = {t: len(rows[0]) for t, rows in before.items() if rows}
    after = {t: sorted(r[: width[t]] for r in env.query(f"SELECT * FROM {t}")) for t in before}
    assert after == before
    primary = env.query(
        "SELECT count(*) FROM files WHERE is_primary AND scene_id IN"
        " (SELECT scene_id FROM files GROUP BY scene_id HAVING count(*) = 1)"
    )
    single = env.query(
        "SELECT count(*) FROM (SELECT scene_id FROM files GROUP BY scene_id HAVING count(*) = 1) s"
    )
    assert primary == single and single[0][0] > 0
    assert env.query("SELECT version FROM mirror_schema WHERE entity='scene'") == [(2,)]
    again = env.mirror()
    assert await again.count("scene") == 60 and again.migrated == []
    await again.aclose()
