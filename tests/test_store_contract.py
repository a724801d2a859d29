"""One contract, every store: the same tests run against MemoryStore, SqliteStore and
PostgresStore (on a real server, a database of its own for each test)."""

from __future__ import annotations

import functools
from collections.abc import AsyncIterator, Sequence
from dataclasses import replace
from datetime import UTC, datetime, timedelta
from pathlib import Path

import pytest
import trio

from sluiced.changes import (
    OPERATOR_DROP,
    SETTLED,
    Change,
    ChangeQuery,
    cursor_of,
    dropped,
    parse_cursor,
)
from sluiced.models import (
    Escrow,
    Execution,
    IntegrationState,
    Job,
    JobStats,
    JobStatus,
    Link,
    LogEntry,
    Quarantine,
)
from sluiced.store import BatchCommit, MemoryStore, SqliteStore, StagedDeletion, Store

T0 = datetime(2026, 1, 1, 12, 0, tzinfo=UTC)


@pytest.fixture(params=["memory", "sqlite", "postgresql"])
async def store(request: pytest.FixtureRequest, tmp_path: Path) -> AsyncIterator[Store]:
    s: Store
    if request.param == "memory":
        s = MemoryStore(log_limit=10)
    elif request.param == "sqlite":
        s = SqliteStore(tmp_path / "state.sqlite3", log_limit=10)
    else:
        from sluiced.store.postgres import PostgresStore

        s = PostgresStore(request.getfixturevalue("pg_url"), log_limit=10)
    yield s
    await s.aclose()


def job(n: int, **kw: object) -> Job:
    base = Job(
        id=f"job-{n}", integration_id="hr", type="full_sync", created_at=T0 + timedelta(seconds=n)
    )
    return replace(base, **kw)  # type: ignore[arg-type]


def escrow(oid: str, kind: str = "target", **kw: object) -> Escrow:
    e = Escrow(
        integration_id="hr",
        entity_type="user",
        object_id=oid,
        kind=kind,
        reason="boom",
        first_failed=T0,
        last_failed=T0,
        next_retry=T0 + timedelta(minutes=5),
    )
    return replace(e, **kw)  # type: ignore[arg-type]


async def test_jobs_round_trip_with_every_field(store: Store) -> None:
    j = job(
        1,
        status=JobStatus.RUNNING,
        params={"a": [1, 2]},
        progress=42.5,
        stage="user",
        stats=JobStats(processed=3, created=2, errors=1),
        started_at=T0,
        checkpoint={"entity": 0, "cursor": {"offset": 10}},
        error="x",
        error_code="Y",
        node="node-a",
    )
    await store.save_job(j)
    assert await store.get_job("job-1") == j
    assert await store.get_job("nope") is None


async def test_a_job_keeps_the_node_that_ran_it_through_saves_and_batches(store: Store) -> None:
    await store.save_job(job(1))
    assert (await store.get_job("job-1")).node is None  # type: ignore[union-attr]
    await store.save_job(job(1, status=JobStatus.RUNNING, node="node-a"))
    await store.commit_batch(BatchCommit(job=job(2, node="node-b"), entity_type="user"))
    jobs, _ = await store.list_jobs()
    assert {j.id: j.node for j in jobs} == {"job-1": "node-a", "job-2": "node-b"}
    # Resumed by another node, it names that one.
    await store.save_job(job(1, status=JobStatus.COMPLETED, node="node-b"))
    assert (await store.get_job("job-1")).node == "node-b"  # type: ignore[union-attr]


async def test_list_jobs_filters_newest_first_with_total(store: Store) -> None:
    for n in range(5):
        await store.save_job(job(n, status=JobStatus.COMPLETED if n % 2 else JobStatus.FAILED))
    await store.save_job(replace(job(9), integration_id="other"))
    jobs, total = await store.list_jobs(limit=3)
    assert total == 6 and [j.id for j in jobs] == ["job-9", "job-4", "job-3"]
    jobs, total = await store.list_jobs(statuses={JobStatus.COMPLETED}, integration_id="hr")
    assert total == 2 and [j.id for j in jobs] == ["job-3", "job-1"]
    jobs, total = await store.list_jobs(limit=None)
    assert len(jobs) == total == 6


