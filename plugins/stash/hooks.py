"""Stash's plugin hooks in the control API: ``POST /api/stash/hooks`` takes the changes
the Stash plugin (``stash-plugin/sluiced/``) reports, and the coalescer
(``coalesce.py``) turns them into a few jobs.

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
the field. On a cluster the request is answered by the node that runs the integration.
"""

from __future__ import annotations

import re
from collections.abc import Mapping, Sequence
from typing import Any

from sluiced.api import ApiError, Call, Field, Route
from sluiced.control import Control

from .coalesce import Changes, coalescer
from .routes import STASH_INTEGRATION

__all__ = ["HOOKS_BODY", "HOOK_TYPES", "ROUTES", "changes_of"]

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
_LARGEST = 2**63 - 1
_ID_TEXT = r"^[1-9][0-9]{0,18}$"


def _id(description: str, *, required: bool = False) -> Field:
    return Field(
        "id",
        required=required,
        minimum=1,
        maximum=_LARGEST,
        pattern=_ID_TEXT,
        description=description,
    )


CHANGE = Field(
    "object",
    fields={
        "type": Field(
            "string", required=True, choices=HOOK_TYPES, description="the hook, as Stash names it"
        ),
        "id": _id("the changed object's id (hookContext.id)", required=True),
        "scene_id": _id("SceneMarker hooks: the marker's scene (input.scene_id), if known"),
    },
)
#: The body of ``POST /api/stash/hooks``.
HOOKS_BODY = Field(
    "object",
    fields={
        "changes": Field("array", items=CHANGE, min_length=1, max_length=10_000, required=True),
        "integrationId": STASH_INTEGRATION,
    },
)
HOOKS_ANSWER: dict[str, Any] = {
    "type": "object",
    "required": ["integrationId", "accepted", "ignored"],
    "properties": {
        "integrationId": {"type": "string"},
        "accepted": {"type": "integer", "description": "changes that will be synced"},
        "ignored": {
            "type": "integer",
            "description": "changes of objects the integration does not mirror",
        },
    },
}


def _text(value: Any, field: str) -> str:
    """An id of a checked body as Stash writes it.

    Raises:
        ApiError: 422, it is out of range (a string of 19 digits over 2**63 - 1).
    """
    text = str(value)
    if not re.fullmatch(r"[1-9][0-9]*", text) or int(text) > _LARGEST:
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


async def receive_hooks(call: Call, ctl: Control) -> Any:
    hooks = coalescer(ctl)
    target = await hooks.integration(ctl, call.body.get("integrationId"))
    await ctl.here(target.id)
    changes, ignored = changes_of(call.body["changes"], target.entity_types)
    hooks.add(ctl, target, changes)
    return {
        "integrationId": target.id,
        "accepted": len(call.body["changes"]) - ignored,
        "ignored": ignored,
    }


ROUTES = (
    Route(
        "POST",
        "/api/stash/hooks",
        receive_hooks,
        "Stash: changes reported by Stash's plugin hooks, synced within seconds",
        HOOKS_BODY,
        202,
        errors=(404, 409, 422),
        response=HOOKS_ANSWER,
    ),
)
