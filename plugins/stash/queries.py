"""The GraphQL documents sluiced sends to Stash, in one place.

Each asks only for what the mirror stores: relations as ``{ id }`` (a file's folder and
zip file as ``{ id path }``), no other paths, streams or counts. ``tests/test_stash_queries.py`` validates every document here against
Stash's schema (v0.30.1), with deprecated fields refused.
"""

from __future__ import annotations

__all__ = ["ENTITY_QUERIES", "SCENE_IDS_CHANGED", "VERSION", "EntityQueries"]

from collections.abc import Sequence
from dataclasses import dataclass

STASH_ID = "stash_ids { endpoint stash_id updated_at }"

PERFORMER = f"""fragment PerformerFields on Performer {{
  id name disambiguation alias_list gender birthdate death_date country ethnicity
  eye_color hair_color height_cm weight measurements fake_tits penis_length circumcised
  career_length tattoos piercings urls details rating100 favorite ignore_auto_tag
  custom_fields created_at updated_at
  tags {{ id }}
  {STASH_ID}
}}"""

TAG = f"""fragment TagFields on Tag {{
  id name sort_name description aliases favorite ignore_auto_tag created_at updated_at
  parents {{ id }}
  children {{ id }}
  {STASH_ID}
}}"""

STUDIO = f"""fragment StudioFields on Studio {{
  id name aliases urls details rating100 favorite ignore_auto_tag created_at updated_at
  parent_studio {{ id }}
  tags {{ id }}
  {STASH_ID}
}}"""

SCENE = f"""fragment SceneFields on Scene {{
  id title code details director urls date rating100 organized created_at updated_at
  studio {{ id }}
  performers {{ id }}
  tags {{ id }}
  groups {{ group {{ id }} scene_index }}
  {STASH_ID}
  files {{
    id path basename size duration width height frame_rate bit_rate video_codec audio_codec
    format mod_time created_at updated_at
    fingerprints {{ type value }}
    parent_folder {{ id path }}
    zip_file {{ id path }}
  }}
  scene_markers {{
    id title seconds end_seconds created_at updated_at
    primary_tag {{ id }}
    tags {{ id }}
  }}
}}"""

VERSION = "query Version { version { version hash build_time } }"


@dataclass(frozen=True)
class EntityQueries:
    """The documents for one entity type. Variables: ``$filter`` (the entity's filter
    type), ``$ids``, ``$per_page``."""

    #: Objects matching ``$filter``, all of them (``per_page: -1``), sorted by id.
    matching: str
    #: Objects by id (``$ids``); one missing id fails the whole call.
    by_ids: str
    #: Ids only, of all objects (deletion detection).
    all_ids: str
    #: The newest ``updated_at`` (the watermark, read before a pass) and the ``count`` of
    #: all objects (deletion detection); the scenes' also count markers.
    newest: str
    #: The result field (``performers``, ``scenes``, ...).
    field: str


def _queries(
    kind: str, plural: str, filter_type: str, filter_arg: str, fragment: str, also: str = ""
) -> EntityQueries:
    name = fragment.split()[1]
    find = f"find{plural[0].upper()}{plural[1:]}"
    return EntityQueries(
        matching=f"""query {kind}Matching($filter: {filter_type}) {{
  {find}({filter_arg}: $filter, filter: {{per_page: -1, sort: "id", direction: ASC}}) {{
    count {plural} {{ ...{name} }}
  }}
}}
{fragment}""",
        by_ids=f"""query {kind}ByIds($ids: [ID!]) {{
  {find}(ids: $ids, filter: {{per_page: -1, sort: "id", direction: ASC}}) {{ count {plural} {{ ...{name} }} }}
}}
{fragment}""",
        all_ids=f"""query {kind}Ids {{
  {find}(filter: {{per_page: -1, sort: "id", direction: ASC}}) {{ count {plural} {{ id }} }}
}}""",
        newest=f"""query {kind}Newest {{
  {find}(filter: {{per_page: 1, sort: "updated_at", direction: DESC}}) {{ count {plural} {{ updated_at }} }}{also}
}}""",
        field=plural,
    )


ENTITY_QUERIES: dict[str, EntityQueries] = {
    "performer": _queries(
        "Performers", "performers", "PerformerFilterType", "performer_filter", PERFORMER
    ),
    "tag": _queries("Tags", "tags", "TagFilterType", "tag_filter", TAG),
    "studio": _queries("Studios", "studios", "StudioFilterType", "studio_filter", STUDIO),
    "scene": _queries(
        "Scenes",
        "scenes",
        "SceneFilterType",
        "scene_filter",
        SCENE,
        "\n  findSceneMarkers(filter: {per_page: 0}) { count }",
    ),
}

#: A page of scenes by keyset: ``$filter`` holds ``id > after`` (and, incrementally, the
#: change criteria); sorted by id so the page's last id is the next ``after``.
SCENES_PAGE = f"""query ScenesPage($filter: SceneFilterType, $per_page: Int!) {{
  findScenes(scene_filter: $filter, filter: {{per_page: $per_page, sort: "id", direction: ASC}}) {{
    count scenes {{ ...SceneFields }}
  }}
}}
{SCENE}"""

