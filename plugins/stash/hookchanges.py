"""What the changes Stash's plugin hooks report ask of the Stash mirror.

A change is ``{"type", "id"}``: the hook's type as Stash names it
(``Scene.Update.Post``) and the changed object's id (``hookContext.id``); a marker's
change may carry its ``scene_id``. What each becomes (the coalescer makes the jobs):

* a create or update of a scene, performer, studio or tag: the object is read by id;
* a destroy, and ``Tag.Merge.Post``: an incremental pass over that type. Its
  reconciliation confirms each vanished object with Stash (``find<X>(id)`` is null)
  before removing it, and reads again what linked to it (a merge re-points links and
  moves aliases without bumping any ``updated_at``);
* ``SceneMarker.*``: the mirror holds markers with their scene. A create or update
  naming its ``scene_id`` reads that scene by id; a destroy (it carries only the
  marker's id) or an update without it is an incremental pass over scenes, which
  finds changed and vanished markers;
* ``Group.*`` (and ``Movie.*``, its deprecated twin), ``Image.*``, ``Gallery.*``,
  ``GalleryChapter.*``: as above, for the entity type the integration syncs
  (``group``, ``image``, ``gallery``, added by plugins);
  otherwise ignored (the answer counts them). A scene's link to a destroyed group
  leaves the mirror at the next full pass.

A type Stash does not have, or an id that is not a positive integer, is a 422 naming
the field.
"""

from __future__ import annotations

import re
from collections.abc import Mapping, Sequence
from typing import Any

from sluiced.api import ApiError

from .coalesce import Changes

__all__ = ["HOOK_TYPES", "ID_PATTERN", "LARGEST_ID", "changes_of"]

#: Stash's objects whose hooks name them, and the entity type each is mirrored as.
OBJECTS = {
    "Scene": "scene",
    "Performer": "performer",
    "Studio": "studio",
    "Tag": "tag",
    "Group": "group",
    "Movie": "group",
    "Image": "image",
    "Gallery": "gallery",
    "GalleryChapter": "gallery",
}
#: Objects mirrored as part of another (their hook's id is their own, not the whole's):
#: a change of one is a pass over the whole's type.
PARTS = frozenset({"GalleryChapter"})
#: Every hook Stash runs (``pkg/plugin/hook``).
HOOK_TYPES = (
    *(
        f"{o}.{op}.Post"
        for o in (*OBJECTS, "SceneMarker")
        for op in ("Create", "Update", "Destroy")
    ),
    "Tag.Merge.Post",
)
LARGEST_ID = 2**63 - 1
ID_PATTERN = r"^[1-9][0-9]{0,18}$"


def _text(value: Any, field: str) -> str:
    """An id of a checked body as Stash writes it.

    Raises:
        ApiError: 422, it is out of range (a string of 19 digits over 2**63 - 1).
    """
    text = str(value)
    if not re.fullmatch(r"[1-9][0-9]*", text) or int(text) > LARGEST_ID:
        raise ApiError(422, "InvalidField", f"{field} must be a Stash id", field=field)
    return text


def changes_of(given: Sequence[Mapping[str, Any]], synced: Sequence[str]) -> tuple[Changes, int]:
    """What the checked *given* changes ask of an integration syncing the entity types
    *synced*, and how many of them it ignores (see the module).

    Raises:
        ApiError: 422, an id out of range (named ``changes[i].id``).
    """
    out = Changes()
    ignored = 0
    for n, change in enumerate(given):
        obj, _, rest = str(change["type"]).partition(".")
        op = rest.split(".")[0]
        ident = _text(change["id"], f"changes[{n}].id")
        if obj == "SceneMarker":
            scene = change.get("scene_id")
            if "scene" not in synced:
                ignored += 1
            elif op != "Destroy" and scene is not None:
                out.read("scene", _text(scene, f"changes[{n}].scene_id"))
            else:
                out.passes.add("scene")
            continue
        kind = OBJECTS[obj]
        if kind not in synced:
            ignored += 1
        elif op in ("Destroy", "Merge") or obj in PARTS:  # a part's id is not its whole's
            out.passes.add(kind)
        else:
            out.read(kind, ident)
    return out, ignored
