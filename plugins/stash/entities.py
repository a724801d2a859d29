"""Stash entity types: what the mirror stores of each (how a record becomes rows is
:mod:`.rows`).

An :class:`EntityType` is what the ``sluiced_entity_types`` hook returns. The built-in
ones are performer, tag, studio and scene; a plugin adds galleries, groups or images
the same way: its queries (validated against Stash's schema), the entity types it links
to, its tables (``CREATE TABLE IF NOT EXISTS``), and ``rows(record)``.

Conventions of the mirror (a public interface: users query it):

* ids are Stash's, as integers; times are Stash's strings, unchanged (local time, to
  the second, with the offset) — compare them as Stash does, as text, or convert;
* lists of strings (aliases, urls) are JSON arrays; ``custom_fields`` is a JSON object;
* relations are link tables named ``<owner>_<relation>`` (``scene_tags``), one row per
  link; ``tag_parents`` holds several parents per tag;
* an entity's own rows are replaced whole when it changes; deleting an entity removes
  its rows and every link to it, as Stash's foreign keys do;
* a scene's files keep Stash's order: the first is the primary one (``is_primary``);
  each names its parent folder and, inside a zip, the zip file (ids and paths).

Tables are versioned (``version``, ``migrations``; see ``schema.py``): columns added
later come last in their table and in ``rows()``.
"""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass, field
from typing import Any

from .dialect import RowChange, Step
from .queries import ENTITY_QUERIES, EntityQueries
from .rows import ROWS, Rows

__all__ = ["BUILTIN_ENTITY_TYPES", "EntityType", "Rows"]


@dataclass(frozen=True)
class EntityType:
    """One kind of Stash object in the mirror.

    ``children`` are the tables holding the entity's own dependent rows, keyed by the
    entity's id in their ``<name>_id`` column; ``references`` are ``(table, column,
    action)`` in other entities' tables that point at this one: when it is deleted, rows
    are deleted (``delete``, a link) or the column set to null (``null``, an optional
    reference), as Stash's foreign keys do.
    """

    name: str
    depends_on: tuple[str, ...]
    queries: EntityQueries
    table: str
    columns: tuple[str, ...]
    ddl: tuple[str, ...]
    children: tuple[str, ...] = ()
    references: tuple[tuple[str, str, str], ...] = ()
    #: Tables whose rows belong to a child row (``file_fingerprints`` of ``files``):
    #: (table, column, parent table, parent column).
    grandchildren: tuple[tuple[str, str, str, str], ...] = field(default=())
    #: The version of the tables ``ddl`` creates; ``migrations[n]`` are the steps
    #: that bring version ``n + 1`` to ``n + 2`` (so ``len(migrations) == version - 1``).
    version: int = 1
    migrations: tuple[tuple[Step, ...], ...] = ()
    #: Link rows the record lists from the other side: ``(table, column)`` whose rows with
    #: ``column`` = the record's id are replaced too (a tag's ``children`` are the
    #: ``tag_parents`` rows naming it as parent). Stash changes them without bumping the
    #: other side (``tagUpdate(child_ids:)`` bumps only the parent).
    inverse: tuple[tuple[str, str], ...] = field(default=())
    #: Columns of its tables holding a flag (0 or 1; ``boolean`` in PostgreSQL).
    booleans: tuple[str, ...] = field(default=())

    def rows(self, record: Mapping[str, Any]) -> Rows:
        return ROWS[self.name](record)


def _stash_id_table(owner: str) -> str:
    return (
        f"CREATE TABLE IF NOT EXISTS {owner}_stash_ids ({owner}_id INTEGER NOT NULL, endpoint TEXT NOT NULL,"
        f" stash_id TEXT NOT NULL, updated_at TEXT, PRIMARY KEY ({owner}_id, endpoint, stash_id))"
    )