#: Ids of scenes matching ``$filter`` (the three ways a scene changes: its own
#: ``updated_at``, its files', its markers').
SCENE_IDS_CHANGED = """query SceneIdsChanged($filter: SceneFilterType) {
  findScenes(scene_filter: $filter, filter: {per_page: -1, sort: "id", direction: ASC}) { count scenes { id } }
}"""

_SINGLE = {
    "scene": "findScene(id: {id})",
    "performer": "findPerformer(id: {id})",
    "tag": "findTag(id: {id})",
    "studio": "findStudio(id: {id})",
}


def confirm_query(kind: str, ids: list[str]) -> str:
    """One request asking for each id with its own ``find<X>(id)`` (aliases ``a0``...):
    Stash answers null for an id that does not exist, without failing the others."""
    single = _SINGLE.get(
        kind, f"find{kind[0].upper()}{kind[1:]}(id: {{id}})"
    )  # findGallery, findGroup
    parts = [f"a{n}: " + single.format(id=f'"{int(i)}"') + " { id }" for n, i in enumerate(ids)]
    return "query Confirm { " + " ".join(parts) + " }"


#: Ids only of the scenes after ``$after``, a page of ``$per_page`` (deletion detection).
SCENE_IDS_PAGE = """query SceneIdsPage($after: Int!, $per_page: Int!) {
  findScenes(scene_filter: {id: {value: $after, modifier: GREATER_THAN}}, filter: {per_page: $per_page, sort: "id", direction: ASC}) { scenes { id } }
}"""

#: Ids only of the markers, page ``$page`` of ``$per_page`` sorted by id (a marker's
#: deletion leaves its scene untouched: this is how it is found). Markers have no id
#: criterion to page by keyset; a page shifted by a concurrent change only makes the
#: sync re-read a scene more.
MARKER_IDS_PAGE = """query MarkerIdsPage($page: Int!, $per_page: Int!) {
  findSceneMarkers(filter: {page: $page, per_page: $per_page, sort: "id", direction: ASC}) { scene_markers { id } }
}"""

#: The scenes of markers by id (``$ids``); one missing id fails the whole call.
MARKER_SCENES = """query MarkerScenes($ids: [ID!]) {
  findSceneMarkers(ids: $ids, filter: {per_page: -1}) { scene_markers { id scene { id } } }
}"""


def tags_by_alias_query(count: int) -> str:
    """One request for the tags having the alias ``$n0``, ``$n1``, ... (aliases ``a0``,
    ``a1``, ...): where a merged tag's name went (``tagsMerge`` makes the sources' names
    aliases of the destination). Stash compares with ``LIKE``: case-insensitively."""
    names = ", ".join(f"$n{k}: String!" for k in range(count))
    parts = " ".join(
        f"a{k}: findTags(tag_filter: {{aliases: {{value: $n{k}, modifier: EQUALS}}}},"
        f' filter: {{per_page: -1, sort: "id", direction: ASC}}) {{ tags {{ ...TagFields }} }}'
        for k in range(count)
    )
    return f"query TagsByAlias({names}) {{ {parts} }}\n{TAG}"


def _between(lo: int, hi: int) -> str:
    return f"{{id: {{value: {int(lo)}, value2: {int(hi)}, modifier: BETWEEN}}}}"


def range_counts_query(ranges: Sequence[tuple[int, int]], *, markers: bool) -> str:
    """One request counting (``per_page: 0``), for each range ``(lo, hi)`` of scene ids
    (inclusive), Stash's scenes in it, or their markers; aliases ``r0``, ``r1``, ..."""
    parts = []
    for n, (lo, hi) in enumerate(ranges):
        if markers:
            parts.append(
                f"r{n}: findSceneMarkers(scene_marker_filter: {{scene_filter: {_between(lo, hi)}}},"
                " filter: {per_page: 0}) { count }"
            )
        else:
            parts.append(
                f"r{n}: findScenes(scene_filter: {_between(lo, hi)}, filter: {{per_page: 0}}) {{ count }}"
            )
    name = "MarkerRangeCounts" if markers else "SceneRangeCounts"
    return f"query {name} {{ " + " ".join(parts) + " }"


def range_ids_query(ranges: Sequence[tuple[int, int]], *, markers: bool) -> str:
    """One request listing, for each range of scene ids, the ids of Stash's scenes in it,
    or of their markers with each marker's scene; aliases ``r0``, ``r1``, ..."""
    parts = []
    for n, (lo, hi) in enumerate(ranges):
        if markers:
            parts.append(
                f"r{n}: findSceneMarkers(scene_marker_filter: {{scene_filter: {_between(lo, hi)}}},"
                ' filter: {per_page: -1, sort: "id", direction: ASC}) { scene_markers { id scene { id } } }'
            )
        else:
            parts.append(
                f"r{n}: findScenes(scene_filter: {_between(lo, hi)},"
                ' filter: {per_page: -1, sort: "id", direction: ASC}) { scenes { id } }'
            )
    name = "MarkerRangeIds" if markers else "SceneRangeIds"
    return f"query {name} {{ " + " ".join(parts) + " }"


__all__ += [
    "MARKER_IDS_PAGE",
    "MARKER_SCENES",
    "SCENES_PAGE",
    "SCENE_IDS_PAGE",
    "confirm_query",
    "range_counts_query",
    "range_ids_query",
    "tags_by_alias_query",
]
