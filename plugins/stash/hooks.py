"""Stash's plugin hooks in the control API: ``POST /api/stash/hooks`` takes the changes
the Stash plugin (``stash-plugin/sluiced/``) reports, and the coalescer
(``coalesce.py``) turns them into a few jobs.

What each change asks for is in ``hookchanges.py``. A type Stash does not have, or an
id that is not a positive integer, is a 422 naming the field.

On a cluster, the node that gets the request answers it. If another node runs the
integration, this one keeps the changes and sends them on to it in batches
(``relay.py``); a batch sent on is answered by the node that runs the integration.
"""

from __future__ import annotations

from typing import Any

from sluiced.api import Call, Field, Route
from sluiced.api.routing import COMMAND_HEADER
from sluiced.cluster import Elsewhere
from sluiced.control import Control

from .coalesce import coalescer
from .hookchanges import HOOK_TYPES, ID_PATTERN, LARGEST_ID, changes_of
from .relay import relay
from .routes import STASH_INTEGRATION

__all__ = ["HOOKS_BODY", "HOOK_TYPES", "ROUTES", "changes_of"]


def _id(description: str, *, required: bool = False) -> Field:
    return Field(
        "id",
        required=required,
        minimum=1,
        maximum=LARGEST_ID,
        pattern=ID_PATTERN,
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


async def receive_hooks(call: Call, ctl: Control) -> Any:
    hooks = coalescer(ctl)
    target = await hooks.integration(ctl, call.body.get("integrationId"))
    given = call.body["changes"]
    changes, ignored = changes_of(given, target.entity_types)
    try:
        await ctl.here(target.id)
    except Elsewhere:
        if call.request.headers.get(COMMAND_HEADER):
            raise  # a batch another node sent on: it sends it again to the holder
        relay(ctl).add(ctl, target, given)
    else:
        hooks.add(ctl, target, changes)
    return {"integrationId": target.id, "accepted": len(given) - ignored, "ignored": ignored}


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
