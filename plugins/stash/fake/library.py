"""The fake Stash's library: generated performers, tags, studios and scenes, queried and
changed the way Stash does it.

What it reproduces, because a sync that ignores it loses data (see STASH.md):

* ``updated_at`` is an RFC 3339 string *to the second in the server's local zone*
  (``...-08:00``, or ``...Z`` on a UTC server), compared **as text**.
* ``per_page`` defaults to 25; ``-1`` is all; ``0`` only the count.
* scenes with no ``sort`` come back in no particular order (shuffled per call).
* ``ids: [...]`` with one missing id fails the whole call, and so does one that is not
  an integer (``converting ids: strconv.Atoi: ...``) or a duplicate (``validating ids:
  duplicate id found: N``); an empty ``ids`` is no id filter at all.
* renaming a file, and creating or changing a marker, bump the file's or marker's
  ``updated_at``, not the scene's; deleting a marker leaves its scene untouched;
* ``tagsMerge`` re-points the sources' links (scenes', markers' primary and other tags,
  performers', studios', child tags') to the destination, gives it the sources' names
  as aliases, their aliases, stash ids, parents and children, deletes the sources, and
  bumps nothing (``pkg/sqlite/tag.go`` ``Merge``, ``pkg/tag`` ``MergeHierarchy``);
* ``tagUpdate(child_ids:)`` bumps only the parent, not the children it re-parents;
* deleting anything cascades its links and bumps nothing; a tag that is some marker's
  primary tag cannot be deleted (Stash refuses).
"""

from __future__ import annotations

import bisect
import random
import re
from collections.abc import Callable, Iterable, Mapping
from datetime import UTC, datetime, timedelta, tzinfo
from typing import Any
from zoneinfo import ZoneInfo

__all__ = ["PLURALS", "Library", "generate", "parse_zone"]

PLURALS = {"performer": "performers", "tag": "tags", "studio": "studios", "scene": "scenes"}
#: (kind, field) -> (target kind, many)
RELATIONS = {
    ("performer", "tags"): ("tag", True),
    ("tag", "parents"): ("tag", True),
    ("studio", "parent_studio"): ("studio", False),
    ("studio", "tags"): ("tag", True),
    ("scene", "studio"): ("studio", False),
    ("scene", "performers"): ("performer", True),
    ("scene", "tags"): ("tag", True),
    ("marker", "primary_tag"): ("tag", False),
    ("marker", "tags"): ("tag", True),
    ("marker", "scene"): ("scene", False),
}


def parse_zone(name: str) -> tzinfo:
    """``UTC``, an offset (``-08:00``) or a zone name (``America/Los_Angeles``)."""
    if name.upper() in ("UTC", "Z", "+00:00"):
        return UTC
    if name[:1] in "+-":
        sign = -1 if name[0] == "-" else 1
        hours, _, minutes = name[1:].partition(":")
        from datetime import timezone

        return timezone(sign * timedelta(hours=int(hours), minutes=int(minutes or 0)))
    return ZoneInfo(name)


