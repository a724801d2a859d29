"""The local mirror: rows of real-shaped Stash records, replaced whole, deleted with
Stash's cascade, and committed together with the sync state."""

from __future__ import annotations

import sqlite3
from collections.abc import AsyncIterator
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

import pytest

from sluiced.plugins.stash.client import StashClient
from sluiced.plugins.stash.entities import BUILTIN_ENTITY_TYPES
from sluiced.plugins.stash.fake import FakeStash, generate
from sluiced.plugins.stash.mirror import Mirror
from sluiced.plugins.stash.queries import ENTITY_QUERIES

from .mirrordb import Backend, read

try:
    import psycopg
except ImportError:
    psycopg = None  # type: ignore[assignment]

NOW = datetime(2025, 6, 1, tzinfo=UTC)


@pytest.fixture
async def library() -> AsyncIterator[dict[str, list[dict[str, Any]]]]:
    with FakeStash(generate(performers=20, tags=15, studios=6, scenes=40, now=NOW)) as fake:
        async with StashClient(fake.url) as c:
            out = {}
            for kind, q in ENTITY_QUERIES.items():
                out[kind] = (await c.execute(q.matching, {}))[f"find{q.field.capitalize()}"][
                    q.field
                ]
            yield out


@pytest.fixture
async def mirror(tmp_path: Path, mirror_db: Backend) -> AsyncIterator[Mirror]:
    m = Mirror(mirror_db.db(tmp_path), BUILTIN_ENTITY_TYPES)
    yield m
    await m.aclose()


def query(m: Mirror, sql: str, *args: Any) -> list[tuple[Any, ...]]:
    return read(m.db, sql, *args)


async def fill(m: Mirror, library: dict[str, list[dict[str, Any]]]) -> None:
    for kind in ("performer", "tag", "studio", "scene"):
        await m.apply(kind, library[kind], {f"watermark:{kind}": "w"})


async def test_a_library_becomes_rows(
    mirror: Mirror, library: dict[str, list[dict[str, Any]]]
) -> None:
    await fill(mirror, library)
    assert [await mirror.count(k) for k in ("performer", "tag", "studio", "scene")] == [
        20,
        15,
        6,
        40,
    ]
    scene = next(
        s for s in library["scene"] if s["performers"] and s["tags"] and s["scene_markers"]
    )
    sid = int(scene["id"])
    assert {
        r[0]
        for r in query(mirror, "SELECT performer_id FROM scene_performers WHERE scene_id=?", sid)
    } == {int(p["id"]) for p in scene["performers"]}
    assert query(mirror, "SELECT basename FROM files WHERE scene_id=?", sid) == [
        (scene["files"][0]["basename"],)
    ]
    assert (
        len(
            query(
                mirror,
                "SELECT * FROM file_fingerprints WHERE file_id=?",
                int(scene["files"][0]["id"]),
            )
        )
        == 2
    )
    assert len(query(mirror, "SELECT * FROM markers WHERE scene_id=?", sid)) == len(
        scene["scene_markers"]
    )
    multi = next(t for t in library["tag"] if len(t["parents"]) >= 2)
    assert len(query(mirror, "SELECT * FROM tag_parents WHERE tag_id=?", int(multi["id"]))) == len(
        multi["parents"]
    )
    assert await mirror.state("watermark:") == {
        f"watermark:{k}": "w" for k in ("performer", "tag", "studio", "scene")
    }


async def test_applying_again_changes_nothing_and_changes_replace_whole(
    mirror: Mirror, library: dict[str, list[dict[str, Any]]]
) -> None:
    await fill(mirror, library)
    before = query(mirror, "SELECT count(*) FROM scene_tags UNION ALL SELECT count(*) FROM markers")
    await fill(mirror, library)
    assert (
        query(mirror, "SELECT count(*) FROM scene_tags UNION ALL SELECT count(*) FROM markers")
        == before
    )
    scene = dict(next(s for s in library["scene"] if s["tags"] and s["scene_markers"]))
    scene.update(
        tags=[],
        scene_markers=[],
        files=[{**scene["files"][0], "basename": "moved.mp4", "fingerprints": []}],
    )
    await mirror.apply("scene", [scene])
    sid = int(scene["id"])
    assert query(mirror, "SELECT count(*) FROM scene_tags WHERE scene_id=?", sid) == [(0,)]
    assert query(mirror, "SELECT count(*) FROM markers WHERE scene_id=?", sid) == [(0,)]
    assert query(mirror, "SELECT basename FROM files WHERE scene_id=?", sid) == [("moved.mp4",)]
    assert query(
        mirror,
        "SELECT count(*) FROM file_fingerprints WHERE file_id=?",
        int(scene["files"][0]["id"]),
    ) == [(0,)]