PERFORMER = EntityType(
    name="performer",
    depends_on=("tag",),
    queries=ENTITY_QUERIES["performer"],
    table="performers",
    columns=(
        "id",
        "name",
        "disambiguation",
        "alias_list",
        "gender",
        "birthdate",
        "death_date",
        "country",
        "ethnicity",
        "eye_color",
        "hair_color",
        "height_cm",
        "weight",
        "measurements",
        "fake_tits",
        "penis_length",
        "circumcised",
        "career_length",
        "tattoos",
        "piercings",
        "urls",
        "details",
        "rating100",
        "favorite",
        "ignore_auto_tag",
        "custom_fields",
        "created_at",
        "updated_at",
    ),
    ddl=(
        "CREATE TABLE IF NOT EXISTS performers (id INTEGER PRIMARY KEY, name TEXT NOT NULL, disambiguation TEXT,"
        " alias_list TEXT NOT NULL, gender TEXT, birthdate TEXT, death_date TEXT, country TEXT, ethnicity TEXT,"
        " eye_color TEXT, hair_color TEXT, height_cm INTEGER, weight INTEGER, measurements TEXT, fake_tits TEXT,"
        " penis_length REAL, circumcised TEXT, career_length TEXT, tattoos TEXT, piercings TEXT, urls TEXT NOT NULL,"
        " details TEXT, rating100 INTEGER, favorite INTEGER, ignore_auto_tag INTEGER, custom_fields TEXT NOT NULL,"
        " created_at TEXT, updated_at TEXT)",
        "CREATE TABLE IF NOT EXISTS performer_tags (performer_id INTEGER NOT NULL, tag_id INTEGER NOT NULL,"
        " PRIMARY KEY (performer_id, tag_id))",
        "CREATE INDEX IF NOT EXISTS performer_tags_by_tag ON performer_tags (tag_id)",
        _stash_id_table("performer"),
    ),
    children=("performer_tags", "performer_stash_ids"),
    booleans=("favorite", "ignore_auto_tag"),
    references=(("scene_performers", "performer_id", "delete"),),
)

TAG = EntityType(
    name="tag",
    depends_on=(),
    queries=ENTITY_QUERIES["tag"],
    table="tags",
    columns=(
        "id",
        "name",
        "sort_name",
        "description",
        "aliases",
        "favorite",
        "ignore_auto_tag",
        "created_at",
        "updated_at",
    ),
    ddl=(
        "CREATE TABLE IF NOT EXISTS tags (id INTEGER PRIMARY KEY, name TEXT NOT NULL, sort_name TEXT,"
        " description TEXT, aliases TEXT NOT NULL, favorite INTEGER, ignore_auto_tag INTEGER, created_at TEXT,"
        " updated_at TEXT)",
        "CREATE TABLE IF NOT EXISTS tag_parents (tag_id INTEGER NOT NULL, parent_id INTEGER NOT NULL,"
        " PRIMARY KEY (tag_id, parent_id))",
        "CREATE INDEX IF NOT EXISTS tag_parents_by_parent ON tag_parents (parent_id)",
        _stash_id_table("tag"),
    ),
    children=("tag_parents", "tag_stash_ids"),
    booleans=("favorite", "ignore_auto_tag"),
    inverse=(("tag_parents", "parent_id"),),
    references=(
        ("tag_parents", "parent_id", "delete"),
        ("performer_tags", "tag_id", "delete"),
        ("studio_tags", "tag_id", "delete"),
        ("scene_tags", "tag_id", "delete"),
        ("marker_tags", "tag_id", "delete"),
        ("markers", "primary_tag_id", "delete"),
    ),
)

STUDIO = EntityType(
    name="studio",
    depends_on=("tag",),
    queries=ENTITY_QUERIES["studio"],
    table="studios",
    columns=(
        "id",
        "name",
        "aliases",
        "urls",
        "details",
        "rating100",
        "favorite",
        "ignore_auto_tag",
        "parent_id",
        "created_at",
        "updated_at",
    ),
    ddl=(
        "CREATE TABLE IF NOT EXISTS studios (id INTEGER PRIMARY KEY, name TEXT NOT NULL, aliases TEXT NOT NULL,"
        " urls TEXT NOT NULL, details TEXT, rating100 INTEGER, favorite INTEGER, ignore_auto_tag INTEGER,"
        " parent_id INTEGER, created_at TEXT, updated_at TEXT)",
        "CREATE TABLE IF NOT EXISTS studio_tags (studio_id INTEGER NOT NULL, tag_id INTEGER NOT NULL,"
        " PRIMARY KEY (studio_id, tag_id))",
        _stash_id_table("studio"),
    ),
    children=("studio_tags", "studio_stash_ids"),
    booleans=("favorite", "ignore_auto_tag"),
    references=(("studios", "parent_id", "null"), ("scenes", "studio_id", "null")),
)