class Library:
    def __init__(self, *, tz: str = "UTC", now: datetime | None = None) -> None:
        self.tz = parse_zone(tz)
        self.fixed_now = now
        self.tables: dict[str, dict[str, dict[str, Any]]] = {k: {} for k in PLURALS}
        self.next_id: dict[str, int] = {
            k: 1 for k in ("performer", "tag", "studio", "scene", "file", "marker", "folder")
        }
        #: Folders and zip files by path: ``{id, path}`` (files inside a zip have the zip
        #: as their parent folder's path, as Stash models it).
        self.folders: dict[str, dict[str, str]] = {}
        self.zips: dict[str, dict[str, str]] = {}
        self._scene_ids: list[int] | None = None
        self._children: dict[str, list[str]] | None = None
        self.rng = random.Random(0)

    # -- time ----------------------------------------------------------------------------
    def now(self) -> datetime:
        return self.fixed_now or datetime.now(UTC)

    def stamp(self, moment: datetime | None = None) -> str:
        """A timestamp as Stash writes it: local time, to the second, with its offset."""
        text = (moment or self.now()).astimezone(self.tz).replace(microsecond=0).isoformat()
        return text[:-6] + "Z" if text.endswith("+00:00") else text

    # -- changes ---------------------------------------------------------------------------
    def _new_id(self, kind: str) -> str:
        n = self.next_id[kind]
        self.next_id[kind] = n + 1
        return str(n)

    def add(self, kind: str, **fields: Any) -> str:
        ident = self._new_id(kind)
        stamp = self.stamp()
        obj = {
            "_kind": kind,
            "id": ident,
            "created_at": stamp,
            "updated_at": stamp,
            "stash_ids": [],
            **_DEFAULTS[kind](),
            **fields,
        }
        if kind == "scene":
            obj["files"] = [self._file(f) for f in obj.get("files", [])]
            obj["scene_markers"] = [
                self._marker({**m, "scene": ident}) for m in obj.get("scene_markers", [])
            ]
            self._scene_ids = None
        self._children = None
        self.tables[kind][ident] = obj
        return ident

    def _folder(self, path: str) -> dict[str, str]:
        if path not in self.folders:
            self.folders[path] = {"id": self._new_id("folder"), "path": path}
        return self.folders[path]

    def _place(self, basename: str, folder: str, zip_path: str | None) -> dict[str, Any]:
        """A file's ``path``, ``parent_folder`` and ``zip_file``: in *folder*, or at the
        root of the zip file *zip_path*."""
        if zip_path is None:
            return {
                "path": f"{folder}/{basename}",
                "parent_folder": self._folder(folder),
                "zip_file": None,
            }
        if zip_path not in self.zips:
            self.zips[zip_path] = {
                "id": self._new_id("file"),
                "path": zip_path,
                "basename": zip_path.rsplit("/", 1)[-1],
            }
        return {
            "path": f"{zip_path}/{basename}",
            "parent_folder": self._folder(zip_path),
            "zip_file": self.zips[zip_path],
        }

    def _file(self, fields: Mapping[str, Any]) -> dict[str, Any]:
        """A video file; *fields* may hold ``folder`` (default ``/library``) or ``zip``
        (the path of the zip file it is in) and any of the file's own fields."""
        fields = dict(fields)
        folder, zip_path = fields.pop("folder", "/library"), fields.pop("zip", None)
        ident = self._new_id("file")
        stamp = self.stamp()
        basename = fields.get("basename", f"video{ident}.mp4")
        return {
            "_kind": "file",
            "id": ident,
            **self._place(basename, folder, zip_path),
            "basename": basename,
            "size": 1 << 20,
            "duration": 60.0,
            "width": 1920,
            "height": 1080,
            "frame_rate": 30.0,
            "bit_rate": 4_000_000,
            "video_codec": "h264",
            "audio_codec": "aac",
            "format": "mp4",
            "mod_time": stamp,
            "created_at": stamp,
            "updated_at": stamp,
            "fingerprints": [{"type": "oshash", "value": f"{int(ident):016x}"}],
            **fields,
        }

    def _marker(self, fields: Mapping[str, Any]) -> dict[str, Any]:
        ident = self._new_id("marker")
        stamp = self.stamp()
        return {
            "_kind": "marker",
            "id": ident,
            "title": "",
            "seconds": 0.0,
            "end_seconds": None,
            "created_at": stamp,
            "updated_at": stamp,
            "tags": [],
            **fields,
        }

    def update(self, kind: str, ident: str, **fields: Any) -> None:
        obj = self.tables[kind][ident]
        obj.update(fields)
        obj["updated_at"] = self.stamp()
        self._children = None

    def relinked(self) -> None:
        """Say that links changed without :meth:`update` (a merge): caches go."""
        self._children = None

    def children_of(self, ident: str) -> list[str]:
        """A tag's children (the tags listing it among their parents), by id."""
        if self._children is None:
            children: dict[str, list[str]] = {}
            for tag in sorted(self.tables["tag"].values(), key=lambda t: int(t["id"])):
                for parent in tag["parents"]:
                    children.setdefault(parent, []).append(tag["id"])
            self._children = children
        return self._children.get(ident, [])

    def delete(self, kind: str, ident: str) -> None:
        """Delete, cascading links the way Stash's foreign keys do: nothing else is bumped.

        Raises:
            ValueError: a tag that is a marker's primary tag (Stash refuses it).
        """
        if kind == "tag" and any(m["primary_tag"] == ident for m in self._objects("marker")):
            raise ValueError("cannot delete tag used as a primary tag in scene markers")
        del self.tables[kind][ident]
        self._children = None
        if kind == "scene":
            self._scene_ids = None
        for (owner, field), (target, many) in RELATIONS.items():
            if target != kind:
                continue
            for obj in self._objects(owner):
                if many and ident in obj.get(field, []):
                    obj[field] = [i for i in obj[field] if i != ident]
                elif not many and obj.get(field) == ident:
                    obj[field] = None

    def _objects(self, kind: str) -> Iterable[dict[str, Any]]:
        if kind == "marker":
            return (m for s in self.tables["scene"].values() for m in s["scene_markers"])
        return self.tables[kind].values()

    def rename_file(
        self, scene_id: str, basename: str, folder: str = "/library", zip: str | None = None
    ) -> None:
        """Rename or move the scene's primary file (into *folder*, or into the zip *zip*):
        only the file's ``updated_at`` moves."""
        file = self.tables["scene"][scene_id]["files"][0]
        file.update(basename=basename, **self._place(basename, folder, zip))
        file["updated_at"] = self.stamp()

    def set_marker(self, scene_id: str, marker_id: str | None = None, **fields: Any) -> str:
        scene = self.tables["scene"][scene_id]
        if marker_id is None:
            marker = self._marker({**fields, "scene": scene_id})
            scene["scene_markers"].append(marker)
            return str(marker["id"])
        for marker in scene["scene_markers"]:
            if marker["id"] == marker_id:
                marker.update(fields)
                marker["updated_at"] = self.stamp()
                return marker_id
        raise KeyError(marker_id)

    def delete_marker(self, scene_id: str, marker_id: str) -> None:
        scene = self.tables["scene"][scene_id]
        scene["scene_markers"] = [m for m in scene["scene_markers"] if m["id"] != marker_id]

    def find_markers(
        self,
        ids: list[str] | None,
        find_filter: Mapping[str, Any] | None,
        scene_filter: Mapping[str, Any] | None = None,
    ) -> Any:
        """``findSceneMarkers``: by ids (one missing fails the call), or all (of the
        scenes matching *scene_filter*), paged."""
        if scene_filter:
            scenes = self._candidates("scene", scene_filter)
            markers = {m["id"]: m for s in scenes for m in s["scene_markers"]}
        else:
            markers = {m["id"]: m for m in self._objects("marker")}
        if ids is not None:
            for ident in ids:
                if ident not in markers:
                    raise LookupError(f"scene marker with id {ident} not found")
            return {"count": len(ids), "scene_markers": [markers[i] for i in ids]}
        items = sorted(markers.values(), key=lambda m: int(m["id"]))
        f = dict(find_filter or {})
        if f.get("direction") == "DESC":
            items.reverse()
        per_page = 25 if f.get("per_page") is None else f["per_page"]
        page = max(1, f.get("page") or 1)
        chosen = items[(page - 1) * per_page : page * per_page] if per_page >= 0 else items
        return {"count": len(items), "scene_markers": chosen}

    # -- queries -------------------------------------------------------------------------------
    def find(
        self,
        kind: str,
        criteria: Mapping[str, Any] | None,
        ids: list[str] | None,
        find_filter: Mapping[str, Any] | None,
    ) -> dict[str, Any]:
        table = self.tables[kind]
        if ids:  # Stash: ``len(ids) > 0``; an empty list filters nothing
            ids = _atoi_ids(ids)
            for ident in ids:
                if ident not in table:
                    raise LookupError(f"{kind} with id {ident} not found")
            items = [table[i] for i in ids]
        else:
            items = self._candidates(kind, criteria)
        f = dict(find_filter or {})
        sort, descending = f.get("sort"), f.get("direction") == "DESC"
        if sort == "id" or (sort is None and kind != "scene"):
            items.sort(key=lambda o: int(o["id"]), reverse=descending)
        elif sort in ("updated_at", "created_at", "name", "title"):
            items.sort(key=lambda o: o.get(sort) or "", reverse=descending)
        elif sort is None:
            self.rng.shuffle(items)  # Stash: no ORDER BY at all
        per_page = f.get("per_page")
        per_page = 25 if per_page is None else per_page
        page = max(1, f.get("page") or 1)
        items_page = items[(page - 1) * per_page : page * per_page] if per_page >= 0 else items
        return {"count": len(items), PLURALS[kind]: items_page}

    def _candidates(self, kind: str, criteria: Mapping[str, Any] | None) -> list[dict[str, Any]]:
        table = self.tables[kind]
        if not criteria:
            return list(table.values())
        rest = dict(criteria)
        pool: Iterable[dict[str, Any]] = table.values()
        id_criterion = rest.get("id")
        modifier = (id_criterion or {}).get("modifier")
        if kind == "scene" and id_criterion and modifier in ("GREATER_THAN", "BETWEEN"):
            # keyset paging and ranges: a slice of the sorted ids rather than a scan
            if self._scene_ids is None:
                self._scene_ids = sorted(int(i) for i in table)
            if modifier == "BETWEEN":
                start = bisect.bisect_left(self._scene_ids, id_criterion["value"])
                end = bisect.bisect_right(self._scene_ids, id_criterion["value2"])
            else:
                start = bisect.bisect_right(self._scene_ids, id_criterion["value"])
                end = len(self._scene_ids)
            pool = (table[str(i)] for i in self._scene_ids[start:end])
            del rest["id"]
        return [o for o in pool if _matches(o, rest)]