async def test_logs_are_bounded_per_job_and_deleted_on_request(store: Store) -> None:
    await store.save_job(job(1))
    for n in range(25):
        await store.append_logs("job-1", [LogEntry(timestamp=T0, level="info", message=f"m{n}")])
    logs = await store.get_logs("job-1")
    assert [e.message for e in logs] == [f"m{n}" for n in range(15, 25)]
    assert [e.message for e in await store.get_logs("job-1", limit=2)] == ["m23", "m24"]
    assert await store.delete_job("job-1", delete_logs=False)
    assert len(await store.get_logs("job-1")) == 10  # kept for auditing
    await store.save_job(job(1))
    assert await store.delete_job("job-1", delete_logs=True)
    assert await store.get_logs("job-1") == []
    assert not await store.delete_job("job-1", delete_logs=True)


async def test_log_lines_are_numbered_and_read_after_a_number(store: Store) -> None:
    await store.save_job(job(1))
    for n in range(12):  # log_limit is 10: the first two are trimmed, their numbers stay used
        await store.append_logs("job-1", [LogEntry(timestamp=T0, level="info", message=f"m{n}")])
    await store.append_logs(
        "job-1", [LogEntry(timestamp=T0, level="info", message=m) for m in ("a", "b")]
    )
    logs = await store.get_logs("job-1")
    assert [e.seq for e in logs] == list(range(5, 15))
    assert [(e.seq, e.message) for e in await store.get_logs("job-1", after=12)] == [
        (13, "a"),
        (14, "b"),
    ]
    assert [e.seq for e in await store.get_logs("job-1", after=3, limit=2)] == [13, 14]
    assert await store.get_logs("job-1", after=14) == []


class Watcher:
    def __init__(self) -> None:
        self.seen: list[tuple[str, object]] = []

    def job_saved(self, job: Job) -> None:
        self.seen.append(("job", job))

    def logs_appended(self, job_id: str, entries: Sequence[LogEntry]) -> None:
        self.seen.append(("logs", (job_id, [(e.seq, e.message) for e in entries])))


async def test_the_watcher_is_told_of_every_job_write_and_numbered_log_line(
    store: Store,
) -> None:
    watcher = Watcher()
    store.watcher = watcher
    first, second = job(1), job(1, progress=50.0)
    await store.save_job(first)
    await store.append_logs(
        "job-1", [LogEntry(timestamp=T0, level="info", message=m) for m in ("a", "b")]
    )
    await store.commit_batch(BatchCommit(job=second, entity_type="user"))
    await store.append_logs("job-1", [LogEntry(timestamp=T0, level="info", message="c")])
    assert watcher.seen == [
        ("job", first),
        ("logs", ("job-1", [(1, "a"), (2, "b")])),
        ("job", second),
        ("logs", ("job-1", [(3, "c")])),
    ]
    assert await store.check() is None


async def test_escrows_are_counted_per_integration_and_entity_type(store: Store) -> None:
    assert await store.count_escrows() == {}
    j = job(1)
    await store.commit_batch(
        BatchCommit(job=j, entity_type="user", add_escrows=[escrow("a"), escrow("b")])
    )
    await store.commit_batch(
        BatchCommit(
            job=j,
            entity_type="group",
            add_escrows=[escrow("g", entity_type="group")],
        )
    )
    other = escrow("z", integration_id="crm")
    await store.commit_batch(
        BatchCommit(job=job(2, integration_id="crm"), entity_type="user", add_escrows=[other])
    )
    assert await store.count_escrows() == {
        ("crm", "user"): 1,
        ("hr", "group"): 1,
        ("hr", "user"): 2,
    }
    await store.drop_escrow("crm", "user", "z")
    assert await store.count_escrows() == {("hr", "group"): 1, ("hr", "user"): 2}


