"""The Stash mirror in PostgreSQL: what only it has (the ``dsn`` settings, the types of
its columns, its migration under a lock, a lost connection), and another application
reading it with plain SQL while a sync writes. What holds for both databases is tested
once for each (``mirror_db`` in ``test_stash_mirror.py``, ``test_stash_sync.py``,
``test_keyed_exactly_once.py``)."""

from __future__ import annotations

import json
import threading
from pathlib import Path
from typing import Any

import pytest
import trio

from sluiced.connectors import ConnectorContext
from sluiced.errors import TransientError
from sluiced.plugins.stash import StashMirrorConnector
from sluiced.plugins.stash.entities import BUILTIN_ENTITY_TYPES
from sluiced.plugins.stash.fake import generate
from sluiced.plugins.stash.mirror import Mirror
from sluiced.plugins.stash.schema import MirrorTooNew
from sluiced.plugins.stash.target import MirrorTarget
from sluiced.tables import Problems, TableReader

from .mirrordb import Backend
from .test_stash_sync import T0, Env

psycopg = pytest.importorskip("psycopg")


def parse(tmp_path: Path, table: dict[str, Any]) -> tuple[Any, list[tuple[str, str]]]:
    problems = Problems("config.toml")
    reader = TableReader(table, path="t", problems=problems, base_dir=tmp_path)
    settings = StashMirrorConnector().parse_settings(reader)
    return settings, [(p.key, p.found) for p in problems.items]


