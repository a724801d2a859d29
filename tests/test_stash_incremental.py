"""The mirror equals Stash after every incremental pass, also for what Stash changes
without bumping any ``updated_at``: deletions, tag merges, marker deletions, children
edited on the parent tag. The fake Stash does these as Stash v0.30.1 does; the daemon
runs as a subprocess; after one incremental ``sync`` every table of the mirror is
compared with a fresh read of Stash."""

from __future__ import annotations

import sqlite3
import time
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest

from sluiced.plugins.stash.entities import BUILTIN_ENTITY_TYPES
from sluiced.plugins.stash.fake import FakeStash, Library, generate
from sluiced.plugins.stash.fake.server import SCHEMA

from .daemonproc import DaemonProc, daemons, first_job, wait_job
from .test_stash_e2e import (
    NOW,
    fake_http,
    library_view,
    mirror_view,
    mutate,
    run_sync,
    start_daemon,
)

pytestmark = pytest.mark.e2e
procs = pytest.fixture(daemons)


def stash_rows(fake: FakeStash) -> dict[str, set[tuple[Any, ...]]]:
    """Every row a mirror of *fake* holds, read afresh with the sync's own queries."""
    import graphql

    from sluiced.plugins.stash.fake.server import _resolver, _Root

    rows: dict[str, set[tuple[Any, ...]]] = {}
    for entity in BUILTIN_ENTITY_TYPES:
        q = entity.queries
        find = "find" + q.field[0].upper() + q.field[1:]
        result = graphql.graphql_sync(
            SCHEMA,
            q.matching,
            root_value=_Root(fake.library),
            variable_values={"filter": None},
            field_resolver=_resolver(fake.library),
        )
        assert not result.errors, result.errors
        assert result.data is not None
        for record in result.data[find][q.field]:
            for table, values in entity.rows(record).items():
                rows.setdefault(table, set()).update(values)
    return rows


def mirror_rows(path: Path) -> dict[str, set[tuple[Any, ...]]]:
    tables = {t for e in BUILTIN_ENTITY_TYPES for t in (e.table, *e.children)}
    tables |= {g[0] for e in BUILTIN_ENTITY_TYPES for g in e.grandchildren}
    with sqlite3.connect(path) as c:
        return {t: set(c.execute(f"SELECT * FROM {t}")) for t in sorted(tables)}


def assert_mirror_equals_stash(fake: FakeStash, path: Path) -> None:
    want, have = stash_rows(fake), mirror_rows(path)
    for table in sorted(have):
        assert have[table] == want.get(table, set()), (
            f"{table}: only in the mirror {sorted(have[table] - want.get(table, set()))[:5]}, "
            f"only in Stash {sorted(want.get(table, set()) - have[table])[:5]}"
        )
    assert mirror_view(path) == library_view(fake.library)


@pytest.fixture
def stash() -> Iterator[FakeStash]:
    with FakeStash(
        generate(performers=30, tags=25, studios=8, scenes=150, tz="-08:00", now=NOW),
        api_key="stash-key",
    ) as fake:
        yield fake


def synced(fake: FakeStash, root: Path, procs: list[DaemonProc]) -> DaemonProc:
    """A daemon whose first (full) sync is done, and the fake's clock a day on."""
    d = start_daemon(fake, root, procs)
    job = wait_job(d.client(), first_job(d.client(), "stash")["id"])
    assert job["status"] == "completed", job
    assert_mirror_equals_stash(fake, root / "mirror.sqlite3")
    mutate(fake, op="clock", now="2025-06-02T12:00:00+00:00")
    return d


def incremental(d: DaemonProc) -> dict[str, Any]:
    job = run_sync(d)
    assert job["status"] == "completed", job
    started = [m["message"] for m in job["logs"] if m["message"].endswith("pass started")]
    assert started == [f"{k}: incremental pass started" for k in ("performer", "tag", "studio")] + [
        "scene: incremental pass started"
    ]
    return job


def requests(fake: FakeStash) -> dict[str, Any]:
    return fake_http().get(f"{fake.url}/fake/stats").json()  # type: ignore[no-any-return]


def reset(fake: FakeStash) -> None:
    fake_http().post(f"{fake.url}/fake/stats/reset")


def linked_tag(lib: Library, name: str) -> str:
    """A new tag (before the first sync), with a parent and a child, linked from scenes,
    markers, a performer and a studio, and no marker's primary tag (so Stash lets it be
    deleted)."""
    t = lib.tables
    tag = lib.add("tag", name=name, parents=["1"], aliases=[f"{name} alias"])
    lib.tables["tag"]["2"]["parents"].append(tag)
    for scene in list(t["scene"].values())[:5]:
        scene["tags"].append(tag)
        for marker in scene["scene_markers"]:
            marker["tags"].append(tag)
    next(iter(t["performer"].values()))["tags"].append(tag)
    next(iter(t["studio"].values()))["tags"].append(tag)
    return tag


