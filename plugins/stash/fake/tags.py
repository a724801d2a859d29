"""What the fake Stash does to tags that bumps less than one would think, as Stash
v0.30.1 does it (``internal/api/resolver_mutation_tag.go``, ``pkg/sqlite/tag.go``
``Merge``, ``pkg/tag`` ``MergeHierarchy``)."""

from __future__ import annotations

from collections.abc import Iterable

from .library import Library

__all__ = ["merge_tags", "set_children"]


def set_children(lib: Library, ident: str, children: Iterable[str]) -> None:
    """``tagUpdate(id, child_ids)``: the tag's children become *children*; only the
    parent's ``updated_at`` changes, the children it adds or drops are not bumped."""
    wanted = set(children)
    for tag in lib.tables["tag"].values():
        has = ident in tag["parents"]
        if tag["id"] in wanted and not has:
            tag["parents"] = [*tag["parents"], ident]
        elif tag["id"] not in wanted and has:
            tag["parents"] = [p for p in tag["parents"] if p != ident]
    lib.update("tag", ident)


def merge_tags(lib: Library, sources: Iterable[str], destination: str) -> None:
    """``tagsMerge``: the sources' links (scenes', markers' primary and other tags,
    performers', studios') move to *destination*, which gets the sources' names as
    aliases, their aliases, stash ids, parents and children; the sources are deleted; no
    ``updated_at`` changes (not the destination's, not the scenes')."""
    sources = [s for s in dict.fromkeys(sources) if s != destination]
    merged = {destination, *sources}
    tags = lib.tables["tag"]
    dest = tags[destination]
    parents: list[str] = []
    children: list[str] = []
    for ident in (destination, *sources):  # MergeHierarchy
        for p in tags[ident]["parents"]:
            if p not in merged and p not in parents:
                parents.append(p)
        for c in lib.children_of(ident):
            if c not in merged and c not in children:
                children.append(c)

    def repoint(ids: list[str]) -> list[str]:
        if not any(i in sources for i in ids):
            return ids
        kept = [i for i in ids if i not in sources]
        return kept if destination in kept else [*kept, destination]

    for kind in ("scene", "performer", "studio"):
        for obj in lib.tables[kind].values():
            obj["tags"] = repoint(obj["tags"])
    for scene in lib.tables["scene"].values():
        for marker in scene["scene_markers"]:
            marker["tags"] = repoint(marker["tags"])
            if marker["primary_tag"] in sources:
                marker["primary_tag"] = destination
    for source in sources:
        tag = tags[source]
        dest["aliases"] = [*dest["aliases"], tag["name"], *tag["aliases"]]
        known = {(s["endpoint"], s["stash_id"]) for s in dest["stash_ids"]}
        dest["stash_ids"] = [
            *dest["stash_ids"],
            *(s for s in tag["stash_ids"] if (s["endpoint"], s["stash_id"]) not in known),
        ]
    dest["parents"] = parents  # UpdateParentTags
    for tag in tags.values():  # UpdateChildTags
        if tag["id"] in children and destination not in tag["parents"]:
            tag["parents"] = [*tag["parents"], destination]
        elif tag["id"] not in children and destination in tag["parents"]:
            tag["parents"] = [p for p in tag["parents"] if p != destination]
    lib.relinked()
    for source in sources:
        lib.delete("tag", source)