async def test_job_history_aggregates_finished_jobs(store: Store) -> None:
    await store.save_job(
        job(1, status=JobStatus.COMPLETED, started_at=T0, completed_at=T0 + timedelta(seconds=2))
    )
    await store.save_job(
        job(2, status=JobStatus.COMPLETED, started_at=T0, completed_at=T0 + timedelta(seconds=4))
    )
    await store.save_job(
        job(3, status=JobStatus.FAILED, started_at=T0, completed_at=T0 + timedelta(seconds=9))
    )
    await store.save_job(job(4, status=JobStatus.RUNNING))
    h = await store.job_history("hr")
    assert (h.total_jobs, h.succeeded, h.finished, h.average_duration_ms) == (4, 2, 3, 3000)
    empty = await store.job_history("none")
    assert empty.total_jobs == 0 and empty.average_duration_ms is None


async def test_integration_state_round_trip(store: Store) -> None:
    assert await store.get_state("hr") == IntegrationState(integration_id="hr")
    ex = Execution(job_id="j", state="Failed", time_began=T0, time_ended=T0, count_imported=3)
    st = IntegrationState(
        integration_id="hr",
        schedule_state="Paused",
        interval_s=600,
        last_execution=ex,
        quarantine=Quarantine(
            current_began=T0,
            next_attempt=None,
            reason="TooManyDeletes",
            series_began=T0,
            series_count=2,
        ),
    )
    await store.put_state(st)
    assert await store.get_state("hr") == st
    assert [s.integration_id for s in await store.list_states()] == ["hr"]


async def test_links_keep_the_exported_object_and_when_it_was_disabled(store: Store) -> None:
    link = Link(
        source_id="1",
        target_id="t1",
        hash="h",
        data={"userName": "ada@example.org", "name": {"givenName": "Ada"}, "active": False},
        disabled_at=T0,
    )
    await store.commit_batch(BatchCommit(job=job(1), entity_type="user", upsert_links=[link]))
    assert (await store.get_links("hr", "user", ["1"]))["1"] == link
    assert await store.unseen_links("hr", "user", "p", after=None, limit=5) == [link]


async def test_commit_batch_links_escrows_and_watermark(store: Store) -> None:
    j = job(1, checkpoint={"cursor": 5})
    links = [Link(source_id=str(i), target_id=f"t{i}", hash="h", seen_pass="p1") for i in range(5)]
    await store.commit_batch(
        BatchCommit(
            job=j,
            entity_type="user",
            upsert_links=links,
            add_escrows=[escrow("x", "source", pass_id="p1"), escrow("y")],
        )
    )
    assert await store.get_job("job-1") == j
    assert set(await store.get_links("hr", "user", ["1", "3", "99"])) == {"1", "3"}
    assert await store.count_links("hr", "user") == 5
    assert await store.get_watermarks("hr") == {}
    # A second full pass sees 0..2 only; 3 and 4 are unseen, in id order, paged.
    await store.commit_batch(
        BatchCommit(
            job=j,
            entity_type="user",
            seen_pass="p2",
            seen_ids=["0", "1", "2"],
            delete_links=[],
            remove_escrows=["y"],
        )
    )
    unseen = await store.unseen_links("hr", "user", "p2", after=None, limit=1)
    assert [u.source_id for u in unseen] == ["3"]
    unseen = await store.unseen_links("hr", "user", "p2", after="3", limit=10)
    assert [u.source_id for u in unseen] == ["4"]
    # Completing pass p2 stores the watermark and drops source escrows from older passes.
    await store.commit_batch(
        BatchCommit(job=j, entity_type="user", seen_pass="p2", pass_complete=True, watermark="w0")
    )
    assert (
        len(await store.list_escrows("hr")) == 1
    )  # a pass that did not read everything keeps them
    await store.commit_batch(
        BatchCommit(
            job=j,
            entity_type="user",
            seen_pass="p2",
            delete_links=["3", "4"],
            pass_complete=True,
            exhaustive=True,
            watermark="w1",
        )
    )
    assert await store.get_watermarks("hr") == {"user": "w1"}
    assert await store.count_links("hr", "user") == 3
    assert await store.list_escrows("hr") == []


