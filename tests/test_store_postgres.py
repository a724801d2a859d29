"""The PostgreSQL store beyond the Store contract: bounded transactions, a server that
goes away and comes back, migrations applied once, a database newer than the code, one
daemon per store, and its config (no password in the URL, in ``config show`` or logs)."""

from __future__ import annotations

import sys
import threading
import tomllib
from concurrent.futures import ThreadPoolExecutor
from dataclasses import replace
from datetime import UTC, datetime, timedelta
from pathlib import Path

import pytest
import trio

from sluiced.cli import main
from sluiced.config import load_config
from sluiced.errors import ConfigError
from sluiced.models import Job, JobStatus
from sluiced.store import StoreRefused, StoreUnavailable
from sluiced.store.errors import StoreInUse

from .pgserver import PgServer

psycopg = pytest.importorskip("psycopg", reason="psycopg is not installed")

from sluiced.store.postgres import MIGRATIONS, PostgresStore, Timeouts  # noqa: E402

T0 = datetime(2026, 1, 1, 12, 0, tzinfo=UTC)


def job(n: int) -> Job:
    return Job(
        id=f"job-{n}",
        integration_id="hr",
        type="full_sync",
        status=JobStatus.RUNNING,
        created_at=T0 + timedelta(seconds=n),
    )


async def test_every_connection_bounds_lock_waits_statements_and_idle_transactions(
    pg_url: str,
) -> None:
    store = PostgresStore(pg_url)
    try:
        settings = await store._db.call(
            lambda c: c.execute(
                "SELECT current_setting('lock_timeout'), current_setting('statement_timeout'),"
                " current_setting('idle_in_transaction_session_timeout')"
            ).fetchone()
        )
        assert settings == ("5s", "30s", "1min")
    finally:
        await store.aclose()


async def test_a_write_that_waits_on_a_lock_too_long_is_unavailable_and_the_store_goes_on(
    pg_url: str,
) -> None:
    store = PostgresStore(pg_url, timeouts=Timeouts(lock=0.3))
    try:
        await store.save_job(job(1))
        with psycopg.connect(pg_url) as other:  # a transaction that holds the job's row
            other.execute("SELECT 1 FROM sluiced.jobs WHERE id='job-1' FOR UPDATE")
            with pytest.raises(StoreUnavailable, match="lock timeout"):
                await store.save_job(replace(job(1), status=JobStatus.COMPLETED))
        await store.save_job(replace(job(1), status=JobStatus.COMPLETED))  # same connection
        assert (got := await store.get_job("job-1")) and got.status is JobStatus.COMPLETED
    finally:
        await store.aclose()


async def test_a_stopped_server_is_unavailable_naming_it_and_the_next_call_reconnects(
    pg_server: PgServer, pg_url: str
) -> None:
    store = PostgresStore(pg_url, password="hunter2-not-shown", node_id="node-a", exclusive=True)
    try:
        await store.save_job(job(1))
        pg_server.stop()
        with pytest.raises(StoreUnavailable) as info:
            await store.get_job("job-1")
        message = str(info.value)
        assert str(pg_server.socket_dir) in message and "hunter2" not in message
        with pytest.raises(StoreUnavailable):  # still down: nothing written
            await store.save_job(job(2))
        assert "hunter2" not in (await store.check() or "hunter2")

        pg_server.start()
        assert await store.get_job("job-1") == job(1)
        await store.save_job(job(2))
        assert await store.check() is None
        assert [j.id for j in (await store.list_jobs())[0]] == ["job-2", "job-1"]
        # The reconnected store holds the daemon's lock again.
        with pytest.raises(StoreInUse, match="node node-a"):
            PostgresStore(pg_url, node_id="node-b", exclusive=True)
    finally:
        await store.aclose()


