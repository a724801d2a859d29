"""How a Stash record of a built-in entity type becomes the mirror's rows: one function
per type, each returning every table's rows for the record (see the conventions in
:mod:`.entities`: ids as integers, lists as JSON arrays, flags as 0 or 1, a scene's
files in Stash's order).

Columns added to a table later come last in its rows, as in its ``columns``.
"""

from __future__ import annotations

import json
from collections.abc import Mapping, Sequence
from typing import Any

__all__ = ["ROWS", "Rows"]

#: table -> rows (tuples in the table's column order, without the owner's id first
#: for child tables: :meth:`.entities.EntityType.rows` returns full rows).
Rows = dict[str, list[tuple[Any, ...]]]


def _ids(objs: Sequence[Mapping[str, Any]] | None) -> list[int]:
    return [int(o["id"]) for o in objs or ()]


def _json(value: Any) -> str | None:
    return None if value is None else json.dumps(value, ensure_ascii=False, sort_keys=True)


def _bool(value: Any) -> int | None:
    return None if value is None else int(bool(value))


def _ref(obj: Mapping[str, Any] | None) -> tuple[int | None, str | None]:
    """``(id, path)`` of a folder or file (``{ id path }``), or nulls."""
    return (int(obj["id"]), obj.get("path")) if obj else (None, None)


def _stash_ids(owner: int, record: Mapping[str, Any]) -> list[tuple[Any, ...]]:
    return [
        (owner, s["endpoint"], s["stash_id"], s.get("updated_at"))
        for s in record.get("stash_ids") or ()
    ]


def _performer_rows(r: Mapping[str, Any]) -> Rows:
    pid = int(r["id"])
    return {
        "performers": [
            (
                pid,
                r["name"],
                r.get("disambiguation"),
                _json(r.get("alias_list") or []),
                r.get("gender"),
                r.get("birthdate"),
                r.get("death_date"),
                r.get("country"),
                r.get("ethnicity"),
                r.get("eye_color"),
                r.get("hair_color"),
                r.get("height_cm"),
                r.get("weight"),
                r.get("measurements"),
                r.get("fake_tits"),
                r.get("penis_length"),
                r.get("circumcised"),
                r.get("career_length"),
                r.get("tattoos"),
                r.get("piercings"),
                _json(r.get("urls") or []),
                r.get("details"),
                r.get("rating100"),
                _bool(r.get("favorite")),
                _bool(r.get("ignore_auto_tag")),
                _json(r.get("custom_fields") or {}),
                r.get("created_at"),
                r.get("updated_at"),
            )
        ],
        "performer_tags": [(pid, t) for t in _ids(r.get("tags"))],
        "performer_stash_ids": _stash_ids(pid, r),
    }


def _tag_rows(r: Mapping[str, Any]) -> Rows:
    tid = int(r["id"])
    return {
        "tags": [
            (
                tid,
                r["name"],
                r.get("sort_name"),
                r.get("description"),
                _json(r.get("aliases") or []),
                _bool(r.get("favorite")),
                _bool(r.get("ignore_auto_tag")),
                r.get("created_at"),
                r.get("updated_at"),
            )
        ],
        "tag_parents": [(tid, p) for p in _ids(r.get("parents"))]
        + [(c, tid) for c in _ids(r.get("children"))],
        "tag_stash_ids": _stash_ids(tid, r),
    }


def _studio_rows(r: Mapping[str, Any]) -> Rows:
    sid = int(r["id"])
    parent = r.get("parent_studio")
    return {
        "studios": [
            (
                sid,
                r["name"],
                _json(r.get("aliases") or []),
                _json(r.get("urls") or []),
                r.get("details"),
                r.get("rating100"),
                _bool(r.get("favorite")),
                _bool(r.get("ignore_auto_tag")),
                int(parent["id"]) if parent else None,
                r.get("created_at"),
                r.get("updated_at"),
            )
        ],
        "studio_tags": [(sid, t) for t in _ids(r.get("tags"))],
        "studio_stash_ids": _stash_ids(sid, r),
    }


def _scene_rows(r: Mapping[str, Any]) -> Rows:
    sid = int(r["id"])
    studio = r.get("studio")
    files = r.get("files") or ()
    markers = r.get("scene_markers") or ()
    return {
        "scenes": [
            (
                sid,
                r.get("title"),
                r.get("code"),
                r.get("details"),
                r.get("director"),
                _json(r.get("urls") or []),
                r.get("date"),
                r.get("rating100"),
                _bool(r.get("organized")),
                int(studio["id"]) if studio else None,
                r.get("created_at"),
                r.get("updated_at"),
            )
        ],
        "scene_performers": [(sid, p) for p in _ids(r.get("performers"))],
        "scene_tags": [(sid, t) for t in _ids(r.get("tags"))],
        "scene_groups": [
            (sid, int(g["group"]["id"]), g.get("scene_index")) for g in r.get("groups") or ()
        ],
        "scene_stash_ids": _stash_ids(sid, r),
        "files": [
            (
                sid,
                int(f["id"]),
                f["path"],
                f["basename"],
                f.get("size"),
                f.get("duration"),
                f.get("width"),
                f.get("height"),
                f.get("frame_rate"),
                f.get("bit_rate"),
                f.get("video_codec"),
                f.get("audio_codec"),
                f.get("format"),
                f.get("mod_time"),
                f.get("created_at"),
                f.get("updated_at"),
                int(n == 0),  # Stash lists the primary file first
                *_ref(f.get("parent_folder")),
                *_ref(f.get("zip_file")),
            )
            for n, f in enumerate(files)
        ],
        "file_fingerprints": [
            (int(f["id"]), fp["type"], fp["value"])
            for f in files
            for fp in f.get("fingerprints") or ()
        ],
        "markers": [
            (
                sid,
                int(m["id"]),
                m["title"],
                m["seconds"],
                m.get("end_seconds"),
                int(m["primary_tag"]["id"]) if m.get("primary_tag") else None,
                m.get("created_at"),
                m.get("updated_at"),
            )
            for m in markers
        ],
        "marker_tags": [(int(m["id"]), t) for m in markers for t in _ids(m.get("tags"))],
    }


#: entity type -> the function that makes its rows from a record.
ROWS = {
    "performer": _performer_rows,
    "tag": _tag_rows,
    "studio": _studio_rows,
    "scene": _scene_rows,
}
