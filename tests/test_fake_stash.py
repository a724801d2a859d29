"""The fake Stash behaves like Stash where it matters, and serves sluiced's queries."""

from __future__ import annotations

from collections.abc import Iterator
from datetime import UTC, datetime

import httpx
import pytest

from sluiced.errors import CredentialsError, TransientError
from sluiced.plugins.stash.client import StashClient, StashQueryError
from sluiced.plugins.stash.fake import FakeStash, Faults, generate
from sluiced.plugins.stash.queries import ENTITY_QUERIES, SCENE_IDS_CHANGED, SCENES_PAGE
from sluiced.tables import Secret

NOW = datetime(2025, 6, 1, 12, 0, tzinfo=UTC)


@pytest.fixture
def stash() -> Iterator[FakeStash]:
    with FakeStash(
        generate(performers=40, tags=30, studios=8, scenes=120, tz="-08:00", now=NOW),
        api_key="secret-key",
        faults=Faults(),
    ) as fake:
        yield fake


def client(fake: FakeStash, key: str = "secret-key") -> StashClient:
    return StashClient(fake.url, api_key=Secret(key, "test"), timeout=2)


async def mutate(fake: FakeStash, **body: object) -> object:
    async with httpx.AsyncClient(timeout=10) as http:
        return (await http.post(f"{fake.url}/fake/mutate", json=body)).json()["result"]


async def test_version_and_all_entities(stash: FakeStash) -> None:
    c = client(stash)
    assert await c.version() == "v0.30.1"
    data = await c.execute(ENTITY_QUERIES["performer"].matching, {"filter": None})
    assert data["findPerformers"]["count"] == 40 and len(data["findPerformers"]["performers"]) == 40
    tags = (await c.execute(ENTITY_QUERIES["tag"].matching, {}))["findTags"]["tags"]
    assert [int(t["id"]) for t in tags] == sorted(int(t["id"]) for t in tags)
    assert any(len(t["parents"]) >= 2 for t in tags)  # several parents per tag
    studios = (await c.execute(ENTITY_QUERIES["studio"].matching, {}))["findStudios"]["studios"]
    assert any(s["parent_studio"] for s in studios)
    await c.aclose()


async def test_timestamps_are_local_text_to_the_second(stash: FakeStash) -> None:
    c = client(stash)
    data = await c.execute(ENTITY_QUERIES["scene"].newest)
    assert data["findScenes"]["scenes"][0]["updated_at"] == "2025-06-01T04:00:00-08:00"
    with FakeStash(generate(scenes=1, now=NOW)) as utc:
        async with StashClient(utc.url) as plain:
            d = await plain.execute(ENTITY_QUERIES["scene"].newest)
        assert d["findScenes"]["scenes"][0]["updated_at"] == "2025-06-01T12:00:00Z"
    await c.aclose()


async def test_per_page_defaults_to_25_and_scenes_are_unsorted(stash: FakeStash) -> None:
    c = client(stash)
    query = "query { findScenes { count scenes { id } } }"
    first = (await c.execute(query))["findScenes"]
    assert first["count"] == 120 and len(first["scenes"]) == 25
    orders = {
        tuple(s["id"] for s in (await c.execute(query))["findScenes"]["scenes"]) for _ in range(3)
    }
    assert len(orders) > 1  # no ORDER BY: offset paging over this is unstable
    await c.aclose()


async def test_keyset_pages_cover_every_scene_once(stash: FakeStash) -> None:
    c = client(stash)
    after, seen = 0, []
    while True:
        page = (
            await c.execute(
                SCENES_PAGE,
                {"filter": {"id": {"value": after, "modifier": "GREATER_THAN"}}, "per_page": 50},
            )
        )["findScenes"]["scenes"]
        if not page:
            break
        seen += [s["id"] for s in page]
        after = int(page[-1]["id"])
    assert sorted(seen, key=int) == seen and len(set(seen)) == 120
    await c.aclose()


async def test_a_missing_id_fails_the_whole_call(stash: FakeStash) -> None:
    c = client(stash)
    with pytest.raises(StashQueryError, match="scene with id 9999 not found"):
        await c.execute(ENTITY_QUERIES["scene"].by_ids, {"ids": ["1", "9999"]})
    assert (await c.execute('query { findScene(id: "9999") { id } }'))["findScene"] is None
    await c.aclose()