def test_dsn_or_path_and_never_a_password_in_the_url(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    (tmp_path / "pw").write_text("s3cret\n")
    settings, found = parse(
        tmp_path, {"dsn": "postgresql://sluiced@db/media", "password_file": "pw"}
    )
    assert not found and settings.path is None and settings.schema == "stash"
    assert settings.password.reveal() == "s3cret"
    assert parse(tmp_path, {"path": "m.sqlite3"})[0].dsn is None
    assert parse(tmp_path, {"page_size": 5})[1] == [("t.path", "nothing")]
    both = {"path": "m.sqlite3", "dsn": "postgresql://db/media"}
    assert parse(tmp_path, both)[1] == [("t.path", "both path and dsn")]
    assert parse(tmp_path, {"dsn": "postgresql://u:pw@db/media"})[1] == [
        ("t.dsn", "a URL with a password in it (not shown)")
    ]
    assert parse(tmp_path, {"dsn": "postgresql://db/m?password=pw"})[1][0][0] == "t.dsn"
    assert parse(tmp_path, {"dsn": "mysql://db/m"})[1] == [("t.dsn", '"mysql://db/m"')]
    assert parse(tmp_path, {"dsn": "postgresql://db/m?nonsense=1"})[1][0][1].startswith(
        "a URL libpq cannot read ("
    )
    assert parse(tmp_path, {"dsn": "postgresql://db/m", "schema": "Bad-Name"})[1] == [
        ("t.schema", '"Bad-Name"')
    ]
    assert parse(tmp_path, {"dsn": "postgresql://db/m", "password": "inline"})[1][0][0] == (
        "t.password"
    )


async def test_the_connector_opens_a_mirror_in_postgresql(tmp_path: Path, pg_url: str) -> None:
    settings, found = parse(tmp_path, {"dsn": pg_url, "schema": "media"})
    assert not found
    target = StashMirrorConnector().open_target(
        settings, ConnectorContext(integration_id="s", state_dir=tmp_path)
    )
    assert isinstance(target, MirrorTarget)
    assert await target.validate() == (
        f"mirror {pg_url} (schema media): 0 performers, 0 tags, 0 studios, 0 scenes"
    )
    await target.aclose()
    with psycopg.connect(pg_url) as conn:
        tables = {
            r[0] for r in conn.execute("SELECT tablename FROM pg_tables WHERE schemaname='media'")
        }
    assert {"scenes", "files", "sync_state", "mirror_schema", "tag_parents"} <= tables


def test_columns_are_typed_and_queries_agree_with_sqlite(
    tmp_path: Path, pg_url: str, autojump_clock: trio.abc.Clock
) -> None:
    lib = generate(performers=10, tags=10, studios=3, scenes=40, now=T0)
    envs = {}
    for backend in (Backend(), Backend(pg_url)):
        env = Env(tmp_path / str(backend.postgres), lib, backend=backend)
        env.tmp.mkdir()
        trio.run(env.run, env.driver(), env.job("sync"), clock=autojump_clock)
        envs[backend.postgres] = env
    pg = envs[True]
    with psycopg.connect(pg_url) as conn:
        types = dict(
            conn.execute(
                "SELECT column_name, data_type FROM information_schema.columns"
                " WHERE table_schema=%s AND table_name='files'",
                (Backend.schema(pg.tmp),),
            ).fetchall()
        )
    assert (types["id"], types["duration"], types["is_primary"], types["path"]) == (
        "bigint",
        "double precision",
        "boolean",
        "text",
    )
    for sql in (
        "SELECT s.id, f.path FROM scenes s JOIN files f ON f.scene_id = s.id AND f.is_primary"
        " ORDER BY f.path",
        "SELECT name FROM tags WHERE NOT favorite ORDER BY name",
        "SELECT id, title, rating100, organized FROM scenes WHERE organized ORDER BY id",
        "SELECT key, value, length(updated_at) FROM sync_state ORDER BY key",
        "SELECT id, duration, frame_rate FROM files ORDER BY id",
    ):
        assert pg.query(sql) == envs[False].query(sql), sql


def test_nodes_opening_a_new_mirror_at_once_migrate_it_once(tmp_path: Path, pg_url: str) -> None:
    backend = Backend(pg_url)
    errors: list[BaseException] = []

    def open_one() -> None:
        async def main() -> None:
            mirror = Mirror(backend.db(tmp_path), BUILTIN_ENTITY_TYPES)
            try:
                assert await mirror.count("scene") == 0
            finally:
                await mirror.aclose()

        try:
            trio.run(main)
        except BaseException as exc:
            errors.append(exc)

    threads = [threading.Thread(target=open_one) for _ in range(4)]
    for t in threads:
        t.start()
    for t in threads:
        t.join()
    assert not errors
    assert backend.query(tmp_path, "SELECT entity, version FROM mirror_schema ORDER BY entity") == [
        ("change_outbox", 1),
        ("performer", 1),
        ("scene", 2),
        ("studio", 1),
        ("tag", 1),
    ]


async def test_a_newer_mirror_is_refused_naming_it_without_its_password(
    tmp_path: Path, pg_url: str
) -> None:
    from sluiced.plugins.stash.pgmirror import PostgresMirrorDb

    backend = Backend(pg_url)
    mirror = Mirror(backend.db(tmp_path), BUILTIN_ENTITY_TYPES)
    await mirror.count("scene")
    await mirror.aclose()
    with psycopg.connect(pg_url, autocommit=True) as conn:
        conn.execute(
            f"UPDATE {Backend.schema(tmp_path)}.mirror_schema SET version=3 WHERE entity='scene'"
        )
    db = PostgresMirrorDb(pg_url, password="hunter2", schema=Backend.schema(tmp_path))
    newer = Mirror(db, BUILTIN_ENTITY_TYPES)
    with pytest.raises(
        MirrorTooNew, match=r"\(schema m_\w+\): the mirror's scene tables are version 3"
    ) as err:
        await newer.count("scene")
    assert "hunter2" not in str(err.value)
    await newer.aclose()


async def test_a_lost_connection_fails_the_call_and_the_next_one_connects_again(
    tmp_path: Path, pg_url: str
) -> None:
    backend = Backend(pg_url)
    mirror = Mirror(backend.db(tmp_path), BUILTIN_ENTITY_TYPES)
    await mirror.save_state({"k": "1"})
    with psycopg.connect(pg_url, autocommit=True) as conn:
        conn.execute(
            "SELECT pg_terminate_backend(pid) FROM pg_stat_activity"
            " WHERE application_name = 'sluiced stash-mirror'"
        )
    with pytest.raises(TransientError, match=r"^cannot write the mirror postgresql://"):
        await mirror.save_state({"k": "2"})
    assert await mirror.state("k") == {"k": "1"}  # nothing of the failed write
    await mirror.save_state({"k": "3"})
    assert await mirror.state("k") == {"k": "3"}
    await mirror.aclose()


async def test_another_application_sees_only_committed_pages_while_a_sync_runs(
    tmp_path: Path, pg_url: str, autojump_clock: trio.abc.Clock
) -> None:
    """Another connection, reading with plain SQL, sees the rows of a page and the
    job's checkpoint that commits them together, or neither: inside each of the sync's
    transactions it still sees what the one before committed."""
    env = Env(
        tmp_path,
        generate(performers=10, tags=10, studios=3, scenes=200, now=T0),
        backend=Backend(pg_url),
    )
    reader = psycopg.connect(
        pg_url, autocommit=True, options=f"-c search_path={Backend.schema(tmp_path)}"
    )

    def look() -> tuple[Any, ...]:
        row = reader.execute(
            "SELECT (SELECT count(*) FROM scenes), (SELECT count(*) FROM files),"
            " (SELECT count(*) FROM performers), (SELECT value FROM sync_state"
            " WHERE key = 'job:job-1')"
        ).fetchone()
        assert row is not None
        return tuple(row)

    driver = env.driver()
    write = driver.mirror._write
    committed: list[tuple[Any, ...]] = []

    async def watched(fn: Any) -> Any:
        if driver.mirror._thread is None:
            await driver.mirror.count("scene")  # opened (and created) first
        before = look()
        assert not committed or before == committed[-1]

        def inside(conn: Any) -> Any:
            result = fn(conn)
            assert look() == before  # written, not committed: not seen
            return result

        result = await write(inside)
        committed.append(look())
        return result

    driver.mirror._write = watched  # type: ignore[method-assign]
    try:
        await env.run(driver, env.job("sync"))
    finally:
        reader.close()
    scenes = [c[0] for c in committed]
    assert scenes[-1] == 200 and set(scenes) <= {0, 40, 80, 120, 160, 200}
    assert len(set(scenes)) == 6  # each page seen on its own
    positions = [json.loads(c[3]) for c in committed if c[3] is not None]
    assert len({json.dumps(p, sort_keys=True) for p in positions}) > 5