async def test_a_batch_drops_the_watermarks_it_names_stale(store: Store) -> None:
    j = job(1)
    for et in ("user", "group", "role"):
        await store.commit_batch(
            BatchCommit(job=j, entity_type=et, pass_complete=True, watermark=f"w-{et}")
        )
    other = replace(j, id="j-other", integration_id="crm")
    await store.commit_batch(
        BatchCommit(job=other, entity_type="group", pass_complete=True, watermark="w")
    )
    await store.commit_batch(
        BatchCommit(
            job=j,
            entity_type="user",
            upsert_links=[Link(source_id="1", target_id="t1", hash="h")],
            stale_watermarks=["group", "role"],
        )
    )
    assert await store.get_watermarks("hr") == {"user": "w-user"}
    assert await store.get_watermarks("crm") == {"group": "w"}
    # Dropped first: a completing pass of a stale type stores its watermark again.
    await store.commit_batch(
        BatchCommit(
            job=j,
            entity_type="group",
            pass_complete=True,
            watermark="w2",
            stale_watermarks=["group"],
        )
    )
    assert await store.get_watermarks("hr") == {"user": "w-user", "group": "w2"}


async def test_escrows_listing_due_and_drop(store: Store) -> None:
    j = job(1)
    late = escrow("b", next_retry=T0 + timedelta(hours=1))
    await store.commit_batch(
        BatchCommit(job=j, entity_type="user", add_escrows=[late, escrow("a")])
    )
    assert [e.object_id for e in await store.list_escrows("hr")] == ["a", "b"]
    assert [
        e.object_id for e in await store.list_escrows("hr", due_before=T0 + timedelta(minutes=10))
    ] == ["a"]
    assert [e.object_id for e in await store.list_escrows("hr", kind="source")] == []
    assert await store.list_escrows("hr", entity_type="user", limit=1) == [escrow("a")]
    assert await store.retry_escrow_at("hr", "user", "b", T0)
    assert [e.object_id for e in await store.list_escrows("hr", due_before=T0)] == ["b"]
    assert not await store.retry_escrow_at("hr", "user", "nope", T0)
    assert await store.drop_escrow("hr", "user", "a")
    assert not await store.drop_escrow("hr", "user", "a")
    await store.clear_escrows("hr")
    assert await store.list_escrows("hr") == []


async def test_delete_integration_forgets_everything(store: Store) -> None:
    await store.save_job(job(1))
    await store.append_logs("job-1", [LogEntry(timestamp=T0, level="info", message="m")])
    await store.put_state(IntegrationState(integration_id="hr", interval_s=5))
    staged = StagedDeletion(
        integration_id="hr", entity_type="user", source_id="1", target_id="t1", staged_at=T0
    )
    await store.commit_batch(
        BatchCommit(
            job=job(2),
            entity_type="user",
            upsert_links=[Link(source_id="1", target_id="t", hash="h")],
            add_escrows=[escrow("e")],
            pass_complete=True,
            watermark="w",
            staged_deletions=[staged],
        )
    )
    assert await store.list_staged_deletions("hr") == [staged]
    await store.put_definition("hr", {"entity_types": ["user"], "source": {"connector": "jsonl"}})
    assert await store.list_definitions() == {
        "hr": {"entity_types": ["user"], "source": {"connector": "jsonl"}}
    }
    await store.delete_integration("hr")
    assert await store.list_definitions() == {}
    assert await store.list_jobs() == ([], 0)
    assert await store.get_logs("job-1") == []
    assert await store.get_state("hr") == IntegrationState(integration_id="hr")
    assert await store.get_watermarks("hr") == {}
    assert await store.count_links("hr", "user") == 0
    assert await store.list_escrows("hr") == []
    assert await store.list_staged_deletions("hr") == []