async def test_a_daemon_whose_lock_another_node_took_while_the_server_was_down_cannot_write(
    pg_server: PgServer, pg_url: str
) -> None:
    first = PostgresStore(pg_url, node_id="node-a", exclusive=True)
    try:
        pg_server.stop()
        pg_server.start()
        second = PostgresStore(pg_url, node_id="node-b", exclusive=True)  # a has no session
        with pytest.raises(StoreUnavailable):  # a's connection was lost with the server
            await first.save_job(job(1))
        with pytest.raises(StoreUnavailable, match=r"another sluiced \(node node-b\)"):
            await first.save_job(job(1))
        await second.save_job(job(2))
        await second.aclose()
        # b is gone: a takes the lock again, once the server has ended b's session (it
        # does so a moment after the client closed it).
        with trio.fail_after(10):
            while True:
                try:
                    await first.save_job(job(1))
                    break
                except StoreUnavailable as exc:
                    assert "node node-b" in str(exc)
                    await trio.sleep(0.05)
        assert (await first.list_jobs())[1] == 2
    finally:
        await first.aclose()


async def test_two_stores_opening_at_once_apply_the_migrations_once(pg_url: str) -> None:
    barrier = threading.Barrier(4)

    def open_store(n: int) -> PostgresStore:
        barrier.wait()
        return PostgresStore(pg_url, node_id=f"node-{n}")

    with ThreadPoolExecutor(4) as pool:
        stores = list(pool.map(open_store, range(4)))
    try:
        with psycopg.connect(pg_url) as conn:
            rows = conn.execute("SELECT version FROM sluiced.schema_version").fetchall()
        assert rows == [(n,) for n in range(1, len(MIGRATIONS) + 1)]
        for n, store in enumerate(stores):
            await store.save_job(job(n))
        assert (await stores[0].list_jobs())[1] == 4
    finally:
        for store in stores:
            await store.aclose()


async def test_the_tables_live_in_the_configured_schema(pg_url: str) -> None:
    store = PostgresStore(pg_url, schema="sync_state")
    await store.save_job(replace(job(1), node="node-a"))
    await store.aclose()
    with psycopg.connect(pg_url) as conn:
        assert conn.execute("SELECT count(*) FROM sync_state.jobs").fetchone() == (1,)
        # Schema 4: the node that ran a job has a column of its own.
        assert conn.execute("SELECT node FROM sync_state.jobs").fetchone() == ("node-a",)
        assert conn.execute("SELECT to_regclass('sluiced.jobs')").fetchone() == (None,)


async def test_a_database_newer_than_this_sluiced_is_refused_saying_what_to_do(
    pg_url: str,
) -> None:
    await PostgresStore(pg_url).aclose()
    newer = len(MIGRATIONS) + 1
    with psycopg.connect(pg_url, autocommit=True) as conn:
        conn.execute("INSERT INTO sluiced.schema_version (version) VALUES (%s)", (newer,))
    with pytest.raises(StoreRefused) as info:
        PostgresStore(pg_url)
    message = str(info.value)
    assert f"schema version {newer}" in message
    assert f"knows versions up to {len(MIGRATIONS)}" in message
    assert "Upgrade sluiced on this node" in message
    with pytest.raises(StoreRefused, match=f"schema version {newer}"):
        PostgresStore(pg_url, read_only=True)


async def test_a_second_daemon_on_one_store_is_refused_until_the_first_is_gone(
    pg_url: str,
) -> None:
    first = PostgresStore(pg_url, node_id="node-a", exclusive=True)
    with pytest.raises(StoreInUse) as info:
        PostgresStore(pg_url, node_id="node-b", exclusive=True)
    assert "another sluiced (node node-a) is running on the store" in str(info.value)
    reader = PostgresStore(pg_url, read_only=True)  # `sluiced jobs` still reads
    assert (await reader.list_jobs())[1] == 0
    await reader.aclose()
    other = PostgresStore(pg_url, schema="other", exclusive=True)  # other tables: fine
    await other.aclose()
    await first.aclose()
    second = PostgresStore(pg_url, node_id="node-b", exclusive=True)
    await second.aclose()


# -- the config -------------------------------------------------------------------------

