"""What Stash's hook changes become (``plugins/stash/hooks.py``), the jobs a window of
them makes (``coalesce.py``), and the plan of a ``sync_changes`` job."""

from __future__ import annotations

from pathlib import Path

import pytest

from sluiced.api import ApiError
from sluiced.plugins.stash.coalesce import MAX_READS, Changes
from sluiced.plugins.stash.entities import BUILTIN_ENTITY_TYPES
from sluiced.plugins.stash.hooks import HOOK_TYPES, HOOKS_BODY, changes_of
from sluiced.plugins.stash.mirror import Mirror
from sluiced.plugins.stash.target import MirrorTarget

SYNCED = ("performer", "tag", "studio", "scene")


def test_stash_hook_types_are_all_accepted() -> None:
    for name in ("Scene.Update.Post", "SceneMarker.Destroy.Post", "Group.Create.Post"):
        assert name in HOOK_TYPES
    assert "Tag.Merge.Post" in HOOK_TYPES
    with pytest.raises(ApiError) as refused:
        HOOKS_BODY.check("", {"changes": [{"type": "Scene.Renamed.Post", "id": 1}]})
    assert refused.value.field == "changes[0].type"


def test_changes_map_to_reads_by_id_and_passes() -> None:
    given = [
        {"type": "Scene.Update.Post", "id": 3},
        {"type": "Scene.Create.Post", "id": "4"},
        {"type": "Performer.Update.Post", "id": 7},
        {"type": "SceneMarker.Create.Post", "id": 50, "scene_id": "9"},
        {"type": "Tag.Destroy.Post", "id": 2},
        {"type": "Group.Update.Post", "id": 1},
        {"type": "Image.Update.Post", "id": 1},
    ]
    changes, ignored = changes_of(given, SYNCED)
    assert changes.reads == {"scene": {"3", "4", "9"}, "performer": {"7"}}
    assert changes.passes == {"tag"} and ignored == 2
    assert changes.jobs() == [
        (
            "sync_changes",
            {"ids": {"performer": ["7"], "scene": ["3", "4", "9"]}, "trigger": "stash-hooks"},
        ),
        (
            "sync",
            {
                "include_performers": False,
                "include_tags": True,
                "include_studios": False,
                "include_scenes": False,
                "entity_types": ["tag"],
                "trigger": "stash-hooks",
            },
        ),
    ]


def test_a_gallery_chapter_is_a_pass_over_galleries_not_a_read_of_its_id() -> None:
    given = [{"type": "GalleryChapter.Update.Post", "id": 7}]
    changes, ignored = changes_of(given, ("scene", "gallery"))
    assert changes.reads == {} and changes.passes == {"gallery"} and ignored == 0
    changes, ignored = changes_of(given, SYNCED)
    assert changes.passes == set() and ignored == 1


def test_a_flood_of_ids_of_one_type_becomes_a_pass_over_it() -> None:
    gathered = Changes()
    for start in range(0, MAX_READS + 1, 1000):  # requests, while a long sync runs
        more = Changes()
        for i in range(start + 1, min(start + 1000, MAX_READS + 1) + 1):
            more.read("scene", str(i))
        more.read("performer", "7")
        gathered.merge(more)
    assert gathered.passes == {"scene"} and gathered.reads == {"performer": {"7"}}
    gathered.read("scene", "5")  # the pass reads it
    assert [job for job, _ in gathered.jobs()] == ["sync_changes", "sync"]
    assert gathered.jobs()[1][1]["entity_types"] == ["scene"]


def test_a_marker_without_its_scene_and_a_destroy_pass_over_scenes() -> None:
    changes, _ = changes_of(
        [
            {"type": "Scene.Update.Post", "id": 3},
            {"type": "SceneMarker.Destroy.Post", "id": 50},
            {"type": "Tag.Merge.Post", "id": 1},
        ],
        SYNCED,
    )
    assert changes.passes == {"scene", "tag"}
    # The pass over scenes reads the edited scene too: it is not also read by id.
    assert [kind for kind, _ in changes.jobs()] == ["sync"]
    merged = Changes()
    merged.merge(changes)
    assert merged == changes and bool(merged) and not Changes()


def test_an_id_over_stashs_range_names_its_field() -> None:
    with pytest.raises(ApiError) as refused:
        changes_of([{"type": "Tag.Update.Post", "id": "9" * 19}], SYNCED)
    assert refused.value.field == "changes[0].id"


def test_a_sync_changes_plan_reads_each_type_by_id(tmp_path: Path) -> None:
    target = MirrorTarget(Mirror(tmp_path / "m.sqlite3", list(BUILTIN_ENTITY_TYPES)))
    plan = target.plan_job(
        "sync_changes",
        {"ids": {"scene": ["3", "03", "x"], "tag": ["2"], "group": ["1"]}},
        SYNCED,
    )
    assert plan is not None
    assert list(plan.entity_types) == ["tag", "scene"] and list(plan.ids or ()) == ["2"]
    assert plan.more_ids == {"scene": ["3"]}
    assert plan.rejected == ['"x" is not a Stash scene id']
    assert plan.missing.format(type="scene", id="3") == (
        "scene 3 is gone from Stash: removed from the mirror"
    )
    empty = target.plan_job("sync_changes", {"ids": {"group": ["1"]}}, SYNCED)
    assert empty is not None and list(empty.entity_types) == [] and empty.ids is None