SCENE = EntityType(
    name="scene",
    depends_on=("performer", "tag", "studio"),
    queries=ENTITY_QUERIES["scene"],
    table="scenes",
    columns=(
        "id",
        "title",
        "code",
        "details",
        "director",
        "urls",
        "date",
        "rating100",
        "organized",
        "studio_id",
        "created_at",
        "updated_at",
    ),
    ddl=(
        "CREATE TABLE IF NOT EXISTS scenes (id INTEGER PRIMARY KEY, title TEXT, code TEXT, details TEXT,"
        " director TEXT, urls TEXT NOT NULL, date TEXT, rating100 INTEGER, organized INTEGER, studio_id INTEGER,"
        " created_at TEXT, updated_at TEXT)",
        "CREATE INDEX IF NOT EXISTS scenes_by_studio ON scenes (studio_id)",
        "CREATE TABLE IF NOT EXISTS scene_performers (scene_id INTEGER NOT NULL, performer_id INTEGER NOT NULL,"
        " PRIMARY KEY (scene_id, performer_id))",
        "CREATE INDEX IF NOT EXISTS scene_performers_by_performer ON scene_performers (performer_id)",
        "CREATE TABLE IF NOT EXISTS scene_tags (scene_id INTEGER NOT NULL, tag_id INTEGER NOT NULL,"
        " PRIMARY KEY (scene_id, tag_id))",
        "CREATE INDEX IF NOT EXISTS scene_tags_by_tag ON scene_tags (tag_id)",
        "CREATE TABLE IF NOT EXISTS scene_groups (scene_id INTEGER NOT NULL, group_id INTEGER NOT NULL,"
        " scene_index INTEGER, PRIMARY KEY (scene_id, group_id))",
        _stash_id_table("scene"),
        "CREATE TABLE IF NOT EXISTS files (scene_id INTEGER NOT NULL, id INTEGER PRIMARY KEY, path TEXT NOT NULL,"
        " basename TEXT NOT NULL, size INTEGER, duration REAL, width INTEGER, height INTEGER, frame_rate REAL,"
        " bit_rate INTEGER, video_codec TEXT, audio_codec TEXT, format TEXT, mod_time TEXT, created_at TEXT,"
        " updated_at TEXT, is_primary INTEGER NOT NULL DEFAULT 0, parent_folder_id INTEGER,"
        " parent_folder_path TEXT, zip_file_id INTEGER, zip_file_path TEXT)",
        "CREATE INDEX IF NOT EXISTS files_by_scene ON files (scene_id)",
        "CREATE TABLE IF NOT EXISTS file_fingerprints (file_id INTEGER NOT NULL, type TEXT NOT NULL,"
        " value TEXT NOT NULL, PRIMARY KEY (file_id, type))",
        "CREATE INDEX IF NOT EXISTS file_fingerprints_by_value ON file_fingerprints (type, value)",
        "CREATE TABLE IF NOT EXISTS markers (scene_id INTEGER NOT NULL, id INTEGER PRIMARY KEY, title TEXT NOT NULL,"
        " seconds REAL NOT NULL, end_seconds REAL, primary_tag_id INTEGER, created_at TEXT, updated_at TEXT)",
        "CREATE INDEX IF NOT EXISTS markers_by_scene ON markers (scene_id)",
        "CREATE TABLE IF NOT EXISTS marker_tags (marker_id INTEGER NOT NULL, tag_id INTEGER NOT NULL,"
        " PRIMARY KEY (marker_id, tag_id))",
    ),
    children=(
        "scene_performers",
        "scene_tags",
        "scene_groups",
        "scene_stash_ids",
        "files",
        "markers",
    ),
    grandchildren=(
        ("file_fingerprints", "file_id", "files", "id"),
        ("marker_tags", "marker_id", "markers", "id"),
    ),
    booleans=("organized", "is_primary"),
    version=2,
    migrations=(
        # 2: which file is the primary one, each file's parent folder and zip file.
        (
            "ALTER TABLE files ADD COLUMN is_primary INTEGER NOT NULL DEFAULT 0",
            "ALTER TABLE files ADD COLUMN parent_folder_id INTEGER",
            "ALTER TABLE files ADD COLUMN parent_folder_path TEXT",
            "ALTER TABLE files ADD COLUMN zip_file_id INTEGER",
            "ALTER TABLE files ADD COLUMN zip_file_path TEXT",
            # Until the scenes are read again: a scene's only file is its primary one.
            RowChange(
                "UPDATE files SET is_primary = ? WHERE scene_id IN"
                " (SELECT scene_id FROM files GROUP BY scene_id HAVING count(*) = 1)",
                (True,),
            ),
        ),
    ),
)

#: In the order a full sync runs them (seed 000): performers, tags, studios, scenes.
BUILTIN_ENTITY_TYPES: tuple[EntityType, ...] = (PERFORMER, TAG, STUDIO, SCENE)