_ATOI = re.compile(r"[+-]?[0-9]+")


def _atoi_ids(ids: list[str]) -> list[str]:
    """Stash's ``handleIDList``: every id through Go's ``strconv.Atoi`` (a sign and
    decimal digits, 64 bits), then no duplicates among the integers; one bad id fails
    the whole call. Returns the ids in their canonical form (``"007"`` -> ``"7"``)."""
    out: list[str] = []
    seen: set[int] = set()
    for raw in ids:
        if not _ATOI.fullmatch(raw):
            raise ValueError(f'converting ids: strconv.Atoi: parsing "{raw}": invalid syntax')
        value = int(raw)
        if not -(2**63) <= value < 2**63:
            raise ValueError(f'converting ids: strconv.Atoi: parsing "{raw}": value out of range')
        if value in seen:
            raise ValueError(f"validating ids: duplicate id found: {value}")
        seen.add(value)
        out.append(str(value))
    return out


def _criterion(value: Any, c: Mapping[str, Any], convert: Callable[[Any], Any]) -> bool:
    modifier = c["modifier"]
    if modifier == "IS_NULL":
        return value is None
    if modifier == "NOT_NULL":
        return value is not None
    if value is None:
        return False
    v, target = convert(value), convert(c["value"])
    if modifier == "EQUALS":
        return bool(v == target)
    if modifier == "NOT_EQUALS":
        return bool(v != target)
    if modifier == "GREATER_THAN":
        return bool(v > target)
    if modifier == "LESS_THAN":
        return bool(v < target)
    upper = convert(c.get("value2"))
    inside = bool(target <= v <= upper)
    if modifier == "BETWEEN":
        return inside
    if modifier == "NOT_BETWEEN":
        return not inside
    raise ValueError(f"the fake does not support modifier {modifier}")