def test_deletions_of_every_kind(stash: FakeStash, tmp_path: Path, procs: list[DaemonProc]) -> None:
    lib = stash.library
    tag = linked_tag(lib, "doomed")
    d = synced(stash, tmp_path, procs)
    scene = next(i for i, s in lib.tables["scene"].items() if s["scene_markers"] and s["files"])
    performer = next(iter(lib.tables["scene"][next(iter(lib.tables["scene"]))]["performers"]), "3")
    studio = next(i for i, s in lib.tables["studio"].items() if s["parent_studio"])
    for kind, ident in (
        ("scene", scene),
        ("performer", performer),
        ("studio", studio),
        ("tag", tag),
    ):
        mutate(stash, op="delete", kind=kind, id=ident)
    job = incremental(d)
    assert job["stats"]["deleted"] == 4
    assert_mirror_equals_stash(stash, tmp_path / "mirror.sqlite3")
    with sqlite3.connect(tmp_path / "mirror.sqlite3") as c:
        assert c.execute("SELECT count(*) FROM files WHERE scene_id=?", (scene,)).fetchone() == (0,)
        assert c.execute("SELECT count(*) FROM markers WHERE scene_id=?", (scene,)).fetchone() == (
            0,
        )


def test_a_tag_merge(stash: FakeStash, tmp_path: Path, procs: list[DaemonProc]) -> None:
    lib = stash.library
    t = lib.tables
    source = linked_tag(lib, "merged")
    d = synced(stash, tmp_path, procs)
    # A second source: the primary tag of a marker, with children and stash ids.
    primary = [m["primary_tag"] for s in t["scene"].values() for m in s["scene_markers"]]
    other = next(
        p for p in primary if p != source and lib.children_of(p) and t["tag"][p]["stash_ids"]
    )
    destination = next(
        i for i in t["tag"] if i not in (source, other) and not t["tag"][i]["parents"]
    )
    assert any(source in s["tags"] for s in t["studio"].values()) or any(
        other in s["tags"] for s in t["studio"].values()
    )
    before = t["tag"][destination]["updated_at"]
    mutate(stash, op="merge_tags", sources=[source, other], destination=destination)
    dest = t["tag"][destination]
    assert dest["updated_at"] == before and {"merged", "merged alias"} <= set(dest["aliases"])
    assert any(s["stash_id"] for s in dest["stash_ids"]) and lib.children_of(destination)
    incremental(d)
    assert_mirror_equals_stash(stash, tmp_path / "mirror.sqlite3")


def test_a_deleted_marker(stash: FakeStash, tmp_path: Path, procs: list[DaemonProc]) -> None:
    d = synced(stash, tmp_path, procs)
    scene = next(s for s in stash.library.tables["scene"].values() if s["scene_markers"])
    before = scene["updated_at"]
    mutate(
        stash, op="delete_marker", scene_id=scene["id"], marker_id=scene["scene_markers"][0]["id"]
    )
    assert stash.library.tables["scene"][scene["id"]]["updated_at"] == before
    incremental(d)
    assert_mirror_equals_stash(stash, tmp_path / "mirror.sqlite3")


def test_children_edited_on_the_parent_tag(
    stash: FakeStash, tmp_path: Path, procs: list[DaemonProc]
) -> None:
    d = synced(stash, tmp_path, procs)
    lib = stash.library
    parent = next(i for i in lib.tables["tag"] if len(lib.children_of(i)) >= 2)
    dropped, *kept = lib.children_of(parent)
    added = next(
        i
        for i in lib.tables["tag"]
        if i != parent
        and i not in lib.children_of(parent)
        and int(i) > int(parent)  # a later tag: no cycle
    )
    stamps = {i: lib.tables["tag"][i]["updated_at"] for i in (dropped, added)}
    mutate(stash, op="set_children", id=parent, children=[*kept, added])
    assert {i: lib.tables["tag"][i]["updated_at"] for i in (dropped, added)} == stamps
    incremental(d)
    assert_mirror_equals_stash(stash, tmp_path / "mirror.sqlite3")


def test_detection_costs_nothing_when_nothing_changed(
    stash: FakeStash, tmp_path: Path, procs: list[DaemonProc]
) -> None:
    d = synced(stash, tmp_path, procs)
    reset(stash)
    incremental(d)
    unchanged = requests(stash)
    assert unchanged["requests"] == 11, unchanged["byOperation"]
    # One deleted scene: counts of 16 ranges of ids (in one request), the ids of the one
    # range that differs, and one confirmation.
    mutate(stash, op="delete", kind="scene", id="20")
    reset(stash)
    incremental(d)
    one = requests(stash)
    more = {k: v for k, v in one["byOperation"].items() if k not in unchanged["byOperation"]}
    assert more == {"SceneRangeCounts": 1, "SceneRangeIds": 1, "Confirm": 1}, one["byOperation"]
    assert one["requests"] == 14
    assert_mirror_equals_stash(stash, tmp_path / "mirror.sqlite3")