async def test_clear_scopes_individually(store: Store) -> None:
    await store.commit_batch(
        BatchCommit(
            job=job(1),
            entity_type="user",
            upsert_links=[Link(source_id="1", target_id="t", hash="h")],
            add_escrows=[escrow("e")],
            pass_complete=True,
            watermark="w",
        )
    )
    await store.clear_watermarks("hr")
    assert await store.get_watermarks("hr") == {} and await store.count_links("hr", "user") == 1
    await store.clear_links("hr")
    assert await store.count_links("hr", "user") == 0 and len(await store.list_escrows("hr")) == 1


async def test_a_cancelled_writer_still_commits(store: Store) -> None:
    with trio.CancelScope() as scope:
        scope.cancel()
        await store.save_job(job(1))  # the scope absorbs the Cancelled, if any
    assert await store.get_job("job-1") == job(1)


async def test_sqlite_store_survives_reopen_and_refuses_newer_schema(tmp_path: Path) -> None:
    path = tmp_path / "s.sqlite3"
    s = SqliteStore(path)
    await s.save_job(job(1))
    await s.aclose()
    s = SqliteStore(path)
    assert await s.get_job("job-1") == job(1)
    await s.aclose()
    import sqlite3

    with sqlite3.connect(path) as conn:
        conn.execute("PRAGMA user_version=999")
    with pytest.raises(RuntimeError, match="newer than this sluiced"):
        SqliteStore(path)


async def test_sqlite_store_migrates_an_older_database_forward(tmp_path: Path) -> None:
    import sqlite3

    from sluiced.store.sqlite import MIGRATIONS

    path = tmp_path / "old.sqlite3"
    with sqlite3.connect(path) as conn:  # a store written by the first release: schema 1
        for statement in MIGRATIONS[0].split(";"):
            if statement.strip():
                conn.execute(statement)
        conn.execute("PRAGMA user_version=1")
        conn.execute(
            'INSERT INTO integration_state VALUES (\'hr\', \'{"integration_id": "hr", "interval_s": 60}\')'
        )
        conn.execute("INSERT INTO links VALUES ('hr', 'user', '1', 't1', 'h', NULL)")
        conn.execute(
            "INSERT INTO jobs VALUES ('old', 'hr', 'completed', '2026-01-01T12:00:00+00:00',"
            """ 5, '{"id": "old", "integration_id": "hr", "type": "full_sync","""
            """ "status": "completed", "created_at": "2026-01-01T12:00:00+00:00"}')"""
        )
    s = SqliteStore(path)
    try:
        assert (await s.get_state("hr")).interval_s == 60  # old data kept, new fields defaulted
        await s.put_definition("api", {"entity_types": ["user"]})  # schema 2's table exists
        assert await s.list_definitions() == {"api": {"entity_types": ["user"]}}
        old_link = (await s.get_links("hr", "user", ["1"]))["1"]  # schema 3: new columns empty
        assert (old_link.target_id, old_link.data, old_link.disabled_at) == ("t1", None, None)
        old_job = await s.get_job("old")  # schema 4: a job recorded before nodes ran none
        assert old_job is not None and old_job.node is None
        await s.save_job(replace(old_job, node="node-a"))
    finally:
        await s.aclose()
    with sqlite3.connect(path) as conn:
        assert conn.execute("PRAGMA user_version").fetchone()[0] == len(MIGRATIONS)
        assert conn.execute("SELECT node FROM jobs WHERE id='old'").fetchone() == ("node-a",)


# -- the provisioning log ----------------------------------------------------------------
def change(sid: str, action: str = "update", seconds: int = 0, **kw: object) -> Change:
    c = Change(
        integration_id="hr",
        job_id="job-1",
        entity_type="user",
        source_id=sid,
        target_id=f"t-{sid}",
        action=action,
        at=T0 + timedelta(seconds=seconds),
    )
    return replace(c, **kw)  # type: ignore[arg-type]