def _matches(obj: Mapping[str, Any], criteria: Mapping[str, Any]) -> bool:
    """Stash's filter: every criterion of a level holds, combined with AND/OR/NOT."""
    base = True
    for key, c in criteria.items():
        if c is None or key in ("AND", "OR", "NOT"):
            continue
        if key == "id":
            ok = _criterion(int(obj["id"]), c, int)
        elif key == "updated_at":
            ok = _criterion(obj["updated_at"], c, str)  # text, as Stash's SQL compares it
        elif key == "aliases" and c["modifier"] == "EQUALS":  # SQL LIKE: any case
            ok = c["value"].casefold() in (a.casefold() for a in obj.get("aliases", ()))
        elif key == "files_filter":
            ok = any(_matches(f, c) for f in obj.get("files", []))
        elif key == "markers_filter":
            ok = any(_matches(m, c) for m in obj.get("scene_markers", []))
        else:
            raise ValueError(f"the fake does not support the criterion {key}")
        base = base and ok
    if criteria.get("AND") is not None:
        base = base and _matches(obj, criteria["AND"])
    if criteria.get("NOT") is not None:
        base = base and not _matches(obj, criteria["NOT"])
    if criteria.get("OR") is not None:
        base = base or _matches(obj, criteria["OR"])
    return base


_DEFAULTS: dict[str, Callable[[], dict[str, Any]]] = {
    "performer": lambda: {
        "name": "",
        "alias_list": [],
        "urls": [],
        "favorite": False,
        "ignore_auto_tag": False,
        "custom_fields": {},
        "tags": [],
    },
    "tag": lambda: {
        "name": "",
        "aliases": [],
        "favorite": False,
        "ignore_auto_tag": False,
        "parents": [],
    },
    "studio": lambda: {
        "name": "",
        "aliases": [],
        "urls": [],
        "favorite": False,
        "ignore_auto_tag": False,
        "parent_studio": None,
        "tags": [],
    },
    "scene": lambda: {
        "urls": [],
        "organized": False,
        "studio": None,
        "performers": [],
        "tags": [],
        "groups": [],
        "files": [],
        "scene_markers": [],
    },
}