def test_an_empty_answer_deletes_nothing(
    stash: FakeStash, tmp_path: Path, procs: list[DaemonProc]
) -> None:
    """Stash answering no scenes at all (a wrong database, a half-restored backup) while
    the mirror holds some: the pass refuses, the mirror keeps them, the other types run."""
    d = synced(stash, tmp_path, procs)
    stash.library.tables["scene"].clear()
    stash.library._scene_ids = None
    job = run_sync(d)
    errors = [m["message"] for m in job["logs"] if m["level"] == "error"]
    assert any(
        "Stash answered no scenes while the mirror holds 150; refusing to delete them" in e
        for e in errors
    ), errors
    with sqlite3.connect(tmp_path / "mirror.sqlite3") as c:
        assert c.execute("SELECT count(*) FROM scenes").fetchone() == (150,)


def test_everything_at_once_then_quiet_again(
    stash: FakeStash, tmp_path: Path, procs: list[DaemonProc]
) -> None:
    """All of it in one window, with ordinary edits and new objects: one incremental
    pass, mirror == Stash; the pass after sends only the 11 requests again."""
    lib = stash.library
    merged, doomed = linked_tag(lib, "merged"), linked_tag(lib, "doomed")
    d = synced(stash, tmp_path, procs)
    mutate(stash, op="add", kind="tag", name="new", parents=[merged])
    mutate(stash, op="merge_tags", sources=[merged], destination="3")
    mutate(stash, op="delete", kind="tag", id=doomed)
    mutate(stash, op="delete", kind="performer", id="4")
    mutate(stash, op="delete", kind="studio", id="2")
    mutate(stash, op="update", kind="scene", id="8", title="edited")
    for scene in list(lib.tables["scene"].values())[20:23]:
        if scene["scene_markers"]:
            mutate(
                stash,
                op="delete_marker",
                scene_id=scene["id"],
                marker_id=scene["scene_markers"][-1]["id"],
            )
    mutate(stash, op="delete", kind="scene", id="30")
    mutate(stash, op="add", kind="scene", title="new scene", tags=["3"])
    mutate(stash, op="set_children", id="6", children=["9"])
    incremental(d)
    assert_mirror_equals_stash(stash, tmp_path / "mirror.sqlite3")
    reset(stash)
    incremental(d)
    assert requests(stash)["requests"] == 11


def test_many_scattered_deletions_read_every_id_instead(
    tmp_path: Path, procs: list[DaemonProc]
) -> None:
    """Scenes and markers deleted all over the library: narrowing by counts would take
    many requests, so the ids are read (a page of 10,000 a request) and compared. 1,000
    scenes are enough: 44 deletions and 75 of markers, spread over every range."""
    with FakeStash(
        generate(performers=30, tags=25, studios=8, scenes=1000, now=NOW), api_key="stash-key"
    ) as fake:
        d = synced(fake, tmp_path, procs)
        scenes = fake.library.tables["scene"]
        for ident in [str(i) for i in range(7, 1000, 23)]:
            mutate(fake, op="delete", kind="scene", id=ident)
        with_markers = [s for s in scenes.values() if s["scene_markers"]][::8]
        for scene in with_markers:
            marker = scene["scene_markers"][0]["id"]
            mutate(fake, op="delete_marker", scene_id=scene["id"], marker_id=marker)
        assert len(with_markers) > 64
        reset(fake)
        incremental(d)
        sent = requests(fake)["byOperation"]
        assert sent["SceneIdsPage"] == 1 and sent["MarkerIdsPage"] == 1, sent
        assert_mirror_equals_stash(fake, tmp_path / "mirror.sqlite3")


def test_a_merge_whose_rereads_the_daemon_died_in(
    stash: FakeStash, tmp_path: Path, procs: list[DaemonProc]
) -> None:
    """kill -9 after the merged tag's deletion committed, while the tags having its name
    as an alias are asked for: the job resumed at the restart does the re-reads the
    deletion owed (Stash's counts are equal again: they alone would find nothing)."""
    lib = stash.library
    source = linked_tag(lib, "merged")
    d = synced(stash, tmp_path, procs)
    destination = next(
        i for i in lib.tables["tag"] if i != source and not lib.tables["tag"][i]["parents"]
    )
    mutate(stash, op="merge_tags", sources=[source], destination=destination)
    mutate(stash, op="hold", operations=["TagsByAlias"])
    r = d.client().post("/api/sync", json={})
    assert r.status_code == 202, r.text
    deadline = time.monotonic() + 60
    while not requests(stash)["byOperation"].get("TagsByAlias"):
        assert time.monotonic() < deadline, "the sync never asked for the merged tag's aliases"
        time.sleep(0.01)
    d.kill()
    mutate(stash, op="hold", operations=[])
    d.start()
    job = wait_job(d.client(), r.json()["id"])
    assert job["status"] == "completed", job
    assert_mirror_equals_stash(stash, tmp_path / "mirror.sqlite3")