async def test_a_malformed_or_duplicate_id_fails_the_whole_call(stash: FakeStash) -> None:
    """As Stash's ``handleIDList`` does: Atoi each id, then refuse duplicates."""
    by_ids = ENTITY_QUERIES["scene"].by_ids
    async with client(stash) as c:
        with pytest.raises(
            StashQueryError,
            match=r'^converting ids: strconv.Atoi: parsing "scene123": invalid syntax$',
        ):
            await c.execute(by_ids, {"ids": ["1", "scene123"]})
        with pytest.raises(StashQueryError, match=r"^validating ids: duplicate id found: 58$"):
            await c.execute(by_ids, {"ids": ["58", "3", "058"]})
        with pytest.raises(StashQueryError, match="value out of range"):
            await c.execute(by_ids, {"ids": ["9" * 20]})
        scenes = (await c.execute(by_ids, {"ids": ["+7", "008"]}))["findScenes"]
        assert [s["id"] for s in scenes["scenes"]] == ["7", "8"]
        everything = (await c.execute(by_ids, {"ids": []}))["findScenes"]
        assert everything["count"] == 120  # an empty list is no filter at all


async def test_file_and_marker_changes_do_not_bump_the_scene(stash: FakeStash) -> None:
    c = client(stash)
    await mutate(stash, op="clock", now="2025-07-01T00:00:00+00:00")
    await mutate(stash, op="rename_file", scene_id="5", basename="renamed.mp4")
    marker = await mutate(
        stash, op="set_marker", scene_id="6", title="new", seconds=1.0, primary_tag="1", tags=[]
    )
    since = "2025-06-15T00:00:00"

    async def changed(criterion: dict[str, object]) -> list[str]:
        data = await c.execute(SCENE_IDS_CHANGED, {"filter": criterion})
        return [s["id"] for s in data["findScenes"]["scenes"]]

    ts = {"value": since, "modifier": "GREATER_THAN"}
    assert await changed({"updated_at": ts}) == []
    assert await changed({"files_filter": {"updated_at": ts}}) == ["5"]
    assert await changed({"markers_filter": {"updated_at": ts}}) == ["6"]
    assert await changed(
        {
            "updated_at": ts,
            "OR": {
                "files_filter": {"updated_at": ts},
                "OR": {"markers_filter": {"updated_at": ts}},
            },
        }
    ) == ["5", "6"]
    await mutate(stash, op="delete_marker", scene_id="6", marker_id=marker)
    assert await changed({"markers_filter": {"updated_at": ts}}) == []  # deletions leave no trace
    await c.aclose()


async def test_tag_merges_and_deletions_rewrite_links_silently(stash: FakeStash) -> None:
    c = client(stash)
    scenes = (await c.execute(ENTITY_QUERIES["scene"].matching, {}))["findScenes"]["scenes"]
    tagged = next(s for s in scenes if s["tags"])
    source = tagged["tags"][0]["id"]
    dest = "1" if source != "1" else "2"
    await mutate(stash, op="merge_tags", sources=[source], destination=dest)
    after = (await c.execute(ENTITY_QUERIES["scene"].by_ids, {"ids": [tagged["id"]]}))[
        "findScenes"
    ]["scenes"][0]
    assert after["updated_at"] == tagged["updated_at"]
    assert source not in [t["id"] for t in after["tags"]] and dest in [
        t["id"] for t in after["tags"]
    ]
    assert (await c.execute(f'query {{ findTag(id: "{source}") {{ id }} }}'))["findTag"] is None
    await c.aclose()


async def test_faults_and_a_wrong_key(stash: FakeStash) -> None:
    async with client(stash, "wrong") as wrong:
        with pytest.raises(CredentialsError):
            await wrong.version()
    for kind, text in (
        ("500", "answered 500"),
        ("truncate", "truncated"),
        ("timeout", "did not answer in time"),
    ):
        await mutate(stash, op="faults", rate=1.0, kinds=[kind], delay=3)
        c = client(stash)
        with pytest.raises(TransientError, match=text):
            await c.version()
        await c.aclose()
    await mutate(stash, op="faults", rate=1.0, kinds=["429"])
    c = client(stash)
    with pytest.raises(TransientError) as info:
        await c.version()
    assert info.value.retry_after == 1
    await mutate(stash, op="faults", rate=0.0)
    assert await c.version() == "v0.30.1"
    await c.aclose()
    async with httpx.AsyncClient() as http:
        stats = (await http.get(f"{stash.url}/fake/stats")).json()
    assert stats["counts"]["scenes"] == 120 and stats["faults"] == 4


async def test_a_document_the_schema_refuses_is_an_error(stash: FakeStash) -> None:
    """As Stash answers it (gqlgen: 422, GRAPHQL_VALIDATION_FAILED), never silently
    answered without the unknown fields."""
    async with client(stash) as c:
        with pytest.raises(StashQueryError, match="Cannot query field 'nope' on type 'Scene'"):
            await c.execute("query { findScenes { scenes { id nope } } }")
        folder = "query { findScenes { scenes { files { parent_folder { id path } } } } }"
        files = (await c.execute(folder))["findScenes"]["scenes"][0]["files"]
        assert files[0]["parent_folder"]["path"].startswith("/library")