def generate(
    *,
    performers: int = 50,
    tags: int = 30,
    studios: int = 10,
    scenes: int = 200,
    seed: int = 1,
    tz: str = "UTC",
    now: datetime | None = None,
) -> Library:
    """A library of the given size: tags with several parents, studios with parents,
    scenes with files, fingerprints and markers. Deterministic for a seed."""
    rng = random.Random(seed)
    start = now or datetime(2025, 6, 1, 12, 0, tzinfo=UTC)
    lib = Library(tz=tz, now=start)
    tag_ids: list[str] = []
    for i in range(tags):
        parents = rng.sample(tag_ids, k=min(len(tag_ids), rng.choice((0, 0, 1, 2, 3))))
        tag_ids.append(
            lib.add(
                "tag",
                name=f"tag {i}",
                sort_name=None,
                description=None,
                parents=parents,
                aliases=[f"t{i}"] if i % 3 == 0 else [],
                stash_ids=[
                    {
                        "endpoint": "https://stashdb.example/graphql",
                        "stash_id": f"tag-{i}",
                        "updated_at": lib.stamp(),
                    }
                ]
                if i % 4 == 0
                else [],
            )
        )
    studio_ids: list[str] = []
    for i in range(studios):
        parent = rng.choice(studio_ids) if studio_ids and rng.random() < 0.3 else None
        studio_ids.append(
            lib.add(
                "studio",
                name=f"studio {i}",
                parent_studio=parent,
                urls=[f"https://s{i}.example"],
                tags=rng.sample(tag_ids, k=min(2, len(tag_ids))),
                details=None,
                rating100=None,
            )
        )
    performer_ids = [
        lib.add(
            "performer",
            name=f"performer {i}",
            disambiguation=None,
            gender=rng.choice(("FEMALE", "MALE", None)),
            birthdate=f"19{70 + i % 30}-0{1 + i % 9}-1{i % 9}",
            alias_list=[f"p{i}"],
            tags=rng.sample(tag_ids, k=min(rng.randint(0, 3), len(tag_ids))),
            stash_ids=[
                {
                    "endpoint": "https://stashdb.example/graphql",
                    "stash_id": f"perf-{i}",
                    "updated_at": lib.stamp(),
                }
            ]
            if i % 2
            else [],
            rating100=rng.choice((None, 60, 80)),
            custom_fields={"k": i} if i % 5 == 0 else {},
        )
        for i in range(performers)
    ]
    for i in range(scenes):
        n_markers = rng.choice((0, 0, 1, 2, 3)) if tag_ids else 0
        lib.add(
            "scene",
            title=f"scene {i}",
            code=None,
            details=None,
            director=None,
            date="2024-01-01",
            rating100=rng.choice((None, 20, 100)),
            studio=rng.choice(studio_ids) if studio_ids and rng.random() < 0.8 else None,
            performers=rng.sample(performer_ids, k=min(rng.randint(0, 4), len(performer_ids))),
            tags=rng.sample(tag_ids, k=min(rng.randint(0, 6), len(tag_ids))),
            groups=[{"group": {"id": str(1 + i % 7)}, "scene_index": i % 4}] if i % 5 == 0 else [],
            files=[
                {
                    "basename": f"scene{i}.mp4",
                    "fingerprints": [
                        {"type": "oshash", "value": f"{rng.getrandbits(64):016x}"},
                        {"type": "phash", "value": f"{rng.getrandbits(64):016x}"},
                    ],
                    # some in a zip file, some in a folder of their own
                    **({"zip": f"/library/pack{i // 15}.zip"} if i % 15 == 7 else {}),
                    **({"folder": f"/library/studio{i % 4}"} if i % 6 == 1 else {}),
                },
                # every tenth scene has a second file (Stash lists the primary first)
                *([{"basename": f"scene{i}-alt.mkv", "fingerprints": []}] if i % 10 == 3 else []),
            ],
            scene_markers=[
                {
                    "title": f"marker {m}",
                    "seconds": 10.0 * m,
                    "primary_tag": rng.choice(tag_ids),
                    "tags": rng.sample(tag_ids, k=min(1, len(tag_ids))),
                }
                for m in range(n_markers)
            ],
        )
    # Spread the times as a real library's are: older ids older, ten minutes apart.
    for table in lib.tables.values():
        for age, obj in enumerate(reversed(list(table.values()))):
            stamp = lib.stamp(start - timedelta(minutes=10 * age))
            obj["created_at"] = obj["updated_at"] = stamp
            for child in (*obj.get("files", ()), *obj.get("scene_markers", ())):
                child["created_at"] = child["updated_at"] = stamp
    lib.fixed_now = None if now is None else now
    return lib