async def test_changes_commit_with_the_batch_and_list_newest_first(store: Store) -> None:
    create = change("1", "create", 0, attributes={"mail": "a@x", "n": [1, {"v": None}]})
    update = change("1", "update", 1, changes={"mail": {"from": "a@x", "to": "b@x"}})
    escrowed = change("2", "escrow", 1, target_id=None, reason="refused", kind="target")
    group = change("g", "delete", 2, entity_type="group", job_id="job-2")
    await store.commit_batch(
        BatchCommit(job=job(1), entity_type="user", changes=[create, update, escrowed])
    )
    await store.commit_batch(BatchCommit(job=job(2), entity_type="group", changes=[group]))
    found = await store.list_changes("hr", ChangeQuery())
    assert [(c.source_id, c.action) for c in found] == [
        ("g", "delete"),
        ("2", "escrow"),
        ("1", "update"),
        ("1", "create"),
    ]
    assert all(c.id is not None for c in found)
    assert [replace(c, id=None) for c in found] == [group, escrowed, update, create]
    assert await store.list_changes("other", ChangeQuery()) == []

    async def ids(**kw: object) -> list[tuple[str, str]]:
        q = ChangeQuery(**kw)  # type: ignore[arg-type]
        return [(c.source_id, c.action) for c in await store.list_changes("hr", q)]

    assert await ids(object_id="1") == [("1", "update"), ("1", "create")]
    assert await ids(object_id="t-g") == [("g", "delete")]  # the target id matches too
    assert await ids(entity_type="group") == [("g", "delete")]
    assert await ids(actions=("create", "escrow")) == [("2", "escrow"), ("1", "create")]
    assert await ids(job_id="job-2") == [("g", "delete")]
    assert await ids(since=T0 + timedelta(seconds=1)) == [
        ("g", "delete"),
        ("2", "escrow"),
        ("1", "update"),
    ]
    assert await ids(until=T0 + timedelta(seconds=1), limit=1) == [("2", "escrow")]
    # A cursor continues after the last change of a page, ties in time included.
    pages, before = [], None
    while True:
        page = await store.list_changes("hr", ChangeQuery(limit=1, before=before))
        if not page:
            break
        pages += [(c.source_id, c.action) for c in page]
        before = parse_cursor(cursor_of(page[-1]))
    assert pages == await ids()


async def test_changes_of_a_big_batch_and_their_pruning(store: Store) -> None:
    many = [change(str(i), "create", i % 7) for i in range(300)]
    await store.commit_batch(BatchCommit(job=job(1), entity_type="user", changes=many))
    assert len(await store.list_changes("hr", ChangeQuery(limit=1000))) == 300
    # The oldest go first, a bounded number at a time.
    cutoff = T0 + timedelta(seconds=3)
    assert await store.prune_changes("hr", cutoff, limit=100) == 100
    assert await store.prune_changes("hr", cutoff, limit=100) == 29
    assert await store.prune_changes("hr", cutoff, limit=100) == 0
    left = await store.list_changes("hr", ChangeQuery(limit=1000))
    assert len(left) == 171 and min(c.at for c in left) == cutoff
    assert await store.prune_changes("other", cutoff, limit=100) == 0
    await store.delete_integration("hr")
    assert await store.list_changes("hr", ChangeQuery()) == []


async def test_a_dropped_escrow_is_logged_in_the_same_transaction(store: Store) -> None:
    await store.commit_batch(
        BatchCommit(job=job(1), entity_type="user", add_escrows=[escrow("a", "source")])
    )
    log = functools.partial(dropped, at=T0, reason=OPERATOR_DROP)
    assert await store.drop_escrow("hr", "user", "a", log=log)
    assert not await store.drop_escrow("hr", "user", "a", log=log)  # none: nothing logged
    (found,) = await store.list_changes("hr", ChangeQuery())
    assert found.id is not None
    assert replace(found, id=None) == dropped(escrow("a", "source"), at=T0, reason=OPERATOR_DROP)
    assert await store.list_escrows("hr") == []