CONFIG = """
[daemon]
state_dir = "state"
{daemon}

[integrations.hr]
entity_types = ["user"]
[integrations.hr.source]
connector = "jsonl"
paths = {{ user = "in.jsonl" }}
[integrations.hr.target]
connector = "jsonl"
paths = {{ user = "out.jsonl" }}
"""


def config(tmp_path: Path, daemon: str) -> Path:
    path = tmp_path / "config.toml"
    path.write_text(CONFIG.format(daemon=daemon))
    return path


def problems(tmp_path: Path, daemon: str) -> list[str]:
    with pytest.raises(ConfigError) as info:
        load_config(config(tmp_path, daemon))
    return [str(p) for p in info.value.problems]


def test_the_store_defaults_to_sqlite_and_the_node_to_the_host_name(tmp_path: Path) -> None:
    import socket

    d = load_config(config(tmp_path, "")).daemon
    assert d.store is None and d.store_path == tmp_path / "state" / "sluiced.sqlite3"
    assert d.node_id == socket.gethostname() and d.store_schema == "sluiced"


def test_a_password_in_the_store_url_is_refused_without_showing_it(tmp_path: Path) -> None:
    for url in (
        "postgresql://sluiced:hunter2@db.example.org/sluiced",
        "postgresql://sluiced@db.example.org/sluiced?password=hunter2",
    ):
        (found,) = problems(tmp_path, f'store = "{url}"')
        assert "daemon.store" in found and "store_password_file" in found
        assert "hunter2" not in found
    (found,) = problems(tmp_path, 'store = "mysql://db.example.org/sluiced"')
    assert "a PostgreSQL URL like" in found
    found_all = problems(tmp_path, 'store_schema = "Bad-Name"\nnode_id = "a b"')
    assert any("daemon.store_schema" in p for p in found_all)
    assert any("daemon.node_id" in p for p in found_all)


def test_a_postgresql_store_without_psycopg_is_a_config_error_naming_the_extra(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setitem(sys.modules, "psycopg", None)
    (found,) = problems(tmp_path, 'store = "postgresql://sluiced@db.example.org/sluiced"')
    assert "psycopg" in found and "sluiced[postgresql]" in found


def test_config_show_shows_the_store_without_its_password(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch, capsys: pytest.CaptureFixture[str]
) -> None:
    monkeypatch.setenv("SLUICED_TEST_PG_PASSWORD", "hunter2")
    path = config(
        tmp_path,
        'store = "postgresql://sluiced@db.example.org:5433/sluiced"\n'
        'store_password_env = "SLUICED_TEST_PG_PASSWORD"\nnode_id = "node-a"',
    )
    d = load_config(path).daemon
    assert d.store_password is not None and d.store_password.reveal() == "hunter2"
    assert main(["config", "show", "-c", str(path)]) == 0
    out = capsys.readouterr().out
    assert "hunter2" not in out
    shown = tomllib.loads(out)["daemon"]
    assert shown["store"].endswith("@db.example.org:5433/sluiced")
    assert shown["store_password"] == "[redacted, from env:SLUICED_TEST_PG_PASSWORD]"
    assert shown["node_id"] == "node-a"


async def test_a_large_batch_is_copied_whole_and_the_last_of_one_key_wins(pg_url: str) -> None:
    from sluiced.models import Link
    from sluiced.store import BatchCommit
    from sluiced.store.postgres_base import COPY_FROM

    store = PostgresStore(pg_url)
    try:
        count = COPY_FROM * 3
        links = [Link(source_id=f"s{i:04d}", target_id=f"t{i}", hash="h") for i in range(count)]
        again = Link(source_id="s0000", target_id="t-last", hash="h2", data={"n": 1})
        batch = BatchCommit(job=job(1), entity_type="user", upsert_links=[*links, again])
        await store.commit_batch(batch)
        await store.commit_batch(batch)  # the staging table is empty again at each commit
        assert await store.count_links("hr", "user") == count
        got = await store.get_links("hr", "user", ["s0000", f"s{count - 1:04d}"])
        assert got["s0000"] == again and got[f"s{count - 1:04d}"] == links[-1]
    finally:
        await store.aclose()
