"""Every GraphQL document sluiced sends validates against Stash's real schema
(../shared/stash-schema, v0.30.1) and uses no deprecated field."""

from __future__ import annotations

from pathlib import Path

import pytest

from sluiced.plugins.stash import queries

graphql = pytest.importorskip("graphql")

#: ``shared/stash-schema`` beside the checkout, or beside a folder holding it.
SCHEMA_DIR = next(
    (
        p / "shared" / "stash-schema"
        for p in Path(__file__).resolve().parents[1:4]
        if (p / "shared" / "stash-schema").is_dir()
    ),
    Path(__file__).resolve().parents[2] / "shared" / "stash-schema",
)


def documents() -> list[tuple[str, str]]:
    out = [
        ("VERSION", queries.VERSION),
        ("SCENES_PAGE", queries.SCENES_PAGE),
        ("SCENE_IDS_CHANGED", queries.SCENE_IDS_CHANGED),
        ("SCENE_IDS_PAGE", queries.SCENE_IDS_PAGE),
        ("MARKER_IDS_PAGE", queries.MARKER_IDS_PAGE),
        ("MARKER_SCENES", queries.MARKER_SCENES),
    ]
    for markers in (False, True):
        out += [
            (
                f"range_counts.{markers}",
                queries.range_counts_query([(1, 9), (10, 2**31 - 1)], markers=markers),
            ),
            (f"range_ids.{markers}", queries.range_ids_query([(1, 9), (10, 20)], markers=markers)),
        ]
    out.append(("tags_by_alias", queries.tags_by_alias_query(2)))
    out += [
        (f"confirm.{k}", queries.confirm_query(k, ["1", "2"]))
        for k in ("scene", "performer", "tag", "studio")
    ]
    for kind, q in queries.ENTITY_QUERIES.items():
        out += [
            (f"{kind}.{name}", getattr(q, name))
            for name in ("matching", "by_ids", "all_ids", "newest")
        ]
    return out


def load_stash_schema() -> object:
    """Stash's schema, built from ../shared/stash-schema (skips the test without it)."""
    if not SCHEMA_DIR.is_dir():
        pytest.skip("../shared/stash-schema is not beside the checkout")
    sdl = (SCHEMA_DIR / "schema.graphql").read_text() + "\n".join(
        p.read_text() for p in sorted((SCHEMA_DIR / "types").glob("*.graphql"))
    )
    return graphql.build_schema(sdl)


@pytest.fixture(scope="module")
def stash_schema() -> object:
    return load_stash_schema()


@pytest.mark.parametrize(("name", "document"), documents(), ids=[n for n, _ in documents()])
def test_query_validates_without_deprecated_fields(
    stash_schema: object, name: str, document: str
) -> None:
    from graphql.validation import NoDeprecatedCustomRule

    errors = graphql.validate(
        stash_schema, graphql.parse(document), [*graphql.specified_rules, NoDeprecatedCustomRule]
    )
    assert errors == [], f"{name}: {errors}"