async def test_a_batch_logs_a_drop_only_of_an_escrow_still_there(store: Store) -> None:
    await store.commit_batch(
        BatchCommit(job=job(1), entity_type="user", add_escrows=[escrow("a"), escrow("b")])
    )
    log = functools.partial(dropped, at=T0, reason=OPERATOR_DROP)
    assert await store.drop_escrow("hr", "user", "a", log=log)  # meanwhile, by an operator
    drops = [dropped(escrow(o), at=T0, reason=SETTLED, job_id="job-2") for o in ("a", "b")]
    await store.commit_batch(
        BatchCommit(job=job(2), entity_type="user", remove_escrows=["a", "b"], changes=drops)
    )
    found = await store.list_changes("hr", ChangeQuery(actions=("drop",)))
    assert sorted((c.source_id, c.reason) for c in found) == [
        ("a", OPERATOR_DROP),
        ("b", SETTLED),
    ]


async def test_changes_under_keys_are_kept_once(store: Store) -> None:
    a, b, c = change("1", "create"), change("2", "update"), change("3", "delete")
    await store.commit_batch(
        BatchCommit(job=job(1), entity_type="user", keyed_changes=[("k/1", a), ("k/2", b)])
    )
    assert await store.add_changes([("k/1", a), ("k/2", b), ("k/3", c)]) == 1
    await store.commit_batch(
        BatchCommit(job=job(1), entity_type="user", keyed_changes=[("k/3", c)], changes=[a])
    )
    found = await store.list_changes("hr", ChangeQuery())
    assert sorted(x.source_id for x in found) == ["1", "1", "2", "3"]


async def test_the_log_of_a_deleted_integration_may_stay_until_pruned(store: Store) -> None:
    assert await store.logged_integrations() == []
    for ident in ("hr", "crm", "web"):
        c = replace(change("1", "create"), integration_id=ident)
        j = replace(job(1), id=f"job-{ident}", integration_id=ident)
        await store.commit_batch(BatchCommit(job=j, entity_type="user", changes=[c]))
    assert await store.logged_integrations() == ["crm", "hr", "web"]
    await store.delete_integration("hr", keep_changes=True)
    await store.delete_integration("web")
    assert await store.list_jobs(integration_id="hr") == ([], 0)
    assert [c.source_id for c in await store.list_changes("hr", ChangeQuery())] == ["1"]
    assert await store.logged_integrations() == ["crm", "hr"]
    assert await store.prune_changes("hr", T0 + timedelta(seconds=1), limit=10) == 1
    assert await store.logged_integrations() == ["crm"]


async def test_cleared_escrows_may_be_logged_in_the_same_transaction(store: Store) -> None:
    escrows = [escrow("a"), escrow("b", "source"), escrow("g", entity_type="group")]
    await store.commit_batch(BatchCommit(job=job(1), entity_type="user", add_escrows=escrows[:2]))
    await store.commit_batch(BatchCommit(job=job(2), entity_type="group", add_escrows=escrows[2:]))
    other = replace(escrow("o"), integration_id="crm")
    await store.commit_batch(
        BatchCommit(
            job=replace(job(3), integration_id="crm"), entity_type="user", add_escrows=[other]
        )
    )
    await store.clear_escrows("hr", log=functools.partial(dropped, at=T0, reason="reset"))
    found = await store.list_changes("hr", ChangeQuery())
    assert sorted((c.entity_type, c.source_id, c.kind, c.action) for c in found) == [
        ("group", "g", "target", "drop"),
        ("user", "a", "target", "drop"),
        ("user", "b", "source", "drop"),
    ]
    assert await store.list_escrows("hr") == [] and await store.list_escrows("crm") == [other]
    assert await store.list_changes("crm", ChangeQuery()) == []