async def test_a_tag_merge_moves_everything_and_bumps_nothing(stash: FakeStash) -> None:
    """As Stash v0.30.1's ``tagsMerge``: links of every kind re-pointed, the sources'
    names, aliases, stash ids, parents and children moved to the destination."""
    lib = stash.library
    t = lib.tables
    source = lib.add(
        "tag",
        name="source",
        aliases=["src alias"],
        parents=["3"],
        stash_ids=[{"endpoint": "e", "stash_id": "s1", "updated_at": lib.stamp()}],
    )
    t["tag"]["4"]["parents"].append(source)
    t["performer"]["1"]["tags"].append(source)
    t["studio"]["1"]["tags"].append(source)
    scene = next(s for s in t["scene"].values() if s["scene_markers"])
    scene["scene_markers"][0]["primary_tag"] = source
    stamps = {k: {i: o["updated_at"] for i, o in t[k].items()} for k in t}
    await mutate(stash, op="merge_tags", sources=[source], destination="2")
    assert {k: {i: o["updated_at"] for i, o in t[k].items()} for k in t} == {
        k: {i: v for i, v in stamps[k].items() if (k, i) != ("tag", source)} for k in stamps
    }
    c = client(stash)
    data = await c.execute(ENTITY_QUERIES["tag"].by_ids, {"ids": ["2"]})
    dest = data["findTags"]["tags"][0]
    assert {"source", "src alias"} <= set(dest["aliases"])
    assert ("e", "s1") in {(s["endpoint"], s["stash_id"]) for s in dest["stash_ids"]}
    assert "3" in [p["id"] for p in dest["parents"]] and "4" in [x["id"] for x in dest["children"]]
    assert "2" in t["performer"]["1"]["tags"] and "2" in t["studio"]["1"]["tags"]
    assert scene["scene_markers"][0]["primary_tag"] == "2" and source not in t["tag"]
    await c.aclose()


async def test_stash_refuses_to_delete_a_markers_primary_tag(stash: FakeStash) -> None:
    scene = next(s for s in stash.library.tables["scene"].values() if s["scene_markers"])
    tag = scene["scene_markers"][0]["primary_tag"]
    async with httpx.AsyncClient(timeout=10) as http:
        r = await http.post(
            f"{stash.url}/fake/mutate", json={"op": "delete", "kind": "tag", "id": tag}
        )
    assert r.status_code == 422 and "primary tag" in r.json()["error"]
    assert tag in stash.library.tables["tag"]


async def test_children_set_on_the_parent_bump_only_the_parent(stash: FakeStash) -> None:
    lib = stash.library
    child = "20"
    before = lib.tables["tag"][child]["updated_at"]
    await mutate(stash, op="clock", now="2025-07-01T00:00:00+00:00")
    await mutate(stash, op="set_children", id="5", children=[child])
    assert "5" in lib.tables["tag"][child]["parents"]
    assert lib.tables["tag"][child]["updated_at"] == before
    assert lib.tables["tag"]["5"]["updated_at"] == "2025-06-30T16:00:00-08:00"
    c = client(stash)
    tag = (await c.execute(ENTITY_QUERIES["tag"].by_ids, {"ids": ["5"]}))["findTags"]["tags"][0]
    assert [x["id"] for x in tag["children"]] == [child]
    await c.aclose()


async def test_markers_are_counted_and_listed_by_id(stash: FakeStash) -> None:
    from sluiced.plugins.stash.queries import MARKER_IDS_PAGE, MARKER_SCENES

    c = client(stash)
    markers = [
        (m["id"], s["id"])
        for s in stash.library.tables["scene"].values()
        for m in s["scene_markers"]
    ]
    newest = await c.execute(ENTITY_QUERIES["scene"].newest)
    assert newest["findSceneMarkers"]["count"] == len(markers)
    assert newest["findScenes"]["count"] == 120
    pages = [
        [
            m["id"]
            for m in (await c.execute(MARKER_IDS_PAGE, {"page": n, "per_page": 50}))[
                "findSceneMarkers"
            ]["scene_markers"]
        ]
        for n in (1, 2, 3, 4, 5, 6)
    ]
    assert [i for p in pages for i in p] == sorted((m for m, _ in markers), key=int)
    data = await c.execute(MARKER_SCENES, {"ids": [markers[0][0]]})
    assert data["findSceneMarkers"]["scene_markers"] == [
        {"id": markers[0][0], "scene": {"id": markers[0][1]}}
    ]
    with pytest.raises(StashQueryError, match="scene marker with id 99999 not found"):
        await c.execute(MARKER_SCENES, {"ids": [markers[0][0], "99999"]})
    await c.aclose()