async def test_deletions_cascade_as_in_stash(
    mirror: Mirror, library: dict[str, list[dict[str, Any]]]
) -> None:
    await fill(mirror, library)
    studio = next(s for s in library["scene"] if s["studio"])["studio"]["id"]
    assert await mirror.delete("studio", [int(studio)]) == 1
    assert query(mirror, "SELECT count(*) FROM scenes WHERE studio_id=?", int(studio)) == [(0,)]
    assert query(mirror, "SELECT count(*) FROM scenes") == [(40,)]  # scenes stay, unlinked
    tag = next(m for s in library["scene"] for m in s["scene_markers"])["primary_tag"]["id"]
    await mirror.delete("tag", [int(tag)])
    for table, column in (
        ("scene_tags", "tag_id"),
        ("tag_parents", "parent_id"),
        ("markers", "primary_tag_id"),
        ("performer_tags", "tag_id"),
    ):
        assert query(mirror, f"SELECT count(*) FROM {table} WHERE {column}=?", int(tag)) == [(0,)]
    scene = library["scene"][0]
    await mirror.delete("scene", [int(scene["id"])])
    assert query(mirror, "SELECT count(*) FROM files WHERE scene_id=?", int(scene["id"])) == [(0,)]


async def test_rows_and_state_commit_together(
    mirror: Mirror, library: dict[str, list[dict[str, Any]]]
) -> None:
    await mirror.apply("tag", library["tag"][:5], {"cursor:job": "5"})
    # A null name breaks NOT NULL on the last insert, after the page's other rows were
    # written inside the transaction: all of it rolls back, the state included.
    broken = [*library["tag"][5:10], {"id": "99", "name": None}]
    refused = (
        (sqlite3.IntegrityError, psycopg.IntegrityError) if psycopg else sqlite3.IntegrityError
    )
    with pytest.raises(refused):
        await mirror.apply("tag", broken, {"cursor:job": "10"})
    assert await mirror.count("tag") == 5 and await mirror.state("cursor:") == {"cursor:job": "5"}


async def test_ids_and_missing(mirror: Mirror, library: dict[str, list[dict[str, Any]]]) -> None:
    await mirror.apply("performer", library["performer"])
    ids = await mirror.ids("performer", limit=7)
    assert ids == sorted(int(p["id"]) for p in library["performer"])[:7]
    assert (
        await mirror.ids("performer", after=ids[-1], limit=100)
        == sorted(int(p["id"]) for p in library["performer"])[7:]
    )
    assert await mirror.missing("performer", [1, 2, 999, 1000]) == [999, 1000]


async def test_a_plugins_entity_type_joins_the_mirror(tmp_path: Path) -> None:
    """Third-party entity types (here: groups) come through the registry to the mirror."""
    from dataclasses import replace as dc_replace

    from sluiced.connectors import ConnectorContext
    from sluiced.plugins.stash import StashMirrorConnector
    from sluiced.plugins.stash.entities import TAG
    from sluiced.plugins.stash.queries import confirm_query
    from sluiced.plugins.stash.target import MirrorTarget

    group = dc_replace(
        TAG,
        name="group",
        table="groups",
        ddl=("CREATE TABLE IF NOT EXISTS groups (id INTEGER PRIMARY KEY, name TEXT NOT NULL)",),
        children=(),
        references=(),
    )
    connector = StashMirrorConnector()
    ctx = ConnectorContext(
        integration_id="s", state_dir=tmp_path, entity_types={"group": group, "other": object()}
    )
    driver = connector.open_target(connector.parse_settings(_reader(tmp_path)), ctx)
    assert isinstance(driver, MirrorTarget) and set(driver.mirror.entity_types) == {
        "performer",
        "tag",
        "studio",
        "scene",
        "group",
    }
    assert await driver.mirror.count("group") == 0  # its table exists
    await driver.aclose()
    assert 'findGroup(id: "3")' in confirm_query("group", ["3"])


def _reader(tmp_path: Path) -> Any:
    from sluiced.tables import Problems, TableReader

    return TableReader({"path": "m.sqlite3"}, path="t", problems=Problems("c"), base_dir=tmp_path)


async def test_files_keep_the_primary_one_their_folder_and_zip_file(
    mirror: Mirror, library: dict[str, list[dict[str, Any]]]
) -> None:
    await fill(mirror, library)
    expected = {
        int(f["id"]): (
            int(s["id"]),
            int(n == 0),
            int(f["parent_folder"]["id"]),
            f["parent_folder"]["path"],
            int(f["zip_file"]["id"]) if f["zip_file"] else None,
            f["zip_file"]["path"] if f["zip_file"] else None,
        )
        for s in library["scene"]
        for n, f in enumerate(s["files"])
    }
    rows = query(
        mirror,
        "SELECT id, scene_id, is_primary, parent_folder_id, parent_folder_path, zip_file_id,"
        " zip_file_path FROM files",
    )
    assert {r[0]: r[1:] for r in rows} == expected
    values = list(expected.values())
    assert sum(v[1] for v in values) == 40 and len(values) > 40  # one primary a scene
    assert any(v[4] for v in values) and len({v[3] for v in values}) > 2  # zips, folders
    zipped = next(v for v in values if v[5])
    assert zipped[3] == zipped[5]  # inside a zip: the zip is the parent folder's path
